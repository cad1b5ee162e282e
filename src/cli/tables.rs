//! `dipdrg tables check`: load a table set and list what its rules can never reach.

use clap::Args;
use dipdrg::drg::lint::{lint, Level};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// Table-set directory.
    #[arg(long)]
    tables: PathBuf,
    /// Exit with status 1 when there is any warning.
    #[arg(long)]
    strict: bool,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let tables = super::load_tables(&args.tables, true)?;
    let findings = lint(&tables);
    println!(
        "table set {} (fingerprint {}): {} MDCs, {} ADRG rules, {} ADRGs, {} DRGs",
        tables.name,
        tables.fingerprint,
        tables.mdcs.len(),
        tables.rules.len(),
        tables.adrgs.len(),
        tables.drgs.len()
    );
    for finding in &findings {
        println!("{finding}");
    }
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    println!("{warnings} warnings, {} notes", findings.len() - warnings);
    Ok(if args.strict && warnings > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

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
    let scheme = &tables.scheme;
    if *scheme != dipdrg::drg::tables::SchemeSettings::default() {
        let codes = |c: &dipdrg::drg::tables::ResultCodes| format!("{:?}/{:?}/{:?}", c.mdc, c.adrg, c.drg);
        println!(
            "scheme.csv: code mapping {}, retry with later procedures {}, FAIL codes {}, error codes {}",
            if scheme.without_code_mapping { "none" } else { "map" },
            if scheme.retry_secondary_procedures { "on" } else { "off" },
            codes(&scheme.fail),
            codes(&scheme.error)
        );
    }
    for finding in &findings {
        println!("{finding}");
    }
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    println!("{warnings} warnings, {} notes", findings.len() - warnings);
    Ok(if args.strict && warnings > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[derive(Args)]
pub struct ProcedureTypesArgs {
    /// DRG table-set directory.
    #[arg(long)]
    tables: PathBuf,
    /// Output `procedure_types.csv`.
    #[arg(long)]
    out: PathBuf,
}

/// Derives DIP treatment types from a DRG table set: operating-room procedures are surgery,
/// ICD-9-CM-3 87–89 (imaging, examinations) diagnostic, every other listed procedure therapeutic.
/// A starting point for a region's own table, which should be reviewed by hand.
pub fn procedure_types(args: ProcedureTypesArgs) -> anyhow::Result<ExitCode> {
    let tables = super::load_tables(&args.tables, true)?;
    let rows = dipdrg::catalog_build::suggested_procedure_types(&tables);
    let mut writer = csv::Writer::from_path(&args.out)?;
    writer.write_record(["code", "type"])?;
    for (code, kind) in &rows {
        writer.write_record([code.as_str(), kind.as_str()])?;
    }
    writer.flush()?;
    println!("wrote {} procedure types to {}", rows.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}

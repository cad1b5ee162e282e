//! `dipdrg policy check`: load a region policy (and, optionally, the DIP catalog it runs on) and
//! list the rules that can never take effect: pricing rules behind earlier ones, and regional DIP rules.

use anyhow::Context;
use clap::Args;
use dipdrg::dip::lint::{lint_policy, Level};
use dipdrg::dip::DipCatalog;
use dipdrg::policy::Policy;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// Region policy file (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// DIP catalog directory, to check the policy against its rows (and its condition names).
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Exit with status 1 when there is any warning.
    #[arg(long)]
    strict: bool,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = Policy::load(&args.policy).with_context(|| format!("loading {}", args.policy.display()))?;
    let catalog = match &args.tables {
        Some(dir) => {
            let catalog = DipCatalog::load_dir(dir).with_context(|| format!("loading {}", dir.display()))?;
            dipdrg::scoring::DipTerms::resolve(&policy, &catalog)
                .with_context(|| format!("checking {} against the policy", dir.display()))?;
            Some(catalog)
        }
        None => None,
    };
    let mut findings = dipdrg::policy::lint::lint_pricing_rules(&policy);
    findings.extend(lint_policy(&policy, catalog.as_ref()));
    println!("policy {} {} version {}", policy.region, policy.year, policy.version);
    for finding in &findings {
        println!("{finding}");
    }
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    println!("{warnings} warnings, {} notes", findings.len() - warnings);
    Ok(if args.strict && warnings > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

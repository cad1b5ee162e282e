//! `dipdrg gen`: synthetic discharges for a table set, with the injected violations and the
//! hospitals written beside them.

use anyhow::Context;
use clap::Args;
use dipdrg::generate::{Generator, Options};
use dipdrg::io::case_csv::CaseWriter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct GenArgs {
    /// DRG table set the cases are built from.
    #[arg(long)]
    tables: PathBuf,
    /// Number of cases.
    #[arg(long, default_value_t = 10_000)]
    cases: u64,
    /// Number of hospitals (10% level 3, 35% level 2, the rest level 1).
    #[arg(long, default_value_t = 50)]
    hospitals: usize,
    #[arg(long, default_value_t = 2026)]
    year: i32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of cases with an injected violation.
    #[arg(long, default_value_t = 0.02)]
    violation_rate: f64,
    /// Output case CSV; `<stem>.violations.csv` and `<stem>.hospitals.csv` are written beside it.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((0.0..=1.0).contains(&args.violation_rate), "--violation-rate must be between 0 and 1");
    let tables = super::load_tables(&args.tables, args.quiet)?;
    let options = Options {
        cases: args.cases,
        hospitals: args.hospitals,
        year: args.year,
        seed: args.seed,
        violation_rate: args.violation_rate,
        case_prefix: format!("C{}", args.year),
    };
    let mut generator = Generator::new(&tables, options);
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let side = |suffix: &str| args.out.with_extension(format!("{suffix}.csv"));
    let mut hospitals = csv::Writer::from_path(side("hospitals"))?;
    hospitals.write_record(["hospital_id", "level"])?;
    for hospital in generator.hospitals() {
        hospitals.write_record([hospital.id.as_str(), hospital.level])?;
    }
    hospitals.flush()?;
    std::fs::write(side("outpatient-families").with_extension("txt"), generator.outpatient_families().join("\n") + "\n")?;
    let file = File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut cases = CaseWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut violations = csv::Writer::from_path(side("violations"))?;
    violations.write_record(["case_id", "kind", "related_case_id"])?;
    let progress =
        if args.quiet { ProgressBar::hidden() } else { ProgressBar::with_draw_target(Some(args.cases), ProgressDrawTarget::stderr()) };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cases {per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut written = 0u64;
    let mut injected = 0u64;
    for (case, violation) in generator.by_ref() {
        cases.write(&case)?;
        written += 1;
        if let Some(v) = violation {
            injected += 1;
            violations.write_record([v.case_id.as_str(), v.kind.as_str(), v.related_case_id.as_deref().unwrap_or("")])?;
        }
        if written % 65_536 == 0 {
            progress.set_position(written);
        }
    }
    progress.finish_and_clear();
    cases.flush()?;
    violations.flush()?;
    if !args.quiet {
        eprintln!("wrote {written} cases to {} ({injected} injected violations in {})", args.out.display(), side("violations").display());
    }
    Ok(ExitCode::SUCCESS)
}

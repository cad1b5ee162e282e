//! `dipdrg settle`: a month-end pre-settlement or a year-end final settlement from a case file.
//!
//! An adapter: it parses the flags, reads the policy, tables, violations and reviews files, runs
//! the settlement engine ([`dipdrg::settle`]; the parallel executor, or the reference one with
//! `--executor reference`) and writes its outcome: `cases.csv`, `statements.csv`, `summary.csv`,
//! `rejects.csv`, `settlement.xlsx` (statements, summary, per-month trend, rejects) and `report.html`. Every rule lives in the engine.

use anyhow::Context;
use clap::{Args, ValueEnum};
use dipdrg::policy::Policy;
use dipdrg::report::{RunTables, Table};
use dipdrg::scoring::Scorer;
use dipdrg::settle::{self, Annotations, CaseLines, Outcome, Period, Request, SettleError};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Mode {
    Monthly,
    Annual,
}

impl From<Mode> for settle::Mode {
    fn from(mode: Mode) -> settle::Mode {
        match mode {
            Mode::Monthly => settle::Mode::Monthly,
            Mode::Annual => settle::Mode::Annual,
        }
    }
}

pub use super::Executor;

#[derive(Args)]
pub struct SettleArgs {
    /// Region policy (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// DRG table set (DRG policy) or DIP catalog directory (DIP policy).
    #[arg(long)]
    tables: PathBuf,
    /// Case CSV (or Parquet).
    #[arg(long)]
    cases: PathBuf,
    /// Confirmed violations CSV: case_id, kind [, hospital_id].
    #[arg(long)]
    violations: Option<PathBuf>,
    /// Special-review decisions CSV: case_id, decision (approved/rejected), reviewed_points [, hospital_id].
    #[arg(long)]
    reviews: Option<PathBuf>,
    /// `YYYY-MM` (monthly) or `YYYY` (annual), by discharge date.
    #[arg(long)]
    period: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "parallel")]
    executor: Executor,
    /// Benefits policy (TOML, e.g. policies/demo-city-2026-benefits.toml): fill each empty
    /// `patient_paid` with the patient's share under one-bill settlement (README "Benefits").
    #[arg(long)]
    benefits: Option<PathBuf>,
    #[arg(long, short)]
    quiet: bool,
}

/// A CSV file of annotations: each record's fields by column name, numbered from 1.
fn read_annotation_file(
    path: &Path,
    required: &[&str],
    mut add: impl FnMut(u64, &dyn Fn(&str) -> String) -> Result<(), SettleError>,
) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers().with_context(|| format!("reading {}", path.display()))?.clone();
    for name in required {
        if !headers.iter().any(|h| h == *name) {
            anyhow::bail!("{}: no column {name}", path.display());
        }
    }
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
        let field = |name: &str| headers.iter().position(|h| h == name).and_then(|p| record.get(p)).unwrap_or("").to_string();
        add(i as u64 + 1, &field)?;
    }
    Ok(())
}

/// Reads the violations and reviews files into the engine's annotations (the engine checks
/// each record: [`Annotations::add_violation_record`], [`Annotations::add_review_record`]).
fn read_annotations(policy: &Policy, violations: Option<&Path>, reviews: Option<&Path>) -> anyhow::Result<Annotations> {
    let mut annotations = Annotations::default();
    let refused = |path: &Path, record: u64| {
        let source_name = path.display().to_string();
        move |(field, reason): (&'static str, String)| SettleError::Annotation { source_name, record, field, reason }
    };
    if let Some(path) = violations {
        read_annotation_file(path, &["case_id", "kind"], |record, field| {
            let hospital = field("hospital_id");
            annotations
                .add_violation_record(policy, &field("case_id"), Some(hospital.as_str()).filter(|h| !h.is_empty()), &field("kind"))
                .map_err(refused(path, record))
        })?;
    }
    if let Some(path) = reviews {
        read_annotation_file(path, &["case_id", "decision"], |record, field| {
            let hospital = field("hospital_id");
            annotations
                .add_review_record(
                    &field("case_id"),
                    Some(hospital.as_str()).filter(|h| !h.is_empty()),
                    &field("decision"),
                    &field("reviewed_points"),
                )
                .map_err(refused(path, record))
        })?;
    }
    Ok(annotations)
}

fn write_csv(path: &Path, table: &Table) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    writer.write_record(&table.header)?;
    for row in &table.rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes every output of a run into `out`.
fn write_outputs<C: CaseLines>(out: &Path, request: &Request<'_>, outcome: &Outcome<C>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cases_path = out.join("cases.csv");
    let cases_file = File::create(&cases_path).with_context(|| format!("creating {}", cases_path.display()))?;
    let header = settle::CASES_HEADER.as_bytes();
    settle::parallel::write_at(&cases_file, header, 0)
        .and_then(|()| outcome.cases.write_at(&cases_file, header.len() as u64))
        .with_context(|| format!("writing {}", cases_path.display()))?;
    let rejects_table = settle::rejects_table(&outcome.rejected);
    write_csv(&out.join("rejects.csv"), &rejects_table)?;
    let statements_table = outcome.statements.statements_table(request.policy, &outcome.hospital_ids);
    let summary_table = outcome.statements.summary_table(&outcome.info(request));
    write_csv(&out.join("statements.csv"), &statements_table)?;
    write_csv(&out.join("summary.csv"), &summary_table)?;
    write_csv(&out.join("dictionary.csv"), &settle::dictionary_table())?;
    write_csv(&out.join("warnings.csv"), &settle::warnings_table(&outcome.warnings))?;
    // The per-month trend sums the cases file just written (read back as a stream).
    let period = summary_table.value("period").unwrap_or("");
    let cases_written = File::open(&cases_path).with_context(|| format!("reading {}", cases_path.display()))?;
    let trend_table = dipdrg::report::trend::monthly_trend(std::io::BufReader::with_capacity(1 << 20, cases_written), period)
        .with_context(|| format!("reading {}", cases_path.display()))?;
    let tables = RunTables { statements: &statements_table, summary: &summary_table, trend: &trend_table, rejects: &rejects_table };
    dipdrg::report::write_reports(out, &tables).with_context(|| format!("writing the reports into {}", out.display()))?;
    Ok(())
}

pub fn run(args: SettleArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let policy = Policy::load(&args.policy)?;
    policy.funds()?;
    // Rules that can never apply: warned about on every run, quiet or not.
    for finding in dipdrg::policy::lint::lint_pricing_rules(&policy) {
        eprintln!("policy {}: {finding}", args.policy.display());
    }
    let mode = settle::Mode::from(args.mode);
    let period = Period::parse_for(&policy, mode, &args.period)?;
    // The tables load on a second thread while this one reads the violations and reviews.
    let (scorer, annotations) = std::thread::scope(|scope| {
        let tables = scope.spawn(|| Scorer::load(&policy, &args.policy, &args.tables));
        let annotations = read_annotations(&policy, args.violations.as_deref(), args.reviews.as_deref());
        let scorer = tables.join().map_err(|_| anyhow::anyhow!("loading {} stopped unexpectedly", args.tables.display()));
        (scorer, annotations)
    });
    let scorer = scorer?.with_context(|| format!("loading {}", args.tables.display()))?;
    let annotations = annotations?;
    let request = Request { policy: &policy, scorer: &scorer, mode, period, annotations: &annotations };
    let threads = super::worker_threads(args.threads);
    // With a benefits policy, the executors read the case file with `patient_paid` filled in.
    let filled_cases = match &args.benefits {
        Some(path) => Some(super::benefits::fill_case_file(path, &policy, &args.cases, threads, args.quiet)?),
        None => None,
    };
    let (input, layout, size_hint) = super::open_case_file(filled_cases.as_ref().map_or(args.cases.as_path(), |f| f.path()))?;
    let (outcome, phases) = match args.executor {
        Executor::Parallel => {
            let (outcome, phases) = settle::parallel::run(&request, input, &layout, size_hint, threads, dipdrg::io::chunks::CHUNK_BYTES)?;
            (Box::new(outcome) as Box<dyn OutcomeWriter>, Some(phases))
        }
        Executor::Reference => {
            let records = dipdrg::io::case_csv::CaseReader::headerless(input, layout, 0);
            (Box::new(settle::reference::run(&request, records)?) as Box<dyn OutcomeWriter>, None)
        }
    };
    let settled = started.elapsed();
    outcome.write(&args.out, &request)?;
    if !args.quiet {
        let (submitted, accepted, rejected) = outcome.counts();
        eprintln!(
            "submitted {submitted} = accepted {accepted} + rejected {rejected} (reasons in {}); settled in {:.2} s with {} ({threads} threads), total {:.2} s",
            args.out.join("rejects.csv").display(),
            settled.as_secs_f64(),
            if phases.is_some() { "the parallel executor" } else { "the reference executor" },
            started.elapsed().as_secs_f64()
        );
        if let Some(phases) = phases {
            eprintln!(
                "phases: read+assess {:.2} s, merge {:.2} s, settle {:.2} s, split amounts {:.2} s, write outputs {:.2} s",
                phases.read_and_assess.as_secs_f64(),
                phases.merge.as_secs_f64(),
                phases.settle.as_secs_f64(),
                phases.split_amounts.as_secs_f64(),
                (started.elapsed() - settled).as_secs_f64()
            );
        }
        for record in outcome.point_values() {
            let value = dipdrg::units::format_point_value(record.value.0, policy.point_value_decimals);
            eprintln!("{} point value ({:?}): {value}", record.fund.as_str(), record.method);
        }
        eprintln!("wrote {}", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// An outcome of either executor, as this adapter uses it.
trait OutcomeWriter {
    fn write(&self, out: &Path, request: &Request<'_>) -> anyhow::Result<()>;
    fn counts(&self) -> (u64, u64, usize);
    fn point_values(&self) -> &[dipdrg::settlement::PointValueRecord];
}

impl<C: CaseLines> OutcomeWriter for Outcome<C> {
    fn write(&self, out: &Path, request: &Request<'_>) -> anyhow::Result<()> {
        write_outputs(out, request, self)
    }

    fn counts(&self) -> (u64, u64, usize) {
        (self.submitted, self.accepted, self.rejected.len())
    }

    fn point_values(&self) -> &[dipdrg::settlement::PointValueRecord] {
        self.statements.point_values()
    }
}

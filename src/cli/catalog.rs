//! `dipdrg catalog build`: DIP catalogs and DRG relative weights from weighted history years.
//!
//! An adapter: history is read by [`dipdrg::catalog_run`] (parallel executor: each file in chunks
//! on worker threads; or `--executor reference`) and scored by [`dipdrg::catalog_build`]; every
//! record is accounted for: used, or skipped with a reason counted in the report.

use super::Executor;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use dipdrg::case::Case;
use dipdrg::catalog_build::{
    build_dip_catalog, build_drg_weights, dip_key, drg_key, history_weights, hospital_levels, DipBuildOptions, Trim,
};
use dipdrg::catalog_run::{self, HistoryFile, HistoryOutcome, KeyOf};
use dipdrg::dip::catalog::{DipCatalog, Treatment};
use dipdrg::drg::DrgTableSet;
use dipdrg::io::chunks::CHUNK_BYTES;
use dipdrg::policy::Policy;
use dipdrg::units::round_half_up;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    Dip,
    Drg,
}

#[derive(Args)]
pub struct BuildArgs {
    #[arg(long, value_enum)]
    scheme: SchemeArg,
    /// History case files, oldest first, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    history: Vec<PathBuf>,
    /// Weight of each history file, comma-separated (default: all 1).
    #[arg(long, value_delimiter = ',')]
    weights: Vec<String>,
    /// DIP: `procedure_types.csv` (code,type). DRG: not used.
    #[arg(long)]
    procedure_types: Option<PathBuf>,
    /// DRG: the table set to group history with.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// A region policy, for hospital levels (per-level mean costs).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Score scale (DIP; DRG weights are relative, scale 1).
    #[arg(long, default_value = "1000")]
    scale: String,
    /// Floor of the core-group case threshold (DIP).
    #[arg(long, default_value_t = 15)]
    min_cases: u64,
    /// Share of cases core groups should cover (DIP).
    #[arg(long, default_value = "0.85")]
    coverage: String,
    /// Outlier trimming before means: none, sd:K or iqr:K.
    #[arg(long, default_value = "sd:3")]
    trim: String,
    /// Decimals of scores [default: 2 for DIP scores, 4 for DRG RW].
    #[arg(long)]
    score_decimals: Option<u32>,
    /// Subcategories whose conservative group is a grassroots group (DIP), comma-separated.
    #[arg(long, value_delimiter = ',')]
    grassroots: Vec<String>,
    /// DIP: output directory (catalog.csv, procedure_types.csv). DRG: output weights CSV.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "parallel")]
    executor: Executor,
    #[arg(long, short)]
    quiet: bool,
}

fn decimal(flag: &str, text: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str(text.trim()).with_context(|| format!("{flag}: {text:?} is not a decimal number"))
}

/// Reads the history files through the chosen executor.
fn read_history<K: std::hash::Hash + Eq + Clone + Send>(
    args: &BuildArgs,
    hospital_levels: &FxHashMap<String, u8>,
    key_of: KeyOf<'_, K>,
) -> anyhow::Result<HistoryOutcome<K>> {
    let mut files = Vec::with_capacity(args.history.len());
    for path in &args.history {
        files.push(super::open_case_file(path)?);
    }
    Ok(match args.executor {
        Executor::Parallel => {
            let files = files.into_iter().map(|(source, layout, size_hint)| HistoryFile { source, layout, size_hint }).collect();
            catalog_run::parallel(files, hospital_levels, key_of, super::worker_threads(args.threads), CHUNK_BYTES)
                .context("reading the history files")?
        }
        Executor::Reference => {
            let files = files.into_iter().map(|(source, layout, _)| super::records_after_header(source, layout)).collect();
            catalog_run::reference(files, hospital_levels, key_of)
        }
    })
}

fn procedure_types(path: &Path) -> anyhow::Result<FxHashMap<String, Treatment>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name).with_context(|| format!("{}: no column {name}", path.display()));
    let (code, kind) = (column("code")?, column("type")?);
    let mut types = FxHashMap::default();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let treatment = Treatment::parse(record.get(kind).unwrap_or(""))
            .with_context(|| format!("{}: line {}: type must be surgery, therapeutic or diagnostic", path.display(), i + 2))?;
        types.insert(record.get(code).unwrap_or("").to_string(), treatment);
    }
    Ok(types)
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let weights = args.weights.iter().map(|w| decimal("--weights", w)).collect::<anyhow::Result<Vec<_>>>()?;
    let weights = history_weights(weights, args.history.len()).map_err(anyhow::Error::msg)?;
    let trim = Trim::parse(&args.trim).with_context(|| format!("--trim {:?}: expected none, sd:K or iqr:K", args.trim))?;
    let policy = args.policy.as_deref().map(Policy::load).transpose()?;
    let (hospital_levels, level_names) = hospital_levels(policy.as_ref());
    match args.scheme {
        SchemeArg::Dip => build_dip(&args, weights, trim, &hospital_levels, &level_names, started),
        SchemeArg::Drg => build_drg(&args, weights, trim, &hospital_levels, &level_names, started),
    }
}

fn report_skipped(read: u64, used: u64, skipped: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let skipped_total: u64 = skipped.values().sum();
    if used + skipped_total != read {
        bail!("internal error: used {used} + skipped {skipped_total} != read {read}");
    }
    eprintln!("history records: read {read} = used {used} + skipped {skipped_total}");
    for (reason, n) in skipped {
        eprintln!("  skipped {n}: {reason}");
    }
    Ok(())
}

fn build_dip(
    args: &BuildArgs,
    weights: Vec<Decimal>,
    trim: Trim,
    hospital_levels: &FxHashMap<String, u8>,
    level_names: &[String],
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let types_path = args.procedure_types.as_deref().context("--procedure-types is required for a DIP catalog")?;
    let types = procedure_types(types_path)?;
    let key_of = |case: &Case| dip_key(&types, case);
    let history = read_history(args, hospital_levels, &key_of)?;
    let (read, used, skipped) = (history.read, history.used(), history.skipped.clone());
    let options = DipBuildOptions {
        weights,
        scale: decimal("--scale", &args.scale)?,
        min_cases: args.min_cases,
        coverage: decimal("--coverage", &args.coverage)?,
        trim,
        score_decimals: args.score_decimals.unwrap_or(2),
        grassroots: args.grassroots.clone(),
    };
    let (rows, report) = build_dip_catalog(&history.keys, history.years, level_names, &options).context("no usable history cases")?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut writer = csv::Writer::from_path(args.out.join("catalog.csv"))?;
    let mut header: Vec<String> =
        ["code", "name", "kind", "diagnosis", "procedures", "treatment", "score", "mean_cost", "mean_los", "cases"]
            .map(String::from)
            .to_vec();
    let sorted_levels: Vec<&String> = level_names.iter().collect();
    header.extend(sorted_levels.iter().map(|l| format!("mean_cost_level_{l}")));
    writer.write_record(&header)?;
    for row in &rows {
        let mut record = vec![
            row.code.clone(),
            row.name.clone(),
            row.kind.as_str().to_string(),
            row.diagnosis.clone(),
            row.procedures.clone(),
            row.treatment.as_str().to_string(),
            row.score.to_string(),
            row.mean_cost.to_string(),
            row.mean_los.map(|l| l.to_string()).unwrap_or_default(),
            row.cases.to_string(),
        ];
        record.extend(sorted_levels.iter().map(|l| row.level_mean_cost.get(*l).map(|m| m.to_string()).unwrap_or_default()));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    let types_target = args.out.join("procedure_types.csv");
    let same_file = match (types_path.canonicalize(), types_target.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_file {
        std::fs::copy(types_path, &types_target).context("copying procedure_types.csv")?;
    }
    // The written catalog must load: check it through the same loader the grouper uses.
    DipCatalog::load_dir(&args.out).context("the built catalog does not load")?;
    if !args.quiet {
        report_skipped(read, used, &skipped)?;
        eprintln!(
            "{} combinations; core threshold {} cases (floor {}), core groups cover {}% of cases; {} core/grassroots + {} comprehensive groups; overall weighted mean cost {}; {:.1} s",
            report.combinations,
            report.threshold,
            args.min_cases,
            round_half_up(report.core_coverage * Decimal::from(100), 2),
            report.core_groups,
            report.comprehensive_groups,
            report.overall_mean_cost,
            started.elapsed().as_secs_f64()
        );
        eprintln!("wrote {}", args.out.join("catalog.csv").display());
    }
    Ok(ExitCode::SUCCESS)
}

fn build_drg(
    args: &BuildArgs,
    weights: Vec<Decimal>,
    trim: Trim,
    hospital_levels: &FxHashMap<String, u8>,
    level_names: &[String],
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let tables_dir = args.tables.as_deref().context("--tables is required for DRG weights")?;
    let tables: DrgTableSet = super::load_tables(tables_dir, args.quiet)?;
    let key_of = |case: &Case| drg_key(&tables, case);
    let history = read_history(args, hospital_levels, &key_of)?;
    let (read, used) = (history.read, history.used());
    let decimals = args.score_decimals.unwrap_or(4);
    let (rows, overall) = build_drg_weights(&tables, &history.keys, &history.years, &weights, trim, level_names.len(), decimals)
        .context("no usable history cases")?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut writer = csv::Writer::from_path(&args.out)?;
    let mut header: Vec<String> = ["drg", "name", "rw", "mean_cost", "mean_los", "cases"].map(String::from).to_vec();
    header.extend(level_names.iter().map(|l| format!("mean_cost_level_{l}")));
    writer.write_record(&header)?;
    for row in &rows {
        let mut record = vec![
            row.drg.clone(),
            row.name.clone(),
            row.rw.to_string(),
            row.mean_cost.to_string(),
            row.mean_los.map(|l| l.to_string()).unwrap_or_default(),
            row.cases.to_string(),
        ];
        record.extend(row.level_mean_cost.iter().map(|m| m.map(|m| m.to_string()).unwrap_or_default()));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    if !args.quiet {
        report_skipped(read, used, &history.skipped)?;
        eprintln!(
            "{} DRGs weighted; overall weighted mean cost {}; {:.1} s; wrote {}",
            rows.len(),
            round_half_up(overall, 2),
            started.elapsed().as_secs_f64(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! `dipdrg catalog build`: DIP catalogs and DRG relative weights from weighted history years.
//!
//! History files are read in parallel (one thread per file, two at a time on this machine's two
//! cores would be wasted otherwise); every record is accounted for: used, or skipped with a reason
//! counted in the report.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use dipdrg::catalog_build::{build_dip_catalog, score, weighted_means, Combination, DipBuildOptions, HistoryCase, Trim};
use dipdrg::dip::catalog::{DipCatalog, Treatment};
use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace};
use dipdrg::io::case_csv::CaseReader;
use dipdrg::policy::Policy;
use dipdrg::units::round_half_up;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
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
    #[arg(long, short)]
    quiet: bool,
}

fn decimal(flag: &str, text: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str(text.trim()).with_context(|| format!("{flag}: {text:?} is not a decimal number"))
}

/// Level interning from a policy: hospital → level id, and the level names.
fn levels(policy: Option<&Policy>) -> (FxHashMap<String, u8>, Vec<String>) {
    let Some(policy) = policy else { return (FxHashMap::default(), Vec::new()) };
    let mut names: Vec<String> = policy.hospitals.values().map(|h| h.level.clone()).collect();
    names.sort();
    names.dedup();
    let by_hospital = policy
        .hospitals
        .iter()
        .filter_map(|(id, h)| names.iter().position(|n| *n == h.level).map(|level| (id.clone(), level as u8)))
        .collect();
    (by_hospital, names)
}

/// Per-file result: local keys and skipped records by reason.
struct FileHistory<K> {
    keys: Vec<K>,
    cases: Vec<HistoryCase>,
    skipped: BTreeMap<String, u64>,
    read: u64,
}

fn read_history<K: std::hash::Hash + Eq + Clone>(
    path: &Path,
    hospital_levels: &FxHashMap<String, u8>,
    key_of: &(dyn Fn(&dipdrg::case::Case) -> Result<K, String> + Sync),
) -> anyhow::Result<FileHistory<K>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = CaseReader::new(BufReader::with_capacity(1 << 20, file)).with_context(|| format!("reading {}", path.display()))?;
    let mut interner: FxHashMap<K, u32> = FxHashMap::default();
    let mut history = FileHistory { keys: Vec::new(), cases: Vec::new(), skipped: BTreeMap::new(), read: 0 };
    for record in reader {
        history.read += 1;
        let case = match record {
            Ok(case) => case,
            Err(rejected) => {
                *history.skipped.entry(format!("unreadable ({})", rejected.field)).or_default() += 1;
                continue;
            }
        };
        let Some(cost) = case.total_cost.filter(|c| *c > Decimal::ZERO) else {
            *history.skipped.entry("no total_cost".into()).or_default() += 1;
            continue;
        };
        let key = match key_of(&case) {
            Ok(key) => key,
            Err(reason) => {
                *history.skipped.entry(reason).or_default() += 1;
                continue;
            }
        };
        let next = history.keys.len() as u32;
        let id = *interner.entry(key.clone()).or_insert_with(|| {
            history.keys.push(key);
            next
        });
        let level = case.hospital_id.as_ref().and_then(|h| hospital_levels.get(h)).copied();
        history.cases.push(HistoryCase { key: id, cost, los: case.los, level });
    }
    Ok(history)
}

/// All history files merged: keys interned once, cases per year, skipped records by reason.
struct History<K> {
    keys: Vec<K>,
    years: Vec<Vec<HistoryCase>>,
    skipped: BTreeMap<String, u64>,
    read: u64,
}

/// Reads all files (two threads at a time) and merges their keys into one interner.
fn read_all<K: std::hash::Hash + Eq + Clone + Send>(
    paths: &[PathBuf],
    hospital_levels: &FxHashMap<String, u8>,
    key_of: &(dyn Fn(&dipdrg::case::Case) -> Result<K, String> + Sync),
) -> anyhow::Result<History<K>> {
    let mut results: Vec<Option<anyhow::Result<FileHistory<K>>>> = (0..paths.len()).map(|_| None).collect();
    for (chunk_paths, chunk_results) in paths.chunks(2).zip(results.chunks_mut(2)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk_paths.iter().map(|p| scope.spawn(move || read_history(p, hospital_levels, key_of))).collect();
            for (slot, handle) in chunk_results.iter_mut().zip(handles) {
                *slot = Some(handle.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a history reader thread panicked"))));
            }
        });
    }
    let mut keys: Vec<K> = Vec::new();
    let mut global: FxHashMap<K, u32> = FxHashMap::default();
    let mut years = Vec::new();
    let mut skipped = BTreeMap::new();
    let mut read = 0;
    for result in results.into_iter().flatten() {
        let mut history = result?;
        let remap: Vec<u32> = history
            .keys
            .iter()
            .map(|k| {
                let next = keys.len() as u32;
                *global.entry(k.clone()).or_insert_with(|| {
                    keys.push(k.clone());
                    next
                })
            })
            .collect();
        for case in &mut history.cases {
            case.key = remap[case.key as usize];
        }
        for (reason, n) in history.skipped {
            *skipped.entry(reason).or_default() += n;
        }
        read += history.read;
        years.push(history.cases);
    }
    Ok(History { keys, years, skipped, read })
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
    let weights: Vec<Decimal> = if args.weights.is_empty() {
        vec![Decimal::ONE; args.history.len()]
    } else {
        args.weights.iter().map(|w| decimal("--weights", w)).collect::<anyhow::Result<_>>()?
    };
    if weights.len() != args.history.len() {
        bail!("--weights has {} values for {} history files", weights.len(), args.history.len());
    }
    if weights.iter().any(|w| *w < Decimal::ZERO) || weights.iter().all(|w| w.is_zero()) {
        bail!("--weights must not be negative and not all zero");
    }
    let trim = Trim::parse(&args.trim).with_context(|| format!("--trim {:?}: expected none, sd:K or iqr:K", args.trim))?;
    let policy = args.policy.as_deref().map(Policy::load).transpose()?;
    let (hospital_levels, level_names) = levels(policy.as_ref());
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
    let key_of = |case: &dipdrg::case::Case| -> Result<Combination, String> {
        let procedures: Vec<(String, Option<Treatment>)> = case.procedures.iter().map(|p| (p.clone(), types.get(p).copied())).collect();
        Combination::of(case.principal_diagnosis().unwrap_or(""), &procedures)
            .ok_or_else(|| "principal diagnosis has no category".to_string())
    };
    let History { keys: combinations, years, skipped, read } = read_all(&args.history, hospital_levels, &key_of)?;
    let used: u64 = years.iter().map(|y| y.len() as u64).sum();
    let options = DipBuildOptions {
        weights,
        scale: decimal("--scale", &args.scale)?,
        min_cases: args.min_cases,
        coverage: decimal("--coverage", &args.coverage)?,
        trim,
        score_decimals: args.score_decimals.unwrap_or(2),
        grassroots: args.grassroots.clone(),
    };
    let (rows, report) = build_dip_catalog(&combinations, years, level_names, &options).context("no usable history cases")?;
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
    let key_of = |case: &dipdrg::case::Case| -> Result<usize, String> {
        let result = group(&tables, case, MappingMode::Map, &mut NoTrace);
        result.drg.ok_or_else(|| format!("not grouped to a DRG ({})", result.status.as_str()))
    };
    let History { keys: drg_keys, years, skipped, read } = read_all(&args.history, hospital_levels, &key_of)?;
    let used: u64 = years.iter().map(|y| y.len() as u64).sum();
    let (means, overall) = weighted_means(&years, &weights, trim);
    let overall = overall.context("no usable history cases")?;
    let decimals = args.score_decimals.unwrap_or(4);
    let mut rows: Vec<(usize, &dipdrg::catalog_build::GroupMeans)> = means.iter().map(|(k, m)| (drg_keys[*k as usize], m)).collect();
    rows.sort_by_key(|(drg, _)| tables.drgs[*drg].code.clone());
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut writer = csv::Writer::from_path(&args.out)?;
    let mut header: Vec<String> = ["drg", "name", "rw", "mean_cost", "mean_los", "cases"].map(String::from).to_vec();
    header.extend(level_names.iter().map(|l| format!("mean_cost_level_{l}")));
    writer.write_record(&header)?;
    for (drg, group_means) in &rows {
        let mut record = vec![
            tables.drgs[*drg].code.clone(),
            tables.drgs[*drg].name.clone(),
            score(group_means.mean_cost, overall, Decimal::ONE, decimals).to_string(),
            round_half_up(group_means.mean_cost, 2).to_string(),
            group_means.mean_los.map(|l| round_half_up(l, 2).to_string()).unwrap_or_default(),
            group_means.cases.to_string(),
        ];
        record.extend(
            (0..level_names.len())
                .map(|l| group_means.level_mean_cost.get(&(l as u8)).map(|m| round_half_up(*m, 2).to_string()).unwrap_or_default()),
        );
        writer.write_record(&record)?;
    }
    writer.flush()?;
    if !args.quiet {
        report_skipped(read, used, &skipped)?;
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

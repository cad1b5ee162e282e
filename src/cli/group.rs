//! `dipdrg group`: group a case file with a DRG table set.
//!
//! Every record ends in exactly one of two files: the output (one row per case the scheme judged,
//! whatever its status) or the rejects file (records that could not be read as a case, with the
//! record number, field, value and reason). The summary checks accepted + rejected = submitted.

use anyhow::{bail, Context};
use clap::Args;
use dipdrg::drg::trace::render;
use dipdrg::drg::{group, GroupStatus, MappingMode, NoTrace, Trace};
use dipdrg::io::case_csv::CaseReader;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct GroupArgs {
    /// DRG table-set directory.
    #[arg(long)]
    tables: PathBuf,
    /// Case CSV (see README for the columns; extra columns are ignored).
    #[arg(long)]
    input: PathBuf,
    /// Output CSV: case_id, status, mdc, adrg, drg, drg_name, detail (and trace with --trace).
    #[arg(long)]
    output: PathBuf,
    /// Rejected records CSV [default: next to the output, `<output stem>.rejects.csv`].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Add a `trace` column: every grouping step and why.
    #[arg(long)]
    trace: bool,
    /// Use codes as written instead of mapping them through the table set's code maps.
    #[arg(long)]
    no_map: bool,
    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: GroupArgs) -> anyhow::Result<ExitCode> {
    let tables = super::load_tables(&args.tables, args.quiet)?;
    let mode = if args.no_map { MappingMode::NoMap } else { MappingMode::Map };
    let input = File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let input_size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader =
        CaseReader::new(BufReader::with_capacity(1 << 20, input)).with_context(|| format!("reading {}", args.input.display()))?;
    let rejects_path = args.rejects.clone().unwrap_or_else(|| args.output.with_extension("rejects.csv"));
    if rejects_path == args.output {
        bail!("--rejects must differ from --output");
    }
    let create = |path: &PathBuf| -> anyhow::Result<csv::Writer<BufWriter<File>>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file)))
    };
    let mut output = create(&args.output)?;
    let mut rejects = create(&rejects_path)?;
    let mut header = vec!["case_id", "status", "mdc", "adrg", "drg", "drg_name", "detail"];
    if args.trace {
        header.push("trace");
    }
    output.write_record(&header)?;
    rejects.write_record(["record", "line", "case_id", "field", "value", "reason"])?;

    let progress =
        if args.quiet { ProgressBar::hidden() } else { ProgressBar::with_draw_target(Some(input_size), ProgressDrawTarget::stderr()) };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut submitted = 0u64;
    let mut accepted = 0u64;
    let mut by_status: BTreeMap<GroupStatus, u64> = BTreeMap::new();
    let mut by_mdc: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejected_by_field: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut trace = Trace::default();
    while let Some(item) = reader.next() {
        submitted += 1;
        if submitted % 65_536 == 0 {
            progress.set_position(reader.bytes_read());
        }
        let case = match item {
            Ok(case) => case,
            Err(rejected) => {
                *rejected_by_field.entry(rejected.field.clone()).or_default() += 1;
                rejects.write_record([
                    rejected.record.to_string(),
                    rejected.line.to_string(),
                    rejected.case_id.unwrap_or_default(),
                    rejected.field,
                    rejected.value,
                    rejected.reason,
                ])?;
                continue;
            }
        };
        if let Some(first) = first_seen.get(&case.case_id) {
            *rejected_by_field.entry("case_id".to_string()).or_default() += 1;
            rejects.write_record([
                submitted.to_string(),
                String::new(),
                case.case_id.clone(),
                "case_id".to_string(),
                case.case_id.clone(),
                format!("duplicates the case_id of record {first}"),
            ])?;
            continue;
        }
        first_seen.insert(case.case_id.clone(), submitted);
        accepted += 1;
        let result = if args.trace {
            trace.steps.clear();
            group(&tables, &case, mode, &mut trace)
        } else {
            group(&tables, &case, mode, &mut NoTrace)
        };
        *by_status.entry(result.status).or_default() += 1;
        if result.status == GroupStatus::Success {
            *by_mdc.entry(result.mdc_code(&tables).to_string()).or_default() += 1;
        }
        let detail = result.describe(&tables, &case);
        let mut record = vec![
            case.case_id.as_str(),
            result.status.as_str(),
            result.mdc_code(&tables),
            result.adrg_code(&tables),
            result.drg_code(&tables),
            result.drg_name(&tables),
            detail.as_str(),
        ];
        let rendered;
        if args.trace {
            rendered = render(&trace.steps, &tables, &case).join("; ");
            record.push(rendered.as_str());
        }
        output.write_record(&record)?;
    }
    progress.finish_and_clear();
    output.flush()?;
    rejects.flush()?;
    let rejected: u64 = rejected_by_field.values().sum();
    if accepted + rejected != submitted {
        bail!("internal error: accepted {accepted} + rejected {rejected} != submitted {submitted}");
    }
    if !args.quiet {
        eprintln!("submitted {submitted} = accepted {accepted} + rejected {rejected}");
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
        eprintln!("status: {}", statuses.join(", "));
        let mdcs: Vec<String> = by_mdc.iter().map(|(m, n)| format!("{m} {n}")).collect();
        eprintln!("grouped cases per MDC: {}", mdcs.join(", "));
        if rejected > 0 {
            let fields: Vec<String> = rejected_by_field.iter().map(|(f, n)| format!("{f} {n}")).collect();
            eprintln!("rejected by field: {} (reasons in {})", fields.join(", "), rejects_path.display());
        }
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

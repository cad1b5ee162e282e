//! `dipdrg group`: group a case file with a DRG table set.
//!
//! Every record ends in exactly one of two files: the output (one row per case the scheme judged,
//! whatever its status) or the rejects file (records that could not be read as a case, with the
//! record number, field, value and reason). The summary checks accepted + rejected = submitted.
//! An adapter: the grouping run is [`dipdrg::group_run`] (parallel executor, or `--executor reference`).

use super::Executor;
use anyhow::{bail, Context};
use clap::Args;
use dipdrg::drg::MappingMode;
use dipdrg::group_run::{self, GroupOptions};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
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
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "parallel")]
    executor: Executor,
    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: GroupArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let tables = super::load_tables(&args.tables, args.quiet)?;
    let options = GroupOptions { mode: if args.no_map { MappingMode::NoMap } else { MappingMode::Map }, trace: args.trace };
    let rejects_path = args.rejects.clone().unwrap_or_else(|| args.output.with_extension("rejects.csv"));
    if rejects_path == args.output {
        bail!("--rejects must differ from --output");
    }
    let (input, layout, size_hint) = super::open_case_file(&args.input)?;
    let outcome = match args.executor {
        Executor::Parallel => group_run::parallel(
            &tables,
            options,
            input,
            &layout,
            size_hint,
            super::worker_threads(args.threads),
            dipdrg::io::chunks::CHUNK_BYTES,
        )
        .with_context(|| format!("reading {}", args.input.display()))?,
        Executor::Reference => group_run::reference(&tables, options, super::records_after_header(input, layout)),
    };
    let rejected = outcome.rejects.len() as u64;
    if outcome.accepted + rejected != outcome.submitted {
        bail!("internal error: accepted {} + rejected {rejected} != submitted {}", outcome.accepted, outcome.submitted);
    }
    let write = |path: &PathBuf, header: &str, body: &[u8]| -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(header.as_bytes()).and_then(|()| file.write_all(body)).with_context(|| format!("writing {}", path.display()))
    };
    write(&args.output, options.header(), &outcome.rows)?;
    write(&rejects_path, group_run::REJECTS_HEADER, &outcome.rejects_csv())?;
    if !args.quiet {
        eprintln!(
            "submitted {} = accepted {} + rejected {rejected} in {:.2} s",
            outcome.submitted,
            outcome.accepted,
            started.elapsed().as_secs_f64()
        );
        let statuses: Vec<String> = outcome.by_status.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
        eprintln!("status: {}", statuses.join(", "));
        let mdcs: Vec<String> = outcome.by_mdc.iter().map(|(m, n)| format!("{m} {n}")).collect();
        eprintln!("grouped cases per MDC: {}", mdcs.join(", "));
        if rejected > 0 {
            let mut by_field: BTreeMap<&str, u64> = BTreeMap::new();
            for r in &outcome.rejects {
                *by_field.entry(r.field.as_str()).or_default() += 1;
            }
            let fields: Vec<String> = by_field.iter().map(|(f, n)| format!("{f} {n}")).collect();
            eprintln!("rejected by field: {} (reasons in {})", fields.join(", "), rejects_path.display());
        }
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

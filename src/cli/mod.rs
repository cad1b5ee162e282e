//! Subcommands of the `dipdrg` binary.

pub mod audit;
pub mod benefits;
pub mod catalog;
pub mod gen;
pub mod group;
pub mod policy;
pub mod serve;
pub mod settle;
pub mod tables;

use anyhow::Context;
use dipdrg::drg::lint::{lint, Level};
use dipdrg::drg::DrgTableSet;
use std::path::Path;
use std::time::Instant;

/// A case file opened for chunked reading.
pub type CaseInput = Box<dyn std::io::BufRead + Send>;

/// Opens a case file — CSV, or Parquet (recognised by its magic bytes; build with
/// `--features parquet`), read as the same CSV text — for chunked reading: the reader
/// positioned after the header, the header's layout, and the CSV file's length (`None` for
/// Parquet).
pub fn open_case_file(path: &Path) -> anyhow::Result<(CaseInput, dipdrg::io::case_csv::Layout, Option<u64>)> {
    use std::io::{BufRead, Read};
    let mut magic = [0u8; 4];
    let is_parquet = std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_exact(&mut magic)
        .is_ok_and(|()| &magic == b"PAR1");
    // With the CSV file's length, for the chunked readers; none for Parquet, whose CSV text is
    // longer than the file.
    let (mut input, size_hint): (CaseInput, Option<u64>) = if is_parquet {
        #[cfg(feature = "parquet")]
        {
            let reader = dipdrg::io::parquet::ParquetAsCsv::open(path).with_context(|| format!("opening {}", path.display()))?;
            (Box::new(std::io::BufReader::with_capacity(1 << 20, reader)), None)
        }
        #[cfg(not(feature = "parquet"))]
        anyhow::bail!("{} is a Parquet file: this build reads CSV only (build with --features parquet)", path.display())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let length = file.metadata().ok().map(|m| m.len());
        (Box::new(std::io::BufReader::with_capacity(1 << 20, file)), length)
    };
    let mut header = Vec::new();
    input.read_until(b'\n', &mut header).with_context(|| format!("reading {}", path.display()))?;
    let layout = dipdrg::io::case_csv::Layout::from_header_line(&header).with_context(|| format!("reading {}", path.display()))?;
    Ok((input, layout, size_hint))
}

/// Which executor runs a batch (`group`, `audit`, `catalog build`): both give byte-identical
/// outputs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Debug)]
pub enum Executor {
    /// Chunked parallel reading and per-case work on worker threads (the default).
    Parallel,
    /// One thread, the plainest code (to cross-check a run).
    Reference,
}

/// The records of a case file opened by [`open_case_file`], one at a time, for a reference
/// executor. The header, already read, was line 1: a headerless reader counts from the next.
pub fn records_after_header(
    input: CaseInput,
    layout: dipdrg::io::case_csv::Layout,
) -> impl Iterator<Item = Result<dipdrg::case::Case, dipdrg::io::case_csv::RejectedRecord>> {
    dipdrg::io::case_csv::CaseReader::headerless(input, layout, 0).map(|record| {
        record.map_err(|mut rejected| {
            rejected.line += 1;
            rejected
        })
    })
}

/// Worker threads: as asked, else one per core.
pub fn worker_threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Loads a DRG table set and prints one line about it (and its lint warnings) to stderr.
pub fn load_tables(dir: &Path, quiet: bool) -> anyhow::Result<DrgTableSet> {
    let started = Instant::now();
    let tables = DrgTableSet::load_dir(dir).with_context(|| format!("loading table set {}", dir.display()))?;
    let elapsed = started.elapsed();
    let findings = lint(&tables);
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    if !quiet {
        eprintln!(
            "table set {} (fingerprint {}): {} MDCs, {} ADRGs, {} DRGs, {} codes; loaded in {:.2} s; {} unreachable-entry warnings",
            tables.name,
            tables.fingerprint,
            tables.mdcs.len(),
            tables.adrgs.len(),
            tables.drgs.len(),
            tables.code_count() - 1,
            elapsed.as_secs_f64(),
            warnings
        );
        for finding in findings.iter().filter(|f| f.level == Level::Warning) {
            eprintln!("  {finding}");
        }
    }
    Ok(tables)
}

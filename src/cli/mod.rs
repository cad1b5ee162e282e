//! Subcommands of the `dipdrg` binary.

pub mod audit;
pub mod catalog;
pub mod gen;
pub mod group;
pub mod serve;
pub mod settle;
pub mod tables;

use anyhow::Context;
use dipdrg::drg::lint::{lint, Level};
use dipdrg::drg::DrgTableSet;
use std::path::Path;
use std::time::Instant;

/// Opens a case CSV for chunked reading: the reader positioned after the header, and the
/// header's layout.
pub fn open_case_file(path: &Path) -> anyhow::Result<(std::io::BufReader<std::fs::File>, dipdrg::io::case_csv::Layout)> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = Vec::new();
    input.read_until(b'\n', &mut header).with_context(|| format!("reading {}", path.display()))?;
    let layout = dipdrg::io::case_csv::Layout::from_header_line(&header).with_context(|| format!("reading {}", path.display()))?;
    Ok((input, layout))
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

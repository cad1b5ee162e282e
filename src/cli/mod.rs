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

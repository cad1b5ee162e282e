//! Memory of a process holding every reference table set at once, as a server serving all the
//! regional schemes would: loads each scheme folder of `../shared/reference/` (or the directory
//! given), keeps them all, and prints the load time of each and the process's resident memory
//! (Linux `VmRSS`, and the peak `VmHWM`) before and after.
//!
//! `cargo run --release --example all_schemes_memory [-- REFERENCE_DIR]`

use dipdrg::drg::DrgTableSet;
use std::path::PathBuf;
use std::time::Instant;

/// A `/proc/self/status` line's value in MiB (Linux only; `None` elsewhere).
fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let root =
        std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    let mut folders: Vec<PathBuf> =
        std::fs::read_dir(&root)?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("mdc.csv").is_file()).collect();
    folders.sort();
    let show = |label: &str| {
        let mib = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1} MiB"));
        println!("{label}: resident {}, peak {}", mib(status_mib("VmRSS:")), mib(status_mib("VmHWM:")));
    };
    show("before loading");
    let mut held = Vec::with_capacity(folders.len());
    for dir in &folders {
        let started = Instant::now();
        let tables = DrgTableSet::load_dir(dir)?;
        println!(
            "{:<16} {:>6.1} ms  {} MDCs, {} rules, {} DRGs, {} codes",
            tables.name,
            started.elapsed().as_secs_f64() * 1e3,
            tables.mdcs.len(),
            tables.rules.len(),
            tables.drgs.len(),
            tables.code_count()
        );
        held.push(tables);
    }
    show(&format!("holding all {} table sets", held.len()));
    Ok(())
}

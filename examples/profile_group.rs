//! Groups a reference case file repeatedly, for profilers: `cargo run --release --example
//! profile_group -- DIR ROUNDS`.
use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace};
use dipdrg::io::case_csv::CaseReader;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "grouper-tables/demo".into()));
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(50);
    let tables = match DrgTableSet::load_dir(&dir) {
        Ok(tables) => tables,
        Err(e) => return eprintln!("{e}"),
    };
    let cases_file = ["cases-visible.csv", "cases.csv"].iter().map(|f| dir.join(f)).find(|p| p.exists());
    let Some(cases_file) = cases_file else { return eprintln!("no cases file in {}", dir.display()) };
    let Ok(file) = std::fs::File::open(&cases_file) else { return eprintln!("cannot open {}", cases_file.display()) };
    let Ok(reader) = CaseReader::new(file) else { return eprintln!("bad header") };
    let cases: Vec<_> = reader.filter_map(Result::ok).collect();
    let started = std::time::Instant::now();
    let mut grouped = 0usize;
    for _ in 0..rounds {
        for case in &cases {
            grouped += group(&tables, case, MappingMode::Map, &mut NoTrace).drg.is_some() as usize;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{} cases in {elapsed:.3} s: {:.0} cases/s ({grouped} with a DRG)",
        cases.len() * rounds,
        (cases.len() * rounds) as f64 / elapsed
    );
}

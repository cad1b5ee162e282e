//! Grouping throughput on parsed cases in memory, one core, for every reference table set (and
//! the demo set), plus table-set load time.
//!
//! Run: `cargo bench --bench grouping` (reads every scheme folder of `../shared/reference/`;
//! without it only the demo set is measured). Throughput is reported as cases per second
//! ("elem/s"). One scheme: `cargo bench --bench grouping -- grouping/wuxi-2022`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dipdrg::case::Case;
use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace};
use dipdrg::io::case_csv::CaseReader;
use std::path::{Path, PathBuf};

fn table_sets() -> Vec<(String, PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sets = vec![("demo".to_string(), root.join("grouper-tables/demo"), root.join("grouper-tables/demo/cases.csv"))];
    let reference = root.join("../shared/reference");
    let Ok(entries) = std::fs::read_dir(&reference) else {
        eprintln!("skipping the reference schemes: {} is absent", reference.display());
        return sets;
    };
    let mut schemes: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("mdc.csv").is_file()).collect();
    schemes.sort();
    for dir in schemes {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        sets.push((name, dir.clone(), dir.join("cases-visible.csv")));
    }
    sets
}

fn read_cases(path: &Path) -> Vec<Case> {
    let file = std::fs::File::open(path).expect("cases file");
    CaseReader::new(file).expect("header").filter_map(Result::ok).collect()
}

fn grouping(c: &mut Criterion) {
    let mut bench = c.benchmark_group("grouping");
    for (name, dir, cases_path) in table_sets() {
        let tables = DrgTableSet::load_dir(&dir).expect("tables");
        let cases = read_cases(&cases_path);
        bench.throughput(Throughput::Elements(cases.len() as u64));
        bench.bench_function(&name, |b| {
            b.iter(|| {
                let mut grouped = 0usize;
                for case in &cases {
                    let result = group(&tables, black_box(case), MappingMode::Map, &mut NoTrace);
                    grouped += result.drg.is_some() as usize;
                }
                grouped
            })
        });
    }
    bench.finish();
}

fn table_load(c: &mut Criterion) {
    let mut bench = c.benchmark_group("table_load");
    bench.sample_size(10);
    for (name, dir, _) in table_sets() {
        bench.bench_function(&name, |b| b.iter(|| DrgTableSet::load_dir(&dir).expect("tables")));
    }
    bench.finish();
}

/// DIP grouping plus case points (and DRG grouping plus points) through the shared scoring step,
/// on cases generated in memory from the demo table set.
fn scoring(c: &mut Criterion) {
    use dipdrg::generate::{Generator, Options};
    use dipdrg::policy::Policy;
    use dipdrg::scoring::Scorer;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let demo = DrgTableSet::load_dir(&root.join("grouper-tables/demo")).expect("demo tables");
    let options = Options { cases: 50_000, hospitals: 5, year: 2026, seed: 42, violation_rate: 0.02, case_prefix: "B".into() };
    let cases: Vec<Case> = Generator::new(&demo, options).map(|(case, _)| case).collect();
    let mut bench = c.benchmark_group("points");
    bench.throughput(Throughput::Elements(cases.len() as u64));
    for (name, policy_file, tables) in [
        ("dip", "policies/demo-city-2026-dip.toml", "grouper-tables/demo-dip"),
        ("drg", "policies/demo-city-2026-drg.toml", "grouper-tables/demo"),
    ] {
        let policy_path = root.join(policy_file);
        let policy = Policy::load(&policy_path).expect("policy");
        let scorer = Scorer::load(&policy, &policy_path, &root.join(tables)).expect("scorer");
        bench.bench_function(name, |b| {
            b.iter(|| {
                let mut total = rust_decimal::Decimal::ZERO;
                for case in &cases {
                    total += scorer.assess(&policy, black_box(case)).points.points.value();
                }
                total
            })
        });
    }
    bench.finish();
}

criterion_group!(benches, grouping, table_load, scoring);
criterion_main!(benches);

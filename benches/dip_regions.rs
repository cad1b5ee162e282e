//! DIP grouping + pricing under the eight cities' regional rules (`policies/dip-regions/`), one
//! core, through the shared scoring step (`Scorer::assess`).
//!
//! Run: `cargo bench --bench dip_regions`. Throughput is cases per second ("elem/s"). Each city
//! runs its own illustrative catalog on its worked cases, varied (cost ratio 0.3–8, both funds,
//! local and remote insured, every month) to 20,000 cases; Jining — the most complex policy
//! (code maps, severity families, level split, blank group by cost ratio, its own outlier
//! pricing, month and insured-region overrides) — also runs the demo DIP catalog on 50,000
//! generated cases, and the demo policy on the same cases is the baseline.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dipdrg::case::{Case, Date, Fund};
use dipdrg::io::case_csv::CaseReader;
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_cases(path: &Path) -> Vec<Case> {
    let file = std::fs::File::open(path).expect("cases file");
    CaseReader::new(file).expect("header").filter_map(Result::ok).collect()
}

/// The worked cases varied in cost, fund, insured region and month, `n` in all.
fn varied(base: &[Case], n: usize) -> Vec<Case> {
    let ratios = [3, 6, 10, 15, 25, 40, 60, 80];
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        let mut case = base[i % base.len()].clone();
        let ratio = Decimal::new(ratios[(i / base.len()) % ratios.len()], 1);
        case.case_id = format!("B{i}");
        case.total_cost = case.total_cost.map(|c| c * ratio);
        case.fund = Some(if i % 2 == 0 { Fund::Employee } else { Fund::Resident });
        case.insured_region = Some(if i % 3 == 0 { "370100" } else { "370811" }.to_string());
        let month = (i % 12) as u32 + 1;
        case.discharge_date = Date::from_ymd(2023, month, 15);
        case.admission_date = case.discharge_date.map(|d| d.add_days(-(case.los.unwrap_or(5) as i32)));
        out.push(case);
        i += 1;
    }
    out
}

fn run(c: &mut Criterion, bench_name: &str, policy_path: &Path, tables: &Path, cases: &[Case]) {
    let policy = Policy::load(policy_path).expect("policy");
    let scorer = Scorer::load(&policy, policy_path, tables).expect("scorer");
    let mut bench = c.benchmark_group("dip_regions");
    bench.throughput(Throughput::Elements(cases.len() as u64));
    bench.bench_function(bench_name, |b| {
        b.iter(|| {
            let mut total = Decimal::ZERO;
            for case in cases {
                total += scorer.assess(&policy, black_box(case)).points.points.value();
            }
            total
        })
    });
    bench.finish();
}

fn cities(c: &mut Criterion) {
    let dir = root().join("policies/dip-regions");
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("policies/dip-regions").filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    names.sort();
    for city in names {
        let cases = varied(&read_cases(&city.join("cases.csv")), 20_000);
        let name = city.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        run(c, &name, &city.join("policy.toml"), &city.join("catalog"), &cases);
    }
}

fn jining_on_the_demo_catalog(c: &mut Criterion) {
    use dipdrg::drg::DrgTableSet;
    use dipdrg::generate::{Generator, Options};
    let demo = DrgTableSet::load_dir(&root().join("grouper-tables/demo")).expect("demo tables");
    let options = Options { cases: 50_000, hospitals: 5, year: 2023, seed: 42, violation_rate: 0.02, case_prefix: "B".into() };
    let mut cases: Vec<Case> = Generator::new(&demo, options).map(|(case, _)| case).collect();
    for (i, case) in cases.iter_mut().enumerate() {
        // Jining's policy lists H001; remote insured every third case.
        case.hospital_id = Some("H001".into());
        case.insured_region = Some(if i % 3 == 0 { "370100" } else { "370811" }.to_string());
    }
    let catalog = root().join("grouper-tables/demo-dip");
    run(c, "370800-jining-2023/demo-catalog", &root().join("policies/dip-regions/370800-jining-2023/policy.toml"), &catalog, &cases);
    run(c, "demo-policy/demo-catalog", &root().join("policies/demo-city-2026-dip.toml"), &catalog, &cases);
}

criterion_group!(benches, cities, jining_on_the_demo_catalog);
criterion_main!(benches);

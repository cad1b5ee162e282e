//! Settlement and audit on in-memory data, one thread: the year-end computation over assessed
//! cases, largest-remainder allocation, and the audit detectors.
//!
//! Run: `cargo bench --bench settlement`. End-to-end figures from CSV (10M cases) use the
//! documented commands in README.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dipdrg::audit::{audit, AuditCase};
use dipdrg::case::Fund;
use dipdrg::drg::DrgTableSet;
use dipdrg::generate::{Generator, Options, Rng};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use dipdrg::settlement::{annual, largest_remainder, CaseTerms, SettlementCase};
use rust_decimal::Decimal;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settlement(c: &mut Criterion) {
    let policy = Policy::load(&root().join("policies/demo-city-2026-dip.toml")).expect("policy");
    let hospital_ids: Vec<String> = policy.hospitals.keys().cloned().collect();
    let mut rng = Rng::new(7);
    let cases: Vec<SettlementCase> = (0..1_000_000)
        .map(|i| {
            let hospital = rng.below(hospital_ids.len()) as u32;
            let fund = if rng.chance(0.4) { Fund::Employee } else { Fund::Resident };
            let month = 1 + rng.below(12) as u32;
            let terms = CaseTerms {
                points: Decimal::new(100 + rng.below(300_000) as i64, 2),
                penalty_multiple: (i % 500 == 0).then(|| Decimal::from(3)),
                group_score: Some(Decimal::ONE_HUNDRED),
                ..CaseTerms::default()
            };
            let total_cost = Decimal::new(100_000 + rng.below(5_000_000) as i64, 2);
            SettlementCase::new(hospital, fund, month, terms, total_cost, Decimal::new(rng.below(1_000_000) as i64, 2))
        })
        .collect();
    let mut bench = c.benchmark_group("settlement");
    bench.sample_size(10);
    bench.throughput(Throughput::Elements(cases.len() as u64));
    bench.bench_function("annual_1m_cases", |b| b.iter(|| annual(&policy, black_box(&cases), &hospital_ids).expect("settles")));
    let weights: Vec<Decimal> = cases.iter().map(|c| c.counted_points()).collect();
    bench.bench_function("largest_remainder_1m", |b| b.iter(|| largest_remainder(black_box(12_345_678_901), &weights).expect("allocates")));
    bench.finish();
}

fn audit_detectors(c: &mut Criterion) {
    let tables = DrgTableSet::load_dir(&root().join("grouper-tables/demo")).expect("tables");
    let options = Options { cases: 300_000, hospitals: 50, year: 2026, seed: 3, violation_rate: 0.02, case_prefix: "A".into() };
    let generator = Generator::new(&tables, options);
    let outpatient = generator.outpatient_families();
    let generated: Vec<_> = generator.map(|(case, _)| case).collect();
    let policy_path = root().join("policies/demo-city-2026-drg.toml");
    let mut policy = Policy::load(&policy_path).expect("policy");
    policy.audit.outpatient_family_prefixes = outpatient;
    let scorer = Scorer::load(&policy, &policy_path, &root().join("grouper-tables/demo")).expect("scorer");
    let cases: Vec<AuditCase> = generated.iter().map(|case| AuditCase::new(case, &scorer.assess(&policy, case))).collect();
    let mut bench = c.benchmark_group("audit");
    bench.sample_size(10);
    bench.throughput(Throughput::Elements(cases.len() as u64));
    bench.bench_function("detectors_300k_cases", |b| b.iter(|| audit(&policy.audit, black_box(&cases)).len()));
    bench.finish();
}

criterion_group!(benches, settlement, audit_detectors);
criterion_main!(benches);

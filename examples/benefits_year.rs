//! Times one-bill settlement of a synthetic year: `cargo run --release --example benefits_year
//! [discharges] [patients]` (default 10M discharges of 3M patients), reporting peak memory.

use dipdrg::benefits::{settle_year, BenefitsPolicy, Discharge};
use dipdrg::case::Date;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::time::Instant;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string()))
        .map_or("unknown".into(), |kb| format!("{} MiB", kb.parse::<u64>().unwrap_or(0) / 1024))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let discharges: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let patients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3_000_000);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/demo-city-2026-benefits.toml")).unwrap();
    let policy = BenefitsPolicy::from_toml(&text).unwrap();
    let categories = ["", "", "", "", "", "", "", "特困", "低保", "低保边缘", "因病致贫"];
    let kinds = ["1", "2", "3", "grassroots"];
    let start = Date::from_ymd(2026, 1, 1).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let cases: Vec<Discharge> = (0..discharges)
        .map(|i| {
            let patient = (next() % patients as u64) as usize;
            Discharge {
                case_id: format!("C{i:08}"),
                patient_id: format!("P{patient:07}"),
                discharge_date: start.add_days((next() % 365) as i32),
                hospital_kind: kinds[(next() % 4) as usize].into(),
                covered_cost: Decimal::new((next() % 5_000_000) as i64 + 100_000, 2),
                self_paid: Decimal::new((next() % 100_000) as i64, 2),
                category: categories[patient % categories.len()].into(),
            }
        })
        .collect();
    eprintln!("generated {discharges} discharges of up to {patients} patients; peak {}", peak_rss());
    let started = Instant::now();
    let years = settle_year(&policy, &BTreeMap::new(), &cases, false).unwrap();
    let elapsed = started.elapsed();
    let paid: Decimal = years.iter().map(|y| y.totals.basic_paid + y.totals.catastrophic_paid).sum();
    println!(
        "settled {discharges} discharges of {} patients in {:.2} s (one thread); insurance paid {paid}; peak memory {}",
        years.len(),
        elapsed.as_secs_f64(),
        peak_rss()
    );
}

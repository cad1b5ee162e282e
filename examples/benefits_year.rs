//! Times one-bill settlement of a synthetic year (the issue 17 bench floor: 10M discharges of 3M
//! patients in ≤ 10 s):
//!
//! `cargo run --release --example benefits_year -- [DISCHARGES] [PATIENTS] [THREADS] [RUNS] [reference]`
//!
//! Defaults: 10M discharges of 3M patients, all available threads, 5 runs of the fast path
//! (`settle_year_fast`), median quoted; with `reference`, the plain one-thread `settle_year` is
//! timed once on the same data (A/B in one run) and the two results are checked equal. Peak memory
//! (VmHWM) is reported after generation and at the end.

use dipdrg::benefits::{settle_year, settle_year_fast, BenefitsPolicy, Discharge};
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

/// CPU seconds (user + system) of this process so far, from /proc/self/stat: on a shared machine
/// the wall time says as much about the neighbours as about the code.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the 14th and 15th fields; `fields` starts at the 3rd. 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// The synthetic year: patients drawn uniformly, dates over the year, hospital kinds and
/// categories (one per person) spread over the policy's.
fn synthetic_year(discharges: usize, patients: usize) -> Vec<Discharge> {
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
    (0..discharges)
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
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let discharges = number(0, 10_000_000);
    let patients = number(1, 3_000_000);
    let threads = number(2, std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runs = number(3, 5).max(1);
    let reference = args.iter().any(|a| a == "reference");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/demo-city-2026-benefits.toml")).unwrap();
    let policy = BenefitsPolicy::from_toml(&text).unwrap();
    let cases = synthetic_year(discharges, patients);
    eprintln!("generated {discharges} discharges of up to {patients} patients; peak {}", peak_rss());

    let mut times = Vec::new();
    let mut last = None;
    for run in 0..runs {
        drop(last.take());
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let year = settle_year_fast(&policy, &BTreeMap::new(), &cases, threads).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!("fast run {}: {elapsed:.2} s wall, {:.2} s CPU", run + 1, cpu_seconds() - cpu);
        times.push(elapsed);
        last = Some(year);
    }
    times.sort_by(f64::total_cmp);
    let year = last.unwrap();
    let paid: i128 = year.patients().map(|(p, _)| p.totals.basic_paid + p.totals.catastrophic_paid).sum();
    println!(
        "fast: settled {discharges} discharges of {} patients on {threads} threads: median {:.2} s of {runs} runs (min {:.2}, max {:.2}); insurance paid {}; peak memory {}",
        year.len(),
        times[runs / 2],
        times[0],
        times[runs - 1],
        Decimal::from_i128_with_scale(paid, 2),
        peak_rss()
    );
    if reference {
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let years = settle_year(&policy, &BTreeMap::new(), &cases, false).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let same = year.to_patient_years(&policy, &cases) == years;
        println!(
            "reference: {elapsed:.2} s wall ({cpu:.2} s CPU) on one thread; results equal to the fast path: {same}; peak memory {}",
            peak_rss()
        );
        assert!(same, "the fast path differs from the reference");
    }
}

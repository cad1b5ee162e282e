//! Times the per-case stages of a settlement read on one thread:
//! `cargo run --release --example assess_stages -- POLICY TABLES FILE`.
//! Reports CSV → case model (the csv-crate reader, and the chunk reader `settle` uses), then
//! grouping and pricing (Scorer::assess), in cases/s.
use dipdrg::case::Case;
use dipdrg::io::case_csv::{CaseReader, ChunkReader, Layout};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy_path, tables, file] = &args[..] else { return eprintln!("usage: assess_stages POLICY TABLES FILE") };
    let Ok(policy) = Policy::load(Path::new(policy_path)) else { return eprintln!("bad policy") };
    let Ok(scorer) = Scorer::load(&policy, Path::new(policy_path), Path::new(tables)) else { return eprintln!("bad tables") };
    let Ok(bytes) = std::fs::read(file) else { return eprintln!("cannot read {file}") };
    let mut cases = Vec::new();
    for pass in 0..2 {
        let started = Instant::now();
        let Ok(mut reader) = CaseReader::new(&bytes[..]) else { return eprintln!("bad header") };
        let mut case = Case::default();
        let mut n = 0u64;
        while let Some(item) = reader.next_into(&mut case) {
            if item.is_ok() {
                n += 1;
                if pass == 0 {
                    cases.push(case.clone());
                }
            }
        }
        if pass == 1 {
            let s = started.elapsed().as_secs_f64();
            println!("parse: {n} cases in {s:.2} s = {:.0} cases/s", n as f64 / s);
        }
    }
    let header_end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
    let Ok(layout) = Layout::from_header_line(&bytes[..header_end]) else { return eprintln!("bad header") };
    for pass in 0..2 {
        let started = Instant::now();
        let mut reader = ChunkReader::new(&bytes[header_end..], layout.clone(), 0);
        let mut case = Case::default();
        let mut n = 0u64;
        while let Some(item) = reader.next_into(&mut case) {
            n += u64::from(item.is_ok());
        }
        if pass == 1 {
            let s = started.elapsed().as_secs_f64();
            println!("chunk parse: {n} cases in {s:.2} s = {:.0} cases/s", n as f64 / s);
        }
    }
    let started = Instant::now();
    let mut points = rust_decimal::Decimal::ZERO;
    for case in &cases {
        points += scorer.assess(&policy, case).points.points.value();
    }
    let s = started.elapsed().as_secs_f64();
    println!("assess: {} cases in {s:.2} s = {:.0} cases/s (Σ points {points})", cases.len(), cases.len() as f64 / s);
}

//! Times a bare read of a case CSV: `cargo run --release --example read_cases -- FILE`.
//! Reports raw CSV records/s (csv crate, no case model) and case-model parsing (CaseReader).
use dipdrg::io::case_csv::CaseReader;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else { return eprintln!("usage: read_cases FILE") };
    let started = Instant::now();
    let Ok(mut raw) = csv::Reader::from_path(&path) else { return eprintln!("cannot open {path}") };
    let mut record = csv::ByteRecord::new();
    let mut records = 0u64;
    while raw.read_byte_record(&mut record).unwrap_or(false) {
        records += 1;
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let Ok(file) = std::fs::File::open(&path) else { return };
    let Ok(reader) = CaseReader::new(std::io::BufReader::with_capacity(1 << 20, file)) else { return eprintln!("bad header") };
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for item in reader {
        match item {
            Ok(_) => accepted += 1,
            Err(_) => rejected += 1,
        }
    }
    let parse_seconds = started.elapsed().as_secs_f64();
    println!("raw csv: {records} records in {raw_seconds:.2} s; case model: {accepted} + {rejected} rejected in {parse_seconds:.2} s");
}

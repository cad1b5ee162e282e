//! The audit run's executors against each other: the reference executor (one thread, then
//! `audit::audit`) and the parallel executor (chunked reading on any number of threads, split
//! admissions scanned in patient shards) give the same outcome — flags in order, byte-identical
//! flags CSV, counts — on the demo data, on a generated year with injected violations, and on
//! randomly perturbed copies (blank lines, unreadable records, repeated ids, empty fields).

use dipdrg::audit::FlagKind;
use dipdrg::audit_run::{parallel, reference, AuditOutcome};
use dipdrg::drg::DrgTableSet;
use dipdrg::generate::{Generator, Options};
use dipdrg::io::case_csv::{CaseReader, CaseWriter, Layout};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo DRG policy (with the generator's outpatient families) and its scorer.
fn engine() -> &'static (Policy, Scorer) {
    static ENGINE: OnceLock<(Policy, Scorer)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let policy_path = root().join("policies/demo-city-2026-drg.toml");
        let mut policy = Policy::load(&policy_path).expect("policy");
        policy.audit.outpatient_family_prefixes.extend(generated().1.iter().cloned());
        let scorer = Scorer::load(&policy, &policy_path, &root().join("grouper-tables/demo")).expect("scorer");
        (policy, scorer)
    })
}

/// A generated year on the demo tables (as CSV text) with injected violations, and its
/// outpatient families.
fn generated() -> &'static (String, Vec<String>) {
    static GENERATED: OnceLock<(String, Vec<String>)> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let tables = DrgTableSet::load_dir(&root().join("grouper-tables/demo")).expect("demo tables");
        let options = Options { cases: 6_000, hospitals: 12, year: 2026, seed: 41, violation_rate: 0.08, case_prefix: "G".into() };
        let generator = Generator::new(&tables, options);
        let outpatient = generator.outpatient_families();
        let mut out = Vec::new();
        {
            let mut writer = CaseWriter::new(&mut out).unwrap();
            for (case, _) in generator {
                writer.write(&case).unwrap();
            }
            writer.flush().unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        (text, outpatient)
    })
}

fn demo_text() -> String {
    std::fs::read_to_string(root().join("grouper-tables/demo/cases.csv")).unwrap()
}

/// Runs both executors on `text` and checks they agree; returns the reference outcome.
fn both(text: &str, threads: usize, chunk_bytes: usize) -> AuditOutcome {
    let (policy, scorer) = engine();
    let (header, body) = text.split_at(text.find('\n').unwrap() + 1);
    let layout = Layout::from_header_line(header.as_bytes()).unwrap();
    let expected = reference(policy, scorer, CaseReader::new(text.as_bytes()).unwrap());
    let got = parallel(policy, scorer, body.as_bytes(), &layout, Some(body.len() as u64), threads, chunk_bytes).unwrap();
    assert_eq!(expected.flags_csv(), got.flags_csv(), "flags CSV (threads {threads}, chunks of {chunk_bytes})");
    assert_eq!(expected, got, "outcome (threads {threads}, chunks of {chunk_bytes})");
    assert_eq!(got.audited + got.unreadable, got.submitted);
    expected
}

#[test]
fn the_audit_executors_agree_on_the_demo_data() {
    let text = demo_text();
    for (threads, chunk_bytes) in [(1, 1 << 20), (2, 4096), (4, 700)] {
        let outcome = both(&text, threads, chunk_bytes);
        assert_eq!(outcome.submitted, 2000);
    }
}

#[test]
fn the_audit_executors_agree_on_a_generated_year_with_every_kind_of_flag() {
    let text = &generated().0;
    let mut first = None;
    for (threads, chunk_bytes) in [(1, 1 << 20), (2, 50_000), (3, 9_000), (4, 2_000)] {
        let outcome = both(text, threads, chunk_bytes);
        let per_kind = outcome.flags_per_kind();
        for kind in [FlagKind::SplitAdmission, FlagKind::Upcoding, FlagKind::LowStandardAdmission, FlagKind::BedHanging] {
            assert!(per_kind.get(&kind).copied().unwrap_or(0) > 0, "no {} flag: the comparison would prove little", kind.as_str());
        }
        // Same bytes at every thread count.
        let csv = outcome.flags_csv();
        assert_eq!(first.get_or_insert_with(|| csv.clone()), &csv);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_audit_executors_agree_on_perturbed_inputs(
        edits in prop::collection::vec((0usize..6000, 0u8..6), 0..80),
        threads in 1usize..5,
        chunk_bytes in 200usize..60_000,
    ) {
        let text = &generated().0;
        // A slice of the year keeps each case fast; split admissions still occur within it.
        let mut lines: Vec<String> = text.lines().take(1500).map(str::to_string).collect();
        for (at, kind) in edits {
            let at = 1 + at % (lines.len() - 1);
            let line = lines[at].clone();
            match kind {
                0 => lines.insert(at, line),                                   // repeated id
                1 => lines.insert(at, String::new()),                          // blank line
                2 => lines[at] = line.replacen(",2026-", ",2026-13-", 1),      // unreadable date
                3 => lines[at] = line.replacen(',', ",,", 1),                  // a field too many
                4 => {
                    // An empty field: the patient id (or whichever field is third).
                    let mut cells: Vec<&str> = line.split(',').collect();
                    if cells.len() > 2 {
                        cells[2] = "";
                    }
                    lines[at] = cells.join(",");
                }
                _ => lines[at] = line.rsplitn(2, ',').last().unwrap_or("").to_string() + ",", // empty last amount
            }
        }
        let text = lines.join("\n") + "\n";
        both(&text, threads, chunk_bytes);
    }
}

//! The settlement engine's executors against each other: the reference executor (one thread,
//! plain) and the parallel executor (any thread count, any chunk size) must produce the same
//! outcome byte for byte — on the demo data and on randomly perturbed copies of it (empty and
//! overpaid amounts, ids repeated within and across hospitals, periods outside the run,
//! unreadable fields, annotations naming unknown cases or other hospitals).

use dipdrg::io::case_csv::{CaseReader, Layout};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use dipdrg::settle::{self, Annotations, CaseLines, Mode, Period, Request, Review};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Scheme {
    policy: Policy,
    scorer: Scorer,
}

fn scheme(policy: &str, tables: &str) -> Scheme {
    let policy_path = root().join(policy);
    let policy = Policy::load(&policy_path).unwrap();
    let scorer = Scorer::load(&policy, &policy_path, &root().join(tables)).unwrap();
    Scheme { policy, scorer }
}

fn drg() -> &'static Scheme {
    static SCHEME: OnceLock<Scheme> = OnceLock::new();
    SCHEME.get_or_init(|| scheme("policies/demo-city-2026-drg.toml", "grouper-tables/demo"))
}

fn dip() -> &'static Scheme {
    static SCHEME: OnceLock<Scheme> = OnceLock::new();
    SCHEME.get_or_init(|| scheme("policies/demo-city-2026-dip.toml", "grouper-tables/demo-dip"))
}

/// The demo case file: header line and data lines.
fn demo_lines() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// Everything a run produced, as comparable values.
#[derive(Debug, PartialEq)]
struct Produced {
    submitted: u64,
    accepted: u64,
    rejected: Vec<settle::Rejected>,
    statements: settle::Statements,
    summary: dipdrg::report::Table,
    cases: String,
}

fn produced<C: CaseLines>(request: &Request<'_>, outcome: settle::Outcome<C>) -> Produced {
    Produced {
        submitted: outcome.submitted,
        accepted: outcome.accepted,
        summary: outcome.statements.summary_table(&outcome.info(request)),
        rejected: outcome.rejected,
        statements: outcome.statements,
        cases: String::from_utf8(outcome.cases.to_bytes()).unwrap(),
    }
}

/// Runs both executors over `text` (header first) and checks they agree; returns the outcome
/// (or the error's code, which must also agree).
fn both(request: &Request<'_>, text: &str, threads: usize, chunk_bytes: usize) -> Result<Produced, &'static str> {
    let (header, body) = text.split_at(text.find('\n').unwrap() + 1);
    let layout = Layout::from_header_line(header.as_bytes()).unwrap();
    let reference = settle::reference::run(request, CaseReader::headerless(body.as_bytes(), layout.clone(), 0));
    let parallel = settle::parallel::run(request, body.as_bytes(), &layout, Some(body.len() as u64), threads, chunk_bytes);
    match (reference, parallel) {
        (Ok(reference), Ok((parallel, _))) => {
            let (reference, parallel) = (produced(request, reference), produced(request, parallel));
            assert_eq!(reference.submitted, parallel.submitted, "submitted");
            assert_eq!(reference.rejected, parallel.rejected, "rejects (threads {threads}, chunks of {chunk_bytes} bytes)");
            assert_eq!(reference.statements, parallel.statements, "statements");
            assert_eq!(reference.summary, parallel.summary, "summary");
            if reference.cases != parallel.cases {
                let line = reference.cases.lines().zip(parallel.cases.lines()).position(|(a, b)| a != b);
                panic!("cases.csv differs at line {line:?} (threads {threads}, chunks of {chunk_bytes} bytes)");
            }
            assert_eq!(reference, parallel);
            assert_eq!(reference.accepted + reference.rejected.len() as u64, reference.submitted, "accepted + rejected = submitted");
            Ok(reference)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.code(), b.code(), "both executors fail alike: {a} / {b}");
            Err(a.code())
        }
        (a, b) => panic!("one executor failed: reference {:?}, parallel {:?}", a.err(), b.err().map(|e| e.to_string())),
    }
}

fn demo_annotations(policy: &Policy) -> Annotations {
    let mut annotations = Annotations::default();
    annotations.add_violation(policy, "D00100", None, "split_admission");
    annotations.add_violation(policy, "D00200", None, "upcoding");
    annotations.add_violation(policy, "D00300", None, "low_standard_admission");
    annotations.add_review("D00400", Review::parse(None, "approved", "5000").unwrap());
    annotations.add_review("D00500", Review::parse(None, "rejected", "").unwrap());
    annotations
}

#[test]
fn the_executors_agree_on_the_demo_data_for_every_mode_scheme_thread_count_and_chunk_size() {
    let (header, lines) = demo_lines();
    let text = format!("{header}\n{}\n", lines.join("\n"));
    for scheme in [drg(), dip()] {
        let annotations = demo_annotations(&scheme.policy);
        for (mode, period) in [(Mode::Annual, "2026"), (Mode::Monthly, "2026-03"), (Mode::Monthly, "2026-12")] {
            let period = Period::parse_for(&scheme.policy, mode, period).unwrap();
            let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode, period, annotations: &annotations };
            for (threads, chunk_bytes) in [(1, 1 << 20), (2, 4096), (3, 777), (4, 64)] {
                let outcome = both(&request, &text, threads, chunk_bytes).unwrap();
                assert_eq!(outcome.submitted, 2000);
            }
        }
    }
}

/// A small deterministic generator for the perturbations (the seed comes from proptest).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Field positions in the demo file's header.
fn column(header: &str, name: &str) -> usize {
    header.split(',').position(|c| c == name).unwrap()
}

/// The demo lines with `edits` random perturbations, and annotations naming perturbed, unknown and
/// other hospitals' cases.
fn perturbed(policy: &Policy, seed: u64, edits: usize) -> (String, Annotations) {
    let (header, lines) = demo_lines();
    let mut rng = Rng(seed | 1);
    let mut rows: Vec<Vec<String>> = lines.iter().map(|l| l.split(',').map(str::to_string).collect()).collect();
    // The demo file has a few malformed rows; only well-formed ones are edited by field.
    let width = header.split(',').count();
    let (id, hospital, discharge, total, paid) = (
        column(&header, "case_id"),
        column(&header, "hospital_id"),
        column(&header, "discharge_date"),
        column(&header, "total_cost"),
        column(&header, "patient_paid"),
    );
    let hospitals: Vec<&String> = policy.hospitals.keys().collect();
    for _ in 0..edits {
        let at = rng.below(rows.len());
        if rows[at].len() != width {
            continue;
        }
        match rng.below(9) {
            0 => rows[at][paid].clear(),
            1 => rows[at][paid] = format!("{}.01", rows[at][total].split('.').next().unwrap_or("0")),
            2 => {
                // The same id later in the file, same hospital.
                let copy = rows[at].clone();
                let to = rng.below(rows.len() + 1);
                rows.insert(to, copy);
            }
            3 => {
                // The same id at another hospital.
                let mut copy = rows[at].clone();
                copy[hospital] = hospitals[rng.below(hospitals.len())].clone();
                let to = rng.below(rows.len() + 1);
                rows.insert(to, copy);
            }
            4 => rows[at][discharge] = "2025-12-31".into(),
            5 => rows[at][total] = "12x".into(),
            6 => rows[at][hospital] = "H999".into(),
            7 => rows[at][total] = "79228162514264337593543950335".into(),
            _ => rows[at][discharge] = format!("2026-{:02}-15", rng.below(12) + 1),
        }
    }
    let mut annotations = demo_annotations(policy);
    for _ in 0..edits / 2 + 1 {
        let row = &rows[rng.below(rows.len())];
        let case_id = row[id].clone();
        let other_hospital = hospitals[rng.below(hospitals.len())].as_str();
        match rng.below(4) {
            0 => {
                annotations.add_violation(policy, &case_id, None, "upcoding");
            }
            1 => {
                annotations.add_violation(policy, &case_id, Some(other_hospital), "bed_hanging");
            }
            2 => {
                annotations.add_review(&case_id, Review::parse(Some(other_hospital), "approved", "1234.5").unwrap());
            }
            _ => {
                annotations.add_violation(policy, &format!("NOT-A-CASE-{}", rng.next()), None, "upcoding");
            }
        }
    }
    let text = rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join("\n");
    (format!("{header}\n{text}\n"), annotations)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_executors_agree_on_perturbed_inputs(
        seed in any::<u64>(),
        edits in 0usize..120,
        threads in 1usize..5,
        chunk_bytes in 64usize..20_000,
        use_dip in any::<bool>(),
        monthly in any::<bool>(),
    ) {
        let scheme = if use_dip { dip() } else { drg() };
        let (text, annotations) = perturbed(&scheme.policy, seed, edits);
        let (mode, period) = if monthly { (Mode::Monthly, "2026-05") } else { (Mode::Annual, "2026") };
        let period = Period::parse_for(&scheme.policy, mode, period).unwrap();
        let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode, period, annotations: &annotations };
        let _ = both(&request, &text, threads, chunk_bytes);
    }
}

#[test]
fn repeated_ids_are_refused_naming_the_first_record_whichever_hospital_sent_them() {
    let scheme = drg();
    let (header, lines) = demo_lines();
    let first = lines.iter().find(|l| l.starts_with("D00001,")).unwrap().clone();
    let other_hospital = first.replacen(",H005,", ",H001,", 1);
    let text = format!("{header}\n{first}\n{first}\n{other_hospital}\n");
    let annotations = Annotations::default();
    let period = Period::parse_for(&scheme.policy, Mode::Annual, "2026").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Annual, period, annotations: &annotations };
    let outcome = both(&request, &text, 2, 64).unwrap();
    assert_eq!((outcome.submitted, outcome.accepted), (3, 1));
    assert!(outcome.rejected.iter().all(|r| r.code == "CASE_ID_REPEATED" && r.reason.contains("record 1")), "{:?}", outcome.rejected);
}

#[test]
fn admission_refusals_carry_their_codes() {
    let scheme = drg();
    let (header, lines) = demo_lines();
    let base = lines.iter().find(|l| l.starts_with("D00001,")).unwrap().clone();
    let fields: Vec<&str> = base.split(',').collect();
    let with = |edits: &[(&str, &str)], id: &str| {
        let mut row: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        for (name, value) in edits {
            row[column(&header, name)] = value.to_string();
        }
        row[column(&header, "case_id")] = id.to_string();
        row.join(",")
    };
    let text = [
        header.clone(),
        with(&[("patient_paid", "")], "A1"),
        with(&[("patient_paid", "999999"), ("fund_paid", "")], "A2"),
        with(&[("hospital_id", "H999")], "A3"),
        with(&[("admission_date", "2025-05-20"), ("discharge_date", "2025-06-01"), ("los", "12")], "A4"),
        with(&[("fund", "")], "A5"),
        with(&[("total_cost", "abc")], "A6"),
        with(&[("total_cost", "1000000000.01")], "A7"),
    ]
    .join("\n")
        + "\n";
    let annotations = Annotations::default();
    let period = Period::parse_for(&scheme.policy, Mode::Annual, "2026").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Annual, period, annotations: &annotations };
    let outcome = both(&request, &text, 1, 1 << 20).unwrap();
    let codes: Vec<(&str, &str)> = outcome.rejected.iter().map(|r| (r.case_id.as_str(), r.code)).collect();
    assert_eq!(
        codes,
        [
            ("A1", "CASE_FIELD_REQUIRED"),
            ("A2", "CASE_PATIENT_PAID_EXCEEDS_COST"),
            ("A3", "CASE_HOSPITAL_UNKNOWN"),
            ("A4", "CASE_OUTSIDE_PERIOD"),
            ("A5", "CASE_FIELD_REQUIRED"),
            ("A6", "CASE_UNREADABLE"),
            ("A7", "CASE_UNREADABLE"),
        ]
    );
}

#[test]
fn periods_outside_the_policy_year_are_refused_before_any_case_is_read() {
    let scheme = drg();
    for (mode, text, code) in [
        (Mode::Monthly, "2026-13", "SETTLE_PERIOD_INVALID"),
        (Mode::Monthly, "abcd", "SETTLE_PERIOD_INVALID"),
        (Mode::Annual, "2025", "SETTLE_PERIOD_NOT_POLICY_YEAR"),
        (Mode::Monthly, "2027-01", "SETTLE_PERIOD_NOT_POLICY_YEAR"),
    ] {
        assert_eq!(Period::parse_for(&scheme.policy, mode, text).unwrap_err().code(), code, "{text}");
    }
}

/// An annotation scoped to one hospital never touches another hospital's case with the same id.
#[test]
fn an_annotation_for_another_hospitals_case_is_not_applied() {
    let scheme = drg();
    let mut annotations = Annotations::default();
    annotations.add_violation(&scheme.policy, "D00001", Some("H001"), "upcoding");
    let (header, lines) = demo_lines();
    let text = format!("{header}\n{}\n", lines.join("\n"));
    let period = Period::parse_for(&scheme.policy, Mode::Annual, "2026").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Annual, period, annotations: &annotations };
    let outcome = both(&request, &text, 2, 4096).unwrap();
    // D00001 is H005's case: a violation recorded against H001's D00001 does not touch it.
    let row = outcome.cases.lines().find(|l| l.starts_with("D00001,")).unwrap();
    assert!(!row.contains("upcoding"), "{row}");
}

/// `settle --benefits`: the pre-pass fills every empty `patient_paid` it can with the patient's
/// total from the benefits engine (the reference `settle_year`'s figure), the executors agree on
/// the filled file, and without the pre-pass those cases are refused with CASE_FIELD_REQUIRED.
#[test]
fn benefits_fill_empty_patient_paid_and_the_executors_agree() {
    use dipdrg::benefits::{settle_year, BenefitsPolicy, Discharge};
    use rust_decimal::Decimal;
    use std::str::FromStr;
    let benefits =
        BenefitsPolicy::from_toml(&std::fs::read_to_string(root().join("policies/demo-city-2026-benefits.toml")).unwrap()).unwrap();
    let (header, lines) = demo_lines();
    let paid = column(&header, "patient_paid");
    let fund_paid = column(&header, "fund_paid");
    // Every third case without patient_paid and fund_paid; a few persons in assistance categories.
    let mut emptied = Vec::new();
    let mut text = format!("{header},category\n");
    for (i, line) in lines.iter().enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i % 3 == 0 {
            fields[paid] = "";
            fields[fund_paid] = "";
            emptied.push(fields[0].to_string());
        }
        let category = ["", "", "特困", "低保边缘"][i % 4];
        text.push_str(&format!("{},{category}\n", fields.join(",")));
    }
    let scheme = drg();
    let annotations = demo_annotations(&scheme.policy);
    let period = Period::parse_for(&scheme.policy, Mode::Annual, "2026").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Annual, period, annotations: &annotations };

    let without = both(&request, &text, 2, 4096).unwrap();

    let filled = settle::benefits::fill_patient_paid(&scheme.policy, &benefits, text.as_bytes(), 2).unwrap();
    assert_eq!(filled.filled + filled.left_empty, emptied.len() as u64);
    assert!(filled.filled > 0);
    for threads in [1, 4] {
        let again = settle::benefits::fill_patient_paid(&scheme.policy, &benefits, text.as_bytes(), threads).unwrap();
        assert_eq!(again.text, filled.text, "same bytes at {threads} threads");
    }
    let filled_text = String::from_utf8(filled.text).unwrap();

    // Each filled value is the reference engine's patient total for that case.
    let mut reader = csv::Reader::from_reader(filled_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let discharges: Vec<Discharge> = rows
        .iter()
        .filter(|r| !r[at("patient_id")].is_empty())
        .map(|r| {
            let total = Decimal::from_str(&r[at("total_cost")]).unwrap();
            Discharge {
                case_id: r[at("case_id")].to_string(),
                patient_id: r[at("patient_id")].to_string(),
                discharge_date: dipdrg::case::Date::parse(&r[at("discharge_date")]).unwrap(),
                hospital_kind: scheme.policy.hospitals[&r[at("hospital_id")]].level.clone(),
                covered_cost: total,
                self_paid: Decimal::ZERO,
                category: r[at("category")].to_string(),
            }
        })
        // What the engine cannot settle (a negative cost here) is left out, as the pre-pass does.
        .filter(|d| dipdrg::benefits::check_discharge(&benefits, d).is_ok())
        .collect();
    let years = settle_year(&benefits, &Default::default(), &discharges, false).unwrap();
    let expected: std::collections::HashMap<&str, Decimal> =
        years.iter().flat_map(|y| y.settlements.iter().map(|s| (s.case_id.as_str(), s.patient_total))).collect();
    let mut checked = 0;
    for row in &rows {
        let case_id = &row[at("case_id")];
        if emptied.iter().any(|e| e == case_id) && !row[at("patient_paid")].is_empty() {
            assert_eq!(Decimal::from_str(&row[at("patient_paid")]).unwrap(), expected[case_id], "case {case_id}");
            checked += 1;
        }
    }
    assert_eq!(checked, filled.filled);

    let with = both(&request, &filled_text, 3, 777).unwrap();
    let refused_for_paid = |outcome: &Produced| -> std::collections::BTreeSet<String> {
        outcome
            .rejected
            .iter()
            .filter(|r| r.field == "patient_paid" && r.code == "CASE_FIELD_REQUIRED")
            .map(|r| r.case_id.clone())
            .collect()
    };
    let filled_ids: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|r| emptied.iter().any(|e| e == &r[at("case_id")]) && !r[at("patient_paid")].is_empty())
        .map(|r| r[at("case_id")].to_string())
        .collect();
    let before = refused_for_paid(&without);
    let now_settled = before.intersection(&filled_ids).count() as u64;
    assert!(now_settled > 0);
    assert_eq!(refused_for_paid(&with), before.difference(&filled_ids).cloned().collect());
    let new_rejects: Vec<_> =
        with.rejected.iter().filter(|r| !without.rejected.iter().any(|w| w.case_id == r.case_id && w.code == r.code)).take(3).collect();
    assert_eq!(with.accepted, without.accepted + now_settled, "{new_rejects:?}");
}

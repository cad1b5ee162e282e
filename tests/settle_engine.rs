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
    warnings: Vec<settle::Warning>,
}

fn produced<C: CaseLines>(request: &Request<'_>, outcome: settle::Outcome<C>) -> Produced {
    Produced {
        submitted: outcome.submitted,
        accepted: outcome.accepted,
        summary: outcome.statements.summary_table(&outcome.info(request)),
        warnings: outcome.warnings,
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
            assert_eq!(reference.warnings, parallel.warnings, "warnings");
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
        match rng.below(5) {
            0 => {
                annotations.add_violation(policy, &case_id, None, "upcoding");
            }
            3 => {
                // Reviews for the case's own hospital: enough of them go over a month's quota.
                annotations.add_review(&case_id, Review::parse(None, "approved", "800").unwrap());
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
    // The insured category (`benefit`): one case in eight in a category the demo policies pay by
    // item, one in sixteen in one they do not know.
    let categories = ["retired_cadre", "disabled_veteran", "civil_servant_work_injury", "maternity", "ordinary"];
    let text = rows
        .iter()
        .map(|r| {
            let benefit = match rng.below(16) {
                0 | 1 => categories[rng.below(4)],
                2 => categories[4],
                _ => "",
            };
            format!("{},{benefit}", r.join(","))
        })
        .collect::<Vec<_>>()
        .join("\n");
    (format!("{header},benefit\n{text}\n"), annotations)
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
    // ... and it is not silently ignored: H001 has no case D00001.
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert_eq!(outcome.warnings[0].code, "ANNOTATION_CASE_UNKNOWN");
    assert_eq!((outcome.warnings[0].case_id.as_str(), outcome.warnings[0].hospital_id.as_str()), ("D00001", "H001"));
}

/// Violations and reviews naming a case that is not among the records are listed as warnings
/// (code, summary, the same in both executors); one naming a case that was read but refused
/// (outside the period) is not: the case was in the input.
#[test]
fn annotations_naming_unknown_cases_are_warnings() {
    let scheme = dip();
    let mut annotations = demo_annotations(&scheme.policy);
    annotations.add_violation(&scheme.policy, "NO-SUCH-CASE", None, "upcoding");
    annotations.add_review("NOR-THIS-ONE", Review::parse(Some("H002"), "approved", "100").unwrap());
    let (header, lines) = demo_lines();
    let text = format!("{header}\n{}\n", lines.join("\n"));
    for (mode, period) in [(Mode::Annual, "2026"), (Mode::Monthly, "2026-03")] {
        let period = Period::parse_for(&scheme.policy, mode, period).unwrap();
        let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode, period, annotations: &annotations };
        let outcome = both(&request, &text, 2, 4096).unwrap();
        let named: Vec<(&str, &str, &str)> = outcome
            .warnings
            .iter()
            .filter(|w| w.code == "ANNOTATION_CASE_UNKNOWN")
            .map(|w| (w.code, w.source, w.case_id.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![("ANNOTATION_CASE_UNKNOWN", "review", "NOR-THIS-ONE"), ("ANNOTATION_CASE_UNKNOWN", "violation", "NO-SUCH-CASE")],
            "the demo annotations name cases of the file (in or out of the period): no warning for them"
        );
        let summary: Vec<&Vec<String>> = outcome.summary.rows.iter().filter(|r| r[0].starts_with("warning")).collect();
        assert_eq!(summary[0][1], outcome.warnings.len().to_string());
        assert_eq!(summary.len(), outcome.warnings.len() + 1, "every warning is listed in the summary");
        let listed = summary.iter().any(|r| r[1].starts_with("ANNOTATION_CASE_UNKNOWN: violation of case NO-SUCH-CASE"));
        assert!(listed, "{summary:?}");
    }
}

/// The special-review quota per hospital and month: applications over it are refused (their
/// cases settled at their assessed points, a SPECIAL_REVIEW_OVER_QUOTA warning each) and the run
/// goes on — the same refusal in the monthly run of that month and in the annual run.
#[test]
fn over_quota_applications_are_refused_and_the_run_goes_on_alike_monthly_and_annually() {
    let scheme = dip();
    // The demo DIP policy allows ⌊0.005 × cases⌋ applications per hospital and month: H001's 48
    // cases of May allow none, so D00400's approved review (May) is over the quota.
    let annotations = demo_annotations(&scheme.policy);
    let (header, lines) = demo_lines();
    let text = format!("{header}\n{}\n", lines.join("\n"));
    let mut rows = Vec::new();
    for (mode, period) in [(Mode::Monthly, "2026-05"), (Mode::Annual, "2026")] {
        let period = Period::parse_for(&scheme.policy, mode, period).unwrap();
        let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode, period, annotations: &annotations };
        let outcome = both(&request, &text, 2, 4096).expect("an application over the quota does not stop the run");
        let over: Vec<&settle::Warning> = outcome.warnings.iter().filter(|w| w.code == "SPECIAL_REVIEW_OVER_QUOTA").collect();
        assert!(over.iter().any(|w| w.case_id == "D00400" && w.hospital_id == "H001"), "{over:?}");
        let row = outcome.cases.lines().find(|l| l.starts_with("D00400,")).unwrap().to_string();
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[12], "over_quota", "{row}");
        assert_eq!(cells[10], cells[9], "refused: counted at its assessed points, not the reviewed 5000 ({row})");
        // Other hospitals' statements are there: the run went on.
        match &outcome.statements {
            settle::Statements::Monthly(_, s) => assert!(s.iter().any(|s| s.hospital != 0)),
            settle::Statements::Annual(_, s) => assert!(s.iter().any(|s| s.hospital != 0)),
        }
        rows.push(row.rsplitn(4, ',').nth(3).unwrap().to_string());
    }
    assert_eq!(rows[0], rows[1], "the monthly and annual runs settle the refused case alike (amounts aside)");
    // The DRG policy allows 5%: H001's May allows 2, and D00400's review stands.
    let scheme = drg();
    let annotations = demo_annotations(&scheme.policy);
    let period = Period::parse_for(&scheme.policy, Mode::Monthly, "2026-05").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Monthly, period, annotations: &annotations };
    let outcome = both(&request, &text, 2, 4096).unwrap();
    assert!(outcome.warnings.iter().all(|w| w.case_id != "D00400"), "{:?}", outcome.warnings);
    let row = outcome.cases.lines().find(|l| l.starts_with("D00400,")).unwrap();
    assert_eq!(row.split(',').nth(10), Some("5000.00"), "{row}");
}

/// Item-based payment (按项目) per insured category of the demo policies: a case whose `benefit`
/// is retired_cadre (离休干部), disabled_veteran (残疾军人), civil_servant_work_injury (公务员工伤)
/// or maternity (生育) gets 0 points and is settled by the fund at total_cost − patient_paid,
/// outside the point pool; the same case without the category is paid by points.
#[test]
fn item_paid_cases_are_settled_at_their_covered_cost_for_each_insured_category() {
    for scheme in [dip(), drg()] {
        let (header, lines) = demo_lines();
        let width = header.split(',').count();
        let discharge = column(&header, "discharge_date");
        let well_formed: Vec<&String> = lines
            .iter()
            .filter(|l| l.split(',').count() == width && l.split(',').nth(discharge).is_some_and(|d| d.starts_with("2026-03-")))
            .take(5)
            .collect();
        let categories = ["retired_cadre", "disabled_veteran", "civil_servant_work_injury", "maternity", ""];
        let body: Vec<String> = well_formed.iter().zip(categories).map(|(line, category)| format!("{line},{category}")).collect();
        let text = format!("{header},benefit\n{}\n", body.join("\n"));
        let annotations = Annotations::default();
        let period = Period::parse_for(&scheme.policy, Mode::Monthly, "2026-03").unwrap();
        let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Monthly, period, annotations: &annotations };
        let outcome = both(&request, &text, 2, 4096).unwrap();
        assert_eq!(outcome.accepted, 5, "{:?}", outcome.rejected);
        let header_line = settle::CASES_HEADER.trim_end();
        let column = |name: &str| header_line.split(',').position(|c| c == name).unwrap();
        let money = |row: &str, name: &str| row.split(',').nth(column(name)).unwrap().parse::<rust_decimal::Decimal>().unwrap();
        let rows: Vec<&str> = outcome.cases.lines().collect();
        let mut item_paid_total = rust_decimal::Decimal::ZERO;
        for (row, category) in rows.iter().zip(categories) {
            let cells: Vec<&str> = row.split(',').collect();
            if category.is_empty() {
                assert_ne!(cells[column("category")], "exempt", "no category: paid by points ({row})");
                assert_eq!(money(row, "item_paid"), rust_decimal::Decimal::ZERO);
                continue;
            }
            assert_eq!(cells[column("category")], "exempt", "{category}: {row}");
            assert_eq!(cells[column("counted_points")], "0.00", "{category}: outside the point pool");
            assert_eq!(money(row, "amount"), rust_decimal::Decimal::ZERO);
            let covered = money(row, "total_cost") - money(row, "patient_paid");
            assert!(covered > rust_decimal::Decimal::ZERO);
            assert_eq!(money(row, "item_paid"), covered, "{category}: the fund pays the covered cost");
            assert_eq!(money(row, "fund_amount"), covered);
            item_paid_total += covered;
        }
        let statements_item_paid: rust_decimal::Decimal = match &outcome.statements {
            settle::Statements::Monthly(_, s) => s.iter().map(|s| s.totals.item_paid).sum(),
            settle::Statements::Annual(_, s) => s.iter().map(|s| s.totals.item_paid).sum(),
        };
        assert_eq!(statements_item_paid, item_paid_total, "statements carry the item-paid amounts");
        let summary_item_paid = outcome.summary.rows.iter().find(|r| r[0] == "item_paid_total").unwrap()[1].clone();
        assert_eq!(summary_item_paid, dipdrg::units::format_yuan(item_paid_total));
    }
}

/// CC/MCC for DIP cases (E5): the demo DIP catalog carries the complication tables (`cc.csv`,
/// `mcc.csv`, `cc_exclusions.csv`), so the demo DIP policy's `severity.cc = 1.05` and
/// `mcc = 1.15` apply. Without the tables both cases below had no severity factor.
#[test]
fn dip_cases_get_their_cc_and_mcc_coefficients() {
    let scheme = dip();
    let (header, lines) = demo_lines();
    let text = format!("{header}\n{}\n", lines.join("\n"));
    let annotations = Annotations::default();
    let period = Period::parse_for(&scheme.policy, Mode::Annual, "2026").unwrap();
    let request = Request { policy: &scheme.policy, scorer: &scheme.scorer, mode: Mode::Annual, period, annotations: &annotations };
    let outcome = both(&request, &text, 2, 4096).unwrap();
    let severity = |case_id: &str| {
        let row = outcome.cases.lines().find(|l| l.starts_with(&format!("{case_id},"))).unwrap();
        row.split(',').nth(14).unwrap().to_string()
    };
    // D00400: K80.100 with E11.900 (CC, not excluded by its principal).
    assert_eq!(severity("D00400"), "1.05");
    // D00135: K74.600 with N17.900 (MCC).
    assert_eq!(severity("D00135"), "1.15");
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

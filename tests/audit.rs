//! Audit detectors: each rule on hand-made cases, and precision/recall on generated data with
//! injected violations (the generator's side list is the truth).

use dipdrg::audit::{audit, check_case, score_flags, split_admissions, AuditCase, FlagKind};
use dipdrg::case::Date;
use dipdrg::drg::trace::Severity;
use dipdrg::drg::DrgTableSet;
use dipdrg::generate::{Generator, Options};
use dipdrg::policy::{Audit, Policy};
use dipdrg::scoring::Scorer;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::path::PathBuf;

fn stay(id: &str, patient: &str, hospital: &str, admitted: &str, discharged: &str, family: &str) -> AuditCase {
    AuditCase {
        case_id: id.into(),
        hospital_id: hospital.into(),
        patient_id: Some(patient.into()),
        admission: Date::parse(admitted),
        discharge: Date::parse(discharged),
        los: Some(5),
        principal: "K80.100".into(),
        family: family.into(),
        group: format!("{family}5").into(),
        complication: None,
        cost: Some(dec!(10000)),
        group_mean_cost: Some(dec!(10000)),
        group_mean_los: Some(dec!(5)),
        baseline_mean_cost: None,
    }
}

#[test]
fn a_readmission_within_the_window_is_flagged_with_its_evidence() {
    let rules = Audit::default();
    let cases = vec![
        stay("A1", "P1", "H1", "2026-03-01", "2026-03-06", "HC3"),
        stay("A2", "P1", "H1", "2026-03-09", "2026-03-14", "HC3"),
        stay("B1", "P2", "H1", "2026-03-01", "2026-03-06", "HC3"),
        stay("B2", "P2", "H1", "2026-03-25", "2026-03-30", "HC3"),
    ];
    let flags = split_admissions(&rules, &cases);
    assert_eq!(flags.len(), 1, "19 days later is outside the 15-day window");
    let interleaved = vec![
        stay("C1", "P3", "H1", "2026-03-01", "2026-03-06", "HC3"),
        AuditCase { principal: "J18.900".into(), ..stay("X1", "P3", "H2", "2026-03-07", "2026-03-08", "ES3") },
        stay("C2", "P3", "H1", "2026-03-09", "2026-03-14", "HC3"),
    ];
    let interleaved_flags = split_admissions(&rules, &interleaved);
    assert_eq!(interleaved_flags.len(), 1, "an unrelated stay between the two parts does not hide the split");
    assert_eq!(interleaved_flags[0].related_case_id.as_deref(), Some("C1"));
    let flag = &flags[0];
    assert_eq!((flag.case_id.as_str(), flag.related_case_id.as_deref()), ("A2", Some("A1")));
    assert_eq!(
        flag.evidence,
        "patient P1 readmitted 3 days after case A1 was discharged (rule ≤ 15); same group family HC3; same hospital H1; same principal diagnosis K80.100; together they cost 2 × one stay of the group"
    );
    // 0.35 + 0.25 × (1 − 3/16) + 0.15 + 0.15 (2 × one stay's cost: neither bonus nor penalty)
    assert_eq!(flag.score, dec!(0.85));
}

#[test]
fn bounces_between_hospitals_score_lower_and_planned_treatment_is_excluded() {
    let mut rules = Audit::default();
    let cases = vec![stay("A1", "P1", "H1", "2026-03-01", "2026-03-06", "RE1"), stay("A2", "P1", "H2", "2026-03-07", "2026-03-12", "RE1")];
    let flags = split_admissions(&rules, &cases);
    assert_eq!(flags[0].score, dec!(0.73), "another hospital: 0.35 + 0.25 × (1 − 1/16) + 0.15");
    rules.planned_family_prefixes = vec!["RE".into()];
    assert!(split_admissions(&rules, &cases).is_empty(), "chemotherapy cycles are planned readmissions");
}

#[test]
fn upcoding_low_standard_and_bed_hanging_rules() {
    let rules = Audit { outpatient_family_prefixes: vec!["ES3".into()], ..Audit::default() };
    let mut lifted = stay("U1", "P1", "H1", "2026-03-01", "2026-03-06", "ES3");
    lifted.complication = Some(Severity::Mcc);
    lifted.group = "ES31".into();
    lifted.group_mean_cost = Some(dec!(16000));
    lifted.baseline_mean_cost = Some(dec!(9000));
    lifted.cost = Some(dec!(8000));
    let kinds: Vec<FlagKind> = check_case(&rules, &lifted).iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FlagKind::Upcoding]);
    lifted.cost = Some(dec!(12000));
    assert!(check_case(&rules, &lifted).is_empty(), "cost 0.75 of the group mean: not flagged");

    let mut short = stay("L1", "P2", "H1", "2026-03-01", "2026-03-02", "ES3");
    short.los = Some(1);
    short.cost = Some(dec!(2000));
    let flags = check_case(&rules, &short);
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].kind, FlagKind::LowStandardAdmission);
    assert!(flags[0].evidence.contains("stay 1 days (rule ≤ 2), cost 2000 is 0.2 of the group mean 10000"), "{}", flags[0].evidence);

    let mut long = stay("B1", "P3", "H1", "2026-03-01", "2026-03-31", "GZ1");
    long.los = Some(30);
    long.cost = Some(dec!(12000)); // 400 a day against 2000 a day
    let flags = check_case(&rules, &long);
    assert_eq!(flags.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![FlagKind::BedHanging]);
}

#[test]
fn detectors_find_the_injected_violations_in_generated_data() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tables = DrgTableSet::load_dir(&root.join("grouper-tables/demo")).expect("demo tables");
    let options = Options { cases: 60_000, hospitals: 20, year: 2026, seed: 99, violation_rate: 0.04, case_prefix: "A".into() };
    let generator = Generator::new(&tables, options);
    let outpatient = generator.outpatient_families();
    let generated: Vec<_> = generator.collect();
    let policy_path = root.join("policies/demo-city-2026-drg.toml");
    let mut policy = Policy::load(&policy_path).expect("policy");
    policy.audit.outpatient_family_prefixes = outpatient;
    let scorer = Scorer::load(&policy, &policy_path, &root.join("grouper-tables/demo")).expect("scorer");
    let cases: Vec<AuditCase> = generated.iter().map(|(case, _)| AuditCase::new(case, &scorer.assess(&policy, case))).collect();
    // The audit's cheaper classification (no pricing) sees the same groups and costs.
    for (case, _) in generated.iter().take(5_000) {
        let (full, cheap) = (scorer.assess(&policy, case), scorer.classify(&policy, case));
        assert_eq!(
            (full.status, &full.group, &full.family, full.complication, full.group_mean_cost, full.group_mean_los, full.baseline_mean_cost),
            (
                cheap.status,
                &cheap.group,
                &cheap.family,
                cheap.complication,
                cheap.group_mean_cost,
                cheap.group_mean_los,
                cheap.baseline_mean_cost
            ),
            "{}",
            case.case_id
        );
    }
    let known: Vec<(String, String)> =
        generated.iter().filter_map(|(_, v)| v.as_ref()).map(|v| (v.case_id.clone(), v.kind.as_str().to_string())).collect();
    let flags = audit(&policy.audit, &cases);
    // Split admissions are judged on high-confidence flags (score ≥ 0.8), the others on all flags.
    let mut scores = score_flags(&flags, &known, Decimal::ZERO);
    scores.insert(FlagKind::SplitAdmission, score_flags(&flags, &known, dec!(0.8))[&FlagKind::SplitAdmission]);
    for (kind, s) in &scores {
        eprintln!("{:24} precision {} recall {} ({:?})", kind.as_str(), s.precision(), s.recall(), s);
    }
    let split = scores[&FlagKind::SplitAdmission];
    assert!(split.true_positives + split.false_negatives >= 300, "enough injected split admissions to judge: {split:?}");
    assert!(split.recall() >= dec!(0.9), "split admission recall {}", split.recall());
    assert!(split.precision() >= dec!(0.8), "split admission precision {}", split.precision());
    // The other detectors are statistical; they must at least find most of what was injected.
    for kind in [FlagKind::Upcoding, FlagKind::LowStandardAdmission, FlagKind::BedHanging] {
        assert!(scores[&kind].recall() >= Decimal::new(5, 1), "{} recall {}", kind.as_str(), scores[&kind].recall());
    }
}

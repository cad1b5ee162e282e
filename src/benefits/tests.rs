//! Worked examples of issue 17 and properties of the benefits engine.

use super::*;
use proptest::prelude::*;
use rust_decimal_macros::dec;

const DEMO: &str = include_str!("../../policies/demo-city-2026-benefits.toml");

fn demo() -> BenefitsPolicy {
    BenefitsPolicy::from_toml(DEMO).expect("demo benefits policy")
}

fn date(text: &str) -> Date {
    Date::parse(text).unwrap()
}

fn discharge(case_id: &str, patient: &str, day: &str, kind: &str, covered: Decimal, category: &str) -> Discharge {
    Discharge {
        case_id: case_id.into(),
        patient_id: patient.into(),
        discharge_date: date(day),
        hospital_kind: kind.into(),
        covered_cost: covered,
        self_paid: Decimal::ZERO,
        category: category.into(),
    }
}

/// (deductible, basic, catastrophic, subsidy, assistance, patient)
fn layers(s: &Settlement) -> (Decimal, Decimal, Decimal, Decimal, Decimal, Decimal) {
    (s.deductible, s.basic, s.catastrophic, s.subsidy, s.assistance, s.patient_covered)
}

#[test]
fn resident_three_admissions_level_3_2_3() {
    let policy = demo();
    // Given out of order: the engine settles by discharge date.
    let cases = [
        discharge("C3", "P1", "2026-09-20", "3", dec!(300000), ""),
        discharge("C1", "P1", "2026-02-10", "3", dec!(20000), ""),
        discharge("C2", "P1", "2026-05-03", "2", dec!(150000), ""),
    ];
    let year = settle_patient(&policy, &YearToDate::default(), &cases, true).unwrap();
    let s = &year.settlements;
    assert_eq!(s.iter().map(|s| s.case_id.as_str()).collect::<Vec<_>>(), ["C1", "C2", "C3"]);
    // 1st: (20,000 − 700) × 60% = 11,580; burden 8,420 below the 9,500 deductible.
    assert_eq!(layers(&s[0]), (dec!(700), dec!(11580.00), dec!(0), dec!(0), dec!(0), dec!(8420.00)));
    // 2nd: (150,000 − 400) × 70% = 104,720; burden 8,420 + 45,280 = 53,700; (53,700 − 9,500) × 60% = 26,520.
    assert_eq!(layers(&s[1]), (dec!(400), dec!(104720.00), dec!(26520.00), dec!(0), dec!(0), dec!(18760.00)));
    // 3rd: cap 150,000 − 116,300 = 33,700; burden 320,000 → 204,300 − 26,520 = 177,780;
    // after catastrophic 115,700 → (115,700 − 100,000) × 30% = 4,710.
    assert_eq!(layers(&s[2]), (dec!(0), dec!(33700.00), dec!(177780.00), dec!(4710.00), dec!(0), dec!(83810.00)));
    let t = &year.totals;
    assert_eq!(t.admissions, 3);
    assert_eq!(t.basic_paid, dec!(150000));
    assert_eq!(t.personal_burden, dec!(320000));
    assert_eq!(t.catastrophic_paid, dec!(204300));
    assert_eq!(t.subsidy_paid, dec!(4710));
    assert_eq!(t.out_of_pocket, dec!(8420) + dec!(18760) + dec!(83810));
    // Warnings: 5,000 crossed at the 1st discharge, 20,000 at the 2nd.
    assert_eq!(s[0].warnings, ["relapse-into-poverty watch"]);
    assert_eq!(s[1].warnings, ["resident high cost"]);
    assert!(s[2].warnings.is_empty());
    assert!(s[2].explanation.iter().any(|line| line.contains("33700")), "{:?}", s[2].explanation);
}

#[test]
fn tekun_first_admission() {
    let policy = demo();
    let year =
        settle_patient(&policy, &YearToDate::default(), &[discharge("T1", "P2", "2026-03-01", "3", dec!(20000), "特困")], true).unwrap();
    let s = &year.settlements[0];
    // Basic 11,580; burden 8,420; catastrophic (8,420 − 5,000) × 70% = 2,394;
    // assistance (8,420 − 2,394 − 0) × 70% = 4,218.20; patient 6,026 − 4,218.20 = 1,807.80.
    assert_eq!(layers(s), (dec!(700), dec!(11580.00), dec!(2394.00), dec!(0), dec!(4218.20), dec!(1807.80)));
    assert!(s.explanation[2].contains("poor"), "{:?}", s.explanation);
}

#[test]
fn self_paid_is_the_patients() {
    let policy = demo();
    let mut case = discharge("C1", "P1", "2026-02-10", "3", dec!(20000), "");
    case.self_paid = dec!(1234.56);
    let year = settle_patient(&policy, &YearToDate::default(), &[case], true).unwrap();
    let s = &year.settlements[0];
    assert_eq!(s.patient_covered, dec!(8420.00));
    assert_eq!(s.patient_total, dec!(9654.56));
}

#[test]
fn grassroots_and_later_admissions_deductibles() {
    let policy = demo();
    let cases = [
        discharge("A", "P", "2026-01-05", "grassroots", dec!(1000), ""),
        discharge("B", "P", "2026-01-20", "grassroots", dec!(1000), ""),
        discharge("C", "P", "2026-02-20", "1", dec!(1000), ""),
    ];
    let year = settle_patient(&policy, &YearToDate::default(), &cases, true).unwrap();
    let d: Vec<_> = year.settlements.iter().map(|s| (s.deductible, s.basic)).collect();
    assert_eq!(d, [(dec!(100), dec!(810.00)), (dec!(0), dec!(900.00)), (dec!(0), dec!(850.00))]);
}

#[test]
fn prior_figures_continue_the_year() {
    let policy = demo();
    let cases = [
        discharge("C1", "P1", "2026-02-10", "3", dec!(20000), ""),
        discharge("C2", "P1", "2026-05-03", "2", dec!(150000), ""),
        discharge("C3", "P1", "2026-09-20", "3", dec!(300000), ""),
    ];
    let whole = settle_patient(&policy, &YearToDate::default(), &cases, true).unwrap();
    let first = settle_patient(&policy, &YearToDate::default(), &cases[..1], true).unwrap();
    let rest = settle_patient(&policy, &first.totals, &cases[1..], true).unwrap();
    assert_eq!(rest.totals, whole.totals);
    assert_eq!(rest.settlements, whole.settlements[1..]);
}

#[test]
fn dated_tilt_applies_from_its_date() {
    let extra = r#"
[[catastrophic.tilts]]
name = "poor from 2026-07: first band 75%"
categories = ["特困", "低保", "孤儿", "返贫致贫"]
effective_from = "2026-07-01"
deductible = 5000
ratios = [0.75, 0.75, 0.80, 0.85]
uncapped = true
"#;
    // The dated version must come first to supersede the general tilt.
    let text = DEMO.replacen("[[catastrophic.tilts]]", &format!("{}\n[[catastrophic.tilts]]", extra.trim()), 1);
    let policy = BenefitsPolicy::from_toml(&text).unwrap();
    let before = policy.catastrophic_terms("特困", date("2026-06-30"));
    let after = policy.catastrophic_terms("特困", date("2026-07-01"));
    assert_eq!(before.ratios[0], dec!(0.70));
    assert_eq!(after.ratios[0], dec!(0.75));
    assert_eq!(after.cap, None);
    assert_eq!(policy.catastrophic_terms("", date("2026-07-01")).cap, Some(dec!(400000)));
    let year =
        settle_patient(&policy, &YearToDate::default(), &[discharge("T", "P", "2026-08-01", "3", dec!(20000), "特困")], true).unwrap();
    assert_eq!(year.settlements[0].catastrophic, dec!(2565.00)); // 3,420 × 75%
}

#[test]
fn unknown_keys_and_contradictions_are_named() {
    let err = BenefitsPolicy::from_toml(&DEMO.replace("annual_limit = 20000", "annual_limit = 20000\nlimit_per_case = 1")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Parse(m) if m.contains("limit_per_case")), "{err}");
    let err = BenefitsPolicy::from_toml(&DEMO.replace("{ from = 200000, ratio = 0.70 }", "{ from = 90000, ratio = 0.70 }")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Invalid { key, .. } if key == "catastrophic.bands[2].from"), "{err}");
    let err = BenefitsPolicy::from_toml(&DEMO.replace("ratio = 0.85", "ratio = 1.85")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Invalid { key, .. } if key == "basic.hospitals[0].ratio"), "{err}");
    let err = BenefitsPolicy::from_toml(&DEMO.replace("ratio_add = 0.10", "ratio_add = 0.30")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Invalid { key, .. } if key.starts_with("catastrophic.tilts[0].ratio_add")), "{err}");
    let err = BenefitsPolicy::from_toml(&DEMO.replace("categories = [\"因病致贫\"]", "categories = [\"因病\"]")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Invalid { key, .. } if key == "assistance.groups[2].categories[0]"), "{err}");
    let err = BenefitsPolicy::from_toml(&DEMO.replace("deductibles = [500, 400]", "deductibles = [400, 500]")).unwrap_err();
    assert!(matches!(&err, BenefitsError::Invalid { key, .. } if key == "basic.hospitals[1].deductibles[1]"), "{err}");
}

#[test]
fn bad_discharges_are_rejected() {
    let policy = demo();
    let mut case = discharge("X", "P", "2026-01-01", "4", dec!(100), "");
    assert!(settle_patient(&policy, &YearToDate::default(), std::slice::from_ref(&case), true).is_err());
    case.hospital_kind = "3".into();
    case.covered_cost = dec!(100.001);
    assert!(settle_patient(&policy, &YearToDate::default(), std::slice::from_ref(&case), true).is_err());
    case.covered_cost = dec!(100);
    case.category = "VIP".into();
    assert!(settle_patient(&policy, &YearToDate::default(), std::slice::from_ref(&case), true).is_err());
    case.category = String::new();
    case.discharge_date = date("2025-12-31");
    assert!(settle_patient(&policy, &YearToDate::default(), std::slice::from_ref(&case), true).is_err());
}

const CATEGORIES: [&str; 7] = ["", "特困", "低保", "孤儿", "返贫致贫", "低保边缘", "因病致贫"];
const KINDS: [&str; 4] = ["1", "2", "3", "grassroots"];

fn arb_discharges() -> impl Strategy<Value = Vec<Discharge>> {
    let one = (0usize..5, 1u32..=365, 0usize..4, 0i64..60_000_000, 0i64..1_000_000, 0u32..1000);
    proptest::collection::vec(one, 1..40).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (patient, day, kind, covered, self_paid, id))| {
                Discharge {
                    case_id: format!("C{id:04}-{i:02}"),
                    patient_id: format!("P{patient}"),
                    discharge_date: Date::from_ymd(2026, 1, 1).unwrap().add_days(day as i32 - 1),
                    hospital_kind: KINDS[kind].into(),
                    covered_cost: Decimal::new(covered, 2),
                    self_paid: Decimal::new(self_paid, 2),
                    // One category per person (P0 ordinary, P1 特困, …).
                    category: CATEGORIES[patient % 7].into(),
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn layers_add_up_and_respect_caps(cases in arb_discharges()) {
        let policy = demo();
        let years = settle_year(&policy, &BTreeMap::new(), &cases, false).unwrap();
        for year in &years {
            for s in &year.settlements {
                let covered = cases.iter().find(|c| c.case_id == s.case_id && c.patient_id == s.patient_id).unwrap().covered_cost;
                prop_assert_eq!(s.basic + s.catastrophic + s.subsidy + s.assistance + s.patient_covered, covered);
                for amount in [s.basic, s.catastrophic, s.subsidy, s.assistance, s.patient_covered] {
                    prop_assert!(amount >= Decimal::ZERO);
                    prop_assert!(amount.normalize().scale() <= 2);
                }
                prop_assert_eq!(s.patient_total, s.patient_covered + s.self_paid);
            }
            let t = &year.totals;
            prop_assert!(t.basic_paid <= dec!(150000));
            prop_assert!(t.subsidy_paid <= dec!(200000));
            prop_assert!(t.assistance_paid <= dec!(20000));
            let person = cases.iter().find(|c| c.patient_id == year.patient_id).unwrap();
            if policy.catastrophic_terms(&person.category, person.discharge_date).cap.is_some() {
                prop_assert!(t.catastrophic_paid <= dec!(400000));
            }
        }
    }

    #[test]
    fn yearly_figures_do_not_depend_on_order_or_split(cases in arb_discharges(), seed in any::<u64>(), split in 0usize..40) {
        let policy = demo();
        let reference = settle_year(&policy, &BTreeMap::new(), &cases, false).unwrap();
        let mut shuffled = cases.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&settle_year(&policy, &BTreeMap::new(), &shuffled, false).unwrap(), &reference);
        // Split by date: settle the earlier part, carry the figures into the later part.
        let mut sorted = cases.clone();
        sorted.sort_by(|a, b| (a.discharge_date, &a.case_id).cmp(&(b.discharge_date, &b.case_id)));
        let split = split.min(sorted.len());
        let (early, late) = sorted.split_at(split);
        let first = settle_year(&policy, &BTreeMap::new(), early, false).unwrap();
        let priors: BTreeMap<String, YearToDate> = first.iter().map(|y| (y.patient_id.clone(), y.totals.clone())).collect();
        let second = settle_year(&policy, &priors, late, false).unwrap();
        for year in &reference {
            let totals = second.iter().find(|y| y.patient_id == year.patient_id).map(|y| &y.totals)
                .or_else(|| first.iter().find(|y| y.patient_id == year.patient_id).map(|y| &y.totals)).unwrap();
            prop_assert_eq!(totals, &year.totals);
        }
    }
}

// The fast path (fast.rs) against the reference: equal results, equal errors, any thread count.

const DEMO_DISCHARGES: &str = include_str!("../../tests/benefits/discharges.csv");

fn demo_discharges() -> Vec<Discharge> {
    let mut reader = csv::Reader::from_reader(DEMO_DISCHARGES.as_bytes());
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let amount = |i: usize| if record[i].is_empty() { Decimal::ZERO } else { Decimal::from_str(&record[i]).unwrap() };
            Discharge {
                case_id: record[0].into(),
                patient_id: record[1].into(),
                discharge_date: date(&record[2]),
                hospital_kind: record[3].into(),
                covered_cost: amount(4),
                self_paid: amount(5),
                category: record[6].into(),
            }
        })
        .collect()
}

fn fast_rows(year: &FenYear) -> Vec<(FenPatient, Vec<FenSettlement>)> {
    year.patients().map(|(patient, rows)| (*patient, rows.to_vec())).collect()
}

/// The fast path at 1, 2 and 4 threads equals the reference (results or error) and itself.
fn assert_fast_equals_reference(policy: &BenefitsPolicy, priors: &BTreeMap<String, YearToDate>, cases: &[Discharge]) {
    let reference = settle_year(policy, priors, cases, false);
    let mut first_rows = None;
    for threads in [1, 2, 4] {
        let fast = settle_year_fast(policy, priors, cases, threads);
        match (&reference, fast) {
            (Ok(reference), Ok(fast)) => {
                assert_eq!(&fast.to_patient_years(policy, cases), reference, "{threads} threads");
                let rows = fast_rows(&fast);
                assert_eq!(&*first_rows.get_or_insert_with(|| rows.clone()), &rows, "{threads} threads");
            }
            (Err(reference), Err(fast)) => assert_eq!(&fast, reference, "{threads} threads"),
            (reference, fast) => panic!("{threads} threads: reference {reference:?}, fast {:?}", fast.map(|f| f.len())),
        }
    }
}

#[test]
fn fast_path_equals_reference_on_the_demo_discharges() {
    let policy = demo();
    let cases = demo_discharges();
    assert_fast_equals_reference(&policy, &BTreeMap::new(), &cases);
    // The worked examples come out of the fast path too.
    let year = settle_year_fast(&policy, &BTreeMap::new(), &cases, 2).unwrap().to_patient_years(&policy, &cases);
    let p1: Vec<Decimal> = year[0].settlements.iter().map(|s| s.patient_covered).collect();
    assert_eq!(p1, [dec!(8420.00), dec!(18760.00), dec!(83810.00)]);
    assert_eq!(year[1].settlements[0].assistance, dec!(4218.20));
}

#[test]
fn fast_path_errors_are_the_references() {
    let policy = demo();
    let mut cases = demo_discharges();
    cases[1].hospital_kind = "9".into();
    cases[2].covered_cost = dec!(10.005);
    assert_fast_equals_reference(&policy, &BTreeMap::new(), &cases);
    let priors = BTreeMap::from([("P1".to_string(), YearToDate { basic_paid: dec!(0.001), ..YearToDate::default() })]);
    let err = settle_year_fast(&policy, &priors, &demo_discharges(), 2).unwrap_err();
    assert!(
        matches!(&err, BenefitsError::Patient { patient_id, message } if patient_id == "P1" && message.contains("basic_paid")),
        "{err}"
    );
    assert_fast_equals_reference(&policy, &priors, &demo_discharges());
}

/// Perturbs discharges: costs, dates, kinds, categories, and now and then a value the engine
/// rejects (an unknown kind or category, a fraction of a fen, a date outside the year).
fn perturb(cases: &mut [Discharge], seed: u64, reject: bool) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in cases.iter_mut() {
        match next() % 6 {
            0 => case.covered_cost = Decimal::new((next() % 100_000_000) as i64, 2),
            1 => case.discharge_date = Date::from_ymd(2026, 1, 1).unwrap().add_days((next() % 365) as i32),
            2 => case.hospital_kind = KINDS[(next() % 4) as usize].into(),
            3 => case.category = CATEGORIES[(next() % 7) as usize].into(),
            4 => case.self_paid = Decimal::new((next() % 1_000_000) as i64, 2),
            _ => {}
        }
        if reject && next() % 50 == 0 {
            match next() % 4 {
                0 => case.hospital_kind = "4".into(),
                1 => case.category = "VIP".into(),
                2 => case.covered_cost = dec!(1.001),
                _ => case.discharge_date = date("2027-01-01"),
            }
        }
    }
}

proptest! {
    #[test]
    fn fast_path_equals_reference(
        cases in arb_discharges(),
        seed in any::<u64>(),
        reject in any::<bool>(),
        prior_cents in proptest::collection::vec((0u32..3, 0i64..20_000_000, 0i64..2_000_000), 0..5),
    ) {
        let policy = demo();
        let mut cases = cases;
        perturb(&mut cases, seed, reject);
        // Some persons come with figures from earlier in the year.
        let priors: BTreeMap<String, YearToDate> = prior_cents
            .iter()
            .enumerate()
            .map(|(i, &(admissions, burden, paid))| {
                (format!("P{i}"), YearToDate {
                    admissions,
                    basic_paid: Decimal::new(paid * 3, 2),
                    personal_burden: Decimal::new(burden, 2),
                    catastrophic_paid: Decimal::new(paid / 2, 2),
                    out_of_pocket: Decimal::new(burden, 2),
                    ..YearToDate::default()
                })
            })
            .collect();
        assert_fast_equals_reference(&policy, &priors, &cases);
    }

    #[test]
    fn fast_path_equals_reference_on_perturbed_demo_discharges(seed in any::<u64>(), copies in 1usize..30) {
        // The demo file, repeated under other patient and case ids, then perturbed.
        let policy = demo();
        let mut cases = Vec::new();
        for copy in 0..copies {
            for case in demo_discharges() {
                cases.push(Discharge { case_id: format!("{}-{copy}", case.case_id), patient_id: format!("{}-{}", case.patient_id, copy % 7), ..case });
            }
        }
        perturb(&mut cases, seed, false);
        assert_fast_equals_reference(&policy, &BTreeMap::new(), &cases);
    }
}

/// A year large enough that the fast path samples the patient ids it splits the partitions at
/// (more than 64 discharges a partition), with ids of several lengths sharing prefixes, and one
/// person with a fifth of the discharges (splitters that repeat), perturbed.
#[test]
fn fast_path_equals_reference_on_a_sampled_year() {
    let policy = demo();
    let demo_cases = demo_discharges();
    let mut cases = Vec::new();
    let mut copy = 0usize;
    while cases.len() < 40_000 {
        for case in &demo_cases {
            let patient_id = if copy % 5 == 0 { "P1".to_string() } else { format!("{}-{}", case.patient_id, copy % 4001) };
            cases.push(Discharge { case_id: format!("{}-{copy}", case.case_id), patient_id, ..case.clone() });
        }
        copy += 1;
    }
    perturb(&mut cases, 0x5EED, true);
    assert_fast_equals_reference(&policy, &BTreeMap::new(), &cases);
    // Without the rejected values the year settles, so the results are compared too.
    perturb(&mut cases, 0x5EED, false);
    for case in &mut cases {
        if case.hospital_kind == "4"
            || case.category == "VIP"
            || case.covered_cost == dec!(1.001)
            || case.discharge_date > date("2026-12-31")
        {
            case.hospital_kind = "1".into();
            case.category = String::new();
            case.covered_cost = dec!(1000.00);
            case.discharge_date = date("2026-06-30");
        }
    }
    let reference = settle_year(&policy, &BTreeMap::new(), &cases, false).expect("a valid year");
    assert!(reference.len() > 4000, "{} persons", reference.len());
    assert_fast_equals_reference(&policy, &BTreeMap::new(), &cases);
}

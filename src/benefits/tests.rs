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

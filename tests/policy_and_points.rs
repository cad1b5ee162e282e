//! Region policy validation and case points: the worked examples of the national default rule.

use dipdrg::case::{Case, Fund};
use dipdrg::drg::trace::Severity;
use dipdrg::policy::{Coefficient, Policy};
use dipdrg::pricing::{price_case, CaseCategory, ScoredGroup};
use dipdrg::settlement::{CaseTerms, SettlementCase, Totals};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::path::PathBuf;

fn demo_policy_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/demo-city-2026-dip.toml");
    std::fs::read_to_string(path).expect("demo policy")
}

/// A minimal policy with the national outlier defaults and coefficient 1 everywhere.
fn national(boundary: &str) -> Policy {
    Policy::parse(&format!(
        r#"
region = "test"
year = 2026
version = "1"
scheme = "dip"
level_coefficients = {{ "3" = 1 }}
hospitals = {{ H1 = {{ level = "3" }} }}
[outliers]
low_ratio = 0.5
high_ratio = 2
boundary = "{boundary}"
high_formula = "excess_plus_one"
low_formula = "proportional"
special_review_ratio = 5
"#
    ))
    .expect("policy")
}

fn case_costing(cost: Decimal) -> Case {
    Case {
        case_id: "C1".into(),
        hospital_id: Some("H1".into()),
        age: Some(50),
        los: Some(7),
        diagnoses: vec!["K80.100".into()],
        total_cost: Some(cost),
        ..Case::default()
    }
}

fn group() -> ScoredGroup<'static> {
    ScoredGroup { code: "K80.1-001", score: dec!(1244.06), mean_cost: dec!(10000), grassroots: false }
}

#[test]
fn national_outlier_rule_worked_examples() {
    let strict = national("strict");
    let points = |cost: Decimal| price_case(&strict, &case_costing(cost), Some(&group()), None);
    let high = points(dec!(25000));
    assert_eq!((high.points.value(), high.category), (dec!(1866.09), CaseCategory::HighOutlier));
    let low = points(dec!(4000));
    assert_eq!((low.points.value(), low.category), (dec!(497.62), CaseCategory::LowOutlier));
    let normal = points(dec!(12000));
    assert_eq!((normal.points.value(), normal.category), (dec!(1244.06), CaseCategory::Normal));
    let boundary = points(dec!(20000));
    assert_eq!((boundary.points.value(), boundary.category), (dec!(1244.06), CaseCategory::Normal), "r = 2 is not above 2 when strict");
    let extreme = points(dec!(60000));
    assert_eq!(extreme.category, CaseCategory::SpecialReview);
    assert_eq!(extreme.points.value(), dec!(6220.30), "((6 − 2) + 1) × 1244.06 until reviewed");
}

#[test]
fn inclusive_boundary_counts_the_threshold_itself() {
    let inclusive = national("inclusive");
    let at_two = price_case(&inclusive, &case_costing(dec!(20000)), Some(&group()), None);
    assert_eq!((at_two.points.value(), at_two.category), (dec!(1244.06), CaseCategory::HighOutlier), "((2 − 2) + 1) × score");
    let at_half = price_case(&inclusive, &case_costing(dec!(5000)), Some(&group()), None);
    assert_eq!((at_half.points.value(), at_half.category), (dec!(622.03), CaseCategory::LowOutlier));
}

#[test]
fn severity_takes_the_largest_and_the_hospital_coefficient_applies() {
    let policy = Policy::parse(&demo_policy_text()).expect("demo policy");
    let mut case = case_costing(dec!(12000));
    case.hospital_id = Some("H003".into()); // level 2: 0.92
    case.age = Some(85); // age band 1.05
    let mut priced = price_case(&policy, &case, Some(&group()), Some(Severity::Mcc)); // MCC 1.15 wins
                                                                                      // 1244.06 × 1.15 × 0.92 = 1316.21548 → 1316.22
    assert_eq!(priced.points.value(), dec!(1316.22));
    assert_eq!(priced.explain(&policy, &case), "severity 1.15 (with MCC); hospital 0.92 (hospital H003 level 2)");
    priced = price_case(&policy, &case, Some(&group()), None);
    assert_eq!(priced.points.value(), dec!(1201.76), "1244.06 × 1.05 × 0.92 = 1201.76196");
    // A hospital's own coefficient beats its level's.
    case.hospital_id = Some("H002".into());
    assert_eq!(price_case(&policy, &case, Some(&group()), None).points.value(), dec!(1280.14), "× 1.05 × 0.98");
}

#[test]
fn bed_day_exemption_and_ungrouped_cases() {
    let policy = Policy::parse(&demo_policy_text()).expect("demo policy");
    let mut psychiatric = case_costing(dec!(30000));
    psychiatric.diagnoses = vec!["F20.000".into()];
    psychiatric.los = Some(59);
    assert_eq!(price_case(&policy, &psychiatric, Some(&group()), None).category, CaseCategory::HighOutlier, "59 days: not bed-day yet");
    psychiatric.los = Some(200);
    let priced = price_case(&policy, &psychiatric, None, None);
    assert_eq!(priced.category, CaseCategory::Exempt, "exemptions come first: a 200-day stay is paid by item");
    psychiatric.los = Some(180);
    let priced = price_case(&policy, &psychiatric, None, None);
    assert_eq!((priced.category, priced.points.value()), (CaseCategory::BedDay, dec!(14400)), "180 paid days × 80 points");
    psychiatric.los = Some(60);
    let priced = price_case(&policy, &psychiatric, None, None);
    assert_eq!((priced.category, priced.points.value()), (CaseCategory::BedDay, dec!(4800)), "60 days × 80 points");
    let ungrouped = price_case(&policy, &case_costing(dec!(100)), None, None);
    assert_eq!((ungrouped.category, ungrouped.points.value()), (CaseCategory::Ungrouped, dec!(0)));
}

/// Issue 16: a bed-day case used to carry `points_per_day` as its base score, so the CMI counted
/// a grouped psychiatric stay as an 80/1000 case. The CMI counts it as its group.
#[test]
fn a_bed_day_case_counts_in_the_cmi_with_its_group_score() {
    let mut policy = Policy::parse(&demo_policy_text()).expect("demo policy");
    policy.exemptions.clear();
    let mut psychiatric = case_costing(dec!(30000));
    psychiatric.diagnoses = vec!["F20.000".into()];
    psychiatric.los = Some(90);
    let bed_day = price_case(&policy, &psychiatric, Some(&group()), None);
    assert_eq!((bed_day.category, bed_day.points.value()), (CaseCategory::BedDay, dec!(7200)), "90 days × 80 points");
    assert_eq!(bed_day.base_score, dec!(1244.06), "the group's score, not the 80 points per day");
    let normal = price_case(&policy, &case_costing(dec!(12000)), Some(&group()), None);
    let assessed = |points: dipdrg::pricing::CasePoints| dipdrg::scoring::Assessment {
        status: "CORE",
        group: "K80.1-001".into(),
        family: "K80.1".into(),
        complication: None,
        group_mean_cost: Some(dec!(10000)),
        group_mean_los: None,
        baseline_mean_cost: None,
        points,
    };
    let mut totals = Totals::default();
    for points in [bed_day, normal] {
        let terms = CaseTerms::assessed(&assessed(points));
        totals.add(&SettlementCase::new(0, Fund::Employee, 1, terms, dec!(0), dec!(0)));
    }
    // (1244.06 + 1244.06) ÷ 1000 ÷ 2 grouped cases; with 80 as the bed-day case's score it was
    // (80 + 1244.06) ÷ 1000 ÷ 2 = 0.6620.
    assert_eq!(totals.scores, dec!(2488.12));
    assert_eq!(totals.cmi(policy.average_case_score()), dec!(1.2441));
}

fn policy_error(edit: impl Fn(&str) -> String) -> String {
    match Policy::parse(&edit(&demo_policy_text())) {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_demo_policy_is_valid_and_exact() {
    let policy = Policy::parse(&demo_policy_text()).expect("demo policy");
    assert_eq!(policy.level_coefficients["2"], Coefficient::Flat(dec!(0.92)), "0.92 is read exactly, not as a binary float");
    assert_eq!(policy.hospital_coefficient("H002"), Some(Coefficient::Flat(dec!(0.98))));
}

#[test]
fn policy_mistakes_are_rejected_naming_the_key() {
    let unknown = policy_error(|t| t.replace("points_decimals = 2", "points_decimals = 2\ncolour = \"red\""));
    assert!(unknown.contains("unknown field `colour`"), "{unknown}");
    let nested_unknown = policy_error(|t| t.replace("low_ratio = 0.5", "low_ratio = 0.5\nlow_ratoi = 0.4"));
    assert!(nested_unknown.contains("low_ratoi"), "{nested_unknown}");
    assert_eq!(
        policy_error(|t| t.replace("\"2\" = 0.92", "\"2\" = -0.92")),
        "policy key level_coefficients.2: must be positive, found -0.92"
    );
    assert_eq!(
        policy_error(|t| t.replace("low_ratio = 0.5", "low_ratio = 2.5").replace("high_ratio = 2.0", "high_ratio = 3")),
        "policy key outliers: low_ratio must be at most 1 and high_ratio at least 1"
    );
    assert_eq!(
        policy_error(|t| t.replace("low_ratio = 0.5", "low_ratio = 1.0").replace("high_ratio = 2.0", "high_ratio = 1.0")),
        "policy key outliers.low_ratio: 1 must be below outliers.high_ratio 1"
    );
    assert_eq!(
        policy_error(|t| t.replace("special_review_ratio = 5.0", "special_review_ratio = 1.5")),
        "policy key outliers.special_review_ratio: 1.5 must be above outliers.high_ratio 2"
    );
    assert_eq!(
        policy_error(|t| t.replace("H005 = { level = \"1\"", "H005 = { level = \"4\"")),
        "policy key hospitals.H005.level: level \"4\" has no entry in level_coefficients"
    );
    assert_eq!(policy_error(|t| t.replace("mcc = 1.15", "mcc = 1.01")), "policy key severity.mcc: 1.01 must not be below severity.cc 1.05");
    assert_eq!(
        policy_error(|t| t.replace("{ max_age = 6, coefficient = 1.1 }", "{ min_age = 9, max_age = 6, coefficient = 1.1 }")),
        "policy key severity.age_bands[0].min_age: 9 is above max_age 6"
    );
    assert_eq!(
        policy_error(|t| t.replace("points_per_day = 80", "points_per_day = 0")),
        "policy key bed_day[0].points_per_day: must be positive, found 0"
    );
    let wrong_type = policy_error(|t| t.replace("scheme = \"dip\"", "scheme = \"fee-for-service\""));
    assert!(wrong_type.contains("scheme") || wrong_type.contains("fee-for-service"), "{wrong_type}");
    let bad_number = policy_error(|t| t.replace("high_excess_factor = 1.0", "high_excess_factor = \"one\""));
    assert!(bad_number.contains("\"one\" is not a decimal number"), "{bad_number}");
}

/// Issue 16: both demo policies exempted stays of 60+ days before their bed-day rule (60+ days)
/// was checked, so it could never apply. The lint names that; the shipped policies are clean.
#[test]
fn the_lint_finds_the_bed_day_rule_behind_the_old_exemption_and_the_shipped_policies_are_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for name in ["policies/demo-city-2026-dip.toml", "policies/demo-city-2026-drg.toml"] {
        let text = std::fs::read_to_string(root.join(name)).expect("policy");
        let shipped = Policy::parse(&text).expect("policy");
        assert_eq!(dipdrg::policy::lint::lint_pricing_rules(&shipped), vec![], "{name}");
        let old = Policy::parse(&text.replace("min_los = 181", "min_los = 60")).expect("policy");
        let found = dipdrg::policy::lint::lint_pricing_rules(&old);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!((found[0].code, found[0].key.as_str()), ("POLICY_BED_DAY_BEHIND_EXEMPTION", "bed_day[0]"), "{name}");
    }
}

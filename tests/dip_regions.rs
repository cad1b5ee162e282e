//! The regional DIP extensions (E1–E18 of `../shared/reference/dip-regions/`): the worked
//! examples of its `EXAMPLES.md`, and one test per extension that gives other points (or another
//! group) with the extension off. Every number is worked out in the comments.

use dipdrg::case::{Case, Date, Fund};
use dipdrg::dip::DipCatalog;
use dipdrg::io::case_csv::CaseReader;
use dipdrg::policy::Policy;
use dipdrg::pricing::CaseCategory;
use dipdrg::scoring::{Assessment, DipTerms, Scorer};
use dipdrg::tables::source::SourceTable;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// The worked examples of EXAMPLES.md, read from the reference folder.

fn examples_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/dip-regions/examples");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

/// Loads an example (policy, catalog, cases) and assesses its cases: (case id, group, points).
pub fn assess_dir(policy_path: &std::path::Path, catalog: &std::path::Path, cases: &std::path::Path) -> Vec<(String, String, Assessment)> {
    let policy = Policy::load(policy_path).unwrap_or_else(|e| panic!("{}: {e}", policy_path.display()));
    let scorer = Scorer::load(&policy, policy_path, catalog).unwrap_or_else(|e| panic!("{}: {e}", catalog.display()));
    let file = std::fs::File::open(cases).expect("cases file");
    CaseReader::new(file)
        .expect("header")
        .map(|c| {
            let case = c.expect("case");
            let assessment = scorer.assess(&policy, &case);
            (case.case_id.clone(), assessment.group.to_string(), assessment)
        })
        .collect()
}

fn example(name: &str) -> Option<Vec<(String, String, Assessment)>> {
    let dir = examples_dir()?.join(name);
    Some(assess_dir(&dir.join("policy.toml"), &dir.join("catalog"), &dir.join("cases.csv")))
}

#[test]
fn example_xianning_x1_common_engine_high_outlier() {
    let Some(cases) = example("421200-2023") else { return };
    let (id, group, a) = &cases[0];
    // r = 32,000 ÷ 15,000 = 2.1333 ≥ 2: high, factor 1.1333; 1200 × 1.1333 × 0.95 = 1292.00.
    assert_eq!((id.as_str(), group.as_str()), ("X1", "K80.1-51.2300"));
    assert_eq!(a.points.category, CaseCategory::HighOutlier);
    assert_eq!(a.points.points.value(), dec!(1292.00));
}

#[test]
fn example_yichang_y1_mcc_supplement_scales_the_mean() {
    let Some(cases) = example("420500-2023") else { return };
    let (id, group, a) = &cases[0];
    // S = max(1.05 age, 1.20 MCC, 1.00 stay) = 1.20; mean 10,000 × 1.2 = 12,000; r = 1.75 normal;
    // 800 × 1.20 × 1.0 = 960.00 (today: r = 2.1 high, 880.00).
    assert_eq!((id.as_str(), group.as_str()), ("Y1", "I63.9-0"));
    assert_eq!(a.points.category, CaseCategory::Normal);
    assert_eq!(a.points.cost_ratio.map(|r| r.round_dp(4)), Some(dec!(1.75)));
    assert_eq!(a.points.points.value(), dec!(960.00));
}

#[test]
fn example_jingzhou_jz1_exact_set_then_highest_score() {
    let Some(cases) = example("421000-2023") else { return };
    let (id, group, a) = &cases[0];
    // A (1300) and B (1150) both take every procedure; the highest score wins: 1300 × 0.95.
    assert_eq!((id.as_str(), group.as_str()), ("JZ1", "K80.1-51.2300"));
    assert_eq!(a.points.points.value(), dec!(1235.00));
}

// ---------------------------------------------------------------------------------------------
// One test per extension, on a small catalog built in memory.

const BASE_CATALOG: &str = "\
code,name,kind,diagnosis,procedures,treatment,score,mean_cost
K80.1-A,a,core,K80.1,51.2300,surgery,1000,10000
K80.1-B,b,core,K80.1,51.2200/51.2300,surgery,1200,12000
K80.1-0,c,core,K80.1,,,500,5000
K80.2-A,a,core,K80.2,51.2300,,1000,10000
K80.2-G,g,grassroots,K80.2,51.2300,,900,9000
K80.6-A,a,core,K80.6,51.2300,,1000,10000
K80-S,s,comprehensive,K80,,surgery,800,8000
K80-D,d,comprehensive,K80,,diagnostic,600,6000
K80-C,c,comprehensive,K80,,conservative,400,4000
";

const TYPES: &str = "\
code,type,level,incision
51.2200,surgery,3,II
51.2300,surgery,3,II
54.5100,surgery,3,II
86.0400,surgery,1,0
45.1300,diagnostic,1,0
";

const BASE_POLICY: &str = r#"
region = "test"
year = 2023
version = "1"
scheme = "dip"
level_coefficients = { "3" = 0.9 }
@TOP@
hospitals = { H1 = { level = "3" @HOSPITAL@ } }
[outliers]
low_ratio = 0.5
high_ratio = 2
boundary = "inclusive"
high_formula = "@FORMULA@"
low_formula = "proportional"
@OUTLIERS@
[severity]
@SEVERITY@
@TAIL@
"#;

/// A policy from the base with text put in its places.
#[derive(Default, Clone, Copy)]
struct PolicyText<'a> {
    /// `high_formula` (empty: `excess_plus_one`).
    formula: &'a str,
    top: &'a str,
    hospital: &'a str,
    outliers: &'a str,
    severity: &'a str,
    tail: &'a str,
}

impl PolicyText<'_> {
    fn policy(&self) -> Policy {
        let text = self.text();
        Policy::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn text(&self) -> String {
        BASE_POLICY
            .replace("@FORMULA@", if self.formula.is_empty() { "excess_plus_one" } else { self.formula })
            .replace("@TOP@", self.top)
            .replace("@HOSPITAL@", self.hospital)
            .replace("@OUTLIERS@", self.outliers)
            .replace("@SEVERITY@", self.severity)
            .replace("@TAIL@", self.tail)
    }
}

/// A scorer over the base catalog plus `extra_rows`, with a `catalog.csv` header of `columns`
/// (extra columns appended to every base row as empty cells) and extra files.
fn scorer(policy: &Policy, extra_columns: &str, extra_rows: &str, files: &[(&str, &str)]) -> Scorer {
    let mut text = String::new();
    let commas = extra_columns.matches(',').count();
    for (i, line) in BASE_CATALOG.lines().enumerate() {
        text.push_str(line);
        if i == 0 {
            text.push_str(extra_columns);
        } else {
            text.push_str(&",".repeat(commas));
        }
        text.push('\n');
    }
    text.push_str(extra_rows);
    let mut sources = BTreeMap::new();
    sources.insert("catalog.csv".to_string(), SourceTable::parse("catalog.csv", text.as_bytes()).unwrap());
    sources.insert("procedure_types.csv".to_string(), SourceTable::parse("procedure_types.csv", TYPES.as_bytes()).unwrap());
    for (name, body) in files {
        sources.insert(name.to_string(), SourceTable::parse(name, body.as_bytes()).unwrap());
    }
    let catalog = DipCatalog::build("test".into(), &sources).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let terms = DipTerms::resolve(policy, &catalog).expect("conditions resolve");
    Scorer::Dip { catalog: Arc::new(catalog), terms: Arc::new(terms) }
}

fn case(diagnoses: &[&str], procedures: &[&str], cost: Decimal) -> Case {
    Case {
        case_id: "T1".into(),
        hospital_id: Some("H1".into()),
        fund: Some(Fund::Employee),
        age: Some(50),
        los: Some(8),
        disposition: Some(1),
        discharge_date: Date::parse("2023-03-10"),
        diagnoses: diagnoses.iter().map(|d| d.to_string()).collect(),
        procedures: procedures.iter().map(|p| p.to_string()).collect(),
        total_cost: Some(cost),
        ..Case::default()
    }
}

/// (group, points, category) of a case.
fn run(policy: &PolicyText<'_>, columns: &str, rows: &str, files: &[(&str, &str)], case: &Case) -> (String, Decimal, CaseCategory) {
    let policy = policy.policy();
    let a = scorer(&policy, columns, rows, files).assess(&policy, case);
    (a.group.to_string(), a.points.points.value(), a.points.category)
}

fn plain(policy: &PolicyText<'_>, case: &Case) -> (String, Decimal, CaseCategory) {
    run(policy, "", "", &[], case)
}

#[test]
fn e1_boundaries_per_end() {
    let on = PolicyText { outliers: r#"low_boundary = "strict""#, ..Default::default() };
    // r = 5,000 ÷ 10,000 = 0.5: strict low end → normal 1000 × 0.9; inclusive → 1000 × 0.5 × 0.9.
    let c = case(&["K80.600"], &["51.2300"], dec!(5000));
    assert_eq!(plain(&on, &c), ("K80.6-A".into(), dec!(900.00), CaseCategory::Normal));
    assert_eq!(plain(&PolicyText::default(), &c), ("K80.6-A".into(), dec!(450.00), CaseCategory::LowOutlier));
    // r = 2 with a strict high end: normal; inclusive: high.
    let on = PolicyText { outliers: r#"high_boundary = "strict""#, ..Default::default() };
    let c = case(&["K80.600"], &["51.2300"], dec!(20000));
    assert_eq!(plain(&on, &c).2, CaseCategory::Normal);
    assert_eq!(plain(&PolicyText::default(), &c).2, CaseCategory::HighOutlier);
}

#[test]
fn e2_excess_plus_hospital_without_multiplying_the_coefficient() {
    let jining = PolicyText { formula: "excess_plus_hospital", outliers: "apply_hospital_coefficient = false", ..Default::default() };
    let c = case(&["K80.600"], &["51.2300"], dec!(30000));
    // r = 3: (3 − 2 + 0.9) × 1000 = 1900.00, H not multiplied; excess_plus_one × H: 2 × 1000 × 0.9.
    assert_eq!(plain(&jining, &c).1, dec!(1900.00));
    assert_eq!(plain(&PolicyText::default(), &c).1, dec!(1800.00));
    // apply_hospital_coefficient = false alone: 2 × 1000 = 2000.00; a low outlier r 0.4: 400.00
    // (360.00 with H).
    let no_h = PolicyText { outliers: "apply_hospital_coefficient = false", ..Default::default() };
    assert_eq!(plain(&no_h, &c).1, dec!(2000.00));
    let low = case(&["K80.600"], &["51.2300"], dec!(4000));
    assert_eq!(plain(&no_h, &low).1, dec!(400.00));
    assert_eq!(plain(&PolicyText::default(), &low).1, dec!(360.00));
}

#[test]
fn e3_special_review_priced_as_normal() {
    let c = case(&["K80.600"], &["51.2300"], dec!(60000));
    // r = 6 > 5: special review; "normal" → 1000 × 0.9 = 900.00; default → (6 − 2 + 1) × 900 = 4500.00.
    let on = PolicyText { outliers: "special_review_ratio = 5\nspecial_review_pricing = \"normal\"", ..Default::default() };
    let off = PolicyText { outliers: "special_review_ratio = 5", ..Default::default() };
    assert_eq!(plain(&on, &c), ("K80.6-A".into(), dec!(900.00), CaseCategory::SpecialReview));
    assert_eq!(plain(&off, &c), ("K80.6-A".into(), dec!(4500.00), CaseCategory::SpecialReview));
}

const AGE_CONDITION: &str = "[[conditions]]\nname = \"age_66_plus\"\nmin_age = 66\n";

#[test]
fn e4_group_supplement_rows_and_the_adjusted_mean() {
    let adjustments = [("adjustments.csv", "group,condition,coefficient\nK80.6-A,age_66_plus,1.10\n")];
    let old = Case { age: Some(70), ..case(&["K80.600"], &["51.2300"], dec!(10000)) };
    let on = PolicyText { tail: AGE_CONDITION, ..Default::default() };
    // 1000 × 1.10 × 0.9 = 990.00; without the row: 900.00.
    assert_eq!(run(&on, "", "", &adjustments, &old).1, dec!(990.00));
    assert_eq!(run(&on, "", "", &[], &old).1, dec!(900.00));
    // Cost 21,000: adjusted mean 11,000 → r 1.909 normal, 990.00; unadjusted r 2.1 → high,
    // 1000 × 1.1 × 1.10 × 0.9 = 1089.00.
    let costly = Case { total_cost: Some(dec!(21000)), ..old.clone() };
    let adjusted = PolicyText { severity: "adjust_mean_cost = true", tail: AGE_CONDITION, ..Default::default() };
    assert_eq!(run(&adjusted, "", "", &adjustments, &costly).1, dec!(990.00));
    assert_eq!(run(&on, "", "", &adjustments, &costly).1, dec!(1089.00));
    // A row's mean_cost replaces the mean: 21,000 ÷ 7,000 = 3 → (3 − 2 + 1) × 1.1 × 900 = 1980.00.
    let with_mean = [("adjustments.csv", "group,condition,coefficient,mean_cost\nK80.6-A,age_66_plus,1.10,7000\n")];
    assert_eq!(run(&adjusted, "", "", &with_mean, &costly).1, dec!(1980.00));
}

#[test]
fn e4_unknown_condition_names_the_adjustments_line() {
    let policy = PolicyText::default().policy();
    let mut sources = BTreeMap::new();
    sources.insert("catalog.csv".to_string(), SourceTable::parse("catalog.csv", BASE_CATALOG.as_bytes()).unwrap());
    sources.insert("procedure_types.csv".to_string(), SourceTable::parse("procedure_types.csv", TYPES.as_bytes()).unwrap());
    let body = "group,condition,coefficient\nK80.1-A,nope,1.1\n";
    sources.insert("adjustments.csv".to_string(), SourceTable::parse("adjustments.csv", body.as_bytes()).unwrap());
    let catalog = DipCatalog::build("t".into(), &sources).unwrap();
    let error = DipTerms::resolve(&policy, &catalog).unwrap_err();
    assert_eq!(error.code(), "TABLE_BAD_VALUE");
    assert!(error.to_string().contains("adjustments.csv: line 2: column condition"), "{error}");
}

#[test]
fn e5_cc_and_mcc_reach_dip_cases() {
    let mcc = ("mcc.csv", "code,exclusion_table\nJ96.000,9\n");
    let on = PolicyText { severity: "cc = 1.05\nmcc = 1.15", ..Default::default() };
    let c = case(&["K80.100", "J96.000"], &["51.2300"], dec!(10000));
    // 1000 × 1.15 × 0.9 = 1035.00; without mcc.csv no DIP case has a complication: 900.00.
    assert_eq!(run(&on, "", "", &[mcc], &c).1, dec!(1035.00));
    assert_eq!(run(&on, "", "", &[], &c).1, dec!(900.00));
    // The principal's exclusion table 9 excludes it; a principal_prefix that does not hold too.
    let excluded = ("cc_exclusions.csv", "principal_code,exclusion_table\nK80.100,9\n");
    assert_eq!(run(&on, "", "", &[mcc, excluded], &c).1, dec!(900.00));
    let prefixed = ("mcc.csv", "code,exclusion_table,principal_prefix\nJ96.000,9,I\n");
    assert_eq!(run(&on, "", "", &[prefixed], &c).1, dec!(900.00));
    // Only secondary diagnoses count.
    assert_eq!(run(&on, "", "", &[("mcc.csv", "code,exclusion_table\nK80.100,\n")], &c).1, dec!(900.00));
}

#[test]
fn e6_age_bands_in_days() {
    let on = PolicyText { severity: "age_bands = [{ max_age_days = 28, coefficient = 1.3 }]", ..Default::default() };
    let off = PolicyText { severity: "age_bands = [{ max_age = 0, coefficient = 1.3 }]", ..Default::default() };
    let newborn = |days| Case { age: Some(0), age_days: Some(days), ..case(&["K80.600"], &["51.2300"], dec!(10000)) };
    // 10 days: 1000 × 1.3 × 0.9 = 1170.00; 40 days: no band, 900.00 (a year band takes both).
    assert_eq!(plain(&on, &newborn(10)).1, dec!(1170.00));
    assert_eq!(plain(&on, &newborn(40)).1, dec!(900.00));
    assert_eq!(plain(&off, &newborn(40)).1, dec!(1170.00));
}

fn grouping(keys: &str) -> String {
    format!("[dip_grouping]\n{keys}\n")
}

#[test]
fn e7_conservative_max_treatment() {
    let diagnostic = case(&["K80.100"], &["45.1300"], dec!(5000));
    let conservative = grouping(r#"conservative_max_treatment = "conservative""#);
    // A diagnostic procedure: "conservative" → comprehensive diagnostic K80-D (600 × 0.9 = 540.00);
    // today's "diagnostic" → the conservative core row (500 × 0.9 = 450.00).
    assert_eq!(plain(&PolicyText { tail: &conservative, ..Default::default() }, &diagnostic).0, "K80-D");
    assert_eq!(plain(&PolicyText::default(), &diagnostic), ("K80.1-0".into(), dec!(450.00), CaseCategory::Normal));
    // A minor surgery (level 1, incision 0): "minor" → the conservative row; today → K80-S.
    let minor = case(&["K80.100"], &["86.0400"], dec!(5000));
    let rule = grouping(r#"conservative_max_treatment = "minor""#);
    assert_eq!(plain(&PolicyText { tail: &rule, ..Default::default() }, &minor).0, "K80.1-0");
    assert_eq!(plain(&PolicyText::default(), &minor).0, "K80-S");
}

#[test]
fn e7_candidate_rank_and_scope() {
    // Cost 10,000: the nearest mean is A (10,000); the highest score is B (1200).
    let c = case(&["K80.100"], &["51.2300"], dec!(10000));
    let highest = grouping(r#"candidate_rank = ["highest_score"]"#);
    assert_eq!(plain(&PolicyText { tail: &highest, ..Default::default() }, &c).0, "K80.1-B");
    assert_eq!(plain(&PolicyText::default(), &c).0, "K80.1-A");
    // Scope: ranked by cost alone, grassroots G (9,000) is nearest a 9,000 case and wins when it
    // is ranked; with scope "core", A wins the ranking and core/any comes first.
    let g = case(&["K80.200"], &["51.2300"], dec!(9000));
    let ranked = grouping(r#"candidate_rank = ["nearest_cost"]"#);
    let core = grouping("candidate_rank = [\"nearest_cost\"]\ncandidate_scope = \"core\"");
    assert_eq!(plain(&PolicyText { tail: &ranked, ..Default::default() }, &g).0, "K80.2-G");
    assert_eq!(plain(&PolicyText { tail: &core, ..Default::default() }, &g).0, "K80.2-A");
}

#[test]
fn e7_final_order_treatment_from_and_unmatched_surgery() {
    let c = case(&["K80.100"], &["51.2300"], dec!(10000));
    let comprehensive_first = grouping(r#"final_order = ["comprehensive/any", "core/any"]"#);
    assert_eq!(plain(&PolicyText { tail: &comprehensive_first, ..Default::default() }, &c).0, "K80-S");
    assert_eq!(plain(&PolicyText::default(), &c).0, "K80.1-A");
    // K80.9 has no core row: the comprehensive type of the principal procedure (diagnostic) or of
    // the highest (surgery).
    let c = case(&["K80.900"], &["45.1300", "51.2200"], dec!(6000));
    let principal = grouping(r#"comprehensive_treatment_from = "principal""#);
    assert_eq!(plain(&PolicyText { tail: &principal, ..Default::default() }, &c).0, "K80-D");
    assert_eq!(plain(&PolicyText::default(), &c).0, "K80-S");
    // A leaves 54.5100 (surgery) unmatched: comprehensive surgery K80-S wins (800 × 0.9 = 720.00).
    let c = case(&["K80.100"], &["51.2300", "54.5100"], dec!(8000));
    let unmatched = grouping("unmatched_surgery_to_comprehensive = true");
    assert_eq!(plain(&PolicyText { tail: &unmatched, ..Default::default() }, &c), ("K80-S".into(), dec!(720.00), CaseCategory::Normal));
    assert_eq!(plain(&PolicyText::default(), &c).0, "K80.1-A");
}

#[test]
fn e7_dip_grouping_is_refused_in_a_drg_policy_and_bad_values_are_named() {
    let drg = PolicyText { tail: "[dip_grouping]\n", ..Default::default() }
        .text()
        .replace("scheme = \"dip\"", "scheme = \"drg\"\ndrg_weights = \"w.csv\"");
    let error = Policy::parse(&drg).unwrap_err();
    assert_eq!(error.to_string(), "policy key dip_grouping: a DRG policy has no DIP grouping rules");
    let bad = PolicyText { tail: "[dip_grouping]\nfinal_order = [\"core/sugery\"]\n", ..Default::default() };
    let error = Policy::parse(&bad.text()).unwrap_err().to_string();
    assert!(error.contains("core/sugery") && error.contains("final_order"), "{error}");
    let twice = PolicyText { tail: "[dip_grouping]\ncandidate_rank = [\"terms\", \"terms\"]\n", ..Default::default() }.text();
    assert_eq!(Policy::parse(&twice).unwrap_err().to_string(), "policy key dip_grouping.candidate_rank: \"terms\" is listed twice");
}

#[test]
fn e8_prefix_codes_and_the_full_code_key() {
    // 51.2* takes 51.2300; the exact code 51.2 does not (the case falls to K80-S).
    let c = case(&["K80.300"], &["51.2300"], dec!(11000));
    let prefix = "K80.3-P,p,core,K80.3,51.2*,,1100,11000\n";
    assert_eq!(run(&PolicyText::default(), "", prefix, &[], &c).0, "K80.3-P");
    assert_eq!(run(&PolicyText::default(), "", "K80.3-P,p,core,K80.3,51.2,surgery,1100,11000\n", &[], &c).0, "K80-S");
    // With the full code listed too: the nearest mean takes P; full_code keeps the full code F.
    let both = format!("{prefix}K80.3-F,f,core,K80.3,51.2300,,1050,20000\n");
    let full = grouping(r#"candidate_rank = ["full_code", "nearest_cost"]"#);
    assert_eq!(run(&PolicyText::default(), "", &both, &[], &c).0, "K80.3-P");
    assert_eq!(run(&PolicyText { tail: &full, ..Default::default() }, "", &both, &[], &c).0, "K80.3-F");
}

#[test]
fn e9_fallback_blank_and_grassroots_category_rows() {
    // K81 has only a fallback row: 300 × 0.9 = 270.00; without it: not grouped, 0 points.
    let c = case(&["K81.000"], &[], dec!(3000));
    let fallback = "K81-ANY,any,comprehensive,K81,,any,300,3000\n";
    assert_eq!(run(&PolicyText::default(), "", fallback, &[], &c), ("K81-ANY".into(), dec!(270.00), CaseCategory::Normal));
    assert_eq!(plain(&PolicyText::default(), &c), ("".into(), dec!(0), CaseCategory::Ungrouped));
    // The blank group takes a case no other group takes: 200 × 0.9 = 180.00.
    let blank = "KBBZ,blank,comprehensive,*,,any,200,2000\n";
    let z = case(&["Z99.900"], &[], dec!(2000));
    assert_eq!(run(&PolicyText::default(), "", blank, &[], &z), ("KBBZ".into(), dec!(180.00), CaseCategory::Normal));
    // A grassroots row keyed by category K82 takes a conservative K82 case: 350 × 0.9 = 315.00.
    let grassroots = "G82,g,grassroots,K82,,conservative,350,3500\n";
    let k82 = case(&["K82.000"], &[], dec!(3500));
    assert_eq!(run(&PolicyText::default(), "", grassroots, &[], &k82), ("G82".into(), dec!(315.00), CaseCategory::Normal));
    assert_eq!(plain(&PolicyText::default(), &k82).0, "");
}

#[test]
fn e10_cost_ratio_pricing() {
    let on = PolicyText { outliers: "cost_ratio_multiplier = 0.7", ..Default::default() };
    let z = case(&["Z99.900"], &[], dec!(3000));
    // 200 × (3,000 ÷ 2,000) × 0.7 = 210.00; priced normally: r 1.5, 200 × 0.9 = 180.00.
    let priced = "KBBZ,blank,comprehensive,*,,any,200,2000,cost_ratio\n";
    assert_eq!(run(&on, ",pricing", priced, &[], &z), ("KBBZ".into(), dec!(210.00), CaseCategory::Normal));
    assert_eq!(run(&on, ",pricing", "KBBZ,blank,comprehensive,*,,any,200,2000,\n", &[], &z).1, dec!(180.00));
}

#[test]
fn e11_procedure_levels_pick_the_comprehensive_row() {
    // K83 comprehensive surgery rows by level: L12 first, L34 second.
    let rows = "K83-L12,l,comprehensive,K83,,surgery,700,7000,1|2\nK83-L34,l,comprehensive,K83,,surgery,900,9000,3|4\n";
    let level3 = case(&["K83.000"], &["51.2200"], dec!(9000));
    let level1 = case(&["K83.000"], &["86.0400"], dec!(7000));
    assert_eq!(run(&PolicyText::default(), ",procedure_levels", rows, &[], &level3).0, "K83-L34");
    assert_eq!(run(&PolicyText::default(), ",procedure_levels", rows, &[], &level1).0, "K83-L12");
    let unsplit = "K83-L12,l,comprehensive,K83,,surgery,700,7000,\nK83-L34,l,comprehensive,K83,,surgery,900,9000,\n";
    assert_eq!(run(&PolicyText::default(), ",procedure_levels", unsplit, &[], &level3).0, "K83-L12");
}

#[test]
fn e12_severity_split_family() {
    let rows = "\
K80.4-1,m,core,K80.4,,,500,5000,mild
K80.4-2,c,core,K80.4,,,600,6000,cc
K80.4-3,m,core,K80.4,,,700,7000,mcc
K80.4-4,d,core,K80.4,,,800,8000,death
";
    let mcc = ("mcc.csv", "code,exclusion_table\nJ96.000,\n");
    let c = case(&["K80.400", "J96.000"], &[], dec!(5000));
    // Stay 8 ≥ 4 and an MCC: the mcc row, 700 × 0.9 = 630.00; a 2-day stay: mild, 450.00.
    assert_eq!(run(&PolicyText::default(), ",severity", rows, &[mcc], &c), ("K80.4-3".into(), dec!(630.00), CaseCategory::Normal));
    let short = Case { los: Some(2), ..c.clone() };
    assert_eq!(run(&PolicyText::default(), ",severity", rows, &[mcc], &short).0, "K80.4-1");
    let dead = Case { disposition: Some(5), ..c.clone() };
    assert_eq!(run(&PolicyText::default(), ",severity", rows, &[mcc], &dead).0, "K80.4-4");
    // Without the column the four rows tie until the nearest mean (5,000): K80.4-1.
    let unsplit = rows.replace(",mild", ",").replace(",mcc", ",").replace(",cc", ",").replace(",death", ",");
    assert_eq!(run(&PolicyText::default(), ",severity", &unsplit, &[mcc], &c).0, "K80.4-1");
}

#[test]
fn e13_coefficient_per_fund() {
    let on = PolicyText { hospital: ", coefficient = { employee = 0.611, resident = 0.631 }", ..Default::default() };
    let c = case(&["K80.600"], &["51.2300"], dec!(10000));
    assert_eq!(plain(&on, &c).1, dec!(611.00));
    assert_eq!(plain(&on, &Case { fund: Some(Fund::Resident), ..c.clone() }).1, dec!(631.00));
    // No fund: coefficient 1, 1000.00; a flat coefficient: 900.00.
    assert_eq!(plain(&on, &Case { fund: None, ..c.clone() }).1, dec!(1000.00));
    assert_eq!(plain(&PolicyText::default(), &c).1, dec!(900.00));
    let bad = PolicyText { hospital: ", coefficient = { employee = 0.6 }", ..Default::default() };
    assert!(Policy::parse(&bad.text()).unwrap_err().to_string().contains("needs both employee and resident"));
}

#[test]
fn e14_overrides_by_month_and_insured_region() {
    let tail = r#"
[insured]
local_prefix = "3708"
[[hospital_overrides]]
hospital = "H1"
insured = "remote"
coefficient = 0.7
[[hospital_overrides]]
hospital = "H1"
months = [3]
coefficient = 0.8
point_value = { employee = 11.5, resident = 10.5 }
"#;
    let on = PolicyText { tail, ..Default::default() };
    let march = case(&["K80.600"], &["51.2300"], dec!(10000));
    // Remote (370100): 0.7 → 700.00; local in March: 0.8 → 800.00; local in April: 0.9 → 900.00.
    assert_eq!(plain(&on, &Case { insured_region: Some("370100".into()), ..march.clone() }).1, dec!(700.00));
    assert_eq!(plain(&on, &Case { insured_region: Some("370811".into()), ..march.clone() }).1, dec!(800.00));
    assert_eq!(plain(&on, &Case { discharge_date: Date::parse("2023-04-02"), ..march.clone() }).1, dec!(900.00));
    assert_eq!(plain(&PolicyText::default(), &march).1, dec!(900.00));
    // The March override's point value (per fund) replaces the budget point value for the case.
    let policy = on.policy();
    assert_eq!(policy.override_point_value(&march, Fund::Employee), Some(dec!(11.5)));
    assert_eq!(policy.override_point_value(&march, Fund::Resident), Some(dec!(10.5)));
    let april = Case { discharge_date: Date::parse("2023-04-02"), ..march.clone() };
    assert_eq!(policy.override_point_value(&april, Fund::Employee), None);
}

#[test]
fn e15_group_grassroots_coefficient() {
    // A K80.5 grassroots row alone; G's own 0.5: 900 × 0.5 = 450.00; without it, the hospital's
    // 0.9: 810.00.
    let c = case(&["K80.500"], &["51.2300"], dec!(9000));
    let own = "K80.5-G,g,grassroots,K80.5,51.2300,,900,9000,0.5\n";
    let none = "K80.5-G,g,grassroots,K80.5,51.2300,,900,9000,\n";
    assert_eq!(
        run(&PolicyText::default(), ",grassroots_coefficient", own, &[], &c),
        ("K80.5-G".into(), dec!(450.00), CaseCategory::Normal)
    );
    assert_eq!(run(&PolicyText::default(), ",grassroots_coefficient", none, &[], &c).1, dec!(810.00));
    // Precedence: the row's value before the policy's grassroots_coefficient (0.8 → 720.00).
    let policy = PolicyText { top: "grassroots_coefficient = 0.8", ..Default::default() };
    assert_eq!(run(&policy, ",grassroots_coefficient", own, &[], &c).1, dec!(450.00));
    assert_eq!(run(&policy, ",grassroots_coefficient", none, &[], &c).1, dec!(720.00));
}

#[test]
fn e16_score_zero_is_paid_by_item() {
    let c = case(&["K84.000"], &[], dec!(3000));
    let item = "K84-C,c,comprehensive,K84,,conservative,0,0\n";
    assert_eq!(run(&PolicyText::default(), "", item, &[], &c), ("K84-C".into(), dec!(0), CaseCategory::Exempt));
    let priced = "K84-C,c,comprehensive,K84,,conservative,300,3000\n";
    assert_eq!(run(&PolicyText::default(), "", priced, &[], &c), ("K84-C".into(), dec!(270.00), CaseCategory::Normal));
}

#[test]
fn e17_code_maps_and_excluded_procedures() {
    // X80.100 → K80.100 and 51.23 → 51.2300: group A (900.00); unmapped: not grouped.
    let maps = [("diagnosis_map.csv", "from,to\nX80.100,K80.100\n"), ("procedure_map.csv", "from,to\n51.23,51.2300\n")];
    let c = case(&["X80.100"], &["51.23"], dec!(10000));
    assert_eq!(run(&PolicyText::default(), "", "", &maps, &c), ("K80.1-A".into(), dec!(900.00), CaseCategory::Normal));
    assert_eq!(plain(&PolicyText::default(), &c).0, "");
    // Excluding 51.2300 leaves a conservative case: K80.1-0.
    let excluded = [("excluded_procedures.csv", "code\n51.2300\n")];
    assert_eq!(run(&PolicyText::default(), "", "", &excluded, &case(&["K80.100"], &["51.2300"], dec!(5000))).0, "K80.1-0");
}

#[test]
fn e18_exemption_by_insured_category() {
    let on = PolicyText { tail: "[[exemptions]]\nname = \"离休\"\nbenefits = [\"retired_cadre\"]\n", ..Default::default() };
    let c = Case { benefit: Some("retired_cadre".into()), ..case(&["K80.600"], &["51.2300"], dec!(10000)) };
    assert_eq!(plain(&on, &c).2, CaseCategory::Exempt);
    assert_eq!(plain(&on, &Case { benefit: Some("maternity".into()), ..c.clone() }).2, CaseCategory::Normal);
    assert_eq!(plain(&PolicyText::default(), &c).2, CaseCategory::Normal);
}

#[test]
fn the_trace_names_the_deciding_rank_key_and_class() {
    let tail = grouping(r#"candidate_rank = ["exact_set", "highest_score"]"#);
    let policy = PolicyText { tail: &tail, ..Default::default() }.policy();
    let scorer = scorer(&policy, "", "", &[]);
    let lines = scorer.trace(&policy, &case(&["K80.100"], &["51.2300"], dec!(10000)));
    assert!(lines.iter().any(|l| l == "ranked winner K80.1-B (decided by rank key highest_score)"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "chosen core K80.1-B (class core/any)"), "{lines:#?}");
    // The default rules: the nearest mean decides.
    let policy = PolicyText::default().policy();
    let scorer = self::scorer(&policy, "", "", &[]);
    let lines = scorer.trace(&policy, &case(&["K80.100"], &["51.2300"], dec!(10000)));
    assert!(lines.iter().any(|l| l == "ranked winner K80.1-A (decided by rank key nearest_cost)"), "{lines:#?}");
}

/// An example as "dipdrg today" reads it: the policy without its extension keys, the catalog
/// without its new files; (group, points) of its one case.
fn example_today(name: &str) -> Option<(String, Decimal)> {
    let dir = examples_dir()?.join(name);
    let mut value: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("policy.toml")).expect("policy")).expect("toml");
    for key in ["conditions", "dip_grouping", "exemptions", "hospital_overrides", "insured"] {
        value.remove(key);
    }
    if let Some(toml::Value::Table(severity)) = value.get_mut("severity") {
        severity.remove("adjust_mean_cost");
    }
    let policy = Policy::parse(&toml::to_string(&value).expect("toml text")).expect("policy without extensions");
    let mut sources = BTreeMap::new();
    for file in ["catalog.csv", "procedure_types.csv"] {
        let bytes = std::fs::read(dir.join("catalog").join(file)).expect("catalog file");
        sources.insert(file.to_string(), SourceTable::parse(file, &bytes).unwrap());
    }
    let catalog = DipCatalog::build("today".into(), &sources).expect("catalog");
    let terms = DipTerms::resolve(&policy, &catalog).expect("terms");
    let scorer = Scorer::Dip { catalog: Arc::new(catalog), terms: Arc::new(terms) };
    let case = CaseReader::new(std::fs::File::open(dir.join("cases.csv")).expect("cases")).expect("header").next()?.expect("case");
    let a = scorer.assess(&policy, &case);
    Some((a.group.to_string(), a.points.points.value()))
}

#[test]
fn examples_with_the_extensions_off_give_todays_points() {
    // Y1 today: no supplement, no MCC, r = 21,000 ÷ 10,000 = 2.1 → high, 800 × 1.1 = 880.00.
    let Some(y1) = example_today("420500-2023") else { return };
    assert_eq!(y1, ("I63.9-0".to_string(), dec!(880.00)));
    // JZ1 today: the nearest mean picks B, 1150 × 0.95 = 1092.50.
    assert_eq!(example_today("421000-2023"), Some(("K80.1-51.22/51.23".to_string(), dec!(1092.50))));
    // X1: expressible today, the same 1292.00.
    assert_eq!(example_today("421200-2023"), Some(("K80.1-51.2300".to_string(), dec!(1292.00))));
}

//! Worked examples on the shipped demo table set (`grouper-tables/demo`), each checked by hand
//! against its tables.

use dipdrg::case::Case;
use dipdrg::drg::trace::render;
use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace, Trace};
use std::path::PathBuf;
use std::sync::OnceLock;

pub fn demo_tables() -> &'static DrgTableSet {
    static TABLES: OnceLock<DrgTableSet> = OnceLock::new();
    TABLES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grouper-tables/demo");
        DrgTableSet::load_dir(&dir).expect("demo tables load")
    })
}

fn case(sex: i64, age: i64, diagnoses: &[&str], procedures: &[&str]) -> Case {
    Case {
        case_id: "T1".into(),
        sex: Some(sex),
        age: Some(age),
        diagnoses: diagnoses.iter().map(|s| s.to_string()).collect(),
        procedures: procedures.iter().map(|s| s.to_string()).collect(),
        ..Case::default()
    }
}

fn outcome(case: &Case) -> (String, String, String, String) {
    let tables = demo_tables();
    let result = group(tables, case, MappingMode::Map, &mut NoTrace);
    (
        result.status.as_str().to_string(),
        result.mdc_code(tables).to_string(),
        result.adrg_code(tables).to_string(),
        result.drg_code(tables).to_string(),
    )
}

fn success(mdc: &str, adrg: &str, drg: &str) -> (String, String, String, String) {
    ("SUCCESS".into(), mdc.into(), adrg.into(), drg.into())
}

#[test]
fn pneumonia_with_respiratory_failure_is_split_to_mcc() {
    // J96.000 is an MCC (table 2); J18.900 as principal names table 9, so it is not excluded.
    assert_eq!(outcome(&case(1, 70, &["J18.900", "J96.000"], &[])), success("MDCE", "ES3", "ES31"));
    // E11.900 is only a CC.
    assert_eq!(outcome(&case(1, 70, &["J18.900", "E11.900"], &[])), success("MDCE", "ES3", "ES33"));
    assert_eq!(outcome(&case(1, 70, &["J18.900"], &[])), success("MDCE", "ES3", "ES35"));
}

#[test]
fn exclusion_table_silences_a_related_complication() {
    // Principal J44.100 names exclusion table 2; J96.000 (MCC, table 2) is therefore excluded.
    assert_eq!(outcome(&case(1, 70, &["J44.100", "J96.000"], &[])), success("MDCE", "ET2", "ET25"));
    // A repeat of the principal counts like any other code: J44.100 is a CC of table 2, excluded too.
    assert_eq!(outcome(&case(1, 70, &["J44.100", "J44.100"], &[])), success("MDCE", "ET2", "ET25"));
    // An MCC of another table still counts.
    assert_eq!(outcome(&case(1, 70, &["J44.100", "A41.900"], &[])), success("MDCE", "ET2", "ET21"));
}

#[test]
fn legacy_codes_are_mapped_before_grouping() {
    assert_eq!(outcome(&case(2, 60, &["I10.x01"], &[])), success("MDCF", "FV3", "FV35"));
    assert_eq!(outcome(&case(2, 60, &["K35.800"], &["47.09"])), success("MDCG", "GD2", "GD25"));
}

#[test]
fn an_or_procedure_enters_mdc_a_and_falls_through_when_no_transplant_rule_matches() {
    let tables = demo_tables();
    let appendicitis = case(1, 30, &["K35.800"], &["47.0100"]);
    let mut trace = Trace::default();
    let result = group(tables, &appendicitis, MappingMode::Map, &mut trace);
    assert_eq!(result.drg_code(tables), "GD25");
    assert_eq!(
        render(&trace.steps, tables, &appendicitis),
        vec![
            "MDCA entered",
            "rules AB1, AH1 not matched: principal procedure missing or not in pproc_list",
            "MDCA: no rule matched, falling through to the next MDC",
            "MDCP, MDCM, MDCB, MDCE, MDCF not entered: principal diagnosis not in its list",
            "MDCG entered",
            "rule GD1 not matched: principal diagnosis not in pdx_list",
            "rule GD2 matched: ADRG GD2",
            "DRG GD21 not chosen: no non-excluded MCC among secondary diagnoses",
            "DRG GD25 chosen",
        ]
    );
}

#[test]
fn tracheostomy_with_ventilation_is_a_pre_mdc_group() {
    assert_eq!(outcome(&case(1, 70, &["J18.900", "J96.000"], &["31.1x00", "96.7200"])), success("MDCA", "AH1", "AH11"));
    // Without the ventilation procedure AH1 fails and the case falls through to its MDC.
    assert_eq!(outcome(&case(1, 70, &["J18.900"], &["31.1x00"])), success("MDCE", "ES3", "ES35"));
}

#[test]
fn sex_conditions_keep_a_female_out_of_the_male_mdc() {
    assert_eq!(outcome(&case(1, 70, &["C61.x00"], &[])), success("MDCM", "MR1", "MR15"));
    assert_eq!(outcome(&case(2, 70, &["C61.x00"], &[])), ("FAIL".into(), "0000".into(), "00".into(), "0000".into()));
}

#[test]
fn newborn_weight_bands_sit_on_their_limits() {
    let newborn = |weight: i64, days: i64| Case { age_days: Some(days), birth_weight: Some(weight), ..case(1, 0, &["P07.300"], &[]) };
    assert_eq!(outcome(&newborn(1499, 10)), success("MDCP", "PS1", "PS19"));
    assert_eq!(outcome(&newborn(1500, 10)), success("MDCP", "PS2", "PS25"));
    assert_eq!(outcome(&newborn(2499, 28)), success("MDCP", "PS2", "PS25"));
    assert_eq!(outcome(&newborn(2500, 10)), success("MDCP", "PU1", "PU15"), "2500 g is outside both bands");
    assert_eq!(outcome(&newborn(1200, 29)), success("MDCP", "PU1", "PU15"), "29 days is no longer a newborn band");
    assert_eq!(outcome(&newborn(0, 10)), success("MDCP", "PU1", "PU15"), "weight 0 counts as absent in the bands");
}

#[test]
fn validation_and_mapping_failures_name_their_cause() {
    let tables = demo_tables();
    let no_days = Case { age_days: None, ..case(1, 0, &["P59.900"], &[]) };
    let result = group(tables, &no_days, MappingMode::Map, &mut NoTrace);
    assert_eq!(result.status.as_str(), "CHECK_FAILED");
    assert_eq!(result.describe(tables, &no_days), "age is 0 but age_days is missing");

    let unknown = case(1, 40, &["K35.800", "k35.800"], &[]);
    let result = group(tables, &unknown, MappingMode::Map, &mut NoTrace);
    assert_eq!(result.status.as_str(), "ZD_NOT_MAPPING", "codes are case-sensitive");
    assert_eq!(result.describe(tables, &unknown), "diagnosis 2 \"k35.800\" is not in diagnosis_map");

    let bad_procedure = case(1, 40, &["K35.800"], &["47.0100", "47.01"]);
    let result = group(tables, &bad_procedure, MappingMode::Map, &mut NoTrace);
    assert_eq!(result.status.as_str(), "SS_NOT_MAPPING");

    // Mapping errors come before validation errors.
    let both = case(7, 40, &["NOPE"], &[]);
    assert_eq!(group(tables, &both, MappingMode::Map, &mut NoTrace).status.as_str(), "ZD_NOT_MAPPING");
    // Without mapping, an unknown code is simply in no list.
    assert_eq!(group(tables, &case(1, 40, &["NOPE"], &[]), MappingMode::NoMap, &mut NoTrace).status.as_str(), "FAIL");
}

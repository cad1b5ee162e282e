//! Every reference scheme's visible cases grouped through the same loading path, compared on
//! status, MDC, ADRG and DRG. The scheme folders are data: no scheme is named in the grouper.

use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace};
use dipdrg::io::case_csv::CaseReader;
use std::path::PathBuf;

pub fn reference_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

struct Expected {
    case_id: String,
    status: String,
    mdc: String,
    adrg: String,
    drg: String,
}

fn expected_results(path: &std::path::Path) -> Vec<Expected> {
    let mut reader = csv::Reader::from_path(path).expect("cases file");
    reader
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(|row| {
            let row = row.expect("row");
            Expected {
                case_id: row["case_id"].clone(),
                status: row["expected_status"].clone(),
                mdc: row["expected_mdc"].clone(),
                adrg: row["expected_adrg"].clone(),
                drg: row["expected_drg"].clone(),
            }
        })
        .collect()
}

fn check_scheme(scheme: &str) {
    let Some(reference) = reference_dir() else { return };
    let dir = reference.join(scheme);
    let tables = DrgTableSet::load_dir(&dir).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    let cases_path = dir.join("cases-visible.csv");
    let expected = expected_results(&cases_path);
    let file = std::fs::File::open(&cases_path).expect("open cases");
    let cases: Vec<_> = CaseReader::new(file).expect("header").collect();
    assert_eq!(cases.len(), expected.len(), "{scheme}: every record read");
    let mut mismatches = Vec::new();
    for (case, expected) in cases.iter().zip(&expected) {
        let case = case.as_ref().unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(case.case_id, expected.case_id);
        let result = group(&tables, case, MappingMode::Map, &mut NoTrace);
        let got = (result.status.as_str(), result.mdc_code(&tables), result.adrg_code(&tables), result.drg_code(&tables));
        let want = (expected.status.as_str(), expected.mdc.as_str(), expected.adrg.as_str(), expected.drg.as_str());
        if got != want {
            mismatches.push(format!("{}: got {got:?}, expected {want:?}", case.case_id));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{scheme}: {} of {} cases differ, first ones:\n{}",
        mismatches.len(),
        expected.len(),
        mismatches.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn chs_drg_1_1_matches_every_visible_case() {
    check_scheme("chs-drg-1.1");
}

#[test]
fn chs_drg_1_0_matches_every_visible_case() {
    check_scheme("chs-drg-1.0");
}

#[test]
fn yantai_2023_matches_every_visible_case() {
    check_scheme("yantai-2023");
}

#[test]
fn beijing_2022_matches_every_visible_case() {
    check_scheme("beijing-2022");
}

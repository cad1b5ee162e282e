//! Every reference scheme's visible cases grouped through the same loading path, compared on
//! status, MDC, ADRG and DRG. The scheme folders are data: no scheme is named in the grouper.

use dipdrg::drg::{group, DrgTableSet, MappingMode, NoTrace, Trace};
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
        // The traced path tries every rule; the untraced one only candidates. They must agree.
        let traced = group(&tables, case, MappingMode::Map, &mut Trace::default());
        assert_eq!(traced, result, "{scheme} {}: traced and untraced grouping differ", case.case_id);
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

/// One test per reference scheme folder, so that a failure names the scheme.
macro_rules! reference_schemes {
    ($($test:ident => $folder:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_scheme($folder);
            }
        )*
        /// Every folder of the reference data, as the tests above name them.
        pub const SCHEMES: &[&str] = &[$($folder),*];
    };
}

reference_schemes! {
    chs_drg_1_1_matches_every_visible_case => "chs-drg-1.1",
    chs_drg_1_0_matches_every_visible_case => "chs-drg-1.0",
    yantai_2023_matches_every_visible_case => "yantai-2023",
    beijing_2022_matches_every_visible_case => "beijing-2022",
    anyang_2021_matches_every_visible_case => "anyang-2021",
    changsha_2023_matches_every_visible_case => "changsha-2023",
    changzhou_2022_matches_every_visible_case => "changzhou-2022",
    chongqing_2022_matches_every_visible_case => "chongqing-2022",
    foshan_2022_matches_every_visible_case => "foshan-2022",
    fuzhou_2022_matches_every_visible_case => "fuzhou-2022",
    guangxi_2022_matches_every_visible_case => "guangxi-2022",
    haerbin_2022_matches_every_visible_case => "haerbin-2022",
    handan_2022_matches_every_visible_case => "handan-2022",
    lanzhou_2023_matches_every_visible_case => "lanzhou-2023",
    liaocheng_2022_matches_every_visible_case => "liaocheng-2022",
    linfen_2022_matches_every_visible_case => "linfen-2022",
    qingdao_2023_matches_every_visible_case => "qingdao-2023",
    suzhou_2023_matches_every_visible_case => "suzhou-2023",
    taizhou_2022_matches_every_visible_case => "taizhou-2022",
    wlmq_2022_matches_every_visible_case => "wlmq-2022",
    wuhan_2022_matches_every_visible_case => "wuhan-2022",
    wuxi_2022_matches_every_visible_case => "wuxi-2022",
    yancheng_2023_matches_every_visible_case => "yancheng-2023",
    yinchuan_2023_matches_every_visible_case => "yinchuan-2023",
    yunnan_2022_matches_every_visible_case => "yunnan-2022",
    yunnan_2023_matches_every_visible_case => "yunnan-2023",
    zhejiang_2022_matches_every_visible_case => "zhejiang-2022",
}

#[test]
fn every_reference_folder_has_a_test() {
    let Some(reference) = reference_dir() else { return };
    let mut folders: Vec<String> = std::fs::read_dir(&reference)
        .expect("reference dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("mdc.csv").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    folders.sort();
    let mut named: Vec<String> = SCHEMES.iter().map(|s| s.to_string()).collect();
    named.sort();
    assert_eq!(folders, named);
}

/// The unreachable entries the lint reports, as (kind, code), sorted.
fn unreachable_entries(scheme: &str) -> Option<Vec<(String, String)>> {
    let dir = reference_dir()?.join(scheme);
    let tables = DrgTableSet::load_dir(&dir).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    let mut entries: Vec<(String, String)> =
        dipdrg::drg::lint::lint(&tables).into_iter().filter(|f| f.is_unreachable()).map(|f| (f.entry_kind.to_string(), f.entry)).collect();
    entries.sort();
    Some(entries)
}

fn entries(kind: &str, codes: &[&str]) -> Vec<(String, String)> {
    codes.iter().map(|c| (kind.to_string(), c.to_string())).collect()
}

#[test]
fn lint_finds_no_unreachable_entry_in_1_1_and_yantai() {
    for scheme in ["chs-drg-1.1", "yantai-2023"] {
        if let Some(found) = unreachable_entries(scheme) {
            assert!(found.is_empty(), "{scheme}: {found:?}");
        }
    }
}

#[test]
fn lint_reports_the_unreachable_rules_the_1_0_readme_lists() {
    let Some(found) = unreachable_entries("chs-drg-1.0") else { return };
    // README: YC1 shadows YR1, YR2; WB1 shadows WC1, WJ1, WR1, WZ1; PB1 shadows PC1 … PU1.
    let shadowed = ["PC1", "PJ1", "PK1", "PR1", "PS1", "PT1", "PT2", "PU1", "WC1", "WJ1", "WR1", "WZ1", "YR1", "YR2"];
    let mut expected = entries("adrg", &shadowed);
    expected.extend(entries("rule", &shadowed));
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn lint_reports_the_unreachable_entries_the_beijing_readme_lists() {
    let Some(found) = unreachable_entries("beijing-2022") else { return };
    // README: DRGs after an unconditional DRG; AG1/AG2 without OR procedures; WB1 behind WC1.
    let mut expected = entries("drg", &["CD1D", "DC2D", "IT2B", "IT2C"]);
    expected.extend(entries("adrg", &["AG1", "AG2", "WB1"]));
    expected.extend(entries("rule", &["AG1", "AG2", "WB1_1", "WB1_2"]));
    expected.sort();
    assert_eq!(found, expected);
}

/// No scheme is special-cased: no scheme name appears anywhere in the library or binary source,
/// so every table set goes through the same loading and grouping path.
#[test]
fn no_scheme_name_appears_in_the_source() {
    let mut offenders = Vec::new();
    let mut pending = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source text").to_lowercase();
            for name in ["yantai", "beijing", "chs-drg-1", "chs_drg_1", "烟台", "北京"] {
                if text.contains(name) {
                    offenders.push(format!("{}: {name}", path.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "scheme names in the source: {offenders:?}");
}

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

/// The DRG rows of ADRGs that are never produced: never produced either.
fn drgs_of(scheme: &str, adrgs: &[&str]) -> Vec<(String, String)> {
    let Some(reference) = reference_dir() else { return Vec::new() };
    let tables = DrgTableSet::load_dir(&reference.join(scheme)).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    adrgs
        .iter()
        .flat_map(|code| {
            let adrg = &tables.adrgs[tables.adrg_index(code).expect("ADRG")];
            tables.drgs[adrg.drgs.clone()].iter().map(|d| ("drg".to_string(), d.code.clone())).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn lint_reports_the_unreachable_rules_the_1_0_readme_lists() {
    let Some(found) = unreachable_entries("chs-drg-1.0") else { return };
    // README: YC1 shadows YR1, YR2; WB1 shadows WC1, WJ1, WR1, WZ1; PB1 shadows PC1 … PU1.
    let shadowed = ["PC1", "PJ1", "PK1", "PR1", "PS1", "PT1", "PT2", "PU1", "WC1", "WJ1", "WR1", "WZ1", "YR1", "YR2"];
    let mut expected = entries("adrg", &shadowed);
    expected.extend(entries("rule", &shadowed));
    expected.extend(drgs_of("chs-drg-1.0", &shadowed));
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn lint_reports_the_unreachable_entries_the_beijing_readme_lists() {
    let Some(found) = unreachable_entries("beijing-2022") else { return };
    // README: DRGs after an unconditional DRG; AG1/AG2 without OR procedures; WB1 behind WC1;
    // the DRGs no visible case reaches are exactly these and those of AG1, AG2 and WB1.
    let mut expected = entries("drg", &["CD1D", "DC2D", "IT2B", "IT2C"]);
    expected.extend(entries("adrg", &["AG1", "AG2", "WB1"]));
    expected.extend(entries("rule", &["AG1", "AG2", "WB1_1", "WB1_2"]));
    expected.extend(drgs_of("beijing-2022", &["AG1", "AG2", "WB1"]));
    expected.sort();
    assert_eq!(found, expected);
}

/// The codes in backticks in `text`.
fn quoted_codes(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// `text` without its parenthesised parts (`(after `BR15`)`, `(`ADRG_DA1_PPROC`)`).
fn without_parentheses(text: &str) -> String {
    let mut depth = 0;
    text.chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// The unreachable entries a regional scheme's README lists under "Rows that can never be
/// reached", as (kind, code), sorted and without repeats.
fn readme_unreachable(readme: &str) -> Vec<(String, String)> {
    let section = readme.split("## Rows that can never be reached").nth(1).expect("section");
    let section = section.split("\n## ").next().unwrap_or("");
    let mut found = std::collections::BTreeSet::new();
    for bullet in section.split("\n* ").skip(1) {
        let bullet = without_parentheses(bullet);
        let (head, tail) = bullet.split_once(": ").unwrap_or((&bullet, ""));
        let mut add = |kind: &str, codes: Vec<String>| found.extend(codes.into_iter().map(|c| (kind.to_string(), c)));
        if head.starts_with("ADRG rule") {
            add("rule", quoted_codes(head));
        } else if let Some(rest) = bullet.strip_prefix("So the ") {
            let (adrgs, drgs) = rest.split_once(" nor ").expect("ADRGs, nor their DRGs");
            add("adrg", quoted_codes(adrgs));
            add("drg", quoted_codes(drgs));
        } else if head.starts_with("DRG rows") {
            add("drg", quoted_codes(tail));
        } else if head.starts_with("ADRGs without DRG rows") {
            add("adrg", quoted_codes(tail));
        } else {
            panic!("unknown kind of unreachable row: {bullet}");
        }
    }
    found.into_iter().collect()
}

/// `dipdrg tables check` names, for every regional scheme, exactly the unreachable rows its
/// README lists: no fewer (it misses none) and no more (no false alarm).
#[test]
fn lint_reports_exactly_the_unreachable_rows_each_regional_readme_lists() {
    let Some(reference) = reference_dir() else { return };
    let mut differences = Vec::new();
    for scheme in SCHEMES {
        let readme = std::fs::read_to_string(reference.join(scheme).join("README.md")).expect("README");
        if !readme.contains("## Rows that can never be reached") {
            continue; // the national sets and the first regional ones: tested above
        }
        let expected = readme_unreachable(&readme);
        let mut found = unreachable_entries(scheme).expect("reference present");
        found.dedup();
        if found != expected {
            let missing: Vec<_> = expected.iter().filter(|e| !found.contains(e)).collect();
            let extra: Vec<_> = found.iter().filter(|e| !expected.contains(e)).collect();
            differences.push(format!("{scheme}: missing {missing:?}, not in the README {extra:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn readme_lists_are_read_in_full() {
    let readme = "## Rows that can never be reached\n\nThe tables keep these rows.\n\n\
                  * ADRG rules `AD1`, `AE1`: come after `AC1` in the same MDC.\n\
                  * ADRG rule `DA1`: a list ID with no rows (`ADRG_DA1_PPROC`).\n\
                  * So the ADRGs `AD1`, `DA1` are never produced, nor their DRGs `AD19`, `DA11`.\n\
                  * DRG rows after a row that always holds (2): `BR19` (after `BR15`), `ES19` (after `ES15`).\n\
                  * DRG rows with condition `never`: `LL12`.\n\
                  * ADRGs without DRG rows and `on_no_drg` = `next`, which match but never give a result: `AA1`.\n\n\
                  ## Test cases\n\n* `X`: not a row.\n";
    let expected: Vec<(String, String)> = [
        ("adrg", "AA1"),
        ("adrg", "AD1"),
        ("adrg", "DA1"),
        ("drg", "AD19"),
        ("drg", "BR19"),
        ("drg", "DA11"),
        ("drg", "ES19"),
        ("drg", "LL12"),
        ("rule", "AD1"),
        ("rule", "AE1"),
        ("rule", "DA1"),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), c.to_string()))
    .collect();
    assert_eq!(readme_unreachable(readme), expected);
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

fn load_reference(scheme: &str) -> Option<(DrgTableSet, Vec<dipdrg::case::Case>)> {
    let dir = reference_dir()?.join(scheme);
    let tables = DrgTableSet::load_dir(&dir).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    let file = std::fs::File::open(dir.join("cases-visible.csv")).expect("cases");
    let cases = CaseReader::new(file).expect("header").map(|c| c.expect("case")).collect();
    Some((tables, cases))
}

/// A case that reaches a rule bounding `icu_hours` (or `los`) without the field is an input
/// error (CHECK_FAILED, naming the field), never a guessed group; other cases are unaffected.
#[test]
fn a_missing_bounded_field_is_an_input_error() {
    use dipdrg::drg::group::Detail;
    use dipdrg::drg::trace::ValidationFailure;
    use dipdrg::drg::GroupStatus;
    for (scheme, strip, failure) in [
        (
            "foshan-2022",
            (|c: &mut dipdrg::case::Case| c.icu_hours = None) as fn(&mut dipdrg::case::Case),
            ValidationFailure::MissingIcuHours,
        ),
        ("beijing-2022", |c: &mut dipdrg::case::Case| c.los = None, ValidationFailure::MissingLos),
    ] {
        let Some((tables, cases)) = load_reference(scheme) else { return };
        let (mut errors, mut same) = (0, 0);
        for case in &cases {
            let before = group(&tables, case, MappingMode::Map, &mut NoTrace);
            let mut stripped = case.clone();
            strip(&mut stripped);
            let after = group(&tables, &stripped, MappingMode::Map, &mut NoTrace);
            if after == before {
                same += 1;
            } else {
                assert_eq!(
                    (after.status, after.detail),
                    (GroupStatus::CheckFailed, Detail::Validation(failure)),
                    "{scheme} {}",
                    case.case_id
                );
                assert_eq!(after.drg_code(&tables), "0000");
                errors += 1;
            }
        }
        assert!(errors > 0 && same > errors, "{scheme}: {errors} input errors, {same} unchanged");
    }
}

/// The trace says in words why the new constructs decided: the retry with a later procedure,
/// `on_no_drg` = `next`, a QY check before any rule, the extra MDC entry list and rule columns.
#[test]
fn the_trace_explains_the_extensions_in_words() {
    use dipdrg::drg::trace::render;
    let wanted = [
        ("zhejiang-2022", "grouping again with procedure"),
        ("zhejiang-2022", "principal procedure is an operating-room procedure (no_pproc_or)"),
        ("zhejiang-2022", "principal diagnosis is in pdx_not_list"),
        ("wuxi-2022", "says on_no_drg = next: trying the next rule"),
        ("wuxi-2022", "checked before any rule: ambiguous (QY)"),
        ("changzhou-2022", "the principal procedure is an operating-room procedure: ambiguous (QY)"),
        ("changzhou-2022", "length of stay not below los_max_excl"),
        ("changzhou-2022", "no secondary procedure (position 2 or later) in secondary_proc_list"),
        ("foshan-2022", "ICU hours below icu_hours_min"),
        ("foshan-2022", "no non-excluded CC among secondary diagnoses"),
        ("foshan-2022", "its condition is never"),
        ("anyang-2021", "age below min_age_years"),
        ("handan-2022", "no procedure in any_proc_list3"),
        ("yunnan-2022", "no procedure is an operating-room procedure (any_proc_or)"),
        ("chongqing-2022", "not in the MDC's extra entry list"),
    ];
    let mut missing = Vec::new();
    for scheme in wanted.iter().map(|(s, _)| *s).collect::<std::collections::BTreeSet<_>>() {
        let Some((tables, cases)) = load_reference(scheme) else { return };
        let mut sentences = std::collections::BTreeSet::new();
        for case in &cases {
            let mut trace = Trace::default();
            group(&tables, case, MappingMode::Map, &mut trace);
            sentences.extend(render(&trace.steps, &tables, case));
        }
        for (_, phrase) in wanted.iter().filter(|(s, _)| *s == scheme) {
            if !sentences.iter().any(|s| s.contains(phrase)) {
                missing.push(format!("{scheme}: no sentence says {phrase:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}

/// The scheme's own FAIL and error codes (`scheme.csv`) are what the result reports.
#[test]
fn scheme_result_codes_replace_the_zeros() {
    use dipdrg::drg::GroupStatus;
    let Some((tables, cases)) = load_reference("yunnan-2022") else { return };
    let results: Vec<_> = cases.iter().map(|c| group(&tables, c, MappingMode::Map, &mut NoTrace)).collect();
    let fail = results.iter().find(|r| r.status == GroupStatus::Fail).expect("a FAIL case");
    assert_eq!((fail.mdc_code(&tables), fail.adrg_code(&tables), fail.drg_code(&tables)), ("0000", "00", "0000A"));
    let error = results.iter().find(|r| r.status == GroupStatus::CheckFailed).expect("a CHECK_FAILED case");
    assert_eq!((error.mdc_code(&tables), error.adrg_code(&tables), error.drg_code(&tables)), ("", "", ""));
}

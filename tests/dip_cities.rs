//! The eight cities' DIP rules as policy data (`policies/dip-regions/`): each city's cases worked
//! by hand from RULES.md of the DIP regions reference. The catalogs and coefficients are
//! illustrative (the real ones are not public); the rules and their constants are the cities'.

use crate::dip_regions::assess_dir;
use dipdrg::pricing::CaseCategory;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::path::PathBuf;

/// (case id, expected group, expected points, expected category) for every case of a city.
fn check(city: &str, expected: &[(&str, &str, Decimal, CaseCategory)]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/dip-regions").join(city);
    let cases = assess_dir(&dir.join("policy.toml"), &dir.join("catalog"), &dir.join("cases.csv"));
    assert_eq!(cases.len(), expected.len(), "{city}: one expectation per case");
    for ((id, group, a), (want_id, want_group, want_points, want_category)) in cases.iter().zip(expected) {
        assert_eq!(
            (id.as_str(), group.as_str(), a.points.points.value(), a.points.category),
            (*want_id, *want_group, *want_points, *want_category),
            "{city} {id}: {:?}",
            a.points.factors
        );
    }
}

use CaseCategory::{Exempt, HighOutlier, LowOutlier, Normal, SpecialReview};

#[test]
fn xianning_common_engine() {
    check(
        "421200-xianning-2023",
        &[
            // Core surgery K80.1-51.2300; r = 32,000 ÷ 15,000 = 2.1333 ≥ 2 → 1200 × 1.1333 × 0.95.
            ("XN1", "K80.1-51.2300", dec!(1292.00), HighOutlier),
            // Conservative core I63.9-0; no supplement holds (age 60, no MCC); r = 0.4 ≤ 0.5 →
            // 800 × 0.4 × 0.95 = 304.00.
            ("XN2", "I63.9-0", dec!(304.00), LowOutlier),
        ],
    );
}

#[test]
fn yichang_unmatched_surgery_minor_procedures_tb_and_benefits() {
    check(
        "420500-yichang-2023",
        &[
            // K80.1-51.2300 leaves 54.5100 (surgery) unmatched → 综合手术 K80-S: r = 1 → 1000 × 1.0
            // (the common engine: K80.1-51.2300, 1200).
            ("YC1", "K80-S", dec!(1000.00), Normal),
            // 肺结核耐药 principal: S = 1.30; mean 9,000 × 1.3 = 11,700, r 0.77 → 900 × 1.30 = 1170.00.
            ("YC2", "A15.0-0", dec!(1170.00), Normal),
            // 86.0401 is minor (level 1, incision 0): the conservative row still takes the case; no
            // 综合手术 exists; age 70 → S 1.05, mean 10,500, r 0.857 → 800 × 1.05 = 840.00.
            ("YC3", "I63.9-0", dec!(840.00), Normal),
            // 离休干部 (retired_cadre): paid by item (agreement art. 39).
            ("YC4", "I63.9-0", dec!(0), Exempt),
        ],
    );
}

#[test]
fn xiangyang_prefix_codes_full_code_grassroots_category_and_fallback() {
    check(
        "420600-xiangyang-2023",
        &[
            // 51.2200 matches only the prefix row 51.2*: 990 × r 1 × 1.0.
            ("XY1", "K80.1-51.2", dec!(990.00), Normal),
            // 51.2300 matches 51.2* and the full 51.2300, which starts with "51.2": full_code keeps
            // the full code: 1100 × 1.0 (the nearest mean would agree here; the prefix row is gone).
            ("XY2", "K80.1-51.2300", dec!(1100.00), Normal),
            // K81 has no comprehensive row: the chapter 保底组 K00-K99-BD, 300 × 1.0.
            ("XY3", "K00-K99-BD", dec!(300.00), Normal),
            // K82's grassroots category row, conservative: 350 × grassroots 0.9 = 315.00.
            ("XY4", "K82-JC", dec!(315.00), Normal),
        ],
    );
}

#[test]
fn jingmen_full_code_then_highest_score_with_surgery() {
    check(
        "420800-jingmen-2023",
        &[
            // 51.23*, 51.2300/51.2200 and 54.51* match; P = 51.23*, and the full expression starts
            // with "51.23": only the full row stays: 1250 × r 1.
            ("JM1", "K80.1-51.2300/51.2200", dec!(1250.00), Normal),
            // 51.2300/51.2200 (1250) and 54.51* (1400) match; no full row starts with "54.51";
            // a surgery candidate: the highest score, 1400 (r 12,500 ÷ 14,000 = 0.89). The nearest
            // mean would take 1250.
            ("JM2", "K80.1-54.51", dec!(1400.00), Normal),
        ],
    );
}

#[test]
fn xiaogan_grassroots_ranked_and_blank_group() {
    check(
        "420900-xiaogan-2022",
        &[
            // Nothing takes Z99.900: the blank group kbbz, priced normally: 300 × r 1 × 1.0.
            ("XG1", "kbbz", dec!(300.00), Normal),
            // Core K80.1-0 (mean 5,000) and grassroots K80.1-JC (4,500) ranked together: the
            // nearest mean to 4,500 is JC; core classes hold no candidate of the final list →
            // 450 × grassroots 0.9 = 405.00 (today: the core row, 500).
            ("XG2", "K80.1-JC", dec!(405.00), Normal),
        ],
    );
}

#[test]
fn jingzhou_exact_set_then_highest_score() {
    check(
        "421000-jingzhou-2023",
        &[
            // All three rows take 51.2300 wholly; the highest score 1300: r 0.86 → 1300 × 0.95.
            ("JZ1", "K80.1-51.2300", dec!(1235.00), Normal),
            // Only 54.51/51.23 takes both procedures (exact set): 1100 × r 1 × 0.95 = 1045.00,
            // although 1300 and 1150 score higher.
            ("JZ2", "K80.1-54.51/51.23", dec!(1045.00), Normal),
        ],
    );
}

#[test]
fn jining_conversion_severity_split_level_split_blank_and_outliers() {
    check(
        "370800-jining-2023",
        &[
            // r = 6 > 5 (极端异常): priced as normal, 1200 × H 0.9 = 1080.00 (today: 5400.00).
            ("JN1", "K80.1-51.2300", dec!(1080.00), SpecialReview),
            // 2 < r = 3 ≤ 5: 1200 × (3 − 2 + 0.9) = 2280.00, H added, not multiplied.
            ("JN2", "K80.1-51.2300", dec!(2280.00), HighOutlier),
            // Blank group KBBZ: 200 × (3,000 ÷ 2,000) × 0.7 = 210.00.
            ("JN3", "KBBZ", dec!(210.00), Normal),
            // K80.100x001 → K80.100; 88.7600 excluded; stay 7 > 3 with MCC J96.000 → _3:
            // 700 × r 1 × 0.9 = 630.00.
            ("JN4", "K80.1-0_3", dec!(630.00), Normal),
            // 51.2300x001 → 51.2300; insured 370100 (remote) in June: '省内异地' coefficient 0.8 →
            // 1200 × 0.8 = 960.00.
            ("JN5", "K80.1-51.2300", dec!(960.00), Normal),
            // No K80.9 core row; the principal procedure 86.0401 (level 1) picks K80-S1 of the
            // level-split rows (K80-S3 comes first in the catalog): 700 × 0.9 = 630.00.
            ("JN6", "K80-S1", dec!(630.00), Normal),
        ],
    );
}

#[test]
fn taian_coefficient_by_fund_and_its_blank_group() {
    check(
        "370900-taian-2023",
        &[
            // Employee: 1000 × 0.611 = 611.00.
            ("TA1", "K80.1-51.2300", dec!(611.00), Normal),
            // Resident, r = 3: 1000 × (3 − 2 + 0.631) = 1631.00.
            ("TA2", "K80.1-51.2300", dec!(1631.00), HighOutlier),
            // KBBZ: 200 × 1.5 × 0.39312 = 117.936 → 117.94.
            ("TA3", "KBBZ", dec!(117.94), Normal),
            // r = 8, no r > 5 rule: 1000 × (8 − 2 + 0.611) = 6611.00.
            ("TA4", "K80.1-51.2300", dec!(6611.00), HighOutlier),
        ],
    );
}

#[test]
fn every_city_policy_lints_without_warnings() {
    use dipdrg::dip::lint::{lint_policy, Level};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/dip-regions");
    let mut cities = 0;
    for entry in std::fs::read_dir(&root).expect("policies/dip-regions") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let policy = dipdrg::policy::Policy::load(&dir.join("policy.toml")).expect("policy");
        let catalog = dipdrg::dip::DipCatalog::load_dir(&dir.join("catalog")).expect("catalog");
        let warnings: Vec<String> =
            lint_policy(&policy, Some(&catalog)).iter().filter(|f| f.level == Level::Warning).map(ToString::to_string).collect();
        assert_eq!(warnings, Vec::<String>::new(), "{}", dir.display());
        cities += 1;
    }
    assert_eq!(cities, 8);
}

#[test]
fn policy_check_command_reports_and_fails_strictly_on_warnings() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let city = root.join("policies/dip-regions/370800-jining-2023");
    let run = |policy: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dipdrg"))
            .args(["policy", "check", "--strict", "--policy"])
            .arg(policy)
            .arg("--tables")
            .arg(city.join("catalog"))
            .output()
            .expect("dipdrg runs")
    };
    let clean = run(&city.join("policy.toml"));
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("0 warnings, 0 notes"));
    // The same policy with code ranked before a key: that key can never decide.
    let text = std::fs::read_to_string(city.join("policy.toml"))
        .expect("policy")
        .replace(r#"candidate_rank = ["principal_procedure","#, r#"candidate_rank = ["code", "principal_procedure","#);
    let broken = std::env::temp_dir().join(format!("dipdrg-policy-check-{}.toml", std::process::id()));
    std::fs::write(&broken, text).expect("temp policy");
    let out = run(&broken);
    let _ = std::fs::remove_file(&broken);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("warning: DIP_RANK_UNREACHABLE dip_grouping.candidate_rank: principal_procedure comes after code"), "{stdout}");
}

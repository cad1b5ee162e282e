//! `dipdrg benefits` over the issue 17 worked examples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Vec<BTreeMap<String, String>> {
    csv::Reader::from_path(path).unwrap().deserialize().map(Result::unwrap).collect()
}

fn run(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .arg("benefits")
        .arg("--policy")
        .arg(root().join("policies/demo-city-2026-benefits.toml"))
        .arg("--cases")
        .arg(root().join("tests/benefits/discharges.csv"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn benefits_command_writes_the_worked_examples() {
    let out = std::env::temp_dir().join(format!("dipdrg-benefits-{}", std::process::id()));
    let output = run(&out, &["--explain", "C3"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("33700"), "{stdout}");
    let cases = read(&out.join("benefits_cases.csv"));
    let row = |id: &str| cases.iter().find(|r| r["case_id"] == id).unwrap().clone();
    let layers = |id: &str| {
        let r = row(id);
        ["basic", "catastrophic", "subsidy", "assistance", "patient_covered"].map(|c| r[c].clone())
    };
    assert_eq!(cases.iter().map(|r| r["case_id"].as_str()).collect::<Vec<_>>(), ["C1", "C2", "C3", "T1"]);
    assert_eq!(layers("C1"), ["11580.00", "0.00", "0.00", "0.00", "8420.00"]);
    assert_eq!(layers("C2"), ["104720.00", "26520.00", "0.00", "0.00", "18760.00"]);
    assert_eq!(layers("C3"), ["33700.00", "177780.00", "4710.00", "0.00", "83810.00"]);
    assert_eq!(row("C3")["patient_total"], "85310.00");
    assert_eq!(layers("T1"), ["11580.00", "2394.00", "0.00", "4218.20", "1807.80"]);
    let patients = read(&out.join("benefits_patients.csv"));
    assert_eq!(patients[0]["patient_id"], "P1");
    assert_eq!(patients[0]["basic_paid"], "150000.00");
    assert_eq!(patients[0]["catastrophic_paid"], "204300.00");
    let warnings = read(&out.join("benefits_warnings.csv"));
    // P1 crosses 5,000 at C1 and 20,000 at C2; P2 (1,807.80 out of pocket) crosses none.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn benefits_year_to_date_continues_the_year() {
    let dir = std::env::temp_dir().join(format!("dipdrg-benefits-ytd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // P1's first admission given as figures instead of a row: the 2nd and 3rd settle the same.
    let ytd = dir.join("ytd.csv");
    std::fs::write(
        &ytd,
        "patient_id,admissions,basic_paid,personal_burden,catastrophic_paid,subsidy_paid,assistance_paid,out_of_pocket\nP1,1,11580,8420,0,0,0,8420\n",
    )
    .unwrap();
    let cases = dir.join("cases.csv");
    let all = std::fs::read_to_string(root().join("tests/benefits/discharges.csv")).unwrap();
    std::fs::write(&cases, all.lines().filter(|l| !l.starts_with("C1,")).collect::<Vec<_>>().join("\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .arg("benefits")
        .arg("--policy")
        .arg(root().join("policies/demo-city-2026-benefits.toml"))
        .arg("--cases")
        .arg(&cases)
        .arg("--year-to-date")
        .arg(&ytd)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows = read(&dir.join("out/benefits_cases.csv"));
    let c3 = rows.iter().find(|r| r["case_id"] == "C3").unwrap();
    assert_eq!((c3["admission_order"].as_str(), c3["catastrophic"].as_str(), c3["subsidy"].as_str()), ("3", "177780.00", "4710.00"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn benefits_bad_policy_names_the_key() {
    let dir = std::env::temp_dir().join(format!("dipdrg-benefits-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(root().join("policies/demo-city-2026-benefits.toml")).unwrap();
    let policy = dir.join("bad.toml");
    std::fs::write(&policy, text.replace("ratio = 0.70\n", "ratio = 7.0\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .args(["benefits", "--policy"])
        .arg(&policy)
        .arg("--cases")
        .arg(root().join("tests/benefits/discharges.csv"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("assistance.groups[0].ratio"), "{stderr}");
    assert!(stderr.contains("error[BENEFITS_POLICY_INVALID]"), "the stable code reaches the user: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `dipdrg settle` end to end on the demo data: byte-identical outputs whatever the thread
//! count, every record accounted for, per-case amounts adding up to the statements.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settle(out: &Path, threads: u32, mode: &str, period: &str, policy: &str, tables: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(root())
        .args(["settle", "-q", "--policy", policy, "--tables", tables, "--cases", "grouper-tables/demo/cases.csv"])
        .args(["--violations", "grouper-tables/demo/violations.csv", "--reviews", "grouper-tables/demo/reviews.csv"])
        .args(["--mode", mode, "--period", period, "--threads", &threads.to_string()])
        .arg("--out")
        .arg(out)
        .status()
        .expect("dipdrg runs");
    assert!(status.success());
}

fn read(path: &Path) -> Vec<BTreeMap<String, String>> {
    csv::Reader::from_path(path).unwrap().deserialize().map(|r| r.unwrap()).collect()
}

fn sum(rows: &[BTreeMap<String, String>], column: &str) -> Decimal {
    rows.iter().map(|r| r[column].parse::<Decimal>().unwrap()).sum()
}

fn check_run(mode: &str, period: &str, policy: &str, tables: &str) {
    let scheme = if tables.ends_with("dip") { "dip" } else { "drg" };
    let base = std::env::temp_dir().join(format!("dipdrg-settle-{}-{mode}-{scheme}", std::process::id()));
    let (one, two) = (base.join("t1"), base.join("t2"));
    settle(&one, 1, mode, period, policy, tables);
    settle(&two, 2, mode, period, policy, tables);
    for file in ["cases.csv", "statements.csv", "summary.csv", "rejects.csv", "dictionary.csv", "settlement.xlsx", "report.html"] {
        let same = std::fs::read(one.join(file)).unwrap() == std::fs::read(two.join(file)).unwrap();
        assert!(same, "{file} differs between 1 and 2 threads");
    }
    let summary: BTreeMap<String, String> =
        read(&one.join("summary.csv")).into_iter().map(|r| (r["key"].clone(), r["value"].clone())).collect();
    let submitted: u64 = summary["submitted"].parse().unwrap();
    let accepted: u64 = summary["accepted"].parse().unwrap();
    let rejected: u64 = summary["rejected"].parse().unwrap();
    assert_eq!(submitted, 2000);
    assert_eq!(accepted + rejected, submitted);
    let cases = read(&one.join("cases.csv"));
    assert_eq!(cases.len() as u64, accepted);
    assert_eq!(read(&one.join("rejects.csv")).len() as u64, rejected);
    let statements = read(&one.join("statements.csv"));
    assert_eq!(sum(&cases, "amount"), sum(&statements, "gross"), "case amounts add up to the statements");
    assert_eq!(sum(&statements, "gross").to_string(), summary["gross_total"]);
    // Per statement too.
    for s in &statements {
        let of_statement: Vec<_> =
            cases.iter().filter(|c| c["hospital_id"] == s["hospital_id"] && c["fund"] == s["fund"]).cloned().collect();
        assert_eq!(sum(&of_statement, "amount"), s["gross"].parse::<Decimal>().unwrap());
    }
    let penalised = cases.iter().find(|c| c["case_id"] == "D00100");
    if let Some(c) = penalised {
        let points: Decimal = c["points"].parse().unwrap();
        assert_eq!(c["counted_points"].parse::<Decimal>().unwrap(), -points * Decimal::from(3), "split admission: −3 × points");
    }
    if mode == "annual" {
        let employee_basis: Decimal = summary["employee.basis"].parse().unwrap();
        let employee_paid: Decimal = summary["employee.paid"].parse().unwrap();
        let employee_gross: Decimal =
            statements.iter().filter(|s| s["fund"] == "employee").map(|s| s["gross"].parse::<Decimal>().unwrap()).sum();
        assert_eq!(employee_gross, employee_paid, "Σ hospital payments = paid");
        let residual: Decimal = summary["employee.residual"].parse().unwrap();
        assert_eq!(residual, employee_basis - employee_paid, "residual = basis − paid");
        if summary["employee.paid_at"] == "exact" {
            assert_eq!(employee_paid, employee_basis, "the settlement method at the exact value pays the basis");
        } else {
            // Published (the demo DRG policy): each gross is counted points × the published value.
            let value: Decimal = summary["employee.point_value"].parse().unwrap();
            for s in statements.iter().filter(|s| s["fund"] == "employee") {
                let counted: Decimal = s["counted_points"].parse().unwrap();
                let gross = (counted * value).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
                assert_eq!(s["gross"].parse::<Decimal>().unwrap(), gross);
            }
        }
        let reviewed = cases.iter().find(|c| c["case_id"] == "D00400").expect("reviewed case settled");
        // Within its hospital's quota for May (DRG: 5%), the review stands; over it (DIP: 5‰ of
        // 48 cases allows none) it is refused and named in warnings.csv.
        let warned = read(&one.join("warnings.csv")).iter().any(|w| w["case_id"] == "D00400" && w["code"] == "SPECIAL_REVIEW_OVER_QUOTA");
        if scheme == "drg" {
            assert_eq!(reviewed["counted_points"], "5000.00");
            assert!(!warned);
        } else {
            assert_eq!(reviewed["review"], "over_quota");
            assert_eq!(reviewed["counted_points"], reviewed["points"]);
            assert!(warned);
        }
    }
    check_accounts(&one, &cases, &statements, &summary, mode);
    let xlsx = std::fs::read(one.join("settlement.xlsx")).unwrap();
    assert_eq!(&xlsx[..2], b"PK", "an xlsx is a zip");
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn monthly_dip_settlement_is_deterministic_and_adds_up() {
    check_run("monthly", "2026-03", "policies/demo-city-2026-dip.toml", "grouper-tables/demo-dip");
}

#[test]
fn annual_drg_settlement_is_deterministic_and_adds_up() {
    check_run("annual", "2026", "policies/demo-city-2026-drg.toml", "grouper-tables/demo");
}

#[test]
fn annual_dip_settlement_is_deterministic_and_adds_up() {
    check_run("annual", "2026", "policies/demo-city-2026-dip.toml", "grouper-tables/demo-dip");
}

/// The same accepted demo cases as CSV and as Parquet settle to the same bytes.
#[cfg(feature = "parquet")]
#[test]
fn parquet_input_settles_like_csv() {
    use dipdrg::io::case_csv::{CaseReader, CaseWriter};
    let base = std::env::temp_dir().join(format!("dipdrg-settle-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let file = std::fs::File::open(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let cases: Vec<_> = CaseReader::new(file).unwrap().filter_map(Result::ok).collect();
    assert!(cases.len() > 1900);
    let (csv_path, parquet_path) = (base.join("cases.csv"), base.join("cases.parquet"));
    let mut writer = CaseWriter::new(std::fs::File::create(&csv_path).unwrap()).unwrap();
    for case in &cases {
        writer.write(case).unwrap();
    }
    writer.flush().unwrap();
    dipdrg::io::parquet::write_cases(&parquet_path, &cases).unwrap();
    let run = |input: &Path, out: &Path| {
        let status = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
            .current_dir(root())
            .args(["settle", "-q", "--policy", "policies/demo-city-2026-dip.toml", "--tables", "grouper-tables/demo-dip", "--cases"])
            .arg(input)
            .args(["--mode", "annual", "--period", "2026", "--out"])
            .arg(out)
            .status()
            .expect("dipdrg runs");
        assert!(status.success());
    };
    run(&csv_path, &base.join("from-csv"));
    run(&parquet_path, &base.join("from-parquet"));
    for file in ["cases.csv", "statements.csv", "summary.csv", "rejects.csv"] {
        let (a, b) =
            (std::fs::read(base.join("from-csv").join(file)).unwrap(), std::fs::read(base.join("from-parquet").join(file)).unwrap());
        assert!(a == b, "{file} differs between CSV and Parquet input");
    }
    assert_eq!(read(&base.join("from-parquet").join("cases.csv")).len(), cases.len());
    let _ = std::fs::remove_dir_all(&base);
}

/// A file that starts like Parquet but is not one fails with its name, not a panic.
#[cfg(feature = "parquet")]
#[test]
fn a_broken_parquet_file_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("dipdrg-broken-{}.parquet", std::process::id()));
    std::fs::write(&path, b"PAR1 this is not a parquet file").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(root())
        .args(["settle", "-q", "--policy", "policies/demo-city-2026-dip.toml", "--tables", "grouper-tables/demo-dip", "--cases"])
        .arg(&path)
        .args(["--mode", "annual", "--period", "2026", "--out"])
        .arg(std::env::temp_dir().join(format!("dipdrg-broken-out-{}", std::process::id())))
        .output()
        .expect("dipdrg runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("dipdrg-broken-") && !stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

/// Repeated case ids (a quoted one among them) are rejected naming the first record; the first
/// occurrence is settled. Rejected records in between shift the record numbers named.
#[test]
fn repeated_case_ids_are_rejected_naming_the_first_record() {
    let text = std::fs::read_to_string(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    // Rows the settlement accepts: the first rows of the demo file whose fields are complete.
    let rows: Vec<&str> = lines.take(40).collect();
    let (a, b) = (rows[0], rows[1]);
    let quoted = |row: &str| {
        let (_, rest) = row.split_once(',').unwrap();
        format!("\"Q,1\"\"x\",{rest}")
    };
    let broken = "BROKEN1,not a settlement list row";
    let body = [a.to_string(), quoted(b), broken.to_string(), a.to_string(), quoted(b), broken.replace('1', "2"), a.to_string()].join("\n");
    let base = std::env::temp_dir().join(format!("dipdrg-settle-repeats-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let input = base.join("cases.csv");
    std::fs::write(&input, format!("{header}\n{body}\n")).unwrap();
    let out = base.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(root())
        .args(["settle", "-q", "--policy", "policies/demo-city-2026-dip.toml", "--tables", "grouper-tables/demo-dip", "--cases"])
        .arg(&input)
        .args(["--mode", "annual", "--period", "2026", "--out"])
        .arg(&out)
        .status()
        .expect("dipdrg runs");
    assert!(status.success());
    let rejects = read(&out.join("rejects.csv"));
    assert_eq!(rejects.iter().filter(|r| r["case_id"].starts_with("BROKEN")).map(|r| r["record"].as_str()).collect::<Vec<_>>(), ["3", "6"]);
    let found: Vec<(String, String, String)> = rejects
        .iter()
        .filter(|r| !r["case_id"].starts_with("BROKEN"))
        .map(|r| (r["record"].clone(), r["case_id"].clone(), r["reason"].clone()))
        .collect();
    let first_id = a.split(',').next().unwrap().to_string();
    assert_eq!(
        found,
        [
            ("4".to_string(), first_id.clone(), "repeats the case id of record 1: a case is settled once".to_string()),
            ("5".to_string(), "Q,1\"x".to_string(), "repeats the case id of record 2: a case is settled once".to_string()),
            ("7".to_string(), first_id, "repeats the case id of record 1: a case is settled once".to_string()),
        ]
    );
    assert_eq!(read(&out.join("cases.csv")).len(), 2);
    let _ = std::fs::remove_dir_all(&base);
}

/// A refused run prints its stable code next to the message, and exits 2.
#[test]
fn a_refused_run_prints_its_error_code() {
    for (mode, period, code) in [("monthly", "2026-13", "SETTLE_PERIOD_INVALID"), ("annual", "2025", "SETTLE_PERIOD_NOT_POLICY_YEAR")] {
        let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
            .current_dir(root())
            .args(["settle", "--policy", "policies/demo-city-2026-dip.toml", "--tables", "grouper-tables/demo-dip"])
            .args(["--cases", "grouper-tables/demo/cases.csv", "--mode", mode, "--period", period, "--out"])
            .arg(std::env::temp_dir().join("dipdrg-refused-run"))
            .output()
            .expect("dipdrg runs");
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&format!("error[{code}]: ")), "{stderr}");
    }
}

/// `settle --benefits`: cases without `patient_paid` (and `fund_paid`) are refused without it and
/// settled with it, the same bytes at 1 and 2 threads.
#[test]
fn settle_with_a_benefits_policy_computes_empty_patient_paid() {
    let dir = std::env::temp_dir().join(format!("dipdrg-settle-benefits-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = |name: &str| header.split(',').position(|h| h == name).unwrap();
    let (paid, fund) = (at("patient_paid"), at("fund_paid"));
    let mut cases = format!("{header}\n");
    for (i, line) in lines.enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i % 3 == 0 {
            fields[paid] = "";
            fields[fund] = "";
        }
        cases.push_str(&fields.join(","));
        cases.push('\n');
    }
    let cases_path = dir.join("cases.csv");
    std::fs::write(&cases_path, cases).unwrap();
    let run = |out: &str, threads: &str, benefits: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dipdrg"));
        command.current_dir(root()).args([
            "settle",
            "-q",
            "--policy",
            "policies/demo-city-2026-drg.toml",
            "--tables",
            "grouper-tables/demo",
        ]);
        command
            .arg("--cases")
            .arg(&cases_path)
            .args(["--mode", "annual", "--period", "2026", "--threads", threads])
            .arg("--out")
            .arg(dir.join(out));
        if benefits {
            command.args(["--benefits", "policies/demo-city-2026-benefits.toml"]);
        }
        assert!(command.status().expect("dipdrg runs").success());
        dir.join(out)
    };
    let refused_for_paid = |out: &Path| {
        read(&out.join("rejects.csv")).iter().filter(|r| r["field"] == "patient_paid" && r["reason"].contains("required")).count()
    };
    let without = run("without", "2", false);
    assert!(refused_for_paid(&without) > 600, "{}", refused_for_paid(&without));
    let with = run("with", "2", true);
    assert_eq!(refused_for_paid(&with), 0);
    assert!(read(&with.join("cases.csv")).len() > read(&without.join("cases.csv")).len() + 600);
    let one = run("one", "1", true);
    for file in ["cases.csv", "statements.csv", "rejects.csv", "summary.csv"] {
        assert_eq!(std::fs::read(with.join(file)).unwrap(), std::fs::read(one.join(file)).unwrap(), "{file}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 16's accounts: per-case money adds up to the statements, statements are ordered hospital
/// then fund in both modes, and every column and key written is in `dictionary.csv`.
fn check_accounts(
    out: &Path,
    cases: &[BTreeMap<String, String>],
    statements: &[BTreeMap<String, String>],
    summary: &BTreeMap<String, String>,
    mode: &str,
) {
    let money = |row: &BTreeMap<String, String>, column: &str| row[column].parse::<Decimal>().unwrap();
    for c in cases {
        if c["category"] == "exempt" {
            assert_eq!(money(c, "item_paid"), money(c, "total_cost") - money(c, "patient_paid"), "{c:?}");
            assert_eq!(money(c, "fund_amount"), money(c, "amount") + money(c, "item_paid"), "{c:?}");
        } else {
            assert_eq!(money(c, "item_paid"), Decimal::ZERO, "{c:?}");
            assert_eq!(money(c, "fund_amount"), money(c, "amount") - money(c, "patient_paid"), "{c:?}");
        }
    }
    let due = if mode == "monthly" { "amount" } else { "fund_due" };
    for s in statements {
        let of: Vec<_> = cases.iter().filter(|c| c["hospital_id"] == s["hospital_id"] && c["fund"] == s["fund"]).collect();
        let points_cases: Vec<_> = of.iter().filter(|c| c["category"] != "exempt").collect();
        let fund_amounts: Decimal = points_cases.iter().map(|c| money(c, "fund_amount")).sum();
        assert_eq!(fund_amounts, money(s, due), "Σ fund_amount of the cases paid by points = the statement's {due}");
        assert_eq!(of.iter().map(|c| money(c, "item_paid")).sum::<Decimal>(), money(s, "item_paid"));
        assert_eq!(points_cases.iter().map(|c| money(c, "patient_paid")).sum::<Decimal>(), money(s, "patient_paid"));
    }
    let order: Vec<(String, String)> = statements.iter().map(|s| (s["hospital_id"].clone(), s["fund"].clone())).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "statements ordered by hospital then fund ({mode})");
    assert_eq!(summary["item_paid_total"].parse::<Decimal>().unwrap(), sum(statements, "item_paid"));
    for fund in ["employee", "resident"] {
        assert!(summary.contains_key(&format!("{fund}.paid")), "every fund in the summary");
    }
    // The dictionary names every column and key written.
    let dictionary = read(&out.join("dictionary.csv"));
    let listed = |file: &str, column: &str| dictionary.iter().any(|d| d["file"] == file && d["column"] == column);
    for file in ["cases.csv", "statements.csv", "rejects.csv"] {
        let header = csv::Reader::from_path(out.join(file)).unwrap().headers().unwrap().clone();
        for column in &header {
            assert!(listed(file, column), "{file} column {column} is not in dictionary.csv");
        }
    }
    for key in summary.keys() {
        let general = match key.split_once('.') {
            Some((_, rest)) if rest.starts_with("input.") => "{fund}.input.{name}".to_string(),
            Some((_, rest)) => format!("{{fund}}.{rest}"),
            None if key.starts_with("warning_") => "warning_{n}".to_string(),
            None => key.clone(),
        };
        assert!(listed("summary.csv", &general), "summary key {key} is not in dictionary.csv");
    }
    for d in &dictionary {
        if matches!(d["unit"].as_str(), "yuan") && d["file"] != "summary.csv" {
            let rows = read(&out.join(&d["file"]));
            for row in rows.iter().filter(|r| r.get(&d["column"]).is_some_and(|v| !v.is_empty())) {
                let text = &row[&d["column"]];
                assert!(
                    text.split_once('.').is_some_and(|(_, f)| f.len() == 2) && text != "-0.00",
                    "{} {}: {text}",
                    d["file"],
                    d["column"]
                );
            }
        }
    }
}

//! Golden outputs of `dipdrg settle` on the demo data, frozen in `tests/golden/`: monthly and
//! annual × DIP and DRG × `--threads` 1/2/4 and the reference executor, from CSV and from Parquet. Every output file must be
//! byte-identical to the frozen one; a deliberate change re-freezes them with
//! `DIPDRG_BLESS=1 cargo test --release --all-features --test integration golden` in a commit of
//! its own that says why.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The output files compared byte for byte.
const FILES: [&str; 8] =
    ["cases.csv", "statements.csv", "summary.csv", "rejects.csv", "warnings.csv", "dictionary.csv", "report.html", "settlement.xlsx"];

struct Scenario {
    name: &'static str,
    policy: &'static str,
    tables: &'static str,
    mode: &'static str,
    period: &'static str,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "dip-annual",
        policy: "policies/demo-city-2026-dip.toml",
        tables: "grouper-tables/demo-dip",
        mode: "annual",
        period: "2026",
    },
    Scenario {
        name: "dip-monthly",
        policy: "policies/demo-city-2026-dip.toml",
        tables: "grouper-tables/demo-dip",
        mode: "monthly",
        period: "2026-03",
    },
    Scenario {
        name: "drg-annual",
        policy: "policies/demo-city-2026-drg.toml",
        tables: "grouper-tables/demo",
        mode: "annual",
        period: "2026",
    },
    Scenario {
        name: "drg-monthly",
        policy: "policies/demo-city-2026-drg.toml",
        tables: "grouper-tables/demo",
        mode: "monthly",
        period: "2026-10",
    },
];

fn settle(scenario: &Scenario, cases: &Path, threads: u32, out: &Path) {
    settle_with(scenario, cases, threads, "parallel", out)
}

fn settle_with(scenario: &Scenario, cases: &Path, threads: u32, executor: &str, out: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(root())
        .args(["settle", "-q", "--policy", scenario.policy, "--tables", scenario.tables, "--cases"])
        .arg(cases)
        .args(["--violations", "grouper-tables/demo/violations.csv", "--reviews", "grouper-tables/demo/reviews.csv"])
        .args(["--mode", scenario.mode, "--period", scenario.period, "--threads", &threads.to_string(), "--executor", executor])
        .arg("--out")
        .arg(out)
        .output()
        .expect("dipdrg runs");
    assert!(output.status.success(), "{}: {}", scenario.name, String::from_utf8_lossy(&output.stderr));
}

/// Compares (or, with `DIPDRG_BLESS=1`, freezes) every output of `out` against `tests/golden/{name}/`.
fn compare(name: &str, out: &Path) {
    let golden = root().join("tests/golden").join(name);
    let bless = std::env::var_os("DIPDRG_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&golden).unwrap();
    }
    for file in FILES {
        let produced = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        let frozen_path = golden.join(file);
        if bless {
            std::fs::write(&frozen_path, &produced).unwrap();
            continue;
        }
        let frozen = std::fs::read(&frozen_path).unwrap_or_else(|e| panic!("{}: {e}", frozen_path.display()));
        if produced != frozen {
            let first_difference = produced.iter().zip(&frozen).position(|(a, b)| a != b).unwrap_or(produced.len().min(frozen.len()));
            let context = |bytes: &[u8]| {
                let start = first_difference.saturating_sub(80);
                String::from_utf8_lossy(&bytes[start..(first_difference + 80).min(bytes.len())]).into_owned()
            };
            panic!(
                "{name}: {file} differs from the frozen output at byte {first_difference}\n  frozen:   {:?}\n  produced: {:?}",
                context(&frozen),
                context(&produced)
            );
        }
    }
}

#[test]
fn settle_outputs_equal_the_frozen_ones_from_csv_with_1_2_and_4_threads() {
    let base = std::env::temp_dir().join(format!("dipdrg-golden-{}", std::process::id()));
    for scenario in &SCENARIOS {
        for threads in [1, 2, 4] {
            let out = base.join(format!("{}-t{threads}", scenario.name));
            settle(scenario, Path::new("grouper-tables/demo/cases.csv"), threads, &out);
            compare(scenario.name, &out);
        }
        // The reference executor gives the same bytes.
        let out = base.join(format!("{}-reference", scenario.name));
        settle_with(scenario, Path::new("grouper-tables/demo/cases.csv"), 1, "reference", &out);
        compare(scenario.name, &out);
    }
    let _ = std::fs::remove_dir_all(base);
}

/// The demo cases that read as cases, written to Parquet (the malformed rows have no Parquet
/// form), settle to their own frozen outputs with 1 and 2 threads.
#[cfg(feature = "parquet")]
#[test]
fn settle_outputs_equal_the_frozen_ones_from_parquet() {
    let base = std::env::temp_dir().join(format!("dipdrg-golden-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let file = std::fs::File::open(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let mut reader = dipdrg::io::case_csv::CaseReader::new(file).unwrap();
    let mut cases = Vec::new();
    let mut case = dipdrg::case::Case::default();
    while let Some(item) = reader.next_into(&mut case) {
        if item.is_ok() {
            cases.push(case.clone());
        }
    }
    let parquet = base.join("cases.parquet");
    dipdrg::io::parquet::write_cases(&parquet, &cases).unwrap();
    for scenario in &SCENARIOS {
        for threads in [1, 2] {
            let out = base.join(format!("{}-t{threads}", scenario.name));
            settle(scenario, &parquet, threads, &out);
            compare(&format!("{}-parquet", scenario.name), &out);
        }
        let out = base.join(format!("{}-reference", scenario.name));
        settle_with(scenario, &parquet, 1, "reference", &out);
        compare(&format!("{}-parquet", scenario.name), &out);
    }
    let _ = std::fs::remove_dir_all(base);
}

//! `dipdrg benefits`: one-bill settlement (basic insurance, catastrophic insurance, large-expense
//! subsidy, medical assistance) of a year of discharges under a benefits policy.
//!
//! Input columns (by header name; README "Benefits"): `case_id`, `patient_id`, `discharge_date`,
//! `hospital_kind`, `covered_cost`, and optionally `self_paid` (empty: 0) and `category`
//! (empty: ordinary). Optional `--year-to-date` file: `patient_id`, `admissions`, `basic_paid`,
//! `personal_burden`, `catastrophic_paid`, `subsidy_paid`, `assistance_paid`, `out_of_pocket`
//! (empty: 0) — the year's figures before the first discharge in the file.
//! Outputs in `--out`: `benefits_cases.csv`, `benefits_patients.csv`, `benefits_warnings.csv`.

use anyhow::Context;
use clap::Args;
use dipdrg::benefits::{settle_year, BenefitsPolicy, Discharge, YearToDate};
use dipdrg::case::Date;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

#[derive(Args)]
pub struct BenefitsArgs {
    /// Benefits policy file (TOML), e.g. policies/demo-city-2026-benefits.toml.
    #[arg(long)]
    policy: PathBuf,
    /// Discharges (CSV).
    #[arg(long)]
    cases: PathBuf,
    /// Per-patient figures before the file's first discharge (CSV), for earlier admissions and
    /// outpatient basic payments.
    #[arg(long)]
    year_to_date: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print the step-by-step explanation of this case.
    #[arg(long)]
    explain: Option<String>,
}

/// Reads a CSV into header-named rows, naming the line of any error.
fn read_rows(path: &Path) -> anyhow::Result<Vec<(u64, BTreeMap<String, String>)>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers: Vec<String> = reader.headers()?.iter().map(|h| h.trim().to_string()).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        rows.push((line, headers.iter().cloned().zip(record.iter().map(|v| v.trim().to_string())).collect()));
    }
    Ok(rows)
}

fn field<'a>(row: &'a BTreeMap<String, String>, name: &str, required: bool) -> anyhow::Result<&'a str> {
    match row.get(name).map(String::as_str) {
        Some(value) if !value.is_empty() || !required => Ok(value),
        Some(_) => anyhow::bail!("{name} is empty"),
        None if required => anyhow::bail!("column {name} is missing"),
        None => Ok(""),
    }
}

fn amount(row: &BTreeMap<String, String>, name: &str, required: bool) -> anyhow::Result<Decimal> {
    let text = field(row, name, required)?;
    if text.is_empty() {
        return Ok(Decimal::ZERO);
    }
    Decimal::from_str(text).map_err(|_| anyhow::anyhow!("{name} {text:?} is not a number"))
}

fn read_discharges(path: &Path) -> anyhow::Result<Vec<Discharge>> {
    let mut discharges = Vec::new();
    for (line, row) in read_rows(path)? {
        let parse = || -> anyhow::Result<Discharge> {
            let date = field(&row, "discharge_date", true)?;
            Ok(Discharge {
                case_id: field(&row, "case_id", true)?.to_string(),
                patient_id: field(&row, "patient_id", true)?.to_string(),
                discharge_date: Date::parse(date).ok_or_else(|| anyhow::anyhow!("discharge_date {date:?} is not a date"))?,
                hospital_kind: field(&row, "hospital_kind", true)?.to_string(),
                covered_cost: amount(&row, "covered_cost", true)?,
                self_paid: amount(&row, "self_paid", false)?,
                category: field(&row, "category", false)?.to_string(),
            })
        };
        discharges.push(parse().with_context(|| format!("{} line {line}", path.display()))?);
    }
    Ok(discharges)
}

fn read_year_to_date(path: &Path) -> anyhow::Result<BTreeMap<String, YearToDate>> {
    let mut priors = BTreeMap::new();
    for (line, row) in read_rows(path)? {
        let parse = || -> anyhow::Result<(String, YearToDate)> {
            let admissions = field(&row, "admissions", false)?;
            let ytd = YearToDate {
                admissions: if admissions.is_empty() { 0 } else { admissions.parse().context("admissions")? },
                basic_paid: amount(&row, "basic_paid", false)?,
                personal_burden: amount(&row, "personal_burden", false)?,
                catastrophic_paid: amount(&row, "catastrophic_paid", false)?,
                subsidy_paid: amount(&row, "subsidy_paid", false)?,
                assistance_paid: amount(&row, "assistance_paid", false)?,
                out_of_pocket: amount(&row, "out_of_pocket", false)?,
                covered_cost: Decimal::ZERO,
            };
            Ok((field(&row, "patient_id", true)?.to_string(), ytd))
        };
        let (patient, ytd) = parse().with_context(|| format!("{} line {line}", path.display()))?;
        if priors.insert(patient.clone(), ytd).is_some() {
            anyhow::bail!("{} line {line}: patient {patient} given twice", path.display());
        }
    }
    Ok(priors)
}

fn write_file(path: &Path, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ));
    for row in rows {
        writer.write_record(row)?;
    }
    writer.into_inner().map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?.flush()?;
    Ok(())
}

pub fn run(args: BenefitsArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.policy).with_context(|| format!("reading {}", args.policy.display()))?;
    let policy = BenefitsPolicy::from_toml(&text).with_context(|| format!("loading {}", args.policy.display()))?;
    let discharges = read_discharges(&args.cases)?;
    let priors = match &args.year_to_date {
        Some(path) => read_year_to_date(path)?,
        None => BTreeMap::new(),
    };
    let years = settle_year(&policy, &priors, &discharges, args.explain.is_some())?;

    // Amounts to the fen, always with two decimals.
    let s = dipdrg::units::format_yuan;
    let mut cases = vec![[
        "case_id",
        "patient_id",
        "discharge_date",
        "admission_order",
        "deductible",
        "basic",
        "catastrophic",
        "subsidy",
        "assistance",
        "patient_covered",
        "self_paid",
        "patient_total",
        "warnings",
    ]
    .map(String::from)
    .to_vec()];
    let mut patients = vec![[
        "patient_id",
        "admissions",
        "covered_cost",
        "basic_paid",
        "personal_burden",
        "catastrophic_paid",
        "subsidy_paid",
        "assistance_paid",
        "out_of_pocket",
    ]
    .map(String::from)
    .to_vec()];
    let mut warnings = vec![["patient_id", "case_id", "discharge_date", "warning"].map(String::from).to_vec()];
    for year in &years {
        for case in &year.settlements {
            cases.push(vec![
                case.case_id.clone(),
                case.patient_id.clone(),
                case.discharge_date.to_string(),
                case.admission_order.to_string(),
                s(case.deductible),
                s(case.basic),
                s(case.catastrophic),
                s(case.subsidy),
                s(case.assistance),
                s(case.patient_covered),
                s(case.self_paid),
                s(case.patient_total),
                case.warnings.join("; "),
            ]);
            for warning in &case.warnings {
                warnings.push(vec![case.patient_id.clone(), case.case_id.clone(), case.discharge_date.to_string(), warning.clone()]);
            }
            if args.explain.as_deref() == Some(case.case_id.as_str()) {
                println!("case {} (patient {}, {}):", case.case_id, case.patient_id, case.discharge_date);
                for step in &case.explanation {
                    println!("  {step}");
                }
            }
        }
        let t = &year.totals;
        patients.push(vec![
            year.patient_id.clone(),
            t.admissions.to_string(),
            s(t.covered_cost),
            s(t.basic_paid),
            s(t.personal_burden),
            s(t.catastrophic_paid),
            s(t.subsidy_paid),
            s(t.assistance_paid),
            s(t.out_of_pocket),
        ]);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_file(&args.out.join("benefits_cases.csv"), &cases)?;
    write_file(&args.out.join("benefits_patients.csv"), &patients)?;
    write_file(&args.out.join("benefits_warnings.csv"), &warnings)?;
    eprintln!(
        "benefits {} {} {}: {} discharges of {} patients settled, {} warnings",
        policy.region,
        policy.year,
        policy.fund,
        cases.len() - 1,
        years.len(),
        warnings.len() - 1
    );
    Ok(ExitCode::SUCCESS)
}

/// A case file with `patient_paid` filled by `settle --benefits`, removed when dropped.
pub struct FilledCaseFile {
    path: PathBuf,
}

impl FilledCaseFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FilledCaseFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `settle --benefits`: the case file with each empty `patient_paid` filled by the benefits engine
/// ([`dipdrg::settle::benefits::fill_patient_paid`]), written to a temporary file the executors read.
pub fn fill_case_file(
    benefits_path: &Path,
    region: &dipdrg::policy::Policy,
    cases: &Path,
    threads: usize,
    quiet: bool,
) -> anyhow::Result<FilledCaseFile> {
    let text = std::fs::read_to_string(benefits_path).with_context(|| format!("reading {}", benefits_path.display()))?;
    let benefits = BenefitsPolicy::from_toml(&text).with_context(|| format!("loading {}", benefits_path.display()))?;
    let bytes = std::fs::read(cases).with_context(|| format!("reading {}", cases.display()))?;
    if bytes.starts_with(b"PAR1") {
        anyhow::bail!("{}: --benefits reads a CSV case file, not Parquet", cases.display());
    }
    let filled = dipdrg::settle::benefits::fill_patient_paid(region, &benefits, &bytes, threads)
        .with_context(|| format!("settling benefits of {}", cases.display()))?;
    drop(bytes);
    let path = std::env::temp_dir().join(format!("dipdrg-settle-benefits-{}.csv", std::process::id()));
    let file = FilledCaseFile { path };
    std::fs::write(file.path(), &filled.text).with_context(|| format!("writing {}", file.path().display()))?;
    if !quiet {
        eprintln!(
            "benefits {} {} {}: patient_paid computed for {} cases; {} left empty (not settleable under the benefits policy)",
            benefits.region, benefits.year, benefits.fund, filled.filled, filled.left_empty
        );
    }
    Ok(file)
}

//! `dipdrg settle`: a month-end pre-settlement or a year-end final settlement from a case file.
//!
//! Cases are read in parallel chunks and assessed (grouped and priced) by the workers; results are
//! merged in file order, so every output is byte-identical whatever `--threads` is. Every record
//! ends accepted (settled) or in `rejects.csv` with its reason: unreadable, missing a field
//! settlement needs, a hospital the policy does not list, outside the period, or a repeated
//! case id. The per-case amounts are each hospital's gross split over its cases by largest
//! remainder, so they add up to the statement exactly.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use dipdrg::case::{Case, Fund};
use dipdrg::io::case_csv::{CaseReader, Layout};
use dipdrg::io::chunks::{map_chunks, CHUNK_BYTES};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use dipdrg::settlement::{self, largest_remainder, PointValueRecord, SettlementCase};
use dipdrg::units::{push_decimal, round_half_up, Yuan};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHasher};
use std::fmt::Write as _;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Mode {
    Monthly,
    Annual,
}

#[derive(Args)]
pub struct SettleArgs {
    /// Region policy (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// DRG table set (DRG policy) or DIP catalog directory (DIP policy).
    #[arg(long)]
    tables: PathBuf,
    /// Case CSV.
    #[arg(long)]
    cases: PathBuf,
    /// Confirmed violations CSV: case_id, kind.
    #[arg(long)]
    violations: Option<PathBuf>,
    /// Special-review decisions CSV: case_id, decision (approved/rejected), reviewed_points.
    #[arg(long)]
    reviews: Option<PathBuf>,
    /// `YYYY-MM` (monthly) or `YYYY` (annual), by discharge date.
    #[arg(long)]
    period: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, short)]
    quiet: bool,
}

/// A confirmed violation's penalty.
struct Violation {
    kind: String,
    multiple: Decimal,
}

/// An approved or rejected special-review application.
struct Review {
    approved: bool,
    reviewed_points: Option<Decimal>,
}

/// Read-only inputs every worker shares.
struct Shared<'a> {
    policy: &'a Policy,
    scorer: &'a Scorer,
    layout: Layout,
    hospital_index: FxHashMap<&'a str, u32>,
    year: i32,
    month: Option<u32>,
    violations: FxHashMap<String, Violation>,
    reviews: FxHashMap<String, Review>,
    parts_dir: PathBuf,
}

struct Rejected {
    record: u64,
    case_id: String,
    field: String,
    value: String,
    reason: String,
}

/// What a worker hands back for one chunk. Output rows (without their amount) are spilled to a
/// part file so that memory holds only the compact settlement records.
struct ChunkResult {
    records: u64,
    /// Per accepted case, in chunk order.
    cases: Vec<SettlementCase>,
    case_ids: Vec<Box<str>>,
    local_records: Vec<u64>,
    review_applied: Vec<bool>,
    /// End offset of each row in the part file.
    row_ends: Vec<u64>,
    part: PathBuf,
    rejected: Vec<Rejected>,
    error: Option<String>,
}

fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The settlement fields of an accepted case.
struct SettlementFields {
    hospital: u32,
    fund: Fund,
    month: u32,
    total_cost: Decimal,
    patient_paid: Decimal,
}

/// A field settlement needs and cannot use: (field, value, reason).
type FieldProblem = (&'static str, String, String);

fn required_for_settlement(case: &Case, context: &Shared<'_>) -> Result<SettlementFields, FieldProblem> {
    let missing = |field: &'static str| (field, String::new(), "is required for settlement".to_string());
    let hospital = case.hospital_id.as_deref().ok_or_else(|| missing("hospital_id"))?;
    let index = *context.hospital_index.get(hospital).ok_or((
        "hospital_id",
        hospital.to_string(),
        "is not a hospital of the policy".to_string(),
    ))?;
    let fund = case.fund.ok_or_else(|| missing("fund"))?;
    let discharged = case.discharge_date.ok_or_else(|| missing("discharge_date"))?;
    let (year, month, _) = discharged.ymd();
    let in_period = year == context.year && context.month.is_none_or(|m| m == month);
    if !in_period {
        return Err(("discharge_date", discharged.to_string(), "is outside the settlement period".to_string()));
    }
    let total_cost = case.total_cost.ok_or_else(|| missing("total_cost"))?;
    let patient_paid = case.patient_paid.ok_or_else(|| missing("patient_paid"))?;
    if patient_paid > total_cost {
        return Err(("patient_paid", patient_paid.to_string(), format!("exceeds total_cost {total_cost}")));
    }
    Ok(SettlementFields { hospital: index, fund, month, total_cost, patient_paid })
}

fn process_chunk(context: &Shared<'_>, index: usize, bytes: Vec<u8>) -> ChunkResult {
    let mut result = ChunkResult {
        records: 0,
        cases: Vec::new(),
        case_ids: Vec::new(),
        local_records: Vec::new(),
        review_applied: Vec::new(),
        row_ends: Vec::new(),
        part: context.parts_dir.join(format!("part-{index:06}")),
        rejected: Vec::new(),
        error: None,
    };
    let mut rows: Vec<u8> = Vec::with_capacity(bytes.len() * 3 / 2);
    let expected = bytes.len() / 100 + 16;
    result.cases.reserve(expected);
    result.case_ids.reserve(expected);
    result.local_records.reserve(expected);
    result.review_applied.reserve(expected);
    result.row_ends.reserve(expected);
    let mut row = String::with_capacity(256);
    for item in CaseReader::headerless(&bytes[..], context.layout.clone(), 0) {
        result.records += 1;
        let record = result.records;
        let case = match item {
            Ok(case) => case,
            Err(r) => {
                result.rejected.push(Rejected {
                    record,
                    case_id: r.case_id.unwrap_or_default(),
                    field: r.field,
                    value: r.value,
                    reason: r.reason,
                });
                continue;
            }
        };
        let SettlementFields { hospital, fund, month, total_cost, patient_paid } = match required_for_settlement(&case, context) {
            Ok(fields) => fields,
            Err((field, value, reason)) => {
                result.rejected.push(Rejected { record, case_id: case.case_id, field: field.to_string(), value, reason });
                continue;
            }
        };
        let assessment = context.scorer.assess(context.policy, &case);
        let points = assessment.points.points.value();
        let violation = context.violations.get(&case.case_id);
        let review = context.reviews.get(&case.case_id);
        let reviewed_points = review.filter(|r| r.approved).and_then(|r| r.reviewed_points);
        let settlement = SettlementCase {
            reviewed_points,
            penalty_multiple: violation.map(|v| v.multiple),
            ..SettlementCase::assessed(context.policy, &assessment, hospital, fund, month, total_cost, patient_paid)
        };
        row.clear();
        csv_field(&mut row, &case.case_id);
        let _ = write!(row, ",{},{},{},{},", case.hospital_id.as_deref().unwrap_or(""), fund.as_str(), month, assessment.status);
        csv_field(&mut row, &assessment.group);
        row.push(',');
        row.push_str(assessment.points.category.as_str());
        row.push(',');
        push_decimal(&mut row, assessment.points.base_score.normalize());
        row.push(',');
        if let Some(ratio) = assessment.points.cost_ratio {
            push_decimal(&mut row, round_half_up(ratio, 4).normalize());
        }
        row.push(',');
        push_decimal(&mut row, points);
        row.push(',');
        push_decimal(&mut row, settlement.counted_points());
        row.push(',');
        if let Some(v) = violation {
            let _ = write!(row, "{} x{}", v.kind, v.multiple.normalize());
        }
        row.push(',');
        match review {
            Some(r) if r.approved => {
                let _ = write!(row, "approved {}", reviewed_points.unwrap_or_default());
            }
            Some(_) => row.push_str("rejected"),
            None => {}
        }
        // Factors as columns: outlier multiplier, severity coefficient, hospital coefficient, paid bed days.
        let mut factors: [Option<Decimal>; 4] = [None; 4];
        for factor in &assessment.points.factors {
            let slot = match factor.name {
                "high outlier" | "low outlier" => 0,
                "severity" => 1,
                "hospital" => 2,
                "bed days" => 3,
                _ => continue,
            };
            factors[slot] = Some(factor.value);
        }
        for factor in factors {
            row.push(',');
            if let Some(value) = factor {
                push_decimal(&mut row, round_half_up(value, 4).normalize());
            }
        }
        rows.extend_from_slice(row.as_bytes());
        result.row_ends.push(rows.len() as u64);
        result.cases.push(settlement);
        result.case_ids.push(case.case_id.into_boxed_str());
        result.local_records.push(record);
        result.review_applied.push(review.is_some());
    }
    if let Err(e) = std::fs::write(&result.part, &rows) {
        result.error = Some(format!("writing {}: {e}", result.part.display()));
    }
    result
}

fn read_violations(path: &Path, policy: &Policy) -> anyhow::Result<FxHashMap<String, Violation>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name).with_context(|| format!("{}: no column {name}", path.display()));
    let (id, kind) = (column("case_id")?, column("kind")?);
    let mut violations = FxHashMap::default();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
        let case_id = record.get(id).unwrap_or("").to_string();
        let kind = record.get(kind).unwrap_or("").to_string();
        if case_id.is_empty() || kind.is_empty() {
            bail!("{}: record {}: case_id and kind are required", path.display(), i + 1);
        }
        let multiple = policy.penalties.multiple(&kind);
        if violations.insert(case_id.clone(), Violation { kind, multiple }).is_some() {
            bail!("{}: record {}: case {case_id} is listed twice; confirm one violation per case", path.display(), i + 1);
        }
    }
    Ok(violations)
}

fn read_reviews(path: &Path) -> anyhow::Result<FxHashMap<String, Review>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let id = column("case_id").with_context(|| format!("{}: no column case_id", path.display()))?;
    let decision = column("decision").with_context(|| format!("{}: no column decision", path.display()))?;
    let points = column("reviewed_points");
    let mut reviews = FxHashMap::default();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
        let case_id = record.get(id).unwrap_or("").to_string();
        let approved = match record.get(decision).unwrap_or("") {
            "approved" => true,
            "rejected" => false,
            other => bail!("{}: record {}: field decision: {other:?} is not approved or rejected", path.display(), i + 1),
        };
        let reviewed_points = match points.and_then(|p| record.get(p)).filter(|t| !t.is_empty()) {
            Some(text) => Some(Decimal::from_str(text).ok().filter(|p| *p >= Decimal::ZERO).with_context(|| {
                format!("{}: record {}: field reviewed_points: {text:?} is not a non-negative number", path.display(), i + 1)
            })?),
            None if approved => bail!("{}: record {}: an approved review needs reviewed_points", path.display(), i + 1),
            None => None,
        };
        if reviews.insert(case_id.clone(), Review { approved, reviewed_points }).is_some() {
            bail!("{}: record {}: case {case_id} is listed twice", path.display(), i + 1);
        }
    }
    Ok(reviews)
}

fn parse_period(text: &str, mode: Mode) -> anyhow::Result<(i32, Option<u32>)> {
    let bad = || anyhow::anyhow!("--period {text:?}: expected YYYY-MM for a monthly run or YYYY for an annual one");
    match mode {
        Mode::Monthly => {
            let (year, month) = text.split_once('-').ok_or_else(bad)?;
            let month: u32 = month.parse().map_err(|_| bad())?;
            if !(1..=12).contains(&month) {
                return Err(bad());
            }
            Ok((year.parse().map_err(|_| bad())?, Some(month)))
        }
        Mode::Annual => Ok((text.parse().map_err(|_| bad())?, None)),
    }
}

/// Splits a statement's gross over its cases by counted points (largest remainder).
fn split_over_cases(gross_fen: i64, weights: &[Decimal]) -> Vec<i64> {
    let sum: Decimal = weights.iter().copied().sum();
    if sum > Decimal::ZERO {
        if let Ok(parts) = largest_remainder(gross_fen, weights) {
            return parts;
        }
    } else if sum < Decimal::ZERO {
        let negated: Vec<Decimal> = weights.iter().map(|w| -*w).collect();
        if let Ok(parts) = largest_remainder(-gross_fen, &negated) {
            return parts.into_iter().map(|p| -p).collect();
        }
    }
    let mut parts = vec![0; weights.len()];
    if let Some(first) = parts.first_mut() {
        *first = gross_fen;
    }
    parts
}

fn to_fen(amount: Yuan) -> i64 {
    let scaled = amount.to_fen().0 * Decimal::from(100);
    i64::try_from(scaled.mantissa() / 10i128.pow(scaled.scale())).unwrap_or(0)
}

pub fn run(args: SettleArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let policy = Policy::load(&args.policy)?;
    policy.funds()?;
    let (year, month) = parse_period(&args.period, args.mode)?;
    if year != policy.year {
        bail!("--period {} is not in the policy's year {}", args.period, policy.year);
    }
    let scorer = Scorer::load(&policy, &args.policy, &args.tables).with_context(|| format!("loading {}", args.tables.display()))?;
    let violations = args.violations.as_deref().map(|p| read_violations(p, &policy)).transpose()?.unwrap_or_default();
    let reviews = args.reviews.as_deref().map(read_reviews).transpose()?.unwrap_or_default();
    let hospital_ids: Vec<String> = policy.hospitals.keys().cloned().collect();
    let (mut input, layout) = super::open_case_file(&args.cases)?;
    let context = Shared {
        policy: &policy,
        scorer: &scorer,
        layout,
        hospital_index: hospital_ids.iter().enumerate().map(|(i, h)| (h.as_str(), i as u32)).collect(),
        year,
        month,
        violations,
        reviews,
        parts_dir: args.out.join(".parts"),
    };
    std::fs::create_dir_all(&context.parts_dir).with_context(|| format!("creating {}", context.parts_dir.display()))?;
    let threads = super::worker_threads(args.threads);
    let chunks = map_chunks(input.by_ref(), threads, CHUNK_BYTES, |index, bytes| process_chunk(&context, index, bytes))?;
    let read_done = started.elapsed();

    // Merge in file order: record numbers, duplicates, every record accounted for.
    let expected: usize = chunks.iter().map(|c| c.cases.len()).sum();
    let mut cases: Vec<SettlementCase> = Vec::with_capacity(expected);
    let mut case_ids: Vec<Box<str>> = Vec::with_capacity(expected);
    let mut case_records: Vec<u64> = Vec::with_capacity(expected);
    let mut review_applied: Vec<bool> = Vec::with_capacity(expected);
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut parts: Vec<(PathBuf, Vec<u64>, Vec<bool>)> = Vec::new();
    let mut records_before = 0u64;
    let mut seen: FxHashMap<u64, u32> = FxHashMap::with_capacity_and_hasher(expected, Default::default());
    for chunk in chunks {
        if let Some(error) = chunk.error {
            bail!("{error}");
        }
        for mut r in chunk.rejected {
            r.record += records_before;
            rejected.push(r);
        }
        let mut kept = Vec::with_capacity(chunk.cases.len());
        let items = chunk.cases.into_iter().zip(chunk.case_ids).zip(chunk.local_records).zip(chunk.review_applied);
        for (((case, case_id), local_record), reviewed) in items {
            let record = local_record + records_before;
            let mut hasher = FxHasher::default();
            case_id.hash(&mut hasher);
            let key = hasher.finish();
            let duplicate_of = match seen.get(&key) {
                Some(&first) if case_ids[first as usize] == case_id => Some(case_records[first as usize]),
                Some(_) => None, // a hash collision between different ids: both are kept
                None => {
                    seen.insert(key, cases.len() as u32);
                    None
                }
            };
            kept.push(duplicate_of.is_none());
            match duplicate_of {
                Some(first) => rejected.push(Rejected {
                    record,
                    case_id: case_id.to_string(),
                    field: "case_id".into(),
                    value: case_id.to_string(),
                    reason: format!("repeats the case id of record {first}: a case is settled once"),
                }),
                None => {
                    cases.push(case);
                    case_ids.push(case_id);
                    case_records.push(record);
                    review_applied.push(reviewed);
                }
            }
        }
        parts.push((chunk.part, chunk.row_ends, kept));
        records_before += chunk.records;
    }
    drop(seen);
    drop(case_ids);
    rejected.sort_by_key(|r| r.record);
    let submitted = records_before;
    if cases.len() as u64 + rejected.len() as u64 != submitted {
        bail!("internal error: accepted {} + rejected {} != submitted {submitted}", cases.len(), rejected.len());
    }

    let merge_done = started.elapsed();
    // Special-review quota, then settlement.
    let mut cases_per_hospital = vec![0u64; hospital_ids.len()];
    let mut applications = vec![0u64; hospital_ids.len()];
    for (case, reviewed) in cases.iter().zip(&review_applied) {
        cases_per_hospital[case.hospital as usize] += 1;
        applications[case.hospital as usize] += u64::from(*reviewed);
    }
    settlement::check_special_review_quota(&policy, &hospital_ids, &cases_per_hospital, &applications)?;
    let outputs = match args.mode {
        Mode::Monthly => {
            let (values, statements) = settlement::monthly(&policy, &cases, hospital_ids.len())?;
            Statements::Monthly(values, statements)
        }
        Mode::Annual => {
            let (values, statements) = settlement::annual(&policy, &cases, &hospital_ids)?;
            Statements::Annual(values, statements)
        }
    };

    let settle_done = started.elapsed();
    // Per-case amounts: each statement's gross split over its cases.
    let mut case_amounts = vec![0i64; cases.len()];
    let slot = |hospital: u32, fund: Fund| hospital as usize * 2 + usize::from(fund == Fund::Resident);
    let mut by_statement: Vec<Vec<u32>> = vec![Vec::new(); hospital_ids.len() * 2];
    for (i, case) in cases.iter().enumerate() {
        by_statement[slot(case.hospital, case.fund)].push(i as u32);
    }
    for ((hospital, fund), gross) in outputs.gross_by_statement() {
        let members = &by_statement[slot(hospital, fund)];
        let weights: Vec<Decimal> = members.iter().map(|&i| cases[i as usize].counted_points()).collect();
        for (&i, part) in members.iter().zip(split_over_cases(to_fen(gross), &weights)) {
            case_amounts[i as usize] = part;
        }
    }

    let split_done = started.elapsed();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut cases_out = BufWriter::with_capacity(1 << 20, File::create(args.out.join("cases.csv"))?);
    cases_out.write_all(
        b"case_id,hospital_id,fund,month,status,group,category,base_score,cost_ratio,points,counted_points,violation,review,outlier_factor,severity_factor,hospital_factor,bed_days,amount\n",
    )?;
    let mut amounts = case_amounts.iter();
    let mut line = String::with_capacity(32);
    for (part, row_ends, kept) in &parts {
        let rows = std::fs::read(part).with_context(|| format!("reading {}", part.display()))?;
        let mut start = 0usize;
        for (&end, &keep) in row_ends.iter().zip(kept) {
            let end = end as usize;
            if keep {
                cases_out.write_all(&rows[start..end])?;
                line.clear();
                line.push(',');
                push_decimal(&mut line, Decimal::new(amounts.next().copied().unwrap_or(0), 2));
                line.push('\n');
                cases_out.write_all(line.as_bytes())?;
            }
            start = end;
        }
        std::fs::remove_file(part).with_context(|| format!("removing {}", part.display()))?;
    }
    let _ = std::fs::remove_dir(&context.parts_dir);
    cases_out.flush()?;
    let mut rejects = csv::Writer::from_path(args.out.join("rejects.csv"))?;
    rejects.write_record(["record", "case_id", "field", "value", "reason"])?;
    for r in &rejected {
        rejects.write_record([r.record.to_string().as_str(), &r.case_id, &r.field, &r.value, &r.reason])?;
    }
    rejects.flush()?;
    let run = RunInfo {
        mode: args.mode,
        period: args.period.clone(),
        policy: &policy,
        tables_fingerprint: scorer.fingerprint().to_string(),
        submitted,
        accepted: cases.len() as u64,
        rejected: rejected.len() as u64,
        hospital_ids: &hospital_ids,
    };
    let statements_table = outputs.statements_table(&policy, &hospital_ids);
    let summary_table = outputs.summary_table(&run);
    write_csv(&args.out.join("statements.csv"), &statements_table)?;
    write_csv(&args.out.join("summary.csv"), &summary_table)?;
    dipdrg::report::xlsx::write(&args.out.join("settlement.xlsx"), &[("statements", &statements_table), ("summary", &summary_table)])?;
    std::fs::write(args.out.join("report.html"), dipdrg::report::html::settlement_report(&statements_table, &summary_table))?;
    if !args.quiet {
        eprintln!(
            "submitted {submitted} = accepted {} + rejected {} (reasons in {}); read and assessed in {:.2} s with {threads} threads, total {:.2} s",
            cases.len(),
            rejected.len(),
            args.out.join("rejects.csv").display(),
            read_done.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        eprintln!(
            "phases: read+assess {:.2} s, merge {:.2} s, settle {:.2} s, split amounts {:.2} s, write {:.2} s",
            read_done.as_secs_f64(),
            (merge_done - read_done).as_secs_f64(),
            (settle_done - merge_done).as_secs_f64(),
            (split_done - settle_done).as_secs_f64(),
            (started.elapsed() - split_done).as_secs_f64()
        );
        for record in outputs.point_values() {
            eprintln!("{} point value ({:?}): {}", record.fund.as_str(), record.method, record.value);
        }
        eprintln!("wrote {}", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What a run was, for its summary.
pub struct RunInfo<'a> {
    mode: Mode,
    period: String,
    policy: &'a Policy,
    tables_fingerprint: String,
    submitted: u64,
    accepted: u64,
    rejected: u64,
    hospital_ids: &'a [String],
}

enum Statements {
    Monthly(Vec<PointValueRecord>, Vec<settlement::MonthlyStatement>),
    Annual(Vec<PointValueRecord>, Vec<settlement::AnnualStatement>),
}

/// A table for CSV, XLSX and HTML alike: header and rows of text cells.
pub type Table = dipdrg::report::Table;

fn write_csv(path: &Path, table: &Table) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    writer.write_record(&table.header)?;
    for row in &table.rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    Ok(())
}

impl Statements {
    fn point_values(&self) -> &[PointValueRecord] {
        match self {
            Statements::Monthly(v, _) | Statements::Annual(v, _) => v,
        }
    }

    fn gross_by_statement(&self) -> Vec<((u32, Fund), Yuan)> {
        match self {
            Statements::Monthly(_, s) => s.iter().map(|s| ((s.hospital, s.fund), s.gross)).collect(),
            Statements::Annual(_, s) => s.iter().map(|s| ((s.hospital, s.fund), s.gross)).collect(),
        }
    }

    fn statements_table(&self, policy: &Policy, hospital_ids: &[String]) -> Table {
        let hospital = |index: u32| {
            let id = hospital_ids.get(index as usize).cloned().unwrap_or_default();
            let info = policy.hospitals.get(&id);
            (id, info.and_then(|h| h.name.clone()).unwrap_or_default(), info.map(|h| h.level.clone()).unwrap_or_default())
        };
        let common = [
            "hospital_id",
            "hospital_name",
            "level",
            "fund",
            "cases",
            "grouped_cases",
            "exempt_cases",
            "penalised_cases",
            "reviewed_cases",
            "points",
            "penalty_points",
            "counted_points",
            "cmi",
            "total_cost",
            "point_value",
            "gross",
            "patient_paid",
        ];
        let totals_cells = |t: &settlement::Totals| {
            vec![
                t.cases.to_string(),
                t.grouped_cases.to_string(),
                t.exempt_cases.to_string(),
                t.penalised_cases.to_string(),
                t.reviewed_cases.to_string(),
                t.points.normalize().to_string(),
                t.penalty_points.normalize().to_string(),
                t.counted_points.normalize().to_string(),
                t.cmi().to_string(),
                Yuan(t.total_cost).to_fen().to_string(),
            ]
        };
        match self {
            Statements::Monthly(_, statements) => {
                let mut header: Vec<String> = common.iter().map(|s| s.to_string()).collect();
                header.extend(["amount", "paid_now", "deposit"].map(String::from));
                let rows = statements
                    .iter()
                    .map(|s| {
                        let (id, name, level) = hospital(s.hospital);
                        let mut row = vec![id, name, level, s.fund.as_str().to_string()];
                        row.extend(totals_cells(&s.totals));
                        row.extend([
                            s.point_value.to_string(),
                            s.gross.0.to_string(),
                            s.patient_paid.0.to_string(),
                            s.amount.0.to_string(),
                            s.paid_now.0.to_string(),
                            s.deposit.0.to_string(),
                        ]);
                        row
                    })
                    .collect();
                Table { header, rows }
            }
            Statements::Annual(_, statements) => {
                let mut header: Vec<String> = common.iter().map(|s| s.to_string()).collect();
                header.extend(
                    [
                        "fund_due",
                        "band_adjustment",
                        "deposit_held",
                        "assessment",
                        "deposit_forfeited",
                        "final_due",
                        "paid_monthly",
                        "balance",
                    ]
                    .map(String::from),
                );
                let rows = statements
                    .iter()
                    .map(|s| {
                        let (id, name, level) = hospital(s.hospital);
                        let mut row = vec![id, name, level, s.fund.as_str().to_string()];
                        row.extend(totals_cells(&s.totals));
                        row.extend([
                            s.point_value.to_string(),
                            s.gross.0.to_string(),
                            s.patient_paid.0.to_string(),
                            s.fund_due.0.to_string(),
                            s.band_adjustment.0.to_string(),
                            s.deposit_held.0.to_string(),
                            s.assessment.normalize().to_string(),
                            s.deposit_forfeited.0.to_string(),
                            s.final_due.0.to_string(),
                            s.paid_monthly.0.to_string(),
                            s.balance.0.to_string(),
                        ]);
                        row
                    })
                    .collect();
                Table { header, rows }
            }
        }
    }

    fn summary_table(&self, run: &RunInfo<'_>) -> Table {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut add = |key: &str, value: String| rows.push(vec![key.to_string(), value]);
        add("mode", format!("{:?}", run.mode).to_lowercase());
        add("period", run.period.clone());
        add("region", run.policy.region.clone());
        add("policy_version", run.policy.version.clone());
        add("scheme", format!("{:?}", run.policy.scheme).to_lowercase());
        add("tables_fingerprint", run.tables_fingerprint.clone());
        add("submitted", run.submitted.to_string());
        add("accepted", run.accepted.to_string());
        add("rejected", run.rejected.to_string());
        add("hospitals", run.hospital_ids.len().to_string());
        for record in self.point_values() {
            let fund = record.fund.as_str();
            add(&format!("{fund}.point_value_method"), format!("{:?}", record.method).to_lowercase());
            add(&format!("{fund}.point_value"), record.value.to_string());
            add(&format!("{fund}.point_value_exact"), record.exact.to_string());
            if let Some(d) = record.distributable {
                add(&format!("{fund}.distributable"), d.0.to_string());
            }
            for (name, value) in &record.inputs {
                add(&format!("{fund}.input.{name}"), value.normalize().to_string());
            }
        }
        let gross: Yuan = self.gross_by_statement().iter().map(|(_, g)| *g).sum();
        add("gross_total", gross.0.to_string());
        Table { header: vec!["key".into(), "value".into()], rows }
    }
}

//! `dipdrg settle`: a month-end pre-settlement or a year-end final settlement from a case file.
//!
//! Cases are read in parallel chunks and assessed (grouped and priced) by the workers; results are
//! merged in file order, so every output is byte-identical whatever `--threads` is. Every record
//! ends accepted (settled) or in `rejects.csv` with its reason: unreadable, missing a field
//! settlement needs, a hospital the policy does not list, outside the period, or a repeated
//! case id. The per-case amounts are each hospital's gross split over its cases by largest
//! remainder, so they add up to the statement exactly.
//!
//! Speed (a city's year is ~10M cases): grouping a case is a few lookups in tables far larger
//! than the cache, so a worker keeps two cases in flight — while it settles one, the next is
//! already parsed and the cache lines its lookups need are on their way (index slots, then code
//! facts, then the principal's rules). Totals are summed per worker, not per chunk, and
//! `cases.csv` is written in pieces that stay in cache between assembling and writing.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use dipdrg::case::{Case, Fund};
use dipdrg::io::case_csv::{ChunkReader, Layout};
use dipdrg::io::chunks::{map_chunks_with, CHUNK_BYTES};
use dipdrg::policy::Policy;
use dipdrg::pricing::Reason;
use dipdrg::scoring::Scorer;
use dipdrg::settlement::{self, largest_remainder, CaseTerms, MonthlyTotals, PointValueRecord, SettlementCase};
use dipdrg::units::{push_decimal, push_rounded, Yuan};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHasher};
use std::fmt::Write as _;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Read;
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
    /// Each listed hospital's level and coefficient, by index.
    hospital_terms: Vec<Option<(&'a str, Option<dipdrg::policy::Coefficient>)>>,
    year: i32,
    month: Option<u32>,
    violations: FxHashMap<String, Violation>,
    reviews: FxHashMap<String, Review>,
    /// The ids of `violations` and `reviews`, as a bit filter: most cases have neither, and one
    /// probe of this small array tells so without a probe of the maps.
    listed: IdFilter,
}

/// A one-hash Bloom filter over case ids ([`id_hash`]): `might_hold` is false only for ids that
/// were not inserted. About 16 bits per id, so a few percent of misses take the full lookup.
struct IdFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl IdFilter {
    fn new<'a>(ids: impl Iterator<Item = &'a String> + Clone) -> IdFilter {
        let wanted = (ids.clone().count() * 16).max(64).next_power_of_two();
        let mut filter = IdFilter { bits: vec![0; wanted / 64], mask: wanted as u64 - 1 };
        for id in ids {
            let bit = id_hash(id) & filter.mask;
            filter.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        filter
    }

    /// Asks the cache for the word `might_hold(hash)` will read (no effect on results).
    fn prefetch(&self, hash: u64) {
        prefetch_index::prefetch_index(&self.bits, ((hash & self.mask) / 64) as usize);
    }

    fn might_hold(&self, hash: u64) -> bool {
        let bit = hash & self.mask;
        self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }
}

struct Rejected {
    record: u64,
    case_id: String,
    field: String,
    value: String,
    reason: String,
}

/// What a worker hands back for one chunk: compact settlement records, a hash of each case id
/// (for duplicate checks), and the output rows (without their amount) as text. A row starts
/// with its case id, which is where a duplicate check reads the id itself.
struct ChunkResult {
    records: u64,
    /// Per accepted case, in chunk order.
    cases: Vec<SettlementCase>,
    /// FxHash of each case id.
    id_hashes: Vec<u64>,
    review_applied: Vec<bool>,
    rows: Vec<u8>,
    /// End offset of each row in `rows`.
    row_ends: Vec<u32>,
    rejected: Vec<Rejected>,
}

/// What a worker sums over all its chunks: the settlement totals per (hospital, fund, month) as a
/// dense grid, and the special-review applications per hospital. Exact sums, so which worker
/// took which chunk does not matter; repeats are taken out after the merge, when they are known.
struct WorkerTotals {
    grid: Vec<settlement::Totals>,
    applications: Vec<u64>,
}

impl WorkerTotals {
    fn new(hospitals: usize) -> WorkerTotals {
        WorkerTotals { grid: vec![settlement::Totals::default(); hospitals * 24], applications: vec![0; hospitals] }
    }
}

impl ChunkResult {
    /// The case id of the i-th accepted case: the first field of its row, unquoted.
    fn id(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let start = if i == 0 { 0 } else { self.row_ends[i - 1] as usize };
        let row = std::str::from_utf8(&self.rows[start..self.row_ends[i] as usize]).unwrap_or_default();
        match row.strip_prefix('"') {
            // A quoted id: up to the closing quote that is not doubled.
            Some(quoted) => {
                let mut id = String::new();
                let mut chars = quoted.chars().peekable();
                while let Some(c) = chars.next() {
                    match (c, chars.peek()) {
                        ('"', Some('"')) => {
                            id.push('"');
                            chars.next();
                        }
                        ('"', _) => break,
                        _ => id.push(c),
                    }
                }
                std::borrow::Cow::Owned(id)
            }
            None => std::borrow::Cow::Borrowed(row.split(',').next().unwrap_or_default()),
        }
    }
}

fn csv_field(out: &mut String, text: &str) {
    if text.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
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
    let month = discharged.ymd().1;
    if !discharged.in_period(context.year, context.month) {
        return Err(("discharge_date", discharged.to_string(), "is outside the settlement period".to_string()));
    }
    let total_cost = case.total_cost.ok_or_else(|| missing("total_cost"))?;
    let patient_paid = case.patient_paid.ok_or_else(|| missing("patient_paid"))?;
    if patient_paid > total_cost {
        return Err(("patient_paid", patient_paid.to_string(), format!("exceeds total_cost {total_cost}")));
    }
    Ok(SettlementFields { hospital: index, fund, month, total_cost, patient_paid })
}

/// Settles one parsed case (record `record` of its chunk, `hash` its [`id_hash`]): checks its settlement fields, groups
/// and prices it, applies a confirmed violation or a special review, and adds its settlement
/// record, id hash and output row (without the amount) to `result`.
fn settle_case(
    context: &Shared<'_>,
    sums: &mut WorkerTotals,
    result: &mut ChunkResult,
    row: &mut String,
    case: &Case,
    record: u64,
    hash: u64,
) {
    let listed = context.listed.might_hold(hash);
    let SettlementFields { hospital, fund, month, total_cost, patient_paid } = match required_for_settlement(case, context) {
        Ok(fields) => fields,
        Err((field, value, reason)) => {
            result.rejected.push(Rejected { record, case_id: case.case_id.clone(), field: field.to_string(), value, reason });
            return;
        }
    };
    let assessment = context.scorer.assess_at(context.policy, case, context.hospital_terms[hospital as usize]);
    let points = assessment.points.points.value();
    let violation = if listed { context.violations.get(&case.case_id) } else { None };
    let review = if listed { context.reviews.get(&case.case_id) } else { None };
    let reviewed_points = review.filter(|r| r.approved).and_then(|r| r.reviewed_points);
    let terms = CaseTerms { reviewed_points, penalty_multiple: violation.map(|v| v.multiple), ..CaseTerms::assessed(&assessment) };
    let settlement = SettlementCase::new(hospital, fund, month, terms, total_cost, patient_paid);
    if review.is_some() {
        sums.applications[hospital as usize] += 1;
    }
    row.clear();
    csv_field(row, &case.case_id);
    for part in [case.hospital_id.as_deref().unwrap_or(""), fund.as_str()] {
        row.push(',');
        row.push_str(part);
    }
    row.push(',');
    if month >= 10 {
        row.push('1');
    }
    row.push(char::from(b'0' + (month % 10) as u8));
    row.push(',');
    row.push_str(assessment.status);
    row.push(',');
    csv_field(row, &assessment.group);
    row.push(',');
    row.push_str(assessment.points.category.as_str());
    row.push(',');
    push_rounded(row, assessment.points.base_score, 28);
    row.push(',');
    if let Some(ratio) = assessment.points.cost_ratio {
        push_rounded(row, ratio, 4);
    }
    row.push(',');
    push_decimal(row, points);
    row.push(',');
    push_decimal(row, settlement.counted_points());
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
        let slot = match factor.reason {
            Reason::HighOutlier { .. } | Reason::LowOutlier { .. } => 0,
            Reason::Severity(_) => 1,
            Reason::Hospital
            | Reason::Grassroots
            | Reason::HospitalUnknown
            | Reason::HospitalOverride(_)
            | Reason::FundMissing
            | Reason::HospitalNotApplied(_) => 2,
            Reason::BedDay { .. } => 3,
            _ => continue,
        };
        factors[slot] = Some(factor.value);
    }
    for factor in factors {
        row.push(',');
        if let Some(value) = factor {
            push_rounded(row, value, 4);
        }
    }
    result.rows.extend_from_slice(row.as_bytes());
    result.row_ends.push(result.rows.len() as u32);
    result.cases.push(settlement);
    result.id_hashes.push(hash);
    result.review_applied.push(review.is_some());
}

fn process_chunk(context: &Shared<'_>, sums: &mut WorkerTotals, bytes: &[u8]) -> ChunkResult {
    let expected = bytes.len() / 100 + 16;
    let mut result = ChunkResult {
        records: 0,
        cases: Vec::with_capacity(expected),
        id_hashes: Vec::with_capacity(expected),
        review_applied: Vec::with_capacity(expected),
        rows: Vec::with_capacity(bytes.len()),
        row_ends: Vec::with_capacity(expected),
        rejected: Vec::new(),
    };
    let mut row = String::with_capacity(256);
    // Two cases in flight: the next record is parsed, and the cache lines its lookups will need
    // are requested (prefetched), before the one parsed last time is settled — so those misses
    // overlap the settling instead of stalling it.
    let mut cases = [Case::default(), Case::default()];
    // The slot the next record is parsed into; the other one holds the case waiting, if any.
    let mut next = 0;
    let mut waiting: Option<(u64, u64)> = None;
    let mut reader = ChunkReader::new(bytes, context.layout.clone(), 0);
    loop {
        if waiting.is_some() {
            context.scorer.prefetch_facts(&cases[1 - next]);
        }
        let item = reader.next_into(&mut cases[next]);
        let done = item.is_none();
        let mut parsed = None;
        if let Some(item) = item {
            result.records += 1;
            match item {
                Ok(()) => {
                    let hash = id_hash(&cases[next].case_id);
                    context.scorer.prefetch(&cases[next]);
                    context.listed.prefetch(hash);
                    parsed = Some((result.records, hash));
                }
                Err(r) => result.rejected.push(Rejected {
                    record: result.records,
                    case_id: r.case_id.unwrap_or_default(),
                    field: r.field,
                    value: r.value,
                    reason: r.reason,
                }),
            }
        }
        if let Some((record, hash)) = waiting.take() {
            context.scorer.prefetch_rules(&cases[1 - next]);
            settle_case(context, sums, &mut result, &mut row, &cases[1 - next], record, hash);
        }
        if let Some(waits) = parsed {
            next = 1 - next;
            waiting = Some(waits);
        }
        if done {
            break;
        }
    }
    // A settled case's rejection can follow the next record's parse rejection.
    result.rejected.sort_by_key(|r| r.record);
    // Totals in one pass after the chunk: the grid's cells are scattered over a megabyte, and a
    // tight loop overlaps their cache misses where the per-case work above would wait on each.
    for case in &result.cases {
        sums.grid[grid_slot(case.hospital, case.fund, case.month)].add(case);
    }
    result
}

/// A case's cell in a chunk's dense (hospital, fund, month) totals.
fn grid_slot(hospital: u32, fund: Fund, month: u8) -> usize {
    (hospital as usize * 2 + usize::from(fund == Fund::Resident)) * 12 + usize::from(month.clamp(1, 12)) - 1
}

/// The (hospital, fund, month) of a cell of the totals grid: [`grid_slot`] undone.
fn grid_key(slot: usize) -> (u32, Fund, u32) {
    let (statement, month) = (slot / 12, slot % 12 + 1);
    let fund = if statement % 2 == 1 { Fund::Resident } else { Fund::Employee };
    ((statement / 2) as u32, fund, month as u32)
}

/// `work(0..n)` on two threads (even and odd indices), results in index order.
fn on_two_threads<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let run = |parity: usize| (parity..n).step_by(2).map(&work).collect::<Vec<T>>();
    let (even, odd) = std::thread::scope(|scope| {
        let other = scope.spawn(|| run(1));
        (run(0), other.join().ok())
    });
    let odd = odd.unwrap_or_else(|| run(1));
    let mut out = Vec::with_capacity(n);
    let (mut even, mut odd) = (even.into_iter(), odd.into_iter());
    for i in 0..n {
        if let Some(item) = if i % 2 == 0 { even.next() } else { odd.next() } {
            out.push(item);
        }
    }
    out
}

/// Writes all of `bytes` at `offset` (the file's own position is not used), so that two threads
/// can fill one file.
#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock();
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

fn id_hash(id: &str) -> u64 {
    let mut hasher = FxHasher::default();
    id.hash(&mut hasher);
    hasher.finish()
}

/// Finds repeated case ids: for each later occurrence, the global index of the first. Keys are
/// spread over 256 buckets by the hash's top byte (one counting pass, one scatter), and each
/// bucket — small enough to stay in cache — goes through a hash table on one of two threads; ids
/// are compared whenever hashes are equal, so a hash collision never merges two cases.
fn find_repeats(chunks: &[ChunkResult], starts: &[usize]) -> FxHashMap<u32, u32> {
    const BUCKETS: usize = 256;
    let bucket = |hash: u64| (hash >> 56) as usize;
    let locate = |global: u32| {
        let chunk = starts.partition_point(|&s| s <= global as usize) - 1;
        chunks[chunk].id(global as usize - starts[chunk])
    };
    let mut bounds = [0usize; BUCKETS + 1];
    for chunk in chunks {
        for &hash in &chunk.id_hashes {
            bounds[bucket(hash) + 1] += 1;
        }
    }
    for b in 0..BUCKETS {
        bounds[b + 1] += bounds[b];
    }
    let mut keys: Vec<(u64, u32)> = vec![(0, 0); bounds[BUCKETS]];
    let mut next = bounds;
    for (chunk, &start) in chunks.iter().zip(starts) {
        for (i, &hash) in chunk.id_hashes.iter().enumerate() {
            let b = bucket(hash);
            keys[next[b]] = (hash, (start + i) as u32);
            next[b] += 1;
        }
    }
    // One bucket through a small open-addressing table (in cache): keys arrive in
    // ascending index order, so the one found in the table is the earlier occurrence. Equal
    // hashes are confirmed by comparing the ids; a collision probes on as a different key.
    let scan = |b: usize| -> Vec<(u32, u32)> {
        const EMPTY: u32 = u32::MAX;
        let keys = &keys[bounds[b]..bounds[b + 1]];
        let size = (keys.len() * 2).max(16).next_power_of_two();
        let mut table = vec![(0u64, EMPTY); size];
        let mask = size - 1;
        let mut repeats = Vec::new();
        for &(hash, index) in keys {
            // The top byte chose the bucket: the low bits choose the slot.
            let mut at = hash as usize & mask;
            loop {
                let (seen_hash, seen_index) = table[at];
                if seen_index == EMPTY {
                    table[at] = (hash, index);
                    break;
                }
                if seen_hash == hash && locate(seen_index) == locate(index) {
                    repeats.push((index, seen_index));
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        repeats
    };
    on_two_threads(BUCKETS, scan).into_iter().flatten().collect()
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
    // The tables load on a second thread while this one reads the violations and reviews.
    let (scorer, violations, reviews) = std::thread::scope(|scope| {
        let tables = scope.spawn(|| Scorer::load(&policy, &args.policy, &args.tables));
        let violations = args.violations.as_deref().map(|p| read_violations(p, &policy)).transpose();
        let reviews = args.reviews.as_deref().map(read_reviews).transpose();
        let scorer = tables.join().map_err(|_| anyhow::anyhow!("loading {} stopped unexpectedly", args.tables.display()));
        (scorer, violations, reviews)
    });
    let scorer = scorer?.with_context(|| format!("loading {}", args.tables.display()))?;
    let violations = violations?.unwrap_or_default();
    let reviews = reviews?.unwrap_or_default();
    let hospital_ids: Vec<String> = policy.hospitals.keys().cloned().collect();
    let (mut input, layout, size_hint) = super::open_case_file(&args.cases)?;
    let listed = IdFilter::new(violations.keys().chain(reviews.keys()));
    let context = Shared {
        policy: &policy,
        scorer: &scorer,
        layout,
        hospital_index: hospital_ids.iter().enumerate().map(|(i, h)| (h.as_str(), i as u32)).collect(),
        hospital_terms: hospital_ids.iter().map(|h| policy.hospital_terms(h)).collect(),
        year,
        month,
        violations,
        reviews,
        listed,
    };
    let threads = super::worker_threads(args.threads);
    let hospitals = hospital_ids.len();
    let (mut chunks, sums) = map_chunks_with(
        input.by_ref(),
        threads,
        CHUNK_BYTES,
        size_hint,
        || WorkerTotals::new(hospitals),
        |sums, _, bytes| process_chunk(&context, sums, bytes),
    )?;
    let read_done = started.elapsed();

    // Merge in file order: record numbers, duplicates, every record accounted for.
    let mut starts = Vec::with_capacity(chunks.len());
    let mut accepted_before = 0usize;
    for chunk in &chunks {
        starts.push(accepted_before);
        accepted_before += chunk.cases.len();
    }
    if accepted_before > u32::MAX as usize {
        bail!("{accepted_before} cases in one run: at most {} are supported", u32::MAX);
    }
    let repeats = find_repeats(&chunks, &starts);
    // Record numbers: each chunk's records before it, and its rejected records (ascending), from
    // which an accepted case's record number follows (no number stored per case).
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut chunk_records_before = Vec::with_capacity(chunks.len());
    let mut chunk_rejected_records: Vec<Vec<u64>> = Vec::with_capacity(chunks.len());
    let mut records_before = 0u64;
    for chunk in &mut chunks {
        chunk_records_before.push(records_before);
        chunk_rejected_records.push(chunk.rejected.iter().map(|r| r.record).collect());
        for mut r in chunk.rejected.drain(..) {
            r.record += records_before;
            rejected.push(r);
        }
        records_before += chunk.records;
    }
    let record_of = |global: u32| -> u64 {
        let chunk = starts.partition_point(|&s| s <= global as usize) - 1;
        // The (j+1)-th accepted record: step past each rejected record at or before it.
        let mut record = (global as usize - starts[chunk]) as u64 + 1;
        for &skipped in &chunk_rejected_records[chunk] {
            if skipped > record {
                break;
            }
            record += 1;
        }
        chunk_records_before[chunk] + record
    };
    for (&later, &first) in &repeats {
        let chunk = starts.partition_point(|&s| s <= later as usize) - 1;
        let id = chunks[chunk].id(later as usize - starts[chunk]).to_string();
        rejected.push(Rejected {
            record: record_of(later),
            case_id: id.clone(),
            field: "case_id".into(),
            value: id,
            reason: format!("repeats the case id of record {}: a case is settled once", record_of(first)),
        });
    }
    let kept = |global: usize| !repeats.contains_key(&(global as u32));
    // The chunks' totals, less the repeats the workers could not know about.
    let mut monthly_totals = MonthlyTotals::new();
    let mut applications = vec![0u64; hospital_ids.len()];
    for worker in &sums {
        for (slot, totals) in worker.grid.iter().enumerate() {
            if totals.cases > 0 {
                monthly_totals.entry(grid_key(slot)).or_default().merge(totals);
            }
        }
        for (sum, n) in applications.iter_mut().zip(&worker.applications) {
            *sum += n;
        }
    }
    for &later in repeats.keys() {
        let chunk = starts.partition_point(|&s| s <= later as usize) - 1;
        let local = later as usize - starts[chunk];
        let case = &chunks[chunk].cases[local];
        if let Some(totals) = monthly_totals.get_mut(&(case.hospital, case.fund, u32::from(case.month))) {
            totals.subtract(case);
        }
        if chunks[chunk].review_applied[local] {
            applications[case.hospital as usize] -= 1;
        }
    }
    monthly_totals.retain(|_, t| t.cases > 0);
    // Repeats leave their chunk's records in place (no copy into one big vector).
    for (chunk, &start) in chunks.iter_mut().zip(&starts) {
        if !repeats.is_empty() {
            let mut i = 0;
            chunk.cases.retain(|_| {
                i += 1;
                kept(start + i - 1)
            });
            let mut i = 0;
            chunk.review_applied.retain(|_| {
                i += 1;
                kept(start + i - 1)
            });
        }
        chunk.id_hashes = Vec::new();
    }
    let parts: Vec<&[SettlementCase]> = chunks.iter().map(|c| &c.cases[..]).collect();
    let cases: Vec<&SettlementCase> = parts.iter().flat_map(|p| p.iter()).collect();
    rejected.sort_by_key(|r| r.record);
    let submitted = records_before;
    if cases.len() as u64 + rejected.len() as u64 != submitted {
        bail!("internal error: accepted {} + rejected {} != submitted {submitted}", cases.len(), rejected.len());
    }

    let merge_done = started.elapsed();
    // Special-review quota, then settlement.
    let mut cases_per_hospital = vec![0u64; hospital_ids.len()];
    for ((hospital, _, _), totals) in &monthly_totals {
        cases_per_hospital[*hospital as usize] += totals.cases;
    }
    settlement::check_special_review_quota(&policy, &hospital_ids, &cases_per_hospital, &applications)?;
    let outputs = match args.mode {
        Mode::Monthly => {
            let (values, statements) = settlement::monthly_from_totals(&policy, monthly_totals)?;
            Statements::Monthly(values, statements)
        }
        Mode::Annual => {
            let (values, statements) = settlement::annual_from_totals(&policy, monthly_totals, &hospital_ids)?;
            Statements::Annual(values, statements)
        }
    };

    let settle_done = started.elapsed();
    // Per-case amounts: each statement's gross split over its cases, by counted points. One pass
    // in file order gathers each statement's weights (reading the cases in order, not by index,
    // which missed the cache once per case), the statements are split on two threads, and a
    // second pass in file order hands each case the next part of its statement.
    let slot = |hospital: u32, fund: Fund| hospital as usize * 2 + usize::from(fund == Fund::Resident);
    let mut counts = vec![0usize; hospital_ids.len() * 2];
    for case in &cases {
        counts[slot(case.hospital, case.fund)] += 1;
    }
    let mut weights: Vec<Vec<Decimal>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
    for case in &cases {
        weights[slot(case.hospital, case.fund)].push(case.counted_points());
    }
    let jobs: Vec<(usize, i64)> =
        outputs.gross_by_statement().into_iter().map(|((hospital, fund), gross)| (slot(hospital, fund), to_fen(gross))).collect();
    let split = on_two_threads(jobs.len(), |k| split_over_cases(jobs[k].1, &weights[jobs[k].0]));
    drop(weights);
    let mut parts: Vec<std::vec::IntoIter<i64>> = (0..counts.len()).map(|_| Vec::new().into_iter()).collect();
    for (&(statement, _), split) in jobs.iter().zip(split) {
        parts[statement] = split.into_iter();
    }
    // A case of a statement without a gross (none in practice) gets 0.
    let case_amounts: Vec<i64> = cases.iter().map(|case| parts[slot(case.hospital, case.fund)].next().unwrap_or(0)).collect();
    drop(parts);

    let split_done = started.elapsed();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let header: &[u8] = b"case_id,hospital_id,fund,month,status,group,category,base_score,cost_ratio,points,counted_points,violation,review,outlier_factor,severity_factor,hospital_factor,bed_days,amount\n";
    // Each chunk's rows with their amounts. First each chunk's amounts as text, and so its length
    // in the file; then each chunk is assembled (in a buffer its thread reuses) and written at its
    // own offset. Both steps run on two threads (one writes while the other assembles); the file
    // comes out in file order either way.
    let mut amount_starts = Vec::with_capacity(chunks.len());
    let mut kept_before = 0usize;
    for (chunk, &start) in chunks.iter().zip(&starts) {
        amount_starts.push(kept_before);
        kept_before += (0..chunk.row_ends.len()).filter(|&i| repeats.is_empty() || kept(start + i)).count();
    }
    let amount_text = |c: usize| -> (Vec<u8>, Vec<u32>, u64) {
        let chunk = &chunks[c];
        let mut text = Vec::with_capacity(chunk.row_ends.len() * 12);
        let mut ends = Vec::with_capacity(chunk.row_ends.len());
        let mut amounts = case_amounts[amount_starts[c]..].iter();
        let mut line = String::with_capacity(32);
        let (mut from, mut rows_length) = (0usize, 0u64);
        for (i, &end) in chunk.row_ends.iter().enumerate() {
            let end = end as usize;
            if repeats.is_empty() || kept(starts[c] + i) {
                rows_length += (end - from) as u64;
                line.clear();
                line.push(',');
                push_decimal(&mut line, Decimal::new(amounts.next().copied().unwrap_or(0), 2));
                line.push('\n');
                text.extend_from_slice(line.as_bytes());
                ends.push(text.len() as u32);
            }
            from = end;
        }
        let length = rows_length + text.len() as u64;
        (text, ends, length)
    };
    let texts = on_two_threads(chunks.len(), amount_text);
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut offset = header.len() as u64;
    for (_, _, length) in &texts {
        offsets.push(offset);
        offset += length;
    }
    let cases_path = args.out.join("cases.csv");
    let cases_file = File::create(&cases_path).with_context(|| format!("creating {}", cases_path.display()))?;
    write_at(&cases_file, header, 0)?;
    let write_turn = std::sync::Mutex::new(());
    // Rows are assembled and written a piece at a time: a piece stays in cache between the copy
    // that assembles it and the one that writes it.
    const PIECE: usize = 2 << 20;
    let write_chunks = |parity: usize| -> std::io::Result<()> {
        let mut buffer: Vec<u8> = Vec::with_capacity(PIECE + 4096);
        let flush = |buffer: &mut Vec<u8>, offset: &mut u64| -> std::io::Result<()> {
            // One writer at a time: the file's lock would make a second one spin, not write.
            let _turn = write_turn.lock();
            write_at(&cases_file, buffer, *offset)?;
            *offset += buffer.len() as u64;
            buffer.clear();
            Ok(())
        };
        for c in (parity..chunks.len()).step_by(2) {
            let chunk = &chunks[c];
            let (text, ends, _) = &texts[c];
            let mut offset = offsets[c];
            let (mut from, mut text_from, mut kept_index) = (0usize, 0usize, 0usize);
            for (i, &end) in chunk.row_ends.iter().enumerate() {
                let end = end as usize;
                if repeats.is_empty() || kept(starts[c] + i) {
                    buffer.extend_from_slice(&chunk.rows[from..end]);
                    let text_end = ends[kept_index] as usize;
                    buffer.extend_from_slice(&text[text_from..text_end]);
                    text_from = text_end;
                    kept_index += 1;
                    if buffer.len() >= PIECE {
                        flush(&mut buffer, &mut offset)?;
                    }
                }
                from = end;
            }
            if !buffer.is_empty() {
                flush(&mut buffer, &mut offset)?;
            }
        }
        Ok(())
    };
    let (mine, other) = std::thread::scope(|scope| {
        let other = scope.spawn(|| write_chunks(1));
        (write_chunks(0), other.join())
    });
    mine.and(other.unwrap_or_else(|_| write_chunks(1))).with_context(|| format!("writing {}", cases_path.display()))?;
    let cases_written = started.elapsed();
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
            "phases: read+assess {:.2} s, merge {:.2} s, settle {:.2} s, split amounts {:.2} s, write cases.csv {:.2} s, other outputs {:.2} s",
            read_done.as_secs_f64(),
            (merge_done - read_done).as_secs_f64(),
            (settle_done - merge_done).as_secs_f64(),
            (split_done - settle_done).as_secs_f64(),
            (cases_written - split_done).as_secs_f64(),
            (started.elapsed() - cases_written).as_secs_f64()
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
                t.cmi(policy.average_case_score()).to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_filter_holds_every_listed_id_and_few_others() {
        let listed: Vec<String> = (0..5000).map(|i| format!("C{:010}", i * 7)).collect();
        let filter = IdFilter::new(listed.iter());
        assert!(listed.iter().all(|id| filter.might_hold(id_hash(id))));
        let others = (0..20_000).map(|i| format!("C{:010}", i * 7 + 3)).filter(|id| filter.might_hold(id_hash(id))).count();
        assert!(others < 20_000 / 10, "{others} false positives");
        let empty = IdFilter::new([].iter());
        assert!(!empty.might_hold(id_hash("C1")));
    }
}

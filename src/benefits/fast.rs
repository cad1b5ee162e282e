//! The fast path of [`super::settle_year`]: the same settlement of a year, on several threads and
//! in whole fen. The plain path stays the reference; `tests.rs` proves the two equal.
//!
//! Persons are independent, so the discharges are partitioned by ranges of patient ids (split
//! at ids sampled from the input) and each partition is settled on its own (by whichever thread takes it): its persons ranked by id, its
//! discharges sorted by a compact `(person rank, date)` key (case ids compared on ties only), and
//! each discharge computed in integer fen with the policy's ratios as integers over one power of
//! ten. That is exact, not an approximation: policy amounts are whole fen and ratios have at most
//! [`super::MAX_RATIO_DECIMALS`] decimals (validated), costs are whole fen, so every product and
//! band sum is an integer over `10^k`, rounded half-up once where the reference rounds. The
//! results are compact rows (no allocation per discharge); the partitions, being ranges, put
//! together in order give the persons in patient id order, so the results never depend on the
//! thread count or the partitioning.

use super::{settle_ordered, BenefitsError, BenefitsPolicy, Discharge, PatientYear, Settlement, YearToDate, MAX_AMOUNT_FEN};
use crate::case::Date;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Partitions of the persons (at most): enough that a partition's hash map and discharges stay in cache
/// and the threads finish close together; the results do not depend on the number.
const PARTITIONS: usize = 256;

/// An exact decimal as whole fen, or `None` when it has a fraction of a fen.
pub(crate) fn to_fen(amount: Decimal) -> Option<i128> {
    let scale = amount.scale();
    let mantissa = amount.mantissa();
    if scale <= 2 {
        return Some(mantissa * 10i128.pow(2 - scale));
    }
    let divisor = 10i128.pow(scale - 2);
    (mantissa % divisor == 0).then(|| mantissa / divisor)
}

/// Whole fen as a decimal with two places.
pub(crate) fn from_fen(fen: i128) -> Decimal {
    Decimal::from_i128_with_scale(fen, 2)
}

/// `numerator / denominator` rounded half away from zero (四舍五入), as [`super::fen`] rounds.
fn round_half_up(numerator: i128, denominator: i64) -> i128 {
    if let Ok(small) = i64::try_from(numerator) {
        let (quotient, remainder) = (small / denominator, small % denominator);
        let away = 2 * remainder.unsigned_abs() >= denominator.unsigned_abs();
        return (quotient + if away { small.signum() } else { 0 }) as i128;
    }
    let denominator = denominator as i128;
    let (quotient, remainder) = (numerator / denominator, numerator % denominator);
    quotient + if 2 * remainder.abs() >= denominator.abs() { numerator.signum() } else { 0 }
}

/// A marginal schedule in fen: band `i` runs from `starts[i]` (the first from the deductible
/// given) to `ends[i]` (none: open).
#[derive(Debug, Clone)]
struct FenBands {
    starts: SmallVec<[i128; 8]>,
    ends: SmallVec<[Option<i128>; 8]>,
}

impl FenBands {
    fn new(bands: &[super::Band]) -> Option<FenBands> {
        let mut starts = SmallVec::new();
        let mut ends = SmallVec::new();
        for (i, band) in bands.iter().enumerate() {
            starts.push(to_fen(band.from.0)?);
            let end = band.to.map(|t| t.0).or_else(|| bands.get(i + 1).map(|b| b.from.0));
            ends.push(match end {
                Some(end) => Some(to_fen(end)?),
                None => None,
            });
        }
        Some(FenBands { starts, ends })
    }

    /// Σ ratio × (part of `base` within the band), in fen × denominator (unrounded).
    fn scaled_sum(&self, first_start: i128, ratios: &[i64], base: i128) -> i128 {
        let mut total = 0i128;
        for (i, ((&start, &end), &ratio)) in self.starts.iter().zip(&self.ends).zip(ratios).enumerate() {
            let from = if i == 0 { first_start } else { start };
            let top = end.map_or(base, |end| base.min(end));
            if top > from {
                total += (top - from) * ratio as i128;
            }
        }
        total
    }
}

/// The catastrophic schedule of a category: deductible, band ratios (numerators), cap.
#[derive(Debug, Clone)]
struct FenTerms {
    deductible: i128,
    ratios: SmallVec<[i64; 8]>,
    cap: Option<i128>,
}

#[derive(Debug, Clone)]
struct FenTilt {
    from: Option<Date>,
    until: Option<Date>,
    terms: FenTerms,
}

#[derive(Debug, Clone)]
struct FenHospital {
    deductibles: SmallVec<[i128; 4]>,
    ratio: i64,
}

/// A validated policy in fen and integer ratios over [`FenPolicy::denominator`]. Categories are
/// indexed: 0 is ordinary, `i + 1` is the policy's `categories[i]`.
#[derive(Debug, Clone)]
pub(crate) struct FenPolicy {
    year_first: Option<Date>,
    year_last: Option<Date>,
    denominator: i64,
    basic_cap: i128,
    hospital_kinds: Vec<String>,
    hospitals: Vec<FenHospital>,
    categories: Vec<String>,
    catastrophic: FenBands,
    base_terms: FenTerms,
    /// Per category, the tilts that name it, in policy order (the first in force applies).
    tilts: Vec<Vec<FenTilt>>,
    subsidy: FenBands,
    subsidy_start: i128,
    subsidy_ratios: SmallVec<[i64; 8]>,
    subsidy_cap: Option<i128>,
    assistance_limit: i128,
    /// Per category: (deductible, ratio) of its assistance group.
    assistance: Vec<Option<(i128, i64)>>,
    warning_thresholds: Vec<i128>,
    /// Per category: bit `w` set when warning `w` watches it.
    warnings_watching: Vec<u64>,
}

fn not_exact(key: &str) -> BenefitsError {
    super::invalid(key, "not exact in fen (validate the policy)")
}

impl FenPolicy {
    /// Validates `policy` and converts it; fails only where validation does.
    pub(crate) fn new(policy: &BenefitsPolicy) -> Result<FenPolicy, BenefitsError> {
        policy.validate()?;
        let mut decimals = 0u32;
        let mut ratio_values: Vec<Decimal> = Vec::new();
        for hospital in &policy.basic.hospitals {
            ratio_values.push(hospital.ratio.0);
        }
        ratio_values.extend(policy.catastrophic.bands.iter().map(|b| b.ratio.0));
        for tilt in &policy.catastrophic.tilts {
            if let Some(ratios) = &tilt.ratios {
                ratio_values.extend(ratios.iter().map(|r| r.0));
            }
            if let Some(add) = tilt.ratio_add {
                ratio_values.extend(policy.catastrophic.bands.iter().map(|b| b.ratio.0 + add.0));
            }
        }
        ratio_values.extend(policy.subsidy.bands.iter().map(|b| b.ratio.0));
        ratio_values.extend(policy.assistance.groups.iter().map(|g| g.ratio.0));
        for ratio in &ratio_values {
            decimals = decimals.max(ratio.normalize().scale());
        }
        if decimals > super::MAX_RATIO_DECIMALS {
            return Err(not_exact("ratios"));
        }
        let denominator = 10i64.pow(decimals);
        let numerator = |ratio: Decimal| -> Result<i64, BenefitsError> {
            let scaled = ratio * Decimal::from(denominator);
            if scaled.fract() != Decimal::ZERO {
                return Err(not_exact("ratios"));
            }
            i64::try_from(scaled.mantissa() / 10i128.pow(scaled.scale())).map_err(|_| not_exact("ratios"))
        };
        let money = |key: &str, amount: Decimal| to_fen(amount).ok_or_else(|| not_exact(key));

        let mut hospitals = Vec::new();
        for hospital in &policy.basic.hospitals {
            let mut deductibles = SmallVec::new();
            for deductible in &hospital.deductibles {
                deductibles.push(money("basic.hospitals.deductibles", deductible.0)?);
            }
            hospitals.push(FenHospital { deductibles, ratio: numerator(hospital.ratio.0)? });
        }
        // The reference's own reading of the terms, converted: one source of truth.
        let terms = |tilt: Option<&super::Tilt>| -> Result<FenTerms, BenefitsError> {
            let decimal_terms = policy.terms_of(tilt);
            let mut ratios = SmallVec::new();
            for ratio in &decimal_terms.ratios {
                ratios.push(numerator(*ratio)?);
            }
            Ok(FenTerms {
                deductible: money("catastrophic deductible", decimal_terms.deductible)?,
                ratios,
                cap: decimal_terms.cap.map(|cap| money("catastrophic cap", cap)).transpose()?,
            })
        };
        let base_terms = terms(None)?;
        let mut tilts = vec![Vec::new()];
        for category in &policy.categories {
            let mut applying = Vec::new();
            for tilt in policy.catastrophic.tilts.iter().filter(|t| t.categories.contains(category)) {
                applying.push(FenTilt {
                    from: tilt.effective_from.as_deref().and_then(Date::parse),
                    until: tilt.effective_until.as_deref().and_then(Date::parse),
                    terms: terms(Some(tilt))?,
                });
            }
            tilts.push(applying);
        }
        let catastrophic = FenBands::new(&policy.catastrophic.bands).ok_or_else(|| not_exact("catastrophic.bands"))?;
        let subsidy = FenBands::new(&policy.subsidy.bands).ok_or_else(|| not_exact("subsidy.bands"))?;
        let mut subsidy_ratios = SmallVec::new();
        for band in &policy.subsidy.bands {
            subsidy_ratios.push(numerator(band.ratio.0)?);
        }
        let mut assistance = vec![None];
        let mut warnings_watching = vec![0u64];
        if policy.warnings.len() > super::MAX_WARNINGS {
            return Err(not_exact("warnings"));
        }
        for (w, warning) in policy.warnings.iter().enumerate() {
            if warning.categories.is_empty() {
                warnings_watching[0] |= 1 << w;
            }
        }
        for category in &policy.categories {
            assistance.push(match policy.assistance_group(category) {
                Some(group) => Some((money("assistance.groups.deductible", group.deductible.0)?, numerator(group.ratio.0)?)),
                None => None,
            });
            let mut mask = 0u64;
            for (w, warning) in policy.warnings.iter().enumerate() {
                if warning.categories.is_empty() || warning.categories.contains(category) {
                    mask |= 1 << w;
                }
            }
            warnings_watching.push(mask);
        }
        let mut warning_thresholds = Vec::new();
        for warning in &policy.warnings {
            warning_thresholds.push(money("warnings.threshold", warning.threshold.0)?);
        }
        Ok(FenPolicy {
            year_first: Date::from_ymd(policy.year, 1, 1),
            year_last: Date::from_ymd(policy.year, 12, 31),
            denominator,
            basic_cap: money("basic.annual_cap", policy.basic.annual_cap.0)?,
            hospital_kinds: policy.basic.hospitals.iter().map(|h| h.kind.clone()).collect(),
            hospitals,
            categories: policy.categories.clone(),
            catastrophic,
            base_terms,
            tilts,
            subsidy_start: subsidy.starts[0],
            subsidy,
            subsidy_ratios,
            subsidy_cap: policy.subsidy.annual_cap.map(|c| money("subsidy.annual_cap", c.0)).transpose()?,
            assistance_limit: money("assistance.annual_limit", policy.assistance.annual_limit.0)?,
            assistance,
            warning_thresholds,
            warnings_watching,
        })
    }

    fn category(&self, name: &str) -> Option<usize> {
        if name.is_empty() {
            return Some(0);
        }
        self.categories.iter().position(|c| c == name).map(|i| i + 1)
    }

    fn terms(&self, category: usize, date: Date) -> &FenTerms {
        let in_force = |tilt: &&FenTilt| tilt.from.is_none_or(|from| date >= from) && tilt.until.is_none_or(|until| date <= until);
        self.tilts[category].iter().find(in_force).map_or(&self.base_terms, |tilt| &tilt.terms)
    }
}

/// A person's year-to-date figures in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FenYearToDate {
    pub admissions: u32,
    pub basic_paid: i128,
    pub personal_burden: i128,
    pub catastrophic_paid: i128,
    pub subsidy_paid: i128,
    pub assistance_paid: i128,
    pub out_of_pocket: i128,
    pub covered_cost: i128,
}

impl FenYearToDate {
    /// `None` when a figure has a fraction of a fen (the reference rejects those figures).
    fn new(ytd: &YearToDate) -> Option<FenYearToDate> {
        Some(FenYearToDate {
            admissions: ytd.admissions,
            basic_paid: to_fen(ytd.basic_paid)?,
            personal_burden: to_fen(ytd.personal_burden)?,
            catastrophic_paid: to_fen(ytd.catastrophic_paid)?,
            subsidy_paid: to_fen(ytd.subsidy_paid)?,
            assistance_paid: to_fen(ytd.assistance_paid)?,
            out_of_pocket: to_fen(ytd.out_of_pocket)?,
            covered_cost: to_fen(ytd.covered_cost)?,
        })
    }

    /// The same figures as decimals.
    pub fn to_decimal(&self) -> YearToDate {
        YearToDate {
            admissions: self.admissions,
            basic_paid: from_fen(self.basic_paid),
            personal_burden: from_fen(self.personal_burden),
            catastrophic_paid: from_fen(self.catastrophic_paid),
            subsidy_paid: from_fen(self.subsidy_paid),
            assistance_paid: from_fen(self.assistance_paid),
            out_of_pocket: from_fen(self.out_of_pocket),
            covered_cost: from_fen(self.covered_cost),
        }
    }
}

/// The layers of one discharge in fen, as [`Settlement`] without the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenSettlement {
    /// Index of the discharge in the input.
    pub input: u32,
    pub admission_order: u32,
    /// Bit `w`: the discharge crossed the policy's `warnings[w]`.
    pub warnings: u64,
    pub deductible: i64,
    pub basic: i64,
    pub catastrophic: i64,
    pub subsidy: i64,
    pub assistance: i64,
    pub patient_covered: i64,
    pub self_paid: i64,
}

impl FenSettlement {
    /// What the patient pays at discharge.
    pub fn patient_total(&self) -> i64 {
        self.patient_covered + self.self_paid
    }
}

/// One person's year in a partition: its rows and totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenPatient {
    /// Index in the input of one of the person's discharges (for the patient id).
    pub input: u32,
    first_row: u32,
    rows: u32,
    pub totals: FenYearToDate,
}

#[derive(Debug, Default)]
struct Partition {
    rows: Vec<FenSettlement>,
    patients: Vec<FenPatient>,
    /// The partition's first person (by id) whose discharges the engine rejects, and why.
    error: Option<(u32, BenefitsError)>,
}

/// A year settled by the fast path: persons in patient id order, each with its discharges in
/// settlement order (date, then case id, then input order).
#[derive(Debug)]
pub struct FenYear {
    partitions: Vec<Partition>,
    /// (partition, person within it), in patient id order.
    order: Vec<(u32, u32)>,
}

impl FenYear {
    /// Persons in patient id order with their settled discharges.
    pub fn patients(&self) -> impl Iterator<Item = (&FenPatient, &[FenSettlement])> + '_ {
        self.order.iter().map(|&(p, i)| {
            let partition = &self.partitions[p as usize];
            let patient = &partition.patients[i as usize];
            let rows = &partition.rows[patient.first_row as usize..(patient.first_row + patient.rows) as usize];
            (patient, rows)
        })
    }

    /// Number of persons.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no person was settled.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The same year as the reference returns it (explanations empty).
    pub fn to_patient_years(&self, policy: &BenefitsPolicy, discharges: &[Discharge]) -> Vec<PatientYear> {
        let mut years = Vec::with_capacity(self.len());
        for (patient, rows) in self.patients() {
            let settlements = rows
                .iter()
                .map(|row| {
                    let discharge = &discharges[row.input as usize];
                    Settlement {
                        case_id: discharge.case_id.clone(),
                        patient_id: discharge.patient_id.clone(),
                        discharge_date: discharge.discharge_date,
                        admission_order: row.admission_order,
                        deductible: from_fen(row.deductible as i128),
                        basic: from_fen(row.basic as i128),
                        catastrophic: from_fen(row.catastrophic as i128),
                        subsidy: from_fen(row.subsidy as i128),
                        assistance: from_fen(row.assistance as i128),
                        patient_covered: from_fen(row.patient_covered as i128),
                        self_paid: from_fen(row.self_paid as i128),
                        patient_total: from_fen(row.patient_total() as i128),
                        warnings: warning_names(policy, row.warnings),
                        explanation: Vec::new(),
                    }
                })
                .collect();
            years.push(PatientYear {
                patient_id: discharges[patient.input as usize].patient_id.clone(),
                settlements,
                totals: patient.totals.to_decimal(),
            });
        }
        years
    }
}

/// The names of the warnings set in `mask`, in policy order.
pub fn warning_names(policy: &BenefitsPolicy, mask: u64) -> Vec<String> {
    policy.warnings.iter().enumerate().filter(|(w, _)| mask & (1 << w) != 0).map(|(_, warning)| warning.name.clone()).collect()
}

/// Where the partitions split the patient ids, strictly increasing: partition `p` holds the ids
/// from `splitters[p - 1]` (the first: from the start) up to but not including `splitters[p]` (the
/// last: to the end). Taken evenly from the sorted ids of every `stride`-th discharge, so the
/// partitions are about equal in discharges, and they depend on the input alone.
fn splitters(discharges: &[Discharge]) -> Vec<&str> {
    let stride = (discharges.len() / (PARTITIONS * 64)).max(1);
    let mut sample: Vec<&str> = discharges.iter().step_by(stride).map(|d| d.patient_id.as_str()).collect();
    sample.sort_unstable();
    let mut splitters: Vec<&str> = (1..PARTITIONS).filter_map(|k| sample.get(k * sample.len() / PARTITIONS).copied()).collect();
    splitters.dedup();
    splitters
}

/// The partition of a person (see [`splitters`]).
fn partition_of(splitters: &[&str], patient_id: &str) -> usize {
    splitters.partition_point(|&splitter| splitter <= patient_id)
}

/// A discharge as the partitions read it, extracted in the first (sequential) pass over the
/// input so that settling a partition touches the scattered input only for patient and case ids:
/// costs in fen, category and hospital kind as indices, or [`REJECTED`] when the discharge fails
/// a check of the engine (the reference then words the error).
#[derive(Debug, Clone, Copy)]
struct Compact {
    /// Index of the discharge in the input.
    input: u32,
    date: Date,
    covered: i64,
    self_paid: i64,
    /// Index of the category in [`FenPolicy`] terms, or [`REJECTED`].
    category: u32,
    /// Index of the hospital kind.
    hospital: u32,
}

/// [`Compact::category`] of a discharge the engine rejects.
const REJECTED: u32 = u32::MAX;

impl Compact {
    fn new(policy: &FenPolicy, input: u32, discharge: &Discharge) -> Compact {
        let date = discharge.discharge_date;
        let in_year = !(policy.year_first.is_some_and(|first| date < first) || policy.year_last.is_some_and(|last| date > last));
        let fields = (
            cost_fen(discharge.covered_cost),
            cost_fen(discharge.self_paid),
            policy.category(&discharge.category),
            policy.hospital_kinds.iter().position(|k| *k == discharge.hospital_kind),
        );
        match fields {
            (Some(covered), Some(self_paid), Some(category), Some(hospital)) if in_year => {
                Compact { input, date, covered, self_paid, category: category as u32, hospital: hospital as u32 }
            }
            _ => Compact { input, date, covered: 0, self_paid: 0, category: REJECTED, hospital: 0 },
        }
    }
}

/// Days from `epoch`, shifted to order as unsigned integers, for a sort key.
fn day_number(date: Date, epoch: Date) -> u32 {
    (date.days_since(epoch) as i64 + (1 << 31)) as u32
}

/// Settles a year of discharges like [`super::settle_year`] (without explanations) on `threads`
/// threads. The result, and the error when there is one (the reference's error for the first
/// person, by id, it rejects), do not depend on `threads`.
pub fn settle_year_fast(
    policy: &BenefitsPolicy,
    priors: &BTreeMap<String, YearToDate>,
    discharges: &[Discharge],
    threads: usize,
) -> Result<FenYear, BenefitsError> {
    let fen_policy = FenPolicy::new(policy)?;
    if u32::try_from(discharges.len()).is_err() {
        return Err(super::invalid("discharges", format!("{} discharges: at most {} in one run", discharges.len(), u32::MAX)));
    }
    let threads = threads.max(1);

    // 1. Each thread sorts its slice of the input into partitions (input order kept within),
    // extracting what settling needs while it reads the input in order.
    let slice = discharges.len().div_ceil(threads).max(1);
    let fen_policy = &fen_policy;
    let splitters = &splitters(discharges);
    let partition_count = splitters.len() + 1;
    let buckets: Vec<Vec<Vec<Compact>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = discharges
            .chunks(slice)
            .enumerate()
            .map(|(t, chunk)| {
                scope.spawn(move || {
                    // About a partition's share, with room for the spread around it.
                    let share = chunk.len() / partition_count;
                    let mut buckets: Vec<Vec<Compact>> = (0..partition_count).map(|_| Vec::with_capacity(share + share / 8 + 16)).collect();
                    let base = t * slice;
                    for (i, discharge) in chunk.iter().enumerate() {
                        let compact = Compact::new(fen_policy, (base + i) as u32, discharge);
                        buckets[partition_of(splitters, &discharge.patient_id)].push(compact);
                    }
                    buckets
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("partitioning thread")).collect()
    });

    // 2. Partitions are settled by whichever thread takes them next.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Partition)>> = Mutex::new(Vec::with_capacity(partition_count));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let p = next.fetch_add(1, Ordering::Relaxed);
                if p >= partition_count {
                    break;
                }
                let members: Vec<Compact> = buckets.iter().flat_map(|b| b[p].iter().copied()).collect();
                let partition = settle_partition(policy, fen_policy, priors, discharges, &members);
                done.lock().expect("partition results").push((p, partition));
            });
        }
    });
    let mut partitions = done.into_inner().expect("partition results");
    partitions.sort_unstable_by_key(|(p, _)| *p);
    let partitions: Vec<Partition> = partitions.into_iter().map(|(_, partition)| partition).collect();

    // 3. The first person (by id) rejected anywhere decides the error, as in the reference.
    let rejected = partitions
        .iter()
        .filter_map(|p| p.error.as_ref())
        .min_by(|(a, _), (b, _)| discharges[*a as usize].patient_id.cmp(&discharges[*b as usize].patient_id));
    if let Some((_, error)) = rejected {
        return Err(error.clone());
    }

    // 4. Persons in patient id order: each partition's, partition after partition (ranges of ids).
    let order =
        partitions.iter().enumerate().flat_map(|(p, partition)| (0..partition.patients.len() as u32).map(move |i| (p as u32, i))).collect();
    Ok(FenYear { partitions, order })
}

fn settle_partition(
    policy: &BenefitsPolicy,
    fen_policy: &FenPolicy,
    priors: &BTreeMap<String, YearToDate>,
    discharges: &[Discharge],
    members: &[Compact],
) -> Partition {
    // Persons ranked by id; `keyed` holds (key, position in `members`).
    let mut local: FxHashMap<&str, u32> = FxHashMap::default();
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(members.len());
    for (position, member) in members.iter().enumerate() {
        let patient = discharges[member.input as usize].patient_id.as_str();
        let next = local.len() as u32;
        let person = *local.entry(patient).or_insert(next);
        keyed.push(((person as u64) << 32, position as u32));
    }
    let mut names: Vec<(&str, u32)> = local.iter().map(|(&name, &person)| (name, person)).collect();
    names.sort_unstable();
    let mut rank = vec![0u32; names.len()];
    for (position, (_, person)) in names.iter().enumerate() {
        rank[*person as usize] = position as u32;
    }
    drop(local);
    for (key, position) in &mut keyed {
        let person = (*key >> 32) as usize;
        *key = ((rank[person] as u64) << 32) | day_number(members[*position as usize].date, discharges[0].discharge_date) as u64;
    }
    // (person rank, date, input order: `members` is in input order); then case ids put in order
    // where person and date tie.
    keyed.sort_unstable();
    for run in keyed.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            let case_id = |position: u32| &discharges[members[position as usize].input as usize].case_id;
            run.sort_by(|a, b| case_id(a.1).cmp(case_id(b.1)).then(a.1.cmp(&b.1)));
        }
    }

    let mut partition = Partition { rows: Vec::with_capacity(keyed.len()), patients: Vec::with_capacity(names.len()), error: None };
    for person in keyed.chunk_by(|a, b| a.0 >> 32 == b.0 >> 32) {
        let first = members[person[0].1 as usize].input;
        let patient_id = &discharges[first as usize].patient_id;
        let prior = priors.get(patient_id);
        let settled = prior.map_or(Some(FenYearToDate::default()), FenYearToDate::new).and_then(|start| {
            let first_row = partition.rows.len();
            let totals = settle_person(fen_policy, start, members, person, &mut partition.rows);
            if totals.is_none() {
                partition.rows.truncate(first_row);
            }
            totals.map(|totals| (first_row, totals))
        });
        match settled {
            Some((first_row, totals)) => {
                partition.patients.push(FenPatient { input: first, first_row: first_row as u32, rows: person.len() as u32, totals })
            }
            None => {
                // The reference words the error: the same check, the same message.
                let ordered: Vec<&Discharge> = person.iter().map(|&(_, p)| &discharges[members[p as usize].input as usize]).collect();
                let none = YearToDate::default();
                let error = match settle_ordered(policy, prior.unwrap_or(&none), &ordered, false) {
                    Err(error) => error,
                    Ok(_) => BenefitsError::Case {
                        case_id: ordered[0].case_id.clone(),
                        message: "rejected by the fast path but not by the reference (a defect)".into(),
                    },
                };
                debug_assert!(!matches!(&error, BenefitsError::Case { message, .. } if message.contains("a defect")));
                partition.error = Some((first, error));
                // Persons after it (by id) cannot change the error.
                break;
            }
        }
    }
    partition
}

/// A discharge's cost in fen within the engine's bounds, or `None` (the reference says why).
fn cost_fen(amount: Decimal) -> Option<i64> {
    to_fen(amount).filter(|fen| (0..=MAX_AMOUNT_FEN).contains(fen)).map(|fen| fen as i64)
}

/// One person's discharges (in settlement order) from `start`; `None` when one is rejected.
fn settle_person(
    policy: &FenPolicy,
    start: FenYearToDate,
    members: &[Compact],
    person: &[(u64, u32)],
    rows: &mut Vec<FenSettlement>,
) -> Option<FenYearToDate> {
    let mut ytd = start;
    let d = policy.denominator;
    for &(_, position) in person {
        let member = &members[position as usize];
        if member.category == REJECTED {
            return None;
        }
        let (index, date, self_paid) = (member.input, member.date, member.self_paid);
        let covered = member.covered as i128;
        let category = member.category as usize;
        let hospital = &policy.hospitals[member.hospital as usize];

        // 1. Basic insurance.
        let order = ytd.admissions + 1;
        let deductible = hospital.deductibles.get(order as usize - 1).copied().unwrap_or(0);
        let raw_basic = round_half_up((covered - deductible).max(0) * hospital.ratio as i128, d);
        let cap_left = (policy.basic_cap - ytd.basic_paid).max(0);
        let basic = raw_basic.min(cap_left);
        // 2. Personal burden.
        let burden_here = covered - basic;
        let burden = ytd.personal_burden + burden_here;
        let mut left = burden_here;
        // 3. Catastrophic insurance, cumulative.
        let terms = policy.terms(category, date);
        let scheduled = round_half_up(policy.catastrophic.scaled_sum(terms.deductible, &terms.ratios, burden), d);
        let entitled = terms.cap.map_or(scheduled, |cap| scheduled.min(cap));
        let catastrophic = (entitled - ytd.catastrophic_paid).max(0).min(left);
        left -= catastrophic;
        let catastrophic_total = ytd.catastrophic_paid + catastrophic;
        // 4. Large-expense subsidy, cumulative.
        let subsidy_base = burden - catastrophic_total;
        let scheduled = round_half_up(policy.subsidy.scaled_sum(policy.subsidy_start, &policy.subsidy_ratios, subsidy_base), d);
        let entitled = policy.subsidy_cap.map_or(scheduled, |cap| scheduled.min(cap));
        let subsidy = (entitled - ytd.subsidy_paid).max(0).min(left);
        left -= subsidy;
        let subsidy_total = ytd.subsidy_paid + subsidy;
        // 5. Medical assistance, cumulative.
        let assistance_base = subsidy_base - subsidy_total;
        let assistance = match policy.assistance[category] {
            None => 0,
            Some((group_deductible, ratio)) => {
                let scheduled = round_half_up((assistance_base - group_deductible).max(0) * ratio as i128, d);
                let entitled = scheduled.min(policy.assistance_limit);
                (entitled - ytd.assistance_paid).max(0).min(left)
            }
        };
        left -= assistance;
        // 6. Patient.
        let patient_total = left + self_paid as i128;
        let before = ytd.out_of_pocket;
        ytd = FenYearToDate {
            admissions: order,
            basic_paid: ytd.basic_paid + basic,
            personal_burden: burden,
            catastrophic_paid: catastrophic_total,
            subsidy_paid: subsidy_total,
            assistance_paid: ytd.assistance_paid + assistance,
            out_of_pocket: before + patient_total,
            covered_cost: ytd.covered_cost + covered,
        };
        let mut warnings = 0u64;
        let mut watching = policy.warnings_watching[category];
        while watching != 0 {
            let w = watching.trailing_zeros() as usize;
            watching &= watching - 1;
            let threshold = policy.warning_thresholds[w];
            if before < threshold && ytd.out_of_pocket >= threshold {
                warnings |= 1 << w;
            }
        }
        // Every layer is at most the discharge's covered cost, which is within the bound.
        rows.push(FenSettlement {
            input: index,
            admission_order: order,
            warnings,
            deductible: deductible as i64,
            basic: basic as i64,
            catastrophic: catastrophic as i64,
            subsidy: subsidy as i64,
            assistance: assistance as i64,
            patient_covered: left as i64,
            self_paid,
        });
    }
    Some(ytd)
}

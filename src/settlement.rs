//! Settlement (结算): point values, month-end pre-settlement and year-end final settlement per
//! hospital and fund, with penalties and special-review decisions applied.
//!
//! Money rules, in one place:
//! - every amount is exact decimal yuan; amounts paid are rounded half-up to the fen exactly where
//!   this module says so, and nowhere else;
//! - point values are rounded half-up to the policy's `point_value_decimals` (the published
//!   value); monthly gross is counted points × the published budget value, to the fen;
//! - year-end gross follows the fund's `paid_at`: `published` — each statement's counted points ×
//!   the published value, to the fen; `exact` — what the exact value buys (under the settlement
//!   method, the whole basis) allocated by largest remainder in fen over the hospitals' counted
//!   points, so the statements add up to it exactly. Either way the fund's record names the basis,
//!   what was paid (Σ gross) and the residual (basis − paid);
//! - a statement's parts add up: gross − patients' payments = amount; paid now + deposit = amount.
//!
//! Pure: callers give per-case records and read/write files.

use crate::case::Fund;
use crate::policy::{FundPolicy, PaidAt, PointValueMethod, Policy, SettlementBasis, YearEnd};
use crate::units::{round_half_up, PointValue, Points, Yuan};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Why a settlement could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettlementError {
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("fund {fund}: the region's counted points total {points}, so no point value can be set")]
    NoPoints { fund: &'static str, points: Decimal },
    #[error("hospital {hospital}: {applications} special-review applications exceed the quota of {quota} × {cases} cases = {allowed}")]
    SpecialReviewQuota { hospital: String, applications: u64, cases: u64, quota: Decimal, allowed: u64 },
    #[error("allocation of {total_fen} fen failed: {reason}")]
    Allocation { total_fen: i64, reason: String },
}

impl SettlementError {
    pub fn code(&self) -> &'static str {
        match self {
            SettlementError::Policy(_) => "SETTLEMENT_POLICY",
            SettlementError::NoPoints { .. } => "SETTLEMENT_NO_POINTS",
            SettlementError::SpecialReviewQuota { .. } => "SETTLEMENT_SPECIAL_REVIEW_QUOTA",
            SettlementError::Allocation { .. } => "SETTLEMENT_ALLOCATION",
        }
    }
}

/// Splits `total_fen` over `weights` in proportion, in whole fen, so that the parts add up to the
/// total exactly: each part gets the floor of its exact share, and the fen left over go one each
/// to the largest remainders (ties to the earlier index). Weights may be negative; their sum must
/// be positive. Computed in integers (weights scaled to a common number of decimals), so the
/// shares are exact, not rounded quotients.
pub fn largest_remainder(total_fen: i64, weights: &[Decimal]) -> Result<Vec<i64>, SettlementError> {
    let fail = |reason: &str| SettlementError::Allocation { total_fen, reason: reason.to_string() };
    let scale = weights.iter().map(|w| w.scale()).max().unwrap_or(0);
    let mut scaled = Vec::with_capacity(weights.len());
    for weight in weights {
        let factor = 10i128.checked_pow(scale - weight.scale()).ok_or_else(|| fail("weights have too many decimals"))?;
        scaled.push(weight.mantissa().checked_mul(factor).ok_or_else(|| fail("a weight is too large"))?);
    }
    let weight_sum: i128 = scaled.iter().try_fold(0i128, |sum, w| sum.checked_add(*w)).ok_or_else(|| fail("the weights are too large"))?;
    if weight_sum <= 0 {
        return Err(fail("the weights do not sum to a positive number"));
    }
    // In i64 when every share's numerator fits (nearly always): i128 division is a slow library
    // call, and the narrow remainders take half the memory. Both paths give the same parts.
    let largest = scaled.iter().map(|w| w.unsigned_abs()).max().unwrap_or(0);
    let narrow =
        i64::try_from(weight_sum).is_ok() && i128::from(total_fen).checked_mul(largest as i128).is_some_and(|n| i64::try_from(n).is_ok());
    let mut parts = Vec::with_capacity(weights.len());
    if narrow {
        let (total, sum) = (total_fen, weight_sum as i64);
        let mut remainders: Vec<(i64, usize)> = Vec::with_capacity(weights.len());
        for (index, &weight) in scaled.iter().enumerate() {
            let numerator = total * weight as i64;
            parts.push(numerator.div_euclid(sum));
            remainders.push((numerator.rem_euclid(sum), index));
        }
        drop(scaled);
        hand_out_left_over(total_fen, &mut parts, remainders)?;
    } else {
        let total = i128::from(total_fen);
        let mut remainders = Vec::with_capacity(weights.len());
        for (index, weight) in scaled.iter().enumerate() {
            let numerator = total.checked_mul(*weight).ok_or_else(|| fail("a share is too large"))?;
            parts.push(i64::try_from(numerator.div_euclid(weight_sum)).map_err(|_| fail("a share does not fit in fen"))?);
            remainders.push((numerator.rem_euclid(weight_sum), index));
        }
        hand_out_left_over(total_fen, &mut parts, remainders)?;
    }
    debug_assert_eq!(parts.iter().sum::<i64>(), total_fen, "Σ allocated = total");
    Ok(parts)
}

/// The fen the floors left over (total − Σ parts) go one each to the largest remainders, ties to
/// the earlier index.
fn hand_out_left_over<R: Ord + Copy>(total_fen: i64, parts: &mut [i64], mut remainders: Vec<(R, usize)>) -> Result<(), SettlementError> {
    let left_over = total_fen - parts.iter().sum::<i64>();
    if left_over < 0 || left_over as usize > parts.len() {
        return Err(SettlementError::Allocation { total_fen, reason: "rounding left an impossible remainder".to_string() });
    }
    if left_over > 0 {
        remainders.select_nth_unstable_by(left_over as usize - 1, |a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, index) in &remainders[..left_over as usize] {
            parts[index] += 1;
        }
    }
    Ok(())
}

/// An amount in yuan, rounded half-up to the fen, as whole fen.
pub fn fen(amount: Yuan) -> i64 {
    let rounded = amount.to_fen().0 * Decimal::from(100);
    i64::try_from(rounded.mantissa() / 10i128.pow(rounded.scale())).unwrap_or(i64::MAX)
}

fn yuan_from_fen(fen: i64) -> Yuan {
    Yuan(Decimal::new(fen, 2))
}

/// A point value and everything it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValueRecord {
    pub fund: Fund,
    pub method: PointValueMethod,
    /// Named inputs, in the order they were used.
    pub inputs: Vec<(&'static str, Decimal)>,
    /// Unrounded value.
    pub exact: Decimal,
    /// Rounded to the policy's point-value decimals: the published value.
    pub value: PointValue,
    /// The year's budget basis (distributable amount: budget ÷ ratio or budget + patients'
    /// payments), year-end only, yuan to the fen.
    pub basis: Option<Yuan>,
    /// Which value gross is paid at (monthly runs always pay at the published budget value).
    pub paid_at: PaidAt,
    /// What the fund's statements pay: Σ gross, to the fen.
    pub paid: Yuan,
}

impl PointValueRecord {
    /// basis − paid (year-end only): positive is left in the fund, negative is paid beyond the
    /// basis (an overrun).
    pub fn residual(&self) -> Option<Yuan> {
        self.basis.map(|basis| basis - self.paid)
    }
}

/// The budget point value (预算点值): given, or Σ w·total ÷ Σ w ÷ expected points.
pub fn budget_point_value(fund: &FundPolicy) -> (Decimal, Vec<(&'static str, Decimal)>) {
    if let Some(value) = fund.budget_point_value {
        return (value, vec![("budget_point_value", value)]);
    }
    let weight: Decimal = fund.budget_history.iter().map(|h| h.weight).sum();
    let weighted_total =
        if weight.is_zero() { Decimal::ZERO } else { fund.budget_history.iter().map(|h| h.amount * h.weight).sum::<Decimal>() / weight };
    let expected = fund.expected_points.unwrap_or(Decimal::ONE);
    (weighted_total / expected, vec![("weighted_past_total", weighted_total), ("expected_points", expected)])
}

/// The distributable amount of the year (settlement basis): budget ÷ ratio, or budget + patients'
/// payments.
pub fn distributable_amount(fund: &FundPolicy, patient_paid_total: Yuan) -> (Yuan, Vec<(&'static str, Decimal)>) {
    match fund.settlement_basis {
        SettlementBasis::FundOverRatio => {
            let ratio = fund.reimbursement_ratio.unwrap_or(Decimal::ONE);
            (Yuan(fund.annual_budget / ratio).to_fen(), vec![("annual_budget", fund.annual_budget), ("reimbursement_ratio", ratio)])
        }
        SettlementBasis::FundPlusPatient => (
            Yuan(fund.annual_budget + patient_paid_total.0).to_fen(),
            vec![("annual_budget", fund.annual_budget), ("patient_paid_total", patient_paid_total.0)],
        ),
    }
}

/// The point value of a monthly pre-settlement: the budget point value.
pub fn monthly_point_value(policy: &Policy, fund: Fund) -> Result<PointValueRecord, SettlementError> {
    let fund_policy = policy.fund(fund)?;
    let (exact, inputs) = budget_point_value(fund_policy);
    Ok(PointValueRecord {
        fund,
        method: PointValueMethod::Budget,
        inputs,
        exact,
        value: PointValue(round_half_up(exact, policy.point_value_decimals)),
        basis: None,
        paid_at: PaidAt::Published,
        paid: Yuan::ZERO,
    })
}

/// The year-end point value of a fund, by its policy method.
pub fn year_end_point_value(
    policy: &Policy,
    fund: Fund,
    counted_points: Points,
    patient_paid_total: Yuan,
) -> Result<PointValueRecord, SettlementError> {
    let fund_policy = policy.fund(fund)?;
    if counted_points.0 <= Decimal::ZERO {
        return Err(SettlementError::NoPoints { fund: fund.as_str(), points: counted_points.0 });
    }
    let (distributable, mut inputs) = distributable_amount(fund_policy, patient_paid_total);
    inputs.push(("region_counted_points", counted_points.0));
    let settlement = distributable.0 / counted_points.0;
    let (budget, budget_inputs) = budget_point_value(fund_policy);
    let decimals = policy.point_value_decimals;
    let (method, exact) = (fund_policy.year_end_method, settlement);
    let exact = match method {
        PointValueMethod::Settlement => exact,
        PointValueMethod::Budget => {
            inputs.extend(budget_inputs);
            budget
        }
        PointValueMethod::Fixed => {
            let fixed = fund_policy.fixed_point_value.unwrap_or(budget);
            inputs.push(("fixed_point_value", fixed));
            fixed
        }
        PointValueMethod::Floating => {
            let band = fund_policy.floating_band.unwrap_or(Decimal::ZERO);
            inputs.extend(budget_inputs);
            inputs.push(("floating_band", band));
            exact.clamp(budget * (Decimal::ONE - band), budget * (Decimal::ONE + band))
        }
        PointValueMethod::Balanced => {
            let fixed = fund_policy.fixed_point_value.unwrap_or(budget);
            let weight = fund_policy.balanced_fixed_weight.unwrap_or(Decimal::ZERO);
            inputs.push(("fixed_point_value", fixed));
            inputs.push(("balanced_fixed_weight", weight));
            weight * fixed + (Decimal::ONE - weight) * exact
        }
    };
    let value = PointValue(round_half_up(exact, decimals));
    Ok(PointValueRecord { fund, method, inputs, exact, value, basis: Some(distributable), paid_at: fund_policy.paid_at, paid: Yuan::ZERO })
}

/// Each hospital's year-end gross in fen, in the order of `counted_points` (the hospitals' counted
/// points), by the fund's `paid_at`: at the published value, each hospital's points × the value
/// to the fen; at the exact value, what the exact value buys over the region's points (under the
/// settlement method, the basis itself) allocated by largest remainder.
pub fn year_end_gross(record: &PointValueRecord, counted_points: &[Decimal]) -> Result<Vec<i64>, SettlementError> {
    if record.paid_at == PaidAt::Published {
        return Ok(counted_points.iter().map(|points| fen(Points(*points).at(record.value))).collect());
    }
    let region_points = Points(counted_points.iter().copied().sum());
    let bought = match (record.method, record.basis) {
        (PointValueMethod::Settlement, Some(basis)) => basis,
        _ => region_points.at(PointValue(record.exact)).to_fen(),
    };
    largest_remainder(fen(bought), counted_points)
}

/// What settlement needs to know about a case's points, before they are folded into the
/// compact [`SettlementCase`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CaseTerms {
    /// Points as assessed.
    pub points: Decimal,
    /// Approved special-review points, replacing the assessed points.
    pub reviewed_points: Option<Decimal>,
    /// Penalty multiple k of a confirmed violation.
    pub penalty_multiple: Option<Decimal>,
    /// Paid by item: outside the point pool.
    pub exempt: bool,
    /// The group's base score, when the case is grouped (for CMI).
    pub group_score: Option<Decimal>,
}

impl CaseTerms {
    /// A case as assessed (grouped and priced), before penalties and reviews, which the caller
    /// adds.
    pub fn assessed(assessment: &crate::scoring::Assessment) -> CaseTerms {
        use crate::pricing::CaseCategory;
        let category = assessment.points.category;
        let grouped = !assessment.group.is_empty() && category != CaseCategory::Ungrouped;
        CaseTerms {
            points: assessment.points.points.value(),
            reviewed_points: None,
            penalty_multiple: None,
            exempt: category == CaseCategory::Exempt,
            group_score: grouped.then_some(assessment.points.base_score),
        }
    }

    /// Points the case contributes to its hospital: its points (the reviewed points when a
    /// review was approved), 0 when exempt, or −k × points when penalised.
    pub fn counted_points(&self) -> Decimal {
        let points = self.reviewed_points.unwrap_or(self.points);
        match self.penalty_multiple {
            Some(k) => -(k * points),
            None if self.exempt => Decimal::ZERO,
            None => points,
        }
    }
}

const EXEMPT: u8 = 1;
const GROUPED: u8 = 2;
const REVIEWED: u8 = 4;
const PENALISED: u8 = 8;

/// One case as settlement sees it: 72 bytes, because a city's year holds millions of them.
/// Built from [`CaseTerms`], which it keeps only as the counted points and four flags.
#[derive(Debug, Clone, PartialEq)]
pub struct SettlementCase {
    /// Index into the run's hospital list.
    pub hospital: u32,
    pub fund: Fund,
    /// Month 1–12 of discharge.
    pub month: u8,
    flags: u8,
    /// 1 + the position of the `[[hospital_overrides]]` entry whose point value replaces the
    /// budget point value for the case in monthly pre-settlement (E14); 0 when none.
    point_value_override: u8,
    counted: Decimal,
    /// The group's base score (0 when not grouped).
    score: Decimal,
    pub total_cost: Decimal,
    pub patient_paid: Decimal,
}

impl SettlementCase {
    pub fn new(hospital: u32, fund: Fund, month: u32, terms: CaseTerms, total_cost: Decimal, patient_paid: Decimal) -> SettlementCase {
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        SettlementCase {
            hospital,
            fund,
            month: month.min(u32::from(u8::MAX)) as u8,
            flags: flag(terms.exempt, EXEMPT)
                | flag(terms.group_score.is_some(), GROUPED)
                | flag(terms.reviewed_points.is_some(), REVIEWED)
                | flag(terms.penalty_multiple.is_some(), PENALISED),
            point_value_override: 0,
            counted: terms.counted_points(),
            score: terms.group_score.unwrap_or_default(),
            total_cost,
            patient_paid,
        }
    }

    /// The case with its monthly point value taken from `[[hospital_overrides]]` entry `index`
    /// (see [`Policy::point_value_override_index`]).
    pub fn with_point_value_override(mut self, index: Option<usize>) -> SettlementCase {
        self.point_value_override = index.filter(|&i| i < usize::from(u8::MAX)).map_or(0, |i| i as u8 + 1);
        self
    }

    /// Points the case contributes to its hospital: see [`CaseTerms::counted_points`].
    pub fn counted_points(&self) -> Decimal {
        self.counted
    }

    pub fn exempt(&self) -> bool {
        self.flags & EXEMPT != 0
    }

    pub fn grouped(&self) -> bool {
        self.flags & GROUPED != 0
    }

    pub fn reviewed(&self) -> bool {
        self.flags & REVIEWED != 0
    }

    pub fn penalised(&self) -> bool {
        self.flags & PENALISED != 0
    }

    /// The group's base score (0 when not grouped).
    pub fn score(&self) -> Decimal {
        self.score
    }

    /// What the fund pays for the case by item (按项目), outside the point pool: its covered cost
    /// less the patient's payment when the case is exempt, else 0.
    pub fn item_paid(&self) -> Decimal {
        if self.exempt() {
            self.total_cost - self.patient_paid
        } else {
            Decimal::ZERO
        }
    }
}

/// Totals of one hospital and fund.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub cases: u64,
    pub grouped_cases: u64,
    pub exempt_cases: u64,
    pub penalised_cases: u64,
    pub reviewed_cases: u64,
    /// Σ points of the cases counted normally.
    pub points: Decimal,
    /// Σ k × points deducted for violations (positive).
    pub penalty_points: Decimal,
    /// points − penalty points.
    pub counted_points: Decimal,
    /// Σ base scores of the grouped cases (for CMI).
    pub scores: Decimal,
    pub total_cost: Decimal,
    pub patient_paid: Decimal,
    pub exempt_cost: Decimal,
    /// Σ (total cost − patients' payments) of the item-paid (exempt) cases: what the fund pays
    /// for them by item, outside the point pool.
    pub item_paid: Decimal,
    /// Σ counted points of the cases whose monthly point value a `[[hospital_overrides]]` entry
    /// gives, by entry (1 + its position), sorted: part of `counted_points`.
    pub override_points: Vec<(u8, Decimal)>,
}

impl Totals {
    pub fn add(&mut self, case: &SettlementCase) {
        self.apply(case, false);
    }

    /// Takes back an [`add`](Totals::add) of the same case exactly: every sum is an exact
    /// decimal, so adding and subtracting in any order gives the same totals.
    pub fn subtract(&mut self, case: &SettlementCase) {
        self.apply(case, true);
    }

    fn apply(&mut self, case: &SettlementCase, negate: bool) {
        let count = |counter: &mut u64, on: bool| {
            if on {
                *counter = if negate { counter.wrapping_sub(1) } else { *counter + 1 };
            }
        };
        let signed = |amount: Decimal| if negate { -amount } else { amount };
        count(&mut self.cases, true);
        if case.exempt() {
            count(&mut self.exempt_cases, true);
            self.exempt_cost += signed(case.total_cost);
            self.item_paid += signed(case.item_paid());
            return;
        }
        count(&mut self.grouped_cases, case.grouped());
        count(&mut self.reviewed_cases, case.reviewed());
        let counted = signed(case.counted);
        if case.penalised() {
            count(&mut self.penalised_cases, true);
            self.penalty_points -= counted;
        } else {
            self.points += counted;
        }
        self.counted_points += counted;
        if case.point_value_override != 0 {
            add_override_points(&mut self.override_points, case.point_value_override, counted);
        }
        self.scores += signed(case.score);
        self.total_cost += signed(case.total_cost);
        self.patient_paid += signed(case.patient_paid);
    }

    /// Adds another set of totals (of the same hospital and fund).
    pub fn merge(&mut self, other: &Totals) {
        self.cases += other.cases;
        self.grouped_cases += other.grouped_cases;
        self.exempt_cases += other.exempt_cases;
        self.penalised_cases += other.penalised_cases;
        self.reviewed_cases += other.reviewed_cases;
        self.points += other.points;
        self.penalty_points += other.penalty_points;
        self.counted_points += other.counted_points;
        self.scores += other.scores;
        self.total_cost += other.total_cost;
        self.patient_paid += other.patient_paid;
        self.exempt_cost += other.exempt_cost;
        self.item_paid += other.item_paid;
        for &(entry, points) in &other.override_points {
            add_override_points(&mut self.override_points, entry, points);
        }
    }

    /// Case mix index: Σ base scores ÷ the average case's score ÷ grouped cases, to 4 decimals.
    /// `average_score` is [`Policy::average_case_score`].
    pub fn cmi(&self, average_score: Decimal) -> Decimal {
        if self.grouped_cases == 0 || average_score <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        round_half_up(self.scores / average_score / Decimal::from(self.grouped_cases), 4)
    }
}

/// Adds `points` to entry `entry` of a sorted list of override points. An entry is listed exactly
/// while its sum is not 0, so the list is the same whatever order the cases came in (and after a
/// repeat is taken back out).
fn add_override_points(list: &mut Vec<(u8, Decimal)>, entry: u8, points: Decimal) {
    match list.binary_search_by_key(&entry, |(e, _)| *e) {
        Ok(at) => {
            list[at].1 += points;
            if list[at].1.is_zero() {
                list.remove(at);
            }
        }
        Err(at) if !points.is_zero() => list.insert(at, (entry, points)),
        Err(_) => {}
    }
}

/// A hospital's month-end pre-settlement for one fund.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthlyStatement {
    pub hospital: u32,
    pub fund: Fund,
    pub totals: Totals,
    pub point_value: PointValue,
    /// counted points × point value, to the fen.
    pub gross: Yuan,
    pub patient_paid: Yuan,
    /// gross − patients' payments.
    pub amount: Yuan,
    /// amount × the monthly payment share, to the fen (the whole amount when not positive).
    pub paid_now: Yuan,
    /// amount − paid now: the quality deposit held.
    pub deposit: Yuan,
}

/// Month-end pre-settlement of every hospital and fund from the month's cases.
pub fn monthly(
    policy: &Policy,
    cases: &[SettlementCase],
    hospital_count: usize,
) -> Result<(Vec<PointValueRecord>, Vec<MonthlyStatement>), SettlementError> {
    monthly_parts(policy, &[cases], hospital_count)
}

/// [`monthly`] over cases held in several parts (the chunks of a large file), without copying
/// them into one slice.
pub fn monthly_parts(
    policy: &Policy,
    parts: &[&[SettlementCase]],
    hospital_count: usize,
) -> Result<(Vec<PointValueRecord>, Vec<MonthlyStatement>), SettlementError> {
    debug_assert!(parts.iter().all(|p| p.iter().all(|c| (c.hospital as usize) < hospital_count)));
    monthly_from_totals(policy, totals_by_month(parts))
}

/// Totals per (hospital, fund, month of discharge).
pub type MonthlyTotals = BTreeMap<(u32, Fund, u32), Totals>;

/// Totals per (hospital, fund): the months added up.
fn totals_by_statement(monthly_totals: &MonthlyTotals) -> BTreeMap<(u32, Fund), Totals> {
    let mut totals: BTreeMap<(u32, Fund), Totals> = BTreeMap::new();
    for ((hospital, fund, _), month) in monthly_totals {
        totals.entry((*hospital, *fund)).or_default().merge(month);
    }
    totals
}

/// [`monthly`] from totals summed elsewhere (for instance chunk by chunk while a file is read).
pub fn monthly_from_totals(
    policy: &Policy,
    monthly_totals: MonthlyTotals,
) -> Result<(Vec<PointValueRecord>, Vec<MonthlyStatement>), SettlementError> {
    let totals = totals_by_statement(&monthly_totals);
    let terms = monthly_terms(policy)?;
    let mut statements = Vec::with_capacity(totals.len());
    let mut paid = [Yuan::ZERO; 2];
    for ((hospital, fund), totals) in totals {
        let (record, share) = &terms[fund_slot(fund)];
        let statement = monthly_statement(policy, hospital, fund, totals, record.value, *share);
        paid[fund_slot(fund)] += statement.gross;
        statements.push(statement);
    }
    let records = terms.into_iter().zip(paid).map(|((record, _), paid)| PointValueRecord { paid, ..record }).collect();
    Ok((records, statements))
}

/// Totals per (hospital, fund, month) of cases, summed case by case.
pub fn totals_by_month(parts: &[&[SettlementCase]]) -> MonthlyTotals {
    let mut totals = MonthlyTotals::new();
    for case in parts.iter().flat_map(|p| p.iter()) {
        totals.entry((case.hospital, case.fund, u32::from(case.month))).or_default().add(case);
    }
    totals
}

fn fund_slot(fund: Fund) -> usize {
    usize::from(fund == Fund::Resident)
}

/// Each fund's monthly point value and payment share (employee, resident), resolved once.
fn monthly_terms(policy: &Policy) -> Result<[(PointValueRecord, Decimal); 2], SettlementError> {
    Ok([
        (monthly_point_value(policy, Fund::Employee)?, policy.fund(Fund::Employee)?.monthly_payment_share),
        (monthly_point_value(policy, Fund::Resident)?, policy.fund(Fund::Resident)?.monthly_payment_share),
    ])
}

fn monthly_statement(
    policy: &Policy,
    hospital: u32,
    fund: Fund,
    totals: Totals,
    point_value: PointValue,
    share: Decimal,
) -> MonthlyStatement {
    // E14: Σ over the cases of points × the case's point value — the budget value, or the one a
    // `[[hospital_overrides]]` entry gives — rounded once, to the fen.
    let mut at_budget_value = totals.counted_points;
    let mut at_override_values = Decimal::ZERO;
    for &(entry, points) in &totals.override_points {
        let value = policy.hospital_overrides.get(usize::from(entry) - 1).and_then(|o| o.point_value).and_then(|v| v.for_fund(Some(fund)));
        if let Some(value) = value {
            at_budget_value -= points;
            at_override_values += points * value;
        }
    }
    let gross = Yuan(at_budget_value * point_value.0 + at_override_values).to_fen();
    let patient_paid = Yuan(totals.patient_paid).to_fen();
    let amount = gross - patient_paid;
    let paid_now = if amount.0 > Decimal::ZERO { Yuan(amount.0 * share).to_fen() } else { amount };
    let deposit = amount - paid_now;
    debug_assert_eq!(paid_now + deposit, amount);
    MonthlyStatement { hospital, fund, totals, point_value, gross, patient_paid, amount, paid_now, deposit }
}

/// A hospital's year-end final settlement for one fund.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnualStatement {
    pub hospital: u32,
    pub fund: Fund,
    pub totals: Totals,
    pub point_value: PointValue,
    /// Its year-end gross: see [`year_end_gross`] (the fund's `paid_at`).
    pub gross: Yuan,
    pub patient_paid: Yuan,
    /// gross − patients' payments.
    pub fund_due: Yuan,
    /// Surplus kept / clawed back (negative) or overspend shared (positive).
    pub band_adjustment: Yuan,
    pub deposit_held: Yuan,
    pub assessment: Decimal,
    /// deposit held × (1 − assessment).
    pub deposit_forfeited: Yuan,
    /// fund due + band adjustment − deposit forfeited.
    pub final_due: Yuan,
    /// What the monthly pre-settlements paid.
    pub paid_monthly: Yuan,
    /// final due − paid monthly (negative: the hospital pays back).
    pub balance: Yuan,
}

/// Surplus retention and overspend sharing: positive adds to the payment, negative recovers.
/// The bands are shares of the payment: with no positive payment (every case penalised) there is
/// no band to keep or share, and the adjustment is 0.
pub fn band_adjustment(year_end: Option<&YearEnd>, gross: Yuan, total_cost: Decimal) -> Yuan {
    let Some(rules) = year_end else { return Yuan::ZERO };
    if gross.0 <= Decimal::ZERO {
        return Yuan::ZERO;
    }
    let difference = gross.0 - total_cost;
    if difference > Decimal::ZERO {
        let kept = (difference * rules.surplus_keep_share).min(gross.0 * rules.surplus_cap);
        Yuan(-(difference - kept)).to_fen()
    } else if difference < Decimal::ZERO {
        let overspend = -difference;
        let within_band = overspend.min(gross.0 * rules.overspend_band);
        Yuan(within_band * rules.overspend_fund_share).to_fen()
    } else {
        Yuan::ZERO
    }
}

/// Year-end final settlement from the whole year's cases. Monthly payments are recomputed from
/// the same cases month by month (a monthly run is deterministic), so that the balance is exact.
pub fn annual(
    policy: &Policy,
    cases: &[SettlementCase],
    hospital_ids: &[String],
) -> Result<(Vec<PointValueRecord>, Vec<AnnualStatement>), SettlementError> {
    annual_parts(policy, &[cases], hospital_ids)
}

/// [`annual`] over cases held in several parts (the chunks of a large file).
pub fn annual_parts(
    policy: &Policy,
    parts: &[&[SettlementCase]],
    hospital_ids: &[String],
) -> Result<(Vec<PointValueRecord>, Vec<AnnualStatement>), SettlementError> {
    annual_from_totals(policy, totals_by_month(parts), hospital_ids)
}

/// [`annual`] from totals summed elsewhere (for instance chunk by chunk while a file is read).
pub fn annual_from_totals(
    policy: &Policy,
    monthly_totals: MonthlyTotals,
    hospital_ids: &[String],
) -> Result<(Vec<PointValueRecord>, Vec<AnnualStatement>), SettlementError> {
    let totals = totals_by_statement(&monthly_totals);
    // What the months paid and held.
    let terms = monthly_terms(policy)?;
    let mut paid_and_held: BTreeMap<(u32, Fund), (Yuan, Yuan)> = BTreeMap::new();
    for ((hospital, fund, _), month) in monthly_totals {
        let (record, share) = &terms[fund_slot(fund)];
        let statement = monthly_statement(policy, hospital, fund, month, record.value, *share);
        let entry = paid_and_held.entry((hospital, fund)).or_insert((Yuan::ZERO, Yuan::ZERO));
        entry.0 += statement.paid_now;
        entry.1 += statement.deposit;
    }
    let mut records = Vec::new();
    let mut statements = Vec::new();
    for fund in [Fund::Employee, Fund::Resident] {
        let of_fund: Vec<(u32, &Totals)> = totals.iter().filter(|((_, f), _)| *f == fund).map(|((h, _), t)| (*h, t)).collect();
        if of_fund.is_empty() {
            continue;
        }
        let counted = Points(of_fund.iter().map(|(_, t)| t.counted_points).sum());
        let patient_paid_total = Yuan(of_fund.iter().map(|(_, t)| t.patient_paid).sum());
        let mut record = year_end_point_value(policy, fund, counted, patient_paid_total)?;
        let weights: Vec<Decimal> = of_fund.iter().map(|(_, t)| t.counted_points).collect();
        let allocation = year_end_gross(&record, &weights)?;
        record.paid = yuan_from_fen(allocation.iter().sum());
        for ((hospital, hospital_totals), gross_fen) in of_fund.iter().zip(allocation) {
            let gross = yuan_from_fen(gross_fen);
            let patient_paid = Yuan(hospital_totals.patient_paid).to_fen();
            let fund_due = gross - patient_paid;
            let band = band_adjustment(policy.year_end.as_ref(), gross, hospital_totals.total_cost);
            let (paid_monthly, deposit_held) = paid_and_held.get(&(*hospital, fund)).copied().unwrap_or((Yuan::ZERO, Yuan::ZERO));
            let hospital_id = hospital_ids.get(*hospital as usize).map_or("", String::as_str);
            let assessment = policy.assessment(hospital_id);
            let deposit_forfeited =
                if deposit_held.0 > Decimal::ZERO { Yuan(deposit_held.0 * (Decimal::ONE - assessment)).to_fen() } else { Yuan::ZERO };
            let final_due = fund_due + band - deposit_forfeited;
            statements.push(AnnualStatement {
                hospital: *hospital,
                fund,
                totals: (*hospital_totals).clone(),
                point_value: record.value,
                gross,
                patient_paid,
                fund_due,
                band_adjustment: band,
                deposit_held,
                assessment,
                deposit_forfeited,
                final_due,
                paid_monthly,
                balance: final_due - paid_monthly,
            });
        }
        debug_assert_eq!(statements.iter().filter(|s| s.fund == fund).map(|s| s.gross).sum::<Yuan>(), record.paid);
        records.push(record);
    }
    // Hospital then fund, as in monthly runs.
    statements.sort_by_key(|s| (s.hospital, s.fund));
    Ok((records, statements))
}

/// How many special-review applications `cases` cases allow: ⌊quota × cases⌋.
pub fn special_review_allowed(quota: Decimal, cases: u64) -> u64 {
    let allowed = (quota * Decimal::from(cases)).floor();
    u64::try_from(allowed.mantissa() / 10i128.pow(allowed.scale())).unwrap_or(0)
}

/// Checks the special-review quota: per hospital, applications ≤ ⌊quota × cases⌋.
/// `cases_per_hospital` and `applications_per_hospital` are indexed like `hospital_ids`.
pub fn check_special_review_quota(
    policy: &Policy,
    hospital_ids: &[String],
    cases_per_hospital: &[u64],
    applications_per_hospital: &[u64],
) -> Result<(), SettlementError> {
    let Some(review) = &policy.special_review else { return Ok(()) };
    for (index, &applications) in applications_per_hospital.iter().enumerate() {
        let cases = cases_per_hospital.get(index).copied().unwrap_or(0);
        let allowed = special_review_allowed(review.quota, cases);
        if applications > allowed {
            return Err(SettlementError::SpecialReviewQuota {
                hospital: hospital_ids.get(index).cloned().unwrap_or_default(),
                applications,
                cases,
                quota: review.quota,
                allowed,
            });
        }
    }
    Ok(())
}

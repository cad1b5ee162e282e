//! The settlement engine: one month-end pre-settlement or year-end final settlement over a batch
//! of cases, exactly as `dipdrg settle` and the service's settlement runs both run it.
//!
//! This module states, in one place, the rules a run applies to every record: which cases are
//! admitted ([`admit`], each refusal with a stable code), how confirmed violations and
//! special-review decisions annotate a case ([`Annotations`]), how a statement's gross is split
//! over its cases ([`split_over_cases`]), and the outcome tables (cases, statements, summary,
//! rejects). Two executors apply the rules behind one API and must agree byte for byte:
//! [`reference`] (one thread, the plainest code that states the rules) and [`parallel`] (the fast
//! path: chunked parallel reading, two cases in flight, per-worker totals). The executors start
//! threads; this module does no I/O and starts none.
//!
//! Admission (one place for the CLI and the service), in order:
//! 1. the record reads as a case (see [`crate::io::case_csv`]);
//! 2. `hospital_id` is present and a hospital of the policy;
//! 3. `fund` and `discharge_date` are present, and the discharge date is in the period;
//! 4. `total_cost` and `patient_paid` are present and `patient_paid ≤ total_cost`;
//! 5. the case id has not been admitted before in this run (case ids are unique in a region's run,
//!    whichever hospital submits them: the first in input order is settled, later ones are
//!    rejected naming it).

pub mod benefits;
pub mod parallel;
pub mod reference;

use crate::case::{Case, Date, Fund};
use crate::policy::Policy;
use crate::pricing::Reason;
use crate::report::Table;
use crate::scoring::{Assessment, Scorer};
use crate::settlement::{self, largest_remainder, CaseTerms, MonthlyTotals, PointValueRecord, SettlementCase};
use crate::units::{format_point_value, format_points, format_yuan, push_points, push_rounded, push_yuan, PointValue, Yuan};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHasher};
use smallvec::SmallVec;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Month-end pre-settlement (月度预结算) or year-end final settlement (年终清算).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Monthly,
    Annual,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monthly => "monthly",
            Mode::Annual => "annual",
        }
    }
}

/// The period a run settles, by discharge date: a month (`YYYY-MM`) for a monthly run, a year
/// (`YYYY`) for an annual one. The one parser of periods for every door.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Period {
    pub year: i32,
    pub month: Option<u32>,
}

impl Period {
    /// Parses `text` for `mode`: exactly four digits for the year, and for a monthly run a dash
    /// and two digits 01–12.
    pub fn parse(mode: Mode, text: &str) -> Result<Period, SettleError> {
        let bad = || SettleError::Period { text: text.to_string(), mode };
        let digits = |part: &str, n: usize| part.len() == n && part.bytes().all(|b| b.is_ascii_digit());
        match mode {
            Mode::Annual if digits(text, 4) => Ok(Period { year: text.parse().map_err(|_| bad())?, month: None }),
            Mode::Monthly => {
                let (year, month) = text.split_once('-').ok_or_else(bad)?;
                if !digits(year, 4) || !digits(month, 2) {
                    return Err(bad());
                }
                let month: u32 = month.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&month) {
                    return Err(bad());
                }
                Ok(Period { year: year.parse().map_err(|_| bad())?, month: Some(month) })
            }
            Mode::Annual => Err(bad()),
        }
    }

    /// Parses `text` for `mode` and checks that the period lies in the policy's year.
    pub fn parse_for(policy: &Policy, mode: Mode, text: &str) -> Result<Period, SettleError> {
        let period = Period::parse(mode, text)?;
        if period.year != policy.year {
            return Err(SettleError::PeriodNotPolicyYear { text: text.to_string(), year: policy.year });
        }
        Ok(period)
    }

    pub fn contains(self, date: Date) -> bool {
        date.in_period(self.year, self.month)
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.month {
            Some(month) => write!(f, "{}-{month:02}", self.year),
            None => write!(f, "{}", self.year),
        }
    }
}

/// Why a run could not be carried out (a rejected record is not an error: see [`Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("period {text:?}: expected YYYY-MM for a monthly run or YYYY for an annual one ({} run)", mode.as_str())]
    Period { text: String, mode: Mode },
    #[error("period {text:?} is not in the policy's year {year}")]
    PeriodNotPolicyYear { text: String, year: i32 },
    #[error("{source_name}: record {record}: field {field}: {reason}")]
    Annotation { source_name: String, record: u64, field: &'static str, reason: String },
    #[error("{cases} cases in one run: at most {} are supported", u32::MAX)]
    TooManyCases { cases: usize },
    #[error("{0}")]
    Settlement(#[from] settlement::SettlementError),
    #[error("reading cases: {0}")]
    Input(#[from] std::io::Error),
    #[error("internal error: accepted {accepted} + rejected {rejected} != submitted {submitted}")]
    Unbalanced { accepted: u64, rejected: u64, submitted: u64 },
}

impl SettleError {
    /// A stable code for the error, shown by the CLI and carried by the service.
    pub fn code(&self) -> &'static str {
        match self {
            SettleError::Period { .. } => "SETTLE_PERIOD_INVALID",
            SettleError::PeriodNotPolicyYear { .. } => "SETTLE_PERIOD_NOT_POLICY_YEAR",
            SettleError::Annotation { .. } => "SETTLE_ANNOTATION_INVALID",
            SettleError::TooManyCases { .. } => "SETTLE_TOO_MANY_CASES",
            SettleError::Settlement(inner) => inner.code(),
            SettleError::Input(_) => "SETTLE_INPUT_UNREADABLE",
            SettleError::Unbalanced { .. } => "SETTLE_INTERNAL",
        }
    }
}

/// A confirmed violation's penalty.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The hospital of the case, when the annotation names one (the service's do): the violation
    /// applies only to that hospital's case.
    pub hospital_id: Option<String>,
    pub kind: String,
    pub multiple: Decimal,
}

/// An approved or rejected special-review application (特病单议).
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub hospital_id: Option<String>,
    pub approved: bool,
    pub reviewed_points: Option<Decimal>,
}

impl Review {
    /// Reads a decision as every door gives it: `decision` is `approved` or `rejected`;
    /// `reviewed_points` a number from 0 to [`MAX_REVIEWED_POINTS`], required when approved,
    /// may be empty when rejected (and must still be a number when given). The problem names the field.
    pub fn parse(hospital_id: Option<&str>, decision: &str, reviewed_points: &str) -> Result<Review, (&'static str, String)> {
        let approved = match decision {
            "approved" => true,
            "rejected" => false,
            other => return Err(("decision", format!("{other:?} is not approved or rejected"))),
        };
        let reviewed_points = match reviewed_points.trim() {
            "" if approved => return Err(("reviewed_points", "is required when the decision is approved".into())),
            "" => None,
            text => match Decimal::from_str(text) {
                Ok(points) if points >= Decimal::ZERO && points <= MAX_REVIEWED_POINTS => Some(points),
                _ => return Err(("reviewed_points", format!("{text:?} is not a number from 0 to {MAX_REVIEWED_POINTS}"))),
            },
        };
        Ok(Review { hospital_id: hospital_id.map(str::to_string), approved, reviewed_points })
    }
}

/// The largest reviewed points a decision may give a case (a case's points are in the thousands).
pub const MAX_REVIEWED_POINTS: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 0);

/// Confirmed violations and special-review decisions, by case id. An annotation that names a
/// hospital applies to that hospital's case only.
#[derive(Debug, Default)]
pub struct Annotations {
    violations: FxHashMap<String, SmallVec<[Violation; 1]>>,
    reviews: FxHashMap<String, SmallVec<[Review; 1]>>,
}

/// Which of a case's annotations apply: the one naming its hospital, else one naming none.
fn for_case<'a, T>(list: Option<&'a SmallVec<[T; 1]>>, case: &Case, hospital_of: impl Fn(&T) -> Option<&str>) -> Option<&'a T> {
    let list = list?;
    let hospital = case.hospital_id.as_deref();
    list.iter().find(|a| hospital_of(a).is_some_and(|h| Some(h) == hospital)).or_else(|| list.iter().find(|a| hospital_of(a).is_none()))
}

impl Annotations {
    /// Adds a confirmed violation; `false` when the case (at that hospital) already has one.
    pub fn add_violation(&mut self, policy: &Policy, case_id: &str, hospital_id: Option<&str>, kind: &str) -> bool {
        let list = self.violations.entry(case_id.to_string()).or_default();
        if list.iter().any(|v| v.hospital_id.as_deref() == hospital_id) {
            return false;
        }
        list.push(Violation {
            hospital_id: hospital_id.map(str::to_string),
            kind: kind.to_string(),
            multiple: policy.penalties.multiple(kind),
        });
        true
    }

    /// Adds a special-review decision; `false` when the case (at that hospital) already has one.
    pub fn add_review(&mut self, case_id: &str, review: Review) -> bool {
        let list = self.reviews.entry(case_id.to_string()).or_default();
        if list.iter().any(|r| r.hospital_id == review.hospital_id) {
            return false;
        }
        list.push(review);
        true
    }

    /// One record of a violations file, checked: `case_id` and `kind` are required, one
    /// violation per case (and hospital). The error names the field and the reason.
    pub fn add_violation_record(
        &mut self,
        policy: &Policy,
        case_id: &str,
        hospital_id: Option<&str>,
        kind: &str,
    ) -> Result<(), (&'static str, String)> {
        if case_id.is_empty() {
            return Err(("case_id", "is required".into()));
        }
        if kind.is_empty() {
            return Err(("kind", "is required".into()));
        }
        if !self.add_violation(policy, case_id, hospital_id, kind) {
            return Err(("case_id", format!("case {case_id} is listed twice; confirm one violation per case")));
        }
        Ok(())
    }

    /// One record of a reviews file, checked: `case_id` is required, the decision and reviewed
    /// points as [`Review::parse`] reads them, one review per case (and hospital).
    pub fn add_review_record(
        &mut self,
        case_id: &str,
        hospital_id: Option<&str>,
        decision: &str,
        reviewed_points: &str,
    ) -> Result<(), (&'static str, String)> {
        if case_id.is_empty() {
            return Err(("case_id", "is required".into()));
        }
        let review = Review::parse(hospital_id, decision, reviewed_points)?;
        if !self.add_review(case_id, review) {
            return Err(("case_id", format!("case {case_id} is listed twice")));
        }
        Ok(())
    }

    pub fn violation(&self, case: &Case) -> Option<&Violation> {
        for_case(self.violations.get(&case.case_id), case, |v| v.hospital_id.as_deref())
    }

    pub fn review(&self, case: &Case) -> Option<&Review> {
        for_case(self.reviews.get(&case.case_id), case, |r| r.hospital_id.as_deref())
    }

    /// The case ids that have an annotation.
    fn ids(&self) -> impl Iterator<Item = &String> + Clone {
        self.violations.keys().chain(self.reviews.keys())
    }

    /// Whether any annotation names `case_id`.
    pub fn names(&self, case_id: &str) -> bool {
        self.violations.contains_key(case_id) || self.reviews.contains_key(case_id)
    }

    /// Every annotation as (source, case id, hospital id), violations then reviews.
    fn each(&self) -> impl Iterator<Item = (&'static str, &str, Option<&str>)> {
        let violations =
            self.violations.iter().flat_map(|(id, list)| list.iter().map(move |v| ("violation", id.as_str(), v.hospital_id.as_deref())));
        let reviews =
            self.reviews.iter().flat_map(|(id, list)| list.iter().map(move |r| ("review", id.as_str(), r.hospital_id.as_deref())));
        violations.chain(reviews)
    }
}

/// Something a run settled anyway but a fund office must see, with a stable code: see
/// [`warning_code`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub code: &'static str,
    /// `violation` or `review` (the annotation's kind).
    pub source: &'static str,
    pub case_id: String,
    /// The hospital the annotation names (empty when it names none).
    pub hospital_id: String,
    pub message: String,
}

/// Codes of a run's warnings.
pub mod warning_code {
    /// A confirmed violation or a special-review decision names a case that is not among the
    /// run's records (at that hospital, when it names one): it was applied to nothing.
    pub const ANNOTATION_CASE_UNKNOWN: &str = "ANNOTATION_CASE_UNKNOWN";
    /// A special-review application over the hospital's quota for its month: refused, the case
    /// settled at its assessed points (see [`super::refuse_over_quota`]).
    pub const SPECIAL_REVIEW_OVER_QUOTA: &str = "SPECIAL_REVIEW_OVER_QUOTA";
}

/// The records an annotation could have named: by case id, the hospitals of the records that
/// carry it (`None` for a record that could not be read far enough to know its hospital).
pub type SeenIds = FxHashMap<String, SmallVec<[Option<String>; 1]>>;

/// Notes that a record with `case_id` (at `hospital_id`) was read, when an annotation names it.
pub fn note_seen(seen: &mut SeenIds, annotations: &Annotations, case_id: &str, hospital_id: Option<&str>) {
    if annotations.names(case_id) {
        seen.entry(case_id.to_string()).or_default().push(hospital_id.map(str::to_string));
    }
}

/// The annotations that name no record of the run: a violation or review naming a hospital
/// needs a record of that case id at that hospital (or one whose hospital is unknown); one
/// naming none needs any record of the case id. Whether the record was then settled or
/// refused does not matter: it was in the input. Sorted, so every executor lists them alike.
pub fn unknown_annotations(annotations: &Annotations, seen: &SeenIds) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (source, case_id, hospital) in annotations.each() {
        let found = seen.get(case_id).is_some_and(|hospitals| match hospital {
            Some(h) => hospitals.iter().any(|seen| seen.as_deref().is_none_or(|s| s == h)),
            None => true,
        });
        if found {
            continue;
        }
        let at = hospital.map(|h| format!(" at hospital {h}")).unwrap_or_default();
        warnings.push(Warning {
            code: warning_code::ANNOTATION_CASE_UNKNOWN,
            source,
            case_id: case_id.to_string(),
            hospital_id: hospital.unwrap_or_default().to_string(),
            message: format!("{source} of case {case_id}{at}: no such case among the run's records, so it was applied to nothing"),
        });
    }
    warnings.sort();
    warnings
}

/// The warnings as a table (`warnings.csv`).
pub fn warnings_table(warnings: &[Warning]) -> Table {
    Table {
        header: ["code", "source", "case_id", "hospital_id", "message"].map(String::from).to_vec(),
        rows: warnings
            .iter()
            .map(|w| vec![w.code.to_string(), w.source.to_string(), w.case_id.clone(), w.hospital_id.clone(), w.message.clone()])
            .collect(),
    }
}

/// What a run settles: the policy and scorer snapshots, the mode and period, and the annotations.
pub struct Request<'a> {
    pub policy: &'a Policy,
    pub scorer: &'a Scorer,
    pub mode: Mode,
    pub period: Period,
    pub annotations: &'a Annotations,
}

/// A request resolved for settling cases: hospital indices and terms, and a filter over the
/// annotated ids. Built once per run and shared read-only by every worker.
pub struct Prepared<'a> {
    pub request: &'a Request<'a>,
    pub hospital_ids: Vec<String>,
    hospital_index: FxHashMap<String, u32>,
    hospital_terms: Vec<Option<(&'a str, Option<crate::policy::Coefficient>)>>,
    listed: IdFilter,
}

impl<'a> Prepared<'a> {
    pub fn new(request: &'a Request<'a>) -> Prepared<'a> {
        let policy = request.policy;
        let hospital_ids: Vec<String> = policy.hospitals.keys().cloned().collect();
        Prepared {
            request,
            hospital_index: hospital_ids.iter().enumerate().map(|(i, h)| (h.clone(), i as u32)).collect(),
            hospital_terms: policy.hospitals.keys().map(|h| policy.hospital_terms(h)).collect(),
            listed: IdFilter::new(request.annotations.ids()),
            hospital_ids,
        }
    }
}

/// A record the run did not settle, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based number of the record in the input (header not counted).
    pub record: u64,
    pub case_id: String,
    pub field: String,
    pub value: String,
    pub reason: String,
    /// A stable code: see [`rejection_code`].
    pub code: &'static str,
}

/// Codes of rejected records.
pub mod rejection_code {
    /// The record does not read as a case (the field says which value).
    pub const UNREADABLE: &str = "CASE_UNREADABLE";
    /// A field settlement needs is empty.
    pub const FIELD_REQUIRED: &str = "CASE_FIELD_REQUIRED";
    /// The hospital is not one of the policy's.
    pub const HOSPITAL_UNKNOWN: &str = "CASE_HOSPITAL_UNKNOWN";
    /// Discharged outside the run's period.
    pub const OUTSIDE_PERIOD: &str = "CASE_OUTSIDE_PERIOD";
    /// The patient paid more than the case cost.
    pub const PATIENT_PAID_EXCEEDS_COST: &str = "CASE_PATIENT_PAID_EXCEEDS_COST";
    /// The case id was admitted earlier in the run.
    pub const REPEATED_ID: &str = "CASE_ID_REPEATED";
}

/// A record's admission refused: (field, value, reason, code).
pub struct Refusal {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
    pub code: &'static str,
}

impl Refusal {
    pub fn into_rejected(self, record: u64, case_id: &str) -> Rejected {
        Rejected { record, case_id: case_id.to_string(), field: self.field.into(), value: self.value, reason: self.reason, code: self.code }
    }
}

/// The settlement fields of an admitted case.
pub struct Admitted {
    pub hospital: u32,
    pub fund: Fund,
    pub month: u32,
    pub total_cost: Decimal,
    pub patient_paid: Decimal,
}

/// Rules 2–4 of the admission (the module's doc): the case's settlement fields, or why it is
/// refused. Rule 5 (repeated ids) needs the whole run and is applied by the executors.
pub fn admit(case: &Case, prepared: &Prepared<'_>) -> Result<Admitted, Refusal> {
    use rejection_code::*;
    let missing =
        |field: &'static str| Refusal { field, value: String::new(), reason: "is required for settlement".into(), code: FIELD_REQUIRED };
    let hospital = case.hospital_id.as_deref().ok_or_else(|| missing("hospital_id"))?;
    let index = *prepared.hospital_index.get(hospital).ok_or_else(|| Refusal {
        field: "hospital_id",
        value: hospital.to_string(),
        reason: "is not a hospital of the policy".into(),
        code: HOSPITAL_UNKNOWN,
    })?;
    let fund = case.fund.ok_or_else(|| missing("fund"))?;
    let discharged = case.discharge_date.ok_or_else(|| missing("discharge_date"))?;
    if !prepared.request.period.contains(discharged) {
        return Err(Refusal {
            field: "discharge_date",
            value: discharged.to_string(),
            reason: "is outside the settlement period".into(),
            code: OUTSIDE_PERIOD,
        });
    }
    let total_cost = case.total_cost.ok_or_else(|| missing("total_cost"))?;
    let patient_paid = case.patient_paid.ok_or_else(|| missing("patient_paid"))?;
    if patient_paid > total_cost {
        return Err(Refusal {
            field: "patient_paid",
            value: patient_paid.to_string(),
            reason: format!("exceeds total_cost {total_cost}"),
            code: PATIENT_PAID_EXCEEDS_COST,
        });
    }
    Ok(Admitted { hospital: index, fund, month: discharged.ymd().1, total_cost, patient_paid })
}

/// The refusal of a case whose id was admitted at `first_record`.
pub fn repeated(case_id: &str, first_record: u64) -> Refusal {
    Refusal {
        field: "case_id",
        value: case_id.to_string(),
        reason: format!("repeats the case id of record {first_record}: a case is settled once"),
        code: rejection_code::REPEATED_ID,
    }
}

/// An admitted case, settled: its compact settlement record and, when it applied for a special
/// review (which counts toward the hospital's quota), how it settles if the application is
/// refused as over the quota.
pub struct Settled {
    pub case: SettlementCase,
    pub application: Option<Box<Application>>,
}

/// A case's special-review application (特病单议申请): the case as it settles when the
/// application is refused over the quota — its assessed points, penalties still applied — and its
/// `cases.csv` row then (review column `over_quota`).
pub struct Application {
    pub unreviewed: SettlementCase,
    pub row: String,
}

/// Admits, groups and prices one case, and applies its annotations; writes its `cases.csv` row
/// (without the amount) into `row`. `id_hash` is the case id's [`id_hash`].
pub fn settle_case(prepared: &Prepared<'_>, case: &Case, id_hash: u64, row: &mut String) -> Result<Settled, Refusal> {
    let request = prepared.request;
    let Admitted { hospital, fund, month, total_cost, patient_paid } = admit(case, prepared)?;
    let assessment = request.scorer.assess_at(request.policy, case, prepared.hospital_terms[hospital as usize]);
    let listed = prepared.listed.might_hold(id_hash);
    let violation = if listed { request.annotations.violation(case) } else { None };
    let review = if listed { request.annotations.review(case) } else { None };
    let reviewed_points = review.filter(|r| r.approved).and_then(|r| r.reviewed_points);
    let terms = CaseTerms { reviewed_points, penalty_multiple: violation.map(|v| v.multiple), ..CaseTerms::assessed(&assessment) };
    let point_value_override = request.policy.point_value_override_index(case, fund);
    let settlement =
        SettlementCase::new(hospital, fund, month, terms, total_cost, patient_paid).with_point_value_override(point_value_override);
    let points_decimals = request.policy.points_decimals;
    case_row(
        row,
        points_decimals,
        case,
        fund,
        month,
        &assessment,
        &settlement,
        violation,
        review.map(ReviewCell::Decided),
        reviewed_points,
    );
    let application = review.map(|_| {
        let unreviewed = SettlementCase::new(hospital, fund, month, CaseTerms { reviewed_points: None, ..terms }, total_cost, patient_paid)
            .with_point_value_override(point_value_override);
        let mut row = String::new();
        case_row(&mut row, points_decimals, case, fund, month, &assessment, &unreviewed, violation, Some(ReviewCell::OverQuota), None);
        Box::new(Application { unreviewed, row })
    });
    Ok(Settled { case: settlement, application })
}

/// What the review column of a case row says.
#[derive(Clone, Copy)]
enum ReviewCell<'a> {
    Decided(&'a Review),
    /// The application was refused: over the hospital's quota for the month.
    OverQuota,
}

/// The special-review quota (特病单议名额), the same in monthly and annual runs: per hospital and
/// month of discharge, at most ⌊quota × the hospital's cases that month⌋ applications are
/// honoured, the first in input order; each later one is refused — its case settles at its
/// assessed points — and named by a [`warning_code::SPECIAL_REVIEW_OVER_QUOTA`] warning.
/// `applications` are (hospital, month, case id, hospital id) in input order; the answer says,
/// for each, whether it is refused (with its warning).
pub fn refuse_over_quota(policy: &Policy, monthly_totals: &MonthlyTotals, applications: &[(u32, u8, &str, &str)]) -> Vec<Option<Warning>> {
    let Some(review) = &policy.special_review else { return vec![None; applications.len()] };
    let mut cases: FxHashMap<(u32, u32), u64> = FxHashMap::default();
    for ((hospital, _, month), totals) in monthly_totals {
        *cases.entry((*hospital, *month)).or_default() += totals.cases;
    }
    let mut honoured: FxHashMap<(u32, u32), u64> = FxHashMap::default();
    let mut refused = Vec::with_capacity(applications.len());
    for &(hospital, month, case_id, hospital_id) in applications {
        let key = (hospital, u32::from(month));
        let month_cases = cases.get(&key).copied().unwrap_or(0);
        let allowed = settlement::special_review_allowed(review.quota, month_cases);
        let used = honoured.entry(key).or_default();
        if *used < allowed {
            *used += 1;
            refused.push(None);
            continue;
        }
        refused.push(Some(Warning {
            code: warning_code::SPECIAL_REVIEW_OVER_QUOTA,
            source: "review",
            case_id: case_id.to_string(),
            hospital_id: hospital_id.to_string(),
            message: format!(
                "special-review application of case {case_id} at hospital {hospital_id}: over the quota of {allowed} for month {month} ({} × {month_cases} cases), refused: settled at its assessed points",
                review.quota.normalize()
            ),
        }));
    }
    refused
}

/// The header of `cases.csv`.
pub const CASES_HEADER: &str = "case_id,hospital_id,fund,month,status,group,category,base_score,cost_ratio,points,counted_points,violation,review,outlier_factor,severity_factor,hospital_factor,bed_days,total_cost,patient_paid,amount,fund_amount,item_paid\n";

/// A `cases.csv` row without its amount (and line end).
#[allow(clippy::too_many_arguments)]
fn case_row(
    row: &mut String,
    points_decimals: u32,
    case: &Case,
    fund: Fund,
    month: u32,
    assessment: &Assessment,
    settlement: &SettlementCase,
    violation: Option<&Violation>,
    review: Option<ReviewCell<'_>>,
    reviewed_points: Option<Decimal>,
) {
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
    push_points(row, assessment.points.base_score, points_decimals);
    row.push(',');
    if let Some(ratio) = assessment.points.cost_ratio {
        push_rounded(row, ratio, 4);
    }
    row.push(',');
    push_points(row, assessment.points.points.value(), points_decimals);
    row.push(',');
    push_points(row, settlement.counted_points(), points_decimals);
    row.push(',');
    if let Some(v) = violation {
        let _ = write!(row, "{} x{}", v.kind, v.multiple.normalize());
    }
    row.push(',');
    match review {
        Some(ReviewCell::Decided(r)) if r.approved => {
            row.push_str("approved ");
            push_points(row, reviewed_points.unwrap_or_default(), points_decimals);
        }
        Some(ReviewCell::Decided(_)) => row.push_str("rejected"),
        Some(ReviewCell::OverQuota) => row.push_str("over_quota"),
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
    row.push(',');
    push_yuan(row, settlement.total_cost);
    row.push(',');
    push_yuan(row, settlement.patient_paid);
}

/// Appends a row's money after the split and its line end: `amount` (its share of the
/// statement's gross, in fen), `fund_amount` (what the fund pays for it: amount − the patient's
/// payment, or for an item-paid case its item-paid amount) and `item_paid`.
pub fn push_amount(line: &mut String, amount_fen: i64, case: &SettlementCase) {
    let amount = Decimal::new(amount_fen, 2);
    let item_paid = case.item_paid();
    let fund_amount = if case.exempt() { amount + item_paid } else { amount - case.patient_paid };
    for value in [amount, fund_amount, item_paid] {
        line.push(',');
        push_yuan(line, value);
    }
    line.push('\n');
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

/// The hash of a case id that the executors use for repeats and the annotation filter.
pub fn id_hash(id: &str) -> u64 {
    let mut hasher = FxHasher::default();
    id.hash(&mut hasher);
    hasher.finish()
}

/// A one-hash Bloom filter over case ids ([`id_hash`]): `might_hold` is false only for ids that
/// were not inserted. About 16 bits per id, so a few percent of misses take the full lookup.
pub struct IdFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl IdFilter {
    pub fn new<'a>(ids: impl Iterator<Item = &'a String> + Clone) -> IdFilter {
        let wanted = (ids.clone().count() * 16).max(64).next_power_of_two();
        let mut filter = IdFilter { bits: vec![0; wanted / 64], mask: wanted as u64 - 1 };
        for id in ids {
            let bit = id_hash(id) & filter.mask;
            filter.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        filter
    }

    /// Asks the cache for the word `might_hold(hash)` will read (no effect on results).
    pub fn prefetch(&self, hash: u64) {
        prefetch_index::prefetch_index(&self.bits, ((hash & self.mask) / 64) as usize);
    }

    pub fn might_hold(&self, hash: u64) -> bool {
        let bit = hash & self.mask;
        self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }
}

impl Prepared<'_> {
    pub fn prefetch_listed(&self, hash: u64) {
        self.listed.prefetch(hash);
    }
}

/// Splits a statement's gross over its cases by counted points (largest remainder, ties to the
/// earlier case), so the cases' amounts add up to the statement exactly. Negative weights that
/// sum negative are split as their negation; weights that sum to zero leave the gross with the
/// first case.
pub fn split_over_cases(gross_fen: i64, weights: &[Decimal]) -> Vec<i64> {
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

/// The run's statements and point values.
#[derive(Debug, Clone, PartialEq)]
pub enum Statements {
    Monthly(Vec<PointValueRecord>, Vec<settlement::MonthlyStatement>),
    Annual(Vec<PointValueRecord>, Vec<settlement::AnnualStatement>),
}

/// From the run's totals per (hospital, fund, month), the quota already applied
/// ([`refuse_over_quota`]): the statements. Both executors end here.
pub fn conclude(prepared: &Prepared<'_>, monthly_totals: MonthlyTotals) -> Result<Statements, SettleError> {
    let request = prepared.request;
    Ok(match request.mode {
        Mode::Monthly => {
            let (values, statements) = settlement::monthly_from_totals(request.policy, monthly_totals)?;
            Statements::Monthly(values, statements)
        }
        Mode::Annual => {
            let (values, statements) = settlement::annual_from_totals(request.policy, monthly_totals, &prepared.hospital_ids)?;
            Statements::Annual(values, statements)
        }
    })
}

/// What a run produced. `cases` holds the `cases.csv` lines, in input order, in the executor's
/// own form ([`CaseLines`]).
pub struct Outcome<C> {
    pub submitted: u64,
    pub accepted: u64,
    /// Every record not settled, in record order.
    pub rejected: Vec<Rejected>,
    pub statements: Statements,
    pub hospital_ids: Vec<String>,
    pub cases: C,
    /// What the run settled anyway but must be seen (sorted): [`Warning`].
    pub warnings: Vec<Warning>,
}

/// The `cases.csv` lines of a run (header not included), however an executor holds them.
pub trait CaseLines {
    /// All lines, in input order.
    fn to_bytes(&self) -> Vec<u8>;
    /// Writes all lines into `file` from byte `offset` on (the file's own position is not used).
    fn write_at(&self, file: &std::fs::File, offset: u64) -> std::io::Result<()>;
}

/// What a run was, for its summary.
pub struct RunInfo<'a> {
    pub mode: Mode,
    pub period: Period,
    pub policy: &'a Policy,
    pub tables_fingerprint: &'a str,
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub hospital_ids: &'a [String],
    pub warnings: &'a [Warning],
}

impl<C> Outcome<C> {
    /// The summary's description of this run.
    pub fn info<'a>(&'a self, request: &'a Request<'a>) -> RunInfo<'a> {
        RunInfo {
            mode: request.mode,
            period: request.period,
            policy: request.policy,
            tables_fingerprint: request.scorer.fingerprint(),
            submitted: self.submitted,
            accepted: self.accepted,
            rejected: self.rejected.len() as u64,
            hospital_ids: &self.hospital_ids,
            warnings: &self.warnings,
        }
    }
}

impl Statements {
    pub fn point_values(&self) -> &[PointValueRecord] {
        match self {
            Statements::Monthly(v, _) | Statements::Annual(v, _) => v,
        }
    }

    /// A fund's cases, counted points, gross and item-paid amount (Σ over its statements).
    pub fn fund_totals(&self, fund: Fund) -> (u64, Decimal, Yuan, Yuan) {
        let rows: Vec<(&settlement::Totals, Yuan)> = match self {
            Statements::Monthly(_, s) => s.iter().filter(|s| s.fund == fund).map(|s| (&s.totals, s.gross)).collect(),
            Statements::Annual(_, s) => s.iter().filter(|s| s.fund == fund).map(|s| (&s.totals, s.gross)).collect(),
        };
        (
            rows.iter().map(|(t, _)| t.cases).sum(),
            rows.iter().map(|(t, _)| t.counted_points).sum(),
            rows.iter().map(|(_, g)| *g).sum(),
            Yuan(rows.iter().map(|(t, _)| t.item_paid).sum()),
        )
    }

    /// Each statement's (hospital, fund) and gross, in statement order.
    pub fn gross_by_statement(&self) -> Vec<((u32, Fund), Yuan)> {
        match self {
            Statements::Monthly(_, s) => s.iter().map(|s| ((s.hospital, s.fund), s.gross)).collect(),
            Statements::Annual(_, s) => s.iter().map(|s| ((s.hospital, s.fund), s.gross)).collect(),
        }
    }

    /// The statements as a table (`statements.csv`, the XLSX sheet, the report).
    pub fn statements_table(&self, policy: &Policy, hospital_ids: &[String]) -> Table {
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
            "item_paid",
        ];
        let totals_cells = |t: &settlement::Totals| {
            vec![
                t.cases.to_string(),
                t.grouped_cases.to_string(),
                t.exempt_cases.to_string(),
                t.penalised_cases.to_string(),
                t.reviewed_cases.to_string(),
                format_points(t.points, policy.points_decimals),
                format_points(t.penalty_points, policy.points_decimals),
                format_points(t.counted_points, policy.points_decimals),
                t.cmi(policy.average_case_score()).to_string(),
                format_yuan(t.total_cost),
            ]
        };
        // The cells every statement has, monthly or annual: hospital, fund, totals, point value,
        // gross and patients' payments.
        let shared_cells =
            |hospital_index: u32, fund: Fund, totals: &settlement::Totals, point_value: PointValue, gross: Yuan, patient_paid: Yuan| {
                let (id, name, level) = hospital(hospital_index);
                let mut row = vec![id, name, level, fund.as_str().to_string()];
                row.extend(totals_cells(totals));
                row.extend([
                    format_point_value(point_value.0, policy.point_value_decimals),
                    format_yuan(gross.0),
                    format_yuan(patient_paid.0),
                    format_yuan(totals.item_paid),
                ]);
                row
            };
        match self {
            Statements::Monthly(_, statements) => {
                let mut header: Vec<String> = common.iter().map(|s| s.to_string()).collect();
                header.extend(["amount", "paid_now", "deposit"].map(String::from));
                let rows = statements
                    .iter()
                    .map(|s| {
                        let mut row = shared_cells(s.hospital, s.fund, &s.totals, s.point_value, s.gross, s.patient_paid);
                        row.extend([format_yuan(s.amount.0), format_yuan(s.paid_now.0), format_yuan(s.deposit.0)]);
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
                        let mut row = shared_cells(s.hospital, s.fund, &s.totals, s.point_value, s.gross, s.patient_paid);
                        row.extend([
                            format_yuan(s.fund_due.0),
                            format_yuan(s.band_adjustment.0),
                            format_yuan(s.deposit_held.0),
                            s.assessment.normalize().to_string(),
                            format_yuan(s.deposit_forfeited.0),
                            format_yuan(s.final_due.0),
                            format_yuan(s.paid_monthly.0),
                            format_yuan(s.balance.0),
                        ]);
                        row
                    })
                    .collect();
                Table { header, rows }
            }
        }
    }

    /// The run's summary as a key/value table (`summary.csv`).
    pub fn summary_table(&self, run: &RunInfo<'_>) -> Table {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut add = |key: &str, value: String| rows.push(vec![key.to_string(), value]);
        add("mode", run.mode.as_str().to_string());
        add("period", run.period.to_string());
        add("region", run.policy.region.clone());
        add("policy_version", run.policy.version.clone());
        add("scheme", format!("{:?}", run.policy.scheme).to_lowercase());
        add("tables_fingerprint", run.tables_fingerprint.to_string());
        add("submitted", run.submitted.to_string());
        add("accepted", run.accepted.to_string());
        add("rejected", run.rejected.to_string());
        add("hospitals", run.hospital_ids.len().to_string());
        add("warnings", run.warnings.len().to_string());
        for (n, warning) in run.warnings.iter().enumerate() {
            add(&format!("warning_{}", n + 1), format!("{}: {}", warning.code, warning.message));
        }
        // Every fund of the policy, with or without cases.
        let policy = run.policy;
        for fund in [Fund::Employee, Fund::Resident] {
            let name = fund.as_str();
            let (cases, counted_points, paid, item_paid) = self.fund_totals(fund);
            let record = self.point_values().iter().find(|r| r.fund == fund);
            add(&format!("{name}.cases"), cases.to_string());
            add(&format!("{name}.counted_points"), format_points(counted_points, policy.points_decimals));
            if let Some(record) = record {
                add(&format!("{name}.point_value_method"), format!("{:?}", record.method).to_lowercase());
                add(&format!("{name}.point_value"), format_point_value(record.value.0, policy.point_value_decimals));
                add(&format!("{name}.point_value_exact"), record.exact.to_string());
                add(&format!("{name}.paid_at"), format!("{:?}", record.paid_at).to_lowercase());
            }
            // The basis of a year: the record's, or (a fund without cases) the policy's own.
            let basis = match (run.mode, record) {
                (Mode::Annual, Some(record)) => record.basis,
                (Mode::Annual, None) => policy.fund(fund).ok().map(|f| settlement::distributable_amount(f, Yuan::ZERO).0),
                (Mode::Monthly, _) => None,
            };
            if let Some(basis) = basis {
                add(&format!("{name}.basis"), format_yuan(basis.0));
            }
            add(&format!("{name}.paid"), format_yuan(paid.0));
            if let Some(basis) = basis {
                add(&format!("{name}.residual"), format_yuan((basis - paid).0));
            }
            add(&format!("{name}.item_paid"), format_yuan(item_paid.0));
            for (input, value) in record.map_or(&[][..], |r| r.inputs.as_slice()) {
                add(&format!("{name}.input.{input}"), format_input(policy, input, *value));
            }
        }
        let gross: Yuan = self.gross_by_statement().iter().map(|(_, g)| *g).sum();
        add("gross_total", format_yuan(gross.0));
        let item_paid: Yuan = [Fund::Employee, Fund::Resident].into_iter().map(|fund| self.fund_totals(fund).3).sum();
        add("item_paid_total", format_yuan(item_paid.0));
        add("dictionary", "dictionary.csv".to_string());
        Table { header: vec!["key".into(), "value".into()], rows }
    }
}

/// A point-value input as the summary and the API write it: points with `points_decimals`, point
/// values with `point_value_decimals`, money to the fen, anything else (ratios, weights, bands)
/// as given.
pub fn format_input(policy: &Policy, name: &str, value: Decimal) -> String {
    if name.ends_with("points") {
        format_points(value, policy.points_decimals)
    } else if name.ends_with("point_value") {
        format_point_value(value, policy.point_value_decimals)
    } else if matches!(name, "annual_budget" | "patient_paid_total" | "weighted_past_total") {
        format_yuan(value)
    } else {
        value.normalize().to_string()
    }
}

/// The data dictionary (`dictionary.csv`, written beside every settlement output): for each
/// column of each file (and each key of `summary.csv`, `{fund}` standing for `employee` or
/// `resident`), its unit and meaning, sign conventions included. A test checks that every column
/// the outputs write is here.
pub const DICTIONARY: &[(&str, &str, &str, &str)] = &[
    ("cases.csv", "case_id", "", "the case (one row per settled case, in input order)"),
    ("cases.csv", "hospital_id", "", "the hospital of the policy"),
    ("cases.csv", "fund", "", "employee (职工) or resident (居民)"),
    ("cases.csv", "month", "month 1-12", "month of discharge"),
    ("cases.csv", "status", "", "grouping status (CORE, COMPREHENSIVE, UNGROUPED...)"),
    ("cases.csv", "group", "", "the group the case was paid in"),
    ("cases.csv", "category", "", "normal, high_outlier, low_outlier, bed_day, exempt (paid by item), ungrouped"),
    ("cases.csv", "base_score", "points", "the group's score before any adjustment"),
    ("cases.csv", "cost_ratio", "ratio", "case cost ÷ the group's average cost"),
    ("cases.csv", "points", "points", "the case's points as priced"),
    ("cases.csv", "counted_points", "points", "points counted for the hospital: reviewed points when approved, 0 when exempt, negative (−k × points) when a violation is confirmed"),
    ("cases.csv", "violation", "", "confirmed violation kind and multiple k"),
    ("cases.csv", "review", "", "special-review decision (approved with its points, or rejected), or over_quota: the application was refused over the hospital's monthly quota"),
    ("cases.csv", "outlier_factor", "ratio", "outlier multiplier applied"),
    ("cases.csv", "severity_factor", "ratio", "severity (CC/MCC) coefficient applied"),
    ("cases.csv", "hospital_factor", "ratio", "hospital coefficient applied"),
    ("cases.csv", "bed_days", "days", "days paid by bed-day"),
    ("cases.csv", "total_cost", "yuan", "the case's total cost"),
    ("cases.csv", "patient_paid", "yuan", "what the patient paid"),
    ("cases.csv", "amount", "yuan", "the case's share of its statement's gross (by counted points, largest remainder: Σ = gross); negative for a penalised case"),
    ("cases.csv", "fund_amount", "yuan", "what the fund pays for the case: amount − patient_paid, or item_paid for an item-paid case; negative: the patient paid more than the points are worth"),
    ("cases.csv", "item_paid", "yuan", "paid by item (按项目) outside the point pool: total_cost − patient_paid of an exempt case, else 0.00"),
    ("statements.csv", "hospital_id", "", "one row per hospital and fund, ordered by hospital then fund (monthly and annual)"),
    ("statements.csv", "hospital_name", "", "the hospital's name in the policy"),
    ("statements.csv", "level", "", "the hospital's level"),
    ("statements.csv", "fund", "", "employee (职工) or resident (居民)"),
    ("statements.csv", "cases", "cases", "cases settled"),
    ("statements.csv", "grouped_cases", "cases", "cases with a group"),
    ("statements.csv", "exempt_cases", "cases", "cases paid by item"),
    ("statements.csv", "penalised_cases", "cases", "cases with a confirmed violation"),
    ("statements.csv", "reviewed_cases", "cases", "cases with an approved special review"),
    ("statements.csv", "points", "points", "Σ points of the cases counted normally"),
    ("statements.csv", "penalty_points", "points", "Σ k × points deducted for violations (positive)"),
    ("statements.csv", "counted_points", "points", "points − penalty_points"),
    ("statements.csv", "cmi", "ratio", "case mix index: Σ group scores ÷ the average case's score ÷ grouped cases"),
    ("statements.csv", "total_cost", "yuan", "Σ total cost of the cases paid by points"),
    ("statements.csv", "point_value", "yuan per point", "the published point value (point_value_decimals)"),
    ("statements.csv", "gross", "yuan", "what the points are paid (patients' payments included): monthly counted_points × point_value; year-end by the fund's paid_at"),
    ("statements.csv", "patient_paid", "yuan", "Σ patients' payments of the cases paid by points"),
    ("statements.csv", "item_paid", "yuan", "Σ item-paid amounts (outside the point pool; not part of gross, amount or balance)"),
    ("statements.csv", "amount", "yuan", "monthly: gross − patient_paid (negative: the hospital owes the fund)"),
    ("statements.csv", "paid_now", "yuan", "monthly: amount × the monthly payment share (the whole amount when not positive)"),
    ("statements.csv", "deposit", "yuan", "monthly: amount − paid_now, held as the quality deposit"),
    ("statements.csv", "fund_due", "yuan", "annual: gross − patient_paid"),
    ("statements.csv", "band_adjustment", "yuan", "annual: positive adds overspend shared, negative recovers surplus beyond what is kept"),
    ("statements.csv", "deposit_held", "yuan", "annual: Σ monthly deposits"),
    ("statements.csv", "assessment", "ratio", "annual: the hospital's assessment coefficient"),
    ("statements.csv", "deposit_forfeited", "yuan", "annual: deposit_held × (1 − assessment)"),
    ("statements.csv", "final_due", "yuan", "annual: fund_due + band_adjustment − deposit_forfeited"),
    ("statements.csv", "paid_monthly", "yuan", "annual: what the monthly pre-settlements paid"),
    ("statements.csv", "balance", "yuan", "annual: final_due − paid_monthly; positive: the fund pays the hospital, negative: the hospital pays back"),
    ("rejects.csv", "record", "", "1-based record number in the input (header not counted)"),
    ("rejects.csv", "case_id", "", "the case id as read (may be empty)"),
    ("rejects.csv", "field", "", "the field refused"),
    ("rejects.csv", "value", "", "its value"),
    ("rejects.csv", "reason", "", "why"),
    ("summary.csv", "mode", "", "monthly or annual"),
    ("summary.csv", "period", "", "YYYY-MM or YYYY"),
    ("summary.csv", "region", "", "the policy's region"),
    ("summary.csv", "policy_version", "", "the policy's version"),
    ("summary.csv", "scheme", "", "dip or drg"),
    ("summary.csv", "tables_fingerprint", "", "the table set's fingerprint"),
    ("summary.csv", "submitted", "records", "records read = accepted + rejected"),
    ("summary.csv", "accepted", "records", "cases settled"),
    ("summary.csv", "rejected", "records", "records in rejects.csv"),
    ("summary.csv", "hospitals", "hospitals", "hospitals of the policy"),
    ("summary.csv", "warnings", "warnings", "warnings of the run (listed in warnings.csv and below)"),
    ("summary.csv", "warning_{n}", "", "a warning: its code and message"),
    ("warnings.csv", "code", "", "a stable warning code (ANNOTATION_CASE_UNKNOWN: a violation or review names a case not among the run's records; SPECIAL_REVIEW_OVER_QUOTA: an application refused over the hospital's monthly quota)"),
    ("warnings.csv", "source", "", "violation or review"),
    ("warnings.csv", "case_id", "", "the case the annotation names"),
    ("warnings.csv", "hospital_id", "", "the hospital it names (empty: none)"),
    ("warnings.csv", "message", "", "what happened"),
    ("summary.csv", "{fund}.cases", "cases", "cases settled in the fund (every fund is listed, 0 when none)"),
    ("summary.csv", "{fund}.counted_points", "points", "Σ counted points of the fund"),
    ("summary.csv", "{fund}.point_value_method", "", "budget, settlement, fixed, floating or balanced (monthly: budget)"),
    ("summary.csv", "{fund}.point_value", "yuan per point", "the published point value"),
    ("summary.csv", "{fund}.point_value_exact", "yuan per point", "the exact (unrounded) point value"),
    ("summary.csv", "{fund}.paid_at", "", "published or exact: the value gross is paid at"),
    ("summary.csv", "{fund}.basis", "yuan", "annual: the year's budget basis (budget ÷ reimbursement ratio, or budget + patients' payments)"),
    ("summary.csv", "{fund}.paid", "yuan", "Σ gross of the fund's statements"),
    ("summary.csv", "{fund}.residual", "yuan", "annual: basis − paid; negative: paid beyond the basis (an overrun)"),
    ("summary.csv", "{fund}.item_paid", "yuan", "Σ item-paid amounts of the fund"),
    ("summary.csv", "{fund}.input.{name}", "as named", "an input of the point value: points, yuan or yuan per point by its name, ratios as given"),
    ("summary.csv", "gross_total", "yuan", "Σ gross of all statements"),
    ("summary.csv", "item_paid_total", "yuan", "Σ item-paid amounts of all statements"),
    ("summary.csv", "dictionary", "", "this file"),
];

/// The data dictionary as a table (`dictionary.csv`).
pub fn dictionary_table() -> Table {
    Table {
        header: ["file", "column", "unit", "meaning"].map(String::from).to_vec(),
        rows: DICTIONARY
            .iter()
            .map(|(file, column, unit, meaning)| [file, column, unit, meaning].map(|s| s.to_string()).to_vec())
            .collect(),
    }
}

/// The rejects as a table (`rejects.csv`).
pub fn rejects_table(rejected: &[Rejected]) -> Table {
    Table {
        header: ["record", "case_id", "field", "value", "reason"].map(String::from).to_vec(),
        rows: rejected
            .iter()
            .map(|r| vec![r.record.to_string(), r.case_id.clone(), r.field.clone(), r.value.clone(), r.reason.clone()])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_strictly() {
        assert_eq!(Period::parse(Mode::Monthly, "2026-03").unwrap(), Period { year: 2026, month: Some(3) });
        assert_eq!(Period::parse(Mode::Annual, "2026").unwrap(), Period { year: 2026, month: None });
        for bad in ["2026-13", "2026-00", "2026-3", "abcd", "2026", "+2026-01", "2026-01-01", "", "20260-01", "2026-1a"] {
            let error = Period::parse(Mode::Monthly, bad).unwrap_err();
            assert_eq!(error.code(), "SETTLE_PERIOD_INVALID", "{bad}");
        }
        for bad in ["abcd", "2026-03", "+202", "02026", "", "-202"] {
            assert!(Period::parse(Mode::Annual, bad).is_err(), "{bad}");
        }
        assert_eq!(Period::parse(Mode::Monthly, "2026-03").unwrap().to_string(), "2026-03");
    }

    #[test]
    fn annotation_records_are_checked_by_the_engine() {
        let mut annotations = Annotations::default();
        assert_eq!(annotations.add_review_record("", None, "approved", "1").unwrap_err().0, "case_id");
        assert_eq!(annotations.add_review_record("C1", None, "approved", "x").unwrap_err().0, "reviewed_points");
        assert!(annotations.add_review_record("C1", None, "approved", "10").is_ok());
        assert!(annotations.add_review_record("C1", None, "approved", "10").unwrap_err().1.contains("listed twice"));
        assert!(annotations.add_review_record("C1", Some("H2"), "approved", "10").is_ok(), "another hospital's case C1");
    }

    #[test]
    fn reviews_parse_like_every_door_gives_them() {
        assert_eq!(Review::parse(None, "approved", "5000").unwrap().reviewed_points, Some(Decimal::from(5000)));
        assert_eq!(Review::parse(None, "approved", "").unwrap_err().0, "reviewed_points");
        assert_eq!(Review::parse(None, "approved", "abc").unwrap_err().0, "reviewed_points");
        assert_eq!(Review::parse(None, "approved", "-1").unwrap_err().0, "reviewed_points");
        assert_eq!(Review::parse(None, "maybe", "1").unwrap_err().0, "decision");
        assert_eq!(Review::parse(None, "rejected", "").unwrap().reviewed_points, None);
    }

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

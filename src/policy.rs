//! Region policy (地区政策): every threshold, coefficient, multiple and window a pooling region
//! tunes, as one versioned TOML file per region and year. Data, never code.
//!
//! Loading checks the file completely: an unknown key, a negative coefficient or crossed
//! thresholds is an error that names the key. Numbers may be written as TOML numbers or as
//! strings; both become exact decimals (a number is read through its shortest decimal form, so
//! `0.9` is exactly 0.9). See `grouper-tables/demo-dip/policy.toml` for a commented example.
//!
//! The regional DIP keys (conditions, `[dip_grouping]`, per-fund coefficients, hospital overrides)
//! are in `src/policy/extensions.rs`; `policies/dip-regions/` holds eight cities' policies written with them.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::str::FromStr;

mod extensions;
pub mod lint;
pub use extensions::{
    age_within, default_order, default_rank, CandidateScope, CaseFacts, ClassType, Coefficient, ComplicationTest, Condition,
    ConservativeMax, DipGrouping, HospitalOverride, Insured, InsuredScope, OrderClass, RankKey, TreatmentFrom,
};

/// A policy that could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// Not valid TOML, an unknown key, or a value of the wrong type (toml names the key and line).
    #[error("policy file: {0}")]
    Syntax(String),
    /// A value out of its allowed range, or inconsistent with another.
    #[error("policy key {key}: {message}")]
    Invalid { key: String, message: String },
}

impl PolicyError {
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Syntax(_) => "POLICY_SYNTAX",
            PolicyError::Invalid { .. } => "POLICY_INVALID",
        }
    }
}

/// Decimal from a TOML number or string.
fn decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Integer(i64),
        Float(f64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Integer(i) => Ok(Decimal::from(i)),
        // `{}` on f64 prints the shortest text that reads back as the same float: what was written.
        Raw::Float(f) => Decimal::from_str(&format!("{f}")).map_err(serde::de::Error::custom),
        Raw::Text(t) => Decimal::from_str(t.trim()).map_err(|_| serde::de::Error::custom(format!("{t:?} is not a decimal number"))),
    }
}

fn optional_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    decimal(deserializer).map(Some)
}

fn decimal_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "decimal")] Decimal);
    let map = BTreeMap::<String, Wrapped>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, Wrapped(v))| (k, v)).collect())
}

/// Which payment scheme the region runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// 按病种分值付费.
    Dip,
    /// 按疾病诊断相关分组付费.
    Drg,
}

/// Whether a case exactly on an outlier threshold is an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Boundary {
    /// r > high, r < low (the national default).
    Strict,
    /// r ≥ high, r ≤ low.
    Inclusive,
}

/// How a high-cost outlier (费用超高病例) is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HighOutlierFormula {
    /// ((r − high_ratio) × high_excess_factor + 1) × score. With factor 1 and high 2 this is the
    /// national ((r − 2) + 1) × score.
    ExcessPlusOne,
    /// r × score: paid in full proportion to cost.
    Proportional,
    /// ((r − high_ratio) × high_excess_factor + H) × score: the hospital coefficient H is added,
    /// not multiplied.
    ExcessPlusHospital,
}

/// How a low-cost outlier (费用超低病例) is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LowOutlierFormula {
    /// r × score (the national default).
    Proportional,
    /// The full score (no reduction).
    Full,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outliers {
    #[serde(deserialize_with = "decimal")]
    pub low_ratio: Decimal,
    #[serde(deserialize_with = "decimal")]
    pub high_ratio: Decimal,
    pub boundary: Boundary,
    pub high_formula: HighOutlierFormula,
    #[serde(default = "one", deserialize_with = "decimal")]
    pub high_excess_factor: Decimal,
    pub low_formula: LowOutlierFormula,
    /// r above this (strictly) sends the case to special review (特病单议).
    #[serde(default, deserialize_with = "optional_decimal")]
    pub special_review_ratio: Option<Decimal>,
    /// Overrides `boundary` for the low-outlier test (`None`: `boundary`).
    #[serde(default)]
    pub low_boundary: Option<Boundary>,
    /// Overrides `boundary` for the high-outlier test (`None`: `boundary`).
    #[serde(default)]
    pub high_boundary: Option<Boundary>,
    /// `false`: low and high outliers are not multiplied by the hospital coefficient.
    #[serde(default = "yes")]
    pub apply_hospital_coefficient: bool,
    /// How a special-review case is priced until reviewed.
    #[serde(default)]
    pub special_review_pricing: SpecialReviewPricing,
    /// Multiplier of groups priced by cost ratio (catalog `pricing = cost_ratio`).
    #[serde(default = "one", deserialize_with = "decimal")]
    pub cost_ratio_multiplier: Decimal,
}

impl Outliers {
    /// Whether `ratio` is a low outlier (`low_boundary`, else `boundary`).
    pub fn is_low(&self, ratio: Decimal) -> bool {
        match self.low_boundary.unwrap_or(self.boundary) {
            Boundary::Strict => ratio < self.low_ratio,
            Boundary::Inclusive => ratio <= self.low_ratio,
        }
    }

    /// Whether `ratio` is a high outlier (`high_boundary`, else `boundary`).
    pub fn is_high(&self, ratio: Decimal) -> bool {
        match self.high_boundary.unwrap_or(self.boundary) {
            Boundary::Strict => ratio > self.high_ratio,
            Boundary::Inclusive => ratio >= self.high_ratio,
        }
    }
}

/// How a case above `special_review_ratio` is priced meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialReviewPricing {
    /// As a high outlier (the default).
    #[default]
    HighOutlier,
    /// As a normal case: score × severity × hospital coefficient.
    Normal,
}

fn yes() -> bool {
    true
}

fn one() -> Decimal {
    Decimal::ONE
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeBand {
    #[serde(default)]
    pub min_age: Option<i64>,
    #[serde(default)]
    pub max_age: Option<i64>,
    /// Age in days, for a case whose `age` is 0 or empty.
    #[serde(default)]
    pub min_age_days: Option<i64>,
    #[serde(default)]
    pub max_age_days: Option<i64>,
    #[serde(deserialize_with = "decimal")]
    pub coefficient: Decimal,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeathAdjustment {
    /// A death (离院方式 5) with los ≤ this is a short-stay death.
    pub short_stay_max_los: i64,
    #[serde(deserialize_with = "decimal")]
    pub short_stay_coefficient: Decimal,
    #[serde(deserialize_with = "decimal")]
    pub long_stay_coefficient: Decimal,
}

/// A coefficient that applies when a diagnosis starts with one of the prefixes or a procedure is
/// one of the codes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeAdjustment {
    #[serde(default)]
    pub diagnosis_prefixes: Vec<String>,
    #[serde(default)]
    pub procedure_codes: Vec<String>,
    #[serde(deserialize_with = "decimal")]
    pub coefficient: Decimal,
}

/// Severity adjustments: of all that apply to a case, the largest coefficient wins.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Severity {
    #[serde(default, deserialize_with = "optional_decimal")]
    pub cc: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    pub mcc: Option<Decimal>,
    #[serde(default)]
    pub death: Option<DeathAdjustment>,
    #[serde(default)]
    pub age_bands: Vec<AgeBand>,
    #[serde(default)]
    pub tumour_metastasis: Option<CodeAdjustment>,
    #[serde(default)]
    pub chemotherapy: Option<CodeAdjustment>,
    #[serde(default)]
    pub radiotherapy: Option<CodeAdjustment>,
    /// The mean a case's cost is compared with is scaled by its severity factor (or replaced by
    /// the winning `adjustments.csv` row's `mean_cost`).
    #[serde(default)]
    pub adjust_mean_cost: bool,
}

/// Long stays paid by bed-day (床日付费): psychiatric, rehabilitation, hospice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedDayGroup {
    pub name: String,
    #[serde(default)]
    pub diagnosis_prefixes: Vec<String>,
    #[serde(default)]
    pub departments: Vec<String>,
    /// Only stays of at least this many days are paid by bed-day.
    #[serde(default)]
    pub min_los: i64,
    #[serde(deserialize_with = "decimal")]
    pub points_per_day: Decimal,
    /// Days beyond this are not paid.
    pub max_days: i64,
}

/// Cases paid by item (按项目付费) instead of by points.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub name: String,
    #[serde(default)]
    pub diagnosis_prefixes: Vec<String>,
    #[serde(default)]
    pub procedure_codes: Vec<String>,
    /// Stays of at least this many days are exempt (e.g. 60-day stays).
    #[serde(default)]
    pub min_los: Option<i64>,
    /// Insured categories (case column `benefit`) paid by item.
    #[serde(default)]
    pub benefits: Vec<String>,
}

/// A hospital's level and, optionally, its own coefficient.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hospital {
    pub level: String,
    #[serde(default)]
    pub coefficient: Option<Coefficient>,
    #[serde(default)]
    pub name: Option<String>,
    /// Annual assessment coefficient (考核系数), 0–1: the share of the quality deposit returned.
    #[serde(default, deserialize_with = "optional_decimal")]
    pub assessment: Option<Decimal>,
}

/// How a fund's point value is set (点值确定方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointValueMethod {
    /// Budget point value (预算点值), set at year start.
    Budget,
    /// Settlement point value (结算点值): the year's distributable amount ÷ the region's points.
    Settlement,
    /// Fixed (固定点值).
    Fixed,
    /// Floating (浮动点值): the settlement value kept within a band around the budget value.
    Floating,
    /// Balanced: a weighted mix of the fixed and the settlement value.
    Balanced,
}

/// What the year's distributable amount is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementBasis {
    /// Fund budget ÷ the reimbursement ratio (统筹基金 ÷ 报销比例).
    FundOverRatio,
    /// Fund budget + what patients paid themselves.
    FundPlusPatient,
}

/// One fund's point value settings (职工 / 居民 are priced separately).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundPolicy {
    /// Method of the year-end point value.
    pub year_end_method: PointValueMethod,
    /// The fund's yearly budget for DIP/DRG inpatient cases, yuan.
    #[serde(deserialize_with = "decimal")]
    pub annual_budget: Decimal,
    pub settlement_basis: SettlementBasis,
    #[serde(default, deserialize_with = "optional_decimal")]
    pub reimbursement_ratio: Option<Decimal>,
    /// Budget point value used by monthly pre-settlement. Given directly, or derived from
    /// `budget_history` and `expected_points`.
    #[serde(default, deserialize_with = "optional_decimal")]
    pub budget_point_value: Option<Decimal>,
    /// Past years' totals (yuan) and weights for the budget point value.
    #[serde(default)]
    pub budget_history: Vec<WeightedAmount>,
    #[serde(default, deserialize_with = "optional_decimal")]
    pub expected_points: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    pub fixed_point_value: Option<Decimal>,
    /// Floating: the settlement value is kept within budget value × (1 ± band).
    #[serde(default, deserialize_with = "optional_decimal")]
    pub floating_band: Option<Decimal>,
    /// Balanced: weight of the fixed value (the rest is the settlement value).
    #[serde(default, deserialize_with = "optional_decimal")]
    pub balanced_fixed_weight: Option<Decimal>,
    /// Monthly pre-settlement pays this share; the rest is held as a quality deposit (质量保证金).
    #[serde(deserialize_with = "decimal")]
    pub monthly_payment_share: Decimal,
    /// Year-end: whether gross is paid at the published (rounded) point value or the exact one.
    #[serde(default)]
    pub paid_at: PaidAt,
}

/// Which year-end point value a statement's gross is paid at (`paid_at` of a fund).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PaidAt {
    /// The exact (unrounded) value: the fund pays what the exact value buys (under the settlement
    /// method, the whole basis), split over the hospitals by largest remainder in fen.
    #[default]
    Exact,
    /// The published value (rounded to `point_value_decimals`): each statement's gross is its
    /// counted points × the published value, to the fen, so anyone can recompute it from the
    /// statement; the residual against the basis is shown.
    Published,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedAmount {
    #[serde(deserialize_with = "decimal")]
    pub amount: Decimal,
    #[serde(deserialize_with = "decimal")]
    pub weight: Decimal,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funds {
    pub employee: FundPolicy,
    pub resident: FundPolicy,
}

/// Deductions for confirmed violations: the case scores zero and k × its points are deducted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Penalties {
    #[serde(default = "three", deserialize_with = "decimal")]
    pub default_multiple: Decimal,
    /// k per violation kind (split_admission, upcoding, diagnosis_upgrade, bed_hanging,
    /// low_standard_admission, cost_shifting, …).
    #[serde(default, deserialize_with = "decimal_map")]
    pub multiples: BTreeMap<String, Decimal>,
}

impl Default for Penalties {
    fn default() -> Penalties {
        Penalties { default_multiple: three(), multiples: BTreeMap::new() }
    }
}

fn three() -> Decimal {
    Decimal::from(3)
}

impl Penalties {
    pub fn multiple(&self, kind: &str) -> Decimal {
        self.multiples.get(kind).copied().unwrap_or(self.default_multiple)
    }
}

/// Special review (特病单议) quota: applications per hospital at most this share of its cases.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialReview {
    #[serde(deserialize_with = "decimal")]
    pub quota: Decimal,
}

/// Year-end surplus retention and overspend sharing (结余留用、超支分担).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearEnd {
    /// Share of a surplus (payment above actual cost) the hospital keeps.
    #[serde(deserialize_with = "decimal")]
    pub surplus_keep_share: Decimal,
    /// The kept surplus is at most this share of the payment.
    #[serde(deserialize_with = "decimal")]
    pub surplus_cap: Decimal,
    /// Overspend (actual cost above payment) up to this share of the payment is shared.
    #[serde(deserialize_with = "decimal")]
    pub overspend_band: Decimal,
    /// Share of the overspend within the band the fund bears.
    #[serde(deserialize_with = "decimal")]
    pub overspend_fund_share: Decimal,
}

/// Audit thresholds (稽核规则). Flags are suggestions for a human auditor; only confirmed
/// violations reach settlement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Split admission: readmission within this many days of discharge (default 15).
    #[serde(default = "fifteen")]
    pub readmission_window_days: i64,
    /// Planned treatment (chemotherapy, radiotherapy, dialysis…): group families (ADRG or DIP
    /// subcategory) and principal-diagnosis prefixes excluded from split-admission flags.
    #[serde(default)]
    pub planned_family_prefixes: Vec<String>,
    #[serde(default)]
    pub planned_diagnosis_prefixes: Vec<String>,
    /// Upcoding: a complication-lifted case whose cost is at most this share of its group's mean…
    #[serde(default = "upcoding_ratio", deserialize_with = "decimal")]
    pub upcoding_max_cost_ratio: Decimal,
    /// …and at most this multiple of the lower group's mean.
    #[serde(default = "upcoding_baseline", deserialize_with = "decimal")]
    pub upcoding_max_baseline_ratio: Decimal,
    /// Hospital pattern: a hospital's top-severity share in a family at least this multiple of
    /// the region's, over at least `pattern_min_cases` cases.
    #[serde(default = "pattern_ratio", deserialize_with = "decimal")]
    pub pattern_share_ratio: Decimal,
    #[serde(default = "pattern_cases")]
    pub pattern_min_cases: u64,
    /// Low-standard admission: families treatable as outpatients (ADRG or DIP subcategory prefixes)…
    #[serde(default)]
    pub outpatient_family_prefixes: Vec<String>,
    /// …with a stay of at most this many days…
    #[serde(default = "two")]
    pub low_standard_max_los: i64,
    /// …and a cost at most this share of the group mean.
    #[serde(default = "low_ratio", deserialize_with = "decimal")]
    pub low_standard_max_cost_ratio: Decimal,
    /// Bed-hanging: a stay at least this multiple of the group's mean stay…
    #[serde(default = "bed_los", deserialize_with = "decimal")]
    pub bed_hanging_min_los_ratio: Decimal,
    /// …and at least this many days…
    #[serde(default = "ten")]
    pub bed_hanging_min_los: i64,
    /// …with a daily cost at most this share of the group's mean daily cost.
    #[serde(default = "bed_daily", deserialize_with = "decimal")]
    pub bed_hanging_max_daily_cost_ratio: Decimal,
}

fn fifteen() -> i64 {
    15
}
fn two() -> i64 {
    2
}
fn ten() -> i64 {
    10
}
fn upcoding_ratio() -> Decimal {
    Decimal::new(6, 1)
}
fn upcoding_baseline() -> Decimal {
    Decimal::new(12, 1)
}
fn pattern_ratio() -> Decimal {
    Decimal::new(15, 1)
}
fn pattern_cases() -> u64 {
    30
}
fn low_ratio() -> Decimal {
    Decimal::new(3, 1)
}
fn bed_los() -> Decimal {
    Decimal::new(25, 1)
}
fn bed_daily() -> Decimal {
    Decimal::new(3, 1)
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            readmission_window_days: fifteen(),
            planned_family_prefixes: Vec::new(),
            planned_diagnosis_prefixes: Vec::new(),
            upcoding_max_cost_ratio: upcoding_ratio(),
            upcoding_max_baseline_ratio: upcoding_baseline(),
            pattern_share_ratio: pattern_ratio(),
            pattern_min_cases: pattern_cases(),
            outpatient_family_prefixes: Vec::new(),
            low_standard_max_los: two(),
            low_standard_max_cost_ratio: low_ratio(),
            bed_hanging_min_los_ratio: bed_los(),
            bed_hanging_min_los: ten(),
            bed_hanging_max_daily_cost_ratio: bed_daily(),
        }
    }
}

/// One region's policy for one year.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub region: String,
    pub year: i32,
    pub version: String,
    pub scheme: Scheme,
    /// DIP: the scale scores are expressed on (1000 = a score of 1000 is the average case).
    #[serde(default = "default_scale", deserialize_with = "decimal")]
    pub score_scale: Decimal,
    /// DRG: points per unit of relative weight (RW × 100 by default).
    #[serde(default = "default_points_per_rw", deserialize_with = "decimal")]
    pub drg_points_per_rw: Decimal,
    /// DRG: the relative-weight file (`dipdrg catalog build --scheme drg`), relative to the
    /// policy file.
    #[serde(default)]
    pub drg_weights: Option<String>,
    /// Case points are rounded half-up to this many decimals.
    #[serde(default = "default_points_decimals")]
    pub points_decimals: u32,
    /// Point values (yuan per point) are rounded half-up to this many decimals.
    #[serde(default = "default_point_value_decimals")]
    pub point_value_decimals: u32,
    /// Coefficient per hospital level (医院等级系数).
    pub level_coefficients: BTreeMap<String, Coefficient>,
    /// Coefficient for grassroots groups (基层病种), the same at every level.
    #[serde(default, deserialize_with = "optional_decimal")]
    pub grassroots_coefficient: Option<Decimal>,
    #[serde(default)]
    pub hospitals: BTreeMap<String, Hospital>,
    pub outliers: Outliers,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub bed_day: Vec<BedDayGroup>,
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
    /// Point values per fund (needed to settle; grouping and pricing do without).
    #[serde(default)]
    pub funds: Option<Funds>,
    #[serde(default)]
    pub penalties: Penalties,
    #[serde(default)]
    pub special_review: Option<SpecialReview>,
    #[serde(default)]
    pub year_end: Option<YearEnd>,
    #[serde(default)]
    pub audit: Audit,
    /// Named case conditions that a DIP catalog's `adjustments.csv` refers to.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// How a DIP case's candidate groups are found and one is chosen (DIP only).
    #[serde(default)]
    pub dip_grouping: Option<DipGrouping>,
    /// Coefficient and point-value overrides per hospital, month and insured region.
    #[serde(default)]
    pub hospital_overrides: Vec<HospitalOverride>,
    #[serde(default)]
    pub insured: Option<Insured>,
    /// Hospital id → (level, coefficient), resolved once at load for the hot path.
    #[serde(skip)]
    resolved_hospitals: rustc_hash::FxHashMap<String, (String, Option<Coefficient>)>,
}

/// The most `[[hospital_overrides]]` a policy may list (a settled case names its override in one
/// byte).
pub const MAX_HOSPITAL_OVERRIDES: usize = 254;

fn default_scale() -> Decimal {
    Decimal::from(1000)
}

fn default_points_per_rw() -> Decimal {
    Decimal::from(100)
}

fn default_points_decimals() -> u32 {
    2
}

fn default_point_value_decimals() -> u32 {
    4
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid { key: key.into(), message: message.into() }
}

fn positive(key: &str, value: Decimal) -> Result<(), PolicyError> {
    if value <= Decimal::ZERO {
        return Err(invalid(key, format!("must be positive, found {value}")));
    }
    Ok(())
}

/// A share: between 0 and 1.
fn share(key: &str, value: Decimal) -> Result<(), PolicyError> {
    if value < Decimal::ZERO || value > Decimal::ONE {
        return Err(invalid(key, format!("must be between 0 and 1, found {value}")));
    }
    Ok(())
}

fn validate_fund(key: &str, fund: &FundPolicy) -> Result<(), PolicyError> {
    if fund.annual_budget < Decimal::ZERO {
        return Err(invalid(format!("{key}.annual_budget"), format!("must not be negative, found {}", fund.annual_budget)));
    }
    share(&format!("{key}.monthly_payment_share"), fund.monthly_payment_share)?;
    if let Some(ratio) = fund.reimbursement_ratio {
        if ratio <= Decimal::ZERO || ratio > Decimal::ONE {
            return Err(invalid(format!("{key}.reimbursement_ratio"), format!("must be above 0 and at most 1, found {ratio}")));
        }
    }
    if fund.settlement_basis == SettlementBasis::FundOverRatio && fund.reimbursement_ratio.is_none() {
        return Err(invalid(format!("{key}.reimbursement_ratio"), "settlement_basis fund_over_ratio needs it"));
    }
    for (name, value) in [
        ("budget_point_value", fund.budget_point_value),
        ("fixed_point_value", fund.fixed_point_value),
        ("expected_points", fund.expected_points),
    ] {
        if let Some(v) = value {
            positive(&format!("{key}.{name}"), v)?;
        }
    }
    if fund.budget_point_value.is_none() && (fund.budget_history.is_empty() || fund.expected_points.is_none()) {
        return Err(invalid(format!("{key}.budget_point_value"), "give it, or budget_history with expected_points"));
    }
    for (i, past) in fund.budget_history.iter().enumerate() {
        if past.amount < Decimal::ZERO || past.weight < Decimal::ZERO {
            return Err(invalid(format!("{key}.budget_history[{i}]"), "amount and weight must not be negative"));
        }
    }
    let needs = |name: &str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(invalid(format!("{key}.{name}"), format!("year_end_method {:?} needs it", fund.year_end_method)))
        }
    };
    match fund.year_end_method {
        PointValueMethod::Fixed => needs("fixed_point_value", fund.fixed_point_value.is_some())?,
        PointValueMethod::Floating => needs("floating_band", fund.floating_band.is_some())?,
        PointValueMethod::Balanced => {
            needs("fixed_point_value", fund.fixed_point_value.is_some())?;
            needs("balanced_fixed_weight", fund.balanced_fixed_weight.is_some())?;
        }
        PointValueMethod::Budget | PointValueMethod::Settlement => {}
    }
    if let Some(band) = fund.floating_band {
        share(&format!("{key}.floating_band"), band)?;
    }
    if let Some(weight) = fund.balanced_fixed_weight {
        share(&format!("{key}.balanced_fixed_weight"), weight)?;
    }
    Ok(())
}

impl Policy {
    /// Parses and validates a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string().trim_end().to_string()))?;
        policy.validate()?;
        policy.resolve();
        Ok(policy)
    }

    /// Checks ranges and consistency; every error names its key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.region.trim().is_empty() {
            return Err(invalid("region", "must not be empty"));
        }
        if !(2000..=2100).contains(&self.year) {
            return Err(invalid("year", format!("{} is not a plausible policy year", self.year)));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("version", "must not be empty"));
        }
        if self.scheme == Scheme::Drg && self.drg_weights.is_none() {
            return Err(invalid("drg_weights", "a DRG policy must name its relative-weight file"));
        }
        positive("score_scale", self.score_scale)?;
        positive("drg_points_per_rw", self.drg_points_per_rw)?;
        if self.points_decimals > 8 {
            return Err(invalid("points_decimals", "must be between 0 and 8"));
        }
        if self.point_value_decimals > 8 {
            return Err(invalid("point_value_decimals", "must be between 0 and 8"));
        }
        if self.level_coefficients.is_empty() {
            return Err(invalid("level_coefficients", "must list at least one hospital level"));
        }
        for (level, coefficient) in &self.level_coefficients {
            coefficient.check_positive(&format!("level_coefficients.{level}"))?;
        }
        if let Some(c) = self.grassroots_coefficient {
            positive("grassroots_coefficient", c)?;
        }
        for (id, hospital) in &self.hospitals {
            if !self.level_coefficients.contains_key(&hospital.level) {
                return Err(invalid(
                    format!("hospitals.{id}.level"),
                    format!("level {:?} has no entry in level_coefficients", hospital.level),
                ));
            }
            if let Some(c) = hospital.coefficient {
                c.check_positive(&format!("hospitals.{id}.coefficient"))?;
            }
        }
        let o = &self.outliers;
        positive("outliers.low_ratio", o.low_ratio)?;
        positive("outliers.high_ratio", o.high_ratio)?;
        if o.low_ratio >= o.high_ratio {
            return Err(invalid("outliers.low_ratio", format!("{} must be below outliers.high_ratio {}", o.low_ratio, o.high_ratio)));
        }
        if o.low_ratio > Decimal::ONE || o.high_ratio < Decimal::ONE {
            return Err(invalid("outliers", "low_ratio must be at most 1 and high_ratio at least 1"));
        }
        positive("outliers.high_excess_factor", o.high_excess_factor)?;
        positive("outliers.cost_ratio_multiplier", o.cost_ratio_multiplier)?;
        if let Some(extreme) = o.special_review_ratio {
            if extreme <= o.high_ratio {
                return Err(invalid(
                    "outliers.special_review_ratio",
                    format!("{extreme} must be above outliers.high_ratio {}", o.high_ratio),
                ));
            }
        }
        let s = &self.severity;
        for (key, value) in [("severity.cc", s.cc), ("severity.mcc", s.mcc)] {
            if let Some(v) = value {
                positive(key, v)?;
            }
        }
        if let (Some(cc), Some(mcc)) = (s.cc, s.mcc) {
            if mcc < cc {
                return Err(invalid("severity.mcc", format!("{mcc} must not be below severity.cc {cc}")));
            }
        }
        if let Some(death) = &s.death {
            if death.short_stay_max_los < 0 {
                return Err(invalid("severity.death.short_stay_max_los", "must not be negative"));
            }
            positive("severity.death.short_stay_coefficient", death.short_stay_coefficient)?;
            positive("severity.death.long_stay_coefficient", death.long_stay_coefficient)?;
        }
        for (i, band) in s.age_bands.iter().enumerate() {
            let key = format!("severity.age_bands[{i}]");
            positive(&format!("{key}.coefficient"), band.coefficient)?;
            if band.min_age.is_none() && band.max_age.is_none() && band.min_age_days.is_none() && band.max_age_days.is_none() {
                return Err(invalid(key, "needs min_age, max_age, min_age_days or max_age_days"));
            }
            if let (Some(min), Some(max)) = (band.min_age_days, band.max_age_days) {
                if min > max {
                    return Err(invalid(format!("{key}.min_age_days"), format!("{min} is above max_age_days {max}")));
                }
            }
            if band.min_age_days.is_some_and(|a| a < 0) || band.max_age_days.is_some_and(|a| a < 0) {
                return Err(invalid(key, "ages must not be negative"));
            }
            if let (Some(min), Some(max)) = (band.min_age, band.max_age) {
                if min > max {
                    return Err(invalid(format!("{key}.min_age"), format!("{min} is above max_age {max}")));
                }
            }
            if band.min_age.is_some_and(|a| a < 0) || band.max_age.is_some_and(|a| a < 0) {
                return Err(invalid(key, "ages must not be negative"));
            }
        }
        for (name, adjustment) in
            [("tumour_metastasis", &s.tumour_metastasis), ("chemotherapy", &s.chemotherapy), ("radiotherapy", &s.radiotherapy)]
        {
            if let Some(a) = adjustment {
                let key = format!("severity.{name}");
                positive(&format!("{key}.coefficient"), a.coefficient)?;
                if a.diagnosis_prefixes.is_empty() && a.procedure_codes.is_empty() {
                    return Err(invalid(key, "needs diagnosis_prefixes or procedure_codes"));
                }
            }
        }
        for (i, group) in self.bed_day.iter().enumerate() {
            let key = format!("bed_day[{i}]");
            positive(&format!("{key}.points_per_day"), group.points_per_day)?;
            if group.max_days <= 0 {
                return Err(invalid(format!("{key}.max_days"), "must be positive"));
            }
            if group.min_los < 0 {
                return Err(invalid(format!("{key}.min_los"), "must not be negative"));
            }
            if group.diagnosis_prefixes.is_empty() && group.departments.is_empty() {
                return Err(invalid(key, "needs diagnosis_prefixes or departments"));
            }
        }
        if let Some(funds) = &self.funds {
            for (name, fund) in [("employee", &funds.employee), ("resident", &funds.resident)] {
                validate_fund(&format!("funds.{name}"), fund)?;
            }
        }
        positive("penalties.default_multiple", self.penalties.default_multiple)?;
        for (kind, k) in &self.penalties.multiples {
            positive(&format!("penalties.multiples.{kind}"), *k)?;
        }
        if let Some(review) = &self.special_review {
            share("special_review.quota", review.quota)?;
        }
        if let Some(y) = &self.year_end {
            share("year_end.surplus_keep_share", y.surplus_keep_share)?;
            share("year_end.surplus_cap", y.surplus_cap)?;
            share("year_end.overspend_band", y.overspend_band)?;
            share("year_end.overspend_fund_share", y.overspend_fund_share)?;
        }
        for (id, hospital) in &self.hospitals {
            if let Some(a) = hospital.assessment {
                share(&format!("hospitals.{id}.assessment"), a)?;
            }
        }
        let a = &self.audit;
        if a.readmission_window_days < 0 {
            return Err(invalid("audit.readmission_window_days", "must not be negative"));
        }
        for (key, value) in [
            ("audit.upcoding_max_cost_ratio", a.upcoding_max_cost_ratio),
            ("audit.upcoding_max_baseline_ratio", a.upcoding_max_baseline_ratio),
            ("audit.pattern_share_ratio", a.pattern_share_ratio),
            ("audit.low_standard_max_cost_ratio", a.low_standard_max_cost_ratio),
            ("audit.bed_hanging_min_los_ratio", a.bed_hanging_min_los_ratio),
            ("audit.bed_hanging_max_daily_cost_ratio", a.bed_hanging_max_daily_cost_ratio),
        ] {
            positive(key, value)?;
        }
        if a.low_standard_max_los < 0 || a.bed_hanging_min_los < 0 {
            return Err(invalid("audit", "stay limits must not be negative"));
        }
        for (i, exemption) in self.exemptions.iter().enumerate() {
            let key = format!("exemptions[{i}]");
            if exemption.diagnosis_prefixes.is_empty()
                && exemption.procedure_codes.is_empty()
                && exemption.min_los.is_none()
                && exemption.benefits.is_empty()
            {
                return Err(invalid(key, "needs diagnosis_prefixes, procedure_codes, min_los or benefits"));
            }
            if exemption.min_los.is_some_and(|l| l < 0) {
                return Err(invalid(format!("{key}.min_los"), "must not be negative"));
            }
        }
        self.validate_extensions()
    }

    /// The checks of the regional extension keys (conditions, `[dip_grouping]`, overrides).
    fn validate_extensions(&self) -> Result<(), PolicyError> {
        for (i, condition) in self.conditions.iter().enumerate() {
            let key = format!("conditions[{i}]");
            condition.validate(&key)?;
            if self.conditions[..i].iter().any(|c| c.name == condition.name) {
                return Err(invalid(format!("{key}.name"), format!("condition {:?} is defined twice", condition.name)));
            }
        }
        if let Some(grouping) = &self.dip_grouping {
            if self.scheme == Scheme::Drg {
                return Err(invalid("dip_grouping", "a DRG policy has no DIP grouping rules"));
            }
            grouping.validate()?;
        }
        if self.hospital_overrides.len() > MAX_HOSPITAL_OVERRIDES {
            return Err(invalid("hospital_overrides", format!("at most {MAX_HOSPITAL_OVERRIDES} entries")));
        }
        for (i, o) in self.hospital_overrides.iter().enumerate() {
            let key = format!("hospital_overrides[{i}]");
            if !self.hospitals.contains_key(&o.hospital) {
                return Err(invalid(format!("{key}.hospital"), format!("{:?} is not a key of [hospitals]", o.hospital)));
            }
            if let Some(months) = &o.months {
                if months.is_empty() {
                    return Err(invalid(format!("{key}.months"), "must not be empty"));
                }
                if let Some(m) = months.iter().find(|m| !(1..=12).contains(*m)) {
                    return Err(invalid(format!("{key}.months"), format!("{m} is not a month 1–12")));
                }
            }
            if o.coefficient.is_none() && o.point_value.is_none() {
                return Err(invalid(key, "needs coefficient or point_value"));
            }
            if let Some(c) = o.coefficient {
                c.check_positive(&format!("{key}.coefficient"))?;
            }
            if let Some(v) = o.point_value {
                v.check_positive(&format!("{key}.point_value"))?;
            }
            if o.insured.is_some() && self.insured.is_none() {
                return Err(invalid(format!("{key}.insured"), "needs [insured] local_prefix"));
            }
        }
        Ok(())
    }

    /// The DIP grouping rules (`[dip_grouping]`, or the original rules).
    pub fn dip_grouping(&self) -> std::borrow::Cow<'_, DipGrouping> {
        match &self.dip_grouping {
            Some(g) => std::borrow::Cow::Borrowed(g),
            None => std::borrow::Cow::Owned(DipGrouping::default()),
        }
    }

    /// Whether a case is insured outside the region (`[insured] local_prefix`).
    pub fn is_remote(&self, case: &crate::case::Case) -> bool {
        match (&self.insured, case.insured_region.as_deref()) {
            (Some(insured), Some(region)) => !region.is_empty() && !region.starts_with(insured.local_prefix.as_str()),
            _ => false,
        }
    }

    /// The point value a `[[hospital_overrides]]` entry gives a case of `fund`, if any: it
    /// replaces the fund's budget point value for that case.
    pub fn override_point_value(&self, case: &crate::case::Case, fund: crate::case::Fund) -> Option<Decimal> {
        self.hospital_override(case).and_then(|o| o.point_value).and_then(|v| v.for_fund(Some(fund)))
    }

    /// The position of the first `[[hospital_overrides]]` entry that applies to a case and gives
    /// a point value for `fund`: that value replaces the fund's budget point value for the case
    /// in monthly pre-settlement (E14).
    pub fn point_value_override_index(&self, case: &crate::case::Case, fund: crate::case::Fund) -> Option<usize> {
        if self.hospital_overrides.is_empty() {
            return None;
        }
        let hospital = case.hospital_id.as_deref()?;
        let month = case.discharge_date.map(|d| d.ymd().1);
        let remote = self.is_remote(case);
        let index = self.hospital_overrides.iter().position(|o| o.matches(hospital, month, remote))?;
        self.hospital_overrides[index].point_value.and_then(|v| v.for_fund(Some(fund))).map(|_| index)
    }

    /// The first `[[hospital_overrides]]` entry that applies to a case, if any.
    #[inline]
    pub fn hospital_override(&self, case: &crate::case::Case) -> Option<&HospitalOverride> {
        if self.hospital_overrides.is_empty() {
            return None;
        }
        let hospital = case.hospital_id.as_deref()?;
        let month = case.discharge_date.map(|d| d.ymd().1);
        let remote = self.is_remote(case);
        self.hospital_overrides.iter().find(|o| o.matches(hospital, month, remote))
    }

    /// The score of the region's average case: the DIP scale, or points per unit of RW (DRG).
    /// A case's weight for the case mix index is its group score divided by this.
    pub fn average_case_score(&self) -> Decimal {
        match self.scheme {
            Scheme::Dip => self.score_scale,
            Scheme::Drg => self.drg_points_per_rw,
        }
    }

    /// The fund settings, or an error naming the missing `funds` table.
    pub fn funds(&self) -> Result<&Funds, PolicyError> {
        self.funds.as_ref().ok_or_else(|| invalid("funds", "settlement needs [funds.employee] and [funds.resident]"))
    }

    /// The settings of one fund.
    pub fn fund(&self, fund: crate::case::Fund) -> Result<&FundPolicy, PolicyError> {
        let funds = self.funds()?;
        Ok(match fund {
            crate::case::Fund::Employee => &funds.employee,
            crate::case::Fund::Resident => &funds.resident,
        })
    }

    /// A hospital's assessment coefficient (1 when not given).
    pub fn assessment(&self, hospital_id: &str) -> Decimal {
        self.hospitals.get(hospital_id).and_then(|h| h.assessment).unwrap_or(Decimal::ONE)
    }

    /// Rebuilds the hospital lookup after the hospital table changed (parsing does it).
    pub fn resolve(&mut self) {
        self.resolved_hospitals = self
            .hospitals
            .iter()
            .map(|(id, h)| (id.clone(), (h.level.clone(), h.coefficient.or_else(|| self.level_coefficients.get(&h.level).copied()))))
            .collect();
    }

    /// The hospital's level and coefficient in one lookup; `None` for an unknown hospital.
    pub fn hospital_terms(&self, hospital_id: &str) -> Option<(&str, Option<Coefficient>)> {
        self.resolved_hospitals.get(hospital_id).map(|(level, c)| (level.as_str(), *c))
    }

    /// The level of a hospital, when the policy lists it.
    pub fn hospital_level(&self, hospital_id: &str) -> Option<&str> {
        self.hospital_terms(hospital_id).map(|(level, _)| level)
    }

    /// The hospital's coefficient: its own, else its level's; `None` for an unknown hospital.
    pub fn hospital_coefficient(&self, hospital_id: &str) -> Option<Coefficient> {
        self.resolved_hospitals.get(hospital_id).and_then(|(_, c)| *c)
    }
}

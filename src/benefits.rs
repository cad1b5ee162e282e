//! One-bill settlement at discharge (一单制结算): basic insurance, catastrophic insurance (大病保险),
//! large-expense subsidy and medical assistance (医疗救助), layer by layer, per patient and year.
//!
//! Core only: no I/O, no threads. A [`BenefitsPolicy`] (one region, year and fund, read from TOML
//! and [validated](BenefitsPolicy::validate)) carries every number as data; [`settle_patient`]
//! walks one person's discharges in date order and [`settle_year`] does it for a whole file.
//!
//! # The layers, as this engine reads the rules
//!
//! For each discharge, with `covered` the covered (政策范围内) cost and `self_paid` the non-covered
//! cost (always the patient's):
//!
//! 1. **Basic insurance.** The admission order `n` is the person's count of the year's admissions
//!    (the year-to-date count given, plus those before this one in the file, by discharge date
//!    then case id). The deductible is the hospital kind's `deductibles[n-1]` (0 beyond the list).
//!    `basic = round(max(0, covered − deductible) × ratio)`, then at most what is left of the
//!    annual cap (inpatient and outpatient together: outpatient payments belong in the year-to-date
//!    `basic_paid` given).
//! 2. **Personal burden** (个人负担) of this discharge is `covered − basic`; the year's burden `B`
//!    is the running sum.
//! 3. **Catastrophic insurance** is *cumulative*: the year's entitlement is
//!    `min(cap, round(bands(B)))`, with bands applied marginally (each band's ratio on the part of
//!    `B` within it; the first band starts at the deductible). This discharge pays the entitlement
//!    minus what catastrophic insurance already paid this year. A person's category may select a
//!    tilt (a lower deductible, ratios raised by some points or replaced, another cap or none),
//!    effective by discharge date (dated policy versions).
//! 4. **Large-expense subsidy**, also cumulative, on the year's burden after basic and catastrophic
//!    insurance, `B − C` (C: the year's catastrophic payments): `min(cap, round(bands(B − C)))`
//!    minus what the subsidy already paid.
//! 5. **Medical assistance**, cumulative, on what remains, `B − C − S`:
//!    `min(limit, round(max(0, B − C − S − deductible) × ratio))` by assistance category, minus
//!    what assistance already paid. Persons without an assistance category get none.
//! 6. **Patient**: `covered − basic − catastrophic − subsidy − assistance`, plus `self_paid`.
//!
//! Rounding: every layer's amount is rounded half-up (四舍五入) to the fen (0.01 yuan) where it is
//! computed (the basic amount; each cumulative entitlement), so every payment is a whole number of
//! fen and the layers add up exactly: basic + catastrophic + subsidy + assistance + patient =
//! covered cost. Costs must be given to the fen. Each layer is also clamped to what is still
//! unpaid of this discharge, so no layer ever pays more than the discharge's covered cost.
//!
//! Reading the worked examples (resident, ordinary, levels 3 → 2 → 3, covered 20,000 /
//! 150,000 / 300,000): 1st: deductible 700, basic (20,000 − 700) × 60% = 11,580, burden 8,420 <
//! 9,500 → catastrophic 0, patient 8,420. 2nd: deductible 500 − 100 = 400, basic
//! (150,000 − 400) × 70% = 104,720, B = 8,420 + 45,280 = 53,700, catastrophic
//! (53,700 − 9,500) × 60% = 26,520, patient 18,760. 3rd: no deductible, 300,000 × 60% = 180,000 but
//! only 150,000 − 116,300 = 33,700 left of the cap; B = 53,700 + 266,300 = 320,000, entitlement
//! 90,500 × 60% + 100,000 × 65% + 100,000 × 70% + 20,000 × 75% = 204,300, minus 26,520 paid =
//! 177,780; B − C = 320,000 − 204,300 = 115,700, subsidy (115,700 − 100,000) × 30% = 4,710; patient
//! 266,300 − 177,780 − 4,710 = 83,810. 特困, 1st admission: basic 11,580, burden 8,420,
//! catastrophic (8,420 − 5,000) × 70% = 2,394, assistance (8,420 − 2,394) × 70% = 4,218.20, patient
//! 1,807.80. The catastrophic bands are read with the last band open-ended ("75% to below
//! 400,000" with a 400,000 payment cap only makes the cap reachable — and "no cap" for the poor
//! meaningful — when 75% applies above 300,000); a band may still carry an explicit `to`.
//!
//! High-cost warnings are raised on the discharge where the person's year-to-date out-of-pocket
//! amount (patient share of covered cost plus self-paid cost) first reaches a threshold.

use crate::case::Date;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::str::FromStr;

/// An error in a benefits policy or in the discharges given to the engine.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BenefitsError {
    /// The file is not valid TOML or does not fit the schema (unknown keys included).
    #[error("benefits policy file: {0}")]
    Parse(String),
    /// A contradiction or an out-of-range number, with the key it is at.
    #[error("benefits policy key {key}: {message}")]
    Invalid { key: String, message: String },
    /// A discharge the engine cannot settle.
    #[error("case {case_id}: {message}")]
    Case { case_id: String, message: String },
    /// Year-to-date figures given for a person that the engine cannot start from.
    #[error("patient {patient_id}: {message}")]
    Patient { patient_id: String, message: String },
}

impl BenefitsError {
    /// The stable code of the error (printed by the CLI as `error[CODE]`).
    pub fn code(&self) -> &'static str {
        match self {
            BenefitsError::Parse(_) => "BENEFITS_POLICY_SYNTAX",
            BenefitsError::Invalid { .. } => "BENEFITS_POLICY_INVALID",
            BenefitsError::Case { .. } => "BENEFITS_CASE_INVALID",
            BenefitsError::Patient { .. } => "BENEFITS_YEAR_TO_DATE_INVALID",
        }
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> BenefitsError {
    BenefitsError::Invalid { key: key.into(), message: message.into() }
}

/// A decimal read from a TOML integer, float or string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Num(pub Decimal);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Num, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Integer(i64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Integer(i) => Ok(Num(Decimal::from(i))),
            Raw::Float(f) => Decimal::from_str(&format!("{f}")).map(Num).map_err(serde::de::Error::custom),
            Raw::Text(t) => {
                Decimal::from_str(t.trim()).map(Num).map_err(|_| serde::de::Error::custom(format!("{t:?} is not a decimal number")))
            }
        }
    }
}

/// Half-up (四舍五入) to the fen.
fn fen(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// A benefits policy: one region, year and fund.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenefitsPolicy {
    pub region: String,
    pub year: i32,
    /// The fund the rules are for ("resident", "employee").
    pub fund: String,
    /// Every person category the policy knows (特困, 低保, …); the empty category is ordinary.
    #[serde(default)]
    pub categories: Vec<String>,
    pub basic: Basic,
    pub catastrophic: Catastrophic,
    pub subsidy: Subsidy,
    pub assistance: Assistance,
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// Basic inpatient insurance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basic {
    /// The year's cap on basic payments (inpatient and outpatient together).
    pub annual_cap: Num,
    pub hospitals: Vec<HospitalKind>,
}

/// Deductibles and ratio of one hospital kind (level "1"/"2"/"3", "grassroots", …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalKind {
    pub kind: String,
    /// Deductible of the year's 1st, 2nd, … admission; none beyond the list.
    pub deductibles: Vec<Num>,
    pub ratio: Num,
}

/// A band of a marginal schedule: `ratio` on the part of the base from `from` to `to` (or to the
/// next band's start, or without end for the last band).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub from: Num,
    #[serde(default)]
    pub to: Option<Num>,
    pub ratio: Num,
}

/// Catastrophic insurance on the year's personal burden.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catastrophic {
    /// Bands in ascending order; the first starts at the deductible.
    pub bands: Vec<Band>,
    /// The year's cap; none when absent.
    #[serde(default)]
    pub annual_cap: Option<Num>,
    /// Category tilts; the first whose categories and dates match applies.
    #[serde(default)]
    pub tilts: Vec<Tilt>,
}

/// A tilt of catastrophic insurance towards some categories, possibly dated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tilt {
    pub name: String,
    pub categories: Vec<String>,
    /// First discharge date it applies to (inclusive).
    #[serde(default)]
    pub effective_from: Option<String>,
    /// Last discharge date it applies to (inclusive).
    #[serde(default)]
    pub effective_until: Option<String>,
    /// Replaces the deductible (the first band's start).
    #[serde(default)]
    pub deductible: Option<Num>,
    /// Added to every band's ratio (0.10: ten points more).
    #[serde(default)]
    pub ratio_add: Option<Num>,
    /// Replaces every band's ratio, band by band.
    #[serde(default)]
    pub ratios: Option<Vec<Num>>,
    /// Replaces the annual cap.
    #[serde(default)]
    pub annual_cap: Option<Num>,
    /// No annual cap at all.
    #[serde(default)]
    pub uncapped: bool,
}

/// The large-expense subsidy on the year's burden after basic and catastrophic insurance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subsidy {
    pub bands: Vec<Band>,
    #[serde(default)]
    pub annual_cap: Option<Num>,
}

/// Medical assistance after the insurances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assistance {
    pub annual_limit: Num,
    pub groups: Vec<AssistanceGroup>,
}

/// Deductible and ratio of some assistance categories.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistanceGroup {
    pub categories: Vec<String>,
    pub deductible: Num,
    pub ratio: Num,
}

/// A high-cost warning threshold on the year's out-of-pocket amount.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warning {
    pub name: String,
    pub threshold: Num,
    /// Categories it watches; all persons when empty.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// Ratios have at most this many decimals (0.123456), so that whole-fen arithmetic is exact.
pub const MAX_RATIO_DECIMALS: u32 = 6;
/// The largest amount a policy, a discharge cost or a year-to-date figure may carry, in fen
/// (10 billion yuan): sums over a year and their products with ratios then stay exact.
pub const MAX_AMOUNT_FEN: i128 = 1_000_000_000_000;
/// At most this many warnings (one bit each in the fast path).
pub const MAX_WARNINGS: usize = 64;

fn check_ratio(key: &str, ratio: Decimal) -> Result<(), BenefitsError> {
    if ratio < Decimal::ZERO || ratio > Decimal::ONE {
        return Err(invalid(key, format!("ratio {ratio} is outside 0–1")));
    }
    if ratio.normalize().scale() > MAX_RATIO_DECIMALS {
        return Err(invalid(key, format!("ratio {ratio} has more than {MAX_RATIO_DECIMALS} decimals")));
    }
    Ok(())
}

/// What is wrong with an amount that must be whole fen within the bound, if anything.
fn money_problem(amount: Decimal) -> Option<String> {
    if amount < Decimal::ZERO {
        return Some(format!("{amount} is negative"));
    }
    match fast::to_fen(amount) {
        None => Some(format!("{amount} is not to the fen")),
        Some(fen) if fen > MAX_AMOUNT_FEN => {
            Some(format!("{amount} is beyond the bound of {} yuan", fast::from_fen(MAX_AMOUNT_FEN).normalize()))
        }
        Some(_) => None,
    }
}

fn check_money(key: &str, amount: Decimal) -> Result<(), BenefitsError> {
    match money_problem(amount) {
        Some(problem) => Err(invalid(key, format!("amount {problem}"))),
        None => Ok(()),
    }
}

fn check_bands(key: &str, bands: &[Band]) -> Result<(), BenefitsError> {
    if bands.is_empty() {
        return Err(invalid(key, "no bands"));
    }
    for (i, band) in bands.iter().enumerate() {
        let here = format!("{key}[{i}]");
        check_money(&format!("{here}.from"), band.from.0)?;
        check_ratio(&format!("{here}.ratio"), band.ratio.0)?;
        if let Some(to) = band.to {
            check_money(&format!("{here}.to"), to.0)?;
            if to.0 <= band.from.0 {
                return Err(invalid(format!("{here}.to"), format!("band ends at {} before it starts at {}", to.0, band.from.0)));
            }
        }
        if let Some(next) = bands.get(i + 1) {
            if next.from.0 <= band.from.0 {
                return Err(invalid(
                    format!("{key}[{}].from", i + 1),
                    format!("bands out of order: {} does not follow {}", next.from.0, band.from.0),
                ));
            }
            if let Some(to) = band.to {
                if to.0 > next.from.0 {
                    return Err(invalid(format!("{here}.to"), format!("band overlaps the next one, which starts at {}", next.from.0)));
                }
            }
        }
    }
    Ok(())
}

fn parse_date(key: &str, text: &str) -> Result<Date, BenefitsError> {
    Date::parse(text).ok_or_else(|| invalid(key, format!("{text:?} is not a date (YYYY-MM-DD)")))
}

/// Marginal schedule: Σ ratio × (part of `base` within the band), unrounded.
fn banded(bands: &[Band], first_from: Decimal, ratios: &[Decimal], base: Decimal) -> Decimal {
    let mut total = Decimal::ZERO;
    for (i, band) in bands.iter().enumerate() {
        let from = if i == 0 { first_from } else { band.from.0 };
        let end = band.to.map(|t| t.0).or_else(|| bands.get(i + 1).map(|b| b.from.0));
        let top = end.map_or(base, |e| base.min(e));
        if top > from {
            total += (top - from) * ratios[i];
        }
    }
    total
}

/// The catastrophic schedule that applies to one person on one date.
#[derive(Debug, Clone, PartialEq)]
pub struct CatastrophicTerms<'a> {
    /// The tilt applied, if any.
    pub tilt: Option<&'a str>,
    pub deductible: Decimal,
    pub ratios: SmallVec<[Decimal; 8]>,
    pub cap: Option<Decimal>,
}

impl BenefitsPolicy {
    /// Reads and validates a policy from TOML text.
    pub fn from_toml(text: &str) -> Result<BenefitsPolicy, BenefitsError> {
        let policy: BenefitsPolicy = toml::from_str(text).map_err(|e| BenefitsError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks ranges and contradictions, naming the key at fault.
    pub fn validate(&self) -> Result<(), BenefitsError> {
        let known = |key: &str, category: &str| -> Result<(), BenefitsError> {
            if self.categories.iter().any(|c| c == category) {
                Ok(())
            } else {
                Err(invalid(key, format!("category {category:?} is not among the policy's categories")))
            }
        };
        for (i, category) in self.categories.iter().enumerate() {
            if category.is_empty() {
                return Err(invalid(format!("categories[{i}]"), "empty category (the empty category is ordinary)"));
            }
            if self.categories[..i].contains(category) {
                return Err(invalid(format!("categories[{i}]"), format!("category {category:?} listed twice")));
            }
        }
        check_money("basic.annual_cap", self.basic.annual_cap.0)?;
        if self.basic.hospitals.is_empty() {
            return Err(invalid("basic.hospitals", "no hospital kinds"));
        }
        for (i, hospital) in self.basic.hospitals.iter().enumerate() {
            let key = format!("basic.hospitals[{i}]");
            if self.basic.hospitals[..i].iter().any(|h| h.kind == hospital.kind) {
                return Err(invalid(format!("{key}.kind"), format!("hospital kind {:?} listed twice", hospital.kind)));
            }
            check_ratio(&format!("{key}.ratio"), hospital.ratio.0)?;
            for (j, deductible) in hospital.deductibles.iter().enumerate() {
                check_money(&format!("{key}.deductibles[{j}]"), deductible.0)?;
                if j > 0 && deductible.0 > hospital.deductibles[j - 1].0 {
                    return Err(invalid(
                        format!("{key}.deductibles[{j}]"),
                        format!("a later admission's deductible {} exceeds the earlier {}", deductible.0, hospital.deductibles[j - 1].0),
                    ));
                }
            }
        }
        let bands = &self.catastrophic.bands;
        check_bands("catastrophic.bands", bands)?;
        if let Some(cap) = self.catastrophic.annual_cap {
            check_money("catastrophic.annual_cap", cap.0)?;
        }
        for (i, tilt) in self.catastrophic.tilts.iter().enumerate() {
            let key = format!("catastrophic.tilts[{i}]");
            if tilt.categories.is_empty() {
                return Err(invalid(format!("{key}.categories"), "no categories"));
            }
            for (j, category) in tilt.categories.iter().enumerate() {
                known(&format!("{key}.categories[{j}]"), category)?;
            }
            let from = tilt.effective_from.as_deref().map(|d| parse_date(&format!("{key}.effective_from"), d)).transpose()?;
            let until = tilt.effective_until.as_deref().map(|d| parse_date(&format!("{key}.effective_until"), d)).transpose()?;
            if let (Some(from), Some(until)) = (from, until) {
                if until < from {
                    return Err(invalid(format!("{key}.effective_until"), format!("{until} is before effective_from {from}")));
                }
            }
            if let Some(deductible) = tilt.deductible {
                check_money(&format!("{key}.deductible"), deductible.0)?;
                if let Some(second) = bands.get(1) {
                    if deductible.0 >= second.from.0 {
                        return Err(invalid(
                            format!("{key}.deductible"),
                            format!("deductible {} is not below the second band's start {}", deductible.0, second.from.0),
                        ));
                    }
                }
            }
            if tilt.ratio_add.is_some() && tilt.ratios.is_some() {
                return Err(invalid(format!("{key}.ratios"), "both ratio_add and ratios given"));
            }
            if tilt.uncapped && tilt.annual_cap.is_some() {
                return Err(invalid(format!("{key}.annual_cap"), "both annual_cap and uncapped given"));
            }
            if let Some(cap) = tilt.annual_cap {
                check_money(&format!("{key}.annual_cap"), cap.0)?;
            }
            if let Some(ratios) = &tilt.ratios {
                if ratios.len() != bands.len() {
                    return Err(invalid(format!("{key}.ratios"), format!("{} ratios for {} bands", ratios.len(), bands.len())));
                }
                for (j, ratio) in ratios.iter().enumerate() {
                    check_ratio(&format!("{key}.ratios[{j}]"), ratio.0)?;
                }
            }
            if let Some(add) = tilt.ratio_add {
                for (j, band) in bands.iter().enumerate() {
                    check_ratio(&format!("{key}.ratio_add (band {j})"), band.ratio.0 + add.0)?;
                }
            }
        }
        check_bands("subsidy.bands", &self.subsidy.bands)?;
        if let Some(cap) = self.subsidy.annual_cap {
            check_money("subsidy.annual_cap", cap.0)?;
        }
        check_money("assistance.annual_limit", self.assistance.annual_limit.0)?;
        for (i, group) in self.assistance.groups.iter().enumerate() {
            let key = format!("assistance.groups[{i}]");
            check_money(&format!("{key}.deductible"), group.deductible.0)?;
            check_ratio(&format!("{key}.ratio"), group.ratio.0)?;
            for (j, category) in group.categories.iter().enumerate() {
                known(&format!("{key}.categories[{j}]"), category)?;
                if self.assistance.groups[..i].iter().any(|g| g.categories.contains(category)) {
                    return Err(invalid(format!("{key}.categories[{j}]"), format!("category {category:?} is in two assistance groups")));
                }
            }
        }
        if self.warnings.len() > MAX_WARNINGS {
            return Err(invalid("warnings", format!("{} warnings: at most {MAX_WARNINGS}", self.warnings.len())));
        }
        for (i, warning) in self.warnings.iter().enumerate() {
            let key = format!("warnings[{i}]");
            check_money(&format!("{key}.threshold"), warning.threshold.0)?;
            for (j, category) in warning.categories.iter().enumerate() {
                known(&format!("{key}.categories[{j}]"), category)?;
            }
        }
        Ok(())
    }

    /// The catastrophic schedule for `category` on `date`: the first matching tilt, or the base.
    pub fn catastrophic_terms(&self, category: &str, date: Date) -> CatastrophicTerms<'_> {
        let in_force = |tilt: &Tilt| {
            let after = tilt.effective_from.as_deref().and_then(Date::parse).is_none_or(|from| date >= from);
            let before = tilt.effective_until.as_deref().and_then(Date::parse).is_none_or(|until| date <= until);
            after && before
        };
        let tilt = if category.is_empty() {
            None
        } else {
            self.catastrophic.tilts.iter().find(|t| t.categories.iter().any(|c| c == category) && in_force(t))
        };
        self.terms_of(tilt)
    }

    /// The catastrophic schedule under `tilt`, or the base schedule.
    pub fn terms_of<'a>(&'a self, tilt: Option<&'a Tilt>) -> CatastrophicTerms<'a> {
        let bands = &self.catastrophic.bands;
        let base_ratios: SmallVec<[Decimal; 8]> = bands.iter().map(|b| b.ratio.0).collect();
        let cap = self.catastrophic.annual_cap.map(|c| c.0);
        match tilt {
            None => CatastrophicTerms { tilt: None, deductible: bands[0].from.0, ratios: base_ratios, cap },
            Some(tilt) => CatastrophicTerms {
                tilt: Some(tilt.name.as_str()),
                deductible: tilt.deductible.map_or(bands[0].from.0, |d| d.0),
                ratios: match (&tilt.ratios, tilt.ratio_add) {
                    (Some(ratios), _) => ratios.iter().map(|r| r.0).collect(),
                    (None, Some(add)) => base_ratios.iter().map(|r| r + add.0).collect(),
                    (None, None) => base_ratios,
                },
                cap: if tilt.uncapped { None } else { tilt.annual_cap.map(|c| c.0).or(cap) },
            },
        }
    }

    fn hospital(&self, kind: &str) -> Option<&HospitalKind> {
        self.basic.hospitals.iter().find(|h| h.kind == kind)
    }

    fn assistance_group(&self, category: &str) -> Option<&AssistanceGroup> {
        if category.is_empty() {
            return None;
        }
        self.assistance.groups.iter().find(|g| g.categories.iter().any(|c| c == category))
    }
}

/// One discharge as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discharge {
    pub case_id: String,
    pub patient_id: String,
    pub discharge_date: Date,
    /// A hospital kind of the policy (level "1"/"2"/"3", "grassroots").
    pub hospital_kind: String,
    /// Covered (政策范围内) cost, to the fen.
    pub covered_cost: Decimal,
    /// Non-covered cost the patient pays in full, to the fen.
    pub self_paid: Decimal,
    /// The person's category (特困, 低保, …); empty for ordinary.
    pub category: String,
}

/// A person's year-to-date figures: before the first discharge given, or after the last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearToDate {
    pub admissions: u32,
    /// Basic payments, inpatient and outpatient (they share the cap).
    pub basic_paid: Decimal,
    /// Covered cost minus basic payments (个人负担).
    pub personal_burden: Decimal,
    pub catastrophic_paid: Decimal,
    pub subsidy_paid: Decimal,
    pub assistance_paid: Decimal,
    /// What the patient paid: the share of covered cost left after all layers, plus self-paid.
    pub out_of_pocket: Decimal,
    /// Covered cost of the year's discharges.
    pub covered_cost: Decimal,
}

/// The layers of one discharge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub case_id: String,
    pub patient_id: String,
    pub discharge_date: Date,
    /// The year's admission count including this one.
    pub admission_order: u32,
    pub deductible: Decimal,
    pub basic: Decimal,
    pub catastrophic: Decimal,
    pub subsidy: Decimal,
    pub assistance: Decimal,
    /// The patient's share of covered cost.
    pub patient_covered: Decimal,
    pub self_paid: Decimal,
    /// `patient_covered + self_paid`: what the patient pays at discharge.
    pub patient_total: Decimal,
    /// Warning names whose threshold this discharge crossed.
    pub warnings: Vec<String>,
    /// Every step, in order.
    pub explanation: Vec<String>,
}

/// One person's year: the discharges settled and the year-to-date figures after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientYear {
    pub patient_id: String,
    pub settlements: Vec<Settlement>,
    pub totals: YearToDate,
}

fn case_error(discharge: &Discharge, message: impl Into<String>) -> BenefitsError {
    BenefitsError::Case { case_id: discharge.case_id.clone(), message: message.into() }
}

fn check_fen(discharge: &Discharge, what: &str, amount: Decimal) -> Result<(), BenefitsError> {
    match money_problem(amount) {
        Some(problem) => Err(case_error(discharge, format!("{what} {problem}"))),
        None => Ok(()),
    }
}

/// Year-to-date figures given for a person: whole fen, not negative, within the bound.
fn check_prior(patient_id: &str, prior: &YearToDate) -> Result<(), BenefitsError> {
    let figures = [
        ("basic_paid", prior.basic_paid),
        ("personal_burden", prior.personal_burden),
        ("catastrophic_paid", prior.catastrophic_paid),
        ("subsidy_paid", prior.subsidy_paid),
        ("assistance_paid", prior.assistance_paid),
        ("out_of_pocket", prior.out_of_pocket),
        ("covered_cost", prior.covered_cost),
    ];
    for (field, amount) in figures {
        if let Some(problem) = money_problem(amount) {
            return Err(BenefitsError::Patient { patient_id: patient_id.to_string(), message: format!("year-to-date {field} {problem}") });
        }
    }
    Ok(())
}

/// Whether the engine can settle `discharge` under `policy`: the checks [`settle_year`] makes of
/// each discharge (date within the policy year, costs to the fen within the bound, a known
/// category and hospital kind), with the same errors.
pub fn check_discharge(policy: &BenefitsPolicy, discharge: &Discharge) -> Result<(), BenefitsError> {
    let date = discharge.discharge_date;
    if date < Date::from_ymd(policy.year, 1, 1).unwrap_or(date) || date > Date::from_ymd(policy.year, 12, 31).unwrap_or(date) {
        return Err(case_error(discharge, format!("discharged {date} outside the policy year {}", policy.year)));
    }
    check_fen(discharge, "covered cost", discharge.covered_cost)?;
    check_fen(discharge, "self-paid cost", discharge.self_paid)?;
    let category = discharge.category.as_str();
    if !category.is_empty() && !policy.categories.iter().any(|c| c == category) {
        return Err(case_error(discharge, format!("category {category:?} is not in the benefits policy")));
    }
    if policy.hospital(&discharge.hospital_kind).is_none() {
        return Err(case_error(discharge, format!("hospital kind {:?} is not in the benefits policy", discharge.hospital_kind)));
    }
    Ok(())
}

/// Settles one discharge given the person's year-to-date figures, which it advances; with
/// `explain`, every step is written into [`Settlement::explanation`].
pub fn settle_discharge(
    policy: &BenefitsPolicy,
    ytd: &mut YearToDate,
    discharge: &Discharge,
    explain: bool,
) -> Result<Settlement, BenefitsError> {
    check_fen(discharge, "covered cost", discharge.covered_cost)?;
    check_fen(discharge, "self-paid cost", discharge.self_paid)?;
    let category = discharge.category.as_str();
    if !category.is_empty() && !policy.categories.iter().any(|c| c == category) {
        return Err(case_error(discharge, format!("category {category:?} is not in the benefits policy")));
    }
    let hospital = policy
        .hospital(&discharge.hospital_kind)
        .ok_or_else(|| case_error(discharge, format!("hospital kind {:?} is not in the benefits policy", discharge.hospital_kind)))?;
    let covered = discharge.covered_cost;
    let mut steps = Vec::new();
    // Explanations are built only when asked for: a year of millions of discharges skips them.
    macro_rules! step {
        ($line:expr) => {
            if explain {
                steps.push($line)
            }
        };
    }

    // 1. Basic insurance.
    let order = ytd.admissions + 1;
    let deductible = hospital.deductibles.get(order as usize - 1).map_or(Decimal::ZERO, |d| d.0);
    let raw_basic = fen((covered - deductible).max(Decimal::ZERO) * hospital.ratio.0);
    let cap_left = (policy.basic.annual_cap.0 - ytd.basic_paid).max(Decimal::ZERO);
    let basic = raw_basic.min(cap_left);
    step!(format!(
        "basic: admission {order} of the year at {} hospital, deductible {deductible}; ({covered} − {deductible}) × {} = {raw_basic}; cap {} with {} paid leaves {cap_left}; basic pays {basic}",
        hospital.kind, hospital.ratio.0, policy.basic.annual_cap.0, ytd.basic_paid
    ));

    // 2. Personal burden.
    let burden_here = covered - basic;
    let burden = ytd.personal_burden + burden_here;
    step!(format!("personal burden: {covered} − {basic} = {burden_here}; year to date {burden}"));
    let mut left = burden_here;

    // 3. Catastrophic insurance, cumulative.
    let terms = policy.catastrophic_terms(category, discharge.discharge_date);
    let scheduled = fen(banded(&policy.catastrophic.bands, terms.deductible, &terms.ratios, burden));
    let entitled = terms.cap.map_or(scheduled, |cap| scheduled.min(cap));
    let catastrophic = (entitled - ytd.catastrophic_paid).max(Decimal::ZERO).min(left);
    left -= catastrophic;
    step!(format!(
        "catastrophic{}: deductible {}, band ratios [{}] on {burden} = {scheduled}; cap {}; year entitlement {entitled} − {} paid = {catastrophic}",
        terms.tilt.map(|t| format!(" ({t})")).unwrap_or_default(),
        terms.deductible,
        terms.ratios.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
        terms.cap.map_or("none".to_string(), |c| c.to_string()),
        ytd.catastrophic_paid
    ));
    let catastrophic_total = ytd.catastrophic_paid + catastrophic;

    // 4. Large-expense subsidy, cumulative, on the burden after catastrophic insurance.
    let subsidy_base = burden - catastrophic_total;
    let bands = &policy.subsidy.bands;
    let subsidy_ratios: SmallVec<[Decimal; 8]> = bands.iter().map(|b| b.ratio.0).collect();
    let scheduled = fen(banded(bands, bands[0].from.0, &subsidy_ratios, subsidy_base));
    let entitled = policy.subsidy.annual_cap.map_or(scheduled, |cap| scheduled.min(cap.0));
    let subsidy = (entitled - ytd.subsidy_paid).max(Decimal::ZERO).min(left);
    left -= subsidy;
    step!(format!(
        "subsidy: burden after catastrophic {burden} − {catastrophic_total} = {subsidy_base}; bands give {scheduled}; year entitlement {entitled} − {} paid = {subsidy}",
        ytd.subsidy_paid
    ));
    let subsidy_total = ytd.subsidy_paid + subsidy;

    // 5. Medical assistance, cumulative.
    let assistance_base = subsidy_base - subsidy_total;
    let assistance = match policy.assistance_group(category) {
        None => {
            step!(format!("assistance: none for category {:?}", if category.is_empty() { "ordinary" } else { category }));
            Decimal::ZERO
        }
        Some(group) => {
            let scheduled = fen((assistance_base - group.deductible.0).max(Decimal::ZERO) * group.ratio.0);
            let entitled = scheduled.min(policy.assistance.annual_limit.0);
            let assistance = (entitled - ytd.assistance_paid).max(Decimal::ZERO).min(left);
            step!(format!(
                "assistance ({category}): ({assistance_base} − {}) × {} = {scheduled}; limit {}; year entitlement {entitled} − {} paid = {assistance}",
                group.deductible.0, group.ratio.0, policy.assistance.annual_limit.0, ytd.assistance_paid
            ));
            assistance
        }
    };
    left -= assistance;

    // 6. Patient.
    let patient_total = left + discharge.self_paid;
    step!(format!(
        "patient: {covered} − {basic} − {catastrophic} − {subsidy} − {assistance} = {left}, plus self-paid {} = {patient_total}",
        discharge.self_paid
    ));

    let before = ytd.out_of_pocket;
    *ytd = YearToDate {
        admissions: order,
        basic_paid: ytd.basic_paid + basic,
        personal_burden: burden,
        catastrophic_paid: catastrophic_total,
        subsidy_paid: subsidy_total,
        assistance_paid: ytd.assistance_paid + assistance,
        out_of_pocket: before + patient_total,
        covered_cost: ytd.covered_cost + covered,
    };
    let mut warnings = Vec::new();
    for warning in &policy.warnings {
        let watched = warning.categories.is_empty() || warning.categories.iter().any(|c| c == category);
        if watched && before < warning.threshold.0 && ytd.out_of_pocket >= warning.threshold.0 {
            step!(format!("warning {}: out of pocket {} reaches {}", warning.name, ytd.out_of_pocket, warning.threshold.0));
            warnings.push(warning.name.clone());
        }
    }

    Ok(Settlement {
        case_id: discharge.case_id.clone(),
        patient_id: discharge.patient_id.clone(),
        discharge_date: discharge.discharge_date,
        admission_order: order,
        deductible,
        basic,
        catastrophic,
        subsidy,
        assistance,
        patient_covered: left,
        self_paid: discharge.self_paid,
        patient_total,
        warnings,
        explanation: steps,
    })
}

/// Settles one person's discharges in date order (ties by case id), from `prior` figures.
pub fn settle_patient(
    policy: &BenefitsPolicy,
    prior: &YearToDate,
    discharges: &[Discharge],
    explain: bool,
) -> Result<PatientYear, BenefitsError> {
    let mut ordered: Vec<&Discharge> = discharges.iter().collect();
    ordered.sort_by(|a, b| (a.discharge_date, &a.case_id).cmp(&(b.discharge_date, &b.case_id)));
    settle_ordered(policy, prior, &ordered, explain)
}

/// One person's discharges, already in date-then-case-id order.
fn settle_ordered(
    policy: &BenefitsPolicy,
    prior: &YearToDate,
    ordered: &[&Discharge],
    explain: bool,
) -> Result<PatientYear, BenefitsError> {
    let mut ytd = prior.clone();
    let mut settlements = Vec::with_capacity(ordered.len());
    let patient_id = ordered.first().map(|d| d.patient_id.clone()).unwrap_or_default();
    check_prior(&patient_id, prior)?;
    for &discharge in ordered {
        if discharge.patient_id != patient_id {
            return Err(case_error(discharge, format!("patient {} among patient {patient_id}'s discharges", discharge.patient_id)));
        }
        if discharge.discharge_date < Date::from_ymd(policy.year, 1, 1).unwrap_or(discharge.discharge_date)
            || discharge.discharge_date > Date::from_ymd(policy.year, 12, 31).unwrap_or(discharge.discharge_date)
        {
            return Err(case_error(discharge, format!("discharged {} outside the policy year {}", discharge.discharge_date, policy.year)));
        }
        settlements.push(settle_discharge(policy, &mut ytd, discharge, explain)?);
    }
    Ok(PatientYear { patient_id, settlements, totals: ytd })
}

/// Settles a year of discharges of many persons, each from its `prior` figures (none when
/// absent). Persons come out in patient id order.
pub fn settle_year(
    policy: &BenefitsPolicy,
    priors: &BTreeMap<String, YearToDate>,
    discharges: &[Discharge],
    explain: bool,
) -> Result<Vec<PatientYear>, BenefitsError> {
    // Persons ranked by id once, so that the sort of discharges compares integers and dates
    // (case ids only on ties): a year of millions of discharges sorts in a fraction of the time.
    let mut rank: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    for discharge in discharges {
        let next = rank.len() as u32;
        rank.entry(discharge.patient_id.as_str()).or_insert(next);
    }
    let mut names: Vec<&str> = rank.keys().copied().collect();
    names.sort_unstable();
    for (position, name) in names.iter().enumerate() {
        rank.insert(name, position as u32);
    }
    let mut ordered: Vec<(u32, &Discharge)> = discharges.iter().map(|d| (rank[d.patient_id.as_str()], d)).collect();
    // Stable: discharges of one person, date and case id stay in input order.
    ordered.sort_by(|(ra, a), (rb, b)| (ra, a.discharge_date).cmp(&(rb, b.discharge_date)).then_with(|| a.case_id.cmp(&b.case_id)));
    let ordered: Vec<&Discharge> = ordered.into_iter().map(|(_, d)| d).collect();
    let none = YearToDate::default();
    ordered
        .chunk_by(|a, b| a.patient_id == b.patient_id)
        .map(|person| settle_ordered(policy, priors.get(&person[0].patient_id).unwrap_or(&none), person, explain))
        .collect()
}

mod fast;
pub use fast::{settle_year_fast, warning_names, FenPatient, FenSettlement, FenYear, FenYearToDate};

#[cfg(test)]
mod tests;

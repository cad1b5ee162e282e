//! Case points (病例点数): a grouped case's score adjusted by the region policy, with every factor
//! and the reason it applied.
//!
//! Order of the rules, the first that applies deciding the category:
//! 1. item-based exemption (按项目付费, by diagnosis, procedure, stay or insured category) →
//!    category `exempt`, 0 points;
//! 2. bed-day group (床日付费) with a long enough stay → points per day × paid days;
//! 3. no group → `ungrouped`, 0 points (to be reviewed);
//! 4. a DIP group paid by item (score 0, `pricing = item`) → `exempt`; one priced by cost ratio →
//!    score × cost ÷ mean × `cost_ratio_multiplier`, nothing else applied;
//! 5. cost ratio r = case cost ÷ the group's mean cost at the case's hospital level (scaled by the
//!    severity factor with `adjust_mean_cost`): r above `special_review_ratio` → `special_review`
//!    (priced as a high outlier until reviewed, or as normal); r above `high_ratio` →
//!    `high_outlier`; r below `low_ratio` → `low_outlier` (each end strict or inclusive); else
//!    `normal`;
//! 6. the severity coefficient: of all that apply (CC/MCC, death, age band in years or days,
//!    tumour metastasis, chemotherapy, radiotherapy, the group's `adjustments.csv` rows), the
//!    largest;
//! 7. the hospital coefficient H (grassroots groups: the group's own, else the grassroots
//!    coefficient; others: a `[[hospital_overrides]]` entry's, else the hospital's own, else its
//!    level's; each may be per fund). H is added instead of multiplied with
//!    `high_formula = "excess_plus_hospital"`, and left out of outliers with
//!    `apply_hospital_coefficient = false`.
//!
//! Points = adjusted score × severity × hospital coefficient, rounded half-up to the policy's
//! `points_decimals` once, at the end. Pure: no I/O.

use crate::case::Case;
use crate::dip::catalog::GroupPricing;
use crate::drg::trace::Severity;
use crate::policy::{
    age_within, CaseFacts, CodeAdjustment, Coefficient, HighOutlierFormula, LowOutlierFormula, Policy, SpecialReviewPricing,
};
use crate::units::{round_half_up, Points};
use rust_decimal::Decimal;
use smallvec::SmallVec;

/// What a case's points were computed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseCategory {
    Normal,
    /// 费用超高病例.
    HighOutlier,
    /// 费用超低病例.
    LowOutlier,
    /// 特病单议: cost far above the group; priced provisionally, to be reviewed.
    SpecialReview,
    /// 床日付费.
    BedDay,
    /// 按项目付费: outside the point pool.
    Exempt,
    /// No group: no points until reviewed.
    Ungrouped,
}

impl CaseCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseCategory::Normal => "normal",
            CaseCategory::HighOutlier => "high_outlier",
            CaseCategory::LowOutlier => "low_outlier",
            CaseCategory::SpecialReview => "special_review",
            CaseCategory::BedDay => "bed_day",
            CaseCategory::Exempt => "exempt",
            CaseCategory::Ungrouped => "ungrouped",
        }
    }
}

/// The group a case fell into, with its score on the policy's point scale.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredGroup<'a> {
    pub code: &'a str,
    /// DIP: the group's score; DRG: RW × `drg_points_per_rw`.
    pub score: Decimal,
    /// The group's mean cost at the case's hospital level (overall when unknown).
    pub mean_cost: Decimal,
    /// A grassroots group (基层病种): same coefficient at every level.
    pub grassroots: bool,
}

/// A group's supplement row (`adjustments.csv`) resolved against the policy's conditions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedAdjustment {
    /// Index into the policy's `conditions`.
    pub condition: usize,
    pub coefficient: Decimal,
    /// Replaces the group's mean when this row wins and `adjust_mean_cost` is set.
    pub mean_cost: Option<Decimal>,
}

/// What a DIP group adds to pricing under the regional extensions. The default adds nothing:
/// pricing is then exactly the original.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupTerms<'a> {
    pub pricing: GroupPricing,
    /// The group's own grassroots coefficient (catalog column `grassroots_coefficient`).
    pub grassroots_coefficient: Option<Decimal>,
    /// The group's supplement rows, in file order.
    pub adjustments: &'a [ResolvedAdjustment],
    /// The case's CC / MCC tests, for `complication` conditions.
    pub facts: CaseFacts,
}

/// Why a factor applied. Kept as data (no text) so that pricing a case allocates nothing; see
/// [`CasePoints::explain`] for the sentences.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Exemption (index into the policy's list) and what matched.
    Exempt {
        exemption: usize,
        matched: String,
    },
    /// Bed-day group (index), days paid of days stayed.
    BedDay {
        group: usize,
        paid_days: i64,
        los: i64,
    },
    Ungrouped,
    HighOutlier {
        ratio: Decimal,
        special_review: bool,
    },
    LowOutlier {
        ratio: Decimal,
    },
    CostMissing,
    Severity(SeverityReason),
    /// The hospital's own or level coefficient.
    Hospital,
    Grassroots,
    HospitalUnknown,
    /// The coefficient of a `[[hospital_overrides]]` entry (index).
    HospitalOverride(usize),
    /// A per-fund coefficient and a case without fund: coefficient 1.
    FundMissing,
    /// The hospital coefficient (value) is not applied to outliers.
    HospitalNotApplied(Decimal),
    /// The group is paid by item (score 0 or `pricing = item`).
    PaidByItem,
    /// Priced by cost ratio: cost ÷ mean (the factor also holds `cost_ratio_multiplier`).
    CostRatio {
        ratio: Decimal,
    },
    /// Special review priced as a normal case meanwhile (`special_review_pricing = "normal"`).
    SpecialReviewNormal {
        ratio: Decimal,
    },
}

/// Which severity adjustment won.
#[derive(Debug, Clone, PartialEq)]
pub enum SeverityReason {
    Mcc,
    Cc,
    ShortStayDeath {
        los: i64,
    },
    LongStayDeath,
    Age(i64),
    /// An age band in days.
    AgeDays(i64),
    /// An `adjustments.csv` row: the index of its policy condition.
    Condition(usize),
    TumourMetastasis(String),
    Chemotherapy(String),
    Radiotherapy(String),
}

/// One step of the computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub name: &'static str,
    pub value: Decimal,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CasePoints {
    pub category: CaseCategory,
    /// The group's score before any adjustment (0 when none).
    pub base_score: Decimal,
    /// Case cost ÷ group mean cost, when both are known.
    pub cost_ratio: Option<Decimal>,
    pub factors: SmallVec<[Factor; 3]>,
    pub points: Points,
}

impl CasePoints {
    /// The factors as one line: `high outlier 1.5 (r 2.5 above high_ratio 2); severity 1.15 (with MCC)`.
    pub fn explain(&self, policy: &Policy, case: &Case) -> String {
        let mut out = String::new();
        self.explain_into(&mut out, policy, case);
        out
    }

    /// Appends [`CasePoints::explain`]'s text to `out`.
    pub fn explain_into(&self, out: &mut String, policy: &Policy, case: &Case) {
        use std::fmt::Write;
        for (i, f) in self.factors.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            let _ = write!(out, "{} {} (", f.name, round_half_up(f.value, 4).normalize());
            write_reason(out, &f.reason, policy, case);
            out.push(')');
        }
    }

    /// Each factor's reason as a sentence, in order.
    pub fn reasons(&self, policy: &Policy, case: &Case) -> Vec<String> {
        self.factors
            .iter()
            .map(|f| {
                let mut out = String::new();
                write_reason(&mut out, &f.reason, policy, case);
                out
            })
            .collect()
    }
}

fn write_reason(out: &mut String, reason: &Reason, policy: &Policy, case: &Case) {
    use std::fmt::Write;
    let hospital_id = case.hospital_id.as_deref().unwrap_or("");
    let outliers = &policy.outliers;
    let _ = match reason {
        Reason::Exempt { exemption, matched } => {
            write!(out, "{}: {matched}", policy.exemptions.get(*exemption).map_or("", |e| e.name.as_str()))
        }
        Reason::BedDay { group, paid_days, los } => {
            let bed_day = policy.bed_day.get(*group);
            write!(
                out,
                "{}: {paid_days} of {los} days at {} points",
                bed_day.map_or("", |b| b.name.as_str()),
                bed_day.map_or(Decimal::ZERO, |b| b.points_per_day).normalize()
            )
        }
        Reason::Ungrouped => write!(out, "no group: no points until reviewed"),
        Reason::HighOutlier { ratio, special_review: true } => write!(
            out,
            "r {} above special_review_ratio {}: special review, priced as a high outlier meanwhile",
            round_half_up(*ratio, 4).normalize(),
            outliers.special_review_ratio.unwrap_or_default()
        ),
        Reason::HighOutlier { ratio, special_review: false } => {
            write!(out, "r {} above high_ratio {}", round_half_up(*ratio, 4).normalize(), outliers.high_ratio)
        }
        Reason::LowOutlier { ratio } => write!(out, "r {} below low_ratio {}", round_half_up(*ratio, 4).normalize(), outliers.low_ratio),
        Reason::CostMissing => write!(out, "total_cost missing: outlier rules not applied"),
        Reason::Severity(SeverityReason::Mcc) => write!(out, "with MCC"),
        Reason::Severity(SeverityReason::Cc) => write!(out, "with CC"),
        Reason::Severity(SeverityReason::ShortStayDeath { los }) => write!(out, "death after {los} days"),
        Reason::Severity(SeverityReason::LongStayDeath) => write!(out, "death after a longer stay"),
        Reason::Severity(SeverityReason::Age(age)) => write!(out, "age {age}"),
        Reason::Severity(SeverityReason::AgeDays(days)) => write!(out, "age {days} days"),
        Reason::Severity(SeverityReason::Condition(i)) => {
            write!(out, "{}", policy.conditions.get(*i).map_or("condition", |c| c.name.as_str()))
        }
        Reason::HospitalOverride(i) => write!(out, "hospital {hospital_id}: hospital_overrides[{i}]"),
        Reason::FundMissing => write!(out, "hospital {hospital_id}: per-fund coefficient and the case has no fund: coefficient 1"),
        Reason::HospitalNotApplied(c) => write!(out, "hospital coefficient {} not applied to outliers", c.normalize()),
        Reason::PaidByItem => write!(out, "group paid by item"),
        Reason::CostRatio { ratio } => write!(
            out,
            "priced by cost ratio {} × cost_ratio_multiplier {}",
            round_half_up(*ratio, 4).normalize(),
            outliers.cost_ratio_multiplier.normalize()
        ),
        Reason::SpecialReviewNormal { ratio } => write!(
            out,
            "r {} above special_review_ratio {}: special review, priced as a normal case meanwhile",
            round_half_up(*ratio, 4).normalize(),
            outliers.special_review_ratio.unwrap_or_default()
        ),
        Reason::Severity(SeverityReason::TumourMetastasis(code)) => write!(out, "tumour metastasis ({code})"),
        Reason::Severity(SeverityReason::Chemotherapy(code)) => write!(out, "chemotherapy ({code})"),
        Reason::Severity(SeverityReason::Radiotherapy(code)) => write!(out, "radiotherapy ({code})"),
        Reason::Hospital => write!(out, "hospital {hospital_id} level {}", policy.hospital_level(hospital_id).unwrap_or("?")),
        Reason::Grassroots => write!(out, "grassroots group"),
        Reason::HospitalUnknown => write!(out, "hospital {hospital_id:?} not in the policy: coefficient 1"),
    };
}

/// Whether `code` starts with `prefix`: a byte loop, because codes and prefixes are a few bytes
/// long and every case checks several (a `memcmp` call per pair costs more than the compare).
fn has_prefix(code: &str, prefix: &str) -> bool {
    let (code, prefix) = (code.as_bytes(), prefix.as_bytes());
    code.len() >= prefix.len() && code.iter().zip(prefix).all(|(a, b)| a == b)
}

fn any_prefix<'c>(codes: &'c [String], prefixes: &[String]) -> Option<&'c str> {
    if prefixes.is_empty() {
        return None;
    }
    codes.iter().find(|c| prefixes.iter().any(|p| has_prefix(c, p))).map(String::as_str)
}

fn any_code<'c>(codes: &'c [String], wanted: &[String]) -> Option<&'c str> {
    if wanted.is_empty() {
        return None;
    }
    codes.iter().find(|c| wanted.iter().any(|w| w.len() == c.len() && has_prefix(c, w))).map(String::as_str)
}

fn code_adjustment<'c>(case: &'c Case, adjustment: &CodeAdjustment) -> Option<&'c str> {
    any_prefix(&case.diagnoses, &adjustment.diagnosis_prefixes).or_else(|| any_code(&case.procedures, &adjustment.procedure_codes))
}

/// The largest applicable severity coefficient and why, or `None` when none applies.
pub fn severity_coefficient(policy: &Policy, case: &Case, complication: Option<Severity>) -> Option<(Decimal, SeverityReason)> {
    severity_with(policy, case, complication, &GroupTerms::default()).map(|(c, r, _)| (c, r))
}

/// [`severity_coefficient`] with the group's supplement rows (considered after `[severity]`, in
/// file order); also the winning row's `mean_cost`.
fn severity_with(
    policy: &Policy,
    case: &Case,
    complication: Option<Severity>,
    terms: &GroupTerms<'_>,
) -> Option<(Decimal, SeverityReason, Option<Decimal>)> {
    let s = &policy.severity;
    // The largest wins; among equals, the first considered (deterministic).
    let mut best: Option<(Decimal, SeverityReason, Option<Decimal>)> = None;
    let mut consider = |coefficient: Decimal, reason: &dyn Fn() -> SeverityReason, mean_cost: Option<Decimal>| {
        if best.as_ref().is_none_or(|(b, _, _)| coefficient > *b) {
            best = Some((coefficient, reason(), mean_cost));
        }
    };
    match complication {
        Some(Severity::Mcc) => s.mcc.iter().for_each(|&c| consider(c, &|| SeverityReason::Mcc, None)),
        Some(Severity::Cc) => s.cc.iter().for_each(|&c| consider(c, &|| SeverityReason::Cc, None)),
        None => {}
    }
    if let (Some(death), Some(5)) = (&s.death, case.disposition) {
        match case.los {
            Some(los) if los <= death.short_stay_max_los => {
                consider(death.short_stay_coefficient, &|| SeverityReason::ShortStayDeath { los }, None)
            }
            _ => consider(death.long_stay_coefficient, &|| SeverityReason::LongStayDeath, None),
        }
    }
    for band in &s.age_bands {
        let in_days = band.min_age_days.is_some() || band.max_age_days.is_some();
        if age_within(case.age, case.age_days, (band.min_age, band.max_age), (band.min_age_days, band.max_age_days)) {
            let reason =
                if in_days { SeverityReason::AgeDays(case.age_days.unwrap_or(0)) } else { SeverityReason::Age(case.age.unwrap_or(0)) };
            consider(band.coefficient, &|| reason.clone(), None);
        }
    }
    type CodeKind<'p> = (&'p Option<CodeAdjustment>, fn(String) -> SeverityReason);
    let kinds: [CodeKind<'_>; 3] = [
        (&s.tumour_metastasis, SeverityReason::TumourMetastasis),
        (&s.chemotherapy, SeverityReason::Chemotherapy),
        (&s.radiotherapy, SeverityReason::Radiotherapy),
    ];
    for (adjustment, reason) in kinds {
        if let Some(adjustment) = adjustment {
            if let Some(code) = code_adjustment(case, adjustment) {
                consider(adjustment.coefficient, &|| reason(code.to_string()), None);
            }
        }
    }
    for row in terms.adjustments {
        if policy.conditions.get(row.condition).is_some_and(|c| c.holds(case, terms.facts)) {
            consider(row.coefficient, &|| SeverityReason::Condition(row.condition), row.mean_cost);
        }
    }
    best
}

/// The mean a candidate group's cost is compared with: `mean` (the group's at the hospital's
/// level), scaled by the severity factor or replaced by the winning row's `mean_cost` when the
/// policy sets `adjust_mean_cost`.
pub fn adjusted_mean(policy: &Policy, case: &Case, complication: Option<Severity>, terms: &GroupTerms<'_>, mean: Decimal) -> Decimal {
    if !policy.severity.adjust_mean_cost {
        return mean;
    }
    match severity_with(policy, case, complication, terms) {
        Some((coefficient, _, row_mean)) => row_mean.unwrap_or(mean * coefficient),
        None => mean,
    }
}

/// Computes a case's points under a policy. `group` is `None` when the case was not grouped;
/// `complication` is the CC/MCC level found by the DRG grouper, when known.
pub fn price_case(policy: &Policy, case: &Case, group: Option<&ScoredGroup<'_>>, complication: Option<Severity>) -> CasePoints {
    let hospital_coefficient = policy.hospital_coefficient(case.hospital_id.as_deref().unwrap_or(""));
    price_case_at(policy, case, group, complication, hospital_coefficient)
}

/// [`price_case`] with the case's hospital coefficient already looked up (`None`: the hospital
/// is not in the policy), for callers that resolved the hospital once for grouping too.
pub fn price_case_at(
    policy: &Policy,
    case: &Case,
    group: Option<&ScoredGroup<'_>>,
    complication: Option<Severity>,
    hospital_coefficient: Option<Coefficient>,
) -> CasePoints {
    price_case_with(policy, case, group, complication, hospital_coefficient, &GroupTerms::default())
}

/// [`price_case_at`] with a DIP group's regional terms (pricing mode, own grassroots coefficient,
/// supplement rows).
pub fn price_case_with(
    policy: &Policy,
    case: &Case,
    group: Option<&ScoredGroup<'_>>,
    complication: Option<Severity>,
    hospital_coefficient: Option<Coefficient>,
    terms: &GroupTerms<'_>,
) -> CasePoints {
    let mut result = CasePoints {
        category: CaseCategory::Normal,
        base_score: group.map_or(Decimal::ZERO, |g| g.score),
        cost_ratio: None,
        factors: SmallVec::new(),
        points: Points::ZERO,
    };
    let los = case.los.unwrap_or(0);

    for (index, exemption) in policy.exemptions.iter().enumerate() {
        let matched = any_prefix(&case.diagnoses, &exemption.diagnosis_prefixes)
            .or_else(|| any_code(&case.procedures, &exemption.procedure_codes))
            .map(str::to_string)
            .or_else(|| exemption.min_los.is_some_and(|min| los >= min).then(|| format!("stay of {los} days")))
            .or_else(|| {
                let benefit = case.benefit.as_deref().filter(|b| exemption.benefits.iter().any(|x| x == b))?;
                Some(format!("insured category {benefit}"))
            });
        if let Some(matched) = matched {
            result.category = CaseCategory::Exempt;
            result.factors.push(Factor { name: "exempt", value: Decimal::ZERO, reason: Reason::Exempt { exemption: index, matched } });
            return result;
        }
    }

    for (index, bed_day) in policy.bed_day.iter().enumerate() {
        let by_diagnosis = case.principal_diagnosis().filter(|d| bed_day.diagnosis_prefixes.iter().any(|p| has_prefix(d, p)));
        let by_department = case.department.as_deref().filter(|d| bed_day.departments.iter().any(|x| x == d));
        if (by_diagnosis.is_some() || by_department.is_some()) && los >= bed_day.min_los && los > 0 {
            let paid_days = los.min(bed_day.max_days);
            // The base score stays the group's: the CMI counts the case as its group, whatever
            // it is paid by.
            result.category = CaseCategory::BedDay;
            result.factors.push(Factor {
                name: "bed days",
                value: Decimal::from(paid_days),
                reason: Reason::BedDay { group: index, paid_days, los },
            });
            result.points = Points(round_half_up(bed_day.points_per_day * Decimal::from(paid_days), policy.points_decimals));
            return result;
        }
    }

    let Some(group) = group else {
        result.category = CaseCategory::Ungrouped;
        result.factors.push(Factor { name: "ungrouped", value: Decimal::ZERO, reason: Reason::Ungrouped });
        return result;
    };

    let outliers = &policy.outliers;
    match terms.pricing {
        GroupPricing::Points => {}
        GroupPricing::Item => {
            result.category = CaseCategory::Exempt;
            result.factors.push(Factor { name: "paid by item", value: Decimal::ZERO, reason: Reason::PaidByItem });
            return result;
        }
        GroupPricing::CostRatio => {
            match case.total_cost {
                Some(cost) if group.mean_cost > Decimal::ZERO => {
                    let ratio = cost / group.mean_cost;
                    result.cost_ratio = Some(ratio);
                    let factor = ratio * outliers.cost_ratio_multiplier;
                    result.factors.push(Factor { name: "cost ratio", value: factor, reason: Reason::CostRatio { ratio } });
                    result.points = Points(round_half_up(group.score * factor, policy.points_decimals));
                }
                _ => result.factors.push(Factor { name: "cost ratio", value: Decimal::ZERO, reason: Reason::CostMissing }),
            }
            return result;
        }
    }

    // H: the group's own grassroots coefficient, the policy's, else the hospital's (override,
    // own, level; per fund).
    let grassroots = if group.grassroots { terms.grassroots_coefficient.or(policy.grassroots_coefficient) } else { None };
    let (hospital_value, hospital_reason) = match grassroots {
        Some(c) => (c, Reason::Grassroots),
        None => {
            let overridden = policy.hospital_override(case).and_then(|o| o.coefficient.map(|c| (o, c)));
            let (coefficient, reason) = match overridden {
                Some((o, c)) => {
                    let index = policy.hospital_overrides.iter().position(|x| std::ptr::eq(x, o)).unwrap_or(0);
                    (Some(c), Reason::HospitalOverride(index))
                }
                None => (hospital_coefficient, Reason::Hospital),
            };
            match coefficient {
                Some(c) => match c.for_fund(case.fund) {
                    Some(value) => (value, reason),
                    None => (Decimal::ONE, Reason::FundMissing),
                },
                None => (Decimal::ONE, Reason::HospitalUnknown),
            }
        }
    };

    let severity = severity_with(policy, case, complication, terms);
    let mut mean = group.mean_cost;
    if policy.severity.adjust_mean_cost {
        if let Some((coefficient, _, row_mean)) = &severity {
            mean = row_mean.unwrap_or(mean * coefficient);
        }
    }

    let mut adjusted = group.score;
    let mut apply_hospital = true;
    match case.total_cost {
        Some(cost) if mean > Decimal::ZERO => {
            let ratio = cost / mean;
            result.cost_ratio = Some(ratio);
            if outliers.is_high(ratio) {
                let special = outliers.special_review_ratio.is_some_and(|extreme| ratio > extreme);
                result.category = if special { CaseCategory::SpecialReview } else { CaseCategory::HighOutlier };
                if special && outliers.special_review_pricing == SpecialReviewPricing::Normal {
                    result.factors.push(Factor {
                        name: "special review",
                        value: Decimal::ONE,
                        reason: Reason::SpecialReviewNormal { ratio },
                    });
                } else {
                    let multiplier = match outliers.high_formula {
                        HighOutlierFormula::ExcessPlusOne => (ratio - outliers.high_ratio) * outliers.high_excess_factor + Decimal::ONE,
                        HighOutlierFormula::Proportional => ratio,
                        HighOutlierFormula::ExcessPlusHospital => {
                            (ratio - outliers.high_ratio) * outliers.high_excess_factor + hospital_value
                        }
                    };
                    adjusted = group.score * multiplier;
                    apply_hospital = outliers.apply_hospital_coefficient;
                    let reason = Reason::HighOutlier { ratio, special_review: special };
                    result.factors.push(Factor { name: "high outlier", value: multiplier, reason });
                }
            } else if outliers.is_low(ratio) {
                let multiplier = match outliers.low_formula {
                    LowOutlierFormula::Proportional => ratio,
                    LowOutlierFormula::Full => Decimal::ONE,
                };
                adjusted = group.score * multiplier;
                apply_hospital = outliers.apply_hospital_coefficient;
                result.category = CaseCategory::LowOutlier;
                result.factors.push(Factor { name: "low outlier", value: multiplier, reason: Reason::LowOutlier { ratio } });
            }
        }
        _ => result.factors.push(Factor { name: "cost ratio", value: Decimal::ONE, reason: Reason::CostMissing }),
    }

    let severity = match severity {
        Some((coefficient, reason, _)) => {
            result.factors.push(Factor { name: "severity", value: coefficient, reason: Reason::Severity(reason) });
            coefficient
        }
        None => Decimal::ONE,
    };

    let hospital = if apply_hospital {
        result.factors.push(Factor { name: "hospital", value: hospital_value, reason: hospital_reason });
        hospital_value
    } else {
        result.factors.push(Factor { name: "hospital", value: Decimal::ONE, reason: Reason::HospitalNotApplied(hospital_value) });
        Decimal::ONE
    };
    result.points = Points(round_half_up(adjusted * severity * hospital, policy.points_decimals));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_codes_match_by_bytes() {
        assert!(has_prefix("C78.001", "C78") && has_prefix("C78", "C78") && has_prefix("C78", ""));
        assert!(!has_prefix("C7", "C78") && !has_prefix("C79.0", "C78") && !has_prefix("c78.0", "C78"));
        assert!(has_prefix("肺癌C78", "肺癌") && !has_prefix("肺", "肺癌"));
        let codes = ["A01.000".to_string(), "99.2500".to_string()];
        assert_eq!(any_code(&codes, &["99.2500".to_string()]), Some("99.2500"));
        assert_eq!(any_code(&codes, &["99.25".to_string()]), None, "a code list matches whole codes only");
        assert_eq!(any_prefix(&codes, &["99.25".to_string()]), Some("99.2500"));
        assert_eq!(any_prefix(&codes, &[]), None);
    }
}

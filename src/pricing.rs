//! Case points (病例点数): a grouped case's score adjusted by the region policy, with every factor
//! and the reason it applied.
//!
//! Order of the rules, the first that applies deciding the category:
//! 1. item-based exemption (按项目付费) → category `exempt`, 0 points;
//! 2. bed-day group (床日付费) with a long enough stay → points per day × paid days;
//! 3. no group → `ungrouped`, 0 points (to be reviewed);
//! 4. cost ratio r = case cost ÷ the group's mean cost at the case's hospital level:
//!    r above `special_review_ratio` → `special_review` (priced as a high outlier until reviewed);
//!    r above `high_ratio` → `high_outlier`; r below `low_ratio` → `low_outlier`; else `normal`;
//! 5. the severity coefficient: of all that apply (CC/MCC, death, age band, tumour metastasis,
//!    chemotherapy, radiotherapy), the largest;
//! 6. the hospital coefficient (its own, else its level's; grassroots groups use the grassroots
//!    coefficient).
//!
//! Points = adjusted score × severity × hospital coefficient, rounded half-up to the policy's
//! `points_decimals` once, at the end. Pure: no I/O.

use crate::case::Case;
use crate::drg::trace::Severity;
use crate::policy::{Boundary, CodeAdjustment, HighOutlierFormula, LowOutlierFormula, Policy};
use crate::units::{round_half_up, Points};
use rust_decimal::Decimal;

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
pub struct ScoredGroup {
    pub code: String,
    /// DIP: the group's score; DRG: RW × `drg_points_per_rw`.
    pub score: Decimal,
    /// The group's mean cost at the case's hospital level (overall when unknown).
    pub mean_cost: Decimal,
    /// A grassroots group (基层病种): same coefficient at every level.
    pub grassroots: bool,
}

/// One step of the computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub name: &'static str,
    pub value: Decimal,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CasePoints {
    pub category: CaseCategory,
    pub group: Option<String>,
    /// The group's score before any adjustment (0 when none).
    pub base_score: Decimal,
    /// Case cost ÷ group mean cost, when both are known.
    pub cost_ratio: Option<Decimal>,
    pub factors: Vec<Factor>,
    pub points: Points,
}

impl CasePoints {
    /// The factors as one line: `outlier 1.5 (r 2.5 > 2); severity 1.1 (MCC)`.
    pub fn explain(&self) -> String {
        self.factors.iter().map(|f| format!("{} {} ({})", f.name, round_half_up(f.value, 4).normalize(), f.reason)).collect::<Vec<_>>().join("; ")
    }
}

fn any_prefix(codes: &[String], prefixes: &[String]) -> Option<String> {
    codes.iter().find(|c| prefixes.iter().any(|p| c.starts_with(p.as_str()))).cloned()
}

fn any_code(codes: &[String], wanted: &[String]) -> Option<String> {
    codes.iter().find(|c| wanted.contains(c)).cloned()
}

fn code_adjustment(case: &Case, adjustment: &CodeAdjustment) -> Option<String> {
    any_prefix(&case.diagnoses, &adjustment.diagnosis_prefixes).or_else(|| any_code(&case.procedures, &adjustment.procedure_codes))
}

/// The largest applicable severity coefficient and why, or `None` when none applies.
pub fn severity_coefficient(policy: &Policy, case: &Case, complication: Option<Severity>) -> Option<(Decimal, String)> {
    let s = &policy.severity;
    let mut candidates: Vec<(Decimal, String)> = Vec::new();
    match complication {
        Some(Severity::Mcc) => candidates.extend(s.mcc.map(|c| (c, "with MCC".to_string()))),
        Some(Severity::Cc) => candidates.extend(s.cc.map(|c| (c, "with CC".to_string()))),
        None => {}
    }
    if let (Some(death), Some(5)) = (&s.death, case.disposition) {
        match case.los {
            Some(los) if los <= death.short_stay_max_los => {
                candidates.push((death.short_stay_coefficient, format!("death after {los} days")))
            }
            _ => candidates.push((death.long_stay_coefficient, "death after a longer stay".to_string())),
        }
    }
    if let Some(age) = case.age {
        for band in &s.age_bands {
            if band.min_age.is_none_or(|min| age >= min) && band.max_age.is_none_or(|max| age <= max) {
                candidates.push((band.coefficient, format!("age {age}")));
            }
        }
    }
    for (name, adjustment) in
        [("tumour metastasis", &s.tumour_metastasis), ("chemotherapy", &s.chemotherapy), ("radiotherapy", &s.radiotherapy)]
    {
        if let Some(adjustment) = adjustment {
            if let Some(code) = code_adjustment(case, adjustment) {
                candidates.push((adjustment.coefficient, format!("{name} ({code})")));
            }
        }
    }
    // The largest wins; among equals, the first listed (deterministic).
    let mut best: Option<(Decimal, String)> = None;
    for candidate in candidates {
        if best.as_ref().is_none_or(|(b, _)| candidate.0 > *b) {
            best = Some(candidate);
        }
    }
    best
}

/// Computes a case's points under a policy. `group` is `None` when the case was not grouped;
/// `complication` is the CC/MCC level found by the DRG grouper, when known.
pub fn price_case(policy: &Policy, case: &Case, group: Option<&ScoredGroup>, complication: Option<Severity>) -> CasePoints {
    let mut result = CasePoints {
        category: CaseCategory::Normal,
        group: group.map(|g| g.code.clone()),
        base_score: group.map_or(Decimal::ZERO, |g| g.score),
        cost_ratio: None,
        factors: Vec::new(),
        points: Points::ZERO,
    };
    let los = case.los.unwrap_or(0);

    for exemption in &policy.exemptions {
        let by_los = exemption.min_los.is_some_and(|min| los >= min).then(|| format!("stay of {los} days"));
        let reason = any_prefix(&case.diagnoses, &exemption.diagnosis_prefixes)
            .or_else(|| any_code(&case.procedures, &exemption.procedure_codes))
            .or(by_los);
        if let Some(reason) = reason {
            result.category = CaseCategory::Exempt;
            result.factors.push(Factor { name: "exempt", value: Decimal::ZERO, reason: format!("{}: {reason}", exemption.name) });
            return result;
        }
    }

    for bed_day in &policy.bed_day {
        let by_diagnosis = case.principal_diagnosis().filter(|d| bed_day.diagnosis_prefixes.iter().any(|p| d.starts_with(p.as_str())));
        let by_department = case.department.as_deref().filter(|d| bed_day.departments.iter().any(|x| x == d));
        if (by_diagnosis.is_some() || by_department.is_some()) && los >= bed_day.min_los && los > 0 {
            let paid_days = los.min(bed_day.max_days);
            result.category = CaseCategory::BedDay;
            result.base_score = bed_day.points_per_day;
            result.factors.push(Factor {
                name: "bed days",
                value: Decimal::from(paid_days),
                reason: format!("{}: {paid_days} of {los} days at {} points", bed_day.name, bed_day.points_per_day.normalize()),
            });
            result.points = Points(round_half_up(bed_day.points_per_day * Decimal::from(paid_days), policy.points_decimals));
            return result;
        }
    }

    let Some(group) = group else {
        result.category = CaseCategory::Ungrouped;
        result.factors.push(Factor { name: "ungrouped", value: Decimal::ZERO, reason: "no group: no points until reviewed".into() });
        return result;
    };

    let outliers = &policy.outliers;
    let mut adjusted = group.score;
    match case.total_cost {
        Some(cost) if group.mean_cost > Decimal::ZERO => {
            let ratio = cost / group.mean_cost;
            result.cost_ratio = Some(ratio);
            let (above_high, below_low) = match outliers.boundary {
                Boundary::Strict => (ratio > outliers.high_ratio, ratio < outliers.low_ratio),
                Boundary::Inclusive => (ratio >= outliers.high_ratio, ratio <= outliers.low_ratio),
            };
            let shown = round_half_up(ratio, 4).normalize();
            if above_high {
                let multiplier = match outliers.high_formula {
                    HighOutlierFormula::ExcessPlusOne => (ratio - outliers.high_ratio) * outliers.high_excess_factor + Decimal::ONE,
                    HighOutlierFormula::Proportional => ratio,
                };
                adjusted = group.score * multiplier;
                let special = outliers.special_review_ratio.is_some_and(|extreme| ratio > extreme);
                result.category = if special { CaseCategory::SpecialReview } else { CaseCategory::HighOutlier };
                let reason = if special {
                    format!(
                        "r {shown} above special_review_ratio {}: special review, priced as a high outlier meanwhile",
                        outliers.special_review_ratio.unwrap_or_default()
                    )
                } else {
                    format!("r {shown} above high_ratio {}", outliers.high_ratio)
                };
                result.factors.push(Factor { name: "high outlier", value: multiplier, reason });
            } else if below_low {
                let multiplier = match outliers.low_formula {
                    LowOutlierFormula::Proportional => ratio,
                    LowOutlierFormula::Full => Decimal::ONE,
                };
                adjusted = group.score * multiplier;
                result.category = CaseCategory::LowOutlier;
                result.factors.push(Factor {
                    name: "low outlier",
                    value: multiplier,
                    reason: format!("r {shown} below low_ratio {}", outliers.low_ratio),
                });
            }
        }
        _ => result.factors.push(Factor {
            name: "cost ratio",
            value: Decimal::ONE,
            reason: "total_cost missing: outlier rules not applied".into(),
        }),
    }

    let severity = match severity_coefficient(policy, case, complication) {
        Some((coefficient, reason)) => {
            result.factors.push(Factor { name: "severity", value: coefficient, reason });
            coefficient
        }
        None => Decimal::ONE,
    };

    let hospital_id = case.hospital_id.as_deref().unwrap_or("");
    let hospital = if group.grassroots && policy.grassroots_coefficient.is_some() {
        policy.grassroots_coefficient.map(|c| (c, "grassroots group".to_string()))
    } else {
        policy
            .hospital_coefficient(hospital_id)
            .map(|c| (c, format!("hospital {hospital_id} level {}", policy.hospital_level(hospital_id).unwrap_or("?"))))
    };
    let hospital_coefficient = match hospital {
        Some((coefficient, reason)) => {
            result.factors.push(Factor { name: "hospital", value: coefficient, reason });
            coefficient
        }
        None => {
            result.factors.push(Factor {
                name: "hospital",
                value: Decimal::ONE,
                reason: format!("hospital {hospital_id:?} not in the policy: coefficient 1"),
            });
            Decimal::ONE
        }
    };
    result.points = Points(round_half_up(adjusted * severity * hospital_coefficient, policy.points_decimals));
    result
}

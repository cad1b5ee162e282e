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
}

/// Which severity adjustment won.
#[derive(Debug, Clone, PartialEq)]
pub enum SeverityReason {
    Mcc,
    Cc,
    ShortStayDeath { los: i64 },
    LongStayDeath,
    Age(i64),
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
    let s = &policy.severity;
    // The largest wins; among equals, the first considered (deterministic).
    let mut best: Option<(Decimal, SeverityReason)> = None;
    let mut consider = |coefficient: Decimal, reason: &dyn Fn() -> SeverityReason| {
        if best.as_ref().is_none_or(|(b, _)| coefficient > *b) {
            best = Some((coefficient, reason()));
        }
    };
    match complication {
        Some(Severity::Mcc) => s.mcc.iter().for_each(|&c| consider(c, &|| SeverityReason::Mcc)),
        Some(Severity::Cc) => s.cc.iter().for_each(|&c| consider(c, &|| SeverityReason::Cc)),
        None => {}
    }
    if let (Some(death), Some(5)) = (&s.death, case.disposition) {
        match case.los {
            Some(los) if los <= death.short_stay_max_los => {
                consider(death.short_stay_coefficient, &|| SeverityReason::ShortStayDeath { los })
            }
            _ => consider(death.long_stay_coefficient, &|| SeverityReason::LongStayDeath),
        }
    }
    if let Some(age) = case.age {
        for band in &s.age_bands {
            if band.min_age.is_none_or(|min| age >= min) && band.max_age.is_none_or(|max| age <= max) {
                consider(band.coefficient, &|| SeverityReason::Age(age));
            }
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
                consider(adjustment.coefficient, &|| reason(code.to_string()));
            }
        }
    }
    best
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
    hospital_coefficient: Option<Decimal>,
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
            .or_else(|| exemption.min_los.is_some_and(|min| los >= min).then(|| format!("stay of {los} days")));
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
            result.category = CaseCategory::BedDay;
            result.base_score = bed_day.points_per_day;
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
    let mut adjusted = group.score;
    match case.total_cost {
        Some(cost) if group.mean_cost > Decimal::ZERO => {
            let ratio = cost / group.mean_cost;
            result.cost_ratio = Some(ratio);
            let (above_high, below_low) = match outliers.boundary {
                Boundary::Strict => (ratio > outliers.high_ratio, ratio < outliers.low_ratio),
                Boundary::Inclusive => (ratio >= outliers.high_ratio, ratio <= outliers.low_ratio),
            };
            if above_high {
                let multiplier = match outliers.high_formula {
                    HighOutlierFormula::ExcessPlusOne => (ratio - outliers.high_ratio) * outliers.high_excess_factor + Decimal::ONE,
                    HighOutlierFormula::Proportional => ratio,
                };
                adjusted = group.score * multiplier;
                let special = outliers.special_review_ratio.is_some_and(|extreme| ratio > extreme);
                result.category = if special { CaseCategory::SpecialReview } else { CaseCategory::HighOutlier };
                let reason = Reason::HighOutlier { ratio, special_review: special };
                result.factors.push(Factor { name: "high outlier", value: multiplier, reason });
            } else if below_low {
                let multiplier = match outliers.low_formula {
                    LowOutlierFormula::Proportional => ratio,
                    LowOutlierFormula::Full => Decimal::ONE,
                };
                adjusted = group.score * multiplier;
                result.category = CaseCategory::LowOutlier;
                result.factors.push(Factor { name: "low outlier", value: multiplier, reason: Reason::LowOutlier { ratio } });
            }
        }
        _ => result.factors.push(Factor { name: "cost ratio", value: Decimal::ONE, reason: Reason::CostMissing }),
    }

    let severity = match severity_coefficient(policy, case, complication) {
        Some((coefficient, reason)) => {
            result.factors.push(Factor { name: "severity", value: coefficient, reason: Reason::Severity(reason) });
            coefficient
        }
        None => Decimal::ONE,
    };

    let hospital = if group.grassroots && policy.grassroots_coefficient.is_some() {
        policy.grassroots_coefficient.map(|c| (c, Reason::Grassroots))
    } else {
        hospital_coefficient.map(|c| (c, Reason::Hospital))
    };
    let hospital_coefficient = match hospital {
        Some((coefficient, reason)) => {
            result.factors.push(Factor { name: "hospital", value: coefficient, reason });
            coefficient
        }
        None => {
            result.factors.push(Factor { name: "hospital", value: Decimal::ONE, reason: Reason::HospitalUnknown });
            Decimal::ONE
        }
    };
    result.points = Points(round_half_up(adjusted * severity * hospital_coefficient, policy.points_decimals));
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

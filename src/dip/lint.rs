//! Lint of a policy's regional DIP keys (`[dip_grouping]`, `[[conditions]]`, age bands), alone or
//! with the catalog they will run on: rules that can never take effect. Never changes grouping.
//!
//! What it finds:
//! - a `candidate_rank` key that can never decide (after `code`, which always leaves one
//!   candidate; `kind` with `candidate_scope = "core"`; `full_code` without prefix codes);
//! - a condition (or an age band in days) no case can meet, and one no catalog row names;
//! - classes missing from `final_order` (candidates of that class are never chosen), and
//!   classes listed after an earlier `<kind>/any` (never reached);
//! - keys that have no effect: `special_review_pricing = "normal"` without
//!   `special_review_ratio`, a `cost_ratio_multiplier` with no `pricing = cost_ratio` group.

use crate::dip::catalog::{DipCatalog, GroupKind, GroupPricing, Treatment};
pub use crate::drg::lint::Level;
use crate::policy::{CandidateScope, ClassType, ComplicationTest, Condition, OrderClass, Policy, RankKey, SpecialReviewPricing};
use rust_decimal::Decimal;
use std::fmt;

/// One finding of [`lint_policy`]. `code` is stable, for documentation and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFinding {
    /// A warning: the rule can never take effect; a note (`DIP_CONDITION_UNUSED`): worth knowing.
    pub level: Level,
    /// `DIP_RANK_UNREACHABLE`, `DIP_CONDITION_UNSATISFIABLE`, `DIP_CONDITION_UNUSED`,
    /// `DIP_CLASS_MISSING`, `DIP_CLASS_UNREACHABLE` or `DIP_KEY_NO_EFFECT`.
    pub code: &'static str,
    /// The policy key it is about (`dip_grouping.candidate_rank`, `conditions[3]`…).
    pub key: String,
    pub message: String,
}

impl fmt::Display for PolicyFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Note => "note",
        };
        write!(f, "{level}: {} {}: {}", self.code, self.key, self.message)
    }
}

const TREATMENTS: [Treatment; 4] = [Treatment::Surgery, Treatment::Therapeutic, Treatment::Diagnostic, Treatment::Conservative];
const KINDS: [GroupKind; 3] = [GroupKind::Core, GroupKind::Grassroots, GroupKind::Comprehensive];

/// Why no case can meet a condition, if so. (Crossed bounds are refused when the policy loads.)
fn unsatisfiable(condition: &Condition, catalog: Option<&DipCatalog>) -> Option<String> {
    if !condition.satisfiable() {
        return Some("a day-age test needs age 0, and min_age is above 0".into());
    }
    if condition.min_age_days.is_some_and(|d| d > 365) {
        return Some(format!("min_age_days {} exceeds the 365 days of age 0", condition.min_age_days.unwrap_or(0)));
    }
    if let (Some(catalog), Some(test)) = (catalog, condition.complication) {
        if catalog.complications.is_empty() {
            let file = if test == ComplicationTest::Cc { "cc.csv" } else { "mcc.csv" };
            return Some(format!(
                "complication {} needs the catalog's {file}, which it lacks",
                if test == ComplicationTest::Cc { "cc" } else { "mcc" }
            ));
        }
    }
    None
}

/// Lints a policy's DIP keys; with `catalog`, also against the rows it holds. Findings come in
/// key order.
pub fn lint_policy(policy: &Policy, catalog: Option<&DipCatalog>) -> Vec<PolicyFinding> {
    let mut findings = Vec::new();
    let mut add = |code: &'static str, key: String, message: String| {
        let level = if code == "DIP_CONDITION_UNUSED" { Level::Note } else { Level::Warning };
        findings.push(PolicyFinding { level, code, key, message })
    };
    let rules = policy.dip_grouping();

    // Rank keys that can never decide.
    let rank_key = "dip_grouping.candidate_rank".to_string();
    if let Some(at) = rules.candidate_rank.iter().position(|k| *k == RankKey::Code) {
        for key in &rules.candidate_rank[at + 1..] {
            add("DIP_RANK_UNREACHABLE", rank_key.clone(), format!("{} comes after code, which always leaves one candidate", key.as_str()));
        }
    }
    if rules.candidate_scope == CandidateScope::Core && rules.candidate_rank.contains(&RankKey::Kind) {
        add("DIP_RANK_UNREACHABLE", rank_key.clone(), "kind never decides: candidate_scope \"core\" ranks core candidates only".into());
    }
    if let Some(catalog) = catalog {
        if rules.candidate_rank.contains(&RankKey::FullCode) && !catalog.groups.iter().any(|g| g.has_prefix_codes()) {
            add("DIP_RANK_UNREACHABLE", rank_key.clone(), "full_code never decides: the catalog has no prefix codes".into());
        }
    }

    // Conditions no case can meet, or no row names.
    for (i, condition) in policy.conditions.iter().enumerate() {
        if let Some(why) = unsatisfiable(condition, catalog) {
            add("DIP_CONDITION_UNSATISFIABLE", format!("conditions[{i}]"), format!("condition {:?}: {why}", condition.name));
        }
        if let Some(catalog) = catalog {
            if !catalog.groups.iter().any(|g| g.adjustments.iter().any(|a| a.condition == condition.name)) {
                add(
                    "DIP_CONDITION_UNUSED",
                    format!("conditions[{i}]"),
                    format!("condition {:?}: no adjustments.csv row names it", condition.name),
                );
            }
        }
    }
    for (i, band) in policy.severity.age_bands.iter().enumerate() {
        let days = band.min_age_days.is_some() || band.max_age_days.is_some();
        if days && band.min_age.is_some_and(|a| a > 0) {
            add(
                "DIP_CONDITION_UNSATISFIABLE",
                format!("severity.age_bands[{i}]"),
                "a day-age bound needs age 0, and min_age is above 0".into(),
            );
        }
    }

    // Keys without effect.
    let outliers = &policy.outliers;
    if outliers.special_review_pricing == SpecialReviewPricing::Normal && outliers.special_review_ratio.is_none() {
        add("DIP_KEY_NO_EFFECT", "outliers.special_review_pricing".into(), "has no effect without outliers.special_review_ratio".into());
    }
    if let Some(catalog) = catalog {
        if outliers.cost_ratio_multiplier != Decimal::ONE && !catalog.groups.iter().any(|g| g.pricing == GroupPricing::CostRatio) {
            add(
                "DIP_KEY_NO_EFFECT",
                "outliers.cost_ratio_multiplier".into(),
                "has no effect: no catalog group has pricing cost_ratio".into(),
            );
        }
    }

    // Classes: the ones listed after an earlier <kind>/any, and the ones missing.
    let order = &rules.final_order;
    let order_key = "dip_grouping.final_order".to_string();
    for (i, class) in order.iter().enumerate() {
        let shadowed = order[..i]
            .iter()
            .any(|earlier| earlier.kind == class.kind && earlier.treatment == ClassType::Any && class.treatment != ClassType::Blank);
        if shadowed {
            add("DIP_CLASS_UNREACHABLE", order_key.clone(), format!("{} comes after {}/any", class.to_text(), class.kind.as_str()));
        }
    }
    let present = |kind: GroupKind, treatment: Treatment| match catalog {
        None => true,
        Some(c) => c.groups.iter().any(|g| g.kind == kind && !g.is_blank() && (g.fallback || g.treatment == treatment)),
    };
    for kind in KINDS {
        for treatment in TREATMENTS {
            let covered = order.iter().any(|c| c.holds(kind, treatment, false));
            if !covered && present(kind, treatment) {
                let class = OrderClass { kind, treatment: ClassType::Of(treatment) };
                add("DIP_CLASS_MISSING", order_key.clone(), format!("{} is not listed: such candidates are never chosen", class.to_text()));
            }
        }
    }
    let has_blank = catalog.is_none_or(|c| c.blank_group().is_some());
    if has_blank && !order.iter().any(|c| c.treatment == ClassType::Blank) && catalog.is_some() {
        add("DIP_CLASS_MISSING", order_key, "comprehensive/blank is not listed: the catalog's blank group is never chosen".into());
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tail: &str) -> Policy {
        Policy::parse(&format!(
            r#"
region = "t"
year = 2023
version = "1"
scheme = "dip"
level_coefficients = {{ "3" = 1 }}
[outliers]
low_ratio = 0.5
high_ratio = 2
boundary = "inclusive"
high_formula = "excess_plus_one"
low_formula = "proportional"
{tail}
"#
        ))
        .expect("policy")
    }

    #[test]
    fn the_defaults_have_no_findings() {
        assert_eq!(lint_policy(&policy(""), None), vec![]);
    }

    #[test]
    fn unreachable_rank_keys_are_named() {
        let p = policy("[dip_grouping]\ncandidate_scope = \"core\"\ncandidate_rank = [\"kind\", \"code\", \"highest_score\"]");
        let found: Vec<String> = lint_policy(&p, None).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "warning: DIP_RANK_UNREACHABLE dip_grouping.candidate_rank: highest_score comes after code, which always leaves one candidate",
                "warning: DIP_RANK_UNREACHABLE dip_grouping.candidate_rank: kind never decides: candidate_scope \"core\" ranks core candidates only",
            ]
        );
    }

    #[test]
    fn conditions_no_case_meets_are_named() {
        let p = policy(
            "[[conditions]]\nname = \"newborn_adult\"\nmin_age = 18\nmax_age_days = 28\n[[conditions]]\nname = \"ok\"\nmin_age = 66\n",
        );
        let found = lint_policy(&p, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].code, "DIP_CONDITION_UNSATISFIABLE");
        assert_eq!(found[0].key, "conditions[0]");
        assert!(found[0].message.contains("newborn_adult"));
    }

    #[test]
    fn keys_without_effect_are_named() {
        let mut p = policy("special_review_pricing = \"normal\"");
        let found: Vec<String> = lint_policy(&p, None).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            ["warning: DIP_KEY_NO_EFFECT outliers.special_review_pricing: has no effect without outliers.special_review_ratio"]
        );
        p.outliers.special_review_ratio = Some(Decimal::from(5));
        assert_eq!(lint_policy(&p, None), vec![]);
    }

    #[test]
    fn missing_and_shadowed_classes_are_named() {
        let p = policy("[dip_grouping]\nfinal_order = [\"core/any\", \"core/surgery\", \"grassroots/any\", \"comprehensive/surgery\", \"comprehensive/therapeutic\", \"comprehensive/diagnostic\"]");
        let found: Vec<String> = lint_policy(&p, None).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "warning: DIP_CLASS_UNREACHABLE dip_grouping.final_order: core/surgery comes after core/any",
                "warning: DIP_CLASS_MISSING dip_grouping.final_order: comprehensive/conservative is not listed: such candidates are never chosen",
            ]
        );
    }
}

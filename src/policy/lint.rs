//! Lint of a policy's pricing rules (both schemes): rules that can never apply because an earlier
//! rule always takes their cases first. Reads the policy only; never changes pricing.
//!
//! Pricing checks exemptions first, then bed-day groups in file order (see `src/pricing.rs`), so:
//! - `POLICY_BED_DAY_BEHIND_EXEMPTION`: every case a bed-day group would take is exempt first
//!   (an exemption by stay length that starts at or below the group's `min_los`, or exemptions
//!   whose diagnosis prefixes cover all of the group's, when it has no departments);
//! - `POLICY_BED_DAY_BEHIND_BED_DAY`: an earlier bed-day group takes every case of a later one.

use crate::dip::lint::{Level, PolicyFinding};
use crate::policy::{BedDayGroup, Policy};

/// Whether every prefix of `wanted` starts with one of `covering`.
fn prefixes_covered(wanted: &[String], covering: &[String]) -> bool {
    wanted.iter().all(|p| covering.iter().any(|q| p.starts_with(q.as_str())))
}

/// The shortest stay a bed-day group pays (it needs `los ≥ min_los` and `los > 0`).
fn first_paid_day(group: &BedDayGroup) -> i64 {
    group.min_los.max(1)
}

/// Lints a policy's pricing rules. Findings come in key order; all are warnings.
pub fn lint_pricing_rules(policy: &Policy) -> Vec<PolicyFinding> {
    let mut findings = Vec::new();
    for (i, group) in policy.bed_day.iter().enumerate() {
        let key = format!("bed_day[{i}]");
        let by_stay = policy.exemptions.iter().enumerate().find(|(_, e)| e.min_los.is_some_and(|m| m <= first_paid_day(group)));
        if let Some((e, exemption)) = by_stay {
            findings.push(PolicyFinding {
                level: Level::Warning,
                code: "POLICY_BED_DAY_BEHIND_EXEMPTION",
                key,
                message: format!(
                    "bed-day group {:?} (stays of {} days or more) can never apply: exemptions[{e}] {:?} exempts every stay of {} days or more first",
                    group.name,
                    group.min_los,
                    exemption.name,
                    exemption.min_los.unwrap_or(0)
                ),
            });
            continue;
        }
        let exempt_prefixes: Vec<String> = policy.exemptions.iter().flat_map(|e| e.diagnosis_prefixes.iter().cloned()).collect();
        if group.departments.is_empty()
            && !group.diagnosis_prefixes.is_empty()
            && prefixes_covered(&group.diagnosis_prefixes, &exempt_prefixes)
        {
            findings.push(PolicyFinding {
                level: Level::Warning,
                code: "POLICY_BED_DAY_BEHIND_EXEMPTION",
                key,
                message: format!(
                    "bed-day group {:?} can never apply: exemptions by diagnosis cover all of its prefixes {:?}",
                    group.name, group.diagnosis_prefixes
                ),
            });
            continue;
        }
        let earlier = policy.bed_day[..i].iter().enumerate().find(|(_, h)| {
            h.min_los <= group.min_los
                && prefixes_covered(&group.diagnosis_prefixes, &h.diagnosis_prefixes)
                && group.departments.iter().all(|d| h.departments.contains(d))
        });
        if let Some((h, earlier)) = earlier {
            findings.push(PolicyFinding {
                level: Level::Warning,
                code: "POLICY_BED_DAY_BEHIND_BED_DAY",
                key,
                message: format!(
                    "bed-day group {:?} can never apply: bed_day[{h}] {:?} takes all of its cases first",
                    group.name, earlier.name
                ),
            });
        }
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
year = 2026
version = "1"
scheme = "dip"
level_coefficients = {{ "3" = 1 }}
[outliers]
low_ratio = 0.5
high_ratio = 2
boundary = "strict"
high_formula = "excess_plus_one"
low_formula = "proportional"
{tail}
"#
        ))
        .expect("policy")
    }

    const PSYCHIATRIC: &str =
        "[[bed_day]]\nname = \"psychiatric\"\ndiagnosis_prefixes = [\"F20\", \"F31\"]\nmin_los = 60\npoints_per_day = 80\nmax_days = 180\n";

    fn codes(policy: &Policy) -> Vec<String> {
        lint_pricing_rules(policy).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_bed_day_group_behind_a_stay_exemption_is_named() {
        let shadowed = policy(&format!("{PSYCHIATRIC}[[exemptions]]\nname = \"long stays\"\nmin_los = 60\n"));
        assert_eq!(
            codes(&shadowed),
            ["warning: POLICY_BED_DAY_BEHIND_EXEMPTION bed_day[0]: bed-day group \"psychiatric\" (stays of 60 days or more) can never apply: exemptions[0] \"long stays\" exempts every stay of 60 days or more first"]
        );
        let beyond = policy(&format!("{PSYCHIATRIC}[[exemptions]]\nname = \"longer stays\"\nmin_los = 181\n"));
        assert_eq!(codes(&beyond), Vec::<String>::new(), "stays of 60–180 days are paid by bed-day");
    }

    #[test]
    fn a_bed_day_group_behind_diagnosis_exemptions_or_an_earlier_group_is_named() {
        let by_diagnosis = policy(&format!(
            "{PSYCHIATRIC}[[exemptions]]\nname = \"mental\"\ndiagnosis_prefixes = [\"F2\"]\n[[exemptions]]\nname = \"bipolar\"\ndiagnosis_prefixes = [\"F31\"]\n"
        ));
        assert_eq!(lint_pricing_rules(&by_diagnosis)[0].code, "POLICY_BED_DAY_BEHIND_EXEMPTION");
        let partly = policy(&format!("{PSYCHIATRIC}[[exemptions]]\nname = \"mental\"\ndiagnosis_prefixes = [\"F2\"]\n"));
        assert_eq!(codes(&partly), Vec::<String>::new(), "F31 stays are still paid by bed-day");
        let twice = policy(&format!(
            "{PSYCHIATRIC}[[bed_day]]\nname = \"schizophrenia\"\ndiagnosis_prefixes = [\"F20.0\"]\nmin_los = 90\npoints_per_day = 90\nmax_days = 180\n"
        ));
        assert_eq!(
            codes(&twice),
            ["warning: POLICY_BED_DAY_BEHIND_BED_DAY bed_day[1]: bed-day group \"schizophrenia\" can never apply: bed_day[0] \"psychiatric\" takes all of its cases first"]
        );
    }
}

//! Table-set lint: entries a scheme's own rules can never reach, found from the tables alone.
//!
//! A fund office loads a new regional release and must see a broken one before it settles money
//! on it. This module proves unreachability conservatively — it reports an entry only when the
//! tables guarantee it cannot be produced — and never changes grouping.
//!
//! What it finds:
//! - a rule that matches nothing because a list it needs is empty, or because its principal
//!   procedure list has no operating-room code while its MDC is entered only through one;
//! - a rule shadowed by an earlier rule that matches whenever it would and then always gives a
//!   result (a bare ADRG code, or an unconditional DRG row): an earlier rule of the same MDC, or
//!   of an earlier MDC that every case enters (an MDC without entry columns);
//! - a DRG row with condition `never`, on an empty list, or shadowed by an earlier row of its
//!   ADRG that holds whenever it would (rule columns and condition);
//! - an ADRG none of whose rules can match, or whose rules match but can never give a result
//!   (no DRG row can hold and every rule says `on_no_drg` = `next`), and all its DRG rows;
//! - (a note, not a warning) an ADRG whose DRGs may all fail, giving a bare ADRG result.

use super::tables::{AdrgRule, CodeId, Drg, DrgTableSet, ListId, Mdc, MdcEntry, OnNoDrg, RuleConditions, SeverityCondition};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The entry can never be produced: the release is probably broken there.
    Warning,
    /// Worth knowing, not a defect.
    Note,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What kind of entry: `rule`, `adrg`, `drg`.
    pub entry_kind: &'static str,
    /// The entry's code (rule name, ADRG or DRG code).
    pub entry: String,
    pub message: String,
}

impl Finding {
    /// True for warnings that say an entry can never be produced.
    pub fn is_unreachable(&self) -> bool {
        self.level == Level::Warning
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Note => "note",
        };
        write!(f, "{level}: {} {}: {}", self.entry_kind, self.entry, self.message)
    }
}

/// Checks a table set: first the rules (MDC by MDC), then each ADRG with its DRG rows.
pub fn lint(tables: &DrgTableSet) -> Vec<Finding> {
    let mut findings = Vec::new();
    let warning = |entry_kind: &'static str, entry: &str, message: String| Finding {
        level: Level::Warning,
        entry_kind,
        entry: entry.to_string(),
        message,
    };

    // DRG rows that can never hold within their ADRG, whichever rule matched.
    let mut drg_problem: Vec<Option<String>> = vec![None; tables.drgs.len()];
    for adrg in &tables.adrgs {
        let mdc = &tables.mdcs[adrg.mdc];
        for index in adrg.drgs.clone() {
            let drg = &tables.drgs[index];
            drg_problem[index] = if drg.severity == SeverityCondition::Never {
                Some("its condition is never, so it is never produced".to_string())
            } else if let Some(list) = empty_list_of(tables, &drg.conditions) {
                Some(format!("list {} is empty, so it is never produced", tables.list_id(list)))
            } else {
                (adrg.drgs.start..index).find(|&e| drg_problem[e].is_none() && drg_implies(tables, mdc, drg, &tables.drgs[e])).map(
                    |earlier| {
                        format!("DRG {} (tried first) applies whenever this one would, so it is never produced", tables.drgs[earlier].code)
                    },
                )
            };
        }
    }
    // A rule that matches always gives a result: the bare ADRG code, or an unconditional DRG row.
    let gives_result = |rule: &AdrgRule| {
        rule.on_no_drg == OnNoDrg::BareAdrg
            || tables.adrgs[rule.adrg].drgs.clone().any(|d| drg_problem[d].is_none() && tables.drgs[d].is_unconditional())
    };

    let mut rule_reachable = vec![true; tables.rules.len()];
    for (mdc_index, mdc) in tables.mdcs.iter().enumerate() {
        for rule_index in mdc.rules.clone() {
            let rule = &tables.rules[rule_index];
            let problem = if let Some(list) = empty_list_of(tables, &rule.conditions) {
                Some(format!("list {} is empty, so the rule never matches", tables.list_id(list)))
            } else if let Some(reason) = contradicts_entry(tables, mdc, &rule.conditions) {
                Some(reason)
            } else {
                // An earlier rule of this MDC, or of an earlier MDC every case enters, that matches
                // every case this one would and then always gives a result.
                let same_mdc = mdc.rules.start..rule_index;
                let always_entered =
                    tables.mdcs[..mdc_index].iter().filter(|m| m.entry == MdcEntry::default()).flat_map(|m| m.rules.clone());
                same_mdc
                    .chain(always_entered)
                    .find(|&e| {
                        let earlier = &tables.rules[e];
                        rule_reachable[e] && gives_result(earlier) && implies(tables, mdc, &rule.conditions, &earlier.conditions)
                    })
                    .map(|earlier| {
                        let earlier = &tables.rules[earlier];
                        let place = if earlier.mdc == rule.mdc {
                            "tried first".to_string()
                        } else {
                            format!("in {}, which every case enters first", tables.mdcs[earlier.mdc].code)
                        };
                        format!(
                            "rule {} ({place}) matches every case this rule would and always gives a result, so it is never reached",
                            earlier.rule
                        )
                    })
            };
            if let Some(message) = problem {
                findings.push(warning("rule", &rule.rule, message));
                rule_reachable[rule_index] = false;
            }
        }
    }

    for (adrg_index, adrg) in tables.adrgs.iter().enumerate() {
        let rules: Vec<usize> = (0..tables.rules.len()).filter(|&i| tables.rules[i].adrg == adrg_index && rule_reachable[i]).collect();
        let some_drg = adrg.drgs.clone().any(|d| drg_problem[d].is_none());
        let bare = rules.iter().any(|&i| tables.rules[i].on_no_drg == OnNoDrg::BareAdrg);
        let dead = if rules.is_empty() {
            Some("none of its rules can match")
        } else if !some_drg && !bare {
            Some("its rules match, but no DRG row can hold and on_no_drg = next, so it never gives a result")
        } else {
            None
        };
        if let Some(reason) = dead {
            findings.push(warning("adrg", &adrg.code, format!("{reason}: it is never produced")));
            for drg in &tables.drgs[adrg.drgs.clone()] {
                findings.push(warning("drg", &drg.code, format!("its ADRG {} is never produced", adrg.code)));
            }
            continue;
        }
        for d in adrg.drgs.clone() {
            if let Some(message) = &drg_problem[d] {
                findings.push(warning("drg", &tables.drgs[d].code, message.clone()));
            }
        }
        if bare && !adrg.drgs.clone().any(|d| drg_problem[d].is_none() && tables.drgs[d].is_unconditional()) {
            findings.push(Finding {
                level: Level::Note,
                entry_kind: "adrg",
                entry: adrg.code.clone(),
                message: "no DRG is unconditional: a case may get the bare ADRG code".to_string(),
            });
        }
    }
    findings
}

/// `earlier` applies whenever `later` does (both rows of one ADRG of `mdc`).
fn drg_implies(tables: &DrgTableSet, mdc: &Mdc, later: &Drg, earlier: &Drg) -> bool {
    use SeverityCondition::{Always, Cc, Mcc, MccOrCc, Never};
    let severity =
        matches!((earlier.severity, later.severity), (Always, _) | (_, Never) | (MccOrCc, Mcc | MccOrCc | Cc) | (Mcc, Mcc) | (Cc, Cc));
    severity && implies(tables, mdc, &later.conditions, &earlier.conditions)
}

fn lists_of(conditions: &RuleConditions) -> impl Iterator<Item = ListId> + '_ {
    [
        conditions.pdx_list,
        conditions.any_dx_list,
        conditions.secondary_dx_list,
        conditions.pproc_list,
        conditions.any_proc_list,
        conditions.any_proc_list2,
        conditions.any_proc_list3,
        conditions.secondary_proc_list,
        conditions.proc_tags.as_ref().map(|(l, _)| *l),
    ]
    .into_iter()
    .flatten()
}

fn empty_list_of(tables: &DrgTableSet, conditions: &RuleConditions) -> Option<ListId> {
    lists_of(conditions).find(|l| tables.lists[l.0 as usize].codes.is_empty())
}

fn subset(tables: &DrgTableSet, small: ListId, large: ListId) -> bool {
    let small = &tables.lists[small.0 as usize].codes;
    let large = &tables.lists[large.0 as usize].codes;
    small.iter().all(|c| large.binary_search(c).is_ok())
}

fn disjoint(tables: &DrgTableSet, a: ListId, b: ListId) -> bool {
    let b = &tables.lists[b.0 as usize].codes;
    tables.lists[a.0 as usize].codes.iter().all(|c| b.binary_search(c).is_err())
}

fn all_or(tables: &DrgTableSet, list: ListId) -> bool {
    tables.lists[list.0 as usize].codes.iter().all(|&c| tables.info(c).is_or_procedure())
}

/// A rule condition that the MDC's entry condition makes impossible.
fn contradicts_entry(tables: &DrgTableSet, mdc: &Mdc, conditions: &RuleConditions) -> Option<String> {
    if mdc.entry.pproc_or {
        if let Some(list) = conditions.pproc_list {
            let opens = |c: CodeId| {
                let info = tables.info(c);
                info.is_or_procedure() || mdc.entry.pproc_or_extra.is_some_and(|extra| info.in_list(extra))
            };
            if !tables.lists[list.0 as usize].codes.iter().any(|&c| opens(c)) {
                let extra = if mdc.entry.pproc_or_extra.is_some() { " (or one of its extra entry list)" } else { "" };
                return Some(format!(
                    "{} is entered only with an operating-room principal procedure{extra}, and no code of {} is one",
                    mdc.code,
                    tables.list_id(list)
                ));
            }
        }
    }
    if let (Some(entry), Some(rule)) = (mdc.entry.pdx_list, conditions.pdx_list) {
        let entry_codes = &tables.lists[entry.0 as usize].codes;
        if !tables.lists[rule.0 as usize].codes.iter().any(|c| entry_codes.binary_search(c).is_ok()) {
            return Some(format!("no code of {} is in the MDC's list {}", tables.list_id(rule), tables.list_id(entry)));
        }
    }
    None
}

/// Whether every case in `mdc` that satisfies `later` also satisfies `earlier`. Conservative: when
/// in doubt, `false`.
fn implies(tables: &DrgTableSet, mdc: &Mdc, later: &RuleConditions, earlier: &RuleConditions) -> bool {
    let within = |list: Option<ListId>, bound: ListId| list.is_some_and(|l| subset(tables, l, bound));
    let principal_dx_in = |bound: ListId| within(later.pdx_list, bound) || within(mdc.entry.pdx_list, bound);
    let some_dx_in = |bound: ListId| {
        principal_dx_in(bound)
            || within(later.any_dx_list, bound)
            || within(later.secondary_dx_list, bound)
            || within(mdc.entry.any_dx_list, bound)
    };
    // The principal diagnosis is outside `excluded`: the later row excludes more, or its own
    // principal list (or the MDC's) has no code in common with it.
    let principal_dx_outside = |excluded: ListId| {
        later.pdx_not_list.is_some_and(|l| subset(tables, excluded, l))
            || [later.pdx_list, mdc.entry.pdx_list].into_iter().flatten().any(|l| disjoint(tables, l, excluded))
    };
    let some_proc_in = |bound: ListId| {
        within(later.pproc_list, bound)
            || within(later.any_proc_list, bound)
            || within(later.any_proc_list2, bound)
            || within(later.any_proc_list3, bound)
            || within(later.secondary_proc_list, bound)
    };
    let principal_proc_or =
        later.pproc_or || (mdc.entry.pproc_or && mdc.entry.pproc_or_extra.is_none()) || later.pproc_list.is_some_and(|l| all_or(tables, l));
    let some_proc_or = principal_proc_or
        || later.any_proc_or
        || [later.any_proc_list, later.any_proc_list2, later.any_proc_list3, later.secondary_proc_list]
            .into_iter()
            .flatten()
            .any(|l| all_or(tables, l));
    let at_most = |e: Option<i64>, l: Option<i64>| e.is_none_or(|e| l.is_some_and(|l| l <= e));
    let at_least = |e: Option<i64>, l: Option<i64>| e.is_none_or(|e| l.is_some_and(|l| l >= e));
    let values_within = |e: &Option<Box<[Box<str>]>>, l: &Option<Box<[Box<str>]>>| {
        e.as_ref().is_none_or(|e| l.as_ref().is_some_and(|l| l.iter().all(|v| e.contains(v))))
    };
    let numbers_within = |e: &Option<Box<[Option<i64>]>>, l: &Option<Box<[Option<i64>]>>| {
        e.as_ref().is_none_or(|e| l.as_ref().is_some_and(|l| l.iter().all(|v| e.contains(v))))
    };

    earlier.pdx_list.is_none_or(principal_dx_in)
        && earlier.pdx_not_list.is_none_or(principal_dx_outside)
        && earlier.any_dx_list.is_none_or(some_dx_in)
        && earlier.secondary_dx_list.is_none_or(|b| within(later.secondary_dx_list, b))
        && earlier.pproc_list.is_none_or(|b| within(later.pproc_list, b))
        && (!earlier.pproc_or || principal_proc_or)
        && (!earlier.no_pproc_or || later.no_pproc_or || later.no_or_proc)
        && earlier.any_proc_list.is_none_or(some_proc_in)
        && earlier.any_proc_list2.is_none_or(some_proc_in)
        && earlier.any_proc_list3.is_none_or(some_proc_in)
        && earlier.secondary_proc_list.is_none_or(|b| within(later.secondary_proc_list, b))
        && (!earlier.any_proc_or || some_proc_or)
        && (earlier.proc_tags.is_none() || earlier.proc_tags == later.proc_tags)
        && (!earlier.no_or_proc || later.no_or_proc)
        && at_most(earlier.max_age_days, later.max_age_days)
        && at_least(earlier.weight_min, later.weight_min)
        && at_most(earlier.weight_max_excl, later.weight_max_excl)
        && at_least(earlier.min_age_years, later.min_age_years)
        && at_most(earlier.max_age_years, later.max_age_years)
        && at_least(earlier.los_min, later.los_min)
        && at_most(earlier.los_max_excl, later.los_max_excl)
        && at_least(earlier.icu_hours_min, later.icu_hours_min)
        && at_most(earlier.icu_hours_max_excl, later.icu_hours_max_excl)
        && values_within(&earlier.department_in, &later.department_in)
        && numbers_within(&earlier.disposition_in, &later.disposition_in)
}

//! Table-set lint: entries a scheme's own rules can never reach, found from the tables alone.
//!
//! A fund office loads a new regional release and must see a broken one before it settles money
//! on it. This module proves unreachability conservatively — it reports an entry only when the
//! tables guarantee it cannot be produced — and never changes grouping.
//!
//! What it finds:
//! - a rule that matches nothing because a list it needs is empty, or because its principal
//!   procedure list has no operating-room code while its MDC is entered only through one;
//! - a rule shadowed by an earlier rule of the same MDC that matches whenever it would;
//! - an ADRG none of whose rules can match, and its DRGs;
//! - a DRG shadowed by an earlier DRG of its ADRG;
//! - (a note, not a warning) an ADRG whose DRGs may all fail, giving a bare ADRG result.

use super::tables::{Drg, DrgTableSet, ListId, Mdc, RuleConditions, SeverityCondition};
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

/// Checks a table set; findings come in table order.
pub fn lint(tables: &DrgTableSet) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut rule_reachable = vec![true; tables.rules.len()];
    for mdc in &tables.mdcs {
        for rule_index in mdc.rules.clone() {
            let rule = &tables.rules[rule_index];
            let finding = |message: String| Finding { level: Level::Warning, entry_kind: "rule", entry: rule.rule.clone(), message };
            if let Some(list) = empty_list_of(tables, &rule.conditions) {
                findings.push(finding(format!("list {} is empty, so the rule never matches", tables.list_id(list))));
                rule_reachable[rule_index] = false;
                continue;
            }
            if let Some(reason) = contradicts_entry(tables, mdc, &rule.conditions) {
                findings.push(finding(reason));
                rule_reachable[rule_index] = false;
                continue;
            }
            let shadow = mdc.rules.start..rule_index;
            if let Some(earlier) =
                shadow.clone().find(|&e| rule_reachable[e] && implies(tables, mdc, &rule.conditions, &tables.rules[e].conditions))
            {
                findings.push(finding(format!(
                    "rule {} (tried first) matches every case this rule would, so it is never reached",
                    tables.rules[earlier].rule
                )));
                rule_reachable[rule_index] = false;
            }
        }
    }
    for (adrg_index, adrg) in tables.adrgs.iter().enumerate() {
        let reachable = tables.rules.iter().enumerate().any(|(i, r)| r.adrg == adrg_index && rule_reachable[i]);
        if !reachable {
            findings.push(Finding {
                level: Level::Warning,
                entry_kind: "adrg",
                entry: adrg.code.clone(),
                message: "none of its rules can match, so neither it nor its DRGs are ever produced".to_string(),
            });
            continue;
        }
        let mdc = &tables.mdcs[adrg.mdc];
        let drgs = &tables.drgs[adrg.drgs.clone()];
        let mut shadowed = vec![false; drgs.len()];
        for (i, drg) in drgs.iter().enumerate() {
            if let Some(earlier) = (0..i).find(|&e| !shadowed[e] && drg_implies(tables, mdc, drg, &drgs[e])) {
                shadowed[i] = true;
                findings.push(Finding {
                    level: Level::Warning,
                    entry_kind: "drg",
                    entry: drg.code.clone(),
                    message: format!("DRG {} (tried first) applies whenever this one would, so it is never produced", drgs[earlier].code),
                });
            }
        }
        let has_catch_all = drgs.iter().any(super::tables::Drg::is_unconditional);
        if !has_catch_all {
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
            if !tables.lists[list.0 as usize].codes.iter().any(|&c| tables.info(c).is_or_procedure()) {
                return Some(format!(
                    "{} is entered only with an operating-room principal procedure, and no code of {} is one",
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

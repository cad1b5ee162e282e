//! The DRG grouper: code mapping, validation, MDC entry, ADRG rules, the ambiguous-case check and
//! the DRG split by complications — all driven by a [`DrgTableSet`], with no scheme in the code.
//!
//! Pure: takes a case and a table snapshot, returns a [`GroupResult`] (indices into the table set,
//! no allocation) and tells a [`Tracer`] why. Semantics follow the reference README, section by
//! section; comments cite the section.

use super::tables::{CodeId, DrgTableSet, Found, Mdc, RuleConditions, SeverityCondition};
use super::trace::{Complication, DrgFailure, EntryFailure, RuleFailure, Severity, Step, Tracer, ValidationFailure};
use crate::case::Case;
use smallvec::SmallVec;

/// How submitted codes are turned into grouper codes (§1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MappingMode {
    /// Through `diagnosis_map.csv` / `procedure_map.csv`; a code missing from the map stops
    /// grouping with `ZD_NOT_MAPPING` / `SS_NOT_MAPPING`.
    #[default]
    Map,
    /// Codes used as written; unknown codes match nothing.
    NoMap,
}

/// Result status, named as in the reference result table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupStatus {
    Success,
    Fail,
    CheckFailed,
    ZdNotMapping,
    SsNotMapping,
    /// Ambiguous case (歧义病例): an operating-room procedure that fits no surgical ADRG.
    Qy,
}

impl GroupStatus {
    pub const ALL: [GroupStatus; 6] = [
        GroupStatus::Success,
        GroupStatus::Fail,
        GroupStatus::CheckFailed,
        GroupStatus::ZdNotMapping,
        GroupStatus::SsNotMapping,
        GroupStatus::Qy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Success => "SUCCESS",
            GroupStatus::Fail => "FAIL",
            GroupStatus::CheckFailed => "CHECK_FAILED",
            GroupStatus::ZdNotMapping => "ZD_NOT_MAPPING",
            GroupStatus::SsNotMapping => "SS_NOT_MAPPING",
            GroupStatus::Qy => "QY",
        }
    }

    pub fn parse(text: &str) -> Option<GroupStatus> {
        GroupStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What decided a result, beyond its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    None,
    UnmappedDiagnosis { position: usize },
    UnmappedProcedure { position: usize },
    Validation(ValidationFailure),
}

/// A grouping result. Codes are indices into the table set that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupResult {
    pub status: GroupStatus,
    pub mdc: Option<usize>,
    pub adrg: Option<usize>,
    /// `None` with a matched ADRG means a bare ADRG result.
    pub drg: Option<usize>,
    /// The complication among the secondary diagnoses (MCC before CC), for every case that got
    /// through mapping and validation; pricing and audit read it.
    pub complication: Option<Complication>,
    pub detail: Detail,
}

impl GroupResult {
    fn not_grouped(status: GroupStatus, detail: Detail) -> GroupResult {
        GroupResult { status, mdc: None, adrg: None, drg: None, complication: None, detail }
    }

    /// `MDCB`, or `0000` when no MDC.
    pub fn mdc_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        self.mdc.map_or("0000", |m| tables.mdcs[m].code.as_str())
    }

    /// `BB1`, `QY` for an ambiguous case, or `00`.
    pub fn adrg_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        match (self.status, self.adrg) {
            (GroupStatus::Qy, _) => "QY",
            (_, Some(a)) => tables.adrgs[a].code.as_str(),
            (_, None) => "00",
        }
    }

    /// `BB11`, the bare ADRG code when no DRG applied, `BQY` for an ambiguous case, or `0000`.
    pub fn drg_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        match (self.status, self.mdc, self.adrg, self.drg) {
            (GroupStatus::Qy, Some(m), _, _) => tables.mdcs[m].qy_drg.as_str(),
            (_, _, _, Some(d)) => tables.drgs[d].code.as_str(),
            (_, _, Some(a), None) => tables.adrgs[a].code.as_str(),
            _ => "0000",
        }
    }

    /// The DRG's name, when one was chosen.
    pub fn drg_name<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        match (self.drg, self.adrg) {
            (Some(d), _) => tables.drgs[d].name.as_str(),
            (None, Some(a)) if self.status == GroupStatus::Success => tables.adrgs[a].name.as_str(),
            _ => "",
        }
    }
}

/// Codes of one case after mapping. Most cases fit inline.
pub type Codes = SmallVec<[CodeId; 12]>;

/// The case as the rules see it: grouper codes and the few numbers the rules read.
pub struct Subject<'c> {
    pub diagnoses: &'c [CodeId],
    pub procedures: &'c [CodeId],
    pub case: &'c Case,
}

/// Maps submitted codes to grouper codes, reproducing the reference's in-place rewrite
/// (`codes[codes.index(x)] = map[x]`, §1.3): when an earlier slot already holds `x` after its own
/// mapping, that slot is rewritten and the current one keeps its code. Returns the position of the
/// first code the map does not know.
fn map_codes(
    tables: &DrgTableSet,
    submitted: &[String],
    mode: MappingMode,
    target_of: fn(&Found) -> Option<CodeId>,
    mut on_mapped: impl FnMut(usize, CodeId, CodeId),
) -> Result<Codes, usize> {
    // One index lookup per code gives its id and its map target together. Slot i is only
    // rewritten at step i (earlier steps rewrite earlier slots), so the target found for the
    // submitted code is the target of `codes[i]` when step i reads it.
    let mut codes = Codes::new();
    let mut targets: SmallVec<[Option<CodeId>; 12]> = SmallVec::new();
    for code in submitted {
        let found = tables.find_code(code);
        codes.push(found.map_or(CodeId::UNKNOWN, |f| f.id));
        targets.push(found.as_ref().and_then(target_of));
    }
    if mode == MappingMode::NoMap {
        return Ok(codes);
    }
    for i in 0..codes.len() {
        let current = codes[i];
        let Some(target) = targets[i] else { return Err(i) };
        let slot = codes[..i].iter().position(|&c| c == current).unwrap_or(i);
        codes[slot] = target;
        if target != current {
            on_mapped(slot, current, target);
        }
    }
    Ok(codes)
}

/// §2: the validation checks, in order; the first failure wins.
fn validate(case: &Case, diagnosis_count: usize) -> Option<ValidationFailure> {
    if !matches!(case.sex, Some(1) | Some(2)) {
        return Some(ValidationFailure::InvalidSex);
    }
    let Some(age) = case.age else { return Some(ValidationFailure::MissingAge) };
    if age == 0 {
        match case.age_days {
            None => return Some(ValidationFailure::MissingAgeDays),
            Some(days) if days <= 28 && case.birth_weight.is_none() => return Some(ValidationFailure::MissingBirthWeight),
            Some(_) => {}
        }
    }
    if diagnosis_count == 0 {
        return Some(ValidationFailure::NoDiagnoses);
    }
    None
}

/// Groups one case. See the module docs; the tracer receives every decision.
pub fn group<T: Tracer>(tables: &DrgTableSet, case: &Case, mode: MappingMode, tracer: &mut T) -> GroupResult {
    // §1: an empty diagnosis list is one empty code, which cannot be mapped.
    if case.diagnoses.is_empty() && mode == MappingMode::Map {
        tracer.step(Step::DiagnosisNotMapped { position: 0 });
        return GroupResult::not_grouped(GroupStatus::ZdNotMapping, Detail::UnmappedDiagnosis { position: 0 });
    }
    let diagnoses = match map_codes(
        tables,
        &case.diagnoses,
        mode,
        |f| f.diagnosis_target,
        |position, from, to| tracer.step(Step::DiagnosisMapped { position, from, to }),
    ) {
        Ok(codes) => codes,
        Err(position) => {
            tracer.step(Step::DiagnosisNotMapped { position });
            return GroupResult::not_grouped(GroupStatus::ZdNotMapping, Detail::UnmappedDiagnosis { position });
        }
    };
    let procedures = match map_codes(
        tables,
        &case.procedures,
        mode,
        |f| f.procedure_target,
        |position, from, to| tracer.step(Step::ProcedureMapped { position, from, to }),
    ) {
        Ok(codes) => codes,
        Err(position) => {
            tracer.step(Step::ProcedureNotMapped { position });
            return GroupResult::not_grouped(GroupStatus::SsNotMapping, Detail::UnmappedProcedure { position });
        }
    };
    if let Some(failure) = validate(case, diagnoses.len()) {
        tracer.step(Step::ValidationFailed(failure));
        return GroupResult::not_grouped(GroupStatus::CheckFailed, Detail::Validation(failure));
    }
    let subject = Subject { diagnoses: &diagnoses, procedures: &procedures, case };
    group_subject(tables, &subject, tracer)
}

/// §3: MDC, ADRG and DRG evaluation on mapped, validated codes.
///
/// With tracing on, every rule of an entered MDC is tried in order so that the trace can say why
/// each failed. With tracing off, only the *candidate* rules are tried: those whose principal
/// diagnosis or principal procedure list holds the case's code, and those with neither list. A
/// rule outside that set fails its list condition, so both paths reach the same result — the
/// reference tests run both.
pub fn group_subject<T: Tracer>(tables: &DrgTableSet, subject: &Subject<'_>, tracer: &mut T) -> GroupResult {
    let complication = find_complication(tables, subject.diagnoses);
    let has_or_procedure = subject.procedures.iter().any(|&p| tables.info(p).is_or_procedure());
    // Untraced, MDCs the principal diagnosis cannot enter are skipped without a check.
    let possible_mdcs = if tracer.enabled() { u64::MAX } else { tables.possible_mdcs(subject.diagnoses[0]) };
    for (mdc_index, mdc) in tables.mdcs.iter().enumerate() {
        if mdc_index < 64 && possible_mdcs & (1u64 << mdc_index) == 0 {
            continue;
        }
        if let Err(failed) = check_entry(tables, mdc_index, mdc, subject) {
            tracer.step(Step::MdcNotEntered { mdc: mdc_index, failed });
            continue;
        }
        tracer.step(Step::MdcEntered { mdc: mdc_index });
        // The ambiguous-case check runs before rule row k (0-based) of this MDC, when k ≤ rows.
        let qy_before = mdc.qy_after.filter(|&k| k <= mdc.rules.len() && has_or_procedure).map(|k| mdc.rules.start + k);
        let matched = if tracer.enabled() {
            first_matching_rule(tables, mdc.rules.clone(), qy_before, subject, tracer)
        } else {
            let candidates = candidate_rules(tables, mdc, subject);
            first_matching_rule(tables, candidates.iter().map(|&r| r as usize), qy_before, subject, tracer)
        };
        match matched {
            RuleSearch::Matched(rule_index) => {
                return choose_drg(tables, mdc_index, tables.rules[rule_index].adrg, subject, complication, tracer);
            }
            RuleSearch::Ambiguous => return ambiguous(mdc_index, complication, tracer),
            RuleSearch::NoneMatched => tracer.step(Step::FellThrough { mdc: mdc_index }),
        }
    }
    tracer.step(Step::NoMdcAccepted);
    GroupResult { complication, ..GroupResult::not_grouped(GroupStatus::Fail, Detail::None) }
}

enum RuleSearch {
    Matched(usize),
    Ambiguous,
    NoneMatched,
}

/// Tries `rules` (ascending indices) in order; stops for the ambiguous-case check at `qy_before`.
fn first_matching_rule<T: Tracer>(
    tables: &DrgTableSet,
    rules: impl Iterator<Item = usize>,
    qy_before: Option<usize>,
    subject: &Subject<'_>,
    tracer: &mut T,
) -> RuleSearch {
    for rule_index in rules {
        if qy_before.is_some_and(|k| rule_index >= k) {
            return RuleSearch::Ambiguous;
        }
        match check_rule(tables, &tables.rules[rule_index].conditions, subject) {
            Ok(()) => {
                tracer.step(Step::RuleMatched { rule: rule_index });
                return RuleSearch::Matched(rule_index);
            }
            Err(failed) => tracer.step(Step::RuleNotMatched { rule: rule_index, failed }),
        }
    }
    if qy_before.is_some() {
        return RuleSearch::Ambiguous;
    }
    RuleSearch::NoneMatched
}

/// The rules of `mdc` that can match this case, ascending: see [`group_subject`].
fn candidate_rules(tables: &DrgTableSet, mdc: &Mdc, subject: &Subject<'_>) -> SmallVec<[u32; 16]> {
    let (start, end) = (mdc.rules.start as u32, mdc.rules.end as u32);
    let within = |rules: &[u32]| -> std::ops::Range<usize> { rules.partition_point(|&r| r < start)..rules.partition_point(|&r| r < end) };
    let mut candidates: SmallVec<[u32; 16]> = SmallVec::new();
    let by_diagnosis = tables.info(subject.diagnoses[0]).pdx_rules();
    candidates.extend_from_slice(&by_diagnosis[within(by_diagnosis)]);
    if let Some(&principal_procedure) = subject.procedures.first() {
        let by_procedure = tables.info(principal_procedure).pproc_rules();
        candidates.extend_from_slice(&by_procedure[within(by_procedure)]);
    }
    candidates.extend_from_slice(&mdc.unanchored_rules);
    candidates.sort_unstable();
    candidates.dedup();
    candidates
}

fn ambiguous<T: Tracer>(mdc: usize, complication: Option<Complication>, tracer: &mut T) -> GroupResult {
    tracer.step(Step::Ambiguous { mdc });
    GroupResult { status: GroupStatus::Qy, mdc: Some(mdc), adrg: None, drg: None, complication, detail: Detail::None }
}

/// The first non-excluded MCC among the secondary diagnoses, else the first non-excluded CC.
/// A secondary code is excluded when its exclusion table is the one the principal diagnosis
/// names in `cc_exclusions.csv` (§3, "mcc").
pub fn find_complication(tables: &DrgTableSet, diagnoses: &[CodeId]) -> Option<Complication> {
    let (&principal, secondary) = diagnoses.split_first()?;
    let excluded = tables.info(principal).principal_exclusion_table();
    let mut first_cc = None;
    for (offset, &code) in secondary.iter().enumerate() {
        let info = tables.info(code);
        let position = offset + 1;
        if info.mcc_table().is_some_and(|t| Some(t) != excluded) {
            return Some(Complication { severity: Severity::Mcc, position, code });
        }
        if first_cc.is_none() && info.cc_table().is_some_and(|t| Some(t) != excluded) {
            first_cc = Some(Complication { severity: Severity::Cc, position, code });
        }
    }
    first_cc
}

fn check_entry(tables: &DrgTableSet, mdc_index: usize, mdc: &Mdc, subject: &Subject<'_>) -> Result<(), EntryFailure> {
    let entry = &mdc.entry;
    let principal = tables.info(subject.diagnoses[0]);
    if let Some(list) = entry.pdx_list {
        let in_list = if mdc_index < 64 { principal.in_mdc_pdx(mdc_index) } else { principal.in_list(list) };
        if !in_list {
            return Err(EntryFailure::PrincipalDiagnosisNotInList);
        }
    }
    if let Some(list) = entry.any_dx_list {
        if !subject.diagnoses.iter().any(|&d| tables.info(d).in_list(list)) {
            return Err(EntryFailure::NoDiagnosisInList);
        }
    }
    if entry.pproc_or && !subject.procedures.first().is_some_and(|&p| tables.info(p).is_or_procedure()) {
        return Err(EntryFailure::PrincipalProcedureNotOr);
    }
    if entry.sex.is_some() && entry.sex != subject.case.sex {
        return Err(EntryFailure::SexDiffers);
    }
    if entry.age_years_eq.is_some() && entry.age_years_eq != subject.case.age {
        return Err(EntryFailure::AgeDiffers);
    }
    if entry.multi_trauma && !has_two_trauma_regions(tables, subject.diagnoses) {
        return Err(EntryFailure::FewerThanTwoTraumaRegions);
    }
    Ok(())
}

fn has_two_trauma_regions(tables: &DrgTableSet, diagnoses: &[CodeId]) -> bool {
    let mut first_region = None;
    for &code in diagnoses {
        let Some(region) = tables.info(code).trauma_region() else { continue };
        match first_region {
            None => first_region = Some(region),
            Some(seen) if seen != region => return true,
            Some(_) => {}
        }
    }
    false
}

/// Checks an ADRG rule's conditions; the first that fails is returned (§3 table).
pub fn check_rule(tables: &DrgTableSet, conditions: &RuleConditions, subject: &Subject<'_>) -> Result<(), RuleFailure> {
    let info = |code: CodeId| tables.info(code);
    let case = subject.case;
    if let Some(list) = conditions.pdx_list {
        if !info(subject.diagnoses[0]).in_list(list) {
            return Err(RuleFailure::PrincipalDiagnosisNotInList);
        }
    }
    if let Some(list) = conditions.pproc_list {
        if !subject.procedures.first().is_some_and(|&p| info(p).in_list(list)) {
            return Err(RuleFailure::PrincipalProcedureNotInList);
        }
    }
    if let Some(list) = conditions.any_dx_list {
        if !subject.diagnoses.iter().any(|&d| info(d).in_list(list)) {
            return Err(RuleFailure::NoDiagnosisInList);
        }
    }
    if let Some(list) = conditions.secondary_dx_list {
        if !subject.diagnoses[1..].iter().any(|&d| info(d).in_list(list)) {
            return Err(RuleFailure::NoSecondaryDiagnosisInList);
        }
    }
    if conditions.pproc_or && !subject.procedures.first().is_some_and(|&p| info(p).is_or_procedure()) {
        return Err(RuleFailure::PrincipalProcedureNotOr);
    }
    if let Some(list) = conditions.any_proc_list {
        if !subject.procedures.iter().any(|&p| info(p).in_list(list)) {
            return Err(RuleFailure::NoProcedureInList);
        }
    }
    if let Some(list) = conditions.any_proc_list2 {
        if !subject.procedures.iter().any(|&p| info(p).in_list(list)) {
            return Err(RuleFailure::NoProcedureInSecondList);
        }
    }
    if let Some((list, alternatives)) = &conditions.proc_tags {
        let mut present: u32 = 0;
        for &p in subject.procedures {
            if let Some(tag) = info(p).tag_in(*list) {
                present |= 1 << tag;
            }
        }
        // An alternative holds when none of its tags is missing from the case.
        if !alternatives.iter().any(|&needed| needed & !present == 0) {
            return Err(RuleFailure::TaggedProceduresDoNotCombine);
        }
    }
    if conditions.no_or_proc && subject.procedures.iter().any(|&p| info(p).is_or_procedure()) {
        return Err(RuleFailure::HasOrProcedure);
    }
    if let Some(limit) = conditions.max_age_days {
        if case.age_days.is_none_or(|days| days > limit) {
            return Err(RuleFailure::AgeDaysAboveLimit);
        }
    }
    // Birth weight 0 counts as absent for the weight bands (quirk 4).
    let weight = case.birth_weight.filter(|&w| w != 0);
    if let Some(minimum) = conditions.weight_min {
        if weight.is_none_or(|w| w < minimum) {
            return Err(RuleFailure::WeightBelowMinimum);
        }
    }
    if let Some(maximum) = conditions.weight_max_excl {
        if weight.is_none_or(|w| w >= maximum) {
            return Err(RuleFailure::WeightNotBelowMaximum);
        }
    }
    Ok(())
}

fn choose_drg<T: Tracer>(
    tables: &DrgTableSet,
    mdc: usize,
    adrg: usize,
    subject: &Subject<'_>,
    complication: Option<Complication>,
    tracer: &mut T,
) -> GroupResult {
    let case = subject.case;
    let mut result =
        GroupResult { status: GroupStatus::Success, mdc: Some(mdc), adrg: Some(adrg), drg: None, complication, detail: Detail::None };
    for drg_index in tables.adrgs[adrg].drgs.clone() {
        let drg = &tables.drgs[drg_index];
        let deciding = match drg.severity {
            SeverityCondition::Always => Ok(None),
            SeverityCondition::Mcc => match complication {
                Some(c) if c.severity == Severity::Mcc => Ok(Some(c)),
                _ => Err(DrgFailure::NoMcc),
            },
            SeverityCondition::MccOrCc => complication.map(Some).ok_or(DrgFailure::NoMccOrCc),
        };
        let checked = deciding.and_then(|deciding| {
            if drg.max_age_years.is_some_and(|limit| case.age.is_none_or(|age| age > limit)) {
                return Err(DrgFailure::AgeAboveLimit);
            }
            if drg.los_min.is_some() || drg.los_max_excl.is_some() {
                let Some(los) = case.los else { return Err(DrgFailure::LosMissing) };
                if drg.los_min.is_some_and(|minimum| los < minimum) {
                    return Err(DrgFailure::LosBelowMinimum);
                }
                if drg.los_max_excl.is_some_and(|maximum| los >= maximum) {
                    return Err(DrgFailure::LosNotBelowMaximum);
                }
            }
            Ok(deciding)
        });
        match checked {
            Ok(deciding) => {
                tracer.step(Step::DrgChosen { drg: drg_index, complication: deciding });
                result.drg = Some(drg_index);
                return result;
            }
            Err(failed) => tracer.step(Step::DrgNotChosen { drg: drg_index, failed }),
        }
    }
    tracer.step(Step::BareAdrg { adrg });
    result
}

impl GroupResult {
    /// One sentence on what decided the result, for output files and pre-checks.
    pub fn describe(&self, tables: &DrgTableSet, case: &Case) -> String {
        let mut out = String::new();
        self.describe_into(&mut out, tables, case);
        out
    }

    /// [`GroupResult::describe`], appended to `out` (no allocation of its own).
    pub fn describe_into(&self, out: &mut String, tables: &DrgTableSet, case: &Case) {
        use std::fmt::Write as _;
        let submitted = |codes: &'_ [String], position: usize| codes.get(position).map_or("", String::as_str).to_string();
        let _ = match (self.status, self.detail) {
            (_, Detail::UnmappedDiagnosis { position }) => {
                write!(out, "diagnosis {} {:?} is not in diagnosis_map", position + 1, submitted(&case.diagnoses, position))
            }
            (_, Detail::UnmappedProcedure { position }) => {
                write!(out, "procedure {} {:?} is not in procedure_map", position + 1, submitted(&case.procedures, position))
            }
            (_, Detail::Validation(failure)) => out.write_str(failure.describe()),
            (GroupStatus::Fail, _) => out.write_str("no MDC accepted the case"),
            (GroupStatus::Qy, _) => out.write_str("an operating-room procedure fits none of the MDC's surgical ADRGs"),
            _ => {
                let _ = match self.complication {
                    Some(c) => write!(
                        out,
                        "{} {} at diagnosis {}",
                        if c.severity == Severity::Mcc { "MCC" } else { "CC" },
                        tables.code_text(c.code),
                        c.position + 1
                    ),
                    None => out.write_str("no MCC/CC"),
                };
                if self.drg.is_none() {
                    out.write_str("; no DRG of the ADRG applies")
                } else {
                    Ok(())
                }
            }
        };
    }
}

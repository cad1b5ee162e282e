//! The DRG grouper: code mapping, validation, MDC entry, ADRG rules, the ambiguous-case check and
//! the DRG split by complications — all driven by a [`DrgTableSet`], with no scheme in the code.
//!
//! Pure: takes a case and a table snapshot, returns a [`GroupResult`] (indices into the table set,
//! no allocation) and tells a [`Tracer`] why. Semantics follow the reference README, section by
//! section, and the format extensions' evaluation order (EXTENSIONS.md §8: rule columns on ADRG
//! and DRG rows, `on_no_drg`, the QY test, `scheme.csv`'s mapping mode, retry and result codes);
//! comments cite the section.

use super::tables::{CodeId, DrgTableSet, Found, Mdc, OnNoDrg, QyTest, RuleConditions, SeverityCondition};
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

    /// The scheme's codes for a result without a group (`FAIL`, or an input error), if this is one.
    fn ungrouped_codes<'t>(&self, tables: &'t DrgTableSet) -> Option<&'t super::tables::ResultCodes> {
        match self.status {
            GroupStatus::Success | GroupStatus::Qy => None,
            GroupStatus::Fail => Some(&tables.scheme.fail),
            GroupStatus::CheckFailed | GroupStatus::ZdNotMapping | GroupStatus::SsNotMapping => Some(&tables.scheme.error),
        }
    }

    /// `MDCB`; for a result without a group, the scheme's code (`0000` by default).
    pub fn mdc_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        if let Some(codes) = self.ungrouped_codes(tables) {
            return codes.mdc.as_str();
        }
        self.mdc.map_or("0000", |m| tables.mdcs[m].code.as_str())
    }

    /// `BB1`, `QY` for an ambiguous case; for a result without a group, the scheme's code (`00`
    /// by default).
    pub fn adrg_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        if let Some(codes) = self.ungrouped_codes(tables) {
            return codes.adrg.as_str();
        }
        match (self.status, self.adrg) {
            (GroupStatus::Qy, _) => "QY",
            (_, Some(a)) => tables.adrgs[a].code.as_str(),
            (_, None) => "00",
        }
    }

    /// `BB11`, the bare ADRG code when no DRG applied, `BQY` for an ambiguous case; for a result
    /// without a group, the scheme's code (`0000` by default).
    pub fn drg_code<'t>(&self, tables: &'t DrgTableSet) -> &'t str {
        if let Some(codes) = self.ungrouped_codes(tables) {
            return codes.drg.as_str();
        }
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

/// Groups one case. See the module docs; the tracer receives every decision. A table set whose
/// `scheme.csv` says `code_mapping = none` is always grouped without mapping, whatever `mode` says.
pub fn group<T: Tracer>(tables: &DrgTableSet, case: &Case, mode: MappingMode, tracer: &mut T) -> GroupResult {
    let mode = if tables.scheme.without_code_mapping { MappingMode::NoMap } else { mode };
    // §1: an empty diagnosis list is one empty code, which cannot be mapped.
    if case.diagnoses.is_empty() && mode == MappingMode::Map {
        tracer.step(Step::DiagnosisNotMapped { position: 0 });
        return GroupResult::not_grouped(GroupStatus::ZdNotMapping, Detail::UnmappedDiagnosis { position: 0 });
    }
    // Without mapping, an empty diagnosis list is likewise one empty code, which matches nothing.
    let one_empty_code = [String::new()];
    let submitted_diagnoses = if case.diagnoses.is_empty() { &one_empty_code[..] } else { &case.diagnoses[..] };
    let diagnoses = match map_codes(
        tables,
        submitted_diagnoses,
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
    let result = group_subject(tables, &subject, tracer);
    if result.status == GroupStatus::Fail && tables.scheme.retry_secondary_procedures && procedures.len() >= 2 {
        return retry_with_later_procedures(tables, &subject, result, tracer);
    }
    result
}

/// `retry_secondary_procedures` (format extensions §7): after a FAIL, each later procedure alone,
/// in order; the first result that is not FAIL stands. Validation is not repeated. Out of line:
/// most schemes never retry, and the hot path keeps a single, inlined call of [`group_subject`].
#[cold]
#[inline(never)]
fn retry_with_later_procedures<T: Tracer>(tables: &DrgTableSet, subject: &Subject<'_>, failed: GroupResult, tracer: &mut T) -> GroupResult {
    let (diagnoses, procedures, case) = (subject.diagnoses, subject.procedures, subject.case);
    let mut result = failed;
    for position in 1..procedures.len() {
        tracer.step(Step::RetryWithProcedure { position });
        let retry = Subject { diagnoses, procedures: &procedures[position..=position], case };
        result = group_subject(tables, &retry, tracer);
        if result.status != GroupStatus::Fail {
            return result;
        }
    }
    result
}

/// §3: MDC, ADRG and DRG evaluation on mapped, validated codes.
///
/// With tracing on, every rule of an entered MDC is tried in order so that the trace can say why
/// each failed. With tracing off, only the *candidate* rules are tried: those whose principal
/// diagnosis or principal procedure list holds the case's code, and those with neither list. A
/// rule outside that set fails its list condition, so both paths reach the same result — the
/// reference tests run both.
#[inline]
pub fn group_subject<T: Tracer>(tables: &DrgTableSet, subject: &Subject<'_>, tracer: &mut T) -> GroupResult {
    let complication = find_complication(tables, subject.diagnoses);
    let has_or_procedure = subject.procedures.iter().any(|&p| tables.info(p).is_or_procedure());
    let principal_procedure_or = subject.procedures.first().is_some_and(|&p| tables.info(p).is_or_procedure());
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
        // The ambiguous-case check runs before rule row k (0-based) of this MDC, when k ≤ rows
        // and its test holds (the test depends only on the case, so it is decided here).
        let qy_holds = match mdc.qy_test {
            QyTest::AnyOrProcedure => has_or_procedure,
            QyTest::PrincipalProcedureOr => principal_procedure_or,
        };
        let qy_before = mdc.qy_after.filter(|&k| k <= mdc.rules.len() && qy_holds).map(|k| mdc.rules.start + k);
        let found = if tracer.enabled() {
            first_result(tables, mdc_index, mdc.rules.clone(), qy_before, subject, complication, tracer)
        } else {
            let candidates = candidate_rules(tables, mdc, subject);
            first_result(tables, mdc_index, candidates.iter().map(|&r| r as usize), qy_before, subject, complication, tracer)
        };
        match found {
            Some(result) => return result,
            None => tracer.step(Step::FellThrough { mdc: mdc_index }),
        }
    }
    tracer.step(Step::NoMdcAccepted);
    GroupResult { complication, ..GroupResult::not_grouped(GroupStatus::Fail, Detail::None) }
}

/// Tries `rules` (ascending indices of one MDC) in order until one gives a result; stops for the
/// ambiguous-case check at `qy_before`. A row that holds but whose DRG rows all fail gives the
/// bare ADRG code, or (`on_no_drg` = `next`) counts as not matching.
fn first_result<T: Tracer>(
    tables: &DrgTableSet,
    mdc: usize,
    rules: impl Iterator<Item = usize>,
    qy_before: Option<usize>,
    subject: &Subject<'_>,
    complication: Option<Complication>,
    tracer: &mut T,
) -> Option<GroupResult> {
    for rule_index in rules {
        if qy_before.is_some_and(|k| rule_index >= k) {
            return Some(ambiguous(mdc, complication, tracer));
        }
        let rule = &tables.rules[rule_index];
        match check_rule(tables, &rule.conditions, subject) {
            Ok(()) => {
                tracer.step(Step::RuleMatched { rule: rule_index });
                if let Some(result) = choose_drg(tables, mdc, rule_index, subject, complication, tracer) {
                    return Some(result);
                }
            }
            Err(failed) => {
                if let Some(missing) = missing_input(failed) {
                    return Some(input_error(missing, tracer));
                }
                tracer.step(Step::RuleNotMatched { rule: rule_index, failed })
            }
        }
    }
    qy_before.map(|_| ambiguous(mdc, complication, tracer))
}

/// A rule bound on a field the case left empty: the format says to report an input error
/// rather than guess a group (the reference grouper cannot compare a missing value).
#[inline]
fn missing_input(failed: RuleFailure) -> Option<ValidationFailure> {
    if failed == RuleFailure::LosMissing {
        Some(ValidationFailure::MissingLos)
    } else if failed == RuleFailure::IcuHoursMissing {
        Some(ValidationFailure::MissingIcuHours)
    } else {
        None
    }
}

#[cold]
fn input_error<T: Tracer>(failure: ValidationFailure, tracer: &mut T) -> GroupResult {
    tracer.step(Step::ValidationFailed(failure));
    GroupResult::not_grouped(GroupStatus::CheckFailed, Detail::Validation(failure))
}

/// The rules of `mdc` that can match this case, ascending: see [`group_subject`].
fn candidate_rules(tables: &DrgTableSet, mdc: &Mdc, subject: &Subject<'_>) -> SmallVec<[u32; 16]> {
    let (start, end) = (mdc.rules.start as u32, mdc.rules.end as u32);
    let within = |rules: &[u32]| -> std::ops::Range<usize> { rules.partition_point(|&r| r < start)..rules.partition_point(|&r| r < end) };
    let mut candidates: SmallVec<[u32; 16]> = SmallVec::new();
    let by_diagnosis = tables.info(subject.diagnoses[0]).pdx_rules();
    candidates.extend(by_diagnosis[within(by_diagnosis)].iter().copied());
    if let Some(&principal_procedure) = subject.procedures.first() {
        let by_procedure = tables.info(principal_procedure).pproc_rules();
        candidates.extend(by_procedure[within(by_procedure)].iter().copied());
    }
    candidates.extend(mdc.unanchored_rules.iter().copied());
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
    if entry.pproc_or {
        let opens = |p: CodeId| {
            let info = tables.info(p);
            info.is_or_procedure() || entry.pproc_or_extra.is_some_and(|extra| info.in_list(extra))
        };
        if !subject.procedures.first().is_some_and(|&p| opens(p)) {
            return Err(if entry.pproc_or_extra.is_some() {
                EntryFailure::PrincipalProcedureNotOrNorExtra
            } else {
                EntryFailure::PrincipalProcedureNotOr
            });
        }
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
    if conditions.extended {
        check_extended(tables, conditions, subject)?;
    }
    Ok(())
}

/// The rule columns beyond the base format (format extensions §3), for rows that have any.
fn check_extended(tables: &DrgTableSet, conditions: &RuleConditions, subject: &Subject<'_>) -> Result<(), RuleFailure> {
    let info = |code: CodeId| tables.info(code);
    let case = subject.case;
    if let Some(list) = conditions.pdx_not_list {
        if info(subject.diagnoses[0]).in_list(list) {
            return Err(RuleFailure::PrincipalDiagnosisInExcludedList);
        }
    }
    if conditions.no_pproc_or && subject.procedures.first().is_some_and(|&p| info(p).is_or_procedure()) {
        return Err(RuleFailure::PrincipalProcedureIsOr);
    }
    if let Some(list) = conditions.any_proc_list3 {
        if !subject.procedures.iter().any(|&p| info(p).in_list(list)) {
            return Err(RuleFailure::NoProcedureInThirdList);
        }
    }
    if let Some(list) = conditions.secondary_proc_list {
        if !subject.procedures.iter().skip(1).any(|&p| info(p).in_list(list)) {
            return Err(RuleFailure::NoSecondaryProcedureInList);
        }
    }
    if conditions.any_proc_or && !subject.procedures.iter().any(|&p| info(p).is_or_procedure()) {
        return Err(RuleFailure::NoOrProcedure);
    }
    // `age` is always present after validation; a missing one fails the bound.
    if let Some(minimum) = conditions.min_age_years {
        if case.age.is_none_or(|age| age < minimum) {
            return Err(RuleFailure::AgeBelowMinimum);
        }
    }
    if let Some(maximum) = conditions.max_age_years {
        if case.age.is_none_or(|age| age > maximum) {
            return Err(RuleFailure::AgeAboveMaximum);
        }
    }
    if conditions.los_min.is_some() || conditions.los_max_excl.is_some() {
        let Some(los) = case.los else { return Err(RuleFailure::LosMissing) };
        if conditions.los_min.is_some_and(|minimum| los < minimum) {
            return Err(RuleFailure::LosBelowMinimum);
        }
        if conditions.los_max_excl.is_some_and(|maximum| los >= maximum) {
            return Err(RuleFailure::LosNotBelowMaximum);
        }
    }
    if conditions.icu_hours_min.is_some() || conditions.icu_hours_max_excl.is_some() {
        let Some(hours) = case.icu_hours else { return Err(RuleFailure::IcuHoursMissing) };
        if conditions.icu_hours_min.is_some_and(|minimum| hours < minimum) {
            return Err(RuleFailure::IcuHoursBelowMinimum);
        }
        if conditions.icu_hours_max_excl.is_some_and(|maximum| hours >= maximum) {
            return Err(RuleFailure::IcuHoursNotBelowMaximum);
        }
    }
    if let Some(departments) = &conditions.department_in {
        let department = case.department.as_deref().unwrap_or("");
        if !departments.iter().any(|d| **d == *department) {
            return Err(RuleFailure::DepartmentNotListed);
        }
    }
    if let Some(dispositions) = &conditions.disposition_in {
        if !dispositions.contains(&case.disposition) {
            return Err(RuleFailure::DispositionNotListed);
        }
    }
    Ok(())
}

/// The first DRG row of the matched rule's ADRG whose rule columns and condition hold (§3 and
/// format extensions §4, §5): `None` when none holds and the rule says `on_no_drg` = `next`.
fn choose_drg<T: Tracer>(
    tables: &DrgTableSet,
    mdc: usize,
    rule_index: usize,
    subject: &Subject<'_>,
    complication: Option<Complication>,
    tracer: &mut T,
) -> Option<GroupResult> {
    let rule = &tables.rules[rule_index];
    let adrg = rule.adrg;
    // The conditions this case meets, one bit per `SeverityCondition` (`cc` is looked up only
    // when a row asks): a bit test per row instead of a jump table the case mix would mispredict.
    let bit = |condition: SeverityCondition| 1u8 << condition as u8;
    let has_mcc = complication.is_some_and(|c| c.severity == Severity::Mcc);
    let mut held = bit(SeverityCondition::Always);
    if complication.is_some() {
        held |= bit(SeverityCondition::MccOrCc);
    }
    if has_mcc {
        held |= bit(SeverityCondition::Mcc);
    }
    let mut cc: Option<Option<Complication>> = None;
    for drg_index in tables.adrgs[adrg].drgs.clone() {
        let drg = &tables.drgs[drg_index];
        let severity = drg.severity;
        let holds = if severity == SeverityCondition::Cc {
            let found = *cc.get_or_insert_with(|| match complication {
                Some(c) if c.severity == Severity::Cc => Some(c),
                _ => find_cc(tables, subject.diagnoses),
            });
            found.is_some()
        } else {
            held & bit(severity) != 0
        };
        let checked = if !holds {
            Err(severity_failure(severity))
        } else if drg.conditions.is_empty() {
            Ok(())
        } else {
            check_rule(tables, &drg.conditions, subject).map_err(DrgFailure::Rule)
        };
        let checked = checked.map(|()| match severity {
            SeverityCondition::Always => None,
            SeverityCondition::Cc => cc.flatten(),
            _ => complication,
        });
        match checked {
            Ok(deciding) => {
                tracer.step(Step::DrgChosen { drg: drg_index, complication: deciding });
                return Some(GroupResult {
                    status: GroupStatus::Success,
                    mdc: Some(mdc),
                    adrg: Some(adrg),
                    drg: Some(drg_index),
                    complication,
                    detail: Detail::None,
                });
            }
            Err(failed) => {
                if let Some(missing) = missing_input_of_drg(failed) {
                    return Some(input_error(missing, tracer));
                }
                tracer.step(Step::DrgNotChosen { drg: drg_index, failed })
            }
        }
    }
    if rule.on_no_drg == OnNoDrg::Next {
        tracer.step(Step::NoDrgTryNextRule { rule: rule_index });
        return None;
    }
    tracer.step(Step::BareAdrg { adrg });
    Some(GroupResult { status: GroupStatus::Success, mdc: Some(mdc), adrg: Some(adrg), drg: None, complication, detail: Detail::None })
}

/// Why a DRG row's severity condition failed.
fn severity_failure(condition: SeverityCondition) -> DrgFailure {
    match condition {
        SeverityCondition::Mcc => DrgFailure::NoMcc,
        SeverityCondition::MccOrCc => DrgFailure::NoMccOrCc,
        SeverityCondition::Cc => DrgFailure::NoCc,
        SeverityCondition::Always | SeverityCondition::Never => DrgFailure::Never,
    }
}

fn missing_input_of_drg(failed: DrgFailure) -> Option<ValidationFailure> {
    match failed {
        DrgFailure::Rule(failed) => missing_input(failed),
        _ => None,
    }
}

/// The first non-excluded CC among the secondary diagnoses (condition `cc`): like
/// [`find_complication`], but an MCC counts only when it is also in `cc.csv`.
fn find_cc(tables: &DrgTableSet, diagnoses: &[CodeId]) -> Option<Complication> {
    let (&principal, secondary) = diagnoses.split_first()?;
    let excluded = tables.info(principal).principal_exclusion_table();
    secondary.iter().enumerate().find_map(|(offset, &code)| {
        tables.info(code).cc_table().is_some_and(|t| Some(t) != excluded).then_some(Complication {
            severity: Severity::Cc,
            position: offset + 1,
            code,
        })
    })
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

//! Decision traces: why the DRG grouper did what it did, step by step.
//!
//! Steps are small `Copy` values (indices into the table set, positions in the case), so tracing
//! costs nothing when it is off ([`NoTrace`]) and little when it is on. [`render`] turns them into
//! sentences an auditor can read.

use super::tables::{CodeId, DrgTableSet, QyTest};
use crate::case::Case;

/// The grouping-time validation checks, in the order the reference scheme runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationFailure {
    /// `sex` is not 1 or 2.
    InvalidSex,
    /// `age` is empty.
    MissingAge,
    /// `age` = 0 and `age_days` is empty.
    MissingAgeDays,
    /// `age` = 0, `age_days` ≤ 28 and `birth_weight` is empty.
    MissingBirthWeight,
    /// No diagnosis at all.
    NoDiagnoses,
    /// A rule the case reached bounds the length of stay, and `los` is empty.
    MissingLos,
    /// A rule the case reached bounds the ICU hours, and `icu_hours` is empty.
    MissingIcuHours,
}

impl ValidationFailure {
    pub fn describe(self) -> &'static str {
        match self {
            ValidationFailure::InvalidSex => "sex is not 1 (male) or 2 (female)",
            ValidationFailure::MissingAge => "age is missing",
            ValidationFailure::MissingAgeDays => "age is 0 but age_days is missing",
            ValidationFailure::MissingBirthWeight => "newborn (age_days <= 28) without birth_weight",
            ValidationFailure::NoDiagnoses => "no diagnoses",
            ValidationFailure::MissingLos => "length of stay (los) is missing, and a rule of the scheme bounds it",
            ValidationFailure::MissingIcuHours => "ICU hours (icu_hours) are missing, and a rule of the scheme bounds them",
        }
    }
}

/// Complication level found among the secondary diagnoses (after exclusions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 严重并发症或合并症 (MCC).
    Mcc,
    /// 一般并发症或合并症 (CC).
    Cc,
}

/// The secondary diagnosis that decided a severity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complication {
    pub severity: Severity,
    /// Position in the diagnosis list (0 = principal, so always ≥ 1 here).
    pub position: usize,
    /// The grouper code (after mapping).
    pub code: CodeId,
}

/// The MDC entry condition that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFailure {
    PrincipalDiagnosisNotInList,
    NoDiagnosisInList,
    PrincipalProcedureNotOr,
    /// `pproc_or` with `pproc_or_extra`: the principal procedure is neither an operating-room
    /// procedure nor in the extra list.
    PrincipalProcedureNotOrNorExtra,
    SexDiffers,
    AgeDiffers,
    FewerThanTwoTraumaRegions,
}

/// The ADRG rule condition that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFailure {
    PrincipalDiagnosisNotInList,
    NoDiagnosisInList,
    NoSecondaryDiagnosisInList,
    PrincipalProcedureNotInList,
    PrincipalProcedureNotOr,
    NoProcedureInList,
    NoProcedureInSecondList,
    TaggedProceduresDoNotCombine,
    HasOrProcedure,
    AgeDaysAboveLimit,
    WeightBelowMinimum,
    WeightNotBelowMaximum,
    PrincipalDiagnosisInExcludedList,
    PrincipalProcedureIsOr,
    NoProcedureInThirdList,
    NoSecondaryProcedureInList,
    NoOrProcedure,
    AgeBelowMinimum,
    AgeAboveMaximum,
    LosMissing,
    LosBelowMinimum,
    LosNotBelowMaximum,
    IcuHoursMissing,
    IcuHoursBelowMinimum,
    IcuHoursNotBelowMaximum,
    DepartmentNotListed,
    DispositionNotListed,
}

/// The DRG condition that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrgFailure {
    NoMcc,
    NoMccOrCc,
    NoCc,
    /// Condition `never`.
    Never,
    /// One of the row's rule columns.
    Rule(RuleFailure),
}

/// One step of a grouping decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    DiagnosisMapped {
        position: usize,
        from: CodeId,
        to: CodeId,
    },
    ProcedureMapped {
        position: usize,
        from: CodeId,
        to: CodeId,
    },
    DiagnosisNotMapped {
        position: usize,
    },
    ProcedureNotMapped {
        position: usize,
    },
    ValidationFailed(ValidationFailure),
    MdcNotEntered {
        mdc: usize,
        failed: EntryFailure,
    },
    MdcEntered {
        mdc: usize,
    },
    RuleNotMatched {
        rule: usize,
        failed: RuleFailure,
    },
    RuleMatched {
        rule: usize,
    },
    /// The ambiguous-case check stopped grouping: the first k rules failed and an OR procedure is present.
    Ambiguous {
        mdc: usize,
    },
    FellThrough {
        mdc: usize,
    },
    DrgNotChosen {
        drg: usize,
        failed: DrgFailure,
    },
    DrgChosen {
        drg: usize,
        complication: Option<Complication>,
    },
    /// The ADRG matched but none of its DRGs did: the result is the bare ADRG code.
    BareAdrg {
        adrg: usize,
    },
    /// The rule matched but none of its ADRG's DRGs did, and the rule says `on_no_drg` = `next`.
    NoDrgTryNextRule {
        rule: usize,
    },
    /// Grouping failed and the scheme retries with one later procedure (0-based position) alone.
    RetryWithProcedure {
        position: usize,
    },
    NoMdcAccepted,
}

/// Receives grouping steps.
pub trait Tracer {
    /// Whether steps are wanted at all (lets the grouper skip work for [`NoTrace`]).
    fn enabled(&self) -> bool;
    fn step(&mut self, step: Step);
}

/// Discards every step; compiles to nothing.
pub struct NoTrace;

impl Tracer for NoTrace {
    #[inline(always)]
    fn enabled(&self) -> bool {
        false
    }
    #[inline(always)]
    fn step(&mut self, _step: Step) {}
}

/// Collects steps.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub steps: Vec<Step>,
}

impl Tracer for Trace {
    fn enabled(&self) -> bool {
        true
    }
    fn step(&mut self, step: Step) {
        self.steps.push(step);
    }
}

fn entry_text(failed: EntryFailure) -> &'static str {
    match failed {
        EntryFailure::PrincipalDiagnosisNotInList => "principal diagnosis not in its list",
        EntryFailure::NoDiagnosisInList => "no diagnosis in its list",
        EntryFailure::PrincipalProcedureNotOr => "principal procedure missing or not an operating-room procedure",
        EntryFailure::PrincipalProcedureNotOrNorExtra => {
            "principal procedure missing, not an operating-room procedure and not in the MDC's extra entry list"
        }
        EntryFailure::SexDiffers => "sex differs",
        EntryFailure::AgeDiffers => "age differs",
        EntryFailure::FewerThanTwoTraumaRegions => "fewer than 2 trauma regions",
    }
}

fn rule_text(failed: RuleFailure) -> &'static str {
    match failed {
        RuleFailure::PrincipalDiagnosisNotInList => "principal diagnosis not in pdx_list",
        RuleFailure::NoDiagnosisInList => "no diagnosis in any_dx_list",
        RuleFailure::NoSecondaryDiagnosisInList => "no secondary diagnosis in secondary_dx_list",
        RuleFailure::PrincipalProcedureNotInList => "principal procedure missing or not in pproc_list",
        RuleFailure::PrincipalProcedureNotOr => "principal procedure missing or not an operating-room procedure",
        RuleFailure::NoProcedureInList => "no procedure in any_proc_list",
        RuleFailure::NoProcedureInSecondList => "no procedure in any_proc_list2",
        RuleFailure::TaggedProceduresDoNotCombine => "tagged procedures do not satisfy proc_tag_expr",
        RuleFailure::HasOrProcedure => "an operating-room procedure is present",
        RuleFailure::AgeDaysAboveLimit => "age_days missing or above max_age_days",
        RuleFailure::WeightBelowMinimum => "birth weight missing, zero or below weight_min",
        RuleFailure::WeightNotBelowMaximum => "birth weight missing, zero or not below weight_max_excl",
        RuleFailure::PrincipalDiagnosisInExcludedList => "principal diagnosis is in pdx_not_list",
        RuleFailure::PrincipalProcedureIsOr => "principal procedure is an operating-room procedure (no_pproc_or)",
        RuleFailure::NoProcedureInThirdList => "no procedure in any_proc_list3",
        RuleFailure::NoSecondaryProcedureInList => "no secondary procedure (position 2 or later) in secondary_proc_list",
        RuleFailure::NoOrProcedure => "no procedure is an operating-room procedure (any_proc_or)",
        RuleFailure::AgeBelowMinimum => "age below min_age_years",
        RuleFailure::AgeAboveMaximum => "age above max_age_years",
        RuleFailure::LosMissing => "length of stay missing",
        RuleFailure::LosBelowMinimum => "length of stay below los_min",
        RuleFailure::LosNotBelowMaximum => "length of stay not below los_max_excl",
        RuleFailure::IcuHoursMissing => "ICU hours missing",
        RuleFailure::IcuHoursBelowMinimum => "ICU hours below icu_hours_min",
        RuleFailure::IcuHoursNotBelowMaximum => "ICU hours not below icu_hours_max_excl",
        RuleFailure::DepartmentNotListed => "department not in department_in",
        RuleFailure::DispositionNotListed => "disposition not in disposition_in",
    }
}

fn drg_text(failed: DrgFailure) -> &'static str {
    match failed {
        DrgFailure::NoMcc => "no non-excluded MCC among secondary diagnoses",
        DrgFailure::NoMccOrCc => "no non-excluded MCC or CC among secondary diagnoses",
        DrgFailure::NoCc => "no non-excluded CC among secondary diagnoses",
        DrgFailure::Never => "its condition is never",
        DrgFailure::Rule(failed) => rule_text(failed),
    }
}

/// Renders steps as sentences. `case` supplies the codes as submitted. Consecutive MDCs not
/// entered, or rules not matched, for the same reason are joined into one sentence.
pub fn render(steps: &[Step], tables: &DrgTableSet, case: &Case) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        match steps[i] {
            Step::MdcNotEntered { failed, .. } => {
                let run: Vec<&str> = steps[i..]
                    .iter()
                    .map_while(|s| match *s {
                        Step::MdcNotEntered { mdc, failed: f } if f == failed => Some(tables.mdcs[mdc].code.as_str()),
                        _ => None,
                    })
                    .collect();
                sentences.push(format!("{} not entered: {}", run.join(", "), entry_text(failed)));
                i += run.len();
            }
            Step::RuleNotMatched { failed, .. } => {
                let run: Vec<&str> = steps[i..]
                    .iter()
                    .map_while(|s| match *s {
                        Step::RuleNotMatched { rule, failed: f } if f == failed => Some(tables.rules[rule].rule.as_str()),
                        _ => None,
                    })
                    .collect();
                let noun = if run.len() == 1 { "rule" } else { "rules" };
                sentences.push(format!("{noun} {} not matched: {}", run.join(", "), rule_text(failed)));
                i += run.len();
            }
            step => {
                sentences.push(render_step(step, tables, case));
                i += 1;
            }
        }
    }
    sentences
}

fn render_step(step: Step, tables: &DrgTableSet, case: &Case) -> String {
    let submitted = |codes: &[String], position: usize| codes.get(position).cloned().unwrap_or_default();
    match step {
        Step::DiagnosisMapped { position, from, to } => {
            format!("diagnosis {} {:?} mapped to {:?}", position + 1, tables.code_text(from), tables.code_text(to))
        }
        Step::ProcedureMapped { position, from, to } => {
            format!("procedure {} {:?} mapped to {:?}", position + 1, tables.code_text(from), tables.code_text(to))
        }
        Step::DiagnosisNotMapped { position } => {
            format!("diagnosis {} {:?} is not in diagnosis_map", position + 1, submitted(&case.diagnoses, position))
        }
        Step::ProcedureNotMapped { position } => {
            format!("procedure {} {:?} is not in procedure_map", position + 1, submitted(&case.procedures, position))
        }
        Step::ValidationFailed(failure) => format!("validation failed: {}", failure.describe()),
        Step::MdcNotEntered { mdc, failed } => format!("{} not entered: {}", tables.mdcs[mdc].code, entry_text(failed)),
        Step::MdcEntered { mdc } => format!("{} entered", tables.mdcs[mdc].code),
        Step::RuleNotMatched { rule, failed } => {
            format!("rule {} not matched: {}", tables.rules[rule].rule, rule_text(failed))
        }
        Step::RuleMatched { rule } => {
            let rule = &tables.rules[rule];
            format!("rule {} matched: ADRG {}", rule.rule, tables.adrgs[rule.adrg].code)
        }
        Step::Ambiguous { mdc } => {
            let mdc = &tables.mdcs[mdc];
            let test = match mdc.qy_test {
                QyTest::AnyOrProcedure => "an operating-room procedure is present",
                QyTest::PrincipalProcedureOr => "the principal procedure is an operating-room procedure",
            };
            match mdc.qy_after {
                Some(0) => format!("{}: {test}, checked before any rule: ambiguous (QY)", mdc.code),
                _ => format!("{}: no surgical rule matched but {test}: ambiguous (QY)", mdc.code),
            }
        }
        Step::FellThrough { mdc } => format!("{}: no rule matched, falling through to the next MDC", tables.mdcs[mdc].code),
        Step::DrgNotChosen { drg, failed } => format!("DRG {} not chosen: {}", tables.drgs[drg].code, drg_text(failed)),
        Step::DrgChosen { drg, complication } => match complication {
            Some(c) => format!(
                "DRG {} chosen: {} {:?} at diagnosis {}",
                tables.drgs[drg].code,
                if c.severity == Severity::Mcc { "MCC" } else { "CC" },
                tables.code_text(c.code),
                c.position + 1
            ),
            None => format!("DRG {} chosen", tables.drgs[drg].code),
        },
        Step::BareAdrg { adrg } => format!("no DRG of {} applies: result is the bare ADRG code", tables.adrgs[adrg].code),
        Step::NoDrgTryNextRule { rule } => {
            let rule = &tables.rules[rule];
            format!("no DRG of {} applies and rule {} says on_no_drg = next: trying the next rule", tables.adrgs[rule.adrg].code, rule.rule)
        }
        Step::RetryWithProcedure { position } => format!(
            "no MDC accepted the case: grouping again with procedure {} {:?} alone",
            position + 1,
            submitted(&case.procedures, position)
        ),
        Step::NoMdcAccepted => "no MDC accepted the case".to_string(),
    }
}

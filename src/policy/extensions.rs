//! The policy keys of the regional DIP extensions (E4–E14 of the DIP regions reference):
//! per-fund coefficients, named case conditions, the DIP grouping rules and hospital overrides.
//! Each is optional and its default keeps the engine's original behaviour.

use super::{decimal, invalid, positive, PolicyError};
use crate::case::Fund;
use crate::dip::catalog::{GroupKind, Treatment};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// A coefficient given once, or per fund (`{ employee = …, resident = … }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coefficient {
    Flat(Decimal),
    PerFund { employee: Decimal, resident: Decimal },
}

impl Coefficient {
    /// The value for a case of `fund`; `None` for a per-fund coefficient and a case without fund.
    #[inline]
    pub fn for_fund(self, fund: Option<Fund>) -> Option<Decimal> {
        match (self, fund) {
            (Coefficient::Flat(value), _) => Some(value),
            (Coefficient::PerFund { employee, .. }, Some(Fund::Employee)) => Some(employee),
            (Coefficient::PerFund { resident, .. }, Some(Fund::Resident)) => Some(resident),
            (Coefficient::PerFund { .. }, None) => None,
        }
    }

    /// Every value must be positive.
    pub fn check_positive(self, key: &str) -> Result<(), PolicyError> {
        match self {
            Coefficient::Flat(value) => positive(key, value),
            Coefficient::PerFund { employee, resident } => {
                positive(&format!("{key}.employee"), employee)?;
                positive(&format!("{key}.resident"), resident)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Coefficient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Coefficient, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "decimal")] Decimal);
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            PerFund(BTreeMap<String, Wrapped>),
            Flat(Wrapped),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flat(Wrapped(value)) => Ok(Coefficient::Flat(value)),
            Raw::PerFund(mut map) => {
                let employee = map.remove("employee");
                let resident = map.remove("resident");
                if let Some(extra) = map.keys().next() {
                    return Err(serde::de::Error::custom(format!("unknown fund {extra:?}: a per-fund value has employee and resident")));
                }
                match (employee, resident) {
                    (Some(Wrapped(employee)), Some(Wrapped(resident))) => Ok(Coefficient::PerFund { employee, resident }),
                    _ => Err(serde::de::Error::custom("a per-fund value needs both employee and resident")),
                }
            }
        }
    }
}

/// CC or MCC, as a condition test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComplicationTest {
    Cc,
    Mcc,
}

/// A named test on a case (`[[conditions]]`): holds when all its given tests hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub name: String,
    #[serde(default)]
    pub min_age: Option<i64>,
    #[serde(default)]
    pub max_age: Option<i64>,
    #[serde(default)]
    pub min_age_days: Option<i64>,
    #[serde(default)]
    pub max_age_days: Option<i64>,
    #[serde(default)]
    pub min_los: Option<i64>,
    #[serde(default)]
    pub max_los: Option<i64>,
    #[serde(default)]
    pub complication: Option<ComplicationTest>,
    #[serde(default)]
    pub dispositions: Option<Vec<i64>>,
    #[serde(default)]
    pub principal_codes: Option<Vec<String>>,
    #[serde(default)]
    pub principal_prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub diagnosis_prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub procedure_codes: Option<Vec<String>>,
}

/// What a condition test needs to know about a case beyond its fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseFacts {
    /// Some secondary diagnosis passes the CC test.
    pub cc: bool,
    /// Some secondary diagnosis passes the MCC test.
    pub mcc: bool,
}

/// Whether an age in years and days is within optional year and day bounds. Day bounds hold
/// only for a case whose age is 0 or empty and whose `age_days` is given.
pub fn age_within(age: Option<i64>, age_days: Option<i64>, years: (Option<i64>, Option<i64>), days: (Option<i64>, Option<i64>)) -> bool {
    if years.0.is_some() || years.1.is_some() {
        let Some(age) = age else { return false };
        if years.0.is_some_and(|min| age < min) || years.1.is_some_and(|max| age > max) {
            return false;
        }
    }
    if days.0.is_some() || days.1.is_some() {
        if age.is_some_and(|a| a != 0) {
            return false;
        }
        let Some(d) = age_days else { return false };
        if days.0.is_some_and(|min| d < min) || days.1.is_some_and(|max| d > max) {
            return false;
        }
    }
    true
}

impl Condition {
    /// Whether the condition holds for `case`.
    pub fn holds(&self, case: &crate::case::Case, facts: CaseFacts) -> bool {
        if !age_within(case.age, case.age_days, (self.min_age, self.max_age), (self.min_age_days, self.max_age_days)) {
            return false;
        }
        if self.min_los.is_some() || self.max_los.is_some() {
            let Some(los) = case.los else { return false };
            if self.min_los.is_some_and(|m| los < m) || self.max_los.is_some_and(|m| los > m) {
                return false;
            }
        }
        match self.complication {
            Some(ComplicationTest::Cc) if !facts.cc => return false,
            Some(ComplicationTest::Mcc) if !facts.mcc => return false,
            _ => {}
        }
        if let Some(dispositions) = &self.dispositions {
            if !case.disposition.is_some_and(|d| dispositions.contains(&d)) {
                return false;
            }
        }
        let principal = case.principal_diagnosis().unwrap_or("");
        if let Some(codes) = &self.principal_codes {
            if !codes.iter().any(|c| c == principal) {
                return false;
            }
        }
        if let Some(prefixes) = &self.principal_prefixes {
            if !prefixes.iter().any(|p| principal.starts_with(p.as_str())) {
                return false;
            }
        }
        if let Some(prefixes) = &self.diagnosis_prefixes {
            if !case.diagnoses.iter().any(|d| prefixes.iter().any(|p| d.starts_with(p.as_str()))) {
                return false;
            }
        }
        if let Some(codes) = &self.procedure_codes {
            if !case.procedures.iter().any(|x| codes.contains(x)) {
                return false;
            }
        }
        true
    }

    /// Whether some case could meet every test: the bounds are not crossed and the age tests can
    /// hold together (a day test needs age 0).
    pub fn satisfiable(&self) -> bool {
        let crossed = |min: Option<i64>, max: Option<i64>| matches!((min, max), (Some(a), Some(b)) if a > b);
        let days = self.min_age_days.is_some() || self.max_age_days.is_some();
        !(crossed(self.min_age, self.max_age)
            || crossed(self.min_age_days, self.max_age_days)
            || crossed(self.min_los, self.max_los)
            || (days && self.min_age.is_some_and(|a| a > 0))
            || [&self.dispositions].iter().any(|l| l.as_ref().is_some_and(Vec::is_empty)))
    }

    pub(super) fn validate(&self, key: &str) -> Result<(), PolicyError> {
        if self.name.trim().is_empty() {
            return Err(invalid(format!("{key}.name"), "must not be empty"));
        }
        let tests = [
            self.min_age.is_some(),
            self.max_age.is_some(),
            self.min_age_days.is_some(),
            self.max_age_days.is_some(),
            self.min_los.is_some(),
            self.max_los.is_some(),
            self.complication.is_some(),
            self.dispositions.is_some(),
            self.principal_codes.is_some(),
            self.principal_prefixes.is_some(),
            self.diagnosis_prefixes.is_some(),
            self.procedure_codes.is_some(),
        ];
        if !tests.contains(&true) {
            return Err(invalid(key, format!("condition {:?} needs at least one test", self.name)));
        }
        for (name, value) in [
            ("min_age", self.min_age),
            ("max_age", self.max_age),
            ("min_age_days", self.min_age_days),
            ("max_age_days", self.max_age_days),
            ("min_los", self.min_los),
            ("max_los", self.max_los),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(invalid(format!("{key}.{name}"), "must not be negative"));
            }
        }
        for (min_name, min, max_name, max) in [
            ("min_age", self.min_age, "max_age", self.max_age),
            ("min_age_days", self.min_age_days, "max_age_days", self.max_age_days),
            ("min_los", self.min_los, "max_los", self.max_los),
        ] {
            if let (Some(a), Some(b)) = (min, max) {
                if a > b {
                    return Err(invalid(format!("{key}.{min_name}"), format!("{a} is above {max_name} {b}")));
                }
            }
        }
        if let Some(dispositions) = &self.dispositions {
            if dispositions.is_empty() {
                return Err(invalid(format!("{key}.dispositions"), "must not be empty"));
            }
            if let Some(d) = dispositions.iter().find(|d| !(1..=9).contains(*d)) {
                return Err(invalid(format!("{key}.dispositions"), format!("{d} is not a disposition 1–9")));
            }
        }
        for (name, list) in [
            ("principal_codes", &self.principal_codes),
            ("principal_prefixes", &self.principal_prefixes),
            ("diagnosis_prefixes", &self.diagnosis_prefixes),
            ("procedure_codes", &self.procedure_codes),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(format!("{key}.{name}"), "must not be empty"));
            }
        }
        Ok(())
    }
}

/// When a conservative (empty-procedure) core or grassroots row can be a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConservativeMax {
    /// The case has no typed procedure.
    Conservative,
    /// The case's treatment is conservative or diagnostic (the original rule).
    #[default]
    Diagnostic,
    /// Every procedure of the case is minor or untyped.
    Minor,
}

/// The set `candidate_rank` reduces to one ranked winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateScope {
    Core,
    #[default]
    CoreAndGrassroots,
}

/// One tie-break key of `candidate_rank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankKey {
    FullCode,
    PrincipalProcedure,
    ExactSet,
    HighestScoreIfSurgery,
    Terms,
    MatchedCodes,
    Kind,
    Treatment,
    NearestCost,
    HighestScore,
    Code,
}

impl RankKey {
    pub fn as_str(self) -> &'static str {
        match self {
            RankKey::FullCode => "full_code",
            RankKey::PrincipalProcedure => "principal_procedure",
            RankKey::ExactSet => "exact_set",
            RankKey::HighestScoreIfSurgery => "highest_score_if_surgery",
            RankKey::Terms => "terms",
            RankKey::MatchedCodes => "matched_codes",
            RankKey::Kind => "kind",
            RankKey::Treatment => "treatment",
            RankKey::NearestCost => "nearest_cost",
            RankKey::HighestScore => "highest_score",
            RankKey::Code => "code",
        }
    }
}

/// The type part of a `final_order` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassType {
    Any,
    Of(Treatment),
    /// `comprehensive/blank`: the blank group.
    Blank,
}

/// A `final_order` class `<kind>/<type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderClass {
    pub kind: GroupKind,
    pub treatment: ClassType,
}

impl OrderClass {
    pub fn parse(text: &str) -> Option<OrderClass> {
        let (kind, treatment) = text.split_once('/')?;
        let kind = match kind {
            "core" => GroupKind::Core,
            "grassroots" => GroupKind::Grassroots,
            "comprehensive" => GroupKind::Comprehensive,
            _ => return None,
        };
        let treatment = match treatment {
            "any" => ClassType::Any,
            "blank" if kind == GroupKind::Comprehensive => ClassType::Blank,
            other => ClassType::Of(Treatment::parse(other)?),
        };
        Some(OrderClass { kind, treatment })
    }

    pub fn to_text(self) -> String {
        let treatment = match self.treatment {
            ClassType::Any => "any",
            ClassType::Blank => "blank",
            ClassType::Of(t) => t.as_str(),
        };
        format!("{}/{treatment}", self.kind.as_str())
    }

    /// Whether a candidate of `kind` and `treatment` (blank: the blank group) is in this class.
    #[inline]
    pub fn holds(self, kind: GroupKind, treatment: Treatment, blank: bool) -> bool {
        if self.kind != kind {
            return false;
        }
        match self.treatment {
            ClassType::Blank => blank,
            ClassType::Any => !blank,
            ClassType::Of(t) => !blank && t == treatment,
        }
    }
}

fn order_classes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<OrderClass>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|t| {
            OrderClass::parse(t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a class <core|grassroots|comprehensive>/<surgery|therapeutic|diagnostic|conservative|any> or comprehensive/blank"
                ))
            })
        })
        .collect()
}

/// Which treatment type looks up comprehensive groups and grassroots category rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreatmentFrom {
    /// The highest type among the case's procedures.
    #[default]
    Highest,
    /// The type of the case's first procedure.
    Principal,
}

/// `[dip_grouping]`: how a DIP case's group is chosen among its candidates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DipGrouping {
    #[serde(default)]
    pub conservative_max_treatment: ConservativeMax,
    #[serde(default)]
    pub candidate_scope: CandidateScope,
    #[serde(default = "default_rank")]
    pub candidate_rank: Vec<RankKey>,
    #[serde(default = "default_order", deserialize_with = "order_classes")]
    pub final_order: Vec<OrderClass>,
    #[serde(default)]
    pub comprehensive_treatment_from: TreatmentFrom,
    #[serde(default)]
    pub unmatched_surgery_to_comprehensive: bool,
    #[serde(default = "four")]
    pub severity_split_min_los: i64,
}

fn four() -> i64 {
    4
}

/// The original tie-break order.
pub fn default_rank() -> Vec<RankKey> {
    vec![RankKey::Terms, RankKey::Kind, RankKey::Treatment, RankKey::NearestCost, RankKey::Code]
}

/// The original class order: any core or grassroots group before a comprehensive one.
pub fn default_order() -> Vec<OrderClass> {
    ["core/any", "grassroots/any", "comprehensive/any", "comprehensive/blank"].iter().filter_map(|t| OrderClass::parse(t)).collect()
}

impl Default for DipGrouping {
    fn default() -> DipGrouping {
        DipGrouping {
            conservative_max_treatment: ConservativeMax::default(),
            candidate_scope: CandidateScope::default(),
            candidate_rank: default_rank(),
            final_order: default_order(),
            comprehensive_treatment_from: TreatmentFrom::default(),
            unmatched_surgery_to_comprehensive: false,
            severity_split_min_los: four(),
        }
    }
}

impl DipGrouping {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        if self.candidate_rank.is_empty() {
            return Err(invalid("dip_grouping.candidate_rank", "must list at least one key"));
        }
        for (i, key) in self.candidate_rank.iter().enumerate() {
            if self.candidate_rank[..i].contains(key) {
                return Err(invalid("dip_grouping.candidate_rank", format!("{:?} is listed twice", key.as_str())));
            }
        }
        if self.final_order.is_empty() {
            return Err(invalid("dip_grouping.final_order", "must list at least one class"));
        }
        for (i, class) in self.final_order.iter().enumerate() {
            if self.final_order[..i].contains(class) {
                return Err(invalid("dip_grouping.final_order", format!("{:?} is listed twice", class.to_text())));
            }
        }
        if self.severity_split_min_los < 0 {
            return Err(invalid("dip_grouping.severity_split_min_los", "must not be negative"));
        }
        Ok(())
    }
}

/// Local or remote insured person (`[[hospital_overrides]] insured`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsuredScope {
    Local,
    Remote,
}

/// `[insured]`: which insured regions are local.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insured {
    pub local_prefix: String,
}

/// `[[hospital_overrides]]`: a hospital's coefficient or point value for some months or insured
/// regions. The first that matches a case applies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalOverride {
    pub hospital: String,
    #[serde(default)]
    pub months: Option<Vec<u32>>,
    #[serde(default)]
    pub insured: Option<InsuredScope>,
    #[serde(default)]
    pub coefficient: Option<Coefficient>,
    #[serde(default)]
    pub point_value: Option<Coefficient>,
}

impl HospitalOverride {
    /// Whether the override applies to a case of `hospital`, discharged in `month`, `remote` or not.
    #[inline]
    pub fn matches(&self, hospital: &str, month: Option<u32>, remote: bool) -> bool {
        self.hospital == hospital
            && self.months.as_ref().is_none_or(|months| month.is_some_and(|m| months.contains(&m)))
            && self.insured.is_none_or(|scope| (scope == InsuredScope::Remote) == remote)
    }
}

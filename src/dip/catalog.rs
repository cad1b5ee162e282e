//! The DIP catalog (病种目录库): groups of diagnosis + procedure combination with their scores,
//! loaded from a directory and indexed for grouping. Immutable once built.
//!
//! Files of a DIP catalog directory:
//!
//! `catalog.csv` — one row per group:
//!
//! | column | content |
//! |---|---|
//! | `code` | group code, unique |
//! | `name` | for people |
//! | `kind` | `core` (核心), `grassroots` (基层) or `comprehensive` (综合) |
//! | `diagnosis` | core/grassroots: the ICD-10 subcategory (`K80.1`); comprehensive: the category (`K80`) or a category range (`K00-K93`) |
//! | `procedures` | `+` joins codes that must all be present, `/` separates alternatives within one term (`51.2300+51.2200/51.2201`); empty = conservative treatment |
//! | `treatment` | `conservative`, `diagnostic`, `therapeutic` or `surgery`; required for comprehensive groups, derived from the procedures for the others when empty |
//! | `score` | 分值, on the region's scale |
//! | `mean_cost` | mean cost of the group's cases, yuan |
//! | `mean_los` | optional mean length of stay |
//! | `cases` | optional number of history cases behind the row |
//! | `mean_cost_level_<L>`, `mean_los_level_<L>` | optional means at hospitals of level L |
//!
//! `procedure_types.csv` — `code, type[, name, level, incision]`: the treatment type of each
//! procedure (`surgery`, `therapeutic`, `diagnostic`), its level (1–4) and incision class
//! (`0`, `I`, `II`, `III`). A procedure not listed counts as no treatment.
//!
//! Regional extensions, all optional (an empty cell or a missing file keeps the original rules):
//!
//! | where | what |
//! |---|---|
//! | `catalog.csv` `pricing` | empty, `cost_ratio` (points = score × cost ÷ mean × `cost_ratio_multiplier`) or `item` (paid by item) |
//! | `catalog.csv` `procedure_levels` | comprehensive rows: the principal procedure levels the row takes, `1`, `2`, `3\|4` |
//! | `catalog.csv` `severity` | core/grassroots rows: `mild`, `cc`, `mcc` or `death`, a severity-split family |
//! | `catalog.csv` `grassroots_coefficient` | grassroots rows: the group's own coefficient |
//! | `catalog.csv` `treatment = any` | a comprehensive fallback row (保底组) |
//! | `catalog.csv` `diagnosis = *` | the blank group (空白病组): one comprehensive row with `treatment = any` |
//! | `catalog.csv` grassroots rows keyed by a category or range | grassroots category rows |
//! | `procedures` codes ending in `*` | prefix codes: `51.2*` matches `51.2300` |
//! | `score = 0` | paid by item |
//! | `adjustments.csv` | `group, condition, coefficient[, mean_cost]`: per-group supplement factors |
//! | `cc.csv`, `mcc.csv`, `cc_exclusions.csv` | CC / MCC tests for DIP cases |
//! | `diagnosis_map.csv`, `procedure_map.csv`, `excluded_procedures.csv` | code conversion and exclusion |

use crate::tables::source::{fingerprint, ColumnSpec, SourceTable, TableError};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Group kind, in the order grouping prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    Core,
    Grassroots,
    Comprehensive,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Core => "core",
            GroupKind::Grassroots => "grassroots",
            GroupKind::Comprehensive => "comprehensive",
        }
    }

    fn parse(text: &str) -> Option<GroupKind> {
        match text {
            "core" | "核心" => Some(GroupKind::Core),
            "grassroots" | "基层" => Some(GroupKind::Grassroots),
            "comprehensive" | "综合" => Some(GroupKind::Comprehensive),
            _ => None,
        }
    }
}

/// Treatment type, in increasing order of intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Treatment {
    /// 保守治疗.
    Conservative,
    /// 诊断性操作.
    Diagnostic,
    /// 治疗性操作.
    Therapeutic,
    /// 相关手术.
    Surgery,
}

impl Treatment {
    pub fn as_str(self) -> &'static str {
        match self {
            Treatment::Conservative => "conservative",
            Treatment::Diagnostic => "diagnostic",
            Treatment::Therapeutic => "therapeutic",
            Treatment::Surgery => "surgery",
        }
    }

    pub fn parse(text: &str) -> Option<Treatment> {
        match text {
            "conservative" => Some(Treatment::Conservative),
            "diagnostic" => Some(Treatment::Diagnostic),
            "therapeutic" => Some(Treatment::Therapeutic),
            "surgery" => Some(Treatment::Surgery),
            _ => None,
        }
    }
}

/// What principal diagnoses a group takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosisKey {
    /// The first five characters of the code (`K80.1`).
    Subcategory(String),
    /// The first three characters (`K80`).
    Category(String),
    /// Categories from..=to (`K00-K93`).
    Range(String, String),
    /// Every diagnosis (`*`): the blank group.
    All,
}

impl DiagnosisKey {
    fn parse(text: &str) -> Option<DiagnosisKey> {
        if text == "*" {
            return Some(DiagnosisKey::All);
        }
        let is_category = |t: &str| t.len() == 3 && t.is_ascii();
        if let Some((from, to)) = text.split_once('-') {
            return (is_category(from) && is_category(to) && from <= to).then(|| DiagnosisKey::Range(from.into(), to.into()));
        }
        if is_category(text) {
            return Some(DiagnosisKey::Category(text.into()));
        }
        (text.len() == 5 && text.is_ascii() && text.as_bytes()[3] == b'.').then(|| DiagnosisKey::Subcategory(text.into()))
    }

    pub fn to_text(&self) -> String {
        match self {
            DiagnosisKey::Subcategory(s) | DiagnosisKey::Category(s) => s.clone(),
            DiagnosisKey::Range(a, b) => format!("{a}-{b}"),
            DiagnosisKey::All => "*".to_string(),
        }
    }
}

/// The subcategory (`K80.1`) of a diagnosis code, when it has one.
pub fn subcategory(code: &str) -> Option<&str> {
    let prefix = code.get(..5)?;
    (prefix.as_bytes()[3] == b'.').then_some(prefix)
}

/// The category (`K80`) of a diagnosis code.
pub fn category(code: &str) -> Option<&str> {
    code.get(..3)
}

/// Procedure id within the catalog.
pub type ProcedureId = u32;

/// How a group's cases are priced (catalog column `pricing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPricing {
    /// Score × outlier factor × severity × hospital coefficient.
    #[default]
    Points,
    /// Score × cost ÷ the group's mean × `cost_ratio_multiplier`.
    CostRatio,
    /// Paid by item (also `score = 0`): no points.
    Item,
}

/// A row of a severity-split family (catalog column `severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeveritySplit {
    Mild,
    Cc,
    Mcc,
    Death,
}

impl SeveritySplit {
    fn parse(text: &str) -> Option<SeveritySplit> {
        match text {
            "mild" => Some(SeveritySplit::Mild),
            "cc" => Some(SeveritySplit::Cc),
            "mcc" => Some(SeveritySplit::Mcc),
            "death" => Some(SeveritySplit::Death),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SeveritySplit::Mild => "mild",
            SeveritySplit::Cc => "cc",
            SeveritySplit::Mcc => "mcc",
            SeveritySplit::Death => "death",
        }
    }
}

/// One `adjustments.csv` row: a supplement factor of a group under a named policy condition.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAdjustment {
    pub condition: String,
    pub coefficient: Decimal,
    pub mean_cost: Option<Decimal>,
    pub line: u64,
}

/// One `cc.csv` / `mcc.csv` row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ComplicationRow {
    exclusion_table: String,
    principal_prefix: String,
}

/// The CC and MCC tests of DIP cases (`cc.csv`, `mcc.csv`, `cc_exclusions.csv`).
#[derive(Debug, Default)]
pub struct ComplicationTables {
    cc: FxHashMap<String, Vec<ComplicationRow>>,
    mcc: FxHashMap<String, Vec<ComplicationRow>>,
    exclusions: FxHashMap<String, Vec<String>>,
}

impl ComplicationTables {
    pub fn is_empty(&self) -> bool {
        self.cc.is_empty() && self.mcc.is_empty()
    }

    fn passes(&self, rows: &FxHashMap<String, Vec<ComplicationRow>>, diagnoses: &[String]) -> bool {
        let Some((principal, secondary)) = diagnoses.split_first() else { return false };
        let excluded = self.exclusions.get(principal);
        secondary.iter().any(|x| {
            rows.get(x).is_some_and(|rows| {
                rows.iter().any(|row| {
                    let not_excluded =
                        row.exclusion_table.is_empty() || !excluded.is_some_and(|tables| tables.contains(&row.exclusion_table));
                    not_excluded && principal.starts_with(row.principal_prefix.as_str())
                })
            })
        })
    }

    /// (CC test, MCC test) of a case's diagnoses (the first is the principal).
    pub fn tests(&self, diagnoses: &[String]) -> (bool, bool) {
        if self.is_empty() {
            return (false, false);
        }
        (self.passes(&self.cc, diagnoses), self.passes(&self.mcc, diagnoses))
    }
}

/// Code conversion and excluded procedures (`diagnosis_map.csv`, `procedure_map.csv`,
/// `excluded_procedures.csv`).
#[derive(Debug, Default)]
pub struct CodeMaps {
    pub diagnoses: FxHashMap<String, String>,
    pub procedures: FxHashMap<String, String>,
    pub excluded_procedures: rustc_hash::FxHashSet<String>,
}

impl CodeMaps {
    pub fn is_empty(&self) -> bool {
        self.diagnoses.is_empty() && self.procedures.is_empty() && self.excluded_procedures.is_empty()
    }

    /// Whether some code of the case is mapped or excluded (else [`CodeMaps::apply`] would copy
    /// it unchanged).
    pub fn changes(&self, case: &crate::case::Case) -> bool {
        case.diagnoses.iter().any(|d| self.diagnoses.contains_key(d.as_str()))
            || case.procedures.iter().any(|p| self.procedures.contains_key(p.as_str()) || self.excluded_procedures.contains(p.as_str()))
    }

    /// The case's codes mapped (a code without an entry stays) and its excluded procedures dropped.
    pub fn apply(&self, case: &crate::case::Case) -> crate::case::Case {
        let mut mapped = crate::case::Case::default();
        self.apply_into(case, &mut mapped);
        mapped
    }

    /// [`CodeMaps::apply`] into `mapped`, reusing its allocations.
    pub fn apply_into(&self, case: &crate::case::Case, mapped: &mut crate::case::Case) {
        // Every field named, so that a new case field cannot be forgotten here.
        let crate::case::Case {
            case_id,
            hospital_id,
            patient_id,
            fund,
            sex,
            age,
            age_days,
            birth_weight,
            admission_date,
            discharge_date,
            los,
            disposition,
            department,
            diagnoses,
            procedures,
            total_cost,
            fund_paid,
            patient_paid,
            icu_hours,
            insured_region,
            benefit,
        } = case;
        mapped.case_id.clone_from(case_id);
        mapped.hospital_id.clone_from(hospital_id);
        mapped.patient_id.clone_from(patient_id);
        mapped.fund = *fund;
        mapped.sex = *sex;
        mapped.age = *age;
        mapped.age_days = *age_days;
        mapped.birth_weight = *birth_weight;
        mapped.admission_date = *admission_date;
        mapped.discharge_date = *discharge_date;
        mapped.los = *los;
        mapped.disposition = *disposition;
        mapped.department.clone_from(department);
        mapped.diagnoses.clone_from(diagnoses);
        mapped.procedures.clone_from(procedures);
        mapped.total_cost = *total_cost;
        mapped.fund_paid = *fund_paid;
        mapped.patient_paid = *patient_paid;
        mapped.icu_hours = *icu_hours;
        mapped.insured_region.clone_from(insured_region);
        mapped.benefit.clone_from(benefit);
        for d in &mut mapped.diagnoses {
            if let Some(to) = self.diagnoses.get(d.as_str()) {
                d.clone_from(to);
            }
        }
        for p in &mut mapped.procedures {
            if let Some(to) = self.procedures.get(p.as_str()) {
                p.clone_from(to);
            }
        }
        mapped.procedures.retain(|p| !self.excluded_procedures.contains(p.as_str()));
    }
}

#[derive(Debug, Clone)]
pub struct DipGroup {
    pub code: String,
    pub name: String,
    pub kind: GroupKind,
    pub diagnosis: DiagnosisKey,
    /// All terms must be satisfied; a term is satisfied by any one of its procedures.
    pub terms: Vec<Vec<ProcedureId>>,
    /// Per term, its prefix codes without the `*` (empty when the row has none).
    pub prefix_terms: Vec<Vec<String>>,
    /// The procedure expression as written.
    pub procedures_text: String,
    pub treatment: Treatment,
    pub score: Decimal,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub cases: Option<u64>,
    pub level_mean_cost: BTreeMap<String, Decimal>,
    pub line: u64,
    pub pricing: GroupPricing,
    /// A comprehensive fallback row (`treatment = any`).
    pub fallback: bool,
    /// Comprehensive rows: the principal procedure levels taken (bit L for level L); 0 = any.
    pub procedure_levels: u8,
    pub severity: Option<SeveritySplit>,
    /// Rows with `severity`: the index of the first row of its family (same kind, diagnosis and
    /// procedures); others: `usize::MAX`.
    pub family: usize,
    pub grassroots_coefficient: Option<Decimal>,
    pub adjustments: Vec<GroupAdjustment>,
}

impl DipGroup {
    /// Whether the row's expression has prefix codes.
    pub fn has_prefix_codes(&self) -> bool {
        !self.prefix_terms.is_empty()
    }

    /// Whether the blank group (`diagnosis = *`).
    pub fn is_blank(&self) -> bool {
        self.diagnosis == DiagnosisKey::All
    }
}

impl DipGroup {
    /// Mean cost at a hospital level, falling back to the overall mean.
    pub fn mean_cost_at(&self, level: Option<&str>) -> Decimal {
        level.and_then(|l| self.level_mean_cost.get(l)).copied().unwrap_or(self.mean_cost)
    }
}

/// A loaded DIP catalog.
#[derive(Debug)]
pub struct DipCatalog {
    pub name: String,
    pub fingerprint: String,
    pub groups: Vec<DipGroup>,
    procedure_index: FxHashMap<String, ProcedureId>,
    procedure_codes: Vec<String>,
    procedure_types: Vec<Option<Treatment>>,
    core_by_subcategory: FxHashMap<String, Vec<usize>>,
    comprehensive_by_category: FxHashMap<String, Vec<usize>>,
    comprehensive_ranges: Vec<usize>,
    by_code: FxHashMap<String, usize>,
    procedure_levels: Vec<Option<u8>>,
    procedure_incisions: Vec<Option<u8>>,
    fallback_by_category: FxHashMap<String, Vec<usize>>,
    fallback_ranges: Vec<usize>,
    grassroots_by_category: FxHashMap<String, Vec<usize>>,
    grassroots_ranges: Vec<usize>,
    blank: Option<usize>,
    pub complications: ComplicationTables,
    pub maps: CodeMaps,
    /// Whether the catalog uses none of the regional extensions (the original grouping applies).
    pub plain: bool,
}

const CATALOG_COLUMNS: &[&str] = &["code", "name", "kind", "diagnosis", "procedures", "treatment", "score", "mean_cost"];
const CATALOG_OPTIONAL: &[&str] = &["mean_los", "cases", "pricing", "procedure_levels", "severity", "grassroots_coefficient"];

/// The optional files of a catalog directory.
pub const OPTIONAL_FILES: &[&str] =
    &["adjustments.csv", "cc.csv", "mcc.csv", "cc_exclusions.csv", "diagnosis_map.csv", "procedure_map.csv", "excluded_procedures.csv"];

fn decimal_cell(row: &crate::tables::source::Row<'_>, column: &str) -> Result<Option<Decimal>, TableError> {
    match row.non_empty(column) {
        None => Ok(None),
        Some(text) => Decimal::from_str(text).map(Some).map_err(|_| row.bad(column, "not a decimal number")),
    }
}

impl DipCatalog {
    pub fn build(name: String, sources: &BTreeMap<String, SourceTable>) -> Result<DipCatalog, TableError> {
        let missing = |file: &str| TableError::MissingFile { file: file.to_string() };
        let mut procedure_index: FxHashMap<String, ProcedureId> = FxHashMap::default();
        let mut procedure_codes: Vec<String> = Vec::new();
        let mut procedure_types: Vec<Option<Treatment>> = Vec::new();
        let mut intern = |code: &str, index: &mut FxHashMap<String, ProcedureId>, types: &mut Vec<Option<Treatment>>| -> ProcedureId {
            if let Some(&id) = index.get(code) {
                return id;
            }
            let id = procedure_codes.len() as ProcedureId;
            procedure_codes.push(code.to_string());
            types.push(None);
            index.insert(code.to_string(), id);
            id
        };
        let mut plain = true;

        let types_table = sources.get("procedure_types.csv").ok_or_else(|| missing("procedure_types.csv"))?;
        let types = types_table.check(&ColumnSpec { required: &["code", "type"], optional: &["name", "level", "incision"] })?;
        let mut typed_levels: Vec<(ProcedureId, Option<u8>, Option<u8>)> = Vec::new();
        for row in types.rows() {
            let code = row.required("code")?;
            let treatment = Treatment::parse(row.get("type"))
                .filter(|t| *t != Treatment::Conservative)
                .ok_or_else(|| row.bad("type", "must be surgery, therapeutic or diagnostic"))?;
            let level = match row.get("level") {
                "" => None,
                "1" => Some(1),
                "2" => Some(2),
                "3" => Some(3),
                "4" => Some(4),
                _ => return Err(row.bad("level", "must be empty, 1, 2, 3 or 4")),
            };
            let incision = match row.get("incision") {
                "" => None,
                "0" => Some(0),
                "I" => Some(1),
                "II" => Some(2),
                "III" => Some(3),
                _ => return Err(row.bad("incision", "must be empty, 0, I, II or III")),
            };
            let id = intern(code, &mut procedure_index, &mut procedure_types);
            if procedure_types[id as usize].is_some_and(|t| t != treatment) {
                return Err(row.bad_row(format!("procedure {code:?} listed twice with different types")));
            }
            procedure_types[id as usize] = Some(treatment);
            if level.is_some() || incision.is_some() {
                typed_levels.push((id, level, incision));
            }
        }

        let catalog_table = sources.get("catalog.csv").ok_or_else(|| missing("catalog.csv"))?;
        let level_columns: Vec<&str> = catalog_table
            .columns
            .iter()
            .map(String::as_str)
            .filter(|c| c.starts_with("mean_cost_level_") || c.starts_with("mean_los_level_"))
            .collect();
        let optional: Vec<&str> = CATALOG_OPTIONAL.iter().copied().chain(level_columns.iter().copied()).collect();
        let catalog = catalog_table.check(&ColumnSpec { required: CATALOG_COLUMNS, optional: &optional })?;
        let mut groups = Vec::with_capacity(catalog.len());
        let mut by_code: FxHashMap<String, usize> = FxHashMap::default();
        let mut blank: Option<usize> = None;
        for row in catalog.rows() {
            let code = row.required("code")?.to_string();
            let kind = GroupKind::parse(row.get("kind")).ok_or_else(|| row.bad("kind", "must be core, grassroots or comprehensive"))?;
            let diagnosis = DiagnosisKey::parse(row.get("diagnosis")).ok_or_else(|| {
                row.bad("diagnosis", "must be a subcategory (K80.1), a category (K80), a range (K00-K93) or * (the blank group)")
            })?;
            let fallback = row.get("treatment") == "any";
            if fallback && kind != GroupKind::Comprehensive {
                return Err(row.bad("treatment", "any is allowed only on comprehensive rows"));
            }
            match (&kind, &diagnosis) {
                (GroupKind::Comprehensive, DiagnosisKey::Subcategory(_)) => {
                    return Err(row.bad("diagnosis", "a comprehensive group takes a category or a range"))
                }
                (GroupKind::Core, DiagnosisKey::Category(_) | DiagnosisKey::Range(..)) => {
                    return Err(row.bad("diagnosis", "a core group takes a subcategory"))
                }
                (GroupKind::Grassroots, DiagnosisKey::Category(_) | DiagnosisKey::Range(..)) => {
                    if !row.get("procedures").is_empty() || row.non_empty("treatment").is_none() {
                        return Err(
                            row.bad("diagnosis", "a grassroots row keyed by a category or range needs a treatment and no procedures")
                        );
                    }
                    plain = false;
                }
                (GroupKind::Core | GroupKind::Grassroots, DiagnosisKey::All) => {
                    return Err(row.bad("diagnosis", "* (the blank group) is allowed only on a comprehensive row"))
                }
                (GroupKind::Comprehensive, DiagnosisKey::All) => {
                    if !fallback {
                        return Err(row.bad("treatment", "the blank group (diagnosis *) needs treatment any"));
                    }
                    if let Some(first) = blank {
                        let first_line = groups.get(first).map_or(0, |g: &DipGroup| g.line);
                        return Err(row.bad("diagnosis", &format!("a second blank group (the first is on line {first_line})")));
                    }
                    blank = Some(groups.len());
                }
                _ => {}
            }
            let procedures_text = row.get("procedures").to_string();
            let mut terms: Vec<Vec<ProcedureId>> = Vec::new();
            let mut prefix_terms: Vec<Vec<String>> = Vec::new();
            if !procedures_text.is_empty() {
                for term in procedures_text.split('+') {
                    let mut alternatives = Vec::new();
                    let mut prefixes = Vec::new();
                    for code in term.split('/') {
                        if code.is_empty() {
                            return Err(row.bad("procedures", "has an empty code"));
                        }
                        match code.find('*') {
                            None => alternatives.push(intern(code, &mut procedure_index, &mut procedure_types)),
                            Some(at) if at == code.len() - 1 && at > 0 => prefixes.push(code[..at].to_string()),
                            Some(_) => return Err(row.bad("procedures", "a * may only end a prefix code (51.2*)")),
                        }
                    }
                    terms.push(alternatives);
                    prefix_terms.push(prefixes);
                }
            }
            if prefix_terms.iter().all(Vec::is_empty) {
                prefix_terms.clear();
            } else {
                plain = false;
            }
            let mut derived =
                terms.iter().flat_map(|t| t.iter()).filter_map(|&p| procedure_types[p as usize]).max().unwrap_or(Treatment::Conservative);
            for prefix in prefix_terms.iter().flatten() {
                for (listed, &id) in &procedure_index {
                    if let Some(t) = procedure_types[id as usize] {
                        if listed.starts_with(prefix.as_str()) {
                            derived = derived.max(t);
                        }
                    }
                }
            }
            let treatment = match row.non_empty("treatment") {
                Some("any") => Treatment::Conservative,
                Some(text) => Treatment::parse(text)
                    .ok_or_else(|| row.bad("treatment", "must be conservative, diagnostic, therapeutic, surgery or any"))?,
                None if kind == GroupKind::Comprehensive => {
                    return Err(row.bad("treatment", "a comprehensive group needs a treatment type"))
                }
                None => derived,
            };
            if fallback {
                plain = false;
            }
            if kind == GroupKind::Comprehensive && !terms.is_empty() {
                return Err(row.bad("procedures", "a comprehensive group is defined by its treatment type, not procedures"));
            }
            let pricing = match row.get("pricing") {
                "" => GroupPricing::Points,
                "cost_ratio" => GroupPricing::CostRatio,
                "item" => GroupPricing::Item,
                _ => return Err(row.bad("pricing", "must be empty, cost_ratio or item")),
            };
            let score = decimal_cell(&row, "score")?.ok_or_else(|| row.bad("score", "must not be empty"))?;
            if score < Decimal::ZERO {
                return Err(row.bad("score", "must not be negative"));
            }
            let pricing = if score.is_zero() { GroupPricing::Item } else { pricing };
            let by_item = pricing == GroupPricing::Item;
            if pricing != GroupPricing::Points {
                plain = false;
            }
            let mean_cost = decimal_cell(&row, "mean_cost")?.ok_or_else(|| row.bad("mean_cost", "must not be empty"))?;
            if mean_cost < Decimal::ZERO || (mean_cost.is_zero() && !by_item) {
                return Err(row.bad("mean_cost", if by_item { "must not be negative" } else { "must be positive" }));
            }
            let mut level_mean_cost = BTreeMap::new();
            for column in &level_columns {
                if let Some(level) = column.strip_prefix("mean_cost_level_") {
                    if let Some(value) = decimal_cell(&row, column)? {
                        if value <= Decimal::ZERO {
                            return Err(row.bad(column, "must be positive"));
                        }
                        level_mean_cost.insert(level.to_string(), value);
                    }
                }
            }
            let cases = match row.int("cases")? {
                Some(n) if n < 0 => return Err(row.bad("cases", "must not be negative")),
                other => other.map(|n| n as u64),
            };
            let mut procedure_levels = 0u8;
            if let Some(text) = row.non_empty("procedure_levels") {
                if kind != GroupKind::Comprehensive {
                    return Err(row.bad("procedure_levels", "is allowed only on comprehensive rows"));
                }
                for level in text.split('|') {
                    match level {
                        "1" | "2" | "3" | "4" => procedure_levels |= 1 << (level.as_bytes()[0] - b'0'),
                        _ => return Err(row.bad("procedure_levels", "must be levels 1–4 joined by |")),
                    }
                }
                plain = false;
            }
            let severity = match row.non_empty("severity") {
                None => None,
                Some(text) => {
                    if kind == GroupKind::Comprehensive {
                        return Err(row.bad("severity", "is allowed only on core and grassroots rows"));
                    }
                    plain = false;
                    Some(SeveritySplit::parse(text).ok_or_else(|| row.bad("severity", "must be empty, mild, cc, mcc or death"))?)
                }
            };
            let grassroots_coefficient = decimal_cell(&row, "grassroots_coefficient")?;
            if let Some(c) = grassroots_coefficient {
                if kind != GroupKind::Grassroots {
                    return Err(row.bad("grassroots_coefficient", "is allowed only on grassroots rows"));
                }
                if c <= Decimal::ZERO {
                    return Err(row.bad("grassroots_coefficient", "must be positive"));
                }
            }
            if let Some(&first) = by_code.get(&code) {
                let first_line = groups.get(first).map_or(0, |g: &DipGroup| g.line);
                return Err(row.bad("code", &format!("group already defined on line {first_line}")));
            }
            by_code.insert(code.clone(), groups.len());
            groups.push(DipGroup {
                code,
                name: row.get("name").to_string(),
                kind,
                diagnosis,
                terms,
                prefix_terms,
                procedures_text,
                treatment,
                score,
                mean_cost,
                mean_los: decimal_cell(&row, "mean_los")?,
                cases,
                level_mean_cost,
                line: row.line,
                pricing,
                fallback,
                procedure_levels,
                severity,
                family: usize::MAX,
                grassroots_coefficient,
                adjustments: Vec::new(),
            });
        }

        // Severity-split families: each value at most once per (kind, diagnosis, procedures).
        type Family<'g> = (GroupKind, String, &'g str);
        let mut families: FxHashMap<Family<'_>, Vec<(SeveritySplit, u64, usize)>> = FxHashMap::default();
        let mut family_of = vec![usize::MAX; groups.len()];
        for (i, g) in groups.iter().enumerate() {
            if let Some(split) = g.severity {
                let family = families.entry((g.kind, g.diagnosis.to_text(), g.procedures_text.as_str())).or_default();
                family_of[i] = family.first().map_or(i, |&(_, _, head)| head);
                if let Some((_, line, _)) = family.iter().find(|(s, _, _)| *s == split) {
                    return Err(TableError::BadRow {
                        file: "catalog.csv".into(),
                        line: g.line,
                        message: format!("severity {} is already in this family on line {line}", split.as_str()),
                    });
                }
                family.push((split, g.line, i));
            }
        }
        for (group, family) in groups.iter_mut().zip(family_of) {
            group.family = family;
        }

        if let Some(table) = sources.get("adjustments.csv") {
            let checked = table.check(&ColumnSpec { required: &["group", "condition", "coefficient"], optional: &["mean_cost"] })?;
            for row in checked.rows() {
                let group = row.required("group")?;
                let index = *by_code.get(group).ok_or_else(|| row.bad("group", "is not a code of catalog.csv"))?;
                let condition = row.required("condition")?.to_string();
                let coefficient = decimal_cell(&row, "coefficient")?.ok_or_else(|| row.bad("coefficient", "must not be empty"))?;
                if coefficient <= Decimal::ZERO {
                    return Err(row.bad("coefficient", "must be positive"));
                }
                let mean_cost = decimal_cell(&row, "mean_cost")?;
                if mean_cost.is_some_and(|m| m <= Decimal::ZERO) {
                    return Err(row.bad("mean_cost", "must be positive"));
                }
                let adjustments = &mut groups[index].adjustments;
                if adjustments.iter().any(|a| a.condition == condition) {
                    return Err(row.bad("condition", "is listed twice for this group"));
                }
                adjustments.push(GroupAdjustment { condition, coefficient, mean_cost, line: row.line });
            }
        }

        let mut complications = ComplicationTables::default();
        for (file, rows) in [("cc.csv", &mut complications.cc), ("mcc.csv", &mut complications.mcc)] {
            if let Some(table) = sources.get(file) {
                let checked = table.check(&ColumnSpec { required: &["code", "exclusion_table"], optional: &["principal_prefix"] })?;
                for row in checked.rows() {
                    rows.entry(row.required("code")?.to_string()).or_default().push(ComplicationRow {
                        exclusion_table: row.get("exclusion_table").to_string(),
                        principal_prefix: row.get("principal_prefix").to_string(),
                    });
                }
            }
        }
        if let Some(table) = sources.get("cc_exclusions.csv") {
            let checked = table.check(&ColumnSpec { required: &["principal_code", "exclusion_table"], optional: &[] })?;
            for row in checked.rows() {
                complications
                    .exclusions
                    .entry(row.required("principal_code")?.to_string())
                    .or_default()
                    .push(row.required("exclusion_table")?.to_string());
            }
        }
        let mut maps = CodeMaps::default();
        for (file, map) in [("diagnosis_map.csv", &mut maps.diagnoses), ("procedure_map.csv", &mut maps.procedures)] {
            if let Some(table) = sources.get(file) {
                let checked = table.check(&ColumnSpec { required: &["from", "to"], optional: &[] })?;
                for row in checked.rows() {
                    let from = row.required("from")?.to_string();
                    let to = row.required("to")?.to_string();
                    if map.insert(from, to).is_some() {
                        return Err(row.bad("from", "is listed twice"));
                    }
                }
            }
        }
        if let Some(table) = sources.get("excluded_procedures.csv") {
            let checked = table.check(&ColumnSpec { required: &["code"], optional: &[] })?;
            for row in checked.rows() {
                maps.excluded_procedures.insert(row.required("code")?.to_string());
            }
        }
        if !maps.is_empty() || !complications.is_empty() || groups.iter().any(|g| !g.adjustments.is_empty()) {
            plain = false;
        }

        let mut procedure_levels = vec![None; procedure_codes.len()];
        let mut procedure_incisions = vec![None; procedure_codes.len()];
        for (id, level, incision) in typed_levels {
            procedure_levels[id as usize] = level;
            procedure_incisions[id as usize] = incision;
        }

        let mut core_by_subcategory: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut comprehensive_by_category: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut comprehensive_ranges = Vec::new();
        let mut fallback_by_category: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut fallback_ranges = Vec::new();
        let mut grassroots_by_category: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut grassroots_ranges = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            let (by_category, ranges) = match (group.kind, group.fallback) {
                (GroupKind::Comprehensive, false) => (&mut comprehensive_by_category, &mut comprehensive_ranges),
                (GroupKind::Comprehensive, true) => (&mut fallback_by_category, &mut fallback_ranges),
                _ => (&mut grassroots_by_category, &mut grassroots_ranges),
            };
            match &group.diagnosis {
                DiagnosisKey::Subcategory(s) => core_by_subcategory.entry(s.clone()).or_default().push(i),
                DiagnosisKey::Category(c) => by_category.entry(c.clone()).or_default().push(i),
                DiagnosisKey::Range(..) => ranges.push(i),
                DiagnosisKey::All => {}
            }
        }
        Ok(DipCatalog {
            name,
            fingerprint: format!("{:016x}", fingerprint(sources)),
            groups,
            procedure_index,
            procedure_codes,
            procedure_types,
            core_by_subcategory,
            comprehensive_by_category,
            comprehensive_ranges,
            by_code,
            procedure_levels,
            procedure_incisions,
            fallback_by_category,
            fallback_ranges,
            grassroots_by_category,
            grassroots_ranges,
            blank,
            complications,
            maps,
            plain,
        })
    }

    /// The level (1–4) of a procedure, when `procedure_types.csv` gives it.
    pub fn procedure_level(&self, id: ProcedureId) -> Option<u8> {
        self.procedure_levels.get(id as usize).copied().flatten()
    }

    /// Whether a case procedure is minor: not listed in `procedure_types.csv`, or listed with
    /// incision 0 and level 1 or 2.
    pub fn is_minor(&self, id: Option<ProcedureId>) -> bool {
        let Some(id) = id else { return true };
        if self.procedure_type(id).is_none() {
            return true;
        }
        let i = id as usize;
        self.procedure_incisions.get(i).copied().flatten() == Some(0)
            && matches!(self.procedure_levels.get(i).copied().flatten(), Some(1 | 2))
    }

    /// Fallback comprehensive rows (`treatment = any`) keyed by a category.
    pub fn fallback_groups(&self, category: &str) -> &[usize] {
        self.fallback_by_category.get(category).map_or(&[], Vec::as_slice)
    }

    pub fn fallback_ranges(&self) -> &[usize] {
        &self.fallback_ranges
    }

    /// Whether the catalog has grassroots rows keyed by a category or range.
    pub fn has_grassroots_category_rows(&self) -> bool {
        !self.grassroots_by_category.is_empty() || !self.grassroots_ranges.is_empty()
    }

    /// Whether the catalog has fallback rows (`treatment = any`, not the blank group).
    pub fn has_fallback_rows(&self) -> bool {
        !self.fallback_by_category.is_empty() || !self.fallback_ranges.is_empty()
    }

    /// Grassroots rows keyed by a category.
    pub fn grassroots_category_groups(&self, category: &str) -> &[usize] {
        self.grassroots_by_category.get(category).map_or(&[], Vec::as_slice)
    }

    pub fn grassroots_ranges(&self) -> &[usize] {
        &self.grassroots_ranges
    }

    /// The blank group (`diagnosis = *`), if any.
    pub fn blank_group(&self) -> Option<usize> {
        self.blank
    }

    pub fn procedure_id(&self, code: &str) -> Option<ProcedureId> {
        self.procedure_index.get(code).copied()
    }

    pub fn procedure_code(&self, id: ProcedureId) -> &str {
        self.procedure_codes.get(id as usize).map_or("", String::as_str)
    }

    /// The treatment type of a procedure, when the catalog knows it.
    pub fn procedure_type(&self, id: ProcedureId) -> Option<Treatment> {
        self.procedure_types.get(id as usize).copied().flatten()
    }

    pub fn core_groups(&self, subcategory: &str) -> &[usize] {
        self.core_by_subcategory.get(subcategory).map_or(&[], Vec::as_slice)
    }

    pub fn comprehensive_groups(&self, category: &str) -> &[usize] {
        self.comprehensive_by_category.get(category).map_or(&[], Vec::as_slice)
    }

    pub fn comprehensive_ranges(&self) -> &[usize] {
        &self.comprehensive_ranges
    }

    pub fn group_index(&self, code: &str) -> Option<usize> {
        self.by_code.get(code).copied()
    }
}

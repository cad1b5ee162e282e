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
//! `procedure_types.csv` — `code, type[, name]`: the treatment type of each procedure
//! (`surgery`, `therapeutic`, `diagnostic`). A procedure not listed counts as no treatment.

use crate::tables::source::{fingerprint, read_table_dir, ColumnSpec, SourceTable, TableError};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::path::Path;
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
}

impl DiagnosisKey {
    fn parse(text: &str) -> Option<DiagnosisKey> {
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

#[derive(Debug, Clone)]
pub struct DipGroup {
    pub code: String,
    pub name: String,
    pub kind: GroupKind,
    pub diagnosis: DiagnosisKey,
    /// All terms must be satisfied; a term is satisfied by any one of its procedures.
    pub terms: Vec<Vec<ProcedureId>>,
    /// The procedure expression as written.
    pub procedures_text: String,
    pub treatment: Treatment,
    pub score: Decimal,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub cases: Option<u64>,
    pub level_mean_cost: BTreeMap<String, Decimal>,
    pub line: u64,
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
}

const CATALOG_COLUMNS: &[&str] = &["code", "name", "kind", "diagnosis", "procedures", "treatment", "score", "mean_cost"];
const CATALOG_OPTIONAL: &[&str] = &["mean_los", "cases"];

fn decimal_cell(row: &crate::tables::source::Row<'_>, column: &str) -> Result<Option<Decimal>, TableError> {
    match row.non_empty(column) {
        None => Ok(None),
        Some(text) => Decimal::from_str(text).map(Some).map_err(|_| row.bad(column, "not a decimal number")),
    }
}

impl DipCatalog {
    pub fn load_dir(dir: &Path) -> Result<DipCatalog, TableError> {
        let sources = read_table_dir(dir, &["catalog.csv", "procedure_types.csv"], &[])?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| dir.display().to_string());
        DipCatalog::build(name, &sources)
    }

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

        let types_table = sources.get("procedure_types.csv").ok_or_else(|| missing("procedure_types.csv"))?;
        let types = types_table.check(&ColumnSpec { required: &["code", "type"], optional: &["name"] })?;
        for row in types.rows() {
            let code = row.required("code")?;
            let treatment = Treatment::parse(row.get("type"))
                .filter(|t| *t != Treatment::Conservative)
                .ok_or_else(|| row.bad("type", "must be surgery, therapeutic or diagnostic"))?;
            let id = intern(code, &mut procedure_index, &mut procedure_types);
            if procedure_types[id as usize].is_some_and(|t| t != treatment) {
                return Err(row.bad_row(format!("procedure {code:?} listed twice with different types")));
            }
            procedure_types[id as usize] = Some(treatment);
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
        for row in catalog.rows() {
            let code = row.required("code")?.to_string();
            let kind = GroupKind::parse(row.get("kind")).ok_or_else(|| row.bad("kind", "must be core, grassroots or comprehensive"))?;
            let diagnosis = DiagnosisKey::parse(row.get("diagnosis"))
                .ok_or_else(|| row.bad("diagnosis", "must be a subcategory (K80.1), a category (K80) or a range (K00-K93)"))?;
            match (&kind, &diagnosis) {
                (GroupKind::Comprehensive, DiagnosisKey::Subcategory(_)) => {
                    return Err(row.bad("diagnosis", "a comprehensive group takes a category or a range"))
                }
                (GroupKind::Core | GroupKind::Grassroots, DiagnosisKey::Category(_) | DiagnosisKey::Range(..)) => {
                    return Err(row.bad("diagnosis", "a core or grassroots group takes a subcategory"))
                }
                _ => {}
            }
            let procedures_text = row.get("procedures").to_string();
            let mut terms: Vec<Vec<ProcedureId>> = Vec::new();
            if !procedures_text.is_empty() {
                for term in procedures_text.split('+') {
                    let mut alternatives = Vec::new();
                    for code in term.split('/') {
                        if code.is_empty() {
                            return Err(row.bad("procedures", "has an empty code"));
                        }
                        alternatives.push(intern(code, &mut procedure_index, &mut procedure_types));
                    }
                    terms.push(alternatives);
                }
            }
            let derived =
                terms.iter().flat_map(|t| t.iter()).filter_map(|&p| procedure_types[p as usize]).max().unwrap_or(Treatment::Conservative);
            let treatment = match row.non_empty("treatment") {
                Some(text) => Treatment::parse(text)
                    .ok_or_else(|| row.bad("treatment", "must be conservative, diagnostic, therapeutic or surgery"))?,
                None if kind == GroupKind::Comprehensive => {
                    return Err(row.bad("treatment", "a comprehensive group needs a treatment type"))
                }
                None => derived,
            };
            if kind == GroupKind::Comprehensive && !terms.is_empty() {
                return Err(row.bad("procedures", "a comprehensive group is defined by its treatment type, not procedures"));
            }
            let score = decimal_cell(&row, "score")?.ok_or_else(|| row.bad("score", "must not be empty"))?;
            if score <= Decimal::ZERO {
                return Err(row.bad("score", "must be positive"));
            }
            let mean_cost = decimal_cell(&row, "mean_cost")?.ok_or_else(|| row.bad("mean_cost", "must not be empty"))?;
            if mean_cost <= Decimal::ZERO {
                return Err(row.bad("mean_cost", "must be positive"));
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
                procedures_text,
                treatment,
                score,
                mean_cost,
                mean_los: decimal_cell(&row, "mean_los")?,
                cases,
                level_mean_cost,
                line: row.line,
            });
        }

        let mut core_by_subcategory: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut comprehensive_by_category: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut comprehensive_ranges = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            match &group.diagnosis {
                DiagnosisKey::Subcategory(s) => core_by_subcategory.entry(s.clone()).or_default().push(i),
                DiagnosisKey::Category(c) => comprehensive_by_category.entry(c.clone()).or_default().push(i),
                DiagnosisKey::Range(..) => comprehensive_ranges.push(i),
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
        })
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

//! The DRG table set: every file of the declarative CHS-DRG format, validated and indexed for
//! grouping. Built once from [`SourceTable`]s, then immutable (share it behind an `Arc`).
//!
//! No scheme is special-cased here: the national 1.0/1.1 schemes and every regional variant are
//! the same code path, differing only in their rows and optional columns. The format is defined in
//! the reference format README (in `../shared/reference/`) and its regional differences; the column lists
//! below are the whole of what this loader understands.

use crate::tables::source::{fingerprint, CheckedTable, ColumnSpec, Row, SourceTable, TableError};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::ops::Range;

/// Interned code (diagnosis or procedure). `CodeId(0)` is the unknown code: it belongs to no list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodeId(pub u32);

impl CodeId {
    pub const UNKNOWN: CodeId = CodeId(0);
}

/// The code index as grouping reads it: built once from the interned codes, open addressing over
/// 32-byte slots (a 16-byte key, the code's id and where each map sends it; two slots to a cache
/// line) with linear probing. A lookup of a table this size misses the cache; this layout makes
/// it one miss for the code and its mapping, where a general hash map and a separate map vector
/// take three. Codes longer than 15 bytes (none in the national code sets' common use) go through
/// an ordinary map.
#[derive(Debug)]
struct CodeLookup {
    /// A power of two long, at most two thirds full; an empty slot has id 0 (the unknown code,
    /// which is never indexed).
    slots: Vec<Slot>,
    /// 64 − log2(slots): the hash's top bits pick the first slot.
    shift: u32,
    long: FxHashMap<Box<str>, Found>,
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    key: [u64; 2],
    id: u32,
    /// `diagnosis_map` / `procedure_map` targets, [`NONE_U32`] when the code is not a from-code.
    diagnosis_target: u32,
    procedure_target: u32,
}

/// A code found in the index: its id and where each map sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub id: CodeId,
    pub diagnosis_target: Option<CodeId>,
    pub procedure_target: Option<CodeId>,
}

/// The key of a code of up to 15 bytes: its bytes, zero-padded, and its length in the last byte.
#[inline]
fn slot_key(code: &str) -> Option<[u64; 2]> {
    let bytes = code.as_bytes();
    if bytes.len() > 15 {
        return None;
    }
    let mut buffer = [0u8; 16];
    buffer[..bytes.len()].copy_from_slice(bytes);
    buffer[15] = bytes.len() as u8;
    let (low, high) = buffer.split_at(8);
    let word = |half: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(half);
        u64::from_le_bytes(w)
    };
    Some([word(low), word(high)])
}

impl CodeLookup {
    /// Indexes `code_text` (id order; id 0 is the unknown code and is skipped) with each code's
    /// map targets.
    fn new(code_text: &[Box<str>], diagnosis_map: &[Option<CodeId>], procedure_map: &[Option<CodeId>]) -> CodeLookup {
        let short = code_text.iter().skip(1).filter(|c| c.len() <= 15).count();
        let wanted = (short * 3 / 2).max(16).next_power_of_two();
        let shift = 64 - wanted.trailing_zeros();
        let mut slots = vec![Slot::default(); wanted];
        let mut long = FxHashMap::default();
        let mask = wanted - 1;
        let target = |map: &[Option<CodeId>], id: usize| map.get(id).copied().flatten();
        for (id, code) in code_text.iter().enumerate().skip(1) {
            let found =
                Found { id: CodeId(id as u32), diagnosis_target: target(diagnosis_map, id), procedure_target: target(procedure_map, id) };
            let Some(key) = slot_key(code) else {
                long.insert(code.clone(), found);
                continue;
            };
            let mut at = Self::first_slot(&key, shift);
            while slots[at].id != 0 {
                at = (at + 1) & mask;
            }
            let encode = |t: Option<CodeId>| t.map_or(NONE_U32, |t| t.0);
            slots[at] = Slot {
                key,
                id: found.id.0,
                diagnosis_target: encode(found.diagnosis_target),
                procedure_target: encode(found.procedure_target),
            };
        }
        CodeLookup { slots, shift, long }
    }

    #[inline]
    fn first_slot(key: &[u64; 2], shift: u32) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let h = key[0].wrapping_mul(K) ^ key[1];
        (h.wrapping_mul(K) >> shift) as usize
    }

    /// Asks the cache for the slot a lookup of `code` starts at (no effect on results).
    #[inline]
    fn prefetch(&self, code: &str) {
        if let Some(key) = slot_key(code) {
            prefetch_index::prefetch_index(&self.slots, Self::first_slot(&key, self.shift));
        }
    }

    #[inline]
    fn get(&self, code: &str) -> Option<Found> {
        let Some(key) = slot_key(code) else { return self.long.get(code).copied() };
        let mask = self.slots.len() - 1;
        let mut at = Self::first_slot(&key, self.shift);
        loop {
            let slot = &self.slots[at];
            if slot.id == 0 {
                return None;
            }
            if slot.key == key {
                let decode = |t: u32| (t != NONE_U32).then_some(CodeId(t));
                return Some(Found {
                    id: CodeId(slot.id),
                    diagnosis_target: decode(slot.diagnosis_target),
                    procedure_target: decode(slot.procedure_target),
                });
            }
            at = (at + 1) & mask;
        }
    }
}

/// Index of a code list (`code_lists.csv` or `proc_tags.csv` list id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListId(pub u32);

const NONE_U32: u32 = u32::MAX;

/// Per-code facts while the table set is being built; frozen into [`HotCode`] rows and one
/// shared arena of lists and rules when it is done.
#[derive(Debug, Clone)]
struct CodeFacts {
    mcc_table: u32,
    cc_table: u32,
    principal_exclusion_table: u32,
    trauma_region: u32,
    is_or_procedure: bool,
    mdc_pdx_mask: u64,
}

impl CodeFacts {
    fn empty() -> CodeFacts {
        CodeFacts {
            mcc_table: NONE_U32,
            cc_table: NONE_U32,
            principal_exclusion_table: NONE_U32,
            trauma_region: NONE_U32,
            is_or_procedure: false,
            mdc_pdx_mask: 0,
        }
    }
}

/// One code's facts as grouping reads them: one cache line, whose `start..` part of the arena
/// holds the code's lists, then the rules it anchors (principal diagnosis, then principal
/// procedure), then its (tag list, tag) pairs — so that a principal diagnosis costs two cache
/// lines where separately boxed lists cost five.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct HotCode {
    /// Bit i set: the code is in the `pdx_list` of MDC i (for the first 64 MDCs).
    mdc_pdx_mask: u64,
    mcc_table: u32,
    cc_table: u32,
    principal_exclusion_table: u32,
    trauma_region: u32,
    start: u32,
    lists: u32,
    pdx_rules: u32,
    pproc_rules: u32,
    /// Number of (list, tag) pairs (two arena entries each).
    tags: u32,
    is_or_procedure: bool,
}

/// Everything the grouper needs to know about one code, gathered from all tables at load time so
/// that grouping is array lookups and tiny binary searches. A view into the table set.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo<'t> {
    hot: &'t HotCode,
    arena: &'t [u32],
}

impl<'t> CodeInfo<'t> {
    #[inline]
    fn part(&self, offset: u32, len: u32) -> &'t [u32] {
        let start = (self.hot.start + offset) as usize;
        self.arena.get(start..start + len as usize).unwrap_or(&[])
    }

    /// Lists the code belongs to, sorted (as `ListId` numbers).
    #[inline]
    fn lists(&self) -> &'t [u32] {
        self.part(0, self.hot.lists)
    }

    /// Whether the code is in the `pdx_list` of the MDC at `mdc_index` (< 64).
    #[inline]
    pub fn in_mdc_pdx(&self, mdc_index: usize) -> bool {
        self.hot.mdc_pdx_mask & (1u64 << mdc_index) != 0
    }

    /// Rules (indices into [`DrgTableSet::rules`], sorted) whose `pdx_list` holds this code.
    #[inline]
    pub fn pdx_rules(&self) -> &'t [u32] {
        self.part(self.hot.lists, self.hot.pdx_rules)
    }

    /// Rules whose `pproc_list` holds this code, sorted.
    #[inline]
    pub fn pproc_rules(&self) -> &'t [u32] {
        self.part(self.hot.lists + self.hot.pdx_rules, self.hot.pproc_rules)
    }

    #[inline]
    pub fn in_list(&self, list: ListId) -> bool {
        let lists = self.lists();
        match lists.len() {
            0 => false,
            1 => lists[0] == list.0,
            _ => lists.binary_search(&list.0).is_ok(),
        }
    }

    #[inline]
    pub fn tag_in(&self, list: ListId) -> Option<u8> {
        let pairs = self.part(self.hot.lists + self.hot.pdx_rules + self.hot.pproc_rules, self.hot.tags * 2);
        pairs.chunks_exact(2).find(|pair| pair[0] == list.0).map(|pair| pair[1] as u8)
    }

    /// MCC exclusion-table id, when the code is an MCC.
    #[inline]
    pub fn mcc_table(&self) -> Option<u32> {
        Some(self.hot.mcc_table).filter(|&t| t != NONE_U32)
    }

    /// CC exclusion-table id, when the code is a CC.
    #[inline]
    pub fn cc_table(&self) -> Option<u32> {
        Some(self.hot.cc_table).filter(|&t| t != NONE_U32)
    }

    /// The exclusion table applied when this code is the principal diagnosis.
    #[inline]
    pub fn principal_exclusion_table(&self) -> Option<u32> {
        Some(self.hot.principal_exclusion_table).filter(|&t| t != NONE_U32)
    }

    #[inline]
    pub fn trauma_region(&self) -> Option<u32> {
        Some(self.hot.trauma_region).filter(|&t| t != NONE_U32)
    }

    #[inline]
    pub fn is_or_procedure(&self) -> bool {
        self.hot.is_or_procedure
    }
}

/// MDC entry conditions (all non-empty ones must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdcEntry {
    pub pdx_list: Option<ListId>,
    pub any_dx_list: Option<ListId>,
    pub pproc_or: bool,
    /// With `pproc_or`: procedures that also open the MDC as a principal procedure, besides the
    /// operating-room ones (`pproc_or_extra`).
    pub pproc_or_extra: Option<ListId>,
    pub sex: Option<i64>,
    pub age_years_eq: Option<i64>,
    pub multi_trauma: bool,
}

#[derive(Debug, Clone)]
pub struct Mdc {
    /// The letter, e.g. `B`.
    pub letter: String,
    /// The result code, e.g. `MDCB`.
    pub code: String,
    pub name: String,
    pub entry: MdcEntry,
    /// Rows of [`DrgTableSet::rules`] belonging to this MDC, in evaluation order.
    pub rules: Range<usize>,
    /// Rules of this MDC with neither `pdx_list` nor `pproc_list` (they must always be tried).
    pub unanchored_rules: Vec<u32>,
    /// Ambiguous-case (QY) check after this many rule rows, when active.
    pub qy_after: Option<usize>,
    /// What the QY check tests (`qy_test`).
    pub qy_test: QyTest,
    /// The QY result's DRG code (letter + `QY`).
    pub qy_drg: String,
}

/// The test of an MDC's ambiguous-case (QY) check (`mdc.csv` `qy_test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QyTest {
    /// Some procedure, in any position, is an operating-room procedure (empty or `any_or_proc`).
    #[default]
    AnyOrProcedure,
    /// The principal procedure is an operating-room procedure (`pproc_or`).
    PrincipalProcedureOr,
}

/// A bitmask alternative of a tagged-procedure expression: all tags of one alternative must be
/// present (bit n = tag n).
pub type TagAlternative = u32;

/// The rule columns of an `adrg.csv` or `drg.csv` row (all non-empty ones must hold). See the
/// reference README §3 and the format extensions' "rule columns".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleConditions {
    pub pdx_list: Option<ListId>,
    /// The principal diagnosis is *not* in this list.
    pub pdx_not_list: Option<ListId>,
    pub any_dx_list: Option<ListId>,
    pub secondary_dx_list: Option<ListId>,
    pub pproc_list: Option<ListId>,
    pub pproc_or: bool,
    /// No procedure at all, or a principal procedure that is not an operating-room procedure.
    pub no_pproc_or: bool,
    pub any_proc_list: Option<ListId>,
    pub any_proc_list2: Option<ListId>,
    pub any_proc_list3: Option<ListId>,
    /// Some procedure at position ≥ 2 is in this list.
    pub secondary_proc_list: Option<ListId>,
    /// Some procedure (any position) is an operating-room procedure.
    pub any_proc_or: bool,
    /// Tagged procedure list and its DNF expression.
    pub proc_tags: Option<(ListId, Vec<TagAlternative>)>,
    pub no_or_proc: bool,
    pub max_age_days: Option<i64>,
    pub weight_min: Option<i64>,
    pub weight_max_excl: Option<i64>,
    pub min_age_years: Option<i64>,
    pub max_age_years: Option<i64>,
    pub los_min: Option<i64>,
    pub los_max_excl: Option<i64>,
    pub icu_hours_min: Option<i64>,
    pub icu_hours_max_excl: Option<i64>,
    /// The case's department equals one of these (exact strings; empty = no department).
    pub department_in: Option<Box<[Box<str>]>>,
    /// The case's disposition equals one of these. Dispositions are read as whole numbers, so a
    /// listed value is kept as one (`None` for an empty value, which matches a case without a
    /// disposition); a value that is no plain number can match no case and is dropped at load.
    pub disposition_in: Option<Box<[Option<i64>]>>,
    /// Whether any column beyond the base ones is set: lets the grouper skip those checks at once.
    /// Computed by the loader, like `set`.
    pub extended: bool,
    /// Whether any column is set at all (a row without one always holds).
    pub set: bool,
}

impl RuleConditions {
    /// Whether no column is set: the row always holds.
    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.set
    }

    /// Fills in the summary flags `extended` and `set` from the columns.
    fn summarised(mut self) -> RuleConditions {
        self.extended = self.pdx_not_list.is_some()
            || self.no_pproc_or
            || self.any_proc_list3.is_some()
            || self.secondary_proc_list.is_some()
            || self.any_proc_or
            || self.min_age_years.is_some()
            || self.max_age_years.is_some()
            || self.los_min.is_some()
            || self.los_max_excl.is_some()
            || self.icu_hours_min.is_some()
            || self.icu_hours_max_excl.is_some()
            || self.department_in.is_some()
            || self.disposition_in.is_some();
        self.set = self.extended
            || self.pdx_list.is_some()
            || self.any_dx_list.is_some()
            || self.secondary_dx_list.is_some()
            || self.pproc_list.is_some()
            || self.pproc_or
            || self.any_proc_list.is_some()
            || self.any_proc_list2.is_some()
            || self.proc_tags.is_some()
            || self.no_or_proc
            || self.max_age_days.is_some()
            || self.weight_min.is_some()
            || self.weight_max_excl.is_some();
        self
    }
}

/// What a matched ADRG row gives when none of its DRG rows holds (`adrg.csv` `on_no_drg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNoDrg {
    /// The bare ADRG code (empty, the default).
    #[default]
    BareAdrg,
    /// The row counts as not matching; evaluation goes on with the next row (`next`).
    Next,
}

/// One row of `adrg.csv`: a rule that, when it matches, decides the ADRG.
#[derive(Debug, Clone)]
pub struct AdrgRule {
    pub rule: String,
    pub adrg: usize,
    pub mdc: usize,
    pub conditions: RuleConditions,
    pub on_no_drg: OnNoDrg,
    /// Line in adrg.csv, for diagnostics.
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct Adrg {
    pub code: String,
    pub name: String,
    pub mdc: usize,
    /// Rows of [`DrgTableSet::drgs`], in evaluation order.
    pub drgs: Range<usize>,
}

/// The severity condition of a DRG row. `repr(u8)`: the grouper tests it as a bit of a mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SeverityCondition {
    Always,
    /// A non-excluded major complication (MCC) among the secondary diagnoses.
    Mcc,
    /// A non-excluded MCC or CC among the secondary diagnoses.
    MccOrCc,
    /// A non-excluded CC among the secondary diagnoses (an MCC counts only if also a CC).
    Cc,
    /// Never holds (the row lists a DRG the scheme never gives).
    Never,
}

#[derive(Debug, Clone)]
pub struct Drg {
    pub code: String,
    pub name: String,
    pub adrg: usize,
    pub severity: SeverityCondition,
    /// The row's rule columns, ANDed with `severity`.
    pub conditions: RuleConditions,
    pub line: u64,
}

impl Drg {
    /// Whether the row holds for every case: `always` and no rule column.
    pub fn is_unconditional(&self) -> bool {
        self.severity == SeverityCondition::Always && self.conditions.is_empty()
    }
}

/// The result codes a scheme gives with one kind of status (`scheme.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCodes {
    pub mdc: String,
    pub adrg: String,
    pub drg: String,
}

impl ResultCodes {
    fn zeros() -> ResultCodes {
        ResultCodes { mdc: "0000".into(), adrg: "00".into(), drg: "0000".into() }
    }
}

/// Scheme-wide settings (`scheme.csv`; every key has a default when the file or row is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeSettings {
    /// `code_mapping` = `none`: codes are grouped as written, whatever mode the caller asks for.
    pub without_code_mapping: bool,
    /// `retry_secondary_procedures` = `1`: after a `FAIL`, group again with each later procedure
    /// alone, in order, until one does not fail.
    pub retry_secondary_procedures: bool,
    /// Codes returned with `FAIL`.
    pub fail: ResultCodes,
    /// Codes returned with `CHECK_FAILED`, `ZD_NOT_MAPPING` and `SS_NOT_MAPPING`.
    pub error: ResultCodes,
}

impl Default for SchemeSettings {
    fn default() -> SchemeSettings {
        SchemeSettings {
            without_code_mapping: false,
            retry_secondary_procedures: false,
            fail: ResultCodes::zeros(),
            error: ResultCodes::zeros(),
        }
    }
}

/// A list referenced by the rules.
#[derive(Debug, Clone)]
pub struct CodeList {
    pub id: String,
    /// Distinct codes in the list.
    pub codes: Vec<CodeId>,
}

/// A validated, indexed DRG table set. Immutable once built.
#[derive(Debug)]
pub struct DrgTableSet {
    /// A name for humans (the directory name by default).
    pub name: String,
    /// FNV-1a fingerprint of the source files, hex.
    pub fingerprint: String,
    code_index: CodeLookup,
    code_text: Vec<Box<str>>,
    hot: Vec<HotCode>,
    /// Every code's lists and rules, one after the other (see [`HotCode`]).
    arena: Vec<u32>,
    /// `diagnosis_map`: from-code → to-code (`None` = not a from-code).
    diagnosis_map: Vec<Option<CodeId>>,
    procedure_map: Vec<Option<CodeId>>,
    pub scheme: SchemeSettings,
    pub mdcs: Vec<Mdc>,
    /// Bit i set: MDC i (< 64) has no `pdx_list` entry condition, so any principal may enter it.
    mdcs_without_pdx_list: u64,
    pub rules: Vec<AdrgRule>,
    pub adrgs: Vec<Adrg>,
    pub drgs: Vec<Drg>,
    pub lists: Vec<CodeList>,
    /// Trauma region names, indexed by region id.
    pub trauma_regions: Vec<String>,
    diagnosis_names: FxHashMap<CodeId, Box<str>>,
    procedure_names: FxHashMap<CodeId, Box<str>>,
    adrg_by_code: FxHashMap<String, usize>,
    drg_by_code: FxHashMap<String, usize>,
}

/// The files of the format: (file name, required columns, optional columns).
pub const FILES: &[(&str, &[&str], &[&str])] = &[
    (
        "mdc.csv",
        &["order", "mdc"],
        &[
            "name",
            "kind",
            "pdx_list",
            "any_dx_list",
            "pproc_or",
            "sex",
            "age_years_eq",
            "multi_trauma",
            "adrg_count",
            "surgical_adrg_count",
            "qy_after",
            "qy_test",
            "pproc_or_extra",
        ],
    ),
    (
        "adrg.csv",
        &["mdc", "order", "adrg"],
        &[
            "name",
            "surgical",
            "kind",
            "rule",
            "on_no_drg",
            "pdx_list",
            "pdx_not_list",
            "any_dx_list",
            "secondary_dx_list",
            "pproc_list",
            "pproc_or",
            "no_pproc_or",
            "any_proc_list",
            "any_proc_list2",
            "any_proc_list3",
            "secondary_proc_list",
            "any_proc_or",
            "no_or_proc",
            "proc_tag_list",
            "proc_tag_expr",
            "max_age_days",
            "weight_min",
            "weight_max_excl",
            "min_age_years",
            "max_age_years",
            "los_min",
            "los_max_excl",
            "icu_hours_min",
            "icu_hours_max_excl",
            "department_in",
            "disposition_in",
        ],
    ),
    (
        "drg.csv",
        &["drg", "adrg", "order", "condition"],
        &[
            "name",
            "pdx_list",
            "pdx_not_list",
            "any_dx_list",
            "secondary_dx_list",
            "pproc_list",
            "pproc_or",
            "no_pproc_or",
            "any_proc_list",
            "any_proc_list2",
            "any_proc_list3",
            "secondary_proc_list",
            "any_proc_or",
            "no_or_proc",
            "proc_tag_list",
            "proc_tag_expr",
            "max_age_days",
            "weight_min",
            "weight_max_excl",
            "min_age_years",
            "max_age_years",
            "los_min",
            "los_max_excl",
            "icu_hours_min",
            "icu_hours_max_excl",
            "department_in",
            "disposition_in",
        ],
    ),
    ("code_lists.csv", &["list_id", "code"], &[]),
    ("proc_tags.csv", &["list_id", "code", "tag"], &[]),
    ("trauma_regions.csv", &["code", "region"], &[]),
    ("mcc.csv", &["code", "exclusion_table"], &[]),
    ("cc.csv", &["code", "exclusion_table"], &[]),
    ("cc_exclusions.csv", &["principal_code", "exclusion_table"], &[]),
    ("or_procedures.csv", &["code"], &["name"]),
    ("diagnoses.csv", &["code"], &["name"]),
    ("procedures.csv", &["code"], &["name"]),
    ("diagnosis_map.csv", &["from", "to"], &[]),
    ("procedure_map.csv", &["from", "to"], &[]),
    // Optional file: its columns are checked only when it is present (an absent file has none).
    ("scheme.csv", &[], &["key", "value"]),
];

/// Files that may be absent (read as empty).
pub const OPTIONAL_FILES: &[&str] = &["proc_tags.csv", "trauma_regions.csv", "diagnoses.csv", "procedures.csv", "scheme.csv"];

fn spec_of(file: &str) -> ColumnSpec<'static> {
    let (_, required, optional) = FILES.iter().find(|(name, _, _)| *name == file).copied().unwrap_or(("", &[], &[]));
    ColumnSpec { required, optional }
}

/// Builder state: interning and per-code facts.
struct Builder {
    /// Code text → id while building (grouping reads the frozen [`CodeLookup`]).
    code_index: FxHashMap<Box<str>, CodeId>,
    code_text: Vec<Box<str>>,
    info: Vec<CodeFacts>,
    list_members: Vec<Vec<ListId>>,
    tag_members: Vec<Vec<(ListId, u8)>>,
    list_index: FxHashMap<String, ListId>,
    lists: Vec<CodeList>,
}

impl Builder {
    fn new() -> Builder {
        let mut builder = Builder {
            code_index: FxHashMap::default(),
            code_text: Vec::new(),
            info: Vec::new(),
            list_members: Vec::new(),
            tag_members: Vec::new(),
            list_index: FxHashMap::default(),
            lists: Vec::new(),
        };
        // CodeId(0): the unknown code. Its text is never looked up (no real code is "\0").
        builder.code_text.push("\0".into());
        builder.info.push(CodeFacts::empty());
        builder.list_members.push(Vec::new());
        builder.tag_members.push(Vec::new());
        builder
    }

    fn intern(&mut self, code: &str) -> CodeId {
        if let Some(&id) = self.code_index.get(code) {
            return id;
        }
        let id = CodeId(self.code_text.len() as u32);
        self.code_index.insert(code.into(), id);
        self.code_text.push(code.into());
        self.info.push(CodeFacts::empty());
        self.list_members.push(Vec::new());
        self.tag_members.push(Vec::new());
        id
    }

    fn list(&mut self, id: &str) -> ListId {
        if let Some(&list) = self.list_index.get(id) {
            return list;
        }
        let list = ListId(self.lists.len() as u32);
        self.list_index.insert(id.to_string(), list);
        self.lists.push(CodeList { id: id.to_string(), codes: Vec::new() });
        list
    }

    fn info_mut(&mut self, code: CodeId) -> &mut CodeFacts {
        &mut self.info[code.0 as usize]
    }
}

fn checked<'a>(tables: &'a BTreeMap<String, SourceTable>, file: &str, empty: &'a SourceTable) -> Result<CheckedTable<'a>, TableError> {
    match tables.get(file) {
        Some(table) => table.check(&spec_of(file)),
        None if OPTIONAL_FILES.contains(&file) => empty.check(&spec_of(file)),
        None => Err(TableError::MissingFile { file: file.to_string() }),
    }
}

/// Reads a `code,exclusion_table`-style table into a per-code field, refusing conflicting rows.
fn load_code_to_table(
    builder: &mut Builder,
    table: &CheckedTable<'_>,
    code_column: &str,
    field: fn(&mut CodeFacts) -> &mut u32,
) -> Result<(), TableError> {
    for row in table.rows() {
        let code_text = row.required(code_column)?;
        let code = builder.intern(code_text);
        let value = row.int("exclusion_table")?.ok_or_else(|| row.bad("exclusion_table", "must not be empty"))?;
        let value = u32::try_from(value).map_err(|_| row.bad("exclusion_table", "must be between 0 and 4294967294"))?;
        if value == NONE_U32 {
            return Err(row.bad("exclusion_table", "must be between 0 and 4294967294"));
        }
        let slot = field(builder.info_mut(code));
        if *slot != NONE_U32 && *slot != value {
            return Err(row.bad_row(format!("code {code_text:?} is listed twice with different exclusion tables")));
        }
        *slot = value;
    }
    Ok(())
}

fn load_map(builder: &mut Builder, table: &CheckedTable<'_>) -> Result<Vec<(CodeId, CodeId, u64)>, TableError> {
    let mut pairs = Vec::with_capacity(table.len());
    for row in table.rows() {
        // `from` may not be empty; `to` is kept exactly (one reference target has a leading space).
        let from = builder.intern(row.required("from")?);
        let to = builder.intern(row.required("to")?);
        pairs.push((from, to, row.line));
    }
    Ok(pairs)
}

fn map_vector(count: usize, pairs: &[(CodeId, CodeId, u64)], file: &str) -> Result<Vec<Option<CodeId>>, TableError> {
    let mut map = vec![None; count];
    for &(from, to, line) in pairs {
        let slot = &mut map[from.0 as usize];
        if slot.is_some_and(|existing| existing != to) {
            return Err(TableError::BadRow { file: file.to_string(), line, message: "from-code mapped twice to different codes".into() });
        }
        *slot = Some(to);
    }
    Ok(map)
}

fn parse_tag_expr(row: &Row<'_>) -> Result<Vec<TagAlternative>, TableError> {
    let text = row.get("proc_tag_expr");
    let mut alternatives = Vec::new();
    for alternative in text.split('|') {
        let mut mask: TagAlternative = 0;
        for tag in alternative.split('+') {
            let tag: u32 = tag.parse().map_err(|_| row.bad("proc_tag_expr", "expected tags 1..31 joined by + and |"))?;
            if !(1..=31).contains(&tag) {
                return Err(row.bad("proc_tag_expr", "tags must be between 1 and 31"));
            }
            mask |= 1 << tag;
        }
        alternatives.push(mask);
    }
    Ok(alternatives)
}

/// Reads the rule columns of an `adrg.csv` or `drg.csv` row (the same columns in both files).
fn rule_conditions(builder: &mut Builder, row: &Row<'_>) -> Result<RuleConditions, TableError> {
    let mut list = |column: &str| row.non_empty(column).map(|id| builder.list(id));
    let (pdx_list, pdx_not_list, any_dx_list, secondary_dx_list) =
        (list("pdx_list"), list("pdx_not_list"), list("any_dx_list"), list("secondary_dx_list"));
    let (pproc_list, any_proc_list, any_proc_list2, any_proc_list3, secondary_proc_list) =
        (list("pproc_list"), list("any_proc_list"), list("any_proc_list2"), list("any_proc_list3"), list("secondary_proc_list"));
    let proc_tags = match (row.non_empty("proc_tag_list"), row.non_empty("proc_tag_expr")) {
        (None, None) => None,
        (Some(list), Some(_)) => Some((builder.list(list), parse_tag_expr(row)?)),
        (Some(_), None) => return Err(row.bad("proc_tag_expr", "proc_tag_list needs proc_tag_expr")),
        (None, Some(_)) => return Err(row.bad("proc_tag_list", "proc_tag_expr needs proc_tag_list")),
    };
    let department_in = row.non_empty("department_in").map(|values| values.split('|').map(Box::from).collect());
    let disposition_in = row.non_empty("disposition_in").map(|values| {
        values
            .split('|')
            .filter_map(|value| match value {
                "" => Some(None),
                // Only a plain number can equal a disposition as read (no sign, no leading zero).
                _ if value.bytes().all(|b| b.is_ascii_digit()) && (value == "0" || !value.starts_with('0')) => value.parse().ok().map(Some),
                _ => None,
            })
            .collect()
    });
    let conditions = RuleConditions {
        pdx_list,
        pdx_not_list,
        any_dx_list,
        secondary_dx_list,
        pproc_list,
        pproc_or: row.flag("pproc_or")?,
        no_pproc_or: row.flag("no_pproc_or")?,
        any_proc_list,
        any_proc_list2,
        any_proc_list3,
        secondary_proc_list,
        any_proc_or: row.flag("any_proc_or")?,
        proc_tags,
        no_or_proc: row.flag("no_or_proc")?,
        max_age_days: row.int("max_age_days")?,
        weight_min: row.int("weight_min")?,
        weight_max_excl: row.int("weight_max_excl")?,
        min_age_years: row.int("min_age_years")?,
        max_age_years: row.int("max_age_years")?,
        los_min: row.int("los_min")?,
        los_max_excl: row.int("los_max_excl")?,
        icu_hours_min: row.int("icu_hours_min")?,
        icu_hours_max_excl: row.int("icu_hours_max_excl")?,
        department_in,
        disposition_in,
        extended: false,
        set: false,
    };
    Ok(conditions.summarised())
}

/// Reads `scheme.csv` (absent: every default). Unknown keys and keys given twice are errors.
fn scheme_settings(table: &CheckedTable<'_>) -> Result<SchemeSettings, TableError> {
    let mut settings = SchemeSettings::default();
    let mut seen: Vec<&str> = Vec::new();
    for row in table.rows() {
        let key = row.required("key")?;
        if seen.contains(&key) {
            return Err(row.bad("key", "is given twice"));
        }
        seen.push(key);
        let value = row.get("value");
        let flag = || match value {
            "" | "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(row.bad("value", "must be empty, 0 or 1")),
        };
        match key {
            "code_mapping" => {
                settings.without_code_mapping = match value {
                    "map" => false,
                    "none" => true,
                    _ => return Err(row.bad("value", "code_mapping must be map or none")),
                }
            }
            "retry_secondary_procedures" => settings.retry_secondary_procedures = flag()?,
            "fail_mdc" => settings.fail.mdc = value.to_string(),
            "fail_adrg" => settings.fail.adrg = value.to_string(),
            "fail_drg" => settings.fail.drg = value.to_string(),
            "error_mdc" => settings.error.mdc = value.to_string(),
            "error_adrg" => settings.error.adrg = value.to_string(),
            "error_drg" => settings.error.drg = value.to_string(),
            _ => return Err(row.bad("key", "unknown key")),
        }
    }
    Ok(settings)
}

impl DrgTableSet {
    /// Builds the indexed table set from in-memory source tables (keyed by file name).
    pub fn build(name: String, sources: &BTreeMap<String, SourceTable>) -> Result<DrgTableSet, TableError> {
        let empty = SourceTable::default();
        let mut builder = Builder::new();
        let scheme = scheme_settings(&checked(sources, "scheme.csv", &empty)?)?;

        // Code lists.
        let code_lists = checked(sources, "code_lists.csv", &empty)?;
        for row in code_lists.rows() {
            let list = builder.list(row.required("list_id")?);
            let code = builder.intern(row.required("code")?);
            builder.list_members[code.0 as usize].push(list);
            builder.lists[list.0 as usize].codes.push(code);
        }
        // Tagged procedure lists: the first tag of a code in a list wins.
        let proc_tags = checked(sources, "proc_tags.csv", &empty)?;
        for row in proc_tags.rows() {
            let list = builder.list(row.required("list_id")?);
            let code = builder.intern(row.required("code")?);
            let tag = row.int("tag")?.ok_or_else(|| row.bad("tag", "must not be empty"))?;
            let tag = u8::try_from(tag).ok().filter(|t| (1..=31).contains(t)).ok_or_else(|| row.bad("tag", "must be between 1 and 31"))?;
            let members = &mut builder.tag_members[code.0 as usize];
            if !members.iter().any(|(l, _)| *l == list) {
                members.push((list, tag));
                builder.lists[list.0 as usize].codes.push(code);
            }
        }
        // Trauma regions.
        let mut trauma_regions: Vec<String> = Vec::new();
        let trauma = checked(sources, "trauma_regions.csv", &empty)?;
        for row in trauma.rows() {
            let code = builder.intern(row.required("code")?);
            let region_name = row.required("region")?;
            let region = match trauma_regions.iter().position(|r| r == region_name) {
                Some(i) => i as u32,
                None => {
                    trauma_regions.push(region_name.to_string());
                    (trauma_regions.len() - 1) as u32
                }
            };
            let slot = &mut builder.info_mut(code).trauma_region;
            if *slot != NONE_U32 && *slot != region {
                return Err(row.bad_row("code belongs to two trauma regions".into()));
            }
            *slot = region;
        }
        load_code_to_table(&mut builder, &checked(sources, "mcc.csv", &empty)?, "code", |i| &mut i.mcc_table)?;
        load_code_to_table(&mut builder, &checked(sources, "cc.csv", &empty)?, "code", |i| &mut i.cc_table)?;
        load_code_to_table(&mut builder, &checked(sources, "cc_exclusions.csv", &empty)?, "principal_code", |i| {
            &mut i.principal_exclusion_table
        })?;
        for row in checked(sources, "or_procedures.csv", &empty)?.rows() {
            let code = builder.intern(row.required("code")?);
            builder.info_mut(code).is_or_procedure = true;
        }
        let mut diagnosis_names = FxHashMap::default();
        for row in checked(sources, "diagnoses.csv", &empty)?.rows() {
            let code = builder.intern(row.required("code")?);
            diagnosis_names.insert(code, row.get("name").into());
        }
        let mut procedure_names = FxHashMap::default();
        for row in checked(sources, "procedures.csv", &empty)?.rows() {
            let code = builder.intern(row.required("code")?);
            procedure_names.insert(code, row.get("name").into());
        }
        let diagnosis_pairs = load_map(&mut builder, &checked(sources, "diagnosis_map.csv", &empty)?)?;
        let procedure_pairs = load_map(&mut builder, &checked(sources, "procedure_map.csv", &empty)?)?;

        // MDCs.
        let mdc_table = checked(sources, "mdc.csv", &empty)?;
        let mut mdc_rows: Vec<(i64, Mdc)> = Vec::new();
        for row in mdc_table.rows() {
            let order = row.int("order")?.ok_or_else(|| row.bad("order", "must not be empty"))?;
            let letter = row.required("mdc")?.to_string();
            if mdc_rows.iter().any(|(o, m)| *o == order || m.letter == letter) {
                return Err(row.bad_row(format!("MDC {letter} or order {order} appears twice")));
            }
            let list_column = |builder: &mut Builder, column: &str| row.non_empty(column).map(|id| builder.list(id));
            let entry = MdcEntry {
                pdx_list: list_column(&mut builder, "pdx_list"),
                any_dx_list: list_column(&mut builder, "any_dx_list"),
                pproc_or: row.flag("pproc_or")?,
                pproc_or_extra: list_column(&mut builder, "pproc_or_extra"),
                sex: row.int("sex")?,
                age_years_eq: row.int("age_years_eq")?,
                multi_trauma: row.flag("multi_trauma")?,
            };
            let qy_after = match row.int("qy_after")? {
                None => None,
                Some(k) if k >= 0 => Some(k as usize),
                Some(_) => return Err(row.bad("qy_after", "must not be negative")),
            };
            let qy_test = match row.get("qy_test") {
                "" | "any_or_proc" => QyTest::AnyOrProcedure,
                "pproc_or" => QyTest::PrincipalProcedureOr,
                _ => return Err(row.bad("qy_test", "must be empty, any_or_proc or pproc_or")),
            };
            if entry.pproc_or_extra.is_some() && !entry.pproc_or {
                return Err(row.bad("pproc_or_extra", "needs pproc_or = 1"));
            }
            mdc_rows.push((
                order,
                Mdc {
                    code: format!("MDC{letter}"),
                    qy_drg: format!("{letter}QY"),
                    letter,
                    name: row.get("name").to_string(),
                    entry,
                    rules: 0..0,
                    unanchored_rules: Vec::new(),
                    qy_after,
                    qy_test,
                },
            ));
        }
        mdc_rows.sort_by_key(|(order, _)| *order);
        let mut mdcs: Vec<Mdc> = mdc_rows.into_iter().map(|(_, m)| m).collect();
        let mdc_index: FxHashMap<String, usize> = mdcs.iter().enumerate().map(|(i, m)| (m.letter.clone(), i)).collect();

        // ADRG rules, grouped by MDC and sorted by order.
        let adrg_table = checked(sources, "adrg.csv", &empty)?;
        let mut adrgs: Vec<Adrg> = Vec::new();
        let mut adrg_by_code: FxHashMap<String, usize> = FxHashMap::default();
        let mut rule_rows: Vec<(usize, i64, AdrgRule)> = Vec::new();
        for row in adrg_table.rows() {
            let mdc = *mdc_index.get(row.required("mdc")?).ok_or_else(|| row.bad("mdc", "no such MDC in mdc.csv"))?;
            let order = row.int("order")?.ok_or_else(|| row.bad("order", "must not be empty"))?;
            let code = row.required("adrg")?;
            let adrg = match adrg_by_code.get(code) {
                Some(&i) if adrgs[i].mdc != mdc => return Err(row.bad("mdc", "ADRG already belongs to another MDC")),
                Some(&i) => i,
                None => {
                    adrgs.push(Adrg { code: code.to_string(), name: row.get("name").to_string(), mdc, drgs: 0..0 });
                    adrg_by_code.insert(code.to_string(), adrgs.len() - 1);
                    adrgs.len() - 1
                }
            };
            if rule_rows.iter().any(|(m, o, _)| *m == mdc && *o == order) {
                return Err(row.bad("order", "two rules of one MDC have the same order"));
            }
            let conditions = rule_conditions(&mut builder, &row)?;
            let on_no_drg = match row.get("on_no_drg") {
                "" => OnNoDrg::BareAdrg,
                "next" => OnNoDrg::Next,
                _ => return Err(row.bad("on_no_drg", "must be empty or next")),
            };
            let rule = row.non_empty("rule").unwrap_or(code).to_string();
            rule_rows.push((mdc, order, AdrgRule { rule, adrg, mdc, conditions, on_no_drg, line: row.line }));
        }
        rule_rows.sort_by_key(|(mdc, order, _)| (*mdc, *order));
        let rules: Vec<AdrgRule> = rule_rows.into_iter().map(|(_, _, r)| r).collect();
        for (i, mdc) in mdcs.iter_mut().enumerate() {
            let start = rules.partition_point(|r| r.mdc < i);
            let end = rules.partition_point(|r| r.mdc <= i);
            mdc.rules = start..end;
        }

        // Candidate-rule indexes: which rules a principal diagnosis or procedure can possibly match.
        let mut pdx_rules: Vec<Vec<u32>> = vec![Vec::new(); builder.code_text.len()];
        let mut pproc_rules: Vec<Vec<u32>> = vec![Vec::new(); builder.code_text.len()];
        for (rule_index, rule) in rules.iter().enumerate() {
            let conditions = &rule.conditions;
            if let Some(list) = conditions.pdx_list {
                for &code in &builder.lists[list.0 as usize].codes {
                    pdx_rules[code.0 as usize].push(rule_index as u32);
                }
            }
            if let Some(list) = conditions.pproc_list {
                for &code in &builder.lists[list.0 as usize].codes {
                    pproc_rules[code.0 as usize].push(rule_index as u32);
                }
            }
            if conditions.pdx_list.is_none() && conditions.pproc_list.is_none() {
                mdcs[rule.mdc].unanchored_rules.push(rule_index as u32);
            }
        }
        for (mdc_index, mdc) in mdcs.iter().enumerate().take(64) {
            if let Some(list) = mdc.entry.pdx_list {
                for &code in &builder.lists[list.0 as usize].codes {
                    builder.info[code.0 as usize].mdc_pdx_mask |= 1u64 << mdc_index;
                }
            }
        }

        // DRGs, grouped by ADRG and sorted by order.
        let drg_table = checked(sources, "drg.csv", &empty)?;
        let mut drg_rows: Vec<(usize, i64, Drg)> = Vec::new();
        let mut seen_drgs: FxHashMap<String, u64> = FxHashMap::default();
        for row in drg_table.rows() {
            let code = row.required("drg")?.to_string();
            let adrg = *adrg_by_code.get(row.required("adrg")?).ok_or_else(|| row.bad("adrg", "no such ADRG in adrg.csv"))?;
            let order = row.int("order")?.ok_or_else(|| row.bad("order", "must not be empty"))?;
            let severity = match row.get("condition") {
                "always" => SeverityCondition::Always,
                "mcc" => SeverityCondition::Mcc,
                "mcc_or_cc" => SeverityCondition::MccOrCc,
                "cc" => SeverityCondition::Cc,
                "never" => SeverityCondition::Never,
                _ => return Err(row.bad("condition", "must be always, mcc, mcc_or_cc, cc or never")),
            };
            if let Some(first) = seen_drgs.insert(code.clone(), row.line) {
                return Err(row.bad("drg", &format!("DRG already defined on line {first}")));
            }
            if drg_rows.iter().any(|(a, o, _)| *a == adrg && *o == order) {
                return Err(row.bad("order", "two DRGs of one ADRG have the same order"));
            }
            let drg = Drg {
                code,
                name: row.get("name").to_string(),
                adrg,
                severity,
                conditions: rule_conditions(&mut builder, &row)?,
                line: row.line,
            };
            drg_rows.push((adrg, order, drg));
        }
        drg_rows.sort_by_key(|(adrg, order, _)| (*adrg, *order));
        let drgs: Vec<Drg> = drg_rows.into_iter().map(|(_, _, d)| d).collect();
        for (i, adrg) in adrgs.iter_mut().enumerate() {
            let start = drgs.partition_point(|d| d.adrg < i);
            let end = drgs.partition_point(|d| d.adrg <= i);
            adrg.drgs = start..end;
        }
        let drg_by_code = drgs.iter().enumerate().map(|(i, d)| (d.code.clone(), i)).collect();

        // Freeze the per-code facts.
        let count = builder.code_text.len();
        let diagnosis_map = map_vector(count, &diagnosis_pairs, "diagnosis_map.csv")?;
        let procedure_map = map_vector(count, &procedure_pairs, "procedure_map.csv")?;
        let mut hot = Vec::with_capacity(count);
        let mut arena: Vec<u32> = Vec::new();
        for (id, facts) in builder.info.iter().enumerate() {
            let sorted = |mut values: Vec<u32>| {
                values.sort_unstable();
                values.dedup();
                values
            };
            let lists = sorted(std::mem::take(&mut builder.list_members[id]).into_iter().map(|l| l.0).collect());
            let pdx = sorted(std::mem::take(&mut pdx_rules[id]));
            let pproc = sorted(std::mem::take(&mut pproc_rules[id]));
            let mut tags = std::mem::take(&mut builder.tag_members[id]);
            tags.sort_unstable();
            // Checked after the loop: every length is at most the arena's final length.
            let len = |n: usize| n as u32;
            hot.push(HotCode {
                mdc_pdx_mask: facts.mdc_pdx_mask,
                mcc_table: facts.mcc_table,
                cc_table: facts.cc_table,
                principal_exclusion_table: facts.principal_exclusion_table,
                trauma_region: facts.trauma_region,
                start: len(arena.len()),
                lists: len(lists.len()),
                pdx_rules: len(pdx.len()),
                pproc_rules: len(pproc.len()),
                tags: len(tags.len()),
                is_or_procedure: facts.is_or_procedure,
            });
            arena.extend(lists.into_iter().chain(pdx).chain(pproc));
            arena.extend(tags.into_iter().flat_map(|(list, tag)| [list.0, u32::from(tag)]));
        }
        if u32::try_from(arena.len()).is_err() {
            return Err(TableError::BadRow { file: "code_lists.csv".into(), line: 0, message: "more list memberships than 2^32".into() });
        }
        let mut lists = builder.lists;
        for list in &mut lists {
            list.codes.sort_unstable();
            list.codes.dedup();
        }
        let mdcs_without_pdx_list =
            mdcs.iter().enumerate().take(64).filter(|(_, m)| m.entry.pdx_list.is_none()).fold(0u64, |mask, (i, _)| mask | (1u64 << i));
        Ok(DrgTableSet {
            name,
            mdcs_without_pdx_list,
            scheme,
            fingerprint: format!("{:016x}", fingerprint(sources)),
            code_index: CodeLookup::new(&builder.code_text, &diagnosis_map, &procedure_map),
            code_text: builder.code_text,
            hot,
            arena,
            diagnosis_map,
            procedure_map,
            mdcs,
            rules,
            adrgs,
            drgs,
            lists,
            trauma_regions,
            diagnosis_names,
            procedure_names,
            adrg_by_code,
            drg_by_code,
        })
    }

    /// MDCs (as a bitmask over the first 64) that a case with this principal diagnosis might
    /// enter; `u64::MAX` (try all) when the scheme has more than 64 MDCs.
    #[inline]
    pub fn possible_mdcs(&self, principal: CodeId) -> u64 {
        if self.mdcs.len() > 64 {
            return u64::MAX;
        }
        self.hot[principal.0 as usize].mdc_pdx_mask | self.mdcs_without_pdx_list
    }

    /// The interned id of a code exactly as written, or [`CodeId::UNKNOWN`].
    #[inline]
    pub fn code_id(&self, code: &str) -> CodeId {
        self.code_index.get(code).map_or(CodeId::UNKNOWN, |found| found.id)
    }

    /// Starts loading the index slots of `codes` into the cache, for a lookup soon after: a
    /// batch reader calls it for the next case while it groups the current one.
    #[inline]
    pub fn prefetch_codes<'c>(&self, codes: impl IntoIterator<Item = &'c String>) {
        for code in codes {
            self.code_index.prefetch(code);
        }
    }

    /// Starts loading the facts of a case's mapped codes into the cache, once their index slots
    /// are there (see [`prefetch_codes`](Self::prefetch_codes)): the second step ahead.
    #[inline]
    pub fn prefetch_facts<'c>(&self, diagnoses: &'c [String], procedures: &'c [String]) {
        let fetch = |code: &String, target: fn(&Found) -> Option<CodeId>| {
            if let Some(to) = self.code_index.get(code).as_ref().and_then(target) {
                prefetch_index::prefetch_index(&self.hot, to.0 as usize);
            }
        };
        diagnoses.iter().for_each(|d| fetch(d, |f| f.diagnosis_target));
        procedures.iter().for_each(|p| fetch(p, |f| f.procedure_target));
    }

    /// The third step ahead, once the facts are there: starts loading the principal diagnosis's
    /// lists and rules from the arena.
    #[inline]
    pub fn prefetch_rules(&self, principal: &str) {
        if let Some(to) = self.code_index.get(principal).and_then(|f| f.diagnosis_target) {
            if let Some(hot) = self.hot.get(to.0 as usize) {
                prefetch_index::prefetch_index(&self.arena, hot.start as usize);
            }
        }
    }

    /// A code exactly as written, with where `diagnosis_map.csv` and `procedure_map.csv` send it
    /// (one lookup for all three); `None` when the table set does not know the code.
    #[inline]
    pub fn find_code(&self, code: &str) -> Option<Found> {
        self.code_index.get(code)
    }

    /// The text of an interned code (`""` for the unknown code).
    pub fn code_text(&self, code: CodeId) -> &str {
        if code == CodeId::UNKNOWN {
            return "";
        }
        self.code_text.get(code.0 as usize).map_or("", |t| t)
    }

    #[inline]
    pub fn info(&self, code: CodeId) -> CodeInfo<'_> {
        CodeInfo { hot: &self.hot[code.0 as usize], arena: &self.arena }
    }

    /// Where `diagnosis_map.csv` sends `code`, or `None` when it is not a from-code.
    #[inline]
    pub fn map_diagnosis(&self, code: CodeId) -> Option<CodeId> {
        self.diagnosis_map[code.0 as usize]
    }

    #[inline]
    pub fn map_procedure(&self, code: CodeId) -> Option<CodeId> {
        self.procedure_map[code.0 as usize]
    }

    pub fn diagnosis_name(&self, code: CodeId) -> Option<&str> {
        self.diagnosis_names.get(&code).map(|n| &**n)
    }

    pub fn procedure_name(&self, code: CodeId) -> Option<&str> {
        self.procedure_names.get(&code).map(|n| &**n)
    }

    pub fn adrg_index(&self, code: &str) -> Option<usize> {
        self.adrg_by_code.get(code).copied()
    }

    pub fn drg_index(&self, code: &str) -> Option<usize> {
        self.drg_by_code.get(code).copied()
    }

    pub fn list_id(&self, list: ListId) -> &str {
        &self.lists[list.0 as usize].id
    }

    /// Number of interned codes, the unknown code included.
    pub fn code_count(&self) -> usize {
        self.code_text.len()
    }
}

//! Scoring: one case → its group under the region's scheme → its points. The step settlement,
//! audit and the pre-check share, so that all three price a case the same way.
//!
//! A [`Scorer`] holds immutable snapshots (the DRG table set and its relative weights, or the DIP
//! catalog) and is cheap to share behind an `Arc`. Pure: loading is [`DrgWeights::load`] and the
//! snapshots' own loaders.

use crate::case::Case;
use crate::dip::{self, DipCatalog, GroupKind};
use crate::drg::trace::Severity;
use crate::drg::{self, DrgTableSet, GroupStatus, MappingMode, NoTrace};
use crate::policy::{CaseFacts, Coefficient, DipGrouping, Policy};
use crate::pricing::{adjusted_mean, price_case_with, CasePoints, GroupTerms, ResolvedAdjustment, ScoredGroup};
use crate::tables::source::{ColumnSpec, SourceTable, TableError};
use crate::text::ShortText;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// One DRG's relative weight and mean costs.
#[derive(Debug, Clone, PartialEq)]
pub struct DrgWeight {
    pub rw: Decimal,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub level_mean_cost: BTreeMap<String, Decimal>,
}

/// Relative weights by DRG code (`drg, rw, mean_cost[, mean_cost_level_<L>…]`).
#[derive(Debug, Clone, Default)]
pub struct DrgWeights {
    by_drg: FxHashMap<String, DrgWeight>,
}

impl DrgWeights {
    pub fn parse(table: &SourceTable) -> Result<DrgWeights, TableError> {
        let extra: Vec<&str> = table.columns.iter().map(String::as_str).filter(|c| c.starts_with("mean_cost_level_")).collect();
        let mut optional = vec!["name", "mean_los", "cases"];
        optional.extend(extra.iter().copied());
        let checked = table.check(&ColumnSpec { required: &["drg", "rw", "mean_cost"], optional: &optional })?;
        let positive = |row: &crate::tables::source::Row<'_>, column: &str| -> Result<Option<Decimal>, TableError> {
            match row.non_empty(column) {
                None => Ok(None),
                Some(text) => match Decimal::from_str(text) {
                    Ok(v) if v > Decimal::ZERO => Ok(Some(v)),
                    _ => Err(row.bad(column, "must be a positive decimal")),
                },
            }
        };
        let mut by_drg = FxHashMap::default();
        for row in checked.rows() {
            let drg = row.required("drg")?.to_string();
            let rw = positive(&row, "rw")?.ok_or_else(|| row.bad("rw", "must not be empty"))?;
            let mean_cost = positive(&row, "mean_cost")?.ok_or_else(|| row.bad("mean_cost", "must not be empty"))?;
            let mut level_mean_cost = BTreeMap::new();
            for column in &extra {
                if let Some(value) = positive(&row, column)? {
                    level_mean_cost.insert(column.trim_start_matches("mean_cost_level_").to_string(), value);
                }
            }
            let mean_los = positive(&row, "mean_los")?;
            if by_drg.insert(drg, DrgWeight { rw, mean_cost, mean_los, level_mean_cost }).is_some() {
                return Err(row.bad("drg", "listed twice"));
            }
        }
        Ok(DrgWeights { by_drg })
    }

    pub fn get(&self, drg: &str) -> Option<&DrgWeight> {
        self.by_drg.get(drg)
    }

    pub fn len(&self) -> usize {
        self.by_drg.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_drg.is_empty()
    }
}

/// A table set's DRGs and bare ADRGs with their weights, by table index, so that scoring a case
/// looks its weight up without hashing a code.
#[derive(Debug, Default)]
pub struct WeightIndex {
    drg: Vec<Option<DrgWeight>>,
    adrg: Vec<Option<DrgWeight>>,
    /// Per ADRG: its unconditional (lowest-severity) DRG's code and mean cost, when weighted.
    baseline: Vec<Option<(usize, Decimal)>>,
}

impl WeightIndex {
    pub fn new(tables: &DrgTableSet, weights: &DrgWeights) -> WeightIndex {
        WeightIndex {
            drg: tables.drgs.iter().map(|d| weights.get(&d.code).cloned()).collect(),
            adrg: tables.adrgs.iter().map(|a| weights.get(&a.code).cloned()).collect(),
            baseline: tables
                .adrgs
                .iter()
                .map(|a| {
                    let lowest = a.drgs.clone().rev().find(|&d| tables.drgs[d].severity == drg::tables::SeverityCondition::Always)?;
                    weights.get(&tables.drgs[lowest].code).map(|w| (lowest, w.mean_cost))
                })
                .collect(),
        }
    }
}

/// The case's hospital's [`Policy::hospital_terms`], when it names one the policy lists.
fn hospital_terms<'p>(policy: &'p Policy, case: &Case) -> Option<(&'p str, Option<Coefficient>)> {
    case.hospital_id.as_deref().and_then(|h| policy.hospital_terms(h))
}

/// A DIP catalog's regional terms resolved against a policy: the grouping rules and each
/// group's supplement rows with their condition indices.
#[derive(Debug, Default)]
pub struct DipTerms {
    pub grouping: DipGrouping,
    /// Whether the rule-driven grouper runs (a `[dip_grouping]` table or catalog extensions);
    /// otherwise the original grouper does, at no extra cost.
    pub use_rules: bool,
    /// Per group (catalog index), its `adjustments.csv` rows.
    pub adjustments: Vec<Vec<ResolvedAdjustment>>,
}

impl DipTerms {
    /// Resolves `catalog`'s condition names against `policy`; an unknown name is an error naming
    /// the `adjustments.csv` line.
    pub fn resolve(policy: &Policy, catalog: &DipCatalog) -> Result<DipTerms, TableError> {
        let mut adjustments = Vec::with_capacity(catalog.groups.len());
        for group in &catalog.groups {
            let mut rows = Vec::with_capacity(group.adjustments.len());
            for row in &group.adjustments {
                let condition = policy.conditions.iter().position(|c| c.name == row.condition).ok_or_else(|| TableError::BadValue {
                    file: "adjustments.csv".into(),
                    line: row.line,
                    column: "condition".into(),
                    value: row.condition.clone(),
                    message: "is not a [[conditions]] name of the policy".into(),
                })?;
                rows.push(ResolvedAdjustment { condition, coefficient: row.coefficient, mean_cost: row.mean_cost });
            }
            adjustments.push(rows);
        }
        Ok(DipTerms {
            grouping: policy.dip_grouping().into_owned(),
            use_rules: policy.dip_grouping.is_some() || !catalog.plain,
            adjustments,
        })
    }

    fn group_terms(&self, catalog: &DipCatalog, group: usize, facts: CaseFacts) -> GroupTerms<'_> {
        let g = &catalog.groups[group];
        GroupTerms {
            pricing: g.pricing,
            grassroots_coefficient: g.grassroots_coefficient,
            adjustments: self.adjustments.get(group).map_or(&[], Vec::as_slice),
            facts,
        }
    }
}

/// The scheme-specific half of scoring.
#[derive(Debug, Clone)]
pub enum Scorer {
    Drg { tables: Arc<DrgTableSet>, weights: Arc<WeightIndex> },
    Dip { catalog: Arc<DipCatalog>, terms: Arc<DipTerms> },
}

/// The complication the CC/MCC tests give (MCC first).
fn complication_of(facts: CaseFacts) -> Option<Severity> {
    if facts.mcc {
        Some(Severity::Mcc)
    } else if facts.cc {
        Some(Severity::Cc)
    } else {
        None
    }
}

/// A case grouped and priced.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Grouping status as the scheme names it (`SUCCESS`, `QY`…, or `CORE`, `COMPREHENSIVE`…).
    pub status: &'static str,
    /// DRG code or DIP group code; empty when not grouped.
    pub group: ShortText,
    /// Diagnosis category key for audit: the ADRG (DRG) or the principal subcategory (DIP).
    pub family: ShortText,
    pub complication: Option<Severity>,
    /// The group's mean cost (at the hospital's level) and mean stay, when known.
    pub group_mean_cost: Option<Decimal>,
    pub group_mean_los: Option<Decimal>,
    /// Mean cost of the same family's lowest-severity group (the group the case would fall in
    /// without its complication, or the conservative group of its DIP subcategory), when the case
    /// is in a higher one.
    pub baseline_mean_cost: Option<Decimal>,
    pub points: CasePoints,
}

impl Scorer {
    /// Fingerprint of the tables in use, for run records.
    pub fn fingerprint(&self) -> &str {
        match self {
            Scorer::Drg { tables, .. } => &tables.fingerprint,
            Scorer::Dip { catalog, .. } => &catalog.fingerprint,
        }
    }

    /// The grouping decision trace of a case, as sentences.
    pub fn trace(&self, policy: &Policy, case: &Case) -> Vec<String> {
        match self {
            Scorer::Drg { tables, .. } => {
                let mut trace = drg::Trace::default();
                drg::group(tables, case, MappingMode::Map, &mut trace);
                drg::trace::render(&trace.steps, tables, case)
            }
            Scorer::Dip { catalog, terms } => {
                // The rule-driven grouper (its defaults give the original's groups) names the
                // rank key and the class that chose the group.
                let level = case.hospital_id.as_deref().and_then(|h| policy.hospital_level(h));
                let mapped;
                let case = if catalog.maps.is_empty() || !catalog.maps.changes(case) {
                    case
                } else {
                    mapped = catalog.maps.apply(case);
                    &mapped
                };
                let (cc, mcc) = catalog.complications.tests(&case.diagnoses);
                let facts = CaseFacts { cc, mcc };
                let mean = |g: &dip::catalog::DipGroup| {
                    let index = catalog.group_index(&g.code).unwrap_or(0);
                    adjusted_mean(policy, case, complication_of(facts), &terms.group_terms(catalog, index, facts), g.mean_cost_at(level))
                };
                let context = dip::rules::Context { complications: (cc, mcc), mean: &mean };
                let mut lines = Vec::new();
                dip::rules::group_with_rules(catalog, &terms.grouping, case, &context, Some(&mut lines));
                lines
            }
        }
    }

    /// Starts loading what grouping `case` will look up first into the cache (no effect on
    /// results): for a reader that parses the next case before it assesses the current one.
    pub fn prefetch(&self, case: &Case) {
        if let Scorer::Drg { tables, .. } = self {
            tables.prefetch_codes(case.diagnoses.iter().chain(&case.procedures));
        }
    }

    /// The second step ahead, after [`prefetch`](Scorer::prefetch) had time: starts loading the
    /// facts of the case's mapped codes.
    pub fn prefetch_facts(&self, case: &Case) {
        if let Scorer::Drg { tables, .. } = self {
            tables.prefetch_facts(&case.diagnoses, &case.procedures);
        }
    }

    /// The third step ahead, after [`prefetch_facts`](Scorer::prefetch_facts) had time: starts
    /// loading the principal diagnosis's lists and rules.
    pub fn prefetch_rules(&self, case: &Case) {
        if let (Scorer::Drg { tables, .. }, Some(principal)) = (self, case.diagnoses.first()) {
            tables.prefetch_rules(principal);
        }
    }

    /// Groups and prices one case under `policy`.
    pub fn assess(&self, policy: &Policy, case: &Case) -> Assessment {
        self.assess_with(policy, case, hospital_terms(policy, case), true)
    }

    /// [`assess`](Scorer::assess) with the case's hospital already resolved: its
    /// [`Policy::hospital_terms`], which a caller settling millions of cases looks up once per
    /// hospital instead of once per case.
    pub fn assess_at(&self, policy: &Policy, case: &Case, hospital: Option<(&str, Option<Coefficient>)>) -> Assessment {
        self.assess_with(policy, case, hospital, true)
    }

    /// Groups a case and looks up its group's costs without pricing it (`points` is left as an
    /// unpriced, ungrouped zero): what the audit needs, at a fraction of the cost.
    pub fn classify(&self, policy: &Policy, case: &Case) -> Assessment {
        self.assess_with(policy, case, hospital_terms(policy, case), false)
    }

    fn assess_with(&self, policy: &Policy, case: &Case, terms: Option<(&str, Option<Coefficient>)>, price: bool) -> Assessment {
        // DIP code conversion and exclusion: a mapped copy, in a per-thread scratch case whose
        // allocations are reused, only when some code of the case changes.
        if let Scorer::Dip { catalog, .. } = self {
            if !catalog.maps.is_empty() && catalog.maps.changes(case) {
                thread_local! {
                    static MAPPED: std::cell::RefCell<Case> = std::cell::RefCell::new(Case::default());
                }
                return MAPPED.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut scratch) => {
                        catalog.maps.apply_into(case, &mut scratch);
                        self.assess_codes(policy, &scratch, terms, price)
                    }
                    Err(_) => self.assess_codes(policy, &catalog.maps.apply(case), terms, price),
                });
            }
        }
        self.assess_codes(policy, case, terms, price)
    }

    /// [`assess_with`](Scorer::assess_with) on a case whose codes are already mapped.
    fn assess_codes(&self, policy: &Policy, case: &Case, terms: Option<(&str, Option<Coefficient>)>, price: bool) -> Assessment {
        let level = terms.map(|(level, _)| level);
        let priced = |case: &Case, scored: Option<&ScoredGroup<'_>>, complication: Option<Severity>, group_terms: &GroupTerms<'_>| {
            if price {
                price_case_with(policy, case, scored, complication, terms.and_then(|(_, c)| c), group_terms)
            } else {
                CasePoints {
                    category: crate::pricing::CaseCategory::Ungrouped,
                    base_score: Decimal::ZERO,
                    cost_ratio: None,
                    factors: smallvec::SmallVec::new(),
                    points: crate::units::Points::ZERO,
                }
            }
        };
        match self {
            Scorer::Drg { tables, weights } => {
                let result = drg::group(tables, case, MappingMode::Map, &mut NoTrace);
                let drg_code = if result.status == GroupStatus::Success { result.drg_code(tables) } else { "" };
                let complication = result.complication.map(|c| c.severity);
                let weight = match (result.status, result.drg, result.adrg) {
                    (GroupStatus::Success, Some(d), _) => weights.drg[d].as_ref(),
                    (GroupStatus::Success, None, Some(a)) => weights.adrg[a].as_ref(),
                    _ => None,
                };
                let scored = weight.map(|w| ScoredGroup {
                    code: drg_code,
                    score: w.rw * policy.drg_points_per_rw,
                    mean_cost: level.and_then(|l| w.level_mean_cost.get(l)).copied().unwrap_or(w.mean_cost),
                    grassroots: false,
                });
                let points = priced(case, scored.as_ref(), complication, &GroupTerms::default());
                // The ADRG's unconditional (lowest-severity) DRG, when the case is not in it.
                let baseline_mean_cost = result
                    .adrg
                    .and_then(|a| weights.baseline[a])
                    .and_then(|(lowest, mean_cost)| (tables.drgs[lowest].code != drg_code).then_some(mean_cost));
                Assessment {
                    status: result.status.as_str(),
                    group: ShortText::new(drg_code),
                    family: ShortText::new(result.adrg.map_or("", |a| tables.adrgs[a].code.as_str())),
                    complication,
                    group_mean_cost: scored.as_ref().map(|s| s.mean_cost),
                    group_mean_los: weight.and_then(|w| w.mean_los),
                    baseline_mean_cost,
                    points,
                }
            }
            Scorer::Dip { catalog, terms: dip_terms } => {
                let (cc, mcc) = catalog.complications.tests(&case.diagnoses);
                let facts = CaseFacts { cc, mcc };
                let complication = complication_of(facts);
                let result = if dip_terms.use_rules {
                    let mean = |g: &dip::catalog::DipGroup| {
                        if !policy.severity.adjust_mean_cost {
                            return g.mean_cost_at(level);
                        }
                        let index = catalog.group_index(&g.code).unwrap_or(0);
                        adjusted_mean(policy, case, complication, &dip_terms.group_terms(catalog, index, facts), g.mean_cost_at(level))
                    };
                    let context = dip::rules::Context { complications: (cc, mcc), mean: &mean };
                    dip::rules::group_with_rules(catalog, &dip_terms.grouping, case, &context, None).0
                } else {
                    dip::group(catalog, case, level, None)
                };
                let group_terms = result.group.map(|g| dip_terms.group_terms(catalog, g, facts)).unwrap_or_default();
                let group = result.group.map(|g| &catalog.groups[g]);
                let scored = group.map(|g| ScoredGroup {
                    code: &g.code,
                    score: g.score,
                    mean_cost: g.mean_cost_at(level),
                    grassroots: g.kind == GroupKind::Grassroots,
                });
                let family = case.principal_diagnosis().and_then(dip::catalog::subcategory).unwrap_or("");
                // The conservative core group of the subcategory, when the case is in another one.
                let baseline_mean_cost = group.filter(|g| !g.terms.is_empty()).and_then(|g| {
                    catalog
                        .core_groups(family)
                        .iter()
                        .map(|&i| &catalog.groups[i])
                        .find(|c| c.terms.is_empty() && c.kind == GroupKind::Core && c.code != g.code)
                        .map(|c| c.mean_cost_at(level))
                });
                Assessment {
                    status: result.status.as_str(),
                    group: ShortText::new(group.map_or("", |g| g.code.as_str())),
                    family: ShortText::new(family),
                    complication,
                    group_mean_cost: scored.as_ref().map(|s| s.mean_cost),
                    group_mean_los: group.and_then(|g| g.mean_los),
                    baseline_mean_cost,
                    points: priced(case, scored.as_ref(), complication, &group_terms),
                }
            }
        }
    }
}

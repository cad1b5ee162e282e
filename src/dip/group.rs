//! The DIP grouper: finds every catalog group a case matches and picks one, deterministically.
//!
//! Order of preference (the first difference decides):
//! 1. more matched procedure terms (a more specific combination);
//! 2. kind: core, then grassroots;
//! 3. treatment type: surgery > therapeutic > diagnostic > conservative;
//! 4. the mean cost (at the case's hospital level) nearest the case's cost;
//! 5. the group code, so that ties cannot depend on file order.
//!
//! A core/grassroots group with procedures matches when every term has one of its codes among the
//! case's procedures. One with no procedures (conservative treatment) matches a case without
//! therapeutic or surgical procedures. A case no core/grassroots group takes falls into the
//! comprehensive group of its diagnosis category — or, failing that, the narrowest category range —
//! with the highest treatment type among its procedures. Pure: no I/O.

use super::catalog::{category, subcategory, DiagnosisKey, DipCatalog, GroupKind, ProcedureId, Treatment};
use crate::case::Case;
use rust_decimal::Decimal;
use smallvec::SmallVec;

/// Outcome status of DIP grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DipStatus {
    /// Grouped into a core or grassroots group.
    Core,
    /// Grouped into a comprehensive group.
    Comprehensive,
    /// No group takes the case (no matching comprehensive group either).
    NotGrouped,
}

impl DipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DipStatus::Core => "CORE",
            DipStatus::Comprehensive => "COMPREHENSIVE",
            DipStatus::NotGrouped => "NOT_GROUPED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DipResult {
    pub status: DipStatus,
    /// Index into [`DipCatalog::groups`].
    pub group: Option<usize>,
    /// The highest treatment type among the case's procedures.
    pub treatment: Treatment,
    /// Procedures the catalog has no treatment type for (positions), for the record.
    pub untyped_procedures: SmallVec<[usize; 4]>,
}

impl DipResult {
    pub fn group_code<'c>(&self, catalog: &'c DipCatalog) -> &'c str {
        self.group.map_or("", |g| catalog.groups[g].code.as_str())
    }
}

/// Groups one case. `level` is the case's hospital level (for the nearest-mean-cost tie break);
/// `trace`, when given, receives one sentence per decision.
pub fn group(catalog: &DipCatalog, case: &Case, level: Option<&str>, mut trace: Option<&mut Vec<String>>) -> DipResult {
    let mut say = |text: &dyn Fn() -> String| {
        if let Some(lines) = trace.as_deref_mut() {
            lines.push(text());
        }
    };
    let procedures: SmallVec<[Option<ProcedureId>; 8]> = case.procedures.iter().map(|p| catalog.procedure_id(p)).collect();
    let mut treatment = Treatment::Conservative;
    let mut untyped_procedures = SmallVec::new();
    for (position, procedure) in procedures.iter().enumerate() {
        match procedure.and_then(|p| catalog.procedure_type(p)) {
            Some(t) => treatment = treatment.max(t),
            None => untyped_procedures.push(position),
        }
    }
    say(&|| format!("treatment type of the case: {}", treatment.as_str()));
    let principal = case.principal_diagnosis().unwrap_or("");
    let not_grouped = |untyped| DipResult { status: DipStatus::NotGrouped, group: None, treatment, untyped_procedures: untyped };

    // Core and grassroots groups of the principal diagnosis' subcategory.
    let mut best: Option<(usize, usize)> = None; // (group, matched terms)
    if let Some(sub) = subcategory(principal) {
        for &g in catalog.core_groups(sub) {
            let group = &catalog.groups[g];
            let matched = if group.terms.is_empty() {
                treatment <= Treatment::Diagnostic
            } else {
                group.terms.iter().all(|term| term.iter().any(|p| procedures.contains(&Some(*p))))
            };
            say(&|| {
                let verdict = if matched { "matches" } else { "does not match" };
                let procedures = if group.procedures_text.is_empty() { "conservative" } else { &group.procedures_text };
                format!("{} group {} ({sub} + {procedures}) {verdict}", group.kind.as_str(), group.code)
            });
            if !matched {
                continue;
            }
            let better = match best {
                None => true,
                Some((current, _)) => prefer(catalog, g, current, case.total_cost, level),
            };
            if better {
                best = Some((g, group.terms.len()));
            }
        }
    } else {
        say(&|| format!("principal diagnosis {principal:?} has no subcategory"));
    }
    if let Some((g, _)) = best {
        say(&|| format!("chosen {} {}", catalog.groups[g].kind.as_str(), catalog.groups[g].code));
        return DipResult { status: DipStatus::Core, group: Some(g), treatment, untyped_procedures };
    }

    // Comprehensive groups: the category first, then the narrowest range holding it.
    let Some(cat) = category(principal) else {
        say(&|| "no core group and no diagnosis category: not grouped".to_string());
        return not_grouped(untyped_procedures);
    };
    let by_category = catalog.comprehensive_groups(cat).iter().copied().filter(|&g| catalog.groups[g].treatment == treatment).min();
    let chosen = by_category.or_else(|| {
        catalog
            .comprehensive_ranges()
            .iter()
            .copied()
            .filter(|&g| {
                let group = &catalog.groups[g];
                matches!(&group.diagnosis, DiagnosisKey::Range(from, to) if from.as_str() <= cat && cat <= to.as_str())
                    && group.treatment == treatment
            })
            .min_by_key(|&g| (range_width(&catalog.groups[g].diagnosis), catalog.groups[g].code.clone()))
    });
    match chosen {
        Some(g) => {
            say(&|| format!("no core group matches: comprehensive group {} ({} + {})", catalog.groups[g].code, cat, treatment.as_str()));
            DipResult { status: DipStatus::Comprehensive, group: Some(g), treatment, untyped_procedures }
        }
        None => {
            say(&|| format!("no core group and no comprehensive group for {cat} + {}: not grouped", treatment.as_str()));
            not_grouped(untyped_procedures)
        }
    }
}

fn range_width(key: &DiagnosisKey) -> u32 {
    let value = |c: &str| {
        let bytes = c.as_bytes();
        u32::from(bytes[0]) * 10_000 + u32::from(bytes[1]) * 100 + u32::from(bytes[2])
    };
    match key {
        DiagnosisKey::Range(from, to) => value(to).saturating_sub(value(from)),
        _ => 0,
    }
}

/// Whether `candidate` is preferred over `current` (module docs, order 1–5).
fn prefer(catalog: &DipCatalog, candidate: usize, current: usize, cost: Option<Decimal>, level: Option<&str>) -> bool {
    let (a, b) = (&catalog.groups[candidate], &catalog.groups[current]);
    let kind_rank = |k: GroupKind| k as u8;
    let distance = |g: &super::catalog::DipGroup| cost.map(|c| (g.mean_cost_at(level) - c).abs());
    let key_a = (std::cmp::Reverse(a.terms.len()), kind_rank(a.kind), std::cmp::Reverse(a.treatment), distance(a), &a.code);
    let key_b = (std::cmp::Reverse(b.terms.len()), kind_rank(b.kind), std::cmp::Reverse(b.treatment), distance(b), &b.code);
    key_a < key_b
}

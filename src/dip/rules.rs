//! The rule-driven DIP grouper: the regional grouping rules of a policy's `[dip_grouping]` and a
//! catalog's extensions (prefix codes, severity-split families, grassroots category rows,
//! procedure levels, fallback and blank groups).
//!
//! Steps (each configurable; the defaults reproduce [`super::group::group`] exactly):
//! 1. treatment types: the case's (highest) and the comprehensive lookup's (`comprehensive_treatment_from`);
//! 2. core and grassroots candidates of the principal's subcategory (conservative rows per
//!    `conservative_max_treatment`), severity families reduced to one row, plus at most one
//!    grassroots category row;
//! 3. the comprehensive candidate (category, else the narrowest range; level filter; fallback),
//!    and the blank group;
//! 4. `candidate_rank` over `candidate_scope` gives the ranked winner;
//! 5. `unmatched_surgery_to_comprehensive`;
//! 6. `final_order` over [winner, other grassroots candidates, comprehensive, blank].
//!
//! Pure: no I/O. The trace names the key that decided and the class that chose the group.

use super::catalog::{category, subcategory, DiagnosisKey, DipCatalog, DipGroup, GroupKind, ProcedureId, SeveritySplit, Treatment};
use super::group::{DipResult, DipStatus};
use crate::case::Case;
use crate::policy::{CandidateScope, ConservativeMax, DipGrouping, OrderClass, RankKey, TreatmentFrom};
use rust_decimal::Decimal;
use smallvec::SmallVec;

/// What grouping needs besides the catalog and the rules: the case's CC/MCC tests (severity
/// families) and each candidate's mean cost (the `nearest_cost` key).
pub struct Context<'a> {
    /// (CC test, MCC test) of the case.
    pub complications: (bool, bool),
    /// The mean a candidate's distance to the case's cost is measured from.
    pub mean: &'a dyn Fn(&DipGroup) -> Decimal,
}

/// A core or grassroots candidate with what the rank keys read.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    group: usize,
    /// Case procedures (by position) matching a code of the expression.
    matched: u32,
    /// Whether some case procedure is left unmatched.
    leaves_unmatched: bool,
    /// Whether some case surgery procedure is left unmatched.
    leaves_surgery: bool,
}

/// How the group was chosen, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The rank key that left one candidate (`None`: a single candidate, or a tie the last
    /// candidate won).
    pub rank_key: Option<RankKey>,
    /// Candidates left tied after the last key.
    pub tied: usize,
    /// The final class that chose the group, or the unmatched-surgery rule.
    pub class: Option<OrderClass>,
    pub unmatched_surgery: bool,
}

fn term_matches(group: &DipGroup, term: usize, code: &str, id: Option<ProcedureId>) -> bool {
    id.is_some_and(|id| group.terms[term].contains(&id))
        || group.prefix_terms.get(term).is_some_and(|prefixes| prefixes.iter().any(|p| code.starts_with(p.as_str())))
}

fn code_matches(group: &DipGroup, code: &str, id: Option<ProcedureId>) -> bool {
    (0..group.terms.len()).any(|t| term_matches(group, t, code, id))
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

fn in_range(key: &DiagnosisKey, cat: &str) -> bool {
    matches!(key, DiagnosisKey::Range(from, to) if from.as_str() <= cat && cat <= to.as_str())
}

/// Rows keyed by `cat` (catalog order) that `keep` accepts, else the narrowest ranges holding it
/// (by code). `level_filter` applies between finding and taking the first.
fn lookup(
    catalog: &DipCatalog,
    by_category: &[usize],
    ranges: &[usize],
    cat: &str,
    keep: &dyn Fn(&DipGroup) -> bool,
    principal_level: Option<Option<u8>>,
) -> Option<usize> {
    let mut found: SmallVec<[usize; 4]> = by_category.iter().copied().filter(|&g| keep(&catalog.groups[g])).collect();
    let from_ranges = found.is_empty();
    if from_ranges {
        let mut narrowest = u32::MAX;
        for &g in ranges {
            let group = &catalog.groups[g];
            if in_range(&group.diagnosis, cat) && keep(group) {
                let width = range_width(&group.diagnosis);
                if width < narrowest {
                    narrowest = width;
                    found.clear();
                }
                if width == narrowest {
                    found.push(g);
                }
            }
        }
    }
    if let Some(level) = principal_level {
        if found.iter().any(|&g| catalog.groups[g].procedure_levels != 0) {
            found.retain(|g| level.is_some_and(|l| catalog.groups[*g].procedure_levels & (1 << l) != 0));
        }
    }
    if from_ranges {
        found.into_iter().min_by(|&a, &b| catalog.groups[a].code.cmp(&catalog.groups[b].code))
    } else {
        found.first().copied()
    }
}

/// Groups one case under `rules`. `trace`, when given, receives one sentence per decision.
pub fn group_with_rules(
    catalog: &DipCatalog,
    rules: &DipGrouping,
    case: &Case,
    context: &Context<'_>,
    mut trace: Option<&mut Vec<String>>,
) -> (DipResult, Decision) {
    let mut say = |text: &dyn Fn() -> String| {
        if let Some(lines) = trace.as_deref_mut() {
            lines.push(text());
        }
    };
    let ids: SmallVec<[Option<ProcedureId>; 8]> = case.procedures.iter().map(|p| catalog.procedure_id(p)).collect();
    let mut treatment = Treatment::Conservative;
    let mut untyped_procedures = SmallVec::new();
    for (position, id) in ids.iter().enumerate() {
        match id.and_then(|p| catalog.procedure_type(p)) {
            Some(t) => treatment = treatment.max(t),
            None => untyped_procedures.push(position),
        }
    }
    let comprehensive_treatment = match rules.comprehensive_treatment_from {
        TreatmentFrom::Highest => treatment,
        TreatmentFrom::Principal => {
            ids.first().copied().flatten().and_then(|p| catalog.procedure_type(p)).unwrap_or(Treatment::Conservative)
        }
    };
    say(&|| format!("treatment type of the case: {}", treatment.as_str()));
    if comprehensive_treatment != treatment {
        say(&|| format!("treatment type of the principal procedure: {}", comprehensive_treatment.as_str()));
    }
    let principal = case.principal_diagnosis().unwrap_or("");
    let mut decision = Decision { rank_key: None, tied: 0, class: None, unmatched_surgery: false };

    // Step 2: core and grassroots candidates.
    let candidate = |g: usize| -> Candidate {
        let group = &catalog.groups[g];
        let mut matched = 0u32;
        let mut leaves_unmatched = false;
        let mut leaves_surgery = false;
        for (code, &id) in case.procedures.iter().zip(&ids) {
            if code_matches(group, code, id) {
                matched += 1;
            } else {
                leaves_unmatched = true;
                leaves_surgery |= id.and_then(|p| catalog.procedure_type(p)) == Some(Treatment::Surgery);
            }
        }
        Candidate { group: g, matched, leaves_unmatched, leaves_surgery }
    };
    let mut candidates: SmallVec<[Candidate; 8]> = SmallVec::new();
    if let Some(sub) = subcategory(principal) {
        let rows = catalog.core_groups(sub);
        let mut matched_kinds = [false; 3];
        for &g in rows {
            let group = &catalog.groups[g];
            if group.terms.is_empty() {
                continue;
            }
            let matched =
                (0..group.terms.len()).all(|t| case.procedures.iter().zip(&ids).any(|(code, &id)| term_matches(group, t, code, id)));
            say(&|| {
                let verdict = if matched { "matches" } else { "does not match" };
                format!("{} group {} ({sub} + {}) {verdict}", group.kind.as_str(), group.code, group.procedures_text)
            });
            if matched {
                matched_kinds[group.kind as usize] = true;
                candidates.push(candidate(g));
            }
        }
        let conservative_ok = match rules.conservative_max_treatment {
            ConservativeMax::Conservative => treatment == Treatment::Conservative,
            ConservativeMax::Diagnostic => treatment <= Treatment::Diagnostic,
            ConservativeMax::Minor => ids.iter().all(|&id| catalog.is_minor(id)),
        };
        for &g in rows {
            let group = &catalog.groups[g];
            if !group.terms.is_empty() {
                continue;
            }
            let matched = conservative_ok && !matched_kinds[group.kind as usize];
            say(&|| {
                let verdict = if matched { "matches" } else { "does not match" };
                format!("{} group {} ({sub} + conservative) {verdict}", group.kind.as_str(), group.code)
            });
            if matched {
                candidates.push(candidate(g));
            }
        }
    } else {
        say(&|| format!("principal diagnosis {principal:?} has no subcategory"));
    }

    // Severity-split families keep one row each.
    if candidates.iter().any(|c| catalog.groups[c.group].severity.is_some()) {
        let (cc, mcc) = context.complications;
        let long = case.los.is_some_and(|los| los >= rules.severity_split_min_los);
        let mut keep: SmallVec<[bool; 8]> = SmallVec::from_elem(true, candidates.len());
        for i in 0..candidates.len() {
            let head = &catalog.groups[candidates[i].group];
            if head.severity.is_none() || candidates[..i].iter().any(|c| same_family(&catalog.groups[c.group], head)) {
                continue;
            }
            let family: SmallVec<[usize; 4]> =
                (i..candidates.len()).filter(|&k| same_family(&catalog.groups[candidates[k].group], head)).collect();
            let has = |split: SeveritySplit| family.iter().copied().find(|&k| catalog.groups[candidates[k].group].severity == Some(split));
            let chosen = if long {
                None.or_else(|| if case.disposition == Some(5) { has(SeveritySplit::Death) } else { None })
                    .or_else(|| if mcc { has(SeveritySplit::Mcc) } else { None })
                    .or_else(|| if cc { has(SeveritySplit::Cc) } else { None })
                    .or_else(|| has(SeveritySplit::Mild))
            } else {
                has(SeveritySplit::Mild)
            };
            for &k in &family {
                keep[k] = Some(k) == chosen;
            }
            say(&|| match chosen {
                Some(k) => format!("severity family {}: {} kept", head.procedures_text, catalog.groups[candidates[k].group].code),
                None => format!("severity family {}: no row for the case's severity", head.procedures_text),
            });
        }
        let mut k = 0;
        candidates.retain(|_| {
            k += 1;
            keep[k - 1]
        });
    }

    let cat = category(principal);
    // Grassroots rows keyed by a category or range.
    if let Some(cat) = cat.filter(|_| catalog.has_grassroots_category_rows()) {
        if let Some(g) = lookup(
            catalog,
            catalog.grassroots_category_groups(cat),
            catalog.grassroots_ranges(),
            cat,
            &|g: &DipGroup| g.kind == GroupKind::Grassroots && g.treatment == comprehensive_treatment,
            None,
        ) {
            say(&|| format!("grassroots category group {} ({cat} + {}) matches", catalog.groups[g].code, comprehensive_treatment.as_str()));
            candidates.push(candidate(g));
        }
    }
    // Candidate order: core rows in catalog order, then grassroots rows in catalog order.
    candidates.sort_by_key(|c| (catalog.groups[c.group].kind, c.group));

    // Step 3: the comprehensive candidate and the blank group.
    let principal_level = ids.first().map(|id| id.and_then(|p| catalog.procedure_level(p)));
    let mut comprehensive = None;
    let mut fallback = false;
    if let Some(cat) = cat {
        comprehensive = lookup(
            catalog,
            catalog.comprehensive_groups(cat),
            catalog.comprehensive_ranges(),
            cat,
            &|g: &DipGroup| g.treatment == comprehensive_treatment,
            Some(principal_level.flatten()),
        );
        if comprehensive.is_none() && catalog.has_fallback_rows() {
            comprehensive = lookup(catalog, catalog.fallback_groups(cat), catalog.fallback_ranges(), cat, &|_| true, None);
            fallback = comprehensive.is_some();
        }
        match comprehensive {
            Some(g) if fallback => say(&|| format!("fallback comprehensive group {} ({cat}, any treatment)", catalog.groups[g].code)),
            Some(g) => say(&|| format!("comprehensive group {} ({cat} + {})", catalog.groups[g].code, comprehensive_treatment.as_str())),
            None => say(&|| format!("no comprehensive group for {cat} + {}", comprehensive_treatment.as_str())),
        }
    }
    let blank = catalog.blank_group();

    // Step 4: the ranked winner.
    let mut ranked: SmallVec<[Candidate; 8]> = candidates
        .iter()
        .copied()
        .filter(|c| rules.candidate_scope == CandidateScope::CoreAndGrassroots || catalog.groups[c.group].kind == GroupKind::Core)
        .collect();
    if ranked.len() > 1 {
        for &key in &rules.candidate_rank {
            let before = ranked.len();
            apply_key(catalog, key, &mut ranked, case, &ids, context);
            if ranked.len() < before {
                say(&|| format!("rank key {}: {} of {before} candidates left", key.as_str(), ranked.len()));
            }
            if ranked.len() == 1 {
                decision.rank_key = Some(key);
                break;
            }
        }
        decision.tied = if ranked.len() > 1 { ranked.len() } else { 0 };
    }
    let winner = ranked.last().copied();
    if let Some(w) = winner {
        say(&|| match (decision.rank_key, decision.tied) {
            (Some(key), _) => format!("ranked winner {} (decided by rank key {})", catalog.groups[w.group].code, key.as_str()),
            (None, 0) => format!("ranked winner {} (the only candidate)", catalog.groups[w.group].code),
            (None, tied) => format!("ranked winner {} (a tie of {tied}: the last in candidate order)", catalog.groups[w.group].code),
        });
    }

    let finish = |group: Option<usize>, decision: Decision| {
        let status = match group {
            None => DipStatus::NotGrouped,
            Some(g) if catalog.groups[g].kind == GroupKind::Comprehensive => DipStatus::Comprehensive,
            Some(_) => DipStatus::Core,
        };
        (DipResult { status, group, treatment, untyped_procedures: untyped_procedures.clone() }, decision)
    };
    let class_treatment = |g: usize| if catalog.groups[g].fallback { comprehensive_treatment } else { catalog.groups[g].treatment };

    // Step 5: unmatched surgery goes to the comprehensive surgery group.
    if rules.unmatched_surgery_to_comprehensive {
        if let Some(c) = comprehensive.filter(|&c| class_treatment(c) == Treatment::Surgery) {
            let all_leave = winner
                .iter()
                .chain(candidates.iter().filter(|x| catalog.groups[x.group].kind == GroupKind::Grassroots))
                .all(|x| x.leaves_surgery);
            if all_leave {
                say(&|| {
                    format!(
                        "every core and grassroots candidate leaves a surgery unmatched: comprehensive surgery group {}",
                        catalog.groups[c].code
                    )
                });
                decision.unmatched_surgery = true;
                return finish(Some(c), decision);
            }
        }
    }

    // Step 6: the final order.
    let mut final_list: SmallVec<[(usize, bool); 8]> = SmallVec::new();
    if let Some(w) = winner {
        final_list.push((w.group, false));
    }
    for c in &candidates {
        if catalog.groups[c.group].kind == GroupKind::Grassroots && Some(c.group) != winner.map(|w| w.group) {
            final_list.push((c.group, false));
        }
    }
    if let Some(c) = comprehensive {
        final_list.push((c, false));
    }
    if let Some(b) = blank {
        final_list.push((b, true));
    }
    for &class in &rules.final_order {
        if let Some(&(g, _)) = final_list.iter().find(|&&(g, is_blank)| class.holds(catalog.groups[g].kind, class_treatment(g), is_blank)) {
            decision.class = Some(class);
            say(&|| format!("chosen {} {} (class {})", catalog.groups[g].kind.as_str(), catalog.groups[g].code, class.to_text()));
            return finish(Some(g), decision);
        }
    }
    say(&|| "no listed class holds a candidate: not grouped".to_string());
    finish(None, decision)
}

/// Whether `text` starts with `expression` with its `*`s removed (no allocation).
fn starts_with_stem(text: &str, expression: &str) -> bool {
    let mut text = text.bytes();
    expression.bytes().filter(|&b| b != b'*').all(|b| text.next() == Some(b))
}

fn same_family(a: &DipGroup, b: &DipGroup) -> bool {
    a.severity.is_some() && a.family == b.family
}

/// Keeps the candidates best by `key` (ties kept, except `highest_score_if_surgery`).
fn apply_key(
    catalog: &DipCatalog,
    key: RankKey,
    ranked: &mut SmallVec<[Candidate; 8]>,
    case: &Case,
    ids: &[Option<ProcedureId>],
    context: &Context<'_>,
) {
    let group = |c: &Candidate| &catalog.groups[c.group];
    fn keep_max<K: Ord + Copy>(ranked: &mut SmallVec<[Candidate; 8]>, key: impl Fn(&Candidate) -> K) {
        if let Some(best) = ranked.iter().map(&key).max() {
            ranked.retain(|c| key(c) == best);
        }
    }
    fn keep_if_any(ranked: &mut SmallVec<[Candidate; 8]>, test: impl Fn(&Candidate) -> bool) {
        if ranked.iter().any(&test) {
            ranked.retain(|c| test(c));
        }
    }
    match key {
        RankKey::FullCode => {
            if let Some(p) = ranked.iter().find(|c| group(c).has_prefix_codes()) {
                let stem = &group(p).procedures_text;
                if ranked.iter().any(|c| !group(c).has_prefix_codes() && starts_with_stem(&group(c).procedures_text, stem)) {
                    ranked.retain(|c| !group(c).has_prefix_codes());
                }
            }
        }
        RankKey::PrincipalProcedure => {
            if let Some(code) = case.procedures.first() {
                let id = ids.first().copied().flatten();
                keep_if_any(ranked, |c| code_matches(group(c), code, id));
            }
        }
        RankKey::ExactSet => keep_if_any(ranked, |c| !c.leaves_unmatched),
        RankKey::HighestScoreIfSurgery => {
            if ranked.iter().any(|c| group(c).treatment == Treatment::Surgery) {
                let mut best = ranked[0];
                for c in ranked.iter().skip(1) {
                    if group(c).score > group(&best).score {
                        best = *c;
                    }
                }
                ranked.clear();
                ranked.push(best);
            }
        }
        RankKey::Terms => keep_max(ranked, |c| group(c).terms.len()),
        RankKey::MatchedCodes => keep_max(ranked, |c| c.matched),
        RankKey::Kind => keep_if_any(ranked, |c| group(c).kind == GroupKind::Core),
        RankKey::Treatment => keep_max(ranked, |c| group(c).treatment),
        RankKey::NearestCost => {
            if let Some(cost) = case.total_cost {
                keep_max(ranked, |c| std::cmp::Reverse(((context.mean)(group(c)) - cost).abs()));
            }
        }
        RankKey::HighestScore => keep_max(ranked, |c| group(c).score),
        RankKey::Code => keep_max(ranked, |c| std::cmp::Reverse(group(c).code.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::starts_with_stem;

    #[test]
    fn a_stem_is_the_expression_without_its_stars() {
        assert!(starts_with_stem("51.2300/51.2200", "51.23*"));
        assert!(starts_with_stem("51.2300", "51.2*"));
        assert!(!starts_with_stem("51.2", "51.23*"), "shorter than the stem");
        assert!(!starts_with_stem("54.5100", "51.2*"));
        assert!(!starts_with_stem("51.2300+54.5100", "51.2*+54.51*"), "the + joins stems in order");
        assert!(starts_with_stem("51.2+54.51", "51.2*+54.51*"));
    }
}

//! Building scores from history: DIP catalogs and DRG relative weights (RW) from past years'
//! cases, weighted by year (e.g. 1:2:7 for the last three years).
//!
//! For each group and year the case costs are trimmed (configurable) and averaged. A group's
//! weighted mean is Σ wᵧ·meanᵧ ÷ Σ wᵧ over the years it has cases; the overall weighted mean
//! likewise over all retained cases of each year. Score = group weighted mean ÷ overall weighted
//! mean × scale, rounded half-up once at the end. Pure: callers read the files.
//!
//! DIP: a case's combination is its principal diagnosis subcategory plus the set of its
//! procedures that have a treatment type. Combinations are sorted by case count (all years); the
//! core threshold is the count at which the most frequent combinations first cover the coverage
//! target (85%), but never below the floor (15). Combinations under the threshold fall into
//! comprehensive groups by diagnosis category and highest treatment type.

use crate::case::Case;
use crate::dip::catalog::{category, subcategory, Treatment};
use crate::drg::{group, DrgTableSet, MappingMode, NoTrace};
use crate::units::round_half_up;
use rust_decimal::{Decimal, MathematicalOps};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Outlier trimming applied to each group's costs in each year before averaging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trim {
    None,
    /// Keep costs within mean ± k standard deviations.
    StdDev(Decimal),
    /// Keep costs within [Q1 − k·IQR, Q3 + k·IQR].
    Iqr(Decimal),
}

impl Trim {
    /// `none`, `sd:3` or `iqr:1.5`.
    pub fn parse(text: &str) -> Option<Trim> {
        let number = |t: &str| t.parse::<Decimal>().ok().filter(|k| *k > Decimal::ZERO);
        match text.split_once(':') {
            None if text == "none" => Some(Trim::None),
            Some(("sd", k)) => number(k).map(Trim::StdDev),
            Some(("iqr", k)) => number(k).map(Trim::Iqr),
            _ => None,
        }
    }
}

/// One history case reduced to what scoring needs.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryCase {
    /// Group key (a DIP combination or a DRG code), interned by the caller.
    pub key: u32,
    pub cost: Decimal,
    pub los: Option<i64>,
    /// Hospital level, interned by the caller (`None` when unknown).
    pub level: Option<u8>,
}

/// Means of one group, weighted over the years.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMeans {
    pub cases: u64,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub level_mean_cost: BTreeMap<u8, Decimal>,
}

/// Σ w·m ÷ Σ w over the pairs; `None` when no weight.
pub fn weighted_mean(pairs: &[(Decimal, Decimal)]) -> Option<Decimal> {
    let total_weight: Decimal = pairs.iter().map(|(w, _)| *w).sum();
    if total_weight <= Decimal::ZERO {
        return None;
    }
    Some(pairs.iter().map(|(w, m)| *w * *m).sum::<Decimal>() / total_weight)
}

/// Score on `scale`, rounded half-up to `decimals`.
pub fn score(group_mean: Decimal, overall_mean: Decimal, scale: Decimal, decimals: u32) -> Decimal {
    round_half_up(group_mean / overall_mean * scale, decimals)
}

fn mean(values: &[Decimal]) -> Option<Decimal> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().copied().sum::<Decimal>() / Decimal::from(values.len()))
}

/// Returns the costs kept after trimming (order not preserved).
pub fn trimmed(mut costs: Vec<Decimal>, trim: Trim) -> Vec<Decimal> {
    if costs.len() < 4 {
        return costs;
    }
    match trim {
        Trim::None => costs,
        Trim::StdDev(k) => {
            let Some(m) = mean(&costs) else { return costs };
            let variance = costs.iter().map(|c| (*c - m) * (*c - m)).sum::<Decimal>() / Decimal::from(costs.len());
            let sd = variance.sqrt().unwrap_or(Decimal::ZERO);
            let (low, high) = (m - k * sd, m + k * sd);
            costs.retain(|c| *c >= low && *c <= high);
            costs
        }
        Trim::Iqr(k) => {
            costs.sort_unstable();
            let quartile = |q: usize| costs[(costs.len() - 1) * q / 4];
            let (q1, q3) = (quartile(1), quartile(3));
            let spread = (q3 - q1) * k;
            let (low, high) = (q1 - spread, q3 + spread);
            costs.retain(|c| *c >= low && *c <= high);
            costs
        }
    }
}

/// Weighted means of every group and of all cases. `years[i]` holds year i's cases and
/// `weights[i]` its weight.
pub fn weighted_means(years: &[Vec<HistoryCase>], weights: &[Decimal], trim: Trim) -> (BTreeMap<u32, GroupMeans>, Option<Decimal>) {
    // Per year: group → costs, los; group → level → costs.
    let mut cost_pairs: BTreeMap<u32, Vec<(Decimal, Decimal)>> = BTreeMap::new();
    let mut los_pairs: BTreeMap<u32, Vec<(Decimal, Decimal)>> = BTreeMap::new();
    let mut level_pairs: BTreeMap<(u32, u8), Vec<(Decimal, Decimal)>> = BTreeMap::new();
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut overall_pairs: Vec<(Decimal, Decimal)> = Vec::new();
    for (year, cases) in years.iter().enumerate() {
        let weight = weights.get(year).copied().unwrap_or(Decimal::ONE);
        let mut by_group: BTreeMap<u32, Vec<&HistoryCase>> = BTreeMap::new();
        for case in cases {
            by_group.entry(case.key).or_default().push(case);
        }
        let mut year_sum = Decimal::ZERO;
        let mut year_count = 0u64;
        for (key, group_cases) in by_group {
            *counts.entry(key).or_default() += group_cases.len() as u64;
            let kept = trimmed(group_cases.iter().map(|c| c.cost).collect(), trim);
            if kept.is_empty() {
                continue;
            }
            year_sum += kept.iter().copied().sum::<Decimal>();
            year_count += kept.len() as u64;
            if let Some(m) = mean(&kept) {
                cost_pairs.entry(key).or_default().push((weight, m));
            }
            let stays: Vec<Decimal> = group_cases.iter().filter_map(|c| c.los).map(Decimal::from).collect();
            if let Some(m) = mean(&stays) {
                los_pairs.entry(key).or_default().push((weight, m));
            }
            let mut by_level: BTreeMap<u8, Vec<Decimal>> = BTreeMap::new();
            for case in &group_cases {
                if let Some(level) = case.level {
                    by_level.entry(level).or_default().push(case.cost);
                }
            }
            for (level, costs) in by_level {
                if let Some(m) = mean(&trimmed(costs, trim)) {
                    level_pairs.entry((key, level)).or_default().push((weight, m));
                }
            }
        }
        if year_count > 0 {
            overall_pairs.push((weight, year_sum / Decimal::from(year_count)));
        }
    }
    let mut groups = BTreeMap::new();
    for (key, pairs) in &cost_pairs {
        let Some(mean_cost) = weighted_mean(pairs) else { continue };
        let level_mean_cost = level_pairs
            .range((*key, 0)..=(*key, u8::MAX))
            .filter_map(|((_, level), pairs)| weighted_mean(pairs).map(|m| (*level, m)))
            .collect();
        groups.insert(
            *key,
            GroupMeans {
                cases: counts.get(key).copied().unwrap_or(0),
                mean_cost,
                mean_los: los_pairs.get(key).and_then(|p| weighted_mean(p)),
                level_mean_cost,
            },
        );
    }
    (groups, weighted_mean(&overall_pairs))
}

/// The core threshold: the case count at which the most frequent combinations first cover
/// `coverage` of all cases, never below `floor`. Returns (threshold, share of cases covered).
pub fn core_threshold(counts: &[u64], total_cases: u64, coverage: Decimal, floor: u64) -> (u64, Decimal) {
    let mut sorted: Vec<u64> = counts.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let target = coverage * Decimal::from(total_cases);
    let mut cumulative = 0u64;
    let mut threshold = floor;
    for &count in &sorted {
        cumulative += count;
        if Decimal::from(cumulative) >= target {
            threshold = count.max(floor);
            break;
        }
    }
    let covered: u64 = sorted.iter().filter(|&&c| c >= threshold).sum();
    let share = if total_cases == 0 { Decimal::ZERO } else { Decimal::from(covered) / Decimal::from(total_cases) };
    (threshold, share)
}

/// A DIP combination: principal diagnosis subcategory (or category, for cases without one) and
/// the sorted typed procedures.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Combination {
    pub subcategory: Option<String>,
    pub category: String,
    pub procedures: Vec<String>,
    pub treatment: Treatment,
}

impl Combination {
    /// The combination of a case, given each procedure's treatment type (`None` = untyped,
    /// ignored). `None` when the principal diagnosis has no category.
    pub fn of(principal: &str, procedures: &[(String, Option<Treatment>)]) -> Option<Combination> {
        let category = category(principal)?.to_string();
        let mut typed: Vec<String> = procedures.iter().filter(|(_, t)| t.is_some()).map(|(p, _)| p.clone()).collect();
        typed.sort();
        typed.dedup();
        let treatment = procedures.iter().filter_map(|(_, t)| *t).max().unwrap_or(Treatment::Conservative);
        Some(Combination { subcategory: subcategory(principal).map(str::to_string), category, procedures: typed, treatment })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn the_worked_example_weighted_one_two_seven_scores_1244_06() {
        let weights = [dec!(1), dec!(2), dec!(7)];
        let group: Vec<_> = weights.iter().copied().zip([dec!(9000), dec!(9500), dec!(10200)]).collect();
        let overall: Vec<_> = weights.iter().copied().zip([dec!(7600), dec!(7800), dec!(8100)]).collect();
        let group_mean = weighted_mean(&group).unwrap();
        let overall_mean = weighted_mean(&overall).unwrap();
        assert_eq!(group_mean, dec!(9940));
        assert_eq!(overall_mean, dec!(7990));
        assert_eq!(score(group_mean, overall_mean, dec!(1000), 2), dec!(1244.06));
    }

    #[test]
    fn weighted_means_from_cases_reproduce_the_worked_example() {
        // Group 1 has one case a year at the group means; group 2 fills each year up to the overall mean.
        let year = |group_cost: Decimal, other_cost: Decimal| {
            vec![
                HistoryCase { key: 1, cost: group_cost, los: Some(5), level: Some(3) },
                HistoryCase { key: 2, cost: other_cost, los: Some(3), level: Some(2) },
            ]
        };
        // overall = (g + o) / 2, so o = 2·overall − g.
        let years = vec![year(dec!(9000), dec!(6200)), year(dec!(9500), dec!(6100)), year(dec!(10200), dec!(6000))];
        let (groups, overall) = weighted_means(&years, &[dec!(1), dec!(2), dec!(7)], Trim::None);
        let overall = overall.unwrap();
        assert_eq!(overall, dec!(7990));
        assert_eq!(score(groups[&1].mean_cost, overall, dec!(1000), 2), dec!(1244.06));
        assert_eq!(groups[&1].cases, 3);
        assert_eq!(groups[&1].level_mean_cost[&3], dec!(9940));
    }

    #[test]
    fn trimming_drops_the_extreme_case() {
        let mut costs = vec![dec!(100); 20];
        costs.push(dec!(100000));
        assert_eq!(trimmed(costs.clone(), Trim::StdDev(dec!(3))).len(), 20);
        assert_eq!(trimmed(costs.clone(), Trim::Iqr(dec!(1.5))).len(), 20);
        assert_eq!(trimmed(costs, Trim::None).len(), 21);
        assert_eq!(Trim::parse("sd:3"), Some(Trim::StdDev(dec!(3))));
        assert_eq!(Trim::parse("iqr:0"), None);
    }

    #[test]
    fn core_threshold_covers_the_target_and_respects_the_floor() {
        // 100 cases: combinations of 50, 30, 10, 5, 5 cases.
        let counts = [50, 30, 10, 5, 5];
        let (threshold, share) = core_threshold(&counts, 100, dec!(0.85), 3);
        assert_eq!((threshold, share), (10, dec!(0.9)));
        let (threshold, share) = core_threshold(&counts, 100, dec!(0.85), 15);
        assert_eq!((threshold, share), (15, dec!(0.8)), "the floor wins, and the shortfall is reported");
    }
}

/// Options of a DIP catalog build.
#[derive(Debug, Clone)]
pub struct DipBuildOptions {
    /// Weight of each history year, oldest first.
    pub weights: Vec<Decimal>,
    pub scale: Decimal,
    /// Floor of the core-group case threshold.
    pub min_cases: u64,
    /// Share of cases the core groups should cover.
    pub coverage: Decimal,
    pub trim: Trim,
    pub score_decimals: u32,
    /// Subcategories whose conservative core group is a grassroots group (基层病种).
    pub grassroots: Vec<String>,
}

/// One group of a built catalog (a `catalog.csv` row).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    pub code: String,
    pub name: String,
    pub kind: crate::dip::GroupKind,
    pub diagnosis: String,
    pub procedures: String,
    pub treatment: Treatment,
    pub score: Decimal,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub cases: u64,
    /// Mean cost per hospital level (level name → yuan).
    pub level_mean_cost: BTreeMap<String, Decimal>,
}

/// What a build found, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildReport {
    pub cases_per_year: Vec<u64>,
    pub combinations: usize,
    pub threshold: u64,
    pub core_coverage: Decimal,
    pub core_groups: usize,
    pub comprehensive_groups: usize,
    pub overall_mean_cost: Decimal,
}

/// Builds a DIP catalog. `combinations[k]` is the combination interned as key `k` in `years`;
/// `levels[l]` names level id `l`.
pub fn build_dip_catalog(
    combinations: &[Combination],
    mut years: Vec<Vec<HistoryCase>>,
    levels: &[String],
    options: &DipBuildOptions,
) -> Option<(Vec<CatalogRow>, BuildReport)> {
    let mut counts = vec![0u64; combinations.len()];
    for case in years.iter().flatten() {
        counts[case.key as usize] += 1;
    }
    let total: u64 = counts.iter().sum();
    let eligible: Vec<u64> = combinations.iter().zip(&counts).filter(|(c, _)| c.subcategory.is_some()).map(|(_, n)| *n).collect();
    let (threshold, core_coverage) = core_threshold(&eligible, total, options.coverage, options.min_cases);

    // Final groups: core combinations keep their own group; the rest go to (category, treatment).
    #[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
    enum GroupDef {
        Core { subcategory: String, procedures: Vec<String>, treatment: Treatment },
        Comprehensive { category: String, treatment: Treatment },
    }
    let mut definitions: BTreeMap<GroupDef, u32> = BTreeMap::new();
    let mut final_key = Vec::with_capacity(combinations.len());
    for (combination, &count) in combinations.iter().zip(&counts) {
        let definition = match &combination.subcategory {
            Some(sub) if count >= threshold => {
                GroupDef::Core { subcategory: sub.clone(), procedures: combination.procedures.clone(), treatment: combination.treatment }
            }
            _ => GroupDef::Comprehensive { category: combination.category.clone(), treatment: combination.treatment },
        };
        let next = definitions.len() as u32;
        final_key.push(*definitions.entry(definition).or_insert(next));
    }
    for case in years.iter_mut().flatten() {
        case.key = final_key[case.key as usize];
    }
    let (means, overall) = weighted_means(&years, &options.weights, options.trim);
    let overall = overall?;
    let mut rows = Vec::new();
    let mut sequence: BTreeMap<String, u32> = BTreeMap::new();
    for (definition, key) in &definitions {
        let Some(group) = means.get(key) else { continue };
        let level_mean_cost = group
            .level_mean_cost
            .iter()
            .filter_map(|(l, m)| levels.get(*l as usize).map(|name| (name.clone(), round_half_up(*m, 2))))
            .collect();
        let score = score(group.mean_cost, overall, options.scale, options.score_decimals);
        let (code, name, kind, diagnosis, procedures, treatment) = match definition {
            GroupDef::Core { subcategory, procedures, treatment } => {
                let n = sequence.entry(subcategory.clone()).or_insert(0);
                *n += 1;
                let grassroots = procedures.is_empty() && options.grassroots.contains(subcategory);
                let kind = if grassroots { crate::dip::GroupKind::Grassroots } else { crate::dip::GroupKind::Core };
                let text = procedures.join("+");
                let label = if text.is_empty() { "保守治疗".to_string() } else { text.clone() };
                (format!("{subcategory}-{n:03}"), format!("{subcategory} {label}"), kind, subcategory.clone(), text, *treatment)
            }
            GroupDef::Comprehensive { category, treatment } => {
                let letter = match treatment {
                    Treatment::Conservative => "C",
                    Treatment::Diagnostic => "D",
                    Treatment::Therapeutic => "T",
                    Treatment::Surgery => "S",
                };
                (
                    format!("{category}-Z{letter}"),
                    format!("{category} 综合 {}", treatment.as_str()),
                    crate::dip::GroupKind::Comprehensive,
                    category.clone(),
                    String::new(),
                    *treatment,
                )
            }
        };
        rows.push(CatalogRow {
            code,
            name,
            kind,
            diagnosis,
            procedures,
            treatment,
            score,
            mean_cost: round_half_up(group.mean_cost, 2),
            mean_los: group.mean_los.map(|l| round_half_up(l, 2)),
            cases: group.cases,
            level_mean_cost,
        });
    }
    let report = BuildReport {
        cases_per_year: years.iter().map(|y| y.len() as u64).collect(),
        combinations: combinations.len(),
        threshold,
        core_coverage,
        core_groups: rows.iter().filter(|r| r.kind != crate::dip::GroupKind::Comprehensive).count(),
        comprehensive_groups: rows.iter().filter(|r| r.kind == crate::dip::GroupKind::Comprehensive).count(),
        overall_mean_cost: round_half_up(overall, 2),
    };
    Some((rows, report))
}

/// Hospital levels of a policy, interned: hospital → level id, and the level names (sorted; id
/// `l` is `names[l]`). Empty without a policy.
pub fn hospital_levels(policy: Option<&crate::policy::Policy>) -> (FxHashMap<String, u8>, Vec<String>) {
    let Some(policy) = policy else { return (FxHashMap::default(), Vec::new()) };
    let mut names: Vec<String> = policy.hospitals.values().map(|h| h.level.clone()).collect();
    names.sort();
    names.dedup();
    let by_hospital = policy
        .hospitals
        .iter()
        .filter_map(|(id, h)| names.iter().position(|n| *n == h.level).map(|level| (id.clone(), level as u8)))
        .collect();
    (by_hospital, names)
}

/// The DIP combination of a history case (its procedures typed by `types`), or why it has none.
pub fn dip_key(types: &FxHashMap<String, Treatment>, case: &Case) -> Result<Combination, String> {
    let procedures: Vec<(String, Option<Treatment>)> = case.procedures.iter().map(|p| (p.clone(), types.get(p).copied())).collect();
    Combination::of(case.principal_diagnosis().unwrap_or(""), &procedures).ok_or_else(|| "principal diagnosis has no category".to_string())
}

/// The DRG (index into `tables.drgs`) a history case groups to, or why it has none.
pub fn drg_key(tables: &DrgTableSet, case: &Case) -> Result<usize, String> {
    let result = group(tables, case, MappingMode::Map, &mut NoTrace);
    result.drg.ok_or_else(|| format!("not grouped to a DRG ({})", result.status.as_str()))
}

/// Checks the weights of `files` history files: one each (all 1 when none are given), none
/// negative, not all zero.
pub fn history_weights(weights: Vec<Decimal>, files: usize) -> Result<Vec<Decimal>, String> {
    if weights.is_empty() {
        return Ok(vec![Decimal::ONE; files]);
    }
    if weights.len() != files {
        return Err(format!("--weights has {} values for {files} history files", weights.len()));
    }
    if weights.iter().any(|w| *w < Decimal::ZERO) || weights.iter().all(|w| w.is_zero()) {
        return Err("--weights must not be negative and not all zero".to_string());
    }
    Ok(weights)
}

/// One DRG's row of a weights file (`drg, name, rw, mean_cost, mean_los, cases,
/// mean_cost_level_<L>…`).
#[derive(Debug, Clone, PartialEq)]
pub struct DrgWeightRow {
    pub drg: String,
    pub name: String,
    pub rw: Decimal,
    pub mean_cost: Decimal,
    pub mean_los: Option<Decimal>,
    pub cases: u64,
    /// Mean cost per level id (`None` when the level has no case of the DRG).
    pub level_mean_cost: Vec<Option<Decimal>>,
}

/// DRG relative weights from history grouped with `tables`: `drg_keys[k]` is the DRG interned as
/// key `k` in `years`, `level_count` the number of hospital levels. RW = weighted mean cost ÷
/// overall weighted mean, to `decimals`; rows by DRG code; with the overall weighted mean.
/// `None` without a usable case.
pub fn build_drg_weights(
    tables: &DrgTableSet,
    drg_keys: &[usize],
    years: &[Vec<HistoryCase>],
    weights: &[Decimal],
    trim: Trim,
    level_count: usize,
    decimals: u32,
) -> Option<(Vec<DrgWeightRow>, Decimal)> {
    let (means, overall) = weighted_means(years, weights, trim);
    let overall = overall?;
    let mut rows: Vec<DrgWeightRow> = means
        .iter()
        .map(|(key, group_means)| {
            let drg = &tables.drgs[drg_keys[*key as usize]];
            DrgWeightRow {
                drg: drg.code.clone(),
                name: drg.name.clone(),
                rw: score(group_means.mean_cost, overall, Decimal::ONE, decimals),
                mean_cost: round_half_up(group_means.mean_cost, 2),
                mean_los: group_means.mean_los.map(|l| round_half_up(l, 2)),
                cases: group_means.cases,
                level_mean_cost: (0..level_count)
                    .map(|l| group_means.level_mean_cost.get(&(l as u8)).map(|m| round_half_up(*m, 2)))
                    .collect(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.drg.cmp(&b.drg));
    Some((rows, overall))
}

/// A starting table of procedure treatment types from a DRG table set's procedure codes (those
/// that map to themselves), sorted by code: OR procedures are surgery, ICD-9-CM-3 87–89
/// (imaging, examinations) diagnostic, every other listed procedure therapeutic. A region
/// should review it by hand.
pub fn suggested_procedure_types(tables: &DrgTableSet) -> Vec<(String, Treatment)> {
    let mut rows = Vec::new();
    for id in 1..tables.code_count() {
        let code = crate::drg::tables::CodeId(id as u32);
        if tables.map_procedure(code) != Some(code) {
            continue;
        }
        let text = tables.code_text(code);
        let treatment = if tables.info(code).is_or_procedure() {
            Treatment::Surgery
        } else if ["87", "88", "89"].iter().any(|p| text.starts_with(p)) {
            Treatment::Diagnostic
        } else {
            Treatment::Therapeutic
        };
        rows.push((text.to_string(), treatment));
    }
    rows.sort();
    rows
}

//! Audit (稽核): detectors that flag likely violations with the evidence a human auditor needs.
//!
//! Flags are suggestions. Only violations an auditor confirms (through the CLI or the API) reach
//! settlement as penalties. Every threshold comes from the policy's `[audit]` table. Pure: takes
//! assessed cases, returns flags in a deterministic order. Starts no
//! threads: executors ([`crate::audit_run`]) scan [`PatientStays`] shards on theirs.
//!
//! Detectors:
//! - split admission (分解住院): the same patient readmitted within the window after a discharge,
//!   to the same hospital or another, in the same group family or diagnosis category; planned
//!   treatment (chemotherapy, radiotherapy, dialysis…) excluded. The score weighs the evidence:
//!   0.35, plus 0.25 × closeness of the dates, plus 0.15 for the same hospital, plus 0.15 for the
//!   same principal diagnosis, plus 0.1 when both stays together cost at most 1.5 × one stay of
//!   the group (minus 0.1 at 2.5 × or more), times 0.8 when only the diagnosis category (not the
//!   group family) matches. Scores of 0.8 and above are high-confidence flags;
//! - upcoding (高套分值): a case in a higher-severity group (lifted by a CC/MCC, or by a procedure
//!   in DIP) whose cost sits far below that group's mean and near the lower group's; and hospitals
//!   whose share of top-severity cases in a family far exceeds the region's;
//! - low-standard admission (低标入院): short, cheap stays in families treatable as outpatients;
//! - bed-hanging (挂床住院): long stays at a very low daily cost.

use crate::case::{Case, Date};
use crate::drg::trace::Severity;
use crate::policy::Audit;
use crate::scoring::Assessment;
use crate::text::ShortText;
use crate::units::round_half_up;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// What a flag suspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlagKind {
    SplitAdmission,
    Upcoding,
    /// A hospital-level pattern, not one case.
    UpcodingPattern,
    LowStandardAdmission,
    BedHanging,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::SplitAdmission => "split_admission",
            FlagKind::Upcoding => "upcoding",
            FlagKind::UpcodingPattern => "upcoding_pattern",
            FlagKind::LowStandardAdmission => "low_standard_admission",
            FlagKind::BedHanging => "bed_hanging",
        }
    }
}

/// One flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub kind: FlagKind,
    /// 0–1: how strongly the evidence points at a violation.
    pub score: Decimal,
    /// The case flagged (empty for a hospital pattern).
    pub case_id: String,
    /// The other case of a split admission.
    pub related_case_id: Option<String>,
    /// The hospital of the related case.
    pub related_hospital_id: Option<String>,
    pub hospital_id: String,
    pub group: String,
    /// The rule and the numbers, in words.
    pub evidence: String,
}

/// What the detectors need of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditCase {
    pub case_id: ShortText,
    pub hospital_id: ShortText,
    pub patient_id: Option<ShortText>,
    pub admission: Option<Date>,
    pub discharge: Option<Date>,
    pub los: Option<i64>,
    pub principal: ShortText,
    pub family: ShortText,
    pub group: ShortText,
    pub complication: Option<Severity>,
    pub cost: Option<Decimal>,
    pub group_mean_cost: Option<Decimal>,
    pub group_mean_los: Option<Decimal>,
    pub baseline_mean_cost: Option<Decimal>,
}

impl AuditCase {
    pub fn new(case: &Case, assessment: &Assessment) -> AuditCase {
        AuditCase {
            case_id: case.case_id.as_str().into(),
            hospital_id: case.hospital_id.as_deref().unwrap_or("").into(),
            patient_id: case.patient_id.as_deref().map(ShortText::from),
            admission: case.admission_date,
            discharge: case.discharge_date,
            los: case.los,
            principal: case.principal_diagnosis().unwrap_or("").into(),
            family: assessment.family.as_str().into(),
            group: assessment.group.as_str().into(),
            complication: assessment.complication,
            cost: case.total_cost,
            group_mean_cost: assessment.group_mean_cost,
            group_mean_los: assessment.group_mean_los,
            baseline_mean_cost: assessment.baseline_mean_cost,
        }
    }

    fn cost_ratio(&self) -> Option<Decimal> {
        match (self.cost, self.group_mean_cost) {
            (Some(cost), Some(mean)) if mean > Decimal::ZERO => Some(cost / mean),
            _ => None,
        }
    }
}

fn starts_with_any(text: &str, prefixes: &[String]) -> bool {
    !text.is_empty() && prefixes.iter().any(|p| text.starts_with(p.as_str()))
}

fn score(value: Decimal) -> Decimal {
    round_half_up(value.clamp(Decimal::ZERO, Decimal::ONE), 2)
}

fn ratio_text(value: Decimal) -> String {
    round_half_up(value, 2).normalize().to_string()
}

/// Single-case detectors (upcoding, low-standard admission, bed-hanging): also what a pre-check
/// can warn about from one case alone.
pub fn check_case(rules: &Audit, case: &AuditCase) -> Vec<Flag> {
    let mut flags = Vec::new();
    let flag = |kind, value: Decimal, evidence: String| Flag {
        kind,
        score: score(value),
        case_id: case.case_id.to_string(),
        related_case_id: None,
        related_hospital_id: None,
        hospital_id: case.hospital_id.to_string(),
        group: case.group.to_string(),
        evidence,
    };
    let Some(ratio) = case.cost_ratio() else { return flags };
    let mean = case.group_mean_cost.unwrap_or_default();
    let cost = case.cost.unwrap_or_default();

    if let Some(baseline) = case.baseline_mean_cost {
        if ratio <= rules.upcoding_max_cost_ratio && cost <= baseline * rules.upcoding_max_baseline_ratio {
            let lifted_by = match case.complication {
                Some(Severity::Mcc) => "an MCC secondary diagnosis",
                Some(Severity::Cc) => "a CC secondary diagnosis",
                None => "its procedures",
            };
            flags.push(flag(
                FlagKind::Upcoding,
                Decimal::ONE - ratio / rules.upcoding_max_cost_ratio / Decimal::TWO,
                format!(
                    "group {} (lifted by {lifted_by}) has mean cost {}; the case cost {} is {} of it (rule ≤ {}) and {} of the lower group's mean {} (rule ≤ {})",
                    case.group,
                    round_half_up(mean, 2),
                    cost,
                    ratio_text(ratio),
                    rules.upcoding_max_cost_ratio,
                    ratio_text(cost / baseline),
                    round_half_up(baseline, 2),
                    rules.upcoding_max_baseline_ratio
                ),
            ));
        }
    }

    let los = case.los.unwrap_or(0);
    // Cheapest tests first: the prefix list may be long.
    if los <= rules.low_standard_max_los
        && ratio <= rules.low_standard_max_cost_ratio
        && starts_with_any(&case.family, &rules.outpatient_family_prefixes)
    {
        flags.push(flag(
            FlagKind::LowStandardAdmission,
            Decimal::ONE - ratio / rules.low_standard_max_cost_ratio / Decimal::TWO,
            format!(
                "family {} is treatable as an outpatient; stay {los} days (rule ≤ {}), cost {} is {} of the group mean {} (rule ≤ {})",
                case.family,
                rules.low_standard_max_los,
                cost,
                ratio_text(ratio),
                round_half_up(mean, 2),
                rules.low_standard_max_cost_ratio
            ),
        ));
    }

    // The whole-day test first: most stays are short and need no decimal arithmetic.
    if let Some(mean_los) = case.group_mean_los.filter(|l| *l > Decimal::ZERO && los >= rules.bed_hanging_min_los) {
        let stay = Decimal::from(los);
        let long = stay >= mean_los * rules.bed_hanging_min_los_ratio;
        let daily = if los > 0 { cost / stay } else { cost };
        let mean_daily = mean / mean_los;
        if long && mean_daily > Decimal::ZERO && daily <= mean_daily * rules.bed_hanging_max_daily_cost_ratio {
            let daily_ratio = daily / mean_daily;
            flags.push(flag(
                FlagKind::BedHanging,
                Decimal::ONE - daily_ratio / rules.bed_hanging_max_daily_cost_ratio / Decimal::TWO,
                format!(
                    "stay {los} days is {} × the group mean {} (rule ≥ {}); daily cost {} is {} of the group's {} (rule ≤ {})",
                    ratio_text(stay / mean_los),
                    round_half_up(mean_los, 1),
                    rules.bed_hanging_min_los_ratio,
                    round_half_up(daily, 2),
                    ratio_text(daily_ratio),
                    round_half_up(mean_daily, 2),
                    rules.bed_hanging_max_daily_cost_ratio
                ),
            ));
        }
    }
    flags
}

/// Split admissions: a patient's stay readmitted within the window after an earlier one. One
/// pass on the calling thread; [`PatientStays`] splits the same work into shards for executors.
pub fn split_admissions(rules: &Audit, cases: &[AuditCase]) -> Vec<Flag> {
    split_admissions_in_parts(rules, &[cases])
}

/// [`split_admissions`] over cases held in several parts (the chunks of a large file), in part
/// order, without copying them into one slice.
pub fn split_admissions_in_parts(rules: &Audit, parts: &[&[AuditCase]]) -> Vec<Flag> {
    let mut stays = PatientStays::new(parts, 1);
    let mut flags = Vec::new();
    for shard in 0..stays.shard_count() {
        flags.extend(stays.scan(rules, shard));
    }
    flags
}

/// One dated stay: (hash of the patient id, patient id, admission, discharge, case index).
type Stay<'c> = (u64, &'c str, Date, Date, usize);

/// The dated stays of a period's cases, grouped by patient into shards by a hash of the patient
/// id. Shard `i` holds the patients whose hash falls in the `i`-th of `shards` equal hash ranges,
/// and each shard is scanned in (hash, patient, dates) order, so the shards' flags joined in
/// shard order are the flags of one pass, whatever the number of shards. Executors scan shards
/// on their own threads; this type starts none.
pub struct PatientStays<'c> {
    cases: Vec<&'c AuditCase>,
    shards: Vec<Vec<Stay<'c>>>,
}

impl<'c> PatientStays<'c> {
    pub fn new(parts: &[&'c [AuditCase]], shards: usize) -> PatientStays<'c> {
        let shard_count = shards.max(1);
        let cases: Vec<&AuditCase> = parts.iter().flat_map(|p| p.iter()).collect();
        let hash = |patient: &str| {
            use std::hash::{Hash, Hasher};
            let mut hasher = rustc_hash::FxHasher::default();
            patient.hash(&mut hasher);
            hasher.finish()
        };
        let mut shards: Vec<Vec<Stay<'c>>> = (0..shard_count).map(|_| Vec::new()).collect();
        for (i, c) in cases.iter().enumerate() {
            if let (Some(patient), Some(admission), Some(discharge)) = (c.patient_id.as_deref(), c.admission, c.discharge) {
                let h = hash(patient);
                // Monotonic in the hash: shard order is hash order.
                let shard = ((u128::from(h) * shard_count as u128) >> 64) as usize;
                shards[shard].push((h, patient, admission, discharge, i));
            }
        }
        PatientStays { cases, shards }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shards, each with what its scan needs, for executors that scan them on threads.
    pub fn shards_mut(&mut self) -> (&[&'c AuditCase], Vec<StayShard<'_, 'c>>) {
        (&self.cases, self.shards.iter_mut().map(|stays| StayShard { stays }).collect())
    }

    /// The split-admission flags of shard `shard`.
    pub fn scan(&mut self, rules: &Audit, shard: usize) -> Vec<Flag> {
        let (cases, mut shards) = self.shards_mut();
        shards.swap_remove(shard).scan(rules, cases)
    }
}

/// One shard of [`PatientStays`].
pub struct StayShard<'s, 'c> {
    stays: &'s mut Vec<Stay<'c>>,
}

impl StayShard<'_, '_> {
    /// The split-admission flags of this shard's patients, in (hash, patient, dates) order.
    pub fn scan(self, rules: &Audit, cases: &[&AuditCase]) -> Vec<Flag> {
        let window = rules.readmission_window_days;
        let planned = |c: &AuditCase| {
            starts_with_any(&c.family, &rules.planned_family_prefixes) || starts_with_any(&c.principal, &rules.planned_diagnosis_prefixes)
        };
        let stays = self.stays;
        // By patient (hash first, so most comparisons are one integer), then by date.
        stays.sort_unstable();
        let mut flags = Vec::new();
        for current in 0..stays.len() {
            let (_, patient, admission, _, second) = stays[current];
            // Every earlier stay of the patient discharged within the window (another admission
            // may lie between the two parts of a split stay); the strongest match makes the flag.
            let mut best: Option<Flag> = None;
            for &(_, earlier_patient, _, earlier_discharge, first) in stays[..current].iter().rev() {
                if earlier_patient != patient {
                    break;
                }
                let gap = i64::from(admission.days_since(earlier_discharge)).max(0);
                if gap > window || planned(cases[first]) || planned(cases[second]) {
                    continue;
                }
                if let Some(flag) = split_flag(cases[first], cases[second], patient, gap, window) {
                    if best.as_ref().is_none_or(|f| flag.score > f.score) {
                        best = Some(flag);
                    }
                }
            }
            flags.extend(best);
        }
        flags
    }
}

/// The split-admission flag for stay `b`, readmitted `gap` days after stay `a`, when related.
fn split_flag(a: &AuditCase, b: &AuditCase, patient: &str, gap: i64, window: i64) -> Option<Flag> {
    let same_family = !a.family.is_empty() && a.family == b.family;
    let same_category = a.principal.get(..3).is_some_and(|c| b.principal.get(..3) == Some(c));
    if !same_family && !same_category {
        return None;
    }
    let same_hospital = a.hospital_id == b.hospital_id;
    let same_principal = a.principal == b.principal;
    let closeness = Decimal::ONE - Decimal::from(gap) / Decimal::from(window + 1);
    // Two parts of one stay cost about one stay together; two real stays cost two.
    let combined = match (a.cost, b.cost, b.group_mean_cost) {
        (Some(x), Some(y), Some(mean)) if mean > Decimal::ZERO => Some((x + y) / mean),
        _ => None,
    };
    let mut value = Decimal::new(35, 2) + Decimal::new(25, 2) * closeness;
    if same_hospital {
        value += Decimal::new(15, 2);
    }
    if same_principal {
        value += Decimal::new(15, 2);
    }
    match combined {
        Some(c) if c <= Decimal::new(15, 1) => value += Decimal::new(1, 1),
        Some(c) if c >= Decimal::new(25, 1) => value -= Decimal::new(1, 1),
        _ => {}
    }
    if !same_family {
        value *= Decimal::new(8, 1);
    }
    let relation =
        if same_family { format!("same group family {}", a.family) } else { format!("same diagnosis category {}", &a.principal[..3]) };
    let hospitals = if same_hospital {
        format!("same hospital {}", a.hospital_id)
    } else {
        format!("hospital {} then {}", a.hospital_id, b.hospital_id)
    };
    let principal = if same_principal { format!("; same principal diagnosis {}", a.principal) } else { String::new() };
    let cost = combined.map(|c| format!("; together they cost {} × one stay of the group", ratio_text(c))).unwrap_or_default();
    Some(Flag {
        kind: FlagKind::SplitAdmission,
        score: score(value),
        case_id: b.case_id.to_string(),
        related_case_id: Some(a.case_id.to_string()),
        related_hospital_id: Some(a.hospital_id.to_string()),
        hospital_id: b.hospital_id.to_string(),
        group: b.group.to_string(),
        evidence: format!(
            "patient {patient} readmitted {gap} days after case {} was discharged (rule ≤ {window}); {relation}; {hospitals}{principal}{cost}",
            a.case_id
        ),
    })
}

/// Per family and hospital: cases and top-severity (MCC) cases, the input of the upcoding
/// pattern detector. Counted per chunk and merged, so a large file needs no second pass.
#[derive(Debug, Clone, Default)]
pub struct FamilyCounts {
    /// (family, hospital) → (cases, MCC cases).
    counts: rustc_hash::FxHashMap<FamilyHospital, (u64, u64)>,
}

/// (family, hospital).
type FamilyHospital = (ShortText, ShortText);

impl FamilyCounts {
    pub fn add(&mut self, case: &AuditCase) {
        if case.family.is_empty() {
            return;
        }
        let counts = self.counts.entry((case.family.clone(), case.hospital_id.clone())).or_default();
        counts.0 += 1;
        counts.1 += u64::from(case.complication == Some(Severity::Mcc));
    }

    pub fn merge(&mut self, other: FamilyCounts) {
        for (key, (count, top)) in other.counts {
            let c = self.counts.entry(key).or_default();
            c.0 += count;
            c.1 += top;
        }
    }

    /// Hospitals whose share of top-severity (MCC) cases in a family far exceeds the region's,
    /// by family, then hospital.
    pub fn flags(&self, rules: &Audit) -> Vec<Flag> {
        let mut all: Vec<(&FamilyHospital, &(u64, u64))> = self.counts.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut flags = Vec::new();
        for family_rows in all.chunk_by(|a, b| a.0 .0 == b.0 .0) {
            let family = &family_rows[0].0 .0;
            let (region_count, region_top) = family_rows.iter().fold((0, 0), |(n, t), (_, (c, x))| (n + c, t + x));
            for ((_, hospital), &(count, top)) in family_rows {
                if count < rules.pattern_min_cases || region_top == 0 {
                    continue;
                }
                let share = Decimal::from(top) / Decimal::from(count);
                let region_share = Decimal::from(region_top) / Decimal::from(region_count);
                if share >= region_share * rules.pattern_share_ratio && share - region_share >= Decimal::new(1, 1) {
                    flags.push(Flag {
                        kind: FlagKind::UpcodingPattern,
                        score: score(share - region_share),
                        case_id: String::new(),
                        related_case_id: None,
        related_hospital_id: None,
                        hospital_id: hospital.to_string(),
                        group: family.to_string(),
                        evidence: format!(
                            "{top} of {count} cases in family {family} carry an MCC ({}%), against {}% in the region ({region_top} of {region_count}); rule ≥ {} ×",
                            round_half_up(share * Decimal::from(100), 1),
                            round_half_up(region_share * Decimal::from(100), 1),
                            rules.pattern_share_ratio
                        ),
                    });
                }
            }
        }
        flags
    }
}

/// Hospitals whose share of top-severity (MCC) cases in a family far exceeds the region's.
pub fn upcoding_patterns(rules: &Audit, cases: &[AuditCase]) -> Vec<Flag> {
    let mut counts = FamilyCounts::default();
    for case in cases {
        counts.add(case);
    }
    counts.flags(rules)
}

/// All detectors over a period's cases: split admissions, then per-case flags in case order,
/// then hospital patterns.
pub fn audit(rules: &Audit, cases: &[AuditCase]) -> Vec<Flag> {
    let mut flags = split_admissions(rules, cases);
    for case in cases {
        flags.extend(check_case(rules, case));
    }
    flags.extend(upcoding_patterns(rules, cases));
    flags
}

/// Precision and recall of one detector against known violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Score {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

impl Score {
    pub fn precision(&self) -> Decimal {
        let flagged = self.true_positives + self.false_positives;
        if flagged == 0 {
            return Decimal::ZERO;
        }
        round_half_up(Decimal::from(self.true_positives) / Decimal::from(flagged), 4)
    }

    pub fn recall(&self) -> Decimal {
        let known = self.true_positives + self.false_negatives;
        if known == 0 {
            return Decimal::ZERO;
        }
        round_half_up(Decimal::from(self.true_positives) / Decimal::from(known), 4)
    }
}

/// The minimum score at which a detector's flags are scored against known violations: split
/// admissions on high-confidence flags (≥ 0.8), the other detectors on every flag.
pub fn scoring_threshold(kind: FlagKind) -> Decimal {
    if kind == FlagKind::SplitAdmission {
        Decimal::new(8, 1)
    } else {
        Decimal::ZERO
    }
}

/// Precision and recall per detector against known violations (case id, kind name), each at its
/// [`scoring_threshold`].
pub fn detector_scores(flags: &[Flag], known: &[(String, String)]) -> BTreeMap<FlagKind, Score> {
    let mut scores = score_flags(flags, known, Decimal::ZERO);
    for (kind, score) in scores.iter_mut() {
        let threshold = scoring_threshold(*kind);
        if threshold > Decimal::ZERO {
            if let Some(s) = score_flags(flags, known, threshold).get(kind) {
                *score = *s;
            }
        }
    }
    scores
}

/// The family prefixes of a list with one per line (blank lines ignored), as `dipdrg gen`
/// writes them next to generated cases, to add to a policy's outpatient families.
pub fn family_prefixes(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string)
}

/// Scores flags with `score ≥ min_score` against known violations (case id, kind name).
pub fn score_flags(flags: &[Flag], known: &[(String, String)], min_score: Decimal) -> BTreeMap<FlagKind, Score> {
    use std::collections::HashSet;
    let mut scores = BTreeMap::new();
    for kind in [FlagKind::SplitAdmission, FlagKind::Upcoding, FlagKind::LowStandardAdmission, FlagKind::BedHanging] {
        let truth: HashSet<&str> = known.iter().filter(|(_, k)| k == kind.as_str()).map(|(id, _)| id.as_str()).collect();
        let flagged: HashSet<&str> = flags.iter().filter(|f| f.kind == kind && f.score >= min_score).map(|f| f.case_id.as_str()).collect();
        let true_positives = flagged.intersection(&truth).count() as u64;
        scores.insert(
            kind,
            Score {
                true_positives,
                false_positives: flagged.len() as u64 - true_positives,
                false_negatives: truth.len() as u64 - true_positives,
            },
        );
    }
    scores
}

//! Synthetic discharges for any DRG table set: realistic enough to exercise grouping, pricing,
//! settlement and audit at city scale, and deterministic for a seed.
//!
//! Cases are built from the table set's own ADRG rules (a principal diagnosis from the rule's
//! list, procedures that satisfy it, sex/age/newborn fields its MDC needs), so every generated
//! case is groupable by construction and the case mix follows the scheme. Hospitals have levels
//! and sizes; costs are log-normal per group, scaled by level and complication; some patients
//! come back (readmissions). A known fraction of violation patterns is injected and recorded, so
//! that audit detectors can be scored:
//! - `split_admission` (分解住院): one stay cut into two admissions a few days apart;
//! - `upcoding` (高套): an MCC secondary diagnosis added without the cost that goes with it;
//! - `low_standard_admission` (低标入院): a 1–2 day stay at a fraction of the group cost;
//! - `bed_hanging` (挂床住院): a stay three times as long at a very low daily cost.
//!
//! Randomness is a seeded xoshiro256** stream; floats are used only to draw numbers, and money is
//! converted to exact fen at once.

use crate::case::{Case, Date, Fund};
use crate::drg::tables::{CodeId, DrgTableSet, ListId, RuleConditions};
use crate::drg::{group, GroupStatus, MappingMode, NoTrace};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::VecDeque;

/// xoshiro256** seeded through SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng { state: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Log-normal with median 1 and the given sigma.
    pub fn lognormal(&mut self, sigma: f64) -> f64 {
        (self.normal() * sigma).exp()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// The kind of an injected violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    SplitAdmission,
    Upcoding,
    LowStandardAdmission,
    BedHanging,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 4] =
        [ViolationKind::SplitAdmission, ViolationKind::Upcoding, ViolationKind::LowStandardAdmission, ViolationKind::BedHanging];

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::SplitAdmission => "split_admission",
            ViolationKind::Upcoding => "upcoding",
            ViolationKind::LowStandardAdmission => "low_standard_admission",
            ViolationKind::BedHanging => "bed_hanging",
        }
    }

    pub fn parse(text: &str) -> Option<ViolationKind> {
        ViolationKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// An injected violation, as written to the side file.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedViolation {
    pub case_id: String,
    pub kind: ViolationKind,
    /// The other case of a split admission.
    pub related_case_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub cases: u64,
    pub hospitals: usize,
    pub year: i32,
    pub seed: u64,
    /// Share of cases that carry an injected violation.
    pub violation_rate: f64,
    /// Prefix of case ids (e.g. `C2026`).
    pub case_prefix: String,
}

/// A hospital of the synthetic region.
#[derive(Debug, Clone)]
pub struct SyntheticHospital {
    pub id: String,
    /// "3", "2" or "1".
    pub level: &'static str,
    cost_factor: f64,
}

struct Template {
    rule: usize,
    principal: Vec<CodeId>,
    principal_procedure: Vec<CodeId>,
    extra_procedures: Vec<Vec<CodeId>>,
    extra_diagnoses: Vec<Vec<CodeId>>,
    sex: Option<i64>,
    newborn: Option<(i64, Option<i64>, Option<i64>)>,
    base_cost: f64,
    base_los: f64,
}

/// Streams synthetic cases.
pub struct Generator<'t> {
    tables: &'t DrgTableSet,
    options: Options,
    rng: Rng,
    templates: Vec<Template>,
    cumulative_weight: Vec<f64>,
    hospitals: Vec<SyntheticHospital>,
    hospital_weight: Vec<f64>,
    mcc_codes: Vec<CodeId>,
    cc_codes: Vec<CodeId>,
    produced: u64,
    queue: VecDeque<(Case, Option<InjectedViolation>)>,
    year_start: Date,
}

fn identity_mapped(tables: &DrgTableSet, codes: &[CodeId], diagnosis: bool) -> Vec<CodeId> {
    codes
        .iter()
        .copied()
        .filter(|&c| if diagnosis { tables.map_diagnosis(c) == Some(c) } else { tables.map_procedure(c) == Some(c) })
        .collect()
}

fn list_codes(tables: &DrgTableSet, list: Option<ListId>) -> Vec<CodeId> {
    list.map(|l| tables.lists[l.0 as usize].codes.clone()).unwrap_or_default()
}

/// Deterministic 0..1 from a text (for per-group parameters that do not depend on draw order).
fn text_unit(text: &str, salt: u64) -> f64 {
    use std::hash::Hasher;
    // FNV-1a with the offset basis salted.
    let mut hasher = fnv::FnvHasher::with_key(0xcbf2_9ce4_8422_2325 ^ salt);
    hasher.write(text.as_bytes());
    Rng::new(hasher.finish()).unit()
}

impl<'t> Generator<'t> {
    pub fn new(tables: &'t DrgTableSet, options: Options) -> Generator<'t> {
        let mut rng = Rng::new(options.seed);
        let unreachable: std::collections::HashSet<String> =
            crate::drg::lint::lint(tables).into_iter().filter(|f| f.is_unreachable() && f.entry_kind == "rule").map(|f| f.entry).collect();
        // Principal diagnoses for rules that do not constrain it (pre-MDC procedures): any code an
        // MDC takes by its principal diagnosis.
        let mut any_principal: Vec<CodeId> = Vec::new();
        for mdc in &tables.mdcs {
            if mdc.entry.sex.is_none() && mdc.entry.age_years_eq.is_none() && !mdc.entry.multi_trauma {
                any_principal.extend(identity_mapped(tables, &list_codes(tables, mdc.entry.pdx_list), true));
            }
        }
        any_principal.sort_unstable();
        any_principal.dedup();
        let mut templates = Vec::new();
        for (rule_index, rule) in tables.rules.iter().enumerate() {
            if unreachable.contains(&rule.rule) {
                continue;
            }
            if let Some(template) = Generator::template(tables, rule_index, &rule.conditions, &any_principal) {
                templates.push(template);
            }
        }
        let mut cumulative_weight = Vec::with_capacity(templates.len());
        let mut total = 0.0;
        for template in &templates {
            let code = &tables.adrgs[tables.rules[template.rule].adrg].code;
            let surgical = !template.principal_procedure.is_empty();
            total += (text_unit(code, 7) * 3.0).exp() * if surgical { 0.5 } else { 1.0 };
            cumulative_weight.push(total);
        }
        let width = options.hospitals.max(1).to_string().len().max(3);
        let hospitals: Vec<SyntheticHospital> = (0..options.hospitals.max(1))
            .map(|i| {
                let share = i as f64 / options.hospitals.max(1) as f64;
                let (level, cost_factor) = if share < 0.1 {
                    ("3", 1.15)
                } else if share < 0.45 {
                    ("2", 1.0)
                } else {
                    ("1", 0.8)
                };
                SyntheticHospital { id: format!("H{:0width$}", i + 1), level, cost_factor }
            })
            .collect();
        let hospital_weight = hospitals
            .iter()
            .scan(0.0, |sum, h| {
                *sum += match h.level {
                    "3" => 8.0,
                    "2" => 3.0,
                    _ => 1.0,
                } * (0.5 + rng.unit());
                Some(*sum)
            })
            .collect();
        let mut mcc_codes = Vec::new();
        let mut cc_codes = Vec::new();
        for id in 1..tables.code_count() {
            let code = CodeId(id as u32);
            if tables.map_diagnosis(code) != Some(code) {
                continue;
            }
            let info = tables.info(code);
            if info.mcc_table().is_some() {
                mcc_codes.push(code);
            } else if info.cc_table().is_some() {
                cc_codes.push(code);
            }
        }
        let year_start = Date::from_ymd(options.year, 1, 1).unwrap_or(Date::from_ymd(2026, 1, 1).unwrap_or_else(|| unreachable!()));
        Generator {
            tables,
            options,
            rng,
            templates,
            cumulative_weight,
            hospitals,
            hospital_weight,
            mcc_codes,
            cc_codes,
            produced: 0,
            queue: VecDeque::new(),
            year_start,
        }
    }

    fn template(tables: &DrgTableSet, rule_index: usize, c: &RuleConditions, any_principal: &[CodeId]) -> Option<Template> {
        let rule = &tables.rules[rule_index];
        let mdc = &tables.mdcs[rule.mdc];
        let mut principal = identity_mapped(tables, &list_codes(tables, c.pdx_list), true);
        if let Some(entry_list) = mdc.entry.pdx_list {
            let entry_codes = &tables.lists[entry_list.0 as usize].codes;
            if principal.is_empty() {
                principal = identity_mapped(tables, entry_codes, true);
            } else {
                principal.retain(|p| entry_codes.binary_search(p).is_ok());
            }
        }
        if principal.is_empty() {
            principal = identity_mapped(tables, &list_codes(tables, c.any_dx_list.or(mdc.entry.any_dx_list)), true);
        }
        if principal.is_empty() && mdc.entry.pdx_list.is_none() && c.pdx_list.is_none() {
            principal = any_principal.to_vec();
        }
        let mut principal_procedure = identity_mapped(tables, &list_codes(tables, c.pproc_list), false);
        if c.pproc_or || mdc.entry.pproc_or {
            principal_procedure.retain(|&p| tables.info(p).is_or_procedure());
        }
        let mut extra_procedures = Vec::new();
        for list in [c.any_proc_list, c.any_proc_list2].into_iter().flatten() {
            extra_procedures.push(identity_mapped(tables, &list_codes(tables, Some(list)), false));
        }
        if let Some((list, alternatives)) = &c.proc_tags {
            let needed = alternatives.first().copied().unwrap_or(0);
            for tag in 1..32u8 {
                if needed & (1 << tag) != 0 {
                    let codes: Vec<CodeId> =
                        list_codes(tables, Some(*list)).into_iter().filter(|&p| tables.info(p).tag_in(*list) == Some(tag)).collect();
                    extra_procedures.push(identity_mapped(tables, &codes, false));
                }
            }
        }
        let mut extra_diagnoses = Vec::new();
        for list in [c.any_dx_list, c.secondary_dx_list].into_iter().flatten() {
            extra_diagnoses.push(identity_mapped(tables, &list_codes(tables, Some(list)), true));
        }
        if principal.is_empty() || extra_procedures.iter().any(Vec::is_empty) || extra_diagnoses.iter().any(Vec::is_empty) {
            return None;
        }
        if (c.pproc_list.is_some() || c.pproc_or || mdc.entry.pproc_or) && principal_procedure.is_empty() {
            return None;
        }
        if c.no_or_proc {
            extra_procedures.clear();
        }
        let newborn =
            if mdc.entry.age_years_eq == Some(0) || c.max_age_days.is_some() || c.weight_min.is_some() || c.weight_max_excl.is_some() {
                Some((c.max_age_days.unwrap_or(28).min(28), c.weight_min, c.weight_max_excl))
            } else {
                None
            };
        let code = &tables.adrgs[rule.adrg].code;
        let surgical = !principal_procedure.is_empty();
        let base_cost = if surgical { 25_000.0 + 55_000.0 * text_unit(code, 1) } else { 4_000.0 + 12_000.0 * text_unit(code, 1) };
        let base_los = if surgical { 7.0 + 10.0 * text_unit(code, 2) } else { 4.0 + 8.0 * text_unit(code, 2) };
        Some(Template {
            rule: rule_index,
            principal,
            principal_procedure,
            extra_procedures,
            extra_diagnoses,
            sex: mdc.entry.sex,
            newborn,
            base_cost,
            base_los,
        })
    }

    /// The synthetic region's hospitals (for writing a policy's hospital table).
    pub fn hospitals(&self) -> &[SyntheticHospital] {
        &self.hospitals
    }

    fn pick_weighted(rng: &mut Rng, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let target = rng.unit() * total;
        cumulative.partition_point(|&w| w <= target).min(cumulative.len().saturating_sub(1))
    }

    fn money(yuan: f64) -> Decimal {
        Decimal::new((yuan.max(0.01) * 100.0).round() as i64, 2)
    }

    fn next_id(&mut self) -> String {
        self.produced += 1;
        format!("{}{:09}", self.options.case_prefix, self.produced)
    }

    /// Whether a template's cases could be treated as outpatients: medical, with a low cost.
    fn outpatient_treatable(template: &Template) -> bool {
        template.principal_procedure.is_empty() && template.extra_procedures.is_empty() && template.base_cost < 9_000.0
    }

    /// The group families (ADRGs) where low-standard admissions are injected: medical families
    /// with a low cost, treatable as outpatients. An audit policy names these.
    pub fn outpatient_families(&self) -> Vec<String> {
        let mut families: Vec<String> = self
            .templates
            .iter()
            .filter(|t| Generator::outpatient_treatable(t))
            .map(|t| self.tables.adrgs[self.tables.rules[t.rule].adrg].code.clone())
            .collect();
        families.sort();
        families.dedup();
        families
    }

    fn base_case(&mut self, outpatient_only: bool) -> (Case, f64) {
        let rng = &mut self.rng;
        let tables = self.tables;
        let mut index = Generator::pick_weighted(rng, &self.cumulative_weight);
        if outpatient_only {
            let eligible: Vec<usize> = (0..self.templates.len()).filter(|&i| Generator::outpatient_treatable(&self.templates[i])).collect();
            if let Some(&chosen) = rng.pick(&eligible) {
                index = chosen;
            }
        }
        let template = &self.templates[index];
        let hospital = &self.hospitals[Generator::pick_weighted(rng, &self.hospital_weight)];
        let text = |c: &CodeId| tables.code_text(*c).to_string();
        let mut diagnoses = vec![rng.pick(&template.principal).map(text).unwrap_or_default()];
        for list in &template.extra_diagnoses {
            diagnoses.push(rng.pick(list).map(text).unwrap_or_default());
        }
        let mut procedures: Vec<String> = rng.pick(&template.principal_procedure).map(text).into_iter().collect();
        for list in &template.extra_procedures {
            procedures.push(rng.pick(list).map(text).unwrap_or_default());
        }
        let mut cost_factor = hospital.cost_factor;
        if rng.chance(0.12) {
            if let Some(code) = rng.pick(&self.mcc_codes) {
                diagnoses.push(text(code));
                cost_factor *= 1.6;
            }
        } else if rng.chance(0.25) {
            if let Some(code) = rng.pick(&self.cc_codes) {
                diagnoses.push(text(code));
                cost_factor *= 1.25;
            }
        }
        let patient_number = rng.below((self.options.cases as usize / 2).max(10));
        let patient_unit = text_unit(&patient_number.to_string(), 11);
        let (age, age_days, birth_weight) = match template.newborn {
            Some((max_days, weight_min, weight_max)) => {
                let low = weight_min.unwrap_or(1000);
                let high = weight_max.unwrap_or(4500).max(low + 1);
                (0, Some(rng.below(max_days as usize + 1) as i64), Some(low + rng.below((high - low) as usize) as i64))
            }
            None => (1 + (patient_unit * 89.0) as i64, None, None),
        };
        let sex = template.sex.unwrap_or(1 + (patient_unit * 1000.0) as i64 % 2);
        let los = ((template.base_los * rng.lognormal(0.4)).round() as i64).clamp(1, 120);
        let cost = template.base_cost * cost_factor * rng.lognormal(0.45);
        // Discharged within the year (settlement periods go by discharge date).
        let discharge = self.year_start.add_days(rng.below(365) as i32);
        let admission = discharge.add_days(-(los as i32));
        let fund = if rng.chance(0.4) { Fund::Employee } else { Fund::Resident };
        let total_cost = Generator::money(cost);
        let reimbursed = match fund {
            Fund::Employee => 0.82,
            Fund::Resident => 0.66,
        } * (0.9 + 0.1 * rng.unit());
        let fund_paid = (Generator::money(cost * reimbursed)).min(total_cost);
        let case = Case {
            case_id: String::new(),
            hospital_id: Some(hospital.id.clone()),
            patient_id: Some(format!("P{patient_number:09}")),
            fund: Some(fund),
            sex: Some(sex),
            age: Some(age),
            age_days,
            birth_weight,
            admission_date: Some(admission),
            discharge_date: Some(discharge),
            los: Some(los),
            icu_hours: None,
            disposition: Some(if rng.chance(0.01) { 5 } else { 1 }),
            department: None,
            diagnoses,
            procedures,
            total_cost: Some(total_cost),
            fund_paid: Some(fund_paid),
            patient_paid: Some(total_cost - fund_paid),
            insured_region: None,
            benefit: None,
        };
        (case, template.base_cost * hospital.cost_factor)
    }

    fn set_cost(case: &mut Case, cost: f64) {
        let total = Generator::money(cost);
        let ratio = match (case.total_cost, case.fund_paid) {
            (Some(t), Some(f)) if !t.is_zero() => f / t,
            _ => Decimal::new(7, 1),
        };
        let fund_paid = (total * ratio).round_dp(2).min(total);
        case.total_cost = Some(total);
        case.fund_paid = Some(fund_paid);
        case.patient_paid = Some(total - fund_paid);
    }

    fn set_stay(case: &mut Case, admission: Date, los: i64) {
        case.admission_date = Some(admission);
        case.discharge_date = Some(admission.add_days(los as i32));
        case.los = Some(los);
    }

    /// Produces the next batch (one case, or two for a split admission) into the queue.
    fn refill(&mut self) {
        let violating = self.rng.chance(self.options.violation_rate);
        let kind = ViolationKind::ALL[self.rng.below(ViolationKind::ALL.len())];
        let (mut case, group_cost) = self.base_case(violating && kind == ViolationKind::LowStandardAdmission);
        case.case_id = self.next_id();
        // Only groupable cases carry violations, so that detection can be judged on them.
        let grouped = group(self.tables, &case, MappingMode::Map, &mut NoTrace).status == GroupStatus::Success;
        if !grouped || !violating {
            self.queue.push_back((case, None));
            return;
        }
        if kind == ViolationKind::SplitAdmission && self.produced + 1 > self.options.cases {
            self.queue.push_back((case, None));
            return;
        }
        let record =
            |case_id: &str, related: Option<String>| InjectedViolation { case_id: case_id.to_string(), kind, related_case_id: related };
        match kind {
            ViolationKind::SplitAdmission => {
                let los = case.los.unwrap_or(4).max(4);
                let admission = case.admission_date.unwrap_or(self.year_start);
                let first_los = (los / 2).max(1);
                let gap = 1 + self.rng.below(5) as i64;
                let cost = case.total_cost.and_then(|c| c.to_f64()).unwrap_or(group_cost);
                let mut second = case.clone();
                Generator::set_stay(&mut case, admission, first_los);
                Generator::set_cost(&mut case, cost * 0.55);
                Generator::set_stay(&mut second, admission.add_days((first_los + gap) as i32), (los - first_los).max(1));
                Generator::set_cost(&mut second, cost * 0.5);
                second.case_id = self.next_id();
                let violation = record(&second.case_id, Some(case.case_id.clone()));
                self.queue.push_back((case, None));
                self.queue.push_back((second, Some(violation)));
            }
            ViolationKind::Upcoding => {
                if let Some(code) = self.rng.pick(&self.mcc_codes) {
                    case.diagnoses.push(self.tables.code_text(*code).to_string());
                }
                let cost = group_cost * self.rng.lognormal(0.2) * 0.8;
                Generator::set_cost(&mut case, cost);
                let violation = record(&case.case_id, None);
                self.queue.push_back((case, Some(violation)));
            }
            ViolationKind::LowStandardAdmission => {
                let admission = case.admission_date.unwrap_or(self.year_start);
                Generator::set_stay(&mut case, admission, 1 + self.rng.below(2) as i64);
                let cost = group_cost * (0.1 + 0.15 * self.rng.unit());
                Generator::set_cost(&mut case, cost);
                let violation = record(&case.case_id, None);
                self.queue.push_back((case, Some(violation)));
            }
            ViolationKind::BedHanging => {
                let admission = case.admission_date.unwrap_or(self.year_start);
                let los = (case.los.unwrap_or(5) * 3).max(15);
                Generator::set_stay(&mut case, admission, los);
                let cost = group_cost * (0.6 + 0.2 * self.rng.unit());
                Generator::set_cost(&mut case, cost);
                let violation = record(&case.case_id, None);
                self.queue.push_back((case, Some(violation)));
            }
        }
    }
}

impl Iterator for Generator<'_> {
    type Item = (Case, Option<InjectedViolation>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.templates.is_empty() {
            return None;
        }
        if self.queue.is_empty() {
            if self.produced >= self.options.cases {
                return None;
            }
            self.refill();
        }
        self.queue.pop_front()
    }
}

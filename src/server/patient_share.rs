//! PreCheckCase's estimated patient share: the request's stay and year-to-date figures mapped to
//! the one-bill benefits engine ([`crate::benefits::settle_patient`], one discharge) under the service's
//! benefits policy, and the layers mapped back. No rules here; the engine owns them.

use super::proto;
use super::AppState;
use crate::benefits::{settle_patient, Discharge, YearToDate};
use crate::case::Case;
use crate::units::format_yuan;
use rust_decimal::Decimal;
use std::str::FromStr;

fn not_estimated(reason: impl Into<String>) -> proto::PatientShareEstimate {
    proto::PatientShareEstimate { estimated: false, reason: reason.into(), ..Default::default() }
}

/// A decimal field of the request; empty is `default`.
fn amount(field: &str, text: &str, default: Decimal) -> Result<Decimal, String> {
    if text.trim().is_empty() {
        return Ok(default);
    }
    Decimal::from_str(text.trim()).map_err(|_| format!("field {field}: {text:?} is not a decimal number"))
}

/// The estimated patient share of `case` as the next discharge after the request's year-to-date
/// figures; never an error: what cannot be estimated is answered with `estimated = false` and
/// the reason, beside the pre-check's other results.
pub fn estimate(state: &AppState, request: &proto::PreCheckCaseRequest, case: &Case) -> proto::PatientShareEstimate {
    let Some(policy) = state.benefits.as_deref() else {
        return not_estimated("no benefits policy is configured (config key benefits_policy)");
    };
    match discharge_and_prior(state, request, case) {
        Err(reason) => not_estimated(reason),
        Ok((discharge, prior)) => match settle_patient(policy, &prior, std::slice::from_ref(&discharge), false) {
            Err(error) => not_estimated(error.to_string()),
            Ok(year) => {
                let Some(s) = year.settlements.into_iter().next() else { return not_estimated("no discharge settled") };
                proto::PatientShareEstimate {
                    estimated: true,
                    reason: String::new(),
                    benefits_policy: format!("{} {} {}", policy.region, policy.year, policy.fund),
                    admission_order: s.admission_order,
                    deductible: format_yuan(s.deductible),
                    basic: format_yuan(s.basic),
                    catastrophic: format_yuan(s.catastrophic),
                    subsidy: format_yuan(s.subsidy),
                    assistance: format_yuan(s.assistance),
                    patient_covered: format_yuan(s.patient_covered),
                    self_paid: format_yuan(s.self_paid),
                    patient_total: format_yuan(s.patient_total),
                    warnings: s.warnings,
                }
            }
        },
    }
}

fn discharge_and_prior(state: &AppState, request: &proto::PreCheckCaseRequest, case: &Case) -> Result<(Discharge, YearToDate), String> {
    let total = case.total_cost.ok_or("field case.total_cost: required for the estimate")?;
    let covered = amount("covered_cost", &request.covered_cost, total)?;
    if covered > total {
        return Err(format!("field covered_cost: {covered} exceeds case.total_cost {total}"));
    }
    let discharge_date = case.discharge_date.ok_or("field case.discharge_date: required for the estimate")?;
    let hospital_kind = if request.hospital_kind.is_empty() {
        let snapshot = state.versions.active();
        let hospital = case.hospital_id.as_deref().unwrap_or_default();
        snapshot
            .policy()
            .hospitals
            .get(hospital)
            .map(|h| h.level.clone())
            .ok_or_else(|| format!("field hospital_kind: empty, and hospital {hospital:?} has no level in the region policy"))?
    } else {
        request.hospital_kind.clone()
    };
    let given = request.year_to_date.clone().unwrap_or_default();
    let prior = YearToDate {
        admissions: given.admissions,
        basic_paid: amount("year_to_date.basic_paid", &given.basic_paid, Decimal::ZERO)?,
        personal_burden: amount("year_to_date.personal_burden", &given.personal_burden, Decimal::ZERO)?,
        catastrophic_paid: amount("year_to_date.catastrophic_paid", &given.catastrophic_paid, Decimal::ZERO)?,
        subsidy_paid: amount("year_to_date.subsidy_paid", &given.subsidy_paid, Decimal::ZERO)?,
        assistance_paid: amount("year_to_date.assistance_paid", &given.assistance_paid, Decimal::ZERO)?,
        out_of_pocket: amount("year_to_date.out_of_pocket", &given.out_of_pocket, Decimal::ZERO)?,
        covered_cost: Decimal::ZERO,
    };
    let discharge = Discharge {
        case_id: case.case_id.clone(),
        patient_id: case.patient_id.clone().unwrap_or_default(),
        discharge_date,
        hospital_kind,
        covered_cost: covered,
        self_paid: total - covered,
        category: request.person_category.clone(),
    };
    Ok((discharge, prior))
}

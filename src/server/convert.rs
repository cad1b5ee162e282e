//! Messages ↔ core types, and errors → statuses with google.rpc field details.

use super::proto;
use crate::case::{Case, Date, Fund};
use rust_decimal::Decimal;
use std::str::FromStr;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A field error in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub description: String,
}

impl FieldError {
    fn new(field: &str, description: impl Into<String>) -> FieldError {
        FieldError { field: format!("case.{field}"), description: description.into() }
    }
}

impl From<&FieldError> for proto::FieldViolation {
    fn from(e: &FieldError) -> proto::FieldViolation {
        proto::FieldViolation { field: e.field.clone(), description: e.description.clone() }
    }
}

/// INVALID_ARGUMENT with a google.rpc.BadRequest listing every field error.
pub fn invalid_argument(message: &str, errors: &[FieldError]) -> Status {
    let mut details = ErrorDetails::new();
    for e in errors {
        details.add_bad_request_violation(e.field.clone(), e.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// INVALID_ARGUMENT about one field, its description as the message.
pub fn invalid_field(field: &str, description: String) -> Status {
    invalid_argument(&description, &[FieldError { field: field.into(), description: description.clone() }])
}

/// The domain of the `google.rpc.ErrorInfo` every coded error carries.
pub const ERROR_DOMAIN: &str = "dipdrg.v1";

/// INVALID_ARGUMENT naming one field, with the error's stable code as `ErrorInfo.reason`.
pub fn coded_invalid_argument(code: &str, field: &str, description: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field, description);
    details.set_error_info(code, ERROR_DOMAIN, std::collections::HashMap::new());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), details)
}

fn money(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    if text.is_empty() {
        return None;
    }
    match Decimal::from_str(text) {
        Ok(v) if v.is_sign_negative() && !v.is_zero() => {
            errors.push(FieldError::new(field, format!("{text:?} is negative")));
            None
        }
        Ok(v) if v.scale() > 2 => {
            errors.push(FieldError::new(field, format!("{text:?} has more than 2 decimals")));
            None
        }
        Ok(v) if v > crate::case::MAX_AMOUNT => {
            errors.push(FieldError::new(field, format!("{text:?} is above the largest amount a case may hold (1000000000 yuan)")));
            None
        }
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(FieldError::new(field, format!("{text:?} is not a decimal amount")));
            None
        }
    }
}

fn date(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<Date> {
    if text.is_empty() {
        return None;
    }
    let parsed = Date::parse(text);
    if parsed.is_none() {
        errors.push(FieldError::new(field, format!("{text:?} is not a date (YYYY-MM-DD)")));
    }
    parsed
}

fn count(field: &str, value: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i64> {
    if value.is_some_and(|v| v < 0) {
        errors.push(FieldError::new(field, "is negative"));
        return None;
    }
    value
}

fn icu_hours(value: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let value = count("icu_hours", value, errors)?;
    if value > crate::case::MAX_ICU_HOURS {
        errors.push(FieldError::new("icu_hours", format!("is more than {} hours", crate::case::MAX_ICU_HOURS)));
        return None;
    }
    Some(value)
}

/// A message case → a core case, with every field error (the same rules as the CSV reader).
pub fn case_from_proto(message: &proto::Case) -> Result<Case, Vec<FieldError>> {
    let mut errors = Vec::new();
    if message.case_id.is_empty() {
        errors.push(FieldError::new("case_id", "is empty"));
    }
    if message.diagnoses.is_empty() {
        errors.push(FieldError::new("diagnoses", "is empty: a case needs a principal diagnosis"));
    }
    let fund = match proto::Fund::try_from(message.fund) {
        Ok(proto::Fund::Employee) => Some(Fund::Employee),
        Ok(proto::Fund::Resident) => Some(Fund::Resident),
        Ok(proto::Fund::Unspecified) => None,
        Err(_) => {
            errors.push(FieldError::new("fund", format!("{} is not a fund", message.fund)));
            None
        }
    };
    let admission_date = date("admission_date", &message.admission_date, &mut errors);
    let discharge_date = date("discharge_date", &message.discharge_date, &mut errors);
    let mut los = count("los", message.los, &mut errors);
    if let (Some(a), Some(d)) = (admission_date, discharge_date) {
        let days = d.days_since(a);
        if days < 0 {
            errors.push(FieldError::new("discharge_date", format!("is before admission_date {a}")));
        } else if los.is_none() {
            los = Some(i64::from(days.max(1)));
        }
    }
    let total_cost = money("total_cost", &message.total_cost, &mut errors);
    let fund_paid = money("fund_paid", &message.fund_paid, &mut errors);
    let patient_paid = money("patient_paid", &message.patient_paid, &mut errors);
    if let (Some(t), Some(f), Some(p)) = (total_cost, fund_paid, patient_paid) {
        if f + p > t {
            errors.push(FieldError::new("fund_paid", format!("plus patient_paid {p} exceeds total_cost {t}")));
        }
    }
    let case = Case {
        case_id: message.case_id.clone(),
        hospital_id: Some(message.hospital_id.clone()).filter(|h| !h.is_empty()),
        patient_id: Some(message.patient_id.clone()).filter(|p| !p.is_empty()),
        fund,
        sex: message.sex,
        age: count("age", message.age, &mut errors),
        age_days: count("age_days", message.age_days, &mut errors),
        birth_weight: count("birth_weight", message.birth_weight, &mut errors),
        admission_date,
        discharge_date,
        los,
        icu_hours: icu_hours(message.icu_hours, &mut errors),
        disposition: count("disposition", message.disposition, &mut errors),
        department: Some(message.department.clone()).filter(|d| !d.is_empty()),
        diagnoses: message.diagnoses.clone(),
        procedures: message.procedures.clone(),
        total_cost,
        fund_paid,
        patient_paid,
        insured_region: None,
        benefit: None,
    };
    for (field, reason) in crate::case::bound_problems(&case) {
        errors.push(FieldError::new(field, reason));
    }
    if errors.is_empty() {
        Ok(case)
    } else {
        Err(errors)
    }
}

/// A core case → its message.
pub fn case_to_proto(case: &Case) -> proto::Case {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let money = |v: Option<Decimal>| v.map(|d| d.to_string()).unwrap_or_default();
    proto::Case {
        case_id: case.case_id.clone(),
        hospital_id: text(&case.hospital_id),
        patient_id: text(&case.patient_id),
        fund: match case.fund {
            Some(Fund::Employee) => proto::Fund::Employee as i32,
            Some(Fund::Resident) => proto::Fund::Resident as i32,
            None => proto::Fund::Unspecified as i32,
        },
        sex: case.sex,
        age: case.age,
        age_days: case.age_days,
        birth_weight: case.birth_weight,
        admission_date: case.admission_date.map(|d| d.to_string()).unwrap_or_default(),
        discharge_date: case.discharge_date.map(|d| d.to_string()).unwrap_or_default(),
        los: case.los,
        icu_hours: case.icu_hours,
        disposition: case.disposition,
        department: text(&case.department),
        diagnoses: case.diagnoses.clone(),
        procedures: case.procedures.clone(),
        total_cost: money(case.total_cost),
        fund_paid: money(case.fund_paid),
        patient_paid: money(case.patient_paid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(icu_hours: Option<i64>) -> proto::Case {
        proto::Case { case_id: "C1".into(), diagnoses: vec!["K35.800".into()], icu_hours, ..Default::default() }
    }

    #[test]
    fn icu_hours_are_checked_like_the_other_numbers_and_round_trip() {
        let case = case_from_proto(&message(Some(130))).expect("valid");
        assert_eq!(case.icu_hours, Some(130));
        assert_eq!(case_to_proto(&case).icu_hours, Some(130));
        assert_eq!(case_from_proto(&message(None)).expect("valid").icu_hours, None);
        for (bad, description) in [(-1, "is negative"), (crate::case::MAX_ICU_HOURS + 1, "is more than 87672 hours")] {
            let errors = case_from_proto(&message(Some(bad))).expect_err("rejected");
            assert_eq!(errors, vec![FieldError { field: "case.icu_hours".into(), description: description.into() }]);
        }
    }
}

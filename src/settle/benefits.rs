//! `settle --benefits`: a pre-pass that fills each case's empty `patient_paid` with the patient's
//! share computed by the one-bill benefits engine ([`crate::benefits`]), before either executor
//! reads the cases. It only rewrites that field; the executors and their rules are untouched.
//!
//! Per case it reads `case_id`, `patient_id`, `hospital_id`, `discharge_date` and `total_cost`,
//! and optionally `covered_cost` (政策范围内费用; empty or absent: the whole `total_cost`; the rest is
//! self-paid), `hospital_kind` (empty or absent: the hospital's `level` in the region policy) and
//! `category` (the person's assistance category, 特困, 低保…; empty: ordinary). Every case the
//! engine can settle feeds its person's year-to-date figures, whether or not its `patient_paid` is
//! given; `patient_paid` is filled with the patient's total (covered share + self-paid) only where
//! it is empty, and then an empty `fund_paid` with what the insurance layers pay (basic +
//! catastrophic + subsidy + assistance), so that the two add up to `total_cost`; a `fund_paid`
//! given is kept (the reader refuses it if it no longer fits, naming the field). A case the
//! engine cannot settle (no patient id, an unknown hospital kind or category, a cost not to the
//! fen, a date outside the benefits year) is left as it is, so an empty `patient_paid` is still
//! refused (CASE_FIELD_REQUIRED) by admission.

use crate::benefits::{check_discharge, settle_year_fast, BenefitsError, BenefitsPolicy, Discharge};
use crate::case::Date;
use crate::policy::Policy;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The case file with `patient_paid` filled where it was empty and the engine could compute it.
#[derive(Debug)]
pub struct Filled {
    /// The CSV text (header included).
    pub text: Vec<u8>,
    /// Cases whose `patient_paid` was filled.
    pub filled: u64,
    /// Cases with an empty `patient_paid` the engine could not settle (left empty).
    pub left_empty: u64,
}

/// A record's field at a column, trimmed; empty when the column or the field is absent.
fn field(record: &csv::StringRecord, at: Option<usize>) -> &str {
    at.and_then(|i| record.get(i)).map(str::trim).unwrap_or("")
}

fn csv_error(error: impl std::fmt::Display) -> BenefitsError {
    BenefitsError::Parse(format!("case file: {error}"))
}

/// Fills empty `patient_paid` fields of the case CSV `text` (see the module documentation),
/// settling the year's discharges on `threads` threads. The result does not depend on `threads`.
pub fn fill_patient_paid(region: &Policy, benefits: &BenefitsPolicy, text: &[u8], threads: usize) -> Result<Filled, BenefitsError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let mut header = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let [case_id, patient_id, hospital_id, discharge_date, total_cost, covered_cost, hospital_kind, category] =
        ["case_id", "patient_id", "hospital_id", "discharge_date", "total_cost", "covered_cost", "hospital_kind", "category"].map(column);
    let patient_paid = column("patient_paid");
    let fund_paid = column("fund_paid");
    let mut records = Vec::new();
    for record in reader.records() {
        records.push(record.map_err(csv_error)?);
    }

    // The discharges the engine can settle, and the record each came from.
    let mut discharges = Vec::new();
    let mut source_record = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let amount = |at: Option<usize>| Decimal::from_str(field(record, at)).ok();
        let (Some(total), Some(date)) = (amount(total_cost), Date::parse(field(record, discharge_date))) else { continue };
        let patient = field(record, patient_id);
        if patient.is_empty() {
            continue;
        }
        let covered = if field(record, covered_cost).is_empty() { Some(total) } else { amount(covered_cost) };
        let Some(covered) = covered.filter(|c| *c <= total) else { continue };
        let kind = match field(record, hospital_kind) {
            "" => match region.hospitals.get(field(record, hospital_id)) {
                Some(hospital) => hospital.level.clone(),
                None => continue,
            },
            kind => kind.to_string(),
        };
        let discharge = Discharge {
            case_id: field(record, case_id).to_string(),
            patient_id: patient.to_string(),
            discharge_date: date,
            hospital_kind: kind,
            covered_cost: covered,
            self_paid: total - covered,
            category: field(record, category).to_string(),
        };
        if check_discharge(benefits, &discharge).is_ok() {
            discharges.push(discharge);
            source_record.push(index);
        }
    }
    let year = settle_year_fast(benefits, &BTreeMap::new(), &discharges, threads)?;

    let paid_at = match patient_paid {
        Some(at) => at,
        None => {
            header.push_field("patient_paid");
            for record in &mut records {
                record.push_field("");
            }
            header.len() - 1
        }
    };
    // Per record: (patient total, what the insurance layers pay).
    let mut computed: Vec<Option<(Decimal, Decimal)>> = vec![None; records.len()];
    for (_, rows) in year.patients() {
        for row in rows {
            let insurance = row.basic + row.catastrophic + row.subsidy + row.assistance;
            computed[source_record[row.input as usize]] =
                Some((Decimal::from_i128_with_scale(row.patient_total() as i128, 2), Decimal::from_i128_with_scale(insurance as i128, 2)));
        }
    }
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::with_capacity(text.len() + text.len() / 8));
    writer.write_record(&header).map_err(csv_error)?;
    let (mut filled, mut left_empty) = (0, 0);
    for (record, computed) in records.iter().zip(computed) {
        if record.len() <= paid_at || !field(record, Some(paid_at)).is_empty() {
            left_empty += u64::from(record.len() <= paid_at);
            writer.write_record(record).map_err(csv_error)?;
            continue;
        }
        let Some((patient_amount, insurance_amount)) = computed else {
            left_empty += 1;
            writer.write_record(record).map_err(csv_error)?;
            continue;
        };
        filled += 1;
        let patient_amount = crate::units::format_yuan(patient_amount);
        let insurance_amount = crate::units::format_yuan(insurance_amount);
        let fund_empty = field(record, fund_paid).is_empty();
        let fields = record.iter().enumerate().map(|(i, value)| match i {
            i if i == paid_at => patient_amount.as_str(),
            i if Some(i) == fund_paid && fund_empty => insurance_amount.as_str(),
            _ => value,
        });
        writer.write_record(fields).map_err(csv_error)?;
    }
    let text = writer.into_inner().map_err(|e| csv_error(e.error()))?;
    Ok(Filled { text, filled, left_empty })
}

//! The reference executor: a run on one thread, in the plainest code that states the rules.
//!
//! Every record in input order: read, admitted ([`super::settle_case`]), checked against the ids
//! admitted before it; totals summed case by case; the statements concluded; each statement's
//! gross split over its cases. The parallel executor must produce exactly what this one does
//! (`tests/settle_engine.rs` proves it on the demo data and on randomly perturbed inputs).

use super::{
    conclude, id_hash, note_seen, push_amount, refuse_over_quota, repeated, settle_case, unknown_annotations, Application, CaseLines,
    Outcome, Prepared, Rejected, Request, SeenIds, SettleError,
};
use crate::case::{Case, Fund};
use crate::io::case_csv::RejectedRecord;
use crate::settlement::{totals_by_month, SettlementCase};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// The `cases.csv` lines, complete with their amounts.
pub struct ReferenceLines(pub Vec<u8>);

impl CaseLines for ReferenceLines {
    fn to_bytes(&self) -> Vec<u8> {
        self.0.clone()
    }

    fn write_at(&self, file: &std::fs::File, offset: u64) -> std::io::Result<()> {
        super::parallel::write_at(file, &self.0, offset)
    }
}

/// Settles `records` (each a case, or the reason it could not be read) under `request`.
pub fn run(
    request: &Request<'_>,
    records: impl IntoIterator<Item = Result<Case, RejectedRecord>>,
) -> Result<Outcome<ReferenceLines>, SettleError> {
    let prepared = Prepared::new(request);
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut settled: Vec<SettlementCase> = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    // Special-review applications: (index in `settled`, case id, the case without its review).
    let mut applications: Vec<(usize, String, Box<Application>)> = Vec::new();
    // Admitted case ids and the record that brought each.
    let mut admitted: HashMap<String, u64> = HashMap::new();
    let mut submitted = 0u64;
    // The records that annotations name, for the warnings about the ones that name none.
    let mut seen = SeenIds::default();
    for record in records {
        submitted += 1;
        let case = match record {
            Ok(case) => case,
            Err(unreadable) => {
                if let Some(id) = unreadable.case_id.as_deref() {
                    note_seen(&mut seen, request.annotations, id, None);
                }
                rejected.push(Rejected {
                    record: submitted,
                    case_id: unreadable.case_id.unwrap_or_default(),
                    field: unreadable.field,
                    value: unreadable.value,
                    reason: unreadable.reason,
                    code: super::rejection_code::UNREADABLE,
                });
                continue;
            }
        };
        note_seen(&mut seen, request.annotations, &case.case_id, case.hospital_id.as_deref());
        let mut row = String::new();
        let case_settled = match settle_case(&prepared, &case, id_hash(&case.case_id), &mut row) {
            Ok(case_settled) => case_settled,
            Err(refusal) => {
                rejected.push(refusal.into_rejected(submitted, &case.case_id));
                continue;
            }
        };
        if let Some(&first) = admitted.get(&case.case_id) {
            rejected.push(repeated(&case.case_id, first).into_rejected(submitted, &case.case_id));
            continue;
        }
        admitted.insert(case.case_id.clone(), submitted);
        if let Some(application) = case_settled.application {
            applications.push((settled.len(), case.case_id.clone(), application));
        }
        settled.push(case_settled.case);
        rows.push(row);
    }
    let accepted = settled.len() as u64;
    if accepted + rejected.len() as u64 != submitted {
        return Err(SettleError::Unbalanced { accepted, rejected: rejected.len() as u64, submitted });
    }
    // The quota: applications over it are refused, their cases settled without the review.
    let mut warnings = unknown_annotations(request.annotations, &seen);
    let monthly_totals = totals_by_month(&[&settled]);
    let keys: Vec<(u32, u8, &str, &str)> = applications
        .iter()
        .map(|(index, id, _)| {
            let case = &settled[*index];
            (case.hospital, case.month, id.as_str(), prepared.hospital_ids[case.hospital as usize].as_str())
        })
        .collect();
    let refusals = refuse_over_quota(request.policy, &monthly_totals, &keys);
    for ((index, _, application), refusal) in applications.into_iter().zip(refusals) {
        if let Some(warning) = refusal {
            settled[index] = application.unreviewed;
            rows[index] = application.row;
            warnings.push(warning);
        }
    }
    warnings.sort();
    let mut monthly_totals = totals_by_month(&[&settled]);
    monthly_totals.retain(|_, t| t.cases > 0);
    let statements = conclude(&prepared, monthly_totals)?;

    // Each statement's gross split over its cases in input order, by counted points.
    let mut weights: BTreeMap<(u32, Fund), Vec<Decimal>> = BTreeMap::new();
    for case in &settled {
        weights.entry((case.hospital, case.fund)).or_default().push(case.counted_points());
    }
    let mut amounts: BTreeMap<(u32, Fund), std::vec::IntoIter<i64>> = BTreeMap::new();
    for (statement, gross) in statements.gross_by_statement() {
        let split = super::split_over_cases(crate::settlement::fen(gross), weights.get(&statement).map_or(&[][..], Vec::as_slice));
        amounts.insert(statement, split.into_iter());
    }
    let mut lines = String::new();
    for (case, row) in settled.iter().zip(&rows) {
        let amount = amounts.get_mut(&(case.hospital, case.fund)).and_then(Iterator::next).unwrap_or(0);
        lines.push_str(row);
        push_amount(&mut lines, amount, case);
    }
    Ok(Outcome {
        submitted,
        accepted,
        rejected,
        statements,
        hospital_ids: prepared.hospital_ids,
        cases: ReferenceLines(lines.into_bytes()),
        warnings,
    })
}

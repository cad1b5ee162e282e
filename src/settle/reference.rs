//! The reference executor: a run on one thread, in the plainest code that states the rules.
//!
//! Every record in input order: read, admitted ([`super::settle_case`]), checked against the ids
//! admitted before it; totals summed case by case; the statements concluded; each statement's
//! gross split over its cases. The parallel executor must produce exactly what this one does
//! (`tests/settle_engine.rs` proves it on the demo data and on randomly perturbed inputs).

use super::{conclude, id_hash, push_amount, repeated, settle_case, CaseLines, Outcome, Prepared, Rejected, Request, SettleError};
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
    let mut applications = vec![0u64; prepared.hospital_ids.len()];
    // Admitted case ids and the record that brought each.
    let mut admitted: HashMap<String, u64> = HashMap::new();
    let mut submitted = 0u64;
    for record in records {
        submitted += 1;
        let case = match record {
            Ok(case) => case,
            Err(unreadable) => {
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
        if case_settled.review_applied {
            applications[case_settled.case.hospital as usize] += 1;
        }
        settled.push(case_settled.case);
        rows.push(row);
    }
    let accepted = settled.len() as u64;
    if accepted + rejected.len() as u64 != submitted {
        return Err(SettleError::Unbalanced { accepted, rejected: rejected.len() as u64, submitted });
    }
    let mut monthly_totals = totals_by_month(&[&settled]);
    monthly_totals.retain(|_, t| t.cases > 0);
    let statements = conclude(&prepared, monthly_totals, &applications)?;

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
        push_amount(&mut lines, amount);
    }
    Ok(Outcome {
        submitted,
        accepted,
        rejected,
        statements,
        hospital_ids: prepared.hospital_ids,
        cases: ReferenceLines(lines.into_bytes()),
    })
}

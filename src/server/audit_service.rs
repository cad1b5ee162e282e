//! AuditService: the period detectors over the stored cases, with the active policy's
//! thresholds. Flags are computed on request, in the detectors' fixed order (split admissions,
//! single-case flags in case order, hospital patterns), and paged by position; they are
//! suggestions only — ReviewService confirms violations.

use super::auth::{role, Role};
use super::convert::{coded_invalid_argument, invalid_field};
use super::paging::{decode_token, encode_token, page_size, task_failed, unavailable};
use super::proto::{self, audit_service_server::AuditService};
use super::AppState;
use crate::audit_run;
use crate::io::case_csv::parse_case_row;
use crate::settle::{Mode, Period};
use rust_decimal::Decimal;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct Audits {
    pub state: Arc<AppState>,
}

/// Every flag of the period at or above `min_score`, and the number of cases audited: the stored
/// cases of the period through the audit engine's reference executor.
fn flags_of_period(state: &AppState, year: i32, month: Option<u32>, min_score: Decimal) -> Result<(Vec<proto::AuditFlag>, i64), Status> {
    let snapshot = state.versions.active();
    let policy = snapshot.policy();
    let mut cases = Vec::new();
    crate::store::for_each_case(state.store.as_ref(), |row| {
        let Ok(case) = parse_case_row(&row.row) else { return };
        if case.discharge_date.is_some_and(|d| d.in_period(year, month)) {
            cases.push(Ok(case));
        }
    })
    .map_err(unavailable)?;
    let outcome = audit_run::reference(policy, &snapshot.scorer, cases);
    let case_name =
        |hospital: &str, case_id: &str| if case_id.is_empty() { String::new() } else { format!("hospitals/{hospital}/cases/{case_id}") };
    let flags = outcome
        .flags
        .into_iter()
        .filter(|f| f.score >= min_score)
        .map(|f| proto::AuditFlag {
            kind: f.kind.as_str().into(),
            score: f.score.to_string(),
            case: case_name(&f.hospital_id, &f.case_id),
            related_case: f
                .related_case_id
                .as_deref()
                .map(|r| case_name(f.related_hospital_id.as_deref().unwrap_or(""), r))
                .unwrap_or_default(),
            hospital_id: f.hospital_id,
            group: f.group,
            evidence: f.evidence,
        })
        .collect();
    Ok((flags, outcome.audited as i64))
}

#[tonic::async_trait]
impl AuditService for Audits {
    async fn audit_cases(&self, request: Request<proto::AuditCasesRequest>) -> Result<Response<proto::AuditCasesResponse>, Status> {
        if role(&request)? != Role::FundOffice {
            return Err(Status::permission_denied("only a fund-office token may audit: flags link stays across hospitals"));
        }
        let request = request.into_inner();
        // A month (`YYYY-MM`) or a year (`YYYY`), through the one period parser.
        let mode = if request.period.contains('-') { Mode::Monthly } else { Mode::Annual };
        let Period { year, month } =
            Period::parse(mode, &request.period).map_err(|e| coded_invalid_argument(e.code(), "period", &e.to_string()))?;
        let min_score = match request.min_score.as_str() {
            "" => Decimal::ZERO,
            text => text
                .parse::<Decimal>()
                .ok()
                .filter(|s| *s >= Decimal::ZERO && *s <= Decimal::ONE)
                .ok_or_else(|| invalid_field("min_score", format!("{text:?} is not a decimal from 0 to 1")))?,
        };
        let size = page_size(request.page_size)?;
        let start = match decode_token(&request.page_token)? {
            None => 0,
            Some(position) => position.parse::<usize>().map_err(|_| Status::invalid_argument("bad page_token"))?,
        };
        let state = self.state.clone();
        let (flags, cases) =
            tokio::task::spawn_blocking(move || flags_of_period(&state, year, month, min_score)).await.map_err(task_failed)??;
        let end = (start + size).min(flags.len());
        let next_page_token = if end < flags.len() { encode_token(&end.to_string()) } else { String::new() };
        let flags = flags.into_iter().skip(start).take(end.saturating_sub(start)).collect();
        Ok(Response::new(proto::AuditCasesResponse { flags, next_page_token, cases }))
    }
}

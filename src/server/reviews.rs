//! ReviewService: confirmed violations and special-review decisions, per case. Only what is
//! recorded here (or given to `dipdrg settle`) reaches settlement: audit flags never do by
//! themselves.

use super::auth::{role, Role};
use super::convert::invalid_field;
use super::idempotency::{begin, Begin};
use super::paging::{decode_case_token, encode_case_token, page_size, parent_hospital, task_failed, unavailable};
use super::proto::{self, review_service_server::ReviewService};
use super::AppState;
use crate::store::{now_rfc3339, Annotation};
use prost::Message;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct Reviews {
    pub state: Arc<AppState>,
}

pub const VIOLATION: &str = "violation";
pub const DECISION: &str = "decision";

/// `hospitals/{h}/cases/{c}` → (h, c).
fn case_name(field: &str, name: &str) -> Result<(String, String), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["hospitals", h, "cases", c] if !h.is_empty() && !c.is_empty() => Ok((h.to_string(), c.to_string())),
        _ => Err(invalid_field(field, format!("{name:?} is not hospitals/{{hospital_id}}/cases/{{case_id}}"))),
    }
}

fn fund_office(role: &Role) -> Result<(), Status> {
    if *role == Role::FundOffice {
        return Ok(());
    }
    Err(Status::permission_denied("only a fund-office token may record violations and review decisions"))
}

impl Reviews {
    /// The stored case must exist: a decision about a case the fund never received is an error.
    async fn require_case(&self, hospital: &str, case_id: &str) -> Result<(), Status> {
        let (store, h, c) = (self.state.store.clone(), hospital.to_string(), case_id.to_string());
        let found = tokio::task::spawn_blocking(move || store.get_case(&h, &c)).await.map_err(task_failed)?.map_err(unavailable)?;
        found.map(|_| ()).ok_or_else(|| Status::failed_precondition(format!("hospitals/{hospital}/cases/{case_id} has not been ingested")))
    }

    /// Stores an annotation under the caller's idempotency key for its create method: the earlier
    /// answer when the key was used before.
    async fn put(
        &self,
        role: &Role,
        kind: &'static str,
        request_id: &str,
        hospital: String,
        case_id: String,
        record: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, Status> {
        let method = if kind == VIOLATION { "CreateViolation" } else { "CreateSpecialReviewDecision" };
        let claimed = match begin(&self.state.store, role, method, request_id).await? {
            Some(Begin::Earlier(answer)) => return Ok(Some(answer)),
            Some(Begin::Fresh(claimed)) => Some(claimed),
            None => None,
        };
        let (store, stored) = (self.state.store.clone(), record.clone());
        tokio::task::spawn_blocking(move || store.put_annotation(kind, &hospital, &case_id, &stored))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        if let Some(claimed) = claimed {
            claimed.complete(record).await;
        }
        Ok(None)
    }

    async fn list(
        &self,
        role: &Role,
        request: proto::ListAnnotationsRequest,
        kind: &'static str,
    ) -> Result<(Vec<Annotation>, String), Status> {
        let hospital = parent_hospital(role, &request.parent)?;
        let size = page_size(request.page_size)?;
        let after = decode_case_token(&request.page_token)?;
        let store = self.state.store.clone();
        let rows = tokio::task::spawn_blocking(move || {
            store.list_annotations(kind, hospital.as_deref(), after.as_ref().map(|(h, c)| (h.as_str(), c.as_str())), size + 1)
        })
        .await
        .map_err(task_failed)?
        .map_err(unavailable)?;
        let more = rows.len() > size;
        let rows: Vec<Annotation> = rows.into_iter().take(size).collect();
        let token = if more { rows.last().map(|(h, c, _)| encode_case_token(h, c)).unwrap_or_default() } else { String::new() };
        Ok((rows, token))
    }
}

#[tonic::async_trait]
impl ReviewService for Reviews {
    async fn create_violation(&self, request: Request<proto::CreateViolationRequest>) -> Result<Response<proto::Violation>, Status> {
        let role = role(&request)?;
        fund_office(&role)?;
        let request = request.into_inner();
        let mut violation = request.violation.ok_or_else(|| invalid_field("violation", "is required".into()))?;
        let (hospital, case_id) = case_name("violation.case", &violation.case)?;
        if violation.kind.is_empty() {
            return Err(invalid_field("violation.kind", "is required (e.g. split_admission)".into()));
        }
        self.require_case(&hospital, &case_id).await?;
        violation.name = format!("{}/violation", violation.case);
        violation.create_time = now_rfc3339();
        let earlier = self.put(&role, VIOLATION, &request.request_id, hospital, case_id, violation.encode_to_vec()).await?;
        match earlier {
            Some(bytes) => Ok(Response::new(proto::Violation::decode(&bytes[..]).map_err(|e| Status::data_loss(e.to_string()))?)),
            None => Ok(Response::new(violation)),
        }
    }

    async fn list_violations(
        &self,
        request: Request<proto::ListAnnotationsRequest>,
    ) -> Result<Response<proto::ListViolationsResponse>, Status> {
        let role = role(&request)?;
        let (rows, next_page_token) = self.list(&role, request.into_inner(), VIOLATION).await?;
        let violations = rows
            .iter()
            .map(|(_, _, b)| proto::Violation::decode(&b[..]).map_err(|e| Status::data_loss(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(proto::ListViolationsResponse { violations, next_page_token }))
    }

    async fn create_special_review_decision(
        &self,
        request: Request<proto::CreateSpecialReviewDecisionRequest>,
    ) -> Result<Response<proto::SpecialReviewDecision>, Status> {
        let role = role(&request)?;
        fund_office(&role)?;
        let request = request.into_inner();
        let mut decision = request.decision.ok_or_else(|| invalid_field("decision", "is required".into()))?;
        let (hospital, case_id) = case_name("decision.case", &decision.case)?;
        // The engine's reading of a decision, so a run never meets one it cannot use.
        let text = match proto::ReviewDecision::try_from(decision.decision) {
            Ok(proto::ReviewDecision::Approved) => "approved",
            Ok(proto::ReviewDecision::Rejected) => "rejected",
            _ => return Err(invalid_field("decision.decision", "must be APPROVED or REJECTED".into())),
        };
        if let Err((field, reason)) = crate::settle::Review::parse(Some(&hospital), text, &decision.reviewed_points) {
            return Err(invalid_field(&format!("decision.{field}"), reason));
        }
        self.require_case(&hospital, &case_id).await?;
        decision.name = format!("{}/specialReview", decision.case);
        decision.create_time = now_rfc3339();
        let earlier = self.put(&role, DECISION, &request.request_id, hospital, case_id, decision.encode_to_vec()).await?;
        match earlier {
            Some(bytes) => {
                Ok(Response::new(proto::SpecialReviewDecision::decode(&bytes[..]).map_err(|e| Status::data_loss(e.to_string()))?))
            }
            None => Ok(Response::new(decision)),
        }
    }

    async fn list_special_review_decisions(
        &self,
        request: Request<proto::ListAnnotationsRequest>,
    ) -> Result<Response<proto::ListSpecialReviewDecisionsResponse>, Status> {
        let role = role(&request)?;
        let (rows, next_page_token) = self.list(&role, request.into_inner(), DECISION).await?;
        let decisions = rows
            .iter()
            .map(|(_, _, b)| proto::SpecialReviewDecision::decode(&b[..]).map_err(|e| Status::data_loss(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(proto::ListSpecialReviewDecisionsResponse { decisions, next_page_token }))
    }
}

//! CaseService: ingestion (a client stream with a status per record), lookup and paged listing.
//!
//! Idempotency: a case is keyed by (hospital, case id). Re-submitting it with other content
//! replaces the stored version (REPLACED); with the same content changes nothing (UNCHANGED); it is
//! never stored twice. An upload with a `request_id` seen before returns the first answer.

use super::auth::role;
use super::convert::{case_from_proto, case_to_proto, FieldError};
use super::metrics::Metrics;
use super::paging::{self, task_failed, unavailable};
use super::proto::{self, case_service_server::CaseService};
use super::AppState;
use crate::io::case_csv::{case_row, parse_case_row};
use crate::store::{now_rfc3339, NewCase, PutOutcome, StoredCaseRow};
use prost::Message;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

pub struct Cases {
    pub state: Arc<AppState>,
}

const BATCH: usize = 2000;

fn stored_case(row: StoredCaseRow) -> Result<proto::StoredCase, Status> {
    let case = parse_case_row(&row.row)
        .map_err(|e| Status::data_loss(format!("stored case {}/{} cannot be read: {e}", row.hospital_id, row.case_id)))?;
    Ok(proto::StoredCase {
        name: format!("hospitals/{}/cases/{}", row.hospital_id, row.case_id),
        case: Some(case_to_proto(&case)),
        update_time: row.updated_at,
    })
}

#[tonic::async_trait]
impl CaseService for Cases {
    async fn ingest_cases(
        &self,
        request: Request<Streaming<proto::IngestCasesRequest>>,
    ) -> Result<Response<proto::IngestCasesResponse>, Status> {
        let role = role(&request)?;
        let mut incoming = request.into_inner();
        let store = self.state.store.clone();
        let mut response = proto::IngestCasesResponse::default();
        let mut request_id = String::new();
        let mut pending_indexes: Vec<i64> = Vec::new();
        let mut pending: Vec<NewCase> = Vec::new();
        let mut index: i64 = 0;
        let flush = |indexes: Vec<i64>, cases: Vec<NewCase>, response: &mut proto::IngestCasesResponse, outcomes: Vec<PutOutcome>| {
            for ((index, case), outcome) in indexes.into_iter().zip(cases).zip(outcomes) {
                let status = match outcome {
                    PutOutcome::Accepted => {
                        response.accepted += 1;
                        proto::RecordStatus::Accepted
                    }
                    PutOutcome::Replaced => {
                        response.replaced += 1;
                        proto::RecordStatus::Replaced
                    }
                    PutOutcome::Unchanged => {
                        response.unchanged += 1;
                        proto::RecordStatus::Unchanged
                    }
                };
                response.results.push(proto::RecordResult {
                    index,
                    case_id: case.case_id,
                    status: status as i32,
                    field_violations: Vec::new(),
                });
            }
        };
        // One batch is stored on the blocking pool while the next is decoded and checked.
        type Stored = (Vec<i64>, Vec<NewCase>, Result<Vec<PutOutcome>, crate::store::StoreError>);
        let mut in_flight: Option<tokio::task::JoinHandle<Stored>> = None;
        let store_batch = |indexes: Vec<i64>, cases: Vec<NewCase>| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                let outcomes = store.put_cases(&cases, &now_rfc3339());
                (indexes, cases, outcomes)
            })
        };
        while let Some(message) = incoming.next().await {
            let message = message?;
            if request_id.is_empty() && !message.request_id.is_empty() {
                request_id = message.request_id.clone();
                let store = store.clone();
                let id = request_id.clone();
                let previous =
                    tokio::task::spawn_blocking(move || store.find_request(&id)).await.map_err(task_failed)?.map_err(unavailable)?;
                if let Some(bytes) = previous {
                    let earlier = proto::IngestCasesResponse::decode(&bytes[..]).map_err(|e| Status::data_loss(e.to_string()))?;
                    return Ok(Response::new(earlier));
                }
            }
            response.submitted += 1;
            let this = index;
            index += 1;
            let checked = match &message.case {
                None => Err(vec![FieldError { field: "case".into(), description: "is required".into() }]),
                Some(case) => case_from_proto(case),
            }
            .and_then(|case| match &case.hospital_id {
                None => Err(vec![FieldError { field: "case.hospital_id".into(), description: "is required to store a case".into() }]),
                Some(h) if !role.may_access(h) => Err(vec![FieldError {
                    field: "case.hospital_id".into(),
                    description: format!("permission denied: this token may not submit for {h}"),
                }]),
                Some(_) => Ok(case),
            });
            match checked {
                Err(errors) => {
                    response.rejected += 1;
                    response.results.push(proto::RecordResult {
                        index: this,
                        case_id: message.case.as_ref().map(|c| c.case_id.clone()).unwrap_or_default(),
                        status: proto::RecordStatus::Rejected as i32,
                        field_violations: errors.iter().map(proto::FieldViolation::from).collect(),
                    });
                }
                Ok(case) => {
                    let hospital_id = case.hospital_id.clone().unwrap_or_default();
                    pending_indexes.push(this);
                    pending.push(NewCase { hospital_id, case_id: case.case_id.clone(), row: case_row(&case) });
                }
            }
            if pending.len() >= BATCH {
                if let Some(previous) = in_flight.take() {
                    let (indexes, cases, outcomes) = previous.await.map_err(task_failed)?;
                    flush(indexes, cases, &mut response, outcomes.map_err(unavailable)?);
                }
                in_flight = Some(store_batch(std::mem::take(&mut pending_indexes), std::mem::take(&mut pending)));
            }
        }
        if let Some(previous) = in_flight.take() {
            let (indexes, cases, outcomes) = previous.await.map_err(task_failed)?;
            flush(indexes, cases, &mut response, outcomes.map_err(unavailable)?);
        }
        if !pending.is_empty() {
            let (indexes, cases, outcomes) = store_batch(pending_indexes, pending).await.map_err(task_failed)?;
            flush(indexes, cases, &mut response, outcomes.map_err(unavailable)?);
        }
        response.results.sort_by_key(|r| r.index);
        let metrics = &self.state.metrics;
        Metrics::add(&metrics.ingest_streams, 1);
        Metrics::add(&metrics.ingest_accepted, response.accepted as u64);
        Metrics::add(&metrics.ingest_replaced, response.replaced as u64);
        Metrics::add(&metrics.ingest_unchanged, response.unchanged as u64);
        Metrics::add(&metrics.ingest_rejected, response.rejected as u64);
        debug_assert_eq!(response.accepted + response.replaced + response.unchanged + response.rejected, response.submitted);
        if !request_id.is_empty() {
            let bytes = response.encode_to_vec();
            let id = request_id.clone();
            tokio::task::spawn_blocking(move || store.save_request(&id, &bytes)).await.map_err(task_failed)?.map_err(unavailable)?;
        }
        Ok(Response::new(response))
    }

    async fn get_case(&self, request: Request<proto::GetCaseRequest>) -> Result<Response<proto::StoredCase>, Status> {
        let role = role(&request)?;
        let name = request.into_inner().name;
        let parts: Vec<&str> = name.split('/').collect();
        let ["hospitals", hospital, "cases", case_id] = parts.as_slice() else {
            return Err(Status::invalid_argument(format!("name {name:?} is not hospitals/{{hospital_id}}/cases/{{case_id}}")));
        };
        role.check(hospital)?;
        let (store, hospital, case_id) = (self.state.store.clone(), hospital.to_string(), case_id.to_string());
        let row =
            tokio::task::spawn_blocking(move || store.get_case(&hospital, &case_id)).await.map_err(task_failed)?.map_err(unavailable)?;
        let row = row.ok_or_else(|| Status::not_found(format!("{name} does not exist")))?;
        Ok(Response::new(stored_case(row)?))
    }

    async fn list_cases(&self, request: Request<proto::ListCasesRequest>) -> Result<Response<proto::ListCasesResponse>, Status> {
        let role = role(&request)?;
        let request = request.into_inner();
        let hospital = paging::parent_hospital(&role, &request.parent)?;
        let page_size = paging::page_size(request.page_size)?;
        let after = paging::decode_case_token(&request.page_token)?;
        if let (Some((token_hospital, _)), Some(h)) = (&after, &hospital) {
            if token_hospital != h {
                return Err(Status::invalid_argument("page_token belongs to another listing"));
            }
        }
        let store = self.state.store.clone();
        let rows = tokio::task::spawn_blocking(move || {
            let after_ref = after.as_ref().map(|(h, c)| (h.as_str(), c.as_str()));
            store.list_cases(hospital.as_deref(), after_ref, page_size + 1)
        })
        .await
        .map_err(task_failed)?
        .map_err(unavailable)?;
        let more = rows.len() > page_size;
        let rows: Vec<StoredCaseRow> = rows.into_iter().take(page_size).collect();
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => paging::encode_case_token(&last.hospital_id, &last.case_id),
            _ => String::new(),
        };
        let cases = rows.into_iter().map(stored_case).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(proto::ListCasesResponse { cases, next_page_token }))
    }
}

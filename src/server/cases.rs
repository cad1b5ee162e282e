//! CaseService: ingestion (a client stream with a status per record), lookup and paged listing.
//!
//! Idempotency: a case is keyed by (hospital, case id). Re-submitting it with other content
//! replaces the stored version (REPLACED); with the same content changes nothing (UNCHANGED); it is
//! never stored twice. An upload's `request_id` is a key of the caller's (see
//! [`super::idempotency`]): an upload with a key seen before returns the first answer, and a
//! concurrent one waits for it.
//!
//! Each record is decoded on its own ([`IngestFrame`]): a record that cannot be decoded (invalid
//! UTF-8, a malformed case) is REJECTED with a field violation and the stream goes on. When the
//! stream itself fails at record N (another hospital's case, a message over the size limit, the
//! client's error), every valid record before N is stored and none from N on; the status says N
//! (`ErrorInfo.metadata["stored_before_index"]`). A storage failure says the same of the first
//! record of the batch that failed.

use super::auth::{role, Role};
use super::convert::{case_from_proto, case_to_proto, FieldError};
use super::errors::{coded, too_large_is_resource_exhausted, with_metadata};
use super::idempotency::{begin_draining, Begin, Claimed};
use super::metrics::Metrics;
use super::paging::{self, task_failed, unavailable};
use super::proto::{self, case_service_server::CaseService};
use super::AppState;
use crate::io::case_csv::{case_row, parse_case_row};
use crate::store::{now_rfc3339, NewCase, PutOutcome, StoreError, StoredCaseRow};
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

pub struct Cases {
    pub state: Arc<AppState>,
}

/// Records stored per transaction. Each commit writes the pages it changed to the WAL, so
/// larger batches write less per record (README, Benchmarks).
const BATCH: usize = 8192;

/// The method name of uploads in idempotency keys.
pub const INGEST_METHOD: &str = "IngestCases";

/// One `IngestCasesRequest` as it comes off the wire, its case still encoded: the server decodes
/// uploads with this message (same field numbers and wire types) so that one undecodable record
/// does not end the stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IngestFrame {
    #[prost(bytes = "vec", tag = "1")]
    pub request_id: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub case: Option<Vec<u8>>,
    #[prost(bool, tag = "3")]
    pub summary_only: bool,
}

impl From<proto::IngestCasesRequest> for IngestFrame {
    fn from(message: proto::IngestCasesRequest) -> IngestFrame {
        IngestFrame {
            request_id: message.request_id.into_bytes(),
            case: message.case.map(|c| c.encode_to_vec()),
            summary_only: message.summary_only,
        }
    }
}

fn stored_case(row: StoredCaseRow) -> Result<proto::StoredCase, Status> {
    let case = parse_case_row(&row.row)
        .map_err(|e| Status::data_loss(format!("stored case {}/{} cannot be read: {e}", row.hospital_id, row.case_id)))?;
    Ok(proto::StoredCase {
        name: format!("hospitals/{}/cases/{}", row.hospital_id, row.case_id),
        case: Some(case_to_proto(&case)),
        update_time: row.updated_at,
    })
}

/// The text fields of a case holding NUL, which no backend stores: the record is rejected.
fn nul_violations(case: &proto::Case) -> Vec<FieldError> {
    let has_nul = |value: &str| value.as_bytes().contains(&0);
    let mut errors = Vec::new();
    let fields = [
        ("case_id", &case.case_id),
        ("hospital_id", &case.hospital_id),
        ("patient_id", &case.patient_id),
        ("admission_date", &case.admission_date),
        ("discharge_date", &case.discharge_date),
        ("department", &case.department),
        ("total_cost", &case.total_cost),
        ("fund_paid", &case.fund_paid),
        ("patient_paid", &case.patient_paid),
    ];
    let listed = case.diagnoses.iter().enumerate().map(|(i, code)| (format!("diagnoses[{i}]"), code));
    let listed = listed.chain(case.procedures.iter().enumerate().map(|(i, code)| (format!("procedures[{i}]"), code)));
    // The common case (no NUL anywhere) allocates nothing.
    if !fields.iter().any(|(_, v)| has_nul(v)) && !case.diagnoses.iter().chain(&case.procedures).any(|v| has_nul(v)) {
        return errors;
    }
    for (name, value) in fields.iter().map(|(n, v)| (n.to_string(), *v)).chain(listed) {
        if has_nul(value) {
            errors.push(FieldError { field: format!("case.{name}"), description: "contains a NUL character".into() });
        }
    }
    errors
}

/// The stream failed at record `index`: every valid record before it is stored.
fn failed_at(code: Code, reason: &str, message: String, index: i64, mut metadata: HashMap<String, String>) -> Status {
    metadata.insert("stored_before_index".into(), index.to_string());
    with_metadata(code, reason, format!("{message} (valid records before index {index} are stored, none from it on)"), metadata)
}

/// A batch of valid records being stored.
struct Batch {
    indexes: Vec<i64>,
    cases: Vec<NewCase>,
}

type Stored = (Batch, Result<Vec<PutOutcome>, StoreError>);

/// Counts a stored batch into the answer (one result per record unless `summary_only`).
fn record(response: &mut proto::IngestCasesResponse, stored: Stored, summary_only: bool) -> Result<(), Status> {
    let (batch, outcomes) = stored;
    let first = batch.indexes.first().copied().unwrap_or(0);
    let outcomes = outcomes.map_err(|e| {
        let status = unavailable(e);
        failed_at(
            status.code(),
            "STORE_FAILED",
            format!("storing the batch from record {first}: {}", status.message()),
            first,
            HashMap::new(),
        )
    })?;
    for ((index, case), outcome) in batch.indexes.into_iter().zip(batch.cases).zip(outcomes) {
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
        if !summary_only {
            response.results.push(proto::RecordResult {
                index,
                case_id: case.case_id,
                status: status as i32,
                field_violations: Vec::new(),
            });
        }
    }
    Ok(())
}

/// Ingests an upload: the records of `incoming`, as `role`. A claimed `request_id` is completed
/// with the answer, or released before an error is answered.
pub async fn ingest(
    state: &Arc<AppState>,
    role: &Role,
    incoming: impl Stream<Item = Result<IngestFrame, Status>> + Unpin,
) -> Result<proto::IngestCasesResponse, Status> {
    let mut claim = None;
    let result = ingest_records(state, role, incoming, &mut claim).await;
    if let Some(claimed) = claim {
        match &result {
            Ok(response) => claimed.complete(response.encode_to_vec()).await,
            Err(_) => claimed.release().await,
        }
    }
    result
}

async fn ingest_records(
    state: &Arc<AppState>,
    role: &Role,
    mut incoming: impl Stream<Item = Result<IngestFrame, Status>> + Unpin,
    claim: &mut Option<Claimed>,
) -> Result<proto::IngestCasesResponse, Status> {
    let store = state.store.clone();
    let mut response = proto::IngestCasesResponse::default();
    let mut summary_only = false;
    // Records read while waiting for a concurrent call with this request_id: they come first.
    let mut kept = std::collections::VecDeque::new();
    let mut pending = Batch { indexes: Vec::new(), cases: Vec::new() };
    let mut index: i64 = 0;
    // One batch is stored on the blocking pool while the next is decoded and checked.
    let mut in_flight: Option<tokio::task::JoinHandle<Stored>> = None;
    let store_batch = |batch: Batch| {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let outcomes = store.put_cases(&batch.cases, &now_rfc3339());
            (batch, outcomes)
        })
    };
    // Stores what is pending and waits for every batch: after it, every valid record so far is
    // stored (or the status says from which record on it is not).
    macro_rules! drain {
        () => {{
            if let Some(previous) = in_flight.take() {
                let stored = previous.await.map_err(task_failed)?;
                record(&mut response, stored, summary_only)?;
            }
            if !pending.cases.is_empty() {
                let stored = store_batch(std::mem::replace(&mut pending, Batch { indexes: Vec::new(), cases: Vec::new() }))
                    .await
                    .map_err(task_failed)?;
                record(&mut response, stored, summary_only)?;
            }
        }};
    }
    loop {
        let frame = match kept.pop_front() {
            Some(frame) => frame,
            None => match incoming.next().await {
                Some(frame) => frame,
                None => break,
            },
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(status) => {
                drain!();
                let status = too_large_is_resource_exhausted(status);
                let reason = if status.code() == Code::ResourceExhausted { "MESSAGE_TOO_LARGE" } else { "STREAM_FAILED" };
                return Err(failed_at(status.code(), reason, status.message().to_string(), index, HashMap::new()));
            }
        };
        if index == 0 {
            // Only the first message's request_id and summary_only count.
            summary_only = frame.summary_only;
            let request_id = String::from_utf8(frame.request_id.clone())
                .map_err(|_| super::errors::invalid_field("BAD_REQUEST_ID", "request_id", "is not UTF-8"))?;
            let (begun, read_meanwhile) = begin_draining(&store, role, INGEST_METHOD, &request_id, &mut incoming, frame_size).await?;
            match begun {
                None => {}
                Some(Begin::Earlier(bytes)) => {
                    return proto::IngestCasesResponse::decode(&bytes[..])
                        .map_err(|e| coded(Code::DataLoss, "STORED_ANSWER_UNREADABLE", e.to_string()))
                }
                Some(Begin::Fresh(claimed)) => *claim = Some(claimed),
            }
            kept.extend(read_meanwhile);
        }
        response.submitted += 1;
        let this = index;
        index += 1;
        let decoded = match &frame.case {
            None => Err(vec![FieldError { field: "case".into(), description: "is required".into() }]),
            Some(bytes) => proto::Case::decode(&bytes[..])
                .map_err(|e| vec![FieldError { field: "case".into(), description: format!("cannot be decoded: {e}") }]),
        };
        let mut case_id = String::new();
        let checked = decoded.and_then(|mut message| {
            case_id = message.case_id.clone();
            // A hospital's upload is for its own hospital: the id defaults to the token's.
            if let (Role::Hospital(own), true) = (role, message.hospital_id.is_empty()) {
                message.hospital_id = own.clone();
            }
            let nul = nul_violations(&message);
            if !nul.is_empty() {
                return Err(nul);
            }
            case_from_proto(&message)
        });
        let case = match checked {
            Err(errors) => {
                response.rejected += 1;
                response.results.push(proto::RecordResult {
                    index: this,
                    case_id,
                    status: proto::RecordStatus::Rejected as i32,
                    field_violations: errors.iter().map(proto::FieldViolation::from).collect(),
                });
                continue;
            }
            Ok(case) => case,
        };
        let Some(hospital_id) = case.hospital_id.clone() else {
            response.rejected += 1;
            response.results.push(proto::RecordResult {
                index: this,
                case_id,
                status: proto::RecordStatus::Rejected as i32,
                field_violations: vec![proto::FieldViolation {
                    field: "case.hospital_id".into(),
                    description: "is required to store a case".into(),
                }],
            });
            continue;
        };
        if !role.may_access(&hospital_id) {
            drain!();
            let metadata = HashMap::from([("index".to_string(), this.to_string()), ("hospital_id".to_string(), hospital_id.clone())]);
            return Err(failed_at(
                Code::PermissionDenied,
                "HOSPITAL_NOT_PERMITTED",
                format!("record {this}: this token may not submit cases of hospital {hospital_id:?}"),
                this,
                metadata,
            ));
        }
        pending.indexes.push(this);
        pending.cases.push(NewCase { hospital_id, case_id: case.case_id.clone(), row: case_row(&case) });
        if pending.cases.len() >= BATCH {
            if let Some(previous) = in_flight.take() {
                let stored = previous.await.map_err(task_failed)?;
                record(&mut response, stored, summary_only)?;
            }
            in_flight = Some(store_batch(std::mem::replace(&mut pending, Batch { indexes: Vec::new(), cases: Vec::new() })));
        }
    }
    drain!();
    response.results.sort_by_key(|r| r.index);
    let metrics = &state.metrics;
    Metrics::add(&metrics.ingest_streams, 1);
    Metrics::add(&metrics.ingest_accepted, response.accepted as u64);
    Metrics::add(&metrics.ingest_replaced, response.replaced as u64);
    Metrics::add(&metrics.ingest_unchanged, response.unchanged as u64);
    Metrics::add(&metrics.ingest_rejected, response.rejected as u64);
    debug_assert_eq!(response.accepted + response.replaced + response.unchanged + response.rejected, response.submitted);
    Ok(response)
}

/// What a record read while waiting weighs against [`super::idempotency::WAIT_BUFFER`].
fn frame_size(frame: &Result<IngestFrame, Status>) -> usize {
    match frame {
        Ok(frame) => 32 + frame.request_id.len() + frame.case.as_ref().map_or(0, Vec::len),
        Err(status) => 32 + status.message().len(),
    }
}

#[tonic::async_trait]
impl CaseService for Cases {
    /// Reached only when the service is mounted without [`IngestRoute`] (which decodes each
    /// record on its own): the same ingestion.
    async fn ingest_cases(
        &self,
        request: Request<Streaming<proto::IngestCasesRequest>>,
    ) -> Result<Response<proto::IngestCasesResponse>, Status> {
        let role = role(&request)?;
        let incoming = request.into_inner().map(|m| m.map(IngestFrame::from));
        Ok(Response::new(ingest(&self.state, &role, incoming).await?))
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

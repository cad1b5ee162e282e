//! SettlementService: settlement runs over the stored cases, as resources.
//!
//! Creating a run (fund office only) records it as RUNNING and computes it on the blocking pool
//! with the core's settlement functions; the run then holds its point values, totals and the
//! policy and table versions it used, and its statements are listed with page tokens. A hospital
//! token sees its own statements only.

use super::auth::{role, Role};
use super::convert::coded_invalid_argument;
use super::errors::coded;
use super::idempotency::{begin, Begin};
use super::paging::{decode_token, encode_token, page_size, task_failed, unavailable};
use super::proto::{self, settlement_service_server::SettlementService};
use super::versions::{Fingerprint, Snapshot, VersionError};
use super::AppState;
use crate::case::Fund;
use crate::io::case_csv::standard_layout;
use crate::io::chunks::CHUNK_BYTES;
use crate::policy::Policy;
use crate::settle::{self, Annotations, Mode, Period, Review, SettleError, Statements};
use crate::settlement::{self, PointValueRecord};
use crate::store::{now_rfc3339, StatementRow, StoreError};
use crate::units::{format_point_value, format_points, format_yuan};
use prost::Message;
use rust_decimal::Decimal;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

pub struct Settlements {
    pub state: Arc<AppState>,
}

static RUN_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn fund_message(fund: Fund) -> i32 {
    match fund {
        Fund::Employee => proto::Fund::Employee as i32,
        Fund::Resident => proto::Fund::Resident as i32,
    }
}

fn point_value_message(policy: &Policy, record: &PointValueRecord) -> proto::PointValue {
    proto::PointValue {
        fund: fund_message(record.fund),
        method: format!("{:?}", record.method).to_lowercase(),
        value: format_point_value(record.value.0, policy.point_value_decimals),
        exact: record.exact.to_string(),
        distributable: format_yuan(record.paid.0),
        basis: record.basis.map(|d| format_yuan(d.0)).unwrap_or_default(),
        paid: format_yuan(record.paid.0),
        residual: record.residual().map(|d| format_yuan(d.0)).unwrap_or_default(),
        paid_at: format!("{:?}", record.paid_at).to_lowercase(),
        inputs: record.inputs.iter().map(|(name, value)| format!("{name}={}", settle::format_input(policy, name, *value))).collect(),
    }
}

/// Encoded statements keyed by `{hospital}.{fund}`.
type KeyedStatements = Vec<(String, Vec<u8>)>;

/// How many rejected cases a run lists (all are counted).
const LISTED_REJECTS: usize = 1000;

/// Why a run failed: (code, message).
type RunFailure = (&'static str, String);

fn store_failure(e: StoreError) -> RunFailure {
    ("STORE_UNAVAILABLE", e.to_string())
}

/// Every stored annotation of `kind`: (hospital, case id, record).
fn all_annotations(state: &AppState, kind: &str) -> Result<Vec<crate::store::Annotation>, RunFailure> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map(|(h, c, _): &crate::store::Annotation| (h.as_str(), c.as_str()));
        let page = state.store.list_annotations(kind, None, after, 10_000).map_err(store_failure)?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// The stored violations and special-review decisions as the engine's annotations, each scoped
/// to its hospital. A stored record the engine cannot read fails the run (never dropped).
fn stored_annotations(state: &AppState, policy: &crate::policy::Policy) -> Result<Annotations, RunFailure> {
    let unreadable = |hospital: &str, case_id: &str, field: &'static str, reason: String| {
        let error = SettleError::Annotation { source_name: format!("hospitals/{hospital}/cases/{case_id}"), record: 1, field, reason };
        (error.code(), error.to_string())
    };
    let mut annotations = Annotations::default();
    for (hospital, case_id, record) in all_annotations(state, super::reviews::VIOLATION)? {
        let violation = proto::Violation::decode(&record[..]).map_err(|e| unreadable(&hospital, &case_id, "violation", e.to_string()))?;
        annotations.add_violation(policy, &case_id, Some(&hospital), &violation.kind);
    }
    for (hospital, case_id, record) in all_annotations(state, super::reviews::DECISION)? {
        let decision =
            proto::SpecialReviewDecision::decode(&record[..]).map_err(|e| unreadable(&hospital, &case_id, "decision", e.to_string()))?;
        let text = match proto::ReviewDecision::try_from(decision.decision) {
            Ok(proto::ReviewDecision::Approved) => "approved",
            Ok(proto::ReviewDecision::Rejected) => "rejected",
            _ => "",
        };
        let review = Review::parse(Some(&hospital), text, &decision.reviewed_points)
            .map_err(|(field, reason)| unreadable(&hospital, &case_id, field, reason))?;
        annotations.add_review(&case_id, review);
    }
    Ok(annotations)
}

/// Computes a run over every stored case with `snapshot`'s policy and tables, through the same
/// engine as `dipdrg settle` (its parallel executor, over the stored rows in (hospital, case id)
/// order): (finished run, statements by key). `expected_cases` is the cases fingerprint a re-run
/// must find.
fn compute(
    state: &AppState,
    snapshot: &Snapshot,
    mut run: proto::SettlementRun,
    period: Period,
    expected_cases: Option<&str>,
) -> Result<(proto::SettlementRun, KeyedStatements), RunFailure> {
    let policy = snapshot.policy();
    let mode = if run.mode == proto::SettlementMode::Monthly as i32 { Mode::Monthly } else { Mode::Annual };
    let annotations = stored_annotations(state, policy)?;
    // The stored rows as one CSV text in the standard layout, and each record's (hospital, case id).
    let mut cases_fingerprint = Fingerprint::default();
    let mut text = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    crate::store::for_each_case(state.store.as_ref(), |row| {
        feed_case(&mut cases_fingerprint, row);
        text.extend_from_slice(row.row.as_bytes());
        text.push(b'\n');
        keys.push((row.hospital_id.clone(), row.case_id.clone()));
    })
    .map_err(store_failure)?;
    let cases_fingerprint = cases_fingerprint.hex();
    if let Some(expected) = expected_cases.filter(|e| *e != cases_fingerprint) {
        return Err((
            "CASES_CHANGED",
            format!(
                "the stored cases changed since {}: cases fingerprint {expected} then, {cases_fingerprint} now, so a re-run would not reproduce it",
                run.rerun_of
            ),
        ));
    }
    run.cases_fingerprint = cases_fingerprint;
    let request = settle::Request { policy, scorer: &snapshot.scorer, mode, period, annotations: &annotations };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (outcome, _) = settle::parallel::run(&request, &text[..], &standard_layout(), Some(text.len() as u64), threads, CHUNK_BYTES)
        .map_err(|e| (e.code(), e.to_string()))?;
    drop(text);
    let hospital_ids = &outcome.hospital_ids;
    let key = |hospital: u32, fund: Fund| format!("{}.{}", hospital_ids.get(hospital as usize).map_or("", String::as_str), fund.as_str());
    let base = |hospital: u32, fund: Fund, totals: &settlement::Totals, point_value: Decimal, gross: Decimal, patient_paid: Decimal| {
        proto::Statement {
            name: format!("{}/statements/{}", run.name, key(hospital, fund)),
            hospital_id: hospital_ids.get(hospital as usize).cloned().unwrap_or_default(),
            fund: fund_message(fund),
            cases: totals.cases as i64,
            points: format_points(totals.points, policy.points_decimals),
            penalty_points: format_points(totals.penalty_points, policy.points_decimals),
            counted_points: format_points(totals.counted_points, policy.points_decimals),
            cmi: totals.cmi(policy.average_case_score()).to_string(),
            total_cost: format_yuan(totals.total_cost),
            point_value: format_point_value(point_value, policy.point_value_decimals),
            gross: format_yuan(gross),
            patient_paid: format_yuan(patient_paid),
            item_paid: format_yuan(totals.item_paid),
            ..Default::default()
        }
    };
    let mut statements = Vec::new();
    let mut gross_total = Decimal::ZERO;
    match &outcome.statements {
        Statements::Monthly(_, monthly) => {
            for s in monthly {
                gross_total += s.gross.0;
                let mut message = base(s.hospital, s.fund, &s.totals, s.point_value.0, s.gross.0, s.patient_paid.0);
                message.amount = format_yuan(s.amount.0);
                message.paid_now = format_yuan(s.paid_now.0);
                message.deposit = format_yuan(s.deposit.0);
                statements.push((key(s.hospital, s.fund), message.encode_to_vec()));
            }
        }
        Statements::Annual(_, annual) => {
            for s in annual {
                gross_total += s.gross.0;
                let mut message = base(s.hospital, s.fund, &s.totals, s.point_value.0, s.gross.0, s.patient_paid.0);
                message.fund_due = format_yuan(s.fund_due.0);
                message.band_adjustment = format_yuan(s.band_adjustment.0);
                message.deposit_forfeited = format_yuan(s.deposit_forfeited.0);
                message.final_due = format_yuan(s.final_due.0);
                message.paid_monthly = format_yuan(s.paid_monthly.0);
                message.balance = format_yuan(s.balance.0);
                statements.push((key(s.hospital, s.fund), message.encode_to_vec()));
            }
        }
    }
    run.state = proto::RunState::Succeeded as i32;
    run.progress = "1".into();
    run.cases = outcome.accepted as i64;
    run.rejected_cases = outcome.rejected.len() as i64;
    run.skipped_cases = run.rejected_cases;
    run.rejects = outcome
        .rejected
        .iter()
        .take(LISTED_REJECTS)
        .map(|r| {
            let (hospital, case_id) = keys.get(r.record as usize - 1).cloned().unwrap_or_default();
            proto::RejectedCase {
                case: format!("hospitals/{hospital}/cases/{case_id}"),
                field: r.field.clone(),
                value: r.value.clone(),
                reason: r.reason.clone(),
                code: r.code.to_string(),
            }
        })
        .collect();
    run.warnings = outcome
        .warnings
        .iter()
        .map(|w| proto::RunWarning {
            code: w.code.to_string(),
            case: format!("hospitals/{}/cases/{}", w.hospital_id, w.case_id),
            source: w.source.to_string(),
            message: w.message.clone(),
        })
        .collect();
    run.point_values = outcome.statements.point_values().iter().map(|record| point_value_message(policy, record)).collect();
    run.gross_total = format_yuan(gross_total);
    run.complete_time = now_rfc3339();
    Ok((run, statements))
}

/// The method name of run creation in idempotency keys.
pub const CREATE_METHOD: &str = "CreateSettlementRun";

/// `run` as `role` may see it: a hospital sees no region totals (how many cases every hospital
/// had, the point values' inputs, the region's gross) and only the code of an error (whose text
/// may name another hospital). Its own figures are in its statements.
fn for_role(role: &Role, run: proto::SettlementRun) -> proto::SettlementRun {
    match role {
        Role::FundOffice => run,
        Role::Hospital(_) => proto::SettlementRun {
            cases: 0,
            skipped_cases: 0,
            rejected_cases: 0,
            // Other hospitals' cases: never shown to a hospital.
            rejects: Vec::new(),
            warnings: Vec::new(),
            point_values: Vec::new(),
            gross_total: String::new(),
            cases_fingerprint: String::new(),
            error: run.error.split(':').next().unwrap_or_default().to_string(),
            ..run
        },
    }
}

/// Feeds one stored case (hospital, case id, row) to a cases fingerprint.
fn feed_case(fingerprint: &mut Fingerprint, row: &crate::store::StoredCaseRow) {
    fingerprint.feed(row.hospital_id.as_bytes());
    fingerprint.feed(row.case_id.as_bytes());
    fingerprint.feed(row.row.as_bytes());
}

/// The fingerprint of every stored case (hospital, case id and row, in key order, over one
/// snapshot): what a run records as its `cases_fingerprint`.
fn stored_cases_fingerprint(store: &dyn crate::store::Store) -> Result<String, StoreError> {
    let mut fingerprint = Fingerprint::default();
    crate::store::for_each_case(store, |row| feed_case(&mut fingerprint, row))?;
    Ok(fingerprint.hex())
}

/// `run`, FAILED with `CODE: message`.
fn failed(run: proto::SettlementRun, code: &str, message: &str) -> proto::SettlementRun {
    proto::SettlementRun {
        state: proto::RunState::Failed as i32,
        error: format!("{code}: {message}"),
        error_code: code.to_string(),
        complete_time: now_rfc3339(),
        ..run
    }
}

/// Computes a created run and stores how it ended: SUCCEEDED with its statements, or FAILED with
/// a code — never left RUNNING, whether the computation errs, panics (`RUN_PANICKED`) or its
/// statements cannot be stored (`STORE_UNAVAILABLE`).
fn finish(
    state: &AppState,
    snapshot: &Snapshot,
    run_id: &str,
    started: proto::SettlementRun,
    period: Period,
    expected_cases: Option<&str>,
) {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute(state, snapshot, started.clone(), period, expected_cases)));
    let finished = match outcome {
        Ok(Ok((finished, statements))) => {
            let rows: Result<Vec<StatementRow>, String> = statements
                .into_iter()
                .map(|(key, statement)| {
                    let hospital_id = proto::Statement::decode(&statement[..]).map_err(|e| e.to_string())?.hospital_id;
                    Ok(StatementRow { hospital_id, key, statement })
                })
                .collect();
            match rows.and_then(|rows| state.store.put_statements(run_id, &rows).map_err(|e| e.to_string())) {
                Ok(()) => finished,
                Err(e) => failed(started, "STORE_UNAVAILABLE", &format!("the statements could not be stored: {e}")),
            }
        }
        Ok(Err((code, message))) => failed(started, code, &message),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            failed(started, "RUN_PANICKED", &format!("the computation failed: {message}"))
        }
    };
    tracing::info!(
        run = %finished.name,
        state = finished.state,
        cases = finished.cases,
        gross_total = %finished.gross_total,
        error = %finished.error,
        "settlement run finished"
    );
    // The end is stored even through a short storage outage; a longer one leaves the run
    // RUNNING until the next start marks it FAILED (RUN_INTERRUPTED).
    let bytes = finished.encode_to_vec();
    let mut pause = std::time::Duration::from_millis(100);
    for attempt in 1..=8 {
        match state.store.put_run(run_id, &bytes) {
            Ok(()) => return,
            Err(e) => tracing::warn!(run = %finished.name, attempt, error = %e, "the finished run could not be stored"),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// At start, before serving: frees the idempotency keys a killed process left claimed, and
/// marks every run left RUNNING as FAILED (`RUN_INTERRUPTED`), freeing its request_id so that
/// the same request starts a new run. Returns the names of the runs it marked.
pub fn recover(store: &dyn crate::store::Store) -> Result<Vec<String>, StoreError> {
    let released = store.release_unfinished_requests()?;
    if released > 0 {
        tracing::info!(released, "freed the request ids of calls interrupted by the last stop");
    }
    let mut marked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_runs(after.as_deref(), 1000)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (run_id, bytes) in page {
            let Ok(run) = proto::SettlementRun::decode(&bytes[..]) else { continue };
            if run.state != proto::RunState::Running as i32 {
                continue;
            }
            let run = failed(run, "RUN_INTERRUPTED", "the server stopped before the run finished; create it again");
            store.put_run(&run_id, &run.encode_to_vec())?;
            store.forget_answer(CREATE_METHOD, run_id.as_bytes())?;
            tracing::warn!(run = %run.name, "marked an interrupted run FAILED");
            marked.push(run.name);
        }
    }
    Ok(marked)
}

type RunStream = Pin<Box<dyn Stream<Item = Result<proto::SettlementRun, Status>> + Send>>;

fn run_id_of(name: &str) -> Result<String, Status> {
    match name.strip_prefix("settlementRuns/") {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id.to_string()),
        _ => Err(Status::invalid_argument(format!("name {name:?} is not settlementRuns/{{run_id}}"))),
    }
}

impl Settlements {
    async fn load(&self, run_id: String) -> Result<proto::SettlementRun, Status> {
        let store = self.state.store.clone();
        let name = format!("settlementRuns/{run_id}");
        let bytes = tokio::task::spawn_blocking(move || store.get_run(&run_id)).await.map_err(task_failed)?.map_err(unavailable)?;
        let bytes = bytes.ok_or_else(|| Status::not_found(format!("{name} does not exist")))?;
        proto::SettlementRun::decode(&bytes[..]).map_err(|e| Status::data_loss(e.to_string()))
    }
}

#[tonic::async_trait]
impl SettlementService for Settlements {
    async fn create_settlement_run(
        &self,
        request: Request<proto::CreateSettlementRunRequest>,
    ) -> Result<Response<proto::SettlementRun>, Status> {
        let role = role(&request)?;
        if role != Role::FundOffice {
            return Err(Status::permission_denied("only a fund-office token may create settlement runs"));
        }
        let request = request.into_inner();
        // The key is claimed before anything else: a concurrent retry waits for this call.
        let claimed = match begin(&self.state.store, &role, CREATE_METHOD, &request.request_id).await? {
            Some(Begin::Earlier(run_id)) => return Ok(Response::new(self.load(String::from_utf8_lossy(&run_id).to_string()).await?)),
            Some(Begin::Fresh(claimed)) => Some(claimed),
            None => None,
        };
        // A re-run takes mode, period and versions from the run it repeats.
        let original = if request.rerun_of.is_empty() {
            None
        } else {
            let original = self.load(run_id_of(&request.rerun_of)?).await?;
            if original.state != proto::RunState::Succeeded as i32 {
                return Err(Status::failed_precondition(format!("{} has not succeeded: only a finished run can be re-run", original.name)));
            }
            Some(original)
        };
        let (mode_value, period) = match &original {
            Some(o) => (o.mode, o.period.clone()),
            None => (request.mode, request.period.clone()),
        };
        let mode = match proto::SettlementMode::try_from(mode_value) {
            Ok(proto::SettlementMode::Monthly) => Mode::Monthly,
            Ok(proto::SettlementMode::Annual) => Mode::Annual,
            _ => {
                return Err(coded_invalid_argument(
                    "SETTLE_MODE_INVALID",
                    "mode",
                    "must be MONTHLY (period YYYY-MM) or ANNUAL (period YYYY)",
                ))
            }
        };
        let snapshot = match &original {
            None => self.state.versions.active(),
            Some(o) => {
                let versions = self.state.versions.clone();
                let (policy, table_set) = (o.policy.clone(), o.table_set.clone());
                let built = tokio::task::spawn_blocking(move || versions.snapshot(&policy, &table_set)).await.map_err(task_failed)?;
                Arc::new(built.map_err(|e| match e {
                    VersionError::NotFound(_) => Status::failed_precondition(format!("cannot re-run {}: {e}", o.name)),
                    other => Status::internal(other.to_string()),
                })?)
            }
        };
        let period =
            Period::parse_for(snapshot.policy(), mode, &period).map_err(|e| coded_invalid_argument(e.code(), "period", &e.to_string()))?;
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let run_id = format!("{millis:015}-{:04}", RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000);
        let policy = snapshot.policy();
        let run = proto::SettlementRun {
            name: format!("settlementRuns/{run_id}"),
            mode: mode_value,
            period: period.to_string(),
            state: proto::RunState::Running as i32,
            progress: "0".into(),
            policy_region: policy.region.clone(),
            policy_version: policy.version.clone(),
            tables_fingerprint: snapshot.scorer.fingerprint().to_string(),
            create_time: now_rfc3339(),
            policy: snapshot.policy.name.clone(),
            table_set: snapshot.table_set.name.clone(),
            rerun_of: original.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
            ..Default::default()
        };
        let expected_cases = original.map(|o| o.cases_fingerprint);
        // A re-run over changed cases cannot reproduce its run: FAILED_PRECONDITION now, not a
        // run that fails later. (The computation checks again: cases may change meanwhile.)
        if let Some(expected) = &expected_cases {
            let rerun_of = &run.rerun_of;
            let store = self.state.store.clone();
            let now = tokio::task::spawn_blocking(move || stored_cases_fingerprint(store.as_ref()))
                .await
                .map_err(task_failed)?
                .map_err(unavailable)?;
            if now != *expected {
                return Err(coded(
                    Code::FailedPrecondition,
                    "CASES_CHANGED",
                    format!("the stored cases changed since {rerun_of}: cases fingerprint {expected} then, {now} now, so a re-run would not reproduce it"),
                ));
            }
        }
        let (store, id, bytes) = (self.state.store.clone(), run_id.clone(), run.encode_to_vec());
        tokio::task::spawn_blocking(move || store.put_run(&id, &bytes)).await.map_err(task_failed)?.map_err(unavailable)?;
        if let Some(claimed) = claimed {
            claimed.complete(run_id.clone().into_bytes()).await;
        }
        let state = self.state.clone();
        let started = run.clone();
        tokio::task::spawn_blocking(move || finish(&state, &snapshot, &run_id, started, period, expected_cases.as_deref()));
        Ok(Response::new(run))
    }

    async fn get_settlement_run(&self, request: Request<proto::GetSettlementRunRequest>) -> Result<Response<proto::SettlementRun>, Status> {
        let role = role(&request)?;
        let run_id = run_id_of(&request.into_inner().name)?;
        Ok(Response::new(for_role(&role, self.load(run_id).await?)))
    }

    async fn list_settlement_runs(
        &self,
        request: Request<proto::ListSettlementRunsRequest>,
    ) -> Result<Response<proto::ListSettlementRunsResponse>, Status> {
        let role = role(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size)?;
        let after = decode_token(&request.page_token)?;
        let store = self.state.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.list_runs(after.as_deref(), size + 1))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        let more = rows.len() > size;
        let rows: Vec<_> = rows.into_iter().take(size).collect();
        let next_page_token = if more { rows.last().map(|(id, _)| encode_token(id)).unwrap_or_default() } else { String::new() };
        let settlement_runs = rows
            .iter()
            .map(|(_, bytes)| {
                proto::SettlementRun::decode(&bytes[..]).map(|run| for_role(&role, run)).map_err(|e| Status::data_loss(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(proto::ListSettlementRunsResponse { settlement_runs, next_page_token }))
    }

    type WatchSettlementRunStream = RunStream;

    async fn watch_settlement_run(
        &self,
        request: Request<proto::GetSettlementRunRequest>,
    ) -> Result<Response<Self::WatchSettlementRunStream>, Status> {
        let role = role(&request)?;
        let run_id = run_id_of(&request.into_inner().name)?;
        let first = self.load(run_id.clone()).await?;
        let (store, shutdown) = (self.state.store.clone(), self.state.shutdown.clone());
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut last = first;
            if sender.send(Ok(for_role(&role, last.clone()))).await.is_err() {
                return;
            }
            // Until the run has ended (every run ends: see `finish` and `recover`), the client
            // goes away, or the server shuts down.
            while last.state == proto::RunState::Running as i32 {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                    () = shutdown.wait() => {
                        let _ = sender.send(Err(coded(Code::Unavailable, "SERVER_SHUTTING_DOWN", "the server is shutting down: watch the run again after it restarts"))).await;
                        return;
                    }
                    () = sender.closed() => return,
                }
                let (store, id) = (store.clone(), run_id.clone());
                // A storage failure is waited out (the run is still there); the next poll retries.
                let Ok(Ok(Some(bytes))) = tokio::task::spawn_blocking(move || store.get_run(&id)).await else { continue };
                let Ok(run) = proto::SettlementRun::decode(&bytes[..]) else {
                    let _ = sender.send(Err(coded(Code::DataLoss, "STORED_RUN_UNREADABLE", "the stored run cannot be read"))).await;
                    return;
                };
                if run != last {
                    last = run;
                    if sender.send(Ok(for_role(&role, last.clone()))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn list_statements(
        &self,
        request: Request<proto::ListStatementsRequest>,
    ) -> Result<Response<proto::ListStatementsResponse>, Status> {
        let role = role(&request)?;
        let request = request.into_inner();
        let run_id = run_id_of(&request.parent)?;
        let size = page_size(request.page_size)?;
        let after = decode_token(&request.page_token)?;
        let hospital = match &role {
            Role::FundOffice => None,
            Role::Hospital(own) => Some(own.clone()),
        };
        let store = self.state.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.list_statements(&run_id, hospital.as_deref(), after.as_deref(), size + 1))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        let more = rows.len() > size;
        let rows: Vec<_> = rows.into_iter().take(size).collect();
        let next_page_token = if more { rows.last().map(|(key, _)| encode_token(key)).unwrap_or_default() } else { String::new() };
        let statements = rows
            .iter()
            .map(|(_, bytes)| proto::Statement::decode(&bytes[..]).map_err(|e| Status::data_loss(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(proto::ListStatementsResponse { statements, next_page_token }))
    }
}

//! SettlementService: settlement runs over the stored cases, as resources.
//!
//! Creating a run (fund office only) records it as RUNNING and computes it on the blocking pool
//! with the core's settlement functions; the run then holds its point values, totals and the
//! policy and table versions it used, and its statements are listed with page tokens. A hospital
//! token sees its own statements only.

use super::auth::{role, Role};
use super::errors::coded;
use super::idempotency::{begin, Begin};
use super::paging::{decode_token, encode_token, page_size, task_failed, unavailable};
use super::proto::{self, settlement_service_server::SettlementService};
use super::versions::{Fingerprint, Snapshot, VersionError};
use super::AppState;
use crate::case::Fund;
use crate::io::case_csv::parse_case_row;
use crate::settlement::{self, CaseTerms, PointValueRecord, SettlementCase};
use crate::store::{now_rfc3339, StatementRow, StoreError};
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

fn point_value_message(record: &PointValueRecord) -> proto::PointValue {
    proto::PointValue {
        fund: fund_message(record.fund),
        method: format!("{:?}", record.method).to_lowercase(),
        value: record.value.to_string(),
        exact: record.exact.to_string(),
        distributable: record.distributable.map(|d| d.0.to_string()).unwrap_or_default(),
        inputs: record.inputs.iter().map(|(name, value)| format!("{name}={}", value.normalize())).collect(),
    }
}

/// Encoded statements keyed by `{hospital}.{fund}`.
type KeyedStatements = Vec<(String, Vec<u8>)>;

/// Computes a run over every stored case of the period with `snapshot`'s policy and tables:
/// (finished run, statements by key). `expected_cases` is the cases fingerprint a re-run must
/// find.
fn compute(
    state: &AppState,
    snapshot: &Snapshot,
    mut run: proto::SettlementRun,
    expected_cases: Option<&str>,
) -> Result<(proto::SettlementRun, KeyedStatements), String> {
    let policy = snapshot.policy();
    let mut cases_fingerprint = Fingerprint::default();
    let monthly = run.mode == proto::SettlementMode::Monthly as i32;
    let (year, month) = match (monthly, run.period.split_once('-')) {
        (true, Some((y, m))) => (y.parse::<i32>().map_err(|_| "bad period")?, Some(m.parse::<u32>().map_err(|_| "bad period")?)),
        (false, None) => (run.period.parse::<i32>().map_err(|_| "bad period")?, None),
        _ => return Err(format!("period {:?} does not fit the mode", run.period)),
    };
    let hospital_ids: Vec<String> = policy.hospitals.keys().cloned().collect();
    // Confirmed violations and review decisions, by (hospital, case id).
    let annotations = |kind: &str| -> Result<std::collections::HashMap<(String, String), Vec<u8>>, String> {
        let mut all = std::collections::HashMap::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = state
                .store
                .list_annotations(kind, None, after.as_ref().map(|(h, c)| (h.as_str(), c.as_str())), 10_000)
                .map_err(|e| e.to_string())?;
            let Some((h, c, _)) = page.last() else { break };
            after = Some((h.clone(), c.clone()));
            for (h, c, record) in page {
                all.insert((h, c), record);
            }
        }
        Ok(all)
    };
    let violations = annotations(super::reviews::VIOLATION)?;
    let decisions = annotations(super::reviews::DECISION)?;
    let mut applications = vec![0u64; hospital_ids.len()];
    let mut cases = Vec::new();
    let mut skipped = 0i64;
    // Hospital index by id (the policy lists hundreds; cases come by the million).
    let hospital_index: std::collections::HashMap<&str, usize> = hospital_ids.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
    crate::store::for_each_case(state.store.as_ref(), |row| {
        cases_fingerprint.feed(row.hospital_id.as_bytes());
        cases_fingerprint.feed(row.case_id.as_bytes());
        cases_fingerprint.feed(row.row.as_bytes());
        let Ok(case) = parse_case_row(&row.row) else {
            skipped += 1;
            return;
        };
        let hospital = case.hospital_id.as_deref().and_then(|h| hospital_index.get(h).copied());
        let in_period = case.discharge_date.is_some_and(|d| d.in_period(year, month));
        let (Some(hospital), Some(fund), true, Some(total_cost)) = (hospital, case.fund, in_period, case.total_cost) else {
            skipped += 1;
            return;
        };
        let assessment = snapshot.scorer.assess(policy, &case);
        let key = (row.hospital_id.clone(), row.case_id.clone());
        let penalty_multiple =
            violations.get(&key).and_then(|bytes| proto::Violation::decode(&bytes[..]).ok()).map(|v| policy.penalties.multiple(&v.kind));
        let decision = decisions.get(&key).and_then(|bytes| proto::SpecialReviewDecision::decode(&bytes[..]).ok());
        applications[hospital] += u64::from(decision.is_some());
        let reviewed_points = decision
            .filter(|d| d.decision == proto::ReviewDecision::Approved as i32)
            .and_then(|d| d.reviewed_points.parse::<Decimal>().ok());
        let month = case.discharge_date.map_or(1, |d| d.ymd().1);
        let patient_paid = case.patient_paid.unwrap_or_default();
        let terms = CaseTerms { reviewed_points, penalty_multiple, ..CaseTerms::assessed(&assessment) };
        cases.push(SettlementCase::new(hospital as u32, fund, month, terms, total_cost, patient_paid));
    })
    .map_err(|e| e.to_string())?;
    let cases_fingerprint = cases_fingerprint.hex();
    if let Some(expected) = expected_cases.filter(|e| *e != cases_fingerprint) {
        return Err(format!(
            "the stored cases changed since {}: cases fingerprint {expected} then, {cases_fingerprint} now, so a re-run would not reproduce it",
            run.rerun_of
        ));
    }
    run.cases_fingerprint = cases_fingerprint;
    let mut cases_per_hospital = vec![0u64; hospital_ids.len()];
    for case in &cases {
        cases_per_hospital[case.hospital as usize] += 1;
    }
    settlement::check_special_review_quota(policy, &hospital_ids, &cases_per_hospital, &applications).map_err(|e| e.to_string())?;
    let mut statements = Vec::new();
    let mut gross_total = Decimal::ZERO;
    let key = |hospital: u32, fund: Fund| format!("{}.{}", hospital_ids.get(hospital as usize).map_or("", String::as_str), fund.as_str());
    let base = |hospital: u32, fund: Fund, totals: &settlement::Totals, point_value: String, gross: Decimal, patient_paid: Decimal| {
        proto::Statement {
            name: format!("{}/statements/{}", run.name, key(hospital, fund)),
            hospital_id: hospital_ids.get(hospital as usize).cloned().unwrap_or_default(),
            fund: fund_message(fund),
            cases: totals.cases as i64,
            points: totals.points.normalize().to_string(),
            penalty_points: totals.penalty_points.normalize().to_string(),
            counted_points: totals.counted_points.normalize().to_string(),
            cmi: totals.cmi(policy.average_case_score()).to_string(),
            total_cost: crate::units::Yuan(totals.total_cost).to_fen().0.to_string(),
            point_value,
            gross: gross.to_string(),
            patient_paid: patient_paid.to_string(),
            ..Default::default()
        }
    };
    let point_values = if monthly {
        let (values, monthly_statements) = settlement::monthly(policy, &cases, hospital_ids.len()).map_err(|e| e.to_string())?;
        for s in &monthly_statements {
            gross_total += s.gross.0;
            let mut message = base(s.hospital, s.fund, &s.totals, s.point_value.to_string(), s.gross.0, s.patient_paid.0);
            message.amount = s.amount.0.to_string();
            message.paid_now = s.paid_now.0.to_string();
            message.deposit = s.deposit.0.to_string();
            statements.push((key(s.hospital, s.fund), message.encode_to_vec()));
        }
        values
    } else {
        let (values, annual_statements) = settlement::annual(policy, &cases, &hospital_ids).map_err(|e| e.to_string())?;
        for s in &annual_statements {
            gross_total += s.gross.0;
            let mut message = base(s.hospital, s.fund, &s.totals, s.point_value.to_string(), s.gross.0, s.patient_paid.0);
            message.fund_due = s.fund_due.0.to_string();
            message.band_adjustment = s.band_adjustment.0.to_string();
            message.deposit_forfeited = s.deposit_forfeited.0.to_string();
            message.final_due = s.final_due.0.to_string();
            message.paid_monthly = s.paid_monthly.0.to_string();
            message.balance = s.balance.0.to_string();
            statements.push((key(s.hospital, s.fund), message.encode_to_vec()));
        }
        values
    };
    run.state = proto::RunState::Succeeded as i32;
    run.progress = "1".into();
    run.cases = cases.len() as i64;
    run.skipped_cases = skipped;
    run.point_values = point_values.iter().map(point_value_message).collect();
    run.gross_total = gross_total.to_string();
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
            point_values: Vec::new(),
            gross_total: String::new(),
            cases_fingerprint: String::new(),
            error: run.error.split(':').next().unwrap_or_default().to_string(),
            ..run
        },
    }
}

/// The fingerprint of every stored case (hospital, case id and row, in key order, over one
/// snapshot): what a run records as its `cases_fingerprint`.
fn stored_cases_fingerprint(store: &dyn crate::store::Store) -> Result<String, StoreError> {
    let mut fingerprint = Fingerprint::default();
    crate::store::for_each_case(store, |row| {
        fingerprint.feed(row.hospital_id.as_bytes());
        fingerprint.feed(row.case_id.as_bytes());
        fingerprint.feed(row.row.as_bytes());
    })?;
    Ok(fingerprint.hex())
}

/// `run`, FAILED with `CODE: message`.
fn failed(run: proto::SettlementRun, code: &str, message: &str) -> proto::SettlementRun {
    proto::SettlementRun { state: proto::RunState::Failed as i32, error: format!("{code}: {message}"), complete_time: now_rfc3339(), ..run }
}

/// An error's text as `CODE: message`: kept when it starts with a code, else `RUN_FAILED`.
fn with_code(error: &str) -> (String, String) {
    match error.split_once(": ") {
        Some((code, message)) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => {
            (code.to_string(), message.to_string())
        }
        _ => ("RUN_FAILED".to_string(), error.to_string()),
    }
}

/// Computes a created run and stores how it ended: SUCCEEDED with its statements, or FAILED with
/// a code — never left RUNNING, whether the computation errs, panics (`RUN_PANICKED`) or its
/// statements cannot be stored (`STORE_UNAVAILABLE`).
fn finish(state: &AppState, snapshot: &Snapshot, run_id: &str, started: proto::SettlementRun, expected_cases: Option<&str>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute(state, snapshot, started.clone(), expected_cases)));
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
        Ok(Err(error)) => {
            let (code, message) = with_code(&error.to_string());
            failed(started, &code, &message)
        }
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
        let mode = proto::SettlementMode::try_from(mode_value).unwrap_or(proto::SettlementMode::Unspecified);
        let period_ok = match mode {
            proto::SettlementMode::Monthly => period.len() == 7 && period.as_bytes()[4] == b'-',
            proto::SettlementMode::Annual => period.len() == 4,
            proto::SettlementMode::Unspecified => false,
        };
        if !period_ok {
            let mut details = tonic_types::ErrorDetails::new();
            details.add_bad_request_violation("mode", "must be MONTHLY (period YYYY-MM) or ANNUAL (period YYYY)");
            details.add_bad_request_violation("period", format!("{period:?} does not fit the mode"));
            return Err(<Status as tonic_types::StatusExt>::with_error_details(tonic::Code::InvalidArgument, "bad run", details));
        }
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
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let run_id = format!("{millis:015}-{:04}", RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000);
        let policy = snapshot.policy();
        let run = proto::SettlementRun {
            name: format!("settlementRuns/{run_id}"),
            mode: mode as i32,
            period,
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
        tokio::task::spawn_blocking(move || finish(&state, &snapshot, &run_id, started, expected_cases.as_deref()));
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

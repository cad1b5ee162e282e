//! The fault and abuse suite: the real `dipdrg serve` binary, driven as an attacker and a crash
//! would drive it, on SQLite and (when `DIPDRG_TEST_DATABASE_URL` is set, as in CI) PostgreSQL.
//!
//! - concurrent retries of one upload with one request_id apply once;
//! - two hospitals using one request_id are independent; no collision with review or run keys;
//! - kill -9 during uploads and during runs, in bounded rounds, then a restart: nothing that was
//!   acknowledged is lost, unacknowledged uploads can be re-sent under their request_id, and no
//!   run stays RUNNING;
//! - SIGTERM with a watcher and an endless upload attached exits promptly;
//! - hostile input: undecodable and NUL-holding records, oversized messages, another
//!   hospital's case, bad request ids, hostile page tokens and names;
//! - a PostgreSQL restart (its own throwaway server) under a running service.

use dipdrg::server::cases::IngestFrame;
use dipdrg::server::proto;
use prost::Message;
use proto::case_service_client::CaseServiceClient;
use proto::settlement_service_client::SettlementServiceClient;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const FUND: &str = "fund-office-token-1";
const H1: &str = "hospital-h001-token";
const H2: &str = "hospital-h002-token";
const HDOT: &str = "hospital-hdot-token";

/// A storage backend to run a test on: SQLite (always) or PostgreSQL (a schema of its own).
#[derive(Clone)]
struct Backend {
    name: &'static str,
    database: Option<(String, String)>,
}

fn backends(test: &str) -> Vec<Backend> {
    let mut all = vec![Backend { name: "sqlite", database: None }];
    match std::env::var("DIPDRG_TEST_DATABASE_URL") {
        Ok(url) if cfg!(feature = "postgres") => {
            all.push(Backend { name: "postgres", database: Some((url, format!("faults_{test}_{}", std::process::id()))) })
        }
        _ => eprintln!("{test}: PostgreSQL skipped (DIPDRG_TEST_DATABASE_URL is not set)"),
    }
    all
}

fn data_dir(test: &str, backend: &Backend) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dipdrg-faults-{test}-{}-{}", backend.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A running `dipdrg serve`; killed (-9) on drop.
struct Server {
    child: Option<Child>,
    address: String,
}

impl Server {
    fn start(dir: &Path, backend: &Backend, extra: &str) -> Server {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("server.toml");
        let database = backend
            .database
            .as_ref()
            .map(|(url, schema)| format!("database_url = {url:?}\ndatabase_schema = {schema:?}\n"))
            .unwrap_or_default();
        let tokens =
            [(FUND, "fund_office", None), (H1, "hospital", Some("H001")), (H2, "hospital", Some("H002")), (HDOT, "hospital", Some("H.1"))]
                .iter()
                .map(|(token, role, hospital)| {
                    let hospital = hospital.map(|h| format!("hospital_id = \"{h}\"\n")).unwrap_or_default();
                    format!("[[tokens]]\ntoken = \"{token}\"\nrole = \"{role}\"\n{hospital}")
                })
                .collect::<String>();
        let store = dir.join("store").display().to_string();
        std::fs::write(&config, format!("{database}{extra}data_dir = {store:?}\nlog_level = \"warn\"\n{tokens}")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
            .current_dir(&root)
            .env("DIPDRG_METRICS_LISTEN", "")
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
        let address = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("not a listening line: {line:?}")).to_string();
        Server { child: Some(child), address }
    }

    /// SIGKILL: no chance to clean up.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then how long the process took to exit (SIGKILL after `limit`).
    fn terminate(&mut self, limit: Duration) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
        while started.elapsed() < limit {
            if child.try_wait().expect("wait").is_some() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        started.elapsed()
    }

    async fn channel(&self) -> Channel {
        let endpoint = format!("http://{}", self.address);
        for _ in 0..100 {
            if let Ok(channel) = Channel::from_shared(endpoint.clone()).unwrap().connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server at {endpoint} did not answer");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

type AddToken = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send + Sync>;
type Authed = InterceptedService<Channel, AddToken>;

fn authed(channel: &Channel, token: &'static str) -> Authed {
    let add: AddToken = Box::new(move |mut request: Request<()>| {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| Status::internal("token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    });
    InterceptedService::new(channel.clone(), add)
}

fn cases_client(channel: &Channel, token: &'static str) -> CaseServiceClient<Authed> {
    CaseServiceClient::new(authed(channel, token))
}

fn runs_client(channel: &Channel, token: &'static str) -> SettlementServiceClient<Authed> {
    SettlementServiceClient::new(authed(channel, token))
}

fn case(case_id: &str, hospital: &str, cost: &str) -> proto::Case {
    proto::Case {
        case_id: case_id.into(),
        hospital_id: hospital.into(),
        patient_id: format!("P-{case_id}"),
        fund: proto::Fund::Employee as i32,
        sex: Some(1),
        age: Some(56),
        admission_date: "2026-03-01".into(),
        discharge_date: "2026-03-07".into(),
        diagnoses: vec!["K80.100".into()],
        total_cost: cost.into(),
        fund_paid: "0".into(),
        patient_paid: "1.00".into(),
        ..Default::default()
    }
}

fn message(request_id: &str, case: proto::Case) -> proto::IngestCasesRequest {
    proto::IngestCasesRequest { request_id: request_id.into(), case: Some(case), summary_only: false }
}

async fn upload(
    client: &mut CaseServiceClient<Authed>,
    request_id: &str,
    cases: Vec<proto::Case>,
) -> Result<proto::IngestCasesResponse, Status> {
    let messages: Vec<_> = cases.into_iter().map(|c| message(request_id, c)).collect();
    client.ingest_cases(tokio_stream::iter(messages)).await.map(|r| r.into_inner())
}

/// Every stored case of `parent` (`hospitals/-` or `hospitals/{id}`): case name → total cost.
async fn stored(client: &mut CaseServiceClient<Authed>, parent: &str) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_cases(proto::ListCasesRequest { parent: parent.into(), page_size: 1000, page_token: token.clone() })
            .await
            .expect("list")
            .into_inner();
        for stored in page.cases {
            all.insert(stored.name, stored.case.map(|c| c.total_cost).unwrap_or_default());
        }
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

fn stored_before(status: &Status) -> Option<i64> {
    status.get_details_error_info()?.metadata.get("stored_before_index")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_request_id_apply_once() {
    for backend in backends("retries") {
        let dir = data_dir("retries", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        // Eight clients send "the same" upload at once; adversarially each carries other costs,
        // so a second application would show in the stored content.
        let attempts: Vec<_> = (0..8)
            .map(|attempt| {
                let mut client = cases_client(&channel, H1);
                tokio::spawn(async move {
                    let cases = (0..3000).map(|i| case(&format!("C{i:05}"), "H001", &format!("{}.00", 1000 + attempt))).collect();
                    upload(&mut client, "same-upload", cases).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for attempt in attempts {
            answers.push(attempt.await.unwrap().unwrap_or_else(|e| panic!("{}: {e:?}", backend.name)));
        }
        assert_eq!(answers[0].accepted, 3000, "{}: the first application", backend.name);
        assert!(answers.iter().all(|a| *a == answers[0]), "{}: every retry gets the first answer", backend.name);
        let costs: HashSet<String> = stored(&mut cases_client(&channel, FUND), "hospitals/H001").await.into_values().collect();
        assert_eq!(costs.len(), 1, "{}: the stored cases are one attempt's, applied once: {costs:?}", backend.name);
        // After it: a retry is answered from the store, changing nothing.
        let cases = (0..3000).map(|i| case(&format!("C{i:05}"), "H001", "9.00")).collect();
        assert_eq!(upload(&mut cases_client(&channel, H1), "same-upload", cases).await.unwrap(), answers[0]);
        // Six concurrent creations of one run: one run.
        let creations: Vec<_> = (0..6)
            .map(|_| {
                let mut client = runs_client(&channel, FUND);
                tokio::spawn(async move { client.create_settlement_run(create("same-run")).await.map(|r| r.into_inner().name) })
            })
            .collect();
        let mut names = HashSet::new();
        for creation in creations {
            names.insert(creation.await.unwrap().expect("create"));
        }
        assert_eq!(names.len(), 1, "{}: {names:?}", backend.name);
        assert_eq!(all_runs(&mut runs_client(&channel, FUND)).await.len(), 1, "{}: exactly one run was created", backend.name);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Waiting retries on the first upload's connection must not starve it: an upload that waits for
/// a concurrent one with its key keeps reading (and dropping) its stream, or the HTTP/2
/// connection window (1 MiB) fills with the waiters' unread records and the first upload cannot
/// send its rest until the waiters give up (ABORTED after a minute, failing this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_retries_on_one_connection_do_not_starve_the_first_upload() {
    for backend in backends("starve") {
        let dir = data_dir("starve", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        // The first upload sends one record, then holds back its rest.
        let (sender, receiver) = tokio::sync::mpsc::channel::<proto::IngestCasesRequest>(16);
        let mut first_client = cases_client(&channel, H1);
        let first = tokio::spawn(async move { first_client.ingest_cases(tokio_stream::wrappers::ReceiverStream::new(receiver)).await });
        sender.send(message("held-back", case("S00000", "H001", "1.00"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Four retries over the same connection, 6,000 records each (about 4 MiB in all).
        let retries: Vec<_> = (0..4)
            .map(|attempt| {
                let mut client = cases_client(&channel, H1);
                tokio::spawn(async move {
                    let cases = (0..6000).map(|i| case(&format!("S{i:05}"), "H001", &format!("{}.00", 2 + attempt))).collect();
                    upload(&mut client, "held-back", cases).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Now the rest of the first upload: it must get through the shared connection.
        for i in 1..3000 {
            sender.send(message("held-back", case(&format!("S{i:05}"), "H001", "1.00"))).await.unwrap();
        }
        drop(sender);
        let answer = first.await.unwrap().unwrap_or_else(|e| panic!("{}: the first upload: {e:?}", backend.name)).into_inner();
        assert_eq!(answer.accepted, 3000, "{}", backend.name);
        for retry in retries {
            let retried = retry.await.unwrap().unwrap_or_else(|e| panic!("{}: a retry: {e:?}", backend.name));
            assert_eq!(retried, answer, "{}: a retry gets the first answer", backend.name);
        }
        let costs: HashSet<String> = stored(&mut cases_client(&channel, FUND), "hospitals/H001").await.into_values().collect();
        assert_eq!(costs, HashSet::from(["1.00".to_string()]), "{}: only the first upload was applied", backend.name);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// When the first upload with a key fails, the key is free before its error is answered (an
/// immediate retry is applied), and an upload that was waiting for it goes on with its own
/// records, read while it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_upload_frees_its_key_for_the_retry_and_the_waiting_upload() {
    for backend in backends("failed_first") {
        let dir = data_dir("failed_first", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        for round in 0..5 {
            let id = format!("fails-{round}");
            // The first upload holds its key, then fails: another hospital's case.
            let (sender, receiver) = tokio::sync::mpsc::channel::<proto::IngestCasesRequest>(16);
            let mut first_client = cases_client(&channel, H1);
            let first = tokio::spawn(async move { first_client.ingest_cases(tokio_stream::wrappers::ReceiverStream::new(receiver)).await });
            sender.send(message(&id, case(&format!("F{round}-0"), "H001", "1.00"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let waiting = {
                let mut client = cases_client(&channel, H1);
                let id = id.clone();
                tokio::spawn(async move {
                    let cases = (0..500).map(|i| case(&format!("W{round}-{i:03}"), "H001", "7.00")).collect();
                    upload(&mut client, &id, cases).await
                })
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            sender.send(message(&id, case("X-1", "H002", "1.00"))).await.unwrap();
            drop(sender);
            let failed = first.await.unwrap().expect_err("another hospital's case ends the upload");
            assert_eq!(reason(&failed), "HOSPITAL_NOT_PERMITTED", "{}", backend.name);
            let waited = waiting.await.unwrap().unwrap_or_else(|e| panic!("{} round {round}: the waiting upload: {e:?}", backend.name));
            assert_eq!(
                (waited.accepted, waited.submitted),
                (500, 500),
                "{} round {round}: the waiting upload applied its own records",
                backend.name
            );
            // A retry sent the moment an upload fails is applied, not refused.
            let again = format!("again-{round}");
            let failed =
                upload(&mut cases_client(&channel, H1), &again, vec![case("Y-1", "H001", "1.00"), case("Y-2", "H002", "1.00")]).await;
            assert_eq!(failed.map_err(|e| reason(&e)).map(|a| a.accepted), Err("HOSPITAL_NOT_PERMITTED".to_string()));
            let retried = upload(&mut cases_client(&channel, H1), &again, vec![case(&format!("Y{round}"), "H001", "1.00")]).await;
            assert_eq!(retried.map(|a| a.accepted).map_err(|e| reason(&e)), Ok(1), "{} round {round}: the immediate retry", backend.name);
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hospitals_with_one_request_id_are_independent() {
    for backend in backends("two_hospitals") {
        let dir = data_dir("two_hospitals", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        let mut h1 = cases_client(&channel, H1);
        let mut h2 = cases_client(&channel, H2);
        let first = upload(&mut h1, "shared", vec![case("A1", "H001", "100.00"), case("A2", "H001", "200.00")]).await.unwrap();
        assert_eq!(first.accepted, 2);
        // H002 leaves hospital_id empty: it defaults to the token's hospital.
        let second = upload(&mut h2, "shared", vec![case("B1", "", "300.00")]).await.unwrap();
        assert_eq!((second.accepted, second.results[0].case_id.as_str()), (1, "B1"), "{}: H002 gets its own answer", backend.name);
        let mut office = cases_client(&channel, FUND);
        let b1 = office.get_case(proto::GetCaseRequest { name: "hospitals/H002/cases/B1".into() }).await.expect("H002's case is stored");
        assert_eq!(b1.into_inner().case.unwrap().hospital_id, "H002");
        // The fund office's own upload and a review with the same id: independent too.
        assert_eq!(upload(&mut office, "shared", vec![case("F1", "H003", "1.00")]).await.unwrap().accepted, 1);
        let mut reviews = proto::review_service_client::ReviewServiceClient::new(authed(&channel, FUND));
        let violation = proto::CreateViolationRequest {
            request_id: "rid-77".into(),
            violation: Some(proto::Violation { case: "hospitals/H001/cases/A1".into(), kind: "upcoding".into(), ..Default::default() }),
        };
        let recorded = reviews.create_violation(violation.clone()).await.expect("violation").into_inner();
        assert_eq!(reviews.create_violation(violation).await.expect("retry").into_inner(), recorded, "a review retry: same answer");
        for id in ["violation:rid-77", "rid-77", "run:rid-77"] {
            let answer = upload(&mut h1, id, vec![case(&format!("K-{id}"), "H001", "5.00")]).await;
            assert_eq!(answer.map(|a| a.accepted).map_err(|e| e.code()), Ok(1), "{}: upload id {id:?}", backend.name);
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A raw `Case` whose `department` is not UTF-8 (prost would refuse to encode it).
fn undecodable_case(case_id: &str) -> Vec<u8> {
    let mut bytes = case(case_id, "H001", "10.00").encode_to_vec();
    bytes.extend_from_slice(&[13 << 3 | 2, 2, 0xff, 0xfe]);
    bytes
}

/// The raw `PreCheckCaseRequest` wire shape, so that a test can send bytes a typed client cannot.
#[derive(Clone, PartialEq, prost::Message)]
struct RawPreCheck {
    #[prost(bytes = "vec", tag = "1")]
    case: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_rejected_one_by_one_and_the_stream_goes_on() {
    for backend in backends("hostile") {
        let dir = data_dir("hostile", &backend);
        let server = Server::start(&dir, &backend, "max_request_bytes = 4096\n");
        let channel = server.channel().await;

        // Raw frames: good, undecodable, good with a NUL department, good.
        let mut nul = case("N1", "H001", "10.00");
        nul.department = "外科\0".into();
        let frames = vec![
            IngestFrame { request_id: b"raw-1".to_vec(), case: Some(case("G1", "H001", "10.00").encode_to_vec()), summary_only: false },
            IngestFrame { request_id: Vec::new(), case: Some(undecodable_case("U1")), summary_only: false },
            IngestFrame { request_id: Vec::new(), case: Some(nul.encode_to_vec()), summary_only: false },
            IngestFrame { request_id: Vec::new(), case: Some(case("G2", "H001", "10.00").encode_to_vec()), summary_only: false },
        ];
        let mut grpc = tonic::client::Grpc::new(authed(&channel, H1));
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<IngestFrame, proto::IngestCasesResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/dipdrg.v1.CaseService/IngestCases");
        let answer =
            grpc.client_streaming(Request::new(tokio_stream::iter(frames)), path, codec).await.expect("the stream survives").into_inner();
        assert_eq!((answer.submitted, answer.accepted, answer.rejected), (4, 2, 2), "{}: {answer:?}", backend.name);
        assert_eq!(answer.results[1].status, proto::RecordStatus::Rejected as i32);
        assert!(answer.results[1].field_violations[0].description.contains("UTF-8"), "{:?}", answer.results[1]);
        assert_eq!(answer.results[2].field_violations[0].field, "case.department", "NUL is refused per record on every backend");

        // A unary call that cannot be decoded: INVALID_ARGUMENT naming the field.
        let mut grpc = tonic::client::Grpc::new(authed(&channel, H1));
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<RawPreCheck, proto::PreCheckCaseResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/dipdrg.v1.PreCheckService/PreCheckCase");
        let error = grpc.unary(Request::new(RawPreCheck { case: undecodable_case("U2") }), path, codec).await.unwrap_err();
        assert_eq!((error.code(), reason(&error).as_str()), (Code::InvalidArgument, "UNDECODABLE_MESSAGE"), "{error:?}");
        assert_eq!(error.get_details_bad_request().expect("violations").field_violations[0].field, "case.department");

        let mut precheck = proto::pre_check_service_client::PreCheckServiceClient::new(authed(&channel, H1));
        // A batch pre-check message that cannot be decoded is answered; the stream goes on.
        let frames = vec![
            dipdrg::server::precheck::PreCheckFrame { case: Some(undecodable_case("U3")), include_trace: false },
            dipdrg::server::precheck::PreCheckFrame { case: Some(case("B0", "H001", "10.00").encode_to_vec()), include_trace: false },
        ];
        let mut grpc = tonic::client::Grpc::new(authed(&channel, H1));
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<dipdrg::server::precheck::PreCheckFrame, proto::PreCheckCaseResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/dipdrg.v1.PreCheckService/BatchPreCheckCases");
        let mut answers = grpc.streaming(Request::new(tokio_stream::iter(frames)), path, codec).await.expect("batch").into_inner();
        let first = answers.message().await.unwrap().expect("an answer for the undecodable message");
        assert!(first.field_violations[0].description.contains("UTF-8"), "{first:?}");
        let second = answers.message().await.unwrap().expect("the stream goes on");
        assert_eq!((second.case_id.as_str(), second.points.is_empty()), ("B0", false));

        // Money at rust_decimal's maximum: an answer or a coded error, never a dropped call; and
        // a run over it (if it was stored) ends, with a code if it failed.
        let extreme = case("MAX", "H001", "79228162514264337593543950335");
        match precheck
            .pre_check_case(proto::PreCheckCaseRequest { case: Some(extreme.clone()), include_trace: false, ..Default::default() })
            .await
        {
            Ok(answer) => assert_eq!(answer.into_inner().case_id, "MAX"),
            Err(error) => assert!(!reason(&error).is_empty() && error.code() != Code::Cancelled, "{error:?}"),
        }
        upload(&mut cases_client(&channel, FUND), "extreme", vec![extreme]).await.expect("an answer");
        let mut office = runs_client(&channel, FUND);
        let run = office.create_settlement_run(create("extreme")).await.unwrap().into_inner();
        let ended = watch_to_end(&mut office, &run.name).await;
        assert_ne!(ended.state, proto::RunState::Running as i32);
        if ended.state == proto::RunState::Failed as i32 {
            let code = ended.error.split(':').next().unwrap_or_default();
            assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "a coded error: {}", ended.error);
        }
        let annual =
            proto::CreateSettlementRunRequest { mode: proto::SettlementMode::Annual as i32, period: "2026".into(), ..Default::default() };
        let run = office.create_settlement_run(annual).await.unwrap().into_inner();
        assert_ne!(watch_to_end(&mut office, &run.name).await.state, proto::RunState::Running as i32, "an annual run ends too");
        // Every error carries a code, even those of the token check.
        let mut anonymous = CaseServiceClient::new(channel.clone());
        let error = anonymous.get_case(proto::GetCaseRequest { name: "hospitals/H001/cases/G1".into() }).await.unwrap_err();
        assert_eq!((error.code(), reason(&error).as_str()), (Code::Unauthenticated, "TOKEN_MISSING"));
        let error =
            cases_client(&channel, H1).get_case(proto::GetCaseRequest { name: "hospitals/H001/cases/none".into() }).await.unwrap_err();
        assert_eq!((error.code(), reason(&error).as_str()), (Code::NotFound, "NOT_FOUND"));

        // A batch pre-check message without a case is answered with a field violation.
        let requests = vec![
            proto::PreCheckCaseRequest { case: None, include_trace: false, ..Default::default() },
            proto::PreCheckCaseRequest { case: Some(case("B1", "H001", "10.00")), include_trace: false, ..Default::default() },
        ];
        let mut answers = precheck.batch_pre_check_cases(tokio_stream::iter(requests)).await.unwrap().into_inner();
        let first = answers.message().await.unwrap().expect("an answer for the empty message");
        assert_eq!(first.field_violations[0].field, "case", "{first:?}");
        assert!(!answers.message().await.unwrap().expect("the stream goes on").points.is_empty());

        // Oversized: RESOURCE_EXHAUSTED, unary and mid-stream (what came before is stored).
        let mut huge = case("X1", "H001", "10.00");
        huge.diagnoses = (0..2000).map(|i| format!("K80.{i:03}")).collect();
        let error = precheck
            .pre_check_case(proto::PreCheckCaseRequest { case: Some(huge.clone()), include_trace: false, ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!((error.code(), reason(&error).as_str()), (Code::ResourceExhausted, "MESSAGE_TOO_LARGE"), "{error:?}");
        let mut h1 = cases_client(&channel, H1);
        let error = upload(&mut h1, "big", vec![case("S1", "H001", "1.00"), case("S2", "H001", "1.00"), huge, case("S3", "H001", "1.00")])
            .await
            .unwrap_err();
        assert_eq!((error.code(), stored_before(&error)), (Code::ResourceExhausted, Some(2)), "{error:?}");
        let h001 = stored(&mut cases_client(&channel, FUND), "hospitals/H001").await;
        assert!(h001.contains_key("hospitals/H001/cases/S2") && !h001.contains_key("hospitals/H001/cases/S3"), "{h001:?}");

        // Another hospital's case: PERMISSION_DENIED; the valid records before it are stored,
        // and the request_id stays free for the corrected upload.
        let mixed = vec![case("P1", "", "1.00"), case("P2", "H001", "1.00"), case("P3", "H002", "1.00"), case("P4", "H001", "1.00")];
        let error = upload(&mut h1, "mixed", mixed).await.unwrap_err();
        assert_eq!((error.code(), reason(&error).as_str()), (Code::PermissionDenied, "HOSPITAL_NOT_PERMITTED"));
        assert_eq!(stored_before(&error), Some(2));
        let corrected = vec![case("P1", "", "1.00"), case("P2", "H001", "1.00"), case("P4", "H001", "1.00")];
        let answer = upload(&mut h1, "mixed", corrected).await.expect("the id is free again");
        assert_eq!((answer.unchanged, answer.accepted), (2, 1), "P1 and P2 were stored by the failed upload");
        let h002 = stored(&mut cases_client(&channel, FUND), "hospitals/H002").await;
        assert!(h002.is_empty(), "nothing of H002 came through H001's token: {h002:?}");

        // Summary-only answers: counts and the rejected records only.
        let mut many: Vec<_> = (0..500).map(|i| message("summary", case(&format!("M{i}"), "H001", "1.00"))).collect();
        many[0].summary_only = true;
        many.push(message("", case("", "H001", "1.00")));
        let answer = h1.ingest_cases(tokio_stream::iter(many)).await.unwrap().into_inner();
        assert_eq!((answer.accepted, answer.rejected, answer.results.len()), (500, 1, 1));
        assert_eq!(answer.results[0].index, 500);

        // Bad request ids: INVALID_ARGUMENT before anything is stored.
        for bad in ["x".repeat(129), "a\nb".to_string()] {
            let error = upload(&mut h1, &bad, vec![case("R1", "H001", "1.00")]).await.unwrap_err();
            assert_eq!((error.code(), reason(&error).as_str()), (Code::InvalidArgument, "BAD_REQUEST_ID"));
        }
        assert!(!stored(&mut cases_client(&channel, FUND), "hospitals/H001").await.contains_key("hospitals/H001/cases/R1"));

        // Hostile page tokens and names: INVALID_ARGUMENT alike on both backends (not UNAVAILABLE).
        let bad_token =
            h1.list_cases(proto::ListCasesRequest { parent: "hospitals/H001".into(), page_size: 1, page_token: "001f00".into() }).await;
        assert_eq!(bad_token.unwrap_err().code(), Code::InvalidArgument);
        let nul_name = h1.get_case(proto::GetCaseRequest { name: "hospitals/H001/cases/a\0b".into() }).await.unwrap_err();
        assert_eq!((nul_name.code(), reason(&nul_name).as_str()), (Code::InvalidArgument, "TEXT_HAS_NUL"), "{}", backend.name);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_every_service_and_health() {
    let backend = Backend { name: "sqlite", database: None };
    let dir = data_dir("reflection", &backend);
    let server = Server::start(&dir, &backend, "");
    let channel = server.channel().await;
    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let answer =
        client.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner().message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(listed)) = answer.message_response else { panic!() };
    let v1_names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let answer =
        client.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner().message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
        panic!()
    };
    let v1alpha_names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for names in [&v1_names, &v1alpha_names] {
        for wanted in ["dipdrg.v1.CaseService", "dipdrg.v1.SettlementService", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cases of five hospitals in March 2026, for runs.
fn region_cases(count: usize) -> Vec<proto::Case> {
    (0..count).map(|i| case(&format!("R{i:06}"), &format!("H00{}", 1 + i % 5), &format!("{}.00", 2000 + i % 7000))).collect()
}

async fn upload_summary(client: &mut CaseServiceClient<Authed>, request_id: &str, cases: Vec<proto::Case>) -> proto::IngestCasesResponse {
    let mut messages: Vec<_> = cases.into_iter().map(|c| message(request_id, c)).collect();
    messages[0].summary_only = true;
    client.ingest_cases(tokio_stream::iter(messages)).await.expect("upload").into_inner()
}

fn create(request_id: &str) -> proto::CreateSettlementRunRequest {
    proto::CreateSettlementRunRequest {
        request_id: request_id.into(),
        mode: proto::SettlementMode::Monthly as i32,
        period: "2026-03".into(),
        ..Default::default()
    }
}

async fn watch_to_end(client: &mut SettlementServiceClient<Authed>, name: &str) -> proto::SettlementRun {
    let mut stream = client.watch_settlement_run(proto::GetSettlementRunRequest { name: name.into() }).await.expect("watch").into_inner();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(update) = tokio::time::timeout_at(deadline.into(), stream.message()).await.expect("the watch ends").expect("watch item")
    {
        last = Some(update);
    }
    last.expect("at least the run")
}

async fn all_runs(client: &mut SettlementServiceClient<Authed>) -> Vec<proto::SettlementRun> {
    let mut runs = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_settlement_runs(proto::ListSettlementRunsRequest { page_size: 1000, page_token: token.clone() })
            .await
            .expect("list runs")
            .into_inner();
        runs.extend(page.settlement_runs);
        if page.next_page_token.is_empty() {
            return runs;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_loses_nothing_acknowledged() {
    for backend in backends("kill_uploads") {
        let dir = data_dir("kill_uploads", &backend);
        let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
        let mut unacknowledged: Vec<(String, Vec<proto::Case>)> = Vec::new();
        let started = Instant::now();
        for round in 0..4u64 {
            let mut server = Server::start(&dir, &backend, "");
            let channel = server.channel().await;
            let uploads: Vec<_> = (0..3)
                .map(|k| {
                    let request_id = format!("round{round}-upload{k}");
                    let cases: Vec<_> = (0..4000)
                        .map(|i| {
                            case(&format!("K{round}-{k}-{i:05}"), &format!("H00{}", 1 + (i % 3)), &format!("{}.{:02}", 100 + round, k))
                        })
                        .collect();
                    let mut client = cases_client(&channel, FUND);
                    let sent = cases.clone();
                    (request_id.clone(), sent, tokio::spawn(async move { upload(&mut client, &request_id, cases).await }))
                })
                .collect();
            // Kill at a different moment each round: early, mid-way, late.
            tokio::time::sleep(Duration::from_millis(15 + 60 * round)).await;
            server.kill9();
            for (request_id, cases, handle) in uploads {
                match handle.await.unwrap() {
                    Ok(answer) => {
                        assert_eq!(answer.accepted + answer.replaced + answer.unchanged, 4000);
                        for c in &cases {
                            acknowledged.insert(format!("hospitals/{}/cases/{}", c.hospital_id, c.case_id), c.total_cost.clone());
                        }
                    }
                    Err(_) => unacknowledged.push((request_id, cases)),
                }
            }
            // Restart: every acknowledged case is there, with its content.
            let server = Server::start(&dir, &backend, "");
            let channel = server.channel().await;
            let all = stored(&mut cases_client(&channel, FUND), "hospitals/-").await;
            for (name, cost) in &acknowledged {
                assert_eq!(all.get(name), Some(cost), "{}: round {round}: acknowledged {name} lost", backend.name);
            }
            // An interrupted upload is re-sent under its request_id: it is not stuck, and
            // afterwards everything is stored.
            for (request_id, cases) in unacknowledged.drain(..) {
                let answer = upload(&mut cases_client(&channel, FUND), &request_id, cases.clone()).await;
                let answer = answer.unwrap_or_else(|e| panic!("{}: re-sending {request_id}: {e:?}", backend.name));
                assert_eq!(answer.accepted + answer.replaced + answer.unchanged, 4000);
                for c in &cases {
                    acknowledged.insert(format!("hospitals/{}/cases/{}", c.hospital_id, c.case_id), c.total_cost.clone());
                }
            }
            let all = stored(&mut cases_client(&channel, FUND), "hospitals/-").await;
            assert_eq!(all, acknowledged, "{}: round {round}: exactly what was acknowledged", backend.name);
            drop(server);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "bounded: {:?}", started.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_leaves_no_run_running_and_the_request_can_be_re_sent() {
    for backend in backends("kill_runs") {
        let dir = data_dir("kill_runs", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        upload_summary(&mut cases_client(&channel, FUND), "region", region_cases(40_000)).await;
        drop(server);
        let mut interrupted = 0;
        for round in 0..3 {
            let mut server = Server::start(&dir, &backend, "");
            let channel = server.channel().await;
            let request = create(&format!("run-{round}"));
            let run = runs_client(&channel, FUND).create_settlement_run(request.clone()).await.expect("create").into_inner();
            assert_eq!(run.state, proto::RunState::Running as i32);
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(40 * round)).await;
            }
            server.kill9();
            let server = Server::start(&dir, &backend, "");
            let channel = server.channel().await;
            let mut runs = runs_client(&channel, FUND);
            let after = runs.get_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.unwrap().into_inner();
            assert!(
                all_runs(&mut runs).await.iter().all(|r| r.state != proto::RunState::Running as i32),
                "{}: no run RUNNING",
                backend.name
            );
            let again = runs.create_settlement_run(request).await.expect("re-send").into_inner();
            if after.state == proto::RunState::Failed as i32 {
                interrupted += 1;
                assert!(after.error.starts_with("RUN_INTERRUPTED: "), "{}", after.error);
                assert_ne!(again.name, run.name, "the interrupted request starts a new run");
                let finished = watch_to_end(&mut runs, &again.name).await;
                assert_eq!(finished.state, proto::RunState::Succeeded as i32, "{}", finished.error);
                assert_eq!(finished.cases, 40_000);
            } else {
                assert_eq!(after.state, proto::RunState::Succeeded as i32);
                assert_eq!(again.name, run.name, "a finished run's request returns it");
            }
            drop(server);
        }
        assert!(interrupted >= 1, "{}: at least the immediate kill interrupts its run", backend.name);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_watcher_and_an_endless_upload_exits_promptly() {
    for backend in backends("sigterm") {
        let dir = data_dir("sigterm", &backend);
        let mut server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        upload_summary(&mut cases_client(&channel, FUND), "region", region_cases(40_000)).await;
        let mut runs = runs_client(&channel, FUND);
        let run = runs.create_settlement_run(create("run")).await.expect("create").into_inner();
        let mut watch = runs.watch_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.unwrap().into_inner();
        // An upload that never ends: one record, then the client keeps the stream open.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender.send(message("endless", case("E1", "H001", "1.00"))).await.unwrap();
        let mut client = cases_client(&channel, FUND);
        let endless = tokio::spawn(async move { client.ingest_cases(tokio_stream::wrappers::ReceiverStream::new(receiver)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let took = tokio::task::spawn_blocking(move || {
            let took = server.terminate(Duration::from_secs(20));
            (took, server)
        })
        .await
        .unwrap()
        .0;
        assert!(took < Duration::from_secs(10), "{}: SIGTERM took {took:?}", backend.name);
        // The watcher is not left hanging: its stream ends (SERVER_SHUTTING_DOWN or a closed
        // connection), whether the run had finished or not.
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match watch.message().await {
                    Ok(Some(_)) => continue,
                    other => return other.map(|_| ()),
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "{}: the watch ended", backend.name);
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(5), endless).await;
        // After a restart no run is RUNNING.
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        assert!(all_runs(&mut runs_client(&channel, FUND)).await.iter().all(|r| r.state != proto::RunState::Running as i32));
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_sees_runs_without_the_regions_totals() {
    let backend = Backend { name: "sqlite", database: None };
    let dir = data_dir("run_totals", &backend);
    let server = Server::start(&dir, &backend, "");
    let channel = server.channel().await;
    upload_summary(&mut cases_client(&channel, FUND), "region", region_cases(500)).await;
    let mut office = runs_client(&channel, FUND);
    let run = office.create_settlement_run(create("r")).await.unwrap().into_inner();
    let finished = watch_to_end(&mut office, &run.name).await;
    assert_eq!(finished.state, proto::RunState::Succeeded as i32, "{}", finished.error);
    assert!(finished.cases == 500 && !finished.gross_total.is_empty() && !finished.point_values.is_empty());
    let mut hospital = runs_client(&channel, H1);
    let seen = hospital.get_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.unwrap().into_inner();
    let listed = all_runs(&mut hospital).await;
    let watched = watch_to_end(&mut hospital, &run.name).await;
    for view in [&seen, &listed[0], &watched] {
        assert_eq!((view.cases, view.gross_total.as_str(), view.point_values.len()), (0, "", 0), "{view:?}");
        assert_eq!((view.state, view.name.as_str()), (finished.state, finished.name.as_str()));
    }
    // A re-run over changed cases is refused up front.
    upload_summary(&mut cases_client(&channel, FUND), "change", vec![case("R000000", "H001", "7.00")]).await;
    let refused = office
        .create_settlement_run(proto::CreateSettlementRunRequest { rerun_of: run.name.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "CASES_CHANGED"), "{refused:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The PostgreSQL binaries' directory (Debian's layout).
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect();
    found.sort();
    found.pop().filter(|b| b.join("pg_ctl").exists())
}

/// `pg_ctl` on the cluster in `dir/db` (listening on `port`), as the postgres user when running
/// as root.
fn pg_ctl(dir: &Path, port: u32, action: &str) {
    let bin = pg_bin().expect("PostgreSQL binaries").join("pg_ctl");
    let db = dir.join("db");
    let log = dir.join("log");
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    command.arg("-D").arg(&db).arg("-l").arg(&log).args(["-w", "-m", "fast"]);
    if action == "start" {
        // The options of .ci/postgres.sh (a restart reuses them by itself).
        command.arg("-o").arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display()));
    }
    let status = command.arg(action).stdout(Stdio::null()).status().expect("pg_ctl");
    assert!(status.success(), "pg_ctl {action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reconnects_after_a_postgresql_restart() {
    if !cfg!(feature = "postgres") || std::env::var("DIPDRG_TEST_DATABASE_URL").is_err() || pg_bin().is_none() {
        eprintln!("skipped: PostgreSQL is not configured (DIPDRG_TEST_DATABASE_URL) or not installed");
        return;
    }
    // A server of its own, so that restarting it disturbs no other test.
    let pg_dir = std::env::temp_dir().join(format!("dipdrg-faults-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pg_dir);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join(".ci/postgres.sh"))
        .env("DIPDRG_TEST_PG_PORT", (56000 + std::process::id() % 1000).to_string())
        .env("DIPDRG_TEST_PG_DATA", &pg_dir)
        .output()
        .expect("postgres.sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let url = String::from_utf8_lossy(&output.stdout).trim().to_string();
    // The script moves on from a taken port: the one it chose is in the URL.
    let port: u32 = url.split_whitespace().find_map(|kv| kv.strip_prefix("port=")).and_then(|p| p.parse().ok()).expect("port in the URL");
    let _cluster = Cluster { dir: pg_dir.clone(), port };
    let backend = Backend { name: "postgres-restart", database: Some((url, "restart".into())) };
    let dir = data_dir("pg_restart", &backend);
    let server = Server::start(&dir, &backend, "");
    let channel = server.channel().await;
    let mut office = cases_client(&channel, FUND);
    assert_eq!(upload(&mut office, "before", vec![case("B1", "H001", "1.00")]).await.unwrap().accepted, 1);

    // Down: calls fail promptly with UNAVAILABLE (STORE_UNAVAILABLE), never hang.
    pg_ctl(&pg_dir, port, "stop");
    let started = Instant::now();
    let error = upload(&mut office, "during", vec![case("D1", "H001", "1.00")]).await.unwrap_err();
    assert_eq!((error.code(), reason(&error).as_str()), (Code::Unavailable, "STORE_UNAVAILABLE"), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "failed in {:?}", started.elapsed());

    // Back: the same upload, re-sent under its request_id, succeeds within a bounded time.
    pg_ctl(&pg_dir, port, "start");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match upload(&mut office, "during", vec![case("D1", "H001", "1.00")]).await {
            Ok(answer) => break answer,
            Err(e) if Instant::now() < deadline && e.code() == Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("no reconnection: {e:?}"),
        }
    };
    assert_eq!(answer.accepted, 1);
    // A restart while idle: the pool's connections are dead; the next call reconnects.
    pg_ctl(&pg_dir, port, "restart");
    let all = stored(&mut office, "hospitals/H001").await;
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), ["hospitals/H001/cases/B1", "hospitals/H001/cases/D1"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A throwaway PostgreSQL cluster, stopped and removed on drop (a failed test leaves none).
struct Cluster {
    dir: PathBuf,
    port: u32,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| pg_ctl(&self.dir, self.port, "stop"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A run's statements as (key, gross) pairs.
async fn grosses(client: &mut SettlementServiceClient<Authed>, run: &str) -> Vec<(String, String)> {
    let listed = client
        .list_statements(proto::ListStatementsRequest { parent: run.into(), page_size: 1000, page_token: String::new() })
        .await
        .expect("statements")
        .into_inner()
        .statements;
    listed.into_iter().map(|s| (s.name.rsplit('/').next().unwrap_or_default().to_string(), s.gross)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_during_concurrent_uploads_equals_an_idle_run_over_one_state() {
    for backend in backends("snapshot_run") {
        let dir = data_dir("snapshot_run", &backend);
        let server = Server::start(&dir, &backend, "");
        let channel = server.channel().await;
        let mut office = cases_client(&channel, FUND);
        let base = region_cases(30_000);
        upload_summary(&mut office, "base", base.clone()).await;
        // One upload of 2,000 cases (one transaction) changes cases of every hospital, across the
        // pages a paged reader would read: state A (base) and state B (changed).
        let changed: Vec<proto::Case> = base
            .iter()
            .step_by(15)
            .take(2000)
            .map(|c| proto::Case { total_cost: "99999.00".into(), patient_paid: "0.00".into(), ..c.clone() })
            .collect();
        let mut runs = runs_client(&channel, FUND);
        let idle_a = runs.create_settlement_run(create("")).await.unwrap().into_inner();
        assert_eq!(watch_to_end(&mut runs, &idle_a.name).await.state, proto::RunState::Succeeded as i32);
        let state_a = grosses(&mut runs, &idle_a.name).await;
        let mut seen = Vec::new();
        for round in 0..3 {
            // Toggle between the states while a run reads.
            let (to, id) = if round % 2 == 0 {
                (changed.clone(), format!("b{round}"))
            } else {
                (base[..].iter().step_by(15).take(2000).cloned().collect(), format!("a{round}"))
            };
            let mut uploader = cases_client(&channel, FUND);
            let upload = tokio::spawn(async move { upload_summary(&mut uploader, &id, to).await });
            let during = runs.create_settlement_run(create("")).await.unwrap().into_inner();
            upload.await.unwrap();
            assert_eq!(watch_to_end(&mut runs, &during.name).await.state, proto::RunState::Succeeded as i32);
            seen.push(grosses(&mut runs, &during.name).await);
        }
        // State B, idle.
        upload_summary(&mut office, "b-final", changed.clone()).await;
        let idle_b = runs.create_settlement_run(create("")).await.unwrap().into_inner();
        assert_eq!(watch_to_end(&mut runs, &idle_b.name).await.state, proto::RunState::Succeeded as i32);
        let state_b = grosses(&mut runs, &idle_b.name).await;
        assert_ne!(state_a, state_b, "the two states settle differently");
        for (round, statements) in seen.iter().enumerate() {
            assert!(*statements == state_a || *statements == state_b, "{}: round {round} mixed two states: {statements:?}", backend.name);
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_id_with_a_dot_works_everywhere() {
    for backend in backends("dotted") {
        let dir = data_dir("dotted", &backend);
        std::fs::create_dir_all(&dir).unwrap();
        // The demo DIP policy with two more hospitals: `H.1`, and `H`, which a split on `.`
        // would confuse with it.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let demo = std::fs::read_to_string(root.join("policies/demo-city-2026-dip.toml")).unwrap();
        let policy = demo.replacen(
            "[hospitals]\n",
            "[hospitals]\n\"H.1\" = { level = \"2\", name = \"点医院\" }\nH = { level = \"2\", name = \"H\" }\n",
            1,
        );
        assert_ne!(policy, demo);
        let policy_path = dir.join("dotted.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let server = Server::start(&dir, &backend, &format!("policy = {:?}\n", policy_path.display().to_string()));
        let channel = server.channel().await;
        let answer =
            upload(&mut cases_client(&channel, HDOT), "dot", vec![case("D1", "", "500.00"), case("D2", "H.1", "600.00")]).await.unwrap();
        assert_eq!(answer.accepted, 2, "{answer:?}");
        assert_eq!(upload(&mut cases_client(&channel, FUND), "h", vec![case("X1", "H", "700.00")]).await.unwrap().accepted, 1);
        let got =
            cases_client(&channel, HDOT).get_case(proto::GetCaseRequest { name: "hospitals/H.1/cases/D1".into() }).await.expect("get");
        assert_eq!(got.into_inner().case.unwrap().hospital_id, "H.1");
        let mut office = runs_client(&channel, FUND);
        let run = office.create_settlement_run(create("dotted")).await.unwrap().into_inner();
        let finished = watch_to_end(&mut office, &run.name).await;
        assert_eq!(finished.state, proto::RunState::Succeeded as i32, "{}", finished.error);
        let all = office
            .list_statements(proto::ListStatementsRequest { parent: run.name.clone(), page_size: 100, page_token: String::new() })
            .await
            .unwrap()
            .into_inner()
            .statements;
        let by_hospital: Vec<(String, i64)> = all.iter().map(|s| (s.hospital_id.clone(), s.cases)).collect();
        assert_eq!(by_hospital, [("H.1".to_string(), 2), ("H".to_string(), 1)], "{}", backend.name);
        let own = runs_client(&channel, HDOT)
            .list_statements(proto::ListStatementsRequest { parent: run.name.clone(), page_size: 100, page_token: String::new() })
            .await
            .unwrap()
            .into_inner()
            .statements;
        assert_eq!(own.len(), 1, "{}: H.1 sees its own statement: {own:?}", backend.name);
        assert_eq!((own[0].hospital_id.as_str(), own[0].cases), ("H.1", 2));
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

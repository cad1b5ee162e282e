//! The real server on 127.0.0.1 with an ephemeral port, driven by the generated clients.

use dipdrg::server::proto;
use proto::case_service_client::CaseServiceClient;
use proto::pre_check_service_client::PreCheckServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub(crate) const FUND_OFFICE: &str = "fund-office-token-1";
const H001: &str = "hospital-h001-token";

/// A running `dipdrg serve`; killed on drop.
pub(crate) struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path, database: Option<(&str, &str)>) -> Server {
    start_with(data_dir, database, "")
}

/// Starts the server with `extra` top-level config keys.
pub(crate) fn start_with(data_dir: &Path, database: Option<(&str, &str)>, extra: &str) -> Server {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = data_dir.join("server.toml");
    std::fs::create_dir_all(data_dir).unwrap();
    let database = database.map(|(url, schema)| format!("database_url = {url:?}\ndatabase_schema = {schema:?}\n")).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "{database}{extra}data_dir = {:?}\npolicies = [\"policies/demo-city-2026-drg.toml\"]\ntable_sets = [\"grouper-tables/demo\"]\n[[tokens]]\ntoken = \"{FUND_OFFICE}\"\nrole = \"fund_office\"\n[[tokens]]\ntoken = \"{H001}\"\nrole = \"hospital\"\nhospital_id = \"H001\"\n",
            data_dir.join("store").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(&root)
        .env("DIPDRG_METRICS_LISTEN", "127.0.0.1:0")
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
    let address = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    Server { child, address }
}

type AddToken = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;
pub(crate) type Authed = InterceptedService<Channel, AddToken>;

pub(crate) async fn channel(server: &Server) -> Channel {
    let endpoint = format!("http://{}", server.address);
    for _ in 0..50 {
        if let Ok(channel) = Channel::from_shared(endpoint.clone()).unwrap().connect().await {
            return channel;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("server at {endpoint} did not answer");
}

pub(crate) fn with_token(channel: Channel, token: Option<&'static str>) -> Authed {
    let add: AddToken = Box::new(move |mut request: Request<()>| {
        if let Some(token) = token {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| Status::internal("token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    });
    InterceptedService::new(channel, add)
}

fn case(case_id: &str, hospital: &str, cost: &str) -> proto::Case {
    proto::Case {
        case_id: case_id.into(),
        hospital_id: hospital.into(),
        patient_id: "P1".into(),
        fund: proto::Fund::Employee as i32,
        sex: Some(1),
        age: Some(56),
        admission_date: "2026-03-01".into(),
        discharge_date: "2026-03-07".into(),
        diagnoses: vec!["K80.100".into()],
        procedures: vec![],
        total_cost: cost.into(),
        fund_paid: "0".into(),
        patient_paid: "3000.00".into(),
        ..Default::default()
    }
}

fn ingest_request(case: proto::Case, request_id: &str) -> proto::IngestCasesRequest {
    proto::IngestCasesRequest { request_id: request_id.into(), case: Some(case), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_end_to_end_on_sqlite() {
    end_to_end("sqlite", None).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_end_to_end_on_postgres() {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set (.ci/run starts a server and sets it)");
        return;
    };
    let schema = format!("server_{}", std::process::id());
    end_to_end("postgres", Some((&url, &schema))).await;
}

/// A run's statements, each encoded, with the run's own name taken out of its name.
async fn statement_bytes(client: &mut proto::settlement_service_client::SettlementServiceClient<Authed>, run: &str) -> Vec<Vec<u8>> {
    let listed = client
        .list_statements(proto::ListStatementsRequest { parent: run.to_string(), page_size: 0, page_token: String::new() })
        .await
        .expect("statements")
        .into_inner()
        .statements;
    listed
        .into_iter()
        .map(|mut s| {
            s.name = s.name.replacen(run, "", 1);
            prost::Message::encode_to_vec(&s)
        })
        .collect()
}

async fn end_to_end(backend: &str, database: Option<(&str, &str)>) {
    let data_dir = std::env::temp_dir().join(format!("dipdrg-server-{backend}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let server = start(&data_dir, database);
    let channel = channel(&server).await;

    // Health.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: "dipdrg.v1.PreCheckService".into() })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Reflection, as `grpcurl list` uses it: every service is listed.
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let list = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(tokio_stream::iter(vec![list])).await.expect("reflection").into_inner();
    let answer = answers.message().await.expect("reflection answer").expect("one answer");
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(listed)) = answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let services: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for wanted in ["dipdrg.v1.PreCheckService", "dipdrg.v1.SettlementService", "dipdrg.v1.VersionService", "dipdrg.v1.AuditService"] {
        assert!(services.iter().any(|s| s == wanted), "{wanted} missing from {services:?}");
    }

    // No token: UNAUTHENTICATED.
    let mut anonymous = PreCheckServiceClient::new(with_token(channel.clone(), None));
    let refused = anonymous
        .pre_check_case(proto::PreCheckCaseRequest {
            case: Some(case("X1", "H001", "12000.00")),
            include_trace: false,
            ..Default::default()
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    // Pre-check as the hospital: group, points, payment, trace.
    let mut hospital = PreCheckServiceClient::new(with_token(channel.clone(), Some(H001)));
    let checked = hospital
        .pre_check_case(proto::PreCheckCaseRequest {
            case: Some(case("X1", "H001", "12000.00")),
            include_trace: true,
            ..Default::default()
        })
        .await
        .expect("pre-check")
        .into_inner();
    assert_eq!(checked.status, "CORE");
    assert!(checked.group.starts_with("K80.1-"), "{}", checked.group);
    assert!(!checked.points.is_empty() && !checked.estimated_payment.is_empty(), "{checked:?}");
    assert!(checked.trace.iter().any(|t| t.starts_with("chosen")), "{:?}", checked.trace);
    let points: rust_decimal::Decimal = checked.points.parse().unwrap();
    let value: rust_decimal::Decimal = checked.point_value.parse().unwrap();
    let payment: rust_decimal::Decimal = checked.estimated_payment.parse().unwrap();
    assert_eq!(payment, (points * value).round_dp(2));

    // Bad fields: INVALID_ARGUMENT naming them.
    let mut bad = case("X2", "H001", "-5");
    bad.admission_date = "2026-13-01".into();
    let error = hospital
        .pre_check_case(proto::PreCheckCaseRequest { case: Some(bad), include_trace: false, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        error.get_details_bad_request().expect("field details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, vec!["case.admission_date", "case.total_cost"]);

    // Another hospital's case: PERMISSION_DENIED.
    let denied = hospital
        .pre_check_case(proto::PreCheckCaseRequest { case: Some(case("X3", "H002", "100")), include_trace: false, ..Default::default() })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);

    // Batch pre-check: a bad record in the middle answers with field errors; the stream goes on.
    let requests = vec![
        proto::PreCheckCaseRequest { case: Some(case("B1", "H001", "9000.00")), include_trace: false, ..Default::default() },
        proto::PreCheckCaseRequest { case: Some(case("B2", "H001", "abc")), include_trace: false, ..Default::default() },
        proto::PreCheckCaseRequest { case: Some(case("B3", "H001", "15000.00")), include_trace: false, ..Default::default() },
    ];
    let mut stream = hospital.batch_pre_check_cases(tokio_stream::iter(requests)).await.expect("batch").into_inner();
    let mut answers = Vec::new();
    while let Some(answer) = stream.message().await.expect("stream item") {
        answers.push(answer);
    }
    assert_eq!(answers.iter().map(|a| a.case_id.as_str()).collect::<Vec<_>>(), ["B1", "B2", "B3"]);
    assert_eq!(answers[1].field_violations[0].field, "case.total_cost");
    assert!(answers[0].field_violations.is_empty() && !answers[2].points.is_empty());

    // Ingestion with bad records mixed in: accepted + rejected = sent.
    let mut cases_client = CaseServiceClient::new(with_token(channel.clone(), Some(H001)));
    let mut wrong_fund = case("C4", "H001", "100.00");
    wrong_fund.fund = 9;
    let upload = vec![
        ingest_request(case("C1", "H001", "12000.00"), "upload-1"),
        ingest_request(case("C2", "H001", "8000.00"), ""),
        proto::IngestCasesRequest { case: None, ..Default::default() },
        ingest_request(wrong_fund, ""),
        ingest_request(case("C5", "H001", "6000.00"), ""),
    ];
    let answer = cases_client.ingest_cases(tokio_stream::iter(upload.clone())).await.expect("ingest").into_inner();
    assert_eq!((answer.submitted, answer.accepted, answer.rejected), (5, 3, 2));
    assert_eq!(answer.accepted + answer.replaced + answer.unchanged + answer.rejected, answer.submitted);
    assert_eq!(answer.results[2].field_violations[0].field, "case", "a message without a case is rejected");
    assert_eq!(answer.results[3].field_violations[0].field, "case.fund");

    // The same upload again (same request_id): the first answer, nothing applied twice.
    let again = cases_client.ingest_cases(tokio_stream::iter(upload)).await.expect("retry").into_inner();
    assert_eq!(again, answer);

    // A resubmission with other content replaces; with the same content changes nothing.
    let resubmit = vec![ingest_request(case("C1", "H001", "12500.00"), "upload-2"), ingest_request(case("C2", "H001", "8000.00"), "")];
    let answer = cases_client.ingest_cases(tokio_stream::iter(resubmit)).await.expect("resubmit").into_inner();
    assert_eq!((answer.replaced, answer.unchanged, answer.accepted), (1, 1, 0));

    // Paging: two at a time, as the fund office over every hospital.
    let mut office = CaseServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = office
            .list_cases(proto::ListCasesRequest { parent: "hospitals/-".into(), page_size: 2, page_token: token.clone() })
            .await
            .expect("page")
            .into_inner();
        assert!(page.cases.len() <= 2);
        names.extend(page.cases.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["hospitals/H001/cases/C1", "hospitals/H001/cases/C2", "hospitals/H001/cases/C5"]);
    let stored = office.get_case(proto::GetCaseRequest { name: "hospitals/H001/cases/C1".into() }).await.expect("get").into_inner();
    assert_eq!(stored.case.expect("case").total_cost, "12500.00", "the replacement is what is stored");

    // Role denials on reads.
    let other =
        cases_client.list_cases(proto::ListCasesRequest { parent: "hospitals/H002".into(), page_size: 0, page_token: String::new() }).await;
    assert_eq!(other.unwrap_err().code(), Code::PermissionDenied);
    let everyone =
        cases_client.list_cases(proto::ListCasesRequest { parent: "hospitals/-".into(), page_size: 0, page_token: String::new() }).await;
    assert_eq!(everyone.unwrap_err().code(), Code::PermissionDenied);

    // A confirmed violation, recorded by the fund office, reaches the settlement.
    let mut reviews = proto::review_service_client::ReviewServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let violation = |case: &str| proto::CreateViolationRequest {
        request_id: String::new(),
        violation: Some(proto::Violation { case: case.into(), kind: "split_admission".into(), ..Default::default() }),
    };
    let recorded = reviews.create_violation(violation("hospitals/H001/cases/C2")).await.expect("violation").into_inner();
    assert_eq!(recorded.name, "hospitals/H001/cases/C2/violation");
    let unknown = reviews.create_violation(violation("hospitals/H001/cases/NOPE")).await;
    assert_eq!(unknown.unwrap_err().code(), Code::FailedPrecondition, "a violation needs an ingested case");
    let mut hospital_reviews = proto::review_service_client::ReviewServiceClient::new(with_token(channel.clone(), Some(H001)));
    assert_eq!(hospital_reviews.create_violation(violation("hospitals/H001/cases/C1")).await.unwrap_err().code(), Code::PermissionDenied);
    let listed = hospital_reviews
        .list_violations(proto::ListAnnotationsRequest { parent: "hospitals/H001".into(), page_size: 0, page_token: String::new() })
        .await
        .expect("own violations")
        .into_inner();
    assert_eq!(listed.violations.len(), 1, "a hospital sees the violations recorded against it");

    // A monthly settlement run over the stored cases, as the fund office; watched to completion.
    let mut settlements = proto::settlement_service_client::SettlementServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let create = proto::CreateSettlementRunRequest {
        request_id: "run-march".into(),
        mode: proto::SettlementMode::Monthly as i32,
        period: "2026-03".into(),
        ..Default::default()
    };
    let run = settlements.create_settlement_run(create.clone()).await.expect("create run").into_inner();
    assert_eq!(run.state, proto::RunState::Running as i32);
    assert!(!run.policy_version.is_empty() && !run.tables_fingerprint.is_empty(), "the run records its versions");
    let mut watch =
        settlements.watch_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.expect("watch").into_inner();
    let mut finished = run.clone();
    while let Some(update) = watch.message().await.expect("watch item") {
        finished = update;
    }
    assert_eq!(finished.state, proto::RunState::Succeeded as i32, "{}", finished.error);
    assert_eq!(finished.cases, 3);
    assert_eq!(finished.point_values.len(), 2);
    let again = settlements.create_settlement_run(create).await.expect("retry").into_inner();
    assert_eq!(again.name, run.name, "the same request_id returns the same run");
    let statements = settlements
        .list_statements(proto::ListStatementsRequest { parent: run.name.clone(), page_size: 1, page_token: String::new() })
        .await
        .expect("statements")
        .into_inner();
    assert_eq!(statements.statements.len(), 1);
    let statement = &statements.statements[0];
    assert_eq!((statement.hospital_id.as_str(), statement.cases), ("H001", 3));
    assert_eq!(statement.gross, finished.gross_total, "one statement: its gross is the run's total");
    let gross: rust_decimal::Decimal = statement.gross.parse().unwrap();
    let paid: rust_decimal::Decimal = statement.paid_now.parse().unwrap();
    let deposit: rust_decimal::Decimal = statement.deposit.parse().unwrap();
    let patients: rust_decimal::Decimal = statement.patient_paid.parse().unwrap();
    assert_eq!(paid + deposit, gross - patients, "paid now + deposit = gross − patients' payments");
    let points: rust_decimal::Decimal = statement.points.parse().unwrap();
    let penalty: rust_decimal::Decimal = statement.penalty_points.parse().unwrap();
    let counted: rust_decimal::Decimal = statement.counted_points.parse().unwrap();
    assert!(penalty > rust_decimal::Decimal::ZERO, "the split admission is penalised");
    assert_eq!(counted, points - penalty);
    let mut hospital_runs = proto::settlement_service_client::SettlementServiceClient::new(with_token(channel.clone(), Some(H001)));
    let denied = hospital_runs
        .create_settlement_run(proto::CreateSettlementRunRequest {
            request_id: String::new(),
            mode: proto::SettlementMode::Annual as i32,
            period: "2026".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let own = hospital_runs
        .list_statements(proto::ListStatementsRequest { parent: run.name.clone(), page_size: 0, page_token: String::new() })
        .await
        .expect("own statements")
        .into_inner();
    assert!(own.statements.iter().all(|s| s.hospital_id == "H001"));

    // The period detectors through the API (fund office only): the three stays of patient P1
    // overlap, so the later ones are flagged as split admissions, with evidence.
    let mut audits = proto::audit_service_client::AuditServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let audited = audits
        .audit_cases(proto::AuditCasesRequest {
            period: "2026-03".into(),
            min_score: String::new(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(audited.cases, 3);
    assert_eq!(audited.flags.len(), 1, "paged one at a time");
    let first = &audited.flags[0];
    assert_eq!(first.kind, "split_admission");
    assert!(first.case.starts_with("hospitals/H001/cases/C") && first.related_case.starts_with("hospitals/H001/cases/C"), "{first:?}");
    assert!(first.evidence.contains("patient P1 readmitted"), "{}", first.evidence);
    assert!(!audited.next_page_token.is_empty());
    let bad_period = audits
        .audit_cases(proto::AuditCasesRequest {
            period: "2026-13".into(),
            min_score: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_period.get_details_bad_request().expect("details").field_violations[0].field, "period");
    // The one period parser: its stable code, and a one-digit month refused as everywhere else.
    assert_eq!(bad_period.get_details_error_info().map(|i| i.reason).unwrap_or_default(), "SETTLE_PERIOD_INVALID");
    let short_month = audits
        .audit_cases(proto::AuditCasesRequest {
            period: "2026-3".into(),
            min_score: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(short_month.code(), Code::InvalidArgument);
    let mut hospital_audits = proto::audit_service_client::AuditServiceClient::new(with_token(channel.clone(), Some(H001)));
    let denied = hospital_audits
        .audit_cases(proto::AuditCasesRequest {
            period: "2026-03".into(),
            min_score: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);

    // Versions: two policies and two table sets loaded; the configured DIP pair is active.
    let mut versions = proto::version_service_client::VersionServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let policies = versions.list_policies(proto::ListVersionsRequest::default()).await.expect("policies").into_inner().policies;
    assert_eq!(policies.iter().map(|p| (p.scheme.as_str(), p.active)).collect::<Vec<_>>(), [("dip", true), ("drg", false)]);
    assert_eq!(finished.policy, policies[0].name, "the run recorded the active policy version");
    let table_sets = versions.list_table_sets(proto::ListVersionsRequest::default()).await.expect("table sets").into_inner().table_sets;
    assert_eq!(table_sets.iter().map(|t| (t.kind.as_str(), t.active)).collect::<Vec<_>>(), [("dip", true), ("drg", false)]);
    let fetched = versions.get_policy(proto::GetVersionRequest { name: policies[1].name.clone() }).await.expect("get").into_inner();
    assert!(fetched.source.contains("scheme = \"drg\""), "the policy file as loaded");
    let missing = versions.get_table_set(proto::GetVersionRequest { name: "tableSets/nope".into() }).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let mut hospital_versions = proto::version_service_client::VersionServiceClient::new(with_token(channel.clone(), Some(H001)));
    let denied = hospital_versions
        .activate_policy(proto::ActivateVersionRequest { name: policies[1].name.clone(), request_id: String::new() })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    // Activating the DRG policy pairs it with the only DRG table set; pre-checks now use both.
    let activated = versions
        .activate_policy(proto::ActivateVersionRequest { name: policies[1].name.clone(), request_id: "activate-drg".into() })
        .await
        .expect("activate")
        .into_inner();
    assert!(activated.active);
    let mut hospital = PreCheckServiceClient::new(with_token(channel.clone(), Some(H001)));
    let drg_checked = hospital
        .pre_check_case(proto::PreCheckCaseRequest {
            case: Some(case("X9", "H001", "12000.00")),
            include_trace: false,
            ..Default::default()
        })
        .await
        .expect("pre-check under DRG")
        .into_inner();
    assert_eq!((drg_checked.policy.as_str(), drg_checked.table_set.as_str()), (policies[1].name.as_str(), table_sets[1].name.as_str()));
    assert_eq!(drg_checked.status, "SUCCESS", "{drg_checked:?}");

    // Re-running the March run uses its recorded (DIP) versions, not the active ones, and
    // reproduces its statements byte for byte.
    let rerun = settlements
        .create_settlement_run(proto::CreateSettlementRunRequest { rerun_of: run.name.clone(), ..Default::default() })
        .await
        .expect("re-run")
        .into_inner();
    assert_eq!((rerun.policy.as_str(), rerun.table_set.as_str()), (finished.policy.as_str(), finished.table_set.as_str()));
    let mut watch =
        settlements.watch_settlement_run(proto::GetSettlementRunRequest { name: rerun.name.clone() }).await.expect("watch").into_inner();
    let mut rerun_done = rerun.clone();
    while let Some(update) = watch.message().await.expect("watch item") {
        rerun_done = update;
    }
    assert_eq!(rerun_done.state, proto::RunState::Succeeded as i32, "{}", rerun_done.error);
    assert_eq!(rerun_done.cases_fingerprint, finished.cases_fingerprint);
    let original_bytes = statement_bytes(&mut settlements, &run.name).await;
    assert!(!original_bytes.is_empty());
    assert_eq!(statement_bytes(&mut settlements, &rerun.name).await, original_bytes);
    assert_eq!(
        (rerun_done.gross_total.as_str(), rerun_done.point_values.len()),
        (finished.gross_total.as_str(), finished.point_values.len())
    );

    // Restart on the same data directory: the cases are still there.
    drop((office, cases_client, hospital, anonymous, settlements, hospital_runs, reviews, hospital_reviews));
    drop((audits, hospital_audits, versions, hospital_versions));
    drop(server);
    let server = start(&data_dir, database);
    let channel = self::channel(&server).await;
    let mut office = CaseServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let page = office
        .list_cases(proto::ListCasesRequest { parent: "hospitals/H001".into(), page_size: 10, page_token: String::new() })
        .await
        .expect("list after restart")
        .into_inner();
    assert_eq!(page.cases.len(), 3);
    let mut settlements = proto::settlement_service_client::SettlementServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let kept =
        settlements.get_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.expect("run kept").into_inner();
    assert_eq!(kept, finished, "the finished run survives a restart unchanged");
    let mut versions = proto::version_service_client::VersionServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let active = versions.get_policy(proto::GetVersionRequest { name: policies[1].name.clone() }).await.expect("get").into_inner();
    assert!(active.active, "the activated policy stays active after a restart");
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_configured() {
    let dir = std::env::temp_dir().join(format!("dipdrg-server-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) makes a test certificate");
    assert!(made.success());
    let server =
        start_with(&dir, None, &format!("tls_cert = {:?}\ntls_key = {:?}\n", cert.display().to_string(), key.display().to_string()));
    let port = server.address.rsplit(':').next().unwrap().to_string();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&cert).unwrap()))
        .domain_name("localhost");
    let mut channel = Err(String::new());
    for _ in 0..50 {
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}")).unwrap().tls_config(tls.clone()).unwrap();
        match endpoint.connect().await {
            Ok(c) => {
                channel = Ok(c);
                break;
            }
            Err(e) => channel = Err(format!("{e:?}")),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let channel = channel.expect("a TLS connection");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health over TLS").into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    // Plaintext HTTP/2 to the TLS port gets no answer.
    let plain = Channel::from_shared(format!("http://{}", server.address)).unwrap().connect().await;
    let refused = match plain {
        Err(_) => true,
        Ok(c) => tonic_health::pb::health_client::HealthClient::new(c)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client must not be served");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PreCheckCase's estimated patient share (issue 17): with `benefits_policy` configured, the
/// demo worked examples (level 3, first admission 20,000; third admission 300,000 after the
/// figures of the first two); a bad year-to-date figure is named; without the key, no estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precheck_estimates_the_patient_share_with_a_benefits_policy() {
    let data_dir = std::env::temp_dir().join(format!("dipdrg-server-benefits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let server = start_with(&data_dir, None, "benefits_policy = \"policies/demo-city-2026-benefits.toml\"\n");
    let mut hospital = PreCheckServiceClient::new(with_token(channel(&server).await, Some(H001)));
    let share = |response: proto::PreCheckCaseResponse| response.patient_share.expect("patient_share is set");

    let first = proto::PreCheckCaseRequest { case: Some(case("E1", "H001", "20000.00")), ..Default::default() };
    let first = share(hospital.pre_check_case(first).await.expect("pre-check").into_inner());
    assert!(first.estimated, "{}", first.reason);
    assert_eq!((first.admission_order, first.deductible.as_str(), first.basic.as_str()), (1, "700.00", "11580.00"));
    assert_eq!((first.catastrophic.as_str(), first.patient_total.as_str()), ("0.00", "8420.00"));

    let after_two = proto::BenefitsYearToDate {
        admissions: 2,
        basic_paid: "116300.00".into(),
        personal_burden: "53700.00".into(),
        catastrophic_paid: "26520.00".into(),
        out_of_pocket: "27180.00".into(),
        ..Default::default()
    };
    let third = proto::PreCheckCaseRequest {
        case: Some(case("E3", "H001", "300000.00")),
        year_to_date: Some(after_two.clone()),
        ..Default::default()
    };
    let third = share(hospital.pre_check_case(third).await.expect("pre-check").into_inner());
    assert!(third.estimated, "{}", third.reason);
    assert_eq!(
        [third.basic.as_str(), third.catastrophic.as_str(), third.subsidy.as_str(), third.patient_covered.as_str()],
        ["33700.00", "177780.00", "4710.00", "83810.00"]
    );

    let bad = proto::PreCheckCaseRequest {
        case: Some(case("E4", "H001", "10000.00")),
        year_to_date: Some(proto::BenefitsYearToDate { basic_paid: "lots".into(), ..after_two }),
        ..Default::default()
    };
    let bad = share(hospital.pre_check_case(bad).await.expect("the pre-check still answers").into_inner());
    assert!(!bad.estimated && bad.reason.contains("year_to_date.basic_paid"), "{}", bad.reason);
    drop(server);

    let plain = start(&data_dir.join("plain"), None);
    let mut hospital = PreCheckServiceClient::new(with_token(channel(&plain).await, Some(H001)));
    let request = proto::PreCheckCaseRequest { case: Some(case("E5", "H001", "20000.00")), ..Default::default() };
    let none = share(hospital.pre_check_case(request).await.expect("pre-check").into_inner());
    assert!(!none.estimated && none.reason.contains("benefits_policy"), "{}", none.reason);
    drop(plain);
    let _ = std::fs::remove_dir_all(&data_dir);
}

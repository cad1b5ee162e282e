//! Settlement runs through the service (its default active policy: the demo DIP region) on the
//! demo data: every readable demo case ingested over gRPC, the demo violations and special-review
//! decisions recorded, then annual and monthly runs. The runs and their statements are frozen in
//! `tests/golden/service-*.txt` (re-frozen with `DIPDRG_BLESS=1`, like `golden.rs`), and every
//! statement equals the one `dipdrg settle` writes for the same cases (`tests/golden/dip-*/`,
//! which the reference and parallel executors both reproduce): one engine behind both doors.
//! Then the admission rules through the service, as a client meets them.

use crate::server::{channel, start_with, with_token, Authed, Server, FUND_OFFICE};
use dipdrg::server::proto;
use proto::settlement_service_client::SettlementServiceClient;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo cases that read as cases.
pub(crate) fn demo_cases() -> Vec<dipdrg::case::Case> {
    let file = std::fs::File::open(root().join("grouper-tables/demo/cases.csv")).unwrap();
    let mut reader = dipdrg::io::case_csv::CaseReader::new(file).unwrap();
    let (mut cases, mut case) = (Vec::new(), dipdrg::case::Case::default());
    while let Some(item) = reader.next_into(&mut case) {
        if item.is_ok() {
            cases.push(case.clone());
        }
    }
    cases
}

/// Ingests `cases` into `server`, as the fund office; every one is accepted.
pub(crate) async fn load_cases(server: &Server, cases: &[dipdrg::case::Case]) {
    let channel = channel(server).await;
    let mut client = proto::case_service_client::CaseServiceClient::new(with_token(channel, Some(FUND_OFFICE)));
    let upload: Vec<proto::IngestCasesRequest> = cases
        .iter()
        .map(|c| proto::IngestCasesRequest {
            request_id: String::new(),
            case: Some(dipdrg::server::convert::case_to_proto(c)),
            ..Default::default()
        })
        .collect();
    let answer = client.ingest_cases(tokio_stream::iter(upload)).await.expect("ingest").into_inner();
    assert_eq!(
        (answer.submitted as usize, answer.accepted as usize),
        (cases.len(), cases.len()),
        "{:?}",
        answer.results.iter().find(|r| !r.field_violations.is_empty())
    );
}

/// Ingests `cases` and the demo violations and reviews into `server`, as the fund office.
pub(crate) async fn load_demo(server: &Server, cases: &[dipdrg::case::Case]) {
    load_cases(server, cases).await;
    let channel = channel(server).await;
    let hospital_of =
        |id: &str| cases.iter().find(|c| c.case_id == id).and_then(|c| c.hospital_id.clone()).unwrap_or_else(|| panic!("case {id}"));
    let mut reviews = proto::review_service_client::ReviewServiceClient::new(with_token(channel, Some(FUND_OFFICE)));
    let mut violations = csv::Reader::from_path(root().join("grouper-tables/demo/violations.csv")).unwrap();
    for record in violations.records() {
        let record = record.unwrap();
        let case = format!("hospitals/{}/cases/{}", hospital_of(&record[0]), &record[0]);
        let violation = proto::Violation { case, kind: record[1].to_string(), ..Default::default() };
        reviews.create_violation(proto::CreateViolationRequest { request_id: String::new(), violation: Some(violation) }).await.unwrap();
    }
    let mut decisions = csv::Reader::from_path(root().join("grouper-tables/demo/reviews.csv")).unwrap();
    for record in decisions.records() {
        let record = record.unwrap();
        let decision = proto::SpecialReviewDecision {
            case: format!("hospitals/{}/cases/{}", hospital_of(&record[0]), &record[0]),
            decision: if &record[1] == "approved" { proto::ReviewDecision::Approved } else { proto::ReviewDecision::Rejected } as i32,
            reviewed_points: record[2].to_string(),
            ..Default::default()
        };
        reviews
            .create_special_review_decision(proto::CreateSpecialReviewDecisionRequest {
                request_id: String::new(),
                decision: Some(decision),
            })
            .await
            .unwrap();
    }
}

/// Runs `mode`/`period` to its end: the finished run and its statements.
pub(crate) async fn run(
    client: &mut SettlementServiceClient<Authed>,
    mode: proto::SettlementMode,
    period: &str,
) -> (proto::SettlementRun, Vec<proto::Statement>) {
    let create = proto::CreateSettlementRunRequest { mode: mode as i32, period: period.into(), ..Default::default() };
    let run = client.create_settlement_run(create).await.expect("create run").into_inner();
    let mut watch =
        client.watch_settlement_run(proto::GetSettlementRunRequest { name: run.name.clone() }).await.expect("watch").into_inner();
    let mut finished = run.clone();
    while let Some(update) = watch.message().await.expect("watch item") {
        finished = update;
    }
    let mut statements = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_statements(proto::ListStatementsRequest { parent: run.name.clone(), page_size: 1000, page_token })
            .await
            .expect("statements")
            .into_inner();
        statements.extend(page.statements);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    (finished, statements)
}

/// A run and its statements as text, without what differs from run to run (names, times).
fn describe(mut run: proto::SettlementRun, statements: Vec<proto::Statement>) -> String {
    let name = std::mem::take(&mut run.name);
    run.create_time.clear();
    run.complete_time.clear();
    let mut text = format!("{run:#?}\n");
    for mut statement in statements {
        statement.name = statement.name.replacen(&name, "", 1);
        text.push_str(&format!("{statement:#?}\n"));
    }
    text
}

fn compare(name: &str, text: &str) {
    let path = root().join("tests/golden").join(format!("{name}.txt"));
    if std::env::var_os("DIPDRG_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let frozen = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if frozen != text {
        let line = frozen.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{name}: differs from {} at line {}\n  frozen:   {:?}\n  produced: {:?}",
            path.display(),
            line + 1,
            frozen.lines().nth(line),
            text.lines().nth(line)
        );
    }
}

/// Every statement of a service run equals, number for number, the CLI's frozen `statements.csv`
/// of `scenario` (same cases: the demo file's unreadable records are rejected by both).
fn equal_to_the_cli(statements: &[proto::Statement], scenario: &str) {
    use rust_decimal::Decimal;
    let path = root().join("tests/golden").join(scenario).join("statements.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(statements.len(), rows.len(), "{scenario}: as many statements as the CLI's");
    for statement in statements {
        let fund = if statement.fund == proto::Fund::Employee as i32 { "employee" } else { "resident" };
        let row = rows
            .iter()
            .find(|r| &r[0] == statement.hospital_id.as_str() && &r[3] == fund)
            .unwrap_or_else(|| panic!("{scenario}: no CLI statement for {} {fund}", statement.hospital_id));
        let cli = |column: &str| row[header.iter().position(|h| h == column).unwrap()].parse::<Decimal>().unwrap();
        let mut fields = vec![
            ("cases", Decimal::from(statement.cases)),
            ("points", statement.points.parse().unwrap()),
            ("penalty_points", statement.penalty_points.parse().unwrap()),
            ("counted_points", statement.counted_points.parse().unwrap()),
            ("cmi", statement.cmi.parse().unwrap()),
            ("total_cost", statement.total_cost.parse().unwrap()),
            ("point_value", statement.point_value.parse().unwrap()),
            ("gross", statement.gross.parse().unwrap()),
            ("patient_paid", statement.patient_paid.parse().unwrap()),
        ];
        if scenario.ends_with("annual") {
            fields.extend([
                ("fund_due", statement.fund_due.parse().unwrap()),
                ("band_adjustment", statement.band_adjustment.parse().unwrap()),
                ("deposit_forfeited", statement.deposit_forfeited.parse().unwrap()),
                ("final_due", statement.final_due.parse().unwrap()),
                ("paid_monthly", statement.paid_monthly.parse().unwrap()),
                ("balance", statement.balance.parse().unwrap()),
            ]);
        } else {
            fields.extend([
                ("amount", statement.amount.parse().unwrap()),
                ("paid_now", statement.paid_now.parse().unwrap()),
                ("deposit", statement.deposit.parse().unwrap()),
            ]);
        }
        for (column, value) in fields {
            assert_eq!(value, cli(column), "{scenario}: {} {fund}: {column}", statement.hospital_id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_runs_on_the_demo_data_equal_the_frozen_ones() {
    let data = std::env::temp_dir().join(format!("dipdrg-service-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = start_with(&data, None, "");
    load_demo(&server, &demo_cases()).await;
    let mut client = SettlementServiceClient::new(with_token(channel(&server).await, Some(FUND_OFFICE)));
    let (annual, statements) = run(&mut client, proto::SettlementMode::Annual, "2026").await;
    equal_to_the_cli(&statements, "dip-annual");
    compare("service-dip-annual", &describe(annual, statements));
    let (monthly, statements) = run(&mut client, proto::SettlementMode::Monthly, "2026-03").await;
    equal_to_the_cli(&statements, "dip-monthly");
    compare("service-dip-monthly", &describe(monthly, statements));
    drop(server);
    let _ = std::fs::remove_dir_all(data);
}

/// The reason (stable code) of a status's `google.rpc.ErrorInfo`.
fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_admits_cases_by_the_engines_rules() {
    let data = std::env::temp_dir().join(format!("dipdrg-service-admission-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = start_with(&data, None, "");
    let channel = channel(&server).await;
    let mut settlements = SettlementServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));

    // Bad periods are refused up front, with the field and the code.
    for (mode, period, code) in [
        (proto::SettlementMode::Monthly, "2026-13", "SETTLE_PERIOD_INVALID"),
        (proto::SettlementMode::Monthly, "abcd", "SETTLE_PERIOD_INVALID"),
        (proto::SettlementMode::Annual, "2025", "SETTLE_PERIOD_NOT_POLICY_YEAR"),
        (proto::SettlementMode::Monthly, "2027-01", "SETTLE_PERIOD_NOT_POLICY_YEAR"),
        (proto::SettlementMode::Unspecified, "2026", "SETTLE_MODE_INVALID"),
    ] {
        let create = proto::CreateSettlementRunRequest { mode: mode as i32, period: period.into(), ..Default::default() };
        let status = settlements.create_settlement_run(create).await.expect_err(period);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{period}");
        assert_eq!(reason(&status), code, "{period}");
    }

    // Cases the CLI rejects are rejected by a run too, each listed with its code.
    let demo = demo_cases();
    let template =
        demo.iter().find(|c| c.hospital_id.as_deref() == Some("H001") && c.discharge_date.is_some_and(|d| d.ymd().1 == 3)).unwrap();
    let variant = |id: &str, hospital: &str, edit: &dyn Fn(&mut dipdrg::case::Case)| {
        let mut case = template.clone();
        case.case_id = id.into();
        case.hospital_id = Some(hospital.into());
        edit(&mut case);
        case
    };
    let cases = vec![
        variant("OK1", "H001", &|_| {}),
        variant("NO-PAID", "H001", &|c| c.patient_paid = None),
        variant("OVERPAID", "H001", &|c| {
            c.fund_paid = None;
            c.patient_paid = c.total_cost.map(|t| t + rust_decimal::Decimal::ONE);
        }),
        variant("TWICE", "H001", &|_| {}),
        variant("TWICE", "H002", &|_| {}),
    ];
    load_cases(&server, &cases).await;
    let (run, statements) = run(&mut settlements, proto::SettlementMode::Monthly, "2026-03").await;
    assert_eq!(run.state, proto::RunState::Succeeded as i32, "{}", run.error);
    let mut rejects: Vec<(String, String)> = run.rejects.iter().map(|r| (r.case.clone(), r.code.clone())).collect();
    rejects.sort();
    assert_eq!(
        rejects,
        [
            ("hospitals/H001/cases/NO-PAID".to_string(), "CASE_FIELD_REQUIRED".to_string()),
            ("hospitals/H001/cases/OVERPAID".to_string(), "CASE_PATIENT_PAID_EXCEEDS_COST".to_string()),
            ("hospitals/H002/cases/TWICE".to_string(), "CASE_ID_REPEATED".to_string()),
        ]
    );
    assert_eq!((run.cases, run.rejected_cases, run.skipped_cases), (2, 3, 3));
    assert_eq!(statements.iter().map(|s| s.cases).sum::<i64>(), 2, "TWICE is settled once, for H001");

    // A special-review decision whose points the engine cannot read is refused when recorded.
    let mut reviews = proto::review_service_client::ReviewServiceClient::new(with_token(channel, Some(FUND_OFFICE)));
    for points in ["abc", "-1", "", "1e400"] {
        let decision = proto::SpecialReviewDecision {
            case: "hospitals/H001/cases/OK1".into(),
            decision: proto::ReviewDecision::Approved as i32,
            reviewed_points: points.into(),
            ..Default::default()
        };
        let status = reviews
            .create_special_review_decision(proto::CreateSpecialReviewDecisionRequest {
                request_id: String::new(),
                decision: Some(decision),
            })
            .await
            .expect_err(points);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{points:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(data);
}

/// Hostile values are refused record by record at ingestion, each naming its field: the same
/// bounds as the CSV reader (`dipdrg::case::bounds`), so nothing unreadable is ever stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_refused_at_ingestion_naming_the_field() {
    let data = std::env::temp_dir().join(format!("dipdrg-service-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = start_with(&data, None, "");
    let mut client = proto::case_service_client::CaseServiceClient::new(with_token(channel(&server).await, Some(FUND_OFFICE)));
    let base = dipdrg::server::convert::case_to_proto(&demo_cases()[0]);
    let variant = |id: &str, edit: &dyn Fn(&mut proto::Case)| {
        let mut case = base.clone();
        case.case_id = id.into();
        edit(&mut case);
        proto::IngestCasesRequest { case: Some(case), ..Default::default() }
    };
    let upload = vec![
        (variant("E1", &|c| c.diagnoses = vec![String::new()]), "case.diagnoses"),
        (variant("E2", &|c| c.diagnoses = vec!["K81.000|C78.000".into()]), "case.diagnoses"),
        (variant("E3", &|c| c.procedures = vec![String::new()]), "case.procedures"),
        (variant("E4", &|c| c.los = Some(100_000)), "case.los"),
        (variant("E5", &|c| c.age = Some(500)), "case.age"),
        (variant("E6", &|c| c.age_days = Some(1_000_000_000_000)), "case.age_days"),
        (variant("E7", &|c| c.birth_weight = Some(i64::MAX)), "case.birth_weight"),
        (variant("E8", &|c| c.disposition = Some(42_000)), "case.disposition"),
        (variant("E9", &|c| c.diagnoses = vec!["K81.000".into(); 10_000]), "case.diagnoses"),
        (variant(&"x".repeat(100_000), &|_| {}), "case.case_id"),
        (variant("E/11", &|_| {}), "case.case_id"),
        (variant("E12", &|c| c.los = Some(3)), "case.los"),
        (variant("E13", &|c| c.total_cost = "79228162514264337593543950335".into()), "case.total_cost"),
        (variant("OK", &|_| {}), ""),
    ];
    let answer =
        client.ingest_cases(tokio_stream::iter(upload.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>())).await.unwrap().into_inner();
    assert_eq!((answer.submitted, answer.accepted, answer.rejected), (14, 1, 13));
    for ((_, field), result) in upload.iter().zip(&answer.results) {
        if field.is_empty() {
            assert!(result.field_violations.is_empty());
        } else {
            assert!(result.field_violations.iter().any(|v| v.field == *field), "{field}: {:?}", result.field_violations);
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(data);
}

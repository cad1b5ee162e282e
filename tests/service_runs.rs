//! Settlement runs through the service on the demo data: every readable demo case ingested over
//! gRPC, the demo violations and special-review decisions recorded, then annual and monthly runs.
//! The runs and their statements are frozen in `tests/golden/service-*.txt` (re-frozen with
//! `DIPDRG_BLESS=1`, like `golden.rs`).

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

/// Ingests `cases` and the demo violations and reviews into `server`, as the fund office.
pub(crate) async fn load_demo(server: &Server, cases: &[dipdrg::case::Case]) {
    let channel = channel(server).await;
    let mut client = proto::case_service_client::CaseServiceClient::new(with_token(channel.clone(), Some(FUND_OFFICE)));
    let upload: Vec<proto::IngestCasesRequest> = cases
        .iter()
        .map(|c| proto::IngestCasesRequest { request_id: String::new(), case: Some(dipdrg::server::convert::case_to_proto(c)) })
        .collect();
    let answer = client.ingest_cases(tokio_stream::iter(upload)).await.expect("ingest").into_inner();
    assert_eq!(answer.submitted as usize, cases.len());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_runs_on_the_demo_data_equal_the_frozen_ones() {
    let data = std::env::temp_dir().join(format!("dipdrg-service-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = start_with(&data, None, "");
    load_demo(&server, &demo_cases()).await;
    let mut client = SettlementServiceClient::new(with_token(channel(&server).await, Some(FUND_OFFICE)));
    let (annual, statements) = run(&mut client, proto::SettlementMode::Annual, "2026").await;
    compare("service-drg-annual", &describe(annual, statements));
    let (monthly, statements) = run(&mut client, proto::SettlementMode::Monthly, "2026-10").await;
    compare("service-drg-monthly", &describe(monthly, statements));
    drop(server);
    let _ = std::fs::remove_dir_all(data);
}

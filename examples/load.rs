//! Load client for the gRPC service. Starts the service in this process on 127.0.0.1:0 (SQLite in
//! a temporary directory, the demo DIP policy and catalog) and drives it over loopback:
//!
//! `cargo run --release --example load -- precheck [REQUESTS] [CONCURRENCY]`
//! `cargo run --release --example load -- ingest [CASES] [STREAMS]`
//!
//! Pre-check reports requests/s and latency percentiles; ingestion reports cases/s. Client and
//! server share the machine's two cores, as they would in a test on this machine.

use dipdrg::server::auth::Tokens;
use dipdrg::server::config::TokenConfig;
use dipdrg::server::proto;
use dipdrg::server::versions::Versions;
use dipdrg::server::{serve, AppState};
use dipdrg::store::sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

const TOKEN: &str = "load-test-token";

fn case(i: u64) -> proto::Case {
    let diagnoses = ["K80.100", "J18.900", "I10.x00", "K35.800", "I63.900"];
    proto::Case {
        case_id: format!("L{i:09}"),
        hospital_id: format!("H00{}", 1 + i % 5),
        patient_id: format!("P{}", i % 100_000),
        fund: proto::Fund::Employee as i32,
        sex: Some(1 + (i % 2) as i64),
        age: Some(30 + (i % 50) as i64),
        admission_date: "2026-03-01".into(),
        discharge_date: "2026-03-07".into(),
        diagnoses: vec![diagnoses[(i % 5) as usize].into()],
        total_cost: format!("{}.00", 5000 + i % 20000),
        fund_paid: "0".into(),
        patient_paid: "1000.00".into(),
        ..Default::default()
    }
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {TOKEN}").parse::<MetadataValue<_>>() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "precheck".into());
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let concurrency: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let policy_path = root.join("policies/demo-city-2026-dip.toml");
    let versions = Versions::load(&[policy_path], &[root.join("grouper-tables/demo-dip")], None)?;
    let data = std::env::temp_dir().join(format!("dipdrg-load-{}", std::process::id()));
    let store = SqliteStore::open(&data.join("dipdrg.sqlite"))?;
    let tokens = Tokens::from_config(&[TokenConfig { token: TOKEN.into(), role: "fund_office".into(), hospital_id: None }]);
    let state = Arc::new(AppState {
        versions: Arc::new(versions),
        store: Arc::new(store),
        tokens,
        metrics: Default::default(),
        shutdown: Default::default(),
        benefits: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state, listener, 4 << 20, None, async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}"))?.connect().await?;

    match mode.as_str() {
        "precheck" => {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for worker in 0..concurrency as u64 {
                let mut client = proto::pre_check_service_client::PreCheckServiceClient::new(channel.clone());
                let per_worker = count / concurrency as u64;
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_worker as usize);
                    for i in 0..per_worker {
                        let request = proto::PreCheckCaseRequest {
                            case: Some(case(worker * per_worker + i)),
                            include_trace: false,
                            ..Default::default()
                        };
                        let sent = Instant::now();
                        if client.pre_check_case(authorized(request)).await.is_ok() {
                            latencies.push(sent.elapsed());
                        }
                    }
                    latencies
                }));
            }
            let mut latencies = Vec::new();
            for task in tasks {
                latencies.extend(task.await?);
            }
            let elapsed = started.elapsed().as_secs_f64();
            latencies.sort();
            println!(
                "precheck: {} ok of {count} requests, concurrency {concurrency}: {:.0} requests/s; latency p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
                latencies.len(),
                latencies.len() as f64 / elapsed,
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.90),
                percentile(&latencies, 0.99),
                latencies.last().copied().unwrap_or_default()
            );
        }
        "ingest" => {
            let streams = concurrency.max(1) as u64;
            let per_stream = count / streams;
            let started = Instant::now();
            let mut tasks = Vec::new();
            for stream in 0..streams {
                let mut client = proto::case_service_client::CaseServiceClient::new(channel.clone());
                tasks.push(tokio::spawn(async move {
                    let messages = (0..per_stream)
                        .map(move |i| proto::IngestCasesRequest { case: Some(case(stream * per_stream + i)), ..Default::default() });
                    client.ingest_cases(authorized(tokio_stream::iter(messages))).await.map(|r| r.into_inner())
                }));
            }
            let mut accepted = 0;
            for task in tasks {
                let answer = task.await??;
                accepted += answer.accepted;
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "ingest: {accepted} cases accepted in {elapsed:.2} s over {streams} streams: {:.0} cases/s",
                accepted as f64 / elapsed
            );
        }
        other => eprintln!("unknown mode {other:?}: precheck or ingest"),
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

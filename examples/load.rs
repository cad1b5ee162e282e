//! Load client for the gRPC service, measuring what a real client sees: the service is the
//! release binary (`dipdrg serve`, beside this example or `DIPDRG_BIN`) in a process of its own,
//! on 127.0.0.1 (SQLite in a temporary directory, the demo DIP policy and catalog), and this
//! process is the client:
//!
//! `cargo build --release && cargo run --release --example load -- precheck [REQUESTS] [CONCURRENCY] [CONNECTIONS]`
//! `cargo build --release && cargo run --release --example load -- ingest [CASES] [STREAMS]`
//!
//! Pre-check reports requests/s and latency percentiles (CONCURRENCY calls in flight over
//! CONNECTIONS HTTP/2 connections, default 1); ingestion reports cases/s (STREAMS uploads in
//! parallel on one connection, full answers). Both report the CPU time the server process and
//! this client spent during the measured interval, and the server's CPU per request or case:
//! client and server share the machine's cores, so the server-alone cost says what the service
//! would do on cores of its own. Requests are built before the clock starts.
//!
//! `DIPDRG_LOAD_ADDR=host:port` (with `DIPDRG_LOAD_TOKEN`, a fund-office token) drives a server
//! that is already running instead; its CPU is then not reported.

use dipdrg::server::proto;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
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

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse::<MetadataValue<_>>() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat` (clock ticks
/// of 10 ms, Linux's USER_HZ); `None` off Linux.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The service under test: a `dipdrg serve` child process, or a running server.
struct Server {
    address: String,
    token: String,
    child: Option<Child>,
    data: Option<PathBuf>,
}

impl Server {
    fn start() -> Result<Server, Box<dyn std::error::Error>> {
        if let Ok(address) = std::env::var("DIPDRG_LOAD_ADDR") {
            let token = std::env::var("DIPDRG_LOAD_TOKEN").unwrap_or_else(|_| TOKEN.into());
            return Ok(Server { address, token, child: None, data: None });
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let binary = match std::env::var_os("DIPDRG_BIN") {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()?.parent().and_then(|examples| examples.parent()).ok_or("no target directory")?.join("dipdrg"),
        };
        if !binary.is_file() {
            return Err(format!("{} is missing: build it first (cargo build --release), or set DIPDRG_BIN", binary.display()).into());
        }
        let data = std::env::temp_dir().join(format!("dipdrg-load-{}", std::process::id()));
        std::fs::create_dir_all(&data)?;
        let config = data.join("server.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"\"\nlog_level = \"warn\"\ndata_dir = {:?}\npolicy = {:?}\ntables = {:?}\n\
                 [[tokens]]\ntoken = \"{TOKEN}\"\nrole = \"fund_office\"\n",
                data.join("data"),
                root.join("policies/demo-city-2026-dip.toml"),
                root.join("grouper-tables/demo-dip"),
            ),
        )?;
        let mut child = Command::new(&binary)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut first_line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let mut stdout = BufReader::new(stdout);
            stdout.read_line(&mut first_line)?;
            // The rest of its output is drained, so that a later line never meets a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        }
        let Some(address) = first_line.trim().strip_prefix("listening on ").map(str::to_string) else {
            let _ = child.kill();
            return Err(format!("the server did not say where it listens: {first_line:?}").into());
        };
        Ok(Server { address, token: TOKEN.into(), child: Some(child), data: Some(data) })
    }

    fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&self.child.as_ref()?.id().to_string())
    }
}

impl Drop for Server {
    /// Stops the server as an operator would (SIGTERM: it finishes and exits; a profiler
    /// wrapped around it writes its data), and kills it if it has not exited within 10 s.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(10);
            while terminated && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(data) = &self.data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

/// CPU of the server and of this client over the measured interval, in a line.
fn cpu_report(server: &Server, before: (Option<Duration>, Option<Duration>), elapsed: f64, units: u64, unit: &str) -> String {
    let (server_before, client_before) = before;
    let client = cpu_time("self").zip(client_before).map(|(after, before)| (after - before).as_secs_f64());
    let server_cpu = server.cpu_time().zip(server_before).map(|(after, before)| (after - before).as_secs_f64());
    let mut line = String::new();
    if let Some(seconds) = server_cpu {
        line.push_str(&format!(
            "server CPU {seconds:.2} s ({:.2} cores, {:.1} µs per {unit})",
            seconds / elapsed,
            seconds * 1e6 / units.max(1) as f64
        ));
    }
    if let Some(seconds) = client {
        line.push_str(&format!("{}client CPU {seconds:.2} s ({:.2} cores)", if line.is_empty() { "" } else { "; " }, seconds / elapsed));
    }
    line
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "precheck".into());
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let concurrency: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(64).max(1);
    let connections: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1).max(1);

    let server = Server::start()?;
    let endpoint = Endpoint::from_shared(format!("http://{}", server.address))?.tcp_nodelay(true);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..connections {
        channels.push(endpoint.connect().await?);
    }
    let token = server.token.clone();

    match mode.as_str() {
        "precheck" => {
            let per_worker = count / concurrency;
            let mut workers = Vec::new();
            for worker in 0..concurrency {
                let requests: Vec<proto::PreCheckCaseRequest> = (0..per_worker)
                    .map(|i| proto::PreCheckCaseRequest {
                        case: Some(case(worker * per_worker + i)),
                        include_trace: false,
                        ..Default::default()
                    })
                    .collect();
                workers.push((
                    proto::pre_check_service_client::PreCheckServiceClient::new(channels[worker as usize % connections].clone()),
                    requests,
                ));
            }
            // One call first, so that connection set-up is not timed.
            let mut warm = proto::pre_check_service_client::PreCheckServiceClient::new(channels[0].clone());
            warm.pre_check_case(authorized(
                proto::PreCheckCaseRequest { case: Some(case(0)), include_trace: false, ..Default::default() },
                &token,
            ))
            .await?;
            let before = (server.cpu_time(), cpu_time("self"));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (mut client, requests) in workers {
                let token = token.clone();
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(requests.len());
                    let mut failed = 0u64;
                    for request in requests {
                        let sent = Instant::now();
                        match client.pre_check_case(authorized(request, &token)).await {
                            Ok(_) => latencies.push(sent.elapsed()),
                            Err(_) => failed += 1,
                        }
                    }
                    (latencies, failed)
                }));
            }
            let (mut latencies, mut failed) = (Vec::new(), 0);
            for task in tasks {
                let (worker_latencies, worker_failed) = task.await?;
                latencies.extend(worker_latencies);
                failed += worker_failed;
            }
            let elapsed = started.elapsed().as_secs_f64();
            latencies.sort();
            println!(
                "precheck: {} ok, {failed} failed of {} requests, concurrency {concurrency} over {connections} connection(s): {:.0} requests/s; latency p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
                latencies.len(),
                per_worker * concurrency,
                latencies.len() as f64 / elapsed,
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.90),
                percentile(&latencies, 0.99),
                latencies.last().copied().unwrap_or_default()
            );
            println!("{}", cpu_report(&server, before, elapsed, latencies.len() as u64, "request"));
        }
        "ingest" => {
            let streams = concurrency;
            let per_stream = count / streams;
            let uploads: Vec<Vec<proto::IngestCasesRequest>> = (0..streams)
                .map(|stream| {
                    (0..per_stream)
                        .map(|i| proto::IngestCasesRequest { case: Some(case(stream * per_stream + i)), ..Default::default() })
                        .collect()
                })
                .collect();
            let before = (server.cpu_time(), cpu_time("self"));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (stream, messages) in uploads.into_iter().enumerate() {
                let mut client = proto::case_service_client::CaseServiceClient::new(channels[stream % connections].clone())
                    .max_decoding_message_size(64 << 20);
                let token = token.clone();
                tasks.push(tokio::spawn(async move {
                    client.ingest_cases(authorized(tokio_stream::iter(messages), &token)).await.map(|r| r.into_inner())
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
            println!("{}", cpu_report(&server, before, elapsed, accepted as u64, "case"));
        }
        other => eprintln!("unknown mode {other:?}: precheck or ingest"),
    }
    Ok(())
}

//! Prometheus metrics: a few counters, served as text on their own HTTP port
//! (`GET /metrics`; any path answers the same).

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Service counters. Relaxed atomics: each is independent.
#[derive(Debug, Default)]
pub struct Metrics {
    pub precheck_requests: AtomicU64,
    pub precheck_errors: AtomicU64,
    pub ingest_streams: AtomicU64,
    pub ingest_accepted: AtomicU64,
    pub ingest_replaced: AtomicU64,
    pub ingest_unchanged: AtomicU64,
    pub ingest_rejected: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        counter("dipdrg_precheck_requests_total", "Cases pre-checked.", &[("", get(&self.precheck_requests))]);
        counter("dipdrg_precheck_errors_total", "Pre-checks refused (invalid, denied).", &[("", get(&self.precheck_errors))]);
        counter("dipdrg_ingest_streams_total", "Ingestion streams completed.", &[("", get(&self.ingest_streams))]);
        counter(
            "dipdrg_ingest_records_total",
            "Ingested records by outcome.",
            &[
                ("{status=\"accepted\"}", get(&self.ingest_accepted)),
                ("{status=\"replaced\"}", get(&self.ingest_replaced)),
                ("{status=\"unchanged\"}", get(&self.ingest_unchanged)),
                ("{status=\"rejected\"}", get(&self.ingest_rejected)),
            ],
        );
        out
    }
}

/// Serves `metrics` over plain HTTP/1.1 until the task is dropped.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let body = metrics.render();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_in_the_exposition_format() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.ingest_accepted, 3);
        let text = metrics.render();
        assert!(text.contains("# TYPE dipdrg_ingest_records_total counter\n"));
        assert!(text.contains("dipdrg_ingest_records_total{status=\"accepted\"} 3\n"));
    }
}

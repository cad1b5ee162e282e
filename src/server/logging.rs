//! Structured logs: `tracing` events with key=value fields on stderr.
//!
//! Every request passes through [`RequestLog`], which records its method, gRPC status (when the
//! handler answered in the headers: every error does) and latency. Successful requests log at
//! `debug` (at tens of thousands per second an `info` line each would cost more than the
//! request); failed ones at `info`; transport errors at `warn`. Lifecycle events (start,
//! activation, runs) log at `info`.

use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Installs the stderr subscriber at `level` (error, warn, info, debug, off). Safe to call once
/// per process; a second call is ignored.
pub fn init(level: &str) {
    let level = match level {
        "error" => tracing::level_filters::LevelFilter::ERROR,
        "warn" => tracing::level_filters::LevelFilter::WARN,
        "debug" => tracing::level_filters::LevelFilter::DEBUG,
        "off" => tracing::level_filters::LevelFilter::OFF,
        _ => tracing::level_filters::LevelFilter::INFO,
    };
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_ansi(false).try_init();
}

/// The tower layer that logs each request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLog;

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;
    fn layer(&self, inner: S) -> Logged<S> {
        Logged { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Logged<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<Request<B>> for Logged<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let outcome = future.await;
            let micros = started.elapsed().as_micros() as u64;
            match &outcome {
                Ok(response) => {
                    // An answer in the headers carries its status; a streamed one ends with it
                    // in the trailers ("streamed").
                    let status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("streamed");
                    if status == "0" || status == "streamed" {
                        tracing::debug!(target: "dipdrg::request", method = %method, grpc_status = status, micros, "request");
                    } else {
                        let message = response.headers().get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
                        tracing::info!(target: "dipdrg::request", method = %method, grpc_status = status, grpc_message = message, micros, "request failed");
                    }
                }
                Err(error) => tracing::warn!(target: "dipdrg::request", method = %method, error = %error, micros, "transport error"),
            }
            outcome
        })
    }
}

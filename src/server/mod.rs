//! The gRPC service: a thin adapter that maps messages to core calls and errors to statuses.
//!
//! Mounts the pre-check and case services behind bearer-token authentication, plus gRPC health
//! and reflection, served as both `grpc.reflection.v1` and `v1alpha` (older grpcurl and
//! grpcio-reflection clients ask the latter), listing the health service too. Shuts down
//! gracefully on Ctrl-C/SIGTERM: watchers of runs are ended at once, requests in flight get
//! [`SHUTDOWN_GRACE`] to finish.

pub mod audit_service;
pub mod auth;
pub mod cases;
pub mod config;
pub mod convert;
pub mod errors;
pub mod idempotency;
pub mod logging;
pub mod metrics;
pub mod paging;
pub mod patient_share;
pub mod precheck;
pub mod reviews;
pub mod settlement;
pub mod version_service;
pub mod versions;

use crate::store::Store;
use std::sync::Arc;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

/// Generated code of `proto/dipdrg/v1/dipdrg.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("dipdrg.v1");
    /// The encoded file-descriptor set, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dipdrg_v1_descriptor.bin"));
}

/// What every handler shares: the loaded versions (with the active snapshot) and the store.
pub struct AppState {
    pub versions: Arc<versions::Versions>,
    pub store: Arc<dyn Store>,
    pub tokens: auth::Tokens,
    pub metrics: Arc<metrics::Metrics>,
    /// Set when the server starts shutting down: long-lived streams end on it.
    pub shutdown: Shutdown,
    /// The benefits policy PreCheckCase estimates the patient share with (config
    /// `benefits_policy`); none: no estimate.
    pub benefits: Option<Arc<crate::benefits::BenefitsPolicy>>,
}

/// How long requests in flight may take to finish once shutdown has begun.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A shutdown flag that tasks can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Shutdown {
    /// Begins shutting down: every [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once shutdown has begun.
    pub async fn wait(&self) {
        let mut receiver = self.0.subscribe();
        let _ = receiver.wait_for(|down| *down).await;
    }
}

/// A PEM certificate chain and private key for TLS.
#[derive(Debug, Clone)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS is configured but this build has no TLS support (build with --features tls)")]
    NoTls,
}

/// Serves until `shutdown` completes. `listener` is already bound (port 0 works). With `tls`,
/// connections must be TLS.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    max_request_bytes: usize,
    tls: Option<TlsPem>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let builder = match tls {
        None => tonic::transport::Server::builder(),
        #[cfg(feature = "tls")]
        Some(pem) => {
            let identity = tonic::transport::Identity::from_pem(pem.cert, pem.key);
            tonic::transport::Server::builder().tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?
        }
        #[cfg(not(feature = "tls"))]
        Some(_) => return Err(ServeError::NoTls),
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<proto::pre_check_service_server::PreCheckServiceServer<precheck::PreCheck>>().await;
    health_reporter.set_serving::<proto::case_service_server::CaseServiceServer<cases::Cases>>().await;
    health_reporter.set_serving::<proto::settlement_service_server::SettlementServiceServer<settlement::Settlements>>().await;
    health_reporter.set_serving::<proto::review_service_server::ReviewServiceServer<reviews::Reviews>>().await;
    health_reporter.set_serving::<proto::version_service_server::VersionServiceServer<version_service::VersionsApi>>().await;
    health_reporter.set_serving::<proto::audit_service_server::AuditServiceServer<audit_service::Audits>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1(), reflection().build_v1alpha());
    let tokens = state.tokens.clone();
    let precheck = tonic::service::interceptor::InterceptedService::new(
        PreCheckRoute {
            inner: proto::pre_check_service_server::PreCheckServiceServer::new(precheck::PreCheck { state: state.clone() })
                .max_decoding_message_size(max_request_bytes),
            state: state.clone(),
            max_request_bytes,
        },
        auth::interceptor(tokens.clone()),
    );
    let cases = tonic::service::interceptor::InterceptedService::new(
        IngestRoute {
            inner: proto::case_service_server::CaseServiceServer::new(cases::Cases { state: state.clone() })
                .max_decoding_message_size(max_request_bytes),
            state: state.clone(),
            max_request_bytes,
        },
        auth::interceptor(tokens.clone()),
    );
    let reviews = tonic::service::interceptor::InterceptedService::new(
        proto::review_service_server::ReviewServiceServer::new(reviews::Reviews { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
        auth::interceptor(tokens.clone()),
    );
    let settlements = tonic::service::interceptor::InterceptedService::new(
        proto::settlement_service_server::SettlementServiceServer::new(settlement::Settlements { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
        auth::interceptor(tokens.clone()),
    );
    let versions = tonic::service::interceptor::InterceptedService::new(
        proto::version_service_server::VersionServiceServer::new(version_service::VersionsApi { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
        auth::interceptor(tokens.clone()),
    );
    let audits = tonic::service::interceptor::InterceptedService::new(
        proto::audit_service_server::AuditServiceServer::new(audit_service::Audits { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
        auth::interceptor(tokens),
    );
    let mut router = builder
        .layer(logging::RequestLog)
        .layer(errors::StatusRewrite)
        .add_service(health_service)
        .add_service(precheck)
        .add_service(cases)
        .add_service(settlements)
        .add_service(reviews)
        .add_service(versions)
        .add_service(audits);
    match (reflection_v1, reflection_v1alpha) {
        (Ok(v1), Ok(v1alpha)) => router = router.add_service(v1).add_service(v1alpha),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
    }
    // Small request/response messages: disable Nagle so that answers are not held back.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    let flag = state.shutdown.clone();
    let signal = async move {
        shutdown.await;
        flag.trigger();
    };
    let serving = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serving);
    // Once shutdown has begun, requests in flight get a grace period, not forever.
    let grace = async {
        state.shutdown.wait().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = &mut serving => Ok(served?),
        () = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period: stopping anyway");
            Ok(())
        }
    }
}

/// CaseService with its uploads decoded record by record ([`cases::IngestFrame`]): a record that
/// cannot be decoded is rejected, not the stream. Every other method goes to the generated
/// server.
#[derive(Clone)]
pub struct IngestRoute {
    inner: proto::case_service_server::CaseServiceServer<cases::Cases>,
    state: Arc<AppState>,
    max_request_bytes: usize,
}

impl tonic::server::NamedService for IngestRoute {
    const NAME: &'static str = "dipdrg.v1.CaseService";
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for IngestRoute {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != "/dipdrg.v1.CaseService/IngestCases" {
            let mut inner = self.inner.clone();
            return Box::pin(async move { tower::Service::call(&mut inner, request).await });
        }
        let (state, limit) = (self.state.clone(), self.max_request_bytes);
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<proto::IngestCasesResponse, cases::IngestFrame>::default();
            let mut grpc = tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(limit), None);
            Ok(grpc.client_streaming(Ingest { state }, request).await)
        })
    }
}

struct Ingest {
    state: Arc<AppState>,
}

impl tonic::server::ClientStreamingService<cases::IngestFrame> for Ingest {
    type Response = proto::IngestCasesResponse;
    type Future = BoxFuture<Result<tonic::Response<proto::IngestCasesResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<cases::IngestFrame>>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let role = auth::role(&request)?;
            let answer = cases::ingest(&state, &role, request.into_inner()).await?;
            Ok(tonic::Response::new(answer))
        })
    }
}

/// PreCheckService with its batch decoded message by message ([`precheck::PreCheckFrame`]): a
/// message that cannot be decoded is answered with a field violation, not the end of the stream.
#[derive(Clone)]
pub struct PreCheckRoute {
    inner: proto::pre_check_service_server::PreCheckServiceServer<precheck::PreCheck>,
    state: Arc<AppState>,
    max_request_bytes: usize,
}

impl tonic::server::NamedService for PreCheckRoute {
    const NAME: &'static str = "dipdrg.v1.PreCheckService";
}

impl tower::Service<http::Request<tonic::body::Body>> for PreCheckRoute {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != "/dipdrg.v1.PreCheckService/BatchPreCheckCases" {
            let mut inner = self.inner.clone();
            return Box::pin(async move { tower::Service::call(&mut inner, request).await });
        }
        let (state, limit) = (self.state.clone(), self.max_request_bytes);
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<proto::PreCheckCaseResponse, precheck::PreCheckFrame>::default();
            let mut grpc = tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(limit), None);
            Ok(grpc.streaming(Batch { state }, request).await)
        })
    }
}

struct Batch {
    state: Arc<AppState>,
}

type PreCheckStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::PreCheckCaseResponse, tonic::Status>> + Send>>;

impl tonic::server::StreamingService<precheck::PreCheckFrame> for Batch {
    type Response = proto::PreCheckCaseResponse;
    type ResponseStream = PreCheckStream;
    type Future = BoxFuture<Result<tonic::Response<PreCheckStream>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<precheck::PreCheckFrame>>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let role = auth::role(&request)?;
            Ok(tonic::Response::new(precheck::batch(state, role, request.into_inner())))
        })
    }
}

//! The gRPC service: a thin adapter that maps messages to core calls and errors to statuses.
//!
//! Mounts the pre-check and case services behind bearer-token authentication, plus gRPC health
//! and reflection (so `grpcurl` can list and call it). Shuts down gracefully on Ctrl-C/SIGTERM.

pub mod audit_service;
pub mod auth;
pub mod cases;
pub mod config;
pub mod convert;
pub mod logging;
pub mod metrics;
pub mod paging;
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
    let reflection =
        tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET).build_v1();
    let tokens = state.tokens.clone();
    let precheck = tonic::service::interceptor::InterceptedService::new(
        proto::pre_check_service_server::PreCheckServiceServer::new(precheck::PreCheck { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
        auth::interceptor(tokens.clone()),
    );
    let cases = tonic::service::interceptor::InterceptedService::new(
        proto::case_service_server::CaseServiceServer::new(cases::Cases { state: state.clone() })
            .max_decoding_message_size(max_request_bytes),
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
        .add_service(health_service)
        .add_service(precheck)
        .add_service(cases)
        .add_service(settlements)
        .add_service(reviews)
        .add_service(versions)
        .add_service(audits);
    match reflection {
        Ok(reflection) => router = router.add_service(reflection),
        Err(e) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
    }
    // Small request/response messages: disable Nagle so that answers are not held back.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    Ok(router.serve_with_incoming_shutdown(incoming, shutdown).await?)
}

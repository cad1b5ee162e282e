//! `dipdrg serve` and `dipdrg config show`: the gRPC service with layered configuration.

use anyhow::Context;
use clap::Args;
use dipdrg::server::auth::Tokens;
use dipdrg::server::config::{Overrides, ServerConfig};
use dipdrg::server::version_service::{ACTIVE_POLICY, ACTIVE_TABLE_SET};
use dipdrg::server::versions::Versions;
use dipdrg::server::{serve, AppState};
use dipdrg::store::sqlite::SqliteStore;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// Configuration file (TOML); environment variables DIPDRG_* and these flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// gRPC address (port 0: any free port; the address is printed on start).
    #[arg(long)]
    listen: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    policy: Option<PathBuf>,
    #[arg(long)]
    tables: Option<PathBuf>,
}

fn resolve(args: &ConfigArgs) -> anyhow::Result<ServerConfig> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        policy: args.policy.clone(),
        tables: args.tables.clone(),
    };
    Ok(ServerConfig::resolve(args.config.as_deref(), |name| std::env::var(name).ok(), &overrides)?)
}

pub fn show(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    print!("{}", resolve(&args)?.show());
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(&args)?;
    dipdrg::server::logging::init(&config.log_level);
    let store: Arc<dyn dipdrg::store::Store> = match &config.database_url {
        None => Arc::new(SqliteStore::open(&config.data_dir.join("dipdrg.sqlite"))?),
        #[cfg(feature = "postgres")]
        Some(url) => Arc::new(dipdrg::store::postgres::PostgresStore::connect(url, &config.database_schema)?),
        #[cfg(not(feature = "postgres"))]
        Some(_) => anyhow::bail!("database_url is set but this build has no PostgreSQL support (build with --features postgres)"),
    };
    // Runs a killed process left RUNNING end FAILED, and its unfinished request ids are freed.
    dipdrg::server::settlement::recover(store.as_ref())?;
    // Every configured version, with the pair activated last time (stored) when still loaded.
    let policies: Vec<PathBuf> = std::iter::once(config.policy.clone()).chain(config.policies.iter().cloned()).collect();
    let table_sets: Vec<PathBuf> = std::iter::once(config.tables.clone()).chain(config.table_sets.iter().cloned()).collect();
    let stored_policy = store.get_setting(ACTIVE_POLICY)?;
    let stored_tables = store.get_setting(ACTIVE_TABLE_SET)?;
    let stored = stored_policy.as_deref().zip(stored_tables.as_deref());
    let versions = Versions::load(&policies, &table_sets, stored)?;
    if let Some((policy, table_set)) = stored {
        let active = versions.active();
        if active.policy.name != policy || active.table_set.name != table_set {
            tracing::warn!(
                stored_policy = policy,
                stored_table_set = table_set,
                policy = %active.policy.name,
                table_set = %active.table_set.name,
                "the activated pair stored earlier is not among the loaded versions: serving the configured one"
            );
        }
    }
    if config.tokens.is_empty() {
        tracing::warn!("no tokens configured: every call will be refused (UNAUTHENTICATED)");
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(dipdrg::server::TlsPem {
            cert: std::fs::read(cert).with_context(|| format!("reading tls_cert {}", cert.display()))?,
            key: std::fs::read(key).with_context(|| format!("reading tls_key {}", key.display()))?,
        }),
        _ => None,
    };
    let benefits = match &config.benefits_policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading benefits_policy {}", path.display()))?;
            let policy = dipdrg::benefits::BenefitsPolicy::from_toml(&text)
                .with_context(|| format!("loading benefits_policy {}", path.display()))?;
            Some(Arc::new(policy))
        }
        None => None,
    };
    let active = versions.active();
    let state = Arc::new(AppState {
        benefits,
        versions: Arc::new(versions),
        store,
        tokens: Tokens::from_config(&config.tokens),
        metrics: Default::default(),
        shutdown: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr()?;
        // The first line of stdout is the address, for scripts and tests that asked for port 0.
        println!("listening on {address}");
        if !config.metrics_listen.is_empty() {
            let metrics_listener = tokio::net::TcpListener::bind(&config.metrics_listen)
                .await
                .with_context(|| format!("binding {}", config.metrics_listen))?;
            tracing::info!(address = %metrics_listener.local_addr()?, "serving Prometheus metrics at /metrics");
            tokio::spawn(dipdrg::server::metrics::serve_metrics(metrics_listener, state.metrics.clone()));
        }
        tracing::info!(
            address = %address,
            policy = %active.policy.name,
            policy_path = %active.policy.path.display(),
            table_set = %active.table_set.name,
            table_set_path = %active.table_set.path.display(),
            "serving gRPC"
        );
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(signal) => signal,
                    Err(_) => return std::future::pending::<()>().await,
                };
                tokio::select! { _ = ctrl_c => {}, _ = terminate.recv() => {} }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            tracing::info!("shutting down: finishing requests in flight");
        };
        serve(state, listener, config.max_request_bytes, tls, shutdown).await?;
        anyhow::Ok(())
    })?;
    // A settlement run still computing on the blocking pool is not waited for: its run is
    // marked FAILED (RUN_INTERRUPTED) at the next start.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    Ok(ExitCode::SUCCESS)
}

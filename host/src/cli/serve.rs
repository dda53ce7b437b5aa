//! `agenthost serve`.

use super::Format;
use crate::config::HostConfig;
use crate::host::Host;
use crate::http::{AppState, router};
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight work may take to finish after SIGTERM / Ctrl-C.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

pub async fn run(config_path: Option<PathBuf>, log_format: Format) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => HostConfig::load(path)?,
        None if std::path::Path::new("agenthost.toml").exists() => {
            HostConfig::load(std::path::Path::new("agenthost.toml"))?
        }
        None => HostConfig::defaults_in(std::path::Path::new(".")),
    };
    let log_format = match log_format {
        Format::Text => crate::telemetry::LogFormat::Text,
        Format::Json => crate::telemetry::LogFormat::Json,
    };
    let telemetry = crate::telemetry::init(log_format, &config.telemetry)?;
    let result = serve(config).await;
    telemetry.shutdown();
    result
}

async fn serve(config: HostConfig) -> anyhow::Result<()> {
    let served = start(config).await?;
    // Taken before the first deploy, so a file changed while it runs is deployed after it.
    let deployed_files = crate::watch::snapshot(&served.host.config.agents, &Default::default());
    served.host.deploy_configured().await;
    let agents = served.host.registry.read().len();
    tracing::info!(agents, "ready");
    let interval = served.host.config.watch_interval;
    if !interval.is_zero() {
        crate::watch::spawn(served.host.clone(), deployed_files, interval);
    }

    shutdown_signal().await;
    served.stop().await;
    Ok(())
}

/// A host serving its HTTP API: what `serve` and `dev` run.
pub struct Served {
    pub host: Arc<Host>,
    pub address: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

/// Opens the host of `config` and serves its API on `config.listen`, with the admin token
/// from the environment or from the data directory (shared with the CLI on this machine).
pub async fn start(mut config: HostConfig) -> anyhow::Result<Served> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let (token, token_source) =
        crate::http::token::for_host(&config.admin.token_env, &config.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    // The address actually bound (a configured port 0 is chosen now): agents' http requests
    // are checked against it.
    config.listen = address;
    let host = Host::open(config).await?;
    match &token_source {
        crate::http::token::Source::Environment(var) => {
            crate::http::token::unshare(address);
            tracing::info!("/v1 requires the admin token from ${var}")
        }
        crate::http::token::Source::File(path) => {
            crate::http::token::share_with_local_clients(address, &token);
            tracing::info!(
                "/v1 requires the admin token in {} (no ${} set); the CLI on this machine finds it",
                path.display(),
                host.config.admin.token_env
            )
        }
    }
    let app = router(AppState {
        host: host.clone(),
        token: Some(Arc::from(token)),
    });
    let bounds = crate::http::server::ConnectionBounds {
        max_connections: host.config.http.max_connections,
        header_timeout: host.config.http.header_timeout,
    };
    let server = tokio::spawn(crate::http::server::serve(
        listener,
        app,
        bounds,
        host.stop.clone(),
    ));
    tracing::info!(%address, data_dir = %host.config.data_dir.display(), bus = host.bus.kind(), "listening on http://{address}");
    Ok(Served {
        host,
        address,
        server,
    })
}

impl Served {
    /// Finishes in-flight work (within a bound) and stops serving.
    pub async fn stop(self) {
        tracing::info!("shutting down: finishing in-flight work");
        self.host.shutdown(SHUTDOWN_BOUND).await;
        if tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections did not finish in time");
        }
        tracing::info!("stopped");
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

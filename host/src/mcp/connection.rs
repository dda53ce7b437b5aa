//! One MCP server: a supervised connection shared by every agent granted the server.
//!
//! A supervisor task owns the connection. It connects (spawning the stdio child or opening the
//! HTTP session), publishes the result through a watch channel, waits for the connection to
//! end, and reconnects with exponential backoff. Callers never wait on a server that is down:
//! they get its last error at once (and nudge the supervisor to retry early), so an outage
//! turns into `failed` for the agent — retried and eventually dead-lettered by delivery —
//! rather than into a hang.

use super::oauth::{Grant, HttpClient, RefreshTokens};
use crate::config::{McpConnect, McpProtocol, McpServerConfig};
use crate::metrics::Metrics;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What a stdio server inherits from the host besides the variables its config names: finding
/// programs, a home directory (user-installed packages), locale, time zone, temporary files.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];
/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A caller finding the server down may cut the backoff short, but attempts stay at least this
/// far apart so a burst of events cannot hammer a dead server.
const MIN_ATTEMPT_SPACING: Duration = Duration::from_secs(1);
/// A connection that lived this long resets the backoff: the server was healthy.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Why a connection attempt failed: the server was not reached (not started, not listening,
/// misconfigured), or it was and the handshake failed.
enum Handshake {
    Unreached(String),
    Refused(String),
}

impl Handshake {
    fn message(&self) -> &str {
        match self {
            Self::Unreached(m) | Self::Refused(m) => m,
        }
    }
}

/// Why a server cannot be used right now; the text is what the agent receives in `failed`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("MCP server {server:?} is unavailable: {reason}")]
pub struct Unavailable {
    pub server: Arc<str>,
    pub reason: Arc<str>,
}

#[derive(Clone)]
enum State {
    /// `connect = "lazy"` and nobody has used it yet.
    Idle,
    Connecting,
    Ready(Arc<Connection>),
    Down {
        reason: Arc<str>,
    },
}

/// An established session.
pub struct Connection {
    pub peer: Peer<RoleClient>,
    pub protocol: ProtocolVersion,
    /// `name version` as the server reported it, when it did.
    pub server_info: Option<String>,
    pub since: SystemTime,
}

/// What `/v1/mcp/servers` and `agenthost agents` show for one server.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// The command line or URL.
    pub target: String,
    /// `idle` (lazy, unused), `connecting`, `up` or `down`.
    pub state: String,
    /// The negotiated protocol revision while up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<String>,
    /// Why it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Connections re-established after the first.
    pub restarts: u64,
    /// Process id of a stdio server's current child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

pub struct McpServer {
    name: Arc<str>,
    config: McpServerConfig,
    state: watch::Sender<State>,
    /// Starts a lazy supervisor, or cuts a backoff short.
    wake: Notify,
    started: AtomicBool,
    restarts: AtomicU64,
    pid: std::sync::Mutex<Option<u32>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    /// What a refresh token grant has rotated, across reconnections (and restarts, when
    /// kept in the host's database).
    refresh_tokens: RefreshTokens,
}

impl McpServer {
    /// `token_tree` keeps rotated OAuth refresh tokens ([`super::oauth::TOKEN_TREE`] of the
    /// host's database); without it they are kept in memory.
    pub fn new(
        name: &str,
        config: McpServerConfig,
        token_tree: Option<sled::Tree>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        metrics.set_mcp_server_up(name, false);
        Arc::new(Self {
            name: name.into(),
            config,
            state: watch::Sender::new(State::Idle),
            wake: Notify::new(),
            started: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            pid: std::sync::Mutex::new(None),
            metrics,
            stop,
            refresh_tokens: RefreshTokens::new(name, token_tree),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the supervisor now if the server connects at start.
    pub fn start_if_eager(self: &Arc<Self>) {
        if self.config.connect == McpConnect::Start {
            self.ensure_supervised();
        }
    }

    fn ensure_supervised(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.state.send_replace(State::Connecting);
        let server = self.clone();
        tokio::spawn(async move { server.supervise().await });
    }

    /// The session to send a request on: waits while a connection is being made (bounded by
    /// `connect_timeout`, and by the caller's own deadline), fails at once when the server is
    /// down.
    pub async fn connection(self: &Arc<Self>) -> Result<Arc<Connection>, Unavailable> {
        self.ensure_supervised();
        let mut state = self.state.subscribe();
        loop {
            match &*state.borrow_and_update() {
                State::Ready(connection) => return Ok(connection.clone()),
                State::Down { reason } => {
                    self.wake.notify_one();
                    return Err(self.unavailable(reason.clone()));
                }
                State::Idle | State::Connecting => {}
            }
            if state.changed().await.is_err() {
                return Err(self.unavailable("the host is shutting down".into()));
            }
        }
    }

    /// Reports a request that failed because the transport is gone, so callers stop being
    /// handed the dead session before the supervisor notices.
    pub fn unavailable(&self, reason: Arc<str>) -> Unavailable {
        Unavailable {
            server: self.name.clone(),
            reason,
        }
    }

    pub fn status(&self) -> ServerStatus {
        let (transport, target) = match (&self.config.command, &self.config.url) {
            (Some(command), _) => ("stdio", command.join(" ")),
            (None, Some(url)) => ("http", url.clone()),
            (None, None) => ("none", String::new()),
        };
        let mut status = ServerStatus {
            name: self.name.to_string(),
            transport: transport.into(),
            target,
            state: String::new(),
            protocol: None,
            server_info: None,
            error: None,
            restarts: self.restarts.load(Ordering::Relaxed),
            pid: *self.pid.lock().unwrap_or_else(|p| p.into_inner()),
        };
        match &*self.state.borrow() {
            State::Idle => status.state = "idle".into(),
            State::Connecting => status.state = "connecting".into(),
            State::Ready(c) => {
                status.state = "up".into();
                status.protocol = Some(c.protocol.to_string());
                status.server_info = c.server_info.clone();
            }
            State::Down { reason } => {
                status.state = "down".into();
                status.error = Some(reason.to_string());
            }
        }
        status
    }

    async fn supervise(self: Arc<Self>) {
        let mut failures: u32 = 0;
        let mut connected_before = false;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let attempt_started = Instant::now();
            self.state.send_replace(State::Connecting);
            let connected = tokio::select! {
                _ = self.stop.cancelled() => break,
                result = tokio::time::timeout(self.config.connect_timeout, self.connect()) => {
                    result.unwrap_or_else(|_| Err(format!(
                        "no connection within connect_timeout ({})",
                        humantime::format_duration(self.config.connect_timeout)
                    )))
                }
            };
            match connected {
                Ok((running, connection)) => {
                    if connected_before {
                        self.restarts.fetch_add(1, Ordering::Relaxed);
                        self.metrics.record_mcp_restart(&self.name);
                    }
                    connected_before = true;
                    tracing::info!(
                        server = &*self.name,
                        protocol = %connection.protocol,
                        server_info = connection.server_info.as_deref().unwrap_or("-"),
                        "MCP server connected"
                    );
                    self.state.send_replace(State::Ready(connection));
                    self.metrics.set_mcp_server_up(&self.name, true);
                    let up_since = Instant::now();
                    let reason = self.wait_for_end(running).await;
                    self.metrics.set_mcp_server_up(&self.name, false);
                    *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    if self.stop.is_cancelled() {
                        break;
                    }
                    tracing::warn!(
                        server = &*self.name,
                        reason,
                        "MCP server connection ended; reconnecting"
                    );
                    self.state.send_replace(State::Down {
                        reason: reason.into(),
                    });
                    if up_since.elapsed() >= STABLE_AFTER {
                        failures = 0;
                    }
                }
                Err(reason) => {
                    tracing::warn!(server = &*self.name, reason, "cannot connect to MCP server");
                    self.state.send_replace(State::Down {
                        reason: reason.into(),
                    });
                }
            }
            let backoff = BACKOFF_FIRST
                .saturating_mul(1u32 << failures.min(8))
                .min(BACKOFF_MAX);
            failures = failures.saturating_add(1);
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
                _ = self.wake.notified() => {
                    let spacing = MIN_ATTEMPT_SPACING.saturating_sub(attempt_started.elapsed());
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = tokio::time::sleep(spacing) => {}
                    }
                }
            }
        }
        self.state.send_replace(State::Down {
            reason: "the host is shutting down".into(),
        });
    }

    /// Waits until the session ends (the child exited, the HTTP session failed) or the host
    /// stops, and says why.
    async fn wait_for_end(&self, running: RunningService<RoleClient, ClientSide>) -> String {
        let token = running.cancellation_token();
        let stop = self.stop.clone();
        let waiting = running.waiting();
        tokio::pin!(waiting);
        tokio::select! {
            reason = &mut waiting => match reason {
                Ok(reason) => format!("connection closed ({reason:?})"),
                Err(e) => format!("connection task failed: {e}"),
            },
            _ = stop.cancelled() => {
                token.cancel();
                // Lets the transport close (and a stdio child be reaped) before the host exits.
                let _ = tokio::time::timeout(Duration::from_secs(2), waiting).await;
                "the host is shutting down".into()
            }
        }
    }

    async fn connect(
        &self,
    ) -> Result<(RunningService<RoleClient, ClientSide>, Arc<Connection>), String> {
        let handler = ClientSide {
            server: self.name.clone(),
        };
        let lifecycle = match self.config.protocol {
            McpProtocol::Auto => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
            McpProtocol::V2026_07_28 => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
            McpProtocol::V2025_11_25 => ClientLifecycleMode::Initialize,
        };
        let running = match self.handshake(handler.clone(), lifecycle).await {
            Ok(running) => running,
            // Some servers of the 2025 revisions answer the unknown `server/discover` with an
            // empty result instead of an error, which rmcp does not take for "legacy"; a fresh
            // connection with the 2025-11-25 handshake reaches them. A server that could not
            // be reached or started is not tried again.
            Err(Handshake::Refused(discover)) if self.config.protocol == McpProtocol::Auto => self
                .handshake(handler, ClientLifecycleMode::Initialize)
                .await
                .map_err(|initialize| {
                    format!(
                        "{discover}; with the 2025-11-25 handshake: {}",
                        initialize.message()
                    )
                })?,
            Err(e) => return Err(e.message().to_owned()),
        };
        let peer = running.peer().clone();
        let info = peer.peer_info();
        let protocol = info
            .as_ref()
            .map(|i| i.protocol_version.clone())
            .unwrap_or(ProtocolVersion::V_2025_11_25);
        let server_info = info.as_ref().and_then(|i| {
            i.server_info
                .as_ref()
                .map(|s| format!("{} {}", s.name, s.version))
        });
        self.follow_tool_list_changes(&peer, info.as_deref());
        Ok((
            running,
            Arc::new(Connection {
                peer,
                protocol,
                server_info,
                since: SystemTime::now(),
            }),
        ))
    }

    /// A new transport (a child process or an HTTP session) and the handshake over it.
    async fn handshake(
        &self,
        handler: ClientSide,
        lifecycle: ClientLifecycleMode,
    ) -> Result<RunningService<RoleClient, ClientSide>, Handshake> {
        match (&self.config.command, &self.config.url) {
            (Some(command), _) => {
                let transport = self.spawn_child(command).map_err(Handshake::Unreached)?;
                handler
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| {
                        Handshake::Refused(format!("handshake failed: {}", root_cause(&e)))
                    })
            }
            (None, Some(url)) => {
                // Configuration problems (a missing secret) before network ones.
                let (transport, client) = self.http_transport(url).map_err(Handshake::Unreached)?;
                reachable(url).await.map_err(Handshake::Unreached)?;
                handler
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| {
                        // Without a token no handshake gets further: say why, once.
                        match client.token_failure() {
                            Some(why) => Handshake::Unreached(format!(
                                "cannot obtain an OAuth token for {url}: {why}"
                            )),
                            None => Handshake::Refused(format!(
                                "handshake with {url} failed: {}",
                                root_cause(&e)
                            )),
                        }
                    })
            }
            (None, None) => Err(Handshake::Unreached(
                "neither `command` nor `url` is configured".into(),
            )),
        }
    }

    fn spawn_child(
        &self,
        command: &[String],
    ) -> Result<rmcp::transport::TokioChildProcess, String> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| "`command` is empty".to_string())?;
        let mut cmd = tokio::process::Command::new(program);
        // A clean environment: the host's holds the admin token and A2A/MCP credentials, which
        // a tool server has no business reading. It gets what running a program needs, the
        // variables its config passes on by name, and its `env`.
        cmd.args(args).env_clear();
        for name in INHERITED_ENV
            .iter()
            .copied()
            .chain(self.config.inherit_env.iter().map(String::as_str))
        {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.envs(&self.config.env);
        if let Some(cwd) = &self.config.cwd {
            if !cwd.is_dir() {
                return Err(format!(
                    "working directory {} does not exist",
                    cwd.display()
                ));
            }
            cmd.current_dir(cwd);
        }
        let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = transport.id();
        if let Some(stderr) = stderr {
            // The server's stderr is its log: forward it line by line, tagged with the server.
            let server = self.name.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "agenthost::mcp::stderr", server = &*server, "{line}");
                }
            });
        }
        Ok(transport)
    }

    fn http_transport(
        &self,
        url: &str,
    ) -> Result<
        (
            rmcp::transport::StreamableHttpClientTransport<HttpClient>,
            HttpClient,
        ),
        String,
    > {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let mut headers = std::collections::HashMap::new();
        for (header, variable) in &self.config.headers_env {
            let value = std::env::var(variable).map_err(|_| {
                format!("header {header}: environment variable {variable} is not set")
            })?;
            let name = http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|e| format!("header {header:?}: {e}"))?;
            let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
                format!("header {header}: the value of {variable} is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.config.connect_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let client = match &self.config.oauth {
            None => HttpClient::plain(client),
            Some(oauth) => {
                let grant = Grant::from_config(oauth, url, &self.refresh_tokens)?;
                HttpClient::with_oauth(client, url, grant)
            }
        };
        let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
            .custom_headers(headers)
            .reinit_on_expired_session(true);
        Ok((
            rmcp::transport::StreamableHttpClientTransport::with_client(client.clone(), config),
            client,
        ))
    }

    /// On the 2026-07-28 revision, list-change notifications are opt-in per subscription; rmcp
    /// drops its cached tool list when one arrives. Older revisions send them unasked, and the
    /// cache is not used for them.
    fn follow_tool_list_changes(
        &self,
        peer: &Peer<RoleClient>,
        info: Option<&rmcp::model::ServerPeerInfo>,
    ) {
        let Some(info) = info else { return };
        let modern = !info.protocol_version.has_initialize();
        let announces = info
            .capabilities
            .tools
            .as_ref()
            .and_then(|t| t.list_changed)
            .unwrap_or(false);
        if !(modern && announces) {
            return;
        }
        let peer = peer.clone();
        let server = self.name.clone();
        tokio::spawn(async move {
            let filter = rmcp::model::SubscriptionFilter::builder()
                .tools_list_changed()
                .build();
            let mut subscription = match peer.listen(filter).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(server = &*server, error = %e, "cannot subscribe to tool-list changes");
                    return;
                }
            };
            while let Ok(Some(_)) = subscription.next().await {
                tracing::info!(server = &*server, "MCP server's tool list changed");
            }
        });
    }
}

/// Whether the server's port accepts connections: the transport's own error for a server that
/// is down is wrapped past recognition, and "connection refused" is what an operator needs.
async fn reachable(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("{url:?} has no port"))?;
    tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map(drop)
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))
}

/// The innermost error of a chain ("Connection refused (os error 111)"), which says more to an
/// operator than the transport's layered wrappers; the full chain goes to the debug log.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    tracing::debug!(error = ?error, "MCP connection error");
    let mut deepest = error;
    let mut messages = vec![error.to_string()];
    while let Some(source) = deepest.source() {
        deepest = source;
        messages.push(source.to_string());
    }
    // Keep the last two levels when the innermost alone is too terse ("connection refused").
    let message = match messages.len() {
        0 | 1 => messages.pop().unwrap_or_default(),
        n => {
            let inner = &messages[n - 1];
            let outer = &messages[n - 2];
            if outer.contains(inner.as_str()) {
                outer.clone()
            } else {
                format!("{outer}: {inner}")
            }
        }
    };
    without_type_names(&message)
}

/// rmcp names its transport's Rust type in errors (`Transport [rmcp::transport::…<…>]`); that
/// is noise to an operator.
fn without_type_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" [rmcp::") {
        out.push_str(&rest[..start]);
        match rest[start..].find(']') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The client side of a session: identifies the host and logs what the server announces.
/// It offers no sampling, roots or elicitation: an agent's tool call cannot make the host act
/// on a server's behalf.
#[derive(Clone)]
pub struct ClientSide {
    server: Arc<str>,
}

impl ClientHandler for ClientSide {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agenthost", env!("CARGO_PKG_VERSION")),
        );
        // The revision a legacy `initialize` proposes; `auto` and pinned modern modes name
        // theirs in the lifecycle mode.
        info.protocol_version = ProtocolVersion::V_2025_11_25;
        info
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::info!(server = &*self.server, "MCP server's tool list changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_type_names_are_removed_from_errors() {
        assert_eq!(
            without_type_names(
                "Send message error Transport [rmcp::transport::worker::WorkerTransport<a::B<c::D>>] error: Client error: boom"
            ),
            "Send message error Transport error: Client error: boom"
        );
        assert_eq!(without_type_names("plain"), "plain");
    }
}

//! `agenthost mcp-stdio`: the host's MCP tools for clients that launch a command and speak MCP
//! over its stdin and stdout (desktop assistants, IDEs). It is an MCP server on stdio relaying
//! `tools/list` and `tools/call` to a running host's streamable HTTP endpoint (`/mcp`, or
//! `/agents/{name}/mcp` with `--agent`), with the caller's credentials; progress notifications
//! come back, and a cancelled call is cancelled upstream. stdout carries only the protocol.

use super::HostArgs;
use anyhow::Context as _;
use rmcp::model::{CallToolRequest, ClientRequest, ProgressToken, ServerResult};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RunningService,
};
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt as _};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The stdio client's progress token of each call in flight, by the token rmcp chose for the
/// call upstream (it always sets its own).
type ProgressTokens = Arc<Mutex<HashMap<ProgressToken, ProgressToken>>>;

pub struct StdioArgs<'a> {
    pub agent: Option<&'a str>,
    pub bearer: Option<&'a str>,
    /// Extra headers (an API key), `KEY=VALUE`.
    pub headers: &'a [String],
}

pub async fn run(host: &HostArgs, args: StdioArgs<'_>) -> anyhow::Result<()> {
    let base = host.host.trim_end_matches('/');
    let url = match args.agent {
        Some(agent) => format!("{base}/agents/{agent}/mcp"),
        None => format!("{base}/mcp"),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = args.bearer {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}")
                .parse()
                .context("the bearer token is not a valid header value")?,
        );
    }
    for header in args.headers {
        let (k, v) = header
            .split_once('=')
            .with_context(|| format!("--header {header:?} is not KEY=VALUE"))?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())
                .with_context(|| format!("--header {header:?}: {k:?} is not a header name"))?,
            v.trim()
                .parse()
                .with_context(|| format!("--header {header:?}: the value is not valid"))?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        http,
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.clone(),
        ),
    );
    let downstream = Arc::new(OnceLock::new());
    let tokens = ProgressTokens::default();
    let upstream = Relay {
        downstream: downstream.clone(),
        tokens: tokens.clone(),
    }
    .serve(transport)
    .await
    .with_context(|| format!("cannot open an MCP session with {url}"))?;
    let server = Proxy {
        upstream: upstream.peer().clone(),
        tokens,
    }
    .serve(rmcp::transport::stdio())
    .await
    .context("the MCP client on stdin did not initialize")?;
    let _ = downstream.set(server.peer().clone());
    // Until the client closes stdin (or the host goes away, which fails its calls).
    let quit = server.waiting().await;
    close(upstream).await;
    quit.context("the stdio session failed")?;
    Ok(())
}

async fn close(upstream: RunningService<RoleClient, Relay>) {
    let _ = upstream.cancel().await;
}

/// The client side, towards the host: passes progress notifications down to the stdio client.
struct Relay {
    downstream: Arc<OnceLock<Peer<RoleServer>>>,
    tokens: ProgressTokens,
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info =
            rmcp::model::Implementation::new("agenthost-mcp-stdio", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let theirs = match self.tokens.lock() {
            Ok(tokens) => tokens.get(&params.progress_token).cloned(),
            Err(_) => None,
        };
        // Progress of a call whose client did not ask for it goes nowhere.
        let Some(theirs) = theirs else { return };
        params.progress_token = theirs;
        if let Some(peer) = self.downstream.get() {
            // The stdio client may have gone; its session ending stops everything anyway.
            let _ = peer.notify_progress(params).await;
        }
    }
}

/// The server side, on stdio: every request goes to the host as it came.
struct Proxy {
    upstream: Peer<RoleClient>,
    tokens: ProgressTokens,
}

fn upstream_error(e: rmcp::service::ServiceError) -> ErrorData {
    match e {
        rmcp::service::ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(format!("the host did not answer: {other}"), None),
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        if let Some(info) = self.upstream.peer_info() {
            if let Some(server) = &info.server_info {
                config = config.with_server_info(server.clone());
            }
            if let Some(instructions) = &info.instructions {
                config = config.with_instructions(instructions.clone());
            }
        }
        config
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = ClientRequest::CallToolRequest(CallToolRequest::new(request));
        let mut handle = self
            .upstream
            .send_cancellable_request(call, PeerRequestOptions::no_options())
            .await
            .map_err(upstream_error)?;
        // rmcp hands the request's `_meta` over in the context.
        let progress = context.meta.get_progress_token();
        let upstream_token = handle.progress_token.clone();
        if let (Some(theirs), Ok(mut tokens)) = (progress, self.tokens.lock()) {
            tokens.insert(upstream_token.clone(), theirs);
        }
        // Cancelling the upstream call sends `notifications/cancelled` on.
        let outcome = tokio::select! {
            result = &mut handle.rx => Some(result.unwrap_or(Err(rmcp::service::ServiceError::TransportClosed))),
            () = context.ct.cancelled() => None,
        };
        if outcome.is_none() {
            // The host may be gone too; then there is nothing left to cancel.
            let _ = handle
                .cancel(Some("canceled by the stdio client".into()))
                .await;
        }
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&upstream_token);
        }
        match outcome {
            Some(Ok(ServerResult::CallToolResult(result))) => {
                Ok(CallToolResponse::Complete(result))
            }
            Some(Ok(_)) => Err(ErrorData::internal_error(
                "the host answered tools/call with something other than a tool result",
                None,
            )),
            Some(Err(e)) => Err(upstream_error(e)),
            None => Err(ErrorData::internal_error("canceled by the caller", None)),
        }
    }
}

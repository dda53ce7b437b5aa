//! The host as an MCP server: every agent whose manifest says `[mcp] expose = true` offers its
//! card's skills as tools, at `/mcp` (all of them) and `/agents/{name}/mcp` (one agent's), over
//! rmcp's streamable HTTP server, which negotiates the 2025-11-25 session revision and the
//! 2026-07-28 stateless one per request. Tools and calls are in `tools.rs`, how a reply
//! becomes a tool result in `reply.rs`; here is the HTTP side: which `Host` headers are
//! accepted, and who gets in (docs/mcp.md, "The host as an MCP server").
//!
//! Who gets in: an agent's `[mcp] security` names host schemes (`[a2a.security.NAME]`), one
//! of which a caller must satisfy; `security = []` admits anyone. At `/agents/{name}/mcp` a
//! caller that satisfies none is answered 401 with the schemes' challenges. At `/mcp` it is
//! answered 401 when it presents credentials no scheme accepts, or when it presents none and
//! every exposed agent wants some; otherwise it sees the tools of the agents it may call.
//! Every refusal is audited (`mcp.serve`, denied).

mod reply;
mod tools;

use crate::a2a::ResolvedScheme;
use crate::agent::AgentVersion;
use crate::audit::{AuditEntry, Outcome};
use crate::host::Host;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::tower::StreamableHttpServerConfig;
use serde_json::json;
use std::sync::Arc;

pub use tools::AgentTools;

/// The largest JSON-RPC request body accepted (arguments of one tool call).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The streamable HTTP service behind both endpoints. Its sessions (2025-11-25) are shared:
/// which agents a request reaches follows its path and headers, not its session.
pub fn service(host: Arc<Host>) -> StreamableHttpService<AgentTools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        // A call that only answers (no progress) is one JSON body rather than an SSE stream
        // of one event, on the stateless 2026-07-28 revision; one that reports progress
        // still streams. Sessions of 2025-11-25 stream as before.
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts(&host))
        .with_max_request_body_bytes(MAX_BODY)
        .with_cancellation_token(host.stop.child_token());
    StreamableHttpService::new(
        move || Ok(AgentTools::new(host.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The `Host` header values the server answers: loopback names (rmcp's default, against DNS
/// rebinding), the listen address, and the host of `[a2a] public_url`, with and without port.
fn allowed_hosts(host: &Host) -> Vec<String> {
    let listen = host.config.listen;
    let mut allowed = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        listen.ip().to_string(),
        listen.to_string(),
    ];
    if let Ok(url) = reqwest::Url::parse(&host.a2a.public_url)
        && let Some(name) = url.host_str()
    {
        allowed.push(name.trim_matches(['[', ']']).to_owned());
        if let Some(port) = url.port_or_known_default() {
            allowed.push(format!("{name}:{port}"));
        }
    }
    allowed.sort();
    allowed.dedup();
    allowed
}

/// The agent an endpoint path is for: `/agents/{name}/mcp` → `name`; `/mcp` → none.
pub fn scope_of(path: &str) -> Option<&str> {
    path.strip_prefix("/agents/")?.strip_suffix("/mcp")
}

/// The live versions of the agents offering tools at `scope` (all, or one agent's).
pub fn exposed(host: &Host, scope: Option<&str>) -> Vec<Arc<AgentVersion>> {
    let registry = host.registry.read();
    let mut agents: Vec<Arc<AgentVersion>> = match scope {
        Some(name) => registry
            .get(name)
            .map(|r| r.cell.current())
            .into_iter()
            .collect(),
        None => registry.values().map(|r| r.cell.current()).collect(),
    };
    agents.retain(|v| v.manifest.mcp.expose);
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    agents
}

/// The host schemes an agent's `[mcp] security` names.
pub fn schemes_of<'a>(host: &'a Host, agent: &AgentVersion) -> Vec<&'a ResolvedScheme> {
    agent
        .manifest
        .mcp
        .schemes()
        .iter()
        .filter_map(|name| host.a2a.schemes.get(name))
        .collect()
}

/// Whether a caller with these headers may call `agent`'s tools.
pub fn admits(host: &Host, agent: &AgentVersion, headers: &HeaderMap) -> bool {
    agent.manifest.mcp.schemes().is_empty()
        || schemes_of(host, agent).iter().any(|s| s.accepts(headers))
}

/// In front of the MCP service: refuses a request for an endpoint it cannot use (see the
/// module's docs) before rmcp reads its body.
pub async fn gate(State(host): State<Arc<Host>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let agents = exposed(&host, scope_of(&path));
    if let Some(name) = scope_of(&path)
        && agents.is_empty()
    {
        return not_found(name);
    }
    let admitted = agents.iter().any(|a| admits(&host, a, headers));
    let wanted: Vec<&ResolvedScheme> = agents.iter().flat_map(|a| schemes_of(&host, a)).collect();
    let wrong_credentials =
        wanted.iter().any(|s| s.presented(headers)) && !wanted.iter().any(|s| s.accepts(headers));
    if admitted && !wrong_credentials || agents.is_empty() {
        let ending_session = request.method() == axum::http::Method::DELETE;
        let request = match checked_body(request).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        let mut response = next.run(request).await;
        // rmcp answers a session's end 202; clients expect 200 or 204 (the Python SDK logs
        // "Session termination failed: 202" otherwise).
        if ending_session && response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        return response;
    }
    let why = if wrong_credentials {
        "credentials that none of the agents' schemes accept"
    } else {
        "no credentials"
    };
    let correlation_id = super::a2a::correlation_id(headers);
    // One entry per agent refused, so each agent's audit trail shows who knocked.
    for agent in &agents {
        host.audit.record(
            AuditEntry::new(
                &*agent.name,
                &*agent.version,
                correlation_id.as_str(),
                "mcp.serve",
                path.as_str(),
                Outcome::Denied,
            )
            .detail(format!("{why} (HTTP 401)")),
        );
    }
    unauthorized(&wanted, why)
}

/// A POST's body read (at most [`MAX_BODY`]) and checked to be JSON-RPC, so a malformed one
/// gets the JSON-RPC error the spec names (rmcp answers those in plain text).
async fn checked_body(request: Request) -> Result<Request, Response> {
    if request.method() != axum::http::Method::POST {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!("the request body is larger than {MAX_BODY} bytes, or was cut off"),
        )
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            -32700,
            format!("parse error: the body is not JSON: {e}"),
        )
    })?;
    let is_message =
        |m: &serde_json::Value| m.get("jsonrpc").and_then(|v| v.as_str()) == Some("2.0");
    let valid = match &value {
        serde_json::Value::Object(_) => is_message(&value),
        serde_json::Value::Array(batch) => !batch.is_empty() && batch.iter().all(is_message),
        _ => false,
    };
    if !valid {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "invalid request: expected a JSON-RPC 2.0 message (an object with \"jsonrpc\": \"2.0\")".into(),
        ));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn rpc_error(status: StatusCode, code: i32, message: String) -> Response {
    (
        status,
        Json(
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }),
        ),
    )
        .into_response()
}

fn not_found(name: &str) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        -32600,
        format!(
            "no agent {name:?} serves MCP tools here: its manifest needs `[mcp] expose = true`"
        ),
    )
}

fn unauthorized(schemes: &[&ResolvedScheme], why: &str) -> Response {
    let mut names: Vec<&str> = schemes.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut response = rpc_error(
        StatusCode::UNAUTHORIZED,
        -32600,
        format!(
            "authentication required: the request has {why}; present the credential of one of {names:?}"
        ),
    );
    let mut challenges: Vec<String> = schemes.iter().map(|s| s.challenge()).collect();
    challenges.sort();
    challenges.dedup();
    super::append_challenges(&mut response, challenges);
    response
}

#[cfg(test)]
mod tests {
    use super::scope_of;

    #[test]
    fn the_path_says_which_agent() {
        assert_eq!(scope_of("/mcp"), None);
        assert_eq!(scope_of("/agents/pricing/mcp"), Some("pricing"));
        assert_eq!(scope_of("/agents/mcp"), None);
    }
}

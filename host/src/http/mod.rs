//! The one HTTP listener: `/healthz`, `/metrics`, the `/v1` API the CLI verbs use, A2A
//! (`/agents`, `/agents/{name}` and their cards; see `a2a.rs`) and MCP (`mcp/`).
//!
//! Everything under `/v1` requires the admin bearer token (it reads topics, publishes and
//! deploys): the configured one, or one generated at first start ([`token`]).
//! A2A endpoints are authenticated per agent, by the schemes its card declares; so are the MCP
//! endpoints (`/mcp`, `/agents/{name}/mcp`; see `mcp/`), by the schemes its manifest names.

mod a2a;
mod api;
mod mcp;
pub mod server;
pub mod token;
pub(crate) mod wire;

pub use wire::{
    AgentView, AgentsResponse, CanaryView, ConsumeQuery, DeployUpload, ErrorBody, PublishRequest,
    PublishResponse, RefusalView, RollbackRequest, WireRecord, decode_b64,
};

use crate::host::Host;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// Adds a `WWW-Authenticate` header per challenge to a refusal (A2A's and MCP's 401s).
fn append_challenges(response: &mut Response, challenges: impl IntoIterator<Item = String>) {
    for challenge in challenges {
        if let Ok(value) = challenge.parse() {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, value);
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub host: Arc<Host>,
    /// The admin bearer token; `None` only in tests of the router itself.
    pub token: Option<Arc<str>>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/topics/{topic}/records",
            post(api::publish).get(api::consume),
        )
        .route(
            "/agents",
            get(api::agents)
                .post(api::deploy)
                .layer(axum::extract::DefaultBodyLimit::max(api::MAX_DEPLOY_BODY)),
        )
        .route("/agents/{name}/deployments", get(api::deployments))
        .route("/agents/{name}/rollback", post(api::rollback))
        .route("/agents/{name}/promote", post(api::promote))
        .route("/agents/{name}/approve", post(api::approve))
        .route("/audit", get(api::audit))
        .route("/mcp/servers", get(api::mcp_servers))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let a2a = Router::new()
        .route("/agents", get(a2a::index))
        .route("/agents/{name}/.well-known/agent-card.json", get(a2a::card))
        .route("/agents/{name}", post(a2a::rpc))
        .route("/agents/{name}/", post(a2a::rpc))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::a2a::model::MAX_BODY,
        ))
        .with_state(state.host.clone());
    // Metric labels name every agent, topic and tool: with `[admin] metrics_public = false`
    // they are for token holders only.
    let mut metrics_route = Router::new().route("/metrics", get(metrics));
    if !state.host.config.admin.metrics_public {
        metrics_route =
            metrics_route.layer(middleware::from_fn_with_state(state.clone(), require_token));
    }
    // MCP: exposed agents' skills as tools, for all of them and per agent (see mcp/).
    let mcp_service = mcp::service(state.host.clone());
    let mcp_routes = Router::new()
        .route_service("/mcp", mcp_service.clone())
        .route_service("/agents/{name}/mcp", mcp_service)
        .layer(middleware::from_fn_with_state(
            state.host.clone(),
            mcp::gate,
        ));
    Router::new()
        .merge(a2a)
        .merge(mcp_routes)
        .route("/healthz", get(healthz))
        .merge(metrics_route)
        .nest("/v1", v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> Response {
    if s.host.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.host.metrics.encode(),
    )
        .into_response()
}

async fn require_token(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token (Authorization: Bearer …)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares secrets without exiting early on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: a status and a one-line reason, as JSON `{"error": …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secrets"));
    }
}

//! Handlers of the `/v1` API.

use super::wire::{AgentsResponse, CanaryView, RefusalView, RollbackRequest, decode_b64};
use super::{
    AgentView, ApiError, AppState, ConsumeQuery, DeployUpload, PublishRequest, PublishResponse,
    WireRecord,
};
use crate::bus::{self, Header, Outgoing, StartAt};
use crate::host::{Approval, DeployError, DeployRequest};
use crate::manifest::Manifest;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The longest a consume request may wait.
const MAX_CONSUME_WAIT: Duration = Duration::from_secs(300);

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {}", e.body_text())))
}

pub async fn publish(
    State(s): State<AppState>,
    Path(topic): Path<String>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PublishResponse>, ApiError> {
    let req = json_body(body)?;
    bus::validate_topic(&topic).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let payload = match (req.payload, req.payload_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => decode_b64("payload_base64", &b64).map_err(ApiError::bad_request)?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `payload` (text) and `payload_base64` (bytes)",
            ));
        }
    };
    let mut headers: Vec<Header> = req
        .headers
        .into_iter()
        .map(|(k, v)| Header::new(k, v))
        .collect();
    // The edge of the system: a record without a correlation id gets one here.
    let correlation_id = match bus::find_header(&headers, bus::headers::CORRELATION_ID) {
        Some(v) if !v.is_empty() => String::from_utf8_lossy(v).into_owned(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            bus::set_header(&mut headers, bus::headers::CORRELATION_ID, id.as_bytes());
            id
        }
    };
    let outgoing = Outgoing {
        topic,
        key: req.key.map(String::into_bytes),
        payload,
        headers,
    };
    let receipt = s
        .host
        .bus
        .publish(outgoing)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    s.host.metrics.record_api_publish();
    // Where a request enters the system: the first step of its trace.
    s.host.audit.record(crate::audit::AuditEntry::new(
        crate::audit::API_CALLER,
        "",
        correlation_id.as_str(),
        "publish",
        crate::agent::event_target(&receipt.topic, receipt.partition, receipt.offset),
        crate::audit::Outcome::Allowed,
    ));
    Ok(Json(PublishResponse {
        topic: receipt.topic,
        partition: receipt.partition,
        offset: receipt.offset,
        correlation_id,
    }))
}

pub async fn consume(
    State(s): State<AppState>,
    Path(topic): Path<String>,
    query: Result<Query<ConsumeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    bus::validate_topic(&topic).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let wait = match &q.timeout {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("`timeout` {t:?}: {e}")))?,
        None => Duration::from_secs(10),
    }
    .min(MAX_CONSUME_WAIT);
    let start = if q.from_beginning {
        StartAt::Beginning
    } else {
        StartAt::End
    };
    let mut reader = s
        .host
        .bus
        .read(&topic, start)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let limit = q.count.unwrap_or(u64::MAX);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + wait;
        let mut sent = 0;
        while sent < limit {
            let record = tokio::select! {
                r = reader.next() => r,
                _ = tokio::time::sleep_until(deadline) => break,
                // The client went away: stop reading.
                _ = tx.closed() => break,
            };
            let line = match record {
                Ok(r) => serde_json::to_string(&WireRecord::from(&r)).map(|mut l| {
                    l.push('\n');
                    l
                }),
                Err(e) => Ok(format!(
                    "{}\n",
                    serde_json::json!({ "error": e.to_string() })
                )),
            };
            let Ok(line) = line else { break };
            if tx.send(Ok(line)).await.is_err() {
                break;
            }
            sent += 1;
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn agents(State(s): State<AppState>) -> Json<AgentsResponse> {
    let agents = s
        .host
        .registry
        .read()
        .values()
        .map(|running| {
            let v = running.cell.current();
            let m = &v.manifest;
            AgentView {
                name: v.name.to_string(),
                version: v.version.to_string(),
                digest: v.digest.clone(),
                description: m.description.clone(),
                source: running.source.clone(),
                subscribe: m
                    .subscribe
                    .iter()
                    .map(|e| format!("{} (group {})", e.topic, m.group_of(e)))
                    .collect(),
                publish: m
                    .capabilities
                    .publish
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                state_used: v.state_used(),
                invocations: running
                    .cell
                    .stats
                    .invocations
                    .load(std::sync::atomic::Ordering::Relaxed),
                failures: running
                    .cell
                    .stats
                    .failures
                    .load(std::sync::atomic::Ordering::Relaxed),
                dead_letters: running
                    .cell
                    .stats
                    .dead_letters
                    .load(std::sync::atomic::Ordering::Relaxed),
                skills: v.card.skills.iter().map(|s| s.id.clone()).collect(),
                canary: running.cell.canary().map(|c| CanaryView {
                    version: c.version.version.to_string(),
                    digest: c.version.digest.clone(),
                    percent: c.rollout.canary,
                    counts: c.counts(),
                }),
                mcp: m
                    .capabilities
                    .mcp
                    .iter()
                    .flat_map(|g| g.tools.iter().map(move |t| format!("{}/{t}", g.server)))
                    .collect(),
            }
        })
        .collect();
    let refused = s
        .host
        .registry
        .refusals()
        .into_iter()
        .map(|r| RefusalView {
            source: r.source,
            agent: r.agent,
            error: r.error,
        })
        .collect();
    Json(AgentsResponse {
        agents,
        refused,
        mcp_servers: s.host.mcp.status(),
    })
}

/// `GET /v1/mcp/servers`: each configured MCP server's connection state.
pub async fn mcp_servers(State(s): State<AppState>) -> Json<Vec<crate::mcp::ServerStatus>> {
    Json(s.host.mcp.status())
}

/// The largest deploy request: a component of up to 96 MiB, base64-encoded in JSON (agents
/// built from JavaScript or Python carry their interpreter: 10–20 MB is common).
pub const MAX_DEPLOY_BODY: usize = 128 * 1024 * 1024;

pub async fn deploy(
    State(s): State<AppState>,
    body: Result<Json<DeployUpload>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = json_body(body)?;
    let path = std::path::Path::new(&req.manifest_path);
    let bytes =
        decode_b64("component_base64", &req.component_base64).map_err(ApiError::bad_request)?;
    let manifest = match Manifest::parse(path, &req.manifest) {
        Ok(m) => m,
        Err(e) => {
            let err = DeployError::from(e);
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                err.to_string(),
            ));
        }
    };
    match s
        .host
        .deploy(DeployRequest {
            manifest,
            component: bytes,
            source: req.manifest_path.clone(),
            approval: Approval::given(req.approve),
            origin: crate::deployments::Origin::Api,
        })
        .await
    {
        Ok(report) => Ok((StatusCode::OK, Json(report)).into_response()),
        Err(err @ DeployError::NeedsApproval { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, err.to_string()))
        }
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
        )),
    }
}

/// `GET /v1/agents/{name}/deployments`: the agent's deployment history, newest first (without
/// the manifest texts).
pub async fn deployments(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<crate::deployments::Deployment>>, ApiError> {
    let mut history = s
        .host
        .deployments
        .history(&name)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if history.is_empty() && s.host.registry.get(&name).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no agent named {name:?} was ever deployed here"),
        ));
    }
    for d in &mut history {
        d.manifest.clear();
    }
    Ok(Json(history))
}

/// `POST /v1/agents/{name}/rollback`: deploy an earlier version from the history again.
pub async fn rollback(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = json_body(body)?;
    match s
        .host
        .rollback(&name, req.to.as_deref(), Approval::given(req.approve))
        .await
    {
        Ok(report) => Ok((StatusCode::OK, Json(report)).into_response()),
        Err(err @ DeployError::UnknownAgent(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, err.to_string()))
        }
        Err(err @ (DeployError::Rollback(_) | DeployError::NeedsApproval { .. })) => {
            Err(ApiError::new(StatusCode::CONFLICT, err.to_string()))
        }
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
        )),
    }
}

/// `POST /v1/agents/{name}/promote`: make the agent's canary its live version.
pub async fn promote(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match s.host.promote(&name).await {
        Ok(report) => Ok((StatusCode::OK, Json(report)).into_response()),
        Err(err @ DeployError::UnknownAgent(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, err.to_string()))
        }
        Err(err) => Err(ApiError::new(StatusCode::CONFLICT, err.to_string())),
    }
}

/// `POST /v1/agents/{name}/approve`: deploy, approved, the agent's refused manifest file.
pub async fn approve(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match s.host.approve(&name).await {
        Ok(report) => Ok((StatusCode::OK, Json(report)).into_response()),
        Err(err @ DeployError::Conflict(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, err.to_string()))
        }
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
        )),
    }
}

pub async fn audit(
    State(s): State<AppState>,
    query: Result<Query<crate::audit::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::audit::AuditEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let log = s.host.audit.clone();
    let entries = tokio::task::spawn_blocking(move || log.query(&q))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::bad_request)?;
    Ok(Json(entries))
}

//! The A2A HTTP surface: agent cards, the host's index of exposed agents, and one JSON-RPC
//! endpoint per exposed agent at `/agents/{name}` (SSE for the streaming methods).
//!
//! The dialect follows the method name (`SendMessage` is v1.0, `message/send` is v0.3), which
//! is how both reference SDKs tell them apart. An `A2A-Version` header that names a version
//! this host does not speak is refused with -32009. JSON-RPC errors travel with HTTP 200, as
//! clients expect; only authentication failures are HTTP 401.

use crate::a2a::card::{CardForm, agent_card};
use crate::a2a::model::MAX_BODY;
use crate::a2a::model::{StreamEvent, Task};
use crate::a2a::store::Filter;
use crate::a2a::wire::{self, Dialect, RpcError, View};
use crate::a2a::{A2a, ResolvedScheme};
use crate::agent::AgentVersion;
use crate::host::Host;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Send,
    Stream,
    Get,
    List,
    Cancel,
    Subscribe,
    ExtendedCard,
    PushConfig,
}

impl Method {
    fn parse(name: &str) -> Option<(Method, Dialect)> {
        Some(match name {
            "SendMessage" => (Method::Send, Dialect::V1),
            "SendStreamingMessage" => (Method::Stream, Dialect::V1),
            "GetTask" => (Method::Get, Dialect::V1),
            "ListTasks" => (Method::List, Dialect::V1),
            "CancelTask" => (Method::Cancel, Dialect::V1),
            "SubscribeToTask" => (Method::Subscribe, Dialect::V1),
            "GetExtendedAgentCard" => (Method::ExtendedCard, Dialect::V1),
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig" => (Method::PushConfig, Dialect::V1),
            "message/send" => (Method::Send, Dialect::V03),
            "message/stream" => (Method::Stream, Dialect::V03),
            "tasks/get" => (Method::Get, Dialect::V03),
            // Not in v0.3's JSON-RPC binding; served anyway for clients that send it.
            "tasks/list" => (Method::List, Dialect::V03),
            "tasks/cancel" => (Method::Cancel, Dialect::V03),
            "tasks/resubscribe" => (Method::Subscribe, Dialect::V03),
            "agent/getAuthenticatedExtendedCard" => (Method::ExtendedCard, Dialect::V03),
            m if m.starts_with("tasks/pushNotificationConfig/") => {
                (Method::PushConfig, Dialect::V03)
            }
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Method::Send => "send",
            Method::Stream => "stream",
            Method::Get => "get",
            Method::List => "list",
            Method::Cancel => "cancel",
            Method::Subscribe => "subscribe",
            Method::ExtendedCard => "extended_card",
            Method::PushConfig => "push_config",
        }
    }
}

/// A name that is not an exposed agent: 404, naming it.
struct NotExposed(String);

impl IntoResponse for NotExposed {
    fn into_response(self) -> Response {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no agent named {:?} is exposed over A2A on this host", self.0) })),
        )
            .into_response()
    }
}

fn exposed(host: &Host, name: &str) -> Result<Arc<AgentVersion>, NotExposed> {
    host.registry
        .get(name)
        .map(|cell| cell.current())
        .filter(|v| v.manifest.a2a.expose)
        .ok_or_else(|| NotExposed(name.to_owned()))
}

fn schemes_of<'a>(a2a: &'a A2a, agent: &AgentVersion) -> Vec<&'a ResolvedScheme> {
    agent
        .manifest
        .a2a
        .schemes()
        .iter()
        .filter_map(|name| a2a.schemes.get(name))
        .collect()
}

/// The card form a request asks for: its `A2A-Version` header, else its `A2A-Version` query
/// parameter (which the spec allows clients to send instead).
fn card_form(headers: &HeaderMap, uri: &axum::http::Uri) -> CardForm {
    let header = headers.get("a2a-version").and_then(|v| v.to_str().ok());
    let query = || {
        uri.query()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| key.eq_ignore_ascii_case("a2a-version"))
            .map(|(_, value)| value)
    };
    CardForm::for_version(header.or_else(query))
}

/// A card response: it varies with the version the request names.
fn card_response(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("A2A-Version"),
    );
    response
}

/// `GET /agents/{name}/.well-known/agent-card.json`
pub async fn card(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    match exposed(&host, &name) {
        Ok(agent) => {
            let schemes = schemes_of(&host.a2a, &agent);
            card_response(agent_card(
                &agent,
                &host.a2a.agent_url(&name),
                &schemes,
                card_form(&headers, &uri),
            ))
        }
        Err(not_exposed) => not_exposed.into_response(),
    }
}

/// `GET /agents`: the cards of every exposed agent, in the form the request asks for.
pub async fn index(
    State(host): State<Arc<Host>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let form = card_form(&headers, &uri);
    let agents: Vec<Value> = host
        .registry
        .read()
        .values()
        .map(|r| r.cell.current())
        .filter(|v| v.manifest.a2a.expose)
        .map(|v| {
            let schemes = schemes_of(&host.a2a, &v);
            agent_card(&v, &host.a2a.agent_url(&v.name), &schemes, form)
        })
        .collect();
    card_response(json!({ "agents": agents }))
}

fn rpc_json(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// `POST /agents/{name}`: one JSON-RPC request.
pub async fn rpc(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    // Read only after the agent is known to be exposed and the caller authenticated: an
    // anonymous client must not make the host buffer bodies for agents it may not call.
    body: axum::body::Body,
) -> Response {
    let agent = match exposed(&host, &name) {
        Ok(agent) => agent,
        Err(not_exposed) => return not_exposed.into_response(),
    };
    let schemes = schemes_of(&host.a2a, &agent);
    let accepted = schemes.iter().find(|s| s.accepts(&headers));
    if !agent.manifest.a2a.schemes().is_empty() && accepted.is_none() {
        host.metrics.record_a2a_request("any", "unauthorized");
        host.audit.record(
            crate::audit::AuditEntry::new(
                name.as_str(),
                &*agent.version,
                correlation_id(&headers),
                "a2a.serve",
                name.as_str(),
                crate::audit::Outcome::Denied,
            )
            .detail("missing or wrong credentials"),
        );
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": { "code": -32600, "message": format!(
                    "authentication required: present one of {:?}",
                    agent.manifest.a2a.schemes()
                )},
            })),
        )
            .into_response();
        super::append_challenges(&mut response, schemes.iter().map(|s| s.challenge()));
        return response;
    }

    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            host.metrics.record_a2a_request("invalid", "error");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": -32600, "message": format!(
                        "the request body is larger than {MAX_BODY} bytes, or was cut off"
                    )},
                })),
            )
                .into_response();
        }
    };
    // Parse errors are answered in v1.0 form: the dialect is unknown before the method is.
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            host.metrics.record_a2a_request("invalid", "error");
            return rpc_json(wire::error_response(
                &Value::Null,
                &RpcError::parse_error(format!("request body is not JSON: {e}")),
                Dialect::V1,
            ));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |message: &str| {
        host.metrics.record_a2a_request("invalid", "error");
        rpc_json(wire::error_response(
            &id,
            &RpcError::invalid_request(message),
            Dialect::V1,
        ))
    };
    let Some(obj) = request.as_object() else {
        return invalid(if request.is_array() {
            "batch requests are not supported"
        } else {
            "a JSON-RPC request is an object"
        });
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid("'jsonrpc' must be exactly \"2.0\"");
    }
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return invalid("'id' must be a string, a number or null");
    }
    let Some(method_name) = obj.get("method").and_then(Value::as_str) else {
        return invalid("'method' is required and must be a string");
    };
    let version = headers
        .get("a2a-version")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let Some((method, dialect)) = Method::parse(method_name) else {
        host.metrics.record_a2a_request("unknown", "error");
        let dialect = if version.is_some_and(|v| v.starts_with('1')) {
            Dialect::V1
        } else {
            Dialect::V03
        };
        return rpc_json(wire::error_response(
            &id,
            &RpcError::method_not_found(method_name),
            dialect,
        ));
    };
    if let Some(version) = version {
        let major = version.split('.').next().unwrap_or_default();
        let speaks = match dialect {
            Dialect::V1 => major == "1",
            // v0.3 clients may send 0.3; a 1.x client calling v0.3 names is tolerated.
            Dialect::V03 => major == "0" || major == "1",
        };
        if !speaks {
            host.metrics.record_a2a_request(method.label(), "error");
            return rpc_json(wire::error_response(
                &id,
                &RpcError::version_not_supported(version),
                dialect,
            ));
        }
    }
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    let call = Call {
        host: host.clone(),
        agent: name,
        id,
        dialect,
        correlation_id: correlation_id(&headers),
        // Who is calling, for task ownership: the scheme the client satisfied.
        principal: match accepted {
            Some(scheme) => format!("client:{}", scheme.name),
            None => "client:anonymous".to_owned(),
        },
    };
    let response = call.dispatch(method, params).await;
    host.metrics.record_a2a_request(
        method.label(),
        if response.is_ok() { "ok" } else { "error" },
    );
    match response {
        Ok(response) => response,
        Err(error) => rpc_json(wire::error_response(&call.id, &error, dialect)),
    }
}

/// The request's correlation id, or a new one.
pub(crate) fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(crate::bus::headers::CORRELATION_ID)
        .or_else(|| headers.get("x-correlation-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

struct Call {
    host: Arc<Host>,
    agent: String,
    id: Value,
    dialect: Dialect,
    correlation_id: String,
    /// Who is calling (see `Task::owner`): only their own tasks exist for them.
    principal: String,
}

impl Call {
    /// Starts a task (or continues the caller's own) with `message`.
    fn start(
        &self,
        message: crate::a2a::model::Message,
    ) -> Result<crate::a2a::service::Started, RpcError> {
        self.host.a2a.service.start(
            &self.agent,
            message,
            &self.correlation_id,
            0,
            &self.principal,
        )
    }

    fn result(&self, result: Value) -> Response {
        rpc_json(wire::response(&self.id, result))
    }

    async fn dispatch(&self, method: Method, params: Value) -> Result<Response, RpcError> {
        let service = &self.host.a2a.service;
        let dialect = self.dialect;
        match method {
            Method::Send => {
                let send = wire::parse_send(&params, dialect)?;
                let started = self.start(send.message)?;
                let task = if send.return_immediately {
                    started.task
                } else {
                    let mut done = started.done;
                    let _ = done.wait_for(|d| *d).await;
                    service.get_task(&self.agent, &started.task.id, &self.principal)?
                };
                Ok(self.result(wire::send_result(
                    &task,
                    dialect,
                    View::full(send.history_length),
                )))
            }
            Method::Stream => {
                let send = wire::parse_send(&params, dialect)?;
                let started = self.start(send.message)?;
                Ok(self.stream(started.task, started.events))
            }
            Method::Get => {
                let (id, history) = wire::parse_task_query(&params, dialect)?;
                let task = service.get_task(&self.agent, &id, &self.principal)?;
                Ok(self.result(wire::task_json(&task, dialect, View::full(history))))
            }
            Method::List => {
                let list = wire::parse_list(&params, dialect)?;
                let filter = Filter {
                    context_id: list.context_id,
                    state: list.state,
                    status_after_ms: list.status_after_ms,
                    principal: self.principal.clone(),
                };
                let page =
                    service.list_tasks(&self.agent, &filter, list.page_size, &list.page_token)?;
                let view = View {
                    history_length: list.history_length,
                    artifacts: list.include_artifacts,
                };
                Ok(self.result(json!({
                    "tasks": page.tasks.iter().map(|t| wire::task_json(t, dialect, view)).collect::<Vec<_>>(),
                    "nextPageToken": page.next_page_token,
                    "pageSize": list.page_size,
                    "totalSize": page.total_size,
                })))
            }
            Method::Cancel => {
                let (id, _) = wire::parse_task_query(&params, dialect)?;
                let task = service.cancel(&self.agent, &id, &self.principal).await?;
                Ok(self.result(wire::task_json(&task, dialect, View::full(None))))
            }
            Method::Subscribe => {
                let (id, _) = wire::parse_task_query(&params, dialect)?;
                match service.subscribe(&self.agent, &id, &self.principal)? {
                    Some((task, events)) => Ok(self.stream(task, events)),
                    None => {
                        let task = service.get_task(&self.agent, &id, &self.principal)?;
                        let error = RpcError::unsupported(format!(
                            "Task {id} is in state {}: a finished task cannot be subscribed to",
                            task.status.state.as_str()
                        ));
                        // v0.3 clients expect the error as an event of the stream.
                        if dialect == Dialect::V03 {
                            let event = wire::error_response(&self.id, &error, dialect);
                            let stream = futures::stream::once(async move {
                                Ok::<_, Infallible>(Event::default().data(event.to_string()))
                            });
                            return Ok(Sse::new(stream).into_response());
                        }
                        Err(error)
                    }
                }
            }
            Method::ExtendedCard => Err(RpcError::unsupported(
                "this agent has no authenticated extended card",
            )),
            Method::PushConfig => Err(RpcError::push_not_supported()),
        }
    }

    /// An SSE stream: the task as it is now, then its updates until the last one.
    fn stream(&self, task: Task, events: broadcast::Receiver<StreamEvent>) -> Response {
        let id = self.id.clone();
        let dialect = self.dialect;
        let service = self.host.a2a.service.clone();
        let agent = self.agent.clone();
        let principal = self.principal.clone();
        let task_id = task.id.clone();
        let first = StreamEvent::Task(task);
        let state = (Some(first), events, false);
        let stream = futures::stream::unfold(state, move |(first, mut events, finished)| {
            let id = id.clone();
            let service = service.clone();
            let agent = agent.clone();
            let principal = principal.clone();
            let task_id = task_id.clone();
            async move {
                if finished {
                    return None;
                }
                let (event, finished) = match first {
                    Some(event) => (event, false),
                    None => match events.recv().await {
                        Ok(event) => {
                            let last = matches!(event, StreamEvent::Status { last: true, .. });
                            (event, last)
                        }
                        // A slow reader missed updates: send the task as it is now instead.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let task = service.get_task(&agent, &task_id, &principal).ok()?;
                            (StreamEvent::Task(task), false)
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                };
                let body = wire::response(&id, wire::stream_event_json(&event, dialect));
                Some((
                    Ok::<_, Infallible>(Event::default().data(body.to_string())),
                    (None, events, finished),
                ))
            }
        });
        Sse::new(stream.boxed())
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response()
    }
}

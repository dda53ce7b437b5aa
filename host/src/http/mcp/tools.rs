//! The tools: one per card skill of each exposed agent, named as its manifest says
//! (`agent/tools.rs`), described and typed by the card
//! (`{ "text": string }` for a skill without a schema). A call is an `on-message` invocation of
//! the agent's live version — fresh instance, limits, audit as `mcp.serve` on `tool NAME`,
//! correlation id, trace — after its arguments passed the schema; the reply becomes the result
//! (`reply.rs`), a failure `isError: true` with the agent's reason.
//!
//! A call reports progress every second while the agent runs if the caller asked for it (a
//! progress token), and `notifications/cancelled` stops it: the invocation is dropped with its
//! instance, and audited as failed.

use super::reply::{failure_text, tool_result};
use super::{admits, exposed, scope_of};
use crate::agent::{AgentVersion, SkillInfo};
use crate::audit::Outcome;
use crate::host::Host;
use crate::wit::types;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 100;

/// How often a long call reports that it is still running, to callers that asked.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The MCP server of a host (rmcp makes one per session from a factory; all share the host).
#[derive(Clone)]
pub struct AgentTools {
    host: Arc<Host>,
}

/// One tool: an agent's skill.
struct Offered {
    agent: Arc<AgentVersion>,
    skill: SkillInfo,
    name: String,
}

/// What a skill without a schema of its own takes.
static TEXT_INPUT: LazyLock<crate::agent::SkillInput> = LazyLock::new(|| {
    let schema = json!({
        "type": "object",
        "properties": { "text": { "type": "string", "description": "The message to the agent" } },
        "required": ["text"]
    });
    match crate::agent::SkillInput::parse(&schema.to_string()) {
        Ok(input) => input,
        Err(why) => unreachable!("the built-in text schema is valid: {why}"),
    }
});

impl AgentTools {
    pub fn new(host: Arc<Host>) -> Self {
        Self { host }
    }

    /// The tools at the request's endpoint of the agents the caller may call, by name.
    fn offered(&self, context: &RequestContext<RoleServer>) -> Vec<Offered> {
        let (scope, headers) = endpoint(context);
        let mut offered: Vec<Offered> = exposed(&self.host, scope)
            .into_iter()
            .filter(|agent| admits(&self.host, agent, headers))
            .flat_map(|agent| {
                crate::agent::tools::tools(&agent)
                    .map(|(name, skill)| Offered {
                        name,
                        skill: skill.clone(),
                        agent: agent.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        offered.sort_by(|a, b| a.name.cmp(&b.name));
        offered
    }

    /// The tool `name` at the request's endpoint, and whether the caller may call it: one
    /// lookup per call rather than the whole list (names are unique on an endpoint, which
    /// deploy checks).
    fn find(&self, context: &RequestContext<RoleServer>, name: &str) -> Option<(Offered, bool)> {
        let (scope, headers) = endpoint(context);
        exposed(&self.host, scope).into_iter().find_map(|agent| {
            let (_, skill) = crate::agent::tools::tools(&agent).find(|(n, _)| n == name)?;
            let skill = skill.clone();
            let admitted = admits(&self.host, &agent, headers);
            let tool = Offered {
                name: name.to_owned(),
                skill,
                agent,
            };
            Some((tool, admitted))
        })
    }
}

/// The agent a request's endpoint is scoped to (`/agents/{name}/mcp`), if any, and its headers.
fn endpoint(context: &RequestContext<RoleServer>) -> (Option<&str>, &http::HeaderMap) {
    static NO_HEADERS: LazyLock<http::HeaderMap> = LazyLock::new(http::HeaderMap::new);
    let parts = context.extensions.get::<http::request::Parts>();
    let scope = parts.and_then(|p| scope_of(p.uri.path()));
    (scope, parts.map_or(&*NO_HEADERS, |p| &p.headers))
}

fn describe(tool: &Offered) -> Tool {
    let description = if tool.skill.description.is_empty() {
        format!("{} (agent {})", tool.skill.name, tool.agent.name)
    } else {
        tool.skill.description.clone()
    };
    let input = tool.skill.input.as_ref().unwrap_or(&TEXT_INPUT);
    let mut described = Tool::new(tool.name.clone(), description, input.schema.clone());
    if !tool.skill.name.is_empty() {
        described.title = Some(tool.skill.name.clone());
    }
    described
}

/// Where a `tools/list` page starts in `names` (sorted), and the next page's cursor. A cursor
/// is the name of the last tool sent: stable while agents come and go.
fn page(names: &[&str], cursor: Option<&str>) -> Result<(usize, Option<String>), ErrorData> {
    let start = match cursor {
        None => 0,
        Some("") => return Err(ErrorData::invalid_params("invalid cursor: empty", None)),
        Some(after) => names.partition_point(|name| *name <= after),
    };
    let end = (start + PAGE_SIZE).min(names.len());
    let next = (end < names.len()).then(|| names[end - 1].to_owned());
    Ok((start, next))
}

impl ServerHandler for AgentTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agenthost", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool is a skill of an agent run by this agenthost, named <agent>.<skill>.",
            )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.offered(&context);
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        let (start, next) = page(&names, cursor)?;
        let listed = tools
            .iter()
            .skip(start)
            .take(PAGE_SIZE)
            .map(describe)
            .collect();
        let mut result = ListToolsResult::with_all_items(listed);
        result.next_cursor = next;
        // What a caller sees depends on its credentials: no shared caches.
        result.cache_scope = Some(CacheScope::Private);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let correlation_id = super::super::a2a::correlation_id(endpoint(&context).1);
        let tool = match self.find(&context, &name) {
            Some((tool, true)) => tool,
            found => {
                // A tool the caller may not call is, to it, a tool that does not exist; its
                // agent's audit trail says who tried.
                if let Some((t, false)) = found {
                    t.agent.audit(
                        &correlation_id,
                        "mcp.serve",
                        &format!("tool {name}"),
                        Outcome::Denied,
                        "the caller satisfies none of `mcp.security`",
                    );
                }
                return Err(ErrorData::invalid_params(
                    format!(
                        "unknown tool {name:?}: tools/list names the tools this caller may call"
                    ),
                    None,
                ));
            }
        };
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        let input = tool.skill.input.as_ref().unwrap_or(&TEXT_INPUT);
        if let Some(why) = input.check(&arguments) {
            // An input error is a tool error (MCP 2025-11-25), so a model can correct itself;
            // the agent never sees the call.
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "the arguments do not match the input schema of {name}: {why}"
            ))])
            .into());
        }
        let message = to_message(&tool.skill, arguments);
        let started = Instant::now();
        // Dropped unfinished — cancelled, or the caller's session or connection gone — the
        // invocation is dropped with its instance, and the audit log says so.
        let mut unfinished = Unfinished {
            agent: Some(tool.agent.clone()),
            correlation_id: &correlation_id,
            tool: &name,
        };
        let invocation = tool
            .agent
            .on_tool_call(message, &correlation_id, &name, &tool.skill.id);
        tokio::pin!(invocation);
        let progress_token = context.meta.get_progress_token();
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let outcome = loop {
            tokio::select! {
                result = &mut invocation => break Some(result),
                () = context.ct.cancelled() => break None,
                _ = ticks.tick(), if progress_token.is_some() => {
                    if let Some(token) = &progress_token {
                        let secs = started.elapsed().as_secs();
                        let update = ProgressNotificationParam::new(token.clone(), secs as f64)
                            .with_message(format!("{} is working ({secs} s)", tool.agent.name));
                        // A caller gone away is noticed through cancellation or the result.
                        let _ = context.peer.notify_progress(update).await;
                    }
                }
            }
        };
        let Some(result) = outcome else {
            return Err(ErrorData::internal_error("canceled by the caller", None));
        };
        unfinished.agent = None;
        let mut result = match result {
            Ok(reply) => tool_result(&tool.agent.name, &correlation_id, &reply),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(failure_text(&e))]),
        };
        let mut meta = rmcp::model::MetaObject::new();
        meta.insert("agenthost/correlation-id".into(), json!(correlation_id));
        result.meta = Some(meta);
        Ok(result.into())
    }
}

/// A tool call in progress: audited as canceled if dropped before its agent answered.
struct Unfinished<'a> {
    agent: Option<Arc<AgentVersion>>,
    correlation_id: &'a str,
    tool: &'a str,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.audit(
                self.correlation_id,
                "mcp.serve",
                &format!("tool {}", self.tool),
                Outcome::Failed,
                "canceled by the caller (notifications/cancelled, or its session or connection ended)",
            );
        }
    }
}

/// The message a tool call becomes: the text, for a skill taking `{ "text" }`; the arguments
/// as a data part, for a skill with its own schema.
fn to_message(skill: &SkillInfo, arguments: Value) -> types::Message {
    let part = match (&skill.input, arguments) {
        (None, Value::Object(mut args)) => match args.remove("text") {
            Some(Value::String(text)) => types::Part::Text(text),
            _ => types::Part::Data("{}".into()),
        },
        (_, arguments) => types::Part::Data(arguments.to_string()),
    };
    types::Message {
        message_id: uuid::Uuid::new_v4().to_string(),
        role: types::Role::User,
        parts: vec![part],
        task_id: None,
        context_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_paged_by_the_last_name_sent() {
        let names: Vec<String> = (0..250).map(|i| format!("a{i:03}.s")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (start, next) = page(&names, None).unwrap();
        assert_eq!((start, next.as_deref()), (0, Some("a099.s")));
        let (start, next) = page(&names, Some("a099.s")).unwrap();
        assert_eq!((start, next.as_deref()), (100, Some("a199.s")));
        let (start, next) = page(&names, Some("a199.s")).unwrap();
        assert_eq!((start, next), (200, None));
        // A tool gone since: the page starts after where it was.
        assert_eq!(page(&names, Some("a0995")).unwrap().0, 100);
        assert!(page(&names, Some("")).is_err());
    }

    #[test]
    fn a_skill_without_a_schema_takes_text() {
        assert_eq!(TEXT_INPUT.check(&json!({ "text": "hi" })), None);
        let why = TEXT_INPUT.check(&json!({ "text": 3 })).unwrap();
        assert!(why.contains("/text"), "{why}");
        assert!(TEXT_INPUT.check(&json!({})).is_some());
    }

    #[test]
    fn arguments_become_text_or_data() {
        let skill = |input| SkillInfo {
            id: "s".into(),
            name: "S".into(),
            description: String::new(),
            tags: vec![],
            examples: vec![],
            input,
        };
        let text = to_message(&skill(None), json!({ "text": "hi" }));
        assert!(matches!(&text.parts[..], [types::Part::Text(t)] if t == "hi"));
        let typed = crate::agent::SkillInput::parse(r#"{"type":"object"}"#).ok();
        let data = to_message(&skill(typed), json!({ "sku": "A1" }));
        assert!(matches!(&data.parts[..], [types::Part::Data(d)] if d == r#"{"sku":"A1"}"#));
    }
}

//! `mcp`: an agent lists and calls tools of the MCP servers its `capabilities.mcp` grants, and
//! only the tools listed there. The connections belong to the host (`crate::mcp`); this module
//! decides what one agent may do with them, audits every call, and translates results.

use super::caller::Caller;
use crate::audit::AuditLog;
use crate::mcp::McpServers;
use crate::metrics::Metrics;
use crate::wit::{mcp as wit, types};
use base64::Engine;
use rmcp::model::{CallToolRequestParams, ContentBlock, ResourceContents};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasData, Linker};

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.mcp"),
    interfaces: &["agenthost:agent/mcp"],
    required: Some(super::capability::Requirement {
        granted: |c| !c.mcp.is_empty(),
        missing: "MCP servers: list them in `capabilities.mcp`",
    }),
    validate: |c| {
        for (i, grant) in c.mcp.iter().enumerate() {
            if grant.server.is_empty() {
                return Err(format!("`capabilities.mcp[{i}].server` must not be empty"));
            }
            if grant.tools.is_empty() || grant.tools.iter().any(String::is_empty) {
                return Err(format!(
                    "`capabilities.mcp[{i}].tools` must list tool names, or [\"*\"] for every tool"
                ));
            }
        }
        Ok(())
    },
    grants: |c| {
        c.mcp
            .iter()
            .flat_map(|g| g.tools.iter().map(|t| format!("mcp {}/{t}", g.server)))
            .collect()
    },
};

/// `capabilities.mcp`: the tools the agent may call, by server.
pub type Section = Vec<McpTools>;

/// One `capabilities.mcp` entry.
#[derive(Clone, Debug, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct McpTools {
    /// A server of the host's `[mcp.servers]`.
    pub server: String,
    /// Tool names; `["*"]` grants every tool of the server.
    pub tools: Vec<String>,
}

/// The `_meta` key carrying the correlation id on every request the host sends for an agent.
pub const CORRELATION_META_KEY: &str = "agenthost/correlation-id";
/// MCP tool names are 1-128 characters (2025-11-25 revision).
const MAX_TOOL_NAME: usize = 128;
/// The largest `arguments` text a tool call may pass. Parsed into JSON values on the host, text
/// takes several times its size (a 64 MiB array of small numbers is about 1 GB of values), so
/// it is bounded before it is parsed.
pub const MAX_ARGUMENTS: usize = 1 << 20;

/// Which tools of one server a grant allows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tools {
    All,
    Named(BTreeSet<String>),
}

impl Tools {
    fn allows(&self, tool: &str) -> bool {
        match self {
            Tools::All => true,
            Tools::Named(names) => names.contains(tool),
        }
    }
}

pub struct McpGrant {
    servers: BTreeMap<String, Tools>,
    connections: Arc<McpServers>,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
}

impl McpGrant {
    /// The grant of `section`; an error names a granted server the host does not configure,
    /// so a typo is caught at deploy instead of denying every call later.
    pub fn new(
        section: &Section,
        connections: Arc<McpServers>,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut servers: BTreeMap<String, Tools> = BTreeMap::new();
        for (i, grant) in section.iter().enumerate() {
            if connections.get(&grant.server).is_none() {
                let configured: Vec<&str> = connections.names().collect();
                anyhow::bail!(
                    "capabilities.mcp[{i}] grants server {:?}, which this host does not configure (its [mcp.servers] are {configured:?})",
                    grant.server
                );
            }
            let tools = if grant.tools.iter().any(|t| t == "*") {
                Tools::All
            } else {
                Tools::Named(grant.tools.iter().cloned().collect())
            };
            // Two entries for one server add up.
            let merged = match (servers.remove(&grant.server), tools) {
                (None, t) => t,
                (Some(Tools::All), _) | (_, Tools::All) => Tools::All,
                (Some(Tools::Named(mut a)), Tools::Named(b)) => {
                    a.extend(b);
                    Tools::Named(a)
                }
            };
            servers.insert(grant.server.clone(), merged);
        }
        Ok(Self {
            servers,
            connections,
            audit,
            metrics,
        })
    }

    fn tools_of(&self, caller: &Caller, server: &str) -> Result<&Tools, types::Error> {
        self.servers.get(server).ok_or_else(|| {
            let granted: Vec<&str> = self.servers.keys().map(String::as_str).collect();
            types::Error::Denied(format!(
                "agent {:?} may not use MCP server {:?}: capabilities.mcp grants {granted:?}",
                &*caller.agent,
                clip(server)
            ))
        })
    }

    /// A metric label that an agent cannot inflate: configured servers only.
    fn server_label<'a>(&self, server: &'a str) -> &'a str {
        if self.connections.get(server).is_some() {
            server
        } else {
            "(unconfigured)"
        }
    }
}

pub struct McpInstance {
    grant: Arc<McpGrant>,
    caller: Caller,
}

impl McpInstance {
    pub fn new(grant: Arc<McpGrant>, caller: Caller) -> Self {
        Self { grant, caller }
    }

    async fn list_tools(&self, server: &str) -> Result<Vec<wit::Tool>, types::Error> {
        let result = self.checked_list_tools(server).await;
        self.caller
            .audit_result(&self.grant.audit, "mcp.list-tools", &clip(server), &result);
        result
    }

    async fn checked_list_tools(&self, server: &str) -> Result<Vec<wit::Tool>, types::Error> {
        let tools = self.grant.tools_of(&self.caller, server)?;
        let connection = self.connection(server).await?;
        let listed = connection.peer.list_all_tools().await.map_err(|e| {
            types::Error::Failed(format!("MCP server {server:?}: tools/list failed: {e}"))
        })?;
        Ok(listed
            .into_iter()
            .filter(|t| tools.allows(&t.name))
            .map(|t| wit::Tool {
                name: t.name.into_owned(),
                title: t.title,
                description: t.description.map(|d| d.into_owned()),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()).to_string(),
                output_schema: t
                    .output_schema
                    .map(|s| serde_json::Value::Object((*s).clone()).to_string()),
            })
            .collect())
    }

    async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<wit::ToolResult, types::Error> {
        let started = Instant::now();
        let result = self.checked_call_tool(server, tool, arguments).await;
        let target = format!("{}/{}", clip(server), clip(tool));
        let outcome =
            self.caller
                .audit_result(&self.grant.audit, "mcp.call-tool", &target, &result);
        let label = match (&result, outcome) {
            (Ok(r), _) if r.is_error => "tool_error",
            (_, outcome) => outcome.as_str(),
        };
        self.grant.metrics.record_mcp_call(
            self.grant.server_label(server),
            label,
            started.elapsed(),
        );
        result
    }

    async fn checked_call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<wit::ToolResult, types::Error> {
        let tools = self.grant.tools_of(&self.caller, server)?;
        if !tools.allows(tool) {
            let Tools::Named(names) = tools else {
                unreachable!("Tools::All allows every tool")
            };
            return Err(types::Error::Denied(format!(
                "agent {:?} may not call tool {:?} of MCP server {server:?}: capabilities.mcp grants {names:?}",
                &*self.caller.agent,
                clip(tool)
            )));
        }
        if tool.is_empty() || tool.len() > MAX_TOOL_NAME {
            return Err(types::Error::Failed(format!(
                "tool names are 1-{MAX_TOOL_NAME} characters, got {}",
                tool.len()
            )));
        }
        let arguments = parse_arguments(arguments)?;
        let connection = self.connection(server).await?;
        let mut meta = serde_json::Map::new();
        meta.insert(
            CORRELATION_META_KEY.into(),
            serde_json::Value::String(self.caller.correlation_id().to_string()),
        );
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        params.meta = Some(rmcp::model::RequestMetaObject(rmcp::model::MetaObject(
            meta,
        )));
        // Dropped with the invocation when it times out: rmcp then sends
        // `notifications/cancelled` so the server can stop working on it.
        let response = connection.peer.call_tool_once(params).await.map_err(|e| {
            types::Error::Failed(format!(
                "MCP server {server:?}: calling {tool:?} failed: {e}"
            ))
        })?;
        match response {
            rmcp::model::CallToolResponse::Complete(result) => convert_result(result),
            rmcp::model::CallToolResponse::InputRequired(_) => Err(types::Error::Failed(format!(
                "MCP server {server:?}: tool {tool:?} asked the client for input, which agenthost does not provide to servers"
            ))),
            _ => Err(types::Error::Failed(format!(
                "MCP server {server:?}: tool {tool:?} answered with a task, which agenthost does not support"
            ))),
        }
    }

    async fn connection(&self, server: &str) -> Result<Arc<crate::mcp::Connection>, types::Error> {
        let Some(handle) = self.grant.connections.get(server) else {
            // Grants are checked against the configured servers at deploy.
            return Err(types::Error::Failed(format!(
                "MCP server {server:?} is not configured on this host"
            )));
        };
        handle
            .connection()
            .await
            .map_err(|e| types::Error::Failed(e.to_string()))
    }
}

/// Long agent-supplied names are cut in messages and audit records.
fn clip(s: &str) -> String {
    const MAX: usize = 160;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn parse_arguments(arguments: &str) -> Result<rmcp::model::JsonObject, types::Error> {
    if arguments.len() > MAX_ARGUMENTS {
        return Err(types::Error::Failed(format!(
            "tool arguments of {} bytes exceed the {MAX_ARGUMENTS} bytes a call may pass",
            arguments.len()
        )));
    }
    if arguments.trim().is_empty() {
        return Ok(rmcp::model::JsonObject::new());
    }
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(types::Error::Failed(format!(
            "tool arguments must be a JSON object, got {}",
            json_kind(&other)
        ))),
        Err(e) => Err(types::Error::Failed(format!(
            "tool arguments are not valid JSON: {e}"
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn convert_result(result: rmcp::model::CallToolResult) -> Result<wit::ToolResult, types::Error> {
    let content = result
        .content
        .into_iter()
        .map(convert_content)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(wit::ToolResult {
        content,
        structured_content: result.structured_content.map(|v| v.to_string()),
        is_error: result.is_error.unwrap_or(false),
    })
}

fn decode(what: &str, data: &str) -> Result<Vec<u8>, types::Error> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| {
            types::Error::Failed(format!(
                "the server sent {what} that is not valid base64: {e}"
            ))
        })
}

fn convert_content(block: ContentBlock) -> Result<wit::Content, types::Error> {
    Ok(match block {
        ContentBlock::Text(t) => wit::Content::Text(t.text),
        ContentBlock::Image(i) => wit::Content::Image(wit::Blob {
            data: decode("image content", &i.data)?,
            mime_type: i.mime_type,
        }),
        ContentBlock::Audio(a) => wit::Content::Audio(wit::Blob {
            data: decode("audio content", &a.data)?,
            mime_type: a.mime_type,
        }),
        ContentBlock::ResourceLink(r) => wit::Content::Link(wit::ResourceLink {
            uri: r.uri,
            name: r.name,
            mime_type: r.mime_type,
        }),
        ContentBlock::Resource(r) => match r.resource {
            ResourceContents::TextResourceContents {
                uri,
                mime_type,
                text,
                ..
            } => wit::Content::Resource(wit::EmbeddedResource {
                uri,
                mime_type,
                text: Some(text),
                blob: None,
            }),
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => wit::Content::Resource(wit::EmbeddedResource {
                uri,
                mime_type,
                text: None,
                blob: Some(decode("a resource blob", &blob)?),
            }),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(types::Error::Failed(
                    "the server sent an embedded resource of a kind agenthost does not know".into(),
                ));
            }
        },
        #[allow(unreachable_patterns)]
        _ => {
            return Err(types::Error::Failed(
                "the server sent content of a kind agenthost does not know".into(),
            ));
        }
    })
}

impl wit::Host for McpInstance {
    async fn list_tools(&mut self, server: String) -> Result<Vec<wit::Tool>, types::Error> {
        McpInstance::list_tools(self, &server).await
    }

    async fn call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> Result<wit::ToolResult, types::Error> {
        McpInstance::call_tool(self, &server, &tool, &arguments).await
    }
}

struct HasMcp;
impl HasData for HasMcp {
    type Data<'a> = &'a mut McpInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut McpInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasMcp>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn arguments_are_bounded_before_they_are_parsed() {
        let huge = format!("{{\"xs\": [{}0]}}", "0,".repeat(MAX_ARGUMENTS / 2));
        match parse_arguments(&huge) {
            Err(types::Error::Failed(m)) => assert!(m.contains("exceed"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(parse_arguments("{\"a\": 1}").is_ok());
    }

    use super::*;

    #[test]
    fn arguments_must_be_a_json_object() {
        assert!(parse_arguments("").unwrap().is_empty());
        assert_eq!(parse_arguments(r#"{"a":1}"#).unwrap()["a"], 1);
        let err = format!("{:?}", parse_arguments("[1]").unwrap_err());
        assert!(err.contains("must be a JSON object, got an array"), "{err}");
        let err = format!("{:?}", parse_arguments("{nope").unwrap_err());
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn content_is_translated_and_base64_decoded() {
        let result: rmcp::model::CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "AAEC", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "file:///a", "name": "a"},
                {"type": "resource", "resource": {"uri": "mem://x", "text": "body", "mimeType": "text/plain"}},
                {"type": "resource", "resource": {"uri": "mem://y", "blob": "AAEC"}}
            ],
            "structuredContent": {"n": 1},
            "isError": true
        }))
        .unwrap();
        let out = convert_result(result).unwrap();
        assert!(out.is_error);
        assert_eq!(out.structured_content.as_deref(), Some(r#"{"n":1}"#));
        assert!(matches!(&out.content[0], wit::Content::Text(t) if t == "hi"));
        assert!(
            matches!(&out.content[1], wit::Content::Image(b) if b.data == [0, 1, 2] && b.mime_type == "image/png")
        );
        assert!(matches!(&out.content[2], wit::Content::Link(l) if l.uri == "file:///a"));
        assert!(
            matches!(&out.content[3], wit::Content::Resource(r) if r.text.as_deref() == Some("body"))
        );
        assert!(
            matches!(&out.content[4], wit::Content::Resource(r) if r.blob.as_deref() == Some(&[0u8, 1, 2][..]))
        );
    }

    #[test]
    fn bad_base64_is_a_failure_naming_it() {
        let result: rmcp::model::CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [{"type": "image", "data": "!!!", "mimeType": "image/png"}]
        }))
        .unwrap();
        let err = format!("{:?}", convert_result(result).unwrap_err());
        assert!(
            err.contains("image content that is not valid base64"),
            "{err}"
        );
    }

    #[test]
    fn clipping_keeps_char_boundaries() {
        let long = "é".repeat(200);
        let clipped = clip(&long);
        assert!(clipped.ends_with('…'));
        assert!(clipped.len() < long.len());
        assert_eq!(clip("short"), "short");
    }
}

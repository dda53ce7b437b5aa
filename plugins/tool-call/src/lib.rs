//! `tool-call`: calls one MCP tool per event through the host and publishes what it returned.
//! Operators use it to try a server and a grant end to end.
//!
//! # Input
//!
//! ```json
//! {"server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}}
//! ```
//!
//! `arguments` is optional (an empty object). Without `tool`, the event lists the server's
//! tools instead: `{"server": "time"}` publishes `{"server": "time", "tools": [{"name",
//! "title", "description", "input_schema", "output_schema"}]}` — only the granted ones, as the
//! host filters them. Anything else — malformed JSON, a missing field,
//! arguments that are not an object — rejects the event with a reason naming what was wrong.
//!
//! # Output
//!
//! Published to the topic in config `out`, keyed like the input:
//!
//! ```json
//! {"server": "time", "tool": "get_current_time", "is_error": false,
//!  "content": [{"type": "text", "text": "…"}], "structured_content": {…}}
//! ```
//!
//! Content items are `text` (`text`), `image` / `audio` (`mime_type`, base64 `data`), `link`
//! (`uri`, `name`, `mime_type`) and `resource` (`uri`, `mime_type`, `text` or base64 `blob`).
//! `structured_content` is present when the tool returned it. A tool that ran and reported an
//! error is published with `is_error: true`: that is the tool's answer, not a failure here.
//!
//! # Failures
//!
//! A call the manifest does not grant is rejected (dead-lettered at once with the host's
//! reason); a server that is down or a call that failed is retried, then dead-lettered.
//!
//! Config: `out` (required). Imports: `mcp`, `bus`, `config`.

use agenthost_sdk::mcp::{self, Content};
use agenthost_sdk::{Agent, Card, Event, Failure, Skill, bus, config};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct ToolCall;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    server: String,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
}

impl Agent for ToolCall {
    fn card() -> Card {
        Card::new("tool-call", env!("CARGO_PKG_VERSION"))
            .description("Calls an MCP tool per event and publishes its result")
            .skill(
                Skill::new("tool-call", "MCP tool call")
                    .description("Calls {server, tool, arguments} through the host's MCP client")
                    .tag("mcp")
                    .tag("operations"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let out = config::require("out")?;
        let request: Request = serde_json::from_slice(&event.payload).map_err(|error| {
            Failure::reject(format!(
                "expected {{\"server\", \"tool\", \"arguments\"}} at {}: {error}",
                event.position()
            ))
        })?;
        let Some(tool) = request.tool else {
            let tools = mcp::list_tools(&request.server)?;
            let output = json!({
                "server": request.server,
                "tools": tools.iter().map(tool_json).collect::<Vec<_>>(),
            });
            bus::Record::json(&out, &output)?
                .key_opt(event.key)
                .publish()?;
            return Ok(());
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = mcp::call_json(&request.server, &tool, &arguments)?;
        let structured = match &result.structured_content {
            Some(text) => Some(serde_json::from_str::<Value>(text).map_err(|error| {
                Failure::reject(format!(
                    "the host passed structured content that is not JSON: {error}"
                ))
            })?),
            None => None,
        };
        let mut output = json!({
            "server": request.server,
            "tool": tool,
            "is_error": result.is_error,
            "content": result.content.iter().map(content_json).collect::<Vec<_>>(),
        });
        if let Some(structured) = structured {
            output["structured_content"] = structured;
        }
        bus::Record::json(&out, &output)?
            .key_opt(event.key)
            .publish()?;
        Ok(())
    }
}

fn tool_json(tool: &mcp::Tool) -> Value {
    let schema = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "input_schema": schema(&tool.input_schema),
        "output_schema": tool.output_schema.as_deref().map(schema),
    })
}

fn content_json(content: &Content) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match content {
        Content::Text(text) => json!({"type": "text", "text": text}),
        Content::Image(blob) => {
            json!({"type": "image", "mime_type": blob.mime_type, "data": b64(&blob.data)})
        }
        Content::Audio(blob) => {
            json!({"type": "audio", "mime_type": blob.mime_type, "data": b64(&blob.data)})
        }
        Content::Link(link) => {
            json!({"type": "link", "uri": link.uri, "name": link.name, "mime_type": link.mime_type})
        }
        Content::Resource(resource) => {
            let mut item =
                json!({"type": "resource", "uri": resource.uri, "mime_type": resource.mime_type});
            if let Some(text) = &resource.text {
                item["text"] = json!(text);
            }
            if let Some(blob) = &resource.blob {
                item["blob"] = json!(b64(blob));
            }
            item
        }
    }
}

agenthost_sdk::export_agent!(ToolCall);

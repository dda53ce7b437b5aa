//! MCP tools through the host (the `mcp` import).
//!
//! The host owns the connections to MCP servers; an agent names a server from the host's
//! `[mcp.servers]` and a tool, and gets only what its manifest's `capabilities.mcp` grants. A
//! call outside the grant is [`HostError::Denied`]; a server that is down or a tool call that
//! failed on the wire is [`HostError::Failed`] (retrying may help). A tool that ran and
//! reported a problem is *not* an error here: it is a [`ToolResult`] with `is_error` set, as in
//! MCP itself.
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::mcp;
//!
//! let result = mcp::call_json("inventory", "get_inventory", &serde_json::json!({"product": "sku-1"}))?;
//! if result.is_error {
//!     return Err(agenthost_sdk::Failure::reject(result.text()));
//! }
//! let stock: serde_json::Value = result.structured()?.unwrap_or_default();
//! # Ok(())
//! # }
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::mcp as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::mcp as raw;
use crate::{Failure, HostError};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use raw::{Blob, Content, EmbeddedResource, ResourceLink, Tool, ToolResult};

/// The granted tools of `server`, with their JSON schemas.
pub fn list_tools(server: &str) -> Result<Vec<Tool>, HostError> {
    raw::list_tools(server)
}

/// Call `tool` on `server`; `arguments` is a serialized JSON object (`""` for none).
pub fn call(server: &str, tool: &str, arguments: &str) -> Result<ToolResult, HostError> {
    raw::call_tool(server, tool, arguments)
}

/// [`call`] with arguments serialized from any serde value (which must serialize to an
/// object). Host errors become failures the usual way: denied → reject, failed → retry.
pub fn call_json<A: Serialize + ?Sized>(
    server: &str,
    tool: &str,
    arguments: &A,
) -> Result<ToolResult, Failure> {
    let arguments = serde_json::to_string(arguments).map_err(|error| {
        Failure::Reject(format!(
            "cannot serialize the arguments of {server}/{tool} as JSON: {error}"
        ))
    })?;
    Ok(raw::call_tool(server, tool, &arguments)?)
}

impl ToolResult {
    /// The text items of the result, joined by newlines.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The structured content parsed as `T`, when the tool returned any. Content that does not
    /// parse as `T` is a [`Failure::Reject`] saying so.
    pub fn structured<T: DeserializeOwned>(&self) -> Result<Option<T>, Failure> {
        match &self.structured_content {
            None => Ok(None),
            Some(json) => serde_json::from_str(json).map(Some).map_err(|error| {
                Failure::Reject(format!(
                    "the tool's structured content is not what this agent expects: {error}"
                ))
            }),
        }
    }
}

//! {{name}}: for each event of `{{name}}.in.v1`, a JSON object, calls the MCP tool named in
//! config (`server`, `tool`) with that object as its arguments, and publishes the tool's text
//! to the topic in config `out`, keyed like the event. The host owns the connection to the
//! server; the manifest grants this agent that one tool and nothing else.

use agenthost_sdk::{Agent, Card, Event, Failure, bus, config, mcp};
use serde_json::{Map, Value};

struct {{type}};

impl Agent for {{type}} {
    fn card() -> Card {
        Card::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Calls an MCP tool for each event")
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let out = config::require("out")?;
        let server = config::require("server")?;
        let tool = config::require("tool")?;
        let arguments = arguments(&event)?;
        // Not granted: rejected (dead-lettered); the server down or failing: retried.
        let result = mcp::call_json(&server, &tool, &arguments)?;
        if result.is_error {
            // The tool ran and said no: that is its answer, not a reason to retry.
            return Err(Failure::reject(format!("{server}/{tool} failed: {}", result.text())));
        }
        bus::Record::new(&out, result.text())
            .key_opt(event.key)
            .publish()?;
        Ok(())
    }
}

/// The tool's arguments: the event's payload, which must be a JSON object.
fn arguments(event: &Event) -> Result<Map<String, Value>, Failure> {
    event.json()
}

agenthost_sdk::export_agent!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use agenthost_sdk::testing::{TestEvent as _, TestHost, event, tool_text};

    /// The handler runs natively against a fake host granted what agent.toml grants, with a
    /// fake of the tool.
    #[test]
    fn the_tools_text_is_published_for_each_event() {
        let host = TestHost::from_manifest(include_str!("../agent.toml"))
            .unwrap()
            .tool("{{server}}", "{{tool}}", |arguments| {
                Ok(tool_text(&format!("Echo: {arguments}")))
            });
        host.on_event::<{{type}}>(event("{{name}}.in.v1", r#"{"message": "hi"}"#).key("k"))
            .unwrap();
        assert_eq!(host.tool_calls()[0].2, r#"{"message":"hi"}"#);
        assert_eq!(
            host.published_to("{{name}}.out.v1"),
            [r#"Echo: {"message":"hi"}"#]
        );
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_rejected_naming_the_record() {
        let host = TestHost::from_manifest(include_str!("../agent.toml")).unwrap();
        let Err(Failure::Reject(reason)) =
            host.on_event::<{{type}}>(event("{{name}}.in.v1", "[1, 2]").offset(3))
        else {
            panic!("an array is not the tool's arguments");
        };
        assert!(reason.contains("offset 3"), "{reason}");
        assert!(host.tool_calls().is_empty());
    }
}

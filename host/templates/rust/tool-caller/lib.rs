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

    fn event(payload: &str) -> Event {
        Event {
            topic: "{{name}}.in.v1".into(),
            partition: 0,
            offset: 3,
            key: None,
            payload: payload.as_bytes().to_vec(),
            headers: Vec::new(),
            timestamp_ms: 0,
            correlation_id: "c".into(),
            attempt: 1,
        }
    }

    #[test]
    fn the_arguments_are_the_payloads_object_and_anything_else_is_rejected() {
        let args = arguments(&event(r#"{"message": "hi"}"#)).unwrap();
        assert_eq!(args["message"], "hi");
        let Err(Failure::Reject(reason)) = arguments(&event("[1, 2]")) else {
            panic!("an array is not the tool's arguments");
        };
        assert!(reason.contains("offset 3"), "{reason}");
    }
}

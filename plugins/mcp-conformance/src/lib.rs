//! `mcp-conformance`: the tools the official MCP conformance suite's `tools-call-*` and
//! `json-schema-2020-12` server scenarios call, as card skills, so the suite can run against
//! the host serving an agent (deployed with `[mcp] tool_names = "skill-id"`, which keeps the
//! names the suite expects). One agent serves every tool: `invocation::skill()` says which one
//! a call is for, as the tools take no arguments to tell them apart.
//!
//! | skill | answers |
//! |---|---|
//! | `test_simple_text` | one text part |
//! | `test_image_content` | a 1×1 PNG (`image/png`) |
//! | `test_audio_content` | a short silent WAV (`audio/wav`) |
//! | `test_embedded_resource` | a text file with a URI (`text/plain`), an embedded resource |
//! | `test_multiple_content_types` | text, the PNG and a JSON file, in one message |
//! | `test_error_handling` | a failure (the tool result is an error naming it) |
//! | `test_tool_with_progress` | text, after 3.2 s: callers that asked get the host's progress every second |
//! | `json_schema_2020_12_tool` | the arguments, as text; its input schema uses `$schema`, `$defs`, `$ref` |
//!
//! Imports: `invocation`.

use agenthost_sdk::{
    Agent, Card, Failure, FilePart, Message, Part, Reply, Role, Skill, invocation,
};
use serde_json::json;

/// A 1×1 red PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Eight silent 16-bit samples at 8 kHz.
const WAV: &[u8] = &[
    0x52, 0x49, 0x46, 0x46, 0x34, 0x00, 0x00, 0x00, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20,
    0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x40, 0x1f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00,
    0x02, 0x00, 0x10, 0x00, 0x64, 0x61, 0x74, 0x61, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The tools that take no arguments.
const NO_ARGUMENTS: [(&str, &str); 7] = [
    ("test_simple_text", "Answers with one text part"),
    ("test_image_content", "Answers with a PNG image"),
    ("test_audio_content", "Answers with a WAV sound"),
    (
        "test_embedded_resource",
        "Answers with an embedded text resource",
    ),
    (
        "test_multiple_content_types",
        "Answers with text, an image and a resource",
    ),
    ("test_error_handling", "Always fails"),
    (
        "test_tool_with_progress",
        "Takes 3.2 s, reporting progress meanwhile",
    ),
];

struct Conformance;

impl Agent for Conformance {
    fn card() -> Card {
        let card = Card::new("mcp-conformance", env!("CARGO_PKG_VERSION"))
            .description("The tools of the MCP conformance suite's server scenarios");
        let card = NO_ARGUMENTS.iter().fold(card, |card, (id, description)| {
            card.skill(
                Skill::new(*id, *id)
                    .description(*description)
                    .input_schema(json!({ "type": "object" })),
            )
        });
        card.skill(
            Skill::new("json_schema_2020_12_tool", "json_schema_2020_12_tool")
                .description("Tool with JSON Schema 2020-12 features")
                .input_schema(json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
                            "type": "object",
                            "properties": {
                                "street": { "type": "string" },
                                "city": { "type": "string" }
                            }
                        }
                    },
                    "properties": {
                        "name": { "type": "string" },
                        "address": { "$ref": "#/$defs/address" }
                    },
                    "additionalProperties": false
                })),
        )
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let parts = match invocation::skill().as_deref() {
            Some("test_simple_text") => {
                vec![Part::Text(
                    "This is a simple text response for testing.".into(),
                )]
            }
            Some("test_image_content") => vec![file(None, "image/png", PNG)],
            Some("test_audio_content") => vec![file(None, "audio/wav", WAV)],
            Some("test_embedded_resource") => vec![file(
                Some("test://embedded-resource"),
                "text/plain",
                b"This is an embedded resource content.",
            )],
            Some("test_multiple_content_types") => vec![
                Part::Text("Multiple content types test:".into()),
                file(None, "image/png", PNG),
                file(
                    Some("test://mixed-content-resource"),
                    "application/json",
                    br#"{"test":"data","value":123}"#,
                ),
            ],
            Some("test_error_handling") => {
                return Err(Failure::Reject(
                    "This tool intentionally returns an error for testing".into(),
                ));
            }
            Some("test_tool_with_progress") => {
                // A host clock wait, no CPU: long enough for three of the host's progress
                // notifications (one a second) to reach a caller that asked for them.
                std::thread::sleep(std::time::Duration::from_millis(3200));
                vec![Part::Text("Tool with progress completed".into())]
            }
            Some("json_schema_2020_12_tool") => vec![Part::Text(message.data().collect())],
            other => {
                return Err(Failure::Reject(format!(
                    "mcp-conformance serves MCP tool calls only; called for skill {other:?}"
                )));
            }
        };
        let mut reply = Message::from_text(Role::Agent, "");
        reply.parts = parts;
        Ok(Reply {
            message: Some(reply),
            ..Reply::text("")
        })
    }
}

/// A file part of `bytes`, at `uri` when given.
fn file(uri: Option<&str>, media_type: &str, bytes: &[u8]) -> Part {
    Part::File(FilePart {
        name: None,
        media_type: Some(media_type.into()),
        bytes: Some(bytes.to_vec()),
        uri: uri.map(str::to_owned),
    })
}

agenthost_sdk::export_agent!(Conformance);

//! How an agent's reply becomes a tool result: its message's parts, then its artifacts'.
//! Text is text; JSON is text too (for clients that read only text) and, when the reply holds
//! exactly one JSON object, the result's structured content; a file is an image or audio block
//! when its media type says so, embedded content when it has bytes, and a resource link when it
//! is only a URI.

use crate::invocation::InvocationError;
use crate::wit::types;
use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock, Resource, ResourceContents};
use serde_json::Value;

pub fn tool_result(agent: &str, correlation_id: &str, reply: &types::Reply) -> CallToolResult {
    let parts: Vec<&types::Part> = reply
        .message
        .iter()
        .flat_map(|m| m.parts.iter())
        .chain(reply.artifacts.iter().flat_map(|a| a.parts.iter()))
        .collect();
    let mut structured = Vec::new();
    let content = parts
        .iter()
        .enumerate()
        .map(|(i, part)| match part {
            types::Part::Text(text) => ContentBlock::text(text.clone()),
            types::Part::Data(json) => {
                if let Ok(Value::Object(object)) = serde_json::from_str(json) {
                    structured.push(Value::Object(object));
                }
                ContentBlock::text(json.clone())
            }
            types::Part::File(file) => file_block(agent, correlation_id, i, file),
        })
        .collect();
    let mut result = CallToolResult::success(content);
    let json_parts = parts
        .iter()
        .filter(|p| matches!(p, types::Part::Data(_)))
        .count();
    if json_parts == 1 && structured.len() == 1 {
        result.structured_content = structured.pop();
    }
    result
}

fn file_block(
    agent: &str,
    correlation_id: &str,
    index: usize,
    file: &types::FilePart,
) -> ContentBlock {
    let mime = file.media_type.clone();
    let name = file.name.clone().unwrap_or_else(|| format!("part-{index}"));
    match (&file.bytes, &file.uri) {
        (Some(bytes), uri) => {
            let data = base64::engine::general_purpose::STANDARD.encode(bytes);
            match mime.as_deref() {
                Some(m) if m.starts_with("image/") => ContentBlock::image(data, m),
                Some(m) if m.starts_with("audio/") => ContentBlock::audio(data, m),
                _ => ContentBlock::resource(ResourceContents::BlobResourceContents {
                    uri: uri.clone().unwrap_or_else(|| {
                        format!("agenthost://{agent}/calls/{correlation_id}/{name}")
                    }),
                    mime_type: mime,
                    blob: data,
                    meta: None,
                }),
            }
        }
        (None, Some(uri)) => {
            let mut resource = Resource::new(uri.clone(), name);
            resource.mime_type = mime;
            ContentBlock::resource_link(resource)
        }
        (None, None) => ContentBlock::text(format!("(file {name} with no content)")),
    }
}

/// A failed invocation as the caller reads it: the agent's own reason when it gave one.
pub fn failure_text(error: &InvocationError) -> String {
    match error {
        InvocationError::Rejected(reason) => format!("the agent refused the call: {reason}"),
        InvocationError::Retry(reason) => {
            format!("the agent could not do it now (try again later): {reason}")
        }
        other => format!("the agent failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: Vec<types::Part>) -> types::Reply {
        types::Reply {
            message: Some(types::Message {
                message_id: "m".into(),
                role: types::Role::Agent,
                parts,
                task_id: None,
                context_id: None,
            }),
            artifacts: vec![],
            state: types::TaskState::Completed,
        }
    }

    fn json_of(result: &CallToolResult) -> Value {
        serde_json::to_value(result).unwrap()
    }

    #[test]
    fn one_json_object_is_structured_content_and_text() {
        let r = tool_result(
            "a",
            "c",
            &reply(vec![types::Part::Data(r#"{"p":1}"#.into())]),
        );
        let v = json_of(&r);
        assert_eq!(v["structuredContent"], serde_json::json!({ "p": 1 }));
        assert_eq!(v["content"][0]["text"], r#"{"p":1}"#);
        let two = tool_result(
            "a",
            "c",
            &reply(vec![
                types::Part::Data("{}".into()),
                types::Part::Data("{}".into()),
            ]),
        );
        assert!(two.structured_content.is_none(), "which one would it be?");
    }

    #[test]
    fn files_become_images_embedded_content_or_links() {
        let file = |media: &str, bytes: Option<Vec<u8>>, uri: Option<&str>| {
            types::Part::File(types::FilePart {
                name: Some("f".into()),
                media_type: Some(media.into()),
                bytes,
                uri: uri.map(str::to_owned),
            })
        };
        let r = tool_result(
            "a",
            "c1",
            &reply(vec![
                file("image/png", Some(vec![1, 2]), None),
                file("application/pdf", Some(vec![3]), None),
                file("text/csv", None, Some("https://example.org/f.csv")),
            ]),
        );
        let v = json_of(&r);
        assert_eq!(v["content"][0]["type"], "image");
        assert_eq!(v["content"][0]["data"], "AQI=");
        assert_eq!(v["content"][1]["type"], "resource");
        assert_eq!(
            v["content"][1]["resource"]["uri"],
            "agenthost://a/calls/c1/f"
        );
        assert_eq!(v["content"][2]["type"], "resource_link");
        assert_eq!(v["content"][2]["uri"], "https://example.org/f.csv");
    }

    #[test]
    fn failures_name_the_agents_reason() {
        let text = failure_text(&InvocationError::Rejected("no such sku".into()));
        assert_eq!(text, "the agent refused the call: no such sku");
    }
}

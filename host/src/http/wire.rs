//! The JSON shapes of the HTTP API, shared by the server and the CLI client.

use crate::bus::{Header, Record};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /v1/topics/{topic}/records`. Exactly one of `payload` (UTF-8 text) and
/// `payload_base64` (bytes) is given.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishResponse {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub correlation_id: String,
}

/// `GET /v1/topics/{topic}/records`: a stream of JSON lines, one [`WireRecord`] each.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsumeQuery {
    #[serde(default)]
    pub from_beginning: bool,
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Stop after this long (humantime, e.g. "10s"); default 10s.
    pub timeout: Option<String>,
}

/// A record as JSON: text stays text; bytes that are not UTF-8 come as `*_base64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub timestamp_ms: u64,
}

/// Splits bytes into (text, base64) with exactly one set.
fn text_or_b64(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(B64.encode(bytes))),
    }
}

impl From<&Record> for WireRecord {
    fn from(r: &Record) -> Self {
        let (key, key_base64) = match &r.key {
            Some(k) => text_or_b64(k),
            None => (None, None),
        };
        let (payload, payload_base64) = text_or_b64(&r.payload);
        // Later headers win, as everywhere in the host; non-UTF-8 values are shown lossily.
        let headers = r
            .headers
            .iter()
            .map(|Header { key, value }| (key.clone(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        Self {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            key,
            key_base64,
            payload,
            payload_base64,
            headers,
            timestamp_ms: r.timestamp_ms,
        }
    }
}

impl WireRecord {
    /// The payload bytes, whichever way they were sent.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(b64)) => B64.decode(b64).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// `POST /v1/agents/{name}/rollback`: deploy an earlier version again.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to go back to; absent: the newest other version that was live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Accept a version granted more than the live one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approve: bool,
}

/// `POST /v1/agents`: deploy a manifest and its component.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployUpload {
    /// Where the manifest came from, for messages; relative `files` paths resolve against it.
    pub manifest_path: String,
    /// The manifest's TOML text.
    pub manifest: String,
    /// The component's bytes.
    pub component_base64: String,
    #[serde(default)]
    pub approve: bool,
}

/// One agent in `GET /v1/agents`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentView {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub description: String,
    pub source: String,
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
    pub state_used: Option<u64>,
    /// Event invocations since the host started (retries included), and how many failed.
    #[serde(default)]
    pub invocations: u64,
    #[serde(default)]
    pub failures: u64,
    pub dead_letters: u64,
    pub skills: Vec<String>,
    /// Granted MCP tools, as `server/tool` (`server/*` for all).
    #[serde(default)]
    pub mcp: Vec<String>,
    /// The version on trial beside this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryView>,
}

/// A canary on trial: its share of events and both sides' outcomes over the check's window.
#[derive(Debug, Serialize, Deserialize)]
pub struct CanaryView {
    pub version: String,
    pub digest: String,
    pub percent: u8,
    #[serde(flatten)]
    pub counts: crate::canary::Counts,
}

/// `GET /v1/agents`: running agents, and deployments that were refused.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentsResponse {
    pub agents: Vec<AgentView>,
    pub refused: Vec<RefusalView>,
    /// The host's MCP servers and their health.
    #[serde(default)]
    pub mcp_servers: Vec<crate::mcp::ServerStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RefusalView {
    pub source: String,
    pub agent: Option<String>,
    pub error: String,
}

pub fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text)
        .map_err(|e| format!("`{field}` is not valid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_round_trip_as_base64() {
        let r = Record {
            topic: "t".into(),
            partition: 1,
            offset: 2,
            key: Some(vec![0xff]),
            payload: vec![0, 159, 146, 150],
            headers: vec![Header::new("h", "v")],
            timestamp_ms: 3,
        };
        let w = WireRecord::from(&r);
        assert!(w.payload.is_none() && w.key.is_none());
        assert_eq!(w.payload_bytes(), r.payload);
        let text = Record {
            payload: b"hello".to_vec(),
            key: None,
            ..r
        };
        let w = WireRecord::from(&text);
        assert_eq!(w.payload.as_deref(), Some("hello"));
        assert_eq!(w.headers["h"], "v");
    }
}

//! Calls to remote A2A agents (v1.0 JSON-RPC): their cards fetched and cached, the endpoint
//! taken from the card, the credentials from the host's `[[a2a.peers]]`.

use super::model::{Message, Task};
use super::wire::{self, Dialect};
use crate::config::A2aPeer;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a fetched card is trusted before it is fetched again.
const CARD_TTL: Duration = Duration::from_secs(300);

/// What the host needs from a remote agent's card.
#[derive(Debug)]
pub struct RemoteCard {
    pub name: String,
    /// The JSON-RPC endpoint of its A2A 1.0 interface.
    pub endpoint: String,
    pub skills: Vec<String>,
}

pub struct RemoteClient {
    /// Built at the first remote call: building it loads the system's CA certificates, which
    /// was most of a host's start-up CPU (perf: 70% of `serve` until ready), and a host whose
    /// agents never call a remote agent has no use for it.
    http: OnceLock<reqwest::Client>,
    timeout: Duration,
    peers: Vec<A2aPeer>,
    cards: Mutex<HashMap<String, (Instant, Arc<RemoteCard>)>>,
}

/// `http://h:1/x/` and `http://h:1/x` are the same agent.
pub fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl RemoteClient {
    pub fn new(peers: Vec<A2aPeer>, timeout: Duration) -> Self {
        Self {
            http: OnceLock::new(),
            timeout,
            peers,
            cards: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client, built on first use.
    fn http(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for A2A calls: {e}"))?;
        // Two first calls at once may both build one; the first stored is used.
        Ok(self.http.get_or_init(|| client))
    }

    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.peers.iter().map(|p| normalize(&p.url))
    }

    /// Headers carrying the credentials configured for the peer `base` belongs to.
    fn credentials(&self, base: &str) -> Result<Vec<(String, String)>, String> {
        let Some(peer) = self
            .peers
            .iter()
            .find(|p| base.starts_with(normalize(&p.url)))
        else {
            return Ok(Vec::new());
        };
        let read = |var: &str| {
            std::env::var(var).map_err(|_| {
                format!(
                    "environment variable {var} (credentials of {}) is not set",
                    peer.url
                )
            })
        };
        let mut headers = Vec::new();
        if let Some(var) = &peer.bearer_env {
            headers.push(("authorization".to_owned(), format!("Bearer {}", read(var)?)));
        }
        if let Some(var) = &peer.api_key_env {
            let header = peer
                .api_key_header
                .clone()
                .unwrap_or_else(|| "x-api-key".into());
            headers.push((header, read(var)?));
        }
        Ok(headers)
    }

    /// The card of the agent at `base`, from the cache when fresh.
    pub async fn card(&self, base: &str) -> Result<Arc<RemoteCard>, String> {
        let base = normalize(base);
        if let Some((at, card)) = self
            .cards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(base)
            && at.elapsed() < CARD_TTL
        {
            return Ok(card.clone());
        }
        let url = format!("{base}/.well-known/agent-card.json");
        let mut request = self.http()?.get(&url).header("A2A-Version", "1.0");
        for (k, v) in self.credentials(base)? {
            request = request.header(k, v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot fetch the agent card {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("agent card {url}: HTTP {}", response.status()));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| format!("agent card {url} is not JSON: {e}"))?;
        let card = Arc::new(parse_card(&value).map_err(|e| format!("agent card {url}: {e}"))?);
        self.cards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(base.to_owned(), (Instant::now(), card.clone()));
        Ok(card)
    }

    /// `SendMessage` to the agent at `base`; waits for the task to finish or be interrupted.
    pub async fn send(
        &self,
        base: &str,
        message: &Message,
        correlation_id: &str,
    ) -> Result<Task, String> {
        let base = normalize(base);
        let card = self.card(base).await?;
        let body = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": { "message": wire::message_json(message, Dialect::V1) },
        });
        let mut request = self
            .http()?
            .post(&card.endpoint)
            .header("A2A-Version", "1.0")
            .header("correlation-id", correlation_id)
            .json(&body);
        for (k, v) in self.credentials(base)? {
            request = request.header(k, v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("A2A call to {} failed: {e}", card.endpoint))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "A2A call to {} answered HTTP {status}: {}",
                card.endpoint,
                text.chars().take(300).collect::<String>()
            ));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| format!("A2A answer from {} is not JSON: {e}", card.endpoint))?;
        if let Some(error) = value.get("error") {
            return Err(format!(
                "{} answered error {}: {}",
                card.name,
                error.get("code").unwrap_or(&Value::Null),
                error.get("message").and_then(Value::as_str).unwrap_or("")
            ));
        }
        let result = value
            .get("result")
            .ok_or_else(|| format!("A2A answer from {} has no result", card.endpoint))?;
        wire::parse_send_result(result)
            .map_err(|e| format!("A2A answer from {}: {e}", card.endpoint))
    }
}

fn parse_card(card: &Value) -> Result<RemoteCard, String> {
    let name = card
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let interfaces = card
        .get("supportedInterfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let endpoint = interfaces
        .iter()
        .find(|i| {
            i.get("protocolBinding").and_then(Value::as_str) == Some("JSONRPC")
                && i.get("protocolVersion")
                    .and_then(Value::as_str)
                    .is_none_or(|v| v.is_empty() || v.starts_with("1."))
        })
        .and_then(|i| i.get("url").and_then(Value::as_str))
        .ok_or("it lists no JSONRPC interface for A2A 1.0")?
        .to_owned();
    let skills = card
        .get("skills")
        .and_then(Value::as_array)
        .map(|skills| {
            skills
                .iter()
                .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(RemoteCard {
        name,
        endpoint,
        skills,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v1_jsonrpc_interface_is_chosen() {
        let card = json!({
            "name": "x",
            "supportedInterfaces": [
                {"url": "http://h/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
                {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "skills": [{"id": "a"}, {"id": "b"}]
        });
        let parsed = parse_card(&card).unwrap();
        assert_eq!(parsed.endpoint, "http://h/rpc");
        assert_eq!(parsed.skills, ["a", "b"]);
        let old_only = json!({"url": "http://h", "protocolVersion": "0.3.0"});
        assert!(parse_card(&old_only).unwrap_err().contains("A2A 1.0"));
    }
}

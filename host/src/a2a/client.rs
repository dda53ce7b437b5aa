//! Calls to remote A2A agents (v1.0 JSON-RPC): their cards fetched and cached, the endpoint
//! taken from the card, the credentials from the host's `[[a2a.peers]]`.
//!
//! A granted peer URL must not lead anywhere else (a way around `capabilities.http`): redirects
//! are never followed, the endpoint a card names must have the peer's scheme, host and port,
//! a peer's credentials go only to its own origin and path, and answers are size-capped.

use super::model::{Message, Task};
use super::wire::{self, Dialect};
use crate::config::A2aPeer;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a fetched card is trusted before it is fetched again.
const CARD_TTL: Duration = Duration::from_secs(300);
/// The largest agent card read from a peer.
const MAX_CARD: usize = 1 << 20;
/// The largest answer to `SendMessage` read from a peer.
const MAX_ANSWER: usize = 16 << 20;

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
pub use crate::capabilities::a2a::normalize;

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
            // A redirect would take the call (and its credentials) somewhere not granted.
            .redirect(reqwest::redirect::Policy::none())
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
        let Some(peer) = self.peers.iter().find(|p| covers(&p.url, base)) else {
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
        let body = read_capped(response, MAX_CARD)
            .await
            .map_err(|e| format!("agent card {url}: {e}"))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("agent card {url} is not JSON: {e}"))?;
        let card = parse_card(&value).map_err(|e| format!("agent card {url}: {e}"))?;
        if !same_origin(base, &card.endpoint) {
            return Err(format!(
                "agent card {url} names the endpoint {}, which is not on the granted peer's scheme, host and port",
                card.endpoint
            ));
        }
        let card = Arc::new(card);
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
        let body = read_capped(response, MAX_ANSWER)
            .await
            .map_err(|e| format!("A2A answer from {}: {e}", card.endpoint))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "A2A call to {} answered HTTP {status}: {}",
                card.endpoint,
                text.chars().take(300).collect::<String>()
            ));
        }
        let value: Value = serde_json::from_slice(&body)
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

/// A response body, refused once it exceeds `max` bytes (before it is all in memory).
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|length| length > max as u64)
    {
        return Err(format!("the answer is larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Scheme, host and port of a URL (the port made explicit), if it parses.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let url = reqwest::Url::parse(url).ok()?;
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// Whether `endpoint` is on the scheme, host and port of `base`.
fn same_origin(base: &str, endpoint: &str) -> bool {
    origin(base).is_some_and(|o| Some(o) == origin(endpoint))
}

/// Whether the configured peer at `peer` covers the agent at `base`: the same origin, and
/// `base`'s path is the peer's or below it by whole segments (`/partnerA` covers
/// `/partnerA/x`, not `/partnerAttacker`).
fn covers(peer: &str, base: &str) -> bool {
    let (Ok(p), Ok(b)) = (reqwest::Url::parse(peer), reqwest::Url::parse(base)) else {
        return false;
    };
    if !same_origin(peer, base) {
        return false;
    }
    let peer_path = p.path().trim_end_matches('/');
    let base_path = b.path().trim_end_matches('/');
    base_path == peer_path
        || base_path
            .strip_prefix(peer_path)
            .is_some_and(|rest| rest.starts_with('/'))
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

    #[test]
    fn credentials_go_to_their_peers_origin_and_path_only() {
        let peer = "https://partners.example/partnerA";
        assert!(covers(peer, "https://partners.example/partnerA"));
        assert!(covers(peer, "https://partners.example/partnerA/"));
        assert!(covers(
            peer,
            "https://partners.example:443/partnerA/agents/x"
        ));
        assert!(!covers(peer, "https://partners.example/partnerAttacker"));
        assert!(!covers(peer, "http://partners.example/partnerA"));
        assert!(!covers(peer, "https://partners.example:8443/partnerA"));
        assert!(!covers(peer, "https://partners.example.evil/partnerA"));
        assert!(covers("https://h", "https://h/anything"));
    }

    #[test]
    fn an_endpoint_must_share_the_peers_origin() {
        assert!(same_origin(
            "http://127.0.0.1:9000/agents/a",
            "http://127.0.0.1:9000/rpc"
        ));
        assert!(same_origin("https://h/a", "https://H:443/rpc"));
        assert!(!same_origin(
            "http://127.0.0.1:9000/a",
            "http://127.0.0.1:8080/v1/agents"
        ));
        assert!(!same_origin("http://h/a", "https://h/a"));
        assert!(!same_origin("http://h/a", "http://169.254.169.254/latest"));
    }

    /// A one-shot HTTP server answering every connection with `response`.
    async fn answering(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn redirects_and_foreign_endpoints_are_refused() {
        let client = RemoteClient::new(Vec::new(), Duration::from_secs(5));
        let redirecting = answering(
            "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let err = client.card(&redirecting).await.unwrap_err();
        assert!(err.contains("HTTP 302"), "{err}");

        let body = r#"{"name":"x","supportedInterfaces":[{"url":"http://127.0.0.1:1/v1/agents","protocolBinding":"JSONRPC","protocolVersion":"1.0"}]}"#;
        let foreign: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let elsewhere = answering(foreign).await;
        let err = client.card(&elsewhere).await.unwrap_err();
        assert!(
            err.contains("not on the granted peer's scheme, host and port"),
            "{err}"
        );
    }
}

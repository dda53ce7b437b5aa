//! A2A: the host serves exposed agents over the Agent2Agent protocol (JSON-RPC, v1.0 and
//! v0.3), keeps their tasks in sled, and routes agents' own `a2a` calls — in-process to local
//! agents, over HTTP to remote ones.

pub mod bus;
pub mod card;
pub mod client;
pub mod model;
mod route;
pub mod service;
pub mod skills;
pub mod store;
pub mod wire;

use crate::config::{A2aConfig, A2aSchemeKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A security scheme with its secret read from the environment.
pub struct ResolvedScheme {
    pub name: String,
    pub kind: A2aSchemeKind,
    /// The header an API key travels in (lowercase).
    pub header: String,
    /// `None` when the variable was unset at start: every request is then refused (fail
    /// closed), and the start-up log said why.
    secret: Option<String>,
}

impl ResolvedScheme {
    /// Whether the request's headers satisfy this scheme. Constant-time comparison: the
    /// response time must not leak how much of a guess was right.
    pub fn accepts(&self, headers: &http::HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        let presented = match self.kind {
            A2aSchemeKind::Bearer => headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                }),
            A2aSchemeKind::ApiKey => headers.get(&self.header).and_then(|v| v.to_str().ok()),
        };
        presented.is_some_and(|p| constant_time_eq(p.as_bytes(), secret.as_bytes()))
    }

    /// Whether the request carries this scheme's credential at all, right or wrong.
    pub fn presented(&self, headers: &http::HeaderMap) -> bool {
        match self.kind {
            A2aSchemeKind::Bearer => headers.contains_key(http::header::AUTHORIZATION),
            A2aSchemeKind::ApiKey => headers.contains_key(&self.header),
        }
    }

    /// The `WWW-Authenticate` challenge for a refused request.
    pub fn challenge(&self) -> String {
        match self.kind {
            A2aSchemeKind::Bearer => "Bearer realm=\"agenthost\"".into(),
            A2aSchemeKind::ApiKey => format!("ApiKey header=\"{}\"", self.header),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Everything A2A in one place, shared by the HTTP server and the `a2a` capability.
pub struct A2a {
    pub service: Arc<service::A2aService>,
    pub remote: client::RemoteClient,
    /// Skills reached over the bus (`[a2a] bus_skills`).
    pub bus: bus::BusRequester,
    pub schemes: BTreeMap<String, ResolvedScheme>,
    /// Base URL of this host as clients see it, without a trailing slash.
    pub public_url: String,
    /// Bound on a call to another agent over HTTP or the bus (`a2a.timeout`).
    pub timeout: std::time::Duration,
}

impl A2a {
    pub fn new(
        config: &A2aConfig,
        listen: SocketAddr,
        service: Arc<service::A2aService>,
        event_bus: Arc<dyn crate::bus::Bus>,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut schemes = BTreeMap::new();
        for (name, scheme) in &config.security {
            let secret = std::env::var(&scheme.env).ok().filter(|s| !s.is_empty());
            if secret.is_none() {
                tracing::error!(
                    scheme = name,
                    variable = scheme.env,
                    "A2A security scheme has no secret: its variable is unset, so agents requiring it refuse every request"
                );
            }
            schemes.insert(
                name.clone(),
                ResolvedScheme {
                    name: name.clone(),
                    kind: scheme.kind,
                    header: scheme
                        .header
                        .clone()
                        .unwrap_or_else(|| "x-api-key".into())
                        .to_ascii_lowercase(),
                    secret,
                },
            );
        }
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            service,
            remote: client::RemoteClient::new(config.peers.clone(), config.timeout),
            bus: bus::BusRequester::new(event_bus, &config.bus_skills, stop),
            schemes,
            public_url,
            timeout: config.timeout,
        })
    }

    /// A2A with no agents to route to and the default config: for embedders and benchmarks
    /// that run agents outside a [`crate::host::Host`].
    pub fn detached(
        db: &sled::Db,
        metrics: Arc<crate::metrics::Metrics>,
        event_bus: Arc<dyn crate::bus::Bus>,
    ) -> anyhow::Result<Arc<Self>> {
        let service = Arc::new(service::A2aService::open(
            db,
            Arc::new(crate::registry::Registry::default()),
            metrics,
        )?);
        Ok(Arc::new(Self::new(
            &A2aConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            service,
            event_bus,
            tokio_util::sync::CancellationToken::new(),
        )?))
    }

    /// The base URL of an agent: its card is at `{base}/.well-known/agent-card.json`.
    /// Refuses an agent to be served under a scheme this host does not configure: checked at
    /// deploy, so a typo in `[a2a] security` does not leave the agent unreachable.
    /// `section` is the manifest section naming them (`a2a`, `mcp`).
    pub fn check_served_under(&self, section: &str, schemes: &[String]) -> Result<(), String> {
        match schemes
            .iter()
            .find(|name| !self.schemes.contains_key(*name))
        {
            Some(name) => {
                let configured: Vec<&String> = self.schemes.keys().collect();
                Err(format!(
                    "`{section}.security` names scheme {name:?}, which this host does not configure (its [a2a.security] are {configured:?})"
                ))
            }
            None => Ok(()),
        }
    }

    pub fn agent_url(&self, agent: &str) -> String {
        format!("{}/agents/{agent}", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(kind: A2aSchemeKind, secret: Option<&str>) -> ResolvedScheme {
        ResolvedScheme {
            name: "s".into(),
            kind,
            header: "x-api-key".into(),
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn credentials_are_checked_and_an_unset_secret_refuses_everything() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer sesame".parse().unwrap());
        assert!(scheme(A2aSchemeKind::Bearer, Some("sesame")).accepts(&headers));
        assert!(!scheme(A2aSchemeKind::Bearer, Some("sesam")).accepts(&headers));
        assert!(!scheme(A2aSchemeKind::Bearer, None).accepts(&headers));
        assert!(!scheme(A2aSchemeKind::ApiKey, Some("sesame")).accepts(&headers));
        headers.insert("x-api-key", "k".parse().unwrap());
        assert!(scheme(A2aSchemeKind::ApiKey, Some("k")).accepts(&headers));
    }
}

//! `capabilities.http`: outbound HTTP through `wasi:http/outgoing-handler`, only to the
//! `scheme://host[:port]` rules the manifest lists. Every request is checked before a
//! connection is made and audited with its outcome. The host never follows redirects: a
//! redirect comes back to the agent, and the request it makes next is checked like any other.
//!
//! The host resolves the URL's host and checks every address before it connects
//! ([`address`]): a name reaches public addresses only, loopback/private/link-local addresses
//! only through a rule naming the IP literal, and the host's own listener only through a rule
//! naming its IP and exact port. The connection then goes to the checked address ([`connect`]),
//! so DNS cannot change the answer between the check and the connection.

mod address;
mod connect;

use super::caller::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::config::HttpRule;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.http"),
    interfaces: &INTERFACES,
    required: Some(super::capability::Requirement {
        granted: |c| !c.http.is_empty(),
        missing: "outbound HTTP: list the allowed `scheme://host[:port]` in `capabilities.http`",
    }),
    validate: super::capability::nothing_to_validate,
    grants: |c| c.http.iter().map(|h| format!("http {h}")).collect(),
};

/// `capabilities.http`: the outbound HTTP allowlist, `scheme://host[:port]` with `*` wildcards.
pub type Section = Vec<HttpRule>;

/// The wasi:http interfaces linked for agents, both granted by `capabilities.http`.
pub const INTERFACES: [&str; 2] = ["wasi:http/outgoing-handler", "wasi:http/types"];

/// What an agent version may reach, resolved at deploy.
pub struct HttpGrant {
    rules: Vec<HttpRule>,
    audit: Arc<AuditLog>,
    /// The host's own HTTP listener, reached only through a rule naming it exactly.
    listen: Option<SocketAddr>,
}

impl HttpGrant {
    pub fn new(section: &Section, audit: Arc<AuditLog>, listen: Option<SocketAddr>) -> Self {
        Self {
            rules: section.clone(),
            audit,
            listen,
        }
    }

    /// The address to connect to for `uri`, which the rules allow: the host's (resolved, or
    /// the IP literal), each address checked by [`address::check`]. A name with any refused
    /// address is refused whole, so the agent cannot pick the answer that slips through.
    async fn resolve(&self, uri: &http::Uri) -> Result<SocketAddr, Refused> {
        let (scheme, host, port) = parts(uri).map_err(Refused::Denied)?;
        let rules: Vec<&HttpRule> = self
            .rules
            .iter()
            .filter(|r| r.allows(scheme, host, port))
            .collect();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| Refused::Failed(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        for to in &addresses {
            address::check(&rules, *to, self.listen)
                .map_err(|reason| Refused::Denied(format!("{host} resolves to {reason}")))?;
        }
        addresses
            .first()
            .copied()
            .ok_or_else(|| Refused::Failed(format!("{host} resolves to no address")))
    }
}

/// Why a request was not sent: denied by the policy, or failed before a connection.
enum Refused {
    Denied(String),
    Failed(String),
}

/// The scheme, host and port of `uri`.
fn parts(uri: &http::Uri) -> Result<(&str, &str, u16), String> {
    let scheme = uri.scheme_str().ok_or("the URL has no scheme")?;
    let authority = uri.authority().ok_or("the URL has no host")?;
    let port = match (authority.port_u16(), scheme) {
        (Some(p), _) => p,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, other) => return Err(format!("scheme {other:?} is not http or https")),
    };
    Ok((scheme, authority.host(), port))
}

/// Why `uri` may not be requested under `rules`, or `None` when one allows it.
fn refusal(rules: &[HttpRule], uri: &http::Uri) -> Option<String> {
    // Credentials in the URL would be sent to whoever the rest of it names.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some("URLs with user info are not allowed".into());
    }
    let (scheme, host, port) = match parts(uri) {
        Ok(parts) => parts,
        Err(reason) => return Some(reason),
    };
    if rules.iter().any(|r| r.allows(scheme, host, port)) {
        return None;
    }
    let granted: Vec<&str> = rules.iter().map(HttpRule::as_str).collect();
    Some(format!(
        "{scheme}://{host}:{port} matches none of capabilities.http {granted:?}"
    ))
}

/// Per-instance: the hook wasmtime-wasi-http calls for every outgoing request.
pub struct HttpInstance {
    grant: Arc<HttpGrant>,
    caller: Caller,
}

impl HttpInstance {
    pub fn new(grant: Arc<HttpGrant>, caller: Caller) -> Self {
        Self { grant, caller }
    }
}

/// What the hook hands back: the response, and a future that reports the request body's fate.
type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpInstance {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_body_result: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        // Audited without the query string, which often carries credentials.
        let target = format!(
            "{} {}://{}{}",
            request.method(),
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path()
        );
        let (caller, grant) = (self.caller.clone(), self.grant.clone());
        let denied = |caller: &Caller, audit: &AuditLog, target: &str, reason: &str| {
            caller.warn_denied("http", target, reason);
            caller.audit(audit, "http", target, Outcome::Denied, reason);
        };
        if let Some(reason) = refusal(&grant.rules, uri) {
            denied(&caller, &grant.audit, &target, &reason);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let to = match grant.resolve(request.uri()).await {
                Ok(to) => to,
                Err(Refused::Denied(reason)) => {
                    denied(&caller, &grant.audit, &target, &reason);
                    return Err(HttpError::HttpRequestDenied);
                }
                Err(Refused::Failed(reason)) => {
                    caller.audit(&grant.audit, "http", &target, Outcome::Failed, &reason);
                    return Err(HttpError::DestinationNotFound);
                }
            };
            let audit = &grant.audit;
            match connect::send_to(to, request, options).await {
                Ok((response, io)) => {
                    let status = response.status();
                    caller.audit(
                        audit,
                        "http",
                        &target,
                        Outcome::Allowed,
                        &format!("HTTP {} from {to}", status.as_u16()),
                    );
                    Ok((response, io))
                }
                Err(err) => {
                    caller.audit(audit, "http", &target, Outcome::Failed, &format!("{err:?}"));
                    Err(err)
                }
            }
        })
    }
}

/// Links `wasi:http/outgoing-handler` and `wasi:http/types` — not the proxy world, whose
/// `incoming-handler` an agent has no use for.
pub fn add_to_linker<T: wasmtime_wasi_http::WasiHttpView + Send + 'static>(
    linker: &mut Linker<T>,
) -> anyhow::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_against_scheme_host_and_port() {
        let rules: Vec<HttpRule> = ["http://127.0.0.1:8099", "https://*.example.com"]
            .iter()
            .map(|r| HttpRule::parse(r).unwrap())
            .collect();
        let refused = |s: &str| refusal(&rules, &s.parse::<http::Uri>().unwrap());
        assert_eq!(refused("http://127.0.0.1:8099/prices?x=1"), None);
        assert_eq!(refused("https://api.example.com/v1"), None);
        let refused_port = refused("http://127.0.0.1:8100/").unwrap();
        assert!(
            refused_port.contains("http://127.0.0.1:8100 matches none"),
            "{refused_port}"
        );
        assert!(refused("http://api.example.com/").is_some());
        assert!(refused("http://localhost:8099/").is_some());
        let userinfo = refused("http://x@127.0.0.1:8099/").unwrap();
        assert!(userinfo.contains("user info"), "{userinfo}");
    }
}

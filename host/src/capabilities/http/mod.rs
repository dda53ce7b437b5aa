//! `capabilities.http`: outbound HTTP through `wasi:http/outgoing-handler`, only to the
//! `scheme://host[:port]` rules the manifest lists. Every request is checked before a
//! connection is made and audited with its outcome. The host never follows redirects: a
//! redirect comes back to the agent, and the request it makes next is checked like any other.
//!
//! The connection goes to the host named in the URL, resolved by the host process; a rule
//! naming a host name therefore allows whatever that name resolves to, and nothing else.

use super::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::config::{HttpRule, Manifest};
use crate::runtime::StoreData;
use std::future::Future;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The wasi:http interfaces linked for agents, both granted by `capabilities.http`.
pub const INTERFACES: [&str; 2] = ["wasi:http/outgoing-handler", "wasi:http/types"];

/// What an agent version may reach, resolved at deploy.
pub struct HttpGrant {
    rules: Vec<HttpRule>,
    audit: Arc<AuditLog>,
}

impl HttpGrant {
    pub fn new(manifest: &Manifest, audit: Arc<AuditLog>) -> Self {
        Self {
            rules: manifest.capabilities.http.clone(),
            audit,
        }
    }
}

/// Why `uri` may not be requested under `rules`, or `None` when one allows it.
fn refusal(rules: &[HttpRule], uri: &http::Uri) -> Option<String> {
    let Some(scheme) = uri.scheme_str() else {
        return Some("the URL has no scheme".into());
    };
    let Some(authority) = uri.authority() else {
        return Some("the URL has no host".into());
    };
    // Credentials in the URL would be sent to whoever the rest of it names.
    if authority.as_str().contains('@') {
        return Some("URLs with user info are not allowed".into());
    }
    let port = match (authority.port_u16(), scheme) {
        (Some(p), _) => p,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, other) => return Some(format!("scheme {other:?} is not http or https")),
    };
    let host = authority.host();
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
        let (caller, audit) = (self.caller.clone(), self.grant.audit.clone());
        if let Some(reason) = refusal(&self.grant.rules, uri) {
            tracing::warn!(
                agent = &*caller.agent,
                version = &*caller.version,
                correlation_id = &*caller.correlation_id(),
                target,
                reason,
                "http request denied"
            );
            caller.audit(&audit, "http", &target, Outcome::Denied, &reason);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            match wasmtime_wasi_http::default_send_request(request, options).await {
                Ok((response, io)) => {
                    let status = response.status();
                    caller.audit(
                        &audit,
                        "http",
                        &target,
                        Outcome::Allowed,
                        &format!("HTTP {}", status.as_u16()),
                    );
                    Ok((
                        response.map(BodyExt::boxed_unsync),
                        Box::new(io) as Box<dyn Future<Output = _> + Send>,
                    ))
                }
                Err(err) => {
                    caller.audit(
                        &audit,
                        "http",
                        &target,
                        Outcome::Failed,
                        &format!("{err:?}"),
                    );
                    Err(err)
                }
            }
        })
    }
}

/// Links `wasi:http/outgoing-handler` and `wasi:http/types` — not the proxy world, whose
/// `incoming-handler` an agent has no use for.
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
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

//! Outbound HTTP (`wasi:http/outgoing-handler`).
//!
//! Granted by the manifest's `capabilities.http` rules (`scheme://host[:port]`); a request to
//! anything else comes back as [`HostError::Denied`] without a connection being made. Redirects
//! (301, 302, 303, 307, 308) are followed here, up to [`MAX_REDIRECTS`], and the host checks
//! every hop against the rules again — a redirect cannot lead an agent off its allowlist.
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::http;
//!
//! let page = http::get("http://127.0.0.1:8099/prices/sku-1")?;
//! let price: serde_json::Value = page.json()?;
//! http::Request::post("http://127.0.0.1:8099/orders")
//!     .header("content-type", "application/json")
//!     .body(br#"{"sku":"sku-1"}"#.to_vec())
//!     .send()?;
//! # Ok(())
//! # }
//! ```

use crate::{Failure, HostError};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// A response, read to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: String,
}

impl Response {
    /// The first header named `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; a [`Failure::Reject`] naming the URL when it is not.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::reject(format!(
                "the answer of {} {}: {e}",
                self.url,
                crate::json::what_is_wrong(&e)
            ))
        })
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HostError> {
    Request::get(url).send()
}

/// A request being built.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    follow_redirects: bool,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Return 3xx responses instead of following them.
    pub fn no_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }

    /// Sends the request (following redirects unless told not to) and reads the response.
    pub fn send(self) -> Result<Response, HostError> {
        let mut request = self;
        for _ in 0..=MAX_REDIRECTS {
            let response = request.send_once()?;
            let location = response.header("location");
            let redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
            let (true, true, Some(location)) = (request.follow_redirects, redirect, location)
            else {
                return Ok(response);
            };
            let next = resolve(&request.url, &location)?;
            // 303, and 301/302 after a POST as browsers do, continue as a GET without a body.
            if response.status == 303
                || (matches!(response.status, 301 | 302) && request.method == "POST")
            {
                request.method = "GET".into();
                request.body = None;
            }
            request.url = next;
        }
        Err(HostError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects, the last to {}",
            request.url
        )))
    }

    fn send_once(&self) -> Result<Response, HostError> {
        let url = Url::parse(&self.url)?;
        let failed =
            |what: &str| HostError::Failed(format!("{} {}: {what}", self.method, self.url));
        let headers = Fields::from_list(&self.headers)
            .map_err(|e| failed(&format!("invalid header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        request
            .set_method(&method)
            .map_err(|()| failed("invalid method"))?;
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| failed("invalid scheme"))?;
        request
            .set_authority(Some(url.authority))
            .map_err(|()| failed("invalid host"))?;
        request
            .set_path_with_query(Some(url.path_and_query))
            .map_err(|()| failed("invalid path"))?;
        let body = request.body().map_err(|()| failed("no request body"))?;
        let pending = outgoing_handler::handle(request, None).map_err(|e| self.error(e))?;
        if let Some(bytes) = &self.body {
            let stream = body
                .write()
                .map_err(|()| failed("request body not writable"))?;
            for chunk in bytes.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| failed(&format!("writing the body: {e:?}")))?;
            }
            drop(stream);
        }
        OutgoingBody::finish(body, None).map_err(|e| self.error(e))?;
        pending.subscribe().block();
        let incoming = pending
            .get()
            .ok_or_else(|| failed("no response"))?
            .map_err(|()| failed("response already taken"))?
            .map_err(|e| self.error(e))?;
        let status = incoming.status();
        let headers = incoming.headers().entries();
        let body = incoming
            .consume()
            .map_err(|()| failed("no response body"))?;
        let stream = body
            .stream()
            .map_err(|()| failed("response body not readable"))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(failed(&format!("reading the body: {e:?}"))),
            }
        }
        drop(stream);
        Ok(Response {
            status,
            headers,
            body: bytes,
            url: self.url.clone(),
        })
    }

    fn error(&self, code: ErrorCode) -> HostError {
        match code {
            ErrorCode::HttpRequestDenied => HostError::Denied(format!(
                "{} {}: not allowed by the manifest's capabilities.http",
                self.method, self.url
            )),
            other => HostError::Failed(format!("{} {}: {other:?}", self.method, self.url)),
        }
    }
}

/// The parts of an absolute `http(s)://authority/path?query` URL a request needs.
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path_and_query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, HostError> {
        let invalid = |why: &str| HostError::Failed(format!("invalid URL {url:?}: {why}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(invalid("expected http:// or https://"));
        };
        let rest = rest.split('#').next().unwrap_or(rest);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        Ok(Self {
            https,
            authority,
            path_and_query: if path.is_empty() { "/" } else { path },
        })
    }
}

/// `location` (absolute, or relative to `base`) as an absolute URL.
fn resolve(base: &str, location: &str) -> Result<String, HostError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let url = Url::parse(base)?;
    let origin = format!(
        "{}://{}",
        if url.https { "https" } else { "http" },
        url.authority
    );
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!(
            "{}://{rest}",
            if url.https { "https" } else { "http" }
        ));
    }
    if location.starts_with('/') {
        return Ok(format!("{origin}{location}"));
    }
    let path = url.path_and_query.split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{origin}{dir}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base = "http://127.0.0.1:8080/a/b?x=1";
        assert_eq!(resolve(base, "https://e.com/x").unwrap(), "https://e.com/x");
        assert_eq!(resolve(base, "/c").unwrap(), "http://127.0.0.1:8080/c");
        assert_eq!(resolve(base, "c?d").unwrap(), "http://127.0.0.1:8080/a/c?d");
        assert_eq!(resolve(base, "//other:9/p").unwrap(), "http://other:9/p");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        let u = Url::parse("https://h:1/p?q#frag").unwrap();
        assert!(u.https);
        assert_eq!((u.authority, u.path_and_query), ("h:1", "/p?q"));
        assert_eq!(Url::parse("http://h").unwrap().path_and_query, "/");
        assert!(Url::parse("ftp://h").is_err());
        assert!(Url::parse("http:///p").is_err());
    }
}

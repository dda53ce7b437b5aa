//! OAuth 2.1 for remote MCP servers, the way a host without a browser can do it: the client
//! credentials grant, or a refresh token issued to the host beforehand that it rotates itself
//! (`[mcp.servers.NAME.oauth]`, docs/mcp.md "Servers behind OAuth").
//!
//! Discovery is rmcp's `AuthorizationManager`: the protected-resource metadata (RFC 9728) named
//! by the server's 401 challenge or found at its well-known URLs, then the authorization
//! server's metadata (RFC 8414, OpenID Connect discovery as a fallback) whose `issuer` must be
//! the server it was fetched for. A server that publishes no metadata is refused rather than
//! guessed at. Token requests carry the server's URL as `resource` (RFC 8707).
//!
//! The token stays in the host: agents never see it (they reach the server only through the
//! `mcp` import). It is fetched again 30 s before it expires, and once when the server rejects
//! it (a 401), so a revoked or rotated token costs one failed request at most.

mod refresh_store;
mod tokens;

pub use refresh_store::{RefreshTokens, TREE as TOKEN_TREE};
pub use tokens::Grant;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokens::Tokens;

/// The HTTP client of a streamable HTTP server: reqwest, and for a server behind OAuth the
/// host's token on every request.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    tokens: Option<Arc<Tokens>>,
}

impl HttpClient {
    /// A client that sends what rmcp hands it.
    pub fn plain(http: reqwest::Client) -> Self {
        Self { http, tokens: None }
    }

    /// The client for the server at `url`, obtaining tokens by `grant`.
    pub fn with_oauth(http: reqwest::Client, url: &str, grant: Grant) -> Self {
        Self {
            http,
            tokens: Some(Arc::new(Tokens::new(url, grant))),
        }
    }

    /// Why no token could be obtained, if the last attempt failed: a handshake that failed for
    /// this reason is reported as it, and not retried with another revision.
    pub fn token_failure(&self) -> Option<String> {
        self.tokens.as_ref().and_then(|tokens| tokens.failure())
    }
}

type Result2<T> = Result<T, StreamableHttpError<reqwest::Error>>;

impl HttpClient {
    /// Runs `call` with the authorization to send: `given` (what rmcp passed) for a plain
    /// client; the current token behind OAuth, and when the server answers 401, once more
    /// with a new one.
    async fn with_token<T, F, Fut>(&self, given: Option<String>, call: F) -> Result2<T>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result2<T>>,
    {
        let Some(tokens) = &self.tokens else {
            return call(given).await;
        };
        let token = tokens.token(None).await?;
        match call(Some(token.clone())).await {
            Err(StreamableHttpError::AuthRequired(_)) => {
                let renewed = tokens.token(Some(&token)).await?;
                call(Some(renewed)).await
            }
            other => other,
        }
    }
}

impl StreamableHttpClient for HttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<StreamableHttpPostResponse> {
        self.with_token(auth_header, |auth| {
            self.http.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                auth,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result2<StreamableHttpPostResponse> {
        self.with_token(auth_header, |auth| {
            self.http.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                auth,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<()> {
        self.with_token(auth_header, |auth| {
            self.http.delete_session(
                uri.clone(),
                session_id.clone(),
                auth,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        self.with_token(auth_header, |auth| {
            self.http.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                auth,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        self.with_token(auth_header, |auth| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                auth,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

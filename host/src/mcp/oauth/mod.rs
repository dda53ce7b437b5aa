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

/// The HTTP client of an MCP server behind OAuth: reqwest, with the host's token on every
/// request.
#[derive(Clone)]
pub struct OAuthHttp {
    http: reqwest::Client,
    tokens: Arc<Tokens>,
}

impl OAuthHttp {
    /// The client for the server at `url`, obtaining tokens by `grant`.
    pub fn new(http: reqwest::Client, url: &str, grant: Grant) -> Self {
        Self {
            http,
            tokens: Arc::new(Tokens::new(url, grant)),
        }
    }

    /// Why no token could be obtained, if the last attempt failed: a handshake that failed for
    /// this reason is reported as it, and not retried with another revision.
    pub fn token_failure(&self) -> Option<String> {
        self.tokens.failure()
    }
}

type Result2<T> = Result<T, StreamableHttpError<reqwest::Error>>;

impl OAuthHttp {
    /// Runs `call` with the current token; when the server answers 401, once more with a new
    /// one.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result2<T>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result2<T>>,
    {
        let token = self.tokens.token(None).await?;
        match call(token.clone()).await {
            Err(StreamableHttpError::AuthRequired(_)) => {
                let renewed = self.tokens.token(Some(&token)).await?;
                call(renewed).await
            }
            other => other,
        }
    }
}

impl StreamableHttpClient for OAuthHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<StreamableHttpPostResponse> {
        self.with_token(|token| {
            self.http.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                Some(token),
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result2<StreamableHttpPostResponse> {
        self.with_token(|token| {
            self.http.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                Some(token),
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<()> {
        self.with_token(|token| {
            self.http.delete_session(
                uri.clone(),
                session_id.clone(),
                Some(token),
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        self.with_token(|token| {
            self.http.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        self.with_token(|token| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

/// The HTTP client of a streamable HTTP server: plain, or with OAuth tokens.
#[derive(Clone)]
pub enum HttpClient {
    Plain(reqwest::Client),
    OAuth(OAuthHttp),
}

/// `$body` with `$c` bound to whichever client `$self` holds (both are `StreamableHttpClient`
/// with the same error type).
macro_rules! either {
    ($self:ident, $c:ident => $body:expr) => {
        match $self {
            Self::Plain($c) => $body,
            Self::OAuth($c) => $body,
        }
    };
}

impl StreamableHttpClient for HttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<StreamableHttpPostResponse> {
        either!(self, c => c.post_message(uri, message, session_id, auth, headers).await)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        max: usize,
    ) -> Result2<StreamableHttpPostResponse> {
        either!(self, c => {
            c.post_message_with_max_sse_event_size(uri, message, session_id, auth, headers, max)
                .await
        })
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<()> {
        either!(self, c => c.delete_session(uri, session_id, auth, headers).await)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        either!(self, c => c.get_stream(uri, session_id, last_event_id, auth, headers).await)
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        max: usize,
    ) -> Result2<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>> {
        either!(self, c => {
            c.get_stream_with_max_sse_event_size(uri, session_id, last_event_id, auth, headers, max)
                .await
        })
    }
}

//! OAuth 2.1 for remote MCP servers, the way a host without a browser can do it: the client
//! credentials grant (`[mcp.servers.NAME.oauth]`, docs/mcp.md "Servers behind OAuth").
//!
//! Discovery is rmcp's `AuthorizationManager`: the protected-resource metadata (RFC 9728) named
//! by the server's 401 challenge or found at its well-known URLs, then the authorization
//! server's metadata (RFC 8414, OpenID Connect discovery as a fallback) whose `issuer` must be
//! the server it was fetched for. A server that publishes no metadata is refused rather than
//! guessed at. Token requests carry the server's URL as `resource` (RFC 8707) and use
//! `client_secret_basic` or `client_secret_post` as the authorization server advertises.
//!
//! The token stays in the host: agents never see it (they reach the server only through the
//! `mcp` import). It is fetched again 30 s before it expires, and once when the server rejects
//! it (a 401), so a revoked or rotated token costs one failed request at most.

use crate::config::McpOAuthConfig;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::auth::{AuthError, AuthorizationManager, ClientCredentialsConfig};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A token this close to expiring is replaced before use.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// The HTTP client of an MCP server behind OAuth: reqwest, with the host's token on every
/// request.
#[derive(Clone)]
pub struct OAuthHttp {
    http: reqwest::Client,
    tokens: Arc<Tokens>,
}

struct Tokens {
    /// The MCP server's endpoint: where discovery starts, and the `resource` of every token.
    url: String,
    credentials: ClientCredentialsConfig,
    state: Mutex<State>,
    /// Why the last attempt to obtain a token failed, until one succeeds.
    failure: std::sync::Mutex<Option<String>>,
}

#[derive(Default)]
struct State {
    /// Discovered and configured once, then reused for every token request.
    manager: Option<AuthorizationManager>,
    token: Option<(String, Option<Instant>)>,
}

impl OAuthHttp {
    /// The client for `url`; `secret` is the value of `client_secret_env`.
    pub fn new(http: reqwest::Client, url: &str, config: &McpOAuthConfig, secret: String) -> Self {
        let credentials = ClientCredentialsConfig::ClientSecret {
            client_id: config.client_id.clone(),
            client_secret: secret,
            scopes: config.scopes.clone(),
            resource: Some(url.to_owned()),
        };
        Self {
            http,
            tokens: Arc::new(Tokens {
                url: url.to_owned(),
                credentials,
                state: Mutex::new(State::default()),
                failure: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Why no token could be obtained, if the last attempt failed: a handshake that failed for
    /// this reason is reported as it, and not retried with another revision.
    pub fn token_failure(&self) -> Option<String> {
        self.tokens
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Tokens {
    /// The token to send: the current one unless it expires within [`RENEW_BEFORE`] or
    /// `rejected` is the one the server just refused.
    async fn token(&self, rejected: Option<&str>) -> Result<String, AuthError> {
        let result = self.obtain(rejected).await;
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
            result.as_ref().err().map(|e| e.to_string());
        result
    }

    async fn obtain(&self, rejected: Option<&str>) -> Result<String, AuthError> {
        let mut state = self.state.lock().await;
        if let Some((token, expires)) = &state.token {
            let fresh = expires.is_none_or(|at| Instant::now() + RENEW_BEFORE < at);
            if fresh && rejected != Some(token.as_str()) {
                return Ok(token.clone());
            }
        }
        if state.manager.is_none() {
            state.manager = Some(self.discover().await?);
        }
        let manager = state
            .manager
            .as_ref()
            .ok_or_else(|| AuthError::InternalError("no authorization manager".into()))?;
        let response = manager
            .exchange_client_credentials(&self.credentials)
            .await?;
        // The token response through its serde form: rmcp does not re-export oauth2's traits.
        let response = serde_json::to_value(&response)
            .map_err(|e| AuthError::InternalError(format!("token response: {e}")))?;
        let token = response["access_token"]
            .as_str()
            .ok_or_else(|| {
                AuthError::ClientCredentialsError("the token response has no access_token".into())
            })?
            .to_owned();
        let expires = response["expires_in"]
            .as_u64()
            .map(|secs| Instant::now() + Duration::from_secs(secs));
        tracing::debug!(url = %self.url, expires_in = ?response["expires_in"], "MCP access token obtained");
        state.token = Some((token.clone(), expires));
        Ok(token)
    }

    /// The authorization server, from the MCP server's metadata.
    async fn discover(&self) -> Result<AuthorizationManager, AuthError> {
        let mut manager = AuthorizationManager::new(self.url.as_str()).await?;
        let resolution = manager.resolve_metadata().await?;
        if !resolution.source.is_discovered() {
            return Err(AuthError::ClientCredentialsError(format!(
                "{} publishes no OAuth metadata the host can use: RFC 9728 protected-resource metadata whose `resource` is this server, naming an authorization server with RFC 8414 (or OpenID) metadata",
                self.url
            )));
        }
        manager.set_metadata(resolution.metadata);
        manager.validate_client_credentials_metadata(&self.credentials)?;
        manager.configure_client_credentials(&self.credentials)?;
        Ok(manager)
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

//! The access token of one MCP server: discovered authorization server, the grant that
//! obtains a token, and the token cached until shortly before it expires.

use super::refresh_store::{RefreshTokens, SeededStore};
use crate::config::McpOAuthConfig;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, ClientCredentialsConfig, OAuthClientConfig,
};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A token this close to expiring is replaced before use.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// How the host obtains a token.
pub enum Grant {
    /// The client credentials grant (`client_secret_env`).
    ClientCredentials(ClientCredentialsConfig),
    /// The refresh token grant from a token issued beforehand (`refresh_token_env`), with the
    /// store that keeps the rotated tokens. `variable` names where the seed came from, for
    /// the error that asks for a new one.
    Refresh {
        client: OAuthClientConfig,
        store: SeededStore,
        variable: String,
    },
}

impl Grant {
    /// The grant `config` describes for the server at `url`, with its secrets read from the
    /// environment now; `refresh_tokens` keeps what a refresh token grant rotates.
    pub fn from_config(
        config: &McpOAuthConfig,
        url: &str,
        refresh_tokens: &RefreshTokens,
    ) -> Result<Self, String> {
        let secret = match &config.client_secret_env {
            None => None,
            Some(variable) => Some(read_env(variable, "the client secret")?),
        };
        match (&config.refresh_token_env, secret) {
            (Some(variable), secret) => {
                let seed = read_env(variable, "the refresh token")?;
                // The redirect URI is never used: there is no authorization request.
                let mut client = OAuthClientConfig::new(config.client_id.clone(), url)
                    .with_scopes(config.scopes.clone());
                if let Some(secret) = secret {
                    client = client.with_client_secret(secret);
                }
                Ok(Grant::Refresh {
                    client,
                    store: refresh_tokens.seeded(seed, &config.client_id, &config.scopes),
                    variable: variable.clone(),
                })
            }
            (None, Some(secret)) => Ok(Grant::ClientCredentials(
                ClientCredentialsConfig::ClientSecret {
                    client_id: config.client_id.clone(),
                    client_secret: secret,
                    scopes: config.scopes.clone(),
                    resource: Some(url.to_owned()),
                },
            )),
            // The host config refuses an oauth section with neither.
            (None, None) => {
                Err("oauth: neither client_secret_env nor refresh_token_env is set".into())
            }
        }
    }
}

fn read_env(variable: &str, what: &str) -> Result<String, String> {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("oauth: environment variable {variable} ({what}) is not set"))
}

pub(super) struct Tokens {
    /// The MCP server's endpoint: where discovery starts, and the `resource` of every token.
    url: String,
    grant: Grant,
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

impl Tokens {
    pub(super) fn new(url: &str, grant: Grant) -> Self {
        Self {
            url: url.to_owned(),
            grant,
            state: Mutex::new(State::default()),
            failure: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The token to send: the current one unless it expires within [`RENEW_BEFORE`] or
    /// `rejected` is the one the server just refused.
    pub(super) async fn token(&self, rejected: Option<&str>) -> Result<String, AuthError> {
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
        let response = match &self.grant {
            Grant::ClientCredentials(credentials) => {
                manager.exchange_client_credentials(credentials).await?
            }
            // rmcp loads the current refresh token from the store, sends it with `resource`
            // and the granted scopes, and saves the rotated one before handing back the access
            // token.
            Grant::Refresh { variable, .. } => {
                manager.refresh_token().await.map_err(|e| match e {
                    AuthError::TokenRefreshRejected(why) => AuthError::TokenRefreshRejected(format!(
                        "{why}: the refresh token is revoked, expired or already spent; put a new one in {variable}"
                    )),
                    other => other,
                })?
            }
        };
        // The token response through its serde form: rmcp does not re-export oauth2's traits.
        let response = serde_json::to_value(&response)
            .map_err(|e| AuthError::InternalError(format!("token response: {e}")))?;
        let token = response["access_token"]
            .as_str()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                AuthError::TokenExchangeFailed("the token response has no access_token".into())
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
            return Err(AuthError::MetadataError(format!(
                "{} publishes no OAuth metadata the host can use: RFC 9728 protected-resource metadata whose `resource` is this server, naming an authorization server with RFC 8414 (or OpenID) metadata",
                self.url
            )));
        }
        manager.set_metadata(resolution.metadata);
        match &self.grant {
            Grant::ClientCredentials(credentials) => {
                manager.validate_client_credentials_metadata(credentials)?;
                manager.configure_client_credentials(credentials)?;
            }
            Grant::Refresh { client, store, .. } => {
                manager.configure_client(client.clone())?;
                manager.set_credential_store(store.clone());
            }
        }
        Ok(manager)
    }
}

//! Where the host keeps the refresh token of an MCP server it reaches with a pre-registered
//! refresh token (`[mcp.servers.NAME.oauth] refresh_token_env`).
//!
//! Authorization servers rotate refresh tokens (OAuth 2.1 §4.3.1): each refresh answers with a
//! new one and revokes the one spent. The token in the environment therefore works once; what
//! the host holds after that is the rotated token, and losing it locks the host out until an
//! operator issues a new one. So the current token is written to the host's database (tree
//! `mcp/oauth`, key = server name) and flushed before it is used, and a restart continues
//! from it. The entry remembers a digest of the token it grew from: when the operator puts a
//! new token in the environment (after a revocation, say), the host starts over from that one.
//! Without a database (`agenthost mcp-probe` on a config whose host runs), the tokens live in
//! memory for the life of the process.

use rmcp::transport::auth::{
    AuthError, CredentialRefreshGuard, CredentialStore, OAuthTokenResponse, StoredCredentials,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// The tree of the host's database holding one entry per server.
pub const TREE: &str = "mcp/oauth";

/// The refresh tokens of one server, shared by every connection the host makes to it.
#[derive(Clone)]
pub struct RefreshTokens {
    inner: Arc<Inner>,
}

struct Inner {
    tree: Option<sled::Tree>,
    /// The server's name: the entry's key.
    server: String,
    /// The current entry, once loaded or saved.
    memory: Mutex<Option<Entry>>,
    /// One refresh at a time: two refreshes with the same token would each revoke the
    /// other's result.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    /// SHA-256 (hex) of the token from the environment this entry grew from.
    seed_sha256: String,
    credentials: StoredCredentials,
}

impl RefreshTokens {
    /// The tokens of `server`, kept in `tree` (or only in memory without one).
    pub fn new(server: &str, tree: Option<sled::Tree>) -> Self {
        Self {
            inner: Arc::new(Inner {
                tree,
                server: server.to_owned(),
                memory: Mutex::new(None),
                refreshing: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    /// The credential store rmcp refreshes through, starting from `seed` (the value of
    /// `refresh_token_env`) unless a token rotated from that same seed is stored.
    pub fn seeded(&self, seed: String, client_id: &str, scopes: &[String]) -> SeededStore {
        SeededStore {
            tokens: self.clone(),
            seed_sha256: hex(&Sha256::digest(seed.as_bytes())),
            seed,
            client_id: client_id.to_owned(),
            scopes: scopes.to_vec(),
        }
    }

    fn stored(&self) -> Result<Option<Entry>, AuthError> {
        if let Some(entry) = self.inner.memory().clone() {
            return Ok(Some(entry));
        }
        let Some(tree) = &self.inner.tree else {
            return Ok(None);
        };
        let Some(bytes) = tree.get(&self.inner.server).map_err(store_error)? else {
            return Ok(None);
        };
        // An entry the host cannot read (a damaged database) is set aside for the seed: if the
        // seed is spent, the refresh fails naming the variable to put a new token in, and the
        // new token's entry replaces this one.
        let entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(server = %self.inner.server, error = %e, "the stored MCP refresh token is unreadable; starting over from the environment's");
                return Ok(None);
            }
        };
        *self.inner.memory() = Some(entry.clone());
        Ok(Some(entry))
    }

    async fn store(&self, entry: Option<Entry>) -> Result<(), AuthError> {
        if let Some(tree) = &self.inner.tree {
            match &entry {
                Some(entry) => {
                    let bytes = serde_json::to_vec(entry).map_err(|e| {
                        AuthError::CredentialStoreError(format!("cannot encode the token: {e}"))
                    })?;
                    tree.insert(&self.inner.server, bytes)
                        .map_err(store_error)?;
                }
                None => {
                    tree.remove(&self.inner.server).map_err(store_error)?;
                }
            }
            // The authorization server has already revoked the token spent: the new one
            // must be on disk before anything can crash.
            tree.flush_async().await.map_err(store_error)?;
        }
        *self.inner.memory() = entry;
        Ok(())
    }
}

impl Inner {
    fn memory(&self) -> std::sync::MutexGuard<'_, Option<Entry>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn store_error(e: sled::Error) -> AuthError {
    AuthError::CredentialStoreError(format!("the host's database: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`RefreshTokens`] seen from one connection, which knows the seed from the environment.
#[derive(Clone)]
pub struct SeededStore {
    tokens: RefreshTokens,
    seed: String,
    seed_sha256: String,
    client_id: String,
    scopes: Vec<String>,
}

impl SeededStore {
    /// Credentials holding nothing but the seed: rmcp refreshes with them.
    fn seed_credentials(&self) -> Result<StoredCredentials, AuthError> {
        let response: OAuthTokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "",
            "token_type": "Bearer",
            "refresh_token": self.seed,
        }))
        .map_err(|e| AuthError::InternalError(format!("seed credentials: {e}")))?;
        Ok(StoredCredentials::new(
            self.client_id.clone(),
            Some(response),
            self.scopes.clone(),
            None,
        ))
    }
}

#[async_trait::async_trait]
impl CredentialStore for SeededStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        match self.tokens.stored()? {
            Some(entry) if entry.seed_sha256 == self.seed_sha256 => Ok(Some(entry.credentials)),
            // Nothing stored, or grown from another seed: the environment holds a new token.
            _ => Ok(Some(self.seed_credentials()?)),
        }
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let entry = Entry {
            seed_sha256: self.seed_sha256.clone(),
            credentials,
        };
        self.tokens.store(Some(entry)).await
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.tokens.store(None).await
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let guard = self.tokens.inner.refreshing.clone().lock_owned().await;
        Ok(Some(CredentialRefreshGuard::new(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh_token(credentials: &StoredCredentials) -> String {
        let json = serde_json::to_value(credentials.token_response.as_ref().unwrap()).unwrap();
        json["refresh_token"].as_str().unwrap().to_owned()
    }

    fn rotated(store: &SeededStore, token: &str) -> StoredCredentials {
        let response: OAuthTokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "at", "token_type": "Bearer", "refresh_token": token,
        }))
        .unwrap();
        StoredCredentials::new(store.client_id.clone(), Some(response), vec![], Some(1))
    }

    #[tokio::test]
    async fn a_rotated_token_outlives_the_process_until_the_environment_names_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let tokens = RefreshTokens::new("search", Some(db.open_tree(TREE).unwrap()));
            let store = tokens.seeded("seed-1".into(), "host", &["read".into()]);
            let first = store.load().await.unwrap().unwrap();
            assert_eq!(refresh_token(&first), "seed-1");
            assert_eq!(first.granted_scopes, ["read"]);
            store.save(rotated(&store, "rotated-1")).await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let tokens = RefreshTokens::new("search", Some(db.open_tree(TREE).unwrap()));
        // After a restart, with the same (spent) seed in the environment: the rotated token.
        let same_seed = tokens.seeded("seed-1".into(), "host", &[]);
        assert_eq!(
            refresh_token(&same_seed.load().await.unwrap().unwrap()),
            "rotated-1"
        );
        // The operator issued a new token: the host starts over from it.
        let new_seed = tokens.seeded("seed-2".into(), "host", &[]);
        assert_eq!(
            refresh_token(&new_seed.load().await.unwrap().unwrap()),
            "seed-2"
        );
        // Another server's entry is its own.
        let other = RefreshTokens::new("other", Some(db.open_tree(TREE).unwrap()));
        let other = other.seeded("seed-1".into(), "host", &[]);
        assert_eq!(
            refresh_token(&other.load().await.unwrap().unwrap()),
            "seed-1"
        );
    }

    #[tokio::test]
    async fn without_a_database_tokens_are_kept_in_memory_across_connections() {
        let tokens = RefreshTokens::new("search", None);
        let store = tokens.seeded("seed".into(), "host", &[]);
        store.save(rotated(&store, "rotated")).await.unwrap();
        // A reconnection builds a new store from the same environment.
        let again = tokens.seeded("seed".into(), "host", &[]);
        assert_eq!(
            refresh_token(&again.load().await.unwrap().unwrap()),
            "rotated"
        );
        again.clear().await.unwrap();
        assert_eq!(refresh_token(&again.load().await.unwrap().unwrap()), "seed");
    }

    #[tokio::test]
    async fn an_unreadable_entry_gives_way_to_the_seed() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree(TREE).unwrap();
        tree.insert("search", b"not json".to_vec()).unwrap();
        let store = RefreshTokens::new("search", Some(tree)).seeded("seed".into(), "host", &[]);
        assert_eq!(refresh_token(&store.load().await.unwrap().unwrap()), "seed");
    }
}

//! The host's MCP client: one supervised connection per `[mcp.servers.NAME]`, shared by every
//! agent granted that server. Agents reach it only through the `mcp` import
//! (`capabilities::mcp`), which checks their grants first.

mod connection;
mod oauth;

pub use connection::{Connection, McpServer, ServerStatus, Unavailable};
pub use oauth::TOKEN_TREE;

use crate::config::McpServerConfig;
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Every configured server, by name.
#[derive(Default)]
pub struct McpServers {
    servers: BTreeMap<String, Arc<McpServer>>,
}

impl McpServers {
    /// Builds the servers and starts connecting those with `connect = "start"`; `db` keeps
    /// the OAuth refresh tokens they rotate. Must run inside the tokio runtime.
    pub fn start(
        configs: &BTreeMap<String, McpServerConfig>,
        db: &sled::Db,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Self, sled::Error> {
        let tokens = db.open_tree(oauth::TOKEN_TREE)?;
        let servers = configs
            .iter()
            .map(|(name, config)| {
                let server = McpServer::new(
                    name,
                    config.clone(),
                    Some(tokens.clone()),
                    metrics.clone(),
                    stop.clone(),
                );
                server.start_if_eager();
                (name.clone(), server)
            })
            .collect();
        Ok(Self { servers })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<McpServer>> {
        self.servers.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers.values().map(|s| s.status()).collect()
    }
}

//! The host config, `agenthost.toml`. With no file at all, every default applies.

use super::{ConfigError, parse_toml};
use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// sled data: state, bus log, compiled components. Relative to the config file.
    pub data_dir: PathBuf,
    /// Manifest globs loaded at start. Relative to the config file.
    pub agents: Vec<String>,
    /// The one HTTP listener: admin API, /metrics, /healthz.
    pub listen: SocketAddr,
    pub admin: AdminConfig,
    pub bus: BusConfig,
    pub mcp: McpConfig,
    pub runtime: RuntimeConfig,
    pub audit: AuditConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// At most this many entries are kept; the oldest go first.
    pub max_entries: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            max_entries: 1_000_000,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".agenthost"),
            agents: vec!["agents/*.toml".into()],
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: AdminConfig::default(),
            bus: BusConfig::default(),
            mcp: McpConfig::default(),
            runtime: RuntimeConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The environment variable holding the bearer token for state-changing endpoints.
    pub token_env: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_env: "AGENTHOST_ADMIN_TOKEN".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    pub kind: BusKind,
    pub kafka: KafkaConfig,
    pub local: LocalBusConfig,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// The embedded durable log in sled.
    #[default]
    Local,
    Kafka,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Passed to librdkafka as they are (SASL, TLS, timeouts …); they override the host's
    /// defaults.
    pub properties: BTreeMap<String, String>,
    /// Partitions of a topic the host creates (Kafka topics are created on first use).
    pub partitions: u32,
    /// Replication factor of a topic the host creates; -1 = the broker's default.
    pub replication_factor: i32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            properties: BTreeMap::new(),
            partitions: 4,
            replication_factor: -1,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalBusConfig {
    /// Partitions of a topic created on the local bus.
    pub partitions: u32,
    /// Records older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for LocalBusConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// One MCP server the host connects to: a stdio child process or a streamable HTTP endpoint.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub command: Option<Vec<String>>,
    pub url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The largest `limits.memory` any agent may ask for; sizes the instance pool's slots.
    pub max_memory: ByteSize,
    /// Instances that can exist at once across all agents (the pooling allocator's size).
    pub pool_instances: u32,
    /// Granularity of timeouts: how often running guests are interrupted to check deadlines.
    #[serde(with = "humantime_serde")]
    pub epoch_tick: Duration,
    /// Keep compiled components under `data_dir` so a restart does not recompile them.
    pub cache: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_memory: ByteSize::gib(1),
            pool_instances: 256,
            epoch_tick: Duration::from_millis(10),
            cache: true,
        }
    }
}

impl HostConfig {
    /// Reads a config file; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = super::read(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: HostConfig = parse_toml(path, text)?;
        config
            .validate()
            .map_err(|m| ConfigError::invalid(path, m))?;
        Ok(config.relative_to(path.parent().unwrap_or(Path::new("."))))
    }

    /// The defaults, with paths relative to `dir` (used when there is no config file).
    pub fn defaults_in(dir: &Path) -> Self {
        Self::default().relative_to(dir)
    }

    fn relative_to(mut self, dir: &Path) -> Self {
        self.data_dir = dir.join(&self.data_dir);
        self.agents = self
            .agents
            .iter()
            .map(|g| {
                if Path::new(g).is_absolute() {
                    g.clone()
                } else {
                    dir.join(g).to_string_lossy().into_owned()
                }
            })
            .collect();
        self
    }

    fn validate(&self) -> Result<(), String> {
        if self.bus.local.partitions == 0 || self.bus.local.partitions > 1024 {
            return Err("`bus.local.partitions` must be between 1 and 1024".into());
        }
        if self.runtime.pool_instances == 0 {
            return Err("`runtime.pool_instances` must be at least 1".into());
        }
        if self.runtime.max_memory < ByteSize::mib(1) {
            return Err("`runtime.max_memory` must be at least 1MiB".into());
        }
        if self.runtime.epoch_tick.is_zero() {
            return Err("`runtime.epoch_tick` must be greater than 0".into());
        }
        if self.admin.token_env.is_empty() {
            return Err("`admin.token_env` must name an environment variable".into());
        }
        for (name, server) in &self.mcp.servers {
            match (&server.command, &server.url) {
                (Some(cmd), None) if !cmd.is_empty() => {}
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {}
                (Some(_), None) => {
                    return Err(format!("`mcp.servers.{name}.command` must not be empty"));
                }
                (None, Some(url)) => {
                    return Err(format!(
                        "`mcp.servers.{name}.url`: {url:?} is not an http(s) URL"
                    ));
                }
                _ => {
                    return Err(format!(
                        "`mcp.servers.{name}` needs exactly one of `command` (stdio) or `url` (HTTP)"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses() {
        let text = r#"
data_dir = ".agenthost"
agents = ["agents/*.toml"]
listen = "127.0.0.1:8080"

[admin]
token_env = "AGENTHOST_ADMIN_TOKEN"

[bus]
kind = "local"
[bus.kafka]
brokers = "127.0.0.1:9092"
properties = { "security.protocol" = "plaintext" }

[mcp.servers.inventory]
command = ["python3", "inventory_server.py"]
[mcp.servers.search]
url = "http://127.0.0.1:8765/mcp"
"#;
        let c = HostConfig::parse(Path::new("/etc/ah/agenthost.toml"), text).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/ah/.agenthost"));
        assert_eq!(c.agents, vec!["/etc/ah/agents/*.toml".to_string()]);
        assert_eq!(c.bus.kind, BusKind::Local);
        assert_eq!(c.bus.kafka.properties["security.protocol"], "plaintext");
        assert_eq!(c.mcp.servers.len(), 2);
    }

    #[test]
    fn an_empty_file_means_every_default() {
        let c = HostConfig::parse(Path::new("dir/agenthost.toml"), "").unwrap();
        assert_eq!(c, HostConfig::defaults_in(Path::new("dir")));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let cases = [
            ("[bus]\nkind = \"rabbit\"", "kind"),
            ("listen = \"nowhere\"", "listen"),
            ("[bus.local]\npartitions = 0", "`bus.local.partitions`"),
            (
                "[mcp.servers.x]\ncommand = [\"a\"]\nurl = \"http://h\"",
                "`mcp.servers.x`",
            ),
            ("lissen = \"127.0.0.1:1\"", "lissen"),
        ];
        for (text, expected) in cases {
            let err = HostConfig::parse(Path::new("agenthost.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("agenthost.toml: "), "{err}");
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }
}

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
    /// Manifest globs deployed at start and watched for changes. Relative to the config file.
    pub agents: Vec<String>,
    /// How often the `agents` globs are checked for new or changed manifests and components;
    /// a change is deployed once it has stayed the same for one more interval. `0s`: no
    /// watching, files are read at start only.
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// The one HTTP listener: admin API, /metrics, /healthz.
    pub listen: SocketAddr,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub bus: BusConfig,
    pub mcp: McpConfig,
    pub runtime: RuntimeConfig,
    pub audit: AuditConfig,
    pub a2a: A2aConfig,
    pub telemetry: TelemetryConfig,
    /// The file this config was read from (none when the defaults apply): an agent's files
    /// grant may not reach it.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// `[telemetry]`: where the host's tracing spans go besides its log.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`); spans are sent as
    /// protobuf to `{otlp_endpoint}/v1/traces`. Absent: no export.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of the exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "agenthost".into(),
        }
    }
}

/// `[a2a]`: how agents are served over A2A and how remote agents are reached.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct A2aConfig {
    /// The base URL clients reach this host at; an agent's card advertises
    /// `{public_url}/agents/{name}`. Default: `http://{listen}`.
    pub public_url: Option<String>,
    /// Schemes an exposed agent may require (`[a2a] security = ["NAME"]` in its manifest).
    pub security: BTreeMap<String, A2aScheme>,
    /// Remote A2A agents: their cards are fetched to resolve skill ids, and their credentials
    /// are sent on calls to them.
    pub peers: Vec<A2aPeer>,
    /// Bound on one call to a remote agent (the calling invocation's timeout applies too).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Skills this host's agents reach over the bus: a request on
    /// `agent.task-requests.{skill}`, the answer on `agent.task-results.{skill}`.
    pub bus_skills: Vec<String>,
    /// Finished tasks older than this are deleted (interrupted ones are kept).
    #[serde(with = "humantime_serde")]
    pub task_retention: Duration,
    /// Finished tasks kept per agent; the oldest beyond it are deleted.
    pub max_tasks_per_agent: usize,
}

impl Default for A2aConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            security: BTreeMap::new(),
            peers: Vec::new(),
            timeout: Duration::from_secs(30),
            bus_skills: Vec::new(),
            task_retention: Duration::from_secs(7 * 24 * 3600),
            max_tasks_per_agent: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum A2aSchemeKind {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `<header>: <key>`.
    ApiKey,
}

/// One credential clients must present. The secret is read from the environment at start.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct A2aScheme {
    pub kind: A2aSchemeKind,
    /// The environment variable holding the token or key.
    pub env: String,
    /// The header of an API key (default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
}

/// A remote A2A agent.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct A2aPeer {
    /// Its base URL (the card is at `{url}/.well-known/agent-card.json`).
    pub url: String,
    /// Sent as `Authorization: Bearer <value of this variable>`.
    #[serde(default)]
    pub bearer_env: Option<String>,
    /// Sent as `<api_key_header>: <value of this variable>`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_key_header: Option<String>,
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
            watch_interval: Duration::from_secs(1),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            bus: BusConfig::default(),
            mcp: McpConfig::default(),
            runtime: RuntimeConfig::default(),
            audit: AuditConfig::default(),
            a2a: A2aConfig::default(),
            telemetry: TelemetryConfig::default(),
            config_file: None,
        }
    }
}

/// `[http]`: the bounds of the HTTP listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Connections served at once; more wait until one closes.
    pub max_connections: u32,
    /// How long a client may take to send a request's headers (also the first bytes of the
    /// next request on a kept-alive connection) before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The environment variable holding the bearer token of `/v1` (unset: one is generated
    /// into `data_dir/admin-token`).
    pub token_env: String,
    /// Whether `/metrics` answers without the token (for a Prometheus scraper on a trusted
    /// network); `false` requires it there too.
    pub metrics_public: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_env: "AGENTHOST_ADMIN_TOKEN".into(),
            metrics_public: true,
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
    /// Passed to every librdkafka client as they are (SASL, TLS, timeouts …); they override
    /// the host's defaults.
    pub properties: BTreeMap<String, String>,
    /// Passed to the producers only (`linger.ms`, `compression.type` …), over `properties`:
    /// librdkafka warns about a producer property given to a consumer, and the other way round.
    pub producer: BTreeMap<String, String>,
    /// Passed to the consumers only (`fetch.wait.max.ms`, `session.timeout.ms` …), over
    /// `properties`.
    pub consumer: BTreeMap<String, String>,
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
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
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
/// One connection per server is shared by every agent granted it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Program and arguments of a stdio server; the host supervises it and restarts it with
    /// backoff when it exits.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Endpoint of a streamable HTTP server.
    #[serde(default)]
    pub url: Option<String>,
    /// Working directory of a stdio server, relative to the config file (default: its
    /// directory).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Variables set for a stdio server. It starts with a clean environment: PATH, HOME, USER,
    /// LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ and TMPDIR from the host, then `inherit_env`, then
    /// these.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host environment variables a stdio server also gets, by name (an API key the server
    /// needs); nothing else of the host's environment reaches it.
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// HTTP headers whose values come from the host's environment: header name → variable
    /// name, e.g. `{ Authorization = "INVENTORY_AUTH" }`. Secrets stay out of the file.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// `start`: connect when the host starts; `lazy`: on the first call.
    #[serde(default)]
    pub connect: McpConnect,
    /// OAuth for a streamable HTTP server behind an authorization server.
    #[serde(default)]
    pub oauth: Option<McpOAuthConfig>,
    /// `auto` tries the 2026-07-28 revision and falls back to 2025-11-25; a revision pins it.
    #[serde(default)]
    pub protocol: McpProtocol,
    /// Bound on establishing a connection (spawn or TCP, and the handshake).
    #[serde(default = "default_mcp_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// `[mcp.servers.NAME.oauth]`: the client credentials grant, or a pre-registered refresh
/// token the host rotates (docs/mcp.md, "Servers behind OAuth"). Secrets stay out of the file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct McpOAuthConfig {
    /// The client id the authorization server registered for this host.
    pub client_id: String,
    /// The environment variable holding the client secret; required for the client
    /// credentials grant, optional with a refresh token (a public client).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The environment variable holding a refresh token issued to this client beforehand:
    /// the host then uses the refresh token grant instead of client credentials, keeping the
    /// tokens the authorization server rotates in its data_dir.
    #[serde(default)]
    pub refresh_token_env: Option<String>,
    /// Scopes to ask for; empty: whatever the authorization server grants by default.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A grant the host can run: client credentials need a secret; a refresh token may come
/// without one (a public client). Variable names, when given, are not empty.
fn check_oauth(name: &str, oauth: &McpOAuthConfig) -> Result<(), String> {
    let section = format!("`mcp.servers.{name}.oauth`");
    if oauth.client_id.is_empty() {
        return Err(format!("{section} needs `client_id`"));
    }
    for (key, variable) in [
        ("client_secret_env", &oauth.client_secret_env),
        ("refresh_token_env", &oauth.refresh_token_env),
    ] {
        if variable.as_deref() == Some("") {
            return Err(format!(
                "{section}: `{key}` names an environment variable and cannot be empty"
            ));
        }
    }
    if oauth.client_secret_env.is_none() && oauth.refresh_token_env.is_none() {
        return Err(format!(
            "{section} needs `client_secret_env` (the variable holding the secret, for the client credentials grant) or `refresh_token_env` (a refresh token issued beforehand)"
        ));
    }
    Ok(())
}

fn default_mcp_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum McpConnect {
    #[default]
    Start,
    Lazy,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum McpProtocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "2026-07-28")]
    V2026_07_28,
    #[serde(rename = "2025-11-25")]
    V2025_11_25,
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
    /// The wasm call stack every instance gets. Host-wide because wasmtime fixes it per engine;
    /// runaway recursion traps when it is used up ("wasm stack exhausted").
    pub max_wasm_stack: ByteSize,
    /// Meter fuel, so agents can set `limits.fuel`. Off saves the metering cost on every
    /// instruction (see the sandbox rows of the S1 benchmark); a manifest asking for fuel is
    /// then refused at deploy.
    pub fuel: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_memory: ByteSize::gib(1),
            pool_instances: 256,
            epoch_tick: Duration::from_millis(10),
            cache: true,
            max_wasm_stack: ByteSize::kib(512),
            fuel: true,
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
        let mut config: HostConfig = parse_toml(path, text)?;
        config
            .validate()
            .map_err(|m| ConfigError::invalid(path, m))?;
        config.config_file = Some(path.to_owned());
        Ok(config.relative_to(path.parent().unwrap_or(Path::new("."))))
    }

    /// The defaults, with paths relative to `dir` (used when there is no config file).
    pub fn defaults_in(dir: &Path) -> Self {
        Self::default().relative_to(dir)
    }

    fn relative_to(mut self, dir: &Path) -> Self {
        self.data_dir = dir.join(&self.data_dir);
        // A bare file name has an empty parent; a child process needs a real directory.
        let base = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        for server in self.mcp.servers.values_mut() {
            if server.command.is_some() {
                server.cwd = Some(match &server.cwd {
                    Some(cwd) => base.join(cwd),
                    None => base.to_path_buf(),
                });
            }
        }
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
        if !self.watch_interval.is_zero() && self.watch_interval < Duration::from_millis(100) {
            return Err("`watch_interval` must be 0s (off) or at least 100ms".into());
        }
        if self.bus.local.partitions == 0 || self.bus.local.partitions > 1024 {
            return Err("`bus.local.partitions` must be between 1 and 1024".into());
        }
        if self.runtime.pool_instances == 0 {
            return Err("`runtime.pool_instances` must be at least 1".into());
        }
        if self.runtime.max_memory < ByteSize::mib(1) {
            return Err("`runtime.max_memory` must be at least 1MiB".into());
        }
        // wasmtime needs room for the host's own frames below the guest's on the same stack.
        if self.runtime.max_wasm_stack < ByteSize::kib(64)
            || self.runtime.max_wasm_stack > ByteSize::mib(16)
        {
            return Err(format!(
                "`runtime.max_wasm_stack` is {}; it must be between 64KiB and 16MiB",
                self.runtime.max_wasm_stack
            ));
        }
        if self.runtime.epoch_tick.is_zero() {
            return Err("`runtime.epoch_tick` must be greater than 0".into());
        }
        if self.http.max_connections == 0 {
            return Err("`http.max_connections` must be at least 1".into());
        }
        if self.http.header_timeout < Duration::from_millis(100) {
            return Err("`http.header_timeout` must be at least 100ms".into());
        }
        if self.admin.token_env.is_empty() {
            return Err("`admin.token_env` must name an environment variable".into());
        }
        self.validate_a2a()?;
        if let Some(url) = &self.telemetry.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "`telemetry.otlp_endpoint`: {url:?} is not an http(s) URL (OTLP/HTTP, e.g. \"http://127.0.0.1:4318\")"
            ));
        }
        for (name, server) in &self.mcp.servers {
            let valid_name = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(format!(
                    "`mcp.servers.{name}`: a server name is 1-63 characters of [A-Za-z0-9_-]"
                ));
            }
            if server.connect_timeout.is_zero() {
                return Err(format!(
                    "`mcp.servers.{name}.connect_timeout` must be greater than 0"
                ));
            }
            match (&server.command, &server.url) {
                (Some(cmd), None) if !cmd.is_empty() => {
                    if !server.headers_env.is_empty() {
                        return Err(format!(
                            "`mcp.servers.{name}.headers_env` applies to HTTP servers (`url`), not to `command`"
                        ));
                    }
                    if server.oauth.is_some() {
                        return Err(format!(
                            "`mcp.servers.{name}.oauth` applies to HTTP servers (`url`), not to `command`"
                        ));
                    }
                }
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                    if server.cwd.is_some() || !server.env.is_empty() {
                        return Err(format!(
                            "`mcp.servers.{name}`: `cwd` and `env` apply to stdio servers (`command`), not to `url`"
                        ));
                    }
                    for header in server.headers_env.keys() {
                        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                            return Err(format!(
                                "`mcp.servers.{name}.headers_env`: {header:?} is not a valid HTTP header name"
                            ));
                        }
                        if server.oauth.is_some() && header.eq_ignore_ascii_case("authorization") {
                            return Err(format!(
                                "`mcp.servers.{name}`: `headers_env` sets Authorization, which `oauth` owns"
                            ));
                        }
                    }
                    if let Some(oauth) = &server.oauth {
                        check_oauth(name, oauth)?;
                    }
                }
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

impl HostConfig {
    fn validate_a2a(&self) -> Result<(), String> {
        let a2a = &self.a2a;
        if let Some(url) = &a2a.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("`a2a.public_url`: {url:?} is not an http(s) URL"));
        }
        if a2a.timeout.is_zero() {
            return Err("`a2a.timeout` must be greater than 0".into());
        }
        for (i, skill) in a2a.bus_skills.iter().enumerate() {
            super::check_skill(skill).map_err(|e| format!("`a2a.bus_skills[{i}]`: {e}"))?;
        }
        for (name, scheme) in &a2a.security {
            if scheme.env.is_empty() {
                return Err(format!(
                    "`a2a.security.{name}.env` must name an environment variable"
                ));
            }
            if let Some(header) = &scheme.header {
                if scheme.kind != A2aSchemeKind::ApiKey {
                    return Err(format!(
                        "`a2a.security.{name}.header` applies to kind = \"api-key\" only"
                    ));
                }
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(format!(
                        "`a2a.security.{name}.header`: {header:?} is not a valid HTTP header name"
                    ));
                }
            }
        }
        for (i, peer) in a2a.peers.iter().enumerate() {
            if !(peer.url.starts_with("http://") || peer.url.starts_with("https://")) {
                return Err(format!(
                    "`a2a.peers[{i}].url`: {:?} is not an http(s) URL",
                    peer.url
                ));
            }
            if peer.bearer_env.is_some() && peer.api_key_env.is_some() {
                return Err(format!(
                    "`a2a.peers[{i}]`: set `bearer_env` or `api_key_env`, not both"
                ));
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
    fn mcp_server_options_parse_and_stdio_paths_are_relative_to_the_file() {
        let text = r#"
[mcp.servers.inventory]
command = ["python3", "inventory_server.py"]
cwd = "servers"
env = { LOG_LEVEL = "debug" }
connect = "lazy"
protocol = "2025-11-25"
connect_timeout = "3s"
[mcp.servers.search]
url = "https://search.example/mcp"
headers_env = { Authorization = "SEARCH_AUTH" }
"#;
        let c = HostConfig::parse(Path::new("/etc/ah/agenthost.toml"), text).unwrap();
        let inventory = &c.mcp.servers["inventory"];
        assert_eq!(inventory.cwd.as_deref(), Some(Path::new("/etc/ah/servers")));
        assert_eq!(inventory.connect, McpConnect::Lazy);
        assert_eq!(inventory.protocol, McpProtocol::V2025_11_25);
        assert_eq!(inventory.connect_timeout, Duration::from_secs(3));
        let search = &c.mcp.servers["search"];
        assert_eq!(search.connect, McpConnect::Start);
        assert_eq!(search.protocol, McpProtocol::Auto);
        assert_eq!(search.cwd, None);
        assert_eq!(search.headers_env["Authorization"], "SEARCH_AUTH");
    }

    #[test]
    fn oauth_is_for_http_servers_and_owns_authorization() {
        let p = Path::new("agenthost.toml");
        let ok = HostConfig::parse(
            p,
            "[mcp.servers.search]\nurl = \"https://search.example/mcp\"\n[mcp.servers.search.oauth]\nclient_id = \"host\"\nclient_secret_env = \"SEARCH_SECRET\"\nscopes = [\"search\"]\n",
        )
        .unwrap();
        let oauth = ok.mcp.servers["search"].oauth.as_ref().unwrap();
        assert_eq!((oauth.client_id.as_str(), oauth.scopes.len()), ("host", 1));
        let err = |text: &str| HostConfig::parse(p, text).unwrap_err().to_string();
        assert!(
            err("[mcp.servers.s]\ncommand = [\"x\"]\n[mcp.servers.s.oauth]\nclient_id = \"h\"\nclient_secret_env = \"S\"\n")
                .contains("`mcp.servers.s.oauth` applies to HTTP servers")
        );
        assert!(
            err("[mcp.servers.s]\nurl = \"http://a/mcp\"\nheaders_env = { authorization = \"A\" }\n[mcp.servers.s.oauth]\nclient_id = \"h\"\nclient_secret_env = \"S\"\n")
                .contains("sets Authorization, which `oauth` owns")
        );
        assert!(
            err("[mcp.servers.s]\nurl = \"http://a/mcp\"\n[mcp.servers.s.oauth]\nclient_id = \"h\"\nclient_secret_env = \"\"\n")
                .contains("`client_secret_env` names an environment variable and cannot be empty")
        );
        assert!(
            err("[mcp.servers.s]\nurl = \"http://a/mcp\"\n[mcp.servers.s.oauth]\nclient_id = \"h\"\n")
                .contains("needs `client_secret_env` (the variable holding the secret, for the client credentials grant) or `refresh_token_env`")
        );
        // A public client with a refresh token issued beforehand.
        let public = HostConfig::parse(
            p,
            "[mcp.servers.s]\nurl = \"http://a/mcp\"\n[mcp.servers.s.oauth]\nclient_id = \"h\"\nrefresh_token_env = \"S_REFRESH\"\n",
        )
        .unwrap();
        let oauth = public.mcp.servers["s"].oauth.as_ref().unwrap();
        assert_eq!(
            (
                oauth.client_secret_env.as_deref(),
                oauth.refresh_token_env.as_deref()
            ),
            (None, Some("S_REFRESH"))
        );
    }
    #[test]
    fn an_empty_file_means_every_default() {
        let c = HostConfig::parse(Path::new("dir/agenthost.toml"), "").unwrap();
        assert_eq!(
            c,
            HostConfig {
                config_file: Some("dir/agenthost.toml".into()),
                ..HostConfig::defaults_in(Path::new("dir"))
            }
        );
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
            (
                "[mcp.servers.x]\nurl = \"http://h\"\nheaders_env = { \"Bad Header\" = \"V\" }",
                "not a valid HTTP header name",
            ),
            (
                "[mcp.servers.x]\ncommand = [\"a\"]\nheaders_env = { Authorization = \"V\" }",
                "`mcp.servers.x.headers_env` applies to HTTP servers",
            ),
            (
                "[mcp.servers.x]\nurl = \"http://h\"\nenv = { A = \"1\" }",
                "apply to stdio servers",
            ),
            (
                "[mcp.servers.x]\ncommand = [\"a\"]\nprotocol = \"2024-01-01\"",
                "protocol",
            ),
            ("[mcp.servers.\"a b\"]\ncommand = [\"a\"]", "[A-Za-z0-9_-]"),
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

//! The agent manifest, `agents/<name>.toml`: who the agent is, what it subscribes to, how its
//! events are delivered, its resource limits, and every capability it is granted. The
//! `[capabilities]` sections are the capabilities' own ([`Capabilities`]); this module holds the
//! rest, and sits above the capabilities so that each can own its section.

pub mod diff;

pub use crate::capabilities::Capabilities;
pub use crate::config::AgentName;

use crate::capabilities::GrantRequest;
use crate::capabilities::publish::PublishLimits;
use crate::config::{ConfigError, parse_toml};
use bytesize::ByteSize;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: AgentName,
    pub version: semver::Version,
    /// Relative to the manifest's directory; resolved by [`Manifest::load`].
    pub component: PathBuf,
    /// `component` as the manifest wrote it, for messages.
    #[serde(skip)]
    pub component_as_written: PathBuf,
    /// `sha256:<hex>`; when present, deploy refuses a component whose digest differs.
    #[serde(default, deserialize_with = "digest")]
    pub digest: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub subscribe: Vec<SubscribeEntry>,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub a2a: A2aSection,
    /// Serving the agent's skills as MCP tools (issue #26, work in progress).
    #[serde(default)]
    pub mcp: McpSection,
    #[serde(default)]
    pub rollout: Rollout,
    /// The text it was parsed from, kept for the deployment history (rollback deploys it again).
    #[serde(skip)]
    pub text: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscribeEntry {
    pub topic: String,
    /// Consumer group; defaults to the agent's name.
    pub group: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Attempts per event before it is dead-lettered (1 = no retry).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Upper bound of the backoff.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Where an event goes after its last failed attempt. Absent: the agent's own
    /// [`default_dead_letter`] topic, which only it writes. Any other topic must be covered by
    /// `capabilities.publish`: a dead letter is a publish of the event's payload.
    pub dead_letter: String,
    /// Invocations in flight at once across the subscription's partitions.
    pub concurrency: u32,
    /// Which records of a partition are handled one after another: those of one key (the
    /// default) or all of them.
    pub ordering: Ordering,
    /// At-least-once (the default, on every bus) or exactly-once (Kafka transactions).
    pub mode: DeliveryMode,
    /// Records of a partition per invocation, for a component that exports `on-events` (1: one
    /// `on-event` call per record). A batch holds at most one record per key, and runs within
    /// one `limits.timeout`.
    pub batch: u32,
}

/// The dead-letter topic of an agent whose manifest names none: one per agent, so a subscriber
/// of one agent's failures does not read every other agent's failed payloads.
pub fn default_dead_letter(agent: &AgentName) -> String {
    format!("agent.dead-letter.{agent}.v1")
}

/// The largest `delivery.batch`.
pub const MAX_BATCH: u32 = 1024;

/// The order a partition's records are handled in. Either way a record's offset is committed
/// only when it and every record before it in the partition are finished.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Ordering {
    /// Records with the same key (records without a key count as one key) are handled one at
    /// a time in offset order; records of different keys in one partition run concurrently.
    /// This is the order Kafka producers rely on: the key picks the partition.
    #[default]
    Key,
    /// Every record of a partition is handled after the one before it has finished.
    Partition,
}

impl Ordering {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Partition => "partition",
        }
    }
}

/// How a subscription's offsets relate to what the agent published while handling a record.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// The offset is committed after the record's publishes are acknowledged: a crash may
    /// replay what was in flight, so downstream may see a record's outputs twice.
    #[default]
    AtLeastOnce,
    /// The record's publishes (dead letter included) and its offset commit form one Kafka
    /// transaction: read-committed consumers see each record's outputs exactly once. Needs a
    /// broker with transactions; deploy refuses the agent otherwise.
    ExactlyOnce,
}

impl DeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at-least-once",
            Self::ExactlyOnce => "exactly-once",
        }
    }
}

/// `[rollout]`: how this version replaces a running one.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rollout {
    /// Percent of events (by key) the new version handles while the running one keeps the
    /// rest, until `agenthost promote`; 0 swaps at once.
    pub canary: u8,
    /// The failure rates of the canary and the running version are compared over this window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The canary is rolled back when its failure rate exceeds the running version's by more
    /// than this (0.05 = five percentage points).
    pub margin: f64,
    /// Canary invocations in the window before it is judged.
    pub min_invocations: u32,
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            canary: 0,
            window: Duration::from_secs(60),
            margin: 0.05,
            min_invocations: 20,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            // Resolved to the agent's own topic by `Manifest::parse`, which knows the name.
            dead_letter: String::new(),
            concurrency: 8,
            ordering: Ordering::Key,
            mode: DeliveryMode::AtLeastOnce,
            batch: 1,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap per instance.
    pub memory: ByteSize,
    /// Wall clock per invocation, host calls included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Instruction budget per invocation; 0 = unlimited.
    pub fuel: u64,
    /// Concurrent instances of this agent.
    pub instances: u32,
    /// Keep instances between invocations instead of a fresh one per event: an order of
    /// magnitude cheaper per event (see the S1 benchmark), but an instance's memory (globals,
    /// heap) then persists across the events it serves. An instance that trapped, timed out or
    /// hit a limit is always discarded.
    pub reuse_instances: bool,
    /// The largest record the agent may publish: key, payload and headers together.
    pub publish_size: ByteSize,
    /// Log lines (the `log` import and stdout/stderr) per second across the agent's instances;
    /// lines beyond it are dropped and counted.
    pub log_rate: u32,
    /// Records one invocation may publish; a publish beyond it is denied, so an agent stuck in
    /// a publishing loop fails its event instead of flooding the bus until its timeout.
    pub publishes: u32,
    /// Elements of each wasm table (function-pointer tables grow with indirect calls).
    pub table_elements: u32,
    /// Distinct topics the agent may publish to through wildcard patterns of
    /// `capabilities.publish` (`agent.task-results.*`): each new one creates a topic on the bus,
    /// so a wildcard grant must not let an agent create topics without end. Counted across
    /// versions and restarts; topics named exactly in the grant do not count.
    pub topics: u32,
}

/// A component's tables start with its indirect-call targets; fewer than this cannot run one.
pub const MIN_TABLE_ELEMENTS: u32 = 16;
/// The pooling allocator's table slot size: no agent can have more.
pub const MAX_TABLE_ELEMENTS: u32 = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: ByteSize::mib(64),
            timeout: Duration::from_secs(5),
            fuel: 0,
            instances: 16,
            reuse_instances: false,
            publish_size: ByteSize::mib(1),
            log_rate: 100,
            publishes: 1_000,
            table_elements: 10_000,
            topics: 100,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct A2aSection {
    /// Serve this agent's card and JSON-RPC endpoint.
    pub expose: bool,
    /// Names of the host's `[a2a.security.NAME]` schemes a client must satisfy (any one of
    /// them). An exposed agent must say: `security = []` serves anyone, and has to be written
    /// out (see [`A2aSection::schemes`]).
    pub security: Option<Vec<String>>,
    /// Skills (ids from the agent's card) it also serves over the bus, as a worker in the
    /// consumer group shared by every host serving them.
    pub bus_skills: Vec<String>,
}

impl A2aSection {
    /// The schemes a client must satisfy one of; empty: none.
    pub fn schemes(&self) -> &[String] {
        self.security.as_deref().unwrap_or_default()
    }
}

/// `[mcp]`: whether the host serves this agent's card skills as MCP tools (at `/mcp` and
/// `/agents/{name}/mcp`), and to whom.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    pub expose: bool,
    /// Names of the host's `[a2a.security.NAME]` schemes a caller must satisfy (any one of
    /// them). An exposed agent must say: `security = []` serves anyone, and has to be written
    /// out.
    pub security: Option<Vec<String>>,
    /// How its tools are named.
    pub tool_names: ToolNames,
}

/// `[mcp] tool_names`: how an exposed agent's skills are named as MCP tools.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ToolNames {
    /// `<agent>.<skill>` (a skill id that already starts with `<agent>.` as it is): unique on
    /// the host's shared `/mcp` endpoint by construction.
    #[default]
    #[serde(rename = "prefixed")]
    Prefixed,
    /// The card's skill ids as they are (`search_orders`), for clients that expect given
    /// names; a name another exposed agent already serves is refused at deploy.
    #[serde(rename = "skill-id")]
    SkillId,
}

impl ToolNames {
    /// As the manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefixed => "prefixed",
            Self::SkillId => "skill-id",
        }
    }
}

impl McpSection {
    /// The schemes a caller must satisfy one of; empty: none.
    pub fn schemes(&self) -> &[String] {
        self.security.as_deref().unwrap_or_default()
    }

    fn validate(&self) -> Result<(), String> {
        if self.expose && self.security.is_none() {
            return Err("`mcp.expose = true` needs `mcp.security`: name the host's schemes a caller must satisfy (`security = [\"team\"]`), or write `security = []` to serve anyone".into());
        }
        Ok(())
    }
}

fn digest<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    let hex = text.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(format!("sha256:{}", hex.to_ascii_lowercase())))
    } else {
        Err(serde::de::Error::custom(format!(
            "digest {text:?} is invalid: expected \"sha256:\" followed by 64 hex digits"
        )))
    }
}

impl Manifest {
    /// Reads, parses and validates a manifest; the component and file paths come back resolved
    /// against the manifest's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::config::read(path)?;
        Self::parse(path, &text)
    }

    /// Parses manifest text as if it were read from `path` (used for messages and to resolve
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut manifest: Manifest = parse_toml(path, text)?;
        manifest.text = text.to_owned();
        if manifest.delivery.dead_letter.is_empty() {
            manifest.delivery.dead_letter = default_dead_letter(&manifest.name);
        }
        manifest
            .validate()
            .map_err(|message| ConfigError::invalid(path, message))?;
        let base = path.parent().unwrap_or(Path::new("."));
        manifest.component_as_written = manifest.component.clone();
        manifest.component = base.join(&manifest.component);
        for grant in &mut manifest.capabilities.files {
            grant.path = base.join(&grant.path);
        }
        Ok(manifest)
    }

    /// The bytes of the component, for the manifest read from `path`. An error names the
    /// manifest, its `component` key, and where a relative path starts.
    pub fn read_component(&self, path: &Path) -> Result<Vec<u8>, ConfigError> {
        std::fs::read(&self.component).map_err(|error| {
            let relative = if self.component_as_written.is_relative() {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                format!(
                    " (a relative path starts at the manifest's directory, {})",
                    dir.unwrap_or(Path::new(".")).display()
                )
            } else {
                String::new()
            };
            ConfigError::invalid(
                path,
                format!(
                    "`component` = {:?}: cannot read {}: {error}{relative}",
                    self.component_as_written.display().to_string(),
                    self.component.display()
                ),
            )
        })
    }

    /// What the agent's grants are built from.
    pub fn grant_request(&self) -> GrantRequest<'_> {
        GrantRequest {
            agent: self.name.as_str(),
            capabilities: &self.capabilities,
            publish: PublishLimits {
                max_size: self.limits.publish_size.as_u64(),
                max_count: self.limits.publishes,
                wildcard_topics: self.limits.topics,
            },
            log_rate: self.limits.log_rate,
        }
    }

    /// The consumer group of a subscription: its `group`, or the agent's name.
    pub fn group_of<'a>(&'a self, entry: &'a SubscribeEntry) -> &'a str {
        entry.group.as_deref().unwrap_or(self.name.as_str())
    }

    /// Cross-field and range checks serde cannot express, section by section; the message
    /// names the key.
    fn validate(&self) -> Result<(), String> {
        self.validate_subscriptions()?;
        self.rollout.validate()?;
        self.validate_delivery()?;
        self.limits.validate()?;
        self.capabilities.validate()?;
        self.a2a.validate()?;
        self.mcp.validate()
    }

    fn validate_subscriptions(&self) -> Result<(), String> {
        for (i, entry) in self.subscribe.iter().enumerate() {
            topic(&format!("subscribe[{i}].topic"), &entry.topic)?;
            if let Some(group) = &entry.group
                && (group.is_empty()
                    || group.len() > 249
                    || group.chars().any(|c| c.is_control() || c == '/'))
            {
                return Err(format!(
                    "`subscribe[{i}].group`: {group:?} is invalid: expected 1-249 characters without '/' or control characters"
                ));
            }
            if entry
                .group
                .as_deref()
                .unwrap_or_default()
                .starts_with("agenthost.a2a.")
            {
                return Err(format!(
                    "`subscribe[{i}].group`: groups named agenthost.a2a.* belong to skills served over the bus (`a2a.bus_skills`)"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, entry) in self.subscribe.iter().enumerate() {
            if !seen.insert((&entry.topic, self.group_of(entry))) {
                return Err(format!(
                    "`subscribe[{i}]`: topic {:?} is subscribed twice in group {:?}",
                    entry.topic,
                    self.group_of(entry)
                ));
            }
        }
        Ok(())
    }

    /// `[delivery]`, which is checked against the subscriptions and `capabilities.publish`.
    fn validate_delivery(&self) -> Result<(), String> {
        let d = &self.delivery;
        topic("delivery.dead_letter", &d.dead_letter)?;
        if d.dead_letter != default_dead_letter(&self.name)
            && !self
                .capabilities
                .publish
                .iter()
                .any(|p| p.matches(&d.dead_letter))
        {
            return Err(format!(
                "`delivery.dead_letter`: {:?} is not covered by `capabilities.publish`; a dead letter publishes the failed event there, so grant it in `capabilities.publish`, or omit `dead_letter` to use the agent's own {:?}",
                d.dead_letter,
                default_dead_letter(&self.name)
            ));
        }
        if d.max_attempts == 0 {
            return Err("`delivery.max_attempts` must be at least 1".into());
        }
        if d.concurrency == 0 {
            return Err("`delivery.concurrency` must be at least 1".into());
        }
        if !(1..=MAX_BATCH).contains(&d.batch) {
            return Err(format!(
                "`delivery.batch` must be between 1 and {MAX_BATCH}, not {}",
                d.batch
            ));
        }
        if d.batch > 1 && d.mode == DeliveryMode::ExactlyOnce {
            return Err("`delivery.batch` above 1 is for at-least-once delivery: exactly-once commits each record in a transaction of its own".into());
        }
        if d.max_backoff < d.backoff {
            return Err(
                "`delivery.max_backoff` must not be smaller than `delivery.backoff`".into(),
            );
        }
        if self.subscribe.iter().any(|s| s.topic == d.dead_letter) {
            return Err(format!(
                "`delivery.dead_letter`: {:?} is also subscribed; a failing event would loop forever",
                d.dead_letter
            ));
        }
        Ok(())
    }
}

/// A topic name, checked with the key it came from.
fn topic(key: &str, name: &str) -> Result<(), String> {
    crate::config::validate_topic(name).map_err(|e| format!("`{key}`: {e}"))
}

impl Rollout {
    fn validate(&self) -> Result<(), String> {
        let r = self;
        if r.canary > 100 {
            return Err("`rollout.canary` is a percentage: 0 to 100".into());
        }
        if !(0.0..=1.0).contains(&r.margin) {
            return Err("`rollout.margin` is a fraction of invocations: 0.0 to 1.0".into());
        }
        if r.window < Duration::from_secs(1) {
            return Err("`rollout.window` must be at least 1s".into());
        }
        if r.min_invocations == 0 {
            return Err("`rollout.min_invocations` must be at least 1".into());
        }
        Ok(())
    }
}

impl Limits {
    fn validate(&self) -> Result<(), String> {
        let l = self;
        if l.memory < ByteSize::mib(1) {
            return Err(format!(
                "`limits.memory` is {}; at least 1MiB is needed to run a component",
                l.memory
            ));
        }
        if l.timeout.is_zero() {
            return Err("`limits.timeout` must be greater than 0".into());
        }
        if l.instances == 0 {
            return Err("`limits.instances` must be at least 1".into());
        }
        if l.publish_size.as_u64() == 0 {
            return Err("`limits.publish_size` must be greater than 0".into());
        }
        if l.publishes == 0 {
            return Err("`limits.publishes` must be at least 1".into());
        }
        if !(MIN_TABLE_ELEMENTS..=MAX_TABLE_ELEMENTS).contains(&l.table_elements) {
            return Err(format!(
                "`limits.table_elements` is {}; it must be between {MIN_TABLE_ELEMENTS} and {MAX_TABLE_ELEMENTS}",
                l.table_elements
            ));
        }
        Ok(())
    }
}

impl A2aSection {
    fn validate(&self) -> Result<(), String> {
        if self.expose && self.security.is_none() {
            return Err("`a2a.expose = true` needs `a2a.security`: name the host's schemes a client must satisfy (`security = [\"team\"]`), or write `security = []` to serve anyone".into());
        }
        for (i, skill) in self.bus_skills.iter().enumerate() {
            crate::config::check_skill(skill).map_err(|e| format!("`a2a.bus_skills[{i}]`: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name = "price-analysis"
version = "1.2.0"
component = "price_analysis.wasm"
digest = "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
description = "decides price changes"

[[subscribe]]
topic = "ecommerce.price-changed.v1"
group = "price-analysis"

[delivery]
max_attempts = 3
backoff = "200ms"
dead_letter = "agent.dead-letter.price-analysis.v1"
concurrency = 8

[limits]
memory = "64MiB"
timeout = "5s"
fuel = 0
instances = 16

[capabilities]
publish = ["ecommerce.order-updated.v1", "agent.task-results.*"]
state = "16MiB"
http = ["http://127.0.0.1:8099"]
files = [{ path = "data", mount = "/data", access = "read" }]
env = ["LOG_LEVEL"]
config = { threshold = "0.05" }
mcp = [{ server = "inventory", tools = ["get_inventory"] }]
a2a = ["order-update"]

[a2a]
expose = true
security = []
"#;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("agents/x.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_design_example_parses_in_full() {
        let m = parse(FULL).unwrap();
        assert_eq!(m.name.as_str(), "price-analysis");
        assert_eq!(m.version, semver::Version::new(1, 2, 0));
        assert_eq!(m.component, Path::new("agents/price_analysis.wasm"));
        assert_eq!(
            m.digest.as_deref().map(|d| &d[..14]),
            Some("sha256:0123456")
        );
        assert_eq!(m.delivery.backoff, Duration::from_millis(200));
        assert_eq!(m.limits.memory, ByteSize::mib(64));
        assert_eq!(m.capabilities.state, Some(ByteSize::mib(16)));
        assert_eq!(m.capabilities.files[0].path, Path::new("agents/data"));
        assert_eq!(
            m.capabilities.files[0].access,
            crate::capabilities::files::FileAccess::Read
        );
        assert_eq!(m.capabilities.config["threshold"], "0.05");
        assert!(m.a2a.expose);
        assert_eq!(m.group_of(&m.subscribe[0]), "price-analysis");
    }

    #[test]
    fn defaults_deny_everything() {
        let m = parse("name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"").unwrap();
        assert_eq!(m.capabilities, Capabilities::default());
        assert!(m.capabilities.publish.is_empty() && m.capabilities.state.is_none());
        assert_eq!(
            m.delivery,
            Delivery {
                dead_letter: "agent.dead-letter.a.v1".into(),
                ..Delivery::default()
            }
        );
        assert!(!m.a2a.expose);
    }

    #[test]
    fn delivery_mode_is_at_least_once_unless_exactly_once_is_asked_for() {
        let base = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n[delivery]\n";
        let m = parse(&format!("{base}mode = \"exactly-once\"")).unwrap();
        assert_eq!(m.delivery.mode, DeliveryMode::ExactlyOnce);
        let m = parse(&format!("{base}mode = \"at-least-once\"")).unwrap();
        assert_eq!(m.delivery.mode, DeliveryMode::AtLeastOnce);
        let err = parse(&format!("{base}mode = \"at-most-once\"")).unwrap_err();
        assert!(err.contains("exactly-once"), "{err}");
    }

    #[test]
    fn rollout_values_are_checked() {
        let base = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n[rollout]\n";
        let m = parse(&format!(
            "{base}canary = 10\nwindow = \"30s\"\nmargin = 0.1"
        ))
        .unwrap();
        assert_eq!(m.rollout.canary, 10);
        assert_eq!(m.rollout.window, Duration::from_secs(30));
        for (bad, key) in [
            ("canary = 101", "rollout.canary"),
            ("margin = 1.5", "rollout.margin"),
            ("window = \"10ms\"", "rollout.window"),
            ("min_invocations = 0", "rollout.min_invocations"),
        ] {
            let err = parse(&format!("{base}{bad}")).unwrap_err();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn ordering_is_per_key_unless_per_partition_is_asked_for() {
        let base = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n[delivery]\n";
        assert_eq!(parse(base).unwrap().delivery.ordering, Ordering::Key);
        let m = parse(&format!("{base}ordering = \"partition\"")).unwrap();
        assert_eq!(m.delivery.ordering, Ordering::Partition);
        let err = parse(&format!("{base}ordering = \"none\"")).unwrap_err();
        assert!(err.contains("partition"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file_and_key() {
        let err = parse("name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n[capabilities]\npublsh = [\"x\"]")
            .unwrap_err();
        assert!(err.starts_with("agents/x.toml: "), "{err}");
        assert!(err.contains("publsh"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_what_was_expected() {
        let base = "version = \"0.1.0\"\ncomponent = \"a.wasm\"\n";
        let cases = [
            (format!("name = \"Bad_Name\"\n{base}"), "[a-z0-9-]"),
            (
                "name = \"a\"\nversion = \"one\"\ncomponent = \"a.wasm\"".to_string(),
                "version",
            ),
            (
                format!("name = \"a\"\n{base}digest = \"md5:abc\""),
                "64 hex digits",
            ),
            (
                format!("name = \"a\"\n{base}[limits]\nmemory = \"lots\""),
                "memory",
            ),
            (
                format!("name = \"a\"\n{base}[limits]\ntimeout = \"soon\""),
                "timeout",
            ),
            (
                format!("name = \"a\"\n{base}[delivery]\nmax_attempts = 0"),
                "`delivery.max_attempts`",
            ),
            (
                format!("name = \"a\"\n{base}[delivery]\nbatch = 0"),
                "`delivery.batch` must be between 1 and 1024, not 0",
            ),
            (
                format!("name = \"a\"\n{base}[delivery]\nbatch = 2000"),
                "`delivery.batch` must be between 1 and 1024, not 2000",
            ),
            (
                format!("name = \"a\"\n{base}[delivery]\nbatch = 8\nmode = \"exactly-once\""),
                "`delivery.batch` above 1 is for at-least-once",
            ),
            (
                format!("name = \"a\"\n{base}[[subscribe]]\ntopic = \"bad topic\""),
                "`subscribe[0].topic`",
            ),
            (
                format!("name = \"a\"\n{base}[capabilities]\npublish = [\"a/b\"]"),
                "publish",
            ),
            (
                format!("name = \"a\"\n{base}[capabilities]\nhttp = [\"ftp://x\"]"),
                "scheme must be http or https",
            ),
            (
                format!(
                    "name = \"a\"\n{base}[capabilities]\nfiles = [{{ path = \"d\", mount = \"rel\" }}]"
                ),
                "mount",
            ),
            (
                format!("name = \"a\"\n{base}[[subscribe]]\ntopic = \"agent.dead-letter.a.v1\""),
                "loop forever",
            ),
            (
                format!("name = \"a\"\n{base}[delivery]\ndead_letter = \"secrets.exfiltrated.v1\""),
                "`delivery.dead_letter`: \"secrets.exfiltrated.v1\" is not covered by `capabilities.publish`",
            ),
            (
                format!(
                    "name = \"a\"\n{base}[capabilities]\nmcp = [{{ server = \"s\", tools = [] }}]"
                ),
                "tools",
            ),
            (
                format!("name = \"a\"\n{base}[a2a]\nexpose = true"),
                "`a2a.expose = true` needs `a2a.security`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "expected {expected:?} in: {err}");
            assert!(err.starts_with("agents/x.toml: "), "{err}");
        }
    }

    #[test]
    fn the_dead_letter_topic_is_the_agents_own_unless_a_granted_one_is_named() {
        let base = "name = \"pricer\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";
        let m = parse(base).unwrap();
        assert_eq!(m.delivery.dead_letter, "agent.dead-letter.pricer.v1");
        // Naming its own default explicitly needs no grant either.
        parse(&format!(
            "{base}[delivery]\ndead_letter = \"agent.dead-letter.pricer.v1\""
        ))
        .unwrap();
        // Another agent's default is a topic like any other: it needs a publish grant.
        let err = parse(&format!(
            "{base}[delivery]\ndead_letter = \"agent.dead-letter.other.v1\""
        ))
        .unwrap_err();
        assert!(err.contains("capabilities.publish"), "{err}");
        let m = parse(&format!(
            "{base}[delivery]\ndead_letter = \"agent.dead-letter.v1\"\n[capabilities]\npublish = [\"agent.dead-letter.*\"]"
        ))
        .unwrap();
        assert_eq!(m.delivery.dead_letter, "agent.dead-letter.v1");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Manifest::load(Path::new("/nonexistent/agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/agent.toml") && err.contains("cannot read"),
            "{err}"
        );
    }
}

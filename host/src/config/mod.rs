//! The host config (`agenthost.toml`) and what both files users write share: topic patterns,
//! HTTP rules, topic names, agent names, reading and parsing with errors that name the file. The
//! agent manifest itself is [`crate::manifest`], above the capabilities whose sections it holds.
//!
//! Both files are strict: unknown keys are errors, because a typo in a security policy must never
//! silently grant or drop anything. Every error names the file, the key and what was expected.

mod agent_name;
mod host;
mod http_rule;
mod pattern;
mod topic;

pub use agent_name::AgentName;
pub use host::{
    A2aConfig, A2aPeer, A2aScheme, A2aSchemeKind, AdminConfig, AuditConfig, BusConfig, BusKind,
    HostConfig, HttpConfig, KafkaConfig, LocalBusConfig, McpConnect, McpOAuthConfig, McpProtocol,
    McpServerConfig, RuntimeConfig, TelemetryConfig,
};
pub use http_rule::HttpRule;
pub use pattern::TopicPattern;
pub use topic::{InvalidTopic, check_skill, request_topic, result_topic, validate_topic};

use std::path::{Path, PathBuf};

/// A file that could not be read or did not parse; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Reads a config file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses TOML text into `T`, mapping errors to ones that name the file. toml's own message
/// already names the key, the line and column, and shows the offending text.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text)
        .map_err(|e| ConfigError::invalid(path, e.to_string().trim_end().to_owned()))
}

/// The manifests the globs match now, sorted.
pub fn manifest_paths(globs: &[String]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for pattern in globs {
        match glob::glob(pattern) {
            Ok(entries) => paths.extend(entries.filter_map(Result::ok)),
            Err(e) => tracing::error!(pattern, error = %e, "invalid `agents` glob"),
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

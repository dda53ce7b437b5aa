//! `capabilities.env`: environment variables copied from the host's environment into the
//! agent's, by name, once at deploy. The host's own secrets are never among them: a manifest
//! naming the admin token's variable, an A2A scheme's or peer's credential, or a variable the
//! host hands to an MCP server is refused at deploy, naming the variable and what it holds.

use crate::config::HostConfig;
use std::collections::BTreeMap;
use wasmtime_wasi::WasiCtxBuilder;

/// Variables are read through `wasi:cli/environment`, which every agent has (see
/// [`super::wasi`]); without this grant it reads an empty environment.
pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.env"),
    interfaces: &[],
    required: None,
    validate: |c| {
        for (i, name) in c.env.iter().enumerate() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(format!(
                    "`capabilities.env[{i}]`: {name:?} is not an environment variable name"
                ));
            }
        }
        Ok(())
    },
    grants: |c| c.env.iter().map(|e| format!("env {e}")).collect(),
};

/// `capabilities.env`: the names of the variables copied from the host's environment.
pub type Section = Vec<String>;

/// The variables an agent version sees, copied once at deploy: what an agent sees does not
/// change under it while it runs.
pub struct EnvGrant {
    vars: Vec<(String, String)>,
}

impl EnvGrant {
    pub fn new(section: &Section) -> Self {
        let vars = section
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
        Self { vars }
    }

    /// Sets the granted variables in an instance's WASI context.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        for (name, value) in &self.vars {
            wasi.env(name, value);
        }
    }
}

/// The variables that hold the host's secrets, and what each holds (for the error).
pub struct HostSecrets {
    names: BTreeMap<String, String>,
}

impl HostSecrets {
    pub fn of(config: &HostConfig) -> Self {
        let mut names = BTreeMap::new();
        names.insert(
            config.admin.token_env.clone(),
            "the admin token (`[admin] token_env`)".to_owned(),
        );
        for (scheme, s) in &config.a2a.security {
            names.insert(
                s.env.clone(),
                format!("the secret of A2A scheme {scheme:?} (`[a2a.security.{scheme}] env`)"),
            );
        }
        for peer in &config.a2a.peers {
            for var in [&peer.bearer_env, &peer.api_key_env].into_iter().flatten() {
                names.insert(
                    var.clone(),
                    format!("a credential of A2A peer {} (`[[a2a.peers]]`)", peer.url),
                );
            }
        }
        for (server, s) in &config.mcp.servers {
            for (header, var) in &s.headers_env {
                names.insert(
                    var.clone(),
                    format!("header {header} of MCP server {server:?} (`headers_env`)"),
                );
            }
            if let Some(oauth) = &s.oauth {
                let variables = [
                    (
                        &oauth.client_secret_env,
                        "client secret",
                        "client_secret_env",
                    ),
                    (
                        &oauth.refresh_token_env,
                        "refresh token",
                        "refresh_token_env",
                    ),
                ];
                for (var, what, key) in variables {
                    if let Some(var) = var {
                        names.insert(
                            var.clone(),
                            format!("the OAuth {what} for MCP server {server:?} (`oauth.{key}`)"),
                        );
                    }
                }
            }
            for var in &s.inherit_env {
                names.insert(
                    var.clone(),
                    format!("a variable passed to MCP server {server:?} (`inherit_env`)"),
                );
            }
        }
        Self { names }
    }

    /// Refuses a `capabilities.env` that names one of the host's secrets.
    pub fn check(&self, section: &Section) -> Result<(), String> {
        for (i, name) in section.iter().enumerate() {
            if let Some(what) = self.names.get(name) {
                return Err(format!(
                    "`capabilities.env[{i}]`: {name} holds {what}; the host's own secrets are never given to agents: pass the agent a variable of its own"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_hosts_secret_variables_are_refused_naming_what_they_hold() {
        let config = HostConfig::parse(
            Path::new("agenthost.toml"),
            r#"
[a2a.security.team]
kind = "bearer"
env = "TEAM_TOKEN"

[[a2a.peers]]
url = "https://partner.example"
bearer_env = "PARTNER_TOKEN"

[mcp.servers.inventory]
url = "http://127.0.0.1:9000/mcp"
headers_env = { Authorization = "INVENTORY_AUTH" }

[mcp.servers.tickets]
url = "https://tickets.example/mcp"
[mcp.servers.tickets.oauth]
client_id = "agenthost"
client_secret_env = "TICKETS_SECRET"
refresh_token_env = "TICKETS_REFRESH"
"#,
        )
        .unwrap();
        let secrets = HostSecrets::of(&config);
        for (var, says) in [
            ("AGENTHOST_ADMIN_TOKEN", "admin token"),
            ("TEAM_TOKEN", "A2A scheme \"team\""),
            ("PARTNER_TOKEN", "A2A peer https://partner.example"),
            ("INVENTORY_AUTH", "MCP server \"inventory\""),
            (
                "TICKETS_SECRET",
                "OAuth client secret for MCP server \"tickets\"",
            ),
            (
                "TICKETS_REFRESH",
                "OAuth refresh token for MCP server \"tickets\"",
            ),
        ] {
            let err = secrets
                .check(&vec!["LOG_LEVEL".to_owned(), var.to_owned()])
                .unwrap_err();
            assert!(
                err.contains("`capabilities.env[1]`") && err.contains(var) && err.contains(says),
                "{var}: {err}"
            );
        }
        secrets.check(&vec!["LOG_LEVEL".to_owned()]).unwrap();
    }
}

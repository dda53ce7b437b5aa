//! What a [`TestHost`](super::TestHost) grants, read from a manifest's `[capabilities]` the way
//! the host reads them (keys it has no fake for are accepted and ignored).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Grants {
    pub publish: Vec<String>,
    pub state: bool,
    pub config: BTreeMap<String, String>,
    /// Server → the tools granted of it (`*` for all).
    pub mcp: BTreeMap<String, Vec<String>>,
    pub a2a: Vec<String>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    capabilities: Capabilities,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Capabilities {
    publish: Vec<String>,
    state: Option<toml::Value>,
    config: BTreeMap<String, String>,
    mcp: Vec<McpGrant>,
    a2a: Vec<String>,
}

#[derive(Deserialize)]
struct McpGrant {
    server: String,
    #[serde(default)]
    tools: Vec<String>,
}

impl Grants {
    pub fn parse(manifest: &str) -> Result<Self, String> {
        let manifest: Manifest =
            toml::from_str(manifest).map_err(|e| format!("the manifest does not parse: {e}"))?;
        let c = manifest.capabilities;
        let mut mcp: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for grant in c.mcp {
            mcp.entry(grant.server).or_default().extend(grant.tools);
        }
        Ok(Self {
            publish: c.publish,
            state: c.state.is_some(),
            config: c.config,
            mcp,
            a2a: c.a2a,
        })
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .iter()
            .any(|p| wildcard_match(p.as_bytes(), topic.as_bytes()))
    }

    pub fn may_call(&self, server: &str, tool: &str) -> bool {
        self.mcp
            .get(server)
            .is_some_and(|tools| tools.iter().any(|t| t == "*" || t == tool))
    }

    pub fn grant_tool(&mut self, server: &str, tool: &str) {
        let tools = self.mcp.entry(server.to_owned()).or_default();
        if !tools.iter().any(|t| t == tool) {
            tools.push(tool.to_owned());
        }
    }
}

/// `*` matches any run of characters, dots included, as in the host's topic patterns.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_like_the_host_reads_them() {
        let g = Grants::parse(
            r#"
            name = "x"
            [capabilities]
            publish = ["orders.*.v1", "audit.log.v1"]
            state = "1MiB"
            config = { out = "orders.out.v1" }
            mcp = [{ server = "tools", tools = ["echo"] }, { server = "all", tools = ["*"] }]
            a2a = ["pricing"]
            "#,
        )
        .unwrap();
        assert!(g.may_publish("orders.created.v1"));
        assert!(g.may_publish("audit.log.v1"));
        assert!(!g.may_publish("audit.log.v2"));
        assert!(g.state);
        assert!(g.may_call("tools", "echo") && !g.may_call("tools", "rm"));
        assert!(g.may_call("all", "anything"));
        assert_eq!(g.config["out"], "orders.out.v1");
        assert!(Grants::parse("[capabilities\n").is_err());
        assert!(!Grants::parse("name = \"x\"").unwrap().state);
    }
}

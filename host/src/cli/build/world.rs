//! The WIT a JavaScript or Python agent builds against, staged in its build directory: a world
//! written from the manifest — exactly the `agenthost:agent` interfaces it grants, and the
//! `agent` export — with the contract this host speaks in `deps/`. componentize-qjs and
//! componentize-py keep every import of the world they target, and the host refuses at deploy
//! an import its manifest does not grant, so the world must not name more than the grants;
//! writing it from them means an agent never writes one.
//!
//! A project that needs another world (the `events` export of batches, or wasi:http) keeps
//! its own `wit/world.wit`, which is staged instead.

use crate::capabilities::granted_agent_interfaces;
use crate::manifest::Manifest;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The contract, as compiled into this binary.
const CONTRACT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/agent.wit"));

/// The world an agent is built against; `stage` holds the staged `wit/`.
pub struct World {
    pub name: String,
    pub wit: PathBuf,
    /// What it imports (`agenthost:agent/bus@0.1.0`, …), for messages.
    pub imports: Vec<String>,
}

impl World {
    /// Its imports as a build error names them.
    pub fn imports_said(&self) -> String {
        if self.imports.is_empty() {
            "nothing".to_owned()
        } else {
            self.imports.join(", ")
        }
    }
}

/// The world text for a manifest's grants.
pub fn world_for(manifest: &Manifest) -> String {
    let version = contract_version();
    let mut text = format!(
        "// Written by `agenthost build` from {}'s grants: a component imports every interface of\n\
         // its world, and the host refuses any its manifest does not grant.\n\
         package agenthost-build:agent;\n\nworld agent {{\n",
        manifest.name
    );
    for interface in granted_agent_interfaces(&manifest.capabilities) {
        text.push_str(&format!("    import {interface}@{version};\n"));
    }
    text.push_str(&format!(
        "\n    export agenthost:agent/agent@{version};\n}}\n"
    ));
    text
}

/// Stages `stage/wit/`: the project's own `wit/world.wit` if it has one, else the world
/// written from the manifest; and the contract in `deps/agenthost-agent/`.
pub fn stage(project: &Path, manifest: &Manifest, stage: &Path) -> anyhow::Result<World> {
    let wit = stage.join("wit");
    let deps = wit.join("deps").join("agenthost-agent");
    std::fs::create_dir_all(&deps).with_context(|| format!("cannot create {}", deps.display()))?;
    let own = project.join("wit").join("world.wit");
    let (text, name) = if own.is_file() {
        let text = std::fs::read_to_string(&own)
            .with_context(|| format!("cannot read {}", own.display()))?;
        let name = first_world(&text)
            .with_context(|| format!("{} has no `world NAME {{`", own.display()))?;
        (text, name)
    } else {
        (world_for(manifest), "agent".to_owned())
    };
    let imports = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .map(|i| i.trim_end_matches(';').to_owned())
        .collect();
    let world_file = wit.join("world.wit");
    std::fs::write(&world_file, text)
        .with_context(|| format!("cannot write {}", world_file.display()))?;
    let contract = deps.join("agent.wit");
    std::fs::write(&contract, CONTRACT)
        .with_context(|| format!("cannot write {}", contract.display()))?;
    Ok(World { name, wit, imports })
}

/// The version of the contract, from its `package agenthost:agent@X;` line.
fn contract_version() -> &'static str {
    CONTRACT
        .lines()
        .find_map(|l| l.trim().strip_prefix("package agenthost:agent@"))
        .and_then(|v| v.strip_suffix(';'))
        .unwrap_or("0.1.0")
}

/// The name of the first world in a WIT file.
fn first_world(wit: &str) -> Option<String> {
    wit.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("world ")?;
        let name = rest.split(|c: char| c == '{' || c.is_whitespace()).next()?;
        (!name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(capabilities: &str) -> Manifest {
        let text = format!(
            "name = \"w\"\nversion = \"0.1.0\"\ncomponent = \"w.wasm\"\n[capabilities]\n{capabilities}"
        );
        Manifest::parse(Path::new("agent.toml"), &text).unwrap()
    }

    #[test]
    fn the_world_imports_what_the_manifest_grants() {
        assert_eq!(contract_version(), "0.1.0");
        let bare = world_for(&manifest(""));
        assert!(bare.contains("import agenthost:agent/log@0.1.0;"), "{bare}");
        assert!(
            bare.contains("import agenthost:agent/config@0.1.0;"),
            "{bare}"
        );
        assert!(!bare.contains("agenthost:agent/bus"), "{bare}");
        assert!(
            bare.contains("export agenthost:agent/agent@0.1.0;"),
            "{bare}"
        );
        let publishing = world_for(&manifest("publish = [\"w.out.v1\"]\nstate = \"1MiB\""));
        assert!(publishing.contains("import agenthost:agent/bus@0.1.0;"));
        assert!(publishing.contains("import agenthost:agent/state@0.1.0;"));
        assert!(!publishing.contains("agenthost:agent/mcp"));
    }

    #[test]
    fn finds_the_world() {
        let wit = "/// doc\npackage example:x;\n\nworld customer-notify {\n    import a;\n}\n";
        assert_eq!(first_world(wit).as_deref(), Some("customer-notify"));
        assert_eq!(first_world("  world w{}").as_deref(), Some("w"));
        assert_eq!(first_world("package a:b;\ninterface i {}\n"), None);
    }
}

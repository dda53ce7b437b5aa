//! The table of capabilities: for each, the manifest key that grants it, the interfaces it opens,
//! the checks of its section and the grant lines a capability diff compares. One table drives
//! the manifest's validation, the import check at deploy, `agenthost inspect` and the diff, so a
//! capability is described once, in its own module (its `CAPABILITY`), and listed once, in
//! [`ALL`].

use super::Capabilities;
use super::capability::{Capability, no_grant_lines, nothing_to_validate};
use super::{a2a, batch, config, env, files, http, invocation, log, mcp, publish, state, wasi};

/// The interfaces every agenthost interface shares: its types.
const TYPES: Capability = Capability {
    key: None,
    interfaces: &["agenthost:agent/types"],
    required: None,
    validate: nothing_to_validate,
    grants: no_grant_lines,
};

/// Every capability of the host (docs/architecture.md says what else adding one takes).
pub const ALL: &[&Capability] = &[
    &TYPES,
    &wasi::CAPABILITY,
    &env::CAPABILITY,
    &files::CAPABILITY,
    &http::CAPABILITY,
    &publish::CAPABILITY,
    &state::CAPABILITY,
    &log::CAPABILITY,
    &config::CAPABILITY,
    &invocation::CAPABILITY,
    &mcp::CAPABILITY,
    &a2a::CAPABILITY,
    &batch::CAPABILITY,
];

/// The capability that provides `interface` (unversioned).
fn provider(interface: &str) -> Option<&'static Capability> {
    ALL.iter()
        .copied()
        .find(|c| c.interfaces.contains(&interface))
}

/// Whether a component may import interface `name` under a manifest's `capabilities`. The error says which
/// grant would allow it, or why it is never allowed.
pub fn check_import(name: &str, capabilities: &Capabilities) -> Result<(), String> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    let ours = interface.starts_with("agenthost:agent/");
    if ours && !version.is_empty() && !version.starts_with("0.1.") {
        return Err(format!(
            "imports `{name}`, but this host provides agenthost:agent@0.1.0: rebuild the agent against this version"
        ));
    }
    if let Some(reason) = never_granted(interface) {
        return Err(format!("imports `{name}`: {reason}"));
    }
    match provider(interface) {
        Some(Capability {
            required: Some(required),
            ..
        }) if !(required.granted)(capabilities) => Err(format!(
            "imports `{name}` but the manifest grants no {}",
            required.missing
        )),
        Some(_) => Ok(()),
        None if ours => Err(format!(
            "imports `{name}`, which is not part of agenthost:agent@0.1.0"
        )),
        None => Err(format!(
            "imports `{name}`, which agenthost does not provide (it provides agenthost:agent/*, wasi:http/outgoing-handler and a restricted set of wasi:cli, wasi:clocks, wasi:io, wasi:random and wasi:filesystem)"
        )),
    }
}

/// The `agenthost:agent` interfaces a component under `capabilities` may import: those always
/// granted and those its grants open. `types` (implied by the others) and `batch` (which goes
/// with the `events` export, not with a grant) are left out. `agenthost build` writes a world of
/// exactly these for languages whose tools keep every import of their world.
pub fn granted_agent_interfaces(capabilities: &Capabilities) -> Vec<&'static str> {
    ALL.iter()
        .filter(|c| {
            c.required
                .as_ref()
                .is_none_or(|r| (r.granted)(capabilities))
        })
        .flat_map(|c| c.interfaces.iter().copied())
        .filter(|i| i.starts_with("agenthost:agent/"))
        .filter(|i| !matches!(*i, "agenthost:agent/types" | "agenthost:agent/batch"))
        .collect()
}

/// Why an interface is refused whatever the manifest says.
fn never_granted(interface: &str) -> Option<&'static str> {
    if interface.starts_with("wasi:sockets/") {
        return Some(
            "raw sockets are never granted to agents; outbound HTTP goes through `capabilities.http`",
        );
    }
    if interface.starts_with("wasi:http/") && provider(interface).is_none() {
        return Some(
            "agents make outbound requests only (wasi:http/outgoing-handler); they do not serve HTTP",
        );
    }
    None
}

/// What an import needs, for reading a component without a manifest: the key that grants it,
/// or why nothing does. `None` for what every agent has (and for what no capability provides).
pub fn grant_needed(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    if interface.starts_with("wasi:sockets/") {
        return Some("nothing: sockets are never granted");
    }
    if never_granted(interface).is_some() {
        return Some("nothing: agents do not serve HTTP");
    }
    provider(interface).and_then(|c| c.required.as_ref().and(c.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest's `[capabilities]` table of `toml`.
    fn manifest(toml: &str) -> Capabilities {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn ungranted_interfaces_are_refused_naming_the_grant() {
        let bare = manifest("");
        let err = check_import("agenthost:agent/bus@0.1.0", &bare).unwrap_err();
        assert!(err.contains("capabilities.publish"), "{err}");
        let err = check_import("agenthost:agent/state@0.1.0", &bare).unwrap_err();
        assert!(err.contains("capabilities.state"), "{err}");
        for ok in [
            "agenthost:agent/log@0.1.0",
            "agenthost:agent/config@0.1.0",
            "agenthost:agent/invocation@0.1.0",
            "agenthost:agent/batch@0.1.0",
            "wasi:cli/stdout@0.2.6",
        ] {
            assert!(check_import(ok, &bare).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_granted_agent_interfaces_follow_the_grants() {
        assert_eq!(
            granted_agent_interfaces(&manifest("")),
            [
                "agenthost:agent/log",
                "agenthost:agent/config",
                "agenthost:agent/invocation"
            ]
        );
        let all = granted_agent_interfaces(&manifest(
            "publish = [\"a.b.v1\"]\nstate = \"1MiB\"\nmcp = [{ server = \"s\", tools = [\"t\"] }]\na2a = [\"peer\"]",
        ));
        for interface in ["bus", "state", "log", "config", "invocation", "mcp", "a2a"] {
            assert!(
                all.contains(&format!("agenthost:agent/{interface}").as_str()),
                "{all:?}"
            );
        }
        assert_eq!(all.len(), 7, "{all:?}");
    }

    #[test]
    fn granted_interfaces_are_allowed() {
        let m = manifest(
            "publish = [\"x\"]\nstate = \"1MiB\"\nmcp = [{ server = \"s\", tools = [\"t\"] }]",
        );
        assert!(check_import("agenthost:agent/bus@0.1.0", &m).is_ok());
        assert!(check_import("agenthost:agent/mcp@0.1.0", &m).is_ok());
        assert!(check_import("agenthost:agent/state@0.1.0", &m).is_ok());
    }

    #[test]
    fn unprovided_and_forbidden_interfaces_say_why() {
        let m = manifest("");
        assert!(
            check_import("agenthost:agent/mcp@0.1.0", &m)
                .unwrap_err()
                .contains("capabilities.mcp")
        );
        assert!(
            check_import("agenthost:agent/a2a@0.1.0", &m)
                .unwrap_err()
                .contains("capabilities.a2a")
        );
        assert!(
            check_import("wasi:sockets/tcp@0.2.0", &m)
                .unwrap_err()
                .contains("never granted")
        );
        assert!(
            check_import("agenthost:agent/bus@0.2.0", &m)
                .unwrap_err()
                .contains("0.1.0")
        );
        assert!(
            check_import("acme:evil/thing", &m)
                .unwrap_err()
                .contains("does not provide")
        );
    }

    #[test]
    fn without_a_manifest_an_import_names_its_grant() {
        assert_eq!(
            grant_needed("agenthost:agent/bus@0.1.0"),
            Some("capabilities.publish")
        );
        assert_eq!(
            grant_needed("wasi:http/outgoing-handler@0.2.6"),
            Some("capabilities.http")
        );
        assert_eq!(grant_needed("agenthost:agent/log@0.1.0"), None);
        assert!(
            grant_needed("wasi:sockets/tcp@0.2.0")
                .unwrap()
                .contains("never")
        );
        assert!(
            grant_needed("wasi:http/incoming-handler@0.2.0")
                .unwrap()
                .contains("serve")
        );
    }

    /// A capability left out of [`ALL`] would never be validated nor offered; one left out of
    /// the `[capabilities]` table could never be granted.
    #[test]
    fn the_catalog_and_the_capabilities_table_name_the_same_grants() {
        let err = toml::from_str::<Capabilities>("zz_probe = 1")
            .unwrap_err()
            .to_string();
        let (_, expected) = err
            .split_once("expected one of")
            .expect("serde lists the keys");
        let table: std::collections::BTreeSet<&str> =
            expected.split('`').skip(1).step_by(2).collect();
        let catalog: std::collections::BTreeSet<&str> = ALL
            .iter()
            .filter_map(|c| c.key?.strip_prefix("capabilities."))
            .collect();
        assert!(catalog.is_subset(&table), "{catalog:?} ⊄ {table:?}");
        // `config` holds values the agent reads, not a grant: every agent has the interface.
        let values: Vec<&str> = table.difference(&catalog).copied().collect();
        assert_eq!(
            values,
            ["config"],
            "keys of [capabilities] without a catalog entry"
        );
    }

    #[test]
    fn every_interface_has_one_capability() {
        let mut seen = std::collections::BTreeSet::new();
        for capability in ALL {
            for interface in capability.interfaces {
                assert!(seen.insert(*interface), "{interface} is listed twice");
            }
        }
    }
}

//! The reference pages cannot drift from the code: every key the manifest and the host config
//! accept appears on its page (docs/reference/manifest.md, docs/reference/host-config.md).
//!
//! The keys are not listed by hand. Both files are parsed strictly (`deny_unknown_fields`), so a
//! key the parser does not know is refused with the list of keys it does know; the test asks
//! each table for its keys that way and follows every key that is itself a table, an array of
//! tables or a map of tables, so a section added tomorrow is checked too.

#[cfg(test)]
mod tests {
    use crate::config::HostConfig;
    use crate::manifest::Manifest;
    use std::collections::BTreeSet;
    use std::path::Path;

    const PROBE: &str = "zz_probe";

    /// The keys of the table at `path` (dotted), or `None` if it is not a table of structs.
    fn keys_at(parse: &dyn Fn(&str) -> String, path: &str) -> Option<Vec<String>> {
        let headers = if path.is_empty() {
            vec![String::new()]
        } else {
            // A table, or an array of tables.
            vec![format!("[{path}]\n"), format!("[[{path}]]\n")]
        };
        let error = headers
            .iter()
            .map(|header| parse(&format!("{header}{PROBE} = 1\n")))
            .find(|error| error.contains(&format!("unknown field `{PROBE}`")))?;
        let listed = error
            .split(&format!("unknown field `{PROBE}`, expected "))
            .nth(1)?;
        let listed = listed.lines().next().unwrap_or_default();
        Some(
            listed
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Every key path reachable from the root, as `section.key`.
    fn all_keys(parse: &dyn Fn(&str) -> String) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut tables = vec![String::new()];
        while let Some(table) = tables.pop() {
            let Some(keys) = keys_at(parse, &table) else {
                continue;
            };
            for key in keys {
                let path = if table.is_empty() {
                    key
                } else {
                    format!("{table}.{key}")
                };
                if found.insert(path.clone()) {
                    // A table or an array of tables (`[path]`, `[[path]]`), or a map of tables
                    // (`[path.NAME]`).
                    tables.push(path.clone());
                    tables.push(format!("{path}.{PROBE}name"));
                }
            }
        }
        // Keys under a map's probe entry stand for every entry's keys.
        found
            .into_iter()
            .map(|k| k.replace(&format!(".{PROBE}name"), ".NAME"))
            .collect()
    }

    fn page(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/reference")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The keys whose last part does not appear on the page as a key (`key =`, `[key]`,
    /// `` `key` `` or `key.`).
    fn missing(keys: &BTreeSet<String>, page: &str) -> Vec<String> {
        keys.iter()
            .filter(|path| {
                let key = path.rsplit('.').next().unwrap_or(path);
                ![
                    format!("{key} ="),
                    format!("[{key}]"),
                    format!(".{key}]"),
                    format!("`{key}`"),
                    format!("{key}."),
                    format!("{{ {key} ="),
                ]
                .iter()
                .any(|form| page.contains(form.as_str()))
            })
            .cloned()
            .collect()
    }

    fn manifest_errors(text: &str) -> String {
        match Manifest::parse(Path::new("a.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    fn host_config_errors(text: &str) -> String {
        match HostConfig::parse(Path::new("agenthost.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_manifest_key_is_in_the_manifest_reference() {
        let keys = all_keys(&manifest_errors);
        for expected in [
            "name",
            "subscribe.topic",
            "delivery.max_attempts",
            "capabilities.mcp.tools",
            "capabilities.files.access",
            "rollout.canary",
        ] {
            assert!(keys.contains(expected), "{expected} not found in {keys:?}");
        }
        let missing = missing(&keys, &page("manifest.md"));
        assert!(
            missing.is_empty(),
            "docs/reference/manifest.md does not mention {missing:?}"
        );
    }

    #[test]
    fn every_host_config_key_is_in_the_host_config_reference() {
        let keys = all_keys(&host_config_errors);
        for expected in [
            "listen",
            "bus.kafka.brokers",
            "mcp.servers.NAME.command",
            "a2a.peers.url",
            "a2a.security.NAME.kind",
        ] {
            assert!(keys.contains(expected), "{expected} not found in {keys:?}");
        }
        let missing = missing(&keys, &page("host-config.md"));
        assert!(
            missing.is_empty(),
            "docs/reference/host-config.md does not mention {missing:?}"
        );
    }

    #[test]
    fn a_key_left_out_of_a_page_is_found() {
        let keys: BTreeSet<String> = ["delivery.max_attempts".into(), "limits.fuel".into()].into();
        assert_eq!(
            missing(&keys, "max_attempts = 3\n"),
            vec!["limits.fuel".to_owned()]
        );
    }
}

//! The capability diff between two manifests of one agent: what a new version would be granted
//! that the running one is not. Widening needs the operator's explicit approval; narrowing does
//! not.

use super::Manifest;
use std::collections::BTreeSet;

/// One line of a diff: `+ …` widens, `- …` narrows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    pub widens: bool,
    pub text: String,
}

impl std::fmt::Display for DiffLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", if self.widens { '+' } else { '-' }, self.text)
    }
}

/// Every grant of a manifest that is a member of a set, one string each.
fn grant_set(m: &Manifest) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    set.extend(
        m.subscribe
            .iter()
            .map(|s| format!("subscribe {} (group {})", s.topic, m.group_of(s))),
    );
    for capability in crate::capabilities::ALL {
        set.extend((capability.grants)(&m.capabilities));
    }
    // Serving a skill from the bus takes requests from any host: a grant like a subscription.
    set.extend(
        m.a2a
            .bus_skills
            .iter()
            .map(|s| format!("a2a.bus_skills {s}")),
    );
    set
}

/// What changes from `old` to `new`, widening lines first.
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<DiffLine> {
    let (a, b) = (grant_set(old), grant_set(new));
    let mut lines: Vec<DiffLine> = b
        .difference(&a)
        .map(|t| DiffLine {
            widens: true,
            text: t.clone(),
        })
        .collect();
    lines.extend(a.difference(&b).map(|t| DiffLine {
        widens: false,
        text: t.clone(),
    }));

    let mut limit = |name: &str, old: u128, new: u128, show: &dyn Fn(u128) -> String| {
        if old != new {
            lines.push(DiffLine {
                widens: new > old,
                text: format!("{name} {} → {}", show(old), show(new)),
            });
        }
    };
    let size = |v: u128| bytesize::ByteSize::b(v as u64).to_string();
    let state = |m: &Manifest| m.capabilities.state.map_or(0, |s| s.as_u64() as u128);
    limit("state quota", state(old), state(new), &|v| {
        if v == 0 { "none".into() } else { size(v) }
    });
    let (lo, ln) = (&old.limits, &new.limits);
    limit(
        "limits.memory",
        lo.memory.as_u64().into(),
        ln.memory.as_u64().into(),
        &size,
    );
    limit(
        "limits.timeout",
        lo.timeout.as_millis(),
        ln.timeout.as_millis(),
        &|v| format!("{v}ms"),
    );
    limit(
        "limits.instances",
        lo.instances.into(),
        ln.instances.into(),
        &|v| v.to_string(),
    );
    limit(
        "limits.publish_size",
        lo.publish_size.as_u64().into(),
        ln.publish_size.as_u64().into(),
        &size,
    );
    limit(
        "limits.log_rate",
        lo.log_rate.into(),
        ln.log_rate.into(),
        &|v| format!("{v}/s"),
    );
    limit(
        "limits.publishes",
        lo.publishes.into(),
        ln.publishes.into(),
        &|v| format!("{v} per invocation"),
    );
    limit(
        "limits.table_elements",
        lo.table_elements.into(),
        ln.table_elements.into(),
        &|v| v.to_string(),
    );
    limit("limits.topics", lo.topics.into(), ln.topics.into(), &|v| {
        format!("{v} topics through wildcards")
    });
    // 0 fuel means unlimited, the widest budget there is.
    let fuel = |f: u64| if f == 0 { u128::MAX } else { f.into() };
    limit("limits.fuel", fuel(lo.fuel), fuel(ln.fuel), &|v| {
        if v == u128::MAX {
            "unlimited".into()
        } else {
            v.to_string()
        }
    });
    // Reused instances keep memory between events: weaker isolation than a fresh instance.
    if lo.reuse_instances != ln.reuse_instances {
        lines.push(DiffLine {
            widens: ln.reuse_instances,
            text: format!(
                "limits.reuse_instances {} → {}",
                lo.reuse_instances, ln.reuse_instances
            ),
        });
    }
    // Records of one batch share an instance: the larger the batch, the more records do.
    let (bo, bn) = (old.delivery.batch, new.delivery.batch);
    if bo != bn {
        lines.push(DiffLine {
            widens: bn > bo,
            text: format!("delivery.batch {bo} → {bn} (records sharing an instance)"),
        });
    }
    // Failed events' payloads go to the dead-letter topic: a new one is a new reader of them,
    // unless it is the agent's own topic, which only the host writes.
    let (dlo, dln) = (&old.delivery.dead_letter, &new.delivery.dead_letter);
    if dlo != dln {
        lines.push(DiffLine {
            widens: *dln != super::default_dead_letter(&new.name),
            text: format!("delivery.dead_letter {dlo} → {dln}"),
        });
    }
    if old.a2a.expose != new.a2a.expose {
        lines.push(DiffLine {
            widens: new.a2a.expose,
            text: format!("a2a.expose {} → {}", old.a2a.expose, new.a2a.expose),
        });
    }
    if old.mcp.expose != new.mcp.expose {
        lines.push(DiffLine {
            widens: new.mcp.expose,
            text: format!("mcp.expose {} → {}", old.mcp.expose, new.mcp.expose),
        });
    }
    if old.mcp.tool_names != new.mcp.tool_names {
        // Not a widening (the same skills are served), but what clients call changes.
        lines.push(DiffLine {
            widens: false,
            text: format!(
                "mcp.tool_names {} → {}",
                old.mcp.tool_names.as_str(),
                new.mcp.tool_names.as_str()
            ),
        });
    }
    lines.extend(security_change(
        "a2a",
        (old.a2a.expose, old.a2a.schemes()),
        (new.a2a.expose, new.a2a.schemes()),
    ));
    lines.extend(security_change(
        "mcp",
        (old.mcp.expose, old.mcp.schemes()),
        (new.mcp.expose, new.mcp.schemes()),
    ));
    lines.sort_by_key(|l| !l.widens);
    lines
}

/// How `{section}.security` changed between `(expose, schemes)` pairs. Authentication is a list
/// of alternatives: a new scheme lets more callers in, dropping the last one lets everyone in.
fn security_change(
    section: &str,
    (old_expose, old): (bool, &[String]),
    (new_expose, new): (bool, &[String]),
) -> Option<DiffLine> {
    let (so, sn): (BTreeSet<&String>, BTreeSet<&String>) =
        (old.iter().collect(), new.iter().collect());
    if so != sn {
        // Schemes of an agent no longer served let nobody in.
        let opens_up = new_expose
            && ((!so.is_empty() && sn.is_empty()) || sn.difference(&so).next().is_some());
        Some(DiffLine {
            widens: opens_up,
            text: format!("{section}.security {so:?} → {sn:?}"),
        })
    } else if new_expose && !old_expose && sn.is_empty() {
        // Exposed with `security = []`: say so, beside the exposure itself.
        Some(DiffLine {
            widens: true,
            text: format!("{section}.security [] (anyone who reaches the host may call it)"),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn m(extra: &str) -> Manifest {
        Manifest::parse(
            Path::new("a.toml"),
            &format!("name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n{extra}"),
        )
        .unwrap()
    }

    #[test]
    fn new_topics_and_bigger_limits_widen() {
        let old = m("[capabilities]\npublish = [\"a\"]\nstate = \"1MiB\"");
        let new = m(
            "[limits]\nmemory = \"128MiB\"\n[capabilities]\npublish = [\"a\", \"b\"]\nstate = \"2MiB\"",
        );
        let d = diff(&old, &new);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"+ publish b".to_string()), "{text:?}");
        assert!(
            text.iter().any(|l| l.starts_with("+ state quota")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|l| l.starts_with("+ limits.memory")),
            "{text:?}"
        );
        assert!(d.iter().all(|l| l.widens));
    }

    #[test]
    fn narrowing_is_not_widening() {
        let old = m(
            "[capabilities]\npublish = [\"a\", \"b\"]\nmcp = [{ server = \"s\", tools = [\"x\", \"y\"] }]",
        );
        let new = m(
            "[limits]\nfuel = 1000\n[capabilities]\npublish = [\"a\"]\nmcp = [{ server = \"s\", tools = [\"x\"] }]",
        );
        let d = diff(&old, &new);
        assert!(!d.is_empty() && d.iter().all(|l| !l.widens), "{d:?}");
        assert!(diff(&old, &old).is_empty());
    }

    /// Going from the defaults to `changed` widens, naming `line`; going back does not.
    fn widens_from_defaults(changed: &str, line: &str) {
        let (old, new) = (m(""), m(changed));
        assert!(
            diff(&old, &new)
                .iter()
                .any(|l| l.widens && l.text.contains(line)),
            "{:?}",
            diff(&old, &new)
        );
        assert!(diff(&new, &old).iter().all(|l| !l.widens));
    }

    #[test]
    fn reusing_instances_widens() {
        widens_from_defaults("[limits]\nreuse_instances = true", "reuse_instances");
    }

    #[test]
    fn larger_batches_widen() {
        widens_from_defaults("[delivery]\nbatch = 32", "delivery.batch 1 → 32");
    }

    #[test]
    fn a_new_dead_letter_topic_widens_and_going_back_to_the_agents_own_narrows() {
        widens_from_defaults(
            "[delivery]\ndead_letter = \"shared.failures.v1\"\n[capabilities]\npublish = [\"shared.failures.v1\"]",
            "delivery.dead_letter agent.dead-letter.a.v1 → shared.failures.v1",
        );
    }

    #[test]
    fn subscriptions_are_grants_in_the_diff() {
        widens_from_defaults(
            "[[subscribe]]\ntopic = \"agent.dead-letter.b.v1\"",
            "subscribe agent.dead-letter.b.v1 (group a)",
        );
    }

    #[test]
    fn read_to_read_write_widens() {
        let old =
            m("[capabilities]\nfiles = [{ path = \".\", mount = \"/d\", access = \"read\" }]");
        let new = m(
            "[capabilities]\nfiles = [{ path = \".\", mount = \"/d\", access = \"read-write\" }]",
        );
        assert!(
            diff(&old, &new)
                .iter()
                .any(|l| l.widens && l.text.contains("read-write"))
        );
    }

    #[test]
    fn a2a_serving_changes_are_classified() {
        let base = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";
        let m = |extra: &str| {
            Manifest::parse(std::path::Path::new("a.toml"), &format!("{base}{extra}")).unwrap()
        };
        let secured = m("[a2a]\nexpose = true\nsecurity = [\"team\"]\n");
        let open = m("[a2a]\nexpose = true\nsecurity = []\n");
        let two = m("[a2a]\nexpose = true\nsecurity = [\"team\", \"partners\"]\n");
        let worker = m("[a2a]\nexpose = true\nsecurity = [\"team\"]\nbus_skills = [\"x\"]\n");
        let hidden = m("");
        assert!(
            diff(&hidden, &open)
                .iter()
                .any(|l| l.widens && l.text.contains("anyone who reaches the host")),
            "exposing to anyone says so"
        );
        assert!(
            diff(&secured, &open).iter().any(|l| l.widens),
            "dropping auth widens"
        );
        assert!(
            diff(&secured, &two).iter().any(|l| l.widens),
            "another scheme widens"
        );
        assert!(
            diff(&two, &secured).iter().all(|l| !l.widens),
            "fewer alternatives narrow"
        );
        assert!(
            diff(&secured, &worker)
                .iter()
                .any(|l| l.widens && l.text.contains("bus_skills"))
        );
    }

    #[test]
    fn mcp_serving_changes_are_classified() {
        let base = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";
        let m = |extra: &str| {
            Manifest::parse(std::path::Path::new("a.toml"), &format!("{base}{extra}")).unwrap()
        };
        let hidden = m("");
        let secured = m("[mcp]\nexpose = true\nsecurity = [\"team\"]\n");
        let open = m("[mcp]\nexpose = true\nsecurity = []\n");
        let exposing = diff(&hidden, &secured);
        assert!(
            exposing
                .iter()
                .any(|l| l.widens && l.text == "mcp.expose false → true")
        );
        assert!(
            diff(&hidden, &open)
                .iter()
                .any(|l| l.widens && l.text.starts_with("mcp.security [] (anyone")),
            "exposing to anyone says so"
        );
        assert!(
            diff(&secured, &open)
                .iter()
                .any(|l| l.widens && l.text.starts_with("mcp.security"))
        );
        assert!(
            diff(&secured, &hidden).iter().all(|l| !l.widens),
            "hiding narrows"
        );
        let renamed = m("[mcp]\nexpose = true\nsecurity = [\"team\"]\ntool_names = \"skill-id\"\n");
        let lines = diff(&secured, &renamed);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].text, "mcp.tool_names prefixed → skill-id");
        assert!(!lines[0].widens, "renaming tools grants nothing");
        let err = Manifest::parse(
            std::path::Path::new("a.toml"),
            &format!("{base}[mcp]\nexpose = true\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`mcp.expose = true` needs `mcp.security`"),
            "{err}"
        );
    }
}

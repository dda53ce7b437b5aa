//! From nothing to a running agent outside this repository: `agenthost new` for every
//! template, `agenthost build`, the project's own unit test, and a deploy to a running host
//! that then does what the template's README says.

use agenthost_tests::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `agenthost ARGS` in `dir`, building into the shared `target` (the templates' dependencies
/// compile once for all four).
fn agenthost_in(dir: &Path, target: &Path, args: &[&str]) -> Output {
    Command::new(agenthost_bin())
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run agenthost")
}

#[test]
fn every_rust_template_is_created_built_tested_and_deployed_from_an_empty_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("target");
    let templates = [
        ("t-echo", "echo"),
        ("t-stateful", "stateful"),
        ("t-tool-caller", "tool-caller"),
        ("t-a2a-worker", "a2a-worker"),
    ];
    for (name, template) in templates {
        let created = agenthost_in(
            work.path(),
            &target,
            &["new", name, "--lang", "rust", "--template", template],
        );
        assert!(created.status.success(), "{}", describe(&created));
        let project = work.path().join(name);
        for file in ["Cargo.toml", "src/lib.rs", "agent.toml", "README.md"] {
            assert!(project.join(file).is_file(), "{name}: no {file}");
        }
        let built = agenthost_in(&project, &target, &["build"]);
        assert!(built.status.success(), "{name}: {}", describe(&built));
        assert!(
            String::from_utf8_lossy(&built.stdout).contains("deployable under"),
            "{name}: {}",
            describe(&built)
        );
        assert!(project.join(format!("{name}.wasm")).is_file());
    }
    // A second `new` into the same directory is refused rather than overwriting it.
    let again = agenthost_in(work.path(), &target, &["new", "t-echo"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    // The project's unit test runs natively, without a host.
    let tested = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--quiet"])
        .current_dir(work.path().join("t-stateful"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo test");
    assert!(tested.status.success(), "{}", describe(&tested));

    // Deployed to a host whose config has the MCP server the tool-caller template names.
    let s = Scenario::new(&peers::everything_stdio("tools"));
    let host = s.start();
    for (name, _) in templates {
        let manifest = work.path().join(name).join("agent.toml");
        let deployed = s.cli(&["deploy", manifest.to_str().unwrap()]);
        assert!(deployed.status.success(), "{name}: {}", describe(&deployed));
    }
    let publish_file = |name: &str| {
        let events = work.path().join(name).join("events.jsonl");
        let out = s.cli(&[
            "publish",
            &format!("{name}.in.v1"),
            "--file",
            events.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", describe(&out));
    };
    let outputs = |name: &str, count: usize| -> Vec<String> {
        let mut payloads: Vec<String> = consume(
            &host.url,
            &format!("{name}.out.v1"),
            count,
            Duration::from_secs(60),
        )
        .into_iter()
        .filter_map(|r| r.payload)
        .collect();
        payloads.sort();
        payloads
    };

    publish_file("t-echo");
    assert_eq!(outputs("t-echo", 2), ["hello", r#"{"price": 12.5}"#]);

    publish_file("t-stateful");
    let counts: Vec<serde_json::Value> = outputs("t-stateful", 3)
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    for (key, count) in [("a", 1), ("a", 2), ("b", 1)] {
        assert!(
            counts
                .iter()
                .any(|c| c["key"] == key && c["count"] == count),
            "no count {count} for {key}: {counts:?}"
        );
    }

    publish_file("t-tool-caller");
    let answered = outputs("t-tool-caller", 1);
    assert!(answered[0].contains("hello"), "{answered:?}");

    let sent = s.cli(&["send", "t-a2a-worker", "the quick brown fox"]);
    assert!(sent.status.success(), "{}", describe(&sent));
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("4 words, 19 characters"),
        "{}",
        describe(&sent)
    );
}

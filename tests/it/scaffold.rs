//! From nothing to a running agent outside this repository, in each language: `agenthost new`
//! for every template, `agenthost build`, `agenthost test` with the project's sample events
//! (and the Rust project's own unit test), and a deploy to a running host that then does what
//! the template's README says.

use agenthost_tests::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const TEMPLATES: [&str; 4] = ["echo", "stateful", "tool-caller", "a2a-worker"];

/// `agenthost ARGS` in `dir`, building Rust into the shared `target` (the templates'
/// dependencies compile once for all four).
fn agenthost_in(dir: &Path, target: &Path, args: &[&str]) -> Output {
    Command::new(agenthost_bin())
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run agenthost")
}

/// The name of `template`'s project in `lang`: `rs-echo`, `js-tool-caller`, …
fn project(lang: &str, template: &str) -> String {
    format!("{lang}-{template}")
}

/// `new`, `build` and `test` of every template in `lang` under `work`; `mcp_config` is a host
/// config with the MCP server the tool-caller template calls.
fn create_build_and_test(work: &Path, lang: &str, files: &[&str], mcp_config: &Path) {
    let target = work.join("target");
    for template in TEMPLATES {
        let name = project(&lang[..2], template);
        let created = agenthost_in(
            work,
            &target,
            &["new", &name, "--lang", lang, "--template", template],
        );
        assert!(created.status.success(), "{}", describe(&created));
        let project = work.join(&name);
        for file in files
            .iter()
            .chain(&["agent.toml", "README.md", "events.jsonl"])
        {
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

        // The sample events through the component on a host in the process.
        let config = mcp_config.to_str().unwrap();
        let tested = agenthost_in(&project, &target, &["test", "--config", config]);
        assert!(tested.status.success(), "{name}: {}", describe(&tested));
        let said = String::from_utf8_lossy(&tested.stdout);
        let expected = match template {
            "echo" => vec!["publish", "hello", "2 passed, 0 failed, 0 denied uses"],
            "stateful" => vec!["state.set", "count/a", "3 passed, 0 failed"],
            "tool-caller" => vec!["mcp.call-tool", "tools/echo", "1 passed, 0 failed"],
            _ => vec!["reply", "4 words, 19 characters", "1 passed, 0 failed"],
        };
        for text in expected {
            assert!(
                said.contains(text),
                "{name}: no {text:?} in {}",
                describe(&tested)
            );
        }
        if template == "stateful" {
            // The second event of key a found the first one's count.
            let compact = said.replace(' ', "");
            assert!(
                compact.contains(r#""count":2"#),
                "{name}: {}",
                describe(&tested)
            );
        }
    }
    // A second `new` into the same directory is refused rather than overwriting it.
    let again = agenthost_in(work, &target, &["new", &project(&lang[..2], "echo")]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}

/// Deploys every template's project in `lang` to a host whose config has the tool-caller's
/// MCP server, and checks each does what its README says.
fn deploy_and_use(work: &Path, lang: &str, s: &Scenario, host: &HostProcess) {
    let name = |template: &str| project(&lang[..2], template);
    for template in TEMPLATES {
        let manifest = work.join(name(template)).join("agent.toml");
        let deployed = s.cli(&["deploy", manifest.to_str().unwrap()]);
        assert!(
            deployed.status.success(),
            "{}: {}",
            name(template),
            describe(&deployed)
        );
    }
    let publish_file = |name: &str| {
        let events = work.join(name).join("events.jsonl");
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

    publish_file(&name("echo"));
    assert_eq!(outputs(&name("echo"), 2), ["hello", r#"{"price": 12.5}"#]);

    publish_file(&name("stateful"));
    let counts: Vec<serde_json::Value> = outputs(&name("stateful"), 3)
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    for (key, count) in [("a", 1), ("a", 2), ("b", 1)] {
        assert!(
            counts
                .iter()
                .any(|c| c["key"] == key && c["count"] == count),
            "{lang}: no count {count} for {key}: {counts:?}"
        );
    }

    publish_file(&name("tool-caller"));
    let answered = outputs(&name("tool-caller"), 1);
    assert!(answered[0].contains("hello"), "{lang}: {answered:?}");

    let sent = s.cli(&["send", &name("a2a-worker"), "the quick brown fox"]);
    assert!(sent.status.success(), "{}", describe(&sent));
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("4 words, 19 characters"),
        "{lang}: {}",
        describe(&sent)
    );
}

#[test]
fn every_template_in_every_language_is_created_built_tested_and_deployed() {
    let work = tempfile::tempdir().expect("tempdir");
    let s = Scenario::new(&peers::everything_stdio("tools"));
    let mcp_config = work.path().join("mcp.toml");
    std::fs::write(&mcp_config, peers::everything_stdio("tools")).expect("write config");

    create_build_and_test(
        work.path(),
        "rust",
        &["Cargo.toml", "src/lib.rs"],
        &mcp_config,
    );
    // Each Rust project's unit tests run natively, the handlers against the SDK's fake host.
    for template in TEMPLATES {
        let tested = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["test", "--quiet"])
            .current_dir(work.path().join(project("ru", template)))
            .env("CARGO_TARGET_DIR", work.path().join("target"))
            .output()
            .expect("run cargo test");
        assert!(tested.status.success(), "{template}: {}", describe(&tested));
    }
    create_build_and_test(
        work.path(),
        "js",
        &["package.json", "agent.js", "rolldown.config.mjs"],
        &mcp_config,
    );
    create_build_and_test(
        work.path(),
        "python",
        &["requirements.txt", "agent.py"],
        &mcp_config,
    );

    let host = s.start();
    for lang in ["rust", "js", "python"] {
        deploy_and_use(work.path(), lang, &s, &host);
    }
}

/// What `agenthost test` says of an agent that fails and one that is denied: each named, and
/// the run fails.
#[test]
fn agenthost_test_reports_failures_and_denials_and_exits_non_zero() {
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("target");
    let created = agenthost_in(
        work.path(),
        &target,
        &["new", "strict", "--lang", "js", "--template", "tool-caller"],
    );
    assert!(created.status.success(), "{}", describe(&created));
    let project = work.path().join("strict");
    let built = agenthost_in(&project, &target, &["build"]);
    assert!(built.status.success(), "{}", describe(&built));
    // Not JSON: rejected, naming the event. A tool the manifest does not grant: denied.
    let events = project.join("bad.jsonl");
    std::fs::write(&events, "{\"payload\": \"{oops\"}\n").unwrap();
    let config = work.path().join("mcp.toml");
    std::fs::write(&config, peers::everything_stdio("tools")).unwrap();
    let test_bad_events = || {
        agenthost_in(
            &project,
            &target,
            &[
                "test",
                "--events",
                "bad.jsonl",
                "--config",
                config.to_str().unwrap(),
            ],
        )
    };
    let tested = test_bad_events();
    assert_eq!(tested.status.code(), Some(1), "{}", describe(&tested));
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(said.contains("FAILED"), "{}", describe(&tested));
    assert!(
        said.contains("strict.in.v1[0]@0: payload is not JSON"),
        "{}",
        describe(&tested)
    );
    assert!(said.contains("0 passed, 1 failed"), "{}", describe(&tested));

    let manifest = project.join("agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("tool = \"echo\"", "tool = \"get-sum\""),
    )
    .unwrap();
    std::fs::write(&events, "{\"payload\": \"{\\\"a\\\": 1}\"}\n").unwrap();
    let tested = test_bad_events();
    assert_eq!(tested.status.code(), Some(1), "{}", describe(&tested));
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(said.contains("DENIED"), "{}", describe(&tested));
    assert!(said.contains("1 denied use"), "{}", describe(&tested));
}

/// `agenthost dev` serves the agent, shows what it does, and swaps in a rebuilt version when
/// its source is saved — no restart, nothing to deploy by hand.
#[test]
fn agenthost_dev_rebuilds_and_hot_swaps_the_agent_on_save() {
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("target");
    let created = agenthost_in(work.path(), &target, &["new", "live", "--lang", "js"]);
    assert!(created.status.success(), "{}", describe(&created));
    let project = work.path().join("live");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out_path = work.path().join("dev.out");
    let err_path = work.path().join("dev.err");
    let child = Command::new(agenthost_bin())
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&project)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start agenthost dev");
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dev = std::cell::RefCell::new(KillOnDrop(child));
    let said = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let wait_for = |text: &str, times: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while said().matches(text).count() < times {
            if let Ok(Some(status)) = dev.borrow_mut().0.try_wait() {
                panic!(
                    "agenthost dev exited ({status}):\n{}\n{}",
                    said(),
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} ×{times} from agenthost dev:\n{}\n{}",
                said(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("deployed live 0.1.0", 1);
    let publish = |payload: &str| {
        let out = Command::new(agenthost_bin())
            .args(["publish", "live.in.v1", payload, "--host", &url])
            .output()
            .expect("publish");
        assert!(out.status.success(), "{}", describe(&out));
    };
    publish("first");
    wait_for("  first", 1);

    // Saved: rebuilt and swapped in; the next event meets the new code.
    let source = project.join("agent.js");
    let text = std::fs::read_to_string(&source).unwrap();
    let changed = text
        .replace(
            "bus.forward(out, event);",
            "bus.publish(out, `changed: ${eventText(event)}`);",
        )
        .replace("import { card,", "import { card, eventText,");
    assert_ne!(text, changed, "the template changed: update this test");
    std::fs::write(&source, changed).unwrap();
    wait_for("changed: rebuilding", 1);
    wait_for("deployed live 0.1.0", 2);
    publish("second");
    wait_for("changed: second", 1);
    let mut outputs: Vec<String> = consume(&url, "live.out.v1", 2, Duration::from_secs(30))
        .into_iter()
        .filter_map(|r| r.payload)
        .collect();
    outputs.sort();
    assert_eq!(outputs, ["changed: second", "first"]);

    // A save that does not build keeps the running version.
    std::fs::write(&source, "export const agent = {").unwrap();
    wait_for("build failed", 1);
    publish("third");
    wait_for("changed: third", 1);
}

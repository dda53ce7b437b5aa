//! Deploying: bad manifests and components are refused with a message naming the problem,
//! while the agents already running keep running.

use agenthost_tests::*;
use std::time::Duration;

/// A manifest for `component` that would otherwise be fine.
fn other(component: &str) -> String {
    format!("name = \"other\"\nversion = \"0.1.0\"\ncomponent = \"{component}\"\n")
}

fn assert_refused(s: &Scenario, manifest: &std::path::Path, expected: &[&str]) {
    let out = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One error (a TOML error goes on with its excerpt of the file, on the lines below).
    assert!(
        stderr.starts_with("error: ") && stderr.matches("error: ").count() == 1,
        "one reason: {stderr}"
    );
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
}

#[test]
fn bad_deploys_are_refused_and_running_agents_keep_running() {
    let s = Scenario::new("");
    s.manifest("echo", ECHO);
    let host = s.start();
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let write = |name: &str, text: &str| {
        let p = incoming.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };

    // A malformed manifest: the file, the key and the line are named.
    let typo = write(
        "typo.toml",
        &format!("{}[capabilities]\npublsh = [\"x\"]\n", other("x.wasm")),
    );
    // The TOML error keeps its excerpt, pointing at the typo.
    assert_refused(&s, &typo, &["typo.toml", "publsh", "line 5", "5 | publsh"]);
    let bad_name = write(
        "bad-name.toml",
        "name = \"Not OK\"\nversion = \"1.0.0\"\ncomponent = \"x.wasm\"\n",
    );
    assert_refused(&s, &bad_name, &["bad-name.toml", "[a-z0-9-]"]);

    // A missing component file: the manifest, its key and where the path starts are named.
    let missing = write("missing.toml", &other("does-not-exist.wasm"));
    assert_refused(
        &s,
        &missing,
        &[
            "missing.toml",
            "`component` = \"does-not-exist.wasm\"",
            "the manifest's directory",
        ],
    );

    // Bytes that are not WebAssembly at all.
    std::fs::write(incoming.join("garbage.wasm"), b"this is not wasm").unwrap();
    let garbage = write("garbage.toml", &other("garbage.wasm"));
    assert_refused(&s, &garbage, &["not a valid WebAssembly component"]);

    // A core module rather than a component.
    std::fs::write(
        incoming.join("core.wasm"),
        [0, b'a', b's', b'm', 1, 0, 0, 0],
    )
    .unwrap();
    let core = write("core.toml", &other("core.wasm"));
    assert_refused(&s, &core, &["core WebAssembly module, not a component"]);

    // A real component of another world (a wasi:cli command).
    let wrong = write(
        "wrong.toml",
        &other(&plugin("wrong-world").display().to_string()),
    );
    assert_refused(
        &s,
        &wrong,
        &[
            "does not implement the agent world",
            "agenthost:agent/agent@0.1.0",
        ],
    );

    // A component importing what its manifest does not grant: the interface and the grant.
    let ungranted = write(
        "ungranted.toml",
        &format!(
            "name = \"echo2\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n",
            plugin("echo").display()
        ),
    );
    assert_refused(
        &s,
        &ungranted,
        &["agenthost:agent/bus@0.1.0", "capabilities.publish"],
    );

    // A component that opens raw sockets: never granted, whatever the manifest says — refused
    // before it is compiled (no artifact is cached for it).
    let compiled_dir = s.path().join("data/compiled");
    let artifacts = || std::fs::read_dir(&compiled_dir).map_or(0, |d| d.count());
    let cached_before = artifacts();
    let sockets = write(
        "sockets.toml",
        &format!(
            "name = \"sockets\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n",
            plugin("sockets").display()
        ),
    );
    assert_refused(
        &s,
        &sockets,
        &["wasi:sockets/tcp", "raw sockets are never granted"],
    );
    assert_eq!(
        artifacts(),
        cached_before,
        "a refused component is not compiled"
    );

    // A component that makes HTTP requests, with no `capabilities.http`: refused, naming the
    // interface and the grant.
    let no_http = write(
        "no-http.toml",
        &format!(
            "name = \"no-http\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[capabilities]\npublish = [\"x.v1\"]\nfiles = [{{ path = \".\", mount = \"/data\" }}]\n",
            plugin("hostile").display()
        ),
    );
    assert_refused(
        &s,
        &no_http,
        &["wasi:http/outgoing-handler", "capabilities.http"],
    );

    // A pinned digest that does not match.
    let pinned = write(
        "pinned.toml",
        &format!(
            "name = \"echo3\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\ndigest = \"sha256:{}\"\n[capabilities]\npublish = [\"x\"]\n",
            plugin("echo").display(),
            "0".repeat(64)
        ),
    );
    assert_refused(&s, &pinned, &["digest mismatch"]);

    // A dead-letter topic no grant covers: a trap would publish the event there.
    let exfil = write(
        "exfil.toml",
        &format!(
            "name = \"exfil\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[delivery]\ndead_letter = \"secrets.exfiltrated.v1\"\n[capabilities]\npublish = [\"x\"]\n",
            plugin("echo").display()
        ),
    );
    assert_refused(
        &s,
        &exfil,
        &[
            "exfil.toml",
            "`delivery.dead_letter`",
            "not covered by `capabilities.publish`",
        ],
    );

    // A files grant of the host's own data_dir (through `..`): every agent's state and the
    // compiled artifacts the host loads as native code.
    let snoop = write(
        "snoop.toml",
        &format!(
            "name = \"snoop\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[capabilities]\npublish = [\"x\"]\nfiles = [{{ path = \"../data\", mount = \"/state\" }}]\n",
            plugin("echo").display()
        ),
    );
    assert_refused(
        &s,
        &snoop,
        &["snoop.toml", "`capabilities.files[0].path`", "data_dir"],
    );

    // The variable holding the admin token, asked for through `capabilities.env`.
    let thief = write(
        "thief.toml",
        &format!(
            "name = \"thief\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[capabilities]\npublish = [\"x\"]\nenv = [\"AGENTHOST_ADMIN_TOKEN\"]\n",
            plugin("echo").display()
        ),
    );
    assert_refused(
        &s,
        &thief,
        &["thief.toml", "`capabilities.env[0]`", "the admin token"],
    );

    // Through all of that, echo kept serving.
    publish(&host.url, "demo.in.v1", None, "still here", None).unwrap();
    let out = consume(&host.url, "demo.out.v1", 1, Duration::from_secs(30));
    assert_eq!(out.len(), 1, "log:\n{}", host.log_text());
    assert_eq!(out[0].payload.as_deref(), Some("still here"));

    // And `agents` shows echo running and the refusals with their reasons.
    let agents = s.cli(&["agents"]);
    assert!(agents.status.success(), "{}", describe(&agents));
    let text = String::from_utf8_lossy(&agents.stdout);
    assert!(text.contains("echo") && text.contains("1.0.0"), "{text}");
    assert!(
        text.contains("refused") && text.contains("digest mismatch"),
        "{text}"
    );
}

#[test]
fn a_bad_manifest_at_start_is_refused_and_the_others_run() {
    let s = Scenario::new("");
    s.manifest("echo", ECHO);
    s.manifest(
        "broken",
        "name = \"broken\"\nversion = \"1.0.0\"\ncomponent = \"nope.wasm\"\nmystery = 1\n",
    );
    let host = s.start();
    let agents = s.cli(&["agents", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert_eq!(v["agents"][0]["name"], "echo");
    let refusal = v["refused"][0]["error"].as_str().unwrap();
    assert!(
        refusal.contains("broken.toml") && refusal.contains("mystery"),
        "{refusal}"
    );
    publish(&host.url, "demo.in.v1", None, "x", None).unwrap();
    assert_eq!(
        consume(&host.url, "demo.out.v1", 1, Duration::from_secs(30)).len(),
        1
    );
}

#[test]
fn redeploying_with_more_capabilities_needs_approval() {
    let s = Scenario::new("");
    s.manifest("echo", ECHO);
    let _host = s.start();
    let upgrade = s.path().join("echo-2.toml");
    std::fs::write(
        &upgrade,
        ECHO.replace("1.0.0", "2.0.0")
            .replace(
                "publish = [\"demo.out.v1\"]",
                "publish = [\"demo.out.v1\", \"billing.*\"]",
            )
            .replace(
                "{plugins}",
                &target_dir().join("plugins").display().to_string(),
            ),
    )
    .unwrap();
    let refused = s.cli(&["deploy", upgrade.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("+ publish billing.*") && stderr.contains("--approve"),
        "{stderr}"
    );

    let approved = s.cli(&["deploy", upgrade.to_str().unwrap(), "--approve"]);
    assert!(approved.status.success(), "{}", describe(&approved));
    assert!(
        String::from_utf8_lossy(&approved.stdout).contains("deployed echo 2.0.0 (replacing 1.0.0)")
    );
    let agents = s.cli(&["agents", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert_eq!(v["agents"][0]["version"], "2.0.0");
}

#[test]
fn inspect_shows_imports_and_what_a_manifest_is_missing() {
    let s = Scenario::new("");
    let inspect = |args: &[&str]| {
        std::process::Command::new(agenthost_bin())
            .arg("inspect")
            .args(args)
            .output()
            .unwrap()
    };
    let manifest = s.manifest("echo", &ECHO.replace("publish = [\"demo.out.v1\"]", ""));
    let out = inspect(&[
        plugin("echo").to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    // Not deployable: said on stdout, and the exit status says it to a script.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("agenthost:agent/agent@0.1.0"), "{text}");
    assert!(
        text.contains("MISSING  agenthost:agent/bus@0.1.0"),
        "{text}"
    );
    assert!(text.contains("capabilities.publish"), "{text}");
    assert!(text.contains("deployable: no"), "{text}");
    assert!(
        !text.contains("agenthost:agent/mcp"),
        "echo does not import mcp: {text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not deployable under"),
        "{}",
        describe(&out)
    );

    // Without a component, the manifest's own; deployable, exit 0, with and without
    // compiling it.
    let manifest = s.manifest("echo", ECHO);
    let out = inspect(&["--manifest", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("echo.wasm"), "{text}");
    assert!(
        text.contains("deployable: yes, by what it declares"),
        "{text}"
    );
    let out = inspect(&["--manifest", manifest.to_str().unwrap(), "--compile"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deployable: yes (compiled and linked)"),
        "{}",
        describe(&out)
    );

    // A component path that does not resolve names the manifest, the key and where a
    // relative path starts, with the OS error once.
    let manifest = s.manifest(
        "lost",
        &ECHO
            .replace("name = \"echo\"", "name = \"lost\"")
            .replace("{plugins}/echo.wasm", "../nowhere/echo.wasm"),
    );
    let out = inspect(&["--manifest", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lost.toml")
            && err.contains("`component` = \"../nowhere/echo.wasm\"")
            && err.contains("a relative path starts at the manifest's directory"),
        "{err}"
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn a_glob_that_matches_nothing_is_named_at_start() {
    let s = Scenario::new("");
    let host = s.start();
    let log = host.log_text();
    assert!(
        log.contains("the `agents` glob matches no manifest") && log.contains("agents/*.toml"),
        "{log}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = std::process::Command::new(agenthost_bin())
        .args(["publish"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(agenthost_bin())
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_restart_loads_compiled_components_from_the_cache() {
    let s = Scenario::new("");
    s.manifest("echo", ECHO);
    let mut host = s.start();
    let compiled = s.path().join("data/compiled");
    let artifacts = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut found: Vec<_> = std::fs::read_dir(&compiled)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    };
    let first = artifacts();
    assert_eq!(first.len(), 1, "one compiled artifact for echo: {first:?}");
    assert!(first[0].0.extension().is_some_and(|e| e == "cwasm"));
    // A first compile says so, and how long it took.
    let log = host.log_text();
    assert!(
        log.contains("compiling a component not compiled before")
            && log.contains("component compiled"),
        "{log}"
    );
    assert!(host.terminate().success());

    let host = s.start();
    // Loaded, not rewritten: the same file with the same modification time.
    assert_eq!(artifacts(), first);
    assert!(
        !host.log_text().contains("component compiled"),
        "a cached component is not compiled again: {}",
        host.log_text()
    );
    publish(&host.url, "demo.in.v1", None, "from the cache", None).unwrap();
    assert_eq!(
        consume(&host.url, "demo.out.v1", 1, Duration::from_secs(30)).len(),
        1
    );
}

#[test]
fn a_host_without_fuel_metering_refuses_a_fuel_budget() {
    let s = Scenario::new("fuel = false");
    s.manifest("echo", ECHO);
    let _host = s.start();
    let budgeted = s.path().join("budgeted.toml");
    std::fs::write(
        &budgeted,
        format!(
            "name = \"budgeted\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[limits]\nfuel = 1000000\n",
            plugin("echo").display()
        ),
    )
    .unwrap();
    assert_refused(&s, &budgeted, &["limits.fuel", "runtime.fuel = false"]);
}

/// `component` with a custom section of `size` bytes appended: the same component, bigger.
fn padded(component: &[u8], size: usize) -> Vec<u8> {
    let name = b"padding";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.resize(body.len() + size, 0);
    let mut out = component.to_vec();
    out.push(0); // custom section
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_large_component_deploys_through_the_cli() {
    // Agents built from JavaScript or Python embed their interpreter (10-20 MB).
    let s = Scenario::new("");
    let host = s.start();
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let echo = std::fs::read(plugin("echo")).unwrap();
    std::fs::write(incoming.join("big.wasm"), padded(&echo, 20 << 20)).unwrap();
    let manifest = incoming.join("big.toml");
    std::fs::write(&manifest, ECHO.replace("{plugins}/echo.wasm", "big.wasm")).unwrap();
    let out = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    publish(&host.url, "demo.in.v1", None, "big hello", None).unwrap();
    let got = consume(&host.url, "demo.out.v1", 1, Duration::from_secs(30));
    assert_eq!(got[0].payload.as_deref(), Some("big hello"));
}

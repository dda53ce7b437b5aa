//! Agents written in other languages, run by a real host against the pricing example's real MCP
//! servers: `price-collector` in Python (componentize-py, `plugins-py/`) and `customer-notify`
//! in JavaScript (componentize-qjs, `plugins-js/`), both built by `cargo xtask plugins`.
//! Deny-by-default holds for them too: each imports only the capabilities it uses.

use agenthost_tests::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn mcp_server(name: &str, script: &str, extra: &[&str]) -> String {
    peers::pricing_mcp_server(name, script, extra)
}

const PRICE_COLLECTOR: &str = r#"
name = "price-collector"
version = "1.0.0"
component = "{plugins}/price-collector.wasm"

[[subscribe]]
topic = "ecommerce.price-check-requested.v1"

[delivery]
max_attempts = 2
backoff = "100ms"

[limits]
timeout = "10s"

[capabilities]
publish = ["ecommerce.price-changed.v1"]
config = { out = "ecommerce.price-changed.v1", scraper = "shop-scraper" }
mcp = [{ server = "shop-scraper", tools = ["scrape_price"] }]

[a2a]
expose = true
security = []
"#;

const CUSTOMER_NOTIFY: &str = r#"
name = "customer-notify"
version = "1.0.0"
component = "{plugins}/customer-notify.wasm"

[[subscribe]]
topic = "ecommerce.order-updated.v1"

[delivery]
max_attempts = 2
backoff = "100ms"

[limits]
timeout = "10s"

[capabilities]
config = { notifier = "notifier" }
mcp = [{ server = "notifier", tools = ["send_notification"] }]

[a2a]
expose = true
security = []
"#;

/// Dead letters by correlation id: (failure reason, attempts), once `count` arrived.
fn dead_letters(host: &HostProcess, agent: &str, count: usize) -> Vec<(String, String, String)> {
    consume(
        &host.url,
        &format!("agent.dead-letter.{agent}.v1"),
        count,
        Duration::from_secs(60),
    )
    .into_iter()
    .map(|r| {
        let header = |name: &str| r.headers.get(name).cloned().unwrap_or_default();
        (
            header("correlation-id"),
            header("agenthost-error"),
            header("agenthost-attempts"),
        )
    })
    .collect()
}

/// The reason `correlation_id` was dead-lettered for, after how many attempts.
fn reason<'a>(
    dead: &'a [(String, String, String)],
    correlation_id: &str,
    host: &HostProcess,
) -> (&'a str, &'a str) {
    dead.iter()
        .find(|(c, _, _)| c == correlation_id)
        .map(|(_, r, a)| (r.as_str(), a.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "{correlation_id} was not dead-lettered: {dead:?}\nlog:\n{}",
                host.log_text()
            )
        })
}

/// Waits until the host's log contains `needle`.
fn wait_for_log(host: &HostProcess, needle: &str) {
    let start = Instant::now();
    while !host.log_text().contains(needle) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the log never showed {needle:?}:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn python_price_collector_publishes_scraped_prices_and_dead_letters_what_it_cannot_price() {
    let s = Scenario::new(&mcp_server("shop-scraper", "scraper_server.py", &[]));
    s.manifest("price-collector", PRICE_COLLECTOR);
    let started = Instant::now();
    let host = s.start();
    eprintln!(
        "price-collector: host ready (first deploy, component compiled) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let topic = "ecommerce.price-check-requested.v1";
    let request = json!({"product": "sku-1"}).to_string();
    publish(
        &host.url,
        topic,
        Some("sku-1"),
        &request,
        Some("check-sku-1"),
    )
    .unwrap();
    let unknown = json!({"product": "sku-404"}).to_string();
    publish(&host.url, topic, None, &unknown, Some("check-sku-404")).unwrap();
    publish(&host.url, topic, None, "{\"sku\": 1", Some("check-garbled")).unwrap();
    publish(&host.url, topic, None, "{}", Some("check-empty")).unwrap();

    let changed = consume(
        &host.url,
        "ecommerce.price-changed.v1",
        1,
        Duration::from_secs(60),
    );
    assert_eq!(changed.len(), 1, "{changed:?}\nlog:\n{}", host.log_text());
    let record = &changed[0];
    assert_eq!(record.key.as_deref(), Some("sku-1"));
    assert_eq!(record.headers["correlation-id"], "check-sku-1");
    assert_eq!(record.headers["content-type"], "application/json");
    assert_eq!(record.headers["agenthost-agent"], "price-collector");
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({
            "product": "sku-1",
            "price": 24.99,
            "competitor_price": 19.99,
            "currency": "EUR",
            "source": "https://shop.example/catalogue#sku-1",
        })
    );
    wait_for_log(&host, "sku-1: ours 24.99 EUR, competitor 19.99");

    // Rejected at once, not retried (max_attempts is 2).
    let dead = dead_letters(&host, "price-collector", 3);
    let (missing, attempts) = reason(&dead, "check-sku-404", &host);
    assert!(
        missing.contains("scrape_price on shop-scraper: ")
            && missing.contains("no listing for sku-404"),
        "the tool's own reason (the server must raise ToolError for the SDK to pass it on): {missing}"
    );
    assert_eq!(attempts, "1");
    let (garbled, attempts) = reason(&dead, "check-garbled", &host);
    assert!(
        garbled.contains(&format!("{topic}["))
            && garbled.contains("]@")
            && garbled.contains("payload is not JSON"),
        "{garbled}"
    );
    assert_eq!(attempts, "1");
    let (empty, attempts) = reason(&dead, "check-empty", &host);
    assert!(
        empty.contains(topic) && empty.contains("\"product\" is missing"),
        "{empty}"
    );
    assert_eq!(attempts, "1");
    // Records on the output topic so far (waiting briefly for a second one).
    let price_changes = || {
        consume(
            &host.url,
            "ecommerce.price-changed.v1",
            2,
            Duration::from_millis(500),
        )
        .len()
    };
    // Nothing else was published.
    assert_eq!(price_changes(), 1);

    // On A2A, a product id gets the prices in the reply, and nothing is published.
    let out = s.cli(&["send", "price-collector", "sku-5"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sku-5: ours 12.0 EUR, competitor 15.0") && text.contains("[completed]"),
        "{text}"
    );
    assert_eq!(price_changes(), 1);
}

#[test]
fn javascript_customer_notify_sends_notifications_and_dead_letters_malformed_updates() {
    let scratch = tempfile::tempdir().unwrap();
    let outbox = scratch.path().join("outbox.jsonl");
    let s = Scenario::new(&mcp_server(
        "notifier",
        "notify_server.py",
        &["--outbox", outbox.to_str().unwrap()],
    ));
    s.manifest("customer-notify", CUSTOMER_NOTIFY);
    let started = Instant::now();
    let host = s.start();
    eprintln!(
        "customer-notify: host ready (first deploy, component compiled) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let topic = "ecommerce.order-updated.v1";
    let reprice =
        json!({"product": "sku-1", "action": "reprice", "price": 19.49, "currency": "EUR"});
    publish(
        &host.url,
        topic,
        Some("sku-1"),
        &reprice.to_string(),
        Some("update-1"),
    )
    .unwrap();
    let restock = json!({"product": "sku-2", "action": "restock", "incoming": 120});
    publish(
        &host.url,
        topic,
        Some("sku-2"),
        &restock.to_string(),
        Some("update-2"),
    )
    .unwrap();
    publish(&host.url, topic, None, "not json", Some("update-garbled")).unwrap();
    let unknown = json!({"product": "sku-1", "action": "discount"});
    publish(
        &host.url,
        topic,
        None,
        &unknown.to_string(),
        Some("update-unknown"),
    )
    .unwrap();
    let no_price = json!({"product": "sku-1", "action": "reprice"});
    publish(
        &host.url,
        topic,
        None,
        &no_price.to_string(),
        Some("update-no-price"),
    )
    .unwrap();
    let refused = json!({"product": "x".repeat(250), "action": "restock", "incoming": 1});
    publish(
        &host.url,
        topic,
        None,
        &refused.to_string(),
        Some("update-refused"),
    )
    .unwrap();

    let start = Instant::now();
    let sent = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&outbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("outbox line is JSON"))
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "two notifications expected, outbox has {lines:?}\nlog:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sent.len(), 2, "{sent:?}");
    let find = |audience: &str| {
        sent.iter()
            .find(|n| n["audience"] == audience)
            .unwrap_or_else(|| panic!("no notification for {audience}: {sent:?}"))
    };
    let price = find("watchers:sku-1");
    assert_eq!(price["subject"], "New price for sku-1");
    assert_eq!(price["body"], "sku-1 now costs 19.49 EUR");
    let stock = find("watchers:sku-2");
    assert_eq!(stock["subject"], "sku-2 is being restocked");
    assert_eq!(stock["body"], "120 units are on order");
    wait_for_log(
        &host,
        &format!(
            "notified 3 watchers of sku-1 ({})",
            price["id"].as_str().unwrap()
        ),
    );
    wait_for_log(
        &host,
        &format!(
            "notified 5 watchers of sku-2 ({})",
            stock["id"].as_str().unwrap()
        ),
    );

    let dead = dead_letters(&host, "customer-notify", 4);
    let (garbled, attempts) = reason(&dead, "update-garbled", &host);
    assert!(
        garbled.contains(&format!("{topic}[")) && garbled.contains("payload is not JSON"),
        "{garbled}"
    );
    assert_eq!(attempts, "1", "malformed updates are rejected, not retried");
    let (unknown, attempts) = reason(&dead, "update-unknown", &host);
    assert!(
        unknown.contains(topic) && unknown.contains("unknown action \"discount\""),
        "{unknown}"
    );
    assert_eq!(attempts, "1");
    let (no_price, attempts) = reason(&dead, "update-no-price", &host);
    assert!(no_price.contains("numeric \"price\""), "{no_price}");
    assert_eq!(attempts, "1");
    // The notifier refused (a subject over its 200 characters): a tool error is retried, and
    // dead-lettered with the tool's text once the attempts are used up.
    let (refused, attempts) = reason(&dead, "update-refused", &host);
    assert!(
        refused.contains("send_notification on notifier failed: ")
            && refused.contains("send_notification"),
        "{refused}"
    );
    assert_eq!(attempts, "2");

    let out = s.cli(&["send", "customer-notify", "hello"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ecommerce.order-updated.v1") && text.contains("[completed]"),
        "{text}"
    );
}

/// `agenthost inspect --format json` of a component, against a manifest.
fn inspect(component: &str, manifest: &std::path::Path) -> Value {
    let out = std::process::Command::new(agenthost_bin())
        .args(["inspect", plugin(component).to_str().unwrap(), "--manifest"])
        .arg(manifest)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let inspected: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    // The exit status says what `deployable` says.
    let deployable = inspected["deployable"].as_bool().unwrap();
    assert_eq!(out.status.success(), deployable, "{}", describe(&out));
    inspected
}

fn imports(inspected: &Value) -> Vec<String> {
    inspected["component"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn non_rust_agents_import_only_the_capabilities_they_use() {
    let s = Scenario::new("");
    let collector = s.manifest("price-collector", PRICE_COLLECTOR);
    let notify = s.manifest("customer-notify", CUSTOMER_NOTIFY);

    let agenthost = |imports: &[String]| -> Vec<String> {
        let mut ours: Vec<String> = imports
            .iter()
            .filter(|i| i.starts_with("agenthost:"))
            .cloned()
            .collect();
        ours.sort();
        ours
    };

    // Python is built with its WASI stubbed: its world is all it imports.
    let python = inspect("price-collector", &collector);
    let mut all = imports(&python);
    all.sort();
    assert_eq!(
        all,
        [
            "agenthost:agent/bus@0.1.0",
            "agenthost:agent/config@0.1.0",
            "agenthost:agent/log@0.1.0",
            "agenthost:agent/mcp@0.1.0",
            "agenthost:agent/types@0.1.0",
        ],
        "{python:#}"
    );
    assert_eq!(python["deployable"], true, "{python:#}");

    // QuickJS keeps stdio, clocks and random (no sockets, no HTTP, no preopened files).
    let js = inspect("customer-notify", &notify);
    let all = imports(&js);
    assert_eq!(
        agenthost(&all),
        [
            "agenthost:agent/config@0.1.0",
            "agenthost:agent/log@0.1.0",
            "agenthost:agent/mcp@0.1.0",
            "agenthost:agent/types@0.1.0",
        ],
        "{js:#}"
    );
    for import in all.iter().filter(|i| !i.starts_with("agenthost:")) {
        assert!(
            [
                "wasi:cli/",
                "wasi:clocks/",
                "wasi:io/",
                "wasi:random/",
                "wasi:filesystem/"
            ]
            .iter()
            .any(|p| import.starts_with(p)),
            "customer-notify imports {import}: {js:#}"
        );
    }
    assert_eq!(js["deployable"], true, "{js:#}");

    // Without its MCP grant, neither may be deployed: the refusal names the grant.
    for (name, manifest) in [
        ("price-collector", PRICE_COLLECTOR),
        ("customer-notify", CUSTOMER_NOTIFY),
    ] {
        let ungranted = s.manifest(
            &format!("{name}-ungranted"),
            &manifest
                .lines()
                .filter(|l| !l.starts_with("mcp = "))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let refused = inspect(name, &ungranted);
        assert_eq!(refused["deployable"], false, "{refused:#}");
        assert!(
            refused["refusal"].as_str().is_some_and(
                |r| r.contains("agenthost:agent/mcp") && r.contains("capabilities.mcp")
            ),
            "{refused:#}"
        );
    }
}

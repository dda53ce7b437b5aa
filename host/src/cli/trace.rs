//! `agenthost trace CORRELATION_ID`: one request's path through the system, read from the audit
//! log — where it entered, which agents it reached (events and A2A messages), which topics it
//! crossed, which tools and peers were called, and what failed or was dead-lettered.

use crate::audit::{API_CALLER, AuditEntry, Outcome};
use crate::text::escape_control;
use serde::Serialize;

/// What a trace says in summary, besides its steps.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Agents in the order the request reached them.
    pub agents: Vec<String>,
    /// Topics the request crossed (published to or delivered from), in order.
    pub topics: Vec<String>,
    /// `server/tool` of every MCP tool called.
    pub tools: Vec<String>,
    /// `caller → peer` of every A2A message sent.
    pub a2a: Vec<String>,
    /// Where records were dead-lettered: `agent → topic: reason`.
    pub dead_letters: Vec<String>,
    /// How many steps were denied or failed.
    pub problems: usize,
    /// The hosts whose logs had steps, in the order the request reached them (empty when one
    /// host's log was read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// `topic[partition]@offset` → `topic`.
fn topic_of(target: &str) -> &str {
    target.split_once('[').map_or(target, |(topic, _)| topic)
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Puts each record's publish before its delivery. The audit log orders entries by when they
/// were recorded, and a publish (through the API, or an agent's `publish`) records its entry
/// once the record is stored — by then an agent may already be handling it. A delivery's target
/// (`topic[partition]@offset`) names the record, as does such a publish's, so the publish moves
/// up to just before the delivery. An agent's `send` is recorded by its topic alone (its place
/// is not known when it is handed over): the first later one to the delivery's topic moves.
pub fn causal_order(mut entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
    let mut i = 0;
    while i < entries.len() {
        if entries[i].capability == "event" {
            let target = entries[i].target.clone();
            let topic = topic_of(&target).to_owned();
            let publishes = |j: &usize, wanted: &str| {
                entries[*j].capability == "publish" && entries[*j].target == wanted
            };
            let later = (i + 1..entries.len())
                .find(|j| publishes(j, &target))
                .or_else(|| (i + 1..entries.len()).find(|j| publishes(j, &topic)));
            if let Some(later) = later {
                let publish = entries.remove(later);
                entries.insert(i, publish);
                i += 1;
            }
        }
        i += 1;
    }
    entries
}

/// One request's entries from the audit logs of several hosts (URL and entries each), as one
/// trace: each entry tagged with its host's `host:port` when there is more than one, in time
/// order across the hosts (their clocks are compared as they are: keep them synchronised),
/// then in causal order.
pub fn merge(logs: Vec<(String, Vec<AuditEntry>)>) -> Vec<AuditEntry> {
    let several = logs.len() > 1;
    let mut entries: Vec<AuditEntry> = logs
        .into_iter()
        .flat_map(|(url, entries)| {
            let label = host_label(&url).to_owned();
            entries.into_iter().map(move |mut e| {
                if several {
                    e.host.clone_from(&label);
                }
                e
            })
        })
        .collect();
    // Stable: a host's entries keep the order its log recorded them in.
    entries.sort_by_key(|e| e.time_ms);
    causal_order(entries)
}

/// `http://127.0.0.1:8080/` → `127.0.0.1:8080`.
fn host_label(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
}

pub fn summarize(entries: &[AuditEntry]) -> Summary {
    let mut s = Summary::default();
    for e in entries {
        // A refused MCP call (`mcp.serve`, denied) never reached the agent.
        let invoked = matches!(e.capability.as_str(), "event" | "a2a.message" | "mcp.serve")
            && e.outcome != Outcome::Denied;
        if e.agent != API_CALLER && invoked {
            push_new(&mut s.agents, e.agent.clone());
        }
        match e.capability.as_str() {
            "publish" | "event" if e.outcome != Outcome::Denied => {
                push_new(&mut s.topics, topic_of(&e.target).to_owned());
            }
            "mcp.call-tool" => push_new(&mut s.tools, e.target.clone()),
            "a2a.send-message" => push_new(&mut s.a2a, format!("{} → {}", e.agent, e.target)),
            "dead-letter" => s
                .dead_letters
                .push(format!("{} → {}: {}", e.agent, e.target, e.detail)),
            _ => {}
        }
        if e.outcome != Outcome::Allowed {
            s.problems += 1;
        }
        if !e.host.is_empty() {
            push_new(&mut s.hosts, e.host.clone());
        }
    }
    s
}

/// The trace as text: a line per step, time relative to the first, then the summary. Config
/// reads are counted but not listed: every invocation makes several, and they are not part of
/// the path (the JSON form has every step).
/// " (N more like this)" for an entry that stands for several.
pub fn repeats(repeated: u32) -> String {
    match repeated {
        0 => String::new(),
        n => format!("  ({n} more like this)"),
    }
}

/// `  DENIED` / `  FAILED` (nothing when allowed) and `  (why)` (nothing without a detail), as
/// a step's line shows them.
pub fn outcome_and_detail(e: &AuditEntry) -> (String, String) {
    let outcome = match e.outcome {
        Outcome::Allowed => String::new(),
        other => format!("  {}", other.as_str().to_uppercase()),
    };
    let detail = if e.detail.is_empty() {
        String::new()
    } else {
        format!("  ({})", escape_control(&e.detail))
    };
    (outcome, detail)
}

pub fn render(correlation_id: &str, all: &[AuditEntry]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if all.is_empty() {
        return out;
    }
    let start = all.iter().map(|e| e.time_ms).min().unwrap_or(0);
    let span_ms = all.iter().map(|e| e.time_ms).max().unwrap_or(0) - start;
    let summary = summarize(all);
    let entries: Vec<&AuditEntry> = all
        .iter()
        .filter(|e| e.capability != "config" || e.outcome != Outcome::Allowed)
        .collect();
    let hidden = match all.len() - entries.len() {
        0 => String::new(),
        n => format!(" (and {n} config reads)"),
    };
    let hosts = match summary.hosts.len() {
        0 => String::new(),
        n => format!(", {n} hosts"),
    };
    let _ = writeln!(
        out,
        "trace {correlation_id}: {} steps{hidden}, {} agents{hosts}, {}",
        entries.len(),
        summary.agents.len(),
        humantime::format_duration(std::time::Duration::from_millis(span_ms))
    );
    // Read from several hosts, each step says whose log it is in.
    let who: Vec<String> = entries
        .iter()
        .map(|e| match e.host.as_str() {
            "" => e.who(),
            host => format!("{} on {host}", e.who()),
        })
        .collect();
    let who_width = who.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    let cap_width = entries
        .iter()
        .map(|e| e.capability.len())
        .max()
        .unwrap_or(0);
    for (e, who) in entries.iter().zip(&who) {
        let at = e.time_ms.saturating_sub(start);
        let (outcome, detail) = outcome_and_detail(e);
        let _ = writeln!(
            out,
            "  {:>7}  {:<who_width$}  {:<cap_width$}  {}{outcome}{detail}{}",
            format!("+{at}ms"),
            escape_control(who),
            e.capability,
            escape_control(&e.target),
            repeats(e.repeated),
        );
    }
    let mut line = |label: &str, items: &[String], separator: &str| {
        if !items.is_empty() {
            let _ = writeln!(out, "{label:<13} {}", items.join(separator));
        }
    };
    line("hosts:", &summary.hosts, " → ");
    line("agents:", &summary.agents, " → ");
    line("topics:", &summary.topics, " → ");
    line("tool calls:", &summary.tools, ", ");
    line("a2a:", &summary.a2a, ", ");
    line("dead letters:", &summary.dead_letters, "; ");
    if summary.problems > 0 {
        let _ = writeln!(out, "{:<13} {}", "problems:", summary.problems);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at: u64, agent: &str, capability: &str, target: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            time_ms: 1_000 + at,
            agent: agent.into(),
            version: if agent == API_CALLER { "" } else { "1.0.0" }.into(),
            correlation_id: "c-1".into(),
            capability: capability.into(),
            target: target.into(),
            outcome,
            detail: String::new(),
            repeated: 0,
            id: String::new(),
            host: String::new(),
        }
    }

    fn pricing_request() -> Vec<AuditEntry> {
        use Outcome::*;
        vec![
            step(0, API_CALLER, "publish", "ecommerce.check.v1[0]@4", Allowed),
            step(2, "collector", "event", "ecommerce.check.v1[0]@4", Allowed),
            step(
                9,
                "collector",
                "mcp.call-tool",
                "scraper/scrape_price",
                Allowed,
            ),
            step(
                11,
                "collector",
                "publish",
                "ecommerce.price-changed.v1",
                Allowed,
            ),
            step(
                12,
                "analysis",
                "event",
                "ecommerce.price-changed.v1[0]@7",
                Allowed,
            ),
            step(14, "analysis", "state.get", "last-price/sku-1", Allowed),
            step(15, "analysis", "config", "threshold", Allowed),
            step(
                20,
                "analysis",
                "mcp.call-tool",
                "inventory/get_inventory",
                Allowed,
            ),
            step(22, "analysis", "a2a.send-message", "orders", Allowed),
            step(23, "orders", "a2a.message", "task t-1", Allowed),
            step(25, "orders", "publish", "secret.topic.v1", Denied),
        ]
    }

    #[test]
    fn what_agents_chose_cannot_forge_lines_and_repeats_are_counted() {
        let mut forged = step(
            0,
            "a",
            "state.get",
            "k\n  +9ms  root  deploy  evil\x1b[2J",
            Outcome::Denied,
        );
        forged.repeated = 41;
        let text = render("c-1", &[forged]);
        let steps: Vec<&str> = text.lines().filter(|l| l.contains("state.get")).collect();
        assert_eq!(steps.len(), 1, "{text}");
        assert!(
            steps[0].contains("k\\u{a}  +9ms") && steps[0].contains("\\u{1b}[2J"),
            "{text}"
        );
        assert!(steps[0].contains("(41 more like this)"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
    }

    #[test]
    fn the_summary_follows_the_request_through_agents_topics_tools_and_peers() {
        let s = summarize(&pricing_request());
        assert_eq!(s.agents, ["collector", "analysis", "orders"]);
        assert_eq!(
            s.topics,
            ["ecommerce.check.v1", "ecommerce.price-changed.v1"],
            "a denied publish crossed no topic"
        );
        assert_eq!(s.tools, ["scraper/scrape_price", "inventory/get_inventory"]);
        assert_eq!(s.a2a, ["analysis → orders"]);
        assert_eq!(s.problems, 1);
    }

    #[test]
    fn a_publish_recorded_after_its_delivery_is_shown_before_it() {
        use Outcome::*;
        let steps = vec![
            step(0, "collector", "event", "t.v1[0]@4", Allowed),
            step(1, API_CALLER, "publish", "t.v1[0]@4", Allowed),
            // An agent's publish, recorded once stored (by its place), after the event it
            // caused; then a send, recorded by its topic, also after its event.
            step(2, "analysis", "event", "u.v1[1]@7", Allowed),
            step(3, "collector", "publish", "u.v1[1]@7", Allowed),
            step(4, "orders", "event", "w.v1[0]@2", Allowed),
            step(5, "analysis", "publish", "w.v1", Allowed),
        ];
        let ordered = causal_order(steps);
        let order: Vec<(&str, &str)> = ordered
            .iter()
            .map(|e| (e.agent.as_str(), e.capability.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (API_CALLER, "publish"),
                ("collector", "event"),
                ("collector", "publish"),
                ("analysis", "event"),
                ("analysis", "publish"),
                ("orders", "event"),
            ]
        );
    }

    #[test]
    fn the_text_shows_every_step_with_its_time_and_what_went_wrong() {
        let text = render("c-1", &pricing_request());
        assert!(
            text.starts_with("trace c-1: 10 steps (and 1 config reads), 3 agents, 25ms\n"),
            "{text}"
        );
        assert!(
            !text.contains("threshold"),
            "config reads are not listed: {text}"
        );
        assert!(text.contains("+0ms  (api)"), "{text}");
        assert!(
            text.contains("+20ms  analysis@1.0.0   mcp.call-tool     inventory/get_inventory"),
            "{text}"
        );
        assert!(text.contains("secret.topic.v1  DENIED"), "{text}");
        assert!(
            text.contains("agents:       collector → analysis → orders"),
            "{text}"
        );
        assert!(text.contains("problems:     1"), "{text}");
        assert!(!text.contains("hosts"), "one host's log: {text}");
        assert_eq!(render("c-2", &[]), "");
    }

    #[test]
    fn logs_of_several_hosts_make_one_trace_in_time_order_naming_each_steps_host() {
        use Outcome::*;
        let first = vec![
            step(0, "collector", "event", "t.v1[0]@4", Allowed),
            step(1, API_CALLER, "publish", "t.v1[0]@4", Allowed),
            step(2, "collector", "publish", "u.v1", Allowed),
        ];
        let second = vec![
            step(3, "analysis", "event", "u.v1[1]@9", Allowed),
            step(5, "analysis", "publish", "w.v1", Denied),
        ];
        let merged = merge(vec![
            ("http://10.0.0.2:8080/".into(), second.clone()),
            ("http://10.0.0.1:8080".into(), first.clone()),
        ]);
        let order: Vec<(&str, &str, &str)> = merged
            .iter()
            .map(|e| (e.host.as_str(), e.agent.as_str(), e.capability.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("10.0.0.1:8080", API_CALLER, "publish"),
                ("10.0.0.1:8080", "collector", "event"),
                ("10.0.0.1:8080", "collector", "publish"),
                ("10.0.0.2:8080", "analysis", "event"),
                ("10.0.0.2:8080", "analysis", "publish"),
            ],
            "by time across the hosts, publishes before their deliveries"
        );
        let summary = summarize(&merged);
        assert_eq!(summary.hosts, ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert_eq!(summary.agents, ["collector", "analysis"]);
        let text = render("c-1", &merged);
        assert!(
            text.starts_with("trace c-1: 5 steps, 2 agents, 2 hosts, 5ms\n"),
            "{text}"
        );
        assert!(
            text.contains("+3ms  analysis@1.0.0 on 10.0.0.2:8080   event    u.v1[1]@9"),
            "{text}"
        );
        assert!(
            text.contains("hosts:        10.0.0.1:8080 → 10.0.0.2:8080"),
            "{text}"
        );

        // One host's log is a trace as before: no host named.
        let alone = merge(vec![("http://10.0.0.1:8080".into(), first)]);
        assert!(alone.iter().all(|e| e.host.is_empty()));
        assert!(summarize(&alone).hosts.is_empty());
    }
}

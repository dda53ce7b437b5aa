//! Prometheus metrics: per-agent invocations, failures by reason, dead letters, latency.

use crate::invocation::InvocationError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    agent: String,
    version: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    agent: String,
    version: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    agent: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BusErrorLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    capability: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    agent: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpCallLabels {
    server: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct A2aTaskLabels {
    agent: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct A2aRequestLabels {
    method: &'static str,
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    dead_letters: Family<VersionLabels, Counter>,
    publishes: Family<OutcomeLabels, Counter>,
    bus_publishes: Counter,
    instantiations: Family<VersionLabels, Counter>,
    instances_in_use: Family<VersionLabels, Gauge>,
    memory: Family<VersionLabels, Histogram, fn() -> Histogram>,
    fuel: Family<VersionLabels, Counter>,
    consumer_lag: Family<LagLabels, Gauge>,
    bus_errors: Family<BusErrorLabels, Counter>,
    audit: Family<AuditLabels, Counter>,
    /// `audit` by capability, then outcome: an audit entry (several per event) finds its
    /// counter without building labels (a String) and hashing them into the family.
    audit_counters: RwLock<HashMap<String, Vec<(&'static str, Counter)>>>,
    log_dropped: Family<AgentLabels, Counter>,
    mcp_up: Family<ServerLabels, Gauge>,
    mcp_restarts: Family<ServerLabels, Counter>,
    mcp_calls: Family<McpCallLabels, Counter>,
    mcp_latency: Family<ServerLabels, Histogram, fn() -> Histogram>,
    a2a_tasks: Family<A2aTaskLabels, Counter>,
    a2a_requests: Family<A2aRequestLabels, Counter>,
}

/// One agent version's invocation metrics, looked up when the version is deployed: each
/// invocation records through these handles (atomic updates) instead of building and hashing
/// label sets for about ten lookups per event (perf on the S2 benchmark).
#[derive(Clone)]
pub struct VersionMetrics {
    /// For failures, whose outcome label varies: looked up when they happen.
    invocations: Family<InvocationLabels, Counter>,
    agent: String,
    version: String,
    event: KindMetrics,
    message: KindMetrics,
    tool: KindMetrics,
    instantiations: Counter,
    in_use: Gauge,
    memory: Histogram,
    fuel: Counter,
}

/// What an invocation handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvocationKind {
    /// A bus record (`on-event`).
    Event,
    /// An A2A message (`on-message`).
    Message,
    /// An MCP tool call (`on-message` too, reached through the host's MCP server).
    Tool,
}

impl InvocationKind {
    /// Its name in metric labels and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Message => "message",
            Self::Tool => "tool",
        }
    }
}

#[derive(Clone)]
struct KindMetrics {
    ok: Counter,
    latency: Histogram,
}

impl VersionMetrics {
    /// An invocation of `kind` ended after `elapsed`.
    pub fn record_invocation(
        &self,
        kind: InvocationKind,
        elapsed: Duration,
        error: Option<&InvocationError>,
    ) {
        let metrics = match kind {
            InvocationKind::Event => &self.event,
            InvocationKind::Message => &self.message,
            InvocationKind::Tool => &self.tool,
        };
        match error {
            None => {
                metrics.ok.inc();
            }
            Some(err) => {
                self.invocations
                    .get_or_create(&InvocationLabels {
                        agent: self.agent.clone(),
                        version: self.version.clone(),
                        kind: kind.as_str(),
                        outcome: err.label(),
                    })
                    .inc();
            }
        }
        metrics.latency.observe(elapsed.as_secs_f64());
    }

    pub fn record_instantiation(&self) {
        self.instantiations.inc();
    }

    /// One more (or, with `delta` -1, one fewer) instance running an invocation.
    pub fn add_instances_in_use(&self, delta: i64) {
        self.in_use.inc_by(delta);
    }

    /// What an invocation's instance used: its linear memory at the end, and fuel if metered.
    pub fn record_resources(&self, memory: usize, fuel: Option<u64>) {
        self.memory.observe(memory as f64);
        if let Some(fuel) = fuel {
            self.fuel.inc_by(fuel);
        }
    }
}

fn latency_histogram() -> Histogram {
    // 50µs … ~26s: covers an in-process call and an invocation that runs into its timeout.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00005, 2.0, 20,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("agenthost");
        let invocations = Family::<InvocationLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let dead_letters = Family::<VersionLabels, Counter>::default();
        let publishes = Family::<OutcomeLabels, Counter>::default();
        let bus_publishes = Counter::default();
        let instantiations = Family::<VersionLabels, Counter>::default();
        let instances_in_use = Family::<VersionLabels, Gauge>::default();
        let memory =
            Family::<VersionLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                // 64 KiB (one wasm page) to 4 GiB, ×4 a bucket.
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    65_536.0, 4.0, 10,
                ))
            });
        let fuel = Family::<VersionLabels, Counter>::default();
        let consumer_lag = Family::<LagLabels, Gauge>::default();
        let bus_errors = Family::<BusErrorLabels, Counter>::default();
        let audit = Family::<AuditLabels, Counter>::default();
        let log_dropped = Family::<AgentLabels, Counter>::default();
        registry.register("invocations", "Agent invocations by outcome (ok, retry, reject, trap, timeout, memory, fuel, instantiate)", invocations.clone());
        registry.register(
            "invocation_duration_seconds",
            "Wall-clock time of agent invocations, instantiation included",
            latency.clone(),
        );
        registry.register(
            "instances_in_use",
            "Instances running an invocation now",
            instances_in_use.clone(),
        );
        registry.register(
            "invocation_memory_bytes",
            "Linear memory an invocation's instance had grown to by its end",
            memory.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel (wasm instructions, roughly) invocations consumed, when runtime.fuel is on",
            fuel.clone(),
        );
        registry.register(
            "dead_letters",
            "Events written to the dead-letter topic",
            dead_letters.clone(),
        );
        registry.register(
            "agent_publishes",
            "Publishes by agents, by outcome (ok, denied, failed)",
            publishes.clone(),
        );
        registry.register(
            "bus_publishes",
            "Records published through the HTTP API",
            bus_publishes.clone(),
        );
        registry.register(
            "instantiations",
            "Component instances created (one per invocation unless limits.reuse_instances)",
            instantiations.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records not yet finished per consumer group and partition (Kafka bus)",
            consumer_lag.clone(),
        );
        registry.register(
            "bus_errors",
            "Bus errors the host recovered from, by kind (e.g. poll_exceeded, transport, commit)",
            bus_errors.clone(),
        );
        registry.register(
            "audit_events",
            "Audited capability uses and deploy decisions, by capability and outcome (allowed, denied, failed)",
            audit.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Agent log lines dropped because the agent exceeded limits.log_rate",
            log_dropped.clone(),
        );
        let mcp_up = Family::<ServerLabels, Gauge>::default();
        let mcp_restarts = Family::<ServerLabels, Counter>::default();
        let mcp_calls = Family::<McpCallLabels, Counter>::default();
        let mcp_latency =
            Family::<ServerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "mcp_server_up",
            "1 while the host holds a working session with the MCP server",
            mcp_up.clone(),
        );
        registry.register(
            "mcp_server_restarts",
            "Sessions with an MCP server re-established after the first (a stdio child restarted, an HTTP session reopened)",
            mcp_restarts.clone(),
        );
        registry.register(
            "mcp_tool_calls",
            "Tool calls by agents, by server and outcome (allowed, tool_error, denied, failed)",
            mcp_calls.clone(),
        );
        registry.register(
            "mcp_tool_call_duration_seconds",
            "Wall-clock time of agents' tool calls, checks included",
            mcp_latency.clone(),
        );
        let a2a_tasks = Family::<A2aTaskLabels, Counter>::default();
        let a2a_requests = Family::<A2aRequestLabels, Counter>::default();
        registry.register(
            "a2a_tasks",
            "A2A tasks by agent: started, and how each run ended (completed, failed, canceled, input-required, …)",
            a2a_tasks.clone(),
        );
        registry.register(
            "a2a_requests",
            "A2A JSON-RPC requests by method and outcome (ok, error, unauthorized)",
            a2a_requests.clone(),
        );
        Self {
            registry,
            a2a_tasks,
            a2a_requests,
            mcp_up,
            mcp_restarts,
            mcp_calls,
            mcp_latency,
            invocations,
            latency,
            dead_letters,
            publishes,
            bus_publishes,
            instantiations,
            instances_in_use,
            memory,
            fuel,
            consumer_lag,
            bus_errors,
            audit,
            audit_counters: RwLock::default(),
            log_dropped,
        }
    }

    /// The hot-path metrics of one agent version, looked up once (see [`VersionMetrics`]).
    pub fn version(&self, agent: &str, version: &str) -> VersionMetrics {
        let labels = VersionLabels {
            agent: agent.into(),
            version: version.into(),
        };
        let per_kind = |kind: InvocationKind| KindMetrics {
            ok: self
                .invocations
                .get_or_create(&InvocationLabels {
                    agent: agent.into(),
                    version: version.into(),
                    kind: kind.as_str(),
                    outcome: "ok",
                })
                .clone(),
            latency: self
                .latency
                .get_or_create(&LatencyLabels {
                    agent: agent.into(),
                    version: version.into(),
                    kind: kind.as_str(),
                })
                .clone(),
        };
        VersionMetrics {
            invocations: self.invocations.clone(),
            agent: agent.into(),
            version: version.into(),
            event: per_kind(InvocationKind::Event),
            message: per_kind(InvocationKind::Message),
            tool: per_kind(InvocationKind::Tool),
            instantiations: self.instantiations.get_or_create(&labels).clone(),
            in_use: self.instances_in_use.get_or_create(&labels).clone(),
            memory: self.memory.get_or_create(&labels).clone(),
            fuel: self.fuel.get_or_create(&labels).clone(),
        }
    }

    pub fn record_dead_letter(&self, agent: &str, version: &str) {
        self.dead_letters
            .get_or_create(&VersionLabels {
                agent: agent.into(),
                version: version.into(),
            })
            .inc();
    }

    pub fn record_publish(&self, agent: &str, outcome: &'static str) {
        self.publishes
            .get_or_create(&OutcomeLabels {
                agent: agent.into(),
                outcome,
            })
            .inc();
    }

    pub fn set_consumer_lag(&self, group: &str, topic: &str, partition: u32, lag: i64) {
        let labels = LagLabels {
            group: group.into(),
            topic: topic.into(),
            partition,
        };
        self.consumer_lag.get_or_create(&labels).set(lag);
    }

    pub fn record_bus_error(&self, kind: &'static str) {
        self.bus_errors
            .get_or_create(&BusErrorLabels { kind })
            .inc();
    }

    pub fn record_audit(&self, capability: &str, outcome: &'static str) {
        let cached = self
            .audit_counters
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, counter)) = cached
            .get(capability)
            .and_then(|by_outcome| by_outcome.iter().find(|(o, _)| *o == outcome))
        {
            counter.inc();
            return;
        }
        drop(cached);
        // First of its kind (or raced with another first): a clone shares the family's value,
        // so the cached handle counts in /metrics, and get_or_create returns the same one to
        // a racing caller.
        let counter = self
            .audit
            .get_or_create(&AuditLabels {
                capability: capability.into(),
                outcome,
            })
            .clone();
        counter.inc();
        let mut cache = self
            .audit_counters
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let by_outcome = cache.entry(capability.to_owned()).or_default();
        if !by_outcome.iter().any(|(o, _)| *o == outcome) {
            by_outcome.push((outcome, counter));
        }
    }

    pub fn record_log_dropped(&self, agent: &str) {
        self.log_dropped
            .get_or_create(&AgentLabels {
                agent: agent.into(),
            })
            .inc();
    }

    pub fn set_mcp_server_up(&self, server: &str, up: bool) {
        self.mcp_up
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .set(i64::from(up));
    }

    pub fn record_mcp_restart(&self, server: &str) {
        self.mcp_restarts
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .inc();
    }

    pub fn record_mcp_call(&self, server: &str, outcome: &'static str, elapsed: Duration) {
        self.mcp_calls
            .get_or_create(&McpCallLabels {
                server: server.into(),
                outcome,
            })
            .inc();
        self.mcp_latency
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_a2a_task(&self, agent: &str, state: &str) {
        self.a2a_tasks
            .get_or_create(&A2aTaskLabels {
                agent: agent.into(),
                state: state.into(),
            })
            .inc();
    }

    pub fn record_a2a_request(&self, method: &'static str, outcome: &'static str) {
        self.a2a_requests
            .get_or_create(&A2aRequestLabels { method, outcome })
            .inc();
    }

    pub fn record_api_publish(&self) {
        self.bus_publishes.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_are_counted_by_capability_and_outcome() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.record_audit("publish", "allowed");
        }
        metrics.record_audit("publish", "denied");
        metrics.record_audit("event", "allowed");
        let text = metrics.encode();
        for line in [
            "agenthost_audit_events_total{capability=\"publish\",outcome=\"allowed\"} 3",
            "agenthost_audit_events_total{capability=\"publish\",outcome=\"denied\"} 1",
            "agenthost_audit_events_total{capability=\"event\",outcome=\"allowed\"} 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}

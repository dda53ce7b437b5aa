//! Capabilities: what an agent may touch, one module each.
//!
//! Each capability owns its manifest section's interpretation (the *grant*, built once per agent
//! version at deploy), its per-instance state (built for every invocation), its linker
//! registration, and its checks. Deny by default: an interface the manifest does not grant is
//! refused at deploy, and every call of a granted one is checked again.

pub mod a2a;
pub mod batch;
pub mod config;
pub mod diff;
pub mod env;
pub mod files;
pub mod http;
pub mod log;
pub mod mcp;
pub mod publish;
pub mod state;
pub mod wasi;

use crate::audit::{AuditEntry, AuditLog, Outcome};
use crate::bus::{Bus, TxnPublisher};
use crate::config::Manifest;
use crate::metrics::Metrics;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

/// Per-instance views of the agent's grants, one per capability: what an invocation's store
/// carries for the capabilities to use.
pub struct InstanceCaps {
    pub publish: publish::PublishInstance,
    pub state: state::StateInstance,
    pub log: log::LogInstance,
    pub config: config::ConfigInstance,
    pub mcp: mcp::McpInstance,
    pub a2a: a2a::A2aInstance,
    pub files: files::FilesInstance,
    pub http: http::HttpInstance,
}

/// What an instance's store offers the capabilities. The runtime's store implements it and no
/// capability names the store's type: each links its interface with a getter into this (the
/// `HasData` pattern of wasmtime's bindings).
pub trait InstanceStore: WasiView + WasiHttpView + Send + 'static {
    fn caps(&mut self) -> &mut InstanceCaps;
    fn caller(&mut self) -> &mut Caller;
}

/// Who is calling: the agent and version an instance belongs to, and the request it serves.
/// Clones share the request, so a reused instance's capabilities all follow the one it is
/// serving now.
#[derive(Clone)]
pub struct Caller {
    pub agent: Arc<str>,
    pub version: Arc<str>,
    request: Arc<std::sync::RwLock<Request>>,
    /// The agent's `limits.log_rate`, which the warning a denial leaves in the host's log
    /// counts against: a loop of denied calls must not flood the log.
    log_budget: Option<Arc<log::LogBudget>>,
}

/// The request an instance is serving.
#[derive(Clone)]
struct Request {
    correlation_id: Arc<str>,
    /// Exactly-once delivery: the transaction the record's publishes belong to.
    txn: Option<Arc<dyn TxnPublisher>>,
    /// Records published for this request so far (`limits.publishes`).
    published: Arc<std::sync::atomic::AtomicU32>,
    /// Records `send` handed to the bus whose acknowledgement is still to come.
    sent: Arc<std::sync::Mutex<Vec<crate::bus::PendingReceipt>>>,
    /// In an `on-events` batch: the request of each event, which `batch.handling` switches to.
    batch: Option<Arc<Batch>>,
}

impl Request {
    fn new(correlation_id: &str, txn: Option<Arc<dyn TxnPublisher>>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            txn,
            published: Default::default(),
            sent: Default::default(),
            batch: None,
        }
    }

    fn take_sent(&self) -> Vec<crate::bus::PendingReceipt> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The requests of an `on-events` batch.
struct Batch {
    /// What the agent does before it names an event: attributed to the first event's
    /// correlation id, and its sent records hold every event of the batch.
    before: Request,
    /// One per event, in the batch's order.
    events: Vec<Request>,
}

/// The acknowledgements still to come for what a batch sent.
pub struct BatchSent {
    /// Sent before the agent named an event: every event waits for these.
    pub shared: Vec<crate::bus::PendingReceipt>,
    /// Sent on behalf of each event, in the batch's order.
    pub per_event: Vec<Vec<crate::bus::PendingReceipt>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let request = self.request();
        f.debug_struct("Caller")
            .field("agent", &self.agent)
            .field("version", &self.version)
            .field("correlation_id", &request.correlation_id)
            .field("transactional", &request.txn.is_some())
            .finish()
    }
}

impl Caller {
    pub fn new(agent: Arc<str>, version: Arc<str>, correlation_id: &str) -> Self {
        Self {
            agent,
            version,
            request: Arc::new(std::sync::RwLock::new(Request::new(correlation_id, None))),
            log_budget: None,
        }
    }

    /// The same caller, with the denial warnings it logs counted against `budget`.
    pub fn with_log_budget(mut self, budget: Arc<log::LogBudget>) -> Self {
        self.log_budget = Some(budget);
        self
    }

    /// Logs that a use of `capability` on `target` was denied, within the agent's log budget.
    /// (The audit entry is recorded regardless.)
    pub fn warn_denied(&self, capability: &str, target: &str, reason: &str) {
        if self.log_budget.as_ref().is_some_and(|b| !b.admit()) {
            return;
        }
        tracing::warn!(
            agent = &*self.agent,
            version = &*self.version,
            correlation_id = &*self.correlation_id(),
            capability,
            target = log::truncate(target, 256).as_ref(),
            reason = log::truncate(reason, 1024).as_ref(),
            "capability use denied"
        );
    }

    fn request(&self) -> Request {
        self.request
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn correlation_id(&self) -> Arc<str> {
        self.request().correlation_id
    }

    /// The transaction this request's publishes go to, when it is delivered exactly-once.
    pub fn txn(&self) -> Option<Arc<dyn TxnPublisher>> {
        self.request().txn
    }

    /// Takes one of this request's `limit` publishes; false once they are used up.
    pub fn take_publish(&self, limit: u32) -> bool {
        use std::sync::atomic::Ordering;
        let published = self.request().published;
        published
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Keeps the acknowledgement of a record `send` handed to the bus, for whoever finishes
    /// the request to wait for.
    pub fn add_sent(&self, pending: crate::bus::PendingReceipt) {
        self.request()
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pending);
    }

    /// The acknowledgements still to come of this request's sent records.
    pub fn take_sent(&self) -> Vec<crate::bus::PendingReceipt> {
        self.request().take_sent()
    }

    /// In a batch: the acknowledgements still to come, by event. `None` outside a batch.
    pub fn take_batch_sent(&self) -> Option<BatchSent> {
        let batch = self.request().batch?;
        Some(BatchSent {
            shared: batch.before.take_sent(),
            per_event: batch.events.iter().map(Request::take_sent).collect(),
        })
    }

    /// Records one use of `capability` on `target` in the audit log.
    pub fn audit(
        &self,
        log: &AuditLog,
        capability: &str,
        target: &str,
        outcome: Outcome,
        detail: &str,
    ) {
        use crate::audit::Bounds;
        log.record(
            AuditEntry::new(
                &*self.agent,
                &*self.version,
                &*self.correlation_id(),
                capability,
                crate::text::truncate(target, Bounds::TARGET),
                outcome,
            )
            .detail(crate::text::truncate(detail, Bounds::AGENT_DETAIL)),
        );
    }

    /// Audits the result of an import call: allowed, or denied/failed with the reason the agent
    /// was given. Returns the outcome recorded.
    pub fn audit_result<T>(
        &self,
        log: &AuditLog,
        capability: &str,
        target: &str,
        result: &Result<T, crate::wit::types::Error>,
    ) -> Outcome {
        use crate::wit::types::Error;
        let (outcome, detail) = match result {
            Ok(_) => (Outcome::Allowed, ""),
            Err(Error::Denied(reason)) => (Outcome::Denied, reason.as_str()),
            Err(Error::Failed(reason)) => (Outcome::Failed, reason.as_str()),
        };
        if outcome == Outcome::Denied {
            // Also in the log: an agent reaching for what it was not granted is what operators
            // want to see without querying the audit log.
            self.warn_denied(capability, target, detail);
        }
        self.audit(log, capability, target, outcome, detail);
        outcome
    }

    /// Points every clone at a new request (a fresh instance, or a reused one serving its
    /// next event): its correlation id, and the transaction its publishes join, if any.
    pub fn begin_request(&self, correlation_id: &str, txn: Option<Arc<dyn TxnPublisher>>) {
        *self.request.write().unwrap_or_else(|p| p.into_inner()) =
            Request::new(correlation_id, txn);
    }

    /// Points every clone at a new `on-events` batch of events with these correlation ids (at
    /// least one): until [`Caller::handling`] names an event, the first one's.
    pub fn begin_batch<'a>(&self, correlation_ids: impl IntoIterator<Item = &'a str>) {
        let events: Vec<Request> = correlation_ids
            .into_iter()
            .map(|id| Request::new(id, None))
            .collect();
        let first = events.first().map_or("", |r| &*r.correlation_id);
        let before = Request::new(first, None);
        let batch = Arc::new(Batch { before, events });
        let current = Request {
            batch: Some(batch.clone()),
            ..batch.before.clone()
        };
        *self.request.write().unwrap_or_else(|p| p.into_inner()) = current;
    }

    /// `batch.handling`: what follows is on behalf of event `index` of the batch.
    pub fn handling(&self, index: u32) -> Result<(), String> {
        let mut request = self.request.write().unwrap_or_else(|p| p.into_inner());
        let Some(batch) = request.batch.clone() else {
            return Err(format!(
                "batch.handling({index}) called outside on-events: there is no batch"
            ));
        };
        let Some(event) = usize::try_from(index)
            .ok()
            .and_then(|i| batch.events.get(i))
        else {
            return Err(format!(
                "batch.handling({index}) names no event: the batch has {} (0-based)",
                batch.events.len()
            ));
        };
        *request = Request {
            batch: Some(batch.clone()),
            ..event.clone()
        };
        Ok(())
    }
}

/// What capabilities need from the host to build an agent's grants.
#[derive(Clone)]
pub struct HostServices {
    pub bus: Arc<dyn Bus>,
    pub db: sled::Db,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    pub mcp: Arc<crate::mcp::McpServers>,
    pub a2a: Arc<dyn a2a::A2aRouter>,
    /// The host's HTTP listener: agents reach it only through an http rule naming it exactly.
    pub listen: Option<std::net::SocketAddr>,
    /// Each agent's state, shared by its versions.
    pub states: Arc<state::StateStores>,
}

/// Every grant of one agent version, built from its manifest at deploy.
pub struct Grants {
    pub publish: Arc<publish::PublishGrant>,
    pub state: Option<Arc<state::StateStore>>,
    pub config: Arc<config::ConfigGrant>,
    pub wasi: wasi::WasiGrant,
    pub audit: Arc<AuditLog>,
    pub log: Arc<log::LogBudget>,
    pub mcp: Arc<mcp::McpGrant>,
    pub a2a: Arc<a2a::A2aGrant>,
    pub http: Arc<http::HttpGrant>,
}

impl Grants {
    pub fn from_manifest(manifest: &Manifest, services: &HostServices) -> anyhow::Result<Self> {
        Ok(Self {
            publish: Arc::new(publish::PublishGrant::new(manifest, services)?),
            state: state::StateStore::for_manifest(manifest, &services.db, &services.states)?
                .map(Arc::new),
            config: Arc::new(config::ConfigGrant::new(manifest)),
            audit: services.audit.clone(),
            wasi: wasi::WasiGrant::from_manifest(manifest)?,
            log: Arc::new(log::LogBudget::new(
                manifest.name.as_str().into(),
                manifest.limits.log_rate,
                services.metrics.clone(),
            )),
            mcp: Arc::new(mcp::McpGrant::new(manifest, services)?),
            a2a: Arc::new(a2a::A2aGrant::new(manifest, services)?),
            http: Arc::new(http::HttpGrant::new(
                manifest,
                services.audit.clone(),
                services.listen,
            )),
        })
    }
}

/// Registers every import this host provides. One linker serves every agent: what a given
/// agent may use is decided by [`check_import`] at deploy and by its grants on every call.
pub fn add_to_linker<T: InstanceStore>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wasi::add_to_linker(linker)?;
    files::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    crate::wit::types::add_to_linker::<T, CallerData>(linker, |s| s.caller())?;
    publish::add_to_linker(linker)?;
    state::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    mcp::add_to_linker(linker)?;
    a2a::add_to_linker(linker)?;
    batch::add_to_linker(linker)?;
    Ok(())
}

/// The interfaces implemented on the caller itself (`types`, `batch`).
pub(crate) struct CallerData;
impl HasData for CallerData {
    type Data<'a> = &'a mut Caller;
}

/// `types` declares types only.
impl crate::wit::types::Host for Caller {}

/// Whether a component may import interface `name` under `manifest`. The error says which
/// grant would allow it, or why it is never allowed.
pub fn check_import(name: &str, manifest: &Manifest) -> Result<(), String> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    let grants = &manifest.capabilities;
    if let Some(local) = interface.strip_prefix("agenthost:agent/") {
        if !version.is_empty() && !version.starts_with("0.1.") {
            return Err(format!(
                "imports `{name}`, but this host provides agenthost:agent@0.1.0: rebuild the agent against this version"
            ));
        }
        return match local {
            "types" | "log" | "config" | "batch" => Ok(()),
            "bus" if grants.publish.is_empty() => Err(format!(
                "imports `{name}` but the manifest grants no topics: add them to `capabilities.publish`"
            )),
            "bus" => Ok(()),
            "state" if grants.state.is_none() => Err(format!(
                "imports `{name}` but the manifest grants no state: set a quota with `capabilities.state = \"16MiB\"`"
            )),
            "state" => Ok(()),
            "mcp" if grants.mcp.is_empty() => Err(format!(
                "imports `{name}` but the manifest grants no MCP servers: list them in `capabilities.mcp`"
            )),
            "mcp" => Ok(()),
            "a2a" if grants.a2a.is_empty() => Err(format!(
                "imports `{name}` but the manifest grants no peers: list agent names, skill ids or A2A URLs in `capabilities.a2a`"
            )),
            "a2a" => Ok(()),
            _ => Err(format!(
                "imports `{name}`, which is not part of agenthost:agent@0.1.0"
            )),
        };
    }
    match interface {
        "wasi:cli/environment" | "wasi:cli/exit" | "wasi:cli/stdin" | "wasi:cli/stdout" | "wasi:cli/stderr"
        | "wasi:cli/terminal-input" | "wasi:cli/terminal-output" | "wasi:cli/terminal-stdin"
        | "wasi:cli/terminal-stdout" | "wasi:cli/terminal-stderr" | "wasi:clocks/wall-clock"
        | "wasi:clocks/monotonic-clock" | "wasi:io/error" | "wasi:io/poll" | "wasi:io/streams"
        | "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed"
        // Linked for every agent because Rust's std imports them; with no `capabilities.files`
        // there are no preopened directories, so nothing is reachable through them.
        | "wasi:filesystem/types" | "wasi:filesystem/preopens" => Ok(()),
        _ if interface.starts_with("wasi:sockets/") => Err(format!(
            "imports `{name}`: raw sockets are never granted to agents; outbound HTTP goes through `capabilities.http`"
        )),
        _ if http::INTERFACES.contains(&interface) && grants.http.is_empty() => Err(format!(
            "imports `{name}` but the manifest grants no outbound HTTP: list the allowed `scheme://host[:port]` in `capabilities.http`"
        )),
        _ if http::INTERFACES.contains(&interface) => Ok(()),
        _ if interface.starts_with("wasi:http/") => Err(format!(
            "imports `{name}`: agents make outbound requests only (wasi:http/outgoing-handler); they do not serve HTTP"
        )),
        _ => Err(format!(
            "imports `{name}`, which agenthost does not provide (it provides agenthost:agent/*, wasi:http/outgoing-handler and a restricted set of wasi:cli, wasi:clocks, wasi:io, wasi:random and wasi:filesystem)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(
            Path::new("a.toml"),
            &format!("name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n{extra}"),
        )
        .unwrap()
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
            "agenthost:agent/batch@0.1.0",
            "wasi:cli/stdout@0.2.6",
        ] {
            assert!(check_import(ok, &bare).is_ok(), "{ok}");
        }
    }

    fn receipt(offset: u64) -> crate::bus::PendingReceipt {
        Box::pin(async move {
            Ok(crate::bus::Receipt {
                topic: "t".into(),
                partition: 0,
                offset,
            })
        })
    }

    async fn offsets(pending: Vec<crate::bus::PendingReceipt>) -> Vec<u64> {
        futures::future::join_all(pending)
            .await
            .into_iter()
            .map(|r| r.unwrap().offset)
            .collect()
    }

    #[tokio::test]
    async fn in_a_batch_what_the_agent_sends_belongs_to_the_event_it_named() {
        let caller = Caller::new("a".into(), "1".into(), "unused");
        caller.begin_batch(["c0", "c1", "c2"]);
        // Before the agent names an event: the first one's id, and held by every event.
        assert_eq!(&*caller.correlation_id(), "c0");
        caller.add_sent(receipt(100));
        caller.handling(2).unwrap();
        assert_eq!(&*caller.correlation_id(), "c2");
        caller.add_sent(receipt(2));
        caller.handling(0).unwrap();
        assert_eq!(&*caller.correlation_id(), "c0");
        caller.add_sent(receipt(0));
        // `limits.publishes` counts per event.
        assert!(caller.take_publish(1));
        assert!(!caller.take_publish(1));
        caller.handling(1).unwrap();
        assert!(caller.take_publish(1));

        let sent = caller.take_batch_sent().unwrap();
        assert_eq!(offsets(sent.shared).await, [100]);
        let mut per_event = Vec::new();
        for pending in sent.per_event {
            per_event.push(offsets(pending).await);
        }
        assert_eq!(per_event, [vec![0], vec![], vec![2]]);
    }

    #[test]
    fn naming_an_event_outside_a_batch_or_past_its_end_is_refused() {
        let caller = Caller::new("a".into(), "1".into(), "c");
        let err = caller.handling(0).unwrap_err();
        assert!(err.contains("outside on-events"), "{err}");
        assert!(caller.take_batch_sent().is_none());
        caller.begin_batch(["c0", "c1"]);
        let err = caller.handling(2).unwrap_err();
        assert!(err.contains("the batch has 2"), "{err}");
        // A single request afterwards has no batch left.
        caller.begin_request("d", None);
        assert!(caller.handling(0).is_err());
        assert_eq!(&*caller.correlation_id(), "d");
    }

    #[test]
    fn granted_interfaces_are_allowed() {
        let m = manifest(
            "[capabilities]\npublish = [\"x\"]\nstate = \"1MiB\"\nmcp = [{ server = \"s\", tools = [\"t\"] }]",
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
}

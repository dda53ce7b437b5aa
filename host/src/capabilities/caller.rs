//! Who is calling: the agent, version and request an instance serves, shared by every
//! capability of the instance, so each audits and attributes its uses to the right request
//! (in a batch, to the event the agent named with `batch.handling`).

use super::budget::LogBudget;
use crate::audit::{AuditEntry, AuditLog, Outcome};
use crate::bus::TxnPublisher;
use crate::text::truncate;
use std::sync::Arc;
use wasmtime::component::HasData;

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
    log_budget: Option<Arc<LogBudget>>,
}

/// The request an instance is serving.
#[derive(Clone)]
struct Request {
    correlation_id: Arc<str>,
    /// The card skill the caller addressed (an MCP tool call's), for `invocation.skill`.
    skill: Option<Arc<str>>,
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
            skill: None,
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

/// The acknowledgements still to come for the records an invocation sent (`bus.send`).
pub struct Sent {
    /// Sent for every event of the invocation: all a single event's records, or in a batch
    /// those sent before the agent named an event.
    pub shared: Vec<crate::bus::PendingReceipt>,
    /// In a batch, sent on behalf of each event, in the batch's order; empty otherwise.
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
    pub fn with_log_budget(mut self, budget: Arc<LogBudget>) -> Self {
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
            target = truncate(target, 256).as_ref(),
            reason = truncate(reason, 1024).as_ref(),
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

    /// The card skill the request addressed, if it named one.
    pub fn skill(&self) -> Option<Arc<str>> {
        self.request().skill
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

    /// The acknowledgements still to come of the records this invocation sent; in a batch,
    /// by event.
    pub fn take_sent(&self) -> Sent {
        let request = self.request();
        match &request.batch {
            Some(batch) => Sent {
                shared: batch.before.take_sent(),
                per_event: batch.events.iter().map(Request::take_sent).collect(),
            },
            None => Sent {
                shared: request.take_sent(),
                per_event: Vec::new(),
            },
        }
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
    /// next event): its correlation id, the transaction its publishes join, if any, and the
    /// skill it addressed, if it named one.
    pub fn begin_request(
        &self,
        correlation_id: &str,
        txn: Option<Arc<dyn TxnPublisher>>,
        skill: Option<&str>,
    ) {
        *self.request.write().unwrap_or_else(|p| p.into_inner()) = Request {
            skill: skill.map(Arc::from),
            ..Request::new(correlation_id, txn)
        };
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

/// The interfaces implemented on the caller itself (`types`, `batch`).
pub(crate) struct CallerData;
impl HasData for CallerData {
    type Data<'a> = &'a mut Caller;
}

/// `types` declares types only.
impl crate::wit::types::Host for Caller {}

#[cfg(test)]
mod tests {
    use super::*;

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

        let sent = caller.take_sent();
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
        assert!(caller.take_sent().per_event.is_empty());
        caller.begin_batch(["c0", "c1"]);
        let err = caller.handling(2).unwrap_err();
        assert!(err.contains("the batch has 2"), "{err}");
        // A single request afterwards has no batch left.
        caller.begin_request("d", None, Some("lookup"));
        assert!(caller.handling(0).is_err());
        assert_eq!(&*caller.correlation_id(), "d");
        assert_eq!(caller.skill().as_deref(), Some("lookup"));
        // The next request names no skill: the last one's is gone.
        caller.begin_request("e", None, None);
        assert_eq!(caller.skill(), None);
    }
}

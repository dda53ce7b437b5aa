//! What an invocation leaves to wait for: the acknowledgements of the records the agent sent
//! (`bus.send`). An event is finished only once they are in; in a batch, each event waits for
//! its own and for those sent before the agent named an event.

use crate::capabilities::BatchSent;
use crate::invocation::InvocationError;
use std::sync::Arc;

/// The acknowledgements an invocation left to wait for, as [`Begin`] asked.
pub(super) enum Sent {
    One(Vec<crate::bus::PendingReceipt>),
    Batch(BatchSent),
}

/// What a record the bus did not store says, for every event waiting on it.
type SharedAck = futures::future::Shared<futures::future::BoxFuture<'static, Result<(), String>>>;

/// A batch's sent records as each event waits for them.
pub(super) struct BatchSentAcks {
    /// Sent before the agent named an event: every event waits for them.
    pub shared: Option<SharedAck>,
    pub per_event: Vec<Vec<crate::bus::PendingReceipt>>,
}

impl BatchSentAcks {
    pub(super) fn of(sent: Sent, count: usize) -> Self {
        let (shared, mut per_event) = match sent {
            Sent::Batch(sent) => (sent.shared, sent.per_event),
            Sent::One(pending) => (pending, Vec::new()),
        };
        per_event.resize_with(count, Vec::new);
        let shared = (!shared.is_empty()).then(|| {
            let all: futures::future::BoxFuture<'static, Result<(), String>> =
                Box::pin(async move {
                    for outcome in futures::future::join_all(shared).await {
                        outcome.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                });
            futures::FutureExt::shared(all)
        });
        Self { shared, per_event }
    }
}

/// The acknowledgements still to come for the records an invocation sent (`bus.send`).
#[must_use = "an event is finished only once the records it sent are acknowledged"]
pub struct Acks {
    pub(super) pending: Vec<crate::bus::PendingReceipt>,
    /// In a batch, records sent before the agent named an event, which every event awaits.
    pub(super) shared: Option<SharedAck>,
    /// The delivery's failure, recorded in the audit log if a record is not stored (like an
    /// invocation that fails).
    pub(super) failure: Option<(Arc<crate::audit::AuditLog>, crate::audit::AuditEntry)>,
}

impl Acks {
    /// Nothing to wait for.
    pub fn none() -> Self {
        Self {
            pending: Vec::new(),
            shared: None,
            failure: None,
        }
    }

    /// What a single invocation sent. (A batch's, were it given one, is waited for whole.)
    pub(super) fn of(sent: Sent) -> Self {
        let pending = match sent {
            Sent::One(pending) => pending,
            Sent::Batch(sent) => sent
                .shared
                .into_iter()
                .chain(sent.per_event.into_iter().flatten())
                .collect(),
        };
        Self {
            pending,
            shared: None,
            failure: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.shared.is_none()
    }

    /// Waits for every acknowledgement; a record the bus did not store makes the invocation a
    /// failed attempt, to be retried.
    pub async fn wait(self) -> Result<(), InvocationError> {
        if self.is_empty() {
            return Ok(());
        }
        let own = async {
            for outcome in futures::future::join_all(self.pending).await {
                outcome.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        let shared = async {
            match self.shared {
                Some(shared) => shared.await,
                None => Ok(()),
            }
        };
        let (own, shared) = futures::future::join(own, shared).await;
        if let Err(e) = own.and(shared) {
            let err = InvocationError::Retry(format!("a record it sent was not stored: {e}"));
            if let Some((log, entry)) = self.failure {
                log.record(entry.detail(err.to_string()));
            }
            return Err(err);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusError, PendingReceipt, Receipt};

    fn stored(offset: u64) -> PendingReceipt {
        Box::pin(async move {
            Ok(Receipt {
                topic: "out".into(),
                partition: 0,
                offset,
            })
        })
    }

    fn lost() -> PendingReceipt {
        Box::pin(async { Err(BusError::Storage("disk full".into())) })
    }

    #[tokio::test]
    async fn an_event_is_finished_once_what_it_sent_is_stored() {
        assert!(Acks::none().wait().await.is_ok());
        let acks = Acks::of(Sent::One(vec![stored(1), stored(2)]));
        assert!(!acks.is_empty());
        assert!(acks.wait().await.is_ok());
        let err = Acks::of(Sent::One(vec![stored(1), lost()]))
            .wait()
            .await
            .unwrap_err();
        // Worth another attempt, naming why.
        assert!(!err.is_permanent());
        assert!(
            err.to_string()
                .contains("not stored: bus storage: disk full"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn in_a_batch_what_was_sent_before_naming_an_event_holds_every_event() {
        let sent = Sent::Batch(BatchSent {
            shared: vec![lost()],
            per_event: vec![vec![stored(1)]],
        });
        // Three events, one of which sent something of its own.
        let BatchSentAcks { shared, per_event } = BatchSentAcks::of(sent, 3);
        assert_eq!(per_event.len(), 3);
        for pending in per_event {
            let acks = Acks {
                pending,
                shared: shared.clone(),
                failure: None,
            };
            assert!(
                acks.wait().await.is_err(),
                "every event waits for the lost record"
            );
        }
    }
}

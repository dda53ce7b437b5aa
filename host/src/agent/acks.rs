//! What an invocation leaves to wait for: the acknowledgements of the records the agent sent
//! (`bus.send`). An event is finished only once they are in; in a batch, each event waits for
//! its own and for those sent before the agent named an event.

use crate::audit::{AuditEntry, AuditLog};
use crate::bus::PendingReceipt;
use crate::capabilities::Sent;
use crate::invocation::InvocationError;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::sync::Arc;

/// What a record the bus did not store says, for every event waiting on it.
type SharedAck = Shared<BoxFuture<'static, Result<(), String>>>;

/// The acknowledgements still to come for the records one event's invocation sent.
#[must_use = "an event is finished only once the records it sent are acknowledged"]
pub struct Acks {
    pending: Vec<PendingReceipt>,
    /// In a batch, records sent before the agent named an event, which every event awaits.
    shared: Option<SharedAck>,
    /// The invocation's failure, recorded in the audit log if a record is not stored (like an
    /// invocation that fails).
    failure: Option<(Arc<AuditLog>, AuditEntry)>,
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

    /// What a single event's invocation sent: all of it is the event's.
    pub(super) fn whole(sent: Sent) -> Self {
        let pending = sent
            .shared
            .into_iter()
            .chain(sent.per_event.into_iter().flatten())
            .collect();
        Self {
            pending,
            shared: None,
            failure: None,
        }
    }

    /// What a batch of `count` events sent, as each event waits for it: its own records and
    /// those sent before the agent named an event.
    pub(super) fn per_event(sent: Sent, count: usize) -> Vec<Self> {
        let Sent {
            shared,
            mut per_event,
        } = sent;
        per_event.resize_with(count, Vec::new);
        let shared = (!shared.is_empty()).then(|| {
            let all: BoxFuture<'static, Result<(), String>> = Box::pin(async move {
                for outcome in futures::future::join_all(shared).await {
                    outcome.map_err(|e| e.to_string())?;
                }
                Ok(())
            });
            all.shared()
        });
        per_event
            .into_iter()
            .map(|pending| Self {
                pending,
                shared: shared.clone(),
                failure: None,
            })
            .collect()
    }

    /// These acknowledgements, recording the entry in the log should a record not be stored.
    pub(super) fn failing_as(mut self, failure: (Arc<AuditLog>, AuditEntry)) -> Self {
        if !self.is_empty() {
            self.failure = Some(failure);
        }
        self
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
    use crate::bus::{BusError, Receipt};

    fn stored(offset: u64) -> PendingReceipt {
        Box::pin(async move {
            Ok(Receipt {
                topic: "out".into(),
                partition: 0,
                offset,
            })
        })
    }

    /// What a single event's invocation sent.
    fn one(pending: Vec<PendingReceipt>) -> Sent {
        Sent {
            shared: pending,
            per_event: Vec::new(),
        }
    }

    fn lost() -> PendingReceipt {
        Box::pin(async { Err(BusError::Storage("disk full".into())) })
    }

    #[tokio::test]
    async fn an_event_is_finished_once_what_it_sent_is_stored() {
        assert!(Acks::none().wait().await.is_ok());
        let acks = Acks::whole(one(vec![stored(1), stored(2)]));
        assert!(!acks.is_empty());
        assert!(acks.wait().await.is_ok());
        let err = Acks::whole(one(vec![stored(1), lost()]))
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
        let sent = Sent {
            shared: vec![lost()],
            per_event: vec![vec![stored(1)]],
        };
        // Three events, one of which sent something of its own.
        let per_event = Acks::per_event(sent, 3);
        assert_eq!(per_event.len(), 3);
        for acks in per_event {
            assert!(
                acks.wait().await.is_err(),
                "every event waits for the lost record"
            );
        }
    }
}

//! One membership of a consumer group: a partition worker per assigned partition, started on
//! assignment and drained on revocation.

use super::worker::{PartitionWorker, Rewound};
use super::{BUS_RETRY, Deps, Handler, sleep_or_stop};
use crate::bus::{BusError, Rebalance, Subscription, TopicPartition};
use crate::registry::AgentCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a revoked or stopping partition may take to finish its in-flight record.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// Serves one membership of the group: a worker per assigned partition, until `stop`, until
/// the bus ends the membership, or until a partition must start over from a record (see
/// [`super::worker::Finished::Rewind`]). Leaves the group after every worker finished.
pub(super) async fn run_membership(
    deps: &Deps,
    cell: &Arc<AgentCell>,
    group: &str,
    handler: &Arc<dyn Handler>,
    rewound: &Rewound,
    mut subscription: Box<dyn Subscription>,
    stop: &CancellationToken,
) {
    let agent = cell.name();
    let rejoin = CancellationToken::new();
    let concurrency = Arc::new(Semaphore::new(
        cell.current().manifest.delivery.concurrency as usize,
    ));
    let mut workers: BTreeMap<TopicPartition, (CancellationToken, JoinHandle<()>)> =
        BTreeMap::new();
    loop {
        let rebalance = tokio::select! {
            _ = stop.cancelled() => break,
            _ = rejoin.cancelled() => {
                tracing::warn!(agent, group, "leaving and rejoining the group, so a partition is read again from its committed offset");
                deps.metrics.record_bus_error("rewind");
                break;
            }
            r = subscription.next_rebalance() => r,
        };
        match rebalance {
            Ok(Rebalance::Assigned(readers)) => {
                for reader in readers {
                    let tp = reader.topic_partition().clone();
                    tracing::info!(agent, group, partition = %tp, "partition assigned");
                    let token = stop.child_token();
                    let worker = PartitionWorker {
                        deps: deps.clone(),
                        cell: cell.clone(),
                        handler: handler.clone(),
                        concurrency: concurrency.clone(),
                        stop: token.clone(),
                        rejoin: rejoin.clone(),
                        rewound: rewound.clone(),
                    };
                    workers.insert(tp, (token, tokio::spawn(Arc::new(worker).run(reader))));
                }
            }
            Ok(Rebalance::Revoked { partitions, done }) => {
                let revoked = partitions
                    .iter()
                    .filter_map(|tp| workers.remove(tp).map(|w| (tp.clone(), w)));
                drain(agent, revoked.collect()).await;
                let _ = done.send(());
            }
            Err(BusError::Closed) => {
                tracing::warn!(
                    agent,
                    group,
                    "the bus ended the group membership; rejoining"
                );
                break;
            }
            Err(err) => {
                tracing::warn!(agent, group, error = %err, "subscription error");
                if sleep_or_stop(BUS_RETRY, stop).await {
                    break;
                }
            }
        }
    }
    drain(agent, std::mem::take(&mut workers).into_iter().collect()).await;
    subscription.close().await;
}
/// Stops the workers of `partitions` after their in-flight record, all within one bound.
async fn drain(
    agent: &str,
    partitions: Vec<(TopicPartition, (CancellationToken, JoinHandle<()>))>,
) {
    let waits = partitions.into_iter().map(|(tp, (token, handle))| async move {
        token.cancel();
        if tokio::time::timeout(DRAIN_BOUND, handle).await.is_err() {
            tracing::warn!(agent, partition = %tp, "in-flight work did not finish in time; it will be redelivered");
        }
    });
    futures::future::join_all(waits).await;
}

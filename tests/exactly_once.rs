//! The delivery engine's exactly-once path, against an in-process transactional bus.
//!
//! No broker that installs here has Kafka transactions (tansu 0.6 lacks EndTxn; the bus suite
//! proves such a broker is refused at deploy), so this drives the engine's own logic with a
//! fake bus that keeps each transaction's publishes apart until it commits — and a real agent
//! (`faulty`) in a real runtime. It checks what the Kafka implementation relies on: every
//! publish of an exactly-once invocation goes into the partition's open transaction, the
//! offset is committed in that same transaction, a failed attempt is aborted (its publishes
//! never become visible), a dead letter is committed with the offset, and a failed commit
//! makes the record be handled again rather than skipped.

use agenthost::a2a::A2a;
use agenthost::agent::AgentVersion;
use agenthost::audit::AuditLog;
use agenthost::bus::{
    Bus, BusError, Outgoing, PartitionReader, Rebalance, Receipt, Record, StartAt, Subscription,
    TopicPartition, TopicReader, TxnPublisher,
};
use agenthost::capabilities::HostServices;
use agenthost::config::{Manifest, RuntimeConfig};
use agenthost::delivery::{self, Deps, Handler};
use agenthost::metrics::Metrics;
use agenthost::registry::AgentCell;
use agenthost::runtime::Runtime;
use agenthost_tests::plugin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the fake broker has made visible, and what happened on the way.
#[derive(Default)]
struct Ledger {
    /// Records visible to read-committed consumers, in commit order.
    visible: Vec<Outgoing>,
    /// Offsets committed for the group, in order.
    committed: Vec<u64>,
    /// Publishes outside any transaction (must stay empty in exactly-once mode).
    direct: Vec<Outgoing>,
    aborts: usize,
    /// Commits to fail (then abort), counted down.
    fail_commits: usize,
}

type Shared = Arc<Mutex<Ledger>>;

struct TxnBus {
    ledger: Shared,
    records: Mutex<Option<Vec<Record>>>,
}

#[async_trait::async_trait]
impl Bus for TxnBus {
    fn kind(&self) -> &'static str {
        "fake-transactional"
    }
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        let mut ledger = self.ledger.lock().unwrap();
        ledger.direct.push(record.clone());
        Ok(Receipt {
            topic: record.topic,
            partition: 0,
            offset: ledger.direct.len() as u64,
        })
    }
    async fn subscribe(&self, _: &str, _: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        let records = self.records.lock().unwrap().take().unwrap_or_default();
        Ok(Box::new(OnePartition {
            reader: Some(Box::new(TxnReader {
                tp: TopicPartition {
                    topic: "test.in.v1".into(),
                    partition: 0,
                },
                records: records.into(),
                ledger: self.ledger.clone(),
                open: None,
            })),
        }))
    }
    async fn read(&self, _: &str, _: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        Err(BusError::Unsupported("not in this test".into()))
    }
    async fn check_transactions(&self, _: &str) -> Result<(), BusError> {
        Ok(())
    }
}

struct OnePartition {
    reader: Option<Box<dyn PartitionReader>>,
}

#[async_trait::async_trait]
impl Subscription for OnePartition {
    async fn next_rebalance(&mut self) -> Result<Rebalance, BusError> {
        match self.reader.take() {
            Some(reader) => Ok(Rebalance::Assigned(vec![reader])),
            None => std::future::pending().await,
        }
    }
}

/// One transaction's publishes, held back until it commits.
#[derive(Default)]
struct Pending(Mutex<Vec<Outgoing>>);

#[async_trait::async_trait]
impl TxnPublisher for Pending {
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        let mut held = self.0.lock().unwrap();
        held.push(record.clone());
        Ok(Receipt {
            topic: record.topic,
            partition: 0,
            offset: held.len() as u64,
        })
    }
}

struct TxnReader {
    tp: TopicPartition,
    records: std::collections::VecDeque<Record>,
    ledger: Shared,
    open: Option<Arc<Pending>>,
}

#[async_trait::async_trait]
impl PartitionReader for TxnReader {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    async fn next(&mut self) -> Result<Record, BusError> {
        match self.records.pop_front() {
            Some(r) => Ok(r),
            None => std::future::pending().await,
        }
    }
    async fn commit(&mut self, _: u64) -> Result<(), BusError> {
        panic!("an exactly-once record's offset must be committed in its transaction");
    }
    async fn begin_transaction(&mut self) -> Result<Arc<dyn TxnPublisher>, BusError> {
        assert!(self.open.is_none(), "one transaction at a time");
        let pending = Arc::new(Pending::default());
        self.open = Some(pending.clone());
        Ok(pending)
    }
    async fn commit_transaction(&mut self, next_offset: u64) -> Result<(), BusError> {
        let pending = self.open.take().expect("a transaction is open");
        let mut ledger = self.ledger.lock().unwrap();
        if ledger.fail_commits > 0 {
            ledger.fail_commits -= 1;
            ledger.aborts += 1;
            return Err(BusError::Unavailable("injected commit failure".into()));
        }
        let held = std::mem::take(&mut *pending.0.lock().unwrap());
        ledger.visible.extend(held);
        ledger.committed.push(next_offset);
        Ok(())
    }
    async fn abort_transaction(&mut self) {
        if self.open.take().is_some() {
            self.ledger.lock().unwrap().aborts += 1;
        }
    }
}

fn record(offset: u64, payload: &str) -> Record {
    Record {
        topic: "test.in.v1".into(),
        partition: 0,
        offset,
        key: None,
        payload: payload.as_bytes().to_vec(),
        headers: vec![agenthost::bus::Header::new(
            "correlation-id",
            format!("cid-{offset}"),
        )],
        timestamp_ms: 0,
    }
}

#[test]
fn exactly_once_publishes_and_offsets_commit_together_and_failed_attempts_vanish() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let scratch = tempfile::tempdir().unwrap();
        let ledger: Shared = Arc::new(Mutex::new(Ledger {
            fail_commits: 1,
            ..Ledger::default()
        }));
        let bus = Arc::new(TxnBus {
            ledger: ledger.clone(),
            records: Mutex::new(Some(vec![
                record(0, "first"),
                record(1, "retry"),
                record(2, "reject"),
                record(3, "last"),
            ])),
        });
        let bus_dyn: Arc<dyn Bus> = bus.clone();
        let runtime = Runtime::new(
            &RuntimeConfig {
                cache: false,
                ..RuntimeConfig::default()
            },
            scratch.path(),
        )
        .unwrap();
        let db = sled::Config::new()
            .temporary(true)
            .path(scratch.path().join("db"))
            .open()
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(
            AuditLog::open(&db, Duration::from_secs(3600), 10_000, metrics.clone()).unwrap(),
        );
        let services = HostServices {
            bus: bus_dyn.clone(),
            a2a: A2a::detached(&db, metrics.clone(), bus_dyn.clone()).unwrap(),
            db,
            metrics: metrics.clone(),
            audit,
            mcp: Default::default(),
        };
        let faulty = plugin("faulty");
        let manifest = Manifest::parse(
            &scratch.path().join("faulty.toml"),
            &format!(
                "name = \"faulty\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n\
                 [[subscribe]]\ntopic = \"test.in.v1\"\n\
                 [delivery]\nmode = \"exactly-once\"\nmax_attempts = 3\nbackoff = \"1ms\"\n\
                 [capabilities]\npublish = [\"test.out.v1\"]\nconfig = {{ out = \"test.out.v1\" }}\n",
                faulty.display()
            ),
        )
        .unwrap();
        let compiled = runtime.compile(&std::fs::read(&faulty).unwrap()).unwrap();
        let version = AgentVersion::deploy(&runtime, &services, manifest, &compiled)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let task = delivery::spawn_subscription(
            Deps {
                bus: bus_dyn,
                metrics,
            },
            Arc::new(AgentCell::new(version, None)),
            "faulty".into(),
            vec!["test.in.v1".into()],
            Handler::Events,
            stop.clone(),
        );
        let start = Instant::now();
        while ledger.lock().unwrap().committed.len() < 4 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not every record was committed: {:?}",
                ledger.lock().unwrap().committed
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        let _ = task.await;

        let ledger = ledger.lock().unwrap();
        assert!(
            ledger.direct.is_empty(),
            "published outside a transaction: {:?}",
            ledger.direct
        );
        // Each record's offset once, in order.
        assert_eq!(ledger.committed, vec![1, 2, 3, 4]);
        let seen: Vec<(String, String, Option<String>)> = ledger
            .visible
            .iter()
            .map(|r| {
                let header = |k: &str| {
                    agenthost::bus::find_header(&r.headers, k)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                (
                    r.topic.clone(),
                    header("correlation-id").unwrap_or_default(),
                    header("agenthost-attempts"),
                )
            })
            .collect();
        // `first`'s first commit failed: its output appears once, from the second try.
        // `retry` is dead-lettered after 3 attempts, `reject` after 1; nothing of the failed
        // attempts is visible.
        assert_eq!(
            seen,
            vec![
                ("test.out.v1".into(), "cid-0".into(), None),
                ("agent.dead-letter.v1".into(), "cid-1".into(), Some("3".into())),
                ("agent.dead-letter.v1".into(), "cid-2".into(), Some("1".into())),
                ("test.out.v1".into(), "cid-3".into(), None),
            ]
        );
        // The failed commit, three `retry` attempts and one `reject` attempt were aborted.
        assert_eq!(ledger.aborts, 5);
    });
}

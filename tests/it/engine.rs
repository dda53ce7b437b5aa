//! The delivery engine's own logic against in-process fake buses that fail on cue, with real
//! agents in a real runtime: the exactly-once path, and a sent record that is not stored
//! after its key's next record started.
//!
//! Exactly-once: no broker that installs here has Kafka transactions (tansu 0.6 lacks EndTxn; the bus suite
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
use agenthost::config::RuntimeConfig;
use agenthost::delivery::{self, AgentEvents, Deps};
use agenthost::manifest::Manifest;
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
                feed: Feed::new(records),
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

/// The records of partition 0 of `test.in.v1`, served in order; then nothing more.
struct Feed {
    tp: TopicPartition,
    records: std::collections::VecDeque<Record>,
}

impl Feed {
    fn new(records: Vec<Record>) -> Self {
        Self {
            tp: TopicPartition {
                topic: "test.in.v1".into(),
                partition: 0,
            },
            records: records.into(),
        }
    }

    async fn next(&mut self) -> Result<Record, BusError> {
        match self.records.pop_front() {
            Some(r) => Ok(r),
            None => std::future::pending().await,
        }
    }
}

struct TxnReader {
    feed: Feed,
    ledger: Shared,
    open: Option<Arc<Pending>>,
}

#[async_trait::async_trait]
impl PartitionReader for TxnReader {
    fn topic_partition(&self) -> &TopicPartition {
        &self.feed.tp
    }
    async fn next(&mut self) -> Result<Record, BusError> {
        self.feed.next().await
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

/// Deploys `plugin` (subscribed to `test.in.v1`, publishing to `test.out.v1`, with `extra`
/// manifest tables) on `bus` and runs its subscription until `finished` says so; fails after
/// a minute with what `progress` says.
async fn run_agent_until(
    bus: Arc<dyn Bus>,
    scratch: &std::path::Path,
    plugin_name: &str,
    extra: &str,
    finished: impl Fn() -> bool,
    progress: impl Fn() -> String,
) {
    let runtime = Runtime::new(
        &RuntimeConfig {
            cache: false,
            ..RuntimeConfig::default()
        },
        scratch,
    )
    .unwrap();
    let db = sled::Config::new()
        .temporary(true)
        .path(scratch.join("db"))
        .open()
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let audit = Arc::new(
        AuditLog::open(
            &db,
            &scratch.join("audit"),
            Duration::from_secs(3600),
            10_000,
            metrics.clone(),
        )
        .unwrap(),
    );
    let services = HostServices {
        bus: bus.clone(),
        a2a: A2a::detached(&db, metrics.clone(), bus.clone()).unwrap(),
        db,
        metrics: metrics.clone(),
        audit,
        mcp: Default::default(),
        listen: None,
        states: Default::default(),
    };
    let component = plugin(plugin_name);
    let manifest = Manifest::parse(
        &scratch.join(format!("{plugin_name}.toml")),
        &format!(
            "name = \"{plugin_name}\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n\
             [[subscribe]]\ntopic = \"test.in.v1\"\n{extra}\
             [capabilities]\npublish = [\"test.out.v1\"]\nconfig = {{ out = \"test.out.v1\" }}\n",
            component.display()
        ),
    )
    .unwrap();
    let compiled = runtime
        .compile(&std::fs::read(&component).unwrap())
        .unwrap();
    let version = AgentVersion::deploy(&runtime, &services, manifest, &compiled)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = delivery::spawn_subscription(
        Deps { bus, metrics },
        Arc::new(AgentCell::new(version, None)),
        plugin_name.into(),
        vec!["test.in.v1".into()],
        Arc::new(AgentEvents),
        stop.clone(),
    );
    let start = Instant::now();
    while !finished() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not finished within a minute: {}",
            progress()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_publishes_and_offsets_commit_together_and_failed_attempts_vanish() {
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
    run_agent_until(
        bus_dyn,
        scratch.path(),
        "faulty",
        "[delivery]\nmode = \"exactly-once\"\nmax_attempts = 3\nbackoff = \"1ms\"\n",
        || ledger.lock().unwrap().committed.len() >= 4,
        || format!("committed {:?}", ledger.lock().unwrap().committed),
    )
    .await;

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
            (
                "agent.dead-letter.faulty.v1".into(),
                "cid-1".into(),
                Some("3".into())
            ),
            (
                "agent.dead-letter.faulty.v1".into(),
                "cid-2".into(),
                Some("1".into())
            ),
            ("test.out.v1".into(), "cid-3".into(), None),
        ]
    );
    // The failed commit, three `retry` attempts and one `reject` attempt were aborted.
    assert_eq!(ledger.aborts, 5);
}

/// The fake broker's log and group state for the ack-failure test.
#[derive(Default)]
struct AckLedger {
    /// The input partition.
    input: Vec<Record>,
    /// The group's committed offset.
    committed: u64,
    /// Records stored, in the order they were stored (outputs and dead letters).
    stored: Vec<Outgoing>,
    /// Sends to fail, by correlation id: how many more times.
    fail_sends: std::collections::HashMap<String, u32>,
    /// Memberships started (one per subscribe).
    joins: usize,
}

/// A bus whose `send` acknowledgements fail on cue, late: the record's key has moved on by
/// then. A membership reads the partition from the committed offset, like a consumer group.
struct AckBus(Arc<Mutex<AckLedger>>);

fn correlation(record: &Outgoing) -> String {
    agenthost::bus::find_header(&record.headers, "correlation-id")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Bus for AckBus {
    fn kind(&self) -> &'static str {
        "fake-failing-acks"
    }
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        let mut ledger = self.0.lock().unwrap();
        ledger.stored.push(record.clone());
        Ok(Receipt {
            topic: record.topic,
            partition: 0,
            offset: ledger.stored.len() as u64,
        })
    }
    fn enqueue(&self, record: Outgoing) -> agenthost::bus::Enqueued {
        let ledger = self.0.clone();
        let fail = {
            let mut l = ledger.lock().unwrap();
            match l.fail_sends.get_mut(&correlation(&record)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => {
                    l.stored.push(record.clone());
                    false
                }
            }
        };
        agenthost::bus::Enqueued::Queued(Box::pin(async move {
            if fail {
                // Refused only after the key's next records had time to run.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Err(BusError::Unavailable("injected: not stored".into()));
            }
            Ok(Receipt {
                topic: record.topic,
                partition: 0,
                offset: 0,
            })
        }))
    }
    async fn subscribe(&self, _: &str, _: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        let mut ledger = self.0.lock().unwrap();
        ledger.joins += 1;
        let from = ledger.committed as usize;
        Ok(Box::new(OnePartition {
            reader: Some(Box::new(AckReader {
                feed: Feed::new(ledger.input[from..].to_vec()),
                ledger: self.0.clone(),
            })),
        }))
    }
    async fn read(&self, _: &str, _: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        Err(BusError::Unsupported("not in this test".into()))
    }
}

struct AckReader {
    feed: Feed,
    ledger: Arc<Mutex<AckLedger>>,
}

#[async_trait::async_trait]
impl PartitionReader for AckReader {
    async fn next(&mut self) -> Result<Record, BusError> {
        self.feed.next().await
    }
    fn topic_partition(&self) -> &TopicPartition {
        &self.feed.tp
    }
    async fn commit(&mut self, next_offset: u64) -> Result<(), BusError> {
        let mut ledger = self.ledger.lock().unwrap();
        assert!(
            next_offset >= ledger.committed,
            "the committed offset went back from {} to {next_offset}",
            ledger.committed
        );
        ledger.committed = next_offset;
        Ok(())
    }
}

/// A record whose sent record is refused after its key's next records already ran is not
/// handled again on its own (its output would land after theirs, and the key's last output
/// would be a stale one): the partition is read again from it, so the key's outputs end in
/// input order. A record refused on every attempt still ends in a dead letter after
/// `max_attempts`, counted across those rereads, and the partition moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_refused_after_the_key_moved_on_rereads_the_partition_in_order() {
    a_send_refused_rereads_the_partition("").await;
}

/// The same in batches (`delivery.batch`, echo's `on-events`): a refused send holds only the
/// record it was sent for — so the refusals, keyed by the outputs' correlation ids, hit the
/// records named above — and that record rereads the partition as it would alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_batch_a_refused_send_holds_and_rereads_only_its_own_record() {
    a_send_refused_rereads_the_partition("batch = 8\n").await;
}

async fn a_send_refused_rereads_the_partition(delivery: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let keyed = |offset: u64, key: &str, payload: &str| Record {
        key: Some(key.as_bytes().to_vec()),
        ..record(offset, payload)
    };
    let ledger = Arc::new(Mutex::new(AckLedger {
        input: vec![
            keyed(0, "k", "k-0"),
            keyed(1, "k", "k-1"),
            keyed(2, "k", "k-2"),
            keyed(3, "p", "p-0"),
            keyed(4, "p", "p-1"),
        ],
        // k-0's output is refused once; p-0's on every attempt.
        fail_sends: [("cid-0".to_owned(), 1), ("cid-3".to_owned(), 3)].into(),
        ..AckLedger::default()
    }));
    let bus: Arc<dyn Bus> = Arc::new(AckBus(ledger.clone()));
    run_agent_until(
        bus,
        scratch.path(),
        "echo",
        &format!("[delivery]\nmax_attempts = 3\nbackoff = \"1ms\"\n{delivery}"),
        || ledger.lock().unwrap().committed >= 5,
        || {
            let ledger = ledger.lock().unwrap();
            let stored: Vec<_> = ledger
                .stored
                .iter()
                .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
                .collect();
            format!("committed {}, stored {stored:?}", ledger.committed)
        },
    )
    .await;

    let ledger = ledger.lock().unwrap();
    let outputs = |key: &str| -> Vec<String> {
        ledger
            .stored
            .iter()
            .filter(|r| r.topic == "test.out.v1" && r.key.as_deref() == Some(key.as_bytes()))
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect()
    };
    let k = outputs("k");
    // Every record's output is stored, and the key's outputs end with its last record's:
    // each output's last occurrence is in input order.
    let last = |payload: &str| k.iter().rposition(|p| p == payload);
    assert!(
        last("k-0") < last("k-1") && last("k-1") < last("k-2") && last("k-0").is_some(),
        "key k's outputs end out of order: {k:?}"
    );
    assert_eq!(k.last().map(String::as_str), Some("k-2"), "{k:?}");
    // p-0 was refused three times: dead-lettered on its third attempt, two of them after
    // the partition was read again; p-1 went through.
    let dead: Vec<(String, Option<String>)> = ledger
        .stored
        .iter()
        .filter(|r| r.topic == "agent.dead-letter.echo.v1")
        .map(|r| {
            (
                correlation(r),
                agenthost::bus::find_header(&r.headers, "agenthost-attempts")
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    assert_eq!(dead, vec![("cid-3".to_owned(), Some("3".to_owned()))]);
    assert_eq!(outputs("p").last().map(String::as_str), Some("p-1"));
    assert!(
        ledger.joins >= 3,
        "the partition was not read again after each refusal: {} memberships",
        ledger.joins
    );
}

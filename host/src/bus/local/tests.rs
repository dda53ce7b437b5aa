use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::timeout;

use super::*;
use crate::bus::{Header, Rebalance, Record};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
const SHORT: Duration = Duration::from_millis(150);
const LONG: Duration = Duration::from_secs(10);

/// Opens the database in `dir`, waiting for a bus of the same directory that was just
/// dropped to let go of it: a flush it spawned may still hold a handle for a moment.
fn open_db(dir: &TempDir) -> sled::Db {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        match sled::open(dir.path()) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e}", dir.path().display()),
        }
    }
}

fn open(dir: &TempDir, partitions: u32) -> LocalBus {
    let db = open_db(dir);
    LocalBus::open(
        db,
        LocalBusOptions {
            partitions,
            ..LocalBusOptions::default()
        },
    )
    .unwrap()
}

fn open_with_clock(dir: &TempDir, options: LocalBusOptions, now: &Arc<AtomicU64>) -> LocalBus {
    let db = open_db(dir);
    let now = Arc::clone(now);
    let clock = Arc::new(move || now.load(Ordering::SeqCst));
    LocalBus::open_with(db, options, clock, Duration::from_millis(10)).unwrap()
}

fn outgoing(topic: &str, key: Option<&str>, payload: &str) -> Outgoing {
    Outgoing {
        topic: topic.into(),
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: payload.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

async fn assigned(bus: &LocalBus, group: &str, topic: &str) -> Vec<Box<dyn PartitionReader>> {
    let mut subscription = bus.subscribe(group, &[topic.to_owned()]).await.unwrap();
    match subscription.next_rebalance().await.unwrap() {
        Rebalance::Assigned(readers) => readers,
        Rebalance::Revoked { .. } => panic!("a local subscription starts with an assignment"),
    }
}

async fn next(reader: &mut Box<dyn TopicReader>) -> Record {
    timeout(LONG, reader.next())
        .await
        .expect("a record should be available")
        .unwrap()
}

fn payload(record: &Record) -> &str {
    std::str::from_utf8(&record.payload).unwrap()
}

#[tokio::test]
async fn publish_and_read_round_trip() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 4);
    assert_eq!(bus.kind(), "local");
    let headers = vec![
        Header::new("correlation-id", "c-1"),
        Header::new("bin", vec![0u8, 255, 7]),
    ];
    let receipt = bus
        .publish(Outgoing {
            topic: "orders.v1".into(),
            key: Some(b"customer-9".to_vec()),
            payload: vec![1, 2, 3, 0, 255],
            headers: headers.clone(),
        })
        .await
        .unwrap();
    assert_eq!(receipt.topic, "orders.v1");
    assert_eq!(receipt.partition, kafka_partition(b"customer-9", 4));
    assert_eq!(receipt.offset, 0);

    let mut reader = bus.read("orders.v1", StartAt::Beginning).await.unwrap();
    let record = next(&mut reader).await;
    assert_eq!(
        (record.topic.as_str(), record.partition, record.offset),
        ("orders.v1", receipt.partition, 0)
    );
    assert_eq!(record.key.as_deref(), Some(&b"customer-9"[..]));
    assert_eq!(record.payload, vec![1, 2, 3, 0, 255]);
    assert_eq!(record.headers, headers);
    assert_eq!(record.header("correlation-id"), Some(&b"c-1"[..]));
    let age = system_clock().saturating_sub(record.timestamp_ms);
    assert!(age < 60_000, "timestamp {} is not now", record.timestamp_ms);
}

#[tokio::test]
async fn keyed_records_share_a_partition_and_keep_order() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 4);
    let mut receipts = Vec::new();
    for i in 0..20 {
        receipts.push(
            bus.publish(outgoing("t", Some("same-key"), &format!("k{i}")))
                .await
                .unwrap(),
        );
        bus.publish(outgoing("t", Some(&format!("other-{i}")), "noise"))
            .await
            .unwrap();
    }
    let partition = kafka_partition(b"same-key", 4);
    assert!(receipts.iter().all(|r| r.partition == partition));
    assert!(receipts.windows(2).all(|w| w[0].offset < w[1].offset));

    let mut readers = assigned(&bus, "g", "t").await;
    let reader = &mut readers[partition as usize];
    assert_eq!(
        reader.topic_partition(),
        &TopicPartition {
            topic: "t".into(),
            partition
        }
    );
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let record = timeout(LONG, reader.next()).await.unwrap().unwrap();
        assert_eq!(record.partition, partition);
        if record.key.as_deref() == Some(&b"same-key"[..]) {
            seen.push(payload(&record).to_owned());
        }
    }
    assert_eq!(seen, (0..20).map(|i| format!("k{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn unkeyed_records_are_spread_round_robin() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 4);
    let mut per_partition = [0; 4];
    for _ in 0..8 {
        let receipt = bus.publish(outgoing("t", None, "x")).await.unwrap();
        per_partition[receipt.partition as usize] += 1;
    }
    assert_eq!(per_partition, [2, 2, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_dense_offsets() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 1);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish(outgoing("t", Some("k"), &i.to_string())).await })
        })
        .collect();
    let mut offsets = Vec::new();
    for task in tasks {
        offsets.push(task.await.unwrap().unwrap().offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..64).collect::<Vec<_>>());

    let mut reader = bus.read("t", StartAt::Beginning).await.unwrap();
    for expected in 0..64 {
        assert_eq!(next(&mut reader).await.offset, expected);
    }
}

#[tokio::test]
async fn offsets_continue_after_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let bus = open(&dir, 2);
        for i in 0..3 {
            assert_eq!(
                bus.publish(outgoing("t", Some("k"), "x"))
                    .await
                    .unwrap()
                    .offset,
                i
            );
        }
    }
    // A different default must not change an existing topic.
    let bus = open(&dir, 8);
    let receipt = bus
        .publish(outgoing("t", Some("k"), "after"))
        .await
        .unwrap();
    assert_eq!(receipt.offset, 3);
    assert_eq!(receipt.partition, kafka_partition(b"k", 2));
    assert_eq!(assigned(&bus, "g", "t").await.len(), 2);
    assert_eq!(assigned(&bus, "g", "fresh").await.len(), 8);
}

#[tokio::test]
async fn committed_offsets_survive_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let bus = open(&dir, 1);
        for i in 0..5 {
            bus.publish(outgoing("t", None, &format!("m{i}")))
                .await
                .unwrap();
        }
        let mut readers = assigned(&bus, "billing", "t").await;
        let reader = &mut readers[0];
        for expected in 0..3 {
            assert_eq!(reader.next().await.unwrap().offset, expected);
        }
        reader.commit(3).await.unwrap();
    }
    let bus = open(&dir, 1);
    let mut readers = assigned(&bus, "billing", "t").await;
    let record = timeout(LONG, readers[0].next()).await.unwrap().unwrap();
    assert_eq!((record.offset, payload(&record)), (3, "m3"));
    // Another group has no commit and starts at the oldest record.
    let mut others = assigned(&bus, "audit", "t").await;
    assert_eq!(others[0].next().await.unwrap().offset, 0);
}

#[tokio::test]
async fn partition_reader_waits_for_a_publish() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 1);
    let mut readers = assigned(&bus, "g", "t").await;
    let mut reader = readers.pop().unwrap();
    assert!(
        timeout(SHORT, reader.next()).await.is_err(),
        "nothing published yet"
    );

    let waiting = tokio::spawn(async move { reader.next().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    bus.publish(outgoing("t", None, "wake")).await.unwrap();
    let record = timeout(LONG, waiting)
        .await
        .expect("the publish should wake the reader")
        .unwrap()
        .unwrap();
    assert_eq!(payload(&record), "wake");
}

#[tokio::test]
async fn subscription_assigns_once_then_waits() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 3);
    let mut subscription = bus
        .subscribe("g", &["a".to_owned(), "b".to_owned(), "a".to_owned()])
        .await
        .unwrap();
    let Ok(Rebalance::Assigned(readers)) = subscription.next_rebalance().await else {
        panic!("expected the initial assignment");
    };
    let mut partitions: Vec<_> = readers
        .iter()
        .map(|r| r.topic_partition().to_string())
        .collect();
    partitions.sort();
    assert_eq!(partitions, ["a[0]", "a[1]", "a[2]", "b[0]", "b[1]", "b[2]"]);
    assert!(timeout(SHORT, subscription.next_rebalance()).await.is_err());
}

#[tokio::test]
async fn read_from_end_sees_only_later_records() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 4);
    for i in 0..8 {
        bus.publish(outgoing("t", None, &format!("before-{i}")))
            .await
            .unwrap();
    }
    let mut reader = bus.read("t", StartAt::End).await.unwrap();
    assert!(timeout(SHORT, reader.next()).await.is_err());

    let waiting = tokio::spawn(async move {
        let first = reader.next().await;
        (first, reader)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    bus.publish(outgoing("t", Some("k"), "after-0"))
        .await
        .unwrap();
    let (first, mut reader) = timeout(LONG, waiting).await.unwrap().unwrap();
    assert_eq!(payload(&first.unwrap()), "after-0");

    for i in 1..5 {
        bus.publish(outgoing("t", None, &format!("after-{i}")))
            .await
            .unwrap();
    }
    let mut rest = Vec::new();
    for _ in 1..5 {
        rest.push(payload(&next(&mut reader).await).to_owned());
    }
    rest.sort();
    assert_eq!(rest, ["after-1", "after-2", "after-3", "after-4"]);
    assert!(timeout(SHORT, reader.next()).await.is_err());
}

#[tokio::test]
async fn second_subscription_of_a_group_is_busy_until_released() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 2);
    let topics = ["t".to_owned()];
    let mut subscription = bus.subscribe("g", &topics).await.unwrap();
    let busy = bus.subscribe("g", &["u".to_owned(), "t".to_owned()]).await;
    assert!(
        matches!(busy, Err(BusError::GroupBusy { ref group, ref topic }) if group == "g" && topic == "t")
    );
    // Other groups, and other topics of the same group, are independent.
    let _other_group = bus.subscribe("h", &topics).await.unwrap();
    let other_topic = bus.subscribe("g", &["u".to_owned()]).await.unwrap();
    drop(other_topic);

    let Ok(Rebalance::Assigned(readers)) = subscription.next_rebalance().await else {
        panic!()
    };
    drop(subscription);
    // A reader still running keeps the claim.
    assert!(matches!(
        bus.subscribe("g", &topics).await,
        Err(BusError::GroupBusy { .. })
    ));
    drop(readers);
    assert!(bus.subscribe("g", &topics).await.is_ok());
}

#[tokio::test]
async fn retention_deletes_old_records_only() {
    let dir = TempDir::new().unwrap();
    let start = 100 * DAY_MS;
    let now = Arc::new(AtomicU64::new(start));
    let options = LocalBusOptions {
        partitions: 1,
        retention: Duration::from_millis(DAY_MS),
    };
    {
        let bus = open_with_clock(&dir, options.clone(), &now);
        for i in 0..3 {
            bus.publish(outgoing("t", None, &format!("old-{i}")))
                .await
                .unwrap();
        }
        now.store(start + DAY_MS + 1, Ordering::SeqCst);
        bus.publish(outgoing("t", None, "new")).await.unwrap();
        // A group that read nothing yet is positioned on a record about to be deleted.
        let mut readers = assigned(&bus, "g", "t").await;

        assert_eq!(bus.enforce_retention().unwrap(), 3);
        assert_eq!(
            bus.enforce_retention().unwrap(),
            0,
            "the newer record is within retention"
        );

        let record = timeout(LONG, readers[0].next()).await.unwrap().unwrap();
        assert_eq!((record.offset, payload(&record)), (3, "new"));
        let mut reader = bus.read("t", StartAt::Beginning).await.unwrap();
        assert_eq!(payload(&next(&mut reader).await), "new");

        // Exactly at the boundary nothing goes: only records strictly older than retention.
        now.store(start + 2 * DAY_MS + 1, Ordering::SeqCst);
        assert_eq!(bus.enforce_retention().unwrap(), 0);
        now.store(start + 2 * DAY_MS + 2, Ordering::SeqCst);
        assert_eq!(bus.enforce_retention().unwrap(), 1);
    }
    // The partition is empty now; its offsets still must not be reused.
    let bus = open_with_clock(&dir, options, &now);
    assert_eq!(
        bus.publish(outgoing("t", None, "later"))
            .await
            .unwrap()
            .offset,
        4
    );
}

#[tokio::test]
async fn retention_task_purges_in_the_background_and_stops_with_the_bus() {
    let dir = TempDir::new().unwrap();
    let start = 100 * DAY_MS;
    let now = Arc::new(AtomicU64::new(start));
    let options = LocalBusOptions {
        partitions: 1,
        retention: Duration::from_millis(DAY_MS),
    };
    let bus = open_with_clock(&dir, options, &now);
    bus.publish(outgoing("t", None, "old")).await.unwrap();
    now.store(start + DAY_MS + 1, Ordering::SeqCst);
    bus.publish(outgoing("t", None, "new")).await.unwrap();
    let mut readers = assigned(&bus, "g", "t").await;

    let task = bus.spawn_retention();
    // The test bus ticks every 10 ms; wait (bounded) for a pass to have deleted "old".
    timeout(LONG, async {
        loop {
            let mut reader = bus.read("t", StartAt::Beginning).await.unwrap();
            if payload(&next(&mut reader).await) == "new" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the retention task should delete the expired record");
    let record = timeout(LONG, readers[0].next()).await.unwrap().unwrap();
    assert_eq!((record.offset, payload(&record)), (1, "new"));

    drop((readers, bus));
    timeout(LONG, task)
        .await
        .expect("the task should end once the bus is gone")
        .unwrap();
}

/// Not a test on its own: the body of the child process `publishes_and_commits_survive_kill_9`
/// kills. It publishes and commits in a loop, printing each step only after it returned.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let db = sled::open(dir).unwrap();
    let bus = LocalBus::open(
        db,
        LocalBusOptions {
            partitions: 1,
            ..LocalBusOptions::default()
        },
    )
    .unwrap();
    let mut readers = assigned(&bus, "g", "t").await;
    for i in 0u64.. {
        let receipt = bus
            .publish(outgoing("t", Some("k"), &format!("m{i}")))
            .await
            .unwrap();
        println!("published {} m{i}", receipt.offset);
        readers[0].commit(i + 1).await.unwrap();
        println!("committed {}", i + 1);
    }
}

const CRASH_DIR_ENV: &str = "AGENTHOST_TEST_BUS_CRASH_DIR";

#[tokio::test]
async fn publishes_and_commits_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = TempDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "bus::local::tests::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut published, mut committed) = (Vec::new(), 0);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test crash_child ... " without a newline before the body runs.
        let Some(start) = line.find("published ").or_else(|| line.find("committed ")) else {
            continue;
        };
        let words: Vec<&str> = line[start..].split(' ').collect();
        match words.as_slice() {
            ["published", offset, payload] => {
                published.push((offset.parse::<u64>().unwrap(), payload.to_string()))
            }
            ["committed", offset] => committed = offset.parse().unwrap(),
            _ => continue,
        }
        if committed == 40 {
            break;
        }
    }
    // Child::kill is SIGKILL on Unix: no destructor or sled shutdown runs.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(committed, 40, "the child stopped early");

    let bus = open(&dir, 1);
    let mut reader = bus.read("t", StartAt::Beginning).await.unwrap();
    for (offset, expected) in &published {
        let record = next(&mut reader).await;
        assert_eq!(
            (record.offset, payload(&record)),
            (*offset, expected.as_str())
        );
    }
    let receipt = bus
        .publish(outgoing("t", Some("k"), "after"))
        .await
        .unwrap();
    assert!(
        receipt.offset > published.last().unwrap().0,
        "offset {} reused",
        receipt.offset
    );
    // The child committed everything it published, so the group resumes at or after the last
    // commit we saw (the child may have got further before the kill), never before it.
    let mut readers = assigned(&bus, "g", "t").await;
    let resumed = timeout(LONG, readers[0].next()).await.unwrap().unwrap();
    assert!(
        resumed.offset >= committed,
        "resumed at {} after committing {committed}",
        resumed.offset
    );
}

#[tokio::test]
async fn corrupt_record_is_reported_by_topic_partition_and_offset() {
    let dir = TempDir::new().unwrap();
    {
        let bus = open(&dir, 1);
        bus.publish(outgoing("t", None, "doomed")).await.unwrap();
        bus.publish(outgoing("t", None, "fine")).await.unwrap();
        let tree = bus.inner.db.open_tree("bus/t/t/0").unwrap();
        tree.insert(0u64.to_be_bytes(), &[1, 0xff, 0xff, 0xff, 0xff, 0xff][..])
            .unwrap();
        bus.inner.db.flush().unwrap();
    }
    let bus = open(&dir, 1);
    let mut reader = bus.read("t", StartAt::Beginning).await.unwrap();
    let error = timeout(LONG, reader.next())
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("t[0]") && error.contains("offset 0"),
        "{error}"
    );
    // The bad record is reported once and skipped; the partition is not wedged.
    assert_eq!(payload(&next(&mut reader).await), "fine");

    let mut readers = assigned(&bus, "g", "t").await;
    let error = readers[0].next().await.unwrap_err().to_string();
    assert!(
        error.contains("corrupt record in t[0] at offset 0"),
        "{error}"
    );
    assert_eq!(readers[0].next().await.unwrap().offset, 1);
}

#[tokio::test]
async fn invalid_topics_and_options_are_refused() {
    let dir = TempDir::new().unwrap();
    let bus = open(&dir, 1);
    assert!(matches!(
        bus.publish(outgoing("bad/topic", None, "x")).await,
        Err(BusError::InvalidTopic(_))
    ));
    assert!(matches!(
        bus.subscribe("g", &["".to_owned()]).await,
        Err(BusError::InvalidTopic(_))
    ));
    assert!(matches!(
        bus.read("..", StartAt::End).await,
        Err(BusError::InvalidTopic(_))
    ));
    let db = sled::Config::new().temporary(true).open().unwrap();
    assert!(
        LocalBus::open(
            db,
            LocalBusOptions {
                partitions: 0,
                ..LocalBusOptions::default()
            }
        )
        .is_err()
    );
}

//! S2 and S3 (docs/benchmarks.md) on one tansu broker in one run.
//!
//! S2, throughput (median of `ROUNDS` runs): `RECORDS` records of 100 B and of 1 KB are produced to a topic of
//! `PARTITIONS` partitions first; then each pipeline copies them to its own output topic:
//!
//! - **raw pipe**: plain rdkafka, consume → produce at once → store each offset when the
//!   acknowledgements up to it arrived (up to 1024 awaited per partition) — the host's offset
//!   discipline and producer settings (idempotent, `acks = all`, `linger.ms = 0`), without the
//!   host, written the way a Rust team would.
//! - **Python worker**: confluent-kafka, batch consume → produce → flush → store offsets
//!   (tests/peers/kafka_copy_worker.py).
//! - **agenthost, defaults**: the `echo` agent with the manifest's defaults.
//! - **agenthost, tuned**: `limits.reuse_instances = true` (a warm instance per event) and 64
//!   invocations in flight (`delivery.concurrency`, `limits.instances`).
//! - **agenthost, defaults + batch** and **tuned + batch**: with `delivery.batch = 64`: echo
//!   exports `on-events`, so up to 64 records of a partition (one per key) go to one invocation.
//!
//! Throughput is measured on the output records' arrival at a consumer of the output topic
//! (first to last), so group joins and start-up are not counted. Next to it, the machine's CPU
//! time per record copied (all processes: pipeline, broker, measuring consumer; between the
//! first and the last output, as the throughput), and the broker's part of it: on these 2
//! cores, shared by the broker and the pipeline, a pipeline's throughput is about what its CPU
//! per record leaves room for, and that figure varies far less from run to run.
//!
//! S3, latency: records produced at `RATE`/s for `LATENCY_WINDOW`, each carrying its send time;
//! a consumer of the output topic measures send → arrival. The raw pipe is the baseline; the
//! host's added latency is the difference.
//!
//! Run with `cargo xtask bench kafka_pipe` (it installs tansu and the Python client, and passes
//! `AGENTHOST_TANSU`). `AGENTHOST_BENCH_ONLY=tuned` (a comma-separated list of `raw`,
//! `defaults`, `defaults-batch`, `tuned`, `batch`, `python`) runs only those pipelines, e.g. under a profiler; ratios are
//! printed only when their baseline ran. `AGENTHOST_BENCH_SIZES=1024` runs one record size.
//!
//! The hosts run in this process with the log and spans `agenthost serve` installs (written to
//! `target/kafka_pipe-host.log`). A pipeline whose output stops arriving for a minute fails the
//! run, naming how many records arrived per partition and the host's lag per partition.

mod common;

use agenthost::config::HostConfig;
use agenthost::host::Host;
use anyhow::{Context, Result, ensure};
use common::{free_port, now_us, percentile_ms, process_cpu};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// tansu answers a fetch only when `fetch.wait.max.ms` (librdkafka's default: 500) runs out,
/// even with records waiting, which would put ~0.5 s into every hop; every consumer in this
/// benchmark (each pipeline's and the measuring one) uses 10 ms. Real Kafka answers as soon as
/// a record arrives, so the host keeps librdkafka's default.
const FETCH_WAIT_MS: &str = "10";
const RECORDS: usize = 50_000;
/// S2 runs each pipeline this many times and reports the median: on this 2-core machine shared
/// with the broker, single runs of the same pipeline differ by up to 5x.
const ROUNDS: usize = 3;
const PARTITIONS: i32 = 4;
const SIZES: [usize; 2] = [100, 1024];
const RATE: u64 = 1_000;
const LATENCY_WINDOW: Duration = Duration::from_secs(6);
/// Latency samples from the first second are dropped (connections, caches, instances warm up).
const LATENCY_WARMUP: Duration = Duration::from_secs(1);

/// The host's configuration in a pipeline: the manifest's defaults, or tuned.
#[derive(Clone, Copy)]
struct Tuning {
    reuse_instances: bool,
    /// `delivery.concurrency` and `limits.instances`: invocations in flight, each holding an
    /// instance while its publish awaits the broker's acknowledgement.
    in_flight: u32,
    /// The producer's `linger.ms` (`[bus.kafka.properties]`), if not the host's 0.
    linger_ms: Option<u32>,
    /// `delivery.batch`: records per invocation.
    batch: u32,
}

const DEFAULTS: Tuning = Tuning {
    reuse_instances: false,
    in_flight: 8,
    linger_ms: None,
    batch: 1,
};
const TUNED: Tuning = Tuning {
    reuse_instances: true,
    in_flight: 64,
    linger_ms: Some(5),
    batch: 1,
};
const DEFAULTS_BATCH: Tuning = Tuning {
    batch: 64,
    ..DEFAULTS
};
const TUNED_BATCH: Tuning = Tuning { batch: 64, ..TUNED };

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4");
    c
}

async fn create_topic(brokers: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(brokers).create()?;
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        r.map_err(|(t, e)| anyhow::anyhow!("create {t}: {e}"))?;
    }
    Ok(())
}

/// Produces `count` records of `size` bytes to `topic`, keyed over 64 keys; the payload starts
/// with its send time in microseconds. Paced to `rate` per second if given.
async fn produce(
    brokers: &str,
    topic: &str,
    count: usize,
    size: usize,
    rate: Option<u64>,
) -> Result<()> {
    let producer: FutureProducer = client(brokers)
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()?;
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..count {
        if let Some(rate) = rate {
            let due = started + Duration::from_micros(i as u64 * 1_000_000 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let mut payload = format!("{:020}", now_us()).into_bytes();
        payload.resize(size.max(20), b'x');
        let key = format!("key-{}", i % 64);
        let headers = OwnedHeaders::new().insert(Header {
            key: "correlation-id",
            value: Some(&format!("bench-{i}")),
        });
        let record = FutureRecord::to(topic)
            .payload(&payload)
            .key(&key)
            .headers(headers);
        pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    // Every record acknowledged before the producer is dropped (dropping it would purge what
    // is still lingering).
    for d in pending {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// How long an output topic may receive nothing before a pipeline counts as stalled (the first
/// records take a group join, a few seconds).
const STALL: Duration = Duration::from_secs(60);

/// A consumer of `topic` (empty, just created) that is already fetching when this returns:
/// every partition has reported its end. Opened before the pipeline starts, so each output
/// record is timed as it arrives; a consumer that started fetching late would read a backlog
/// in a burst and time the burst instead of the pipeline (it inflated runs up to 6x).
async fn open_drain(brokers: &str, topic: &str) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = client(brokers)
        .set("group.id", "bench-drain")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < PARTITIONS as usize {
        ensure!(
            Instant::now() < deadline,
            "{topic}: the output consumer did not reach the end of every partition"
        );
        match tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            Err(_) => continue,
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(m)) => anyhow::bail!("{topic} is not empty: offset {}", m.offset()),
        }
    }
    Ok(consumer)
}

/// What a measuring consumer saw of a pipeline's output.
struct Drained {
    /// When each record arrived (µs since the epoch).
    arrivals: Vec<u64>,
    /// Each record's send → arrival time (µs), for records that carry their send time.
    latencies: Vec<u64>,
    /// The machine's CPU time between the first and the last arrival.
    cpu: Duration,
    /// The broker's part of it.
    broker_cpu: Duration,
}

/// Reads `consumer`'s topic until `count` more records arrived: each record's arrival time,
/// its send-to-arrival latency (from the payload's send time), and the CPU the machine and
/// the broker (process id `broker`) used meanwhile.
async fn drain(
    consumer: &StreamConsumer,
    topic: &str,
    count: usize,
    broker: u32,
) -> Result<Drained> {
    let mut arrivals = Vec::with_capacity(count);
    let mut cpu_at_first = None;
    let mut latencies = Vec::with_capacity(count);
    let mut per_partition = [0usize; PARTITIONS as usize];
    // A pipeline that moves nothing for this long has stalled: say where, rather than wait.
    let mut deadline = Instant::now() + STALL;
    while arrivals.len() < count {
        ensure!(
            Instant::now() < deadline,
            "{topic}: only {} of {count} records arrived, per partition {per_partition:?}, none in the last {}s",
            arrivals.len(),
            STALL.as_secs()
        );
        let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        deadline = Instant::now() + STALL;
        if let Some(n) = usize::try_from(m.partition())
            .ok()
            .and_then(|p| per_partition.get_mut(p))
        {
            *n += 1;
        }
        let arrived = now_us();
        if cpu_at_first.is_none() {
            cpu_at_first = Some((machine_cpu()?, process_cpu(broker)?));
        }
        arrivals.push(arrived);
        let sent = m
            .payload()
            .and_then(|p| std::str::from_utf8(p.get(..20)?).ok()?.parse::<u64>().ok())
            .unwrap_or(arrived);
        latencies.push(arrived.saturating_sub(sent));
    }
    let (cpu, broker_cpu) = match cpu_at_first {
        Some((machine, broker_first)) => (
            machine_cpu()?.saturating_sub(machine),
            process_cpu(broker)?.saturating_sub(broker_first),
        ),
        None => (Duration::ZERO, Duration::ZERO),
    };
    Ok(Drained {
        arrivals,
        latencies,
        cpu,
        broker_cpu,
    })
}

/// Records per second between the arrival of the first and of the last output record at a
/// consumer of the output topic. (Not the records' producer timestamps: those are stamped
/// when a record is handed to the client, long before the broker acknowledged it when many
/// are in flight.)
fn throughput(arrivals: &[u64]) -> f64 {
    let (min, max) = (
        arrivals.iter().min().copied().unwrap_or(0),
        arrivals.iter().max().copied().unwrap_or(0),
    );
    (arrivals.len().saturating_sub(1)) as f64 / ((max - min).max(1) as f64 / 1_000_000.0)
}

/// CPU time used on the whole machine so far (every process: the pipeline, the broker, the
/// measuring consumer), from `/proc/stat`, in the kernel's ticks of 10 ms.
fn machine_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("/proc/stat has no cpu line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("/proc/stat's cpu line is not numbers")?;
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Ok(Duration::from_millis(busy * 10))
}

/// The median of `runs` (sorted in place), if any.
fn median(runs: &mut [f64]) -> Option<f64> {
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied()
}

/// Acknowledgements a raw-pipe partition may await at once.
const RAW_WINDOW: usize = 1024;

/// The plain rdkafka pipe: one consumer for the group, a lane per partition (see `raw_lane`).
async fn raw_pipe(
    brokers: String,
    group: String,
    input: String,
    output: String,
    stop: CancellationToken,
) -> Result<()> {
    let consumer: Arc<StreamConsumer> = Arc::new(
        client(&brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("fetch.wait.max.ms", FETCH_WAIT_MS)
            .create()?,
    );
    consumer.subscribe(&[&input])?;
    let producer: FutureProducer = client(&brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    let mut lanes: HashMap<i32, mpsc::Sender<OwnedMessage>> = HashMap::new();
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m?.detach(),
        };
        let lane = lanes.entry(m.partition()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<OwnedMessage>(1024);
            tokio::spawn(raw_lane(
                rx,
                producer.clone(),
                consumer.clone(),
                output.clone(),
            ));
            tx
        });
        lane.send(m).await?;
    }
}

/// One partition of the raw pipe: each record is produced as soon as it is read (librdkafka
/// keeps the partition's order), up to `RAW_WINDOW` acknowledgements are awaited at once, and
/// the offset is stored as acknowledgements arrive in order, so it never passes a record whose
/// copy is not acknowledged.
async fn raw_lane(
    mut records: mpsc::Receiver<OwnedMessage>,
    producer: FutureProducer,
    consumer: Arc<StreamConsumer>,
    output: String,
) {
    type Ack =
        std::pin::Pin<Box<dyn std::future::Future<Output = (String, i32, i64, bool)> + Send>>;
    let mut acks: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut open = true;
    while open || !acks.is_empty() {
        tokio::select! {
            biased;
            Some((topic, partition, offset, acked)) = acks.next(), if !acks.is_empty() => {
                if !acked {
                    return;
                }
                let _ = consumer.store_offset(&topic, partition, offset + 1);
            }
            m = records.recv(), if open && acks.len() < RAW_WINDOW => {
                let Some(m) = m else {
                    open = false;
                    continue;
                };
                let mut record = FutureRecord::<[u8], [u8]>::to(&output)
                    .payload(m.payload().unwrap_or_default());
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                if let Some(headers) = m.headers() {
                    record = record.headers(headers.clone());
                }
                let Ok(delivery) = producer.send_result(record) else {
                    return;
                };
                let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                acks.push_back(Box::pin(async move {
                    (topic, partition, offset, matches!(delivery.await, Ok(Ok(_))))
                }));
            }
        }
    }
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One pipeline under test, running until dropped or stopped.
enum Running {
    Raw(CancellationToken, tokio::task::JoinHandle<Result<()>>),
    Python(Child),
    Host(Arc<Host>, PathBuf),
}

impl Running {
    async fn stop(self) {
        match self {
            Self::Raw(stop, task) => {
                stop.cancel();
                let _ = task.await;
            }
            Self::Python(child) => drop(child),
            Self::Host(host, dir) => {
                host.shutdown(Duration::from_secs(10)).await;
                drop(host);
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Pipeline {
    Raw,
    Python,
    Host(Tuning),
}

impl Pipeline {
    /// The name `AGENTHOST_BENCH_ONLY` selects it by.
    fn id(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Python => "python",
            Self::Host(t) => match (t.reuse_instances, t.batch > 1) {
                (false, false) => "defaults",
                (false, true) => "defaults-batch",
                (true, false) => "tuned",
                (true, true) => "batch",
            },
        }
    }

    /// Whether `AGENTHOST_BENCH_ONLY` (if set) selects it.
    fn selected(self) -> bool {
        std::env::var("AGENTHOST_BENCH_ONLY").map_or(true, |only| {
            only.split(',').any(|id| id.trim() == self.id())
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw pipe",
            Self::Python => "Python worker",
            Self::Host(t) => match (t.reuse_instances, t.batch > 1) {
                (false, false) => "agenthost (defaults)",
                (false, true) => "agenthost (defaults+batch)",
                (true, false) => "agenthost (tuned)",
                (true, true) => "agenthost (tuned+batch)",
            },
        }
    }

    async fn start(
        self,
        root: &Path,
        brokers: &str,
        group: &str,
        input: &str,
        output: &str,
    ) -> Result<Running> {
        Ok(match self {
            Self::Raw => {
                let stop = CancellationToken::new();
                let task = tokio::spawn(raw_pipe(
                    brokers.into(),
                    group.into(),
                    input.into(),
                    output.into(),
                    stop.clone(),
                ));
                Running::Raw(stop, task)
            }
            Self::Python => Running::Python(Child(
                std::process::Command::new("python3")
                    .arg(root.join("tests/peers/kafka_copy_worker.py"))
                    .args([brokers, group, input, output])
                    .spawn()
                    .context("cannot start the Python worker")?,
            )),
            Self::Host(tuning) => {
                let dir = std::env::temp_dir().join(format!(
                    "agenthost-kafka-bench-{}-{group}",
                    std::process::id()
                ));
                std::fs::create_dir_all(dir.join("agents"))?;
                let target = std::env::var("CARGO_TARGET_DIR")
                    .map_or_else(|_| root.join("target"), Into::into);
                let echo = target.join("plugins/echo.wasm");
                std::fs::write(
                    dir.join("agents/echo.toml"),
                    format!(
                        "name = \"echo\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n\
                         [[subscribe]]\ntopic = \"{input}\"\ngroup = \"{group}\"\n\
                         [delivery]\nconcurrency = {in_flight}\nbatch = {batch}\n\
                         [limits]\nreuse_instances = {}\ninstances = {in_flight}\n\
                         [capabilities]\npublish = [\"{output}\"]\nconfig = {{ out = \"{output}\" }}\n",
                        echo.display(),
                        tuning.reuse_instances,
                        in_flight = tuning.in_flight,
                        batch = tuning.batch,
                    ),
                )?;
                let config = HostConfig::parse(
                    &dir.join("agenthost.toml"),
                    &format!(
                        "listen = \"127.0.0.1:{}\"\n[runtime]\ncache = false\n\
                         [bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"{brokers}\"\n\
                         properties = {{ \"broker.address.family\" = \"v4\" }}\n\
                         consumer = {{ \"fetch.wait.max.ms\" = \"{FETCH_WAIT_MS}\" }}\n\
                         producer = {{ {linger} }}\n",
                        free_port()?,
                        linger = tuning
                            .linger_ms
                            .map_or_else(String::new, |ms| format!("\"linger.ms\" = \"{ms}\"")),
                    ),
                )?;
                let host = Host::open(config).await?;
                host.deploy_configured().await;
                Running::Host(host, dir)
            }
        })
    }
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_owned();
    // The log and spans `agenthost serve` installs: every invocation opens a span, which costs
    // what it costs in production only if a subscriber is listening. The log goes to a file.
    let log_path = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| root.join("target"), Into::into)
        .join("kafka_pipe-host.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let _telemetry = agenthost::telemetry::init_with_writer(
        agenthost::telemetry::LogFormat::Text,
        &agenthost::config::TelemetryConfig::default(),
        std::sync::Mutex::new(log),
    )?;
    println!("(the hosts' log: {})", log_path.display());
    let broker_dir = tempfile::tempdir()?;
    let tansu =
        tansu_harness::find().context("tansu is not installed (run `cargo xtask bench`)")?;
    let broker = tansu_harness::Broker::start(
        &tansu,
        free_port()?,
        broker_dir.path(),
        &broker_dir.path().join("tansu.log"),
    )?;
    let brokers = broker.address();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let pipelines = [
            Pipeline::Raw,
            Pipeline::Host(DEFAULTS),
            Pipeline::Host(DEFAULTS_BATCH),
            Pipeline::Host(TUNED),
            Pipeline::Host(TUNED_BATCH),
            Pipeline::Python,
        ];
        println!(
            "S2: Kafka -> echo -> Kafka, {RECORDS} records over {PARTITIONS} partitions, tansu on loopback"
        );
        // `AGENTHOST_BENCH_SIZES=1024` runs one record size only (e.g. under a profiler).
        let sizes = std::env::var("AGENTHOST_BENCH_SIZES").map_or(SIZES.to_vec(), |only| {
            SIZES
                .into_iter()
                .filter(|s| only.split(',').any(|o| o.trim() == s.to_string()))
                .collect()
        });
        for size in sizes {
            let input = format!("bench.in-{size}.v1");
            create_topic(&brokers, &input).await?;
            produce(&brokers, &input, RECORDS, size, None).await?;
            // Rounds of every pipeline in turn, so a slow phase of the machine hits them alike.
            let mut runs: Vec<Vec<f64>> = vec![Vec::new(); pipelines.len()];
            // Machine CPU per record copied (µs), between the first and the last output.
            let mut cpu_runs: Vec<Vec<f64>> = vec![Vec::new(); pipelines.len()];
            let mut broker_runs: Vec<Vec<f64>> = vec![Vec::new(); pipelines.len()];
            for round in 0..ROUNDS {
                for (i, pipeline) in pipelines.iter().enumerate() {
                    if !pipeline.selected() {
                        continue;
                    }
                    let output = format!("bench.out-{size}-{i}-{round}.v1");
                    create_topic(&brokers, &output).await?;
                    let consumer = open_drain(&brokers, &output).await?;
                    let group = format!("bench-s2-{size}-{i}-{round}");
                    let running = pipeline
                        .start(&root, &brokers, &group, &input, &output)
                        .await?;
                    let drained = drain(&consumer, &output, RECORDS, broker.pid()).await;
                    if let (Err(_), Running::Host(host, _)) = (&drained, &running) {
                        // Where the host stands: lag and work in flight per partition.
                        for line in host.metrics.encode().lines().filter(|l| {
                            !l.starts_with('#')
                                && ["lag", "in_use", "bus_errors", "invocations_total"]
                                    .iter()
                                    .any(|k| l.contains(k))
                        }) {
                            eprintln!("stalled host: {line}");
                        }
                    }
                    running.stop().await;
                    let drained = drained?;
                    runs[i].push(throughput(&drained.arrivals));
                    let per_record =
                        |cpu: Duration| cpu.as_secs_f64() * 1e6 / (RECORDS - 1) as f64;
                    cpu_runs[i].push(per_record(drained.cpu));
                    broker_runs[i].push(per_record(drained.broker_cpu));
                }
            }
            let rates: Vec<Option<f64>> = runs.iter_mut().map(|r| median(r)).collect();
            let cpu_per_record: Vec<Option<f64>> =
                cpu_runs.iter_mut().map(|r| median(r)).collect();
            let broker_per_record: Vec<Option<f64>> =
                broker_runs.iter_mut().map(|r| median(r)).collect();
            let (raw, python) = (rates[0], rates[5]);
            println!("  {size} B records:");
            for (i, (pipeline, rate)) in pipelines.iter().zip(&rates).enumerate() {
                let Some(rate) = rate else { continue };
                let vs = match pipeline {
                    Pipeline::Host(_) => [(raw, "raw pipe"), (python, "Python")]
                        .iter()
                        .filter_map(|(base, name)| Some(format!("{:.2}x {name}", rate / (*base)?)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => String::new(),
                };
                let (low, high) = runs[i]
                    .iter()
                    .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
                let cpu = cpu_per_record[i].unwrap_or(0.0);
                let broker_cpu = broker_per_record[i].unwrap_or(0.0);
                println!(
                    "    {:<27} {rate:>9.0} records/s (runs {low:.0}..{high:.0})  CPU/record {cpu:5.1} µs (broker {broker_cpu:4.1})  {vs}",
                    pipeline.name()
                );
            }
        }

        println!(
            "S3: end-to-end latency at {RATE} records/s, 100 B, {}s (first {}s dropped)",
            LATENCY_WINDOW.as_secs(),
            LATENCY_WARMUP.as_secs()
        );
        let count = (RATE * LATENCY_WINDOW.as_secs()) as usize;
        let warmup = (RATE * LATENCY_WARMUP.as_secs()) as usize;
        let mut baseline: Option<(f64, f64)> = None;
        for (i, pipeline) in [
            Pipeline::Raw,
            Pipeline::Host(DEFAULTS),
            Pipeline::Host(DEFAULTS_BATCH),
            Pipeline::Host(TUNED),
            Pipeline::Host(TUNED_BATCH),
        ]
        .into_iter()
        .enumerate()
        {
            if !pipeline.selected() {
                continue;
            }
            let (input, output) = (
                format!("bench.lat-in-{i}.v1"),
                format!("bench.lat-out-{i}.v1"),
            );
            create_topic(&brokers, &input).await?;
            create_topic(&brokers, &output).await?;
            let consumer = open_drain(&brokers, &output).await?;
            let running = pipeline
                .start(&root, &brokers, &format!("bench-s3-{i}"), &input, &output)
                .await?;
            // Let the pipeline join its group before the clock starts.
            produce(&brokers, &input, 1, 100, None).await?;
            drain(&consumer, &output, 1, broker.pid()).await?;
            let producing = tokio::spawn({
                let (brokers, input) = (brokers.clone(), input.clone());
                async move { produce(&brokers, &input, count, 100, Some(RATE)).await }
            });
            let drained = drain(&consumer, &output, count, broker.pid()).await;
            producing.await??;
            running.stop().await;
            let mut latencies = drained?.latencies.split_off(warmup);
            latencies.sort_unstable();
            let (p50, p99) = (percentile_ms(&latencies, 0.5), percentile_ms(&latencies, 0.99));
            let added = match pipeline {
                Pipeline::Raw => {
                    baseline = Some((p50, p99));
                    String::new()
                }
                _ => baseline.map_or_else(String::new, |(b50, b99)| {
                    format!("added p50 {:+.2} ms, p99 {:+.2} ms", p50 - b50, p99 - b99)
                }),
            };
            println!(
                "    {:<22} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  {added}",
                pipeline.name()
            );
        }
        anyhow::Ok(())
    })
}

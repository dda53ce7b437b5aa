//! A real Kafka-compatible broker (tansu) per test, on a free loopback port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary: `$AGENTHOST_TANSU`, else `tansu` on PATH, else `~/.cargo/bin/tansu`.
pub fn tansu_bin() -> PathBuf {
    if let Ok(path) = std::env::var("AGENTHOST_TANSU") {
        return PathBuf::from(path);
    }
    if let Some(found) = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
    {
        return found;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = PathBuf::from(home).join(".cargo/bin/tansu");
    assert!(
        cargo_bin.is_file(),
        "the tansu broker is not installed: run `cargo xtask test` (it installs it)"
    );
    cargo_bin
}

/// A running tansu broker with in-memory storage; killed when dropped.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Broker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = dir.path().join("tansu.log");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .current_dir(dir.path())
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("broker log"))
            .spawn()
            .expect("start tansu");
        let mut broker = Self {
            child: Some(child),
            port,
            _dir: dir,
            log,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = broker.child.as_mut().map(Child::try_wait) {
                panic!(
                    "tansu exited with {status}: {}",
                    std::fs::read_to_string(&broker.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("broker running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// `SIGSTOP`: the broker stops answering without closing connections.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// `SIGCONT`.
    pub fn thaw(&self) {
        self.signal("CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen broker ignores SIGTERM; SIGKILL always works.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The bus a test scenario runs on.
pub enum TestBus {
    Local,
    Kafka(Broker),
}

impl TestBus {
    pub fn local() -> Self {
        Self::Local
    }

    pub fn kafka() -> Self {
        Self::Kafka(Broker::start())
    }

    /// The host-config lines selecting this bus.
    pub fn config(&self) -> String {
        match self {
            Self::Local => String::new(),
            Self::Kafka(broker) => {
                // AGENTHOST_TEST_KAFKA_DEBUG=cgrp,consumer turns on librdkafka's debug logs.
                let debug = std::env::var("AGENTHOST_TEST_KAFKA_DEBUG")
                    .map(|d| format!(", \"debug\" = \"{d}\""))
                    .unwrap_or_default();
                format!(
                    "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"{}\"\nproperties = {{ \"broker.address.family\" = \"v4\"{debug} }}\n",
                    broker.address()
                )
            }
        }
    }

    /// Finished records a `kill -9` may replay beyond those in flight: none on the local bus
    /// (commits are durable when they return); on Kafka, those finished within the last
    /// `auto.commit.interval.ms` (1 s) before the kill.
    pub fn replay_window(&self) -> Duration {
        match self {
            Self::Local => Duration::ZERO,
            Self::Kafka(_) => Duration::from_millis(1500),
        }
    }
}

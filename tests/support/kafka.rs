//! A real Kafka-compatible broker (tansu) per test, on a free loopback port.

use std::time::Duration;

/// A running tansu broker with in-memory storage (see the `tansu-harness` crate); killed when
/// dropped.
pub struct Broker {
    broker: tansu_harness::Broker,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Self {
        let bin = tansu_harness::find()
            .expect("the tansu broker is not installed: run `cargo xtask test` (it installs it)");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("tansu.log");
        let broker = tansu_harness::Broker::start(&bin, crate::free_port(), dir.path(), &log)
            .unwrap_or_else(|e| panic!("{e:#}"));
        Self { broker, _dir: dir }
    }

    pub fn address(&self) -> String {
        self.broker.address()
    }

    /// `SIGSTOP`: the broker stops answering without closing connections.
    pub fn freeze(&self) {
        self.broker.freeze().expect("freeze the broker");
    }

    /// `SIGCONT`.
    pub fn thaw(&self) {
        self.broker.thaw().expect("thaw the broker");
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

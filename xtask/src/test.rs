//! `cargo xtask test`: everything the test suite needs, then the whole suite. This is the test
//! command of the README and of CI: on a fresh machine it installs the wasm32-wasip2 target, the
//! Kafka-compatible broker (tansu) and the Python Kafka client the tests use as an independent
//! peer, builds the plugins and the host binary, and runs every unit and integration test.

use crate::{plugins, workspace};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The broker the Kafka tests run against; `dynostore` gives it in-memory storage.
const TANSU_VERSION: &str = "0.6.0";
/// The independent Kafka client the tests drive the host with.
const CONFLUENT_KAFKA: &str = "confluent-kafka==2.16.1";

pub fn run(args: Vec<String>) -> Result<()> {
    ensure_tansu()?;
    ensure_python_client()?;
    // Components first: the integration tests load target/plugins/*.wasm.
    plugins::run(Vec::new())?;
    // The integration tests start the real `agenthost` binary.
    workspace::run(workspace::cargo().args(["build", "-p", "agenthost"]))?;
    // Unit tests, doctests and integration tests of every crate (plugins' logic runs on the
    // host target); extra arguments go to `cargo test`, e.g. a test-name filter.
    workspace::run(workspace::cargo().args(["test", "--workspace"]).args(&args))
}

/// Where the tests look for tansu (see tests/support/kafka.rs): `$AGENTHOST_TANSU`, PATH, or
/// cargo's bin directory.
fn tansu_installed() -> bool {
    if std::env::var_os("AGENTHOST_TANSU").is_some() {
        return true;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join("tansu").is_file()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path || cargo_home.is_some_and(|h| h.join("bin/tansu").is_file())
}

fn ensure_tansu() -> Result<()> {
    if tansu_installed() {
        return Ok(());
    }
    println!("==> installing the tansu broker {TANSU_VERSION} (a few minutes, once)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    workspace::run(
        Command::new(cargo)
            .args([
                "install",
                "tansu",
                "--version",
                TANSU_VERSION,
                "--locked",
                "--features",
                "dynostore",
            ])
            // Its own build directory: the workspace's target/ is not for third-party binaries.
            .env_remove("CARGO_TARGET_DIR"),
    )
    .context("cannot install the tansu broker the Kafka tests need")
}

fn ensure_python_client() -> Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("==> installing the Python Kafka client ({CONFLUENT_KAFKA})");
    workspace::run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        CONFLUENT_KAFKA,
    ]))
    .context("cannot install the Python Kafka client the tests use as an independent peer")
}

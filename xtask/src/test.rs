//! `cargo xtask test`: everything the test suite needs, then the whole suite. This is the test
//! command of the README and of CI: on a fresh machine it installs the wasm32-wasip2 target, the
//! Kafka-compatible broker (tansu) and the independent peers the tests run against (Python
//! packages from `tests/peers/requirements.txt`, npm packages from `tests/peers/package.json`),
//! builds the plugins and the host binary, and runs every unit and integration test.

use crate::{peers, plugins, workspace};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub fn run(args: Vec<String>) -> Result<()> {
    ensure_tansu()?;
    peers::ensure_python()?;
    peers::ensure_node()?;
    // Components first: the integration tests load target/plugins/*.wasm.
    plugins::run(Vec::new())?;
    // The integration tests start the real `agenthost` binary.
    workspace::run(workspace::cargo().args(["build", "-p", "agenthost"]))?;
    // Unit tests, doctests and integration tests of every crate (plugins' logic runs on the
    // host target); extra arguments go to `cargo test`, e.g. a test-name filter.
    workspace::run(workspace::cargo().args(["test", "--workspace"]).args(&args))
}

/// The tansu binary, installed first if it is missing.
pub fn ensure_tansu() -> Result<PathBuf> {
    if let Some(path) = tansu_harness::find() {
        return Ok(path);
    }
    println!(
        "==> installing the tansu broker {} (a few minutes, once)",
        tansu_harness::VERSION
    );
    workspace::cargo_install(
        "tansu",
        tansu_harness::VERSION,
        &["--features", "dynostore"],
    )
    .context("cannot install the tansu broker the Kafka tests need")?;
    tansu_harness::find()
        .context("tansu was installed but is not on PATH or in cargo's bin directory")
}

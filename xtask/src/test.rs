//! `cargo xtask test`: everything the test suite needs, then the whole suite. This is the test
//! command of the README and of CI: on a fresh machine it installs the wasm32-wasip2 target, the
//! Kafka-compatible broker (tansu) and the independent peers the tests run against (Python
//! packages from `tests/peers/requirements.txt`, npm packages from `tests/peers/package.json`),
//! builds the plugins and the host binary, and runs every unit and integration test.

use crate::{peers, plugins, workspace};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The broker the Kafka tests run against; `dynostore` gives it in-memory storage.
const TANSU_VERSION: &str = "0.6.0";

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

/// Where the tests look for tansu (see tests/support/kafka.rs): `$AGENTHOST_TANSU`, PATH, or
/// cargo's bin directory.
fn tansu_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AGENTHOST_TANSU") {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|dir| dir.join("tansu"))
            .find(|t| t.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path.or_else(|| {
        cargo_home
            .map(|h| h.join("bin/tansu"))
            .filter(|t| t.is_file())
    })
}

/// The tansu binary, installed first if it is missing.
pub fn ensure_tansu() -> Result<PathBuf> {
    if let Some(path) = tansu_path() {
        return Ok(path);
    }
    println!("==> installing the tansu broker {TANSU_VERSION} (a few minutes, once)");
    workspace::cargo_install("tansu", TANSU_VERSION, &["--features", "dynostore"])
        .context("cannot install the tansu broker the Kafka tests need")?;
    tansu_path().context("tansu was installed but is not on PATH or in cargo's bin directory")
}

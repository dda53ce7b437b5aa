//! `cargo xtask test`: everything the test suite needs, then the whole suite. This is the test
//! command of the README and of CI: on a fresh machine it installs the wasm32-wasip2 target,
//! builds the plugins and the host binary, and runs every unit and integration test.

use crate::{plugins, workspace};
use anyhow::Result;

pub fn run(args: Vec<String>) -> Result<()> {
    // Components first: the integration tests load target/plugins/*.wasm.
    plugins::run(Vec::new())?;
    // The integration tests start the real `agenthost` binary.
    workspace::run(workspace::cargo().args(["build", "-p", "agenthost"]))?;
    // Unit tests, doctests and integration tests of every crate (plugins' logic runs on the
    // host target); extra arguments go to `cargo test`, e.g. a test-name filter.
    workspace::run(workspace::cargo().args(["test", "--workspace"]).args(&args))
}

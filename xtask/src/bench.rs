//! `cargo xtask bench`: the benchmarks of DESIGN §9 that exist so far, each printing a baseline
//! measured in the same run and the ratio to it. Release builds; expect a long first build.

use crate::{plugins, workspace};
use anyhow::Result;

pub fn run(args: Vec<String>) -> Result<()> {
    plugins::run(vec!["echo".into()])?;
    // S1: in-process dispatch through `echo`.
    workspace::run(
        workspace::cargo()
            .args(["bench", "-p", "agenthost", "--bench", "dispatch", "--"])
            .args(&args),
    )
}

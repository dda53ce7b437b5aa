//! `cargo xtask bench`: the benchmarks of docs/benchmarks.md, each printing a baseline
//! measured in the same run and the ratio to it. Release builds; expect a long first build.
//! Arguments select benchmarks by name (`dispatch`, `mcp_call`, `a2a_send`, `mcp_serve`, `kafka_pipe`, `lifecycle`, `audit_log`, `first_output`); none runs them all.

use crate::{peers, plugins, workspace};
use anyhow::{Result, bail};

/// (cargo bench name, what it measures)
const BENCHES: &[(&str, &str)] = &[
    ("dispatch", "S1: in-process dispatch through `echo`"),
    (
        "mcp_call",
        "MCP: a tool call through the host vs rmcp direct",
    ),
    (
        "a2a_send",
        "S6: A2A SendMessage through the host vs the Python a2a-sdk server",
    ),
    (
        "mcp_serve",
        "MCP server: tools/call through the host vs the Python SDK's MCPServer (FastMCP)",
    ),
    (
        "kafka_pipe",
        "S2/S3: Kafka -> echo -> Kafka vs a raw rdkafka pipe and a Python worker (tansu)",
    ),
    (
        "lifecycle",
        "S4/S5: hot swap under load; density and restart time",
    ),
    (
        "audit_log",
        "the audit log's CPU per entry as it grows vs JSON lines to a file",
    ),
    (
        "first_output",
        "S7: agenthost new to first output per language vs the language's bare compile",
    ),
];

pub fn run(args: Vec<String>) -> Result<()> {
    for arg in &args {
        if !BENCHES.iter().any(|(name, _)| name == arg) {
            bail!(
                "unknown benchmark {arg:?}; known: {}",
                BENCHES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    plugins::run(vec!["echo".into(), "tool-call".into()])?;
    peers::ensure_node()?;
    peers::ensure_python()?;
    let tansu = crate::test::ensure_tansu()?;
    for (name, what) in BENCHES {
        if !args.is_empty() && !args.iter().any(|a| a == name) {
            continue;
        }
        println!("==> {what}");
        workspace::run(
            workspace::cargo()
                .args(["bench", "-p", "agenthost", "--bench", name])
                .env("AGENTHOST_TANSU", &tansu),
        )?;
    }
    Ok(())
}

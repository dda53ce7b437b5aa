//! `cargo xtask <command>`: the project's scripts, in Rust (no clap, to stay fast to build).
//!
//! Add a command: a module with `pub fn run(args: Vec<String>) -> anyhow::Result<()>`, a line in
//! `USAGE` and an arm in `main`.

mod bench;
mod demo;
mod fuzz;
mod peers;
mod plugins;
mod test;
mod workspace;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  plugins [NAME...]   build the agents (all, or those named) to target/plugins/<name>.wasm:
                      Rust under plugins/ (wasm32-wasip2), JavaScript under plugins-js/,
                      Python under plugins-py/
  test [ARGS...]      install what the tests need, build plugins and host, run every test
                      (ARGS go to `cargo test`, e.g. a test-name filter)
  demo [--once] [--kafka]
                      the quickstart: run examples/pricing on the embedded bus (--kafka: on a
                      tansu broker it starts), send it price-check requests, show every step
                      and what the agents produce; --once checks it all appeared and exits
  bench [NAME...]     the benchmarks (docs/benchmarks.md), each against a baseline from the same run
  fuzz [SECONDS] [TARGET...]
                      run the cargo-fuzz targets (manifest, component) for SECONDS each
                      (default 60); installs cargo-fuzz when missing
  help                show this message";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let args: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("plugins") => plugins::run(args),
        Some("test") => test::run(args),
        Some("demo") => demo::run(args),
        Some("bench") => bench::run(args),
        Some("fuzz") => fuzz::run(args),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

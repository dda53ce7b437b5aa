//! The integration tests: real `agenthost` processes, brokers and peers, driven through the CLI
//! and HTTP. One module a suite; what each covers is in `tests/README.md`.

mod a2a;
mod audit;
mod bus_suite;
mod demo;
mod deploy;
mod engine;
mod hostile;
mod kafka;
mod languages;
mod mcp;
mod mcp_server;
mod orchestrator;
mod sandbox;
mod scaffold;
mod telemetry;
mod versions;

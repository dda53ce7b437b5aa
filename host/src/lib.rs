//! agenthost: runs AI agents shipped as WebAssembly components, giving each only the
//! capabilities its manifest grants.

pub mod a2a;
pub mod agent;
pub mod audit;
pub mod bus;
pub mod canary;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod deployments;
pub mod host;
pub mod http;
pub mod invocation;
#[cfg(test)]
mod layers;
pub mod manifest;
pub mod mcp;
pub mod metrics;
#[cfg(test)]
mod reference;
pub mod registry;
pub mod runtime;
pub mod telemetry;
pub mod text;
pub mod watch;
pub mod wit;

//! Capabilities: what an agent may touch, one module each.
//!
//! Each capability owns its manifest section (its type and checks, gathered in
//! [`Capabilities`]), the *grant* built from it once per agent version at deploy, its
//! per-instance state (built for every invocation), its linker registration, and the checks of
//! every call. Deny by default: an interface the manifest does not grant is refused at deploy,
//! and every call of a granted one is checked again. docs/architecture.md says what adding one
//! takes.

pub mod a2a;
pub mod batch;
pub mod budget;
mod caller;
mod capability;
mod catalog;
pub mod config;
pub mod env;
pub mod files;
pub mod http;
pub mod invocation;
pub mod log;
pub mod mcp;
pub mod publish;
mod sections;
pub mod state;
pub mod wasi;

pub use caller::{Caller, Sent};
pub use capability::{Capability, Requirement};
pub use catalog::{ALL, check_import, grant_needed, granted_agent_interfaces};
pub use sections::Capabilities;

use crate::audit::AuditLog;
use crate::bus::Bus;
use crate::metrics::Metrics;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

/// Per-instance views of the agent's grants, one per capability: what an invocation's store
/// carries for the capabilities to use.
pub struct InstanceCaps {
    pub publish: publish::PublishInstance,
    pub state: state::StateInstance,
    pub log: log::LogInstance,
    pub config: config::ConfigInstance,
    pub invocation: invocation::InvocationInstance,
    pub mcp: mcp::McpInstance,
    pub a2a: a2a::A2aInstance,
    pub files: files::FilesInstance,
    pub http: http::HttpInstance,
}

impl InstanceCaps {
    /// The views of one instance on its agent version's `grants`, each acting for `caller`.
    pub fn new(grants: &Grants, caller: &Caller) -> Self {
        Self {
            publish: publish::PublishInstance::new(grants.publish.clone(), caller.clone()),
            state: state::StateInstance::new(
                grants.state.clone(),
                caller.clone(),
                grants.audit.clone(),
            ),
            log: log::LogInstance::new(caller.clone(), grants.log.clone()),
            config: config::ConfigInstance::new(
                grants.config.clone(),
                caller.clone(),
                grants.audit.clone(),
            ),
            invocation: invocation::InvocationInstance::new(caller.clone()),
            mcp: mcp::McpInstance::new(grants.mcp.clone(), caller.clone()),
            a2a: a2a::A2aInstance::new(grants.a2a.clone(), caller.clone()),
            files: files::FilesInstance::new(caller.clone(), grants.audit.clone()),
            http: http::HttpInstance::new(grants.http.clone(), caller.clone()),
        }
    }
}

/// What an instance's store offers the capabilities. The runtime's store implements it and no
/// capability names the store's type: each links its interface with a getter into this (the
/// `HasData` pattern of wasmtime's bindings).
pub trait InstanceStore: WasiView + WasiHttpView + Send + 'static {
    fn caps(&mut self) -> &mut InstanceCaps;
    fn caller(&mut self) -> &mut Caller;
}

/// What capabilities need from the host to build an agent's grants.
#[derive(Clone)]
pub struct HostServices {
    pub bus: Arc<dyn Bus>,
    pub db: sled::Db,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    pub mcp: Arc<crate::mcp::McpServers>,
    pub a2a: Arc<dyn a2a::A2aRouter>,
    /// The host's HTTP listener: agents reach it only through an http rule naming it exactly.
    pub listen: Option<std::net::SocketAddr>,
    /// Each agent's state, shared by its versions.
    pub states: Arc<state::StateStores>,
}

/// Every grant of one agent version, built from its manifest at deploy.
pub struct Grants {
    pub publish: Arc<publish::PublishGrant>,
    pub state: Option<Arc<state::StateStore>>,
    pub config: Arc<config::ConfigGrant>,
    pub env: env::EnvGrant,
    pub files: files::FilesGrant,
    pub audit: Arc<AuditLog>,
    pub log: Arc<budget::LogBudget>,
    pub mcp: Arc<mcp::McpGrant>,
    pub a2a: Arc<a2a::A2aGrant>,
    pub http: Arc<http::HttpGrant>,
}

/// What of an agent's manifest its grants are built from: its `[capabilities]` and the
/// `[limits]` the capabilities enforce.
pub struct GrantRequest<'a> {
    pub agent: &'a str,
    pub capabilities: &'a Capabilities,
    pub publish: publish::PublishLimits,
    /// `limits.log_rate`: log lines per second across the agent's instances.
    pub log_rate: u32,
}

impl Grants {
    /// Every grant of `request`; an error names a grant this host cannot honour (an MCP
    /// server it does not configure, a directory that does not exist).
    pub fn new(request: &GrantRequest<'_>, services: &HostServices) -> anyhow::Result<Self> {
        let capabilities = request.capabilities;
        Ok(Self {
            publish: Arc::new(publish::PublishGrant::new(
                request.agent,
                &capabilities.publish,
                request.publish,
                services.bus.clone(),
                services.metrics.clone(),
                services.audit.clone(),
                &services.db,
            )?),
            state: state::StateStore::granted(
                request.agent,
                &capabilities.state,
                &services.db,
                &services.states,
            )?
            .map(Arc::new),
            config: Arc::new(config::ConfigGrant::new(&capabilities.config)),
            audit: services.audit.clone(),
            env: env::EnvGrant::new(&capabilities.env),
            files: files::FilesGrant::new(&capabilities.files)?,
            log: Arc::new(budget::LogBudget::new(
                request.agent.into(),
                request.log_rate,
                services.metrics.clone(),
            )),
            mcp: Arc::new(mcp::McpGrant::new(
                &capabilities.mcp,
                services.mcp.clone(),
                services.audit.clone(),
                services.metrics.clone(),
            )?),
            a2a: Arc::new(a2a::A2aGrant::new(
                &capabilities.a2a,
                services.a2a.clone(),
                services.audit.clone(),
            )),
            http: Arc::new(http::HttpGrant::new(
                &capabilities.http,
                services.audit.clone(),
                services.listen,
            )),
        })
    }
}

/// Registers every import this host provides. One linker serves every agent: what a given
/// agent may use is decided by [`check_import`] at deploy and by its grants on every call.
pub fn add_to_linker<T: InstanceStore>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wasi::add_to_linker(linker)?;
    files::add_to_linker(linker, |s| &mut s.caps().files)?;
    http::add_to_linker(linker)?;
    crate::wit::types::add_to_linker::<T, caller::CallerData>(linker, |s| s.caller())?;
    publish::add_to_linker(linker, |s| &mut s.caps().publish)?;
    state::add_to_linker(linker, |s| &mut s.caps().state)?;
    log::add_to_linker(linker, |s| &mut s.caps().log)?;
    config::add_to_linker(linker, |s| &mut s.caps().config)?;
    invocation::add_to_linker(linker, |s| &mut s.caps().invocation)?;
    mcp::add_to_linker(linker, |s| &mut s.caps().mcp)?;
    a2a::add_to_linker(linker, |s| &mut s.caps().a2a)?;
    batch::add_to_linker(linker, |s| s.caller())?;
    Ok(())
}

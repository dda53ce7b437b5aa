//! `batch.handling`: inside an `on-events` batch, names the event the agent works on, so what
//! it sends, logs and is audited for is attributed to that event. Always granted: it reaches
//! nothing outside the instance.

use super::caller::Caller;
use crate::wit::batch as wit;
use wasmtime::component::Linker;

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: None,
    interfaces: &["agenthost:agent/batch"],
    required: None,
    validate: super::capability::nothing_to_validate,
    grants: super::capability::no_grant_lines,
};

impl wit::Host for Caller {
    fn handling(&mut self, index: u32) -> wasmtime::Result<()> {
        // A wrong index is a bug in the agent: trapping fails the batch loudly rather than
        // attributing its records to the wrong event.
        Caller::handling(self, index).map_err(wasmtime::Error::msg)
    }
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut Caller,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, super::caller::CallerData>(linker, get)?;
    Ok(())
}

//! `invocation`: what the invocation in progress was asked for beyond its message — the card
//! skill an MCP tool call addressed, so an agent offering several skills as tools knows which
//! one was called even when their arguments look alike. Always granted: it tells the agent
//! only about the request it is serving.

use super::caller::Caller;
use crate::wit::invocation as wit;
use wasmtime::component::{HasData, Linker};

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: None,
    interfaces: &["agenthost:agent/invocation"],
    required: None,
    validate: super::capability::nothing_to_validate,
    grants: super::capability::no_grant_lines,
};

pub struct InvocationInstance {
    caller: Caller,
}

impl InvocationInstance {
    pub fn new(caller: Caller) -> Self {
        Self { caller }
    }
}

impl wit::Host for InvocationInstance {
    async fn skill(&mut self) -> Option<String> {
        self.caller.skill().map(|skill| skill.to_string())
    }
}

struct HasInvocation;
impl HasData for HasInvocation {
    type Data<'a> = &'a mut InvocationInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut InvocationInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasInvocation>(linker, get)?;
    Ok(())
}

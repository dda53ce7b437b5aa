//! `config`: an agent reads the `capabilities.config` values of its own manifest, nothing else.

use super::caller::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::wit::config as wit;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// Every agent reads its own manifest's `capabilities.config`; the values are not grants.
pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: None,
    interfaces: &["agenthost:agent/config"],
    required: None,
    validate: super::capability::nothing_to_validate,
    grants: super::capability::no_grant_lines,
};

/// `capabilities.config`: values the agent reads by key.
pub type Section = BTreeMap<String, String>;

pub struct ConfigGrant {
    values: BTreeMap<String, String>,
}

impl ConfigGrant {
    pub fn new(section: &Section) -> Self {
        Self {
            values: section.clone(),
        }
    }
}

pub struct ConfigInstance {
    grant: Arc<ConfigGrant>,
    caller: Caller,
    audit: Arc<AuditLog>,
}

impl ConfigInstance {
    pub fn new(grant: Arc<ConfigGrant>, caller: Caller, audit: Arc<AuditLog>) -> Self {
        Self {
            grant,
            caller,
            audit,
        }
    }
}

impl wit::Host for ConfigInstance {
    async fn get(&mut self, key: String) -> Option<String> {
        self.caller
            .audit(&self.audit, "config", &key, Outcome::Allowed, "");
        self.grant.values.get(&key).cloned()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        self.caller
            .audit(&self.audit, "config", "*", Outcome::Allowed, "");
        self.grant
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

struct HasConfig;
impl HasData for HasConfig {
    type Data<'a> = &'a mut ConfigInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasConfig>(linker, get)?;
    Ok(())
}

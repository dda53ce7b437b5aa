//! `state`: per-agent key-value storage in sled, within the quota `capabilities.state` grants.
//!
//! State belongs to the agent, not to a version: a new version sees what the old one wrote, and
//! versions running side by side (a canary beside the live one) count against one usage, so
//! neither can fill the store past its quota because the other's writes went uncounted.

use super::caller::Caller;
use crate::audit::AuditLog;
use crate::wit::{state as wit, types};
use bytesize::ByteSize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use wasmtime::component::{HasData, Linker};

/// Its grant is a quota: the capability diff shows it as `state quota` beside the limits.
pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.state"),
    interfaces: &["agenthost:agent/state"],
    required: Some(super::capability::Requirement {
        granted: |c| c.state.is_some(),
        missing: "state: set a quota with `capabilities.state = \"16MiB\"`",
    }),
    validate: |c| match c.state {
        Some(quota) if quota.as_u64() == 0 => {
            Err("`capabilities.state` is 0: omit it to grant no state, or give a quota".into())
        }
        _ => Ok(()),
    },
    grants: super::capability::no_grant_lines,
};

/// `capabilities.state`: the quota of the agent's key-value state; absent, no state import.
pub type Section = Option<ByteSize>;

const MAX_KEY: usize = 1024;

/// One agent's stored state and what it takes, shared by every version of the agent.
struct Usage {
    tree: sled::Tree,
    /// Bytes of keys plus values stored; the lock also serialises writers so the quota check and
    /// the write are one step.
    used: Mutex<u64>,
}

/// The open state of each agent, so versions deployed side by side share one [`Usage`].
#[derive(Default)]
pub struct StateStores {
    open: Mutex<HashMap<String, Weak<Usage>>>,
}

impl StateStores {
    fn usage(&self, db: &sled::Db, agent: &str) -> anyhow::Result<Arc<Usage>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(usage) = open.get(agent).and_then(Weak::upgrade) {
            return Ok(usage);
        }
        let tree = db.open_tree(format!("state/{agent}"))?;
        let mut used = 0u64;
        for entry in tree.iter() {
            let (k, v) = entry?;
            used += (k.len() + v.len()) as u64;
        }
        let usage = Arc::new(Usage {
            tree,
            used: Mutex::new(used),
        });
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(agent.to_owned(), Arc::downgrade(&usage));
        Ok(usage)
    }
}

/// An agent version's view of the agent's state: the shared store, under this version's quota.
pub struct StateStore {
    usage: Arc<Usage>,
    quota: u64,
}

impl StateStore {
    /// The agent's store, or `None` when its manifest grants no state.
    pub fn granted(
        agent: &str,
        section: &Section,
        db: &sled::Db,
        stores: &StateStores,
    ) -> anyhow::Result<Option<Self>> {
        let Some(quota) = section else {
            return Ok(None);
        };
        Ok(Some(Self::open(db, stores, agent, quota.as_u64())?))
    }

    pub fn open(
        db: &sled::Db,
        stores: &StateStores,
        agent: &str,
        quota: u64,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            usage: stores.usage(db, agent)?,
            quota,
        })
    }

    pub fn used(&self) -> u64 {
        *self.usage.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_key(key: &str) -> Result<(), types::Error> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(types::Error::Failed(format!(
                "state keys must be 1-{MAX_KEY} bytes, got {}",
                key.len()
            )));
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, types::Error> {
        Self::check_key(key)?;
        self.usage
            .tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(storage)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), types::Error> {
        Self::check_key(key)?;
        let mut used = self.usage.used.lock().unwrap_or_else(|p| p.into_inner());
        let old = self
            .usage
            .tree
            .get(key)
            .map_err(storage)?
            .map_or(0, |v| (key.len() + v.len()) as u64);
        // Saturating: the count is recomputed from the tree when it is opened, but a count
        // that were ever short must not wrap around into a huge one.
        let new_used = used.saturating_sub(old) + (key.len() + value.len()) as u64;
        if new_used > self.quota {
            return Err(types::Error::Failed(format!(
                "state quota exceeded: writing {key:?} ({} bytes) would use {} of {} bytes (capabilities.state)",
                value.len(),
                new_used,
                self.quota
            )));
        }
        self.usage.tree.insert(key, value).map_err(storage)?;
        *used = new_used;
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<(), types::Error> {
        Self::check_key(key)?;
        let mut used = self.usage.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = self.usage.tree.remove(key).map_err(storage)? {
            *used = used.saturating_sub((key.len() + old.len()) as u64);
        }
        Ok(())
    }

    pub fn list_keys(&self, prefix: &str) -> Result<Vec<String>, types::Error> {
        self.usage
            .tree
            .scan_prefix(prefix)
            .keys()
            .map(|k| {
                k.map(|k| String::from_utf8_lossy(&k).into_owned())
                    .map_err(storage)
            })
            .collect()
    }
}

fn storage(e: sled::Error) -> types::Error {
    types::Error::Failed(format!("state storage: {e}"))
}

/// Per-instance view: `None` when state is not granted (the import is then refused at deploy,
/// but the check is repeated here so a call can never reach another agent's data).
pub struct StateInstance {
    store: Option<Arc<StateStore>>,
    caller: Caller,
    audit: Arc<AuditLog>,
}

impl StateInstance {
    pub fn new(store: Option<Arc<StateStore>>, caller: Caller, audit: Arc<AuditLog>) -> Self {
        Self {
            store,
            caller,
            audit,
        }
    }

    /// Runs one operation on the agent's store and audits it.
    fn audited<T>(
        &self,
        capability: &str,
        target: &str,
        op: impl FnOnce(&StateStore) -> Result<T, types::Error>,
    ) -> Result<T, types::Error> {
        let result = match self.store.as_deref() {
            Some(store) => op(store),
            None => Err(types::Error::Denied(
                "this agent is granted no state (capabilities.state)".into(),
            )),
        };
        self.caller
            .audit_result(&self.audit, capability, target, &result);
        result
    }
}

impl wit::Host for StateInstance {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, types::Error> {
        self.audited("state.get", &key, |s| s.get(&key))
    }
    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::Error> {
        self.audited("state.set", &key, |s| s.set(&key, &value))
    }
    async fn delete(&mut self, key: String) -> Result<(), types::Error> {
        self.audited("state.delete", &key, |s| s.delete(&key))
    }
    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, types::Error> {
        self.audited("state.list", &format!("{prefix}*"), |s| {
            s.list_keys(&prefix)
        })
    }
}

struct HasState;
impl HasData for HasState {
    type Data<'a> = &'a mut StateInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StateInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasState>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(quota: u64) -> (tempfile::TempDir, sled::Db, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = StateStore::open(&db, &StateStores::default(), "a", quota).unwrap();
        (dir, db, s)
    }

    #[test]
    fn versions_side_by_side_share_one_usage() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let stores = StateStores::default();
        // The live version and a canary, both granted 20 bytes.
        let live = StateStore::open(&db, &stores, "a", 20).unwrap();
        let canary = StateStore::open(&db, &stores, "a", 20).unwrap();
        live.set("k1", b"12345678").unwrap(); // 10
        canary.set("k2", b"12345678").unwrap(); // 20: the quota, across both
        assert_eq!(live.used(), 20);
        assert!(live.set("k3", b"x").is_err(), "the canary's writes count");
        assert!(canary.set("k3", b"x").is_err());
        // One deletes what the other wrote: no underflow, no stale count.
        canary.delete("k1").unwrap();
        assert_eq!(live.used(), 10);
        live.set("k3", b"x").unwrap();
    }

    #[test]
    fn quota_counts_keys_and_values_and_overwrites() {
        let (_d, _db, s) = store(20);
        s.set("k1", b"12345678").unwrap(); // 10
        s.set("k1", b"123456789").unwrap(); // overwrite: 11, not 21
        assert_eq!(s.used(), 11);
        s.set("k2", b"1234567").unwrap(); // 11 + 9 = exactly the quota
        assert_eq!(s.used(), 20);
        match s.set("k3", b"x") {
            Err(types::Error::Failed(m)) => assert!(m.contains("quota"), "{m}"),
            other => panic!("expected quota failure, got {other:?}"),
        }
        s.delete("k1").unwrap();
        assert_eq!(s.used(), 9);
        s.set("k3", b"x").unwrap();
    }

    #[test]
    fn usage_is_recomputed_on_reopen_and_namespaces_are_separate() {
        let (_d, db, s) = store(1000);
        s.set("p/1", b"a").unwrap();
        s.set("p/2", b"b").unwrap();
        s.set("q", b"c").unwrap();
        assert_eq!(
            s.list_keys("p/").unwrap(),
            vec!["p/1".to_string(), "p/2".to_string()]
        );
        let again = StateStore::open(&db, &StateStores::default(), "a", 1000).unwrap();
        assert_eq!(again.used(), s.used());
        let other = StateStore::open(&db, &StateStores::default(), "b", 1000).unwrap();
        assert_eq!(other.get("q").unwrap(), None);
    }
}

//! The thread's fake host, and modules with the signatures of the generated imports that the
//! SDK's import modules call instead of the real ones outside a component.

use super::grants::Grants;
use super::{PeerFake, ToolFake};
use crate::HostError;
use crate::bindings::agenthost::agent::bus::Outgoing;
use crate::bindings::agenthost::agent::log::Level;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
pub(crate) struct Fake {
    pub grants: Grants,
    pub published: Vec<Outgoing>,
    /// The next offset of each topic (every topic has one partition here).
    pub offsets: HashMap<String, u64>,
    pub state: BTreeMap<String, Vec<u8>>,
    pub tools: HashMap<(String, String), ToolFake>,
    pub tool_calls: Vec<(String, String, String)>,
    pub peers: HashMap<String, PeerFake>,
    pub logs: Vec<(Level, String)>,
    pub denials: Vec<String>,
    /// The skill the invocation under test addressed (`invocation.skill`).
    pub skill: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Fake>> = const { RefCell::new(None) };
}

pub(crate) fn install(fake: Fake) {
    CURRENT.with(|c| *c.borrow_mut() = Some(fake));
}

pub(crate) fn uninstall() {
    CURRENT.with(|c| *c.borrow_mut() = None);
}

/// Runs `f` on the thread's fake host. An import used without one is a bug in the test:
/// it panics saying what to do.
pub(crate) fn with_current<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        let fake = current.as_mut().expect(
            "an agenthost import was called outside a component with no TestHost: create one with agenthost_sdk::testing::TestHost::from_manifest(..) first",
        );
        f(fake)
    })
}

/// A denial, recorded and returned.
fn deny(fake: &mut Fake, why: String) -> HostError {
    fake.denials.push(why.clone());
    HostError::Denied(why)
}

pub(crate) mod bus {
    use super::*;
    pub use crate::bindings::agenthost::agent::bus::{Outgoing, Receipt};

    pub fn publish(record: &Outgoing) -> Result<Receipt, HostError> {
        with_current(|f| {
            if !f.grants.may_publish(&record.topic) {
                let why = format!(
                    "publishing to {:?} is not granted (capabilities.publish: {:?})",
                    record.topic, f.grants.publish
                );
                return Err(deny(f, why));
            }
            let offset = f.offsets.entry(record.topic.clone()).or_insert(0);
            let receipt = Receipt {
                topic: record.topic.clone(),
                partition: 0,
                offset: *offset,
            };
            *offset += 1;
            f.published.push(record.clone());
            Ok(receipt)
        })
    }

    pub fn send(record: &Outgoing) -> Result<(), HostError> {
        publish(record).map(|_| ())
    }
}

pub(crate) mod state {
    use super::*;

    fn granted(f: &mut Fake) -> Result<(), HostError> {
        if f.grants.state {
            Ok(())
        } else {
            Err(deny(
                f,
                "state is not granted (capabilities.state sets its quota)".to_owned(),
            ))
        }
    }

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
        with_current(|f| {
            granted(f)?;
            Ok(f.state.get(key).cloned())
        })
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), HostError> {
        with_current(|f| {
            granted(f)?;
            f.state.insert(key.to_owned(), value.to_vec());
            Ok(())
        })
    }

    pub fn delete(key: &str) -> Result<(), HostError> {
        with_current(|f| {
            granted(f)?;
            f.state.remove(key);
            Ok(())
        })
    }

    pub fn list_keys(prefix: &str) -> Result<Vec<String>, HostError> {
        with_current(|f| {
            granted(f)?;
            Ok(f.state
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        })
    }
}

pub(crate) mod config {
    use super::*;

    pub fn get(key: &str) -> Option<String> {
        with_current(|f| f.grants.config.get(key).cloned())
    }

    pub fn get_all() -> Vec<(String, String)> {
        with_current(|f| {
            f.grants
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

pub(crate) mod invocation {
    use super::*;

    pub fn skill() -> Option<String> {
        with_current(|f| f.skill.clone())
    }
}

pub(crate) mod log {
    use super::*;
    pub use crate::bindings::agenthost::agent::log::Level;

    pub fn log(level: Level, message: &str) {
        with_current(|f| f.logs.push((level, message.to_owned())));
    }
}

pub(crate) mod mcp {
    use super::*;
    pub use crate::bindings::agenthost::agent::mcp::{
        Blob, Content, EmbeddedResource, ResourceLink, Tool, ToolResult,
    };

    pub fn list_tools(server: &str) -> Result<Vec<Tool>, HostError> {
        with_current(|f| {
            if !f.grants.mcp.contains_key(server) {
                let why = format!("MCP server {server:?} is not granted (capabilities.mcp)");
                return Err(deny(f, why));
            }
            let mut tools: Vec<Tool> = f
                .tools
                .keys()
                .filter(|(s, t)| s == server && f.grants.may_call(s, t))
                .map(|(_, t)| Tool {
                    name: t.clone(),
                    title: None,
                    description: None,
                    input_schema: "{\"type\":\"object\"}".to_owned(),
                    output_schema: None,
                })
                .collect();
            tools.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(tools)
        })
    }

    pub fn call_tool(server: &str, tool: &str, arguments: &str) -> Result<ToolResult, HostError> {
        // The fake is taken out while it runs: it may use the host too (log, say).
        let fake = with_current(|f| {
            if !f.grants.may_call(server, tool) {
                let why = format!(
                    "MCP tool {server}/{tool} is not granted (capabilities.mcp grants {:?})",
                    f.grants.mcp.get(server).cloned().unwrap_or_default()
                );
                return Err(deny(f, why));
            }
            f.tool_calls
                .push((server.to_owned(), tool.to_owned(), arguments.to_owned()));
            Ok(f.tools.remove(&(server.to_owned(), tool.to_owned())))
        })?;
        let Some(mut answer) = fake else {
            return Err(HostError::Failed(format!(
                "no fake for the MCP tool {server}/{tool}: give one with TestHost::tool"
            )));
        };
        let result = answer(arguments);
        with_current(|f| {
            f.tools.insert((server.to_owned(), tool.to_owned()), answer);
        });
        result
    }
}

pub(crate) mod a2a {
    use super::*;
    use crate::Message;
    pub use crate::bindings::agenthost::agent::a2a::Response;

    pub fn send_message(peer: &str, message: &Message) -> Result<Response, HostError> {
        let fake = with_current(|f| {
            if !f.grants.a2a.iter().any(|p| p == peer) {
                let why = format!(
                    "A2A peer {peer:?} is not granted (capabilities.a2a: {:?})",
                    f.grants.a2a
                );
                return Err(deny(f, why));
            }
            Ok(f.peers.remove(peer))
        })?;
        let Some(mut answer) = fake else {
            return Err(HostError::Failed(format!(
                "no fake for the A2A peer {peer:?}: give one with TestHost::peer"
            )));
        };
        let result = answer(message);
        with_current(|f| {
            f.peers.insert(peer.to_owned(), answer);
        });
        result
    }
}

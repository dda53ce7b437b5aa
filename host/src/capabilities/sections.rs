//! The manifest's `[capabilities]` table: one key per capability, each of a type its module
//! defines and checks. Deny by default: what is absent is not granted.

use super::{a2a, config, env, files, http, mcp, publish, state};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    pub publish: publish::Section,
    pub state: state::Section,
    pub http: http::Section,
    pub files: files::Section,
    pub env: env::Section,
    pub config: config::Section,
    pub mcp: mcp::Section,
    pub a2a: a2a::Section,
}

impl Capabilities {
    /// The checks serde cannot express, each capability's own (its `CAPABILITY.validate`).
    pub fn validate(&self) -> Result<(), String> {
        super::ALL
            .iter()
            .try_for_each(|capability| (capability.validate)(self))
    }
}

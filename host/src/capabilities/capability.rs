//! What a capability module says about itself: the manifest key that grants it, the interfaces
//! it opens, the grant lines a capability diff compares. Each module declares its `CAPABILITY`;
//! the catalog (`catalog.rs`) lists them.

use crate::config::Manifest;

/// What the host knows of one capability before any agent is deployed.
pub struct Capability {
    /// The manifest key that grants it (`capabilities.publish`), or `None` for what every
    /// agent has.
    pub key: Option<&'static str>,
    /// The interfaces it provides, without their version.
    pub interfaces: &'static [&'static str],
    /// For an interface only a grant opens: whether a manifest grants it, and what it then
    /// lacks and how to grant it (completing "the manifest grants no …").
    pub required: Option<Requirement>,
    /// What a manifest grants of it, one line each: the capability diff's `+`/`-` lines.
    pub grants: fn(&Manifest) -> Vec<String>,
}

pub struct Requirement {
    pub granted: fn(&Manifest) -> bool,
    pub missing: &'static str,
}

/// For capabilities whose grant is not a list (the diff shows their quantities instead).
pub fn no_grant_lines(_: &Manifest) -> Vec<String> {
    Vec::new()
}

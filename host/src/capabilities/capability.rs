//! What a capability module says about itself: the manifest key that grants it, the interfaces
//! it opens, how its section is checked, the grant lines a capability diff compares. Each module
//! declares its `CAPABILITY`; the catalog (`catalog.rs`) lists them.

use super::Capabilities;

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
    /// The checks of its section serde cannot express; the message names the key.
    pub validate: fn(&Capabilities) -> Result<(), String>,
    /// What a manifest grants of it, one line each: the capability diff's `+`/`-` lines.
    pub grants: fn(&Capabilities) -> Vec<String>,
}

pub struct Requirement {
    pub granted: fn(&Capabilities) -> bool,
    pub missing: &'static str,
}

/// For capabilities whose grant is not a list (the diff shows their quantities instead).
pub fn no_grant_lines(_: &Capabilities) -> Vec<String> {
    Vec::new()
}

/// For capabilities whose section serde checks completely, or that have none.
pub fn nothing_to_validate(_: &Capabilities) -> Result<(), String> {
    Ok(())
}

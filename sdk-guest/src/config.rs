//! The agent's `capabilities.config` values from its manifest (the `config` import).
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::config;
//!
//! let out = config::require("out")?; // Failure::Reject naming `out` when missing
//! let threshold: f64 = config::parse("threshold")?.unwrap_or(0.05);
//! let mode = config::get_or("mode", "strict");
//! # Ok(())
//! # }
//! ```

use crate::Failure;
#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::config as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::config as raw;
use std::fmt::Display;
use std::str::FromStr;

/// The value of `key`, if the manifest sets it.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// The value of `key`, or `default` when the manifest does not set it.
pub fn get_or(key: &str, default: &str) -> String {
    raw::get(key).unwrap_or_else(|| default.to_string())
}

/// The value of `key`; a missing key is a [`Failure::Reject`] naming it (a configuration error
/// does not heal by retrying).
pub fn require(key: &str) -> Result<String, Failure> {
    raw::get(key).ok_or_else(|| {
        Failure::Reject(format!(
            "missing config key {key:?}: set it in the agent manifest's `capabilities.config`"
        ))
    })
}

/// The value of `key` parsed as `T`, if the manifest sets it. A value that does not parse is a
/// [`Failure::Reject`] naming the key and the value.
pub fn parse<T>(key: &str) -> Result<Option<T>, Failure>
where
    T: FromStr,
    T::Err: Display,
{
    match raw::get(key) {
        None => Ok(None),
        Some(value) => value.trim().parse().map(Some).map_err(|error| {
            Failure::Reject(format!(
                "config key {key:?} = {value:?} is invalid: {error}"
            ))
        }),
    }
}

/// Every `(key, value)` pair the manifest sets.
pub fn all() -> Vec<(String, String)> {
    raw::get_all()
}

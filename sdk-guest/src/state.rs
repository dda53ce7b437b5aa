//! Per-agent key-value state (the `state` import).
//!
//! Granted by the manifest's `capabilities.state` quota; a write past the quota comes back as
//! [`HostError::Failed`]. Keys are strings, values bytes; the `_json` helpers store serde values
//! as JSON.
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::state;
//!
//! let seen: u64 = state::get_json("seen")?.unwrap_or(0);
//! state::set_json("seen", &(seen + 1))?;
//! # Ok(())
//! # }
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::state as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::state as raw;
use crate::{Failure, HostError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
    raw::get(key)
}

/// Store `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) -> Result<(), HostError> {
    raw::set(key, value)
}

/// Remove `key` (no error if it is absent).
pub fn delete(key: &str) -> Result<(), HostError> {
    raw::delete(key)
}

/// The keys starting with `prefix`, in byte order.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, HostError> {
    raw::list_keys(prefix)
}

/// The JSON value stored under `key`, if any. A stored value that does not parse as `T` is a
/// [`Failure::Reject`] naming the key.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Failure> {
    match raw::get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            Failure::Reject(format!(
                "the value of state key {key:?} {}: {error}",
                crate::json::what_is_wrong(&error)
            ))
        }),
    }
}

/// Store `value` as JSON under `key`. A value that cannot be serialized is a
/// [`Failure::Reject`] naming the key.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Failure> {
    let bytes = serde_json::to_vec(value).map_err(|error| {
        Failure::Reject(format!(
            "cannot serialize the value for state key {key:?} as JSON: {error}"
        ))
    })?;
    Ok(raw::set(key, &bytes)?)
}

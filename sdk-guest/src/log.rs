//! Structured logging into the host's log (the `log` import), tagged by the host with the
//! agent and the correlation id.
//!
//! The macros take `format!` arguments:
//!
//! ```no_run
//! let sku = "sku-1";
//! agenthost_sdk::info!("repriced {sku} by {:.1}%", 4.25);
//! agenthost_sdk::warn!("no competitor price for {sku}");
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::log as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::log as raw;

pub use raw::Level;

/// Log `message` at `level`.
pub fn write(level: Level, message: &str) {
    raw::log(level, message)
}

/// Log at [`Level::Trace`], `format!`-style.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)+))
    };
}

/// Log at [`Level::Debug`], `format!`-style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)+))
    };
}

/// Log at [`Level::Info`], `format!`-style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)+))
    };
}

/// Log at [`Level::Warn`], `format!`-style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)+))
    };
}

/// Log at [`Level::Error`], `format!`-style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)+))
    };
}

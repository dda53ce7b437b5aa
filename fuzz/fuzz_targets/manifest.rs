//! Arbitrary text as an agent manifest and as a host config: parsing and validation must answer
//! with a value or an error naming what was wrong, never panic.

#![no_main]

use agenthost::config::HostConfig;
use agenthost::manifest::Manifest;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = Manifest::parse(Path::new("agents/fuzz.toml"), text) {
        // The message is what a user reads: rendering it must not panic either.
        let _ = err.to_string();
    }
    if let Err(err) = HostConfig::parse(Path::new("agenthost.toml"), text) {
        let _ = err.to_string();
    }
});

//! Arbitrary bytes as an agent component: reading it without compiling (as `inspect` and
//! `build` do), compiling it, and checking it against a manifest that grants every capability
//! must refuse bad input with an error, never panic.

#![no_main]

use agenthost::config::HostConfig;
use agenthost::manifest::Manifest;
use agenthost::runtime::{Runtime, describe};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::LazyLock;

const MANIFEST: &str = r#"
name = "fuzz"
version = "1.0.0"
component = "fuzz.wasm"

[capabilities]
publish = ["*"]
state = "1MiB"
http = ["http://127.0.0.1:*"]
env = ["HOME"]
mcp = [{ server = "tools", tools = ["*"] }]
a2a = ["peer"]
"#;

struct Target {
    runtime: Runtime,
    manifest: Manifest,
    _data: std::path::PathBuf,
}

static TARGET: LazyLock<Target> = LazyLock::new(|| {
    let data = std::env::temp_dir().join(format!("agenthost-fuzz-{}", std::process::id()));
    let mut config = HostConfig::defaults_in(&data);
    // Every input is new bytes: a cache would only fill the disk.
    config.runtime.cache = false;
    config.runtime.pool_instances = 4;
    let runtime = Runtime::new(&config.runtime, &data).expect("runtime");
    let manifest = Manifest::parse(Path::new("agents/fuzz.toml"), MANIFEST).expect("manifest");
    Target {
        runtime,
        manifest,
        _data: data,
    }
});

fuzz_target!(|data: &[u8]| {
    let t = &*TARGET;
    match describe(data) {
        Ok(info) => {
            if let Err(err) = t.runtime.check_described(&info, &t.manifest) {
                let _ = err.to_string();
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
    let compiled = match t.runtime.compile(data) {
        Ok(compiled) => compiled,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    if let Err(err) = t.runtime.prepare(&compiled, &t.manifest) {
        let _ = err.to_string();
    }
});

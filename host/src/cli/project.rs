//! What `build`, `test`, `dev` and `inspect` keep inside an agent project: `.agenthost/`, with
//! the build's staging directory and the compiled-component cache they share, and the host
//! `test` and `dev` run for the project.

use crate::config::HostConfig;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `.agenthost/` in the project `dir`: the work files of the commands, never its sources.
pub fn work_dir(dir: &Path) -> PathBuf {
    dir.join(".agenthost")
}

/// The project's compiled-component cache: a large component (a Python agent's) is compiled
/// once for `test`, `dev` and `inspect --compile`.
pub fn compiled_dir(dir: &Path) -> PathBuf {
    work_dir(dir).join("compiled")
}

/// The config of a host run for the project in `dir`: `config` (for what the agent needs of a
/// host: MCP servers, A2A peers) or the defaults, with its own data directory, listener, the
/// embedded bus, no agents of its own and no watching. Its compiled components go to the
/// project's cache (a link from the data directory).
pub fn host_config(
    config: Option<&Path>,
    dir: &Path,
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<HostConfig> {
    let mut config = match config {
        Some(path) => HostConfig::load(path)?,
        None => HostConfig::defaults_in(data_dir),
    };
    config.data_dir = data_dir.to_owned();
    config.agents = Vec::new();
    config.watch_interval = Duration::ZERO;
    config.listen = listen;
    config.bus.kind = crate::config::BusKind::Local;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let compiled = compiled_dir(dir);
    #[cfg(unix)]
    if config.runtime.cache
        && !data_dir.join("compiled").exists()
        && std::fs::create_dir_all(&compiled).is_ok()
        && let Ok(target) = std::path::absolute(&compiled)
    {
        let _ = std::os::unix::fs::symlink(target, data_dir.join("compiled"));
    }
    Ok(config)
}

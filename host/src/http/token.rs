//! The admin token. `/v1` (deploy, approve, publish, read topics and the audit log) always
//! requires one: without it any local process — an agent's sidecar, or an agent granted
//! `http://127.0.0.1:*` — could deploy with `approve`. The operator's token comes from the
//! environment variable `[admin] token_env` names; with none set, the host generates one at
//! first start into `data_dir/admin-token` (mode 0600) and keeps it across restarts.
//!
//! So that the quickstart stays two commands, a generated token is also written where the CLI
//! on the same machine finds it for the host's address: `$XDG_STATE_HOME/agenthost/tokens/`
//! (default `~/.local/state/agenthost/tokens/`, the directory 0700 and each file 0600), one file
//! per listen address. Readable by the same user only, as the data_dir is.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Where the token a host uses came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// The variable `[admin] token_env` names.
    Environment(String),
    /// Generated into (or read back from) this file.
    File(PathBuf),
}

/// The token of a host with this `data_dir`: the environment's, else the one in
/// `data_dir/admin-token`, generated there the first time.
pub fn for_host(token_env: &str, data_dir: &Path) -> anyhow::Result<(String, Source)> {
    if let Ok(token) = std::env::var(token_env)
        && !token.is_empty()
    {
        return Ok((token, Source::Environment(token_env.to_owned())));
    }
    let path = data_dir.join("admin-token");
    let token = read_or_create(&path)?;
    Ok((token, Source::File(path)))
}

fn read_or_create(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} is readable by others (mode {:o}): `chmod 600` it, or delete it for a new token",
                    path.display(),
                    mode & 0o777
                );
            }
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = generate();
    write_private(path, &token)
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
    Ok(token)
}

/// 244 random bits from the OS (two v4 UUIDs), as 64 hex digits.
fn generate() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `text` to `path` readable and writable by the owner only, replacing what is there.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Beside it, named after it and this process (`with_extension` would cut an address-named
    // file at its first dot, and hosts writing at once would share one temporary file).
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The directory of the per-address token files, or `None` without a home directory.
fn clients_dir() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("agenthost").join("tokens"))
}

fn file_name(address: SocketAddr) -> String {
    format!(
        "{}-{}",
        address.ip().to_string().replace(':', "_"),
        address.port()
    )
}

/// The addresses a client may use for a host listening on `address`: itself, and for an
/// unspecified address its loopback equivalent too.
fn client_addresses(address: SocketAddr) -> Vec<SocketAddr> {
    let mut addresses = vec![address];
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            addresses.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            addresses.push(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port()))
        }
        _ => {}
    }
    addresses
}

/// Forgets what an earlier host on `address` shared (this one's token comes from the
/// environment, and a stale file would be sent instead of it).
pub fn unshare(address: SocketAddr) {
    if let Some(dir) = clients_dir() {
        for a in client_addresses(address) {
            let _ = std::fs::remove_file(dir.join(file_name(a)));
        }
    }
}

/// Makes a generated token findable by the CLI on this machine for the host's `address`. A
/// failure is logged, not fatal: the operator can still pass `--token`.
pub fn share_with_local_clients(address: SocketAddr, token: &str) {
    let Some(dir) = clients_dir() else {
        tracing::warn!(
            "no home directory: the CLI will need --token (the token is in data_dir/admin-token)"
        );
        return;
    };
    let addresses = client_addresses(address);
    let result = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .and_then(|_| {
            addresses
                .iter()
                .try_for_each(|a| write_private(&dir.join(file_name(*a)), token))
        });
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot share the admin token with the local CLI; pass --token");
    }
}

/// The token a host on this machine shared for `base_url` (`http://host:port`), if any.
pub fn for_client(base_url: &str) -> Option<String> {
    let uri: http::Uri = base_url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let dir = clients_dir()?;
    let addresses: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addresses.into_iter().find_map(|a| {
        std::fs::read_to_string(dir.join(file_name(a)))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_private_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let env = "AGENTHOST_TEST_TOKEN_THAT_IS_NOT_SET";
        let (first, source) = for_host(env, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        let path = dir.path().join("admin-token");
        assert_eq!(source, Source::File(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, _) = for_host(env, dir.path()).unwrap();
        assert_eq!(first, again);
        // A token file others can read is refused rather than trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = for_host(env, dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn file_names_are_per_address() {
        assert_eq!(
            file_name("127.0.0.1:8080".parse().unwrap()),
            "127.0.0.1-8080"
        );
        assert_eq!(file_name("[::1]:8080".parse().unwrap()), "__1-8080");
    }
}

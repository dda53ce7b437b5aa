//! `capabilities.files`: every path an agent opens inside its granted directories is audited,
//! allowed or denied. The confinement itself is cap-std's, through wasmtime-wasi's preopens
//! (granted in [`super::wasi`]): no `..`, symlink or absolute-path escape resolves outside a
//! grant, and a read-only grant refuses writes. This module wraps `descriptor.open-at`, the
//! call every file access starts with, and the calls that change a directory without opening
//! anything (mkdir, rmdir, unlink, rename, symlink, link), so a security team sees each attempt
//! and its outcome.
//!
//! A path outside every preopen (`/etc/passwd` with no `/` grant) never reaches the host:
//! the guest's libc has no directory to resolve it against and fails it itself.

use super::caller::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::config::HostConfig;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{self as fs, Host as _, HostDescriptor as _};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder, WasiView};

/// Linked for every agent because Rust's std imports them; with no `capabilities.files` there
/// are no preopened directories, so nothing is reachable through them.
pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.files"),
    interfaces: &["wasi:filesystem/types", "wasi:filesystem/preopens"],
    required: None,
    validate: |c| {
        for (i, grant) in c.files.iter().enumerate() {
            if !grant.mount.starts_with('/') {
                return Err(format!(
                    "`capabilities.files[{i}].mount`: {:?} must be an absolute path",
                    grant.mount
                ));
            }
            if grant.path.as_os_str().is_empty() {
                return Err(format!("`capabilities.files[{i}].path` must not be empty"));
            }
        }
        Ok(())
    },
    grants: |c| {
        c.files
            .iter()
            .map(|f| {
                let access = match f.access {
                    FileAccess::Read => "read",
                    FileAccess::ReadWrite => "read-write",
                };
                format!("files {} at {} ({access})", f.path.display(), f.mount)
            })
            .collect()
    },
};

/// `capabilities.files`: the host directories the agent sees, each at a mount point.
pub type Section = Vec<FileGrant>;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileGrant {
    /// Host directory, relative to the manifest's directory (resolved when it is loaded).
    pub path: PathBuf,
    /// Absolute path the agent sees.
    pub mount: String,
    #[serde(default)]
    pub access: FileAccess,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FileAccess {
    #[default]
    Read,
    ReadWrite,
}

/// The interface whose `open-at` is wrapped; older 0.2.x imports resolve to it too.
const FS_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// The directories an agent version is granted, checked at deploy.
pub struct FilesGrant {
    dirs: Vec<(PathBuf, String, FileAccess)>,
}

impl FilesGrant {
    pub fn new(section: &Section) -> anyhow::Result<Self> {
        let mut dirs = Vec::new();
        for grant in section {
            if !grant.path.is_dir() {
                anyhow::bail!(
                    "capabilities.files: {} (mounted at {}) is not a directory",
                    grant.path.display(),
                    grant.mount
                );
            }
            dirs.push((grant.path.clone(), grant.mount.clone(), grant.access));
        }
        Ok(Self { dirs })
    }

    /// Preopens the granted directories in an instance's WASI context: cap-std confines every
    /// path the agent opens to them.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        for (path, mount, access) in &self.dirs {
            let perms = match access {
                FileAccess::Read => FsPerms::ReadOnly,
                FileAccess::ReadWrite => FsPerms::ReadWrite,
            };
            wasi.preopened_dir(path, mount, perms)?;
        }
        Ok(())
    }
}

/// Per-instance: who is opening, and where it is recorded.
pub struct FilesInstance {
    caller: Caller,
    audit: Arc<AuditLog>,
}

impl FilesInstance {
    pub fn new(caller: Caller, audit: Arc<AuditLog>) -> Self {
        Self { caller, audit }
    }

    /// Audits one call on `target` (`read PATH`, `write PATH`, `mkdir PATH`, …).
    fn record(&self, target: &str, error: Option<&fs::ErrorCode>) {
        let (outcome, detail) = match error {
            None => (Outcome::Allowed, String::new()),
            // What cap-std answers for an escape and a read-only grant answers for a write.
            Some(code @ (fs::ErrorCode::NotPermitted | fs::ErrorCode::Access)) => (
                Outcome::Denied,
                format!("{code:?}: outside the granted directories or beyond their access"),
            ),
            Some(code) => (Outcome::Failed, format!("{code:?}")),
        };
        if outcome == Outcome::Denied {
            self.caller.warn_denied("files", target, &detail);
        }
        self.caller
            .audit(&self.audit, "files", target, outcome, &detail);
    }
}

type OpenAtParams = (
    Resource<fs::Descriptor>,
    fs::PathFlags,
    String,
    fs::OpenFlags,
    fs::DescriptorFlags,
);

/// Replaces wasmtime-wasi's `open-at` (linked by [`super::wasi::add_to_linker`], which must run
/// first) with one that calls it and audits the outcome.
pub fn add_to_linker<T: WasiView + Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut FilesInstance,
) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let wrapped = linker.instance(FS_TYPES).and_then(move |mut types| {
        types.func_wrap_async(
            "[method]descriptor.open-at",
            move |mut store: StoreContextMut<'_, T>,
                  (dir, path_flags, path, open_flags, flags): OpenAtParams| {
                Box::new(async move {
                    let data = store.data_mut();
                    let mut view = data.filesystem();
                    let result = match view
                        .open_at(dir, path_flags, path.clone(), open_flags, flags)
                        .await
                    {
                        Ok(fd) => Ok(fd),
                        // Trappable errors (a bad handle) stay traps, as unwrapped.
                        Err(err) => Err(view.convert_error_code(err)?),
                    };
                    let write = flags.contains(fs::DescriptorFlags::WRITE)
                        || open_flags.intersects(fs::OpenFlags::CREATE | fs::OpenFlags::TRUNCATE);
                    let verb = if write { "write" } else { "read" };
                    get(data).record(&format!("{verb} {path}"), result.as_ref().err());
                    Ok((result,))
                })
            },
        )?;
        wrap_mutations(&mut types, get)
    });
    linker.allow_shadowing(false);
    wrapped.map_err(|e| anyhow::anyhow!("cannot wrap {FS_TYPES}: {e}"))
}

/// Calls a wrapped filesystem method and audits it as `target`: a trappable error (a bad
/// handle) stays a trap, an error code is the guest's answer and the audited outcome.
macro_rules! audited {
    ($store:ident, $get:ident, $target:expr, |$view:ident| $call:expr) => {{
        let data = $store.data_mut();
        let mut $view = data.filesystem();
        let result = match $call.await {
            Ok(value) => Ok(value),
            Err(err) => Err($view.convert_error_code(err)?),
        };
        $get(data).record(&$target, result.as_ref().err());
        Ok((result,))
    }};
}

/// Wraps the calls that change a directory without opening a file.
fn wrap_mutations<T: WasiView + Send + 'static>(
    types: &mut wasmtime::component::LinkerInstance<'_, T>,
    get: fn(&mut T) -> &mut FilesInstance,
) -> wasmtime::Result<()> {
    type PathParams = (Resource<fs::Descriptor>, String);
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        move |mut store: StoreContextMut<'_, T>, (dir, path): PathParams| {
            Box::new(async move {
                audited!(store, get, format!("mkdir {path}"), |view| view
                    .create_directory_at(dir, path.clone()))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.remove-directory-at",
        move |mut store: StoreContextMut<'_, T>, (dir, path): PathParams| {
            Box::new(async move {
                audited!(store, get, format!("rmdir {path}"), |view| view
                    .remove_directory_at(dir, path.clone()))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.unlink-file-at",
        move |mut store: StoreContextMut<'_, T>, (dir, path): PathParams| {
            Box::new(async move {
                audited!(store, get, format!("unlink {path}"), |view| view
                    .unlink_file_at(dir, path.clone()))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        move |mut store: StoreContextMut<'_, T>,
              (dir, old, new): (Resource<fs::Descriptor>, String, String)| {
            Box::new(async move {
                audited!(store, get, format!("symlink {new} -> {old}"), |view| view
                    .symlink_at(dir, old.clone(), new.clone()))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.rename-at",
        move |mut store: StoreContextMut<'_, T>,
              (dir, old, new_dir, new): (
            Resource<fs::Descriptor>,
            String,
            Resource<fs::Descriptor>,
            String,
        )| {
            Box::new(async move {
                audited!(store, get, format!("rename {old} -> {new}"), |view| view
                    .rename_at(dir, old.clone(), new_dir, new.clone()))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        move |mut store: StoreContextMut<'_, T>,
              (dir, flags, old, new_dir, new): (
            Resource<fs::Descriptor>,
            fs::PathFlags,
            String,
            Resource<fs::Descriptor>,
            String,
        )| {
            Box::new(async move {
                audited!(store, get, format!("link {old} -> {new}"), |view| view
                    .link_at(dir, flags, old.clone(), new_dir, new.clone()))
            })
        },
    )?;
    Ok(())
}

/// The paths a files grant may not overlap: the host's own state and what it loads. A grant of
/// `data_dir` (or a parent of it) would let an agent read every other agent's state and tasks,
/// or overwrite a compiled artifact the host later loads as native code; a grant of an agents
/// directory or the config file would let it drop a manifest or rewrite the policy.
pub struct HostPaths {
    /// Canonical path, and what it is (for the error).
    protected: Vec<(PathBuf, String)>,
}

impl HostPaths {
    pub fn of(config: &HostConfig) -> Self {
        let mut protected = vec![(
            canonical(&config.data_dir),
            "the host's data_dir (state, bus log, compiled components, audit log)".to_owned(),
        )];
        if let Some(file) = &config.config_file {
            protected.push((canonical(file), "the host config file".to_owned()));
        }
        for glob in &config.agents {
            protected.push((
                canonical(&glob_directory(glob)),
                format!("the directory of the agents glob {glob:?}"),
            ));
        }
        Self { protected }
    }

    /// Refuses a manifest whose files grant overlaps a protected path: the grant is that path,
    /// inside it, or a parent of it. Paths are compared canonical, so `..` and symlinks in the
    /// grant do not hide an overlap.
    pub fn check(&self, section: &Section) -> Result<(), String> {
        for (i, grant) in section.iter().enumerate() {
            let granted = canonical(&grant.path);
            if let Some((path, what)) = self
                .protected
                .iter()
                .find(|(p, _)| granted.starts_with(p) || p.starts_with(&granted))
            {
                return Err(format!(
                    "`capabilities.files[{i}].path`: {} ({}) overlaps {what} ({}); an agent may not reach the host's own files: grant a directory outside it",
                    grant.path.display(),
                    granted.display(),
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// The directory a glob's matches live in: its components up to the first with a wildcard (for
/// a glob without one, the file's directory).
fn glob_directory(glob: &str) -> PathBuf {
    let path = Path::new(glob);
    let mut dir = PathBuf::new();
    let mut wildcard = false;
    for component in path.components() {
        if component
            .as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', '{'])
        {
            wildcard = true;
            break;
        }
        dir.push(component);
    }
    if !wildcard {
        dir.pop();
    }
    dir
}

/// `path` made absolute with symlinks and `..` resolved; the part that does not exist yet is
/// appended as written (after its existing ancestor is resolved), so a grant made before the
/// directory exists is compared by where it will be.
fn canonical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            let mut out = resolved;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other),
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grant of `grant`, written in a manifest in `dir/agents`.
    fn section(dir: &Path, grant: &str) -> Section {
        vec![FileGrant {
            path: dir.join("agents").join(grant),
            mount: "/d".into(),
            access: FileAccess::Read,
        }]
    }

    fn host(dir: &Path) -> HostPaths {
        let config = HostConfig::parse(
            &dir.join("agenthost.toml"),
            "data_dir = \"data\"\nagents = [\"agents/*.toml\"]\n",
        )
        .unwrap();
        HostPaths::of(&config)
    }

    #[test]
    fn grants_reaching_the_hosts_own_files_are_refused_naming_what_they_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["agents", "data/db", "shared", "elsewhere"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("agenthost.toml"), "").unwrap();
        std::os::unix::fs::symlink(d.join("data"), d.join("shared/link")).unwrap();
        let paths = host(d);
        for (grant, overlaps) in [
            ("../data", "data_dir"),
            ("../data/db", "data_dir"),
            // A parent of data_dir, the config file and the agents directory.
            ("..", "data_dir"),
            ("/", "data_dir"),
            (".", "agents glob"),
            ("sub", "agents glob"),
            // Through a symlink, or `..` that comes back into it.
            ("../shared/link", "data_dir"),
            ("../shared/../data", "data_dir"),
            // Not created yet: compared by where it will be.
            ("../data/later", "data_dir"),
        ] {
            let err = paths.check(&section(d, grant)).unwrap_err();
            assert!(
                err.contains("capabilities.files[0].path") && err.contains(overlaps),
                "{grant}: {err}"
            );
        }
        for grant in ["../shared", "../elsewhere", "../shared/new", "../database"] {
            paths
                .check(&section(d, grant))
                .unwrap_or_else(|e| panic!("{grant}: {e}"));
        }
    }

    #[test]
    fn a_globs_directory_is_where_its_matches_live() {
        assert_eq!(glob_directory("/a/agents/*.toml"), Path::new("/a/agents"));
        assert_eq!(glob_directory("/a/*/x.toml"), Path::new("/a"));
        assert_eq!(glob_directory("/a/agents/x.toml"), Path::new("/a/agents"));
    }
}

//! `capabilities.files`: every path an agent opens inside its granted directories is audited,
//! allowed or denied. The confinement itself is cap-std's, through wasmtime-wasi's preopens
//! (granted in [`super::wasi`]): no `..`, symlink or absolute-path escape resolves outside a
//! grant, and a read-only grant refuses writes. This module wraps `descriptor.open-at`, the
//! call every file access starts with, so a security team sees each attempt and its outcome.
//!
//! A path outside every preopen (`/etc/passwd` with no `/` grant) never reaches the host:
//! the guest's libc has no directory to resolve it against and fails it itself.

use super::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::runtime::StoreData;
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{self as fs, Host as _, HostDescriptor as _};

/// The interface whose `open-at` is wrapped; older 0.2.x imports resolve to it too.
const FS_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Per-instance: who is opening, and where it is recorded.
pub struct FilesInstance {
    caller: Caller,
    audit: Arc<AuditLog>,
}

impl FilesInstance {
    pub fn new(caller: Caller, audit: Arc<AuditLog>) -> Self {
        Self { caller, audit }
    }

    fn record(
        &self,
        path: &str,
        write: bool,
        result: &Result<Resource<fs::Descriptor>, fs::ErrorCode>,
    ) {
        let target = format!("{} {path}", if write { "write" } else { "read" });
        let (outcome, detail) = match result {
            Ok(_) => (Outcome::Allowed, String::new()),
            // What cap-std answers for an escape and a read-only grant answers for a write.
            Err(code @ (fs::ErrorCode::NotPermitted | fs::ErrorCode::Access)) => (
                Outcome::Denied,
                format!("{code:?}: outside the granted directories or beyond their access"),
            ),
            Err(code) => (Outcome::Failed, format!("{code:?}")),
        };
        if outcome == Outcome::Denied {
            let c = &self.caller;
            tracing::warn!(
                agent = &*c.agent,
                version = &*c.version,
                correlation_id = &*c.correlation_id(),
                path,
                "file access denied"
            );
        }
        self.caller
            .audit(&self.audit, "files", &target, outcome, &detail);
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
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let wrapped = linker.instance(FS_TYPES).and_then(|mut types| {
        types.func_wrap_async(
            "[method]descriptor.open-at",
            |mut store: StoreContextMut<'_, StoreData>,
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
                    data.caps.files.record(&path, write, &result);
                    Ok((result,))
                })
            },
        )
    });
    linker.allow_shadowing(false);
    wrapped.map_err(|e| anyhow::anyhow!("cannot wrap {FS_TYPES} open-at: {e}"))
}

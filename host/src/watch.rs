//! Watching the `agents` globs: a manifest that appears or changes, or whose component changes,
//! is deployed with the same rules as `agenthost deploy` (a version granted more than the
//! running one is refused and listed by `agenthost agents` until approved).
//!
//! The files are polled rather than watched through inotify: polling works the same on every
//! filesystem (network mounts, container volumes, editors that replace files), and a poll of a
//! few manifests per second costs nothing. A change is deployed only once it has stayed the
//! same for one more interval, so a manifest and component written in several steps (a build,
//! an editor's save, a copy) are deployed once, when complete.

use crate::deployments::Origin;
use crate::host::Host;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a manifest's deployment depends on: its own bytes' metadata and its component's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    manifest: Option<(SystemTime, u64)>,
    /// Where the manifest says its component is (`None` if it does not parse).
    component_path: Option<PathBuf>,
    component: Option<(SystemTime, u64)>,
}

fn stat(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Fingerprint {
    /// The fingerprint of `manifest` now. The manifest is parsed (for its component's path)
    /// only when it changed since `previous`: every poll stats each file, but does not parse
    /// every manifest every second.
    pub fn of(manifest: &Path, previous: Option<&Fingerprint>) -> Self {
        let manifest_stat = stat(manifest);
        // One that does not parse is watched by its own bytes only (fixing it is a change of
        // the manifest).
        let component_path = match previous {
            Some(p) if p.manifest.is_some() && p.manifest == manifest_stat => {
                p.component_path.clone()
            }
            _ => crate::manifest::Manifest::load(manifest)
                .ok()
                .map(|m| m.component),
        };
        Self {
            manifest: manifest_stat,
            component: component_path.as_deref().and_then(stat),
            component_path,
        }
    }
}

/// Fingerprints of every manifest the globs match; `previous` is the last snapshot.
pub fn snapshot(
    globs: &[String],
    previous: &HashMap<PathBuf, Fingerprint>,
) -> HashMap<PathBuf, Fingerprint> {
    crate::config::manifest_paths(globs)
        .into_iter()
        .map(|p| {
            let f = Fingerprint::of(&p, previous.get(&p));
            (p, f)
        })
        .collect()
}

/// Polls the globs every `interval` until the host stops; `known` is what was deployed at start.
pub fn spawn(host: Arc<Host>, mut known: HashMap<PathBuf, Fingerprint>, interval: Duration) {
    tokio::spawn(async move {
        let globs = host.config.agents.clone();
        // Changed at the last poll, deployed if still the same at this one.
        let mut settling: HashMap<PathBuf, Fingerprint> = HashMap::new();
        let mut last_scan = known.clone();
        loop {
            tokio::select! {
                _ = host.stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let scan = {
                let (globs, previous) = (globs.clone(), std::mem::take(&mut last_scan));
                match tokio::task::spawn_blocking(move || snapshot(&globs, &previous)).await {
                    Ok(scan) => scan,
                    Err(_) => continue,
                }
            };
            for (path, fingerprint) in &scan {
                if known.get(path) == Some(fingerprint) {
                    settling.remove(path);
                    continue;
                }
                if settling.get(path) != Some(fingerprint) {
                    settling.insert(path.clone(), fingerprint.clone());
                    continue;
                }
                settling.remove(path);
                known.insert(path.clone(), fingerprint.clone());
                // The deployment says itself in the log and the audit log, deployed or
                // refused (the running version keeps serving a refusal).
                let _ = host
                    .deploy_path(path, crate::host::Approval::Required, Origin::Config)
                    .await;
            }
            known.retain(|path, _| {
                let present = scan.contains_key(path);
                if !present {
                    tracing::info!(manifest = %path.display(), "manifest removed; its agent keeps running until deployed again or the host restarts");
                }
                present
            });
            settling.retain(|path, _| scan.contains_key(path));
            last_scan = scan;
        }
    });
}

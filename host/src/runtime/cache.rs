//! The compiled-artifact cache: a component is compiled once per (digest, engine configuration)
//! and the native artifact kept under `data_dir/compiled`, so a restart does not recompile.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    /// Identifies the engine's compilation settings and wasmtime version: an artifact built by
    /// another configuration is never loaded.
    engine_key: String,
}

/// `sha256:<hex>` of component bytes: the identity of a component everywhere in the host.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ArtifactCache {
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{hex}-{}.cwasm", self.engine_key))
    }

    /// The cached artifact for `digest`, if one exists and the engine accepts it. A corrupt or
    /// incompatible file is removed so the caller recompiles.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path_for(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `put` from wasmtime's own serialization, under the
        // host's private data directory, and its name binds it to this engine configuration.
        // Anyone able to write there could already replace the host binary's inputs.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "discarding unusable compiled artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the artifact atomically (write to a temporary file, then rename), so a crash
    /// never leaves a truncated artifact under the final name.
    pub fn put(&self, digest: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let path = self.path_for(digest);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

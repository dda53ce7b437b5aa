//! `agenthost inspect`: what a component imports and exports and, given a manifest, which
//! imports are granted and which are missing — the review before approving an agent.

use super::Format;
use crate::capabilities::{check_import, grant_needed};
use crate::config::RuntimeConfig;
use crate::manifest::Manifest;
use crate::runtime::{Runtime, read_component};
use std::path::Path;

pub fn run(component: &Path, manifest: Option<&Path>, format: Format) -> anyhow::Result<()> {
    let manifest = manifest.map(Manifest::load).transpose()?;
    let bytes = read_component(component)?;
    let scratch = tempfile_dir()?;
    // A small pool and no cache: inspecting must not need or touch a host's data_dir.
    let config = RuntimeConfig {
        pool_instances: 4,
        cache: false,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(&config, scratch.path())?;
    let compiled = runtime.compile(&bytes)?;
    let info = runtime.inspect(&compiled, bytes.len());
    let verdicts: Vec<(String, Result<(), String>)> = match &manifest {
        Some(m) => info
            .imports
            .iter()
            .map(|i| (i.name.clone(), check_import(&i.name, &m.capabilities)))
            .collect(),
        None => Vec::new(),
    };
    let world = match &manifest {
        Some(m) => runtime.prepare(&compiled, m).err().map(|e| e.to_string()),
        None => None,
    };
    if format == Format::Json {
        let verdicts: Vec<_> = verdicts
            .iter()
            .map(|(name, v)| serde_json::json!({ "import": name, "granted": v.is_ok(), "reason": v.as_ref().err() }))
            .collect();
        let out = serde_json::json!({ "component": info, "grants": verdicts, "deployable": manifest.is_some().then(|| world.is_none()), "refusal": world });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "component {} ({} bytes, {})",
        component.display(),
        info.size,
        info.digest
    );
    println!("exports:");
    for e in &info.exports {
        println!("  {}  {}", e.name, e.functions.join(", "));
    }
    println!("imports:");
    for i in &info.imports {
        let needs = match (&manifest, grant_needed(&i.name)) {
            (None, Some(note)) => format!("  [{note}]"),
            _ => String::new(),
        };
        println!("  {}{needs}", i.name);
    }
    if let Some(m) = &manifest {
        println!("against manifest {} {}:", m.name, m.version);
        for (name, verdict) in &verdicts {
            match verdict {
                Ok(()) => println!("  granted  {name}"),
                Err(reason) => println!("  MISSING  {name}: {reason}"),
            }
        }
        match &world {
            None => println!("deployable: yes"),
            Some(reason) => println!("deployable: no: {reason}"),
        }
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let path = std::env::temp_dir().join(format!("agenthost-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

/// A scratch directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

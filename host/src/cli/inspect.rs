//! `agenthost inspect`: what a component imports and exports and, given a manifest, which
//! imports are granted and which are missing — the review before approving an agent. It reads
//! the component without compiling it (milliseconds, even for a large Python component);
//! `--compile` also compiles and links it as a deploy does. It fails when the manifest does
//! not let the component deploy, so a script or CI step can gate on it.

use super::Format;
use crate::capabilities::{check_import, grant_needed};
use crate::config::RuntimeConfig;
use crate::manifest::Manifest;
use crate::runtime::{Runtime, describe, read_component};
use anyhow::Context as _;
use std::path::Path;

/// Which component to inspect and how far to check it.
pub struct Inspect<'a> {
    /// The component; without it, the one the manifest names.
    pub component: Option<&'a Path>,
    pub manifest: Option<&'a Path>,
    /// Also compile and link it, as a deploy does: slower (seconds for a large component), and
    /// it catches what only linking reveals, such as an import of the right name and the
    /// wrong type.
    pub compile: bool,
    pub format: Format,
}

/// A component a manifest does not let deploy: the reason is printed, and the command fails.
#[derive(Debug, thiserror::Error)]
#[error("{component} is not deployable under {manifest}")]
pub struct NotDeployable {
    component: String,
    manifest: String,
}

pub fn run(args: Inspect<'_>) -> anyhow::Result<()> {
    let manifest = args.manifest.map(Manifest::load).transpose()?;
    let component = match (args.component, &manifest) {
        (Some(path), _) => path.to_owned(),
        (None, Some(m)) => m.component.clone(),
        (None, None) => anyhow::bail!(
            "name a component to inspect, or a manifest whose `component` to inspect (--manifest)"
        ),
    };
    let bytes = match (args.component, &manifest, args.manifest) {
        (None, Some(m), Some(path)) => m.read_component(path)?,
        _ => read_component(&component)?,
    };
    let info = describe(&bytes).with_context(|| component.display().to_string())?;
    let verdicts: Vec<(String, Result<(), String>)> = match &manifest {
        Some(m) => info
            .imports
            .iter()
            .map(|i| (i.name.clone(), check_import(&i.name, &m.capabilities)))
            .collect(),
        None => Vec::new(),
    };
    let refusal = match &manifest {
        Some(m) => refusal(&bytes, &info, m, args.compile)?,
        None => None,
    };
    if args.format == Format::Json {
        let verdicts: Vec<_> = verdicts
            .iter()
            .map(|(name, v)| serde_json::json!({ "import": name, "granted": v.is_ok(), "reason": v.as_ref().err() }))
            .collect();
        let out = serde_json::json!({
            "component": info,
            "path": component,
            "grants": verdicts,
            "deployable": manifest.is_some().then(|| refusal.is_none()),
            "refusal": refusal,
            "compiled": args.compile,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_text(
            &component,
            &info,
            manifest.as_ref(),
            &verdicts,
            &refusal,
            args.compile,
        );
    }
    match (&manifest, &refusal, args.manifest) {
        (Some(_), Some(_), Some(path)) => Err(NotDeployable {
            component: component.display().to_string(),
            manifest: path.display().to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Why a deploy of the component under `manifest` would be refused, if it would: checked
/// from what the component declares or, with `compile`, by compiling and linking it.
pub(super) fn refusal(
    bytes: &[u8],
    info: &crate::runtime::ComponentInfo,
    manifest: &Manifest,
    compile: bool,
) -> anyhow::Result<Option<String>> {
    let scratch = tempfile_dir()?;
    // A small pool and no host's data_dir. In an agent project (`.agenthost/` beside the
    // manifest's component, made by `build`, `test` or `dev`) a compile goes to the project's
    // artifact cache, which `test` and `dev` use too: a large component compiles once.
    let project_cache = manifest
        .component
        .parent()
        .map(super::project::work_dir)
        .filter(|dir| compile && dir.is_dir());
    let config = RuntimeConfig {
        pool_instances: 4,
        cache: project_cache.is_some(),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(&config, project_cache.as_deref().unwrap_or(scratch.path()))?;
    if let Err(e) = runtime.check_described(info, manifest) {
        return Ok(Some(e.to_string()));
    }
    if !compile {
        return Ok(None);
    }
    let compiled = match runtime.compile(bytes) {
        Ok(compiled) => compiled,
        Err(e) => return Ok(Some(e.to_string())),
    };
    Ok(runtime
        .prepare(&compiled, manifest)
        .err()
        .map(|e| e.to_string()))
}

fn print_text(
    component: &Path,
    info: &crate::runtime::ComponentInfo,
    manifest: Option<&Manifest>,
    verdicts: &[(String, Result<(), String>)],
    refusal: &Option<String>,
    compiled: bool,
) {
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
        let needs = match (manifest, grant_needed(&i.name)) {
            (None, Some(note)) => format!("  [{note}]"),
            _ => String::new(),
        };
        println!("  {}{needs}", i.name);
    }
    if let Some(m) = manifest {
        println!("against manifest {} {}:", m.name, m.version);
        for (name, verdict) in verdicts {
            match verdict {
                Ok(()) => println!("  granted  {name}"),
                Err(reason) => println!("  MISSING  {name}: {reason}"),
            }
        }
        match refusal {
            None if compiled => println!("deployable: yes (compiled and linked)"),
            None => println!(
                "deployable: yes, by what it declares (--compile also compiles and links it)"
            ),
            Some(reason) => println!("deployable: no: {reason}"),
        }
    }
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

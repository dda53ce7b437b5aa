//! JavaScript projects (a `package.json`): rolldown bundles `agent.js` with what it imports
//! (the SDK, npm packages) into one module, and componentize-qjs (the QuickJS engine) turns
//! the bundle into a component for the world written from the manifest. Both tools are pinned
//! in the project's `package.json` (`agenthost new` writes these versions) and installed with
//! npm on first use.

use super::{step, world};
use crate::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The versions `agenthost new` pins, the ones `cargo xtask plugins` builds with.
pub const COMPONENTIZE_QJS: &str = "0.4.5";
pub const ROLLDOWN: &str = "1.3.3";

pub fn build(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    ensure_tools(dir)?;
    let stage = super::stage_dir(dir);
    let world = world::stage(dir, manifest, &stage)?;
    let bin = dir.join("node_modules").join(".bin");
    let bundle = stage.join("agent.js");
    let wasm = stage.join(format!("{}.wasm", manifest.name));

    let mut rolldown = Command::new(bin.join("rolldown"));
    rolldown
        .args(["--config", "rolldown.config.mjs", "--file"])
        .arg(&bundle)
        .current_dir(dir);
    step(&mut rolldown, "rolldown (bundling agent.js)", None)?;

    let mut componentize = Command::new(bin.join("componentize-qjs"));
    componentize
        .arg("--wit")
        .arg(&world.wit)
        .args(["--world", &world.name, "--js"])
        .arg(&bundle)
        // --sync: the runtime without the component-model async ABI (the host calls agents
        // synchronously); --opt-size: the smaller QuickJS build, less for the host to compile.
        .args(["--sync", "--opt-size", "--output"])
        .arg(&wasm)
        .current_dir(dir);
    let hint = format!(
        "an import of agent.js that its world lacks means agent.toml does not grant it: the world ({}) imports {}",
        world.wit.join("world.wit").display(),
        world.imports_said()
    );
    step(&mut componentize, "componentize-qjs", Some(&hint))?;
    Ok(wasm)
}

/// `npm install` in the project when its pinned tools are not installed, or its package.json
/// changed since they were.
fn ensure_tools(dir: &Path) -> anyhow::Result<()> {
    let installed = dir.join("node_modules").join(".package-lock.json");
    let bin = dir.join("node_modules").join(".bin");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = bin.join("componentize-qjs").exists()
        && bin.join("rolldown").exists()
        && modified(&installed) >= modified(&dir.join("package.json"));
    if fresh {
        return Ok(());
    }
    eprintln!(
        "installing the JavaScript build tools and dependencies (npm install in {})",
        dir.display()
    );
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund"])
        .current_dir(dir);
    step(
        &mut npm,
        "npm install",
        Some("agenthost build needs Node.js 20 or later with npm on PATH"),
    )?;
    for tool in ["componentize-qjs", "rolldown"] {
        if !bin.join(tool).exists() {
            anyhow::bail!(
                "{} does not install {tool}: add \"componentize-qjs\": \"{COMPONENTIZE_QJS}\" and \"rolldown\": \"{ROLLDOWN}\" to its devDependencies (as agenthost new does)",
                dir.join("package.json").display()
            );
        }
    }
    Ok(())
}

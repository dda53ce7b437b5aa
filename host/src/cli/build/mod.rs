//! `agenthost build [DIR]`: builds the agent project in DIR into the component its manifest
//! names (`agent.toml`'s `component`, next to it), then checks the component against the
//! manifest without compiling it, so a missing grant shows up here rather than at deploy.
//!
//! The language is told by the project's build file: `Cargo.toml` (Rust, [`rust`]),
//! `package.json` (JavaScript, [`javascript`]) or `agent.py` (Python, [`python`]). JavaScript
//! and Python build against a WIT world written from the manifest's grants ([`world`]), so the
//! component imports exactly what it is granted; their tools are pinned and installed on first
//! use.

pub mod javascript;
mod python;
mod rust;
mod world;

use crate::manifest::Manifest;
use crate::runtime::describe;
use anyhow::{Context as _, bail};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub fn run(dir: &Path, manifest: Option<&Path>) -> anyhow::Result<()> {
    let manifest_path = manifest.map_or_else(|| dir.join("agent.toml"), Path::to_owned);
    if !manifest_path.is_file() {
        bail!(
            "{} is not there: build a project made by `agenthost new`, or name its manifest with --manifest",
            manifest_path.display()
        );
    }
    let manifest = Manifest::load(&manifest_path)?;
    // The tools run in directories of their own: every path they get is absolute.
    let dir =
        &std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let started = Instant::now();
    let built = if dir.join("Cargo.toml").is_file() {
        rust::build(dir)?
    } else if dir.join("package.json").is_file() {
        javascript::build(dir, &manifest)?
    } else if dir.join("agent.py").is_file() {
        python::build(dir, &manifest)?
    } else {
        bail!(
            "{} has no Cargo.toml, package.json or agent.py: agenthost build builds Rust, JavaScript and Python projects (agenthost new NAME --lang rust|js|python)",
            dir.display()
        );
    };
    std::fs::copy(&built, &manifest.component).with_context(|| {
        format!(
            "cannot copy {} to {}, the component {} names",
            built.display(),
            manifest.component.display(),
            manifest_path.display()
        )
    })?;
    let bytes = manifest.read_component(&manifest_path)?;
    let info = describe(&bytes).with_context(|| manifest.component.display().to_string())?;
    println!(
        "built {} ({}, {}) in {:.1} s",
        manifest.component.display(),
        bytesize::ByteSize::b(info.size as u64),
        info.digest,
        started.elapsed().as_secs_f64()
    );
    match super::inspect::refusal(&bytes, &info, &manifest, false)? {
        None => {
            println!(
                "deployable under {}: yes, by what it declares (agenthost inspect --manifest {} lists its imports)",
                manifest_path.display(),
                manifest_path.display()
            );
            Ok(())
        }
        Some(reason) => bail!(
            "built, but {} does not let it deploy: {reason}",
            manifest_path.display()
        ),
    }
}

/// Where a project's build keeps what it stages and produces, inside the project.
fn stage_dir(dir: &Path) -> std::path::PathBuf {
    super::project::work_dir(dir).join("build")
}

/// Runs a build step with its output on the terminal; an error names the step, and `hint`.
fn step(command: &mut Command, what: &str, hint: Option<&str>) -> anyhow::Result<()> {
    // Our stdout is for what was built: the tools' chatter goes to stderr.
    let status = command
        .stdout(std::io::stderr())
        .status()
        .with_context(|| {
            format!(
                "cannot run {what} ({}){}",
                command.get_program().to_string_lossy(),
                hint.map(|h| format!(": {h}")).unwrap_or_default()
            )
        })?;
    if !status.success() {
        match hint {
            Some(hint) => bail!("{what} failed ({status}); its errors are above. {hint}"),
            None => bail!("{what} failed ({status}); its errors are above"),
        }
    }
    Ok(())
}

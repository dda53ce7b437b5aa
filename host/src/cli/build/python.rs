//! Python projects (an `agent.py`): componentize-py turns the module, and what
//! `requirements.txt` lists (installed with pip into the build directory), into a component for
//! the world written from the manifest. componentize-py is pinned and installed on first use
//! into a virtual environment of its own in the user's cache (`~/.cache/agenthost/tools/`), so
//! neither the system's Python nor the project's is touched.
//!
//! `--stub-wasi`: CPython's runtime otherwise imports every WASI interface, wasi:sockets
//! included, which agenthost never grants. With the stubs the component imports only its
//! world; a stubbed WASI call (`print`, `time`, `random`, files) traps.

use super::{step, world};
use crate::manifest::Manifest;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The version `cargo xtask plugins` builds with, and the SDK's `[build]` extra pins.
pub const COMPONENTIZE_PY: &str = "0.25.1";

pub fn build(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    let tools = ensure_tools()?;
    let stage = super::stage_dir(dir);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    let world = world::stage(dir, manifest, &stage)?;
    // componentize-py bundles the directories on its Python path as they are, and running the
    // agent at build time writes `__pycache__` next to its sources: build from a copy.
    let src = stage.join("src");
    copy_sources(dir, &src)?;
    let site = stage.join("site");
    std::fs::create_dir_all(&site).with_context(|| format!("cannot create {}", site.display()))?;
    let requirements = dir.join("requirements.txt");
    if requirements.is_file() {
        let mut pip = pip_install(&tools);
        pip.arg("--target")
            .arg(&site)
            .arg("-r")
            .arg(&requirements)
            .current_dir(dir);
        step(&mut pip, "pip install -r requirements.txt", None)?;
    }
    let wasm = stage.join(format!("{}.wasm", manifest.name));
    let mut componentize = Command::new(tools.join("bin").join("componentize-py"));
    componentize
        .arg("--wit-path")
        .arg(&world.wit)
        .args(["--world", &world.name, "componentize", "--stub-wasi"])
        .arg("--python-path")
        .arg(&src)
        .arg("--python-path")
        .arg(&site)
        .arg("agent")
        .arg("--output")
        .arg(&wasm)
        .current_dir(&stage);
    let hint = format!(
        "a missing `wit_world.imports` module means agent.toml does not grant it (the world, {}, imports {}); any other missing module must be listed in requirements.txt",
        world.wit.join("world.wit").display(),
        world.imports_said()
    );
    step(&mut componentize, "componentize-py", Some(&hint))?;
    Ok(wasm)
}

/// The virtual environment holding the pinned componentize-py, made on first use.
fn ensure_tools() -> anyhow::Result<PathBuf> {
    let venv = tools_dir()?.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let done = venv.join(".installed");
    if done.is_file() {
        return Ok(venv);
    }
    eprintln!(
        "installing componentize-py {COMPONENTIZE_PY} into {} (once)",
        venv.display()
    );
    if venv.exists() {
        // A previous attempt stopped half-way.
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot clear {}", venv.display()))?;
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let mut create = Command::new(&python);
    create.args(["-m", "venv"]).arg(&venv);
    step(
        &mut create,
        "python3 -m venv",
        Some("agenthost build needs Python 3.10 or later with venv (Debian: python3-venv)"),
    )?;
    let mut pip = pip_install(&venv);
    pip.arg(format!("componentize-py=={COMPONENTIZE_PY}"));
    step(&mut pip, "pip install componentize-py", None)?;
    std::fs::write(&done, COMPONENTIZE_PY)
        .with_context(|| format!("cannot write {}", done.display()))?;
    Ok(venv)
}

/// `pip install` run by the virtual environment `venv`, quietly; the caller adds what.
fn pip_install(venv: &Path) -> Command {
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    pip
}

/// `$XDG_CACHE_HOME/agenthost/tools`, or `~/.cache/agenthost/tools`.
fn tools_dir() -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => bail!(
                "neither XDG_CACHE_HOME nor HOME is set: agenthost build keeps its Python tools in the user's cache"
            ),
        },
    };
    Ok(cache.join("agenthost").join("tools"))
}

/// Copies the project's Python sources (not its build output, caches, WIT or components).
fn copy_sources(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || matches!(&*name, "__pycache__" | "wit" | "node_modules") {
            continue;
        }
        let path = entry.path();
        let target = to.join(&*name);
        if entry.file_type()?.is_dir() {
            copy_sources(&path, &target)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "py" || e == "json" || e == "txt")
        {
            std::fs::copy(&path, &target)
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    Ok(())
}

//! The independent peers tests, the quickstart and benchmarks run against: Python packages
//! pinned in `tests/peers/requirements.txt` and npm packages locked in
//! `tests/peers/package-lock.json`. Installed when missing; a second run does nothing.

use crate::workspace;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn peers_dir() -> PathBuf {
    workspace::root().join("tests/peers")
}

/// The pinned `name==version` lines of a requirements file.
fn requirements(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once("==")
                // `name[extra]`: the distribution is `name`.
                .map(|(n, v)| {
                    (
                        n.split('[').next().unwrap_or(n).trim().to_owned(),
                        v.trim().to_owned(),
                    )
                })
                .with_context(|| {
                    format!("{}: {l:?} is not pinned as name==version", path.display())
                })
        })
        .collect()
}

/// Whether every pinned package is installed at its version in the `python3` on PATH.
fn python_satisfied(requirements: &[(String, String)]) -> bool {
    let checks: Vec<String> = requirements
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect();
    let script = format!(
        "import importlib.metadata as m, sys\n\
         for name, version in [{}]:\n\
         \x20   try:\n\
         \x20       ok = m.version(name) == version\n\
         \x20   except m.PackageNotFoundError:\n\
         \x20       ok = False\n\
         \x20   if not ok: sys.exit(1)\n",
        checks.join(", ")
    );
    Command::new("python3")
        .args(["-c", &script])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The Python peers of the tests (`tests/peers/requirements.txt`).
pub fn ensure_python() -> Result<()> {
    ensure_requirements(&peers_dir().join("requirements.txt"))
}

/// Installs a pinned requirements file into the `python3` on PATH unless it is satisfied.
pub fn ensure_requirements(path: &Path) -> Result<()> {
    let requirements = requirements(path)?;
    if python_satisfied(&requirements) {
        return Ok(());
    }
    let shown = path.strip_prefix(workspace::root()).unwrap_or(path);
    println!("==> installing Python packages ({})", shown.display());
    workspace::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(path),
    )
    .with_context(|| format!("cannot install the Python packages of {}", shown.display()))?;
    if !python_satisfied(&requirements) {
        bail!(
            "pip finished but {} is still not satisfied",
            shown.display()
        );
    }
    Ok(())
}

/// `npm ci` unless node_modules already matches the lockfile (npm writes its own copy of the
/// lock into node_modules; equal files mean nothing changed).
pub fn ensure_node() -> Result<()> {
    let dir = peers_dir();
    let lock = std::fs::read(dir.join("package-lock.json"))
        .context("cannot read tests/peers/package-lock.json")?;
    let installed = std::fs::read(dir.join("node_modules/.package-lock.json")).ok();
    if installed.is_some_and(|i| same_packages(&i, &lock)) {
        return Ok(());
    }
    println!("==> installing the Node peers (tests/peers/package-lock.json)");
    workspace::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
    )
    .context("cannot install the Node peers the tests run against (is Node.js 20+ on PATH?)")
}

/// Compares the `packages` of two npm lockfiles (the hidden one omits the root entry).
fn same_packages(installed: &[u8], lock: &[u8]) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let (Some(installed), Some(lock)) = (parse(installed), parse(lock)) else {
        return false;
    };
    let (Some(installed), Some(lock)) = (
        installed["packages"].as_object(),
        lock["packages"].as_object(),
    ) else {
        return false;
    };
    lock.iter()
        .filter(|(path, _)| !path.is_empty())
        .all(|(path, entry)| {
            installed
                .get(path)
                .is_some_and(|i| i["version"] == entry["version"])
        })
}

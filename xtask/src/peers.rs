//! The independent peers tests, the quickstart and benchmarks run against: Python packages
//! pinned in `tests/peers/requirements.txt` and npm packages locked in
//! `tests/peers/package-lock.json`. Installed when missing; a second run does nothing. The
//! JavaScript and Python agents' build tools are installed the same way ([`ensure_npm`],
//! [`ensure_requirements`]).

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
    pip_install(path)
        .with_context(|| format!("cannot install the Python packages of {}", shown.display()))?;
    if !python_satisfied(&requirements) {
        bail!(
            "pip finished but {} is still not satisfied",
            shown.display()
        );
    }
    Ok(())
}

/// `pip install -r path` into the `python3` on PATH. A Python that its distribution manages
/// (PEP 668: Debian's and Ubuntu's, where `pip install` refuses with
/// "externally-managed-environment") gets the packages in the user's site-packages instead,
/// which leaves the distribution's own packages alone.
fn pip_install(path: &Path) -> Result<()> {
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .arg("-r")
            .arg(path)
            .output()
            .context("cannot run python3 -m pip (is python3 with pip on PATH?)")
    };
    let first = pip(&[])?;
    if first.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&first.stderr);
    if !stderr.contains("externally-managed-environment") {
        bail!("pip install failed: {}", stderr.trim());
    }
    println!("    (this python3 is managed by its distribution: installing for this user)");
    let user = pip(&["--user", "--break-system-packages"])?;
    if !user.status.success() {
        bail!(
            "pip install --user failed: {}",
            String::from_utf8_lossy(&user.stderr).trim()
        );
    }
    Ok(())
}

/// The Node peers of the tests (`tests/peers/package-lock.json`).
pub fn ensure_node() -> Result<()> {
    ensure_npm(&peers_dir(), "the Node peers the tests run against")
}

/// `npm ci` in `dir` unless its node_modules already matches its lockfile (npm writes its own
/// copy of the lock into node_modules; equal packages mean nothing changed). `what` names the
/// packages in messages.
pub fn ensure_npm(dir: &Path, what: &str) -> Result<()> {
    let lock_path = dir.join("package-lock.json");
    let shown = lock_path
        .strip_prefix(workspace::root())
        .unwrap_or(&lock_path)
        .display()
        .to_string();
    let lock = std::fs::read(&lock_path).with_context(|| format!("cannot read {shown}"))?;
    let installed = std::fs::read(dir.join("node_modules/.package-lock.json")).ok();
    if installed.is_some_and(|i| same_packages(&i, &lock)) {
        return Ok(());
    }
    println!("==> installing {what} ({shown})");
    workspace::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
    )
    .with_context(|| format!("cannot install {what} (is Node.js 20+ with npm on PATH?)"))
}

/// Compares the `packages` of two npm lockfiles (the hidden one omits the root entry, and the
/// optional packages of other platforms, such as the native bindings of other systems).
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
    let locked = lock
        .iter()
        .filter(|(path, _)| !path.is_empty())
        .all(|(path, entry)| match installed.get(path) {
            Some(i) => i["version"] == entry["version"],
            None => entry["optional"] == true,
        });
    // A package installed but no longer locked (removed or renamed) needs `npm ci` too.
    locked && installed.keys().all(|path| lock.contains_key(path))
}

#[cfg(test)]
mod tests {
    use super::same_packages;

    #[test]
    fn optional_packages_of_other_platforms_may_be_absent() {
        let lock = br#"{"packages": {
            "": {"name": "x"},
            "node_modules/tool": {"version": "1.0.0"},
            "node_modules/tool-linux": {"version": "1.0.0", "optional": true},
            "node_modules/tool-darwin": {"version": "1.0.0", "optional": true}
        }}"#;
        let installed = br#"{"packages": {
            "node_modules/tool": {"version": "1.0.0"},
            "node_modules/tool-linux": {"version": "1.0.0"}
        }}"#;
        assert!(same_packages(installed, lock));
        let old = br#"{"packages": {"node_modules/tool": {"version": "0.9.0"}}}"#;
        assert!(!same_packages(old, lock));
        let missing = br#"{"packages": {"node_modules/tool-linux": {"version": "1.0.0"}}}"#;
        assert!(!same_packages(missing, lock));
        let extra = br#"{"packages": {
            "node_modules/tool": {"version": "1.0.0"},
            "node_modules/gone": {"version": "1.0.0"}
        }}"#;
        assert!(!same_packages(extra, lock));
    }
}

//! `cargo xtask fuzz [SECONDS] [TARGET...]`: the cargo-fuzz targets in `fuzz/` (manifest and
//! host-config parsing, component loading), each run for a bounded time (default 60 s). Installs
//! cargo-fuzz when missing; seeds the corpora from the repository's manifests and configs and
//! from the built plugins. A crash fails the command and leaves the input under
//! `fuzz/artifacts/<target>/`, for `cargo fuzz run <target> <file>` to reproduce.
//!
//! cargo-fuzz needs nightly-only flags; the one stable toolchain accepts them with
//! `RUSTC_BOOTSTRAP=1`. No sanitizer: the host has no unsafe code of its own, and what the
//! targets look for is a panic on input.

use crate::{plugins, workspace};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const CARGO_FUZZ_VERSION: &str = "0.13.1";
const TARGETS: &[&str] = &["manifest", "component"];

/// Longest input libFuzzer makes for `target`. Components: a valid plugin takes cranelift
/// about a second to compile in an instrumented build, so full-size inputs would give a
/// handful of runs a minute; cut to 16 KiB, the seeds become malformed components, and the
/// target explores the parser, validator and error paths thousands of times a second.
fn max_len(target: &str) -> usize {
    match target {
        "component" => 16 * 1024,
        _ => 64 * 1024,
    }
}

pub fn run(args: Vec<String>) -> Result<()> {
    let mut seconds: u64 = 60;
    let mut targets: Vec<&str> = Vec::new();
    for arg in &args {
        if let Ok(n) = arg.parse::<u64>() {
            seconds = n;
        } else if let Some(t) = TARGETS.iter().find(|t| *t == arg) {
            targets.push(t);
        } else {
            bail!("unknown fuzz target {arg:?}; known: {}", TARGETS.join(", "));
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    ensure_cargo_fuzz()?;
    let fuzz_dir = workspace::root().join("fuzz");
    for target in targets {
        let seeds = seed(target)?;
        let corpus = workspace::target_dir().join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        println!("==> fuzzing {target} for {seconds} s");
        workspace::run(
            workspace::cargo()
                .current_dir(&fuzz_dir)
                .env("RUSTC_BOOTSTRAP", "1")
                // Its own target directory: instrumented builds never mix with the workspace's.
                .env("CARGO_TARGET_DIR", fuzz_dir.join("target"))
                .args(["fuzz", "run", "--sanitizer", "none", target])
                .arg(&corpus)
                .arg(&seeds)
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-timeout=30",
                    &format!("-max_len={}", max_len(target)),
                    "-rss_limit_mb=4096",
                    "-print_final_stats=1",
                ]),
        )
        .with_context(|| format!("fuzz target {target} failed: see fuzz/artifacts/{target}/"))?;
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = workspace::cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    println!("==> installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    workspace::cargo_install("cargo-fuzz", CARGO_FUZZ_VERSION, &[])
}

/// A directory of seed inputs for `target`, rebuilt from the repository each run.
fn seed(target: &str) -> Result<PathBuf> {
    let dir = workspace::target_dir().join("fuzz-seeds").join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = workspace::root();
    let files = match target {
        "manifest" => files_ending(&root.join("examples"), "toml")?,
        _ => {
            plugins::run(Vec::new())?;
            files_ending(&workspace::target_dir().join("plugins"), "wasm")?
        }
    };
    if files.is_empty() {
        bail!("no seed inputs for fuzz target {target}");
    }
    for (i, file) in files.iter().enumerate() {
        std::fs::copy(file, dir.join(format!("seed-{i}")))
            .with_context(|| format!("cannot copy {}", file.display()))?;
    }
    Ok(dir)
}

/// Files under `dir` (recursively) with extension `ext`.
fn files_ending(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_ending(&path, ext)?);
        } else if path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
    Ok(found)
}

//! S7 (docs/benchmarks.md): from nothing to a first output, per language. The time from
//! `agenthost new` to the agent's first output under `agenthost test` — `new`, `build`, `test`
//! of the `echo` template in an empty directory — with the tools installed and the build caches
//! warm: a first project of the language is made and built before timing, so the Rust
//! dependencies are compiled, npm's cache holds the pinned tools and componentize-py is in its
//! virtual environment.
//!
//! Baseline, same run: the language's own tools doing only the compile step of the same
//! project (`cargo build` after touching its source; rolldown and componentize-qjs;
//! componentize-py), so the ratio says what agenthost's steps add to the compile a user would
//! run anyway: the project's files, installing its dependencies, writing its world, checking it
//! against its manifest, starting a host and running the events.
//!
//! Run with `cargo xtask bench first_output`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const AGENTHOST: &str = env!("CARGO_BIN_EXE_agenthost");

fn main() -> Result<()> {
    let work = tempfile::tempdir()?;
    let target = work.path().join("target");
    println!(
        "{:<8} {:>7} {:>7} {:>7} {:>8}   {:>13} {:>7}",
        "language", "new", "build", "test", "total", "bare compile", "ratio"
    );
    for lang in ["rust", "js", "python"] {
        // Warm the caches: a first project of the language, built.
        let warm = format!("warm-{lang}");
        agenthost(work.path(), &target, &["new", &warm, "--lang", lang])?;
        agenthost(&work.path().join(&warm), &target, &["build"])?;

        let name = format!("first-{lang}");
        let project = work.path().join(&name);
        let new = agenthost(work.path(), &target, &["new", &name, "--lang", lang])?;
        let build = agenthost(&project, &target, &["build"])?;
        let test = agenthost(&project, &target, &["test"])?;
        let total = new + build + test;
        let bare = bare_compile(lang, &project, &name, &target)?;
        println!(
            "{lang:<8} {:>6.2}s {:>6.2}s {:>6.2}s {:>7.2}s   {:>12.2}s {:>6.2}×",
            new.as_secs_f64(),
            build.as_secs_f64(),
            test.as_secs_f64(),
            total.as_secs_f64(),
            bare.as_secs_f64(),
            total.as_secs_f64() / bare.as_secs_f64()
        );
    }
    Ok(())
}

/// Runs `agenthost ARGS` in `dir`; how long it took. Its output is kept for a failure.
fn agenthost(dir: &Path, target: &Path, args: &[&str]) -> Result<Duration> {
    let started = Instant::now();
    let output = Command::new(AGENTHOST)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .with_context(|| format!("cannot run {AGENTHOST}"))?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "agenthost {} in {} failed:\n{}\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(took)
}

/// The language's own compile of the project, as `agenthost build` staged it.
fn bare_compile(lang: &str, project: &Path, name: &str, target: &Path) -> Result<Duration> {
    let stage = project.join(".agenthost").join("build");
    let mut commands = Vec::new();
    match lang {
        "rust" => {
            // Touched, so cargo compiles the agent again (its dependencies are built).
            let source = project.join("src/lib.rs");
            std::fs::write(&source, std::fs::read(&source)?)?;
            let mut cargo =
                Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cargo
                .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
                .current_dir(project)
                .env("CARGO_TARGET_DIR", target);
            commands.push(cargo);
        }
        "js" => {
            let bin = project.join("node_modules/.bin");
            let mut rolldown = Command::new(bin.join("rolldown"));
            rolldown
                .args(["--config", "rolldown.config.mjs", "--file"])
                .arg(stage.join("bare.js"))
                .current_dir(project);
            let mut componentize = Command::new(bin.join("componentize-qjs"));
            componentize
                .arg("--wit")
                .arg(stage.join("wit"))
                .args(["--world", "agent", "--js"])
                .arg(stage.join("bare.js"))
                .args(["--sync", "--opt-size", "--output"])
                .arg(stage.join("bare.wasm"));
            commands.extend([rolldown, componentize]);
        }
        _ => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .context("no cache directory")?;
            let tools = std::fs::read_dir(cache.join("agenthost/tools"))?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("componentize-py-"))
                })
                .context("componentize-py is not installed")?;
            let mut componentize = Command::new(tools.join("bin/componentize-py"));
            componentize
                .arg("--wit-path")
                .arg(stage.join("wit"))
                .args([
                    "--world",
                    "agent",
                    "componentize",
                    "--stub-wasi",
                    "--python-path",
                ])
                .arg(stage.join("src"))
                .arg("--python-path")
                .arg(stage.join("site"))
                .arg("agent")
                .arg("--output")
                .arg(stage.join(format!("{name}-bare.wasm")));
            commands.push(componentize);
        }
    }
    let started = Instant::now();
    for mut command in commands {
        let output = command
            .output()
            .context("cannot run the language's compiler")?;
        if !output.status.success() {
            bail!(
                "{:?} failed:\n{}",
                command.get_program(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(started.elapsed())
}

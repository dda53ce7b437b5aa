//! Agents in other languages: JavaScript under `plugins-js/<name>/` (componentize-qjs, the
//! QuickJS engine, after a rolldown bundle) and Python under `plugins-py/<name>/`
//! (componentize-py). Each is built to `target/plugins/<name>.wasm` like the Rust plugins.
//!
//! An agent's directory has `wit/world.wit`: a world with exactly the imports it uses, since
//! these tools keep every import of the world they target and the host refuses at deploy any
//! import its manifest does not grant. The world refers to `agenthost:agent@0.1.0`, which is
//! resolved from `deps/`: the build stages the agent's `wit/` in `target/lang/<name>/wit/` with a
//! copy of the repository's `wit/agent.wit` in `deps/agenthost-agent/`, so the repository keeps
//! one copy of the contract.
//!
//! The tools are pinned by the agent (an exact `package.json` with its `package-lock.json`; a
//! `requirements.txt` of `name==version`) and installed when missing, as the test peers are.
//! A build whose output is newer than its inputs, made by the same commands, is skipped.

use super::{COMPONENT_PREAMBLE, display_path};
use crate::{peers, workspace};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    JavaScript,
    Python,
}

impl Language {
    const ALL: [Self; 2] = [Self::JavaScript, Self::Python];

    /// The top-level directory holding agents in this language.
    fn parent(self) -> &'static str {
        match self {
            Self::JavaScript => "plugins-js",
            Self::Python => "plugins-py",
        }
    }

    /// The file that marks a directory as an agent: its package manifest / its module.
    fn marker(self) -> &'static str {
        match self {
            Self::JavaScript => "package.json",
            Self::Python => "agent.py",
        }
    }
}

/// One agent under `plugins-js/` or `plugins-py/`.
pub struct Agent {
    /// The directory name: the name of the built `.wasm`.
    pub name: String,
    pub dir: PathBuf,
    pub language: Language,
}

/// The agents under `plugins-js/` and `plugins-py/`, sorted by name.
pub fn discover(root: &Path) -> Result<Vec<Agent>> {
    let mut agents = Vec::new();
    for language in Language::ALL {
        let parent = root.join(language.parent());
        if !parent.is_dir() {
            continue;
        }
        for entry in
            fs::read_dir(&parent).with_context(|| format!("cannot list {}", parent.display()))?
        {
            let dir = entry?.path();
            if !dir.join(language.marker()).is_file() {
                continue;
            }
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} is not a UTF-8 name", dir.display()))?
                .to_owned();
            agents.push(Agent {
                name,
                dir,
                language,
            });
        }
    }
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(agents)
}

/// Builds `agent` into `out_dir/<name>.wasm` unless that is up to date.
pub fn build(agent: &Agent, out_dir: &Path) -> Result<()> {
    let root = workspace::root();
    let stage = workspace::target_dir().join("lang").join(&agent.name);
    let wasm = stage.join(format!("{}.wasm", agent.name));
    let out = out_dir.join(format!("{}.wasm", agent.name));
    let world_file = agent.dir.join("wit/world.wit");
    let world = world_name(
        &fs::read_to_string(&world_file)
            .with_context(|| format!("cannot read {}", world_file.display()))?,
    )
    .with_context(|| format!("no `world NAME {{` in {}", world_file.display()))?;
    let contract = root.join("wit/agent.wit");

    let mut steps = match agent.language {
        Language::JavaScript => javascript(agent, &stage, &world, &wasm),
        Language::Python => python(&stage, &world, &wasm),
    };
    let recipe: String = steps.iter().map(|c| format!("{c:?}\n")).collect();
    let recipe_file = stage.join("recipe");
    if fs::read_to_string(&recipe_file).is_ok_and(|r| r == recipe)
        && is_fresh(&out, &[&agent.dir, &contract])?
    {
        println!("{} (up to date)", display_path(&out));
        return Ok(());
    }

    match agent.language {
        Language::JavaScript => peers::ensure_npm(
            &agent.dir,
            &format!("the JavaScript build tools of {}", agent.name),
        )?,
        Language::Python => peers::ensure_requirements(&agent.dir.join("requirements.txt"))?,
    }
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    copy_dir(&agent.dir.join("wit"), &stage.join("wit"), &[])?;
    if agent.language == Language::Python {
        // componentize-py bundles the directories on its Python path as they are, and running
        // the agent at build time writes `__pycache__` next to its sources: build from a copy.
        copy_dir(&agent.dir, &stage.join("src"), &["wit", "__pycache__"])?;
    }
    let deps = stage.join("wit/deps/agenthost-agent");
    fs::create_dir_all(&deps).with_context(|| format!("cannot create {}", deps.display()))?;
    fs::copy(&contract, deps.join("agent.wit"))
        .with_context(|| format!("cannot copy {}", contract.display()))?;

    let started = std::time::Instant::now();
    for step in &mut steps {
        workspace::run(step).with_context(|| format!("cannot build {}", agent.name))?;
    }
    let bytes = fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    if !bytes.starts_with(&COMPONENT_PREAMBLE) {
        bail!("{} is not a WebAssembly component", wasm.display());
    }
    fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    fs::write(&recipe_file, recipe)
        .with_context(|| format!("cannot write {}", recipe_file.display()))?;
    println!(
        "{} ({} bytes, built in {:.1} s)",
        display_path(&out),
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Bundle `agent.js` with rolldown (`rolldown.config.mjs`: the WIT interfaces stay external),
/// then componentize the bundle with componentize-qjs: `--sync` for the runtime without the
/// component-model async ABI (the host calls agents synchronously), `--opt-size` for the
/// size-optimised QuickJS build (1.1 MB instead of 1.6 MB: less for the host to compile).
fn javascript(agent: &Agent, stage: &Path, world: &str, wasm: &Path) -> Vec<Command> {
    let bin = agent.dir.join("node_modules/.bin");
    let bundle = stage.join("agent.js");
    let mut rolldown = Command::new(bin.join("rolldown"));
    rolldown
        .args(["--config", "rolldown.config.mjs", "--file"])
        .arg(&bundle)
        .current_dir(&agent.dir);
    let mut componentize = Command::new(bin.join("componentize-qjs"));
    componentize
        .arg("--wit")
        .arg(stage.join("wit"))
        .args(["--world", world, "--js"])
        .arg(&bundle)
        .args(["--sync", "--opt-size", "--output"])
        .arg(wasm)
        .current_dir(stage);
    vec![rolldown, componentize]
}

/// componentize-py with `--stub-wasi`: CPython's runtime otherwise imports every WASI
/// interface, wasi:sockets included, which agenthost never grants. With the stubs the component
/// imports only its world; a stubbed WASI call (`print`, `time`, `random`, files) traps.
fn python(stage: &Path, world: &str, wasm: &Path) -> Vec<Command> {
    // The console script may not be on PATH (pip's user or pyenv bin dirs): call its entry
    // point through the interpreter pip installed it into.
    const ENTRY: &str = "import sys\nfrom componentize_py import script\n\
                         sys.argv[0] = 'componentize-py'\nsys.exit(script())";
    let mut componentize = Command::new("python3");
    componentize
        .args(["-c", ENTRY, "--wit-path"])
        .arg(stage.join("wit"))
        .args([
            "--world",
            world,
            "componentize",
            "--stub-wasi",
            "--python-path",
        ])
        .arg(stage.join("src"))
        .arg("agent")
        .arg("--output")
        .arg(wasm)
        .current_dir(stage);
    vec![componentize]
}

/// The name of the first world in a WIT file.
fn world_name(wit: &str) -> Option<String> {
    wit.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("world ")?;
        let name = rest.split(|c: char| c == '{' || c.is_whitespace()).next()?;
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// Whether `out` exists and is newer than every file under `inputs` (installed packages and
/// caches excepted: the lockfile stands for them).
fn is_fresh(out: &Path, inputs: &[&Path]) -> Result<bool> {
    let Ok(built) = fs::metadata(out).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    for input in inputs {
        if newest(input)?.is_some_and(|t| t > built) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The newest modification time of `path` or any file below it.
fn newest(path: &Path) -> Result<Option<SystemTime>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(Some(meta.modified()?));
    }
    let mut newest = None;
    for entry in fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(name.to_str(), Some("node_modules" | "__pycache__" | "dist")) {
            continue;
        }
        newest = newest.max(self::newest(&entry.path())?);
    }
    Ok(newest)
}

/// Copies the tree `from` to `to`, leaving out the entries named in `skip` (at any depth).
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| skip.contains(&n))
        {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target, skip)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::world_name;

    #[test]
    fn finds_the_world() {
        let wit = "/// doc\npackage example:x;\n\nworld customer-notify {\n    import a;\n}\n";
        assert_eq!(world_name(wit).as_deref(), Some("customer-notify"));
        assert_eq!(world_name("  world w{}").as_deref(), Some("w"));
        assert_eq!(world_name("package a:b;\ninterface i {}\n"), None);
    }
}

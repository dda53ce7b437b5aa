//! `cargo xtask plugins [NAME...]`: build the agents under `plugins/` as wasm32-wasip2
//! components and copy each to `target/plugins/<dir-name>.wasm`; likewise the agents in
//! JavaScript under `plugins-js/` and in Python under `plugins-py/` (see [`lang`]).

mod lang;

use crate::workspace;
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The cargo profile (defined in the root `Cargo.toml`: size-optimised, LTO, stripped).
const PROFILE: &str = "plugin";
/// A component's preamble: `\0asm`, version 0x0d, layer 1 (a core module has layer 0).
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// One crate under `plugins/`.
struct Plugin {
    /// The directory name: the name of the built `.wasm`.
    dir_name: String,
    /// The package name from its `Cargo.toml`.
    package: String,
    /// The file cargo builds: `<lib_name>.wasm` (hyphens become underscores) for a library,
    /// `<bin-name>.wasm` for a binary (e.g. a `wasi:cli` command fixture).
    artifact: String,
}

pub fn run(names: Vec<String>) -> Result<()> {
    let root = workspace::root();
    let mut plugins = discover(&root.join("plugins"))?;
    let mut others = lang::discover(root)?;
    // Every agent builds to target/plugins/<name>.wasm: one name, one agent.
    for (i, agent) in others.iter().enumerate() {
        if plugins.iter().any(|p| p.dir_name == agent.name)
            || others[..i].iter().any(|a| a.name == agent.name)
        {
            bail!(
                "two agents are named {:?} ({}): rename one",
                agent.name,
                agent.dir.display()
            );
        }
    }
    if !names.is_empty() {
        for name in &names {
            if !plugins
                .iter()
                .any(|p| &p.dir_name == name || &p.package == name)
                && !others.iter().any(|a| &a.name == name)
            {
                bail!("no plugin named {name:?} under plugins/, plugins-js/ or plugins-py/");
            }
        }
        plugins.retain(|p| names.contains(&p.dir_name) || names.contains(&p.package));
        others.retain(|a| names.contains(&a.name));
    }
    if plugins.is_empty() && others.is_empty() {
        bail!("no plugins under plugins/, plugins-js/ or plugins-py/");
    }

    let out_dir = workspace::target_dir().join("plugins");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    if !plugins.is_empty() {
        build_rust(&plugins, &out_dir)?;
    }
    for agent in &others {
        lang::build(agent, &out_dir)?;
    }
    Ok(())
}

/// `cargo build` the crates for wasm32-wasip2 and copy each component to `out_dir`.
fn build_rust(plugins: &[Plugin], out_dir: &Path) -> Result<()> {
    ensure_target()?;

    let mut build = workspace::cargo();
    build.args(["build", "--target", TARGET, "--profile", PROFILE]);
    for plugin in plugins {
        build.args(["-p", &plugin.package]);
    }
    workspace::run(&mut build)?;

    let built_dir = workspace::target_dir().join(TARGET).join(PROFILE);
    for plugin in plugins {
        let built = built_dir.join(&plugin.artifact);
        let bytes = fs::read(&built).with_context(|| format!("cannot read {}", built.display()))?;
        if !bytes.starts_with(&COMPONENT_PREAMBLE) {
            bail!(
                "{} is not a WebAssembly component (is `{TARGET}` the target?)",
                built.display()
            );
        }
        let out = out_dir.join(format!("{}.wasm", plugin.dir_name));
        fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        println!("{} ({} bytes)", display_path(&out), bytes.len());
    }
    Ok(())
}

/// The crates under `dir`, sorted by directory name.
fn discover(dir: &Path) -> Result<Vec<Plugin>> {
    let mut plugins = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let manifest = path.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let package = table_name(&text, "[package]")
            .with_context(|| format!("no [package] name in {}", manifest.display()))?;
        let is_lib =
            text.lines().any(|line| line.trim() == "[lib]") || path.join("src/lib.rs").is_file();
        let artifact = if is_lib {
            let lib = table_name(&text, "[lib]").unwrap_or_else(|| package.clone());
            format!("{}.wasm", lib.replace('-', "_"))
        } else {
            let bin = table_name(&text, "[[bin]]").unwrap_or_else(|| package.clone());
            format!("{bin}.wasm")
        };
        let dir_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{} is not a UTF-8 name", path.display()))?
            .to_string();
        plugins.push(Plugin {
            dir_name,
            package,
            artifact,
        });
    }
    plugins.sort_by(|a, b| a.dir_name.cmp(&b.dir_name));
    Ok(plugins)
}

/// The `name` in the first table headed `header` (`[package]`, `[lib]`, `[[bin]]`), from a line
/// `name = "…"` (enough for our manifests, without a TOML parser).
fn table_name(manifest: &str, header: &str) -> Option<String> {
    let mut in_table = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == header;
        } else if in_table
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// Install the `wasm32-wasip2` target with rustup if it is missing.
fn ensure_target() -> Result<()> {
    let installed =
        workspace::output(Command::new("rustup").args(["target", "list", "--installed"]))
            .context("cannot list the installed targets (is rustup on PATH?)")?;
    if installed.lines().any(|line| line.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target");
    workspace::run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// `path` relative to the current directory when below it.
fn display_path(path: &Path) -> String {
    let relative: Option<PathBuf> = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::table_name;

    #[test]
    fn reads_table_names() {
        let manifest = "[package]\nname = \"price-analysis\"\nversion.workspace = true\n\n\
                        [dependencies]\nname = \"x\"\n\n[[bin]]\nname = \"tool\"\n";
        assert_eq!(
            table_name(manifest, "[package]").as_deref(),
            Some("price-analysis")
        );
        assert_eq!(table_name(manifest, "[[bin]]").as_deref(), Some("tool"));
        assert_eq!(table_name(manifest, "[lib]"), None);
        assert_eq!(table_name("[lib]\nname = \"x\"\n", "[package]"), None);
        assert_eq!(
            table_name("[package]\nnamespace = 1\nname=\"a\"", "[package]"),
            Some("a".to_string())
        );
    }
}

//! `agenthost new NAME`: a standalone agent project in a directory of its own — the agent's
//! source with a unit test, its build file, a manifest granting only what the template uses,
//! sample events and a README — ready for `agenthost build`. The templates are files under
//! `host/templates/`, compiled into the binary.

use crate::config::AgentName;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// The languages `new` writes projects in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
}

/// What the new agent does to begin with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Republishes every event unchanged (bus).
    Echo,
    /// Counts events per key in its state (bus, state).
    Stateful,
    /// Calls an MCP tool for each event (bus, mcp).
    ToolCaller,
    /// Answers A2A messages, exposed through the host (a2a).
    A2aWorker,
}

/// The MCP server and tool the tool-caller template is granted; the host must configure the
/// server (`[mcp.servers.tools]`), and both are one line of the manifest to change.
pub const TOOL_CALLER_SERVER: &str = "tools";
pub const TOOL_CALLER_TOOL: &str = "echo";

pub struct NewProject<'a> {
    pub name: &'a str,
    pub lang: Lang,
    pub template: Template,
    /// Where to create it; default: a directory named after the agent.
    pub dir: Option<&'a Path>,
    /// The Rust SDK to depend on by path; default: the one this binary was built with, if it
    /// is still there, else the published crate.
    pub sdk: Option<&'a Path>,
}

/// One template's own files and what its README says.
struct Parts {
    lib: &'static str,
    manifest: &'static str,
    events: Option<&'static str>,
    summary: &'static str,
    /// The commands that exercise it once deployed.
    try_it: &'static str,
}

fn parts(template: Template) -> Parts {
    match template {
        Template::Echo => Parts {
            lib: include_str!("../../templates/rust/echo/lib.rs"),
            manifest: include_str!("../../templates/rust/echo/agent.toml"),
            events: Some(include_str!("../../templates/rust/echo/events.jsonl")),
            summary: "Republishes every event of `{{name}}.in.v1` to `{{name}}.out.v1`, unchanged.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 2",
        },
        Template::Stateful => Parts {
            lib: include_str!("../../templates/rust/stateful/lib.rs"),
            manifest: include_str!("../../templates/rust/stateful/agent.toml"),
            events: Some(include_str!("../../templates/rust/stateful/events.jsonl")),
            summary: "Counts the events of `{{name}}.in.v1` per key in its state and publishes each count to `{{name}}.out.v1`.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 3",
        },
        Template::ToolCaller => Parts {
            lib: include_str!("../../templates/rust/tool-caller/lib.rs"),
            manifest: include_str!("../../templates/rust/tool-caller/agent.toml"),
            events: Some(include_str!(
                "../../templates/rust/tool-caller/events.jsonl"
            )),
            summary: "Calls the MCP tool `{{server}}/{{tool}}` with each event of `{{name}}.in.v1` and publishes its text to `{{name}}.out.v1`. The host must configure the server, `[mcp.servers.{{server}}]` in its config; change the server and tool in `agent.toml`.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 1",
        },
        Template::A2aWorker => Parts {
            lib: include_str!("../../templates/rust/a2a-worker/lib.rs"),
            manifest: include_str!("../../templates/rust/a2a-worker/agent.toml"),
            events: None,
            summary: "Answers A2A messages with the number of words and characters of their text; served by the host with its agent card.",
            try_it: "agenthost send {{name}} \"the quick brown fox\"",
        },
    }
}

pub fn run(args: NewProject<'_>) -> anyhow::Result<()> {
    let name = AgentName::parse(args.name).map_err(anyhow::Error::msg)?;
    if name.as_str().starts_with(|c: char| c.is_ascii_digit()) {
        bail!(
            "agent name {:?} starts with a digit, which a Rust crate name may not: start it with a letter",
            name.as_str()
        );
    }
    let dir = args
        .dir
        .map_or_else(|| PathBuf::from(name.as_str()), Path::to_owned);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose another name, or --dir for another directory",
            dir.display()
        );
    }
    let sdk = sdk_dependency(args.sdk)?;
    let files = match args.lang {
        Lang::Rust => rust_files(&name, args.template, &sdk.toml),
    };
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let template = clap::ValueEnum::to_possible_value(&args.template)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    println!(
        "created {} (template {template}, Rust; the SDK {}):",
        dir.display(),
        sdk.said
    );
    for (path, _) in &files {
        println!("  {path}");
    }
    println!(
        "next: cd {} && agenthost build && agenthost inspect --manifest agent.toml",
        dir.display()
    );
    Ok(())
}

/// How the project depends on the SDK, as TOML, and as said to the user.
struct SdkDependency {
    toml: String,
    said: String,
}

fn sdk_dependency(explicit: Option<&Path>) -> anyhow::Result<SdkDependency> {
    let by_path = |dir: &Path| -> anyhow::Result<SdkDependency> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("the SDK directory {} does not exist", dir.display()))?;
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .with_context(|| format!("{} is not a crate: it has no Cargo.toml", dir.display()))?;
        if !manifest.contains("name = \"agenthost-sdk\"") {
            bail!("{} is not the agenthost-sdk crate", dir.display());
        }
        let path = toml::Value::String(dir.display().to_string());
        Ok(SdkDependency {
            toml: format!("{{ path = {path} }}"),
            said: format!("from {}", dir.display()),
        })
    };
    if let Some(dir) = explicit {
        return by_path(dir);
    }
    // The SDK beside the sources this binary was built from, while the checkout is there.
    let built_with = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-guest");
    if built_with.join("Cargo.toml").is_file() {
        return by_path(&built_with);
    }
    let version = format!(
        "{}.{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    Ok(SdkDependency {
        toml: format!("\"{version}\""),
        said: format!("{version} from crates.io (--sdk DIR uses a checkout's sdk-guest/ instead)"),
    })
}

/// The files of a Rust project, by path relative to its directory.
fn rust_files(name: &AgentName, template: Template, sdk: &str) -> Vec<(String, String)> {
    let parts = parts(template);
    let render = |text: &str| {
        text.replace("{{summary}}", parts.summary)
            .replace("{{try}}", parts.try_it)
            .replace("{{name}}", name.as_str())
            .replace("{{type}}", &type_name(name.as_str()))
            .replace("{{sdk}}", sdk)
            .replace("{{server}}", TOOL_CALLER_SERVER)
            .replace("{{tool}}", TOOL_CALLER_TOOL)
    };
    let mut readme = render(include_str!("../../templates/rust/README.md"));
    if parts.events.is_none() {
        readme = readme
            .lines()
            .filter(|l| !l.starts_with("| `events.jsonl`"))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    let mut files = vec![
        (
            "Cargo.toml".to_owned(),
            render(include_str!("../../templates/rust/Cargo.toml")),
        ),
        ("src/lib.rs".to_owned(), render(parts.lib)),
        ("agent.toml".to_owned(), render(parts.manifest)),
        ("README.md".to_owned(), readme),
        (
            ".gitignore".to_owned(),
            include_str!("../../templates/rust/gitignore").to_owned(),
        ),
    ];
    if let Some(events) = parts.events {
        files.push(("events.jsonl".to_owned(), render(events)));
    }
    files
}

/// `price-watch` → `PriceWatch`: the agent's type in its source.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn names_become_type_names() {
        assert_eq!(type_name("price-watch"), "PriceWatch");
        assert_eq!(type_name("echo"), "Echo");
        assert_eq!(type_name("a2a-worker-2"), "A2aWorker2");
    }

    /// Every template's manifest parses, names its component after the agent, and the source
    /// has no placeholder left.
    #[test]
    fn every_template_renders_a_valid_manifest_and_no_placeholder() {
        let name = AgentName::parse("price-watch").unwrap();
        for template in [
            Template::Echo,
            Template::Stateful,
            Template::ToolCaller,
            Template::A2aWorker,
        ] {
            let files = rust_files(&name, template, "\"0.1\"");
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{template:?} {path}: {text}");
            }
            let manifest = &files.iter().find(|(p, _)| p == "agent.toml").unwrap().1;
            let parsed = Manifest::parse(Path::new("p/agent.toml"), manifest)
                .unwrap_or_else(|e| panic!("{template:?}: {e}"));
            assert_eq!(parsed.name.as_str(), "price-watch");
            assert_eq!(parsed.component, Path::new("p/price-watch.wasm"));
            let lib = &files.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
            assert!(lib.contains("struct PriceWatch;"), "{template:?}");
            let has_events = files.iter().any(|(p, _)| p == "events.jsonl");
            let readme = &files.iter().find(|(p, _)| p == "README.md").unwrap().1;
            assert_eq!(readme.contains("events.jsonl"), has_events, "{template:?}");
        }
    }
}

//! `agenthost new NAME`: a standalone agent project in a directory of its own — the agent's
//! source (in Rust with a unit test), its build file, a manifest granting only what the
//! template uses, sample events for `agenthost test` and a README — ready for `agenthost
//! build`. The templates are files under `host/templates/` (`common/` the manifests and events
//! every language shares, one directory per language), compiled into the binary.

use crate::config::AgentName;
use crate::manifest::Manifest;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// The languages `new` writes projects in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "py")]
    Python,
}

impl Lang {
    fn said(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        }
    }
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
    /// The language's SDK to depend on by path; default: the one beside the sources this
    /// binary was built from, if they are still there, else the published package.
    pub sdk: Option<&'a Path>,
}

/// One template's files and what its README says.
struct Parts {
    manifest: &'static str,
    events: &'static str,
    /// The agent's source in each language.
    rust: &'static str,
    js: &'static str,
    python: &'static str,
    summary: &'static str,
    /// The commands that exercise it once deployed.
    try_it: &'static str,
}

fn parts(template: Template) -> Parts {
    match template {
        Template::Echo => Parts {
            manifest: include_str!("../../templates/common/echo/agent.toml"),
            events: include_str!("../../templates/common/echo/events.jsonl"),
            rust: include_str!("../../templates/rust/echo/lib.rs"),
            js: include_str!("../../templates/js/echo/agent.js"),
            python: include_str!("../../templates/python/echo/agent.py"),
            summary: "Republishes every event of `{{name}}.in.v1` to `{{name}}.out.v1`, unchanged.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 2",
        },
        Template::Stateful => Parts {
            manifest: include_str!("../../templates/common/stateful/agent.toml"),
            events: include_str!("../../templates/common/stateful/events.jsonl"),
            rust: include_str!("../../templates/rust/stateful/lib.rs"),
            js: include_str!("../../templates/js/stateful/agent.js"),
            python: include_str!("../../templates/python/stateful/agent.py"),
            summary: "Counts the events of `{{name}}.in.v1` per key in its state and publishes each count to `{{name}}.out.v1`.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 3",
        },
        Template::ToolCaller => Parts {
            manifest: include_str!("../../templates/common/tool-caller/agent.toml"),
            events: include_str!("../../templates/common/tool-caller/events.jsonl"),
            rust: include_str!("../../templates/rust/tool-caller/lib.rs"),
            js: include_str!("../../templates/js/tool-caller/agent.js"),
            python: include_str!("../../templates/python/tool-caller/agent.py"),
            summary: "Calls the MCP tool `{{server}}/{{tool}}` with each event of `{{name}}.in.v1` and publishes its text to `{{name}}.out.v1`. The host must configure the server, `[mcp.servers.{{server}}]` in its config; change the server and tool in `agent.toml`.",
            try_it: "agenthost publish {{name}}.in.v1 --file events.jsonl\nagenthost consume {{name}}.out.v1 --from-beginning --count 1",
        },
        Template::A2aWorker => Parts {
            manifest: include_str!("../../templates/common/a2a-worker/agent.toml"),
            events: include_str!("../../templates/common/a2a-worker/events.jsonl"),
            rust: include_str!("../../templates/rust/a2a-worker/lib.rs"),
            js: include_str!("../../templates/js/a2a-worker/agent.js"),
            python: include_str!("../../templates/python/a2a-worker/agent.py"),
            summary: "Answers A2A messages with the number of words and characters of their text; served by the host with its agent card.",
            try_it: "agenthost send {{name}} \"the quick brown fox\"",
        },
    }
}

pub fn run(args: NewProject<'_>) -> anyhow::Result<()> {
    let name = AgentName::parse(args.name).map_err(anyhow::Error::msg)?;
    if args.lang == Lang::Rust && name.as_str().starts_with(|c: char| c.is_ascii_digit()) {
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
    let sdk = sdk_dependency(args.lang, args.sdk)?;
    let files = project_files(&name, args.lang, args.template, &sdk.spec);
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
        "created {} (template {template}, {}; the SDK {}):",
        dir.display(),
        args.lang.said(),
        sdk.said
    );
    for (path, _) in &files {
        println!("  {path}");
    }
    println!(
        "next: cd {} && agenthost build && agenthost test",
        dir.display()
    );
    Ok(())
}

/// How the project depends on its language's SDK (in its build file's syntax), and as said to
/// the user.
struct SdkDependency {
    spec: String,
    said: String,
}

/// Where each language's SDK lives in a checkout, and what marks it as that SDK.
fn sdk_layout(lang: Lang) -> (&'static str, &'static str, &'static str) {
    match lang {
        Lang::Rust => ("sdk-guest", "Cargo.toml", "name = \"agenthost-sdk\""),
        Lang::Js => ("sdk-js", "package.json", "\"name\": \"agenthost-sdk\""),
        Lang::Python => ("sdk-py", "pyproject.toml", "name = \"agenthost-sdk\""),
    }
}

fn sdk_dependency(lang: Lang, explicit: Option<&Path>) -> anyhow::Result<SdkDependency> {
    let (checkout_dir, marker, name_line) = sdk_layout(lang);
    let by_path = |dir: &Path| -> anyhow::Result<SdkDependency> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("the SDK directory {} does not exist", dir.display()))?;
        let manifest = std::fs::read_to_string(dir.join(marker)).with_context(|| {
            format!(
                "{} is not the {} SDK: it has no {marker}",
                dir.display(),
                lang.said()
            )
        })?;
        if !manifest.contains(name_line) {
            bail!(
                "{} is not the {} SDK (agenthost-sdk)",
                dir.display(),
                lang.said()
            );
        }
        let shown = dir.display().to_string();
        let spec = match lang {
            Lang::Rust => format!("{{ path = {} }}", toml::Value::String(shown)),
            Lang::Js => serde_json::Value::String(format!("file:{shown}")).to_string(),
            Lang::Python => format!("agenthost-sdk @ file://{shown}"),
        };
        Ok(SdkDependency {
            spec,
            said: format!("from {}", dir.display()),
        })
    };
    if let Some(dir) = explicit {
        return by_path(dir);
    }
    // The SDK beside the sources this binary was built from, while the checkout is there.
    let built_with = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(checkout_dir);
    if built_with.join(marker).is_file() {
        return by_path(&built_with);
    }
    let (major, minor) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
    );
    let (spec, registry) = match lang {
        Lang::Rust => (format!("\"{major}.{minor}\""), "crates.io"),
        Lang::Js => (format!("\"~{major}.{minor}.0\""), "npm"),
        Lang::Python => (format!("agenthost-sdk~={major}.{minor}.0"), "PyPI"),
    };
    Ok(SdkDependency {
        spec,
        said: format!(
            "{major}.{minor} from {registry} (--sdk DIR uses a checkout's {checkout_dir}/ instead)"
        ),
    })
}

/// The files of a project, by path relative to its directory.
fn project_files(
    name: &AgentName,
    lang: Lang,
    template: Template,
    sdk: &str,
) -> Vec<(String, String)> {
    let parts = parts(template);
    let description = Manifest::parse(
        Path::new("agent.toml"),
        &parts.manifest.replace("{{name}}", name.as_str()),
    )
    .map(|m| m.description)
    .unwrap_or_default();
    let render = |text: &str| {
        text.replace("{{summary}}", parts.summary)
            .replace("{{try}}", parts.try_it)
            .replace("{{description}}", &description)
            .replace("{{name}}", name.as_str())
            .replace("{{type}}", &type_name(name.as_str()))
            .replace("{{sdk}}", sdk)
            .replace("{{server}}", TOOL_CALLER_SERVER)
            .replace("{{tool}}", TOOL_CALLER_TOOL)
            .replace(
                "{{componentize_qjs}}",
                super::build::javascript::COMPONENTIZE_QJS,
            )
            .replace("{{rolldown}}", super::build::javascript::ROLLDOWN)
    };
    let mut files = vec![
        ("agent.toml".to_owned(), render(parts.manifest)),
        ("events.jsonl".to_owned(), render(parts.events)),
    ];
    let (readme, gitignore) = match lang {
        Lang::Rust => {
            files.push((
                "Cargo.toml".to_owned(),
                // Not named Cargo.toml in the templates: cargo would take the directory for a
                // package of its own and leave it out of this crate's package.
                render(include_str!("../../templates/rust/Cargo.toml.in")),
            ));
            files.push(("src/lib.rs".to_owned(), render(parts.rust)));
            (
                include_str!("../../templates/rust/README.md"),
                include_str!("../../templates/rust/gitignore"),
            )
        }
        Lang::Js => {
            files.push((
                "package.json".to_owned(),
                render(include_str!("../../templates/js/package.json")),
            ));
            files.push((
                "rolldown.config.mjs".to_owned(),
                include_str!("../../templates/js/rolldown.config.mjs").to_owned(),
            ));
            files.push(("agent.js".to_owned(), render(parts.js)));
            (
                include_str!("../../templates/js/README.md"),
                include_str!("../../templates/js/gitignore"),
            )
        }
        Lang::Python => {
            files.push((
                "requirements.txt".to_owned(),
                render(include_str!("../../templates/python/requirements.txt")),
            ));
            files.push(("agent.py".to_owned(), render(parts.python)));
            (
                include_str!("../../templates/python/README.md"),
                include_str!("../../templates/python/gitignore"),
            )
        }
    };
    files.push(("README.md".to_owned(), render(readme)));
    files.push((".gitignore".to_owned(), gitignore.to_owned()));
    files
}

/// `price-watch` → `PriceWatch`: the agent's type in its Rust source.
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

    #[test]
    fn names_become_type_names() {
        assert_eq!(type_name("price-watch"), "PriceWatch");
        assert_eq!(type_name("echo"), "Echo");
        assert_eq!(type_name("a2a-worker-2"), "A2aWorker2");
    }

    /// Every template in every language: the manifest parses and names its component after the
    /// agent, the source is there, and no placeholder is left anywhere.
    #[test]
    fn every_template_renders_a_valid_manifest_and_no_placeholder() {
        let name = AgentName::parse("price-watch").unwrap();
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            for template in [
                Template::Echo,
                Template::Stateful,
                Template::ToolCaller,
                Template::A2aWorker,
            ] {
                let files = project_files(&name, lang, template, "\"0.1\"");
                for (path, text) in &files {
                    assert!(!text.contains("{{"), "{lang:?} {template:?} {path}: {text}");
                }
                let file = |path: &str| &files.iter().find(|(p, _)| p == path).unwrap().1;
                let parsed = Manifest::parse(Path::new("p/agent.toml"), file("agent.toml"))
                    .unwrap_or_else(|e| panic!("{template:?}: {e}"));
                assert_eq!(parsed.name.as_str(), "price-watch");
                assert_eq!(parsed.component, Path::new("p/price-watch.wasm"));
                match lang {
                    Lang::Rust => assert!(file("src/lib.rs").contains("struct PriceWatch;")),
                    Lang::Js => assert!(file("agent.js").contains("export const agent")),
                    Lang::Python => assert!(file("agent.py").contains("class Agent(")),
                }
                assert!(file("README.md").contains("events.jsonl"));
            }
        }
    }
}

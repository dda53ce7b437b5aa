//! `agenthost mcp-probe`: connects the host's own MCP client — the code agents' calls go
//! through, with its protocol negotiation, headers and timeouts — to one server, prints what
//! the server said (revision, name, tools) and calls a tool if asked. For checking a
//! `[mcp.servers.NAME]` before agents depend on it, and for trying a server by URL or command.

use crate::config::{HostConfig, McpProtocol, McpServerConfig};
use crate::mcp::McpServer;
use crate::metrics::Metrics;
use anyhow::{Context as _, bail};
use rmcp::model::{CallToolRequestParams, CallToolResponse};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ProbeArgs<'a> {
    /// A server of the host config (`[mcp.servers.NAME]`).
    pub server: Option<&'a str>,
    pub config: Option<&'a Path>,
    /// Or a streamable HTTP endpoint.
    pub url: Option<&'a str>,
    /// Or a stdio server's command line.
    pub command: &'a [String],
    /// `auto`, `2026-07-28` or `2025-11-25`.
    pub protocol: Option<&'a str>,
    pub tool: Option<&'a str>,
    /// The tool's arguments, a JSON object.
    pub arguments: Option<&'a str>,
}

/// `--protocol` as the host config spells it.
fn protocol(text: &str) -> anyhow::Result<McpProtocol> {
    use serde::Deserialize as _;
    McpProtocol::deserialize(
        serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text),
    )
    .map_err(|_| anyhow::anyhow!("--protocol {text:?}: expected auto, 2026-07-28 or 2025-11-25"))
}

/// The server to probe, as a host config describes it (an ad-hoc one is parsed from the same
/// TOML, so it is checked the same way), and the host's data_dir when it comes from a config.
fn server_config(
    args: &ProbeArgs<'_>,
) -> anyhow::Result<(String, McpServerConfig, Option<PathBuf>)> {
    let (name, mut server, data_dir) = match (args.server, args.url, args.command) {
        (Some(name), None, []) => {
            let path = args.config.unwrap_or(Path::new("agenthost.toml"));
            if !path.exists() {
                bail!(
                    "{} does not exist: name the host config with --config FILE, or probe a server by --url URL or -- COMMAND",
                    path.display()
                );
            }
            let config = HostConfig::load(path)?;
            let server = config.mcp.servers.get(name).cloned().with_context(|| {
                let known: Vec<&String> = config.mcp.servers.keys().collect();
                format!(
                    "{} has no [mcp.servers.{name}] (it has {known:?})",
                    path.display()
                )
            })?;
            (name.to_owned(), server, Some(config.data_dir))
        }
        (None, Some(url), []) => ad_hoc(&format!("url = {url:?}"), "--url")?,
        (None, None, [_, ..]) => {
            let command = toml::Value::Array(
                args.command
                    .iter()
                    .map(|a| toml::Value::String(a.clone()))
                    .collect(),
            );
            ad_hoc(&format!("command = {command}"), "-- COMMAND")?
        }
        _ => bail!("name one server: a NAME from the host config, --url URL, or -- COMMAND…"),
    };
    if let Some(p) = args.protocol {
        server.protocol = protocol(p)?;
    }
    Ok((name, server, data_dir))
}

fn ad_hoc(entry: &str, source: &str) -> anyhow::Result<(String, McpServerConfig, Option<PathBuf>)> {
    let config = HostConfig::parse(
        Path::new(source),
        &format!("[mcp.servers.probe]\n{entry}\n"),
    )?;
    let server = config
        .mcp
        .servers
        .get("probe")
        .cloned()
        .context("the probe's server config did not parse")?;
    Ok(("probe".into(), server, None))
}

/// Where a server reached with a rotating refresh token keeps it: the host's own store, since
/// a refresh spends the token the host holds and the rotated one must be where the host will
/// look. The host's database is locked while it runs, so such a server is probed with the
/// host stopped.
fn token_tree(
    name: &str,
    server: &McpServerConfig,
    data_dir: Option<&Path>,
) -> anyhow::Result<Option<(sled::Db, sled::Tree)>> {
    let rotating = server
        .oauth
        .as_ref()
        .is_some_and(|o| o.refresh_token_env.is_some());
    let Some(data_dir) = data_dir.filter(|_| rotating) else {
        return Ok(None);
    };
    let path = data_dir.join("db");
    let db = sled::Config::new().path(&path).open().with_context(|| {
        format!(
            "[mcp.servers.{name}] uses a refresh token that rotates, kept in {}; it cannot be opened (is the host running? probe this server with the host stopped, or the probe would spend the host's token)",
            path.display()
        )
    })?;
    let tree = db.open_tree(crate::mcp::TOKEN_TREE)?;
    Ok(Some((db, tree)))
}

pub async fn run(args: ProbeArgs<'_>) -> anyhow::Result<()> {
    let arguments = match args.arguments {
        None => None,
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            Ok(_) => bail!("--args must be a JSON object, e.g. '{{\"a\": 1}}'"),
            Err(e) => bail!("--args is not JSON: {e}"),
        },
    };
    let (name, config, data_dir) = server_config(&args)?;
    // Held open for the probe's life.
    let store = token_tree(&name, &config, data_dir.as_deref())?;
    let stop = tokio_util::sync::CancellationToken::new();
    let server = McpServer::new(
        &name,
        config,
        store.as_ref().map(|(_, tree)| tree.clone()),
        Arc::new(Metrics::new()),
        stop.clone(),
    );
    let result = probe(&server, args.tool, arguments).await;
    stop.cancel();
    result
}

async fn probe(
    server: &Arc<McpServer>,
    tool: Option<&str>,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<()> {
    let status = server.status();
    let connection = server
        .connection()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "server    {} at {} ({} {})",
        connection
            .server_info
            .as_deref()
            .unwrap_or("(no server info)"),
        status.target,
        status.transport,
        connection.protocol
    );
    let tools = connection
        .peer
        .list_all_tools()
        .await
        .context("tools/list failed")?;
    for t in &tools {
        println!(
            "tool      {}  {}",
            t.name,
            t.description.as_deref().unwrap_or_default()
        );
    }
    let Some(tool) = tool else { return Ok(()) };
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Some(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let response = connection
        .peer
        .call_tool_once(params)
        .await
        .with_context(|| format!("tools/call {tool} failed"))?;
    let CallToolResponse::Complete(result) = response else {
        bail!("tools/call {tool}: the server answered with something other than a result");
    };
    let text: Vec<String> = result
        .content
        .iter()
        .map(|c| match c.as_text() {
            Some(t) => t.text.clone(),
            None => serde_json::to_string(c).unwrap_or_default(),
        })
        .collect();
    println!("call      {tool} → {}", text.join(" "));
    if let Some(structured) = &result.structured_content {
        println!("structured {structured}");
    }
    if result.is_error == Some(true) {
        bail!("the tool reported an error");
    }
    Ok(())
}

//! The `agenthost` command line. `serve` runs the host; `new`, `build`, `test` and `inspect`
//! work on files (`test` on a host of its own in the process); every other verb is a client of a running host's HTTP API, so it works the same on the
//! local bus and on Kafka.

mod agent_test;
mod build;
mod client;
mod dev;
mod inspect;
mod mcp_probe;
mod mcp_stdio;
mod new;
mod project;
mod send;
mod serve;
mod trace;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "agenthost",
    version,
    about = "Runs AI agents shipped as WebAssembly components"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct HostArgs {
    /// The running host's base URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "AGENTHOST_URL"
    )]
    host: String,
    /// Admin bearer token (default: $AGENTHOST_ADMIN_TOKEN).
    #[arg(
        long,
        global = true,
        env = "AGENTHOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: deploy the configured agents, serve HTTP, deliver events.
    Serve {
        /// Host config file (default: ./agenthost.toml if it exists, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format on stderr (JSON: one object per line, with the spans it happened in).
        #[arg(long, value_enum, default_value = "text", env = "AGENTHOST_LOG_FORMAT")]
        log_format: Format,
    },
    /// Deploy an agent: upload its manifest and component to the running host.
    Deploy {
        manifest: PathBuf,
        /// Accept a version that is granted more than the running one.
        #[arg(long)]
        approve: bool,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Deploy an earlier version of an agent again, from the host's deployment history.
    Rollback {
        agent: String,
        /// The version to go back to (default: the newest other version that was live).
        #[arg(long)]
        to: Option<String>,
        /// Accept a version that is granted more than the live one.
        #[arg(long)]
        approve: bool,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Approve the widening refused for an agent's manifest file (at start or when it changed):
    /// deploy the file again, approved.
    Approve {
        agent: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Make an agent's canary its live version (ends the canary trial).
    Promote {
        agent: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// An agent's deployments, newest first: version, digest, origin, outcome.
    History {
        agent: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        host: HostArgs,
    },
    /// List deployed agents and refused deployments.
    Agents {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Send a text message to an agent over A2A and print its answer and the task's state.
    Send {
        agent: String,
        text: String,
        /// Stream the task's updates as they happen (SendStreamingMessage).
        #[arg(long)]
        stream: bool,
        /// A bearer token the agent's card asks for.
        #[arg(long, env = "AGENTHOST_A2A_TOKEN")]
        bearer: Option<String>,
        /// A header to send, KEY=VALUE (e.g. an API key); repeatable.
        #[arg(long = "header", value_name = "KEY=VALUE")]
        headers: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Connect the host's MCP client to one server — from the host config, a URL or a command —
    /// print its revision, name and tools, and call a tool if asked.
    McpProbe {
        /// A server of the host config (`[mcp.servers.NAME]`).
        #[arg(conflicts_with_all = ["url", "command"])]
        server: Option<String>,
        /// The host config the NAME is in (default: ./agenthost.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A streamable HTTP server's endpoint.
        #[arg(long, conflicts_with = "command")]
        url: Option<String>,
        /// The revision to speak: auto (2026-07-28, falling back to 2025-11-25) or one of them.
        #[arg(long, value_name = "auto|2026-07-28|2025-11-25")]
        protocol: Option<String>,
        /// Call this tool after listing.
        #[arg(long)]
        tool: Option<String>,
        /// The tool's arguments, a JSON object.
        #[arg(long = "args", value_name = "JSON", requires = "tool")]
        arguments: Option<String>,
        /// A stdio server's command line, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Serve a running host's MCP tools on stdin/stdout, for MCP clients that launch a command
    /// (desktop assistants, IDEs). Logs go to stderr.
    McpStdio {
        /// Only this agent's tools (its endpoint /agents/NAME/mcp); default: every exposed agent.
        #[arg(long)]
        agent: Option<String>,
        /// A bearer token the agents' `[mcp] security` asks for.
        #[arg(long, env = "AGENTHOST_MCP_TOKEN", hide_env_values = true)]
        bearer: Option<String>,
        /// A header to send, KEY=VALUE (e.g. an API key); repeatable.
        #[arg(long = "header", value_name = "KEY=VALUE")]
        headers: Vec<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Publish one record.
    Publish {
        topic: String,
        /// The record's payload; `-` reads it from stdin.
        #[arg(required_unless_present = "file")]
        payload: Option<String>,
        #[arg(long, conflicts_with = "file")]
        key: Option<String>,
        /// A header, KEY=VALUE; repeatable.
        #[arg(long = "header", value_name = "KEY=VALUE", conflicts_with = "file")]
        headers: Vec<String>,
        /// Publish every record of a JSONL file (`-`: stdin), one JSON object a line:
        /// {"payload": "…", "key": "…", "headers": {"k": "v"}} (or "payload_base64").
        #[arg(long, value_name = "FILE", conflicts_with = "payload")]
        file: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print records of a topic.
    Consume {
        topic: String,
        /// Show each record's headers (the text format; JSON always has them).
        #[arg(long)]
        headers: bool,
        /// Start at the oldest record instead of only new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after N records (exit 1 if fewer arrive before the timeout).
        #[arg(long)]
        count: Option<u64>,
        /// How long to wait for records.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Show the audit log: capability uses and deploy decisions.
    Audit {
        /// Only this agent's entries.
        #[arg(long)]
        agent: Option<String>,
        /// Only denials.
        #[arg(long)]
        denied: bool,
        /// Only entries newer than this, e.g. 10m, 2h.
        #[arg(long)]
        since: Option<String>,
        /// Only this request's entries.
        #[arg(long)]
        correlation_id: Option<String>,
        /// At most this many, the newest.
        #[arg(long, default_value = "200")]
        limit: usize,
        /// Keep printing new entries as they are recorded (until interrupted).
        #[arg(long, short)]
        follow: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Show one request's path from the audit log: the agents, topics, tool calls and A2A
    /// messages its correlation id reached, in order, and what failed on the way.
    Trace {
        correlation_id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also read the audit log of the host at this URL (repeatable; the same token): a
        /// request that crossed several hosts on one Kafka cluster is traced across them.
        #[arg(long, value_name = "URL")]
        also: Vec<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Create an agent project: its source with a unit test, build file, manifest with the
    /// grants it needs, sample events and a README.
    New {
        /// The agent's name ([a-z0-9-], starting with a letter): its directory by default.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: new::Lang,
        #[arg(long, value_enum, default_value = "echo")]
        template: new::Template,
        /// Create it here instead of ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on the SDK in this directory (an agenthost checkout's sdk-guest/, sdk-js/ or
        /// sdk-py/, by language).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Run an agent's sample events (and A2A messages) through its component on a host in this
    /// process, printing what it published, stored, called, logged and was denied; exit 1 when
    /// a handler failed or a use was denied.
    Test {
        /// The project (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Its manifest (default: DIR/agent.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The records, one JSON object a line: {"payload", "key", "headers", "topic"} (the
        /// topic defaults to the manifest's first subscription) or {"message"} (default:
        /// DIR/events.jsonl).
        #[arg(long)]
        events: Option<PathBuf>,
        /// A host config for what the agent needs of the host (MCP servers, A2A peers); its
        /// data_dir, listen, bus and agents are replaced by the test host's.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Develop an agent: build it, serve a host on the embedded bus with it deployed, and
    /// rebuild and hot-swap it on every save, printing what it does as it happens.
    Dev {
        /// The project (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Its manifest (default: DIR/agent.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// A host config for what the agent needs of the host (MCP servers, A2A peers); its
        /// data_dir, bus and agents are replaced (data in DIR/.agenthost/dev).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the host listens, for `agenthost publish`, `send` and the rest.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Build an agent project into the component its manifest names, and check the component
    /// against the manifest.
    Build {
        /// The project (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Its manifest (default: DIR/agent.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Show a component's imports and exports and, with a manifest, what is granted or missing
    /// (exit status 1 when the manifest does not let it deploy).
    Inspect {
        /// The component; without it, the one the manifest names.
        component: Option<PathBuf>,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Also compile and link the component, as a deploy does (slower for large ones).
        #[arg(long)]
        compile: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, log_format } => serve::run(config, log_format).await,
            Command::Deploy {
                manifest,
                approve,
                host,
            } => client::deploy(&host, &manifest, approve).await,
            Command::Rollback {
                agent,
                to,
                approve,
                host,
            } => client::rollback(&host, &agent, to.as_deref(), approve).await,
            Command::Promote { agent, host } => client::promote(&host, &agent).await,
            Command::Approve { agent, host } => client::approve(&host, &agent).await,
            Command::History {
                agent,
                format,
                host,
            } => client::history(&host, &agent, format).await,
            Command::Agents { format, host } => client::agents(&host, format).await,
            Command::McpProbe {
                server,
                config,
                url,
                protocol,
                tool,
                arguments,
                command,
            } => {
                mcp_probe::run(mcp_probe::ProbeArgs {
                    server: server.as_deref(),
                    config: config.as_deref(),
                    url: url.as_deref(),
                    command: &command,
                    protocol: protocol.as_deref(),
                    tool: tool.as_deref(),
                    arguments: arguments.as_deref(),
                })
                .await
            }
            Command::McpStdio {
                agent,
                bearer,
                headers,
                host,
            } => {
                mcp_stdio::run(
                    &host,
                    mcp_stdio::StdioArgs {
                        agent: agent.as_deref(),
                        bearer: bearer.as_deref(),
                        headers: &headers,
                    },
                )
                .await
            }
            Command::Send {
                agent,
                text,
                stream,
                bearer,
                headers,
                format,
                host,
            } => {
                send::run(
                    &host,
                    send::SendArgs {
                        agent: &agent,
                        text: &text,
                        stream,
                        headers: &headers,
                        bearer: bearer.as_deref(),
                        format,
                    },
                )
                .await
            }
            Command::Publish {
                topic,
                payload,
                key,
                headers,
                file,
                host,
            } => match (file, payload) {
                (Some(file), _) => client::publish_file(&host, &topic, &file).await,
                (None, Some(payload)) => {
                    client::publish(&host, &topic, &payload, key, &headers).await
                }
                // clap requires one of them.
                (None, None) => anyhow::bail!("give a payload or --file"),
            },
            Command::Consume {
                topic,
                headers,
                from_beginning,
                count,
                timeout,
                format,
                host,
            } => {
                let show = client::Show { format, headers };
                client::consume(&host, &topic, from_beginning, count, timeout, show).await
            }
            Command::Audit {
                agent,
                denied,
                since,
                correlation_id,
                limit,
                follow,
                format,
                host,
            } => {
                let query = crate::audit::AuditQuery {
                    agent,
                    denied,
                    since,
                    correlation_id,
                    limit: Some(limit),
                    after: None,
                };
                client::audit(&host, query, follow, format).await
            }
            Command::Trace {
                correlation_id,
                format,
                also,
                host,
            } => client::trace(&host, &also, &correlation_id, format).await,
            Command::New {
                name,
                lang,
                template,
                dir,
                sdk,
            } => new::run(new::NewProject {
                name: &name,
                lang,
                template,
                dir: dir.as_deref(),
                sdk: sdk.as_deref(),
            }),
            Command::Build { dir, manifest } => build::run(&dir, manifest.as_deref()),
            Command::Dev {
                dir,
                manifest,
                config,
                listen,
            } => {
                dev::run(dev::DevArgs {
                    dir: &dir,
                    manifest: manifest.as_deref(),
                    config: config.as_deref(),
                    listen,
                })
                .await
            }
            Command::Test {
                dir,
                manifest,
                events,
                config,
            } => {
                agent_test::run(agent_test::TestArgs {
                    dir: &dir,
                    manifest: manifest.as_deref(),
                    events: events.as_deref(),
                    config: config.as_deref(),
                })
                .await
            }
            Command::Inspect {
                component,
                manifest,
                compile,
                format,
            } => inspect::run(inspect::Inspect {
                component: component.as_deref(),
                manifest: manifest.as_deref(),
                compile,
                format,
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The reason and its causes; a TOML error keeps its excerpt of the file on the
            // lines below, pointing at the offending text.
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

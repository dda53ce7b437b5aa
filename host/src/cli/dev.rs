//! `agenthost dev [DIR]`: the inner loop of writing an agent. Builds the project, serves a host
//! on the embedded bus with the agent deployed (its data in `DIR/.agenthost/dev/`, so state
//! survives a restart of `dev`), and on every save rebuilds and hot-swaps it through the same
//! deploy path as `agenthost deploy` (in-flight events finish on the old version). It prints
//! what the agent does as it happens — each event, each record it publishes with its payload,
//! each call, denial, failure and dead letter, and its log lines. A failed build keeps the last
//! good version running.
//!
//! Source files are polled rather than watched through inotify, for the reasons of the host's
//! manifest watching (`watch.rs`): it works on every filesystem and with editors that replace
//! files. A change is built once it has stayed the same for one more poll.

use super::serve;
use crate::audit::{AuditEntry, AuditQuery};
use crate::deployments::Origin;
use crate::host::{Approval, Host};
use crate::manifest::Manifest;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the sources are looked at, and the audit log followed.
const POLL: Duration = Duration::from_millis(300);

pub struct DevArgs<'a> {
    pub dir: &'a Path,
    pub manifest: Option<&'a Path>,
    /// A host config for what the agent needs of a host (MCP servers, A2A peers); its data
    /// directory, bus and agents are replaced.
    pub config: Option<&'a Path>,
    pub listen: SocketAddr,
}

pub async fn run(args: DevArgs<'_>) -> anyhow::Result<()> {
    let dir = std::path::absolute(args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let manifest_path = args
        .manifest
        .map_or_else(|| dir.join("agent.toml"), Path::to_owned);
    let manifest = Manifest::load(&manifest_path)?;
    let data_dir = super::project::work_dir(&dir).join("dev");
    let config = super::project::host_config(args.config, &dir, &data_dir, args.listen)?;
    init_logging();

    let mut built = build(&dir, &manifest_path).await;
    let served = serve::start(config).await?;
    let url = format!("http://{}", served.address);
    println!(
        "dev: {} on {url} (embedded bus, data in {})",
        manifest.name,
        served.host.config.data_dir.display()
    );
    if let Some(subscription) = manifest.subscribe.first() {
        println!(
            "try: agenthost publish {} --file events.jsonl --host {url}",
            subscription.topic
        );
    }
    if manifest.a2a.expose {
        println!(
            "try: agenthost send {} \"hello\" --host {url}",
            manifest.name
        );
    }
    println!("watching {} for changes (Ctrl-C stops)", dir.display());
    let follower = tokio::spawn(follow(served.host.clone(), manifest.name.to_string()));

    let mut sources = Sources::of(&dir);
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        if built {
            deploy(&served.host, &manifest_path).await;
        }
        // Wait for a change that has settled, or Ctrl-C.
        loop {
            tokio::select! {
                () = &mut stop => {
                    follower.abort();
                    served.stop().await;
                    return Ok(());
                }
                () = tokio::time::sleep(POLL) => {}
            }
            let now = Sources::of(&dir);
            if now != sources {
                tokio::time::sleep(POLL).await;
                let settled = Sources::of(&dir);
                if settled == now {
                    sources = settled;
                    break;
                }
            }
        }
        println!("changed: rebuilding");
        // A save during the build differs from `sources`, the snapshot it was started from,
        // and is built next.
        built = build(&dir, &manifest_path).await;
    }
}

/// `agenthost build`, off the async threads; whether it succeeded (its error printed if not).
async fn build(dir: &Path, manifest: &Path) -> bool {
    let (dir, manifest) = (dir.to_owned(), manifest.to_owned());
    let result = tokio::task::spawn_blocking(move || super::build::run(&dir, Some(&manifest)))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the build stopped: {e}")));
    match result {
        Ok(()) => true,
        Err(e) => {
            println!(
                "build failed: {e:#}\nthe running version, if any, keeps running; fix and save to try again"
            );
            false
        }
    }
}

/// Deploys the built component (a widening of the grants is accepted, and shown).
async fn deploy(host: &Host, manifest: &Path) {
    match host
        .deploy_path(manifest, Approval::Given, Origin::Api)
        .await
    {
        Ok(report) => {
            let replaced = report
                .replaced
                .as_ref()
                .map(|v| format!(", replacing {v}"))
                .unwrap_or_default();
            println!(
                "deployed {} {} ({}){replaced}",
                report.agent, report.version, report.digest
            );
            for line in &report.diff {
                println!("  {line}");
            }
        }
        Err(e) => println!("not deployed: {e}"),
    }
}

/// Prints the agent's audit entries as they are recorded: events, publishes (with their
/// payload), calls, denials, failures, dead letters, deploys.
async fn follow(host: Arc<Host>, agent: String) {
    let query = |after: Option<String>, limit| AuditQuery {
        agent: Some(agent.clone()),
        after,
        limit: Some(limit),
        ..AuditQuery::default()
    };
    // From now on: what was recorded before (an earlier `dev`) is history.
    let mut after = host
        .audit
        .query(&query(None, 1))
        .ok()
        .and_then(|entries| entries.last().map(|e| e.id.clone()));
    loop {
        tokio::time::sleep(POLL).await;
        host.audit.flush();
        let Ok(entries) = host.audit.query(&query(after.clone(), 1000)) else {
            continue;
        };
        for entry in &entries {
            print_entry(&host, entry).await;
        }
        if let Some(last) = entries.last() {
            after = Some(last.id.clone());
        }
    }
}

async fn print_entry(host: &Host, e: &AuditEntry) {
    let Some(line) = super::agent_test::use_line(host, e, 14).await else {
        return;
    };
    let time = humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH + Duration::from_millis(e.time_ms),
    )
    .to_string();
    let clock = time.get(11..19).unwrap_or(&time);
    println!("{clock}  {line}");
}

/// The agent's log lines on stdout as they come; the host's own warnings and errors on
/// stderr.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::{Layer as _, filter};
    let agent_log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_target(false)
        .without_time()
        .compact()
        .with_filter(filter::filter_fn(|m| m.target() == "agent"));
    let subscriber = tracing_subscriber::registry()
        .with(agent_log)
        .with(super::agent_test::host_warnings());
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// What the project's sources are: every file's path, modification time and size, leaving out
/// what builds write (`.agenthost/`, `target/`, `node_modules/`, `__pycache__/`, `dist/`, lock
/// files, the component) and hidden files.
#[derive(PartialEq, Eq)]
struct Sources(Vec<(PathBuf, Option<SystemTime>, u64)>);

impl Sources {
    fn of(dir: &Path) -> Self {
        let mut files = Vec::new();
        collect(dir, &mut files);
        files.sort();
        Self(files)
    }
}

fn collect(dir: &Path, files: &mut Vec<(PathBuf, Option<SystemTime>, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            || matches!(&*name, "target" | "node_modules" | "__pycache__" | "dist")
            || matches!(&*name, "package-lock.json" | "Cargo.lock")
            || name.ends_with(".wasm")
        {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            collect(&path, files);
        } else {
            files.push((path, meta.modified().ok(), meta.len()));
        }
    }
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_change_with_a_source_and_not_with_build_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.js"), "a").unwrap();
        std::fs::create_dir_all(dir.path().join(".agenthost/build")).unwrap();
        let before = Sources::of(dir.path());
        std::fs::write(dir.path().join("agent.wasm"), "built").unwrap();
        std::fs::write(dir.path().join(".agenthost/build/x.js"), "staged").unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("node_modules/x/i.js"), "dep").unwrap();
        assert!(
            Sources::of(dir.path()) == before,
            "build output is not a change"
        );
        std::fs::write(dir.path().join("agent.js"), "ab").unwrap();
        assert!(Sources::of(dir.path()) != before, "a saved source is");
    }
}

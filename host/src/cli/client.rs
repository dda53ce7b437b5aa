//! The client verbs: thin wrappers over the host's HTTP API.

use super::{Format, HostArgs};
use crate::http::{
    AgentsResponse, DeployUpload, ErrorBody, PublishRequest, PublishResponse, WireRecord,
};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures::StreamExt as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    fn new(args: &HostArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            base: args.host.trim_end_matches('/').to_owned(),
            // A token given, else the one a host on this machine shared for this address.
            token: args
                .token
                .clone()
                .or_else(|| crate::http::token::for_client(&args.host)),
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and turns a non-2xx answer into its `error` message.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the host at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        bail!("{message} (HTTP {})", status.as_u16())
    }
}

pub async fn publish(
    args: &HostArgs,
    topic: &str,
    payload: &str,
    key: Option<String>,
    headers: &[String],
) -> anyhow::Result<()> {
    let payload = if payload == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the payload from stdin")?;
        text
    } else {
        payload.to_owned()
    };
    let mut header_map = BTreeMap::new();
    for h in headers {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h:?}: expected KEY=VALUE"))?;
        header_map.insert(k.to_owned(), v.to_owned());
    }
    let client = Client::new(args)?;
    let body = PublishRequest {
        key,
        payload: Some(payload),
        payload_base64: None,
        headers: header_map,
    };
    let response = publish_one(&client, topic, &body).await?;
    print_published(&response);
    Ok(())
}

/// Publishes every record of a JSONL file (`-`: stdin) in order, over one connection, each
/// printed as it is stored; the first line that is not a record stops it, naming the line.
pub async fn publish_file(args: &HostArgs, topic: &str, file: &Path) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read records from stdin")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let name = if file == Path::new("-") {
        "stdin".to_owned()
    } else {
        file.display().to_string()
    };
    // Every line is parsed before the first is sent: a bad line publishes nothing.
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: PublishRequest = serde_json::from_str(line).with_context(|| {
            format!(
                "{name}:{}: expected a record, {{\"payload\": \"…\", \"key\": \"…\", \"headers\": {{…}}}}",
                i + 1
            )
        })?;
        records.push(record);
    }
    let client = Client::new(args)?;
    for record in &records {
        print_published(&publish_one(&client, topic, record).await?);
    }
    Ok(())
}

async fn publish_one(
    client: &Client,
    topic: &str,
    body: &PublishRequest,
) -> anyhow::Result<PublishResponse> {
    let path = format!("/v1/topics/{topic}/records");
    Ok(client
        .send(client.request(reqwest::Method::POST, &path).json(body))
        .await?
        .json()
        .await?)
}

fn print_published(response: &PublishResponse) {
    println!(
        "published to {}[{}]@{} correlation-id={}",
        response.topic, response.partition, response.offset, response.correlation_id
    );
}

/// How `consume` prints records.
pub struct Show {
    pub format: Format,
    /// In the text format, each record's headers too.
    pub headers: bool,
}

pub async fn consume(
    args: &HostArgs,
    topic: &str,
    from_beginning: bool,
    count: Option<u64>,
    timeout: Duration,
    show: Show,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let mut query = vec![
        ("from_beginning", from_beginning.to_string()),
        ("timeout", humantime::format_duration(timeout).to_string()),
    ];
    if let Some(n) = count {
        query.push(("count", n.to_string()));
    }
    let path = format!("/v1/topics/{topic}/records");
    let response = client
        .send(client.request(reqwest::Method::GET, &path).query(&query))
        .await?;
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        buffer.extend_from_slice(&chunk.context("the host closed the stream")?);
        while let Some(pos) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            let record: WireRecord = match serde_json::from_slice(&line) {
                Ok(r) => r,
                Err(_) => {
                    let err: ErrorBody =
                        serde_json::from_slice(&line).context("unexpected line from the host")?;
                    bail!("{}", err.error);
                }
            };
            seen += 1;
            match show.format {
                Format::Json => writeln!(out, "{}", String::from_utf8_lossy(&line).trim_end())?,
                Format::Text => {
                    let key = record
                        .key
                        .as_deref()
                        .map(|k| format!(" key={k}"))
                        .unwrap_or_default();
                    let payload = record.payload.clone().unwrap_or_else(|| {
                        format!(
                            "<{} bytes, base64 {}>",
                            record.payload_bytes().len(),
                            record.payload_base64.clone().unwrap_or_default()
                        )
                    });
                    let headers = if show.headers && !record.headers.is_empty() {
                        let pairs: Vec<String> = record
                            .headers
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        format!(" [{}]", pairs.join(" "))
                    } else {
                        String::new()
                    };
                    writeln!(
                        out,
                        "{}[{}]@{}{key}{headers} {payload}",
                        record.topic, record.partition, record.offset
                    )?;
                }
            }
            out.flush()?;
        }
    }
    if let Some(n) = count
        && seen < n
    {
        bail!(
            "timed out after {} with {seen} of {n} records",
            humantime::format_duration(timeout)
        );
    }
    Ok(())
}

pub async fn agents(args: &HostArgs, format: Format) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let response = client
        .send(client.request(reqwest::Method::GET, "/v1/agents"))
        .await?;
    let list: AgentsResponse = response.json().await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.agents.is_empty() {
        println!("no agents deployed");
    } else {
        println!(
            "{:<20} {:<10} {:<14} {:>11} {:>8} {:>12}  SUBSCRIBES",
            "NAME", "VERSION", "DIGEST", "INVOCATIONS", "FAILURES", "DEAD-LETTERS"
        );
        for a in &list.agents {
            let digest: String = a
                .digest
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
            println!(
                "{:<20} {:<10} {:<14} {:>11} {:>8} {:>12}  {}",
                a.name,
                a.version,
                digest,
                a.invocations,
                a.failures,
                a.dead_letters,
                a.subscribe.join(", ")
            );
            if let Some(c) = &a.canary {
                println!(
                    "  canary {} for {}% of events: {} invocations, {} failed (live: {}, {} failed) in the check's window",
                    c.version,
                    c.percent,
                    c.counts.canary_invocations,
                    c.counts.canary_failures,
                    c.counts.stable_invocations,
                    c.counts.stable_failures
                );
            }
        }
    }
    for r in &list.refused {
        println!("refused {}: {}", r.source, r.error.replace('\n', " "));
    }
    if !list.mcp_servers.is_empty() {
        println!();
        println!(
            "{:<20} {:<6} {:<11} {:<11} {:>8}  DETAIL",
            "MCP SERVER", "KIND", "STATE", "PROTOCOL", "RESTARTS"
        );
        for s in &list.mcp_servers {
            let detail = match (&s.error, &s.server_info) {
                (Some(error), _) => error.clone(),
                (None, Some(info)) => info.clone(),
                (None, None) => s.target.clone(),
            };
            println!(
                "{:<20} {:<6} {:<11} {:<11} {:>8}  {}",
                s.name,
                s.transport,
                s.state,
                s.protocol.as_deref().unwrap_or("-"),
                s.restarts,
                detail.replace('\n', " ")
            );
        }
    }
    Ok(())
}

pub async fn deploy(args: &HostArgs, manifest_path: &Path, approve: bool) -> anyhow::Result<()> {
    // Parse locally first: errors name the file and key before anything is uploaded.
    let manifest = crate::manifest::Manifest::load(manifest_path)?;
    let text = std::fs::read_to_string(manifest_path)?;
    let component = manifest.read_component(manifest_path)?;
    let client = Client::new(args)?;
    let absolute =
        std::fs::canonicalize(manifest_path).unwrap_or_else(|_| manifest_path.to_owned());
    let body = DeployUpload {
        manifest_path: absolute.display().to_string(),
        manifest: text,
        component_base64: base64::engine::general_purpose::STANDARD.encode(component),
        approve,
    };
    post_for_report(&client, "/v1/agents", Some(&body), "deployed").await
}

/// POSTs `body` to `path`, then prints the deploy report the host answers with.
async fn post_for_report<B: serde::Serialize + ?Sized>(
    client: &Client,
    path: &str,
    body: Option<&B>,
    verb: &str,
) -> anyhow::Result<()> {
    let mut request = client.request(reqwest::Method::POST, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    let report: crate::host::DeployReport = client.send(request).await?.json().await?;
    print_report(verb, &report);
    Ok(())
}

fn print_report(verb: &str, report: &crate::host::DeployReport) {
    let replaced = report.replaced.as_deref();
    match (report.canary, replaced) {
        (0, Some(old)) => println!(
            "{verb} {} {} (replacing {old}) {}",
            report.agent, report.version, report.digest
        ),
        (0, None) => println!(
            "{verb} {} {} {}",
            report.agent, report.version, report.digest
        ),
        (share, _) => println!(
            "{verb} {} {} as a canary for {share}% of events beside {}: {} (agenthost promote {} to finish, agenthost rollback {} to abandon)",
            report.agent,
            report.version,
            replaced.unwrap_or("-"),
            report.digest,
            report.agent,
            report.agent
        ),
    }
    // What the new version is granted beyond or below the running one (a widening canary was
    // approved too).
    for line in &report.diff {
        println!("  {line}");
    }
}

pub async fn rollback(
    args: &HostArgs,
    agent: &str,
    to: Option<&str>,
    approve: bool,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let body = crate::http::RollbackRequest {
        to: to.map(str::to_owned),
        approve,
    };
    let path = format!("/v1/agents/{agent}/rollback");
    post_for_report(&client, &path, Some(&body), "rolled back to").await
}

pub async fn promote(args: &HostArgs, agent: &str) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let path = format!("/v1/agents/{agent}/promote");
    post_for_report(&client, &path, None::<&()>, "promoted").await
}

pub async fn approve(args: &HostArgs, agent: &str) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let path = format!("/v1/agents/{agent}/approve");
    post_for_report(&client, &path, None::<&()>, "approved and deployed").await
}

pub async fn history(args: &HostArgs, agent: &str, format: Format) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let history: Vec<crate::deployments::Deployment> = client
        .send(client.request(
            reqwest::Method::GET,
            &format!("/v1/agents/{agent}/deployments"),
        ))
        .await?
        .json()
        .await?;
    if format == Format::Json {
        for d in &history {
            println!("{}", serde_json::to_string(d)?);
        }
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<14} {:<9} {:<11}  DETAIL",
        "TIME", "VERSION", "DIGEST", "ORIGIN", "OUTCOME"
    );
    for d in &history {
        let time = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(d.at_ms),
        );
        let digest: String = d
            .digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        println!(
            "{:<24} {:<10} {:<14} {:<9} {:<11}  {}",
            time.to_string(),
            d.version,
            digest,
            d.origin.as_str(),
            d.outcome.as_str(),
            d.detail.replace('\n', " ")
        );
    }
    Ok(())
}

/// How often `audit --follow` asks for new entries.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

async fn query_audit(
    client: &Client,
    query: &crate::audit::AuditQuery,
) -> anyhow::Result<Vec<crate::audit::AuditEntry>> {
    let response = client
        .send(
            client
                .request(reqwest::Method::GET, "/v1/audit")
                .query(query),
        )
        .await?;
    Ok(response.json().await?)
}

pub async fn audit(
    args: &HostArgs,
    mut query: crate::audit::AuditQuery,
    follow: bool,
    format: Format,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    loop {
        let entries = query_audit(&client, &query).await?;
        for e in &entries {
            print_audit_entry(e, format)?;
        }
        if !follow {
            return Ok(());
        }
        std::io::stdout().flush()?;
        if let Some(last) = entries.last() {
            // Continue after the newest entry printed, oldest first from now on.
            query.after = Some(last.id.clone());
            query.since = None;
            query.limit = Some(1000);
        }
        if entries.len() < query.limit.unwrap_or(1000) {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    }
}

fn print_audit_entry(e: &crate::audit::AuditEntry, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string(e)?);
        return Ok(());
    }
    let time =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms));
    // What agents and producers chose (targets, ids, reasons quoting them) is shown with its
    // control characters escaped: it cannot forge entries or steer the terminal.
    use crate::text::escape_control;
    let detail = if e.detail.is_empty() {
        String::new()
    } else {
        format!("  {}", escape_control(&e.detail))
    };
    println!(
        "{time}  {:<8} {}  {} {}  correlation-id={}{detail}{}",
        e.outcome.as_str(),
        escape_control(&e.who()),
        e.capability,
        escape_control(&e.target),
        if e.correlation_id.is_empty() {
            "-".into()
        } else {
            escape_control(&e.correlation_id)
        },
        super::trace::repeats(e.repeated),
    );
    Ok(())
}

/// Entries a trace reads at most: far more than one request makes.
const TRACE_LIMIT: usize = 10_000;

/// `trace`: the request's entries from the host's audit log and from each host in `also`.
pub async fn trace(
    args: &HostArgs,
    also: &[String],
    correlation_id: &str,
    format: Format,
) -> anyhow::Result<()> {
    let query = crate::audit::AuditQuery {
        correlation_id: Some(correlation_id.to_owned()),
        limit: Some(TRACE_LIMIT),
        ..Default::default()
    };
    let mut urls: Vec<&String> = vec![&args.host];
    for url in also {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    let mut logs = Vec::with_capacity(urls.len());
    for url in &urls {
        let host = HostArgs {
            host: (*url).clone(),
            token: args.token.clone(),
        };
        // A host that cannot be read would leave a hole in the path: say which, not a
        // trace that looks whole.
        let entries = query_audit(&Client::new(&host)?, &query)
            .await
            .with_context(|| format!("cannot read the audit log of {url}"))?;
        logs.push(((*url).clone(), entries));
    }
    let entries = super::trace::merge(logs);
    if entries.is_empty() {
        let seen_by = if urls.len() > 1 {
            "these hosts"
        } else {
            "this host"
        };
        bail!(
            "no audit entries for correlation id {correlation_id:?}: never seen by {seen_by}, or \
             older than the audit retention (audit.retention)"
        );
    }
    if format == Format::Json {
        let summary = super::trace::summarize(&entries);
        let json = serde_json::json!({
            "correlation_id": correlation_id,
            "steps": entries,
            "summary": summary,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", super::trace::render(correlation_id, &entries));
    }
    Ok(())
}

//! Helpers for integration tests: start real `agenthost serve` processes in scratch directories
//! and drive them through the CLI and the HTTP API, as a user would.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use agenthost::http::WireRecord;

pub mod kafka;
pub mod peers;

/// echo: copies each event on `demo.in.v1` to `demo.out.v1` (its `out` config), the
/// manifest's defaults otherwise. Tests vary it with `str::replace`.
pub const ECHO: &str = r#"
name = "echo"
version = "1.0.0"
component = "{plugins}/echo.wasm"

[[subscribe]]
topic = "demo.in.v1"

[capabilities]
publish = ["demo.out.v1"]
config = { out = "demo.out.v1" }
"#;

/// faulty: on `faulty.in.v1`, does what each payload asks (see plugins/faulty) and echoes the
/// rest to `faulty.out.v1`; 3 attempts, 20 ms backoff, dead letters to `faulty.dead-letter.v1`
/// (a topic of its own naming, so granted like any publish).
pub const FAULTY: &str = r#"
name = "faulty"
version = "0.3.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "faulty.in.v1"

[delivery]
max_attempts = 3
backoff = "20ms"
dead_letter = "faulty.dead-letter.v1"

[limits]
timeout = "2s"
memory = "32MiB"

[capabilities]
publish = ["faulty.out.v1", "faulty.dead-letter.v1"]
config = { out = "faulty.out.v1" }
"#;

/// slow-echo: the `faulty` plugin echoing `slow:…` payloads from `work.in.v1` to `work.out.v1`
/// after 20 ms each, four partitions at a time — so a backlog builds and work is in flight when
/// a test kills, freezes or rebalances something.
pub const SLOW_ECHO: &str = r#"
name = "slow-echo"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "work.in.v1"

[delivery]
concurrency = 4

[capabilities]
publish = ["work.out.v1"]
config = { out = "work.out.v1" }
"#;
pub use kafka::{Broker, TestBus};

/// The repository's root (where `examples/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The workspace's `target` directory.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    workspace_root().join("target")
}

/// The `agenthost` binary built next to this test (target/<profile>/agenthost).
pub fn agenthost_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("agenthost");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p agenthost` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// A plugin built by `cargo xtask plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let path = target_dir().join("plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask plugins` (cargo xtask test does)",
        path.display()
    );
    path
}

/// A loopback port nothing listens on, never handed out twice by this process.
///
/// The integration tests run as threads of one process, many at once. A port the kernel
/// gives to `bind(0)` comes from the ephemeral range, where any test's outgoing connection
/// (to the broker, an MCP server, a host) may take it between this call and the listener
/// binding it — CI saw a host fail with "Address already in use" that way. So ports come
/// from below Linux's ephemeral range (32768 and up), walked in order from an offset
/// derived from the process id so that two test processes rarely meet.
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 1_000) * 20;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {}",
        FIRST + COUNT
    )
}

/// A scratch directory with an `agenthost.toml` and an `agents/` folder.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Scenario {
    pub fn new(extra_config: &str) -> Self {
        Self::with_port(extra_config, free_port())
    }

    /// A scenario on `bus`.
    pub fn on(bus: &TestBus) -> Self {
        Self::new(&bus.config())
    }

    fn with_port(extra_config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("agents")).expect("agents dir");
        let config = format!(
            "data_dir = \"data\"\nagents = [\"agents/*.toml\"]\nlisten = \"127.0.0.1:{port}\"\n\n[runtime]\npool_instances = 64\n{extra_config}\n"
        );
        std::fs::write(dir.path().join("agenthost.toml"), config).expect("config");
        Self { dir, port }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes `agents/<file>.toml` with `body` (component paths may use `{plugins}`).
    pub fn manifest(&self, file: &str, body: &str) -> PathBuf {
        let plugins = target_dir().join("plugins");
        let text = body.replace("{plugins}", &plugins.display().to_string());
        let path = self.path().join("agents").join(format!("{file}.toml"));
        std::fs::write(&path, text).expect("manifest");
        path
    }

    /// Starts `agenthost serve` and waits until `/healthz` answers 200.
    pub fn start(&self) -> HostProcess {
        self.start_with_env(&[])
    }

    /// [`Scenario::start`] with extra environment variables for the host process.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> HostProcess {
        let log_path = self.path().join(format!("host-{}.log", rand_suffix()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(agenthost_bin())
            .arg("serve")
            .arg("--config")
            .arg(self.path().join("agenthost.toml"))
            .current_dir(self.path())
            .env("AGENTHOST_LOG", "info,agenthost=debug,librdkafka=debug")
            .env_remove("AGENTHOST_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agenthost serve");
        let mut host = HostProcess {
            child: Some(child),
            url: self.url(),
            log: log_path,
        };
        host.wait_ready(Duration::from_secs(120));
        host
    }

    /// The audit log's entries matching `args` (`agenthost audit --format json ARGS`).
    pub fn audit(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["audit", "--format", "json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs an `agenthost` client verb against this scenario's host.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(agenthost_bin())
            .args(args)
            .arg("--host")
            .arg(self.url())
            .current_dir(self.path())
            .env_remove("AGENTHOST_ADMIN_TOKEN")
            .output()
            .expect("run agenthost")
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A running `agenthost serve`; killed when dropped.
pub struct HostProcess {
    child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
}

impl HostProcess {
    fn wait_ready(&mut self, limit: Duration) {
        let client = reqwest::blocking::Client::new();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "agenthost exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if client
                .get(format!("{}/healthz", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "agenthost not ready after {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no chance to flush or commit anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("host running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait for agenthost")
    }

    pub fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP client for the whole test binary: keep-alive connections, so a publishing loop is
/// not slowed (and made timing-dependent) by a TCP handshake per record.
pub fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::blocking::Client::new)
}

/// The admin token the host at `url` generated and shared with clients on this machine (every
/// host requires one on `/v1`; the scenarios set none, so each host makes its own).
pub fn admin_token(url: &str) -> String {
    agenthost::http::token::for_client(url)
        .unwrap_or_else(|| panic!("the host at {url} shared no admin token"))
}

/// Publishes through the HTTP API; returns the correlation id, or the error.
pub fn publish(
    url: &str,
    topic: &str,
    key: Option<&str>,
    payload: &str,
    correlation_id: Option<&str>,
) -> Result<String, String> {
    publish_stored(url, topic, key, payload, correlation_id).map(|r| r.correlation_id)
}

/// Publishes through the HTTP API; returns where the record was stored, or the error.
pub fn publish_stored(
    url: &str,
    topic: &str,
    key: Option<&str>,
    payload: &str,
    correlation_id: Option<&str>,
) -> Result<agenthost::http::PublishResponse, String> {
    let mut body = serde_json::json!({ "payload": payload });
    if let Some(k) = key {
        body["key"] = k.into();
    }
    if let Some(c) = correlation_id {
        body["headers"] = serde_json::json!({ "correlation-id": c });
    }
    let response = http()
        .post(format!("{url}/v1/topics/{topic}/records"))
        .bearer_auth(admin_token(url))
        .timeout(Duration::from_secs(10))
        .json(&body)
        .send()
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "HTTP {}: {}",
            response.status(),
            response.text().unwrap_or_default()
        ));
    }
    response.json().map_err(|e| e.to_string())
}

/// Reads records of `topic` from the beginning until `count` arrived or `timeout` passed.
pub fn consume(url: &str, topic: &str, count: usize, timeout: Duration) -> Vec<WireRecord> {
    let response = http()
        .get(format!("{url}/v1/topics/{topic}/records"))
        .bearer_auth(admin_token(url))
        .query(&[
            ("from_beginning", "true".to_string()),
            ("count", count.to_string()),
            ("timeout", format!("{}ms", timeout.as_millis())),
        ])
        .timeout(timeout + Duration::from_secs(10))
        .send()
        .expect("consume request");
    assert!(
        response.status().is_success(),
        "consume failed: {}",
        response.status()
    );
    let text = response.text().expect("consume body");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
        .collect()
}

/// Polls `/metrics` until `line_prefix` shows a value of at least `at_least`.
pub fn wait_for_metric(
    host: &HostProcess,
    line_prefix: &str,
    at_least: f64,
    timeout: Duration,
) -> f64 {
    let start = Instant::now();
    let mut last = 0.0;
    while start.elapsed() < timeout {
        last = metric_value(&host.metrics(), line_prefix);
        if last >= at_least {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

/// The sum of every sample whose line starts with `line_prefix`.
pub fn metric_value(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A one-screen summary of an output, for assertion messages.
pub fn describe(output: &Output) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    s
}

//! Independent MCP peers the tests run against, installed by `cargo xtask test`: npm packages
//! under `tests/peers/node_modules`, Python packages in the interpreter on PATH, and the probe
//! server in `tests/peers/`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/peers`.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// The entry point of `@modelcontextprotocol/server-everything`.
pub fn server_everything() -> PathBuf {
    let path =
        peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (it runs `npm ci` in tests/peers)",
        path.display()
    );
    path
}

/// The probe server (Python `mcp` SDK) that records what the host sends it.
pub fn probe_server() -> PathBuf {
    peers_dir().join("probe_mcp_server.py")
}

/// `[mcp.servers.NAME]` for one of the pricing example's MCP servers (`examples/pricing/SCRIPT`,
/// Python `mcp` SDK, over stdio), with extra arguments.
pub fn pricing_mcp_server(name: &str, script: &str, extra: &[&str]) -> String {
    let script = crate::workspace_root()
        .join("examples/pricing")
        .join(script)
        .display()
        .to_string();
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(extra);
    format!("[mcp.servers.{name}]\ncommand = {}\n", toml_array(&command))
}

/// A TOML array literal of strings.
pub fn toml_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("{:?}", s.to_string()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// `[mcp.servers.NAME]` for `server-everything` over stdio.
pub fn everything_stdio(name: &str) -> String {
    let js = server_everything();
    format!(
        "[mcp.servers.{name}]\ncommand = {}\n",
        toml_array(&["node", &js.display().to_string(), "stdio"])
    )
}

/// `[mcp.servers.NAME]` for `mcp-server-time` (PyPI) over stdio.
pub fn time_stdio(name: &str) -> String {
    format!(
        "[mcp.servers.{name}]\ncommand = {}\n",
        toml_array(&[
            "python3",
            "-m",
            "mcp_server_time",
            "--local-timezone",
            "UTC"
        ])
    )
}

/// A process killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Peer {
    /// `server-everything` over streamable HTTP on `port`, at `http://127.0.0.1:{port}/mcp`.
    pub fn everything_http(port: u16) -> Self {
        let child = Command::new("node")
            .arg(server_everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything (node)");
        let mut peer = Self { child, port };
        peer.wait_listening(Duration::from_secs(30));
        peer
    }

    /// `tests/peers/http_server.py` (Python's http.server) on `port`, logging every request it
    /// receives to `log`.
    pub fn http_origin(port: u16, log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).expect("http origin log");
        Self::python("http_server.py", port, &[], Stdio::null(), log.into())
    }

    /// `tests/peers/mcp_oauth_server.py` on `port`: an MCP server behind an authorization
    /// server (Python SDK) that rotates refresh tokens, logging each token request to `log`.
    pub fn oauth_mcp_server(port: u16, log: &std::path::Path) -> Self {
        let log = log.as_os_str();
        Self::python(
            "mcp_oauth_server.py",
            port,
            &[log],
            Stdio::null(),
            Stdio::null(),
        )
    }

    /// `tests/peers/otlp_receiver.py` (OTLP/HTTP, decoded with `opentelemetry-proto`) on
    /// `port`, writing one JSON line per span it receives to `spans`.
    pub fn otlp_receiver(port: u16, spans: &std::path::Path) -> Self {
        let out = std::fs::File::create(spans).expect("OTLP receiver output");
        Self::python("otlp_receiver.py", port, &[], out.into(), Stdio::null())
    }

    /// `tests/peers/SCRIPT PORT ARGS…` under python3, once it listens on `port`.
    fn python(
        script: &str,
        port: u16,
        args: &[&std::ffi::OsStr],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Self {
        let child = Command::new("python3")
            .arg(peers_dir().join(script))
            .arg(port.to_string())
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start tests/peers/{script} (python3): {e}"));
        let mut peer = Self { child, port };
        peer.wait_listening(Duration::from_secs(30));
        peer
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn wait_listening(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("peer exited early with {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("peer not listening on {} after {limit:?}", self.port);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

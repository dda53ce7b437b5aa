//! Helpers shared by the benchmarks (each bench includes this module).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The allocator the `agenthost` binary runs with (src/main.rs), so benchmarks measure it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Microseconds since the Unix epoch (comparable across processes on this machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A loopback port free at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `q` quantile of `sorted` (None when empty).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
}

/// The `q` quantile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    quantile(sorted, q).unwrap_or(0) as f64 / 1000.0
}

/// p50 and p99 of unsorted samples (0 for none).
pub fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| quantile(&samples, q).unwrap_or(0.0);
    (at(0.50), at(0.99))
}

/// CPU time (user and system) used so far by process `pid`, from `/proc/{pid}/stat`.
pub fn process_cpu(pid: u32) -> anyhow::Result<std::time::Duration> {
    use anyhow::Context;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces; utime
    // and stime are the 14th and 15th fields of the line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat has no command name")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("/proc/PID/stat is too short")?
            .parse()
            .context("/proc/PID/stat's CPU times are not numbers")
    };
    Ok(std::time::Duration::from_millis(
        (ticks(11)? + ticks(12)?) * 10,
    ))
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// `target/plugins/NAME.wasm` (as `cargo xtask plugins` builds it), which must exist.
pub fn plugin(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| workspace_root().join("target"), Into::into);
    let path = target.join(format!("plugins/{name}.wasm"));
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo xtask bench`",
        path.display()
    );
    Ok(path)
}

/// A child process killed when dropped.
pub struct ChildProcess(pub std::process::Child);

impl ChildProcess {
    /// `python3 tests/peers/SCRIPT PORT`, quiet.
    pub fn python_peer(script: &str, port: u16) -> anyhow::Result<Self> {
        Ok(Self(
            std::process::Command::new("python3")
                .arg(workspace_root().join("tests/peers").join(script))
                .arg(port.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?,
        ))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on the loopback `port`.
pub async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A host in this process serving its HTTP router on a loopback port, with one agent deployed
/// from `manifest` (no artifact cache: every run compiles).
pub struct InProcessHost {
    pub host: Arc<agenthost::host::Host>,
    pub port: u16,
    scratch: PathBuf,
}

impl InProcessHost {
    pub async fn start(name: &str, manifest: &str) -> anyhow::Result<Self> {
        let scratch =
            std::env::temp_dir().join(format!("agenthost-{name}-bench-{}", std::process::id()));
        std::fs::create_dir_all(scratch.join("agents"))?;
        std::fs::write(scratch.join(format!("agents/{name}.toml")), manifest)?;
        let port = free_port()?;
        let config = agenthost::config::HostConfig::parse(
            &scratch.join("agenthost.toml"),
            &format!("listen = \"127.0.0.1:{port}\"\n[runtime]\ncache = false\n"),
        )?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let host = agenthost::host::Host::open(config).await?;
        let app = agenthost::http::router(agenthost::http::AppState {
            host: host.clone(),
            token: None,
        });
        // The listener `agenthost serve` runs (TCP_NODELAY on each connection, its bounds),
        // so clients that keep connections alive see what they would against the binary.
        let bounds = agenthost::http::server::ConnectionBounds {
            max_connections: host.config.http.max_connections,
            header_timeout: host.config.http.header_timeout,
        };
        tokio::spawn(agenthost::http::server::serve(
            listener,
            app,
            bounds,
            host.stop.clone(),
        ));
        host.deploy_configured().await;
        Ok(Self {
            host,
            port,
            scratch,
        })
    }

    pub async fn stop(self) {
        self.host.shutdown(Duration::from_secs(5)).await;
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

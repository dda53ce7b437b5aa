//! The tansu broker (Kafka-compatible, crates.io) for the Kafka tests, the benchmarks and
//! `cargo xtask demo --kafka`: where its binary is, and one broker process with in-memory
//! storage on a loopback port, killed when dropped.
//!
//! One place for it, so the tests, the benchmarks and the demo start the broker alike.

use anyhow::{Context as _, Result, bail};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu release the tests run against (`cargo xtask test` installs it with the
/// `dynostore` feature, without which in-memory storage refuses to start).
pub const VERSION: &str = "0.6.0";

/// How long a starting broker may take to accept connections.
const START_BOUND: Duration = Duration::from_secs(30);

/// The tansu binary: `$AGENTHOST_TANSU`, else `tansu` on `PATH`, else cargo's bin directory
/// (`$CARGO_HOME/bin`, `~/.cargo/bin`), where `cargo install` puts it.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AGENTHOST_TANSU") {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|dir| dir.join("tansu"))
            .find(|t| t.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path.or_else(|| {
        cargo_home
            .map(|h| h.join("bin/tansu"))
            .filter(|t| t.is_file())
    })
}

/// A running tansu broker; killed (SIGKILL, which a frozen broker obeys too) when dropped.
pub struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    /// Starts `bin` on `127.0.0.1:port` with in-memory storage, in `dir`, its log written to
    /// `log`, and returns once it accepts connections. tansu listens on IPv4 only, so clients
    /// must use `127.0.0.1`, never `localhost`.
    pub fn start(bin: &Path, port: u16, dir: &Path, log: &Path) -> Result<Self> {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("something is already listening on 127.0.0.1:{port}");
        }
        let url = format!("tcp://127.0.0.1:{port}");
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create the broker log {}", log.display()))?;
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .current_dir(dir)
            // tansu reads these too; one left in the environment would override the arguments.
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut broker = Self { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = broker.child.try_wait()? {
                bail!(
                    "tansu exited with {status}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if started.elapsed() > START_BOUND {
                bail!(
                    "tansu did not listen on 127.0.0.1:{port} within {}s; see {}",
                    START_BOUND.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// `127.0.0.1:port`, for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id (e.g. to read its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `SIGSTOP`: the broker stops answering without closing its connections.
    pub fn freeze(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// `SIGCONT`: a frozen broker answers again.
    pub fn thaw(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_that_is_not_a_broker_is_reported_with_its_output() {
        let dir = std::env::temp_dir();
        let log = dir.join(format!("tansu-harness-test-{}.log", std::process::id()));
        // A port nothing listens on: bound by the OS, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port")
            .port();
        // `false` exits at once without listening: the start must say so, not wait 30 s.
        let err = Broker::start(Path::new("false"), port, &dir, &log)
            .err()
            .expect("a process that exits is not a broker");
        assert!(err.to_string().contains("tansu exited"), "{err:#}");
        let _ = std::fs::remove_file(log);
    }
}

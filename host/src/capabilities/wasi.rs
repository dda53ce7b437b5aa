//! The restricted WASI every agent gets: clocks, random, stdio routed to the host's log, and
//! environment variables and directories only as `capabilities.env` / `capabilities.files` grant.
//! Sockets are never linked.

use super::budget::LogBudget;
use super::caller::Caller;
use super::env::EnvGrant;
use super::files::FilesGrant;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCliView as _};
use wasmtime_wasi::clocks::WasiClocksView as _;
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::random::WasiRandomView as _;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// What every agent has: clocks, random, stdio into the host's log, and the environment
/// `capabilities.env` fills. Sockets are never among them.
pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: None,
    interfaces: &[
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:clocks/wall-clock",
        "wasi:clocks/monotonic-clock",
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
    ],
    required: None,
    validate: super::capability::nothing_to_validate,
    grants: super::capability::no_grant_lines,
};

/// A fresh WASI context for one instance: stdio into the host's log (stderr's last lines kept
/// for the failure reason), no sockets, and the variables and directories the agent is granted.
pub fn context(
    caller: &Caller,
    stderr_tail: &StderrTail,
    budget: &Arc<LogBudget>,
    env: &EnvGrant,
    files: &FilesGrant,
) -> anyhow::Result<WasiCtx> {
    let mut b = WasiCtxBuilder::new();
    b.stdout(LogStream {
        caller: caller.clone(),
        stream: "stdout",
        tail: None,
        budget: budget.clone(),
    });
    b.stderr(LogStream {
        caller: caller.clone(),
        stream: "stderr",
        tail: Some(stderr_tail.clone()),
        budget: budget.clone(),
    });
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    env.apply(&mut b);
    files.preopen(&mut b)?;
    Ok(b.build())
}

struct HasIo;
impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the WASI interfaces agents may use — deliberately not `wasi:sockets`, so a component
/// that imports sockets fails to link instead of getting a stub.
pub fn add_to_linker<T: wasmtime_wasi::WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> anyhow::Result<()> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::filesystem::WasiFilesystem;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi_io::bindings::wasi::io;

    let l = linker;
    io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, |t| t.clocks())?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, |t| t.clocks())?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::environment::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, |t| t.cli())?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, |t| t.filesystem())?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, |t| t.filesystem())?;
    Ok(())
}

/// The last lines a guest wrote to stderr: when it traps, they usually say why (a Rust panic
/// message), and they go into the failure reason and the dead-letter headers.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    const KEEP: usize = 4;

    fn push(&self, line: &str) {
        // Rust's panic hint adds nothing to a failure reason.
        if line.starts_with("note: run with `RUST_BACKTRACE") {
            return;
        }
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == Self::KEEP {
            lines.pop_front();
        }
        lines.push_back(crate::text::truncate(line, 512).into_owned());
    }

    /// The kept lines joined with " | ", if the guest wrote any.
    /// Forgets what was kept (a reused instance starting a new invocation).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn text(&self) -> Option<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!lines.is_empty()).then(|| {
            lines
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }
}

/// A guest's stdout or stderr, written line by line into the host's log.
#[derive(Clone)]
struct LogStream {
    caller: Caller,
    stream: &'static str,
    tail: Option<StderrTail>,
    budget: Arc<LogBudget>,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            target: self.clone(),
            line: Vec::new(),
        })
    }
}

/// Longest line kept before it is logged in pieces.
const MAX_LINE: usize = 8 * 1024;

struct LineLogger {
    target: LogStream,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        // One line in the host log, whatever the guest wrote: no forged lines or escapes.
        let text = crate::text::escape_control(text.trim_end());
        // The tail keeps the last lines even past the budget: they explain a trap.
        if let Some(tail) = &self.target.tail {
            tail.push(text.trim_end());
        }
        if !self.target.budget.admit() {
            self.line.clear();
            return;
        }
        let c = &self.target.caller;
        tracing::info!(target: "agent", agent = &*c.agent, version = &*c.version,
            correlation_id = &*c.correlation_id(), stream = self.target.stream, "{}", text.trim_end());
        self.line.clear();
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                self.emit();
            } else {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.emit();
                }
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}

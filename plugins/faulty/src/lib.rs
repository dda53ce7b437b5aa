//! `faulty`: a test agent whose behaviour on each event is chosen by the payload text
//! (surrounding whitespace ignored):
//!
//! | payload  | behaviour                                                            |
//! |----------|----------------------------------------------------------------------|
//! | `trap`   | panics: the invocation traps                                         |
//! | `retry`  | returns `Failure::Retry("asked to retry")`                           |
//! | `reject` | returns `Failure::Reject("asked to reject")`                         |
//! | `loop`   | spins forever (for the timeout / fuel limits)                        |
//! | `alloc`  | allocates 1 MiB blocks and keeps them until allocation fails, which aborts (traps); for the memory limit |
//! | `flood`  | writes 5,000 log lines through the `log` import and 5,000 to stdout, then echoes |
//! | `big`    | publishes a 2 MiB payload to `out` (for limits.publish_size)         |
//! | `slow:…` | sleeps 20 ms (a host clock wait), then echoes; builds a backlog in crash tests |
//! | `hold:MS` | sleeps MS milliseconds (a host clock wait, no CPU), then echoes; holds an instance |
//! | `env:NAME`   | publishes `NAME=<value>` or `NAME unset` (what the sandbox's environment shows) |
//! | `read:PATH`  | publishes `read PATH: <contents>` or `read PATH failed: <error>`  |
//! | `write:PATH` | publishes `write PATH: ok` or `write PATH failed: <error>`        |
//! | `mkdir:PATH` / `rm:PATH` | creates a directory / removes a file, publishing the same way |
//! | other    | republishes the event like `echo`: payload, key and headers to `out`  |
//!
//! A2A messages get the same treatment from their text; the fallback answers with the text.
//! A message `ask` is answered with the question "what next?" and the task state
//! `input-required` (for continuing and following interrupted tasks).
//!
//! Config: `out` — the topic for the fallback (missing → reject naming the key).
//!
//! Imports: `bus`, `config` and `log`, and `batch` (built with the SDK's `batch` feature: it
//! exports `on-events` too, and each event of a batch behaves as above).

use agenthost_sdk::{Agent, Card, Event, Failure, Message, Reply, Skill, TaskState, bus, config};
use std::hint::black_box;

struct Faulty;

/// What a payload asks for.
enum Behaviour {
    Trap,
    Retry,
    Reject,
    Loop,
    Alloc,
    /// Sleeps this many milliseconds, then echoes.
    Slow(u64),
    Flood,
    Big,
    Echo,
}

impl Behaviour {
    fn of(payload: &[u8]) -> Self {
        match std::str::from_utf8(payload).map(str::trim) {
            Ok("trap") => Behaviour::Trap,
            Ok("retry") => Behaviour::Retry,
            Ok("reject") => Behaviour::Reject,
            Ok("loop") => Behaviour::Loop,
            Ok("alloc") => Behaviour::Alloc,
            Ok(p) if p.starts_with("slow:") => Behaviour::Slow(20),
            Ok(p) if p.starts_with("hold:") => Behaviour::Slow(p[5..].parse().unwrap_or_default()),
            Ok("flood") => Behaviour::Flood,
            Ok("big") => Behaviour::Big,
            _ => Behaviour::Echo,
        }
    }

    /// Misbehave as asked; returns only for [`Behaviour::Echo`].
    fn act(self) -> Result<(), Failure> {
        match self {
            Behaviour::Trap => panic!("faulty: asked to trap"),
            Behaviour::Retry => Err(Failure::retry("asked to retry")),
            Behaviour::Reject => Err(Failure::reject("asked to reject")),
            Behaviour::Loop => {
                let mut spins: u64 = 0;
                loop {
                    spins = black_box(spins.wrapping_add(1));
                }
            }
            Behaviour::Alloc => {
                const BLOCK: usize = 1 << 20;
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Infallible allocation: when linear memory cannot grow any more the
                    // allocator reports the failure and the invocation aborts (traps).
                    let mut block = Vec::with_capacity(BLOCK);
                    block.resize(BLOCK, 0xa5_u8);
                    hoard.push(black_box(block));
                }
            }
            Behaviour::Flood => {
                for i in 0..5_000 {
                    agenthost_sdk::info!("flood line {i}");
                    println!("flood stdout line {i}");
                }
                Ok(())
            }
            Behaviour::Big => {
                let out = config::require("out")?;
                bus::publish(&out, vec![b'x'; 2 << 20])?;
                Ok(())
            }
            Behaviour::Slow(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            }
            Behaviour::Echo => Ok(()),
        }
    }
}

impl Agent for Faulty {
    fn card() -> Card {
        Card::new("faulty", env!("CARGO_PKG_VERSION"))
            .description("Misbehaves on request, to test retries, dead-letters and limits")
            .skill(
                Skill::new("faulty", "Misbehave")
                    .description("trap, retry, reject, loop or alloc; anything else is echoed")
                    .tag("test")
                    .example("retry"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        if let Some(report) = std::str::from_utf8(&event.payload).ok().and_then(probe) {
            bus::publish(&config::require("out")?, report.into_bytes())?;
            return Ok(());
        }
        Behaviour::of(&event.payload).act()?;
        bus::Record::forward(config::require("out")?, event).publish()?;
        Ok(())
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let text = message.text();
        if text.trim() == "ask" {
            return Ok(Reply::text("what next?").with_state(TaskState::InputRequired));
        }
        Behaviour::of(text.as_bytes()).act()?;
        Ok(Reply::text(text))
    }
}

/// Reports what the sandbox lets the agent see of the environment and the filesystem.
fn probe(payload: &str) -> Option<String> {
    let payload = payload.trim();
    if let Some(name) = payload.strip_prefix("env:") {
        return Some(match std::env::var(name) {
            Ok(value) => format!("{name}={value}"),
            Err(_) => format!("{name} unset"),
        });
    }
    if let Some(path) = payload.strip_prefix("read:") {
        return Some(match std::fs::read_to_string(path) {
            Ok(text) => format!("read {path}: {}", text.trim_end()),
            Err(e) => format!("read {path} failed: {e}"),
        });
    }
    type Op = fn(&str) -> std::io::Result<()>;
    let ops: [(&str, &str, Op); 3] = [
        ("write:", "write", |p| {
            std::fs::write(p, b"written by faulty")
        }),
        ("mkdir:", "mkdir", |p| std::fs::create_dir(p)),
        ("rm:", "rm", |p| std::fs::remove_file(p)),
    ];
    for (prefix, verb, op) in ops {
        if let Some(path) = payload.strip_prefix(prefix) {
            return Some(match op(path) {
                Ok(()) => format!("{verb} {path}: ok"),
                Err(e) => format!("{verb} {path} failed: {e}"),
            });
        }
    }
    None
}

agenthost_sdk::export_agent!(Faulty);

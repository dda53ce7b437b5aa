//! `hostile`: an agent that attacks its sandbox, one attack per event, chosen by the payload
//! text (surrounding whitespace ignored). The security suite (`tests/it/hostile.rs`) runs each
//! against a host that also serves a bystander and checks the host contains it.
//!
//! | payload           | attack                                                                  |
//! |-------------------|-------------------------------------------------------------------------|
//! | `loop`            | spins forever                                      → `limits.timeout`   |
//! | `alloc`           | grows linear memory until refused, then traps      → `limits.memory`    |
//! | `recurse`         | unbounded recursion                                → wasm stack         |
//! | `trap`            | panics                                                                  |
//! | `escape-file`     | reads `/etc/passwd`, `..` and symlink escapes from its `/data` preopen  |
//! | `forbidden-http:URL` | GETs a URL its `capabilities.http` does not list                     |
//! | `flood`           | logs 20,000 lines, then publishes to `out` until refused → `limits.publishes` |
//! | `big`             | publishes a 100 MB payload to `out`               → `limits.publish_size` |
//! | `forbidden-topic` | publishes to `secrets.exfiltrated.v1`, which no grant names             |
//! | `resource-flood`  | creates wasi:http header sets without end, each holding 32 KiB, and keeps them → the instance's resource bound |
//! | `audit-flood`     | reads the always-granted config 2,000 times with a 64 KiB key, then fails → the audit log stays bounded |
//! | `deny-loop`       | tries `secrets.exfiltrated.v1` 1,000 times, ignoring each denial, then publishes to `out` → `limits.publishes` (denials are not free) |
//!
//! `remember:S` / `recall:S` try to carry data from one invocation into the next: `remember`
//! keeps S in a static and in leaked heap memory (masked, so only that copy matches) and
//! publishes `remembered`; `recall` publishes `ESCAPED …` naming what its instance still holds
//! (the static, a copy anywhere in linear memory), else `recall: fresh memory`. With the host's
//! fresh instance per event the second must find nothing.
//!
//! `fetch:URL` is the well-behaved control for HTTP: it GETs the URL and publishes
//! `HTTP <status> from <final URL>: <body>` to `out`.
//!
//! Anything else is published to `out` unchanged (the suite's proof that the agent works when
//! it behaves). An attack that *succeeds* publishes `ESCAPED …` to `out`, which the suite fails
//! on; one that is refused fails the event with the host's answer, so the dead letter says
//! what stopped it.
//!
//! Config: `out`. Imports: `bus`, `config`, `log`, WASI filesystem and stdout, `wasi:http`.

use agenthost_sdk::{Agent, Card, Event, Failure, Message, Reply, Skill, bus, config, http};
use std::hint::black_box;

struct Hostile;

/// The topic no manifest in the suite grants.
const FORBIDDEN_TOPIC: &str = "secrets.exfiltrated.v1";

/// Paths that would leave the `/data` preopen if the sandbox let them.
const ESCAPES: [&str; 5] = [
    "/etc/passwd",
    "/data/../secret.txt",
    "/data/../../../../../../etc/passwd",
    // Symlinks the suite plants inside the granted directory: one relative, one absolute.
    "/data/up/secret.txt",
    "/data/passwd-link",
];

/// What `remember` stored in this instance's static, if anything.
static REMEMBERED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// `secret` as `remember` leaves it in the heap: masked, so the payloads that name the secret
/// do not match it, only the copy an earlier invocation leaked.
fn masked(secret: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(secret.len() + 8);
    bytes.extend(
        b"hostile:"
            .iter()
            .chain(secret.as_bytes())
            .map(|b| b ^ 0x5a),
    );
    bytes
}

fn remember(secret: &str, out: &str) -> Result<(), Failure> {
    *REMEMBERED.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret.to_owned());
    std::mem::forget(black_box(masked(secret)));
    bus::publish(out, "remembered")?;
    Ok(())
}

fn recall(secret: &str, out: &str) -> Result<(), Failure> {
    let mut kept = Vec::new();
    if let Some(value) = REMEMBERED.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        kept.push(format!("static kept across invocations: {value}"));
    }
    if find_in_memory(&masked(secret)).is_some() {
        kept.push("heap kept across invocations".to_owned());
    }
    if kept.is_empty() {
        bus::publish(out, "recall: fresh memory")?;
    } else {
        bus::publish(out, format!("ESCAPED {}", kept.join("; ")))?;
    }
    Ok(())
}

/// The address of a copy of `needle` anywhere in linear memory other than `needle` itself.
#[cfg(target_arch = "wasm32")]
fn find_in_memory(needle: &[u8]) -> Option<usize> {
    let size = core::arch::wasm32::memory_size(0) * 65536;
    let own = needle.as_ptr() as usize;
    // Volatile reads: the whole memory, including what the allocator considers free.
    let byte = |at: usize| unsafe { core::ptr::read_volatile(at as *const u8) };
    (1..size.saturating_sub(needle.len()))
        .find(|&at| at != own && needle.iter().enumerate().all(|(i, &b)| byte(at + i) == b))
}

#[cfg(not(target_arch = "wasm32"))]
fn find_in_memory(_needle: &[u8]) -> Option<usize> {
    panic!("hostile: recall scans linear memory only in wasm")
}

fn spin() -> ! {
    let mut spins: u64 = 0;
    loop {
        spins = black_box(spins.wrapping_add(1));
    }
}

#[cfg(target_arch = "wasm32")]
fn grow_memory() -> ! {
    loop {
        // 64 pages = 4 MiB at a time, straight from the engine, bypassing the allocator.
        if core::arch::wasm32::memory_grow(0, 64) == usize::MAX {
            panic!("hostile: memory.grow refused");
        }
    }
}

/// Off wasm (the workspace's unit-test build of the plugins) there is no `memory.grow`; the
/// attack only ever runs as a component.
#[cfg(not(target_arch = "wasm32"))]
fn grow_memory() -> ! {
    panic!("hostile: the alloc attack runs only in wasm")
}

/// Not a tail call and opaque to the optimiser, so every level costs a wasm stack frame.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == 0 {
        return 0;
    }
    black_box(recurse(depth - 1)).wrapping_add(depth)
}

fn escape_files(out: &str) -> Result<(), Failure> {
    let mut refused = Vec::new();
    for path in ESCAPES {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                bus::publish(out, format!("ESCAPED {path}: {text}"))?;
                return Ok(());
            }
            Err(e) => refused.push(format!("{path}: {e}")),
        }
    }
    Err(Failure::reject(format!(
        "escape-file: every escape was refused ({})",
        refused.join("; ")
    )))
}

fn forbidden_http(url: &str, out: &str) -> Result<(), Failure> {
    match http::get(url) {
        Ok(response) => {
            bus::publish(
                out,
                format!("ESCAPED {url}: HTTP {} reached", response.status),
            )?;
            Ok(())
        }
        Err(e) => Err(Failure::reject(format!("forbidden-http: {}", e.reason()))),
    }
}

fn flood(out: &str) -> Result<(), Failure> {
    for i in 0..10_000 {
        agenthost_sdk::info!("flood line {i}");
        println!("flood stdout line {i}");
    }
    let mut sent: u64 = 0;
    loop {
        if let Err(e) = bus::publish(out, format!("flood {sent}")) {
            return Err(Failure::reject(format!(
                "flood: refused after {sent} records: {}",
                e.reason()
            )));
        }
        sent += 1;
    }
}

impl Agent for Hostile {
    fn card() -> Card {
        Card::new("hostile", env!("CARGO_PKG_VERSION"))
            .description("Attacks its sandbox on request, for the security suite")
            .skill(
                Skill::new("attack", "Attack the sandbox")
                    .description("loop, alloc, recurse, trap, escape-file, forbidden-http:URL, flood, big, forbidden-topic, deny-loop, audit-flood, resource-flood")
                    .tag("test"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let out = config::require("out")?;
        let text = String::from_utf8_lossy(&event.payload).trim().to_owned();
        match text.as_str() {
            "loop" => spin(),
            "alloc" => grow_memory(),
            "recurse" => {
                let depth = recurse(black_box(u64::MAX));
                Err(Failure::reject(format!("recursion ended at {depth}?")))
            }
            "trap" => panic!("hostile: asked to trap"),
            "escape-file" => escape_files(&out),
            "flood" => flood(&out),
            "big" => {
                bus::publish(&out, vec![b'x'; 100_000_000])?;
                Ok(())
            }
            "forbidden-topic" => {
                bus::publish(FORBIDDEN_TOPIC, b"exfiltrated".to_vec())?;
                Ok(())
            }
            "resource-flood" => {
                let value = vec![b'v'; 32 << 10];
                let mut held = Vec::new();
                for _ in 0..1_000_000 {
                    let fields = wasip2::http::types::Fields::new();
                    let _ = fields.append("x-filler", &value);
                    held.push(fields);
                }
                Err(Failure::reject(format!(
                    "ESCAPED resource-flood: held {} header sets",
                    held.len()
                )))
            }
            "audit-flood" => {
                let key = "k".repeat(64 << 10);
                for _ in 0..2_000 {
                    black_box(config::get(&key));
                }
                Err(Failure::reject(
                    "audit-flood: 2,000 config reads with a 64 KiB key",
                ))
            }
            "deny-loop" => {
                for _ in 0..1_000 {
                    let _ = bus::publish(FORBIDDEN_TOPIC, b"again".to_vec());
                }
                // Had the denials been free, this would go out.
                bus::publish(&out, "ESCAPED: published after 1,000 denials")?;
                Ok(())
            }
            other => match (
                other.strip_prefix("forbidden-http:"),
                other.strip_prefix("fetch:"),
            ) {
                _ if other.starts_with("remember:") => remember(&other[9..], &out),
                _ if other.starts_with("recall:") => recall(&other[7..], &out),
                (Some(url), _) => forbidden_http(url, &out),
                (_, Some(url)) => {
                    let r = http::get(url)?;
                    bus::publish(
                        &out,
                        format!("HTTP {} from {}: {}", r.status, r.url, r.text()),
                    )?;
                    Ok(())
                }
                _ => {
                    bus::Record::new(out, event.payload)
                        .key_opt(event.key)
                        .publish()?;
                    Ok(())
                }
            },
        }
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        Ok(Reply::text(message.text()))
    }
}

agenthost_sdk::export_agent!(Hostile);

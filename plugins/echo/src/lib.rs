//! `echo`: republishes every event unchanged and answers every A2A message with its own text.
//!
//! - **Bus**: for each event, sends (`bus.send`) the payload unchanged, with the same key and the same
//!   headers, to the topic named by the `out` config key. The headers the host owns
//!   (`correlation-id`, `agenthost-agent`, `agenthost-agent-version`) are not copied: the host
//!   sets them on every record an agent publishes, so the copy carries echo's provenance, not
//!   the upstream one, and the correlation id flows through the host. A missing `out` rejects
//!   the event (dead-letter) with a reason naming the key; a publish the manifest does not grant
//!   rejects it too (`denied`), a failed publish is retried.
//! - **A2A**: answers a message with the concatenation of its text parts, task completed.
//!
//! Config: `out` (required for events) — the topic to republish to.
//!
//! Imports: `bus` and `config`, and `batch`: echo is built with the SDK's `batch` feature, so it
//! also exports `on-events` and takes several records per invocation where the manifest sets
//! `delivery.batch` above 1.

use agenthost_sdk::{Agent, Card, Event, Failure, Message, Reply, Skill, batch, bus, config};

struct Echo;

impl Agent for Echo {
    fn card() -> Card {
        Card::new("echo", env!("CARGO_PKG_VERSION"))
            .description("Republishes every event unchanged and answers messages with their text")
            .skill(
                Skill::new("echo", "Echo")
                    .description("Answers with the text it was sent")
                    .tag("test")
                    .example("hello"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        copy(event, &config::require("out")?)
    }

    /// A batch reads `out` once, then copies each event on its behalf (`batch::each` names
    /// the event to the host, so each copy carries its own event's correlation id).
    fn on_events(events: Vec<Event>) -> Vec<Result<(), Failure>> {
        match config::require("out") {
            Ok(out) => batch::each(events, |event| copy(event, &out)),
            Err(missing) => events.iter().map(|_| Err(missing.clone())).collect(),
        }
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        Ok(Reply::text(message.text()))
    }
}

/// Sends `event`'s payload, key and headers to `out`.
fn copy(event: Event, out: &str) -> Result<(), Failure> {
    // `send`: the host commits the event's offset once the copy is acknowledged, so echo need
    // not wait for the broker itself.
    bus::Record::forward(out, event).send()?;
    Ok(())
}

agenthost_sdk::export_agent!(Echo);

//! `delegate`: hands each event's text to another agent over A2A and publishes the answer.
//!
//! # Input
//!
//! ```json
//! {"peer": "echo", "text": "hello"}
//! ```
//!
//! `peer` is an agent name on this host, a skill id, or an A2A URL; the manifest's
//! `capabilities.a2a` must list it. Anything else — malformed JSON, a missing field — rejects
//! the event with a reason naming what was wrong.
//!
//! # Output
//!
//! The text of the peer's answer (its message and artifacts), published as it is to the topic
//! in config `out`, keyed like the input, with the header `task-state` (`completed`, …)
//! and `task-id` when the peer made a task (`a2a-*` headers are the host's own).
//!
//! # Failures
//!
//! A peer the manifest does not grant rejects the event (the host's `denied`); one that cannot
//! be reached retries it (`failed`). A peer that answered but did not complete: `failed` →
//! retried; `rejected`, `canceled`, `input-required` or `auth-required` → rejected, since
//! this agent cannot give more input.
//!
//! Config: `out` (required). Imports: `a2a`, `bus`, `config`.

use agenthost_sdk::{Agent, Card, Event, Failure, Skill, TaskState, a2a, bus, config};
use serde::Deserialize;

struct Delegate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    peer: String,
    text: String,
}

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Submitted => "submitted",
        TaskState::Working => "working",
        TaskState::InputRequired => "input-required",
        TaskState::AuthRequired => "auth-required",
        TaskState::Completed => "completed",
        TaskState::Failed => "failed",
        TaskState::Canceled => "canceled",
        TaskState::Rejected => "rejected",
    }
}

impl Agent for Delegate {
    fn card() -> Card {
        Card::new("delegate", env!("CARGO_PKG_VERSION"))
            .description(
                "Sends each event's text to a peer agent over A2A and publishes the answer",
            )
            .skill(
                Skill::new("delegate", "Delegate")
                    .description("Forwards {peer, text} to the peer and publishes its reply")
                    .tag("a2a")
                    .tag("operations"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let out = config::require("out")?;
        let request: Request = serde_json::from_slice(&event.payload).map_err(|error| {
            Failure::reject(format!(
                "expected {{\"peer\", \"text\"}} at {}: {error}",
                event.position()
            ))
        })?;
        let answer = a2a::send_text(&request.peer, &request.text)?;
        let state = state_name(answer.state);
        match answer.state {
            TaskState::Completed => {}
            TaskState::Failed => {
                return Err(Failure::retry(format!(
                    "{} failed the task: {}",
                    request.peer,
                    answer.text()
                )));
            }
            _ => {
                return Err(Failure::reject(format!(
                    "{} ended the task {state}: {}",
                    request.peer,
                    answer.text()
                )));
            }
        }
        let mut record = bus::Record::new(out, answer.text().into_bytes())
            .key_opt(event.key)
            .header("task-state", state);
        if let Some(task_id) = &answer.task_id {
            record = record.header("task-id", task_id.as_str());
        }
        record.publish()?;
        Ok(())
    }
}

agenthost_sdk::export_agent!(Delegate);

//! {{name}}: republishes every event of `{{name}}.in.v1` to the topic in config `out`,
//! unchanged — payload, key and headers — and answers A2A messages with their own text.

use agenthost_sdk::{Agent, Card, Event, Failure, Message, Reply, Skill, bus, config};

struct {{type}};

impl Agent for {{type}} {
    fn card() -> Card {
        Card::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Republishes every event unchanged")
            .skill(Skill::new("{{name}}.echo", "Echo").description("Answers with the text it got"))
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        // A missing key is a rejection naming it: the event is dead-lettered with that reason.
        let out = config::require("out")?;
        // The host commits the event's offset only once this returns Ok.
        copy(&out, event).publish()?;
        Ok(())
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        Ok(Reply::text(message.text()))
    }
}

/// The record republished for `event`: the same payload, key and headers, on `out`.
fn copy(out: &str, event: Event) -> bus::Record {
    bus::Record::forward(out, event)
}

agenthost_sdk::export_agent!({{type}});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_keeps_the_payload_and_the_key() {
        let event = Event {
            topic: "{{name}}.in.v1".into(),
            partition: 0,
            offset: 7,
            key: Some(b"k".to_vec()),
            payload: b"hello".to_vec(),
            headers: Vec::new(),
            timestamp_ms: 0,
            correlation_id: "c".into(),
            attempt: 1,
        };
        let record = copy("{{name}}.out.v1", event).into_outgoing();
        assert_eq!(record.topic, "{{name}}.out.v1");
        assert_eq!(record.payload, b"hello");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
    }
}

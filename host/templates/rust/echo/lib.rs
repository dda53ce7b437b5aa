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
    use agenthost_sdk::testing::{TestEvent as _, TestHost, event};

    /// The handler runs natively against a fake host granted what agent.toml grants.
    #[test]
    fn an_event_is_republished_with_its_payload_and_key() {
        let host = TestHost::from_manifest(include_str!("../agent.toml")).unwrap();
        host.on_event::<{{type}}>(event("{{name}}.in.v1", "hello").key("k"))
            .unwrap();
        let published = host.published();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].topic, "{{name}}.out.v1");
        assert_eq!(published[0].payload, b"hello");
        assert_eq!(published[0].key.as_deref(), Some(&b"k"[..]));
    }
}

//! {{name}}: counts the events of `{{name}}.in.v1` per key in its state, and publishes each new
//! count to the topic in config `out` as `{"key": "…", "count": N}`, keyed like the event.
//! State survives restarts and new versions of the agent; `capabilities.state` is its quota.

use agenthost_sdk::{Agent, Card, Event, Failure, bus, config, state};
use serde::{Deserialize, Serialize};

struct {{type}};

/// What is stored per key, and published.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Count {
    key: String,
    count: u64,
}

impl Agent for {{type}} {
    fn card() -> Card {
        Card::new("{{name}}", env!("CARGO_PKG_VERSION")).description("Counts events per key")
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let out = config::require("out")?;
        let key = event.key_str().unwrap_or("(no key)").to_owned();
        let state_key = format!("count/{key}");
        // A stored value that is not a count is a rejection naming the key.
        let count = next(state::get_json(&state_key)?, &key);
        state::set_json(&state_key, &count)?;
        // A retried event counts again: at-least-once delivery. Keep the offsets of counted
        // events in state too if a count must be exact.
        bus::Record::json(&out, &count)?
            .key_opt(event.key)
            .publish()?;
        Ok(())
    }
}

/// The count after one more event of `key`.
fn next(previous: Option<Count>, key: &str) -> Count {
    let count = previous.map_or(0, |c| c.count) + 1;
    Count {
        key: key.to_owned(),
        count,
    }
}

agenthost_sdk::export_agent!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use agenthost_sdk::testing::{TestEvent as _, TestHost, event};

    #[test]
    fn each_event_adds_one_to_its_keys_count() {
        let first = next(None, "a");
        assert_eq!(first.count, 1);
        assert_eq!(next(Some(first), "a").count, 2);
    }

    /// The handler runs natively against a fake host granted what agent.toml grants.
    #[test]
    fn counts_are_kept_per_key_and_published() {
        let host = TestHost::from_manifest(include_str!("../agent.toml")).unwrap();
        for key in ["a", "a", "b"] {
            host.on_event::<{{type}}>(event("{{name}}.in.v1", "x").key(key))
                .unwrap();
        }
        let counts: Vec<Count> = host
            .published_to("{{name}}.out.v1")
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect();
        assert_eq!(counts[1], Count { key: "a".into(), count: 2 });
        assert_eq!(counts[2], Count { key: "b".into(), count: 1 });
        assert!(host.stored().contains_key("count/a"));
    }
}

//! {{name}}: an agent other agents and A2A clients talk to. It serves its card and a JSON-RPC
//! endpoint through the host (`[a2a] expose = true` in its manifest) and answers each message
//! with what it counted in the message's text. It subscribes to no topic.

use agenthost_sdk::{Agent, Card, Failure, Message, Reply, Skill};

struct {{type}};

impl Agent for {{type}} {
    fn card() -> Card {
        Card::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Counts the words and characters of a text")
            .skill(
                Skill::new("{{name}}.count", "Count")
                    .description("Answers with the number of words and characters of the text")
                    .tag("text")
                    .example("the quick brown fox"),
            )
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let text = message.text();
        if text.trim().is_empty() {
            // Rejected: the caller gets the task failed with this reason.
            return Err(Failure::reject("send a text to count"));
        }
        Ok(Reply::text(answer(&text)))
    }
}

/// What the agent answers for `text`.
fn answer(text: &str) -> String {
    format!(
        "{} words, {} characters",
        text.split_whitespace().count(),
        text.chars().count()
    )
}

agenthost_sdk::export_agent!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use agenthost_sdk::testing::TestHost;
    use agenthost_sdk::{Role, TaskState};

    #[test]
    fn the_answer_counts_words_and_characters() {
        assert_eq!(answer("the quick brown fox"), "4 words, 19 characters");
    }

    /// The handler runs natively against a fake host granted what agent.toml grants.
    #[test]
    fn a_message_is_answered_and_an_empty_one_rejected() {
        let host = TestHost::from_manifest(include_str!("../agent.toml")).unwrap();
        let reply = host
            .on_message::<{{type}}>(Message::from_text(Role::User, "the quick brown fox"))
            .unwrap();
        assert_eq!(reply.state, TaskState::Completed);
        assert_eq!(reply.message.unwrap().text(), "4 words, 19 characters");
        let empty = host.on_message::<{{type}}>(Message::from_text(Role::User, " "));
        assert!(matches!(empty, Err(Failure::Reject(_))));
    }
}

//! Topic names: Kafka's rules for any name, and the names of the A2A bus binding's topics. Both
//! the config files and the buses check names with these, so they live at the bottom.

/// A topic name Kafka would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic name {name:?}: {reason}")]
pub struct InvalidTopic {
    pub name: String,
    pub reason: &'static str,
}

/// Checks a topic name the way Kafka does: 1–249 characters of `[a-zA-Z0-9._-]`, not `.`/`..`.
pub fn validate_topic(name: &str) -> Result<(), InvalidTopic> {
    let fail = |reason| {
        Err(InvalidTopic {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("must not be empty");
    }
    if name.len() > 249 {
        return fail("must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return fail("must not be \".\" or \"..\"");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// The topic a skill's requests travel on in the A2A bus binding (docs/a2a.md).
pub fn request_topic(skill: &str) -> String {
    format!("agent.task-requests.{skill}")
}

/// The topic a skill's results travel on in the A2A bus binding.
pub fn result_topic(skill: &str) -> String {
    format!("agent.task-results.{skill}")
}

/// Whether `skill` makes valid topic names (Kafka's rules).
pub fn check_skill(skill: &str) -> Result<(), String> {
    validate_topic(&request_topic(skill))
        .map_err(|e| format!("skill id {skill:?} cannot name a topic: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic("ecommerce.price-changed.v1").is_ok());
        assert!(validate_topic("a_b-C.9").is_ok());
        for bad in ["", ".", "..", "has space", "slash/topic", "ünïcode"] {
            assert!(validate_topic(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(validate_topic(&"x".repeat(250)).is_err());
        assert!(check_skill("price-check").is_ok());
        assert!(check_skill("no spaces").unwrap_err().contains("no spaces"));
    }
}

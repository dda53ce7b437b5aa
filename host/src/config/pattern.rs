//! Topic patterns of `capabilities.publish`: exact names or `*` wildcards.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A topic name with optional `*` wildcards; `*` matches any run of characters, including none
/// and including dots (`agent.task-results.*` matches `agent.task-results.pricing.v1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPattern(String);

impl TopicPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a topic pattern must not be empty".into());
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')))
        {
            return Err(format!(
                "topic pattern {text:?} contains {c:?}; allowed are ASCII letters, digits, '.', '_', '-' and the wildcard '*'"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, topic: &str) -> bool {
        wildcard_match(self.0.as_bytes(), topic.as_bytes())
    }
}

/// Iterative glob match with `*` only, linear in practice (backtracks to the last star).
pub(crate) fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopicPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TopicPattern {
        TopicPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_names_match_only_themselves() {
        assert!(p("ecommerce.order-updated.v1").matches("ecommerce.order-updated.v1"));
        assert!(!p("ecommerce.order-updated.v1").matches("ecommerce.order-updated.v2"));
        assert!(!p("ecommerce.order-updated.v1").matches("ecommerce.order-updated.v1x"));
    }

    #[test]
    fn wildcards_match_any_run() {
        assert!(p("agent.task-results.*").matches("agent.task-results.pricing"));
        assert!(p("agent.task-results.*").matches("agent.task-results.a.b"));
        assert!(p("agent.task-results.*").matches("agent.task-results."));
        assert!(!p("agent.task-results.*").matches("agent.task-requests.pricing"));
        assert!(p("*.v1").matches("x.y.v1"));
        assert!(p("a*b*c").matches("axxbyyc"));
        assert!(!p("a*b*c").matches("axxbyy"));
        assert!(p("*").matches("anything"));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        assert!(TopicPattern::parse("").is_err());
        let err = TopicPattern::parse("a/b").unwrap_err();
        assert!(err.contains("'/'"), "{err}");
    }
}

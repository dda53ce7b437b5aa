//! Saying what was wrong with JSON an agent received: text that is not JSON at all, or valid
//! JSON of another shape than the agent expects (a missing or mistyped field). The two call for
//! different fixes — the producer's serializer, or the schema both sides agreed on — so the
//! failure says which it is.

use serde_json::error::Category;

/// What the error says of the JSON it was parsing, completing "… at <where> …".
pub(crate) fn what_is_wrong(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        Category::Data => "is JSON, but not of the shape this agent expects",
        Category::Syntax | Category::Eof => "is not JSON",
        Category::Io => "could not be read as JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Price {
        sku: String,
        price: f64,
    }

    fn problem(text: &str) -> &'static str {
        what_is_wrong(&serde_json::from_str::<Price>(text).unwrap_err())
    }

    #[test]
    fn text_that_is_not_json_is_told_from_json_of_another_shape() {
        assert_eq!(problem("{\"sku\": \"a\", "), "is not JSON");
        assert_eq!(problem("price: 3"), "is not JSON");
        assert_eq!(
            problem("{\"sku\": \"a\"}"),
            "is JSON, but not of the shape this agent expects"
        );
        assert_eq!(
            problem("{\"sku\": \"a\", \"price\": \"cheap\"}"),
            "is JSON, but not of the shape this agent expects"
        );
    }
}

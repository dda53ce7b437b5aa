//! The task and result formats shared with the orchestrator, and the work itself.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DEFAULT_RESULTS: &str = "agent.task-results.v1";
/// Most frequent words reported per document.
const TOP: usize = 3;

#[derive(Debug, Deserialize)]
pub struct TaskRequest {
    pub job: String,
    pub task: u32,
    pub of: u32,
    pub kind: String,
    pub input: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    pub job: String,
    pub task: u32,
    pub of: u32,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Why the task failed (set by the orchestrator for a dead-lettered task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct WordCount {
    pub words: usize,
    pub lines: usize,
    pub characters: usize,
    /// The most frequent words (lower-cased), most frequent first, ties alphabetical.
    pub top: Vec<(String, usize)>,
}

impl TaskRequest {
    /// The task's output, or what is wrong with the task.
    pub fn run(&self) -> Result<serde_json::Value, String> {
        if self.job.is_empty() {
            return Err("`job` is empty".into());
        }
        if self.task >= self.of {
            return Err(format!(
                "task {} is not below `of` ({})",
                self.task, self.of
            ));
        }
        match self.kind.as_str() {
            "word-count" => serde_json::to_value(word_count(&self.input))
                .map_err(|e| format!("cannot serialize the counts: {e}")),
            other => Err(format!(
                "unknown task kind {other:?}: this worker does \"word-count\""
            )),
        }
    }
}

pub fn word_count(text: &str) -> WordCount {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut words = 0;
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
    {
        words += 1;
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut top: Vec<(String, usize)> = counts.into_iter().collect();
    // Stable sort on count keeps the alphabetical order among ties.
    top.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    top.truncate(TOP);
    WordCount {
        words,
        lines: text.lines().count(),
        characters: text.chars().count(),
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: &str, task: u32, of: u32) -> TaskRequest {
        TaskRequest {
            job: "j".into(),
            task,
            of,
            kind: kind.into(),
            input: "The cat and the hat.\nThe end".into(),
        }
    }

    #[test]
    fn word_count_counts_words_lines_and_the_most_frequent() {
        let counts = word_count("The cat and the hat.\nThe end");
        assert_eq!(counts.words, 7);
        assert_eq!(counts.lines, 2);
        assert_eq!(counts.characters, 28);
        assert_eq!(
            counts.top,
            [("the".into(), 3), ("and".into(), 1), ("cat".into(), 1)]
        );
        assert_eq!(word_count("").words, 0);
        assert_eq!(word_count("don't stop").top[0].0, "don't");
    }

    #[test]
    fn tasks_that_cannot_be_done_say_why() {
        assert!(task("word-count", 0, 1).run().is_ok());
        assert!(
            task("word-count", 1, 1)
                .run()
                .unwrap_err()
                .contains("not below")
        );
        assert!(
            task("sentiment", 0, 1)
                .run()
                .unwrap_err()
                .contains("unknown task kind \"sentiment\"")
        );
    }
}

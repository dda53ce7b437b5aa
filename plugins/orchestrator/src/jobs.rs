//! Jobs, tasks and results, and the bookkeeping of an open job.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const TASKS: &str = "agent.task-requests.v1";
pub const RESULTS: &str = "agent.task-results.v1";
pub const DEAD_LETTERS: &str = "agent.dead-letter.task-worker.v1";
pub const COMPLETED: &str = "research.job-completed.v1";
const MAX_DOCUMENTS: usize = 1000;
const MAX_JOB_ID: usize = 128;

#[derive(Debug, Deserialize)]
pub struct Job {
    pub job: String,
    pub kind: String,
    pub documents: Vec<String>,
}

/// One task as the workers read it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub job: String,
    pub task: u32,
    pub of: u32,
    pub kind: String,
    pub input: String,
}

/// One task's result as the workers publish it (`error` for a failed task).
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub job: String,
    pub task: u32,
    pub of: u32,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What is known of an open job, kept in state between its results.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    pub kind: String,
    pub of: u32,
    pub results: BTreeMap<u32, serde_json::Value>,
    pub failed: BTreeMap<u32, String>,
}

#[derive(Debug, Serialize)]
pub struct Completed {
    pub job: String,
    pub kind: String,
    pub of: u32,
    pub succeeded: u32,
    pub failed: BTreeMap<u32, String>,
    /// Sums of the numeric fields the outputs share (e.g. words, lines, characters).
    pub totals: BTreeMap<String, f64>,
    pub results: Vec<TaskOutput>,
}

#[derive(Debug, Serialize)]
pub struct TaskOutput {
    pub task: u32,
    pub output: serde_json::Value,
}

pub fn state_key(job: &str) -> String {
    format!("job/{job}")
}

impl Job {
    /// The job's tasks, one per document, or what is wrong with the job.
    pub fn tasks(&self) -> Result<Vec<Task>, String> {
        let id_ok = !self.job.is_empty()
            && self.job.len() <= MAX_JOB_ID
            && self
                .job
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(format!(
                "`job` {:?} must be 1-{MAX_JOB_ID} characters of [A-Za-z0-9._-]",
                self.job
            ));
        }
        if self.kind.is_empty() {
            return Err("`kind` is empty".into());
        }
        if self.documents.is_empty() || self.documents.len() > MAX_DOCUMENTS {
            return Err(format!(
                "a job has 1-{MAX_DOCUMENTS} documents, not {}",
                self.documents.len()
            ));
        }
        let of = self.documents.len() as u32;
        Ok(self
            .documents
            .iter()
            .enumerate()
            .map(|(i, input)| Task {
                job: self.job.clone(),
                task: i as u32,
                of,
                kind: self.kind.clone(),
                input: input.clone(),
            })
            .collect())
    }
}

impl JobState {
    pub fn new(kind: &str, of: u32) -> Self {
        Self {
            kind: kind.to_owned(),
            of,
            results: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Records a result; false if it changes nothing (a redelivery, or a task the job does not
    /// have).
    pub fn record(&mut self, result: &TaskResult) -> bool {
        if result.task >= self.of
            || self.results.contains_key(&result.task)
            || self.failed.contains_key(&result.task)
        {
            return false;
        }
        match (&result.output, &result.error) {
            (_, Some(error)) => {
                self.failed.insert(result.task, error.clone());
            }
            (Some(output), None) => {
                self.results.insert(result.task, output.clone());
            }
            (None, None) => {
                self.failed.insert(
                    result.task,
                    "the result has neither output nor error".into(),
                );
            }
        }
        true
    }

    pub fn ended(&self) -> u32 {
        (self.results.len() + self.failed.len()) as u32
    }

    pub fn is_complete(&self) -> bool {
        self.ended() >= self.of
    }

    pub fn waiting_for(&self) -> Vec<u32> {
        (0..self.of)
            .filter(|t| !self.results.contains_key(t) && !self.failed.contains_key(t))
            .collect()
    }

    pub fn completed(&self, job: &str) -> Completed {
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        for output in self.results.values() {
            if let Some(fields) = output.as_object() {
                for (name, value) in fields {
                    if let Some(n) = value.as_f64() {
                        *totals.entry(name.clone()).or_default() += n;
                    }
                }
            }
        }
        Completed {
            job: job.to_owned(),
            kind: self.kind.clone(),
            of: self.of,
            succeeded: self.results.len() as u32,
            failed: self.failed.clone(),
            totals,
            results: self
                .results
                .iter()
                .map(|(task, output)| TaskOutput {
                    task: *task,
                    output: output.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(task: u32, output: Option<serde_json::Value>, error: Option<&str>) -> TaskResult {
        TaskResult {
            job: "j".into(),
            task,
            of: 3,
            kind: "word-count".into(),
            output,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_job_is_split_into_one_task_per_document() {
        let job = Job {
            job: "j-1".into(),
            kind: "word-count".into(),
            documents: vec!["a".into(), "b c".into()],
        };
        let tasks = job.tasks().unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            (tasks[1].task, tasks[1].of, &*tasks[1].input),
            (1, 2, "b c")
        );
        let bad = Job {
            job: "j 1".into(),
            ..job
        };
        assert!(bad.tasks().unwrap_err().contains("[A-Za-z0-9._-]"));
        let empty = Job {
            job: "j".into(),
            kind: "word-count".into(),
            documents: vec![],
        };
        assert!(empty.tasks().unwrap_err().contains("1-1000 documents"));
    }

    #[test]
    fn a_job_completes_once_every_task_ended_and_redeliveries_change_nothing() {
        let mut open = JobState::new("word-count", 3);
        assert!(open.record(&result(0, Some(json!({"words": 2, "top": []})), None)));
        assert!(
            !open.record(&result(0, Some(json!({"words": 99})), None)),
            "redelivery"
        );
        assert!(
            !open.record(&result(7, Some(json!({})), None)),
            "not a task of the job"
        );
        assert!(open.record(&result(2, None, Some("unknown task kind"))));
        assert_eq!(open.waiting_for(), [1]);
        assert!(!open.is_complete());
        assert!(open.record(&result(1, Some(json!({"words": 3})), None)));
        assert!(open.is_complete());
        let done = open.completed("j");
        assert_eq!((done.of, done.succeeded), (3, 2));
        assert_eq!(done.totals["words"], 5.0);
        assert_eq!(done.failed[&2], "unknown task kind");
        assert_eq!(done.results[0].output["words"], 2);
    }
}

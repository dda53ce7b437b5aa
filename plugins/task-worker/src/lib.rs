//! `task-worker`: the worker of the orchestrator–worker example. Takes tasks from
//! `agent.task-requests.v1` and publishes each one's result to `agent.task-results.v1`. Run as
//! many as you like: every copy joins the same consumer group (the manifest's `group`), so the
//! broker splits the task partitions between them.
//!
//! # Input: a task
//!
//! ```json
//! {"job": "j-1", "task": 0, "of": 3, "kind": "word-count", "input": "some text"}
//! ```
//!
//! A payload that is not a task (malformed JSON, a missing field, `task` not below `of`) or a
//! `kind` this worker does not do is rejected: the host dead-letters it to
//! its dead-letter topic (`agent.dead-letter.task-worker.v1`) with the reason, where the orchestrator sees it.
//!
//! # Output: a result, keyed by the job
//!
//! ```json
//! {"job": "j-1", "task": 0, "of": 3, "kind": "word-count",
//!  "output": {"words": 3, "lines": 1, "characters": 9, "top": [["some", 1], ["text", 1]]}}
//! ```
//!
//! Keyed by the job id, so all results of a job land on one partition and the orchestrator
//! handles them one at a time (its per-job state needs no locking).
//!
//! Config: `out` (default `agent.task-results.v1`). Imports: `bus`, `config`.

pub mod tasks;

use agenthost_sdk::{Agent, Card, Event, Failure, Message, Reply, Skill, bus, config};
use tasks::{TaskRequest, TaskResult};

struct TaskWorker;

impl Agent for TaskWorker {
    fn card() -> Card {
        Card::new("task-worker", env!("CARGO_PKG_VERSION"))
            .description("Does the orchestrator's tasks: word counts of documents")
            .skill(
                Skill::new("word-count", "Word count")
                    .description("Counts the words, lines and characters of a document and its most frequent words")
                    .tag("text")
                    .example("the quick brown fox"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let task: TaskRequest = event.json()?;
        let output = task.run().map_err(|what| {
            Failure::reject(format!(
                "task at {} cannot be done: {what}",
                event.position()
            ))
        })?;
        let result = TaskResult {
            job: task.job.clone(),
            task: task.task,
            of: task.of,
            kind: task.kind.clone(),
            output: Some(output),
            error: None,
        };
        let out = config::get_or("out", tasks::DEFAULT_RESULTS);
        bus::Record::json(&out, &result)?
            .key(task.job.as_str())
            .publish()?;
        Ok(())
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let stats = tasks::word_count(&message.text());
        let json = serde_json::to_string(&stats)
            .map_err(|e| Failure::reject(format!("cannot serialize the counts: {e}")))?;
        Ok(Reply::text(json))
    }
}

agenthost_sdk::export_agent!(TaskWorker);

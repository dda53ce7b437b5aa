//! `orchestrator`: the orchestrator of the orchestrator–worker example. Splits a job into
//! tasks on `agent.task-requests.v1`, collects their results from `agent.task-results.v1`
//! (and, for tasks a worker could not do, from the worker's dead-letter topic), and publishes the job's
//! outcome to `research.job-completed.v1` once every task has ended.
//!
//! # Input: a job (`research.job-requested.v1`)
//!
//! ```json
//! {"job": "j-1", "kind": "word-count", "documents": ["first text", "second text"]}
//! ```
//!
//! `job`: 1-128 characters of `[A-Za-z0-9._-]`; 1-1000 documents. Anything else is rejected
//! (dead-lettered with the reason). One task per document, keyed `job/index` so the tasks
//! spread over the partitions — and over the workers of the consumer group.
//!
//! # Results
//!
//! Results are keyed by the job, so one job's results arrive on one partition, one at a time:
//! the job's state (`job/<id>`: which tasks ended, with what) is read and written without
//! races. A result for a task already recorded (a redelivery) changes nothing; a result for a
//! job that is not open (already completed) is ignored.
//!
//! A task dead-lettered by a worker (an unknown kind, or retries exhausted) reaches the
//! dead-letter topic keyed by the task. The orchestrator turns it into a failed result,
//! published to the results topic keyed by the job, so it is counted in order like the others.
//!
//! # Output (`research.job-completed.v1`, keyed by the job)
//!
//! ```json
//! {"job": "j-1", "kind": "word-count", "of": 2, "succeeded": 2, "failed": {},
//!  "totals": {"words": 4, "lines": 2, "characters": 21},
//!  "results": [{"task": 0, "output": {...}}, {"task": 1, "output": {...}}]}
//! ```
//!
//! Config: `tasks`, `results`, `dead_letters`, `completed` (topics; defaults above).
//! Imports: `bus`, `state`, `config`, `log`.

pub mod jobs;

use agenthost_sdk::{
    Agent, Card, Event, Failure, Message, Reply, Skill, bus, config, debug, info, state, warn,
};
use jobs::{Job, JobState, TaskResult};

struct Orchestrator;

fn topic(key: &str, default: &str) -> String {
    config::get_or(key, default)
}

impl Agent for Orchestrator {
    fn card() -> Card {
        Card::new("orchestrator", env!("CARGO_PKG_VERSION"))
            .description("Splits jobs into tasks for a pool of workers and assembles their results")
            .skill(
                Skill::new("job-status", "Job status")
                    .description("Answers a job id with the tasks it is still waiting for")
                    .tag("orchestration")
                    .example("j-1"),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        if event.topic == topic("results", jobs::RESULTS) {
            on_result(&event)
        } else if event.topic == topic("dead_letters", jobs::DEAD_LETTERS) {
            on_dead_letter(&event)
        } else {
            on_job(&event)
        }
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let job = message.text().trim().to_owned();
        let answer = match state::get_json::<JobState>(&jobs::state_key(&job))? {
            Some(open) => format!(
                "{job}: {} of {} tasks ended, waiting for {:?}",
                open.ended(),
                open.of,
                open.waiting_for()
            ),
            None => format!("{job}: no open job (never started, or completed)"),
        };
        Ok(Reply::text(answer))
    }
}

fn on_job(event: &Event) -> Result<(), Failure> {
    let job: Job = event.json()?;
    let tasks = job
        .tasks()
        .map_err(|what| Failure::reject(format!("invalid job at {}: {what}", event.position())))?;
    let key = jobs::state_key(&job.job);
    // A redelivered job whose tasks are already out is not split again.
    if state::get(&key)?.is_none() {
        state::set_json(&key, &JobState::new(&job.kind, tasks.len() as u32))?;
    }
    let out = topic("tasks", jobs::TASKS);
    for task in &tasks {
        bus::Record::json(&out, task)?
            .key(format!("{}/{}", task.job, task.task))
            .publish()?;
    }
    info!("job {}: {} {} tasks out", job.job, tasks.len(), job.kind);
    Ok(())
}

fn on_result(event: &Event) -> Result<(), Failure> {
    let result: TaskResult = event.json()?;
    let key = jobs::state_key(&result.job);
    let Some(mut open) = state::get_json::<JobState>(&key)? else {
        debug!(
            "result for job {} task {}: the job is not open",
            result.job, result.task
        );
        return Ok(());
    };
    if !open.record(&result) {
        return Ok(());
    }
    if open.is_complete() {
        let completed = open.completed(&result.job);
        bus::Record::json(topic("completed", jobs::COMPLETED), &completed)?
            .key(result.job.as_str())
            .publish()?;
        state::delete(&key)?;
        info!(
            "job {} completed: {} of {} tasks succeeded",
            result.job, completed.succeeded, completed.of
        );
    } else {
        state::set_json(&key, &open)?;
    }
    Ok(())
}

fn on_dead_letter(event: &Event) -> Result<(), Failure> {
    // Only dead-lettered tasks matter here; anything else on the topic is for people.
    let Ok(task) = serde_json::from_slice::<jobs::Task>(&event.payload) else {
        return Ok(());
    };
    let reason = event
        .header_str("agenthost-error")
        .unwrap_or("dead-lettered")
        .to_owned();
    warn!("job {} task {} failed: {reason}", task.job, task.task);
    let failed = TaskResult {
        job: task.job.clone(),
        task: task.task,
        of: task.of,
        kind: task.kind,
        output: None,
        error: Some(reason),
    };
    bus::Record::json(topic("results", jobs::RESULTS), &failed)?
        .key(task.job.as_str())
        .publish()?;
    Ok(())
}

agenthost_sdk::export_agent!(Orchestrator);

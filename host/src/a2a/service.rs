//! Tasks served by this host's agents: one lifecycle for every way a message arrives (the
//! JSON-RPC endpoint, another agent's `a2a` import in-process).
//!
//! A message creates a task (or continues an interrupted one), persisted before the agent runs.
//! The agent's `on-message` runs in its own tokio task, so a client that disconnects does not
//! cancel it; `CancelTask` does. Every change is stored, then broadcast to streaming
//! subscribers.

use super::model::{Artifact, Message, Role, StreamEvent, Task, TaskState, TaskStatus, now_ms};
use super::store::{Filter, Page, StoreError, TaskStore};
use super::wire::RpcError;
use crate::agent::AgentVersion;
use crate::invocation::InvocationError;
use crate::metrics::Metrics;
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Agent-to-agent calls in-process nest; past this depth a call fails instead of recursing
/// until every instance is in use.
pub const MAX_DEPTH: u32 = 8;

tokio::task_local! {
    /// How deep in a chain of in-process agent-to-agent calls the current invocation runs
    /// (0 for one started by a client or an event).
    pub static DEPTH: u32;
}

/// The current invocation's depth in a chain of agent-to-agent calls.
pub fn current_depth() -> u32 {
    DEPTH.try_with(|d| *d).unwrap_or(0)
}

/// A task whose agent is running now.
struct Live {
    events: broadcast::Sender<StreamEvent>,
    cancel: CancellationToken,
    /// Becomes true once the run has stored its final state.
    done: watch::Receiver<bool>,
}

/// A started task: its first stored state and how to follow it.
pub struct Started {
    pub task: Task,
    pub events: broadcast::Receiver<StreamEvent>,
    pub done: watch::Receiver<bool>,
}

pub struct A2aService {
    registry: Arc<Registry>,
    /// Which agent answers for a bare skill id.
    skills: super::skills::SkillOwners,
    store: TaskStore,
    live: Mutex<HashMap<String, Live>>,
    /// Subscribers to interrupted tasks, waiting for a message to continue them: the run that
    /// continues a task takes its channel over. Locked after `live`, never before.
    waiting: Mutex<HashMap<String, broadcast::Sender<StreamEvent>>>,
    metrics: Arc<Metrics>,
}

impl A2aService {
    pub fn open(
        db: &sled::Db,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let service = Self {
            registry,
            skills: super::skills::SkillOwners::open(db)?,
            store: TaskStore::open(db)?,
            live: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            metrics,
        };
        service.fail_orphans()?;
        Ok(service)
    }

    /// Tasks a previous process left running cannot finish: mark them failed so clients
    /// polling them get an answer.
    fn fail_orphans(&self) -> Result<(), StoreError> {
        for mut task in self.store.unfinished()? {
            task.status = TaskStatus {
                state: TaskState::Failed,
                message: Some(agent_message(
                    &task,
                    "the host restarted while this task was running; send the message again",
                )),
                timestamp_ms: now_ms(),
            };
            self.store.put(&task)?;
        }
        Ok(())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The agent that owns skill `skill` (see [`super::skills`]).
    pub fn skill_owner(&self, skill: &str) -> Option<String> {
        self.skills.owner(skill)
    }

    /// Registers the skills `agent` advertises (see [`super::skills::SkillOwners::claim`]).
    pub fn claim_skills(
        &self,
        agent: &str,
        skills: &[String],
    ) -> sled::Result<super::skills::Claims> {
        self.skills.claim(agent, skills)
    }

    /// A task of `agent` that `principal` may see (its owner; see `Task::owner`): anyone
    /// else is told it does not exist.
    pub fn get_task(&self, agent: &str, id: &str, principal: &str) -> Result<Task, RpcError> {
        match self.store.get(id).map_err(internal)? {
            Some(task)
                if task.agent == agent && super::model::visible_to(&task.owner, principal) =>
            {
                Ok(task)
            }
            _ => Err(RpcError::task_not_found(id)),
        }
    }

    /// Deletes finished tasks older than `retention` and each agent's oldest finished tasks
    /// beyond `max_per_agent`, every minute until the service is dropped.
    pub fn spawn_pruning(self: &Arc<Self>, retention: Duration, max_per_agent: usize) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
                let pruned =
                    tokio::task::spawn_blocking(move || service.store.prune(cutoff, max_per_agent))
                        .await;
                match pruned {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "A2A tasks pruned"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "A2A task pruning failed"),
                    _ => {}
                }
            }
        });
    }

    pub fn list_tasks(
        &self,
        agent: &str,
        filter: &Filter,
        page_size: usize,
        page_token: &str,
    ) -> Result<Page, RpcError> {
        self.store
            .list(agent, filter, page_size, page_token)
            .map_err(|e| match e {
                StoreError::BadPageToken => {
                    RpcError::invalid_params("params.pageToken is not a token this host issued")
                }
                other => internal(other),
            })
    }

    fn agent(&self, name: &str) -> Result<Arc<AgentVersion>, RpcError> {
        self.registry
            .get(name)
            .map(|cell| cell.current())
            .ok_or_else(|| {
                RpcError::unsupported(format!("no agent named {name:?} runs on this host"))
            })
    }

    /// Accepts `message` for `agent_name` and starts the agent on it, at `depth` in a chain of
    /// agent-to-agent calls.
    pub fn start(
        self: &Arc<Self>,
        agent_name: &str,
        mut message: Message,
        correlation_id: &str,
        depth: u32,
        principal: &str,
    ) -> Result<Started, RpcError> {
        if depth > MAX_DEPTH {
            return Err(RpcError::unsupported(format!(
                "agent-to-agent calls nest more than {MAX_DEPTH} deep; refusing to go further"
            )));
        }
        let agent = self.agent(agent_name)?;
        message.role = Role::User;
        // Holding the lock from the liveness check to the insert keeps two messages for one
        // interrupted task from both continuing it.
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut task = match &message.task_id {
            Some(id) => {
                let task = self.get_task(agent_name, id, principal)?;
                // A message names its task's context or none (the task's is taken); another
                // one is refused rather than overwritten (A2A 1.0 §3.4.3).
                if let Some(context) = &message.context_id
                    && *context != task.context_id
                {
                    return Err(RpcError::invalid_params(format!(
                        "contextId {context:?} is not the context of task {id} ({:?}): send the task's contextId or none",
                        task.context_id
                    )));
                }
                if task.status.state.is_terminal() {
                    return Err(RpcError::unsupported(format!(
                        "Task {id} is in terminal state {}: start a new task",
                        task.status.state.as_str()
                    )));
                }
                if live.contains_key(id) {
                    return Err(RpcError::unsupported(format!(
                        "Task {id} is still working: wait for it or cancel it"
                    )));
                }
                task
            }
            None => Task {
                id: uuid::Uuid::new_v4().to_string(),
                context_id: message
                    .context_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                agent: agent_name.to_owned(),
                status: TaskStatus {
                    state: TaskState::Submitted,
                    message: None,
                    timestamp_ms: now_ms(),
                },
                history: Vec::new(),
                artifacts: Vec::new(),
                created_ms: now_ms(),
                correlation_id: correlation_id.to_owned(),
                owner: principal.to_owned(),
            },
        };
        message.task_id = Some(task.id.clone());
        message.context_id = Some(task.context_id.clone());
        task.history.push(message.clone());
        task.status = TaskStatus {
            state: TaskState::Submitted,
            message: None,
            timestamp_ms: now_ms(),
        };
        self.store.put(&task).map_err(internal)?;

        // Subscribers waiting for this (interrupted) task to go on follow this run.
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id)
            .filter(|sender| sender.receiver_count() > 0);
        let (events, receiver) = match waiting {
            Some(sender) => {
                let receiver = sender.subscribe();
                (sender, receiver)
            }
            None => broadcast::channel(64),
        };
        let (done_tx, done) = watch::channel(false);
        let cancel = CancellationToken::new();
        live.insert(
            task.id.clone(),
            Live {
                events: events.clone(),
                cancel: cancel.clone(),
                done: done.clone(),
            },
        );
        drop(live);
        self.metrics.record_a2a_task(agent_name, "started");
        let run = Run {
            service: self.clone(),
            agent,
            task: task.clone(),
            message,
            events,
            cancel,
            done: done_tx,
        };
        tokio::spawn(DEPTH.scope(depth, run.execute()));
        Ok(Started {
            task,
            events: receiver,
            done,
        })
    }

    /// Starts the task and waits until it is done (finished, interrupted or canceled).
    pub async fn send_and_wait(
        self: &Arc<Self>,
        agent_name: &str,
        message: Message,
        correlation_id: &str,
        depth: u32,
        principal: &str,
    ) -> Result<Task, RpcError> {
        let mut started = self.start(agent_name, message, correlation_id, depth, principal)?;
        let _ = started.done.wait_for(|done| *done).await;
        self.get_task(agent_name, &started.task.id, principal)
    }

    /// Follows a task that is not finished: its current state, then its events until it is
    /// finished or interrupted again. An interrupted task is followed from when a message
    /// continues it. `None` when the task is finished.
    pub fn subscribe(
        &self,
        agent: &str,
        id: &str,
        principal: &str,
    ) -> Result<Option<(Task, broadcast::Receiver<StreamEvent>)>, RpcError> {
        // Checked first: a stranger learns nothing, not even whether the task runs.
        self.get_task(agent, id, principal)?;
        // Under the `live` lock, a run can neither start nor end: the task is running, or its
        // stored state is the one it will keep until a message continues it.
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = match live.get(id) {
            Some(running) => Some(running.events.subscribe()),
            None if self
                .get_task(agent, id, principal)?
                .status
                .state
                .is_interrupted() =>
            {
                let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                // Channels whose subscribers all went away are dropped here.
                waiting.retain(|_, sender| sender.receiver_count() > 0);
                let sender = waiting
                    .entry(id.to_owned())
                    .or_insert_with(|| broadcast::channel(64).0);
                Some(sender.subscribe())
            }
            None => None,
        };
        drop(live);
        // Subscribed before reading the snapshot: an update between the two is seen twice at
        // worst, never missed.
        let task = self.get_task(agent, id, principal)?;
        Ok(receiver.map(|r| (task, r)))
    }

    /// Cancels a task: a running one is stopped (its invocation dropped), an interrupted one
    /// is closed. Finished tasks cannot be canceled.
    pub async fn cancel(&self, agent: &str, id: &str, principal: &str) -> Result<Task, RpcError> {
        let task = self.get_task(agent, id, principal)?;
        if task.status.state.is_terminal() {
            return Err(RpcError::task_not_cancelable(id, task.status.state));
        }
        let running = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|l| (l.cancel.clone(), l.done.clone()));
        match running {
            Some((cancel, mut done)) => {
                cancel.cancel();
                // The run stores `canceled` as soon as the invocation is dropped.
                let _ = tokio::time::timeout(Duration::from_secs(10), done.wait_for(|d| *d)).await;
            }
            None => {
                let mut task = task;
                task.status = TaskStatus {
                    state: TaskState::Canceled,
                    message: None,
                    timestamp_ms: now_ms(),
                };
                self.store.put(&task).map_err(internal)?;
                self.metrics.record_a2a_task(agent, "canceled");
                // Whoever waited for it to go on learns it never will.
                let waiting = self
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                if let Some(sender) = waiting {
                    let _ = sender.send(StreamEvent::Status {
                        task_id: task.id.clone(),
                        context_id: task.context_id.clone(),
                        status: task.status.clone(),
                        last: true,
                    });
                }
            }
        }
        self.get_task(agent, id, principal)
    }
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

fn agent_message(task: &Task, text: &str) -> Message {
    let mut m = Message::agent_text(text);
    m.task_id = Some(task.id.clone());
    m.context_id = Some(task.context_id.clone());
    m
}

/// One run of an agent on a task's newest message.
struct Run {
    service: Arc<A2aService>,
    agent: Arc<AgentVersion>,
    task: Task,
    message: Message,
    events: broadcast::Sender<StreamEvent>,
    cancel: CancellationToken,
    done: watch::Sender<bool>,
}

impl Run {
    async fn execute(mut self) {
        self.set_status(TaskState::Working, None, false);
        let wit_message = crate::wit::types::Message::from(&self.message);
        let invocation =
            self.agent
                .on_message(wit_message, &self.task.correlation_id, &self.task.id);
        let outcome = tokio::select! {
            result = invocation => Some(result),
            _ = self.cancel.cancelled() => None,
        };
        let (state, message) = match outcome {
            None => (TaskState::Canceled, None),
            Some(Ok(reply)) => {
                for artifact in reply.artifacts {
                    let artifact = Artifact::from(artifact);
                    self.task.artifacts.push(artifact.clone());
                    let _ = self.events.send(StreamEvent::Artifact {
                        task_id: self.task.id.clone(),
                        context_id: self.task.context_id.clone(),
                        artifact,
                    });
                }
                let message = reply.message.map(|m| {
                    let mut m = Message::from(m);
                    m.role = Role::Agent;
                    m.task_id = Some(self.task.id.clone());
                    m.context_id = Some(self.task.context_id.clone());
                    m
                });
                if let Some(m) = &message {
                    self.task.history.push(m.clone());
                }
                // A reply's state closes this turn: "still working" has no later turn to
                // finish in, so it counts as completed.
                let state = match TaskState::from(reply.state) {
                    TaskState::Submitted | TaskState::Working => TaskState::Completed,
                    other => other,
                };
                (state, message)
            }
            Some(Err(error)) => {
                let state = match &error {
                    InvocationError::Rejected(_) => TaskState::Rejected,
                    _ => TaskState::Failed,
                };
                tracing::warn!(
                    agent = &*self.agent.name,
                    task = self.task.id,
                    correlation_id = self.task.correlation_id,
                    %error,
                    "A2A task failed"
                );
                (state, Some(agent_message(&self.task, &error.to_string())))
            }
        };
        self.service
            .metrics
            .record_a2a_task(&self.agent.name, state.as_str());
        self.set_status(state, message, true);
        let _ = self.done.send(true);
    }

    /// Stores the new status, then tells subscribers; the last one also ends the live entry.
    fn set_status(&mut self, state: TaskState, message: Option<Message>, last: bool) {
        self.task.status = TaskStatus {
            state,
            message,
            timestamp_ms: now_ms(),
        };
        if let Err(error) = self.service.store.put(&self.task) {
            tracing::error!(task = self.task.id, %error, "cannot store an A2A task update");
        }
        if last {
            self.service
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.task.id);
        }
        let _ = self.events.send(StreamEvent::Status {
            task_id: self.task.id.clone(),
            context_id: self.task.context_id.clone(),
            status: self.task.status.clone(),
            last,
        });
    }
}

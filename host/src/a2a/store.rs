//! Tasks, with their history and artifacts, persisted in sled: they survive a restart, so a
//! client can still `GetTask` an answer it did not wait for.

use super::model::{Task, TaskState};
use base64::Engine;

/// A page of `ListTasks`.
pub struct Page {
    pub tasks: Vec<Task>,
    /// Empty when this is the last page.
    pub next_page_token: String,
    pub total_size: usize,
}

/// What `ListTasks` filters on.
#[derive(Default)]
pub struct Filter {
    pub context_id: Option<String>,
    pub state: Option<TaskState>,
    /// Only tasks whose status changed at or after this time.
    pub status_after_ms: Option<u64>,
    /// Only tasks this principal may see (see `Task::owner`).
    pub principal: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("task {id} is unreadable: {error}")]
    Corrupt { id: String, error: String },
    #[error("invalid pageToken")]
    BadPageToken,
}

pub struct TaskStore {
    tasks: sled::Tree,
    /// `agent \0 created_ms (big-endian) task_id` → (): each agent's tasks by creation time.
    by_agent: sled::Tree,
}

impl TaskStore {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tasks: db.open_tree("a2a/tasks")?,
            by_agent: db.open_tree("a2a/tasks-by-agent")?,
        })
    }

    fn index_key(task: &Task) -> Vec<u8> {
        let mut key = Vec::with_capacity(task.agent.len() + 9 + task.id.len());
        key.extend_from_slice(task.agent.as_bytes());
        key.push(0);
        key.extend_from_slice(&task.created_ms.to_be_bytes());
        key.extend_from_slice(task.id.as_bytes());
        key
    }

    pub fn put(&self, task: &Task) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(task).map_err(|e| StoreError::Corrupt {
            id: task.id.clone(),
            error: e.to_string(),
        })?;
        let previous = self.tasks.insert(task.id.as_bytes(), bytes)?;
        if previous.is_none() {
            self.by_agent.insert(Self::index_key(task), &[])?;
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let Some(bytes) = self.tasks.get(id.as_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                id: id.to_owned(),
                error: e.to_string(),
            })
    }

    /// Deletes finished tasks (completed, failed, canceled, rejected) created before
    /// `cutoff_ms`, and each agent's oldest finished tasks beyond `max_per_agent`. Interrupted
    /// tasks (waiting for input) are kept: a client may still continue them. Returns how many
    /// were deleted.
    pub fn prune(&self, cutoff_ms: u64, max_per_agent: usize) -> Result<usize, StoreError> {
        // The index sorts by agent, then creation time: one pass, agent by agent.
        let mut deleted = 0;
        let mut agent: Vec<u8> = Vec::new();
        let mut keys: Vec<(sled::IVec, String, u64)> = Vec::new();
        // One agent's tasks, oldest first: those too old go, then the oldest beyond the cap.
        let mut flush = |keys: &mut Vec<(sled::IVec, String, u64)>| -> Result<(), StoreError> {
            let mut survivors = 0usize;
            let mut finished = Vec::new();
            for (key, id, created_ms) in keys.drain(..) {
                let done = self.get(&id)?.is_none_or(|t| t.status.state.is_terminal());
                if done && created_ms < cutoff_ms {
                    self.tasks.remove(id.as_bytes())?;
                    self.by_agent.remove(&key)?;
                    deleted += 1;
                } else {
                    survivors += 1;
                    if done {
                        finished.push((key, id));
                    }
                }
            }
            let over = survivors.saturating_sub(max_per_agent);
            for (key, id) in finished.into_iter().take(over) {
                self.tasks.remove(id.as_bytes())?;
                self.by_agent.remove(&key)?;
                deleted += 1;
            }
            Ok(())
        };
        for entry in self.by_agent.iter() {
            let (key, _) = entry?;
            let Some(split) = key.iter().position(|&b| b == 0) else {
                continue;
            };
            if key.len() < split + 9 {
                continue;
            }
            if key[..split] != agent[..] {
                flush(&mut keys)?;
                agent = key[..split].to_vec();
            }
            let created_ms =
                u64::from_be_bytes(key[split + 1..split + 9].try_into().unwrap_or_default());
            let id = String::from_utf8_lossy(&key[split + 9..]).into_owned();
            keys.push((key, id, created_ms));
        }
        flush(&mut keys)?;
        Ok(deleted)
    }

    /// Tasks whose agent was running (submitted or working): after a restart, orphans.
    pub fn unfinished(&self) -> Result<Vec<Task>, StoreError> {
        let mut found = Vec::new();
        for entry in self.tasks.iter() {
            let (key, bytes) = entry?;
            let task: Task = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                id: String::from_utf8_lossy(&key).into_owned(),
                error: e.to_string(),
            })?;
            if matches!(task.status.state, TaskState::Submitted | TaskState::Working) {
                found.push(task);
            }
        }
        Ok(found)
    }

    /// The agent's tasks matching `filter`, newest first, `page_size` at a time.
    pub fn list(
        &self,
        agent: &str,
        filter: &Filter,
        page_size: usize,
        page_token: &str,
    ) -> Result<Page, StoreError> {
        let mut prefix = agent.as_bytes().to_vec();
        prefix.push(0);
        // The token is the index key of the last task returned; the next page starts below it.
        let before = if page_token.is_empty() {
            None
        } else {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(page_token)
                .map_err(|_| StoreError::BadPageToken)?;
            if !key.starts_with(&prefix) {
                return Err(StoreError::BadPageToken);
            }
            Some(key)
        };
        let mut tasks = Vec::new();
        let mut total = 0usize;
        let mut last_key = None;
        let mut more = false;
        for entry in self.by_agent.scan_prefix(&prefix).rev() {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[prefix.len() + 8..]).into_owned();
            let Some(task) = self.get(&id)? else { continue };
            if !matches(&task, filter) {
                continue;
            }
            total += 1;
            if before.as_deref().is_some_and(|b| key.as_ref() >= b) {
                continue;
            }
            if tasks.len() < page_size {
                last_key = Some(key.to_vec());
                tasks.push(task);
            } else {
                more = true;
            }
        }
        let next_page_token = match (more, last_key) {
            (true, Some(key)) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
            _ => String::new(),
        };
        Ok(Page {
            tasks,
            next_page_token,
            total_size: total,
        })
    }
}

fn matches(task: &Task, filter: &Filter) -> bool {
    super::model::visible_to(&task.owner, &filter.principal)
        && filter
            .context_id
            .as_deref()
            .is_none_or(|c| task.context_id == c)
        && filter.state.is_none_or(|s| task.status.state == s)
        && filter
            .status_after_ms
            .is_none_or(|t| task.status.timestamp_ms >= t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::a2a::model::TaskStatus;

    fn task(agent: &str, id: &str, created_ms: u64, state: TaskState, context: &str) -> Task {
        Task {
            id: id.into(),
            context_id: context.into(),
            agent: agent.into(),
            status: TaskStatus {
                state,
                message: None,
                timestamp_ms: created_ms,
            },
            history: Vec::new(),
            artifacts: Vec::new(),
            created_ms,
            correlation_id: "c".into(),
            owner: String::new(),
        }
    }

    #[test]
    fn old_and_surplus_finished_tasks_are_pruned_interrupted_ones_kept() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = TaskStore::open(&db).unwrap();
        for i in 0..6u64 {
            let state = if i == 1 {
                TaskState::InputRequired
            } else {
                TaskState::Completed
            };
            store
                .put(&task("a", &format!("a{i}"), 100 + i, state, "c"))
                .unwrap();
        }
        store
            .put(&task("b", "b0", 100, TaskState::Completed, "c"))
            .unwrap();
        // Older than 102: a0 (a1 waits for input, and stays); then at most 2 per agent: the
        // oldest finished ones, a2, a3 and a4, go. b0 is too old.
        assert_eq!(store.prune(102, 2).unwrap(), 5);
        let left: Vec<String> = store
            .list("a", &Filter::default(), 10, "")
            .unwrap()
            .tasks
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(left, ["a5", "a1"]);
        assert!(store.get("b0").unwrap().is_none(), "older than the cutoff");
    }

    #[test]
    fn a_principal_sees_only_its_own_tasks() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = TaskStore::open(&db).unwrap();
        for (id, owner) in [("mine", "client:team"), ("yours", "agent:x"), ("old", "")] {
            let mut t = task("a", id, 100, TaskState::Completed, "c");
            t.owner = owner.into();
            store.put(&t).unwrap();
        }
        let seen = |principal: &str| -> Vec<String> {
            let filter = Filter {
                principal: principal.into(),
                ..Filter::default()
            };
            let mut ids: Vec<String> = store
                .list("a", &filter, 10, "")
                .unwrap()
                .tasks
                .into_iter()
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(seen("client:team"), ["mine", "old"]);
        assert_eq!(seen("client:anonymous"), ["old"]);
        assert_eq!(seen("agent:x"), ["yours"]);
    }

    #[test]
    fn lists_newest_first_in_pages_filtered_per_agent() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = TaskStore::open(&db).unwrap();
        for i in 0..5u64 {
            let state = if i % 2 == 0 {
                TaskState::Completed
            } else {
                TaskState::Failed
            };
            store
                .put(&task("a", &format!("t{i}"), 100 + i, state, "ctx"))
                .unwrap();
        }
        store
            .put(&task("b", "other", 50, TaskState::Completed, "ctx"))
            .unwrap();
        // Updating a task does not duplicate it in the index.
        let mut t4 = store.get("t4").unwrap().unwrap();
        t4.status.timestamp_ms = 999;
        store.put(&t4).unwrap();

        let first = store.list("a", &Filter::default(), 2, "").unwrap();
        let ids: Vec<&str> = first.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t4", "t3"]);
        assert_eq!(first.total_size, 5);
        let second = store
            .list("a", &Filter::default(), 2, &first.next_page_token)
            .unwrap();
        let ids: Vec<&str> = second.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t2", "t1"]);
        let last = store
            .list("a", &Filter::default(), 2, &second.next_page_token)
            .unwrap();
        assert_eq!(last.tasks.len(), 1);
        assert!(last.next_page_token.is_empty());

        let completed = Filter {
            state: Some(TaskState::Completed),
            ..Filter::default()
        };
        assert_eq!(store.list("a", &completed, 10, "").unwrap().total_size, 3);
        assert!(matches!(
            store.list("a", &Filter::default(), 2, "garbage!"),
            Err(StoreError::BadPageToken)
        ));
        // Another agent's token is not accepted here.
        let b = store.list("b", &Filter::default(), 1, "").unwrap();
        assert_eq!(b.tasks.len(), 1);
    }
}

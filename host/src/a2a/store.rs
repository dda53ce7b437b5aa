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
    filter
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
        }
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

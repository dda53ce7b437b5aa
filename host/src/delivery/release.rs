//! A record's hold on its chain (see `pipeline.rs`): let go once, either early — the record was
//! handled and only the acknowledgements of what it sent are outstanding, so the chain's next
//! record may start — or when the record ends.

use super::pipeline::Chain;
use tokio::sync::mpsc;

/// A record's hold on its chain, let go at most once: early (through the worker's channel)
/// once the record was handled and only acknowledgements are outstanding, or at its end.
pub(super) struct Release {
    chain: Option<Chain>,
    to: mpsc::UnboundedSender<Chain>,
}
impl Release {
    pub(super) fn new(chain: &Chain, to: &mpsc::UnboundedSender<Chain>) -> Self {
        Self {
            chain: Some(chain.clone()),
            to: to.clone(),
        }
    }

    /// Whether the chain was let go already.
    pub(super) fn is_released(&self) -> bool {
        self.chain.is_none()
    }

    pub(super) fn now(&mut self) {
        if let Some(chain) = self.chain.take() {
            // The worker outlives its tasks; if it is gone, nothing waits for the chain.
            let _ = self.to.send(chain);
        }
    }
}

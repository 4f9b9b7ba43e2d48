//! Where records go: the Elasticsearch sink and the dead-letter topic. Neither imports the
//! other: the Elasticsearch sink hands what it gives up on to a [`DeadLetters`], and `run`
//! plugs the dead-letter sink in.

pub mod dead_letter;
pub mod elasticsearch;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::event::DocKey;

/// One refused document.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    /// Where it came from.
    pub key: &'a DocKey,
    /// Its document `_id` (the event id, or `topic-partition-offset`).
    pub id: &'a str,
    /// Where it was going.
    pub index: &'a str,
    /// The document JSON as sent.
    pub source: &'a [u8],
    /// HTTP status of the refusal.
    pub status: u16,
    /// Elasticsearch's error object (or our own reason).
    pub error: Value,
}

/// Where documents Elasticsearch refused for good go. Boxed futures keep it usable as a
/// trait object; dead letters are rare, the allocation does not matter.
pub trait DeadLetters: Send + Sync {
    /// Stores `letter`, retrying until it is safe. False only when `cancel` fired first
    /// (the record then stays uncommitted and is replayed).
    fn send<'a>(
        &'a self,
        letter: &'a Letter<'_>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, bool>;
}

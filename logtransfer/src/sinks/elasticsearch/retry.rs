//! What is retried and when.
//!
//! Per document (an item of a `_bulk` response):
//! - 2xx: indexed;
//! - 409 under `op_type = create`: the `_id` exists, the document is already indexed (a
//!   replay, a re-sent line): settled, counted as a duplicate, never retried or
//!   dead-lettered;
//! - 429 (rejected, read-only-allow-delete block), 5xx, 408: retried with backoff, at most
//!   `item_max_retries` times, then dead-lettered;
//! - anything else (400 mapping errors, 403 blocks, 404, 409...): dead-lettered at once,
//!   since resending the same document gets the same answer.
//!
//! Per request (the whole `_bulk` call):
//! - refused, timed out, reset, 429, 5xx, 401/403/404 (credentials or URL being fixed):
//!   retried without limit with backoff: they say nothing about the documents, and the
//!   driver stops consuming meanwhile, so memory stays bounded. 401/403/404 need the
//!   operator: the service reports them as an ERROR once per spell (and every failure in
//!   `logtransfer_es_request_errors_total{status}`);
//! - 400 and 413 (a document the request parser cannot take, a body too large): the batch
//!   is split in halves until the culprit is alone, which is then dead-lettered; except a
//!   400 that is a TLS front end's complaint about the connection (plaintext on its TLS
//!   port, no client certificate): that needs the operator and is retried like a 401.
//! - TLS failures (untrusted certificate, handshake refused) need the operator too: retried,
//!   reported once per spell.

use super::config::OpType;

/// What to do with one document after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemAction {
    /// Indexed.
    Done,
    /// Already indexed (`create` found its `_id`): settled, nothing written.
    Duplicate,
    /// Send again later.
    Retry,
    /// Give up: to the dead-letter topic.
    DeadLetter,
}

/// Classifies an item status of a `_bulk` of `op` actions.
pub fn item_action(status: u16, op: OpType) -> ItemAction {
    match status {
        200..=299 => ItemAction::Done,
        409 if op == OpType::Create => ItemAction::Duplicate,
        408 | 429 | 500..=599 => ItemAction::Retry,
        _ => ItemAction::DeadLetter,
    }
}

/// What to do with a whole request that got no usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    /// Wait, then send the same batch again.
    Retry,
    /// Split the batch to find the document at fault.
    Split,
}

/// Classifies a whole-request HTTP status (`None`: no response at all). A failure that
/// `needs_operator` (it has an operator hint) says nothing about the documents: retried.
pub fn request_action(status: Option<u16>, needs_operator: bool) -> RequestAction {
    match status {
        Some(400 | 413) if !needs_operator => RequestAction::Split,
        _ => RequestAction::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let index = OpType::Index;
        assert_eq!(item_action(201, index), ItemAction::Done);
        assert_eq!(item_action(200, index), ItemAction::Done);
        assert_eq!(item_action(429, index), ItemAction::Retry);
        assert_eq!(item_action(503, index), ItemAction::Retry);
        assert_eq!(item_action(400, index), ItemAction::DeadLetter);
        assert_eq!(item_action(403, index), ItemAction::DeadLetter);
        assert_eq!(item_action(409, index), ItemAction::DeadLetter);
        assert_eq!(item_action(409, OpType::Create), ItemAction::Duplicate);
        assert_eq!(item_action(201, OpType::Create), ItemAction::Done);
        assert_eq!(request_action(None, false), RequestAction::Retry);
        assert_eq!(request_action(Some(429), false), RequestAction::Retry);
        assert_eq!(request_action(Some(503), false), RequestAction::Retry);
        assert_eq!(request_action(Some(401), true), RequestAction::Retry);
        assert_eq!(request_action(Some(413), false), RequestAction::Split);
        assert_eq!(request_action(Some(400), false), RequestAction::Split);
        assert_eq!(request_action(Some(400), true), RequestAction::Retry);
    }
}

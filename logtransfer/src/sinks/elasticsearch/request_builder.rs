//! Encoded documents -> `_bulk` request bodies, cut at `max_docs` or `max_bytes`.
//! (`max_wait_ms` is the driver's job: see `sink.rs`.)

use std::ops::Range;
use std::sync::Arc;

use super::encoder::EncodedDoc;
use crate::event::DocKey;

/// One document inside a request body.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Its origin and `_id`.
    pub key: DocKey,
    /// Its index.
    pub index: Arc<str>,
    /// Its action + source lines in `Batch::body`.
    pub range: Range<usize>,
    /// Where the source starts in `Batch::body`.
    pub source_start: usize,
    /// When its line was read ([`EncodedDoc::read_at_ms`]).
    pub read_at_ms: Option<i64>,
}

/// A `_bulk` request body and the documents in it, in body order (the response's
/// `items` come back in the same order).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// NDJSON body.
    pub body: Vec<u8>,
    /// Documents, in order.
    pub items: Vec<BatchItem>,
}

impl Batch {
    /// Number of documents.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when it holds no document.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends one document.
    pub fn push(&mut self, doc: EncodedDoc) {
        let start = self.body.len();
        self.body.extend_from_slice(&doc.bytes);
        self.items.push(BatchItem {
            key: doc.key,
            index: doc.index,
            range: start..self.body.len(),
            source_start: start + doc.action_len,
            read_at_ms: doc.read_at_ms,
        });
    }

    /// The source (document JSON, without newline) of item `i`.
    pub fn source(&self, i: usize) -> &[u8] {
        let item = &self.items[i];
        let end = item.range.end.saturating_sub(1).max(item.source_start);
        &self.body[item.source_start..end]
    }

    /// The `_id` of item `i`, read back from its action line (for dead letters: rare, so
    /// it is not kept per document).
    pub fn doc_id(&self, i: usize) -> String {
        let item = &self.items[i];
        serde_json::from_slice::<serde_json::Value>(&self.body[item.range.start..item.source_start])
            .ok()
            .and_then(|action| {
                let (_, meta) = action.as_object()?.iter().next()?;
                meta.get("_id")?.as_str().map(str::to_owned)
            })
            .unwrap_or_else(|| item.key.id())
    }

    /// A new batch holding only the items at `indices` (to retry a subset).
    pub fn subset(&self, indices: &[usize]) -> Batch {
        let mut out = Batch::default();
        for &i in indices {
            let item = &self.items[i];
            let start = out.body.len();
            out.body.extend_from_slice(&self.body[item.range.clone()]);
            out.items.push(BatchItem {
                key: item.key.clone(),
                index: item.index.clone(),
                range: start..out.body.len(),
                source_start: start + (item.source_start - item.range.start),
                read_at_ms: item.read_at_ms,
            });
        }
        out
    }

    /// Splits in two halves (to isolate a document a whole request was refused for).
    pub fn split(&self) -> (Batch, Batch) {
        let mid = self.items.len() / 2;
        let first: Vec<usize> = (0..mid).collect();
        let second: Vec<usize> = (mid..self.items.len()).collect();
        (self.subset(&first), self.subset(&second))
    }
}

/// Accumulates documents into batches of at most `max_docs` documents and (unless a
/// single document is bigger) `max_bytes` bytes.
#[derive(Debug)]
pub struct RequestBuilder {
    max_docs: usize,
    max_bytes: usize,
    current: Batch,
}

impl RequestBuilder {
    /// A builder with these limits (each at least 1).
    pub fn new(max_docs: usize, max_bytes: usize) -> Self {
        Self {
            max_docs: max_docs.max(1),
            max_bytes: max_bytes.max(1),
            current: Batch::default(),
        }
    }

    /// Adds a document; returns a batch when one is complete. The document that would
    /// push a batch over `max_bytes` starts the next one.
    pub fn push(&mut self, doc: EncodedDoc) -> Option<Batch> {
        let mut done = None;
        if !self.current.is_empty() && self.current.body.len() + doc.bytes.len() > self.max_bytes {
            done = Some(self.take());
        }
        self.current.push(doc);
        if done.is_none()
            && (self.current.len() >= self.max_docs || self.current.body.len() >= self.max_bytes)
        {
            done = Some(self.take());
        }
        done
    }

    /// Documents waiting.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Takes what is waiting (maybe empty).
    pub fn take(&mut self) -> Batch {
        std::mem::take(&mut self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::OpType;
    use super::super::encoder::encode;
    use super::*;
    use serde_json::{Map, Value};

    fn doc(offset: i64, msg: &str) -> EncodedDoc {
        let mut m = Map::new();
        m.insert("message".into(), Value::String(msg.into()));
        encode(
            DocKey {
                topic: "t".into(),
                partition: 0,
                offset,
            },
            "i".into(),
            OpType::Index,
            None,
            &m,
        )
    }

    #[test]
    fn cuts_at_max_docs() {
        let mut b = RequestBuilder::new(3, 1 << 20);
        assert!(b.push(doc(0, "a")).is_none());
        assert!(b.push(doc(1, "a")).is_none());
        let batch = b.push(doc(2, "a")).unwrap();
        assert_eq!(batch.len(), 3);
        assert!(b.is_empty());
        assert_eq!(batch.source(1), br#"{"message":"a"}"#);
    }

    #[test]
    fn cuts_before_max_bytes() {
        let one = doc(0, "xxxxxxxxxx").bytes.len();
        let mut b = RequestBuilder::new(100, one * 2 + 1);
        assert!(b.push(doc(0, "xxxxxxxxxx")).is_none());
        assert!(b.push(doc(1, "xxxxxxxxxx")).is_none());
        let batch = b.push(doc(2, "xxxxxxxxxx")).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(b.len(), 1);
        // A document bigger than the limit goes alone.
        let mut b = RequestBuilder::new(100, 5);
        assert_eq!(b.push(doc(0, "big")).unwrap().len(), 1);
    }

    #[test]
    fn subset_keeps_lines_intact() {
        let mut batch = Batch::default();
        for i in 0..4 {
            batch.push(doc(i, &format!("m{i}")));
        }
        let sub = batch.subset(&[1, 3]);
        assert_eq!(sub.items[1].key.offset, 3);
        assert_eq!(sub.source(1), br#"{"message":"m3"}"#);
        let text = String::from_utf8(sub.body).unwrap();
        assert_eq!(text.lines().count(), 4);
        let (a, b) = batch.split();
        assert_eq!((a.len(), b.len()), (2, 2));
        assert_eq!(b.source(0), br#"{"message":"m2"}"#);
    }
}

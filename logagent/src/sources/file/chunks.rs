//! The buffers a tailer reads and encodes into, shared by all tailers.
//!
//! A tailer holds a read buffer and the encoded lines of one chunk only from the read until
//! the chunk is handed to the sink. Giving each of a hundred tailers its own pair kept a
//! hundred encoded chunks alive at once: when the in-flight limit was reached every tailer
//! had already read and encoded its next chunk before waiting for room, roughly doubling the
//! agent's memory in a burst. A pool of one pair per runtime thread bounds that to what the
//! threads can actually work on; the pool's semaphore is FIFO, so files take turns chunk by
//! chunk and none is starved.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lines::Line;
use crate::encode::{FileEncoder, read_time};
use crate::identity::EventKey;

/// Bytes read from a file at once.
pub const READ_CHUNK: usize = 16 * 1024;

/// A batch buffer that grew past this (a chunk of very long lines) is shrunk back when it is
/// returned, so one 1 MiB line does not pin megabytes for the agent's lifetime.
const KEEP_BATCH_BYTES: usize = 256 * 1024;

/// What librdkafka counts besides key and value against `message.max.bytes` (a v2 record's
/// varint header, 36 bytes at most), with room to spare for the batch header a broker adds.
const RECORD_OVERHEAD: usize = 128;

/// Encoded lines in one buffer: `(end offset, start, len)` per line.
pub struct Batch {
    /// When the lines were read, Unix milliseconds.
    pub read_at_ms: i64,
    /// The encoded messages, back to back.
    pub bytes: Vec<u8>,
    /// Per message: the file offset just past its line, and its range in `bytes`.
    pub lines: Vec<(u64, usize, usize)>,
    /// Lines whose message was cut to fit the producer's `message.max.bytes`.
    pub cut: u64,
    /// The producer's `message.max.bytes` less the record overhead.
    max_message: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            read_at_ms: 0,
            bytes: Vec::new(),
            lines: Vec::new(),
            cut: 0,
            max_message: usize::MAX,
        }
    }
}

impl Batch {
    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
        self.cut = 0;
    }

    /// Empties the batch for lines read now; returns the read time as `@timestamp` text.
    pub fn start(&mut self) -> String {
        let (timestamp, read_at_ms) = read_time();
        self.clear();
        self.read_at_ms = read_at_ms;
        timestamp
    }

    /// Encodes `line` and appends it, cut to fit the producer's `message.max.bytes`; its
    /// event id takes its content part from `key`.
    pub fn push(&mut self, encoder: &FileEncoder, key: &EventKey, ts: &str, line: Line<'_>) {
        let start = self.bytes.len();
        // The key counts against the limit too.
        let max = self.max_message.saturating_sub(encoder.key().len());
        if encoder.encode_within(
            &mut self.bytes,
            ts,
            line.bytes,
            line.truncated,
            line.offset,
            key.for_line(line.end),
            max,
        ) {
            self.cut += 1;
        }
        self.lines.push((line.end, start, self.bytes.len() - start));
    }
}

/// One read buffer and one batch.
pub struct Chunk {
    /// Where file bytes are read to ([`READ_CHUNK`] long).
    pub read: Vec<u8>,
    /// The encoded lines of what was read.
    pub batch: Batch,
}

/// A fixed number of [`Chunk`]s handed out in FIFO order.
#[derive(Clone)]
pub struct ChunkPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    turns: Arc<Semaphore>,
    free: parking_lot::Mutex<Vec<Chunk>>,
    /// The producer's `message.max.bytes` less [`RECORD_OVERHEAD`].
    max_message: usize,
    /// Turns lent out by [`ChunkPool::lend_turn`] that could not be taken back yet (every
    /// chunk was in use): the next leases to end forget their turn instead of returning it.
    owed: std::sync::atomic::AtomicUsize,
}

impl ChunkPool {
    /// A pool of `size` chunks (at least one).
    pub fn new(size: usize) -> Self {
        Self::with_message_limit(size, usize::MAX)
    }

    /// A pool of `size` chunks whose batches cut every message to fit a producer whose
    /// `message.max.bytes` is `message_max_bytes`.
    pub fn with_message_limit(size: usize, message_max_bytes: usize) -> Self {
        let size = size.max(1);
        let free = (0..size)
            .map(|_| Chunk {
                read: vec![0; READ_CHUNK],
                batch: Batch::default(),
            })
            .collect();
        ChunkPool {
            inner: Arc::new(PoolInner {
                turns: Arc::new(Semaphore::new(size)),
                free: parking_lot::Mutex::new(free),
                max_message: message_max_bytes.saturating_sub(RECORD_OVERHEAD),
                owed: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// One turn more, until the loan is dropped: for a tailer that holds a chunk while its
    /// file waits (a line refused or awaiting retry), so that the other files keep flowing.
    /// The pool's bound grows by one chunk per waiting file meanwhile.
    pub fn lend_turn(&self) -> TurnLoan {
        self.inner.turns.add_permits(1);
        TurnLoan {
            pool: Arc::clone(&self.inner),
        }
    }

    /// Waits for a free chunk; it returns to the pool when the lease is dropped.
    pub async fn lease(&self) -> ChunkLease {
        // The semaphore is never closed.
        let permit = Arc::clone(&self.inner.turns)
            .acquire_owned()
            .await
            .expect("the chunk pool's semaphore is never closed");
        let mut chunk = self.inner.free.lock().pop().unwrap_or_else(|| Chunk {
            read: vec![0; READ_CHUNK],
            batch: Batch::default(),
        });
        chunk.batch.max_message = self.inner.max_message;
        ChunkLease {
            chunk: Some(chunk),
            pool: Arc::clone(&self.inner),
            permit: Some(permit),
        }
    }
}

/// A chunk borrowed from the pool.
pub struct ChunkLease {
    chunk: Option<Chunk>,
    pool: Arc<PoolInner>,
    // Dropped after `drop` has put the chunk back, so the next waiter finds it.
    permit: Option<OwnedSemaphorePermit>,
}

/// A turn lent by [`ChunkPool::lend_turn`]; taken back when dropped.
pub struct TurnLoan {
    pool: Arc<PoolInner>,
}

impl Drop for TurnLoan {
    fn drop(&mut self) {
        if self.pool.turns.forget_permits(1) == 0 {
            // Every turn is in use: the next lease to end pays it back.
            self.pool.owed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::ops::Deref for ChunkLease {
    type Target = Chunk;
    fn deref(&self) -> &Chunk {
        self.chunk
            .as_ref()
            .expect("a lease holds its chunk until dropped")
    }
}

impl std::ops::DerefMut for ChunkLease {
    fn deref_mut(&mut self) -> &mut Chunk {
        self.chunk
            .as_mut()
            .expect("a lease holds its chunk until dropped")
    }
}

impl Drop for ChunkLease {
    fn drop(&mut self) {
        if let Some(mut chunk) = self.chunk.take() {
            chunk.batch.clear();
            if chunk.batch.bytes.capacity() > KEEP_BATCH_BYTES {
                chunk.batch.bytes.shrink_to(KEEP_BATCH_BYTES);
            }
            if chunk.batch.lines.capacity() > KEEP_BATCH_BYTES / 64 {
                chunk.batch.lines.shrink_to(KEEP_BATCH_BYTES / 64);
            }
            self.pool.free.lock().push(chunk);
        }
        let owed = &self.pool.owed;
        if owed.load(Ordering::Relaxed) > 0
            && owed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            && let Some(permit) = self.permit.take()
        {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_lease_waits_for_the_first_and_gets_its_buffers_back_shrunk() {
        let pool = ChunkPool::new(1);
        let mut first = pool.lease().await;
        first.batch.bytes.resize(4 * KEEP_BATCH_BYTES, b'x');
        let p2 = pool.clone();
        let waiter = tokio::spawn(async move {
            let lease = p2.lease().await;
            (
                lease.read.len(),
                lease.batch.bytes.len(),
                lease.batch.bytes.capacity(),
            )
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the only chunk is leased");
        drop(first);
        let (read, len, capacity) = waiter.await.unwrap();
        assert_eq!(read, READ_CHUNK);
        assert_eq!(len, 0, "a returned batch is empty");
        assert!(capacity <= KEEP_BATCH_BYTES, "capacity {capacity} was kept");
    }

    #[tokio::test]
    async fn a_lent_turn_lets_another_lease_through_and_is_taken_back() {
        let pool = ChunkPool::new(1);
        let held = pool.lease().await;
        let loan = pool.lend_turn();
        let other = pool.lease().await;
        // Given back while both turns are in use: paid back when a lease ends.
        drop(loan);
        drop(other);
        drop(held);
        let _one = pool.lease().await;
        let p2 = pool.clone();
        let second = tokio::spawn(async move { drop(p2.lease().await) });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "back to one turn");
    }
}

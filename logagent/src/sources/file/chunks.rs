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

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lines::Line;
use crate::encode::{FileEncoder, read_time};

/// Bytes read from a file at once.
pub const READ_CHUNK: usize = 16 * 1024;

/// A batch buffer that grew past this (a chunk of very long lines) is shrunk back when it is
/// returned, so one 1 MiB line does not pin megabytes for the agent's lifetime.
const KEEP_BATCH_BYTES: usize = 256 * 1024;

/// Encoded lines in one buffer: `(end offset, start, len)` per line.
#[derive(Default)]
pub struct Batch {
    /// When the lines were read, Unix milliseconds.
    pub read_at_ms: i64,
    /// The encoded messages, back to back.
    pub bytes: Vec<u8>,
    /// Per message: the file offset just past its line, and its range in `bytes`.
    pub lines: Vec<(u64, usize, usize)>,
}

impl Batch {
    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
    }

    /// Empties the batch for lines read now; returns the read time as `@timestamp` text.
    pub fn start(&mut self) -> String {
        let (timestamp, read_at_ms) = read_time();
        self.clear();
        self.read_at_ms = read_at_ms;
        timestamp
    }

    /// Encodes `line` and appends it.
    pub fn push(&mut self, encoder: &FileEncoder, ts: &str, line: Line<'_>) {
        let start = self.bytes.len();
        encoder.encode_into(&mut self.bytes, ts, line.bytes, line.truncated, line.offset);
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
}

impl ChunkPool {
    /// A pool of `size` chunks (at least one).
    pub fn new(size: usize) -> Self {
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
            }),
        }
    }

    /// Waits for a free chunk; it returns to the pool when the lease is dropped.
    pub async fn lease(&self) -> ChunkLease {
        // The semaphore is never closed.
        let permit = Arc::clone(&self.inner.turns)
            .acquire_owned()
            .await
            .expect("the chunk pool's semaphore is never closed");
        let chunk = self.inner.free.lock().pop().unwrap_or_else(|| Chunk {
            read: vec![0; READ_CHUNK],
            batch: Batch::default(),
        });
        ChunkLease {
            chunk: Some(chunk),
            pool: Arc::clone(&self.inner),
            _permit: permit,
        }
    }
}

/// A chunk borrowed from the pool.
pub struct ChunkLease {
    chunk: Option<Chunk>,
    pool: Arc<PoolInner>,
    // Dropped after `drop` has put the chunk back, so the next waiter finds it.
    _permit: OwnedSemaphorePermit,
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
}

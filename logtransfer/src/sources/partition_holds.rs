//! Partitions whose fetching is paused because too many of their records wait to be
//! committed behind one that is not settled yet (a document in per-item retry, for minutes
//! with the default retry settings, while the rest of its partition is indexed).
//!
//! The acknowledgement window keeps every record from the oldest unsettled one to the
//! newest read, so without a limit a stuck record makes it grow with everything read after
//! it. Past `[kafka] max_pending_per_partition` pending records the partition is paused
//! (librdkafka stops fetching it and drops what it prefetched: resuming fetches again from
//! the next record to deliver, so nothing is lost), and it is resumed once half of them are
//! settled. Other partitions keep flowing. This is separate from the whole-consumer pause of
//! back-pressure: resuming that must not resume a held partition, and a held partition that
//! is revoked is forgotten (the tracker forgets it too).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, ConsumerContext};

use crate::acks::OffsetTracker;

/// The held partitions (see the [module docs](self)).
#[derive(Debug, Default)]
pub(crate) struct PartitionHolds {
    held: Mutex<HashSet<(Arc<str>, i32)>>,
}

impl PartitionHolds {
    /// How many partitions are held.
    pub(crate) fn len(&self) -> usize {
        self.held.lock().len()
    }

    /// `list` without the held partitions (what a resume may resume).
    pub(crate) fn without_held(&self, list: &TopicPartitionList) -> TopicPartitionList {
        let held = self.held.lock();
        let mut out = TopicPartitionList::new();
        for e in list.elements() {
            if !held.contains(&(Arc::from(e.topic()), e.partition())) {
                out.add_partition(e.topic(), e.partition());
            }
        }
        out
    }

    /// Pauses the partition if it is not held yet; returns whether it was newly held.
    pub(crate) fn hold<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        topic: &Arc<str>,
        partition: i32,
        pending: usize,
    ) -> bool {
        if !self.held.lock().insert((topic.clone(), partition)) {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = consumer.pause(&tpl) {
            log::warn!("cannot pause partition {topic}/{partition}: {e}");
        }
        log::warn!(
            "partition {topic}/{partition}: {pending} records wait behind one not yet indexed or dead-lettered (max_pending_per_partition); fetching it is paused until half of them are settled"
        );
        true
    }

    /// Resumes the held partitions whose pending records fell to `limit / 2` (or that are
    /// no longer tracked); while the whole consumer is paused (`consumer_paused`) they are
    /// only released, and the consumer's resume resumes them.
    pub(crate) fn release_settled<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        tracker: &OffsetTracker,
        limit: usize,
        consumer_paused: bool,
    ) {
        let mut held = self.held.lock();
        held.retain(|(topic, partition)| {
            let pending = tracker.pending(topic, *partition);
            if pending.is_some_and(|n| n > limit / 2) {
                return true;
            }
            if pending.is_some() && !consumer_paused {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, *partition);
                match consumer.resume(&tpl) {
                    Ok(()) => log::info!(
                        "partition {topic}/{partition}: the records it waited for are settled; fetching resumed"
                    ),
                    Err(e) => {
                        log::warn!("cannot resume partition {topic}/{partition}: {e}");
                        return true;
                    }
                }
            }
            false
        });
    }

    /// The partition was revoked: it is no longer ours to hold.
    pub(crate) fn forget(&self, topic: &str, partition: i32) {
        self.held
            .lock()
            .retain(|(t, p)| !(&**t == topic && *p == partition));
    }
}

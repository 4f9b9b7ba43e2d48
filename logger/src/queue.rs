//! The bounded queue between callers and the writer thread: many producers, one
//! consumer (Vyukov's bounded queue). Unlike a channel, the consumer reads each record
//! in place and never copies it out, and nobody ever blocks inside the queue: waiting
//! policies (block, drop) belong to the caller.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Keeps the producers' and the consumer's hot counters on different cache lines.
#[repr(align(128))]
struct Padded(AtomicUsize);

struct Slot<T> {
    /// `pos` when free for the producer that will take position `pos`; `pos + 1` when
    /// filled for the consumer at `pos`.
    seq: AtomicUsize,
    val: UnsafeCell<MaybeUninit<T>>,
}

struct Inner<T> {
    head: Padded,
    tail: Padded,
    mask: usize,
    slots: Box<[Slot<T>]>,
}

// SAFETY: a slot's value is only touched by the one thread that owns it by the `seq`
// protocol (the producer that won its position, then the single consumer).
unsafe impl<T: Send> Send for Inner<T> {}
unsafe impl<T: Send> Sync for Inner<T> {}

/// The producing side; clone freely.
pub(crate) struct Producer<T>(Arc<Inner<T>>);

/// The consuming side; exactly one exists.
pub(crate) struct Consumer<T>(Arc<Inner<T>>);

/// A queue holding at least `capacity` items (rounded up to a power of two).
pub(crate) fn bounded<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let slots = (0..cap)
        .map(|i| Slot {
            seq: AtomicUsize::new(i),
            val: UnsafeCell::new(MaybeUninit::uninit()),
        })
        .collect();
    let inner = Arc::new(Inner {
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
        mask: cap - 1,
        slots,
    });
    (Producer(inner.clone()), Consumer(inner))
}

impl<T> Producer<T> {
    /// Adds `v`, or gives it back when the queue is full.
    #[inline]
    pub(crate) fn push(&self, v: T) -> Result<(), T> {
        match self.claim() {
            Some(claim) => {
                claim.publish(v);
                Ok(())
            }
            None => Err(v),
        }
    }

    /// Takes the next slot without filling it yet, so the caller can build its value
    /// straight into the queue; `None` when the queue is full.
    #[inline]
    pub(crate) fn claim(&self) -> Option<Claim<'_, T>> {
        let q = &*self.0;
        let mut pos = q.tail.0.load(Ordering::Relaxed);
        loop {
            let slot = &q.slots[pos & q.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            let dif = seq.wrapping_sub(pos) as isize;
            if dif == 0 {
                match q.tail.0.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(Claim { slot, pos }),
                    Err(now) => pos = now,
                }
            } else if dif < 0 {
                return None;
            } else {
                pos = q.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Slots in all.
    pub(crate) fn capacity(&self) -> usize {
        self.0.mask + 1
    }

    /// Slots free right now (a snapshot: others may take or free slots meanwhile).
    pub(crate) fn free(&self) -> usize {
        let q = &*self.0;
        let used = q
            .tail
            .0
            .load(Ordering::Relaxed)
            .wrapping_sub(q.head.0.load(Ordering::Relaxed));
        (q.mask + 1).saturating_sub(used)
    }

    /// The consumer's position: everything before it has been consumed.
    pub(crate) fn head(&self) -> usize {
        self.0.head.0.load(Ordering::Acquire)
    }

    /// The position the next push will take: everything pushed before this call has a
    /// smaller position.
    pub(crate) fn tail(&self) -> usize {
        self.0.tail.0.load(Ordering::Acquire)
    }
}

/// A taken slot. It must be filled: the consumer waits for it.
pub(crate) struct Claim<'a, T> {
    slot: &'a Slot<T>,
    pos: usize,
}

impl<T> Claim<'_, T> {
    /// Fills the slot with `v` and hands it to the consumer.
    #[inline]
    pub(crate) fn publish(self, v: T) {
        // SAFETY: the claim owns the slot until `seq` is stored.
        unsafe { (*self.slot.val.get()).write(v) };
        self.slot
            .seq
            .store(self.pos.wrapping_add(1), Ordering::Release);
    }

    /// Builds the value straight into the slot and hands it to the consumer. If
    /// `build` panics, `fallback` fills the slot instead (the consumer would otherwise
    /// wait for it forever) and the panic goes on.
    #[inline]
    pub(crate) fn publish_with(self, build: impl FnOnce() -> T, fallback: fn() -> T) {
        struct OnUnwind<'a, T> {
            slot: &'a Slot<T>,
            pos: usize,
            fallback: Option<fn() -> T>,
        }
        impl<T> Drop for OnUnwind<'_, T> {
            fn drop(&mut self) {
                if let Some(f) = self.fallback.take() {
                    // SAFETY: `build` never wrote the slot (it panicked first).
                    unsafe { (*self.slot.val.get()).write(f()) };
                    self.slot
                        .seq
                        .store(self.pos.wrapping_add(1), Ordering::Release);
                }
            }
        }
        let mut guard = OnUnwind {
            slot: self.slot,
            pos: self.pos,
            fallback: Some(fallback),
        };
        // SAFETY: the claim owns the slot until `seq` is stored.
        unsafe { (*self.slot.val.get()).write(build()) };
        guard.fallback = None;
        self.slot
            .seq
            .store(self.pos.wrapping_add(1), Ordering::Release);
    }
}

impl<T> Consumer<T> {
    /// Hands the oldest item to `f` in place, then drops it. False when empty.
    #[inline]
    pub(crate) fn consume(&mut self, f: impl FnOnce(&mut T)) -> bool {
        let q = &*self.0;
        let pos = q.head.0.load(Ordering::Relaxed);
        let slot = &q.slots[pos & q.mask];
        if slot.seq.load(Ordering::Acquire) != pos.wrapping_add(1) {
            return false;
        }
        // SAFETY: seq == pos + 1 means the producer finished writing this slot and no
        // one else reads it until we release it.
        unsafe {
            let p = (*slot.val.get()).as_mut_ptr();
            f(&mut *p);
            std::ptr::drop_in_place(p);
        }
        slot.seq
            .store(pos.wrapping_add(q.mask + 1), Ordering::Release);
        q.head.0.store(pos.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// Position of the next item to consume.
    pub(crate) fn head(&self) -> usize {
        self.0.head.0.load(Ordering::Relaxed)
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        let mut pos = *self.head.0.get_mut();
        loop {
            let slot = &mut self.slots[pos & self.mask];
            if *slot.seq.get_mut() != pos.wrapping_add(1) {
                break;
            }
            // SAFETY: filled and never consumed; we have `&mut self`.
            unsafe { slot.val.get_mut().assume_init_drop() };
            *slot.seq.get_mut() = pos.wrapping_add(self.mask + 1);
            pos = pos.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_wraparound() {
        let (p, mut c) = bounded::<String>(4);
        for round in 0..3 {
            for i in 0..4 {
                p.push(format!("{round}-{i}")).unwrap();
            }
            assert_eq!(p.push("x".into()), Err("x".to_string()));
            for i in 0..4 {
                assert!(c.consume(|s| assert_eq!(s, &format!("{round}-{i}"))));
            }
            assert!(!c.consume(|_| unreachable!()));
        }
        p.push("left over".into()).unwrap();
        let claim = p.claim().unwrap();
        claim.publish_with(|| "claimed".into(), String::new);
        assert!(c.consume(|s| assert_eq!(s, "left over")));
        assert!(c.consume(|s| assert_eq!(s, "claimed")));
    }

    #[test]
    fn four_producers_lose_nothing() {
        let (p, mut c) = bounded::<(usize, usize)>(64);
        let p = Arc::new(p);
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let mut v = (t, i);
                        while let Err(back) = p.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0usize; 4];
        let mut got = 0;
        while got < 80_000 {
            if !c.consume(|&mut (t, i)| {
                assert_eq!(i, next[t], "per-producer order");
                next[t] += 1;
            }) {
                std::thread::yield_now();
            } else {
                got += 1;
            }
        }
        for h in producers {
            h.join().unwrap();
        }
        assert_eq!(next, [20_000; 4]);
    }
}

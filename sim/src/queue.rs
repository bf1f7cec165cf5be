//! The event queue: a min-heap on `(time, seq)`, so events at the same millisecond run in the
//! order they were scheduled, on every run.
//!
//! Each entry is one `u128`: the time, the scheduling sequence and the event packed together
//! (docs/decisions/simulator-memory.md), so the heap moves 16-byte entries and orders them with a single
//! comparison.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bits of an entry that hold the event.
const EVENT_BITS: u32 = 36;
/// Bits that hold the sequence number: 2^48 pushes.
const SEQ_BITS: u32 = 48;
/// What is left holds the time: 2^44 ms, over 500 years.
const TIME_SHIFT: u32 = EVENT_BITS + SEQ_BITS;

/// An event that fits in [`EVENT_BITS`] bits.
pub(crate) trait Packed: Copy {
    /// The event as a number below `2^36`.
    fn pack(self) -> u64;
    /// The event back from [`Packed::pack`].
    fn unpack(bits: u64) -> Self;
}

/// Events ordered by time, ties by scheduling order.
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<u128>>,
    seq: u64,
    _event: std::marker::PhantomData<E>,
}

impl<E: Packed> Queue<E> {
    pub(crate) fn new() -> Self {
        Queue { heap: BinaryHeap::new(), seq: 0, _event: std::marker::PhantomData }
    }

    /// Schedules `event` at `time` (milliseconds).
    pub(crate) fn push(&mut self, time: u64, event: E) {
        self.seq += 1;
        let bits = event.pack();
        debug_assert!(
            bits >> EVENT_BITS == 0 && self.seq >> SEQ_BITS == 0 && time >> (128 - TIME_SHIFT) == 0
        );
        let key = (u128::from(time) << TIME_SHIFT) | (u128::from(self.seq) << EVENT_BITS) | u128::from(bits);
        self.heap.push(Reverse(key));
    }

    /// The earliest event.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        let Reverse(key) = self.heap.pop()?;
        let time = (key >> TIME_SHIFT) as u64;
        Some((time, E::unpack((key as u64) & ((1 << EVENT_BITS) - 1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Packed for u32 {
        fn pack(self) -> u64 {
            u64::from(self)
        }
        fn unpack(bits: u64) -> Self {
            bits as u32
        }
    }

    #[test]
    fn ties_break_by_scheduling_order() {
        let mut q = Queue::new();
        q.push(5, 2u32);
        q.push(1, 1);
        q.push(5, 3);
        q.push(5, u32::MAX);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(1, 1), (5, 2), (5, 3), (5, u32::MAX)]);
    }

    proptest! {
        /// The packed heap pops exactly what a heap on `(time, seq)` with the event beside pops.
        #[test]
        fn pops_what_a_heap_on_time_and_seq_pops(
            ops in proptest::collection::vec(proptest::option::of((0u64..1 << 40, any::<u32>())), 1..300)
        ) {
            let mut q = Queue::new();
            let mut reference = BinaryHeap::new();
            for (seq, o) in ops.iter().chain(std::iter::repeat_n(&None, 300)).enumerate() {
                if let Some((t, e)) = *o {
                    q.push(t, e);
                    reference.push(Reverse((t, seq, e)));
                } else {
                    prop_assert_eq!(q.pop(), reference.pop().map(|Reverse((t, _, e))| (t, e)));
                }
            }
        }
    }
}

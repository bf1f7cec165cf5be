//! The event queue: a min-heap on `(time, seq)`, so events at the same millisecond run in the
//! order they were scheduled, on every run.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// `time << 64 | seq` in one integer, so ordering is a single comparison.
struct Entry<E> {
    key: u128,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Events ordered by time, ties by scheduling order.
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
}

impl<E> Queue<E> {
    pub(crate) fn new() -> Self {
        Queue { heap: BinaryHeap::new(), seq: 0 }
    }

    /// Schedules `event` at `time` (milliseconds).
    pub(crate) fn push(&mut self, time: u64, event: E) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { key: (u128::from(time) << 64) | u128::from(self.seq), event }));
    }

    /// The earliest event.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|Reverse(e)| ((e.key >> 64) as u64, e.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_scheduling_order() {
        let mut q = Queue::new();
        q.push(5, "b");
        q.push(1, "a");
        q.push(5, "c");
        q.push(5, "d");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(1, "a"), (5, "b"), (5, "c"), (5, "d")]);
    }
}

//! The requests of an HTTP/1 flow waiting for their responses, in order.

use crate::classify::http::Pending;
use std::collections::VecDeque;

/// Requests kept in the queue itself: a flow has one request in flight but when it pipelines.
/// 2 rather than 4 (16 bytes, not 24), `bench/misses` one thread, cycles~: 30 MB slices default
/// 75.513 -> 75.510 M, mesh 80.207 -> 80.187 M; 100 MB files default 233.302 -> 233.234 M, mesh
/// 308.493 -> 308.437 M.
const INLINE: usize = 2;

/// A queue of [`Pending`] requests: the first [`INLINE`] in a ring in the value itself, the
/// ones after them (pipelined requests) in a `VecDeque` allocated at the first of them. A
/// `VecDeque` alone was allocated at each flow's first request (a malloc, its cold block
/// written, then freed), and is 32 bytes to this 16. `bench/misses` one thread, cycles~:
/// 30 MB slices default 75.69 -> 75.58 M, mesh 80.34 -> 80.32 M; 100 MB files default
/// 234.17 -> 233.83 M (L2 misses 2.240 -> 2.229 M), mesh 309.71 -> 309.31 M (L2 3.075 ->
/// 3.064 M).
#[derive(Clone, Debug, Default)]
pub(in crate::classify::http) struct PendingQueue {
    ring: [Pending; INLINE],
    /// Index of the first request in `ring`.
    head: u8,
    /// Requests in `ring` (the oldest `ring_len`, the later ones in `more`).
    ring_len: u8,
    /// Boxed: 8 bytes in the session for what few flows use (a `VecDeque` is 32).
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<Pending>>>,
}

impl PendingQueue {
    /// Number of requests waiting.
    pub(in crate::classify::http) fn len(&self) -> usize {
        usize::from(self.ring_len) + self.more.as_ref().map_or(0, |m| m.len())
    }

    /// No request waiting.
    #[cfg(test)]
    pub(in crate::classify::http) fn is_empty(&self) -> bool {
        self.ring_len == 0
    }

    /// Queues `p` after the others.
    pub(in crate::classify::http) fn push_back(&mut self, p: Pending) {
        let n = usize::from(self.ring_len);
        if n < INLINE && self.more.as_ref().is_none_or(|m| m.is_empty()) {
            self.ring[(usize::from(self.head) + n) % INLINE] = p;
            self.ring_len += 1;
            return;
        }
        self.more.get_or_insert_default().push_back(p);
    }

    /// The first request, if any.
    pub(in crate::classify::http) fn front(&self) -> Option<&Pending> {
        (self.ring_len > 0).then(|| &self.ring[usize::from(self.head)])
    }

    /// Takes the first request, if any; the first of `more` moves into the ring.
    pub(in crate::classify::http) fn pop_front(&mut self) -> Option<Pending> {
        if self.ring_len == 0 {
            return None;
        }
        let h = usize::from(self.head);
        let p = self.ring[h];
        self.head = ((h + 1) % INLINE) as u8;
        self.ring_len -= 1;
        if let Some(next) = self.more.as_mut().and_then(|m| m.pop_front()) {
            self.ring[(usize::from(self.head) + usize::from(self.ring_len)) % INLINE] = next;
            self.ring_len += 1;
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_come_out_in_order_past_the_ring() {
        let p = |i: usize| Pending { head: i & 1 != 0, connect: i & 2 != 0, h2c: i & 4 != 0 };
        let key = |p: Pending| usize::from(p.head) | usize::from(p.connect) << 1 | usize::from(p.h2c) << 2;
        assert_eq!(std::mem::size_of::<PendingQueue>(), 16);
        let mut q = PendingQueue::default();
        let mut want = VecDeque::new();
        // Pushes and pops interleaved (up to 7 pushed at once, most of them past the ring), against
        // a VecDeque, then drained.
        for round in 0..40 {
            let pushes = [3, 1, 0, 7, 2, 0, 1, 5][round % 8];
            for i in 0..pushes {
                q.push_back(p(round + i));
                want.push_back(key(p(round + i)));
            }
            for _ in 0..(round % 3 + 1) {
                assert_eq!(q.front().map(|&f| key(f)), want.front().copied());
                assert_eq!(q.pop_front().map(key), want.pop_front());
                assert_eq!((q.len(), q.is_empty()), (want.len(), want.is_empty()));
            }
        }
        while let Some(w) = want.pop_front() {
            assert_eq!(q.pop_front().map(key), Some(w));
        }
        assert_eq!((q.pop_front().map(key), q.front().map(|&f| key(f)), q.len()), (None, None, 0));
        // `INLINE` requests stay in the value.
        let mut q = PendingQueue::default();
        (0..INLINE).for_each(|i| q.push_back(p(i)));
        assert!(q.more.is_none());
        q.push_back(p(7));
        assert_eq!(q.more.as_ref().map(|m| m.len()), Some(1));
    }
}

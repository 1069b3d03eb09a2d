//! What a bypassed direction of a [`Reassembler`] still checks. Once its consumer is done (a TLS
//! flow whose handshake was read, a stream with no protocol once scanned) nothing is delivered or
//! buffered, but its segments still show retransmissions, reordering and holes never filled
//! (`retransmitted`, `out_of_order`, `gaps`): most of a mesh's traffic is TLS after its
//! handshake, and its retransmissions went unflagged (issue 22, fourteenth session).
//!
//! What was seen is `next` (the end of the bytes seen in order) and at most one hole after it
//! ([`BypassHole`]), kept in the window's `file_end` word, unused once bypassed (the reassembler
//! stays 48 bytes, one cache line of the flow slot). A segment past a second hole is not
//! remembered (a copy of it is not flagged), and a hole that bytes past it keep open for more
//! than [`MAX_BYPASS_HOLE_SPAN`] was never captured: it is given up as a gap, so a copy of its
//! bytes arriving even later counts as a retransmission. So, with no hole given up, a
//! retransmission is only ever a segment with a byte seen before (property-tested below).
//!
//! `scripts/retx-check.py` compares the flag with tshark's analysis: flow for flow on both 100 MB
//! bench files. Cost: cycles~ +0.3% (default 100 MB) / +0.1% (mesh), one thread: a bypassed
//! packet reads its reassembler's cache line, which the busiest flows keep warm.

use super::{is_keepalive, seq_diff, window, HalfStats, Reassembler};

/// The most a hole of a bypassed direction stays open while bytes past it arrive: 64 KiB (a
/// reordering resolves within a few segments; more is a segment the capture never saw).
pub(crate) const MAX_BYPASS_HOLE_SPAN: u32 = 64 * 1024;

/// What a bypassed direction has seen past `next`, when it has: bytes `hole_end..high` (a hole
/// `next..hole_end` before them). See [`Reassembler::bypassed_segment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BypassHole {
    next: u32,
    hole_end: u32,
    high: u32,
}

impl BypassHole {
    /// From the reassembler's `file_end` word ([`window::NO_FILE`]: no hole).
    fn unpack(word: u64, next: u32) -> Self {
        if word == window::NO_FILE {
            return BypassHole { next, hole_end: next, high: next };
        }
        BypassHole { next, hole_end: word as u32, high: (word >> 32) as u32 }
    }

    /// The word for `file_end` (two sequence numbers; never [`window::NO_FILE`] unless there
    /// is no hole).
    fn pack(self) -> u64 {
        if self.hole_end == self.next {
            return window::NO_FILE;
        }
        (self.high as u64) << 32 | self.hole_end as u64
    }

    /// Takes bytes `seq..end`; counts a retransmission or a reordering into `st`; false when
    /// nothing changed.
    fn take(&mut self, st: &mut HalfStats, seq: u32, end: u32) -> bool {
        let before = *self;
        let (off, past) = (seq_diff(seq, self.next), seq_diff(end, self.next));
        if off <= 0 {
            // At or before `next`: bytes before it were seen, and so were those of the run past
            // the hole it may reach.
            if is_keepalive(off, seq_diff(end, seq) as u32) {
                return false;
            }
            if off < 0 || past <= 0 {
                st.retransmitted += 1;
            }
            if past > 0 {
                self.next = end;
                if seq_diff(self.next, self.hole_end) >= 0 {
                    self.next = if seq_diff(self.high, end) > 0 { self.high } else { end };
                    self.hole_end = self.next;
                    self.high = self.next;
                }
            }
        } else if self.hole_end == self.next {
            // A new hole before this segment.
            st.out_of_order += 1;
            self.hole_end = seq;
            self.high = end;
        } else if seq_diff(seq, self.hole_end) >= 0 && seq_diff(seq, self.high) <= 0 {
            // In or right after the run past the hole.
            st.out_of_order += 1;
            if seq_diff(seq, self.high) < 0 || seq_diff(end, self.high) <= 0 {
                st.retransmitted += 1;
            }
            if seq_diff(end, self.high) > 0 {
                self.high = end;
            }
        } else if seq_diff(seq, self.high) > 0 {
            // Past the run, a second hole, which is not kept: the segment is not remembered
            // (a copy of it is not flagged), unless it lies so far past `next` that the first
            // hole was never captured: that one is given up, and this one kept.
            st.out_of_order += 1;
            if past as u32 <= MAX_BYPASS_HOLE_SPAN {
                return false;
            }
            self.give_up(st);
            self.hole_end = seq;
            self.high = end;
        } else {
            // Inside the hole, not at its start (a filler of a hole of several segments, out
            // of order itself): the hole shrinks from its end when this one reaches it.
            st.out_of_order += 1;
            if seq_diff(end, self.hole_end) >= 0 {
                self.hole_end = seq;
                if seq_diff(end, self.high) > 0 {
                    self.high = end;
                }
            }
        }
        if seq_diff(self.high, self.next) as u32 > MAX_BYPASS_HOLE_SPAN {
            self.give_up(st);
        }
        *self != before
    }

    /// Takes the hole as never captured (a `gap`, as the reassembler declares one lost) and the
    /// run past it as in order.
    fn give_up(&mut self, st: &mut HalfStats) {
        if self.hole_end != self.next {
            st.gaps += 1;
            st.lost_bytes += seq_diff(self.hole_end, self.next) as u32 as u64;
        }
        self.next = self.high;
        self.hole_end = self.high;
    }
}

impl Reassembler {
    /// Takes a payload segment (`seq`, `wire_len` bytes on the wire) of a bypassed direction:
    /// nothing is delivered, but one that carries bytes already seen counts as
    /// `retransmitted`, and one past a hole as `out_of_order` (see the module doc).
    #[inline]
    pub(crate) fn bypassed_segment(&mut self, st: &mut HalfStats, seq: u32, wire_len: u32) {
        debug_assert!(self.bypass);
        if wire_len == 0 {
            return;
        }
        let end = seq.wrapping_add(wire_len);
        if self.file_end == window::NO_FILE && seq == self.next {
            // In order, no hole: the common case.
            self.next = end;
            return;
        }
        let mut hole = self.bypass_hole();
        if hole.take(st, seq, end) {
            self.set_bypass_hole(hole);
        }
    }

    /// At the flow's end: a hole still open was never captured either (a gap).
    pub(super) fn end_bypassed(&mut self, st: &mut HalfStats) {
        if self.file_end != window::NO_FILE {
            let mut hole = self.bypass_hole();
            hole.give_up(st);
            self.set_bypass_hole(hole);
        }
    }

    fn bypass_hole(&self) -> BypassHole {
        BypassHole::unpack(self.file_end, self.next)
    }

    fn set_bypass_hole(&mut self, hole: BypassHole) {
        self.next = hole.next;
        self.file_end = hole.pack();
    }
}

#[cfg(test)]
mod tests {
    use super::super::Half;
    use crate::wire::Feed;

    /// A direction bypassed after its first 3 bytes (seq 1..4: `next` is 4).
    fn bypassed_half() -> Half {
        let mut r = Half::default();
        r.segment(0, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        r.segment(1, false, b"abc", 3, 1 << 16, &mut |_| Feed::Done);
        r
    }

    /// A direction bypassed after its first 3 bytes (seq 1..4), then fed `segs` (seq, length)
    /// as [`crate::flow::FlowTable`] feeds a bypassed direction; returns (retransmitted,
    /// out_of_order) and `next`.
    fn bypassed(segs: &[(u32, u32)]) -> ((u32, u32), u32) {
        let mut r = bypassed_half();
        assert!(r.r.is_bypassed());
        for &(seq, len) in segs {
            r.r.bypassed_segment(&mut r.stats, seq, len);
        }
        ((r.stats.retransmitted, r.stats.out_of_order), r.r.next)
    }

    #[test]
    fn bypassed_direction_counts_bytes_seen_again_as_retransmitted() {
        // In order: nothing to flag.
        assert_eq!(bypassed(&[(4, 100), (104, 100)]), ((0, 0), 204));
        // A copy of bytes delivered before the bypass, a whole copy, a copy that overlaps the
        // bytes seen and brings new ones.
        assert_eq!(bypassed(&[(1, 3)]), ((1, 0), 4));
        assert_eq!(bypassed(&[(4, 100), (4, 100), (104, 10), (54, 100)]), ((2, 0), 154));
        // Across the 2^32 wrap.
        let mut r = Half::default();
        r.segment(u32::MAX - 1, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        r.segment(u32::MAX, false, b"ab", 2, 1 << 16, &mut |_| Feed::Done);
        r.r.bypassed_segment(&mut r.stats, 1, 10);
        r.r.bypassed_segment(&mut r.stats, u32::MAX, 5);
        assert_eq!((r.stats.retransmitted, r.stats.out_of_order, r.r.next), (1, 0, 11));
    }

    #[test]
    fn bypassed_direction_reordered_is_out_of_order_not_retransmitted() {
        // 104..204 arrives before 4..104 (a reordering): its late filler is new bytes, and the
        // run past the hole is in order once it came.
        assert_eq!(bypassed(&[(104, 100), (4, 100)]), ((0, 1), 204));
        assert_eq!(bypassed(&[(104, 100), (4, 100), (204, 50)]), ((0, 1), 254));
        // Then copies of either are seen again (the bench file's reordered flows that tshark
        // flags for a later retransmission).
        assert_eq!(bypassed(&[(104, 100), (4, 100), (104, 100), (4, 100)]), ((2, 1), 204));
        // A copy of the run past a hole still open is seen again too.
        assert_eq!(bypassed(&[(104, 100), (204, 100), (154, 50)]), ((1, 3), 4));
        // A hole of two segments filled in reverse order.
        assert_eq!(bypassed(&[(204, 100), (104, 100), (4, 100), (304, 10)]), ((0, 2), 314));
        // A second hole is not kept: the first one's filler still puts the run in order, and
        // the segment past the second hole is taken as new when it comes again.
        assert_eq!(bypassed(&[(104, 100), (304, 100), (4, 100)]), ((0, 2), 204));
        assert_eq!(bypassed(&[(104, 100), (304, 100), (4, 100), (204, 100), (304, 100)]), ((0, 2), 404));
        // A hole kept open by more than 64 KiB past it was never captured: `next` moves past
        // it, and what arrives for it later counts as seen again.
        let past: Vec<(u32, u32)> = (0..50).map(|i| (104 + i * 1400, 1400)).collect();
        // (The 47th segment ends 65,900 bytes past `next`: the hole is given up; the last three
        // are in order.)
        assert_eq!(bypassed(&past), ((0, 47), 104 + 50 * 1400));
        let mut late = past.clone();
        late.push((4, 100));
        late.push((104 + 48 * 1400, 1400));
        assert_eq!(bypassed(&late), ((2, 47), 104 + 50 * 1400));
    }

    #[test]
    fn segments_queued_when_the_direction_is_bypassed_count_as_seen() {
        // 104..204 waits past a hole; the filler 4..104 ends the consumer's interest.
        let mut r = Half::default();
        r.segment(0, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        r.segment(1, false, b"abc", 3, 1 << 16, &mut |_| Feed::More);
        r.segment(104, false, &[b'x'; 100], 100, 1 << 16, &mut |_| Feed::More);
        r.segment(4, false, &[b'y'; 100], 100, 1 << 16, &mut |_| Feed::Done);
        assert!(r.r.is_bypassed());
        assert_eq!((r.stats.out_of_order, r.r.next), (1, 204));
        // What follows is in order, and a copy of the queued bytes is seen again.
        r.r.bypassed_segment(&mut r.stats, 204, 50);
        r.r.bypassed_segment(&mut r.stats, 104, 100);
        r.flush(&mut |_| Feed::More);
        assert_eq!((r.stats.out_of_order, r.stats.retransmitted, r.stats.gaps), (1, 1, 0));
    }

    #[test]
    fn bypassed_hole_never_filled_is_a_gap() {
        let mut r = bypassed_half();
        // A hole 4..104 open at the end of the flow: lost, as the reassembler declares one.
        r.r.bypassed_segment(&mut r.stats, 104, 100);
        r.flush(&mut |_| Feed::More);
        assert_eq!((r.stats.gaps, r.stats.lost_bytes, r.stats.out_of_order), (1, 100, 1));
        // Given up once bytes past it span over 64 KiB: the same gap, counted then.
        let mut r = bypassed_half();
        for i in 0..47 {
            r.r.bypassed_segment(&mut r.stats, 104 + i * 1400, 1400);
        }
        assert_eq!((r.stats.gaps, r.stats.lost_bytes, r.r.next), (1, 100, 104 + 47 * 1400));
        r.flush(&mut |_| Feed::More);
        assert_eq!(r.stats.gaps, 1);
        // A filled hole is no gap.
        let mut r = bypassed_half();
        r.r.bypassed_segment(&mut r.stats, 104, 100);
        r.r.bypassed_segment(&mut r.stats, 4, 100);
        r.flush(&mut |_| Feed::More);
        assert_eq!((r.stats.gaps, r.stats.lost_bytes, r.r.next), (0, 0, 204));
    }

    #[test]
    fn bypassed_after_a_cut_segment_goes_on_from_its_wire_end() {
        // The snapshot length cut the segment whose bytes ended the consumer's interest.
        let mut r = Half::default();
        r.segment(0, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        r.segment(1, false, b"ab", 10, 1 << 16, &mut |_| Feed::Done);
        r.r.bypassed_segment(&mut r.stats, 11, 10);
        assert_eq!((r.stats.retransmitted, r.stats.out_of_order, r.r.next), (0, 0, 21));
    }

    #[test]
    fn bypassed_keepalive_probe_is_not_a_retransmission() {
        // (The reassembled path: `keepalive_probe_is_not_a_retransmission`.) A two-byte copy is.
        assert_eq!(bypassed(&[(3, 1), (4, 10), (13, 1)]), ((0, 0), 14));
        assert_eq!(bypassed(&[(2, 2)]), ((1, 0), 4));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::wire::Feed;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A bypassed direction flags a retransmission only for a segment with a byte seen
        /// before (no false flag while the stream stays within 64 KiB, where no hole is given
        /// up), and flags every copy of bytes that arrived in order (a stream of any length).
        #[test]
        fn bypassed_retransmissions_are_bytes_seen_before(
            segs in proptest::collection::vec((0u32..20_000, 1u32..3000), 1..60),
            dups in proptest::collection::vec(any::<usize>(), 0..10),
            in_order in any::<bool>(),
            isn in any::<u32>(),
        ) {
            let mut segs = segs;
            let originals = segs.len();
            if in_order {
                // Consecutive segments, then copies of some of them.
                let mut at = 0;
                for s in &mut segs {
                    s.0 = at;
                    at += s.1;
                }
                let copies: Vec<(u32, u32)> = dups.iter().map(|d| segs[d % segs.len()]).collect();
                segs.extend(copies);
            }
            let mut r = Reassembler::default();
            let mut st = HalfStats::default();
            // Bypassed at the stream's start (relative sequence 0 is `isn + 1`).
            r.segment(&mut st, isn, true, b"", 0, 1 << 16, &mut |_| Feed::More);
            r.set_bypass();
            let mut seen = vec![false; 200_000];
            for (k, &(start, len)) in segs.iter().enumerate() {
                let before = st.retransmitted;
                r.bypassed_segment(&mut st, isn.wrapping_add(1).wrapping_add(start), len);
                let range = start as usize..(start + len) as usize;
                let old = seen[range.clone()].iter().any(|&b| b);
                seen[range].iter_mut().for_each(|b| *b = true);
                // (A copy of the last byte alone is a keep-alive probe, not flagged.)
                let keepalive = len == 1 && start + 1 == segs[..originals].iter().map(|s| s.0 + s.1).max().unwrap();
                if st.retransmitted > before {
                    prop_assert!(old, "segment {} ({}, {}) flagged without a byte seen", k, start, len);
                } else if in_order && k >= originals && !keepalive {
                    prop_assert!(!old, "copy {} ({}, {}) not flagged", k, start, len);
                }
            }
        }
    }
}

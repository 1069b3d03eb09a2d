//! One direction of a TCP connection put back in sequence order.
//!
//! Policy (documented in docs/reassembly.md):
//! - Sequence numbers are compared with wrapping arithmetic ([`seq_diff`]), so streams that wrap
//!   past 2^32 reassemble like any other.
//! - Overlaps: the first copy of a byte wins (what Linux keeps, and what Wireshark shows). When a
//!   later copy overlaps bytes we still remember (the last [`RECENT_BYTES`] delivered bytes) and
//!   differs, the direction is flagged `overlap_conflict`.
//! - Out-of-order segments wait in a queue bounded by `max_queue_bytes`; when it overflows, or at
//!   the end of the flow, the missing bytes are declared lost: the consumer gets a
//!   [`Chunk::Gap`] and must resynchronise.
//! - A direction whose first captured segment is not a SYN starts where that segment starts
//!   (mid-stream).
//! - Snaplen-truncated segments deliver what was captured followed by a gap for the rest.
//! - Once the consumer says it is done, nothing more is buffered: only counters move.

use crate::wire::Feed;

mod bypass;
mod window;
#[cfg(test)]
use window::NoSource;
pub(crate) use window::ReadBack;

/// Delivered bytes remembered to detect conflicting retransmissions.
pub(crate) const RECENT_BYTES: usize = 1024;
/// Out-of-order segments held per direction (bounds the queue's linear insert).
pub(crate) const MAX_QUEUED_SEGMENTS: usize = 1024;

/// Signed distance `a - b` in sequence space (RFC 793 modular arithmetic, RFC 1982 style).
#[inline]
pub(crate) fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// A TCP keep-alive probe: one byte (or none) just before the next expected one, sent to see
/// whether the peer is still there (RFC 1122 4.2.3.6). Its byte is not data sent again, nor
/// necessarily the same byte (some stacks send garbage): neither a retransmission nor an
/// overlap conflict. `off` is the segment's start relative to the next expected byte.
fn is_keepalive(off: i32, wire_len: u32) -> bool {
    off == -1 && wire_len <= 1
}

/// What the reassembler hands to its consumer, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes were never captured.
    Gap(u32),
}

/// Per-direction anomaly counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HalfStats {
    /// Segments that carried only bytes already delivered.
    pub(crate) retransmitted: u32,
    /// Segments that arrived ahead of a hole.
    pub(crate) out_of_order: u32,
    /// Holes declared lost.
    pub(crate) gaps: u32,
    /// Bytes never captured (holes and snaplen cuts).
    pub(crate) lost_bytes: u64,
    /// Overlapping copies whose bytes differ from the first copy.
    pub(crate) overlap_conflicts: u32,
    /// A segment was cut by the snapshot length.
    pub(crate) truncated: bool,
    /// The direction started without a SYN.
    pub(crate) midstream: bool,
    /// The out-of-order queue overflowed its limit.
    pub(crate) queue_overflow: bool,
}

struct Queued {
    seq: u32,
    /// File offset of `data` in the capture (see [`Reassembler::segment_at`]).
    at: Option<u64>,
    data: Vec<u8>,
    /// Bytes on the wire after `data` that the capture cut off.
    cut: u32,
}

/// Out-of-order segments in sequence order, and their bytes: boxed, and only while some wait
/// (rare), so that an idle queue is one word of the flow slot (see [`Reassembler`]).
#[derive(Default)]
struct Queue(Option<Box<Waiting>>);

struct Waiting {
    segs: Vec<Queued>,
    /// Bytes in `segs`: at most `max_queue_bytes` clamped to `u32::MAX` (see `enqueue`).
    bytes: u32,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.segs.len())
    }

    fn bytes(&self) -> u32 {
        self.0.as_ref().map_or(0, |q| q.bytes)
    }

    fn first(&self) -> Option<&Queued> {
        self.0.as_ref()?.segs.first()
    }

    /// Inserts `q` after the queued segments that do not start after it.
    fn insert(&mut self, q: Queued) {
        let w = self.0.get_or_insert_with(|| Box::new(Waiting { segs: Vec::new(), bytes: 0 }));
        let pos = w.segs.iter().position(|x| seq_diff(x.seq, q.seq) > 0).unwrap_or(w.segs.len());
        // (At most `max_queue_bytes`, clamped to `u32::MAX` in `enqueue`.)
        w.bytes += q.data.len() as u32;
        w.segs.insert(pos, q);
    }

    fn pop_first(&mut self) -> Option<Queued> {
        let w = self.0.as_mut()?;
        let q = w.segs.remove(0);
        w.bytes -= q.data.len() as u32;
        if w.segs.is_empty() {
            self.0 = None;
        }
        Some(q)
    }
}

/// Reassembly state of one direction. Its counters ([`HalfStats`]) are the caller's (the flow
/// keeps them in its metadata, where the report reads them): each method that can count takes
/// them. With the queue boxed and the ring's index a `u16`, two of these are 96 bytes of the
/// flow slot instead of 208, and the slot (with [`crate::flow::FlowMeta`] repacked) is 11 cache
/// lines instead of 13: a new flow writes, and an ended one reads, two lines fewer
/// (bench/misses, 1 MiB L2: default 30 MB L2 misses 0.84 -> 0.81 M, cycles~ 86.5 -> 85.5 M;
/// mesh 30 MB 0.85 -> 0.83 M, 93.3 -> 92.5 M). At 48 bytes each sits in one cache line of the
/// slot (at 56, side A's spanned two: a fed segment of a cold flow read both). Still 48 with
/// the window's file offsets (see the `window` module): the byte ring is boxed, and the queue's
/// byte count moved into the boxed queue.
pub(crate) struct Reassembler {
    started: bool,
    bypass: bool,
    next: u32,
    /// Bytes of the window at the end of `ring` (see the `window` module); at most
    /// [`RECENT_BYTES`].
    blen: u16,
    queue: Queue,
    /// The last delivered bytes not remembered by their place in the file (see the `window`
    /// module): boxed, only once some are.
    ring: Option<Box<window::Ring>>,
    /// File offset just past the last delivered segment of at least [`RECENT_BYTES`] bytes
    /// read from the capture file, while part of the window lies there ([`window::NO_FILE`]
    /// otherwise). Once bypassed (no window), what the direction saw past `next` instead (see
    /// the `bypass` module).
    file_end: u64,
    /// Smaller delivered segments read from the file, after `file_end`'s and before `ring`'s
    /// bytes (see the `window` module).
    pieces: [u64; 2],
}

impl Reassembler {
    /// Bytes held in the out-of-order queue.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queue.bytes() as usize
    }

    /// True once the consumer no longer wants bytes.
    pub(crate) fn is_bypassed(&self) -> bool {
        self.bypass
    }

    /// Stops buffering for good (consumer done, or memory pressure).
    pub(crate) fn set_bypass(&mut self) {
        self.bypass = true;
        let queued = std::mem::take(&mut self.queue);
        self.ring = None;
        self.clear_recent();
        // Segments waiting past a hole were seen: the bypassed direction goes on knowing them
        // (else the segments after them would seem to leave a hole, and their copies be new).
        // Their reordering was counted when they were queued.
        let mut counted_before = HalfStats::default();
        for q in queued.0.iter().flat_map(|w| w.segs.iter()) {
            self.bypassed_segment(&mut counted_before, q.seq, q.data.len() as u32 + q.cut);
        }
    }

    /// Takes one segment. `seq` is the segment's sequence number, `syn` whether it carries SYN,
    /// `payload` the captured bytes and `wire_len` the payload length on the wire; counts into
    /// `st`.
    #[allow(clippy::too_many_arguments)]
    #[cfg(test)]
    pub(crate) fn segment(
        &mut self,
        st: &mut HalfStats,
        seq: u32,
        syn: bool,
        payload: &[u8],
        wire_len: u32,
        max_queue_bytes: usize,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) {
        self.segment_at(st, seq, syn, payload, None, &NoSource, wire_len, max_queue_bytes, out);
    }

    /// [`Self::segment`] of a payload that lies in the capture file at offset `at` (None when
    /// it does not, or the source cannot be read again), which `src` reads back: the window of
    /// recent bytes then remembers where they are instead of copying them (see the `window`
    /// module).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn segment_at(
        &mut self,
        st: &mut HalfStats,
        seq: u32,
        syn: bool,
        payload: &[u8],
        at: Option<u64>,
        src: &dyn ReadBack,
        wire_len: u32,
        max_queue_bytes: usize,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) {
        let mut seq = seq;
        if syn {
            seq = seq.wrapping_add(1);
            if !self.started || (self.window_len() == 0 && st.midstream && self.queue.is_empty()) {
                self.started = true;
                st.midstream = false;
                self.next = seq;
            }
        }
        let wire_len = wire_len.max(payload.len() as u32);
        if wire_len == 0 || self.bypass {
            return;
        }
        if !self.started {
            self.started = true;
            st.midstream = true;
            self.next = seq;
        }
        let off = seq_diff(seq, self.next);
        if off > 0 {
            self.enqueue(st, seq, (payload, at), src, wire_len, max_queue_bytes, out);
            return;
        }
        // off <= 0: starts at or before the next expected byte.
        let skip = off.unsigned_abs();
        if is_keepalive(off, wire_len) {
            return;
        }
        if skip >= wire_len {
            st.retransmitted += 1;
            self.check_overlap(st, seq, payload, src);
            return;
        }
        if skip > 0 {
            st.retransmitted += 1;
            self.check_overlap(st, seq, payload, src);
        }
        let skip = skip as usize;
        let data = payload.get(skip..).unwrap_or(&[]);
        let cut = wire_len - skip as u32 - data.len() as u32;
        // (Asked here: nearly always nothing waits, and the call cost 22 instructions a segment.)
        if self.deliver(st, data, at.map(|a| a + skip as u64), cut, out) && !self.queue.is_empty() {
            self.drain(st, src, out);
        }
    }

    /// Declares every hole lost and delivers what is queued (end of flow).
    #[cfg(test)]
    pub(crate) fn flush(&mut self, st: &mut HalfStats, out: &mut dyn FnMut(Chunk<'_>) -> Feed) {
        self.flush_from(st, &NoSource, out);
    }

    /// [`Self::flush`] of a direction fed by [`Self::segment_at`] from `src`.
    pub(crate) fn flush_from(
        &mut self,
        st: &mut HalfStats,
        src: &dyn ReadBack,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) {
        while !self.bypass && !self.queue.is_empty() {
            self.skip_to_first_queued(st, out);
            self.drain(st, src, out);
        }
        if self.bypass {
            self.end_bypassed(st);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        st: &mut HalfStats,
        seq: u32,
        (payload, at): (&[u8], Option<u64>),
        src: &dyn ReadBack,
        wire_len: u32,
        max_queue_bytes: usize,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) {
        // (Clamped: the queue's byte count stays within a `u32`. The segment count and the record size
        // bound the queue far below that anyway: 1,024 x 320 KiB.)
        let max_queue_bytes = max_queue_bytes.min(u32::MAX as usize);
        st.out_of_order += 1;
        while (self.queued_bytes() + payload.len() > max_queue_bytes
            || self.queue.len() >= MAX_QUEUED_SEGMENTS)
            && !self.queue.is_empty()
        {
            st.queue_overflow = true;
            self.skip_to_first_queued(st, out);
            self.drain(st, src, out);
            if self.bypass {
                return;
            }
        }
        if self.bypass {
            return;
        }
        if seq_diff(seq, self.next) <= 0 {
            // The forced skip moved past this segment's start: take it now.
            let skip = seq_diff(self.next, seq) as u32;
            if skip < wire_len {
                let data = payload.get(skip as usize..).unwrap_or(&[]);
                let cut = wire_len - skip - data.len() as u32;
                if self.deliver(st, data, at.map(|a| a + skip as u64), cut, out) {
                    self.drain(st, src, out);
                }
            }
            return;
        }
        if payload.len() > max_queue_bytes {
            // Cannot wait for the hole: declare it lost now.
            st.queue_overflow = true;
            let hole = seq_diff(seq, self.next) as u32;
            self.gap(st, hole, out);
            if self.deliver(st, payload, at, wire_len - payload.len() as u32, out) {
                self.drain(st, src, out);
            }
            return;
        }
        self.queue.insert(Queued { seq, at, data: payload.to_vec(), cut: wire_len - payload.len() as u32 });
    }

    /// Declares the hole before the first queued segment lost.
    fn skip_to_first_queued(&mut self, st: &mut HalfStats, out: &mut dyn FnMut(Chunk<'_>) -> Feed) {
        if let Some(first) = self.queue.first() {
            let hole = seq_diff(first.seq, self.next);
            if hole > 0 {
                self.gap(st, hole as u32, out);
            }
        }
    }

    fn gap(&mut self, st: &mut HalfStats, n: u32, out: &mut dyn FnMut(Chunk<'_>) -> Feed) {
        st.gaps += 1;
        st.lost_bytes += n as u64;
        self.next = self.next.wrapping_add(n);
        self.clear_recent();
        if out(Chunk::Gap(n)) == Feed::Done {
            self.set_bypass();
        }
    }

    /// Delivers in-order bytes (at file offset `at`, if known) plus a snaplen cut; returns false
    /// once bypassed.
    fn deliver(
        &mut self,
        st: &mut HalfStats,
        data: &[u8],
        at: Option<u64>,
        cut: u32,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) -> bool {
        if !data.is_empty() {
            self.next = self.next.wrapping_add(data.len() as u32);
            if out(Chunk::Data(data)) == Feed::Done {
                // (The cut bytes were on the wire: a bypassed direction goes on from their end.)
                self.next = self.next.wrapping_add(cut);
                self.set_bypass();
                return false;
            }
            // Remembered once the consumer wants more: the bytes that complete a direction (a
            // TLS handshake's last segment, each side of most flows) are not copied for nothing.
            self.remember(data, at);
        }
        if cut > 0 {
            st.truncated = true;
            self.gap(st, cut, out);
        }
        !self.bypass
    }

    /// Delivers queued segments that have become in order.
    fn drain(&mut self, st: &mut HalfStats, src: &dyn ReadBack, out: &mut dyn FnMut(Chunk<'_>) -> Feed) {
        while !self.bypass {
            let Some(first) = self.queue.first() else { return };
            let off = seq_diff(first.seq, self.next);
            if off > 0 {
                return;
            }
            let Some(q) = self.queue.pop_first() else { return };
            let skip = off.unsigned_abs() as usize;
            let wire = q.data.len() + q.cut as usize;
            if skip >= wire {
                st.retransmitted += 1;
                self.check_overlap(st, q.seq, &q.data, src);
                continue;
            }
            if skip > 0 {
                self.check_overlap(st, q.seq, &q.data, src);
            }
            let data = q.data.get(skip..).unwrap_or(&[]);
            let cut = (wire - skip - data.len()) as u32;
            if !self.deliver(st, data, q.at.map(|a| a + skip as u64), cut, out) {
                return;
            }
        }
    }
}

/// One direction with its own counters, as the flow keeps them (for the tests).
#[cfg(test)]
#[derive(Default)]
struct Half {
    r: Reassembler,
    stats: HalfStats,
}

#[cfg(test)]
impl Half {
    fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        payload: &[u8],
        wire_len: u32,
        max_queue_bytes: usize,
        out: &mut dyn FnMut(Chunk<'_>) -> Feed,
    ) {
        self.r.segment(&mut self.stats, seq, syn, payload, wire_len, max_queue_bytes, out);
    }

    fn flush(&mut self, out: &mut dyn FnMut(Chunk<'_>) -> Feed) {
        self.r.flush(&mut self.stats, out);
    }

    fn queued_bytes(&self) -> usize {
        self.r.queued_bytes()
    }
}

#[cfg(test)]
mod properties {
    //! Property tests (proptest, with shrinking): any permutation, duplication and overlap of a
    //! stream's segments carrying the same bytes gives the same stream; overlaps with other
    //! bytes keep the first copy and are flagged.
    use super::*;
    use proptest::prelude::*;

    /// Cuts `len` bytes into segments at the given (sorted, deduplicated) points.
    fn cuts(len: usize, points: &[usize]) -> Vec<(usize, usize)> {
        let mut p: Vec<usize> = points.iter().map(|x| x % len.max(1)).filter(|&x| x > 0).collect();
        p.sort_unstable();
        p.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for x in p.into_iter().chain([len]) {
            if x > start {
                out.push((start, x));
                start = x;
            }
        }
        out
    }

    fn feed(isn: u32, segs: &[(usize, usize, Vec<u8>)]) -> (Vec<u8>, HalfStats) {
        let mut r = Half::default();
        let mut got = Vec::new();
        let mut gaps = 0;
        r.segment(isn, true, b"", 0, 1 << 20, &mut |_| Feed::More);
        let mut out = |c: Chunk<'_>| {
            match c {
                Chunk::Data(d) => got.extend_from_slice(d),
                Chunk::Gap(_) => gaps += 1,
            }
            Feed::More
        };
        for (start, _, bytes) in segs {
            let seq = isn.wrapping_add(1).wrapping_add(*start as u32);
            r.segment(seq, false, bytes, bytes.len() as u32, 1 << 20, &mut out);
        }
        r.flush(&mut out);
        assert_eq!(gaps, 0);
        (got, r.stats)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn same_bytes_in_any_order_duplicated_or_overlapping_give_the_stream(
            stream in proptest::collection::vec(any::<u8>(), 1..3000),
            points in proptest::collection::vec(any::<usize>(), 0..40),
            extra in proptest::collection::vec((any::<usize>(), 1usize..600), 0..20),
            order in proptest::collection::vec(any::<u32>(), 0..80),
            isn in any::<u32>(),
        ) {
            let n = stream.len();
            let mut segs: Vec<(usize, usize, Vec<u8>)> =
                cuts(n, &points).into_iter().map(|(a, b)| (a, b, stream[a..b].to_vec())).collect();
            // Overlapping copies of arbitrary ranges, with the same bytes.
            for (at, len) in extra {
                let a = at % n;
                let b = (a + len).min(n);
                segs.push((a, b, stream[a..b].to_vec()));
            }
            // A permutation: swap by the generated keys.
            for (i, k) in order.iter().enumerate() {
                let (x, y) = (i % segs.len(), *k as usize % segs.len());
                segs.swap(x, y);
            }
            let (got, stats) = feed(isn, &segs);
            prop_assert_eq!(got, stream);
            prop_assert_eq!(stats.overlap_conflicts, 0);
            prop_assert_eq!(stats.gaps, 0);
        }

        #[test]
        fn an_overlap_with_other_bytes_keeps_the_first_copy_and_is_flagged(
            stream in proptest::collection::vec(any::<u8>(), 64..2000),
            at in any::<usize>(),
            len in 1usize..64,
            isn in any::<u32>(),
        ) {
            let n = stream.len();
            let a = at % (n - len);
            let mut forged: Vec<u8> = stream[a..a + len].to_vec();
            for b in &mut forged {
                *b = b.wrapping_add(1);
            }
            // The whole stream in order, then a retransmission of [a, a+len) with other bytes.
            let segs = vec![(0, n, stream.clone()), (a, a + len, forged)];
            let (got, stats) = feed(isn, &segs);
            prop_assert_eq!(got, stream);
            // Conflicts are checked against the last RECENT_BYTES delivered bytes.
            if a + RECENT_BYTES >= n {
                prop_assert_eq!(stats.overlap_conflicts, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_window_is_the_last_delivered_bytes() {
        // Against the plain definition: the last RECENT_BYTES bytes of everything remembered.
        let mut r = Reassembler::default();
        let mut all: Vec<u8> = Vec::new();
        let mut x = 7u32;
        for step in 0..3000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = [0, 1, 5, 100, 700, 1023, 1024, 1025, 1448][(x >> 16) as usize % 9];
            let data: Vec<u8> = (0..len).map(|i| (step * 31 + i) as u8).collect();
            r.remember(&data, None);
            all.extend_from_slice(&data);
            let want = &all[all.len().saturating_sub(RECENT_BYTES)..];
            assert_eq!(r.window_len(), want.len());
            for at in [0, 1, want.len() / 3, want.len() / 2, want.len().saturating_sub(5)] {
                for n in [0, 1, 4, 300, 1024] {
                    let Some(part) = want.get(at..at + n) else { continue };
                    assert!(r.recent_matches(at, part), "step {step} at {at} n {n}");
                    if let Some((last, rest)) = part.split_last() {
                        let mut wrong = rest.to_vec();
                        wrong.push(last ^ 1);
                        assert!(!r.recent_matches(at, &wrong), "step {step} at {at} n {n}");
                    }
                }
            }
        }
    }

    /// Feeds (seq, bytes) segments and returns the delivered stream, gaps as `[GAP n]`.
    fn run(r: &mut Half, segs: &[(u32, &[u8])], limit: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut out = |c: Chunk<'_>| {
            match c {
                Chunk::Data(d) => got.extend_from_slice(d),
                Chunk::Gap(n) => got.extend_from_slice(format!("[GAP {n}]").as_bytes()),
            }
            Feed::More
        };
        for &(seq, data) in segs {
            r.segment(seq, false, data, data.len() as u32, limit, &mut out);
        }
        r.flush(&mut out);
        got
    }

    #[test]
    fn in_order_reordered_and_duplicated_give_the_same_stream() {
        let segs: [(u32, &[u8]); 4] = [(100, b"abc"), (103, b"def"), (106, b"ghi"), (109, b"jk")];
        let want = b"abcdefghijk".to_vec();
        let mut r = Half::default();
        r.segment(99, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        assert_eq!(run(&mut r, &segs, 1 << 16), want);
        let mut r = Half::default();
        r.segment(99, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        let shuffled = [segs[2], segs[0], segs[3], segs[0], segs[1], segs[2]];
        assert_eq!(run(&mut r, &shuffled, 1 << 16), want);
        assert_eq!(r.stats.retransmitted, 2);
        assert_eq!(r.stats.overlap_conflicts, 0);
    }

    #[test]
    fn any_order_duplication_and_same_byte_overlap_give_the_same_stream() {
        // Deterministic pseudo-random schedules (xorshift), no extra crate needed.
        let stream: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let isn = next() as u32; // exercises wrap-around too
            let mut segs: Vec<(u32, Vec<u8>)> = Vec::new();
            let mut pos = 0usize;
            while pos < stream.len() {
                let len = 1 + (next() % 200) as usize;
                let end = (pos + len).min(stream.len());
                segs.push((isn.wrapping_add(1 + pos as u32), stream[pos..end].to_vec()));
                // Sometimes an overlapping copy with the same bytes.
                if next().is_multiple_of(4) && pos > 10 {
                    let back = (next() % 10) as usize + 1;
                    segs.push((isn.wrapping_add(1 + (pos - back) as u32), stream[pos - back..end].to_vec()));
                }
                pos = end;
            }
            for i in (1..segs.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                segs.swap(i, j);
            }
            let dups: Vec<(u32, Vec<u8>)> =
                segs.iter().filter(|_| next().is_multiple_of(5)).cloned().collect();
            segs.extend(dups);
            let mut r = Half::default();
            r.segment(isn, true, b"", 0, 1 << 20, &mut |_| Feed::More);
            let refs: Vec<(u32, &[u8])> = segs.iter().map(|(s, d)| (*s, d.as_slice())).collect();
            assert_eq!(run(&mut r, &refs, 1 << 20), stream, "round {round}");
            assert_eq!(r.stats.overlap_conflicts, 0, "round {round}");
            assert_eq!(r.stats.gaps, 0, "round {round}");
        }
    }

    #[test]
    fn overlap_first_copy_wins_and_conflict_is_flagged() {
        let mut r = Half::default();
        r.segment(0, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        let got = run(&mut r, &[(1, b"hello "), (4, b"LO world")], 1 << 16);
        assert_eq!(got, b"hello world");
        assert_eq!(r.stats.overlap_conflicts, 1);
    }

    #[test]
    fn wraps_past_2_pow_32() {
        let mut r = Half::default();
        r.segment(u32::MAX - 3, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        let got = run(&mut r, &[(u32::MAX - 2, b"abc"), (3, b"ghi"), (0, b"def")], 1 << 16);
        assert_eq!(got, b"abcdefghi");
    }

    #[test]
    fn lost_segment_becomes_a_gap_at_flush_and_on_overflow() {
        let mut r = Half::default();
        assert_eq!(run(&mut r, &[(10, b"aaaa"), (18, b"cccc")], 1 << 16), b"aaaa[GAP 4]cccc");
        assert_eq!((r.stats.gaps, r.stats.lost_bytes, r.stats.midstream), (1, 4, true));
        let mut r = Half::default();
        let got = run(&mut r, &[(0, b"a"), (5, b"bbbb"), (20, b"cccc"), (30, b"dddd")], 8);
        assert_eq!(got, b"a[GAP 4]bbbb[GAP 11]cccc[GAP 6]dddd");
        assert!(r.stats.queue_overflow);
    }

    #[test]
    fn snaplen_cut_delivers_then_gaps() {
        let mut r = Half::default();
        let mut got = Vec::new();
        let mut out = |c: Chunk<'_>| {
            got.push(format!("{c:?}"));
            Feed::More
        };
        r.segment(0, false, b"abc", 10, 1 << 16, &mut out);
        r.segment(10, false, b"de", 2, 1 << 16, &mut out);
        assert_eq!(got, ["Data([97, 98, 99])", "Gap(7)", "Data([100, 101])"]);
        assert!(r.stats.truncated);
    }

    #[test]
    fn done_stops_buffering() {
        let mut r = Half::default();
        let mut n = 0;
        let mut out = |_c: Chunk<'_>| {
            n += 1;
            Feed::Done
        };
        r.segment(0, false, b"abc", 3, 1 << 16, &mut out);
        r.segment(10, false, b"xyz", 3, 1 << 16, &mut out);
        r.segment(3, false, b"def", 3, 1 << 16, &mut out);
        assert_eq!(n, 1);
        assert_eq!(r.queued_bytes(), 0);
    }

    #[test]
    fn keepalive_probe_is_not_a_retransmission() {
        // One byte before the next expected one, here another byte than the one delivered (as
        // some stacks send): no retransmission, no overlap conflict, nothing delivered.
        let mut r = Half::default();
        r.segment(0, true, b"", 0, 1 << 16, &mut |_| Feed::More);
        assert_eq!(run(&mut r, &[(1, b"abc"), (3, b"X"), (4, b"de")], 1 << 16), b"abcde");
        assert_eq!((r.stats.retransmitted, r.stats.overlap_conflicts), (0, 0));
        // (A bypassed direction: `bypass::tests`.)
    }
}

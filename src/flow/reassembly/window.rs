//! The window of recently delivered bytes of a [`Reassembler`]: the last [`RECENT_BYTES`] bytes
//! delivered since the last gap, against which a retransmission that overlaps them is compared
//! (`overlap_conflicts`).
//!
//! Copying every delivered segment's last KiB into a heap ring (cold: the flow was last touched
//! long ago) only for the ~1% of segments that are retransmissions was the largest caller of
//! `memcpy` (22% of cycles~; 304 k L2 write misses on the default 100 MB bench file). When the
//! packets come from a capture file, the delivered bytes are still in it: a delivered segment
//! of at least [`RECENT_BYTES`] bytes (most bulk data) that lies in the file is remembered as
//! where it ends there (`file_end`, in the reassembler's own cache line), and a retransmission
//! reads its bytes back (`pread`, [`ReadBack`]) to compare them. The smaller segments delivered
//! after it are copied into the ring as before; the window is then the tail of that segment in
//! the file followed by the ring. Data not read from a file (live captures, standard input,
//! reassembled IPv4 fragments, tests) takes the ring only, as before.
//!
//! A read-back that fails or comes short (the file was truncated since it was read) proves
//! nothing: no conflict is counted for the bytes it should have given. A file rewritten in
//! place while it is read can give other bytes than those delivered, and so a wrong count; so
//! it can give other packets to the reader itself.

use super::{seq_diff, HalfStats, Reassembler, RECENT_BYTES};

/// `file_end` when no part of the window lies in the file.
pub(super) const NO_FILE: u64 = u64::MAX;

/// Reads delivered bytes back from where they were captured (see the module doc).
pub(crate) trait ReadBack {
    /// Fills `buf` with the bytes at offset `at`; false when it cannot (whole).
    fn read_back(&self, at: u64, buf: &mut [u8]) -> bool;
}

/// A source of no bytes, for reassemblers given no file offsets.
#[cfg(test)]
pub(crate) struct NoSource;

#[cfg(test)]
impl ReadBack for NoSource {
    fn read_back(&self, _at: u64, _buf: &mut [u8]) -> bool {
        false
    }
}

/// The capture file of a flow table, if it has one.
impl ReadBack for Option<std::sync::Arc<std::fs::File>> {
    fn read_back(&self, at: u64, buf: &mut [u8]) -> bool {
        self.as_ref().is_some_and(|f| std::os::unix::fs::FileExt::read_exact_at(&**f, buf, at).is_ok())
    }
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler {
            started: false,
            bypass: false,
            next: 0,
            oldest: 0,
            queue: Default::default(),
            ring: Vec::new(),
            file_end: NO_FILE,
        }
    }
}

/// The ring (`ring`, oldest byte at `oldest`) holds the window's bytes that are not
/// in the file; once full it is the whole window: a small segment costs its own copy (shifting
/// the whole window out for each one was most of the reassembler's copying).
impl Reassembler {
    /// Bytes in the window: they end at `next`.
    pub(super) fn window_len(&self) -> usize {
        if self.file_end != NO_FILE {
            RECENT_BYTES
        } else {
            self.ring.len()
        }
    }

    pub(super) fn clear_recent(&mut self) {
        self.ring.clear();
        self.oldest = 0;
        self.file_end = NO_FILE;
    }

    /// Adds delivered `data` (at file offset `at`, if it lies in the capture file) to the window.
    pub(super) fn remember(&mut self, data: &[u8], at: Option<u64>) {
        if data.len() >= RECENT_BYTES {
            self.ring.clear();
            self.oldest = 0;
            if let Some(at) = at {
                // The common case: one word written, in the reassembler's own cache line.
                self.file_end = at + data.len() as u64;
                return;
            }
            self.file_end = NO_FILE;
            self.ring.extend_from_slice(&data[data.len() - RECENT_BYTES..]);
            return;
        }
        if data.is_empty() {
            return;
        }
        if self.ring.len() + data.len() >= RECENT_BYTES {
            // The ring is about to hold the whole window: the segment in the file drops out.
            self.file_end = NO_FILE;
        }
        if self.ring.capacity() == 0 {
            // The whole window at once: growing by doubling was eight allocations and copies
            // per direction, and nearly every stream delivers more than a window.
            self.ring.reserve_exact(RECENT_BYTES);
        }
        let room = RECENT_BYTES - self.ring.len();
        let (fill, mut rest) = data.split_at(room.min(data.len()));
        self.ring.extend_from_slice(fill);
        // Full: the rest overwrites the oldest bytes, wrapping at the end.
        let mut oldest = self.oldest as usize;
        while !rest.is_empty() {
            let k = rest.len().min(RECENT_BYTES - oldest);
            self.ring[oldest..oldest + k].copy_from_slice(&rest[..k]);
            oldest = (oldest + k) % RECENT_BYTES;
            rest = &rest[k..];
        }
        self.oldest = oldest as u16;
    }

    /// Whether bytes `at..at + with.len()` of the ring (oldest first) equal `with`.
    pub(super) fn recent_matches(&self, at: usize, with: &[u8]) -> bool {
        // Oldest first: ring[oldest..], then ring[..oldest].
        let (second, first) = self.ring.split_at(self.oldest as usize);
        if at >= first.len() {
            let at = at - first.len();
            return second.get(at..at + with.len()) == Some(with);
        }
        let k = (first.len() - at).min(with.len());
        first[at..at + k] == with[..k] && second.get(..with.len() - k) == Some(&with[k..])
    }

    /// Compares the part of a segment that overlaps the window, reading the window's bytes in
    /// the file back from `src`; counts a conflict only when bytes were compared and differ.
    pub(super) fn check_overlap(&self, st: &mut HalfStats, seq: u32, payload: &[u8], src: &dyn ReadBack) {
        let w = self.window_len();
        let recent_start = self.next.wrapping_sub(w as u32);
        // Overlap of [seq, seq+len) with [recent_start, next).
        let a = seq_diff(seq, recent_start).max(0) as usize; // offset in the window
        let b = (seq_diff(recent_start, seq).max(0)) as usize; // offset in payload
        if a >= w || b >= payload.len() {
            return;
        }
        let n = (w - a).min(payload.len() - b);
        // The window's first `in_file` bytes are in the file, the rest in the ring. The ring is
        // compared first: a difference there needs no read.
        let in_file = w - self.ring.len();
        let from = a.max(in_file);
        if a + n > from && !self.recent_matches(from - in_file, &payload[b + (from - a)..b + n]) {
            st.overlap_conflicts += 1;
            return;
        }
        if a < in_file {
            let k = (in_file - a).min(n);
            let mut buf = [0u8; RECENT_BYTES];
            let at = self.file_end - (in_file - a) as u64;
            if src.read_back(at, &mut buf[..k]) && buf[..k] != payload[b..b + k] {
                st.overlap_conflicts += 1;
            }
        }
    }
}

const _: () = assert!(RECENT_BYTES <= u16::MAX as usize);

#[cfg(test)]
mod tests {
    //! The window read back from a file must behave exactly as the ring alone.
    use super::super::{Chunk, HalfStats, Reassembler, RECENT_BYTES};
    use super::ReadBack;
    use crate::wire::Feed;
    use proptest::prelude::*;

    /// A capture "file" in memory.
    struct Mem<'a>(&'a [u8]);

    impl ReadBack for Mem<'_> {
        fn read_back(&self, at: u64, buf: &mut [u8]) -> bool {
            let Ok(at) = usize::try_from(at) else { return false };
            match self.0.get(at..).and_then(|s| s.get(..buf.len())) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Data(Vec<u8>),
        Gap(u32),
    }

    /// A segment: where it starts in the stream, its captured bytes, bytes cut after them.
    type Seg = (usize, Vec<u8>, u32);

    /// Feeds `segs` to a reassembler, each at its offset in `file` (read back from `src`) when
    /// `with_file`, else as bytes only; the consumer is done after `done_after` chunks.
    fn feed(
        segs: &[(Seg, u64)],
        src: &[u8],
        with_file: bool,
        max_queue: usize,
        done_after: usize,
    ) -> (Vec<Got>, HalfStats) {
        let src = &Mem(src);
        let (mut r, mut st) = (Reassembler::default(), HalfStats::default());
        let mut got = Vec::new();
        let mut out = |c: Chunk<'_>| {
            got.push(match c {
                Chunk::Data(d) => Got::Data(d.to_vec()),
                Chunk::Gap(n) => Got::Gap(n),
            });
            if got.len() >= done_after {
                Feed::Done
            } else {
                Feed::More
            }
        };
        let isn = 0xffff_f000u32; // wraps inside the streams
        r.segment_at(&mut st, isn, true, b"", None, src, 0, max_queue, &mut out);
        for ((start, bytes, cut), at) in segs {
            let seq = isn.wrapping_add(1).wrapping_add(*start as u32);
            let at = with_file.then_some(*at);
            let wire = bytes.len() as u32 + cut;
            r.segment_at(&mut st, seq, false, bytes, at, src, wire, max_queue, &mut out);
        }
        r.flush_from(&mut st, src, &mut out);
        (got, st)
    }

    /// Lays the segments' payloads out in a "file", a few header bytes before each.
    fn file_of(segs: Vec<Seg>) -> (Vec<(Seg, u64)>, Vec<u8>) {
        let mut file = Vec::new();
        let mut out = Vec::new();
        for s in segs {
            file.extend_from_slice(&[0xee; 7]);
            let at = file.len() as u64;
            file.extend_from_slice(&s.1);
            out.push((s, at));
        }
        (out, file)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn reading_back_from_the_file_counts_as_the_ring(
            stream in proptest::collection::vec(any::<u8>(), 1..6000),
            // (start, length class, length, other bytes, snaplen cut)
            parts in proptest::collection::vec(
                (any::<usize>(), 0u8..3, any::<usize>(), any::<bool>(), 0u32..3), 1..40),
            order in proptest::collection::vec(any::<u32>(), 0..60),
            max_queue in prop_oneof![Just(1usize << 20), 0usize..4000],
            done_after in prop_oneof![Just(usize::MAX), 1usize..20],
            truncate in prop_oneof![Just(usize::MAX), any::<usize>()],
        ) {
            let n = stream.len();
            // In-order cover of the stream (large and small segments), then the extra parts.
            let mut segs: Vec<Seg> = Vec::new();
            let mut pos = 0;
            for (i, (_, class, len, _, _)) in parts.iter().enumerate() {
                if pos >= n {
                    break;
                }
                let len = match class { 0 => 1 + len % 200, 1 => RECENT_BYTES + len % 1500, _ => 1 + len % 1100 };
                let end = (pos + len).min(n);
                let _ = i;
                segs.push((pos, stream[pos..end].to_vec(), 0));
                pos = end;
            }
            if pos < n {
                segs.push((pos, stream[pos..].to_vec(), 0));
            }
            for (at, class, len, other, cut) in &parts {
                let a = at % n;
                let len = match class { 0 => 1 + len % 64, 1 => RECENT_BYTES + len % 1500, _ => 1 + len % 1100 };
                let b = (a + len).min(n);
                let mut bytes = stream[a..b].to_vec();
                if *other {
                    let k = len % bytes.len();
                    bytes[k] ^= 0x5a;
                }
                // A snaplen cut: fewer bytes captured than on the wire.
                let keep = bytes.len().saturating_sub(*cut as usize * 10).max(1).min(bytes.len());
                let cut = (bytes.len() - keep) as u32;
                bytes.truncate(keep);
                segs.push((a, bytes, cut));
            }
            for (i, k) in order.iter().enumerate() {
                let (x, y) = (i % segs.len(), *k as usize % segs.len());
                segs.swap(x, y);
            }
            let (segs, mut file) = file_of(segs);
            let (want, want_st) = feed(&segs, &file, false, max_queue, done_after);
            let (got, got_st) = feed(&segs, &file, true, max_queue, done_after);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got_st, want_st);
            // A source truncated since: the same chunks, no conflict that was not proven.
            if truncate != usize::MAX {
                file.truncate(truncate % (file.len() + 1));
                let (got, got_st) = feed(&segs, &file, true, max_queue, done_after);
                prop_assert_eq!(&got, &want);
                prop_assert!(got_st.overlap_conflicts <= want_st.overlap_conflicts);
                prop_assert_eq!(
                    HalfStats { overlap_conflicts: 0, ..got_st },
                    HalfStats { overlap_conflicts: 0, ..want_st }
                );
            }
        }
    }

    /// A 2,000-byte segment, then a retransmission of 730 bytes from 900 bytes back with one
    /// byte changed (as tests/captures.rs `http_overlap_conflict_keeps_first_copy_and_flags_it`).
    fn overlap_case(src: &[u8]) -> (Vec<Got>, HalfStats, Reassembler) {
        let src = &Mem(src);
        let stream: Vec<u8> = (0..2000u32).map(|i| (i * 13 + 5) as u8).collect();
        let mut forged = stream[1100..1830].to_vec();
        forged[100] ^= 1;
        let (mut r, mut st) = (Reassembler::default(), HalfStats::default());
        let mut got = Vec::new();
        let mut out = |c: Chunk<'_>| {
            got.push(match c {
                Chunk::Data(d) => Got::Data(d.to_vec()),
                Chunk::Gap(n) => Got::Gap(n),
            });
            Feed::More
        };
        r.segment_at(&mut st, 100, false, &stream, Some(40), src, 2000, 1 << 16, &mut out);
        r.segment_at(&mut st, 1200, false, &forged, Some(5000), src, 730, 1 << 16, &mut out);
        (got, st, r)
    }

    #[test]
    fn a_conflict_read_back_from_the_file_is_flagged_and_the_window_is_not_copied() {
        let stream: Vec<u8> = (0..2000u32).map(|i| (i * 13 + 5) as u8).collect();
        let mut file = vec![0u8; 40];
        file.extend_from_slice(&stream);
        let (got, st, r) = overlap_case(&file);
        assert_eq!(got, [Got::Data(stream)]);
        assert_eq!((st.retransmitted, st.overlap_conflicts), (1, 1));
        assert_eq!((r.ring.capacity(), r.file_end, r.window_len()), (0, 2040, RECENT_BYTES));
    }

    #[test]
    fn a_read_back_that_fails_counts_no_conflict_and_does_not_panic() {
        // The file was truncated since: 40 + 1,500 bytes, the window's bytes are past its end.
        let stream: Vec<u8> = (0..2000u32).map(|i| (i * 13 + 5) as u8).collect();
        let mut file = vec![0u8; 40];
        file.extend_from_slice(&stream[..1500]);
        let (got, st, _) = overlap_case(&file);
        assert_eq!(got, [Got::Data(stream)]);
        assert_eq!((st.retransmitted, st.overlap_conflicts), (1, 0));
        // No file at all: the same.
        let (_, st, _) = overlap_case(&[]);
        assert_eq!((st.retransmitted, st.overlap_conflicts), (1, 0));
    }

    #[test]
    fn small_segments_after_a_large_one_share_the_window_with_the_file() {
        // 1,500 bytes in the file, then 300 and 200 bytes copied: the window is the file's last
        // 524 bytes, then the 500 copied; a retransmission across the seam is compared in both.
        let stream: Vec<u8> = (0..2000u32).map(|i| (i * 7 + 1) as u8).collect();
        let file: Vec<u8> = stream[..1500].to_vec();
        for (flip, conflicts) in [(None, 0), (Some(10), 1), (Some(400), 1)] {
            let (mut r, mut st) = (Reassembler::default(), HalfStats::default());
            let mut out = |_: Chunk<'_>| Feed::More;
            let src = &Mem(&file);
            r.segment_at(&mut st, 0, false, &stream[..1500], Some(0), src, 1500, 1 << 16, &mut out);
            r.segment_at(&mut st, 1500, false, &stream[1500..1800], None, src, 300, 1 << 16, &mut out);
            r.segment_at(&mut st, 1800, false, &stream[1800..2000], None, src, 200, 1 << 16, &mut out);
            assert_eq!((r.window_len(), r.ring.len(), r.file_end), (RECENT_BYTES, 500, 1500));
            let mut again = stream[1400..1900].to_vec();
            if let Some(k) = flip {
                again[k] ^= 1;
            }
            r.segment_at(&mut st, 1400, false, &again, None, src, 500, 1 << 16, &mut out);
            assert_eq!(st.overlap_conflicts, conflicts, "flip {flip:?}");
        }
    }
}

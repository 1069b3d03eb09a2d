//! The window of recently delivered bytes of a [`Reassembler`]: the last [`RECENT_BYTES`] bytes
//! delivered since the last gap, against which a retransmission that overlaps them is compared
//! (`overlap_conflicts`).
//!
//! Copying every delivered segment's last KiB into a heap ring (cold: the flow was last touched
//! long ago) only for the ~1% of segments that are retransmissions was the largest caller of
//! `memcpy` (22% of cycles~; 304 k L2 write misses on the default 100 MB bench file). When the
//! packets come from a capture file, the delivered bytes are still in it: the window remembers
//! where they are there, and a retransmission reads them back (`pread`, [`ReadBack`]) to
//! compare them. A segment of at least [`RECENT_BYTES`] bytes (most bulk data) is the whole
//! window: where it ends in the file (`file_end`, one word of the reassembler's own cache line).
//! Up to six smaller segments after it are kept as (offset, length) pieces: two also in that
//! line, four in the boxed ring's first line ([`MORE_PIECES`]); further ones, and data not read
//! from a file (live captures, standard input, reassembled IPv4 fragments), are copied into the
//! byte ring as before.
//!
//! bench/misses --json --threads 1 (main -> file_end alone -> with the two pieces): default
//! 30 MB cycles~ 80.4 -> 79.2 -> 76.8 M (L2 misses 0.73 -> 0.70 -> 0.65 M); mesh 30 MB 85.9 ->
//! 84.6 -> 82.0 M; default 100 MB 245.9 -> 237.1 M, mesh 100 MB 323.1 -> 312.9 M. Two threads:
//! default 30 MB 105.7 -> 98.8 M, 100 MB 332.2 -> 317.0 M. Max RSS, mesh 1 GB, one thread:
//! 60.8 -> 60.3 MB. Read-backs (`pread`s), one thread: 108 on the default 30 MB slice, 316 on
//! the default 100 MB file, 395 on the mesh one. Four more pieces in the ring's box (issue 22,
//! tenth session): default 30 MB cycles~ 75.1 -> 74.0 M, mesh 30 MB 79.6 -> 78.6 M, default
//! 100 MB 230.9 -> 225.3 M; max RSS, mesh 1 GB, one thread 59.4 -> 57.4 MB; read-backs on the
//! default 100 MB file 318 -> 481.
//!
//! Hostile input: a capture where every data segment is followed by a copy with other bytes
//! (the default 30 MB slice so doubled, 51 MB) makes 13,125 read-backs (one to three per
//! copy: the window's parts in the file are read separately; 15,524 with six pieces, time
//! within noise): 0.034-0.040 -> 0.043-0.046 s a
//! run, one thread (+16-26%); two threads +20%. Linear in the segments; not capped (a cap would
//! leave conflicts uncounted). Looking in the read buffer still in memory first would avoid
//! most of them (not done).
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
            blen: 0,
            queue: Default::default(),
            ring: None,
            file_end: NO_FILE,
            pieces: [0; 2],
        }
    }
}

/// A piece of the window in the file: its offset (below 2^48) and length, packed in a word (0:
/// none).
fn piece(at: u64, len: usize) -> u64 {
    (at << 16) | len as u64
}

fn piece_at(p: u64) -> u64 {
    p >> 16
}

fn piece_len(p: u64) -> usize {
    (p & 0xffff) as usize
}

/// File offsets from here on are not packed in a piece (the bytes are copied instead).
const PIECE_AT_LIMIT: u64 = 1 << 48;

/// Pieces of the window kept in the boxed [`Ring`] after the reassembler's two: a stream of
/// small segments (HTTP/1 keep-alive requests, HTTP/2 frames) filled the two and then copied
/// each segment into the byte ring, 5-16 cache lines of cold memory a segment (`ring_push`:
/// 127 k L2 misses on the default 100 MB bench file, 2.6% of cycles~). A piece is one word.
/// With 4 more, the ring fits one cache line.
const MORE_PIECES: usize = 4;

/// What the window keeps outside the reassembler's cache line, boxed once needed: pieces after
/// the reassembler's two (`more`, packed the same way, oldest first, 0 after the last), then
/// the last delivered bytes (at most [`RECENT_BYTES`]) that are not remembered by their place
/// in the file, in a ring once full (oldest at `oldest`): a small segment costs its own copy
/// (shifting the whole window out for each one was most of the reassembler's copying). A `Vec`
/// reserved whole at its first byte (a `Box<[u8; N]>` was zeroed, 16 cache lines written where
/// a short stream writes few: default 30 MB L2 misses +52 k in memset).
pub(super) struct Ring {
    more: [u64; MORE_PIECES],
    bytes: Vec<u8>,
    oldest: u16,
}

impl Ring {
    fn new() -> Box<Ring> {
        Box::new(Ring { more: [0; MORE_PIECES], bytes: Vec::new(), oldest: 0 })
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= RECENT_BYTES {
            self.bytes.clear();
            self.bytes.extend_from_slice(&data[data.len() - RECENT_BYTES..]);
            self.oldest = 0;
            return;
        }
        if self.bytes.capacity() == 0 {
            // The whole window at once: growing by doubling was eight allocations and copies
            // per direction, and nearly every stream delivers more than a window.
            self.bytes.reserve_exact(RECENT_BYTES);
        }
        let room = RECENT_BYTES - self.bytes.len();
        let (fill, mut rest) = data.split_at(room.min(data.len()));
        self.bytes.extend_from_slice(fill);
        // Full: the rest overwrites the oldest bytes, wrapping at the end.
        let mut oldest = self.oldest as usize;
        while !rest.is_empty() {
            let k = rest.len().min(RECENT_BYTES - oldest);
            self.bytes[oldest..oldest + k].copy_from_slice(&rest[..k]);
            oldest = (oldest + k) % RECENT_BYTES;
            rest = &rest[k..];
        }
        self.oldest = oldest as u16;
    }

    /// Whether the bytes `back..back - with.len()` before the newest end equal `with`.
    fn matches_back(&self, back: usize, with: &[u8]) -> bool {
        let Some(at) = self.bytes.len().checked_sub(back) else { return false };
        // Oldest first: bytes[oldest..], then bytes[..oldest].
        let (second, first) = self.bytes.split_at(self.oldest as usize);
        if at >= first.len() {
            let at = at - first.len();
            return second.get(at..at + with.len()) == Some(with);
        }
        let k = (first.len() - at).min(with.len());
        first[at..at + k] == with[..k] && second.get(..with.len() - k) == Some(&with[k..])
    }
}

/// The window, oldest first: the last bytes of the segment that ends at `file_end` in the file
/// (if any), up to two smaller segments in the file (`pieces`), then the last `blen` bytes of
/// the ring. A segment of [`RECENT_BYTES`] or more from the file is the whole window (`file_end`
/// alone: one word written in the reassembler's own line); smaller ones from the file take a
/// piece while there is one free and no byte in the ring after them, else they are copied.
impl Reassembler {
    /// Bytes in the window: they end at `next`.
    pub(super) fn window_len(&self) -> usize {
        if self.file_end != NO_FILE {
            RECENT_BYTES
        } else {
            self.tail()
        }
    }

    /// Bytes in the pieces and the ring.
    fn tail(&self) -> usize {
        self.all_pieces().map(piece_len).sum::<usize>() + self.blen as usize
    }

    /// The pieces, oldest first: the reassembler's, then the ring's (read only when the first
    /// two are taken).
    fn all_pieces(&self) -> impl Iterator<Item = u64> + '_ {
        let more = match &self.ring {
            Some(r) if self.pieces[1] != 0 => &r.more[..],
            _ => &[],
        };
        self.pieces.iter().chain(more).copied().take_while(|&p| p != 0)
    }

    /// Adds piece `p` after the others; false when there is no room left.
    fn push_piece(&mut self, p: u64) -> bool {
        if let Some(k) = self.pieces.iter().position(|&q| q == 0) {
            self.pieces[k] = p;
            return true;
        }
        let r = self.ring.get_or_insert_with(Ring::new);
        match r.more.iter().position(|&q| q == 0) {
            Some(k) => {
                r.more[k] = p;
                true
            }
            None => false,
        }
    }

    /// Drops the oldest piece.
    fn pop_piece(&mut self) {
        let next = match &mut self.ring {
            Some(r) if self.pieces[1] != 0 => {
                let first = r.more[0];
                r.more.copy_within(1.., 0);
                r.more[MORE_PIECES - 1] = 0;
                first
            }
            _ => 0,
        };
        self.pieces = [self.pieces[1], next];
    }

    /// No pieces.
    fn clear_pieces(&mut self) {
        if self.pieces[1] != 0 {
            if let Some(r) = &mut self.ring {
                r.more = [0; MORE_PIECES];
            }
        }
        self.pieces = [0; 2];
    }

    pub(super) fn clear_recent(&mut self) {
        self.blen = 0;
        self.clear_pieces();
        self.file_end = NO_FILE;
    }

    /// Adds delivered `data` (at file offset `at`, if it lies in the capture file) to the window.
    pub(super) fn remember(&mut self, data: &[u8], at: Option<u64>) {
        let at = at.filter(|a| a.saturating_add(data.len() as u64) < PIECE_AT_LIMIT);
        if data.len() >= RECENT_BYTES {
            self.clear_pieces();
            self.blen = 0;
            if let Some(at) = at {
                // The common case: one word written, in the reassembler's own cache line.
                self.file_end = at + data.len() as u64;
                return;
            }
            self.file_end = NO_FILE;
            self.ring_push(data);
            self.blen = RECENT_BYTES as u16;
            return;
        }
        if data.is_empty() {
            return;
        }
        // Keep the last RECENT_BYTES: what the new bytes push out leaves the window's front
        // first (the segment at `file_end`, then the oldest pieces' first bytes, then the
        // ring's), so that a piece it frees can take them.
        let tail = self.tail() + data.len();
        if tail >= RECENT_BYTES {
            self.file_end = NO_FILE;
        }
        let mut excess = tail.saturating_sub(RECENT_BYTES);
        while excess > 0 && self.pieces[0] != 0 {
            let (p, len) = (self.pieces[0], piece_len(self.pieces[0]));
            if len <= excess {
                excess -= len;
                self.pop_piece();
            } else {
                self.pieces[0] = piece(piece_at(p) + excess as u64, len - excess);
                excess = 0;
            }
        }
        // (At most `blen`: the new bytes are fewer than RECENT_BYTES.)
        self.blen -= (excess as u16).min(self.blen);
        // A piece while there is one free and no byte in the ring after them (the window's
        // parts stay in delivery order), else a copy.
        if !at.is_some_and(|at| self.blen == 0 && self.push_piece(piece(at, data.len()))) {
            self.ring_push(data);
            self.blen += data.len() as u16;
        }
    }

    fn ring_push(&mut self, data: &[u8]) {
        self.ring.get_or_insert_with(Ring::new).push(data);
    }

    /// Whether bytes `at..at + with.len()` of a window held in the ring alone equal `with`.
    #[cfg(test)]
    pub(super) fn recent_matches(&self, at: usize, with: &[u8]) -> bool {
        match &self.ring {
            Some(r) => r.matches_back(self.window_len() - at, with),
            None => with.is_empty(),
        }
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
        // The part in the window [lo, hi) of [from, to), and the payload bytes over it.
        let part = |from: usize, to: usize| {
            let (lo, hi) = (a.max(from), (a + n).min(to));
            (lo < hi).then(|| (lo, &payload[b + lo - a..b + hi - a]))
        };
        // The ring first: a difference there needs no read.
        let in_ring = w - self.blen as usize;
        if let (Some((lo, with)), Some(r)) = (part(in_ring, w), &self.ring) {
            if !r.matches_back(w - lo, with) {
                st.overlap_conflicts += 1;
                return;
            }
        }
        let in_file = in_ring - self.all_pieces().map(piece_len).sum::<usize>();
        let mut buf = [0u8; RECENT_BYTES];
        // The part of the window in `file_end`'s segment, then each piece's.
        let first = (in_file, self.file_end.wrapping_sub(in_file as u64));
        let pieces = self.all_pieces().map(|p| (piece_len(p), piece_at(p)));
        let mut from = 0;
        for (len, at) in std::iter::once(first).chain(pieces) {
            let to = from + len;
            if let Some((lo, with)) = part(from, to) {
                let buf = &mut buf[..with.len()];
                if src.read_back(at + (lo - from) as u64, buf) && buf != with {
                    st.overlap_conflicts += 1;
                    return;
                }
            }
            from = to;
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

    /// What the consumer was given, kept.
    fn kept(c: Chunk<'_>) -> Got {
        match c {
            Chunk::Data(d) => Got::Data(d.to_vec()),
            Chunk::Gap(n) => Got::Gap(n),
        }
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
            got.push(kept(c));
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
            got.push(kept(c));
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
        assert_eq!((r.ring.is_none(), r.file_end, r.window_len()), (true, 2040, RECENT_BYTES));
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
            assert_eq!((r.window_len(), r.blen, r.file_end), (RECENT_BYTES, 500, 1500));
            let mut again = stream[1400..1900].to_vec();
            if let Some(k) = flip {
                again[k] ^= 1;
            }
            r.segment_at(&mut st, 1400, false, &again, None, src, 500, 1 << 16, &mut out);
            assert_eq!(st.overlap_conflicts, conflicts, "flip {flip:?}");
        }
    }

    #[test]
    fn six_small_segments_from_the_file_take_pieces_the_seventh_is_copied() {
        // 1,200 bytes at file offset 0, then six segments of 100 bytes at 2,000, 3,000, ...
        // 7,000 and one of 50 at 8,000: the window is the first's last 374 bytes, the six pieces
        // (two in the reassembler, four in the ring's box), then 50 bytes in the ring.
        let stream: Vec<u8> = (0..1850u32).map(|i| (i * 11 + 3) as u8).collect();
        let mut parts = vec![(0, 0, 1200)];
        parts.extend((0..6).map(|k| (2000 + 1000 * k, 1200 + 100 * k, 1300 + 100 * k)));
        parts.push((8000, 1800, 1850));
        let mut file = vec![0u8; 8100];
        for &(at, from, to) in &parts {
            file[at..at + to - from].copy_from_slice(&stream[from..to]);
        }
        let flips = [(None, 0), (Some(0), 1), (Some(200), 1), (Some(450), 1), (Some(640), 1), (Some(820), 1)];
        for (flip, conflicts) in flips {
            let (mut r, mut st) = (Reassembler::default(), HalfStats::default());
            let mut out = |_: Chunk<'_>| Feed::More;
            let src = &Mem(&file);
            for &(at, from, to) in &parts {
                let (seq, len) = (from as u32, (to - from) as u32);
                r.segment_at(
                    &mut st,
                    seq,
                    false,
                    &stream[from..to],
                    Some(at as u64),
                    src,
                    len,
                    1 << 16,
                    &mut out,
                );
            }
            let pieces: Vec<_> = r.all_pieces().map(|p| (p >> 16, p & 0xffff)).collect();
            let want: Vec<_> = (0..6).map(|k| (2000 + 1000 * k, 100)).collect();
            assert_eq!((r.file_end, pieces, r.blen), (1200, want, 50));
            // Across all parts of the window: [826, 1850).
            let mut again = stream[1000..1850].to_vec();
            if let Some(k) = flip {
                again[k] ^= 1;
            }
            r.segment_at(&mut st, 1000, false, &again, None, src, 850, 1 << 16, &mut out);
            assert_eq!(st.overlap_conflicts, conflicts, "flip {flip:?}");
        }
    }

    #[test]
    fn pieces_leave_the_window_oldest_first() {
        // Twelve segments of 200 bytes from the file: the window keeps the last 1,024 bytes,
        // the last five pieces and 24 bytes of the one before; a gap empties it.
        let stream: Vec<u8> = (0..2400u32).map(|i| (i * 5 + 9) as u8).collect();
        let file: Vec<u8> = stream.clone();
        let (mut r, mut st) = (Reassembler::default(), HalfStats::default());
        let mut out = |_: Chunk<'_>| Feed::More;
        let src = &Mem(&file);
        for k in 0..12u32 {
            let (from, to) = (200 * k as usize, 200 * (k as usize + 1));
            r.segment_at(
                &mut st,
                200 * k,
                false,
                &stream[from..to],
                Some(from as u64),
                src,
                200,
                1 << 16,
                &mut out,
            );
        }
        let pieces: Vec<_> = r.all_pieces().map(|p| (p >> 16, p & 0xffff)).collect();
        assert_eq!(pieces, [(1376, 24), (1400, 200), (1600, 200), (1800, 200), (2000, 200), (2200, 200)]);
        assert_eq!((r.window_len(), r.blen), (RECENT_BYTES, 0));
        r.clear_recent();
        assert_eq!((r.all_pieces().count(), r.window_len()), (0, 0));
        assert!(r.ring.as_ref().is_some_and(|g| g.more == [0; super::MORE_PIECES]));
    }
}

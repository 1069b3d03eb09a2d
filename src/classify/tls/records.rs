//! TLS record layer: recognising a TLS stream ([`probe`], including SSLv2-format hellos),
//! finding a record boundary in bytes of unknown or interrupted stream ([`resync`],
//! [`find_client_hello`]), and the session's record walk: records parsed in place when a chunk
//! holds them whole, copied into the side's `rec` buffer only when they span chunks, handshake
//! bytes split into messages (handed to `hello.rs`), and the record headers of the client's first
//! encrypted records (the "tail", read by `verdict.rs`).
//!
//! Invariants: a buffered record is at most 5 + [`MAX_RECORD`] bytes, a buffered handshake
//! message at most [`TlsLimits::max_buffer`] plus one record (a longer one is skipped with a
//! warning); a resync window never exceeds `SCAN_WINDOW`, and a side gives up after
//! `MAX_RESYNC_SCAN` bytes without a boundary. Every scan is one linear pass.

use super::names::{
    is_tls13, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CCS, CONTENT_FIRST, CONTENT_HANDSHAKE,
    CONTENT_LAST, HS_CLIENT_HELLO, HS_KEY_UPDATE, HS_MESSAGE_HASH, SSL2_CLIENT_HELLO, SSL2_SERVER_HELLO,
};
use super::{TlsSession, MAX_ALERTS, MAX_RECORD, MAX_RESYNC_SCAN, SCAN_WINDOW, TAIL_RECORDS, TAIL_WALK};
use crate::wire::{Probe, Side, Timestamp};

/// Is `v` a plausible record version (SSL 3.0 .. TLS 1.3 legacy values)?
#[inline]
fn plausible_version(major: u8, minor: u8) -> bool {
    major == 3 && minor <= 4
}

/// Checks a record header at `b[0..5]`; returns the body length.
#[inline]
fn record_header(b: &[u8]) -> Option<usize> {
    let (&t, &maj, &min) = (b.first()?, b.get(1)?, b.get(2)?);
    let len = u16::from_be_bytes([*b.get(3)?, *b.get(4)?]) as usize;
    ((CONTENT_FIRST..=CONTENT_LAST).contains(&t)
        && plausible_version(maj, min)
        && (1..=MAX_RECORD).contains(&len))
    .then_some(len)
}

/// Does `b` start an SSLv2-format record holding a CLIENT-HELLO (RFC 6101 appendix E.2; TLS
/// clients sent it for compatibility, RFC 5246 appendix E.2) or a SERVER-HELLO (the answer of an
/// SSL 2.0 server)?
fn sslv2_hello(b: &[u8]) -> Probe {
    let Some(&b0) = b.first() else { return Probe::NeedMore };
    if b0 & 0x80 == 0 {
        return Probe::NoMatch;
    }
    let len = match b.get(1) {
        Some(&b1) => (((b0 & 0x7f) as usize) << 8) | b1 as usize,
        None => return Probe::NeedMore,
    };
    // Expected bytes from offset 3 on (None: any value); NeedMore until all are present.
    let want: &[Option<u8>] = match b.get(2) {
        None => return Probe::NeedMore,
        // CLIENT-HELLO: version 0x0002 or 0x0300..=0x0304; at least 9 bytes of fixed fields.
        Some(&SSL2_CLIENT_HELLO) if len >= 9 => &[None, None],
        // SERVER-HELLO: session-id-hit (any), certificate type 1 (X.509), version 0x0002.
        Some(&SSL2_SERVER_HELLO) if len >= 11 => &[None, Some(1), Some(0), Some(2)],
        _ => return Probe::NoMatch,
    };
    for (i, w) in want.iter().enumerate() {
        match (b.get(3 + i), w) {
            (None, _) => return Probe::NeedMore,
            (Some(v), Some(w)) if v != w => return Probe::NoMatch,
            _ => {}
        }
    }
    if b[2] == SSL2_CLIENT_HELLO && !matches!((b[3], b[4]), (0, 2) | (3, 0..=4)) {
        return Probe::NoMatch;
    }
    Probe::Match
}

/// Does `data` start like a TLS stream?
pub(crate) fn probe(data: &[u8]) -> Probe {
    let Some(&first) = data.first() else { return Probe::NeedMore };
    if first & 0x80 != 0 {
        return sslv2_hello(data);
    }
    if !(CONTENT_FIRST..=CONTENT_LAST).contains(&first) {
        return Probe::NoMatch;
    }
    for (i, &b) in data.iter().enumerate().take(6).skip(1) {
        let ok = match i {
            1 => b == 3,
            2 => b <= 4,
            _ => true,
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    if data.len() < 5 {
        return Probe::NeedMore;
    }
    if record_header(data).is_none() {
        return Probe::NoMatch;
    }
    if first == CONTENT_HANDSHAKE {
        match data.get(5) {
            None => return Probe::NeedMore,
            Some(&t) if t > HS_KEY_UPDATE && t != HS_MESSAGE_HASH => return Probe::NoMatch,
            _ => {}
        }
    }
    Probe::Match
}

/// Checks a record header at `b[0..5]` inside a stream already in sync; returns the body length.
/// Unlike [`record_header`] it accepts empty application-data records, which TLS ≤ 1.2 allows
/// (RFC 5246 §6.2.1; OpenSSL once sent them before CBC records).
#[inline]
pub(super) fn stream_header(b: &[u8]) -> Option<usize> {
    let (&t, &maj, &min) = (b.first()?, b.get(1)?, b.get(2)?);
    let len = u16::from_be_bytes([*b.get(3)?, *b.get(4)?]) as usize;
    let len_ok = len <= MAX_RECORD && (len > 0 || t == CONTENT_APPLICATION_DATA);
    ((CONTENT_FIRST..=CONTENT_LAST).contains(&t) && plausible_version(maj, min) && len_ok).then_some(len)
}

/// Could `b` (fewer than 5 bytes) begin a record header?
fn header_prefix_ok(b: &[u8]) -> bool {
    b.first().is_none_or(|t| (CONTENT_FIRST..=CONTENT_LAST).contains(t))
        && b.get(1).is_none_or(|&m| m == 3)
        && b.get(2).is_none_or(|&m| m <= 4)
        && (b.len() < 5 || stream_header(b).is_some())
}

/// Outcome of a scan for a record boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// A plausible header followed by another plausible header.
    Found(usize),
    /// A plausible header at `at` whose successor ends at `need`, beyond the data (or only
    /// partly inside it, plausibly so).
    Wait { at: usize, need: usize },
    /// No candidate before `keep_from`; the bytes from there may still start a header.
    Nothing { keep_from: usize },
}

/// Scans `data` once, left to right, for the first plausible record header (see
/// [`record_header`]) whose following header, where `data` shows it, is plausible too.
fn scan_records(data: &[u8]) -> Scan {
    let n = data.len();
    let mut i = 0;
    while i + 5 <= n {
        // Only an offset followed by a 3 (the major version) can start a header: jump to the
        // next one (memchr: the byte-by-byte walk over unrecognised streams was 2% of the
        // benchmark's time).
        let Some(p) = memchr::memchr(3, &data[i + 1..=n - 4]) else {
            i = n - 4;
            break;
        };
        i += p;
        if let Some(found) = scan_at(data, i) {
            return found;
        }
        i += 1;
    }
    Scan::Nothing { keep_from: i }
}

/// What [`scan_records`] concludes at offset `i` (with `i + 5 <= data.len()`), if anything.
fn scan_at(data: &[u8], i: usize) -> Option<Scan> {
    let len = record_header(&data[i..])?;
    let next = i + 5 + len;
    match data.get(next..) {
        Some(rest) if rest.len() >= 5 => stream_header(rest).is_some().then_some(Scan::Found(i)),
        Some(rest) if !header_prefix_ok(rest) => None,
        _ => Some(Scan::Wait { at: i, need: next + 5 }),
    }
}

/// TLS found inside bytes of unknown protocol (see [`resync`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    /// Two chained record headers, the first at this offset.
    At(usize),
    /// A plausible header whose successor should start this many bytes after the end of the
    /// data: the caller confirms it there with [`is_record_header`] before believing it.
    Expect(usize),
}

/// The first plausible TLS record header in `data` (mid-stream TLS in bytes of unknown
/// protocol): one valid header followed by another, or one whose successor lies beyond `data`.
/// One linear pass over `data`. A single header is weak evidence (five bytes of random data
/// pass one time in a few million), hence [`Resync::Expect`].
pub(crate) fn resync(data: &[u8]) -> Option<Resync> {
    match scan_records(data) {
        Scan::Found(o) => Some(Resync::At(o)),
        Scan::Wait { need, .. } if need - 5 >= data.len() => Some(Resync::Expect(need - 5 - data.len())),
        Scan::Wait { .. } | Scan::Nothing { .. } => None,
    }
}

/// Does `b` start with a plausible record header?
pub(crate) fn is_record_header(b: &[u8]) -> bool {
    stream_header(b).is_some()
}

/// Offset of a TLS ClientHello record header in `data` (STARTTLS and tunnels).
pub(crate) fn find_client_hello(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(CONTENT_HANDSHAKE, data.get(i..)?) {
        let at = i + p;
        let b = &data[at..];
        if b.len() >= 11 && record_header(b).is_some() && b[5] == HS_CLIENT_HELLO && b[9] == 3 && b[10] <= 4 {
            // Handshake length: at least version, random, and the four length fields; the
            // session id (offset 43 when present) is at most 32 bytes.
            let hs_len = u32::from_be_bytes([0, b[6], b[7], b[8]]) as usize;
            if hs_len >= 38 && b.get(43).is_none_or(|&sid| sid <= 32) {
                return Some(at);
            }
        }
        i = at + 1;
    }
    None
}

impl TlsSession {
    pub(super) fn feed_bytes(&mut self, side: Side, data: &[u8], ts: Timestamp) {
        let s = side.idx();
        let mut pos = 0;
        while pos < data.len() && !self.sides[s].done {
            if self.sides[s].resync {
                pos += self.resync_step(side, &data[pos..], ts);
                continue;
            }
            if !self.sides[s].rec.is_empty() {
                pos = self.fill_record(side, data, pos, ts);
                continue;
            }
            let rest = &data[pos..];
            if (self.sides[s].records == 0 || self.sides[s].sslv2) && rest[0] & 0x80 != 0 {
                // SSLv2 record format (2-byte header with the high bit set).
                if rest.len() < 2 {
                    self.sides[s].rec.extend_from_slice(rest);
                    return;
                }
                let len = (((rest[0] & 0x7f) as usize) << 8) | rest[1] as usize;
                if rest.len() < 2 + len {
                    self.sides[s].buffer_partial(rest, 2 + len);
                    return;
                }
                self.sslv2_record(side, &rest[2..2 + len], ts);
                pos += 2 + len;
                continue;
            }
            if rest.len() < 5 {
                self.sides[s].rec.extend_from_slice(rest);
                return;
            }
            let Some(len) = stream_header(rest) else {
                self.warn(format!("tls: invalid record header {:02x?}; resynchronising", &rest[..5]));
                self.sides[s].start_resync();
                pos += 1;
                continue;
            };
            if rest.len() < 5 + len {
                self.sides[s].buffer_partial(rest, 5 + len);
                return;
            }
            self.record(side, rest[0], &rest[5..5 + len], ts);
            pos += 5 + len;
        }
        if self.sides[s].done && pos < data.len() {
            self.walk_tail(side, &data[pos..]);
            if self.dec.is_some() {
                self.dec_stream(side, &data[pos..], ts);
            }
        }
    }

    /// The server chose a version below TLS 1.3 (or SSL 2.0): nothing to infer from record sizes.
    fn below_tls13(&self) -> bool {
        self.sh.as_ref().is_some_and(|sh| sh.sslv2 || !is_tls13(sh.selected.unwrap_or(sh.legacy)))
    }

    /// Starts walking the record headers of `side` once its cleartext part is over: only for
    /// the client, and not once the server is known to have chosen TLS ≤ 1.2.
    fn start_tail(&mut self, side: Side, first_app_data: Option<usize>) {
        if self.client != Some(side) || self.sides[side.idx()].sslv2 || self.below_tls13() {
            return;
        }
        self.sides[side.idx()].tail.active = true;
        if let Some(len) = first_app_data {
            self.tail_record(side, CONTENT_APPLICATION_DATA, len);
        }
    }

    /// Counts one record walked by the tail.
    fn tail_record(&mut self, side: Side, ctype: u8, len: usize) {
        let tls12 = self.below_tls13();
        let t = &mut self.sides[side.idx()].tail;
        t.walked = t.walked.saturating_add(1);
        if ctype == CONTENT_APPLICATION_DATA && (t.n as usize) < TAIL_RECORDS {
            t.lens[t.n as usize] = len as u16;
            t.n += 1;
        }
        if t.n as usize == TAIL_RECORDS || t.walked >= TAIL_WALK || tls12 {
            t.active = false;
        }
    }

    /// Walks record headers of a side whose cleartext part is over, skipping bodies.
    fn walk_tail(&mut self, side: Side, data: &[u8]) {
        let s = side.idx();
        let mut pos = 0;
        while self.sides[s].tail.active && pos < data.len() {
            let t = &mut self.sides[s].tail;
            if t.skip > 0 {
                let k = t.skip.min(data.len() - pos);
                t.skip -= k;
                pos += k;
                continue;
            }
            let have = t.hdr_len as usize;
            let k = (5 - have).min(data.len() - pos);
            t.hdr[have..have + k].copy_from_slice(&data[pos..pos + k]);
            t.hdr_len += k as u8;
            pos += k;
            if t.hdr_len < 5 {
                return;
            }
            t.hdr_len = 0;
            match stream_header(&t.hdr) {
                Some(len) => {
                    t.skip = len;
                    let ctype = t.hdr[0];
                    self.tail_record(side, ctype, len);
                }
                None => {
                    t.broken = true;
                    t.active = false;
                }
            }
        }
    }

    /// Looks for the next record boundary in `data`, the continuation of the side's stream;
    /// returns the bytes consumed. A candidate header counts once the header after it is seen
    /// too (or, for a mid-stream record, once it cannot be seen): see [`scan_records`].
    fn resync_step(&mut self, side: Side, data: &[u8], ts: Timestamp) -> usize {
        let s = side.idx();
        let st = &mut self.sides[s];
        let (consumed, dropped, found) = if st.scan.is_empty() {
            match scan_records(data) {
                Scan::Found(o) => {
                    st.resync = false;
                    st.scanned = 0;
                    return o;
                }
                Scan::Wait { at, need } => {
                    st.scan.extend_from_slice(&data[at..]);
                    st.scan_need = need - at;
                    (data.len(), at, None)
                }
                Scan::Nothing { keep_from } => {
                    st.scan.extend_from_slice(&data[keep_from..]);
                    st.scan_need = 0;
                    (data.len(), keep_from, None)
                }
            }
        } else {
            if st.scan.len() >= SCAN_WINDOW {
                // Cannot happen (a candidate is decided within 5 + MAX_RECORD + 5 bytes); be safe.
                st.scan.clear();
            }
            let n = (SCAN_WINDOW - st.scan.len()).min(data.len());
            st.scan.extend_from_slice(&data[..n]);
            if st.scan.len() < st.scan_need {
                return n;
            }
            match scan_records(&st.scan) {
                Scan::Found(o) => (n, o, Some(o)),
                Scan::Wait { at, need } => {
                    st.scan.drain(..at);
                    st.scan_need = need - at;
                    (n, at, None)
                }
                Scan::Nothing { keep_from } => {
                    st.scan.drain(..keep_from);
                    st.scan_need = 0;
                    (n, keep_from, None)
                }
            }
        };
        st.scanned = st.scanned.saturating_add(dropped);
        if let Some(o) = found {
            let win = std::mem::take(&mut st.scan);
            st.resync = false;
            st.scanned = 0;
            st.scan_need = 0;
            // `win` holds bytes up to the end of `data[..consumed]`: parse them now, in order.
            self.feed_bytes(side, win.get(o..).unwrap_or(&[]), ts);
            return consumed;
        }
        if st.scanned > MAX_RESYNC_SCAN {
            st.done = true;
            self.warn(format!("tls: no record boundary in {MAX_RESYNC_SCAN} bytes; giving up on this side"));
        }
        consumed
    }

    /// Completes a buffered record with bytes from `data[pos..]`; returns the new position.
    fn fill_record(&mut self, side: Side, data: &[u8], pos: usize, ts: Timestamp) -> usize {
        let s = side.idx();
        let buf = &mut self.sides[s].rec;
        let sslv2 =
            (self.sides[s].records == 0 || self.sides[s].sslv2) && buf.first().is_some_and(|b| b & 0x80 != 0);
        let hdr = if sslv2 { 2 } else { 5 };
        if buf.len() < hdr {
            let k = (hdr - buf.len()).min(data.len() - pos);
            buf.extend_from_slice(&data[pos..pos + k]);
            return pos + k;
        }
        let len = if sslv2 {
            (((buf[0] & 0x7f) as usize) << 8) | buf[1] as usize
        } else {
            match stream_header(buf) {
                Some(l) => l,
                None => {
                    let w = format!("tls: invalid record header {:02x?}; resynchronising", &buf[..5]);
                    self.sides[s].start_resync();
                    self.warn(w);
                    return pos;
                }
            }
        };
        let need = hdr + len - buf.len();
        let k = need.min(data.len() - pos);
        // The whole record at once (its header is known now, and bounds it): see `buffer_partial`.
        buf.reserve_exact(need);
        buf.extend_from_slice(&data[pos..pos + k]);
        if buf.len() == hdr + len {
            let rec = std::mem::take(&mut self.sides[s].rec);
            if sslv2 {
                self.sslv2_record(side, &rec[2..], ts);
            } else {
                self.record(side, rec[0], &rec[5..], ts);
            }
            let mut rec = rec;
            rec.clear();
            if self.sides[s].rec.is_empty() && rec.capacity() <= 4096 {
                self.sides[s].rec = rec; // keep a small allocation for the next partial record
            }
        }
        pos + k
    }

    fn record(&mut self, side: Side, ctype: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        self.saw = true;
        self.sides[s].records += 1;
        self.sides[s].scanned = 0;
        match ctype {
            CONTENT_CCS => {
                let held = self.held(side);
                let st = &mut self.sides[s];
                st.ccs = true;
                if !held && !st.done {
                    st.encrypted = true;
                    st.done = true;
                    self.start_tail(side, None);
                }
            }
            CONTENT_ALERT
                if !self.sides[s].encrypted && body.len() == 2 && self.alerts.len() < MAX_ALERTS =>
            {
                self.alerts.push((side, body[0], body[1], false));
            }
            CONTENT_HANDSHAKE if !self.sides[s].encrypted => self.handshake_bytes(side, body, ts),
            CONTENT_APPLICATION_DATA if !self.held(side) && !self.sides[s].done => {
                self.sides[s].done = true;
                self.start_tail(side, Some(body.len()));
                if self.dec.is_some() {
                    self.dec_first_record(side, ctype, body, ts);
                }
            }
            // 0-RTT data (decrypted with CLIENT_EARLY_TRAFFIC_SECRET once the suite is known).
            CONTENT_APPLICATION_DATA
                if self.dec.is_some() && self.client == Some(side) && !self.sides[s].done =>
            {
                self.dec_first_record(side, ctype, body, ts);
            }
            _ => {}
        }
    }

    /// Handshake-protocol bytes of one record: splits them into messages.
    fn handshake_bytes(&mut self, side: Side, mut body: &[u8], ts: Timestamp) {
        let s = side.idx();
        if self.sides[s].hs_skip > 0 {
            let k = self.sides[s].hs_skip.min(body.len());
            self.sides[s].hs_skip -= k;
            body = &body[k..];
        }
        if !self.sides[s].hs.is_empty() {
            let mut hs = std::mem::take(&mut self.sides[s].hs);
            hs.extend_from_slice(body);
            let used = self.messages(side, &hs, ts);
            hs.drain(..used);
            if self.sides[s].hs.is_empty() && !self.sides[s].done {
                if hs.is_empty() && hs.capacity() > 64 * 1024 {
                    hs = Vec::new(); // a big message went through; do not keep its memory
                }
                self.sides[s].hs = hs;
            }
            return;
        }
        let used = self.messages(side, body, ts);
        if used < body.len() && self.sides[s].hs_skip == 0 {
            self.sides[s].hs.extend_from_slice(&body[used..]);
        }
    }

    /// Parses whole messages from `b`; returns bytes used (the rest is a partial message, or
    /// the start of an oversized one now being skipped).
    fn messages(&mut self, side: Side, b: &[u8], ts: Timestamp) -> usize {
        let s = side.idx();
        let mut pos = 0;
        while b.len() - pos >= 4 && !self.sides[s].done && !self.sides[s].encrypted {
            let typ = b[pos];
            let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
            if len > self.limits.max_buffer {
                self.warn(format!("tls: handshake message of {len} bytes exceeds buffer limit"));
                let have = b.len() - pos - 4;
                if have >= len {
                    pos += 4 + len;
                    continue;
                }
                self.sides[s].hs_skip = len - have;
                return b.len();
            }
            if b.len() - pos - 4 < len {
                break;
            }
            self.message(side, typ, &b[pos + 4..pos + 4 + len], ts);
            pos += 4 + len;
        }
        if self.sides[s].done || self.sides[s].encrypted {
            return b.len();
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::testutil::*;
    use crate::classify::tls::*;

    /// [`scan_records`] without its jumps: every offset in turn.
    fn scan_records_walk(data: &[u8]) -> Scan {
        let n = data.len();
        (0..n.saturating_sub(4))
            .find_map(|i| scan_at(data, i))
            .unwrap_or(Scan::Nothing { keep_from: if n >= 5 { n - 4 } else { 0 } })
    }

    #[test]
    fn scan_records_agrees_with_walking_every_offset() {
        // Random bytes drawn mostly from the values a header is made of, so that candidates,
        // chains and cut-off successors all occur; every length from 0 to 300.
        let mut next = crate::wire::xorshift(0x5eed_7e11);
        let alphabet = [0u8, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 0x40, 0xff];
        let mut kinds = [0usize; 3];
        for round in 0..20_000 {
            let len = round % 301;
            let mut data: Vec<u8> =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if round % 3 == 0 && len > 20 {
                // A real record with a short body, followed by the next header, somewhere.
                let at = (next() % (len as u64 - 20)) as usize;
                let body = (next() % 8) as u8 + 1;
                let rec = [22, 3, 3, 0, body];
                data[at..at + 5].copy_from_slice(&rec);
                let succ = at + 5 + body as usize;
                if succ + 5 <= len {
                    data[succ..succ + 5].copy_from_slice(&[23, 3, 3, 0, 2]);
                }
            }
            let (fast, walk) = (scan_records(&data), scan_records_walk(&data));
            assert_eq!(fast, walk, "{data:?}");
            kinds[match walk {
                Scan::Found(_) => 0,
                Scan::Wait { .. } => 1,
                Scan::Nothing { .. } => 2,
            }] += 1;
        }
        assert!(kinds.iter().all(|&k| k > 100), "every outcome exercised: {kinds:?}");
    }

    #[test]
    fn probes_and_resync() {
        assert_eq!(probe(&[22, 3, 1, 0, 5, 1]), Probe::Match);
        assert_eq!(probe(&[22, 3]), Probe::NeedMore);
        assert_eq!(probe(b"GET / HTTP/1.1"), Probe::NoMatch);
        assert_eq!(probe(&[0x80, 0x2e, 1, 3, 1]), Probe::Match);
        assert_eq!(probe(&[0x80, 0x2e, 1, 9, 1]), Probe::NoMatch);
        let mut d = vec![0xde, 0xad, 0xbe];
        d.extend_from_slice(&[23, 3, 3, 0, 2, 9, 9, 23, 3, 3, 0, 1, 7]);
        assert_eq!(resync(&d), Some(Resync::At(3)));
        // One header whose successor lies beyond the data: to be confirmed 5 bytes further.
        assert_eq!(resync(&[0xde, 23, 3, 3, 0, 6, 1]), Some(Resync::Expect(5)));
        let mut pre = b"EHLO x\r\nSTARTTLS\r\n".to_vec();
        let at = pre.len();
        pre.extend(record(&[(1, client_hello("mail.test", &[], &[]))]));
        assert_eq!(find_client_hello(&pre), Some(at));
    }

    #[test]
    fn oversized_handshake_is_skipped_and_garbage_never_panics() {
        let mut t = TlsSession::new(TlsLimits { max_buffer: 1024 });
        let ts = Timestamp::default();
        let mut rec = vec![22, 3, 3, 0, 8, 11, 0x10, 0, 0, 1, 2, 3, 4];
        rec.truncate(13);
        t.feed(Side::B, &rec, ts);
        assert!(t.take_warnings()[0].contains("exceeds buffer limit"));
        for seed in 0..200u32 {
            let junk: Vec<u8> = (0..300).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect();
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &[22, 3, 1, 1, 0], ts);
            t.feed(Side::A, &junk, ts);
            t.gap(Side::A);
            t.feed(Side::A, &junk, ts);
            let _ = t.finish(Side::A);
        }
    }

    #[test]
    fn tls13_tail_walks_headers_byte_by_byte_and_stops() {
        // The same verdict when the client's records arrive one byte at a time; the side reports
        // Done after 4 application_data records, and a gap stops the walk.
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[ext(43, &[3, 4])]))]), ts);
        let mut c = vec![20, 3, 3, 0, 1, 1];
        for n in [487usize, 96, 53, 300, 20] {
            c.extend_from_slice(&[23, 3, 3]);
            c.extend_from_slice(&(n as u16).to_be_bytes());
            c.extend(std::iter::repeat_n(0, n));
        }
        let feeds: Vec<Feed> = c.chunks(1).map(|b| t.feed(Side::A, b, ts)).collect();
        let first_done = feeds.iter().position(|f| *f == Feed::Done).unwrap();
        // Done right after the 4th record's header (6 + 3 full records + its 5 header bytes).
        assert_eq!(first_done, 6 + (5 + 487) + (5 + 96) + (5 + 53) + 5 - 1);
        let r = t.finish(Side::A);
        assert_eq!(r.client_encrypted_records[..], [487, 96, 53, 300]);
        assert_eq!(r.mtls.as_str(), "likely");

        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[ext(43, &[3, 4])]))]), ts);
        t.feed(Side::A, &[20, 3, 3, 0, 1, 1], ts);
        t.gap(Side::A);
        let r = t.finish(Side::A);
        assert_eq!(r.mtls_reason, "TLS 1.3: the client's encrypted flight was lost in a capture gap");
    }

    /// A capture cut at any byte, or with any one byte of the server's flight corrupted, never
    /// panics and never invents a fact: the SNI and the version are those of the whole capture,
    /// or not known yet; the client's untouched ClientHello is always read whole.
    #[test]
    fn truncated_and_corrupted_captures_never_panic() {
        let sni = |r: &TlsReport| r.sni.as_ref().map(|s| s.as_bytes().to_vec());
        for f in [TLS12_MTLS, TLS13_HRR, TLS12_RESUME] {
            let full = run(f).0.finish(Side::A);
            assert!(sni(&full).is_some() && full.version.is_some());
            for side in [Side::A, Side::B] {
                let s = stream(f, side);
                for cut in 0..s.len().min(1500) {
                    let mut t = TlsSession::new(limits());
                    t.feed(side, &s[..cut], SEEN);
                    let r = t.finish(Side::A);
                    assert!(sni(&r).is_none() || sni(&r) == sni(&full), "cut at {cut}");
                    assert!(r.version.is_none() || r.version == full.version, "cut at {cut}");
                }
            }
        }
        let full = run(TLS12_MTLS).0.finish(Side::A);
        let client = stream(TLS12_MTLS, Side::A);
        let server = stream(TLS12_MTLS, Side::B);
        for i in 0..server.len() {
            let mut s = server.clone();
            s[i] ^= 0x5a;
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            t.feed(Side::B, &s, SEEN);
            t.feed(Side::A, &client[280..], SEEN);
            let r = t.finish(Side::A);
            assert_eq!(sni(&r), sni(&full), "byte {i}");
            assert_eq!(r.alpn_offered, full.alpn_offered, "byte {i}");
            let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
            assert!(v.is_object(), "byte {i}");
            let _ = t.take_warnings();
        }
    }

    #[test]
    fn resyncs_after_a_gap_mid_certificate() {
        // The server's Certificate record is cut by a gap: the CertificateRequest and
        // ServerHelloDone records after it are still found.
        let server = stream(TLS12_MTLS, Side::B);
        let client = stream(TLS12_MTLS, Side::A);
        for chunk in [usize::MAX, 1, 13] {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            t.feed(Side::B, &server[..150], SEEN);
            t.gap(Side::B);
            for c in server[700..].chunks(chunk.min(server.len())) {
                if t.feed(Side::B, c, SEEN) == Feed::Done {
                    break;
                }
            }
            t.feed(Side::A, &client[280..], SEEN);
            assert!(t.take_warnings().is_empty());
            let r = t.finish(Side::A);
            assert!(r.server_certs.is_empty() && r.client_cert_requested);
            assert_eq!(r.client_certs.len(), 2);
            assert_eq!(r.mtls.as_str(), "yes");
            assert_eq!(r.cipher.as_deref(), Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"));
        }
        // resync() itself: first record header confirmed by the next one.
        assert_eq!(resync(&server[700..]), Some(Resync::At(1050 - 700)));
        assert_eq!(resync(&[1, 2, 3]), None);
    }

    #[test]
    fn finds_a_client_hello_after_a_plaintext_prefix() {
        let ch = stream(TLS12_MTLS, Side::A);
        let mut d = b"\x00\x00\x00\x08\x04\xd2\x16\x2fS".to_vec(); // pgsql SSLRequest + 'S'
        let at = d.len();
        d.extend_from_slice(&ch[..280]);
        assert_eq!(find_client_hello(&d), Some(at));
        assert_eq!(probe(&d[at..]), Probe::Match);
        assert_eq!(find_client_hello(&ch[280..]), None);
    }

    /// Server flight with a Certificate message of `n` copies of the test leaf certificate,
    /// split into records of at most 16 KiB, then ServerHelloDone.
    fn big_chain_flight(n: usize) -> (Vec<u8>, usize) {
        let server = stream(TLS12_MTLS, Side::B);
        // Record at 96: Certificate message; its first certificate is the leaf.
        let msg = &server[101..101 + 949];
        let leaf_len = u32::from_be_bytes([0, msg[7], msg[8], msg[9]]) as usize;
        let leaf = &msg[7..10 + leaf_len];
        let list: Vec<u8> = (0..n).flat_map(|_| leaf.to_vec()).collect();
        let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend(list);
        let mut hs = vec![11];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs.extend_from_slice(&[14, 0, 0, 0]);
        let mut out = server[..96].to_vec(); // ServerHello record
        for c in hs.chunks(16384) {
            out.extend_from_slice(&[22, 3, 3]);
            out.extend_from_slice(&(c.len() as u16).to_be_bytes());
            out.extend_from_slice(c);
        }
        (out, hs.len() - 8)
    }

    #[test]
    fn certificate_over_many_records() {
        let client = stream(TLS12_MTLS, Side::A);
        let (flight, msg_len) = big_chain_flight(120);
        assert!(msg_len > 3 * 16384);
        for chunk in [usize::MAX, 1460] {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            for c in flight.chunks(chunk) {
                t.feed(Side::B, c, SEEN);
            }
            let w = t.take_warnings();
            assert_eq!(w, ["tls: certificate chain of 120 certificates; only 16 reported"]);
            let r = t.finish(Side::A);
            assert_eq!(r.server_certs.len(), MAX_CHAIN);
            assert_eq!(r.server_certs[15].subject.as_deref(), Some("CN=reviews,O=cluster.local"));
            assert_eq!(r.mtls.as_str(), "no");
        }
        // Over the buffer limit: skipped with a warning, what follows is still parsed.
        let mut t = TlsSession::new(TlsLimits { max_buffer: 8192 });
        t.feed(Side::A, &client[..280], SEEN);
        for c in flight.chunks(1000) {
            t.feed(Side::B, c, SEEN);
        }
        assert_eq!(
            t.take_warnings(),
            [format!("tls: handshake message of {msg_len} bytes exceeds buffer limit")]
        );
        let r = t.finish(Side::A);
        assert!(r.server_certs.is_empty());
        assert_eq!((r.mtls.as_str(), &*r.mtls_reason), ("no", "server did not request a client certificate"));
    }

    #[test]
    fn random_bytes_chunks_and_gaps_never_panic() {
        let mut next = crate::wire::xorshift(0x2545_f491_4f6c_dd1d);
        let real = stream(TLS12_MTLS, Side::B);
        for round in 0..300 {
            let mut t = TlsSession::new(TlsLimits { max_buffer: 1 + (next() % 70_000) as usize });
            // Random bytes, sometimes spliced with real records and plausible headers.
            let len = (next() % 60_000) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 && !d.is_empty() {
                let at = (next() as usize) % d.len();
                d.splice(at..at, real.iter().copied());
            }
            if round % 5 == 0 {
                for _ in 0..50 {
                    let at = (next() as usize) % (d.len().max(1));
                    let hdr =
                        [20 + (next() % 5) as u8, 3, (next() % 5) as u8, (next() % 0x49) as u8, next() as u8];
                    d.splice(at..at, hdr);
                }
            }
            let mut pos = 0;
            while pos < d.len() {
                let side = if next().is_multiple_of(2) { Side::A } else { Side::B };
                let n = 1 + (next() % 4000) as usize;
                let end = (pos + n).min(d.len());
                t.feed(side, &d[pos..end], SEEN);
                if next().is_multiple_of(7) {
                    t.gap(side);
                }
                pos = end;
            }
            assert!(t.take_warnings().len() <= MAX_WARNINGS);
            let _ = json(&t.finish(Side::A));
        }
    }
}

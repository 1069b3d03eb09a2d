//! The JSON writer's primitives: [`Json`] appends values (quoted, escaped, bare) with their
//! separating commas to a buffer; the escapes of wire bytes; endpoints' text. What each record
//! writes is in the parent module.

use crate::sanitize::json_scan::{may_need_escape, push_escape, scan, word, ESCAPE, HIGH};
use crate::sanitize::WireBytes;
use crate::wire::copy_short;
use serde_json::ser::{CompactFormatter, Formatter};

/// A JSON text being appended to a buffer. Every value writer puts the comma that separates it
/// from the previous value of its object or array; a key leaves none after it.
pub(super) struct Json<'a> {
    pub(super) b: &'a mut Vec<u8>,
    /// A value was just written at this level: the next one needs a comma.
    pub(super) comma: bool,
}

impl Json<'_> {
    pub(super) fn sep(&mut self) {
        if self.comma {
            self.b.push(b',');
        }
    }

    /// A key written by [`key!`] (`,"name":`), without its comma when first in its object:
    /// one copy of a constant, not a comma pushed on its own (a million keys per 100 MB).
    pub(super) fn key(&mut self, quoted: &'static str) -> &mut Self {
        let q = quoted.as_bytes();
        if self.comma {
            self.b.extend_from_slice(q);
        } else {
            self.b.extend_from_slice(&q[1..]);
        }
        self.comma = false;
        self
    }

    pub(super) fn open(&mut self, c: u8) {
        self.sep();
        self.b.push(c);
        self.comma = false;
    }

    pub(super) fn close(&mut self, c: u8) {
        self.b.push(c);
        self.comma = true;
    }

    pub(super) fn raw(&mut self, s: &[u8]) {
        self.bare(s);
    }

    pub(super) fn null(&mut self) {
        self.raw(b"null");
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.raw(if v { b"true" } else { b"false" });
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.sep();
        let _ = CompactFormatter.write_u64(self.b, v);
        self.comma = true;
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.sep();
        let _ = CompactFormatter.write_i64(self.b, v);
        self.comma = true;
    }

    /// As serde_json: shortest round-trip form, `null` when not finite.
    pub(super) fn f64(&mut self, v: f64) {
        if !v.is_finite() {
            return self.null();
        }
        self.sep();
        let _ = CompactFormatter.write_f64(self.b, v);
        self.comma = true;
    }

    /// A timestamp, RFC 3339.
    pub(super) fn ts(&mut self, ts: crate::wire::Timestamp, nanos: bool) {
        if let Some((text, n)) = ts.rfc3339_text(nanos) {
            return self.quoted(&text[..n]);
        }
        self.sep();
        self.b.push(b'"');
        ts.push_rfc3339(nanos, self.b);
        self.b.push(b'"');
        self.comma = true;
    }

    /// A string of characters that never need escaping (digits, letters, `.:[]%-_,`); inlined:
    /// out of line, ~50 instructions a name for ~60 k names per 100 MB.
    #[inline(always)]
    pub(super) fn ascii(&mut self, s: &[u8]) {
        self.quoted(s);
    }

    /// `s` as it is (a number, a constant), after a comma when one is due, as [`Json::quoted`]
    /// writes it.
    #[inline(always)]
    pub(super) fn bare(&mut self, s: &[u8]) {
        self.put::<false>(s);
    }

    /// `s` quoted, after a comma when one is due.
    #[inline(always)]
    pub(super) fn quoted(&mut self, s: &[u8]) {
        self.put::<true>(s);
    }

    /// `s`, quoted if `QUOTE`, after a comma when one is due: the comma written always and
    /// kept or overwritten (no branch), see [`Json::put_after`].
    #[inline(always)]
    pub(super) fn put<const QUOTE: bool>(&mut self, s: &[u8]) {
        let keep = usize::from(self.comma);
        self.put_after::<QUOTE>(b",", keep, s);
    }

    /// `head`, of which the first `keep` bytes stay, then `s`, quoted if `QUOTE`: one
    /// capacity check, and short pieces copied by overlapping loads ([`copy_short`]) instead
    /// of calls to `memcpy`. The comma, the quotes and the copy one by one were ~50 of the
    /// ~135 instructions of a wire string (150 k per 100 MB on the mesh bench file); a key and
    /// its short value (method, path, version, reason) one by one ~40 more a key through the
    /// out-of-line [`Json::key`].
    #[inline(always)]
    fn put_after<const QUOTE: bool>(&mut self, head: &[u8], keep: usize, s: &[u8]) {
        let (n, q) = (s.len(), usize::from(QUOTE));
        self.b.reserve(head.len() + n + 2 * q);
        let len = self.b.len();
        // SAFETY: `reserve` made room for `head.len() + n + 2q` bytes past `len` (`keep <=
        // head.len()`); the writes below are inside it, and neither `head` (a constant) nor
        // `s` is inside `self.b` (a `&mut` is held to it).
        unsafe {
            let p = self.b.as_mut_ptr().add(len);
            copy_short(p, head);
            let p = p.add(keep);
            if QUOTE {
                p.write(b'"');
            }
            copy_short(p.add(q), s);
            if QUOTE {
                p.add(q + n).write(b'"');
            }
            self.b.set_len(len + keep + n + 2 * q);
        }
        self.comma = true;
    }

    /// Constant text after a value of the same object (a `key!`, or a key and its value),
    /// inlined so that the copy has a known length: the `tls` object has thirty keys, and an
    /// out-of-line [`Json::key`] costs ~40 instructions each.
    #[inline(always)]
    pub(super) fn lit(&mut self, s: &'static str) -> &mut Self {
        self.b.extend_from_slice(s.as_bytes());
        self.comma = false;
        self
    }

    /// Constant text (a key after a value of the same object) and the quoted `s` (nothing in it
    /// to escape), in one capacity check ([`Json::put_after`]).
    #[inline(always)]
    pub(super) fn lit_quoted(&mut self, key: &'static str, s: &[u8]) {
        self.put_after::<true>(key.as_bytes(), key.len(), s);
    }

    /// A key after a value of the same object and wire bytes, as [`Json::wire`] writes them.
    #[inline(always)]
    pub(super) fn lit_wire(&mut self, key: &'static str, b: &[u8]) {
        let (escape, high) = scan(b);
        if !escape && !high {
            return self.lit_quoted(key, b);
        }
        self.lit(key).wire_slow(b, escape, high);
    }

    /// Constant text (a key after a value of the same object) and the decimal `v`, in one
    /// capacity check: with the HTTP/2 message keys merged with their constant values
    /// (`h2_tail`) ~0.6M instructions fewer on the default 100 MB bench file, ~1.0M on the mesh
    /// one, than key, then value through serde_json's formatter.
    #[inline(always)]
    pub(super) fn lit_u64(&mut self, key: &'static str, v: u64) {
        let mut t = [0u8; 20];
        self.put_after::<false>(key.as_bytes(), key.len(), crate::wire::decimal(v, &mut t));
    }

    /// A key after a value of the same object and an optional name of ours ([`Json::name`]).
    #[inline(always)]
    pub(super) fn lit_name(&mut self, key: &'static str, s: Option<&'static str>) {
        match s {
            Some(s) => self.lit_quoted(key, s.as_bytes()),
            None => self.lit(key).null(),
        }
    }

    /// An endpoint, `ip:port` / `[ipv6]:port` as [`crate::record::EndpointText`] writes it,
    /// made here in a small array: IPv4 (nearly every flow) each octet's digits from
    /// [`OCTETS`] (`EndpointText` took ~430 instructions an address, two or three a flow),
    /// IPv6 by [`v6_text`].
    pub(super) fn endpoint(&mut self, a: std::net::SocketAddr) {
        let v4 = match a {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(v6) => {
                let mut t = [0u8; 64];
                let n = v6_text(&v6, &mut t);
                return self.bare(&t[..n]);
            }
        };
        // `"255.255.255.255:65535"`: 23 bytes; each octet writes three then keeps its own.
        let mut t = [0u8; 24];
        t[0] = b'"';
        let mut n = 1;
        for (i, o) in v4.ip().octets().into_iter().enumerate() {
            let d = OCTETS[o as usize];
            t[n..n + 3].copy_from_slice(&d[..3]);
            n += d[3] as usize;
            t[n] = if i < 3 { b'.' } else { b':' };
            n += 1;
        }
        let mut buf = [0; 20];
        let digits = crate::wire::decimal(v4.port().into(), &mut buf);
        t[n..n + digits.len()].copy_from_slice(digits);
        n += digits.len();
        t[n] = b'"';
        self.bare(&t[..=n]);
    }

    /// A name of our own (enum texts, HTTP versions): `&'static`, made of characters that need
    /// no escape, so copied without the scan of [`Json::str`] (~110 instructions a string, 7 to
    /// 20 names a flow; see the commit adding it).
    #[inline(always)]
    pub(super) fn name(&mut self, s: &'static str) {
        debug_assert!(!scan(s.as_bytes()).0, "{s:?} needs escaping");
        self.ascii(s.as_bytes());
    }

    pub(super) fn opt_name(&mut self, s: Option<&'static str>) {
        match s {
            Some(s) => self.name(s),
            None => self.null(),
        }
    }

    /// Valid UTF-8: a branch-free pass over whole words or 16-byte blocks first; nearly every
    /// string (names, SNI, paths, header values) needs no escape and is then copied at once
    /// (testing and copying word by word cost more per short string).
    /// The clean case is inlined, as in [`Json::wire`] (a flow's source, certificate names).
    #[inline(always)]
    pub(super) fn str(&mut self, s: &str) {
        let s = s.as_bytes();
        if !scan(s).0 {
            return self.quoted(s);
        }
        self.str_slow(s);
    }

    /// [`Json::str`] of a string with a byte to escape.
    #[inline(never)]
    pub(super) fn str_slow(&mut self, s: &[u8]) {
        self.sep();
        escape_slow(self.b, s);
        self.comma = true;
    }

    /// Bytes from the wire: as text when valid UTF-8, else with invalid bytes as `\xHH` and
    /// backslashes doubled (crate::sanitize). The common case (nothing to escape) is inlined,
    /// the rest is [`Json::wire_slow`]: a call per string cost ~20 instructions of register
    /// saves (~120 k strings per 100 MB on the mesh bench file).
    #[inline(always)]
    pub(super) fn wire(&mut self, b: &[u8]) {
        let (escape, high) = scan(b);
        if !escape && !high {
            return self.quoted(b);
        }
        self.wire_slow(b, escape, high);
    }

    /// [`Json::wire`] of a string with a byte to escape or above 0x7f.
    #[inline(never)]
    pub(super) fn wire_slow(&mut self, b: &[u8], escape: bool, high: bool) {
        let invalid = high && std::str::from_utf8(b).is_err();
        if !escape && !invalid {
            return self.quoted(b);
        }
        self.sep();
        if invalid {
            escape_invalid(self.b, b);
        } else {
            escape_slow(self.b, b);
        }
        self.comma = true;
    }

    /// [`Json::wire`] of bytes known to need care (a header field listed as raw: an XFCC
    /// value's quotes, bytes above 0x7f): escaped in one pass, without the scan first (~200
    /// instructions an XFCC value); redone as invalid UTF-8 in the rare case it is.
    #[inline(never)]
    pub(super) fn wire_raw(&mut self, b: &[u8]) {
        self.sep();
        let at = self.b.len();
        if escape_slow(self.b, b) && std::str::from_utf8(b).is_err() {
            self.b.truncate(at);
            escape_invalid(self.b, b);
        }
        self.comma = true;
    }

    /// `write(self, v)` for `Some(v)`, else `null`.
    pub(super) fn opt<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => write(self, v),
            None => self.null(),
        }
    }

    pub(super) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    pub(super) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.u64(v),
            None => self.null(),
        }
    }

    pub(super) fn opt_wire(&mut self, w: Option<&WireBytes>) {
        match w {
            Some(w) => self.wire(w.as_bytes()),
            None => self.null(),
        }
    }

    pub(super) fn strs<S: AsRef<str>>(&mut self, v: &[S]) {
        self.open(b'[');
        for s in v {
            self.str(s.as_ref());
        }
        self.close(b']');
    }

    pub(super) fn wires(&mut self, v: &[WireBytes]) {
        self.open(b'[');
        for w in v {
            self.wire(w.as_bytes());
        }
        self.close(b']');
    }
}

/// `"[ipv6]:port"` (`"[ipv6%scope]:port"`), quotes included, as std's `Display` of a
/// `SocketAddrV6` writes it (RFC 5952: the first longest run of two or more zero groups as
/// `::`, IPv4-mapped as `::ffff:a.b.c.d`), into `t`; returns its length (at most 60).
/// Through `write!` it was ~2,000 instructions an address (1.4 M per 100 MB on the default
/// bench file).
pub(super) fn v6_text(a: &std::net::SocketAddrV6, t: &mut [u8; 64]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let ip = a.ip();
    let g = ip.segments();
    t[..2].copy_from_slice(b"\"[");
    let mut n = 2;
    let push_group = |t: &mut [u8; 64], n: &mut usize, v: u16| {
        let digits = (16 - v.leading_zeros() as usize).div_ceil(4).max(1);
        for k in (0..digits).rev() {
            t[*n] = HEX[usize::from(v >> (4 * k) & 15)];
            *n += 1;
        }
    };
    let push_decimal = |t: &mut [u8; 64], n: &mut usize, v: u64| {
        let mut buf = [0; 20];
        let d = crate::wire::decimal(v, &mut buf);
        t[*n..*n + d.len()].copy_from_slice(d);
        *n += d.len();
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        t[n..n + 7].copy_from_slice(b"::ffff:");
        n += 7;
        for (i, o) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                t[n] = b'.';
                n += 1;
            }
            push_decimal(t, &mut n, o.into());
        }
    } else {
        // The first longest run of zero groups, compressed when two or more.
        let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
        for (i, &v) in g.iter().enumerate() {
            if v == 0 {
                if run_len == 0 {
                    run = i;
                }
                run_len += 1;
                if run_len > best_len {
                    (best, best_len) = (run, run_len);
                }
            } else {
                run_len = 0;
            }
        }
        let groups = |t: &mut [u8; 64], n: &mut usize, gs: &[u16]| {
            for (i, &v) in gs.iter().enumerate() {
                if i > 0 {
                    t[*n] = b':';
                    *n += 1;
                }
                push_group(t, n, v);
            }
        };
        if best_len > 1 {
            groups(t, &mut n, &g[..best]);
            t[n..n + 2].copy_from_slice(b"::");
            n += 2;
            groups(t, &mut n, &g[best + best_len..]);
        } else {
            groups(t, &mut n, &g);
        }
    }
    if a.scope_id() != 0 {
        t[n] = b'%';
        n += 1;
        push_decimal(t, &mut n, a.scope_id().into());
    }
    t[n..n + 2].copy_from_slice(b"]:");
    n += 2;
    push_decimal(t, &mut n, a.port().into());
    t[n] = b'"';
    n + 1
}

/// The decimal digits of each byte value, left-aligned, then how many there are.
pub(super) static OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut v = 0;
    while v < 256 {
        t[v] = match v {
            0..=9 => [b'0' + v as u8, 0, 0, 1],
            10..=99 => [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8, 0, 2],
            _ => [b'0' + (v / 100) as u8, b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8, 3],
        };
        v += 1;
    }
    t
};

/// Appends `s` (valid UTF-8), a string with something to escape, as a quoted JSON string;
/// returns whether it has a byte above 0x7f.
fn escape_slow(out: &mut Vec<u8>, s: &[u8]) -> bool {
    out.reserve(s.len() + 2);
    out.push(b'"');
    #[cfg(target_arch = "x86_64")]
    let (mut i, mut start, mut high) = escape_blocks_sse2(out, s);
    #[cfg(not(target_arch = "x86_64"))]
    let (mut i, mut start, mut high) = (0, 0, 0);
    // What is left (under 16 bytes on x86_64), a word at a time.
    let n = s.len();
    while i < n {
        let end = (i + 8).min(n);
        let w = if end - i == 8 {
            word(s, i)
        } else if n >= 8 {
            word(s, n - 8) // the last eight bytes: some looked at again, which changes nothing
        } else {
            let mut w = [b'a'; 8];
            for (d, &c) in w.iter_mut().zip(s) {
                *d = c;
            }
            u64::from_le_bytes(w)
        };
        high |= w;
        if !may_need_escape(w) {
            i = end;
            continue;
        }
        while i < end {
            if ESCAPE[s[i] as usize] != 0 {
                out.extend_from_slice(&s[start..i]);
                push_escape(out, s[i]);
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
    high & HIGH != 0
}

/// [`escape_slow`] over the whole 16-byte blocks of `s`, with the positions of the bytes to
/// escape from one compare: tested a word and then byte by byte, an XFCC value (quotes every
/// few dozen bytes) cost ~1,000 instructions (10M of 877M on the mesh bench file). Returns
/// where the blocks end, where the bytes not yet copied start, and `HIGH` bits when a byte is
/// above 0x7f.
#[cfg(target_arch = "x86_64")]
fn escape_blocks_sse2(out: &mut Vec<u8>, s: &[u8]) -> (usize, usize, u64) {
    use std::arch::x86_64::*;
    let (mut i, mut start, mut high) = (0, 0, 0u32);
    // SAFETY: SSE2 is part of x86_64; every load reads the 16 bytes at `i`, inside `s`.
    unsafe {
        let (quote, backslash, control) =
            (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x1f));
        while i + 16 <= s.len() {
            let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
            // v <= 0x1f (unsigned) exactly where min(v, 0x1f) == v.
            let low = _mm_cmpeq_epi8(_mm_min_epu8(v, control), v);
            let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
            let mut escape = _mm_movemask_epi8(_mm_or_si128(low, special)) as u32;
            high |= _mm_movemask_epi8(v) as u32;
            while escape != 0 {
                let at = i + escape.trailing_zeros() as usize;
                out.extend_from_slice(&s[start..at]);
                push_escape(out, s[at]);
                start = at + 1;
                escape &= escape - 1;
            }
            i += 16;
        }
    }
    (i, start, if high != 0 { HIGH } else { 0 })
}

/// Appends bytes that are not UTF-8 as the quoted JSON string of their
/// [`crate::sanitize::escape_invalid_utf8`] text, in one pass: that text escaped again cost ~6,000 instructions
/// per binary `preview` (10M of 682M on the default bench file).
fn escape_invalid(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2 + 2);
    out.push(b'"');
    for chunk in b.utf8_chunks() {
        let v = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &c) in v.iter().enumerate() {
            let e = ESCAPE[c as usize];
            if e == 0 {
                continue;
            }
            out.extend_from_slice(&v[start..i]);
            match e {
                // Doubled in the text, then each escaped.
                b'\\' => out.extend_from_slice(br"\\\\"),
                _ => push_escape(out, c),
            }
            start = i + 1;
        }
        out.extend_from_slice(&v[start..]);
        for &x in chunk.invalid() {
            // `\xHH` in the text: its backslash escaped.
            out.extend_from_slice(&[b'\\', b'\\', b'x', HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]);
        }
    }
    out.push(b'"');
}

//! Small wire nouns shared by every stage: which side of a connection spoke, when a packet was
//! seen, and the answer of a protocol probe. Nothing here does I/O or keeps state.

use std::fmt;

/// Declares an enum of domain values (verdicts, legs, protocols, ...) with the text each is
/// written as in the JSON and the table: `as_str()`, called only where output is written, and a
/// `Serialize` that writes that text. Variants are listed in the order of their text where a
/// map keyed by them must iterate in that order (the summary's `by_protocol`, `by_mtls`).
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $var, )+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub(crate) const ALL: &'static [$name] = &[$($name::$var,)+];

            /// The text written in the JSON and the table.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$var => $text, )+
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// Client or server: who sent an alert.
    pub(crate) enum Role {
        /// The client.
        Client => "client",
        /// The server.
        Server => "server",
    }
}

/// One endpoint of a TCP connection, named before we know who is the client.
///
/// `A` is the side that sent the first packet of the flow we saw (the SYN sender when the SYN was
/// captured); `B` is the other one. Classifiers report which side behaved like a client (sent the
/// ClientHello or the HTTP request) and the report maps sides to client/server at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Sender of the first packet seen.
    A = 0,
    /// The other endpoint.
    B = 1,
}

impl Side {
    /// The opposite side.
    #[inline]
    pub(crate) fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B: an index into per-side arrays.
    #[inline]
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// Capture timestamp, seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (may be negative for bogus captures).
    pub secs: i64,
    /// Nanoseconds within the second, `< 1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// Builds a timestamp, folding any overflow of `nanos` into `secs`.
    pub fn new(secs: i64, nanos: u64) -> Timestamp {
        Timestamp {
            secs: secs.saturating_add((nanos / 1_000_000_000) as i64),
            nanos: (nanos % 1_000_000_000) as u32,
        }
    }

    /// Seconds as a float, for durations.
    pub(crate) fn as_f64(self) -> f64 {
        self.secs as f64 + self.nanos as f64 / 1e9
    }

    /// Formats as RFC 3339 UTC with 6 or 9 fractional digits.
    pub fn rfc3339(self, nanos_precision: bool) -> String {
        let mut out = Vec::with_capacity(32);
        self.push_rfc3339(nanos_precision, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`Timestamp::rfc3339`] to `out` (ASCII).
    pub(crate) fn push_rfc3339(self, nanos_precision: bool, out: &mut Vec<u8>) {
        if let Some((text, n)) = self.rfc3339_text(nanos_precision) {
            return out.extend_from_slice(&text[..n]);
        }
        // A year beyond four digits or nanoseconds past a second: rare, by `format!`.
        push_rfc3339_secs(self.secs, out);
        let n = self.nanos;
        let fraction = if nanos_precision { format!(".{n:09}Z") } else { format!(".{:06}Z", n / 1000) };
        out.extend_from_slice(fraction.as_bytes());
    }

    /// [`Timestamp::rfc3339`] made on the stack (the text and its length), for a year of four
    /// digits and nanoseconds below a second (every timestamp of a capture): one copy into the
    /// output instead of a push per piece and a division per fraction digit (~230 instructions
    /// a timestamp before, two per flow).
    pub(crate) fn rfc3339_text(self, nanos_precision: bool) -> Option<([u8; 32], usize)> {
        let n = self.nanos;
        if n >= 1_000_000_000 {
            return None;
        }
        let mut t = [0u8; 32];
        t[..19].copy_from_slice(&rfc3339_secs(self.secs)?);
        t[19] = b'.';
        let digits = if nanos_precision {
            t[20] = b'0' + (n / 100_000_000) as u8;
            put_pairs(&mut t[21..29], n % 100_000_000);
            9
        } else {
            put_pairs(&mut t[20..26], n / 1000);
            6
        };
        t[20 + digits] = b'Z';
        Some((t, 21 + digits))
    }
}

/// `v` in decimal, zero-padded to `out.len()` (even) digits, two digits at a time from
/// [`PAIRS`] (`v` must fit in them).
#[inline(always)]
fn put_pairs(out: &mut [u8], mut v: u32) {
    for pair in out.rchunks_exact_mut(2) {
        let i = 2 * (v % 100) as usize;
        pair.copy_from_slice(&PAIRS[i..i + 2]);
        v /= 100;
    }
}

/// `00`, `01`, ... `99`.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `v` in decimal (what `{v}` formats), written at the end of `buf`: the digits returned. Two
/// digits at a time from [`PAIRS`] (ports, lengths: a division per digit cost ~60 instructions
/// a port).
#[inline]
pub(crate) fn decimal(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let (mut i, mut v) = (buf.len(), v);
    while v >= 100 {
        i -= 2;
        let p = 2 * (v % 100) as usize;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
        v /= 100;
    }
    if v >= 10 {
        i -= 2;
        let p = 2 * v as usize;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    &buf[i..]
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds, without `format!` (it runs twice per flow and once
/// per certificate date: `format!` made it a few thousand instructions each).
pub(crate) fn rfc3339_secs_prefix(secs: i64) -> String {
    let mut out = Vec::with_capacity(32);
    push_rfc3339_secs(secs, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`rfc3339_secs_prefix`] to `out` (ASCII).
fn push_rfc3339_secs(secs: i64, out: &mut Vec<u8>) {
    match rfc3339_secs(secs) {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let (y, mo, d, h, mi, s) = civil_from_unix(secs);
            out.extend_from_slice(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}").as_bytes());
        }
    }
}

/// [`rfc3339_secs_prefix`] when the year has four digits.
///
/// The date is kept from the previous call (per thread): a report's timestamps fall on few
/// days, and the calendar arithmetic and digit loops were ~400 instructions per timestamp, two
/// per flow (4M of 480M on the default bench file).
#[inline]
fn rfc3339_secs(secs: i64) -> Option<[u8; 19]> {
    thread_local! {
        /// The last day written (Unix days) and its `YYYY-MM-DDT`.
        static DAY: std::cell::Cell<(i64, [u8; 11])> = const { std::cell::Cell::new((i64::MIN, [0; 11])) };
    }
    let (day, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let date = DAY.with(|last| {
        let (d, text) = last.get();
        if d == day {
            return Some(text);
        }
        let (y, mo, dd, ..) = civil_from_unix(secs);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut t = *b"0000-00-00T";
        t[..2].copy_from_slice(&two_digits((y / 100) as u32));
        t[2..4].copy_from_slice(&two_digits((y % 100) as u32));
        t[5..7].copy_from_slice(&two_digits(mo));
        t[8..10].copy_from_slice(&two_digits(dd));
        last.set((day, t));
        Some(t)
    })?;
    let (h, m, s) = (two_digits(rem / 3600), two_digits(rem % 3600 / 60), two_digits(rem % 60));
    let mut t = [0u8; 19];
    t[..11].copy_from_slice(&date);
    t[11..].copy_from_slice(&[h[0], h[1], b':', m[0], m[1], b':', s[0], s[1]]);
    Some(t)
}

/// `v` (below 100) as two decimal digits.
fn two_digits(v: u32) -> [u8; 2] {
    let i = 2 * (v % 100) as usize;
    [PAIRS[i], PAIRS[i + 1]]
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339(false))
    }
}

/// Converts Unix seconds to (year, month, day, hour, minute, second), proleptic Gregorian, UTC.
/// Howard Hinnant's `civil_from_days` algorithm; total over all i64 inputs we can meet.
pub(crate) fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, (rem / 3600) as u32, ((rem % 3600) / 60) as u32, (rem % 60) as u32)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn rfc3339_matches_format_everywhere() {
        for secs in [
            0i64,
            1,
            86_399,
            951_782_400,
            1_795_407_390,
            4_102_444_800,
            253_402_300_799,
            -1,
            -62_167_219_200,
            400_000_000_000,
        ] {
            for nanos in [0u32, 1, 999, 123_456_789, 999_999_999, 4_000_000_000] {
                let (y, mo, d, h, mi, s) = civil_from_unix(secs);
                let want6 = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z", nanos / 1000);
                let want9 = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z");
                let t = Timestamp { secs, nanos };
                assert_eq!(t.rfc3339(false), want6, "{secs} {nanos}");
                assert_eq!(t.rfc3339(true), want9, "{secs} {nanos}");
            }
        }
        // The date kept from the call before: the same day, the next, back to an earlier one.
        for k in 0..3_000i64 {
            let secs = 1_795_400_000 + (k % 1_000) * 977 - (k / 1_000) * 86_400;
            let (y, mo, d, h, mi, s) = civil_from_unix(secs);
            let want = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000Z");
            assert_eq!(Timestamp { secs, nanos: 0 }.rfc3339(false), want, "{secs}");
        }
    }
}

/// Answer of a protocol probe on the first bytes of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The bytes start like this protocol.
    Match,
    /// The bytes cannot be this protocol.
    NoMatch,
    /// Too few bytes to tell; call again with more.
    NeedMore,
}

/// What a stream parser wants after being fed bytes of one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Keep feeding this side.
    More,
    /// This side has told us all we want; stop buffering and parsing it (count bytes only).
    Done,
}

/// A deterministic pseudo-random sequence for tests (xorshift64: shifts 13, 7, 17), no crate
/// needed; `seed` must not be 0.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Asks the CPU to bring the cache lines of `len` bytes at `p` into its caches (at most 4 KiB:
/// a hint, not a copy). Does nothing on targets without a prefetch instruction. Used where a
/// batch of independent pieces of cold memory is about to be read one after another, so that
/// their misses overlap instead of waiting in turn.
#[inline]
pub(crate) fn prefetch_bytes(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < len.min(4096) {
            // SAFETY: a prefetch never faults and changes no memory, whatever the address;
            // wrapping_add keeps the pointer arithmetic defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// [`prefetch_bytes`] of the memory of `v`.
#[inline]
pub(crate) fn prefetch<T: ?Sized>(v: &T) {
    prefetch_bytes(v as *const T as *const u8, std::mem::size_of_val(v));
}

/// Hashing for maps keyed by what comes off the network (flows, servers): ahash, keyed with a
/// random seed per run (a fixed hash could be flooded with colliding keys) and far cheaper than
/// std's SipHash (5% of the benchmark's instructions for the flow table, 1.8% for the summary's
/// per-server counts and the known servers). The seed is drawn through std's `RandomState`
/// (the getrandom syscall): ahash's own seeding opens /dev/urandom in a static binary and
/// panics where there is none (an empty container or chroot).
#[derive(Clone, Debug)]
pub(crate) struct KeyedState(ahash::RandomState);

impl Default for KeyedState {
    fn default() -> KeyedState {
        use std::hash::BuildHasher;
        let std_state = std::collections::hash_map::RandomState::new();
        let k = |i: u64| std_state.hash_one(i);
        KeyedState(ahash::RandomState::with_seeds(k(1), k(2), k(3), k(4)))
    }
}

impl std::hash::BuildHasher for KeyedState {
    type Hasher = ahash::AHasher;
    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

/// A map keyed by network data (see [`KeyedState`]).
pub(crate) type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

/// Copies `s` to `dst`: up to 32 bytes by two overlapping loads and stores (or one to three
/// bytes), longer ones with `memcpy`, whose call cost more than the copy for the short strings
/// that are most of the output (methods, reasons, numbers, endpoints) and most HPACK table
/// bodies, names and literals.
///
/// # Safety
/// `dst .. dst + s.len()` is writable and does not overlap `s`.
#[inline(always)]
pub(crate) unsafe fn copy_short(dst: *mut u8, s: &[u8]) {
    let (n, src) = (s.len(), s.as_ptr());
    // SAFETY: the caller's; every read is inside `s`, every write inside `dst[..n]`.
    unsafe {
        if n > 32 {
            std::ptr::copy_nonoverlapping(src, dst, n);
        } else if n >= 16 {
            dst.cast::<u128>().write_unaligned(src.cast::<u128>().read_unaligned());
            dst.add(n - 16).cast::<u128>().write_unaligned(src.add(n - 16).cast::<u128>().read_unaligned());
        } else if n >= 8 {
            dst.cast::<u64>().write_unaligned(src.cast::<u64>().read_unaligned());
            dst.add(n - 8).cast::<u64>().write_unaligned(src.add(n - 8).cast::<u64>().read_unaligned());
        } else if n >= 4 {
            dst.cast::<u32>().write_unaligned(src.cast::<u32>().read_unaligned());
            dst.add(n - 4).cast::<u32>().write_unaligned(src.add(n - 4).cast::<u32>().read_unaligned());
        } else if n > 0 {
            // Bytes 0, n / 2 and n - 1 cover one to three bytes.
            dst.write(*src);
            dst.add(n / 2).write(*src.add(n / 2));
            dst.add(n - 1).write(*src.add(n - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_as_format_does() {
        for v in (0..=100_000).chain([u64::from(u32::MAX), u64::MAX - 1, u64::MAX]) {
            assert_eq!(decimal(v, &mut [0; 20]), v.to_string().as_bytes());
        }
    }

    #[test]
    fn rfc3339_formats_epoch_and_leap_day() {
        assert_eq!(Timestamp::new(0, 0).rfc3339(false), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp::new(951_782_400, 123_456_789).rfc3339(true), "2000-02-29T00:00:00.123456789Z");
        assert_eq!(Timestamp::new(-1, 0).rfc3339(false), "1969-12-31T23:59:59.000000Z");
    }
}

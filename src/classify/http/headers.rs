//! The [`Headers::marks`] bits that tell a message passed through Envoy or carries Istio's
//! fields. Runs for every header of every message: one pass over the name, no allocation.
//! Credential headers, whose values are redacted by default, are named by
//! [`crate::sanitize::redact`]. [`NameCache`] remembers both answers for the names a thread
//! sees again and again.

#[cfg(doc)]
use crate::sanitize::Headers;

/// [`Headers::marks`] bit: the message has an `x-envoy-*` field (Envoy sent it).
pub(crate) const MARK_ENVOY: u8 = 1;
/// [`Headers::marks`] bits: the message has `x-envoy-peer-metadata`, `x-envoy-peer-metadata-id`,
/// `x-forwarded-client-cert` (each a bit: Istio's report reads the first of each and stops
/// looking once the fields a flow has are found).
pub(crate) const MARK_PEER_METADATA: u8 = 2;
/// See [`MARK_PEER_METADATA`].
pub(crate) const MARK_PEER_METADATA_ID: u8 = 4;
/// See [`MARK_PEER_METADATA`].
pub(crate) const MARK_XFCC: u8 = 8;
/// [`Headers::marks`] bits: the message has a field Istio's report reads.
pub(crate) const MARK_ISTIO: u8 = MARK_PEER_METADATA | MARK_PEER_METADATA_ID | MARK_XFCC;

/// The [`Headers::marks`] bits of a field named `name`.
pub(crate) fn header_marks(name: &[u8]) -> u8 {
    if name.len() < 8 || !name[..2].eq_ignore_ascii_case(b"x-") {
        return 0;
    }
    let mut m = 0;
    if name[..8].eq_ignore_ascii_case(b"x-envoy-") && name.len() > 8 {
        m |= MARK_ENVOY;
    }
    if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata") {
        m |= MARK_PEER_METADATA;
    } else if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata-id") {
        m |= MARK_PEER_METADATA_ID;
    } else if name.eq_ignore_ascii_case(b"x-forwarded-client-cert") {
        m |= MARK_XFCC;
    }
    m
}

/// What storing a field needs to know of its name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct NameClass {
    /// A credential header ([`crate::sanitize::redact::is_secret_header`]).
    pub(super) secret: bool,
    /// Its [`header_marks`].
    pub(super) marks: u8,
    /// Kept under `--summary-only` ([`super::lean_keeps`]).
    pub(super) lean: bool,
    /// One of the fields a head's framing reads ([`KnownName`]).
    pub(super) known: KnownName,
    /// Non-empty and every byte an RFC 9110 `tchar` (what httparse accepts as a name).
    pub(super) token: bool,
}

impl NameClass {
    pub(super) fn of(name: &[u8]) -> NameClass {
        let marks = header_marks(name);
        NameClass {
            secret: crate::sanitize::redact::is_secret_header(name),
            marks,
            lean: super::lean_keeps(marks, name),
            known: KnownName::of(name),
            token: !name.is_empty() && name.iter().all(|&c| super::head::is_tchar(c)),
        }
    }
}

/// The fields that decide a head's body framing or switch, and the Host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum KnownName {
    #[default]
    Other,
    Host,
    Upgrade,
    ContentLength,
    TransferEncoding,
}

impl KnownName {
    /// The kind of a field named `n`.
    #[inline(always)]
    pub(super) fn of(n: &[u8]) -> KnownName {
        // The length first: most names have none of these lengths.
        match n.len() {
            4 if n.eq_ignore_ascii_case(b"host") => KnownName::Host,
            7 if n.eq_ignore_ascii_case(b"upgrade") => KnownName::Upgrade,
            14 if n.eq_ignore_ascii_case(b"content-length") => KnownName::ContentLength,
            17 if n.eq_ignore_ascii_case(b"transfer-encoding") => KnownName::TransferEncoding,
            _ => KnownName::Other,
        }
    }
}

/// Slots of [`NameCache`] (a power of two).
const NAME_SLOTS: usize = 256;
/// Longest name [`NameCache`] keeps (longer ones are classed every time).
const MAX_CACHED_NAME: usize = 32;

/// Names classed before on this thread, exactly as sent (a direct-mapped cache of
/// [`NAME_SLOTS`]): a field name is nearly always one of a few dozen, and checking the name
/// whole each time was two thirds of the cost of storing a field (`bench/instructions`, mesh).
/// A name that misses is classed and replaces its slot's, so any traffic costs at most one
/// look-up more per name.
pub(super) struct NameCache {
    slots: [NameSlot; NAME_SLOTS],
    /// Names shorter than 16 bytes, looked up by [`NameCache::class_short`].
    short: [ShortSlot; NAME_SLOTS],
}

#[derive(Clone, Copy)]
struct NameSlot {
    /// [`name_key`] of the name; length 0 marks an empty slot (an empty name is never cached).
    key: ([u64; 4], u8),
    class: NameClass,
}

/// The name's length and bytes as words that together tell any two names of up to
/// [`MAX_CACHED_NAME`] bytes apart: for a given length, the (possibly overlapping) windows
/// cover every byte.
#[inline(always)]
fn name_key(n: &[u8]) -> ([u64; 4], u8) {
    let len = n.len();
    let w8 = |at: usize| u64::from_le_bytes(n[at..at + 8].try_into().unwrap_or_default());
    let w4 = |at: usize| u64::from(u32::from_le_bytes(n[at..at + 4].try_into().unwrap_or_default()));
    let words = match len {
        0..=3 => [n.iter().fold(0, |k, &b| k << 8 | u64::from(b)), 0, 0, 0],
        4..=7 => [w4(0) | w4(len - 4) << 32, 0, 0, 0],
        8..=16 => [w8(0), w8(len - 8), 0, 0],
        _ => [w8(0), w8(8), w8(len - 16), w8(len - 8)],
    };
    (words, len as u8)
}

/// A slot of [`NameCache`]'s table of names shorter than 16 bytes.
#[derive(Clone, Copy)]
struct ShortSlot {
    /// [`short_key`] of the name; [`NO_SHORT_KEY`] when empty.
    key: u128,
    class: NameClass,
}

/// Never a [`short_key`]: its top byte, the length there, is above 15.
const NO_SHORT_KEY: u128 = u128::MAX;

/// A name of `len` (< 16) bytes as one word: `word` (its bytes and whatever follows them, as
/// loaded little-endian) with the bytes past the name cleared and the length in the top byte,
/// so that two names share a key only when they are equal.
#[inline(always)]
fn short_key(word: u128, len: usize) -> u128 {
    debug_assert!(len < 16);
    // A table of masks, not `(1 << 8 * len) - 1`: a shift of a u128 by a variable amount took
    // ~15 instructions a field (`bench/instructions` default 438.30 M -> 437.94 M, mesh
    // 563.78 M -> 562.97 M).
    (word & SHORT_MASK[len & 15]) | (len as u128) << 120
}

/// `SHORT_MASK[n]`: the low `n` bytes of a word set.
static SHORT_MASK: [u128; 16] = {
    let mut m = [0; 16];
    let mut n = 1;
    while n < 16 {
        m[n] = (1u128 << (8 * n)) - 1;
        n += 1;
    }
    m
};

impl NameCache {
    const NO_CLASS: NameClass =
        NameClass { secret: false, marks: 0, lean: false, known: KnownName::Other, token: false };
    const EMPTY: NameCache = NameCache {
        slots: [NameSlot { key: ([0; 4], 0), class: NameCache::NO_CLASS }; NAME_SLOTS],
        short: [ShortSlot { key: NO_SHORT_KEY, class: NameCache::NO_CLASS }; NAME_SLOTS],
    };

    /// The class of `name`, shorter than 16 bytes, given as `word`: the 16 bytes from its
    /// start, little-endian (the HTTP/1 parser has them loaded already, to find the colon).
    /// One load, mask and compare of a word: a name's class through [`NameCache::class`] cost
    /// ~55 instructions (`bench/instructions`, mesh), most of it building the key by length.
    #[inline(always)]
    pub(super) fn class_short(&mut self, word: u128, name: &[u8]) -> NameClass {
        let key = short_key(word, name.len());
        let h = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.short[(h >> 56) as usize % NAME_SLOTS];
        if slot.key != key {
            *slot = ShortSlot { key, class: NameClass::of(name) };
        }
        slot.class
    }

    /// The class of `name`.
    #[inline(always)]
    pub(super) fn class(&mut self, name: &[u8]) -> NameClass {
        if name.is_empty() || name.len() > MAX_CACHED_NAME {
            return NameClass::of(name);
        }
        let key = name_key(name);
        let [a, b, c, d] = key.0;
        let h = (a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47) ^ u64::from(key.1))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(h >> 56) as usize % NAME_SLOTS];
        if slot.key != key {
            *slot = NameSlot { key, class: NameClass::of(name) };
        }
        slot.class
    }
}

thread_local! {
    static NAMES: std::cell::RefCell<NameCache> = const { std::cell::RefCell::new(NameCache::EMPTY) };
}

/// Runs `f` with this thread's [`NameCache`].
pub(super) fn with_name_cache<R>(f: impl FnOnce(&mut NameCache) -> R) -> R {
    NAMES.with_borrow_mut(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::testutil::*;
    use crate::classify::http::*;

    #[test]
    fn secrets_are_redacted_unless_asked() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-t0ken\r\nCookie: session=abc123\r\nX-Auth-Token: tok999\r\nX-Api-Key: k3y\r\nUser-Agent: curl\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=c00kie\r\nContent-Length: 0\r\n\r\n";
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = json(&h);
        for secret in ["s3cr3t", "abc123", "tok999", "k3y", "c00kie"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert!(json.contains(r#"["Authorization","<redacted 19 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Cookie","<redacted 14 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["X-Auth-Token","<redacted 6 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Set-Cookie","<redacted 10 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["User-Agent","curl"]"#));
        let mut h = HttpSession::new(HttpConfig { show_secrets: true, ..cfg() });
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = crate::report::json::http_text(&h.finish());
        for secret in ["s3cr3t-t0ken", "session=abc123", "tok999", "k3y", "sid=c00kie"] {
            assert!(json.contains(secret), "{secret} missing: {json}");
        }
        assert!(!json.contains("redacted"));
    }

    #[test]
    fn cached_name_classes_match_the_uncached_ones() {
        // Every length up to past the cache's limit, names differing in one byte or in case,
        // twice each (miss, then hit), and a tiny cache where names evict each other.
        let mut names: Vec<Vec<u8>> = Vec::new();
        for len in 0..=40 {
            let base: Vec<u8> =
                b"x-envoy-peer-metadata-id-and-session-tokens".iter().copied().cycle().take(len).collect();
            for i in 0..len {
                for b in [b'A', b'-', b's', 0xe9] {
                    let mut n = base.clone();
                    n[i] = b;
                    names.push(n);
                }
            }
            names.push(base);
        }
        names.extend(
            ["Cookie", "cookie", "COOKIE", "x-api-key", "x-forwarded-client-cert", "host"]
                .map(|n| n.as_bytes().to_vec()),
        );
        let mut cache = NameCache::EMPTY;
        for round in 0..2 {
            for n in &names {
                assert_eq!(
                    cache.class(n),
                    NameClass::of(n),
                    "{:?} round {round}",
                    String::from_utf8_lossy(n)
                );
            }
        }
        // Short names by their loaded word, whatever bytes follow the name in it.
        let mut cache = NameCache::EMPTY;
        for round in 0..2 {
            for (i, n) in names.iter().filter(|n| n.len() < 16).enumerate() {
                let mut w = [if round == 0 { b':' } else { (i % 251) as u8 }; 16];
                w[..n.len()].copy_from_slice(n);
                assert_eq!(
                    cache.class_short(u128::from_le_bytes(w), n),
                    NameClass::of(n),
                    "{:?} round {round}",
                    String::from_utf8_lossy(n)
                );
            }
        }
        let keys: std::collections::HashSet<_> =
            names.iter().filter(|n| n.len() <= MAX_CACHED_NAME).map(|n| name_key(n)).collect();
        let distinct: std::collections::HashSet<_> =
            names.iter().filter(|n| n.len() <= MAX_CACHED_NAME).collect();
        assert_eq!(keys.len(), distinct.len(), "a key for every distinct name");
        let short: std::collections::HashSet<_> = names
            .iter()
            .filter(|n| n.len() < 16)
            .map(|n| {
                let mut w = [0xff; 16];
                w[..n.len()].copy_from_slice(n);
                short_key(u128::from_le_bytes(w), n.len())
            })
            .collect();
        let distinct: std::collections::HashSet<_> = names.iter().filter(|n| n.len() < 16).collect();
        assert_eq!(short.len(), distinct.len(), "a short key for every distinct short name");
        assert!(!short.contains(&NO_SHORT_KEY));
    }

    #[test]
    fn header_marks_match_their_definitions() {
        let names = [
            "x-envoy-peer-metadata",
            "X-Envoy-Peer-Metadata-ID",
            "x-forwarded-client-cert",
            "X-FORWARDED-CLIENT-CERT",
            "x-envoy-",
            "x-envoy-a",
            "x-envoy-upstream-service-time",
            "x-envoy",
            "x-forwarded-client-certs",
            "x-envoy-peer-metadata-i",
            "y-envoy-attempt-count",
            "host",
            "",
            "x-",
        ];
        for n in names {
            let l = n.to_ascii_lowercase();
            let envoy = l.len() > 8 && l.starts_with("x-envoy-");
            let istio = match l.as_str() {
                "x-envoy-peer-metadata" => MARK_PEER_METADATA,
                "x-envoy-peer-metadata-id" => MARK_PEER_METADATA_ID,
                "x-forwarded-client-cert" => MARK_XFCC,
                _ => 0,
            };
            let want = if envoy { MARK_ENVOY } else { 0 } | istio;
            assert_eq!(header_marks(n.as_bytes()), want, "{n}");
        }
    }
}

//! What a string needs to become JSON text: which bytes need escaping (below 0x20, `"`, `\\`)
//! or are not ASCII (then it may be invalid UTF-8), found a word or sixteen bytes at a time.
//! Used by the JSON writer (crate::report::json) and by [`crate::sanitize::HeadersBuilder`],
//! which renders header fields as JSON text once, when a message is stored.

/// Bytes `at..at + 8` as one word (a single load).
pub(crate) fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

const LOW: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` may need escaping in a JSON string (below 0x20, `"` or `\`); may say
/// yes for a word that needs none (then the bytes are looked at one by one), never no for one
/// that does.
pub(crate) fn may_need_escape(w: u64) -> bool {
    escape_bits(w) != 0
}

/// The escape of each byte as serde_json writes it: 0 none, `u` as `\u00XX`, else `\` + it.
pub(crate) static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The escape of byte `c` (one [`ESCAPE`] lists), as serde_json writes it.
pub(crate) fn push_escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[c as usize] {
        b'u' => {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]])
        }
        e => out.extend_from_slice(&[b'\\', e]),
    }
}

/// Appends `s` (UTF-8 text) as a quoted JSON string, escaped as serde_json writes it (text
/// built outside the report writer, such as decoded peer metadata). Most text has nothing to
/// escape: one [`scan`], then one copy.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    if !scan(s).0 {
        out.extend_from_slice(s);
    } else {
        let mut run = 0;
        for (i, &c) in s.iter().enumerate() {
            if ESCAPE[c as usize] != 0 {
                out.extend_from_slice(&s[run..i]);
                push_escape(out, c);
                run = i + 1;
            }
        }
        out.extend_from_slice(&s[run..]);
    }
    out.push(b'"');
}

/// Whether byte `b` needs escaping in a JSON string or is not ASCII (what [`needs_care`] looks
/// for; a `const fn` for tables built at compile time).
pub(crate) const fn byte_needs_care(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80
}

/// Whether some byte of `s` needs escaping or is not ASCII (may say yes for a short string
/// that needs neither, never no for one that does).
#[inline]
pub(crate) fn needs_care(s: &[u8]) -> bool {
    let (escape, high) = scan(s);
    escape || high
}

/// One branch-free pass over `s`: (some byte may need escaping, some byte is above 0x7f).
/// Strings of 16 bytes or more (header blocks, certificate names, paths: most of the bytes
/// scanned) are read 16 bytes at a time with SSE2, which every x86_64 has; shorter ones, and
/// other targets, a word at a time.
#[inline]
pub(crate) fn scan(s: &[u8]) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    if s.len() >= 16 {
        return scan_sse2(s);
    }
    scan_words(s)
}

/// [`scan`] 16 bytes at a time (`s` has at least 16); exact: says escape only for a byte
/// below 0x20, `"` or `\`.
#[cfg(target_arch = "x86_64")]
fn scan_sse2(s: &[u8]) -> (bool, bool) {
    use std::arch::x86_64::*;
    let n = s.len();
    // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes inside `s` (n >= 16: the last
    // one is the final 16 bytes, overlapping the one before).
    unsafe {
        let (quote, backslash, control) =
            (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x1f));
        let (mut escape, mut high) = (_mm_setzero_si128(), _mm_setzero_si128());
        let mut take = |v: __m128i| {
            // v <= 0x1f (unsigned) exactly where min(v, 0x1f) == v.
            let low = _mm_cmpeq_epi8(_mm_min_epu8(v, control), v);
            let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
            escape = _mm_or_si128(escape, _mm_or_si128(low, special));
            high = _mm_or_si128(high, v);
        };
        let p = s.as_ptr();
        let mut i = 0;
        while i + 16 <= n {
            take(_mm_loadu_si128(p.add(i).cast()));
            i += 16;
        }
        if i < n {
            take(_mm_loadu_si128(p.add(n - 16).cast()));
        }
        (_mm_movemask_epi8(escape) != 0, _mm_movemask_epi8(high) != 0)
    }
}

/// [`scan`] by words of eight bytes (may say escape for a word that needs none).
fn scan_words(s: &[u8]) -> (bool, bool) {
    let n = s.len();
    let (mut flag, mut high) = (0u64, 0u64);
    let mut i = 0;
    while i + 8 <= n {
        let w = word(s, i);
        flag |= escape_bits(w);
        high |= w;
        i += 8;
    }
    if i < n {
        let w = last_word(s);
        flag |= escape_bits(w);
        high |= w;
    }
    (flag != 0, high & HIGH != 0)
}

/// The bytes of `s` not in a whole word from its start, as one word: the last eight bytes when
/// there are that many, else all of them padded with a plain byte.
fn last_word(s: &[u8]) -> u64 {
    let n = s.len();
    if n >= 8 {
        return word(s, n - 8);
    }
    let u32_at = |at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]) as u64;
    if n >= 4 {
        // Bytes 0..4 and n-4..n cover all of them.
        return u32_at(0) | (u32_at(n - 4) << 32);
    }
    let pad = u64::from_le_bytes([b'a'; 8]) & !0xff_ffff;
    match n {
        0 => pad | 0x61_6161,
        // s[0], s[n / 2] and s[n - 1] cover one to three bytes.
        _ => pad | s[0] as u64 | (s[n / 2] as u64) << 8 | (s[n - 1] as u64) << 16,
    }
}

/// Nonzero when some byte of `w` may need escaping (see [`may_need_escape`]).
fn escape_bits(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(LOW) & !v & HIGH;
    let below_space = w.wrapping_sub(0x20 * LOW) & !w & HIGH;
    below_space | zero(w ^ (b'"' as u64 * LOW)) | zero(w ^ (b'\\' as u64 * LOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_agree_with_looking_at_every_byte() {
        let mut rng = crate::wire::xorshift(7);
        for _ in 0..20_000 {
            let n = (rng() % 70) as usize;
            // Mostly plain letters, sometimes one of the bytes that matter.
            let s: Vec<u8> = (0..n)
                .map(|_| match rng() % 16 {
                    0 => [b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff][(rng() % 8) as usize],
                    _ => b'a' + (rng() % 26) as u8,
                })
                .collect();
            let escape = s.iter().any(|&b| ESCAPE[b as usize] != 0);
            let high = s.iter().any(|&b| b > 0x7f);
            let (e, h) = scan(&s);
            assert_eq!(h, high, "{s:?}");
            assert!(e || !escape, "{s:?}");
            if s.len() >= 16 {
                assert_eq!(e, escape, "{s:?}");
            }
            let (we, wh) = scan_words(&s);
            assert_eq!(wh, high, "{s:?}");
            assert!(we || !escape, "{s:?}");
        }
    }

    #[test]
    fn word_check_flags_every_byte_that_needs_escaping() {
        for x in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = x;
                if ESCAPE[x as usize] != 0 {
                    assert!(may_need_escape(u64::from_le_bytes(w)), "byte {x:#04x} at {pos}");
                }
            }
        }
    }
}

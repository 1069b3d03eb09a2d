//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B): a table-driven decoder that reads
//! eleven bits at a time.
//!
//! The code's 257 symbols (256 bytes and EOS) form a binary tree ([`TREE`]). [`FAST`], built at
//! compile time from [`CODES`], gives for every 11-bit window the one or two symbols whose codes
//! fill its start: codes of 5 to 8 bits carry the letters, digits and punctuation of paths,
//! ids and tokens, so most windows yield two bytes. A code longer than eleven bits (rare bytes,
//! EOS) is read bit by bit from the tree. This replaced a four-bit state machine (two table
//! reads per input byte, kept in the tests as the reference): 28M instead of 42.6M
//! instructions of Huffman decoding on the 100 MB mesh bench file. Each entry also says whether
//! its bytes need care in JSON text, so that a decoded literal is not scanned again.
//!
//! Why eleven bits: a 16-bit table with up to three bytes per entry (256 KiB) saved another 2.8M
//! instructions on that file, but cost 450,000 more L1 data misses (cachegrind), each on the
//! chain of dependent table reads. Between two header blocks the rest of the run evicts the
//! table from L1: the 12-bit one (16 KiB, four steps a window) cost ~50,000 more L1 misses
//! and ~5,600 more L2 misses than this 8 KiB one (five steps) on the 30 MB mesh slice
//! (`bench/misses`: +0.8M instructions, cycles~ 94.99M -> 94.82M, the default slice 88.80M ->
//! 88.70M with the step before); a 10-bit one (4 KiB) read 95.11M (+2.7M instructions).
//!
//! Invalid input is an error, never a panic: the EOS symbol inside a string, or padding longer
//! than seven bits or not made of the most significant bits of EOS (all ones) (§5.2).

use super::rfc7541::HUFFMAN_CODES as CODES;
use crate::sanitize::json_scan::byte_needs_care;

/// The end-of-string symbol; never valid inside a string.
const EOS: u16 = 256;
/// A child in [`TREE`]: a leaf holds a symbol.
const LEAF: u16 = 0x8000;
/// A child not yet set while [`TREE`] is built.
const NONE: u16 = 0xffff;
/// Bits of input one [`FAST`] entry covers.
const PEEK: u32 = 11;
/// Most bytes one [`FAST`] entry decodes (three fit only in 15 bits or more).
const MAX_SYMBOLS: u32 = 2;
/// [`FAST`] steps per 64-bit window (which holds at least 57 bits of input).
const STEPS: usize = 57 / PEEK as usize;
// A step's entry holds its bytes in one 4-byte store, and its window index in fewer bits than
// the entry's byte fields leave ([`decode`] bounds the room the stores need).
const _: () = assert!(MAX_SYMBOLS <= 3 && PEEK < 24);
/// The decoding tree: `[node][bit]` is an inner node index or `LEAF | symbol`.
static TREE: [[u16; 2]; 256] = tree();

const fn tree() -> [[u16; 2]; 256] {
    let mut t = [[NONE; 2]; 256];
    let mut next = 1;
    let mut sym = 0;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        let mut node = 0;
        let mut i = len;
        while i > 1 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if t[node][bit] == NONE {
                t[node][bit] = next as u16;
                next += 1;
            }
            node = t[node][bit] as usize;
        }
        t[node][(code & 1) as usize] = LEAF | sym as u16;
        sym += 1;
    }
    t
}

/// [`FAST`] entry fields: bytes decoded (0: the first code is longer than the window), bits
/// of their codes, and whether one of them needs care in JSON text ([`byte_needs_care`]).
/// The count sits above the bits, so that `e >> BITS_SHIFT` is a shift count (the count is
/// masked off by the shift itself) and `e >> COUNT_SHIFT` the count, each one instruction.
const COUNT_SHIFT: u32 = 30;
const BITS_SHIFT: u32 = 24;
const CARE: u32 = 1 << 23;
const _: () = assert!(MAX_SYMBOLS * 8 <= 23 && (STEPS * PEEK as usize) < 1 << (COUNT_SHIFT - BITS_SHIFT));

/// Symbols by code length, shortest first, and where each length starts in that list.
const BY_LENGTH: ([u8; 256], [usize; 18]) = {
    let mut order = [0u8; 256];
    let mut starts = [0usize; 18];
    let mut n = 0;
    let mut len = 0;
    while len <= 16 {
        starts[len] = n;
        let mut sym = 0;
        while sym < 256 {
            if CODES[sym].1 as usize == len {
                order[n] = sym as u8;
                n += 1;
            }
            sym += 1;
        }
        len += 1;
    }
    starts[17] = n;
    (order, starts)
};

/// `[window]` for a [`PEEK`]-bit window (MSB first): up to [`MAX_SYMBOLS`] bytes whose codes
/// fill its start (bits 0-15, first byte lowest), [`CARE`] if one of them needs care in JSON,
/// the bits of those codes (24-29), how many bytes (30-31: 0 when the first code is longer
/// than the window; EOS is too; such an entry is all zeros, so it consumes nothing). Built by
/// symbols rather than by windows: each code of at most 16 bits fills the windows it starts,
/// then each pair and triple that fits.
static FAST: [u32; 1 << PEEK] = {
    let (order, starts) = BY_LENGTH;
    let mut out = [0u32; 1 << PEEK];
    // Fills the windows that start with `prefix` (`used` bits) with `entry`.
    const fn fill(out: &mut [u32; 1 << PEEK], prefix: u32, used: u32, entry: u32) {
        let span = 1u32 << (PEEK - used);
        let base = prefix << (PEEK - used);
        let mut i = 0;
        while i < span {
            out[(base + i) as usize] = entry;
            i += 1;
        }
    }
    const fn entry(syms: u32, bits: u32, n: u32, care: bool) -> u32 {
        syms | bits << BITS_SHIFT | n << COUNT_SHIFT | if care { CARE } else { 0 }
    }
    let mut i1 = 0;
    while i1 < starts[PEEK as usize + 1] {
        let s1 = order[i1] as usize;
        let (c1, l1) = (CODES[s1].0, CODES[s1].1 as u32);
        let care1 = byte_needs_care(s1 as u8);
        fill(&mut out, c1, l1, entry(s1 as u32, l1, 1, care1));
        let mut i2 = 0;
        while i2 < starts[(PEEK - l1) as usize + 1] {
            let s2 = order[i2] as usize;
            let (c2, l2) = (CODES[s2].0, CODES[s2].1 as u32);
            let (p2, u2) = (c1 << l2 | c2, l1 + l2);
            let care2 = care1 || byte_needs_care(s2 as u8);
            fill(&mut out, p2, u2, entry(s1 as u32 | (s2 as u32) << 8, u2, 2, care2));
            let mut i3 = 0;
            while MAX_SYMBOLS >= 3 && i3 < starts[(PEEK - u2) as usize + 1] {
                let s3 = order[i3] as usize;
                let (c3, l3) = (CODES[s3].0, CODES[s3].1 as u32);
                let care3 = care2 || byte_needs_care(s3 as u8);
                let syms = s1 as u32 | (s2 as u32) << 8 | (s3 as u32) << 16;
                fill(&mut out, p2 << l3 | c3, u2 + l3, entry(syms, u2 + l3, 3, care3));
                i3 += 1;
            }
            i2 += 1;
        }
        i1 += 1;
    }
    out
};

/// A Huffman-coded string that is not valid (RFC 7541 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Huffman code (EOS inside the string, or bad padding)")]
pub(crate) struct HuffmanError;

/// What the bits at the start of a window hold when [`FAST`] cannot say.
enum Slow {
    /// A byte and its code's length.
    Byte(u8, u32),
    /// EOS: never valid inside a string.
    Eos,
    /// The `valid` bits end inside a code: the string's padding, or a truncated code.
    End,
}

/// Reads one code bit by bit from the top of `w`, of which `valid` bits are input.
fn slow(w: u64, valid: usize) -> Slow {
    let mut node = 0usize;
    for i in 0..valid.min(64) {
        let child = TREE[node][((w >> (63 - i)) & 1) as usize];
        if child == LEAF | EOS {
            return Slow::Eos;
        }
        if child & LEAF != 0 {
            return Slow::Byte(child as u8, i as u32 + 1);
        }
        node = usize::from(child);
    }
    Slow::End
}

/// The 64 bits of `src` from bit `pos` on (ones past its end); `pos` is inside `src`.
///
/// Ones, not zeros: all-ones bits are a prefix of EOS and of no other code, so past the end
/// the table finds no code (its entry is zero: nothing decoded, nothing consumed) and
/// [`decode`]'s steps need no check for the end (a code that reaches past it makes the
/// string invalid, see there).
fn window(src: &[u8], pos: usize) -> u64 {
    let byte = pos / 8;
    if let Some(b) = src.get(byte..byte + 8) {
        // At least 57 bits of input: the zeros shifted in are never read.
        let w = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        return w << (pos & 7);
    }
    let w = if let Some(b) = src.len().checked_sub(8).and_then(|s| src.get(s..)) {
        // Near the end: the last eight bytes, shifted (no copy).
        let w = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        !(!w << (8 * (byte + 8 - src.len())))
    } else {
        // Fewer than eight bytes in all: they fill the top, ones below.
        let ones = !0 >> (8 * (src.len() - byte));
        src.iter().skip(byte).enumerate().fold(ones, |w, (i, &b)| w | u64::from(b) << (56 - 8 * i))
    };
    !(!w << (pos & 7))
}

/// Decodes `src` and appends the bytes to `dst`; true if one of them needs care in JSON text
/// (as [`crate::sanitize::json_scan::needs_care`] of them says, without a second pass). On
/// error, what `dst` holds past its former length is unspecified (the caller drops it).
/// Out of line: see `hpack::read_string`.
#[inline(never)]
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<bool, HuffmanError> {
    walk::<true>(src, dst).map(|(_, care)| care)
}

/// The length of `src` decoded, and its validity, as [`decode`] would find them, without
/// writing the bytes (a lean decoder's values that the session does not read: see
/// `hpack::skip_string`).
#[inline(never)]
pub(crate) fn decoded_len(src: &[u8]) -> Result<usize, HuffmanError> {
    walk::<false>(src, &mut Vec::new()).map(|(len, _)| len)
}

/// [`decode`] and [`decoded_len`]: the bytes decoded and whether one needs care; with `WRITE`,
/// the bytes are appended to `dst` (untouched without).
#[inline(always)]
fn walk<const WRITE: bool>(src: &[u8], dst: &mut Vec<u8>) -> Result<(usize, bool), HuffmanError> {
    // Bytes are decoded straight into `dst`'s spare room (each step writes four bytes and
    // keeps those it decoded), reserved at once for the whole string: a stack buffer flushed
    // every 48 bytes cost ~1.1M instructions more on the default 100 MB bench file, ~2.1M on
    // the mesh one (a room check per window instead of the bound below cost more than it saved).
    // The bound: every code has at least five bits, so after `c` bits consumed at most `c / 5`
    // bytes were decoded; a window starts below `total` and its steps before the last consume
    // at most `(STEPS - 1) * PEEK = 44` bits, so a store is at
    // `k <= (total + 44) / 5 <= len * 8 / 5 + 9`
    // and writes four bytes: `len * 8 / 5 + WINDOW_BYTES` covers every store, for any input.
    const WINDOW_BYTES: usize = 4 * STEPS + 4;
    const _: () = assert!(STEPS == 5 && PEEK == 11 && WINDOW_BYTES >= 9 + 4);
    let at = dst.len();
    if WRITE {
        dst.reserve(src.len() * 8 / 5 + WINDOW_BYTES);
    }
    let base = dst.as_mut_ptr();
    let mut k = 0usize;
    let mut care = 0u32;
    let total = src.len() * 8;
    let mut pos = 0usize;
    while pos < total {
        // A window holds at least 57 bits: `STEPS` steps of at most `PEEK`, without a branch.
        // A long code (or the end) gives a zero entry: the steps after it decode nothing, and
        // the last entry says so. Past the end the window holds ones: no code is found there,
        // or one that reaches past the end, which makes the string invalid (its bits in the
        // string are a proper prefix of a code: padding is at most seven ones and a prefix
        // of EOS, and no code is all ones), seen once below. 1.42M steps on the 100 MB mesh
        // bench file: -6.4M instructions against per-step checks for both.
        let mut w = window(src, pos);
        let mut e = 0;
        // The steps' `e >> BITS_SHIFT` summed: bits consumed below bit 6 (at most 55), counts
        // above.
        let mut used = 0u32;
        for _ in 0..STEPS {
            e = FAST[(w >> (64 - PEEK)) as usize];
            // The bytes in one store; `k` advances by those decoded (at most 3, `COUNT_SHIFT`).
            if WRITE {
                debug_assert!(at + k + 4 <= dst.capacity());
                // SAFETY: `at + k + 4 <= capacity` (the bound above); the writes are in the spare
                // room (past `len`), not yet part of the `Vec`'s contents.
                unsafe { base.add(at + k).cast::<[u8; 4]>().write_unaligned(e.to_le_bytes()) };
            }
            care |= e;
            k += (e >> COUNT_SHIFT) as usize;
            let bits = e >> BITS_SHIFT;
            used += bits;
            w = w.wrapping_shl(bits);
        }
        pos += (used & 63) as usize;
        if e >> COUNT_SHIFT == 0 && pos < total {
            let left = total - pos;
            if left <= PEEK as usize {
                // The end (padding, or a cut code): a code this short would have an entry.
                // Walking the tree for it was 4M instructions on the mesh bench file.
                break;
            }
            // A long code: read bit by bit.
            match slow(window(src, pos), left) {
                Slow::Byte(b, len) => {
                    pos += len as usize;
                    if WRITE {
                        // SAFETY: as above (`pos < total` here: `k < len * 8 / 5`).
                        unsafe { base.add(at + k).write(b) };
                    }
                    if byte_needs_care(b) {
                        care |= CARE;
                    }
                    k += 1;
                }
                Slow::Eos => return Err(HuffmanError),
                Slow::End => break,
            }
        }
    }
    // What is left must be padding: at most seven bits, all ones (EOS's first bits); a code
    // that ran past the end left none.
    let pad = total.wrapping_sub(pos);
    let ones = (1u8 << pad.min(7)) - 1;
    if pad > 7 || src.last().is_some_and(|&b| b & ones != ones) {
        return Err(HuffmanError);
    }
    if WRITE {
        // SAFETY: the `k` bytes after `at` were written above, inside the capacity.
        unsafe { dst.set_len(at + k) };
    }
    Ok((k, care & CARE != 0))
}

/// Huffman-encodes `src` (tests only: the decoder is what tlspeek needs).
#[cfg(test)]
pub(crate) fn encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in src {
        let (code, len) = CODES[b as usize];
        acc = (acc << len) | code as u64;
        bits += len as u32;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The decoder this one replaced (a four-bit state machine, nghttp2's design): the
    // reference the table decoder is checked against.
    /// [`TRANSITIONS`] flag: a byte was completed (in bits 8-15).
    const EMIT: u32 = 1 << 16;
    /// [`TRANSITIONS`] flag: EOS was decoded, or the bits lead nowhere.
    const FAIL: u32 = 1 << 17;
    /// [`TRANSITIONS`] flag: the string may end in the next state (at a symbol boundary, or in at
    /// most seven bits of EOS's prefix).
    const ACCEPT: u32 = 1 << 18;
    /// `[state][nibble]`: next state (bits 0-7), the byte emitted (bits 8-15) and the flags.
    static TRANSITIONS: [[u32; 16]; 256] = {
        let t = &TREE;
        // Depth of the inner nodes reached from the root by 1 bits only (EOS's prefix); 0xff for
        // the others.
        let mut ones = [0xffu8; 256];
        let mut node = 0usize;
        let mut depth = 0u8;
        while depth < 8 {
            ones[node] = depth;
            node = t[node][1] as usize;
            depth += 1;
        }
        let mut out = [[0u32; 16]; 256];
        let mut state = 0;
        while state < 256 {
            let mut nibble = 0;
            while nibble < 16 {
                let mut cur = state;
                let mut e = 0u32;
                let mut bit = 4;
                while bit > 0 {
                    bit -= 1;
                    let child = t[cur][(nibble >> bit) & 1];
                    if child == NONE || child == LEAF | EOS {
                        e |= FAIL;
                        cur = 0;
                    } else if child & LEAF != 0 {
                        e |= EMIT | (((child & 0xff) as u32) << 8);
                        cur = 0;
                    } else {
                        cur = child as usize;
                    }
                }
                if ones[cur] <= 7 {
                    e |= ACCEPT;
                }
                out[state][nibble] = e | cur as u32;
                nibble += 1;
            }
            state += 1;
        }
        out
    };
    fn by_nibbles(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
        // No branch per nibble: every step writes its byte into a small buffer and advances only
        // when it completed one, and a failure is noted and reported at the end (the states after
        // it are valid indices; what they emit is dropped with the string). A byte of input
        // completes at most two symbols (none is shorter than five bits), so 48 + 2 fit in 64.
        let mut buf = [0u8; 64];
        let (mut k, mut state, mut e, mut failed) = (0usize, 0usize, ACCEPT, 0u32);
        for &b in src {
            for n in [b >> 4, b & 0xf] {
                e = TRANSITIONS[state][n as usize];
                failed |= e & FAIL;
                buf[k & 63] = (e >> 8) as u8;
                k += usize::from(e & EMIT != 0);
                state = (e & 0xff) as usize;
            }
            if k >= 48 {
                dst.extend_from_slice(&buf[..k]);
                k = 0;
            }
        }
        if failed != 0 || e & ACCEPT == 0 {
            return Err(HuffmanError);
        }
        dst.extend_from_slice(&buf[..k]);
        Ok(())
    }

    fn dec(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut v = Vec::new();
        decode(src, &mut v).map(|_| v)
    }

    #[test]
    fn rfc7541_c4_strings() {
        // C.4.1-C.4.3 and C.6.1.
        let hex = |s: &str| {
            let s: String = s.split_whitespace().collect();
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(dec(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(), b"www.example.com");
        assert_eq!(dec(&hex("a8eb 1064 9cbf")).unwrap(), b"no-cache");
        assert_eq!(dec(&hex("25a8 49e9 5ba9 7d7f")).unwrap(), b"custom-key");
        assert_eq!(dec(&hex("25a8 49e9 5bb8 e8b4 bf")).unwrap(), b"custom-value");
        assert_eq!(dec(&hex("6402")).unwrap(), b"302");
        assert_eq!(dec(&hex("aec3 771a 4b")).unwrap(), b"private");
        assert_eq!(
            dec(&hex("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff")).unwrap(),
            b"Mon, 21 Oct 2013 20:13:21 GMT"
        );
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(dec(&encode(&all)).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(dec(&encode(&[b])).unwrap(), [b], "{b}");
        }
        assert_eq!(dec(&[]).unwrap(), b"");
    }

    #[test]
    fn shortest_codes_fill_the_reserved_room() {
        // `0` has a five-bit code of zeros: the most bytes a string can decode to, which the
        // room `decode` reserves must hold (its debug assertion checks every store).
        for n in 0..200 {
            let mut dst = b"ab".to_vec();
            let r = decode(&vec![0; n], &mut dst);
            if n % 5 == 0 {
                assert_eq!(r, Ok(false));
                assert_eq!(dst.len(), 2 + n * 8 / 5);
                assert!(dst[2..].iter().all(|&b| b == b'0'));
            } else {
                // Zero bits left over are not padding.
                assert_eq!(r, Err(HuffmanError));
            }
            assert_eq!(&dst[..2], b"ab");
        }
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        // EOS itself (30 ones) inside the string.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError));
        // Eight bits of padding: a whole byte of ones.
        let mut v = encode(b"a");
        v.push(0xff);
        assert_eq!(dec(&v), Err(HuffmanError));
        // Padding with a zero bit: 'a' is 00011, then 000 is not EOS's prefix.
        assert_eq!(dec(&[0b0001_1000]), Err(HuffmanError));
        assert_eq!(dec(&[0b0001_1111]).unwrap(), b"a");
    }

    /// Both decoders' result (and `decoded_len`'s, checked against them): the bytes, or None
    /// for an error.
    fn both(src: &[u8]) -> Option<Vec<u8>> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (ra, rb) = (decode(src, &mut a), by_nibbles(src, &mut b));
        assert_eq!(ra.is_ok(), rb.is_ok(), "{src:02x?}");
        // The length-only walk of a lean decoder agrees: same length, same errors.
        assert_eq!(decoded_len(src).ok(), ra.ok().map(|_| a.len()), "{src:02x?}");
        ra.ok().map(|care| {
            assert_eq!(a, b, "{src:02x?}");
            assert_eq!(care, crate::sanitize::json_scan::needs_care(&a), "{src:02x?}");
            a
        })
    }

    #[test]
    fn table_decoder_agrees_with_the_nibble_decoder() {
        // Every string of one or two bytes (valid or not), then long codes and EOS placed at
        // every bit offset around the 64-bit boundary of the fast loop.
        for a in 0..=255u8 {
            both(&[a]);
            for b in 0..=255u8 {
                both(&[a, b]);
            }
        }
        let long: Vec<u8> = (0..=255u8).filter(|&b| CODES[b as usize].1 > PEEK as u8).collect();
        for prefix in 0..24 {
            for &b in &long {
                let mut s = vec![b'a'; prefix];
                s.push(b);
                s.extend_from_slice(b"0123456789");
                assert_eq!(both(&encode(&s)).as_deref(), Some(&s[..]));
                let mut e = encode(&s[..prefix]);
                e.extend([0xff; 4]);
                e.extend(encode(b"xyz"));
                assert_eq!(both(&e), None, "EOS after {prefix}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn table_decoder_agrees_on_any_bytes(src in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            both(&src);
        }

        #[test]
        fn any_string_round_trips(s in proptest::collection::vec(proptest::num::u8::ANY, 0..120), cut in 0usize..8) {
            let e = encode(&s);
            proptest::prop_assert_eq!(both(&e), Some(s));
            // Truncated by a few bytes: an error or a shorter string, as the reference says.
            both(&e[..e.len().saturating_sub(cut)]);
        }
    }
}

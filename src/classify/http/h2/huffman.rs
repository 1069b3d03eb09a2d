//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B): a table-driven decoder that reads four
//! bits at a time.
//!
//! The code's 257 symbols (256 bytes and EOS) form a binary tree of 256 inner nodes. A state is
//! an inner node; [`TRANSITIONS`], built at compile time from [`CODES`], gives for each state and
//! nibble the next state, the byte completed on the way (at most one: no code is shorter than
//! five bits) and whether the string may end there. Decoding is two table reads per input byte
//! and no branch per bit, as in nghttp2 and the `h2` crate.
//!
//! Invalid input is an error, never a panic: the EOS symbol inside a string, or padding longer
//! than seven bits or not made of the most significant bits of EOS (all ones) (§5.2).

use super::rfc7541::HUFFMAN_CODES as CODES;

/// The end-of-string symbol; never valid inside a string.
const EOS: u16 = 256;
/// [`TRANSITIONS`] flag: a byte was completed (in bits 8-15).
const EMIT: u32 = 1 << 16;
/// [`TRANSITIONS`] flag: EOS was decoded, or the bits lead nowhere.
const FAIL: u32 = 1 << 17;
/// [`TRANSITIONS`] flag: the string may end in the next state (at a symbol boundary, or in at
/// most seven bits of EOS's prefix).
const ACCEPT: u32 = 1 << 18;
/// A child in [`tree`]: a leaf holds a symbol.
const LEAF: u16 = 0x8000;
/// A child not yet set while [`tree`] is built.
const NONE: u16 = 0xffff;

/// The decoding tree: `[node][bit]` is an inner node index or `LEAF | symbol`.
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

/// `[state][nibble]`: next state (bits 0-7), the byte emitted (bits 8-15) and the flags.
static TRANSITIONS: [[u32; 16]; 256] = {
    let t = tree();
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

/// A Huffman-coded string that is not valid (RFC 7541 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Huffman code (EOS inside the string, or bad padding)")]
pub(crate) struct HuffmanError;

/// Decodes `src` and appends the bytes to `dst` (on error, `dst` holds what was decoded before
/// the fault).
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
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

    fn dec(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut v = Vec::new();
        decode(src, &mut v).map(|()| v)
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
}

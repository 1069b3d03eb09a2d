//! HTTP/2 bytes for the benchmark's h2c and gRPC flows: frames, and an HPACK encoder that does
//! what real encoders (nghttp2, Envoy's, grpc's) do: static-table names, incremental indexing of
//! new fields (so later requests on the connection are mostly one-byte references), Huffman
//! strings when shorter, eviction at the 4,096-byte default table size.

#[path = "../../../src/classify/http/h2/rfc7541.rs"]
mod rfc7541;
use rfc7541::{HUFFMAN_CODES as HUFFMAN, STATIC_TABLE as STATIC};

/// The 24-byte client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const SETTINGS: u8 = 4;
pub const WINDOW_UPDATE: u8 = 8;
pub const END_STREAM: u8 = 1;
pub const ACK: u8 = 1;
pub const END_HEADERS: u8 = 4;

/// One frame: 9-byte header and payload.
pub fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    let l = payload.len();
    out.extend_from_slice(&[(l >> 16) as u8, (l >> 8) as u8, l as u8, ty, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A SETTINGS frame with (id, value) pairs.
pub fn settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    let mut p = Vec::new();
    for &(id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(out, SETTINGS, 0, 0, &p);
}

/// A header block as one HEADERS frame (END_HEADERS), split into HEADERS + CONTINUATION when it
/// is over 16,384 bytes.
pub fn headers(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool) {
    let es = if end_stream { END_STREAM } else { 0 };
    let mut parts = block.chunks(16_384).peekable();
    let first = parts.next().unwrap_or(&[]);
    let last = parts.peek().is_none();
    frame(out, HEADERS, es | if last { END_HEADERS } else { 0 }, stream, first);
    while let Some(p) = parts.next() {
        frame(out, 9, if parts.peek().is_none() { END_HEADERS } else { 0 }, stream, p);
    }
}

/// One side's HPACK encoder state.
pub struct Encoder {
    /// Newest first.
    table: std::collections::VecDeque<(String, String)>,
    size: usize,
}

const TABLE_SIZE: usize = 4096;

impl Encoder {
    pub fn new() -> Encoder {
        Encoder { table: std::collections::VecDeque::new(), size: 0 }
    }

    /// Appends the block for `fields`. Fields named in `no_index` are sent never-indexed.
    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(n, v) in fields {
            self.field(&mut out, n, v);
        }
        out
    }

    fn field(&mut self, out: &mut Vec<u8>, n: &str, v: &str) {
        if let Some(i) = STATIC.iter().position(|&(sn, sv)| sn == n && sv == v && !sv.is_empty()) {
            int(out, 0x80, 7, i + 1);
            return;
        }
        if let Some(i) = self.table.iter().position(|(dn, dv)| dn == n && dv == v) {
            int(out, 0x80, 7, 62 + i);
            return;
        }
        let name_idx = STATIC
            .iter()
            .position(|&(sn, _)| sn == n)
            .map(|i| i + 1)
            .or_else(|| self.table.iter().position(|(dn, _)| dn == n).map(|i| 62 + i));
        if n == "authorization" || n == "cookie" {
            // never indexed, as nghttp2 and Envoy send credentials
            int(out, 0x10, 4, name_idx.unwrap_or(0));
            if name_idx.is_none() {
                string(out, n);
            }
            string(out, v);
            return;
        }
        int(out, 0x40, 6, name_idx.unwrap_or(0));
        if name_idx.is_none() {
            string(out, n);
        }
        string(out, v);
        let sz = n.len() + v.len() + 32;
        while self.size + sz > TABLE_SIZE {
            match self.table.pop_back() {
                Some((a, b)) => self.size -= a.len() + b.len() + 32,
                None => break,
            }
        }
        if sz <= TABLE_SIZE {
            self.table.push_front((n.to_string(), v.to_string()));
            self.size += sz;
        }
    }
}

/// An HPACK integer with an `n`-bit prefix under `first`'s flag bits.
fn int(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut v = v - max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal, Huffman-coded when that is shorter.
fn string(out: &mut Vec<u8>, s: &str) {
    let bits: usize = s.bytes().map(|b| HUFFMAN[b as usize].1 as usize).sum();
    let hl = bits.div_ceil(8);
    if hl < s.len() {
        int(out, 0x80, 7, hl);
        let (mut acc, mut nb) = (0u64, 0u32);
        for b in s.bytes() {
            let (code, len) = HUFFMAN[b as usize];
            acc = (acc << len) | code as u64;
            nb += len as u32;
            while nb >= 8 {
                out.push((acc >> (nb - 8)) as u8);
                nb -= 8;
            }
            acc &= (1u64 << nb) - 1;
        }
        if nb > 0 {
            out.push(((acc << (8 - nb)) | ((1u64 << (8 - nb)) - 1)) as u8); // EOS padding
        }
    } else {
        int(out, 0, 7, s.len());
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c4_huffman_request() {
        // C.4.1: the first request of the Huffman example.
        let mut e = Encoder::new();
        let b = e.block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]);
        assert_eq!(
            b,
            [
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
                0xf4, 0xff
            ]
        );
        // C.4.2: the second reuses the dynamic entry.
        let b = e.block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ]);
        assert_eq!(b, [0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]);
    }
}

//! The chunk format shared by the `tls` and `http` targets (included with `#[path]`): each
//! chunk is one control byte then its bytes — bit 7 the side (0: A, 1: B), bits 5-6 the
//! operation (0, 1: data; 2: a gap before the data; 3: memory pressure before the data), bits
//! 0-4 the length (31: a u16 LE length follows, cut to what is left).

use tlspeek::wire::Side;

/// Splits `data` into (side, op, chunk) triples.
pub fn chunks(mut data: &[u8]) -> Vec<(Side, u8, &[u8])> {
    let mut v = Vec::new();
    while let Some((&c, rest)) = data.split_first() {
        data = rest;
        let mut len = (c & 0x1f) as usize;
        if len == 0x1f {
            if data.len() < 2 {
                break;
            }
            len = u16::from_le_bytes([data[0], data[1]]) as usize;
            data = &data[2..];
        }
        let (chunk, rest) = data.split_at(len.min(data.len()));
        data = rest;
        v.push((if c & 0x80 == 0 { Side::A } else { Side::B }, (c >> 5) & 3, chunk));
    }
    v
}

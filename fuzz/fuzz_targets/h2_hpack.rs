//! The HPACK decoder on a sequence of header blocks.
//!
//! Input: byte 0 is the configuration (bit 0: joined mid-stream; bit 1: 1 KiB list limit /
//! 64 KiB; bits 2-7: the receiver's table limit in 1 KiB units), then blocks, each a u16 LE
//! length and its bytes (cut to what is left). A block that fails must leave the decoder
//! usable; memory stays bounded. A lean decoder (`--summary-only`) beside it fails where it
//! fails, keeps a table of the same size, and lists a subsequence of its fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlspeek::classify::http::h2::hpack::{HeaderList, HpackDecoder, MAX_TABLE_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else { return };
    let max_list = if cfg & 2 == 0 { 1024 } else { 64 * 1024 };
    let new = |lean| {
        let mut d = if cfg & 1 != 0 { HpackDecoder::mid_stream(max_list) } else { HpackDecoder::new(max_list) };
        d.set_table_limit(((cfg >> 2) as u32) * 1024);
        d.lean(lean)
    };
    let (mut d, mut lean) = (new(false), new(true));
    let (mut out, mut lean_out) = (HeaderList::new(), HeaderList::new());
    while rest.len() >= 2 {
        let len = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let block = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let r = d.decode(block, &mut out);
        assert_eq!(r, lean.decode(block, &mut lean_out));
        assert_eq!(d.table_len(), lean.table_len());
        assert_eq!(out.unknown, lean_out.unknown);
        let mut all = out.iter();
        assert!(lean_out.iter().all(|f| all.any(|g| (g.name, g.value) == (f.name, f.value))));
        assert!(d.capacity() <= MAX_TABLE_BYTES);
        assert!(d.table_len().1 <= d.capacity());
        // Stored fields stay within the list bound (one field may overshoot it only when it is
        // dropped, and then it is not stored).
        let stored: usize = out.iter().map(|f| f.name.len() + f.value.len() + 32).sum();
        assert!(stored <= max_list, "{stored} > {max_list}");
        assert!(d.allocated() <= 4 * MAX_TABLE_BYTES + 64 * 1024);
    }
});

//! The HTTP/2 frame layer and HPACK of one connection (both directions), as the classifier
//! will drive them.
//!
//! Input: byte 0 is the configuration (bit 0: the client side starts with the preface, else
//! both sides are joined mid-stream; bit 1: 1 KiB header block and list limits / 64 KiB), then
//! chunks in the format of `chunks.rs` (side A is the client): data, a gap before the data, or
//! (op 3) a `find_frame_chain` probe of the chunk. Each side's SETTINGS set the other side's
//! HPACK table limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunks.rs"]
mod chunks;
use chunks::chunks;
use tlspeek::classify::http::h2::{
    find_frame_chain, Frame, H2Direction, H2Event, H2Limits, SettingId, Start,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else { return };
    let n = if cfg & 2 == 0 { 1024 } else { 64 * 1024 };
    let limits = H2Limits { max_block_bytes: n, max_list_bytes: n, lean: false };
    let mut sides = if cfg & 1 != 0 {
        [H2Direction::new(Start::Preface, limits), H2Direction::new(Start::Frame, limits)]
    } else {
        [H2Direction::mid_stream(limits), H2Direction::mid_stream(limits)]
    };
    for (side, op, chunk) in chunks(rest) {
        let s = side.idx();
        match op {
            2 => sides[s].gap(),
            3 => {
                if let Some(off) = find_frame_chain(chunk) {
                    assert!(off < chunk.len());
                }
                continue;
            }
            _ => {}
        }
        let mut limit = None;
        sides[s].feed(chunk, &mut |e| match e {
            H2Event::Frame(Frame::Settings { settings, .. }) => {
                if let Some(v) = settings.get(SettingId::HEADER_TABLE_SIZE) {
                    limit = Some(v);
                }
            }
            H2Event::Headers(h) => {
                assert!(h.fields.len() <= n / 32 + 1);
                for f in h.fields.iter() {
                    std::hint::black_box(f);
                }
            }
            e => {
                std::hint::black_box(e);
            }
        });
        if let Some(v) = limit {
            sides[1 - s].set_table_limit(v);
        }
        assert!(sides[s].allocated() < 16 * n + 512 * 1024, "{} bytes held", sides[s].allocated());
    }
});

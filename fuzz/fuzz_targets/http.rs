//! The HTTP/1 session parser on two interleaved streams.
//!
//! Input: byte 0 is the configuration (bit 0: show secrets; bit 1: 1 KiB header limit, the CLI
//! minimum / 64 KiB, the default; bit 2: 2 / 1000 recorded messages), then chunks, each one
//! control byte then its bytes:
//!   bit 7     side (0: A, 1: B)
//!   bits 5-6  0, 1: data; 2: a gap (lost bytes) before the data; 3: memory pressure (`shed`)
//!             before the data
//!   bits 0-4  length; 31 means a u16 LE length follows (cut to what is left)
//! A side that answered `HttpFeed::Done` is not fed again; after a `Switch` the side is fed on
//! (allowed: it is back at a message boundary).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunks.rs"]
mod chunks;
use chunks::chunks;
use tlspeek::classify::http::{HttpConfig, HttpFeed, HttpSession};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else { return };
    let hc = HttpConfig {
        show_secrets: cfg & 1 != 0,
        max_header_bytes: if cfg & 2 == 0 { 1024 } else { 64 * 1024 },
        max_messages: if cfg & 4 == 0 { 2 } else { 1000 },
        lean_headers: cfg & 8 != 0,
    };
    let mut h = HttpSession::new(hc);
    let mut done = [false; 2];
    for (side, op, chunk) in chunks(rest) {
        if done[side.idx()] {
            continue;
        }
        match op {
            2 => h.gap(side),
            3 => h.shed(),
            _ => {}
        }
        if chunk.is_empty() {
            continue;
        }
        match h.feed(side, chunk) {
            HttpFeed::More => {}
            HttpFeed::Done => done[side.idx()] = true,
            HttpFeed::Switch { at, .. } => assert!(at <= chunk.len(), "switch at {at} of {}", chunk.len()),
        }
        std::hint::black_box((h.buffered(), h.client_side(), h.saw_http(), h.requests().len()));
    }
    std::hint::black_box(h.take_warnings());
    let r = h.finish();
    let j = tlspeek::report::json::http_text(&r);
    serde_json::from_str::<serde_json::Value>(&j).expect("valid JSON");
});

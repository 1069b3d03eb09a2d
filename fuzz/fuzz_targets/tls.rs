//! The TLS session parser on two interleaved streams.
//!
//! Input: byte 0 chooses the buffer limit (bit 0: 16 KiB, the CLI minimum / 512 KiB, the
//! default), then chunks, each one control byte then its bytes:
//!   bit 7     side (0: A, 1: B)
//!   bits 5-6  0, 1: data; 2: a gap (lost bytes) before the data; 3: memory pressure (`shed`)
//!             before the data
//!   bits 0-4  length; 31 means a u16 LE length follows (cut to what is left)
//! A side that answered `Feed::Done` is not fed again (as the flow layer does).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunks.rs"]
mod chunks;
use chunks::chunks;
use tlspeek::classify::tls::{TlsLimits, TlsSession};
use tlspeek::wire::{Feed, Side, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else { return };
    let limits = TlsLimits { max_buffer: if cfg & 1 == 0 { 16 * 1024 } else { 512 * 1024 } };
    let mut t = TlsSession::new(limits);
    let mut done = [false; 2];
    let mut ts = Timestamp::new(1_700_000_000, 0);
    for (i, (side, op, chunk)) in chunks(rest).into_iter().enumerate() {
        ts = Timestamp::new(ts.secs + (i as i64 % 3), ts.nanos as u64 + 1);
        if done[side.idx()] {
            continue;
        }
        match op {
            2 => t.gap(side),
            3 => t.shed(),
            _ => {}
        }
        if !chunk.is_empty() && t.feed(side, chunk, ts) == Feed::Done {
            done[side.idx()] = true;
        }
        std::hint::black_box((t.buffered(), t.client_side(), t.settled(), t.saw_tls()));
    }
    std::hint::black_box(t.take_warnings());
    for client in [Side::A, Side::B] {
        let r = t.finish(client);
        let j = tlspeek::report::json::tls_text(&r);
        serde_json::from_str::<serde_json::Value>(&j).expect("valid JSON");
    }
});

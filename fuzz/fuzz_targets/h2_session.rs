//! The per-connection HTTP/2 session the classifier feeds on h2c flows: both directions, the
//! streams turned into requests and responses, gRPC message walks, SETTINGS and resets.
//!
//! Input: byte 0 is the configuration (bit 0: side A is known to be the client, else the
//! session decides; bit 1: both sides joined mid-stream (frames searched for); bit 2: 1 KiB
//! header limits and 4 messages recorded, else 64 KiB and 100; bit 3: secrets shown), then
//! chunks in the format of `chunks.rs`: data, a gap before the data, or memory pressure (op 3)
//! before the data. Checks: bounded buffers, bounded records.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunks.rs"]
mod chunks;
use chunks::chunks;
use tlspeek::classify::http::h2::session::H2Session;
use tlspeek::classify::http::HttpConfig;
use tlspeek::wire::Side;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else { return };
    let (n, msgs) = if cfg & 4 != 0 { (1024, 4) } else { (64 * 1024, 100) };
    let http = HttpConfig {
        show_secrets: cfg & 8 != 0,
        max_header_bytes: n,
        max_messages: msgs,
        lean_headers: cfg & 16 != 0,
    };
    let mut h = H2Session::new(http, (cfg & 1 != 0).then_some(Side::A));
    if cfg & 2 != 0 {
        h.seek(Side::A);
        h.seek(Side::B);
    }
    for (side, op, chunk) in chunks(rest) {
        match op {
            2 => {
                h.gap(side);
            }
            3 => h.shed(),
            _ => {}
        }
        h.feed(side, chunk);
        assert!(h.buffered() < 2 * (16 * n + 512 * 1024), "{} bytes held", h.buffered());
        assert!(h.requests().len() <= msgs);
    }
    let snapshot = h.report(Side::A, None);
    let (r, warnings) = h.into_report(Side::B, None);
    assert!(r.requests.len() <= msgs && r.responses.len() <= msgs);
    assert!(snapshot.requests.len() == r.requests.len());
    assert!(warnings.len() <= 16);
    let h2 = r.http2.expect("an HTTP/2 report");
    assert!(h2.rst_streams.len() <= msgs);
    assert!(h2.streams_total >= r.requests.len() as u64);
});

//! The PROXY protocol header parser, then the classifier on a stream that starts with the input.
//!
//! Input: byte 0 is the segment size for the classifier part (1 + its value: 1..=256 bytes,
//! so headers and what follows them are split everywhere), then the stream's bytes.
//! Checked: a header is never longer than the input nor than `MAX_HEADER_BYTES`; more bytes
//! are asked for only below that bound; a header parses the same from exactly its own bytes
//! and from every longer input; every prefix of it asks for more; TLVs and values stay capped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlspeek::classify::http::HttpConfig;
use tlspeek::classify::proxy::{parse, Parsed, MAX_HEADER_BYTES, MAX_TLVS, MAX_TLV_VALUE_BYTES};
use tlspeek::classify::tls::TlsLimits;
use tlspeek::classify::{ClassifyConfig, FlowClassifier};
use tlspeek::flow::StreamSink;
use tlspeek::wire::{Side, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else { return };
    match parse(stream) {
        Parsed::Header(h, n) => {
            assert!(n <= stream.len() && n <= MAX_HEADER_BYTES, "{n}");
            assert!(h.tlvs.len() <= MAX_TLVS);
            assert!(h
                .tlvs
                .iter()
                .all(|t| t.value.len() <= MAX_TLV_VALUE_BYTES && t.value.len() <= t.len as usize));
            assert_eq!(parse(&stream[..n]), Parsed::Header(h.clone(), n));
            for cut in [0, n / 2, n - 1] {
                assert_eq!(parse(&stream[..cut]), Parsed::NeedMore, "prefix of {cut} bytes");
            }
        }
        Parsed::NeedMore => assert!(stream.len() < MAX_HEADER_BYTES),
        Parsed::No | Parsed::Malformed(_) => {}
    }
    let cfg = ClassifyConfig {
        tls: TlsLimits { max_buffer: 64 * 1024 },
        http: HttpConfig {
            show_secrets: false,
            max_header_bytes: 64 * 1024,
            max_messages: 100,
            lean_headers: false,
        },
        ca: None,
        keylog: None,
    };
    let mut c = FlowClassifier::new(cfg);
    let ts = Timestamp::new(1_800_000_000, 0);
    for seg in stream.chunks(usize::from(step) + 1) {
        c.data(Side::A, seg, ts);
        assert!(c.buffered() <= 1 << 20);
    }
    std::hint::black_box(c.finish(Side::A));
});

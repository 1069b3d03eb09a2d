use super::store::redacted;
use super::*;
use crate::sanitize::redact::{placeholder, placeholder_len};

fn cfg(show_secrets: bool) -> HttpConfig {
    HttpConfig { show_secrets, max_header_bytes: 65536, max_messages: 100, lean_headers: false }
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([ty, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// A literal field with a literal name: `prefix` 0x00 (without indexing), 0x10 (never
/// indexed) or 0x40 (incremental indexing).
fn literal(prefix: u8, name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![prefix, name.len() as u8];
    b.extend(name.as_bytes());
    b.push(value.len() as u8);
    b.extend(value.as_bytes());
    b
}

/// A client preface and one GET on stream 1 with an extra field.
fn one_request(extra: &[u8]) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84]; // :method GET, :scheme http, :path /
    block.extend(literal(0x00, ":authority", "svc:8080"));
    block.extend(extra);
    preface_and_request(&block)
}

/// A client preface, an empty SETTINGS and `block` as one request on stream 1.
fn preface_and_request(block: &[u8]) -> Vec<u8> {
    let mut c = super::super::PREFACE.to_vec();
    c.extend(frame(4, 0, 0, &[]));
    c.extend(frame(1, 0x05, 1, block));
    c
}

#[test]
fn never_indexed_fields_are_redacted_whatever_their_name() {
    for show in [false, true] {
        let mut h = H2Session::new(cfg(show), Some(Side::A));
        let extra = [literal(0x10, "x-note", "hello"), literal(0x00, "x-plain", "world")].concat();
        assert_eq!(h.feed(Side::A, &one_request(&extra)), Feed::More);
        let q = &h.requests()[0];
        let got: Vec<(&[u8], &[u8])> = q.headers.iter().skip(4).collect();
        let note: &[u8] = if show { b"hello" } else { b"<redacted 5 bytes>" };
        assert_eq!(got, [(&b"x-note"[..], note), (b"x-plain", b"world")]);
        assert_eq!((q.stream(), q.host()), (Some(1), Some(&b"svc:8080"[..])));
    }
}

#[test]
fn an_upgrade_s_http2_settings_are_the_client_s_first_settings() {
    // curl 7.88's `HTTP2-Settings` (captures/h2c-upgrade.pcap), then no SETTINGS frame seen.
    let mut h = H2Session::new(cfg(false), None);
    h.upgraded(Side::A, Some(b"AAMAAABkAAQCAAAAAAIAAAAA"));
    let client = h.report(Side::A, None).http2.unwrap().settings.client.unwrap().0;
    assert_eq!(
        client,
        [
            (SettingId::MAX_CONCURRENT_STREAMS, 100),
            (SettingId::INITIAL_WINDOW_SIZE, 33_554_432),
            (SettingId::ENABLE_PUSH, 0)
        ]
    );
    // Not base64url of whole parameters: ignored.
    for bad in [&b"AAMAAABkAAQ"[..], b"not base64!", b""] {
        let mut h = H2Session::new(cfg(false), None);
        h.upgraded(Side::A, Some(bad));
        let s = h.report(Side::A, None).http2.unwrap().settings;
        assert!(s.client.is_none(), "{bad:?}");
    }
}

#[test]
fn response_trailers_and_reset_are_attached_to_their_stream() {
    let mut h = H2Session::new(cfg(false), Some(Side::A));
    h.feed(Side::A, &one_request(&literal(0x00, "content-type", "application/grpc")));
    let mut s = frame(4, 0, 0, &[0, 1, 0, 0, 0, 0]); // HEADER_TABLE_SIZE 0
    s.extend(frame(1, 0x04, 1, &[0x88])); // :status 200
    s.extend(frame(0, 0, 1, &[0, 0, 0, 0, 2, 8]));
    s.extend(frame(0, 0, 1, &[1]));
    s.extend(frame(1, 0x05, 1, &literal(0x00, "grpc-status", "7")));
    s.extend(frame(3, 0, 1, &8u32.to_be_bytes()));
    h.feed(Side::B, &s);
    let (r, warnings) = h.into_report(Side::A, None);
    assert!(warnings.is_empty(), "{warnings:?}");
    let g = r.requests[0].grpc().unwrap();
    assert_eq!(
        (g.status, g.status_name, g.messages),
        (Some(7), Some("PERMISSION_DENIED"), ByRole { client: 0, server: 1 })
    );
    assert_eq!(r.requests[0].data(), Some(&ByRole { client: 0, server: 7 }));
    assert_eq!(
        r.responses[0].trailers().unwrap().iter().collect::<Vec<_>>(),
        [(&b"grpc-status"[..], &b"7"[..])]
    );
    let h2 = r.http2.unwrap();
    assert_eq!(
        (h2.rst_streams[0].stream, h2.rst_streams[0].from, h2.rst_streams[0].error.as_str()),
        (1, Role::Server, "CANCEL")
    );
    assert_eq!(h2.settings.server.unwrap().0, [(SettingId::HEADER_TABLE_SIZE, 0)]);
}

#[test]
fn continuation_floods_and_hpack_bombs_are_bounded_and_warned() {
    let mut h = H2Session::new(cfg(false), Some(Side::A));
    let mut c = super::super::PREFACE.to_vec();
    c.extend(frame(4, 0, 0, &[]));
    // HEADERS without END_HEADERS, then endless CONTINUATIONs.
    c.extend(frame(1, 0x01, 1, &[0x82]));
    for _ in 0..200 {
        c.extend(frame(9, 0, 1, &[0x86; 100]));
    }
    c.extend(frame(9, 0x04, 1, &[0x84]));
    // A bomb: one 2,000-byte entry inserted, then referenced 4,000 times (4 KB of block,
    // 8 MB of list).
    let mut bomb = vec![0x82, 0x86, 0x84, 0x40, 5];
    bomb.extend(b"x-big");
    bomb.extend([0x7f, 0xd1, 0x0e]); // value length 127 + 1873 = 2000
    bomb.extend([b'b'; 2000]);
    bomb.extend([0xbe; 4000]); // index 62: the entry
    c.extend(frame(1, 0x05, 3, &bomb[..]));
    h.feed(Side::A, &c);
    assert!(h.buffered() < 256 * 1024, "{}", h.buffered());
    let q = &h.requests()[0];
    assert_eq!(q.stream(), Some(3));
    let big = q.headers.iter().filter(|(n, _)| *n == b"x-big").count();
    // Kept while the list fits --max-header-bytes: 65,536 / (5 + 2,000 + 32) fields.
    assert_eq!(big, 32);
    let w = h.take_warnings();
    assert!(w.iter().any(|w| w.contains("stream 1 not decoded (continuation_flood)")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("header list of stream 3 over 65536 bytes")), "{w:?}");
}

#[test]
fn a_gap_ends_the_direction_with_a_warning() {
    let mut h = H2Session::new(cfg(false), Some(Side::A));
    h.feed(Side::A, &one_request(&[]));
    assert_eq!(h.gap(Side::A), Feed::Done);
    assert_eq!(h.feed(Side::A, &one_request(&[])), Feed::Done);
    assert_eq!(h.requests().len(), 1);
    assert_eq!(
        h.take_warnings(),
        ["http2: missing bytes from the client; its frames are not decoded further"]
    );
}

#[test]
fn hostile_bytes_neither_panic_nor_grow_memory() {
    let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15);
    for round in 0..200 {
        let mut h = H2Session::new(cfg(false), if round % 2 == 0 { Some(Side::A) } else { None });
        if round % 3 == 0 {
            h.seek(Side::A);
            h.seek(Side::B);
        }
        for i in 0..64 {
            let side = if i % 2 == 0 { Side::A } else { Side::B };
            let mut chunk: Vec<u8> = (0..(next() % 3000) as usize).map(|_| next() as u8).collect();
            if i % 5 == 0 {
                // Plausible frame headers with random payloads reach deeper.
                let mut f = frame(
                    (next() % 10) as u8,
                    next() as u8,
                    (next() % 8) as u32,
                    &chunk[..chunk.len().min(200)],
                );
                f.extend(&chunk);
                chunk = f;
            }
            h.feed(side, &chunk);
            assert!(h.buffered() < 512 * 1024, "round {round}: {} bytes", h.buffered());
        }
        let _ = h.into_report(Side::A, None);
    }
}

#[test]
fn grpc_messages_are_counted_across_data_chunks() {
    let mut w = Stream::default();
    // Two messages (7 and 3 bytes of payload) split at every point, in either direction.
    let bytes = [0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 1, 0, 0, 0, 3, 9, 9, 9];
    for cut in 0..=bytes.len() {
        for dir in [0, 1] {
            let mut w2 = Stream::default();
            let (a, b) = (w2.walk(dir, &bytes[..cut]), w2.walk(dir, &bytes[cut..]));
            assert_eq!((a.0 + b.0, a.1 + b.1), (2, 10), "cut {cut} dir {dir}");
            assert_eq!((w2.left, w2.have), ([0; 2], [0; 2]), "cut {cut} dir {dir}");
        }
    }
    assert_eq!(w.walk(0, &bytes[..4]), (0, 0));
    assert_eq!(w.walk(1, &bytes[..3]), (0, 0));
    assert_eq!(w.walk(0, &bytes[4..5]), (1, 7));
    // The other direction's prefix goes on where it was left.
    assert_eq!(w.walk(1, &[0, 5, 1, 2]), (1, 5));
    assert_eq!((w.left, w.have), ([7, 3], [0, 0]));
    // Every bit of the length counts; no such direction, nothing walked.
    let mut w = Stream::default();
    assert_eq!(w.walk(0, &[1, 0xff, 0xff, 0xff, 0xff, 7]), (1, 0xff_ff_ff_ff));
    assert_eq!(w.left[0], 0xff_ff_ff_fe);
    assert_eq!(w.walk(2, &bytes), (0, 0));
}

#[test]
fn grpc_message_is_percent_decoded() {
    assert_eq!(
        percent_decode(b"upstream connect error: caf%C3%A9 %E2%98%95 100%25 down"),
        "upstream connect error: café ☕ 100% down".as_bytes()
    );
    assert_eq!(percent_decode(b"50% %zz %4"), b"50% %zz %4");
}

#[test]
fn grpc_path_gives_service_and_method() {
    type Case = (&'static [u8], Option<&'static [u8]>, Option<&'static [u8]>);
    let cases: [Case; 7] = [
        (b"/reviews.Reviews/GetReview", Some(b"reviews.Reviews"), Some(b"GetReview")),
        (b"reviews.Reviews/GetReview", Some(b"reviews.Reviews"), Some(b"GetReview")),
        (b"/reviews.Reviews", Some(b"reviews.Reviews"), None),
        (b"/reviews.Reviews/", Some(b"reviews.Reviews"), None),
        (b"//GetReview/x", None, Some(b"GetReview/x")),
        (b"/", None, None),
        (b"", None, None),
    ];
    for (path, service, method) in cases {
        let mut g = GrpcCall::default();
        set_grpc_path(&mut g, path);
        assert_eq!((g.service(path), g.method(path)), (service, method), "{path:?}");
    }
}

#[test]
fn placeholder_len_is_the_placeholder_s_length() {
    for n in [0, 1, 9, 10, 99, 100, 65_535, usize::MAX] {
        assert_eq!(placeholder_len(n), placeholder(n).len(), "{n}");
    }
}

#[test]
fn per_stream_records_stay_small() {
    // Memory per recorded stream (the mesh 1 GB bench file's RSS limit): a stream's map entry,
    // with its id two to a cache line, and the HTTP/2 facts of a request, whose gRPC facts
    // are boxed (they were inline: 240), and whose trailers are 24 bytes (`Headers::packed`).
    assert_eq!(std::mem::size_of::<Stream>(), 28);
    assert_eq!(std::mem::size_of::<crate::classify::http::H2Request>(), 56);
    // A message's stream id and version share one word (`HttpRequest`): 128 and 88 bytes
    // before; a response is one cache line.
    assert_eq!(std::mem::size_of::<crate::classify::http::HttpRequest>(), 112);
    assert_eq!(std::mem::size_of::<crate::classify::http::HttpResponse>(), 64);
    // A direction's frame and HPACK state: 208 bytes, mimalloc's 224-byte class (it was 256; at
    // 264 bytes, its HPACK flags were alone in a fifth line: `HpackDecoder`'s `limit`), what a
    // header block reads in its first 116 (`H2Direction`).
    assert_eq!(std::mem::size_of::<crate::classify::http::h2::H2Direction>(), 208);
}

#[test]
fn a_frame_touches_the_first_240_bytes_of_the_session() {
    // The `repr(C)` orders of `H2Session`, `Conn` and `HttpReport`: what frames and header
    // blocks read and write lies in the first four of the seven cache lines of the session's
    // 448-byte block, SETTINGS, GOAWAY, RST_STREAMs and warnings after.
    use crate::classify::http::{HttpConfig, HttpReport};
    use std::mem::{offset_of, size_of};
    let conn = offset_of!(H2Session, conn);
    let report = conn + offset_of!(Conn, report);
    let hot_end = [
        offset_of!(H2Session, dirs) + size_of::<[Dir; 2]>(),
        conn + offset_of!(Conn, table_size) + 8,
        conn + offset_of!(Conn, streams_total) + 8,
        conn + offset_of!(Conn, streams) + size_of::<Streams>(),
        conn + offset_of!(Conn, cfg) + size_of::<HttpConfig>(),
        report + offset_of!(HttpReport, version) + size_of::<Option<&str>>(),
    ];
    assert!(hot_end.iter().all(|&e| e <= 240), "{hot_end:?}");
    assert!(conn + offset_of!(Conn, settings) >= 240);
    assert_eq!(size_of::<H2Session>(), 424);
}

#[test]
fn redacted_blocks_equal_the_field_by_field_build() {
    use crate::classify::http::h2::hpack::HpackDecoder;
    use crate::sanitize::ExactHeadersBuilder;
    let fields: &[(u8, &str, &str)] = &[
        (0x00, "x-plain", "v"),
        (0x00, "authorization", "Bearer a-token-longer-than-its-placeholder-0123456789"),
        (0x10, "x-note", "q\"uote"),
        (0x00, "x-d\u{1}irty", "caf\u{e9}"),
        (0x10, "x\"secret", ""),
        (0x00, "cookie", "a=1"),
        (0x00, "x-last", "tail\\"),
    ];
    // Every subset of the fields, in order: secrets first, last, adjacent, alone.
    for mask in 1u32..1 << fields.len() {
        let chosen: Vec<_> = (0..fields.len()).filter(|i| mask & 1 << i != 0).map(|i| fields[i]).collect();
        let block: Vec<u8> = chosen.iter().flat_map(|&(pre, n, v)| literal(pre, n, v)).collect();
        let mut list = HeaderList::new();
        HpackDecoder::new(65536).decode(&block, &mut list).unwrap();
        let mut want = ExactHeadersBuilder::new(0, 0);
        for f in list.iter() {
            let hidden = placeholder(f.value.len());
            let secret = f.never_indexed || f.class.secret;
            want.mark(f.class.marks);
            want.push(f.name, if secret { hidden.as_bytes() } else { f.value });
        }
        let mut p = Pseudo::default();
        let got = redacted(&list, &mut p);
        // Credential headers (`authorization`, `cookie`) and never-indexed fields are redacted.
        let hidden = got.json_text().0.windows(9).any(|w| w == b"<redacted");
        assert_eq!(hidden, mask & 0b110110 != 0, "{chosen:?}");
        assert!(got == want.finish(), "{chosen:?}");
    }
}

#[test]
fn status_codes_read_as_str_parse_reads_them() {
    use super::status_code;
    for (v, want) in [
        (&b"200"[..], 200),
        (b"101", 101),
        (b"099", 99),
        (b"999", 999),
        (b"20x", 0),
        (b"", 0),
        (b"+200", 200),
        (b"0200", 200),
        (b"65535", 65535),
        (b"65536", 0),
        (b" 200", 0),
        (b"\xff00", 0),
    ] {
        assert_eq!(status_code(v), want, "{v:?}");
        let parsed = std::str::from_utf8(v).ok().and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        assert_eq!(status_code(v), parsed, "{v:?}");
    }
}

#[test]
fn grpc_status_codes_read_as_trim_and_parse_read_them() {
    use super::grpc_status_code;
    for (v, want) in [
        (&b"0"[..], Some(0)),
        (b"14", Some(14)),
        (b"09", Some(9)),
        (b"99", Some(99)),
        (b"1x", None),
        (b"x", None),
        (b"", None),
        (b"+3", Some(3)),
        (b" 2 ", Some(2)),
        (b"\t16\n", Some(16)),
        (b"100", Some(100)),
        (b"4294967296", None),
        (b"\xff", None),
    ] {
        assert_eq!(grpc_status_code(v), want, "{v:?}");
        let parsed = std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u32>().ok());
        assert_eq!(grpc_status_code(v), parsed, "{v:?}");
    }
}

/// A client preface and one request on stream 1 with a long `:path` and `:authority` and the
/// extra fields `extra`.
fn long_request(extra: &[u8]) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend(literal(0x00, ":authority", "reviews.default.svc.cluster.local:9080"));
    block.extend(literal(0x00, ":path", "/shop.Inventory/ListEverything"));
    block.extend(extra);
    preface_and_request(&block)
}

#[test]
fn a_long_path_and_authority_are_kept_in_the_header_text_unless_it_was_redacted() {
    use crate::classify::http::MsgText;
    let (path, host) =
        (&b"/shop.Inventory/ListEverything"[..], &b"reviews.default.svc.cluster.local:9080"[..]);
    // Nothing redacted: both are ranges of the stored text; a secret: both are copies.
    for (extra, in_text) in
        [(literal(0x00, "x-plain", "world"), true), (literal(0x10, "x-note", "hi"), false)]
    {
        let mut h = H2Session::new(cfg(false), Some(Side::A));
        assert_eq!(h.feed(Side::A, &long_request(&extra)), Feed::More);
        let mut q = h.requests()[0].clone();
        assert_eq!((q.path(), q.host()), (path, Some(host)));
        let ranges =
            [Some(&q.path_text), q.host_text.as_ref()].map(|t| matches!(t, Some(MsgText::InHeaders { .. })));
        assert_eq!(ranges, [in_text, in_text]);
        // Dropping the fields (a thinned report) keeps them, as copies.
        q.clear_headers();
        assert_eq!((q.path(), q.host(), q.headers.len()), (path, Some(host), 0));
        assert!(matches!(q.path_text, MsgText::Own(_)));
    }
}

#[test]
fn summary_only_stores_the_istio_fields_redacted_and_reads_the_rest() {
    // --summary-only: the lean decoder lists the pseudo-headers (read) and the fields the
    // summary reads (stored: a never-indexed XFCC redacted, a `forwarded` whose quotes need
    // escaping); `user-agent` and an `x-envoy-*` field are neither (only the latter's mark).
    use crate::classify::http::{MARK_ENVOY, MARK_PEER_METADATA_ID, MARK_XFCC};
    let extra = [
        literal(0x40, "user-agent", "grpc-go/1.62"),
        literal(0x40, "x-envoy-peer-metadata-id", "sidecar~10.244.1.7~reviews-v1.default"),
        literal(0x10, "x-forwarded-client-cert", "By=spiffe://a;URI=spiffe://b"),
        literal(0x00, "forwarded", "for=\"10.0.0.1\""),
        literal(0x40, "x-envoy-upstream-service-time", "12"),
    ]
    .concat();
    for show in [false, true] {
        let mut h = H2Session::new(HttpConfig { lean_headers: true, ..cfg(show) }, Some(Side::A));
        assert_eq!(h.feed(Side::A, &one_request(&extra)), Feed::More);
        let q = &h.requests()[0];
        let got: Vec<(&[u8], &[u8])> = q.headers.iter().collect();
        let xfcc: &[u8] = if show { b"By=spiffe://a;URI=spiffe://b" } else { b"<redacted 28 bytes>" };
        assert_eq!(
            got,
            [
                (&b"x-envoy-peer-metadata-id"[..], &b"sidecar~10.244.1.7~reviews-v1.default"[..]),
                (b"x-forwarded-client-cert", xfcc),
                (b"forwarded", b"for=\"10.0.0.1\""),
            ]
        );
        assert_eq!(q.headers.marks(), MARK_ENVOY | MARK_PEER_METADATA_ID | MARK_XFCC);
        // Stored as a builder that scans every field stores them (the quotes kept raw, to
        // escape).
        let mut want = crate::sanitize::ExactHeadersBuilder::new(3, 100);
        got.iter().for_each(|(n, v)| want.push(n, v));
        want.mark(q.headers.marks());
        assert_eq!(q.headers, want.finish());
        assert_eq!(
            (q.method.as_bytes(), q.path(), q.host()),
            (&b"GET"[..], &b"/"[..], Some(&b"svc:8080"[..]))
        );
        // The same fields as the full decoder stores, in the same order.
        let mut full = H2Session::new(cfg(show), Some(Side::A));
        full.feed(Side::A, &one_request(&extra));
        let all: Vec<(&[u8], &[u8])> = full.requests()[0].headers.iter().collect();
        let kept: Vec<(&[u8], &[u8])> =
            all.into_iter().filter(|(n, _)| got.iter().any(|g| g.0 == *n)).collect();
        assert_eq!(kept, got);
    }
}

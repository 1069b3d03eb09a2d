//! Tests across the frame layer and HPACK: a connection cut at every byte offset, hostile
//! framing (CONTINUATION floods, cut blocks), header lists from a real encoder (`httlib-hpack`)
//! decoded whole and from random capture start points.

use super::frame::{flags, MAX_CONTINUATION_FRAMES};
use super::*;
use httlib_hpack::Encoder;
use proptest::prelude::*;

const LIMITS: H2Limits = H2Limits { max_block_bytes: 16 * 1024, max_list_bytes: 64 * 1024, lean: false };

/// A frame: header and payload.
fn frame(ty: FrameType, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = payload.len() as u32;
    let mut v = vec![(l >> 16) as u8, (l >> 8) as u8, l as u8, ty.0, fl];
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Events as owned text (DATA chunks of a frame joined), to compare feeds.
fn events(dir: &mut H2Direction, slices: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    for s in slices {
        dir.feed(s, &mut |e| match e {
            H2Event::Frame(Frame::DataChunk { bytes, .. }) => chunk.extend_from_slice(bytes),
            H2Event::Frame(Frame::Data { stream, len, end_stream }) => {
                out.push(format!("DATA {stream} {len} {end_stream} {:?}", String::from_utf8_lossy(&chunk)));
                chunk.clear();
            }
            H2Event::Frame(Frame::Settings { ack, settings, truncated }) => {
                out.push(format!("SETTINGS {ack} {:?} {truncated}", settings.iter().collect::<Vec<_>>()))
            }
            H2Event::Frame(f) => out.push(format!("{f:?}")),
            H2Event::Headers(h) => {
                let f: Vec<String> = h
                    .fields
                    .iter()
                    .map(|f| {
                        let n = String::from_utf8_lossy(f.name);
                        let v = String::from_utf8_lossy(f.value);
                        format!("{n}={v}{}", if f.never_indexed { "!" } else { "" })
                    })
                    .collect();
                out.push(format!(
                    "HEADERS {} {:?} {} {:?} {:?} unknown={} cut={:?} err={:?}",
                    h.stream, h.kind, h.end_stream, h.priority, f, h.fields.unknown, h.cut, h.error
                ))
            }
        });
    }
    out
}

/// A client side using every frame type: preface, SETTINGS, a padded HEADERS with priority
/// split over two CONTINUATIONs, padded DATA, PING, PRIORITY, RST_STREAM, an unknown type,
/// WINDOW_UPDATE, GOAWAY, and a HEADERS that reuses the dynamic table.
fn client_stream() -> Vec<u8> {
    let mut enc = Encoder::default();
    let mut block = Vec::new();
    for (n, v, fl) in [
        (":method", "POST", 0x4 | 0x10),
        (":scheme", "http", 0x10),
        (":path", "/reviews.Reviews/GetReview", 0x4 | 0x2),
        (":authority", "reviews:9080", 0x4 | 0x3),
        ("content-type", "application/grpc", 0x4 | 0x10),
        ("authorization", "Bearer s3cr3t", 0x8),
        ("x-request-id", "0123456789abcdef", 0x4),
    ] {
        enc.encode((n.as_bytes().to_vec(), v.as_bytes().to_vec(), fl), &mut block).unwrap();
    }
    let mut block2 = Vec::new();
    for (n, v, fl) in [
        (":method", "POST", 0x10),
        (":path", "/reviews.Reviews/GetReview", 0x10),
        ("x-request-id", "0123456789abcdef", 0x10),
    ] {
        enc.encode((n.as_bytes().to_vec(), v.as_bytes().to_vec(), fl), &mut block2).unwrap();
    }
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(20);
    let mut s = PREFACE.to_vec();
    s.extend(frame(FrameType::SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0, 0, 3, 0, 0, 0, 100]));
    let mut h = vec![3]; // pad length
    h.extend_from_slice(&[0x80, 0, 0, 0, 15]); // exclusive, depends on 0, weight 16
    h.extend_from_slice(a);
    h.extend_from_slice(&[0; 3]);
    s.extend(frame(FrameType::HEADERS, flags::PADDED | flags::PRIORITY, 1, &h));
    s.extend(frame(FrameType::CONTINUATION, 0, 1, b));
    s.extend(frame(FrameType::CONTINUATION, flags::END_HEADERS, 1, c));
    s.extend(frame(FrameType::DATA, flags::PADDED, 1, b"\x02\x00\x00\x00\x00\x05hello\x00\x00"));
    s.extend(frame(FrameType::DATA, flags::END_STREAM, 1, b""));
    s.extend(frame(FrameType::PING, 0, 0, b"12345678"));
    s.extend(frame(FrameType::PRIORITY, 0, 3, &[0, 0, 0, 1, 200]));
    s.extend(frame(FrameType(0xfa), 0x3, 7, b"whatever"));
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS | flags::END_STREAM, 3, &block2));
    s.extend(frame(FrameType::RST_STREAM, 0, 3, &8u32.to_be_bytes()));
    s.extend(frame(FrameType::WINDOW_UPDATE, 0, 0, &65535u32.to_be_bytes()));
    s.extend(frame(FrameType::GOAWAY, 0, 0, b"\x00\x00\x00\x03\x00\x00\x00\x00bye"));
    s
}

#[test]
fn a_connection_decodes_the_same_cut_at_every_offset() {
    let s = client_stream();
    let whole = events(&mut H2Direction::new(Start::Preface, LIMITS), &[&s]);
    let want = [
        "SETTINGS false [(SettingId(1), 4096), (SettingId(3), 100)] false",
        "HEADERS 1 Headers false Some(Priority { depends_on: 0, exclusive: true, weight: 15 }) \
         [\":method=POST\", \":scheme=http\", \":path=/reviews.Reviews/GetReview\", \":authority=reviews:9080\", \
         \"content-type=application/grpc\", \"authorization=Bearer s3cr3t!\", \"x-request-id=0123456789abcdef\"] \
         unknown=0 cut=None err=None",
        // The padded DATA: pad length 2, ten content bytes (a gRPC message prefix and "hello").
        "DATA 1 10 false \"\\0\\0\\0\\0\\u{5}hello\"",
    ];
    assert_eq!(whole[..3], want, "{whole:#?}");
    assert_eq!(whole.len(), 11, "{whole:#?}");
    assert_eq!(whole[3], "DATA 1 0 true \"\"");
    assert_eq!(whole[4], "Ping { ack: false, opaque: [49, 50, 51, 52, 53, 54, 55, 56] }");
    assert_eq!(
        whole[5],
        "Priority { stream: 3, priority: Priority { depends_on: 1, exclusive: false, weight: 200 } }"
    );
    assert_eq!(whole[6], "Unknown { ty: FrameType(250), stream: 7, len: 8 }");
    assert_eq!(
        whole[7],
        "HEADERS 3 Headers true None [\":method=POST\", \":path=/reviews.Reviews/GetReview\", \
         \"x-request-id=0123456789abcdef\"] unknown=0 cut=None err=None"
    );
    assert_eq!(whole[8], "RstStream { stream: 3, code: ErrorCode(8) }");
    assert_eq!(whole[9], "WindowUpdate { stream: 0, increment: 65535 }");
    assert_eq!(whole[10], "GoAway { last_stream: 3, code: ErrorCode(0), debug: [98, 121, 101] }");
    for cut in 0..=s.len() {
        let got = events(&mut H2Direction::new(Start::Preface, LIMITS), &[&s[..cut], &s[cut..]]);
        assert_eq!(got, whole, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(events(&mut H2Direction::new(Start::Preface, LIMITS), &bytes), whole);
}

#[test]
fn padded_data_reports_its_content_only() {
    let mut d = H2Direction::new(Start::Frame, LIMITS);
    let f = frame(FrameType::DATA, flags::PADDED, 1, b"\x02hello\x00\x00");
    assert_eq!(events(&mut d, &[&f]), ["DATA 1 5 false \"hello\""]);
    // Padding longer than the payload: malformed, skipped, the next frame is read.
    let mut s = frame(FrameType::DATA, flags::PADDED, 1, b"\x09ab");
    s.extend(frame(FrameType::PING, flags::ACK, 0, b"abcdefgh"));
    assert_eq!(
        events(&mut d, &[&s]),
        [
            "Malformed { ty: FrameType(0), stream: 1, problem: Padding }",
            "Ping { ack: true, opaque: [97, 98, 99, 100, 101, 102, 103, 104] }"
        ]
    );
}

/// Frames at the edges of the whole-frame path (`FrameDecoder::whole_frame`): each decodes
/// as when fed a byte at a time, through the state machine.
#[test]
fn whole_frames_decode_as_the_state_machine_does() {
    let limits = H2Limits { max_block_bytes: 4, max_list_bytes: 4096, lean: false };
    let mut s = frame(FrameType::HEADERS, flags::END_HEADERS | flags::PRIORITY, 1, b"\0\0\0\x03\x07\x82");
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS | flags::PRIORITY, 3, b"\0\0\0\x01\x07"));
    // Priority fields, then a fragment within the bound although the payload is not.
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS | flags::PRIORITY, 5, b"\0\0\0\x01\x07\x82\x84"));
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS | flags::PRIORITY, 7, b"\0\0"));
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS | flags::END_STREAM, 9, b""));
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS, 11, b"\x82\x84\x86\x87\x82"));
    s.extend(frame(FrameType::DATA, 0, 0, b"ab"));
    s.extend(frame(FrameType::SETTINGS, flags::ACK, 0, b""));
    s.extend(frame(FrameType::SETTINGS, 0, 0, &[0x55; 1026]));
    s.extend(frame(FrameType::SETTINGS, 0, 1, b""));
    s.extend(frame(FrameType::PING, flags::ACK, 0, b"1234567"));
    s.extend(frame(FrameType::WINDOW_UPDATE, 0, 3, b"\x80\0\0\x05"));
    s.extend(frame(FrameType::DATA, flags::END_STREAM, 1, b"xyz"));
    let whole = events(&mut H2Direction::new(Start::Frame, limits), &[&s]);
    assert_eq!(
        whole,
        [
            "HEADERS 1 Headers false Some(Priority { depends_on: 3, exclusive: false, weight: 7 }) \
             [\":method=GET\"] unknown=0 cut=None err=None",
            "HEADERS 3 Headers false Some(Priority { depends_on: 1, exclusive: false, weight: 7 }) [] \
             unknown=0 cut=None err=None",
            "HEADERS 5 Headers false Some(Priority { depends_on: 1, exclusive: false, weight: 7 }) \
             [\":method=GET\", \":path=/\"] unknown=0 cut=None err=None",
            "HEADERS 7 Headers false None [] unknown=0 cut=Some(Malformed) err=None",
            "HEADERS 9 Headers true None [] unknown=0 cut=None err=None",
            "HEADERS 11 Headers false None [] unknown=0 cut=Some(TooLarge) err=None",
            "Malformed { ty: FrameType(0), stream: 0, problem: Stream }",
            "SETTINGS true [] false",
            format!("SETTINGS false {:?} true", vec![(SettingId(0x5555), 0x5555_5555); 170]).as_str(),
            "Malformed { ty: FrameType(4), stream: 1, problem: Stream }",
            "Malformed { ty: FrameType(6), stream: 0, problem: Length }",
            "WindowUpdate { stream: 3, increment: 5 }",
            "DATA 1 3 true \"xyz\"",
        ]
    );
    let bytes: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(events(&mut H2Direction::new(Start::Frame, limits), &bytes), whole);
}

#[test]
fn bad_preface_and_gaps_end_the_direction() {
    let mut d = H2Direction::new(Start::Preface, LIMITS);
    assert!(events(&mut d, &[b"PRI * HTTP/1.1\r\n"]).is_empty());
    assert_eq!(d.end_reason(), Some(EndReason::BadPreface));
    let mut d = H2Direction::new(Start::Frame, LIMITS);
    let p = frame(FrameType::PING, 0, 0, b"abcdefgh");
    assert_eq!(events(&mut d, &[&p[..5]]).len(), 0);
    d.gap();
    assert!(events(&mut d, &[&p[5..], &p]).is_empty());
    assert_eq!(d.end_reason(), Some(EndReason::Gap));
}

#[test]
fn malformed_control_frames_are_skipped_in_step() {
    let mut s = frame(FrameType::PING, 0, 1, b"abcdefgh");
    s.extend(frame(FrameType::RST_STREAM, 0, 1, b"abc"));
    s.extend(frame(FrameType::SETTINGS, flags::ACK, 0, &[0; 6]));
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS, 0, b"\x82"));
    s.extend(frame(FrameType::WINDOW_UPDATE, 0, 5, &1u32.to_be_bytes()));
    let got = events(&mut H2Direction::new(Start::Frame, LIMITS), &[&s]);
    assert_eq!(
        got,
        [
            "Malformed { ty: FrameType(6), stream: 1, problem: Stream }",
            "Malformed { ty: FrameType(3), stream: 1, problem: Length }",
            "Malformed { ty: FrameType(4), stream: 0, problem: Length }",
            "HEADERS 0 Headers false None [] unknown=0 cut=Some(Malformed) err=None",
            "WindowUpdate { stream: 5, increment: 1 }",
        ]
    );
}

#[test]
fn continuation_floods_and_oversize_blocks_are_cut_and_bounded() {
    let limits = H2Limits { max_block_bytes: 1000, max_list_bytes: 4096, lean: false };
    let mut d = H2Direction::new(Start::Frame, limits);
    let mut s = frame(FrameType::HEADERS, 0, 1, b"\x82");
    for _ in 0..10_000 {
        s.extend(frame(FrameType::CONTINUATION, 0, 1, b"\x84"));
    }
    let got = events(&mut d, &[&s]);
    assert_eq!(got, ["HEADERS 1 Headers false None [] unknown=0 cut=Some(ContinuationFlood) err=None"]);
    assert!(d.allocated() < 8 * 1024, "{}", d.allocated());
    // The flood ends; the next block decodes (with a forgotten table: static entries only).
    let mut s = frame(FrameType::CONTINUATION, flags::END_HEADERS, 1, b"");
    s.extend(frame(FrameType::HEADERS, flags::END_HEADERS, 3, b"\x82\x84"));
    assert_eq!(
        events(&mut d, &[&s]),
        ["HEADERS 3 Headers false None [\":method=GET\", \":path=/\"] unknown=0 cut=None err=None"]
    );
    assert!(!d.hpack().is_exact());
    // An oversize block, in one frame or in several.
    let big = vec![0x82; 1500];
    let s1 = frame(FrameType::HEADERS, flags::END_HEADERS, 5, &big);
    let mut s2 = frame(FrameType::HEADERS, 0, 7, &big[..600]);
    s2.extend(frame(FrameType::CONTINUATION, flags::END_HEADERS, 7, &big[..600]));
    for s in [s1, s2] {
        for cut in [0, 9, 100, s.len()] {
            let got = events(&mut H2Direction::new(Start::Frame, limits), &[&s[..cut], &s[cut..]]);
            assert_eq!(got.len(), 1);
            assert!(got[0].ends_with("[] unknown=0 cut=Some(TooLarge) err=None"), "{got:?}");
        }
    }
    let _ = MAX_CONTINUATION_FRAMES;
}

#[test]
fn interrupted_and_orphan_blocks_are_reported() {
    let mut s = frame(FrameType::CONTINUATION, flags::END_HEADERS, 1, b"\x82");
    s.extend(frame(FrameType::HEADERS, 0, 3, b"\x82"));
    s.extend(frame(FrameType::DATA, 0, 3, b"x"));
    let got = events(&mut H2Direction::new(Start::Frame, LIMITS), &[&s]);
    assert_eq!(
        got,
        [
            "HEADERS 1 Headers false None [] unknown=0 cut=Some(Orphan) err=None",
            "HEADERS 3 Headers false None [] unknown=0 cut=Some(Interrupted) err=None",
            "DATA 3 1 false \"x\"",
        ]
    );
}

#[test]
fn push_promise_carries_the_promised_request() {
    let mut p = vec![1, 0, 0, 0, 2]; // pad 1, promised stream 2
    p.extend_from_slice(b"\x82\x84\x86");
    p.push(0);
    let s = frame(FrameType::PUSH_PROMISE, flags::PADDED | flags::END_HEADERS, 1, &p);
    let got = events(&mut H2Direction::new(Start::Frame, LIMITS), &[&s]);
    assert_eq!(
        got,
        ["HEADERS 1 PushPromise { promised: 2 } false None [\":method=GET\", \":path=/\", \":scheme=http\"] \
          unknown=0 cut=None err=None"]
    );
}

/// A server side: SETTINGS, then per response a HEADERS block from one encoder (realistic
/// reuse, values long enough to cycle a 4 KiB table) and a DATA frame; the block of response
/// `update_at` starts with a size update to 4096 (the capacity it has: an encoder re-announces
/// it after a SETTINGS exchange). Returns the stream, the offset of every frame, and the truth
/// of each block.
type Truth = Vec<Vec<(Vec<u8>, Vec<u8>)>>;

fn server_stream(n: usize, update_at: Option<usize>) -> (Vec<u8>, Vec<usize>, Truth) {
    let mut enc = Encoder::default();
    let mut s = frame(FrameType::SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
    let mut starts = vec![0];
    let mut truth = Vec::new();
    for i in 0..n {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":status".to_vec(), if i % 5 == 0 { b"404".to_vec() } else { b"200".to_vec() }),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
            (b"x-request-id".to_vec(), format!("{:0>40}", i * 7919).into_bytes()),
            (b"x-envoy-upstream-service-time".to_vec(), format!("{}", i % 13).into_bytes()),
            (b"set-cookie".to_vec(), format!("id={}", "c".repeat(i % 300)).into_bytes()),
        ];
        let mut block = Vec::new();
        if update_at == Some(i) {
            enc.update_max_dynamic_size(4096, &mut block).unwrap();
        }
        for (k, (name, value)) in fields.iter().enumerate() {
            let fl = match (k + i) % 4 {
                0 => 0x4 | 0x10,
                1 => 0x4 | 0x3 | 0x10,
                2 => 0x10,
                _ => 0x4 | 0x2,
            };
            enc.encode((name.clone(), value.clone(), fl), &mut block).unwrap();
        }
        let stream = 2 * i as u32 + 1;
        starts.push(s.len());
        s.extend(frame(FrameType::HEADERS, flags::END_HEADERS, stream, &block));
        starts.push(s.len());
        s.extend(frame(FrameType::DATA, flags::END_STREAM, stream, &vec![0u8; i % 40]));
        truth.push(fields);
    }
    (s, starts, truth)
}

/// `got` is `want` with some fields left out (the unknown ones), in order.
fn is_subsequence(got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let mut w = want.iter();
    got.iter().all(|g| w.any(|x| x == g))
}

#[test]
fn random_capture_start_points_find_frames_and_report_unknown_fields_honestly() {
    let (s, starts, truth) = server_stream(120, None);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let start = x as usize % (s.len() - 200);
        let off = find_frame_chain(&s[start..]).expect("frames found");
        assert!(starts.contains(&(start + off)), "start {start}: {off} is not a frame boundary");
        let mut d = H2Direction::mid_stream(LIMITS);
        d.feed(&s[start + off..], &mut |e| {
            if let H2Event::Headers(h) = e {
                assert_eq!((h.cut, h.error), (None, None));
                let want = &truth[(h.stream as usize - 1) / 2];
                let got: Vec<(Vec<u8>, Vec<u8>)> =
                    h.fields.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect();
                assert_eq!(got.len() + h.fields.unknown as usize, want.len());
                assert!(is_subsequence(&got, want), "{got:?} vs {want:?}");
            }
        });
    }
    // Joined from the start, every field is known.
    let mut d = H2Direction::new(Start::Frame, LIMITS);
    let mut blocks = 0;
    d.feed(&s, &mut |e| {
        if let H2Event::Headers(h) = e {
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                h.fields.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect();
            assert_eq!(got, truth[blocks]);
            blocks += 1;
        }
    });
    assert_eq!(blocks, 120);
}

/// Joins the server's stream at response 40 and feeds it one frame at a time; checks every
/// block (exact when the decoder said so before it). Returns the first block decoded while
/// exact, and the last one with unknown fields.
fn join_at_40(update_at: Option<usize>) -> (Option<usize>, Option<usize>) {
    let (s, starts, truth) = server_stream(120, update_at);
    let mut d = H2Direction::mid_stream(LIMITS);
    let (mut exact_from, mut last_unknown) = (None, None);
    let mut n = 40;
    for w in starts[1 + 2 * 40..].windows(2) {
        let exact = d.hpack().is_exact();
        d.feed(&s[w[0]..w[1]], &mut |e| {
            if let H2Event::Headers(h) = e {
                assert_eq!((h.cut, h.error), (None, None), "block {n}");
                let got: Vec<(Vec<u8>, Vec<u8>)> =
                    h.fields.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect();
                if exact {
                    assert_eq!(got, truth[n], "block {n}, exact");
                    exact_from.get_or_insert(n);
                } else {
                    assert_eq!(got.len() + h.fields.unknown as usize, truth[n].len(), "block {n}");
                    assert!(is_subsequence(&got, &truth[n]), "block {n}");
                }
                if h.fields.unknown > 0 {
                    assert!(!exact, "block {n}");
                    last_unknown = Some(n);
                }
                n += 1;
            }
        });
    }
    assert_eq!(n, 120);
    (exact_from, last_unknown)
}

#[test]
fn a_mid_stream_decoder_becomes_exact_once_the_capacity_is_known_and_stays_right() {
    // No size update: the encoder's capacity may be larger than the assumed 4 KiB (raised
    // before the capture), so exactness is never claimed, although every field is known
    // again from response 52, once the inserts of a few blocks cycled the table.
    assert_eq!(join_at_40(None), (None, Some(51)));
    // The encoder re-announces 4096 at response 70: exact from the next block (one of the
    // inserts that follow the update evicts one of our entries).
    assert_eq!(join_at_40(Some(70)), (Some(71), Some(51)));
}

/// Blocks to encode: an optional size update, then fields (name, value, flags, value length).
type Blocks = Vec<(Option<u32>, Vec<(usize, usize, u8, usize)>)>;

/// Encodes `blocks` with `httlib-hpack`; the lists decode to the same lists from the start,
/// and from block `skip` on to the same lists minus fields counted unknown, and exact lists
/// whenever the decoder said it was exact before the block. A lean decoder
/// (`--summary-only`) beside each lists the same fields less those the session does not read
/// then, with the same sizes, counts and table.
fn check_encoded_lists(blocks: &Blocks, skip: usize) -> Result<(), TestCaseError> {
    const NAMES: [&str; 16] = [
        ":method",
        ":path",
        ":status",
        "content-type",
        "authorization",
        "x-request-id",
        "grpc-status",
        "grpc-message",
        "cookie",
        "x-b3-traceid",
        "te",
        "user-agent",
        "x-envoy-peer-metadata",
        "x-forwarded-client-cert",
        "forwarded",
        "x-envoy-upstream-service-time",
    ];
    let mut enc = Encoder::default();
    let mut encoded = Vec::new();
    let mut lists = Vec::new();
    for (update, fields) in blocks {
        let mut b = Vec::new();
        if let Some(sz) = update {
            enc.update_max_dynamic_size(*sz, &mut b).unwrap();
        }
        let mut list = Vec::new();
        for &(n, v, fl, len) in fields {
            let name = NAMES[n].as_bytes().to_vec();
            let value: Vec<u8> = format!("{v}{}", "v".repeat(len)).into_bytes();
            let mut fl = fl & 0x1f;
            if fl & 0x8 != 0 {
                fl &= !(0x10 | 0x4);
            }
            enc.encode((name.clone(), value.clone(), fl), &mut b).unwrap();
            list.push((name, value, fl & 0x8 != 0));
        }
        encoded.push(b);
        lists.push(list);
    }
    let mut d = HpackDecoder::new(1 << 20);
    let mut lean = HpackDecoder::new(1 << 20).lean(true);
    let (mut out, mut lean_out) = (HeaderList::new(), HeaderList::new());
    for (i, (b, want)) in encoded.iter().zip(&lists).enumerate() {
        d.decode(b, &mut out).unwrap();
        lean.decode(b, &mut lean_out).unwrap();
        let got: Vec<_> = out.iter().map(|f| (f.name.to_vec(), f.value.to_vec(), f.never_indexed)).collect();
        prop_assert_eq!(&got, want);
        prop_assert_eq!(out.unknown, 0);
        prop_assert_eq!(out.lean_differs(&lean_out), None, "block {}", i);
        prop_assert_eq!(d.table_len(), lean.table_len());
    }
    let mut d = HpackDecoder::mid_stream(1 << 20);
    let mut lean = HpackDecoder::mid_stream(1 << 20).lean(true);
    for (i, (b, want)) in encoded.iter().zip(&lists).enumerate().skip(skip) {
        let exact = d.is_exact();
        prop_assert_eq!(exact, lean.is_exact());
        d.decode(b, &mut out).unwrap();
        lean.decode(b, &mut lean_out).unwrap();
        prop_assert_eq!(out.lean_differs(&lean_out), None, "block {}", i);
        prop_assert_eq!(d.table_len(), lean.table_len());
        let got: Vec<_> = out.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect();
        let want: Vec<_> = want.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect();
        prop_assert_eq!(got.len() + out.unknown as usize, want.len());
        prop_assert!(is_subsequence(&got, &want));
        if exact {
            prop_assert_eq!(got, want, "block {}, exact", i);
        }
    }
    Ok(())
}

/// Cases per property test: 64, or `PROPTEST_CASES` for a longer search.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Header lists encoded by `httlib-hpack` (Huffman or not, indexed or not, never indexed,
    /// size updates up to the default capacity): see [`check_encoded_lists`].
    #[test]
    fn encoded_lists_decode_to_the_same_lists(
        blocks in prop::collection::vec(
            (prop::option::of(0u32..=4096),
             prop::collection::vec((0usize..16, 0usize..12, 0u8..32, 0usize..200), 0..12)),
            1..30),
        skip in 0usize..30,
    ) {
        check_encoded_lists(&blocks, skip)?;
    }

    /// The same with size updates above the 4096 bytes a mid-stream decoder assumes (an
    /// encoder whose table the receiver let grow before the capture), and values drawn mostly
    /// from a small set, so that the encoder often references entries deep in its table.
    #[test]
    fn encoded_lists_with_larger_tables_decode_to_the_same_lists(
        blocks in prop::collection::vec(
            (prop::option::weighted(0.2, prop_oneof![0u32..=4096, 4097u32..=20_000]),
             prop::collection::vec(
                 (0usize..16, 0usize..6, 0u8..32,
                  prop_oneof![3 => prop::sample::select(vec![0usize, 40, 120, 190]), 1 => 0usize..200]),
                 0..16)),
            1..40),
        skip in 0usize..40,
    ) {
        check_encoded_lists(&blocks, skip)?;
    }

    /// Arbitrary bytes as header blocks (with a small list bound): a lean decoder fails where
    /// the full one does, with the same error, and lists what it must
    /// ([`HeaderList::lean_differs`]), its table as large.
    #[test]
    fn lean_decoding_of_hostile_blocks_agrees(
        blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..24),
        mid: bool,
    ) {
        let new = |lean| {
            let d = if mid { HpackDecoder::mid_stream(300) } else { HpackDecoder::new(300) };
            d.lean(lean)
        };
        let (mut d, mut lean) = (new(false), new(true));
        let (mut out, mut lean_out) = (HeaderList::new(), HeaderList::new());
        for (i, b) in blocks.iter().enumerate() {
            let r = d.decode(b, &mut out);
            prop_assert_eq!(r, lean.decode(b, &mut lean_out), "block {}", i);
            prop_assert_eq!(out.lean_differs(&lean_out), None, "block {}", i);
            prop_assert_eq!(d.table_len(), lean.table_len());
        }
    }

    /// Arbitrary bytes in arbitrary slices, with or without a preface: no panic, bounded
    /// buffers.
    #[test]
    fn hostile_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096), cuts in prop::collection::vec(1usize..64, 1..64), preface: bool) {
        let limits = H2Limits { max_block_bytes: 2048, max_list_bytes: 4096, lean: false };
        let mut d = if preface { H2Direction::new(Start::Preface, limits) } else { H2Direction::mid_stream(limits) };
        let mut input = if preface { PREFACE.to_vec() } else { Vec::new() };
        input.extend_from_slice(&data);
        let mut pos = 0;
        for c in cuts.iter().cycle().take(4096) {
            if pos >= input.len() { break; }
            let end = (pos + c).min(input.len());
            d.feed(&input[pos..end], &mut |e| { std::hint::black_box(e); });
            pos = end;
        }
        prop_assert!(d.allocated() < 2048 + 1024 + 4096 * 2 + 64 * 1024 * 3);
        let _ = find_frame_chain(&input);
    }
}

proptest! {
    /// The search that skips offsets sixteen at a time finds the same first chain as trying
    /// every offset, in random bytes with frame headers planted in them.
    #[test]
    fn frame_chain_search_finds_the_first_chain(
        mut data in prop::collection::vec(any::<u8>(), 0..400),
        plants in prop::collection::vec((0usize..400, 0u8..10, 0u32..40), 0..6),
    ) {
        for (at, ty, len) in plants {
            let at = at.min(data.len());
            let mut h = vec![0, 0, len as u8, ty, 0, 0, 0, 0, if ty == 4 || ty == 6 || ty == 7 { 0 } else { 1 }];
            h.extend(std::iter::repeat_n(0u8, len as usize));
            data.splice(at..at, h);
        }
        let naive = (0..data.len().saturating_sub(8)).find(|&o| {
            let mut p = o;
            for n in 0..3 {
                if p == data.len() && n >= 2 {
                    return true;
                }
                let Some(h) = data.get(p..p + 9) else { return false };
                if !frame::plausible_header(h.try_into().unwrap()) {
                    return false;
                }
                p += 9 + u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            }
            true
        });
        prop_assert_eq!(find_frame_chain(&data), naive);
    }
}

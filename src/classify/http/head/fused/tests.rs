//! The fused parser against the httparse path: on every head it accepts, the same start line,
//! framing fields and stored [`Headers`] as `parse_head` then `store_headers`.

use super::super::{head_end, parse_head, Known};
use super::*;
use crate::classify::http::testutil::cfg;
use crate::classify::http::{HttpConfig, HttpSession};

/// The httparse path's answer for `block`: (method and target, status, reason, minor version,
/// framing fields, stored headers).
type Answer<'a> = (Option<(&'a [u8], &'a [u8])>, u16, &'a [u8], Option<u8>, Known<'a>, Option<Headers>);

fn httparse_path(block: &[u8], response: bool, store: Option<StoreRules>) -> Option<Answer<'_>> {
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let h = parse_head(block, response, &mut slots)?;
    let known = match &h.headers {
        super::super::Fields::Parsed(hs) => Known::of(hs.iter().map(|f| (f.name.as_bytes(), f.value))),
        super::super::Fields::Lines(hs) => Known::of(hs.iter().copied()),
    };
    let headers = store.map(|r| {
        let session = HttpSession::new(HttpConfig { show_secrets: !r.hide, lean_headers: r.lean, ..cfg() });
        session.store_headers(&h.headers)
    });
    Some((h.request, h.status, h.reason, h.version, known, headers))
}

const RULES: [Option<StoreRules>; 5] = [
    None,
    Some(StoreRules { hide: true, lean: false }),
    Some(StoreRules { hide: false, lean: false }),
    Some(StoreRules { hide: true, lean: true }),
    Some(StoreRules { hide: false, lean: true }),
];

/// Checks one input both ways, as a request and as a response, under every storing rule;
/// true when the fused parser accepted it (in one of the ways).
fn check(block: &[u8]) -> bool {
    let mut accepted = false;
    for response in [false, true] {
        for store in RULES {
            let Some(f) = parse(block, response, store) else { continue };
            accepted = true;
            let what = format!("{:?} response={response}", String::from_utf8_lossy(block));
            let Some((request, status, reason, version, known, headers)) =
                httparse_path(block, response, store)
            else {
                panic!("fused accepted what httparse's path rejects: {what}");
            };
            assert_eq!(f.request, request, "{what}");
            assert_eq!(f.status, status, "{what}");
            assert_eq!(f.reason, reason, "{what}");
            assert_eq!(Some(f.version), version, "{what}");
            assert_eq!(f.known, known, "{what}");
            assert_eq!(f.headers, headers, "{what}");
        }
    }
    accepted
}

/// Every head in the shipped captures, found in the files' bytes (a head inside one packet is
/// contiguous in a pcap file).
fn heads_from_captures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/captures");
    let starts: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"HTTP/1.1 ",
        b"HTTP/1.0 ",
    ];
    let mut heads = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        if !path.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for at in 0..bytes.len() {
            if starts.iter().any(|s| bytes[at..].starts_with(s)) {
                let rest = &bytes[at..bytes.len().min(at + 16 * 1024)];
                if let Some(end) = head_end(rest, 0) {
                    heads.push(rest[..end].to_vec());
                }
            }
        }
    }
    heads
}

/// Heads written for the corners of the grammar.
fn crafted() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET  /x  HTTP/1.0\r\nHost:b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX:\t a \t\r\nY:\r\nZ: \t \r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\tb\r\nQ: \"q\"\r\nB: a\\b\r\nH: \xff\xfe\r\nU: caf\xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n\r\nextra",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST /p HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /p HTTP/1.1\r\nContent-Length: 3, 4\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: Bearer x\r\nCookie: a=b\r\nX-Api-Key:\r\nx-envoy-peer-metadata: Cg==\r\nx-envoy-peer-metadata-id: sidecar~1\r\nx-forwarded-client-cert: By=spiffe://a\r\nforwarded: for=x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1  200  Very OK \t\r\nServer: envoy\r\n\r\n",
        b"HTTP/1.1 200\r\nServer: envoy\r\n\r\n",
        b"HTTP/1.1 200\nServer: envoy\n\n",
        b"HTTP/1.1 200 \xe9t\xe9\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n\tfolded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=1\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: 1\r\n",
        b"GET / HTTP/1.1\r\n:x\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    ]
    .iter()
    .map(|h| h.to_vec())
    .collect();
    for n in [MAX_HEADERS - 1, MAX_HEADERS, MAX_HEADERS + 1] {
        let mut h = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            h.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        v.push(h);
    }
    // Long names (past the name cache) and long values (past the 16-byte scans).
    v.push(
        format!(
            "GET /{} HTTP/1.1\r\nX-{}-Token: {}\"\r\nX-{}: {}\r\n\r\n",
            "p".repeat(40),
            "n".repeat(40),
            "v".repeat(70),
            "m".repeat(33),
            "w\t".repeat(30)
        )
        .into_bytes(),
    );
    v
}

#[test]
fn fused_heads_equal_the_httparse_path() {
    let captured = heads_from_captures();
    assert!(captured.len() > 100, "{} heads in captures/", captured.len());
    let mut seeds = crafted();
    seeds.extend(captured.iter().cloned());
    // Real heads are plain: the fused parser takes nearly all of them.
    let taken = captured.iter().filter(|h| check(h)).count();
    assert!(taken * 10 >= captured.len() * 9, "{taken} of {} captured heads taken", captured.len());
    for s in &seeds {
        check(s);
    }
    const BYTES: [u8; 20] = [
        b' ', b'\t', b'\r', b'\n', b':', b'"', b'\\', 0, 0x7f, 0x80, 0xff, b'a', b'A', b'0', b'/', b',',
        0x0b, 0x0c, 0xc3, b'-',
    ];
    let mut rng = crate::wire::xorshift(22);
    let (mut tried, mut accepted) = (0, 0);
    for _ in 0..30_000 {
        let mut h = seeds[(rng() % seeds.len() as u64) as usize].clone();
        for _ in 0..1 + rng() % 3 {
            if h.is_empty() {
                break;
            }
            let at = (rng() % h.len() as u64) as usize;
            let byte = BYTES[(rng() % BYTES.len() as u64) as usize];
            match rng() % 5 {
                0 => h[at] = byte,
                1 => h.insert(at, byte),
                2 => {
                    h.remove(at);
                }
                3 => {
                    // Repeat the line holding `at`.
                    let start = h[..at].iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
                    let end = h[at..].iter().position(|&c| c == b'\n').map_or(h.len(), |p| at + p + 1);
                    let line = h[start..end].to_vec();
                    h.splice(start..start, line);
                }
                _ => h[at] = h[at].to_ascii_uppercase(),
            }
        }
        // What `message` gets: the head up to its first blank line, or complete lines.
        let block = match head_end(&h, 0) {
            Some(end) => &h[..end],
            None => &h[..],
        };
        tried += 1;
        accepted += usize::from(check(block));
    }
    // Most mutations keep a head plain (a changed letter, a repeated line).
    assert!(accepted * 4 >= tried, "{accepted} of {tried} mutated heads taken");
}

//! Hostile captures (issue 7): each is built here, from a real capture in captures/ where the
//! case allows it, and must give a clear result — never a panic, a hang or unbounded memory.

mod common;

use common::{capture, tlspeek};
use serde_json::Value;
use std::io::Write;

/// Records of a classic little-endian pcap: (header offset, data range).
fn records(pcap: &[u8]) -> Vec<(usize, std::ops::Range<usize>)> {
    let mut v = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        v.push((off, off + 16..off + 16 + incl));
        off += 16 + incl;
    }
    v
}

/// Writes `bytes` to a temporary file and returns its path.
fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("tlspeek-adv-{}-{name}", std::process::id()));
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn json_lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut flows = Vec::new();
    let mut summary = Value::Null;
    for l in stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"));
        if v["type"] == "summary" {
            summary = v;
        } else {
            flows.push(v);
        }
    }
    (flows, summary)
}

fn run_json(path: &std::path::Path, extra: &[&str]) -> (i32, Vec<Value>, Value, String) {
    let mut args = vec!["-r", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let r = tlspeek(&args);
    let (flows, summary) = json_lines(&r.stdout);
    (r.code, flows, summary, r.stderr)
}

/// A pcap builder for Ethernet/IPv4/TCP packets between 10.1.0.2 (client) and 10.1.0.1.
struct Pcap(Vec<u8>, u32);

impl Pcap {
    fn new() -> Pcap {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        Pcap(b, 0)
    }

    fn tcp(&mut self, from_client: bool, seq: u32, flags: u8, payload: &[u8]) {
        self.tcp_ports(from_client, (40000, 443), seq, flags, payload);
    }

    /// A segment between client port `ports.0` and server port `ports.1`.
    fn tcp_ports(&mut self, from_client: bool, ports: (u16, u16), seq: u32, flags: u8, payload: &[u8]) {
        let (src, dst, sp, dp) = if from_client {
            ([10, 1, 0, 2], [10, 1, 0, 1], ports.0, ports.1)
        } else {
            ([10, 1, 0, 1], [10, 1, 0, 2], ports.1, ports.0)
        };
        let p =
            common::Segment { src: (src, sp), dst: (dst, dp), seq, ack: 0, flags, window: 0xffff, payload }
                .frame();
        self.1 += 1;
        let (secs, usecs) = (1_800_000_000 + self.1 / 1000, (self.1 % 1000) * 1000);
        for v in [secs, usecs, p.len() as u32, p.len() as u32] {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self.0.extend_from_slice(&p);
    }

    /// Handshake, then `client` sent in segments of `seg` bytes, then the server's `server`.
    fn flow(client: &[u8], server: &[u8], seg: usize) -> Pcap {
        let mut p = Pcap::new();
        let (mut c, mut s) = (1000u32, 5000u32);
        p.tcp(true, c, 0x02, b"");
        p.tcp(false, s, 0x12, b"");
        c += 1;
        s += 1;
        p.tcp(true, c, 0x10, b"");
        for chunk in client.chunks(seg.max(1)) {
            p.tcp(true, c, 0x18, chunk);
            c = c.wrapping_add(chunk.len() as u32);
        }
        for chunk in server.chunks(1400) {
            p.tcp(false, s, 0x18, chunk);
            s = s.wrapping_add(chunk.len() as u32);
        }
        p
    }
}

/// A TLS record of `ctype` around `body`.
fn record(ctype: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ctype, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
fn sequence_numbers_wrapping_past_2_32_reassemble_like_any_other() {
    // The real TLS 1.2 mTLS session with every sequence number shifted so that both directions
    // wrap past 2^32 inside their handshake.
    let orig = std::fs::read(capture("tls12-mtls-istio.pcap")).unwrap();
    let mut shifted = orig.clone();
    let (mut client_isn, mut server_isn) = (None, None);
    for (_, data) in records(&orig) {
        let tcp = data.start + 14 + 20;
        let seq = u32::from_be_bytes(orig[tcp + 4..tcp + 8].try_into().unwrap());
        let ack = u32::from_be_bytes(orig[tcp + 8..tcp + 12].try_into().unwrap());
        let sport = u16::from_be_bytes(orig[tcp..tcp + 2].try_into().unwrap());
        let from_client = sport != 9080;
        let (own, peer) =
            if from_client { (&mut client_isn, &mut server_isn) } else { (&mut server_isn, &mut client_isn) };
        own.get_or_insert(seq);
        // New ISNs: client 2^32 - 200, server 2^32 - 1000 (both wrap within the first flight).
        let map = |v: u32, isn: u32, new: u32| v.wrapping_sub(isn).wrapping_add(new);
        let (cn, sn) = (u32::MAX - 199, u32::MAX - 999);
        let (own_new, peer_new) = if from_client { (cn, sn) } else { (sn, cn) };
        shifted[tcp + 4..tcp + 8].copy_from_slice(&map(seq, own.unwrap(), own_new).to_be_bytes());
        if let Some(p) = *peer {
            shifted[tcp + 8..tcp + 12].copy_from_slice(&map(ack, p, peer_new).to_be_bytes());
        }
    }
    let a = run_json(&capture("tls12-mtls-istio.pcap"), &[]);
    let path = temp("wrap.pcap", &shifted);
    let b = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(b.0, 0);
    assert_eq!(b.1.len(), 1);
    let (fa, fb) = (&a.1[0], &b.1[0]);
    assert_eq!(fb["tls"], fa["tls"]);
    assert_eq!(fb["flags"], serde_json::json!([]));
    assert_eq!(fb["tls"]["mtls"], "yes");
    assert_eq!(fb["tls"]["sni"], "outbound_.9080_._.reviews.default.svc.cluster.local");
}

#[test]
fn a_16_mib_handshake_message_that_never_arrives_is_bounded() {
    // A ClientHello header announcing 16 MiB, then 300 KiB of records that never complete it.
    let mut client = record(22, &[1, 0xff, 0xff, 0xff, 3, 3]);
    for _ in 0..20 {
        client.extend(record(22, &[0x41; 16000]));
    }
    let path = temp("huge-hs.pcap", &Pcap::flow(&client, b"", 1448).0);
    let (code, flows, summary, stderr) = run_json(&path, &["--max-stream-bytes", "64K"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(flows[0]["protocol"], "tls");
    let w: Vec<&str> = flows[0]["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(w.iter().any(|w| w.contains("exceeds buffer limit")), "{w:?}");
    assert_eq!(summary["flows"], 1);
}

#[test]
fn a_certificate_nested_100000_levels_deep_is_reported_not_a_crash() {
    // A Certificate message whose only certificate is 100,000 nested SEQUENCE headers.
    let depth = 100_000;
    let mut der = Vec::new();
    for i in 0..depth {
        let inner = 4 * (depth - i - 1) as u32;
        der.extend_from_slice(&[0x30, 0x83]);
        der.extend_from_slice(&inner.to_be_bytes()[1..]);
    }
    let mut list = Vec::new();
    list.extend_from_slice(&(der.len() as u32).to_be_bytes()[1..]);
    list.extend_from_slice(&der);
    let mut cert_msg = vec![11];
    cert_msg.extend_from_slice(&((list.len() + 3) as u32).to_be_bytes()[1..]);
    cert_msg.extend_from_slice(&(list.len() as u32).to_be_bytes()[1..]);
    cert_msg.extend_from_slice(&list);
    let hello = {
        let mut b = vec![2, 0, 0, 38, 3, 3];
        b.extend_from_slice(&[9; 32]);
        b.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        b
    };
    let mut server = record(22, &hello);
    for chunk in cert_msg.chunks(16_000) {
        server.extend(record(22, chunk));
    }
    server.extend(record(22, &[14, 0, 0, 0]));
    let ch = {
        let mut b = vec![1, 0, 0, 41, 3, 3];
        b.extend_from_slice(&[7; 32]);
        b.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
        b
    };
    let path = temp("nested.pcap", &Pcap::flow(&record(22, &ch), &server, 1448).0);
    let (code, flows, _, stderr) = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{stderr}");
    let certs = flows[0]["tls"]["server_certs"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    assert!(certs[0]["parse_error"].is_string(), "{}", certs[0]);
    assert_eq!(flows[0]["tls"]["version"], "TLS 1.2");
}

#[test]
fn one_hundred_thousand_one_byte_segments() {
    // An HTTP request whose 100,000-byte body arrives one byte per segment, then a second
    // request: both are parsed.
    let mut client = b"POST /upload HTTP/1.1\r\nHost: tiny\r\nContent-Length: 100000\r\n\r\n".to_vec();
    let head = client.len();
    client.extend(std::iter::repeat_n(b'x', 100_000));
    client.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: tiny\r\n\r\n");
    let mut p = Pcap::new();
    let mut seq = 1001u32;
    p.tcp(true, 1000, 0x02, b"");
    p.tcp(false, 5000, 0x12, b"");
    p.tcp(true, seq, 0x10, b"");
    p.tcp(true, seq, 0x18, &client[..head]);
    seq += head as u32;
    for b in &client[head..head + 100_000] {
        p.tcp(true, seq, 0x18, std::slice::from_ref(b));
        seq += 1;
    }
    p.tcp(true, seq, 0x18, &client[head + 100_000..]);
    let path = temp("tiny.pcap", &p.0);
    let (code, flows, summary, _) = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0);
    assert_eq!(summary["packets"], 100_005);
    let reqs: Vec<&str> = flows[0]["http"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(reqs, ["/upload", "/after"]);
}

#[test]
fn a_capture_cut_at_every_byte_offset_gives_a_clear_error_and_the_flows_before_it() {
    use clap::Parser;
    let orig = std::fs::read(capture("tls12-mtls-istio.pcap")).unwrap();
    let ends: Vec<usize> = records(&orig).iter().map(|(_, d)| d.end).collect();
    let path = std::env::temp_dir().join(format!("tlspeek-adv-{}-cut.pcap", std::process::id()));
    let p = path.to_str().unwrap().to_string();
    let args = tlspeek::cli::Args::try_parse_from(["tlspeek", "-r", &p, "--json"]).unwrap();
    let cfg = args.into_config(false).unwrap();
    // Every offset, in-process (the binary's one-line message is checked below).
    for cut in 0..=orig.len() {
        std::fs::write(&path, &orig[..cut]).unwrap();
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        let outcome = tlspeek::run::run_with_writer(&cfg, &mut out, &mut diag).unwrap();
        let (flows, summary) = json_lines(std::str::from_utf8(&out).unwrap());
        assert!(summary.is_object(), "cut {cut}: no summary");
        let clean = cut == 24 || ends.contains(&cut);
        assert_eq!(outcome.errors.is_empty(), clean, "cut {cut}: {:?}", outcome.errors);
        if !clean {
            let diag = String::from_utf8(diag).unwrap();
            assert_eq!(diag.lines().count(), 1, "cut {cut}: {diag}");
            assert!(diag.starts_with(&format!("tlspeek: {p}: ")), "cut {cut}: {diag}");
        }
        // The flow is reported as soon as its first packet (the SYN) is complete.
        assert_eq!(flows.len(), usize::from(cut >= ends[0]), "cut {cut}");
    }
    // The binary: exit code 2 and the same single line.
    std::fs::write(&path, &orig[..orig.len() - 5]).unwrap();
    let r = tlspeek(&["-r", &p, "--json"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_record_length_that_lies_is_an_error_at_its_offset_after_the_earlier_flows() {
    let mut b = std::fs::read(capture("tls12-mtls-istio.pcap")).unwrap();
    let recs = records(&b);
    let (hdr, _) = recs[10];
    b[hdr + 8..hdr + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let path = temp("lying.pcap", &b);
    let (code, flows, summary, stderr) = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2);
    assert_eq!(flows.len(), 1, "the flow seen so far is still reported");
    assert!(stderr.contains(&format!("at byte {hdr}")), "{stderr}");
    assert_eq!(summary["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn pcapng_blocks_of_unknown_types_are_skipped() {
    let orig = std::fs::read(capture("pcapng-multi-if.pcapng")).unwrap();
    // Insert a 16-byte block of an unassigned type after the section header block.
    let shb_len = u32::from_le_bytes(orig[4..8].try_into().unwrap()) as usize;
    let mut b = orig[..shb_len].to_vec();
    b.extend_from_slice(&0x0bad_beefu32.to_le_bytes());
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&[0xaa; 4]);
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&orig[shb_len..]);
    let path = temp("unknown-block.pcapng", &b);
    let with = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    let without = run_json(&capture("pcapng-multi-if.pcapng"), &[]);
    assert_eq!(with.0, 0, "{}", with.3);
    let strip = |v: &Vec<Value>| -> Vec<Value> {
        v.iter()
            .map(|f| {
                let mut f = f.clone();
                f["source"] = Value::Null;
                f
            })
            .collect()
    };
    assert_eq!(strip(&with.1), strip(&without.1));
    assert!(!with.1.is_empty());
}

/// A ClientHello with the given SNI and ALPN protocols (TLS 1.2 record).
fn client_hello(sni: &[u8], alpn: &[&[u8]]) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut name = vec![0];
    name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    name.extend_from_slice(sni);
    let mut list = (name.len() as u16).to_be_bytes().to_vec();
    list.extend(name);
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
    exts.extend(list);
    let mut protos = Vec::new();
    for p in alpn {
        protos.push(p.len() as u8);
        protos.extend_from_slice(p);
    }
    let mut al = (protos.len() as u16).to_be_bytes().to_vec();
    al.extend(protos);
    exts.extend_from_slice(&[0, 16]);
    exts.extend_from_slice(&(al.len() as u16).to_be_bytes());
    exts.extend(al);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    record(22, &hs)
}

#[test]
fn packet_bytes_never_reach_the_terminal_raw_and_secrets_stay_redacted() {
    // SNI and ALPN with ESC sequences, a bidi override, CR, NUL and an invalid UTF-8 byte.
    let sni = b"evil\x1b[2J\xe2\x80\xae.test\r\n\x00\xff";
    let tls = temp("term-tls.pcap", &Pcap::flow(&client_hello(sni, &[b"h2\x1b]0;pwned\x07"]), b"", 1448).0);
    // Plaintext HTTP with an escape sequence in a header and credentials.
    let req = b"GET /a\x1b[31m HTTP/1.1\r\nHost: x\r\nX-Note: \x1b[31mred\x1b[0m\r\nAuthorization: Bearer SECRET123\r\nCookie: session=COOKIE456\r\n\r\n";
    let http = temp(
        "term-http.pcap",
        &Pcap::flow(req, b"HTTP/1.1 200 OK\r\nSet-Cookie: s=SETCOOKIE789\r\nContent-Length: 0\r\n\r\n", 1448)
            .0,
    );
    // An unrecognised protocol carrying a credential line: the flow is `unknown`, with a preview.
    let odd =
        temp("term-odd.pcap", &Pcap::flow(b"\x00\x01AUTH\r\nAuthorization: Basic QkFTSUMx\r\n", b"", 1448).0);
    let files = [&tls, &http, &odd].map(|p| p.to_str().unwrap().to_string());
    let mut args: Vec<&str> = files.iter().flat_map(|f| ["-r", f.as_str()]).collect();
    let table = tlspeek(&args);
    assert_eq!(table.code, 0, "{}", table.stderr);
    for bad in ["\x1b", "\r", "\0", "\u{202e}", "\x07"] {
        assert!(!table.stdout.contains(bad), "raw {bad:?} in the table:\n{}", table.stdout);
    }
    assert!(table.stdout.contains(r"evil\x1b[2J\u{202e}.test\r\n\0\xff"), "{}", table.stdout);
    for secret in ["SECRET123", "COOKIE456", "SETCOOKIE789", "QkFTSUMx"] {
        assert!(!table.stdout.contains(secret), "{secret} in the table");
    }
    args.push("--json");
    let json = tlspeek(&args);
    let (flows, _) = json_lines(&json.stdout);
    // JSON is valid and lossless: the escape byte is in the string, the invalid byte is `\xff`.
    assert_eq!(flows[0]["tls"]["sni"], "evil\x1b[2J\u{202e}.test\r\n\0\\xff");
    assert_eq!(flows[0]["tls"]["alpn_offered"][0], "h2\x1b]0;pwned\x07");
    let headers = &flows[1]["http"]["requests"][0]["headers"];
    assert_eq!(headers[1], serde_json::json!(["X-Note", "\x1b[31mred\x1b[0m"]));
    assert_eq!(headers[2], serde_json::json!(["Authorization", "<redacted 16 bytes>"]));
    assert_eq!(headers[3], serde_json::json!(["Cookie", "<redacted 17 bytes>"]));
    assert_eq!(
        flows[1]["http"]["responses"][0]["headers"][0],
        serde_json::json!(["Set-Cookie", "<redacted 14 bytes>"])
    );
    assert_eq!(flows[2]["protocol"], "unknown");
    assert_eq!(flows[2]["preview"]["client"], "\0\x01AUTH\r\nAuthorization: <redacted>\r\n");
    for secret in ["SECRET123", "COOKIE456", "SETCOOKIE789", "QkFTSUMx"] {
        assert!(!json.stdout.contains(secret), "{secret} in the JSON");
        assert!(!json.stderr.contains(secret) && !table.stderr.contains(secret), "{secret} in a warning");
    }
    args.push("--show-secrets");
    let shown = tlspeek(&args);
    for secret in ["SECRET123", "COOKIE456", "SETCOOKIE789", "QkFTSUMx"] {
        assert!(shown.stdout.contains(secret), "--show-secrets shows {secret}");
    }
    for f in [tls, http, odd] {
        let _ = std::fs::remove_file(f);
    }
}

/// A handshake from port 40000 to 10.1.0.1:50051, then one gRPC exchange, seen mid-stream,
/// from each client port in `ports`.
fn grpc_after_a_handshake(ports: std::ops::Range<u16>) -> Pcap {
    let mut p = Pcap::new();
    p.tcp_ports(true, (40000, 50051), 100, 0x02, b"");
    p.tcp_ports(false, (40000, 50051), 900, 0x12, b"");
    p.tcp_ports(true, (40000, 50051), 101, 0x10, b"");
    for port in ports {
        p.tcp_ports(true, (port, 50051), 7000, 0x18, b"\x00\x00\x00\x00\x05hello");
        p.tcp_ports(false, (port, 50051), 8000, 0x18, b"\x00\x00\x00\x00\x02ok");
    }
    p
}

#[test]
fn a_midstream_flow_to_a_server_seen_answering_a_syn_gets_the_right_client() {
    // gRPC's port 50051 is above the client's ephemeral port 40001: the port rule alone would
    // swap them. An earlier connection's SYN-ACK shows 10.1.0.1:50051 is a server.
    let path = temp("known-server.pcap", &grpc_after_a_handshake(40001..40002).0);
    let (_, flows, _, _) = run_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    let mid = flows.iter().find(|f| f["flags"].as_array().unwrap().iter().any(|x| x == "midstream")).unwrap();
    assert_eq!(
        (mid["client"].as_str(), mid["server"].as_str()),
        (Some("10.1.0.2:40001"), Some("10.1.0.1:50051"))
    );
    assert_eq!(mid["client_by"], "known_server");
}

#[test]
fn every_shard_learns_the_servers_seen_answering_a_syn() {
    // As above, with 24 mid-stream clients: with threads, their flows and the handshake's are
    // in different shards, and the workers are told of each SYN-ACK by the reading thread.
    let path = temp("known-servers.pcap", &grpc_after_a_handshake(40001..40025).0);
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let (_, flows, _, _) = run_json(&path, &["--threads", threads]);
        let mid: Vec<&Value> = flows
            .iter()
            .filter(|f| f["flags"].as_array().unwrap().iter().any(|x| x == "midstream"))
            .collect();
        assert_eq!(mid.len(), 24);
        for f in &mid {
            assert_eq!(f["server"], "10.1.0.1:50051", "--threads {threads}");
            assert_eq!(f["client_by"], "known_server", "--threads {threads}");
        }
        outputs.push(flows);
    }
    let _ = std::fs::remove_file(&path);
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

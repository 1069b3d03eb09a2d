//! Test helpers shared by the TLS unit tests: hand-built records and hellos, and the real
//! handshakes of `../testdata` (openssl on loopback, captured with tcpdump) fed like the flow
//! layer feeds them.

use super::*;

pub(super) fn limits() -> TlsLimits {
    TlsLimits { max_buffer: 256 * 1024 }
}

/// A handshake record around `msgs` (type, body).
pub(super) fn record(msgs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut hs = Vec::new();
    for (t, b) in msgs {
        hs.push(*t);
        hs.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(b);
    }
    let mut r = vec![22, 3, 1];
    r.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    r.extend(hs);
    r
}

pub(super) fn ext(t: u16, body: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(super) fn client_hello(sni: &str, alpn: &[&str], versions: &[u16]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[7; 32]);
    b.push(0);
    b.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
    let mut exts = Vec::new();
    let mut s = vec![0];
    s.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    s.extend_from_slice(sni.as_bytes());
    let mut sl = (s.len() as u16).to_be_bytes().to_vec();
    sl.extend(s);
    exts.extend(ext(0x0a0a, b"")); // GREASE
    exts.extend(ext(0, &sl));
    let mut a = Vec::new();
    for p in alpn {
        a.push(p.len() as u8);
        a.extend_from_slice(p.as_bytes());
    }
    let mut al = (a.len() as u16).to_be_bytes().to_vec();
    al.extend(a);
    exts.extend(ext(16, &al));
    if !versions.is_empty() {
        let mut v = vec![(versions.len() * 2) as u8];
        for x in versions {
            v.extend_from_slice(&x.to_be_bytes());
        }
        exts.extend(ext(43, &v));
    }
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    b
}

pub(super) fn server_hello(random: [u8; 32], cipher: u16, exts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&random);
    b.push(0);
    b.extend_from_slice(&cipher.to_be_bytes());
    b.push(0);
    let e: Vec<u8> = exts.concat();
    b.extend_from_slice(&(e.len() as u16).to_be_bytes());
    b.extend(e);
    b
}

// ---- Real handshakes: openssl s_server/s_client on 127.0.0.1, captured with tcpdump. ----
// Each `.seg` file is the TCP payload of one connection in capture order: per segment one
// byte (0 = client, side A; 1 = server, side B), a big-endian u32 length, the bytes.
pub(super) const TLS12_MTLS: &[u8] = include_bytes!("../testdata/tls12_mtls.seg");
pub(super) const TLS13: &[u8] = include_bytes!("../testdata/tls13.seg");
pub(super) const TLS13_HRR: &[u8] = include_bytes!("../testdata/tls13_hrr.seg");
pub(super) const TLS12_RESUME: &[u8] = include_bytes!("../testdata/tls12_resume.seg");
/// 2026-11-23T04:16:30Z, just after the test certificates' notBefore.
pub(super) const SEEN: Timestamp = Timestamp { secs: 1_795_407_390, nanos: 0 };

pub(super) fn segments(mut f: &[u8]) -> Vec<(Side, &[u8])> {
    let mut v = Vec::new();
    while f.len() >= 5 {
        let side = if f[0] == 0 { Side::A } else { Side::B };
        let n = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
        v.push((side, &f[5..5 + n]));
        f = &f[5 + n..];
    }
    v
}

/// The whole stream of one side.
pub(super) fn stream(f: &[u8], side: Side) -> Vec<u8> {
    segments(f).into_iter().filter(|(s, _)| *s == side).flat_map(|(_, d)| d.to_vec()).collect()
}

/// Feeds a capture like the flow layer does (a side is no longer fed once done), each
/// segment cut into chunks of sizes from `chunk(i)`; returns the session and which sides
/// ended done.
pub(super) fn run_with(
    f: &[u8],
    limits: TlsLimits,
    chunk: impl Fn(usize) -> usize,
) -> (TlsSession, [bool; 2]) {
    let mut t = TlsSession::new(limits);
    let mut done = [false; 2];
    let mut k = 0;
    for (side, mut d) in segments(f) {
        while !d.is_empty() && !done[side.idx()] {
            let n = chunk(k).clamp(1, d.len());
            k += 1;
            done[side.idx()] = t.feed(side, &d[..n], SEEN) == Feed::Done;
            d = &d[n..];
        }
    }
    (t, done)
}

pub(super) fn run(f: &[u8]) -> (TlsSession, [bool; 2]) {
    run_with(f, limits(), |_| usize::MAX)
}

pub(super) fn json(r: &TlsReport) -> String {
    crate::report::json::tls_text(r)
}

//! TLS decryption with a key log: arbitrary secrets, records and plaintexts.
//!
//! Input: byte 0 configures — bits 0-1 the suite (TLS 1.3 AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305, or TLS 1.2 ECDHE-RSA-AES128-GCM), bit 2 the buffer limit (16 KiB / 512 KiB);
//! then 48 bytes of secret material (the key log's secrets for client random [7; 32]: TLS 1.3
//! traffic secrets derived from it by position, or the TLS 1.2 master secret). The hellos are fed
//! (and the client's ChangeCipherSpec), then chunks in the format of the `tls` target
//! (chunks.rs), except that operation 1 seals: the chunk's first byte picks the secret (bits 0-1:
//! client handshake, server handshake, client traffic, server traffic) and the content type
//! (bits 2-4: 20 + n), the rest is the plaintext, sealed as a TLS 1.3 record with that secret's
//! next sequence number — so the decrypted-message paths are reached, not only failed tags.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunks.rs"]
mod chunks;
use chunks::chunks;
use std::sync::Arc;
use tlspeek::classify::tls::decrypt::testing::Sealer;
use tlspeek::classify::tls::decrypt::KeyLog;
use tlspeek::classify::tls::{TlsLimits, TlsSession};
use tlspeek::wire::{Feed, Side, Timestamp};

const LABELS: [&str; 4] = [
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn handshake_record(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![typ];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    let mut r = vec![22, 3, 3];
    r.extend_from_slice(&(m.len() as u16).to_be_bytes());
    r.extend(m);
    r
}

fn hellos(suite: u16, tls13: bool) -> (Vec<u8>, Vec<u8>) {
    let mut ch = vec![3, 3];
    ch.extend([7; 32]);
    ch.extend([0, 0, 2]);
    ch.extend(suite.to_be_bytes());
    ch.extend([1, 0, 0, 7, 0, 43, 0, 3, 2, 3, 4]);
    let mut sh = vec![3, 3];
    sh.extend([9; 32]);
    sh.push(0);
    sh.extend(suite.to_be_bytes());
    sh.push(0);
    if tls13 {
        sh.extend([0, 6, 0, 43, 0, 2, 3, 4]);
    }
    (handshake_record(1, &ch), handshake_record(2, &sh))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 49 {
        return;
    }
    let (cfg, secret, rest) = (data[0], &data[1..49], &data[49..]);
    let (suite, hash) = [(0x1301u16, 32usize), (0x1302, 48), (0x1303, 32), (0xc02f, 48)][(cfg & 3) as usize];
    let tls13 = suite >> 8 == 0x13;
    let random = hex(&[7; 32]);
    let mut keys = String::new();
    let mut secrets = Vec::new();
    if tls13 {
        for (i, l) in LABELS.iter().enumerate() {
            let mut s = secret[..hash].to_vec();
            s[0] ^= i as u8;
            keys.push_str(&format!("{l} {random} {}\n", hex(&s)));
            secrets.push(s);
        }
    } else {
        keys.push_str(&format!("CLIENT_RANDOM {random} {}\n", hex(secret)));
    }
    let mut sealers: Vec<Option<Sealer>> = secrets.iter().map(|s| Sealer::tls13(suite, s)).collect();
    let limits = TlsLimits { max_buffer: if cfg & 4 == 0 { 16 * 1024 } else { 512 * 1024 } };
    let mut t = TlsSession::new(limits);
    t.set_keylog(Arc::new(KeyLog::from_text(keys.as_bytes())));
    let mut ts = Timestamp::new(1_700_000_000, 0);
    let (ch, sh) = hellos(suite, tls13);
    let mut done = [false; 2];
    for (side, bytes) in [(Side::A, &ch[..]), (Side::B, &sh[..]), (Side::A, &[20, 3, 3, 0, 1, 1][..])] {
        if t.feed(side, bytes, ts) == Feed::Done {
            done[side.idx()] = true;
        }
    }
    for (i, (side, op, chunk)) in chunks(rest).into_iter().enumerate() {
        ts = Timestamp::new(ts.secs + (i as i64 % 3), ts.nanos as u64 + 1);
        if done[side.idx()] {
            continue;
        }
        let sealed;
        let bytes = match op {
            1 => match chunk.split_first() {
                Some((&sel, plain)) if tls13 => {
                    let which = (sel & 3) as usize;
                    let ctype = 20 + ((sel >> 2) & 7);
                    sealed = sealers[which].as_mut().map(|s| s.seal(ctype, plain)).unwrap_or_default();
                    &sealed[..]
                }
                _ => chunk,
            },
            2 => {
                t.gap(side);
                chunk
            }
            3 => {
                t.shed();
                chunk
            }
            _ => chunk,
        };
        if !bytes.is_empty() && t.feed(side, bytes, ts) == Feed::Done {
            done[side.idx()] = true;
        }
        std::hint::black_box((t.buffered(), t.take_app(side).len()));
    }
    std::hint::black_box(t.take_warnings());
    for client in [Side::A, Side::B] {
        let r = t.finish(client);
        let j = tlspeek::report::json::tls_text(&r);
        serde_json::from_str::<serde_json::Value>(&j).expect("valid JSON");
    }
});

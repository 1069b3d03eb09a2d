use super::testing::{next_secret, Sealer};
use super::*;
use crate::classify::tls::testutil::*;
use crate::wire::Feed;

/// A handshake message.
fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn client_cert_der() -> Vec<u8> {
    let pem = include_bytes!("../../../../captures/pki/calib/client-ecdsa.crt");
    x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents
}

const SECRETS: [(&str, u8); 4] = [
    ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1),
    ("SERVER_HANDSHAKE_TRAFFIC_SECRET", 2),
    ("CLIENT_TRAFFIC_SECRET_0", 3),
    ("SERVER_TRAFFIC_SECRET_0", 4),
];

/// A TLS 1.3 flow (client random [7; 32], TLS_AES_128_GCM_SHA256) sealed with the secrets
/// [1; 32].. [4; 32]: the client's records and the server's, in order of sending. The server
/// asks for a certificate and selects h2; the client sends its SPIFFE certificate, a
/// request, a KeyUpdate, and a second request under the updated key.
fn flow() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut server = record(&[(2, server_hello([9; 32], 0x1301, &[ext(43, &[3, 4])]))]);
    let mut shs = Sealer::tls13(0x1301, &[2; 32]).unwrap();
    let mut flight = msg(8, &[0, 9, 0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
    flight.extend(msg(13, &[0, 0, 0]));
    flight.extend(msg(20, &[0xaa; 32]));
    server.extend(shs.seal(22, &flight));
    let mut chs = Sealer::tls13(0x1301, &[1; 32]).unwrap();
    let der = client_cert_der();
    let mut entry = (der.len() as u32).to_be_bytes()[1..].to_vec();
    entry.extend(&der);
    entry.extend([0, 0]);
    let mut cert = vec![0];
    cert.extend(&(entry.len() as u32).to_be_bytes()[1..]);
    cert.extend(entry);
    let mut client_flight = msg(11, &cert);
    client_flight.extend(msg(15, &[4, 3, 0, 2, 0, 0]));
    let mut client = vec![chs.seal(22, &client_flight), chs.seal(22, &msg(20, &[0xbb; 32]))];
    let mut cts = Sealer::tls13(0x1301, &[3; 32]).unwrap();
    client.push(cts.seal(23, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"));
    client.push(cts.seal(22, &msg(24, &[0])));
    let mut cts1 = Sealer::tls13(0x1301, &next_secret(0x1301, &[3; 32]).unwrap()).unwrap();
    client.push(cts1.seal(23, b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
    (server, client)
}

/// Whole client and server streams of a TLS 1.3 connection with the secrets of
/// [`key_lines`]: the server selects `alpn` and asks for no certificate; then each side's
/// application data records, client first.
pub(crate) fn sealed_streams(alpn: &[u8], client_app: &[&[u8]], server_app: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut server = record(&[(2, server_hello([9; 32], 0x1301, &[ext(43, &[3, 4])]))]);
    let mut ee = vec![0, 0, 0, 16, 0, 0, 0, 0, alpn.len() as u8];
    ee.extend_from_slice(alpn);
    let n = ee.len() as u16;
    ee[0..2].copy_from_slice(&(n - 2).to_be_bytes());
    ee[4..6].copy_from_slice(&(n - 6).to_be_bytes());
    ee[6..8].copy_from_slice(&(n - 8).to_be_bytes());
    let mut flight = msg(8, &ee);
    flight.extend(msg(20, &[0xaa; 32]));
    server.extend(Sealer::tls13(0x1301, &[2; 32]).unwrap().seal(22, &flight));
    let mut client = record(&[(1, client_hello("x.test", &["istio-peer-exchange", "h2"], &[0x0304]))]);
    client.extend([20, 3, 3, 0, 1, 1]);
    client.extend(Sealer::tls13(0x1301, &[1; 32]).unwrap().seal(22, &msg(20, &[0xbb; 32])));
    let mut cts = Sealer::tls13(0x1301, &[3; 32]).unwrap();
    for a in client_app {
        client.extend(cts.seal(23, a));
    }
    let mut sts = Sealer::tls13(0x1301, &[4; 32]).unwrap();
    for a in server_app {
        server.extend(sts.seal(23, a));
    }
    (client, server)
}

/// The key log of [`sealed_streams`] (and of the flow below).
pub(crate) fn key_lines() -> String {
    let random = "07".repeat(32);
    SECRETS.iter().map(|(l, b)| format!("{l} {random} {}\n", format!("{b:02x}").repeat(32))).collect()
}

#[test]
fn keys_that_arrive_after_the_handshake_still_decrypt_it() {
    let dir = std::env::temp_dir().join(format!("tlspeek-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys");
    std::fs::write(&path, "").unwrap();
    let (log, _) = KeyLog::open(std::slice::from_ref(&path), true).unwrap();
    let mut t = TlsSession::new(limits());
    t.set_keylog(Arc::new(log));
    let (server, client) = flow();
    let ts = |s: i64| Timestamp::new(1_800_000_000 + s, 0);
    t.feed(Side::A, &record(&[(1, client_hello("x.test", &["h2", "http/1.1"], &[0x0304]))]), ts(0));
    t.feed(Side::B, &server, ts(0));
    t.feed(Side::A, &[20, 3, 3, 0, 1, 1], ts(0));
    for r in &client[..3] {
        assert_eq!(t.feed(Side::A, r, ts(1)), Feed::More, "records held for their keys");
    }
    assert_eq!(t.finish(Side::A).decryption.unwrap().status, DecryptStatus::NoKeys);
    // Envoy appends the connection's lines; the next record (2 s later) reads them.
    std::fs::write(&path, key_lines()).unwrap();
    for r in &client[3..] {
        t.feed(Side::A, r, ts(2));
    }
    t.feed(Side::B, &Sealer::tls13(0x1301, &[4; 32]).unwrap().seal(21, &[1, 0]), ts(2));
    let r = t.finish(Side::A);
    let d = r.decryption.clone().unwrap();
    assert_eq!(
        (d.status, d.handshake, d.application),
        (DecryptStatus::Decrypted, true, true),
        "{}",
        d.reason
    );
    assert_eq!(r.alpn_selected.unwrap().as_bytes(), b"h2");
    assert!(r.client_cert_requested);
    assert_eq!(r.mtls_reason, "client sent a certificate (spiffe://cluster.local/ns/default/sa/calib-client); proven with the key log");
    assert_eq!(r.mtls_inferred.as_ref().unwrap().0, crate::classify::tls::MtlsVerdict::Likely);
    assert_eq!(r.alerts[0].description, "close_notify");
    assert!(r.alerts[0].after_handshake);
    let app = t.take_app(Side::A);
    assert_eq!(app, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(t.take_warnings().is_empty());

    // The line written after the flow's last packet: read when the flow ends.
    let late = dir.join("late");
    std::fs::write(&late, "").unwrap();
    let (log, _) = KeyLog::open(std::slice::from_ref(&late), true).unwrap();
    let mut t = TlsSession::new(limits());
    t.set_keylog(Arc::new(log));
    t.feed(Side::A, &record(&[(1, client_hello("x.test", &["h2"], &[0x0304]))]), ts(0));
    t.feed(Side::B, &server, ts(0));
    t.feed(Side::A, &[20, 3, 3, 0, 1, 1], ts(0));
    for r in &client {
        t.feed(Side::A, r, ts(0));
    }
    std::fs::write(&late, key_lines()).unwrap();
    assert_eq!(t.finish(Side::A).decryption.unwrap().status, DecryptStatus::NoKeys);
    t.dec_flush();
    assert_eq!(t.finish(Side::A).mtls, crate::classify::tls::MtlsVerdict::Yes);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn any_chunking_gives_the_same_result_and_damage_never_panics() {
    let log = Arc::new(KeyLog::from_text(key_lines().as_bytes()));
    let (server, client) = flow();
    let client: Vec<u8> = [vec![20, 3, 3, 0, 1, 1]].into_iter().chain(client).flatten().collect();
    let hello = record(&[(1, client_hello("x.test", &["h2"], &[0x0304]))]);
    let run = |chunk: usize, flip: Option<usize>| {
        let mut t = TlsSession::new(limits());
        t.set_keylog(log.clone());
        t.feed(Side::A, &hello, SEEN);
        for c in server.chunks(chunk) {
            t.feed(Side::B, c, SEEN);
        }
        let mut c = client.clone();
        if let Some(i) = flip {
            let n = c.len();
            c[i % n] ^= 0x40;
        }
        for c in c.chunks(chunk) {
            t.feed(Side::A, c, SEEN);
        }
        let _ = t.take_warnings();
        let app = t.take_app(Side::A);
        (json(&t.finish(Side::A)), app)
    };
    let whole = run(usize::MAX, None);
    assert!(whole.0.contains("\"status\":\"decrypted\""), "{}", whole.0);
    for chunk in [1, 7, 100, 1000] {
        assert_eq!(run(chunk, None), whole, "chunks of {chunk}");
    }
    for i in (0..client.len()).step_by(13) {
        let (j, _) = run(97, Some(i));
        assert!(j.contains("\"decryption\":{"), "byte {i}");
    }
}

//! The TLS 1.3 client-certificate inference on real handshakes from four stacks (OpenSSL 3.0
//! s_client/s_server, Python ssl, Go 1.19 crypto/tls, rustls 0.23), made by
//! captures/make-tls13-calib.sh and verified by decryption with the key logs next to them
//! (captures/tls13-calib.md). Client port = stack base + case number.

mod common;

use common::json;
use serde_json::Value;

/// (case, expected verdict): 1 no CertificateRequest; 2 ECDSA client cert; 3 RSA-2048 cert;
/// 4 requested, empty Certificate; 5 ECDSA with AES-256/SHA-384; 6 no request, SHA-384;
/// 7 ECDSA with ChaCha20; 8 PSK resumption of a session made with a certificate; 9 HRR + ECDSA;
/// 10 empty Certificate, SHA-384; 80 the full handshake that case 8 resumes.
const CASES: [(u16, &str); 11] = [
    (1, "unlikely"),
    (2, "likely"),
    (3, "likely"),
    (4, "unlikely"),
    (5, "likely"),
    (6, "unlikely"),
    (7, "likely"),
    (8, "unknown"),
    (9, "likely"),
    (10, "unlikely"),
    (80, "likely"),
];

fn by_port(flows: &[Value], port: u16) -> &Value {
    flows
        .iter()
        .find(|f| f["client"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("no flow from port {port}"))
}

#[test]
fn every_stack_and_case_gets_the_expected_verdict() {
    for (stack, base) in [("openssl", 41000), ("python", 42000), ("go", 43000), ("rustls", 44000)] {
        let j = json(&format!("tls13-calib-{stack}.pcap"), &[]);
        assert_eq!(j.flows.len(), CASES.len(), "{stack}");
        for (case, want) in CASES {
            let f = by_port(&j.flows, base + case);
            let t = &f["tls"];
            assert_eq!(t["version"], "TLS 1.3", "{stack} case {case}");
            assert_eq!(t["mtls"], want, "{stack} case {case}: {}", t["mtls_reason"]);
            assert_eq!(t["hello_retry_request"], case == 9, "{stack} case {case}");
        }
        // Finished alone: 4 + 32 + 17 bytes (53), 4 + 48 + 17 with SHA-384 (69).
        assert_eq!(by_port(&j.flows, base + 1)["tls"]["client_encrypted_records"][0], 53);
        assert_eq!(by_port(&j.flows, base + 6)["tls"]["client_encrypted_records"][0], 69);
        let resumed = &by_port(&j.flows, base + 8)["tls"];
        assert_eq!(resumed["resumption"], "psk");
        assert!(resumed["mtls_reason"].as_str().unwrap().starts_with("TLS 1.3 session resumption (PSK)"));
    }
}

#[test]
fn record_layouts_differ_by_stack_and_the_rule_reads_both() {
    let first = |stack: &str, port: u16| -> Vec<u64> {
        let j = json(&format!("tls13-calib-{stack}.pcap"), &[]);
        let f = by_port(&j.flows, port);
        f["tls"]["client_encrypted_records"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
    };
    // OpenSSL sends Certificate (leaf + CA: 1010 bytes), CertificateVerify, Finished as three
    // records; rustls sends the flight in one record (leaf only).
    let o = first("openssl", 41002);
    assert_eq!((o[0], o[2]), (1010, 53));
    assert!((95..=98).contains(&o[1]), "{o:?}");
    assert!((660..=700).contains(&first("rustls", 44002)[0]));
    // Empty Certificate: alone (25) then Finished, or with the Finished in one record (61, 77).
    assert_eq!(first("go", 43004)[..2], [25, 53]);
    assert_eq!(first("rustls", 44004)[0], 61);
    assert_eq!(first("rustls", 44010)[0], 77);
    let j = json("tls13-calib-rustls.pcap", &[]);
    assert_eq!(
        by_port(&j.flows, 44004)["tls"]["mtls_reason"],
        "TLS 1.3: client's first encrypted records 61, 54, 19 bytes; the first (61) is an empty Certificate and a Finished: a certificate was requested and the client sent none"
    );
}

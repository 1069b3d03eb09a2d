//! What is neither HTTP nor TLS is not called so, and TLS cut by a small snaplen is still TLS:
//! captures/protocols.md (made by captures/make-protocols.sh with real redis-server,
//! memcached, aiosmtpd/smtplib, imaplib, OpenSSL and `tcpdump -s 96`).

mod common;

use common::{json, strings, tlspeek};

/// Every flow of the capture is `unknown`, none has HTTP or TLS facts, and the readings and
/// checks never call them plaintext HTTP.
fn not_http(name: &str, expect_flows: usize) {
    let j = json(name, &[]);
    assert_eq!(j.flows.len(), expect_flows, "{name}");
    for f in &j.flows {
        assert_eq!(
            (f["protocol"].as_str(), &f["http"], &f["tls"]),
            (Some("unknown"), &serde_json::Value::Null, &serde_json::Value::Null),
            "{name}: {f}"
        );
    }
    for s in j.summary["servers"].as_array().unwrap() {
        assert_eq!(s["plaintext"], 0, "{name}: {s}");
    }
    let path = common::capture(name);
    let r = tlspeek(&["-r", path.to_str().unwrap(), "--fail-on-plaintext"]);
    assert_eq!(r.code, 0, "{name}: {}", r.stdout);
}

#[test]
fn redis_resp_and_inline_commands_are_not_http() {
    not_http("plaintext-redis.pcap", 7);
    // The inline connection's first bytes are its preview (escaped), not a request.
    let j = json("plaintext-redis.pcap", &[]);
    let inline = j.flows.iter().find(|f| f["client"] == "10.96.0.2:40110").unwrap();
    assert!(inline["preview"]["client"].as_str().unwrap().starts_with("GET foo\r\nSET foo bar"), "{inline}");
}

#[test]
fn memcached_text_protocol_is_not_http() {
    not_http("plaintext-memcached.pcap", 1);
}

#[test]
fn smtp_and_imap_with_http_lines_inside_are_not_http() {
    not_http("plaintext-smtp-imap.pcap", 2);
}

#[test]
fn tls_recorded_with_snaplen_96_is_tls_cut_short() {
    let j = json("tls-snaplen96.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    for f in &j.flows {
        assert_eq!(f["protocol"], "tls", "{f}");
        assert_eq!(strings(&f["flags"]), ["truncated", "gap"]);
        let t = &f["tls"];
        // What 30 bytes per packet show: the hellos' legacy versions; the version chosen
        // (TLS 1.2 or 1.3 share legacy_version 1.2) and the SNI were not captured.
        assert_eq!(
            (t["legacy_version"].as_str(), &t["version"], &t["sni"]),
            (Some("TLS 1.2"), &serde_json::Value::Null, &serde_json::Value::Null)
        );
        assert_eq!(t["mtls"], "unknown");
        assert!(t["mtls_reason"].as_str().unwrap().starts_with("handshake cut short by the capture"), "{t}");
    }
    // The untruncated twin reads whole.
    let full = json("tls-snaplen96-full.pcap", &[]);
    let versions: Vec<&str> = full.flows.iter().map(|f| f["tls"]["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["TLS 1.2", "TLS 1.3"]);
}

#[test]
fn failed_and_refused_handshakes_are_counted_as_failures_not_missed_handshakes() {
    let j = json("tls-alerts.pcap", &["--expect", "mtls"]);
    let s = &j.summary["servers"][0];
    assert_eq!(
        [&s["flows"], &s["tls_failed"], &s["mtls"], &s["tls_no_client_cert"], &s["tls_unverified"]]
            .map(|v| v.as_u64()),
        [Some(7), Some(7), Some(0), Some(0), Some(0)]
    );
    assert_eq!(
        s["reading"],
        "all 7 TLS handshakes failed (first: certificate_expired alert from the client)"
    );
    let reasons: Vec<&str> = j.summary["expectations"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "TLS handshake failed: certificate_expired alert from the client",
            "TLS handshake failed: unknown_ca alert from the client",
            "TLS handshake failed: unknown_ca alert from the server",
            "TLS handshake failed: handshake_failure alert from the server",
            "TLS handshake failed: refused by the server: protocol_version alert",
            "TLS handshake failed: refused by the server: handshake_failure alert",
            "TLS handshake failed: bad_certificate alert from the client",
        ]
    );
    assert_eq!(j.run.code, 1);
    let r = json("tls-reset-after-hello.pcap", &[]);
    let readings: Vec<&str> =
        r.summary["servers"].as_array().unwrap().iter().map(|s| s["reading"].as_str().unwrap()).collect();
    assert_eq!(
        readings,
        [
            "TLS handshake failed (refused by the server: reset after the ClientHello)",
            "TLS handshake failed (refused by the server, then a decode_error alert from the client)"
        ]
    );
}

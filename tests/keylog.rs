//! Decryption with NSS key logs (`--keylog`) on real handshakes: the TLS 1.3 calibration
//! captures of four stacks (captures/tls13-calib.md) and captures/make-decrypt.sh's TLS 1.2 and
//! TLS 1.3 captures (curl, OpenSSL s_server/s_client, nghttpd). Every expected value here was
//! checked against `tshark -o tls.keylog_file:...` on the same files.

mod common;

use common::{capture, json, tlspeek};
use serde_json::Value;

fn by_port(flows: &[Value], port: u16) -> &Value {
    flows
        .iter()
        .find(|f| f["client"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("no flow from port {port}"))
}

fn by_server_port(flows: &[Value], port: u16) -> &Value {
    flows
        .iter()
        .find(|f| f["server"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("no flow to port {port}"))
}

fn paths(f: &Value) -> Vec<&str> {
    f["http"]["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect()
}

fn keys(name: &str) -> String {
    capture(name).to_str().unwrap().to_string()
}

const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/calib-client";
const RSA_SUBJECT: &str = "CN=calib-client-rsa,O=tlspeek calibration";

/// (case, path, proven verdict, client identity, the inference it replaces).
const CASES: [(u16, &str, &str, Option<&str>, &str); 11] = [
    (1, "/case-1", "no", None, "unlikely"),
    (2, "/case-2", "yes", Some(SPIFFE), "likely"),
    (3, "/case-3", "yes", Some(RSA_SUBJECT), "likely"),
    (4, "/case-4", "no", None, "unlikely"),
    (5, "/case-5", "yes", Some(SPIFFE), "likely"),
    (6, "/case-6", "no", None, "unlikely"),
    (7, "/case-7", "yes", Some(SPIFFE), "likely"),
    (8, "/case-8", "unknown", None, "unknown"),
    (9, "/case-9", "yes", Some(SPIFFE), "likely"),
    (10, "/case-10", "no", None, "unlikely"),
    (80, "/case-8-full", "yes", Some(SPIFFE), "likely"),
];

#[test]
fn tls13_calibration_handshakes_are_decrypted_and_proven_on_every_stack() {
    for (stack, base, chain) in
        [("openssl", 41000, 2), ("python", 42000, 2), ("go", 43000, 1), ("rustls", 44000, 1)]
    {
        let j = json(
            &format!("tls13-calib-{stack}.pcap"),
            &["--keylog", &keys(&format!("tls13-calib-{stack}.keys"))],
        );
        assert_eq!(j.run.code, 0, "{stack}: {}", j.run.stderr);
        assert_eq!(j.flows.len(), CASES.len());
        for (case, path, verdict, who, inferred) in CASES {
            let f = by_port(&j.flows, base + case);
            let t = &f["tls"];
            let at = format!("{stack} case {case}");
            assert_eq!(f["protocol"], "tls", "{at}");
            assert_eq!(t["decryption"]["status"], "decrypted", "{at}: {}", t["decryption"]);
            assert_eq!(t["decryption"]["reason"], "decrypted with the key log", "{at}");
            assert_eq!(
                (t["decryption"]["handshake"].as_bool(), t["decryption"]["application"].as_bool()),
                (Some(true), Some(true)),
                "{at}"
            );
            assert_eq!(t["mtls"], verdict, "{at}: {}", t["mtls_reason"]);
            assert!(t["mtls_reason"].as_str().unwrap().ends_with("; proven with the key log"), "{at}");
            assert_eq!(t["mtls_inferred"]["verdict"], inferred, "{at}");
            assert!(t["mtls_inferred"]["reason"].as_str().unwrap().starts_with("TLS 1.3"), "{at}");
            match who {
                Some(id) => {
                    assert_eq!(
                        t["mtls_reason"],
                        format!("client sent a certificate ({id}); proven with the key log"),
                        "{at}"
                    );
                    assert_eq!(t["client_certs"].as_array().unwrap().len(), chain, "{at}");
                }
                None => assert_eq!(t["client_certs"].as_array().unwrap().len(), 0, "{at}"),
            }
            let empty = matches!(case, 4 | 10);
            assert_eq!(t["client_cert_empty"], empty, "{at}");
            assert_eq!(t["client_cert_requested"], !matches!(case, 1 | 6 | 8), "{at}");
            // The server's chain, decrypted: none in a PSK resumption.
            let server = t["server_certs"].as_array().unwrap();
            assert_eq!(server.is_empty(), case == 8, "{at}");
            if case != 8 {
                assert_eq!(server[0]["subject"], "CN=calib.test,O=tlspeek calibration", "{at}");
            }
            assert_eq!(t["hello_retry_request"], case == 9, "{at}");
            // Inside the tunnel: the GET and its 200, and close_notify both ways (decrypted).
            assert_eq!(paths(f), [path], "{at}");
            assert_eq!(f["http"]["responses"][0]["status"], 200, "{at}");
            let alerts: Vec<(&str, &str)> = t["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["from"].as_str().unwrap(), a["description"].as_str().unwrap()))
                .collect();
            assert!(
                alerts.contains(&("client", "close_notify")) && alerts.contains(&("server", "close_notify")),
                "{at}: {alerts:?}"
            );
            assert_eq!(f["warnings"], serde_json::json!([]), "{at}");
        }
        // The per-server reading says the verdicts were proven, not inferred.
        assert_eq!(
            j.summary["servers"][0]["reading"],
            "mixed mutual TLS and TLS without client certificates; proven with the key log; 1 TLS flows unverified",
            "{stack}"
        );
    }
}

#[test]
fn without_a_key_log_nothing_changes() {
    let j = json("tls13-calib-rustls.pcap", &[]);
    for f in &j.flows {
        assert_eq!(f["tls"]["decryption"], Value::Null);
        assert_eq!(f["tls"]["mtls_inferred"], Value::Null);
        assert_eq!(f["http"], Value::Null);
    }
    assert_eq!(by_port(&j.flows, 44002)["tls"]["mtls"], "likely");
}

#[test]
fn tls12_aead_suites_are_decrypted_and_cbc_is_named() {
    let j = json("decrypt-tls12.pcap", &["--keylog", &keys("decrypt-tls12.keys")]);
    assert_eq!(j.flows.len(), 4);
    for (port, cipher, path) in [
        (46001, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "/tls12-aes128"),
        (46002, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "/tls12-mtls"),
        (46003, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "/tls12-chacha"),
    ] {
        let f = by_port(&j.flows, port);
        let t = &f["tls"];
        assert_eq!((t["version"].as_str(), t["cipher"].as_str()), (Some("TLS 1.2"), Some(cipher)));
        assert_eq!(t["decryption"]["status"], "decrypted", "{port}: {}", t["decryption"]);
        assert_eq!(t["decryption"]["handshake"], true);
        assert_eq!(t["decryption"]["application"], true);
        assert_eq!(paths(f), [path]);
        assert_eq!(f["http"]["responses"][0]["status"], 200);
        // TLS 1.2 verdicts are seen in cleartext: no inference replaced.
        assert_eq!(t["mtls_inferred"], Value::Null);
        assert_eq!(f["warnings"], serde_json::json!([]));
    }
    let t = &by_port(&j.flows, 46002)["tls"];
    assert_eq!(
        (t["mtls"].as_str(), t["mtls_reason"].as_str()),
        (Some("yes"), Some(&*format!("client sent a certificate ({SPIFFE})")))
    );
    let f = by_port(&j.flows, 46004);
    assert_eq!(f["tls"]["cipher"], "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
    assert_eq!(f["tls"]["decryption"]["status"], "unsupported_cipher");
    assert_eq!(
        f["tls"]["decryption"]["reason"],
        "cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 is not decrypted by tlspeek (AES-GCM and ChaCha20-Poly1305 only)"
    );
    assert_eq!(f["http"], Value::Null);
}

#[test]
fn tls13_h2_alpn_client_certificate_and_key_update() {
    let j = json("decrypt-tls13.pcap", &["--keylog", &keys("decrypt-tls13.keys")]);
    assert_eq!(j.flows.len(), 5);
    // curl --http2 to nghttpd: ALPN h2 from the decrypted EncryptedExtensions, HTTP/2 inside.
    let f = by_port(&j.flows, 46101);
    assert_eq!(f["protocol"], "tls");
    assert_eq!(f["tls"]["alpn_selected"], "h2");
    assert_eq!(f["tls"]["decryption"]["status"], "decrypted");
    assert_eq!(f["tls"]["mtls"], "no");
    assert_eq!(
        f["tls"]["mtls_reason"],
        "server did not request a client certificate; proven with the key log"
    );
    assert_eq!(paths(f), ["/h2-inside"]);
    assert_eq!(f["http"]["requests"][0]["stream"], 1);
    assert_eq!(f["http"]["requests"][0]["host"], "calib.test:8445");
    assert_eq!(f["http"]["responses"][0]["status"], 200);
    assert!(f["http"]["http2"].is_object());
    // curl --http1.1 with a client certificate to s_server -alpn http/1.1 -Verify 1.
    let f = by_port(&j.flows, 46102);
    let t = &f["tls"];
    assert_eq!(
        (t["cipher"].as_str(), t["alpn_selected"].as_str()),
        (Some("TLS_AES_256_GCM_SHA384"), Some("http/1.1"))
    );
    assert_eq!(t["mtls"], "yes");
    assert_eq!(t["client_certs"][0]["san_uris"], serde_json::json!([SPIFFE]));
    assert_eq!(paths(f), ["/tls13-mtls"]);
    // Decrypted credentials stay redacted (and appear with --show-secrets only).
    let auth = |f: &Value| {
        f["http"]["requests"][0]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "Authorization")
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(auth(f).as_deref(), Some("<redacted 25 bytes>"));
    assert!(!j.run.stdout.contains("tlspeek-test-token"));
    let shown = json("decrypt-tls13.pcap", &["--keylog", &keys("decrypt-tls13.keys"), "--show-secrets"]);
    assert_eq!(auth(by_port(&shown.flows, 46102)).as_deref(), Some("Bearer tlspeek-test-token"));
    // s_client 'K': a KeyUpdate between two requests; both decrypted, and the close_notify of
    // each side after it too.
    let f = by_server_port(&j.flows, 8447);
    assert_eq!(f["tls"]["cipher"], "TLS_CHACHA20_POLY1305_SHA256");
    assert_eq!(f["tls"]["decryption"]["status"], "decrypted");
    assert_eq!(paths(f), ["/before-keyupdate", "/after-keyupdate"]);
    let alerts = f["tls"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    // 0-RTT: the resumed connection's request went as early data (CLIENT_EARLY_TRAFFIC_SECRET),
    // before the ServerHello; EndOfEarlyData then switched to the handshake key.
    let to_8448: Vec<&Value> =
        j.flows.iter().filter(|f| f["server"].as_str().unwrap().ends_with(":8448")).collect();
    assert_eq!(to_8448.len(), 2);
    let (full, resumed) = (to_8448[0], to_8448[1]);
    assert_eq!(full["tls"]["resumption"], Value::Null);
    assert_eq!(full["tls"]["decryption"]["application"], false);
    assert_eq!(resumed["tls"]["resumption"], "psk");
    assert_eq!(resumed["tls"]["decryption"]["status"], "decrypted");
    assert_eq!(paths(resumed), ["/early-data"]);
    assert_eq!(resumed["warnings"], serde_json::json!([]));
}

/// A key log rewritten by `edit` (one line at a time; None drops it), in a temporary file.
fn edited_keys(name: &str, edit: impl Fn(&str) -> Option<String>) -> tempfile_path::Path {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let text = std::fs::read_to_string(capture(name)).unwrap();
    let out: String = text.lines().filter_map(&edit).map(|l| l + "\n").collect();
    tempfile_path::write(&format!("{name}-{n}"), &out)
}

mod tempfile_path {
    /// A file under the system temporary directory, removed on drop.
    pub struct Path(pub std::path::PathBuf);
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    impl Path {
        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    pub fn write(name: &str, text: &str) -> Path {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("tlspeek-test-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        Path(p)
    }
}

#[test]
fn a_wrong_key_fails_with_a_warning_and_the_inference_stays() {
    // Every secret with its last hex digit changed: the randoms match, the keys do not.
    let bad = edited_keys("tls13-calib-openssl.keys", |l| {
        if l.starts_with('#') {
            return Some(l.into());
        }
        let mut s = l.to_string();
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        Some(s)
    });
    let j = json("tls13-calib-openssl.pcap", &["--keylog", bad.as_str()]);
    assert_eq!(j.run.code, 0);
    assert_eq!(j.run.stderr, "", "a mode 600 key log with good lines: nothing on stderr");
    let f = by_port(&j.flows, 41002);
    let t = &f["tls"];
    assert_eq!(t["decryption"]["status"], "failed");
    assert_eq!(t["decryption"]["handshake"], false);
    assert_eq!(t["mtls"], "likely", "falls back to the inference");
    assert_eq!(t["mtls_inferred"], Value::Null);
    assert_eq!(f["http"], Value::Null);
    let w = f["warnings"].as_array().unwrap();
    assert!(
        w.iter().any(|w| w.as_str().unwrap().starts_with(
            "tls: a server record did not authenticate with the key log's secrets (wrong key log?)"
        )),
        "{w:?}"
    );
}

#[test]
fn missing_lines_give_partial_or_no_keys() {
    // Handshake secrets only: the handshake is decrypted and the verdict proven, the
    // application data is not.
    let hs_only = edited_keys("tls13-calib-go.keys", |l| (!l.contains("TRAFFIC_SECRET_0")).then(|| l.into()));
    let j = json("tls13-calib-go.pcap", &["--keylog", hs_only.as_str()]);
    let t = &by_port(&j.flows, 43002)["tls"];
    assert_eq!(t["decryption"]["status"], "partial");
    assert_eq!(
        t["decryption"]["reason"],
        "the key log lacks CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0 for this connection"
    );
    assert_eq!(t["decryption"]["application"], false);
    assert_eq!(t["mtls"], "yes");
    // Another capture's key log: no line for these client randoms.
    let j = json("tls13-calib-go.pcap", &["--keylog", &keys("tls13-calib-rustls.keys")]);
    for f in &j.flows {
        assert_eq!(f["tls"]["decryption"]["status"], "no_keys");
        assert_eq!(
            f["tls"]["decryption"]["reason"],
            "the key log has no line for this connection's client random"
        );
        assert!(!f["tls"]["mtls_reason"].as_str().unwrap().contains("proven"));
    }
}

#[test]
fn key_log_files_are_checked() {
    let cap = capture("tls13-calib-go.pcap");
    let cap = cap.to_str().unwrap();
    let r = tlspeek(&["-r", cap, "--keylog", "/dev/null"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "tlspeek: key log /dev/null is not a regular file; give the file the TLS stack writes\n"
    );
    let r = tlspeek(&["-r", cap, "--keylog", "/nonexistent/keys"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("tlspeek: cannot read key log /nonexistent/keys: "), "{}", r.stderr);
    // Bad lines are counted once; the good ones still work. Secrets are never printed.
    let messy = edited_keys("tls13-calib-go.keys", |l| Some(format!("{l}\r\nnot a key line")));
    let r = tlspeek(&["-r", cap, "--keylog", messy.as_str(), "--json"]);
    assert_eq!(r.code, 0);
    let lines = std::fs::read_to_string(capture("tls13-calib-go.keys")).unwrap().lines().count();
    assert_eq!(
        r.stderr,
        format!("tlspeek: warning: key log {}: {lines} line(s) not understood (first at line 2); they are ignored\n", messy.as_str())
    );
    assert!(r.stdout.contains("\"status\":\"decrypted\""));
    let r = tlspeek(&["-r", cap, "--keylog", messy.as_str(), "-q"]);
    assert_eq!(r.stderr, "", "-q: lines not understood are not said");
    let secret = std::fs::read_to_string(capture("tls13-calib-go.keys")).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("CLIENT_TRAFFIC"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(!r.stdout.contains(&secret) && !r.stderr.contains(&secret));
    // Readable by others: a warning (the file itself is used).
    let open = edited_keys("tls13-calib-go.keys", |l| Some(l.into()));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open.0, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = tlspeek(&["-r", cap, "--keylog", open.as_str(), "-q"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stderr,
        format!("tlspeek: warning: key log {} is readable by other users (chmod 600 it): it decrypts every connection it lists\n", open.as_str())
    );
}

#[test]
fn the_table_says_what_was_proven_and_what_was_not_decrypted() {
    let cap = capture("decrypt-tls12.pcap");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--keylog", &keys("decrypt-tls12.keys"), "-q"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains(
            "    decryption unsupported_cipher: cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 is not decrypted by tlspeek (AES-GCM and ChaCha20-Poly1305 only)\n"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("    GET /tls12-chacha → 200"), "{}", r.stdout);
    let cap = capture("tls13-calib-python.pcap");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--keylog", &keys("tls13-calib-python.keys"), "-q"]);
    assert!(
        r.stdout.contains(&format!(
            "    mtls yes: client sent a certificate ({SPIFFE}); proven with the key log\n"
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("decryption "), "every flow decrypted: no line");
}

#[test]
fn one_wrong_or_missing_secret_is_told_apart() {
    // captures/keylog.md: keylog-wrong.keys changes one secret of a flow, keylog-partial.keys
    // leaves some lines out (make-keylog.sh; the truth is tshark's, scripts/keylog-check.py).
    let wrong = json("keylog-tls13.pcap", &["--keylog", &keys("keylog-wrong.keys")]);
    // SERVER_HANDSHAKE_TRAFFIC_SECRET wrong: the server's certificates stay hidden, the
    // application data decrypts.
    let t = &by_port(&wrong.flows, 52001)["tls"];
    assert_eq!(t["decryption"]["status"], "failed");
    assert_eq!(t["decryption"]["handshake"], false);
    assert_eq!(t["decryption"]["application"], true);
    assert_eq!(t["server_certs"], serde_json::json!([]));
    // CLIENT_TRAFFIC_SECRET_0 wrong: the handshake (an empty client Certificate) is proven, the
    // client's request is not read.
    let f = by_port(&wrong.flows, 52005);
    assert_eq!(f["tls"]["decryption"]["status"], "failed");
    assert_eq!(f["tls"]["decryption"]["handshake"], true);
    assert_eq!(f["tls"]["client_cert_empty"], true);
    assert_eq!(f["tls"]["mtls"], "no");
    assert!(f["http"].is_null() || paths(f).is_empty(), "{}", f["http"]);

    let partial = json("keylog-tls13.pcap", &["--keylog", &keys("keylog-partial.keys")]);
    // CLIENT_HANDSHAKE_TRAFFIC_SECRET missing: not a wrong key; the client's certificate stays
    // hidden (no proof), its request is read with the application secret.
    let f = by_port(&partial.flows, 52004);
    assert_eq!(f["tls"]["decryption"]["status"], "partial");
    assert_eq!(
        f["tls"]["decryption"]["reason"],
        "the key log lacks CLIENT_HANDSHAKE_TRAFFIC_SECRET for this connection"
    );
    assert_eq!(f["tls"]["decryption"]["handshake"], false);
    assert_eq!(f["tls"]["client_certs"], serde_json::json!([]));
    assert_eq!(f["tls"]["mtls"], "likely", "the inference, not a proof");
    assert_eq!(paths(f), ["/k13-mtls-spiffe"]);
    // CLIENT_EARLY_TRAFFIC_SECRET missing: the 0-RTT request is skipped, the rest decrypted.
    let f = by_port(&partial.flows, 52009);
    assert_eq!(f["tls"]["decryption"]["status"], "partial");
    assert_eq!(
        f["tls"]["decryption"]["reason"],
        "the key log lacks CLIENT_EARLY_TRAFFIC_SECRET for this connection"
    );
    assert_eq!(f["tls"]["decryption"]["handshake"], true);
    assert_eq!(paths(f), ["/k13-after-early-data"]);
    assert_eq!(f["warnings"], serde_json::json!([]));
}

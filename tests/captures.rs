//! Runs the built binary on every capture in captures/ and asserts exact fields.
//! What each capture holds is described in captures/README.md.

mod common;

use common::{capture, json, one, strings, tlspeek, tlspeek_stdin};
use serde_json::Value;

const ISTIO_SNI: &str = "outbound_.9080_._.reviews.default.svc.cluster.local";
const REVIEWS_SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const PRODUCTPAGE_SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/productpage";
/// Secret values sent in captures/http-keepalive-sidecar.pcap (see tools/peer.py).
const SECRET_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.SIG-7c1d";
const SECRET_COOKIE: &str = "s3ss10n-c00k1e-4242";

/// The TLS 1.2 mTLS flow of tls12-mtls-istio.pcap and its variants.
fn assert_istio_mtls(f: &Value) {
    let t = &f["tls"];
    assert_eq!(f["protocol"], "tls");
    assert_eq!(f["server"], "10.99.0.1:9080");
    assert_eq!(t["version"], "TLS 1.2");
    assert_eq!(t["sni"], ISTIO_SNI);
    assert_eq!(strings(&t["alpn_offered"]), ["istio-peer-exchange", "istio"]);
    assert_eq!(t["alpn_selected"], "istio-peer-exchange");
    assert_eq!(t["cipher"], "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    let leaf = &t["server_certs"][0];
    assert_eq!(leaf["subject"], "CN=reviews,O=cluster.local");
    assert_eq!(leaf["issuer"], "CN=cluster.local root,O=cluster.local");
    assert_eq!(strings(&leaf["san_uris"]), [REVIEWS_SPIFFE]);
    assert_eq!(strings(&leaf["san_dns"]), ["reviews.default.svc.cluster.local"]);
    assert_eq!(leaf["expired"], false);
    assert_eq!(t["client_cert_requested"], true);
    assert_eq!(t["client_certs"][0]["subject"], "CN=productpage,O=cluster.local");
    assert_eq!(strings(&t["client_certs"][0]["san_uris"]), [PRODUCTPAGE_SPIFFE]);
    assert_eq!(t["mtls"], "yes");
    assert_eq!(t["mtls_reason"], format!("client sent a certificate ({PRODUCTPAGE_SPIFFE})"));
    let i = &f["istio"];
    assert_eq!(i["sni"]["service"], "reviews");
    assert_eq!(i["sni"]["namespace"], "default");
    assert_eq!(i["sni"]["port"], 9080);
    assert_eq!(i["sni"]["subset"], Value::Null);
    assert_eq!(i["alpn"]["app_protocol"], "tcp");
    assert_eq!(i["server_identity"]["service_account"], "reviews");
    assert_eq!(i["client_identity"]["service_account"], "productpage");
    assert_eq!(i["client_identity"]["trust_domain"], "cluster.local");
}

/// The keep-alive session of http-keepalive-sidecar.pcap (paths and sidecar headers).
fn assert_sidecar_http(f: &Value, paths: &[&str]) {
    assert_eq!(f["protocol"], "http");
    let h = &f["http"];
    let got: Vec<(&str, &str)> = h["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    let all = [("GET", "/reviews/0"), ("GET", "/ratings/1"), ("POST", "/reviews/0/vote")];
    let want: Vec<(&str, &str)> = all.iter().copied().filter(|(_, p)| paths.contains(p)).collect();
    assert_eq!(got, want);
    for r in h["requests"].as_array().unwrap() {
        assert_eq!(r["host"], "reviews:9080");
        assert_eq!(r["version"], "HTTP/1.1");
        let names: Vec<&str> =
            r["headers"].as_array().unwrap().iter().map(|kv| kv[0].as_str().unwrap()).collect();
        for n in ["x-forwarded-proto", "x-request-id", "x-envoy-peer-metadata", "x-b3-traceid"] {
            assert!(names.contains(&n), "{n} missing in {names:?}");
        }
    }
    let statuses: Vec<u64> =
        h["responses"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200; paths.len()]);
}

#[test]
fn tls12_server_only() {
    let j = json("tls12-server-only.pcap", &[]);
    assert_eq!(j.run.code, 0);
    let f = one(&j.flows, "tls");
    assert_eq!(f["istio"], Value::Null, "no Istio signal in a plain TLS flow");
    assert_eq!(f["event"], "ended", "files give one final line per flow");
    let t = &f["tls"];
    assert_eq!(
        (f["client"].as_str(), f["server"].as_str(), f["client_by"].as_str()),
        (Some("10.99.0.2:33454"), Some("10.99.0.1:443"), Some("syn"))
    );
    assert_eq!(t["version"], "TLS 1.2");
    assert_eq!(t["sni"], "api.example.test");
    assert_eq!(strings(&t["alpn_offered"]), ["h2", "http/1.1"]);
    assert_eq!(t["alpn_selected"], "http/1.1");
    assert_eq!(t["server_certs"][0]["subject"], "CN=api.example.test,O=Example Test");
    assert_eq!(strings(&t["server_certs"][0]["san_ips"]), ["10.99.0.1"]);
    assert_eq!(t["client_cert_requested"], false);
    assert_eq!(t["mtls"], "no");
    assert_eq!(t["mtls_reason"], "server did not request a client certificate");
    assert_eq!(j.summary["non_tcp"]["arp"], 2);
}

#[test]
fn tls12_mtls_istio_and_its_link_and_format_variants() {
    for cap in [
        "tls12-mtls-istio.pcap",
        "raw-ip.pcap",
        "tls12-nanosecond.pcap",
        "tls12-mtls-reordered.pcap",
        "tls12-mtls-duplicated.pcap",
    ] {
        let j = json(cap, &[]);
        assert_eq!(j.flows.len(), 1, "{cap}");
        assert_istio_mtls(&j.flows[0]);
        assert_eq!(j.flows[0]["client"], "10.99.0.2:57786", "{cap}");
    }
    let j = json("tls12-nanosecond.pcap", &[]);
    let ts = j.flows[0]["first_ts"].as_str().unwrap();
    // Nine fractional digits: the file's nanoseconds are kept.
    assert!(ts.ends_with('Z') && ts.len() == "2026-11-23T04:44:00.000000123Z".len(), "{ts}");
    assert!(strings(&json("tls12-mtls-reordered.pcap", &[]).flows[0]["flags"])
        .contains(&"out_of_order".to_string()));
    let dup = json("tls12-mtls-duplicated.pcap", &[]);
    assert_eq!(strings(&dup.flows[0]["flags"]), ["retransmission"]);
}

/// Regression: a TLS flow is no longer read once its handshake was (its directions are
/// bypassed), and its retransmissions went unflagged. Here the server's stack retransmits ten
/// 1,448-byte segments of a 120 KB reply that the client's namespace dropped, all after the
/// handshake (captures/make-retransmit.sh); tshark marks the same flow.
#[test]
fn retransmissions_after_the_tls_handshake_are_flagged() {
    let j = json("tls12-bulk-retransmit.pcap", &[]);
    let f = one(&j.flows, "tls");
    assert_eq!(f["tls"]["version"], "TLS 1.2");
    assert_eq!(f["tls"]["sni"], "api.example.test");
    // (`reset`: the client's close_notify reached a server that had already closed.)
    assert_eq!(strings(&f["flags"]), ["retransmission", "reset"]);
    // On the wire: 121,517 bytes of TLS records and 10 x 1,448 bytes sent again.
    assert_eq!(f["bytes"]["server"], 121_517 + 10 * 1448);
    assert_eq!(f["packets"]["server"], 104);
}

/// A connection attempt sent again (the same SYN, never answered) is a retransmission too: the
/// flag is what tells such a flow from a single lost SYN (captures/make-retransmit.sh).
#[test]
fn an_unanswered_syn_sent_again_is_flagged() {
    let j = json("tcp-syn-retried.pcap", &[]);
    assert_eq!(j.flows.len(), 1);
    let f = &j.flows[0];
    assert_eq!((f["client"].as_str(), f["server"].as_str()), (Some("10.98.0.2:40200"), Some("10.98.0.1:9")));
    assert_eq!(f["protocol"], "unknown");
    assert_eq!(strings(&f["flags"]), ["retransmission"]);
    assert_eq!((f["packets"]["client"].as_u64(), f["packets"]["server"].as_u64()), (Some(4), Some(0)));
}

#[test]
fn tls13_with_and_without_client_certificate() {
    // Python ssl (OpenSSL 3.0) on both ends; the client sends Certificate, CertificateVerify and
    // Finished in separate records.
    let want = [
        ("tls13-no-client-cert.pcap", "unlikely", vec![69, 24], "TLS 1.3: client's first encrypted records 69, 24 bytes; the first (69) is a Finished alone: no client certificate was sent"),
        ("tls13-mtls.pcap", "likely", vec![450, 97, 69, 24], "TLS 1.3: client's first encrypted records 450, 97, 69, 24 bytes; the first (450) is 381 bytes more than a Finished alone (69): it carries a client certificate"),
    ];
    for (cap, mtls, records, reason) in want {
        let j = json(cap, &[]);
        let t = &one(&j.flows, "tls")["tls"];
        assert_eq!(t["version"], "TLS 1.3");
        assert_eq!(strings(&t["versions_offered"]), ["TLS 1.3"]);
        assert_eq!(t["sni"], ISTIO_SNI);
        assert_eq!(strings(&t["alpn_offered"]), ["istio-http/1.1", "istio", "h2"]);
        assert_eq!(t["alpn_selected"], Value::Null);
        assert_eq!(t["cipher"], "TLS_AES_256_GCM_SHA384");
        assert_eq!(t["server_certs"], serde_json::json!([]));
        assert_eq!(t["mtls"], mtls);
        assert_eq!(t["mtls_reason"], reason);
        assert_eq!(t["client_encrypted_records"], serde_json::json!(records));
    }
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let j = json("tls12-expired-cert.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    let c = &j.flows[0]["tls"]["server_certs"][0];
    assert_eq!(j.flows[0]["tls"]["sni"], "expired.example.test");
    assert_eq!(
        (c["not_before"].as_str(), c["not_after"].as_str()),
        (Some("2020-01-01T00:00:00Z"), Some("2021-01-01T00:00:00Z"))
    );
    assert_eq!((c["expired"].as_bool(), c["not_yet_valid"].as_bool()), (Some(true), Some(false)));
    let c = &j.flows[1]["tls"]["server_certs"][0];
    assert_eq!(c["subject"], "CN=future.example.test,O=Example Test");
    assert_eq!((c["expired"].as_bool(), c["not_yet_valid"].as_bool()), (Some(false), Some(true)));
    let table = tlspeek(&["-r", capture("tls12-expired-cert.pcap").to_str().unwrap()]).stdout;
    assert!(table.contains("CN=expired.example.test,O=Example Test EXPIRED"), "{table}");
    assert!(table.contains("NOT-YET-VALID"));
    assert_eq!(strings(&j.flows[0]["flags"]), ["cert_expired"]);
    assert_eq!(strings(&j.flows[1]["flags"]), ["cert_not_yet_valid"]);
    assert_eq!(
        j.flows[0]["warnings"][0],
        "server certificate CN=expired.example.test,O=Example Test had expired at capture time (not after 2021-01-01T00:00:00Z)"
    );
    assert_eq!(j.summary["cert_warnings"], 2);
}

#[test]
fn certificate_chain_over_many_small_segments() {
    let j = json("tls12-small-mtu-chain.pcap", &[]);
    let f = one(&j.flows, "tls");
    assert!(f["packets"]["server"].as_u64().unwrap() >= 15, "{}", f["packets"]);
    let subjects: Vec<&str> =
        f["tls"]["server_certs"].as_array().unwrap().iter().map(|c| c["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        [
            "CN=big.example.test,O=Big Test",
            "CN=Big Test Intermediate CA,O=Big Test",
            "CN=Big Test Root CA,O=Big Test"
        ]
    );
    assert_eq!(f["tls"]["server_certs"][0]["san_dns"].as_array().unwrap().len(), 40);
    assert_eq!(f["tls"]["sni"], "big.example.test");
}

#[test]
fn plaintext_http_keepalive_with_sidecar_headers_and_redacted_secrets() {
    let all = ["/reviews/0", "/ratings/1", "/reviews/0/vote"];
    for cap in ["http-keepalive-sidecar.pcap", "vlan-qinq.pcap", "http-bigendian.pcap", "ipv4-fragments.pcap"]
    {
        let j = json(cap, &[]);
        assert_eq!(j.flows.len(), 1, "{cap}");
        assert_sidecar_http(&j.flows[0], &all);
        assert!(!j.run.stdout.contains(SECRET_TOKEN) && !j.run.stdout.contains(SECRET_COOKIE), "{cap} leaks");
    }
    let j = json("http-keepalive-sidecar.pcap", &[]);
    // The sidecar's peer identity headers are read. (Captures made before tools/peer.py was fixed
    // carry a malformed protobuf blob, which is refused: null.)
    assert_eq!(
        j.flows[0]["istio"]["peer_metadata_id"],
        "sidecar~10.99.0.2~productpage-v1-abc.default~default.svc.cluster.local"
    );
    let md = &j.flows[0]["istio"]["peer_metadata"];
    if !md.is_null() {
        assert_eq!(
            (md["NAME"].as_str(), md["LABELS"]["app"].as_str()),
            (Some("productpage-v1-abc"), Some("productpage"))
        );
    }
    let hdrs = &j.flows[0]["http"]["requests"][1]["headers"];
    let auth = hdrs.as_array().unwrap().iter().find(|kv| kv[0] == "Authorization").unwrap();
    assert_eq!(auth[1], format!("<redacted {} bytes>", "Bearer ".len() + SECRET_TOKEN.len()));
    let table = tlspeek(&["-r", capture("http-keepalive-sidecar.pcap").to_str().unwrap()]);
    assert!(!table.stdout.contains(SECRET_TOKEN) && !table.stderr.contains(SECRET_TOKEN));
    assert!(table.stdout.contains("plaintext"));
    let shown = json("http-keepalive-sidecar.pcap", &["--show-secrets"]);
    assert!(shown.run.stdout.contains(SECRET_TOKEN) && shown.run.stdout.contains(SECRET_COOKIE));
    assert_eq!(json("ipv4-fragments.pcap", &[]).summary["ip_fragments"]["reassembled"], 1);
}

#[test]
fn http_overlap_conflict_keeps_first_copy_and_flags_it() {
    let j = json("http-overlap-conflict.pcap", &[]);
    assert_sidecar_http(&j.flows[0], &["/reviews/0", "/ratings/1", "/reviews/0/vote"]);
    assert!(strings(&j.flows[0]["flags"]).contains(&"overlap_conflict".to_string()));
    assert!(!j.run.stdout.contains("/hacked/00"));
}

#[test]
fn captures_that_start_mid_stream() {
    let j = json("http-midstream.pcap", &[]);
    let f = &j.flows[0];
    assert_sidecar_http(f, &["/ratings/1", "/reviews/0/vote"]);
    assert_eq!(
        (f["client_by"].as_str(), f["client"].as_str()),
        (Some("http_request"), Some("10.99.0.2:47968"))
    );
    assert_eq!(strings(&f["flags"]), ["midstream"]);
    let j = json("tls-midstream.pcap", &[]);
    let f = one(&j.flows, "tls");
    assert_eq!((f["client_by"].as_str(), f["server"].as_str()), (Some("port"), Some("10.99.0.1:443")));
    assert_eq!(f["tls"]["sni"], Value::Null);
    assert_eq!(f["tls"]["mtls"], "unknown");
}

#[test]
fn sll2_any_capture_with_veth_tls_and_loopback_http() {
    let j = json("any-sll2.pcap", &[]);
    assert_istio_mtls(one(&j.flows, "tls"));
    let h = one(&j.flows, "http");
    assert_eq!(h["server"], "127.0.0.1:8080");
    assert_sidecar_http(h, &["/reviews/0", "/ratings/1", "/reviews/0/vote"]);
}

#[test]
fn ipv6_tls_and_http() {
    let j = json("ipv6-tls-http.pcap", &[]);
    let t = one(&j.flows, "tls");
    assert_eq!(
        (t["client"].as_str(), t["server"].as_str()),
        (Some("[fd00:99::2]:34902"), Some("[fd00:99::1]:443"))
    );
    assert_eq!(t["tls"]["sni"], "api.example.test");
    assert_eq!(t["tls"]["version"], "TLS 1.3");
    assert_eq!(one(&j.flows, "http")["server"], "[fd00:99::1]:9080");
}

#[test]
fn null_loopback_and_multi_interface_pcapng() {
    let j = json("null-loopback.pcap", &[]);
    assert_eq!(one(&j.flows, "tls")["tls"]["sni"], "api.example.test");
    assert_eq!(j.summary["non_tcp"], serde_json::json!({}));
    let j = json("pcapng-multi-if.pcapng", &[]);
    assert_eq!(one(&j.flows, "tls")["tls"]["alpn_selected"], "http/1.1");
    assert_sidecar_http(one(&j.flows, "http"), &["/reviews/0", "/ratings/1", "/reviews/0/vote"]);
}

#[test]
fn smtp_plaintext_and_starttls() {
    let j = json("plaintext-other.pcap", &[]);
    let u = one(&j.flows, "unknown");
    assert!(u["preview"]["client"].as_str().unwrap().starts_with("EHLO client.example.test\r\n"));
    assert!(u["preview"]["server"].as_str().unwrap().starts_with("220 mail.example.test ESMTP ready"));
    let t = one(&j.flows, "tls");
    assert_eq!(t["server"], "10.99.0.1:25");
    assert_eq!(t["tls"]["sni"], "mail.example.test");
}

#[test]
fn http_connect_then_tls_with_proxy_credentials_redacted() {
    let j = json("http-connect-tls.pcap", &[]);
    let f = one(&j.flows, "tls");
    assert_eq!(f["tls"]["sni"], "db.example.test");
    assert_eq!(f["tls"]["server_certs"][0]["subject"], "CN=api.example.test,O=Example Test");
    assert_eq!(f["http"]["requests"][0]["method"], "CONNECT");
    assert_eq!(f["http"]["requests"][0]["path"], "10.99.0.1:8443");
    assert_eq!(f["http"]["upgrade"], "tunnel");
    assert!(!j.run.stdout.contains("cHJveHl1c2VyOnByb3h5cGFzcw=="));
    assert!(!j.run.stdout.contains("GET /secret"), "the tunnelled request is encrypted");
}

#[test]
fn h2c_prior_knowledge() {
    let j = json("h2c.pcap", &[]);
    let f = one(&j.flows, "h2c");
    assert_eq!(f["h2c"], "prior_knowledge");
    assert_eq!(f["server"], "10.99.0.1:8080");
}

#[test]
fn h2c_by_upgrade_keeps_the_http1_request() {
    let j = json("h2c-upgrade.pcap", &[]);
    let f = one(&j.flows, "h2c");
    assert_eq!(f["h2c"], "upgrade");
    assert_eq!(f["http"]["upgrade"], "h2c");
    assert_eq!(f["http"]["requests"][0]["path"], "/productpage");
    assert_eq!(f["http"]["responses"][0]["status"], 101);
}

#[test]
fn snaplen_truncated_packets_are_used_and_flagged() {
    let j = json("tls12-truncated-snaplen.pcap", &[]);
    let f = one(&j.flows, "tls");
    assert_eq!(strings(&f["flags"]), ["truncated", "gap"]);
    assert_eq!(f["tls"]["version"], "TLS 1.2");
    assert_eq!(f["tls"]["alpn_selected"], "istio-peer-exchange");
}

#[test]
fn damaged_inputs_give_one_line_errors_exit_2_and_partial_results() {
    let j = json("tls-cut-short.pcap", &[]);
    assert_eq!(j.run.code, 2);
    let f = one(&j.flows, "tls");
    assert_eq!(f["tls"]["sni"], ISTIO_SNI);
    let err = j.summary["errors"][0].as_str().unwrap();
    assert!(
        err.ends_with(
            "tls-cut-short.pcap: file cut short at byte 1901: packet record needs 66 bytes, 33 left"
        ),
        "{err}"
    );
    assert_eq!(j.run.stderr.lines().count(), 1, "{}", j.run.stderr);
    let j = json("not-a-capture.pcap", &[]);
    assert_eq!(j.run.code, 2);
    assert!(j
        .run
        .stderr
        .trim_end()
        .ends_with("not-a-capture.pcap: not a pcap or pcapng file (starts with 54 68 69 73)"));
    let missing = tlspeek(&["-r", "/nonexistent/x.pcap"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("/nonexistent/x.pcap: cannot read"), "{}", missing.stderr);
}

#[test]
fn several_inputs_number_flows_across_files() {
    let a = capture("tls12-server-only.pcap");
    let b = capture("h2c.pcap");
    let r = tlspeek(&["-r", a.to_str().unwrap(), "-r", b.to_str().unwrap(), "--json"]);
    let lines: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    // Ids are packet numbers counted across the inputs: tls12-server-only.pcap has 18 packets
    // (an ARP request and reply first, so its flow starts at packet 3); h2c.pcap's flow starts
    // at its first packet, number 19.
    assert_eq!((lines[0]["id"].as_u64(), lines[1]["id"].as_u64()), (Some(3), Some(19)));
    assert!(lines[1]["source"].as_str().unwrap().ends_with("h2c.pcap"));
    assert_eq!(lines[2]["flows"], 2);
}

#[test]
fn standard_input() {
    let bytes = std::fs::read(capture("tls12-server-only.pcap")).unwrap();
    let out = tlspeek_stdin(&["-r", "-", "--json"], &bytes);
    let first: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["source"].as_str(), first["tls"]["sni"].as_str()),
        (Some("-"), Some("api.example.test"))
    );
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let cap = capture("http-keepalive-sidecar.pcap");
    let mut args = vec!["--json".to_string()];
    for _ in 0..400 {
        args.push("-r".into());
        args.push(cap.to_string_lossy().into_owned());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap(); // like `head -1`
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("{\"type\":\"flow\""));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn interface_list_into_a_closed_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    // Like `tlspeek -D | grep -q eth0`: the reader is gone before the list is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .arg("-D")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn threads_give_the_same_output_on_every_capture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "pcap" && ext != "pcapng" {
            continue;
        }
        let f = p.to_str().unwrap();
        let one = tlspeek(&["-r", f, "--json", "--threads", "1"]);
        for n in ["2", "3"] {
            let many = tlspeek(&["-r", f, "--json", "--threads", n]);
            assert_eq!((many.code, &many.stdout), (one.code, &one.stdout), "{f} with --threads {n}");
        }
        checked += 1;
    }
    assert!(checked >= 38, "{checked}");
}

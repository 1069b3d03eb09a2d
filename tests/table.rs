//! The human table on shipped captures: rows and detail lines asserted exactly (fatal alerts,
//! refused handshakes, SNI not covered by the certificate, -v/-vv, unknown flows), and rows
//! fitted to COLUMNS.

mod common;
use common::{capture, json, strings, tlspeek_env};

/// Runs `tlspeek -r captures/NAME EXTRA...`, with `COLUMNS` when given.
fn run(name: &str, columns: Option<&str>, extra: &[&str]) -> common::Run {
    let path = capture(name);
    let mut args = vec!["-r", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let vars: Vec<(&str, &str)> = columns.map(|c| ("COLUMNS", c)).into_iter().collect();
    tlspeek_env(&args, &vars)
}

/// The standard output of a run that must succeed.
fn table(name: &str, columns: Option<&str>, extra: &[&str]) -> String {
    let r = run(name, columns, extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

/// The rows and detail lines only.
fn rows(out: &str) -> String {
    out.split("\n\n").next().unwrap().to_string() + "\n"
}

#[test]
fn fatal_alerts_show_in_the_row_and_name_their_sender() {
    let want = "\
ID CLIENT          SERVER         PROTO VERSION SNI/HOST             CERT       MTLS    FLAGS
1  10.96.0.2:40501 10.96.0.1:8443 tls   TLS 1.2 expired.example.test CN=expire… failed  alert:certificate_expired,cert_…
   alert from the client: fatal certificate_expired: the client rejected the server's certificate
   warning: server certificate CN=expired.example.test,O=Example Test had expired at capture time (not after
     2021-01-01T00:00:00Z)
12 10.96.0.2:40502 10.96.0.1:8443 tls   TLS 1.2 api.example.test     CN=api.ex… failed  alert:unknown_ca
   alert from the client: fatal unknown_ca: the client rejected the server's certificate
23 10.96.0.2:40503 10.96.0.1:8443 tls   TLS 1.2 api.example.test     CN=api.ex… failed  alert:unknown_ca
   client cert: subject CN=intruder,O=Other Test; issuer CN=Other Test Root,O=Other Test
   alert from the server: fatal unknown_ca: the server rejected the client's certificate
37 10.96.0.2:40504 10.96.0.1:8443 tls   TLS 1.2 api.example.test     CN=api.ex… failed  alert:handshake_failure
   alert from the server: fatal handshake_failure: the server gave up: no parameters in common, or a client certificate
     missing or refused
   mtls no: client certificate requested but the client sent none; the handshake failed (handshake_failure alert from
     the server)
51 10.96.0.2:40505 10.96.0.1:8443 tls   -       api.example.test     -          refused alert:protocol_version
   alert from the server: fatal protocol_version: no TLS version in common
   handshake refused by the server: protocol_version alert (no ServerHello)
61 10.96.0.2:40506 10.96.0.1:8443 tls   -       api.example.test     -          refused alert:handshake_failure
   alert from the server: fatal handshake_failure: the server gave up: no parameters in common, or a client certificate
     missing or refused
   handshake refused by the server: handshake_failure alert (no ServerHello)
71 10.96.0.2:40507 10.96.0.1:8443 tls   TLS 1.2 wrong.example.test   CN=api.ex… failed  alert:bad_certificate,sni_misma…
   alert from the client: fatal bad_certificate: the client rejected the server's certificate
   warning: SNI wrong.example.test is not covered by the server certificate (it covers: api.example.test, 10.99.0.1)
";
    assert_eq!(rows(&table("tls-alerts.pcap", Some("120"), &[])), want);
    // The JSON: the flags, the alerts, and a reason that says the handshake failed.
    let j = json("tls-alerts.pcap", &[]);
    let got: Vec<(u64, Vec<String>, String)> = j
        .flows
        .iter()
        .map(|f| {
            (
                f["id"].as_u64().unwrap(),
                strings(&f["flags"]),
                f["tls"]["mtls_reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(u64, Vec<&str>, &str)> = vec![
        (1, vec!["handshake_failed", "cert_expired"], "server did not request a client certificate; the handshake failed (certificate_expired alert from the client)"),
        (12, vec!["handshake_failed"], "server did not request a client certificate; the handshake failed (unknown_ca alert from the client)"),
        (23, vec!["handshake_failed"], "client sent a certificate (CN=intruder,O=Other Test); the handshake failed (unknown_ca alert from the server)"),
        (37, vec!["handshake_failed"], "client certificate requested but the client sent none; the handshake failed (handshake_failure alert from the server)"),
        (51, vec!["handshake_failed", "handshake_refused"], "refused by the server: protocol_version alert (no ServerHello)"),
        (61, vec!["handshake_failed", "handshake_refused"], "refused by the server: handshake_failure alert (no ServerHello)"),
        (71, vec!["handshake_failed", "sni_mismatch"], "server did not request a client certificate; the handshake failed (bad_certificate alert from the client)"),
    ];
    let want: Vec<(u64, Vec<String>, String)> = want
        .into_iter()
        .map(|(i, f, r)| (i, f.into_iter().map(String::from).collect(), r.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(j.flows[4]["tls"]["mtls"], "unknown");
    assert_eq!(
        j.flows[4]["tls"]["alerts"],
        serde_json::json!([{"from": "server", "level": "fatal", "description": "protocol_version"}])
    );
}

#[test]
fn a_reset_right_after_the_client_hello_is_a_refusal_not_a_missed_handshake() {
    let want = "\
ID  CLIENT           SERVER          PROTO  VERSION  SNI/HOST          ALPN  CERT  MTLS     FLAGS
1   10.95.0.2:40801  10.95.0.1:8443  tls    -        api.example.test  -     -     refused  reset
    handshake refused by the server: connection reset after the ClientHello (no ServerHello)
7   10.95.0.2:40802  10.95.0.1:8444  tls    -        api.example.test  -     -     refused  alert:decode_error,reset
    alert from the client: fatal decode_error: a malformed or unexpected handshake message
    handshake refused by the server: connection reset after the ClientHello (no ServerHello)
";
    let out = table("tls-reset-after-hello.pcap", Some("120"), &[]);
    assert_eq!(rows(&out), want);
    assert!(!out.contains("no ServerHello seen"), "{out}");
    let j = json("tls-reset-after-hello.pcap", &[]);
    let f = &j.flows[0];
    assert_eq!(strings(&f["flags"]), ["reset", "handshake_refused"]);
    assert_eq!(f["reset_by"], "server");
    assert_eq!(
        (f["tls"]["mtls"].as_str(), f["tls"]["mtls_reason"].as_str()),
        (
            Some("unknown"),
            Some("refused by the server: connection reset after the ClientHello (no ServerHello)")
        )
    );
    assert_eq!(strings(&j.flows[1]["flags"]), ["reset", "handshake_failed", "handshake_refused"]);
}

#[test]
fn sni_not_covered_by_the_leaf_certificate_is_flagged() {
    let want = "\
ID  CLIENT           SERVER         PROTO  VERSION  SNI/HOST              ALPN  CERT                  MTLS  FLAGS
1   10.96.0.2:40601  10.96.0.1:443  tls    TLS 1.2  api.example.test      -     CN=api.example.test…  no    -
20  10.96.0.2:40602  10.96.0.1:443  tls    TLS 1.2  wrong.example.test    -     CN=api.example.test…  no    sni_mismatch
    warning: SNI wrong.example.test is not covered by the server certificate (it covers: api.example.test, 10.99.0.1)
39  10.96.0.2:40603  10.96.0.1:443  tls    TLS 1.2  a.example.test        -     CN=*.example.test,O…  no    -
58  10.96.0.2:40604  10.96.0.1:443  tls    TLS 1.2  a.b.example.test      -     CN=*.example.test,O…  no    sni_mismatch
    warning: SNI a.b.example.test is not covered by the server certificate (it covers: *.example.test)
77  10.96.0.2:40605  10.96.0.1:443  tls    TLS 1.2  cn-only.example.test  -     CN=cn-only.example.…  no    -
";
    assert_eq!(rows(&table("tls-sni-mismatch.pcap", Some("120"), &[])), want);
    let j = json("tls-sni-mismatch.pcap", &[]);
    let flagged: Vec<bool> =
        j.flows.iter().map(|f| strings(&f["flags"]).contains(&"sni_mismatch".to_string())).collect();
    assert_eq!(flagged, [false, true, false, true, false]);
    assert_eq!(
        strings(&j.flows[3]["warnings"]),
        ["SNI a.b.example.test is not covered by the server certificate (it covers: *.example.test)"]
    );
    // The CONNECT tunnel asks for db.example.test from a server whose certificate is api's.
    let c = json("http-connect-tls.pcap", &[]);
    assert_eq!(strings(&c.flows[0]["flags"]), ["sni_mismatch"]);
    // Istio SNIs (outbound_.9080_._.ratings...) name a cluster, not a host: never checked.
    for cap in [
        "istio-mtls-tls12.pcap",
        "tls12-mtls-istio.pcap",
        "istio-permissive.pcap",
        "istio-mtls-tls13-any.pcap",
    ] {
        for f in json(cap, &[]).flows {
            assert!(!strings(&f["flags"]).contains(&"sni_mismatch".to_string()), "{cap}: {f}");
        }
    }
}

#[test]
fn rows_fit_columns_and_keep_today_s_width_without_it() {
    let caps: Vec<String> = std::fs::read_dir(capture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .filter(|n| n != "not-a-capture.pcap")
        .collect();
    assert!(caps.len() > 40);
    for cap in &caps {
        for cols in [120usize, 80] {
            for v in [&[][..], &["-v"][..], &["-vv"][..]] {
                let c = cols.to_string();
                // (Damaged captures exit 2 after their flows.) The per-server readings that
                // follow the rows are not fitted.
                let out = run(cap, Some(&c), v).stdout;
                for line in rows(&out).lines() {
                    assert!(
                        line.chars().count() <= cols,
                        "{cap} {v:?} COLUMNS={cols}: {} {line:?}",
                        line.chars().count()
                    );
                }
            }
        }
    }
    // Exact cells: a 180-column Istio row at 120 and 80 columns, and uncut without COLUMNS.
    let row = |cols: Option<&str>| {
        table("istio-mtls-tls12.pcap", cols, &[]).lines().take(2).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(
        row(Some("120")),
        "\
ID  CLIENT           SERVER          PROTO  VERSION  SNI/HOST              ALPN    CERT              MTLS  FLAGS
1   10.97.0.2:51910  10.97.0.1:9080  tls    TLS 1.2  ratings.default:9080  istio…  …ault/sa/ratings  yes   cert_expiring"
    );
    assert_eq!(
        row(Some("80")),
        "\
ID CLIENT          SERVER         PROTO VERSION SNI/HOST      MTLS FLAGS
1  10.97.0.2:51910 10.97.0.1:9080 tls   TLS 1.2 ratings.defa… yes  cert_expiring"
    );
    assert_eq!(
        row(None),
        "\
ID  CLIENT           SERVER          PROTO  VERSION  SNI/HOST              ALPN                                      CERT                                          MTLS  FLAGS
1   10.97.0.2:51910  10.97.0.1:9080  tls    TLS 1.2  ratings.default:9080  istio-peer-exchange*,istio-http/1.1,ist…  spiffe://cluster.local/ns/default/sa/ratings  yes   cert_expiring"
    );
    // Detail lines wrap (not cut): the whole warning is there, continued two columns further in.
    let out = table("istio-mtls-tls12.pcap", Some("80"), &[]);
    assert!(out.contains(
        "   warning: client certificate spiffe://cluster.local/ns/default/sa/reviews\n     expires 39m 57s after the capture (not after 2026-11-23T07:56:36Z;\n     --cert-warn 1h)\n"
    ), "{out}");
}

#[test]
fn one_client_certificate_line_and_singular_counts() {
    let out = table("istio-mtls-tls12.pcap", None, &[]);
    let certs: Vec<&str> = out.lines().filter(|l| l.contains("client cert:")).collect();
    assert_eq!(
        certs,
        ["    client cert: spiffe://cluster.local/ns/default/sa/reviews; issuer CN=cluster.local root,O=cluster.local"]
    );
    assert!(out.contains("\n1 flow: 1 tls (TLS mTLS verdicts: yes 1); 16 packets, 6084 bytes\n"), "{out}");
    assert!(out.contains("\n1 flow with certificate warnings "), "{out}");
}

#[test]
fn vv_prints_the_certificate_chains_of_both_sides() {
    let out = table("istio-mtls-tls12.pcap", None, &["-vv"]);
    let want = "
    tls: TLS 1.2; TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384; offered TLS 1.2; SNI outbound_.9080_._.ratings.default.svc.cluster.local; ALPN istio-peer-exchange,istio-http/1.1,istio; selected istio-peer-exchange
    fingerprints: ja4 t12d1509ie_d68b136fe8d9_8932e62835fd; ja3 5976f1e477cd6e42ea87626b5a4d8c1b
    server certificate chain (2 certificates):
      1. subject -
         issuer CN=cluster.local root,O=cluster.local
         SAN URI:spiffe://cluster.local/ns/default/sa/ratings
         valid 2026-11-23T06:16:36Z to 2026-11-24T06:16:36Z (expires 22h 59m after the capture)
         key EC P-256, serial 5a01
      2. subject CN=cluster.local root,O=cluster.local
         issuer CN=cluster.local root,O=cluster.local
         valid 2025-12-31T00:00:00Z to 2035-12-29T00:00:00Z (expires 3322d 16h after the capture)
         key EC P-256, serial 1001
    client certificate chain (2 certificates):
      1. subject -
         issuer CN=cluster.local root,O=cluster.local
         SAN URI:spiffe://cluster.local/ns/default/sa/reviews
         valid 2026-11-23T06:16:36Z to 2026-11-23T07:56:36Z (expires 39m 57s after the capture)
         key EC P-256, serial 5a02
      2. subject CN=cluster.local root,O=cluster.local
         issuer CN=cluster.local root,O=cluster.local
         valid 2025-12-31T00:00:00Z to 2035-12-29T00:00:00Z (expires 3322d 16h after the capture)
         key EC P-256, serial 1001
    mtls yes: client sent a certificate (spiffe://cluster.local/ns/default/sa/reviews)
";
    assert!(out.contains(want), "{out}");
    // -v: the server's leaf on one line, no chains.
    let v = table("istio-mtls-tls12.pcap", None, &["-v"]);
    assert!(v.contains("\n    server cert: spiffe://cluster.local/ns/default/sa/ratings; issuer CN=cluster.local root,O=cluster.local\n"), "{v}");
    assert!(!v.contains("certificate chain"));
    // The key is in the JSON too.
    let j = json("tls12-expired-cert.pcap", &[]);
    assert_eq!(j.flows[0]["tls"]["server_certs"][0]["public_key"], "RSA 2048");
}

#[test]
fn v_prints_every_http_message_with_its_headers_credentials_redacted() {
    let out = table("http-keepalive-sidecar.pcap", None, &["-v"]);
    let second = "
    > GET /ratings/1 HTTP/1.1
    > Accept-Encoding: identity
    > Host: reviews:9080
    > x-forwarded-proto: http
    > x-request-id: 7f3c2a9e-1b4d-4c8e-9a2f-5d6e7f8a9b0c
    > x-envoy-decorator-operation: reviews.default.svc.cluster.local:9080/*
";
    assert!(out.contains(second), "{out}");
    let tail = "
    > Authorization: <redacted 53 bytes>
    > Cookie: <redacted 27 bytes>
    < HTTP/1.1 200 OK
    < Server: envoy
    < Date: Mon, 23 Nov 2026 05:45:47 GMT
    < content-type: application/json
    < content-length: 86
    < x-envoy-upstream-service-time: 3
    > POST /reviews/0/vote HTTP/1.1
";
    assert!(out.contains(tail), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("    > ") && l.contains(" HTTP/1.1")).count(), 3);
    assert!(!out.contains("eyJhbGciOiJSUzI1NiJ9") && !out.contains("s3ss10n"));
    let shown = table("http-keepalive-sidecar.pcap", None, &["-v", "--show-secrets"]);
    assert!(shown.contains("\n    > Cookie: session=s3ss10n-c00k1e-4242\n"), "{shown}");
    // Without -v: today's one line per request.
    let plain = table("http-keepalive-sidecar.pcap", None, &[]);
    assert!(
        plain.contains("\n    GET /ratings/1 → 200 (12 headers)\n") && !plain.contains("    > "),
        "{plain}"
    );
}

#[test]
fn unknown_flows_keep_their_bytes_off_the_sni_column() {
    let want = "\
ID  CLIENT           SERVER        PROTO    VERSION  SNI/HOST           ALPN  CERT  MTLS      FLAGS
1   10.99.0.2:57440  10.99.0.1:25  unknown  -        -                  -     -     -         -
    bytes: \"EHLO client.example.test\\r\\nMAIL FROM:<a@example.t\"
15  10.99.0.2:57450  10.99.0.1:25  tls      TLS 1.3  mail.example.test  -     -     unlikely  -
    mtls unlikely: TLS 1.3: client's first encrypted records 69, 23 bytes; the first (69) is a Finished alone: no client certificate was sent
";
    assert_eq!(rows(&table("plaintext-other.pcap", None, &[])), want);
}

//! HTTP/2 cleartext and gRPC on the captures of captures/h2.md (nghttp2, curl, grpcio,
//! python-h2 between namespaces): stream ids, pseudo-headers, statuses, trailers, gRPC status,
//! unknown fields of connections joined mid-stream, redaction of never-indexed fields, a header
//! block in CONTINUATION frames, pushed streams, the `Upgrade: h2c` stream 1, and the XFCC
//! confirmation of a TLS 1.3 verdict by the h2c inbound leg.

mod common;

use common::{capture, json, one, strings, tlspeek, tlspeek_env};
use serde_json::{json, Value};

/// The h2c flow of a capture holding exactly one.
fn h2c(name: &str, extra: &[&str]) -> Value {
    one(&json(name, extra).flows, "h2c").clone()
}

fn requests(f: &Value) -> &Vec<Value> {
    f["http"]["requests"].as_array().unwrap()
}

fn responses(f: &Value) -> &Vec<Value> {
    f["http"]["responses"].as_array().unwrap()
}

/// (stream, method, path, host) of every request.
fn request_lines(f: &Value) -> Vec<(u64, String, String, Value)> {
    requests(f)
        .iter()
        .map(|r| {
            (
                r["stream"].as_u64().unwrap(),
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["host"].clone(),
            )
        })
        .collect()
}

/// (stream, status) of every response.
fn statuses(f: &Value) -> Vec<(u64, u64)> {
    responses(f).iter().map(|r| (r["stream"].as_u64().unwrap(), r["status"].as_u64().unwrap())).collect()
}

/// The value of header `name` in a `[[n, v]]` list.
fn header<'a>(hs: &'a Value, name: &str) -> Option<&'a str> {
    hs.as_array().unwrap().iter().find(|h| h[0] == name).and_then(|h| h[1].as_str())
}

fn names(hs: &Value) -> Vec<String> {
    hs.as_array().unwrap().iter().map(|h| h[0].as_str().unwrap().to_string()).collect()
}

#[test]
fn nghttp_streams_interleaved_with_priorities() {
    let f = h2c("h2c-nghttp-streams.pcap", &[]);
    assert_eq!((f["h2c"].as_str(), f["http"]["version"].as_str()), (Some("prior_knowledge"), Some("HTTP/2")));
    let host = json!("10.93.0.1:8080");
    assert_eq!(
        request_lines(&f),
        [
            (13, "GET".into(), "/reviews.json".into(), host.clone()),
            (15, "GET".into(), "/ratings.json".into(), host.clone()),
            (17, "GET".into(), "/details.json".into(), host.clone()),
            (19, "GET".into(), "/health".into(), host),
        ]
    );
    let q = &requests(&f)[0];
    assert_eq!(
        names(&q["headers"]),
        [":method", ":path", ":scheme", ":authority", "accept", "accept-encoding", "user-agent"]
    );
    assert_eq!(q["version"], "HTTP/2");
    assert_eq!(q["unknown_fields"], 0);
    assert_eq!(q["grpc"], Value::Null);
    // Response bodies: 23,600 bytes each for the JSON documents, 16 for /health.
    let data: Vec<u64> = requests(&f).iter().map(|r| r["data"]["server"].as_u64().unwrap()).collect();
    assert_eq!(data, [23600, 23600, 23600, 16]);
    let mut st = statuses(&f);
    st.sort();
    assert_eq!(st, [(13, 200), (15, 200), (17, 200), (19, 200)]);
    let a = &responses(&f)[0];
    assert_eq!((a["reason"].as_str(), a["version"].as_str()), (Some(""), Some("HTTP/2")));
    assert_eq!(header(&a["headers"], ":status"), Some("200"));
    assert_eq!(header(&a["headers"], "server"), Some("nghttpd nghttp2/1.52.0"));
    let h2 = &f["http"]["http2"];
    assert_eq!(
        h2["settings"]["client"],
        json!({"MAX_CONCURRENT_STREAMS": 100, "INITIAL_WINDOW_SIZE": 65535})
    );
    assert_eq!(h2["goaway"], json!({"from": "client", "last_stream": 0, "error": "NO_ERROR"}));
    assert_eq!(h2["streams_total"], 4);
    assert_eq!(h2["rst_streams"], json!([]));
}

#[test]
fn header_block_in_headers_and_continuation_frames() {
    let f = h2c("h2c-nghttp-continuation.pcap", &[]);
    let q = &requests(&f)[0];
    assert_eq!((q["stream"].as_u64(), q["path"].as_str()), (Some(13), Some("/health")));
    let n = names(&q["headers"]);
    assert_eq!(n.len(), 14);
    for i in 1..=6 {
        let v = header(&q["headers"], &format!("continuation-test-{i}")).unwrap();
        assert_eq!(v, "-".repeat(4096), "continuation-test-{i}");
    }
    // The last field lies in the CONTINUATION frame.
    assert_eq!(n.last().map(String::as_str), Some("x-request-id"));
    assert_eq!(header(&q["headers"], "x-request-id"), Some("h2c-continuation-1"));
    assert_eq!(statuses(&f), [(13, 200)]);
    assert_eq!(f["warnings"], json!([]));
}

#[test]
fn a_header_block_over_max_header_bytes_is_cut_and_counted() {
    let f = h2c("h2c-nghttp-continuation.pcap", &["--max-header-bytes", "8192"]);
    assert_eq!(requests(&f).len(), 0, "the 18 KiB request block is not kept");
    let w = strings(&f["warnings"]);
    assert!(w.iter().any(|w| w.contains("stream 13 not decoded (too_large)")), "{w:?}");
    // The response block after it still decodes: the cut only forgot the client's table.
    assert_eq!(statuses(&f), [(13, 200)]);
}

#[test]
fn padded_frames_pushed_streams_trailers_and_never_indexed_authorization() {
    let f = h2c("h2c-nghttp-padded-push.pcap", &[]);
    let host = json!("10.93.0.1:8081");
    assert_eq!(
        request_lines(&f),
        [
            (13, "GET".into(), "/index.html".into(), host.clone()),
            (2, "GET".into(), "/style.css".into(), host.clone()),
            (4, "GET".into(), "/app.js".into(), host),
        ]
    );
    // Sent never indexed (nghttp2 always does so for authorization): redacted by default.
    assert_eq!(header(&requests(&f)[0]["headers"], "authorization"), Some("<redacted 28 bytes>"));
    let mut st = statuses(&f);
    st.sort();
    assert_eq!(st, [(2, 200), (4, 200), (13, 200)]);
    for a in responses(&f) {
        assert_eq!(a["trailers"], json!([["x-checksum", "5f3e9a"]]), "stream {}", a["stream"]);
        assert_eq!(header(&a["headers"], "trailer"), Some("x-checksum"));
    }
    let data: Vec<u64> = requests(&f).iter().map(|r| r["data"]["server"].as_u64().unwrap()).collect();
    assert_eq!(data, [108, 33, 24]);
    // Both pushes were promised on the stream of /index.html.
    let by: Vec<&Value> = requests(&f).iter().map(|r| &r["pushed_by"]).collect();
    assert_eq!(by, [&Value::Null, &json!(13), &json!(13)]);
    assert_eq!(f["http"]["http2"]["streams_total"], 3);
    assert_eq!(f["http"]["http2"]["goaway"]["last_stream"], 4);

    let f = h2c("h2c-nghttp-padded-push.pcap", &["--show-secrets"]);
    assert_eq!(header(&requests(&f)[0]["headers"], "authorization"), Some("Bearer h2c-secret-token-0042"));
}

#[test]
fn small_hpack_tables_with_evictions_and_size_updates() {
    let j = json("h2c-nghttp-hpack-evict.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    let want_paths = [
        vec!["/health", "/health", "/health", "/style.css", "/style.css", "/style.css"],
        vec!["/health", "/health", "/style.css", "/style.css"],
    ];
    for (f, paths) in j.flows.iter().zip(want_paths) {
        let got: Vec<&str> = requests(f).iter().map(|r| r["path"].as_str().unwrap()).collect();
        assert_eq!(got, paths, "{}", f["client"]);
        for r in requests(f) {
            assert_eq!(
                header(&r["headers"], "x-tenant"),
                Some("tenant-0123456789abcdefghijklmnopqrstuvwxyz")
            );
            assert_eq!(r["unknown_fields"], 0);
        }
        assert!(statuses(f).iter().all(|&(_, s)| s == 200));
        assert_eq!(f["http"]["http2"]["settings"]["server"]["HEADER_TABLE_SIZE"], 200);
        assert_eq!(f["warnings"], json!([]), "{}", f["client"]);
    }
    let streams: Vec<u64> = requests(&j.flows[0]).iter().map(|r| r["stream"].as_u64().unwrap()).collect();
    assert_eq!(streams, [1, 3, 5, 7, 9, 11]);
}

#[test]
fn upgrade_request_is_stream_1_and_prior_knowledge_post() {
    let j = json("h2c-curl.pcap", &[]);
    assert_eq!(j.flows.len(), 3);
    // curl --http2: the HTTP/1.1 request asked for h2c; its answer came in HTTP/2 on stream 1.
    let f = &j.flows[0];
    assert_eq!((f["protocol"].as_str(), f["h2c"].as_str()), (Some("h2c"), Some("upgrade")));
    assert_eq!((f["http"]["version"].as_str(), f["http"]["upgrade"].as_str()), (Some("HTTP/2"), Some("h2c")));
    let q = &requests(f)[0];
    assert_eq!(
        (q["stream"].as_u64(), q["version"].as_str(), q["path"].as_str()),
        (Some(1), Some("HTTP/1.1"), Some("/reviews.json"))
    );
    assert_eq!(header(&q["headers"], "x-request-id"), Some("h2c-curl-upgrade"));
    // Stream 1's DATA (the answer, in HTTP/2) counts for the HTTP/1 request (tshark: 16384 + 7216).
    assert_eq!(q["data"], json!({"client": 0, "server": 23600}));
    let st: Vec<(Value, u64, Value)> = responses(f)
        .iter()
        .map(|a| (a["stream"].clone(), a["status"].as_u64().unwrap(), a["version"].clone()))
        .collect();
    assert_eq!(st, [(json!(1), 101, json!("HTTP/1.1")), (json!(1), 200, json!("HTTP/2"))]);
    assert_eq!(header(&responses(f)[1]["headers"], "via"), Some("2 nghttpx"));
    assert_eq!(f["http"]["http2"]["streams_total"], 1);

    // curl --http2-prior-knowledge POST: authorization never indexed, cookie indexed (both
    // credentials), 11 bytes of DATA.
    let f = &j.flows[1];
    assert_eq!(f["h2c"], "prior_knowledge");
    let q = &requests(f)[0];
    assert_eq!(
        (q["stream"].as_u64(), q["method"].as_str(), q["path"].as_str()),
        (Some(1), Some("POST"), Some("/health"))
    );
    assert_eq!(header(&q["headers"], "authorization"), Some("<redacted 22 bytes>"));
    assert_eq!(header(&q["headers"], "cookie"), Some("<redacted 21 bytes>"));
    assert_eq!(q["data"], json!({"client": 11, "server": 16}));

    // nghttp -u: nghttp's own upgrade.
    let f = &j.flows[2];
    assert_eq!(f["h2c"], "upgrade");
    assert_eq!(requests(f)[0]["path"], "/style.css");
    assert_eq!(requests(f)[0]["data"], json!({"client": 0, "server": 33}));
    assert_eq!(header(&responses(f)[1]["headers"], "content-type"), Some("text/css"));
}

#[test]
fn mid_stream_h2c_reports_fields_it_cannot_know() {
    let f = h2c("h2c-midstream.pcap", &[]);
    assert_eq!((f["h2c"].as_str(), f["client"].as_str()), (Some("mid_stream"), Some("10.93.0.2:41131")));
    assert_eq!(f["client_by"], "http_request");
    let r = requests(&f);
    let got: Vec<(u64, &str, u64)> = r
        .iter()
        .map(|q| {
            (
                q["stream"].as_u64().unwrap(),
                q["path"].as_str().unwrap(),
                q["unknown_fields"].as_u64().unwrap(),
            )
        })
        .collect();
    // captures/h2.md: the lost table's entries are unknown until re-inserted literally.
    assert_eq!(
        got,
        [
            (7, "/index.html", 5),
            (9, "/missing-5", 5),
            (11, "", 6),
            (13, "", 3),
            (15, "/index.html", 2),
            (17, "/health", 2),
            (19, "/missing-10", 2)
        ]
    );
    assert_eq!(r[0]["host"], Value::Null);
    assert_eq!(r[3]["host"], "reviews:8080");
    // x-api-key is sent never indexed (and is a credential name): redacted.
    assert_eq!(header(&r[0]["headers"], "x-api-key"), Some("<redacted 8 bytes>"));
    let st: Vec<u64> = statuses(&f).iter().map(|s| s.1).collect();
    assert_eq!(st, [200, 404, 200, 200, 200, 200, 404]);
    let unknown: Vec<u64> = responses(&f).iter().map(|a| a["unknown_fields"].as_u64().unwrap()).collect();
    assert!(unknown.iter().all(|&u| (1..=4).contains(&u)), "{unknown:?}");
    assert_eq!(f["http"]["http2"]["settings"], json!({"client": null, "server": null}));
}

#[test]
fn grpc_unary_ok_trailers_only_failure_and_binary_metadata() {
    let f = h2c("grpc-unary.pcap", &[]);
    let r = requests(&f);
    assert_eq!(r.len(), 3);
    let g: Vec<&Value> = r.iter().map(|q| &q["grpc"]).collect();
    assert_eq!(
        *g[0],
        json!({"service": "reviews.Reviews", "method": "GetReview", "status": 0, "status_name": "OK",
               "message": null, "encoding": null, "messages": {"client": 1, "server": 1},
               "message_bytes": {"client": 2, "server": 61}})
    );
    // The second call's request: one message, its 5-byte prefix and the payload it announces.
    let sent = r[1]["data"]["client"].as_u64().unwrap();
    assert_eq!(
        *g[1],
        json!({"service": "reviews.Reviews", "method": "GetReview", "status": 14, "status_name": "UNAVAILABLE",
               "message": "upstream connect error: café ☕ 100% down", "encoding": null,
               "messages": {"client": 1, "server": 0}, "message_bytes": {"client": sent - 5, "server": 0}})
    );
    assert_eq!(g[2]["status_name"], "OK");
    assert_eq!(r[0]["data"], json!({"client": 7, "server": 66}));
    // Literal without indexing, but a credential name: redacted.
    assert_eq!(header(&r[0]["headers"], "authorization"), Some("<redacted 51 bytes>"));
    // True-binary metadata: a NUL then raw bytes, invalid UTF-8 escaped.
    assert_eq!(header(&r[0]["headers"], "x-trace-bin"), Some("\u{0}\u{0}\u{1}\u{2}\\xfe\\xff"));
    let a = responses(&f);
    assert_eq!(a[0]["trailers"], json!([["grpc-status", "0"]]));
    // Trailers-only: the status is in the response headers.
    assert_eq!(a[1]["trailers"], json!([]));
    assert_eq!(header(&a[1]["headers"], "grpc-status"), Some("14"));
    assert_eq!(f["http"]["http2"]["settings"]["client"]["0xfe03"], 1);
}

#[test]
fn grpc_streaming_counts_messages_across_data_frames() {
    let f = h2c("grpc-streaming.pcap", &[]);
    let g: Vec<&Value> = requests(&f).iter().map(|q| &q["grpc"]).collect();
    assert_eq!((g[0]["method"].as_str(), g[0]["encoding"].as_str()), (Some("ListReviews"), Some("gzip")));
    assert_eq!(
        (g[0]["status_name"].as_str(), &g[0]["messages"]),
        (Some("OK"), &json!({"client": 1, "server": 3}))
    );
    assert_eq!(
        (g[1]["status"].as_u64(), g[1]["status_name"].as_str(), g[1]["message"].as_str()),
        (Some(8), Some("RESOURCE_EXHAUSTED"), Some("quota exceeded: 5 reviews/call"))
    );
    assert_eq!(g[1]["messages"]["server"], 5);
    // Five messages whose prefixes announce every DATA byte the server sent but theirs.
    let data = requests(&f)[1]["data"]["server"].as_u64().unwrap();
    assert_eq!(g[1]["message_bytes"]["server"].as_u64().unwrap() + 5 * 5, data);
}

#[test]
fn grpc_deadline_resets_the_stream_both_ways() {
    let f = h2c("grpc-deadline.pcap", &[]);
    let g = &requests(&f)[0]["grpc"];
    assert_eq!((g["status"].as_u64(), g["status_name"].as_str()), (Some(4), Some("DEADLINE_EXCEEDED")));
    assert_eq!(
        f["http"]["http2"]["rst_streams"],
        json!([{"stream": 1, "from": "server", "error": "NO_ERROR"}, {"stream": 1, "from": "client", "error": "CANCEL"}])
    );
    assert_eq!(requests(&f)[1]["grpc"]["status_name"], "OK");
}

#[test]
fn grpc_mid_stream_calls_have_their_lost_fields_counted() {
    let f = h2c("grpc-midstream.pcap", &[]);
    assert_eq!(f["h2c"], "mid_stream");
    let r = requests(&f);
    let streams: Vec<u64> = r.iter().map(|q| q["stream"].as_u64().unwrap()).collect();
    assert_eq!(streams, [7, 9, 11, 13, 15]);
    for (i, q) in r.iter().enumerate() {
        assert_eq!((q["method"].as_str(), q["unknown_fields"].as_u64()), (Some("POST"), Some(7)));
        assert_eq!(header(&q["headers"], "x-request-id"), Some(format!("grpc-series-{}", i + 4).as_str()));
        // content-type was lost with the table: not known to be gRPC.
        assert_eq!(q["grpc"], Value::Null);
    }
    for a in responses(&f) {
        assert_eq!((a["status"].as_u64(), a["unknown_fields"].as_u64()), (Some(200), Some(3)));
    }
}

#[test]
fn xfcc_on_the_h2c_inbound_leg_confirms_the_tls13_verdict() {
    let j = json("istio-grpc-inbound-any.pcap", &[]);
    let tls = one(&j.flows, "tls");
    assert_eq!(tls["tls"]["mtls"], "yes", "{}", tls["tls"]["mtls_reason"]);
    let reason = tls["tls"]["mtls_reason"].as_str().unwrap();
    assert!(reason.contains("confirmed: the Envoy -> app leg to port 9080 carried x-forwarded-client-cert URI=spiffe://cluster.local/ns/default/sa/productpage"), "{reason}");
    let f = one(&j.flows, "h2c");
    assert_eq!(f["client"], "127.0.0.6:38450");
    assert_eq!(f["istio"]["leg"], "inbound_passthrough");
    let r = requests(f);
    assert_eq!(r[0]["host"], "reviews:9080");
    assert_eq!(header(&r[1]["headers"], "x-request-id"), Some("grpc-mesh-2"));
    // Stream 3's XFCC is an indexed reference to the table entry stream 1 inserted.
    assert!(header(&r[1]["headers"], "x-forwarded-client-cert")
        .unwrap()
        .contains("By=spiffe://cluster.local/ns/default/sa/reviews"));
    assert_eq!(r[1]["grpc"]["status_name"], "UNAVAILABLE");
    assert_eq!(f["istio"]["client_identity"]["uri"], "spiffe://cluster.local/ns/default/sa/productpage");
}

#[test]
fn h2c_is_plaintext_for_fail_on_plaintext() {
    let p = capture("grpc-unary.pcap");
    let run = tlspeek(&["-r", p.to_str().unwrap(), "--json", "--fail-on-plaintext"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["servers"][0]["plaintext"], 1);
}

#[test]
fn table_shows_grpc_calls_and_h2c_requests() {
    let p = capture("grpc-unary.pcap");
    let run = tlspeek_env(&["-r", p.to_str().unwrap()], &[("COLUMNS", "120")]);
    assert!(run.stdout.contains("    grpc reviews.Reviews/GetReview → OK\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "grpc reviews.Reviews/GetReview → UNAVAILABLE (14): upstream connect error: café ☕ 100% down"
        ),
        "{}",
        run.stdout
    );
    let p = capture("h2c-nghttp-padded-push.pcap");
    let run = tlspeek(&["-r", p.to_str().unwrap()]);
    assert!(run.stdout.contains("GET /index.html → 200 (8 headers)"), "{}", run.stdout);
    assert!(run.stdout.contains("GET /style.css (pushed) → 200"), "{}", run.stdout);
    assert!(!run.stdout.contains("h2c-secret-token"), "{}", run.stdout);
    let run = tlspeek(&["-r", p.to_str().unwrap(), "-v"]);
    assert!(run.stdout.contains("> authorization: <redacted 28 bytes>"), "{}", run.stdout);
    assert!(run.stdout.contains("< trailers:\n    < x-checksum: 5f3e9a"), "{}", run.stdout);
}

#[test]
fn max_requests_bounds_the_streams_recorded() {
    let f = h2c("h2c-nghttp-streams.pcap", &["--max-requests", "2"]);
    assert_eq!(requests(&f).len(), 2);
    assert_eq!(f["http"]["requests_total"], 4);
    assert_eq!(f["http"]["http2"]["streams_total"], 4);
    assert!(responses(&f).iter().all(|a| [13, 15].contains(&a["stream"].as_u64().unwrap())));
}

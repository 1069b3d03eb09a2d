//! PROXY protocol headers (captures/proxy.md, made by captures/make-proxy.sh): HAProxy's
//! `send-proxy` (v1) and `send-proxy-v2` in front of HTTP and TLS, a v2 LOCAL health check, and
//! a ztunnel-like v2 header with Istio's identity TLV 0xD0 split over two segments. The header
//! is reported in `proxy_protocol`, and the bytes after it are classified as the stream's start.

mod common;

use common::{capture, json, tlspeek};
use serde_json::{json, Value};

/// The flow whose client port is `port`.
fn by_port(flows: &[Value], port: u16) -> &Value {
    let suffix = format!(":{port}");
    let v: Vec<&Value> = flows.iter().filter(|f| f["client"].as_str().unwrap().ends_with(&suffix)).collect();
    assert_eq!(v.len(), 1, "flows from port {port}: {flows:#?}");
    v[0]
}

fn header(version: u64, source: &str, destination: &str, tlvs: Value) -> Value {
    json!({
        "version": version, "command": "proxy", "family": "inet", "source": source,
        "destination": destination, "tlvs": tlvs, "tlvs_omitted": 0, "tlv_bytes_omitted": 0,
    })
}

#[test]
fn haproxy_send_proxy_v1_then_http_and_tls() {
    let j = json("proxy-v1.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    let http = by_port(&j.flows, 40701);
    assert_eq!(http["proxy_protocol"], header(1, "127.0.0.1:40601", "127.0.0.1:8001", json!({})));
    assert_eq!((http["protocol"].as_str(), http["server"].as_str()), (Some("http"), Some("10.97.0.1:9080")));
    assert_eq!(http["client_by"], "syn");
    let req = &http["http"]["requests"][0];
    assert_eq!((req["method"].as_str(), req["path"].as_str()), (Some("GET"), Some("/behind-proxy-v1")));
    assert_eq!(http["http"]["responses"][0]["status"], 200);

    let tls = by_port(&j.flows, 40702);
    assert_eq!(tls["proxy_protocol"], header(1, "127.0.0.1:40602", "127.0.0.1:8002", json!({})));
    assert_eq!(tls["protocol"], "tls");
    assert_eq!(
        (tls["tls"]["sni"].as_str(), tls["tls"]["version"].as_str()),
        (Some("api.example.test"), Some("TLS 1.3"))
    );
    assert_eq!(tls["tls"]["alpn_offered"], json!(["http/1.1"]));
    for f in &j.flows {
        assert_eq!((&f["warnings"], &f["istio"], &f["preview"]), (&json!([]), &Value::Null, &Value::Null));
    }
}

#[test]
fn haproxy_send_proxy_v2_with_tlvs_then_http_and_tls_and_a_local_health_check() {
    let j = json("proxy-v2.pcap", &[]);
    assert_eq!(j.flows.len(), 4);
    // proxy-v2-options crc32c,unique-id: TLV 0x03 (binary: hex), 0x05 (text).
    let http = by_port(&j.flows, 40711);
    let tlvs = json!({"0x03": "hex:eee2888a", "0x05": "tlspeek-unique-id-8011"});
    assert_eq!(http["proxy_protocol"], header(2, "127.0.0.1:40611", "127.0.0.1:8011", tlvs));
    assert_eq!(http["protocol"], "http");
    assert_eq!(http["http"]["requests"][0]["path"], "/behind-proxy-v2");
    assert_eq!(http["istio"], Value::Null);

    let tls = by_port(&j.flows, 40712);
    assert_eq!(tls["proxy_protocol"], header(2, "127.0.0.1:40612", "127.0.0.1:8012", json!({})));
    assert_eq!(
        (tls["protocol"].as_str(), tls["tls"]["sni"].as_str()),
        (Some("tls"), Some("api.example.test"))
    );

    // A health check (check-send-proxy): LOCAL, no addresses, then HTTP/1.0.
    let check = by_port(&j.flows, 40713);
    let local = json!({
        "version": 2, "command": "local", "family": "unspec", "source": null, "destination": null,
        "tlvs": {}, "tlvs_omitted": 0, "tlv_bytes_omitted": 0,
    });
    assert_eq!(check["proxy_protocol"], local);
    let req = &check["http"]["requests"][0];
    assert_eq!((req["path"].as_str(), req["version"].as_str()), (Some("/health"), Some("HTTP/1.0")));
    for f in &j.flows {
        assert_eq!(f["warnings"], json!([]), "{f}");
    }
}

#[test]
fn ztunnel_identity_tlv_split_over_two_segments_gives_the_istio_client_identity() {
    let j = json("proxy-v2.pcap", &[]);
    let z = by_port(&j.flows, 40714);
    let tlvs = json!({
        "0xd0": "spiffe://cluster.local/ns/default/sa/sleep",
        "0xd1": "reviews.default.svc.cluster.local",
    });
    assert_eq!(z["proxy_protocol"], header(2, "10.244.1.5:43210", "10.244.2.7:9080", tlvs));
    assert_eq!(z["protocol"], "http");
    let req = &z["http"]["requests"][0];
    assert_eq!(req["path"], "/behind-ztunnel-emulator");
    assert_eq!(req["host"], "reviews.default.svc.cluster.local:9080");
    assert_eq!(z["http"]["responses"][0]["status"], 200);
    let id = json!({
        "uri": "spiffe://cluster.local/ns/default/sa/sleep", "trust_domain": "cluster.local",
        "namespace": "default", "service_account": "sleep",
    });
    assert_eq!(z["istio"]["client_identity"], id);
    assert_eq!(z["istio"]["leg"], "pod_network");
    assert_eq!(z["warnings"], json!([]));
}

#[test]
fn the_table_shows_the_header_first_in_the_details() {
    let p = capture("proxy-v2.pcap");
    let r = tlspeek(&["-r", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    for (header, next) in [
        ("PROXY v2 127.0.0.1:40611 -> 127.0.0.1:8011 (+2 TLVs; -v lists them)", "GET /behind-proxy-v2 → 200 (3 headers)"),
        ("PROXY v2 LOCAL (the proxy's own connection)", "GET /health → 200 (0 headers)"),
        (
            "PROXY v2 10.244.1.5:43210 -> 10.244.2.7:9080 id spiffe://cluster.local/ns/default/sa/sleep (+1 TLV; -v lists them)",
            "identity: client spiffe://cluster.local/ns/default/sa/sleep",
        ),
    ] {
        let at = lines.iter().position(|l| *l == header).unwrap_or_else(|| panic!("no {header:?} in\n{}", r.stdout));
        assert_eq!(lines[at + 1], next);
    }
    let r = tlspeek(&["-r", p.to_str().unwrap(), "-v"]);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "PROXY v2 127.0.0.1:40611 -> 127.0.0.1:8011")
        .expect("-v header line");
    assert_eq!(
        lines[at + 1..at + 3],
        ["PROXY TLV 0x03: eee2888a", "PROXY TLV 0x05: \"tlspeek-unique-id-8011\""]
    );
}

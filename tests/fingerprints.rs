//! JA3 and JA4 of shipped captures. Every value here was checked with scripts/ja-check.py:
//! JA3 against tshark 4.0's `tls.handshake.ja3`/`ja3_full`, JA4 against FoxIO's reference
//! `python/ja4.py` (docs/json.md, "Fingerprints").

mod common;

use common::json;
use serde_json::Value;

fn fingerprints(f: &Value) -> [Option<&str>; 4] {
    ["ja4", "ja4_r", "ja3", "ja3_full"].map(|k| f["tls"][k].as_str())
}

fn by_client<'a>(flows: &'a [Value], client: &str) -> &'a Value {
    flows.iter().find(|f| f["client"] == client).unwrap_or_else(|| panic!("no flow from {client}"))
}

/// OpenSSL 3.0 client (Python `ssl`) offering Istio's ALPN tokens, TLS 1.2 only.
#[test]
fn tls12_istio_client_hello() {
    let j = json("tls12-mtls-istio.pcap", &[]);
    assert_eq!(
        fingerprints(by_client(&j.flows, "10.99.0.2:57786")),
        [
            Some("t12d1508ie_d68b136fe8d9_e7e480e5a997"),
            Some(
                "t12d1508ie_0067,006b,009e,009f,00ff,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9_000a,000b,000d,0016,0017,0023_0403,0503,0603,0807,0808,0809,080a,080b,0804,0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"
            ),
            Some("104774240db569f8f87b1a28206b25e5"),
            Some(
                "771,49196-49200-49195-49199-52393-52392-49188-49192-49187-49191-159-158-107-103-255,0-11-10-35-16-22-23-13,29-23-30-25-24,0-1-2"
            ),
        ]
    );
}

/// Go 1.19 `crypto/tls` client, TLS 1.3.
#[test]
fn tls13_go_client_hello() {
    let j = json("tls13-calib-go.pcap", &[]);
    assert_eq!(
        fingerprints(by_client(&j.flows, "10.98.0.2:43001")),
        [
            Some("t13d191100_9dc949149365_be53661681a4"),
            Some(
                "t13d191100_000a,002f,0035,009c,009d,1301,1302,1303,c009,c00a,c012,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0023,002b,002d,0033,ff01_0804,0403,0807,0805,0806,0401,0501,0601,0503,0603,0201,0203"
            ),
            Some("1aec235ec8dd0322c68d253a863b5eed"),
            Some(
                "771,49195-49199-49196-49200-52393-52392-49161-49171-49162-49172-156-157-47-53-49170-10-4865-4866-4867,0-5-10-11-35-13-65281-18-43-51-45,29-23-24-25,0"
            ),
        ]
    );
}

/// rustls shuffles its extensions in every ClientHello: JA3 (wire order) changes from flow to
/// flow, JA4's extension hash (sorted) does not.
#[test]
fn rustls_extension_order_changes_ja3_not_ja4() {
    let j = json("tls13-calib-rustls.pcap", &[]);
    let f = by_client(&j.flows, "10.98.0.2:44001");
    assert_eq!(
        fingerprints(f),
        [
            Some("t13d010900_0f2cb44170f4_6a7d638fc319"),
            Some("t13d010900_1301_0005,000a,000b,000d,0017,002b,002d,0033_0503,0403,0807,0806,0805,0804,0601,0501,0401"),
            Some("48ab084ada3b2e730b766be8a2437e5f"),
            Some("771,4865,45-13-51-5-23-11-43-0-10,29-23-24,0"),
        ]
    );
    // Ten flows send the same nine extensions (the eleventh resumes a session: one more).
    let same: Vec<&Value> = j
        .flows
        .iter()
        .filter(|f| f["tls"]["ja4"].as_str().is_some_and(|s| s.starts_with("t13d010900_")))
        .collect();
    assert_eq!(same.len(), 10);
    assert!(same.iter().all(|f| f["tls"]["ja4"].as_str().unwrap().ends_with("_6a7d638fc319")));
    let mut ja3: Vec<&str> = same.iter().map(|f| f["tls"]["ja3"].as_str().unwrap()).collect();
    ja3.sort();
    ja3.dedup();
    assert_eq!(ja3.len(), 10, "{ja3:?}");
}

/// The ClientHello inside an HTTP CONNECT tunnel is fingerprinted like any other.
#[test]
fn client_hello_after_http_connect() {
    let j = json("http-connect-tls.pcap", &[]);
    let f = by_client(&j.flows, "10.99.0.2:49428");
    assert_eq!(f["tls"]["ja4"], "t13d181100_85036bcba153_d41ae481755e");
    assert_eq!(f["tls"]["ja3"], "93c7d42c0df602fb91589311534831f5");
}

/// A ClientHello cut by the snapshot length gives no fingerprint rather than one of its part.
#[test]
fn snaplen_cut_client_hello_has_none() {
    let j = json("tls12-truncated-snaplen.pcap", &[]);
    let f = by_client(&j.flows, "10.99.0.2:57786");
    assert_eq!(f["protocol"], "tls");
    assert_eq!(fingerprints(f), [None; 4]);
    for k in ["ja4", "ja4_r", "ja3", "ja3_full"] {
        assert!(f["tls"][k].is_null(), "{k} present and null");
    }
}

/// `-v` shows the fingerprints on a detail line; without it they stay in the JSON.
#[test]
fn verbose_table_shows_the_fingerprints() {
    let path = common::capture("tls12-mtls-istio.pcap");
    let v = common::tlspeek(&["-r", path.to_str().unwrap(), "-v"]).stdout;
    assert!(
        v.lines().any(|l| l
            == "    fingerprints: ja4 t12d1508ie_d68b136fe8d9_e7e480e5a997; ja3 104774240db569f8f87b1a28206b25e5"),
        "{v}"
    );
    let plain = common::tlspeek(&["-r", path.to_str().unwrap()]).stdout;
    assert!(!plain.contains("fingerprints:"), "{plain}");
}

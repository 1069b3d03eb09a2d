//! `--ca`: the certificate lists of real TLS handshakes (captures/, made by OpenSSL and Python's
//! ssl) checked against the test PKI's roots (captures/pki/): who signed them, validity at the
//! capture time, the side's key usage, and the per-server readings. The same verdicts come from
//! `openssl verify -attime` on the certificates tshark exports (scripts/chain-check.py).

mod common;

use common::{capture, json, strings, tlspeek};
use serde_json::{json, Value};

const MESH_ROOT: &str = "CN=cluster.local root,O=cluster.local";

fn pki(name: &str) -> String {
    capture("pki").join(name).to_str().unwrap().to_string()
}

fn flow(flows: &[Value], id: u64) -> &Value {
    flows.iter().find(|f| f["id"] == id).unwrap_or_else(|| panic!("no flow {id}"))
}

fn verified(by: &str) -> Value {
    json!({"verified": true, "by": by, "error": null})
}

fn failed(error: &str) -> Value {
    json!({"verified": false, "by": null, "error": error})
}

fn reading(summary: &Value, server: &str) -> String {
    let s = summary["servers"].as_array().unwrap().iter().find(|s| s["name"] == server);
    s.unwrap_or_else(|| panic!("no server {server}"))["reading"].as_str().unwrap().to_string()
}

#[test]
fn mesh_chains_are_signed_by_the_mesh_root() {
    // OpenSSL s_server/s_client with the mesh PKI: server leaf + root, client leaf (TLS 1.2).
    let j = json("tls12-mtls-istio.pcap", &["--ca", &pki("ca.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!(t["server_chain"], verified(MESH_ROOT));
    // The client's list is checked for clientAuth (no extended key usage: any use).
    assert_eq!(t["client_chain"], verified(MESH_ROOT));
    assert_eq!(
        strings(&t["client_certs"][0]["san_uris"]),
        ["spiffe://cluster.local/ns/default/sa/productpage"]
    );
    assert_eq!(
        reading(&j.summary, "10.99.0.1:9080"),
        "all mutual TLS (as with STRICT); identities signed by the mesh root (CN=cluster.local root,O=cluster.local)"
    );
    // Istio-like workload certificates (empty subject, critical URI SAN, extended key usage
    // serverAuth + clientAuth) on both sides of a sidecar mTLS session.
    let j = json("istio-mtls-tls12.pcap", &["--ca", &pki("ca.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!((&t["server_chain"], &t["client_chain"]), (&verified(MESH_ROOT), &verified(MESH_ROOT)));
    assert_eq!(t["server_certs"][0]["subject"], "");
    assert_eq!(strings(&t["server_certs"][0]["san_uris"]), ["spiffe://cluster.local/ns/default/sa/ratings"]);
    // The client's certificate expired 40 minutes after this handshake: valid then.
    assert_eq!(strings(&t["client_certs"][0]["san_uris"]), ["spiffe://cluster.local/ns/default/sa/reviews"]);
    assert_eq!(t["client_certs"][0]["expires_in_secs"], 2397);
}

#[test]
fn a_foreign_root_is_an_unknown_issuer_named_by_the_chain() {
    let j = json("tls12-mtls-istio.pcap", &["--ca", &pki("other-ca.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    let unknown = failed("unknown issuer: CN=cluster.local root,O=cluster.local");
    assert_eq!((&t["server_chain"], &t["client_chain"]), (&unknown, &unknown));
    assert_eq!(
        reading(&j.summary, "10.99.0.1:9080"),
        "all mutual TLS (as with STRICT); 2 of 2 certificate chains not verified against the mesh root \
         (first: server chain: unknown issuer: CN=cluster.local root,O=cluster.local)"
    );
    // Both roots given (two files): the mesh root signs the chains.
    let j = json("tls12-mtls-istio.pcap", &["--ca", &pki("other-ca.crt"), "--ca", &pki("ca.crt")]);
    assert_eq!(flow(&j.flows, 1)["tls"]["server_chain"], verified(MESH_ROOT));

    // tls-alerts.pcap flow 23: a client certificate from another CA, refused by the server
    // (unknown_ca): its list names that CA; the server's own chain is the mesh's.
    let j = json("tls-alerts.pcap", &["--ca", &pki("ca.crt")]);
    let t = &flow(&j.flows, 23)["tls"];
    assert_eq!(t["server_chain"], verified(MESH_ROOT));
    assert_eq!(t["client_chain"], failed("unknown issuer: CN=Other Test Root,O=Other Test"));
    assert_eq!(t["alerts"][0]["description"], "unknown_ca");
}

#[test]
fn validity_is_checked_at_the_capture_time() {
    let j = json("tls12-expired-cert.pcap", &["--ca", &pki("ca.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!(
        t["server_chain"],
        failed("expired at capture time (CN=expired.example.test,O=Example Test, not after 2021-01-01T00:00:00Z)")
    );
    assert_eq!(t["client_chain"], Value::Null, "no client certificate");
    let t = &flow(&j.flows, 15)["tls"];
    assert_eq!(
        t["server_chain"],
        failed("not yet valid at capture time (CN=future.example.test,O=Example Test, not before 2099-01-01T00:00:00Z)")
    );
    assert_eq!(
        reading(&j.summary, "10.99.0.1:8443"),
        "TLS without client certificates (not Istio mTLS); 1 of 1 certificate chains not verified against \
         the mesh root (first: server chain: expired at capture time (CN=expired.example.test,O=Example Test, \
         not after 2021-01-01T00:00:00Z))"
    );
}

#[test]
fn a_chain_with_an_intermediate_over_many_segments() {
    // RSA-4096 leaf + intermediate + root, sent over a 576-byte MTU.
    let j = json("tls12-small-mtu-chain.pcap", &["--ca", &pki("big-root.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!(t["server_chain"], verified("CN=Big Test Root CA,O=Big Test"));
    let j = json("tls12-small-mtu-chain.pcap", &["--ca", &pki("ca.crt")]);
    assert_eq!(
        flow(&j.flows, 1)["tls"]["server_chain"],
        failed("unknown issuer: CN=Big Test Root CA,O=Big Test")
    );
}

#[test]
fn without_ca_nothing_is_checked() {
    let j = json("tls12-mtls-istio.pcap", &[]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!((&t["server_chain"], &t["client_chain"]), (&Value::Null, &Value::Null));
    assert!(!reading(&j.summary, "10.99.0.1:9080").contains("mesh root"));
    // TLS 1.3 without keys: the certificates are encrypted, nothing to check.
    let j = json("tls13-mtls.pcap", &["--ca", &pki("ca.crt")]);
    let t = &flow(&j.flows, 1)["tls"];
    assert_eq!((&t["server_chain"], &t["client_chain"]), (&Value::Null, &Value::Null));
}

#[test]
fn the_table_marks_each_list() {
    let cap = capture("tls-alerts.pcap");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--ca", &pki("ca.crt")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(
        "    client cert: subject CN=intruder,O=Other Test; issuer CN=Other Test Root,O=Other Test; \
         chain ✗ unknown issuer: CN=Other Test Root,O=Other Test\n"
    ));
    // A server chain that failed is shown without -v.
    assert!(r.stdout.contains(
        "    server cert: subject CN=expired.example.test,O=Example Test; issuer CN=cluster.local root,O=cluster.local; \
         chain ✗ expired at capture time (CN=expired.example.test,O=Example Test, not after 2021-01-01T00:00:00Z)\n"
    ));
    let cap = capture("tls12-mtls-istio.pcap");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--ca", &pki("ca.crt"), "-vv"]);
    assert!(r.stdout.contains(
        "    server certificate chain (2 certificates): chain ✓ CN=cluster.local root,O=cluster.local\n"
    ));
    assert!(r.stdout.contains(
        "    client certificate chain (1 certificate): chain ✓ CN=cluster.local root,O=cluster.local\n"
    ));
}

#[test]
fn a_bad_ca_file_is_one_error_line_naming_it() {
    let cap = capture("tls12-mtls-istio.pcap");
    let key = pki("ca.key");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--ca", &key]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        format!(
            "tlspeek: --ca {key} holds no PEM certificate; give the CA certificates as PEM, like Istio's root-cert.pem\n"
        )
    );
    assert!(r.stdout.is_empty());
    let missing = pki("missing.pem");
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--ca", &missing]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with(&format!("tlspeek: cannot read --ca {missing}: ")), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn key_usage_intermediates_and_constraints() {
    // captures/make-chain.sh: OpenSSL s_server/s_client with the chains of pki.py's chains().
    let j = json("tls12-chain-checks.pcap", &["--ca", &pki("ca.crt")]);
    let check = |id: u64| {
        let t = &flow(&j.flows, id)["tls"];
        (t["server_chain"].clone(), t["client_chain"].clone())
    };
    // The same certificate (extended key usage serverAuth only) verifies as the server's and
    // not as the client's: each list is checked for the side that sent it.
    assert_eq!(
        check(1),
        (verified(MESH_ROOT), failed("leaf not usable by a client (extended key usage lacks clientAuth)"))
    );
    // A mesh intermediate (pathLen 0, as with an Istio plug-in CA) between leaf and root.
    assert_eq!(check(20), (verified(MESH_ROOT), verified(MESH_ROOT)));
    assert_eq!(
        flow(&j.flows, 20)["tls"]["server_certs"][0]["issuer"],
        "CN=cluster.local intermediate,O=cluster.local"
    );
    // A CA under that intermediate breaks its pathLen.
    assert_eq!(check(39), (failed("path length constraint exceeded"), verified(MESH_ROOT)));
    // A workload certificate (CA:FALSE) used as an issuer.
    assert_eq!(
        check(60),
        (failed("CA constraint: an issuer is not a CA (basicConstraints)"), verified(MESH_ROOT))
    );
    assert_eq!(
        reading(&j.summary, "10.94.0.1:8443"),
        "all mutual TLS (as with STRICT); 1 of 2 certificate chains not verified against the mesh root \
         (first: client chain: leaf not usable by a client (extended key usage lacks clientAuth))"
    );
    assert_eq!(
        reading(&j.summary, "10.94.0.1:8444"),
        "all mutual TLS (as with STRICT); identities signed by the mesh root (CN=cluster.local root,O=cluster.local)"
    );
}

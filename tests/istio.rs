//! The Istio scenarios of captures/istio.md (made by captures/make-istio.sh with real TLS and
//! HTTP stacks between two namespaces): per-flow verdicts, decoded SNI parts, SPIFFE identities,
//! per-server readings and the exit codes of --expect mtls / --fail-on-plaintext.

mod common;

use common::{capture, json, one, server, strings, tlspeek};
use serde_json::{json, Value};

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const ISTIO_ALPN: [&str; 3] = ["istio-peer-exchange", "istio-http/1.1", "istio"];

fn path(name: &str) -> String {
    capture(name).to_str().unwrap().to_string()
}

#[test]
fn tls13_sidecar_mtls_confirmed_by_xfcc_on_the_loopback_leg() {
    let j = json("istio-mtls-tls13-any.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    let tls = one(&j.flows, "tls");
    assert_eq!(
        (tls["client"].as_str(), tls["server"].as_str()),
        (Some("10.97.0.2:51902"), Some("10.97.0.1:9080"))
    );
    let t = &tls["tls"];
    assert_eq!(t["version"], "TLS 1.3");
    assert_eq!(strings(&t["alpn_offered"]), ISTIO_ALPN);
    let i = &tls["istio"];
    assert_eq!(i["leg"], "pod_network");
    assert_eq!(
        i["sni"],
        json!({"direction": "outbound", "port": 9080, "subset": null, "fqdn": "reviews.default.svc.cluster.local",
               "service": "reviews", "namespace": "default"})
    );
    assert_eq!(i["alpn"]["app_protocol"], "http/1.1");
    // The client's first encrypted record (Certificate) is hundreds of bytes: likely; the XFCC
    // header on the Envoy -> app leg to the same port during the connection makes it yes.
    assert_eq!(t["mtls"], "yes");
    let first = t["client_encrypted_records"][0].as_u64().unwrap();
    assert!(first > 600, "{first}");
    let reason = t["mtls_reason"].as_str().unwrap();
    assert!(reason.starts_with("TLS 1.3: client's first encrypted records "), "{reason}");
    assert!(
        reason.ends_with(&format!(
            "; confirmed: the Envoy -> app leg to port 9080 carried x-forwarded-client-cert URI={PRODUCTPAGE} during this connection"
        )),
        "{reason}"
    );
    assert_eq!(i["client_identity"]["uri"], PRODUCTPAGE);
    assert_eq!(i["client_identity"]["service_account"], "productpage");
    assert_eq!(i["server_identity"]["uri"], REVIEWS);

    let leg = one(&j.flows, "http");
    assert_eq!(
        (leg["client"].as_str(), leg["server"].as_str()),
        (Some("127.0.0.6:38402"), Some("127.0.0.1:9080"))
    );
    assert_eq!(leg["istio"]["leg"], "inbound_passthrough");
    let x = &leg["istio"]["xfcc"][0];
    assert_eq!((x["by"].as_str(), x["uri"].as_str()), (Some(REVIEWS), Some(PRODUCTPAGE)));
    assert_eq!(x["hash"].as_str().map(str::len), Some(64));
    let paths: Vec<&str> =
        leg["http"]["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/reviews/0", "/reviews/1"]);

    assert_eq!(server(&j.summary, "10.97.0.1:9080")["reading"], "all mutual TLS (as with STRICT)");
    assert_eq!(server(&j.summary, "10.97.0.1:9080")["service"], "reviews.default:9080");
    assert_eq!(
        server(&j.summary, "127.0.0.1:9080")["reading"],
        "loopback leg inside the pod (plaintext by design)"
    );
    assert_eq!(j.summary["services"][0]["name"], "reviews.default:9080");

    // The loopback leg is exempt by default; checking it too fails on its plaintext.
    let ok = tlspeek(&["-r", &path("istio-mtls-tls13-any.pcap"), "--expect", "mtls"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(ok.stdout.contains("--expect mtls: passed, 1 flow checked"), "{}", ok.stdout);
    let strict = tlspeek(&["-r", &path("istio-mtls-tls13-any.pcap"), "--expect", "mtls", "--check-loopback"]);
    assert_eq!(strict.code, 1);
    assert!(
        strict.stdout.contains("flow 13 127.0.0.6:38402 -> 127.0.0.1:9080: plaintext http (GET /reviews/0)"),
        "{}",
        strict.stdout
    );
}

#[test]
fn tls12_mtls_certificates_and_expiry_warning() {
    let j = json("istio-mtls-tls12.pcap", &[]);
    let f = one(&j.flows, "tls");
    let t = &f["tls"];
    assert_eq!((t["version"].as_str(), t["mtls"].as_str()), (Some("TLS 1.2"), Some("yes")));
    assert_eq!(t["alpn_selected"], "istio-peer-exchange");
    assert_eq!(f["istio"]["sni"]["service"], "ratings");
    assert_eq!(f["istio"]["server_identity"]["uri"], "spiffe://cluster.local/ns/default/sa/ratings");
    assert_eq!(f["istio"]["client_identity"]["uri"], REVIEWS);
    // istiod-style certificates: no subject, the SPIFFE ID alone; the client's expires ~40 min
    // after the capture (made fresh by each regeneration, hence the range).
    let c = &t["client_certs"][0];
    assert_eq!(c["subject"], "");
    let left = c["expires_in_secs"].as_i64().unwrap();
    assert!((2300..2460).contains(&left), "{left}");
    assert_eq!(strings(&f["flags"]), ["cert_expiring"]);
    let w = f["warnings"][0].as_str().unwrap();
    assert!(w.starts_with(&format!("client certificate {REVIEWS} expires 3")), "{w}");
    assert!(w.ends_with("; --cert-warn 1h)"), "{w}");
    assert_eq!(j.summary["cert_warnings"], 1);
    // A shorter window: no warning.
    let quiet = json("istio-mtls-tls12.pcap", &["--cert-warn", "30m"]);
    assert_eq!(strings(&quiet.flows[0]["flags"]), Vec::<String>::new());
    assert_eq!(quiet.flows[0]["warnings"], json!([]));
    assert_eq!(tlspeek(&["-r", &path("istio-mtls-tls12.pcap"), "--expect", "mtls"]).code, 0);
}

#[test]
fn destination_rule_disable_plaintext_with_peer_metadata() {
    let j = json("istio-disable-plaintext.pcap", &[]);
    let f = one(&j.flows, "http");
    let i = &f["istio"];
    assert_eq!(i["peer_metadata"]["NAME"], "productpage-v1-6b746f74dc-9stvs");
    assert_eq!(i["peer_metadata"]["NAMESPACE"], "default");
    assert_eq!(i["peer_metadata"]["WORKLOAD_NAME"], "productpage-v1");
    assert_eq!(i["peer_metadata"]["LABELS"], json!({"app": "productpage", "version": "v1"}));
    assert_eq!(i["peer_metadata"]["ISTIO_VERSION"], "1.22.1");
    assert_eq!(
        i["peer_metadata_id"],
        "sidecar~10.97.0.2~productpage-v1-6b746f74dc-9stvs.default~default.svc.cluster.local"
    );
    let req = &f["http"]["requests"][0];
    let auth: Vec<&Value> = req["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("authorization"))
        .collect();
    assert_eq!(auth.len(), 1);
    assert!(auth[0][1].as_str().unwrap().starts_with("<redacted "), "{}", auth[0][1]);
    assert_eq!(
        server(&j.summary, "10.97.0.1:9080")["reading"],
        "plaintext only (client sidecar off, DestinationRule DISABLE, or no sidecar); 1 of 1 plaintext from a client sidecar (x-envoy-* headers)"
    );
    for flag in [&["--expect", "mtls"][..], &["--fail-on-plaintext"]] {
        let mut args = vec!["-r".to_string(), path("istio-disable-plaintext.pcap"), "--json".into()];
        args.extend(flag.iter().map(|s| s.to_string()));
        let run = tlspeek(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(run.code, 1, "{flag:?}");
        assert!(
            run.stderr.contains("flow 1 10.97.0.2:51920 -> 10.97.0.1:9080: plaintext http (GET /reviews/0)"),
            "{}",
            run.stderr
        );
        let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["expectations"]["failed"], 1);
        assert_eq!(summary["expectations"]["violations"][0]["id"], 1);
    }
}

#[test]
fn strict_server_resets_plaintext() {
    let j = json("istio-strict-reset.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    for f in &j.flows {
        assert_eq!(
            (f["protocol"].as_str(), f["end"].as_str(), f["reset_by"].as_str()),
            (Some("http"), Some("reset"), Some("server"))
        );
        assert_eq!(f["http"]["requests_total"], 1);
        assert_eq!(f["http"]["responses_total"], 0);
    }
    let s = server(&j.summary, "10.97.0.1:9080");
    assert_eq!(
        (s["plaintext_refused"].as_u64(), s["plaintext"].as_u64(), s["plaintext_from_sidecar"].as_u64()),
        (Some(2), Some(0), Some(2))
    );
    assert_eq!(
        s["reading"],
        "plaintext refused (reset after plaintext request: a STRICT server met a DISABLE client); 2 of 2 plaintext from a client sidecar (x-envoy-* headers)"
    );
    let run = tlspeek(&["-r", &path("istio-strict-reset.pcap"), "--expect", "mtls"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("--expect mtls: FAILED, 2 of 2 flows checked:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("plaintext http (GET /reviews/0), refused by the server (reset)"),
        "{}",
        run.stdout
    );
}

#[test]
fn permissive_server_takes_both() {
    let j = json("istio-permissive.pcap", &[]);
    let tls = one(&j.flows, "tls");
    assert_eq!(tls["tls"]["mtls"], "likely", "{}", tls["tls"]["mtls_reason"]);
    assert_eq!(tls["client"], "10.97.0.2:51940");
    let http = one(&j.flows, "http");
    assert_eq!(http["client"], "10.97.0.2:51950");
    assert_eq!(http["http"]["requests"][0]["path"], "/reviews/2");
    assert_eq!(http["istio"], Value::Null, "no sidecar headers from outside the mesh");
    let s = server(&j.summary, "10.97.0.1:9080");
    assert_eq!((s["mtls"].as_u64(), s["plaintext"].as_u64()), (Some(1), Some(1)));
    assert_eq!(
        s["reading"],
        "mixed plaintext and mTLS (as with PERMISSIVE); 1 of 1 mTLS inferred from record sizes"
    );
    assert_eq!(s["mtls_inferred"], 1);
    assert_eq!(s["plaintext_from_sidecar"], 0, "curl from outside the mesh sends no x-envoy-* headers");
    let run = tlspeek(&["-r", &path("istio-permissive.pcap"), "--expect", "mtls"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("--expect mtls: FAILED, 1 of 2 flows checked:"), "{}", run.stdout);
}

#[test]
fn health_probes_are_exempt_unless_asked() {
    let j = json("istio-health-probes.pcap", &[]);
    let ports: Vec<&str> = j.flows.iter().map(|f| f["server"].as_str().unwrap()).collect();
    assert_eq!(ports, ["10.97.0.1:15020", "10.97.0.1:15021", "10.97.0.1:15090"]);
    let paths: Vec<&str> =
        j.flows.iter().map(|f| f["http"]["requests"][0]["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/app-health/reviews/readyz", "/healthz/ready", "/stats/prometheus"]);
    for f in &j.flows {
        assert!(f["istio"]["port_role"].is_string(), "{}", f["istio"]);
        assert_eq!(
            server(&j.summary, f["server"].as_str().unwrap())["reading"],
            "plaintext health/metrics port (exempt)"
        );
    }
    let p = path("istio-health-probes.pcap");
    assert_eq!(tlspeek(&["-r", &p, "--expect", "mtls", "--fail-on-plaintext"]).code, 0);
    let run = tlspeek(&["-r", &p, "--fail-on-plaintext", "--exempt-ports", "15021"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("--fail-on-plaintext: FAILED, 2 of 2 flows checked:"), "{}", run.stdout);
    assert!(run.stdout.contains(
        "flow 1 10.97.0.3:52020 -> 10.97.0.1:15020: plaintext http (GET /app-health/reviews/readyz)"
    ));
}

#[test]
fn bad_input_exit_code_wins_over_a_failed_expectation() {
    let run = tlspeek(&[
        "-r",
        &path("istio-disable-plaintext.pcap"),
        "-r",
        &path("not-a-capture.pcap"),
        "--expect",
        "mtls",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("--expect mtls: FAILED"), "{}", run.stdout);
}

// Captures made under Istio's real iptables rules (captures/istio-iptables.md): the proxy runs
// as uid 1337, inbound traffic is REDIRECTed to 15006 and reaches the app from 127.0.0.6 at the
// pod IP, the app's outbound connection is REDIRECTed to 127.0.0.1:15001.

#[test]
fn inbound_leg_to_the_pod_ip_is_a_leg_not_plaintext_to_the_server() {
    let j = json("istio-inbound-podip-any.pcap", &[]);
    assert_eq!(j.flows.len(), 2);
    let tls = one(&j.flows, "tls");
    assert_eq!(
        (tls["client"].as_str(), tls["server"].as_str()),
        (Some("10.244.1.5:52110"), Some("10.244.2.7:9080"))
    );
    assert_eq!(tls["tls"]["mtls"], "yes", "{}", tls["tls"]["mtls_reason"]);
    let leg = one(&j.flows, "http");
    assert_eq!(
        (leg["client"].as_str(), leg["server"].as_str()),
        (Some("127.0.0.6:38410"), Some("10.244.2.7:9080"))
    );
    assert_eq!(leg["istio"]["leg"], "inbound_passthrough");
    let paths: Vec<&str> =
        leg["http"]["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/reviews/0", "/reviews/1"]);
    let s = server(&j.summary, "10.244.2.7:9080");
    assert_eq!(
        [&s["flows"], &s["mtls"], &s["plaintext"], &s["legs"], &s["plaintext_from_sidecar"]]
            .map(|v| v.as_u64()),
        [Some(2), Some(1), Some(0), Some(1), Some(0)]
    );
    assert_eq!(s["reading"], "all mutual TLS (as with STRICT); +1 inbound leg (plaintext by design)");
    assert_eq!(j.summary["servers"].as_array().unwrap().len(), 1);
    let svc = &j.summary["services"][0];
    assert_eq!(
        (svc["name"].as_str(), svc["reading"].as_str()),
        (Some("reviews.default:9080"), Some("all mutual TLS (as with STRICT)"))
    );
    for check in ["--expect=mtls", "--fail-on-plaintext"] {
        let run = tlspeek(&["-r", &path("istio-inbound-podip-any.pcap"), check]);
        assert_eq!(run.code, 0, "{check}: {}", run.stdout);
    }
    let table = tlspeek(&["-r", &path("istio-inbound-podip-any.pcap"), "--summary-only"]).stdout;
    assert!(
        table.contains("10.244.2.7:9080  reviews.default:9080  2      1     0            0          0        1     all mutual TLS (as with STRICT); +1 inbound leg (plaintext by design)"),
        "{table}"
    );
}

#[test]
fn redirected_outbound_connection_is_one_flow_with_its_original_destination() {
    for threads in ["1", "2"] {
        let j = json("istio-outbound-redirect-any.pcap", &["--threads", threads]);
        assert_eq!(j.flows.len(), 2, "two halves on lo are one connection");
        let app = one(&j.flows, "http");
        assert_eq!(
            [&app["client"], &app["server"], &app["original_dst"], &app["istio"]["leg"]].map(|v| v.as_str()),
            [
                Some("10.244.1.5:45010"),
                Some("127.0.0.1:15001"),
                Some("10.96.120.15:9080"),
                Some("app_to_envoy")
            ]
        );
        assert_eq!((app["client_by"].as_str(), app["end"].as_str()), (Some("syn"), Some("closed")));
        assert_eq!(
            [app["packets"]["client"].as_u64(), app["packets"]["server"].as_u64()],
            [Some(7), Some(5)]
        );
        let h = &app["http"];
        let exchange: Vec<(&str, u64)> = h["requests"]
            .as_array()
            .unwrap()
            .iter()
            .zip(h["responses"].as_array().unwrap())
            .map(|(q, r)| (q["path"].as_str().unwrap(), r["status"].as_u64().unwrap()))
            .collect();
        assert_eq!(exchange, [("/reviews/0", 200), ("/reviews/1", 200)]);
        let mtls = one(&j.flows, "tls");
        assert_eq!(mtls["original_dst"], Value::Null);
        assert_eq!(mtls["tls"]["mtls"], "likely");
        let names: Vec<&str> =
            j.summary["servers"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["10.244.2.7:9080", "127.0.0.1:15001"], "the ClusterIP is no server");
        assert_eq!(
            server(&j.summary, "10.244.2.7:9080")["reading"],
            "all mutual TLS (inferred from record sizes)"
        );
        assert_eq!(
            server(&j.summary, "127.0.0.1:15001")["reading"],
            "loopback leg inside the pod (plaintext by design)"
        );
    }
    for check in ["--expect=mtls", "--fail-on-plaintext"] {
        let run = tlspeek(&["-r", &path("istio-outbound-redirect-any.pcap"), check]);
        assert_eq!(run.code, 0, "{check}: {}", run.stdout);
    }
    let table = tlspeek(&["-r", &path("istio-outbound-redirect-any.pcap")]).stdout;
    assert!(table.contains("dialled 10.96.120.15:9080, redirected by iptables"), "{table}");
}

#[test]
fn disable_under_redirect_fails_only_on_the_real_plaintext() {
    let j = json("istio-disable-redirect-any.pcap", &["--fail-on-plaintext"]);
    assert_eq!(j.flows.len(), 2);
    let e = &j.summary["expectations"];
    assert_eq!((e["checked"].as_u64(), e["failed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(e["violations"][0]["client"], "10.244.1.5:52130");
    assert_eq!(e["violations"][0]["server"], "10.244.2.7:9080");
    assert_eq!(j.run.code, 1);
    let s = server(&j.summary, "10.244.2.7:9080");
    assert_eq!((s["plaintext"].as_u64(), s["plaintext_from_sidecar"].as_u64()), (Some(1), Some(1)));
}

//! `--mesh-config`: the configured Istio policy beside the readings of the shipped Istio
//! captures (captures/istio.md), with the manifests and `kubectl get -o json` output of
//! tests/fixtures/mesh-config/. Exact `policy` objects, findings, table lines and exit codes.

mod common;

use common::{json, tlspeek};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/mesh-config/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The `policy` of server (or service) `name` of a run on `cap` with these config files.
fn policy(cap: &str, list: &str, name: &str, files: &[&str]) -> Value {
    let paths: Vec<String> = files.iter().map(|f| fixture(f)).collect();
    let mut extra = Vec::new();
    for p in &paths {
        extra.extend(["--mesh-config", p.as_str()]);
    }
    let j = json(cap, &extra);
    assert_eq!(j.run.code, 0, "stderr: {}", j.run.stderr);
    let s = j.summary[list].as_array().unwrap().iter().find(|s| s["name"] == name);
    s.unwrap_or_else(|| panic!("no {name} in {list}: {}", j.summary[list]))["policy"].clone()
}

#[allow(clippy::too_many_arguments)]
fn expected(
    (namespace, from): (&str, &str),
    pa: Option<&str>,
    (mode, scope): (&str, &str),
    may_apply: &[&str],
    dr: Option<&str>,
    tls: Option<&str>,
    findings: &[&str],
    text: &str,
) -> Value {
    json!({
        "namespace": namespace, "namespace_from": from, "peer_authentication": pa, "mode": mode,
        "scope": scope, "may_apply": may_apply, "destination_rule": dr, "tls_mode": tls,
        "findings": findings, "text": text,
    })
}

#[test]
fn strict_server_meets_a_disable_client_and_resets_it() {
    // Scenario 4: plaintext from a client sidecar (Host reviews:9080, its peer metadata says
    // namespace default), reset twice by the STRICT server.
    let p = policy(
        "istio-strict-reset.pcap",
        "servers",
        "10.97.0.1:9080",
        &["strict-mesh.yaml", "disable-client.yaml"],
    );
    assert_eq!(
        p,
        expected(
            ("default", "host"),
            Some("istio-system/default"),
            ("STRICT", "mesh"),
            &[],
            Some("default/reviews-plaintext"),
            Some("DISABLE"),
            &["disable_client_to_strict_server"],
            "STRICT (mesh policy istio-system/default); clients: DestinationRule default/reviews-plaintext tls DISABLE; \
             ! a DISABLE client towards a STRICT server (its plaintext is reset)",
        )
    );
    // Without the STRICT policy, Istio's default (PERMISSIVE) does not explain the resets.
    let p = policy("istio-strict-reset.pcap", "servers", "10.97.0.1:9080", &["disable-client.yaml"]);
    assert_eq!(
        (&p["mode"], &p["scope"], &p["peer_authentication"]),
        (&json!("PERMISSIVE"), &json!("default"), &Value::Null)
    );
    assert_eq!(p["findings"], json!(["plaintext_refused_not_strict"]));
}

#[test]
fn plaintext_accepted_where_strict_applies() {
    // Scenario 3: the server answered plaintext; the configuration says STRICT.
    let p = policy("istio-disable-plaintext.pcap", "servers", "10.97.0.1:9080", &["strict-mesh.yaml"]);
    assert_eq!(
        p,
        expected(
            ("default", "host"),
            Some("istio-system/default"),
            ("STRICT", "mesh"),
            &[],
            None,
            None,
            &["plaintext_accepted_under_strict"],
            "STRICT (mesh policy istio-system/default); ! plaintext accepted where STRICT applies",
        )
    );
    // With the DestinationRule that made the client send plaintext, and no STRICT: consistent.
    let p = policy("istio-disable-plaintext.pcap", "servers", "10.97.0.1:9080", &["disable-client.yaml"]);
    assert_eq!(
        p["text"],
        "PERMISSIVE (no PeerAuthentication applies: Istio's default); clients: DestinationRule default/reviews-plaintext tls DISABLE"
    );
    assert_eq!(p["findings"], json!([]));
}

#[test]
fn permissive_namespace_mixed_server_and_a_service_ready_for_strict() {
    // Scenario 5: one mTLS flow named reviews.default by its SNI, one curl in plaintext.
    let files = ["permissive-namespace.yaml"];
    let server = policy("istio-permissive.pcap", "servers", "10.97.0.1:9080", &files);
    let text = "PERMISSIVE (namespace policy default/default); may apply (selector not visible in packets): \
                default/reviews-v2 (app=reviews,version=v2); clients: DestinationRule default/reviews, tls not set (auto mTLS)";
    assert_eq!(
        server,
        expected(
            ("default", "sni"),
            Some("default/default"),
            ("PERMISSIVE", "namespace"),
            &["default/reviews-v2 (app=reviews,version=v2)"],
            Some("default/reviews"),
            None,
            &[],
            text,
        )
    );
    // The service's flows (those with the SNI) were all mTLS.
    let service = policy("istio-permissive.pcap", "services", "reviews.default:9080", &files);
    assert_eq!(service["findings"], json!(["ready_for_strict"]));
    assert_eq!(service["text"], format!("{text}; ! only mTLS received: ready for STRICT"));
}

#[test]
fn kubectl_json_output_workload_port_override_and_root_destination_rule() {
    // `kubectl get peerauthentication,destinationrule -A -o json`: mesh STRICT, a workload
    // policy for app=reviews (UNSET, port 9080 PERMISSIVE), a root-namespace rule for *.local.
    let p = policy("istio-mtls-tls13-any.pcap", "servers", "10.97.0.1:9080", &["cluster.json"]);
    assert_eq!(
        p,
        expected(
            ("default", "sni"),
            Some("default/reviews"),
            ("PERMISSIVE", "port"),
            &[],
            Some("istio-system/default"),
            Some("ISTIO_MUTUAL"),
            &["ready_for_strict"],
            "PERMISSIVE (port 9080 of default/reviews); clients: DestinationRule istio-system/default tls ISTIO_MUTUAL; \
             ! only mTLS received: ready for STRICT",
        )
    );
    // The Envoy -> app leg inside the pod has no policy of its own.
    let p = policy("istio-mtls-tls13-any.pcap", "servers", "127.0.0.1:9080", &["cluster.json"]);
    assert_eq!(p, Value::Null);
    // ratings (TLS 1.2, namespace from the SNI): the app=reviews policy is not its own.
    let p = policy("istio-mtls-tls12.pcap", "servers", "10.97.0.1:9080", &["cluster.json"]);
    assert_eq!(
        (&p["peer_authentication"], &p["mode"], &p["scope"]),
        (&json!("istio-system/default"), &json!("STRICT"), &json!("mesh"))
    );
    assert_eq!(p["findings"], json!([]));
}

#[test]
fn workload_selector_matched_by_the_service_name() {
    let p =
        policy("istio-mtls-tls13-any.pcap", "services", "reviews.default:9080", &["workload-strict.yaml"]);
    assert_eq!(
        (&p["peer_authentication"], &p["mode"], &p["scope"]),
        (&json!("default/reviews"), &json!("STRICT"), &json!("workload"))
    );
    assert_eq!(p["findings"], json!([]));
    let p = policy("istio-mtls-tls12.pcap", "services", "ratings.default:9080", &["workload-strict.yaml"]);
    assert_eq!(
        (&p["peer_authentication"], &p["mode"], &p["scope"]),
        (&Value::Null, &json!("PERMISSIVE"), &json!("default"))
    );
}

#[test]
fn servers_without_namespace_evidence() {
    // Probes from the node: no SNI, identity or service Host.
    let p = policy("istio-health-probes.pcap", "servers", "10.97.0.1:15021", &["strict-mesh.yaml"]);
    assert_eq!(
        p,
        json!({
            "namespace": null, "namespace_from": null, "peer_authentication": null, "mode": null,
            "scope": null, "may_apply": [], "destination_rule": null, "tls_mode": null,
            "findings": [], "text": "policy unknown (namespace not seen)",
        })
    );
}

#[test]
fn without_mesh_config_policy_is_null() {
    let j = json("istio-permissive.pcap", &[]);
    for list in ["servers", "services"] {
        for s in j.summary[list].as_array().unwrap() {
            assert_eq!(s["policy"], Value::Null, "{s}");
        }
    }
}

#[test]
fn bad_files_are_named_exit_2_and_the_others_still_apply() {
    let cap = common::capture("istio-strict-reset.pcap");
    let (good, bad) = (fixture("strict-mesh.yaml"), fixture("bad-mode.yaml"));
    let missing = fixture("missing.yaml");
    let binary = common::capture("istio-permissive.pcap");
    let args = [
        "-r",
        cap.to_str().unwrap(),
        "--json",
        "--mesh-config",
        &good,
        "--mesh-config",
        &bad,
        "--mesh-config",
        &missing,
        "--mesh-config",
        binary.to_str().unwrap(),
    ];
    let r = tlspeek(&args);
    assert_eq!(r.code, 2);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("tlspeek: --mesh-config {bad}: PeerAuthentication default/default: unknown mTLS mode 'STRIKT'"),
            format!("tlspeek: --mesh-config {missing}: cannot read: No such file or directory (os error 2)"),
            format!(
                "tlspeek: --mesh-config {}: not UTF-8 text (a YAML manifest or `kubectl get -o json` output is expected)",
                binary.display()
            ),
        ]
    );
    let summary: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["errors"].as_array().unwrap().len(), 3);
    assert_eq!(summary["servers"][0]["policy"]["mode"], "STRICT");
}

#[test]
fn table_prints_the_policy_under_the_reading() {
    let cap = common::capture("istio-strict-reset.pcap");
    let (a, b) = (fixture("strict-mesh.yaml"), fixture("disable-client.yaml"));
    let r = tlspeek(&["-r", cap.to_str().unwrap(), "--mesh-config", &a, "--mesh-config", &b]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("  10.97.0.1:9080 ")).unwrap();
    assert_eq!(
        lines[at + 1],
        "    policy: STRICT (mesh policy istio-system/default); clients: DestinationRule default/reviews-plaintext tls DISABLE; \
         ! a DISABLE client towards a STRICT server (its plaintext is reset)"
    );
}

//! Istio ambient mode on captures made with the real ztunnel (captures/ambient.md,
//! captures/make-ambient.sh): HBONE recognised and proven with the key log, the CONNECT targets,
//! the legs inside a pod from `tcpdump -i any` (SLL2), plaintext that bypassed ztunnel, UDP
//! that no mesh proxies, and the exit codes of --fail-on-plaintext / --expect mtls.

mod common;

use common::{capture, json, server, tlspeek};
use serde_json::{json, Value};

const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/server";

fn path(name: &str) -> String {
    capture(name).to_str().unwrap().to_string()
}

fn flow<'a>(flows: &'a [Value], client: &str, server: &str) -> &'a Value {
    flows
        .iter()
        .find(|f| f["client"] == client && f["server"] == server)
        .unwrap_or_else(|| panic!("no flow {client} -> {server}"))
}

fn legs(flows: &[Value]) -> Vec<(String, String)> {
    flows
        .iter()
        .map(|f| {
            (f["server"].as_str().unwrap().to_string(), f["istio"]["leg"].as_str().unwrap_or("-").to_string())
        })
        .collect()
}

fn hbone(flows: &[Value]) -> &Value {
    let v: Vec<&Value> = flows.iter().filter(|f| f["istio"]["leg"] == "hbone").collect();
    assert_eq!(v.len(), 1, "one HBONE connection (pooled)");
    v[0]
}

#[test]
fn client_pod_hbone_proven_with_its_connect_streams_and_the_passthrough() {
    let keys = path("ambient.keys");
    let j = json("ambient-client-any.pcap", &["--keylog", &keys, "--mesh-mode", "ambient"]);
    let h = hbone(&j.flows);
    assert_eq!(h["server"], "10.99.0.2:15008");
    assert_eq!(h["on_loopback"], false);
    let t = &h["tls"];
    assert_eq!(t["version"], "TLS 1.3");
    assert_eq!(t["sni"], Value::Null);
    assert_eq!(t["alpn_offered"], json!(["h2"]));
    assert_eq!(t["mtls"], "yes");
    assert_eq!(t["decryption"]["status"], "decrypted");
    let i = &h["istio"];
    assert_eq!((i["mode"].as_str(), i["port_role"].as_str()), (Some("ambient"), Some("HBONE mTLS tunnel")));
    assert_eq!(i["client_identity"]["uri"], CLIENT_ID);
    assert_eq!(i["server_identity"]["uri"], SERVER_ID);
    // Three app connections, one pooled HBONE connection: one CONNECT stream each, all to the
    // pod's ip:port (the third was dialled to the Service VIP 10.96.0.10:80).
    assert_eq!(
        i["hbone"]["targets"],
        json!([
            {"stream": 1, "authority": "10.99.0.2:8080", "status": 200, "client": "10.99.0.1:41001", "service": null},
            {"stream": 3, "authority": "10.99.0.2:8080", "status": 200, "client": "10.99.0.1:41002", "service": null},
            {"stream": 5, "authority": "10.99.0.2:8080", "status": 200, "client": "10.99.0.1:41003",
             "service": "server.default.svc.cluster.local"},
        ])
    );
    // The app's side: REDIRECTed to ztunnel's 15001 on lo, paired with the dialled address.
    let dialled: Vec<(&str, &str)> = j
        .flows
        .iter()
        .filter(|f| f["istio"]["leg"] == "app_to_ztunnel")
        .map(|f| (f["original_dst"].as_str().unwrap(), f["http"]["requests"][0]["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        dialled,
        [
            ("10.99.0.2:8080", "/index.txt"),
            ("10.99.0.2:8080", "/index.txt"),
            ("10.96.0.10:80", "/index.txt"),
            ("10.99.0.3:8081", "/index.txt")
        ]
    );
    assert!(j
        .flows
        .iter()
        .filter(|f| f["istio"]["leg"] == "app_to_ztunnel")
        .all(|f| f["on_loopback"] == true));
    // ztunnel passed the request to a destination outside the mesh through in plaintext.
    let out = flow(&j.flows, "10.99.0.1:41182", "10.99.0.3:8081");
    assert_eq!((out["istio"]["leg"].as_str(), out["protocol"].as_str()), (Some("bypass"), Some("http")));
    let s = &j.summary;
    assert_eq!(s["mesh_mode"], "ambient");
    assert_eq!(server(s, "10.99.0.2:15008")["reading"], "all HBONE mTLS (ambient); proven with the key log");
    assert_eq!(
        server(s, "10.99.0.3:8081")["reading"],
        "plaintext to a destination outside the mesh: the pod's proxy passed 1 connection through, not HBONE (ambient)"
    );
    // HBONE has no SNI: the Service comes from the CONNECT's `forwarded: host=`.
    let svc = &s["services"][0];
    assert_eq!(
        (svc["name"].as_str(), svc["hbone"].as_u64(), svc["mtls"].as_u64()),
        (Some("server.default"), Some(1), Some(1))
    );
    assert_eq!(svc["reading"], "all HBONE mTLS (ambient); proven with the key log");
    // UDP leaves the pod as it is.
    assert_eq!(
        s["udp_servers"],
        json!([{"server": "10.99.0.3:4433", "flows": 1, "packets": 4, "bytes": 36}])
    );
}

#[test]
fn server_pod_legs_from_the_interface_and_the_bypass() {
    // Without --mesh-mode: the deliveries on lo are named from the SLL2 device type, and the
    // readings call the plaintext on the pod interface a bypass because the run shows HBONE.
    let j = json("ambient-server-any.pcap", &[]);
    let mut l = legs(&j.flows);
    l.sort();
    assert_eq!(
        l,
        [
            ("10.99.0.2:15008", "hbone"),
            ("10.99.0.2:8080", "-"),
            ("10.99.0.2:8080", "-"),
            ("10.99.0.2:8080", "ztunnel_to_app"),
            ("10.99.0.2:8080", "ztunnel_to_app"),
            ("10.99.0.2:8080", "ztunnel_to_app"),
            ("10.99.0.2:8080", "ztunnel_to_app"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The bypass (from 10.99.0.3, outside the mesh) arrived on the pod interface; ztunnel's
    // 15006 took it and delivered it on lo from the same client address.
    let bypass = flow(&j.flows, "10.99.0.3:41010", "10.99.0.2:8080");
    assert_eq!(bypass["on_loopback"], false);
    let delivered = flow(&j.flows, "10.99.0.3:56801", "10.99.0.2:8080");
    assert_eq!(
        (delivered["on_loopback"].as_bool(), delivered["istio"]["leg"].as_str()),
        (Some(true), Some("ztunnel_to_app"))
    );
    assert_eq!(hbone(&j.flows)["tls"]["mtls"], "likely");
    let s = &j.summary;
    assert_eq!(s["mesh_mode"], "ambient");
    let app = server(s, "10.99.0.2:8080");
    assert_eq!(
        (app["bypass"].as_u64(), app["plaintext"].as_u64(), app["legs"].as_u64()),
        (Some(1), Some(2), Some(4))
    );
    assert_eq!(
        app["reading"],
        "plaintext bypassing ztunnel: 1 flow on the pod interface, not HBONE (ambient); +1 kubelet probe (from \
         169.254.7.127, plaintext by design); +4 delivered by ztunnel on lo (plaintext by design)"
    );
    assert_eq!(
        server(s, "10.99.0.2:15008")["reading"],
        "all HBONE mTLS (ambient; inferred from record sizes)"
    );

    // --mesh-mode ambient: the bypass is flagged flow by flow and fails --fail-on-plaintext;
    // the probe and ztunnel's deliveries do not.
    let j = json("ambient-server-any.pcap", &["--mesh-mode", "ambient", "--fail-on-plaintext"]);
    assert_eq!(j.run.code, 1);
    assert_eq!(flow(&j.flows, "10.99.0.3:41010", "10.99.0.2:8080")["istio"]["leg"], "bypass");
    assert_eq!(flow(&j.flows, "169.254.7.127:41040", "10.99.0.2:8080")["istio"], Value::Null);
    let e = &j.summary["expectations"];
    assert_eq!((e["failed"].as_u64(), e["checked"].as_u64()), (Some(1), Some(2)));
    assert_eq!(
        e["violations"][0]["reason"],
        "plaintext http (GET /index.txt), bypassing ztunnel (not HBONE)"
    );
    assert_eq!(e["violations"][0]["client"], "10.99.0.3:41010");
}

#[test]
fn refused_connect_and_the_unpatched_ztunnel() {
    let keys = path("ambient-refused.keys");
    let j = json("ambient-refused.pcap", &["--keylog", &keys]);
    // An authorization policy denies port 9090: ztunnel answers the CONNECT with 401.
    assert_eq!(
        hbone(&j.flows)["istio"]["hbone"]["targets"],
        json!([
            {"stream": 1, "authority": "10.99.0.2:8080", "status": 200, "client": "10.99.0.1:41101", "service": null},
            {"stream": 3, "authority": "10.99.0.2:9090", "status": 401, "client": "10.99.0.1:41102", "service": null},
        ])
    );
    let table = tlspeek(&["-r", &path("ambient-refused.pcap"), "--keylog", &keys]);
    assert!(
        table
            .stdout
            .contains("    CONNECT app 10.99.0.1:41102 -> 10.99.0.2:9090 → 401 (refused) (stream 3)\n"),
        "{}",
        table.stdout
    );

    // The same exchange from the binary without the key-log patch: the wire is the same, the
    // verdict is the TLS 1.3 inference, the targets unknown.
    let j = json("ambient-hbone-upstream.pcap", &[]);
    let h = hbone(&j.flows);
    assert_eq!(
        (h["tls"]["mtls"].as_str(), h["tls"]["alpn_offered"].clone()),
        (Some("likely"), json!(["h2"]))
    );
    assert_eq!(h["istio"]["hbone"], json!({"targets": []}));
}

#[test]
fn hbone_without_a_client_certificate_is_not_mtls() {
    let keys = path("ambient-nocert.keys");
    let j = json("ambient-nocert.pcap", &["--keylog", &keys, "--expect", "mtls"]);
    let h = hbone(&j.flows);
    assert_eq!(h["tls"]["mtls"], "no");
    assert_eq!(
        server(&j.summary, "10.99.0.2:15008")["reading"],
        "HBONE without a client certificate, refused by the server (as ztunnel does); proven with the key log"
    );
    assert_eq!(j.run.code, 1);
}

#[test]
fn ztunnel_proxy_v2_header_names_the_client_identity() {
    // The server workload has an application tunnel (PROXY on 15088): ztunnel prepends PROXY v2
    // with TLV 0xD0 = the source SPIFFE identity, then the app's bytes.
    let j = json("ambient-waypoint-proxy.pcap", &[]);
    let f = flow(&j.flows, "127.0.0.1:40356", "127.0.0.1:15088");
    assert_eq!(
        f["proxy_protocol"],
        json!({"version": 2, "command": "proxy", "family": "inet", "source": "10.99.0.1:54290",
               "destination": "10.99.0.2:8080", "tlvs": {"0xd0": CLIENT_ID}, "tlvs_omitted": 0, "tlv_bytes_omitted": 0})
    );
    assert_eq!(
        (f["protocol"].as_str(), f["http"]["requests"][0]["path"].as_str()),
        (Some("http"), Some("/index.txt"))
    );
    let i = &f["istio"];
    assert_eq!((i["leg"].as_str(), i["mode"].as_str()), (Some("ztunnel_to_app"), Some("ambient")));
    assert_eq!(i["client_identity"]["uri"], CLIENT_ID);
}

#[test]
fn emulated_double_hbone_and_hbone_without_a_client_certificate_accepted() {
    // Emulator (captures/ambient.md, "Emulated"): towards a workload on another network ztunnel
    // names the Service host in CONNECT, and a second HBONE runs inside, relayed by the gateway.
    let keys = path("ambient-emu-double-hbone.keys");
    let j = json("ambient-emu-double-hbone.pcap", &["--keylog", &keys]);
    let outer: Vec<&Value> = j.flows.iter().filter(|f| f["istio"]["leg"] == "double_hbone").collect();
    assert_eq!(outer.len(), 1);
    assert_eq!(outer[0]["server"], "10.99.1.2:15008");
    assert_eq!(outer[0]["tls"]["mtls"], "yes");
    assert_eq!(
        outer[0]["istio"]["hbone"]["targets"],
        json!([{"stream": 1, "authority": "server.default.svc.cluster.local:80", "status": 200,
                "client": "10.99.1.1:41601", "service": "server.default.svc.cluster.local"}])
    );
    assert_eq!(
        server(&j.summary, "10.99.1.2:15008")["reading"],
        "all HBONE mTLS (ambient); proven with the key log"
    );
    // Without the key log the tunnel's target is hidden: plain HBONE.
    let j = json("ambient-emu-double-hbone.pcap", &[]);
    assert_eq!(j.flows.iter().filter(|f| f["istio"]["leg"] == "hbone").count(), 1);

    let keys = path("ambient-emu-nocert-accepted.keys");
    let j = json("ambient-emu-nocert-accepted.pcap", &["--keylog", &keys]);
    let h = hbone(&j.flows);
    assert_eq!(h["tls"]["mtls"], "no");
    assert_eq!(h["istio"]["hbone"]["targets"][0]["status"], 200);
    assert_eq!(
        server(&j.summary, "10.99.0.2:15008")["reading"],
        "HBONE without a client certificate, accepted: the server does not require one (not ztunnel's mTLS); \
         proven with the key log"
    );
}

#[test]
fn merged_pods_tell_a_bypass_from_a_passthrough() {
    // The client pod's app dialled 10.99.0.2:8080 (through HBONE); in the server pod's capture
    // 10.99.0.3 reached that address in plaintext: still a bypass once both are merged. The
    // passthrough to 10.99.0.3:8081 left from the app's own address.
    let dir = std::env::temp_dir().join(format!("tlspeek-ambient-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (name, extra) in
        [("ambient-client-any.pcap", vec![]), ("ambient-server-any.pcap", vec!["--keylog", "ambient.keys"])]
    {
        let p = path(name);
        let keys = path("ambient.keys");
        let mut args = vec!["-q", "-r", p.as_str(), "--json"];
        if !extra.is_empty() {
            args.extend(["--keylog", keys.as_str()]);
        }
        let run = tlspeek(&args);
        let out = dir.join(format!("{name}.jsonl"));
        std::fs::write(&out, run.stdout).unwrap();
        files.push(out.to_str().unwrap().to_string());
    }
    let run = tlspeek(&["report", "--json", &files[0], &files[1]]);
    std::fs::remove_dir_all(&dir).ok();
    let r: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let reading = |name: &str| {
        r["servers"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["reading"].clone()
    };
    assert!(
        reading("10.99.0.2:8080").as_str().unwrap().starts_with("plaintext bypassing ztunnel: 1 flow"),
        "{}",
        reading("10.99.0.2:8080")
    );
    assert_eq!(
        reading("10.99.0.3:8081"),
        "plaintext to a destination outside the mesh: the pod's proxy passed 1 connection through, not HBONE (ambient)"
    );
}

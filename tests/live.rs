//! Live capture (`-i`) inside two network namespaces this test creates and removes. Needs root,
//! iproute2 and python3 (for the real TLS peers in captures/tools/peer.py); without them the
//! test says so and returns.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn live_capture_on_a_veth_reports_the_mtls_handshake() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !sh(&["ip", "-V"]) || !sh(&["python3", "-c", "import ssl"]) {
        eprintln!("skipped: needs root, iproute2 and python3");
        return;
    }
    let id = std::process::id() % 10000;
    let (a, b) = (format!("tlsk-a{id}"), format!("tlsk-b{id}"));
    let (va, vb) = (format!("tka{id}"), format!("tkb{id}"));
    let _guard = Netns(vec![a.clone(), b.clone()]);
    for cmd in [
        vec!["ip", "netns", "add", &a],
        vec!["ip", "netns", "add", &b],
        vec!["ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b],
        vec!["ip", "-n", &a, "addr", "add", "10.96.0.2/24", "dev", &va],
        vec!["ip", "-n", &b, "addr", "add", "10.96.0.1/24", "dev", &vb],
        vec!["ip", "-n", &a, "link", "set", &va, "up"],
        vec!["ip", "-n", &b, "link", "set", &vb, "up"],
    ] {
        assert!(sh(&cmd), "{cmd:?} failed");
    }
    sleep(Duration::from_millis(800));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures");
    let pki = |f: &str| dir.join("pki").join(f).to_string_lossy().into_owned();
    let peer = dir.join("tools/peer.py").to_string_lossy().into_owned();
    let capture = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b,
            env!("CARGO_BIN_EXE_tlspeek"),
            "-i",
            &vb,
            "--duration",
            "4",
            "--json",
            "-q",
        ])
        .args(["tcp", "port", "9080"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(800));
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b,
            "python3",
            &peer,
            "tls-server",
            "9080",
            &pki("reviews.crt"),
            &pki("reviews.key"),
        ])
        .args([
            "--tls",
            "1.2",
            "--ca",
            &pki("ca.crt"),
            "--require-cert",
            "--alpn",
            "istio-peer-exchange,istio",
        ])
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(700));
    let client = Command::new("ip")
        .args(["netns", "exec", &a, "python3", &peer, "tls-client", "10.96.0.1", "9080"])
        .args([
            "--sni",
            "outbound_.9080_._.reviews.default.svc.cluster.local",
            "--alpn",
            "istio-peer-exchange,istio",
        ])
        .args(["--tls", "1.2", "--cert", &pki("productpage.crt"), "--key", &pki("productpage.key")])
        .status()
        .unwrap();
    assert!(client.success());
    let _ = server.wait();
    let out = capture.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let classified = lines.iter().find(|l| l["event"] == "classified").expect("a classified event");
    assert_eq!(classified["tls"]["sni"], "outbound_.9080_._.reviews.default.svc.cluster.local");
    let flow = lines.iter().find(|l| l["type"] == "flow" && l["event"] == "ended").expect("an ended flow");
    assert_eq!(flow["id"], classified["id"]);
    assert_eq!(flow["source"], vb.as_str());
    assert_eq!(flow["server"], "10.96.0.1:9080");
    assert_eq!(flow["tls"]["sni"], "outbound_.9080_._.reviews.default.svc.cluster.local");
    assert_eq!(flow["tls"]["mtls"], "yes");
    assert_eq!(
        flow["tls"]["client_certs"][0]["san_uris"][0],
        "spiffe://cluster.local/ns/default/sa/productpage"
    );
}

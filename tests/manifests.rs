//! The example node-wide manifest (deploy/daemonset.yaml, docs/node-wide.md): valid against
//! Kubernetes' own schemas (scripts/check-manifests, kubernetes-validate from PyPI: offline once
//! installed), a broken copy refused, and, as root, its container arguments run as a real capture
//! with its capabilities in a network namespace this test creates and removes.
//!
//! Outside CI (`CI` unset) the schema tests are skipped with a message when the checker cannot be
//! installed (no registry reachable); in CI (.ci/run installs it) they fail instead.

use serde::Deserialize;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

const MANIFEST: &str = "deploy/daemonset.yaml";

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs scripts/check-manifests on `files`; None (skipped) when the checker cannot be installed
/// outside CI.
fn check(files: &[&std::path::Path]) -> Option<Output> {
    let out = Command::new(root().join("scripts/check-manifests")).args(files).output().unwrap();
    if out.status.code() == Some(3) {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(std::env::var_os("CI").is_none(), "CI must have the manifest checker (.ci/run installs it): {why}");
        eprintln!("skipped: the manifest checker cannot be installed here: {why}");
        return None;
    }
    Some(out)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_daemonset_manifest_validates_against_the_oldest_and_newest_kubernetes_schemas() {
    let Some(out) = check(&[&root().join(MANIFEST)]) else { return };
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for v in ["1.25", "1.37"] {
        for res in ["namespace/tlspeek", "serviceaccount/tlspeek", "daemonset/tlspeek"] {
            let line = format!("passed for resource {res} against version {v}");
            assert!(t.contains(&line), "missing {line:?} in:\n{t}");
        }
    }
    assert!(!t.contains("ERROR"), "{t}");
}

#[test]
fn a_broken_copy_of_the_manifest_fails_validation() {
    let good = std::fs::read_to_string(root().join(MANIFEST)).unwrap();
    let dir = std::env::temp_dir().join(format!("tlspeek-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        // `containers` as a map instead of a list.
        (
            "      containers:\n        - name: tlspeek\n",
            "      containers:\n        tlspeek:\n          name: tlspeek\n",
            "spec.template.spec.containers",
            "is not of type 'array'",
        ),
        // A misspelled key: refused in strict mode (Kubernetes would drop it silently).
        ("      hostNetwork: true\n", "      hostNetwrk: true\n", "spec.template.spec", "'hostNetwrk' was unexpected"),
    ];
    for (i, (from, to, path, why)) in cases.iter().enumerate() {
        assert!(good.contains(from), "the manifest no longer has {from:?}");
        let bad = dir.join(format!("broken-{i}.yaml"));
        std::fs::write(&bad, good.replacen(from, to, 1)).unwrap();
        let Some(out) = check(&[&bad]) else { break };
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        let err = t.lines().find(|l| l.starts_with("ERROR")).unwrap_or_else(|| panic!("no ERROR line in:\n{t}"));
        assert!(err.contains("did not validate for resource daemonset/tlspeek"), "{err}");
        assert!(err.contains(path) && err.contains(why), "{err}");
        // The other resources of the file still pass.
        assert!(t.contains("passed for resource namespace/tlspeek against version 1.37"), "{t}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The DaemonSet's container, as a JSON value.
fn container() -> Value {
    let text = std::fs::read_to_string(root().join(MANIFEST)).unwrap();
    let docs: Vec<Value> = yaml_serde::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet");
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    ds["spec"]["template"]["spec"]["containers"][0].clone()
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Output {
    Command::new("ip").args(["netns", "exec", ns]).args(args).output().unwrap()
}

fn status_field(pid: u32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// The manifest's arguments, run as the container runs them: root with only the capabilities
/// its securityContext adds (bounding set), no_new_privs (allowPrivilegeEscalation: false), in a
/// network namespace of its own standing for the node's. tlspeek must open the capture, switch
/// to nobody with no capability left, write the flow as JSON Lines on stdout, and serve the
/// connection on its metrics port.
#[test]
#[ignore = "needs root (network namespaces), iproute2, util-linux's setpriv and python3: scripts/test runs it as root"]
fn the_daemonsets_arguments_capture_with_its_capabilities_and_drop_them() {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    assert!(is_root, "needs root: scripts/test runs it as root");
    let c = container();
    let args: Vec<String> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    let caps: Vec<String> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("+{}", c.as_str().unwrap().to_lowercase()))
        .collect();
    let metrics = args.iter().position(|a| a == "--metrics").map(|i| args[i + 1].clone()).expect("--metrics");
    let port = metrics.rsplit(':').next().unwrap().to_string();
    assert_eq!(c["ports"][0]["containerPort"].to_string(), port);

    let ns = Netns(format!("tlsk-node{}", std::process::id()));
    assert!(Command::new("ip").args(["netns", "add", &ns.0]).status().unwrap().success());
    assert!(in_ns(&ns.0, &["ip", "link", "set", "lo", "up"]).status.success());

    let tlspeek = std::env::var("TLSPEEK_LIVE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tlspeek").to_string());
    let bounding = format!("-all,{}", caps.join(","));
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "setpriv", "--no-new-privs", "--inh-caps", "-all"])
        .args(["--bounding-set", &bounding, &tlspeek])
        .args(&args)
        .args(["--duration", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `ip netns exec` and setpriv exec: the child's pid is tlspeek's.
    let pid = child.id();
    sleep(Duration::from_millis(1200));
    let (uid, cap_eff, nnp) = (status_field(pid, "Uid:"), status_field(pid, "CapEff:"), status_field(pid, "NoNewPrivs:"));

    // A real HTTP exchange on the namespace's loopback, then a scrape of the metrics port.
    let traffic = r#"
import socket, threading, urllib.request, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 8080)); srv.listen(1)
def serve():
    c, _ = srv.accept(); c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"); c.close()
threading.Thread(target=serve).start()
c = socket.create_connection(("127.0.0.1", 8080))
c.sendall(b"GET /node-wide HTTP/1.1\r\nHost: node.test\r\nConnection: close\r\n\r\n")
while c.recv(4096): pass
c.close(); time.sleep(1.5)
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())
"#;
    let scrape = in_ns(&ns.0, &["python3", "-c", traffic, &port]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tlspeek {args:?}: {stderr}");
    assert_eq!(stderr, "", "-q: nothing on stderr");
    assert_eq!(uid.split_whitespace().collect::<Vec<_>>(), ["65534"; 4], "uid after the capture opened");
    assert_eq!(cap_eff, "0000000000000000");
    assert_eq!(nnp, "1");

    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let flow = lines
        .iter()
        .find(|l| l["type"] == "flow" && l["event"] == "ended" && l["server"] == "127.0.0.1:8080")
        .unwrap_or_else(|| panic!("no ended flow to 127.0.0.1:8080 in:\n{stdout}"));
    assert_eq!(flow["source"], "any");
    assert_eq!(flow["protocol"], "http");
    assert_eq!(flow["on_loopback"], true);
    assert_eq!(flow["http"]["requests"][0]["path"], "/node-wide");
    assert_eq!(lines.last().unwrap()["type"], "summary");

    let metrics = String::from_utf8_lossy(&scrape.stdout);
    assert!(scrape.status.success(), "scrape: {}", String::from_utf8_lossy(&scrape.stderr));
    let series = metrics
        .lines()
        .find(|l| l.starts_with("tlspeek_connections_total{") && l.contains(r#"server="127.0.0.1:8080""#))
        .unwrap_or_else(|| panic!("no series for 127.0.0.1:8080 in:\n{metrics}"));
    assert!(series.contains(r#"protocol="http""#) && series.ends_with(" 1"), "{series}");
}

//! The example node-wide manifest (deploy/daemonset.yaml, docs/node-wide.md): valid against
//! Kubernetes' own schemas (scripts/check-manifests, kubernetes-validate from PyPI: offline once
//! installed), a broken copy refused, and, as root, its container arguments run as a real capture
//! with its capabilities in a "node" network namespace with a "pod" behind a veth, both created
//! and removed by the test: what docs/node-wide.md says a node sees and does not see.
//!
//! Outside CI (`CI` unset) the schema tests are skipped with a message when the checker cannot be
//! installed (no registry reachable); in CI (.ci/run installs it) they fail instead.

mod common;

use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

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
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the manifest checker (.ci/run installs it): {why}"
        );
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
        (
            "      hostNetwork: true\n",
            "      hostNetwrk: true\n",
            "spec.template.spec",
            "'hostNetwrk' was unexpected",
        ),
    ];
    for (i, (from, to, path, why)) in cases.iter().enumerate() {
        assert!(good.contains(from), "the manifest no longer has {from:?}");
        let bad = dir.join(format!("broken-{i}.yaml"));
        std::fs::write(&bad, good.replacen(from, to, 1)).unwrap();
        let Some(out) = check(&[&bad]) else { break };
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        let err =
            t.lines().find(|l| l.starts_with("ERROR")).unwrap_or_else(|| panic!("no ERROR line in:\n{t}"));
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
    let docs: Vec<Value> =
        yaml_serde::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet");
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    ds["spec"]["template"]["spec"]["containers"][0].clone()
}

/// tlspeek, killed when dropped before it was waited for (a failed assertion).
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Network namespaces removed when dropped (also when the test fails).
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `f` on a thread of its own that has entered network namespace `ns` (as named by `ip
/// netns add`): the sockets it creates belong to that namespace wherever they are used after.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a valid namespace file descriptor; setns(2) moves only the calling thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// Answers one HTTP request on `l` with `200 ok`; with `keep_open` the connection then stays
/// open until the client closes it.
fn serve_one(l: TcpListener, keep_open: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.ends_with(b"\r\n\r\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "request cut short");
            head.extend_from_slice(&buf[..n]);
        }
        let conn = if keep_open { "keep-alive" } else { "close" };
        write!(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: {conn}\r\n\r\nok").unwrap();
        if keep_open {
            while c.read(&mut buf).unwrap_or(0) > 0 {}
        }
    })
}

/// Sends `GET path` on `c` and reads the `200 ok` answer (to the end with `close`).
fn get(c: &mut TcpStream, path: &str, close: bool) -> String {
    let conn = if close { "close" } else { "keep-alive" };
    write!(c, "GET {path} HTTP/1.1\r\nHost: node.test\r\nConnection: {conn}\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status_field(pid: u32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// Waits for a line of tlspeek's stdout matching `want`, keeping every line read in `seen`.
fn wait_line(rx: &mpsc::Receiver<Value>, seen: &mut Vec<Value>, what: &str, want: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(v) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = want(&v);
        seen.push(v);
        if found {
            return;
        }
    }
    panic!("no {what} within 10 s; lines so far:\n{seen:#?}");
}

/// The manifest's arguments, run as the container runs them: root with only the capabilities
/// its securityContext adds (bounding set), no_new_privs (allowPrivilegeEscalation: false), in a
/// network namespace standing for the node's. A pod's namespace is plugged in by a veth after
/// tlspeek started, as a CNI does for a new pod. tlspeek must open the capture, switch to nobody
/// with no capability left, write each flow as a JSON line as soon as it ends (what a log agent
/// tails), see the pod's traffic on the veth and the node's own loopback, not the pod's
/// loopback, serve the connections on its metrics port, and on SIGTERM (the kubelet stopping the
/// pod) write the flow still open and the summary, then exit 0.
#[test]
#[ignore = "needs root (network namespaces), iproute2 and util-linux's setpriv: scripts/test runs it as root"]
fn the_daemonsets_arguments_capture_with_its_capabilities_and_drop_them() {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    assert!(is_root, "needs root: scripts/test runs it as root");
    let c = container();
    let args: Vec<String> =
        c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
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
    let port: u16 = metrics.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"], port);

    let pid = std::process::id();
    let (node, pod) = (format!("tlsk-node{pid}"), format!("tlsk-pod{pid}"));
    let _netns = Netns(vec![node.clone(), pod.clone()]);
    ip(&["netns", "add", &node]);
    ip(&["netns", "add", &pod]);
    ip(&["-n", &node, "link", "set", "lo", "up"]);
    ip(&["-n", &pod, "link", "set", "lo", "up"]);

    let tlspeek = common::tlspeek_bin();
    let bounding = format!("-all,{}", caps.join(","));
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node, "setpriv", "--no-new-privs", "--inh-caps", "-all"])
        .args(["--bounding-set", &bounding, &tlspeek])
        .args(&args)
        // A bound in case the test fails before its SIGTERM; the SIGTERM comes well before.
        .args(["--duration", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `ip netns exec` and setpriv exec: the child's pid is tlspeek's.
    let tpid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let mut tlspeek_run = Running(Some(child));
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    // The switch to nobody comes once the capture is open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_field(tpid, "Uid:") != "65534\t65534\t65534\t65534" {
        assert!(Instant::now() < deadline, "tlspeek did not switch to nobody within 10 s");
        sleep(Duration::from_millis(50));
    }
    let (uid, cap_eff, cap_prm) =
        (status_field(tpid, "Uid:"), status_field(tpid, "CapEff:"), status_field(tpid, "CapPrm:"));
    // Set by setpriv, as by the runtime for allowPrivilegeEscalation: false (tlspeek sets it too).
    let nnp = status_field(tpid, "NoNewPrivs:");

    // The pod's veth, created after the capture opened.
    ip(&["-n", &node, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", &pod]);
    ip(&["-n", &node, "addr", "add", "10.250.0.1/30", "dev", "vpod"]);
    ip(&["-n", &pod, "addr", "add", "10.250.0.2/30", "dev", "eth0"]);
    ip(&["-n", &node, "link", "set", "vpod", "up"]);
    ip(&["-n", &pod, "link", "set", "eth0", "up"]);

    let (pod_lo, pod_eth) = in_netns(&pod, || {
        (TcpListener::bind("127.0.0.1:8080").unwrap(), TcpListener::bind("10.250.0.2:8081").unwrap())
    });
    let node_l = in_netns(&node, || TcpListener::bind("10.250.0.1:8082").unwrap());
    let servers = [serve_one(pod_lo, false), serve_one(pod_eth, false), serve_one(node_l, true)];
    // Inside the pod, on its loopback (as Envoy -> app): not on any of the node's interfaces.
    let answer =
        in_netns(&pod, || get(&mut TcpStream::connect("127.0.0.1:8080").unwrap(), "/pod-loopback", true));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    // Node -> pod across the veth (as a kubelet probe), the connection closed.
    let answer =
        in_netns(&node, || get(&mut TcpStream::connect("10.250.0.2:8081").unwrap(), "/via-veth", true));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    // Pod -> node, left open until after the SIGTERM.
    let mut held = in_netns(&pod, || TcpStream::connect("10.250.0.1:8082").unwrap());
    let answer = get(&mut held, "/held-open", false);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // The closed connection's line comes while the capture runs, not at its end.
    let mut lines = Vec::new();
    let ended = |server: String| {
        move |v: &Value| v["type"] == "flow" && v["event"] == "ended" && v["server"] == *server
    };
    wait_line(&rx, &mut lines, "ended line for 10.250.0.2:8081", ended("10.250.0.2:8081".into()));
    let scrape = in_netns(&node, || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: node.test\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    });
    // The scrape's own connection, on the node's loopback, is seen: wait for it so that it is
    // reported as closed, then stop tlspeek as the kubelet does.
    let scrape_server = format!("127.0.0.1:{port}");
    wait_line(&rx, &mut lines, "ended line for the scrape", ended(scrape_server.clone()));
    // SAFETY: kill(2) on the child's pid, which this test still owns (not yet waited for).
    assert_eq!(unsafe { libc::kill(tpid as i32, libc::SIGTERM) }, 0);
    let mut child = tlspeek_run.0.take().unwrap();
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    drop(held);
    for s in servers {
        s.join().unwrap();
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();

    assert_eq!(status.code(), Some(0), "tlspeek {args:?}: {stderr}");
    assert!(elapsed < Duration::from_secs(25), "stopped by SIGTERM, not by --duration: {elapsed:?}");
    assert_eq!(stderr, "", "-q: nothing on stderr");
    assert_eq!(uid, "65534\t65534\t65534\t65534", "uid after the capture opened");
    assert_eq!((cap_eff.as_str(), cap_prm.as_str()), ("0000000000000000", "0000000000000000"));
    assert_eq!(nnp, "1");

    let flows: Vec<&Value> = lines.iter().filter(|l| l["type"] == "flow" && l["event"] == "ended").collect();
    let flow = |server: &str| {
        *flows.iter().find(|f| f["server"] == server).unwrap_or_else(|| panic!("no {server} in {flows:#?}"))
    };
    let veth = flow("10.250.0.2:8081");
    assert_eq!(veth["source"], "any");
    assert!(veth["client"].as_str().unwrap().starts_with("10.250.0.1:"), "{veth}");
    assert_eq!(veth["protocol"], "http");
    assert_eq!(veth["on_loopback"], false);
    assert_eq!(veth["end"], "closed");
    assert_eq!(veth["http"]["requests"][0]["path"], "/via-veth");
    let open = flow("10.250.0.1:8082");
    assert!(open["client"].as_str().unwrap().starts_with("10.250.0.2:"), "{open}");
    assert_eq!(open["end"], "capture_end");
    assert_eq!(open["http"]["requests"][0]["path"], "/held-open");
    let scraped = flow(&scrape_server);
    assert_eq!(scraped["on_loopback"], true);
    assert_eq!(scraped["http"]["requests"][0]["path"], "/metrics");
    // The pod's loopback is in the pod's namespace: the node never sees it.
    assert!(!lines.iter().any(|l| l["server"] == "127.0.0.1:8080"), "pod loopback seen: {lines:#?}");
    assert_eq!(flows.len(), 3, "{flows:#?}");
    let summary = lines.last().unwrap();
    assert_eq!((&summary["type"], &summary["flows"]), (&Value::from("summary"), &Value::from(3)));

    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    let series: Vec<&str> = scrape.lines().filter(|l| l.starts_with("tlspeek_connections_total{")).collect();
    assert_eq!(
        series,
        [concat!(
            r#"tlspeek_connections_total{server="10.250.0.2:8081",destination_service="unknown",protocol="http","#,
            r#"mtls="not_tls",leg="pod_network",connection_security_policy="none",source_principal="unknown","#,
            r#"destination_principal="unknown"} 1"#
        )],
        "{scrape}"
    );
}

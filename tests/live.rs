//! Live capture (`-i`) inside two network namespaces this test creates and removes (also when
//! it fails). Needs root, iproute2 and python3 (real TLS/HTTP peers in captures/tools/peer.py),
//! so it is ignored by a plain `cargo test`; scripts/test runs it as root (`-- --ignored`), and
//! it fails when asked for without them. Runs `$TLSPEEK_LIVE_BIN` when set (CI: the static
//! binary), else the test build.

mod common;

use common::{sh, tlspeek_bin};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

struct Peers {
    a: String,
    b: String,
    peer: String,
    dir: PathBuf,
}

impl Peers {
    fn pki(&self, f: &str) -> String {
        self.dir.join("pki").join(f).to_string_lossy().into_owned()
    }
    fn server(&self, args: &[&str]) -> Child {
        let c = Command::new("ip")
            .args(["netns", "exec", &self.b, "python3", &self.peer])
            .args(args)
            .spawn()
            .unwrap();
        sleep(Duration::from_millis(600));
        c
    }
    fn client(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.a, "python3", &self.peer])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "client {args:?}");
    }
}

/// Two namespaces joined by a veth pair, 10.96.0.2 (client) and 10.96.0.1 (server), removed
/// when the guard drops: (guard, client namespace, server namespace, server interface).
fn namespaces(tag: &str) -> (Netns, String, String, String) {
    let (a, b) = (format!("tlsk-c{tag}"), format!("tlsk-s{tag}"));
    let (va, vb) = (format!("tkc{tag}"), format!("tks{tag}"));
    let guard = Netns(vec![a.clone(), b.clone()]);
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
    (guard, a, b, vb)
}

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root && sh(&["ip", "-V"]) && sh(&["python3", "-c", "import ssl"]) && sh(&["openssl", "version"]),
        "needs root (network namespaces), iproute2, python3 and openssl: scripts/test runs it as root"
    );
}

#[test]
#[ignore = "needs root (network namespaces), iproute2 and openssl: scripts/test runs it as root"]
fn a_key_log_written_during_the_capture_decrypts_its_connection() {
    assert_root();
    let id = std::process::id() % 10000;
    let (_guard, a, b, vb) = namespaces(&format!("k{id}"));
    let pki = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/pki");
    let pki = |f: &str| pki.join(f).to_string_lossy().into_owned();
    // Empty and readable by root only when tlspeek opens it: it then runs as nobody (-Z) and
    // reads what OpenSSL appends during the handshake.
    let keys = std::env::temp_dir().join(format!("tlspeek-live-{id}.keys"));
    std::fs::write(&keys, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keys_s = keys.to_string_lossy().into_owned();
    let cap = Command::new("ip")
        .args(["netns", "exec", &b, &tlspeek_bin(), "-i", &vb, "--json", "-q", "--keylog", &keys_s])
        .args(["tcp", "port", "9444"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(800));
    let mut server = Command::new("ip")
        .args(["netns", "exec", &b, "openssl", "s_server", "-quiet", "-accept", "9444", "-naccept", "1"])
        .args(["-cert", &pki("api.crt"), "-key", &pki("api.key"), "-tls1_3", "-www"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(600));
    let mut client = Command::new("ip")
        .args(["netns", "exec", &a, "openssl", "s_client", "-quiet", "-connect", "10.96.0.1:9444"])
        .args(["-servername", "api.example.test", "-tls1_3", "-keylogfile", &keys_s])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    client.stdin.take().unwrap().write_all(b"GET /live-keylog HTTP/1.0\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(50));
    }
    let _ = client.kill();
    let _ = server.kill();
    let _ = server.wait();
    sleep(Duration::from_millis(500));
    assert!(sh(&["kill", "-INT", &cap.id().to_string()]));
    let out = cap.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&keys);
    assert_eq!(out.status.code(), Some(0));
    let flows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["event"] == "ended")
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let t = &flows[0]["tls"];
    assert_eq!(t["version"], "TLS 1.3");
    assert_eq!(t["decryption"]["status"], "decrypted", "{t}");
    assert_eq!(t["mtls"], "no", "proven: no CertificateRequest");
    assert_eq!(flows[0]["http"]["requests"][0]["path"], "/live-keylog");
    assert_eq!(flows[0]["http"]["responses"][0]["status"], 200);
}

#[test]
#[ignore = "needs root (network namespaces), iproute2 and python3: scripts/test runs it as root"]
fn live_capture_streams_each_flow_within_a_second_and_stops_cleanly() {
    assert_root();
    let id = std::process::id() % 10000;
    let (_guard, a, b, vb) = namespaces(&format!("a{id}"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures");
    let p = Peers {
        a: a.clone(),
        b: b.clone(),
        peer: dir.join("tools/peer.py").to_string_lossy().into_owned(),
        dir,
    };
    let saved = std::env::temp_dir().join(format!("tlspeek-live-{id}.pcap"));
    let saved_s = saved.to_string_lossy().into_owned();
    // Port 7000 carries plaintext too, but the filter leaves it out.
    let mut cap = Command::new("ip")
        .args(["netns", "exec", &b, &tlspeek_bin(), "-i", &vb, "--json", "-q", "-w", &saved_s])
        .args(["tcp", "and", "(port", "9080", "or", "port", "9443", "or", "port", "8080)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, Value)>();
    let stdout = cap.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let _ = tx.send((Instant::now(), v));
        }
    });
    sleep(Duration::from_millis(800));
    // The capture is open: the process now runs as nobody without any capability (-Z default).
    let status = std::fs::read_to_string(format!("/proc/{}/status", cap.id())).unwrap();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap_or("").to_string();
    assert_eq!(field("Uid:").split_whitespace().skip(1).collect::<Vec<_>>(), ["65534"; 4], "{status}");
    assert_eq!(field("CapEff:").split_whitespace().nth(1), Some("0000000000000000"));
    assert_eq!(field("NoNewPrivs:").split_whitespace().nth(1), Some("1"));
    let mut done_at = Vec::new();
    // TLS 1.2 with a client certificate, TLS 1.3, plaintext HTTP, then excluded traffic.
    let mut s = p.server(
        &["tls-server", "9080", &p.pki("reviews.crt"), &p.pki("reviews.key"), "--tls", "1.2"]
            .into_iter()
            .chain(["--ca", &p.pki("ca.crt"), "--require-cert", "--alpn", "istio-peer-exchange,istio"])
            .collect::<Vec<_>>(),
    );
    p.client(&[
        "tls-client",
        "10.96.0.1",
        "9080",
        "--sni",
        "outbound_.9080_._.reviews.default.svc.cluster.local",
        "--alpn",
        "istio-peer-exchange,istio",
        "--tls",
        "1.2",
        "--cert",
        &p.pki("productpage.crt"),
        "--key",
        &p.pki("productpage.key"),
    ]);
    done_at.push(Instant::now());
    let _ = s.wait();
    let mut s = p.server(&[
        "tls-server",
        "9443",
        &p.pki("api.crt"),
        &p.pki("api.key"),
        "--tls",
        "1.3",
        "--alpn",
        "h2",
    ]);
    p.client(&[
        "tls-client",
        "10.96.0.1",
        "9443",
        "--sni",
        "api.example.test",
        "--alpn",
        "h2",
        "--tls",
        "1.3",
    ]);
    done_at.push(Instant::now());
    let _ = s.wait();
    let mut s = p.server(&["http-server", "8080"]);
    p.client(&["http-client", "10.96.0.1", "8080"]);
    done_at.push(Instant::now());
    let _ = s.wait();
    let mut s = p.server(&["http-server", "7000"]);
    p.client(&["http-client", "10.96.0.1", "7000"]);
    let _ = s.wait();
    sleep(Duration::from_millis(500));
    // Ctrl-C: the remaining flows and the summary, exit 0.
    assert!(sh(&["kill", "-INT", &cap.id().to_string()]));
    let status = cap.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<(Instant, Value)> = rx.try_iter().collect();
    let classified: Vec<&(Instant, Value)> =
        lines.iter().filter(|(_, v)| v["event"] == "classified").collect();
    assert_eq!(classified.len(), 3, "{lines:?}");
    let servers: Vec<&str> = classified.iter().map(|(_, v)| v["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["10.96.0.1:9080", "10.96.0.1:9443", "10.96.0.1:8080"]);
    for ((seen, v), done) in classified.iter().zip(&done_at) {
        // The line arrived no later than 1 s after the client finished its exchange.
        assert!(seen.saturating_duration_since(*done) < Duration::from_secs(1), "{} late", v["server"]);
    }
    let (_, t12) = classified[0];
    assert_eq!(t12["tls"]["sni"], "outbound_.9080_._.reviews.default.svc.cluster.local");
    let (_, t13) = classified[1];
    assert_eq!(
        (t13["tls"]["version"].as_str(), t13["tls"]["mtls"].as_str()),
        (Some("TLS 1.3"), Some("unlikely"))
    );
    // Classified once the client's first encrypted record (its Finished alone) was seen.
    assert_eq!(t13["tls"]["client_encrypted_records"][0], 69);
    assert_eq!(classified[2].1["http"]["requests"][0]["path"], "/reviews/0");
    let ended: Vec<&Value> = lines.iter().map(|(_, v)| v).filter(|v| v["event"] == "ended").collect();
    assert_eq!(ended.len(), 3, "the filter excluded port 7000");
    assert_eq!(ended[0]["tls"]["mtls"], "yes");
    assert_eq!(
        ended[0]["tls"]["client_certs"][0]["san_uris"][0],
        "spiffe://cluster.local/ns/default/sa/productpage"
    );
    let summary = &lines.last().unwrap().1;
    assert_eq!((summary["type"].as_str(), summary["flows"].as_u64()), (Some("summary"), Some(3)));
    assert!(summary["capture_stats"]["received"].as_u64().is_some_and(|n| n > 20), "{summary}");
    assert_eq!(summary["capture_stats"]["dropped"], 0);
    // -w saved the same packets: reading them back gives the same flows.
    let back = Command::new(env!("CARGO_BIN_EXE_tlspeek")).args(["-r", &saved_s, "--json"]).output().unwrap();
    let _ = std::fs::remove_file(&saved);
    let back: Vec<Value> =
        String::from_utf8_lossy(&back.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (x, y) in back.iter().zip(&ended) {
        assert_eq!(
            (&x["server"], &x["protocol"], &x["packets"]),
            (&y["server"], &y["protocol"], &y["packets"])
        );
    }
    assert_eq!(back.len(), 4);
}

/// Root without CAP_SETGID (a container whose securityContext forgot it): the capture opens,
/// the switch to `nobody` fails, and tlspeek stops there, as `tcpdump -Z` does — exit 2, the
/// reason in the summary's `errors`, even under -q — instead of capturing on as root.
#[test]
#[ignore = "needs root and util-linux's setpriv: scripts/test runs it as root"]
fn a_failed_privilege_drop_stops_the_capture() {
    assert_root();
    let out = Command::new("setpriv")
        .args(["--inh-caps", "-all", "--bounding-set", "-all,+net_raw,+setuid"])
        .arg(tlspeek_bin())
        .args(["-i", "lo", "--duration", "5", "--json", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "-q: nothing on stderr");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["packets"], 0);
    let err = summary["errors"][0].as_str().unwrap();
    assert!(err.starts_with("could not drop privileges: "), "{err}");
    assert!(err.ends_with("; nothing captured (-Z none keeps them, at your risk)"), "{err}");
}

//! `--metrics`: a real Prometheus scrapes a live capture and its query API answers with the
//! connections tlspeek saw. Two network namespaces this test creates and removes (also when it
//! fails): the server's, where tlspeek captures and serves its metrics on the veth address, and
//! the client's, where the peers' clients and Prometheus run (the scrape crosses the veth, as
//! from another node). Needs root, iproute2, python3 (captures/tools/peer.py) and Prometheus
//! (`/usr/bin/prometheus`, Debian's `prometheus`; .ci/run installs it): without them it says so
//! and passes. Runs `$TLSPEEK_LIVE_BIN` when set (CI: the static binary), else the test build.

mod common;

use common::{sh, tlspeek_bin};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Removes the namespaces, stops the processes and removes the directory when dropped.
struct Cleanup {
    netns: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces)");
    }
    if !sh(&["ip", "-V"]) || !sh(&["python3", "-c", "import ssl"]) {
        return Some("iproute2 or python3 missing");
    }
    if !Path::new(PROMETHEUS).exists() {
        return Some("no /usr/bin/prometheus (apt-get install prometheus)");
    }
    None
}

/// Client (10.97.0.2, with Prometheus) and server (10.97.0.1, with tlspeek) namespaces.
fn namespaces(c: &mut Cleanup, tag: &str) -> (String, String, String) {
    let (a, b) = (format!("tlsm-c{tag}"), format!("tlsm-s{tag}"));
    let (va, vb) = (format!("tmc{tag}"), format!("tms{tag}"));
    c.netns = vec![a.clone(), b.clone()];
    for cmd in [
        vec!["ip", "netns", "add", &a],
        vec!["ip", "netns", "add", &b],
        vec!["ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b],
        vec!["ip", "-n", &a, "addr", "add", "10.97.0.2/24", "dev", &va],
        vec!["ip", "-n", &b, "addr", "add", "10.97.0.1/24", "dev", &vb],
        vec!["ip", "-n", &a, "link", "set", &va, "up"],
        vec!["ip", "-n", &b, "link", "set", &vb, "up"],
        vec!["ip", "-n", &a, "link", "set", "lo", "up"],
    ] {
        assert!(sh(&cmd), "{cmd:?} failed");
    }
    sleep(Duration::from_millis(800));
    (a, b, vb)
}

/// GET `url` from inside namespace `ns`: the body, `HTTP <status>` for an error status, empty
/// when there is no answer.
fn get_in(ns: &str, url: &str) -> String {
    let py = "import sys, urllib.error, urllib.request\n\
              try: print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())\n\
              except urllib.error.HTTPError as e: print('HTTP', e.code)\n\
              except Exception: pass";
    let out = Command::new("ip").args(["netns", "exec", ns, "python3", "-c", py, url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The instant vector Prometheus answers for `query`: each series' labels (without those
/// Prometheus adds) and value.
fn query(ns: &str, query: &str) -> Vec<(Vec<(String, String)>, String)> {
    let q: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let body = get_in(ns, &format!("http://127.0.0.1:9090/api/v1/query?query={q}"));
    let Ok(v) = serde_json::from_str::<Value>(&body) else { return Vec::new() };
    let mut series: Vec<_> = v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "instance" | "job"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect::<Vec<_>>();
            (labels, r["value"][1].as_str().unwrap().to_string())
        })
        .collect();
    series.sort();
    series
}

fn series(labels: [(&str, &str); 8], n: &str) -> (Vec<(String, String)>, String) {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    (l, n.to_string())
}

#[test]
fn prometheus_scrapes_the_connections_of_a_live_capture() {
    if let Some(why) = missing() {
        eprintln!("skipped prometheus_scrapes_the_connections_of_a_live_capture: {why}");
        return;
    }
    let started = Instant::now();
    let id = std::process::id() % 10000;
    let dir = std::env::temp_dir().join(format!("tlspeek-metrics-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Cleanup { netns: Vec::new(), children: Vec::new(), dir: dir.clone() };
    let (a, b, vb) = namespaces(&mut c, &id.to_string());
    let captures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures");
    let peer = captures.join("tools/peer.py").to_string_lossy().into_owned();
    let pki = |f: &str| captures.join("pki").join(f).to_string_lossy().into_owned();

    // tlspeek serves on a port below 1024: bound as root, before it drops to nobody.
    let cap = Command::new("ip")
        .args(["netns", "exec", &b, &tlspeek_bin(), "-i", &vb, "-q", "--json", "--summary-only"])
        .args(["--metrics", "10.97.0.1:964"])
        .args(["tcp", "and", "(port", "9080", "or", "port", "9443", "or", "port", "8080)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let cap_pid = cap.id().to_string();
    c.children.push(cap);
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tlspeek\n    \
         static_configs:\n      - targets: ['10.97.0.1:964']\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let prom = Command::new("ip")
        .args(["netns", "exec", &a, PROMETHEUS])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .args(["--web.listen-address=127.0.0.1:9090", "--log.level=warn"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    c.children.push(prom);
    sleep(Duration::from_millis(800));

    let server = |args: &[&str]| {
        let s = Command::new("ip").args(["netns", "exec", &b, "python3", &peer]).args(args).spawn().unwrap();
        sleep(Duration::from_millis(600));
        s
    };
    let client = |args: &[&str]| {
        let st =
            Command::new("ip").args(["netns", "exec", &a, "python3", &peer]).args(args).status().unwrap();
        assert!(st.success(), "client {args:?}");
    };
    // Mutual TLS 1.2 as between two sidecars, TLS 1.3 without a client certificate, and two
    // plaintext HTTP connections.
    let mut s = server(&[
        "tls-server",
        "9080",
        &pki("reviews.crt"),
        &pki("reviews.key"),
        "--tls",
        "1.2",
        "--ca",
        &pki("ca.crt"),
        "--require-cert",
        "--alpn",
        "istio-peer-exchange,istio",
    ]);
    client(&[
        "tls-client",
        "10.97.0.1",
        "9080",
        "--sni",
        "outbound_.9080_._.reviews.default.svc.cluster.local",
        "--alpn",
        "istio-peer-exchange,istio",
        "--tls",
        "1.2",
        "--cert",
        &pki("productpage.crt"),
        "--key",
        &pki("productpage.key"),
    ]);
    let _ = s.wait();
    let mut s = server(&["tls-server", "9443", &pki("api.crt"), &pki("api.key"), "--tls", "1.3"]);
    client(&["tls-client", "10.97.0.1", "9443", "--sni", "api.example.test", "--tls", "1.3"]);
    let _ = s.wait();
    let mut s = server(&["http-server", "8080", "--count", "2"]);
    client(&["http-client", "10.97.0.1", "8080"]);
    client(&["http-client", "10.97.0.1", "8080"]);
    let _ = s.wait();

    let common = |server, service, protocol, mtls, policy, src, dst| {
        [
            ("server", server),
            ("destination_service", service),
            ("protocol", protocol),
            ("mtls", mtls),
            ("leg", "pod_network"),
            ("connection_security_policy", policy),
            ("source_principal", src),
            ("destination_principal", dst),
        ]
    };
    let mut expected = vec![
        series(common("10.97.0.1:8080", "unknown", "http", "not_tls", "none", "unknown", "unknown"), "2"),
        series(
            common(
                "10.97.0.1:9080",
                "reviews.default.svc.cluster.local",
                "tls",
                "yes",
                "mutual_tls",
                "spiffe://cluster.local/ns/default/sa/productpage",
                "spiffe://cluster.local/ns/default/sa/reviews",
            ),
            "1",
        ),
        series(common("10.97.0.1:9443", "unknown", "tls", "unlikely", "none", "unknown", "unknown"), "1"),
    ];
    expected.sort();
    // Flows end as they close; Prometheus scrapes every second.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = query(&a, "tlspeek_connections_total");
        if got == expected {
            break;
        }
        sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    assert_eq!(got, expected, "Prometheus's log:\n{log}");
    let packets = query(&a, "tlspeek_packets_total");
    assert!(packets.len() == 1 && packets[0].1.parse::<u64>().unwrap() > 20, "{packets:?}");
    assert_eq!(query(&a, "tlspeek_kernel_drops_total"), [(vec![], "0".to_string())]);
    assert_eq!(query(&a, "tlspeek_metrics_series_dropped_total"), [(vec![], "0".to_string())]);
    assert_eq!(query(&a, "tlspeek_flows_open"), [(vec![], "0".to_string())]);
    assert_eq!(query(&a, "up"), [(vec![], "1".to_string())]);
    // Another path is not found.
    assert_eq!(get_in(&a, "http://10.97.0.1:964/").trim(), "HTTP 404");
    assert!(get_in(&a, "http://10.97.0.1:964/metrics").contains("# TYPE tlspeek_connections_total counter\n"));

    // Ctrl-C: the summary counts the same connections.
    assert!(sh(&["kill", "-INT", &cap_pid]));
    let cap = c.children.remove(0);
    let out = cap.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["flows"], 4, "{summary}");
    eprintln!("metrics test took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn metrics_are_refused_with_a_capture_file_and_a_busy_port_is_an_error() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tlspeek")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let pcap = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/istio-mtls-tls12.pcap");
    assert_eq!(
        run(&["-r", pcap, "--metrics", ":9464"]),
        (
            Some(2),
            "tlspeek: --metrics applies to live capture (-i) only; with -r the packets are read as they were \
             captured\n"
                .to_string()
        )
    );
    let (code, err) = run(&["-i", "lo", "--metrics", "localhost:9464"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("tlspeek: invalid value 'localhost:9464' for '--metrics <ADDR>': 'localhost:9464' is not an address to listen on like 127.0.0.1:9464, :9464 or [::]:9464"), "{err}");
    // The port is bound before the interface is opened: a busy one stops the run.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["-i", "no-such-interface", "--metrics", &addr, "--json"]);
    assert_eq!(code, Some(2));
    // (The C library words EADDRINUSE.)
    assert!(err.starts_with(&format!("tlspeek: cannot serve metrics on {addr}: ")), "{err}");
    assert!(err.ends_with(" in use (os error 98)\n") && err.lines().count() == 1, "{err}");
}

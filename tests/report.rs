//! `tlspeek report`: the JSON Lines of several captures (made by running tlspeek on the shipped
//! captures) merged into one set of readings and one graph; a connection seen from both ends
//! counted once; broken lines named by FILE:LINE; stdin; older lines without the newest keys.

mod common;

use common::{capture, tlspeek, tlspeek_stdin};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";

/// A scratch directory for this test's JSONL files.
fn scratch(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tlspeek -r captures/NAME --json ARGS` written to DIR/OUT; returns its path.
fn jsonl(dir: &Path, name: &str, args: &[&str], out: &str) -> String {
    let cap = capture(name);
    let mut a = vec!["-r", cap.to_str().unwrap(), "--json"];
    a.extend_from_slice(args);
    let r = tlspeek(&a);
    assert!(r.code == 0 || r.code == 1, "{name}: {}", r.stderr);
    let p = dir.join(out);
    std::fs::write(&p, r.stdout).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `tlspeek report ARGS` with `stdin`; (exit code, stdout, stderr).
fn report(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut a = vec!["report"];
    a.extend_from_slice(args);
    let r = tlspeek_stdin(&a, stdin);
    (r.code, r.stdout, r.stderr)
}

/// `tlspeek report --json FILES...`, parsed.
fn merged(files: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(files);
    let (code, out, err) = report(&args, b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(&out).unwrap()
}

/// The edges as (client, server, flows, verdicts, legs), in order.
fn edges(r: &Value) -> Vec<(String, String, u64, Value, u64)> {
    r["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["client"].as_str().unwrap().to_string(),
                e["server"].as_str().unwrap().to_string(),
                e["flows"].as_u64().unwrap(),
                e["verdicts"].clone(),
                e["legs"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn verdicts(proven: u64, inferred: u64, no_cert: u64, plain: u64, refused: u64, unknown: u64) -> Value {
    json!({"proven_mtls": proven, "inferred_mtls": inferred, "tls_no_client_cert": no_cert,
           "plaintext": plain, "refused": refused, "unknown": unknown})
}

fn e(client: &str, server: &str, flows: u64, v: Value, legs: u64) -> (String, String, u64, Value, u64) {
    (client.into(), server.into(), flows, v, legs)
}

/// The ambient pair: the HBONE connection 10.99.0.1:42058 → 10.99.0.2:15008 is in both pods'
/// captures; counted once, and the server's record (decrypted with the key log: `yes`, the
/// client identity, the CONNECT services) wins over the client's (`likely`, no identity),
/// whichever file comes first.
#[test]
fn ambient_hbone_seen_from_both_pods_is_counted_once_keeping_the_proven_record() {
    let d = scratch("ambient");
    let keys = capture("ambient.keys");
    let client = jsonl(&d, "ambient-client-any.pcap", &[], "client.jsonl");
    let server = jsonl(&d, "ambient-server-any.pcap", &["--keylog", keys.to_str().unwrap()], "server.jsonl");
    let r = merged(&[&client, &server]);
    assert_eq!(
        (r["flow_lines"].as_u64(), r["duplicates"].as_u64(), r["flows"].as_u64()),
        (Some(13), Some(1), Some(12))
    );
    assert_eq!(r["by_mtls"], json!({"yes": 1}));
    assert_eq!(r["mesh_mode"], "ambient");
    let want = vec![
        e("10.99.0.1", "10.99.0.2:8080", 5, verdicts(0, 0, 0, 0, 0, 0), 5),
        e("10.99.0.1", "10.99.0.3:8081", 2, verdicts(0, 0, 0, 1, 0, 0), 1),
        e("10.99.0.3", "10.99.0.2:8080", 2, verdicts(0, 0, 0, 1, 0, 0), 1),
        e("10.99.0.1", "10.96.0.10:80", 1, verdicts(0, 0, 0, 0, 0, 0), 1),
        e("169.254.7.127", "10.99.0.2:8080", 1, verdicts(0, 0, 0, 1, 0, 0), 0),
        e(CLIENT_ID, "server.default", 1, verdicts(1, 0, 0, 0, 0, 0), 0),
    ];
    assert_eq!(edges(&r), want);
    let hbone = r["edges"].as_array().unwrap().iter().find(|e| e["server"] == "server.default").unwrap();
    assert_eq!(hbone["dominant"], "proven_mtls");
    assert_eq!(hbone["examples"][0]["client"], "10.99.0.1:42058");
    assert_eq!(hbone["examples"][0]["server"], "10.99.0.2:15008");
    assert_eq!(hbone["examples"][0]["mtls"], "yes");
    assert!(hbone["reasons"][0].as_str().unwrap().contains("proven with the key log"), "{hbone}");
    let nodes = r["nodes"].as_array().unwrap();
    let id = nodes.iter().find(|n| n["name"] == CLIENT_ID).unwrap();
    assert_eq!((id["kind"].as_str(), id["namespace"].as_str()), (Some("identity"), Some("default")));
    assert_eq!(nodes[hbone["server_node"].as_u64().unwrap() as usize]["kind"], "service");
    // The readings are the mesh stage's own words.
    let svc = &r["services"][0];
    assert_eq!(svc["name"], "server.default");
    assert_eq!(svc["reading"], "all HBONE mTLS (ambient); proven with the key log");
    let s15008 = r["servers"].as_array().unwrap().iter().find(|s| s["name"] == "10.99.0.2:15008").unwrap();
    assert_eq!((s15008["flows"].as_u64(), s15008["tls_proven"].as_u64()), (Some(1), Some(1)));

    // The other order: the same merge.
    let r2 = merged(&[&server, &client]);
    assert_eq!(edges(&r2).len(), want.len());
    let hbone2 = r2["edges"].as_array().unwrap().iter().find(|e| e["server"] == "server.default").unwrap();
    assert_eq!(hbone2["verdicts"], verdicts(1, 0, 0, 0, 0, 0));
    assert_eq!(r2["duplicates"], 1);
    assert_eq!(r2["services"], r["services"]);

    // The table says so too.
    let (code, table, _) = report(&[&client, &server], b"");
    assert_eq!(code, 0);
    assert!(
        table.starts_with(
            "merged 13 flow records from 2 files: 12 flows (each connection seen from both ends counted once: 1 duplicate)\n"
        ),
        "{table}"
    );
    assert!(table.contains("\nEdges (client identity or address → Istio service or server):\n"), "{table}");
    let row = table.lines().find(|l| l.contains(CLIENT_ID)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..11],
        [CLIENT_ID, "server.default", "1", "1", "0", "0", "0", "0", "0", "0", "2026-12-06T06:06:52.852866Z"]
    );
}

/// The sidecar scenario, both legs in one capture, read as two pods' captures (a file and the
/// same packets from stdin, so two `source`s): every connection is in both, counted once.
#[test]
fn sidecar_connections_in_two_captures_are_counted_once() {
    let d = scratch("sidecar");
    let a = jsonl(&d, "istio-mtls-tls13-any.pcap", &[], "a.jsonl");
    let pcap = std::fs::read(capture("istio-mtls-tls13-any.pcap")).unwrap();
    let o = tlspeek_stdin(&["-r", "-", "--json"], &pcap);
    let b = d.join("b.jsonl");
    std::fs::write(&b, &o.stdout).unwrap();
    let one = merged(&[&a]);
    let both = merged(&[&a, b.to_str().unwrap()]);
    assert_eq!(
        (both["flow_lines"].as_u64(), both["duplicates"].as_u64(), both["flows"].as_u64()),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(both["servers"], one["servers"]);
    assert_eq!(both["services"], one["services"]);
    assert_eq!(
        edges(&both),
        [
            e(
                "spiffe://cluster.local/ns/default/sa/productpage",
                "127.0.0.1:9080",
                1,
                verdicts(0, 0, 0, 0, 0, 0),
                1
            ),
            e(
                "spiffe://cluster.local/ns/default/sa/productpage",
                "reviews.default:9080",
                1,
                verdicts(1, 0, 0, 0, 0, 0),
                0
            ),
        ]
    );
    assert_eq!(both["services"][0]["reading"], "all mutual TLS (as with STRICT)");
}

/// Merged alone, a capture's JSON Lines give exactly the readings its own run printed (the
/// merge feeds the same mesh stage), for every shipped capture.
#[test]
fn one_file_gives_the_readings_of_its_run() {
    let d = scratch("each");
    let mut caps: Vec<PathBuf> = std::fs::read_dir(capture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    caps.sort();
    for cap in caps {
        let name = cap.file_name().unwrap().to_str().unwrap().to_string();
        let keys = cap.with_extension("keys");
        let mut args: Vec<&str> = Vec::new();
        if keys.exists() {
            args.extend(["--keylog", keys.to_str().unwrap()]);
        }
        let mut a = vec!["-r", cap.to_str().unwrap(), "--json"];
        a.extend_from_slice(&args);
        let run = tlspeek(&a);
        let Some(last) = run.stdout.lines().last() else { continue };
        let summary: Value = serde_json::from_str(last).unwrap();
        let p = d.join("one.jsonl");
        std::fs::write(&p, &run.stdout).unwrap();
        let r = merged(&[p.to_str().unwrap()]);
        for k in ["servers", "services", "by_protocol", "by_mtls", "mesh_mode", "flows", "packets", "bytes"] {
            assert_eq!(r[k], summary[k], "{name}: {k}");
        }
        assert_eq!(r["duplicates"], 0, "{name}");
    }
}

/// A line that is not JSON and one without `server`: each named FILE:LINE on stderr, the rest
/// merged, exit 2.
#[test]
fn broken_lines_are_named_and_the_rest_is_merged() {
    let d = scratch("broken");
    let good = jsonl(&d, "istio-permissive.pcap", &[], "good.jsonl");
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    lines.insert(2, "{\"type\":\"flow\",\"client\":");
    lines.insert(4, r#"{"type":"flow","event":"ended","client":"10.0.0.1:1","protocol":"tls"}"#);
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let bad = bad.to_str().unwrap();
    let (code, out, err) = report(&["--json", bad], b"");
    assert_eq!(code, 2, "{err}");
    let errs: Vec<&str> = err.lines().collect();
    assert_eq!(errs.len(), 2, "{err}");
    assert!(errs[0].starts_with(&format!("tlspeek: {bad}:3: not a tlspeek JSON line: ")), "{err}");
    assert_eq!(errs[1], format!("tlspeek: {bad}:5: no `server` key"));
    let r: Value = serde_json::from_str(&out).unwrap();
    let want = merged(&[&good]);
    assert_eq!((r["bad_lines"].as_u64(), r["lines"].as_u64()), (Some(2), Some(n as u64 + 2)));
    assert_eq!(r["errors"].as_array().unwrap().len(), 2);
    assert_eq!(r["servers"], want["servers"]);
    assert_eq!(r["edges"], want["edges"]);
    // A file that cannot be opened is an error too; the others are merged.
    let (code, out, err) = report(&["--json", "/nonexistent/x.jsonl", &good], b"");
    assert_eq!(code, 2);
    assert!(err.starts_with("tlspeek: cannot open /nonexistent/x.jsonl: "), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["servers"], want["servers"]);
}

/// `-` reads stdin: the same merge as from the file.
#[test]
fn stdin_is_a_file_too() {
    let d = scratch("stdin");
    let f = jsonl(&d, "istio-mtls-tls12.pcap", &[], "f.jsonl");
    let (code, out, err) = report(&["--json", "-"], &std::fs::read(&f).unwrap());
    assert_eq!(code, 0, "{err}");
    let mut r: Value = serde_json::from_str(&out).unwrap();
    let mut want = merged(&[&f]);
    assert_eq!(r["files"], json!(["-"]));
    r["files"] = Value::Null;
    want["files"] = Value::Null;
    assert_eq!(r, want);
}

/// Lines of an older tlspeek (only the required keys, or no `istio`, `tls.alerts`...) merge;
/// `classified` lines and unknown line types are skipped.
#[test]
fn older_lines_without_the_newest_keys_merge() {
    let lines = [
        r#"{"type":"flow","client":"10.0.0.1:40000","server":"10.0.0.2:9080","protocol":"http"}"#,
        r#"{"type":"flow","event":"ended","id":7,"source":"old.pcap","client":"10.0.0.1:40001","server":"10.0.0.2:9080","first_ts":"2024-01-01T00:00:00.000001Z","last_ts":"2024-01-01T00:00:01Z","protocol":"tls","tls":{"mtls":"yes","mtls_reason":"client sent a certificate"},"http":null}"#,
        r#"{"type":"flow","event":"classified","client":"10.0.0.1:40002","server":"10.0.0.2:9080","protocol":"tls"}"#,
        r#"{"type":"something_new","client":"x"}"#,
        r#"{"type":"summary","packets":10,"bytes":1000,"flows":2}"#,
    ];
    let (code, out, err) = report(&["--json", "-"], (lines.join("\n") + "\n").as_bytes());
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["flows"].as_u64(), r["packets"].as_u64(), r["bytes"].as_u64()),
        (Some(2), Some(10), Some(1000))
    );
    assert_eq!(edges(&r), [e("10.0.0.1", "10.0.0.2:9080", 2, verdicts(1, 0, 0, 1, 0, 0), 0)]);
    assert_eq!(r["servers"][0]["reading"], "mixed plaintext and mTLS (as with PERMISSIVE)");
    let ex = &r["edges"][0]["examples"][1];
    assert_eq!((ex["id"].as_u64(), ex["source"].as_str()), (Some(7), Some("old.pcap")));
    assert_eq!(ex["first_ts"], "2024-01-01T00:00:00.000001Z");
    assert_eq!(r["edges"][0]["examples"][0]["source"], "-");
}

#[test]
fn help_names_the_subcommand() {
    let h = tlspeek(&["--help"]);
    assert!(h.stdout.contains("tlspeek report a.jsonl b.jsonl"), "{}", h.stdout);
    let h = tlspeek(&["report", "--help"]);
    assert_eq!(h.code, 0);
    assert!(h.stdout.contains("Usage: tlspeek report [OPTIONS] <FILE.jsonl>..."), "{}", h.stdout);
    let none = tlspeek(&["report"]);
    assert_eq!(none.code, 2);
    assert_eq!(
        none.stderr,
        "tlspeek report: the following required arguments were not provided: <FILE.jsonl>... \
         (`tlspeek report --help` lists the options)\n"
    );
}

fn mesh_fixture(name: &str) -> String {
    format!("{}/tests/fixtures/mesh-config/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Each server's and service's (name, policy), in order.
fn policies(summary: &Value) -> Vec<(Value, Value)> {
    let mut v = Vec::new();
    for list in ["servers", "services"] {
        for s in summary[list].as_array().unwrap() {
            v.push((s["name"].clone(), s["policy"].clone()));
        }
    }
    v
}

/// Issue 21: `--mesh-config` on the merge gives the policy objects (and table lines) of a
/// capture run on the same captures. Two pods' plaintext to reviews, named by its Host and
/// the client's peer metadata (both carried through the JSON): STRICT with a DISABLE client;
/// then SNI-named mTLS with a workload port override.
#[test]
fn mesh_config_gives_the_policy_of_the_capture_run() {
    let d = scratch("mesh_config");
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["istio-strict-reset.pcap", "istio-disable-plaintext.pcap"],
            &["strict-mesh.yaml", "disable-client.yaml"],
        ),
        (&["istio-mtls-tls13-any.pcap", "istio-permissive.pcap"], &["cluster.json"]),
    ];
    let mut got = Vec::new();
    for (i, (caps, configs)) in cases.iter().enumerate() {
        let paths: Vec<String> = configs.iter().map(|c| mesh_fixture(c)).collect();
        let mut config_args = Vec::new();
        for p in &paths {
            config_args.extend(["--mesh-config", p.as_str()]);
        }
        let mut run_args = Vec::new();
        let mut files = Vec::new();
        let caps_paths: Vec<PathBuf> = caps.iter().map(|c| capture(c)).collect();
        for (j, c) in caps.iter().enumerate() {
            run_args.extend(["-r", caps_paths[j].to_str().unwrap()]);
            files.push(jsonl(&d, c, &[], &format!("{i}-{j}.jsonl")));
        }
        let mut a = run_args.clone();
        a.push("--json");
        a.extend_from_slice(&config_args);
        let run = tlspeek(&a);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
        let mut a: Vec<&str> = files.iter().map(String::as_str).collect();
        a.extend_from_slice(&config_args);
        let r = merged(&a);
        assert_eq!(policies(&r), policies(&summary), "{caps:?}");
        // The table's policy lines too.
        let policy_lines = |t: &str| -> Vec<String> {
            t.lines().filter(|l| l.starts_with("    policy: ")).map(str::to_string).collect()
        };
        let mut a = run_args.clone();
        a.extend_from_slice(&config_args);
        let table = tlspeek(&a).stdout;
        let mut a: Vec<&str> = files.iter().map(String::as_str).collect();
        a.extend_from_slice(&config_args);
        let (code, merged_table, err) = report(&a, b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(policy_lines(&merged_table), policy_lines(&table), "{merged_table}");
        assert!(!policy_lines(&table).is_empty(), "{table}");
        got.push(r);
    }
    assert_eq!(
        got[0]["servers"][0]["policy"],
        json!({
            "namespace": "default", "namespace_from": "host",
            "peer_authentication": "istio-system/default", "mode": "STRICT", "scope": "mesh",
            "may_apply": [], "destination_rule": "default/reviews-plaintext", "tls_mode": "DISABLE",
            "findings": ["plaintext_accepted_under_strict", "disable_client_to_strict_server"],
            "text": "STRICT (mesh policy istio-system/default); clients: DestinationRule default/reviews-plaintext \
                     tls DISABLE; ! plaintext accepted where STRICT applies; ! a DISABLE client towards a STRICT \
                     server (its plaintext is reset)",
        })
    );
    assert_eq!(
        policies(&got[1])
            .iter()
            .map(|(n, p)| (n.clone(), p["mode"].clone(), p["scope"].clone(), p["findings"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!("10.97.0.1:9080"), json!("PERMISSIVE"), json!("port"), json!([])),
            (json!("127.0.0.1:9080"), Value::Null, Value::Null, Value::Null),
            (json!("reviews.default:9080"), json!("PERMISSIVE"), json!("port"), json!(["ready_for_strict"])),
        ]
    );
}

/// A --mesh-config file that cannot be used is named on stderr and in `errors`, exit 2; the
/// merge is printed with the other files' policy.
#[test]
fn bad_mesh_config_is_named_and_the_merge_still_printed() {
    let d = scratch("mesh_config_bad");
    let f = jsonl(&d, "istio-strict-reset.pcap", &[], "f.jsonl");
    let (good, bad, missing) =
        (mesh_fixture("strict-mesh.yaml"), mesh_fixture("bad-mode.yaml"), mesh_fixture("missing.yaml"));
    let args = ["--json", &f, "--mesh-config", &good, "--mesh-config", &bad, "--mesh-config", &missing];
    let (code, out, err) = report(&args, b"");
    assert_eq!(code, 2, "{err}");
    let want = [
        format!("--mesh-config {bad}: PeerAuthentication default/default: unknown mTLS mode 'STRIKT'"),
        format!("--mesh-config {missing}: cannot read: No such file or directory (os error 2)"),
    ];
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        want.iter().map(|w| format!("tlspeek: {w}")).collect::<Vec<_>>()
    );
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["errors"], json!(want));
    assert_eq!(r["bad_lines"], 0);
    assert_eq!(r["flows"], 2);
    let p = &r["servers"][0]["policy"];
    assert_eq!((&p["mode"], &p["scope"], &p["findings"]), (&json!("STRICT"), &json!("mesh"), &json!([])));
    // The table is printed too, with its policy line.
    let (code, table, _) = report(&args[1..], b"");
    assert_eq!(code, 2);
    assert!(table.contains("\n    policy: STRICT (mesh policy istio-system/default)\n"), "{table}");
}

/// In a terminal narrower than the edge columns (COLUMNS=100), each edge takes two lines: the
/// pair, then its nonzero counts and last time; wide enough, one row of columns.
#[test]
fn edges_fit_a_narrow_terminal_on_two_lines() {
    let dir = scratch("narrow");
    let a = jsonl(&dir, "istio-strict-reset.pcap", &[], "a.jsonl");
    let b = jsonl(&dir, "istio-mtls-tls12.pcap", &[], "b.jsonl");
    let run = |cols: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
            .args(["report", &a, &b])
            .env("COLUMNS", cols)
            .output()
            .unwrap();
        assert!(o.status.success());
        let s = String::from_utf8(o.stdout).unwrap();
        s[s.find("Edges").unwrap()..].to_string()
    };
    assert_eq!(
        run("100"),
        "Edges (client identity or address → Istio service or server):\n\
         \x20 10.97.0.2 → 10.97.0.1:9080\n\
         \x20     2 flows: refused 2; last 2026-11-23T07:16:45.859041Z\n\
         \x20 spiffe://cluster.local/ns/default/sa/reviews → ratings.default:9080\n\
         \x20     1 flow: proven mTLS 1; last 2026-11-23T07:16:39.243322Z\n"
    );
    let wide = run("200");
    assert!(wide.lines().nth(1).unwrap().starts_with("  CLIENT "), "{wide}");
    assert_eq!(wide.lines().count(), 4, "{wide}");
}

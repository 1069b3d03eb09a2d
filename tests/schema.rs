//! The JSON schema's one source, `tlspeek::report::schema`, held against what the writer writes
//! (every object in the output of every shipped capture has exactly the schema's keys, in its
//! order, and every object of the schema shows up) and against docs/json.md (each object's
//! section lists exactly its keys, in that order).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use tlspeek::report::schema::{keys, MAPS, OBJECTS};

/// A JSON value that keeps its keys in the order written (serde_json's `Value` sorts them).
enum Value {
    Object(Vec<(String, Value)>),
    Array(Vec<Value>),
    Scalar(serde_json::Value),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, Value>()? {
                    v.push((k, x));
                }
                Ok(Value::Object(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = s.next_element()? {
                    v.push(x);
                }
                Ok(Value::Array(v))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Scalar(s.into()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Scalar(b.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
                Ok(Value::Scalar(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Scalar(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
                Ok(Value::Scalar(n.into()))
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Scalar(serde_json::Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

impl Value {
    /// The line's `type`.
    fn kind(&self) -> &str {
        match self {
            Value::Object(m) => m.iter().find(|(k, _)| k == "type").and_then(|(_, v)| match v {
                Value::Scalar(s) => s.as_str(),
                _ => None,
            }),
            _ => None,
        }
        .expect("a line with a type")
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every JSON line tlspeek writes for the shipped captures, plain and with the checks (and
/// `--ca`) on.
fn lines() -> Vec<Value> {
    let mut caps: Vec<_> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    caps.sort();
    assert!(caps.len() > 40);
    let mut out = Vec::new();
    let mut all = Vec::new();
    for (i, cap) in caps.iter().enumerate() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tlspeek"));
        cmd.arg("-r").arg(cap).arg("--json");
        let keys = cap.with_extension("keys");
        if keys.exists() {
            cmd.arg("--keylog").arg(keys); // decryption objects are written only with a key log
        }
        if i % 2 == 0 {
            cmd.args(["--expect", "mtls", "--fail-on-plaintext"]);
        }
        if cap.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("istio-")) {
            // The `policy` objects are written only with --mesh-config.
            cmd.arg("--mesh-config").arg(root().join("tests/fixtures/mesh-config/permissive-namespace.yaml"));
        }
        if i % 3 == 0 || cap.file_name().is_some_and(|n| n == "tls12-mtls-istio.pcap") {
            cmd.arg("--ca").arg(root().join("captures/pki/ca.crt"));
        }
        let o = cmd.output().unwrap();
        all.extend_from_slice(&o.stdout);
        for l in String::from_utf8(o.stdout).unwrap().lines() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", cap.display())));
        }
    }
    // `tlspeek report --json` over all of them (one object).
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(["report", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &all).unwrap());
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let report = String::from_utf8(o.stdout).unwrap();
    out.push(serde_json::from_str(report.trim_end()).unwrap_or_else(|e| panic!("report: {e}: {report}")));
    out
}

/// Checks `v` (at `path`) and everything under it; records the paths seen.
fn walk(v: &Value, path: &str, seen: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if MAPS.contains(&path) {
                seen.insert(path.to_string());
                return;
            }
            let want = keys(path).unwrap_or_else(|| panic!("object at {path} is not in the schema"));
            let got: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(got, want, "keys of {path}");
            seen.insert(path.to_string());
            for (k, x) in m {
                walk(x, &format!("{path}.{k}"), seen);
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, &format!("{path}[]"), seen);
            }
        }
        Value::Scalar(_) => {}
    }
}

#[test]
fn output_has_exactly_the_schema_keys() {
    let mut seen = BTreeSet::new();
    for l in lines() {
        let kind = l.kind().to_string();
        walk(&l, &kind, &mut seen);
    }
    // Written only by a live capture: tests/live.rs reads it.
    let live_only = ["summary.capture_stats"];
    for o in OBJECTS {
        for p in o.paths {
            assert!(seen.contains(*p) || live_only.contains(p), "no shipped capture writes {p}");
        }
    }
}

/// docs/json.md's sections: the paths in each heading, and the first column of the table under
/// it (several keys in one cell are separated by commas).
fn doc_sections() -> Vec<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("docs/json.md")).unwrap();
    let ticked = |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_string).collect() };
    let mut out: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with('#') {
            out.push((ticked(line), Vec::new()));
            in_table = false;
        } else if let Some(row) = line.strip_prefix('|') {
            let cell = row.split('|').next().unwrap_or("").trim();
            if cell == "key" {
                in_table = true;
            } else if in_table && !cell.starts_with("---") {
                if let Some(s) = out.last_mut() {
                    s.1.extend(ticked(cell));
                }
            }
        } else {
            in_table = false;
        }
    }
    out
}

#[test]
fn docs_list_exactly_the_schema_keys() {
    let sections = doc_sections();
    for o in OBJECTS {
        let heads: Vec<String> = o.paths.iter().map(|p| p.to_string()).collect();
        let s = sections
            .iter()
            .find(|(h, _)| *h == heads)
            .unwrap_or_else(|| panic!("docs/json.md has no section headed {heads:?}"));
        assert_eq!(s.1, o.keys, "docs/json.md section {heads:?}");
    }
    for (h, k) in &sections {
        if !k.is_empty() {
            assert!(
                OBJECTS.iter().any(|o| o.paths == h.as_slice()),
                "docs/json.md documents {h:?}, not in the schema"
            );
        }
    }
}

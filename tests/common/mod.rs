//! Runs the built `tlspeek` binary on files in captures/ and parses its output.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Path of a file in captures/.
pub fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures").join(name)
}

/// Output of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs tlspeek with `args` (without `COLUMNS`: the table is not fitted to a width).
pub fn tlspeek(args: &[&str]) -> Run {
    tlspeek_env(args, &[])
}

/// Runs tlspeek with `args` and these environment variables (`COLUMNS` removed unless given).
pub fn tlspeek_env(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tlspeek"));
    cmd.args(args).env_remove("COLUMNS").envs(vars.iter().copied());
    let out = cmd.output().expect("run tlspeek");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs tlspeek with `args`, writing `stdin` to its standard input (from a thread: the output
/// may be larger than the pipe).
pub fn tlspeek_stdin(args: &[&str], stdin: &[u8]) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(args)
        .env_remove("COLUMNS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tlspeek");
    let mut w = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let t = std::thread::spawn(move || {
        let _ = w.write_all(&input);
    });
    let out = child.wait_with_output().expect("run tlspeek");
    t.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The object of `summary.servers` named `name`.
pub fn server<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no server {name} in {}", summary["servers"]))
}

/// JSON flows and summary of a capture in captures/, with extra args.
pub struct Json {
    pub run: Run,
    pub flows: Vec<Value>,
    pub summary: Value,
}

/// Runs `tlspeek -r captures/NAME --json EXTRA...` and parses every line.
pub fn json(name: &str, extra: &[&str]) -> Json {
    let path = capture(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["-r", p, "--json"];
    args.extend_from_slice(extra);
    let run = tlspeek(&args);
    let mut flows = Vec::new();
    let mut summary = Value::Null;
    for line in run.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        match v["type"].as_str() {
            Some("flow") => flows.push(v),
            Some("summary") => summary = v,
            other => panic!("unexpected type {other:?}"),
        }
    }
    assert!(summary.is_object(), "no summary line; stderr: {}", run.stderr);
    Json { run, flows, summary }
}

/// The only flow whose protocol is `proto` (panics if not exactly one).
pub fn one<'a>(flows: &'a [Value], proto: &str) -> &'a Value {
    let v: Vec<&Value> = flows.iter().filter(|f| f["protocol"] == proto).collect();
    assert_eq!(v.len(), 1, "expected one {proto} flow, got {}: {flows:#?}", v.len());
    v[0]
}

/// Strings of a JSON array.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_string())
        .collect()
}

/// Runs a command quietly; true when it ran and succeeded.
pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `$TLSPEEK_LIVE_BIN` (CI sets it to the static binary it just built and checked), else the
/// test build: the binary the live-capture tests run.
pub fn tlspeek_bin() -> String {
    std::env::var("TLSPEEK_LIVE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tlspeek").to_string())
}

/// A TCP segment as an Ethernet frame (IPv4, no options, checksums zero: tlspeek does not
/// check them), for captures made by tests.
pub struct Segment<'a> {
    pub src: ([u8; 4], u16),
    pub dst: ([u8; 4], u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    pub fn frame(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(54 + self.payload.len());
        p.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0]);
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(40 + self.payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&self.src.0);
        p.extend_from_slice(&self.dst.0);
        p.extend_from_slice(&self.src.1.to_be_bytes());
        p.extend_from_slice(&self.dst.1.to_be_bytes());
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ack.to_be_bytes());
        p.extend_from_slice(&[0x50, self.flags]);
        p.extend_from_slice(&self.window.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(self.payload);
        p
    }
}

/// The `"type": "flow"` lines of JSON Lines output, parsed one at a time (a test that keeps
/// tens of thousands of parsed lines grows its own process, and a child it starts afterwards
/// reports that size as its max RSS: the kernel carries the parent's high-water mark over
/// `exec` of a `vfork`ed child).
pub fn flow_lines(out: &[u8]) -> impl Iterator<Item = Value> + '_ {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<Value>(l).unwrap())
        .filter(|v| v["type"] == "flow")
}

//! The whole offline pipeline on one capture file, as `tlspeek -r FILE --json`: the output must
//! be JSON Lines: every line a JSON object, `"type": "flow"` but the last, `"type": "summary"`.
//!
//! The input is written to a per-process file in /dev/shm. For classic pcap input, the low byte
//! of the (ignored) `thiszone` header field at offset 8 turns on extra options, so the seeds
//! (thiszone 0) run with exactly `-r FILE --json`:
//!   bit 0 `--threads 2`             bit 4 `--show-secrets`
//!   bit 1 `--summary-only`          bit 5 `--expect mtls --fail-on-plaintext`
//!   bit 2 `--max-flows 2`           bit 6 `--check-loopback --exempt-ports none`
//!   bit 3 smallest buffers          bit 7 `--idle-timeout 1 --max-requests 1 --cert-warn 0`
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tlspeek::cli::Args;
use tlspeek::run::run_with_writer;

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir =
            if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        dir.join(format!("tlspeek-fuzz-{}.pcap", std::process::id()))
    })
}

const PCAP_MAGICS: [[u8; 4]; 4] =
    [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d]];

fuzz_target!(|data: &[u8]| {
    let p = path();
    std::fs::write(p, data).expect("write the capture file");
    let mut argv: Vec<String> = vec!["tlspeek".into(), "-r".into(), p.display().to_string(), "--json".into()];
    let opts = if data.len() >= 24 && PCAP_MAGICS.iter().any(|m| data[..4] == *m) { data[8] } else { 0 };
    let mut add = |bit: u8, args: &[&str]| {
        if opts & bit != 0 {
            argv.extend(args.iter().map(|s| s.to_string()));
        }
    };
    add(1, &["--threads", "2"]);
    add(2, &["--summary-only"]);
    add(4, &["--max-flows", "2"]);
    add(8, &["--max-stream-bytes", "16K", "--max-total-bytes", "16K", "--max-header-bytes", "1K"]);
    add(16, &["--show-secrets"]);
    add(32, &["--expect", "mtls", "--fail-on-plaintext"]);
    add(64, &["--check-loopback", "--exempt-ports", "none"]);
    add(128, &["--idle-timeout", "1", "--max-requests", "1", "--cert-warn", "0"]);
    let cfg = Args::try_parse_from(&argv)
        .expect("valid arguments")
        .into_config(false)
        .expect("valid configuration");
    let mut out = Vec::new();
    let mut diag = Vec::new();
    run_with_writer(&cfg, &mut out, &mut diag).expect("writing to a Vec cannot fail");
    assert_eq!(out.last(), Some(&b'\n'), "output does not end with a newline");
    let lines: Vec<&[u8]> = out[..out.len() - 1].split(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => panic!("line {} is not JSON ({e}): {}", i + 1, String::from_utf8_lossy(line)),
        };
        let kind = v.get("type").and_then(|k| k.as_str());
        let want = if i + 1 == lines.len() { "summary" } else { "flow" };
        assert_eq!(kind, Some(want), "line {} type: {}", i + 1, String::from_utf8_lossy(line));
    }
});

//! Snapshots of tlspeek's output for every shipped capture: `--json` and the table (no width
//! limit). The JSON schema and the table are interfaces: any change to them shows up here as a
//! diff to review (`cargo insta review`; `INSTA_UPDATE=always cargo test --test snapshots`
//! accepts). The captures are read by relative path from the crate's root, so the `source`
//! field does not depend on where the repository is checked out.

use std::path::Path;
use std::process::Command;

/// Every capture file in captures/, sorted.
fn captures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    v.sort();
    assert!(v.len() > 40, "captures/ holds {} files", v.len());
    v
}

/// tlspeek's standard output and exit code for `-r captures/NAME EXTRA...`, run from the crate's
/// root without a terminal width.
fn output(name: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("COLUMNS")
        .arg("-r")
        .arg(format!("captures/{name}"))
        .args(extra)
        .output()
        .unwrap();
    format!("{}# exit code {}\n", String::from_utf8_lossy(&out.stdout), out.status.code().unwrap_or(-1))
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"));
    s
}

#[test]
fn json_of_every_capture() {
    settings().bind(|| {
        for name in captures() {
            insta::assert_snapshot!(format!("{name}.json"), output(&name, &["--json"]));
        }
    });
}

#[test]
fn table_of_every_capture() {
    settings().bind(|| {
        for name in captures() {
            insta::assert_snapshot!(format!("{name}.table"), output(&name, &[]));
        }
    });
}

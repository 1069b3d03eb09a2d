//! The generator's output is the benchmark's input: the default profile must stay the same file
//! for the same seed (figures in bench/RESULTS.md compare across sessions), and the mesh profile
//! must be as deterministic. Hashes are FNV-1a 64 (the generator has no dependencies).

use std::path::PathBuf;
use std::process::Command;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Runs the generator; (pcap hash, truth hash, truth lines).
fn generate(name: &str, args: &[&str]) -> (u64, u64, usize) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = dir.join(format!("{name}.pcap"));
    let st = Command::new(env!("CARGO_BIN_EXE_gen")).arg(&out).args(args).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let pcap = std::fs::read(&out).unwrap();
    let truth = std::fs::read(dir.join(format!("{name}.pcap.truth.jsonl"))).unwrap();
    (fnv1a(&pcap), fnv1a(&truth), truth.iter().filter(|&&b| b == b'\n').count())
}

#[test]
fn default_profile_is_the_file_it_was_before_profiles() {
    // Hashes of the generator at commit 28120f8 (before --profile), `gen F 3 --seed 1 --h2 0.12`.
    let got = generate("default", &["3", "--seed", "1", "--h2", "0.12"]);
    assert_eq!(got, generate("default-named", &["3", "--seed", "1", "--h2", "0.12", "--profile", "default"]));
    assert_eq!(got, (DEFAULT_PCAP, DEFAULT_TRUTH, DEFAULT_FLOWS));
}

#[test]
fn mesh_profile_is_deterministic_and_differs() {
    let a = generate("mesh-a", &["3", "--seed", "1", "--profile", "mesh"]);
    assert_eq!(a, generate("mesh-b", &["3", "--profile", "mesh", "--seed", "1"]));
    assert_ne!(a.0, DEFAULT_PCAP);
}

const DEFAULT_PCAP: u64 = 0x5839_0784_83b1_8e92;
const DEFAULT_TRUTH: u64 = 0xdcc1_45c2_434b_f5e5;
const DEFAULT_FLOWS: usize = 253;

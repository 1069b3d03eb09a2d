//! scripts/kubectl-tlspeek against a fake `kubectl` that records its arguments (no cluster here).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn kubectl_plugin_copies_without_tar_and_runs_with_sudo_or_as_ephemeral_container() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let fake = dir.join("kubectl");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"kubectl $*\" >> {}\ncase \"$*\" in *'cat >'*) wc -c >> {};; esac\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str]| {
        let st = Command::new(&plugin)
            .args(args)
            .env("PATH", &path)
            .env("TLSPEEK_BIN", env!("CARGO_BIN_EXE_tlspeek"))
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    };
    run(&["reviews-v1", "-n", "bookinfo", "--", "-i", "eth0", "port", "9080"]);
    run(&["productpage-v1", "--image", "reg/tlspeek:1"]);
    let got = fs::read_to_string(&log).unwrap();
    let _ = fs::remove_dir_all(&dir);
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("kubectl exec -n bookinfo -i reviews-v1 -c istio-proxy -- sh -c cat > /var/lib/istio/data/tlspeek.tmp"), "{got}");
    let size = fs::metadata(env!("CARGO_BIN_EXE_tlspeek")).unwrap().len();
    assert_eq!(lines[1].trim(), size.to_string(), "the whole binary went through stdin");
    assert_eq!(lines[2], "kubectl exec -n bookinfo -it reviews-v1 -c istio-proxy -- sudo /var/lib/istio/data/tlspeek -i eth0 port 9080");
    assert_eq!(lines[3], "kubectl debug -it productpage-v1 --image=reg/tlspeek:1 --target=istio-proxy --profile=netadmin -- /tlspeek -i eth0");
}

/// A fake kubectl that runs `exec ... -- sh -c CMD` locally (copy into a temp dir, or fails like
/// a distroless container when told to) and records `debug`.
fn fake_kubectl(dir: &std::path::Path, distroless: bool) {
    let script = format!(
        r#"#!/bin/bash
echo "kubectl $*" >> {log}
if [ "$1" = exec ]; then
  while [ "$1" != -- ]; do shift; done; shift
  if [ "$1" = sh ]; then {fail} exec sh -c "$3"; fi
  if [ "$1" = sudo ]; then shift; exec "$@"; fi
fi
exit 0
"#,
        log = dir.join("log").display(),
        fail = if distroless { "echo 'exec: sh: not found' >&2; exit 126;" } else { "" }
    );
    let fake = dir.join("kubectl");
    fs::write(&fake, script).unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn kubectl_plugin_copy_really_lands_and_runs_and_distroless_falls_back() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl2-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek");
    let cap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/any-sll2.pcap");
    let dest = dir.join("tlspeek-in-pod");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    // "sudo" is not needed locally: the fake strips it. The copied binary reads a capture.
    fake_kubectl(&dir, false);
    let out = Command::new(&plugin)
        .args(["reviews-v1", "--", "-r", cap.to_str().unwrap(), "--json"])
        .env("PATH", &path)
        .env("TLSPEEK_BIN", env!("CARGO_BIN_EXE_tlspeek"))
        .env("TLSPEEK_DEST", &dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""mtls":"yes""#));
    assert_eq!(fs::read(&dest).unwrap(), fs::read(env!("CARGO_BIN_EXE_tlspeek")).unwrap());
    // Distroless: no shell, so the copy fails; with an image known it falls back to kubectl debug.
    fake_kubectl(&dir, true);
    let out = Command::new(&plugin)
        .args(["ratings-v1"])
        .env("PATH", &path)
        .env("TLSPEEK_BIN", env!("CARGO_BIN_EXE_tlspeek"))
        .env("TLSPEEK_IMAGE", "reg/tlspeek:1")
        .env("TLSPEEK_DEST", &dest)
        .output()
        .unwrap();
    let log = fs::read_to_string(dir.join("log")).unwrap();
    let _ = fs::remove_dir_all(&dir);
    assert!(out.status.success());
    assert!(
        log.lines()
            .last()
            .unwrap()
            .starts_with("kubectl debug -it ratings-v1 --image=reg/tlspeek:1 --target=istio-proxy"),
        "{log}"
    );
}

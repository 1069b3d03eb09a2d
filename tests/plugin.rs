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

/// A fake kubectl that runs `exec ... -- sh -c CMD` locally (copy into a temp dir) and records
/// `debug`; with `copy_fails`, the `exec ... sh` call prints that stderr and exits with that code
/// instead, as kubectl does when the cluster, the pod or the container's shell is missing.
fn fake_kubectl(dir: &std::path::Path, copy_fails: Option<(&str, i32)>) {
    let fail = match copy_fails {
        Some((stderr, code)) => {
            let f = dir.join("copy-stderr");
            fs::write(&f, stderr).unwrap();
            format!("cat {} >&2; exit {code};", f.display())
        }
        None => String::new(),
    };
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
    );
    let fake = dir.join("kubectl");
    fs::write(&fake, script).unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
}

/// What containerd-based clusters answer when the container has no `sh` (a distroless sidecar).
const NO_SHELL_CONTAINERD: &str = "error: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \"5e1d0c\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"sh\": executable file not found in $PATH: unknown\n";

#[test]
fn kubectl_plugin_copy_really_lands_and_runs_and_distroless_falls_back() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl2-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek");
    let cap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/any-sll2.pcap");
    let dest = dir.join("tlspeek-in-pod");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    // "sudo" is not needed locally: the fake strips it. The copied binary reads a capture.
    fake_kubectl(&dir, None);
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
    fake_kubectl(&dir, Some((NO_SHELL_CONTAINERD, 1)));
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

/// When kubectl itself fails, the plugin says so with kubectl's message (its last line: the lines
/// before are log noise) and does not fall back to `kubectl debug`, which would fail the same way;
/// the distroless hint and the fallback are kept for a container without a shell or tools.
#[test]
fn kubectl_plugin_reports_kubectl_failures_with_kubectls_message_not_as_distroless() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl3-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let no_cluster = "E1205 22:32:56.344293   10408 memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list: Get \\\"http://localhost:8080/api?timeout=32s\\\": dial tcp 127.0.0.1:8080: connect: connection refused\"\n\
        The connection to the server localhost:8080 was refused - did you specify the right host or port?\n";
    let no_shell_docker = "OCI runtime exec failed: exec failed: container_linux.go:380: starting container process caused: exec: \"sh\": executable file not found in $PATH: unknown\ncommand terminated with exit code 126\n";
    // (kubectl's stderr, its exit code, an image known?, the plugin's stderr, its exit code, kubectl debug run?)
    let cases: &[(&str, i32, bool, &str, i32, bool)] = &[
        (
            "Error from server (NotFound): pods \"x\" not found\n",
            1,
            true,
            "kubectl-tlspeek: kubectl exec failed: Error from server (NotFound): pods \"x\" not found\n",
            2,
            false,
        ),
        (
            no_cluster,
            1,
            true,
            "kubectl-tlspeek: kubectl exec failed: The connection to the server localhost:8080 was refused - did you specify the right host or port?\n",
            2,
            false,
        ),
        (
            "Error from server (Forbidden): pods \"x\" is forbidden: User \"dev\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"bookinfo\"\n",
            1,
            false,
            "kubectl-tlspeek: kubectl exec failed: Error from server (Forbidden): pods \"x\" is forbidden: User \"dev\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"bookinfo\"\n",
            2,
            false,
        ),
        (
            "error: unable to upgrade connection: container not found (\"istio-proxy\")\n",
            1,
            true,
            "kubectl-tlspeek: kubectl exec failed: error: unable to upgrade connection: container not found (\"istio-proxy\")\n",
            2,
            false,
        ),
        ("", 1, false, "kubectl-tlspeek: kubectl exec failed: exit code 1\n", 2, false),
        (
            NO_SHELL_CONTAINERD,
            1,
            false,
            "kubectl-tlspeek: cannot copy into istio-proxy: it has no shell (distroless sidecar); build the image from Dockerfile and pass --image IMAGE\n",
            2,
            false,
        ),
        (
            no_shell_docker,
            126,
            true,
            "kubectl-tlspeek: cannot copy into istio-proxy: it has no shell (distroless sidecar); using an ephemeral container from reg/tlspeek:1\n",
            0,
            true,
        ),
        (
            "sh: 1: cat: not found\ncommand terminated with exit code 127\n",
            127,
            false,
            "kubectl-tlspeek: cannot copy into istio-proxy: it lacks sh, cat, chmod or mv; build the image from Dockerfile and pass --image IMAGE\n",
            2,
            false,
        ),
        (
            "sh: 1: cannot create /var/lib/istio/data/tlspeek.tmp: Read-only file system\ncommand terminated with exit code 2\n",
            2,
            true,
            "kubectl-tlspeek: cannot write /var/lib/istio/data/tlspeek in istio-proxy: sh: 1: cannot create /var/lib/istio/data/tlspeek.tmp: Read-only file system; set TLSPEEK_DEST to a writable path in the container\n",
            2,
            false,
        ),
    ];
    for &(kubectl_err, kubectl_code, image, want_err, want_code, want_debug) in cases {
        let _ = fs::remove_file(dir.join("log"));
        fake_kubectl(&dir, Some((kubectl_err, kubectl_code)));
        let mut cmd = Command::new(&plugin);
        cmd.args(["x", "-n", "bookinfo"])
            .env("PATH", &path)
            .env("TLSPEEK_BIN", env!("CARGO_BIN_EXE_tlspeek"))
            .env_remove("TLSPEEK_DEST")
            .env_remove("TLSPEEK_IMAGE");
        if image {
            cmd.env("TLSPEEK_IMAGE", "reg/tlspeek:1");
        }
        let out = cmd.output().unwrap();
        let log = fs::read_to_string(dir.join("log")).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stderr), want_err, "{kubectl_err}");
        assert_eq!(out.status.code(), Some(want_code), "{kubectl_err}");
        assert_eq!(log.contains("kubectl debug"), want_debug, "{log}");
        assert!(!log.contains("sudo"), "{log}");
    }
    // No kubectl at all: a PATH holding only what the script needs before it calls kubectl.
    let bare = dir.join("bare");
    fs::create_dir_all(&bare).unwrap();
    for tool in ["bash", "dirname"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        let target = String::from_utf8(found.stdout).unwrap();
        std::os::unix::fs::symlink(target.trim(), bare.join(tool)).unwrap();
    }
    let out = Command::new(&plugin)
        .args(["x"])
        .env("PATH", &bare)
        .env("TLSPEEK_BIN", env!("CARGO_BIN_EXE_tlspeek"))
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "kubectl-tlspeek: kubectl not found on PATH\n");
    assert_eq!(out.status.code(), Some(2));
}

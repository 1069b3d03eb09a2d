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
            "#!/bin/sh\nprintf '%s\\n' \"kubectl $*\" >> {}\ncase \"$*\" in get*) printf '%s' '{SIDECAR_POD}';; *'cat >'*) wc -c >> {};; esac\n",
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
    let lines: Vec<&str> = got.lines().filter(|l| !l.starts_with("kubectl get ")).collect();
    assert!(got.starts_with("kubectl get -n bookinfo pod reviews-v1 -o jsonpath="), "{got}");
    assert!(lines[0].starts_with("kubectl exec -n bookinfo -i reviews-v1 -c istio-proxy -- sh -c cat > /var/lib/istio/data/tlspeek.tmp"), "{got}");
    let size = fs::metadata(env!("CARGO_BIN_EXE_tlspeek")).unwrap().len();
    assert_eq!(lines[1].trim(), size.to_string(), "the whole binary went through stdin");
    assert_eq!(lines[2], "kubectl exec -n bookinfo -it reviews-v1 -c istio-proxy -- sudo /var/lib/istio/data/tlspeek -i eth0 port 9080");
    assert_eq!(lines[3], "kubectl debug -it productpage-v1 --image=reg/tlspeek:1 --target=istio-proxy --profile=netadmin -- /tlspeek -i eth0");
}

/// What the plugin's `kubectl get pod -o jsonpath=…` prints for each pod below, one line each:
/// the `ambient.istio.io/redirection` annotation, the `istio.io/dataplane-mode` label, the
/// containers, the init containers as `name=restartPolicy`. Each beside the pod it comes from;
/// `kubectl_plugin_pod_query_reads_these_pods_as_real_kubectl_does` holds them to real kubectl.
const SIDECAR_POD: &str = "\n\nreviews istio-proxy\nistio-init= \n";
const SIDECAR_POD_YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v1\n  labels: {app: reviews}\n  annotations: {sidecar.istio.io/status: '{}'}\nspec:\n  initContainers:\n  - {name: istio-init, image: proxyv2}\n  containers:\n  - {name: reviews, image: reviews}\n  - {name: istio-proxy, image: proxyv2}\n";
/// Istio ≥ 1.19 on Kubernetes ≥ 1.29 injects istio-proxy as a native sidecar: an init container
/// that keeps running (restartPolicy Always).
const NATIVE_SIDECAR_POD: &str = "\n\nreviews\nistio-validation= istio-proxy=Always \n";
const NATIVE_SIDECAR_POD_YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v1\nspec:\n  initContainers:\n  - {name: istio-validation, image: proxyv2}\n  - {name: istio-proxy, image: proxyv2, restartPolicy: Always}\n  containers:\n  - {name: reviews, image: reviews}\n";
/// An ambient pod as istio-cni leaves it: no sidecar, the redirection annotation (the namespace
/// carries the `istio.io/dataplane-mode=ambient` label, the pod need not).
const AMBIENT_POD: &str = "enabled\n\nratings reloader\n\n";
const AMBIENT_POD_YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ratings-v1\n  annotations: {ambient.istio.io/redirection: enabled}\nspec:\n  containers:\n  - {name: ratings, image: ratings}\n  - {name: reloader, image: reloader}\n";
/// A pod labelled for ambient that istio-cni has not (yet) redirected.
const AMBIENT_LABEL_ONLY_POD: &str = "\nambient\nratings\n\n";
const AMBIENT_LABEL_ONLY_POD_YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ratings-v1\n  labels: {istio.io/dataplane-mode: ambient}\nspec:\n  containers:\n  - {name: ratings, image: ratings}\n";
/// A pod outside the mesh.
const PLAIN_POD: &str = "\n\nweb\n\n";
const PLAIN_POD_YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - {name: web, image: nginx}\n";

/// A fake kubectl that answers `get` with the pod in `dir/pod` (else [`SIDECAR_POD`]), keeping the
/// jsonpath query in `dir/query`, or fails it as `dir/get-stderr` says; runs
/// `exec ... -- sh -c CMD` locally (copy into a temp dir) and records
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
if [ "$1" = get ]; then
  for a; do case "$a" in jsonpath=*) printf '%s' "${{a#jsonpath=}}" > {dir}/query;; esac; done
  if [ -f {dir}/get-stderr ]; then cat {dir}/get-stderr >&2; exit 1; fi
  if [ -f {dir}/pod ]; then cat {dir}/pod; else printf '%s' '{SIDECAR_POD}'; fi
  exit 0
fi
if [ "$1" = exec ]; then
  while [ "$1" != -- ]; do shift; done; shift
  if [ "$1" = sh ]; then {fail} exec sh -c "$3"; fi
  if [ "$1" = sudo ]; then shift; exec "$@"; fi
fi
exit 0
"#,
        log = dir.join("log").display(),
        dir = dir.display(),
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

/// Runs the plugin against [`fake_kubectl`] in `dir` answering `get` with `pod`; returns its exit
/// code, its stderr and every kubectl command line it ran.
fn run_with_pod(
    dir: &std::path::Path,
    pod: &str,
    args: &[&str],
    image: Option<&str>,
) -> (Option<i32>, String, Vec<String>) {
    fs::create_dir_all(dir).unwrap();
    let _ = fs::remove_file(dir.join("log"));
    fake_kubectl(dir, None);
    fs::write(dir.join("pod"), pod).unwrap();
    // What the fake runs in place of `sudo tlspeek -i eth0` (a live capture would never end).
    let bin = dir.join("stand-in-tlspeek");
    fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(&plugin);
    cmd.args(args)
        .env("PATH", &path)
        .env("TLSPEEK_BIN", &bin)
        .env("TLSPEEK_DEST", dir.join("tlspeek-in-pod"))
        .env_remove("TLSPEEK_IMAGE");
    if let Some(image) = image {
        cmd.env("TLSPEEK_IMAGE", image);
    }
    let out = cmd.output().unwrap();
    let log = fs::read_to_string(dir.join("log")).unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        log.lines().map(String::from).collect(),
    )
}

/// The `kubectl get` line the plugin starts with (its jsonpath query is checked against real
/// kubectl in `kubectl_plugin_pod_query_reads_these_pods_as_real_kubectl_does`).
fn get_line(ns: &str, pod: &str) -> String {
    let query = r#"{.metadata.annotations.ambient\.istio\.io/redirection}{"\n"}{.metadata.labels.istio\.io/dataplane-mode}{"\n"}{.spec.containers[*].name}{"\n"}{range .spec.initContainers[*]}{.name}{"="}{.restartPolicy}{" "}{end}{"\n"}"#;
    format!("kubectl get {ns}pod {pod} -o jsonpath={query}")
}

/// Ambient pods have no istio-proxy: tlspeek runs in an ephemeral container that targets the
/// app (the first container, or -c), with `--mesh-mode ambient` before the user's arguments
/// (default `-i any`: HBONE on eth0 and the plaintext to and from ztunnel on lo).
#[test]
fn kubectl_plugin_ambient_pod_runs_an_ephemeral_container_on_the_app_with_mesh_mode_ambient() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl4-{}", std::process::id()));
    let (code, err, log) = run_with_pod(
        &dir,
        AMBIENT_POD,
        &["ratings-v1", "-n", "bookinfo", "--image", "reg/tlspeek:1", "--", "-i", "any", "port", "9080"],
        None,
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        log,
        [
            get_line("-n bookinfo ", "ratings-v1"),
            "kubectl debug -n bookinfo -it ratings-v1 --image=reg/tlspeek:1 --target=ratings --profile=netadmin -- /tlspeek --mesh-mode ambient -i any port 9080".into()
        ]
    );
    // The image from TLSPEEK_IMAGE; no tlspeek arguments: -i any.
    let (code, err, log) = run_with_pod(&dir, AMBIENT_POD, &["ratings-v1"], Some("reg/tlspeek:2"));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        log[1..],
        ["kubectl debug -it ratings-v1 --image=reg/tlspeek:2 --target=ratings --profile=netadmin -- /tlspeek --mesh-mode ambient -i any"]
    );
    // -c picks the target container.
    let (code, _, log) =
        run_with_pod(&dir, AMBIENT_POD, &["ratings-v1", "-c", "reloader", "--image", "reg/tlspeek:1"], None);
    assert_eq!(code, Some(0));
    assert_eq!(
        log[1..],
        ["kubectl debug -it ratings-v1 --image=reg/tlspeek:1 --target=reloader --profile=netadmin -- /tlspeek --mesh-mode ambient -i any"]
    );
    // Labelled for ambient but not redirected by istio-cni: still ambient, with a note.
    let (code, err, log) =
        run_with_pod(&dir, AMBIENT_LABEL_ONLY_POD, &["ratings-v1", "--image", "reg/tlspeek:1"], None);
    assert_eq!(code, Some(0));
    assert_eq!(err, "kubectl-tlspeek: note: ratings-v1 is labelled istio.io/dataplane-mode=ambient but istio-cni has not set ambient.istio.io/redirection=enabled: its traffic may not reach ztunnel\n");
    assert_eq!(
        log[1..],
        ["kubectl debug -it ratings-v1 --image=reg/tlspeek:1 --target=ratings --profile=netadmin -- /tlspeek --mesh-mode ambient -i any"]
    );
    // Outside the mesh: the ephemeral container too, tlspeek left to its own mesh detection.
    let (code, err, log) = run_with_pod(&dir, PLAIN_POD, &["web", "--image", "reg/tlspeek:1"], None);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        log[1..],
        ["kubectl debug -it web --image=reg/tlspeek:1 --target=web --profile=netadmin -- /tlspeek -i eth0"]
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A pod with istio-proxy, as a container or as a native sidecar (an init container with
/// restartPolicy Always), takes the sidecar path as before: nothing new passed to tlspeek.
#[test]
fn kubectl_plugin_sidecar_and_native_sidecar_pods_keep_the_sidecar_path() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl5-{}", std::process::id()));
    let dest = dir.join("tlspeek-in-pod");
    for pod in [SIDECAR_POD, NATIVE_SIDECAR_POD] {
        let (code, err, log) = run_with_pod(
            &dir,
            pod,
            &["reviews-v1", "-n", "bookinfo", "--", "-i", "eth0", "port", "9080"],
            None,
        );
        assert_eq!((code, err.as_str()), (Some(0), ""), "{pod:?}");
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[0], get_line("-n bookinfo ", "reviews-v1"));
        assert_eq!(
            log[1],
            format!("kubectl exec -n bookinfo -i reviews-v1 -c istio-proxy -- sh -c cat > {0}.tmp && chmod 755 {0}.tmp && mv {0}.tmp {0}", dest.display())
        );
        assert_eq!(
            log[2],
            format!(
                "kubectl exec -n bookinfo -it reviews-v1 -c istio-proxy -- sudo {} -i eth0 port 9080",
                dest.display()
            )
        );
        let (code, _, log) = run_with_pod(&dir, pod, &["reviews-v1", "--image", "reg/tlspeek:1"], None);
        assert_eq!(code, Some(0));
        assert_eq!(
            log[1..],
            ["kubectl debug -it reviews-v1 --image=reg/tlspeek:1 --target=istio-proxy --profile=netadmin -- /tlspeek -i eth0"]
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Without an image the ephemeral container cannot start: the plugin says what to pass (for an
/// ambient pod with the whole command line to type) and runs nothing after `kubectl get`.
#[test]
fn kubectl_plugin_ambient_pod_without_image_says_to_pass_one() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl6-{}", std::process::id()));
    let (code, err, log) = run_with_pod(&dir, AMBIENT_POD, &["ratings-v1", "-n", "bookinfo"], None);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "kubectl-tlspeek: ratings-v1 is an ambient pod (no istio-proxy: ztunnel carries its traffic): tlspeek reaches it from an ephemeral container; pass --image IMAGE (built from Dockerfile) or set TLSPEEK_IMAGE\n  e.g. kubectl tlspeek ratings-v1 -n bookinfo --image REGISTRY/tlspeek\n"
    );
    assert_eq!(log, [get_line("-n bookinfo ", "ratings-v1")]);
    // The user's tlspeek arguments come back in the example, quoted for the shell.
    let (code, err, _) = run_with_pod(
        &dir,
        AMBIENT_POD,
        &["ratings-v1", "--", "-i", "any", "tcp port 9080", "--expect", "mtls"],
        None,
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.lines().nth(1),
        Some(
            r"  e.g. kubectl tlspeek ratings-v1 --image REGISTRY/tlspeek -- -i any tcp\ port\ 9080 --expect mtls"
        )
    );
    let (code, err, log) = run_with_pod(&dir, PLAIN_POD, &["web"], None);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "kubectl-tlspeek: web has no istio-proxy container and is not ambient: tlspeek reaches it from an ephemeral container; pass --image IMAGE (built from Dockerfile) or set TLSPEEK_IMAGE\n"
    );
    assert_eq!(log.len(), 1, "{log:?}");
    let _ = fs::remove_dir_all(&dir);
}

/// `kubectl get pod` failing (no such pod, no cluster) stops the plugin with kubectl's last line.
#[test]
fn kubectl_plugin_reports_a_failed_pod_lookup_with_kubectls_message() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl7-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("get-stderr"), "W1206 noise\nError from server (NotFound): pods \"x\" not found\n")
        .unwrap();
    let (code, err, log) = run_with_pod(&dir, AMBIENT_POD, &["x", "--image", "reg/tlspeek:1"], None);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "kubectl-tlspeek: kubectl get pod failed: Error from server (NotFound): pods \"x\" not found\n"
    );
    assert_eq!(log, [get_line("", "x")]);
}

/// The canned answers above are what real kubectl prints for those pods with the plugin's own
/// query (`kubectl label --local` evaluates it offline). Needs a kubectl on PATH; without one
/// the test says so and passes.
#[test]
fn kubectl_plugin_pod_query_reads_these_pods_as_real_kubectl_does() {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("no kubectl on PATH: the pod query is not checked against it");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl8-{}", std::process::id()));
    let _ = run_with_pod(&dir, SIDECAR_POD, &["reviews-v1"], None);
    let query = fs::read_to_string(dir.join("query")).unwrap();
    for (yaml, want) in [
        (SIDECAR_POD_YAML, SIDECAR_POD),
        (NATIVE_SIDECAR_POD_YAML, NATIVE_SIDECAR_POD),
        (AMBIENT_POD_YAML, AMBIENT_POD),
        (AMBIENT_LABEL_ONLY_POD_YAML, AMBIENT_LABEL_ONLY_POD),
        (PLAIN_POD_YAML, PLAIN_POD),
    ] {
        let file = dir.join("pod.yaml");
        fs::write(&file, yaml).unwrap();
        let out = Command::new("kubectl")
            .args(["label", "--local", "-f", file.to_str().unwrap(), "tlspeek-test=1", "-o"])
            .arg(format!("jsonpath={query}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{yaml}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// What `kubectl get pods -l … -o jsonpath=…` prints for the pods of
/// `kubectl_plugin_many_pods_merges_the_good_ones_and_names_each_failure`, one block each: name,
/// phase, then the one-pod lines (as [`SIDECAR_POD`] …). `MANY_PODS_YAML` holds them to real kubectl.
const MANY_PODS: &str = "sleep-7d9c\nRunning\n\n\nsleep istio-proxy\nistio-init= \n\
    httpbin-5f6\nRunning\nenabled\n\nhttpbin\n\n\
    ratings-gone\nRunning\n\n\nratings istio-proxy\nistio-init= \n\
    reviews-nopriv\nRunning\n\n\nreviews\nistio-proxy=Always \n\
    web-pending\nPending\n\n\nweb\n\n\
    details-psa\nRunning\nenabled\n\ndetails\n\n";
const MANY_PODS_YAML: &str = "apiVersion: v1\nkind: List\nitems:\n\
- {apiVersion: v1, kind: Pod, metadata: {name: sleep-7d9c, labels: {tier: web}}, spec: {initContainers: [{name: istio-init, image: proxyv2}], containers: [{name: sleep, image: curl}, {name: istio-proxy, image: proxyv2}]}, status: {phase: Running}}\n\
- {apiVersion: v1, kind: Pod, metadata: {name: httpbin-5f6, annotations: {ambient.istio.io/redirection: enabled}}, spec: {containers: [{name: httpbin, image: httpbin}]}, status: {phase: Running}}\n\
- {apiVersion: v1, kind: Pod, metadata: {name: ratings-gone}, spec: {initContainers: [{name: istio-init, image: proxyv2}], containers: [{name: ratings, image: ratings}, {name: istio-proxy, image: proxyv2}]}, status: {phase: Running}}\n\
- {apiVersion: v1, kind: Pod, metadata: {name: reviews-nopriv}, spec: {initContainers: [{name: istio-proxy, image: proxyv2, restartPolicy: Always}], containers: [{name: reviews, image: reviews}]}, status: {phase: Running}}\n\
- {apiVersion: v1, kind: Pod, metadata: {name: web-pending}, spec: {containers: [{name: web, image: nginx}]}, status: {phase: Pending}}\n\
- {apiVersion: v1, kind: Pod, metadata: {name: details-psa, annotations: {ambient.istio.io/redirection: enabled}}, spec: {containers: [{name: details, image: details}]}, status: {phase: Running}}\n";

/// A fake kubectl for `-l`: `get` answers [`MANY_PODS`]; `exec` copies (for real) into and runs
/// the binary in `sleep-7d9c` on `dir/sleep-7d9c.pcap`, fails `ratings-gone` as a pod gone away,
/// and answers `reviews-nopriv`'s `sudo` as sudo does in an unprivileged sidecar; `debug` prints
/// `dir/POD.logs` but its first line (kubectl attaches late), or fails `details-psa` as
/// PodSecurity does; `logs` prints `dir/POD.logs` whole. Every call is appended to `dir/log`.
fn fake_kubectl_many(dir: &std::path::Path) {
    let script = format!(
        r#"#!/bin/bash
echo "kubectl $*" >> {dir}/log
pod="" name=""
for a; do
  case "$a" in sleep-7d9c|httpbin-5f6|ratings-gone|reviews-nopriv|web-pending|details-psa) pod=$a;; --container=*) name=${{a#--container=}};; esac
done
case "$1" in
get) printf '%s' '{MANY_PODS}'; exit 0 ;;
exec)
  if [ "$pod" = ratings-gone ]; then echo 'Error from server (NotFound): pods "ratings-gone" not found' >&2; exit 1; fi
  while [ "$1" != -- ]; do shift; done; shift
  if [ "$1" = sh ]; then
    if [ -f {dir}/$pod.pcap ]; then exec sh -c "$3"; fi
    cat > /dev/null; exit 0
  fi
  if [ -f {dir}/$pod.pcap ]; then exec "$2" --json -r {dir}/$pod.pcap; fi
  echo 'sudo: The "no new privileges" flag is set, which prevents sudo from running as root.' >&2
  echo 'sudo: If sudo is running in a container, you may need to adjust the container configuration to disable the flag.' >&2
  echo 'command terminated with exit code 1' >&2
  exit 1 ;;
debug)
  if [ -f {dir}/$pod.logs ]; then tail -n +2 {dir}/$pod.logs; exit 0; fi
  echo "Error from server (Forbidden): pods \"$pod\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"$name\" must not include \"NET_ADMIN\", \"NET_RAW\" in securityContext.capabilities.add)" >&2
  exit 1 ;;
logs) exec cat {dir}/$pod.logs ;;
esac
exit 0
"#,
        dir = dir.display(),
    );
    let fake = dir.join("kubectl");
    fs::write(&fake, script).unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `tlspeek-20261206072500` (the ephemeral container's name: a time stamp) as `tlspeek-STAMP`.
fn unstamp(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("tlspeek-") {
        let tail = &rest[i + 8..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..i + 8]);
        if digits == 14 {
            out.push_str("STAMP");
            rest = &tail[14..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `kubectl tlspeek -l`: one capture per pod, the sidecar way or the ephemeral way as each pod
/// needs; the two that work (a client pod and a server pod of the ambient captures, so one HBONE
/// connection is seen from both ends) are merged by `tlspeek report`, each failure is one
/// `pod NAME:` line on stderr, and the exit code is 2.
#[test]
fn kubectl_plugin_many_pods_merges_the_good_ones_and_names_each_failure() {
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl9-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_tlspeek");
    fs::copy(root.join("captures/ambient-client-any.pcap"), dir.join("sleep-7d9c.pcap")).unwrap();
    // What the ephemeral container in the server pod wrote: real tlspeek on the server's capture.
    let server = Command::new(bin)
        .args(["--mesh-mode", "ambient", "--json", "-r"])
        .arg(root.join("captures/ambient-server-any.pcap"))
        .output()
        .unwrap();
    assert!(server.status.success());
    fs::write(dir.join("httpbin-5f6.logs"), &server.stdout).unwrap();
    fake_kubectl_many(&dir);
    // The local tlspeek that merges, behind a wrapper that records its arguments.
    let wrapper = dir.join("local-tlspeek");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"tlspeek $*\" >> {}\nexec {bin} \"$@\"\n", dir.join("log").display()),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let dest = dir.join("tlspeek-in-pod");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |extra: &[&str]| {
        let _ = fs::remove_file(dir.join("log"));
        // In the scratch directory: `--html mesh.html` is written where the plugin runs.
        let out = Command::new(root.join("scripts/kubectl-tlspeek"))
            .current_dir(&dir)
            .args(["-n", "shop", "-l", "tier=web", "--duration", "5"])
            .args(extra)
            .args(["--", "-i", "any"])
            .env("PATH", &path)
            .env("TLSPEEK_BIN", bin)
            .env("TLSPEEK", &wrapper)
            .env("TLSPEEK_IMAGE", "reg/tlspeek:1")
            .env("TLSPEEK_DEST", &dest)
            .output()
            .unwrap();
        let log = unstamp(&fs::read_to_string(dir.join("log")).unwrap());
        (out, log)
    };
    let (out, log) = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = unstamp(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "pod ratings-gone: kubectl exec failed: Error from server (NotFound): pods \"ratings-gone\" not found\n\
         pod reviews-nopriv: sudo: The \"no new privileges\" flag is set, which prevents sudo from running as root. (sudo needs a privileged sidecar, values.global.proxy.privileged=true; or pass --image IMAGE for an ephemeral container)\n\
         pod web-pending: not running (phase Pending): not captured\n\
         pod details-psa: kubectl debug failed: Error from server (Forbidden): pods \"details-psa\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"tlspeek-STAMP\" must not include \"NET_ADMIN\", \"NET_RAW\" in securityContext.capabilities.add)\n\
         kubectl-tlspeek: 4 of 6 pods failed (above): merged the other 2\n"
    );
    // Both pods' flows, the HBONE connection both captured counted once.
    assert!(
        stdout.starts_with("merged 13 flow records from 2 files: 12 flows (each connection seen from both ends counted once: 1 duplicate)\n"),
        "{stdout}"
    );
    for row in [
        "  10.99.0.2:15008  -        1      1     0            0          0        0     all HBONE mTLS (ambient; inferred from record sizes)",
        "  10.99.0.3:8081   -        1      0     0            1          0        0     plaintext to a destination outside the mesh",
        "  169.254.7.127  10.99.0.2:8080   1      0     0         0            1          0        0        0     ",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(row)), "{row}\n{stdout}");
    }
    // The exact calls, sorted (the pods run in parallel).
    let d = dest.display();
    let list_query = r#"{range .items[*]}{.metadata.name}{"\n"}{.status.phase}{"\n"}{.metadata.annotations.ambient\.istio\.io/redirection}{"\n"}{.metadata.labels.istio\.io/dataplane-mode}{"\n"}{.spec.containers[*].name}{"\n"}{range .spec.initContainers[*]}{.name}{"="}{.restartPolicy}{" "}{end}{"\n"}{end}"#;
    let mut want = vec![
        format!("kubectl get -n shop pods -l tier=web -o jsonpath={list_query}"),
        format!("kubectl exec -n shop -i sleep-7d9c -c istio-proxy -- sh -c cat > {d}.tmp && chmod 755 {d}.tmp && mv {d}.tmp {d}"),
        format!("kubectl exec -n shop sleep-7d9c -c istio-proxy -- sudo {d} --json --duration 5 -i any"),
        "kubectl debug -n shop -i --quiet httpbin-5f6 --image=reg/tlspeek:1 --target=httpbin --profile=netadmin --container=tlspeek-STAMP -- /tlspeek --json --duration 5 --mesh-mode ambient -i any".into(),
        "kubectl logs -n shop httpbin-5f6 -c tlspeek-STAMP".into(),
        format!("kubectl exec -n shop -i ratings-gone -c istio-proxy -- sh -c cat > {d}.tmp && chmod 755 {d}.tmp && mv {d}.tmp {d}"),
        format!("kubectl exec -n shop -i reviews-nopriv -c istio-proxy -- sh -c cat > {d}.tmp && chmod 755 {d}.tmp && mv {d}.tmp {d}"),
        format!("kubectl exec -n shop reviews-nopriv -c istio-proxy -- sudo {d} --json --duration 5 -i any"),
        "kubectl debug -n shop -i --quiet details-psa --image=reg/tlspeek:1 --target=details --profile=netadmin --container=tlspeek-STAMP -- /tlspeek --json --duration 5 --mesh-mode ambient -i any".into(),
    ];
    let mut got: Vec<String> = log.lines().map(String::from).collect();
    let report = got.pop().unwrap();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // The merge reads the two good pods' files, in the order kubectl listed the pods.
    let files: Vec<&str> = report.strip_prefix("tlspeek report ").unwrap().split(' ').collect();
    assert_eq!(files.len(), 2, "{report}");
    assert!(files[0].ends_with("/sleep-7d9c.jsonl") && files[1].ends_with("/httpbin-5f6.jsonl"), "{report}");
    // --html FILE goes to tlspeek report as it is.
    let (_, log) = run(&["--html", "mesh.html"]);
    let report = log.lines().last().unwrap();
    assert!(report.starts_with("tlspeek report --html mesh.html /"), "{report}");
    // Each --mesh-config FILE too, in order; the merge applies them (a file that cannot be
    // used: tlspeek report's exit 2 and its message).
    let policy = dir.join("strict.yaml");
    fs::write(&policy, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n").unwrap();
    let (p, missing) = (policy.to_str().unwrap(), dir.join("missing.yaml"));
    let missing = missing.to_str().unwrap();
    let (out, log) = run(&["--mesh-config", p, "--html", "mesh.html", "--mesh-config", missing]);
    let report = log.lines().last().unwrap();
    let want = format!("tlspeek report --html mesh.html --mesh-config {p} --mesh-config {missing} /");
    assert!(report.starts_with(&want), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "tlspeek: --mesh-config {missing}: cannot read: No such file or directory (os error 2)\n"
        )),
        "{stderr}"
    );
    // The ambient pods' flows (the server's not decrypted) show no namespace: no policy applies.
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("  10.99.0.2:15008 ")).unwrap();
    assert_eq!(lines[at + 1], "    policy: policy unknown (namespace not seen)", "{stdout}");
    // Only with -l: for one pod it is tlspeek's own option, after --.
    let one = Command::new(root.join("scripts/kubectl-tlspeek"))
        .args(["web-1", "--mesh-config", p])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&one.stderr),
        "kubectl-tlspeek: --duration, --html and --mesh-config go with -l SELECTOR; for one pod give tlspeek's own after --\n"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The `-l` list query is the one-pod query per item of `.items` (the `{range .items[*]}` form
/// of kubectl's documentation): real kubectl, run on each pod of [`MANY_PODS_YAML`] with the
/// part inside the range, prints [`MANY_PODS`]. Needs a kubectl on PATH, else says so and passes.
#[test]
fn kubectl_plugin_many_pods_query_reads_these_pods_as_real_kubectl_does() {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("no kubectl on PATH: the pod list query is not checked against it");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tlspeek-fake-kubectl10-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fake_kubectl_many(&dir);
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    // --image: every pod the ephemeral way, which the fake refuses; the query is in the log.
    let _ = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl-tlspeek"))
        .args(["-l", "tier=web", "--image", "reg/tlspeek:1"])
        .env("PATH", &path)
        .env("TLSPEEK", env!("CARGO_BIN_EXE_tlspeek"))
        .output()
        .unwrap();
    let log = fs::read_to_string(dir.join("log")).unwrap();
    let query =
        log.lines().next().unwrap().strip_prefix("kubectl get pods -l tier=web -o jsonpath=").unwrap();
    let inner = query.strip_prefix("{range .items[*]}").unwrap().strip_suffix("{end}").unwrap();
    let file = dir.join("pods.yaml");
    fs::write(&file, MANY_PODS_YAML).unwrap();
    let out = Command::new("kubectl")
        .args(["label", "--local", "-f", file.to_str().unwrap(), "tlspeek-test=1", "-o"])
        .arg(format!("jsonpath={inner}"))
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), MANY_PODS);
}

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

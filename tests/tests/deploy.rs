//! The deployment files (README "Deploying on Kubernetes"): the manifests pass the
//! Kubernetes API schemas (kubernetes-validate, installed by the set-up command), and the
//! DaemonSet's capability list is enough for `tracer --all` (with injection) on a
//! service of another user, each of its kernel-facing capabilities is needed, and a
//! missing one is named. These tests need root (the tracer is then confined with
//! `setpriv` to exactly the manifest's capabilities).

use std::path::PathBuf;
use std::process::Command;

use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::process::{Fixture, HttpServer, build_http_server};
use tracer_tests::tracer::{ATTACH_TIMEOUT, RUN_TIMEOUT, Tracer, tracer_bin};

fn manifest() -> PathBuf {
    tracer_tests::workspace_root().join("deploy/kubernetes/tracer.yaml")
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas() {
    let linter = go::tools_dir()
        .expect("the tools directory")
        .join("python/kubernetes-validate");
    let output = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(manifest())
        .env("PYTHONPATH", &linter)
        .output()
        .expect("run kubernetes-validate (installed by `cargo xtask setup`)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    for kind in [
        "serviceaccount",
        "clusterrole",
        "clusterrolebinding",
        "daemonset",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind} checked: {text}"
        );
    }
    let yaml = std::fs::read_to_string(manifest()).expect("read the manifest");
    for setting in [
        "hostPID: true",
        "readOnlyRootFilesystem: true",
        "privileged: false",
        "drop: [\"ALL\"]",
        "fieldPath: spec.nodeName",
    ] {
        assert!(yaml.contains(setting), "the DaemonSet says {setting}");
    }
}

/// The capabilities the DaemonSet adds, as `setpriv` names them (`sys_admin`, ...).
fn manifest_capabilities() -> Vec<String> {
    let yaml = std::fs::read_to_string(manifest()).expect("read the manifest");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "add:").skip(1);
    let mut caps = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(cap) = line.strip_prefix("- ") else {
            break;
        };
        caps.push(cap.trim().to_ascii_lowercase());
    }
    assert!(caps.len() >= 3, "capabilities in the manifest: {caps:?}");
    caps
}

/// The tracer with `args`, confined to exactly `caps` (bounding, permitted and effective
/// sets; nothing inheritable or ambient).
fn confined(caps: &[String], args: &[&str]) -> Command {
    let bounding: String = caps.iter().map(|c| format!(",+{c}")).collect();
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--bounding-set=-all{bounding}"))
        .args(["--inh-caps=-all", "--ambient-caps=-all"])
        .arg(tracer_bin().expect("the tracer binary"))
        .args(args);
    command
}

/// The `net_http_server` fixture started as user and group 65534 (nobody), from a copy
/// only it and root can use.
fn service_of_another_user() -> (HttpServer, PathBuf) {
    let (toolchain, built) = build_http_server(go::DEFAULT).expect("build the fixture");
    let dir = std::env::temp_dir().join(format!("tracer-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let exe = dir.join("service");
    std::fs::copy(&built, &exe).expect("copy the fixture");
    // Readable by its owner only (nobody): root needs CAP_DAC_READ_SEARCH to read it.
    let status = Command::new("chown")
        .args(["65534:65534"])
        .arg(&exe)
        .status()
        .expect("chown");
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe);
    let fixture = Fixture::spawn_command(command, &exe).expect("start the service");
    (
        HttpServer::from_fixture(fixture, toolchain).expect("it listens"),
        dir,
    )
}

#[test]
fn the_daemonset_capabilities_are_enough_and_each_is_named_when_missing() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let caps = manifest_capabilities();
    let (server, dir) = service_of_another_user();
    let include = format!("{}/*", dir.display());
    let tracer = Tracer::spawn_command(confined(
        &caps,
        &["--all", "--include", &include, "--format", "json"],
    ))
    .expect("start the confined tracer");
    tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("attached with the DaemonSet's capabilities");
    let status = std::fs::read_to_string(format!("/proc/{}/status", tracer.pid()))
        .expect("the tracer's status");
    let response = http::get(server.addr(), "/hello").expect("GET /hello");
    assert_eq!(response.status, 200);
    let output = tracer.stop().expect("the tracer stops");
    let spans = output.spans().expect("JSON spans");
    assert_eq!(spans.len(), 1, "{}", output.stderr);
    assert_eq!(spans[0].attr_str("url.path"), Some("/hello"));
    for warning in ["capability missing", "injection is off"] {
        assert!(
            !output.stderr.contains(warning),
            "no {warning:?} warning: {}",
            output.stderr
        );
    }
    // The tracer really ran with the manifest's capabilities only.
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("hex"))
        .expect("CapEff");
    assert_eq!(
        effective.count_ones() as usize,
        caps.len(),
        "CapEff {effective:x} for {caps:?}"
    );

    // Without each of these, tracing that process fails, naming what is missing.
    let pid = server.pid().to_string();
    for (missing, named) in [
        ("sys_admin", "CAP_SYS_ADMIN"),
        ("sys_ptrace", "CAP_SYS_PTRACE"),
        ("dac_read_search", "CAP_DAC_READ_SEARCH"),
    ] {
        assert!(caps.iter().any(|c| c == missing), "{missing} in {caps:?}");
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let tracer = Tracer::spawn_command(confined(&fewer, &["--pid", &pid]))
            .expect("start the confined tracer");
        let output = tracer.wait_exit(RUN_TIMEOUT).expect("the tracer exits");
        assert_eq!(
            output.code(),
            Some(1),
            "without {missing}: {}",
            output.stderr
        );
        let line = output.error_line().expect("an error line");
        assert!(line.contains(named), "without {missing}: {line}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

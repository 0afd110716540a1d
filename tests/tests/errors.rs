//! End-to-end: the tracer's errors (CONTRACT.md "Lifecycle"). A runtime error exits 1
//! with one `error: ...` line naming the cause; a usage error exits 2. The runtime-error
//! tests need root (to be sure the tracer lacks nothing but what the test takes away).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tracer_tests::go::{self, Toolchain};
use tracer_tests::process::{
    Fixture, HTTP_SERVER_FIXTURE, HttpServer, OTEL_VARIABLES, STARTUP_TIMEOUT,
};
use tracer_tests::tracer::{self, RUN_TIMEOUT, Tracer, TracerOutput};

/// Checks a runtime error: exit code 1, a line `error: ...` that mentions `cause`
/// (case-insensitive), no spans.
fn assert_runtime_error(output: &TracerOutput, cause: &str) {
    assert_eq!(
        output.code(),
        Some(1),
        "exit code of a runtime error\n{output}"
    );
    let line = output
        .error_line()
        .unwrap_or_else(|| panic!("no stderr line starting with `error:`\n{output}"));
    assert!(
        line.to_lowercase().contains(&cause.to_lowercase()),
        "the error line should mention {cause:?}\n{output}"
    );
    assert!(output.stdout.is_empty(), "nothing on stdout\n{output}");
}

fn pid_args(pid: u32) -> [String; 2] {
    ["--pid".to_owned(), pid.to_string()]
}

#[test]
fn no_such_process() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let output = tracer::run(["--pid", "999999999"], RUN_TIMEOUT).expect("run the tracer");
    assert!(
        output.stderr.starts_with("error:"),
        "stderr starts with `error:`\n{output}"
    );
    assert_runtime_error(&output, "no process");
}

#[test]
fn a_program_that_is_not_go() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let sleep = Fixture::spawn("sleep", &["30"]).expect("start sleep");
    let output = tracer::run(pid_args(sleep.pid()), RUN_TIMEOUT).expect("run the tracer");
    assert_runtime_error(&output, "not a Go program");
}

#[test]
fn a_go_program_without_net_http() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let exe = toolchain
        .build_fixture("no_http")
        .expect("build the no_http fixture");
    let program = Fixture::spawn(&exe, &[]).expect("start the no_http fixture");
    program
        .wait_for_stdout_line("ready", STARTUP_TIMEOUT)
        .expect("no_http starts");
    let output = tracer::run(pid_args(program.pid()), RUN_TIMEOUT).expect("run the tracer");
    assert_runtime_error(&output, "net/http");
}

#[test]
fn without_privileges_the_error_names_cap_bpf() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root(); // to become someone else
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let fixture = toolchain
        .build_fixture(HTTP_SERVER_FIXTURE)
        .expect("build the fixture");
    let tracer_bin = tracer::tracer_bin().expect("tracer binary");
    // Copies that nobody can run whatever the permissions of the workspace.
    let dir = ScratchDir::new("nonroot");
    let fixture = dir.copy_executable(&fixture);
    let tracer_bin = dir.copy_executable(&tracer_bin);

    // The fixture runs as the same user, so only missing capabilities stand in the way.
    let server = Fixture::spawn_command(as_nobody(&fixture, &[]), &fixture)
        .and_then(|process| HttpServer::from_fixture(process, toolchain))
        .expect("start the fixture as uid 65534");
    let pid = server.pid().to_string();
    let output = Tracer::spawn_command(as_nobody(&tracer_bin, &["--pid", &pid]))
        .and_then(|tracer| tracer.wait_exit(RUN_TIMEOUT))
        .expect("run the tracer as uid 65534");
    assert_runtime_error(&output, "CAP_BPF");
}

#[test]
fn usage_error_without_a_target() {
    let output = tracer::run(std::iter::empty::<&str>(), RUN_TIMEOUT).expect("run the tracer");
    assert_eq!(
        output.code(),
        Some(2),
        "exit code of a usage error\n{output}"
    );
    assert!(
        !output.stderr.trim().is_empty(),
        "a usage error says what is wrong\n{output}"
    );
}

#[test]
fn usage_error_for_a_pid_that_is_not_a_number() {
    let output = tracer::run(["--pid", "abc"], RUN_TIMEOUT).expect("run the tracer");
    assert_eq!(
        output.code(),
        Some(2),
        "exit code of a usage error\n{output}"
    );
    assert!(
        !output.stderr.trim().is_empty(),
        "a usage error says what is wrong\n{output}"
    );
}

/// `setpriv` (util-linux) running `exe` as uid/gid 65534 (nobody) with no groups and
/// no capabilities.
fn as_nobody(exe: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(exe)
        .args(args);
    for variable in OTEL_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// A directory under the system's temporary directory that everyone can read and
/// enter, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tracer-tests-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a scratch directory");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        Self(path)
    }

    /// Copies `file` in, executable by everyone; returns the copy's path.
    fn copy_executable(&self, file: &Path) -> PathBuf {
        let copy = self.0.join(file.file_name().expect("a file name"));
        fs::copy(file, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        copy
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

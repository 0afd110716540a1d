//! End-to-end: the attach modes other than `--pid` (CONTRACT.md "Command line"):
//! `--binary PATH` (every process running the file, now and later, a replaced file
//! included), `-- COMMAND` (traced from its first request, its exit status passed on) and
//! `--all` with a filter (exactly the included processes, non-Go ones ignored). These
//! tests need root.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracer_tests::go::{self, Toolchain};
use tracer_tests::http;
use tracer_tests::process::{Fixture, HttpServer, build_http_server, send_signal};
use tracer_tests::span::Span;
use tracer_tests::tracer::{ATTACH_TIMEOUT, Tracer, TracerOutput};

/// A scratch directory of the test, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-attach-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A copy of the `net_http_server` fixture built by `version` at `path` (a new file:
/// written beside it, then renamed over whatever was there, as deploys do).
fn install(version: &str, path: &Path) -> Toolchain {
    let toolchain = Toolchain::find(version).expect("a Go toolchain");
    let built = toolchain
        .build_fixture("net_http_server")
        .expect("build the fixture");
    let partial = path.with_extension("new");
    std::fs::copy(&built, &partial).expect("copy the fixture");
    std::fs::rename(&partial, path).expect("move it into place");
    toolchain
}

fn serve(exe: &Path, toolchain: &Toolchain) -> HttpServer {
    let fixture = Fixture::spawn(exe, &[]).expect("start a service");
    HttpServer::from_fixture(fixture, toolchain.clone()).expect("the service listens")
}

fn hello(server: &HttpServer) {
    let response = http::get(server.addr(), "/hello").expect("GET /hello");
    assert_eq!(response.status, 200);
}

fn pid_of(span: &Span) -> Option<u64> {
    span.resource("process.pid")
        .and_then(serde_json::Value::as_u64)
}

/// The pids of `spans`, sorted, one per span.
fn pids(spans: &[Span]) -> Vec<u64> {
    let mut pids: Vec<u64> = spans.iter().filter_map(pid_of).collect();
    pids.sort_unstable();
    pids
}

fn sorted(servers: &[&HttpServer]) -> Vec<u64> {
    let mut pids: Vec<u64> = servers.iter().map(|s| u64::from(s.pid())).collect();
    pids.sort_unstable();
    pids
}

fn stop(tracer: Tracer) -> TracerOutput {
    let output = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    output
}

#[test]
fn binary_traces_processes_started_before_and_after_and_a_replaced_file() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let dir = scratch("binary");
    let exe = dir.join("service");
    let toolchain = install(go::DEFAULT, &exe);
    let mut before: Vec<HttpServer> = (0..3).map(|_| serve(&exe, &toolchain)).collect();
    let exe_arg = exe.to_str().expect("a UTF-8 path");
    let tracer =
        Tracer::spawn(["--binary", exe_arg, "--format", "json"]).expect("start the tracer");
    for server in &before {
        tracer
            .wait_attached(server.pid(), ATTACH_TIMEOUT)
            .expect("attached to a process running before");
    }
    let after: Vec<HttpServer> = (0..2).map(|_| serve(&exe, &toolchain)).collect();
    for server in &after {
        tracer
            .wait_attached(server.pid(), ATTACH_TIMEOUT)
            .expect("attached to a process started after");
    }
    for server in before.iter().chain(&after) {
        hello(server);
    }
    // One ends: the others stay traced.
    let gone = before.remove(0);
    drop(gone);
    for server in before.iter().chain(&after) {
        hello(server);
    }
    // A deploy: a rebuilt binary (another Go release, other offsets) renamed over the
    // path, and a process started from it.
    let newer = install(go::NEWEST, &exe);
    let replaced = serve(&exe, &newer);
    tracer
        .wait_attached(replaced.pid(), ATTACH_TIMEOUT)
        .expect("attached to a process of the replaced file");
    hello(&replaced);
    let output = stop(tracer);
    let spans = output.spans().expect("JSON spans");
    let live: Vec<&HttpServer> = before.iter().chain(&after).collect();
    let mut expected = sorted(&live);
    expected.extend(sorted(&live));
    expected.push(u64::from(replaced.pid()));
    let mut expected_first = expected.clone();
    expected_first.sort_unstable();
    let mut got = pids(&spans);
    // The process that ended served one request.
    let ended: Vec<u64> = got
        .iter()
        .copied()
        .filter(|pid| !expected_first.contains(pid))
        .collect();
    assert_eq!(ended.len(), 1, "one span of the ended process: {spans:?}");
    got.retain(|pid| expected_first.contains(pid));
    assert_eq!(got, expected_first, "spans by pid: {spans:?}");
    let of_replaced: Vec<&Span> = spans
        .iter()
        .filter(|s| pid_of(s) == Some(u64::from(replaced.pid())))
        .collect();
    assert_eq!(
        of_replaced[0]
            .resource("process.runtime.version")
            .and_then(|v| v.as_str()),
        Some(newer.runtime_version()),
        "the replaced file is read afresh"
    );
    assert_eq!(
        of_replaced[0].attr_str("url.path"),
        Some("/hello"),
        "{}",
        of_replaced[0]
    );
    assert_eq!(
        of_replaced[0].attr_u64("http.response.status_code"),
        Some(200)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether transparent huge pages are on for process `pid` (`THP_enabled` in its status).
fn huge_pages(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(|value| value.trim().to_owned())
        .expect("a THP_enabled line")
}

/// A loopback port nothing listens on (just released by this test).
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

#[test]
fn a_command_is_traced_from_its_first_request_and_its_exit_status_is_the_tracers() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (_, exe) = build_http_server(go::DEFAULT).expect("build the fixture");
    let addr = free_port();
    let addr_arg = addr.to_string();
    let exe_arg = exe.to_str().expect("a UTF-8 path");
    let tracer = Tracer::spawn(["--format", "json", "--", exe_arg, "-addr", &addr_arg])
        .expect("start the tracer");
    // The first request the program answers at all.
    let response = tracer_tests::poll_until(ATTACH_TIMEOUT, || http::get(addr, "/hello").ok())
        .expect("the command answers");
    assert_eq!(response.status, 200);
    // The tracer turns transparent huge pages off for itself; the command keeps the
    // setting it would have had (this test's).
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tracer.pid()))
        .expect("the tracer's children");
    let command: u32 = children
        .split_whitespace()
        .next()
        .and_then(|pid| pid.parse().ok())
        .expect("the command is the tracer's child");
    assert_eq!(huge_pages(tracer.pid()), "0", "the tracer's own");
    assert_eq!(huge_pages(command), huge_pages(std::process::id()));
    // SIGTERM goes to the command, which dies of it: the tracer exits 128 + 15.
    send_signal(tracer.pid(), libc::SIGTERM).expect("signal the tracer");
    let output = tracer
        .wait_exit(Duration::from_secs(20))
        .expect("the tracer exits with the command");
    assert_eq!(
        output.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        output.stderr
    );
    // The command's own output shares the tracer's stdout.
    let json: String = output
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| format!("{line}\n"))
        .collect();
    let spans = Span::parse_lines(&json).expect("JSON spans");
    assert_eq!(spans.len(), 1, "one span, of the first request: {spans:?}");
    assert_eq!(spans[0].attr_str("url.path"), Some("/hello"));
    assert_eq!(
        spans[0]
            .resource("process.executable.path")
            .and_then(|v| v.as_str()),
        std::fs::canonicalize(&exe)
            .ok()
            .as_deref()
            .and_then(Path::to_str),
    );
}

#[test]
fn a_command_that_cannot_start_is_a_clear_error() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let output = tracer_tests::tracer::run(
        ["--", "/nonexistent/program", "-x"],
        Duration::from_secs(20),
    )
    .expect("the tracer runs");
    assert_eq!(output.code(), Some(1), "{}", output.stderr);
    let line = output.error_line().expect("an error line");
    assert!(line.contains("/nonexistent/program"), "{line}");
}

#[test]
fn all_with_a_filter_traces_exactly_the_included_processes() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let dir = scratch("all");
    for sub in ["included", "excluded"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create a directory");
    }
    let toolchain = install(go::DEFAULT, &dir.join("included/service"));
    install(go::DEFAULT, &dir.join("excluded/service"));
    // The same file by another path the filter leaves out.
    std::fs::hard_link(dir.join("included/service"), dir.join("excluded/link"))
        .expect("a hard link");
    let included = serve(&dir.join("included/service"), &toolchain);
    let excluded = serve(&dir.join("excluded/service"), &toolchain);
    let linked = serve(&dir.join("excluded/link"), &toolchain);
    // A process that is not Go at all.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("start sleep");
    let include = format!("{}/included/*", dir.display());
    let tracer = Tracer::spawn([
        "--all",
        "--include",
        include.as_str(),
        "--exclude",
        "**/link",
        "--format",
        "json",
    ])
    .expect("start the tracer");
    tracer
        .wait_attached(included.pid(), ATTACH_TIMEOUT)
        .expect("attached to the included process");
    let later = serve(&dir.join("included/service"), &toolchain);
    tracer
        .wait_attached(later.pid(), ATTACH_TIMEOUT)
        .expect("attached to an included process started later");
    for server in [&included, &excluded, &linked, &later] {
        hello(server);
    }
    let output = stop(tracer);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let spans = output.spans().expect("JSON spans");
    assert_eq!(
        pids(&spans),
        sorted(&[&included, &later]),
        "spans of the included processes only: {spans:?}"
    );
    for pid in [excluded.pid(), linked.pid(), sleeper.id()] {
        assert!(
            !output
                .stderr
                .lines()
                .any(|l| tracer_tests::tracer::is_attached_line(l, pid)),
            "pid {pid} is not attached:\n{}",
            output.stderr
        );
    }
    let summary = output.summary().expect("a summary line");
    assert_eq!(
        summary.get("excluded_by_filter"),
        Some(1),
        "the hard link's span is left out: {}",
        summary.line
    );
    let _ = std::fs::remove_dir_all(dir);
}

//! End-to-end: Go HTTP servers that no one here wrote, as users run them. Debian's
//! `caddy` and `prometheus-node-exporter` (stripped, built by Debian's Go toolchain,
//! linked by the C linker) are unpacked by the README's set-up command (never installed),
//! started on loopback ports, traced, and sent requests whose server spans must come out
//! with their method, path, status and port. These tests need root.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::process::Fixture;
use tracer_tests::span::Span;
use tracer_tests::tracer::Tracer;

/// How long a program may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

/// The unpacked executable of Debian `package` (`cargo xtask setup` puts it there).
fn debian_binary(package: &str, binary: &str) -> PathBuf {
    let path = go::tools_dir()
        .expect("tools directory")
        .join("debian")
        .join(package)
        .join("usr/bin")
        .join(binary);
    assert!(
        path.is_file(),
        "{} is missing: run the README's set-up command (`cargo xtask setup`)",
        path.display()
    );
    path
}

/// A loopback port nothing listens on (now).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: SocketAddr, program: &Fixture) {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} does not listen on {addr}: {}",
            program.exe().display(),
            program.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Traces `program` (listening on `addr`) while `requests` (path, expected status) are
/// sent, and checks one server span per request.
fn trace_requests(program: &Fixture, addr: SocketAddr, service: &str, requests: &[(&str, u64)]) {
    wait_listening(addr, program);
    let pid = program.pid().to_string();
    let tracer =
        Tracer::spawn(["--pid", pid.as_str(), "--format", "json"]).expect("start the tracer");
    tracer
        .wait_attached(program.pid(), tracer_tests::tracer::ATTACH_TIMEOUT)
        .expect("the tracer attaches");
    for (path, status) in requests {
        let response = http::get(addr, path).expect("GET");
        assert_eq!(u64::from(response.status), *status, "GET {path}");
    }
    let output = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    let spans: Vec<Span> = output.spans().expect("JSON spans");
    assert_eq!(
        spans.len(),
        requests.len(),
        "one span per request:\n{output}"
    );
    for ((path, status), span) in requests.iter().zip(&spans) {
        assert_eq!(span.kind(), Some("server"), "{span}");
        assert_eq!(span.field("parent_span_id"), Some(&serde_json::Value::Null));
        assert_eq!(
            span.attr("http.request.method"),
            Some(&"GET".into()),
            "{span}"
        );
        assert_eq!(span.attr("url.path"), Some(&(*path).into()), "{span}");
        assert_eq!(
            span.attr("http.response.status_code"),
            Some(&(*status).into()),
            "{span}"
        );
        assert_eq!(
            span.attr("server.port"),
            Some(&u64::from(addr.port()).into()),
            "{span}"
        );
        assert_eq!(
            span.attr("user_agent.original"),
            Some(&http::USER_AGENT.into()),
            "{span}"
        );
        assert_eq!(span.resource("service.name"), Some(&service.into()));
        let runtime = span
            .resource("process.runtime.version")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        assert!(runtime.starts_with("go1."), "{span}");
    }
}

#[test]
fn caddy_file_server() {
    tracer_tests::require_root();
    let exe = debian_binary("caddy", "caddy");
    let home = tempdir("caddy");
    std::fs::write(home.join("index.html"), "hello\n").expect("write index.html");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut command = Command::new(&exe);
    command
        .args(["file-server", "--listen", &addr.to_string(), "--root"])
        .arg(&home)
        // Caddy keeps state under these; none of it may touch the machine's.
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    let caddy = Fixture::spawn_command(command, &exe).expect("start caddy");
    trace_requests(
        &caddy,
        addr,
        "caddy",
        &[("/index.html", 200), ("/no-such-file", 404), ("/", 200)],
    );
}

#[test]
fn prometheus_node_exporter() {
    tracer_tests::require_root();
    let exe = debian_binary("prometheus-node-exporter", "prometheus-node-exporter");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut command = Command::new(&exe);
    command.arg(format!("--web.listen-address={addr}"));
    let exporter = Fixture::spawn_command(command, &exe).expect("start the node exporter");
    trace_requests(
        &exporter,
        addr,
        "prometheus-node-exporter",
        &[("/metrics", 200), ("/", 200)],
    );
}

/// A fresh directory for one test under the workspace's `target/`.
fn tempdir(name: &str) -> PathBuf {
    let dir = tracer_tests::workspace_root()
        .join("target")
        .join("debian-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

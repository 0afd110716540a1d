//! End-to-end: HTTP/2 server spans. The fixture serves HTTPS with `-tls` (a self-signed
//! certificate), where Go clients get HTTP/2 from net/http's bundled server (h2_bundle.go
//! up to Go 1.26, net/http/internal/http2 from 1.27), or HTTP/2 without TLS with `-h2c`
//! (Go 1.24+); the fixture's `-fetch` mode is that client. Each request must give the same server span an HTTP/1.1 request gives, with
//! `network.protocol.version` "2" and `url.scheme` "https": the status the handler wrote
//! (or 200), a panicking handler's error, nothing left in flight. Checked on both layouts,
//! with and without symbols and DWARF. These tests need root.

use std::process::Command;

use tracer_tests::go::{self, Build, Toolchain};
use tracer_tests::process::{Fixture, HTTP_SERVER_FIXTURE, HttpServer};
use tracer_tests::span::Span;
use tracer_tests::tracer::{ATTACH_TIMEOUT, RUN_TIMEOUT, Tracer};

/// Requests sent (path, status the client sees, status on the span: none for a panic).
const REQUESTS: &[(&str, u64, Option<u64>)] = &[
    ("/hello", 200, Some(200)),
    ("/status/404", 404, Some(404)),
    ("/status/503", 503, Some(503)),
    ("/panic", 0, None),
];

/// How HTTP/2 is spoken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Over TLS (ALPN `h2`).
    Tls,
    /// Without TLS, by prior knowledge (Go 1.24+).
    H2c,
}

impl Mode {
    /// The fixture's flag, and the URL scheme.
    fn flag_and_scheme(self) -> (&'static str, &'static str) {
        match self {
            Mode::Tls => ("-tls", "https"),
            Mode::H2c => ("-h2c", "http"),
        }
    }
}

fn check(version: &str, stripped: bool, mode: Mode) {
    let (flag, scheme) = mode.flag_and_scheme();
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let toolchain = Toolchain::find(version).expect("Go toolchain");
    let build = Build {
        stripped,
        ..Build::DEFAULT
    };
    let exe = toolchain
        .build(HTTP_SERVER_FIXTURE, build)
        .expect("build the fixture");
    let server = Fixture::spawn(&exe, &[flag])
        .and_then(|fixture| HttpServer::from_fixture(fixture, toolchain.clone()))
        .expect("start the HTTPS server");
    let pid = server.pid().to_string();
    let tracer =
        Tracer::spawn(["--pid", pid.as_str(), "--format", "json"]).expect("start the tracer");
    tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("the tracer attaches");
    let attached = tracer.stderr();
    assert!(
        attached.contains("handlerDone"),
        "the HTTP/2 end probe is attached: {attached}"
    );
    // The client: the fixture's -fetch mode (HTTP/2, any certificate), one connection.
    let urls: Vec<String> = REQUESTS
        .iter()
        .map(|(path, _, _)| format!("{scheme}://{}{path}", server.addr()))
        .collect();
    let mut client = Command::new(&exe);
    if mode == Mode::H2c {
        client.arg(flag);
    }
    let output = client
        .args(["-fetch", &urls.join(",")])
        .output()
        .expect("run the client");
    let printed = String::from_utf8_lossy(&output.stdout);
    let expected: Vec<String> = REQUESTS
        .iter()
        .filter(|(_, status, _)| *status != 0)
        .map(|(_, status, _)| format!("{status} HTTP/2.0"))
        .collect();
    // The panic resets the stream: the client stops there with an error.
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        expected,
        "client output"
    );
    let output = tracer
        .signal_and_wait(libc::SIGINT, RUN_TIMEOUT)
        .expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    assert_eq!(
        summary.get("in_flight_at_exit"),
        Some(0),
        "{}",
        summary.line
    );
    let spans: Vec<Span> = output.spans().expect("JSON spans");
    assert_eq!(
        spans.len(),
        REQUESTS.len(),
        "one span per request:\n{output}"
    );
    for (path, _, status) in REQUESTS {
        let span = spans
            .iter()
            .find(|s| s.attr_str("url.path") == Some(path))
            .unwrap_or_else(|| panic!("a span for {path}:\n{output}"));
        assert_eq!(span.kind(), Some("server"), "{span}");
        assert_eq!(
            span.attr_str("network.protocol.version"),
            Some("2"),
            "{span}"
        );
        assert_eq!(span.attr_str("url.scheme"), Some(scheme), "{span}");
        assert_eq!(span.attr_str("http.request.method"), Some("GET"), "{span}");
        assert_eq!(
            span.attr_str("user_agent.original"),
            Some("Go-http-client/2.0"),
            "{span}"
        );
        assert_eq!(
            span.attr_u64("server.port"),
            Some(u64::from(server.addr().port())),
            "{span}"
        );
        assert_eq!(
            span.attr_u64("http.response.status_code"),
            *status,
            "{span}"
        );
        let error = status.is_none_or(|code| code >= 500);
        assert_eq!(
            span.status_code(),
            Some(if error { "error" } else { "unset" }),
            "{span}"
        );
        if status.is_none() {
            assert_eq!(span.attr_str("error.type"), Some("panic"), "{span}");
        }
        if toolchain.has_request_pattern() {
            assert!(span.attr_str("http.route").is_some(), "{span}");
        }
    }
}

#[test]
fn http2_on_the_oldest_go() {
    check(go::OLDEST, false, Mode::Tls);
}

#[test]
fn http2_on_the_oldest_go_stripped() {
    check(go::OLDEST, true, Mode::Tls);
}

#[test]
fn http2_on_go_1_26_the_last_bundled_server() {
    check("1.26.6", true, Mode::Tls);
}

#[test]
fn http2_on_the_newest_go_internal_package() {
    check(go::NEWEST, false, Mode::Tls);
}

#[test]
fn http2_on_the_newest_go_stripped() {
    check(go::NEWEST, true, Mode::Tls);
}

#[test]
fn h2c_on_go_1_24() {
    check(go::DEFAULT, false, Mode::H2c);
}

#[test]
fn h2c_on_the_newest_go_stripped() {
    check(go::NEWEST, true, Mode::H2c);
}

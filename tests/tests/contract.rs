//! End-to-end: parts of CONTRACT.md beyond the basic server span — `--format text`,
//! SIGTERM, how the service name is chosen, sampling, and what the tracer reports for
//! requests at the edges (long paths, unknown methods, HEAD, HTTP/1.0, the User-Agent
//! header, invalid UTF-8). These tests need root.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::MutexGuard;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracer_tests::go::{self, Toolchain};
use tracer_tests::http::{self, CONNECT_TIMEOUT, IO_TIMEOUT, Response};
use tracer_tests::process::{Fixture, HTTP_SERVER_FIXTURE, HttpServer, OTEL_VARIABLES};
use tracer_tests::span::{self, Span};
use tracer_tests::tracer::{
    self, ATTACH_TIMEOUT, RUN_TIMEOUT, STOP_TIMEOUT, Summary, Tracer, TracerOutput,
};

/// A fixture (Go [`go::DEFAULT`]) and the tracer attached to it. Holds
/// [`tracer_tests::serial`] for the whole test.
struct Session {
    server: HttpServer,
    tracer: Option<Tracer>,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// Starts the fixture, then `tracer --pid PID ARGS` with `tracer_env` added to its
    /// environment (which has none of the [`OTEL_VARIABLES`] otherwise), and waits until
    /// it attached.
    fn start(args: &[&str], tracer_env: &[(&str, &str)]) -> Self {
        Self::start_with(&[], args, tracer_env)
    }

    /// Like [`Self::start`], the fixture started with `fixture_env` in its environment.
    fn start_with(
        fixture_env: &[(&str, &str)],
        args: &[&str],
        tracer_env: &[(&str, &str)],
    ) -> Self {
        let serial = tracer_tests::serial();
        tracer_tests::require_root();
        let server = start_server(fixture_env);
        let pid = server.pid().to_string();
        let mut command = tracer::command().expect("the tracer binary");
        command.args(["--pid", pid.as_str()]).args(args);
        for (name, value) in tracer_env {
            command.env(name, value);
        }
        let tracer = Tracer::spawn_command(command).expect("start the tracer");
        tracer
            .wait_attached(server.pid(), ATTACH_TIMEOUT)
            .expect("the tracer attaches");
        Self {
            server,
            tracer: Some(tracer),
            _serial: serial,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Stops the tracer with SIGINT; checks that it exited 0.
    fn stop(&mut self) -> TracerOutput {
        self.signal(libc::SIGINT)
    }

    /// Stops the tracer with `signal`; checks that it exited 0.
    fn signal(&mut self, signal: libc::c_int) -> TracerOutput {
        let tracer = self.tracer.take().expect("the tracer is stopped once");
        let output = tracer
            .signal_and_wait(signal, STOP_TIMEOUT)
            .expect("stop the tracer");
        assert_eq!(output.code(), Some(0), "the tracer's exit code\n{output}");
        output
    }
}

/// Starts the `net_http_server` fixture built with Go [`go::DEFAULT`], with `env` added
/// to its environment (through `env(1)`, which execs the fixture in the same process).
fn start_server(env: &[(&str, &str)]) -> HttpServer {
    if env.is_empty() {
        return HttpServer::start(go::DEFAULT).expect("start the net_http_server fixture");
    }
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let exe = toolchain
        .build_fixture(HTTP_SERVER_FIXTURE)
        .expect("build the fixture");
    let mut command = Command::new("env");
    command.args(env.iter().map(|(name, value)| format!("{name}={value}")));
    command.arg(&exe);
    let server = Fixture::spawn_command(command, &exe)
        .and_then(|fixture| HttpServer::from_fixture(fixture, toolchain))
        .expect("start the net_http_server fixture");
    // A check of this file, not of the tracer: the variables reached the fixture.
    let environ = fs::read(format!("/proc/{}/environ", server.pid())).expect("read environ");
    for (name, value) in env {
        let wanted = format!("{name}={value}");
        assert!(
            environ
                .split(|&b| b == 0)
                .any(|entry| entry == wanted.as_bytes()),
            "the fixture's environment lacks {wanted}"
        );
    }
    server
}

/// The spans on stdout; none may be anything but JSON.
fn spans(output: &TracerOutput) -> Vec<Span> {
    output.spans().expect("JSON spans on stdout")
}

/// The summary line; there must be one.
fn summary(output: &TracerOutput) -> Summary {
    output
        .summary()
        .unwrap_or_else(|| panic!("no summary line (with `spans_exported=`) on stderr\n{output}"))
}

/// The one server span whose `client.port` is `port` (each request here has its own
/// connection).
fn span_of_port<'a>(spans: &'a [Span], port: u16, output: &TracerOutput) -> &'a Span {
    let servers = span::server_spans(spans);
    let found: Vec<&Span> = servers
        .iter()
        .copied()
        .filter(|span| span.attr_u64("client.port") == Some(u64::from(port)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one server span with client.port {port} expected; all server spans:\n{}\
         --- tracer stderr ---\n{}",
        span::dump(&servers),
        output.stderr
    );
    found[0]
}

/// Checks that there is exactly one server span per response, and no other span.
fn check_one_span_each<'a>(
    spans: &'a [Span],
    responses: &[Response],
    output: &TracerOutput,
) -> Vec<&'a Span> {
    assert_eq!(
        spans.len(),
        responses.len(),
        "one span per request expected\n{output}"
    );
    responses
        .iter()
        .map(|response| span_of_port(spans, response.local_addr.port(), output))
        .collect()
}

/// `GET target`, expecting `status`.
fn get(addr: SocketAddr, target: &str, status: u16) -> Response {
    let response = http::get(addr, target).unwrap_or_else(|e| panic!("GET {target}: {e}"));
    assert_eq!(
        response.status, status,
        "the fixture's answer to GET {target}"
    );
    response
}

/// A few requests with different routes and status codes.
fn send_some(addr: SocketAddr) -> Vec<Response> {
    vec![
        get(addr, "/hello", 200),
        get(addr, "/users/42", 200),
        get(addr, "/status/503", 503),
        get(addr, "/no/such/page", 404),
    ]
}

/// What came back on a raw connection.
struct RawResponse {
    status: u16,
    /// The client's port: the span's `client.port`.
    local_port: u16,
    bytes: Vec<u8>,
}

/// Writes `request` as is on a new connection and reads until the server closes it
/// (so the request must ask for that: `Connection: close`, or HTTP/1.0).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let local_port = stream.local_addr().expect("local address").port();
    stream.write_all(request).expect("write the request");
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        // A reset after a complete response is fine; no response at all is not.
        assert!(
            e.kind() == ErrorKind::ConnectionReset && !bytes.is_empty(),
            "read the response to {:?}: {e}",
            String::from_utf8_lossy(request)
        );
    }
    let head = String::from_utf8_lossy(&bytes);
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in the response: {head:?}"));
    RawResponse {
        status,
        local_port,
        bytes,
    }
}

/// `GET target HTTP/1.1` with only `Host`, `Connection: close` and `extra` header
/// lines (each without CRLF): no `User-Agent` unless `extra` has one.
fn raw_get(addr: SocketAddr, target: &str, extra: &[String]) -> RawResponse {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    raw_exchange(addr, request.as_bytes())
}

/// The file name of the fixture: the default `service.name`.
fn fixture_name(server: &HttpServer) -> String {
    fs::canonicalize(server.fixture().exe())
        .expect("canonical fixture path")
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn text_format_prints_one_readable_line_per_request() {
    let mut session = Session::start(&["--format", "text"], &[]);
    let service = fixture_name(&session.server);
    let pid = session.pid();
    let sent = send_some(session.addr());
    let output = session.stop();

    // path, status, span name (Go 1.24 reports the fixture's patterns as routes)
    let expected = [
        ("/hello", 200, "GET /hello"),
        ("/users/42", 200, "GET /users/{id}"),
        ("/status/503", 503, "GET /status/{code}"),
        ("/no/such/page", 404, "GET"),
    ];
    assert_eq!(sent.len(), expected.len());
    let lines: Vec<&str> = output
        .stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one stdout line per request expected\n{output}"
    );
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "--format text printed JSON: {line}\n{output}"
        );
    }
    let service_word = format!("service={service}");
    let pid_word = format!("pid={pid}");
    for (path, status, name) in expected {
        let found: Vec<&&str> = lines
            .iter()
            .filter(|line| line.split_whitespace().any(|word| word == path))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one line with the path {path} expected\n{output}"
        );
        let line = found[0];
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            line.contains(&format!(" {name} ")),
            "the line of {path} lacks the span name {name:?}: {line}"
        );
        assert!(
            words.contains(&status.to_string().as_str()),
            "the line of {path} lacks the status {status}: {line}"
        );
        assert!(
            words.contains(&service_word.as_str()),
            "the line of {path} lacks {service_word}: {line}"
        );
        assert!(
            words.contains(&pid_word.as_str()),
            "the line of {path} lacks {pid_word}: {line}"
        );
    }
    assert!(
        !output.stdout.contains("spans_exported="),
        "the summary belongs on stderr\n{output}"
    );
    let summary = summary(&output);
    assert_eq!(
        summary.get("spans_exported"),
        Some(expected.len() as u64),
        "{}",
        summary.line
    );
}

#[test]
fn sigterm_flushes_every_span_and_prints_the_summary() {
    let mut session = Session::start(&["--format", "json"], &[]);
    let sent = send_some(session.addr());
    let output = session.signal(libc::SIGTERM);
    let spans = spans(&output);
    let matched = check_one_span_each(&spans, &sent, &output);
    for (span, response) in matched.iter().zip(&sent) {
        assert_eq!(
            span.attr_u64("http.response.status_code"),
            Some(u64::from(response.status)),
            "span: {span}"
        );
    }
    let summary = summary(&output);
    assert_eq!(
        summary.get("spans_exported"),
        Some(sent.len() as u64),
        "{}",
        summary.line
    );
}

/// Niceness (field 19 of `/proc/PID/task/TID/stat`) of every thread of `pid`.
fn thread_niceness(pid: u32) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    tasks
        .map(|task| {
            let stat = std::fs::read_to_string(task.expect("a thread").path().join("stat"))
                .expect("read a thread's stat");
            // Fields after the command name, which ends at the last ')'.
            let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
            rest.split(' ')
                .nth(16)
                .expect("nice field")
                .parse()
                .expect("a number")
        })
        .collect()
}

#[test]
fn the_tracer_runs_below_the_default_priority_and_nice_sets_it() {
    for (args, expected) in [(&[][..], 10), (&["--nice", "3"][..], 3)] {
        let mut session = Session::start(args, &[]);
        let sent = send_some(session.addr());
        let tracer_pid = session.tracer.as_ref().expect("running").pid();
        let niceness = thread_niceness(tracer_pid);
        // The reader and the exporter at least.
        assert!(niceness.len() >= 2, "threads: {niceness:?}");
        assert!(
            niceness.iter().all(|&n| n == expected),
            "niceness of the tracer's threads with {args:?}: {niceness:?}"
        );
        let output = session.stop();
        check_one_span_each(&spans(&output), &sent, &output);
    }
}

/// The `service.name` of the span of one `GET /hello`.
fn service_name(
    fixture_env: &[(&str, &str)],
    args: &[&str],
    tracer_env: &[(&str, &str)],
) -> String {
    let mut all_args = vec!["--format", "json"];
    all_args.extend_from_slice(args);
    let mut session = Session::start_with(fixture_env, &all_args, tracer_env);
    let response = get(session.addr(), "/hello", 200);
    let output = session.stop();
    let spans = spans(&output);
    let span = span_of_port(&spans, response.local_addr.port(), &output);
    span.resource_str("service.name")
        .unwrap_or_else(|| panic!("no resource service.name (a string)\n  span: {span}"))
        .to_owned()
}

#[test]
fn service_name_flag() {
    assert_eq!(service_name(&[], &["--service-name", "shop"], &[]), "shop");
}

#[test]
fn service_name_from_the_target_environment() {
    assert_eq!(
        service_name(&[("OTEL_SERVICE_NAME", "from-target")], &[], &[]),
        "from-target"
    );
}

#[test]
fn service_name_from_the_tracer_environment_beats_the_target_one() {
    assert_eq!(
        service_name(
            &[("OTEL_SERVICE_NAME", "from-target")],
            &[],
            &[("OTEL_SERVICE_NAME", "from-tracer")]
        ),
        "from-tracer"
    );
}

#[test]
fn service_name_flag_beats_the_tracer_environment() {
    assert_eq!(
        service_name(
            &[("OTEL_SERVICE_NAME", "from-target")],
            &["--service-name", "flag-wins"],
            &[("OTEL_SERVICE_NAME", "from-tracer")]
        ),
        "flag-wins"
    );
}

/// Sends a few requests to a fixture traced with `args` and `tracer_env`, and checks
/// that every span was sampled out: none on stdout, all counted in the summary.
fn check_all_sampled_out(args: &[&str], tracer_env: &[(&str, &str)]) {
    let mut all_args = vec!["--format", "json"];
    all_args.extend_from_slice(args);
    let mut session = Session::start(&all_args, tracer_env);
    let sent = send_some(session.addr());
    let output = session.stop();
    assert!(
        output.stdout.trim().is_empty(),
        "no span may be printed when nothing is sampled\n{output}"
    );
    let summary = summary(&output);
    assert_eq!(
        summary.get("sampled_out"),
        Some(sent.len() as u64),
        "{}",
        summary.line
    );
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
}

#[test]
fn sample_ratio_zero_keeps_no_span() {
    check_all_sampled_out(&["--sample-ratio", "0"], &[]);
}

#[test]
fn sampler_environment_with_ratio_zero_keeps_no_span() {
    check_all_sampled_out(
        &[],
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
}

#[test]
fn sample_ratio_above_one_is_a_usage_error() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    // A real target, so that the ratio is the only thing wrong.
    let server = start_server(&[]);
    let pid = server.pid().to_string();
    let output = tracer::run(["--pid", pid.as_str(), "--sample-ratio", "2"], RUN_TIMEOUT)
        .expect("run the tracer");
    assert_eq!(
        output.code(),
        Some(2),
        "exit code of a usage error\n{output}"
    );
    assert!(output.stdout.is_empty(), "nothing on stdout\n{output}");
}

#[test]
fn a_long_path_is_truncated_and_marked() {
    const COPIED: usize = 256;
    let mut session = Session::start(&["--format", "json"], &[]);
    let path = format!("/{}", "a".repeat(400));
    let response = get(session.addr(), &path, 404);
    let output = session.stop();
    let spans = spans(&output);
    let span = span_of_port(&spans, response.local_addr.port(), &output);
    assert_eq!(
        span.attr_str("url.path"),
        Some(&path[..COPIED]),
        "url.path: the first {COPIED} bytes\n  span: {span}"
    );
    assert_eq!(
        span.attr_str("tracer.truncated"),
        Some("url.path"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(404),
        "span: {span}"
    );
}

#[test]
fn an_unknown_method_is_other_with_the_original() {
    let mut session = Session::start(&["--format", "json"], &[]);
    let response = http::request(session.addr(), "BREW", "/hello", &[], &[]).expect("BREW /hello");
    assert!(
        matches!(response.status, 404 | 405),
        "the fixture's answer to BREW /hello: {}",
        response.status
    );
    let output = session.stop();
    let spans = spans(&output);
    let span = span_of_port(&spans, response.local_addr.port(), &output);
    assert_eq!(
        span.attr_str("http.request.method"),
        Some("_OTHER"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_str("http.request.method_original"),
        Some("BREW"),
        "span: {span}"
    );
    assert_eq!(span.name(), Some("HTTP"), "span: {span}");
    assert_eq!(span.attr_str("url.path"), Some("/hello"), "span: {span}");
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(u64::from(response.status)),
        "span: {span}"
    );
}

#[test]
fn head_and_http_1_0_requests() {
    let mut session = Session::start(&["--format", "json"], &[]);
    let addr = session.addr();
    let head = http::request(addr, "HEAD", "/hello", &[], &[]).expect("HEAD /hello");
    assert_eq!(head.status, 200, "the fixture's answer to HEAD /hello");
    let old = raw_exchange(
        addr,
        format!("GET /hello HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        old.status, 200,
        "the fixture's answer to GET /hello HTTP/1.0"
    );
    assert!(
        old.bytes.ends_with(b"hello"),
        "the fixture's answer to GET /hello HTTP/1.0: {:?}",
        String::from_utf8_lossy(&old.bytes)
    );
    let output = session.stop();
    let spans = spans(&output);
    assert_eq!(spans.len(), 2, "two requests, two spans\n{output}");

    let span = span_of_port(&spans, head.local_addr.port(), &output);
    assert_eq!(
        span.attr_str("http.request.method"),
        Some("HEAD"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(200),
        "span: {span}"
    );
    assert_eq!(span.attr_str("url.path"), Some("/hello"), "span: {span}");

    let span = span_of_port(&spans, old.local_port, &output);
    assert_eq!(
        span.attr_str("network.protocol.version"),
        Some("1.0"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_str("http.request.method"),
        Some("GET"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(200),
        "span: {span}"
    );
}

/// `GET /users/N` requests without and with a `User-Agent` header, each on a fresh
/// connection with `Connection: close` sent first (as many clients do), and the
/// `user_agent.original` each should get.
#[test]
fn user_agent_is_reported_only_when_sent_even_among_many_headers() {
    let mut many_headers: Vec<String> = (1..=30)
        .map(|n| format!("X-Extra-{n}: value-{n}"))
        .collect();
    many_headers.push("User-Agent: many/1".to_owned());
    let cases: [(&str, Vec<String>, Option<&str>); 3] = [
        ("/users/1", Vec::new(), None),
        (
            "/users/2",
            vec!["User-Agent: probe/1".to_owned()],
            Some("probe/1"),
        ),
        ("/users/3", many_headers, Some("many/1")),
    ];

    let mut session = Session::start(&["--format", "json"], &[]);
    let addr = session.addr();
    let sent: Vec<RawResponse> = cases
        .iter()
        .map(|(path, headers, _)| {
            let response = raw_get(addr, path, headers);
            assert_eq!(response.status, 200, "the fixture's answer to GET {path}");
            response
        })
        .collect();
    let output = session.stop();
    let spans = spans(&output);
    assert_eq!(spans.len(), cases.len(), "one span per request\n{output}");

    // All cases first, then one assertion: a failure shows every case.
    let mut expected = Vec::new();
    let mut actual = Vec::new();
    for ((path, headers, user_agent), response) in cases.iter().zip(&sent) {
        let span = span_of_port(&spans, response.local_port, &output);
        assert_eq!(span.attr_str("url.path"), Some(*path), "span: {span}");
        let what = format!("GET {path} with {} header fields", headers.len() + 2);
        expected.push((what.clone(), user_agent.map(Value::from)));
        actual.push((what, span.attr("user_agent.original").cloned()));
    }
    assert_eq!(
        actual, expected,
        "user_agent.original of each request (None: no attribute)\n{output}"
    );
}

/// A file under the system's temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "tracer-tests-{label}-{}-{nanos}",
            std::process::id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn invalid_utf8_in_the_path_still_gives_a_valid_json_line() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = start_server(&[]);
    let pid = server.pid().to_string();
    // The support code reads stdout as lossy UTF-8, which would hide raw invalid bytes:
    // the tracer writes its stdout into a file instead (`sh` execs it in its own
    // process, so the signals reach the tracer), and the test reads the bytes.
    let stdout = TempFile::new("invalid-utf8");
    let mut command = Command::new("sh");
    command
        .args(["-c", "out=$1; shift; exec \"$@\" >\"$out\"", "sh"])
        .arg(stdout.path())
        .arg(tracer::tracer_bin().expect("the tracer binary"))
        .args(["--pid", pid.as_str(), "--format", "json"])
        .stdin(Stdio::null());
    for variable in OTEL_VARIABLES {
        command.env_remove(variable);
    }
    let tracer = Tracer::spawn_command(command).expect("start the tracer");
    tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("the tracer attaches");

    let response = http::get(server.addr(), "/bad%FFpath").expect("GET /bad%FFpath");
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "the tracer's exit code\n{output}");

    let bytes = fs::read(stdout.path()).expect("read the tracer's stdout");
    let text = std::str::from_utf8(&bytes).unwrap_or_else(|e| {
        panic!(
            "the tracer's stdout is not UTF-8 ({e}): {:?}\n{output}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let spans = Span::parse_lines(text).expect("JSON spans on stdout");
    let span = span_of_port(&spans, response.local_addr.port(), &output);
    let path = span
        .attr_str("url.path")
        .unwrap_or_else(|| panic!("no url.path (a string)\n  span: {span}"));
    assert!(
        path.contains('\u{FFFD}') && path.starts_with("/bad") && path.ends_with("path"),
        "url.path should be /bad<U+FFFD>path, is {path:?}\n  span: {span}"
    );
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(u64::from(response.status)),
        "span: {span}"
    );
}

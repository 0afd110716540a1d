//! End-to-end: trace the `net_http_server` fixture with the real tracer and check its
//! server spans against CONTRACT.md ("Spans on stdout"): one span per request, with the
//! right attributes, resource, ids and times, whatever the method, body, status,
//! concurrency or Go version. These tests need root.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::sync::MutexGuard;
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracer_tests::http::{self, Connection, Response, USER_AGENT};
use tracer_tests::process::HttpServer;
use tracer_tests::span::{self, Span, is_valid_id};
use tracer_tests::tracer::{Tracer, TracerOutput};
use tracer_tests::{go, unix_nanos};

/// How far span times may stray outside the client's own readings of the clock (the
/// tracer converts kernel timestamps to wall-clock time).
const CLOCK_SLACK: Duration = Duration::from_millis(200);

/// How long the tracer may take to exit once its only target exited.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the tests send, and how the fixture answers it.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    /// Path and query, e.g. `/users/42?a=1`.
    target: String,
    /// Size of the request body (that many `x`).
    body_len: usize,
    status: u16,
    /// The response body.
    answer: String,
    /// The path of the fixture's pattern (Go 1.22+ routing): the expected `http.route`
    /// where net/http exposes it (Go 1.23+).
    route: Option<&'static str>,
}

fn case(
    method: &'static str,
    target: &str,
    body_len: usize,
    status: u16,
    answer: &str,
    route: Option<&'static str>,
) -> Case {
    Case {
        method,
        target: target.to_owned(),
        body_len,
        status,
        answer: answer.to_owned(),
        route,
    }
}

impl Case {
    /// The path as `net/http` decodes it into `URL.Path` (`%XX` escapes resolved).
    fn path(&self) -> String {
        let raw = self
            .target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
            .as_bytes();
        let mut path = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (raw[i], hex) {
                (b'%', Some(byte)) => {
                    path.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    path.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(path).expect("test paths decode to UTF-8")
    }

    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// Methods, paths, queries, bodies and status codes, each request on its own
/// connection.
#[rustfmt::skip]
fn mix() -> Vec<Case> {
    //   method    target                    body     status  answer                  route
    vec![
        case("GET",    "/hello",                 0,       200, "hello",                Some("/hello")),
        case("GET",    "/hello?lang=en&q=a%20b", 0,       200, "hello",                Some("/hello")),
        case("POST",   "/users",                 15,      201, "created 15",           Some("/users")),
        case("POST",   "/users?dry_run=1",       100_000, 201, "created 100000",       Some("/users")),
        case("PUT",    "/users/7",               20,      200, "updated 7 20",         Some("/users/{id}")),
        case("DELETE", "/users/8",               0,       204, "",                     Some("/users/{id}")),
        case("GET",    "/users/42?a=1&b=2",      0,       200, "user 42",              Some("/users/{id}")),
        // An escaped path: the tracer decodes it as net/http does (URL.Path).
        case("GET",    "/users/a%20b?x=%2F",     0,       200, "user a b",             Some("/users/{id}")),
        case("GET",    "/status/404",            0,       404, "status 404",           Some("/status/{code}")),
        case("GET",    "/status/500",            0,       500, "status 500",           Some("/status/{code}")),
        case("GET",    "/status/503?retry=1",    0,       503, "status 503",           Some("/status/{code}")),
        case("GET",    "/no/such/page",          0,       404, "404 page not found\n", None),
    ]
}

/// A request that was answered.
struct Sent {
    case: Case,
    response: Response,
}

/// Sends `case` on a new connection and checks the answer (tracing must not change it).
fn send(addr: SocketAddr, case: &Case) -> Sent {
    let body = vec![b'x'; case.body_len];
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("Content-Type", "text/plain")]
    };
    let response = http::request(addr, case.method, &case.target, headers, &body)
        .unwrap_or_else(|e| panic!("{} {}: {e}", case.method, case.target));
    check_answer(case, &response);
    Sent {
        case: case.clone(),
        response,
    }
}

fn check_answer(case: &Case, response: &Response) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (case.status, case.answer.as_str()),
        "the fixture's answer to {} {}",
        case.method,
        case.target
    );
}

/// What every span from the traced fixture must say about it.
struct Expect {
    addr: SocketAddr,
    pid: u32,
    exe: String,
    service_name: String,
    runtime_version: String,
    host_name: String,
    /// Whether net/http exposes the pattern (Go 1.23+), so `http.route` is expected.
    routes: bool,
    capture_query: bool,
}

/// A traced fixture. Holds [`tracer_tests::serial`] for the whole test.
struct Session {
    server: HttpServer,
    tracer: Option<Tracer>,
    expect: Expect,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// Starts the fixture built with Go `go_version` and attaches
    /// `tracer --pid PID --format json EXTRA_ARGS` to it.
    fn start(go_version: &str, extra_args: &[&str]) -> Self {
        let serial = tracer_tests::serial();
        tracer_tests::require_root();
        let server = HttpServer::start(go_version).expect("start the net_http_server fixture");
        let exe = fs::canonicalize(server.fixture().exe()).expect("canonical fixture path");
        let expect = Expect {
            addr: server.addr(),
            pid: server.pid(),
            service_name: exe
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned(),
            exe: exe.to_string_lossy().into_owned(),
            runtime_version: server.toolchain().runtime_version().to_owned(),
            host_name: tracer_tests::hostname().expect("host name"),
            routes: server.toolchain().has_request_pattern(),
            capture_query: extra_args.contains(&"--capture-query"),
        };
        let tracer = Tracer::attach(server.pid(), extra_args).expect("attach the tracer");
        Self {
            server,
            tracer: Some(tracer),
            expect,
            _serial: serial,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Sends the cases one after the other.
    fn send_all(&self, cases: &[Case]) -> Vec<Sent> {
        cases.iter().map(|case| send(self.addr(), case)).collect()
    }

    /// Stops the tracer with SIGINT, checks that it exited 0 and reads its spans.
    fn stop(&mut self) -> Traced {
        let tracer = self.tracer.take().expect("the tracer is stopped once");
        Traced::new(tracer.stop().expect("stop the tracer"))
    }
}

/// What a tracer printed until it exited 0.
struct Traced {
    output: TracerOutput,
    spans: Vec<Span>,
}

impl Traced {
    fn new(output: TracerOutput) -> Self {
        assert_eq!(output.code(), Some(0), "the tracer's exit code\n{output}");
        let spans = output.spans().expect("spans on stdout");
        Self { output, spans }
    }

    /// The one server span of each request, in the order of `sent`; there must be no
    /// other server span.
    fn spans_of(&self, sent: &[Sent]) -> Vec<&Span> {
        self.spans_of_except(sent, None)
    }

    /// Like [`Self::spans_of`], `except` aside.
    fn spans_of_except(&self, sent: &[Sent], except: Option<&Span>) -> Vec<&Span> {
        let servers: Vec<&Span> = span::server_spans(&self.spans)
            .into_iter()
            .filter(|span| !except.is_some_and(|except| std::ptr::eq(*span, except)))
            .collect();
        let all = || {
            format!(
                "all server spans:\n{}--- tracer stderr ---\n{}",
                span::dump(&servers),
                self.output.stderr
            )
        };
        assert_eq!(
            servers.len(),
            sent.len(),
            "one server span per request expected; {}",
            all()
        );
        sent.iter()
            .map(|sent| {
                // The client port tells connections apart, the path requests on one.
                let port = u64::from(sent.response.local_addr.port());
                let path = sent.case.path();
                let path = path.as_str();
                let found: Vec<&Span> = servers
                    .iter()
                    .copied()
                    .filter(|span| {
                        span.attr_u64("client.port") == Some(port)
                            && span.attr_str("url.path") == Some(path)
                    })
                    .collect();
                assert_eq!(
                    found.len(),
                    1,
                    "one span with client.port {port} and url.path {path:?} expected \
                     (for {} {}); {}",
                    sent.case.method,
                    sent.case.target,
                    all()
                );
                found[0]
            })
            .collect()
    }
}

/// Checks everything CONTRACT.md says about the server span of a request.
fn check_server_span(span: &Span, sent: &Sent, expect: &Expect) {
    let case = &sent.case;
    let request = format!("{} {}", case.method, case.target);
    macro_rules! check {
        ($what:expr, $actual:expr, $expected:expr $(,)?) => {
            assert_eq!(
                $actual, $expected,
                "{} of the span of {request}\n  span: {span}",
                $what
            )
        };
    }

    let route = case.route.filter(|_| expect.routes);
    let name = match route {
        Some(route) => format!("{} {route}", case.method),
        None => case.method.to_owned(),
    };
    check!("kind", span.kind(), Some("server"));
    check!("name", span.name(), Some(name.as_str()));
    let status_code = if case.status >= 500 { "error" } else { "unset" };
    check!("status_code", span.status_code(), Some(status_code));

    let trace_id = span.trace_id().unwrap_or_default();
    assert!(
        is_valid_id(trace_id, 32),
        "trace_id of the span of {request}\n  span: {span}"
    );
    let span_id = span.span_id().unwrap_or_default();
    assert!(
        is_valid_id(span_id, 16),
        "span_id of the span of {request}\n  span: {span}"
    );
    check!(
        "parent_span_id",
        span.field("parent_span_id"),
        Some(&Value::Null)
    );

    check!(
        "http.request.method",
        span.attr_str("http.request.method"),
        Some(case.method)
    );
    check!(
        "url.path",
        span.attr_str("url.path"),
        Some(case.path().as_str())
    );
    check!("url.scheme", span.attr_str("url.scheme"), Some("http"));
    let query = case
        .query()
        .filter(|_| expect.capture_query)
        .map(Value::from);
    check!("url.query", span.attr("url.query").cloned(), query);
    check!(
        "http.route",
        span.attr("http.route").cloned(),
        route.map(Value::from)
    );
    check!(
        "http.response.status_code",
        span.attr_u64("http.response.status_code"),
        Some(u64::from(case.status)),
    );
    let server_ip = expect.addr.ip().to_string();
    check!(
        "server.address",
        span.attr_str("server.address"),
        Some(server_ip.as_str())
    );
    check!(
        "server.port",
        span.attr_u64("server.port"),
        Some(u64::from(expect.addr.port()))
    );
    check!(
        "client.address",
        span.attr_str("client.address"),
        Some("127.0.0.1")
    );
    check!(
        "client.port",
        span.attr_u64("client.port"),
        Some(u64::from(sent.response.local_addr.port())),
    );
    check!(
        "network.protocol.version",
        span.attr_str("network.protocol.version"),
        Some("1.1")
    );

    check_resource(span, expect);
    check_times(
        span,
        &request,
        sent.response.sent_at,
        sent.response.received_at,
    );
    // Last: the least essential attribute.
    check!(
        "user_agent.original",
        span.attr_str("user_agent.original"),
        Some(USER_AGENT)
    );
}

/// Checks the resource attributes: the traced process.
fn check_resource(span: &Span, expect: &Expect) {
    let resource = |key: &str| span.resource(key).cloned();
    let checks = [
        ("service.name", Value::from(expect.service_name.as_str())),
        ("process.pid", Value::from(expect.pid)),
        ("process.executable.path", Value::from(expect.exe.as_str())),
        ("process.runtime.name", Value::from("go")),
        (
            "process.runtime.version",
            Value::from(expect.runtime_version.as_str()),
        ),
        ("host.name", Value::from(expect.host_name.as_str())),
    ];
    for (key, expected) in checks {
        assert_eq!(
            resource(key),
            Some(expected),
            "resource {key}\n  span: {span}"
        );
    }
}

/// Checks that the span starts and ends in order, within the client's view of the
/// exchange (`sent_at` to `received_at`, give or take [`CLOCK_SLACK`]).
fn check_times(span: &Span, request: &str, sent_at: SystemTime, received_at: SystemTime) {
    let (Some(start), Some(end)) = (span.start_ns(), span.end_ns()) else {
        panic!("start and end times (unsigned integers) of the span of {request}\n  span: {span}");
    };
    assert!(
        end >= start,
        "the span of {request} ends before it starts\n  span: {span}"
    );
    let earliest = unix_nanos(sent_at - CLOCK_SLACK);
    let latest = unix_nanos(received_at + CLOCK_SLACK);
    assert!(
        start >= earliest && end <= latest,
        "the span of {request} is not within the client's exchange \
         ({earliest}..{latest} ns, slack included)\n  span: {span}"
    );
}

/// Sends `cases` to the fixture built with `go_version` and checks one correct span
/// per request.
fn run_cases(go_version: &str, extra_args: &[&str], cases: &[Case]) {
    let mut session = Session::start(go_version, extra_args);
    let sent = session.send_all(cases);
    let traced = session.stop();
    for (span, sent) in traced.spans_of(&sent).into_iter().zip(&sent) {
        check_server_span(span, sent, &session.expect);
    }
}

#[test]
fn every_request_gets_one_span_with_the_contract_attributes() {
    run_cases(go::DEFAULT, &[], &mix());
}

#[test]
fn capture_query_keeps_the_query_string() {
    #[rustfmt::skip]
    let cases = [
        case("GET",  "/users/42?a=1&b=2", 0, 200, "user 42",   Some("/users/{id}")),
        case("POST", "/users?dry_run=1",  3, 201, "created 3", Some("/users")),
        case("GET",  "/hello",            0, 200, "hello",     Some("/hello")),
        case("GET",  "/users/a%20b?x=%2F", 0, 200, "user a b", Some("/users/{id}")),
    ];
    let mut session = Session::start(go::DEFAULT, &["--capture-query"]);
    let sent = session.send_all(&cases);
    let traced = session.stop();
    let matched = traced.spans_of(&sent);
    assert_eq!(
        matched[0].attr_str("url.query"),
        Some("a=1&b=2"),
        "span: {}",
        matched[0]
    );
    // The escaped path is decoded, the query kept as sent.
    assert_eq!(
        matched[3].attr_str("url.query"),
        Some("x=%2F"),
        "span: {}",
        matched[3]
    );
    for (span, sent) in matched.into_iter().zip(&sent) {
        check_server_span(span, sent, &session.expect);
    }
}

#[test]
fn a_panicking_handler_ends_its_span_with_an_error_and_later_requests_stay_apart() {
    let mut session = Session::start(go::DEFAULT, &[]);
    let connection = Connection::open(session.addr()).expect("connect");
    let panic_port = connection.local_addr().port();
    let panic_sent_at = SystemTime::now();
    let result = connection.send_last("GET", "/panic", &[], &[]);
    let panic_done_at = SystemTime::now();
    assert!(
        result.is_err(),
        "net/http answers no panicking request, yet: {result:?}"
    );
    // The same handler goroutine pool serves what follows: nothing may merge into the
    // panicked span, nor the panicked span into them.
    let after = session.send_all(&mix()[..7]);
    let traced = session.stop();

    let servers = span::server_spans(&traced.spans);
    let panicked: Vec<&Span> = servers
        .iter()
        .copied()
        .filter(|span| span.attr_str("url.path") == Some("/panic"))
        .collect();
    assert_eq!(
        panicked.len(),
        1,
        "one span for GET /panic; all server spans:\n{}--- tracer stderr ---\n{}",
        span::dump(&servers),
        traced.output.stderr
    );
    let span = panicked[0];
    let expect = &session.expect;
    let name = if expect.routes { "GET /panic" } else { "GET" };
    assert_eq!(span.name(), Some(name), "span: {span}");
    assert_eq!(span.kind(), Some("server"), "span: {span}");
    assert_eq!(span.status_code(), Some("error"), "span: {span}");
    assert_eq!(span.attr_str("error.type"), Some("panic"), "span: {span}");
    assert_eq!(
        span.attr_str("http.request.method"),
        Some("GET"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_u64("client.port"),
        Some(u64::from(panic_port)),
        "span: {span}"
    );
    let route = expect.routes.then_some("/panic");
    assert_eq!(span.attr_str("http.route"), route, "span: {span}");
    check_resource(span, expect);
    check_times(span, "GET /panic", panic_sent_at, panic_done_at);

    // Every other request: one correct span each, and no other span.
    let others = traced.spans_of_except(&after, Some(span));
    for (span, sent) in others.into_iter().zip(&after) {
        check_server_span(span, sent, expect);
    }
}

/// The span among `spans` whose `url.path` starts with `prefix` (`what` names it).
fn with_path_prefix<'a>(spans: &[&'a Span], prefix: &str, what: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| {
            s.attr_str("url.path")
                .is_some_and(|p| p.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("{what} span:\n{}", span::dump(spans)))
}

/// Very long input is cut to the kept length and marked (`tracer.truncated` names the
/// attribute); bytes that are not UTF-8 become U+FFFD; the span stays valid JSON and the
/// program answers as it would untraced.
#[test]
fn long_and_non_utf8_input_is_cut_and_marked_never_garbage() {
    const PATH_LEN: usize = 256;
    const METHOD_LEN: usize = 16;
    const USER_AGENT_LEN: usize = 128;
    let mut session = Session::start(go::DEFAULT, &[]);
    let long_path = format!("/{}", "p".repeat(5000));
    let long_agent = "a".repeat(10_000);
    let long_method = "X".repeat(40);
    let sent = [
        (
            "GET",
            long_path.as_str(),
            vec![("User-Agent", long_agent.as_str())],
        ),
        ("GET", "/users/%FF%FEok", Vec::new()),
        (long_method.as_str(), "/hello", Vec::new()),
    ];
    for (method, target, headers) in &sent {
        let response = http::request(session.addr(), method, target, headers, &[])
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert!(response.status > 0, "{method} {target} is answered");
    }
    let traced = session.stop();
    let servers = span::server_spans(&traced.spans);
    assert_eq!(
        servers.len(),
        sent.len(),
        "one span per request:\n{}",
        span::dump(&servers)
    );
    let long = with_path_prefix(&servers, "/ppp", "the long path's");
    assert_eq!(
        long.attr_str("url.path"),
        Some(&long_path[..PATH_LEN]),
        "span: {long}"
    );
    assert_eq!(
        long.attr_str("user_agent.original"),
        Some(&long_agent[..USER_AGENT_LEN]),
        "span: {long}"
    );
    assert_eq!(
        long.attr_str("tracer.truncated"),
        Some("url.path,user_agent.original"),
        "span: {long}"
    );
    let bytes = with_path_prefix(&servers, "/users/", "the non-UTF-8 path's");
    assert_eq!(
        bytes.attr_str("url.path"),
        Some("/users/\u{FFFD}\u{FFFD}ok"),
        "span: {bytes}"
    );
    assert_eq!(bytes.attr_str("tracer.truncated"), None, "span: {bytes}");
    let method = servers
        .iter()
        .find(|s| s.attr_str("http.request.method") == Some("_OTHER"))
        .unwrap_or_else(|| panic!("the long method's span:\n{}", span::dump(&servers)));
    assert_eq!(
        method.attr_str("http.request.method_original"),
        Some(&long_method[..METHOD_LEN]),
        "span: {method}"
    );
    assert_eq!(
        method.attr_str("tracer.truncated"),
        Some("http.request.method_original"),
        "span: {method}"
    );
}

#[test]
fn a_method_and_target_rewritten_by_the_handler_are_reported_as_rewritten() {
    // The fixture's /rewrite handler replaces Request.Method and Request.RequestURI with new
    // strings, which no longer follow each other in memory: each is read on its own.
    let mut session = Session::start(go::DEFAULT, &["--capture-query"]);
    let sent_at = SystemTime::now();
    let response =
        tracer_tests::http::request(session.addr(), "POST", "/rewrite?to=a%20b&by=me", &[], b"")
            .expect("POST /rewrite");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "rewritten")
    );
    let done_at = SystemTime::now();
    let traced = session.stop();
    let servers = span::server_spans(&traced.spans);
    let port = u64::from(response.local_addr.port());
    let found: Vec<&&Span> = servers
        .iter()
        .filter(|span| span.attr_u64("client.port") == Some(port))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one span expected:\n{}",
        span::dump(&servers)
    );
    let span = *found[0];
    assert_eq!(
        span.attr_str("http.request.method"),
        Some("PATCH"),
        "span: {span}"
    );
    assert_eq!(
        span.attr_str("url.path"),
        Some("/rewritten/a b"),
        "span: {span}"
    );
    assert_eq!(span.attr_str("url.query"), Some("by=me"), "span: {span}");
    assert_eq!(
        span.attr_u64("http.response.status_code"),
        Some(200),
        "span: {span}"
    );
    let expect = &session.expect;
    let route = expect.routes.then_some("/rewrite");
    assert_eq!(span.attr_str("http.route"), route, "span: {span}");
    check_resource(span, expect);
    check_times(span, "POST /rewrite", sent_at, done_at);
}

#[test]
fn a_slow_handler_span_lasts_as_long_as_the_handler() {
    let sleep = case("GET", "/sleep?ms=50", 0, 200, "slept 50 ms", Some("/sleep"));
    let mut session = Session::start(go::DEFAULT, &[]);
    let sent = session.send_all(std::slice::from_ref(&sleep));
    let traced = session.stop();
    let span = traced.spans_of(&sent)[0];
    check_server_span(span, &sent[0], &session.expect);
    let duration = span.duration_ns().expect("a duration");
    assert!(
        duration >= 50_000_000,
        "the handler slept 50 ms, the span lasts {duration} ns: {span}"
    );
}

#[test]
fn concurrent_requests_each_get_exactly_one_span() {
    const THREADS: usize = 20;
    const PER_THREAD: usize = 10;
    let route = Some("/users/{id}");
    #[rustfmt::skip]
    let cases: Vec<Case> = (0..THREADS * PER_THREAD)
        .map(|n| {
            let target = format!("/users/{n}");
            match n % 4 {
                0 => case("DELETE", &target, 0,  204, "",                        route),
                1 => case("PUT",    &target, 10, 200, &format!("updated {n} 10"), route),
                _ => case("GET",    &target, 0,  200, &format!("user {n}"),       route),
            }
        })
        .collect();

    let mut session = Session::start(go::DEFAULT, &[]);
    let addr = session.addr();
    let sent: Vec<Sent> = thread::scope(|scope| {
        let clients: Vec<_> = cases
            .chunks(PER_THREAD)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|c| send(addr, c)).collect::<Vec<_>>())
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|client| {
                client
                    .join()
                    .expect("a client thread failed (see its panic above)")
            })
            .collect()
    });
    let traced = session.stop();

    let matched = traced.spans_of(&sent);
    for (span, sent) in matched.iter().zip(&sent) {
        check_server_span(span, sent, &session.expect);
    }
    let paths: HashSet<&str> = matched
        .iter()
        .filter_map(|s| s.attr_str("url.path"))
        .collect();
    assert_eq!(paths.len(), cases.len(), "each path exactly once");
    let span_ids: HashSet<&str> = matched.iter().filter_map(|s| s.span_id()).collect();
    assert_eq!(span_ids.len(), cases.len(), "distinct span ids");
    let trace_ids: HashSet<&str> = matched.iter().filter_map(|s| s.trace_id()).collect();
    assert_eq!(
        trace_ids.len(),
        cases.len(),
        "a new trace for each root span"
    );
}

#[test]
fn keep_alive_requests_on_one_connection_each_get_one_span() {
    #[rustfmt::skip]
    let cases = [
        case("GET",  "/hello",      0, 200, "hello",      Some("/hello")),
        case("POST", "/users",      5, 201, "created 5",  Some("/users")),
        case("GET",  "/status/500", 0, 500, "status 500", Some("/status/{code}")),
        case("GET",  "/users/9",    0, 200, "user 9",     Some("/users/{id}")),
    ];
    let mut session = Session::start(go::DEFAULT, &[]);
    let mut connection = Connection::open(session.addr()).expect("connect");
    let sent: Vec<Sent> = cases
        .iter()
        .map(|case| {
            let body = vec![b'x'; case.body_len];
            let response = connection
                .send(case.method, &case.target, &[], &body)
                .unwrap_or_else(|e| panic!("{} {}: {e}", case.method, case.target));
            check_answer(case, &response);
            Sent {
                case: case.clone(),
                response,
            }
        })
        .collect();
    drop(connection);
    let traced = session.stop();
    for (span, sent) in traced.spans_of(&sent).into_iter().zip(&sent) {
        check_server_span(span, sent, &session.expect);
    }
}

#[test]
fn the_summary_counts_exported_spans_and_no_drops() {
    let mut session = Session::start(go::DEFAULT, &[]);
    let sent = session.send_all(&mix());
    let traced = session.stop();
    traced.spans_of(&sent);
    let output = &traced.output;
    let summary = output
        .summary()
        .unwrap_or_else(|| panic!("no summary line (with `spans_exported=`) on stderr\n{output}"));
    assert_eq!(
        summary.get("spans_exported"),
        Some(traced.spans.len() as u64),
        "{}",
        summary.line
    );
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
}

#[test]
fn go_1_19_request_mix() {
    // Before Go 1.22 the fixture routes by hand: no pattern, so no http.route.
    run_cases(go::OLDEST, &[], &mix()[..9]);
}

#[test]
fn go_1_27_request_mix() {
    run_cases(go::NEWEST, &[], &mix()[..9]);
}

#[test]
fn the_tracer_exits_once_the_traced_process_exited() {
    let mut session = Session::start(go::DEFAULT, &[]);
    let sent = session.send_all(&mix()[..2]);
    session
        .server
        .fixture_mut()
        .kill()
        .expect("kill the fixture");
    let tracer = session.tracer.take().expect("a tracer");
    let output = tracer
        .wait_exit(EXIT_TIMEOUT)
        .expect("the tracer exits by itself once its only target exited");
    let traced = Traced::new(output);
    for (span, sent) in traced.spans_of(&sent).into_iter().zip(&sent) {
        check_server_span(span, sent, &session.expect);
    }
}

/// The checks above, run on a span written by hand to CONTRACT.md: a failure here is a
/// bug in this file, not in the tracer. Needs no root.
#[test]
fn the_checks_accept_a_span_written_to_the_contract() {
    let sent_at = SystemTime::now();
    #[rustfmt::skip]
    let sent = Sent {
        case: case("GET", "/users/42?a=1", 0, 200, "user 42", Some("/users/{id}")),
        response: Response {
            status: 200,
            headers: Vec::new(),
            body: b"user 42".to_vec(),
            local_addr: "127.0.0.1:51000".parse().expect("an address"),
            sent_at,
            received_at: sent_at + Duration::from_millis(5),
        },
    };
    let mut expect = Expect {
        addr: "127.0.0.1:8080".parse().expect("an address"),
        pid: 4242,
        exe: "/srv/shop".to_owned(),
        service_name: "shop".to_owned(),
        runtime_version: "go1.24.11".to_owned(),
        host_name: "node-1".to_owned(),
        routes: true,
        capture_query: false,
    };
    let start = unix_nanos(sent_at + Duration::from_millis(1));
    let mut span = Span(serde_json::json!({
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
        "parent_span_id": null, "name": "GET /users/{id}", "kind": "server",
        "start_time_unix_nano": start, "end_time_unix_nano": start + 3_000_000,
        "status_code": "unset",
        "attributes": {
            "http.request.method": "GET", "url.path": "/users/42", "url.scheme": "http",
            "http.route": "/users/{id}", "http.response.status_code": 200,
            "server.address": "127.0.0.1", "server.port": 8080,
            "client.address": "127.0.0.1", "client.port": 51000,
            "network.protocol.version": "1.1", "user_agent.original": USER_AGENT
        },
        "resource": {
            "service.name": "shop", "process.pid": 4242,
            "process.executable.path": "/srv/shop", "process.runtime.name": "go",
            "process.runtime.version": "go1.24.11", "host.name": "node-1"
        }
    }));
    check_server_span(&span, &sent, &expect);

    expect.capture_query = true;
    span.0["attributes"]["url.query"] = Value::from("a=1");
    check_server_span(&span, &sent, &expect);
}

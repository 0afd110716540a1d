//! End-to-end: client spans and their parent links (CONTRACT.md "Spans on stdout",
//! client spans and "Linking"). Two instances of the `net_http_server` fixture run: the
//! caller, started with `-backend`, whose `GET /call/KIND` routes call the backend in the
//! ways the tests check (`tests/go/net_http_server/client.go`), and the backend. One
//! tracer traces both. These tests need root.
//!
//! Each client span must be the caller's, name its call (`url.full`, `server.*`), say
//! how it ended (`http.response.status_code`, `error.type`, `status_code`), and say how
//! its parent was found (`tracer.parent_link`): on the goroutine serving the request,
//! on a goroutine it started, through the request's context, or not at
//! all (a root span, in a new trace). The backend's server spans are not yet linked to
//! the caller's client spans (no `traceparent` yet): nothing here checks their trace.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::MutexGuard;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tracer_tests::go::{self, Toolchain};
use tracer_tests::http::{self, Response};
use tracer_tests::process::{Fixture, HTTP_SERVER_FIXTURE, HttpServer, send_signal};
use tracer_tests::span::{self, Span, is_valid_id};
use tracer_tests::tracer::{ATTACH_TIMEOUT, Tracer, TracerOutput};

/// `tracer.parent_link`: the call ran on the goroutine serving the request.
const LINK_GOROUTINE: &str = "goroutine";
/// `tracer.parent_link`: the call ran on a goroutine that the serving goroutine started.
const LINK_PARENT_GOROUTINE: &str = "parent_goroutine";
/// `tracer.parent_link`: the call ran further down the tree of goroutines the serving
/// goroutine started (with `--track-goroutines`).
const LINK_GOROUTINE_TREE: &str = "goroutine_tree";
/// `tracer.parent_link`: the call carried the request's context (here: on a long-lived
/// worker goroutine that no request started).
const LINK_CONTEXT: &str = "context";
/// `tracer.parent_link`: no request in flight; the span starts a new trace.
const LINK_ROOT: &str = "root";

/// The client's timeout in `GET /call/timeout` is 100 ms (the backend sleeps 1000 ms):
/// the span lasts about that long.
const TIMED_OUT_CALL_MIN: Duration = Duration::from_millis(90);
const TIMED_OUT_CALL_MAX: Duration = Duration::from_millis(900);

/// The caller's background calls (`-tick`, `-ticks`): how often, how many, how many
/// spans of them at least, and how long to wait for them.
const TICK_PERIOD: &str = "200ms";
const TICKS: usize = 3;
const MIN_TICK_SPANS: usize = 2;
const TICKS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a call goes.
#[derive(Debug, Clone, Copy)]
enum Dest {
    /// The backend, at this target (path, and the query when `url.full` keeps it).
    Backend(&'static str),
    /// A loopback port the caller found closed: only the caller knows which.
    ClosedPort,
}

/// How a call ends.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The backend answered with this status code.
    Status(u16),
    /// No response: the connection was refused, or the client timed out.
    Failed,
}

impl Outcome {
    /// Whether a line of the caller's answer reports this outcome.
    fn matches_answer(self, line: &str) -> bool {
        match self {
            Self::Status(code) => line == code.to_string(),
            Self::Failed => line.starts_with("error: "),
        }
    }
}

/// One outgoing call, as its client span must describe it.
#[derive(Debug, Clone, Copy)]
struct Call {
    dest: Dest,
    outcome: Outcome,
}

/// `GET /hello` on the backend, answered 200.
const HELLO: Call = Call {
    dest: Dest::Backend("/hello"),
    outcome: Outcome::Status(200),
};

/// One `GET /call/KIND`: how many calls the caller makes, what each should look like,
/// and how each should be linked to the caller's server span.
#[derive(Debug, Clone, Copy)]
struct CallCase {
    kind: &'static str,
    calls: usize,
    call: Call,
    link: &'static str,
}

impl CallCase {
    /// The request target sent to the caller, and its server span's `url.path`.
    fn path(&self) -> String {
        format!("/call/{}", self.kind)
    }
}

const SAME: CallCase = CallCase {
    kind: "same",
    calls: 1,
    call: HELLO,
    link: LINK_GOROUTINE,
};
const CTX: CallCase = CallCase {
    kind: "ctx",
    calls: 1,
    call: HELLO,
    link: LINK_GOROUTINE,
};
const NOT_FOUND: CallCase = CallCase {
    kind: "notfound",
    calls: 1,
    call: Call {
        dest: Dest::Backend("/no/such/page"),
        outcome: Outcome::Status(404),
    },
    link: LINK_GOROUTINE,
};
const REFUSED: CallCase = CallCase {
    kind: "refused",
    calls: 1,
    call: Call {
        dest: Dest::ClosedPort,
        outcome: Outcome::Failed,
    },
    link: LINK_GOROUTINE,
};
const TIMEOUT: CallCase = CallCase {
    kind: "timeout",
    calls: 1,
    // The fixture calls /sleep?ms=1000: url.full drops the query by default.
    call: Call {
        dest: Dest::Backend("/sleep"),
        outcome: Outcome::Failed,
    },
    link: LINK_GOROUTINE,
};
const CANCELED: CallCase = CallCase {
    kind: "canceled",
    calls: 1,
    call: Call {
        dest: Dest::Backend("/sleep"),
        outcome: Outcome::Failed,
    },
    link: LINK_GOROUTINE,
};
const GO_CTX: CallCase = CallCase {
    kind: "goctx",
    calls: 1,
    call: HELLO,
    link: LINK_CONTEXT,
};
const GO: CallCase = CallCase {
    kind: "go",
    calls: 1,
    call: HELLO,
    link: LINK_PARENT_GOROUTINE,
};
const FANOUT: CallCase = CallCase {
    kind: "fanout",
    calls: 3,
    call: HELLO,
    link: LINK_PARENT_GOROUTINE,
};
const TRANSPORT: CallCase = CallCase {
    kind: "transport",
    calls: 1,
    call: HELLO,
    link: LINK_GOROUTINE,
};
const DEEP: CallCase = CallCase {
    kind: "deep",
    calls: 1,
    call: HELLO,
    link: LINK_GOROUTINE_TREE,
};
const POOL: CallCase = CallCase {
    kind: "pool",
    calls: 1,
    call: HELLO,
    link: LINK_CONTEXT,
};

/// The two traced processes.
#[derive(Debug, Clone, Copy)]
struct Processes {
    caller_pid: u32,
    backend_pid: u32,
    /// Where the backend listens: the `url.full`, `server.address` and `server.port` of
    /// the calls to it.
    backend: SocketAddr,
}

/// The caller, the backend and one tracer attached to both. Holds
/// [`tracer_tests::serial`] for the whole test.
struct Session {
    caller: HttpServer,
    backend: HttpServer,
    tracer: Option<Tracer>,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// Starts the backend, the caller and `tracer --pid CALLER --pid BACKEND --format
    /// json TRACER_ARGS`, and waits until the tracer attached to both.
    fn start(tracer_args: &[&str]) -> Self {
        Self::start_with(go::DEFAULT, &[], tracer_args, false)
    }

    /// Like [`Self::start`], the caller also calling the backend's `/hello` every
    /// `period`, `ticks` times, from a goroutine of its own.
    ///
    /// Its ticker starts with the process, and attaching to two processes takes longer
    /// than a few ticks: the caller is stopped (SIGSTOP) until the tracer attached, then
    /// continued, so that every tick happens while traced.
    fn start_ticking(period: &str, ticks: usize) -> Self {
        let ticks = ticks.to_string();
        Self::start_with(
            go::DEFAULT,
            &["-tick", period, "-ticks", ticks.as_str()],
            &[],
            true,
        )
    }

    /// Like [`Self::start`], both programs built with Go `version`.
    fn start_on(version: &str, tracer_args: &[&str]) -> Self {
        Self::start_with(version, &[], tracer_args, false)
    }

    fn start_with(
        version: &str,
        caller_args: &[&str],
        tracer_args: &[&str],
        pause_caller: bool,
    ) -> Self {
        let serial = tracer_tests::serial();
        tracer_tests::require_root();
        let toolchain = Toolchain::find(version).expect("Go toolchain");
        let exe = toolchain
            .build_fixture(HTTP_SERVER_FIXTURE)
            .expect("build the net_http_server fixture");
        let backend = Fixture::spawn(&exe, &[])
            .and_then(|fixture| HttpServer::from_fixture(fixture, toolchain.clone()))
            .expect("start the backend");
        let backend_url = format!("http://{}", backend.addr());
        let mut args = vec!["-backend", backend_url.as_str()];
        args.extend_from_slice(caller_args);
        let caller = Fixture::spawn(&exe, &args)
            .and_then(|fixture| HttpServer::from_fixture(fixture, toolchain))
            .expect("start the caller");
        if pause_caller {
            send_signal(caller.pid(), libc::SIGSTOP).expect("stop the caller");
        }

        let caller_pid = caller.pid().to_string();
        let backend_pid = backend.pid().to_string();
        let mut args = vec!["--pid", caller_pid.as_str(), "--pid", backend_pid.as_str()];
        if !tracer_args.contains(&"--format") {
            args.extend_from_slice(&["--format", "json"]);
        }
        args.extend_from_slice(tracer_args);
        let tracer = Tracer::spawn(args).expect("start the tracer");
        for pid in [caller.pid(), backend.pid()] {
            tracer
                .wait_attached(pid, ATTACH_TIMEOUT)
                .expect("the tracer attaches to the caller and to the backend");
        }
        if pause_caller {
            send_signal(caller.pid(), libc::SIGCONT).expect("continue the caller");
        }
        Self {
            caller,
            backend,
            tracer: Some(tracer),
            _serial: serial,
        }
    }

    fn processes(&self) -> Processes {
        Processes {
            caller_pid: self.caller.pid(),
            backend_pid: self.backend.pid(),
            backend: self.backend.addr(),
        }
    }

    /// How many client spans the tracer printed so far (complete lines only).
    fn client_spans_so_far(&self) -> usize {
        let stdout = self.tracer.as_ref().expect("a running tracer").stdout();
        let complete = &stdout[..stdout.rfind('\n').map_or(0, |end| end + 1)];
        Span::parse_lines(complete).map_or(0, |spans| {
            spans
                .iter()
                .filter(|span| span.kind() == Some("client"))
                .count()
        })
    }

    /// Stops the tracer with SIGINT, checks that it exited 0 and reads its spans.
    fn stop(&mut self) -> Traced {
        let tracer = self.tracer.take().expect("the tracer is stopped once");
        Traced::new(tracer.stop().expect("stop the tracer"), self.processes())
    }
}

/// `GET /call/KIND` to the caller on a new connection; checks its answer: 200, one line
/// per call, each reporting the call's outcome.
fn call(caller: SocketAddr, case: &CallCase) -> Response {
    let target = case.path();
    let response = http::get(caller, &target).unwrap_or_else(|e| panic!("GET {target}: {e}"));
    let text = response.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        response.status == 200
            && lines.len() == case.calls
            && lines
                .iter()
                .all(|line| case.call.outcome.matches_answer(line)),
        "the caller's answer to GET {target}: {} {text:?}; expected 200 and {} line(s) \
         reporting {:?}",
        response.status,
        case.calls,
        case.call.outcome
    );
    response
}

/// Runs `case` once under a tracer started with `tracer_args` and returns what it printed.
fn trace_call(case: &CallCase, tracer_args: &[&str]) -> Traced {
    let mut session = Session::start(tracer_args);
    call(session.caller.addr(), case);
    session.stop()
}

/// The process of a span (`process.pid`).
fn pid_of(span: &Span) -> Option<u64> {
    span.resource("process.pid").and_then(Value::as_u64)
}

/// What a tracer printed until it exited 0, and checks that print it on failure.
struct Traced {
    output: TracerOutput,
    spans: Vec<Span>,
    processes: Processes,
}

impl Traced {
    /// Checks the exit code and that every span is a server span of one of the two
    /// processes or a client span.
    fn new(output: TracerOutput, processes: Processes) -> Self {
        assert_eq!(output.code(), Some(0), "the tracer's exit code\n{output}");
        let spans = output.spans().expect("spans on stdout");
        let traced = Self {
            output,
            spans,
            processes,
        };
        let pids = [processes.caller_pid, processes.backend_pid].map(u64::from);
        for span in &traced.spans {
            let known = match span.kind() {
                Some("server") => pid_of(span).is_some_and(|pid| pids.contains(&pid)),
                Some("client") => true,
                _ => false,
            };
            traced.expect(
                span,
                known,
                "a server span of the caller or of the backend, or a client span",
            );
        }
        traced
    }

    /// Fails, printing `what`, the span and the tracer's stderr.
    fn fail(&self, span: &Span, what: &str) -> ! {
        panic!(
            "{what}\n  span: {span}\n--- tracer stderr ---\n{}",
            self.output.stderr
        )
    }

    /// Fails unless `ok`, printing `what`, the span and the tracer's stderr.
    fn expect(&self, span: &Span, ok: bool, what: &str) {
        if !ok {
            self.fail(span, what);
        }
    }

    /// Fails unless `actual == expected`, printing `what`, the span and the tracer's
    /// stderr.
    fn expect_eq<T: PartialEq + Debug>(&self, span: &Span, what: &str, actual: T, expected: T) {
        assert_eq!(
            actual, expected,
            "{what}\n  span: {span}\n--- tracer stderr ---\n{}",
            self.output.stderr
        );
    }

    /// Fails unless there are `len` `spans`, printing them and the tracer's stderr.
    fn expect_len(&self, what: &str, spans: &[&Span], len: usize) {
        assert_eq!(
            spans.len(),
            len,
            "{len} {what} expected, found {}:\n{}--- tracer stderr ---\n{}",
            spans.len(),
            span::dump(spans),
            self.output.stderr
        );
    }

    fn servers_of(&self, pid: u32) -> Vec<&Span> {
        span::server_spans(&self.spans)
            .into_iter()
            .filter(|span| pid_of(span) == Some(u64::from(pid)))
            .collect()
    }

    /// The caller's server spans.
    fn caller_servers(&self) -> Vec<&Span> {
        self.servers_of(self.processes.caller_pid)
    }

    /// The backend's server spans.
    fn backend_servers(&self) -> Vec<&Span> {
        self.servers_of(self.processes.backend_pid)
    }

    /// Every client span.
    fn clients(&self) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|span| span.kind() == Some("client"))
            .collect()
    }

    /// The caller's only server span, which must be for `path`.
    fn only_caller_server(&self, path: &str) -> &Span {
        let servers = self.caller_servers();
        self.expect_len("server span(s) of the caller", &servers, 1);
        let server = servers[0];
        self.expect_eq(
            server,
            "url.path of the caller's server span",
            server.attr_str("url.path"),
            Some(path),
        );
        server
    }

    /// Checks what a client span says about its call (its parent aside).
    fn check_client(&self, span: &Span, call: &Call) {
        let check = |what: &str, actual: Option<Value>, expected: Option<Value>| {
            self.expect_eq(
                span,
                &format!("{what} of the client span"),
                actual,
                expected,
            );
        };
        let attr = |key: &str| span.attr(key).cloned();
        check("kind", span.field("kind").cloned(), Some("client".into()));
        check("name", span.field("name").cloned(), Some("GET".into()));
        check(
            "http.request.method",
            attr("http.request.method"),
            Some("GET".into()),
        );
        self.expect(
            span,
            span.trace_id().is_some_and(|id| is_valid_id(id, 32)),
            "trace_id: 32 lowercase hex digits, not all zero",
        );
        self.expect(
            span,
            span.span_id().is_some_and(|id| is_valid_id(id, 16)),
            "span_id: 16 lowercase hex digits, not all zero",
        );
        check(
            "resource process.pid (the caller)",
            span.resource("process.pid").cloned(),
            Some(self.processes.caller_pid.into()),
        );
        check(
            "server.address",
            attr("server.address"),
            Some("127.0.0.1".into()),
        );
        match call.dest {
            Dest::Backend(target) => {
                let backend = self.processes.backend;
                check(
                    "url.full",
                    attr("url.full"),
                    Some(format!("http://{backend}{target}").into()),
                );
                check(
                    "server.port",
                    attr("server.port"),
                    Some(backend.port().into()),
                );
            }
            Dest::ClosedPort => {
                self.expect(
                    span,
                    span.attr_str("url.full")
                        .is_some_and(|url| url.starts_with("http://127.0.0.1:")),
                    "url.full of a call to a closed loopback port: http://127.0.0.1:PORT/",
                );
                self.expect(
                    span,
                    span.attr_u64("server.port").is_some(),
                    "server.port of the client span: an integer",
                );
            }
        }
        match call.outcome {
            Outcome::Status(code) => {
                let failed = code >= 400;
                check(
                    "http.response.status_code",
                    attr("http.response.status_code"),
                    Some(code.into()),
                );
                check(
                    "status_code",
                    span.field("status_code").cloned(),
                    Some(if failed { "error" } else { "unset" }.into()),
                );
                check(
                    "error.type",
                    attr("error.type"),
                    failed.then(|| code.to_string().into()),
                );
            }
            Outcome::Failed => {
                check(
                    "http.response.status_code (no response)",
                    attr("http.response.status_code"),
                    None,
                );
                check(
                    "status_code",
                    span.field("status_code").cloned(),
                    Some("error".into()),
                );
                self.expect(
                    span,
                    span.attr_str("error.type").is_some_and(|t| !t.is_empty()),
                    "error.type of a failed call: a non-empty string",
                );
            }
        }
        self.expect(
            span,
            span.duration_ns().is_some(),
            "start and end times: integers, the end not before the start",
        );
    }

    /// Checks that `client` is a child of the server span `parent`, found through `link`,
    /// and runs within it.
    fn check_child(&self, client: &Span, parent: &Span, link: &str) {
        let what = |field: &str| format!("{field} of the client span\n  parent: {parent}");
        self.expect_eq(
            client,
            &what("tracer.parent_link"),
            client.attr_str("tracer.parent_link"),
            Some(link),
        );
        self.expect_eq(
            client,
            &what("parent_span_id (the parent's span_id)"),
            client.str_field("parent_span_id"),
            parent.span_id(),
        );
        self.expect_eq(
            client,
            &what("trace_id (the parent's)"),
            client.trace_id(),
            parent.trace_id(),
        );
        let within = match (client.start_ns(), client.end_ns()) {
            (Some(start), Some(end)) => {
                parent.start_ns().is_some_and(|p| p <= start)
                    && parent.end_ns().is_some_and(|p| end <= p)
            }
            _ => false,
        };
        self.expect(client, within, &what("start and end (within the parent's)"));
    }

    /// Checks that `client` is a root span: no parent, in a trace of its own.
    fn check_root(&self, client: &Span) {
        self.expect_eq(
            client,
            "parent_span_id of a call outside any request",
            client.field("parent_span_id"),
            Some(&Value::Null),
        );
        self.expect_eq(
            client,
            "tracer.parent_link of a call outside any request",
            client.attr_str("tracer.parent_link"),
            Some(LINK_ROOT),
        );
    }

    /// Checks the spans of one `GET /call/KIND`: the caller's one server span for it,
    /// `case.calls` client spans, each a correct child of it, and (for calls the backend
    /// answered) the backend's one server span per call. Returns the caller's server
    /// span, the client spans and the backend's server spans.
    fn check_call(&self, case: &CallCase) -> (&Span, Vec<&Span>, Vec<&Span>) {
        let server = self.only_caller_server(&case.path());
        let clients = self.clients();
        self.expect_len(
            &format!("client span(s) for GET {}", case.path()),
            &clients,
            case.calls,
        );
        let mut span_ids = HashSet::new();
        for client in &clients {
            self.check_client(client, &case.call);
            self.check_child(client, server, case.link);
            self.expect(
                client,
                span_ids.insert(client.span_id()),
                "a distinct span_id",
            );
        }
        let backend = self.backend_servers();
        if let (Dest::Backend(target), Outcome::Status(_)) = (case.call.dest, case.call.outcome) {
            let path = target.split('?').next().unwrap_or(target);
            self.expect_len("server span(s) of the backend", &backend, case.calls);
            for span in &backend {
                self.expect_eq(
                    span,
                    "url.path of the backend's server span",
                    span.attr_str("url.path"),
                    Some(path),
                );
            }
        }
        (server, clients, backend)
    }
}

#[test]
fn a_call_on_the_serving_goroutine_is_a_child_of_the_server_span() {
    trace_call(&SAME, &[]).check_call(&SAME);
}

#[test]
fn a_call_with_the_request_context_is_a_child_of_the_server_span() {
    trace_call(&CTX, &[]).check_call(&CTX);
}

#[test]
fn calls_stay_in_the_trace_an_incoming_traceparent_names() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "b7ad6b7169203331";
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let cases = [SAME, GO_CTX, GO];
    let mut session = Session::start(&[]);
    for case in &cases {
        let response = http::request(
            session.caller.addr(),
            "GET",
            &case.path(),
            &[("traceparent", traceparent.as_str())],
            &[],
        )
        .unwrap_or_else(|e| panic!("GET {}: {e}", case.path()));
        assert_eq!(response.status, 200, "GET {}", case.path());
    }
    let traced = session.stop();
    for case in &cases {
        let path = case.path();
        let servers: Vec<&Span> = traced
            .caller_servers()
            .into_iter()
            .filter(|s| s.attr_str("url.path") == Some(path.as_str()))
            .collect();
        traced.expect_len(&format!("caller server span of GET {path}"), &servers, 1);
        let server = servers[0];
        traced.expect_eq(
            server,
            "trace_id (the header's)",
            server.trace_id(),
            Some(TRACE),
        );
        traced.expect_eq(
            server,
            "parent_span_id (the header's parent)",
            server.str_field("parent_span_id"),
            Some(PARENT),
        );
        let clients: Vec<&Span> = traced
            .clients()
            .into_iter()
            .filter(|c| c.str_field("parent_span_id") == server.span_id())
            .collect();
        traced.expect_len(&format!("client span of GET {}", case.path()), &clients, 1);
        traced.check_child(clients[0], server, case.link);
    }
}

/// `--placement entry-and-returns`, the bench's stand-in for other tracers: starts on
/// first instructions, ends on each `ret` of the handler dispatch and of `net/http.send`,
/// the reader woken per event. The same spans, links and statuses come out.
#[test]
fn other_tracers_placement_gives_the_same_spans() {
    let placement = ["--placement", "entry-and-returns"];
    for case in [&SAME, &NOT_FOUND] {
        let traced = trace_call(case, &placement);
        traced.check_call(case);
        let stderr = &traced.output.stderr;
        for probe in [
            "net/http.serverHandler.ServeHTTP+0x0(first instruction (single-stepped))",
            "net/http.send+0x0(first instruction (single-stepped))",
        ] {
            assert!(stderr.contains(probe), "no {probe} in:\n{stderr}");
        }
        let probes: Vec<&str> = stderr.split(['[', ']', ',']).map(str::trim).collect();
        for function in ["net/http.serverHandler.ServeHTTP", "net/http.send"] {
            assert!(
                probes
                    .iter()
                    .any(|p| p.starts_with(&format!("{function}+0x"))
                        && p.ends_with("(ret (single-stepped))")),
                "no ret probe of {function} in:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("finishRequest"),
            "the span end moved to the rets:\n{stderr}"
        );
    }
}

#[test]
fn a_404_answer_is_an_error_with_its_status() {
    let traced = trace_call(&NOT_FOUND, &[]);
    let (_, _, backend) = traced.check_call(&NOT_FOUND);
    // A 404 is an error for the client, not for the server.
    traced.expect_eq(
        backend[0],
        "status_code of the backend's server span for a 404",
        backend[0].status_code(),
        Some("unset"),
    );
}

#[test]
fn a_refused_connection_is_an_error_without_a_status() {
    let traced = trace_call(&REFUSED, &[]);
    let (_, _, backend) = traced.check_call(&REFUSED);
    traced.expect_len("server span(s) of the backend", &backend, 0);
}

#[test]
fn a_canceled_call_is_an_error_of_type_canceled() {
    // The caller cancels the call's context after 100 ms (the backend sleeps 1000 ms).
    let traced = trace_call(&CANCELED, &[]);
    let (_, clients, _) = traced.check_call(&CANCELED);
    traced.expect_eq(
        clients[0],
        "error.type of a call whose context was canceled",
        clients[0].attr_str("error.type"),
        Some("canceled"),
    );
    let duration = Duration::from_nanos(clients[0].duration_ns().unwrap_or_default());
    traced.expect(
        clients[0],
        (TIMED_OUT_CALL_MIN..=TIMED_OUT_CALL_MAX).contains(&duration),
        &format!("canceled after 100 ms; the span lasts {duration:?}"),
    );
}

#[test]
fn a_timed_out_call_is_an_error_that_lasts_until_the_timeout() {
    let traced = trace_call(&TIMEOUT, &[]);
    let (_, clients, _) = traced.check_call(&TIMEOUT);
    traced.expect_eq(
        clients[0],
        "error.type of a call that timed out",
        clients[0].attr_str("error.type"),
        Some("timeout"),
    );
    let duration = Duration::from_nanos(clients[0].duration_ns().unwrap_or_default());
    traced.expect(
        clients[0],
        (TIMED_OUT_CALL_MIN..=TIMED_OUT_CALL_MAX).contains(&duration),
        &format!(
            "the client timed out after 100 ms; the span lasts {duration:?}, not within \
             {TIMED_OUT_CALL_MIN:?}..={TIMED_OUT_CALL_MAX:?}"
        ),
    );
}

#[test]
fn capture_query_keeps_the_query_in_url_full() {
    let case = CallCase {
        call: Call {
            dest: Dest::Backend("/sleep?ms=1000"),
            ..TIMEOUT.call
        },
        ..TIMEOUT
    };
    trace_call(&case, &["--capture-query"]).check_call(&case);
}

#[test]
fn calls_outside_any_request_start_new_traces() {
    let mut session = Session::start_ticking(TICK_PERIOD, TICKS);
    // No request to the caller while it ticks.
    tracer_tests::poll_until(TICKS_TIMEOUT, || {
        (session.client_spans_so_far() >= TICKS).then_some(())
    });
    // Then one, so that the ticks' traces can be told apart from a request's.
    let response = http::get(session.caller.addr(), "/hello").expect("GET /hello");
    assert_eq!(response.status, 200, "the caller's answer to GET /hello");
    let traced = session.stop();

    let server = traced.only_caller_server("/hello");
    let clients = traced.clients();
    let found = clients.len();
    assert!(
        (MIN_TICK_SPANS..=TICKS).contains(&found),
        "{MIN_TICK_SPANS} to {TICKS} client spans of the caller's {TICKS} background \
         calls expected, found {found}:\n{}--- tracer stderr ---\n{}",
        span::dump(&clients),
        traced.output.stderr
    );
    let mut trace_ids = HashSet::from([server.trace_id()]);
    for client in &clients {
        traced.check_client(client, &HELLO);
        traced.check_root(client);
        traced.expect(
            client,
            trace_ids.insert(client.trace_id()),
            &format!(
                "a trace_id of its own, apart from the other background calls' and from \
                 the caller's server span\n  server span: {server}"
            ),
        );
    }
}

#[test]
fn concurrent_fanout_requests_give_exactly_the_expected_tree() {
    // 100 requests to the caller at once (10 threads), each fanning out to 3 calls on
    // goroutines its handler starts.
    const THREADS: usize = 10;
    const PER_THREAD: usize = 10;
    const REQUESTS: usize = THREADS * PER_THREAD;
    let case = FANOUT;
    let mut session = Session::start(&[]);
    let caller = session.caller.addr();
    let ports: HashSet<u64> = thread::scope(|scope| {
        let clients: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|_| u64::from(call(caller, &case).local_addr.port()))
                        .collect::<Vec<_>>()
                })
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
    assert_eq!(ports.len(), REQUESTS, "one connection per request");
    let traced = session.stop();

    let servers = traced.caller_servers();
    traced.expect_len("server spans of the caller", &servers, REQUESTS);
    let mut by_span_id = HashMap::new();
    for server in &servers {
        traced.expect_eq(
            server,
            "url.path of the caller's server span",
            server.attr_str("url.path"),
            Some(case.path().as_str()),
        );
        traced.expect(
            server,
            server
                .attr_u64("client.port")
                .is_some_and(|port| ports.contains(&port)),
            "client.port: the port of one of the requests sent",
        );
        traced.expect(
            server,
            by_span_id.insert(server.span_id(), *server).is_none(),
            "a distinct span_id",
        );
    }

    let clients = traced.clients();
    traced.expect_len("client spans", &clients, REQUESTS * case.calls);
    let mut children: HashMap<Option<&str>, usize> = HashMap::new();
    for client in &clients {
        traced.check_client(client, &case.call);
        let parent_id = client.str_field("parent_span_id");
        let parent = by_span_id.get(&parent_id).unwrap_or_else(|| {
            traced.fail(
                client,
                "parent_span_id: the span_id of a caller's server span",
            )
        });
        traced.check_child(client, parent, case.link);
        let count = children.entry(parent_id).or_default();
        *count += 1;
        traced.expect(
            client,
            *count <= case.calls,
            "at most the calls of one request under one server span",
        );
    }
    assert_eq!(
        children.len(),
        REQUESTS,
        "every server span of the caller has its {} client spans",
        case.calls
    );

    let backend = traced.backend_servers();
    traced.expect_len(
        "server spans of the backend",
        &backend,
        REQUESTS * case.calls,
    );
    for span in &backend {
        traced.expect_eq(
            span,
            "url.path of the backend's server span",
            span.attr_str("url.path"),
            Some("/hello"),
        );
    }

    let output = &traced.output;
    let summary = output
        .summary()
        .unwrap_or_else(|| panic!("no summary line (with `spans_exported=`) on stderr\n{output}"));
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    assert_eq!(
        summary.get("spans_exported"),
        Some(traced.spans.len() as u64),
        "{}",
        summary.line
    );
}

/// The checks above, run on spans written by hand to the spec: a failure here is a bug
/// in this file, not in the tracer. Needs no root.
mod checks {
    use std::os::unix::process::ExitStatusExt;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::process::ExitStatus;

    use serde_json::{Value, json};

    use super::*;

    const CALLER: u32 = 4242;
    const BACKEND: u32 = 4343;
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SERVER: &str = "00f067aa0ba902b7";

    fn traced(spans: &[Value]) -> Traced {
        let stdout: String = spans.iter().map(|span| format!("{span}\n")).collect();
        let output = TracerOutput {
            status: ExitStatus::from_raw(0),
            stdout,
            stderr: String::new(),
        };
        let processes = Processes {
            caller_pid: CALLER,
            backend_pid: BACKEND,
            backend: "127.0.0.1:8080".parse().expect("an address"),
        };
        Traced::new(output, processes)
    }

    fn server(pid: u32, trace: &str, span: &str, path: &str, status: u16) -> Value {
        json!({
            "trace_id": trace, "span_id": span, "parent_span_id": null,
            "name": "GET", "kind": "server",
            "start_time_unix_nano": 1_000_000_u64, "end_time_unix_nano": 9_000_000_u64,
            "status_code": "unset",
            "attributes": {"http.request.method": "GET", "url.path": path,
                           "http.response.status_code": status},
            "resource": {"process.pid": pid}
        })
    }

    /// A client span of the caller, child of `SERVER` by `link`, for `GET url`
    /// answered `status` (or failed when `None`).
    fn client(url: &str, port: u16, status: Option<u16>, link: &str) -> Value {
        let mut span = json!({
            "trace_id": TRACE, "span_id": "b7ad6b7169203331", "parent_span_id": SERVER,
            "name": "GET", "kind": "client",
            "start_time_unix_nano": 2_000_000_u64, "end_time_unix_nano": 8_000_000_u64,
            "status_code": "unset",
            "attributes": {"http.request.method": "GET", "url.full": url,
                           "server.address": "127.0.0.1", "server.port": port,
                           "tracer.parent_link": link},
            "resource": {"process.pid": CALLER}
        });
        match status {
            Some(code) => {
                span["attributes"]["http.response.status_code"] = code.into();
                if code >= 400 {
                    span["status_code"] = "error".into();
                    span["attributes"]["error.type"] = code.to_string().into();
                }
            }
            None => {
                span["status_code"] = "error".into();
                span["attributes"]["error.type"] = "connection_refused".into();
            }
        }
        span
    }

    #[test]
    fn the_checks_accept_spans_written_to_the_spec() {
        let hello = client("http://127.0.0.1:8080/hello", 8080, Some(200), "goroutine");
        traced(&[
            server(CALLER, TRACE, SERVER, "/call/same", 200),
            hello.clone(),
            server(
                BACKEND,
                "a3ce929d0e0e47364bf92f3577b34da6",
                "53995c3f42cd8ad8",
                "/hello",
                200,
            ),
        ])
        .check_call(&SAME);

        let not_found = client(
            "http://127.0.0.1:8080/no/such/page",
            8080,
            Some(404),
            "goroutine",
        );
        traced(&[
            server(CALLER, TRACE, SERVER, "/call/notfound", 200),
            not_found,
            server(
                BACKEND,
                "a3ce929d0e0e47364bf92f3577b34da6",
                "53995c3f42cd8ad8",
                "/no/such/page",
                404,
            ),
        ])
        .check_call(&NOT_FOUND);

        let refused = client("http://127.0.0.1:40000/", 40000, None, "goroutine");
        traced(&[server(CALLER, TRACE, SERVER, "/call/refused", 200), refused])
            .check_call(&REFUSED);

        let mut root = hello;
        root["parent_span_id"] = Value::Null;
        root["trace_id"] = "0e0e47364bf92f3577b34da6a3ce929d".into();
        root["attributes"]["tracer.parent_link"] = LINK_ROOT.into();
        let traced = traced(&[root]);
        let clients = traced.clients();
        traced.check_client(clients[0], &HELLO);
        traced.check_root(clients[0]);
    }

    #[test]
    fn the_checks_reject_a_client_span_with_another_parent_or_link() {
        let rejects = |client: Value| {
            let traced = traced(&[
                server(CALLER, TRACE, SERVER, "/call/same", 200),
                client,
                server(BACKEND, TRACE, "53995c3f42cd8ad8", "/hello", 200),
            ]);
            catch_unwind(AssertUnwindSafe(|| {
                traced.check_call(&SAME);
            }))
            .is_err()
        };
        let good = client("http://127.0.0.1:8080/hello", 8080, Some(200), "goroutine");
        assert!(!rejects(good.clone()), "the good span is accepted");
        let mut other_parent = good.clone();
        other_parent["parent_span_id"] = "ffffffffffffffff".into();
        assert!(rejects(other_parent), "another parent");
        let mut other_link = good.clone();
        other_link["attributes"]["tracer.parent_link"] = LINK_CONTEXT.into();
        assert!(rejects(other_link), "another link");
        let mut with_query = good;
        with_query["attributes"]["url.full"] = "http://127.0.0.1:8080/hello?a=1".into();
        assert!(rejects(with_query), "a query in url.full");
    }
}

// Parent links across goroutines: calls the caller makes off the goroutine serving the
// request (on goroutines it started, or on a long-lived worker that got the request's
// context) are still children of its server span, and
// `tracer.parent_link` says how the tracer found the parent.

#[test]
fn a_call_on_a_goroutine_started_by_the_handler() {
    trace_call(&GO, &[]).check_call(&GO);
}

#[test]
fn fanout_calls_on_goroutines_started_by_the_handler() {
    trace_call(&FANOUT, &[]).check_call(&FANOUT);
}

#[test]
fn a_call_with_the_request_context_on_a_goroutine_the_handler_started() {
    // The context is found before the goroutine's creator.
    trace_call(&GO_CTX, &[]).check_call(&GO_CTX);
}

#[test]
fn a_call_by_a_pool_worker_with_the_request_context() {
    trace_call(&POOL, &[]).check_call(&POOL);
}

#[test]
fn a_call_two_goroutines_down_from_the_handler_with_track_goroutines() {
    trace_call(&DEEP, &["--track-goroutines"]).check_call(&DEEP);
}

/// How long a goroutine that outlives its request may take to make its call.
const LATE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn a_goroutine_that_outlives_its_request_starts_its_own_trace() {
    // The handler of /call/late returns at once; its goroutine calls 300 ms later, after
    // the server span ended: even with the goroutine tree followed, no parent.
    let mut session = Session::start(&["--track-goroutines"]);
    let response = http::get(session.caller.addr(), "/call/late").expect("GET /call/late");
    assert_eq!(response.text(), "started\n", "the answer of /call/late");
    let deadline = std::time::Instant::now() + LATE_CALL_TIMEOUT;
    while session.client_spans_so_far() < 1 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let traced = session.stop();
    let server = traced.only_caller_server("/call/late");
    let clients = traced.clients();
    traced.expect_len("client spans of the late call", &clients, 1);
    traced.check_root(clients[0]);
    traced.expect(
        clients[0],
        clients[0].trace_id() != server.trace_id(),
        "a trace of its own, not the ended request's",
    );
}

#[test]
fn a_call_through_a_custom_transport_is_traced() {
    trace_call(&TRANSPORT, &[]).check_call(&TRANSPORT);
}

#[test]
fn each_request_of_a_redirect_is_a_client_span() {
    // http.Get of the backend's /redirect: a 302, then GET /hello: two requests sent, two
    // client spans, both children of the handler's server span.
    let mut session = Session::start(&[]);
    let response = http::get(session.caller.addr(), "/call/redirect").expect("GET /call/redirect");
    assert_eq!(response.text(), "200\n", "the answer of /call/redirect");
    let traced = session.stop();
    let server = traced.only_caller_server("/call/redirect");
    let clients = traced.clients();
    traced.expect_len("client spans of a followed redirect", &clients, 2);
    let mut statuses: Vec<(Option<u64>, String)> = Vec::new();
    for client in &clients {
        traced.check_child(client, server, LINK_GOROUTINE);
        let url = client.attr_str("url.full").unwrap_or_default();
        let path = url
            .rsplit_once(':')
            .map_or("", |(_, rest)| rest.find('/').map_or("", |at| &rest[at..]));
        statuses.push((
            client.attr_u64("http.response.status_code"),
            path.to_owned(),
        ));
    }
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            (Some(200), "/hello".to_owned()),
            (Some(302), "/redirect".to_owned())
        ],
        "one span per request of the redirect chain"
    );
    traced.expect_len("server spans of the backend", &traced.backend_servers(), 2);
}

#[test]
fn text_format_indents_client_spans_under_their_server_span() {
    // Spans are printed in batches (every 20 ms); a client span and its server span end
    // within a millisecond, so most requests put both in one batch.
    const REQUESTS: usize = 5;
    let mut session = Session::start(&["--format", "text"]);
    for _ in 0..REQUESTS {
        call(session.caller.addr(), &SAME);
    }
    let output = session
        .tracer
        .take()
        .expect("a running tracer")
        .stop()
        .expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "the tracer's exit code\n{output}");
    let lines: Vec<&str> = output.stdout.lines().collect();
    let nested = lines.windows(2).filter(|pair| {
        let (parent, child) = (pair[0], pair[1]);
        let trace = |line: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("trace="))
                .map(str::to_owned)
        };
        !parent.starts_with(' ')
            && parent.contains(" server GET /call/")
            && child.starts_with("  ")
            && child.trim_start().contains(" client GET ")
            && trace(parent).is_some()
            && trace(parent) == trace(child)
    });
    assert!(
        nested.count() >= 1,
        "a client line indented right under its server line\n{output}"
    );
}

/// The calls every Go version must trace alike, and the one that needs `g.parentGoid`
/// (Go 1.21+).
fn check_go_version(version: &str, with_parent_goid: bool) {
    let mut cases = vec![&SAME, &POOL, &REFUSED, &TIMEOUT, &CANCELED];
    if with_parent_goid {
        cases.push(&GO);
    }
    for case in cases {
        let mut session = Session::start_on(version, &[]);
        call(session.caller.addr(), case);
        let traced = session.stop();
        let (_, clients, _) = traced.check_call(case);
        // The error's Go type, named from the binary's type descriptors.
        let error_type = match case.kind {
            "refused" => Some("*net.OpError"),
            "timeout" => Some("timeout"),
            "canceled" => Some("canceled"),
            _ => None,
        };
        if let Some(expected) = error_type {
            traced.expect_eq(
                clients[0],
                &format!("error.type of the {} call with Go {version}", case.kind),
                clients[0].attr_str("error.type"),
                Some(expected),
            );
        }
    }
}

#[test]
fn client_spans_on_the_oldest_go() {
    check_go_version(go::OLDEST, false);
}

#[test]
fn client_spans_on_the_newest_go() {
    check_go_version(go::NEWEST, true);
}

#[test]
fn a_late_call_while_the_connection_serves_its_next_request_starts_its_own_trace() {
    // /call/late returns at once and its goroutine calls 300 ms later; meanwhile the same
    // keep-alive connection (so the same serving goroutine) runs GET /sleep?ms=800. The
    // goroutine's creator is in flight again, but with another request: the goroutine
    // tree knows the late call's request ended, so it has no parent.
    let mut session = Session::start(&["--track-goroutines"]);
    let mut connection =
        tracer_tests::http::Connection::open(session.caller.addr()).expect("connect");
    let late = connection
        .send("GET", "/call/late", &[], &[])
        .expect("GET /call/late");
    assert_eq!(late.text(), "started\n", "the answer of /call/late");
    let next = connection
        .send_last("GET", "/sleep?ms=800", &[], &[])
        .expect("GET /sleep on the same connection");
    assert_eq!(next.status, 200, "the answer of /sleep");
    let traced = session.stop();
    let servers = traced.caller_servers();
    traced.expect_len("server spans of the caller", &servers, 2);
    let clients = traced.clients();
    traced.expect_len("client spans of the late call", &clients, 1);
    traced.check_root(clients[0]);
    for server in servers {
        traced.expect(
            clients[0],
            clients[0].trace_id() != server.trace_id(),
            "a trace of its own: neither the ended request's nor the next one's",
        );
    }
}

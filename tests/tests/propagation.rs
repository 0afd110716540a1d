//! End-to-end: distributed traces.
//! - Extract: trace context that arrives with a request (W3C `traceparent` and
//!   `tracestate`, B3 single and multiple headers) decides the server span's trace and
//!   parent, and its sampling; malformed headers are ignored.
//! - Inject: every outgoing request of a traced process carries `traceparent` naming its
//!   client span, so that services A -> B -> C (separate processes, traced by one tracer
//!   or by one tracer each) form one trace per request; an untraced service receives it
//!   too; `--read-only` sends nothing and loads no program that changes what is sent.
//!
//! Covered on Go 1.19 and 1.23 (bucket maps) and Go 1.24 and 1.27 (swiss maps). The
//! fixture's `GET /chain` calls the next service's `/chain`; the last one answers with the
//! headers it received. These tests need root.

use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use tracer_tests::chain::{
    self, chain_request, check_chains, of_kind, parent_of, received_traceparent, trace,
};
use tracer_tests::go::{self, Toolchain};
use tracer_tests::http;
use tracer_tests::process::{HTTP_SERVER_FIXTURE, HttpServer};
use tracer_tests::span::Span;
use tracer_tests::tracer::{self, ATTACH_TIMEOUT, RUN_TIMEOUT, Tracer, TracerOutput};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// One request sent with `headers`, and what its server span must say.
struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
}

enum Expect {
    /// A child of the remote span `parent` in trace `trace`, with `trace_state`.
    Child {
        trace: String,
        parent: &'static str,
        trace_state: Option<&'static str>,
    },
    /// A root span of a new trace.
    Root,
    /// Not exported: the caller decided not to sample.
    NotSampled,
}

fn child(trace: &str, parent: &'static str, trace_state: Option<&'static str>) -> Expect {
    Expect::Child {
        trace: trace.to_owned(),
        parent,
        trace_state,
    }
}

fn case(name: &'static str, headers: &[(&'static str, &str)], expect: Expect) -> Case {
    Case {
        name,
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        expect,
    }
}

/// Headers that are not trace context, enough to spread a header map over several
/// groups (buckets).
fn many_other_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Accept", "*/*"),
        ("Accept-Language", "en"),
        ("Accept-Encoding", "identity"),
        ("Cache-Control", "no-cache"),
        ("X-Request-Id", "abc"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Custom-One", "1"),
        ("X-Custom-Two", "2"),
        ("X-Custom-Three", "3"),
        ("Referer", "http://example.invalid/"),
        ("Pragma", "no-cache"),
        ("Connection", "keep-alive"),
    ]
}

fn cases() -> Vec<Case> {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let mut crowded: Vec<(&'static str, &str)> = many_other_headers();
    crowded.push(("traceparent", traceparent.as_str()));
    crowded.push(("User-Agent", "crowded/1.0"));
    let b3_short_trace = format!("{:0>32}", &TRACE[16..]);
    vec![
        case(
            "a valid traceparent and tracestate",
            &[
                ("traceparent", traceparent.as_str()),
                ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            ],
            child(
                TRACE,
                PARENT,
                Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            ),
        ),
        case(
            "a traceparent among many other headers",
            &crowded,
            child(TRACE, PARENT, None),
        ),
        case(
            "a b3 single header",
            &[("b3", &format!("{TRACE}-{PARENT}-1"))],
            child(TRACE, PARENT, None),
        ),
        case(
            "b3 multiple headers with a 64-bit trace id",
            &[
                ("X-B3-TraceId", &TRACE[16..]),
                ("X-B3-SpanId", PARENT),
                ("X-B3-Sampled", "1"),
            ],
            child(&b3_short_trace, PARENT, None),
        ),
        case(
            "an uppercase traceparent",
            &[(
                "traceparent",
                &format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            )],
            Expect::Root,
        ),
        case(
            "a traceparent with an all-zero trace id",
            &[("traceparent", &format!("00-{:032}-{PARENT}-01", 0))],
            Expect::Root,
        ),
        case(
            "a short traceparent",
            &[("traceparent", &format!("00-{TRACE}-{}-01", &PARENT[1..]))],
            Expect::Root,
        ),
        case(
            "a tracestate without a traceparent",
            &[("tracestate", "congo=t61rcWkgMzE")],
            Expect::Root,
        ),
        case(
            "a malformed b3 header",
            &[("b3", &format!("{TRACE}-{PARENT}-x"))],
            Expect::Root,
        ),
        case(
            "an unsampled traceparent",
            &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))],
            Expect::NotSampled,
        ),
        case("b3 deny", &[("b3", "0")], Expect::NotSampled),
    ]
}

/// Sends every case to `GET /hello` in order, one connection each.
fn send_all(addr: SocketAddr, cases: &[Case]) {
    for case in cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = http::request(addr, "GET", "/hello", &headers, &[])
            .unwrap_or_else(|e| panic!("{}: request failed: {e}", case.name));
        assert_eq!(response.status, 200, "{}", case.name);
    }
}

fn run(go_version: &str) {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go_version).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("start the tracer");
    let attached = tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("the tracer attaches");
    assert!(
        attached.contains("propagation=[extract=on (w3c, b3)"),
        "the attached line shows the propagation state: {attached}"
    );
    let cases = cases();
    send_all(server.addr(), &cases);
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let mut spans: Vec<Span> = output.spans().expect("JSON spans");
    spans.sort_by_key(|s| s.start_ns().unwrap_or(0));
    let exported: Vec<&Case> = cases
        .iter()
        .filter(|c| !matches!(c.expect, Expect::NotSampled))
        .collect();
    assert_eq!(
        spans.len(),
        exported.len(),
        "one span per sampled request:\n{}",
        output.stdout
    );
    for (span, case) in spans.iter().zip(&exported) {
        check(span, case);
    }
    let summary = output.summary().expect("a summary line");
    let not_sampled = (cases.len() - exported.len()) as u64;
    assert_eq!(
        summary.get("sampled_out"),
        Some(not_sampled),
        "{}",
        summary.line
    );
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
}

fn check(span: &Span, case: &Case) {
    let name = case.name;
    assert_eq!(span.kind(), Some("server"), "{name}: {span}");
    let parent = span.field("parent_span_id").and_then(|v| v.as_str());
    let trace_state = span.str_field("trace_state");
    match &case.expect {
        Expect::Child {
            trace,
            parent: want_parent,
            trace_state: want_state,
        } => {
            assert_eq!(span.trace_id(), Some(trace.as_str()), "{name}: {span}");
            assert_eq!(parent, Some(*want_parent), "{name}: {span}");
            assert_eq!(trace_state, *want_state, "{name}: {span}");
        }
        Expect::Root => {
            assert_eq!(parent, None, "{name}: a root span: {span}");
            assert_ne!(span.trace_id(), Some(TRACE), "{name}: a new trace: {span}");
            assert_eq!(trace_state, None, "{name}: {span}");
        }
        Expect::NotSampled => unreachable!("not exported"),
    }
    if case.headers.iter().any(|(k, _)| *k == "User-Agent") {
        assert_eq!(
            span.attr_str("user_agent.original"),
            Some("crowded/1.0"),
            "{name}: the user agent is still found: {span}"
        );
    }
}

#[test]
fn incoming_trace_context_go_1_24() {
    run(go::DEFAULT);
}

#[test]
fn incoming_trace_context_go_1_19_bucket_maps() {
    run(go::OLDEST);
}

#[test]
fn incoming_trace_context_go_1_27() {
    run(go::NEWEST);
}

/// A chain of `len` services built by Go `version` (see [`chain::start`]).
fn start_chain(version: &str, len: usize) -> Vec<HttpServer> {
    let toolchain = Toolchain::find(version).expect("Go toolchain");
    let exe = toolchain
        .build_fixture(HTTP_SERVER_FIXTURE)
        .expect("build the net_http_server fixture");
    chain::start(&toolchain, &exe, len)
}

/// Stops `tracer` and returns its spans; checks it dropped nothing.
fn stop(tracer: Tracer) -> Vec<Span> {
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    output.spans().expect("JSON spans")
}

/// Stops `tracer`, checks that it lost nothing and injected `injected` headers, and
/// returns its spans.
fn stop_injected(tracer: Tracer, injected: usize) -> Vec<Span> {
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    assert_eq!(
        summary.get("injected"),
        Some(injected as u64),
        "{}",
        summary.line
    );
    output.spans().expect("JSON spans")
}

fn one_tracer_chain(version: &str, requests: usize) {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(version, 3);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let tracer = trace(&pids, &[]);
    let attached = tracer.stderr();
    assert!(
        attached.contains("inject=on"),
        "injection is on for the services: {attached}"
    );
    let bodies: Vec<String> = (0..requests)
        .map(|_| chain_request(services[0].addr()))
        .collect();
    let spans = stop_injected(tracer, 2 * requests);
    let traces = check_chains(&spans, &pids, requests);
    // What the last service received names the last client span.
    for body in &bodies {
        let received = received_traceparent(body).expect("C received a traceparent");
        let named = traces.iter().find(|t| {
            let client = t[t.len() - 2];
            received
                == format!(
                    "00-{}-{}-01",
                    client.trace_id().unwrap_or(""),
                    client.span_id().unwrap_or("")
                )
        });
        assert!(
            named.is_some(),
            "{received} names the last client span of a chain"
        );
    }
}

#[test]
fn three_services_traced_by_one_tracer_form_one_trace_per_request() {
    one_tracer_chain(go::DEFAULT, 5);
}

#[test]
fn three_services_on_go_1_19_form_one_trace_per_request() {
    one_tracer_chain(go::OLDEST, 3);
}

#[test]
fn three_services_on_go_1_23_form_one_trace_per_request() {
    one_tracer_chain("1.23.9", 3);
}

#[test]
fn three_services_on_go_1_27_form_one_trace_per_request() {
    one_tracer_chain(go::NEWEST, 3);
}

#[test]
fn three_services_traced_by_three_tracers_form_one_trace_per_request() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 3);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let tracers: Vec<Tracer> = pids.iter().map(|&pid| trace(&[pid], &[])).collect();
    for _ in 0..3 {
        chain_request(services[0].addr());
    }
    let spans: Vec<Span> = tracers.into_iter().flat_map(stop).collect();
    check_chains(&spans, &pids, 3);
}

#[test]
fn concurrent_requests_through_three_services_each_form_one_trace() {
    const REQUESTS: usize = 200;
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 3);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let tracer = trace(&pids, &[]);
    let addr = services[0].addr();
    let threads: Vec<_> = (0..REQUESTS)
        .map(|_| std::thread::spawn(move || chain_request(addr)))
        .collect();
    for thread in threads {
        thread.join().expect("a request thread");
    }
    // Each request's two calls carry their header, whichever thread sends them.
    let spans = stop_injected(tracer, 2 * REQUESTS);
    let traces = check_chains(&spans, &pids, REQUESTS);
    let mut ids: Vec<&str> = traces.iter().filter_map(|t| t[0].trace_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), REQUESTS, "a trace of its own per request");
}

#[test]
fn an_untraced_service_receives_the_callers_traceparent() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let tracer = trace(&[services[0].pid()], &[]);
    let body = chain_request(services[0].addr());
    let spans = stop(tracer);
    let client = *of_kind(&spans, "client")
        .first()
        .unwrap_or_else(|| panic!("a client span: {spans:?}"));
    let expected = format!(
        "00-{}-{}-01",
        client.trace_id().unwrap_or(""),
        client.span_id().unwrap_or("")
    );
    assert_eq!(
        received_traceparent(&body),
        Some(expected.as_str()),
        "{body}"
    );
}

#[test]
fn a_request_that_carries_its_own_traceparent_keeps_it() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let tracer = trace(&[services[0].pid()], &[]);
    let response = http::get(services[0].addr(), "/chain?own=1").expect("GET /chain?own=1");
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let body = response.text();
    let received: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("Traceparent: "))
        .collect();
    assert_eq!(
        received,
        ["Traceparent: 00-11111111111111111111111111111111-2222222222222222-01"],
        "only the program's own traceparent arrives: {body}"
    );
    let summary = output.summary().expect("a summary line");
    assert_eq!(
        summary.get("inject_skipped_present"),
        Some(1),
        "{}",
        summary.line
    );
    assert_eq!(summary.get("injected"), Some(0), "{}", summary.line);
}

#[test]
fn a_request_with_trace_context_continues_its_trace_downstream() {
    // The first service receives a traceparent: its call carries the same trace id, and
    // the next service's span is the child of the first service's client span.
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let tracer = trace(&[services[0].pid()], &[]);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let response = http::request(
        services[0].addr(),
        "GET",
        "/chain",
        &[("traceparent", traceparent.as_str())],
        &[],
    )
    .expect("GET /chain");
    let spans = stop(tracer);
    let client = *of_kind(&spans, "client")
        .first()
        .unwrap_or_else(|| panic!("a client span: {spans:?}"));
    assert_eq!(client.trace_id(), Some(TRACE), "{client}");
    let expected = format!("00-{TRACE}-{}-01", client.span_id().unwrap_or(""));
    assert_eq!(
        received_traceparent(&response.text()),
        Some(expected.as_str()),
        "{}",
        response.text()
    );
}

#[test]
fn the_tracestate_a_trace_came_with_goes_on_with_it() {
    const STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 3);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let tracer = trace(&pids, &[]);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let response = http::request(
        services[0].addr(),
        "GET",
        "/chain",
        &[("traceparent", traceparent.as_str()), ("tracestate", STATE)],
        &[],
    )
    .expect("GET /chain");
    let spans = stop(tracer);
    let body = response.text();
    assert!(
        body.lines()
            .any(|line| line == format!("Tracestate: {STATE}")),
        "the last service received the tracestate: {body}"
    );
    let servers = of_kind(&spans, "server");
    assert_eq!(servers.len(), 3, "{spans:?}");
    for server in servers {
        assert_eq!(server.trace_id(), Some(TRACE), "{server}");
        assert_eq!(server.str_field("trace_state"), Some(STATE), "{server}");
    }
}

/// The `/proc/PID/fdinfo` text of each of process `pid`'s descriptors.
fn fdinfos(pid: u32) -> Vec<String> {
    let dir = fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("the tracer's fdinfo");
    dir.flatten()
        .filter_map(|entry| fs::read_to_string(entry.path()).ok())
        .collect()
}

/// The number after `name` in an fdinfo text.
fn fdinfo_field(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The tracer's loaded BPF programs: `(id, type)` from its file descriptors.
fn loaded_programs(pid: u32) -> Vec<(u32, u32)> {
    let mut programs: Vec<(u32, u32)> = fdinfos(pid)
        .iter()
        .filter_map(|text| {
            Some((
                fdinfo_field(text, "prog_id:")?,
                fdinfo_field(text, "prog_type:")?,
            ))
        })
        .collect();
    programs.sort_unstable();
    programs.dedup();
    programs
}

/// The ids of the BPF maps process `pid` holds open.
fn map_ids(pid: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = fdinfos(pid)
        .iter()
        .filter_map(|text| fdinfo_field(text, "map_id:"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What `bpftool ARGS` printed; fails the test when it fails.
fn bpftool(args: &[&str]) -> Vec<u8> {
    let output = Command::new("bpftool")
        .args(args)
        .output()
        .expect("run bpftool (cargo xtask setup installs it)");
    assert!(
        output.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The kernel's translation of program `id` (`bpftool prog dump xlated`), which names
/// every helper it calls.
fn translated(id: u32) -> String {
    let id = id.to_string();
    String::from_utf8_lossy(&bpftool(&["prog", "dump", "xlated", "id", &id])).into_owned()
}

/// `bpftool -j ARGS`, parsed.
fn bpftool_json(args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = std::iter::once("-j").chain(args.iter().copied()).collect();
    serde_json::from_slice(&bpftool(&args)).expect("bpftool's JSON")
}

/// How many connections are in the socket map of tracer `pid` (`SOCKETS`): those whose
/// messages pass its `sk_msg` program.
fn watched_connections(pid: u32) -> usize {
    for id in map_ids(pid) {
        let id = id.to_string();
        if bpftool_json(&["map", "show", "id", &id])["name"] == "SOCKETS" {
            // A socket map's values (sockets) cannot be read from user space: one entry
            // per key, each with an error for its value.
            let entries = bpftool_json(&["map", "dump", "id", &id]);
            return entries.as_array().expect("a list of entries").len();
        }
    }
    panic!("the tracer holds no SOCKETS map");
}

/// A connection a service opened before the tracer attached (an idle one in its
/// transport's pool) never passes `sock_ops`: the tracer finds it once the service calls
/// its port and adds it to the socket map itself, so the calls it carries from then on
/// carry `traceparent` too.
#[test]
fn connections_opened_before_the_tracer_attached_carry_traceparent() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let body = chain_request(services[0].addr());
    assert_eq!(received_traceparent(&body), None, "untraced yet: {body}");
    let tracer = trace(&[services[0].pid()], &[]);

    // The first call after the attach watches the port, on the pooled connection.
    chain_request(services[0].addr());
    let taken = tracer_tests::poll_until(ATTACH_TIMEOUT, || {
        (watched_connections(tracer.pid()) == 1).then_some(())
    });
    assert!(
        taken.is_some(),
        "the pooled connection joined the socket map\n{}",
        tracer.stderr()
    );
    let bodies: Vec<String> = (0..3).map(|_| chain_request(services[0].addr())).collect();
    assert_eq!(
        watched_connections(tracer.pid()),
        1,
        "the calls reused the pooled connection"
    );
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    assert!(
        output.stderr.contains(&format!(
            "pid {}: 1 connection(s) to port {} opened before it was watched",
            services[0].pid(),
            services[1].addr().port()
        )),
        "{output}"
    );
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    // The first call went out before the connection was taken in, most likely: then it
    // is counted as sent without the header. Every call after the attach is one or the
    // other.
    let injected = summary.get("injected").unwrap_or(0);
    let unsent = summary.get("inject_skipped_unsent").unwrap_or(0);
    eprintln!("injected={injected} inject_skipped_unsent={unsent}");
    assert!((3..=4).contains(&injected), "{}", summary.line);
    assert_eq!(
        injected + unsent,
        4,
        "every call accounted: {}",
        summary.line
    );
    let spans = output.spans().expect("JSON spans");
    let clients = of_kind(&spans, "client");
    for body in &bodies {
        let received = received_traceparent(body)
            .unwrap_or_else(|| panic!("the called service received a traceparent: {body}"));
        let named = clients.iter().any(|client| {
            received
                == format!(
                    "00-{}-{}-01",
                    client.trace_id().unwrap_or(""),
                    client.span_id().unwrap_or("")
                )
        });
        assert!(named, "{received} names a client span: {spans:?}");
    }
}

/// A call on a pooled connection the tracer has not taken in yet goes out without
/// `traceparent`; when no later call on it replaces its record, it is counted at exit.
#[test]
fn a_call_sent_before_its_connection_was_taken_in_is_counted_at_exit() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    chain_request(services[0].addr());
    let tracer = trace(&[services[0].pid()], &[]);
    let body = chain_request(services[0].addr());
    let taken = tracer_tests::poll_until(ATTACH_TIMEOUT, || {
        (watched_connections(tracer.pid()) == 1).then_some(())
    });
    assert!(
        taken.is_some(),
        "the pooled connection joined the socket map"
    );
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    let injected = summary.get("injected").unwrap_or(0);
    let unsent = summary.get("inject_skipped_unsent").unwrap_or(0);
    assert_eq!(injected + unsent, 1, "the call accounted: {}", summary.line);
    assert_eq!(
        injected == 1,
        received_traceparent(&body).is_some(),
        "counted as it went out: {body}"
    );
}

/// Checks that no program in `programs` calls `bpf_probe_write_user`.
fn assert_none_writes_into_processes(programs: &[(u32, u32)]) {
    for &(id, _) in programs {
        assert!(
            !translated(id).contains("probe_write_user"),
            "program {id} writes into processes"
        );
    }
}

/// `BPF_PROG_TYPE_SK_MSG`: a program that sees (and may change) what sockets send.
const SK_MSG: u32 = 16;

/// Only the connections of plain `http` calls pass the socket programs: every message of
/// a connection in the socket map takes the kernel's slower socket-map send path, so a
/// traced service's other connections (databases, gRPC, `https`) are kept out.
#[test]
fn only_connections_to_the_ports_of_http_calls_are_watched() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let other = TcpListener::bind("127.0.0.1:0").expect("a listener that is not HTTP");
    let tracer = trace(&[services[0].pid()], &[]);

    // One call: its connection stays open in the transport's pool.
    let body = chain_request(services[0].addr());
    assert!(received_traceparent(&body).is_some(), "{body}");
    let target = format!("/dial?addr={}", other.local_addr().expect("its address"));
    let response = http::get(services[0].addr(), &target).expect("GET /dial");
    assert_eq!(response.status, 200, "{}", response.text());
    let (mut peer, _) = other.accept().expect("the service's connection");
    let mut ping = [0u8; 5];
    peer.read_exact(&mut ping).expect("the service wrote");
    assert_eq!(&ping, b"ping\n");

    assert_eq!(
        watched_connections(tracer.pid()),
        1,
        "the call's connection, not the other one"
    );
    stop_injected(tracer, 1);
}

#[test]
fn read_only_sends_no_traceparent_and_loads_nothing_that_writes() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 3);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();

    // By default: the socket program is loaded (so the check below can see one).
    let tracer = trace(&pids, &[]);
    let programs = loaded_programs(tracer.pid());
    assert!(
        programs.iter().any(|&(_, kind)| kind == SK_MSG),
        "{programs:?}"
    );
    assert_none_writes_into_processes(&programs);
    stop(tracer);

    let tracer = trace(&pids, &["--read-only"]);
    assert!(
        tracer.stderr().contains("inject=off (--read-only)"),
        "{}",
        tracer.stderr()
    );
    let programs = loaded_programs(tracer.pid());
    assert!(!programs.is_empty(), "the tracer's programs are found");
    assert!(
        programs.iter().all(|&(_, kind)| kind != SK_MSG),
        "no program that changes what sockets send: {programs:?}"
    );
    assert_none_writes_into_processes(&programs);
    let body = chain_request(services[0].addr());
    let spans = stop(tracer);
    assert_eq!(
        received_traceparent(&body),
        None,
        "C received no traceparent: {body}"
    );
    // Without propagation each service starts traces of its own.
    let servers = of_kind(&spans, "server");
    assert_eq!(servers.len(), 3, "{spans:?}");
    assert!(servers.iter().all(|s| parent_of(s).is_none()), "{spans:?}");
}

#[test]
fn doctor_shows_the_propagation_state() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let services = start_chain(go::DEFAULT, 2);
    let pid = services[0].pid().to_string();
    let output = tracer::run(["doctor", "--pid", pid.as_str()], RUN_TIMEOUT).expect("doctor");
    assert_eq!(output.code(), Some(0), "{output}");
    for expected in [
        "propagation: extract=on (w3c, b3), inject=on",
        "net/http.(*Request).write+",
        "(call, emulated): traceparent injection",
        "verdict: tracing will work",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected:?} in\n{output}"
        );
    }
    let output = tracer::run(
        ["doctor", "--pid", pid.as_str(), "--read-only"],
        RUN_TIMEOUT,
    )
    .expect("doctor --read-only");
    assert_eq!(output.code(), Some(0), "{output}");
    assert!(
        output.stdout.contains("inject=off (--read-only)"),
        "{output}"
    );
    let output =
        tracer::run(["doctor", "--binary", "/bin/true"], RUN_TIMEOUT).expect("doctor --binary");
    assert_eq!(output.code(), Some(1), "{output}");
    assert!(output.stdout.contains("is not a Go program"), "{output}");
}

/// A request whose headers arrive in two pieces: Go sizes the header map for the lines it
/// has buffered, so the map grows while the rest is parsed and may still be growing (its
/// entries split between old and new buckets) when the handler runs. With any number of
/// headers, the user agent and the traceparent are found (Go 1.19: bucket maps).
#[test]
fn headers_that_arrive_in_pieces_are_all_read() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::time::Duration;

    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::OLDEST).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("start the tracer");
    tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("the tracer attaches");
    let counts: Vec<usize> = (4..=30).collect();
    for &extra in &counts {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let head = format!(
            "GET /hello HTTP/1.1\r\nHost: {}\r\nX-First: 1\r\n",
            server.addr()
        );
        stream
            .write_all(head.as_bytes())
            .expect("send the first piece");
        stream.flush().expect("flush");
        // Long enough for the server to read and start parsing the first piece.
        std::thread::sleep(Duration::from_millis(30));
        let mut rest = String::new();
        for i in 0..extra {
            rest.push_str(&format!("X-Extra-{i}: {i}\r\n"));
        }
        rest.push_str(&format!("User-Agent: pieces/{extra}\r\n"));
        rest.push_str(&format!("traceparent: 00-{TRACE}-{PARENT}-01\r\n"));
        rest.push_str("Connection: close\r\n\r\n");
        stream.write_all(rest.as_bytes()).expect("send the rest");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("read the response");
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&response)
        );
    }
    let output: TracerOutput = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(
        summary.get("headers_incomplete"),
        Some(0),
        "{}",
        summary.line
    );
    let spans = output.spans().expect("JSON spans");
    assert_eq!(spans.len(), counts.len(), "{output}");
    for &extra in &counts {
        let agent = format!("pieces/{extra}");
        let span = spans
            .iter()
            .find(|s| s.attr_str("user_agent.original") == Some(agent.as_str()))
            .unwrap_or_else(|| panic!("the span with {agent}:\n{output}"));
        assert_eq!(parent_of(span), Some(PARENT), "{span}");
    }
}

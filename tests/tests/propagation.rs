//! End-to-end: trace context that arrives with a request (W3C `traceparent` and
//! `tracestate`, B3 single and multiple headers) decides the server span's trace and
//! parent, and its sampling; malformed headers are ignored. Covered on Go 1.19 (bucket
//! maps) and Go 1.24 and 1.27 (swiss maps). These tests need root.

use std::net::SocketAddr;

use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::process::HttpServer;
use tracer_tests::span::Span;
use tracer_tests::tracer::{ATTACH_TIMEOUT, Tracer, TracerOutput};

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

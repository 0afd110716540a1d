//! Chains of services: the `net_http_server` fixture started several times, each calling
//! the next one's `GET /chain`, traced together; and the checks that their spans form one
//! whole trace per request (tests/tests/propagation.rs, tests/tests/matrix.rs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::go::Toolchain;
use crate::http;
use crate::process::{Fixture, HttpServer};
use crate::span::Span;
use crate::tracer::{ATTACH_TIMEOUT, Tracer};

/// Services running `exe` (the `net_http_server` fixture built by `toolchain`), started
/// last to first: `services[0]` calls `services[1]`, and so on; the last one answers
/// `/chain` with the headers it received.
pub fn start(toolchain: &Toolchain, exe: &Path, len: usize) -> Vec<HttpServer> {
    let mut services: Vec<HttpServer> = Vec::new();
    for _ in 0..len {
        let args: Vec<String> = match services.last() {
            Some(next) => vec!["-backend".into(), format!("http://{}", next.addr())],
            None => Vec::new(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let service = Fixture::spawn(exe, &args)
            .and_then(|fixture| HttpServer::from_fixture(fixture, toolchain.clone()))
            .expect("start a service");
        services.push(service);
    }
    services.reverse();
    services
}

/// `tracer --pid P... --format json ARGS`, attached to every pid.
pub fn trace(pids: &[u32], args: &[&str]) -> Tracer {
    trace_with_env(pids, args, &[])
}

/// [`trace`] with `env` added to the tracer's environment.
pub fn trace_with_env(pids: &[u32], args: &[&str], env: &[(&str, &str)]) -> Tracer {
    let mut command = crate::tracer::command().expect("the tracer binary");
    for pid in pids {
        command.args(["--pid", &pid.to_string()]);
    }
    command.args(["--format", "json"]).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let tracer = Tracer::spawn_command(command).expect("start the tracer");
    for &pid in pids {
        tracer
            .wait_attached(pid, ATTACH_TIMEOUT)
            .expect("the tracer attaches");
    }
    tracer
}

/// `GET /chain` on `addr`: 200, and the body (the last service's request headers).
pub fn chain_request(addr: SocketAddr) -> String {
    let response = http::get(addr, "/chain").expect("GET /chain");
    assert_eq!(response.status, 200, "GET /chain: {}", response.text());
    response.text()
}

/// The `Traceparent` a chain's last service received, if any.
pub fn received_traceparent(body: &str) -> Option<&str> {
    body.lines()
        .find_map(|line| line.strip_prefix("Traceparent: "))
}

/// The spans of `kind` (`server` or `client`).
pub fn of_kind<'a>(spans: &'a [Span], kind: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.kind() == Some(kind)).collect()
}

pub fn pid_of(span: &Span) -> u64 {
    span.resource("process.pid")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

pub fn parent_of(span: &Span) -> Option<&str> {
    span.field("parent_span_id").and_then(|v| v.as_str())
}

/// Checks that `spans` hold exactly `requests` whole traces through `pids` (the first
/// service first): per request, the first service's server span (a root), then for each
/// hop the caller's client span (child of its server span) and the next service's server
/// span (child of that client span), all in one trace; every parent named is printed.
/// Returns the traces, each as its spans in chain order.
pub fn check_chains<'a>(spans: &'a [Span], pids: &[u32], requests: usize) -> Vec<Vec<&'a Span>> {
    let dump = || {
        spans
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let by_id: HashMap<&str, &Span> = spans
        .iter()
        .filter_map(|s| Some((s.span_id()?, s)))
        .collect();
    for span in spans {
        if let Some(parent) = parent_of(span) {
            assert!(
                by_id.contains_key(parent),
                "the parent of a span is printed: {span}\n{}",
                dump()
            );
        }
    }
    let expected = requests * (2 * pids.len() - 1);
    assert_eq!(
        spans.len(),
        expected,
        "spans of {requests} chains through {} services:\n{}",
        pids.len(),
        dump()
    );
    let children = |parent: &Span, kind: &str, pid: u32| -> Vec<&'a Span> {
        spans
            .iter()
            .filter(|s| {
                s.kind() == Some(kind)
                    && pid_of(s) == u64::from(pid)
                    && parent_of(s) == parent.span_id()
            })
            .collect()
    };
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind() == Some("server") && pid_of(s) == u64::from(pids[0]))
        .collect();
    assert_eq!(
        roots.len(),
        requests,
        "server spans of the first service:\n{}",
        dump()
    );
    let mut traces = Vec::new();
    for root in roots {
        assert_eq!(
            parent_of(root),
            None,
            "the first service's span is a root: {root}"
        );
        let mut trace = vec![root];
        let mut server = root;
        for hop in 1..pids.len() {
            let clients = children(server, "client", pids[hop - 1]);
            assert_eq!(
                clients.len(),
                1,
                "one client span under {server}\n{}",
                dump()
            );
            let next = children(clients[0], "server", pids[hop]);
            assert_eq!(
                next.len(),
                1,
                "one server span of service {hop} under {}\n{}",
                clients[0],
                dump()
            );
            for span in [clients[0], next[0]] {
                assert_eq!(
                    span.trace_id(),
                    root.trace_id(),
                    "one trace id along the chain: {span}"
                );
            }
            trace.extend([clients[0], next[0]]);
            server = next[0];
        }
        traces.push(trace);
    }
    traces
}

//! End-to-end: the build matrix. Every Go release the tracer supports (1.19, 1.21 to 1.27)
//! times every way users build (`go build` as is or `-ldflags="-s -w"`, executable or
//! `-buildmode=pie`, pure Go or cgo with the C linker): in each cell two services of the
//! same binary form a chain (A's `GET /chain` calls B's), one tracer traces both, and
//! each request must give A's server span (a root), A's client span (its child), and B's
//! server span (the client span's child, through the injected `traceparent`), with the
//! attributes a user reads.
//!
//! One test per Go release; inside it, cells run two at a time (separate processes,
//! one tracer each). These tests need root and every Go toolchain.

use std::path::Path;
use std::sync::Mutex;
use std::thread;

use tracer_tests::chain::{self, chain_request, check_chains, trace};
use tracer_tests::go::{self, Build, Toolchain};
use tracer_tests::process::{HTTP_SERVER_FIXTURE, HttpServer};
use tracer_tests::span::Span;

/// Requests sent through each cell's chain.
const REQUESTS: usize = 2;
/// Cells traced at once.
const PARALLEL: usize = 2;

/// Traces one cell and returns what is wrong with it, if anything.
fn cell(toolchain: &Toolchain, build: Build) -> Result<(), String> {
    let exe = toolchain
        .build(HTTP_SERVER_FIXTURE, build)
        .map_err(|e| format!("build: {e}"))?;
    chain_of(toolchain, &exe, toolchain.runtime_version())
}

/// Traces a chain of two services running `exe` (built by `toolchain`, saying it was
/// built by `go`) and returns what is wrong with it, if anything.
fn chain_of(toolchain: &Toolchain, exe: &Path, go: &str) -> Result<(), String> {
    let services = chain::start(toolchain, exe, 2);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let tracer = trace(&pids, &[]);
    let attached = tracer.stderr();
    if !attached.contains("inject=on") {
        return Err(format!("injection is not on: {attached}"));
    }
    // The cost model (README "Performance"): every probe on an instruction the kernel
    // emulates, in every release and build.
    if attached.contains("single-stepped") {
        return Err(format!(
            "a probe sits on a single-stepped instruction: {attached}"
        ));
    }
    for _ in 0..REQUESTS {
        chain_request(services[0].addr());
    }
    let output = tracer.stop().map_err(|e| format!("stop the tracer: {e}"))?;
    let summary = output.summary().ok_or("no summary line")?;
    if summary.get("dropped") != Some(0) || summary.get("injected") != Some(REQUESTS as u64) {
        return Err(format!("summary: {}", summary.line));
    }
    let spans = output.spans().map_err(|e| format!("spans: {e}"))?;
    // Panics (the chain checks) are reported per cell by the caller.
    let traces = check_chains(&spans, &pids, REQUESTS);
    for trace in traces {
        let [server_a, client, server_b] = trace[..] else {
            return Err("a trace is not three spans".into());
        };
        for server in [server_a, server_b] {
            expect(server, "http.request.method", "GET")?;
            expect(server, "url.path", "/chain")?;
            expect(server, "network.protocol.version", "1.1")?;
            expect_number(server, "http.response.status_code", 200)?;
            let runtime = server
                .resource("process.runtime.version")
                .and_then(|v| v.as_str());
            if runtime != Some(go) {
                return Err(format!("process.runtime.version {runtime:?}: {server}"));
            }
        }
        let url = format!("http://{}/chain", services[1].addr());
        expect(client, "url.full", &url)?;
        expect_number(client, "http.response.status_code", 200)?;
    }
    Ok(())
}

fn expect(span: &Span, key: &str, value: &str) -> Result<(), String> {
    match span.attr(key).and_then(|v| v.as_str()) {
        Some(found) if found == value => Ok(()),
        found => Err(format!("{key} is {found:?}, not {value:?}: {span}")),
    }
}

fn expect_number(span: &Span, key: &str, value: u64) -> Result<(), String> {
    match span.attr(key).and_then(serde_json::Value::as_u64) {
        Some(found) if found == value => Ok(()),
        found => Err(format!("{key} is {found:?}, not {value}: {span}")),
    }
}

/// Every build of Go `version`, `PARALLEL` at a time; fails listing every failed cell.
fn matrix(version: &str) {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(version).expect("Go toolchain");
    // Build first, one at a time (the builds share Go's cache).
    for build in Build::all() {
        toolchain
            .build(HTTP_SERVER_FIXTURE, build)
            .unwrap_or_else(|e| panic!("Go {version} {build}: {e}"));
    }
    let cells = Mutex::new(Build::all());
    let failures = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let Some(build) = cells.lock().expect("cells").pop() else {
                        break;
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        cell(&toolchain, build)
                    }));
                    let failure = match result {
                        Ok(Ok(())) => continue,
                        Ok(Err(message)) => message,
                        Err(panic) => panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "panicked".to_owned()),
                    };
                    failures
                        .lock()
                        .expect("failures")
                        .push(format!("Go {version} {build}: {failure}"));
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    assert!(
        failures.is_empty(),
        "{} of 8 cells failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn go_1_19() {
    matrix(go::OLDEST);
}

#[test]
fn go_1_21() {
    matrix("1.21.13");
}

#[test]
fn go_1_22() {
    matrix("1.22.10");
}

#[test]
fn go_1_23() {
    matrix("1.23.9");
}

#[test]
fn go_1_24() {
    matrix(go::DEFAULT);
}

#[test]
fn go_1_25() {
    matrix("1.25.5");
}

#[test]
fn go_1_26() {
    matrix("1.26.6");
}

#[test]
fn go_1_27() {
    matrix(go::NEWEST);
}

/// A Go release that did not exist when the tracer was built, in a stripped PIE built with
/// cgo: traced from what the binary says (its function table and type descriptors).
#[test]
fn a_go_release_newer_than_the_tracer() {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::NEWEST).expect("Go toolchain");
    let go = toolchain.runtime_version();
    let future = format!("go1.99.{}", "9".repeat(go.len() - "go1.99.".len()));
    let build = Build {
        stripped: true,
        pie: true,
        cgo: true,
    };
    let exe = toolchain
        .build(HTTP_SERVER_FIXTURE, build)
        .expect("build the fixture");
    let exe = go::relabel(&exe, go, &future).expect("relabel");
    if let Err(failure) = chain_of(&toolchain, &exe, &future) {
        panic!("{future} ({build}): {failure}");
    }
}

/// The tests above cover exactly the versions the other tests know.
#[test]
fn covers_every_go_version() {
    assert_eq!(
        go::ALL,
        [
            go::OLDEST,
            "1.21.13",
            "1.22.10",
            "1.23.9",
            go::DEFAULT,
            "1.25.5",
            "1.26.6",
            go::NEWEST
        ]
    );
}

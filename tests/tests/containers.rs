//! End-to-end: processes in containers (README "Containers and Kubernetes"). A Go service
//! in its own mount and pid namespaces, at a path that exists only inside them, in a
//! cgroup named like a container runtime's, is traced by `--binary` with its inside path
//! and by `--all`; its spans carry the container id from the cgroup path. These tests
//! need root.

use tracer_tests::container::{Container, INSIDE_PATH};
use tracer_tests::go::{self, Toolchain};
use tracer_tests::http;
use tracer_tests::process::HttpServer;
use tracer_tests::span::Span;
use tracer_tests::tracer::{ATTACH_TIMEOUT, Tracer, TracerOutput};

/// A container id for this test run (64 hex digits).
fn container_id(salt: u32) -> String {
    format!("{:08x}{salt:08x}", std::process::id()).repeat(4)
}

fn stop(tracer: Tracer) -> TracerOutput {
    let output = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    output
}

/// The one span of `GET /hello` served in `container`, checked.
fn assert_container_span(spans: &[Span], container: &Container) {
    assert_eq!(spans.len(), 1, "one span: {spans:?}");
    let span = &spans[0];
    assert_eq!(span.attr_str("url.path"), Some("/hello"), "{span}");
    assert_eq!(span.attr_u64("http.response.status_code"), Some(200));
    assert_eq!(
        span.resource("process.pid").and_then(|v| v.as_u64()),
        Some(u64::from(container.pid())),
        "the host's pid of the program: {span}"
    );
    assert_eq!(
        span.resource_str("process.executable.path"),
        Some(INSIDE_PATH),
        "{span}"
    );
    assert_eq!(
        span.resource_str("container.id"),
        Some(container.id()),
        "{span}"
    );
}

#[test]
fn a_service_in_its_own_namespaces_is_traced_by_its_inside_path_and_by_all() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    assert!(
        !std::path::Path::new(INSIDE_PATH).exists(),
        "{INSIDE_PATH} must not exist on the host"
    );
    let toolchain = Toolchain::find(go::DEFAULT).expect("a Go toolchain");
    let exe = toolchain
        .build_fixture("net_http_server")
        .expect("build the fixture");
    let container = Container::start(&toolchain, &exe, &container_id(1), "tracer-tests")
        .expect("start the container");
    // The same program on the host, which `--all --include /app/*` leaves out.
    let host = HttpServer::start(go::DEFAULT).expect("start a host service");

    let tracer =
        Tracer::spawn(["--binary", INSIDE_PATH, "--format", "json"]).expect("start the tracer");
    tracer
        .wait_attached(container.pid(), ATTACH_TIMEOUT)
        .expect("attached to the program in the container");
    let response = http::get(container.server().addr(), "/hello").expect("GET /hello");
    assert_eq!(response.status, 200);
    let output = stop(tracer);
    assert_container_span(&output.spans().expect("JSON spans"), &container);

    let tracer = Tracer::spawn(["--all", "--include", "/app/*", "--format", "json"])
        .expect("start the tracer");
    tracer
        .wait_attached(container.pid(), ATTACH_TIMEOUT)
        .expect("attached to the program in the container");
    for server in [container.server(), &host] {
        let response = http::get(server.addr(), "/hello").expect("GET /hello");
        assert_eq!(response.status, 200);
    }
    let output = stop(tracer);
    assert_container_span(&output.spans().expect("JSON spans"), &container);
}

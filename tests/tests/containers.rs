//! End-to-end: processes in containers (README "Containers and Kubernetes"). A Go service
//! in its own mount and pid namespaces, at a path that exists only inside them, in a
//! cgroup named like a container runtime's, is traced by `--binary` with its inside path
//! and by `--all`; its spans carry the container id from the cgroup path. In a
//! Kubernetes-like cgroup, with a fake kubelet's pod list, they carry the pod's metadata
//! and its service name, and `--all` filters by namespace. These tests need root.

use tracer_tests::container::{Container, INSIDE_PATH};
use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::kubelet::{FakeKubelet, Pod};
use tracer_tests::process::{HttpServer, build_http_server};
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
    let (toolchain, exe) = build_http_server(go::DEFAULT).expect("build the fixture");
    let id = container_id(1);
    let cgroup = format!("tracer-tests/docker-{id}.scope");
    let container = Container::start(&toolchain, &exe, &id, &cgroup).expect("start the container");
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

/// The tracer started with `mode` (e.g. `--all`), JSON spans, and pod metadata from
/// `kubelet` with the token in the file `token`.
fn with_kubelet(mode: &[&str], kubelet: &FakeKubelet, token: &std::path::Path) -> Tracer {
    let url = kubelet.url();
    let token = token.to_str().expect("a UTF-8 path");
    let kube = ["--kube-pods-url", &url, "--kube-token-file", token];
    Tracer::spawn(mode.iter().chain(&kube).chain(&["--format", "json"])).expect("start the tracer")
}

#[test]
fn pods_metadata_from_the_kubelet_names_spans_and_filters_processes() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (toolchain, exe) = build_http_server(go::DEFAULT).expect("build the fixture");
    let id = container_id(2);
    let uid = "5f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
    // The systemd driver's form, as containerd makes it.
    let cgroup = format!(
        "tracer-kubepods.slice/tracer-kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
        uid.replace('-', "_")
    );
    let container = Container::start(&toolchain, &exe, &id, &cgroup).expect("start the container");
    let other = "e".repeat(64);
    let pods = [
        Pod {
            name: "shop-7d9f-x1",
            namespace: "shop-prod",
            uid,
            node: "node-7",
            labels: &[("app.kubernetes.io/name", "shop")],
            containers: &[("app", &id)],
        },
        Pod {
            name: "db-0",
            namespace: "data",
            uid: "00000000-0000-4000-8000-000000000000",
            node: "node-7",
            labels: &[],
            containers: &[("db", &other)],
        },
    ];
    // The first list has no container ids yet (a pod that just started).
    let kubelet = FakeKubelet::start(&pods, 1).expect("start the fake kubelet");
    let token = std::env::temp_dir().join(format!("tracer-kube-token-{}", std::process::id()));
    std::fs::write(&token, "s3cret\n").expect("write a token");
    // The same program on the host, in no namespace: left out.
    let host = HttpServer::start(go::DEFAULT).expect("start a host service");
    let tracer = with_kubelet(
        &["--all", "--include", "namespace:shop-*"],
        &kubelet,
        &token,
    );
    tracer
        .wait_attached(container.pid(), ATTACH_TIMEOUT)
        .expect("attached once the pod is known");
    for server in [container.server(), &host] {
        let response = http::get(server.addr(), "/hello").expect("GET /hello");
        assert_eq!(response.status, 200);
    }
    let output = tracer.stop().expect("the tracer stops");
    let summary = output.summary().expect("a summary line");
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    let spans = output.spans().expect("JSON spans");
    assert_container_span(&spans, &container);
    let span = &spans[0];
    for (key, value) in [
        ("k8s.namespace.name", "shop-prod"),
        ("k8s.pod.name", "shop-7d9f-x1"),
        ("k8s.pod.uid", uid),
        ("k8s.container.name", "app"),
        ("k8s.node.name", "node-7"),
        ("service.name", "shop"),
    ] {
        assert_eq!(span.resource_str(key), Some(value), "{key}: {span}");
    }
    let seen = kubelet.seen();
    assert!(
        seen.len() >= 2,
        "the list was fetched again for the new container: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.line.starts_with("GET /pods ")
            && s.authorization.as_deref() == Some("Bearer s3cret")),
        "{seen:?}"
    );

    // `--binary`: the process is traced at once; its resource gets the pod's metadata
    // when a list that has its container comes.
    let kubelet = FakeKubelet::start(&pods, 1).expect("start the fake kubelet");
    let tracer = with_kubelet(&["--binary", INSIDE_PATH], &kubelet, &token);
    tracer
        .wait_attached(container.pid(), ATTACH_TIMEOUT)
        .expect("attached");
    let named = tracer_tests::poll_until(ATTACH_TIMEOUT, || {
        let response = http::get(container.server().addr(), "/hello").ok()?;
        assert_eq!(response.status, 200);
        std::thread::sleep(std::time::Duration::from_millis(200));
        tracer
            .stdout()
            .contains("\"k8s.pod.name\":\"shop-7d9f-x1\"")
            .then_some(())
    });
    let output = stop(tracer);
    assert!(named.is_some(), "no span named its pod:\n{}", output.stdout);
    let spans = output.spans().expect("JSON spans");
    let last = spans.last().expect("spans");
    assert_eq!(last.resource_str("service.name"), Some("shop"), "{last}");
    assert_eq!(
        last.resource_str("k8s.container.name"),
        Some("app"),
        "{last}"
    );
    let _ = std::fs::remove_file(token);
}

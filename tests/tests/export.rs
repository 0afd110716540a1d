//! End-to-end: spans leave for real back ends (issue 7). A chain of two traced services
//! (server span, client span, the next service's server span with a remote parent, two
//! processes) is exported at once to stdout and to an OTLP receiver — over gRPC and
//! HTTP/protobuf, with and without gzip, with headers, over TLS with a test CA — and
//! every field that arrived, decoded with the official protobuf definitions, is compared
//! with the stdout JSON of the same run. Then Zipkin's v2 model, a back end down at start
//! and for 30 s mid-run (every span delivered or counted), the metrics endpoint, and
//! sampling. These tests need root.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::Value;
use tracer_tests::chain;
use tracer_tests::go::{self, Toolchain};
use tracer_tests::http;
use tracer_tests::process::{HTTP_SERVER_FIXTURE, HttpServer};
use tracer_tests::receiver::{Kind, ReceivedSpan, Receiver, TestCa};
use tracer_tests::span::Span;
use tracer_tests::tracer::{self, STOP_TIMEOUT, Summary, Tracer, TracerOutput};

/// Requests through the chain per run: each makes 3 spans.
const CHAINS: usize = 4;

/// Longest wait for exported spans to arrive.
const ARRIVAL: Duration = Duration::from_secs(20);

/// Two services, the first calling the second, and the tracer on both.
struct Chain {
    services: Vec<HttpServer>,
    tracer: Option<Tracer>,
}

impl Chain {
    /// Starts the services, then `tracer --pid A --pid B --format json ARGS` with `env`.
    /// The caller holds [`tracer_tests::serial`].
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        tracer_tests::require_root();
        let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
        let exe = toolchain
            .build_fixture(HTTP_SERVER_FIXTURE)
            .expect("build the fixture");
        let services = chain::start(&toolchain, &exe, 2);
        let tracer = chain::trace_with_env(
            &services.iter().map(HttpServer::pid).collect::<Vec<_>>(),
            args,
            env,
        );
        Self {
            services,
            tracer: Some(tracer),
        }
    }

    /// `GET /chain` (3 spans), a request carrying trace context with a `tracestate`, and
    /// one answered 503 (an error span): `CHAINS + 2` requests, `3 * CHAINS + 2` spans.
    fn traffic(&self) -> usize {
        for _ in 0..CHAINS {
            chain::chain_request(self.services[0].addr());
        }
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let response = http::request(
            self.services[1].addr(),
            "GET",
            "/hello",
            &[
                ("traceparent", traceparent),
                ("tracestate", "vendor=abc,other=1"),
            ],
            &[],
        )
        .expect("GET /hello");
        assert_eq!(response.status, 200);
        let response = http::get(self.services[1].addr(), "/status/503").expect("GET /status/503");
        assert_eq!(response.status, 503);
        3 * CHAINS + 2
    }

    fn stop(&mut self) -> TracerOutput {
        let output = self
            .tracer
            .take()
            .expect("stopped once")
            .stop()
            .expect("stop the tracer");
        assert_eq!(
            output.code(),
            Some(0),
            "the tracer exits 0\n{}",
            output.stderr
        );
        output
    }
}

/// Every export came with header `name: value`.
fn assert_header(arrivals: &[tracer_tests::receiver::Arrival], name: &str, value: &str) {
    for arrival in arrivals {
        assert_eq!(
            arrival.headers.get(name).map(String::as_str),
            Some(value),
            "{name} with every export"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON value an OTLP attribute value should have been.
fn json_of(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.as_str()),
        Some(any_value::Value::IntValue(n)) => Value::from(*n),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// `attributes` as the JSON object they should equal, value types included.
fn as_json(attributes: &[KeyValue]) -> Value {
    let mut object = serde_json::Map::new();
    for kv in attributes {
        let previous = object.insert(kv.key.clone(), json_of(kv.value.as_ref()));
        assert!(previous.is_none(), "attribute {} twice", kv.key);
    }
    Value::Object(object)
}

/// Every span of `printed` (stdout) arrived once, equal in every field.
fn compare(printed: &[Span], arrived: &[ReceivedSpan]) {
    assert_eq!(
        printed.len(),
        arrived.len(),
        "as many spans arrived as were printed"
    );
    let by_id: HashMap<String, &ReceivedSpan> =
        arrived.iter().map(|r| (hex(&r.span.span_id), r)).collect();
    assert_eq!(by_id.len(), arrived.len(), "no span arrived twice");
    for span in printed {
        let id = span.span_id().expect("span_id");
        let received = by_id
            .get(id)
            .unwrap_or_else(|| panic!("span {id} did not arrive"));
        let otlp = &received.span;
        assert_eq!(
            Some(hex(&otlp.trace_id).as_str()),
            span.trace_id(),
            "{id}: trace id"
        );
        let parent = span.field("parent_span_id").and_then(Value::as_str);
        match parent {
            Some(parent) => assert_eq!(hex(&otlp.parent_span_id), parent, "{id}: parent"),
            None => assert!(otlp.parent_span_id.is_empty(), "{id}: a root span"),
        }
        assert_eq!(Some(otlp.name.as_str()), span.name(), "{id}: name");
        let kind = match span.kind() {
            Some("server") => 2,
            Some("client") => 3,
            other => panic!("{id}: kind {other:?}"),
        };
        assert_eq!(otlp.kind, kind, "{id}: kind");
        assert_eq!(
            Some(otlp.start_time_unix_nano),
            span.start_ns(),
            "{id}: start"
        );
        assert_eq!(Some(otlp.end_time_unix_nano), span.end_ns(), "{id}: end");
        let status = otlp.status.as_ref().map_or(0, |s| s.code);
        let expected = match span.status_code() {
            Some("unset") => 0,
            Some("error") => 2,
            other => panic!("{id}: status {other:?}"),
        };
        assert_eq!(status, expected, "{id}: status");
        assert_eq!(
            otlp.trace_state,
            span.str_field("trace_state").unwrap_or_default(),
            "{id}: trace state"
        );
        // Sampled, and whether the parent is remote (a server span's parent is).
        let remote = parent.is_some() && kind == 2;
        assert_eq!(
            otlp.flags,
            0x101 | if remote { 0x200 } else { 0 },
            "{id}: flags"
        );
        assert_eq!(
            Some(&as_json(&otlp.attributes)),
            span.field("attributes"),
            "{id}: attributes, with their types"
        );
        assert_eq!(
            Some(&as_json(&received.resource.attributes)),
            span.field("resource"),
            "{id}: resource, with its types"
        );
        assert_eq!(received.scope.name, "tracer", "{id}: scope");
        assert!(!received.scope.version.is_empty(), "{id}: scope version");
        assert!(
            received
                .schema_url
                .starts_with("https://opentelemetry.io/schemas/"),
            "{id}: schema URL"
        );
    }
}

/// A directory of this test alone (for its certificate authority).
fn scratch_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracer_tests::workspace_root()
        .join("target")
        .join("export-tests")
        .join(format!("{}-{n}", std::process::id()))
}

/// Waits until `count` OTLP spans arrived at `receiver`.
fn wait_spans(receiver: &Receiver, count: usize) -> Vec<ReceivedSpan> {
    tracer_tests::poll_until(ARRIVAL, || {
        let spans = receiver.spans();
        (spans.len() >= count).then_some(spans)
    })
    .unwrap_or_else(|| {
        panic!(
            "{count} spans did not arrive in {ARRIVAL:?} (got {})",
            receiver.spans().len()
        )
    })
}

/// One OTLP run: the chain's spans to stdout and to a `kind` receiver (TLS when `tls`),
/// configured by `args` and `env` (in which `{url}`, `{base}` and `{ca}` are replaced:
/// the whole URL, scheme host and port, the CA file); checks
/// every field and the summary; returns what arrived.
fn otlp_run(
    kind: Kind,
    tls: bool,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<tracer_tests::receiver::Arrival> {
    let _serial = tracer_tests::serial();
    let dir = scratch_dir();
    let ca = tls.then(|| TestCa::new(&dir).expect("a test CA"));
    let receiver = Receiver::start(kind, ca.as_ref()).expect("start the receiver");
    let (url, base) = (receiver.url(), receiver.base_url());
    let ca_file = ca
        .as_ref()
        .map_or_else(String::new, |ca| ca.ca_file.display().to_string());
    let fill = |s: &str| {
        s.replace("{url}", &url)
            .replace("{base}", &base)
            .replace("{ca}", &ca_file)
    };
    let args: Vec<String> = args.iter().map(|a| fill(a)).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), fill(v)))
        .collect();
    let mut chain = Chain::start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let expected = chain.traffic();
    wait_spans(&receiver, expected);
    let output = chain.stop();
    let printed = output.spans().expect("JSON spans");
    assert_eq!(printed.len(), expected, "stdout spans\n{}", output.stderr);
    let arrived = receiver.spans();
    compare(&printed, &arrived);
    let summary = output.summary().expect("a summary");
    assert_eq!(
        summary.get("exported_otlp"),
        Some(expected as u64),
        "{}",
        summary.line
    );
    assert_eq!(
        summary.get("exported_stdout"),
        Some(expected as u64),
        "{}",
        summary.line
    );
    assert_eq!(summary.get("dropped"), Some(0), "{}", summary.line);
    let _ = std::fs::remove_dir_all(&dir);
    receiver.arrivals()
}

#[test]
fn otlp_grpc_with_a_header_matches_stdout() {
    let arrivals = otlp_run(
        Kind::Grpc,
        false,
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-endpoint",
            "{url}",
            "--otlp-header",
            "x-tenant=shop",
        ],
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=ci,team=web%20shop",
        )],
    );
    assert!(arrivals.iter().all(|a| !a.gzip));
    assert_header(&arrivals, "x-tenant", "shop");
    let request = arrivals[0].otlp.as_ref().expect("an OTLP request");
    let resource = &request.resource_spans[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    let environment = resource
        .iter()
        .find(|kv| kv.key == "deployment.environment");
    assert_eq!(
        environment.map(|kv| json_of(kv.value.as_ref())),
        Some(Value::from("ci")),
        "OTEL_RESOURCE_ATTRIBUTES on the resource"
    );
}

#[test]
fn otlp_grpc_gzip_from_the_environment() {
    let arrivals = otlp_run(
        Kind::Grpc,
        false,
        &[],
        &[
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "{url}"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken"),
        ],
    );
    assert!(
        arrivals.iter().all(|a| a.gzip),
        "every export gzip-compressed"
    );
    assert_header(&arrivals, "authorization", "Bearer t0ken");
}

#[test]
fn otlp_http_protobuf_matches_stdout() {
    let arrivals = otlp_run(
        Kind::Http,
        false,
        &["--exporter", "stdout", "--exporter", "otlp"],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{url}"),
        ],
    );
    assert!(arrivals.iter().all(|a| !a.gzip && a.path == "/v1/traces"));
    assert_header(&arrivals, "content-type", "application/x-protobuf");
}

#[test]
fn otlp_http_gzip_with_a_header_matches_stdout() {
    let arrivals = otlp_run(
        Kind::Http,
        false,
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            "{base}",
            "--otlp-compression",
            "gzip",
            "--otlp-header",
            "x-tenant=shop",
        ],
        &[],
    );
    assert!(arrivals.iter().all(|a| a.gzip));
    assert_header(&arrivals, "x-tenant", "shop");
}

#[test]
fn otlp_grpc_over_tls_with_a_test_ca() {
    otlp_run(
        Kind::Grpc,
        true,
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-endpoint",
            "{url}",
            "--otlp-certificate",
            "{ca}",
        ],
        &[],
    );
}

#[test]
fn otlp_http_over_tls_with_a_test_ca() {
    otlp_run(
        Kind::Http,
        true,
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-protocol",
            "http/protobuf",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{url}"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "{ca}"),
        ],
    );
}

#[test]
fn otlp_over_tls_refuses_an_unknown_ca() {
    // Without the test CA, the receiver's certificate is not trusted: nothing arrives and
    // every span is counted as failed, none silently lost.
    let _serial = tracer_tests::serial();
    let dir = scratch_dir();
    let ca = TestCa::new(&dir).expect("a test CA");
    let receiver = Receiver::start(Kind::Http, Some(&ca)).expect("start the receiver");
    let mut chain = Chain::start(
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            &receiver.base_url(),
        ],
        &[],
    );
    let expected = chain.traffic() as u64;
    let output = chain.stop();
    assert!(
        receiver.spans().is_empty(),
        "nothing arrives over untrusted TLS"
    );
    let summary = output.summary().expect("summary");
    assert_eq!(summary.get("exported_stdout"), Some(expected));
    assert_eq!(summary.get("exported_otlp"), Some(0));
    assert_eq!(
        summary.get("export_failed").unwrap_or(0) + summary.get("export_queue_full").unwrap_or(0),
        expected,
        "every span counted: {}",
        summary.line
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zipkin_spans_follow_the_v2_model() {
    let _serial = tracer_tests::serial();
    let receiver = Receiver::start(Kind::Zipkin, None).expect("start the receiver");
    let mut chain = Chain::start(
        &[
            "--exporter",
            "stdout,zipkin",
            "--zipkin-endpoint",
            &receiver.url(),
        ],
        &[],
    );
    let expected = chain.traffic();
    tracer_tests::poll_until(ARRIVAL, || {
        (receiver.zipkin_spans().len() >= expected).then_some(())
    })
    .expect("the Zipkin spans arrive");
    let output = chain.stop();
    let printed = output.spans().expect("JSON spans");
    let arrived = receiver.zipkin_spans();
    assert_eq!(printed.len(), arrived.len());
    let by_id: HashMap<&str, &Value> = arrived
        .iter()
        .map(|z| (z["id"].as_str().expect("id"), z))
        .collect();
    for span in &printed {
        let id = span.span_id().expect("span_id");
        let z = by_id[id];
        assert_eq!(z["traceId"].as_str(), span.trace_id(), "{id}: traceId");
        assert_eq!(
            z.get("parentId").and_then(Value::as_str),
            span.field("parent_span_id").and_then(Value::as_str),
            "{id}: parentId"
        );
        assert_eq!(z["name"].as_str(), span.name(), "{id}: name");
        let kind = span.kind().map(str::to_ascii_uppercase);
        assert_eq!(z["kind"].as_str(), kind.as_deref(), "{id}: kind");
        let (start, end) = (span.start_ns().expect("start"), span.end_ns().expect("end"));
        assert_eq!(
            z["timestamp"].as_u64(),
            Some(start / 1000),
            "{id}: timestamp µs"
        );
        assert_eq!(
            z["duration"].as_u64(),
            Some(((end - start) / 1000).max(1)),
            "{id}: duration µs"
        );
        assert_eq!(
            z["localEndpoint"]["serviceName"].as_str(),
            span.resource_str("service.name"),
            "{id}: localEndpoint"
        );
        // The peer: the client for a server span, the server for a client span.
        let (address, port) = if span.kind() == Some("server") {
            ("client.address", "client.port")
        } else {
            ("server.address", "server.port")
        };
        assert_eq!(
            z["remoteEndpoint"]["ipv4"].as_str(),
            span.attr_str(address),
            "{id}"
        );
        assert_eq!(
            z["remoteEndpoint"]["port"].as_u64(),
            span.attr_u64(port),
            "{id}"
        );
        // Every attribute and resource attribute a string tag.
        let tags = z["tags"].as_object().expect("tags");
        for section in ["attributes", "resource"] {
            for (key, value) in span
                .field(section)
                .and_then(Value::as_object)
                .expect(section)
            {
                if key == "service.name" {
                    continue;
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(
                    tags.get(key).and_then(Value::as_str),
                    Some(text.as_str()),
                    "{id}: tag {key}"
                );
            }
        }
        let error = span.status_code() == Some("error");
        assert_eq!(tags.contains_key("error"), error, "{id}: error tag");
        assert_eq!(
            tags.get("otel.status_code").and_then(Value::as_str),
            error.then_some("ERROR"),
            "{id}: otel.status_code"
        );
    }
}

/// The tracer's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("VmRSS")
}

/// A counter of the metrics endpoint at `addr`, e.g.
/// `tracer_export_queue_spans{exporter="otlp"}`.
fn scrape(addr: std::net::SocketAddr, series: &str) -> Option<u64> {
    let response = http::get(addr, "/metrics").ok()?;
    let text = response.text();
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[test]
fn a_back_end_down_at_start_and_for_30s_loses_nothing_silently() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let mut receiver = Receiver::start(Kind::Http, None).expect("start the receiver");
    receiver.stop();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut tracer = Some(chain::trace_with_env(
        &[server.pid()],
        &[
            "--exporter",
            "stdout,otlp",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            &receiver.base_url(),
            "--metrics-addr",
            &metrics_addr,
        ],
        // A small queue, so that the outage overflows it.
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    ));
    let said = tracer_tests::poll_until(Duration::from_secs(5), || {
        let stderr = tracer.as_ref().map(Tracer::stderr).unwrap_or_default();
        stderr.contains("otlp: back end unreachable").then_some(())
    });
    assert!(
        said.is_some(),
        "a back end down at start is said at once\n{}",
        tracer.as_ref().map(Tracer::stderr).unwrap_or_default()
    );
    let metrics: std::net::SocketAddr = metrics_addr.parse().expect("addr");
    let mut sent = 0u64;
    let mut send = |n: usize| {
        for _ in 0..n {
            let response = http::get(server.addr(), "/hello").expect("GET /hello");
            assert_eq!(response.status, 200);
            sent += 1;
        }
    };
    // Down at start: the spans wait.
    send(30);
    receiver.resume().expect("the receiver comes up");
    wait_spans(&receiver, 30);
    send(30);
    wait_spans(&receiver, 60);

    // Down for 30 s under a steady load (10 requests a second): the queue overflows.
    receiver.stop();
    let tracer_pid = tracer.as_ref().map_or(0, Tracer::pid);
    let rss_before = rss_kib(tracer_pid);
    let outage = Instant::now();
    for _ in 0..300 {
        send(1);
        std::thread::sleep(Duration::from_millis(100));
        if outage.elapsed() >= Duration::from_secs(30) {
            break;
        }
    }
    while outage.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_during = rss_kib(tracer_pid);
    assert!(
        rss_during < rss_before + 32 * 1024,
        "memory stays bounded while the back end is down: {rss_before} KiB -> {rss_during} KiB"
    );
    let queued =
        scrape(metrics, "tracer_export_queue_spans{exporter=\"otlp\"}").expect("the queue gauge");
    assert!(queued <= 100 + 50, "the queue is bounded: {queued}");
    let errors = scrape(metrics, "tracer_export_errors_total{exporter=\"otlp\"}")
        .expect("the error counter");
    assert!(errors > 0, "failed exports are counted");

    // Up again: the spans resume.
    let before = receiver.spans().len();
    receiver.resume().expect("the receiver comes up again");
    send(30);
    tracer_tests::poll_until(ARRIVAL, || {
        let empty = scrape(metrics, "tracer_export_queue_spans{exporter=\"otlp\"}") == Some(0);
        (empty && receiver.spans().len() > before + 30).then_some(())
    })
    .expect("the spans after the outage arrive and the queue empties");
    let output = tracer
        .take()
        .expect("running")
        .stop()
        .expect("stop the tracer");
    assert_eq!(output.code(), Some(0));
    let summary: Summary = output.summary().expect("summary");
    let arrived = receiver.spans();
    let ids: HashSet<Vec<u8>> = arrived.iter().map(|s| s.span.span_id.clone()).collect();
    assert_eq!(ids.len(), arrived.len(), "no span arrived twice");
    let arrived = arrived.len() as u64;
    assert_eq!(
        summary.get("exported_stdout"),
        Some(sent),
        "stdout kept up: {}",
        summary.line
    );
    assert_eq!(
        summary.get("exported_otlp"),
        Some(arrived),
        "{}",
        summary.line
    );
    let lost =
        summary.get("export_queue_full").unwrap_or(0) + summary.get("export_failed").unwrap_or(0);
    assert!(
        lost > 0,
        "the outage overflowed the queue: {}",
        summary.line
    );
    assert_eq!(
        arrived + lost,
        sent,
        "every span arrived or was counted as dropped: {}",
        summary.line
    );
    assert_eq!(summary.get("dropped"), Some(lost), "{}", summary.line);
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The trace id's last 8 bytes against the ratio: the rule every tracer applies.
fn below_ratio(trace_id: &str, ratio: f64) -> bool {
    let low = u64::from_str_radix(&trace_id[16..], 16).expect("hex trace id");
    (low as f64) < ratio * u64::MAX as f64
}

/// A trace id whose sampling by ratio 0.25 is `sampled` (varied by `n`).
fn trace_id(n: u64, sampled: bool) -> String {
    let low: u64 = if sampled { n } else { u64::MAX - n };
    format!("{:016x}{low:016x}", 0x1234_5678_9abc_def0u64 + n)
}

#[test]
fn sampling_keeps_a_quarter_and_follows_the_caller() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = chain::trace_with_env(&[server.pid()], &["--sample-ratio", "0.25"], &[]);
    const REQUESTS: u64 = 4000;
    for _ in 0..REQUESTS {
        let response = http::get(server.addr(), "/hello").expect("GET /hello");
        assert_eq!(response.status, 200);
    }
    // Callers that decided: sampled (ids the ratio would drop), not sampled (ids it
    // would keep).
    const DECIDED: u64 = 100;
    for n in 0..DECIDED {
        for (sampled, flags) in [(true, "01"), (false, "00")] {
            let traceparent = format!("00-{}-00f067aa0ba902b7-{flags}", trace_id(n, !sampled));
            let response = http::request(
                server.addr(),
                "GET",
                "/hello",
                &[("traceparent", traceparent.as_str())],
                &[],
            )
            .expect("GET /hello");
            assert_eq!(response.status, 200);
        }
    }
    let output = tracer.stop().expect("stop the tracer");
    let spans = output.spans().expect("spans");
    let summary = output.summary().expect("summary");
    let (remote, local): (Vec<&Span>, Vec<&Span>) = spans
        .iter()
        .partition(|s| s.field("parent_span_id").and_then(Value::as_str).is_some());
    let kept = local.len() as f64 / REQUESTS as f64;
    assert!(
        (0.21..=0.29).contains(&kept),
        "about a quarter of {REQUESTS} traces kept, got {kept}"
    );
    for span in &local {
        assert!(
            below_ratio(span.trace_id().expect("trace id"), 0.25),
            "the decision is the trace id's: the same trace id, the same decision anywhere"
        );
    }
    assert_eq!(
        remote.len() as u64,
        DECIDED,
        "every request whose caller sampled it is kept, whatever the ratio"
    );
    assert!(
        remote
            .iter()
            .all(|s| !below_ratio(s.trace_id().expect("id"), 0.25))
    );
    assert_eq!(
        summary.get("sampled_out"),
        Some(REQUESTS + 2 * DECIDED - spans.len() as u64),
        "{}",
        summary.line
    );
    assert_eq!(
        summary.get("sampled_out_in_kernel"),
        summary.get("sampled_out"),
        "every unsampled span is left out in the kernel: {}",
        summary.line
    );
}

#[test]
fn a_sampler_that_is_not_parent_based_ignores_the_caller() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = chain::trace_with_env(
        &[server.pid()],
        &[],
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ],
    );
    for n in 0..50 {
        for sampled in [true, false] {
            let traceparent = format!("00-{}-00f067aa0ba902b7-01", trace_id(n, sampled));
            http::request(
                server.addr(),
                "GET",
                "/hello",
                &[("traceparent", traceparent.as_str())],
                &[],
            )
            .expect("GET /hello");
        }
    }
    let output = tracer.stop().expect("stop the tracer");
    let spans = output.spans().expect("spans");
    assert_eq!(spans.len(), 50, "the ratio decides, not the caller's flag");
    assert!(
        spans
            .iter()
            .all(|s| below_ratio(s.trace_id().expect("id"), 0.25))
    );
}

#[test]
fn bad_exporter_settings_are_usage_errors() {
    for (args, env, needle) in [
        (vec!["--pid", "1", "--exporter", "jaeger"], vec![], "jaeger"),
        (
            vec!["--pid", "1"],
            vec![("OTEL_EXPORTER_OTLP_COMPRESSION", "br")],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ),
        (
            vec!["--pid", "1", "--otlp-header", "novalue"],
            vec![],
            "--otlp-header",
        ),
        (
            vec!["--pid", "1"],
            vec![("OTEL_TRACES_SAMPLER", "jaeger_remote")],
            "OTEL_TRACES_SAMPLER",
        ),
    ] {
        let mut command = tracer::command().expect("tracer");
        command.args(&args);
        for (k, v) in &env {
            command.env(k, v);
        }
        let output = Tracer::spawn_command(command)
            .expect("start")
            .wait_exit(STOP_TIMEOUT)
            .expect("exits");
        assert_eq!(
            output.code(),
            Some(2),
            "{args:?} {env:?}: usage error\n{}",
            output.stderr
        );
        assert!(
            output.stderr.contains(needle),
            "{needle} named\n{}",
            output.stderr
        );
        assert!(!output.stderr.contains("panicked"));
    }
}

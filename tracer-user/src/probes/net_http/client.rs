//! Go `net/http` client spans: the manifest of the kernel side
//! (`tracer-ebpf/src/probes/net_http/client.rs`) and the mapping of its events to spans
//! with the OpenTelemetry HTTP client semantic conventions.
use compact_str::{CompactString, format_compact};
use tracer_common::probes::net_http::client::{
    LINK_CONTEXT, LINK_GOROUTINE, LINK_GOROUTINE_TREE, LINK_PARENT_GOROUTINE, LINK_ROOT,
};

use crate::{
    pipeline::decode::ClientRecord,
    pipeline::span::{Attributes, Span, SpanKind, Status, joined, split_host_port},
    probes::{Fields, Hook, Site},
};

use super::server::{Mapping, lossy, method_attributes};

/// Functions hooked, see `tracer_common::probes::net_http::client`.
pub const HOOKS: &[Hook] = &[
    Hook {
        symbol: "net/http.send",
        site: Site::Entry,
        program: "net_http_client_start",
        required: false,
        purpose: "start of client spans",
    },
    Hook {
        symbol: "net/http.(*Client).send",
        site: Site::AfterCall("net/http.send"),
        program: "net_http_client_finish",
        required: false,
        purpose: "end of client spans",
    },
];

/// Goroutine creations, followed with `--track-goroutines` so that calls anywhere down a
/// handler's goroutine tree are its children: on the call that queues the new goroutine.
pub const GOROUTINE_CREATED: Hook = Hook {
    symbol: "runtime.newproc.func1",
    site: Site::AtCall("runtime.runqput"),
    program: "runtime_goroutine_created",
    required: false,
    purpose: "parent links down goroutine trees (--track-goroutines)",
};

/// `traceparent` injection into outgoing HTTP/1 requests (off with `--read-only`): on
/// `(*Request).write`'s first call to `Header.writeSubset`, which writes the request's own
/// headers into the connection's `*bufio.Writer` (see
/// `tracer-ebpf/src/probes/net_http/inject.rs`).
pub const INJECT: Hook = Hook {
    symbol: "net/http.(*Request).write",
    site: Site::AtCall("net/http.Header.writeSubset"),
    program: "net_http_client_inject",
    required: false,
    purpose: "traceparent injection into outgoing requests",
};

/// The method an `io.Writer` itab of a `*bufio.Writer` holds: how the injection probe
/// knows the writer's type.
pub const BUFIO_WRITE: &str = "bufio.(*Writer).Write";

/// The methods that make the writer's own writer a transport connection's
/// (`persistConnWriter`), and that connection a TCP one: see
/// `tracer_common::config::ConnLayout`.
pub const PCONN_WRITE: &str = "net/http.persistConnWriter.Write";
pub const TCP_CLOSE: &str = "net.(*TCPConn).Close";

/// Struct members read by the kernel programs (besides `Request.Method`, see the server).
pub const FIELDS: Fields = &[
    ("net/http.Request", &["URL"]),
    ("net/url.URL", &["Scheme", "Host", "Path", "RawQuery"]),
    ("net/http.Response", &["StatusCode"]),
    ("bufio.Writer", &["err", "buf", "n", "wr"]),
    ("net/http.persistConn", &["conn"]),
    ("net.conn", &["fd"]),
    ("net.netFD", &["laddr", "raddr"]),
    ("net.TCPAddr", &["Port"]),
];

/// The value of `tracer.parent_link` for a `LINK_*` constant.
fn link_name(link: u8) -> &'static str {
    match link {
        LINK_ROOT => "root",
        LINK_GOROUTINE => "goroutine",
        LINK_PARENT_GOROUTINE => "parent_goroutine",
        LINK_CONTEXT => "context",
        LINK_GOROUTINE_TREE => "goroutine_tree",
        _ => "unknown",
    }
}

/// `error.type` for the dynamic type of a failed call's error: the type name (e.g.
/// `*net.OpError` for a refused connection), or `timeout` for a deadline that passed
/// (`Client.Timeout`, a context deadline).
fn error_name(type_name: CompactString) -> CompactString {
    match type_name.as_str() {
        "context.deadlineExceededError" | "http.timeoutError" | "*http.timeoutError" => {
            "timeout".into()
        }
        _ => type_name,
    }
}

/// Maps a client event to a span (times still kernel-monotonic). `error_type` names the
/// dynamic type of the call's error, when it failed (see `target::gotype`).
pub fn span(
    record: &ClientRecord<'_>,
    mapping: Mapping,
    error_type: Option<CompactString>,
) -> Span {
    let ev = &*record.head;
    let mut attributes = Attributes::new();
    let mut truncated: Vec<&str> = Vec::new();

    let name = CompactString::const_new(method_attributes(
        record.string(&ev.method),
        &mut attributes,
    ));
    if ev.method.truncated() {
        truncated.push("http.request.method_original");
    }

    // url.full: scheme://host/path, the query only with --capture-query; never the
    // credentials (URL.User is not read).
    let host = lossy(record.string(&ev.host));
    let (scheme, path) = (
        lossy(record.string(&ev.scheme)),
        lossy(record.string(&ev.path)),
    );
    let mut full = joined(&[&scheme, "://", &host, &path]);
    if ev.path.truncated() {
        truncated.push("url.full");
    }
    let query = record.string(&ev.query);
    if mapping.capture_query && !query.is_empty() {
        full.push('?');
        full.push_str(&lossy(query));
        if ev.query.truncated() && !truncated.contains(&"url.full") {
            truncated.push("url.full");
        }
    }
    attributes.push(("url.full", full.into()));

    let (address, port) = split_host_port(&host);
    if !address.is_empty() {
        attributes.push(("server.address", CompactString::from(address).into()));
    }
    let default_port = if record.string(&ev.scheme) == b"https" {
        443
    } else {
        80
    };
    if !address.is_empty() || port.is_some() {
        attributes.push((
            "server.port",
            i64::from(port.unwrap_or(default_port)).into(),
        ));
    }

    let failed = ev.err_itab != 0;
    let error = if failed {
        Some(error_type.map_or_else(|| "_OTHER".into(), error_name))
    } else if ev.status >= 400 {
        Some(format_compact!("{}", ev.status))
    } else {
        None
    };
    if !failed && ev.status != 0 {
        attributes.push(("http.response.status_code", (ev.status as i64).into()));
    }
    let status = if error.is_some() {
        Status::Error
    } else {
        Status::Unset
    };
    if let Some(error) = error {
        attributes.push(("error.type", error.into()));
    }
    attributes.push(("tracer.parent_link", link_name(ev.link).into()));
    if !truncated.is_empty() {
        attributes.push(("tracer.truncated", truncated.join(",").into()));
    }

    let parent = (ev.parent_span_id != [0; 8]).then_some(ev.parent_span_id);
    Span {
        pid: ev.header.pid,
        trace_id: ev.trace_id,
        span_id: ev.span_id,
        parent_span_id: parent,
        trace_state: None,
        name,
        kind: SpanKind::Client,
        start_ns: ev.start_ns,
        end_ns: ev.end_ns,
        status,
        attributes,
        goroutine: ev.header.g,
    }
}

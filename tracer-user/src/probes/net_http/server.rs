//! Go `net/http` server spans: the manifest of the kernel side
//! (`tracer-ebpf/src/probes/net_http/server.rs`) and the mapping of its events to spans
//! with the OpenTelemetry HTTP server semantic conventions.
use std::borrow::Cow;

use compact_str::{CompactString, format_compact};
use tracer_common::{
    config::{ConnLayout, NO_FIELD, ProbeConfig, WINDOW_BYTES},
    probes::net_http::server::{END_FINISHED, END_HIJACKED, END_PANICKED, PATH_LEN, QUERY_LEN},
};

use crate::{
    pipeline::decode::ServerRecord,
    pipeline::span::{Attributes, Span, SpanKind, Status, Value, joined, split_host_port},
    probes::{Fields, Hook, Site},
    target::{dwarf::Offsets, gomap},
};

/// Functions hooked, see `tracer_common::probes::net_http::server`.
pub const HOOKS: &[Hook] = &[
    Hook {
        site: Site::Entry,
        symbol: "net/http.serverHandler.ServeHTTP",
        program: "net_http_server_start",
        required: true,
        purpose: "start of server spans",
    },
    // It reads the request, which finishRequest leaves as it is, and the response's
    // status, which it sets (200) first when the handler wrote none (0 reads as 200):
    // any point it passes once will do.
    Hook {
        site: Site::Once,
        symbol: "net/http.(*response).finishRequest",
        program: "net_http_server_finish",
        required: true,
        purpose: "end of server spans",
    },
    Hook {
        site: Site::Entry,
        symbol: "net/http.(*conn).serve.func1",
        program: "net_http_server_unwind",
        required: false,
        purpose: "spans of handlers that panic or hijack the connection",
    },
    Hook {
        site: Site::Entry,
        symbol: "runtime.gopanic",
        program: "net_http_server_panic",
        required: false,
        purpose: "telling panicked handlers from hijacked connections",
    },
    // HTTP/2, served by the server bundled in net/http (h2_bundle.go up to Go 1.26,
    // net/http/internal/http2 from 1.27): each pair names one function in each layout,
    // only one of which a binary has.
    Hook {
        site: Site::Entry,
        symbol: "net/http.(*http2responseWriter).handlerDone",
        program: "net_http_server_h2_finish",
        required: false,
        purpose: "end of HTTP/2 server spans",
    },
    Hook {
        site: Site::Entry,
        symbol: "net/http/internal/http2.(*responseWriter).handlerDone",
        program: "net_http_server_h2_finish",
        required: false,
        purpose: "end of HTTP/2 server spans",
    },
    Hook {
        site: Site::Entry,
        symbol: "net/http.(*http2serverConn).runHandler.func1",
        program: "net_http_server_h2_unwind",
        required: false,
        purpose: "HTTP/2 spans of handlers that panic",
    },
    Hook {
        site: Site::Entry,
        symbol: "net/http/internal/http2.(*serverConn).runHandler.func1",
        program: "net_http_server_h2_unwind",
        required: false,
        purpose: "HTTP/2 spans of handlers that panic",
    },
];

/// The response writer of HTTP/2 requests and its state, in each layout.
const H2_WRITERS: &[(&str, &str)] = &[
    (
        "net/http.http2responseWriter",
        "net/http.http2responseWriterState",
    ),
    (
        "net/http/internal/http2.responseWriter",
        "net/http/internal/http2.responseWriterState",
    ),
];

/// Struct members read by the kernel programs.
pub const FIELDS: Fields = &[
    ("runtime.g", &["goid", "parentGoid"]),
    (
        "net/http.Request",
        &[
            "Method",
            "RequestURI",
            "ProtoMajor",
            "ProtoMinor",
            "Header",
            "Host",
            "RemoteAddr",
            "TLS",
            "Pattern",
            "ctx",
        ],
    ),
    ("net/http.response", &["status"]),
    ("net/http.http2responseWriter", &["rws"]),
    ("net/http.http2responseWriterState", &["status"]),
    ("net/http/internal/http2.responseWriter", &["rws"]),
    ("net/http/internal/http2.responseWriterState", &["status"]),
];

/// Members that exist only in some Go versions.
const OPTIONAL_FIELDS: &[(&str, &str)] = &[
    // HTTP/2 server spans only, in one of two layouts.
    ("net/http.http2responseWriter", "rws"),
    ("net/http.http2responseWriterState", "status"),
    ("net/http/internal/http2.responseWriter", "rws"),
    ("net/http/internal/http2.responseWriterState", "status"),
    ("net/http.Request", "Pattern"),
    // Go 1.21+.
    ("runtime.g", "parentGoid"),
    // Parent links through contexts only.
    ("net/http.Request", "ctx"),
    // Client spans only: without them, client probes are not attached.
    ("net/http.Request", "URL"),
    ("net/url.URL", "Scheme"),
    ("net/url.URL", "Host"),
    ("net/url.URL", "Path"),
    ("net/url.URL", "RawQuery"),
    ("net/http.Response", "StatusCode"),
    // Injection only.
    ("bufio.Writer", "err"),
    ("bufio.Writer", "buf"),
    ("bufio.Writer", "n"),
    ("bufio.Writer", "wr"),
    ("net/http.persistConn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "laddr"),
    ("net.netFD", "raddr"),
    ("net.TCPAddr", "Port"),
];

/// A struct layout the kernel programs cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "struct member {strukt}.{member} is not in the binary's DWARF, its type descriptors or the layout table"
    )]
    Missing {
        strukt: &'static str,
        member: &'static str,
    },
    #[error(
        "struct member {strukt}.{member} is at offset {offset}, beyond what the kernel programs read ({limit} bytes)"
    )]
    TooFar {
        strukt: &'static str,
        member: &'static str,
        offset: u64,
        limit: u32,
    },
}

/// Choices of the command line that change how events become spans.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mapping {
    /// Keep `url.query` (`--capture-query`).
    pub capture_query: bool,
}

/// Offsets of one struct's members, and how many bytes of the struct cover them all.
struct Layout<'a> {
    offsets: &'a Offsets,
    strukt: &'static str,
    window: u32,
}

impl<'a> Layout<'a> {
    fn new(offsets: &'a Offsets, strukt: &'static str) -> Self {
        Self {
            offsets,
            strukt,
            window: 0,
        }
    }

    /// The offset of `member` (`size` bytes), widening the window to cover it.
    fn field(&mut self, member: &'static str, size: u32) -> Result<u32, LayoutError> {
        let strukt = self.strukt;
        let Some(&offset) = self.offsets.get(&(strukt.to_owned(), member.to_owned())) else {
            if OPTIONAL_FIELDS.contains(&(strukt, member)) {
                return Ok(NO_FIELD);
            }
            return Err(LayoutError::Missing { strukt, member });
        };
        let end = offset + u64::from(size);
        if offset % 8 != 0 || end > u64::from(WINDOW_BYTES) {
            return Err(LayoutError::TooFar {
                strukt,
                member,
                offset,
                limit: WINDOW_BYTES,
            });
        }
        self.window = self.window.max(end as u32);
        Ok(offset as u32)
    }
}

const STRING: u32 = 16;
const WORD: u32 = 8;
const INTERFACE: u32 = 16;

/// Builds the kernel configuration from the binary's struct offsets.
pub fn config(offsets: &Offsets) -> Result<ProbeConfig, LayoutError> {
    let mut g = Layout::new(offsets, "runtime.g");
    let g_goid = g.field("goid", WORD)?;
    let g_parent_goid = g.field("parentGoid", WORD)?;
    let resp_status = Layout::new(offsets, "net/http.response").field("status", WORD)?;
    let mut req = Layout::new(offsets, "net/http.Request");
    let mut url = Layout::new(offsets, "net/url.URL");
    let resp_status_code = Layout::new(offsets, "net/http.Response").field("StatusCode", WORD)?;
    let mut bufio = Layout::new(offsets, "bufio.Writer");
    let (bufio_err, bufio_buf, bufio_n) = (
        bufio.field("err", STRING)?,
        bufio.field("buf", 3 * WORD)?,
        bufio.field("n", WORD)?,
    );
    let mut fd = Layout::new(offsets, "net.netFD");
    let conn = ConnLayout {
        writer_wr: bufio.field("wr", INTERFACE)?,
        pconn_conn: Layout::new(offsets, "net/http.persistConn").field("conn", INTERFACE)?,
        conn_fd: Layout::new(offsets, "net.conn").field("fd", WORD)?,
        fd_laddr: fd.field("laddr", INTERFACE)?,
        fd_raddr: fd.field("raddr", INTERFACE)?,
        addr_port: Layout::new(offsets, "net.TCPAddr").field("Port", WORD)?,
        // Set by the caller when injection is on.
        pconn_write: 0,
        tcp_close: 0,
    };
    // HTTP/2: the first layout whose writer and state are both described.
    let mut h2 = (NO_FIELD, NO_FIELD);
    for (writer, state) in H2_WRITERS {
        let rws = Layout::new(offsets, writer).field("rws", WORD)?;
        let status = Layout::new(offsets, state).field("status", WORD)?;
        if rws != NO_FIELD && status != NO_FIELD {
            h2 = (rws, status);
            break;
        }
    }
    Ok(ProbeConfig {
        g_goid,
        req_method: req.field("Method", STRING)?,
        req_request_uri: req.field("RequestURI", STRING)?,
        req_proto_major: req.field("ProtoMajor", WORD)?,
        req_proto_minor: req.field("ProtoMinor", WORD)?,
        req_host: req.field("Host", STRING)?,
        req_remote_addr: req.field("RemoteAddr", STRING)?,
        req_tls: req.field("TLS", WORD)?,
        req_pattern: req.field("Pattern", STRING)?,
        req_header: req.field("Header", WORD)?,
        header_map: gomap::header_map_layout(offsets).unwrap_or_default(),
        resp_status,
        req_url: req.field("URL", WORD)?,
        url_scheme: url.field("Scheme", STRING)?,
        url_host: url.field("Host", STRING)?,
        url_path: url.field("Path", STRING)?,
        url_raw_query: url.field("RawQuery", STRING)?,
        url_window: url.window,
        resp_status_code,
        g_parent_goid,
        // Set by the caller when client probes are attached.
        link_goroutines: 0,
        // In the request window, which the start reads for its headers too.
        req_ctx: req.field("ctx", STRING)?,
        track_goroutines: 0,
        req_window: req.window,
        // Set by the caller when injection is on.
        inject: 0,
        bufio_err,
        bufio_buf,
        bufio_n,
        bufio_window: bufio.window,
        sampling: tracer_common::config::SAMPLE_ALL,
        h2_rws: h2.0,
        sample_below: u64::MAX,
        bufio_write: 0,
        inject_site: 0,
        h2_status: h2.1,
        wake_up: 0,
        conn,
    })
}

/// HTTP methods the semantic conventions know; others are reported as `_OTHER`.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
];

/// Adds `http.request.method` for the method `bytes` (with `http.request.method_original`
/// when it is not a known one) and returns the method for the span name: `HTTP` for an
/// unknown one, as the semantic conventions say.
pub(super) fn method_attributes(bytes: &[u8], attributes: &mut Attributes) -> &'static str {
    match KNOWN_METHODS.iter().find(|m| m.as_bytes() == bytes) {
        Some(&method) => {
            attributes.push(("http.request.method", method.into()));
            method
        }
        None => {
            attributes.push(("http.request.method", "_OTHER".into()));
            attributes.push(("http.request.method_original", lossy(bytes).into()));
            "HTTP"
        }
    }
}

pub(super) fn lossy(bytes: &[u8]) -> CompactString {
    CompactString::from_utf8_lossy(bytes)
}

/// The path part of a `ServeMux` pattern (`[METHOD ][HOST]/PATH`), e.g. `/users/{id}`.
fn route_of(pattern: &str) -> Option<&str> {
    let rest = pattern
        .split_once(' ')
        .map_or(pattern, |(_, rest)| rest.trim_start());
    rest.find('/').map(|at| &rest[at..])
}

/// The path and query of a request target (`Request.RequestURI`), as `net/http` parses
/// them into `URL.Path` (percent escapes decoded) and `URL.RawQuery` (as sent): the origin
/// form `/p?q`, the absolute form `http://host/p?q`, `*`, or an authority (`CONNECT`, no
/// path). Cut to [`PATH_LEN`] and [`QUERY_LEN`] bytes.
#[derive(Debug, PartialEq)]
struct RequestTarget<'a> {
    path: Cow<'a, [u8]>,
    /// `None` without a `?`, or with nothing after it.
    query: Option<&'a [u8]>,
    path_cut: bool,
    query_cut: bool,
}

impl<'a> RequestTarget<'a> {
    /// `target`: the kept bytes; `cut`: the target was longer than that.
    fn parse(target: &'a [u8], cut: bool) -> Self {
        let (before, query) = match target.iter().position(|&b| b == b'?') {
            Some(at) => (&target[..at], Some(&target[at + 1..])),
            None => (target, None),
        };
        let raw = if before.first() == Some(&b'/') || before == b"*" {
            before
        } else if let Some(at) = before.windows(3).position(|w| w == b"://") {
            let authority_and_path = &before[at + 3..];
            authority_and_path
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b""[..], |slash| &authority_and_path[slash..])
        } else {
            b""
        };
        let mut path = percent_decode(raw);
        // Cut in the process without a `?` in what was kept: the path goes on.
        let mut path_cut = cut && query.is_none();
        if path.len() > PATH_LEN {
            path = match path {
                Cow::Borrowed(p) => Cow::Borrowed(&p[..PATH_LEN]),
                Cow::Owned(mut p) => {
                    p.truncate(PATH_LEN);
                    Cow::Owned(p)
                }
            };
            path_cut = true;
        }
        let mut query_cut = cut && query.is_some();
        let query = query.filter(|q| !q.is_empty()).map(|q| {
            if q.len() > QUERY_LEN {
                query_cut = true;
                &q[..QUERY_LEN]
            } else {
                q
            }
        });
        Self {
            path,
            query,
            path_cut,
            query_cut,
        }
    }
}

/// `%XX` escapes decoded, as `url.PathUnescape` does; anything else (including a `%` not
/// followed by two hex digits, e.g. cut off by truncation) is kept as it is.
fn percent_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (
            raw[i],
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Maps a server event to a span (times still kernel-monotonic).
pub fn span(record: &ServerRecord<'_>, mapping: Mapping) -> Span {
    let ev = &*record.head;
    let mut attributes = Attributes::new();
    let mut truncated: Vec<&str> = Vec::new();

    let name_method = method_attributes(record.string(&ev.method), &mut attributes);
    if ev.method.truncated() {
        truncated.push("http.request.method_original");
    }
    let target = RequestTarget::parse(record.string(&ev.target), ev.target.truncated());
    attributes.push(("url.path", lossy(&target.path).into()));
    if target.path_cut {
        truncated.push("url.path");
    }
    attributes.push((
        "url.scheme",
        if ev.tls != 0 { "https" } else { "http" }.into(),
    ));
    if let Some(query) = target.query.filter(|_| mapping.capture_query) {
        attributes.push(("url.query", lossy(query).into()));
        if target.query_cut {
            truncated.push("url.query");
        }
    }
    let pattern = lossy(record.string(&ev.pattern));
    let route = route_of(&pattern).map(CompactString::from);
    if let Some(route) = &route {
        attributes.push(("http.route", route.clone().into()));
    }

    let status = match (ev.end_reason, ev.status) {
        (END_FINISHED, 0) => Some(200),
        (END_FINISHED, code) => Some(code as i64),
        _ => None,
    };
    if let Some(code) = status {
        attributes.push(("http.response.status_code", code.into()));
    }

    let host = lossy(record.string(&ev.host));
    let (server_address, server_port) = split_host_port(&host);
    if !server_address.is_empty() {
        attributes.push(("server.address", CompactString::from(server_address).into()));
    }
    let default_port = if ev.tls != 0 { 443 } else { 80 };
    if !server_address.is_empty() || server_port.is_some() {
        attributes.push((
            "server.port",
            i64::from(server_port.unwrap_or(default_port)).into(),
        ));
    }
    let remote = lossy(record.string(&ev.remote_addr));
    let (client_address, client_port) = split_host_port(&remote);
    if !client_address.is_empty() {
        attributes.push(("client.address", CompactString::from(client_address).into()));
    }
    if let Some(port) = client_port {
        attributes.push(("client.port", i64::from(port).into()));
    }
    let protocol: Value = match (ev.proto_major, ev.proto_minor) {
        (1, 1) => "1.1".into(),
        (1, 0) => "1.0".into(),
        (2, _) => "2".into(),
        (3, _) => "3".into(),
        (major, minor) => format_compact!("{major}.{minor}").into(),
    };
    attributes.push(("network.protocol.version", protocol));

    let mut error = status.is_some_and(|code| code >= 500);
    match ev.end_reason {
        END_PANICKED => {
            error = true;
            attributes.push(("error.type", "panic".into()));
        }
        END_HIJACKED => attributes.push(("tracer.end", "hijacked".into())),
        _ => {}
    }
    if error && status.is_some() {
        attributes.push(("error.type", status.unwrap_or_default().to_string().into()));
    }
    let user_agent = record.string(&ev.user_agent);
    if !user_agent.is_empty() {
        attributes.push(("user_agent.original", lossy(user_agent).into()));
        if ev.user_agent.truncated() {
            truncated.push("user_agent.original");
        }
    }
    if !truncated.is_empty() {
        attributes.push(("tracer.truncated", truncated.join(",").into()));
    }

    let name = match &route {
        Some(route) => joined(&[name_method, " ", route]),
        None => CompactString::const_new(name_method),
    };
    Span {
        trace_id: ev.trace_id,
        span_id: ev.span_id,
        parent_span_id: (ev.parent_span_id != [0; 8]).then_some(ev.parent_span_id),
        trace_state: (ev.tracestate.kept > 0 && !ev.tracestate.truncated())
            .then(|| lossy(record.string(&ev.tracestate))),
        name,
        kind: SpanKind::Server,
        start_ns: ev.start_ns,
        end_ns: ev.end_ns,
        status: if error { Status::Error } else { Status::Unset },
        attributes,
        pid: ev.header.pid,
        goroutine: ev.header.g,
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{
        event::{EventHeader, KIND_NET_HTTP_SERVER, Piece, WIRE_VERSION},
        probes::net_http::server::{
            HOST_LEN, HttpServerEvent, HttpServerHead, METHOD_LEN, PATTERN_LEN, REMOTE_LEN,
            TARGET_LEN, TRACESTATE_LEN, USER_AGENT_LEN,
        },
    };

    use super::*;
    use crate::pipeline::decode::{Event, decode};

    /// A server event as the tests describe it: the head, and the strings the kernel
    /// copies into the text.
    struct TestEvent {
        head: HttpServerHead,
        method: String,
        target: String,
        host: String,
        remote_addr: String,
        pattern: String,
        user_agent: String,
        /// Instead of method and target: the line's bytes and their pieces, as written.
        line: Option<(Vec<u8>, Piece, Piece)>,
    }

    impl TestEvent {
        /// The ring-buffer record the kernel writes for this event (method and target
        /// read apart).
        fn record(&self) -> Vec<u8> {
            let mut ev = HttpServerEvent {
                head: self.head,
                ..HttpServerEvent::default()
            };
            let mut at = 0;
            match &self.line {
                Some((bytes, method, target)) => {
                    ev.text[..bytes.len()].copy_from_slice(bytes);
                    at = bytes.len();
                    ev.head.method = *method;
                    ev.head.target = *target;
                }
                None => {
                    ev.head.method = ev.put(&mut at, METHOD_LEN, self.method.as_bytes());
                    ev.head.target = ev.put(&mut at, TARGET_LEN, self.target.as_bytes());
                }
            }
            ev.head.host = ev.put(&mut at, HOST_LEN, self.host.as_bytes());
            ev.head.remote_addr = ev.put(&mut at, REMOTE_LEN, self.remote_addr.as_bytes());
            ev.head.pattern = ev.put(&mut at, PATTERN_LEN, self.pattern.as_bytes());
            ev.head.user_agent = ev.put(&mut at, USER_AGENT_LEN, self.user_agent.as_bytes());
            ev.head.tracestate = ev.put(&mut at, TRACESTATE_LEN, b"");
            ev.head.header.size = HttpServerEvent::record_size(at) as u32;
            ev.record(at).to_vec()
        }
    }

    /// The span of `ev`, through its record and the decoder.
    fn span_of(ev: &TestEvent, mapping: Mapping) -> Span {
        let record = ev.record();
        let Ok(Event::NetHttpServer(record)) = decode(&record) else {
            panic!("record not decoded")
        };
        super::span(&record, mapping)
    }

    const QUERY: Mapping = Mapping {
        capture_query: true,
    };

    fn event(method: &str, target: &str, status: u64) -> TestEvent {
        TestEvent {
            head: HttpServerHead {
                header: EventHeader {
                    kind: KIND_NET_HTTP_SERVER,
                    version: WIRE_VERSION,
                    pid: 42,
                    g: 7,
                    ..EventHeader::default()
                },
                start_ns: 1_000,
                end_ns: 5_000,
                trace_id: [1; 16],
                span_id: [2; 8],
                parent_span_id: [0; 8],
                status,
                proto_major: 1,
                proto_minor: 1,
                end_reason: END_FINISHED,
                ..HttpServerHead::default()
            },
            method: method.into(),
            target: target.into(),
            host: "127.0.0.1:8080".into(),
            remote_addr: "127.0.0.1:51000".into(),
            pattern: String::new(),
            user_agent: "curl/8.0".into(),
            line: None,
        }
    }

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attribute(key)
    }

    #[test]
    fn maps_a_plain_request() {
        let span = span_of(&event("GET", "/hello", 0), Mapping::default());
        assert_eq!(span.name, "GET");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(span.parent_span_id, None);
        assert_eq!(
            attr(&span, "http.response.status_code"),
            Some(&Value::Int(200))
        );
        assert_eq!(attr(&span, "url.path"), Some(&"/hello".into()));
        assert_eq!(attr(&span, "url.scheme"), Some(&"http".into()));
        assert_eq!(attr(&span, "server.address"), Some(&"127.0.0.1".into()));
        assert_eq!(attr(&span, "server.port"), Some(&Value::Int(8080)));
        assert_eq!(attr(&span, "client.address"), Some(&"127.0.0.1".into()));
        assert_eq!(attr(&span, "client.port"), Some(&Value::Int(51000)));
        assert_eq!(attr(&span, "network.protocol.version"), Some(&"1.1".into()));
        assert_eq!(attr(&span, "url.query"), None);
        assert_eq!(attr(&span, "http.route"), None);
        assert_eq!(attr(&span, "user_agent.original"), Some(&"curl/8.0".into()));
    }

    #[test]
    fn route_names_the_span_and_5xx_is_an_error() {
        let mut ev = event("DELETE", "/users/42", 500);
        ev.pattern = "DELETE /users/{id}".into();
        let span = span_of(&ev, QUERY);
        assert_eq!(span.name, "DELETE /users/{id}");
        assert_eq!(attr(&span, "http.route"), Some(&"/users/{id}".into()));
        assert_eq!(span.status, Status::Error);
        assert_eq!(attr(&span, "error.type"), Some(&"500".into()));
    }

    #[test]
    fn routes_with_host_or_without_method() {
        assert_eq!(route_of("GET example.com/a/{x}"), Some("/a/{x}"));
        assert_eq!(route_of("/static/"), Some("/static/"));
        assert_eq!(route_of(""), None);
    }

    #[test]
    fn panics_hijacks_unknown_methods_and_truncation() {
        let mut ev = event("BREW", &"x".repeat(400), 0);
        ev.head.end_reason = END_PANICKED;
        let panicked = span_of(&ev, QUERY);
        assert_eq!(panicked.status, Status::Error);
        assert_eq!(panicked.name, "HTTP");
        assert_eq!(attr(&panicked, "error.type"), Some(&"panic".into()));
        assert_eq!(attr(&panicked, "http.response.status_code"), None);
        assert_eq!(
            attr(&panicked, "http.request.method"),
            Some(&"_OTHER".into())
        );
        assert_eq!(
            attr(&panicked, "tracer.truncated"),
            Some(&"url.path".into())
        );
        // A method longer than what is kept: the kept part, marked as cut.
        let long = "X".repeat(40);
        let cut = span_of(&event(&long, "/", 0), QUERY);
        assert_eq!(
            attr(&cut, "http.request.method_original"),
            Some(&Value::from(CompactString::from(&long[..METHOD_LEN])))
        );
        assert_eq!(
            attr(&cut, "tracer.truncated"),
            Some(&"http.request.method_original".into())
        );

        let mut ev = event("GET", "/ws", 0);
        ev.head.end_reason = END_HIJACKED;
        let hijacked = span_of(&ev, QUERY);
        assert_eq!(hijacked.status, Status::Unset);
        assert_eq!(attr(&hijacked, "tracer.end"), Some(&"hijacked".into()));
    }

    #[test]
    fn request_line_read_in_one_piece() {
        // `POST /a%2Fb?x=1` as one run of bytes: the target starts after the space.
        let mut ev = event("", "", 0);
        let text = b"POST /a%2Fb?x=1";
        let method = Piece {
            len: 4,
            at: 0,
            kept: 4,
        };
        let target = Piece {
            len: 10,
            at: 5,
            kept: 10,
        };
        ev.line = Some((text.to_vec(), method, target));
        let span = span_of(&ev, QUERY);
        assert_eq!(attr(&span, "http.request.method"), Some(&"POST".into()));
        assert_eq!(attr(&span, "url.path"), Some(&"/a/b".into()));
        assert_eq!(attr(&span, "url.query"), Some(&"x=1".into()));
        // Without --capture-query the query is dropped.
        let span = span_of(&ev, Mapping::default());
        assert_eq!(attr(&span, "url.query"), None);
        // A piece that could not be read, or that points past the buffer, is empty.
        ev.line = Some((text.to_vec(), method, Piece::FAILED));
        let span = span_of(&ev, QUERY);
        assert_eq!(attr(&span, "url.path"), Some(&"".into()));
        let past = Piece { at: 2000, ..target };
        ev.line = Some((text.to_vec(), method, past));
        let span = span_of(&ev, QUERY);
        assert_eq!(attr(&span, "url.path"), Some(&"".into()));
        assert_eq!(attr(&span, "url.query"), None);
    }

    /// `(path, query, path cut, query cut)` of a target.
    fn target(t: &str, cut: bool) -> (String, Option<String>, bool, bool) {
        let parsed = RequestTarget::parse(t.as_bytes(), cut);
        (
            String::from_utf8(parsed.path.into_owned()).expect("utf-8"),
            parsed
                .query
                .map(|q| String::from_utf8(q.to_vec()).expect("utf-8")),
            parsed.path_cut,
            parsed.query_cut,
        )
    }

    #[test]
    fn request_targets_as_net_http_parses_them() {
        let s = |v: &str| v.to_owned();
        assert_eq!(target("/a/b", false), (s("/a/b"), None, false, false));
        assert_eq!(target("/a?", false), (s("/a"), None, false, false));
        assert_eq!(
            target("/a%20b%zz%4?q=%20&r#f", false),
            (s("/a b%zz%4"), Some(s("q=%20&r#f")), false, false)
        );
        assert_eq!(
            target("//x/y?z", false),
            (s("//x/y"), Some(s("z")), false, false)
        );
        assert_eq!(
            target("http://example.com:8080/p/q?x=1", false),
            (s("/p/q"), Some(s("x=1")), false, false)
        );
        assert_eq!(
            target("http://example.com", false),
            (s(""), None, false, false)
        );
        assert_eq!(
            target("example.com:443", false),
            (s(""), None, false, false)
        );
        assert_eq!(target("*", false), (s("*"), None, false, false));
        // Cut in the process: the path goes on when no `?` was kept, else the query.
        assert_eq!(target("/aaa", true), (s("/aaa"), None, true, false));
        assert_eq!(target("/a?bb", true), (s("/a"), Some(s("bb")), false, true));
        // Longer than kept: cut to the limits.
        let long = format!("/{}?{}", "p".repeat(300), "q".repeat(200));
        let (path, query, path_cut, query_cut) = target(&long, false);
        assert_eq!((path.len(), path_cut), (PATH_LEN, true));
        assert_eq!(query.map(|q| q.len()), Some(QUERY_LEN));
        assert!(query_cut);
    }

    #[test]
    fn query_tls_and_http2() {
        let mut ev = event("GET", "/q?a=1&b=2", 201);
        ev.head.tls = 1;
        ev.host = "example.com".into();
        ev.head.proto_major = 2;
        ev.head.proto_minor = 0;
        let span = span_of(&ev, QUERY);
        assert_eq!(attr(&span, "url.query"), Some(&"a=1&b=2".into()));
        assert_eq!(attr(&span, "url.scheme"), Some(&"https".into()));
        assert_eq!(attr(&span, "server.port"), Some(&Value::Int(443)));
        assert_eq!(attr(&span, "network.protocol.version"), Some(&"2".into()));
        assert_eq!(
            attr(&span, "http.response.status_code"),
            Some(&Value::Int(201))
        );
    }

    #[test]
    fn config_requires_fields_but_pattern() {
        let mut offsets = Offsets::new();
        for (strukt, members) in FIELDS {
            for (i, member) in members.iter().enumerate() {
                offsets.insert(((*strukt).to_owned(), (*member).to_owned()), 8 * i as u64);
            }
        }
        offsets.remove(&("net/http.Request".to_owned(), "Pattern".to_owned()));
        let cfg = config(&offsets).expect("config");
        assert_eq!(cfg.req_pattern, NO_FIELD);
        assert_eq!(cfg.req_request_uri, 8);
        // ctx, the 10th member, ends the window: offset 72 + 16 bytes.
        assert_eq!(cfg.req_window, 88);
        assert_eq!(cfg.req_header, 32);
        // No map layout structs in these offsets: headers are not read.
        assert_eq!(cfg.header_map.kind, 0);
        let host = ("net/http.Request".to_owned(), "Host".to_owned());
        offsets.insert(host.clone(), 4096);
        assert!(matches!(config(&offsets), Err(LayoutError::TooFar { .. })));
        offsets.insert(host, 40);
        offsets.remove(&("runtime.g".to_owned(), "goid".to_owned()));
        let err = config(&offsets).expect_err("goid missing");
        assert_eq!(
            err.to_string(),
            "struct member runtime.g.goid is not in the binary's DWARF, its type descriptors or the layout table"
        );
    }
}

//! `--format json`: one JSON object per finished span, one per line.
//!
//! ```json
//! {"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "parent_span_id":null,"name":"GET /users/{id}","kind":"server",
//!  "start_time_unix_nano":1732330000000000000,"end_time_unix_nano":1732330000004100000,
//!  "status_code":"unset","attributes":{"http.request.method":"GET", ...},
//!  "resource":{"service.name":"shop","process.pid":4242, ...}}
//! ```
//! Ids are lowercase hex; `parent_span_id` is `null` for a root span; times are UNIX
//! nanoseconds; attributes and resource follow the OpenTelemetry semantic conventions.
use std::io::Write;

use serde::{Serialize, Serializer, ser::SerializeMap as _};

use super::{Encoder, Item};
use crate::pipeline::span::{Value, hex};

/// The JSON lines encoder.
#[derive(Debug, Default)]
pub struct JsonLines;

/// The JSON object of one span, serialized straight from the span (no intermediate tree).
#[derive(Serialize)]
struct SpanJson<'a> {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: &'a str,
    kind: &'static str,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    status_code: &'static str,
    attributes: Attributes<'a>,
    resource: ResourceJson<'a>,
}

struct Attributes<'a>(&'a [(&'static str, Value)]);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            match value {
                Value::Str(s) => map.serialize_entry(key, s)?,
                Value::Int(i) => map.serialize_entry(key, i)?,
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct ResourceJson<'a> {
    #[serde(rename = "service.name")]
    service_name: &'a str,
    #[serde(rename = "process.pid")]
    pid: u32,
    #[serde(rename = "process.executable.path")]
    executable_path: &'a str,
    #[serde(rename = "process.runtime.name")]
    runtime_name: &'static str,
    #[serde(rename = "process.runtime.version")]
    runtime_version: &'a str,
    #[serde(rename = "host.name")]
    host_name: &'a str,
}

fn view(item: &Item) -> SpanJson<'_> {
    let span = &item.span;
    let r = &item.resource;
    SpanJson {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: span.parent_span_id.map(|p| hex(&p)),
        name: &span.name,
        kind: span.kind.as_str(),
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns,
        status_code: span.status.as_str(),
        attributes: Attributes(&span.attributes),
        resource: ResourceJson {
            service_name: &r.service_name,
            pid: r.pid,
            executable_path: &r.executable_path,
            runtime_name: "go",
            runtime_version: &r.runtime_version,
            host_name: &r.host_name,
        },
    }
}

impl Encoder for JsonLines {
    fn encode(&mut self, item: &Item, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, &view(item))?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::{
        resource::Resource,
        span::{Span, SpanKind, Status},
    };

    #[test]
    fn encodes_contract_shape() {
        let item = Item {
            span: Span {
                trace_id: [0xab; 16],
                span_id: [0x01; 8],
                parent_span_id: None,
                name: "GET".into(),
                kind: SpanKind::Server,
                start_ns: 10,
                end_ns: 20,
                status: Status::Unset,
                attributes: vec![
                    ("http.request.method", "GET".into()),
                    ("server.port", 8080.into()),
                ],
                pid: 7,
                goid: 1,
            },
            resource: Arc::new(Resource {
                service_name: "shop".into(),
                pid: 7,
                executable_path: "/srv/shop".into(),
                runtime_version: "go1.24.11".into(),
                host_name: "node-1".into(),
            }),
        };
        let mut out = Vec::new();
        JsonLines.encode(&item, &mut out).expect("encode");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["trace_id"], "abababababababababababababababab");
        assert_eq!(v["span_id"], "0101010101010101");
        assert_eq!(v["parent_span_id"], serde_json::Value::Null);
        assert_eq!(v["kind"], "server");
        assert_eq!(v["status_code"], "unset");
        assert_eq!(v["start_time_unix_nano"], 10);
        assert_eq!(v["attributes"]["server.port"], 8080);
        assert_eq!(v["resource"]["process.runtime.name"], "go");
        assert_eq!(v["resource"]["service.name"], "shop");
    }
}

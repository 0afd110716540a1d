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

use serde_json::{Map, Value as Json, json};

use super::{Encoder, Item};
use crate::pipeline::span::{Value, hex};

/// The JSON lines encoder.
#[derive(Debug, Default)]
pub struct JsonLines;

/// The JSON object of one span.
pub fn to_json(item: &Item) -> Json {
    let span = &item.span;
    let attributes: Map<String, Json> = span
        .attributes
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Str(s) => Json::from(s.as_str()),
                Value::Int(i) => Json::from(*i),
            };
            ((*k).to_owned(), v)
        })
        .collect();
    let r = &item.resource;
    json!({
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "parent_span_id": span.parent_span_id.map(|p| hex(&p)),
        "name": span.name,
        "kind": span.kind.as_str(),
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "status_code": span.status.as_str(),
        "attributes": attributes,
        "resource": {
            "service.name": r.service_name,
            "process.pid": r.pid,
            "process.executable.path": r.executable_path,
            "process.runtime.name": "go",
            "process.runtime.version": r.runtime_version,
            "host.name": r.host_name,
        },
    })
}

impl Encoder for JsonLines {
    fn encode(&mut self, item: &Item, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, &to_json(item))?;
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
        let v: Json = serde_json::from_str(&text).expect("json");
        assert_eq!(v["trace_id"], "abababababababababababababababab");
        assert_eq!(v["span_id"], "0101010101010101");
        assert_eq!(v["parent_span_id"], Json::Null);
        assert_eq!(v["kind"], "server");
        assert_eq!(v["status_code"], "unset");
        assert_eq!(v["start_time_unix_nano"], 10);
        assert_eq!(v["attributes"]["server.port"], 8080);
        assert_eq!(v["resource"]["process.runtime.name"], "go");
        assert_eq!(v["resource"]["service.name"], "shop");
    }
}

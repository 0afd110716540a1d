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
use std::sync::Arc;

use super::{Encoder, Item};
use crate::pipeline::{
    resource::Resource,
    span::{Hex, Value},
};

/// The JSON lines encoder. It keeps the encoding of the last span's resource: spans come
/// in runs from one process, whose resource is the same object, so most spans copy it
/// whole (about a third of a line) instead of encoding it again.
#[derive(Debug, Default)]
pub struct JsonLines {
    /// A resource (held, so no other can take its address) and the end of a line with it:
    /// `,"resource":{…}}` and the newline.
    resource: Option<(Arc<Resource>, Vec<u8>)>,
}

impl JsonLines {
    /// The end of a line for `resource`, encoded now unless it was the last one's.
    fn resource_end(&mut self, resource: &Arc<Resource>) -> &[u8] {
        let cached = self
            .resource
            .as_ref()
            .is_some_and(|(last, _)| Arc::ptr_eq(last, resource));
        if !cached {
            let mut out = Vec::with_capacity(256);
            resource_end(&mut out, resource);
            self.resource = Some((Arc::clone(resource), out));
        }
        self.resource
            .as_ref()
            .map_or(&[], |(_, out)| out.as_slice())
    }
}

/// Appends `,"resource":{…}}` and the newline that end the line of a span of `r`.
fn resource_end(out: &mut Vec<u8>, r: &Resource) {
    out.extend_from_slice(b",\"resource\":{");
    key(out, "service.name");
    string(out, &r.service_name);
    out.extend_from_slice(b",\"process.pid\":");
    number(out, r.pid);
    out.extend_from_slice(b",\"process.executable.path\":");
    string(out, &r.executable_path);
    out.extend_from_slice(b",\"process.runtime.name\":\"go\",\"process.runtime.version\":");
    string(out, &r.runtime_version);
    out.extend_from_slice(b",\"host.name\":");
    string(out, &r.host_name);
    for (name, value) in &r.attributes {
        out.push(b',');
        key(out, name);
        string(out, value);
    }
    out.extend_from_slice(b"}}\n");
}

/// Appends `s` as a JSON string. Most values need no escaping and are copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(s.as_bytes());
    } else {
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// Appends `"key":` (keys are constants that need no escaping).
fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

impl Encoder for JsonLines {
    fn encode(&mut self, item: &Item, out: &mut Vec<u8>) {
        let span = &item.span;
        out.extend_from_slice(b"{\"trace_id\":\"");
        out.extend_from_slice(Hex::<32>::new(&span.trace_id).as_bytes());
        out.extend_from_slice(b"\",\"span_id\":\"");
        out.extend_from_slice(Hex::<16>::new(&span.span_id).as_bytes());
        out.extend_from_slice(b"\",\"parent_span_id\":");
        match span.parent_span_id {
            Some(parent) => {
                out.push(b'"');
                out.extend_from_slice(Hex::<16>::new(&parent).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        if let Some(state) = &span.trace_state {
            out.extend_from_slice(b",\"trace_state\":");
            string(out, state);
        }
        out.extend_from_slice(b",\"name\":");
        string(out, &span.name);
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(span.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"start_time_unix_nano\":");
        number(out, span.start_ns);
        out.extend_from_slice(b",\"end_time_unix_nano\":");
        number(out, span.end_ns);
        out.extend_from_slice(b",\"status_code\":\"");
        out.extend_from_slice(span.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"attributes\":{");
        for (i, (name, value)) in span.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            key(out, name);
            match value {
                Value::Str(s) => string(out, s.as_str()),
                Value::Int(n) => number(out, *n),
            }
        }
        out.push(b'}');
        out.extend_from_slice(self.resource_end(&item.resource));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_contract_shape() {
        let item = Item::sample();
        let mut out = Vec::new();
        JsonLines::default().encode(&item, &mut out);
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
        assert_eq!(v["resource"]["container.id"], "c0ffee");
    }

    #[test]
    fn each_span_carries_its_own_processs_resource() {
        let shop = Item::sample();
        let mut cart = Item::sample();
        cart.resource = Arc::new(Resource {
            service_name: "cart \"eu\"".into(),
            pid: 8,
            ..(*shop.resource).clone()
        });
        let mut encoder = JsonLines::default();
        let mut out = Vec::new();
        for item in [&shop, &shop, &cart, &cart, &shop] {
            encoder.encode(item, &mut out);
        }
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("json"))
            .collect();
        let services: Vec<_> = lines
            .iter()
            .map(|v| {
                (
                    v["resource"]["service.name"].clone(),
                    v["resource"]["process.pid"].clone(),
                )
            })
            .collect();
        let shop = (serde_json::json!("shop"), serde_json::json!(7));
        let cart = (serde_json::json!("cart \"eu\""), serde_json::json!(8));
        assert_eq!(
            services,
            [shop.clone(), shop.clone(), cart.clone(), cart, shop]
        );
        assert!(
            lines
                .iter()
                .all(|v| v["resource"]["container.id"] == "c0ffee")
        );
    }

    #[test]
    fn escapes_strings() {
        for s in [
            "plain /path",
            "quote\" back\\slash",
            "ctl\u{1}\n\t",
            "utf8 é ✓",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            let back: String = serde_json::from_slice(&out).expect("valid JSON string");
            assert_eq!(back, s);
        }
    }
}

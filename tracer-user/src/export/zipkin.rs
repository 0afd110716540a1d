//! Zipkin v2 JSON (`POST /api/v2/spans`, a JSON array of spans), mapped from OpenTelemetry
//! as the specification says
//! (<https://opentelemetry.io/docs/specs/otel/trace/sdk_exporters/zipkin/>): times in
//! microseconds, the service name in `localEndpoint`, the peer in `remoteEndpoint`, every
//! attribute a string tag, `otel.status_code` and `error` tags for errors, and the
//! scope's name and version as tags. The other resource attributes (`process.pid`,
//! `container.id`, `k8s.*`) become tags too, since Zipkin has no resource.
use std::{net::IpAddr, time::Duration};

use serde_json::{Map, Value as Json, json};

use super::{Item, SendError, Sink, otlp::SCOPE_NAME};
use crate::pipeline::span::{Hex, SpanKind, Status, Value};

/// Where spans go unless told.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";

/// The Zipkin v2 JSON of `batch`.
pub fn encode(batch: &[Item]) -> Vec<u8> {
    let spans: Vec<Json> = batch.iter().map(span).collect();
    serde_json::to_vec(&spans).unwrap_or_default()
}

fn text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        Value::Int(n) => n.to_string(),
    }
}

/// An endpoint from an address attribute and a port attribute of `item`'s span.
fn endpoint(item: &Item, address: &str, port: &str) -> Option<Json> {
    let mut out = Map::new();
    match item.span.attribute(address).map(text) {
        Some(host) => match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                out.insert("ipv4".into(), ip.to_string().into());
            }
            Ok(IpAddr::V6(ip)) => {
                out.insert("ipv6".into(), ip.to_string().into());
            }
            Err(_) => {
                out.insert("serviceName".into(), host.into());
            }
        },
        None => return None,
    }
    if let Some(Value::Int(port)) = item.span.attribute(port) {
        out.insert("port".into(), (*port).into());
    }
    Some(Json::Object(out))
}

fn span(item: &Item) -> Json {
    let span = &item.span;
    let mut tags = Map::new();
    for (key, value) in &span.attributes {
        tags.insert((*key).to_owned(), text(value).into());
    }
    for (key, value) in item.resource.fields() {
        if key != "service.name" {
            tags.insert(key.to_owned(), text(&value).into());
        }
    }
    tags.insert("otel.scope.name".into(), SCOPE_NAME.into());
    tags.insert(
        "otel.scope.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    if span.status == Status::Error {
        tags.insert("otel.status_code".into(), "ERROR".into());
        tags.insert("error".into(), "".into());
    }
    let (kind, remote) = match span.kind {
        SpanKind::Server => ("SERVER", endpoint(item, "client.address", "client.port")),
        SpanKind::Client => ("CLIENT", endpoint(item, "server.address", "server.port")),
    };
    let mut out = json!({
        "traceId": Hex::<32>::new(&span.trace_id).as_str(),
        "id": Hex::<16>::new(&span.span_id).as_str(),
        "kind": kind,
        "name": span.name.as_str(),
        "timestamp": span.start_ns / 1000,
        // Zipkin reads 0 as "unknown": a span took at least a microsecond.
        "duration": (span.end_ns.saturating_sub(span.start_ns) / 1000).max(1),
        "localEndpoint": {"serviceName": item.resource.service_name},
        "tags": tags,
    });
    if let Some(parent) = span.parent_span_id {
        out["parentId"] = Hex::<16>::new(&parent).as_str().into();
    }
    if let Some(remote) = remote {
        out["remoteEndpoint"] = remote;
    }
    out
}

/// Zipkin's HTTP API.
pub struct Zipkin {
    agent: ureq::Agent,
    endpoint: String,
}

impl Zipkin {
    pub fn new(endpoint: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            agent: crate::http::agent(None, timeout)?,
            endpoint: endpoint.to_owned(),
        })
    }
}

impl Sink for Zipkin {
    fn unreachable(&mut self) -> Option<String> {
        crate::http::unreachable(&self.endpoint)
    }

    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        let body = encode(batch);
        let response = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|error| SendError::Retry {
                reason: error.to_string(),
                after: None,
            })?;
        let status = response.status().as_u16();
        let reason = format!("HTTP {status} from {}", self.endpoint);
        match status {
            200..=299 => Ok(0),
            429 | 502 | 503 | 504 => Err(SendError::Retry {
                reason,
                after: crate::http::retry_after(&response),
            }),
            _ => Err(SendError::Fail(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_the_v2_model() {
        let mut item = Item::sample();
        let span = &mut item.span;
        span.parent_span_id = Some([0x02; 8]);
        span.kind = SpanKind::Client;
        (span.start_ns, span.end_ns) = (1_700_000_000_123_456_789, 1_700_000_000_124_456_789);
        span.status = Status::Error;
        span.attributes = smallvec::smallvec![
            ("http.request.method", "GET".into()),
            ("server.address", "127.0.0.1".into()),
            ("server.port", 8080.into()),
            ("http.response.status_code", 503.into()),
        ];
        let spans: Json = serde_json::from_slice(&encode(&[item])).expect("json");
        let span = &spans[0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["id"], "0101010101010101");
        assert_eq!(span["parentId"], "0202020202020202");
        assert_eq!(span["kind"], "CLIENT");
        assert_eq!(span["timestamp"], 1_700_000_000_123_456u64);
        assert_eq!(span["duration"], 1000);
        assert_eq!(span["localEndpoint"]["serviceName"], "shop");
        assert_eq!(span["remoteEndpoint"]["ipv4"], "127.0.0.1");
        assert_eq!(span["remoteEndpoint"]["port"], 8080);
        assert_eq!(span["tags"]["http.response.status_code"], "503");
        assert_eq!(span["tags"]["process.pid"], "7");
        assert_eq!(span["tags"]["otel.status_code"], "ERROR");
        assert_eq!(span["tags"]["error"], "");
    }
}

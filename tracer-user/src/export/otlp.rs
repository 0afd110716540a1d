//! OTLP traces, over gRPC (tonic) or HTTP/protobuf, with the official protobuf
//! definitions (`opentelemetry-proto`). A batch becomes one `ExportTraceServiceRequest`
//! with one `ResourceSpans` per traced process and one scope, the tracer's. Which failures
//! are retried follows the OTLP specification
//! (<https://opentelemetry.io/docs/specs/otlp/#failures>): gRPC `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
//! `DATA_LOSS`; HTTP 429, 502, 503, 504; and any failure to connect.
use std::{collections::HashMap, io::Write as _, path::PathBuf, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_client::TraceServiceClient,
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource as ProtoResource,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span as ProtoSpan, Status as ProtoStatus, span, status,
    },
};
use prost::Message as _;

use super::{Item, SendError, Sink};
use crate::pipeline::{
    resource::Resource,
    span::{SpanKind, Status, Value},
};

/// The instrumentation scope of every span.
pub const SCOPE_NAME: &str = "tracer";
/// The semantic conventions the attributes follow.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// `Span.flags`: the W3C trace flags (sampled) and whether the parent is remote.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Longest answer body read.
const MAX_RESPONSE: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Where and how OTLP goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub protocol: Protocol,
    /// The traces URL: for HTTP the whole URL (`…/v1/traces`), for gRPC scheme, host and
    /// port.
    pub endpoint: String,
    /// Sent with every export (e.g. an authorization token).
    pub headers: Vec<(String, String)>,
    pub gzip: bool,
    /// For each export.
    pub timeout: Duration,
    /// Certificate authorities to trust for `https` (PEM), instead of the public ones.
    pub certificate: Option<PathBuf>,
}

/// The export request of `batch`: one resource per process, in the order they come.
pub fn request(batch: &[Item]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(&Arc<Resource>, Vec<ProtoSpan>)> = Vec::new();
    let mut index: HashMap<*const Resource, usize> = HashMap::new();
    for item in batch {
        let at = *index.entry(Arc::as_ptr(&item.resource)).or_insert_with(|| {
            groups.push((&item.resource, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(span(item));
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, spans)| ResourceSpans {
                resource: Some(ProtoResource {
                    attributes: resource
                        .fields()
                        .into_iter()
                        .map(|(key, value)| key_value(key, &value))
                        .collect(),
                    ..ProtoResource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: SCHEMA_URL.to_owned(),
                }],
                schema_url: SCHEMA_URL.to_owned(),
            })
            .collect(),
    }
}

fn span(item: &Item) -> ProtoSpan {
    let span = &item.span;
    // Server spans get parents only from a caller's traceparent; client spans only from
    // a span of the same process.
    let remote = span.parent_span_id.is_some() && span.kind == SpanKind::Server;
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        trace_state: span.trace_state.as_deref().unwrap_or_default().to_owned(),
        parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags: FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | if remote { FLAG_IS_REMOTE } else { 0 },
        name: span.name.to_string(),
        kind: match span.kind {
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
        } as i32,
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns,
        attributes: span
            .attributes
            .iter()
            .map(|(key, value)| key_value(key, value))
            .collect(),
        status: Some(ProtoStatus {
            code: match span.status {
                Status::Unset => status::StatusCode::Unset,
                Status::Error => status::StatusCode::Error,
            } as i32,
            message: String::new(),
        }),
        ..ProtoSpan::default()
    }
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(match value {
                Value::Str(s) => any_value::Value::StringValue(s.to_string()),
                Value::Int(n) => any_value::Value::IntValue(*n),
            }),
        }),
        ..KeyValue::default()
    }
}

/// Opens the sink of `config`: nothing is connected yet (a back end down at start only
/// delays the first export).
pub fn sink(config: &Config) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match config.protocol {
        Protocol::HttpProtobuf => Box::new(Http::new(config)?),
        Protocol::Grpc => Box::new(Grpc::new(config)?),
    })
}

/// OTLP/HTTP with protobuf bodies.
struct Http {
    agent: ureq::Agent,
    config: Config,
}

impl Http {
    fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            agent: crate::http::agent(config.certificate.as_deref(), config.timeout)?,
            config: config.clone(),
        })
    }
}

impl Sink for Http {
    fn unreachable(&mut self) -> Option<String> {
        crate::http::unreachable(&self.config.endpoint)
    }

    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        let mut body = request(batch).encode_to_vec();
        let mut post = self
            .agent
            .post(&self.config.endpoint)
            .header("Content-Type", "application/x-protobuf");
        for (name, value) in &self.config.headers {
            post = post.header(name, value);
        }
        if self.config.gzip {
            body = gzip(&body);
            post = post.header("Content-Encoding", "gzip");
        }
        let mut response = post.send(&body[..]).map_err(|error| SendError::Retry {
            reason: error.to_string(),
            after: None,
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE)
                .read_to_vec()
                .unwrap_or_default();
            let answer = ExportTraceServiceResponse::decode(&body[..]).unwrap_or_default();
            return Ok(rejected(&answer));
        }
        let reason = format!("HTTP {status} from {}", self.config.endpoint);
        match status {
            429 | 502 | 503 | 504 => Err(SendError::Retry {
                reason,
                after: crate::http::retry_after(&response),
            }),
            _ => Err(SendError::Fail(reason)),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Spans the back end said it refused.
fn rejected(answer: &ExportTraceServiceResponse) -> u64 {
    answer
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// OTLP/gRPC, on a single-threaded runtime of the exporter's own thread.
struct Grpc {
    runtime: tokio::runtime::Runtime,
    client: TraceServiceClient<tonic::transport::Channel>,
    headers: tonic::metadata::MetadataMap,
    config: Config,
}

impl Grpc {
    fn new(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the gRPC runtime")?;
        let url = if config.endpoint.contains("://") {
            config.endpoint.clone()
        } else {
            format!("http://{}", config.endpoint)
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("bad OTLP endpoint {url:?}"))?
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(path) = &config.certificate {
                let pem =
                    std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
                tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .context("the OTLP endpoint's TLS settings")?;
        }
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        let mut client = TraceServiceClient::new(channel);
        if config.gzip {
            client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let mut headers = tonic::metadata::MetadataMap::new();
        for (name, value) in &config.headers {
            let key =
                tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .with_context(|| format!("bad OTLP header name {name:?}"))?;
            let value = value
                .parse()
                .with_context(|| format!("bad value of OTLP header {name}"))?;
            headers.insert(key, value);
        }
        Ok(Self {
            runtime,
            client,
            headers,
            config: config.clone(),
        })
    }
}

impl Sink for Grpc {
    fn unreachable(&mut self) -> Option<String> {
        crate::http::unreachable(&self.config.endpoint)
    }

    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        let mut call = tonic::Request::new(request(batch));
        *call.metadata_mut() = self.headers.clone();
        call.set_timeout(self.config.timeout);
        let client = &mut self.client;
        let answer = self.runtime.block_on(client.export(call));
        match answer {
            Ok(answer) => Ok(rejected(answer.get_ref())),
            Err(status) => {
                use tonic::Code;
                let reason = format!(
                    "gRPC {:?} from {}: {}",
                    status.code(),
                    self.config.endpoint,
                    status.message()
                );
                match status.code() {
                    Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss => Err(SendError::Retry {
                        reason,
                        after: None,
                    }),
                    _ => Err(SendError::Fail(reason)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(resource: &Arc<Resource>, span_id: u8, parent: Option<u8>, kind: SpanKind) -> Item {
        let mut item = Item::sample();
        let span = &mut item.span;
        (span.trace_id, span.span_id, span.parent_span_id) =
            ([7; 16], [span_id; 8], parent.map(|p| [p; 8]));
        span.trace_state = Some("vendor=1".into());
        span.kind = kind;
        (span.start_ns, span.end_ns, span.status) = (100, 250, Status::Error);
        span.attributes = vec![
            ("http.request.method", "GET".into()),
            ("http.response.status_code", 500.into()),
        ];
        span.pid = resource.pid;
        item.resource = Arc::clone(resource);
        item
    }

    fn resource(pid: u32) -> Arc<Resource> {
        Arc::new(Resource {
            pid,
            ..(*Item::sample().resource).clone()
        })
    }

    #[test]
    fn one_resource_per_process() {
        let (a, b) = (resource(1), resource(2));
        let batch = [
            item(&a, 1, Some(9), SpanKind::Server),
            item(&b, 2, None, SpanKind::Server),
            item(&a, 3, Some(1), SpanKind::Client),
        ];
        // Through the wire format and back.
        let bytes = request(&batch).encode_to_vec();
        let back = ExportTraceServiceRequest::decode(&bytes[..]).expect("decodes");
        assert_eq!(back.resource_spans.len(), 2);
        let first = &back.resource_spans[0];
        let attributes = &first.resource.as_ref().expect("resource").attributes;
        let pid = attributes.iter().find(|kv| kv.key == "process.pid");
        assert_eq!(
            pid.and_then(|kv| kv.value.clone()).and_then(|v| v.value),
            Some(any_value::Value::IntValue(1))
        );
        assert!(attributes.iter().any(|kv| kv.key == "container.id"));
        let scope = &first.scope_spans[0];
        assert_eq!(
            scope.scope.as_ref().map(|s| s.name.as_str()),
            Some("tracer")
        );
        let spans = &scope.spans;
        assert_eq!(spans.len(), 2);
        let (server, client) = (&spans[0], &spans[1]);
        assert_eq!(server.kind, span::SpanKind::Server as i32);
        assert_eq!(server.parent_span_id, vec![9; 8]);
        assert_eq!(
            server.flags,
            FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE
        );
        assert_eq!(client.flags, FLAG_SAMPLED | FLAG_HAS_IS_REMOTE);
        assert_eq!(server.trace_state, "vendor=1");
        assert_eq!(
            server.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
        assert_eq!(server.start_time_unix_nano, 100);
        let code = server
            .attributes
            .iter()
            .find(|kv| kv.key == "http.response.status_code");
        assert_eq!(
            code.and_then(|kv| kv.value.clone()).and_then(|v| v.value),
            Some(any_value::Value::IntValue(500))
        );
        assert!(
            back.resource_spans[1].scope_spans[0].spans[0]
                .parent_span_id
                .is_empty()
        );
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read as _;
        let data = b"spans spans spans".repeat(100);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&data)[..])
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, data);
    }
}

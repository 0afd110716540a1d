//! OTLP traces, over gRPC (tonic) or HTTP/protobuf. A batch becomes one
//! `ExportTraceServiceRequest` with one `ResourceSpans` per traced process and one scope,
//! the tracer's, written as protobuf straight into a buffer kept between batches
//! ([`RequestEncoder`]; field numbers from the official definitions,
//! <https://github.com/open-telemetry/opentelemetry-proto>): no message structs and no
//! allocation per span. Which failures are retried follows the OTLP specification
//! (<https://opentelemetry.io/docs/specs/otlp/#failures>): gRPC `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
//! `DATA_LOSS`; HTTP 429, 502, 503, 504; and any failure to connect.
use std::{collections::HashMap, io::Write as _, path::PathBuf, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource as ProtoResource,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span as ProtoSpan, Status as ProtoStatus, span, status,
    },
};
use prost::Message as _;

use super::{
    Encoder, Item, SendError, Sink,
    protobuf::{self, LEN, Nested},
};
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

/// Largest request buffer kept between batches (a bigger batch's is given back).
const KEEP_BUFFER: usize = 8 << 20;

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

/// The export request of `batch` as `opentelemetry-proto` messages: one resource per
/// process, in the order they come. The same request [`RequestEncoder`] writes, built the
/// slow way (a few allocations per span and attribute): the reference the encoder is
/// checked against.
pub fn request(batch: &[Item]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(&Arc<Resource>, Vec<ProtoSpan>)> = Vec::new();
    let mut index: HashMap<*const Resource, usize> = HashMap::new();
    for item in batch {
        let at = *index.entry(Arc::as_ptr(&item.resource)).or_insert_with(|| {
            groups.push((&item.resource, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(proto_span(item));
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, spans)| ResourceSpans {
                resource: Some(ProtoResource {
                    attributes: resource
                        .fields()
                        .into_iter()
                        .map(|(key, value)| proto_key_value(key, &value))
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

fn proto_span(item: &Item) -> ProtoSpan {
    let span = &item.span;
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        trace_state: span.trace_state.as_deref().unwrap_or_default().to_owned(),
        parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags: flags(item),
        name: span.name.to_string(),
        kind: kind(span.kind),
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns,
        attributes: span
            .attributes
            .iter()
            .map(|(key, value)| proto_key_value(key, value))
            .collect(),
        status: Some(ProtoStatus {
            code: status_code(span.status),
            message: String::new(),
        }),
        ..ProtoSpan::default()
    }
}

fn proto_key_value(key: &str, value: &Value) -> KeyValue {
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

/// `Span.flags` of `item`'s span. Server spans get parents only from a caller's
/// traceparent; client spans only from a span of the same process.
fn flags(item: &Item) -> u32 {
    let span = &item.span;
    let remote = span.parent_span_id.is_some() && span.kind == SpanKind::Server;
    FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | if remote { FLAG_IS_REMOTE } else { 0 }
}

fn kind(kind: SpanKind) -> i32 {
    let kind = match kind {
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Client => span::SpanKind::Client,
    };
    kind as i32
}

fn status_code(status: Status) -> i32 {
    let code = match status {
        Status::Unset => status::StatusCode::Unset,
        Status::Error => status::StatusCode::Error,
    };
    code as i32
}

/// Field numbers of the messages written, from the official definitions
/// (`opentelemetry/proto/{collector/trace,trace,resource,common}/v1/*.proto`).
mod field {
    pub mod export_request {
        pub const RESOURCE_SPANS: u32 = 1;
    }
    pub mod resource_spans {
        pub const RESOURCE: u32 = 1;
        pub const SCOPE_SPANS: u32 = 2;
        pub const SCHEMA_URL: u32 = 3;
    }
    pub mod resource {
        pub const ATTRIBUTES: u32 = 1;
    }
    pub mod scope_spans {
        pub const SCOPE: u32 = 1;
        pub const SPANS: u32 = 2;
        pub const SCHEMA_URL: u32 = 3;
    }
    pub mod scope {
        pub const NAME: u32 = 1;
        pub const VERSION: u32 = 2;
    }
    pub mod span {
        pub const TRACE_ID: u32 = 1;
        pub const SPAN_ID: u32 = 2;
        pub const TRACE_STATE: u32 = 3;
        pub const PARENT_SPAN_ID: u32 = 4;
        pub const NAME: u32 = 5;
        pub const KIND: u32 = 6;
        pub const START_TIME_UNIX_NANO: u32 = 7;
        pub const END_TIME_UNIX_NANO: u32 = 8;
        pub const ATTRIBUTES: u32 = 9;
        pub const STATUS: u32 = 15;
        pub const FLAGS: u32 = 16;
    }
    pub mod status {
        pub const CODE: u32 = 3;
    }
    pub mod key_value {
        pub const KEY: u32 = 1;
        pub const VALUE: u32 = 2;
    }
    pub mod any_value {
        pub const STRING_VALUE: u32 = 1;
        pub const INT_VALUE: u32 = 3;
    }
}

/// Writes batches as OTLP `ExportTraceServiceRequest`s, protobuf straight into the
/// caller's buffer: the request [`request`] builds, byte for byte (fields in number order,
/// proto3 defaults left out, shortest lengths), without building it. Lengths of spans and
/// of the messages around them are filled in once their content is written; attributes'
/// are computed first. What it keeps between batches (how spans group by resource) only
/// grows: once the first batches have been written, a span costs no allocation (a batch
/// costs one attribute list per process, [`Resource::fields`]).
#[derive(Debug, Default)]
pub struct RequestEncoder {
    /// The batch's resources in the order they first come.
    groups: Vec<Group>,
    /// The group of each resource, by the address of its `Arc` (as [`request`] groups).
    by_resource: HashMap<usize, usize>,
    /// The group of each item of the batch.
    group_of: Vec<usize>,
    /// The items' indices, group after group (when the batch has several).
    order: Vec<usize>,
}

/// The spans of one resource in a batch.
#[derive(Clone, Copy, Debug)]
struct Group {
    /// The first item with this resource.
    first: usize,
    spans: usize,
    /// Where its next item goes in `order`.
    next: usize,
}

impl Encoder for RequestEncoder {
    /// A request of one span.
    fn encode(&mut self, item: &Item, out: &mut Vec<u8>) {
        self.encode_batch(std::slice::from_ref(item), out);
    }

    /// A request of the whole batch (nothing for an empty one, as for an empty request).
    fn encode_batch(&mut self, batch: &[Item], out: &mut Vec<u8>) {
        self.group(batch);
        if let [group] = self.groups[..] {
            resource_spans(out, &batch[group.first].resource, batch.iter());
            return;
        }
        // Items in group order, each group's in batch order.
        self.order.clear();
        self.order.resize(batch.len(), 0);
        let mut start = 0;
        for group in &mut self.groups {
            group.next = start;
            start += group.spans;
        }
        for (i, &g) in self.group_of.iter().enumerate() {
            let group = &mut self.groups[g];
            self.order[group.next] = i;
            group.next += 1;
        }
        let mut start = 0;
        for group in &self.groups {
            let members = &self.order[start..start + group.spans];
            let items = members.iter().map(|&i| &batch[i]);
            resource_spans(out, &batch[group.first].resource, items);
            start += group.spans;
        }
    }
}

impl RequestEncoder {
    /// Groups `batch` by resource.
    fn group(&mut self, batch: &[Item]) {
        self.groups.clear();
        self.by_resource.clear();
        self.group_of.clear();
        // Spans of one process mostly come in runs: the map is asked when the run ends.
        let mut last: Option<(usize, usize)> = None;
        for (i, item) in batch.iter().enumerate() {
            let address = Arc::as_ptr(&item.resource) as usize;
            let g = match last {
                Some((at, g)) if at == address => g,
                _ => {
                    let groups = &mut self.groups;
                    *self.by_resource.entry(address).or_insert_with(|| {
                        groups.push(Group {
                            first: i,
                            spans: 0,
                            next: 0,
                        });
                        groups.len() - 1
                    })
                }
            };
            last = Some((address, g));
            self.groups[g].spans += 1;
            self.group_of.push(g);
        }
    }
}

/// Appends the `ResourceSpans` of `resource` with the spans of `items`.
fn resource_spans<'a>(
    out: &mut Vec<u8>,
    resource: &Resource,
    items: impl Iterator<Item = &'a Item>,
) {
    // A batch of a few hundred spans or more takes 3 bytes of length (16 KiB to 2 MiB).
    let message = Nested::begin(out, field::export_request::RESOURCE_SPANS, 3);
    {
        let attributes = Nested::begin(out, field::resource_spans::RESOURCE, 2);
        for (key, value) in resource.fields() {
            key_value(out, field::resource::ATTRIBUTES, key, &value);
        }
        attributes.end(out);
    }
    {
        let scope_spans = Nested::begin(out, field::resource_spans::SCOPE_SPANS, 3);
        scope(out);
        for item in items {
            span(out, item);
        }
        protobuf::string(out, field::scope_spans::SCHEMA_URL, SCHEMA_URL);
        scope_spans.end(out);
    }
    protobuf::string(out, field::resource_spans::SCHEMA_URL, SCHEMA_URL);
    message.end(out);
}

/// Appends the instrumentation scope, the tracer's.
fn scope(out: &mut Vec<u8>) {
    const VERSION: &str = env!("CARGO_PKG_VERSION");
    let len = protobuf::len_field_len(field::scope::NAME, SCOPE_NAME.len())
        + protobuf::len_field_len(field::scope::VERSION, VERSION.len());
    protobuf::key(out, field::scope_spans::SCOPE, LEN);
    protobuf::varint(out, len as u64);
    protobuf::string(out, field::scope::NAME, SCOPE_NAME);
    protobuf::string(out, field::scope::VERSION, VERSION);
}

/// Appends `item`'s span.
fn span(out: &mut Vec<u8>, item: &Item) {
    use field::span::*;
    let span = &item.span;
    // Spans with their attributes take 128 B to 16 KiB: 2 bytes of length.
    let message = Nested::begin(out, field::scope_spans::SPANS, 2);
    protobuf::bytes(out, TRACE_ID, &span.trace_id);
    protobuf::bytes(out, SPAN_ID, &span.span_id);
    if let Some(state) = &span.trace_state {
        protobuf::string(out, TRACE_STATE, state);
    }
    if let Some(parent) = &span.parent_span_id {
        protobuf::bytes(out, PARENT_SPAN_ID, parent);
    }
    protobuf::string(out, NAME, &span.name);
    protobuf::uint(out, KIND, kind(span.kind) as u64);
    protobuf::fixed64(out, START_TIME_UNIX_NANO, span.start_ns);
    protobuf::fixed64(out, END_TIME_UNIX_NANO, span.end_ns);
    for (key, value) in &span.attributes {
        key_value(out, ATTRIBUTES, key, value);
    }
    // Always set, empty when unset.
    let code = status_code(span.status) as u64;
    let status_len = if code == 0 {
        0
    } else {
        protobuf::key_len(field::status::CODE) + protobuf::varint_len(code)
    };
    protobuf::key(out, STATUS, LEN);
    protobuf::varint(out, status_len as u64);
    protobuf::uint(out, field::status::CODE, code);
    protobuf::fixed32(out, FLAGS, flags(item));
    message.end(out);
}

/// Appends the `KeyValue` `key` = `value` as field `number`, its lengths computed first.
fn key_value(out: &mut Vec<u8>, number: u32, key: &str, value: &Value) {
    use field::{any_value::*, key_value::*};
    let any_len = match value {
        Value::Str(s) => protobuf::len_field_len(STRING_VALUE, s.len()),
        Value::Int(n) => protobuf::key_len(INT_VALUE) + protobuf::varint_len(*n as u64),
    };
    let key_len = if key.is_empty() {
        0
    } else {
        protobuf::len_field_len(KEY, key.len())
    };
    protobuf::key(out, number, LEN);
    protobuf::varint(
        out,
        (key_len + protobuf::len_field_len(VALUE, any_len)) as u64,
    );
    protobuf::string(out, KEY, key);
    protobuf::key(out, VALUE, LEN);
    protobuf::varint(out, any_len as u64);
    match value {
        Value::Str(s) => protobuf::bytes_always(out, STRING_VALUE, s.as_bytes()),
        Value::Int(n) => protobuf::int64_always(out, INT_VALUE, *n),
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

/// OTLP/HTTP with protobuf bodies, over one kept-alive connection (the agent's pool).
struct Http {
    agent: ureq::Agent,
    config: Config,
    encoder: RequestEncoder,
    /// The request body, kept between batches.
    body: Vec<u8>,
    /// Its gzip compression, when configured, kept between batches.
    compressed: Vec<u8>,
}

impl Http {
    fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            agent: crate::http::agent(config.certificate.as_deref(), config.timeout)?,
            config: config.clone(),
            encoder: RequestEncoder::default(),
            body: Vec::new(),
            compressed: Vec::new(),
        })
    }

    fn post(&mut self) -> Result<u64, SendError> {
        let mut post = self
            .agent
            .post(&self.config.endpoint)
            .header("Content-Type", "application/x-protobuf");
        for (name, value) in &self.config.headers {
            post = post.header(name, value);
        }
        let body = if self.config.gzip {
            gzip(&self.body, &mut self.compressed);
            post = post.header("Content-Encoding", "gzip");
            &self.compressed[..]
        } else {
            &self.body[..]
        };
        let mut response = post.send(body).map_err(|error| SendError::Retry {
            reason: error.to_string(),
            after: None,
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // Read to the end, so that the connection is kept for the next batch.
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

impl Sink for Http {
    fn unreachable(&mut self) -> Option<String> {
        crate::http::unreachable(&self.config.endpoint)
    }

    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        self.body.clear();
        self.encoder.encode_batch(batch, &mut self.body);
        let result = self.post();
        for buffer in [&mut self.body, &mut self.compressed] {
            buffer.clear();
            buffer.shrink_to(KEEP_BUFFER);
        }
        result
    }
}

/// Compresses `bytes` into `out` (replacing what it held).
fn gzip(bytes: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut encoder =
        flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    *out = encoder.finish().unwrap_or_default();
}

/// Spans the back end said it refused.
fn rejected(answer: &ExportTraceServiceResponse) -> u64 {
    answer
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// The gRPC method of OTLP traces.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// OTLP/gRPC, on a single-threaded runtime of the exporter's own thread. Requests are
/// written by [`RequestEncoder`] and handed to tonic as bytes ([`EncodedCodec`]).
struct Grpc {
    runtime: tokio::runtime::Runtime,
    client: tonic::client::Grpc<tonic::transport::Channel>,
    headers: tonic::metadata::MetadataMap,
    config: Config,
    encoder: RequestEncoder,
    /// Bytes per span of the last request, to size the next one's buffer at once.
    bytes_per_span: usize,
}

impl Grpc {
    fn new(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Its blocking threads (name lookups) start from the exporter's thread, in
            // its idle class while it keeps up: a send waits for them.
            .on_thread_start(crate::priority::leave_idle_class)
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
        let mut client = tonic::client::Grpc::new(channel);
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
            encoder: RequestEncoder::default(),
            bytes_per_span: 512,
        })
    }
}

impl Sink for Grpc {
    fn unreachable(&mut self) -> Option<String> {
        crate::http::unreachable(&self.config.endpoint)
    }

    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        // tonic takes the request by value: one buffer per batch, sized at once.
        let mut body = Vec::with_capacity(batch.len() * self.bytes_per_span + 1024);
        self.encoder.encode_batch(batch, &mut body);
        self.bytes_per_span = (body.len() / batch.len().max(1)).saturating_add(64);
        let mut call = tonic::Request::new(body);
        *call.metadata_mut() = self.headers.clone();
        call.set_timeout(self.config.timeout);
        let client = &mut self.client;
        let answer = self.runtime.block_on(async {
            client.ready().await.map_err(|error| {
                tonic::Status::unknown(format!("service was not ready: {error}"))
            })?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(GRPC_EXPORT);
            client.unary(call, path, EncodedCodec).await
        });
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

/// The gRPC codec of an export: the request already encoded, the response decoded with
/// its `opentelemetry-proto` message.
#[derive(Clone, Copy, Debug, Default)]
struct EncodedCodec;

impl tonic::codec::Codec for EncodedCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for EncodedCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut as _;
        dst.reserve(item.len());
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct ResponseDecoder;

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|error| tonic::Status::internal(error.to_string()))
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
        span.attributes = smallvec::smallvec![
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

    /// A batch like a busy server's: spans of two processes in runs, with the attributes
    /// a server span has, half of them with a remote parent.
    fn busy_batch(n: usize) -> Vec<Item> {
        let (a, b) = (resource(41), resource(42));
        (0..n)
            .map(|i| {
                let mut item = Item::sample();
                let span = &mut item.span;
                span.trace_id = [i as u8; 16];
                span.span_id = [(i >> 3) as u8; 8];
                span.parent_span_id = (i % 2 == 0).then_some([9; 8]);
                span.name = "GET /users/{id}".into();
                (span.start_ns, span.end_ns) =
                    (1_732_330_000_000_000_000, 1_732_330_000_004_100_000);
                span.attributes = smallvec::smallvec![
                    ("http.request.method", "GET".into()),
                    ("url.path", "/users/12345".into()),
                    ("url.scheme", "http".into()),
                    ("http.route", "/users/{id}".into()),
                    ("http.response.status_code", 200.into()),
                    ("server.address", "127.0.0.1".into()),
                    ("server.port", 8080.into()),
                    ("client.address", "127.0.0.1".into()),
                    ("client.port", 51000.into()),
                    ("network.protocol.version", "1.1".into()),
                    ("user_agent.original", "Go-http-client/1.1".into()),
                ];
                item.resource = Arc::clone(if (i / 64) % 2 == 0 { &a } else { &b });
                span.pid = item.resource.pid;
                item
            })
            .collect()
    }

    /// Prints what encoding a request costs per span, the message structs' way (what
    /// the exporter did before) and [`RequestEncoder`]'s; no assertion, to compare runs:
    /// `cargo test --release -p tracer-user --lib encode_cost -- --nocapture`.
    #[test]
    fn encode_cost() {
        // Fewer unoptimized, where only the test's running matters.
        const SPANS: usize = if cfg!(debug_assertions) {
            10_000
        } else {
            100_000
        };
        const BATCH: usize = 1024;
        let batch = busy_batch(BATCH);
        let rounds = SPANS.div_ceil(BATCH);
        let per_span = |elapsed: Duration| elapsed.as_nanos() as f64 / (rounds * BATCH) as f64;

        let started = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes += request(&batch).encode_to_vec().len();
        }
        let structs = per_span(started.elapsed());

        let (mut encoder, mut out) = (RequestEncoder::default(), Vec::new());
        let started = std::time::Instant::now();
        let mut direct_bytes = 0;
        for _ in 0..rounds {
            out.clear();
            encoder.encode_batch(&batch, &mut out);
            direct_bytes += out.len();
        }
        let direct = per_span(started.elapsed());
        assert_eq!(bytes, direct_bytes);
        println!(
            "otlp encode, {} spans in batches of {BATCH} ({} bytes/span): \
             message structs + prost {structs:.0} ns/span, RequestEncoder {direct:.0} ns/span",
            rounds * BATCH,
            bytes / (rounds * BATCH)
        );
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read as _;
        let data = b"spans spans spans".repeat(100);
        let mut zipped = vec![1, 2, 3];
        gzip(&data, &mut zipped);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, data);
    }

    /// A field read back from protobuf bytes.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Wire<'a> {
        Varint(u64),
        I64(u64),
        I32(u32),
        Len(&'a [u8]),
    }

    /// A message read back: its fields in order. A tiny decoder, independent of
    /// `prost`, that fails the test on anything malformed.
    #[derive(Debug)]
    struct Message<'a>(Vec<(u32, Wire<'a>)>);

    impl<'a> Message<'a> {
        fn parse(mut bytes: &'a [u8]) -> Self {
            fn varint(bytes: &mut &[u8]) -> u64 {
                let mut v = 0;
                for shift in (0..64).step_by(7) {
                    let (&b, rest) = bytes.split_first().expect("a varint cut short");
                    *bytes = rest;
                    v |= u64::from(b & 0x7f) << shift;
                    if b < 0x80 {
                        return v;
                    }
                }
                panic!("a varint longer than 10 bytes");
            }
            fn take<'b>(bytes: &mut &'b [u8], n: usize) -> &'b [u8] {
                assert!(bytes.len() >= n, "{n} bytes wanted, {} left", bytes.len());
                let (head, rest) = bytes.split_at(n);
                *bytes = rest;
                head
            }
            let mut fields = Vec::new();
            while !bytes.is_empty() {
                let key = varint(&mut bytes);
                let (number, wire) = (u32::try_from(key >> 3).expect("field number"), key & 7);
                assert_ne!(number, 0, "field number 0");
                let value = match wire {
                    0 => Wire::Varint(varint(&mut bytes)),
                    1 => Wire::I64(u64::from_le_bytes(
                        take(&mut bytes, 8).try_into().expect("8 bytes"),
                    )),
                    2 => {
                        let n = usize::try_from(varint(&mut bytes)).expect("length");
                        Wire::Len(take(&mut bytes, n))
                    }
                    5 => Wire::I32(u32::from_le_bytes(
                        take(&mut bytes, 4).try_into().expect("4 bytes"),
                    )),
                    other => panic!("wire type {other} of field {number}"),
                };
                fields.push((number, value));
            }
            Self(fields)
        }

        fn all(&self, number: u32) -> impl Iterator<Item = Wire<'a>> + '_ {
            self.0
                .iter()
                .filter(move |(n, _)| *n == number)
                .map(|(_, w)| *w)
        }

        /// The field, which must come at most once.
        fn one(&self, number: u32) -> Option<Wire<'a>> {
            let mut all = self.all(number);
            let first = all.next();
            assert!(all.next().is_none(), "field {number} repeated");
            first
        }

        fn numbers(&self) -> Vec<u32> {
            self.0.iter().map(|(n, _)| *n).collect()
        }

        fn bytes(&self, number: u32) -> Option<&'a [u8]> {
            self.one(number).map(|w| match w {
                Wire::Len(bytes) => bytes,
                other => panic!("field {number} is {other:?}, not bytes"),
            })
        }

        fn str(&self, number: u32) -> Option<&'a str> {
            self.bytes(number)
                .map(|b| std::str::from_utf8(b).expect("UTF-8"))
        }

        fn messages(&self, number: u32) -> Vec<Message<'a>> {
            self.all(number)
                .map(|w| match w {
                    Wire::Len(bytes) => Message::parse(bytes),
                    other => panic!("field {number} is {other:?}, not a message"),
                })
                .collect()
        }

        fn message(&self, number: u32) -> Option<Message<'a>> {
            self.bytes(number).map(Message::parse)
        }

        /// Repeated `KeyValue`s with string or integer values.
        fn attributes(&self, number: u32) -> Vec<(String, Value)> {
            self.messages(number)
                .iter()
                .map(|kv| {
                    assert!(kv.numbers().iter().all(|n| [1, 2].contains(n)));
                    let key = kv.str(1).unwrap_or_default().to_owned();
                    let any = kv.message(2).expect("a value");
                    let value = match any.0[..] {
                        [(1, Wire::Len(s))] => {
                            Value::from(String::from_utf8(s.to_vec()).expect("UTF-8"))
                        }
                        [(3, Wire::Varint(n))] => Value::Int(n as i64),
                        ref other => panic!("{key}: value {other:?}"),
                    };
                    (key, value)
                })
                .collect()
        }
    }

    /// Spans of two processes interleaved, with what varies: a remote parent or none,
    /// a trace state or none, error or unset, server or client, string and integer
    /// attributes (negative, empty, long).
    fn varied_batch() -> Vec<Item> {
        let (a, b) = (resource(1), resource(2));
        let mut batch = vec![
            item(&a, 1, Some(9), SpanKind::Server),
            item(&b, 2, None, SpanKind::Server),
            item(&a, 3, Some(1), SpanKind::Client),
            item(&b, 4, Some(2), SpanKind::Client),
        ];
        batch[1].span.trace_state = None;
        batch[1].span.status = Status::Unset;
        batch[2].span.attributes.extend([
            ("tracer.test.negative", Value::Int(-5)),
            ("tracer.test.min", Value::Int(i64::MIN)),
            ("tracer.test.zero", Value::Int(0)),
            ("tracer.test.empty", "".into()),
            ("user_agent.original", "x".repeat(300).into()),
        ]);
        batch[3].span.name = "".into();
        batch[3]
            .span
            .attributes
            .push(("url.path", "/p".repeat(10_000).into()));
        batch
    }

    /// Reads the encoder's output with the test's own decoder, field by field.
    #[test]
    fn encoded_requests_decode() {
        let batch = varied_batch();
        let mut out = Vec::new();
        RequestEncoder::default().encode_batch(&batch, &mut out);
        let request = Message::parse(&out);
        assert_eq!(request.numbers(), [1, 1], "one ResourceSpans per process");
        let groups = request.messages(1);
        // Process 1's spans (items 0 and 2), then process 2's (1 and 3).
        for (group, members) in groups.iter().zip([[0, 2], [1, 3]]) {
            let resource = &batch[members[0]].resource;
            assert_eq!(group.numbers(), [1, 2, 3]);
            assert_eq!(group.str(3), Some(SCHEMA_URL));
            let attributes = group.message(1).expect("resource").attributes(1);
            let expected: Vec<(String, Value)> = resource
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(attributes, expected);
            assert!(attributes.contains(&("process.pid".into(), Value::Int(resource.pid.into()))));
            let scope_spans = group.messages(2);
            assert_eq!(scope_spans.len(), 1);
            let scope_spans = &scope_spans[0];
            assert_eq!(scope_spans.str(3), Some(SCHEMA_URL));
            let scope = scope_spans.message(1).expect("scope");
            assert_eq!(scope.numbers(), [1, 2]);
            assert_eq!(scope.str(1), Some("tracer"));
            assert_eq!(scope.str(2), Some(env!("CARGO_PKG_VERSION")));
            let spans = scope_spans.messages(2);
            assert_eq!(spans.len(), 2);
            for (decoded, &i) in spans.iter().zip(&members) {
                let span = &batch[i].span;
                let numbers = decoded.numbers();
                assert!(numbers.is_sorted(), "fields in number order: {numbers:?}");
                assert!(
                    numbers
                        .iter()
                        .all(|n| [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16].contains(n))
                );
                assert_eq!(decoded.bytes(1), Some(&span.trace_id[..]));
                assert_eq!(decoded.bytes(2), Some(&span.span_id[..]));
                assert_eq!(decoded.str(3), span.trace_state.as_deref());
                assert_eq!(
                    decoded.bytes(4),
                    span.parent_span_id.as_ref().map(|p| &p[..])
                );
                let name = Some(span.name.as_str()).filter(|n| !n.is_empty());
                assert_eq!(decoded.str(5), name);
                let kind = match span.kind {
                    SpanKind::Server => 2,
                    SpanKind::Client => 3,
                };
                assert_eq!(decoded.one(6), Some(Wire::Varint(kind)));
                assert_eq!(decoded.one(7), Some(Wire::I64(span.start_ns)));
                assert_eq!(decoded.one(8), Some(Wire::I64(span.end_ns)));
                let expected: Vec<(String, Value)> = span
                    .attributes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect();
                assert_eq!(decoded.attributes(9), expected);
                let status = decoded.message(15).expect("a status, even unset");
                match span.status {
                    Status::Error => assert_eq!(status.0, [(3, Wire::Varint(2))]),
                    Status::Unset => assert!(status.0.is_empty()),
                }
                let remote = span.kind == SpanKind::Server && span.parent_span_id.is_some();
                let flags = 0x101 | if remote { 0x200 } else { 0 };
                assert_eq!(decoded.one(16), Some(Wire::I32(flags)));
            }
        }
    }

    /// Byte for byte what prost writes for the message structs (so that the output is
    /// what the official definitions say), whatever the sizes and with one encoder
    /// reused from batch to batch.
    #[test]
    fn encoder_writes_what_prost_writes() {
        let mut edge = Item::sample();
        (edge.span.start_ns, edge.span.end_ns) = (0, 0);
        edge.span.trace_state = Some("".into());
        edge.span.attributes.push(("", "".into()));
        // Three processes; the same two in two runs each.
        let mut three = varied_batch();
        three.extend(varied_batch());
        three[5].resource = resource(3);
        let batches = [
            Vec::new(),
            vec![Item::sample()],
            vec![edge],
            varied_batch(),
            three,
            busy_batch(1024),
            // Over 2 MiB: a 4-byte length around the spans.
            busy_batch(6000),
            busy_batch(3),
        ];
        let (mut encoder, mut out) = (RequestEncoder::default(), Vec::new());
        for batch in &batches {
            out.clear();
            encoder.encode_batch(batch, &mut out);
            let expected = request(batch);
            assert!(out == expected.encode_to_vec(), "{} spans", batch.len());
            let back = ExportTraceServiceRequest::decode(&out[..]).expect("decodes");
            assert_eq!(back, expected);
        }
        // One span at a time: a request each.
        out.clear();
        encoder.encode(&Item::sample(), &mut out);
        assert_eq!(out, request(&[Item::sample()]).encode_to_vec());
    }

    fn config(protocol: Protocol, endpoint: String, gzip: bool) -> Config {
        Config {
            protocol,
            endpoint,
            headers: vec![("X-Test".into(), "1".into())],
            gzip,
            timeout: Duration::from_secs(5),
            certificate: None,
        }
    }

    /// Both protocols, plain and gzip, to a real receiver (a tonic server for gRPC).
    #[test]
    fn sinks_deliver_to_a_receiver() {
        use tracer_tests::receiver::{Kind, Receiver};
        let batch = varied_batch();
        for (kind, protocol) in [
            (Kind::Http, Protocol::HttpProtobuf),
            (Kind::Grpc, Protocol::Grpc),
        ] {
            for gzip in [false, true] {
                let receiver = Receiver::start(kind, None).expect("receiver");
                let mut sink = sink(&config(protocol, receiver.url(), gzip)).expect("sink");
                assert_eq!(sink.send(&batch), Ok(0), "{protocol:?}, gzip {gzip}");
                assert_eq!(sink.send(&batch[..1]), Ok(0), "{protocol:?}, gzip {gzip}");
                let arrivals = receiver.arrivals();
                assert_eq!(arrivals.len(), 2, "{protocol:?}, gzip {gzip}");
                assert_eq!(arrivals[0].otlp, Some(request(&batch)));
                assert_eq!(arrivals[1].otlp, Some(request(&batch[..1])));
                assert_eq!(arrivals[0].gzip, gzip);
                assert_eq!(
                    arrivals[0].headers.get("x-test").map(String::as_str),
                    Some("1")
                );
            }
        }
    }

    /// Batch after batch over the same connection.
    #[test]
    fn http_keeps_its_connection() {
        use std::io::{BufRead as _, BufReader, Read as _};
        use std::sync::{
            Mutex,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        };

        /// Answers `200 OK` to each request of `stream` and keeps its body.
        fn serve(stream: std::net::TcpStream, bodies: &Mutex<Vec<Vec<u8>>>) -> Option<()> {
            let mut writer = stream.try_clone().ok()?;
            let mut reader = BufReader::new(stream);
            loop {
                let mut length = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).ok()? == 0 {
                        return Some(());
                    }
                    if line.trim_end().is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().ok()?;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).ok()?;
                bodies.lock().ok()?.push(body);
                writer
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .ok()?;
            }
        }

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("addr");
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let server = {
            let (accepted, stop, bodies) = (
                Arc::clone(&accepted),
                Arc::clone(&stop),
                Arc::clone(&bodies),
            );
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let bodies = Arc::clone(&bodies);
                    std::thread::spawn(move || serve(stream, &bodies));
                }
            })
        };
        let batch = busy_batch(100);
        let url = format!("http://{addr}/v1/traces");
        let mut sink = sink(&config(Protocol::HttpProtobuf, url, false)).expect("sink");
        for n in [100, 1, 50] {
            assert_eq!(sink.send(&batch[..n]), Ok(0));
        }
        // Wake the accept loop to end it.
        stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(addr);
        server.join().expect("server");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
        let sizes: Vec<usize> = bodies
            .lock()
            .expect("lock")
            .iter()
            .map(|body| {
                let request = ExportTraceServiceRequest::decode(&body[..]).expect("decodes");
                request
                    .resource_spans
                    .iter()
                    .map(|r| r.scope_spans[0].spans.len())
                    .sum()
            })
            .collect();
        assert_eq!(sizes, [100, 1, 50]);
    }
}

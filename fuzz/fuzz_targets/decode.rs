//! Ring-buffer records through the whole user-space pipeline, as the reader drains them:
//! decode (header checks, kind dispatch, aligned and unaligned records), the probe's
//! event-to-span mapping (both `--capture-query` settings, with and without an error
//! type), the clock, and every exporter's encoding. Seeds: events built from the wire
//! structs (`cargo xtask fuzz`).
#![no_main]

use std::sync::{Arc, LazyLock};

use compact_str::CompactString;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tracer::export::{Encoder as _, Item, json::JsonLines, otlp, text, zipkin};
use tracer::pipeline::{
    clock::Clock,
    decode::{Event, decode},
    resource::Resource,
};
use tracer::probes::net_http::{client, server};

static RESOURCE: LazyLock<Arc<Resource>> = LazyLock::new(|| {
    Arc::new(Resource {
        service_name: "fuzz".into(),
        pid: 1,
        executable_path: "/fuzz".into(),
        runtime_version: "go1.24.11".into(),
        host_name: "fuzz".into(),
        attributes: vec![("k8s.pod.name".into(), "fuzz-0".into())],
    })
});

/// Error types the client mapping names specially, and one it does not.
const ERROR_TYPES: [&str; 3] = ["context.deadlineExceededError", "*net.OpError", "\u{0}\"\\"];

fn pipeline(record: &[u8]) {
    let Ok(event) = decode(record) else {
        return;
    };
    let clock = Clock::with_offset(1_700_000_000_000_000_000);
    let mut items = Vec::new();
    for capture_query in [false, true] {
        let mapping = server::Mapping { capture_query };
        let span = match &event {
            Event::NetHttpServer(ev) => server::span(ev, mapping),
            Event::NetHttpClient(ev) => {
                let error_type = (ev.head.err_itab != 0).then(|| {
                    CompactString::from(ERROR_TYPES[ev.head.err_data as usize % ERROR_TYPES.len()])
                });
                client::span(ev, mapping, error_type)
            }
        };
        let mut span = span;
        span.start_ns = clock.to_unix(span.start_ns);
        span.end_ns = clock.to_unix(span.end_ns);
        items.push(Item {
            span,
            resource: Arc::clone(&RESOURCE),
        });
    }
    let mut out = Vec::new();
    let mut json = JsonLines::default();
    for item in &items {
        json.encode(item, &mut out);
        let _ = text::line(item);
    }
    // The encoder the exporters use writes what the message structs encode to.
    let mut encoded = Vec::new();
    otlp::RequestEncoder::default().encode_batch(&items, &mut encoded);
    assert_eq!(encoded, otlp::request(&items).encode_to_vec());
    let _ = zipkin::encode(&items);
}

fuzz_target!(|data: &[u8]| {
    pipeline(data);
    // The same record at an odd address: the decoder copies instead of borrowing.
    let mut shifted = Vec::with_capacity(data.len() + 1);
    shifted.push(0);
    shifted.extend_from_slice(data);
    pipeline(&shifted[1..]);
});

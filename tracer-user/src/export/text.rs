//! `--format text`: one readable line per span, for people.
//!
//! `04:51:02.123 server GET /users/{id} 200 4.10ms pid=4242 trace=4bf9… span=00f0… /users/42`
use super::{Encoder, Item};
use crate::pipeline::span::{Hex, Status, Value};

/// The text encoder.
#[derive(Debug, Default)]
pub struct Text;

/// `HH:MM:SS.mmm` (UTC) of UNIX nanoseconds.
fn clock_time(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let (h, m, s, ms) = (
        (ms / 3_600_000) % 24,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// The line of one span (without newline).
pub fn line(item: &Item) -> String {
    let span = &item.span;
    let status = match span.attribute("http.response.status_code") {
        Some(Value::Int(code)) => code.to_string(),
        _ => "-".to_owned(),
    };
    let millis = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e6;
    let mark = if span.status == Status::Error {
        " ERROR"
    } else {
        ""
    };
    let target = match span
        .attribute("url.full")
        .or_else(|| span.attribute("url.path"))
    {
        Some(Value::Str(s)) => s.as_str(),
        _ => "",
    };
    let parent = span
        .parent_span_id
        .map(|p| format!(" parent={}", Hex::<16>::new(&p)))
        .unwrap_or_default();
    format!(
        "{} {} {} {}{} {:.2}ms {} service={} pid={} trace={} span={}{}",
        clock_time(span.start_ns),
        span.kind.as_str(),
        span.name,
        status,
        mark,
        millis,
        target,
        item.resource.service_name,
        item.resource.pid,
        Hex::<32>::new(&span.trace_id),
        Hex::<16>::new(&span.span_id),
        parent,
    )
}

impl Encoder for Text {
    fn encode(&mut self, item: &Item, out: &mut Vec<u8>) {
        out.extend_from_slice(line(item).as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_clock_time() {
        // 2024-11-23T03:06:40.004Z
        assert_eq!(clock_time(1_732_331_200_004_100_000), "03:06:40.004");
    }
}

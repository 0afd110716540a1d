//! The spans the tracer prints with `--format json`: one JSON object per line (see
//! CONTRACT.md), wrapped for typed access to their fields, attributes and resource.

use std::fmt;

use serde_json::Value;

use crate::{Error, Result};

/// One span as printed by the tracer.
#[derive(Debug, Clone, PartialEq)]
pub struct Span(pub Value);

impl Span {
    /// Parses the tracer's stdout: one JSON object per non-empty line.
    pub fn parse_lines(stdout: &str) -> Result<Vec<Self>> {
        stdout
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| match serde_json::from_str::<Value>(line) {
                Ok(value) if value.is_object() => Ok(Self(value)),
                Ok(_) => Err(Error::new(format!(
                    "stdout line {} is JSON but not an object: {line}",
                    index + 1
                ))),
                Err(e) => Err(Error::new(format!(
                    "stdout line {} is not a JSON span ({e}): {line}",
                    index + 1
                ))),
            })
            .collect()
    }

    /// A top-level field, e.g. `"trace_id"`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A top-level string field.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Value::as_str)
    }

    /// `name`.
    pub fn name(&self) -> Option<&str> {
        self.str_field("name")
    }

    /// `kind`: `"server"` or `"client"`.
    pub fn kind(&self) -> Option<&str> {
        self.str_field("kind")
    }

    /// `status_code`: `"unset"` or `"error"`.
    pub fn status_code(&self) -> Option<&str> {
        self.str_field("status_code")
    }

    /// `trace_id`.
    pub fn trace_id(&self) -> Option<&str> {
        self.str_field("trace_id")
    }

    /// `span_id`.
    pub fn span_id(&self) -> Option<&str> {
        self.str_field("span_id")
    }

    /// `start_time_unix_nano`.
    pub fn start_ns(&self) -> Option<u64> {
        self.field("start_time_unix_nano").and_then(Value::as_u64)
    }

    /// `end_time_unix_nano`.
    pub fn end_ns(&self) -> Option<u64> {
        self.field("end_time_unix_nano").and_then(Value::as_u64)
    }

    /// End minus start, when both are there and in order.
    pub fn duration_ns(&self) -> Option<u64> {
        self.end_ns()?.checked_sub(self.start_ns()?)
    }

    /// An attribute, e.g. `"url.path"`.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.0.get("attributes")?.get(key)
    }

    /// A string attribute.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }

    /// An integer attribute.
    pub fn attr_u64(&self, key: &str) -> Option<u64> {
        self.attr(key).and_then(Value::as_u64)
    }

    /// A resource attribute, e.g. `"service.name"`.
    pub fn resource(&self, key: &str) -> Option<&Value> {
        self.0.get("resource")?.get(key)
    }

    /// A string resource attribute.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        self.resource(key).and_then(Value::as_str)
    }
}

impl fmt::Display for Span {
    /// The span as one line of JSON, for assertion messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The spans of kind `server`.
pub fn server_spans(spans: &[Span]) -> Vec<&Span> {
    spans
        .iter()
        .filter(|span| span.kind() == Some("server"))
        .collect()
}

/// Whether `id` is `len` lowercase hex digits, not all zero (an invalid id in W3C
/// trace context).
pub fn is_valid_id(id: &str, len: usize) -> bool {
    id.len() == len
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

/// All spans, one per line, for assertion messages.
pub fn dump(spans: &[&Span]) -> String {
    spans.iter().map(|span| format!("  {span}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_span_per_line_and_reads_fields() {
        let stdout = "{\"name\":\"GET /x\",\"kind\":\"server\",\"start_time_unix_nano\":5,\
                      \"end_time_unix_nano\":9,\"attributes\":{\"url.path\":\"/x\",\
                      \"server.port\":80},\"resource\":{\"process.pid\":7}}\n\n";
        let spans = Span::parse_lines(stdout).expect("valid spans");
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.name(), Some("GET /x"));
        assert_eq!(span.duration_ns(), Some(4));
        assert_eq!(span.attr_str("url.path"), Some("/x"));
        assert_eq!(span.attr_u64("server.port"), Some(80));
        assert_eq!(
            span.resource("process.pid").and_then(Value::as_u64),
            Some(7)
        );
        assert_eq!(server_spans(&spans).len(), 1);
    }

    #[test]
    fn rejects_lines_that_are_not_json_objects() {
        assert!(Span::parse_lines("{}\nattached pid=1\n").is_err());
        assert!(Span::parse_lines("[1]\n").is_err());
    }

    #[test]
    fn valid_ids_are_lowercase_hex_and_not_zero() {
        assert!(is_valid_id("00f067aa0ba902b7", 16));
        assert!(!is_valid_id("00F067AA0BA902B7", 16));
        assert!(!is_valid_id("0000000000000000", 16));
        assert!(!is_valid_id("00f067aa0ba902b", 16));
    }
}

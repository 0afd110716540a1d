//! `--format text`: one readable line per span, for people.
//!
//! `04:51:02.123 server GET /users/{id} 200 4.10ms pid=4242 trace=4bf9… span=00f0… /users/42`
//!
//! Within a batch, a span whose parent is in the same batch is printed after its parent,
//! indented under it (children end before their parents, so they arrive first).
use std::collections::HashMap;

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

    fn encode_batch(&mut self, batch: &[Item], out: &mut Vec<u8>) {
        for (depth, item) in as_trees(batch) {
            for _ in 0..depth {
                out.extend_from_slice(b"  ");
            }
            self.encode(item, out);
        }
    }
}

/// The items of `batch` with their depth: every item whose parent is not in the batch in
/// batch order, each followed by its descendants in the batch (depth first, in batch
/// order).
fn as_trees(batch: &[Item]) -> Vec<(usize, &Item)> {
    let index: HashMap<[u8; 8], usize> = batch
        .iter()
        .enumerate()
        .map(|(i, item)| (item.span.span_id, i))
        .collect();
    let parent_of = |item: &Item| -> Option<usize> {
        let parent = index.get(&item.span.parent_span_id?).copied()?;
        // A span is never its own parent; ids are unique, so there are no cycles.
        (batch[parent].span.span_id != item.span.span_id).then_some(parent)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); batch.len()];
    let mut roots = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        match parent_of(item) {
            Some(parent) => children[parent].push(i),
            None => roots.push(i),
        }
    }
    let mut ordered = Vec::with_capacity(batch.len());
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (0, i)).collect();
    while let Some((depth, i)) = stack.pop() {
        ordered.push((depth, &batch[i]));
        stack.extend(children[i].iter().rev().map(|&child| (depth + 1, child)));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::span::SpanKind;

    fn item(span: u8, parent: Option<u8>) -> Item {
        let mut item = Item::sample();
        item.span.span_id = [span; 8];
        item.span.parent_span_id = parent.map(|p| [p; 8]);
        item.span.kind = SpanKind::Client;
        (item.span.start_ns, item.span.end_ns) = (0, 0);
        item
    }

    #[test]
    fn children_follow_their_parent_indented() {
        // Children end (and arrive) before their parent; 9's parent is elsewhere.
        let batch = [
            item(2, Some(1)),
            item(3, Some(1)),
            item(9, Some(8)),
            item(1, None),
        ];
        let order: Vec<(usize, u8)> = as_trees(&batch)
            .into_iter()
            .map(|(depth, item)| (depth, item.span.span_id[0]))
            .collect();
        assert_eq!(order, vec![(0, 9), (0, 1), (1, 2), (1, 3)]);
        let mut out = Vec::new();
        Text.encode_batch(&batch, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("  00:00:00.000 client GET"), "{text}");
        assert!(!lines[1].starts_with(' '), "{text}");
    }

    #[test]
    fn formats_clock_time() {
        // 2024-11-23T03:06:40.004Z
        assert_eq!(clock_time(1_732_331_200_004_100_000), "03:06:40.004");
    }
}

//! `--metrics-addr`: the tracer's own counters in the Prometheus text format at
//! `/metrics`. The reader renders a snapshot about once a second; a thread of its own
//! answers scrapes from the latest one, so a scrape never touches the reader's work.
use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::run::Summary;

/// Longest a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// One exporter's state at a snapshot.
pub struct ExporterState {
    pub name: &'static str,
    pub exported: u64,
    pub send_errors: u64,
    pub queued: u64,
}

/// The endpoint.
pub struct Metrics {
    latest: Arc<Mutex<String>>,
    pub addr: SocketAddr,
}

impl Metrics {
    /// Listens on `addr` and answers scrapes on a thread of its own.
    pub fn serve(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let latest = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&latest);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let body = shared.lock().map(|s| s.clone()).unwrap_or_default();
                    if let Err(error) = answer(stream, &body) {
                        log::debug!("metrics: {error}");
                    }
                }
            })?;
        Ok(Self { latest, addr })
    }

    /// Replaces what scrapes get.
    pub fn publish(&self, summary: &Summary, exporters: &[ExporterState], processes: usize) {
        let text = render(summary, exporters, processes);
        if let Ok(mut latest) = self.latest.lock() {
            *latest = text;
        }
    }
}

/// Answers one HTTP request: the metrics for `GET /metrics`, 404 for anything else.
fn answer(stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The rest of the head, unread, would reset the connection on close.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n",
        )
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The Prometheus text of a snapshot.
pub fn render(summary: &Summary, exporters: &[ExporterState], processes: usize) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let by_exporter = |value: fn(&ExporterState) -> u64| -> Vec<(String, u64)> {
        exporters
            .iter()
            .map(|e| (format!("{{exporter=\"{}\"}}", e.name), value(e)))
            .collect()
    };
    family(
        "tracer_spans_exported_total",
        "counter",
        "Spans each exporter delivered.",
        &by_exporter(|e| e.exported),
    );
    family(
        "tracer_spans_dropped_total",
        "counter",
        "Spans lost, by reason (summed over exporters for export_* reasons).",
        &summary
            .drops
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n))
            .collect::<Vec<_>>(),
    );
    family(
        "tracer_spans_sampled_out_total",
        "counter",
        "Spans the sampler left out.",
        &[(String::new(), summary.sampled_out)],
    );
    family(
        "tracer_export_errors_total",
        "counter",
        "Export attempts that failed (each retry counts).",
        &by_exporter(|e| e.send_errors),
    );
    family(
        "tracer_export_queue_spans",
        "gauge",
        "Spans waiting for each exporter.",
        &by_exporter(|e| e.queued),
    );
    family(
        "tracer_events_total",
        "counter",
        "Other counted events (injection outcomes, incomplete spans, process events).",
        &summary
            .incomplete
            .iter()
            .map(|(event, n)| (format!("{{event=\"{event}\"}}"), *n))
            .collect::<Vec<_>>(),
    );
    family(
        "tracer_traced_processes",
        "gauge",
        "Processes traced now.",
        &[(String::new(), processes as u64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn serves_the_latest_snapshot() {
        let metrics = Metrics::serve("127.0.0.1:0".parse().expect("addr")).expect("binds");
        let summary = Summary {
            exported: 5,
            drops: vec![("ringbuf_full", 2)],
            sampled_out: 1,
            in_flight_at_exit: 0,
            incomplete: vec![("injected", 3)],
        };
        let exporters = [ExporterState {
            name: "otlp",
            exported: 5,
            send_errors: 4,
            queued: 7,
        }];
        metrics.publish(&summary, &exporters, 2);
        let get = |path: &str| {
            let mut stream = TcpStream::connect(metrics.addr).expect("connects");
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("writes");
            let mut response = String::new();
            stream.read_to_string(&mut response).expect("reads");
            response
        };
        let response = get("/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        for line in [
            "tracer_spans_exported_total{exporter=\"otlp\"} 5",
            "tracer_spans_dropped_total{reason=\"ringbuf_full\"} 2",
            "tracer_export_errors_total{exporter=\"otlp\"} 4",
            "tracer_export_queue_spans{exporter=\"otlp\"} 7",
            "tracer_events_total{event=\"injected\"} 3",
            "tracer_traced_processes 2",
            "# TYPE tracer_export_queue_spans gauge",
        ] {
            assert!(response.contains(line), "{line} missing in {response}");
        }
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }
}

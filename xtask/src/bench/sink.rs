//! An OTLP/HTTP sink for `cargo xtask bench --export otlp`: accepts the tracer's
//! connections on loopback, reads every request (headers and `Content-Length` bytes of
//! body) and answers `200 OK` with an empty protobuf body (a valid, empty
//! `ExportTraceServiceResponse`). It decodes nothing: what is measured is the tracer's
//! encoding and sending. Its threads run on one CPU, the load's.
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::{Context as _, Result};

/// Largest request body read; bigger ones end the connection.
const MAX_BODY: usize = 64 << 20;

pub struct Sink {
    addr: SocketAddr,
}

impl Sink {
    /// Listens on 127.0.0.1 (a free port); every thread pinned to `cpu`. The threads live
    /// as long as the bench.
    pub fn start(cpu: usize) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the OTLP sink")?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                pin(cpu);
                for stream in listener.incoming().flatten() {
                    let _ = std::thread::Builder::new()
                        .name("otlp-sink-conn".into())
                        .spawn(move || {
                            pin(cpu);
                            let _ = serve(stream);
                        });
                }
            })?;
        Ok(Self { addr })
    }

    /// The tracer's arguments to export to this sink only.
    pub fn tracer_args(&self) -> Vec<String> {
        vec![
            "--exporter".into(),
            "otlp".into(),
            "--otlp-protocol".into(),
            "http/protobuf".into(),
            "--otlp-endpoint".into(),
            format!("http://{}", self.addr),
        ]
    }
}

/// Answers the requests of one connection until it closes.
fn serve(stream: TcpStream) -> Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        // The request line, then headers up to the empty line.
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("Content-Length")?;
            }
        }
        if length > MAX_BODY {
            anyhow::bail!("a {length}-byte request");
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        )?;
    }
}

/// Pins the calling thread to `cpu` (best effort: an unpinned sink only skews the bench).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it, and
    // sched_setaffinity reads it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

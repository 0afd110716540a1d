//! Back ends the exporters are tested against, on loopback: an OTLP receiver over gRPC
//! (a real tonic server with the official `opentelemetry-proto` service) or over
//! HTTP/protobuf, and Zipkin's `POST /api/v2/spans`; with TLS from a test certificate
//! authority ([`TestCa`]) when asked. Each records what arrived: decoded requests, their
//! headers and whether they came compressed. A receiver can be stopped and started again
//! on the same port, to play a back end that goes down.
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message as _;

use crate::{Context as _, Result};

/// How a receiver is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Grpc,
    /// OTLP/HTTP at `/v1/traces`.
    Http,
    /// Zipkin v2 JSON at `/api/v2/spans`.
    Zipkin,
}

/// One request that arrived.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Lowercase header (or gRPC metadata) names.
    pub headers: HashMap<String, String>,
    /// Whether the body came gzip-compressed.
    pub gzip: bool,
    pub path: String,
    /// OTLP: the decoded request.
    pub otlp: Option<ExportTraceServiceRequest>,
    /// Zipkin: the JSON body.
    pub zipkin: Option<serde_json::Value>,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

/// A running receiver.
pub struct Receiver {
    kind: Kind,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_pem: Option<(String, String)>,
    arrivals: Arrivals,
    server: Option<Server>,
}

enum Server {
    Grpc {
        runtime: tokio::runtime::Runtime,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    },
    Http(HttpServer),
}

impl Receiver {
    /// Starts a receiver of `kind` on a free loopback port, over TLS with a certificate
    /// of `ca` when given.
    pub fn start(kind: Kind, ca: Option<&TestCa>) -> Result<Self> {
        let mut receiver = Self {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: ca.map(TestCa::server_config).transpose()?,
            tls_pem: ca.map(|ca| (ca.server_cert_pem.clone(), ca.server_key_pem.clone())),
            arrivals: Arc::default(),
            server: None,
        };
        receiver.resume()?;
        Ok(receiver)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scheme, host and port (`https` with TLS; `localhost`, which the test certificate
    /// names): what `OTEL_EXPORTER_OTLP_ENDPOINT` takes.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = if self.tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// The whole URL spans go to (with `/v1/traces` or `/api/v2/spans`).
    pub fn url(&self) -> String {
        let path = match self.kind {
            Kind::Grpc => "",
            Kind::Http => "/v1/traces",
            Kind::Zipkin => "/api/v2/spans",
        };
        format!("{}{path}", self.base_url())
    }

    /// Everything that arrived so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The spans that arrived, each with its resource's attributes (OTLP).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for arrival in self.arrivals() {
            let Some(request) = arrival.otlp else {
                continue;
            };
            for resource_spans in request.resource_spans {
                let resource = resource_spans.resource.unwrap_or_default();
                for scope_spans in resource_spans.scope_spans {
                    for span in scope_spans.spans {
                        out.push(ReceivedSpan {
                            resource: resource.clone(),
                            scope: scope_spans.scope.clone().unwrap_or_default(),
                            schema_url: scope_spans.schema_url.clone(),
                            span,
                        });
                    }
                }
            }
        }
        out
    }

    /// The Zipkin spans that arrived.
    pub fn zipkin_spans(&self) -> Vec<serde_json::Value> {
        self.arrivals()
            .into_iter()
            .filter_map(|a| a.zipkin)
            .flat_map(|body| body.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Stops listening and closes every connection: the back end is down.
    pub fn stop(&mut self) {
        match self.server.take() {
            Some(Server::Grpc { runtime, mut stop }) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                runtime.shutdown_timeout(Duration::from_secs(2));
            }
            Some(Server::Http(server)) => server.stop(),
            None => {}
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) -> Result<()> {
        let listener = bind(self.addr)?;
        self.addr = listener.local_addr().context("receiver address")?;
        self.server = Some(match self.kind {
            Kind::Grpc => self.serve_grpc(listener)?,
            Kind::Http | Kind::Zipkin => Server::Http(HttpServer::start(
                listener,
                self.tls.clone(),
                Arc::clone(&self.arrivals),
            )?),
        });
        Ok(())
    }

    fn serve_grpc(&self, listener: TcpListener) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("start the gRPC receiver's runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(Collector {
            arrivals: Arc::clone(&self.arrivals),
        })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut builder = tonic::transport::Server::builder();
        if let Some((cert, key)) = &self.tls_pem {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .context("the gRPC receiver's TLS")?;
        }
        listener
            .set_nonblocking(true)
            .context("a non-blocking listener")?;
        let router = builder.add_service(service);
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Server::Grpc {
            runtime,
            stop: Some(stop),
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A span as it arrived over OTLP, with where it came from.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: opentelemetry_proto::tonic::resource::v1::Resource,
    pub scope: opentelemetry_proto::tonic::common::v1::InstrumentationScope,
    pub schema_url: String,
    pub span: opentelemetry_proto::tonic::trace::v1::Span,
}

/// Binds `addr`, retrying a moment if the port is still held (a restart on the same
/// port).
fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(crate::Error::new(format!(
        "bind the receiver to {addr}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// The OTLP trace service: records each request.
struct Collector {
    arrivals: Arrivals,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> std::result::Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers: HashMap<String, String> = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let gzip = headers.get("grpc-encoding").is_some_and(|e| e == "gzip");
        let arrival = Arrival {
            headers,
            gzip,
            path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export".into(),
            otlp: Some(request.into_inner()),
            zipkin: None,
        };
        if let Ok(mut arrivals) = self.arrivals.lock() {
            arrivals.push(arrival);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A small HTTP/1.1 server (keep-alive, Content-Length bodies), one thread per
/// connection.
struct HttpServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        arrivals: Arrivals,
    ) -> Result<Self> {
        let addr = listener.local_addr().context("receiver address")?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop_flag, open) = (Arc::clone(&stopping), Arc::clone(&connections));
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let (Ok(mut open), Ok(clone)) = (open.lock(), stream.try_clone()) {
                    open.push(clone);
                }
                let (tls, arrivals) = (tls.clone(), Arc::clone(&arrivals));
                thread::spawn(move || {
                    let _ = match tls {
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(connection) => {
                                serve(rustls::StreamOwned::new(connection, stream), &arrivals)
                            }
                            Err(_) => Ok(()),
                        },
                        None => serve(stream, &arrivals),
                    };
                });
            }
        });
        Ok(Self {
            addr,
            stopping,
            connections,
            accept: Some(accept),
        })
    }

    fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        if let Ok(open) = self.connections.lock() {
            for stream in open.iter() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Answers the requests of one connection until it closes.
fn serve(stream: impl Read + Write, arrivals: &Mutex<Vec<Arrival>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let gzip = headers.get("content-encoding").is_some_and(|e| e == "gzip");
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
            body = plain;
        }
        let (status, answer) = if path == "/v1/traces" {
            match ExportTraceServiceRequest::decode(&body[..]) {
                Ok(request) => {
                    record(arrivals, &headers, gzip, &path, Some(request), None);
                    (
                        "200 OK",
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
                Err(_) => ("400 Bad Request", Vec::new()),
            }
        } else if path == "/api/v2/spans" {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(json) => {
                    record(arrivals, &headers, gzip, &path, None, Some(json));
                    ("202 Accepted", Vec::new())
                }
                Err(_) => ("400 Bad Request", Vec::new()),
            }
        } else {
            ("404 Not Found", Vec::new())
        };
        let stream = reader.get_mut();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )?;
        stream.write_all(&answer)?;
        stream.flush()?;
    }
}

fn record(
    arrivals: &Mutex<Vec<Arrival>>,
    headers: &HashMap<String, String>,
    gzip: bool,
    path: &str,
    otlp: Option<ExportTraceServiceRequest>,
    zipkin: Option<serde_json::Value>,
) {
    if let Ok(mut arrivals) = arrivals.lock() {
        arrivals.push(Arrival {
            headers: headers.clone(),
            gzip,
            path: path.to_owned(),
            otlp,
            zipkin,
        });
    }
}

/// A certificate authority made for one test, and a server certificate it signed for
/// `localhost` and 127.0.0.1; the CA's PEM is written to a file for the tracer.
pub struct TestCa {
    pub ca_file: PathBuf,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    /// Makes the CA and writes its certificate into `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tracer test CA");
        let ca_key = KeyPair::generate().context("CA key")?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("CA certificate")?;
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .context("server params")?;
        let server_key = KeyPair::generate().context("server key")?;
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .context("server certificate")?;
        std::fs::create_dir_all(dir).context(format_args!("create {}", dir.display()))?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).context(format_args!("write {}", ca_file.display()))?;
        Ok(Self {
            ca_file,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// The rustls configuration of the HTTP receivers.
    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .context("the server certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .context("the server key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the server certificate and key")?;
        Ok(Arc::new(config))
    }
}

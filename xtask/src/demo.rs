//! `cargo xtask demo`: trace a handful of requests to the Go demo service
//! (`tests/go/net_http_server`) and print the spans the tracer writes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::tracer::{Launch, Stopped, Tracer};
use crate::{cmd, go, http, setup, target_dir, test, workspace_root};

/// The Go release the demo service is built with.
const GO_VERSION: &str = "1.24.11";

/// Everything after the builds must finish within this.
const OVERALL: Duration = Duration::from_secs(20);

/// How long spans get to reach the tracer's output before it is interrupted.
const SETTLE: Duration = Duration::from_millis(300);

/// The requests sent: method, path, body.
const REQUESTS: &[(&str, &str, &str)] = &[
    ("GET", "/hello", ""),
    ("POST", "/users", r#"{"name":"ada"}"#),
    ("GET", "/users/42", ""),
    ("GET", "/status/404", ""),
    ("GET", "/status/500", ""),
    ("GET", "/sleep?ms=50", ""),
];

pub fn run() -> Result<()> {
    cmd::ensure_root("cargo xtask demo", "the tracer attaches uprobes")?;
    setup::run()?;
    test::build_release()?;
    let service = build_service()?;
    let deadline = Instant::now() + OVERALL;

    let mut server = go::Server::start(
        "net_http_server",
        Command::new(&service).args(["-addr", "127.0.0.1:0"]),
        deadline,
    )?;
    let launch = Launch {
        pid: server.process.pid(),
        cpu: None,
        args: &["--format", "text"],
        stdout: Stdio::piped(),
    };
    let tracer = Tracer::attach(launch, deadline)?;
    send_requests(server.addr, deadline)?;
    thread::sleep(SETTLE);
    let stopped = tracer.stop(deadline)?;
    server.process.kill();
    report(&stopped)
}

/// Prints the spans (stdout) and fails if the tracer did.
fn report(stopped: &Stopped) -> Result<()> {
    let status = stopped.status;
    cmd::say(format!(
        "demo: tracer exited ({status}); its {} output lines:",
        stopped.stdout.len()
    ));
    for line in &stopped.stdout {
        println!("{line}");
    }
    if !status.success() {
        bail!("the tracer failed ({status})");
    }
    Ok(())
}

/// Builds the demo service into `target/xtask/`.
fn build_service() -> Result<PathBuf> {
    let out = target_dir().join("xtask").join("net_http_server");
    let package = workspace_root()
        .join("tests")
        .join("go")
        .join("net_http_server");
    go::build(&setup::go_bin(GO_VERSION)?, &package, &out)?;
    Ok(out)
}

/// Sends [`REQUESTS`] one after the other, printing each status.
fn send_requests(addr: SocketAddr, deadline: Instant) -> Result<()> {
    for (method, path, body) in REQUESTS {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("demo ran out of time while sending requests");
        }
        let status = http::send(addr, method, path, body, left.min(Duration::from_secs(5)))?;
        cmd::say(format!("demo: {method} {path} -> {status}"));
    }
    Ok(())
}

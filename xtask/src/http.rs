//! A minimal HTTP/1.1 client over `TcpStream` (one request per connection,
//! `Connection: close`), enough to drive the demo service without extra dependencies.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result};

/// Sends one request to `addr` and returns the response's status code.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request(addr, method, path, body).as_bytes())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading the response to {method} {path}"))?;
    status(&response).with_context(|| format!("bad response to {method} {path}"))
}

/// The request's bytes.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: xtask-demo\r\nConnection: close\r\n"
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    format!("{head}\r\n{body}")
}

/// The status code from a response's status line (`HTTP/1.1 200 OK`).
fn status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_line() {
        assert_eq!(
            status(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Some(404)
        );
        assert_eq!(status(b"garbage"), None);
        assert_eq!(status(b""), None);
    }

    #[test]
    fn post_carries_its_length() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 80));
        let req = request(addr, "POST", "/users", "{}");
        assert!(req.starts_with("POST /users HTTP/1.1\r\n"));
        assert!(req.contains("Content-Length: 2\r\n"));
        assert!(req.ends_with("\r\n\r\n{}"));
    }
}

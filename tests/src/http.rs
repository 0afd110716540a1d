//! A minimal HTTP/1.1 client over `std::net::TcpStream`, enough to drive the fixtures:
//! one request per connection ([`request`], [`get`]: `Connection: close`), or several
//! requests on one keep-alive [`Connection`]. Every connect, read and write has a
//! timeout.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

/// The `User-Agent` the client sends: the expected `user_agent.original`.
pub const USER_AGENT: &str = "tracer-tests/1.0";

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A response, with what the tests need to match it to its span.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer coding removed).
    pub body: Vec<u8>,
    /// The client's end of the connection: the span's `client.address`/`client.port`.
    pub local_addr: SocketAddr,
    /// Just before the request was written: no earlier than the span's start.
    pub sent_at: SystemTime,
    /// Once the whole response was read: no earlier than the span's end.
    pub received_at: SystemTime,
}

impl Response {
    /// The first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a new connection (`Connection: close`) and reads the response.
///
/// `target` is the path with its query, e.g. `/users/42?a=1`. `headers` are added to
/// `Host`, `User-Agent` (unless given), `Connection` and `Content-Length` (sent when
/// there is a body, and always for POST, PUT and PATCH).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    Connection::open(addr)?.send_last(method, target, headers, body)
}

/// `GET target` on a new connection.
pub fn get(addr: SocketAddr, target: &str) -> io::Result<Response> {
    request(addr, "GET", target, &[], &[])
}

/// One HTTP/1.1 connection, for several requests in a row (keep-alive).
pub struct Connection {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
    local_addr: SocketAddr,
}

impl Connection {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let local_addr = stream.local_addr()?;
        Ok(Self {
            reader: BufReader::new(stream),
            addr,
            local_addr,
        })
    }

    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends a request asking to keep the connection open and reads the response.
    /// See [`request`] for the arguments.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.exchange(method, target, headers, body, "keep-alive")
    }

    /// Sends a last request (`Connection: close`) and reads the response.
    pub fn send_last(
        mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.exchange(method, target, headers, body, "close")
    }

    fn exchange(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        connection: &str,
    ) -> io::Result<Response> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        {
            head.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        head.push_str(&format!("Connection: {connection}\r\n"));
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(body);

        let sent_at = SystemTime::now();
        self.reader.get_mut().write_all(&message)?;
        let ((status, headers), body) = read_response(&mut self.reader, method)?;
        Ok(Response {
            status,
            headers,
            body,
            local_addr: self.local_addr,
            sent_at,
            received_at: SystemTime::now(),
        })
    }
}

/// A status code and header fields.
type Head = (u16, Vec<(String, String)>);

/// Reads one response (skipping 1xx interim responses) to the request `method`.
fn read_response(reader: &mut impl BufRead, method: &str) -> io::Result<(Head, Vec<u8>)> {
    let (status, headers) = loop {
        let head = read_head(reader)?;
        if !(100..200).contains(&head.0) {
            break head;
        }
    };
    let field = |name: &str| {
        headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 {
        // No body, whatever the header fields say.
    } else if field("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
    {
        body = read_chunked(reader)?;
    } else if let Some(length) = field("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(((status, headers), body))
}

/// Reads a status line and header fields, up to the empty line.
fn read_head(reader: &mut impl BufRead) -> io::Result<Head> {
    let status_line = read_line(reader)?.ok_or_else(|| {
        io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed before a response",
        )
    })?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad status line {status_line:?}")));
    };
    let status = code
        .parse()
        .ok()
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| {
            io::Error::new(ErrorKind::UnexpectedEof, "connection closed in the header")
        })?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header field {line:?}")))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
}

/// Reads a body in the chunked transfer coding (trailer fields ignored).
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| {
            io::Error::new(ErrorKind::UnexpectedEof, "connection closed in a chunk")
        })?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            while read_line(reader)?.is_some_and(|trailer| !trailer.is_empty()) {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if read_line(reader)?.is_none_or(|rest| !rest.is_empty()) {
            return Err(invalid("chunk not followed by CRLF".to_owned()));
        }
    }
}

/// Reads one line without its CRLF; `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| invalid("a line that is not UTF-8".to_owned()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(raw: &str, method: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let ((status, headers), body) =
            read_response(&mut Cursor::new(raw.as_bytes()), method).expect("a valid response");
        (status, headers, body)
    }

    #[test]
    fn reads_a_content_length_body_and_stops_there() {
        let raw =
            "HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\ncreated 3HTTP/1.1 200 OK\r\n\r\n";
        let mut reader = Cursor::new(raw.as_bytes());
        let ((status, headers), body) = read_response(&mut reader, "POST").expect("a response");
        assert_eq!(status, 201);
        assert_eq!(headers, vec![("Content-Length".to_owned(), "9".to_owned())]);
        assert_eq!(body, b"created 3");
        let ((next, _), _) = read_response(&mut reader, "GET").expect("the next response");
        assert_eq!(next, 200);
    }

    #[test]
    fn decodes_chunked_bodies() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(parse(raw, "GET").2, b"hello!");
    }

    #[test]
    fn no_body_for_204_and_head_and_skips_interim_responses() {
        assert_eq!(parse("HTTP/1.1 204 No Content\r\n\r\n", "DELETE").0, 204);
        let (status, _, body) = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD");
        assert_eq!((status, body.len()), (200, 0));
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil eof";
        assert_eq!(parse(raw, "GET"), (200, vec![], b"until eof".to_vec()));
    }

    #[test]
    fn a_closed_connection_is_unexpected_eof() {
        let error = read_response(&mut Cursor::new(&b""[..]), "GET").expect_err("no response");
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        let error = read_response(&mut Cursor::new(&b"junk\r\n\r\n"[..]), "GET").expect_err("junk");
        assert_eq!(error.kind(), ErrorKind::InvalidData);
    }
}

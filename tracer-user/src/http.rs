//! The HTTP client of the tracer's outside calls (OTLP/HTTP, Zipkin, the pod list): TLS
//! by rustls, trusting either the public certificate authorities or the ones a file names.
use std::{path::Path, time::Duration};

use anyhow::Context as _;

/// An HTTP client with `timeout` for a whole call, that trusts the certificates in the
/// PEM file `ca_file` (if given, else the public authorities). Statuses other than 2xx
/// are answers, not errors: callers look at them.
pub fn agent(ca_file: Option<&Path>, timeout: Duration) -> anyhow::Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca_file) = ca_file {
        let pem = std::fs::read(ca_file).with_context(|| format!("read {}", ca_file.display()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(cert) =
                item.with_context(|| format!("parse {}", ca_file.display()))?
            {
                certs.push(cert);
            }
        }
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", ca_file.display());
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .new_agent())
}

/// The seconds of a `Retry-After: N` header (the HTTP-date form is not used by OTLP
/// receivers and is ignored).
pub fn retry_after<B>(response: &ureq::http::Response<B>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Why the host and port of `url` cannot be connected to now, if they cannot (checked
/// once at start, so that a back end that is down is said at once, not at the first
/// span).
pub fn unreachable(url: &str) -> Option<String> {
    use std::net::{TcpStream, ToSocketAddrs as _};
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let target = if has_port {
        authority.to_owned()
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{authority}:{port}")
    };
    let addrs = match target.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(error) => return Some(format!("{target}: {error}")),
    };
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(1)) {
            Ok(_) => return None,
            Err(error) => last = Some(format!("{target}: {error}")),
        }
    }
    Some(last.unwrap_or_else(|| format!("{target}: no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(
            unreachable(&format!("http://127.0.0.1:{port}/v1/traces")),
            None
        );
        assert_eq!(unreachable(&format!("127.0.0.1:{port}")), None);
        drop(listener);
        let why = unreachable(&format!("http://127.0.0.1:{port}/v1/traces"));
        assert!(why.is_some_and(|w| w.contains(&format!("127.0.0.1:{port}"))));
    }
}

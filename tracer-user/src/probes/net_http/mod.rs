//! Go `net/http`.
pub mod client;
pub mod server;

/// Every struct member the `net/http` probes read, the header map's included:
/// `(struct, members)`.
pub fn fields() -> Vec<(&'static str, &'static [&'static str])> {
    server::FIELDS
        .iter()
        .chain(client::FIELDS)
        .chain(crate::target::gomap::FIELDS)
        .copied()
        .collect()
}

/// Where other eBPF tracers end spans, for [`super::Placement::EntryAndReturns`]: the
/// server's at the `ret`s of the handler dispatch (whose goroutine still holds the request
/// and response its start recorded), the client's at the `ret`s of `net/http.send` (the
/// results the after-call probe reads are then in the same registers).
pub const AT_RETURNS: &[(&str, &str)] = &[
    ("net_http_server_finish", "net/http.serverHandler.ServeHTTP"),
    ("net_http_client_finish", "net/http.send"),
];

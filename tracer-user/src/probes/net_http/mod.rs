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

//! Go `net/http`: server spans and client spans.
pub mod client;
pub mod inject;
pub mod server;

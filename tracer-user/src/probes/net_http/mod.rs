//! Go `net/http`.
pub mod client;
pub mod server;

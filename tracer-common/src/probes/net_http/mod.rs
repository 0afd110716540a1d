//! Go `net/http`.
pub mod server;

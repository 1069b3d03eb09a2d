//! Classification of reassembled TCP streams: probe order, protocol switches (CONNECT, STARTTLS,
//! h2c upgrade), and the per-flow protocol facts.

pub mod http;
pub mod tls;

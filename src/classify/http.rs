//! HTTP/1.x parsing over reassembled streams. (Being written; API fixed below.)

use crate::sanitize::WireBytes;
use crate::wire::{Probe, Side};
use serde::Serialize;

/// Settings for one HTTP session.
#[derive(Clone, Copy, Debug)]
pub struct HttpConfig {
    /// Show credential-bearing header values instead of `<redacted N bytes>`.
    pub show_secrets: bool,
    /// Maximum bytes of one header block buffered per side.
    pub max_header_bytes: usize,
    /// Maximum requests (and responses) recorded per flow; later ones are only counted.
    pub max_messages: usize,
}

/// Where a stream goes after HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchTo {
    /// CONNECT answered 2xx: the rest is a tunnel (often TLS).
    Tunnel,
    /// HTTP/2 cleartext: prior-knowledge preface, or `101` to `Upgrade: h2c`.
    H2c,
    /// `101 Switching Protocols` to something else (websocket, ...).
    Upgraded,
}

/// What the HTTP parser wants after being fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFeed {
    /// Keep feeding this side.
    More,
    /// Stop parsing this side.
    Done,
    /// `data[at..]` of this call and all later bytes of this side are another protocol.
    Switch {
        /// Offset in the fed slice where HTTP ends.
        at: usize,
        /// The protocol that follows.
        to: SwitchTo,
    },
}

/// HTTP/1 state of one flow.
pub struct HttpSession {}

impl HttpSession {
    /// A new session.
    pub fn new(_cfg: HttpConfig) -> HttpSession {
        HttpSession {}
    }
    /// Feeds in-order stream bytes of `side`.
    pub fn feed(&mut self, _side: Side, _data: &[u8]) -> HttpFeed {
        HttpFeed::Done
    }
    /// Bytes of `side` were lost.
    pub fn gap(&mut self, _side: Side) {}
    /// Side that sent requests.
    pub fn client_side(&self) -> Option<Side> {
        None
    }
    /// At least one request or response was parsed.
    pub fn saw_http(&self) -> bool {
        false
    }
    /// Drains warnings.
    pub fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Final facts, with `client` the side decided to be the client.
    pub fn finish(&self, _client: Side) -> HttpReport {
        HttpReport::default()
    }
}

/// Does `data` start with an HTTP/1 request line?
pub fn probe_request(_data: &[u8]) -> Probe {
    Probe::NoMatch
}

/// Does `data` start with an HTTP/1 status line?
pub fn probe_response(_data: &[u8]) -> Probe {
    Probe::NoMatch
}

/// Facts about HTTP/1 in a flow, serialized as the `http` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpReport {
    /// Version of the first message, e.g. "HTTP/1.1".
    pub version: Option<String>,
}

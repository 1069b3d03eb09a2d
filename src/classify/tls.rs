//! TLS handshake parsing over reassembled streams. (Being written; API fixed below.)

use crate::sanitize::WireBytes;
use crate::wire::{Feed, Probe, Side, Timestamp};
use serde::Serialize;

/// Memory limits for one TLS session.
#[derive(Clone, Copy, Debug)]
pub struct TlsLimits {
    /// Maximum bytes buffered per side for a record or handshake message that spans segments.
    pub max_buffer: usize,
}

/// TLS state of one flow.
pub struct TlsSession {}

impl TlsSession {
    /// A new session.
    pub fn new(_limits: TlsLimits) -> TlsSession {
        TlsSession {}
    }
    /// Feeds in-order stream bytes of `side`, seen at `ts`.
    pub fn feed(&mut self, _side: Side, _data: &[u8], _ts: Timestamp) -> Feed {
        Feed::Done
    }
    /// Bytes of `side` were lost.
    pub fn gap(&mut self, _side: Side) {}
    /// Side that sent the ClientHello (or the opposite of the ServerHello sender).
    pub fn client_side(&self) -> Option<Side> {
        None
    }
    /// At least one well-formed TLS record was parsed.
    pub fn saw_tls(&self) -> bool {
        false
    }
    /// Drains warnings (malformed messages, limits hit).
    pub fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Final facts, with `client` the side decided to be the client.
    pub fn finish(&self, _client: Side) -> TlsReport {
        TlsReport::default()
    }
}

/// Does `data` start like a TLS stream?
pub fn probe(_data: &[u8]) -> Probe {
    Probe::NoMatch
}

/// Offset of the first plausible TLS record header in `data` (mid-stream resync).
pub fn resync(_data: &[u8]) -> Option<usize> {
    None
}

/// Offset of a TLS ClientHello record header in `data` (STARTTLS and tunnels).
pub fn find_client_hello(_data: &[u8]) -> Option<usize> {
    None
}

/// Facts about a TLS session, serialized as the `tls` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsReport {
    /// Negotiated version, e.g. "TLS 1.3".
    pub version: Option<String>,
    /// SNI host name of the first ClientHello.
    pub sni: Option<WireBytes>,
    /// ALPN protocols offered in the first ClientHello, in order.
    pub alpn_offered: Vec<WireBytes>,
    /// ALPN protocol selected by the ServerHello (TLS ≤ 1.2 only).
    pub alpn_selected: Option<WireBytes>,
    /// Cipher suite name.
    pub cipher: Option<String>,
    /// mTLS verdict: yes, no, likely, unlikely, unknown.
    pub mtls: &'static str,
    /// Evidence for the verdict.
    pub mtls_reason: String,
    /// Server certificate chain.
    pub server_certs: Vec<CertInfo>,
    /// Client certificate chain.
    pub client_certs: Vec<CertInfo>,
}

/// One certificate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: Option<String>,
    /// URI SANs.
    pub san_uris: Vec<String>,
    /// Expired when seen.
    pub expired: bool,
    /// Not yet valid when seen.
    pub not_yet_valid: bool,
}

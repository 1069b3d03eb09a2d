//! TLS handshakes over reassembled streams: ClientHello (SNI, ALPN, versions), ServerHello
//! (version, cipher, ALPN, HelloRetryRequest, resumption), certificates, CertificateRequest,
//! the client's Certificate, cleartext alerts, and the mTLS verdict (TLS ≤ 1.2).
//!
//! Records are parsed in place when a chunk holds them whole; only a record or handshake message
//! that spans chunks is copied, into per-side buffers bounded by [`TlsLimits::max_buffer`]
//! (records themselves are at most [`MAX_RECORD`] bytes). A side is done — the flow layer stops
//! buffering it — once it sends ChangeCipherSpec or application data, or, for the server of a
//! TLS 1.3 session, once its ServerHello is read: everything after is encrypted.
//!
//! Hello messages are read by our own bounds-checked code rather than tls-parser's: this is the
//! core of the tool, it must keep going over GREASE, ECH, draft versions and malformed
//! extensions (tls-parser stops at the first extension it cannot parse), and it only needs a
//! handful of fields. tls-parser provides the cipher-suite names.

use super::cert::{parse_cert, CertInfo};
use crate::sanitize::WireBytes;
use crate::wire::{Feed, Probe, Side, Timestamp};
use serde::Serialize;

/// Largest TLS record body accepted (2^14 + 2048, RFC 5246 §6.2.3).
pub const MAX_RECORD: usize = 16384 + 2048;
/// Warnings kept per flow.
const MAX_WARNINGS: usize = 16;
/// Certificates kept per chain.
const MAX_CHAIN: usize = 16;
/// RFC 8446 §4.1.3: the ServerHello random that marks a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2,
    0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Memory limits for one TLS session.
#[derive(Clone, Copy, Debug)]
pub struct TlsLimits {
    /// Maximum bytes buffered per side for a handshake message that spans records.
    pub max_buffer: usize,
}

/// A cleartext alert.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TlsAlert {
    /// "client" or "server".
    pub from: &'static str,
    /// "warning", "fatal" or the number.
    pub level: String,
    /// Name (`handshake_failure`) or the number.
    pub description: String,
}

/// Facts about a TLS session, serialized as the `tls` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsReport {
    /// Negotiated version, e.g. "TLS 1.3".
    pub version: Option<String>,
    /// legacy_version of the first ClientHello.
    pub legacy_version: Option<String>,
    /// supported_versions of the first ClientHello (GREASE skipped), or its legacy_version.
    pub versions_offered: Vec<String>,
    /// SNI host name of the first ClientHello.
    pub sni: Option<WireBytes>,
    /// ALPN protocols offered in the first ClientHello, in order.
    pub alpn_offered: Vec<WireBytes>,
    /// ALPN protocol selected by the ServerHello (TLS ≤ 1.2 only).
    pub alpn_selected: Option<WireBytes>,
    /// Cipher suite name.
    pub cipher: Option<String>,
    /// The server sent a HelloRetryRequest.
    pub hello_retry_request: bool,
    /// session_id, session_ticket or psk.
    pub resumption: Option<&'static str>,
    /// Cleartext alerts.
    pub alerts: Vec<TlsAlert>,
    /// Server certificate chain, in the order sent.
    pub server_certs: Vec<CertInfo>,
    /// Client certificate chain, in the order sent.
    pub client_certs: Vec<CertInfo>,
    /// The server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// The client answered with an empty Certificate.
    pub client_cert_empty: bool,
    /// mTLS verdict: yes, no, likely, unlikely, unknown.
    pub mtls: &'static str,
    /// Evidence for the verdict.
    pub mtls_reason: String,
    /// The first ClientHello used the SSLv2 record format.
    pub sslv2_client_hello: bool,
}

#[derive(Default)]
struct SideTls {
    /// A record that spans chunks (header included), at most 5 + MAX_RECORD bytes.
    rec: Vec<u8>,
    /// Handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
    /// Bytes of an oversized handshake message still to skip.
    hs_skip: usize,
    resync: bool,
    /// ChangeCipherSpec sent: later handshake records are encrypted.
    encrypted: bool,
    done: bool,
    records: u64,
}

#[derive(Default)]
struct ClientHello {
    legacy: u16,
    versions: Vec<u16>,
    sni: Option<WireBytes>,
    alpn: Vec<WireBytes>,
    session_id: Vec<u8>,
    ticket_ext: bool,
    sslv2: bool,
}

#[derive(Default)]
struct ServerHello {
    legacy: u16,
    selected: Option<u16>,
    cipher: u16,
    alpn: Option<WireBytes>,
    session_id: Vec<u8>,
    psk: bool,
    sslv2_cert_present: bool,
}

/// TLS state of one flow.
pub struct TlsSession {
    limits: TlsLimits,
    sides: [SideTls; 2],
    client: Option<Side>,
    server: Option<Side>,
    ch: Option<ClientHello>,
    sh: Option<ServerHello>,
    hrr: bool,
    server_certs: Vec<CertInfo>,
    client_certs: Vec<CertInfo>,
    cert_requested: bool,
    client_cert_empty: bool,
    server_done: bool,
    server_cert_seen: bool,
    ccs: [bool; 2],
    alerts: Vec<(Side, u8, u8)>,
    warnings: Vec<String>,
    saw: bool,
}

/// Is `v` a plausible record version (SSL 3.0 .. TLS 1.3 legacy values)?
#[inline]
fn plausible_version(major: u8, minor: u8) -> bool {
    major == 3 && minor <= 4
}

/// Checks a record header at `b[0..5]`; returns the body length.
#[inline]
fn record_header(b: &[u8]) -> Option<usize> {
    let (&t, &maj, &min) = (b.first()?, b.get(1)?, b.get(2)?);
    let len = u16::from_be_bytes([*b.get(3)?, *b.get(4)?]) as usize;
    ((20..=24).contains(&t) && plausible_version(maj, min) && (1..=MAX_RECORD).contains(&len)).then_some(len)
}

/// Does `b` start an SSLv2-format ClientHello (RFC 6101 appendix E.2)?
fn sslv2_client_hello(b: &[u8]) -> Probe {
    if b.len() < 5 {
        return if b.first().is_none_or(|&x| x & 0x80 != 0) { Probe::NeedMore } else { Probe::NoMatch };
    }
    let ok = b[0] & 0x80 != 0 && b[2] == 1 && ((b[3] == 0 && b[4] == 2) || plausible_version(b[3], b[4]));
    if ok {
        Probe::Match
    } else {
        Probe::NoMatch
    }
}

/// Does `data` start like a TLS stream?
pub fn probe(data: &[u8]) -> Probe {
    let Some(&first) = data.first() else { return Probe::NeedMore };
    if first & 0x80 != 0 {
        return sslv2_client_hello(data);
    }
    if !(20..=24).contains(&first) {
        return Probe::NoMatch;
    }
    for (i, &b) in data.iter().enumerate().take(6).skip(1) {
        let ok = match i {
            1 => b == 3,
            2 => b <= 4,
            _ => true,
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    if data.len() < 5 {
        return Probe::NeedMore;
    }
    if record_header(data).is_none() {
        return Probe::NoMatch;
    }
    if first == 22 {
        match data.get(5) {
            None => return Probe::NeedMore,
            Some(&t) if t > 24 && t != 254 => return Probe::NoMatch,
            _ => {}
        }
    }
    Probe::Match
}

/// Offset of the first plausible TLS record header in `data` (mid-stream resync): a valid header
/// followed by another valid header, or by the end of `data`, or running past it.
pub fn resync(data: &[u8]) -> Option<usize> {
    let n = data.len();
    (0..n.saturating_sub(4)).find(|&i| {
        let Some(len) = record_header(&data[i..]) else { return false };
        let next = i + 5 + len;
        if next + 5 <= n {
            record_header(&data[next..]).is_some()
        } else {
            next >= n
        }
    })
}

/// Offset of a TLS ClientHello record header in `data` (STARTTLS and tunnels).
pub fn find_client_hello(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = data.get(i..)?.iter().position(|&b| b == 22) {
        let at = i + p;
        let b = &data[at..];
        if b.len() >= 11 && record_header(b).is_some() && b[5] == 1 && b[9] == 3 && b[10] <= 4 {
            let hs_len = u32::from_be_bytes([0, b[6], b[7], b[8]]) as usize;
            if hs_len >= 38 {
                return Some(at);
            }
        }
        i = at + 1;
    }
    None
}

/// Name of a protocol version number.
pub fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSL 2.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS 1.3 (draft {})", v & 0xff),
        v => format!("0x{v:04x}"),
    }
}

/// RFC 8701 GREASE values (0x?a?a).
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v >> 8 == 0x7f
}

/// IANA name of a cipher suite, or `0xHHHH`.
pub fn cipher_name(id: u16) -> String {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(c) => c.name.to_string(),
        None => format!("0x{id:04x}"),
    }
}

fn alert_description(d: u8) -> String {
    let s = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return d.to_string(),
    };
    s.to_string()
}

/// Bounds-checked big-endian reader over a byte slice.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&x, rest) = self.b.split_first()?;
        self.b = rest;
        Some(x)
    }
    fn u16(&mut self) -> Option<u16> {
        let v = self.bytes(2)?;
        Some(u16::from_be_bytes([v[0], v[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let v = self.bytes(3)?;
        Some(u32::from_be_bytes([0, v[0], v[1], v[2]]) as usize)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Some(a)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.bytes(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.bytes(n)
    }
}

/// Walks extensions `(type, body)`; stops quietly at a malformed one.
fn extensions(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut r = Rd { b };
    std::iter::from_fn(move || {
        let t = r.u16()?;
        let body = r.vec16()?;
        Some((t, body))
    })
}

fn parse_alpn(body: &[u8]) -> Vec<WireBytes> {
    let mut out = Vec::new();
    let Some(list) = (Rd { b: body }).vec16() else { return out };
    let mut r = Rd { b: list };
    while let Some(p) = r.vec8() {
        out.push(WireBytes::new(p));
    }
    out
}

fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Rd { b: body };
    let mut ch = ClientHello { legacy: r.u16()?, ..ClientHello::default() };
    r.bytes(32)?;
    ch.session_id = r.vec8()?.to_vec();
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let Some(exts) = r.vec16() else { return Some(ch) }; // SSL 3.0 style: no extensions
    for (t, e) in extensions(exts) {
        match t {
            0 => {
                let mut er = Rd { b: e };
                if let Some(list) = er.vec16() {
                    let mut lr = Rd { b: list };
                    while let (Some(kind), Some(name)) = (lr.u8(), lr.vec16()) {
                        if kind == 0 && ch.sni.is_none() {
                            ch.sni = Some(WireBytes::new(name));
                        }
                    }
                }
            }
            16 => ch.alpn = parse_alpn(e),
            43 => {
                if let Some(list) = (Rd { b: e }).vec8() {
                    ch.versions = list
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .filter(|&v| !is_grease(v))
                        .collect();
                }
            }
            35 => ch.ticket_ext = true,
            _ => {}
        }
    }
    Some(ch)
}

/// Returns the ServerHello and whether it is a HelloRetryRequest.
fn parse_server_hello(body: &[u8]) -> Option<(ServerHello, bool)> {
    let mut r = Rd { b: body };
    let mut sh = ServerHello { legacy: r.u16()?, ..ServerHello::default() };
    let random = r.bytes(32)?;
    let hrr = random == HRR_RANDOM;
    // TLS 1.3 drafts before 22 had no legacy session id / compression (draft-ietf-tls-tls13-21).
    let early_draft = sh.legacy >> 8 == 0x7f && (sh.legacy & 0xff) < 22;
    if !early_draft {
        sh.session_id = r.vec8()?.to_vec();
    }
    sh.cipher = r.u16()?;
    if !early_draft {
        r.u8()?;
    }
    if early_draft {
        sh.selected = Some(sh.legacy);
    }
    if let Some(exts) = r.vec16() {
        for (t, e) in extensions(exts) {
            match t {
                43 if e.len() == 2 => sh.selected = Some(u16::from_be_bytes([e[0], e[1]])),
                16 => sh.alpn = parse_alpn(e).into_iter().next(),
                41 => sh.psk = true,
                _ => {}
            }
        }
    }
    Some((sh, hrr))
}

impl TlsSession {
    /// A new session.
    pub fn new(limits: TlsLimits) -> TlsSession {
        TlsSession {
            limits,
            sides: Default::default(),
            client: None,
            server: None,
            ch: None,
            sh: None,
            hrr: false,
            server_certs: Vec::new(),
            client_certs: Vec::new(),
            cert_requested: false,
            client_cert_empty: false,
            server_done: false,
            server_cert_seen: false,
            ccs: [false; 2],
            alerts: Vec::new(),
            warnings: Vec::new(),
            saw: false,
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        }
    }

    /// Is `side` the server, as far as we know?
    fn is_server(&self, side: Side) -> bool {
        match (self.client, self.server) {
            (Some(c), _) => c != side,
            (None, Some(s)) => s == side,
            (None, None) => false,
        }
    }

    /// Feeds in-order stream bytes of `side`, seen at `ts`.
    pub fn feed(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        let mut pos = 0;
        while pos < data.len() && !self.sides[s].done {
            if self.sides[s].resync {
                match resync(&data[pos..]) {
                    Some(off) => {
                        pos += off;
                        self.sides[s].resync = false;
                    }
                    None => return Feed::More,
                }
            }
            if !self.sides[s].rec.is_empty() {
                pos = self.fill_record(side, data, pos, ts);
                continue;
            }
            let rest = &data[pos..];
            if self.sides[s].records == 0 && rest[0] & 0x80 != 0 {
                // SSLv2 record format (2-byte header with the high bit set).
                if rest.len() < 2 {
                    self.sides[s].rec.extend_from_slice(rest);
                    return Feed::More;
                }
                let len = (((rest[0] & 0x7f) as usize) << 8) | rest[1] as usize;
                if rest.len() < 2 + len {
                    self.sides[s].rec.extend_from_slice(rest);
                    return Feed::More;
                }
                self.sslv2_record(side, &rest[2..2 + len], ts);
                pos += 2 + len;
                continue;
            }
            if rest.len() < 5 {
                self.sides[s].rec.extend_from_slice(rest);
                return Feed::More;
            }
            let Some(len) = record_header(rest) else {
                self.warn(format!("tls: invalid record header {:02x?}; resynchronising", &rest[..5]));
                self.sides[s].resync = true;
                pos += 1;
                continue;
            };
            if rest.len() < 5 + len {
                self.sides[s].rec.extend_from_slice(rest);
                return Feed::More;
            }
            self.record(side, rest[0], &rest[5..5 + len], ts);
            pos += 5 + len;
        }
        if self.sides[s].done {
            Feed::Done
        } else {
            Feed::More
        }
    }

    /// Completes a buffered record with bytes from `data[pos..]`; returns the new position.
    fn fill_record(&mut self, side: Side, data: &[u8], pos: usize, ts: Timestamp) -> usize {
        let s = side.idx();
        let buf = &mut self.sides[s].rec;
        let sslv2 = self.sides[s].records == 0 && buf[0] & 0x80 != 0;
        let hdr = if sslv2 { 2 } else { 5 };
        if buf.len() < hdr {
            let k = (hdr - buf.len()).min(data.len() - pos);
            buf.extend_from_slice(&data[pos..pos + k]);
            return pos + k;
        }
        let len = if sslv2 {
            (((buf[0] & 0x7f) as usize) << 8) | buf[1] as usize
        } else {
            match record_header(buf) {
                Some(l) => l,
                None => {
                    buf.clear();
                    self.sides[s].resync = true;
                    self.warn("tls: invalid record header; resynchronising".into());
                    return pos;
                }
            }
        };
        let need = hdr + len - buf.len();
        let k = need.min(data.len() - pos);
        buf.extend_from_slice(&data[pos..pos + k]);
        if buf.len() == hdr + len {
            let rec = std::mem::take(&mut self.sides[s].rec);
            if sslv2 {
                self.sslv2_record(side, &rec[2..], ts);
            } else {
                self.record(side, rec[0], &rec[5..], ts);
            }
            let mut rec = rec;
            rec.clear();
            if self.sides[s].rec.is_empty() && rec.capacity() <= 4096 {
                self.sides[s].rec = rec; // keep a small allocation for the next partial record
            }
        }
        pos + k
    }

    fn sslv2_record(&mut self, side: Side, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        self.sides[s].records += 1;
        let mut r = Rd { b: body };
        match r.u8() {
            Some(1) => {
                self.saw = true;
                self.client.get_or_insert(side);
                let legacy = r.u16().unwrap_or(0x0002);
                if self.ch.is_none() {
                    self.ch = Some(ClientHello { legacy, sslv2: true, ..ClientHello::default() });
                }
            }
            Some(4) => {
                // SSLv2 SERVER-HELLO: session-id-hit, certificate type, version, lengths, cert.
                self.saw = true;
                self.server.get_or_insert(side);
                let parsed = (|| {
                    r.u8()?;
                    r.u8()?;
                    let version = r.u16()?;
                    let cert_len = r.u16()? as usize;
                    r.u16()?;
                    r.u16()?;
                    Some((version, r.bytes(cert_len)?))
                })();
                if let Some((version, cert)) = parsed {
                    let mut sh = ServerHello { legacy: version, ..ServerHello::default() };
                    if !cert.is_empty() {
                        sh.sslv2_cert_present = true;
                        self.server_certs.push(parse_cert(cert, ts));
                    }
                    self.sh.get_or_insert(sh);
                }
            }
            _ => {}
        }
        // Everything after the SSLv2 hellos is encrypted.
        self.sides[s].done = true;
    }

    fn record(&mut self, side: Side, ctype: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        self.saw = true;
        self.sides[s].records += 1;
        match ctype {
            20 => {
                self.ccs[s] = true;
                self.sides[s].encrypted = true;
                self.sides[s].done = true;
            }
            21 if !self.sides[s].encrypted && body.len() == 2 && self.alerts.len() < MAX_WARNINGS => {
                self.alerts.push((side, body[0], body[1]));
            }
            22 if !self.sides[s].encrypted => self.handshake_bytes(side, body, ts),
            23 => self.sides[s].done = true,
            _ => {}
        }
    }

    /// Handshake-protocol bytes of one record: splits them into messages.
    fn handshake_bytes(&mut self, side: Side, mut body: &[u8], ts: Timestamp) {
        let s = side.idx();
        if self.sides[s].hs_skip > 0 {
            let k = self.sides[s].hs_skip.min(body.len());
            self.sides[s].hs_skip -= k;
            body = &body[k..];
        }
        if !self.sides[s].hs.is_empty() {
            let mut hs = std::mem::take(&mut self.sides[s].hs);
            hs.extend_from_slice(body);
            let used = self.messages(side, &hs, ts);
            hs.drain(..used);
            if self.sides[s].hs.is_empty() {
                self.sides[s].hs = hs;
            }
            return;
        }
        let used = self.messages(side, body, ts);
        if used < body.len() && self.sides[s].hs_skip == 0 {
            self.sides[s].hs.extend_from_slice(&body[used..]);
        }
    }

    /// Parses whole messages from `b`; returns bytes used (the rest is a partial message, or
    /// the start of an oversized one now being skipped).
    fn messages(&mut self, side: Side, b: &[u8], ts: Timestamp) -> usize {
        let s = side.idx();
        let mut pos = 0;
        while b.len() - pos >= 4 && !self.sides[s].done {
            let typ = b[pos];
            let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
            if len > self.limits.max_buffer {
                self.warn(format!("tls: handshake message of {len} bytes exceeds buffer limit"));
                let have = b.len() - pos - 4;
                self.sides[s].hs_skip = len - have.min(len);
                return b.len();
            }
            if b.len() - pos - 4 < len {
                break;
            }
            self.message(side, typ, &b[pos + 4..pos + 4 + len], ts);
            pos += 4 + len;
        }
        if self.sides[s].done {
            return b.len();
        }
        pos
    }

    fn message(&mut self, side: Side, typ: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        match typ {
            1 => {
                self.client.get_or_insert(side);
                match parse_client_hello(body) {
                    Some(ch) => {
                        if self.ch.is_none() {
                            self.ch = Some(ch);
                        }
                    }
                    None => self.warn("tls: malformed ClientHello".into()),
                }
            }
            2 => {
                self.server.get_or_insert(side);
                match parse_server_hello(body) {
                    Some((_, true)) => self.hrr = true,
                    Some((sh, false)) => {
                        let v = sh.selected.unwrap_or(sh.legacy);
                        if self.sh.is_none() {
                            self.sh = Some(sh);
                        }
                        if is_tls13(v) {
                            // Everything the server sends next is encrypted.
                            self.sides[s].done = true;
                        }
                    }
                    None => self.warn("tls: malformed ServerHello".into()),
                }
            }
            11 => {
                let server = self.is_server(side);
                let mut r = Rd { b: body };
                let Some(list) = r.vec24() else {
                    self.warn("tls: malformed Certificate".into());
                    return;
                };
                let mut lr = Rd { b: list };
                let mut chain = Vec::new();
                while let Some(der) = lr.vec24() {
                    if chain.len() < MAX_CHAIN {
                        chain.push(parse_cert(der, ts));
                    }
                }
                if server {
                    self.server_cert_seen = true;
                    self.server_certs = chain;
                } else if chain.is_empty() {
                    self.client_cert_empty = true;
                } else {
                    self.client_certs = chain;
                }
            }
            13 => self.cert_requested = true,
            14 => self.server_done = true,
            _ => {}
        }
    }

    /// Bytes of `side` were lost.
    pub fn gap(&mut self, side: Side) {
        let st = &mut self.sides[side.idx()];
        st.rec.clear();
        st.hs.clear();
        st.hs_skip = 0;
        st.resync = true;
    }

    /// Side that sent the ClientHello (or the opposite of the ServerHello sender).
    pub fn client_side(&self) -> Option<Side> {
        self.client.or(self.server.map(Side::other))
    }

    /// At least one well-formed TLS record was parsed.
    pub fn saw_tls(&self) -> bool {
        self.saw
    }

    /// Drains warnings (malformed messages, limits hit).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Final facts. Messages are attributed to the side that sent them, whatever `client` says.
    pub fn finish(&self, client: Side) -> TlsReport {
        let client = self.client_side().unwrap_or(client);
        let mut r = TlsReport {
            hello_retry_request: self.hrr,
            server_certs: self.server_certs.clone(),
            client_certs: self.client_certs.clone(),
            client_cert_requested: self.cert_requested,
            client_cert_empty: self.client_cert_empty,
            ..TlsReport::default()
        };
        if let Some(ch) = &self.ch {
            r.legacy_version = Some(version_name(ch.legacy));
            r.versions_offered = if ch.versions.is_empty() {
                vec![version_name(ch.legacy)]
            } else {
                ch.versions.iter().map(|&v| version_name(v)).collect()
            };
            r.sni = ch.sni.clone();
            r.alpn_offered = ch.alpn.clone();
            r.sslv2_client_hello = ch.sslv2;
        }
        let mut negotiated = None;
        if let Some(sh) = &self.sh {
            let v = sh.selected.unwrap_or(sh.legacy);
            negotiated = Some(v);
            r.version = Some(version_name(v));
            if !sh.sslv2_cert_present && v != 0x0002 {
                r.cipher = Some(cipher_name(sh.cipher));
            }
            r.alpn_selected = sh.alpn.clone();
            let ch_sid = self.ch.as_ref().map(|c| c.session_id.as_slice()).unwrap_or(&[]);
            r.resumption = if sh.psk {
                Some("psk")
            } else if !is_tls13(v) && !ch_sid.is_empty() && sh.session_id == ch_sid {
                Some("session_id")
            } else if !is_tls13(v)
                && self.ch.as_ref().is_some_and(|c| c.ticket_ext)
                && self.ccs[client.other().idx()]
                && !self.server_cert_seen
                && !self.server_done
            {
                Some("session_ticket")
            } else {
                None
            };
        }
        r.alerts = self
            .alerts
            .iter()
            .map(|&(side, level, desc)| TlsAlert {
                from: if side == client { "client" } else { "server" },
                level: match level {
                    1 => "warning".into(),
                    2 => "fatal".into(),
                    n => n.to_string(),
                },
                description: alert_description(desc),
            })
            .collect();
        let (mtls, reason) = self.verdict(negotiated, r.resumption.is_some());
        r.mtls = mtls;
        r.mtls_reason = reason;
        r
    }

    fn verdict(&self, negotiated: Option<u16>, resumed: bool) -> (&'static str, String) {
        if let Some(c) = self.client_certs.first() {
            let who = c.san_uris.first().or(c.subject.as_ref()).cloned().unwrap_or_else(|| "unparsed".into());
            return ("yes", format!("client sent a certificate ({who})"));
        }
        let Some(v) = negotiated else {
            return if self.ch.is_none() {
                ("unknown", "handshake not seen (capture started mid-stream)".into())
            } else {
                ("unknown", "no ServerHello seen".into())
            };
        };
        if is_tls13(v) {
            return ("unknown", "TLS 1.3: certificates are encrypted".into());
        }
        if self.client_cert_empty {
            return ("no", "client certificate requested but the client sent none".into());
        }
        if resumed {
            return (
                "unknown",
                "abbreviated handshake (session resumption): client authentication, if any, happened in an earlier handshake"
                    .into(),
            );
        }
        if self.cert_requested {
            return ("unknown", "client certificate requested; the client's answer was not seen".into());
        }
        if self.server_done {
            return ("no", "server did not request a client certificate".into());
        }
        ("unknown", "server handshake not seen to its end".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TlsLimits {
        TlsLimits { max_buffer: 256 * 1024 }
    }

    /// A handshake record around `msgs` (type, body).
    fn record(msgs: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut hs = Vec::new();
        for (t, b) in msgs {
            hs.push(*t);
            hs.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
            hs.extend_from_slice(b);
        }
        let mut r = vec![22, 3, 1];
        r.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        r.extend(hs);
        r
    }

    fn ext(t: u16, body: &[u8]) -> Vec<u8> {
        let mut v = t.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn client_hello(sni: &str, alpn: &[&str], versions: &[u16]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
        let mut exts = Vec::new();
        let mut s = vec![0];
        s.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        s.extend_from_slice(sni.as_bytes());
        let mut sl = (s.len() as u16).to_be_bytes().to_vec();
        sl.extend(s);
        exts.extend(ext(0x0a0a, b"")); // GREASE
        exts.extend(ext(0, &sl));
        let mut a = Vec::new();
        for p in alpn {
            a.push(p.len() as u8);
            a.extend_from_slice(p.as_bytes());
        }
        let mut al = (a.len() as u16).to_be_bytes().to_vec();
        al.extend(a);
        exts.extend(ext(16, &al));
        if !versions.is_empty() {
            let mut v = vec![(versions.len() * 2) as u8];
            for x in versions {
                v.extend_from_slice(&x.to_be_bytes());
            }
            exts.extend(ext(43, &v));
        }
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend(exts);
        b
    }

    fn server_hello(random: [u8; 32], cipher: u16, exts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&random);
        b.push(0);
        b.extend_from_slice(&cipher.to_be_bytes());
        b.push(0);
        let e: Vec<u8> = exts.concat();
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend(e);
        b
    }

    #[test]
    fn tls12_flight_whole_and_byte_by_byte_agree() {
        let ch = record(&[(
            1,
            client_hello(
                "outbound_.9080_._.reviews.default.svc.cluster.local",
                &["istio-peer-exchange", "istio"],
                &[],
            ),
        )]);
        let alpn_sel = ext(
            16,
            &[
                0, 20, 19, b'i', b's', b't', b'i', b'o', b'-', b'p', b'e', b'e', b'r', b'-', b'e', b'x',
                b'c', b'h', b'a', b'n', b'g', b'e',
            ],
        );
        let sh = record(&[
            (2, server_hello([1; 32], 0xc02f, &[alpn_sel])),
            (13, vec![1, 1, 0, 0, 0, 0]),
            (14, vec![]),
        ]);
        let client_cert = record(&[(11, vec![0, 0, 0])]);
        for bytewise in [false, true] {
            let mut t = TlsSession::new(limits());
            let ts = Timestamp::default();
            let feed = |t: &mut TlsSession, side, d: &[u8]| {
                if bytewise {
                    d.chunks(1).for_each(|c| {
                        t.feed(side, c, ts);
                    });
                } else {
                    t.feed(side, d, ts);
                }
            };
            feed(&mut t, Side::B, &ch);
            feed(&mut t, Side::A, &sh);
            feed(&mut t, Side::B, &client_cert);
            assert_eq!(t.feed(Side::B, &[20, 3, 3, 0, 1, 1], ts), Feed::Done);
            let r = t.finish(Side::A);
            assert_eq!(t.client_side(), Some(Side::B));
            assert_eq!(r.sni.unwrap().as_bytes(), b"outbound_.9080_._.reviews.default.svc.cluster.local");
            let alpn: Vec<&[u8]> = r.alpn_offered.iter().map(|a| a.as_bytes()).collect();
            assert_eq!(alpn, [&b"istio-peer-exchange"[..], b"istio"]);
            assert_eq!(r.alpn_selected.unwrap().as_bytes(), b"istio-peer-exchange");
            assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
            assert_eq!(r.cipher.as_deref(), Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
            assert!(r.client_cert_requested && r.client_cert_empty);
            assert_eq!(
                (r.mtls, r.mtls_reason.as_str()),
                ("no", "client certificate requested but the client sent none")
            );
        }
    }

    #[test]
    fn tls13_and_hello_retry_request() {
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("a.test", &["h2"], &[0x1a1a, 0x0304, 0x0303]))]), ts);
        let sv = ext(43, &[3, 4]);
        assert_eq!(
            t.feed(Side::B, &record(&[(2, server_hello(HRR_RANDOM, 0x1301, std::slice::from_ref(&sv)))]), ts),
            Feed::More
        );
        assert_eq!(t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[sv]))]), ts), Feed::Done);
        let r = t.finish(Side::A);
        assert!(r.hello_retry_request);
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.versions_offered, ["TLS 1.3", "TLS 1.2"]);
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(r.mtls, "unknown");
    }

    #[test]
    fn probes_and_resync() {
        assert_eq!(probe(&[22, 3, 1, 0, 5, 1]), Probe::Match);
        assert_eq!(probe(&[22, 3]), Probe::NeedMore);
        assert_eq!(probe(b"GET / HTTP/1.1"), Probe::NoMatch);
        assert_eq!(probe(&[0x80, 0x2e, 1, 3, 1]), Probe::Match);
        assert_eq!(probe(&[0x80, 0x2e, 1, 9, 1]), Probe::NoMatch);
        let mut d = vec![0xde, 0xad, 0xbe];
        d.extend_from_slice(&[23, 3, 3, 0, 2, 9, 9, 23, 3, 3, 0, 1, 7]);
        assert_eq!(resync(&d), Some(3));
        let mut pre = b"EHLO x\r\nSTARTTLS\r\n".to_vec();
        let at = pre.len();
        pre.extend(record(&[(1, client_hello("mail.test", &[], &[]))]));
        assert_eq!(find_client_hello(&pre), Some(at));
    }

    #[test]
    fn oversized_handshake_is_skipped_and_garbage_never_panics() {
        let mut t = TlsSession::new(TlsLimits { max_buffer: 1024 });
        let ts = Timestamp::default();
        let mut rec = vec![22, 3, 3, 0, 8, 11, 0x10, 0, 0, 1, 2, 3, 4];
        rec.truncate(13);
        t.feed(Side::B, &rec, ts);
        assert!(t.take_warnings()[0].contains("exceeds buffer limit"));
        for seed in 0..200u32 {
            let junk: Vec<u8> = (0..300).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect();
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &[22, 3, 1, 1, 0], ts);
            t.feed(Side::A, &junk, ts);
            t.gap(Side::A);
            t.feed(Side::A, &junk, ts);
            let _ = t.finish(Side::A);
        }
    }
}

//! TLS handshakes over reassembled streams: ClientHello (SNI, ALPN, versions), ServerHello
//! (version, cipher, ALPN, HelloRetryRequest, resumption), certificates, CertificateRequest,
//! the client's Certificate, cleartext alerts, and the mTLS verdict (TLS ≤ 1.2).
//!
//! Records are parsed in place when a chunk holds them whole; only a record or handshake message
//! that spans chunks is copied, into per-side buffers bounded by [`TlsLimits::max_buffer`]
//! (records themselves are at most [`MAX_RECORD`] bytes); a longer handshake message is skipped
//! with a warning. A side is done — the flow layer stops buffering it — once it sends
//! ChangeCipherSpec or application data, or, for the server of a TLS 1.3 session, once its
//! ServerHello is read: everything after is encrypted. The exceptions are the hellos still due
//! after a HelloRetryRequest or 0-RTT data (see `TlsSession::held`).
//!
//! Facts are kept per side (A/B) and attributed at [`TlsSession::finish`]: the ClientHello sender
//! is the client, whatever the flow layer guessed. After a gap, a side drops its partial state
//! and resynchronises on a record header confirmed by the next one ([`resync`]).
//!
//! Hello messages are read by our own bounds-checked code rather than tls-parser's: this is the
//! core of the tool, it must keep going over GREASE, ECH, draft versions and malformed
//! extensions (tls-parser stops at the first extension it cannot parse), and it only needs a
//! handful of fields. tls-parser provides the cipher-suite names.

use super::cert::{parse_cert, CertInfo};
use super::fingerprint::{self, is_grease, ExtTypes, Fingerprints, HelloFacts, U16List};
use crate::sanitize::WireBytes;
use crate::wire::{Feed, Probe, Side, Timestamp};
use serde::Serialize;
use std::borrow::Cow;

/// Largest TLS record body accepted (2^14 + 2048, RFC 5246 §6.2.3).
pub const MAX_RECORD: usize = 16384 + 2048;
/// Warnings kept per flow.
const MAX_WARNINGS: usize = 16;
/// Certificates kept per chain.
const MAX_CHAIN: usize = 16;
/// Cleartext alerts kept per flow.
const MAX_ALERTS: usize = 16;
/// Default [`TlsLimits::max_buffer`].
pub const DEFAULT_MAX_BUFFER: usize = 256 * 1024;
/// Resync window: a candidate header is decided within 5 + MAX_RECORD + 5 bytes.
const SCAN_WINDOW: usize = 2 * (5 + MAX_RECORD);
/// Bytes given up while looking for a record boundary before a side is abandoned.
const MAX_RESYNC_SCAN: usize = 256 * 1024;
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

/// How a server refused a handshake: it answered the ClientHello without a ServerHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// With a fatal alert (its description, `handshake_failure`).
    Alert(String),
    /// With a TCP reset, before sending any byte.
    Reset,
}

impl Refusal {
    /// The mTLS reason: `refused by the server: handshake_failure alert (no ServerHello)`.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Alert(d) => format!("refused by the server: {d} alert (no ServerHello)"),
            Refusal::Reset => {
                "refused by the server: connection reset after the ClientHello (no ServerHello)".into()
            }
        }
    }
}

impl TlsAlert {
    /// A fatal alert (the handshake or session failed); warnings and `close_notify` are not.
    pub fn is_fatal(&self) -> bool {
        self.level == "fatal"
    }

    /// What an operator should read into a fatal alert, when it is a common one.
    pub fn meaning(&self) -> Option<&'static str> {
        let client = self.from == "client";
        Some(match self.description.as_str() {
            "certificate_expired"
            | "certificate_revoked"
            | "certificate_unknown"
            | "bad_certificate"
            | "unsupported_certificate"
            | "unknown_ca"
            | "access_denied" => {
                if client {
                    "the client rejected the server's certificate"
                } else {
                    "the server rejected the client's certificate"
                }
            }
            "certificate_required" => "the server requires a client certificate",
            "handshake_failure" if !client => {
                "the server gave up: no parameters in common, or a client certificate missing or refused"
            }
            "protocol_version" => "no TLS version in common",
            "illegal_parameter" | "decode_error" | "unexpected_message" => {
                "a malformed or unexpected handshake message"
            }
            "unrecognized_name" => "the server does not serve this SNI",
            "no_application_protocol" => "no ALPN protocol in common",
            "inappropriate_fallback" => "a version downgrade was refused",
            "decrypt_error" | "bad_record_mac" => "a signature or MAC did not verify",
            _ => return None,
        })
    }
}

/// Facts about a TLS session, serialized as the `tls` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsReport {
    /// Negotiated version, e.g. "TLS 1.3".
    pub version: Option<Cow<'static, str>>,
    /// legacy_version of the first ClientHello.
    pub legacy_version: Option<Cow<'static, str>>,
    /// supported_versions of the first ClientHello (GREASE skipped), or its legacy_version.
    pub versions_offered: Vec<Cow<'static, str>>,
    /// SNI host name of the first ClientHello.
    pub sni: Option<WireBytes>,
    /// ALPN protocols offered in the first ClientHello, in order.
    pub alpn_offered: Vec<WireBytes>,
    /// ALPN protocol selected by the ServerHello (TLS ≤ 1.2 only).
    pub alpn_selected: Option<WireBytes>,
    /// Cipher suite name.
    pub cipher: Option<Cow<'static, str>>,
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
    /// TLS 1.3: lengths of the client's first encrypted (application_data) records after its
    /// ClientHello, at most 4; the first one holds its handshake flight.
    pub client_encrypted_records: Vec<u16>,
    /// The first ClientHello used the SSLv2 record format.
    pub sslv2_client_hello: bool,
    /// The server refused the handshake (fatal alert or reset before its ServerHello); also in
    /// `mtls_reason` and the flag `handshake_refused`.
    #[serde(skip)]
    pub refused: Option<Refusal>,
    /// A ClientHello was seen and the server answered nothing of the handshake (no hello, no
    /// certificate): a reset then refuses it ([`TlsReport::refuse`]).
    #[serde(skip)]
    pub awaiting_server: bool,
    /// JA4 of the first ClientHello (src/classify/fingerprint.rs); None without a whole,
    /// well-formed TLS ClientHello (SSLv2-format hellos have none).
    pub ja4: Option<std::sync::Arc<str>>,
    /// JA4 raw form (the lists before hashing).
    pub ja4_r: Option<std::sync::Arc<str>>,
    /// JA3 (MD5 of `ja3_full`).
    pub ja3: Option<std::sync::Arc<str>>,
    /// JA3 string before hashing.
    pub ja3_full: Option<std::sync::Arc<str>>,
}

impl TlsReport {
    fn set_fingerprints(&mut self, fp: Fingerprints) {
        let Fingerprints { ja4, ja4_r, ja3, ja3_full } = fp;
        (self.ja4, self.ja4_r, self.ja3, self.ja3_full) = (Some(ja4), Some(ja4_r), Some(ja3), Some(ja3_full));
    }

    /// Records that the server refused the handshake: the verdict stays `unknown`, its reason
    /// says why.
    pub fn refuse(&mut self, r: Refusal) {
        self.mtls = "unknown";
        self.mtls_reason = r.reason();
        self.refused = Some(r);
    }

    /// The first fatal alert.
    pub fn fatal_alert(&self) -> Option<&TlsAlert> {
        self.alerts.iter().find(|a| a.is_fatal())
    }
}

impl Default for TlsLimits {
    fn default() -> TlsLimits {
        TlsLimits { max_buffer: DEFAULT_MAX_BUFFER }
    }
}

/// Encrypted records of the client whose lengths are kept (TLS 1.3 client-certificate inference).
const TAIL_RECORDS: usize = 4;
/// Records of any type walked after the cleartext part before giving up on the tail.
const TAIL_WALK: u8 = 16;
/// A TLS 1.3 client flight at least this many bytes above a Finished alone carries a
/// certificate: the smallest real X.509 certificate (Ed25519, self-signed) is ~250 bytes of DER.
const CERT_FLIGHT_MIN_EXTRA: usize = 100;

/// Record headers walked after a side's cleartext part ended: only lengths are kept, bodies
/// are skipped, nothing is buffered. The client's first encrypted records tell whether it sent
/// a certificate in TLS 1.3 (see [`TlsSession::tls13_verdict`]).
#[derive(Default)]
struct Tail {
    /// Still walking.
    active: bool,
    /// Header bytes of the record being read.
    hdr: [u8; 5],
    hdr_len: u8,
    /// Body bytes of the current record still to skip.
    skip: usize,
    /// Lengths of the first application_data records, in order.
    lens: [u16; TAIL_RECORDS],
    n: u8,
    /// Records walked (any type).
    walked: u8,
    /// A gap or an invalid header broke the walk.
    broken: bool,
}

/// Parser state and handshake facts of one side (A or B) of the connection.
#[derive(Default)]
struct SideTls {
    /// A record that spans chunks (header included), at most 5 + MAX_RECORD bytes.
    rec: Vec<u8>,
    /// Handshake bytes not yet forming a whole message, at most `max_buffer` + one record.
    hs: Vec<u8>,
    /// Bytes of an oversized handshake message still to skip.
    hs_skip: usize,
    /// Looking for a record boundary (after a gap or an invalid record header).
    resync: bool,
    /// Resync window: bytes from a candidate header whose successor is not yet visible.
    scan: Vec<u8>,
    /// `scan` cannot be decided before it holds this many bytes.
    scan_need: usize,
    /// Bytes given up while resynchronising, since the last record boundary.
    scanned: usize,
    /// ChangeCipherSpec sent (and no second ClientHello/ServerHello expected): later handshake
    /// records are encrypted.
    encrypted: bool,
    /// Nothing more of interest can come from this side.
    done: bool,
    /// Records (or SSLv2 records) parsed.
    records: u64,
    /// The side's first record used the SSLv2 format; later high-bit headers are SSLv2 too.
    sslv2: bool,
    /// Certificates this side sent, in order (at most MAX_CHAIN).
    certs: Vec<CertInfo>,
    /// This side sent a Certificate message.
    cert_msg: bool,
    /// ... and one was empty.
    cert_empty: bool,
    /// This side sent a CertificateRequest.
    cert_request: bool,
    /// This side sent ServerHelloDone.
    hello_done: bool,
    /// This side sent ChangeCipherSpec.
    ccs: bool,
    /// Record lengths after the cleartext part (client side only).
    tail: Tail,
}

impl SideTls {
    /// Drops partial record/handshake state and starts looking for a record boundary.
    fn start_resync(&mut self) {
        self.rec.clear();
        self.hs.clear();
        self.hs_skip = 0;
        self.scan.clear();
        self.scan_need = 0;
        self.scanned = 0;
        self.resync = true;
    }

    /// Releases buffers once the side is done.
    fn release(&mut self) {
        self.rec = Vec::new();
        self.hs = Vec::new();
        self.scan = Vec::new();
    }
}

#[derive(Default)]
struct ClientHello {
    legacy: u16,
    versions: Vec<u16>,
    sni: Option<WireBytes>,
    alpn: Vec<WireBytes>,
    session_id: Vec<u8>,
    /// session_ticket extension present (RFC 5077).
    ticket_ext: bool,
    /// ... and carrying a ticket (the client tries to resume with it).
    ticket: bool,
    /// early_data extension (RFC 8446 §4.2.10): 0-RTT data may follow the ClientHello.
    early_data: bool,
    sslv2: bool,
    /// JA3/JA4, computed once when the hello is parsed (its bytes are not kept).
    fp: Option<Fingerprints>,
}

#[derive(Default)]
struct ServerHello {
    legacy: u16,
    selected: Option<u16>,
    cipher: u16,
    alpn: Option<WireBytes>,
    session_id: Vec<u8>,
    psk: bool,
    /// An SSLv2 SERVER-HELLO (no cipher suite in the TLS sense).
    sslv2: bool,
    /// Only the start was captured (snaplen): `cipher` is 0 when not reached, and a missing
    /// supported_versions says nothing (TLS 1.3 keeps legacy_version 1.2)...
    cut: bool,
    /// ... unless the extensions were kept whole.
    exts_whole: bool,
}

/// TLS state of one flow.
pub struct TlsSession {
    limits: TlsLimits,
    sides: [SideTls; 2],
    /// Sender of the first ClientHello.
    client: Option<Side>,
    /// Sender of the first ServerHello (or HelloRetryRequest).
    server: Option<Side>,
    /// First ClientHello.
    ch: Option<ClientHello>,
    /// ClientHellos seen (a second one follows a HelloRetryRequest).
    ch_count: u32,
    /// First ServerHello that is not a HelloRetryRequest.
    sh: Option<ServerHello>,
    /// Sender of a HelloRetryRequest.
    hrr_side: Option<Side>,
    /// Version selected by the HelloRetryRequest.
    hrr_version: Option<u16>,
    alerts: Vec<(Side, u8, u8)>,
    /// A hello was cut short by a hole (snaplen): its facts are the part that was captured.
    cut_hello: bool,
    warnings: Vec<String>,
    /// Warnings produced so far (drained or not), to cap them per session.
    warned: usize,
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

/// Does `b` start an SSLv2-format record holding a CLIENT-HELLO (RFC 6101 appendix E.2; TLS
/// clients sent it for compatibility, RFC 5246 appendix E.2) or a SERVER-HELLO (the answer of an
/// SSL 2.0 server)?
fn sslv2_hello(b: &[u8]) -> Probe {
    let Some(&b0) = b.first() else { return Probe::NeedMore };
    if b0 & 0x80 == 0 {
        return Probe::NoMatch;
    }
    let len = match b.get(1) {
        Some(&b1) => (((b0 & 0x7f) as usize) << 8) | b1 as usize,
        None => return Probe::NeedMore,
    };
    // Expected bytes from offset 3 on (None: any value); NeedMore until all are present.
    let want: &[Option<u8>] = match b.get(2) {
        None => return Probe::NeedMore,
        // CLIENT-HELLO: version 0x0002 or 0x0300..=0x0304; at least 9 bytes of fixed fields.
        Some(1) if len >= 9 => &[None, None],
        // SERVER-HELLO: session-id-hit (any), certificate type 1 (X.509), version 0x0002.
        Some(4) if len >= 11 => &[None, Some(1), Some(0), Some(2)],
        _ => return Probe::NoMatch,
    };
    for (i, w) in want.iter().enumerate() {
        match (b.get(3 + i), w) {
            (None, _) => return Probe::NeedMore,
            (Some(v), Some(w)) if v != w => return Probe::NoMatch,
            _ => {}
        }
    }
    if b[2] == 1 && !matches!((b[3], b[4]), (0, 2) | (3, 0..=4)) {
        return Probe::NoMatch;
    }
    Probe::Match
}

/// Does `data` start like a TLS stream?
pub fn probe(data: &[u8]) -> Probe {
    let Some(&first) = data.first() else { return Probe::NeedMore };
    if first & 0x80 != 0 {
        return sslv2_hello(data);
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

/// Checks a record header at `b[0..5]` inside a stream already in sync; returns the body length.
/// Unlike [`record_header`] it accepts empty application-data records, which TLS ≤ 1.2 allows
/// (RFC 5246 §6.2.1; OpenSSL once sent them before CBC records).
#[inline]
fn stream_header(b: &[u8]) -> Option<usize> {
    let (&t, &maj, &min) = (b.first()?, b.get(1)?, b.get(2)?);
    let len = u16::from_be_bytes([*b.get(3)?, *b.get(4)?]) as usize;
    let len_ok = len <= MAX_RECORD && (len > 0 || t == 23);
    ((20..=24).contains(&t) && plausible_version(maj, min) && len_ok).then_some(len)
}

/// Could `b` (fewer than 5 bytes) begin a record header?
fn header_prefix_ok(b: &[u8]) -> bool {
    b.first().is_none_or(|t| (20..=24).contains(t))
        && b.get(1).is_none_or(|&m| m == 3)
        && b.get(2).is_none_or(|&m| m <= 4)
        && (b.len() < 5 || stream_header(b).is_some())
}

/// Outcome of a scan for a record boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// A plausible header followed by another plausible header.
    Found(usize),
    /// A plausible header at `at` whose successor ends at `need`, beyond the data (or only
    /// partly inside it, plausibly so).
    Wait { at: usize, need: usize },
    /// No candidate before `keep_from`; the bytes from there may still start a header.
    Nothing { keep_from: usize },
}

/// Scans `data` once, left to right, for the first plausible record header (see
/// [`record_header`]) whose following header, where `data` shows it, is plausible too.
fn scan_records(data: &[u8]) -> Scan {
    let n = data.len();
    let mut i = 0;
    while i + 5 <= n {
        // Only an offset followed by a 3 (the major version) can start a header: jump to the
        // next one (memchr: the byte-by-byte walk over unrecognised streams was 2% of the
        // benchmark's time).
        let Some(p) = memchr::memchr(3, &data[i + 1..=n - 4]) else {
            i = n - 4;
            break;
        };
        i += p;
        if let Some(found) = scan_at(data, i) {
            return found;
        }
        i += 1;
    }
    Scan::Nothing { keep_from: i }
}

/// What [`scan_records`] concludes at offset `i` (with `i + 5 <= data.len()`), if anything.
fn scan_at(data: &[u8], i: usize) -> Option<Scan> {
    let len = record_header(&data[i..])?;
    let next = i + 5 + len;
    match data.get(next..) {
        Some(rest) if rest.len() >= 5 => stream_header(rest).is_some().then_some(Scan::Found(i)),
        Some(rest) if !header_prefix_ok(rest) => None,
        _ => Some(Scan::Wait { at: i, need: next + 5 }),
    }
}

/// TLS found inside bytes of unknown protocol (see [`resync`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    /// Two chained record headers, the first at this offset.
    At(usize),
    /// A plausible header whose successor should start this many bytes after the end of the
    /// data: the caller confirms it there with [`is_record_header`] before believing it.
    Expect(usize),
}

/// The first plausible TLS record header in `data` (mid-stream TLS in bytes of unknown
/// protocol): one valid header followed by another, or one whose successor lies beyond `data`.
/// One linear pass over `data`. A single header is weak evidence (five bytes of random data
/// pass one time in a few million), hence [`Resync::Expect`].
pub fn resync(data: &[u8]) -> Option<Resync> {
    match scan_records(data) {
        Scan::Found(o) => Some(Resync::At(o)),
        Scan::Wait { need, .. } if need - 5 >= data.len() => Some(Resync::Expect(need - 5 - data.len())),
        Scan::Wait { .. } | Scan::Nothing { .. } => None,
    }
}

/// Does `b` start with a plausible record header?
pub fn is_record_header(b: &[u8]) -> bool {
    stream_header(b).is_some()
}

/// Offset of a TLS ClientHello record header in `data` (STARTTLS and tunnels).
pub fn find_client_hello(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(22, data.get(i..)?) {
        let at = i + p;
        let b = &data[at..];
        if b.len() >= 11 && record_header(b).is_some() && b[5] == 1 && b[9] == 3 && b[10] <= 4 {
            // Handshake length: at least version, random, and the four length fields; the
            // session id (offset 43 when present) is at most 32 bytes.
            let hs_len = u32::from_be_bytes([0, b[6], b[7], b[8]]) as usize;
            if hs_len >= 38 && b.get(43).is_none_or(|&sid| sid <= 32) {
                return Some(at);
            }
        }
        i = at + 1;
    }
    None
}

/// Name of a protocol version number.
pub fn version_name(v: u16) -> Cow<'static, str> {
    match v {
        0x0002 => "SSL 2.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS 1.3 (draft {})", v & 0xff).into(),
        v => format!("0x{v:04x}").into(),
    }
}

fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v >> 8 == 0x7f
}

/// IANA name of a cipher suite, or `0xHHHH`.
pub fn cipher_name(id: u16) -> Cow<'static, str> {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(c) => c.name.into(),
        None => format!("0x{id:04x}").into(),
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
    let ciphers = r.vec16()?;
    r.vec8()?; // compression methods
               // Fingerprints only of a hello whose lists are whole: one of part of a hello would match no
               // other tool's. No extension block at all is whole (SSL 3.0 style); a cut one is not.
    let mut whole = ciphers.len() % 2 == 0;
    let exts = match r.vec16() {
        Some(exts) => exts,
        None => {
            whole &= r.b.is_empty();
            &[]
        }
    };
    let mut facts = HelloFacts {
        legacy_version: ch.legacy,
        ciphers: U16List(ciphers),
        extensions: ExtTypes(exts),
        ..HelloFacts::default()
    };
    // Each fingerprint list comes from the first extension of its type.
    let (mut groups, mut formats, mut sigs, mut alpn) = (None, None, None, None);
    let mut walked = 0;
    for (t, e) in extensions(exts) {
        walked += 4 + e.len();
        match t {
            0 => {
                facts.sni = true;
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
            10 => _ = groups.get_or_insert((Rd { b: e }).vec16().unwrap_or_default()),
            11 => _ = formats.get_or_insert((Rd { b: e }).vec8().unwrap_or_default()),
            13 => _ = sigs.get_or_insert((Rd { b: e }).vec16().unwrap_or_default()),
            16 => {
                alpn.get_or_insert_with(|| (Rd { b: e }).vec16().and_then(|l| (Rd { b: l }).vec8()));
                ch.alpn = parse_alpn(e);
            }
            43 => {
                let list = (Rd { b: e }).vec8();
                facts.supported_versions.get_or_insert(U16List(list.unwrap_or_default()));
                if let Some(list) = list {
                    ch.versions = list
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .filter(|&v| !is_grease(v))
                        .collect();
                }
            }
            35 => {
                ch.ticket_ext = true;
                ch.ticket = !e.is_empty();
            }
            42 => ch.early_data = true,
            _ => {}
        }
    }
    if whole && walked == exts.len() {
        facts.supported_groups = U16List(groups.unwrap_or_default());
        facts.point_formats = formats.unwrap_or_default();
        facts.signature_algorithms = U16List(sigs.unwrap_or_default());
        facts.alpn_first = alpn.flatten();
        ch.fp = Some(fingerprint::fingerprints(&facts));
    }
    Some(ch)
}

/// The captured start of a ClientHello (see `TlsSession::cut_hello`): every field that is
/// whole, in order, until the first that is not; extensions only when whole.
fn parse_cut_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Rd { b: body };
    let mut ch = ClientHello { legacy: r.u16()?, ..ClientHello::default() };
    let rest = (|| {
        r.bytes(32)?;
        ch.session_id = r.vec8()?.to_vec();
        r.vec16()?;
        r.vec8()?;
        let ext_len = r.u16()? as usize;
        Some(&r.b[..ext_len.min(r.b.len())])
    })();
    if let Some(exts) = rest {
        for (t, e) in extensions(exts) {
            match t {
                0 => {
                    let mut lr = Rd { b: (Rd { b: e }).vec16().unwrap_or(&[]) };
                    while let (Some(kind), Some(name)) = (lr.u8(), lr.vec16()) {
                        if kind == 0 && ch.sni.is_none() {
                            ch.sni = Some(WireBytes::new(name));
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
                _ => {}
            }
        }
    }
    Some(ch)
}

/// The captured start of a ServerHello (not a HelloRetryRequest, whose random is needed to
/// tell): legacy version, then the cipher suite and whole extensions when they were kept.
fn parse_cut_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Rd { b: body };
    let mut sh = ServerHello { legacy: r.u16()?, cut: true, ..ServerHello::default() };
    if sh.legacy >> 8 != 3 {
        return None; // drafts and odd versions: not worth guessing from a cut message
    }
    let _ = (|| {
        if r.bytes(32)? == HRR_RANDOM {
            sh.legacy = 0;
            return None;
        }
        sh.session_id = r.vec8()?.to_vec();
        sh.cipher = r.u16()?;
        r.u8()?;
        let ext_len = r.u16()? as usize;
        sh.exts_whole = ext_len <= r.b.len();
        for (t, e) in extensions(&r.b[..ext_len.min(r.b.len())]) {
            match t {
                43 if e.len() == 2 => sh.selected = Some(u16::from_be_bytes([e[0], e[1]])),
                16 => sh.alpn = parse_alpn(e).into_iter().next(),
                41 => sh.psk = true,
                _ => {}
            }
        }
        Some(())
    })();
    (sh.legacy != 0).then_some(sh)
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
    /// Prefetches what the report of this session reads, one level of pointers per `stage`
    /// (0: the hellos' lists and the certificate chains, 1: their contents), for
    /// [`crate::classify::FlowClassifier::prefetch`].
    pub(crate) fn prefetch(&self, stage: u8) {
        use crate::wire::prefetch;
        let ch = self.ch.as_ref();
        match stage {
            0 => {
                if let Some(ch) = ch {
                    prefetch(&ch.alpn[..]);
                    prefetch(&ch.versions[..]);
                }
                for s in &self.sides {
                    prefetch(&s.certs[..]);
                }
            }
            _ => {
                if let Some(ch) = ch {
                    ch.sni.iter().chain(&ch.alpn).for_each(|w| prefetch(w.as_bytes()));
                }
                for s in &self.sides {
                    s.certs.iter().for_each(|c| c.prefetch());
                }
            }
        }
    }

    /// A new session.
    pub fn new(limits: TlsLimits) -> TlsSession {
        TlsSession {
            limits,
            sides: Default::default(),
            client: None,
            server: None,
            ch: None,
            ch_count: 0,
            sh: None,
            hrr_side: None,
            hrr_version: None,
            alerts: Vec::new(),
            cut_hello: false,
            warnings: Vec::new(),
            warned: 0,
            saw: false,
        }
    }

    fn warn(&mut self, w: String) {
        if self.warned < MAX_WARNINGS {
            self.warned += 1;
            self.warnings.push(w);
        }
    }

    /// Must `side` still be parsed after a ChangeCipherSpec or application data record?
    /// Only while a second hello is due: the client after a HelloRetryRequest (it may send a
    /// middlebox-compatibility CCS first, RFC 8446 §D.4) or after offering 0-RTT data before any
    /// ServerHello; the server between its HelloRetryRequest and its ServerHello.
    fn held(&self, side: Side) -> bool {
        if self.client == Some(side) {
            let early = self.ch.as_ref().is_some_and(|c| c.early_data) && self.sh.is_none();
            return self.ch_count < 2 && (self.hrr_side.is_some() || early);
        }
        self.hrr_side == Some(side) && self.sh.is_none()
    }

    /// Feeds in-order stream bytes of `side`, seen at `ts`.
    pub fn feed(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        self.feed_bytes(side, data, ts);
        if self.sides[s].done {
            self.sides[s].release();
            if !self.sides[s].tail.active {
                return Feed::Done;
            }
        }
        Feed::More
    }

    fn feed_bytes(&mut self, side: Side, data: &[u8], ts: Timestamp) {
        let s = side.idx();
        let mut pos = 0;
        while pos < data.len() && !self.sides[s].done {
            if self.sides[s].resync {
                pos += self.resync_step(side, &data[pos..], ts);
                continue;
            }
            if !self.sides[s].rec.is_empty() {
                pos = self.fill_record(side, data, pos, ts);
                continue;
            }
            let rest = &data[pos..];
            if (self.sides[s].records == 0 || self.sides[s].sslv2) && rest[0] & 0x80 != 0 {
                // SSLv2 record format (2-byte header with the high bit set).
                if rest.len() < 2 {
                    self.sides[s].rec.extend_from_slice(rest);
                    return;
                }
                let len = (((rest[0] & 0x7f) as usize) << 8) | rest[1] as usize;
                if rest.len() < 2 + len {
                    self.sides[s].rec.extend_from_slice(rest);
                    return;
                }
                self.sslv2_record(side, &rest[2..2 + len], ts);
                pos += 2 + len;
                continue;
            }
            if rest.len() < 5 {
                self.sides[s].rec.extend_from_slice(rest);
                return;
            }
            let Some(len) = stream_header(rest) else {
                self.warn(format!("tls: invalid record header {:02x?}; resynchronising", &rest[..5]));
                self.sides[s].start_resync();
                pos += 1;
                continue;
            };
            if rest.len() < 5 + len {
                self.sides[s].rec.extend_from_slice(rest);
                return;
            }
            self.record(side, rest[0], &rest[5..5 + len], ts);
            pos += 5 + len;
        }
        if self.sides[s].done && pos < data.len() {
            self.walk_tail(side, &data[pos..]);
        }
    }

    /// The server chose a version below TLS 1.3 (or SSL 2.0): nothing to infer from record sizes.
    fn below_tls13(&self) -> bool {
        self.sh.as_ref().is_some_and(|sh| sh.sslv2 || !is_tls13(sh.selected.unwrap_or(sh.legacy)))
    }

    /// Starts walking the record headers of `side` once its cleartext part is over: only for
    /// the client, and not once the server is known to have chosen TLS ≤ 1.2.
    fn start_tail(&mut self, side: Side, first_app_data: Option<usize>) {
        if self.client != Some(side) || self.sides[side.idx()].sslv2 || self.below_tls13() {
            return;
        }
        self.sides[side.idx()].tail.active = true;
        if let Some(len) = first_app_data {
            self.tail_record(side, 23, len);
        }
    }

    /// Counts one record walked by the tail.
    fn tail_record(&mut self, side: Side, ctype: u8, len: usize) {
        let tls12 = self.below_tls13();
        let t = &mut self.sides[side.idx()].tail;
        t.walked = t.walked.saturating_add(1);
        if ctype == 23 && (t.n as usize) < TAIL_RECORDS {
            t.lens[t.n as usize] = len as u16;
            t.n += 1;
        }
        if t.n as usize == TAIL_RECORDS || t.walked >= TAIL_WALK || tls12 {
            t.active = false;
        }
    }

    /// Walks record headers of a side whose cleartext part is over, skipping bodies.
    fn walk_tail(&mut self, side: Side, data: &[u8]) {
        let s = side.idx();
        let mut pos = 0;
        while self.sides[s].tail.active && pos < data.len() {
            let t = &mut self.sides[s].tail;
            if t.skip > 0 {
                let k = t.skip.min(data.len() - pos);
                t.skip -= k;
                pos += k;
                continue;
            }
            let have = t.hdr_len as usize;
            let k = (5 - have).min(data.len() - pos);
            t.hdr[have..have + k].copy_from_slice(&data[pos..pos + k]);
            t.hdr_len += k as u8;
            pos += k;
            if t.hdr_len < 5 {
                return;
            }
            t.hdr_len = 0;
            match stream_header(&t.hdr) {
                Some(len) => {
                    t.skip = len;
                    let ctype = t.hdr[0];
                    self.tail_record(side, ctype, len);
                }
                None => {
                    t.broken = true;
                    t.active = false;
                }
            }
        }
    }

    /// Looks for the next record boundary in `data`, the continuation of the side's stream;
    /// returns the bytes consumed. A candidate header counts once the header after it is seen
    /// too (or, for a mid-stream record, once it cannot be seen): see [`scan_records`].
    fn resync_step(&mut self, side: Side, data: &[u8], ts: Timestamp) -> usize {
        let s = side.idx();
        let st = &mut self.sides[s];
        let (consumed, dropped, found) = if st.scan.is_empty() {
            match scan_records(data) {
                Scan::Found(o) => {
                    st.resync = false;
                    st.scanned = 0;
                    return o;
                }
                Scan::Wait { at, need } => {
                    st.scan.extend_from_slice(&data[at..]);
                    st.scan_need = need - at;
                    (data.len(), at, None)
                }
                Scan::Nothing { keep_from } => {
                    st.scan.extend_from_slice(&data[keep_from..]);
                    st.scan_need = 0;
                    (data.len(), keep_from, None)
                }
            }
        } else {
            if st.scan.len() >= SCAN_WINDOW {
                // Cannot happen (a candidate is decided within 5 + MAX_RECORD + 5 bytes); be safe.
                st.scan.clear();
            }
            let n = (SCAN_WINDOW - st.scan.len()).min(data.len());
            st.scan.extend_from_slice(&data[..n]);
            if st.scan.len() < st.scan_need {
                return n;
            }
            match scan_records(&st.scan) {
                Scan::Found(o) => (n, o, Some(o)),
                Scan::Wait { at, need } => {
                    st.scan.drain(..at);
                    st.scan_need = need - at;
                    (n, at, None)
                }
                Scan::Nothing { keep_from } => {
                    st.scan.drain(..keep_from);
                    st.scan_need = 0;
                    (n, keep_from, None)
                }
            }
        };
        st.scanned = st.scanned.saturating_add(dropped);
        if let Some(o) = found {
            let win = std::mem::take(&mut st.scan);
            st.resync = false;
            st.scanned = 0;
            st.scan_need = 0;
            // `win` holds bytes up to the end of `data[..consumed]`: parse them now, in order.
            self.feed_bytes(side, win.get(o..).unwrap_or(&[]), ts);
            return consumed;
        }
        if st.scanned > MAX_RESYNC_SCAN {
            st.done = true;
            self.warn(format!("tls: no record boundary in {MAX_RESYNC_SCAN} bytes; giving up on this side"));
        }
        consumed
    }

    /// Completes a buffered record with bytes from `data[pos..]`; returns the new position.
    fn fill_record(&mut self, side: Side, data: &[u8], pos: usize, ts: Timestamp) -> usize {
        let s = side.idx();
        let buf = &mut self.sides[s].rec;
        let sslv2 =
            (self.sides[s].records == 0 || self.sides[s].sslv2) && buf.first().is_some_and(|b| b & 0x80 != 0);
        let hdr = if sslv2 { 2 } else { 5 };
        if buf.len() < hdr {
            let k = (hdr - buf.len()).min(data.len() - pos);
            buf.extend_from_slice(&data[pos..pos + k]);
            return pos + k;
        }
        let len = if sslv2 {
            (((buf[0] & 0x7f) as usize) << 8) | buf[1] as usize
        } else {
            match stream_header(buf) {
                Some(l) => l,
                None => {
                    let w = format!("tls: invalid record header {:02x?}; resynchronising", &buf[..5]);
                    self.sides[s].start_resync();
                    self.warn(w);
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

    /// One SSLv2-format record (RFC 6101 appendix E; draft-hickman-netscape-ssl-00).
    fn sslv2_record(&mut self, side: Side, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        let first = self.sides[s].records == 0;
        self.sides[s].records += 1;
        self.sides[s].sslv2 |= first;
        let mut r = Rd { b: body };
        match r.u8() {
            Some(1) => {
                // CLIENT-HELLO: version, cipher-specs length, session-id length, challenge length.
                // A TLS server answers it with a TLS ServerHello and the client goes on in TLS
                // records, so this side is not done.
                let parsed = (|| {
                    let version = r.u16()?;
                    let specs = r.u16()? as usize;
                    let sid = r.u16()? as usize;
                    let chal = r.u16()? as usize;
                    r.bytes(specs)?;
                    let sid = r.bytes(sid)?;
                    r.bytes(chal)?;
                    Some((version, sid))
                })();
                let Some((legacy, sid)) = parsed else {
                    self.warn("tls: malformed SSLv2 ClientHello".into());
                    return;
                };
                self.saw = true;
                self.ch_count += 1;
                self.client.get_or_insert(side);
                if self.ch.is_none() {
                    self.ch = Some(ClientHello {
                        legacy,
                        sslv2: true,
                        session_id: sid.to_vec(),
                        ..ClientHello::default()
                    });
                }
            }
            Some(4) => {
                // SERVER-HELLO: session-id-hit, certificate type, version, lengths, certificate.
                let parsed = (|| {
                    r.u8()?;
                    r.u8()?;
                    let version = r.u16()?;
                    let cert_len = r.u16()? as usize;
                    r.u16()?;
                    r.u16()?;
                    Some((version, r.bytes(cert_len)?))
                })();
                let Some((version, cert)) = parsed else {
                    self.warn("tls: malformed SSLv2 ServerHello".into());
                    return;
                };
                self.saw = true;
                self.server.get_or_insert(side);
                if !cert.is_empty() {
                    let st = &mut self.sides[s];
                    st.cert_msg = true;
                    st.certs.push(parse_cert(cert, ts));
                }
                self.sh.get_or_insert(ServerHello { legacy: version, sslv2: true, ..ServerHello::default() });
                // SSL 2.0 was negotiated: everything after the hellos is encrypted, both ways.
                for st in &mut self.sides {
                    st.done = true;
                }
            }
            // CLIENT-MASTER-KEY and what follows: nothing more in cleartext.
            _ if !first => self.sides[s].done = true,
            _ => {
                self.warn("tls: unexpected SSLv2 record".into());
                self.sides[s].done = true;
            }
        }
    }

    fn record(&mut self, side: Side, ctype: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        self.saw = true;
        self.sides[s].records += 1;
        self.sides[s].scanned = 0;
        match ctype {
            20 => {
                let held = self.held(side);
                let st = &mut self.sides[s];
                st.ccs = true;
                if !held && !st.done {
                    st.encrypted = true;
                    st.done = true;
                    self.start_tail(side, None);
                }
            }
            21 if !self.sides[s].encrypted && body.len() == 2 && self.alerts.len() < MAX_ALERTS => {
                self.alerts.push((side, body[0], body[1]));
            }
            22 if !self.sides[s].encrypted => self.handshake_bytes(side, body, ts),
            23 if !self.held(side) && !self.sides[s].done => {
                self.sides[s].done = true;
                self.start_tail(side, Some(body.len()));
            }
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
            if self.sides[s].hs.is_empty() && !self.sides[s].done {
                if hs.is_empty() && hs.capacity() > 64 * 1024 {
                    hs = Vec::new(); // a big message went through; do not keep its memory
                }
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
        while b.len() - pos >= 4 && !self.sides[s].done && !self.sides[s].encrypted {
            let typ = b[pos];
            let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
            if len > self.limits.max_buffer {
                self.warn(format!("tls: handshake message of {len} bytes exceeds buffer limit"));
                let have = b.len() - pos - 4;
                if have >= len {
                    pos += 4 + len;
                    continue;
                }
                self.sides[s].hs_skip = len - have;
                return b.len();
            }
            if b.len() - pos - 4 < len {
                break;
            }
            self.message(side, typ, &b[pos + 4..pos + 4 + len], ts);
            pos += 4 + len;
        }
        if self.sides[s].done || self.sides[s].encrypted {
            return b.len();
        }
        pos
    }

    fn message(&mut self, side: Side, typ: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        match typ {
            1 => self.client_hello(side, body),
            2 => self.server_hello(side, body),
            11 => self.certificate(side, body, ts),
            13 => self.sides[s].cert_request = true,
            14 => self.sides[s].hello_done = true,
            _ => {}
        }
    }

    fn client_hello(&mut self, side: Side, body: &[u8]) {
        self.ch_count += 1;
        if self.ch_count > 1 {
            // Facts come from the first ClientHello; a second one is expected after a
            // HelloRetryRequest only.
            if self.client != Some(side) {
                self.warn("tls: ClientHello from both sides".into());
            } else if self.hrr_side.is_none() || self.ch_count > 2 {
                self.warn("tls: repeated ClientHello".into());
            }
            return;
        }
        self.client.get_or_insert(side);
        match parse_client_hello(body) {
            Some(ch) => self.ch = Some(ch),
            None => self.warn("tls: malformed ClientHello".into()),
        }
    }

    fn server_hello(&mut self, side: Side, body: &[u8]) {
        let s = side.idx();
        self.server.get_or_insert(side);
        let Some((sh, hrr)) = parse_server_hello(body) else {
            self.warn("tls: malformed ServerHello".into());
            return;
        };
        let v = sh.selected.unwrap_or(sh.legacy);
        if hrr {
            self.hrr_side.get_or_insert(side);
            self.hrr_version.get_or_insert(v);
            return;
        }
        if self.sh.is_some() {
            self.warn("tls: repeated ServerHello".into());
            return;
        }
        self.sh = Some(sh);
        if is_tls13(v) {
            // Everything the server sends next is encrypted.
            self.sides[s].done = true;
        }
    }

    fn certificate(&mut self, side: Side, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        // TLS 1.3 adds a request context and per-certificate extensions (RFC 8446 §4.4.2); such
        // a message is encrypted and never reaches us, but a draft or a plaintext test might.
        let tls13 = self.sh.as_ref().is_some_and(|sh| is_tls13(sh.selected.unwrap_or(sh.legacy)));
        let mut r = Rd { b: body };
        if tls13 && r.vec8().is_none() {
            self.warn("tls: malformed Certificate".into());
            return;
        }
        let Some(list) = r.vec24() else {
            self.warn("tls: malformed Certificate".into());
            return;
        };
        let mut lr = Rd { b: list };
        let mut count = 0usize;
        let mut dropped = 0usize;
        let st = &mut self.sides[s];
        st.cert_msg = true;
        while let Some(der) = lr.vec24() {
            if tls13 && lr.vec16().is_none() {
                break;
            }
            count += 1;
            if st.certs.len() < MAX_CHAIN {
                st.certs.push(parse_cert(der, ts));
            } else {
                dropped += 1;
            }
        }
        let trailing = !lr.b.is_empty();
        if count == 0 {
            st.cert_empty = true;
        }
        if dropped > 0 {
            self.warn(format!("tls: certificate chain of {count} certificates; only {MAX_CHAIN} reported"));
        }
        if trailing {
            self.warn("tls: malformed Certificate".into());
        }
    }

    /// Bytes of `side` were lost: partial record and handshake state is dropped, and the next
    /// plausible record header in later data is looked for.
    pub fn gap(&mut self, side: Side) {
        self.cut_hello(side);
        let st = &mut self.sides[side.idx()];
        if !st.done {
            st.start_resync();
        } else if st.tail.active {
            st.tail.active = false;
            st.tail.broken = true;
        }
    }

    /// Before a hole drops the side's partial record: a ClientHello or ServerHello whose start
    /// was captured (a small snaplen keeps only the first bytes of each packet) gives what it
    /// shows — legacy version, and as far as they were kept the cipher, SNI, ALPN and
    /// supported_versions — and a plausible record header alone makes the flow TLS.
    fn cut_hello(&mut self, side: Side) {
        let st = &self.sides[side.idx()];
        if st.done
            || st.encrypted
            || st.resync
            || st.sslv2
            || st.rec.len() < 5
            || stream_header(&st.rec).is_none()
        {
            return;
        }
        self.saw = true;
        if st.rec[0] != 22 {
            return;
        }
        let typ = st.hs.first().or(st.rec.get(5));
        let wanted = match typ {
            Some(1) => self.ch.is_none(),
            Some(2) => self.sh.is_none() && self.client != Some(side),
            _ => false,
        };
        if !wanted {
            return;
        }
        let msg: Vec<u8> = st.hs.iter().chain(&st.rec[5..]).copied().collect();
        let (Some(&typ), Some(body)) = (msg.first(), msg.get(4..)) else { return };
        match typ {
            1 if self.ch.is_none() => {
                if let Some(ch) = parse_cut_client_hello(body) {
                    self.client.get_or_insert(side);
                    self.ch_count += 1;
                    self.ch = Some(ch);
                    self.cut_hello = true;
                }
            }
            2 if self.sh.is_none() && self.client != Some(side) => {
                if let Some(sh) = parse_cut_server_hello(body) {
                    self.server.get_or_insert(side);
                    self.sh = Some(sh);
                    self.cut_hello = true;
                }
            }
            _ => {}
        }
    }

    /// Bytes held in partial-record, handshake and resync buffers (allocated capacity).
    pub fn buffered(&self) -> usize {
        self.sides.iter().map(|s| s.rec.capacity() + s.hs.capacity() + s.scan.capacity()).sum()
    }

    /// Memory pressure: frees every partial buffer; sides still parsing resynchronise.
    pub fn shed(&mut self) {
        for st in &mut self.sides {
            if !st.done {
                st.start_resync();
            }
            st.rec = Vec::new();
            st.hs = Vec::new();
            st.scan = Vec::new();
        }
    }

    /// Side that sent the ClientHello (or the opposite of the ServerHello sender).
    pub fn client_side(&self) -> Option<Side> {
        self.client.or(self.server.map(Side::other))
    }

    /// The cleartext handshake is over on both sides and, in TLS 1.3, the client's first
    /// encrypted record was seen: every verdict input is in (live `classified` events).
    pub fn settled(&self) -> bool {
        self.sides.iter().all(|s| s.done && (!s.tail.active || s.tail.n > 0))
    }

    /// At least one well-formed TLS record was parsed.
    pub fn saw_tls(&self) -> bool {
        self.saw
    }

    /// Drains warnings (malformed messages, limits hit); at most 16 per session in all.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Final facts. Messages are attributed to the side that sent them: the ClientHello sender
    /// is the client; `client` decides only when no hello was seen.
    pub fn finish(&self, client: Side) -> TlsReport {
        let (mut r, client) = self.partial_report(client);
        r.server_certs = self.sides[client.other().idx()].certs.clone();
        r.client_certs = self.sides[client.idx()].certs.clone();
        if let Some(ch) = &self.ch {
            r.sni = ch.sni.clone();
            r.alpn_offered = ch.alpn.clone();
            if let Some(fp) = &ch.fp {
                r.set_fingerprints(fp.clone());
            }
        }
        r.alpn_selected = self.sh.as_ref().and_then(|sh| sh.alpn.clone());
        r
    }

    /// The same facts, with the certificates and names moved out of a session that is over.
    pub fn into_report(mut self, client: Side) -> TlsReport {
        let (mut r, client) = self.partial_report(client);
        r.server_certs = std::mem::take(&mut self.sides[client.other().idx()].certs);
        r.client_certs = std::mem::take(&mut self.sides[client.idx()].certs);
        if let Some(ch) = &mut self.ch {
            r.sni = ch.sni.take();
            r.alpn_offered = std::mem::take(&mut ch.alpn);
            if let Some(fp) = ch.fp.take() {
                r.set_fingerprints(fp);
            }
        }
        r.alpn_selected = self.sh.as_mut().and_then(|sh| sh.alpn.take());
        r
    }

    /// Every fact but the certificate chains, the SNI, the ALPN values and the fingerprints
    /// (which the callers copy or move); with the side found to be the client.
    fn partial_report(&self, client: Side) -> (TlsReport, Side) {
        let client = self.client_side().unwrap_or(client);
        let (cs, ss) = (&self.sides[client.idx()], &self.sides[client.other().idx()]);
        let mut r = TlsReport {
            hello_retry_request: self.hrr_side.is_some(),
            client_cert_requested: ss.cert_request,
            client_cert_empty: cs.cert_empty,
            ..TlsReport::default()
        };
        if let Some(ch) = &self.ch {
            r.legacy_version = Some(version_name(ch.legacy));
            r.versions_offered = if ch.versions.is_empty() && self.cut_hello {
                Vec::new() // supported_versions may be in the part that was not captured
            } else if ch.versions.is_empty() {
                vec![version_name(ch.legacy)]
            } else {
                ch.versions.iter().map(|&v| version_name(v)).collect()
            };
            r.sslv2_client_hello = ch.sslv2;
        }
        let mut negotiated = self.hrr_version;
        if let Some(sh) = &self.sh {
            let v = sh.selected.unwrap_or(sh.legacy);
            // A cut ServerHello with legacy_version 1.2 and no supported_versions in what was
            // kept may be TLS 1.2 or 1.3.
            let known = !sh.cut || sh.selected.is_some() || sh.legacy < 0x0303 || sh.exts_whole;
            negotiated = known.then_some(v);
            if !(sh.sslv2 || sh.cut && sh.cipher == 0) {
                r.cipher = Some(cipher_name(sh.cipher));
            }
            if !sh.cut {
                r.resumption = self.resumption(sh, v, ss);
            }
        }
        r.version = negotiated.map(version_name);
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
        if negotiated.is_some_and(is_tls13) {
            r.client_encrypted_records = cs.tail.lens[..cs.tail.n as usize].to_vec();
        }
        let (mtls, reason) = self.verdict(negotiated, r.resumption.is_some(), cs, ss);
        r.mtls = mtls;
        r.mtls_reason = reason;
        let answered = negotiated.is_some() || ss.cert_msg || ss.hello_done || ss.cert_request;
        r.awaiting_server = self.ch.is_some() && !answered;
        let refusal =
            r.alerts.iter().find(|a| a.from == "server" && a.is_fatal()).filter(|_| r.awaiting_server);
        if let Some(a) = refusal.map(|a| Refusal::Alert(a.description.clone())) {
            r.refuse(a);
        } else if let Some(a) = r.fatal_alert() {
            // A cleartext fatal alert ends the handshake: whatever was sent, no session followed.
            let text = format!("; the handshake failed ({} alert from the {})", a.description, a.from);
            r.mtls_reason.push_str(&text);
        }
        (r, client)
    }

    /// How the session was resumed, if it was.
    fn resumption(&self, sh: &ServerHello, v: u16, server: &SideTls) -> Option<&'static str> {
        if sh.psk {
            return Some("psk");
        }
        if is_tls13(v) || sh.sslv2 {
            return None;
        }
        let ch = self.ch.as_ref();
        // Abbreviated handshake (RFC 5246 §7.3): ServerHello then ChangeCipherSpec, with no
        // Certificate or ServerHelloDone in between.
        let abbreviated = server.ccs && !server.cert_msg && !server.hello_done;
        let ticket = ch.is_some_and(|c| c.ticket);
        let echoed = ch.is_some_and(|c| !c.session_id.is_empty() && c.session_id == sh.session_id);
        if abbreviated && ticket {
            // RFC 5077 §3.4: the server echoes the client's session id when it accepts a ticket.
            Some("session_ticket")
        } else if echoed {
            Some("session_id")
        } else if abbreviated && ch.is_some_and(|c| c.ticket_ext) {
            Some("session_ticket")
        } else {
            None
        }
    }

    fn verdict(
        &self,
        negotiated: Option<u16>,
        resumed: bool,
        client: &SideTls,
        server: &SideTls,
    ) -> (&'static str, String) {
        if let Some(c) = client.certs.first() {
            let who = c.san_uris.first().or(c.subject.as_ref()).cloned().unwrap_or_else(|| "unparsed".into());
            return ("yes", format!("client sent a certificate ({who})"));
        }
        if self.cut_hello {
            return (
                "unknown",
                "handshake cut short by the capture: packets truncated by the snaplen (record with -s 0 to see it whole)".into(),
            );
        }
        match negotiated {
            Some(v) if is_tls13(v) => return self.tls13_verdict(resumed, client),
            Some(0x0002) => return ("unknown", "SSL 2.0: client authentication is encrypted".into()),
            Some(_) => {}
            // Without hellos, a cleartext server Certificate or ServerHelloDone still says ≤ 1.2.
            None if server.cert_msg || server.hello_done || server.cert_request => {}
            None if self.ch.is_none() => {
                return ("unknown", "handshake not seen (capture started mid-stream)".into())
            }
            None => return ("unknown", "no ServerHello seen".into()),
        }
        if server.cert_request && client.cert_empty {
            return ("no", "client certificate requested but the client sent none".into());
        }
        if resumed {
            return (
                "unknown",
                "abbreviated handshake (session resumption): client authentication, if any, happened in an earlier handshake"
                    .into(),
            );
        }
        if server.cert_request {
            return ("unknown", "client certificate requested; the client's answer was not seen".into());
        }
        // "Not requested" needs the whole server flight: a capture that starts inside it may have
        // missed the CertificateRequest.
        if server.hello_done && negotiated.is_some() {
            return ("no", "server did not request a client certificate".into());
        }
        if server.hello_done {
            return ("unknown", "server flight seen only in part (capture started mid-handshake)".into());
        }
        ("unknown", "server handshake not seen to its end".into())
    }

    /// TLS 1.3 hides certificates, but not the size of the client's first encrypted flight
    /// (RFC 8446 §4.4): Finished alone when no certificate was requested; an empty Certificate
    /// (8 bytes) and Finished when one was requested and the client had none; Certificate,
    /// CertificateVerify and Finished — hundreds of bytes more — when it sent one. Stacks put
    /// that flight in one record (OpenSSL) or one record per message (Go, rustls), so the first
    /// encrypted record decides: its plaintext is the record length minus the inner content
    /// type byte and the AEAD tag. docs/istio.md states the rule and its limits (record padding,
    /// 0-RTT, post-handshake authentication); captures/tls13-calib.md the calibration.
    fn tls13_verdict(&self, resumed: bool, client: &SideTls) -> (&'static str, String) {
        if resumed {
            return (
                "unknown",
                "TLS 1.3 session resumption (PSK): no certificates in this handshake; the client was authenticated, if at all, in the handshake that made the session".into(),
            );
        }
        let t = &client.tail;
        let Some(&first) = t.lens[..t.n as usize].first() else {
            let why = if t.broken { "lost in a capture gap" } else { "not seen" };
            return ("unknown", format!("TLS 1.3: the client's encrypted flight was {why}"));
        };
        let cipher = self.sh.as_ref().map_or(0, |sh| sh.cipher);
        // TLS_AES_256_GCM_SHA384 has a 48-byte Finished; TLS_AES_128_CCM_8_SHA256 an 8-byte tag.
        let hash = if cipher == 0x1302 { 48 } else { 32 };
        let tag = if cipher == 0x1305 { 8 } else { 16 };
        let overhead = 1 + tag;
        let finished = 4 + hash;
        // (Fixed arrays: this runs for every TLS 1.3 flow.)
        let records = &t.lens[..t.n as usize];
        let mut lens = [0usize; TAIL_RECORDS];
        for (p, &l) in lens.iter_mut().zip(records) {
            *p = (l as usize).saturating_sub(overhead);
        }
        let lens = &lens[..records.len()];
        // One string for the reason: this runs for every TLS 1.3 flow.
        use std::fmt::Write as _;
        let push_sizes = |out: &mut String, n: usize, sep: &str| {
            for (i, l) in records[..n].iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                let _ = write!(out, "{l}");
            }
        };
        let mut text = String::with_capacity(200);
        text.push_str("TLS 1.3: client's first encrypted records ");
        push_sizes(&mut text, records.len(), ", ");
        text.push_str(" bytes; ");
        let fin_rec = finished + overhead;
        // The flight: the first record when it is at least a Finished (one record for the whole
        // flight, or a Certificate alone), else the records up to the first Finished-sized one
        // (one message per record).
        let k = if lens[0] >= finished {
            Some(1)
        } else {
            lens.iter().position(|&p| p == finished).map(|i| i + 1)
        };
        let Some(k) = k else {
            if lens[0] == 8 {
                let _ = write!(
                    text,
                    "the first ({first}) is an empty Certificate: a certificate was requested and the client sent none"
                );
                return ("unlikely", text);
            }
            let _ = write!(
                text,
                "no Finished ({fin_rec}) among them and the first is too small to hold a certificate"
            );
            return ("unknown", text);
        };
        if k == 1 {
            let _ = write!(text, "the first ({first})");
        } else {
            let _ = write!(text, "the first {k} (");
            push_sizes(&mut text, k, " + ");
            text.push(')');
        }
        let extra = lens[..k].iter().sum::<usize>() - finished;
        let verdict = match extra {
            0 => {
                text.push_str(" is a Finished alone: no client certificate was sent");
                "unlikely"
            }
            8 => {
                text.push_str(
                    " is an empty Certificate and a Finished: a certificate was requested and the client sent none",
                );
                "unlikely"
            }
            e if e >= CERT_FLIGHT_MIN_EXTRA => {
                let _ = write!(
                    text,
                    " is {e} bytes more than a Finished alone ({fin_rec}): it carries a client certificate"
                );
                "likely"
            }
            e => {
                let _ = write!(
                    text,
                    " is {e} bytes more than a Finished alone ({fin_rec}): too few for a certificate (a client EncryptedExtensions, as Chrome sends for ALPS, or padding)"
                );
                "unlikely"
            }
        };
        (verdict, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`scan_records`] without its jumps: every offset in turn.
    fn scan_records_walk(data: &[u8]) -> Scan {
        let n = data.len();
        (0..n.saturating_sub(4))
            .find_map(|i| scan_at(data, i))
            .unwrap_or(Scan::Nothing { keep_from: if n >= 5 { n - 4 } else { 0 } })
    }

    #[test]
    fn scan_records_agrees_with_walking_every_offset() {
        // Random bytes drawn mostly from the values a header is made of, so that candidates,
        // chains and cut-off successors all occur; every length from 0 to 300.
        let mut next = crate::wire::xorshift(0x5eed_7e11);
        let alphabet = [0u8, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 0x40, 0xff];
        let mut kinds = [0usize; 3];
        for round in 0..20_000 {
            let len = round % 301;
            let mut data: Vec<u8> =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if round % 3 == 0 && len > 20 {
                // A real record with a short body, followed by the next header, somewhere.
                let at = (next() % (len as u64 - 20)) as usize;
                let body = (next() % 8) as u8 + 1;
                let rec = [22, 3, 3, 0, body];
                data[at..at + 5].copy_from_slice(&rec);
                let succ = at + 5 + body as usize;
                if succ + 5 <= len {
                    data[succ..succ + 5].copy_from_slice(&[23, 3, 3, 0, 2]);
                }
            }
            let (fast, walk) = (scan_records(&data), scan_records_walk(&data));
            assert_eq!(fast, walk, "{data:?}");
            kinds[match walk {
                Scan::Found(_) => 0,
                Scan::Wait { .. } => 1,
                Scan::Nothing { .. } => 2,
            }] += 1;
        }
        assert!(kinds.iter().all(|&k| k > 100), "every outcome exercised: {kinds:?}");
    }

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
        assert_eq!(resync(&d), Some(Resync::At(3)));
        // One header whose successor lies beyond the data: to be confirmed 5 bytes further.
        assert_eq!(resync(&[0xde, 23, 3, 3, 0, 6, 1]), Some(Resync::Expect(5)));
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

    // ---- Real handshakes: openssl s_server/s_client on 127.0.0.1, captured with tcpdump. ----
    // Each `.seg` file is the TCP payload of one connection in capture order: per segment one
    // byte (0 = client, side A; 1 = server, side B), a big-endian u32 length, the bytes.
    const TLS12_MTLS: &[u8] = include_bytes!("testdata/tls12_mtls.seg");
    const TLS13: &[u8] = include_bytes!("testdata/tls13.seg");
    const TLS13_HRR: &[u8] = include_bytes!("testdata/tls13_hrr.seg");
    const TLS12_RESUME: &[u8] = include_bytes!("testdata/tls12_resume.seg");
    /// 2026-11-23T04:16:30Z, just after the test certificates' notBefore.
    const SEEN: Timestamp = Timestamp { secs: 1_795_407_390, nanos: 0 };

    fn segments(mut f: &[u8]) -> Vec<(Side, &[u8])> {
        let mut v = Vec::new();
        while f.len() >= 5 {
            let side = if f[0] == 0 { Side::A } else { Side::B };
            let n = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
            v.push((side, &f[5..5 + n]));
            f = &f[5 + n..];
        }
        v
    }

    /// The whole stream of one side.
    fn stream(f: &[u8], side: Side) -> Vec<u8> {
        segments(f).into_iter().filter(|(s, _)| *s == side).flat_map(|(_, d)| d.to_vec()).collect()
    }

    /// Feeds a capture like the flow layer does (a side is no longer fed once done), each
    /// segment cut into chunks of sizes from `chunk(i)`; returns the session and which sides
    /// ended done.
    fn run_with(f: &[u8], limits: TlsLimits, chunk: impl Fn(usize) -> usize) -> (TlsSession, [bool; 2]) {
        let mut t = TlsSession::new(limits);
        let mut done = [false; 2];
        let mut k = 0;
        for (side, mut d) in segments(f) {
            while !d.is_empty() && !done[side.idx()] {
                let n = chunk(k).clamp(1, d.len());
                k += 1;
                done[side.idx()] = t.feed(side, &d[..n], SEEN) == Feed::Done;
                d = &d[n..];
            }
        }
        (t, done)
    }

    fn run(f: &[u8]) -> (TlsSession, [bool; 2]) {
        run_with(f, limits(), |_| usize::MAX)
    }

    fn json(r: &TlsReport) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn tls12_mtls_capture() {
        let (mut t, done) = run(TLS12_MTLS);
        assert_eq!(done, [true, true]);
        assert!(t.saw_tls());
        assert_eq!(t.client_side(), Some(Side::A));
        assert_eq!(t.take_warnings(), Vec::<String>::new());
        let r = t.finish(Side::B);
        assert_eq!(
            r.sni.as_ref().unwrap().as_bytes(),
            b"outbound_.9080_._.reviews.default.svc.cluster.local"
        );
        let alpn: Vec<&[u8]> = r.alpn_offered.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(alpn, [&b"istio-peer-exchange"[..], b"istio"]);
        assert_eq!(r.alpn_selected.as_ref().unwrap().as_bytes(), b"istio-peer-exchange");
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"));
        assert!(!r.hello_retry_request && r.resumption.is_none() && r.alerts.is_empty());
        assert_eq!(r.server_certs.len(), 2);
        let leaf = &r.server_certs[0];
        assert_eq!(leaf.subject.as_deref(), Some("CN=reviews,O=cluster.local"));
        assert_eq!(leaf.issuer.as_deref(), Some("CN=Test Root CA,O=cluster.local"));
        assert_eq!(leaf.serial.as_deref(), Some("a1b2c3d4"));
        assert_eq!(leaf.san_uris, ["spiffe://cluster.local/ns/default/sa/reviews"]);
        assert_eq!(leaf.san_dns, ["reviews.default.svc.cluster.local"]);
        assert_eq!(leaf.not_before.as_deref(), Some("2026-11-23T04:16:03Z"));
        assert_eq!(leaf.not_after.as_deref(), Some("2036-11-20T04:16:03Z"));
        assert!(!leaf.expired && !leaf.not_yet_valid && leaf.parse_error.is_none());
        assert_eq!(r.server_certs[1].subject.as_deref(), Some("CN=Test Root CA,O=cluster.local"));
        assert_eq!(r.client_certs.len(), 2); // s_client completes the chain from -CAfile
        assert_eq!(r.client_certs[0].subject.as_deref(), Some("CN=productpage,O=cluster.local"));
        assert_eq!(r.client_certs[0].san_uris, ["spiffe://cluster.local/ns/default/sa/productpage"]);
        assert!(r.client_cert_requested && !r.client_cert_empty && !r.sslv2_client_hello);
        assert_eq!(r.mtls, "yes");
        assert_eq!(
            r.mtls_reason,
            "client sent a certificate (spiffe://cluster.local/ns/default/sa/productpage)"
        );
        // Validity is judged at the time the certificate was seen.
        let mut late = TlsSession::new(limits());
        for (side, d) in segments(TLS12_MTLS) {
            late.feed(side, d, Timestamp { secs: 2_200_000_000, nanos: 0 });
        }
        assert!(late.finish(Side::A).server_certs[0].expired);
    }

    #[test]
    fn json_keys_always_present() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&TlsSession::new(limits()).finish(Side::A))).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "version",
            "legacy_version",
            "versions_offered",
            "sni",
            "alpn_offered",
            "alpn_selected",
            "cipher",
            "hello_retry_request",
            "resumption",
            "alerts",
            "server_certs",
            "client_certs",
            "client_cert_requested",
            "client_cert_empty",
            "mtls",
            "mtls_reason",
            "sslv2_client_hello",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(v["version"], serde_json::Value::Null);
        let (t, _) = run(TLS12_MTLS);
        let v: serde_json::Value = serde_json::from_str(&json(&t.finish(Side::A))).unwrap();
        let cert = v["server_certs"][0].as_object().unwrap();
        for k in [
            "subject",
            "issuer",
            "serial",
            "san_dns",
            "san_uris",
            "san_ips",
            "san_emails",
            "not_before",
            "not_after",
            "expired",
            "not_yet_valid",
            "parse_error",
        ] {
            assert!(cert.contains_key(k), "{k}");
        }
    }

    #[test]
    fn chunk_sizes_do_not_change_the_report() {
        for f in [TLS12_MTLS, TLS13, TLS13_HRR, TLS12_RESUME] {
            let (whole, done) = run(f);
            let want = json(&whole.finish(Side::A));
            for chunk in [|_| 1, |i| 1 + (i * 7919) % 97, |i| 1 + (i * 104_729) % 3000] {
                let (t, d) = run_with(f, limits(), chunk);
                assert_eq!(json(&t.finish(Side::A)), want);
                assert_eq!(d, done);
            }
        }
    }

    #[test]
    fn tls13_capture() {
        let (mut t, done) = run(TLS13);
        assert_eq!(done, [false, true], "the client side still walks its encrypted records");
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert_eq!(r.sni.as_ref().unwrap().as_bytes(), b"reviews.example");
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.versions_offered, ["TLS 1.3"]);
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        let alpn: Vec<&[u8]> = r.alpn_offered.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(alpn, [&b"h2"[..], b"http/1.1"]);
        assert!(r.alpn_selected.is_none() && r.server_certs.is_empty() && r.client_certs.is_empty());
        // openssl s_client without a certificate: its first encrypted record is a Finished alone.
        assert_eq!(r.client_encrypted_records, [69, 23, 19]);
        assert_eq!(
            (r.mtls, r.mtls_reason.as_str()),
            (
                "unlikely",
                "TLS 1.3: client's first encrypted records 69, 23, 19 bytes; the first (69) is a Finished alone: no client certificate was sent"
            )
        );
        // The server is done right after its ServerHello: the first segment it sends.
        let mut t = TlsSession::new(limits());
        let segs = segments(TLS13);
        t.feed(segs[0].0, segs[0].1, SEEN);
        assert_eq!(t.feed(segs[1].0, segs[1].1, SEEN), Feed::Done);
    }

    /// A TLS 1.3 handshake with `cipher` whose client then sends application_data records of
    /// the given lengths (after a middlebox-compatibility CCS), fed in one chunk.
    fn tls13_flight(cipher: u16, client_records: &[usize]) -> TlsReport {
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        let sh = record(&[(2, server_hello([2; 32], cipher, &[ext(43, &[3, 4])]))]);
        assert_eq!(t.feed(Side::B, &sh, ts), Feed::Done);
        let mut c = vec![20, 3, 3, 0, 1, 1];
        for &n in client_records {
            c.extend_from_slice(&[23, 3, 3]);
            c.extend_from_slice(&(n as u16).to_be_bytes());
            c.extend(std::iter::repeat_n(0xaa, n));
        }
        t.feed(Side::A, &c, ts);
        t.finish(Side::A)
    }

    #[test]
    fn tls13_client_flight_sizes_give_the_verdict() {
        let cases: &[(u16, &[usize], &str)] = &[
            (0x1301, &[53, 40], "unlikely"),        // Finished alone (SHA-256)
            (0x1302, &[69], "unlikely"),            // Finished alone (SHA-384)
            (0x1303, &[53], "unlikely"),            // ChaCha20-Poly1305, SHA-256
            (0x1305, &[45], "unlikely"),            // AES-128-CCM-8: 8-byte tag
            (0x1301, &[25, 53], "unlikely"),        // empty Certificate, then Finished
            (0x1301, &[61], "unlikely"),            // empty Certificate + Finished in one record
            (0x1302, &[77], "unlikely"),            // same, SHA-384
            (0x1301, &[487, 96, 53], "likely"),     // Certificate, CertificateVerify, Finished
            (0x1302, &[1209], "likely"),            // the three in one record
            (0x1301, &[90], "unlikely"),            // Finished + 37 bytes: no room for a certificate
            (0x1301, &[63], "unlikely"),            // Chrome: EncryptedExtensions (ALPS) + Finished
            (0x1301, &[27, 480, 96, 53], "likely"), // EncryptedExtensions, Certificate, CV, Finished
            (0x1301, &[27, 53], "unlikely"),        // EncryptedExtensions, Finished
            (0x1301, &[25], "unlikely"),            // an empty Certificate, Finished not seen
            (0x1301, &[30, 40], "unknown"),         // no Finished-sized record
            (0x1301, &[], "unknown"),               // flight not seen
        ];
        for (cipher, recs, want) in cases {
            let r = tls13_flight(*cipher, recs);
            assert_eq!(r.mtls, *want, "{cipher:04x} {recs:?}: {}", r.mtls_reason);
            let kept: Vec<u16> = recs.iter().take(4).map(|&n| n as u16).collect();
            assert_eq!(r.client_encrypted_records, kept);
        }
        let r = tls13_flight(0x1301, &[61]);
        assert_eq!(
            r.mtls_reason,
            "TLS 1.3: client's first encrypted records 61 bytes; the first (61) is an empty Certificate and a Finished: a certificate was requested and the client sent none"
        );
        assert_eq!(
            tls13_flight(0x1301, &[]).mtls_reason,
            "TLS 1.3: the client's encrypted flight was not seen"
        );
    }

    #[test]
    fn tls13_tail_walks_headers_byte_by_byte_and_stops() {
        // The same verdict when the client's records arrive one byte at a time; the side reports
        // Done after 4 application_data records, and a gap stops the walk.
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[ext(43, &[3, 4])]))]), ts);
        let mut c = vec![20, 3, 3, 0, 1, 1];
        for n in [487usize, 96, 53, 300, 20] {
            c.extend_from_slice(&[23, 3, 3]);
            c.extend_from_slice(&(n as u16).to_be_bytes());
            c.extend(std::iter::repeat_n(0, n));
        }
        let feeds: Vec<Feed> = c.chunks(1).map(|b| t.feed(Side::A, b, ts)).collect();
        let first_done = feeds.iter().position(|f| *f == Feed::Done).unwrap();
        // Done right after the 4th record's header (6 + 3 full records + its 5 header bytes).
        assert_eq!(first_done, 6 + (5 + 487) + (5 + 96) + (5 + 53) + 5 - 1);
        let r = t.finish(Side::A);
        assert_eq!(r.client_encrypted_records, [487, 96, 53, 300]);
        assert_eq!(r.mtls, "likely");

        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[ext(43, &[3, 4])]))]), ts);
        t.feed(Side::A, &[20, 3, 3, 0, 1, 1], ts);
        t.gap(Side::A);
        let r = t.finish(Side::A);
        assert_eq!(r.mtls_reason, "TLS 1.3: the client's encrypted flight was lost in a capture gap");
    }

    #[test]
    fn tls13_hello_retry_request_capture() {
        // Client: ClientHello; server: HelloRetryRequest + CCS; client: CCS + ClientHello;
        // server: ServerHello + encrypted records.
        let (mut t, done) = run(TLS13_HRR);
        assert_eq!(done, [false, true]);
        assert!(t.take_warnings().is_empty());
        assert_eq!(t.ch_count, 2);
        let r = t.finish(Side::A);
        assert!(r.hello_retry_request);
        assert_eq!(r.sni.as_ref().unwrap().as_bytes(), b"hrr.example");
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        // Records after the second ClientHello count, not the CCS sent before it.
        assert_eq!(r.mtls, "unlikely");
        assert_eq!(r.client_encrypted_records.first(), Some(&69));
    }

    #[test]
    fn tls12_ticket_resumption_capture() {
        let (mut t, done) = run(TLS12_RESUME);
        assert_eq!(done, [true, true]);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert_eq!(r.resumption, Some("session_ticket"));
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.mtls, "unknown");
        assert!(r.mtls_reason.starts_with("abbreviated handshake"));
    }

    #[test]
    fn truncated_and_corrupted_captures_never_panic() {
        for f in [TLS12_MTLS, TLS13_HRR, TLS12_RESUME] {
            for side in [Side::A, Side::B] {
                let s = stream(f, side);
                for cut in 0..s.len().min(1500) {
                    let mut t = TlsSession::new(limits());
                    t.feed(side, &s[..cut], SEEN);
                    let _ = t.finish(Side::A);
                }
            }
        }
        let client = stream(TLS12_MTLS, Side::A);
        let server = stream(TLS12_MTLS, Side::B);
        for i in 0..server.len() {
            let mut s = server.clone();
            s[i] ^= 0x5a;
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            t.feed(Side::B, &s, SEEN);
            t.feed(Side::A, &client[280..], SEEN);
            let _ = json(&t.finish(Side::A));
            let _ = t.take_warnings();
        }
    }

    #[test]
    fn resyncs_after_a_gap_mid_certificate() {
        // The server's Certificate record is cut by a gap: the CertificateRequest and
        // ServerHelloDone records after it are still found.
        let server = stream(TLS12_MTLS, Side::B);
        let client = stream(TLS12_MTLS, Side::A);
        for chunk in [usize::MAX, 1, 13] {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            t.feed(Side::B, &server[..150], SEEN);
            t.gap(Side::B);
            for c in server[700..].chunks(chunk.min(server.len())) {
                if t.feed(Side::B, c, SEEN) == Feed::Done {
                    break;
                }
            }
            t.feed(Side::A, &client[280..], SEEN);
            assert!(t.take_warnings().is_empty());
            let r = t.finish(Side::A);
            assert!(r.server_certs.is_empty() && r.client_cert_requested);
            assert_eq!(r.client_certs.len(), 2);
            assert_eq!(r.mtls, "yes");
            assert_eq!(r.cipher.as_deref(), Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"));
        }
        // resync() itself: first record header confirmed by the next one.
        assert_eq!(resync(&server[700..]), Some(Resync::At(1050 - 700)));
        assert_eq!(resync(&[1, 2, 3]), None);
    }

    #[test]
    fn finds_a_client_hello_after_a_plaintext_prefix() {
        let ch = stream(TLS12_MTLS, Side::A);
        let mut d = b"\x00\x00\x00\x08\x04\xd2\x16\x2fS".to_vec(); // pgsql SSLRequest + 'S'
        let at = d.len();
        d.extend_from_slice(&ch[..280]);
        assert_eq!(find_client_hello(&d), Some(at));
        assert_eq!(probe(&d[at..]), Probe::Match);
        assert_eq!(find_client_hello(&ch[280..]), None);
    }

    #[test]
    fn sslv2_client_hello_then_tls() {
        // SSLv2-format ClientHello offering TLS 1.0 (RFC 5246 appendix E.2).
        let mut hello = vec![1, 3, 1, 0, 6, 0, 0, 0, 16];
        hello.extend_from_slice(&[0, 0, 0x2f, 0, 0, 0x35]);
        hello.extend_from_slice(&[0x11; 16]);
        let mut rec = vec![0x80 | (hello.len() >> 8) as u8, hello.len() as u8];
        rec.extend(hello);
        assert_eq!(probe(&rec), Probe::Match);
        assert_eq!(probe(&rec[..1]), Probe::NeedMore);
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::A, &rec, SEEN), Feed::More);
        let sh = record(&[(2, server_hello([3; 32], 0x002f, &[])), (14, vec![])]);
        t.feed(Side::B, &sh, SEEN);
        // The client goes on in TLS records.
        assert_eq!(t.feed(Side::A, &[22, 3, 1, 0, 4, 16, 0, 0, 0], SEEN), Feed::More);
        assert_eq!(t.feed(Side::A, &[20, 3, 1, 0, 1, 1], SEEN), Feed::Done);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert!(r.sslv2_client_hello);
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.0"));
        assert_eq!(r.versions_offered, ["TLS 1.0"]);
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_RSA_WITH_AES_128_CBC_SHA"));
        assert_eq!(r.mtls, "no");
    }

    /// Server flight with a Certificate message of `n` copies of the test leaf certificate,
    /// split into records of at most 16 KiB, then ServerHelloDone.
    fn big_chain_flight(n: usize) -> (Vec<u8>, usize) {
        let server = stream(TLS12_MTLS, Side::B);
        // Record at 96: Certificate message; its first certificate is the leaf.
        let msg = &server[101..101 + 949];
        let leaf_len = u32::from_be_bytes([0, msg[7], msg[8], msg[9]]) as usize;
        let leaf = &msg[7..10 + leaf_len];
        let list: Vec<u8> = (0..n).flat_map(|_| leaf.to_vec()).collect();
        let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend(list);
        let mut hs = vec![11];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs.extend_from_slice(&[14, 0, 0, 0]);
        let mut out = server[..96].to_vec(); // ServerHello record
        for c in hs.chunks(16384) {
            out.extend_from_slice(&[22, 3, 3]);
            out.extend_from_slice(&(c.len() as u16).to_be_bytes());
            out.extend_from_slice(c);
        }
        (out, hs.len() - 8)
    }

    #[test]
    fn certificate_over_many_records() {
        let client = stream(TLS12_MTLS, Side::A);
        let (flight, msg_len) = big_chain_flight(120);
        assert!(msg_len > 3 * 16384);
        for chunk in [usize::MAX, 1460] {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &client[..280], SEEN);
            for c in flight.chunks(chunk) {
                t.feed(Side::B, c, SEEN);
            }
            let w = t.take_warnings();
            assert_eq!(w, ["tls: certificate chain of 120 certificates; only 16 reported"]);
            let r = t.finish(Side::A);
            assert_eq!(r.server_certs.len(), MAX_CHAIN);
            assert_eq!(r.server_certs[15].subject.as_deref(), Some("CN=reviews,O=cluster.local"));
            assert_eq!(r.mtls, "no");
        }
        // Over the buffer limit: skipped with a warning, what follows is still parsed.
        let mut t = TlsSession::new(TlsLimits { max_buffer: 8192 });
        t.feed(Side::A, &client[..280], SEEN);
        for c in flight.chunks(1000) {
            t.feed(Side::B, c, SEEN);
        }
        assert_eq!(
            t.take_warnings(),
            [format!("tls: handshake message of {msg_len} bytes exceeds buffer limit")]
        );
        let r = t.finish(Side::A);
        assert!(r.server_certs.is_empty());
        assert_eq!((r.mtls, r.mtls_reason.as_str()), ("no", "server did not request a client certificate"));
    }

    #[test]
    fn hellos_cut_by_a_small_snaplen_give_what_was_captured() {
        // `-s 96` with TCP timestamps keeps 30 payload bytes of each packet.
        let ch = record(&[(1, client_hello("reviews.default.svc", &["h2"], &[0x0304, 0x0303]))]);
        let sh = record(&[(2, server_hello([9; 32], 0x1301, &[ext(43, &[3, 4])]))]);
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &ch[..30], SEEN);
        t.gap(Side::A);
        t.feed(Side::B, &sh[..30], SEEN);
        t.gap(Side::B);
        assert!(t.saw_tls());
        let r = t.finish(Side::B);
        assert_eq!((r.version.as_deref(), r.legacy_version.as_deref()), (None, Some("TLS 1.2")));
        assert!(r.versions_offered.is_empty() && r.sni.is_none() && r.cipher.is_none());
        assert_eq!(r.mtls, "unknown");
        assert!(r.mtls_reason.starts_with("handshake cut short by the capture"), "{}", r.mtls_reason);
        // Kept long enough, the SNI and the cipher are read; extensions cut in the middle
        // (supported_versions, last here) are not.
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &ch[..ch.len() - 1], SEEN);
        t.gap(Side::A);
        t.feed(Side::B, &sh[..sh.len() - 1], SEEN);
        t.gap(Side::B);
        let r = t.finish(Side::B);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes().to_vec()), Some(b"reviews.default.svc".to_vec()));
        assert!(r.versions_offered.is_empty());
        assert_eq!((r.version.as_deref(), r.cipher.as_deref()), (None, Some("TLS_AES_128_GCM_SHA256")));
        let mut t = TlsSession::new(limits());
        t.feed(Side::B, &sh, SEEN);
        assert_eq!(t.finish(Side::A).version.as_deref(), Some("TLS 1.3"));
        // Bytes that are no record header stay not TLS.
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, b"\x16\x09\x09\x00\x10", SEEN);
        t.gap(Side::A);
        assert!(!t.saw_tls());
    }

    #[test]
    fn alerts_and_midstream() {
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[]))]), SEEN);
        assert_eq!(t.feed(Side::B, &[21, 3, 3, 0, 2, 2, 40], SEEN), Feed::More);
        let r = t.finish(Side::B);
        assert_eq!(r.alerts.len(), 1);
        assert_eq!((r.alerts[0].from, r.alerts[0].level.as_str()), ("server", "fatal"));
        assert_eq!(r.alerts[0].description, "handshake_failure");
        assert_eq!(
            (r.mtls, r.mtls_reason.as_str()),
            ("unknown", "refused by the server: handshake_failure alert (no ServerHello)")
        );
        assert_eq!(r.refused, Some(Refusal::Alert("handshake_failure".into())));
        assert_eq!(
            r.fatal_alert().map(|a| a.meaning()),
            Some(Some(
                "the server gave up: no parameters in common, or a client certificate missing or refused"
            ))
        );
        // Application data only (capture started mid-stream).
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::B, &[23, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3], SEEN), Feed::Done);
        assert!(t.saw_tls());
        let r = t.finish(Side::A);
        assert_eq!(r.mtls_reason, "handshake not seen (capture started mid-stream)");
        assert_eq!(r.version, None);
    }

    /// (ServerHello sent, alerts as (sender is the server, level, description)) -> refused?,
    /// mTLS reason, first fatal alert's meaning.
    #[test]
    fn refusals_and_alert_meanings() {
        #[allow(clippy::type_complexity)]
        let cases: &[(bool, &[(bool, u8, u8)], bool, &str, Option<&str>)] = &[
            (false, &[], false, "no ServerHello seen", None),
            (false, &[(true, 2, 70)], true, "refused by the server: protocol_version alert (no ServerHello)", Some("no TLS version in common")),
            (false, &[(true, 2, 120)], true, "refused by the server: no_application_protocol alert (no ServerHello)", Some("no ALPN protocol in common")),
            (false, &[(true, 2, 112)], true, "refused by the server: unrecognized_name alert (no ServerHello)", Some("the server does not serve this SNI")),
            // A warning does not refuse; nor does an alert the client sends.
            (false, &[(true, 1, 112)], false, "no ServerHello seen", None),
            (false, &[(false, 2, 40)], false, "no ServerHello seen; the handshake failed (handshake_failure alert from the client)", None),
            // After a ServerHello an alert is a failure, not a refusal.
            (true, &[(false, 2, 45)], false, "server handshake not seen to its end; the handshake failed (certificate_expired alert from the client)", Some("the client rejected the server's certificate")),
            (true, &[(true, 2, 48)], false, "server handshake not seen to its end; the handshake failed (unknown_ca alert from the server)", Some("the server rejected the client's certificate")),
            (true, &[(true, 2, 116)], false, "server handshake not seen to its end; the handshake failed (certificate_required alert from the server)", Some("the server requires a client certificate")),
            (true, &[(false, 2, 47)], false, "server handshake not seen to its end; the handshake failed (illegal_parameter alert from the client)", Some("a malformed or unexpected handshake message")),
            (true, &[(false, 2, 99)], false, "server handshake not seen to its end; the handshake failed (99 alert from the client)", None),
        ];
        for (i, &(sh, alerts, refused, reason, meaning)) in cases.iter().enumerate() {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[]))]), SEEN);
            if sh {
                t.feed(Side::B, &record(&[(2, server_hello([9; 32], 0xc02f, &[]))]), SEEN);
            }
            for &(server, level, desc) in alerts {
                let side = if server { Side::B } else { Side::A };
                t.feed(side, &[21, 3, 3, 0, 2, level, desc], SEEN);
            }
            let r = t.finish(Side::A);
            assert_eq!(
                (r.refused.is_some(), r.mtls, r.mtls_reason.as_str()),
                (refused, "unknown", reason),
                "case {i}"
            );
            assert_eq!(r.awaiting_server, !sh, "case {i}");
            assert_eq!(r.fatal_alert().and_then(|a| a.meaning()), meaning, "case {i}");
        }
    }

    #[test]
    fn sslv2_session() {
        let server = stream(TLS12_MTLS, Side::B);
        let msg = &server[101..101 + 949];
        let leaf_len = u32::from_be_bytes([0, msg[7], msg[8], msg[9]]) as usize;
        let leaf = &msg[10..10 + leaf_len];
        let mut hello = vec![1, 0, 2, 0, 3, 0, 0, 0, 16, 1, 0, 0x80];
        hello.extend_from_slice(&[0x22; 16]);
        let mut ch = vec![0x80, hello.len() as u8];
        ch.extend(hello);
        let mut sh = vec![4, 0, 1, 0, 2];
        sh.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        sh.extend_from_slice(&[0, 3, 0, 16]);
        sh.extend_from_slice(leaf);
        sh.extend_from_slice(&[1, 0, 0x80]);
        sh.extend_from_slice(&[0x33; 16]);
        let mut shr = vec![0x80 | (sh.len() >> 8) as u8, sh.len() as u8];
        shr.extend(sh);
        assert_eq!(probe(&ch), Probe::Match);
        assert_eq!(probe(&shr), Probe::Match);
        assert_eq!(probe(&shr[..5]), Probe::NeedMore);
        assert_eq!(probe(&[0x80, 0x20, 4, 0, 1, 0, 3]), Probe::NoMatch);
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::A, &ch, SEEN), Feed::More);
        assert_eq!(t.feed(Side::B, &shr[..100], SEEN), Feed::More);
        assert_eq!(t.feed(Side::B, &shr[100..], SEEN), Feed::Done);
        // CLIENT-MASTER-KEY
        assert_eq!(t.feed(Side::A, &[0x80, 4, 2, 1, 0, 0x80], SEEN), Feed::Done);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert!(r.sslv2_client_hello);
        assert_eq!(r.version.as_deref(), Some("SSL 2.0"));
        assert_eq!(r.legacy_version.as_deref(), Some("SSL 2.0"));
        assert_eq!(r.cipher, None);
        assert_eq!(r.server_certs[0].subject.as_deref(), Some("CN=reviews,O=cluster.local"));
        assert_eq!(r.mtls, "unknown");
    }

    #[test]
    fn random_bytes_chunks_and_gaps_never_panic() {
        let mut next = crate::wire::xorshift(0x2545_f491_4f6c_dd1d);
        let real = stream(TLS12_MTLS, Side::B);
        for round in 0..300 {
            let mut t = TlsSession::new(TlsLimits { max_buffer: 1 + (next() % 70_000) as usize });
            // Random bytes, sometimes spliced with real records and plausible headers.
            let len = (next() % 60_000) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 && !d.is_empty() {
                let at = (next() as usize) % d.len();
                d.splice(at..at, real.iter().copied());
            }
            if round % 5 == 0 {
                for _ in 0..50 {
                    let at = (next() as usize) % (d.len().max(1));
                    let hdr =
                        [20 + (next() % 5) as u8, 3, (next() % 5) as u8, (next() % 0x49) as u8, next() as u8];
                    d.splice(at..at, hdr);
                }
            }
            let mut pos = 0;
            while pos < d.len() {
                let side = if next().is_multiple_of(2) { Side::A } else { Side::B };
                let n = 1 + (next() % 4000) as usize;
                let end = (pos + n).min(d.len());
                t.feed(side, &d[pos..end], SEEN);
                if next().is_multiple_of(7) {
                    t.gap(side);
                }
                pos = end;
            }
            assert!(t.take_warnings().len() <= MAX_WARNINGS);
            let _ = json(&t.finish(Side::A));
        }
    }

    #[test]
    fn fingerprints_only_of_whole_client_hellos() {
        let report = |body: Vec<u8>| {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &record(&[(1, body)]), SEEN);
            t.finish(Side::A)
        };
        // Ciphers 1301, c02f; extensions GREASE, server_name, ALPN h2, supported_versions.
        let ch = client_hello("x.test", &["h2"], &[0x0304, 0x0303]);
        let r = report(ch.clone());
        assert_eq!(r.ja4.as_deref(), Some("t13d0203h2_c1929292aa6b_b9a491fefe05"));
        assert_eq!(r.ja4_r.as_deref(), Some("t13d0203h2_1301,c02f_002b"));
        assert_eq!(r.ja3_full.as_deref(), Some("771,4865-49199,0-16-43,,"));
        assert_eq!(r.ja3.as_deref(), Some("336f5f33f4497e06a9cd5231997c3982"));
        // The same hello as an SSL 3.0-style one without an extension block.
        let r = report(ch[..43].to_vec());
        assert_eq!(r.ja3_full.as_deref(), Some("771,4865-49199,,,"));
        assert_eq!(r.ja4.as_deref(), Some("t12i020000_c1929292aa6b_000000000000"));
        // The last extension claims more bytes than the block holds: the facts before it are
        // still reported, the fingerprints are not (they would be of part of the hello).
        let mut cut = ch.clone();
        let n = cut.len();
        cut[n - 6] = 0x7f;
        let r = report(cut);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes()), Some(&b"x.test"[..]));
        assert_eq!((r.ja4, r.ja4_r, r.ja3, r.ja3_full), (None, None, None, None));
        // An extension block longer than the message, an odd cipher list.
        let mut long = ch.clone();
        long[43] = 0xff;
        assert_eq!(report(long).ja4, None);
        let odd = [&ch[..35], &[0, 5], &ch[37..41], &[0x13], &ch[41..]].concat();
        let r = report(odd);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes()), Some(&b"x.test"[..]));
        assert_eq!(r.ja3, None);
        // Every cut of the message and every byte flipped: no panic, fingerprints or none.
        for cut in 0..ch.len() {
            let _ = report(ch[..cut].to_vec());
        }
        for i in 0..ch.len() {
            let mut b = ch.clone();
            b[i] ^= 0xa5;
            let _ = report(b);
        }
    }
}

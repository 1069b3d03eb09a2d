//! TLS handshakes over reassembled streams: ClientHello (SNI, ALPN, versions), ServerHello
//! (version, cipher, ALPN, HelloRetryRequest, resumption), certificates, CertificateRequest,
//! the client's Certificate, cleartext alerts, and the mTLS verdict (TLS ≤ 1.2; inferred from
//! record sizes in TLS 1.3).
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
//! This file owns the session state, the report and the public API; the work is in:
//! - `records.rs`: stream probe, record headers, resync scans, the record and handshake walk;
//! - `hello.rs`: ClientHello/ServerHello (whole, SSLv2 and cut by the snaplen), Certificate,
//!   the fingerprint facts;
//! - `verdict.rs`: the mTLS verdict, TLS 1.3 inference, resumption;
//! - `names.rs`: protocol numbers as named constants; version, cipher and alert names.
//!
//! JA3/JA4 themselves are computed in `classify/fingerprint.rs` (shared with no other protocol
//! but kept apart: it is a self-contained algorithm with its own tests).

use super::cert::CertInfo;
use super::chain::{ChainCheck, TrustStore};
use super::fingerprint::Fingerprints;
use crate::sanitize::WireBytes;
use crate::wire::{Feed, Role, Side, Timestamp};
use std::borrow::Cow;

pub mod decrypt;
mod hello;
mod names;
mod records;
mod report;
#[cfg(test)]
mod testutil;
mod verdict;

use names::{alert_description, is_tls13, ALERT_FATAL, ALERT_WARNING, VERSION_TLS12};
pub(crate) use names::{cipher_name, version_name};
pub(crate) use records::{find_client_hello, is_record_header, probe, resync, Resync};
pub(crate) use report::{EncryptedRecords, OfferedVersions, TlsPart};

/// Largest TLS record body accepted (2^14 + 2048, RFC 5246 §6.2.3).
pub(crate) const MAX_RECORD: usize = 16384 + 2048;
/// Warnings kept per flow.
const MAX_WARNINGS: usize = 16;
/// Certificates kept per chain.
const MAX_CHAIN: usize = 16;
/// Cleartext alerts kept per flow.
const MAX_ALERTS: usize = 16;
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsAlert {
    /// Who sent it.
    pub(crate) from: Role,
    /// Its level.
    pub(crate) level: AlertLevel,
    /// Name (`handshake_failure`) or the number.
    pub(crate) description: String,
    /// Decrypted (`--keylog`) after both sides' Finished: it ends a session, not a handshake.
    pub(crate) after_handshake: bool,
}

crate::wire::text_enum! {
    /// Whether the client authenticated with a certificate (the JSON `mtls`): seen (`yes`, `no`),
    /// inferred from TLS 1.3 record sizes (`likely`, `unlikely`), or not known. In the order of
    /// the text: the summary's `by_mtls` is keyed by it.
    #[derive(Default)]
    pub(crate) enum MtlsVerdict {
        /// TLS 1.3: the client's first flight is large enough to carry a certificate.
        Likely => "likely",
        /// Seen: no certificate (none requested, or an empty Certificate).
        No => "no",
        /// Not seen (resumed, cut, mid-stream, refused...).
        #[default]
        Unknown => "unknown",
        /// TLS 1.3: the client's first flight is too small for a certificate.
        Unlikely => "unlikely",
        /// Seen: the client sent a certificate (or an inference confirmed by XFCC).
        Yes => "yes",
    }
}

crate::wire::text_enum! {
    /// How a session was resumed (the JSON `resumption`).
    pub(crate) enum Resumption {
        /// TLS ≤ 1.2, by the session id echoed.
        SessionId => "session_id",
        /// TLS ≤ 1.2, by a session ticket (RFC 5077).
        SessionTicket => "session_ticket",
        /// A pre-shared key (TLS 1.3).
        Psk => "psk",
    }
}

/// Evidence, found after the handshake, that upgraded a TLS 1.3 `likely` verdict to `yes` (XFCC),
/// or that replaced the inference with a reading (the key log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Confirmation {
    /// `x-forwarded-client-cert` headers on the Envoy → app leg(s) to `port` while the
    /// connection was open, naming these client identities (`URI=`), in order, at least one.
    Xfcc {
        /// The app port the legs went to.
        port: u16,
        /// The client SPIFFE IDs named.
        clients: Vec<String>,
    },
    /// The TLS 1.3 handshake was decrypted with the key log (`--keylog`): the verdict is read,
    /// not inferred (for `yes`, `no` alike).
    KeyLog,
}

impl Confirmation {
    /// The words appended to the verdict's reason: `; confirmed: ...`.
    pub(crate) fn reason(&self) -> String {
        match self {
            Confirmation::KeyLog => "; proven with the key log".into(),
            Confirmation::Xfcc { port, clients } => match clients.as_slice() {
                [uri] => format!(
                    "; confirmed: the Envoy -> app leg to port {port} carried x-forwarded-client-cert URI={uri} during this connection"
                ),
                _ => format!(
                    "; confirmed: Envoy -> app legs to port {port} carried x-forwarded-client-cert during this connection (clients {})",
                    clients.join(", ")
                ),
            },
        }
    }
}

/// The level of an alert (the JSON `level`: `warning`, `fatal`, or another number as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlertLevel {
    /// 1.
    Warning,
    /// 2.
    Fatal,
    /// Any other number.
    Other(u8),
}

impl AlertLevel {
    /// The text written in the JSON and the table.
    pub(crate) fn as_text(self) -> Cow<'static, str> {
        match self {
            AlertLevel::Warning => "warning".into(),
            AlertLevel::Fatal => "fatal".into(),
            AlertLevel::Other(n) => n.to_string().into(),
        }
    }
}

/// How a server refused a handshake: it answered the ClientHello without a ServerHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// With a fatal alert (its description, `handshake_failure`).
    Alert(String),
    /// With a TCP reset, before sending any byte.
    Reset,
}

impl Refusal {
    /// The mTLS reason: `refused by the server: handshake_failure alert (no ServerHello)`.
    pub(crate) fn reason(&self) -> Cow<'static, str> {
        match self {
            Refusal::Alert(d) => format!("refused by the server: {d} alert (no ServerHello)").into(),
            Refusal::Reset => {
                "refused by the server: connection reset after the ClientHello (no ServerHello)".into()
            }
        }
    }
}

impl TlsAlert {
    /// A fatal alert (the handshake or session failed); warnings and `close_notify` are not.
    pub(crate) fn is_fatal(&self) -> bool {
        self.level == AlertLevel::Fatal
    }

    /// What an operator should read into a fatal alert, when it is a common one.
    pub(crate) fn meaning(&self) -> Option<&'static str> {
        let client = self.from == Role::Client;
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
#[derive(Clone, Debug, Default)]
pub struct TlsReport {
    /// Negotiated version, e.g. "TLS 1.3".
    pub(crate) version: Option<Cow<'static, str>>,
    /// legacy_version of the first ClientHello.
    pub(crate) legacy_version: Option<Cow<'static, str>>,
    /// supported_versions of the first ClientHello (GREASE skipped), or its legacy_version.
    pub(crate) versions_offered: OfferedVersions,
    /// SNI host name of the first ClientHello.
    pub(crate) sni: Option<WireBytes>,
    /// ALPN protocols offered in the first ClientHello, in order.
    pub(crate) alpn_offered: Vec<WireBytes>,
    /// ALPN protocol selected by the ServerHello (TLS ≤ 1.2 only).
    pub(crate) alpn_selected: Option<WireBytes>,
    /// Cipher suite name.
    pub(crate) cipher: Option<Cow<'static, str>>,
    /// The server sent a HelloRetryRequest.
    pub(crate) hello_retry_request: bool,
    /// How the session was resumed.
    pub(crate) resumption: Option<Resumption>,
    /// Cleartext alerts.
    pub(crate) alerts: Vec<TlsAlert>,
    /// Server certificate chain, in the order sent.
    pub(crate) server_certs: Vec<CertInfo>,
    /// Client certificate chain, in the order sent.
    pub(crate) client_certs: Vec<CertInfo>,
    /// The server sent a CertificateRequest.
    pub(crate) client_cert_requested: bool,
    /// The client answered with an empty Certificate.
    pub(crate) client_cert_empty: bool,
    /// mTLS verdict.
    pub(crate) mtls: MtlsVerdict,
    /// Evidence for the verdict, in words (most are fixed texts, borrowed).
    pub(crate) mtls_reason: Cow<'static, str>,
    /// What upgraded a `likely` verdict to `yes` after the handshake (also said at the end of
    /// `mtls_reason`): set by the mesh stage.
    pub(crate) confirmed_by: Option<Confirmation>,
    /// TLS 1.3: lengths of the client's first encrypted (application_data) records after its
    /// ClientHello, at most 4; the first one holds its handshake flight.
    pub(crate) client_encrypted_records: EncryptedRecords,
    /// The first ClientHello used the SSLv2 record format.
    pub(crate) sslv2_client_hello: bool,
    /// The server refused the handshake (fatal alert or reset before its ServerHello); also in
    /// `mtls_reason` and the flag `handshake_refused`.
    pub(crate) refused: Option<Refusal>,
    /// A ClientHello was seen and the server answered nothing of the handshake (no hello, no
    /// certificate): a reset then refuses it ([`TlsReport::refuse`]).
    pub(crate) awaiting_server: bool,
    /// Decryption with the key log (`--keylog`): None without one.
    pub(crate) decryption: Option<decrypt::DecryptionReport>,
    /// TLS 1.3 with the key log: the record-size inference that the decrypted verdict replaced.
    pub(crate) mtls_inferred: Option<(MtlsVerdict, Cow<'static, str>)>,
    /// JA4, JA4 raw, JA3 and the JA3 string of the first ClientHello
    /// (src/classify/fingerprint.rs), with their JSON text; None without a whole, well-formed
    /// TLS ClientHello (SSLv2-format hellos have none).
    pub(crate) fingerprints: Option<Fingerprints>,
    /// `--ca`: the server's certificate list checked against the anchors (None without `--ca`
    /// or without a server certificate).
    pub(crate) server_chain: Option<std::sync::Arc<ChainCheck>>,
    /// `--ca`: the client's certificate list, checked for clientAuth.
    pub(crate) client_chain: Option<std::sync::Arc<ChainCheck>>,
}

impl TlsReport {
    /// JA4 of the first ClientHello.
    pub(crate) fn ja4(&self) -> Option<&str> {
        self.fingerprints.as_ref().map(|f| &*f.ja4)
    }

    /// JA4 raw form (the lists before hashing).
    #[cfg(test)]
    pub(crate) fn ja4_r(&self) -> Option<&str> {
        self.fingerprints.as_ref().map(|f| &*f.ja4_r)
    }

    /// JA3 (MD5 of [`Self::ja3_full`]).
    pub(crate) fn ja3(&self) -> Option<&str> {
        self.fingerprints.as_ref().map(|f| &*f.ja3)
    }

    /// JA3 string before hashing.
    #[cfg(test)]
    pub(crate) fn ja3_full(&self) -> Option<&str> {
        self.fingerprints.as_ref().map(|f| &*f.ja3_full)
    }

    /// Records that the server refused the handshake: the verdict stays `unknown`, its reason
    /// says why.
    pub(crate) fn refuse(&mut self, r: Refusal) {
        self.mtls = MtlsVerdict::Unknown;
        self.mtls_reason = r.reason();
        self.refused = Some(r);
    }

    /// A warning when the decrypted verdict contradicts the record-size inference (the
    /// inference rule needs work then).
    pub(crate) fn inference_disagreement(&self) -> Option<String> {
        let (inferred, _) = self.mtls_inferred.as_ref()?;
        let contradicts = matches!(
            (self.mtls, inferred),
            (MtlsVerdict::Yes, MtlsVerdict::Unlikely) | (MtlsVerdict::No, MtlsVerdict::Likely)
        );
        contradicts.then(|| {
            format!(
                "tls: the record-size inference ({}) disagrees with the decrypted handshake ({})",
                inferred.as_str(),
                self.mtls.as_str()
            )
        })
    }

    /// The first fatal alert.
    pub(crate) fn fatal_alert(&self) -> Option<&TlsAlert> {
        self.alerts.iter().find(|a| a.is_fatal() && !a.after_handshake)
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
    /// `--ca`: its first certificate list checked, for the role it was sent in.
    chain: Option<(Role, std::sync::Arc<ChainCheck>)>,
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

    /// Starts buffering a record of `whole` bytes (header included, at most 5 + MAX_RECORD)
    /// with its first bytes `part`: room for all of it at once. A record growing by
    /// `extend_from_slice` as its segments came was reallocated and copied once or twice (a
    /// handshake record of certificates spans two or three segments): the largest caller of
    /// `realloc` on the mesh bench file (bench/misses one thread, tenth session of issue 22).
    pub(super) fn buffer_partial(&mut self, part: &[u8], whole: usize) {
        self.rec.reserve_exact(whole);
        self.rec.extend_from_slice(part);
    }

    /// Capacity of its partial-record, handshake and resync buffers.
    fn held(&self) -> usize {
        self.rec.capacity() + self.hs.capacity() + self.scan.capacity()
    }

    /// Releases buffers once the side is done.
    fn release(&mut self) {
        self.rec = Vec::new();
        self.hs = Vec::new();
        self.scan = Vec::new();
    }
}

/// Up to `N` values kept in place, more on the heap: a hello's legacy session id (up to the
/// 32 bytes TLS allows, RFC 5246 §7.4.1.2; longer in SSLv2 ids and malformed hellos) and its
/// supported_versions (a client offers two to four) without an allocation each per flow.
#[derive(Clone, Debug)]
enum Inline<T: Copy + Default, const N: usize> {
    Short(u8, [T; N]),
    Long(Box<[T]>),
}

impl<T: Copy + Default, const N: usize> Default for Inline<T, N> {
    fn default() -> Self {
        Inline::Short(0, [T::default(); N])
    }
}

impl<T: Copy + Default, const N: usize> Inline<T, N> {
    fn new(list: impl Iterator<Item = T> + Clone) -> Self {
        let n = list.clone().count();
        match u8::try_from(n) {
            Ok(len) if n <= N => {
                let mut v = [T::default(); N];
                v.iter_mut().zip(list).for_each(|(slot, x)| *slot = x);
                Inline::Short(len, v)
            }
            _ => Inline::Long(list.collect()),
        }
    }

    fn as_slice(&self) -> &[T] {
        match self {
            Inline::Short(n, v) => &v[..usize::from(*n)],
            Inline::Long(v) => v,
        }
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for Inline<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A hello's legacy session id, only ever compared (resumption by session id).
type SessionId = Inline<u8, 32>;
/// The versions of a ClientHello's supported_versions, GREASE left out.
type Versions = Inline<u16, 8>;

#[derive(Default)]
struct ClientHello {
    legacy: u16,
    versions: Versions,
    sni: Option<WireBytes>,
    alpn: Vec<WireBytes>,
    session_id: SessionId,
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
    session_id: SessionId,
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
    /// Alerts: sender, level, description, decrypted after both Finished.
    alerts: Vec<(Side, u8, u8, bool)>,
    /// A hello was cut short by a hole (snaplen): its facts are the part that was captured.
    cut_hello: bool,
    warnings: Vec<String>,
    /// Warnings produced so far (drained or not), to cap them per session.
    warned: usize,
    saw: bool,
    /// `--ca`: certificate lists are checked against these anchors as they are parsed.
    ca: Option<&'static TrustStore>,
    /// Decryption with a key log (`--keylog`); None without one.
    dec: Option<Box<decrypt::Decryptor>>,
    /// Each side's buffer capacities ([`SideTls::held`]), counted again when that side is fed,
    /// cut by a gap or shed: feeding one side never changes the other's buffers, and adding
    /// them up for [`TlsSession::buffered`] after every segment read the other side's, cold
    /// (bench/misses: default 30 MB cycles~ 84.9 -> 84.7 M, mesh 30 MB 92.1 -> 92.0 M).
    held: [usize; 2],
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
                    prefetch(ch.versions.as_slice());
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
            ca: None,
            dec: None,
            held: [0; 2],
        }
    }

    /// Checks every certificate list against `ca` (`--ca`) as it is parsed; the DER is not kept.
    pub(crate) fn checking_chains(mut self, ca: Option<&'static TrustStore>) -> TlsSession {
        self.ca = ca;
        self
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
        }
        self.held[s] = self.sides[s].held();
        if self.sides[s].done && !self.sides[s].tail.active && (self.dec.is_none() || !self.dec_wants(side)) {
            return Feed::Done;
        }
        Feed::More
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
        if self.sides[side.idx()].done {
            self.dec_gap(side);
        }
        self.held[side.idx()] = self.sides[side.idx()].held();
    }

    /// Bytes held in partial-record, handshake and resync buffers (allocated capacity).
    pub fn buffered(&self) -> usize {
        self.held[0] + self.held[1] + self.dec.as_ref().map_or(0, |d| d.buffered())
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
        self.held = [0; 2];
        self.dec_shed();
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
        let mut r = TlsReport::default();
        let client = self.partial_report(client, &mut r);
        r.server_certs = self.sides[client.other().idx()].certs.clone();
        r.client_certs = self.sides[client.idx()].certs.clone();
        if let Some(ch) = &self.ch {
            r.sni = ch.sni.clone();
            r.alpn_offered = ch.alpn.clone();
            if let Some(fp) = &ch.fp {
                r.fingerprints = Some(fp.clone());
            }
        }
        r.alpn_selected = self.sh.as_ref().and_then(|sh| sh.alpn.clone());
        r
    }

    /// The same facts, with the certificates and names moved out of a session that is over,
    /// written into `out` (the flow report's, in its box: see [`TlsPart`]); returns them.
    pub(crate) fn report_into<'r>(
        &mut self,
        client: Side,
        out: &'r mut Option<TlsReport>,
    ) -> &'r mut TlsReport {
        let r = out.insert(TlsReport::default());
        let client = self.partial_report(client, r);
        r.server_certs = std::mem::take(&mut self.sides[client.other().idx()].certs);
        r.client_certs = std::mem::take(&mut self.sides[client.idx()].certs);
        if let Some(ch) = &mut self.ch {
            r.sni = ch.sni.take();
            r.alpn_offered = std::mem::take(&mut ch.alpn);
            if let Some(fp) = ch.fp.take() {
                r.fingerprints = Some(fp);
            }
        }
        r.alpn_selected = self.sh.as_mut().and_then(|sh| sh.alpn.take());
        r
    }

    /// Every fact but the certificate chains, the SNI, the ALPN values and the fingerprints
    /// (which the callers copy or move), written into `r` (a default report); returns the side
    /// found to be the client. (Filled in place: returning the 500-byte report by value copied
    /// it once more per flow.)
    fn partial_report(&self, client: Side, r: &mut TlsReport) -> Side {
        let client = self.client_side().unwrap_or(client);
        let (cs, ss) = (&self.sides[client.idx()], &self.sides[client.other().idx()]);
        // A list checked for the other role (sent before either hello told the roles) is not
        // reported: its DER is gone.
        let chain = |st: &SideTls, role| st.chain.as_ref().filter(|c| c.0 == role).map(|c| c.1.clone());
        r.hello_retry_request = self.hrr_side.is_some();
        r.client_cert_requested = ss.cert_request;
        r.client_cert_empty = cs.cert_empty;
        r.server_chain = chain(ss, Role::Server);
        r.client_chain = chain(cs, Role::Client);
        if let Some(ch) = &self.ch {
            r.legacy_version = Some(version_name(ch.legacy));
            r.versions_offered =
                OfferedVersions::new(if ch.versions.as_slice().is_empty() && self.cut_hello {
                    Versions::default() // supported_versions may be in the part that was not captured
                } else if ch.versions.as_slice().is_empty() {
                    Versions::new(std::iter::once(ch.legacy))
                } else {
                    ch.versions.clone()
                });
            r.sslv2_client_hello = ch.sslv2;
        }
        let mut negotiated = self.hrr_version;
        if let Some(sh) = &self.sh {
            let v = sh.selected.unwrap_or(sh.legacy);
            // A cut ServerHello with legacy_version 1.2 and no supported_versions in what was
            // kept may be TLS 1.2 or 1.3.
            let known = !sh.cut || sh.selected.is_some() || sh.legacy < VERSION_TLS12 || sh.exts_whole;
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
            .map(|&(side, level, desc, after_handshake)| TlsAlert {
                from: if side == client { Role::Client } else { Role::Server },
                level: match level {
                    ALERT_WARNING => AlertLevel::Warning,
                    ALERT_FATAL => AlertLevel::Fatal,
                    n => AlertLevel::Other(n),
                },
                description: alert_description(desc),
                after_handshake,
            })
            .collect();
        if negotiated.is_some_and(is_tls13) {
            r.client_encrypted_records = EncryptedRecords::new(cs.tail.lens, cs.tail.n);
        }
        let (mtls, reason) = self.verdict(negotiated, r.resumption.is_some(), cs, ss);
        r.mtls = mtls;
        r.mtls_reason = reason;
        if self.dec.is_some() {
            r.decryption = self.decryption(client);
            let proven = negotiated
                .filter(|&v| is_tls13(v) && !self.cut_hello)
                .and_then(|_| self.proven_verdict(r.resumption.is_some(), client, cs, ss));
            if let Some((proven, inferred)) = proven {
                (r.mtls, r.mtls_reason) = proven;
                r.mtls_inferred = Some(inferred);
                r.confirmed_by = Some(Confirmation::KeyLog);
            }
        }
        let answered = negotiated.is_some() || ss.cert_msg || ss.hello_done || ss.cert_request;
        r.awaiting_server = self.ch.is_some() && !answered;
        let refusal = r
            .alerts
            .iter()
            .find(|a| a.from == Role::Server && a.is_fatal() && !a.after_handshake)
            .filter(|_| r.awaiting_server);
        if let Some(a) = refusal.map(|a| Refusal::Alert(a.description.clone())) {
            r.refuse(a);
        } else if let Some(a) = r.fatal_alert() {
            // A cleartext fatal alert ends the handshake: whatever was sent, no session followed.
            let text =
                format!("; the handshake failed ({} alert from the {})", a.description, a.from.as_str());
            r.mtls_reason.to_mut().push_str(&text);
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::testutil::*;

    /// `buffered` (kept per side as each side changes) is what the buffers hold, whatever the
    /// order of partial records, gaps and shedding on the two sides.
    #[test]
    fn buffered_is_the_sum_of_both_sides_buffers() {
        let ch = record(&[(1, client_hello("a.example", &["h2"], &[]))]);
        let sh = record(&[(2, server_hello([1; 32], 0xc02f, &[])), (11, vec![0, 0, 3, 0, 0, 0])]);
        let held = |t: &TlsSession| t.sides.iter().map(SideTls::held).sum::<usize>();
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        let steps: [(Side, Option<&[u8]>); 8] = [
            (Side::A, Some(&ch[..7])),
            (Side::B, Some(&sh[..3])),
            (Side::A, Some(&ch[7..20])),
            (Side::B, None),
            (Side::B, Some(&sh[3..])),
            (Side::A, Some(&ch[20..])),
            (Side::A, None),
            (Side::B, Some(&[22, 3, 3, 0, 40, 11])),
        ];
        for (i, (side, data)) in steps.into_iter().enumerate() {
            match data {
                Some(d) => {
                    t.feed(side, d, ts);
                }
                None => t.gap(side),
            }
            assert_eq!(t.buffered(), held(&t), "step {i}");
            assert!(i != 0 || t.buffered() > 0, "a partial record is held");
        }
        t.shed();
        assert_eq!((t.buffered(), held(&t)), (0, 0));
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
                (r.mtls.as_str(), &*r.mtls_reason),
                ("no", "client certificate requested but the client sent none")
            );
            assert!(matches!(r.mtls_reason, Cow::Borrowed(_)), "a fixed reason is not allocated");
        }
    }

    #[test]
    fn a_proven_verdict_that_contradicts_the_inference_is_a_warning() {
        let mut r = TlsReport { mtls: MtlsVerdict::Yes, ..TlsReport::default() };
        assert_eq!(r.inference_disagreement(), None, "no key log: nothing to compare");
        r.mtls_inferred = Some((MtlsVerdict::Likely, Cow::default()));
        assert_eq!(r.inference_disagreement(), None);
        r.mtls_inferred = Some((MtlsVerdict::Unlikely, Cow::default()));
        assert_eq!(
            r.inference_disagreement().as_deref(),
            Some("tls: the record-size inference (unlikely) disagrees with the decrypted handshake (yes)")
        );
        r.mtls = MtlsVerdict::No;
        r.mtls_inferred = Some((MtlsVerdict::Likely, Cow::default()));
        assert!(r
            .inference_disagreement()
            .unwrap()
            .contains("(likely) disagrees with the decrypted handshake (no)"));
        r.mtls_inferred = Some((MtlsVerdict::Unknown, Cow::default()));
        assert_eq!(r.inference_disagreement(), None, "unknown contradicts nothing");
    }

    #[test]
    fn json_keys_always_present() {
        use crate::report::schema::keys;
        let v: serde_json::Value =
            serde_json::from_str(&json(&TlsSession::new(limits()).finish(Side::A))).unwrap();
        let mut got: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = keys("flow.tls").unwrap().to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(v["version"], serde_json::Value::Null);
        let (t, _) = run(TLS12_MTLS);
        let v: serde_json::Value = serde_json::from_str(&json(&t.finish(Side::A))).unwrap();
        let mut got: Vec<&str> =
            v["server_certs"][0].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = keys("flow.tls.server_certs[]").unwrap().to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn versions_and_session_ids_inline_or_not_keep_every_value() {
        for n in [0usize, 1, 8, 9, 127] {
            let list: Vec<u16> = (0..n as u16).map(|i| 0x0300 + i).collect();
            let v = Versions::new(list.iter().copied());
            assert_eq!(v.as_slice(), list, "{n}");
            assert_eq!(matches!(v, Versions::Long(_)), n > 8, "{n}");
        }
        for n in [0usize, 1, 32, 33, 300] {
            let id: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let s = SessionId::new(id.iter().copied());
            assert_eq!(s.as_slice(), id, "{n}");
            assert_eq!(matches!(s, SessionId::Long(_)), n > 32, "{n}");
            assert!(
                s == SessionId::new(id.iter().copied())
                    && (n == 0 || s != SessionId::new(id[1..].iter().copied())),
                "{n}"
            );
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
}

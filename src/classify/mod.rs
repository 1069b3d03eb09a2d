//! Classification of reassembled TCP streams: probe order, protocol switches (HTTP CONNECT,
//! `101` upgrades, STARTTLS-like plaintext prefixes), resynchronisation after gaps and for
//! captures that start mid-stream, and the per-flow protocol facts.
//!
//! Each side of a flow is probed on its own first bytes, in this order: TLS record (or SSLv2
//! ClientHello), HTTP/2 preface, a server's HTTP/2 SETTINGS, HTTP/1 request line, HTTP/1 status
//! line. A side that matches nothing becomes opaque: its first bytes are kept as a short
//! preview, and its first [`OPAQUE_SCAN_BYTES`] are scanned for a TLS ClientHello/record
//! (STARTTLS, SOCKS, pgsql SSLRequest...), an HTTP line or HTTP/2 frames (mid-stream). Once a
//! side is done (TLS handshake seen, body until close...), the flow layer stops buffering it.
//!
//! A side may open with a PROXY protocol header (v1 or v2, [`proxy`]): it is read and set aside,
//! and the bytes after it are probed as the stream's start. Only a first byte `P` or `\r` asks.
//!
//! HTTP/2 cleartext (prior knowledge, `Upgrade: h2c`, or joined mid-connection) feeds both sides
//! to one [`H2Session`]; once one side showed HTTP/2, the other side's bytes are frames too.

pub(crate) mod cert;
pub mod chain;
pub(crate) mod fingerprint;
pub mod http;
pub(crate) mod istio;
pub mod proxy;
pub(crate) mod text;
pub mod tls;
mod tunnel;

use crate::flow::client::ClientBy;
use crate::flow::StreamSink;
use crate::wire::{Feed, Probe, Side, Timestamp};
use http::h2::session::H2Session;
use http::{HttpConfig, HttpFeed, HttpReport, HttpSession, SwitchTo};
use tls::{TlsLimits, TlsPart, TlsSession};
use tunnel::Tunnel;

/// Bytes kept while a side's first message is too short to tell its protocol.
pub(crate) const PROBE_BYTES: usize = 4096;
/// Bytes of an unrecognised side scanned for TLS or HTTP before giving up.
pub(crate) const OPAQUE_SCAN_BYTES: u64 = 64 * 1024;
/// Bytes of each side kept as a preview for `unknown` flows.
pub(crate) const PREVIEW_BYTES: usize = 48;

// A PROXY header is read whole from the probe buffer.
const _: () = assert!(proxy::MAX_HEADER_BYTES <= PROBE_BYTES);

/// Classifier settings.
#[derive(Clone, Debug)]
pub struct ClassifyConfig {
    /// TLS buffer limits.
    pub tls: TlsLimits,
    /// HTTP settings (redaction, limits).
    pub http: HttpConfig,
    /// `--ca`: check every certificate list against these anchors. Loaded once and kept for the
    /// process (`'static`: no reference count per flow).
    pub ca: Option<&'static chain::TrustStore>,
    /// Key store for TLS decryption (`--keylog`), shared by every worker; None: no decryption,
    /// and no work for it.
    pub keylog: Option<std::sync::Arc<tls::decrypt::KeyLog>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing recognised yet; bytes wait in `pending`.
    Probe,
    Tls,
    Http,
    H2c,
    /// Began like a request line that is not strict enough to be HTTP on its own (no version,
    /// a malformed one, a bare method): HTTP only if the other side answers with a status line.
    /// Bytes wait in `pending` (up to [`PROBE_BYTES`]).
    Tentative,
    /// Unrecognised: scanned for TLS/HTTP up to OPAQUE_SCAN_BYTES.
    Opaque,
    /// Nothing more wanted from this side.
    Done,
}

crate::wire::text_enum! {
    /// How HTTP/2 cleartext was recognised (the JSON `h2c`).
    pub(crate) enum H2cVia {
        /// The client sent the HTTP/2 preface first.
        PriorKnowledge => "prior_knowledge",
        /// `Upgrade: h2c` answered by `101`.
        Upgrade => "upgrade",
        /// Frames found in a connection the capture joined after its start.
        MidStream => "mid_stream",
    }
}

crate::wire::text_enum! {
    /// What a flow carries (the JSON `protocol`). In the order of the text: the summary's
    /// `by_protocol` is keyed by it.
    pub(crate) enum Protocol {
        /// HTTP/2 over cleartext.
        H2c => "h2c",
        /// HTTP/1.
        Http => "http",
        /// TLS.
        Tls => "tls",
        /// Neither.
        Unknown => "unknown",
    }
}

/// `repr(C)`: what every fed segment reads (`mode`, `fed`, then `pending` and `preview`, whose
/// capacities `recount` adds up) in one 64-byte block, in declaration order (see
/// [`FlowClassifier`]).
#[repr(C)]
struct SideState {
    mode: Mode,
    /// Decrypted application bytes (TLS with a key log): where they go.
    tunnel: Tunnel,
    /// A tentative side's held bytes were followed by a hole (fed to HTTP if it is confirmed).
    gap_after_pending: bool,
    /// The stream's first bytes are yet to be probed for a PROXY protocol header.
    at_start: bool,
    fed: u64,
    pending: Vec<u8>,
    preview: Vec<u8>,
}

impl SideState {
    fn new() -> SideState {
        SideState {
            tunnel: Tunnel::Undecided,
            mode: Mode::Probe,
            pending: Vec::new(),
            preview: Vec::new(),
            fed: 0,
            gap_after_pending: false,
            at_start: true,
        }
    }
}

/// Per-flow classifier: the [`StreamSink`] of one TCP connection.
///
/// `repr(C)`, in the order a fed segment reads it: `held` and `requests` (read by the flow table
/// and the worker for every fed segment: 16 bytes, which the flow slot puts in the cache line of
/// its second reassembler), then 64 bytes of sessions and flags, then each side's 64 bytes
/// (each a cache line of the slot), the settings and what only the report reads. Left to rustc,
/// a fed segment's reads were spread over every line of the 312 bytes (cachegrind: the first
/// reads of `sides[s].mode`, `fed` and `pending` each missed, ~12 k L2 misses on the default
/// 30 MB slice). bench/misses: default 30 MB cycles~ 85.3 -> 84.9 M, mesh 30 MB 92.4 -> 92.1 M.
#[repr(C)]
pub struct FlowClassifier {
    /// [`StreamSink::buffered`], counted again after each change: the flow table asks before
    /// and after every segment, and reading the sessions' buffers there cost a cache miss per
    /// packet (a tenth of the per-packet time in `perf`).
    held: usize,
    /// HTTP requests recorded, counted with `held`: [`FlowClassifier::take_xfcc`] runs for
    /// every packet and needs the session only when this moved.
    requests: usize,
    tls: Option<Box<TlsSession>>,
    http: Option<Box<HttpSession>>,
    /// HTTP/2 frames and streams (h2c).
    h2: Option<Box<H2Session>>,
    /// HTTP/1 and HTTP/2 requests already looked at by [`FlowClassifier::take_xfcc`].
    xfcc_checked: [usize; 2],
    /// A `classified` event was already given.
    announced: bool,
    h2c: Option<H2cVia>,
    /// `cfg.keylog` is set (read for every TLS segment; `cfg` is on another line).
    keylog: bool,
    /// Per side: unknown bytes held a plausible TLS record header whose successor should start
    /// this many bytes into the next data: TLS is believed only if it does. (A record's length:
    /// a `u32`, here rather than in [`SideState`], which it would make 80 bytes.)
    tls_expect: [Option<u32>; 2],
    sides: [SideState; 2],
    cfg: ClassifyConfig,
    /// The PROXY protocol header a side opened with.
    proxy: Option<Box<proxy::ProxyHeader>>,
    /// The last `x-forwarded-client-cert` value parsed, and what it gave: Envoy sends the same
    /// value on every request of a downstream connection, parsed once.
    last_xfcc: Option<Box<XfccSeen>>,
    warnings: Vec<String>,
}

/// The client SPIFFE ID (`URI=`) and the server identity (`By=`) of an XFCC element.
pub type XfccIds = (String, Option<String>);

/// An `x-forwarded-client-cert` value and the whole header parsed.
struct XfccSeen {
    raw: Box<[u8]>,
    parsed: Vec<istio::Xfcc>,
}

impl XfccSeen {
    /// The client and server identities of its last element.
    fn ids(&self) -> Option<XfccIds> {
        self.parsed.last().and_then(|x| Some((x.uri.clone()?, x.by.clone())))
    }
}

/// What classification found in one flow.
pub struct Classified {
    /// What the flow carries.
    pub(crate) protocol: Protocol,
    /// TLS facts, when TLS was seen (an ended flow's written into its report's box).
    pub(crate) tls: Option<TlsPart>,
    /// HTTP/1 facts, when HTTP was seen.
    pub(crate) http: Option<HttpReport>,
    /// How h2c was recognised.
    pub(crate) h2c: Option<H2cVia>,
    /// The PROXY protocol header the stream opened with.
    pub(crate) proxy: Option<Box<proxy::ProxyHeader>>,
    /// First bytes of each side (A, B) when nothing was recognised.
    pub(crate) preview: [Vec<u8>; 2],
    /// Side that behaved as client, and the evidence.
    pub(crate) client_hint: Option<(Side, ClientBy)>,
    /// Warnings from the parsers.
    pub(crate) warnings: Vec<String>,
}

impl FlowClassifier {
    /// Prefetches one level of what [`FlowClassifier::finish`] and the report read: `stage` 0
    /// the sessions and the previews, then 1 and 2 the sessions' levels of pointers, each
    /// reading only what the stage before fetched. The flows ended in one batch are finished
    /// in turn while the next ones are fetched stage by stage (`run::worker::Worker::report_ended`):
    /// their memory is cold, and read one flow at a time, each miss waited for the one before.
    pub(crate) fn prefetch(&self, stage: u8) {
        use crate::wire::prefetch;
        match stage {
            0 => {
                if let Some(t) = &self.tls {
                    prefetch(&**t);
                }
                if let Some(h) = &self.http {
                    prefetch(&**h);
                }
                for s in &self.sides {
                    prefetch(&s.preview[..]);
                }
            }
            _ => {
                if let Some(t) = &self.tls {
                    t.prefetch(stage - 1);
                }
                if let Some(h) = &self.http {
                    h.prefetch(stage - 1);
                }
            }
        }
    }

    /// A classifier for a new flow.
    pub fn new(cfg: ClassifyConfig) -> FlowClassifier {
        FlowClassifier {
            keylog: cfg.keylog.is_some(),
            tls_expect: [None; 2],
            cfg,
            sides: [SideState::new(), SideState::new()],
            tls: None,
            http: None,
            h2c: None,
            h2: None,
            proxy: None,
            announced: false,
            xfcc_checked: [0, 0],
            last_xfcc: None,
            warnings: Vec::new(),
            held: 0,
            requests: 0,
        }
    }

    /// The client SPIFFE ID (`URI=`) and server identity (`By=`) of the last element of the
    /// newest `x-forwarded-client-cert` header among the HTTP requests parsed since the last call.
    pub fn take_xfcc(&mut self) -> Option<XfccIds> {
        if self.requests == self.xfcc_checked[0] + self.xfcc_checked[1] {
            return None;
        }
        let h1 = self.http.as_ref().map_or(&[][..], |h| h.requests());
        let h2 = self.h2.as_ref().map_or(&[][..], |h| h.requests());
        let new1 = h1.get(self.xfcc_checked[0]..).unwrap_or_default();
        let new2 = h2.get(self.xfcc_checked[1]..).unwrap_or_default();
        self.xfcc_checked = [h1.len(), h2.len()];
        // Newest first: HTTP/2 requests follow the HTTP/1 ones of an upgraded connection.
        let values = new2
            .iter()
            .rev()
            .chain(new1.iter().rev())
            .filter(|r| r.headers.marks() & http::MARK_ISTIO != 0)
            .filter_map(|r| {
                r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-client-cert"))
            });
        for (_, v) in values {
            if self.last_xfcc.as_ref().is_none_or(|c| *c.raw != *v) {
                let parsed = istio::parse_xfcc(&String::from_utf8_lossy(v));
                self.last_xfcc = Some(Box::new(XfccSeen { raw: v.into(), parsed }));
            }
            let found = self.last_xfcc.as_ref().and_then(|c| c.ids());
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Hands the last `x-forwarded-client-cert` value parsed for [`Self::take_xfcc`] to the
    /// flow-end facts of this thread ([`istio::remember_xfcc`]), which read the same header:
    /// parsed once, not twice (bench/misses, mesh 30 MB slice: Ir 163.0 M -> 161.7 M, cycles~
    /// 88.9 M -> 88.7 M; default slice: Ir 148.7 M -> 148.2 M, cycles~ 82.8 M -> 82.7 M).
    pub(crate) fn share_xfcc(&mut self) {
        if let Some(seen) = self.last_xfcc.take() {
            let XfccSeen { raw, parsed } = *seen;
            istio::remember_xfcc(raw, parsed);
        }
    }

    fn h2_session(&mut self) -> &mut H2Session {
        let cfg = self.cfg.http;
        self.h2.get_or_insert_with(|| Box::new(H2Session::new(cfg, None)))
    }

    /// `side` carries HTTP/2 frames from `data` on: from its start, or (a connection joined
    /// mid-stream) from where a chain of frames is found.
    fn h2_side(&mut self, side: Side, data: &[u8]) -> Feed {
        self.sides[side.idx()].mode = Mode::H2c;
        let mid = self.h2c == Some(H2cVia::MidStream);
        let h = self.h2_session();
        if mid {
            h.seek(side);
        }
        let f = h.feed(side, data);
        if f == Feed::Done {
            self.sides[side.idx()].mode = Mode::Done;
        }
        f
    }

    /// The flow turned out to be HTTP/2 on `side`: the other side's bytes are frames too.
    /// Bytes it already had scanned as unknown are lost: its frames are searched for.
    fn h2_join_other(&mut self, side: Side) {
        let o = side.other();
        match self.sides[o.idx()].mode {
            Mode::Probe if !self.sides[o.idx()].pending.is_empty() => {
                let p = std::mem::take(&mut self.sides[o.idx()].pending);
                self.h2_side(o, &p);
            }
            Mode::Opaque => {
                self.sides[o.idx()].mode = Mode::H2c;
                self.h2_session().seek(o);
            }
            _ => {}
        }
    }

    fn tls(&mut self) -> &mut TlsSession {
        let (limits, ca) = (self.cfg.tls, self.cfg.ca);
        let keylog = &self.cfg.keylog;
        self.tls.get_or_insert_with(|| {
            let mut t = Box::new(TlsSession::new(limits).checking_chains(ca));
            if let Some(k) = keylog {
                t.set_keylog(k.clone());
            }
            t
        })
    }

    fn http(&mut self) -> &mut HttpSession {
        let cfg = self.cfg.http;
        self.http.get_or_insert_with(|| Box::new(HttpSession::new(cfg)))
    }

    /// Side that behaved as a client, with the evidence name used in the JSON `client_by`.
    pub fn client_hint(&self) -> Option<(Side, ClientBy)> {
        if let Some(s) = self.tls.as_ref().and_then(|t| t.client_side()) {
            return Some((s, ClientBy::ClientHello));
        }
        if let Some(s) = self.http.as_ref().and_then(|h| h.client_side()) {
            return Some((s, ClientBy::HttpRequest));
        }
        self.h2.as_ref().and_then(|h| h.client_side()).map(|s| (s, ClientBy::HttpRequest))
    }

    /// Feeds bytes in the side's current mode, following protocol switches.
    fn feed_mode(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        match self.sides[s].mode {
            Mode::Tls => {
                let f = self.tls().feed(side, data, ts);
                if self.keylog {
                    self.feed_tunnel(side);
                }
                if f == Feed::Done {
                    self.sides[s].mode = Mode::Done;
                }
                f
            }
            Mode::Http => match self.http().feed(side, data) {
                HttpFeed::More => Feed::More,
                HttpFeed::Done => {
                    self.sides[s].mode = Mode::Done;
                    Feed::Done
                }
                HttpFeed::Switch { at, to } => {
                    let rest = data.get(at..).unwrap_or(&[]);
                    match to {
                        SwitchTo::H2c => {
                            // HTTP/1 came first (a `101` to `Upgrade: h2c`, or the preface after
                            // such a request); a preface opening the stream is found by the probe.
                            self.h2c.get_or_insert(H2cVia::Upgrade);
                            let client = self.http.as_ref().and_then(|h| h.client_side()).unwrap_or(side);
                            if side == client {
                                self.h2_session().set_client(client);
                            } else {
                                // The server sent `101`: the upgrade request is stream 1.
                                let settings = self.http.as_ref().and_then(|h| {
                                    h.requests().last()?.headers.iter().find_map(|(n, v)| {
                                        n.eq_ignore_ascii_case(b"http2-settings").then(|| v.to_vec())
                                    })
                                });
                                self.h2_session().upgraded(client, settings.as_deref());
                            }
                            self.sides[s].mode = Mode::H2c;
                            if rest.is_empty() {
                                Feed::More
                            } else {
                                self.h2_side(side, rest)
                            }
                        }
                        SwitchTo::Tunnel | SwitchTo::Upgraded => {
                            // The tunnel's first bytes are probed afresh (often a ClientHello).
                            self.sides[s].mode = Mode::Probe;
                            self.sides[s].pending.clear();
                            if rest.is_empty() {
                                Feed::More
                            } else {
                                self.probe_and_feed(side, rest, ts)
                            }
                        }
                    }
                }
            },
            Mode::H2c => self.h2_side(side, data),
            Mode::Done => Feed::Done,
            Mode::Probe => self.probe_and_feed(side, data, ts),
            Mode::Tentative => {
                let st = &mut self.sides[s];
                let take = PROBE_BYTES.saturating_sub(st.pending.len()).min(data.len());
                st.pending.extend_from_slice(&data[..take]);
                if take == data.len() {
                    return Feed::More;
                }
                // No answer within a probe buffer of bytes: not HTTP.
                self.give_up_tentative(side, ts);
                self.feed_mode(side, &data[take..], ts)
            }
            Mode::Opaque => self.scan_opaque(side, data, ts),
        }
    }

    /// Probes the side's first bytes (plus any pending ones) and switches mode.
    fn probe_and_feed(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        if self.sides[s].pending.is_empty() {
            return self.probe_buf(side, data, ts);
        }
        // Complete the pending prefix with as much of `data` as the probe buffer holds, decide,
        // then hand the rest of `data` to whatever mode was chosen.
        let mut buf = std::mem::take(&mut self.sides[s].pending);
        let take = PROBE_BYTES.saturating_sub(buf.len()).min(data.len());
        buf.extend_from_slice(&data[..take]);
        let f = self.probe_buf(side, &buf, ts);
        let rest = &data[take..];
        if rest.is_empty() || f == Feed::Done {
            return f;
        }
        if self.sides[s].mode == Mode::Probe {
            if !self.sides[s].pending.is_empty() {
                // A PROXY header was read off the buffer and what followed it is still too
                // short to tell: the probe buffer fills up again.
                return self.probe_and_feed(side, rest, ts);
            }
            // Still undecided with a full probe buffer cannot happen (it turns opaque); be safe.
            self.sides[s].mode = Mode::Opaque;
        }
        self.feed_mode(side, rest, ts)
    }

    /// Decides the mode of a side from `buf`, the start of its stream.
    fn probe_buf(&mut self, side: Side, buf: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        if self.sides[s].at_start && !buf.is_empty() {
            self.sides[s].at_start = false;
            if matches!(buf[0], b'P' | b'\r') {
                if let Some(f) = self.proxy_header(side, buf, ts) {
                    return f;
                }
            }
        }
        if self.h2.is_some() {
            // The other side already showed HTTP/2.
            return self.h2_side(side, buf);
        }
        let tls = tls::probe(buf);
        let other = side.other().idx();
        // The other probes only when TLS did not match: a TLS side (most sides) skipped three
        // that cannot match its first byte (b443: -0.6M instructions, ~150 a side).
        let mut resp = None;
        let mode = if tls == Probe::Match {
            Mode::Tls
        } else {
            let preface = http::is_h2_preface(buf);
            if preface == Probe::Match {
                self.h2c.get_or_insert(H2cVia::PriorKnowledge);
                self.h2_session().set_client(side);
                let f = self.h2_side(side, buf);
                self.h2_join_other(side);
                return f;
            } else if http::h2::session::is_server_preface(buf) {
                // RFC 9113 §3.4: a server's connection preface is a SETTINGS frame; it may come
                // before the client's preface is seen.
                self.h2c.get_or_insert(H2cVia::PriorKnowledge);
                self.h2_session().set_client(side.other());
                return self.h2_side(side, buf);
            }
            let req = http::probe_request(buf);
            let r = *resp.insert(http::probe_response(buf));
            if req == Probe::Match || r == Probe::Match {
                Mode::Http
            } else if [tls, preface, req, r].contains(&Probe::NeedMore) && buf.len() < PROBE_BYTES {
                self.sides[s].pending.extend_from_slice(buf);
                return Feed::More;
            } else if http::probe_loose_request(buf) == Probe::Match {
                if self.sides[other].mode == Mode::Http {
                    Mode::Http
                } else {
                    self.sides[s].mode = Mode::Tentative;
                    self.sides[s].pending.extend_from_slice(&buf[..buf.len().min(PROBE_BYTES)]);
                    return Feed::More;
                }
            } else {
                Mode::Opaque
            }
        };
        if self.sides[other].mode == Mode::Tentative {
            let resp = resp.unwrap_or_else(|| http::probe_response(buf));
            if resp == Probe::Match || http::is_http09_body(buf) {
                // The answer to a loose request line is a status line (or, to `GET /path`, an
                // HTML document: HTTP/0.9): the request side is HTTP. It is fed first, as sent.
                let pending = std::mem::take(&mut self.sides[other].pending);
                self.sides[other].mode = Mode::Http;
                self.feed_mode(side.other(), &pending, ts);
                if std::mem::take(&mut self.sides[other].gap_after_pending) {
                    self.gap_mode(side.other());
                }
            } else {
                self.give_up_tentative(side.other(), ts);
            }
        }
        self.sides[s].mode = mode;
        self.feed_mode(side, buf, ts)
    }

    /// A PROXY protocol header at the start of `side`'s stream: read, and the bytes after it
    /// probed as the stream's start. None when `buf` does not hold one.
    #[cold]
    fn proxy_header(&mut self, side: Side, buf: &[u8], ts: Timestamp) -> Option<Feed> {
        match proxy::parse(buf) {
            proxy::Parsed::No => None,
            proxy::Parsed::NeedMore => {
                // Bounded: a header longer than the probe buffer is refused from its first bytes.
                let st = &mut self.sides[side.idx()];
                st.at_start = true;
                st.pending.extend_from_slice(buf);
                Some(Feed::More)
            }
            proxy::Parsed::Malformed(e) => {
                self.warnings.push(format!("proxy: {e}; read as the stream's own bytes"));
                None
            }
            proxy::Parsed::Header(h, len) => {
                if h.tlvs_cut_short {
                    self.warnings.push("proxy: a PROXY v2 TLV runs past the header's length".into());
                }
                if self.proxy.is_none() {
                    self.proxy = Some(h);
                } else {
                    self.warnings
                        .push("proxy: both sides opened with a PROXY header; the second is not kept".into());
                }
                let rest = &buf[len..];
                Some(if rest.is_empty() { Feed::More } else { self.probe_buf(side, rest, ts) })
            }
        }
    }

    /// A tentative side turns out not to be HTTP: its held bytes are scanned as opaque ones.
    fn give_up_tentative(&mut self, side: Side, ts: Timestamp) {
        let st = &mut self.sides[side.idx()];
        let pending = std::mem::take(&mut st.pending);
        st.mode = Mode::Opaque;
        if !pending.is_empty() {
            self.scan_opaque(side, &pending, ts);
        }
    }

    /// Looks for TLS or an HTTP line inside unrecognised bytes.
    fn scan_opaque(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Feed {
        let s = side.idx();
        let st = &mut self.sides[s];
        if st.preview.len() < PREVIEW_BYTES {
            let n = (PREVIEW_BYTES - st.preview.len()).min(data.len());
            st.preview.extend_from_slice(&data[..n]);
        }
        // An SSH identification string (RFC 4253 §4.2): encrypted SSH follows, never TLS or
        // HTTP; scanning its random-looking bytes for them is wasted work.
        if st.fed > OPAQUE_SCAN_BYTES || st.preview.starts_with(b"SSH-") {
            st.mode = Mode::Done;
            return Feed::Done;
        }
        if let Some(k) = self.tls_expect[s].take().map(|k| k as usize) {
            if data.get(k..).is_some_and(tls::is_record_header) {
                // The successor of the candidate header is where it should be: TLS from here.
                self.sides[s].mode = Mode::Tls;
                return self.feed_mode(side, &data[k..], ts);
            }
            if let Some(left) = k.checked_sub(data.len()) {
                // Still further on (a long record spanning this data).
                self.tls_expect[s] = u32::try_from(left).ok();
                return Feed::More;
            }
        }
        let mut expect = None;
        let found = tls::find_client_hello(data)
            .map(|o| (o, Mode::Tls))
            .or_else(|| {
                // A server's answer after STARTTLS, or TLS picked up mid-stream.
                (tls::probe(data) == Probe::Match).then_some((0, Mode::Tls))
            })
            .or_else(|| match tls::resync(data) {
                Some(tls::Resync::At(o)) => Some((o, Mode::Tls)),
                Some(tls::Resync::Expect(k)) => {
                    expect = Some(k);
                    None
                }
                None => None,
            })
            .or_else(|| {
                // HTTP-looking lines inside SMTP, Redis, IMAP... (a mail body, a stored value)
                // are theirs, not HTTP. (Asked only when such a line was found.)
                http::resync_offset(data)
                    .filter(|_| !self.sides.iter().any(|s| text::known_text_protocol(&s.preview).is_some()))
                    .map(|o| (o, Mode::Http))
            })
            .or_else(|| {
                // HTTP/2 frames chained through the bytes: h2c joined after its preface.
                let other = self.sides[side.other().idx()].mode;
                if matches!(other, Mode::Tls | Mode::Http | Mode::Tentative) {
                    return None;
                }
                http::h2::session::find_frames(data).map(|o| (o, Mode::H2c))
            });
        if found.is_none() {
            self.tls_expect[s] = expect.and_then(|k| u32::try_from(k).ok());
        }
        match found {
            Some((off, Mode::H2c)) => {
                self.h2c.get_or_insert(H2cVia::MidStream);
                let f = self.h2_side(side, &data[off..]);
                self.h2_join_other(side);
                f
            }
            Some((off, mode)) => {
                self.sides[s].mode = mode;
                self.feed_mode(side, &data[off..], ts)
            }
            None => Feed::More,
        }
    }

    /// Everything found, once the flow has ended.
    pub fn finish(mut self, client: Side) -> Classified {
        for side in [Side::A, Side::B] {
            if self.sides[side.idx()].mode == Mode::Tentative {
                self.give_up_tentative(side, Timestamp::default());
            }
        }
        if let Some(t) = self.tls.as_mut() {
            if self.keylog {
                t.dec_flush();
                self.feed_tunnel(Side::A);
                self.feed_tunnel(Side::B);
            }
        }
        if let Some(t) = self.tls.as_mut() {
            self.warnings.extend(t.take_warnings());
        }
        if let Some(h) = self.http.as_mut() {
            self.warnings.extend(h.take_warnings());
        }
        let hint = self.client_hint();
        // The HTTP facts are moved out, not copied: they hold every recorded head.
        let mut http = self.http.take().filter(|h| h.saw_http()).map(|h| {
            let (report, warnings) = h.into_report();
            self.warnings.extend(warnings);
            report
        });
        if let Some(h2) = self.h2.take() {
            let (report, warnings) = h2.into_report(client, http);
            self.warnings.extend(warnings);
            http = Some(report);
        }
        // The report is made where it is kept: `FlowReport::build_boxed` (see `TlsPart`).
        let tls = self.tls.take().filter(|t| t.saw_tls()).map(|t| TlsPart::Ended(t, client));
        self.classified(http, tls, hint)
    }

    /// What is known so far, without ending the flow (live `classified` events).
    pub fn snapshot(&self, client: Side) -> Classified {
        let mut http = self.http.as_ref().filter(|h| h.saw_http()).map(|h| h.finish());
        if let Some(h2) = &self.h2 {
            http = Some(h2.report(client, http));
        }
        let tls =
            self.tls.as_ref().filter(|t| t.saw_tls()).map(|t| TlsPart::Report(Box::new(t.finish(client))));
        self.classified(http, tls, self.client_hint())
    }

    fn classified(
        &self,
        http: Option<HttpReport>,
        tls: Option<TlsPart>,
        client_hint: Option<(Side, ClientBy)>,
    ) -> Classified {
        let protocol = if tls.is_some() {
            Protocol::Tls
        } else if self.h2c.is_some() {
            Protocol::H2c
        } else if http.is_some() {
            Protocol::Http
        } else {
            Protocol::Unknown
        };
        let preview = if protocol == Protocol::Unknown {
            let shown = |b: &Vec<u8>| {
                if self.cfg.http.show_secrets {
                    b.clone()
                } else {
                    crate::sanitize::redact::redact_lines(b)
                }
            };
            [shown(&self.sides[0].preview), shown(&self.sides[1].preview)]
        } else {
            [Vec::new(), Vec::new()]
        };
        Classified {
            protocol,
            tls,
            http,
            h2c: self.h2c,
            proxy: self.proxy.clone(),
            preview,
            client_hint,
            warnings: self.warnings.clone(),
        }
    }

    /// True once, when the flow has told what it is: a TLS handshake whose cleartext part is
    /// over on both sides, a first HTTP request, or h2c.
    pub fn take_newly_classified(&mut self) -> bool {
        if self.announced {
            return false;
        }
        let tls_done = self.tls.as_ref().is_some_and(|t| {
            t.saw_tls()
                && (t.settled() || self.sides.iter().all(|s| matches!(s.mode, Mode::Done | Mode::H2c)))
        });
        let http_seen = self.http.as_ref().is_some_and(|h| h.client_side().is_some() && h.saw_http());
        if tls_done || http_seen || self.h2c.is_some() {
            self.announced = true;
        }
        self.announced
    }
}

/// Where the sides start (the flow slot's layout test puts each in a cache line of its own).
#[cfg(test)]
pub(crate) const SIDES_OFFSET: usize = std::mem::offset_of!(FlowClassifier, sides);

#[cfg(test)]
#[test]
fn each_side_is_one_64_byte_block_after_80_bytes_of_flags() {
    assert_eq!((std::mem::size_of::<SideState>(), SIDES_OFFSET), (64, 80));
    assert!(std::mem::offset_of!(FlowClassifier, tls_expect) + 16 <= SIDES_OFFSET);
}

impl StreamSink for FlowClassifier {
    fn buffered(&self) -> usize {
        self.held
    }

    fn shed(&mut self) {
        for st in &mut self.sides {
            if matches!(st.mode, Mode::Probe | Mode::Tentative) && !st.pending.is_empty() {
                st.mode = Mode::Opaque;
            }
            st.pending = Vec::new();
        }
        if let Some(t) = self.tls.as_mut() {
            t.shed();
        }
        if let Some(h) = self.http.as_mut() {
            h.shed();
        }
        if let Some(h) = self.h2.as_mut() {
            h.shed();
        }
        self.recount();
    }

    fn data(&mut self, side: Side, bytes: &[u8], ts: Timestamp) -> Feed {
        let f = self.feed_mode(side, bytes, ts);
        let st = &mut self.sides[side.idx()];
        st.fed += bytes.len() as u64;
        self.recount();
        f
    }

    fn gap(&mut self, side: Side, _lost: u32) -> Feed {
        let f = self.gap_mode(side);
        self.recount();
        f
    }
}

impl FlowClassifier {
    /// Counts the bytes held in buffers and the requests again (see `held`).
    fn recount(&mut self) {
        self.requests = self.http.as_ref().map_or(0, |h| h.requests().len());
        let own: usize = self.sides.iter().map(|s| s.pending.capacity() + s.preview.capacity()).sum();
        self.held = own
            + self.tls.as_ref().map_or(0, |t| t.buffered())
            + self.http.as_ref().map_or(0, |h| h.buffered());
        if let Some(h) = &self.h2 {
            self.requests += h.requests().len();
            self.held += h.buffered();
        }
    }

    fn gap_mode(&mut self, side: Side) -> Feed {
        let s = side.idx();
        match self.sides[s].mode {
            Mode::Tls => {
                if let Some(t) = self.tls.as_mut() {
                    t.gap(side);
                }
                Feed::More
            }
            Mode::Http => {
                if let Some(h) = self.http.as_mut() {
                    h.gap(side);
                }
                Feed::More
            }
            Mode::Tentative => {
                self.sides[s].gap_after_pending = true;
                Feed::More
            }
            Mode::Probe if self.sides[s].at_start && !self.sides[s].pending.is_empty() => {
                // Only the start of a PROXY header is held: it can never be read whole.
                self.warnings.push("proxy: a PROXY header cut by missing bytes".into());
                let st = &mut self.sides[s];
                (st.at_start, st.mode) = (false, Mode::Opaque);
                st.pending.clear();
                Feed::More
            }
            Mode::Probe if http::probe_loose_request(&self.sides[s].pending) == Probe::Match => {
                // A request line cut by the hole: HTTP if the other side answers as HTTP does.
                let st = &mut self.sides[s];
                st.mode = Mode::Tentative;
                st.gap_after_pending = true;
                Feed::More
            }
            Mode::Probe => {
                // What was pending can never be completed: scan it as opaque bytes, then go on
                // scanning what follows the hole.
                let st = &mut self.sides[s];
                st.pending.clear();
                st.mode = Mode::Opaque;
                Feed::More
            }
            Mode::Opaque => {
                self.tls_expect[s] = None;
                Feed::More
            }
            Mode::H2c => {
                let f = self.h2.as_mut().map_or(Feed::Done, |h| h.gap(side));
                if f == Feed::Done {
                    self.sides[s].mode = Mode::Done;
                }
                f
            }
            Mode::Done => Feed::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg() -> ClassifyConfig {
        ClassifyConfig {
            tls: TlsLimits { max_buffer: 256 * 1024 },
            http: HttpConfig {
                show_secrets: false,
                max_header_bytes: 65536,
                max_messages: 1000,
                lean_headers: false,
            },
            ca: None,
            keylog: None,
        }
    }

    /// Pseudo-random bytes (xorshift), never a plausible record header at the given offsets.
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 0x80 // high bit set: never a content type 20..=24
            })
            .collect()
    }

    #[test]
    fn a_head_cut_short_by_the_end_of_the_capture_is_recorded_with_a_warning() {
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", ts);
        c.data(Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ts);
        c.data(Side::A, b"GET /b HTTP/1.1\r\nHost: h\r\nAccept: */", ts);
        let r = c.finish(Side::A);
        let paths: Vec<&[u8]> = r.http.as_ref().unwrap().requests.iter().map(|q| q.path()).collect();
        assert_eq!(paths, [&b"/a"[..], b"/b"]);
        assert_eq!(r.warnings, ["http: message head cut short by missing bytes"]);
    }

    #[test]
    fn a_loose_request_line_is_http_only_when_answered_by_a_status_line() {
        let ts = Timestamp::default();
        // Redis inline commands look like request lines without a version.
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"GET foo\r\n", ts);
        c.data(Side::B, b"$3\r\nbar\r\n", ts);
        c.data(Side::A, b"GET /index.html\r\n", ts);
        c.data(Side::B, b"$-1\r\n", ts);
        let r = c.finish(Side::A);
        assert_eq!((r.protocol, &r.preview[0][..7]), (Protocol::Unknown, &b"GET foo"[..]));
        // A scanner's bare `OPTIONS` line is HTTP once the server answers with a status line.
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"OPTIONS\r\nHost: www.example.com\r\n\r\n", ts);
        c.data(Side::B, b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", ts);
        let r = c.finish(Side::A);
        let h = r.http.as_ref().unwrap();
        assert_eq!((r.protocol, h.requests[0].method.as_bytes()), (Protocol::Http, &b"OPTIONS"[..]));
        assert_eq!(h.responses[0].status, 405);
        // Unanswered: not HTTP.
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"GET /old\r\n", ts);
        assert_eq!(c.finish(Side::A).protocol, Protocol::Unknown);
    }

    #[test]
    fn http_lines_inside_smtp_are_not_http() {
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::B, b"220 mail.example.test ESMTP\r\n", ts);
        c.data(Side::A, b"EHLO client.example.test\r\n", ts);
        c.data(Side::B, b"250-mail.example.test\r\n250 8BITMIME\r\n", ts);
        c.data(Side::A, b"DATA\r\n", ts);
        c.data(Side::B, b"354 go ahead\r\n", ts);
        c.data(Side::A, b"Subject: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n.\r\n", ts);
        c.data(Side::B, b"250 OK\r\nHTTP/1.1 200 OK\r\n\r\n", ts);
        assert_eq!(c.finish(Side::A).protocol, Protocol::Unknown);
    }

    #[test]
    fn one_record_header_in_unknown_bytes_is_not_tls_until_its_successor_is() {
        // The case the benchmark found: an SSH server's random bytes held `15 03 03 24 6a`
        // (an alert header of 9322 bytes) near the end of a segment; its successor is not there.
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"SSH-2.0-OpenSSH_9.2\r\n", ts);
        c.data(Side::B, b"SSH-2.0-OpenSSH_9.6\r\n", ts);
        let mut seg = noise(1448, 7);
        seg[920..925].copy_from_slice(&[0x15, 0x03, 0x03, 0x24, 0x6a]);
        c.data(Side::B, &seg, ts);
        for i in 0..10 {
            c.data(Side::B, &noise(1448, 100 + i), ts);
        }
        assert_eq!(c.finish(Side::A).protocol, Protocol::Unknown);

        // Mid-stream TLS: application data records of 16 KiB, cut in 1448-byte segments; the
        // first segment starts inside a record. Found once a successor header is where the
        // first said.
        let mut stream = noise(700, 1);
        for i in 0..3 {
            stream.extend_from_slice(&[23, 3, 3, 0x40, 0x00]);
            stream.extend(noise(0x4000, 50 + i));
        }
        let mut c = FlowClassifier::new(cfg());
        for chunk in stream.chunks(1448) {
            c.data(Side::A, chunk, ts);
        }
        assert_eq!(c.finish(Side::B).protocol, Protocol::Tls);
    }

    fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([ty, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    #[test]
    fn h2c_server_settings_before_the_client_preface_are_decoded() {
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        // The server's SETTINGS (MAX_CONCURRENT_STREAMS 100) arrive first.
        c.data(Side::B, &h2_frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]), ts);
        let mut client = http::h2::PREFACE.to_vec();
        client.extend(h2_frame(4, 0, 0, &[]));
        // :method GET, :scheme http, :path /, :authority (static name) "h"
        client.extend(h2_frame(1, 0x05, 1, &[0x82, 0x86, 0x84, 0x01, 0x01, b'h']));
        c.data(Side::A, &client, ts);
        c.data(Side::B, &h2_frame(1, 0x05, 1, &[0x8d]), ts); // :status 404
        let r = c.finish(Side::A);
        assert_eq!((r.protocol, r.h2c), (Protocol::H2c, Some(H2cVia::PriorKnowledge)));
        let h = r.http.unwrap();
        assert_eq!((h.requests[0].stream(), h.requests[0].host()), (Some(1), Some(&b"h"[..])));
        assert_eq!((h.responses[0].stream(), h.responses[0].status), (Some(1), 404));
        let s = h.http2.unwrap().settings.server.unwrap();
        assert_eq!(s.0, [(http::h2::SettingId::MAX_CONCURRENT_STREAMS, 100)]);
    }

    #[test]
    fn h2c_joined_mid_connection_is_found_from_one_frame_per_segment() {
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        // A PING alone, then requests alone in their segments; answers as HEADERS + DATA.
        c.data(Side::A, &h2_frame(6, 0, 0, &[1; 8]), ts);
        for stream in [7, 9] {
            c.data(Side::A, &h2_frame(1, 0x05, stream, &[0x82, 0x86, 0x84]), ts);
            let mut answer = h2_frame(1, 0x04, stream, &[0x88]);
            answer.extend(h2_frame(0, 0x01, stream, b"ok"));
            c.data(Side::B, &answer, ts);
        }
        let r = c.finish(Side::A);
        assert_eq!((r.protocol, r.h2c), (Protocol::H2c, Some(H2cVia::MidStream)));
        let h = r.http.unwrap();
        let streams: Vec<Option<u32>> = h.requests.iter().map(|q| q.stream()).collect();
        assert_eq!(streams, [Some(7), Some(9)]);
        assert_eq!(h.requests[1].data(), Some(&http::h2::session::ByRole { client: 0, server: 2 }));
    }

    #[test]
    fn finds_http_line_after_garbage() {
        assert_eq!(http::resync_offset(b"\x01\x02xx\r\nGET / HTTP/1.1\r\n"), Some(6));
        assert_eq!(http::resync_offset(b"body bytes\nHTTP/1.1 200 OK\r\n"), Some(11));
        assert_eq!(http::resync_offset(b"no lines here"), None);
    }
}

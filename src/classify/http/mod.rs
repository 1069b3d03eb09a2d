//! HTTP/1.x over reassembled streams: every request and response head (all headers, in order),
//! bodies skipped by their framing without buffering them, keep-alive and pipelining, `1xx`
//! interim responses, CONNECT tunnels and `101` upgrades (handed back to the caller as a
//! [`HttpFeed::Switch`]).
//!
//! Roles: each side either sends requests or responses, decided by the first message of the flow
//! (RFC 9112 §2.1). A side whose next bytes do not start a message of its role is garbage: it is
//! reported [`HttpFeed::Done`] with a warning, never parsed as the other kind of message.
//!
//! Memory: only an incomplete header block is buffered, at most `max_header_bytes` per side
//! (a block longer than that ends the side, whatever the chunking); bodies are counted down
//! (Content-Length) or walked by a small chunked-encoding state machine. After a gap a side scans
//! for the next line that starts a request (known method) or a status line, keeping at most
//! [`RESYNC_CARRY`] bytes of a line start cut by a chunk boundary. Credential-bearing header values
//! are replaced by `<redacted N bytes>` before they are stored (unless `show_secrets`), so
//! secrets never outlive the packet buffer.
//!
//! A plain head is parsed in one pass that also writes its stored fields (`head::fused`, which
//! validates as httparse does); any other goes to httparse (lenient settings), and what that
//! rejects (HTTP/0.9 request lines, more than [`MAX_HEADERS`] headers, spaces before a colon or
//! folded lines in requests, control bytes) to a small line parser of our own that keeps every
//! `name: value` line.
//!
//! Left to the flow layer: deciding that a stream is HTTP at all (with [`probe_request`],
//! [`probe_response`], [`is_h2_preface`]) and what follows a switch (TLS in a tunnel, h2c frames,
//! which [`h2::session`] turns into the same request and response records).
//!
//! This file owns the session state, the report types and the public API; the work is in:
//! - `probe.rs`: request/response/preface probes, method tokens, resync after a gap;
//! - `head.rs`: header-block framing and parsing, recording a message, body framing;
//! - `chunked.rs`: the chunked-encoding walk;
//! - `headers.rs`: credential headers (redaction) and the Envoy/Istio header marks.

mod chunked;
pub mod h2;
mod head;
mod headers;
mod message;
mod probe;
#[cfg(test)]
pub(crate) mod testutil;

pub(crate) use headers::{MARK_ENVOY, MARK_ISTIO, MARK_PEER_METADATA, MARK_PEER_METADATA_ID, MARK_XFCC};
pub(crate) use message::{H2Request, H2Response, MsgText, Version, NOT_PUSHED, NO_STREAM};
pub use message::{HttpRequest, HttpResponse};
pub(crate) use probe::probe_loose_request;
pub(crate) use probe::{is_h2_preface, is_http09_body, probe_request, probe_response, resync_offset};

use crate::wire::Side;
use chunked::Chunked;

/// Headers parsed per message; more are dropped with a warning.
pub(crate) const MAX_HEADERS: usize = 128;
// `store_headers` keeps one bit per field in a u128.
const _: () = assert!(MAX_HEADERS <= 128);
/// Requests remembered while waiting for their responses (for HEAD/CONNECT/upgrade framing).
const MAX_PENDING: usize = 256;
/// Warnings kept per session (later ones are dropped, even after [`HttpSession::take_warnings`]).
const MAX_WARNINGS: usize = 16;
/// Longest method token accepted by the probe.
const MAX_METHOD_LEN: usize = 24;
/// Longest method of [`KNOWN_METHODS`] (`MKCALENDAR`).
const MAX_KNOWN_METHOD_LEN: usize = 10;
/// Longest request line the probe waits for (its version decides it).
const MAX_PROBE_LINE: usize = 8192;
/// A known method and target whose line is still open after this many bytes is taken as a
/// request (a long URL); below [`crate::classify::PROBE_BYTES`], so the probe decides before
/// its buffer is full.
const LONG_TARGET_LINE: usize = 2048;
/// Bytes a resynchronising side keeps of a line start cut by the end of a chunk: more than a
/// known method, a space and a target byte, or `HTTP/1.1 200`, which decide the resync probe.
pub(crate) const RESYNC_CARRY: usize = 16;
/// Longest `Upgrade` token copied into the report.
const MAX_UPGRADE_TOKEN: usize = 64;

/// Settings for one HTTP session.
#[derive(Clone, Copy, Debug)]
pub struct HttpConfig {
    /// Show credential-bearing header values instead of `<redacted N bytes>`.
    pub show_secrets: bool,
    /// Maximum bytes of one header block buffered per side.
    pub max_header_bytes: usize,
    /// Maximum requests (and responses) recorded per flow; later ones are only counted.
    pub max_messages: usize,
    /// Keep in each message's headers only the fields the summary reads (`--summary-only`: no
    /// flow is written): Istio's peer metadata, its id and `x-forwarded-client-cert`
    /// ([`MARK_ISTIO`]), `forwarded` (HBONE CONNECT targets) and `HTTP2-Settings` (read when
    /// the connection upgrades to h2c). Every mark bit is still set,
    /// and everything else of a message (method, path, host, status, counts) is kept. Storing
    /// every field of every message was half the CPU of a `--summary-only` run on the mesh
    /// benchmark (issue 22); tests/cli.rs checks the summary is the same byte for byte.
    pub lean_headers: bool,
}

/// Whether a field is kept under [`HttpConfig::lean_headers`]: its marks, and its name.
pub(crate) fn lean_keeps(marks: u8, name: &[u8]) -> bool {
    marks & MARK_ISTIO != 0
        || (name.len() == 9 && name.eq_ignore_ascii_case(b"forwarded"))
        || (name.len() == 14 && name.eq_ignore_ascii_case(b"http2-settings"))
}

/// Where a stream goes after HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchTo {
    /// CONNECT (answered 2xx on the server side): the rest is a tunnel (often TLS).
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
    ///
    /// The side is then back at a message boundary: if the caller finds HTTP again in what
    /// follows (a CONNECT refused with `407`, then retried), it may feed this session again.
    Switch {
        /// Offset in the fed slice where HTTP ends.
        at: usize,
        /// The protocol that follows.
        to: SwitchTo,
    },
}

/// Facts about HTTP/1 in a flow, serialized as the `http` object of docs/json.md.
///
/// In declaration order (`repr(C)`): what each stored message reads and writes first, the rare
/// fields last (see [`HttpSession`]).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct HttpReport {
    /// Requests, in order (at most `max_messages`).
    pub requests: Vec<HttpRequest>,
    /// Responses, in order, interim 1xx included (at most `max_messages`).
    pub responses: Vec<HttpResponse>,
    /// All requests seen.
    pub(crate) requests_total: u64,
    /// All responses seen.
    pub(crate) responses_total: u64,
    /// Version of the first message that had one, e.g. "HTTP/1.1".
    pub(crate) version: Option<&'static str>,
    /// `tunnel`, `h2c`, `websocket` or another upgrade token (lowercase), when the stream
    /// switched.
    pub(crate) upgrade: Option<String>,
    /// HTTP/2 connection facts (h2c flows only).
    pub http2: Option<Box<h2::session::Http2Report>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a message head (partial head in `buf`).
    Head,
    /// Skipping a body of known length.
    Body(u64),
    /// Walking a chunked body.
    Chunked(Chunked),
    /// After a gap or a framing error: looking for a line that starts a message. `line_start`:
    /// the next byte begins a line. A cut line start waits in `buf`.
    Resync { line_start: bool },
    /// The other side answered `101`: the next bytes of this side are another protocol.
    Switched(SwitchTo),
    /// Nothing more from this side.
    Done,
}

#[derive(Clone, Debug)]
struct SideState {
    state: State,
    /// Incomplete header block (`Head`) or cut line start (`Resync`).
    buf: Vec<u8>,
    /// `buf` is known to start like a message of this side's role.
    start_ok: bool,
}

/// What a side sends, known once the flow's first message is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Requests,
    Responses,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    head: bool,
    connect: bool,
    h2c: bool,
}

/// HTTP/1 state of one flow.
///
/// In declaration order (`repr(C)`): what a message head reads and writes (its side, the
/// config, the pending requests, the report's lists and counts) in the first four of the five
/// cache lines, the warnings and the report's rare fields last. In the order Rust chose, a head
/// touched all five (the config alone in the last one). With [`h2::session::H2Session`]'s and
/// `Conn`'s orders, `bench/misses` 30 MB slices: default cycles~ 82.54 -> 82.30 M (L2 misses
/// -5.3k, D1 -11k), mesh 88.30 -> 88.02 M (L2 -5.4k, D1 -17k).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct HttpSession {
    sides: [SideState; 2],
    cfg: HttpConfig,
    client: Option<Side>,
    saw: bool,
    pending: head::pending::PendingQueue,
    report: HttpReport,
    warnings: Vec<String>,
    /// Warnings raised so far (kept or not).
    warned: usize,
}

/// Body framing of a head.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A head parsed from bytes, before it is stored.
struct Head<'h, 'a> {
    /// Request: method, target; None for a response.
    request: Option<(&'a [u8], &'a [u8])>,
    status: u16,
    reason: &'a [u8],
    /// Minor version of `HTTP/1.x`.
    version: Option<u8>,
    headers: Fields<'h, 'a>,
    truncated_headers: bool,
}

/// The header fields of a [`Head`], where its parser left them (no copy for httparse's).
enum Fields<'h, 'a> {
    /// httparse's slots: every name is an RFC 9110 token.
    Parsed(&'h [httparse::Header<'a>]),
    /// Our line parser's `(name, value)` pairs: any bytes.
    Lines(Vec<(&'a [u8], &'a [u8])>),
}

/// What the first bytes of a head say, before its end is found.
enum Start {
    /// Not a message of this side's role.
    Garbage,
    /// The complete HTTP/2 preface.
    Preface,
    /// A prefix of the HTTP/2 preface: wait for more.
    Wait,
    /// A message start (`confirmed`) or a prefix of one.
    Message { confirmed: bool },
}

/// Outcome of one head for the feed loop.
enum Step {
    Consumed(usize),
    Stop,
    Switch(usize, SwitchTo),
}

/// Outcome of one message, before positions are known.
enum MsgStep {
    Continue,
    Stop,
    Switch(SwitchTo),
}

impl MsgStep {
    /// Places the step in the fed slice: `end` is where the head ended.
    fn at(self, end: usize) -> Step {
        match self {
            MsgStep::Continue => Step::Consumed(end),
            MsgStep::Stop => Step::Stop,
            MsgStep::Switch(to) => Step::Switch(end, to),
        }
    }
}

/// Messages of each kind whose fields [`HttpSession::prefetch`] fetches: the report is written in
/// order, and a flow with a thousand recorded messages would otherwise flood the cache with
/// fields read only much later.
const PREFETCH_MESSAGES: usize = 16;

impl HttpSession {
    /// Prefetches what the report of this session reads, one level of pointers per `stage`
    /// (0: the recorded messages, 1: the fields of the first [`PREFETCH_MESSAGES`] of each
    /// kind), for [`FlowClassifier::prefetch`].
    pub(crate) fn prefetch(&self, stage: u8) {
        use crate::wire::prefetch;
        let r = &self.report;
        match stage {
            0 => {
                prefetch(&r.requests[..]);
                prefetch(&r.responses[..]);
            }
            _ => {
                for q in r.requests.iter().take(PREFETCH_MESSAGES) {
                    q.headers.prefetch();
                    prefetch(q.path());
                }
                for a in r.responses.iter().take(PREFETCH_MESSAGES) {
                    a.headers.prefetch();
                }
            }
        }
    }

    /// A new session.
    pub fn new(cfg: HttpConfig) -> HttpSession {
        let side = || SideState { state: State::Head, buf: Vec::new(), start_ok: false };
        HttpSession {
            cfg,
            sides: [side(), side()],
            pending: head::pending::PendingQueue::default(),
            report: HttpReport::default(),
            client: None,
            warnings: Vec::new(),
            warned: 0,
            saw: false,
        }
    }

    fn warn(&mut self, w: impl Into<String>) {
        if self.warned < MAX_WARNINGS {
            self.warnings.push(w.into());
        }
        self.warned = self.warned.saturating_add(1);
    }

    fn role(&self, side: Side) -> Option<Role> {
        self.client.map(|c| if c == side { Role::Requests } else { Role::Responses })
    }

    /// Back at a message boundary, nothing buffered (after a switch).
    fn reset(&mut self, s: usize) {
        let st = &mut self.sides[s];
        st.state = State::Head;
        st.buf = Vec::new();
        st.start_ok = false;
    }

    /// Nothing more from this side.
    fn stop(&mut self, s: usize) {
        let st = &mut self.sides[s];
        st.state = State::Done;
        st.buf = Vec::new();
        st.start_ok = false;
    }

    /// Feeds in-order stream bytes of `side`.
    pub fn feed(&mut self, side: Side, data: &[u8]) -> HttpFeed {
        let s = side.idx();
        let mut pos = 0;
        while pos < data.len() {
            match self.sides[s].state {
                State::Done => return HttpFeed::Done,
                State::Switched(to) => {
                    self.reset(s);
                    return HttpFeed::Switch { at: pos, to };
                }
                State::Body(n) => {
                    let k = n.min((data.len() - pos) as u64);
                    pos += k as usize;
                    self.sides[s].state = if n == k { State::Head } else { State::Body(n - k) };
                }
                State::Chunked(c) => pos = self.walk_chunked(s, c, data, pos),
                State::Resync { line_start } => match self.resync(s, line_start, data, pos) {
                    Some(p) => pos = p,
                    None => return HttpFeed::More,
                },
                State::Head => match self.head(side, data, pos) {
                    Step::Consumed(p) => pos = p,
                    Step::Stop => {
                        self.stop(s);
                        return HttpFeed::Done;
                    }
                    Step::Switch(at, to) => {
                        self.reset(s);
                        return HttpFeed::Switch { at, to };
                    }
                },
            }
        }
        if self.sides[s].state == State::Done {
            HttpFeed::Done
        } else {
            HttpFeed::More
        }
    }

    /// Bytes of `side` were lost.
    ///
    /// A head cut short by the gap (typically a snaplen-truncated packet) is still recorded from
    /// its complete lines, with a warning: an exposed request line is what the operator needs.
    /// Then the side looks for the next line that starts a message (the first byte after the gap
    /// counts as a line start).
    pub fn gap(&mut self, side: Side) {
        let s = side.idx();
        self.record_partial(side);
        let st = &mut self.sides[s];
        st.buf.clear();
        st.start_ok = false;
        if !matches!(st.state, State::Done | State::Switched(_)) {
            st.state = State::Resync { line_start: true };
        }
    }

    /// Bytes held in partial header blocks (allocated capacity).
    pub fn buffered(&self) -> usize {
        self.sides.iter().map(|s| s.buf.capacity()).sum()
    }

    /// Memory pressure: frees partial header blocks; those sides resynchronise.
    pub fn shed(&mut self) {
        for st in &mut self.sides {
            if !st.buf.is_empty() && matches!(st.state, State::Head | State::Resync { .. }) {
                st.state = State::Resync { line_start: false };
            }
            st.buf = Vec::new();
            st.start_ok = false;
        }
    }

    /// Side that sent requests (or the other side of the first response).
    pub fn client_side(&self) -> Option<Side> {
        self.client
    }

    /// At least one request or response was parsed (or is waiting, cut short, in a buffer).
    pub fn saw_http(&self) -> bool {
        self.saw || [Side::A, Side::B].into_iter().any(|s| self.partial_head(s).is_some())
    }

    /// Drains warnings (at most 16 over the whole session; later ones are dropped).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Requests recorded so far, in order.
    pub fn requests(&self) -> &[HttpRequest] {
        &self.report.requests
    }

    /// Final facts. Requests are attributed to the side that sent them, whichever is the client.
    /// A head still incomplete (capture ended, HTTP/0.9 request without a blank line) is
    /// included from its complete lines.
    pub fn finish(&self) -> HttpReport {
        if [Side::A, Side::B].iter().all(|&s| self.partial_head(s).is_none()) {
            return self.report.clone();
        }
        self.clone().into_report().0
    }

    /// The same facts, moved out of a session that is over (no copy of the recorded heads),
    /// with the warnings not yet taken (a head cut short by the end of the capture adds one).
    pub(crate) fn into_report(mut self) -> (HttpReport, Vec<String>) {
        for s in [Side::A, Side::B] {
            self.record_partial(s);
        }
        (self.report, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::testutil::*;
    use crate::wire::Probe;

    #[test]
    fn keepalive_two_exchanges_with_content_length_bodies() {
        let (h, feeds) = run(
            &[
                (Side::A, b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
                (Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
                (Side::A, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                (Side::B, b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
            ],
            false,
        );
        assert_eq!(feeds, [HttpFeed::More; 4]);
        assert_eq!(paths(&h), ["/a", "/b"]);
        assert_eq!(statuses(&h), [200, 404]);
        assert_eq!(h.report.responses[1].reason.as_bytes(), b"Not Found");
        assert_eq!(h.report.version, Some("HTTP/1.1"));
        assert!(h.sides.iter().all(|s| s.state == State::Head && s.buf.is_empty()));
    }

    #[test]
    fn pipelined_requests_and_responses_in_one_chunk() {
        let (h, _) = run(
            &[
                (Side::A, b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /3 HTTP/1.1\r\n\r\n"),
                (
                    Side::B,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nyHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                ),
            ],
            false,
        );
        assert_eq!(paths(&h), ["/1", "/2", "/3"]);
        assert_eq!(statuses(&h), [200, 200, 200]);
        assert_eq!(h.sides[1].state, State::Head, "the HEAD response has no body");
    }

    #[test]
    fn every_split_point_gives_the_same_report() {
        let msgs: [(Side, &[u8]); 6] = [
            (Side::A, b"PUT /up HTTP/1.1\r\nHost: u\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            (Side::B, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (Side::A, b"abc\r\nHEAD /h HTTP/1.0\r\nX: y\r\n z\r\n\r\n"),
            (Side::B, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
            (Side::B, b"HTTP/1.0 200 OK\r\nContent-Length: 77\r\n\r\n"),
            (Side::A, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"),
        ];
        let (reference, _) = run(&msgs, false);
        let want = json(&reference);
        assert_eq!(paths(&reference), ["/up", "/h"]);
        assert_eq!(statuses(&reference), [100, 201, 200]);
        for i in 0..msgs.len() {
            for k in 0..=msgs[i].1.len() {
                let mut h = HttpSession::new(cfg());
                for (j, &(side, m)) in msgs.iter().enumerate() {
                    if i == j {
                        h.feed(side, &m[..k]);
                        h.feed(side, &m[k..]);
                    } else {
                        h.feed(side, m);
                    }
                }
                assert_eq!(json(&h), want, "message {i} split at {k}");
            }
        }
    }

    #[test]
    fn head_response_has_no_body_and_100_continue_is_recorded() {
        let (h, _) = run(
            &[
                (Side::A, b"HEAD /x HTTP/1.1\r\n\r\nPUT /y HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
                (Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"),
                (Side::A, b"ok"),
                (Side::B, b"HTTP/1.1 204 No Content\r\n\r\n"),
            ],
            false,
        );
        assert_eq!(statuses(&h), [200, 100, 204]);
        assert_eq!(paths(&h), ["/x", "/y"]);
        assert!(h.pending.is_empty());
    }

    #[test]
    fn connect_switches_both_sides_after_the_heads() {
        let req = b"CONNECT db:443 HTTP/1.1\r\nHost: db:443\r\n\r\n\x16\x03\x01";
        let resp = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03";
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, req), HttpFeed::Switch { at: req.len() - 3, to: SwitchTo::Tunnel });
        assert_eq!(h.feed(Side::B, resp), HttpFeed::Switch { at: resp.len() - 3, to: SwitchTo::Tunnel });
        assert_eq!(h.report.upgrade.as_deref(), Some("tunnel"));
        assert_eq!(paths(&h), ["db:443"]);
    }

    #[test]
    fn refused_connect_is_no_tunnel_and_the_retry_is_parsed() {
        let mut h = HttpSession::new(cfg());
        let req = b"CONNECT db:443 HTTP/1.1\r\n\r\n";
        assert_eq!(h.feed(Side::A, req), HttpFeed::Switch { at: req.len(), to: SwitchTo::Tunnel });
        let refused = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndeny";
        assert_eq!(h.feed(Side::B, refused), HttpFeed::More);
        assert_eq!(h.report.upgrade, None);
        // The caller found HTTP again on the client side and feeds the retry.
        let retry = b"CONNECT db:443 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n";
        assert_eq!(h.feed(Side::A, retry), HttpFeed::Switch { at: retry.len(), to: SwitchTo::Tunnel });
        let ok = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(h.feed(Side::B, ok), HttpFeed::Switch { at: ok.len(), to: SwitchTo::Tunnel });
        assert_eq!(statuses(&h), [407, 200]);
        assert_eq!(h.report.upgrade.as_deref(), Some("tunnel"));
        assert!(!json(&h).contains("dTpw"));
    }

    #[test]
    fn h2c_upgrade_and_prior_knowledge() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(
            h.feed(Side::A, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"),
            HttpFeed::More
        );
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00";
        assert_eq!(h.feed(Side::B, resp), HttpFeed::Switch { at: resp.len() - 2, to: SwitchTo::H2c });
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(h.feed(Side::A, preface), HttpFeed::Switch { at: 0, to: SwitchTo::H2c });
        assert_eq!(h.report.requests_total, 1);
        assert_eq!(h.report.upgrade.as_deref(), Some("h2c"));
    }

    #[test]
    fn h2c_upgrade_token_is_case_insensitive_and_decides_the_switch() {
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET / HTTP/1.1\r\nUpgrade: foo, H2C\r\n\r\n");
        // The server names no token: the request decides.
        let resp = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(h.feed(Side::B, resp), HttpFeed::Switch { at: resp.len(), to: SwitchTo::H2c });
    }

    #[test]
    fn prior_knowledge_preface_whole_or_split_records_no_request() {
        let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00";
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, preface), HttpFeed::Switch { at: 0, to: SwitchTo::H2c });
        for k in 1..24 {
            let mut h = HttpSession::new(cfg());
            assert_eq!(h.feed(Side::A, &preface[..k]), HttpFeed::More, "split at {k}");
            assert_eq!(h.feed(Side::A, &preface[k..]), HttpFeed::Switch { at: 0, to: SwitchTo::H2c });
            assert_eq!(h.report.requests_total, 0, "split at {k}");
            assert_eq!(h.report.upgrade.as_deref(), Some("h2c"));
        }
        // Also after HTTP/1 requests, at a message boundary.
        let mut h = HttpSession::new(cfg());
        let mut bytes = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        bytes.extend_from_slice(preface);
        assert_eq!(h.feed(Side::A, &bytes), HttpFeed::Switch { at: 18, to: SwitchTo::H2c });
        assert_eq!(h.report.requests_total, 1);
        assert_eq!(probe_request(preface), Probe::Match);
        assert_eq!(probe_request(&preface[..20]), Probe::NeedMore);
    }

    #[test]
    fn websocket_upgrade_switches_the_server_and_then_the_client() {
        let mut h = HttpSession::new(cfg());
        h.feed(
            Side::A,
            b"GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello";
        assert_eq!(h.feed(Side::B, resp), HttpFeed::Switch { at: resp.len() - 7, to: SwitchTo::Upgraded });
        assert_eq!(h.feed(Side::A, b"\x81\x85mask!"), HttpFeed::Switch { at: 0, to: SwitchTo::Upgraded });
        assert_eq!(h.report.upgrade.as_deref(), Some("websocket"));
        assert!(h.take_warnings().is_empty());
    }

    #[test]
    fn finish_includes_a_head_still_waiting_for_its_blank_line() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, b"GET /old\r\n"), HttpFeed::More);
        assert!(h.saw_http());
        let report = h.finish();
        assert_eq!(report.requests.len(), 1);
        assert_eq!(report.requests[0].path(), b"/old");
        assert_eq!(report.requests[0].version(), None);
        // A mere prefix is not a message; a request line cut in its target is.
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET ");
        assert!(!h.saw_http());
        assert_eq!(h.finish().requests_total, 0);
        h.feed(Side::A, b"/AAAA");
        assert!(h.saw_http());
        assert_eq!(h.finish().requests[0].path(), b"/AAAA");
    }

    #[test]
    fn garbage_and_huge_lengths_stop_without_panic() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, b"\x00\x01\x02\x03 binary junk that is not http at all"), HttpFeed::Done);
        assert_eq!(h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\n"), HttpFeed::Done);
        let mut h = HttpSession::new(cfg());
        let f = h.feed(Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nxx");
        assert_eq!((f, statuses(&h)), (HttpFeed::Done, vec![200]));
        assert!(h.warnings[0].contains("Content-Length"));
        let mut h = HttpSession::new(cfg());
        let f =
            h.feed(Side::B, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n");
        assert_eq!(f, HttpFeed::Done);
        assert!(h.warnings[0].contains("chunk size too large"));
        // Sixteen hex digits still fit (with leading zeros, more).
        let mut h = HttpSession::new(cfg());
        let f = h.feed(
            Side::B,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000ffffffffffffffff\r\n",
        );
        assert_eq!(f, HttpFeed::More);
        assert_eq!(h.sides[1].state, State::Chunked(Chunked::Data(u64::MAX)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: mutated HTTP and noise, in odd chunk sizes, with gaps.
        let seed: &[u8] = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 101 x\r\nUpgrade: h2c\r\n\r\n";
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..300 {
            let mut data = seed.to_vec();
            for _ in 0..(next() % 8) {
                let i = next() as usize % data.len();
                data[i] = next() as u8;
            }
            let mut h = HttpSession::new(HttpConfig { max_header_bytes: 64, ..cfg() });
            let mut pos = 0;
            while pos < data.len() {
                let n = (1 + next() as usize % 9).min(data.len() - pos);
                let side = if next() % 4 == 0 { Side::B } else { Side::A };
                h.feed(side, &data[pos..pos + n]);
                if next() % 16 == 0 {
                    h.gap(side);
                }
                pos += n;
            }
            let _ = json(&h);
            assert!(h.take_warnings().len() <= MAX_WARNINGS);
        }
    }

    #[test]
    fn the_server_side_never_records_requests() {
        // A body longer than announced: what follows is garbage for a response side.
        let (h, feeds) = run(
            &[
                (Side::A, b"GET / HTTP/1.1\r\n\r\n"),
                (Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhello world\r\n\r\n"),
            ],
            false,
        );
        assert_eq!(feeds, [HttpFeed::More, HttpFeed::Done]);
        assert_eq!(h.report.requests_total, 1);
        assert_eq!(statuses(&h), [200]);
        let (h, feeds) = run(&[(Side::B, b"HTTP/1.1 204 No Content\r\n\r\nGET / HTTP/1.1\r\n\r\n")], false);
        assert_eq!(feeds, [HttpFeed::Done]);
        assert_eq!((h.report.requests_total, h.client_side()), (0, Some(Side::A)));
    }

    #[test]
    fn response_without_length_reads_until_close() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::B, b"HTTP/1.0 200 OK\r\n\r\nbody"), HttpFeed::Done);
        let mut h = HttpSession::new(cfg());
        let f =
            h.feed(Side::B, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nbody");
        assert_eq!(f, HttpFeed::Done);
        let mut h = HttpSession::new(cfg());
        let f = h.feed(
            Side::B,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 4, 4\r\n\r\nbody",
        );
        assert_eq!(f, HttpFeed::More);
        assert_eq!(h.sides[1].state, State::Head);
    }

    #[test]
    fn messages_beyond_the_limit_are_counted() {
        let mut h = HttpSession::new(HttpConfig { max_messages: 2, ..cfg() });
        for _ in 0..5 {
            assert_eq!(h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\n"), HttpFeed::More);
        }
        assert_eq!((h.report.requests.len(), h.report.requests_total), (2, 5));
    }

    #[test]
    fn http1_lists_start_with_room_for_eight_messages_or_the_limit() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\n"), HttpFeed::More);
        assert_eq!(h.feed(Side::B, b"HTTP/1.1 204 No Content\r\n\r\n"), HttpFeed::More);
        assert_eq!((h.report.requests.capacity(), h.report.responses.capacity()), (8, 8));
        let mut h = HttpSession::new(HttpConfig { max_messages: 2, ..cfg() });
        assert_eq!(h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\n"), HttpFeed::More);
        assert_eq!((h.report.requests.capacity(), h.report.responses.capacity()), (2, 0));
    }

    #[test]
    fn http1_lists_grow_once_to_thirty_two_then_double() {
        // (requests pushed, max_messages) -> capacity after the last push.
        for (n, max, want) in
            [(8, 1000, 8), (9, 1000, 32), (32, 1000, 32), (33, 1000, 64), (9, 10, 10), (10, 10, 10)]
        {
            let mut h = HttpSession::new(HttpConfig { max_messages: max, ..cfg() });
            for _ in 0..n {
                assert_eq!(h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\n"), HttpFeed::More);
            }
            let r = &h.report.requests;
            assert_eq!((r.len(), r.capacity()), (n.min(max), want), "{n} requests, max {max}");
        }
    }

    #[test]
    fn warnings_are_bounded_per_session() {
        let mut h = HttpSession::new(cfg());
        let mut total = 0;
        for _ in 0..40 {
            h.feed(Side::A, b"GET /cut HTTP/1.1\r\nHost: x\r\nUser");
            h.gap(Side::A);
            h.feed(Side::A, b"\n");
            total += h.take_warnings().len();
        }
        assert_eq!(total, MAX_WARNINGS);
        assert_eq!(h.report.requests_total, 40);
    }

    #[test]
    fn json_keys_are_always_present() {
        let (h, _) = run(&[(Side::A, b"GET /x\r\n\r\n")], false);
        let v: serde_json::Value = serde_json::from_str(&json(&h)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": null,
                "requests": [{"method": "GET", "path": "/x", "version": null, "host": null, "headers": [],
                    "stream": null, "trailers": [], "unknown_fields": 0, "grpc": null, "data": null,
                    "pushed_by": null}],
                "responses": [],
                "requests_total": 1,
                "responses_total": 0,
                "upgrade": null,
                "http2": null
            })
        );
    }

    #[test]
    fn a_head_touches_the_first_240_bytes_of_the_session() {
        // The `repr(C)` orders of `HttpSession` and `HttpReport`: what a head reads and writes
        // lies before the warnings and the report's rare fields (the last of five cache lines).
        use std::mem::{offset_of, size_of};
        let report = offset_of!(HttpSession, report);
        let hot_end = [
            offset_of!(HttpSession, sides) + size_of::<[SideState; 2]>(),
            offset_of!(HttpSession, cfg) + size_of::<HttpConfig>(),
            offset_of!(HttpSession, client) + 1,
            offset_of!(HttpSession, saw) + 1,
            offset_of!(HttpSession, pending) + size_of::<head::pending::PendingQueue>(),
            report + offset_of!(HttpReport, version) + size_of::<Option<&str>>(),
            report + offset_of!(HttpReport, responses_total) + 8,
        ];
        assert!(hot_end.iter().all(|&e| e <= 240), "{hot_end:?}");
        assert_eq!((size_of::<HttpSession>(), offset_of!(HttpSession, warnings)), (288, 256));
    }
}

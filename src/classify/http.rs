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
//! Heads are parsed by httparse (lenient settings); what it rejects (HTTP/0.9 request lines, more
//! than [`MAX_HEADERS`] headers, spaces before a colon or folded lines in requests, control bytes)
//! falls back to a small line parser of our own that keeps every `name: value` line.
//!
//! Left to the flow layer: deciding that a stream is HTTP at all (with [`probe_request`],
//! [`probe_response`], [`is_h2_preface`]) and what follows a switch (TLS in a tunnel, h2c frames).

use crate::sanitize::{Headers, HeadersBuilder, WireBytes};
use crate::wire::{Probe, Side};
use serde::Serialize;
use std::collections::VecDeque;

/// Headers parsed per message; more are dropped with a warning.
pub const MAX_HEADERS: usize = 128;
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
pub const RESYNC_CARRY: usize = 16;
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

/// One request head.
#[derive(Clone, Debug, Serialize)]
pub struct HttpRequest {
    /// Method token.
    pub method: WireBytes,
    /// Request target as sent (origin, absolute, authority or asterisk form).
    pub path: WireBytes,
    /// `HTTP/1.1`, `HTTP/1.0`, or null for an HTTP/0.9-style line (or an unreadable version).
    pub version: Option<&'static str>,
    /// Value of the first Host header.
    pub host: Option<WireBytes>,
    /// Every header as `[name, value]`, in order (secrets redacted).
    pub headers: Headers,
}

/// One response head.
#[derive(Clone, Debug, Serialize)]
pub struct HttpResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: Option<&'static str>,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: WireBytes,
    /// Every header as `[name, value]`, in order (secrets redacted).
    pub headers: Headers,
}

/// Facts about HTTP/1 in a flow, serialized as the `http` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpReport {
    /// Version of the first message that had one, e.g. "HTTP/1.1".
    pub version: Option<&'static str>,
    /// Requests, in order (at most `max_messages`).
    pub requests: Vec<HttpRequest>,
    /// Responses, in order, interim 1xx included (at most `max_messages`).
    pub responses: Vec<HttpResponse>,
    /// All requests seen.
    pub requests_total: u64,
    /// All responses seen.
    pub responses_total: u64,
    /// `tunnel`, `h2c`, `websocket` or another upgrade token (lowercase), when the stream
    /// switched.
    pub upgrade: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line: `value` so far, `digits` seen, `ext` past the size.
    Size { value: u64, digits: bool, ext: bool },
    /// Skipping chunk data.
    Data(u64),
    /// CRLF after chunk data.
    DataEnd,
    /// Trailer section: `empty` true while the current line has no bytes yet.
    Trailer { empty: bool },
}

const CHUNK_START: Chunked = Chunked::Size { value: 0, digits: false, ext: false };

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
#[derive(Clone, Debug)]
pub struct HttpSession {
    cfg: HttpConfig,
    sides: [SideState; 2],
    pending: VecDeque<Pending>,
    report: HttpReport,
    client: Option<Side>,
    warnings: Vec<String>,
    /// Warnings raised so far (kept or not).
    warned: usize,
    saw: bool,
}

/// Body framing of a head.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A head parsed from bytes, before it is stored.
struct Head<'a> {
    /// Request: method, target; None for a response.
    request: Option<(&'a [u8], &'a [u8])>,
    status: u16,
    reason: &'a [u8],
    /// Minor version of `HTTP/1.x`.
    version: Option<u8>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    truncated_headers: bool,
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
                    prefetch(q.path.as_bytes());
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
            pending: VecDeque::new(),
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

    /// Walks chunked framing (RFC 9112 §7.1) from `pos`; returns the new position.
    fn walk_chunked(&mut self, s: usize, mut c: Chunked, data: &[u8], mut pos: usize) -> usize {
        while pos < data.len() {
            match c {
                Chunked::Data(n) => {
                    let k = n.min((data.len() - pos) as u64);
                    pos += k as usize;
                    c = if n == k { Chunked::DataEnd } else { Chunked::Data(n - k) };
                }
                Chunked::DataEnd => {
                    let b = data[pos];
                    pos += 1;
                    if b == b'\n' {
                        c = CHUNK_START;
                    } else if b != b'\r' {
                        self.warn("http: malformed chunked body (no CRLF after chunk data)");
                        self.sides[s].state = State::Resync { line_start: false };
                        return pos;
                    }
                }
                Chunked::Size { value, digits, ext } => {
                    let b = data[pos];
                    pos += 1;
                    match b {
                        b'\n' if !digits => {
                            self.warn("http: malformed chunk size line");
                            self.sides[s].state = State::Resync { line_start: true };
                            return pos;
                        }
                        b'\n' if value == 0 => c = Chunked::Trailer { empty: true },
                        b'\n' => c = Chunked::Data(value),
                        _ if ext => {}
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if value > u64::MAX >> 4 {
                                self.warn("http: chunk size too large");
                                self.stop(s);
                                return data.len();
                            }
                            let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                            c = Chunked::Size { value: (value << 4) | d, digits: true, ext };
                        }
                        b';' | b' ' | b'\t' | b'\r' if digits => {
                            c = Chunked::Size { value, digits, ext: true }
                        }
                        _ => {
                            self.warn("http: malformed chunk size line");
                            self.sides[s].state = State::Resync { line_start: false };
                            return pos;
                        }
                    }
                }
                Chunked::Trailer { empty } => {
                    let b = data[pos];
                    pos += 1;
                    match b {
                        b'\n' if empty => {
                            self.sides[s].state = State::Head;
                            return pos;
                        }
                        b'\n' => c = Chunked::Trailer { empty: true },
                        b'\r' => {}
                        _ => c = Chunked::Trailer { empty: false },
                    }
                }
            }
        }
        self.sides[s].state = State::Chunked(c);
        pos
    }

    /// Looks for a line starting a message in `data[pos..]` (after a gap). Returns where the
    /// message starts (the side is then in `Head`, possibly with a carried line start in `buf`),
    /// or None when all of `data` was scanned. Each byte is looked at a bounded number of times.
    fn resync(&mut self, s: usize, mut line_start: bool, data: &[u8], pos: usize) -> Option<usize> {
        let st = &mut self.sides[s];
        if !st.buf.is_empty() {
            // A line start cut by the end of the previous chunk: complete it with this one.
            let mut tmp = [0u8; 2 * RESYNC_CARRY];
            let c = st.buf.len().min(RESYNC_CARRY);
            let k = (data.len() - pos).min(RESYNC_CARRY);
            tmp[..c].copy_from_slice(&st.buf[..c]);
            tmp[c..c + k].copy_from_slice(&data[pos..pos + k]);
            match probe_resync(&tmp[..c + k]) {
                Probe::Match => {
                    st.state = State::Head;
                    st.start_ok = true;
                    return Some(pos);
                }
                Probe::NeedMore if c + k < RESYNC_CARRY => {
                    st.buf.extend_from_slice(&data[pos..pos + k]);
                    return None;
                }
                _ => {
                    st.buf.clear();
                    line_start = false;
                }
            }
        }
        let mut start = if line_start { Some(pos) } else { None };
        let mut from = pos;
        loop {
            if let Some(l) = start {
                if l == data.len() {
                    st.state = State::Resync { line_start: true };
                    return None;
                }
                match probe_resync(&data[l..]) {
                    Probe::Match => {
                        st.state = State::Head;
                        st.start_ok = true;
                        return Some(l);
                    }
                    Probe::NeedMore if data.len() - l < RESYNC_CARRY => {
                        st.buf.extend_from_slice(&data[l..]);
                        st.state = State::Resync { line_start: false };
                        return None;
                    }
                    _ => from = l,
                }
            }
            match memchr::memchr(b'\n', &data[from..]) {
                Some(p) => start = Some(from + p + 1),
                None => {
                    st.state = State::Resync { line_start: false };
                    return None;
                }
            }
        }
    }

    /// Tries to parse one head starting at `data[pos..]` (plus buffered bytes).
    fn head(&mut self, side: Side, data: &[u8], pos: usize) -> Step {
        let s = side.idx();
        let max = self.cfg.max_header_bytes;
        let role = self.role(side);
        if self.sides[s].buf.is_empty() {
            // Blank lines between messages are allowed (RFC 9112 §2.2).
            let mut p = pos;
            while p < data.len() && (data[p] == b'\r' || data[p] == b'\n') {
                p += 1;
            }
            if p == data.len() {
                return Step::Consumed(p);
            }
            let rest = &data[p..];
            let confirmed = match classify_start(role, rest) {
                Start::Garbage => return self.garbage(),
                Start::Preface => return self.preface(side, p),
                Start::Wait => false,
                Start::Message { confirmed } => {
                    if let Some(end) = head_end(rest, 0) {
                        if end > max {
                            return self.too_long();
                        }
                        return self.message(side, &rest[..end]).at(p + end);
                    }
                    confirmed
                }
            };
            if rest.len() > max {
                return self.too_long();
            }
            let st = &mut self.sides[s];
            st.buf.extend_from_slice(rest);
            st.start_ok = confirmed;
            return Step::Consumed(data.len());
        }
        let old = self.sides[s].buf.len();
        let take = (data.len() - pos).min((max + 4).saturating_sub(old));
        self.sides[s].buf.extend_from_slice(&data[pos..pos + take]);
        let buf = std::mem::take(&mut self.sides[s].buf);
        let was_ok = self.sides[s].start_ok;
        let start = if was_ok { Start::Message { confirmed: true } } else { classify_start(role, &buf) };
        let step = match start {
            Start::Garbage => self.garbage(),
            // The preface began in an earlier call: all of this call is HTTP/2.
            Start::Preface => self.preface(side, pos),
            Start::Wait if buf.len() > max => self.too_long(),
            Start::Wait => Step::Consumed(pos + take),
            Start::Message { confirmed } => {
                self.sides[s].start_ok = confirmed;
                let from = if was_ok { old.saturating_sub(3) } else { 0 };
                match head_end(&buf, from) {
                    Some(end) if end > max => self.too_long(),
                    Some(end) => {
                        self.sides[s].start_ok = false;
                        let step = self.message(side, &buf[..end]);
                        let mut buf = buf;
                        buf.clear();
                        self.sides[s].buf = buf;
                        return step.at(pos + end.saturating_sub(old));
                    }
                    None if buf.len() > max => self.too_long(),
                    None => Step::Consumed(pos + take),
                }
            }
        };
        if let Step::Consumed(_) = step {
            self.sides[s].buf = buf;
        }
        step
    }

    fn garbage(&mut self) -> Step {
        self.warn("http: unparseable bytes where a message should start");
        Step::Stop
    }

    fn too_long(&mut self) -> Step {
        let max = self.cfg.max_header_bytes;
        self.warn(format!("http: header block longer than {max} bytes"));
        Step::Stop
    }

    /// The HTTP/2 connection preface at a message boundary of `side`: h2c, no request recorded.
    fn preface(&mut self, side: Side, at: usize) -> Step {
        self.client.get_or_insert(side);
        self.report.upgrade = Some("h2c".into());
        Step::Switch(at, SwitchTo::H2c)
    }

    /// Records one complete head and sets up the body; `block` ends with the blank line (or is
    /// the complete lines of a head cut short).
    fn message(&mut self, side: Side, block: &[u8]) -> MsgStep {
        let s = side.idx();
        let response = match self.role(side) {
            Some(r) => r == Role::Responses,
            None => probe_response(block) == Probe::Match,
        };
        let Some(h) = parse_head(block, response) else {
            self.warn("http: malformed message head");
            return MsgStep::Stop;
        };
        if h.truncated_headers {
            self.warn(format!("http: more than {MAX_HEADERS} headers; the rest are not shown"));
        }
        self.saw = true;
        let version = h.version.map(|v| if v == 0 { "HTTP/1.0" } else { "HTTP/1.1" });
        if self.report.version.is_none() {
            self.report.version = version;
        }
        let fields = |name: &'static [u8]| {
            h.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
        };
        let tokens = |name: &'static [u8]| {
            fields(name).flat_map(|v| v.split(|&b| b == b',')).map(trim).filter(|t| !t.is_empty())
        };
        // RFC 9112 §6.1: the last transfer coding decides; `identity` is an obsolete no-op.
        let coding = tokens(b"transfer-encoding").rfind(|t| !t.eq_ignore_ascii_case(b"identity"));
        let chunked = coding.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        let other_coding = coding.is_some() && !chunked;
        let length = content_length(fields(b"content-length"));
        if length == Some(None) {
            self.warn("http: invalid or too large Content-Length; framing unknown");
        }
        match h.request {
            Some((method, target)) => {
                self.client.get_or_insert(side);
                self.report.requests_total = self.report.requests_total.saturating_add(1);
                let p = Pending {
                    head: method == b"HEAD",
                    connect: method == b"CONNECT",
                    h2c: tokens(b"upgrade").any(|t| t.eq_ignore_ascii_case(b"h2c")),
                };
                if self.pending.len() < MAX_PENDING {
                    self.pending.push_back(p);
                }
                if self.report.requests.len() < self.cfg.max_messages {
                    let host = fields(b"host").next().map(|v| WireBytes::new(trim(v)));
                    let headers = self.store_headers(&h.headers);
                    self.report.requests.push(HttpRequest {
                        method: WireBytes::new(method),
                        path: WireBytes::new(target),
                        version,
                        host,
                        headers,
                    });
                }
                if p.connect {
                    self.report.upgrade = Some("tunnel".into());
                    return MsgStep::Switch(SwitchTo::Tunnel);
                }
                // RFC 9112 §6.3: a request with neither framing header has no body.
                let framing = if chunked {
                    Framing::Chunked
                } else if other_coding {
                    self.warn("http: request with a transfer coding other than chunked");
                    Framing::UntilClose
                } else if length == Some(None) {
                    Framing::UntilClose
                } else {
                    Framing::Length(length.flatten().unwrap_or(0))
                };
                self.set_framing(s, framing)
            }
            None => {
                self.client.get_or_insert(side.other());
                self.report.responses_total = self.report.responses_total.saturating_add(1);
                if self.report.responses.len() < self.cfg.max_messages {
                    let headers = self.store_headers(&h.headers);
                    self.report.responses.push(HttpResponse {
                        version,
                        status: h.status,
                        reason: WireBytes::new(h.reason),
                        headers,
                    });
                }
                let st = h.status;
                // Interim 1xx responses precede the final one to the same request.
                let req = if st >= 200 || st == 101 {
                    self.pending.pop_front()
                } else {
                    self.pending.front().copied()
                };
                let req = req.unwrap_or_default();
                if st == 101 {
                    let token = fields(b"upgrade").next().map(upgrade_token);
                    let to = if req.h2c || token.as_deref() == Some("h2c") {
                        SwitchTo::H2c
                    } else {
                        SwitchTo::Upgraded
                    };
                    self.report.upgrade = Some(match to {
                        SwitchTo::H2c => "h2c".into(),
                        _ => token.unwrap_or_else(|| "unknown".into()),
                    });
                    // The client's next bytes are the new protocol too (websocket frames, the
                    // HTTP/2 preface), unless it is still sending a body.
                    let o = &mut self.sides[side.other().idx()];
                    if o.state == State::Head && o.buf.is_empty() {
                        o.state = State::Switched(to);
                    }
                    return MsgStep::Switch(to);
                }
                if req.connect && st >= 200 {
                    if st < 300 {
                        self.report.upgrade = Some("tunnel".into());
                        return MsgStep::Switch(SwitchTo::Tunnel);
                    }
                    // Refused (e.g. 407): no tunnel after all; the client may retry.
                    if self.report.upgrade.as_deref() == Some("tunnel") {
                        self.report.upgrade = None;
                    }
                }
                // RFC 9112 §6.3: no body for HEAD, 1xx, 204, 304; otherwise chunked, length, or
                // until the connection closes.
                let framing = if (100..200).contains(&st) || st == 204 || st == 304 || req.head {
                    Framing::None
                } else if chunked {
                    Framing::Chunked
                } else if other_coding {
                    Framing::UntilClose
                } else {
                    match length {
                        Some(Some(n)) => Framing::Length(n),
                        _ => Framing::UntilClose,
                    }
                };
                self.set_framing(s, framing)
            }
        }
    }

    fn set_framing(&mut self, s: usize, f: Framing) -> MsgStep {
        self.sides[s].state = match f {
            Framing::None | Framing::Length(0) => State::Head,
            Framing::Length(n) => State::Body(n),
            Framing::Chunked => State::Chunked(CHUNK_START),
            Framing::UntilClose => return MsgStep::Stop,
        };
        MsgStep::Continue
    }

    fn store_headers(&self, hs: &[(&[u8], &[u8])]) -> Headers {
        let bytes = hs.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut b = HeadersBuilder::with_capacity(hs.len(), bytes);
        for (n, v) in hs {
            b.mark(header_marks(n));
            if !self.cfg.show_secrets && is_secret_header(n) {
                b.push(n, format!("<redacted {} bytes>", v.len()).as_bytes());
            } else {
                b.push(n, v);
            }
        }
        b.finish()
    }

    /// The complete lines of a partial head of `side`, when they start a message of its role.
    ///
    /// A request line cut before its end (a long target, as in exploit traffic) counts as a whole
    /// when it already probes as one: the method and the start of the target are what matter.
    fn partial_head(&self, side: Side) -> Option<&[u8]> {
        let st = &self.sides[side.idx()];
        if st.state != State::Head || st.buf.is_empty() {
            return None;
        }
        let lines = match st.buf.iter().rposition(|&b| b == b'\n') {
            Some(nl) => &st.buf[..=nl],
            None => &st.buf[..],
        };
        (probe_start(self.role(side), lines) == Probe::Match).then_some(lines)
    }

    /// Records a head cut short (by a gap or the end of the capture) from its complete lines.
    fn record_partial(&mut self, side: Side) {
        let Some(lines) = self.partial_head(side) else { return };
        let lines = lines.to_vec();
        let _ = self.message(side, &lines);
        self.warn("http: message head cut short by missing bytes");
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

    /// Final facts. Requests are attributed to the side that sent them, whatever `client` says.
    /// A head still incomplete (capture ended, HTTP/0.9 request without a blank line) is
    /// included from its complete lines.
    pub fn finish(&self, _client: Side) -> HttpReport {
        if [Side::A, Side::B].iter().all(|&s| self.partial_head(s).is_none()) {
            return self.report.clone();
        }
        self.clone().into_report().0
    }

    /// The same facts, moved out of a session that is over (no copy of the recorded heads),
    /// with the warnings not yet taken (a head cut short by the end of the capture adds one).
    pub fn into_report(mut self) -> (HttpReport, Vec<String>) {
        for s in [Side::A, Side::B] {
            self.record_partial(s);
        }
        (self.report, self.warnings)
    }
}

/// Is a header's value a credential (redacted by default)? `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name containing `token`, `secret`,
/// `password`, `passwd`, `api-key`, `api_key`, `apikey` or `session` (case-insensitive).
pub fn is_secret_header(name: &[u8]) -> bool {
    // First, whether the name has all the letters of one of the names or parts: most names
    // (host, content-type, x-request-id, ...) lack one of each and are done after one table
    // lookup per byte.
    let mut letters = 0u32;
    for &b in name {
        letters |= LETTER[b as usize];
    }
    if SECRET_LETTERS.iter().all(|&need| need & !letters != 0) {
        return false;
    }
    const EXACT: [&[u8]; 4] = [b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"];
    if EXACT.iter().any(|e| e.len() == name.len() && e.eq_ignore_ascii_case(name)) {
        return true;
    }
    // This runs for every header of every message: one pass, comparing a part only where its
    // first letter is (lower-casing the name first, then trying every part at each of those
    // letters, was still 2% of the benchmark's time).
    let at =
        |rest: &[u8], part: &[u8]| rest.len() >= part.len() && rest[..part.len()].eq_ignore_ascii_case(part);
    (0..name.len().saturating_sub(4)).any(|i| {
        let rest = &name[i..];
        match name[i] | 0x20 {
            b't' => at(rest, b"token"),
            b's' => at(rest, b"secret") || at(rest, b"session"),
            b'p' => at(rest, b"password") || at(rest, b"passwd"),
            b'a' => at(rest, b"api-key") || at(rest, b"api_key") || at(rest, b"apikey"),
            _ => false,
        }
    })
}

/// Bit `c - 'a'` for an ASCII letter `c` of either case, 0 for any other byte.
static LETTER: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 0;
    while c < 26 {
        t[b'a' as usize + c] = 1 << c;
        t[b'A' as usize + c] = 1 << c;
        c += 1;
    }
    t
};

/// The letters of each name or part [`is_secret_header`] looks for (a name that has those of
/// `proxy-authorization` or `set-cookie` has those of `authorization` or `cookie`).
static SECRET_LETTERS: [u32; 8] = {
    const fn letters(s: &[u8]) -> u32 {
        let mut m = 0;
        let mut i = 0;
        while i < s.len() {
            if s[i].is_ascii_lowercase() {
                m |= 1 << (s[i] - b'a');
            }
            i += 1;
        }
        m
    }
    [
        letters(b"authorization"), // and proxy-authorization
        letters(b"cookie"),        // and set-cookie
        letters(b"token"),
        letters(b"secret"),
        letters(b"password"),
        letters(b"passwd"),
        letters(b"apikey"), // and api-key, api_key
        letters(b"session"),
    ]
};

/// `bytes` with the value of every `Name: value` line whose name is a credential header
/// replaced by `<redacted>`: for previews of unrecognised streams (a non-HTTP method, a cut
/// head) that may still carry `Authorization:` or `Cookie:` lines.
pub fn redact_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let colon = line.iter().position(|&b| b == b':');
        match colon {
            Some(c) if is_secret_header(trim(&line[..c])) => {
                out.extend_from_slice(&line[..=c]);
                out.extend_from_slice(b" <redacted>");
                if line.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                } else if line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Content-Length from all its fields: None when absent, Some(None) when invalid, too large or
/// inconsistent (RFC 9110 §8.6 allows a list of identical values).
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Option<u64>> {
    let mut found: Option<Option<u64>> = None;
    for v in values {
        for t in v.split(|&b| b == b',') {
            let n = std::str::from_utf8(trim(t)).ok().filter(|t| t.bytes().all(|c| c.is_ascii_digit()));
            let n = n.and_then(|t| t.parse::<u64>().ok());
            found = match (found, n) {
                (None, n) => Some(n),
                (Some(Some(a)), Some(b)) if a == b => Some(Some(a)),
                _ => Some(None),
            };
        }
    }
    found
}

/// The first token of an `Upgrade` value, lowercase; `unknown` when it is not a plain token.
fn upgrade_token(v: &[u8]) -> String {
    let t = trim(v.split(|&b| b == b',').next().unwrap_or_default());
    if t.is_empty() || t.len() > MAX_UPGRADE_TOKEN || !t.iter().all(|&c| is_tchar(c) || c == b'/') {
        return "unknown".into();
    }
    t.iter().map(|c| c.to_ascii_lowercase() as char).collect()
}

/// End (exclusive) of a header block: after `\r\n\r\n` or `\n\n`, searching from `from`.
fn head_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // memchr: the byte-at-a-time search was a third of the classifier's own time (`perf`).
    while let Some(p) = memchr::memchr(b'\n', b.get(i..)?) {
        let nl = i + p;
        match b.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if b.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

fn either(a: Probe, b: Probe) -> Probe {
    if a == Probe::Match || b == Probe::Match {
        Probe::Match
    } else if a == Probe::NeedMore || b == Probe::NeedMore {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// Does `b` start a message of `role` (either kind while the roles are unknown)?
fn probe_start(role: Option<Role>, b: &[u8]) -> Probe {
    match role {
        Some(Role::Requests) => probe_loose_request(b),
        Some(Role::Responses) => probe_response(b),
        None => either(probe_loose_request(b), probe_response(b)),
    }
}

fn classify_start(role: Option<Role>, b: &[u8]) -> Start {
    if role != Some(Role::Responses) {
        match is_h2_preface(b) {
            Probe::Match => return Start::Preface,
            Probe::NeedMore => return Start::Wait,
            Probe::NoMatch => {}
        }
    }
    match probe_start(role, b) {
        Probe::NoMatch => Start::Garbage,
        p => Start::Message { confirmed: p == Probe::Match },
    }
}

/// Parses a complete head with httparse, falling back to our own line parser.
fn parse_head(block: &[u8], response: bool) -> Option<Head<'_>> {
    let mut cfg = httparse::ParserConfig::default();
    cfg.allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_space_before_first_header_name(true);
    // Left uninitialised: httparse initialises what it fills (zeroing 128 slots, 4 KiB, for
    // every message was a seventh of this function's time).
    let mut hdrs = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    if response {
        let mut r = httparse::Response::new(&mut []);
        if let (Ok(httparse::Status::Complete(_)), Some(status)) =
            (cfg.parse_response_with_uninit_headers(&mut r, block, &mut hdrs), r.code)
        {
            return Some(Head {
                request: None,
                status,
                reason: r.reason.map(str::as_bytes).unwrap_or_default(),
                version: r.version,
                headers: r.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect(),
                truncated_headers: false,
            });
        }
    } else {
        let mut r = httparse::Request::new(&mut []);
        if let (Ok(httparse::Status::Complete(_)), Some(method), Some(path)) =
            (cfg.parse_request_with_uninit_headers(&mut r, block, &mut hdrs), r.method, r.path)
        {
            return Some(Head {
                request: Some((method.as_bytes(), path.as_bytes())),
                status: 0,
                reason: b"",
                version: r.version,
                headers: r.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect(),
                truncated_headers: false,
            });
        }
    }
    parse_head_lenient(block, response)
}

/// [`Headers::marks`] bit: the message has an `x-envoy-*` field (Envoy sent it).
pub const MARK_ENVOY: u8 = 1;
/// [`Headers::marks`] bit: the message has a field Istio's report reads
/// (`x-envoy-peer-metadata`, `x-envoy-peer-metadata-id`, `x-forwarded-client-cert`).
pub const MARK_ISTIO: u8 = 2;

/// The [`Headers::marks`] bits of a field named `name`.
pub fn header_marks(name: &[u8]) -> u8 {
    if name.len() < 8 || !name[..2].eq_ignore_ascii_case(b"x-") {
        return 0;
    }
    let mut m = 0;
    if name[..8].eq_ignore_ascii_case(b"x-envoy-") && name.len() > 8 {
        m |= MARK_ENVOY;
    }
    if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata")
        || name.eq_ignore_ascii_case(b"x-envoy-peer-metadata-id")
        || name.eq_ignore_ascii_case(b"x-forwarded-client-cert")
    {
        m |= MARK_ISTIO;
    }
    m
}

/// Our own parser for what httparse rejects: HTTP/0.9 lines, too many headers, spaces before a
/// colon, folded lines, odd bytes. Keeps every line with a colon; a line starting with a space
/// or tab continues the previous value (obs-fold, RFC 9112 §5.2), kept raw.
fn parse_head_lenient(block: &[u8], response: bool) -> Option<Head<'_>> {
    let mut at = 0;
    // Next line as (start, end) without its line ending.
    let mut next_line = || {
        if at >= block.len() {
            return None;
        }
        let start = at;
        let nl = memchr::memchr(b'\n', &block[at..]).map_or(block.len(), |p| at + p);
        at = nl + 1;
        let end = if nl > start && block[nl - 1] == b'\r' { nl - 1 } else { nl };
        Some((start, end))
    };
    let (_, first_end) = next_line()?;
    let first = &block[..first_end];
    let mut parts = first.split(|&b| b == b' ' || b == b'\t').filter(|p| !p.is_empty());
    let a = parts.next()?;
    let b = parts.next().unwrap_or_default();
    let rest = match parts.next() {
        Some(r) => trim(&first[r.as_ptr() as usize - first.as_ptr() as usize..]),
        None => &[],
    };
    let version_of = |v: &[u8]| match v {
        b"HTTP/1.0" => Some(0),
        b"HTTP/1.1" => Some(1),
        _ => None,
    };
    let (request, status, reason, version) = if response {
        if !a.starts_with(b"HTTP/1.") || b.len() != 3 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let status = b.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        (None, status, rest, version_of(a))
    } else {
        if !a.iter().all(|&c| is_tchar(c)) {
            return None;
        }
        (Some((a, b)), 0, &b""[..], version_of(rest))
    };
    // (name, value start, value end) in `block`.
    let mut fields: Vec<(&[u8], usize, usize)> = Vec::new();
    let mut truncated = false;
    while let Some((start, end)) = next_line() {
        let line = &block[start..end];
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = fields.last_mut() {
                if trim(line).is_empty() {
                    continue;
                }
                last.2 = start + line.trim_ascii_end().len();
                continue;
            }
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else { continue };
        if fields.len() == MAX_HEADERS {
            truncated = true;
            break;
        }
        let value = trim(&line[colon + 1..]);
        let vstart = value.as_ptr() as usize - block.as_ptr() as usize;
        fields.push((trim(&line[..colon]), vstart, vstart + value.len()));
    }
    let headers = fields.into_iter().map(|(n, s, e)| (n, &block[s..e])).collect();
    Some(Head { request, status, reason, version, headers, truncated_headers: truncated })
}

/// Offset of the first line start (after `\n`) in `data` that begins a request or status line
/// (HTTP found in a stream that did not start with it).
pub fn resync_offset(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\n', data.get(i..)?) {
        let start = i + p + 1;
        let rest = data.get(start..)?;
        if rest.is_empty() {
            return None;
        }
        if probe_request(rest) == Probe::Match || probe_response(rest) == Probe::Match {
            return Some(start);
        }
        i = start;
    }
    None
}

/// Methods of RFC 9110 and the WebDAV/CalDAV family, trusted by the probes.
const KNOWN_METHODS: [&[u8]; 24] = [
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKCALENDAR",
    b"ACL",
    b"BIND",
    b"PURGE",
    b"LINK",
    b"UNLINK",
];

/// Can `t` begin a request target (origin `/`, asterisk `*`, absolute `http://`, authority
/// `host:port` or `[v6]:port`)?
fn is_target_start(t: u8) -> bool {
    t == b'/' || t == b'*' || t == b'[' || t.is_ascii_alphanumeric()
}

/// Does `data` start with an HTTP/1 request line, or the HTTP/2 preface?
///
/// A request line is a method token, a space, a request target and ` HTTP/x.y` (RFC 9112 §3).
/// Text protocols that share the shape of a command line — Redis inline commands (`GET key`),
/// SMTP (`EHLO host`), IMAP, memcached — never end their line in a version, so they are not
/// HTTP. Looser lines (HTTP/0.9 `GET /path`, a bare method, a malformed version: scanners send
/// them) are HTTP only when the other side answers with a status line: the classifier holds
/// them with [`probe_loose_request`]. The line is decided once it ends;
/// a known method with an origin-form or absolute target whose line runs past
/// [`LONG_TARGET_LINE`] bytes (a long URL) is taken without waiting for the version.
pub fn probe_request(data: &[u8]) -> Probe {
    let n = match method_token(data) {
        Ok(n) => n,
        Err(p) => return p,
    };
    if n == 0 || data[n] != b' ' {
        return Probe::NoMatch;
    }
    // httparse accepts several spaces between the parts of the request line (as we ask it to).
    let Some(&t) = data[n..].iter().take(MAX_PROBE_LINE).find(|&&c| c != b' ') else {
        return if data.len() < MAX_PROBE_LINE { Probe::NeedMore } else { Probe::NoMatch };
    };
    let known = KNOWN_METHODS.contains(&&data[..n]);
    if !is_target_start(t) {
        return Probe::NoMatch;
    }
    let window = &data[..data.len().min(MAX_PROBE_LINE)];
    let Some(nl) = memchr::memchr(b'\n', window) else {
        return if known && (t == b'/' || t.is_ascii_alphabetic()) && data.len() >= LONG_TARGET_LINE {
            Probe::Match
        } else if data.len() < MAX_PROBE_LINE {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    let line = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
    let rest = line[n..].trim_ascii_start();
    match rest.iter().rposition(|&c| c == b' ') {
        // `METHOD TARGET HTTP/x.y`: the last word is the version (extra spaces before it, as
        // httparse allows, are part of the gap).
        Some(sp) if is_http_version(&rest[sp + 1..]) && rest[..sp].iter().any(|&c| c != b' ') => Probe::Match,
        // Without a version (HTTP/0.9 `GET /path`, or a Redis inline `GET /key`): only
        // `probe_loose_request`, which needs an answering status line, takes it.
        _ => Probe::NoMatch,
    }
}

/// Does `data`, a server's first bytes, look like an HTTP/0.9 answer (an HTML document with
/// no status line)?
pub fn is_http09_body(data: &[u8]) -> bool {
    let t = data.trim_ascii_start();
    t.len() >= 5 && (t[..5].eq_ignore_ascii_case(b"<!doc") || t[..5].eq_ignore_ascii_case(b"<html"))
}

/// The length of the method token that starts `data` (capitals, digits, `_`, `-`), or the
/// probe's answer when there is none to look at: the HTTP/2 preface (or its start), too short
/// to tell, or too long a token.
fn method_token(data: &[u8]) -> Result<usize, Probe> {
    let preface = is_h2_preface(data);
    if preface != Probe::NoMatch {
        return Err(preface);
    }
    let tok_len = data
        .iter()
        .take(MAX_METHOD_LEN + 1)
        .position(|&c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-'));
    match tok_len {
        Some(n) => Ok(n),
        None if data.len() <= MAX_METHOD_LEN => Err(Probe::NeedMore),
        None => Err(Probe::NoMatch),
    }
}

/// Is `v` an HTTP version token `HTTP/d.d`?
fn is_http_version(v: &[u8]) -> bool {
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit())
}

/// Does `data` start the next request of a stream already known to be HTTP (or the HTTP/2
/// preface)? More lenient than [`probe_request`], which decides that a stream is HTTP at all:
///
/// A known method must be followed by a space and the start of a target (`/`, `*`, a letter or
/// digit), or end its line (a bare method line, HTTP/0.9 style); another uppercase token (like
/// `CCM_POST`) counts when a `/` target follows, or when its line ends in ` HTTP/1.x`.
pub(crate) fn probe_loose_request(data: &[u8]) -> Probe {
    let n = match method_token(data) {
        Ok(n) => n,
        Err(p) => return p,
    };
    if n == 0 {
        return Probe::NoMatch;
    }
    let known = KNOWN_METHODS.contains(&&data[..n]);
    if known && (data[n] == b'\r' || data[n] == b'\n') {
        return Probe::Match; // a bare method line (HTTP/0.9 style, seen from scanners)
    }
    if data[n] != b' ' {
        return Probe::NoMatch;
    }
    let Some(&t) = data.get(n + 1) else { return Probe::NeedMore };
    if known {
        return if is_target_start(t) { Probe::Match } else { Probe::NoMatch };
    }
    if n >= 3 && t == b'/' {
        return Probe::Match; // another method token with an origin-form target (`CCM_POST /`)
    }
    match memchr::memchr(b'\n', &data[..data.len().min(MAX_PROBE_LINE)]) {
        Some(nl) => {
            let line = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
            if line.len() >= 9 && line[line.len() - 9..].starts_with(b" HTTP/1.") {
                Probe::Match
            } else {
                Probe::NoMatch
            }
        }
        None if data.len() < MAX_PROBE_LINE => Probe::NeedMore,
        None => Probe::NoMatch,
    }
}

/// Strict probe used after a gap: a known method, a space and a target start, or a status line.
/// Decided within `MAX_KNOWN_METHOD_LEN + 2` (or 12) bytes, below [`RESYNC_CARRY`].
fn probe_resync(data: &[u8]) -> Probe {
    let request = match data.iter().take(MAX_KNOWN_METHOD_LEN + 1).position(|c| !c.is_ascii_uppercase()) {
        None if data.len() <= MAX_KNOWN_METHOD_LEN && KNOWN_METHODS.iter().any(|m| m.starts_with(data)) => {
            Probe::NeedMore
        }
        None => Probe::NoMatch,
        Some(n) if data[n] == b' ' && KNOWN_METHODS.contains(&&data[..n]) => match data.get(n + 1) {
            None => Probe::NeedMore,
            Some(&t) if is_target_start(t) => Probe::Match,
            Some(_) => Probe::NoMatch,
        },
        Some(_) => Probe::NoMatch,
    };
    either(request, probe_response(data))
}

/// Does `data` start with an HTTP/1 status line (`HTTP/1.x NNN`)?
pub fn probe_response(data: &[u8]) -> Probe {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = data.len().min(PREFIX.len());
    if data[..n] != PREFIX[..n] {
        return Probe::NoMatch;
    }
    let Some(rest) = data.get(PREFIX.len()..) else { return Probe::NeedMore };
    let pattern: [fn(u8) -> bool; 5] = [
        |c| c.is_ascii_digit(),
        |c| c == b' ',
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_digit(),
    ];
    for (i, ok) in pattern.iter().enumerate() {
        match rest.get(i) {
            None => return Probe::NeedMore,
            Some(&c) if !ok(c) => return Probe::NoMatch,
            _ => {}
        }
    }
    Probe::Match
}

/// Does `data` start with the HTTP/2 connection preface (RFC 9113 §3.4)?
pub fn is_h2_preface(data: &[u8]) -> Probe {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let n = data.len().min(PREFACE.len());
    if data[..n] != PREFACE[..n] {
        Probe::NoMatch
    } else if n < PREFACE.len() {
        Probe::NeedMore
    } else {
        Probe::Match
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HttpConfig {
        HttpConfig { show_secrets: false, max_header_bytes: 64 * 1024, max_messages: 100 }
    }

    /// Feeds the messages in order, each whole or one byte per call.
    fn run(msgs: &[(Side, &[u8])], bytewise: bool) -> (HttpSession, Vec<HttpFeed>) {
        let mut h = HttpSession::new(cfg());
        let mut feeds = Vec::new();
        for &(side, m) in msgs {
            if bytewise {
                for b in m.chunks(1) {
                    feeds.push(h.feed(side, b));
                }
            } else {
                feeds.push(h.feed(side, m));
            }
        }
        (h, feeds)
    }

    fn json(h: &HttpSession) -> String {
        serde_json::to_string(&h.finish(Side::A)).unwrap()
    }

    fn paths(h: &HttpSession) -> Vec<String> {
        h.report.requests.iter().map(|r| String::from_utf8_lossy(r.path.as_bytes()).into_owned()).collect()
    }

    fn statuses(h: &HttpSession) -> Vec<u16> {
        h.report.responses.iter().map(|r| r.status).collect()
    }

    fn header_names(headers: &Headers) -> Vec<String> {
        headers.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect()
    }

    const KEEPALIVE: [(Side, &[u8]); 4] = [
        (Side::A, b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nx-request-id: abc\r\n\r\n"),
        (Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        (Side::A, b"POST /ratings/1 HTTP/1.1\r\nHost: ratings\r\nContent-Length: 4\r\n\r\n{\"a\"GET"),
        (Side::B, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n"),
    ];

    #[test]
    fn keepalive_content_length_and_chunked_whole_or_bytewise() {
        for bytewise in [false, true] {
            let (h, feeds) = run(&KEEPALIVE, bytewise);
            assert!(feeds.iter().all(|f| *f == HttpFeed::More), "bytewise={bytewise}");
            assert_eq!(paths(&h), ["/reviews/0", "/ratings/1"], "bytewise={bytewise}");
            assert_eq!(statuses(&h), [200, 201]);
            let r = &h.report.requests[0];
            assert_eq!(r.host.as_ref().unwrap().as_bytes(), b"reviews:9080");
            assert_eq!(r.headers.get(1).unwrap().0, b"x-request-id");
            assert_eq!(r.version, Some("HTTP/1.1"));
            assert_eq!(h.client_side(), Some(Side::A));
            // The body "{\"a\"" was skipped; the trailing "GET" waits as a partial head.
            assert_eq!(h.report.requests_total, 2);
            assert_eq!(h.report.responses_total, 2);
        }
    }

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
    fn chunked_response_fed_byte_by_byte_gives_the_same_report() {
        let msgs: [(Side, &[u8]); 2] = [
            (Side::A, b"GET /c HTTP/1.1\r\nHost: c\r\n\r\n"),
            (
                Side::B,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nX-A: 1\r\n\r\n5;ext=\"v\"\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer-X: y\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            ),
        ];
        let (whole, _) = run(&msgs, false);
        let (bytewise, _) = run(&msgs, true);
        assert_eq!(statuses(&whole), [200, 204]);
        assert_eq!(json(&whole), json(&bytewise));
        assert!(whole.warnings.is_empty() && bytewise.warnings.is_empty());
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
    fn secrets_are_redacted_unless_asked() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-t0ken\r\nCookie: session=abc123\r\nX-Auth-Token: tok999\r\nX-Api-Key: k3y\r\nUser-Agent: curl\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=c00kie\r\nContent-Length: 0\r\n\r\n";
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = json(&h);
        for secret in ["s3cr3t", "abc123", "tok999", "k3y", "c00kie"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert!(json.contains(r#"["Authorization","<redacted 19 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Cookie","<redacted 14 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["X-Auth-Token","<redacted 6 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Set-Cookie","<redacted 10 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["User-Agent","curl"]"#));
        let mut h = HttpSession::new(HttpConfig { show_secrets: true, ..cfg() });
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = serde_json::to_string(&h.finish(Side::A)).unwrap();
        for secret in ["s3cr3t-t0ken", "session=abc123", "tok999", "k3y", "sid=c00kie"] {
            assert!(json.contains(secret), "{secret} missing: {json}");
        }
        assert!(!json.contains("redacted"));
    }

    #[test]
    fn secret_header_names() {
        for n in [
            "authorization",
            "PROXY-AUTHORIZATION",
            "Cookie",
            "set-cookie",
            "X-CSRF-Token",
            "x-api-key",
            "Apikey",
            "X-Session-Id",
            "db_password",
            "X-Passwd",
            "client-secret",
            "api_key",
        ] {
            assert!(is_secret_header(n.as_bytes()), "{n}");
        }
        for n in ["Host", "Content-Length", "Accept", "Cookie2", "Authorization-Hint", "Upgrade"] {
            assert!(!is_secret_header(n.as_bytes()), "{n}");
        }
        // Names longer than the lower-casing buffer take the slow path, same answers.
        let long = format!("X-{}-TOKEN", "a".repeat(80));
        assert!(is_secret_header(long.as_bytes()));
        assert!(!is_secret_header(format!("X-{}", "a".repeat(80)).as_bytes()));
    }

    #[test]
    fn header_marks_match_their_definitions() {
        let names = [
            "x-envoy-peer-metadata",
            "X-Envoy-Peer-Metadata-ID",
            "x-forwarded-client-cert",
            "X-FORWARDED-CLIENT-CERT",
            "x-envoy-",
            "x-envoy-a",
            "x-envoy-upstream-service-time",
            "x-envoy",
            "x-forwarded-client-certs",
            "x-envoy-peer-metadata-i",
            "y-envoy-attempt-count",
            "host",
            "",
            "x-",
        ];
        for n in names {
            let l = n.to_ascii_lowercase();
            let envoy = l.len() > 8 && l.starts_with("x-envoy-");
            let istio = ["x-envoy-peer-metadata", "x-envoy-peer-metadata-id", "x-forwarded-client-cert"]
                .contains(&l.as_str());
            let want = if envoy { MARK_ENVOY } else { 0 } | if istio { MARK_ISTIO } else { 0 };
            assert_eq!(header_marks(n.as_bytes()), want, "{n}");
        }
    }

    #[test]
    fn secret_header_check_matches_the_plain_definition() {
        // Reference: lower-case, then exact names or a part anywhere.
        let reference = |n: &[u8]| {
            let l = n.to_ascii_lowercase();
            ["authorization", "proxy-authorization", "cookie", "set-cookie"].iter().any(|e| l == e.as_bytes())
                || ["token", "secret", "password", "passwd", "api-key", "api_key", "apikey", "session"]
                    .iter()
                    .any(|p| l.windows(p.len()).any(|w| w == p.as_bytes()))
        };
        let pieces = [
            "",
            "x-",
            "TOK",
            "token",
            "Tokens",
            "SeSSion",
            "sess",
            "api",
            "-key",
            "_KEY",
            "key",
            "Cookie",
            "set-",
            "authorization",
            "proxy-",
            "passw",
            "d",
            "ord",
            "secre",
            "t",
            "\u{e9}",
            "\x00",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let n = format!("{a}{b}{c}");
                    assert_eq!(is_secret_header(n.as_bytes()), reference(n.as_bytes()), "{n:?}");
                }
            }
        }
    }

    #[test]
    fn header_order_and_duplicates_are_preserved() {
        let req = b"GET / HTTP/1.1\r\nZ: 1\r\nHost: first\r\nA: 2\r\nz: 3\r\nHost: second\r\nM: \r\n\r\n";
        let (h, _) = run(&[(Side::A, req)], false);
        let r = &h.report.requests[0];
        assert_eq!(header_names(&r.headers), ["Z", "Host", "A", "z", "Host", "M"]);
        assert_eq!(r.headers.get(3).unwrap().1, b"3");
        assert_eq!(r.headers.get(5).unwrap().1, b"");
        assert_eq!(r.host.as_ref().unwrap().as_bytes(), b"first");
    }

    #[test]
    fn odd_request_headers_fall_back_to_the_line_parser() {
        let req = b"GET /x HTTP/1.1\r\nHost : spaced\r\nX-Fold: a\r\n  b\r\nBad\x01: c\r\nno colon line\r\nLast: 1\r\n\r\n";
        let (h, feeds) = run(&[(Side::A, req)], false);
        assert_eq!(feeds, [HttpFeed::More]);
        let r = &h.report.requests[0];
        assert_eq!(header_names(&r.headers), ["Host", "X-Fold", "Bad\u{1}", "Last"]);
        assert_eq!(r.headers.get(1).unwrap().1, b"a\r\n  b");
        assert_eq!(r.host.as_ref().unwrap().as_bytes(), b"spaced");
        assert_eq!(r.version, Some("HTTP/1.1"));
    }

    #[test]
    fn absolute_form_and_http10() {
        let (h, _) = run(
            &[
                (Side::A, b"GET http://example.com/a?b=c HTTP/1.0\r\nHost: example.com\r\n\r\n"),
                (Side::B, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            ],
            false,
        );
        assert_eq!(paths(&h), ["http://example.com/a?b=c"]);
        assert_eq!(h.report.requests[0].version, Some("HTTP/1.0"));
        assert_eq!(h.report.version, Some("HTTP/1.0"));
    }

    #[test]
    fn gap_resyncs_on_next_request() {
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial");
        h.gap(Side::A);
        h.feed(Side::A, b"ody tail\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(paths(&h), ["/a", "/b"]);
    }

    #[test]
    fn gap_resync_finds_a_line_cut_by_chunk_boundaries() {
        let after_gap: &[u8] = b"tail of a body GET / no\r\nHTTP/1.1 is not a line start here\r\nGET /next HTTP/1.1\r\nHost: n\r\n\r\n";
        for k in 0..=after_gap.len() {
            let mut h = HttpSession::new(cfg());
            h.feed(Side::A, b"POST /a HTTP/1.1\r\nContent-Length: 1000\r\n\r\nxx");
            h.gap(Side::A);
            h.feed(Side::A, &after_gap[..k]);
            h.feed(Side::A, &after_gap[k..]);
            assert_eq!(paths(&h), ["/a", "/next"], "split at {k}");
        }
        for bytewise in [false, true] {
            let mut h = HttpSession::new(cfg());
            h.feed(Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxx");
            h.gap(Side::B);
            // A segment after the gap that starts right at a message.
            let next = b"HTTP/1.1 304 Not Modified\r\n\r\n";
            for c in next.chunks(if bytewise { 1 } else { next.len() }) {
                assert_eq!(h.feed(Side::B, c), HttpFeed::More);
            }
            assert_eq!(statuses(&h), [200, 304], "bytewise={bytewise}");
        }
    }

    #[test]
    fn head_cut_by_a_gap_is_recorded_from_its_complete_lines() {
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET /cut HTTP/1.1\r\nHost: example\r\nUser-Ag");
        h.gap(Side::A);
        assert_eq!(paths(&h), ["/cut"]);
        let r = &h.report.requests[0];
        assert_eq!(r.host.as_ref().unwrap().as_bytes(), b"example");
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn request_line_cut_by_a_gap_before_its_end_is_recorded() {
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"SEARCH /AAAAAAAAAAAAAAAA");
        h.gap(Side::A);
        assert_eq!(paths(&h), ["/AAAAAAAAAAAAAAAA"]);
        assert_eq!(h.report.requests[0].method.as_bytes(), b"SEARCH");
        assert!(h.take_warnings()[0].contains("cut short"));
        // A bare prefix is dropped silently.
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET / HTTP/1.1\r\n\r\nGE");
        h.gap(Side::A);
        assert_eq!(paths(&h), ["/"]);
    }

    #[test]
    fn finish_includes_a_head_still_waiting_for_its_blank_line() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, b"GET /old\r\n"), HttpFeed::More);
        assert!(h.saw_http());
        let report = h.finish(Side::A);
        assert_eq!(report.requests.len(), 1);
        assert_eq!(report.requests[0].path.as_bytes(), b"/old");
        assert_eq!(report.requests[0].version, None);
        // A mere prefix is not a message; a request line cut in its target is.
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET ");
        assert!(!h.saw_http());
        assert_eq!(h.finish(Side::A).requests_total, 0);
        h.feed(Side::A, b"/AAAA");
        assert!(h.saw_http());
        assert_eq!(h.finish(Side::A).requests[0].path.as_bytes(), b"/AAAA");
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
    fn header_block_over_the_limit_stops_whole_or_bytewise() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(&[b'a'; 100]);
        req.extend_from_slice(b": x\r\n\r\n");
        for bytewise in [false, true] {
            let mut h = HttpSession::new(HttpConfig { max_header_bytes: 64, ..cfg() });
            let mut last = HttpFeed::More;
            for c in req.chunks(if bytewise { 1 } else { req.len() }) {
                last = h.feed(Side::A, c);
            }
            assert_eq!(last, HttpFeed::Done, "bytewise={bytewise}");
            assert!(h.warnings[0].contains("longer than 64"));
            assert!(h.buffered() == 0);
        }
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
    fn http09_and_unknown_methods() {
        let (h, _) = run(&[(Side::A, b"GET /old\r\n\r\n")], false);
        assert_eq!(paths(&h), ["/old"]);
        assert_eq!(h.report.requests[0].version, None);
        assert_eq!(probe_request(b"CCM_POST /x HTTP/1.1\r\n"), Probe::Match);
        assert_eq!(probe_request(b"CCM_POST /x"), Probe::NeedMore);
        assert_eq!(probe_request(b"CCM_POST *"), Probe::NeedMore);
        assert_eq!(probe_request(b"SSH-2.0-OpenSSH\r\n"), Probe::NoMatch);
        // A bare method line, or a method without a version, is not HTTP (Redis inline
        // commands, SMTP, IMAP share that shape); only `GET /…` may omit the version.
        assert_eq!(probe_request(b"OPTIONS\nHost: x\n\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"GET\r\n$3\r\nfoo\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"GET foo\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"SET /a 1\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"EHLO client.example.test\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"DELETE /x HTTP/2.0 extra\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"CCM_POST /HTTP/1.1\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"GET /x HTTP/1.1\r\n"), Probe::Match);
        assert_eq!(probe_request(b"PUT  /x  HTTP/1.0\n"), Probe::Match);
        assert_eq!(probe_request(b"CONNECT reviews:9080 HTTP/1.1\r\n"), Probe::Match);
        assert_eq!(probe_request(b"GET /x HTTP/1.1"), Probe::NeedMore);
        let long = [&b"GET /"[..], &[b'a'; LONG_TARGET_LINE][..]].concat();
        assert_eq!(probe_request(&long), Probe::Match);
        assert_eq!(probe_request(&long[..LONG_TARGET_LINE - 1]), Probe::NeedMore);
        let (h, _) = run(&[(Side::A, b"GET /HTTP/1.1\nHost: g\n\n")], false);
        assert_eq!((paths(&h), h.report.requests[0].version), (vec!["/HTTP/1.1".to_string()], None));
        assert_eq!(probe_request(b"GE"), Probe::NeedMore);
        assert_eq!(probe_request(b"GET"), Probe::NeedMore);
        assert_eq!(probe_request(b"GET "), Probe::NeedMore);
        assert_eq!(probe_request(b"GET http://x/ HTTP/1.1\r\n"), Probe::Match);
        assert_eq!(probe_request(b"get / HTTP/1.1"), Probe::NoMatch);
        assert_eq!(probe_response(b"HTTP/1.1 200 OK"), Probe::Match);
        assert_eq!(probe_response(b"HTTP/1"), Probe::NeedMore);
        assert_eq!(probe_response(b"HTTP/2 200"), Probe::NoMatch);
        assert_eq!(is_h2_preface(b"PRI * HTTP/2.0\r\n"), Probe::NeedMore);
    }

    #[test]
    fn resync_probe_is_strict_and_decided_within_the_carry() {
        assert_eq!(probe_resync(b"MKCALENDAR /"), Probe::Match);
        assert_eq!(probe_resync(b"MKCALENDAR "), Probe::NeedMore);
        assert_eq!(probe_resync(b"CCM_POST / HTTP/1.1"), Probe::NoMatch);
        assert_eq!(probe_resync(b"GETX / HTTP/1.1"), Probe::NoMatch);
        assert_eq!(probe_resync(b"HTTP/1.1 20"), Probe::NeedMore);
        assert_eq!(KNOWN_METHODS.iter().map(|m| m.len()).max(), Some(MAX_KNOWN_METHOD_LEN));
        assert!(MAX_KNOWN_METHOD_LEN + 2 < RESYNC_CARRY && b"HTTP/1.1 200".len() < RESYNC_CARRY);
    }

    #[test]
    fn too_many_headers_keeps_the_first() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            req.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let (h, _) = run(&[(Side::A, &req)], false);
        assert_eq!(h.report.requests[0].headers.len(), MAX_HEADERS);
        assert_eq!(h.report.requests[0].headers.get(127).unwrap().0, b"h127");
        assert!(h.warnings[0].contains("more than 128"));
    }

    #[test]
    fn json_keys_are_always_present() {
        let (h, _) = run(&[(Side::A, b"GET /x\r\n\r\n")], false);
        let v: serde_json::Value = serde_json::from_str(&json(&h)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": null,
                "requests": [{"method": "GET", "path": "/x", "version": null, "host": null, "headers": []}],
                "responses": [],
                "requests_total": 1,
                "responses_total": 0,
                "upgrade": null
            })
        );
    }
}

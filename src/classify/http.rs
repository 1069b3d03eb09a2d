//! HTTP/1.x over reassembled streams: every request and response head (all headers, in order),
//! bodies skipped by their framing without buffering them, keep-alive and pipelining, `1xx`
//! interim responses, CONNECT tunnels and `101` upgrades (handed back to the caller as a
//! [`HttpFeed::Switch`]).
//!
//! Memory: only an incomplete header block is buffered, at most `max_header_bytes` per side;
//! bodies are counted down (Content-Length) or walked by a small chunked-encoding state machine.
//! Credential-bearing header values are replaced by `<redacted N bytes>` before they are stored
//! (unless `show_secrets`), so secrets never outlive the packet buffer.
//!
//! Heads are parsed by httparse (lenient settings); what it rejects (HTTP/0.9 request lines, more
//! than [`MAX_HEADERS`] headers, odd whitespace) falls back to a small line parser of our own.

use crate::sanitize::WireBytes;
use crate::wire::{Probe, Side};
use serde::Serialize;
use std::collections::VecDeque;

/// Headers parsed per message; more are dropped with a warning.
pub const MAX_HEADERS: usize = 128;
/// Requests remembered while waiting for their responses (for HEAD/CONNECT/upgrade framing).
const MAX_PENDING: usize = 256;
/// Warnings kept per flow.
const MAX_WARNINGS: usize = 16;
/// Longest method token accepted by the probe.
const MAX_METHOD_LEN: usize = 24;
/// Longest request line the probe waits for, for methods it does not know.
const MAX_PROBE_LINE: usize = 8192;

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

/// One request head.
#[derive(Clone, Debug, Serialize)]
pub struct HttpRequest {
    /// Method token.
    pub method: WireBytes,
    /// Request target as sent.
    pub path: WireBytes,
    /// `HTTP/1.1`, `HTTP/1.0`, or null for an HTTP/0.9-style line.
    pub version: Option<String>,
    /// Value of the Host header.
    pub host: Option<WireBytes>,
    /// Every header as `[name, value]`, in order (secrets redacted).
    pub headers: Vec<(WireBytes, WireBytes)>,
}

/// One response head.
#[derive(Clone, Debug, Serialize)]
pub struct HttpResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: Option<String>,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: WireBytes,
    /// Every header as `[name, value]`, in order (secrets redacted).
    pub headers: Vec<(WireBytes, WireBytes)>,
}

/// Facts about HTTP/1 in a flow, serialized as the `http` object of docs/json.md.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpReport {
    /// Version of the first message, e.g. "HTTP/1.1".
    pub version: Option<String>,
    /// Requests, in order (at most `max_messages`).
    pub requests: Vec<HttpRequest>,
    /// Responses, in order, interim 1xx included (at most `max_messages`).
    pub responses: Vec<HttpResponse>,
    /// All requests seen.
    pub requests_total: u64,
    /// All responses seen.
    pub responses_total: u64,
    /// `tunnel`, `h2c`, `websocket` or another upgrade token, when the stream switched.
    pub upgrade: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line; `value` so far, `digits` seen, `ext` past the size.
    Size { value: u64, digits: u8, ext: bool },
    /// Skipping chunk data.
    Data(u64),
    /// CRLF after chunk data: bytes left to skip up to and including LF.
    DataEnd,
    /// Trailer section: `empty` true while the current line has no bytes yet.
    Trailer { empty: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a message head.
    Head,
    /// Skipping a body of known length.
    Body(u64),
    /// Walking a chunked body.
    Chunked(Chunked),
    /// After a gap: looking for a line that starts a message.
    Resync,
    /// Nothing more from this side.
    Done,
}

struct SideState {
    state: State,
    buf: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    head: bool,
    connect: bool,
    h2c: bool,
}

/// HTTP/1 state of one flow.
pub struct HttpSession {
    cfg: HttpConfig,
    sides: [SideState; 2],
    pending: VecDeque<Pending>,
    report: HttpReport,
    client: Option<Side>,
    warnings: Vec<String>,
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
    /// Request: method, target; response: status, reason.
    request: Option<(&'a [u8], &'a [u8])>,
    status: u16,
    reason: &'a [u8],
    version: Option<u8>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    truncated_headers: bool,
}

impl HttpSession {
    /// A new session.
    pub fn new(cfg: HttpConfig) -> HttpSession {
        let side = || SideState { state: State::Head, buf: Vec::new() };
        HttpSession {
            cfg,
            sides: [side(), side()],
            pending: VecDeque::new(),
            report: HttpReport::default(),
            client: None,
            warnings: Vec::new(),
            saw: false,
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        }
    }

    /// Feeds in-order stream bytes of `side`.
    pub fn feed(&mut self, side: Side, data: &[u8]) -> HttpFeed {
        let s = side.idx();
        let mut pos = 0;
        while pos < data.len() {
            match self.sides[s].state {
                State::Done => return HttpFeed::Done,
                State::Body(n) => {
                    let k = (n.min((data.len() - pos) as u64)) as usize;
                    pos += k;
                    self.sides[s].state =
                        if n - k as u64 == 0 { State::Head } else { State::Body(n - k as u64) };
                }
                State::Chunked(c) => pos = self.walk_chunked(s, c, data, pos),
                State::Resync => match resync_offset(&data[pos..]) {
                    Some(off) => {
                        pos += off;
                        self.sides[s].state = State::Head;
                    }
                    None => return HttpFeed::More,
                },
                State::Head => match self.head(side, data, pos) {
                    Step::Consumed(p) => pos = p,
                    Step::Stop => {
                        self.sides[s].state = State::Done;
                        return HttpFeed::Done;
                    }
                    Step::Switch(at, to) => {
                        self.sides[s].state = State::Done;
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

    /// Walks chunked framing from `pos`; returns the new position.
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
                        c = Chunked::Size { value: 0, digits: 0, ext: false };
                    } else if b != b'\r' {
                        self.warn("http: malformed chunked body (no CRLF after chunk data)".into());
                        self.sides[s].state = State::Resync;
                        return pos;
                    }
                }
                Chunked::Size { value, digits, ext } => {
                    let b = data[pos];
                    pos += 1;
                    match b {
                        b'\n' => {
                            if digits == 0 {
                                self.warn("http: malformed chunk size line".into());
                                self.sides[s].state = State::Resync;
                                return pos;
                            }
                            c = if value == 0 {
                                Chunked::Trailer { empty: true }
                            } else {
                                Chunked::Data(value)
                            };
                        }
                        _ if ext => {}
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                            if digits >= 15 {
                                self.warn("http: chunk size too large".into());
                                self.sides[s].state = State::Done;
                                return data.len();
                            }
                            c = Chunked::Size { value: value * 16 + d, digits: digits + 1, ext };
                        }
                        b';' | b' ' | b'\t' | b'\r' => c = Chunked::Size { value, digits, ext: true },
                        _ => {
                            self.warn("http: malformed chunk size line".into());
                            self.sides[s].state = State::Resync;
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

    /// Tries to parse one head starting at `data[pos..]` (plus buffered bytes).
    fn head(&mut self, side: Side, data: &[u8], pos: usize) -> Step {
        let s = side.idx();
        let max = self.cfg.max_header_bytes;
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
            if is_h2_preface(rest) != Probe::NoMatch {
                if is_h2_preface(rest) == Probe::Match {
                    self.client.get_or_insert(side);
                    self.report.upgrade.get_or_insert_with(|| "h2c".into());
                    return Step::Switch(p, SwitchTo::H2c);
                }
            } else if let Some(end) = head_end(rest, 0) {
                return self.message(side, &rest[..end]).at(p + end, p);
            }
            if rest.len() > max {
                self.warn(format!("http: header block longer than {max} bytes"));
                return Step::Stop;
            }
            if probe_request(rest) == Probe::NoMatch
                && probe_response(rest) == Probe::NoMatch
                && rest.len() >= 16
            {
                self.warn("http: unparseable bytes where a message should start".into());
                return Step::Stop;
            }
            self.sides[s].buf.extend_from_slice(rest);
            return Step::Consumed(data.len());
        }
        let old = self.sides[s].buf.len();
        let take = (data.len() - pos).min(max + 4 - old.min(max + 4));
        self.sides[s].buf.extend_from_slice(&data[pos..pos + take]);
        let buf = std::mem::take(&mut self.sides[s].buf);
        if is_h2_preface(&buf) == Probe::Match {
            self.client.get_or_insert(side);
            self.report.upgrade.get_or_insert_with(|| "h2c".into());
            // The preface began in an earlier call: the switch point is this call's start.
            return Step::Switch(pos, SwitchTo::H2c);
        }
        match head_end(&buf, old.saturating_sub(3)) {
            Some(end) => {
                let consumed = end - old;
                let step = self.message(side, &buf[..end]);
                self.sides[s].buf = buf;
                self.sides[s].buf.clear();
                step.at(pos + consumed, pos)
            }
            None if buf.len() > max => {
                self.warn(format!("http: header block longer than {max} bytes"));
                Step::Stop
            }
            None => {
                self.sides[s].buf = buf;
                Step::Consumed(pos + take)
            }
        }
    }

    /// Records one complete head and sets up the body; `block` ends with the blank line.
    fn message(&mut self, side: Side, block: &[u8]) -> MsgStep {
        let s = side.idx();
        let Some(h) = parse_head(block) else {
            self.warn("http: malformed message head".into());
            return MsgStep::Stop;
        };
        if h.truncated_headers {
            self.warn(format!("http: more than {MAX_HEADERS} headers; the rest are not shown"));
        }
        self.saw = true;
        let version = h.version.map(|v| format!("HTTP/1.{v}"));
        if self.report.version.is_none() {
            self.report.version = version.clone();
        }
        let header =
            |name: &[u8]| h.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        let has_token = |name: &[u8], token: &[u8]| {
            h.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .any(|(_, v)| v.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token)))
        };
        let chunked = h
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .last()
            .is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
        let length = match header(b"content-length") {
            Some(v) => match std::str::from_utf8(trim(v)).ok().and_then(|t| t.parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => {
                    self.warn("http: invalid Content-Length".into());
                    None
                }
            },
            None => None,
        };
        let headers = self.store_headers(&h.headers);
        match h.request {
            Some((method, target)) => {
                self.client.get_or_insert(side);
                self.report.requests_total += 1;
                let p = Pending {
                    head: method == b"HEAD",
                    connect: method == b"CONNECT",
                    h2c: has_token(b"upgrade", b"h2c"),
                };
                if self.pending.len() < MAX_PENDING {
                    self.pending.push_back(p);
                }
                if self.report.requests.len() < self.cfg.max_messages {
                    self.report.requests.push(HttpRequest {
                        method: WireBytes::new(method),
                        path: WireBytes::new(target),
                        version,
                        host: header(b"host").map(|v| WireBytes::new(trim(v))),
                        headers,
                    });
                }
                if p.connect {
                    self.report.upgrade = Some("tunnel".into());
                    return MsgStep::Switch(SwitchTo::Tunnel);
                }
                let framing = if chunked {
                    Framing::Chunked
                } else if let Some(n) = length {
                    Framing::Length(n)
                } else {
                    Framing::None
                };
                self.set_framing(s, framing)
            }
            None => {
                self.client.get_or_insert(side.other());
                self.report.responses_total += 1;
                if self.report.responses.len() < self.cfg.max_messages {
                    self.report.responses.push(HttpResponse {
                        version,
                        status: h.status,
                        reason: WireBytes::new(h.reason),
                        headers,
                    });
                }
                let st = h.status;
                let req = if st >= 200 || st == 101 {
                    self.pending.pop_front()
                } else {
                    self.pending.front().copied()
                };
                let req = req.unwrap_or_default();
                if st == 101 {
                    let token =
                        header(b"upgrade").map(|v| String::from_utf8_lossy(trim(v)).to_ascii_lowercase());
                    let to = if req.h2c || token.as_deref() == Some("h2c") {
                        SwitchTo::H2c
                    } else {
                        SwitchTo::Upgraded
                    };
                    self.report.upgrade = Some(match to {
                        SwitchTo::H2c => "h2c".into(),
                        _ => token.unwrap_or_else(|| "unknown".into()),
                    });
                    return MsgStep::Switch(to);
                }
                if req.connect && (200..300).contains(&st) {
                    return MsgStep::Switch(SwitchTo::Tunnel);
                }
                let framing = if (100..200).contains(&st) || st == 204 || st == 304 || req.head {
                    Framing::None
                } else if chunked {
                    Framing::Chunked
                } else if let Some(n) = length {
                    Framing::Length(n)
                } else {
                    Framing::UntilClose
                };
                self.set_framing(s, framing)
            }
        }
    }

    fn set_framing(&mut self, s: usize, f: Framing) -> MsgStep {
        self.sides[s].state = match f {
            Framing::None | Framing::Length(0) => State::Head,
            Framing::Length(n) => State::Body(n),
            Framing::Chunked => State::Chunked(Chunked::Size { value: 0, digits: 0, ext: false }),
            Framing::UntilClose => return MsgStep::Stop,
        };
        MsgStep::Continue
    }

    fn store_headers(&self, hs: &[(&[u8], &[u8])]) -> Vec<(WireBytes, WireBytes)> {
        hs.iter()
            .map(|(n, v)| {
                let value = if !self.cfg.show_secrets && is_secret_header(n) {
                    WireBytes::from(format!("<redacted {} bytes>", v.len()).as_str())
                } else {
                    WireBytes::new(v)
                };
                (WireBytes::new(n), value)
            })
            .collect()
    }

    /// Bytes of `side` were lost.
    ///
    /// A head cut short by the gap (typically a snaplen-truncated packet) is still recorded from
    /// its complete lines, with a warning: an exposed request line is what the operator needs.
    pub fn gap(&mut self, side: Side) {
        let s = side.idx();
        let buf = std::mem::take(&mut self.sides[s].buf);
        if self.sides[s].state == State::Head && !buf.is_empty() {
            let cut = match buf.iter().rposition(|&b| b == b'\n') {
                Some(nl) => &buf[..=nl],
                None => &buf[..],
            };
            if probe_request(cut) != Probe::NoMatch || probe_response(cut) != Probe::NoMatch {
                let _ = self.message(side, cut);
                self.warn("http: message head cut short by missing bytes".into());
            }
        }
        if self.sides[s].state != State::Done {
            self.sides[s].state = State::Resync;
        }
    }

    /// Bytes held in partial header blocks (allocated capacity).
    pub fn buffered(&self) -> usize {
        self.sides.iter().map(|s| s.buf.capacity()).sum()
    }

    /// Memory pressure: frees partial header blocks; those sides resynchronise.
    pub fn shed(&mut self) {
        for st in &mut self.sides {
            if !st.buf.is_empty() && st.state == State::Head {
                st.state = State::Resync;
            }
            st.buf = Vec::new();
        }
    }

    /// Side that sent requests.
    pub fn client_side(&self) -> Option<Side> {
        self.client
    }

    /// At least one request or response was parsed.
    pub fn saw_http(&self) -> bool {
        self.saw
    }

    /// Drains warnings.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Final facts. Requests are attributed to the side that sent them, whatever `client` says.
    pub fn finish(&self, _client: Side) -> HttpReport {
        self.report.clone()
    }
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
    /// Places the step in the fed slice: `end` is where the head ended, `_start` where it began.
    fn at(self, end: usize, _start: usize) -> Step {
        match self {
            MsgStep::Continue => Step::Consumed(end),
            MsgStep::Stop => Step::Stop,
            MsgStep::Switch(to) => Step::Switch(end, to),
        }
    }
}

/// Is a header's value a credential (redacted by default)?
pub fn is_secret_header(name: &[u8]) -> bool {
    const EXACT: [&[u8]; 4] = [b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"];
    const PARTS: [&[u8]; 7] =
        [b"token", b"secret", b"password", b"passwd", b"api-key", b"apikey", b"session"];
    let lower = name.to_ascii_lowercase();
    EXACT.contains(&lower.as_slice()) || PARTS.iter().any(|p| lower.windows(p.len()).any(|w| w == *p))
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// End (exclusive) of a header block: after `\r\n\r\n` or `\n\n`, searching from `from`.
fn head_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = b.get(i..)?.iter().position(|&c| c == b'\n') {
        let nl = i + p;
        match b.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if b.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Parses a complete head with httparse, falling back to our own line parser.
fn parse_head(block: &[u8]) -> Option<Head<'_>> {
    let mut cfg = httparse::ParserConfig::default();
    cfg.allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if block.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut hdrs);
        if let Ok(httparse::Status::Complete(_)) = cfg.parse_response(&mut r, block) {
            return Some(Head {
                request: None,
                status: r.code?,
                reason: r.reason.map(str::as_bytes).unwrap_or(b""),
                version: r.version,
                headers: r.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect(),
                truncated_headers: false,
            });
        }
    } else {
        let mut r = httparse::Request::new(&mut hdrs);
        if let Ok(httparse::Status::Complete(_)) = cfg.parse_request(&mut r, block) {
            return Some(Head {
                request: Some((r.method?.as_bytes(), r.path?.as_bytes())),
                status: 0,
                reason: b"",
                version: r.version,
                headers: r.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect(),
                truncated_headers: false,
            });
        }
    }
    parse_head_lenient(block)
}

/// Our own parser for what httparse rejects: HTTP/0.9 lines, too many headers, odd bytes.
fn parse_head_lenient(block: &[u8]) -> Option<Head<'_>> {
    let mut lines = block.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next()?;
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let a = parts.next()?;
    let b = parts.next().unwrap_or(&[]);
    let rest_start =
        if b.is_empty() { first.len() } else { (b.as_ptr() as usize - first.as_ptr() as usize) + b.len() };
    let rest = trim(&first[rest_start.min(first.len())..]);
    let version_of = |v: &[u8]| match v {
        b"HTTP/1.0" => Some(0),
        b"HTTP/1.1" => Some(1),
        _ => None,
    };
    let (request, status, reason, version) = if a.starts_with(b"HTTP/1.") {
        let status = std::str::from_utf8(b).ok()?.parse::<u16>().ok()?;
        (None, status, rest, version_of(a))
    } else {
        if !a.iter().all(|c| c.is_ascii_alphanumeric() || b"_-.!#$%&'*+^`|~".contains(c)) {
            return None;
        }
        (Some((a, b)), 0, &b""[..], version_of(rest))
    };
    let mut headers = Vec::new();
    let mut truncated = false;
    for l in lines {
        if l.is_empty() {
            break;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else { continue };
        if headers.len() == MAX_HEADERS {
            truncated = true;
            break;
        }
        headers.push((trim(&l[..colon]), trim(&l[colon + 1..])));
    }
    Some(Head { request, status, reason, version, headers, truncated_headers: truncated })
}

/// Offset of the first line start (after `\n`) in `data` that begins a request or status line
/// (resynchronisation after a gap, and HTTP found in a stream that did not start with it).
pub fn resync_offset(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = data.get(i..)?.iter().position(|&b| b == b'\n') {
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

/// Does `data` start with an HTTP/1 request line?
///
/// A known method must be followed by a space and the start of a target (`/`, `*`, a letter or
/// digit); another token (like `CCM_POST`) only counts when its line ends in ` HTTP/1.x`.
pub fn probe_request(data: &[u8]) -> Probe {
    let tok_len = data
        .iter()
        .take(MAX_METHOD_LEN + 1)
        .position(|&c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-'));
    let Some(n) = tok_len else {
        return if data.len() <= MAX_METHOD_LEN { Probe::NeedMore } else { Probe::NoMatch };
    };
    let method = &data[..n];
    let known = KNOWN_METHODS.contains(&method);
    if n == 0 {
        return Probe::NoMatch;
    }
    if known && (data[n] == b'\r' || data[n] == b'\n') {
        return Probe::Match; // a bare method line (HTTP/0.9 style, seen from scanners)
    }
    if data[n] != b' ' {
        return Probe::NoMatch;
    }
    let Some(&t) = data.get(n + 1) else { return Probe::NeedMore };
    if known {
        return if t == b'/' || t == b'*' || t.is_ascii_alphanumeric() || t == b'[' {
            Probe::Match
        } else {
            Probe::NoMatch
        };
    }
    if n >= 3 && t == b'/' {
        return Probe::Match; // another method token with an origin-form target (`CCM_POST /`)
    }
    match data.iter().take(MAX_PROBE_LINE).position(|&c| c == b'\n') {
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

    /// Feeds client bytes from side A and server bytes from side B, in the given order.
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

    fn paths(h: &HttpSession) -> Vec<String> {
        h.report.requests.iter().map(|r| String::from_utf8_lossy(r.path.as_bytes()).into_owned()).collect()
    }

    fn statuses(h: &HttpSession) -> Vec<u16> {
        h.report.responses.iter().map(|r| r.status).collect()
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
            let (h, _) = run(&KEEPALIVE, bytewise);
            assert_eq!(paths(&h), ["/reviews/0", "/ratings/1"], "bytewise={bytewise}");
            assert_eq!(statuses(&h), [200, 201]);
            let r = &h.report.requests[0];
            assert_eq!(r.host.as_ref().unwrap().as_bytes(), b"reviews:9080");
            assert_eq!(r.headers[1].0.as_bytes(), b"x-request-id");
            assert_eq!(r.version.as_deref(), Some("HTTP/1.1"));
            assert_eq!(h.client_side(), Some(Side::A));
            // The body "{\"a\"" was skipped; the trailing "GET" waits as a partial head.
            assert_eq!(h.report.requests_total, 2);
        }
    }

    #[test]
    fn pipelined_requests_in_one_chunk() {
        let (h, _) = run(&[(Side::A, b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /3 HTTP/1.1\r\n\r\n")], false);
        assert_eq!(paths(&h), ["/1", "/2", "/3"]);
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
    }

    #[test]
    fn connect_switches_both_sides_after_the_heads() {
        let req = b"CONNECT db:443 HTTP/1.1\r\nHost: db:443\r\n\r\n\x16\x03\x01";
        let resp = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03";
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, req), HttpFeed::Switch { at: req.len() - 3, to: SwitchTo::Tunnel });
        assert_eq!(h.feed(Side::B, resp), HttpFeed::Switch { at: resp.len() - 3, to: SwitchTo::Tunnel });
        assert_eq!(h.report.upgrade.as_deref(), Some("tunnel"));
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
    fn secrets_are_redacted_unless_asked() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-t0ken\r\nCookie: session=abc123\r\nX-Auth-Token: tok999\r\nUser-Agent: curl\r\n\r\n";
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, req);
        let json = serde_json::to_string(&h.finish(Side::A)).unwrap();
        for secret in ["s3cr3t", "abc123", "tok999"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert!(json.contains(r#"["Authorization","<redacted 19 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["User-Agent","curl"]"#));
        let mut h = HttpSession::new(HttpConfig { show_secrets: true, ..cfg() });
        h.feed(Side::A, req);
        assert!(serde_json::to_string(&h.finish(Side::A)).unwrap().contains("s3cr3t-t0ken"));
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
    fn garbage_and_huge_lengths_stop_without_panic() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::A, b"\x00\x01\x02\x03 binary junk that is not http at all"), HttpFeed::Done);
        let mut h = HttpSession::new(cfg());
        h.feed(Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nxx");
        assert_eq!(statuses(&h), [200]);
        let mut h = HttpSession::new(cfg());
        h.feed(Side::B, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n");
        assert!(!h.warnings.is_empty());
    }

    #[test]
    fn response_without_length_reads_until_close() {
        let mut h = HttpSession::new(cfg());
        assert_eq!(h.feed(Side::B, b"HTTP/1.0 200 OK\r\n\r\nbody"), HttpFeed::Done);
    }

    #[test]
    fn http09_and_unknown_methods() {
        let (h, _) = run(&[(Side::A, b"GET /old\r\n\r\n")], false);
        assert_eq!(paths(&h), ["/old"]);
        assert_eq!(h.report.requests[0].version, None);
        assert_eq!(probe_request(b"CCM_POST /x HTTP/1.1\r\n"), Probe::Match);
        assert_eq!(probe_request(b"CCM_POST /x"), Probe::Match);
        assert_eq!(probe_request(b"CCM_POST *"), Probe::NeedMore);
        assert_eq!(probe_request(b"SSH-2.0-OpenSSH\r\n"), Probe::NoMatch);
        assert_eq!(probe_request(b"OPTIONS\nHost: x\n\n"), Probe::Match);
        assert_eq!(probe_request(b"CCM_POST /HTTP/1.1\n"), Probe::Match);
        let (h, _) = run(&[(Side::A, b"OPTIONS\nHost: www.example.com\n\n")], false);
        assert_eq!(
            (paths(&h), h.report.requests[0].method.as_bytes()),
            (vec![String::new()], &b"OPTIONS"[..])
        );
        assert_eq!(probe_request(b"GE"), Probe::NeedMore);
        assert_eq!(probe_response(b"HTTP/1.1 200 OK"), Probe::Match);
        assert_eq!(probe_response(b"HTTP/1"), Probe::NeedMore);
        assert_eq!(probe_response(b"HTTP/2 200"), Probe::NoMatch);
        assert_eq!(is_h2_preface(b"PRI * HTTP/2.0\r\n"), Probe::NeedMore);
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
        assert!(h.warnings[0].contains("more than 128"));
    }
}

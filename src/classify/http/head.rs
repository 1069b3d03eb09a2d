//! Message heads: finding the end of a header block across chunks (at most `max_header_bytes`
//! buffered per side), parsing it (a plain head in one pass that also writes its stored fields,
//! `fused`; else httparse with lenient settings, else our own line parser that keeps every
//! `name: value` line), recording the request or response, and deciding the
//! body's framing (RFC 9112 §6.3), CONNECT tunnels and `101` upgrades.
//!
//! Header values are redacted before they are stored (see `headers.rs`), so credentials never
//! outlive the packet buffer. A head cut short by a gap or the end of the capture is recorded
//! from its complete lines.

use super::chunked::CHUNK_START;
use super::headers::{with_name_cache, KnownName};
use super::probe::{classify_start, probe_response, probe_start};
use super::{
    Fields, Framing, Head, HttpRequest, HttpResponse, HttpSession, MsgStep, MsgText, Pending, Role, Start,
    State, Step, SwitchTo, Version, MAX_HEADERS, MAX_PENDING, MAX_UPGRADE_TOKEN, NO_STREAM,
};
use crate::sanitize::redact::{placeholder, placeholder_len};
use crate::sanitize::{ExactHeadersBuilder, Headers, WireBytes};
use crate::wire::{Probe, Side};
use fused::StoreRules;
use std::borrow::Cow;

mod fused;
pub(super) mod pending;

impl HttpSession {
    /// Tries to parse one head starting at `data[pos..]` (plus buffered bytes).
    pub(super) fn head(&mut self, side: Side, data: &[u8], pos: usize) -> Step {
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
        let response = match self.role(side) {
            Some(r) => r == Role::Responses,
            None => probe_response(block) == Probe::Match,
        };
        let stored = if response { self.report.responses.len() } else { self.report.requests.len() };
        let rules = (stored < self.cfg.max_messages)
            .then_some(StoreRules { hide: !self.cfg.show_secrets, lean: self.cfg.lean_headers });
        if let Some(f) = fused::parse(block, response, rules) {
            self.saw = true;
            let version = Some(Version::http1(f.version));
            if self.report.version.is_none() {
                self.report.version = version.map(Version::as_str);
            }
            if f.known.length == Some(None) {
                self.warn("http: invalid or too large Content-Length; framing unknown");
            }
            let headers = |_: &Self| f.headers.unwrap_or_default();
            return match f.request {
                Some(line) => self.request(side, line, version, &f.known, headers),
                None => self.response(side, (f.status, f.reason), version, &f.known, headers),
            };
        }
        // Left uninitialised: httparse initialises what it fills (zeroing 128 slots, 4 KiB, for
        // every message was a seventh of this function's time).
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let Some(h) = parse_head(block, response, &mut slots) else {
            self.warn("http: malformed message head");
            return MsgStep::Stop;
        };
        if h.truncated_headers {
            self.warn(format!("http: more than {MAX_HEADERS} headers; the rest are not shown"));
        }
        self.saw = true;
        let version = h.version.map(Version::http1);
        if self.report.version.is_none() {
            self.report.version = version.map(Version::as_str);
        }
        let known = match &h.headers {
            Fields::Parsed(hs) => Known::of(hs.iter().map(|f| (f.name.as_bytes(), f.value))),
            Fields::Lines(hs) => Known::of(hs.iter().copied()),
        };
        if known.length == Some(None) {
            self.warn("http: invalid or too large Content-Length; framing unknown");
        }
        let headers = |s: &Self| s.store_headers(&h.headers);
        match h.request {
            Some(line) => self.request(side, line, version, &known, headers),
            None => self.response(side, (h.status, h.reason), version, &known, headers),
        }
    }

    /// Records a request head of `side` (the client) and sets up its body.
    #[inline(always)]
    fn request(
        &mut self,
        side: Side,
        (method, target): (&[u8], &[u8]),
        version: Option<Version>,
        body: &Known<'_>,
        headers: impl FnOnce(&Self) -> Headers,
    ) -> MsgStep {
        self.client.get_or_insert(side);
        self.report.requests_total = self.report.requests_total.saturating_add(1);
        let p = Pending { head: method == b"HEAD", connect: method == b"CONNECT", h2c: body.h2c };
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(p);
        }
        if self.report.requests.len() < self.cfg.max_messages {
            let headers = headers(self);
            let host = body.host.map(|v| MsgText::field_value(trim(v), b"host", &headers));
            first_capacity(&mut self.report.requests, self.cfg.max_messages);
            self.report.requests.push(HttpRequest {
                method: WireBytes::new(method),
                path_text: WireBytes::new(target).into(),
                ver: version,
                host_text: host,
                headers,
                stream_id: NO_STREAM,
                h2: None,
            });
        }
        if p.connect {
            self.report.upgrade = Some("tunnel".into());
            return MsgStep::Switch(SwitchTo::Tunnel);
        }
        // RFC 9112 §6.3: a request with neither framing header has no body.
        let framing = if body.chunked {
            Framing::Chunked
        } else if body.other_coding {
            self.warn("http: request with a transfer coding other than chunked");
            Framing::UntilClose
        } else if body.length == Some(None) {
            Framing::UntilClose
        } else {
            Framing::Length(body.length.flatten().unwrap_or(0))
        };
        self.set_framing(side.idx(), framing)
    }

    /// Records a response head of `side` (the server), matches it to its request, and sets up
    /// its body, or the switch to another protocol (`101`, a `2xx` to CONNECT).
    #[inline(always)]
    fn response(
        &mut self,
        side: Side,
        (status, reason): (u16, &[u8]),
        version: Option<Version>,
        body: &Known<'_>,
        headers: impl FnOnce(&Self) -> Headers,
    ) -> MsgStep {
        self.client.get_or_insert(side.other());
        self.report.responses_total = self.report.responses_total.saturating_add(1);
        if self.report.responses.len() < self.cfg.max_messages {
            let headers = headers(self);
            first_capacity(&mut self.report.responses, self.cfg.max_messages);
            self.report.responses.push(HttpResponse {
                ver: version,
                status,
                reason: WireBytes::new(reason),
                headers,
                stream_id: NO_STREAM,
                h2: None,
            });
        }
        let st = status;
        // Interim 1xx responses precede the final one to the same request.
        let req =
            if st >= 200 || st == 101 { self.pending.pop_front() } else { self.pending.front().copied() };
        let req = req.unwrap_or_default();
        if st == 101 {
            return self.switched(side, body, req);
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
        } else if body.chunked {
            Framing::Chunked
        } else if body.other_coding {
            Framing::UntilClose
        } else {
            match body.length {
                Some(Some(n)) => Framing::Length(n),
                _ => Framing::UntilClose,
            }
        };
        self.set_framing(side.idx(), framing)
    }

    /// A `101 Switching Protocols` from `side` to request `req`: both directions switch to
    /// the new protocol (h2c, websocket, ...).
    #[inline(always)]
    fn switched(&mut self, side: Side, body: &Known<'_>, req: Pending) -> MsgStep {
        let token = body.upgrade.map(upgrade_token);
        let to = if req.h2c || token.as_deref() == Some("h2c") { SwitchTo::H2c } else { SwitchTo::Upgraded };
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
        MsgStep::Switch(to)
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

    fn store_headers(&self, fields: &Fields<'_, '_>) -> Headers {
        match fields {
            // httparse checked that names are tokens: nothing in them to escape.
            Fields::Parsed(hs) => self.store(hs.iter().map(|f| (f.name.as_bytes(), f.value)), true),
            Fields::Lines(hs) => self.store(hs.iter().copied(), false),
        }
    }

    /// Stores fields (`tokens`: every name is an RFC 9110 token) with secrets redacted.
    #[inline(always)]
    fn store<'a>(
        &self,
        hs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
        tokens: bool,
    ) -> Headers {
        // One look at each name; bit i: field i is redacted (a head has at most MAX_HEADERS).
        let hide = !self.cfg.show_secrets;
        // --summary-only: only the fields the summary reads are stored (HttpConfig), every
        // mark still set. Bit i of `dropped`: field i is not stored.
        let lean = self.cfg.lean_headers;
        let (mut secret, mut dropped, mut kept, mut bytes, mut marks) = (0u128, 0u128, 0, 0, 0);
        with_name_cache(|names| {
            for (i, (n, v)) in hs.clone().enumerate() {
                let class = names.class(n);
                marks |= class.marks;
                if lean && !class.lean {
                    dropped |= 1 << (i % 128);
                    continue;
                }
                kept += 1;
                bytes += n.len();
                if hide && class.secret {
                    secret |= 1 << (i % 128);
                    bytes += placeholder_len(v.len());
                } else {
                    bytes += v.len();
                }
            }
        });
        let mut b = ExactHeadersBuilder::new(kept, bytes);
        b.mark(marks);
        for (i, (n, v)) in hs.enumerate() {
            if dropped & (1 << (i % 128)) != 0 {
                continue;
            }
            let v = if secret & (1 << (i % 128)) != 0 {
                placeholder(v.len()).into_bytes().into()
            } else {
                Cow::Borrowed(v)
            };
            if tokens {
                b.push_token(n, &v);
            } else {
                b.push(n, &v);
            }
        }
        b.finish()
    }

    /// The complete lines of a partial head of `side`, when they start a message of its role.
    ///
    /// A request line cut before its end (a long target, as in exploit traffic) counts as a whole
    /// when it already probes as one: the method and the start of the target are what matter.
    pub(super) fn partial_head(&self, side: Side) -> Option<&[u8]> {
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
    pub(super) fn record_partial(&mut self, side: Side) {
        let Some(lines) = self.partial_head(side) else { return };
        let lines = lines.to_vec();
        let _ = self.message(side, &lines);
        self.warn("http: message head cut short by missing bytes");
    }
}

/// The fields that decide the body's framing and a switch, and the Host, found in one pass
/// over the names (a pass per name was a tenth of the time spent on a head).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Known<'a> {
    /// The body is chunked (RFC 9112 §6.1: the last transfer coding decides).
    chunked: bool,
    /// Another transfer coding is last.
    other_coding: bool,
    /// Content-Length: None when absent, `Some(None)` when invalid, too large or inconsistent.
    length: Option<Option<u64>>,
    /// Value of the first Host field.
    host: Option<&'a [u8]>,
    /// Value of the first Upgrade field.
    upgrade: Option<&'a [u8]>,
    /// Some Upgrade token is `h2c`.
    h2c: bool,
    /// The last transfer coding other than `identity` so far.
    coding: Option<&'a [u8]>,
}

impl<'a> Known<'a> {
    pub(super) const NONE: Known<'static> = Known {
        chunked: false,
        other_coding: false,
        length: None,
        host: None,
        upgrade: None,
        h2c: false,
        coding: None,
    };

    #[inline(always)]
    fn of(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Known<'a> {
        let mut k = Known::NONE;
        for (n, v) in fields {
            k.add(KnownName::of(n), v);
        }
        k.finish()
    }

    /// Takes one more field, of kind `kind`, in order.
    #[inline(always)]
    pub(super) fn add(&mut self, kind: KnownName, v: &'a [u8]) {
        match kind {
            KnownName::Other => {}
            KnownName::Host => {
                self.host.get_or_insert(v);
            }
            KnownName::Upgrade => {
                self.upgrade.get_or_insert(v);
                self.h2c |= tokens(v).any(|t| t.eq_ignore_ascii_case(b"h2c"));
            }
            KnownName::ContentLength => self.length = content_length(self.length, v),
            KnownName::TransferEncoding => {
                // `identity` is an obsolete no-op.
                if let Some(t) = tokens(v).rfind(|t| !t.eq_ignore_ascii_case(b"identity")) {
                    self.coding = Some(t);
                }
            }
        }
    }

    /// After the last field.
    pub(super) fn finish(mut self) -> Known<'a> {
        self.chunked = self.coding.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        self.other_coding = self.coding.is_some() && !self.chunked;
        self
    }
}

/// The comma-separated, trimmed, non-empty tokens of a field value.
fn tokens(v: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

pub(super) fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// RFC 9110 `tchar` (httparse's `TOKEN_MAP`), by table: the fused parser tests every byte of
/// a method and the name cache every byte of a new name.
#[inline(always)]
pub(super) fn is_tchar(c: u8) -> bool {
    static TCHAR: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            t[i] = c.is_ascii_alphanumeric()
                || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^')
                || matches!(c, b'_' | b'`' | b'|' | b'~');
            i += 1;
        }
        t
    };
    TCHAR[usize::from(c)]
}

/// Content-Length after one more of its fields, `value`, given what the ones before said
/// (`found`): None when absent, Some(None) when invalid, too large or inconsistent (RFC 9110
/// §8.6 allows a list of identical values).
fn content_length(mut found: Option<Option<u64>>, value: &[u8]) -> Option<Option<u64>> {
    for t in value.split(|&b| b == b',') {
        // Digits by hand: `str::parse` after a UTF-8 check cost ~200 instructions per field.
        let t = trim(t);
        let n = if t.is_empty() {
            None
        } else {
            t.iter().try_fold(0u64, |n, &c| {
                if !c.is_ascii_digit() {
                    return None;
                }
                n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
        };
        found = match (found, n) {
            (None, n) => Some(n),
            (Some(Some(a)), Some(b)) if a == b => Some(Some(a)),
            _ => Some(None),
        };
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
#[cfg(not(target_arch = "x86_64"))]
fn head_end(b: &[u8], from: usize) -> Option<usize> {
    head_end_lines(b, from)
}

/// End (exclusive) of a header block: after `\r\n\r\n` or `\n\n`, searching from `from`; 16
/// line-end candidates at a time (a call to memchr per line was most of the cost of finding a
/// head's end: `bench/instructions`).
#[cfg(target_arch = "x86_64")]
fn head_end(b: &[u8], from: usize) -> Option<usize> {
    use std::arch::x86_64::*;
    let mut i = from;
    // Each LF at i..i + 16 is checked with the two bytes after it: all inside `b`.
    while i + 18 <= b.len() {
        // SAFETY: SSE2 is part of x86_64; the loads read b[i..i + 18], inside `b`.
        let ends = unsafe {
            let p = b.as_ptr().add(i);
            let (lf, cr) = (_mm_set1_epi8(b'\n' as i8), _mm_set1_epi8(b'\r' as i8));
            let (v0, v1, v2) = (
                _mm_loadu_si128(p.cast()),
                _mm_loadu_si128(p.add(1).cast()),
                _mm_loadu_si128(p.add(2).cast()),
            );
            let crlf = _mm_and_si128(_mm_cmpeq_epi8(v1, cr), _mm_cmpeq_epi8(v2, lf));
            let blank = _mm_or_si128(_mm_cmpeq_epi8(v1, lf), crlf);
            _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(v0, lf), blank)) as u32
        };
        if ends != 0 {
            let nl = i + ends.trailing_zeros() as usize;
            return Some(if b[nl + 1] == b'\n' { nl + 2 } else { nl + 3 });
        }
        i += 16;
    }
    head_end_lines(b, i)
}

/// [`head_end`] line by line.
fn head_end_lines(b: &[u8], from: usize) -> Option<usize> {
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

/// Parses a complete head with httparse (into `slots`), falling back to our own line parser.
fn parse_head<'h, 'a>(
    block: &'a [u8],
    response: bool,
    slots: &'h mut [std::mem::MaybeUninit<httparse::Header<'a>>],
) -> Option<Head<'h, 'a>> {
    let mut cfg = httparse::ParserConfig::default();
    cfg.allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_space_before_first_header_name(true);
    if response {
        let mut r = httparse::Response::new(&mut []);
        if let (Ok(httparse::Status::Complete(_)), Some(status)) =
            (cfg.parse_response_with_uninit_headers(&mut r, block, slots), r.code)
        {
            return Some(Head {
                request: None,
                status,
                reason: r.reason.map(str::as_bytes).unwrap_or_default(),
                version: r.version,
                headers: Fields::Parsed(r.headers),
                truncated_headers: false,
            });
        }
    } else {
        let mut r = httparse::Request::new(&mut []);
        if let (Ok(httparse::Status::Complete(_)), Some(method), Some(path)) =
            (cfg.parse_request_with_uninit_headers(&mut r, block, slots), r.method, r.path)
        {
            return Some(Head {
                request: Some((method.as_bytes(), path.as_bytes())),
                status: 0,
                reason: b"",
                version: r.version,
                headers: Fields::Parsed(r.headers),
                truncated_headers: false,
            });
        }
    }
    parse_head_lenient(block, response)
}

/// Our own parser for what httparse rejects: HTTP/0.9 lines, too many headers, spaces before a
/// colon, folded lines, odd bytes. Keeps every line with a colon; a line starting with a space
/// or tab continues the previous value (obs-fold, RFC 9112 §5.2), kept raw.
fn parse_head_lenient<'h>(block: &[u8], response: bool) -> Option<Head<'h, '_>> {
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
    Some(Head {
        request,
        status,
        reason,
        version,
        headers: Fields::Lines(headers),
        truncated_headers: truncated,
    })
}

/// Messages an HTTP/1 request or response list holds from its first push: flows of the bench
/// captures carry 1-11 messages, 29% more than 4 (Vec's first capacity), whose grow to 8 copied
/// the cold first four into a fresh block. bench/misses one thread, 100 MB files, cycles~:
/// default 234.84 -> 234.12 M, mesh 310.23 -> 309.69 M; max RSS (mesh 1 GB) unchanged. The same
/// for HTTP/2's lists gained another 0.5-0.6 M but grew that RSS by ~250 KiB (long-lived
/// connections with few streams), so it was left out.
const FIRST_MESSAGES: usize = 8;

/// Messages a list holds after its first grow, from [`FIRST_MESSAGES`]: four times as many, not
/// the two times of `Vec`'s doubling, which a flow of 17 to 32 messages of a kind followed with
/// a second grow (on the 100 MB bench files flows carry up to ~40 requests each; each grow
/// copies the list's cold messages, 112 bytes a request, into a fresh block: 1,750 grows were
/// ~2.7 M cycles~ on the mesh file). Later grows double, so the slack of long flows stays as
/// `Vec`'s. `bench/misses` one thread, 100 MB files, cycles~: default 219.247 -> 218.797 M,
/// mesh 292.247 -> 290.798 M (L2 misses 2.647 -> 2.613 M); max RSS (mesh 1 GB, one thread)
/// 55.3 -> 56.0-56.2 MB. Tried and left: 16 first (default 218.55, mesh 291.34 M, RSS 56.2 MB); 16
/// first and x4 at every grow (218.44, 290.66 M, RSS 57.6 MB); x4 at every grow (218.84,
/// 290.73 M, RSS 56.1 MB); x3 at the first grow (218.86, 291.49 M, RSS 56.0 MB).
const FIRST_GROWN_MESSAGES: usize = 4 * FIRST_MESSAGES;

/// Gives an empty list room for [`FIRST_MESSAGES`] (at most `max`) before its first push, and a
/// full list of that many room for [`FIRST_GROWN_MESSAGES`] (at most `max`); called only when
/// the list is below `max`, so `max` is then above `FIRST_MESSAGES`.
#[inline(always)]
fn first_capacity<T>(list: &mut Vec<T>, max: usize) {
    if list.capacity() == 0 {
        list.reserve_exact(FIRST_MESSAGES.min(max));
    } else if list.len() == FIRST_MESSAGES && list.capacity() == FIRST_MESSAGES {
        list.reserve_exact(FIRST_GROWN_MESSAGES.min(max) - FIRST_MESSAGES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::testutil::*;
    use crate::classify::http::*;

    #[test]
    fn header_order_and_duplicates_are_preserved() {
        let req = b"GET / HTTP/1.1\r\nZ: 1\r\nHost: first\r\nA: 2\r\nz: 3\r\nHost: second\r\nM: \r\n\r\n";
        let (h, _) = run(&[(Side::A, req)], false);
        let r = &h.report.requests[0];
        assert_eq!(header_names(&r.headers), ["Z", "Host", "A", "z", "Host", "M"]);
        assert_eq!(r.headers.get(3).unwrap().1, b"3");
        assert_eq!(r.headers.get(5).unwrap().1, b"");
        assert_eq!(r.host().unwrap(), b"first");
    }

    #[test]
    fn odd_request_headers_fall_back_to_the_line_parser() {
        let req = b"GET /x HTTP/1.1\r\nHost : spaced\r\nX-Fold: a\r\n  b\r\nBad\x01: c\r\nno colon line\r\nLast: 1\r\n\r\n";
        let (h, feeds) = run(&[(Side::A, req)], false);
        assert_eq!(feeds, [HttpFeed::More]);
        let r = &h.report.requests[0];
        assert_eq!(header_names(&r.headers), ["Host", "X-Fold", "Bad\u{1}", "Last"]);
        assert_eq!(r.headers.get(1).unwrap().1, b"a\r\n  b");
        assert_eq!(r.host().unwrap(), b"spaced");
        assert_eq!(r.version(), Some("HTTP/1.1"));
    }

    #[test]
    fn a_long_host_is_kept_as_where_it_is_in_the_stored_header_text() {
        let long = &b"reviews.default.svc.cluster.local:9080"[..];
        for (req, host, in_text) in [
            (&b"GET /a HTTP/1.1\r\nX-A: 1\r\nHOST:  reviews.default.svc.cluster.local:9080 \r\n\r\n"[..], long, true),
            // The line parser's path (a folded field) stores the same text.
            (b"GET /a HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\nX-Fold: a\r\n  b\r\n\r\n", long, true),
            (b"GET /a HTTP/1.1\r\nHost: short:80\r\n\r\n", b"short:80", false),
        ] {
            let (h, _) = run(&[(Side::A, req)], false);
            let r = &h.report.requests[0];
            assert_eq!(r.host(), Some(host));
            assert_eq!(matches!(r.host_text, Some(MsgText::InHeaders { .. })), in_text);
        }
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
        assert_eq!(h.report.requests[0].version(), Some("HTTP/1.0"));
        assert_eq!(h.report.version, Some("HTTP/1.0"));
    }

    #[test]
    fn head_cut_by_a_gap_is_recorded_from_its_complete_lines() {
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, b"GET /cut HTTP/1.1\r\nHost: example\r\nUser-Ag");
        h.gap(Side::A);
        assert_eq!(paths(&h), ["/cut"]);
        let r = &h.report.requests[0];
        assert_eq!(r.host().unwrap(), b"example");
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
    fn head_end_finds_the_first_blank_line_at_any_offset() {
        let mut rng = crate::wire::xorshift(3);
        for _ in 0..20_000 {
            let n = (rng() % 80) as usize;
            let b: Vec<u8> = (0..n).map(|_| [b'\r', b'\n', b'a', b' '][(rng() % 4) as usize]).collect();
            let from = (rng() as usize) % (n + 2);
            assert_eq!(head_end(&b, from), head_end_lines(&b, from), "{b:?} from {from}");
        }
    }

    #[test]
    fn content_length_values() {
        let one = |v: &[u8]| content_length(None, v);
        assert_eq!(one(b" 7 "), Some(Some(7)));
        assert_eq!(one(b"18446744073709551615"), Some(Some(u64::MAX)));
        assert_eq!(one(b"18446744073709551616"), Some(None));
        assert_eq!(one(b"0004"), Some(Some(4)));
        for bad in [&b""[..], b" ", b"+5", b"-1", b"5a", b"1 2", b"\xd9\xa3"] {
            assert_eq!(one(bad), Some(None), "{bad:?}");
        }
        assert_eq!(one(b"3, 3"), Some(Some(3)));
        assert_eq!(one(b"3,4"), Some(None));
        assert_eq!(content_length(Some(Some(3)), b"3"), Some(Some(3)));
        assert_eq!(content_length(Some(Some(3)), b"4"), Some(None));
        assert_eq!(content_length(Some(None), b"4"), Some(None));
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
}

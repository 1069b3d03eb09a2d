//! Telling HTTP/1 from other bytes: the strict request probe that decides a stream is HTTP
//! ([`probe_request`]), the looser one for the next request of a stream already known to be
//! HTTP or held until the server answers ([`probe_loose_request`]), the status-line and HTTP/2
//! preface probes, and resynchronisation after a gap (one pass, at most [`RESYNC_CARRY`] bytes
//! of a cut line start carried between chunks).
//!
//! Every probe answers `NeedMore` only while a bounded prefix is missing (a method token of at
//! most `MAX_METHOD_LEN`, a line of at most `MAX_PROBE_LINE` bytes), so the classifier's probe
//! buffer always decides.

use super::{
    HttpSession, Role, Start, State, LONG_TARGET_LINE, MAX_KNOWN_METHOD_LEN, MAX_METHOD_LEN, MAX_PROBE_LINE,
    RESYNC_CARRY,
};
use crate::wire::Probe;

impl HttpSession {
    /// Looks for a line starting a message in `data[pos..]` (after a gap). Returns where the
    /// message starts (the side is then in `Head`, possibly with a carried line start in `buf`),
    /// or None when all of `data` was scanned. Each byte is looked at a bounded number of times.
    pub(super) fn resync(
        &mut self,
        s: usize,
        mut line_start: bool,
        data: &[u8],
        pos: usize,
    ) -> Option<usize> {
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
pub(super) fn probe_start(role: Option<Role>, b: &[u8]) -> Probe {
    match role {
        Some(Role::Requests) => probe_loose_request(b),
        Some(Role::Responses) => probe_response(b),
        None => either(probe_loose_request(b), probe_response(b)),
    }
}

pub(super) fn classify_start(role: Option<Role>, b: &[u8]) -> Start {
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

/// Offset of the first line start (after `\n`) in `data` that begins a request or status line
/// (HTTP found in a stream that did not start with it).
pub(crate) fn resync_offset(data: &[u8]) -> Option<usize> {
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
pub(crate) fn probe_request(data: &[u8]) -> Probe {
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
pub(crate) fn is_http09_body(data: &[u8]) -> bool {
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
pub(crate) fn probe_response(data: &[u8]) -> Probe {
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
pub(crate) fn is_h2_preface(data: &[u8]) -> Probe {
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
    use crate::classify::http::testutil::*;
    use crate::classify::http::*;

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
    fn http09_and_unknown_methods() {
        let (h, _) = run(&[(Side::A, b"GET /old\r\n\r\n")], false);
        assert_eq!(paths(&h), ["/old"]);
        assert_eq!(h.report.requests[0].version(), None);
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
        assert_eq!((paths(&h), h.report.requests[0].version()), (vec!["/HTTP/1.1".to_string()], None));
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
}

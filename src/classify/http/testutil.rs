//! Test helpers shared by the HTTP unit tests: a session fed whole or byte by byte, and short
//! views of its report.

use super::*;
use crate::sanitize::Headers;

/// The configuration of most tests: secrets hidden, 64 KiB heads, 100 messages, every field kept.
pub(crate) fn cfg() -> HttpConfig {
    HttpConfig { show_secrets: false, max_header_bytes: 64 * 1024, max_messages: 100, lean_headers: false }
}

/// Feeds the messages in order, each whole or one byte per call.
pub(super) fn run(msgs: &[(Side, &[u8])], bytewise: bool) -> (HttpSession, Vec<HttpFeed>) {
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

pub(super) fn json(h: &HttpSession) -> String {
    crate::report::json::http_text(&h.finish())
}

pub(super) fn paths(h: &HttpSession) -> Vec<String> {
    h.report.requests.iter().map(|r| String::from_utf8_lossy(r.path()).into_owned()).collect()
}

pub(super) fn statuses(h: &HttpSession) -> Vec<u16> {
    h.report.responses.iter().map(|r| r.status).collect()
}

pub(super) fn header_names(headers: &Headers) -> Vec<String> {
    headers.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect()
}

pub(super) const KEEPALIVE: [(Side, &[u8]); 4] = [
    (Side::A, b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nx-request-id: abc\r\n\r\n"),
    (Side::B, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    (Side::A, b"POST /ratings/1 HTTP/1.1\r\nHost: ratings\r\nContent-Length: 4\r\n\r\n{\"a\"GET"),
    (Side::B, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n"),
];

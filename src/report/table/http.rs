//! The HTTP detail lines under a flow's row: requests and their answers (`GET /path → 200`,
//! gRPC calls), with `-v` every message with its headers and trailers, and HTTP/2's resets and
//! GOAWAY.

use super::cut;
use crate::classify::http::h2::session::Http2Report;
use crate::classify::http::{HttpReport, HttpRequest, HttpResponse};
use crate::sanitize::{escape_bytes, escape_bytes_into, escape_str, Headers};

/// A header block, one `> name: value` line per field.
fn header_lines(v: &mut Vec<String>, mark: char, hs: &Headers) {
    for (n, val) in hs.iter() {
        v.push(format!("{mark} {}: {}", escape_bytes(n), escape_bytes(val)));
    }
}

/// ` (stream N[, M unknown fields])` after an HTTP/2 message line.
fn stream_note(stream: Option<u32>, unknown: u32) -> String {
    match (stream, unknown) {
        (None, _) => String::new(),
        (Some(s), 0) => format!(" (stream {s})"),
        (Some(s), u) => format!(" (stream {s}, {u} unknown fields)"),
    }
}

/// Trailers of an HTTP/2 message, after a `trailers` line.
fn trailer_lines(v: &mut Vec<String>, mark: char, hs: Option<&Headers>) {
    if let Some(hs) = hs.filter(|h| !h.is_empty()) {
        v.push(format!("{mark} trailers:"));
        header_lines(v, mark, hs);
    }
}

/// A response status line and its headers, `<`-marked.
fn response_lines(v: &mut Vec<String>, r: &HttpResponse) {
    let reason = escape_bytes(r.reason.as_bytes());
    let sp = if reason.is_empty() { "" } else { " " };
    let note = stream_note(r.stream(), r.unknown_fields());
    v.push(format!("< {} {}{sp}{reason}{note}", r.version().unwrap_or("HTTP/1.x"), r.status));
    header_lines(v, '<', &r.headers);
    trailer_lines(v, '<', r.trailers());
}

/// A request line and its headers, `>`-marked.
fn request_lines(v: &mut Vec<String>, q: &HttpRequest) {
    let version = q.version().map(|x| format!(" {x}")).unwrap_or_default();
    v.push(format!(
        "> {} {}{version}{}",
        escape_bytes(q.method.as_bytes()),
        escape_bytes(q.path()),
        stream_note(q.stream(), q.unknown_fields())
    ));
    header_lines(v, '>', &q.headers);
    trailer_lines(v, '>', q.trailers());
}

/// `-v`: every recorded request (`>`) and response (`<`) with its headers, each request
/// followed by its responses (interim `1xx` ones included): in order for HTTP/1, by stream for
/// HTTP/2 (whose streams interleave).
pub(super) fn http_verbose(v: &mut Vec<String>, h: &HttpReport) {
    if let Some(h2) = &h.http2 {
        let mut shown = vec![false; h.responses.len()];
        for q in &h.requests {
            request_lines(v, q);
            for (i, r) in h.responses.iter().enumerate() {
                if r.stream().is_some() && r.stream() == q.stream() && !shown[i] {
                    shown[i] = true;
                    response_lines(v, r);
                }
            }
            v.extend(grpc_line(q));
        }
        for (i, r) in h.responses.iter().enumerate() {
            if !shown[i] {
                response_lines(v, r);
            }
        }
        http2_lines(v, h2, true);
    } else {
        let mut responses = h.responses.iter();
        for q in &h.requests {
            request_lines(v, q);
            for r in responses.by_ref() {
                response_lines(v, r);
                if r.status >= 200 || r.status == 101 {
                    break;
                }
            }
        }
        for r in responses {
            response_lines(v, r);
        }
    }
    let more = |total: u64, kept: usize, what: &str| {
        (total > kept as u64)
            .then(|| format!("… {} more {what} not recorded (--max-requests)", total - kept as u64))
    };
    v.extend(more(h.requests_total, h.requests.len(), "requests"));
    v.extend(more(h.responses_total, h.responses.len(), "responses"));
}

/// A field HTTP/2 lost (its HPACK table entry predates the capture) reads `?`.
pub(super) fn or_unknown(s: String) -> String {
    if s.is_empty() {
        "?".into()
    } else {
        s
    }
}

/// A status code; 0 (an HTTP/2 `:status` that could not be known) reads `?`.
pub(super) fn status_text(s: u16) -> String {
    let mut t = String::new();
    push_status(&mut t, s);
    t
}

/// Appends [`status_text`]`(s)`.
pub(super) fn push_status(out: &mut String, s: u16) {
    match s {
        0 => out.push('?'),
        s => super::push_decimal(out, s.into()),
    }
}

/// Longest gRPC message shown on a summary line (display columns).
const MAX_GRPC_MESSAGE: usize = 100;

/// `grpc reviews.Reviews/GetReview → OK`, `→ UNAVAILABLE (14): message`, or the HTTP status
/// while the call has no `grpc-status`.
pub(super) fn grpc_summary(q: &HttpRequest, answer: Option<&HttpResponse>) -> Option<String> {
    let g = q.grpc()?;
    let path = q.path();
    // Built in place, not through `format!` and a string per part (issue 22: ~1 M of the
    // table's instructions on the mesh 30 MB slice).
    let mut line = String::with_capacity(path.len() + 40);
    let part = |line: &mut String, w: Option<&[u8]>| match w {
        Some(w) => escape_bytes_into(w, line),
        None => line.push('?'),
    };
    line.push_str("grpc ");
    part(&mut line, g.service(path));
    line.push('/');
    part(&mut line, g.method(path));
    match (g.status, g.status_name) {
        (Some(0), _) => line.push_str(" → OK"),
        (Some(n), name) => {
            line.push_str(" → ");
            line.push_str(name.unwrap_or("status"));
            line.push_str(" (");
            super::push_decimal(&mut line, n.into());
            line.push(')');
            if let Some(m) = g.message.as_ref().filter(|m| !m.as_bytes().is_empty()) {
                line.push_str(&format!(": {}", cut(m.to_terminal(), MAX_GRPC_MESSAGE)));
            }
        }
        (None, _) => {
            if let Some(a) = answer {
                line.push_str(&format!(" → HTTP {} (no grpc-status)", status_text(a.status)));
            }
        }
    }
    Some(line)
}

/// `-v`: the gRPC facts of a call.
fn grpc_line(q: &HttpRequest) -> Option<String> {
    let g = q.grpc()?;
    let enc = g.encoding.as_ref().map(|e| format!(", encoding {}", e.to_terminal())).unwrap_or_default();
    Some(format!(
        "  {}; messages: {} from the client, {} from the server{enc}",
        grpc_summary(q, None).unwrap_or_default(),
        g.messages.client,
        g.messages.server
    ))
}

/// HTTP/2 connection events: resets and GOAWAY (only those with an error unless `all`).
pub(super) fn http2_lines(v: &mut Vec<String>, h: &Http2Report, all: bool) {
    let mut parts: Vec<String> = Vec::new();
    for r in h.rst_streams.iter().filter(|r| all || r.error != "NO_ERROR") {
        parts.push(format!("RST_STREAM {} {} from the {}", r.stream, escape_str(&r.error), r.from.as_str()));
    }
    if let Some(g) = h.goaway.as_ref().filter(|g| all || g.error != "NO_ERROR") {
        parts.push(format!(
            "GOAWAY {} from the {} (last stream {})",
            escape_str(&g.error),
            g.from.as_str(),
            g.last_stream
        ));
    }
    if !parts.is_empty() {
        v.push(format!("http2: {}", parts.join("; ")));
    }
}

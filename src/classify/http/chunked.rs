//! Chunked transfer coding (RFC 9112 §7.1), walked without buffering: a small state machine
//! over chunk-size lines, chunk data (skipped by count), the CRLF after it, and the trailer
//! section. It keeps only the current chunk size (at most `u64::MAX`; a longer size ends the
//! side); a malformed size line or a missing CRLF sends the side to resynchronisation.

use super::{HttpSession, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Reading a chunk-size line: `value` so far, `digits` seen, `ext` past the size.
    Size { value: u64, digits: bool, ext: bool },
    /// Skipping chunk data.
    Data(u64),
    /// CRLF after chunk data.
    DataEnd,
    /// Trailer section: `empty` true while the current line has no bytes yet.
    Trailer { empty: bool },
}

pub(super) const CHUNK_START: Chunked = Chunked::Size { value: 0, digits: false, ext: false };

impl HttpSession {
    /// Walks chunked framing (RFC 9112 §7.1) from `pos`; returns the new position.
    pub(super) fn walk_chunked(&mut self, s: usize, mut c: Chunked, data: &[u8], mut pos: usize) -> usize {
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
}

#[cfg(test)]
mod tests {
    use crate::classify::http::testutil::*;
    use crate::classify::http::*;

    #[test]
    fn keepalive_content_length_and_chunked_whole_or_bytewise() {
        for bytewise in [false, true] {
            let (h, feeds) = run(&KEEPALIVE, bytewise);
            assert!(feeds.iter().all(|f| *f == HttpFeed::More), "bytewise={bytewise}");
            assert_eq!(paths(&h), ["/reviews/0", "/ratings/1"], "bytewise={bytewise}");
            assert_eq!(statuses(&h), [200, 201]);
            let r = &h.report.requests[0];
            assert_eq!(r.host().unwrap(), b"reviews:9080");
            assert_eq!(r.headers.get(1).unwrap().0, b"x-request-id");
            assert_eq!(r.version(), Some("HTTP/1.1"));
            assert_eq!(h.client_side(), Some(Side::A));
            // The body "{\"a\"" was skipped; the trailing "GET" waits as a partial head.
            assert_eq!(h.report.requests_total, 2);
            assert_eq!(h.report.responses_total, 2);
        }
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
}

//! The records of HTTP messages a flow keeps (requests, responses, their HTTP/2 facts): small,
//! because each is written once, read once by the report, and copied each time a flow's list
//! of messages grows.

use super::h2;
use crate::sanitize::{Headers, WireBytes};

/// The version of a message: one byte, where an `Option<&'static str>` took 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
    Http2,
}

impl Version {
    /// `HTTP/1.x` of the minor version `minor` (0 or 1, as the parsers give it).
    pub(crate) fn http1(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }

    /// As the report writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }
}

/// [`HttpRequest::stream_id`] and [`HttpResponse::stream_id`] of a message without a stream:
/// never a stream id (31 bits).
pub(crate) const NO_STREAM: u32 = u32::MAX;

/// A request's path or Host value: its bytes ([`WireBytes`]: inline up to 22 bytes, else a
/// block of their own), or, when they are a field value of the request's own header text (an
/// HTTP/2 block stored as decoded), where they are in it. A long `:path` or `:authority` (a
/// mesh's `service.namespace.svc.cluster.local:port`) was a block of its own: a `malloc`, a
/// fresh line written and read cold again at render, for bytes the header text already holds
/// (on the 100 MB bench files 3.9 k / 7.7 k HTTP/2 and 4.0 k / 5.5 k HTTP/1 long values).
/// `bench/misses` one thread, cycles~: HTTP/2 default 100 MB 216.60 -> 216.49 M, mesh 288.42 ->
/// 288.14 M; HTTP/1 Host then 216.49 -> 216.09 M, 288.14 -> 287.50 M (runs vary +-0.05 M).
/// 24 bytes, as [`WireBytes`] (the range sits in its niche).
#[derive(Clone, Debug)]
pub(crate) enum MsgText {
    Own(WireBytes),
    /// `start..start + len` of the header text ([`Headers::text_range`]).
    InHeaders {
        start: u32,
        len: u32,
    },
}

impl MsgText {
    /// `v`, a value of `text`, which `headers` hold as their JSON text byte for byte: a range of
    /// it when `v` would not be inline, else `v` copied.
    pub(crate) fn in_headers(v: &[u8], text: Option<&[u8]>, headers: &Headers) -> MsgText {
        match text {
            Some(t) if v.len() > WireBytes::INLINE && t.len() == headers.text_len() => {
                // Offsets by address: `v` is a sub-slice of `t` when its range lies in `t`'s.
                let start = (v.as_ptr() as usize).wrapping_sub(t.as_ptr() as usize);
                match (u32::try_from(start), u32::try_from(v.len())) {
                    (Ok(s), Ok(n)) if start.checked_add(v.len()).is_some_and(|e| e <= t.len()) => {
                        debug_assert_eq!(headers.text_range(s, n), v);
                        MsgText::InHeaders { start: s, len: n }
                    }
                    _ => MsgText::Own(WireBytes::new(v)),
                }
            }
            _ => MsgText::Own(WireBytes::new(v)),
        }
    }

    /// `v`, the value of the first field named `name` (ASCII case ignored) in the parsed head:
    /// a range of the stored `headers` when the first such field they hold has that value byte
    /// for byte and `v` would not be inline, else `v` copied (an HTTP/1 Host: the head's text
    /// is written afresh into the stored block, so where the value is is found in it).
    pub(crate) fn field_value(v: &[u8], name: &[u8], headers: &Headers) -> MsgText {
        if v.len() > WireBytes::INLINE {
            if let Some((_, stored)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                if stored == v {
                    return MsgText::in_headers(stored, Some(headers.json_text().0), headers);
                }
            }
        }
        MsgText::Own(WireBytes::new(v))
    }

    /// The bytes, given the headers of the message that holds this.
    pub(crate) fn bytes<'a>(&'a self, headers: &'a Headers) -> &'a [u8] {
        match self {
            MsgText::Own(w) => w.as_bytes(),
            MsgText::InHeaders { start, len } => headers.text_range(*start, *len),
        }
    }
}

impl From<WireBytes> for MsgText {
    fn from(w: WireBytes) -> MsgText {
        MsgText::Own(w)
    }
}

/// One request head.
///
/// 112 bytes: the stream id as a bare u32 ([`NO_STREAM`]: none) and the version as one byte
/// ([`Version`]) share one word; as an `Option<u32>` and an `Option<&'static str>` they took 24
/// bytes (128 in all). Messages are written once, read once by the report, and copied each
/// time a flow's list of messages grows (HTTP/1 lists ~33 k L2 misses, HTTP/2 requests 18 k,
/// responses 13 k per 100 MB default bench file). `bench/misses` one thread, cycles~ 30 MB
/// slices: default 75.19 -> 74.82 M, mesh 79.60 -> 79.21 M.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// Method token.
    pub(crate) method: WireBytes,
    /// Request target as sent (origin, absolute, authority or asterisk form); read with
    /// [`HttpRequest::path`].
    pub(crate) path_text: MsgText,
    /// Value of the first Host header (`:authority` for HTTP/2); read with
    /// [`HttpRequest::host`].
    pub(crate) host_text: Option<MsgText>,
    /// Every header as `[name, value]`, in order (secrets redacted); for HTTP/2 the
    /// pseudo-headers come first, as sent.
    pub(crate) headers: Headers,
    /// The HTTP/2 stream's other facts (None for HTTP/1); boxed, so that HTTP/1 messages stay
    /// as small as they were.
    pub(crate) h2: Option<Box<H2Request>>,
    /// HTTP/2 stream id, [`NO_STREAM`] for HTTP/1 (except the `Upgrade: h2c` request: stream
    /// 1); read with [`HttpRequest::stream`].
    pub(crate) stream_id: u32,
    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`, or None for an HTTP/0.9-style line (or an unreadable
    /// version); read with [`HttpRequest::version`].
    pub(crate) ver: Option<Version>,
}

/// HTTP/2 facts of a request's stream: 64 bytes, one cache line in mimalloc's 64-byte size
/// class (at 72 it took an 80-byte block across two lines; with `pushed_by` as a bare u32:
/// `bench/misses` cycles~ 30 MB slices, default 86.20 -> 86.10 M, mesh 93.24 -> 93.12 M).
#[derive(Clone, Debug)]
pub(crate) struct H2Request {
    /// Request trailers.
    pub(crate) trailers: Headers,
    /// Fields of the request's blocks that named a dynamic table entry added before the
    /// capture started.
    pub(crate) unknown_fields: u32,
    /// gRPC facts, when the request or its response is `application/grpc*`: boxed, so that
    /// the other streams' facts take 96 bytes, not 240.
    pub(crate) grpc: Option<Box<h2::session::GrpcCall>>,
    /// DATA bytes of the stream per role.
    pub(crate) data: h2::session::ByRole,
    /// A pushed stream: the stream whose PUSH_PROMISE promised it, else [`NOT_PUSHED`]
    /// (read with [`HttpRequest::pushed_by`]).
    pub(crate) pushed_by: u32,
}

/// [`H2Request::pushed_by`] of a stream no PUSH_PROMISE opened: never a stream id (31 bits).
pub(crate) const NOT_PUSHED: u32 = u32::MAX;

impl Default for H2Request {
    fn default() -> H2Request {
        H2Request {
            trailers: Headers::default(),
            unknown_fields: 0,
            grpc: None,
            data: h2::session::ByRole::default(),
            pushed_by: NOT_PUSHED,
        }
    }
}

const _: () = assert!(std::mem::size_of::<MsgText>() == 24 && std::mem::size_of::<HttpRequest>() == 112);

impl HttpRequest {
    /// Request target as sent.
    pub(crate) fn path(&self) -> &[u8] {
        self.path_text.bytes(&self.headers)
    }

    /// Value of the first Host header (`:authority` for HTTP/2).
    pub(crate) fn host(&self) -> Option<&[u8]> {
        self.host_text.as_ref().map(|h| h.bytes(&self.headers))
    }

    /// Drops the header fields, keeping the path and host.
    pub(crate) fn clear_headers(&mut self) {
        for t in [Some(&mut self.path_text), self.host_text.as_mut()].into_iter().flatten() {
            if let MsgText::InHeaders { .. } = t {
                *t = MsgText::Own(WireBytes::new(t.bytes(&self.headers)));
            }
        }
        self.headers = Headers::default();
    }

    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`, or None for an HTTP/0.9-style line.
    pub(crate) fn version(&self) -> Option<&'static str> {
        self.ver.map(Version::as_str)
    }

    /// HTTP/2 stream id (None for HTTP/1, except the `Upgrade: h2c` request: stream 1).
    pub(crate) fn stream(&self) -> Option<u32> {
        (self.stream_id != NO_STREAM).then_some(self.stream_id)
    }

    /// HTTP/2 request trailers (None for HTTP/1).
    pub(crate) fn trailers(&self) -> Option<&Headers> {
        self.h2.as_ref().map(|h| &h.trailers)
    }

    /// HTTP/2 fields that could not be known (0 for HTTP/1).
    pub(crate) fn unknown_fields(&self) -> u32 {
        self.h2.as_ref().map_or(0, |h| h.unknown_fields)
    }

    /// gRPC facts.
    pub(crate) fn grpc(&self) -> Option<&h2::session::GrpcCall> {
        self.h2.as_ref().and_then(|h| h.grpc.as_deref())
    }

    /// HTTP/2 DATA bytes per role (None for HTTP/1).
    pub(crate) fn data(&self) -> Option<&h2::session::ByRole> {
        self.h2.as_ref().map(|h| &h.data)
    }

    /// The stream whose PUSH_PROMISE opened this one (a pushed request).
    pub(crate) fn pushed_by(&self) -> Option<u32> {
        self.h2.as_ref().map(|h| h.pushed_by).filter(|&s| s != NOT_PUSHED)
    }
}

/// One response head.
///
/// 64 bytes, one cache line: the stream id, status and version in one word (see
/// [`HttpRequest`]; it was 88).
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Reason phrase (empty for HTTP/2, which has none).
    pub(crate) reason: WireBytes,
    /// Every header as `[name, value]`, in order (secrets redacted); for HTTP/2 `:status`
    /// first, as sent.
    pub(crate) headers: Headers,
    /// The HTTP/2 response's other facts, boxed as for requests; None for HTTP/1, and for an
    /// HTTP/2 response without trailers or unknown fields (which reads as empty ones).
    pub(crate) h2: Option<Box<H2Response>>,
    /// HTTP/2 stream id, [`NO_STREAM`] for HTTP/1 (except the `101` to `Upgrade: h2c`: stream
    /// 1); read with [`HttpResponse::stream`].
    pub(crate) stream_id: u32,
    /// Status code (HTTP/2: 0 when `:status` could not be known).
    pub(crate) status: u16,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`; read with [`HttpResponse::version`].
    pub(crate) ver: Option<Version>,
}

/// HTTP/2 facts of a response.
#[derive(Clone, Debug, Default)]
pub(crate) struct H2Response {
    /// Trailers of a final response.
    pub(crate) trailers: Headers,
    /// Fields of the response's blocks (headers and trailers) that named a dynamic table entry
    /// added before the capture started.
    pub(crate) unknown_fields: u32,
}

impl HttpResponse {
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2` (None: an unreadable version).
    pub(crate) fn version(&self) -> Option<&'static str> {
        self.ver.map(Version::as_str)
    }

    /// HTTP/2 stream id (None for HTTP/1, except the `101` to `Upgrade: h2c`: stream 1).
    pub(crate) fn stream(&self) -> Option<u32> {
        (self.stream_id != NO_STREAM).then_some(self.stream_id)
    }

    /// HTTP/2 trailers (None for HTTP/1, and for an HTTP/2 response that had none: both are
    /// written as none).
    pub(crate) fn trailers(&self) -> Option<&Headers> {
        self.h2.as_ref().map(|h| &h.trailers)
    }

    /// HTTP/2 fields that could not be known (0 for HTTP/1).
    pub(crate) fn unknown_fields(&self) -> u32 {
        self.h2.as_ref().map_or(0, |h| h.unknown_fields)
    }
}

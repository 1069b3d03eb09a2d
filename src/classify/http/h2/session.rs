//! One HTTP/2 connection as an observer reports it: two [`H2Direction`]s (one per side), the
//! streams they carry turned into the same [`HttpRequest`]/[`HttpResponse`] records as HTTP/1
//! (with their stream id, trailers, unknown-field count and gRPC facts), and the connection's
//! SETTINGS, GOAWAY and RST_STREAMs ([`Http2Report`]).
//!
//! Where a direction starts: with the client preface (prior knowledge, or after an
//! `Upgrade: h2c` + `101`), with a frame header (the server), or unknown (the capture began
//! mid-connection): then [`find_frame_chain`] is asked on each chunk until frames are found, and
//! the HPACK decoder reports what it cannot know as unknown fields. The side sending requests is
//! the client: known from the preface or the HTTP/1 upgrade, else from the first header block
//! with `:method` (or `:status`, or a PUSH_PROMISE, sent by the server).
//!
//! Each side's `SETTINGS_HEADER_TABLE_SIZE` is the limit of the *other* side's HPACK decoder
//! (the table its encoder may use). A gap ends that direction with a warning.
//!
//! Bounds: streams recorded (requests, responses, RST_STREAMs) at most `max_messages`, header
//! blocks and decoded lists at most `max_header_bytes`, [`MAX_SETTINGS`] parameters per side,
//! [`MAX_SEEK_BYTES`] searched for frames; everything else is counted. Secrets: credential
//! headers and every field sent *never indexed* are stored as `<redacted N bytes>` unless
//! `show_secrets`; the thread's [`HeaderList`] holds their bytes only until the next block it
//! decodes.

use super::{
    find_frame_chain, BlockKind, ErrorCode, FieldRole, Frame, H2Direction, H2Event, H2Limits, HeaderList,
    SettingId, Start,
};
use crate::classify::http::{
    is_h2_preface, H2Request, H2Response, HttpConfig, HttpReport, HttpRequest, HttpResponse, MsgText,
    Version, NOT_PUSHED,
};
use crate::sanitize::{Headers, WireBytes};
use crate::wire::{Feed, Probe, Role, Side};
use streams::Streams;

/// Warnings kept per connection.
const MAX_WARNINGS: usize = 16;
/// SETTINGS parameters (distinct identifiers) kept per side.
pub(crate) const MAX_SETTINGS: usize = 16;
/// Bytes of a side joined mid-connection searched for a chain of frames before giving up.
pub(crate) const MAX_SEEK_BYTES: u64 = 64 * 1024;
/// Length of a gRPC message prefix: compressed flag and 32-bit length (gRPC over HTTP/2,
/// "Length-Prefixed-Message").
const GRPC_PREFIX: usize = 5;

/// gRPC status code names, by number (grpc `doc/statuscodes.md`).
const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Do `buf`'s first bytes open a server's connection preface, a SETTINGS frame (RFC 9113 §3.4)?
pub(crate) fn is_server_preface(buf: &[u8]) -> bool {
    use super::frame::{flags, plausible_header, FrameType, FRAME_HEADER_LEN};
    let Some(h) = buf.first_chunk::<FRAME_HEADER_LEN>() else { return false };
    h[3] == FrameType::SETTINGS.0 && h[4] & flags::ACK == 0 && plausible_header(h)
}

/// Where HTTP/2 frames start in `data`, bytes of one side of a connection joined after its
/// start: a chain of frames ([`find_frame_chain`]), or one plausible frame that fills `data`
/// exactly (a request alone in its segment: its 24-bit length must match to the byte).
pub(crate) fn find_frames(data: &[u8]) -> Option<usize> {
    use super::frame::{plausible_header, FRAME_HEADER_LEN};
    find_frame_chain(data).or_else(|| {
        let h = data.first_chunk::<FRAME_HEADER_LEN>()?;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        (plausible_header(h) && FRAME_HEADER_LEN + len == data.len()).then_some(0)
    })
}

/// The name of a gRPC status code, None if it has none.
pub(crate) fn grpc_status_name(code: u32) -> Option<&'static str> {
    GRPC_STATUS.get(code as usize).copied()
}

/// A client/server pair of counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ByRole {
    /// Sent by the client.
    pub(crate) client: u64,
    /// Sent by the server.
    pub(crate) server: u64,
}

impl ByRole {
    fn add(&mut self, from_client: bool, n: u64) {
        let c = if from_client { &mut self.client } else { &mut self.server };
        *c = c.saturating_add(n);
    }
}

/// gRPC facts of one call (a stream whose request or response is `application/grpc*`).
#[derive(Clone, Debug, Default)]
pub(crate) struct GrpcCall {
    /// `pkg.Service` of `:path` `/pkg.Service/Method`, as a range of the request's `path`
    /// (empty: none), and `Method`. Copies of both cost ~220 instructions a call and 48 bytes
    /// (ranges: -1.2 M instructions on the 100 MB mesh bench file, 8.7k calls; -0.5 M on the
    /// default one); read with [`GrpcCall::service`] and [`GrpcCall::method`].
    service: (u32, u32),
    method: (u32, u32),
    /// `grpc-status` of the trailers (or of a trailers-only response).
    pub(crate) status: Option<u32>,
    /// Name of `status` (`OK`, `UNAVAILABLE`...).
    pub(crate) status_name: Option<&'static str>,
    /// `grpc-message`, percent-decoded.
    pub(crate) message: Option<WireBytes>,
    /// `grpc-encoding` of the request (the message compression).
    pub(crate) encoding: Option<WireBytes>,
    /// Length-prefixed messages whose prefix was seen, per direction.
    pub(crate) messages: ByRole,
    /// Their payload bytes, as their prefixes give them (compressed when `encoding` says so).
    pub(crate) message_bytes: ByRole,
}

impl GrpcCall {
    /// `pkg.Service` of `path`, the path of the request this call belongs to; None if empty.
    pub(crate) fn service<'a>(&self, path: &'a [u8]) -> Option<&'a [u8]> {
        range(path, self.service)
    }

    /// `Method` of `path`, the path of the request this call belongs to; None if empty.
    pub(crate) fn method<'a>(&self, path: &'a [u8]) -> Option<&'a [u8]> {
        range(path, self.method)
    }
}

fn range(path: &[u8], (a, b): (u32, u32)) -> Option<&[u8]> {
    path.get(a as usize..b as usize).filter(|s| !s.is_empty())
}

/// SETTINGS parameters of one side, in the order first seen, each with its last value.
#[derive(Clone, Debug, Default)]
pub(crate) struct SettingsList(pub Vec<(SettingId, u32)>);

impl SettingsList {
    /// The JSON key of a parameter: the RFC name, or `0x` and four hex digits.
    pub(crate) fn key(id: SettingId) -> std::borrow::Cow<'static, str> {
        match id.name() {
            Some(n) => n.into(),
            None => format!("0x{:04x}", id.0).into(),
        }
    }
}

/// SETTINGS of each side (null: none seen).
#[derive(Clone, Debug, Default)]
pub(crate) struct Http2Settings {
    /// The client's.
    pub(crate) client: Option<SettingsList>,
    /// The server's.
    pub(crate) server: Option<SettingsList>,
}

/// The text of an HTTP/2 error code: its RFC name, or `0x` and its hex value.
pub(crate) fn error_text(code: ErrorCode) -> String {
    match code.name() {
        Some(n) => n.to_string(),
        None => format!("0x{:x}", code.0),
    }
}

/// A GOAWAY.
#[derive(Clone, Debug)]
pub(crate) struct GoAway {
    /// Who sent it.
    pub(crate) from: Role,
    /// Last stream its sender processed.
    pub(crate) last_stream: u32,
    /// Error code name (`NO_ERROR`...).
    pub(crate) error: String,
}

/// An RST_STREAM.
#[derive(Clone, Debug)]
pub struct RstStream {
    /// Stream reset.
    pub(crate) stream: u32,
    /// Who reset it.
    pub(crate) from: Role,
    /// Error code name (`CANCEL`...).
    pub(crate) error: String,
}

/// HTTP/2 connection facts (the JSON `http.http2`).
#[derive(Clone, Debug, Default)]
pub struct Http2Report {
    /// SETTINGS of each side.
    pub(crate) settings: Http2Settings,
    /// The last GOAWAY seen.
    pub(crate) goaway: Option<GoAway>,
    /// RST_STREAMs, in order (at most `max_messages`).
    pub rst_streams: Vec<RstStream>,
    /// Streams opened by a request or PUSH_PROMISE seen (or answered without one seen).
    pub streams_total: u64,
}

/// A recorded stream (28 bytes, 32 with its id in [`Streams`]: two to a cache line; it was 48
/// with a 12-byte walk state per direction that kept a gRPC prefix's five bytes). With the
/// response facts boxed only when needed (`Conn::response`): `bench/misses` cycles~ 30 MB
/// slices, default 86.50 -> 86.40 M, mesh 93.34 -> 93.24 M.
#[derive(Clone, Debug, Default)]
struct Stream {
    /// Index in the report's requests (None: request not seen, or the HTTP/1 upgrade request).
    req: Option<u32>,
    /// Index of the final response.
    resp: Option<u32>,
    /// gRPC's length-prefixed messages through the DATA of each direction (by
    /// [`Stream::walk_index`]): payload bytes of the current message still to skip, or, while
    /// a prefix is read, the length bytes read so far.
    left: [u32; 2],
    /// Bytes of the current prefix read (0: none, `left` is payload to skip).
    have: [u8; 2],
    /// gRPC: DATA is walked for message prefixes.
    grpc: bool,
}

impl Stream {
    /// Index of a direction's walk in `left` and `have`.
    fn walk_index(from_client: bool) -> usize {
        usize::from(!from_client)
    }

    /// Walks DATA bytes of direction `dir` ([`Stream::walk_index`]): the messages whose prefix
    /// completed in `bytes`, and the payload lengths those prefixes give.
    fn walk(&mut self, dir: usize, mut bytes: &[u8]) -> (u64, u64) {
        let (Some(left), Some(have)) = (self.left.get_mut(dir), self.have.get_mut(dir)) else {
            return (0, 0);
        };
        let (mut n, mut len) = (0, 0u64);
        while let Some((&b, rest)) = bytes.split_first() {
            if *have == 0 && *left > 0 {
                let k = (*left as usize).min(bytes.len());
                *left -= k as u32;
                bytes = &bytes[k..];
                continue;
            }
            // A prefix byte: the compressed flag first, then the 32-bit length, big-endian.
            if *have > 0 {
                *left = *left << 8 | u32::from(b);
            }
            *have += 1;
            bytes = rest;
            if usize::from(*have) == GRPC_PREFIX {
                *have = 0;
                n += 1;
                len += u64::from(*left);
            }
        }
        (n, len)
    }
}

const _: () = assert!(std::mem::size_of::<(u32, Stream)>() == 32);

/// What one header block says, borrowed from the decoder's list.
#[derive(Default)]
struct Pseudo<'a> {
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    status: Option<u16>,
    grpc_type: bool,
    grpc_status: Option<&'a [u8]>,
    grpc_message: Option<&'a [u8]>,
    grpc_encoding: Option<&'a [u8]>,
    /// The block's text, when the stored [`Headers`] hold it byte for byte (nothing redacted
    /// or left out): a long path or authority is then kept as where it is in them.
    text: Option<&'a [u8]>,
}

impl<'a> Pseudo<'a> {
    /// Takes what field `f` says (a field that is not a secret, or secrets shown).
    fn read(&mut self, f: &super::hpack::Field<'a>) {
        match f.class.role {
            FieldRole::Other => {}
            FieldRole::Method => self.method = Some(f.value),
            FieldRole::Path => self.path = Some(f.value),
            FieldRole::Authority => self.authority = Some(f.value),
            FieldRole::Status => self.status = Some(status_code(f.value)),
            FieldRole::ContentType => self.grpc_type = f.value.starts_with(b"application/grpc"),
            FieldRole::GrpcStatus => self.grpc_status = Some(f.value),
            FieldRole::GrpcMessage => self.grpc_message = Some(f.value),
            FieldRole::GrpcEncoding => self.grpc_encoding = Some(f.value),
        }
    }
}

/// The number a `:status` value holds, 0 if it holds none (no `u16` in it, as `str::parse`
/// reads one). Three digits, as every real status is, are read directly: through `from_utf8` and
/// `parse` a status cost ~60 instructions (12,000 responses on the 100 MB mesh bench file).
fn status_code(v: &[u8]) -> u16 {
    match *v {
        [a, b, c] if v.iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

/// Where one side's bytes are in.
#[derive(Clone, Debug)]
enum Dir {
    /// Nothing fed yet; the start is decided by the first bytes.
    Fresh,
    /// Joined mid-connection: looking for frames (bytes searched so far).
    Seeking(u64),
    /// Decoding.
    Frames(Box<H2Direction>),
    /// Given up (no frames found, or ended after a gap: the decoder's reason was warned).
    Over,
}

/// The connection state the frame callbacks update (everything but the two directions).
///
/// In declaration order (`repr(C)`), after the directions in [`H2Session`]: what a frame or a
/// header block reads and writes first (the table sizes, the streams, the counts, the config,
/// the report's lists), SETTINGS, GOAWAY, RST_STREAM and the warnings last (see
/// [`H2Session`]).
#[derive(Clone, Debug)]
#[repr(C)]
struct Conn {
    client: Option<Side>,
    /// `SETTINGS_HEADER_TABLE_SIZE` announced by side i: the limit of the other side's decoder.
    table_size: [Option<u32>; 2],
    /// Highest client-initiated stream opened by a request seen, and the first one.
    max_client_stream: u32,
    first_client_stream: Option<u32>,
    /// Highest stream promised by a PUSH_PROMISE.
    max_pushed: u32,
    /// Header blocks dropped because no side was known to send requests yet.
    undecided: u32,
    malformed: u32,
    streams_total: u64,
    streams: Streams,
    cfg: HttpConfig,
    report: HttpReport,
    settings: [Option<SettingsList>; 2],
    goaway: Option<(Side, u32, ErrorCode)>,
    rst: Vec<(u32, Side, ErrorCode)>,
    /// After an `Upgrade: h2c`: the DATA of stream 1, whose request is the HTTP/1 one.
    upgrade_data: Option<ByRole>,
    warnings: Vec<String>,
    warned: usize,
}

/// HTTP/2 state of one flow (h2c, later decrypted `h2`).
///
/// In declaration order (`repr(C)`, and [`Conn`]'s): what each frame and header block reads
/// and writes in the first four of the seven cache lines of its 448-byte block. In the order
/// Rust chose, the directions sat at the end, their table sizes, streams and config spread
/// over four other lines (figures: [`crate::classify::http::HttpSession`]).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct H2Session {
    dirs: [Dir; 2],
    conn: Conn,
    /// The HTTP/1 request that asked `Upgrade: h2c` is stream 1.
    upgraded: bool,
}

impl H2Session {
    /// A connection whose client is `client` when known (prior knowledge, upgrade).
    pub fn new(cfg: HttpConfig, client: Option<Side>) -> H2Session {
        H2Session {
            dirs: [Dir::Fresh, Dir::Fresh],
            conn: Conn {
                cfg,
                client,
                report: HttpReport::default(),
                settings: [None, None],
                table_size: [None, None],
                goaway: None,
                rst: Vec::new(),
                streams: Streams::default(),
                streams_total: 0,
                max_client_stream: 0,
                first_client_stream: None,
                max_pushed: 0,
                upgrade_data: None,
                warnings: Vec::new(),
                warned: 0,
                undecided: 0,
                malformed: 0,
            },
            upgraded: false,
        }
    }

    /// After `Upgrade: h2c` answered `101`: the upgrade request is stream 1, answered in HTTP/2.
    /// `http2_settings`: the request's `HTTP2-Settings` value, the client's first SETTINGS
    /// (RFC 9113 §3.2.1: base64url of a SETTINGS payload; ignored when it does not decode).
    pub(crate) fn upgraded(&mut self, client: Side, http2_settings: Option<&[u8]>) {
        let payload = http2_settings
            .filter(|v| v.len() <= 4 * MAX_SETTINGS * 6)
            .and_then(crate::classify::istio::base64_decode)
            .filter(|p| !p.is_empty() && p.len() % 6 == 0);
        if let Some(p) = payload {
            if self.conn.settings[client.idx()].is_none() {
                self.conn.settings(client, super::Settings::from_payload(&p).iter());
            }
        }
        self.conn.client = Some(client);
        if !self.upgraded {
            self.upgraded = true;
            self.conn.streams.insert_new(1, Stream::default());
            self.conn.max_client_stream = 1;
            self.conn.first_client_stream = Some(1);
            self.conn.streams_total += 1;
            self.conn.upgrade_data = Some(ByRole::default());
        }
    }

    /// `side` sends requests (it sent the client preface).
    pub(crate) fn set_client(&mut self, side: Side) {
        self.conn.client.get_or_insert(side);
    }

    /// `side`'s bytes are joined at an unknown point: frames are searched for.
    pub fn seek(&mut self, side: Side) {
        if matches!(self.dirs[side.idx()], Dir::Fresh) {
            self.dirs[side.idx()] = Dir::Seeking(0);
        }
    }

    /// The side that sends requests, once known.
    pub(crate) fn client_side(&self) -> Option<Side> {
        self.conn.client
    }

    /// Requests recorded so far, in order.
    pub fn requests(&self) -> &[HttpRequest] {
        &self.conn.report.requests
    }

    /// Bytes allocated by the two directions' buffers and HPACK tables.
    pub fn buffered(&self) -> usize {
        self.dirs.iter().map(|d| if let Dir::Frames(d) = d { d.allocated() } else { 0 }).sum()
    }

    /// Drains warnings (the classifier takes them with the report: [`H2Session::into_report`]).
    #[cfg(test)]
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.conn.warnings)
    }

    fn limits(&self) -> H2Limits {
        let m = self.conn.cfg.max_header_bytes;
        H2Limits { max_block_bytes: m, max_list_bytes: m, lean: self.conn.cfg.lean_headers }
    }

    /// A decoder for `side`, with the other side's announced table size as its limit.
    fn open(&self, side: Side, mid: bool, start: Start) -> Dir {
        let mut d =
            if mid { H2Direction::mid_stream(self.limits()) } else { H2Direction::new(start, self.limits()) };
        if let Some(v) = self.conn.table_size[side.other().idx()] {
            d.set_table_limit(v);
        }
        Dir::Frames(Box::new(d))
    }

    /// Feeds in-order bytes of `side`.
    pub fn feed(&mut self, side: Side, data: &[u8]) -> Feed {
        let s = side.idx();
        let mut data = data;
        match self.dirs[s] {
            Dir::Over => return Feed::Done,
            Dir::Fresh => {
                // The client of a connection seen from its start opens with the preface.
                let start = if self.conn.client == Some(side) && is_h2_preface(data) != Probe::NoMatch {
                    Start::Preface
                } else {
                    Start::Frame
                };
                self.dirs[s] = self.open(side, false, start);
            }
            Dir::Seeking(n) => match find_frames(data) {
                Some(off) => {
                    self.dirs[s] = self.open(side, true, Start::Frame);
                    data = &data[off..];
                }
                None => {
                    let n = n.saturating_add(data.len() as u64);
                    if n > MAX_SEEK_BYTES {
                        self.dirs[s] = Dir::Over;
                        return Feed::Done;
                    }
                    self.dirs[s] = Dir::Seeking(n);
                    return Feed::More;
                }
            },
            Dir::Frames(_) => {}
        }
        let Dir::Frames(d) = &mut self.dirs[s] else { return Feed::Done };
        let before = self.conn.table_size[s];
        let conn = &mut self.conn;
        d.feed(data, &mut |ev| conn.event(side, ev));
        let ended = d.end_reason();
        let announced = self.conn.table_size[s];
        if announced != before {
            if let (Some(v), Dir::Frames(o)) = (announced, &mut self.dirs[side.other().idx()]) {
                o.set_table_limit(v);
            }
        }
        if let Some(r) = ended {
            let who = self.conn.who(side);
            self.conn
                .warn(format!("http2: the {who}'s bytes are not HTTP/2 frames ({r:?}); not decoded further"));
            self.dirs[s] = Dir::Over;
            return Feed::Done;
        }
        Feed::More
    }

    /// Bytes of `side` were lost: its frames can no longer be delimited, decoding of that
    /// direction ends (a side still searching for frames goes on searching).
    pub fn gap(&mut self, side: Side) -> Feed {
        let s = side.idx();
        match self.dirs[s] {
            Dir::Seeking(_) => Feed::More,
            Dir::Over => Feed::Done,
            Dir::Fresh | Dir::Frames(_) => {
                let who = self.conn.who(side);
                self.conn
                    .warn(format!("http2: missing bytes from the {who}; its frames are not decoded further"));
                self.dirs[s] = Dir::Over;
                Feed::Done
            }
        }
    }

    /// Memory pressure: both directions stop (their buffers and tables are freed).
    pub fn shed(&mut self) {
        for side in [Side::A, Side::B] {
            if matches!(self.dirs[side.idx()], Dir::Frames(_)) {
                self.gap(side);
            }
        }
    }

    /// The report so far; `client` (the flow's decided client) maps sides to roles when the
    /// connection did not tell. `http1`: the HTTP/1 messages before an upgrade.
    pub fn report(&self, client: Side, http1: Option<HttpReport>) -> HttpReport {
        // Only the connection state is copied, not the directions' buffers and HPACK tables.
        let h = H2Session { dirs: [Dir::Over, Dir::Over], conn: self.conn.clone(), upgraded: self.upgraded };
        h.into_report(client, http1).0
    }

    /// The report, moved out, with the warnings not yet taken.
    pub fn into_report(mut self, client: Side, http1: Option<HttpReport>) -> (HttpReport, Vec<String>) {
        let c = &mut self.conn;
        if c.undecided > 0 {
            let n = c.undecided;
            c.warn(format!("http2: {n} header block(s) before either side was seen sending requests"));
        }
        if c.malformed > 0 {
            let n = c.malformed;
            c.warn(format!("http2: {n} malformed frame(s) skipped"));
        }
        let client = c.client.unwrap_or(client);
        let role = |s: Side| if s == client { Role::Client } else { Role::Server };
        let [a, b] = std::mem::take(&mut c.settings);
        let (cs, ss) = if client == Side::A { (a, b) } else { (b, a) };
        let h2 = Http2Report {
            settings: Http2Settings { client: cs, server: ss },
            goaway: c.goaway.map(|(s, last_stream, e)| GoAway {
                from: role(s),
                last_stream,
                error: error_text(e),
            }),
            rst_streams: c
                .rst
                .iter()
                .map(|&(stream, s, e)| RstStream { stream, from: role(s), error: error_text(e) })
                .collect(),
            streams_total: c.streams_total,
        };
        let mine = std::mem::take(&mut c.report);
        let mut r = match http1 {
            Some(mut h) => {
                if self.upgraded && h.responses.iter().any(|a| a.status == 101) {
                    // RFC 9113 §3.2: the request that asked for the upgrade is stream 1.
                    if let Some(q) = h.requests.last_mut() {
                        q.stream_id = 1;
                        if let Some(data) = c.upgrade_data.take() {
                            q.h2.get_or_insert_with(Default::default).data = data;
                        }
                    }
                    for a in h.responses.iter_mut().filter(|a| a.status == 101) {
                        a.stream_id = 1;
                    }
                }
                h.requests.extend(mine.requests);
                h.responses.extend(mine.responses);
                h.requests_total = h.requests_total.saturating_add(mine.requests_total);
                h.responses_total = h.responses_total.saturating_add(mine.responses_total);
                h
            }
            None => mine,
        };
        r.version = Some("HTTP/2");
        r.http2 = Some(Box::new(h2));
        (r, std::mem::take(&mut self.conn.warnings))
    }
}

impl Conn {
    fn warn(&mut self, w: String) {
        if self.warned < MAX_WARNINGS {
            self.warnings.push(w);
        }
        self.warned = self.warned.saturating_add(1);
    }

    fn who(&self, side: Side) -> &'static str {
        match self.client {
            Some(c) if c == side => "client",
            Some(_) => "server",
            None => "one side",
        }
    }

    fn event(&mut self, side: Side, ev: H2Event<'_>) {
        match ev {
            H2Event::Headers(h) => self.block(side, &h),
            H2Event::Frame(f) => self.frame(side, f),
        }
    }

    fn frame(&mut self, side: Side, f: Frame<'_>) {
        match f {
            Frame::DataChunk { stream, bytes } => {
                let from_client = self.client == Some(side);
                if let Some(st) = self.streams.get_mut(stream).filter(|s| s.grpc) {
                    let (n, len) = st.walk(Stream::walk_index(from_client), bytes);
                    if let Some(g) = st
                        .req
                        .and_then(|i| self.report.requests.get_mut(i as usize))
                        .and_then(|q| q.h2.as_mut())
                        .and_then(|h| h.grpc.as_mut())
                    {
                        g.messages.add(from_client, n);
                        g.message_bytes.add(from_client, len);
                    }
                }
            }
            Frame::Data { stream, len, .. } => {
                let from_client = self.client == Some(side);
                let st = self.streams.get(stream);
                if let Some(q) = st
                    .and_then(|st| st.req)
                    .and_then(|i| self.report.requests.get_mut(i as usize))
                    .and_then(|q| q.h2.as_mut())
                {
                    q.data.add(from_client, len.into());
                } else if let (1, Some(d), Some(None)) =
                    (stream, self.upgrade_data.as_mut(), st.map(|st| st.req))
                {
                    d.add(from_client, len.into());
                }
            }
            Frame::Settings { ack: false, settings, truncated } => {
                self.settings(side, settings.iter());
                if truncated {
                    self.malformed = self.malformed.saturating_add(1);
                }
            }
            Frame::RstStream { stream, code } if self.rst.len() < self.cfg.max_messages => {
                self.rst.push((stream, side, code));
            }
            Frame::GoAway { last_stream, code, .. } => self.goaway = Some((side, last_stream, code)),
            Frame::Malformed { .. } => self.malformed = self.malformed.saturating_add(1),
            _ => {}
        }
    }

    /// SETTINGS parameters sent by `side`, merged into its list (a later value replaces an
    /// earlier one).
    fn settings(&mut self, side: Side, params: impl Iterator<Item = (SettingId, u32)>) {
        let list = self.settings[side.idx()].get_or_insert_with(SettingsList::default);
        for (id, v) in params {
            match list.0.iter().position(|(i, _)| *i == id) {
                Some(k) => list.0[k].1 = v,
                None if list.0.len() < MAX_SETTINGS => list.0.push((id, v)),
                None => {}
            }
            if id == SettingId::HEADER_TABLE_SIZE {
                self.table_size[side.idx()] = Some(v);
            }
        }
    }

    fn block(&mut self, side: Side, h: &super::Headers<'_>) {
        let l = h.fields;
        if let Some(c) = h.cut {
            self.warn(format!("http2: header block of stream {} not decoded ({})", h.stream, c.as_str()));
        }
        if let Some(e) = h.error {
            self.warn(format!("http2: header block of stream {}: {e}", h.stream));
        }
        if l.oversize {
            let n = l.dropped;
            self.warn(format!(
                "http2: header list of stream {} over {} bytes; {n} field(s) not kept",
                h.stream, self.cfg.max_header_bytes
            ));
        }
        if l.over_limit {
            self.warn(
                "http2: HPACK table size update above the receiver's SETTINGS_HEADER_TABLE_SIZE".into(),
            );
        }
        if h.cut.is_some() {
            return;
        }
        let (headers, p) = self.store(l);
        let push = match h.kind {
            BlockKind::PushPromise { promised } => Some(promised),
            BlockKind::Headers => None,
        };
        let client = match self.client {
            Some(c) => c,
            None if push.is_some() || p.status.is_some() => *self.client.insert(side.other()),
            None if p.method.is_some() => *self.client.insert(side),
            None => {
                self.undecided = self.undecided.saturating_add(1);
                return;
            }
        };
        if side == client {
            if push.is_some() {
                self.malformed = self.malformed.saturating_add(1);
            } else if h.stream > self.max_client_stream && !self.streams.contains_key(h.stream) {
                self.max_client_stream = h.stream;
                self.first_client_stream.get_or_insert(h.stream);
                self.request(h.stream, None, l.unknown, headers, &p);
            } else if let Some(q) = self
                .streams
                .get(h.stream)
                .and_then(|s| s.req)
                .and_then(|i| self.report.requests.get_mut(i as usize))
                .and_then(|q| q.h2.as_mut())
            {
                q.trailers = headers;
                q.unknown_fields = q.unknown_fields.saturating_add(l.unknown);
            }
        } else if let Some(promised) = push {
            if promised > self.max_pushed && !self.streams.contains_key(promised) {
                self.max_pushed = promised;
                self.request(promised, Some(h.stream), l.unknown, headers, &p);
            }
        } else {
            self.response(h.stream, l.unknown, headers, &p);
        }
    }

    /// A request (HEADERS from the client, or the block of a PUSH_PROMISE sent on stream
    /// `pushed_by`) opens `stream`.
    fn request(
        &mut self,
        stream: u32,
        pushed_by: Option<u32>,
        unknown: u32,
        headers: Headers,
        p: &Pseudo<'_>,
    ) {
        self.streams_total = self.streams_total.saturating_add(1);
        let r = &mut self.report;
        r.requests_total = r.requests_total.saturating_add(1);
        if r.requests.len() >= self.cfg.max_messages || self.streams.len() >= self.cfg.max_messages {
            return;
        }
        let grpc = p.grpc_type.then(|| {
            let mut g = GrpcCall::default();
            set_grpc_path(&mut g, p.path.unwrap_or_default());
            g.encoding = p.grpc_encoding.map(WireBytes::new);
            Box::new(g)
        });
        let st =
            Stream { req: u32::try_from(r.requests.len()).ok(), grpc: grpc.is_some(), ..Stream::default() };
        first_capacity(&mut r.requests, self.cfg.max_messages);
        let path_text = MsgText::in_headers(p.path.unwrap_or_default(), p.text, &headers);
        let host_text = p.authority.map(|a| MsgText::in_headers(a, p.text, &headers));
        r.requests.push(HttpRequest {
            method: WireBytes::new(p.method.unwrap_or_default()),
            path_text,
            ver: Some(Version::Http2),
            host_text,
            headers,
            stream_id: stream,
            h2: Some(Box::new(H2Request {
                unknown_fields: unknown,
                grpc,
                pushed_by: pushed_by.unwrap_or(NOT_PUSHED),
                ..H2Request::default()
            })),
        });
        self.streams.insert_new(stream, st);
    }

    /// A server block on `stream`: an interim or final response, or trailers.
    fn response(&mut self, stream: u32, unknown: u32, headers: Headers, p: &Pseudo<'_>) {
        let known = self.streams.get(stream).map(|s| s.resp);
        let trailers = match (p.status, known) {
            (Some(s), _) if (100..200).contains(&s) => false,
            (Some(_), _) | (None, Some(None)) => false,
            (None, Some(Some(_))) => true,
            // No `:status` on a stream not recorded: the trailers of an unrecorded stream, or of
            // one opened before the capture.
            (None, None) => return,
        };
        if trailers {
            let Some(Some(i)) = known else { return };
            if let Some(a) = self.report.responses.get_mut(i as usize) {
                let a = a.h2.get_or_insert_with(Default::default);
                a.trailers = headers;
                a.unknown_fields = a.unknown_fields.saturating_add(unknown);
            }
            self.grpc_status(stream, p);
            return;
        }
        let status = p.status.unwrap_or(0);
        let interim = (100..200).contains(&status);
        if known.is_none() {
            // A response to a request not seen: opened before the capture (or not recorded).
            let before = if stream % 2 == 1 {
                self.first_client_stream.is_none_or(|f| stream < f)
            } else {
                self.max_pushed == 0
            };
            if !before {
                self.report.responses_total = self.report.responses_total.saturating_add(1);
                return;
            }
            if !interim {
                self.streams_total = self.streams_total.saturating_add(1);
            }
        }
        self.report.responses_total = self.report.responses_total.saturating_add(1);
        if self.report.responses.len() >= self.cfg.max_messages {
            return;
        }
        if known.is_none() && self.streams.len() >= self.cfg.max_messages {
            return;
        }
        let i = self.report.responses.len();
        first_capacity(&mut self.report.responses, self.cfg.max_messages);
        self.report.responses.push(HttpResponse {
            ver: Some(Version::Http2),
            status,
            reason: WireBytes::default(),
            headers,
            stream_id: stream,
            // Boxed only when there is something to box (trailers, unknown fields): without
            // them the report reads the same (`HttpResponse::trailers`), and most responses
            // have neither: one malloc and one cold block fewer a response (figures: `Stream`).
            h2: (unknown > 0)
                .then(|| Box::new(H2Response { trailers: Headers::default(), unknown_fields: unknown })),
        });
        let st = self.streams.get_or_default(stream);
        if !interim {
            st.resp = u32::try_from(i).ok();
            if p.grpc_type && !st.grpc {
                st.grpc = true;
                if let Some(q) = st.req.and_then(|r| self.report.requests.get_mut(r as usize)) {
                    if q.h2.as_ref().is_some_and(|h| h.grpc.is_none()) {
                        let mut g = GrpcCall::default();
                        set_grpc_path(&mut g, q.path());
                        if let Some(h) = q.h2.as_mut() {
                            h.grpc = Some(Box::new(g));
                        }
                    }
                }
            }
            // A trailers-only response carries the status in its headers.
            self.grpc_status(stream, p);
        }
    }

    fn grpc_status(&mut self, stream: u32, p: &Pseudo<'_>) {
        if p.grpc_status.is_none() && p.grpc_message.is_none() {
            return;
        }
        let Some(g) = self
            .streams
            .get(stream)
            .and_then(|s| s.req)
            .and_then(|i| self.report.requests.get_mut(i as usize))
            .and_then(|q| q.h2.as_mut())
            .and_then(|h| h.grpc.as_mut())
        else {
            return;
        };
        if let Some(s) = p.grpc_status {
            g.status = grpc_status_code(s);
            g.status_name = g.status.and_then(grpc_status_name);
        }
        if let Some(m) = p.grpc_message {
            // Most messages have no escape: copied as they are, without the decoded copy
            // `percent_decode` makes (1.1 M instructions on the 100 MB mesh bench file).
            g.message =
                Some(if m.contains(&b'%') { WireBytes::new(&percent_decode(m)) } else { WireBytes::new(m) });
        }
    }
}

/// The number a `grpc-status` value holds (surrounding whitespace allowed, as `str::trim` and
/// `parse` read it). One or two digits, as every real status is, are read directly: through
/// `from_utf8`, `trim` and `parse` a status cost ~60 instructions more (21k on the 100 MB mesh
/// bench file).
fn grpc_status_code(v: &[u8]) -> Option<u32> {
    match *v {
        [a] if a.is_ascii_digit() => Some(u32::from(a - b'0')),
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()),
    }
}

/// `/pkg.Service/Method` → the ranges of service and method in `path` (the request's path).
fn set_grpc_path(g: &mut GrpcCall, path: &[u8]) {
    // Header lists are bounded far below this; a longer path gives neither.
    let Ok(end) = u32::try_from(path.len()) else { return };
    let start = u32::from(path.first() == Some(&b'/'));
    let (svc, meth) = match path[start as usize..].iter().position(|&b| b == b'/') {
        Some(i) => ((start, start + i as u32), (start + i as u32 + 1, end)),
        None => ((start, end), (end, end)),
    };
    g.service = svc;
    g.method = meth;
}

/// Percent-decoding of `grpc-message` (gRPC over HTTP/2: "Percent-Encoded"); a `%` not
/// followed by two hex digits is kept as is.
pub(crate) fn percent_decode(v: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if let (Some(h), Some(l)) =
                (v.get(i + 1).and_then(|&b| hex(b)), v.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

mod store;
mod streams;

/// Messages an HTTP/2 request or response list holds from its first push. Vec's first capacity
/// is 4, then 8: a connection with a fifth stream copied its cold first four into a fresh block
/// (and then held room for 8). `bench/misses` one thread, cycles~: 30 MB slices default 75.60
/// -> 75.51 M, mesh 80.32 -> 80.21 M; 100 MB files default 233.82 -> 233.30 M (L2 misses 2.229
/// -> 2.220 M), mesh 309.33 -> 308.49 M (L2 3.065 -> 3.045 M); max RSS (mesh 1 GB, one thread)
/// 60.46-60.66 -> 60.10-60.30 MB. 6 grew that RSS by ~0.5 MB, 8 by ~250 KiB (long-lived
/// connections with few streams).
const FIRST_MESSAGES: usize = 5;

/// Gives an empty list room for [`FIRST_MESSAGES`] (at most `max`) before its first push.
#[inline(always)]
fn first_capacity<T>(list: &mut Vec<T>, max: usize) {
    if list.capacity() == 0 {
        list.reserve_exact(FIRST_MESSAGES.min(max));
    }
}

#[test]
fn a_message_list_starts_with_room_for_five() {
    let (mut a, mut b, mut c) = (Vec::<u64>::new(), Vec::<u64>::new(), vec![1u64]);
    first_capacity(&mut a, 1000);
    first_capacity(&mut b, 2);
    first_capacity(&mut c, 1000);
    assert_eq!((a.capacity(), b.capacity(), c.capacity()), (5, 2, 1));
}

#[cfg(test)]
mod tests;

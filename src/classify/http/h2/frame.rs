//! HTTP/2 framing (RFC 9113 §4, §6) of one direction of a connection, fed in arbitrary slices.
//!
//! [`FrameDecoder`] takes the bytes one endpoint sent (reassembled TCP today, decrypted TLS
//! later) and reports each frame as a [`Frame`] event. It owns the client preface, the 9-byte
//! frame headers, padding, and the assembly of header blocks (HEADERS or PUSH_PROMISE, then
//! CONTINUATION frames up to END_HEADERS); HPACK is left to [`super::hpack`].
//!
//! Memory is bounded whatever the input: a partial frame header (9 bytes); the first
//! [`MAX_CONTROL_BYTES`] of a control frame's payload; a header block up to `max_block_bytes`.
//! DATA payloads are never buffered: they are counted and handed out as they arrive
//! ([`Frame::DataChunk`], for a consumer that wants gRPC message prefixes). A header block
//! that grows past its bound, or spans more than [`MAX_CONTINUATION_FRAMES`] frames (the
//! CONTINUATION floods of 2024), is cut: reported at once with [`CutReason`] and its remaining
//! fragments skipped. A complete unpadded single-frame header block already in the fed slice is
//! reported in place, without a copy.
//!
//! Malformed frames (wrong fixed length, wrong stream id, bad padding) are reported and
//! skipped by their length: the framing stays in step. A gap (a missed segment) ends the
//! direction ([`EndReason::Gap`]): after it, frame boundaries are unknown.
//!
//! [`find_frame_chain`] recognises HTTP/2 mid-stream, from chained valid frame headers.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 9;
/// Payload bytes of a control frame (SETTINGS, GOAWAY, ...) kept: 170 settings, or a GOAWAY
/// with 1012 bytes of debug data; the rest is skipped.
pub(crate) const MAX_CONTROL_BYTES: usize = 1020;
/// Frames one header block may span (HEADERS or PUSH_PROMISE and its CONTINUATIONs). A
/// 64 KiB block in default 16 KiB frames needs five.
pub(crate) const MAX_CONTINUATION_FRAMES: u32 = 64;
/// Complete frame headers [`find_frame_chain`] wants chained before it believes in HTTP/2.
pub(crate) const MIN_CHAIN_FRAMES: usize = 3;

/// A frame type (RFC 9113 §6; unknown values are kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrameType(pub u8);

impl FrameType {
    /// DATA (§6.1).
    pub(crate) const DATA: FrameType = FrameType(0);
    /// HEADERS (§6.2).
    pub(crate) const HEADERS: FrameType = FrameType(1);
    /// PRIORITY (§6.3).
    pub(crate) const PRIORITY: FrameType = FrameType(2);
    /// RST_STREAM (§6.4).
    pub(crate) const RST_STREAM: FrameType = FrameType(3);
    /// SETTINGS (§6.5).
    pub(crate) const SETTINGS: FrameType = FrameType(4);
    /// PUSH_PROMISE (§6.6).
    pub(crate) const PUSH_PROMISE: FrameType = FrameType(5);
    /// PING (§6.7).
    pub(crate) const PING: FrameType = FrameType(6);
    /// GOAWAY (§6.8).
    pub(crate) const GOAWAY: FrameType = FrameType(7);
    /// WINDOW_UPDATE (§6.9).
    pub(crate) const WINDOW_UPDATE: FrameType = FrameType(8);
    /// CONTINUATION (§6.10).
    pub(crate) const CONTINUATION: FrameType = FrameType(9);

    /// The RFC's name, or None for a type this decoder skips.
    pub(crate) fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 10] = [
            "DATA",
            "HEADERS",
            "PRIORITY",
            "RST_STREAM",
            "SETTINGS",
            "PUSH_PROMISE",
            "PING",
            "GOAWAY",
            "WINDOW_UPDATE",
            "CONTINUATION",
        ];
        NAMES.get(self.0 as usize).copied()
    }

    /// Flag bits defined for this type (RFC 9113 §6).
    fn defined_flags(self) -> u8 {
        match self {
            FrameType::DATA => flags::END_STREAM | flags::PADDED,
            FrameType::HEADERS => flags::END_STREAM | flags::END_HEADERS | flags::PADDED | flags::PRIORITY,
            FrameType::SETTINGS | FrameType::PING => flags::ACK,
            FrameType::PUSH_PROMISE => flags::END_HEADERS | flags::PADDED,
            FrameType::CONTINUATION => flags::END_HEADERS,
            _ => 0,
        }
    }
}

/// Frame flag bits (RFC 9113 §6).
pub(crate) mod flags {
    /// DATA, HEADERS: last frame of the stream from this side.
    pub(crate) const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement.
    pub(crate) const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub(crate) const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte and padding.
    pub(crate) const PADDED: u8 = 0x8;
    /// HEADERS: dependency and weight fields.
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// An HTTP/2 error code (RFC 9113 §7; unknown values are kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The RFC's name (`NO_ERROR`, `PROTOCOL_ERROR`, ...), or None for an unknown code.
    pub(crate) fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied()
    }
}

/// A SETTINGS parameter identifier (RFC 9113 §6.5.2; unknown values are kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SettingId(pub u16);

impl SettingId {
    /// SETTINGS_HEADER_TABLE_SIZE: the sender's HPACK decoder limit.
    pub const HEADER_TABLE_SIZE: SettingId = SettingId(1);
    /// SETTINGS_ENABLE_PUSH.
    pub(crate) const ENABLE_PUSH: SettingId = SettingId(2);
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub(crate) const MAX_CONCURRENT_STREAMS: SettingId = SettingId(3);
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub(crate) const INITIAL_WINDOW_SIZE: SettingId = SettingId(4);
    /// SETTINGS_MAX_FRAME_SIZE.
    pub(crate) const MAX_FRAME_SIZE: SettingId = SettingId(5);
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub(crate) const MAX_HEADER_LIST_SIZE: SettingId = SettingId(6);
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    pub(crate) const ENABLE_CONNECT_PROTOCOL: SettingId = SettingId(8);
    /// SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218).
    pub(crate) const NO_RFC7540_PRIORITIES: SettingId = SettingId(9);

    /// The RFC's name, or None for an unknown identifier.
    pub(crate) fn name(self) -> Option<&'static str> {
        Some(match self {
            SettingId::HEADER_TABLE_SIZE => "HEADER_TABLE_SIZE",
            SettingId::ENABLE_PUSH => "ENABLE_PUSH",
            SettingId::MAX_CONCURRENT_STREAMS => "MAX_CONCURRENT_STREAMS",
            SettingId::INITIAL_WINDOW_SIZE => "INITIAL_WINDOW_SIZE",
            SettingId::MAX_FRAME_SIZE => "MAX_FRAME_SIZE",
            SettingId::MAX_HEADER_LIST_SIZE => "MAX_HEADER_LIST_SIZE",
            SettingId::ENABLE_CONNECT_PROTOCOL => "ENABLE_CONNECT_PROTOCOL",
            SettingId::NO_RFC7540_PRIORITIES => "NO_RFC7540_PRIORITIES",
            _ => return None,
        })
    }
}

/// The parameters of one SETTINGS frame, in order (at most [`MAX_CONTROL_BYTES`] of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings<'a>(&'a [u8]);

impl<'a> Settings<'a> {
    /// The parameters of a SETTINGS payload (six bytes each; a partial last one is ignored).
    pub(crate) fn from_payload(payload: &'a [u8]) -> Settings<'a> {
        Settings(payload)
    }

    /// Identifier and value of each parameter, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SettingId, u32)> + 'a {
        self.0.chunks_exact(6).map(|c| (SettingId(u16::from_be_bytes([c[0], c[1]])), be32(&c[2..6])))
    }

    /// The last value of `id` in this frame.
    pub fn get(&self, id: SettingId) -> Option<u32> {
        self.iter().filter(|&(i, _)| i == id).map(|(_, v)| v).last()
    }
}

/// Stream priority fields (RFC 9113 §5.3.2, deprecated but still sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The stream this one depends on.
    pub(crate) depends_on: u32,
    /// The exclusive flag.
    pub(crate) exclusive: bool,
    /// Weight minus one, as sent.
    pub(crate) weight: u8,
}

impl Priority {
    fn parse(b: &[u8]) -> Priority {
        let d = be32(b);
        Priority { depends_on: d & 0x7fff_ffff, exclusive: d >> 31 != 0, weight: b[4] }
    }
}

/// What started a header block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A HEADERS frame: request, response or trailers of `stream`.
    Headers,
    /// A PUSH_PROMISE: the request of the server-initiated stream `promised`.
    PushPromise {
        /// The reserved stream.
        promised: u32,
    },
}

/// Why a header block was not assembled. The HPACK decoder must then forget its table: the
/// encoder's inserts in the lost block are unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// Longer than `max_block_bytes`.
    TooLarge,
    /// Spread over more than [`MAX_CONTINUATION_FRAMES`] frames.
    ContinuationFlood,
    /// Another frame came before END_HEADERS (RFC 9113 §6.10 forbids it).
    Interrupted,
    /// A CONTINUATION without a block to continue (the capture started inside a block, or the
    /// stream is broken).
    Orphan,
    /// Bad padding, or a frame on stream 0.
    Malformed,
}

impl CutReason {
    /// A lowercase word for warnings and output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CutReason::TooLarge => "too_large",
            CutReason::ContinuationFlood => "continuation_flood",
            CutReason::Interrupted => "interrupted",
            CutReason::Orphan => "orphan_continuation",
            CutReason::Malformed => "malformed",
        }
    }
}

/// A header block, assembled or cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// Stream of the HEADERS or PUSH_PROMISE frame.
    pub(crate) stream: u32,
    /// HEADERS or PUSH_PROMISE.
    pub(crate) kind: BlockKind,
    /// END_STREAM was set on the HEADERS frame.
    pub(crate) end_stream: bool,
    /// The HEADERS frame's priority fields (PRIORITY flag).
    pub(crate) priority: Option<Priority>,
    /// The HPACK bytes (empty when cut).
    pub(crate) fragment: &'a [u8],
    /// Set when the block was not assembled; reported when the cut happens.
    pub(crate) cut: Option<CutReason>,
}

/// A frame problem that does not lose a header block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A length the type does not allow (PING not 8 bytes, SETTINGS not a multiple of 6...).
    Length,
    /// Padding longer than the payload.
    Padding,
    /// A stream frame on stream 0, or a connection frame on a stream.
    Stream,
}

/// One event of the frame layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Payload bytes of a DATA frame (padding removed), as they arrive; a frame may give
    /// several chunks, then its [`Frame::Data`].
    DataChunk {
        /// Stream id.
        stream: u32,
        /// Bytes of this piece.
        bytes: &'a [u8],
    },
    /// A DATA frame ended.
    Data {
        /// Stream id.
        stream: u32,
        /// Data bytes (padding excluded).
        len: u32,
        /// END_STREAM flag.
        end_stream: bool,
    },
    /// A header block (assembled at END_HEADERS, or cut).
    Block(Block<'a>),
    /// PRIORITY.
    Priority {
        /// Stream id.
        stream: u32,
        /// The fields.
        priority: Priority,
    },
    /// RST_STREAM: the sender of this direction reset `stream`.
    RstStream {
        /// Stream id.
        stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS of the sender of this direction.
    Settings {
        /// An acknowledgement (no parameters).
        ack: bool,
        /// The parameters.
        settings: Settings<'a>,
        /// Parameters past [`MAX_CONTROL_BYTES`] were skipped.
        truncated: bool,
    },
    /// PING.
    Ping {
        /// An answer.
        ack: bool,
        /// Opaque data.
        opaque: [u8; 8],
    },
    /// GOAWAY: the sender of this direction closes the connection.
    GoAway {
        /// Last stream it processed.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
        /// Debug data (at most [`MAX_CONTROL_BYTES`] - 8 bytes).
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE.
    WindowUpdate {
        /// Stream id (0: the connection).
        stream: u32,
        /// Increment.
        increment: u32,
    },
    /// A frame of a type this decoder does not know, skipped (RFC 9113 §5.5).
    Unknown {
        /// Type.
        ty: FrameType,
        /// Stream id.
        stream: u32,
        /// Payload length.
        len: u32,
    },
    /// A malformed frame, skipped.
    Malformed {
        /// Type.
        ty: FrameType,
        /// Stream id.
        stream: u32,
        /// What was wrong.
        problem: Problem,
    },
}

/// Why a direction stopped being decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// A missed segment: frame boundaries are lost.
    Gap,
    /// The first bytes of a client were not the connection preface.
    BadPreface,
}

/// Where a direction's bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// With the client connection preface (the client of a prior-knowledge or upgraded
    /// connection).
    Preface,
    /// With a frame header (the server's side, or a side found by [`find_frame_chain`]).
    Frame,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Bytes of the preface matched (at most 24).
    Preface(u8),
    /// Collecting a frame header.
    Header,
    /// Inside a payload.
    Payload,
    Done(EndReason),
}

/// The frame being read.
#[derive(Clone, Copy, Debug, Default)]
struct Cur {
    len: u32,
    ty: FrameType,
    flags: u8,
    stream: u32,
    /// Payload bytes consumed.
    pos: u32,
    /// Bytes before the content: pad length, priority fields, promised stream id.
    pre_len: u32,
    /// Padding length, known once the prefix is read.
    pad: u32,
    /// Malformed: the rest is skipped and reported at the end.
    bad: Option<Problem>,
    /// Skip the content (an orphan CONTINUATION, a cut block).
    skip: bool,
}

/// A header block waiting for END_HEADERS.
#[derive(Clone, Copy, Debug)]
struct Open {
    stream: u32,
    kind: BlockKind,
    end_stream: bool,
    priority: Option<Priority>,
    frames: u32,
    /// Cut: fragments are skipped until END_HEADERS.
    cut: bool,
    /// Already reported in place (single-frame fast path).
    reported: bool,
}

/// The frame layer of one direction.
///
/// In declaration order (`repr(C)`): what every frame reads (the state, a partial header's
/// length, the bound and the open block) in its first 36 bytes, which [`super::H2Direction`]
/// puts right after the HPACK decoder; a partial frame's state and the buffers after them.
/// The frame count it kept was never read (a store a frame).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct FrameDecoder {
    state: State,
    /// Bytes of `hdr` read (at most [`FRAME_HEADER_LEN`]).
    hdr_len: u8,
    /// `max_block_bytes`, at most `u32::MAX` (a block spans at most
    /// [`MAX_CONTINUATION_FRAMES`] frames of at most 16 MiB).
    max_block: u32,
    open: Option<Open>,
    hdr: [u8; FRAME_HEADER_LEN],
    pre: [u8; 6],
    cur: Cur,
    ctl: Vec<u8>,
    block: Vec<u8>,
}

// What every frame reads is in the first 36 bytes (see `super::H2Direction`).
const _: () = assert!(
    std::mem::offset_of!(FrameDecoder, open) + std::mem::size_of::<Option<Open>>() <= 36
        && std::mem::offset_of!(FrameDecoder, max_block) < 36
        && std::mem::offset_of!(FrameDecoder, hdr_len) < 36
        && std::mem::offset_of!(FrameDecoder, state) < 36
);

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl FrameDecoder {
    /// A decoder whose bytes begin as `start` says; header blocks are bounded by
    /// `max_block_bytes`.
    pub(crate) fn new(start: Start, max_block_bytes: usize) -> FrameDecoder {
        FrameDecoder {
            state: if start == Start::Preface { State::Preface(0) } else { State::Header },
            hdr_len: 0,
            max_block: u32::try_from(max_block_bytes).unwrap_or(u32::MAX),
            open: None,
            hdr: [0; FRAME_HEADER_LEN],
            pre: [0; 6],
            cur: Cur::default(),
            ctl: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Why decoding stopped, if it did.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        match self.state {
            State::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Bytes held in buffers (allocated capacity).
    pub(crate) fn buffered(&self) -> usize {
        self.ctl.capacity() + self.block.capacity()
    }

    /// Bytes were lost: decoding of this direction ends.
    pub(crate) fn gap(&mut self) {
        self.end(EndReason::Gap);
    }

    fn end(&mut self, r: EndReason) {
        self.state = State::Done(r);
        self.open = None;
        self.block = Vec::new();
        self.ctl = Vec::new();
    }

    /// Feeds the next bytes of this direction; events go to `sink` in stream order.
    pub(crate) fn feed<F: FnMut(Frame<'_>)>(&mut self, mut data: &[u8], sink: &mut F) {
        while !data.is_empty() {
            match self.state {
                State::Done(_) => return,
                State::Preface(n) => {
                    let n = usize::from(n);
                    let k = (PREFACE.len() - n).min(data.len());
                    if data[..k] != PREFACE[n..n + k] {
                        self.end(EndReason::BadPreface);
                        return;
                    }
                    data = &data[k..];
                    self.state =
                        if n + k == PREFACE.len() { State::Header } else { State::Preface((n + k) as u8) };
                }
                State::Header => {
                    if self.hdr_len == 0 {
                        if let Some(n) = self.whole_frame(data, sink) {
                            data = &data[n..];
                            continue;
                        }
                    }
                    let at = usize::from(self.hdr_len);
                    let k = (FRAME_HEADER_LEN - at).min(data.len());
                    if k == FRAME_HEADER_LEN {
                        // A whole header in `data` (nearly always): a fixed-size copy, not a
                        // `memcpy` call (62k on the 100 MB mesh bench file).
                        self.hdr = data[..FRAME_HEADER_LEN].try_into().expect("nine bytes");
                    } else {
                        self.hdr[at..at + k].copy_from_slice(&data[..k]);
                    }
                    self.hdr_len += k as u8;
                    data = &data[k..];
                    if usize::from(self.hdr_len) == FRAME_HEADER_LEN {
                        self.hdr_len = 0;
                        self.begin(sink);
                    }
                }
                State::Payload => {
                    let k = ((self.cur.len - self.cur.pos) as usize).min(data.len());
                    self.payload(&data[..k], sink);
                    data = &data[k..];
                    if self.cur.pos == self.cur.len {
                        self.finish(sink);
                    }
                }
            }
        }
    }

    /// The common frames, whole in `data` and outside a header block: reported at once, with
    /// the events the state machine below would give, without going through it. Returns the
    /// bytes consumed, or None for the state machine to take the frame (a partial or padded
    /// one, a malformed one, a block in pieces, anything rarer). The state machine cost ~200
    /// instructions a frame: -9.6 M instructions on the 100 MB mesh bench file (59.5k frames),
    /// -4.7 M on the default one.
    #[inline]
    fn whole_frame<F: FnMut(Frame<'_>)>(&mut self, data: &[u8], sink: &mut F) -> Option<usize> {
        let h: &[u8; FRAME_HEADER_LEN] = data.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let payload = data.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len as usize)?;
        if self.open.is_some() {
            return None;
        }
        let (ty, fl) = (FrameType(h[3]), h[4]);
        let stream = be32(&h[5..9]) & 0x7fff_ffff;
        match ty {
            FrameType::DATA if fl & flags::PADDED == 0 && stream != 0 => {
                if len > 0 {
                    sink(Frame::DataChunk { stream, bytes: payload });
                }
                sink(Frame::Data { stream, len, end_stream: fl & flags::END_STREAM != 0 });
            }
            FrameType::HEADERS
                if fl & (flags::PADDED | flags::END_HEADERS) == flags::END_HEADERS
                    && stream != 0
                    && payload.len() <= self.max_block as usize =>
            {
                let (priority, fragment) = if fl & flags::PRIORITY != 0 {
                    let (pre, fragment) = payload.split_at_checked(5)?;
                    (Some(Priority::parse(pre)), fragment)
                } else {
                    (None, payload)
                };
                sink(Frame::Block(Block {
                    stream,
                    kind: BlockKind::Headers,
                    end_stream: fl & flags::END_STREAM != 0,
                    priority,
                    fragment,
                    cut: None,
                }));
            }
            FrameType::WINDOW_UPDATE if len == 4 => {
                sink(Frame::WindowUpdate { stream, increment: be32(payload) & 0x7fff_ffff })
            }
            FrameType::SETTINGS
                if stream == 0 && payload.len() <= MAX_CONTROL_BYTES && length_ok(ty, fl, len) =>
            {
                sink(Frame::Settings {
                    ack: fl & flags::ACK != 0,
                    settings: Settings(payload),
                    truncated: false,
                })
            }
            FrameType::PING if stream == 0 && len == 8 => sink(Frame::Ping {
                ack: fl & flags::ACK != 0,
                opaque: payload.try_into().expect("eight bytes"),
            }),
            _ => return None,
        }
        Some(FRAME_HEADER_LEN + payload.len())
    }

    /// A frame header was read.
    fn begin<F: FnMut(Frame<'_>)>(&mut self, sink: &mut F) {
        let h = self.hdr;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let ty = FrameType(h[3]);
        let stream = be32(&h[5..9]) & 0x7fff_ffff;
        let mut c = Cur { len, ty, flags: h[4], stream, ..Cur::default() };
        let padded = c.flags & flags::PADDED != 0;
        match ty {
            FrameType::DATA => c.pre_len = padded as u32,
            FrameType::HEADERS => {
                c.pre_len = padded as u32 + if c.flags & flags::PRIORITY != 0 { 5 } else { 0 }
            }
            FrameType::PUSH_PROMISE => c.pre_len = padded as u32 + 4,
            _ => {}
        }
        let stream_frame = matches!(
            ty,
            FrameType::DATA
                | FrameType::HEADERS
                | FrameType::PRIORITY
                | FrameType::RST_STREAM
                | FrameType::PUSH_PROMISE
                | FrameType::CONTINUATION
        );
        let conn_frame = matches!(ty, FrameType::SETTINGS | FrameType::PING | FrameType::GOAWAY);
        if (stream_frame && stream == 0) || (conn_frame && stream != 0) {
            c.bad = Some(Problem::Stream);
        } else if c.pre_len > len || !length_ok(ty, c.flags, len) {
            c.bad = Some(Problem::Length);
        }
        // A block waiting for CONTINUATION is lost if anything else comes (RFC 9113 §6.10).
        if let Some(o) = self.open {
            if ty != FrameType::CONTINUATION || stream != o.stream {
                self.cut_open(CutReason::Interrupted, sink);
                self.open = None;
            }
        }
        match ty {
            FrameType::HEADERS | FrameType::PUSH_PROMISE => {
                self.block.clear();
                self.open = Some(Open {
                    stream,
                    kind: BlockKind::Headers,
                    end_stream: ty == FrameType::HEADERS && c.flags & flags::END_STREAM != 0,
                    priority: None,
                    frames: 1,
                    cut: false,
                    reported: false,
                });
                if c.bad.is_some() {
                    // Report it as a block loss now; the payload is skipped.
                    self.cut_open(CutReason::Malformed, sink);
                    c.bad = None;
                    c.skip = true;
                }
            }
            FrameType::CONTINUATION => match &mut self.open {
                None => {
                    sink(Frame::Block(Block {
                        stream,
                        kind: BlockKind::Headers,
                        end_stream: false,
                        priority: None,
                        fragment: &[],
                        cut: Some(CutReason::Orphan),
                    }));
                    c.bad = None;
                    c.skip = true;
                }
                Some(o) => {
                    o.frames += 1;
                    if o.frames > MAX_CONTINUATION_FRAMES {
                        self.cut_open(CutReason::ContinuationFlood, sink);
                    }
                    c.skip = self.open.is_some_and(|o| o.cut);
                }
            },
            _ => {}
        }
        self.ctl.clear();
        self.cur = c;
        self.state = State::Payload;
        if len == 0 {
            self.finish(sink);
        }
    }

    /// Reports the open block as cut (once) and skips the rest of it.
    fn cut_open<F: FnMut(Frame<'_>)>(&mut self, why: CutReason, sink: &mut F) {
        self.block.clear();
        if let Some(o) = &mut self.open {
            if !o.cut && !o.reported {
                sink(Frame::Block(Block {
                    stream: o.stream,
                    kind: o.kind,
                    end_stream: o.end_stream,
                    priority: o.priority,
                    fragment: &[],
                    cut: Some(why),
                }));
            }
            o.cut = true;
        }
        self.cur.skip = true;
    }

    /// Payload bytes of the current frame.
    fn payload<F: FnMut(Frame<'_>)>(&mut self, mut chunk: &[u8], sink: &mut F) {
        let c = self.cur;
        if c.bad.is_some() || c.skip {
            self.cur.pos += chunk.len() as u32;
            return;
        }
        match c.ty {
            FrameType::DATA | FrameType::HEADERS | FrameType::PUSH_PROMISE | FrameType::CONTINUATION => {
                while !chunk.is_empty() && !self.cur.skip && self.cur.bad.is_none() {
                    let pos = self.cur.pos;
                    if pos < c.pre_len {
                        let k = ((c.pre_len - pos) as usize).min(chunk.len());
                        self.pre[pos as usize..pos as usize + k].copy_from_slice(&chunk[..k]);
                        self.cur.pos += k as u32;
                        chunk = &chunk[k..];
                        if self.cur.pos == c.pre_len {
                            self.prefix_done(sink);
                        }
                        continue;
                    }
                    let content_end = c.len - self.cur.pad;
                    if pos < content_end {
                        let k = ((content_end - pos) as usize).min(chunk.len());
                        self.content(&chunk[..k], sink);
                        self.cur.pos += k as u32;
                        chunk = &chunk[k..];
                        continue;
                    }
                    // Padding.
                    break;
                }
                self.cur.pos += chunk.len() as u32;
            }
            FrameType::PRIORITY
            | FrameType::RST_STREAM
            | FrameType::SETTINGS
            | FrameType::PING
            | FrameType::GOAWAY
            | FrameType::WINDOW_UPDATE => {
                let k = (MAX_CONTROL_BYTES - self.ctl.len()).min(chunk.len());
                self.ctl.extend_from_slice(&chunk[..k]);
                self.cur.pos += chunk.len() as u32;
            }
            _ => self.cur.pos += chunk.len() as u32,
        }
    }

    /// The pad length, priority fields or promised stream id are in `pre`.
    fn prefix_done<F: FnMut(Frame<'_>)>(&mut self, sink: &mut F) {
        let c = self.cur;
        let padded = c.flags & flags::PADDED != 0;
        let pad = if padded { self.pre[0] as u32 } else { 0 };
        let p = padded as usize;
        if c.pre_len + pad > c.len {
            if c.ty == FrameType::DATA {
                self.cur.bad = Some(Problem::Padding);
            } else {
                self.cut_open(CutReason::Malformed, sink);
            }
            return;
        }
        self.cur.pad = pad;
        if let Some(o) = &mut self.open {
            match c.ty {
                FrameType::HEADERS if c.flags & flags::PRIORITY != 0 => {
                    o.priority = Some(Priority::parse(&self.pre[p..p + 5]))
                }
                FrameType::PUSH_PROMISE => {
                    o.kind = BlockKind::PushPromise { promised: be32(&self.pre[p..p + 4]) & 0x7fff_ffff }
                }
                _ => {}
            }
        }
    }

    /// Content bytes (padding excluded) of a DATA or header block frame.
    fn content<F: FnMut(Frame<'_>)>(&mut self, bytes: &[u8], sink: &mut F) {
        let c = self.cur;
        if c.ty == FrameType::DATA {
            sink(Frame::DataChunk { stream: c.stream, bytes });
            return;
        }
        let Some(o) = &mut self.open else { return };
        let rest_of_content = (c.len - c.pad - c.pos) as usize;
        if o.frames == 1
            && c.flags & flags::END_HEADERS != 0
            && c.pos == c.pre_len
            && bytes.len() == rest_of_content
            && bytes.len() <= self.max_block as usize
        {
            // The whole block is in this slice: report it in place.
            o.reported = true;
            sink(Frame::Block(Block {
                stream: o.stream,
                kind: o.kind,
                end_stream: o.end_stream,
                priority: o.priority,
                fragment: bytes,
                cut: None,
            }));
            return;
        }
        if self.block.len() + bytes.len() > self.max_block as usize {
            self.cut_open(CutReason::TooLarge, sink);
            return;
        }
        self.block.extend_from_slice(bytes);
    }

    /// The current frame's payload is complete.
    fn finish<F: FnMut(Frame<'_>)>(&mut self, sink: &mut F) {
        let c = self.cur;
        self.state = State::Header;
        if let Some(problem) = c.bad {
            sink(Frame::Malformed { ty: c.ty, stream: c.stream, problem });
            return;
        }
        if c.pos < c.pre_len {
            // Zero-length frame that needed a prefix: caught as Length above.
            return;
        }
        let ack = c.flags & flags::ACK != 0;
        let ctl = &self.ctl[..];
        match c.ty {
            FrameType::DATA => {
                let len = c.len - c.pre_len - c.pad;
                sink(Frame::Data { stream: c.stream, len, end_stream: c.flags & flags::END_STREAM != 0 });
            }
            FrameType::HEADERS | FrameType::PUSH_PROMISE | FrameType::CONTINUATION => {
                if c.flags & flags::END_HEADERS == 0 {
                    return;
                }
                if let Some(o) = self.open.take() {
                    if !o.cut && !o.reported {
                        sink(Frame::Block(Block {
                            stream: o.stream,
                            kind: o.kind,
                            end_stream: o.end_stream,
                            priority: o.priority,
                            fragment: &self.block,
                            cut: None,
                        }));
                    }
                }
                self.block.clear();
            }
            FrameType::PRIORITY => sink(Frame::Priority { stream: c.stream, priority: Priority::parse(ctl) }),
            FrameType::RST_STREAM => sink(Frame::RstStream { stream: c.stream, code: ErrorCode(be32(ctl)) }),
            FrameType::SETTINGS => {
                let n = ctl.len() / 6 * 6;
                sink(Frame::Settings { ack, settings: Settings(&ctl[..n]), truncated: (n as u32) < c.len })
            }
            FrameType::PING => {
                let mut opaque = [0; 8];
                opaque.copy_from_slice(&ctl[..8]);
                sink(Frame::Ping { ack, opaque })
            }
            FrameType::GOAWAY => sink(Frame::GoAway {
                last_stream: be32(ctl) & 0x7fff_ffff,
                code: ErrorCode(be32(&ctl[4..])),
                debug: &ctl[8..],
            }),
            FrameType::WINDOW_UPDATE => {
                sink(Frame::WindowUpdate { stream: c.stream, increment: be32(ctl) & 0x7fff_ffff })
            }
            ty => sink(Frame::Unknown { ty, stream: c.stream, len: c.len }),
        }
    }
}

/// Fixed or minimum lengths (RFC 9113 §6).
fn length_ok(ty: FrameType, fl: u8, len: u32) -> bool {
    match ty {
        FrameType::PRIORITY => len == 5,
        FrameType::RST_STREAM | FrameType::WINDOW_UPDATE => len == 4,
        FrameType::PING => len == 8,
        FrameType::SETTINGS => len.is_multiple_of(6) && (fl & flags::ACK == 0 || len == 0),
        FrameType::GOAWAY => len >= 8,
        _ => true,
    }
}

/// Could these 9 bytes be the header of a frame a real stack sends? A known type, only its
/// defined flags, the reserved bit clear, the stream id and length its type requires.
pub(crate) fn plausible_header(h: &[u8; FRAME_HEADER_LEN]) -> bool {
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
    let ty = FrameType(h[3]);
    let stream = be32(&h[5..9]);
    if ty.name().is_none() || h[4] & !ty.defined_flags() != 0 || stream >> 31 != 0 {
        return false;
    }
    let connection = matches!(ty, FrameType::SETTINGS | FrameType::PING | FrameType::GOAWAY);
    (stream == 0) == (connection || (ty == FrameType::WINDOW_UPDATE && stream == 0))
        && length_ok(ty, h[4], len)
}

/// Finds where HTTP/2 frames start in `data`, bytes of one direction captured from an unknown
/// point of the connection (either side): the first offset from which [`MIN_CHAIN_FRAMES`]
/// plausible frame headers follow each other by their lengths, or two whose frames end exactly
/// at the end of `data`. None when no offset qualifies yet (more bytes may decide it). At most
/// `MIN_CHAIN_FRAMES` headers are read per offset: linear time.
pub fn find_frame_chain(data: &[u8]) -> Option<usize> {
    let end = data.len().saturating_sub(FRAME_HEADER_LEN - 1);
    let mut off = 0;
    #[cfg(target_arch = "x86_64")]
    while off + 21 <= data.len() {
        // Sixteen offsets at a time, only those whose type byte is a known frame type (at most
        // 9) and whose stream id has its reserved bit clear: about 2% of random bytes. Unknown
        // sides are searched for HTTP/2 joined mid-stream (bench/RESULTS.md).
        let mut m = candidates_sse2(&data[off..off + 21]);
        while m != 0 {
            let o = off + m.trailing_zeros() as usize;
            if chain_at(&data[o..]) {
                return Some(o);
            }
            m &= m - 1;
        }
        off += 16;
    }
    (off..end).find(|&o| chain_at(&data[o..]))
}

/// Bit `i` set when offset `i` of `w` (21 bytes) may start a frame header: byte `i + 3` (the
/// type) is at most 9 and byte `i + 5` (the top of the stream id) is below 0x80.
#[cfg(target_arch = "x86_64")]
fn candidates_sse2(w: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    assert!(w.len() >= 21);
    // SAFETY: SSE2 is part of x86_64; both loads read 16 bytes inside `w` (at 3 and at 5, and
    // 5 + 16 <= 21 <= w.len()).
    unsafe {
        let p = w.as_ptr();
        let ty = _mm_loadu_si128(p.add(3).cast());
        let stream = _mm_loadu_si128(p.add(5).cast());
        let known = _mm_cmpeq_epi8(_mm_min_epu8(ty, _mm_set1_epi8(9)), ty);
        (_mm_movemask_epi8(known) & !_mm_movemask_epi8(stream) & 0xffff) as u32
    }
}

fn chain_at(d: &[u8]) -> bool {
    let mut p = 0usize;
    for n in 0..MIN_CHAIN_FRAMES {
        if p == d.len() && n >= 2 {
            return true;
        }
        let Some(h) = d.get(p..p + FRAME_HEADER_LEN) else { return false };
        let h: &[u8; FRAME_HEADER_LEN] = h.try_into().expect("nine bytes");
        if !plausible_header(h) {
            return false;
        }
        p += FRAME_HEADER_LEN + u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    }
    true
}

//! HTTP/2 (RFC 9113) for a passive observer: the frame layer ([`frame`]), HPACK ([`hpack`],
//! [`huffman`]) and [`H2Direction`], which joins them for one direction of a connection and
//! reports [`H2Event`]s. [`session::H2Session`] owns two of them per connection, passes each
//! side's SETTINGS to the other side's HPACK limit, and keeps the per-stream report.
//!
//! Input is any in-order byte stream of one direction: reassembled TCP (h2c) or, later,
//! decrypted TLS with ALPN `h2`. A gap ends the direction ([`frame::EndReason::Gap`]); a
//! capture that starts mid-connection is joined with [`frame::find_frame_chain`] and
//! [`H2Direction::mid_stream`], whose HPACK reports fields it cannot know instead of guessing.

pub(crate) mod frame;
pub mod hpack;
pub mod huffman;
mod rfc7541;
pub mod session;
#[cfg(test)]
mod tests;

pub use frame::{
    find_frame_chain, Block, BlockKind, CutReason, EndReason, ErrorCode, Frame, FrameDecoder, FrameType,
    Priority, SettingId, Settings, Start, PREFACE,
};
pub(crate) use hpack::{HeaderList, HpackDecoder, HpackError};

/// A field's name seen as the session reads it: credential or not, the [`Headers::marks`]
/// bits, and which pseudo-header or gRPC field it is. Computed once per name the decoder meets
/// (a literal name, or a dynamic table entry when inserted; the static table's once per run),
/// not per field: indexed fields repeat in every request of a connection.
///
/// [`Headers::marks`]: crate::sanitize::Headers::marks
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldClass {
    /// [`crate::sanitize::redact::is_secret_header`] of the name.
    pub(crate) secret: bool,
    /// [`crate::classify::http::headers::header_marks`] of the name.
    pub(crate) marks: u8,
    pub(crate) role: FieldRole,
    /// Kept under `--summary-only` ([`crate::classify::http::lean_keeps`]). Only a lean
    /// decoder's fields are sure to have it: a full one leaves it unset on fields from its
    /// table (it never reads it).
    pub(crate) lean: bool,
}

/// The fields the HTTP/2 session reads besides storing them. `repr(u8)`, numbered from 0 in
/// this order: an HPACK table entry keeps it in four bits ([`FieldRole::from_bits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FieldRole {
    #[default]
    Other,
    Method,
    Path,
    Authority,
    Status,
    ContentType,
    GrpcStatus,
    GrpcMessage,
    GrpcEncoding,
}

impl FieldRole {
    /// The last role: roles are `0..=LAST as u8`.
    pub(crate) const LAST: FieldRole = FieldRole::GrpcEncoding;

    /// The role numbered `b` (`role as u8`); [`FieldRole::Other`] past [`FieldRole::LAST`].
    #[inline]
    pub(crate) fn from_bits(b: u8) -> FieldRole {
        const ROLES: [FieldRole; FieldRole::LAST as usize + 1] = [
            FieldRole::Other,
            FieldRole::Method,
            FieldRole::Path,
            FieldRole::Authority,
            FieldRole::Status,
            FieldRole::ContentType,
            FieldRole::GrpcStatus,
            FieldRole::GrpcMessage,
            FieldRole::GrpcEncoding,
        ];
        ROLES.get(usize::from(b)).copied().unwrap_or_default()
    }
}

impl FieldClass {
    pub(crate) fn of(name: &[u8]) -> FieldClass {
        let role = match name {
            b":method" => FieldRole::Method,
            b":path" => FieldRole::Path,
            b":authority" => FieldRole::Authority,
            b":status" => FieldRole::Status,
            b"content-type" => FieldRole::ContentType,
            b"grpc-status" => FieldRole::GrpcStatus,
            b"grpc-message" => FieldRole::GrpcMessage,
            b"grpc-encoding" => FieldRole::GrpcEncoding,
            _ => FieldRole::Other,
        };
        // The credential and mark answers from this thread's name cache (HTTP/1's): a new
        // literal name is mostly one seen on other connections, and classing it whole cost
        // ~220 instructions (12k names on the 100 MB mesh bench file).
        let c = super::headers::with_name_cache(|c| c.class(name));
        FieldClass { secret: c.secret, marks: c.marks, role, lean: c.lean }
    }

    /// The session reads the value of a field of this name under `--summary-only`: it stores
    /// it, or reads it (`session::Pseudo`). A lean decoder ([`H2Limits::lean`]) stores only
    /// these fields, and keeps only the length of the other values.
    #[inline]
    pub(crate) fn read_when_lean(self) -> bool {
        self.lean || self.role != FieldRole::Other
    }
}

/// Limits of one direction.
#[derive(Clone, Copy, Debug)]
pub struct H2Limits {
    /// Largest header block assembled (HPACK bytes, HEADERS plus CONTINUATIONs); a longer
    /// one is cut ([`CutReason::TooLarge`]).
    pub max_block_bytes: usize,
    /// Largest decoded header list kept (RFC 9113 §6.5.2 size); past it fields are counted
    /// ([`HeaderList::oversize`]).
    pub max_list_bytes: usize,
    /// `--summary-only`: decode only the fields the session reads then
    /// ([`FieldClass::read_when_lean`]); the others are counted (sizes, marks) as before.
    pub lean: bool,
}

/// A decoded header block.
#[derive(Clone, Copy, Debug)]
pub struct Headers<'a> {
    /// Stream of the HEADERS or PUSH_PROMISE frame.
    pub(crate) stream: u32,
    /// HEADERS, or PUSH_PROMISE with the promised stream (whose request these fields are).
    pub(crate) kind: BlockKind,
    /// END_STREAM on the HEADERS frame (the session tells trailers by their order).
    pub end_stream: bool,
    /// Priority fields of the HEADERS frame.
    pub priority: Option<Priority>,
    /// The fields decoded (empty if cut), with unknown and dropped counts and flags.
    pub fields: &'a HeaderList,
    /// The block was not assembled; its fields are lost and the HPACK table forgotten.
    pub(crate) cut: Option<CutReason>,
    /// The block could not be decoded (fields before the fault are kept); the HPACK table was
    /// forgotten.
    pub(crate) error: Option<HpackError>,
}

/// One event of a direction.
#[derive(Clone, Copy, Debug)]
pub enum H2Event<'a> {
    /// A frame other than a header block (header blocks come as [`H2Event::Headers`]).
    Frame(Frame<'a>),
    /// A header block, decoded.
    Headers(Headers<'a>),
}

thread_local! {
    /// The decoded list of the block being reported, shared by every direction a thread
    /// decodes: a list lives only while the sink reads it. One per direction grew ~10 times
    /// in each connection's first blocks (~20,000 reallocations, ~6M instructions on the
    /// 100 MB mesh bench file) and kept its largest block's size for the connection's life.
    static LIST: std::cell::RefCell<HeaderList> = const { std::cell::RefCell::new(HeaderList::new()) };
}

/// Frames and HPACK of the bytes one endpoint sends.
///
/// 208 bytes, `repr(C)`: the HPACK decoder (80 bytes) first, then the frame decoder, whose
/// first 36 bytes are what every frame reads: a header block reads the first 116 bytes, about
/// two cache lines (at 256 bytes it read three: the frame state in the second line, the HPACK
/// decoder over the third and fourth), a DATA frame one. `bench/misses` 30 MB slices, one
/// thread: default cycles~ 80.23 -> 80.16 M (L2 misses 0.7299 -> 0.7269 M), mesh 85.77 ->
/// 85.60 M (L2 0.7483 -> 0.7431 M). Aligned to 64 bytes (256 with the padding) it read fewer
/// lines still but ran more instructions (mimalloc's aligned path among them): 80.22 M and
/// 85.72 M.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct H2Direction {
    hpack: HpackDecoder,
    frames: FrameDecoder,
}

const _: () =
    assert!(std::mem::size_of::<H2Direction>() == 208 && std::mem::offset_of!(H2Direction, frames) == 80);

impl H2Direction {
    /// A direction seen from the connection's start: `Start::Preface` for the client,
    /// `Start::Frame` for the server.
    pub fn new(start: Start, limits: H2Limits) -> H2Direction {
        H2Direction {
            frames: FrameDecoder::new(start, limits.max_block_bytes),
            hpack: HpackDecoder::new(limits.max_list_bytes).lean(limits.lean),
        }
    }

    /// A direction joined mid-connection, at a frame header (see [`find_frame_chain`]).
    pub fn mid_stream(limits: H2Limits) -> H2Direction {
        H2Direction {
            frames: FrameDecoder::new(Start::Frame, limits.max_block_bytes),
            hpack: HpackDecoder::mid_stream(limits.max_list_bytes).lean(limits.lean),
        }
    }

    /// Feeds the next in-order bytes; events go to `sink` in stream order.
    pub fn feed<F: FnMut(H2Event<'_>)>(&mut self, data: &[u8], sink: &mut F) {
        LIST.with(|l| match l.try_borrow_mut() {
            Ok(mut list) => self.feed_with(data, &mut list, sink),
            // A sink that feeds another direction while it reads a block: a list of its own.
            Err(_) => self.feed_with(data, &mut HeaderList::new(), sink),
        })
    }

    fn feed_with<F: FnMut(H2Event<'_>)>(&mut self, data: &[u8], list: &mut HeaderList, sink: &mut F) {
        let hpack = &mut self.hpack;
        self.frames.feed(data, &mut |f| match f {
            Frame::Block(b) => {
                let error = if b.cut.is_some() {
                    hpack.forget();
                    list.clear_for_cut();
                    None
                } else {
                    hpack.decode(b.fragment, list).err()
                };
                sink(H2Event::Headers(Headers {
                    stream: b.stream,
                    kind: b.kind,
                    end_stream: b.end_stream,
                    priority: b.priority,
                    fields: list,
                    cut: b.cut,
                    error,
                }))
            }
            f => sink(H2Event::Frame(f)),
        });
    }

    /// Bytes of this direction were lost: decoding ends.
    pub fn gap(&mut self) {
        self.frames.gap();
    }

    /// Why decoding ended, if it did.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        self.frames.end_reason()
    }

    /// The receiver's `SETTINGS_HEADER_TABLE_SIZE` (from the other direction's SETTINGS).
    pub fn set_table_limit(&mut self, bytes: u32) {
        self.hpack.set_table_limit(bytes);
    }

    /// The HPACK decoder (table state, for the tests).
    #[cfg(test)]
    pub(crate) fn hpack(&self) -> &HpackDecoder {
        &self.hpack
    }

    /// Bytes allocated by buffers and the HPACK table (the decoded list is the thread's).
    pub fn allocated(&self) -> usize {
        self.frames.buffered() + self.hpack.allocated()
    }
}

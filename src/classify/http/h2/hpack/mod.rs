//! HPACK header block decoding (RFC 7541) for a passive observer.
//!
//! Why our own decoder: the maintained crates (`loona-hpack`, `httlib-hpack`; the old `hpack`
//! crate is unmaintained with a panic advisory, `h2`'s decoder is private) all assume they have
//! seen the connection from its start. A capture that starts mid-connection has lost the
//! dynamic table: for those crates an index to an entry added before the capture is a
//! decoding error that aborts the block, and the table is unusable after it. Here such a field
//! is *unknown* (counted per block), new entries are still inserted so that later indices stay
//! aligned, and decoding becomes exact again once every pre-capture entry must have been
//! evicted (see "Exactness" below). They also allocate per field (`Vec<u8>` names and values),
//! which this decoder does not: a block decodes into a reusable [`HeaderList`] (one byte
//! buffer, fields as spans), and the dynamic table lives in one byte arena; after warm-up,
//! decoding allocates nothing (see the test `steady_state_decoding_allocates_nothing`).
//!
//! Invariant: the entries we hold are always the encoder's newest ones, in order, so an index
//! that reaches one of them is right; an index past them is either a pre-capture entry (the
//! field is unknown) or, when the whole history is known, a decoding error. Wrong size
//! accounting (an entry whose name was unknown counts as its value plus 32 bytes, a lower
//! bound) can only make us keep entries longer than the encoder, which is harmless.
//!
//! Exactness ([`HpackDecoder::is_exact`]) is claimed only with proof, late rather than wrong:
//! - the capacity must be the encoder's. A mid-stream decoder assumes 4096 bytes, but the
//!   encoder's capacity is set by its last size update, which may precede the capture, up to
//!   whatever the receiver's `SETTINGS_HEADER_TABLE_SIZE` allowed (any 32-bit value, also sent
//!   before the capture). Neither [`super::find_frame_chain`] nor the decoder can see that, and
//!   [`MAX_TABLE_BYTES`] bounds what we keep, not what an encoder uses: no amount of inserts
//!   proves that pre-capture entries are gone. So a mid-stream decoder stays inexact until
//!   the encoder sends a size update (at most [`MAX_TABLE_BYTES`]); until then, indices that
//!   reach our entries still decode right, the others are unknown (never an error), and an
//!   encoder with a larger table merely yields more unknown fields;
//! - under a known capacity, the pre-capture entries (and any we evicted under the assumed
//!   capacity) are gone once one of our entries is evicted, the table is emptied, or ours fill
//!   it to less than one entry's overhead: they are all older than ours;
//! - no entry we hold may have an unknown name (a literal with incremental indexing that named
//!   a pre-capture entry): the encoder can name it again after every pre-capture entry is
//!   gone, and since its size is counted low we may hold it longer than the encoder.
//!
//! Limits: the table's capacity follows the encoder's size updates, checked against the limit
//! that the *receiver* of the blocks announced (its `SETTINGS_HEADER_TABLE_SIZE`, set with
//! [`HpackDecoder::set_table_limit`]) and capped at [`MAX_TABLE_BYTES`] whatever SETTINGS say.
//! The decoded list is bounded by `max_list_bytes` (RFC 9113 §6.5.2 size: name + value + 32 per
//! field); past it fields are only counted, so a small block that expands to a huge list (an
//! HPACK bomb) costs linear time and bounded memory. Never-indexed fields (§6.2.3: the sender
//! says the value is sensitive) keep that flag for the caller's redaction.

use super::huffman;
use crate::sanitize::{json_scan, AFTER_VALUE, FIRST_NAME, NAME_VALUE, NEXT_NAME};
use crate::wire::copy_short;
use std::collections::VecDeque;

mod list;
use list::Span;
pub use list::{Field, HeaderList};

/// Largest dynamic table kept per direction, whatever SETTINGS or size updates say (Chrome
/// announces 64 KiB; the default is 4 KiB). A larger table is kept at this size: references
/// to entries it had to evict are reported unknown, never wrong.
pub const MAX_TABLE_BYTES: usize = 64 * 1024;
/// Initial capacity of the dynamic table and of the limit (RFC 9113 §6.5.2 default of
/// `SETTINGS_HEADER_TABLE_SIZE`).
pub(crate) const DEFAULT_TABLE_BYTES: usize = 4096;
/// Per-entry overhead in the table's size accounting (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;
/// Room a dynamic table takes at its first insert: bytes of its arena, entries. An arena of
/// 1 KiB, not 512 bytes: each growth copies a table gone cold (752 `realloc` calls on the 30 MB
/// mesh slice); `bench/misses` 100 MB mesh cycles~ 344.59 -> 344.15 M (L2 misses -9,400),
/// default 268.75 -> 268.42 M; max RSS on the 1 GB mesh file ~0.1 MiB higher (63.1 -> 63.2 MiB,
/// within run-to-run noise). 2 KiB and 32 entries: a further -0.2 M on the 30 MB slice but
/// +1.3 MiB of RSS. 32 entries since they are 8 bytes ([`Entry`]): the 256 bytes that 16 took
/// at 16 bytes, one growth fewer for tables of 17 to 32 entries (`bench/misses` 30 MB slices:
/// default cycles~ 75.576 -> 75.532 M, mesh 80.256 -> 80.219 M; 100 MB default 233.30 ->
/// 233.12 M); max RSS on the 1 GB mesh file, one thread, 60.3-60.4 -> 59.9-60.1 MiB with the
/// smaller entries.
const FIRST_ARENA_BYTES: usize = 1024;
const FIRST_ENTRIES: usize = 32;

pub(crate) use super::rfc7541::STATIC_TABLE;
use super::{FieldClass, FieldRole};

/// The static table as the decoder copies it: each entry's JSON body (`name","value`, see
/// [`Entry`]), its name's length and its name's class, computed once.
struct StaticEntries {
    text: Vec<u8>,
    /// Start of entry i's body in `text` (`i + 1`: its end), then the name's length and class.
    starts: [u32; 62],
    names: [(u32, FieldClass); 61],
}

fn static_entries() -> &'static StaticEntries {
    static ENTRIES: std::sync::OnceLock<StaticEntries> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut text = Vec::new();
        let mut starts = [0u32; 62];
        for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
            text.extend_from_slice(n.as_bytes());
            text.extend_from_slice(NAME_VALUE);
            text.extend_from_slice(v.as_bytes());
            starts[i + 1] = text.len() as u32;
        }
        let names = std::array::from_fn(|i| {
            let n = STATIC_TABLE[i].0.as_bytes();
            (n.len() as u32, FieldClass::of(n))
        });
        StaticEntries { text, starts, names }
    })
}

/// A header block that cannot be decoded: the table may now differ from the encoder's, so the
/// decoder is reset to an unknown history ([`HpackDecoder::forget`]) before the next block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated inside a field")]
    Truncated,
    /// An integer longer than 32 bits.
    #[error("HPACK integer overflow")]
    IntegerOverflow,
    /// Index 0, or an index past the dynamic table while its whole history is known.
    #[error("HPACK index {0} out of range")]
    BadIndex(u32),
    /// An invalid Huffman string.
    #[error("invalid HPACK Huffman string")]
    Huffman,
}

/// A dynamic table entry. Its bytes in the arena are its JSON body, `name","value`: the
/// name, [`NAME_VALUE`] and the value, as a [`HeaderList`] holds a field between its opening
/// punctuation and [`AFTER_VALUE`]. An indexed field is then one copy of the body (it was a
/// copy of the name, of the value and of the punctuation between them, ~3 `memcpy` calls a
/// field), and the literal that inserts it is one copy of what it decoded into the list.
///
/// 8 bytes, eight to a cache line: the offset, the flags and the name's class packed in one
/// u32 ([`Entry::pack`]), the lengths in u16 (an entry's size is at most the capacity, at most
/// [`MAX_TABLE_BYTES`]). A connection's table is cold by its next block, so each line of
/// entries an indexed field reads is mostly a miss: at 20 bytes (`bench/misses`, 30 MB mesh
/// slice: L2 misses 0.8776 -> 0.8736 M, cycles~ 94.81 -> 94.66 M) and at 16 bytes (the flags
/// and class as fields: ~21k L2 misses on entry reads per 100 MB default bench file) more
/// often than at 8 (`bench/misses` 30 MB slices, one thread: default cycles~ 75.680 ->
/// 75.576 M, L2 misses 0.6435 -> 0.6402 M; mesh 80.425 -> 80.256 M, L2 0.6537 -> 0.6515 M,
/// D1 1.8354 -> 1.8275 M).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Bits 0-19: offset of the body in the arena; then [`UNKNOWN_BIT`], [`DIRTY_BIT`],
    /// [`SECRET_BIT`], [`LEAN_BIT`], the name's marks ([`MARKS_SHIFT`]) and role
    /// ([`ROLE_SHIFT`]).
    packed: u32,
    name_len: u16,
    value_len: u16,
}

/// Bits of [`Entry::packed`] that hold the body's offset. Offsets stay under twice
/// [`MAX_TABLE_BYTES`]: the arena is compacted before the evicted prefix outgrows what lives
/// (see [`DynamicTable::insert`]), and what lives plus the new body is at most the capacity.
const OFF_BITS: u32 = 20;
const OFF_MASK: u32 = (1 << OFF_BITS) - 1;
/// Inserted by a literal whose name was an unknown (pre-capture) entry (its name is empty in
/// the arena).
const UNKNOWN_BIT: u32 = 1 << 20;
/// The name or value needs escaping in JSON (scanned once, at the insert).
const DIRTY_BIT: u32 = 1 << 21;
/// The name's [`FieldClass::secret`] (the class is computed once, at the insert: indexed
/// fields repeat).
const SECRET_BIT: u32 = 1 << 22;
/// The name's [`FieldClass::lean`].
const LEAN_BIT: u32 = 1 << 23;
/// The name's [`FieldClass::marks`] (four bits) and [`FieldClass::role`] (four bits).
const MARKS_SHIFT: u32 = 24;
const ROLE_SHIFT: u32 = 28;
/// The bits that say [`FieldClass::read_when_lean`]: the lean bit and the role (`Other` is 0).
const READ_WHEN_LEAN: u32 = LEAN_BIT | 15 << ROLE_SHIFT;
const _: () = assert!(FieldRole::Other as u32 == 0);

// An inserted entry's name and value together are at most the capacity less the overhead.
const _: () = assert!(MAX_TABLE_BYTES - ENTRY_OVERHEAD <= u16::MAX as usize);
const _: () = assert!(std::mem::size_of::<Entry>() == 8);
const _: () = assert!(2 * MAX_TABLE_BYTES <= OFF_MASK as usize);
const _: () = {
    use crate::classify::http::headers::{MARK_ENVOY, MARK_ISTIO};
    let marks = MARK_ENVOY | MARK_ISTIO;
    assert!(marks.leading_zeros() >= 4 && (FieldRole::LAST as u32) < 16);
};

impl Entry {
    fn new(
        off: usize,
        name_len: usize,
        value_len: usize,
        name_unknown: bool,
        class: FieldClass,
        dirty: bool,
    ) -> Entry {
        debug_assert!(off <= OFF_MASK as usize && class.marks < 16);
        let packed = off as u32 & OFF_MASK
            | if name_unknown { UNKNOWN_BIT } else { 0 }
            | if dirty { DIRTY_BIT } else { 0 }
            | if class.secret { SECRET_BIT } else { 0 }
            | if class.lean { LEAN_BIT } else { 0 }
            | u32::from(class.marks & 15) << MARKS_SHIFT
            | (class.role as u32) << ROLE_SHIFT;
        Entry { packed, name_len: name_len as u16, value_len: value_len as u16 }
    }

    fn off(&self) -> usize {
        (self.packed & OFF_MASK) as usize
    }

    fn name_unknown(&self) -> bool {
        self.packed & UNKNOWN_BIT != 0
    }

    fn dirty(&self) -> bool {
        self.packed & DIRTY_BIT != 0
    }

    /// The name's class (tests).
    #[cfg(test)]
    fn class(&self) -> FieldClass {
        self.class_in::<true>()
    }

    /// The name's class, its `lean` unpacked only for a lean decoder (`LEAN`; false otherwise):
    /// full decoding never reads it, and unpacking it there cost ~0.6 M cycles~ on the 100 MB
    /// mesh bench file.
    #[inline(always)]
    fn class_in<const LEAN: bool>(&self) -> FieldClass {
        FieldClass {
            secret: self.packed & SECRET_BIT != 0,
            marks: (self.packed >> MARKS_SHIFT) as u8 & 15,
            role: FieldRole::from_bits((self.packed >> ROLE_SHIFT) as u8),
            lean: LEAN && self.packed & LEAN_BIT != 0,
        }
    }

    /// [`FieldClass::read_when_lean`] of its name (an unknown name: false).
    fn read_when_lean(&self) -> bool {
        self.packed & READ_WHEN_LEAN != 0
    }

    /// RFC 7541 §4.1 size.
    fn size(&self) -> usize {
        self.name_len as usize + self.value_len as usize + ENTRY_OVERHEAD
    }

    /// Bytes of its body in the arena; in a lean table ([`DynamicTable::lean`]) the value of
    /// an entry whose name the session does not read is not kept (its length is).
    fn body_len(&self, lean: bool) -> usize {
        let value = if lean && !self.read_when_lean() { 0 } else { self.value_len as usize };
        self.name_len as usize + NAME_VALUE.len() + value
    }
}

/// The dynamic table (RFC 7541 §2.3.2, §4): entries in one byte arena, oldest first; with
/// the decoder's two flags, which fit in its padding (see [`HpackDecoder`]).
#[derive(Clone, Debug, Default)]
#[repr(C)]
struct DynamicTable {
    arena: Vec<u8>,
    entries: VecDeque<Entry>,
    /// RFC 7541 size of the entries, at most `capacity`.
    size: u32,
    /// At most [`MAX_TABLE_BYTES`].
    capacity: u32,
    /// Entries held whose name is unknown (`Entry::name_unknown`); entries are at least
    /// [`ENTRY_OVERHEAD`] bytes, so at most 2,048.
    unknown_names: u16,
    /// [`HpackDecoder`]'s: the encoder's table holds no entry we lack: none from before the
    /// capture (or a lost block), none we evicted under an assumed capacity. Only evidence
    /// gathered under a known capacity sets it ([`HpackDecoder::note_room`]). Under a capped
    /// capacity the encoder keeps what we evict, but its next size update at most
    /// [`MAX_TABLE_BYTES`] shrinks its table to entries we hold (our sizes are lower bounds),
    /// so the flag is kept meanwhile and only read together with `capacity_known`.
    history_known: bool,
    /// [`HpackDecoder`]'s: the capacity is the encoder's: seen at the connection's start or in
    /// a size update, and not capped at [`MAX_TABLE_BYTES`]. Otherwise it is assumed, and the
    /// encoder's may be larger (a size update before the capture).
    capacity_known: bool,
    /// [`HpackDecoder`]'s mode ([`HpackDecoder::lean`]): fields whose name the session does not
    /// read under `--summary-only` are neither decoded nor stored, and the table keeps only
    /// the name and the value's length of such entries ([`Entry::body_len`]).
    lean: bool,
}

const _: () = assert!(MAX_TABLE_BYTES / ENTRY_OVERHEAD <= u16::MAX as usize);

impl DynamicTable {
    /// Entry by dynamic index (0 = newest), and its body (`name","value`; tests: the decoder
    /// reads entries through [`Self::get_in`]).
    #[cfg(test)]
    fn get(&self, i: usize) -> Option<(Entry, &[u8])> {
        if self.lean {
            self.get_in::<true>(i)
        } else {
            self.get_in::<false>(i)
        }
    }

    /// [`Self::get`] with the table's mode (`lean`) known.
    #[inline(always)]
    fn get_in<const LEAN: bool>(&self, i: usize) -> Option<(Entry, &[u8])> {
        let e = *self.entries.get(self.entries.len().checked_sub(i + 1)?)?;
        let o = e.off();
        Some((e, &self.arena[o..o + e.body_len(LEAN)]))
    }

    /// Evicts the oldest entries until the size is at most `max`; true if any was evicted.
    fn evict_to(&mut self, max: usize) -> bool {
        let before = self.entries.len();
        while self.size as usize > max {
            let Some(e) = self.entries.pop_front() else { break };
            self.size -= e.size() as u32;
            self.unknown_names -= u16::from(e.name_unknown());
        }
        if self.entries.is_empty() {
            self.arena.clear();
            self.size = 0;
        }
        self.entries.len() < before
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.arena.clear();
        self.size = 0;
        self.unknown_names = 0;
    }

    /// Inserts (§4.4) the entry whose body is `body` (`name","value`, the name `name_len`
    /// bytes, the value `value_len`; in a lean table only `name","` when the session does not
    /// read the name, see [`Entry::body_len`]): evicts to make room; an entry larger than the
    /// capacity empties the table and is not added. True if one of our entries was evicted (or
    /// the table emptied): every older, unknown entry is then gone too. Inlined: one call site
    /// in each of the decoder's two modes.
    #[inline(always)]
    fn insert(
        &mut self,
        body: &[u8],
        name_len: usize,
        value_len: usize,
        name_unknown: bool,
        class: FieldClass,
        dirty: bool,
    ) -> bool {
        let size = name_len + value_len + ENTRY_OVERHEAD;
        if size > self.capacity as usize {
            self.clear();
            return true;
        }
        debug_assert!(self.capacity as usize <= MAX_TABLE_BYTES);
        let evicted = self.evict_to(self.capacity as usize - size);
        // Compact when the evicted prefix of the arena is at least as large as what lives, or
        // instead of growing the arena when what lives and the new body fit in 3/4 of it:
        // each copy (at most 3/4 of the arena) then follows at least 1/4 of it inserted since
        // the last one, so copies stay amortised O(1) (at most 3 bytes per byte inserted).
        // Growing only past 3/4 keeps the arena under ~8/3 of what lives: doubling alone let
        // it reach 4x (max RSS on the 1 GB mesh bench file, --threads 1: 66.9 -> 66.0 MB;
        // instructions within 0.3 M on both 100 MB files).
        let live_start = self.entries.front().map_or(self.arena.len(), |e| e.off());
        let live = self.arena.len() - live_start;
        let grows = self.arena.len() + body.len() > self.arena.capacity();
        if live_start > 0
            && (live_start >= live || grows && 4 * (live + body.len()) <= 3 * self.arena.capacity())
        {
            self.arena.copy_within(live_start.., 0);
            self.arena.truncate(self.arena.len() - live_start);
            self.rebase(live_start);
        } else if live_start > 0 && grows {
            // Grown into a fresh block holding only what lives: `reserve` (a `realloc`) copied
            // the evicted prefix too, a table gone cold read and written again (`bench/misses`
            // cycles~ 30 MB slices: default 74.82 -> 74.75 M, mesh 79.21 -> 79.09 M).
            let mut arena = Vec::with_capacity((2 * self.arena.capacity()).max(live + body.len()));
            arena.extend_from_slice(&self.arena[live_start..]);
            self.arena = arena;
            self.rebase(live_start);
        }
        if self.entries.capacity() == 0 {
            // A table's first insert: room for a few entries at once (grown from nothing, a
            // table reallocated ~10 times: ~6M instructions on the 100 MB mesh bench file).
            self.arena.reserve(FIRST_ARENA_BYTES.max(body.len()));
            self.entries.reserve(FIRST_ENTRIES);
        }
        let off = self.arena.len();
        extend_short(&mut self.arena, body);
        let e = Entry::new(off, name_len, value_len, name_unknown, class, dirty);
        debug_assert_eq!(e.body_len(self.lean), body.len());
        self.entries.push_back(e);
        self.size += size as u32;
        self.unknown_names += u16::from(name_unknown);
        evicted
    }
}

impl DynamicTable {
    /// The arena's first `by` bytes were dropped: every entry's body is `by` bytes earlier.
    fn rebase(&mut self, by: usize) {
        for e in &mut self.entries {
            // The offset is the low bits and at least `by`: no borrow from the flags.
            e.packed -= by as u32;
        }
    }
}

/// What an index names.
enum Named<'a> {
    /// The body (`name","value`; only `name","` for an entry whose value a lean table does not
    /// keep), the name's length, the name's and value's lengths together, its class, whether
    /// the name or value needs escaping in JSON.
    Known(&'a [u8], usize, usize, FieldClass, bool),
    /// A pre-capture entry, or one whose name was such an entry.
    Unknown { value_len: usize },
}

/// Decoder of the header blocks one endpoint sends (one per direction of a connection).
///
/// 80 bytes (`repr(C)`; its table's sizes as u32 and its flags in the table's padding, it was
/// 96): with the first 36 bytes of [`super::frame::FrameDecoder`] after it, what a header
/// block reads of its [`super::H2Direction`] spans about two cache lines, not three.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct HpackDecoder {
    table: DynamicTable,
    /// The receiver's `SETTINGS_HEADER_TABLE_SIZE`: size updates above it are flagged. A u32,
    /// as SETTINGS carry it: as a usize it made a direction ([`super::H2Direction`]) 264
    /// bytes, and the two flags below sat alone in its fifth cache line, a miss of their own
    /// at most header blocks (~10k on the 100 MB default bench file) in a block of mimalloc's
    /// 320-byte class; 256 bytes then, four lines. `bench/misses` 30 MB slices: default cycles~
    /// 82.64 -> 82.54 M (L2 misses -2.7k, D1 -3.2k), mesh 88.40 -> 88.30 M (L2 -2.5k, D1 -7k).
    limit: u32,
    /// Bound of each decoded list, at most `u32::MAX`.
    max_list_bytes: u32,
}

const _: () = assert!(std::mem::size_of::<HpackDecoder>() == 80);

impl HpackDecoder {
    /// A decoder for a direction seen from the connection's start (client preface, or the
    /// `101` of an h2c upgrade). `max_list_bytes` bounds each decoded list.
    pub fn new(max_list_bytes: usize) -> HpackDecoder {
        HpackDecoder {
            table: DynamicTable {
                capacity: DEFAULT_TABLE_BYTES as u32,
                history_known: true,
                capacity_known: true,
                ..DynamicTable::default()
            },
            limit: DEFAULT_TABLE_BYTES as u32,
            max_list_bytes: u32::try_from(max_list_bytes).unwrap_or(u32::MAX),
        }
    }

    /// A decoder for a direction joined mid-connection: the table's history is unknown and
    /// its capacity assumed to be the default until a size update says otherwise. It cannot
    /// become exact before a size update: see the module doc.
    pub fn mid_stream(max_list_bytes: usize) -> HpackDecoder {
        let mut d = HpackDecoder::new(max_list_bytes);
        d.forget();
        d
    }

    /// The decoder in lean mode or not (`--summary-only`, see [`DynamicTable::lean`]). Set it
    /// before the first block: the table's entries are kept by the mode they were inserted in.
    pub fn lean(mut self, lean: bool) -> HpackDecoder {
        self.table.lean = lean;
        self
    }

    /// Header blocks were lost (a cut or undecodable block): from now on the table's history
    /// is unknown, as for [`HpackDecoder::mid_stream`]. The entries held are dropped: the
    /// lost ones are newer than them.
    pub(crate) fn forget(&mut self) {
        self.table.clear();
        self.table.history_known = false;
        self.table.capacity_known = false;
    }

    /// Sets the limit the receiver announced in its `SETTINGS_HEADER_TABLE_SIZE` (call it
    /// with the *other* direction's SETTINGS). The capacity itself changes only with the
    /// encoder's size updates, as the encoder's table does.
    pub fn set_table_limit(&mut self, bytes: u32) {
        self.limit = bytes;
    }

    /// Every dynamic index the encoder can send now decodes exactly: the capacity is known,
    /// the encoder holds no entry we lack (from before the capture, a lost block, or evicted
    /// by us under an assumed capacity), and no entry we hold has an unknown name. While
    /// false, fields we cannot know are counted unknown, never guessed; an index past the
    /// table is an error only once this is true.
    #[cfg(test)]
    pub(crate) fn is_exact(&self) -> bool {
        self.table.history_known && self.table.capacity_known && self.table.unknown_names == 0
    }

    /// Current capacity of the dynamic table (bytes, RFC 7541 size).
    pub fn capacity(&self) -> usize {
        self.table.capacity as usize
    }

    /// Entries held, and their RFC 7541 size.
    pub fn table_len(&self) -> (usize, usize) {
        (self.table.entries.len(), self.table.size as usize)
    }

    /// Dynamic table entry `i` (0 = newest), `None` if absent or its name is unknown.
    #[cfg(test)]
    pub(crate) fn table_entry(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self.table.get(i)? {
            (e, _) if e.name_unknown() => None,
            (e, b) => Some((&b[..e.name_len as usize], &b[e.name_len as usize + NAME_VALUE.len()..])),
        }
    }

    /// Bytes allocated by the table (for memory accounting).
    pub fn allocated(&self) -> usize {
        self.table.arena.capacity() + self.table.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// After an insert or a size update: once one of the entries we hold had to be evicted
    /// (or the table emptied), or ours fill the capacity, the encoder holds nothing older
    /// than our entries: the entries we lack are all older. This holds only if our capacity
    /// is the encoder's: with an assumed (or capped) one, the encoder's may be larger and
    /// keep what we evict. Our sizes are lower bounds (an unknown name counts as empty), so
    /// the encoder evicts no later than we do and its table is no emptier than ours.
    fn note_room(&mut self, evicted_ours: bool) {
        let t = &mut self.table;
        if !t.capacity_known {
            return;
        }
        if evicted_ours || ((t.capacity - t.size.min(t.capacity)) as usize) < ENTRY_OVERHEAD {
            t.history_known = true;
        }
    }

    #[inline(always)]
    fn lookup<const LEAN: bool>(&self, index: u32) -> Result<Named<'_>, HpackError> {
        let i = index as usize;
        if i == 0 {
            return Err(HpackError::BadIndex(index));
        }
        if i <= STATIC_TABLE.len() {
            let t = static_entries();
            let body = &t.text[t.starts[i - 1] as usize..t.starts[i] as usize];
            let (name_len, class) = t.names[i - 1];
            // The static table's names and values need no escaping.
            let bytes = body.len() - NAME_VALUE.len();
            return Ok(Named::Known(body, name_len as usize, bytes, class, false));
        }
        match self.table.get_in::<LEAN>(i - STATIC_TABLE.len() - 1) {
            Some((e, _)) if e.name_unknown() => Ok(Named::Unknown { value_len: e.value_len as usize }),
            Some((e, body)) => {
                let bytes = e.name_len as usize + e.value_len as usize;
                Ok(Named::Known(body, e.name_len as usize, bytes, e.class_in::<LEAN>(), e.dirty()))
            }
            None if self.table.history_known && self.table.capacity_known => Err(HpackError::BadIndex(index)),
            None => Ok(Named::Unknown { value_len: 0 }),
        }
    }

    fn size_update(&mut self, size: u32, out: &mut HeaderList) {
        if size > self.limit {
            out.over_limit = true;
        }
        let mut size = size as usize;
        self.table.capacity_known = true;
        if size > MAX_TABLE_BYTES {
            // We will evict entries the encoder keeps: references to them become unknown.
            size = MAX_TABLE_BYTES;
            self.table.capacity_known = false;
        }
        self.table.capacity = size as u32;
        let evicted = self.table.evict_to(size);
        self.note_room(evicted);
    }

    /// Decodes one complete header block into `out` (cleared first). On error `out` holds the
    /// fields before the fault, and the decoder has forgotten its table
    /// ([`HpackDecoder::forget`]): the encoder's inserts in the rest of the block are lost.
    pub fn decode(&mut self, block: &[u8], out: &mut HeaderList) -> Result<(), HpackError> {
        out.clear();
        // The mode as a constant of the loop (a copy of it per mode): tested in the loop, the
        // mode cost full decoding ~6.6M instructions on the 100 MB mesh bench file.
        let r = if self.table.lean {
            self.decode_fields::<true>(block, out)
        } else {
            self.decode_fields::<false>(block, out)
        };
        if r.is_err() {
            self.forget();
            // Drop the part of the faulty field already written: the text ends with the last
            // whole field.
            let whole = out.spans.last().map_or(0, |s| s.end as usize + AFTER_VALUE.len());
            out.bytes.truncate(whole);
        }
        r
    }

    fn decode_fields<const LEAN: bool>(
        &mut self,
        block: &[u8],
        out: &mut HeaderList,
    ) -> Result<(), HpackError> {
        let mut p = 0;
        while p < block.len() {
            let b = block[p];
            if b & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = read_int(block, &mut p, 7)?;
                match self.lookup::<LEAN>(index)? {
                    Named::Known(_, _, bytes, c, _) if LEAN && !c.read_when_lean() => {
                        out.count(self.max_list_bytes as usize, bytes, c.marks)
                    }
                    Named::Known(body, name_len, _, c, dirty) => {
                        push_field(out, self.max_list_bytes as usize, body, name_len, c, dirty)
                    }
                    Named::Unknown { value_len } => unknown_field(out, value_len),
                }
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let size = read_int(block, &mut p, 5)?;
                self.size_update(size, out);
            } else {
                // Literal (§6.2): with incremental indexing (01), never indexed (0001),
                // without indexing (0000).
                let (prefix, indexing, never) = match b {
                    _ if b & 0xc0 == 0x40 => (6, true, false),
                    _ if b & 0xf0 == 0x10 => (4, false, true),
                    _ => (4, false, false),
                };
                let index = read_int(block, &mut p, prefix)?;
                let start = out.bytes.len();
                let first = out.spans.is_empty();
                let name_start = start + if first { FIRST_NAME.len() } else { NEXT_NAME.len() };
                let (name_known, class, name_dirty) = if index == 0 {
                    out.put_open();
                    let care = read_string(block, &mut p, &mut out.bytes)?;
                    out.bytes.extend_from_slice(NAME_VALUE);
                    (true, FieldClass::of(&out.bytes[name_start..out.bytes.len() - NAME_VALUE.len()]), care)
                } else {
                    match self.lookup::<LEAN>(index)? {
                        Named::Known(body, name_len, _, c, _) => {
                            let name = &body[..name_len];
                            // The opening, the name and `","` in one capacity check (the
                            // most common literal: a table's name, a new value).
                            put_name(&mut out.bytes, first, name);
                            // Names are short, and a table's rarely need care: scanned here.
                            (true, c, json_scan::needs_care(name))
                        }
                        Named::Unknown { .. } => {
                            out.put_open();
                            out.bytes.extend_from_slice(NAME_VALUE);
                            (false, FieldClass::default(), false)
                        }
                    }
                };
                let mid = out.bytes.len() - NAME_VALUE.len();
                // Lean: the session does not read this value; its length is all the list's size
                // and the table need. A Huffman string is still walked (its decoded length, and
                // its validity: an invalid one fails the block as it does when decoded).
                let lean = LEAN && !class.read_when_lean();
                let (value_len, dirty) = if lean {
                    (skip_string(block, &mut p)?, name_dirty)
                } else {
                    let value_start = out.bytes.len();
                    let value_dirty = read_string(block, &mut p, &mut out.bytes)?;
                    (out.bytes.len() - value_start, name_dirty || value_dirty)
                };
                if indexing {
                    // The list holds the new entry's body as the table keeps it. (`insert` is
                    // inlined into each mode's loop: out of line it cost ~8M instructions more on
                    // the 100 MB mesh bench file.)
                    let body = &out.bytes[name_start..];
                    let evicted =
                        self.table.insert(body, mid - name_start, value_len, !name_known, class, dirty);
                    self.note_room(evicted);
                }
                if name_known && !lean {
                    keep_field(out, self.max_list_bytes as usize, start, mid, never, class, dirty);
                } else {
                    out.bytes.truncate(start);
                    if name_known {
                        out.count(self.max_list_bytes as usize, mid - name_start + value_len, class.marks);
                    } else {
                        unknown_field(out, value_len);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Counts a field whose name (or name and value) is unknown.
#[inline]
fn unknown_field(out: &mut HeaderList, value_len: usize) {
    out.unknown += 1;
    out.list_bytes += (value_len + ENTRY_OVERHEAD) as u64;
}

/// Appends a field whose bytes come from a table: its body `name","value` (the name
/// `name_len` bytes) between the field's punctuation.
#[inline(always)]
fn push_field(
    out: &mut HeaderList,
    max: usize,
    body: &[u8],
    name_len: usize,
    class: FieldClass,
    dirty: bool,
) {
    if !out.admit(max, body.len() - NAME_VALUE.len()) {
        // Counted without copying: a block of one-byte references to a large entry stays
        // linear in its own length.
        return;
    }
    // One capacity check and three copies without calls: through `extend_from_slice` each
    // piece checked the capacity again (~2M instructions on the 100 MB mesh bench file).
    let first = out.spans.is_empty();
    let open = if first { FIRST_NAME } else { NEXT_NAME };
    out.bytes.reserve(NEXT_NAME.len() + body.len() + AFTER_VALUE.len());
    let at = out.bytes.len();
    let start = at + open.len();
    let end = start + body.len();
    // SAFETY: `reserve` made room for the `end + AFTER_VALUE.len() - at` bytes written after
    // `at` (the opening, the body, the closing), all of them before `set_len`.
    unsafe {
        use std::ptr::copy_nonoverlapping as copy;
        let base = out.bytes.as_mut_ptr();
        put_opening(base.add(at), first);
        copy_short(base.add(start), body);
        copy(AFTER_VALUE.as_ptr(), base.add(end), AFTER_VALUE.len());
        out.bytes.set_len(end + AFTER_VALUE.len());
    }
    out.summary.add(out.spans.len(), class, false, dirty);
    out.spans.push(Span {
        start: start as u32,
        mid: (start + name_len) as u32,
        end: end as u32,
        never_indexed: false,
        dirty,
        class,
    });
}

/// Keeps (or drops, past the bound) the field decoded at `out.bytes[start..]`: its opening
/// punctuation, the name up to `mid`, [`NAME_VALUE`], the value up to the end.
#[inline(always)]
fn keep_field(
    out: &mut HeaderList,
    max: usize,
    start: usize,
    mid: usize,
    never_indexed: bool,
    class: FieldClass,
    dirty: bool,
) {
    let end = out.bytes.len();
    let name_start = start + if out.spans.is_empty() { FIRST_NAME.len() } else { NEXT_NAME.len() };
    if !out.admit(max, (mid - name_start) + (end - mid - NAME_VALUE.len())) {
        out.bytes.truncate(start);
        return;
    }
    out.bytes.extend_from_slice(AFTER_VALUE);
    out.summary.add(out.spans.len(), class, never_indexed, dirty);
    out.spans.push(Span {
        start: name_start as u32,
        mid: mid as u32,
        end: end as u32,
        never_indexed,
        dirty,
        class,
    });
}

/// Reads an integer with an `n`-bit prefix (§5.1), at most 32 bits.
#[inline]
fn read_int(buf: &[u8], p: &mut usize, n: u8) -> Result<u32, HpackError> {
    let max = (1u32 << n) - 1;
    let mut v = (buf[*p] as u32) & max;
    *p += 1;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let &b = buf.get(*p).ok_or(HpackError::Truncated)?;
        *p += 1;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
        let add = ((b & 0x7f) as u64) << shift;
        let sum = v as u64 + add;
        v = u32::try_from(sum).map_err(|_| HpackError::IntegerOverflow)?;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

/// Appends `s` to `v` as `extend_from_slice` does, without a `memcpy` call for up to 32
/// bytes ([`copy_short`]): field bodies out of the table, names and literals are mostly that
/// short, and the call cost ~13 instructions each (317k calls on the 100 MB mesh bench file).
#[inline(always)]
pub(super) fn extend_short(v: &mut Vec<u8>, s: &[u8]) {
    v.reserve(s.len());
    let len = v.len();
    // SAFETY: `reserve` made room for `s.len()` bytes after `len`, which `copy_short` writes
    // (all of them) before `set_len`.
    unsafe {
        copy_short(v.as_mut_ptr().add(len), s);
        v.set_len(len + s.len());
    }
}

/// Appends a field's opening ([`FIRST_NAME`] if `first`, else [`NEXT_NAME`]), `name` and
/// [`NAME_VALUE`] with one capacity check, each constant copied at its constant length (three
/// `Vec` appends: ~0.8M instructions more on the default 100 MB bench file, ~2.2M on the mesh
/// one; the opening as a slice either branch chose, copied by [`copy_short`]'s byte loop, cost
/// more than that).
#[inline(always)]
fn put_name(v: &mut Vec<u8>, first: bool, name: &[u8]) {
    use std::ptr::copy_nonoverlapping as copy;
    let open = if first { FIRST_NAME.len() } else { NEXT_NAME.len() };
    let n = open + name.len() + NAME_VALUE.len();
    v.reserve(n);
    let len = v.len();
    // SAFETY: `reserve` made room for `n` bytes after `len`, which the three copies write
    // (all of them, none overlapping: the constants and `name` are not in `v`) before `set_len`.
    unsafe {
        let d = v.as_mut_ptr().add(len);
        put_opening(d, first);
        copy_short(d.add(open), name);
        copy(NAME_VALUE.as_ptr(), d.add(open + name.len()), NAME_VALUE.len());
        v.set_len(len + n);
    }
}

/// Writes a field's opening at `d`: [`FIRST_NAME`] if `first`, else [`NEXT_NAME`], each
/// copied at its constant length (a slice either branch chose went through a byte loop or
/// `memcpy`).
///
/// # Safety
/// `d` is valid for writes of `NEXT_NAME.len()` bytes.
#[inline(always)]
unsafe fn put_opening(d: *mut u8, first: bool) {
    use std::ptr::copy_nonoverlapping as copy;
    // SAFETY: the caller's; both constants are at most `NEXT_NAME.len()` bytes.
    unsafe {
        if first {
            copy(FIRST_NAME.as_ptr(), d, FIRST_NAME.len());
        } else {
            copy(NEXT_NAME.as_ptr(), d, NEXT_NAME.len());
        }
    }
}

/// Reads a string literal (§5.2) and appends its bytes to `dst`; true if they need care in
/// JSON text ([`json_scan::needs_care`]: the Huffman decoder says it as it decodes, a second
/// scan of every literal cost ~7M instructions on the 100 MB mesh bench file). Inlined, with
/// the Huffman decoder kept out of line: with the decoder inlined into it, each call paid the
/// decoder's register saves, raw strings too (-0.4 M instructions on that file).
#[inline(always)]
fn read_string(buf: &[u8], p: &mut usize, dst: &mut Vec<u8>) -> Result<bool, HpackError> {
    let &first = buf.get(*p).ok_or(HpackError::Truncated)?;
    let len = read_int(buf, p, 7)? as usize;
    let s = buf.get(*p..*p + len).ok_or(HpackError::Truncated)?;
    *p += len;
    if first & 0x80 != 0 {
        huffman::decode(s, dst).map_err(|_| HpackError::Huffman)
    } else {
        extend_short(dst, s);
        Ok(json_scan::needs_care(s))
    }
}

/// Skips a string literal (§5.2); its length once decoded.
#[inline(always)]
fn skip_string(buf: &[u8], p: &mut usize) -> Result<usize, HpackError> {
    let &first = buf.get(*p).ok_or(HpackError::Truncated)?;
    let len = read_int(buf, p, 7)? as usize;
    let s = buf.get(*p..*p + len).ok_or(HpackError::Truncated)?;
    *p += len;
    if first & 0x80 != 0 {
        huffman::decoded_len(s).map_err(|_| HpackError::Huffman)
    } else {
        Ok(len)
    }
}

#[cfg(test)]
mod tests;

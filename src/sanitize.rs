//! Escaping of wire bytes. Every byte that came from a packet passes through here before it
//! reaches a terminal (table, warnings) or a JSON string.
//!
//! Table/terminal: printable ASCII and printable non-ASCII Unicode pass; control characters
//! (C0, DEL, C1), bidi overrides and other format characters, and invalid UTF-8 are shown as
//! `\n`, `\r`, `\t`, `\0`, `\xHH` (raw byte) or `\u{HHHH}` (a character). A backslash is doubled.
//!
//! JSON: a value that is valid UTF-8 is written as is (serde_json escapes controls). A value that is
//! not valid UTF-8 is written with every invalid byte as `\xHH` and every backslash doubled; see
//! docs/json.md.
//!
//! Redaction of credential headers is in [`redact`].

pub(crate) mod json_scan;
pub(crate) mod redact;

#[cfg(test)]
use serde::{Serialize, Serializer};
use std::fmt::Write as _;
use std::ptr::NonNull;

/// Raw bytes taken from the wire (SNI, ALPN, header names and values, previews).
///
/// Up to [`INLINE`] bytes are kept in the value itself: most are short (methods, hosts, ALPN
/// tokens, reason phrases), and an allocation each was a tenth of the allocations per HTTP
/// message. The value is 24 bytes either way.
#[derive(Clone)]
pub(crate) struct WireBytes(Repr);

/// Bytes kept inline by [`WireBytes`].
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Default for WireBytes {
    fn default() -> WireBytes {
        WireBytes(Repr::Inline(0, [0; INLINE]))
    }
}

impl PartialEq for WireBytes {
    fn eq(&self, other: &WireBytes) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for WireBytes {}

impl WireBytes {
    /// Bytes kept inline; longer ones take a block of their own.
    pub(crate) const INLINE: usize = INLINE;

    /// Copies `b` into a new value.
    pub(crate) fn new(b: &[u8]) -> WireBytes {
        let n = b.len();
        if n <= INLINE {
            // Fixed-size copies, not a call to `memcpy` for a few bytes: methods, hosts,
            // reasons (~1 M instructions per 100 MB).
            let mut buf = [0; INLINE];
            // SAFETY: `buf` has room for `n <= INLINE` bytes; `b` is not in it.
            unsafe { crate::wire::copy_short(buf.as_mut_ptr(), b) };
            WireBytes(Repr::Inline(n as u8, buf))
        } else {
            WireBytes(Repr::Heap(b.into()))
        }
    }

    /// The raw bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(n, buf) => &buf[..usize::from(*n)],
            Repr::Heap(b) => b,
        }
    }

    /// The bytes as text for JSON: unchanged when valid UTF-8, escaped otherwise.
    pub(crate) fn to_json_text(&self) -> String {
        match std::str::from_utf8(self.as_bytes()) {
            Ok(s) => s.to_owned(),
            Err(_) => escape_invalid_utf8(self.as_bytes()),
        }
    }

    /// The bytes escaped for a terminal.
    pub(crate) fn to_terminal(&self) -> String {
        escape_bytes(self.as_bytes())
    }
}

impl std::fmt::Debug for WireBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_terminal())
    }
}

impl From<&str> for WireBytes {
    fn from(s: &str) -> WireBytes {
        WireBytes::new(s.as_bytes())
    }
}

/// serde's form of wire bytes (and of [`Headers`] below) is the reference the hand-written JSON
/// writer is tested against (`report::json`'s tests): the output itself never goes through it.
#[cfg(test)]
impl Serialize for WireBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_wire(self.as_bytes(), s)
    }
}

/// Serializes wire bytes as a JSON string: unchanged when valid UTF-8, escaped otherwise.
#[cfg(test)]
fn serialize_wire<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(b) {
        Ok(t) => s.serialize_str(t),
        Err(_) => s.serialize_str(&escape_invalid_utf8(b)),
    }
}

/// Borrowed wire bytes, serialized like [`WireBytes`].
#[cfg(test)]
struct WireRef<'a>(&'a [u8]);

#[cfg(test)]
impl Serialize for WireRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_wire(self.0, s)
    }
}

/// The header fields of one HTTP message, in order, stored as the JSON text the report writes
/// (`["name","value"],["name","value"]`, without the outer brackets), with the offsets of each
/// name and value in it. One allocation per message instead of two per
/// field (storing headers field by field was a third of the run time and a quarter of the
/// memory), and the JSON writer copies a message's fields at once (writing them field by field
/// was 9% of the instructions with HTTP/2: bench/RESULTS.md). A field whose name or value needs
/// escaping or is not ASCII is kept raw between the same punctuation and listed in `dirty`: the
/// writer escapes it, as it does any [`WireBytes`].
pub struct Headers {
    /// The ends (end of name i, end of value i, as offsets in the text: one word per field,
    /// two u16 halves, when the text is at most `u16::MAX` bytes, else two words), then the
    /// fields whose text is raw bytes, not JSON text, in order, then the text's bytes packed
    /// into words, the last one zero-padded. One allocation per message instead of two
    /// or three (one malloc and free fewer a message: `bench/instructions` default 100 MB
    /// 440.0 M -> 438.3 M, mesh 567.3 M -> 563.8 M), and counts as u32, as the ends themselves
    /// (a message is 24 bytes smaller: with the text, ends and raw fields apart, max RSS on the
    /// mesh 1000 MB file had grown by 1.5 MB, mimalloc rounding up each of them). Ends as u16
    /// (a message has ~8 fields and ~400 bytes of text on the mesh bench files): 4 bytes a
    /// field fewer to write when the message is stored and to read when it is written.
    /// `bench/misses` 30 MB slices: default cycles~ 86.40 -> 86.20 M (L2 misses 0.8341 ->
    /// 0.8233 M), mesh 93.24 -> 93.24 M (L2 -5.9k, Ir +0.7 M: pairing the ends as they are
    /// packed, and reading them back).
    ///
    /// Held as a thin pointer to the words of a `Box<[u32]>` (its length is
    /// [`Headers::words`], derived from the counts below), not as the box itself: the box's
    /// length repeated what the counts say, and without it a `Headers` is 24 bytes, not 32,
    /// and so are the requests, responses and HTTP/2 trailers that hold one (fewer bytes
    /// written when a message is stored, and copied each time a flow's list of messages
    /// grows). `bench/misses` 30 MB slices: default cycles~ 82.70 -> 82.64 M (L2 misses
    /// -4.7k, Ir +0.4 M: the words are counted again to free a block), mesh 88.55 -> 88.40 M
    /// (L2 misses -6.2k).
    packed: NonNull<u32>,
    /// Number of ends (twice the number of fields) at the start of `packed`.
    n_ends: u32,
    /// Number of raw fields after them.
    n_dirty: u32,
    /// Bytes of text after those.
    text_len: u32,
    /// Bits the builder's caller set ([`HeadersBuilder::mark`]), so that readers looking for
    /// rare fields can skip a message without walking its fields.
    marks: u8,
}

/// Builds [`Headers`].
#[derive(Default)]
pub(crate) struct HeadersBuilder {
    text: Vec<u8>,
    ends: Vec<u32>,
    dirty: Vec<u32>,
    marks: u8,
}

/// JSON punctuation around a field: `["` before the name (`,["` after the first field),
/// `","` between name and value, `"]` after the value.
const FIELD_PUNCTUATION: usize = FIRST_NAME.len() + NAME_VALUE.len() + AFTER_VALUE.len();

/// The punctuation of [`Headers`]' JSON text (also written by the HTTP/2 decoder, which decodes
/// a block straight into this layout): before the first name, before every other name, between
/// a name and its value, after a value.
pub(crate) const FIRST_NAME: &[u8] = b"[\"";
pub(crate) const NEXT_NAME: &[u8] = b",[\"";
pub(crate) const NAME_VALUE: &[u8] = b"\",\"";
pub(crate) const AFTER_VALUE: &[u8] = b"\"]";

impl HeadersBuilder {
    /// Appends one field.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        let field = (self.ends.len() / 2) as u32;
        let t = &mut self.text;
        t.reserve(name.len() + value.len() + FIELD_PUNCTUATION + usize::from(field > 0));
        if field > 0 {
            t.push(b',');
        }
        t.extend_from_slice(FIRST_NAME);
        t.extend_from_slice(name);
        self.ends.push(t.len() as u32);
        t.extend_from_slice(NAME_VALUE);
        t.extend_from_slice(value);
        self.ends.push(t.len() as u32);
        t.extend_from_slice(AFTER_VALUE);
        if json_scan::needs_care(name) || json_scan::needs_care(value) {
            self.dirty.push(field);
        }
    }

    /// Sets bits of [`Headers::marks`].
    #[cfg(test)]
    pub(crate) fn mark(&mut self, bits: u8) {
        self.marks |= bits;
    }

    /// The fields.
    pub(crate) fn finish(self) -> Headers {
        Headers::pack(&self.text, &self.ends, &self.dirty, self.marks)
    }
}

/// Builds [`Headers`] whose number of fields and bytes are known before the first field (an
/// HTTP/1 head): the text is allocated whole and written in place, with no capacity check per
/// piece and short names and values copied without a call to `memcpy` (storing an HTTP/1 field
/// through [`HeadersBuilder`] cost ~240 instructions, most of it that bookkeeping). Miscounted
/// sizes still give the right fields, only slower.
pub(crate) struct ExactHeadersBuilder {
    text: Vec<u8>,
    /// Bytes of `text` written.
    at: usize,
    ends: Vec<u32>,
    /// Fields written.
    field: usize,
    dirty: Vec<u32>,
    marks: u8,
}

impl ExactHeadersBuilder {
    /// Room for exactly `fields` fields of `bytes` bytes in all (names and values as pushed).
    pub(crate) fn new(fields: usize, bytes: usize) -> ExactHeadersBuilder {
        let len = bytes + FIELD_PUNCTUATION * fields + fields.saturating_sub(1);
        ExactHeadersBuilder {
            text: vec![0; len],
            at: 0,
            ends: vec![0; 2 * fields],
            field: 0,
            dirty: Vec::new(),
            marks: 0,
        }
    }

    /// Appends one field whose name is an RFC 9110 token (httparse checked it): only the value
    /// is scanned for bytes to escape.
    pub(crate) fn push_token(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(!json_scan::needs_care(name), "{name:?}");
        self.push_field(name, value, false);
    }

    /// Appends one field.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_field(name, value, true);
    }

    #[inline(always)]
    fn push_field(&mut self, name: &[u8], value: &[u8], scan_name: bool) {
        let field = self.field;
        if field > 0 {
            self.put(b",");
        }
        self.put(FIRST_NAME);
        self.put(name);
        let name_end = self.at as u32;
        self.put(NAME_VALUE);
        self.put(value);
        let value_end = self.at as u32;
        self.put(AFTER_VALUE);
        match self.ends.get_mut(2 * field..2 * field + 2) {
            Some(e) => e.copy_from_slice(&[name_end, value_end]),
            None => {
                self.ends.truncate(2 * field);
                self.ends.extend_from_slice(&[name_end, value_end]);
            }
        }
        self.field += 1;
        if (scan_name && json_scan::needs_care(name)) || json_scan::needs_care(value) {
            self.dirty.push(field as u32);
        }
    }

    /// Writes `s` at `at`.
    #[inline(always)]
    fn put(&mut self, s: &[u8]) {
        let (at, n) = (self.at, s.len());
        self.at += n;
        let Some(d) = self.text.get_mut(at..at + n) else {
            // More than announced.
            self.text.truncate(at);
            self.text.extend_from_slice(s);
            return;
        };
        // Two overlapping word copies cover 8 to 16 bytes, two half-words 4 to 8.
        if (8..=16).contains(&n) {
            d[..8].copy_from_slice(&s[..8]);
            d[n - 8..].copy_from_slice(&s[n - 8..]);
        } else if (4..8).contains(&n) {
            d[..4].copy_from_slice(&s[..4]);
            d[n - 4..].copy_from_slice(&s[n - 4..]);
        } else {
            d.copy_from_slice(s);
        }
    }

    /// Sets bits of [`Headers::marks`].
    pub(crate) fn mark(&mut self, bits: u8) {
        self.marks |= bits;
    }

    /// The fields.
    pub(crate) fn finish(mut self) -> Headers {
        self.text.truncate(self.at);
        self.ends.truncate(2 * self.field);
        Headers::pack(&self.text, &self.ends, &self.dirty, self.marks)
    }
}

impl Headers {
    /// Fields already written as the JSON text [`Headers`] holds, with the end of each name and
    /// value in it and the fields kept raw, with their count (an HTTP/2 header block decoded in
    /// this layout: one copy instead of one push per field). The count sizes the block: without
    /// it, a block with a raw field was allocated too small for its text and reallocated
    /// (1,137 `realloc` calls on the 30 MB mesh slice, `bench/misses` cycles~ 95.06 -> 94.99 M;
    /// a wrong count is only slower).
    pub(crate) fn from_json_text(
        text: &[u8],
        ends: impl ExactSizeIterator<Item = [u32; 2]>,
        (dirty, n_dirty): (impl Iterator<Item = u32>, usize),
        marks: u8,
    ) -> Headers {
        Headers::pack_n(text, ends, n_dirty, dirty, marks)
    }

    /// Fields already written as the JSON text [`Headers`] holds, with the ends of each name
    /// and value in it (`2i`, `2i + 1`) and the fields kept raw (an HTTP/1 head written by its
    /// parser as it scans: one copy of each piece instead of one per field and pass).
    pub(crate) fn from_parts(text: &[u8], ends: &[u32], dirty: &[u32], marks: u8) -> Headers {
        Headers::pack(text, ends, dirty, marks)
    }

    /// `ends`: name and value ends, two a field.
    #[inline(always)]
    fn pack(text: &[u8], ends: &[u32], dirty: &[u32], marks: u8) -> Headers {
        let pairs = ends.chunks_exact(2).map(|e| [e[0], e[1]]);
        Headers::pack_n(text, pairs, dirty.len(), dirty.iter().copied(), marks)
    }

    /// `ends` (a pair a field), `dirty` (about `n_dirty` of them) and `text` in one allocation
    /// (see `packed`).
    #[inline(always)]
    fn pack_n(
        text: &[u8],
        ends: impl ExactSizeIterator<Item = [u32; 2]>,
        n_dirty: usize,
        dirty: impl Iterator<Item = u32>,
        marks: u8,
    ) -> Headers {
        let wide = Headers::is_wide(text.len());
        let fields = ends.len();
        let words = text.len().div_ceil(4);
        let mut packed = Vec::with_capacity(if wide { 2 * fields } else { fields } + n_dirty + words);
        if wide {
            packed.extend(ends.flatten());
        } else {
            // Each end is at most the text's length: it fits its half.
            packed.extend(ends.map(|[n, v]| n | v << 16));
        }
        let end_words = packed.len();
        packed.extend(dirty);
        let at = packed.len();
        packed.reserve_exact(words);
        // SAFETY: `words` words are reserved past `at`; the last is zeroed first, then the
        // text's bytes (at most `4 * words`) written over them, so all are initialised.
        unsafe {
            let p = packed.as_mut_ptr().add(at);
            if words > 0 {
                p.add(words - 1).write(0);
            }
            std::ptr::copy_nonoverlapping(text.as_ptr(), p.cast::<u8>(), text.len());
            packed.set_len(at + words);
        }
        // Counts fit: the ends are u32 offsets in the text, a field has two, a raw field one.
        let n_ends = if wide { end_words } else { 2 * end_words } as u32;
        let (n_dirty, text_len) = ((at - end_words) as u32, text.len() as u32);
        Headers::from_box(packed.into_boxed_slice(), n_ends, n_dirty, text_len, marks)
    }

    /// Takes `packed`, which must be exactly [`Headers::words`] words for these counts.
    #[inline(always)]
    fn from_box(packed: Box<[u32]>, n_ends: u32, n_dirty: u32, text_len: u32, marks: u8) -> Headers {
        let len = packed.len();
        // SAFETY: `Box::into_raw` never returns null.
        let packed = unsafe { NonNull::new_unchecked(Box::into_raw(packed).cast::<u32>()) };
        let h = Headers { packed, n_ends, n_dirty, text_len, marks };
        // The invariant the readers and `drop` rely on, which `pack_n` and `clone` keep (the
        // test `headers_own_exactly_the_words_their_counts_give`). Checked in release builds
        // too (one comparison per stored header list): on a mismatch the words are leaked, not
        // freed with a wrong size, before the panic.
        if h.words() != len {
            std::mem::forget(h);
            panic!("Headers: counts and words disagree");
        }
        h
    }

    /// Words of `packed`: the ends, the raw fields, the text (its last word zero-padded).
    #[inline(always)]
    fn words(&self) -> usize {
        self.end_words() + self.n_dirty as usize + (self.text_len as usize).div_ceil(4)
    }

    /// The first `n` words of `packed`, `n` at most the ends' and raw fields' words (readers
    /// take what they need without counting the text's words).
    #[inline(always)]
    fn head(&self, n: usize) -> &[u32] {
        debug_assert!(n <= self.end_words() + self.n_dirty as usize);
        // SAFETY: as in `packed()`, of which these are the first `n` words.
        unsafe { std::slice::from_raw_parts(self.packed.as_ptr(), n) }
    }

    /// The words of `packed`.
    #[inline(always)]
    fn packed(&self) -> &[u32] {
        // SAFETY: `packed` points to the words of a `Box<[u32]>` of `words()` words that this
        // value owns (`from_box` checked the count; `Default`: a dangling pointer and no
        // words), initialised, and never written after `from_box`.
        unsafe { std::slice::from_raw_parts(self.packed.as_ptr(), self.words()) }
    }

    /// Whether a text of `len` bytes has its ends as u32 words, one each (longer than
    /// `u16::MAX` bytes: an end would not fit its u16 half).
    #[inline(always)]
    fn is_wide(len: usize) -> bool {
        len > usize::from(u16::MAX)
    }

    /// Words the ends take at the start of `packed`.
    #[inline(always)]
    fn end_words(&self) -> usize {
        if Headers::is_wide(self.text_len as usize) {
            self.n_ends as usize
        } else {
            self.n_ends as usize / 2
        }
    }

    /// The JSON text.
    #[inline(always)]
    fn text(&self) -> &[u8] {
        let at = self.end_words() + self.n_dirty as usize;
        // SAFETY: `packed` holds `end_words() + n_dirty` words then at least `text_len`
        // initialised bytes (`packed()`).
        unsafe {
            std::slice::from_raw_parts(self.packed.as_ptr().add(at).cast::<u8>(), self.text_len as usize)
        }
    }

    /// The ends of field `i`'s name and value.
    #[inline(always)]
    fn field_ends(&self, i: usize) -> Option<(usize, usize)> {
        if Headers::is_wide(self.text_len as usize) {
            let e = self.head(self.n_ends as usize).get(2 * i..2 * i + 2)?;
            return Some((e[0] as usize, e[1] as usize));
        }
        let w = *self.head(self.n_ends as usize / 2).get(i)?;
        Some(((w & 0xffff) as usize, (w >> 16) as usize))
    }

    /// Where field `i`'s name starts, after the value `prev_end` of the field before.
    #[inline(always)]
    fn name_start(i: usize, prev_end: usize) -> usize {
        if i == 0 {
            FIRST_NAME.len()
        } else {
            prev_end + AFTER_VALUE.len() + NEXT_NAME.len()
        }
    }

    /// Prefetches the fields' bytes (see [`crate::wire::prefetch_bytes`]).
    pub(crate) fn prefetch(&self) {
        crate::wire::prefetch_bytes(self.packed.as_ptr().cast(), 4 * self.words());
    }

    /// The bits set with [`HeadersBuilder::mark`].
    pub(crate) fn marks(&self) -> u8 {
        self.marks
    }

    /// The fields as JSON text (see [`Headers`]), and the fields whose bytes in it are raw.
    pub(crate) fn json_text(&self) -> (&[u8], &[u32]) {
        let n = self.end_words();
        (self.text(), &self.head(n + self.n_dirty as usize)[n..])
    }

    /// Bytes `start..start + len` of the JSON text (empty if out of it): a request's long path
    /// or host kept as where it is in its own header text ([`crate::classify::http::HttpRequest`]).
    pub(crate) fn text_range(&self, start: u32, len: u32) -> &[u8] {
        let (start, len) = (start as usize, len as usize);
        self.text().get(start..start.saturating_add(len)).unwrap_or_default()
    }

    /// Bytes `start..end` of the JSON text holding fields `first..last` (with the comma before
    /// `first` unless it is the first field).
    pub(crate) fn text_of_fields(&self, first: usize, last: usize) -> &[u8] {
        let value_end = |i: usize| self.field_ends(i).map_or(0, |e| e.1) + AFTER_VALUE.len();
        let start = if first == 0 { 0 } else { value_end(first - 1) };
        &self.text()[start..value_end(last - 1)]
    }

    /// Bytes of the JSON text.
    pub(crate) fn text_len(&self) -> usize {
        self.text_len as usize
    }

    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.n_ends as usize / 2
    }

    /// No fields.
    pub(crate) fn is_empty(&self) -> bool {
        self.n_ends == 0
    }

    /// Field `i`: (name, value).
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let (n, v) = self.field_ends(i)?;
        let prev = if i == 0 { 0 } else { self.field_ends(i - 1)?.1 };
        let t = self.text();
        Some((&t[Headers::name_start(i, prev)..n], &t[n + NAME_VALUE.len()..v]))
    }

    /// The fields in order: (name, value). Each field's ends read once, in order (through
    /// [`Headers::get`], twice each).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let t = self.text();
        let mut prev = 0;
        (0..self.len()).map_while(move |i| {
            let (n, v) = self.field_ends(i)?;
            let start = Headers::name_start(i, prev);
            prev = v;
            Some((&t[start..n], &t[n + NAME_VALUE.len()..v]))
        })
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        let words = std::ptr::slice_from_raw_parts_mut(self.packed.as_ptr(), self.words());
        // SAFETY: the box `from_box` took apart, rebuilt once (for `Default`, an empty one at a
        // dangling pointer, which frees nothing).
        drop(unsafe { Box::from_raw(words) });
    }
}

impl Default for Headers {
    fn default() -> Headers {
        Headers { packed: NonNull::dangling(), n_ends: 0, n_dirty: 0, text_len: 0, marks: 0 }
    }
}

impl Clone for Headers {
    fn clone(&self) -> Headers {
        Headers::from_box(self.packed().into(), self.n_ends, self.n_dirty, self.text_len, self.marks)
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        (self.n_ends, self.n_dirty, self.text_len, self.marks)
            == (other.n_ends, other.n_dirty, other.text_len, other.marks)
            && self.packed() == other.packed()
    }
}

impl Eq for Headers {}

// SAFETY: a `Headers` owns its words as the `Box<[u32]>` it was made from did, and only reads
// them through `&self`: sending or sharing it is sending or sharing that box.
unsafe impl Send for Headers {}
unsafe impl Sync for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(n, v)| (escape_bytes(n), escape_bytes(v)))).finish()
    }
}

#[cfg(test)]
impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for (n, v) in self.iter() {
            seq.serialize_element(&(WireRef(n), WireRef(v)))?;
        }
        seq.end()
    }
}

/// JSON form of a non-UTF-8 value: valid runs kept, backslashes doubled, invalid bytes `\xHH`.
pub(crate) fn escape_invalid_utf8(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            push_hex_escape(&mut out, *byte);
        }
    }
    out
}

/// Appends `\xHH` (lowercase hex) for `b`: a byte at a time through `write!` cost ~150
/// instructions each in previews of binary streams.
fn push_hex_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// Is `c` safe to print raw on a terminal?
fn is_terminal_safe(c: char) -> bool {
    if c.is_control() {
        return false;
    }
    // Bidi controls and other invisible format characters (Trojan Source, CVE-2021-42574).
    !matches!(c as u32,
        0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF | 0xFFF9..=0xFFFB | 0x061C | 0x00AD)
}

/// Escapes arbitrary bytes for a terminal (see the module doc).
pub(crate) fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    escape_bytes_into(b, &mut out);
    out
}

/// Appends [`escape_bytes`]`(b)` to `out`.
pub(crate) fn escape_bytes_into(b: &[u8], out: &mut String) {
    if let Some(s) = plain_text(b) {
        out.push_str(s);
        return;
    }
    for chunk in b.utf8_chunks() {
        escape_str_into(chunk.valid(), out);
        for byte in chunk.invalid() {
            push_hex_escape(out, *byte);
        }
    }
}

/// Escapes a string for a terminal (see the module doc).
pub(crate) fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_str_into(s, &mut out);
    out
}

/// `b` as text when it is printable ASCII without a backslash: shown as it is. Most text the
/// table shows (paths, names, SNIs) is; escaped char by char it was ~10 instructions a byte, a
/// tenth of the table's cost on the bench file.
///
/// Eight bytes at a time: the table's rows and detail lines pass most of their text through
/// here (issue 22: checked a byte at a time, then again by `from_utf8`, ~3% of a table run).
fn plain_text(b: &[u8]) -> Option<&str> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
        // A byte below 0x20, above 0x7e, or a backslash sets its high bit in `low`, `high` or
        // `slash` (the classic zero-byte tests; a borrow or carry only ever comes from a byte
        // already flagged).
        let low = w.wrapping_sub(0x20 * ONES) & !w;
        let high = w.wrapping_add(ONES) | w;
        let x = w ^ (u64::from(b'\\') * ONES);
        let slash = x.wrapping_sub(ONES) & !x;
        if (low | high | slash) & HIGH != 0 {
            return None;
        }
    }
    if !words.remainder().iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\') {
        return None;
    }
    // Printable ASCII is UTF-8: from_utf8 cannot fail here (and is one more pass when it
    // succeeds); `ok()` keeps the code free of unsafe for a few instructions.
    std::str::from_utf8(b).ok()
}

/// Appends [`escape_str`]`(s)` to `out` (the table builds its lines in place with it).
pub(crate) fn escape_str_into(s: &str, out: &mut String) {
    if let Some(s) = plain_text(s.as_bytes()) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x80 && c.is_control() => {
                push_hex_escape(out, c as u8);
            }
            c if !is_terminal_safe(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_bidi_and_invalid_utf8() {
        assert_eq!(escape_bytes(b"a\x1b[31mb"), "a\\x1b[31mb");
        assert_eq!(escape_bytes(b"x\r\n\0"), "x\\r\\n\\0");
        assert_eq!(escape_bytes("e\u{202e}vil".as_bytes()), "e\\u{202e}vil");
        assert_eq!(escape_bytes(b"\xba\xad"), "\\xba\\xad");
        assert_eq!(escape_bytes("caf\u{e9} \\".as_bytes()), "caf\u{e9} \\\\");
        assert_eq!(escape_bytes("\u{9b}".as_bytes()), "\\u{009b}");
        // The bytes copied whole are those the char-by-char path leaves alone (0x01 after each
        // forces that path).
        for b in 0..=255u8 {
            let slow = escape_bytes(&[b, 0x01]);
            let kept = slow.strip_suffix("\\x01").is_some_and(|k| k.as_bytes() == [b]);
            assert_eq!(plain_text(&[b]).is_some(), kept, "{b:#x}: {slow}");
            // And at every position of a word and of the tail, among plain bytes.
            for at in 0..19 {
                let mut t = *b"abcdefghijklmnopqrs";
                t[at] = b;
                assert_eq!(plain_text(&t).is_some(), kept, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn wire_bytes_keep_every_length_inline_or_not() {
        assert_eq!(std::mem::size_of::<WireBytes>(), 24);
        let all: Vec<u8> = (0..=255).collect();
        // Every inline length (each size class of the fixed-size copies) and some heap ones.
        for n in (0..=INLINE + 1).chain([255]) {
            let w = WireBytes::new(&all[..n]);
            assert_eq!(w.as_bytes(), &all[..n]);
            assert_eq!(w.clone(), w);
            if n > 0 {
                assert_ne!(w, WireBytes::new(&all[1..=n]));
            }
        }
        assert_eq!(WireBytes::default().as_bytes(), b"");
    }

    #[test]
    fn exact_builder_gives_what_the_builder_gives_whatever_the_announced_size() {
        let all: Vec<u8> = (0..=255).collect();
        let fields: Vec<(&[u8], &[u8])> = (0..40)
            .map(|i| (&all[b'a' as usize..b'a' as usize + i % 20], &all[(i * 7) % 200..(i * 7) % 200 + i]))
            .collect();
        for n in [0, 1, 2, 3, 17, 40] {
            let fs = &fields[..n];
            let mut b = HeadersBuilder::default();
            fs.iter().for_each(|(k, v)| b.push(k, v));
            b.mark(3);
            let want = b.finish();
            let bytes: usize = fs.iter().map(|(k, v)| k.len() + v.len()).sum();
            for (announced, size) in [(n, bytes), (n / 2, bytes / 2), (n + 3, bytes + 9)] {
                let mut e = ExactHeadersBuilder::new(announced, size);
                fs.iter().for_each(|(k, v)| e.push(k, v));
                e.mark(3);
                assert_eq!(e.finish(), want, "{n} fields announced as {announced}, {size} bytes");
            }
        }
    }

    #[test]
    fn headers_read_back_their_fields_with_narrow_and_wide_ends() {
        // Texts on either side of the u16 ends' limit (65,535 bytes), with raw fields among
        // them: every field, every run of fields and the raw list as pushed.
        // The text is the long value and 53 bytes: 65,535 bytes with 65,482.
        for (big, wide) in [(65_000, false), (65_482, false), (65_483, true), (70_000, true)] {
            let long = vec![b'v'; big];
            let fields: [(&[u8], &[u8]); 5] =
                [(b"a", b"1"), (b"b\x01", b"2"), (b"long", &long), (b"c", b"caf\xe9"), (b"", b"")];
            let mut b = HeadersBuilder::default();
            fields.iter().for_each(|(k, v)| b.push(k, v));
            let h = b.finish();
            let (text, dirty) = h.json_text();
            assert_eq!(
                (Headers::is_wide(h.text_len as usize), text.len() > 65_535),
                (wide, wide),
                "{big}: {} bytes",
                text.len()
            );
            assert_eq!(dirty, [1, 3], "{big}");
            assert_eq!(h.len(), 5);
            assert_eq!(h.iter().collect::<Vec<_>>(), fields, "{big}");
            assert_eq!(h.get(5), None);
            let mut want = Vec::new();
            for (i, (k, v)) in fields.iter().enumerate() {
                want.extend_from_slice(if i == 0 { FIRST_NAME } else { NEXT_NAME });
                want.extend_from_slice(k);
                want.extend_from_slice(NAME_VALUE);
                want.extend_from_slice(v);
                want.extend_from_slice(AFTER_VALUE);
            }
            assert!(text == want, "{big}");
            for first in 0..5 {
                for last in first + 1..=5 {
                    let start = if first == 0 { 0 } else { h.text_of_fields(0, first).len() };
                    assert!(h.text_of_fields(first, last) == &want[start..h.text_of_fields(0, last).len()]);
                }
            }
            assert!(h.text_of_fields(0, 5) == want);
        }
        assert_eq!(Headers::default().iter().count(), 0);
        assert_eq!(Headers::default().json_text(), (&[][..], &[][..]));
    }

    #[test]
    fn headers_own_exactly_the_words_their_counts_give() {
        // 24 bytes: the thin pointer's reason to be (see `Headers::packed`).
        assert_eq!(std::mem::size_of::<Headers>(), 24);
        // Texts of every length modulo 4 (the zero-padded last word), with and without raw
        // fields, narrow and wide: the words `from_box` took are the words `words()` counts
        // (it asserts so), and clones and drops of each read back the same fields.
        let long = vec![b'x'; 70_000];
        for n in 0..9 {
            for (k, v) in [(&b"k"[..], &long[..n]), (b"k\x01", &long[..n]), (b"w", &long[..65_530 + n])] {
                let mut b = HeadersBuilder::default();
                b.push(k, v);
                b.push(b"z", &long[..n]);
                b.mark(1);
                let h = b.finish();
                assert_eq!(h.words(), h.end_words() + h.n_dirty as usize + h.text().len().div_ceil(4));
                let c = h.clone();
                drop(h);
                assert_eq!(c.iter().collect::<Vec<_>>(), [(k, v), (&b"z"[..], &long[..n])]);
                assert_eq!((c.marks(), c.clone(), c.len()), (1, c.clone(), 2));
            }
        }
        let e = Headers::default();
        assert_eq!((e.words(), e.clone(), e.is_empty()), (0, Headers::default(), true));
        assert_ne!(Headers::default(), Headers::from_parts(b"[\"a\",\"\"]", &[3, 6], &[], 0));
    }

    #[test]
    fn json_text_keeps_utf8_and_escapes_invalid_bytes() {
        assert_eq!(WireBytes::new(b"h2").to_json_text(), "h2");
        assert_eq!(WireBytes::new(b"a\\b").to_json_text(), "a\\b");
        assert_eq!(WireBytes::new(b"\xba\xad\\").to_json_text(), "\\xba\\xad\\\\");
        assert_eq!(serde_json::to_string(&WireBytes::new(b"\x1b")).unwrap(), "\"\\u001b\"");
    }
}

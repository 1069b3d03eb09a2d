//! A decoded header block as the session reads it: [`HeaderList`], the block's fields written
//! as the JSON text the report stores, with their spans and what the store reads of them.

use super::super::{FieldClass, FieldRole};
use super::ENTRY_OVERHEAD;
use crate::sanitize::{FIRST_NAME, NAME_VALUE, NEXT_NAME};

/// One decoded field, borrowed from a [`HeaderList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// Name as sent (HTTP/2 names are lowercase; not checked here).
    pub name: &'a [u8],
    /// Value as sent.
    pub value: &'a [u8],
    /// Sent as "never indexed" (RFC 7541 §6.2.3): the sender marks the value sensitive.
    pub(crate) never_indexed: bool,
    /// What the name is to the session ([`FieldClass`]).
    pub(crate) class: FieldClass,
    /// The name or value needs escaping in JSON.
    pub(crate) dirty: bool,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) start: u32,
    /// End of the name; the value starts [`NAME_VALUE`] bytes later.
    pub(super) mid: u32,
    pub(super) end: u32,
    pub(super) never_indexed: bool,
    /// The name or value needs escaping in JSON: kept raw between the punctuation, as
    /// [`crate::sanitize::Headers`] keeps such a field.
    pub(super) dirty: bool,
    pub(super) class: FieldClass,
}

/// The fields of one decoded header block, reused from block to block (no allocation per
/// field once its buffers have grown). The fields are written as the JSON text the report
/// writes (`["name","value"],["name","value"]`, as [`crate::sanitize::Headers`] stores it), so
/// that a block whose fields need no escaping nor redaction is stored with one copy
/// ([`HeaderList::json_text`]) rather than field by field (~200 instructions a field:
/// bench/RESULTS.md).
#[derive(Clone, Debug, Default)]
pub struct HeaderList {
    pub(super) bytes: Vec<u8>,
    pub(super) spans: Vec<Span>,
    /// Fields that named a dynamic table entry added before the capture started (their name,
    /// or name and value, are lost).
    pub unknown: u32,
    /// Fields not stored because the list had reached `max_list_bytes`.
    pub(crate) dropped: u32,
    /// Size of the whole list as RFC 9113 §6.5.2 counts it (name + value + 32 per field,
    /// unknown and dropped fields included, unknown names counted as empty).
    pub(crate) list_bytes: u64,
    /// The list exceeded `max_list_bytes` (an HPACK bomb or an oversize header list).
    pub(crate) oversize: bool,
    /// A dynamic table size update above the receiver's announced limit (applied anyway, up
    /// to [`MAX_TABLE_BYTES`]).
    pub(crate) over_limit: bool,
    /// What the store reads of the stored fields, gathered as they are pushed: a loop over
    /// the spans to find them again cost ~2.6M instructions on the 100 MB mesh bench file.
    pub(super) summary: ListSummary,
}

/// The stored fields' marks, secrets and roles, gathered while decoding.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ListSummary {
    /// OR of the stored fields' marks.
    pub(super) marks: u8,
    /// A stored field is a credential header or was sent never indexed.
    pub(super) secret: bool,
    /// Bit `i`: stored field `i` has a role; bit 63: some field from the 63rd on may have one.
    pub(super) roles: u64,
    /// Stored fields kept raw (their name or value needs escaping): the stored [`Headers`]
    /// are allocated for them at once.
    ///
    /// [`Headers`]: crate::sanitize::Headers
    pub(super) dirty: u32,
}

impl ListSummary {
    #[inline]
    pub(super) fn add(&mut self, i: usize, class: FieldClass, never_indexed: bool, dirty: bool) {
        self.marks |= class.marks;
        self.dirty += u32::from(dirty);
        self.secret |= class.secret | never_indexed;
        if class.role != FieldRole::Other {
            self.roles |= 1 << i.min(63);
        }
    }
}

impl HeaderList {
    /// An empty list.
    pub const fn new() -> HeaderList {
        HeaderList {
            bytes: Vec::new(),
            spans: Vec::new(),
            unknown: 0,
            dropped: 0,
            list_bytes: 0,
            oversize: false,
            over_limit: false,
            summary: ListSummary { marks: 0, secret: false, roles: 0, dirty: 0 },
        }
    }

    /// Empties the list (a cut block reports no fields).
    pub(crate) fn clear_for_cut(&mut self) {
        self.clear();
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.unknown = 0;
        self.dropped = 0;
        self.list_bytes = 0;
        self.oversize = false;
        self.over_limit = false;
        self.summary = ListSummary::default();
    }

    /// Fields stored.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// No field stored.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Field `i`, in block order.
    pub(crate) fn get(&self, i: usize) -> Option<Field<'_>> {
        let s = self.spans.get(i)?;
        Some(Field {
            name: &self.bytes[s.start as usize..s.mid as usize],
            value: &self.bytes[s.mid as usize + NAME_VALUE.len()..s.end as usize],
            never_indexed: s.never_indexed,
            class: s.class,
            dirty: s.dirty,
        })
    }

    /// OR of the stored fields' marks.
    pub(crate) fn marks(&self) -> u8 {
        self.summary.marks
    }

    /// Some stored field is a credential header or was sent never indexed.
    pub(crate) fn has_secret(&self) -> bool {
        self.summary.secret
    }

    /// Calls `f` on each stored field with a role (not [`FieldRole::Other`]), in block order.
    pub(crate) fn each_with_role<'a>(&'a self, mut f: impl FnMut(Field<'a>)) {
        let mut roles = self.summary.roles;
        while roles != 0 {
            let i = roles.trailing_zeros() as usize;
            roles &= roles - 1;
            if i < 63 {
                if let Some(field) = self.get(i) {
                    f(field);
                }
                continue;
            }
            for j in 63..self.spans.len() {
                if self.spans[j].class.role != FieldRole::Other {
                    if let Some(field) = self.get(j) {
                        f(field);
                    }
                }
            }
        }
    }

    /// The stored fields, in block order.
    pub fn iter(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        (0..self.spans.len()).filter_map(|i| self.get(i))
    }

    /// The stored fields as JSON text: with [`Self::json_ends`] and [`Self::dirty_fields`],
    /// what [`crate::sanitize::Headers`] holds for them.
    pub(crate) fn json_text(&self) -> &[u8] {
        &self.bytes
    }

    /// End of each stored field's name and value in [`Self::json_text`].
    pub(crate) fn json_ends(&self) -> impl ExactSizeIterator<Item = [u32; 2]> + '_ {
        self.spans.iter().map(|s| [s.mid, s.end])
    }

    /// The fields kept raw in [`Self::json_text`] (their name or value needs escaping), and
    /// how many they are.
    pub(crate) fn dirty_fields(&self) -> (impl Iterator<Item = u32> + '_, usize) {
        let fields = self.spans.iter().enumerate().filter(|(_, s)| s.dirty).map(|(i, _)| i as u32);
        (fields, self.summary.dirty as usize)
    }

    /// The punctuation that opens a field. Each branch copies a constant length, inlined: a
    /// copy of the slice either branch chose went through `memcpy` (~250,000 calls on the 100 MB
    /// mesh bench file).
    #[inline(always)]
    pub(super) fn put_open(&mut self) {
        if self.spans.is_empty() {
            self.bytes.extend_from_slice(FIRST_NAME)
        } else {
            self.bytes.extend_from_slice(NEXT_NAME)
        }
    }

    /// Counts a field of `bytes` (name and value) in the list's size (RFC 9113 §6.5.2: plus
    /// 32); false, and counted as dropped, once the list is over `max`.
    #[inline(always)]
    pub(super) fn admit(&mut self, max: usize, bytes: usize) -> bool {
        self.list_bytes += (bytes + ENTRY_OVERHEAD) as u64;
        if self.oversize || self.list_bytes > max as u64 {
            self.oversize = true;
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Counts a field of `bytes` (name and value) that a lean decoder does not store: its size,
    /// and its name's marks if it is within the bound (as a stored field's are).
    #[inline]
    pub(super) fn count(&mut self, max: usize, bytes: usize, marks: u8) {
        if self.admit(max, bytes) {
            self.summary.marks |= marks;
        }
    }

    /// What a lean decoder's list must be, given this list decoded in full from the same
    /// blocks (tests): the fields the session reads when lean, in order, and the same counts,
    /// sizes, flags and marks. `None` if they agree, else what differs.
    #[cfg(test)]
    pub(crate) fn lean_differs(&self, lean: &HeaderList) -> Option<String> {
        // The class's `lean` as the name says (a full decoder leaves it unset on fields from
        // its table: it never reads it).
        fn row(f: Field<'_>) -> (&[u8], &[u8], bool, FieldClass) {
            (f.name, f.value, f.never_indexed, FieldClass { lean: FieldClass::of(f.name).lean, ..f.class })
        }
        let want: Vec<_> = self.iter().map(row).filter(|r| r.3.read_when_lean()).collect();
        let got: Vec<_> = lean.iter().map(row).collect();
        if let Some(f) = lean.iter().find(|f| f.class.lean != FieldClass::of(f.name).lean) {
            return Some(format!("lean list: {:?} has the wrong lean bit", f.name));
        }
        let counts =
            |l: &HeaderList| (l.unknown, l.dropped, l.list_bytes, l.oversize, l.over_limit, l.marks());
        (want != got || counts(self) != counts(lean))
            .then(|| format!("full {want:?} {:?}, lean {got:?} {:?}", counts(self), counts(lean)))
    }

    /// Bytes of buffer allocated.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.bytes.capacity() + self.spans.capacity() * std::mem::size_of::<Span>()
    }
}

//! `x-envoy-peer-metadata`: Envoy's metadata exchange value (base64 of a protobuf `Struct`),
//! decoded straight to the JSON text a flow's `istio.peer_metadata` carries, and its namespace.
//! Untrusted bytes: depth, lengths and UTF-8 are checked; a malformed value is refused whole.

use super::lossy;
use crate::sanitize::json_scan::{push_json_str, scan};
use std::borrow::Cow;

/// A decoded `x-envoy-peer-metadata`: its JSON text (written as is into every flow that
/// carries it) and its `NAMESPACE` (the mesh policy's evidence).
///
/// Text straight from the protobuf ([`decode_peer_metadata`]), no `serde_json::Value`: a map
/// of `String`s built for every flow that carries one, then serialized, was ~7,000 instructions
/// and ~12 allocations each, and only the table's detail lines read more than `NAMESPACE`
/// (they parse the text back, [`PeerMetadata::value`]). bench/misses, mesh 30 MB slice:
/// cycles~ 91.8 M -> 90.7 M (Ir 164.8 M -> 163.2 M).
#[derive(Debug)]
pub(crate) struct PeerMetadata {
    /// The whole metadata as JSON text, keys sorted.
    pub(crate) json: Box<[u8]>,
    /// The top-level `NAMESPACE`, when it is a string ([`PeerMetadata::namespace`]).
    namespace: Namespace,
}

/// Where [`PeerMetadata::namespace`] is kept.
///
/// Most often inside the JSON text: a namespace written without escapes is its own text there.
/// A `Box<str>` of its own was an allocation (and a free) per header decoded, every flow of the
/// bench files carrying its own value.
#[derive(Debug)]
enum Namespace {
    None,
    /// The byte range of [`PeerMetadata::json`] between the value's quotes.
    InJson(u32, u32),
    /// A namespace whose JSON text differs from it (escapes, invalid UTF-8 replaced).
    Own(Box<str>),
}

impl PartialEq for PeerMetadata {
    fn eq(&self, other: &PeerMetadata) -> bool {
        self.json == other.json && self.namespace() == other.namespace()
    }
}

impl Eq for PeerMetadata {}

impl PeerMetadata {
    /// Metadata of which only the namespace is known (`tlspeek report` reads flows back).
    pub(crate) fn with_namespace(ns: &str) -> PeerMetadata {
        let mut json = b"{\"NAMESPACE\":".to_vec();
        let mark = json.len();
        push_json_str(&mut json, ns.as_bytes());
        let namespace = Namespace::of(&json, mark, ns.as_bytes());
        json.push(b'}');
        PeerMetadata { json: json.into_boxed_slice(), namespace }
    }

    /// The top-level `NAMESPACE`, when it is a string (invalid UTF-8 replaced).
    pub(crate) fn namespace(&self) -> Option<&str> {
        match &self.namespace {
            Namespace::None => None,
            // Built on the quotes of a string the text holds: valid UTF-8, never out of range
            // (`get` and `from_utf8` keep even a wrong one from panicking).
            Namespace::InJson(a, b) => std::str::from_utf8(self.json.get(*a as usize..*b as usize)?).ok(),
            Namespace::Own(s) => Some(s),
        }
    }

    /// The metadata as a JSON value, parsed from [`PeerMetadata::json`].
    #[cfg(test)]
    pub(crate) fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or(serde_json::Value::Null)
    }

    /// The top-level string values of [`SHOWN_KEYS`] (none for a value that is not a string),
    /// parsed from [`PeerMetadata::json`] for the table's detail line; `None` when the text does
    /// not parse.
    ///
    /// Only these five keys, into borrowed text: a whole `serde_json::Value` (a map, a
    /// `String` per key and value) was ~4.7 k instructions a flow shown. bench/misses, table
    /// (`--threads 1`) cycles~: mesh 30 MB 92.2 -> 91.3 M, default 30 MB 86.2 -> 85.6 M. The same values as
    /// `value()[key].as_str()`: the text has no duplicate keys ([`pb_struct_json`] keeps the
    /// last), which the derive would refuse and a map would let the last win.
    pub(crate) fn shown(&self) -> Option<[Option<Cow<'_, str>>; 5]> {
        // A struct would also be read from an array (its fields by position): objects only.
        if self.json.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let s: Shown<'_> = serde_json::from_slice(&self.json).ok()?;
        Some(
            [s.name, s.namespace, s.workload_name, s.cluster_id, s.istio_version]
                .map(|t| t.and_then(|t| t.0)),
        )
    }
}

impl Namespace {
    /// The namespace `raw` (wire bytes), whose JSON string was just written at `json[mark..]`:
    /// a range of that text when it is `raw` quoted, else its own (lossy) copy.
    fn of(json: &[u8], mark: usize, raw: &[u8]) -> Namespace {
        let inner = json.get(mark + 1..json.len().saturating_sub(1));
        match (u32::try_from(json.len()), inner) {
            (Ok(end), Some(t)) if t == raw && json[mark] == b'"' && json[json.len() - 1] == b'"' => {
                Namespace::InJson(mark as u32 + 1, end - 1)
            }
            _ => Namespace::Own(lossy(raw).into()),
        }
    }
}

/// The keys the table shows from the peer metadata, in its order.
pub(crate) const SHOWN_KEYS: [&str; 5] =
    ["NAME", "NAMESPACE", "WORKLOAD_NAME", "CLUSTER_ID", "ISTIO_VERSION"];

/// [`SHOWN_KEYS`]' values; other keys are skipped unread.
#[derive(serde::Deserialize)]
struct Shown<'a> {
    #[serde(rename = "NAME", borrow, default)]
    name: Option<Text<'a>>,
    #[serde(rename = "NAMESPACE", borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(rename = "WORKLOAD_NAME", borrow, default)]
    workload_name: Option<Text<'a>>,
    #[serde(rename = "CLUSTER_ID", borrow, default)]
    cluster_id: Option<Text<'a>>,
    #[serde(rename = "ISTIO_VERSION", borrow, default)]
    istio_version: Option<Text<'a>>,
}

/// Any JSON value: its text when it is a string (borrowed unless it had escapes), else none.
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Value of each base64 character, standard and URL-safe alphabets; 0xff for any other byte.
static BASE64: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

/// Decodes standard or URL-safe base64 (padding optional); `None` on any other byte.
pub(crate) fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    base64_decode_into(text, &mut out)?;
    Some(out)
}

/// [`base64_decode`], appended to `out` (left with unspecified bytes on `None`).
///
/// Through [`BASE64`]: a `match` per character cost ~4,800 instructions per
/// `x-envoy-peer-metadata` header (5M of 650M on the default bench file). Eight characters at a
/// time into one 64-bit word stored whole (the buffer has two bytes to spare), the validity of
/// every character checked once after the loop: four at a time with a branch and an
/// `extend_from_slice` each was ~1,700 instructions a peer-metadata header of the bench.
fn base64_decode_into(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let t: &[u8] = text.trim_ascii();
    let t = t.strip_suffix(b"==").or_else(|| t.strip_suffix(b"=")).unwrap_or(t);
    let start = out.len();
    let full = t.len() / 4 * 3;
    out.resize(start + full + 2, 0);
    let mut bad = 0u8;
    let mut o = start;
    let mut octets = t.chunks_exact(8);
    for c in &mut octets {
        let mut x = 0u64;
        for &ch in c {
            let v = BASE64[ch as usize];
            bad |= v;
            x = x << 6 | u64::from(v);
        }
        out[o..o + 8].copy_from_slice(&(x << 16).to_be_bytes());
        o += 6;
    }
    let mut quads = octets.remainder().chunks_exact(4);
    for q in &mut quads {
        let mut x = 0u32;
        for &ch in q {
            let v = BASE64[ch as usize];
            bad |= v;
            x = x << 6 | u32::from(v);
        }
        out[o..o + 3].copy_from_slice(&x.to_be_bytes()[1..]);
        o += 3;
    }
    out.truncate(start + full);
    if bad & 0x80 != 0 {
        return None;
    }
    let rest = quads.remainder();
    if rest.is_empty() {
        return Some(());
    }
    let mut n = 0u32;
    for (i, &c) in rest.iter().enumerate() {
        let v = BASE64[c as usize];
        if v & 0x80 != 0 {
            return None;
        }
        n |= u32::from(v) << (18 - 6 * i);
    }
    match rest.len() {
        3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
        2 => out.push((n >> 16) as u8),
        _ => return None,
    }
    Some(())
}

/// Minimal protobuf reader for `google.protobuf.Struct` (what Envoy's metadata-exchange filter
/// puts, base64-encoded, in `x-envoy-peer-metadata`). Bounded: at most [`MAX_PB_DEPTH`] levels.
const MAX_PB_DEPTH: usize = 8;

/// A varint; one byte (every tag and short length of Envoy's metadata) without a loop.
#[inline]
fn pb_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(u64::from(first));
    }
    pb_varint_long(b, pos)
}

fn pb_varint_long(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One protobuf field: number, wire type, payload (the bytes of a LEN field or the 8/4 bytes of
/// a fixed field), varint value.
type PbField<'a> = (u64, u8, &'a [u8], u64);

/// The fields of a message, in order; a malformed field comes back as `None` and ends the
/// iteration (every caller then refuses the whole value). An iterator, not a collected `Vec`:
/// that was one allocation per message level of every peer-metadata header.
struct PbFields<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PbFields<'a> {
    type Item = Option<PbField<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Option<PbField<'a>>> {
        if self.pos >= self.b.len() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            self.pos = self.b.len();
        }
        Some(field)
    }
}

impl<'a> PbFields<'a> {
    fn new(b: &'a [u8]) -> PbFields<'a> {
        PbFields { b, pos: 0 }
    }

    #[inline(always)]
    fn field(&mut self) -> Option<PbField<'a>> {
        let (b, pos) = (self.b, &mut self.pos);
        let key = pb_varint(b, pos)?;
        let (field, wt) = (key >> 3, (key & 7) as u8);
        match wt {
            0 => Some((field, wt, &b[..0], pb_varint(b, pos)?)),
            1 | 5 => {
                let n = if wt == 1 { 8 } else { 4 };
                let p = b.get(*pos..*pos + n)?;
                *pos += n;
                Some((field, wt, p, 0))
            }
            2 => {
                let len = usize::try_from(pb_varint(b, pos)?).ok()?;
                let p = b.get(*pos..pos.checked_add(len)?)?;
                *pos += len;
                Some((field, wt, p, 0))
            }
            _ => None,
        }
    }
}

/// What a protobuf `Value` was, as far as [`PeerMetadata::namespace`] needs: the payload of a
/// `string_value`, or anything else.
enum PbKind<'a> {
    Str(&'a [u8]),
    Other,
}

/// One entry of a `Struct` being written: its key, the entry's bytes, and its last value
/// field. `Copy`: entries are moved by the sort and read while their level's scratch grows.
#[derive(Clone, Copy)]
struct Entry<'a> {
    /// The key text's first eight bytes, big-endian, zero-padded: ordered as the keys are
    /// whenever they differ, so most comparisons end on it.
    prefix: u64,
    key: &'a [u8],
    /// The key is not UTF-8: its lossy text ([`text_bytes`]) is compared and written.
    key_lossy: bool,
    /// More than one value field: the earlier ones are still checked.
    multi: bool,
    /// The entry's fields, walked again when it has several values ([`Entry::multi`]).
    entry: &'a [u8],
    /// The payload of its last value field (the one kept), if any.
    value: Option<&'a [u8]>,
}

impl<'a> Entry<'a> {
    /// The key as JSON text reads it.
    fn key_text(&self) -> Cow<'a, [u8]> {
        if self.key_lossy {
            text_bytes(self.key)
        } else {
            Cow::Borrowed(self.key)
        }
    }

    #[inline]
    fn cmp_key(&self, other: &Entry<'_>) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| {
            if self.key_lossy || other.key_lossy {
                self.key_text().cmp(&other.key_text())
            } else {
                self.key.cmp(other.key)
            }
        })
    }
}

/// An entry made of a key then one value, both shorter than 128 bytes (one-byte lengths): how
/// Envoy writes every entry. What the loop over its fields finds for it (key, value, not
/// multi), read at fixed places: the loop was ~100 instructions an entry more. bench/misses one
/// thread cycles~ (with [`Entry::cmp_key`] inlined): mesh 30 MB 80.37 -> 80.16 M (Ir 154.65 ->
/// 154.19 M), default 30 MB 75.70 -> 75.57 M.
#[inline]
fn key_value(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x0a, kn @ 0..=0x7f, rest @ ..] = entry else { return None };
    let (key, rest) = rest.split_at_checked(usize::from(*kn))?;
    match rest {
        [0x12, vn @ 0..=0x7f, value @ ..] if usize::from(*vn) == value.len() => Some((key, value)),
        _ => None,
    }
}

/// [`Entry::prefix`] of a key's text.
fn key_prefix(k: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = k.len().min(8);
    a[..n].copy_from_slice(&k[..n]);
    u64::from_be_bytes(a)
}

/// Structs with at most this many entries are sorted by insertion (Envoy's have five or six);
/// larger ones (hostile input) by the standard library's stable sort, never quadratic.
const INSERTION_SORT_MAX: usize = 16;

/// Sorts `e` by key, stably (of equal keys, the last stays last).
fn sort_entries(e: &mut [Entry<'_>]) {
    if e.len() > INSERTION_SORT_MAX {
        e.sort_by(Entry::cmp_key);
        return;
    }
    for i in 1..e.len() {
        let x = e[i];
        let mut j = i;
        while j > 0 && e[j - 1].cmp_key(&x).is_gt() {
            e[j] = e[j - 1];
            j -= 1;
        }
        e[j] = x;
    }
}

/// Writes a `google.protobuf.Struct` as the JSON text serde_json wrote for it decoded into a
/// `serde_json::Value` (what this did before): keys sorted (a `BTreeMap`), the last of duplicate
/// keys wins, text decoded lossily and escaped as serde_json escapes it. Every field is decoded
/// and checked as before: a malformed value anywhere refuses the whole struct, even one a later
/// duplicate replaces. With `namespace`, the top-level `NAMESPACE` string is kept there.
/// `entries` is scratch shared by every level (each pushes its own after its parent's, and
/// takes them off when done).
///
/// The entries are gathered first, sorted, then their values written in key order: each value
/// was written as it came, the object assembled after them in key order and the values first
/// written removed (two copies of the text per level), and each level collected its entries in
/// a `Vec` of its own, sorted by the standard library's stable sort (~5,800 instructions a
/// header of the bench, five keys, before the changes listed at [`decode_peer_metadata`]).
fn pb_struct_json<'a>(
    b: &'a [u8],
    depth: usize,
    out: &mut Vec<u8>,
    mut namespace: Option<&mut Namespace>,
    entries: &mut Vec<Entry<'a>>,
) -> Option<()> {
    if depth > MAX_PB_DEPTH {
        return None;
    }
    let base = entries.len();
    for field in PbFields::new(b) {
        let (field, wt, entry, _) = field?;
        if field != 1 || wt != 2 {
            continue;
        }
        let (key, value, multi) = match key_value(entry) {
            Some((k, v)) => (Some(k), Some(v), false),
            None => {
                let (mut key, mut value, mut multi) = (None, None, false);
                for f in PbFields::new(entry) {
                    let (f, wt, p, _) = f?;
                    match (f, wt) {
                        (1, 2) => key = Some(p),
                        (2, 2) => {
                            multi |= value.is_some();
                            value = Some(p);
                        }
                        _ => {}
                    }
                }
                (key, value, multi)
            }
        };
        // ASCII (Envoy's keys) is valid UTF-8: `from_utf8` was ~100 instructions a key.
        let key = key?;
        let key_lossy = !key.is_ascii() && std::str::from_utf8(key).is_err();
        let prefix = if key_lossy { key_prefix(&text_bytes(key)) } else { key_prefix(key) };
        entries.push(Entry { prefix, key, key_lossy, multi, entry, value });
    }
    // Valid UTF-8 sorts as its bytes do. Stable: of equal keys, the last is the one a map
    // insert kept.
    sort_entries(&mut entries[base..]);
    out.push(b'{');
    let mut first = true;
    for i in base..entries.len() {
        let e = entries[i];
        let kept = entries.get(i + 1).is_none_or(|next| next.cmp_key(&e).is_ne());
        if !kept {
            // Replaced by a later duplicate: checked all the same.
            let mark = out.len();
            entry_value_json(&e, depth, out, entries)?;
            out.truncate(mark);
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        push_text(out, &e.key_text());
        out.push(b':');
        let mark = out.len();
        if let PbKind::Str(s) = entry_value_json(&e, depth, out, entries)? {
            if let (Some(ns), b"NAMESPACE") = (namespace.as_deref_mut(), e.key) {
                // Its text ends here: `out` is the whole JSON text so far (the top level).
                *ns = Namespace::of(out, mark, s);
            }
        }
    }
    out.push(b'}');
    entries.truncate(base);
    Some(())
}

/// Writes the value of a struct's entry (the last of its value fields; the others checked):
/// `null` when it has none.
fn entry_value_json<'a>(
    e: &Entry<'a>,
    depth: usize,
    out: &mut Vec<u8>,
    entries: &mut Vec<Entry<'a>>,
) -> Option<PbKind<'a>> {
    if e.multi {
        let start = out.len();
        let mut kind = PbKind::Other;
        for f in PbFields::new(e.entry) {
            if let Some((2, 2, p, _)) = f {
                out.truncate(start);
                kind = pb_value_json(p, depth + 1, out, entries)?;
            }
        }
        return Some(kind);
    }
    match e.value {
        Some(p) => pb_value_json(p, depth + 1, out, entries),
        None => {
            out.extend_from_slice(b"null");
            Some(PbKind::Other)
        }
    }
}

/// Writes bytes as a JSON string, invalid UTF-8 replaced: plain ASCII (every string Envoy
/// writes) after one scan, without [`text_bytes`]'s UTF-8 check.
fn push_text(out: &mut Vec<u8>, s: &[u8]) {
    if scan(s) == (false, false) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        push_json_str(out, &text_bytes(s));
    }
}

/// Writes a `google.protobuf.Value` as JSON (the last of its kind fields wins; none is null).
fn pb_value_json<'a>(
    b: &'a [u8],
    depth: usize,
    out: &mut Vec<u8>,
    entries: &mut Vec<Entry<'a>>,
) -> Option<PbKind<'a>> {
    if depth > MAX_PB_DEPTH {
        return None;
    }
    // A `string_value` alone, shorter than 128 bytes (one-byte length): what Envoy writes
    // for every value but the labels. The same as the loop below does for it.
    if let [0x1a, n, s @ ..] = b {
        if usize::from(*n) == s.len() && *n < 0x80 {
            push_text(out, s);
            return Some(PbKind::Str(s));
        }
    }
    let start = out.len();
    let mut kind = None;
    for f in PbFields::new(b) {
        let (f, wt, p, n) = f?;
        if !matches!((f, wt), (1, 0) | (2, 1) | (3, 2) | (4, 0) | (5, 2) | (6, 2)) {
            continue;
        }
        out.truncate(start);
        kind = Some(PbKind::Other);
        match (f, wt) {
            (2, 1) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(p);
                match serde_json::Number::from_f64(f64::from_le_bytes(a)) {
                    // Rare: through serde_json, whose number formatting this must match.
                    Some(num) => serde_json::to_writer(&mut *out, &num).ok()?,
                    None => out.extend_from_slice(b"null"),
                }
            }
            (3, 2) => {
                push_text(out, p);
                kind = Some(PbKind::Str(p));
            }
            (4, 0) => out.extend_from_slice(if n != 0 { b"true" } else { b"false" }),
            (5, 2) => pb_struct_json(p, depth + 1, out, None, entries)?,
            (6, 2) => {
                out.push(b'[');
                let mut first = true;
                for l in PbFields::new(p) {
                    let (lf, lwt, lp, _) = l?;
                    if lf == 1 && lwt == 2 {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        pb_value_json(lp, depth + 1, out, entries)?;
                    }
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(b"null"),
        }
    }
    if kind.is_none() {
        out.extend_from_slice(b"null");
    }
    Some(kind.unwrap_or(PbKind::Other))
}

/// [`lossy`] as bytes: borrowed when valid UTF-8, invalid sequences replaced.
fn text_bytes(b: &[u8]) -> Cow<'_, [u8]> {
    match lossy(b) {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// Scratch of [`decode_peer_metadata`], per thread: the protobuf bytes, the JSON text and
/// the entries of the structs being written (empty between headers).
#[derive(Default)]
struct Scratch {
    pb: Vec<u8>,
    json: Vec<u8>,
    entries: Vec<Entry<'static>>,
}

/// Scratch kept between headers (a longer header's is freed after it).
const SCRATCH_KEEP: usize = 16 * 1024;
/// Entries kept between headers ([`SCRATCH_KEEP`]'s rule).
const ENTRIES_KEEP: usize = 64;

/// An empty `Vec` of entries as one of another lifetime, its buffer kept: the standard
/// library collects a `vec::IntoIter` mapped to a type of the same size and alignment in place
/// (when it does not, this allocates, nothing worse).
fn reuse_entries<'b>(mut v: Vec<Entry<'_>>) -> Vec<Entry<'b>> {
    v.clear();
    // Never called (the `Vec` is empty): any entry of the new lifetime would do.
    let none = |_| Entry { prefix: 0, key: &[], key_lossy: false, multi: false, entry: &[], value: None };
    v.into_iter().map(none).collect()
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Decodes an `x-envoy-peer-metadata` value (base64 protobuf Struct): its JSON text (NAME,
/// NAMESPACE, WORKLOAD_NAME, LABELS, CLUSTER_ID, ISTIO_VERSION, ...) and its namespace.
///
/// Into this thread's scratch, the text then copied at its size: the protobuf bytes and the
/// text were a `Vec` each per header (the text's shrunk to fit after). With the entries written
/// in key order ([`pb_struct_json`]), ASCII without UTF-8 checks and the lone short string
/// value's fast path ([`pb_value_json`]), bench/misses one thread (every flow of the bench
/// carries its own value: 851 decoded on the mesh 30 MB slice): mesh 30 MB cycles~
/// 85.94 -> 85.17 M (Ir 158.66 -> 157.03 M), default 30 MB 80.34 -> 79.95 M. Then eight base64
/// characters a word, one-byte varints without a loop: 85.02 -> 84.94 M; `Copy` entries moved
/// by the sort: 84.94 -> 84.89 M.
///
/// Then the entries' scratch kept between headers (a `Vec` of 16 allocated per header) and the
/// namespace kept in the text ([`Namespace`]): two allocations and frees fewer a header,
/// bench/misses one thread cycles~ mesh 30 MB 80.48 -> 80.37 M, default 30 MB 75.75 -> 75.70 M.
pub(crate) fn decode_peer_metadata(value: &[u8]) -> Option<PeerMetadata> {
    SCRATCH.with_borrow_mut(|Scratch { pb, json, entries }| {
        pb.clear();
        json.clear();
        let mut namespace = Namespace::None;
        let mut scratch = reuse_entries(std::mem::take(entries));
        if scratch.capacity() < INSERTION_SORT_MAX {
            scratch.reserve(INSERTION_SORT_MAX);
        }
        let done = base64_decode_into(value, pb)
            .and_then(|()| pb_struct_json(pb, 0, json, Some(&mut namespace), &mut scratch));
        if scratch.capacity() <= ENTRIES_KEEP {
            *entries = reuse_entries(scratch);
        }
        let m = done.map(|()| PeerMetadata { json: Box::from(&json[..]), namespace });
        for v in [pb, json] {
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::new();
            }
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_metadata_struct_decodes_and_malformed_is_refused() {
        // A Struct as Envoy's metadata exchange writes it (nested LABELS struct included).
        let m = decode_peer_metadata(b"ChwKBE5BTUUSFBoScHJvZHVjdHBhZ2UtdjEtYWJjChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0CiEKDVdPUktMT0FEX05BTUUSEBoOcHJvZHVjdHBhZ2UtdjEKGgoKQ0xVU1RFUl9JRBIMGgpLdWJlcm5ldGVzChkKDUlTVElPX1ZFUlNJT04SCBoGMS4yMi4wCjMKBkxBQkVMUxIpKicKFAoDYXBwEg0aC3Byb2R1Y3RwYWdlCg8KB3ZlcnNpb24SBBoCdjE=").unwrap();
        assert_eq!(
            std::str::from_utf8(&m.json).unwrap(),
            r#"{"CLUSTER_ID":"Kubernetes","ISTIO_VERSION":"1.22.0","LABELS":{"app":"productpage","version":"v1"},"NAME":"productpage-v1-abc","NAMESPACE":"default","WORKLOAD_NAME":"productpage-v1"}"#
        );
        assert_eq!(m.namespace(), Some("default"));
        let v = m.value();
        assert_eq!(v["NAME"], "productpage-v1-abc");
        assert_eq!(v["NAMESPACE"], "default");
        assert_eq!(v["WORKLOAD_NAME"], "productpage-v1");
        assert_eq!(v["ISTIO_VERSION"], "1.22.0");
        assert_eq!(v["LABELS"], serde_json::json!({"app": "productpage", "version": "v1"}));
        assert_eq!(
            m.shown(),
            Some(
                ["productpage-v1-abc", "default", "productpage-v1", "Kubernetes", "1.22.0"]
                    .map(|s| Some(s.into()))
            )
        );
        // The blob in captures/http-keepalive-sidecar.pcap has a string length off by one: refused.
        assert_eq!(
            decode_peer_metadata(
                b"ChoKDkFQUF9DT05UQUlORVJTEggaBnJldmlld3MKGgoKQ0xVU1RFUl9JRBIMGgpLdWJlcm5ldGVz"
            ),
            None
        );
        assert_eq!(decode_peer_metadata(b"not base64 !"), None);
        assert_eq!(decode_peer_metadata(b"////"), None); // not a protobuf
    }

    #[test]
    fn shown_values_are_the_values_strings() {
        // What the table read before: `value()[key].as_str()` of each shown key.
        let texts = [
            r#"{"CLUSTER_ID":"Kubernetes","NAME":"a\"b\u00e9","NAMESPACE":"default"}"#,
            r#"{"ISTIO_VERSION":1.5,"LABELS":{"NAME":"inner","x":[1,{"y":null}]},"NAME":["x"],"NAMESPACE":null}"#,
            r#"{"NAME":true,"NAMESPACE":{"a":"b"},"WORKLOAD_NAME":"w\n","ZZ":"z"}"#,
            r#"{}"#,
            r#"[1]"#,
            r#" ["a","b","c","d","e"]"#,
            r#"{"NAME":"#,
        ];
        for t in texts {
            let m = PeerMetadata { json: t.as_bytes().into(), namespace: Namespace::None };
            let want = match m.value() {
                serde_json::Value::Object(o) => Some(
                    SHOWN_KEYS.map(|k| o.get(k).and_then(|v| v.as_str()).map(|s| Cow::Owned(s.to_string()))),
                ),
                _ => None,
            };
            assert_eq!(m.shown(), want, "{t}");
        }
    }

    /// The decoder [`pb_struct_json`] replaced: a `serde_json::Value`, serialized after.
    fn pb_struct_before(b: &[u8], depth: usize) -> Option<serde_json::Value> {
        if depth > MAX_PB_DEPTH {
            return None;
        }
        let mut map = serde_json::Map::new();
        for field in PbFields::new(b) {
            let (field, wt, entry, _) = field?;
            if field != 1 || wt != 2 {
                continue;
            }
            let mut key = None;
            let mut value = serde_json::Value::Null;
            for f in PbFields::new(entry) {
                let (f, wt, p, _) = f?;
                match (f, wt) {
                    (1, 2) => key = Some(String::from_utf8_lossy(p).into_owned()),
                    (2, 2) => value = pb_value_before(p, depth + 1)?,
                    _ => {}
                }
            }
            map.insert(key?, value);
        }
        Some(serde_json::Value::Object(map))
    }

    fn pb_value_before(b: &[u8], depth: usize) -> Option<serde_json::Value> {
        use serde_json::Value;
        if depth > MAX_PB_DEPTH {
            return None;
        }
        let mut v = Value::Null;
        for f in PbFields::new(b) {
            let (f, wt, p, n) = f?;
            v = match (f, wt) {
                (1, 0) => Value::Null,
                (2, 1) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(p);
                    serde_json::Number::from_f64(f64::from_le_bytes(a)).map_or(Value::Null, Value::Number)
                }
                (3, 2) => Value::String(String::from_utf8_lossy(p).into_owned()),
                (4, 0) => Value::Bool(n != 0),
                (5, 2) => pb_struct_before(p, depth + 1)?,
                (6, 2) => {
                    let mut list = Vec::new();
                    for l in PbFields::new(p) {
                        let (lf, lwt, lp, _) = l?;
                        if lf == 1 && lwt == 2 {
                            list.push(pb_value_before(lp, depth + 1)?);
                        }
                    }
                    Value::Array(list)
                }
                _ => continue,
            };
        }
        Some(v)
    }

    /// A protobuf field: key, then the payload of a LEN field.
    fn pb_len(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        let varint = |mut v: u64, out: &mut Vec<u8>| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    /// A random protobuf `Value`: every
    /// kind, several kinds in one Value, unknown fields, doubles serde_json writes in each of
    /// its forms (and NaN, which is null), odd keys (duplicates, escapes, invalid UTF-8).
    /// xorshift64: a number below `n`.
    fn next(rng: &mut u64, n: u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    }

    fn random_value(rng: &mut u64, depth: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..1 + next(rng, 2) {
            match next(rng, if depth > 3 { 5 } else { 8 }) {
                0 => v.extend_from_slice(&[0x08, 0x00]),
                1 => {
                    let f = [0.0, -0.0, 1.5, 1e21, 1e-7, 123456789.0, f64::NAN, f64::INFINITY, 0.1, -3.0];
                    v.push(0x11);
                    v.extend_from_slice(&f[next(rng, f.len() as u64) as usize].to_le_bytes());
                }
                2 | 3 => {
                    // The 130 bytes: a string with a two-byte length.
                    let s: [&[u8]; 9] = [
                        b"v1",
                        b"",
                        b"a\"b\\c",
                        b"\n\t\x01\x1f\x7f",
                        "\u{e9}t\u{e9}".as_bytes(),
                        b"\xff\xfe",
                        b"/</",
                        b"x",
                        &[b'w'; 130],
                    ];
                    pb_len(3, s[next(rng, s.len() as u64) as usize], &mut v);
                }
                4 => v.extend_from_slice(&[0x20, next(rng, 3) as u8]),
                5 => {
                    let s = random_struct(rng, depth + 1);
                    pb_len(5, &s, &mut v);
                }
                6 => {
                    let mut l = Vec::new();
                    for _ in 0..next(rng, 4) {
                        let x = random_value(rng, depth + 1);
                        pb_len(1, &x, &mut l);
                    }
                    if next(rng, 4) == 0 {
                        l.extend_from_slice(&[0x10, 0x01]); // unknown field of the list
                    }
                    pb_len(6, &l, &mut v);
                }
                _ => v.extend_from_slice(&[0x38, 0x05]), // unknown field 7
            }
        }
        v
    }

    fn random_struct(rng: &mut u64, depth: u32) -> Vec<u8> {
        let keys: [&[u8]; 9] = [
            b"NAME",
            b"NAMESPACE",
            b"LABELS",
            b"a",
            b"B",
            b"k\"q",
            b"\xc3",
            "\u{e9}".as_bytes(),
            b"ISTIO_VERSION",
        ];
        let mut s = Vec::new();
        // Now and then more entries than are sorted by insertion (`INSERTION_SORT_MAX`).
        let n = if next(rng, 16) == 0 { INSERTION_SORT_MAX as u64 + next(rng, 16) } else { next(rng, 6) };
        for _ in 0..n {
            let mut e = Vec::new();
            let k = keys[next(rng, keys.len() as u64) as usize];
            match next(rng, 12) {
                0 => {} // no key: refused
                1 => {
                    pb_len(1, b"first", &mut e);
                    pb_len(1, k, &mut e);
                }
                _ => pb_len(1, k, &mut e),
            }
            for _ in 0..next(rng, 3) {
                let v = random_value(rng, depth + 1);
                pb_len(2, &v, &mut e);
            }
            pb_len(1, &e, &mut s);
        }
        if next(rng, 5) == 0 {
            s.extend_from_slice(&[0x10, 0x01]); // unknown field of the struct
        }
        s
    }

    #[test]
    fn peer_metadata_json_is_what_serde_json_wrote_for_the_value() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let (mut decoded, mut refused) = (0, 0);
        for i in 0..20_000 {
            let mut pb = random_struct(&mut rng, 0);
            // One in four cut short or with a byte changed: malformed somewhere.
            if i % 4 == 1 && !pb.is_empty() {
                pb.truncate(rng as usize % pb.len());
            } else if i % 4 == 2 && !pb.is_empty() {
                let at = rng as usize % pb.len();
                pb[at] ^= (rng >> 32) as u8 | 1;
            }
            let before = pb_struct_before(&pb, 0);
            let mut json = Vec::new();
            let mut namespace = Namespace::None;
            let after = pb_struct_json(&pb, 0, &mut json, Some(&mut namespace), &mut Vec::new());
            match before {
                Some(v) => {
                    assert_eq!(after, Some(()), "{pb:?}");
                    assert_eq!(
                        String::from_utf8(json.clone()).unwrap(),
                        serde_json::to_string(&v).unwrap(),
                        "{pb:?}"
                    );
                    let m = PeerMetadata { json: json.into(), namespace };
                    assert_eq!(m.namespace(), v["NAMESPACE"].as_str(), "{pb:?}");
                    decoded += 1;
                }
                None => {
                    assert_eq!(after, None, "{pb:?}");
                    refused += 1;
                }
            }
        }
        // Both outcomes were exercised, many times.
        assert!(decoded > 5_000 && refused > 2_000, "{decoded} {refused}");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for c in (0..=0x7f).map(char::from).chain(['\u{e9}', '\u{2028}', '\u{fffd}']) {
            let s = format!("a{c}b{c}");
            let mut out = Vec::new();
            push_json_str(&mut out, s.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "{c:?}");
        }
    }

    #[test]
    fn entries_scratch_keeps_its_buffer_and_namespace_its_range() {
        let mut v: Vec<Entry<'static>> = Vec::with_capacity(INSERTION_SORT_MAX);
        let p = v.as_ptr() as usize;
        let pb = [0u8; 4];
        let mut w: Vec<Entry<'_>> = reuse_entries(v);
        w.push(Entry { prefix: 0, key: &pb, key_lossy: false, multi: false, entry: &pb, value: None });
        v = reuse_entries(w);
        assert_eq!((v.as_ptr() as usize, v.len(), v.capacity()), (p, 0, INSERTION_SORT_MAX));
        // Twice through the thread's scratch: the same text and namespace, kept in the text.
        for _ in 0..2 {
            let m = decode_peer_metadata(b"ChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0").unwrap();
            assert_eq!((&*m.json, m.namespace()), (&br#"{"NAMESPACE":"default"}"#[..], Some("default")));
            assert!(matches!(m.namespace, Namespace::InJson(14, 21)));
        }
    }

    #[test]
    fn peer_metadata_with_a_namespace_only() {
        let m = PeerMetadata::with_namespace("de\"v");
        assert_eq!((&*m.json, m.namespace()), (&br#"{"NAMESPACE":"de\"v"}"#[..], Some("de\"v")));
        assert_eq!(m.value(), serde_json::json!({"NAMESPACE": "de\"v"}));
        // Escaped in the text: its own copy. Plain: the range of the text between its quotes.
        assert!(matches!(m.namespace, Namespace::Own(_)));
        let m = PeerMetadata::with_namespace("default");
        assert_eq!((&*m.json, m.namespace()), (&br#"{"NAMESPACE":"default"}"#[..], Some("default")));
        assert!(matches!(m.namespace, Namespace::InJson(14, 21)));
    }

    /// The decoder [`base64_decode`] replaced (a `match` per character).
    fn base64_decode_before(text: &[u8]) -> Option<Vec<u8>> {
        let val = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                _ => return None,
            } as u32)
        };
        let t: &[u8] = text.trim_ascii();
        let t = t.strip_suffix(b"==").or_else(|| t.strip_suffix(b"=")).unwrap_or(t);
        let mut out = Vec::with_capacity(t.len() * 3 / 4);
        for chunk in t.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= val(c)? << (18 - 6 * i);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            match chunk.len() {
                4 => out.extend_from_slice(&bytes),
                3 => out.extend_from_slice(&bytes[..2]),
                2 => out.push(bytes[0]),
                _ => return None,
            }
        }
        Some(out)
    }

    #[test]
    fn base64_decodes_as_the_match_per_character_decoder_did() {
        // Every byte value at each position of strings of 1 to 9 characters, around valid text
        // of each length (padding, URL-safe characters, spaces included).
        let valid = b"Zm9v-_+/YmFy";
        for len in 0..=9 {
            for pos in 0..=len {
                for x in 0..=255u8 {
                    let mut t = valid[..len].to_vec();
                    t.insert(pos, x);
                    assert_eq!(base64_decode(&t), base64_decode_before(&t), "{t:?}");
                    t.extend_from_slice(b"=");
                    assert_eq!(base64_decode(&t), base64_decode_before(&t), "{t:?}");
                }
            }
        }
        for t in [&b""[..], b" ", b"==", b"Zg==", b"Zm8=", b"Zm9v", b" Zm9v\t", b"Zm9v===", b"TWFu"] {
            assert_eq!(base64_decode(t), base64_decode_before(t), "{t:?}");
        }
        assert_eq!(base64_decode(b"TWFuIGlz").as_deref(), Some(&b"Man is"[..]));
    }
}

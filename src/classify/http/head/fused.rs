//! One pass over a complete HTTP/1 head: the start line and every field validated exactly as
//! httparse does with our lenient settings (`parse_head`), each name classed through the
//! thread's [`NameCache`] (marks, secret, `--summary-only`, framing fields), and the JSON text
//! of [`Headers`] written as the bytes go by.
//!
//! Why we parse ourselves: httparse then storing the fields took ~5.7 k instructions per head
//! on the mesh benchmark (23 k heads per 100 MB: httparse ~1.7 k, a pass over the fields for
//! their classes, a builder pass with a JSON scan per value, a pass for the framing fields).
//!
//! Declines (`None`, the caller then takes the httparse path) whenever a head is anything but
//! plain: a byte httparse rejects or treats specially (obs-fold, whitespace before the first
//! name or a colon, obs-text in a reason or target, a lone CR), more than [`MAX_HEADERS`]
//! fields, bytes after the blank line. So the output never depends on which path ran; the
//! property test below holds the two to that on real heads and their mutations.

use super::super::headers::{with_name_cache, NameCache, NameClass};
use super::super::MAX_HEADERS;
use super::Known;
use crate::sanitize::redact::{placeholder_bytes, MAX_PLACEHOLDER};
use crate::sanitize::{Headers, AFTER_VALUE, FIRST_NAME, NAME_VALUE, NEXT_NAME};
use std::cell::RefCell;

/// A head parsed by [`parse`].
pub(in crate::classify::http) struct FusedHead<'a> {
    /// Request: method, target; None for a response.
    pub(super) request: Option<(&'a [u8], &'a [u8])>,
    pub(super) status: u16,
    pub(super) reason: &'a [u8],
    /// Minor version of `HTTP/1.x`.
    pub(super) version: u8,
    pub(super) known: Known<'a>,
    /// The fields as stored (when asked for).
    pub(super) headers: Option<Headers>,
}

/// How to store the fields: [`super::HttpSession`]'s `store` rules.
#[derive(Clone, Copy)]
pub(super) struct StoreRules {
    /// Redact credential headers.
    pub(super) hide: bool,
    /// `--summary-only`: keep only the fields the summary reads.
    pub(super) lean: bool,
}

/// Buffers reused from head to head on a thread: the text is copied out whole at the end (one
/// allocation of the exact size, no zeroing, no capacity check per piece).
struct Scratch {
    text: Vec<u8>,
    ends: [u32; 2 * MAX_HEADERS],
    dirty: [u32; MAX_HEADERS],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { text: Vec::new(), ends: [0; 2 * MAX_HEADERS], dirty: [0; MAX_HEADERS] })
    };
}

/// Room kept past a field's name and value in the scratch text: punctuation and the longest
/// redaction placeholder.
const FIELD_SLACK: usize = 64;
const _: () = assert!(MAX_PLACEHOLDER + 8 <= FIELD_SLACK);

/// Parses `block` (a complete head, ending with its blank line) as a request or a response;
/// with `store`, also writes its fields as [`Headers`]. None: not a plain head (see the module
/// doc), the caller parses it the other way.
pub(in crate::classify::http) fn parse(
    block: &[u8],
    response: bool,
    store: Option<StoreRules>,
) -> Option<FusedHead<'_>> {
    // Offsets are kept as u32 (heads are at most `max_header_bytes`, far below).
    if block.len() >= u32::MAX as usize / 2 {
        return None;
    }
    let (request, status, reason, version, at) =
        if response { status_line(block)? } else { request_line(block)? };
    let (known, headers) = SCRATCH.with_borrow_mut(|s| fields(block, at, store, s))?;
    Some(FusedHead { request, status, reason, version, known, headers })
}

type StartLine<'a> = (Option<(&'a [u8], &'a [u8])>, u16, &'a [u8], u8, usize);

/// `HTTP/1.0` or `HTTP/1.1` at `b[at..]`: the minor version.
#[inline(always)]
fn version(b: &[u8], at: usize) -> Option<u8> {
    match b.get(at..at + 8)? {
        b"HTTP/1.1" => Some(1),
        b"HTTP/1.0" => Some(0),
        _ => None,
    }
}

/// After the line end at `b[at..]` (CRLF or LF).
#[inline(always)]
fn newline(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'\n' => Some(at + 1),
        b'\r' if b.get(at + 1) == Some(&b'\n') => Some(at + 2),
        _ => None,
    }
}

/// After the spaces (not tabs) at `b[at..]`.
#[inline(always)]
fn spaces(b: &[u8], mut at: usize) -> usize {
    while b.get(at) == Some(&b' ') {
        at += 1;
    }
    at
}

/// `method SP+ target SP+ HTTP/1.x CRLF`, as httparse reads it (a target of visible ASCII:
/// obs-text is declined).
fn request_line(b: &[u8]) -> Option<StartLine<'_>> {
    let mut i = 0;
    while i < b.len() && super::is_tchar(b[i]) {
        i += 1;
    }
    if i == 0 || b.get(i) != Some(&b' ') {
        return None;
    }
    let method = &b[..i];
    let start = spaces(b, i + 1);
    let end = visible_end(b, start);
    if end == start || b.get(end) != Some(&b' ') {
        return None;
    }
    let at = spaces(b, end + 1);
    let v = version(b, at)?;
    let at = newline(b, at + 8)?;
    Some((Some((method, &b[start..end])), 0, &[], v, at))
}

/// `HTTP/1.x SP+ DDD [SP+ reason] CRLF`, as httparse reads it (a reason with obs-text, which
/// httparse turns into an empty one, is declined).
fn status_line(b: &[u8]) -> Option<StartLine<'_>> {
    let v = version(b, 0)?;
    if b.get(8) != Some(&b' ') {
        return None;
    }
    let i = spaces(b, 9);
    let d = b.get(i..i + 3)?;
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'));
    let i = i + 3;
    match b.get(i)? {
        b' ' => {
            let start = spaces(b, i + 1);
            let mut end = start;
            while let Some(&c) = b.get(end) {
                match c {
                    b'\t' | b' '..=b'~' => end += 1,
                    _ => break,
                }
            }
            let at = newline(b, end)?;
            Some((None, status, &b[start..end], v, at))
        }
        _ => Some((None, status, &[], v, newline(b, i)?)),
    }
}

/// End of the run of bytes `0x21..=0x7e` at `b[at..]`.
#[inline(always)]
fn visible_end(b: &[u8], mut at: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while at + 16 <= b.len() {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the load reads b[at..at + 16], inside `b`.
        let stop = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(at).cast());
            // Signed: bytes >= 0x80 are below 0x21 too.
            let low = _mm_cmpgt_epi8(_mm_set1_epi8(0x21), v);
            let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            _mm_movemask_epi8(_mm_or_si128(low, del)) as u32
        };
        if stop != 0 {
            return at + stop.trailing_zeros() as usize;
        }
        at += 16;
    }
    while at < b.len() && (0x21..=0x7e).contains(&b[at]) {
        at += 1;
    }
    at
}

/// Position of the first `:` at or after `at`.
#[inline(always)]
fn colon(b: &[u8], mut at: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    while at + 16 <= b.len() {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the load reads b[at..at + 16], inside `b`.
        let hits = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(at).cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u32
        };
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize);
        }
        at += 16;
    }
    b.get(at..)?.iter().position(|&c| c == b':').map(|p| at + p)
}

/// The colon ending the name that starts at `b[at..]`, and the name's class.
#[inline(always)]
fn name_class(b: &[u8], at: usize, names: &mut NameCache) -> Option<(usize, NameClass)> {
    let mut from = at;
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = b.get(at..at + 16) {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the load reads `w`, 16 bytes of `b`.
        let hits = unsafe {
            let v = _mm_loadu_si128(w.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u32
        };
        if hits != 0 {
            // Most names: shorter than 16 bytes, looked up by the word already loaded.
            let c = at + hits.trailing_zeros() as usize;
            let word = u128::from_le_bytes(w.try_into().unwrap_or_default());
            return Some((c, names.class_short(word, &b[at..c])));
        }
        from = at + 16;
    }
    let c = colon(b, from)?;
    Some((c, names.class(&b[at..c])))
}

/// What a byte means inside a field value (httparse: `\t`, `0x20..=0x7e` and obs-text are
/// value bytes; a line ends with CRLF or LF; anything else is an error).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueByte {
    /// Plain: nothing to escape in JSON.
    Plain,
    /// A value byte the JSON text must escape (`"`, `\`) or that may be invalid UTF-8.
    Care,
    /// A tab: needs escaping, unless it is trailing white space trimmed off.
    Tab,
    /// CR or LF.
    End,
    /// Not in a value.
    Bad,
}

static VALUE_BYTE: [ValueByte; 256] = {
    let mut t = [ValueByte::Bad; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'\t' => ValueByte::Tab,
            b'\r' | b'\n' => ValueByte::End,
            b'"' | b'\\' | 0x80..=0xff => ValueByte::Care,
            b' '..=b'~' => ValueByte::Plain,
            _ => ValueByte::Bad,
        };
        i += 1;
    }
    t
};

/// The end of the value starting at `b[at..]` (its line end), and whether a byte in it needs
/// care in JSON and whether it has a tab.
#[inline(always)]
fn value_end(b: &[u8], mut at: usize) -> Option<(usize, bool, bool)> {
    let (mut care, mut tab) = (false, false);
    let mut look = |c: u8| match VALUE_BYTE[usize::from(c)] {
        ValueByte::Plain => Some(false),
        ValueByte::Care => {
            care = true;
            Some(false)
        }
        ValueByte::Tab => {
            tab = true;
            Some(false)
        }
        ValueByte::End => Some(true),
        ValueByte::Bad => None,
    };
    #[cfg(target_arch = "x86_64")]
    while at + 16 <= b.len() {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the load reads b[at..at + 16], inside `b`.
        let mut special = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(at).cast());
            // Signed: bytes >= 0x80 are below 0x20 too; so are the controls.
            let low = _mm_cmpgt_epi8(_mm_set1_epi8(0x20), v);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(low, del), _mm_or_si128(quote, backslash))) as u32
        };
        while special != 0 {
            let k = at + special.trailing_zeros() as usize;
            if look(b[k])? {
                return Some((k, care, tab));
            }
            special &= special - 1;
        }
        at += 16;
    }
    while at < b.len() {
        if look(b[at])? {
            return Some((at, care, tab));
        }
        at += 1;
    }
    None
}

/// Writes `s` at `dst + at`, without a bounds check per piece (they were ~60 instructions per
/// stored field: `bench/instructions`, mesh).
///
/// # Safety
/// `dst + at .. dst + at + s.len()` is inside one writable buffer that `s` does not overlap.
#[inline(always)]
unsafe fn put_raw(dst: *mut u8, at: usize, s: &[u8]) -> usize {
    let (n, src) = (s.len(), s.as_ptr());
    // SAFETY: the caller's; every read is inside `s`, every write inside `dst[at..at + n]`.
    unsafe {
        let d = dst.add(at);
        // Two overlapping word copies cover 8 to 16 bytes, two half-words 4 to 8.
        if (8..=16).contains(&n) {
            d.cast::<u64>().write_unaligned(src.cast::<u64>().read_unaligned());
            d.add(n - 8).cast::<u64>().write_unaligned(src.add(n - 8).cast::<u64>().read_unaligned());
        } else if (4..8).contains(&n) {
            d.cast::<u32>().write_unaligned(src.cast::<u32>().read_unaligned());
            d.add(n - 4).cast::<u32>().write_unaligned(src.add(n - 4).cast::<u32>().read_unaligned());
        } else {
            std::ptr::copy_nonoverlapping(src, d, n);
        }
    }
    at + n
}

/// The header fields from `b[at..]` to the blank line that must end `b`: the framing fields
/// and, with `store`, the stored [`Headers`].
fn fields<'a>(
    b: &'a [u8],
    at: usize,
    store: Option<StoreRules>,
    s: &mut Scratch,
) -> Option<(Known<'a>, Option<Headers>)> {
    let mut known = Known::NONE;
    let t = with_name_cache(|names| match store {
        None => field_loop::<false, false>(b, at, false, names, &mut known, s),
        Some(StoreRules { hide, lean: true }) => field_loop::<true, true>(b, at, hide, names, &mut known, s),
        Some(StoreRules { hide, lean: false }) => {
            field_loop::<true, false>(b, at, hide, names, &mut known, s)
        }
    })?;
    let headers = store
        .map(|_| Headers::from_parts(&s.text[..t.w], &s.ends[..2 * t.kept], &s.dirty[..t.dirty], t.marks));
    Some((known.finish(), headers))
}

/// What [`field_loop`] wrote into the [`Scratch`]: text bytes, fields kept, dirty fields, and
/// the fields' marks.
struct Written {
    w: usize,
    kept: usize,
    dirty: usize,
    marks: u8,
}

/// The loop of [`fields`], in a function of its own with few live values: inlined into
/// `message` it kept ~15 values across each field and spilled them (~368 instructions a field
/// on the :443 slice). Storing or not and `--summary-only` are constants (three copies; when
/// every field is kept, the count of fields kept is the count of fields), and the text buffer
/// is sized once for the whole head, not checked per field.
#[inline(never)]
fn field_loop<'a, const STORE: bool, const LEAN: bool>(
    b: &'a [u8],
    mut at: usize,
    hide: bool,
    names: &mut NameCache,
    known: &mut Known<'a>,
    s: &mut Scratch,
) -> Option<Written> {
    let (mut count, mut kept, mut dirty, mut marks, mut w) = (0, 0, 0, 0u8, 0);
    if STORE {
        // Each field's text is at most its line (name, colon, value) plus punctuation and a
        // placeholder (FIELD_SLACK), and a head has at most MAX_HEADERS fields.
        let need = b.len() + MAX_HEADERS * FIELD_SLACK;
        if s.text.len() < need {
            s.text.resize(need, 0);
        }
    }
    let Scratch { text, ends, dirty: dirty_fields } = s;
    let dst = text.as_mut_ptr();
    loop {
        match *b.get(at)? {
            b'\n' => {
                at += 1;
                break;
            }
            b'\r' => {
                at = newline(b, at)?;
                break;
            }
            _ => {}
        }
        if STORE && !LEAN {
            if kept == MAX_HEADERS {
                return None;
            }
        } else {
            if count == MAX_HEADERS {
                return None;
            }
            count += 1;
        }
        let (c, class) = name_class(b, at, names)?;
        let name = &b[at..c];
        // A name that is not a token (white space before the colon, a line without one,
        // a folded line) is declined here.
        if !class.token {
            return None;
        }
        let mut v = c + 1;
        while matches!(b.get(v), Some(b' ' | b'\t')) {
            v += 1;
        }
        let (end, mut care, tab) = value_end(b, v)?;
        at = newline(b, end)?;
        let mut e = end;
        while e > v && matches!(b[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        let value = &b[v..e];
        if tab && !care {
            care = value.contains(&b'\t');
        }
        known.add(class.known, value);
        marks |= class.marks;
        if !STORE || (LEAN && !class.lean) {
            continue;
        }
        debug_assert!(w + name.len() + value.len() + FIELD_SLACK <= text.len());
        // SAFETY (every `put_raw` below): each field, this one included, takes at most the
        // bytes of its line plus FIELD_SLACK, at most MAX_HEADERS fields are written, and
        // `text` has `b.len() + MAX_HEADERS * FIELD_SLACK` bytes (sized above).
        unsafe {
            w = if kept == 0 { put_raw(dst, w, FIRST_NAME) } else { put_raw(dst, w, NEXT_NAME) };
            w = put_raw(dst, w, name);
            ends[2 * kept] = w as u32;
            w = put_raw(dst, w, NAME_VALUE);
            if class.secret && hide {
                let mut hidden = [0; MAX_PLACEHOLDER];
                w = put_raw(dst, w, placeholder_bytes(value.len(), &mut hidden));
            } else {
                w = put_raw(dst, w, value);
                if care {
                    dirty_fields[dirty] = kept as u32;
                    dirty += 1;
                }
            }
            ends[2 * kept + 1] = w as u32;
            w = put_raw(dst, w, AFTER_VALUE);
        }
        kept += 1;
    }
    // Bytes after the blank line: not a head this parser is sure of.
    if at != b.len() {
        return None;
    }
    Some(Written { w, kept, dirty, marks })
}

#[cfg(test)]
mod tests;

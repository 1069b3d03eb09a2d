//! How a decoded header block is stored: copied as the decoder wrote its JSON text, with
//! secret values (credential headers, fields sent never indexed) replaced by their
//! placeholders, or under `--summary-only` only the fields the summary reads.

use super::{Conn, HeaderList, Pseudo};
use crate::classify::http::h2::hpack::Field;
use crate::sanitize::redact::{placeholder_bytes, placeholder_len, MAX_PLACEHOLDER};
use crate::sanitize::Headers;

impl Conn {
    /// Reads the pseudo-headers and gRPC fields of a block and stores its fields (redacted).
    pub(super) fn store<'a>(&self, list: &'a HeaderList) -> (Headers, Pseudo<'a>) {
        let mut p = Pseudo::default();
        let show = self.cfg.show_secrets;
        if !self.cfg.lean_headers {
            // The block's text as decoded (fields to escape kept raw, as `Headers` keeps them),
            // copied at once, when nothing in it is to redact; else copied with placeholders.
            // Secrets, marks and the fields `Pseudo` reads were noted while decoding (a loop
            // over the fields here: ~2.6M instructions on the 100 MB mesh bench file).
            if show || !list.has_secret() {
                list.each_with_role(|f| p.read(&f));
                let text = list.json_text();
                p.text = Some(text);
                return (
                    Headers::from_json_text(text, list.json_ends(), list.dirty_fields(), list.marks()),
                    p,
                );
            }
            return (redacted(list, &mut p), p);
        }
        // --summary-only: only the fields the summary reads are stored. The lean decoder
        // (`H2Limits::lean`) listed only those and the fields `Pseudo` reads; the marks of the
        // others are in the list's.
        (Scratch::with(|s| lean_into(list, &mut p, show, s)), p)
    }
}

/// The fields of a lean decoder's list that `--summary-only` stores ([`FieldClass::lean`]),
/// secrets replaced by their placeholders, copied out of the list's JSON text (whose escaping
/// needs were noted while decoding) into `s`, then stored with one more copy; `p` reads the
/// others. Through `ExactHeadersBuilder`, which allocates three buffers and scans every field
/// for escapes again, this cost ~24M instructions on the 100 MB mesh bench file.
///
/// [`FieldClass::lean`]: crate::classify::http::h2::FieldClass
fn lean_into<'a>(list: &'a HeaderList, p: &mut Pseudo<'a>, show: bool, s: &mut Scratch) -> Headers {
    use crate::sanitize::{AFTER_VALUE, FIRST_NAME, NAME_VALUE, NEXT_NAME};
    let text = list.json_text();
    for (f, [mid, end]) in list.iter().zip(list.json_ends()) {
        let secret = !show && (f.never_indexed || f.class.secret);
        if !f.class.lean {
            // Not stored, but its role is read as usual.
            if !secret {
                p.read(&f);
            }
            continue;
        }
        let i = s.ends.len() as u32;
        s.text.extend_from_slice(if i == 0 { FIRST_NAME } else { NEXT_NAME });
        let name_start = mid as usize - f.name.len();
        if secret {
            s.text.extend_from_slice(&text[name_start..mid as usize + NAME_VALUE.len()]);
            s.put_placeholder(i, &f);
        } else {
            s.text.extend_from_slice(&text[name_start..end as usize]);
            let name_end = s.text.len() - f.value.len() - NAME_VALUE.len();
            s.ends.push([name_end as u32, s.text.len() as u32]);
            if f.dirty {
                s.dirty.push(i);
            }
            p.read(&f);
        }
        s.text.extend_from_slice(AFTER_VALUE);
    }
    s.headers(list.marks())
}

/// Buffers a block is written into before it is stored ([`redacted`], [`lean_into`]), reused
/// from block to block: fresh ones each time were fresh lines of the allocator's page each
/// time (one L2 write miss per line written, before the stored copy's own). `bench/misses`
/// cycles~ 30 MB slices: default 74.75 -> 74.69 M (L2 misses -1.7 k), mesh 79.09 -> 78.92 M
/// (L2 -3.4 k).
#[derive(Default)]
struct Scratch {
    text: Vec<u8>,
    ends: Vec<[u32; 2]>,
    dirty: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Scratch {
    /// Runs `f` on this thread's scratch, emptied.
    fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => {
                s.text.clear();
                s.ends.clear();
                s.dirty.clear();
                f(&mut s)
            }
            // Not reentrant; were it ever, fresh buffers.
            Err(_) => f(&mut Scratch::default()),
        })
    }

    /// Ends field `i`, whose name and [`NAME_VALUE`] were just written, with the placeholder
    /// of `f`'s value (a secret).
    ///
    /// [`NAME_VALUE`]: crate::sanitize::NAME_VALUE
    #[inline]
    fn put_placeholder(&mut self, i: u32, f: &Field<'_>) {
        use crate::sanitize::{json_scan, NAME_VALUE};
        let name_end = self.text.len() - NAME_VALUE.len();
        self.text.extend_from_slice(placeholder_bytes(f.value.len(), &mut [0; MAX_PLACEHOLDER]));
        self.ends.push([name_end as u32, self.text.len() as u32]);
        if json_scan::needs_care(f.name) {
            self.dirty.push(i);
        }
    }

    /// The fields written, stored.
    fn headers(&self, marks: u8) -> Headers {
        let dirty = (self.dirty.iter().copied(), self.dirty.len());
        Headers::from_json_text(&self.text, self.ends.iter().copied(), dirty, marks)
    }
}

/// The block's text as decoded with every secret value (credential header or never-indexed
/// field) replaced by its placeholder, the text between secrets copied at once; `p` reads the
/// other fields. Field by field through `ExactHeadersBuilder`, which scans each field for
/// escapes again, a field cost ~245 instructions (9M on the 100 MB mesh bench file, where
/// one block in ten has an `authorization`).
pub(super) fn redacted<'a>(list: &'a HeaderList, p: &mut Pseudo<'a>) -> Headers {
    Scratch::with(|s| redacted_into(list, p, s))
}

fn redacted_into<'a>(list: &'a HeaderList, p: &mut Pseudo<'a>, s: &mut Scratch) -> Headers {
    use crate::sanitize::NAME_VALUE;
    let text = list.json_text();
    let secret = |f: &Field<'_>| f.never_indexed || f.class.secret;
    let len = list
        .iter()
        .filter(secret)
        .fold(text.len(), |n, f| n - f.value.len() + placeholder_len(f.value.len()));
    s.text.reserve(len);
    s.ends.reserve(list.len());
    let mut marks = 0;
    // `text[..copied]` is in `s.text`; the text after it moves by `s.text.len() - copied`.
    let mut copied = 0usize;
    for (i, (f, [mid, end])) in list.iter().zip(list.json_ends()).enumerate() {
        marks |= f.class.marks;
        if secret(&f) {
            s.text.extend_from_slice(&text[copied..mid as usize + NAME_VALUE.len()]);
            s.put_placeholder(i as u32, &f);
            copied = end as usize;
            continue;
        }
        let moved = |at: u32| (at as usize + s.text.len() - copied) as u32;
        s.ends.push([moved(mid), moved(end)]);
        if f.dirty {
            s.dirty.push(i as u32);
        }
        p.read(&f);
    }
    s.text.extend_from_slice(&text[copied..]);
    s.headers(marks)
}

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
        (
            SCRATCH.with(|s| match s.try_borrow_mut() {
                Ok(mut s) => lean_into(list, &mut p, show, &mut s),
                Err(_) => lean_into(list, &mut p, show, &mut Scratch::default()),
            }),
            p,
        )
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
    use crate::sanitize::{json_scan, AFTER_VALUE, FIRST_NAME, NAME_VALUE, NEXT_NAME};
    let text = list.json_text();
    let Scratch { text: out, ends, dirty } = s;
    out.clear();
    ends.clear();
    dirty.clear();
    for (f, [mid, end]) in list.iter().zip(list.json_ends()) {
        let secret = !show && (f.never_indexed || f.class.secret);
        if !f.class.lean {
            // Not stored, but its role is read as usual.
            if !secret {
                p.read(&f);
            }
            continue;
        }
        let i = ends.len() as u32;
        out.extend_from_slice(if i == 0 { FIRST_NAME } else { NEXT_NAME });
        let name_start = mid as usize - f.name.len();
        if secret {
            out.extend_from_slice(&text[name_start..mid as usize + NAME_VALUE.len()]);
            let name_end = out.len() - NAME_VALUE.len();
            out.extend_from_slice(placeholder_bytes(f.value.len(), &mut [0; MAX_PLACEHOLDER]));
            ends.push([name_end as u32, out.len() as u32]);
            if json_scan::needs_care(f.name) {
                dirty.push(i);
            }
        } else {
            out.extend_from_slice(&text[name_start..end as usize]);
            let name_end = out.len() - f.value.len() - NAME_VALUE.len();
            ends.push([name_end as u32, out.len() as u32]);
            if f.dirty {
                dirty.push(i);
            }
            p.read(&f);
        }
        out.extend_from_slice(AFTER_VALUE);
    }
    let n_dirty = dirty.len();
    Headers::from_json_text(out, ends.iter().copied(), (dirty.iter().copied(), n_dirty), list.marks())
}

/// Buffers [`redacted`] writes a block into before it is stored, reused from block to block:
/// fresh ones each time were fresh lines of the allocator's page each time (one L2 write miss
/// per line written, before the stored copy's own). `bench/misses` cycles~ 30 MB slices:
/// default 74.75 -> 74.69 M (L2 misses -1.7 k), mesh 79.09 -> 78.92 M (L2 -3.4 k).
#[derive(Default)]
struct Scratch {
    text: Vec<u8>,
    ends: Vec<[u32; 2]>,
    dirty: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// The block's text as decoded with every secret value (credential header or never-indexed
/// field) replaced by its placeholder, the text between secrets copied at once; `p` reads the
/// other fields. Field by field through `ExactHeadersBuilder`, which scans each field for
/// escapes again, a field cost ~245 instructions (9M on the 100 MB mesh bench file, where
/// one block in ten has an `authorization`).
pub(super) fn redacted<'a>(list: &'a HeaderList, p: &mut Pseudo<'a>) -> Headers {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => redacted_into(list, p, &mut s),
        // Not reentrant; were it ever, fresh buffers.
        Err(_) => redacted_into(list, p, &mut Scratch::default()),
    })
}

fn redacted_into<'a>(list: &'a HeaderList, p: &mut Pseudo<'a>, s: &mut Scratch) -> Headers {
    use crate::sanitize::{json_scan, NAME_VALUE};
    let text = list.json_text();
    let secret = |f: &Field<'_>| f.never_indexed || f.class.secret;
    let len = list
        .iter()
        .filter(secret)
        .fold(text.len(), |n, f| n - f.value.len() + placeholder_len(f.value.len()));
    let Scratch { text: out, ends, dirty } = s;
    out.clear();
    ends.clear();
    dirty.clear();
    out.reserve(len);
    ends.reserve(list.len());
    let mut marks = 0;
    // `text[..copied]` is in `out`; the text after it moves by `out.len() - copied`.
    let mut copied = 0usize;
    for (i, (f, [mid, end])) in list.iter().zip(list.json_ends()).enumerate() {
        marks |= f.class.marks;
        if secret(&f) {
            out.extend_from_slice(&text[copied..mid as usize + NAME_VALUE.len()]);
            let name_end = out.len() - NAME_VALUE.len();
            out.extend_from_slice(placeholder_bytes(f.value.len(), &mut [0; MAX_PLACEHOLDER]));
            copied = end as usize;
            ends.push([name_end as u32, out.len() as u32]);
            if json_scan::needs_care(f.name) {
                dirty.push(i as u32);
            }
            continue;
        }
        let moved = |at: u32| (at as usize + out.len() - copied) as u32;
        ends.push([moved(mid), moved(end)]);
        if f.dirty {
            dirty.push(i as u32);
        }
        p.read(&f);
    }
    out.extend_from_slice(&text[copied..]);
    let n_dirty = dirty.len();
    Headers::from_json_text(out, ends.iter().copied(), (dirty.iter().copied(), n_dirty), marks)
}

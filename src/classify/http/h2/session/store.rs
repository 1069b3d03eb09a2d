//! How a decoded header block is stored: copied as the decoder wrote its JSON text, with
//! secret values (credential headers, fields sent never indexed) replaced by their
//! placeholders, or under `--summary-only` only the fields the summary reads.

use super::{Conn, HeaderList, Pseudo};
use crate::classify::http::h2::hpack::Field;
use crate::sanitize::redact::{placeholder_bytes, placeholder_len, MAX_PLACEHOLDER};
use crate::sanitize::{ExactHeadersBuilder, Headers};

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
        // The exact size of the JSON text, written in place (through `HeadersBuilder` a field
        // cost ~250 instructions, most of it capacity bookkeeping: bench/RESULTS.md).
        // `ExactHeadersBuilder::new` adds the punctuation and commas.
        let kept = |f: &Field<'_>| f.class.lean;
        let (fields, mut bytes) =
            list.iter().filter(kept).fold((0, 0), |(n, b), f| (n + 1, b + f.name.len() + f.value.len()));
        if !show {
            for f in list.iter().filter(kept).filter(|f| f.never_indexed || f.class.secret) {
                bytes = bytes - f.value.len() + placeholder_len(f.value.len());
            }
        }
        let mut b = ExactHeadersBuilder::new(fields, bytes);
        b.mark(list.marks());
        for f in list.iter() {
            if !kept(&f) {
                // Not stored (--summary-only), but its role is read as usual.
                if show || !(f.never_indexed || f.class.secret) {
                    p.read(&f);
                }
                continue;
            }
            let secret = !show && (f.never_indexed || f.class.secret);
            let mut hidden = [0; MAX_PLACEHOLDER];
            let value = if secret { placeholder_bytes(f.value.len(), &mut hidden) } else { f.value };
            b.push(f.name, value);
            if secret {
                continue;
            }
            p.read(&f);
        }
        (b.finish(), p)
    }
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

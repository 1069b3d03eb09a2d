//! The human table: one row per flow in order of first packet, indented detail lines under it
//! (alerts, certificates, HTTP requests, warnings; with `-v` every HTTP message with its headers,
//! with `-vv` the certificate chains), then the summary. Every wire-derived string is escaped by
//! [`crate::sanitize`] before it is printed.
//!
//! Width: without a limit (output not a terminal, no `COLUMNS`) long cells are cut at
//! [`MAX_WIDTH`] and lines are as long as they need. With a limit ([`TableOptions::width`]) the
//! SNI/HOST, ALPN, CERT and FLAGS columns shrink (cut with `…`) so rows fit, a row still too long
//! is cut at the limit, and detail lines wrap (continuations indented two more columns), so that
//! `-v` keeps every value whole. Widths are display columns (`unicode-width`).
//!
//! Table-only wording: the MTLS cell reads `refused` for a handshake the server refused before
//! its ServerHello and `failed` for one that ended in another fatal alert (the JSON verdict is
//! unchanged; the flags `handshake_refused` and `handshake_failed` are not repeated in FLAGS,
//! which starts with the alert instead: `alert:certificate_expired`).
//!
//! This file holds the rows, their cells and the layout; the detail lines under a row are built
//! in [`details`], HTTP's in [`http`]. What follows the rows (totals, per-server and per-service
//! readings, expectations) is written by [`summary`].

use super::Summary;
use crate::classify::cert::CertInfo;
use crate::classify::chain::ChainCheck;
use crate::classify::istio::Leg;
use crate::classify::tls::decrypt::DecryptStatus;
use crate::classify::tls::MtlsVerdict;
use crate::classify::Protocol;
use crate::record::{Flag, FlowReport};
use crate::sanitize::{escape_bytes, escape_bytes_into, escape_str, escape_str_into};
use http::{grpc_summary, http2_lines, http_verbose, or_unknown, push_status, status_text};
use std::io::{self, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

mod details;
mod http;
mod summary;
use details::*;
pub(crate) use summary::{write_expectations, write_summary};

const COLUMNS: [&str; 10] =
    ["ID", "CLIENT", "SERVER", "PROTO", "VERSION", "SNI/HOST", "ALPN", "CERT", "MTLS", "FLAGS"];
/// Widest a cell may be, per column (0 = unlimited).
const MAX_WIDTH: [usize; 10] = [0, 0, 0, 0, 0, 64, 40, 56, 0, 0];
/// Columns that shrink to fit a width limit: SNI/HOST, ALPN, CERT (cut in its middle), FLAGS.
const SHRINKABLE: [usize; 4] = [5, 6, 7, 9];
/// Spaces between two columns.
const GAP: usize = 2;
/// HTTP requests listed under a flow row (without `-v`).
const MAX_DETAIL_REQUESTS: usize = 5;
/// Warnings listed under a flow row (without `-v`).
const MAX_DETAIL_WARNINGS: usize = 3;
/// Narrowest width limit honoured (a smaller `COLUMNS` is raised to it).
pub(crate) const MIN_WIDTH: usize = 20;

/// How the table is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-v`: every HTTP message with its headers, the TLS parameters and full values; `-vv`:
    /// also the certificate chains.
    pub(crate) verbose: u8,
    /// Display columns to fit rows in (the terminal's, or `COLUMNS`); `None`: no limit.
    pub width: Option<usize>,
}

/// The width to fit the table in: `COLUMNS` when set to a number, else the width of standard
/// output when it is a terminal, else `None` (a pipe or file: no limit, as before).
pub fn output_width() -> Option<usize> {
    let env = std::env::var("COLUMNS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    env.or_else(|| {
        // SAFETY: TIOCGWINSZ fills the winsize it is given; fd 1 is only queried.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
        (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
    })
    .map(|w| w.max(MIN_WIDTH))
}

/// Display columns of `s` (most cells are ASCII: one column per byte).
fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        UnicodeWidthStr::width(s)
    }
}

/// `s` cut to at most `max` display columns, ending with `…` when cut (0 = no limit).
fn cut(s: String, max: usize) -> String {
    if max == 0 || width(&s) <= max {
        return s;
    }
    let mut t = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        t.push(c);
        w += cw;
    }
    t.push('…');
    t
}

/// The first line of `text` of at most `max` display columns, and the rest: broken at the last
/// space when it is in the second half of the line, else anywhere (at least one character).
fn split_line(text: &str, max: usize) -> (&str, &str) {
    if width(text) <= max {
        return (text, "");
    }
    let (mut w, mut end) = (0, 0);
    for (i, c) in text.char_indices() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max {
            break;
        }
        w += cw;
        end = i + c.len_utf8();
    }
    if end == 0 {
        end = text.chars().next().map_or(text.len(), char::len_utf8);
    }
    // A word that ends at the limit stays whole on this line.
    let brk = if text[end..].starts_with(' ') {
        end
    } else {
        text[..end].rfind(' ').filter(|&s| s > end / 2).map_or(end, |s| s + 1)
    };
    (text[..brk].trim_end(), text[brk..].trim_start())
}

/// Short name of a certificate: its first URI SAN (SPIFFE identity), else its subject.
fn cert_cell(f: &FlowReport, s: &mut String) {
    let Some(t) = &f.tls else { return };
    let Some(c) = t.server_certs.first() else { return };
    match (c.san_uris.first(), c.subject.as_deref()) {
        (Some(u), _) => escape_str_into(u, s),
        (None, Some(subj)) => escape_str_into(subj, s),
        (None, None) => s.push_str("(unparsed)"),
    }
    if c.expired {
        s.push_str(" EXPIRED");
    } else if c.not_yet_valid {
        s.push_str(" NOT-YET-VALID");
    }
}

/// The FLAGS cell: the first fatal alert (`alert:unknown_ca`), then the JSON flags but
/// `handshake_failed` and `handshake_refused` (the MTLS cell says them).
fn flags_cell(f: &FlowReport, out: &mut String) {
    let start = out.len();
    if let Some(a) = f.tls.as_ref().and_then(|t| t.fatal_alert()) {
        out.push_str("alert:");
        escape_str_into(&a.description, out);
    }
    for fl in f.flags.iter() {
        if matches!(fl, Flag::HandshakeFailed | Flag::HandshakeRefused) {
            continue;
        }
        if out.len() > start {
            out.push(',');
        }
        out.push_str(fl.as_str());
    }
}

/// The ten cells of a flow's row as [`row`] writes them, in one string (`ends`: where each
/// ends) with their display widths; [`render`] appends the detail lines to make the [`Row`]:
/// ten allocations fewer per row, and the printing thread reads one cold block per row instead
/// of ten, and measures no cell again (issue 22: the table on the mesh 30 MB slice).
struct Cells {
    text: String,
    ends: [u32; 10],
    widths: [u32; 10],
}

/// Writes a row's cells one after another into its [`Cells`].
struct RowWriter {
    cells: Cells,
    /// The next cell's index.
    next: usize,
}

impl RowWriter {
    /// Writes the next cell with `write`, then ends it: measured once, cut only when too wide
    /// (then measured again; a cut cell is never empty), an empty cell reads `-`.
    fn cell(&mut self, write: impl FnOnce(&mut String)) {
        let (text, i) = (&mut self.cells.text, self.next);
        let start = text.len();
        write(text);
        let mut w = width(&text[start..]);
        if MAX_WIDTH[i] > 0 && w > MAX_WIDTH[i] {
            let c = cut(text[start..].to_string(), MAX_WIDTH[i]);
            text.truncate(start);
            text.push_str(&c);
            w = width(&c);
        } else if text.len() == start {
            w = 1;
            text.push('-');
        }
        // Cells are cut at MAX_WIDTH or are short (addresses, flag names): u32 is ample, and
        // saturating keeps a wrong width, never a panic.
        self.cells.ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.cells.widths[i] = u32::try_from(w).unwrap_or(u32::MAX);
        self.next += 1;
    }
}

/// Each cell is written straight into the row's one string (ten `String`s, the ALPN names'
/// and `format!`s were ~15 allocations a row): bench/misses, table (`--threads 1`), cycles~
/// mesh 30 MB 93.4 -> 92.2 M, default 30 MB 87.3 -> 86.2 M.
fn row(f: &FlowReport) -> Cells {
    let cells = Cells { text: String::with_capacity(160), ends: [0; 10], widths: [0; 10] };
    let mut r = RowWriter { cells, next: 0 };
    let mut digits = [0; 20];
    let id = crate::wire::decimal(f.id, &mut digits);
    r.cell(|o| id.iter().for_each(|&d| o.push(char::from(d))));
    r.cell(|o| o.push_str(crate::record::EndpointText::new(f.client).as_str()));
    r.cell(|o| o.push_str(crate::record::EndpointText::new(f.server).as_str()));
    r.cell(|o| o.push_str(if f.tls.is_some() { "tls" } else { f.protocol.as_str() }));
    // Version, name and ALPN; then what the MTLS cell says.
    let mtls = match (&f.tls, &f.http) {
        (Some(t), _) => {
            r.cell(|o| o.push_str(t.version.as_deref().unwrap_or_default()));
            // Istio cluster names read better parsed: `reviews.default:9080 (subset v2)`.
            r.cell(|o| match f.istio.as_ref().and_then(|i| i.sni.as_ref()) {
                Some(sni) => sni.push_readable(o, escape_str_into),
                None => {
                    if let Some(s) = &t.sni {
                        escape_bytes_into(s.as_bytes(), o);
                    }
                }
            });
            // Offered protocols in order; the selected one (TLS <= 1.2) marked with `*`, added
            // at the end when no name ends with one.
            r.cell(|o| {
                let sel = t.alpn_selected.as_ref().map(|a| a.as_bytes());
                let mut starred = false;
                for (k, a) in t.alpn_offered.iter().enumerate() {
                    if k > 0 {
                        o.push(',');
                    }
                    let name = o.len();
                    escape_bytes_into(a.as_bytes(), o);
                    if Some(a.as_bytes()) == sel {
                        o.push('*');
                    }
                    // As the names' `ends_with('*')` did: an offered name may end with one.
                    starred |= o.len() > name && o.ends_with('*');
                }
                if let (Some(s), false) = (&t.alpn_selected, starred) {
                    if !t.alpn_offered.is_empty() {
                        o.push(',');
                    }
                    escape_bytes_into(s.as_bytes(), o);
                    o.push('*');
                }
            });
            if t.refused.is_some() {
                "refused"
            } else if t.fatal_alert().is_some() {
                "failed"
            } else {
                t.mtls.as_str()
            }
        }
        (None, Some(h)) => {
            r.cell(|o| o.push_str(h.version.unwrap_or_default()));
            r.cell(|o| {
                if let Some(host) = h.requests.iter().find_map(|r| r.host()) {
                    escape_bytes_into(host, o);
                }
            });
            r.cell(|_| {});
            "plaintext"
        }
        (None, None) => {
            // The first bytes go on a detail line (`bytes:`): in the cell they made rows wide.
            r.cell(|_| {});
            r.cell(|_| {});
            r.cell(|_| {});
            if f.protocol == Protocol::H2c {
                "plaintext"
            } else {
                ""
            }
        }
    };
    r.cell(|o| cert_cell(f, o));
    r.cell(|o| o.push_str(mtls));
    r.cell(|o| flags_cell(f, o));
    r.cells
}

/// One flow rendered for the table: its cells and detail lines (kept instead of the whole
/// report, so a long run holds only text). A table holds up to [`TABLE_BATCH`] rows, so a row's
/// text is kept in one block of its exact size: the ten cells, then the detail lines, back to
/// back (a `String` per detail line in a `Vec` and the cells' 160-byte block before). Max RSS,
/// mesh 1 GB bench file, the table (the default output): two threads 65.4-65.6 -> 62.4-62.6 MiB,
/// one thread 61.6-61.8 -> 59.1-60.3 MiB; bench/misses --threads 1 (table), mesh 100 MB:
/// cycles~ 270.9 -> 269.8 M (the copy costs less than the misses it saves).
pub(crate) struct Row {
    id: u64,
    text: Box<str>,
    /// Where each cell ends in `text`.
    ends: [u32; 10],
    /// Display columns of each cell.
    widths: [u32; 10],
    /// Where each detail line ends in `text` (the first starts where the last cell ends).
    details: Box<[u32]>,
}

impl Row {
    fn cells(&self) -> [&str; 10] {
        std::array::from_fn(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            self.text.get(start..self.ends[i] as usize).unwrap_or_default()
        })
    }

    fn widths(&self) -> [usize; 10] {
        self.widths.map(|w| w as usize)
    }

    fn details(&self) -> impl Iterator<Item = &str> {
        let mut start = self.ends[9] as usize;
        self.details.iter().map(move |&end| {
            let d = self.text.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            d
        })
    }
}

/// Renders one flow.
pub(crate) fn render(f: &FlowReport, opts: TableOptions) -> Row {
    let Cells { mut text, ends, widths } = row(f);
    let lines = details(f, opts);
    text.reserve_exact(lines.iter().map(String::len).sum());
    let details = lines
        .iter()
        .map(|d| {
            text.push_str(d);
            // A row's text is a few KB at most (cells are cut, detail lists capped; `-v`
            // lines are bounded by the per-message limits): u32 is ample, and saturating
            // keeps a wrong end, never a panic (`get` above).
            u32::try_from(text.len()).unwrap_or(u32::MAX)
        })
        .collect();
    Row { id: f.id, text: text.into_boxed_str(), ends, widths, details }
}

/// Rows kept before they are printed: column widths are measured on the first this many rows
/// (sorted by id); later rows are printed in batches of this size with those widths (longer
/// cells push their line), so a capture with a million flows does not hold a million rows.
pub(crate) const TABLE_BATCH: usize = 10_000;

/// The rendered rows of the table, printed in batches (see [`TABLE_BATCH`]).
pub(crate) struct Rows {
    rows: Vec<Row>,
    /// Widths, fixed once the first batch is printed.
    layout: Option<Layout>,
    opts: TableOptions,
}

/// Column widths (0: the column is left out) and the gap between columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    widths: [usize; 10],
    gap: usize,
}

impl Layout {
    /// Display columns of a full row.
    fn line(&self) -> usize {
        let shown = self.widths.iter().filter(|&&w| w > 0).count();
        self.widths.iter().sum::<usize>() + self.gap * shown.saturating_sub(1)
    }
}

/// A step towards a row that fits.
#[derive(Clone, Copy)]
enum Step {
    /// Shrink a column down to this width (never below its header's).
    Shrink(usize, usize),
    /// One space between columns instead of two.
    NarrowGap,
    /// Leave a column out (its values stay in `-v` detail lines and the JSON).
    Hide(usize),
}

/// The steps, in order, while rows are too wide. What tells the story is kept longest: the
/// SNI/HOST and FLAGS (alerts, mismatches) before the certificate name, and that before the
/// ALPN list (also on the Istio detail line and with `-v`).
const FIT_STEPS: [Step; 16] = [
    Step::Shrink(6, 10),
    Step::Shrink(7, 22),
    Step::Shrink(6, 6),
    Step::Shrink(7, 14),
    Step::Hide(6),
    Step::NarrowGap,
    Step::Shrink(7, 10),
    Step::Shrink(9, 24),
    Step::Shrink(5, 24),
    Step::Hide(7),
    Step::Shrink(9, 14),
    Step::Shrink(5, 16),
    Step::Shrink(5, 12),
    Step::Shrink(9, 8),
    Step::Shrink(5, 8),
    Step::Shrink(9, 5),
];

/// Column widths that fit `total` display columns ([`FIT_STEPS`]; room left by a step that
/// freed more than needed goes back to the SNI/HOST, then FLAGS, then CERT, then to a column
/// left out). When even the last step is not enough, rows are cut at `total`.
fn fit(natural: [usize; 10], total: usize) -> Layout {
    let mut l = Layout { widths: natural, gap: GAP };
    for step in FIT_STEPS {
        let over = l.line().saturating_sub(total);
        if over == 0 {
            break;
        }
        match step {
            Step::Shrink(col, min) => {
                let floor = min.max(COLUMNS[col].len()).min(natural[col]);
                l.widths[col] = l.widths[col].saturating_sub(over).max(floor).min(l.widths[col]);
            }
            Step::NarrowGap => l.gap = 1,
            Step::Hide(col) => l.widths[col] = 0,
        }
    }
    for col in [5, 9, 7] {
        let room = total.saturating_sub(l.line());
        if l.widths[col] > 0 {
            l.widths[col] = natural[col].min(l.widths[col] + room);
        }
    }
    // A column left out comes back when what a step freed leaves room for a useful part of it.
    for (col, useful) in [(7, 8), (6, 6)] {
        let room = total.saturating_sub(l.line() + l.gap);
        if l.widths[col] == 0 && natural[col] > 0 && room >= useful.min(natural[col]).max(COLUMNS[col].len())
        {
            l.widths[col] = natural[col].min(room);
        }
    }
    l
}

impl Rows {
    /// An empty table drawn with `opts`.
    pub(crate) fn new(opts: TableOptions) -> Rows {
        let width = opts.width.map(|w| w.max(MIN_WIDTH));
        Rows { rows: Vec::new(), layout: None, opts: TableOptions { width, ..opts } }
    }

    /// How rows are drawn (workers render with it).
    pub(crate) fn options(&self) -> TableOptions {
        self.opts
    }

    /// Adds a row; prints a batch when full.
    pub(crate) fn push(&mut self, out: &mut dyn Write, r: Row) -> io::Result<()> {
        self.rows.push(r);
        if self.rows.len() >= TABLE_BATCH {
            self.print(out)?;
        }
        Ok(())
    }

    /// Prints the rows held, sorted by id (first packet), with the header before the first.
    fn print(&mut self, out: &mut dyn Write) -> io::Result<()> {
        // Sorted by moving (id, index) pairs, not the rows (then 272 bytes: 13M instructions of 536M
        // for the default 100 MB bench file's table).
        let mut order: Vec<(u64, usize)> = self.rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        order.sort_unstable();
        let limit = self.opts.width;
        let layout = match self.layout {
            Some(l) => l,
            None => {
                let mut w = COLUMNS.map(str::len);
                for r in &self.rows {
                    for (i, &c) in r.widths.iter().enumerate() {
                        w[i] = w[i].max(c as usize);
                    }
                }
                let l = match limit {
                    Some(total) => fit(w, total),
                    None => Layout { widths: w, gap: GAP },
                };
                if !self.rows.is_empty() {
                    write_line(out, &mut String::new(), &COLUMNS, &COLUMNS.map(str::len), l, limit)?;
                    self.layout = Some(l);
                }
                l
            }
        };
        let mut l = String::new();
        let indent = layout.widths[0] + layout.gap;
        for &(_, i) in &order {
            let r = &self.rows[i];
            write_line(out, &mut l, &r.cells(), &r.widths(), layout, limit)?;
            for d in r.details() {
                write_detail(out, &mut l, indent, d, limit)?;
            }
        }
        self.rows.clear();
        Ok(())
    }

    /// Prints the remaining rows and the summary.
    pub(crate) fn finish(&mut self, out: &mut dyn Write, s: &Summary) -> io::Result<()> {
        self.print(out)?;
        writeln!(out)?;
        write_summary(out, s, self.opts.width)
    }
}

/// Appends `n` spaces, a slice at a time (one `char` pushed at a time, the padding of a row's
/// ten cells cost more than the rest of writing it).
pub(super) fn push_spaces(l: &mut String, mut n: usize) {
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        l.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// One detail line indented by `indent`; with a width `limit`, wrapped, continuations indented
/// two more columns.
fn write_detail(
    out: &mut dyn Write,
    l: &mut String,
    indent: usize,
    d: &str,
    limit: Option<usize>,
) -> io::Result<()> {
    // Written as bytes, not through `write!`: its formatting machinery was a third of the
    // printing thread's time on a large capture.
    l.clear();
    match limit {
        None => {
            push_spaces(l, indent);
            l.push_str(d);
            l.push('\n');
        }
        Some(total) => {
            // Indents give way on a very narrow screen rather than push lines past it.
            let indent = indent.min(total / 4);
            let (mut rest, mut ind) = (d, indent);
            loop {
                let (head, tail) = split_line(rest, total.saturating_sub(ind).max(1));
                push_spaces(l, ind);
                l.push_str(head);
                l.push('\n');
                if tail.is_empty() {
                    break;
                }
                (rest, ind) = (tail, (indent + 2).min(total / 4 + 2));
            }
        }
    }
    out.write_all(l.as_bytes())
}

/// A CERT cell cut to `max` display columns, keeping what says the most: the end of a SPIFFE
/// URI (`…default/sa/ratings`), the start of a subject, and the ` EXPIRED` / ` NOT-YET-VALID`
/// mark.
fn cut_cert(s: String, max: usize) -> String {
    if width(&s) <= max {
        return s;
    }
    let mark = [" EXPIRED", " NOT-YET-VALID"].into_iter().find(|m| s.ends_with(m)).unwrap_or("");
    let body = &s[..s.len() - mark.len()];
    let room = max.saturating_sub(mark.len());
    if room < 4 {
        return cut(s, max);
    }
    let body = if body.starts_with("spiffe://") {
        let mut tail: Vec<char> = Vec::new();
        let mut w = 1;
        for c in body.chars().rev() {
            let cw = c.width().unwrap_or(0);
            if w + cw > room {
                break;
            }
            tail.push(c);
            w += cw;
        }
        std::iter::once('…').chain(tail.into_iter().rev()).collect()
    } else {
        cut(body.to_string(), room)
    };
    format!("{body}{mark}")
}

/// One row, its cells cut and padded to the layout, built in `l`; cut at `limit` when given.
fn write_line(
    out: &mut dyn Write,
    l: &mut String,
    cells: &[&str; 10],
    widths: &[usize; 10],
    layout: Layout,
    limit: Option<usize>,
) -> io::Result<()> {
    l.clear();
    let last = layout.widths.iter().rposition(|&w| w > 0).unwrap_or(0);
    for (i, &c) in cells.iter().enumerate() {
        let w = layout.widths[i];
        if w == 0 {
            continue;
        }
        // Copied only when a width limit may cut it; measured again only then.
        let (c, cw): (std::borrow::Cow<'_, str>, usize) = match limit {
            Some(_) if widths[i] <= w => (c.into(), widths[i]),
            Some(_) if SHRINKABLE.contains(&i) => {
                let c = if i == 7 { cut_cert(c.to_string(), w) } else { cut(c.to_string(), w) };
                let cw = width(&c);
                (c.into(), cw)
            }
            _ => (c.into(), widths[i]),
        };
        l.push_str(&c);
        if i < last {
            push_spaces(l, w.saturating_sub(cw) + layout.gap);
        }
    }
    l.truncate(l.trim_end().len());
    if let Some(total) = limit {
        *l = cut(std::mem::take(l), total);
    }
    l.push('\n');
    out.write_all(l.as_bytes())
}

/// Column widths of the live table (rows are printed as flows are classified and end, so
/// widths cannot be measured first); longer cells are cut with `…`.
const LIVE_WIDTH: [usize; 10] = [4, 22, 22, 7, 9, 52, 26, 46, 9, 0];

/// Writes the header of the live table.
pub(crate) fn write_live_header(out: &mut dyn Write, opts: TableOptions) -> io::Result<()> {
    write_live_line(out, "EVENT", &COLUMNS, opts)
}

fn write_live_line(
    out: &mut dyn Write,
    event: &str,
    cells: &[&str; 10],
    opts: TableOptions,
) -> io::Result<()> {
    let mut l = format!("{event:<10} ");
    for (i, c) in cells.iter().enumerate() {
        let c = cut(c.to_string(), LIVE_WIDTH[i]);
        l.push_str(&c);
        if LIVE_WIDTH[i] > 0 {
            push_spaces(&mut l, LIVE_WIDTH[i].saturating_sub(width(&c)) + 1);
        }
    }
    let l = cut(l.trim_end().to_string(), opts.width.unwrap_or(0));
    writeln!(out, "{l}")
}

/// Writes one live row (its event, `classified` or `ended`) and, for ended flows, its detail
/// lines.
pub(crate) fn write_live_row(out: &mut dyn Write, f: &FlowReport, opts: TableOptions) -> io::Result<()> {
    let r = render(f, opts);
    write_live_line(out, f.event.as_str(), &r.cells(), opts)?;
    if f.event == crate::record::Event::Ended {
        let mut l = String::new();
        for d in r.details() {
            write_detail(out, &mut l, 16, d, opts.width)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_count_display_columns() {
        assert_eq!(cut("abcdef".into(), 0), "abcdef");
        assert_eq!(cut("abcdef".into(), 6), "abcdef");
        assert_eq!(cut("abcdef".into(), 4), "abc…");
        // Wide characters take two columns; one that does not fit whole is left out.
        assert_eq!(cut("日本語です".into(), 6), "日本…");
        assert_eq!(width(&cut("日本語です".into(), 6)), 5);
        assert_eq!(cut_cert("spiffe://cluster.local/ns/default/sa/ratings".into(), 16), "…ault/sa/ratings");
        assert_eq!(cut_cert("spiffe://cluster.local/ns/default/sa/ratings".into(), 12), "…/sa/ratings");
        assert_eq!(cut_cert("CN=expired.example.test,O=Example Test EXPIRED".into(), 16), "CN=expi… EXPIRED");
        // No room for the body beside the mark: a plain cut.
        assert_eq!(cut_cert("CN=a.test NOT-YET-VALID".into(), 16), "CN=a.test NOT-Y…");
        assert_eq!(cut_cert("CN=a.test".into(), 20), "CN=a.test");
    }

    #[test]
    fn proxy_header_text_from_the_wire_is_escaped() {
        use crate::classify::proxy::{Command, Family, ProxyHeader, Tlv};
        let tlv = |kind: u8, v: &[u8]| Tlv { kind, value: v.into(), len: v.len() as u16 };
        let p = ProxyHeader {
            version: 2,
            command: Command::Proxy,
            family: Family::Inet6,
            source: Some("[fd00::1]:5555".parse().unwrap()),
            destination: Some("[fd00::2]:8080".parse().unwrap()),
            tlvs: vec![
                tlv(0xd0, "spiffe://td/ns/a/sa/\x1b[31mred\u{202e}".as_bytes()),
                tlv(0x01, b"h2\xff\x00"),
            ],
            tlvs_omitted: 3,
            tlvs_cut_short: false,
        };
        assert_eq!(
            proxy_line(&p, 0),
            "PROXY v2 [fd00::1]:5555 -> [fd00::2]:8080 id spiffe://td/ns/a/sa/\\x1b[31mred\\u{202e} (+1 TLV; -v lists them)"
        );
        let mut v = Vec::new();
        proxy_tlv_lines(&mut v, &p);
        assert_eq!(
            v,
            [
                "  PROXY TLV 0xd0: 7370696666653a2f2f74642f6e732f612f73612f1b5b33316d726564e280ae",
                "  PROXY TLV 0x01: 6832ff00",
                "  … 3 more PROXY TLVs",
            ]
        );
    }

    #[test]
    fn a_rendered_row_keeps_its_cells_and_detail_lines_in_one_block() {
        use crate::classify::http::{testutil::cfg, HttpSession};
        use crate::flow::FlowMeta;
        use crate::wire::Side;
        let mut h = HttpSession::new(cfg());
        for (i, path) in ["/a", "/b\x1b", "/ç"].iter().enumerate() {
            h.feed(
                Side::A,
                format!("GET {path} HTTP/1.1\r\nhost: reviews:9080\r\nx-request-id: {i}\r\n\r\n").as_bytes(),
            );
            h.feed(Side::B, b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        }
        let ends = (
            std::net::SocketAddr::from(([10, 0, 0, 9], 40_000)),
            std::net::SocketAddr::from(([10, 0, 0, 2], 9080)),
        );
        let meta = FlowMeta::closed_for_test(ends.0, ends.1, (1, 2), 1);
        let f = FlowReport::for_test(meta, Protocol::Http, None, Some(h.finish()));
        for verbose in [0, 1] {
            let opts = TableOptions { verbose, width: None };
            let r = render(&f, opts);
            let (separate, lines) = (row(&f), details(&f, opts));
            let cells: [&str; 10] = std::array::from_fn(|i| {
                let start = if i == 0 { 0 } else { separate.ends[i - 1] as usize };
                &separate.text[start..separate.ends[i] as usize]
            });
            assert_eq!(r.cells(), cells);
            assert_eq!(r.cells()[1], "10.0.0.9:40000");
            assert_eq!(r.cells()[5], "reviews:9080");
            assert_eq!(r.widths(), separate.widths.map(|w| w as usize));
            assert_eq!(r.details().collect::<Vec<_>>(), lines);
            assert!(lines.len() >= 3, "{lines:?}");
            // Exactly the text, nothing spare.
            assert_eq!(r.text.len(), cells.concat().len() + lines.concat().len());
        }
        assert_eq!(render(&f, TableOptions::default()).details().next(), Some("GET /a → 503 (2 headers)"));
    }

    #[test]
    fn lines_split_at_a_late_space_or_anywhere() {
        assert_eq!(split_line("short", 10), ("short", ""));
        assert_eq!(split_line("aaaa bbbb cccc", 10), ("aaaa bbbb", "cccc"));
        // A space in the first half is not worth a short line.
        assert_eq!(split_line("a bbbbbbbbbbbb", 10), ("a bbbbbbbb", "bbbb"));
        assert_eq!(split_line("日本語", 3), ("日", "本語"));
        assert_eq!(split_line("日本語", 1), ("日", "本語"));
    }

    #[test]
    fn detail_lines_wrap_within_the_width() {
        let mut out = Vec::new();
        let text = "warning: SNI web.example.test is not covered by the server certificate (it covers: api.example.test)";
        write_detail(&mut out, &mut String::new(), 4, text, Some(40)).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "    warning: SNI web.example.test is not\n      covered by the server certificate\n      (it covers: api.example.test)\n"
        );
        let mut out = Vec::new();
        write_detail(&mut out, &mut String::new(), 4, text, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("    {text}\n"));
    }

    /// (natural widths, total) -> widths (0: left out), gap.
    #[test]
    fn columns_shrink_then_narrow_gaps_then_leave_out_alpn_and_cert() {
        // ID CLIENT SERVER PROTO VERSION SNI ALPN CERT MTLS FLAGS
        let natural = [2, 15, 14, 5, 7, 20, 40, 44, 4, 13];
        let cases: &[(usize, [usize; 10], usize)] = &[
            (250, natural, 2),
            (120, [2, 15, 14, 5, 7, 20, 6, 16, 4, 13], 2),
            (100, [2, 15, 14, 5, 7, 20, 0, 12, 4, 13], 1),
            // CERT left out one column short, then back with what that freed.
            (97, [2, 15, 14, 5, 7, 20, 0, 9, 4, 13], 1),
            (90, [2, 15, 14, 5, 7, 20, 0, 0, 4, 13], 1),
            (80, [2, 15, 14, 5, 7, 13, 0, 0, 4, 13], 1),
            // Too narrow for anything: the floors (headers), and rows are cut.
            (40, [2, 15, 14, 5, 7, 8, 0, 0, 4, 5], 1),
        ];
        for &(total, widths, gap) in cases {
            let l = fit(natural, total);
            assert_eq!((l.widths, l.gap), (widths, gap), "{total}");
            assert!(l.line() <= total || total == 40, "{total}: {}", l.line());
        }
        // Narrow columns keep their width; the room goes to the others.
        let l = fit([2, 15, 14, 5, 7, 8, 4, 60, 4, 5], 100);
        assert_eq!(l.widths, [2, 15, 14, 5, 7, 8, 4, 18, 4, 5]);
        assert_eq!(l.line(), 100);
    }

    #[test]
    fn plurals() {
        use super::summary::{flows, plural};
        assert_eq!(flows(1), "1 flow");
        assert_eq!(flows(0), "0 flows");
        assert_eq!(plural(1, "packet"), "1 packet");
        assert_eq!(plural(2, "byte"), "2 bytes");
    }
}

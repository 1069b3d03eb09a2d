//! Where reported flows go ([`Sink`]): JSON lines written at once, table rows kept until the
//! end, live rows, or only counted; and what the workers render of a flow for it
//! ([`RenderMode`], [`Rendered`]). The order of the flows is the merger's ([`super::merge`]).

use super::merge::Pending;
use super::Format;
use crate::mesh::MeshConfig;
use crate::record::FlowReport;
use crate::report::{json, table};
use std::io::{self, Write};

/// Where reported flows go: JSON lines are written at once, table rows are kept as text until
/// the end (column widths need every row).
pub(super) enum Sink<'a> {
    /// Flows are only counted (`--summary-only`); the summary is written in this format.
    Count(Format),
    Json(&'a mut dyn Write),
    Table(&'a mut dyn Write, table::Rows),
    /// Live capture: rows printed as flows are classified and end (fixed column widths); the
    /// flag says whether the header was printed.
    LiveTable(&'a mut dyn Write, bool, table::TableOptions),
}

impl Sink<'_> {
    /// A live `classified` event: written at once (JSON), not counted in the summary.
    pub(super) fn announce(&mut self, f: &FlowReport) -> io::Result<()> {
        match self {
            Sink::Json(out) => {
                json::write_flow(*out, f)?;
                out.flush()
            }
            Sink::Table(..) | Sink::Count(_) => Ok(()),
            Sink::LiveTable(out, header, opts) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out, *opts)?;
                }
                table::write_live_row(*out, f, *opts)?;
                out.flush()
            }
        }
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Json(out) | Sink::LiveTable(out, ..) => out.flush(),
            Sink::Table(..) | Sink::Count(_) => Ok(()),
        }
    }

    pub(super) fn emit(
        &mut self,
        p: &mut Pending,
        tally: &mut super::Tally,
        mesh: &MeshConfig,
    ) -> io::Result<()> {
        tally.count_flow(&p.flow, mesh);
        // A flow without its report had its output rendered by its worker (`report_flow`).
        let f = p.flow.report();
        match (self, std::mem::replace(&mut p.rendered, Rendered::No), f) {
            (Sink::Count(_), ..) => Ok(()),
            (Sink::Json(out), Rendered::Json(line), _) => out.write_all(&line),
            (Sink::Json(out), _, Some(f)) => json::write_flow(*out, f),
            (Sink::Table(out, rows), Rendered::Row(r), _) => rows.push(*out, *r),
            (Sink::Table(out, rows), _, Some(f)) => {
                let r = table::render(f, rows.options());
                rows.push(*out, r)
            }
            (_, _, None) => Ok(()),
            (Sink::LiveTable(out, header, opts), _, Some(f)) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out, *opts)?;
                }
                table::write_live_row(*out, f, *opts)
            }
        }
    }

    /// What workers render for this sink (see [`Rendered`]).
    pub(super) fn render_mode(&self) -> RenderMode {
        match self {
            Sink::Json(_) => RenderMode::Json,
            Sink::Table(_, rows) => RenderMode::Row(rows.options()),
            Sink::Count(_) => RenderMode::Count,
            Sink::LiveTable(..) => RenderMode::None,
        }
    }
}

/// What a worker renders of the flows it ends: the output formatting then runs on the worker's
/// thread, spread over `--threads`, not all on the merging thread (a quarter of the work).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RenderMode {
    None,
    /// Nothing to render: flows are only counted (`--summary-only`).
    Count,
    Json,
    Row(table::TableOptions),
}

/// A reported flow's output, rendered by its worker, unless the XFCC confirmation may still
/// change the report when it is released ([`may_confirm`](crate::mesh::may_confirm)).
pub(super) enum Rendered {
    No,
    /// A JSON line, with its newline.
    Json(Vec<u8>),
    Row(Box<table::Row>),
}

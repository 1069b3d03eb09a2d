//! Renders `tlspeek report`'s merge: the table (a header line on the merge, the same totals and
//! per-server / per-service readings as a capture's summary, then the edges of the graph) and
//! the single JSON object `report` (docs/json.md, "report"). Renders only: the merge is
//! [`crate::run::report`]'s, the graph [`crate::mesh::graph`]'s.

use crate::mesh::graph::{Edge, Node};
use crate::run::report::Merged;
use crate::sanitize::escape_str;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Edges listed in the table; `--json` lists them all.
const MAX_TABLE_EDGES: usize = 50;

/// The JSON object, keys in the order of src/report/schema.rs.
#[derive(Serialize)]
struct ReportJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    files: &'a [String],
    lines: u64,
    flow_lines: u64,
    duplicates: u64,
    flows: u64,
    bad_lines: u64,
    errors: &'a [String],
    packets: u64,
    bytes: u64,
    by_protocol: &'a BTreeMap<crate::classify::Protocol, u64>,
    by_mtls: &'a BTreeMap<crate::classify::tls::MtlsVerdict, u64>,
    mesh_mode: Option<&'static str>,
    servers: &'a [crate::mesh::ServerVerdict],
    services: &'a [crate::mesh::ServerVerdict],
    servers_not_listed: u64,
    nodes: &'a [Node],
    edges: &'a [Edge],
    flows_not_listed: u64,
}

/// Writes the merge as one JSON object on one line.
pub(crate) fn write_json(out: &mut dyn Write, m: &Merged) -> io::Result<()> {
    let s = &m.summary;
    let j = ReportJson {
        kind: "report",
        files: &m.counts.files,
        lines: m.counts.lines,
        flow_lines: m.counts.flow_lines,
        duplicates: m.counts.duplicates,
        flows: s.flows,
        bad_lines: m.counts.bad_lines,
        errors: &m.counts.errors,
        packets: s.packets,
        bytes: s.bytes,
        by_protocol: &s.by_protocol,
        by_mtls: &s.by_mtls,
        mesh_mode: s.mesh_mode,
        servers: &s.servers,
        services: &s.services,
        servers_not_listed: s.servers_not_listed,
        nodes: &m.graph.nodes,
        edges: &m.graph.edges,
        flows_not_listed: m.graph.flows_not_listed,
    };
    serde_json::to_writer(&mut *out, &j)?;
    writeln!(out)
}

/// Writes the table: the merge, the readings, the edges.
pub(crate) fn write_table(out: &mut dyn Write, m: &Merged, width: Option<usize>) -> io::Result<()> {
    let c = &m.counts;
    write!(
        out,
        "merged {} from {}: {} (each connection seen from both ends counted once: {} duplicate{})",
        plural(c.flow_lines, "flow record"),
        plural(c.files.len() as u64, "file"),
        plural(m.summary.flows, "flow"),
        c.duplicates,
        if c.duplicates == 1 { "" } else { "s" },
    )?;
    if c.bad_lines > 0 {
        write!(out, "; {} in error (on stderr)", plural(c.bad_lines, "line"))?;
    }
    writeln!(out)?;
    super::table::write_summary(out, &m.summary, width)?;
    write_edges(out, &m.graph.edges, m.graph.flows_not_listed, width)
}

/// The edges: client → server, counts per verdict class, first and last time. In a terminal too
/// narrow for the columns, each edge takes two lines: `client → server`, then its nonzero counts
/// and its last time.
fn write_edges(out: &mut dyn Write, edges: &[Edge], not_listed: u64, width: Option<usize>) -> io::Result<()> {
    if edges.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nEdges (client identity or address → Istio service or server):")?;
    let head = [
        "CLIENT",
        "SERVER",
        "FLOWS",
        "MTLS",
        "INFERRED",
        "TLS-NO-CERT",
        "PLAINTEXT",
        "REFUSED",
        "UNKNOWN",
        "LEGS",
        "LAST",
    ];
    let rows: Vec<[String; 11]> = edges
        .iter()
        .take(MAX_TABLE_EDGES)
        .map(|e| {
            let v = &e.verdicts;
            [
                escape_str(&e.client),
                escape_str(&e.server),
                e.flows.to_string(),
                v.proven_mtls.to_string(),
                v.inferred_mtls.to_string(),
                v.tls_no_client_cert.to_string(),
                v.plaintext.to_string(),
                v.refused.to_string(),
                v.unknown.to_string(),
                e.legs.to_string(),
                e.last_ts.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let total: usize = 2 + widths.iter().map(|w| w + 2).sum::<usize>();
    if width.is_some_and(|w| total > w) {
        for (e, r) in edges.iter().zip(&rows) {
            writeln!(out, "  {} → {}", r[0], r[1])?;
            let v = &e.verdicts;
            let counts: Vec<String> = [
                ("proven mTLS", v.proven_mtls),
                ("inferred mTLS", v.inferred_mtls),
                ("TLS without client cert", v.tls_no_client_cert),
                ("plaintext", v.plaintext),
                ("refused", v.refused),
                ("unknown", v.unknown),
                ("legs inside a pod", e.legs),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
            writeln!(out, "      {}: {}; last {}", plural(e.flows, "flow"), counts.join(", "), r[10])?;
        }
    } else {
        line_table(out, &head, &rows, &widths)?;
    }
    let more = edges.len().saturating_sub(MAX_TABLE_EDGES) as u64;
    if more > 0 {
        writeln!(out, "  … {more} more edges (--json lists them all)")?;
    }
    if not_listed > 0 {
        writeln!(out, "  {not_listed} flows between nodes beyond the graph's limits (not on an edge)")?;
    }
    Ok(())
}

/// The edges as columns.
fn line_table(
    out: &mut dyn Write,
    head: &[&str; 11],
    rows: &[[String; 11]],
    widths: &[usize; 11],
) -> io::Result<()> {
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            l.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
        }
        writeln!(out, "{}", l.trim_end())
    };
    line(out, &head.map(String::from))?;
    for r in rows {
        line(out, r)?;
    }
    Ok(())
}

/// `1 flow`, `3 flows`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

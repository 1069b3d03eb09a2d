//! The human table: one row per flow in order of first packet, a few indented detail lines
//! (HTTP requests, client certificates), then the summary. Every wire-derived string is escaped
//! by [`crate::sanitize`] before it is printed; long cells are cut with `…`.

use super::{FlowReport, Summary};
use crate::sanitize::{escape_bytes, escape_str};
use std::io::{self, Write};

const COLUMNS: [&str; 10] =
    ["ID", "CLIENT", "SERVER", "PROTO", "VERSION", "SNI/HOST", "ALPN", "CERT", "MTLS", "FLAGS"];
/// Widest a cell may be, per column (0 = unlimited).
const MAX_WIDTH: [usize; 10] = [0, 0, 0, 0, 0, 64, 40, 56, 0, 0];
/// HTTP requests listed under a flow row.
const MAX_DETAIL_REQUESTS: usize = 5;

fn cut(s: String, max: usize) -> String {
    if max == 0 || s.chars().count() <= max {
        return s;
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Short name of a certificate: its first URI SAN (SPIFFE identity), else its subject.
fn cert_cell(f: &FlowReport) -> String {
    let Some(t) = &f.tls else { return String::new() };
    let Some(c) = t.server_certs.first() else { return String::new() };
    let mut s = match (c.san_uris.first(), c.subject.as_deref()) {
        (Some(u), _) => escape_str(u),
        (None, Some(subj)) => escape_str(subj),
        (None, None) => "(unparsed)".into(),
    };
    if c.expired {
        s.push_str(" EXPIRED");
    } else if c.not_yet_valid {
        s.push_str(" NOT-YET-VALID");
    }
    s
}

fn row(f: &FlowReport) -> [String; 10] {
    let (proto, version, name, alpn, mtls) = match (&f.tls, &f.http) {
        (Some(t), _) => {
            // Offered protocols in order; the selected one (TLS <= 1.2) marked with `*`.
            let sel = t.alpn_selected.as_ref().map(|a| a.as_bytes());
            let mut names: Vec<String> = t
                .alpn_offered
                .iter()
                .map(|a| {
                    if Some(a.as_bytes()) == sel {
                        format!("{}*", a.to_terminal())
                    } else {
                        a.to_terminal()
                    }
                })
                .collect();
            if let (Some(s), false) = (&t.alpn_selected, names.iter().any(|n| n.ends_with('*'))) {
                names.push(format!("{}*", s.to_terminal()));
            }
            let alpn = names.join(",");
            (
                "tls".to_string(),
                t.version.as_deref().unwrap_or_default().to_string(),
                // Istio cluster names read better parsed: `reviews.default:9080 (subset v2)`.
                match f.istio.as_ref().and_then(|i| i.sni.as_ref()) {
                    Some(sni) => escape_str(&sni.readable()),
                    None => t.sni.as_ref().map(|s| s.to_terminal()).unwrap_or_default(),
                },
                alpn,
                t.mtls.to_string(),
            )
        }
        (None, Some(h)) => (
            f.protocol.to_string(),
            h.version.unwrap_or_default().to_string(),
            h.requests.iter().find_map(|r| r.host.as_ref()).map(|h| h.to_terminal()).unwrap_or_default(),
            String::new(),
            "plaintext".to_string(),
        ),
        (None, None) => {
            let preview = f
                .preview
                .as_ref()
                .map(|p| {
                    let b = if p.client.as_bytes().is_empty() { &p.server } else { &p.client };
                    format!("\"{}\"", escape_bytes(b.as_bytes()))
                })
                .unwrap_or_default();
            let plain = if f.protocol == "h2c" { "plaintext" } else { "" };
            (f.protocol.to_string(), String::new(), preview, String::new(), plain.to_string())
        }
    };
    let cells = [
        f.id.to_string(),
        crate::report::endpoint(f.client),
        crate::report::endpoint(f.server),
        proto,
        version,
        name,
        alpn,
        cert_cell(f),
        mtls,
        f.flags.join(","),
    ];
    let mut out: [String; 10] = Default::default();
    for (i, c) in cells.into_iter().enumerate() {
        out[i] = or_dash(cut(c, MAX_WIDTH[i]));
    }
    out
}

/// Indented detail lines under a flow row.
fn details(f: &FlowReport) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(t) = &f.tls {
        for c in &t.client_certs {
            let who = c.san_uris.first().cloned().or_else(|| c.subject.clone()).unwrap_or_default();
            v.push(format!("client cert: {}", escape_str(&who)));
        }
        let inferred =
            matches!(t.mtls, "unknown" | "likely" | "unlikely") || t.mtls_reason.contains("confirmed");
        if inferred || (t.mtls == "no" && t.client_cert_requested) {
            v.push(format!("mtls {}: {}", t.mtls, escape_str(&t.mtls_reason)));
        }
    }
    if let Some(i) = &f.istio {
        v.extend(istio_details(i, f.original_dst));
    }
    let pod = f.istio.as_ref().is_none_or(|i| i.leg == "pod_network");
    if f.http.is_some() && pod && super::mesh::from_sidecar(f) {
        v.push("plaintext from a client sidecar (x-envoy-* headers): its DestinationRule sets tls.mode DISABLE, or it does not originate mTLS".into());
    }
    if let Some(h) = &f.http {
        for (i, r) in h.requests.iter().enumerate().take(MAX_DETAIL_REQUESTS) {
            let status =
                h.responses.iter().filter(|r| r.status >= 200).nth(i).map(|r| format!(" → {}", r.status));
            v.push(format!(
                "{} {}{} ({} headers)",
                r.method.to_terminal(),
                cut(r.path.to_terminal(), 80),
                status.unwrap_or_default(),
                r.headers.len()
            ));
        }
        if h.requests_total > MAX_DETAIL_REQUESTS as u64 {
            v.push(format!("… {} more requests", h.requests_total - MAX_DETAIL_REQUESTS as u64));
        }
    }
    for w in f.warnings.iter().take(3) {
        v.push(format!("warning: {}", escape_str(w)));
    }
    v
}

/// Detail lines for the Istio facts of a flow.
fn istio_details(
    i: &crate::classify::istio::IstioReport,
    original_dst: Option<std::net::SocketAddr>,
) -> Vec<String> {
    let mut v = Vec::new();
    match original_dst {
        Some(o) => v.push(format!(
            "leg: {}; dialled {o}, redirected by iptables (its replies, un-NATed by conntrack, are part of this flow)",
            crate::classify::istio::leg_text(i.leg)
        )),
        None if i.leg != "pod_network" => v.push(format!("leg: {}", crate::classify::istio::leg_text(i.leg))),
        None => {}
    }
    if let Some(a) = &i.alpn {
        let app = a.app_protocol.map(|p| format!(", app protocol {p}")).unwrap_or_default();
        v.push(format!(
            "client is an Istio sidecar (ALPN {}{})",
            escape_str(&a.tokens.join(",")),
            escape_str(&app)
        ));
    }
    let mut ids = Vec::new();
    if let Some(c) = &i.client_identity {
        ids.push(format!("client {}", escape_str(&c.uri)));
    }
    if let Some(s) = &i.server_identity {
        ids.push(format!("server {}", escape_str(&s.uri)));
    }
    if !ids.is_empty() {
        v.push(format!("identity: {}", ids.join(", ")));
    }
    if let Some(x) = i.xfcc.last() {
        let by = x.by.as_deref().map(|b| format!(" by {}", escape_str(b))).unwrap_or_default();
        let uri = x.uri.as_deref().map(escape_str).unwrap_or_else(|| "(no client URI)".into());
        v.push(format!("x-forwarded-client-cert: client {uri}{by} (the request arrived over mTLS)"));
    }
    if let Some(serde_json::Value::Object(m)) = &i.peer_metadata {
        let keys = ["NAME", "NAMESPACE", "WORKLOAD_NAME", "CLUSTER_ID", "ISTIO_VERSION"];
        let parts: Vec<String> = keys
            .iter()
            .filter_map(|k| m.get(*k).and_then(|x| x.as_str()).map(|x| format!("{k}={}", escape_str(x))))
            .collect();
        if !parts.is_empty() {
            v.push(format!("x-envoy-peer-metadata: {}", parts.join(" ")));
        }
    }
    v
}

/// One flow rendered for the table: its cells and detail lines (kept instead of the whole
/// report, so a long run holds only text).
pub struct Row {
    id: u64,
    cells: [String; 10],
    details: Vec<String>,
}

/// Renders one flow.
pub fn render(f: &FlowReport) -> Row {
    Row { id: f.id, cells: row(f), details: details(f) }
}

/// Rows kept before they are printed: column widths are measured on the first this many rows
/// (sorted by id); later rows are printed in batches of this size with those widths (longer
/// cells push their line), so a capture with a million flows does not hold a million rows.
pub const TABLE_BATCH: usize = 10_000;

/// The rendered rows of the table, printed in batches (see [`TABLE_BATCH`]).
#[derive(Default)]
pub struct Rows {
    rows: Vec<Row>,
    /// Widths, fixed once the first batch is printed.
    width: Option<[usize; 10]>,
}

impl Rows {
    /// Adds a row; prints a batch when full.
    pub fn push(&mut self, out: &mut dyn Write, r: Row) -> io::Result<()> {
        self.rows.push(r);
        if self.rows.len() >= TABLE_BATCH {
            self.print(out)?;
        }
        Ok(())
    }

    /// Prints the rows held, sorted by id (first packet), with the header before the first.
    fn print(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.rows.sort_unstable_by_key(|r| r.id);
        let width = match self.width {
            Some(w) => w,
            None => {
                let mut w = COLUMNS.map(|c| c.chars().count());
                for r in &self.rows {
                    for (i, c) in r.cells.iter().enumerate() {
                        w[i] = w[i].max(c.chars().count());
                    }
                }
                if !self.rows.is_empty() {
                    write_line(out, &mut String::new(), &COLUMNS.map(String::from), &w)?;
                    self.width = Some(w);
                }
                w
            }
        };
        let mut l = String::new();
        for r in self.rows.drain(..) {
            write_line(out, &mut l, &r.cells, &width)?;
            for d in &r.details {
                // Written as bytes, not through `write!`: its formatting machinery was a third
                // of the printing thread's time on a large capture.
                l.clear();
                l.extend(std::iter::repeat_n(' ', width[0] + 2));
                l.push_str(d);
                l.push('\n');
                out.write_all(l.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Prints the remaining rows and the summary.
    pub fn finish(&mut self, out: &mut dyn Write, s: &Summary) -> io::Result<()> {
        self.print(out)?;
        writeln!(out)?;
        write_summary(out, s)
    }
}

/// One row, its cells padded to `width`, built in `l`.
fn write_line(out: &mut dyn Write, l: &mut String, cells: &[String], width: &[usize; 10]) -> io::Result<()> {
    l.clear();
    for (i, c) in cells.iter().enumerate() {
        l.push_str(c);
        if i + 1 < cells.len() {
            l.extend(std::iter::repeat_n(' ', width[i].saturating_sub(c.chars().count()) + 2));
        }
    }
    l.truncate(l.trim_end().len());
    l.push('\n');
    out.write_all(l.as_bytes())
}

/// Column widths of the live table (rows are printed as flows are classified and end, so
/// widths cannot be measured first); longer cells are cut with `…`.
const LIVE_WIDTH: [usize; 10] = [4, 22, 22, 7, 9, 52, 26, 46, 9, 0];

/// Writes the header of the live table.
pub fn write_live_header(out: &mut dyn Write) -> io::Result<()> {
    let cells = COLUMNS.map(String::from);
    write_live_line(out, "EVENT", &cells)
}

fn write_live_line(out: &mut dyn Write, event: &str, cells: &[String]) -> io::Result<()> {
    let mut l = format!("{event:<10} ");
    for (i, c) in cells.iter().enumerate() {
        let c = cut(c.clone(), LIVE_WIDTH[i]);
        l.push_str(&c);
        if LIVE_WIDTH[i] > 0 {
            l.extend(std::iter::repeat_n(' ', LIVE_WIDTH[i].saturating_sub(c.chars().count()) + 1));
        }
    }
    writeln!(out, "{}", l.trim_end())
}

/// Writes one live row (`classified` or `ended`) and, for ended flows, its detail lines.
pub fn write_live_row(out: &mut dyn Write, event: &str, f: &FlowReport) -> io::Result<()> {
    let r = render(f);
    write_live_line(out, event, &r.cells)?;
    if event == "ended" {
        for d in &r.details {
            writeln!(out, "{:16}{d}", "")?;
        }
    }
    Ok(())
}

/// Writes the plain-text summary.
pub fn write_summary(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    let protos: Vec<String> = s.by_protocol.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mtls: Vec<String> = s.by_mtls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    write!(out, "{} flows", s.flows)?;
    if !protos.is_empty() {
        write!(out, ": {}", protos.join(", "))?;
    }
    if !mtls.is_empty() {
        write!(out, " (TLS mTLS verdicts: {})", mtls.join(", "))?;
    }
    writeln!(out, "; {} packets, {} bytes", s.packets, s.bytes)?;
    if !s.non_tcp.is_empty() {
        let n: Vec<String> = s.non_tcp.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "not TCP: {}", n.join(", "))?;
    }
    if !s.skipped_link_types.is_empty() {
        let n: Vec<String> = s.skipped_link_types.iter().map(|(k, v)| format!("{k}: {v} packets")).collect();
        writeln!(out, "skipped {}", n.join(", "))?;
    }
    if let Some(c) = &s.capture_stats {
        writeln!(
            out,
            "capture: {} packets received by filter, {} dropped by kernel, {} dropped by interface",
            c.received, c.dropped, c.if_dropped
        )?;
    }
    if s.evicted_flows > 0 {
        writeln!(out, "{} flows evicted (flow table full; see --max-flows)", s.evicted_flows)?;
    }
    if s.cert_warnings > 0 {
        writeln!(
            out,
            "{} flows with certificate warnings (expired, not yet valid, or within --cert-warn)",
            s.cert_warnings
        )?;
    }
    write_servers(out, "servers", &s.servers, s.servers_not_listed, false)?;
    write_servers(out, "Istio services (named by the SNI)", &s.services, 0, true)?;
    // Errors are not repeated here: each was written once, on stderr, when it happened.
    write_expectations(out, s)
}

/// Servers listed in the table summary; `--json` lists them all.
const MAX_TABLE_SERVERS: usize = 50;

/// Writes the per-server (or per-service) verdicts.
fn write_servers(
    out: &mut dyn Write,
    title: &str,
    list: &[super::mesh::ServerVerdict],
    not_listed: u64,
    services: bool,
) -> io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}:")?;
    let (first, second) = if services { ("SERVICE", "") } else { ("SERVER", "SERVICE") };
    let head = [first, second, "FLOWS", "MTLS", "TLS-NO-CERT", "PLAINTEXT", "REFUSED", "LEGS", "READING"];
    let rows: Vec<[String; 9]> = list
        .iter()
        .take(MAX_TABLE_SERVERS)
        .map(|v| {
            [
                escape_str(&v.name),
                match (&v.service, services) {
                    (_, true) => String::new(),
                    (Some(s), false) => escape_str(s),
                    (None, false) => "-".into(),
                },
                v.flows.to_string(),
                v.mtls.to_string(),
                v.tls_no_client_cert.to_string(),
                v.plaintext.to_string(),
                v.plaintext_refused.to_string(),
                v.legs.to_string(),
                v.reading.clone(),
            ]
        })
        .collect();
    let mut width = head.map(|h| h.len());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            if services && (i == 1 || i == 7) {
                continue;
            }
            l.push_str(c);
            if i + 1 < cells.len() {
                l.extend(std::iter::repeat_n(' ', width[i] - c.chars().count() + 2));
            }
        }
        writeln!(out, "{}", l.trim_end())
    };
    line(out, &head.map(String::from))?;
    for r in &rows {
        line(out, r)?;
    }
    let more = (list.len().saturating_sub(MAX_TABLE_SERVERS)) as u64 + not_listed;
    if more > 0 {
        writeln!(out, "  … {more} more (--json lists them all)")?;
    }
    Ok(())
}

/// Violations printed after the summary (all are in the JSON summary).
const MAX_PRINTED_VIOLATIONS: usize = 20;

/// `1 flow`, `3 flows`.
fn flows(n: u64) -> String {
    if n == 1 {
        "1 flow".into()
    } else {
        format!("{n} flows")
    }
}

/// Writes the outcome of `--expect mtls` / `--fail-on-plaintext`, if either was given.
pub fn write_expectations(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    let Some(e) = &s.expectations else { return Ok(()) };
    let mut what = Vec::new();
    if e.expect.is_some() {
        what.push("--expect mtls");
    }
    if e.fail_on_plaintext {
        what.push("--fail-on-plaintext");
    }
    let what = what.join(" and ");
    let unverified = if e.unverified > 0 {
        format!(" ({} unverified: TLS handshake not seen or resumed)", flows(e.unverified))
    } else {
        String::new()
    };
    if e.failed == 0 {
        writeln!(out, "\n{what}: passed, {} checked{unverified}", flows(e.checked))?;
        return Ok(());
    }
    writeln!(out, "\n{what}: FAILED, {} of {} checked{unverified}:", e.failed, flows(e.checked))?;
    for v in e.violations.iter().take(MAX_PRINTED_VIOLATIONS) {
        writeln!(out, "  flow {} {} -> {}: {}", v.id, v.client, v.server, v.reason)?;
    }
    if e.failed as usize > MAX_PRINTED_VIOLATIONS {
        writeln!(out, "  … {} more (--json lists up to 1,000)", e.failed as usize - MAX_PRINTED_VIOLATIONS)?;
    }
    Ok(())
}

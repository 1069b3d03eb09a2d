//! The plain-text summary after the flow rows: totals, the per-server and per-service readings
//! (their READING column wraps within a width limit), and the outcome of `--expect mtls` /
//! `--fail-on-plaintext` with the flows that broke it.

use super::{split_line, width, write_detail, MIN_WIDTH};
use crate::report::Summary;
use crate::sanitize::escape_str;
use std::io::{self, Write};

/// Writes the totals, the per-server and per-service readings and the expectations; with a
/// width `limit`, the readings and the listed violations wrap within it.
pub(crate) fn write_summary(out: &mut dyn Write, s: &Summary, limit: Option<usize>) -> io::Result<()> {
    let limit = limit.map(|w| w.max(MIN_WIDTH));
    let protos: Vec<String> = s.by_protocol.iter().map(|(k, v)| format!("{v} {}", k.as_str())).collect();
    let mtls: Vec<String> = s.by_mtls.iter().map(|(k, v)| format!("{} {v}", k.as_str())).collect();
    write!(out, "{}", flows(s.flows))?;
    if !protos.is_empty() {
        write!(out, ": {}", protos.join(", "))?;
    }
    if !mtls.is_empty() {
        write!(out, " (TLS mTLS verdicts: {})", mtls.join(", "))?;
    }
    writeln!(out, "; {}, {}", plural(s.packets, "packet"), plural(s.bytes, "byte"))?;
    if !s.non_tcp.is_empty() {
        let n: Vec<String> = s.non_tcp.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "not TCP: {}", n.join(", "))?;
    }
    if !s.udp_servers.is_empty() {
        let n: Vec<String> = s
            .udp_servers
            .iter()
            .take(MAX_TABLE_UDP)
            .map(|u| format!("{} ({}, {})", u.server, flows(u.flows), plural(u.packets, "datagram")))
            .collect();
        let more = s.udp_servers.len().saturating_sub(MAX_TABLE_UDP) as u64 + s.udp_servers_not_listed;
        let more = if more > 0 { format!(" and {} more", plural(more, "server")) } else { String::new() };
        writeln!(
            out,
            "UDP servers (no mesh proxies UDP: neither sidecars nor ztunnel): {}{more}",
            n.join(", ")
        )?;
    }
    if !s.skipped_link_types.is_empty() {
        let n: Vec<String> =
            s.skipped_link_types.iter().map(|(k, v)| format!("{k}: {}", plural(*v, "packet"))).collect();
        writeln!(out, "skipped {}", n.join(", "))?;
    }
    if let Some(c) = &s.capture_stats {
        writeln!(
            out,
            "capture: {} received by filter, {} dropped by kernel, {} dropped by interface",
            plural(c.received, "packet"),
            c.dropped,
            c.if_dropped
        )?;
    }
    if s.evicted_flows > 0 {
        writeln!(out, "{} evicted (flow table full; see --max-flows)", flows(s.evicted_flows))?;
    }
    if s.cert_warnings > 0 {
        writeln!(
            out,
            "{} with certificate warnings (expired, not yet valid, or within --cert-warn)",
            flows(s.cert_warnings)
        )?;
    }
    write_servers(out, "servers", &s.servers, s.servers_not_listed, false, limit)?;
    let title = if s.services.iter().any(|v| v.hbone > 0) {
        "Istio services (named by the SNI, or by the host of HBONE's CONNECT)"
    } else {
        "Istio services (named by the SNI)"
    };
    write_servers(out, title, &s.services, 0, true, limit)?;
    // Errors are not repeated here: each was written once, on stderr, when it happened.
    write_expectations(out, s, limit)
}

/// UDP servers named in the table summary; `--json` lists up to 1,000.
const MAX_TABLE_UDP: usize = 5;

/// Servers listed in the table summary; `--json` lists them all.
const MAX_TABLE_SERVERS: usize = 50;

/// Writes the per-server (or per-service) verdicts.
fn write_servers(
    out: &mut dyn Write,
    title: &str,
    list: &[crate::mesh::ServerVerdict],
    not_listed: u64,
    services: bool,
    limit: Option<usize>,
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
                (v.plaintext_refused + v.tls_failed).to_string(),
                v.legs.to_string(),
                v.reading.clone(),
            ]
        })
        .collect();
    let mut widths = head.map(|h| h.len());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut l = String::from("  ");
        let last = cells.len() - 1;
        for (i, c) in cells[..last].iter().enumerate() {
            if services && (i == 1 || i == 7) {
                continue;
            }
            l.push_str(c);
            super::push_spaces(&mut l, widths[i] - c.chars().count() + 2);
        }
        // The reading wraps under itself when a width limit would cut it (or, with too little
        // room beside the counts, on lines of its own).
        let start = l.chars().count();
        match limit {
            Some(total) if start + width(&cells[last]) > total => {
                let (indent, first_room) = if total.saturating_sub(start) >= 24 {
                    (start, total - start)
                } else {
                    writeln!(out, "{}", l.trim_end())?;
                    l = " ".repeat(4);
                    (4, total.saturating_sub(4).max(1))
                };
                let (head, mut rest) = split_line(&cells[last], first_room);
                l.push_str(head);
                writeln!(out, "{}", l.trim_end())?;
                while !rest.is_empty() {
                    let (head, tail) = split_line(rest, total.saturating_sub(indent).max(1));
                    writeln!(out, "{}{}", " ".repeat(indent), head.trim_start())?;
                    rest = tail;
                }
                Ok(())
            }
            _ => {
                l.push_str(&cells[last]);
                writeln!(out, "{}", l.trim_end())
            }
        }
    };
    line(out, &head.map(String::from))?;
    for (r, v) in rows.iter().zip(list) {
        line(out, r)?;
        // --mesh-config: the configured policy under the reading (escaped when made).
        if let Some(p) = &v.policy {
            write_detail(out, &mut String::new(), 4, &format!("policy: {}", p.text), limit)?;
        }
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
pub(super) fn flows(n: u64) -> String {
    plural(n, "flow")
}

/// `1 packet`, `0 packets`, `3 packets`.
pub(super) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Writes the outcome of `--expect mtls` / `--fail-on-plaintext`, if either was given.
pub(crate) fn write_expectations(out: &mut dyn Write, s: &Summary, limit: Option<usize>) -> io::Result<()> {
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
        let text = format!("flow {} {} -> {}: {}", v.id, v.client, v.server, v.reason);
        write_detail(out, &mut String::new(), 2, &text, limit)?;
    }
    if e.failed as usize > MAX_PRINTED_VIOLATIONS {
        writeln!(out, "  … {} more (--json lists up to 1,000)", e.failed as usize - MAX_PRINTED_VIOLATIONS)?;
    }
    Ok(())
}

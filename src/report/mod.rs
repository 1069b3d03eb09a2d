//! Reports: the per-flow record ([`FlowReport`]) and run summary ([`Summary`]) that every output
//! format reads, the human table ([`table`]) and JSON Lines ([`json`]). The mesh readings they
//! show are worked out by [`crate::mesh`]. The only stage that writes to stdout; the schema is
//! docs/json.md.

pub mod json;
pub mod progress;
pub mod schema;
pub mod table;

use crate::classify::http::HttpReport;
use crate::classify::tls::TlsReport;
use crate::classify::{Classified, H2cVia};
use crate::flow::client::decide_client;
use crate::flow::{EndReason, FlowMeta};
use crate::mesh;
use crate::sanitize::WireBytes;
use crate::wire::{Side, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Client/server pair of counters.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PerRole {
    /// Sent by the client.
    pub client: u64,
    /// Sent by the server.
    pub server: u64,
}

/// First bytes of each side of an unrecognised flow.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    /// Client's first bytes.
    pub client: WireBytes,
    /// Server's first bytes.
    pub server: WireBytes,
}

/// One TCP flow, as reported (the `flow` object of docs/json.md).
#[derive(Clone, Debug)]
pub struct FlowReport {
    /// Always "flow" (the JSON `type`).
    pub kind: &'static str,
    /// `ended` (final facts, one per flow), or `classified` (live capture only: facts known when
    /// the handshake or first request was seen; an `ended` line with the same id follows).
    pub event: &'static str,
    /// Order of first packet over the whole run, from 1.
    pub id: u64,
    /// Capture file the flow was read from (one string shared by all its flows).
    pub source: Arc<str>,
    /// Client endpoint, written `ip:port` or `[ipv6]:port` ([`EndpointText`]). Kept as an
    /// address, and the timestamps as timestamps, until written: as strings, they were four
    /// allocations and copies per flow.
    pub client: SocketAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// The destination the client dialled, when an iptables REDIRECT (Istio's 15001) sent the
    /// connection to this loopback server instead.
    pub original_dst: Option<SocketAddr>,
    /// How the client was decided: syn, synack, client_hello, http_request, port, first_packet.
    pub client_by: &'static str,
    /// First packet, written RFC 3339 UTC ([`Timestamp::push_rfc3339`]).
    pub first_ts: Timestamp,
    /// Last packet.
    pub last_ts: Timestamp,
    /// Timestamps are written with nanoseconds (else microseconds).
    pub nanos: bool,
    /// Seconds from first to last packet.
    pub duration: f64,
    /// Packets per role.
    pub packets: PerRole,
    /// TCP payload bytes per role.
    pub bytes: PerRole,
    /// tls, http, h2c or unknown.
    pub protocol: &'static str,
    /// TLS facts.
    pub tls: Option<TlsReport>,
    /// HTTP/1 facts.
    pub http: Option<HttpReport>,
    /// Istio's signals: parsed SNI, sidecar ALPN tokens, Istio port role.
    pub istio: Option<crate::classify::istio::IstioReport>,
    /// "prior_knowledge" or "upgrade" when protocol is h2c.
    pub h2c: Option<&'static str>,
    /// First bytes of each side, for unknown flows.
    pub preview: Option<Preview>,
    /// How the flow ended: closed, reset, idle, evicted, capture_end, reused.
    pub end: &'static str,
    /// Which side sent a TCP RST: client, server, both; null when none did.
    pub reset_by: Option<&'static str>,
    /// Anomalies (docs/json.md lists them).
    pub flags: Vec<&'static str>,
    /// Parser warnings.
    pub warnings: Vec<String>,
}

/// Formats an endpoint as `ip:port` / `[ipv6]:port`.
pub fn endpoint(a: SocketAddr) -> String {
    EndpointText::new(a).as_str().to_string()
}

/// An endpoint as text, `ip:port` / `[ipv6]:port`, on the stack (no allocation).
pub struct EndpointText {
    buf: [u8; 64],
    len: usize,
}

impl EndpointText {
    /// Formats `a`. IPv4 by hand: `to_string` goes through `fmt` (padding support, a dynamic
    /// writer), twice per flow. IPv6 keeps std's (it compresses zero runs; rarer, so writing it
    /// by hand did not pay: bench/RESULTS.md); the longest, with a scope id, is 58 bytes.
    pub fn new(a: SocketAddr) -> EndpointText {
        let mut t = EndpointText { buf: [0; 64], len: 0 };
        match a {
            SocketAddr::V4(v4) => {
                for (i, o) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.decimal(o.into());
                }
                t.push(b':');
                t.decimal(v4.port().into());
            }
            SocketAddr::V6(_) => {
                use std::io::Write;
                let mut w = &mut t.buf[..];
                let _ = write!(w, "{a}");
                t.len = 64 - w.len();
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `v` in decimal, no padding.
    fn decimal(&mut self, mut v: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.push(d);
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl FlowReport {
    /// Builds the report of a finished flow.
    pub fn build(meta: FlowMeta, c: Classified, source: &Arc<str>, nanos: bool) -> FlowReport {
        let (client, client_by) = decide_client(&meta, c.client_hint);
        let (ci, si) = (client.idx(), client.other().idx());
        let mut flags = Vec::new();
        let st = &meta.stats;
        let any = |f: &dyn Fn(&crate::flow::reassembly::HalfStats) -> bool| f(&st[0]) || f(&st[1]);
        if meta.syn_from.is_none() && meta.synack_from.is_none() {
            flags.push("midstream");
        }
        if any(&|s| s.truncated) {
            flags.push("truncated");
        }
        if any(&|s| s.gaps > 0) {
            flags.push("gap");
        }
        if any(&|s| s.retransmitted > 0) {
            flags.push("retransmission");
        }
        if any(&|s| s.out_of_order > 0) {
            flags.push("out_of_order");
        }
        if any(&|s| s.overlap_conflicts > 0) {
            flags.push("overlap_conflict");
        }
        if any(&|s| s.queue_overflow) || meta.memory_limited {
            flags.push("memory_limited");
        }
        if meta.rst[0] || meta.rst[1] {
            flags.push("reset");
        }
        let end = match meta.end {
            EndReason::Closed if meta.rst[0] || meta.rst[1] => "reset",
            EndReason::Closed => "closed",
            EndReason::Idle => "idle",
            EndReason::Evicted => {
                flags.push("evicted");
                "evicted"
            }
            EndReason::CaptureEnd => "capture_end",
            EndReason::Reused => "reused",
        };
        let mut warnings = c.warnings;
        let [pa, pb] = c.preview;
        let preview = (c.protocol == "unknown" && !(pa.is_empty() && pb.is_empty())).then(|| {
            let (pc, ps) = if client == Side::A { (pa, pb) } else { (pb, pa) };
            Preview { client: WireBytes::new(&pc), server: WireBytes::new(&ps) }
        });
        let istio = mesh::facts::istio(&meta, client, c.tls.as_ref(), c.http.as_ref());
        let reset_by = match (meta.rst[ci], meta.rst[si]) {
            (true, true) => Some("both"),
            (true, false) => Some("client"),
            (false, true) => Some("server"),
            (false, false) => None,
        };
        let mut tls = c.tls;
        if let Some(t) = &mut tls {
            mesh::facts::tls_flags(
                t,
                istio.as_ref(),
                meta.rst[si] && meta.bytes[si] == 0,
                &mut flags,
                &mut warnings,
            );
        }
        FlowReport {
            kind: "flow",
            istio,
            event: "ended",
            id: meta.order,
            source: Arc::clone(source),
            client: meta.endpoints[ci],
            server: meta.endpoints[si],
            original_dst: meta.original_dst,
            client_by,
            first_ts: meta.first_ts,
            last_ts: meta.last_ts,
            nanos,
            duration: ((meta.last_ts.as_f64() - meta.first_ts.as_f64()).max(0.0) * 1e6).round() / 1e6,
            packets: PerRole { client: meta.packets[ci], server: meta.packets[si] },
            bytes: PerRole { client: meta.bytes[ci], server: meta.bytes[si] },
            protocol: c.protocol,
            tls,
            http: c.http,
            h2c: c.h2c.map(|v| match v {
                H2cVia::PriorKnowledge => "prior_knowledge",
                H2cVia::Upgrade => "upgrade",
            }),
            preview,
            end,
            reset_by,
            flags,
            warnings,
        }
    }
}

/// Totals over the run (the `summary` object of docs/json.md).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Always "summary".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Capture files read.
    pub files: Vec<String>,
    /// Packets read.
    pub packets: u64,
    /// Captured bytes read.
    pub bytes: u64,
    /// TCP flows reported.
    pub flows: u64,
    /// Flows per protocol.
    pub by_protocol: BTreeMap<&'static str, u64>,
    /// TLS flows per mTLS verdict.
    pub by_mtls: BTreeMap<&'static str, u64>,
    /// Packets that were not TCP, by kind.
    pub non_tcp: BTreeMap<&'static str, u64>,
    /// Link types skipped, by name.
    pub skipped_link_types: BTreeMap<String, u64>,
    /// IPv4 datagrams reassembled from fragments / dropped incomplete.
    pub ip_fragments: FragmentCounts,
    /// Flows evicted because the flow table was full.
    pub evicted_flows: u64,
    /// Packets of already reported (closed) flows that arrived late and were dropped.
    pub late_packets: u64,
    /// libpcap's counters of a live capture, null for files.
    pub capture_stats: Option<CaptureStats>,
    /// Flows with a certificate expired, not yet valid, or expiring within `--cert-warn`.
    pub cert_warnings: u64,
    /// Per server (`ip:port`): counts per kind of flow and a one-line reading, most flows first.
    pub servers: Vec<mesh::ServerVerdict>,
    /// The same per Istio service named by the SNI (`reviews.default:9080`).
    pub services: Vec<mesh::ServerVerdict>,
    /// Servers beyond the first 10,000 (counted in the totals, not listed).
    pub servers_not_listed: u64,
    /// Results of `--expect mtls` / `--fail-on-plaintext`; null when neither was given.
    pub expectations: Option<mesh::Expectations>,
    /// Errors that stopped reading a file (partial results are still reported).
    pub errors: Vec<String>,
    /// Per-server tallies until [`Summary::close`].
    #[serde(skip)]
    pub book: mesh::MeshBook,
}

/// libpcap's counters at the end of a live capture.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CaptureStats {
    /// Packets received by the filter.
    pub received: u64,
    /// Packets dropped by the kernel (buffer full: raise `-B`).
    pub dropped: u64,
    /// Packets dropped by the interface or driver.
    pub if_dropped: u64,
}

/// IPv4 reassembly counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FragmentCounts {
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped (timeout, limits, never completed).
    pub dropped: u64,
}

impl Summary {
    /// Counts one reported flow.
    pub fn count_flow(&mut self, f: &FlowReport, mesh: &mesh::MeshConfig) {
        self.flows += 1;
        self.book.count(f, mesh);
        if f.flags.iter().any(|fl| fl.starts_with("cert_")) {
            self.cert_warnings += 1;
        }
        *self.by_protocol.entry(f.protocol).or_default() += 1;
        if let Some(t) = &f.tls {
            *self.by_mtls.entry(t.mtls).or_default() += 1;
        }
    }
}

impl Summary {
    /// Fills the per-server verdicts and expectation results once every flow is counted.
    pub fn close(&mut self, mesh: &mesh::MeshConfig) {
        let (servers, services, not_listed, expect) = std::mem::take(&mut self.book).finish(mesh);
        self.servers = servers;
        self.services = services;
        self.servers_not_listed = not_listed;
        self.expectations = expect;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_text_is_std_display() {
        let ports = [0u16, 1, 9, 10, 99, 100, 443, 9080, 10000, 65535];
        let octets = [0u8, 1, 9, 10, 99, 100, 127, 199, 200, 255];
        for &a in &octets {
            for &b in &octets {
                for &p in &ports {
                    let addr = SocketAddr::from(([a, b, 255 - a, b / 2], p));
                    assert_eq!(endpoint(addr), addr.to_string());
                }
            }
        }
        let v6: SocketAddr = "[fd00::1:2]:8443".parse().unwrap();
        assert_eq!(endpoint(v6), "[fd00::1:2]:8443");
        // The longest text: a full address with the largest scope id and port.
        let long = std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            65535,
            0,
            u32::MAX,
        );
        assert_eq!(endpoint(long.into()), long.to_string());
        assert_eq!(endpoint(long.into()).len(), 58);
    }

    #[test]
    fn ipv6_endpoint_text_is_std_display_on_random_addresses() {
        let mut rng = crate::wire::xorshift(11);
        for _ in 0..50_000 {
            // Groups zero half the time (runs of every length and place), small or full
            // otherwise; some IPv4-mapped and IPv4-compatible addresses; scope ids now and then.
            let mut g = [0u16; 8];
            for x in &mut g {
                *x = match rng() % 4 {
                    0 | 1 => 0,
                    2 => (rng() % 16) as u16,
                    _ => rng() as u16,
                };
            }
            match rng() % 8 {
                0 => g[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0xffff]),
                1 => g[..6].copy_from_slice(&[0; 6]),
                _ => {}
            }
            let scope = if rng().is_multiple_of(4) { rng() as u32 } else { 0 };
            let a = std::net::SocketAddrV6::new(std::net::Ipv6Addr::from(g), rng() as u16, 0, scope);
            assert_eq!(endpoint(a.into()), a.to_string(), "{g:x?}");
        }
    }
}

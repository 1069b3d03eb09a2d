//! Reports: the run summary ([`Summary`]) and the renderings of the per-flow record
//! ([`crate::record::FlowReport`]) and the summary: the human table ([`table`]) and JSON Lines
//! ([`json`]). Renders only: the facts, mesh readings included, are worked out before (by
//! [`crate::mesh`]). The only stage that writes to stdout; the schema is docs/json.md.

pub(crate) mod html;
pub mod json;
pub(crate) mod merged;
pub mod metrics;
pub(crate) mod progress;
pub mod schema;
pub mod table;

use crate::classify::tls::MtlsVerdict;
use crate::classify::Protocol;
use crate::mesh;
use serde::Serialize;
use std::collections::BTreeMap;

/// Totals over the run (the `summary` object of docs/json.md).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// The JSON `type`: always "summary".
    #[serde(rename = "type")]
    pub(crate) kind: SummaryType,
    /// Capture files read.
    pub(crate) files: Vec<String>,
    /// Packets read.
    pub(crate) packets: u64,
    /// Captured bytes read.
    pub(crate) bytes: u64,
    /// TCP flows reported.
    pub(crate) flows: u64,
    /// Flows per protocol (in the order of the text: [`Protocol`]'s order).
    pub(crate) by_protocol: BTreeMap<Protocol, u64>,
    /// TLS flows per mTLS verdict (in the order of the text: [`MtlsVerdict`]'s order).
    pub(crate) by_mtls: BTreeMap<MtlsVerdict, u64>,
    /// Packets that were not TCP, by kind.
    pub(crate) non_tcp: BTreeMap<&'static str, u64>,
    /// UDP flows per server, most flows first (no mesh proxies UDP), at most
    /// [`MAX_UDP_SERVERS`].
    pub(crate) udp_servers: Vec<crate::flow::udp::UdpServer>,
    /// UDP servers beyond those listed.
    pub(crate) udp_servers_not_listed: u64,
    /// UDP datagrams of flows not followed (more than `MAX_UDP_FLOWS` endpoint pairs).
    pub(crate) udp_untracked_packets: u64,
    /// The UDP flows of every input, listed at the end.
    #[serde(skip)]
    pub(crate) udp_book: crate::flow::udp::UdpBook,
    /// Link types skipped, by name.
    pub(crate) skipped_link_types: BTreeMap<String, u64>,
    /// IPv4 datagrams reassembled from fragments / dropped incomplete.
    pub(crate) ip_fragments: FragmentCounts,
    /// Flows evicted because the flow table was full.
    pub(crate) evicted_flows: u64,
    /// Packets of already reported (closed) flows that arrived late and were dropped.
    pub(crate) late_packets: u64,
    /// libpcap's counters of a live capture, null for files.
    pub(crate) capture_stats: Option<CaptureStats>,
    /// Flows with a certificate expired, not yet valid, or expiring within `--cert-warn`.
    pub(crate) cert_warnings: u64,
    /// The pod's data plane: `ambient`, `sidecar` (named by `--mesh-mode`, else shown by the
    /// flows), `both`, or null.
    pub(crate) mesh_mode: Option<&'static str>,
    /// Per server (`ip:port`): counts per kind of flow and a one-line reading, most flows first.
    pub(crate) servers: Vec<mesh::ServerVerdict>,
    /// The same per Istio service named by the SNI (`reviews.default:9080`).
    pub(crate) services: Vec<mesh::ServerVerdict>,
    /// Servers beyond the first 10,000 (counted in the totals, not listed).
    pub(crate) servers_not_listed: u64,
    /// Results of `--expect mtls` / `--fail-on-plaintext`; null when neither was given.
    pub(crate) expectations: Option<mesh::Expectations>,
    /// Errors that stopped reading a file (partial results are still reported).
    pub(crate) errors: Vec<String>,
}

/// The `type` of the summary line, written `summary` (a flow line's is written `flow`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SummaryType;

impl Serialize for SummaryType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("summary")
    }
}

/// libpcap's counters at the end of a live capture.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct CaptureStats {
    /// Packets received by the filter.
    pub(crate) received: u64,
    /// Packets dropped by the kernel (buffer full: raise `-B`).
    pub(crate) dropped: u64,
    /// Packets dropped by the interface or driver.
    pub(crate) if_dropped: u64,
}

/// IPv4 reassembly counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct FragmentCounts {
    /// Datagrams completed.
    pub(crate) reassembled: u64,
    /// Datagrams dropped (timeout, limits, never completed).
    pub(crate) dropped: u64,
}

/// UDP servers listed in the summary.
pub(crate) const MAX_UDP_SERVERS: usize = 1_000;

impl Summary {
    /// Lists the UDP servers of every input (at the end of the run).
    pub(crate) fn close_udp(&mut self) {
        let (list, left) = self.udp_book.servers(MAX_UDP_SERVERS);
        self.udp_servers = list;
        self.udp_servers_not_listed = left;
        self.udp_untracked_packets = self.udp_book.untracked;
    }

    /// Counts one reported flow in the totals (the mesh stage counts it per server:
    /// [`mesh::MeshBook`]).
    pub(crate) fn count_flow(&mut self, f: &mesh::readings::CountRecord) {
        self.flows += 1;
        if f.any_cert {
            self.cert_warnings += 1;
        }
        *self.by_protocol.entry(f.protocol).or_default() += 1;
        if let Some(m) = f.mtls {
            *self.by_mtls.entry(m).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keys_are_ordered_as_their_text() {
        // The maps are written in key order: it must be the order of the text, as when they
        // were keyed by it.
        let sorted = |v: Vec<&'static str>| {
            let mut s = v.clone();
            s.sort_unstable();
            assert_eq!(v, s);
        };
        sorted(Protocol::ALL.iter().map(|p| p.as_str()).collect());
        sorted(MtlsVerdict::ALL.iter().map(|m| m.as_str()).collect());
    }
}

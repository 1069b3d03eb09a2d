//! The mesh stage, between classify and report: the meaning of finished flows across the run.
//! Which leg of the mesh a flow is ([`legs`]), its Istio facts, TLS failure flags and sidecar
//! evidence ([`facts`]), certificate lifetime warnings (`--cert-warn`, [`certs`]): these
//! [`annotate`] adds to each record as it is built. Then the upgrade of a TLS
//! 1.3 `likely` verdict by an `x-forwarded-client-cert` header on the matching Envoy → app leg
//! ([`xfcc`]), per-server and per-Istio-service verdicts ([`readings`]), and the
//! `--expect mtls` / `--fail-on-plaintext` checks behind exit code 1 ([`expect`]). Works on
//! [`FlowReport`]s ([`crate::record`]); docs/istio.md explains every rule.

pub(crate) mod certs;
pub(crate) mod expect;
pub(crate) mod facts;
pub mod graph;
pub(crate) mod legs;
pub(crate) mod policy;
pub(crate) mod readings;
pub(crate) mod xfcc;

pub(crate) use certs::{cert_warnings, human_duration};
pub(crate) use expect::Expectations;
pub use legs::MeshMode;
pub(crate) use readings::{MeshBook, ServerVerdict};
pub(crate) use xfcc::{may_confirm, XfccLegs};

use crate::record::FlowReport;

/// Adds the mesh facts of one flow to its record, just built: Istio facts, TLS failure flags,
/// sidecar evidence ([`facts`]), and certificate warnings within `cert_warn_secs` ([`certs`]).
pub fn annotate(f: &mut FlowReport, cert_warn_secs: i64, mode: MeshMode) {
    prefetch_messages(f);
    facts::add(f, mode);
    cert_warnings(f, cert_warn_secs);
}

/// Messages of each kind [`prefetch_messages`] fetches the parts of: the first ones are written
/// first, and a flow with a thousand recorded messages would flood the cache.
pub(crate) const PREFETCH_MESSAGES: usize = 16;

/// Asks for the parts of the flow's first recorded messages that live in their own allocations
/// (the HTTP/2 facts, a long path or host, the header text), which the JSON writer reads after the
/// facts and the flow's own fields: an HTTP/2 session's messages were stored as they came, and
/// are cold when the flow ends (the report pipeline's prefetch, [`crate::classify`], covers
/// HTTP/1 only). Their misses then overlap instead of each waiting in turn in the writer:
/// perf on the mesh 1 GB bench (--json --threads 1), json::http + header_fields + facts::add
/// 5.4% -> 4.4% of the samples (the first touches of the host, the HTTP/2 facts and the header
/// text were most of json::http's); 30 interleaved runs 1.24 -> 1.20 s (user+sys, noisy: a
/// loaded machine). cachegrind does not model prefetches: its cycles~ only sees the loop,
/// mesh 30 MB 95.1 M -> 95.4 M.
fn prefetch_messages(f: &FlowReport) {
    use crate::wire::prefetch;
    let Some(h) = &f.http else { return };
    for r in h.requests.iter().take(PREFETCH_MESSAGES) {
        if let Some(h2) = &r.h2 {
            prefetch(&**h2);
        }
        prefetch(r.path());
        if let Some(host) = r.host() {
            prefetch(host);
        }
        r.headers.prefetch();
    }
    for a in h.responses.iter().take(PREFETCH_MESSAGES) {
        if let Some(h2) = &a.h2 {
            prefetch(&**h2);
        }
        a.headers.prefetch();
    }
}

/// Requests a thinned report keeps ([`thin_for_count`]): [`policy::peer_namespace`] reads the
/// headers of the first four.
pub(crate) const COUNTED_REQUESTS: usize = 4;

/// Drops what counting a flow (`Tally::count`: the summary, the per-server readings, the
/// expectations, `--metrics`, the graph) does not read, once its output line or row is
/// rendered: the responses, and the requests after the first [`COUNTED_REQUESTS`] and the
/// first with a Host ([`policy::first_host`]; [`expect`] reads the first request line). The
/// totals stay. A rendered report waits for its turn to be written (with `--threads`, for
/// every shard to pass its end); its messages, about half of its memory, were held that long
/// twice, once as its line.
pub(crate) fn thin_for_count(f: &mut FlowReport) {
    let Some(h) = f.http.as_mut() else { return };
    let host = h.requests.iter().position(|r| r.host_text.is_some()).map_or(0, |i| i + 1);
    h.requests.truncate(host.max(COUNTED_REQUESTS));
    for r in h.requests.iter_mut().skip(COUNTED_REQUESTS) {
        r.clear_headers();
        r.h2 = None;
    }
    h.requests.shrink_to_fit();
    h.responses = Vec::new();
}

/// Server ports exempt from `--expect mtls` and `--fail-on-plaintext` by default: Istio's
/// health-probe ports (15020 merged app probes, 15021 sidecar health), probed in plaintext by
/// the kubelet from the node, and 15090 (Envoy's Prometheus metrics, scraped in plaintext).
pub(crate) const DEFAULT_EXEMPT_PORTS: [u16; 3] = [15020, 15021, 15090];

/// Settings of the mesh checks.
#[derive(Clone, Debug)]
pub(crate) struct MeshConfig {
    /// Warn about certificates that expire within this many seconds of the capture (0: only
    /// expired / not yet valid ones).
    pub(crate) cert_warn_secs: i64,
    /// `--expect mtls`: every checked flow must be mutual TLS.
    pub(crate) expect_mtls: bool,
    /// `--fail-on-plaintext`: no checked flow may carry plaintext HTTP.
    pub(crate) fail_on_plaintext: bool,
    /// Server ports never checked.
    pub(crate) exempt_ports: Vec<u16>,
    /// Also check loopback legs (Envoy ↔ app), plaintext by design.
    pub(crate) check_loopback: bool,
    /// The pod's data plane (`--mesh-mode`).
    pub(crate) mode: MeshMode,
    /// `--mesh-config` files (read by the run, [`policy::load`]); the readings then gather
    /// each server's policy evidence.
    pub(crate) policy_files: Vec<std::path::PathBuf>,
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            cert_warn_secs: 3600,
            expect_mtls: false,
            fail_on_plaintext: false,
            exempt_ports: DEFAULT_EXEMPT_PORTS.to_vec(),
            check_loopback: false,
            mode: MeshMode::Auto,
            policy_files: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::HttpSession;
    use crate::classify::Protocol;
    use crate::flow::FlowMeta;
    use crate::wire::Side;
    use std::net::SocketAddr;

    /// A plaintext HTTP flow carrying `msgs` (client side A), annotated as `report_flow` does.
    fn http_flow(msgs: &[(Side, &[u8])]) -> FlowReport {
        let mut h = HttpSession::new(crate::classify::http::testutil::cfg());
        for &(side, m) in msgs {
            h.feed(side, m);
        }
        let (client, server) =
            (SocketAddr::from(([10, 0, 0, 9], 40_000)), SocketAddr::from(([10, 0, 0, 2], 9080)));
        let meta = FlowMeta::closed_for_test(client, server, (1, 2), 1);
        let mut f = FlowReport::for_test(meta, Protocol::Http, None, Some(h.finish()));
        annotate(&mut f, 0, MeshMode::Auto);
        f
    }

    #[test]
    fn a_thinned_report_counts_as_the_whole_one() {
        // Peer metadata (namespace "default") on the second request, a Host only on the sixth.
        let pm = "GET /b HTTP/1.1\r\nx-envoy-peer-metadata: ChwKBE5BTUUSFBoScHJvZHVjdHBhZ2UtdjEtYWJjChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0\r\n\r\n";
        let plain = |p: &str| format!("GET /{p} HTTP/1.1\r\nx-request-id: {p}\r\n\r\n");
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".as_slice();
        let (a, c, d, e) = (plain("a"), plain("c"), plain("d"), plain("e"));
        let hosted = "GET /f HTTP/1.1\r\nhost: reviews.default:9080\r\n\r\n";
        let reqs = [a.as_str(), pm, c.as_str(), d.as_str(), e.as_str(), hosted, "GET /g HTTP/1.1\r\n\r\n"];
        let mut msgs = Vec::new();
        for r in &reqs {
            msgs.push((Side::A, r.as_bytes()));
            msgs.push((Side::B, ok));
        }
        let whole = http_flow(&msgs);
        let mut thin = whole.clone();
        thin_for_count(&mut thin);
        let (w, t) = (whole.http.as_ref().unwrap(), thin.http.as_ref().unwrap());
        assert_eq!((w.requests.len(), w.responses.len()), (7, 7));
        assert_eq!((t.requests.len(), t.responses.len()), (6, 0));
        assert_eq!((t.requests_total, t.responses_total), (7, 7));
        assert_eq!(policy::peer_namespace(&whole), Some("default"));
        assert_eq!(policy::peer_namespace(&thin), Some("default"));
        assert_eq!(policy::first_host(&whole), Some("reviews.default:9080"));
        assert_eq!(policy::first_host(&thin), Some("reviews.default:9080"));
        assert_eq!(thin.http.as_ref().unwrap().requests[0].path(), b"/a");
        // Everything the counting reads, through the summary and the readings.
        let counted = |f: &FlowReport| {
            let cfg = MeshConfig { expect_mtls: true, ..MeshConfig::default() };
            let mut book = MeshBook::default();
            book.count(f, &cfg);
            let mut s = crate::report::Summary::default();
            s.count_flow(&readings::CountRecord::of(f));
            format!("{:?} {:?}", book.finish(&cfg), s.by_protocol)
        };
        assert_eq!(counted(&thin), counted(&whole));
    }
}

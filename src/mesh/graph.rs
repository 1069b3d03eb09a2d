//! The merged picture of many captures (`tlspeek report`): who talks to whom, and how. Nodes
//! are workloads and services; an edge joins a client node to a server node and counts its
//! flows per verdict class ([`EdgeClass`]), with their first and last times, the distinct
//! reasons, and a few example flows. Pure data: [`Graph::add`] takes one merged [`Flow`] (read
//! back from tlspeek's JSON Lines and deduplicated by the caller), [`Graph::finish`] gives the
//! sorted lists that the table, the JSON `report` object and an HTML renderer draw.
//!
//! Naming (docs/json.md, "report"): a client is its SPIFFE identity, else its IP address (no
//! port: ephemeral ports would make one node per connection), else, for a loopback leg inside a
//! pod, the pod's capture (`pod <source>`); a server is its Istio service (the SNI, or the
//! services of an HBONE connection's CONNECT streams), else its `ip:port` (a REDIRECTed
//! connection's original destination). Memory is bounded: at most [`MAX_NODES`] nodes,
//! [`MAX_EDGES`] edges, [`MAX_EXAMPLES`] example flows and [`MAX_REASONS`] reasons per edge;
//! flows beyond them are counted in `edges_not_listed`'s flows, never dropped silently.

use crate::classify::istio::Leg;
use crate::classify::tls::MtlsVerdict;
use crate::classify::Protocol;
use crate::wire::{KeyedMap, Timestamp};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// Nodes kept; flows between nodes beyond these are counted in [`Graph::flows_not_listed`].
pub const MAX_NODES: usize = 10_000;
/// Edges kept.
pub const MAX_EDGES: usize = 50_000;
/// Example flows kept per edge (the first ones met).
pub const MAX_EXAMPLES: usize = 20;
/// Example flows kept over all edges (each costs about 100 bytes until written).
pub const MAX_TOTAL_EXAMPLES: usize = 200_000;
/// Distinct verdict reasons kept per edge.
pub const MAX_REASONS: usize = 8;
/// Characters of a reason kept.
const MAX_REASON_CHARS: usize = 300;

/// One flow as the report merges it: the facts of a `flow` line of tlspeek's JSON Lines that
/// the per-server readings and the graph need (docs/json.md, "report").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flow {
    /// The flow's `id` in its capture.
    pub id: u64,
    /// Its `source` (the capture file), else the JSON Lines file it was read from.
    pub source: Arc<str>,
    /// Client endpoint.
    pub client: Option<SocketAddr>,
    /// Server endpoint.
    pub server: Option<SocketAddr>,
    /// The destination a REDIRECTed connection dialled.
    pub original_dst: Option<SocketAddr>,
    /// Captured on a loopback interface.
    pub on_loopback: Option<bool>,
    /// First packet.
    pub first_ts: Option<Timestamp>,
    /// Last packet.
    pub last_ts: Option<Timestamp>,
    /// The `protocol`.
    pub(crate) protocol: Option<Protocol>,
    /// `tls.mtls`; None without TLS.
    pub(crate) mtls: Option<MtlsVerdict>,
    /// `tls.mtls_reason`.
    pub mtls_reason: Option<String>,
    /// The verdict was read from the handshake decrypted with a key log.
    pub proven_by_keylog: bool,
    /// `tls.version`.
    pub tls_version: Option<String>,
    /// A fatal TLS alert or a refused handshake (flags `handshake_failed`, `handshake_refused`).
    pub handshake_failed: bool,
    /// ... refused by the server (no ServerHello).
    pub handshake_refused: bool,
    /// The first fatal cleartext alert: who sent it (`client`/`server`) and its name.
    pub fatal_alert: Option<(String, String)>,
    /// A certificate flag was set.
    pub cert_warning: bool,
    /// HTTP requests and responses in all.
    pub http_requests: u64,
    /// ... responses.
    pub http_responses: u64,
    /// The server sent a TCP RST.
    pub reset_by_server: bool,
    /// The client sent one.
    pub reset_by_client: bool,
    /// Payload bytes sent by the client and by the server.
    pub bytes: (u64, u64),
    /// `istio.leg`; None when the flow has no `istio` object.
    pub(crate) leg: Option<Leg>,
    /// `istio.mode`.
    pub(crate) mode: Option<crate::classify::istio::Mode>,
    /// `istio.sni` as parsed.
    pub(crate) sni: Option<crate::classify::istio::IstioSni>,
    /// Services named by the CONNECT streams of an HBONE connection (`forwarded: host=`).
    pub hbone_services: Vec<String>,
    /// `istio.client_identity.uri`.
    pub client_identity: Option<String>,
    /// `istio.server_identity.uri`.
    pub server_identity: Option<String>,
    /// The requests carried Envoy's headers or peer metadata (a client sidecar sent them).
    pub from_sidecar: bool,
    /// The first request's Host (`http.requests[].host`), for `--mesh-config`: a mesh client's
    /// Host names the server's service (as `policy::first_host` reads it).
    pub host: Option<String>,
    /// `istio.peer_metadata.NAMESPACE` when a request carried `x-envoy-peer-metadata`: the
    /// client's namespace, for `--mesh-config` (as `policy::peer_namespace` reads it).
    pub peer_namespace: Option<String>,
}

impl Flow {
    /// The facts of a record built by a capture run (for a graph of an `-r`/`-i` run; `tlspeek
    /// report` builds its flows from JSON lines instead, with the same values).
    pub fn from_report(f: &crate::record::FlowReport) -> Flow {
        use crate::classify::tls::Confirmation;
        use crate::record::Flag;
        let tls = f.tls.as_ref();
        let istio = f.istio.as_ref();
        let text = |b: &crate::sanitize::WireBytes| String::from_utf8_lossy(b.as_bytes()).into_owned();
        let mut hbone_services: Vec<String> = Vec::new();
        for t in istio.iter().flat_map(|i| i.hbone.iter().flatten()) {
            let Some(host) = &t.service else { continue };
            let host = text(host);
            let name = host.strip_suffix(".svc.cluster.local").unwrap_or(&host).to_string();
            if !hbone_services.contains(&name) && hbone_services.len() < 8 {
                hbone_services.push(name);
            }
        }
        Flow {
            id: f.id,
            source: Arc::clone(&f.source),
            client: Some(f.client),
            server: Some(f.server),
            original_dst: f.original_dst,
            on_loopback: f.on_loopback,
            first_ts: Some(f.first_ts),
            last_ts: Some(f.last_ts),
            protocol: Some(f.protocol),
            mtls: tls.map(|t| t.mtls),
            mtls_reason: tls.map(|t| t.mtls_reason.to_string()),
            proven_by_keylog: tls.is_some_and(|t| t.confirmed_by == Some(Confirmation::KeyLog)),
            tls_version: tls.and_then(|t| t.version.as_deref().map(str::to_string)),
            handshake_failed: f.flags.contains(Flag::HandshakeFailed),
            handshake_refused: f.flags.contains(Flag::HandshakeRefused),
            fatal_alert: tls
                .and_then(|t| t.fatal_alert())
                .map(|a| (a.from.as_str().to_string(), a.description.clone())),
            cert_warning: f.flags.any_cert(),
            http_requests: f.http.as_ref().map_or(0, |h| h.requests_total),
            http_responses: f.http.as_ref().map_or(0, |h| h.responses_total),
            reset_by_server: f.reset_by_server(),
            reset_by_client: matches!(
                f.reset_by,
                Some(crate::record::ResetBy::Client | crate::record::ResetBy::Both)
            ),
            bytes: (f.bytes.client, f.bytes.server),
            leg: istio.map(|i| i.leg),
            mode: istio.and_then(|i| i.mode),
            sni: istio.and_then(|i| i.sni.clone()),
            hbone_services,
            client_identity: istio.and_then(|i| i.client_identity.as_ref()).map(|i| i.uri().to_string()),
            server_identity: istio.and_then(|i| i.server_identity.as_ref()).map(|i| i.uri().to_string()),
            from_sidecar: f.from_sidecar,
            host: crate::mesh::policy::first_host(f).map(str::to_string),
            peer_namespace: crate::mesh::policy::peer_namespace(f).map(str::to_string),
        }
    }

    /// The leg, as the readings decide it when the record has no `istio` object.
    pub(crate) fn leg(&self) -> Leg {
        self.leg.unwrap_or_else(|| {
            // An unknown end counts as not loopback.
            let ip = |a: Option<SocketAddr>| a.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
            super::legs::leg_without_istio(ip(self.client), ip(self.server))
        })
    }

    /// The flow's Istio service: `reviews.default:9080` from the SNI, else the first HBONE
    /// service.
    pub fn service(&self) -> Option<String> {
        self.sni.as_ref().map(|s| s.readable()).or_else(|| self.hbone_services.first().cloned())
    }

    /// What the flow counts as on an edge.
    pub fn class(&self) -> EdgeClass {
        if self.handshake_failed || self.handshake_refused {
            return EdgeClass::Refused;
        }
        if let Some(v) = self.mtls {
            return match v {
                MtlsVerdict::Yes => EdgeClass::ProvenMtls,
                MtlsVerdict::Likely => EdgeClass::InferredMtls,
                MtlsVerdict::No | MtlsVerdict::Unlikely => EdgeClass::TlsNoClientCert,
                MtlsVerdict::Unknown => EdgeClass::Unknown,
            };
        }
        match self.protocol {
            Some(Protocol::Http)
                if self.http_requests > 0 && self.http_responses == 0 && self.reset_by_server =>
            {
                EdgeClass::Refused
            }
            Some(Protocol::Http | Protocol::H2c) => EdgeClass::Plaintext,
            _ if self.bytes.0 + self.bytes.1 == 0 => EdgeClass::Unknown,
            // Payload that is neither TLS nor HTTP: not encrypted as far as the packets show.
            _ => EdgeClass::Plaintext,
        }
    }

    /// How much the record says, to keep the richer of two records of one connection: a seen
    /// verdict over an inferred one over none, then identities, then requests, then bytes.
    pub fn richness(&self) -> (u8, u8, u64, u64) {
        let verdict = match (self.mtls, self.proven_by_keylog) {
            (Some(MtlsVerdict::Yes | MtlsVerdict::No), _) | (_, true) => 3,
            (Some(MtlsVerdict::Likely | MtlsVerdict::Unlikely), _) => 2,
            (Some(MtlsVerdict::Unknown), _) => 1,
            (None, _) => 0,
        };
        let ids = u8::from(self.client_identity.is_some()) + u8::from(self.server_identity.is_some());
        (verdict, ids, self.http_requests, self.bytes.0 + self.bytes.1)
    }
}

crate::wire::text_enum! {
    /// The verdict class of a flow on an edge (the keys of `report.edges[].verdicts`).
    pub enum EdgeClass {
        /// mTLS seen: the client's certificate (TLS ≤ 1.2), the key log, or an XFCC header.
        ProvenMtls => "proven_mtls",
        /// TLS 1.3 mTLS inferred from record sizes.
        InferredMtls => "inferred_mtls",
        /// TLS without a client certificate (`no`, `unlikely`).
        TlsNoClientCert => "tls_no_client_cert",
        /// HTTP, h2c or other payload that is not TLS.
        Plaintext => "plaintext",
        /// A TLS handshake refused or failed, or plaintext requests reset unanswered.
        Refused => "refused",
        /// TLS whose client authentication was not seen, or no payload.
        Unknown => "unknown",
    }
}

/// Flows per [`EdgeClass`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// mTLS seen.
    pub proven_mtls: u64,
    /// mTLS inferred.
    pub inferred_mtls: u64,
    /// TLS without a client certificate.
    pub tls_no_client_cert: u64,
    /// Not TLS.
    pub plaintext: u64,
    /// Refused or failed.
    pub refused: u64,
    /// Not known.
    pub unknown: u64,
}

impl Verdicts {
    fn add(&mut self, c: EdgeClass) {
        *match c {
            EdgeClass::ProvenMtls => &mut self.proven_mtls,
            EdgeClass::InferredMtls => &mut self.inferred_mtls,
            EdgeClass::TlsNoClientCert => &mut self.tls_no_client_cert,
            EdgeClass::Plaintext => &mut self.plaintext,
            EdgeClass::Refused => &mut self.refused,
            EdgeClass::Unknown => &mut self.unknown,
        } += 1;
    }

    /// The count of `c`.
    pub fn get(&self, c: EdgeClass) -> u64 {
        match c {
            EdgeClass::ProvenMtls => self.proven_mtls,
            EdgeClass::InferredMtls => self.inferred_mtls,
            EdgeClass::TlsNoClientCert => self.tls_no_client_cert,
            EdgeClass::Plaintext => self.plaintext,
            EdgeClass::Refused => self.refused,
            EdgeClass::Unknown => self.unknown,
        }
    }

    /// The class with the most flows, the worse one first on a tie (what an edge is coloured
    /// by is the caller's choice; this is a default).
    pub fn dominant(&self) -> EdgeClass {
        const WORST_FIRST: [EdgeClass; 6] = [
            EdgeClass::Plaintext,
            EdgeClass::Refused,
            EdgeClass::TlsNoClientCert,
            EdgeClass::Unknown,
            EdgeClass::InferredMtls,
            EdgeClass::ProvenMtls,
        ];
        let mut best = EdgeClass::Unknown;
        let mut n = 0;
        for c in WORST_FIRST {
            if self.get(c) > n {
                (best, n) = (c, self.get(c));
            }
        }
        best
    }
}

crate::wire::text_enum! {
    /// What a node stands for (the JSON `report.nodes[].kind`).
    pub enum NodeKind {
        /// A SPIFFE identity (`spiffe://cluster.local/ns/default/sa/sleep`): a workload.
        Identity => "identity",
        /// A client IP address without an identity.
        Address => "address",
        /// An Istio service (`reviews.default:9080`).
        Service => "service",
        /// A server `ip:port` without a service.
        Endpoint => "endpoint",
        /// The pod a capture was taken in (loopback legs inside it): `pod <source>`.
        Pod => "pod",
    }
}

/// One node of the graph.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    /// Index in [`Graph::nodes`] (edges refer to it).
    pub id: usize,
    /// Its name (see the module's naming rules).
    pub name: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// The Kubernetes namespace, when the name tells it (SPIFFE `/ns/`, a service's second
    /// label): for grouping.
    pub namespace: Option<String>,
    /// Flows it sent (as a client).
    pub flows_out: u64,
    /// Flows it received (as a server).
    pub flows_in: u64,
}

/// One example flow of an edge.
#[derive(Clone, Debug, Serialize)]
pub struct Example {
    /// Its `id` in its capture.
    pub id: u64,
    /// Its capture.
    pub source: Arc<str>,
    /// Its endpoints.
    pub client: Option<String>,
    /// ...
    pub server: Option<String>,
    /// RFC 3339.
    pub first_ts: Option<String>,
    /// RFC 3339.
    pub last_ts: Option<String>,
    /// Its [`EdgeClass`].
    pub verdict: EdgeClass,
    /// Its `tls.mtls`, when TLS.
    pub mtls: Option<&'static str>,
    /// Its `tls.mtls_reason`, or how it failed, or what it is.
    pub reason: Option<String>,
}

/// An example as kept: addresses and times as values, the reason as an index into the
/// edge's `reasons`.
#[derive(Clone, Debug)]
struct HeldExample {
    id: u64,
    source: Arc<str>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    verdict: EdgeClass,
    mtls: Option<MtlsVerdict>,
    /// Index in `reasons`; `None` when the reason was not kept ([`MAX_REASONS`]).
    reason: Option<u8>,
}

/// One edge: the flows from a client node to a server node.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// The client node's name.
    pub client: String,
    /// The server node's name.
    pub server: String,
    /// Index of the client node.
    pub client_node: usize,
    /// Index of the server node.
    pub server_node: usize,
    /// Flows (legs inside a pod included).
    pub flows: u64,
    /// Flows per verdict class (legs inside a pod excluded).
    pub verdicts: Verdicts,
    /// Loopback legs inside a pod (Envoy ↔ app, ztunnel ↔ app): plaintext by design.
    pub legs: u64,
    /// The class with the most flows.
    pub dominant: EdgeClass,
    /// First packet of its first flow.
    pub first_ts: Option<String>,
    /// Last packet of its last flow.
    pub last_ts: Option<String>,
    /// Distinct reasons of its verdicts, first met first, at most [`MAX_REASONS`].
    pub reasons: Vec<String>,
    /// The first [`MAX_EXAMPLES`] flows (while fewer than [`MAX_TOTAL_EXAMPLES`] are kept).
    pub examples: Vec<Example>,
    /// The examples until written, compact.
    #[serde(skip)]
    held: Vec<HeldExample>,
    #[serde(skip)]
    first: Option<Timestamp>,
    #[serde(skip)]
    last: Option<Timestamp>,
}

/// The merged graph, flow by flow.
#[derive(Debug, Default)]
pub struct Graph {
    node_index: KeyedMap<String, usize>,
    nodes: Vec<Node>,
    edge_index: KeyedMap<(usize, usize), usize>,
    edges: Vec<Edge>,
    /// Flows whose nodes or edge were beyond the caps.
    flows_not_listed: u64,
    /// Examples kept over all edges.
    examples: usize,
}

/// The finished graph: nodes and edges, edges with the most flows first.
#[derive(Debug, Default, Serialize)]
pub struct GraphLists {
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every edge, most flows first.
    pub edges: Vec<Edge>,
    /// Flows not on a listed edge (beyond [`MAX_NODES`] or [`MAX_EDGES`]).
    pub flows_not_listed: u64,
}

fn namespace_of_identity(uri: &str) -> Option<String> {
    crate::classify::istio::parse_spiffe(uri).and_then(|s| s.namespace().map(str::to_string))
}

impl Graph {
    /// A node's index, made the first time while there is room.
    fn node(&mut self, name: String, kind: NodeKind, namespace: Option<String>) -> Option<usize> {
        if let Some(&i) = self.node_index.get(&name) {
            return Some(i);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let id = self.nodes.len();
        self.nodes.push(Node { id, name: name.clone(), kind, namespace, flows_out: 0, flows_in: 0 });
        self.node_index.insert(name, id);
        Some(id)
    }

    /// The client node of a flow.
    fn client_node(&mut self, f: &Flow) -> Option<usize> {
        if let Some(id) = &f.client_identity {
            return self.node(id.clone(), NodeKind::Identity, namespace_of_identity(id));
        }
        let client = f.client?;
        if f.leg().in_pod() && client.ip().is_loopback() {
            return self.node(format!("pod {}", f.source), NodeKind::Pod, None);
        }
        self.node(client.ip().to_string(), NodeKind::Address, None)
    }

    /// The server node of a flow.
    fn server_node(&mut self, f: &Flow) -> Option<usize> {
        if let Some(s) = &f.sni {
            return self.node(s.readable(), NodeKind::Service, s.namespace().map(str::to_string));
        }
        if let Some(s) = f.hbone_services.first() {
            let ns = s.split('.').nth(1).map(str::to_string);
            return self.node(s.clone(), NodeKind::Service, ns);
        }
        let server = f.original_dst.or(f.server)?;
        self.node(crate::record::endpoint(server), NodeKind::Endpoint, None)
    }

    /// Adds one merged flow.
    pub fn add(&mut self, f: &Flow) {
        let (Some(c), Some(s)) = (self.client_node(f), self.server_node(f)) else {
            self.flows_not_listed += 1;
            return;
        };
        let e = match self.edge_index.get(&(c, s)) {
            Some(&e) => e,
            None if self.edges.len() >= MAX_EDGES => {
                self.flows_not_listed += 1;
                return;
            }
            None => {
                let e = self.edges.len();
                self.edges.push(Edge {
                    client: self.nodes[c].name.clone(),
                    server: self.nodes[s].name.clone(),
                    client_node: c,
                    server_node: s,
                    flows: 0,
                    verdicts: Verdicts::default(),
                    legs: 0,
                    dominant: EdgeClass::Unknown,
                    first_ts: None,
                    last_ts: None,
                    reasons: Vec::new(),
                    examples: Vec::new(),
                    held: Vec::new(),
                    first: None,
                    last: None,
                });
                self.edge_index.insert((c, s), e);
                e
            }
        };
        self.nodes[c].flows_out += 1;
        self.nodes[s].flows_in += 1;
        let edge = &mut self.edges[e];
        edge.flows += 1;
        let class = f.class();
        if f.leg().in_pod() {
            edge.legs += 1;
        } else {
            edge.verdicts.add(class);
        }
        if let Some(t) = f.first_ts {
            edge.first = Some(edge.first.map_or(t, |x| x.min(t)));
        }
        if let Some(t) = f.last_ts {
            edge.last = Some(edge.last.map_or(t, |x| x.max(t)));
        }
        let reason = reason_of(f, class);
        let mut index = edge.reasons.iter().position(|r| *r == reason);
        if index.is_none() && edge.reasons.len() < MAX_REASONS {
            index = Some(edge.reasons.len());
            edge.reasons.push(reason);
        }
        if edge.held.len() < MAX_EXAMPLES && self.examples < MAX_TOTAL_EXAMPLES {
            self.examples += 1;
            edge.held.push(HeldExample {
                id: f.id,
                source: Arc::clone(&f.source),
                client: f.client,
                server: f.server,
                first_ts: f.first_ts,
                last_ts: f.last_ts,
                verdict: class,
                mtls: f.mtls,
                reason: index.map(|i| i as u8),
            });
        }
    }

    /// The lists: nodes in the order met, edges with the most flows first (then by name).
    pub fn finish(self) -> GraphLists {
        let mut edges = self.edges;
        for e in &mut edges {
            e.first_ts = e.first.map(|t| t.rfc3339(false));
            e.last_ts = e.last.map(|t| t.rfc3339(false));
            e.dominant = e.verdicts.dominant();
            let reasons = &e.reasons;
            e.examples = std::mem::take(&mut e.held)
                .into_iter()
                .map(|h| Example {
                    id: h.id,
                    source: h.source,
                    client: h.client.map(crate::record::endpoint),
                    server: h.server.map(crate::record::endpoint),
                    first_ts: h.first_ts.map(|t| t.rfc3339(false)),
                    last_ts: h.last_ts.map(|t| t.rfc3339(false)),
                    verdict: h.verdict,
                    mtls: h.mtls.map(MtlsVerdict::as_str),
                    reason: h.reason.and_then(|i| reasons.get(usize::from(i)).cloned()),
                })
                .collect();
        }
        edges.sort_by(|a, b| {
            b.flows.cmp(&a.flows).then_with(|| a.client.cmp(&b.client)).then_with(|| a.server.cmp(&b.server))
        });
        GraphLists { nodes: self.nodes, edges, flows_not_listed: self.flows_not_listed }
    }
}

/// The reason of a flow's verdict, in words: its `mtls_reason`, how the handshake failed, or
/// what the flow carried.
fn reason_of(f: &Flow, class: EdgeClass) -> String {
    let r = match (class, &f.fatal_alert, &f.mtls_reason) {
        (EdgeClass::Refused, Some((from, alert)), _) => format!("{alert} alert from the {from}"),
        (_, _, Some(r)) => r.clone(),
        (_, _, None) if f.mtls.is_some() => format!("TLS, mtls {}", f.mtls.unwrap_or_default().as_str()),
        (EdgeClass::Refused, None, None) => "plaintext request reset by the server without an answer".into(),
        (_, _, None) => match (f.protocol, f.leg().in_pod()) {
            (Some(p), true) => format!("{} leg inside the pod (plaintext by design)", p.as_str()),
            (Some(p @ (Protocol::Http | Protocol::H2c)), false) => format!("plaintext {}", p.as_str()),
            (_, _) if f.bytes.0 + f.bytes.1 == 0 => "no payload".into(),
            _ => "payload neither TLS nor HTTP".into(),
        },
    };
    if r.len() > MAX_REASON_CHARS {
        r.chars().take(MAX_REASON_CHARS).collect()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client: &str, server: &str, mtls: Option<MtlsVerdict>) -> Flow {
        Flow {
            source: "a.pcap".into(),
            client: Some(client.parse().unwrap()),
            server: Some(server.parse().unwrap()),
            protocol: Some(if mtls.is_some() { Protocol::Tls } else { Protocol::Http }),
            mtls,
            bytes: (10, 10),
            ..Default::default()
        }
    }

    #[test]
    fn edges_group_clients_by_address_and_count_classes() {
        let mut g = Graph::default();
        g.add(&flow("10.0.0.1:40000", "10.0.0.2:9080", Some(MtlsVerdict::Yes)));
        g.add(&flow("10.0.0.1:40001", "10.0.0.2:9080", Some(MtlsVerdict::Likely)));
        g.add(&flow("10.0.0.1:40002", "10.0.0.2:9080", None));
        let mut id = flow("10.0.0.3:40000", "10.0.0.2:9080", Some(MtlsVerdict::No));
        id.client_identity = Some("spiffe://cluster.local/ns/default/sa/sleep".into());
        g.add(&id);
        let l = g.finish();
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.edges.len(), 2);
        let e = &l.edges[0];
        assert_eq!((e.client.as_str(), e.server.as_str(), e.flows), ("10.0.0.1", "10.0.0.2:9080", 3));
        assert_eq!(
            e.verdicts,
            Verdicts { proven_mtls: 1, inferred_mtls: 1, plaintext: 1, ..Default::default() }
        );
        assert_eq!(e.dominant, EdgeClass::Plaintext);
        assert_eq!(e.reasons, ["TLS, mtls yes", "TLS, mtls likely", "plaintext http"]);
        assert_eq!(l.nodes[2].kind, NodeKind::Identity);
        assert_eq!(l.nodes[2].namespace.as_deref(), Some("default"));
    }

    #[test]
    fn loopback_legs_are_the_pods_and_not_verdicts() {
        let mut g = Graph::default();
        let mut f = flow("127.0.0.6:40000", "10.0.0.2:9080", None);
        f.leg = Some(Leg::InboundPassthrough);
        g.add(&f);
        let l = g.finish();
        assert_eq!(l.edges[0].client, "pod a.pcap");
        assert_eq!((l.edges[0].legs, l.edges[0].verdicts), (1, Verdicts::default()));
    }

    #[test]
    fn richer_records_win() {
        let a = flow("10.0.0.1:1", "10.0.0.2:2", Some(MtlsVerdict::Likely));
        let mut b = a.clone();
        b.mtls = Some(MtlsVerdict::Yes);
        assert!(b.richness() > a.richness());
        let mut c = a.clone();
        c.client_identity = Some("spiffe://x/ns/a/sa/b".into());
        assert!(c.richness() > a.richness() && b.richness() > c.richness());
    }
}

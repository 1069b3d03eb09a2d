//! `--mesh-config`: the mTLS policy Istio is configured with, beside what the packets showed.
//!
//! Reads PeerAuthentication and DestinationRule objects (YAML manifests, `---` between
//! documents, or `kubectl get peerauthentication,destinationrule -A -o json`: a `List` with
//! `items`; [`read`]), resolves which of them apply to each server and service of the readings
//! (here), and flags where the configuration and the traffic disagree. Parsing and resolving
//! are pure; the files are read by [`load`]. docs/istio.md ("Observed vs configured") states every rule.
//!
//! Istio's rules modelled (PeerAuthentication reference, istio.io): the mesh-wide policy is the
//! one without selector in the root namespace (assumed `istio-system`); a namespace-wide one has
//! no selector; a workload one selects pods by `matchLabels` (ignored in the root namespace);
//! the most specific policy whose mode is not `UNSET` wins (workload > namespace > mesh), the
//! oldest when several compete, and Istio's default is PERMISSIVE; `portLevelMtls` (keyed by the
//! workload's port) counts only in a workload policy. A DestinationRule applies to the clients of
//! its host (short names are relative to its namespace, `*.suffix` wildcards): the rule in the
//! client's namespace first, then the service's, then the root namespace; its
//! `portLevelSettings` tls for the service port overrides `trafficPolicy.tls`.
//!
//! Packets do not show pod labels: a workload policy applies when its selector is exactly
//! `app: NAME` and NAME is the Istio service the flows named (SNI or Host header); one that
//! names another app does not; any other selector "may apply" and is listed apart.

mod read;

use crate::record::FlowReport;
use crate::sanitize::escape_str;
pub(crate) use read::load;
use serde::Serialize;
use std::collections::BTreeMap;

/// Istio's root namespace, where a PeerAuthentication without selector is mesh-wide (the
/// default `meshConfig.rootNamespace`).
pub(crate) const ROOT_NAMESPACE: &str = "istio-system";
/// Kubernetes service names: `NAME.NAMESPACE.svc.cluster.local`.
const SERVICE_SUFFIX: &str = "svc.cluster.local";

crate::wire::text_enum! {
    /// PeerAuthentication `mtls.mode`.
    pub(crate) enum PeerMode {
        /// Inherits from the parent policy.
        Unset => "UNSET",
        /// Plaintext only: the sidecar does not terminate mTLS.
        Disable => "DISABLE",
        /// mTLS and plaintext.
        Permissive => "PERMISSIVE",
        /// mTLS only.
        Strict => "STRICT",
    }
}

crate::wire::text_enum! {
    /// DestinationRule `trafficPolicy.tls.mode`: what the client sidecar originates.
    pub(crate) enum TlsMode {
        /// Plaintext.
        Disable => "DISABLE",
        /// TLS without a client certificate.
        Simple => "SIMPLE",
        /// TLS with a client certificate the rule names.
        Mutual => "MUTUAL",
        /// Istio's mTLS with the workload certificate.
        IstioMutual => "ISTIO_MUTUAL",
    }
}

crate::wire::text_enum! {
    /// Which level of PeerAuthentication set the mode.
    pub(crate) enum Scope {
        /// No policy sets a mode: Istio's default, PERMISSIVE.
        Default => "default",
        /// Root namespace, no selector.
        Mesh => "mesh",
        /// The server's namespace, no selector.
        Namespace => "namespace",
        /// A workload selector.
        Workload => "workload",
        /// `portLevelMtls` of a workload policy.
        Port => "port",
    }
}

crate::wire::text_enum! {
    /// Where the server's namespace was read.
    pub(crate) enum NamespaceFrom {
        /// The Istio SNI `outbound_.PORT_._.NAME.NAMESPACE.svc.cluster.local`.
        Sni => "sni",
        /// The server's SPIFFE identity `spiffe://TD/ns/NAMESPACE/sa/...`.
        ServerIdentity => "server_identity",
        /// The HTTP Host header, a short name resolved in the client's namespace (its peer
        /// metadata or SPIFFE identity).
        Host => "host",
    }
}

crate::wire::text_enum! {
    /// A contradiction between the configured policy and the traffic (or within the policy).
    pub(crate) enum Finding {
        /// Plaintext was answered where STRICT applies.
        PlaintextAcceptedUnderStrict => "plaintext_accepted_under_strict",
        /// A DestinationRule DISABLE towards a STRICT server: its requests are reset.
        DisableClientToStrictServer => "disable_client_to_strict_server",
        /// A DestinationRule ISTIO_MUTUAL towards a DISABLE server: the handshakes fail.
        IstioMutualClientToDisableServer => "istio_mutual_client_to_disable_server",
        /// PERMISSIVE, and every flow was mTLS: STRICT would refuse nothing seen.
        ReadyForStrict => "ready_for_strict",
        /// mTLS arrived where DISABLE applies.
        MtlsToDisableServer => "mtls_to_disable_server",
        /// Plaintext was refused (reset) where STRICT does not apply: the cluster's policy is
        /// not the one given.
        PlaintextRefusedNotStrict => "plaintext_refused_not_strict",
    }
}

impl Finding {
    /// The sentence of the table.
    fn text(self) -> &'static str {
        match self {
            Finding::PlaintextAcceptedUnderStrict => "plaintext accepted where STRICT applies",
            Finding::DisableClientToStrictServer => {
                "a DISABLE client towards a STRICT server (its plaintext is reset)"
            }
            Finding::IstioMutualClientToDisableServer => {
                "an ISTIO_MUTUAL client towards a DISABLE server (its handshakes fail)"
            }
            Finding::ReadyForStrict => "only mTLS received: ready for STRICT",
            Finding::MtlsToDisableServer => "mTLS received where DISABLE applies",
            Finding::PlaintextRefusedNotStrict => {
                "plaintext refused where STRICT does not apply (is this the cluster's policy?)"
            }
        }
    }
}

/// One PeerAuthentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerAuthentication {
    namespace: String,
    name: String,
    /// `metadata.creationTimestamp` (RFC 3339 sorts as text): the oldest wins a tie.
    created: Option<String>,
    /// `selector.matchLabels`; `None` (or empty) selects the whole namespace.
    selector: Option<BTreeMap<String, String>>,
    mode: PeerMode,
    /// `portLevelMtls`, by workload port.
    ports: BTreeMap<u16, PeerMode>,
}

/// One DestinationRule (its `tls` settings only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DestinationRule {
    namespace: String,
    name: String,
    created: Option<String>,
    /// `spec.host` as written.
    host: String,
    /// `trafficPolicy.tls.mode`.
    tls: Option<TlsMode>,
    /// `trafficPolicy.portLevelSettings[].tls.mode`, by service port.
    ports: BTreeMap<u16, TlsMode>,
}

/// The objects of every `--mesh-config` file.
#[derive(Clone, Debug, Default)]
pub(crate) struct MeshPolicy {
    peer_authentications: Vec<PeerAuthentication>,
    destination_rules: Vec<DestinationRule>,
}

/// Does a selector pick the workload whose Istio service is `app`?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selects {
    Yes,
    No,
    Maybe,
}

fn selects(selector: &BTreeMap<String, String>, app: Option<&str>) -> Selects {
    match (selector.get("app"), app) {
        (Some(want), Some(app)) if want != app => Selects::No,
        (Some(_), Some(_)) if selector.len() == 1 => Selects::Yes,
        _ => Selects::Maybe,
    }
}

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The order Istio breaks ties in: the oldest object first (creation time; those without one
/// after), then the order read.
fn age(created: &Option<String>, read: usize) -> (bool, Option<&str>, usize) {
    (created.is_none(), created.as_deref(), read)
}

/// The oldest of competing PeerAuthentications.
fn oldest<'a>(
    items: impl Iterator<Item = (usize, &'a PeerAuthentication)>,
) -> Option<&'a PeerAuthentication> {
    items.min_by(|(i, a), (j, b)| age(&a.created, *i).cmp(&age(&b.created, *j))).map(|(_, p)| p)
}

/// The PeerAuthentication mode that applies to a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerResolution {
    /// `namespace/name` of the policy that set the mode, `None` for Istio's default.
    pub(crate) object: Option<String>,
    /// Never `Unset`.
    pub(crate) mode: PeerMode,
    /// The level that set it.
    pub(crate) scope: Scope,
    /// Workload policies of the namespace whose selector cannot be checked from packets:
    /// `ns/name (app=reviews,version=v1)`.
    pub(crate) may_apply: Vec<String>,
}

impl MeshPolicy {
    /// The mode for the workload of namespace `ns`, Istio service `app` (if known), port `port`.
    pub(crate) fn resolve_peer(&self, ns: &str, app: Option<&str>, port: Option<u16>) -> PeerResolution {
        let pas = &self.peer_authentications;
        let id = |p: &PeerAuthentication| format!("{}/{}", p.namespace, p.name);
        let mesh = oldest(
            pas.iter().enumerate().filter(|(_, p)| p.namespace == ROOT_NAMESPACE && p.selector.is_none()),
        );
        let namespace =
            oldest(pas.iter().enumerate().filter(|(_, p)| p.namespace == ns && p.selector.is_none()))
                .filter(|_| ns != ROOT_NAMESPACE);
        let mut workload = None;
        let mut may_apply = Vec::new();
        if ns != ROOT_NAMESPACE {
            let mut candidates: Vec<_> =
                pas.iter().enumerate().filter(|(_, p)| p.namespace == ns && p.selector.is_some()).collect();
            candidates.sort_by(|(i, a), (j, b)| age(&a.created, *i).cmp(&age(&b.created, *j)));
            for (_, p) in candidates {
                let Some(sel) = &p.selector else { continue };
                match selects(sel, app) {
                    Selects::Yes if workload.is_none() => workload = Some(p),
                    Selects::Yes | Selects::No => {}
                    Selects::Maybe => may_apply.push(format!("{} ({})", id(p), selector_text(sel))),
                }
            }
        }
        let mut r =
            PeerResolution { object: None, mode: PeerMode::Permissive, scope: Scope::Default, may_apply };
        for (p, scope) in [(mesh, Scope::Mesh), (namespace, Scope::Namespace), (workload, Scope::Workload)] {
            if let Some(p) = p.filter(|p| p.mode != PeerMode::Unset) {
                (r.object, r.mode, r.scope) = (Some(id(p)), p.mode, scope);
            }
        }
        if let (Some(w), Some(port)) = (workload, port) {
            if let Some(&m) = w.ports.get(&port).filter(|m| **m != PeerMode::Unset) {
                (r.object, r.mode, r.scope) = (Some(id(w)), m, Scope::Port);
            }
        }
        r
    }

    /// The DestinationRule for the clients of service `fqdn` (namespace `service_ns`) on service
    /// port `port`, seen from a client in `client_ns`; its tls mode (`None`: not set, Istio's
    /// auto mTLS decides).
    pub(crate) fn resolve_destination(
        &self,
        fqdn: &str,
        port: Option<u16>,
        service_ns: &str,
        client_ns: Option<&str>,
    ) -> Option<(String, Option<TlsMode>)> {
        let tiers = [client_ns, Some(service_ns), Some(ROOT_NAMESPACE)];
        for ns in tiers.into_iter().flatten() {
            let best = self
                .destination_rules
                .iter()
                .enumerate()
                .filter(|(_, d)| d.namespace == ns)
                .filter_map(|(i, d)| host_match(&d.host, &d.namespace, fqdn).map(|s| (s, i, d)))
                .min_by(|(sa, i, a), (sb, j, b)| {
                    sb.cmp(sa).then(age(&a.created, *i).cmp(&age(&b.created, *j)))
                });
            if let Some((_, _, d)) = best {
                let tls = port.and_then(|p| d.ports.get(&p).copied()).or(d.tls);
                return Some((format!("{}/{}", d.namespace, d.name), tls));
            }
        }
        None
    }
}

/// How specifically a DestinationRule host names `fqdn`: `None` no match, else higher is more
/// specific (an exact name beats any wildcard, a longer wildcard suffix a shorter one).
fn host_match(host: &str, dr_ns: &str, fqdn: &str) -> Option<usize> {
    let host = host.trim_end_matches('.');
    if host == "*" {
        return Some(0);
    }
    if let Some(suffix) = host.strip_prefix('*') {
        return fqdn.ends_with(suffix).then_some(suffix.len());
    }
    let full = if host.contains('.') { host.to_string() } else { format!("{host}.{dr_ns}.{SERVICE_SUFFIX}") };
    full.eq_ignore_ascii_case(fqdn).then_some(usize::MAX)
}

/// What the flows of one server (or service) tell about its place in the mesh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyEvidence {
    /// The server's namespace and where it was read.
    namespace: Option<(String, NamespaceFrom)>,
    /// The Istio service (first label of its host): matched against `app` selectors.
    app: Option<String>,
    /// The service host (FQDN) and service port, for DestinationRules.
    host: Option<(String, Option<u16>)>,
    /// The namespace of a client (peer metadata or SPIFFE identity).
    client_namespace: Option<String>,
    /// The workload port (the server's port), for `portLevelMtls`.
    port: Option<u16>,
}

/// The facts of one flow that tell where its server sits: read from a [`FlowReport`] by
/// [`FlowFacts::of`], or from a flow line of tlspeek's JSON (the keys named on each field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlowFacts<'a> {
    /// The server's port (`server`).
    pub(crate) server_port: u16,
    /// The Istio SNI of a Kubernetes service: FQDN, service, namespace, service port
    /// (`istio.sni.fqdn`, `.service`, `.namespace`, `.port`).
    pub(crate) sni: Option<(&'a str, &'a str, &'a str, u16)>,
    /// The namespace of the server's SPIFFE identity (`istio.server_identity.namespace`).
    pub(crate) server_namespace: Option<&'a str>,
    /// The client's namespace: its SPIFFE identity (`istio.client_identity.namespace`), else
    /// the `NAMESPACE` of the peer metadata its requests carried (`istio.peer_metadata`).
    pub(crate) client_namespace: Option<&'a str>,
    /// The first request's Host (`http.requests[0].host`).
    pub(crate) host: Option<&'a str>,
}

impl<'a> FlowFacts<'a> {
    /// The facts of a flow report.
    pub(crate) fn of(f: &'a FlowReport) -> FlowFacts<'a> {
        let i = f.istio.as_ref();
        let sni = i
            .and_then(|i| i.sni.as_ref())
            .and_then(|s| Some((s.fqdn(), s.service(), s.namespace()?, s.port)));
        let client_namespace = i
            .and_then(|i| i.client_identity.as_ref())
            .and_then(|c| c.namespace())
            .or_else(|| peer_namespace(f));
        FlowFacts {
            server_port: f.server.port(),
            sni,
            server_namespace: i.and_then(|i| i.server_identity.as_ref()).and_then(|s| s.namespace()),
            client_namespace,
            host: first_host(f),
        }
    }
}

/// The `NAMESPACE` of the flow's peer metadata when a request carried it (the first decodable
/// one is then the client's; a response's would be the server's). `tlspeek report` carries it
/// through the JSON round trip (`graph::Flow::peer_namespace`).
pub(crate) fn peer_namespace(f: &FlowReport) -> Option<&str> {
    let from_request = f.http.as_ref().is_some_and(|h| {
        h.requests
            .iter()
            .take(4)
            .any(|r| r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"x-envoy-peer-metadata")))
    });
    let pm = f.istio.as_ref()?.peer_metadata.as_ref().filter(|_| from_request)?;
    pm.namespace()
}

/// The first request's Host, when it is UTF-8 text without a backslash: the JSON writes other
/// bytes escaped with backslashes, so `tlspeek report` could not tell them from the text, and
/// neither names a Kubernetes service.
pub(crate) fn first_host(f: &FlowReport) -> Option<&str> {
    let h = f.http.as_ref()?.requests.iter().find_map(|r| r.host())?;
    std::str::from_utf8(h).ok().filter(|h| !h.contains('\\'))
}

/// `reviews:9080`, `reviews.default`, `reviews.default.svc.cluster.local:9080` → (service,
/// namespace if written, port); `None` for an address or another domain.
fn parse_host(host: &str) -> Option<(&str, Option<&str>, Option<u16>)> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p.parse().ok()?)),
        None => (host, None),
    };
    if name.is_empty() || name.parse::<std::net::Ipv4Addr>().is_ok() || name.starts_with('[') {
        return None;
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let ns = match labels.as_slice() {
        [_] => None,
        [_, ns] => Some(*ns),
        [_, ns, rest @ ..] if rest.join(".") == "svc" || rest.join(".") == SERVICE_SUFFIX => Some(*ns),
        _ => return None,
    };
    Some((labels[0], ns, port))
}

impl PolicyEvidence {
    /// Reads one pod-network flow to this server (or service).
    pub(crate) fn add(&mut self, f: &FlowFacts) {
        self.port.get_or_insert(f.server_port);
        if self.client_namespace.is_none() {
            self.client_namespace = f.client_namespace.map(str::to_string);
        }
        if let Some((fqdn, service, ns, port)) = f.sni {
            if self.namespace.as_ref().map(|(_, from)| *from) != Some(NamespaceFrom::Sni) {
                self.namespace = Some((ns.to_string(), NamespaceFrom::Sni));
                self.app = Some(service.to_string());
                self.host = Some((fqdn.to_string(), Some(port)));
            }
            return;
        }
        if let (None, Some(ns)) = (&self.namespace, f.server_namespace) {
            self.namespace = Some((ns.to_string(), NamespaceFrom::ServerIdentity));
        }
        if self.app.is_some() {
            return;
        }
        let Some((app, ns, port)) = f.host.and_then(parse_host) else { return };
        // Only a mesh client's Host (its namespace known) is taken for a service name:
        // `name.ns` is how a pod names a service, and also an outside domain (`example.com`).
        let Some(client_ns) = f.client_namespace else { return };
        let ns = ns.unwrap_or(client_ns);
        if self.namespace.as_ref().is_some_and(|(known, _)| known != ns) {
            return; // the Host names another namespace than the server's identity
        }
        self.app = Some(app.to_string());
        self.host = Some((format!("{app}.{ns}.{SERVICE_SUFFIX}"), port.or(Some(f.server_port))));
        if self.namespace.is_none() {
            self.namespace = Some((ns.to_string(), NamespaceFrom::Host));
        }
    }
}

/// What the flows of a server were (from its counts), for the findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// mTLS flows.
    pub(crate) mtls: u64,
    /// Plaintext answered (or not refused).
    pub(crate) plaintext: u64,
    /// Plaintext reset by the server.
    pub(crate) plaintext_refused: u64,
    /// Anything else on the pod network (TLS without client certificate, other payloads).
    pub(crate) other: u64,
}

/// The `policy` object of a server or service (docs/json.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PolicyReading {
    /// The server's namespace, null when no flow showed it.
    pub(crate) namespace: Option<String>,
    /// Where it was read.
    pub(crate) namespace_from: Option<NamespaceFrom>,
    /// `namespace/name` of the PeerAuthentication that set the mode (null: Istio's default).
    pub(crate) peer_authentication: Option<String>,
    /// The mode that applies (null: namespace not seen).
    pub(crate) mode: Option<PeerMode>,
    /// Its level.
    pub(crate) scope: Option<Scope>,
    /// Workload policies that may apply (selectors packets cannot check).
    pub(crate) may_apply: Vec<String>,
    /// `namespace/name` of the DestinationRule of the clients.
    pub(crate) destination_rule: Option<String>,
    /// Its tls mode for this port (null: not set, or no rule).
    pub(crate) tls_mode: Option<TlsMode>,
    /// Contradictions.
    pub(crate) findings: Vec<Finding>,
    /// One line for the table.
    pub(crate) text: String,
}

/// The contradictions of a mode and a client tls mode with the traffic.
pub(crate) fn findings(mode: PeerMode, tls: Option<TlsMode>, seen: Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let strict = mode == PeerMode::Strict;
    if strict && seen.plaintext > 0 {
        out.push(Finding::PlaintextAcceptedUnderStrict);
    }
    if strict && tls == Some(TlsMode::Disable) {
        out.push(Finding::DisableClientToStrictServer);
    }
    if mode == PeerMode::Disable && tls == Some(TlsMode::IstioMutual) {
        out.push(Finding::IstioMutualClientToDisableServer);
    }
    if mode == PeerMode::Permissive
        && seen.mtls > 0
        && seen.plaintext + seen.plaintext_refused + seen.other == 0
    {
        out.push(Finding::ReadyForStrict);
    }
    if mode == PeerMode::Disable && seen.mtls > 0 {
        out.push(Finding::MtlsToDisableServer);
    }
    if !strict && seen.plaintext_refused > 0 {
        out.push(Finding::PlaintextRefusedNotStrict);
    }
    out
}

impl MeshPolicy {
    /// The policy of a server (or service) from its evidence and counts.
    pub(crate) fn reading(&self, ev: &PolicyEvidence, seen: Observed) -> PolicyReading {
        let Some((ns, from)) = &ev.namespace else {
            return PolicyReading {
                namespace: None,
                namespace_from: None,
                peer_authentication: None,
                mode: None,
                scope: None,
                may_apply: Vec::new(),
                destination_rule: None,
                tls_mode: None,
                findings: Vec::new(),
                text: "policy unknown (namespace not seen)".into(),
            };
        };
        let peer = self.resolve_peer(ns, ev.app.as_deref(), ev.port);
        let dr = ev.host.as_ref().and_then(|(fqdn, port)| {
            self.resolve_destination(fqdn, *port, ns, ev.client_namespace.as_deref())
        });
        let tls = dr.as_ref().and_then(|(_, t)| *t);
        let found = findings(peer.mode, tls, seen);
        let mut text = match (&peer.object, peer.scope) {
            (None, _) => format!("{} (no PeerAuthentication applies: Istio's default)", peer.mode.as_str()),
            (Some(o), Scope::Port) => {
                format!("{} (port {} of {o})", peer.mode.as_str(), ev.port.unwrap_or_default())
            }
            (Some(o), s) => format!("{} ({} policy {o})", peer.mode.as_str(), s.as_str()),
        };
        if !peer.may_apply.is_empty() {
            text.push_str(&format!(
                "; may apply (selector not visible in packets): {}",
                peer.may_apply.join(", ")
            ));
        }
        match &dr {
            Some((o, Some(t))) => {
                text.push_str(&format!("; clients: DestinationRule {o} tls {}", t.as_str()))
            }
            Some((o, None)) => {
                text.push_str(&format!("; clients: DestinationRule {o}, tls not set (auto mTLS)"))
            }
            None => {}
        }
        for f in &found {
            text.push_str("; ! ");
            text.push_str(f.text());
        }
        let (destination_rule, tls_mode) = match dr {
            Some((o, t)) => (Some(o), t),
            None => (None, None),
        };
        PolicyReading {
            namespace: Some(ns.clone()),
            namespace_from: Some(*from),
            peer_authentication: peer.object,
            mode: Some(peer.mode),
            scope: Some(peer.scope),
            may_apply: peer.may_apply,
            destination_rule,
            tls_mode,
            findings: found,
            text: escape_str(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> MeshPolicy {
        let mut p = MeshPolicy::default();
        p.add_text(text).unwrap();
        p
    }

    /// A PeerAuthentication (mode `None`: no `mtls`) and a DestinationRule in `default` for
    /// `reviews` (tls `None`: no `trafficPolicy`), as an operator writes them.
    fn matrix_yaml(pa: Option<&str>, dr: Option<&str>) -> String {
        let mut y = String::new();
        if let Some(m) = pa {
            y.push_str(&format!(
                "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: default\nspec:\n  mtls:\n    mode: {m}\n---\n"
            ));
        }
        y.push_str("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  host: reviews\n");
        if let Some(t) = dr {
            y.push_str(&format!("  trafficPolicy:\n    tls:\n      mode: {t}\n"));
        }
        y
    }

    fn evidence(ns: &str, app: &str, port: u16) -> PolicyEvidence {
        PolicyEvidence {
            namespace: Some((ns.into(), NamespaceFrom::Sni)),
            app: Some(app.into()),
            host: Some((format!("{app}.{ns}.svc.cluster.local"), Some(port))),
            client_namespace: None,
            port: Some(port),
        }
    }

    /// What each combination of the matrix shows on the wire (the Istio captures).
    fn observed(pa: PeerMode, dr: Option<TlsMode>) -> Observed {
        match (pa, dr) {
            // A DISABLE client sends plaintext: STRICT resets it, the others answer.
            (PeerMode::Strict, Some(TlsMode::Disable)) => {
                Observed { plaintext_refused: 2, ..Default::default() }
            }
            (_, Some(TlsMode::Disable)) => Observed { plaintext: 1, ..Default::default() },
            // Auto mTLS (no tls mode) sends plaintext to a DISABLE server.
            (PeerMode::Disable, None) => Observed { plaintext: 1, ..Default::default() },
            // ISTIO_MUTUAL to a DISABLE server: the TLS bytes reach the app, no mTLS answer.
            (PeerMode::Disable, Some(_)) => Observed { other: 1, ..Default::default() },
            _ => Observed { mtls: 3, ..Default::default() },
        }
    }

    #[test]
    fn peer_authentication_by_destination_rule_matrix() {
        use Finding::*;
        let modes = [
            ("STRICT", PeerMode::Strict),
            ("PERMISSIVE", PeerMode::Permissive),
            ("DISABLE", PeerMode::Disable),
        ];
        let tls = [("ISTIO_MUTUAL", Some(TlsMode::IstioMutual)), ("DISABLE", Some(TlsMode::Disable))];
        let expected = |pa: PeerMode, dr: Option<TlsMode>| -> Vec<Finding> {
            match (pa, dr) {
                (PeerMode::Strict, Some(TlsMode::Disable)) => vec![DisableClientToStrictServer],
                (PeerMode::Strict, _) => vec![],
                (PeerMode::Permissive, Some(TlsMode::Disable)) => vec![],
                (PeerMode::Permissive, _) => vec![ReadyForStrict],
                (PeerMode::Disable, Some(TlsMode::IstioMutual)) => vec![IstioMutualClientToDisableServer],
                (PeerMode::Disable, _) => vec![],
                (PeerMode::Unset, _) => unreachable!(),
            }
        };
        for (pa_text, pa) in modes {
            for (dr_text, dr) in tls.iter().copied().chain([("unset", None)]) {
                let p = policy(&matrix_yaml(Some(pa_text), (dr_text != "unset").then_some(dr_text)));
                let r = p.reading(&evidence("default", "reviews", 9080), observed(pa, dr));
                let case = format!("{pa_text} x {dr_text}");
                assert_eq!(r.peer_authentication.as_deref(), Some("default/default"), "{case}");
                assert_eq!((r.mode, r.scope), (Some(pa), Some(Scope::Namespace)), "{case}");
                assert_eq!(r.destination_rule.as_deref(), Some("default/reviews"), "{case}");
                assert_eq!(r.tls_mode, dr, "{case}");
                assert_eq!(r.findings, expected(pa, dr), "{case}");
            }
        }
        // The cells that contradict the traffic.
        let strict = policy(&matrix_yaml(Some("STRICT"), None));
        let seen = Observed { mtls: 1, plaintext: 1, ..Default::default() };
        assert_eq!(
            strict.reading(&evidence("default", "reviews", 9080), seen).findings,
            vec![PlaintextAcceptedUnderStrict]
        );
        let disable = policy(&matrix_yaml(Some("DISABLE"), None));
        let seen = Observed { mtls: 1, ..Default::default() };
        assert_eq!(
            disable.reading(&evidence("default", "reviews", 9080), seen).findings,
            vec![MtlsToDisableServer]
        );
        let permissive = policy(&matrix_yaml(Some("PERMISSIVE"), None));
        let seen = Observed { plaintext_refused: 1, ..Default::default() };
        assert_eq!(
            permissive.reading(&evidence("default", "reviews", 9080), seen).findings,
            vec![PlaintextRefusedNotStrict]
        );
    }

    #[test]
    fn without_peer_authentication_istio_default_is_permissive() {
        let p = policy(&matrix_yaml(None, Some("ISTIO_MUTUAL")));
        let r = p.reading(&evidence("default", "reviews", 9080), Observed { mtls: 1, ..Default::default() });
        assert_eq!(
            (r.peer_authentication, r.mode, r.scope),
            (None, Some(PeerMode::Permissive), Some(Scope::Default))
        );
        assert_eq!(r.findings, vec![Finding::ReadyForStrict]);
        assert_eq!(
            r.text,
            "PERMISSIVE (no PeerAuthentication applies: Istio's default); clients: DestinationRule default/reviews tls ISTIO_MUTUAL; ! only mTLS received: ready for STRICT"
        );
    }

    const LEVELS: &str = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ignored-selector-in-root, namespace: istio-system}
spec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns-unset, namespace: legacy}
spec: {mtls: {mode: UNSET}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: PERMISSIVE}, portLevelMtls: {8080: {mode: STRICT}}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  mtls: {mode: UNSET}
  portLevelMtls:
    8080: {mode: DISABLE}
    \"9090\": {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: canary, namespace: shop}
spec: {selector: {matchLabels: {track: canary}}, mtls: {mode: STRICT}}
";

    #[test]
    fn mesh_namespace_workload_and_port_levels() {
        let p = policy(LEVELS);
        let r = |ns: &str, app: Option<&str>, port: u16| {
            let r = p.resolve_peer(ns, app, Some(port));
            (r.object.unwrap_or_default(), r.mode, r.scope, r.may_apply)
        };
        let s = |x: &str| x.to_string();
        // A namespace without policy, and one whose policy is UNSET: the mesh's.
        assert_eq!(
            r("default", Some("reviews"), 9080),
            (s("istio-system/default"), PeerMode::Strict, Scope::Mesh, vec![])
        );
        assert_eq!(
            r("legacy", None, 9080),
            (s("istio-system/default"), PeerMode::Strict, Scope::Mesh, vec![])
        );
        // The namespace's; its portLevelMtls is ignored (no selector); the canary selector can't
        // be checked.
        let canary = vec![s("shop/canary (track=canary)")];
        assert_eq!(
            r("shop", Some("web"), 8080),
            (s("shop/default"), PeerMode::Permissive, Scope::Namespace, canary.clone())
        );
        // A workload policy with UNSET inherits, its ports override.
        assert_eq!(
            r("shop", Some("cart"), 80),
            (s("shop/default"), PeerMode::Permissive, Scope::Namespace, canary.clone())
        );
        assert_eq!(
            r("shop", Some("cart"), 8080),
            (s("shop/cart"), PeerMode::Disable, Scope::Port, canary.clone())
        );
        assert_eq!(
            r("shop", Some("cart"), 9090),
            (s("shop/cart"), PeerMode::Strict, Scope::Port, canary.clone())
        );
        // Without the service name, app=cart may apply.
        let (_, mode, _, may) = r("shop", None, 8080);
        assert_eq!(
            (mode, may),
            (PeerMode::Permissive, vec![s("shop/cart (app=cart)"), s("shop/canary (track=canary)")])
        );
    }

    #[test]
    fn the_oldest_policy_wins_a_tie() {
        let p = policy(
            "apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: newer, namespace: default, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: older, namespace: default, creationTimestamp: '2025-02-01T00:00:00Z'}
spec: {mtls: {mode: STRICT}}
",
        );
        let r = p.resolve_peer("default", None, None);
        assert_eq!((r.object.as_deref(), r.mode), (Some("default/older"), PeerMode::Strict));
    }

    #[test]
    fn destination_rules_by_host_namespace_and_port() {
        let p = policy(
            "apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: all-default, namespace: default}
  spec: {host: '*.default.svc.cluster.local', trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews, namespace: default}
  spec:
    host: reviews
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
      portLevelSettings:
      - port: {number: 9080}
        tls: {mode: DISABLE}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: mesh, namespace: istio-system}
  spec: {host: '*.local', trafficPolicy: {tls: {mode: SIMPLE}}}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: from-client, namespace: frontend}
  spec: {host: ratings.default.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}
",
        );
        let d = |fqdn: &str, port: u16, client: Option<&str>| {
            p.resolve_destination(fqdn, Some(port), "default", client)
                .map(|(o, t)| (o, t.map(TlsMode::as_str)))
        };
        let s = |o: &str, t: &'static str| Some((o.to_string(), Some(t)));
        // The exact host beats the wildcard; its port-level setting beats its default.
        assert_eq!(d("reviews.default.svc.cluster.local", 9080, None), s("default/reviews", "DISABLE"));
        assert_eq!(d("reviews.default.svc.cluster.local", 9081, None), s("default/reviews", "ISTIO_MUTUAL"));
        assert_eq!(
            d("ratings.default.svc.cluster.local", 9080, None),
            s("default/all-default", "ISTIO_MUTUAL")
        );
        // The client's namespace first.
        assert_eq!(
            d("ratings.default.svc.cluster.local", 9080, Some("frontend")),
            s("frontend/from-client", "DISABLE")
        );
        // The root namespace last.
        assert_eq!(
            p.resolve_destination("db.data.svc.cluster.local", Some(5432), "data", None),
            Some(("istio-system/mesh".to_string(), Some(TlsMode::Simple)))
        );
        assert_eq!(p.resolve_destination("db.example.com", Some(5432), "data", None), None);
    }

    #[test]
    fn evidence_from_sni_identity_and_host() {
        let facts = FlowFacts { server_port: 9080, ..Default::default() };
        // A plaintext request from a sidecar in `default` to `reviews:9080`.
        let mut e = PolicyEvidence::default();
        e.add(&FlowFacts { client_namespace: Some("default"), host: Some("reviews:9080"), ..facts });
        assert_eq!(e.namespace, Some(("default".into(), NamespaceFrom::Host)));
        assert_eq!(e.host, Some(("reviews.default.svc.cluster.local".into(), Some(9080))));
        // The SNI wins over the Host.
        e.add(&FlowFacts { sni: Some(("reviews.shop.svc.cluster.local", "reviews", "shop", 80)), ..facts });
        assert_eq!(e.namespace, Some(("shop".into(), NamespaceFrom::Sni)));
        assert_eq!((e.app.as_deref(), e.client_namespace.as_deref()), (Some("reviews"), Some("default")));
        // No client namespace: `example.com` is not taken for service `example` of `com`.
        let mut e = PolicyEvidence::default();
        e.add(&FlowFacts { host: Some("example.com"), ..facts });
        assert_eq!(e, PolicyEvidence { port: Some(9080), ..Default::default() });
        // The identity's namespace; a Host naming another namespace is not this server's.
        e.add(&FlowFacts {
            server_namespace: Some("shop"),
            client_namespace: Some("web"),
            host: Some("cart.other"),
            ..facts
        });
        assert_eq!((e.namespace, e.app), (Some(("shop".into(), NamespaceFrom::ServerIdentity)), None));
    }

    #[test]
    fn hosts_name_services() {
        assert_eq!(parse_host("reviews:9080"), Some(("reviews", None, Some(9080))));
        assert_eq!(parse_host("reviews.shop"), Some(("reviews", Some("shop"), None)));
        assert_eq!(
            parse_host("reviews.shop.svc.cluster.local:80"),
            Some(("reviews", Some("shop"), Some(80)))
        );
        assert_eq!(parse_host("10.97.0.1:9080"), None);
        assert_eq!(parse_host("[::1]:80"), None);
        assert_eq!(parse_host("www.example.com"), None);
        assert_eq!(parse_host("reviews:x"), None);
    }

    #[test]
    fn no_namespace_no_policy() {
        let p = policy(&matrix_yaml(Some("STRICT"), None));
        let r = p.reading(&PolicyEvidence::default(), Observed { plaintext: 3, ..Default::default() });
        assert_eq!((r.mode, r.findings.len()), (None, 0));
        assert_eq!(r.text, "policy unknown (namespace not seen)");
    }
}

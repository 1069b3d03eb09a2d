//! The mesh-level reading of finished flows: certificate lifetime warnings (`--cert-warn`), the
//! upgrade of a TLS 1.3 `likely` verdict by an `x-forwarded-client-cert` header on the matching
//! Envoy → app leg, per-server and per-Istio-service verdicts, and the `--expect mtls` /
//! `--fail-on-plaintext` checks behind exit code 1. Works on [`FlowReport`]s only; docs/istio.md
//! explains every rule.

use super::FlowReport;
use crate::classify::istio::{parse_spiffe, IstioReport};
use crate::wire::KeyedMap;
use serde::Serialize;
use std::collections::VecDeque;

/// Server ports exempt from `--expect mtls` and `--fail-on-plaintext` by default: Istio's
/// health-probe ports (15020 merged app probes, 15021 sidecar health), probed in plaintext by
/// the kubelet from the node, and 15090 (Envoy's Prometheus metrics, scraped in plaintext).
pub const DEFAULT_EXEMPT_PORTS: [u16; 3] = [15020, 15021, 15090];
/// Servers (and services) listed in the summary; later ones are counted in `servers_not_listed`.
const MAX_SERVERS: usize = 10_000;
/// Violations kept for the summary (all are counted).
const MAX_VIOLATIONS: usize = 1_000;
/// XFCC observations kept for matching (oldest dropped first).
const MAX_XFCC: usize = 4_096;

/// Settings of the mesh checks.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Warn about certificates that expire within this many seconds of the capture (0: only
    /// expired / not yet valid ones).
    pub cert_warn_secs: i64,
    /// `--expect mtls`: every checked flow must be mutual TLS.
    pub expect_mtls: bool,
    /// `--fail-on-plaintext`: no checked flow may carry plaintext HTTP.
    pub fail_on_plaintext: bool,
    /// Server ports never checked.
    pub exempt_ports: Vec<u16>,
    /// Also check loopback legs (Envoy ↔ app), plaintext by design.
    pub check_loopback: bool,
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            cert_warn_secs: 3600,
            expect_mtls: false,
            fail_on_plaintext: false,
            exempt_ports: DEFAULT_EXEMPT_PORTS.to_vec(),
            check_loopback: false,
        }
    }
}

/// `2h 5m`, `39m 12s`, `3d 4h`: a duration for people.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// Adds warnings and flags for certificates that were expired, not yet valid, or within
/// `warn_secs` of expiry at capture time (Istio workload certificates live 24 h and are
/// rotated at about half-life: one close to its end means rotation is failing).
pub fn cert_warnings(f: &mut FlowReport, warn_secs: i64) {
    let Some(t) = &f.tls else { return };
    let mut warnings = Vec::new();
    let mut flags = Vec::new();
    for (role, certs) in [("server", &t.server_certs), ("client", &t.client_certs)] {
        for (i, c) in certs.iter().enumerate() {
            let who = c.san_uris.first().or(c.subject.as_ref()).map_or("(unparsed)", String::as_str);
            // Only for a warning: formatting it for every certificate was an allocation each.
            let what = || {
                if i == 0 {
                    format!("{role} certificate")
                } else {
                    format!("{role} chain certificate {}", i + 1)
                }
            };
            let after = c.not_after.as_deref().unwrap_or("?");
            if c.expired {
                flags.push("cert_expired");
                warnings.push(format!("{} {who} had expired at capture time (not after {after})", what()));
            } else if c.not_yet_valid {
                let before = c.not_before.as_deref().unwrap_or("?");
                flags.push("cert_not_yet_valid");
                warnings.push(format!(
                    "{} {who} was not yet valid at capture time (not before {before})",
                    what()
                ));
            } else if let Some(left) = c.expires_in_secs.filter(|&l| l <= warn_secs) {
                flags.push("cert_expiring");
                warnings.push(format!(
                    "{} {who} expires {} after the capture (not after {after}; --cert-warn {})",
                    what(),
                    human_duration(left),
                    human_duration(warn_secs)
                ));
            }
        }
    }
    for fl in flags {
        if !f.flags.contains(&fl) {
            f.flags.push(fl);
        }
    }
    f.warnings.extend(warnings);
}

/// One `x-forwarded-client-cert` client identity seen on a loopback leg.
struct XfccSeen {
    port: u16,
    uri: String,
    /// `By=`: the identity of the server's sidecar.
    by: Option<String>,
    first: f64,
    last: f64,
}

/// XFCC client identities seen on Envoy → app legs, by app port and time, to confirm the TLS
/// 1.3 verdict of the pod-network connection they were forwarded from. Envoy forwards a request
/// to the app's port (the port the client dialled), over loopback, with an XFCC header whose
/// `URI=` is the client certificate's SPIFFE ID: proof the downstream connection was mTLS.
#[derive(Default)]
pub struct XfccLegs {
    seen: VecDeque<XfccSeen>,
}

impl XfccLegs {
    /// Records an XFCC client identity seen at `ts` on a loopback leg to `port`.
    pub fn record(&mut self, port: u16, ts: f64, uri: &str, by: Option<&str>) {
        let same = |e: &&mut XfccSeen| e.port == port && e.uri == uri && e.by.as_deref() == by;
        if let Some(e) = self.seen.iter_mut().rev().take(8).find(same) {
            e.first = e.first.min(ts);
            e.last = e.last.max(ts);
            return;
        }
        if self.seen.len() == MAX_XFCC {
            self.seen.pop_front();
        }
        self.seen.push_back(XfccSeen {
            port,
            uri: uri.to_string(),
            by: by.map(str::to_string),
            first: ts,
            last: ts,
        });
    }

    /// Upgrades a pod-network TLS flow with verdict `likely` to `yes` when an XFCC identity was
    /// seen on a loopback leg to its server port while it was open (`first`..`last`, seconds).
    pub fn confirm(&self, f: &mut FlowReport, server_port: u16, first: f64, last: f64) {
        if !may_confirm(f) {
            return;
        }
        let Some(t) = f.tls.as_mut() else { return };
        let mut uris: Vec<&str> = Vec::new();
        let mut bys: Vec<&str> = Vec::new();
        for e in &self.seen {
            if e.port == server_port && e.last >= first && e.first <= last {
                if !uris.contains(&e.uri.as_str()) {
                    uris.push(&e.uri);
                }
                if let Some(b) = e.by.as_deref().filter(|b| !bys.contains(b)) {
                    bys.push(b);
                }
            }
        }
        let Some(&uri) = uris.first() else { return };
        t.mtls = "yes";
        if uris.len() == 1 {
            t.mtls_reason.push_str(&format!(
                "; confirmed: the Envoy -> app leg to port {server_port} carried x-forwarded-client-cert URI={uri} during this connection"
            ));
            let istio = f.istio.get_or_insert_with(|| IstioReport::empty("pod_network"));
            if istio.client_identity.is_none() {
                istio.client_identity = parse_spiffe(uri);
            }
            if let ([by], None) = (bys.as_slice(), &istio.server_identity) {
                istio.server_identity = parse_spiffe(by);
            }
        } else {
            t.mtls_reason.push_str(&format!(
                "; confirmed: Envoy -> app legs to port {server_port} carried x-forwarded-client-cert during this connection (clients {})",
                uris.join(", ")
            ));
        }
    }
}

/// Whether [`XfccLegs::confirm`] may change this report: a pod-network TLS flow whose verdict
/// is `likely`.
pub fn may_confirm(f: &FlowReport) -> bool {
    f.tls.as_ref().is_some_and(|t| t.mtls == "likely")
        && f.istio.as_ref().is_none_or(|i| i.leg == "pod_network")
}

/// What one flow counts as, for the per-server verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowClass {
    /// TLS with a client certificate (`yes` or `likely`).
    Mtls,
    /// TLS without one (`no` or `unlikely`).
    TlsNoClientCert,
    /// TLS whose client authentication could not be seen (`unknown`).
    TlsUnverified,
    /// A TLS handshake refused by the server or ended by a fatal alert: no connection.
    TlsFailed,
    /// Plaintext HTTP or h2c that was answered or not refused.
    Plaintext,
    /// Plaintext HTTP request(s), no response, reset by the server.
    PlaintextRefused,
    /// Payload that is neither TLS nor HTTP.
    Other,
    /// No payload at all.
    NoData,
}

/// Classifies a finished flow.
pub fn classify(f: &FlowReport) -> FlowClass {
    if f.flags.iter().any(|&g| g == "handshake_failed" || g == "handshake_refused") {
        return FlowClass::TlsFailed;
    }
    if let Some(t) = &f.tls {
        return match t.mtls {
            "yes" | "likely" => FlowClass::Mtls,
            "no" | "unlikely" => FlowClass::TlsNoClientCert,
            _ => FlowClass::TlsUnverified,
        };
    }
    match f.protocol {
        "http" => {
            let refused = f.http.as_ref().is_some_and(|h| h.requests_total > 0 && h.responses_total == 0)
                && matches!(f.reset_by, Some("server" | "both"));
            if refused {
                FlowClass::PlaintextRefused
            } else {
                FlowClass::Plaintext
            }
        }
        "h2c" => FlowClass::Plaintext,
        _ if f.bytes.client + f.bytes.server == 0 => FlowClass::NoData,
        _ => FlowClass::Other,
    }
}

/// Did a plaintext flow come from an Envoy sidecar? Envoy adds `x-envoy-*` headers
/// (`x-envoy-peer-metadata`, `x-envoy-decorator-operation`, `x-envoy-attempt-count`, ...) to the
/// requests it sends; a client without a sidecar does not.
pub fn from_sidecar(f: &FlowReport) -> bool {
    f.istio.as_ref().is_some_and(|i| i.peer_metadata.is_some() || i.peer_metadata_id.is_some())
        || f.http.as_ref().is_some_and(|h| {
            h.requests.iter().take(4).any(|r| r.headers.marks() & crate::classify::http::MARK_ENVOY != 0)
        })
}

/// Counts and reading of one server (ip:port) or one Istio service (from the SNI).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerVerdict {
    /// `ip:port` (servers) or the Istio service, `reviews.default:9080` (services).
    pub name: String,
    /// The Istio service named by the first Istio SNI sent to this server.
    pub service: Option<String>,
    /// Leg of the first flow (pod_network, inbound_passthrough, ...).
    pub leg: &'static str,
    /// Flows counted (pod-network flows and legs).
    pub flows: u64,
    /// TLS with a client certificate (yes or likely).
    pub mtls: u64,
    /// ... of which inferred from TLS 1.3 record sizes and not confirmed (likely).
    pub mtls_inferred: u64,
    /// TLS without a client certificate (no or unlikely).
    pub tls_no_client_cert: u64,
    /// TLS whose client authentication was not seen (unknown).
    pub tls_unverified: u64,
    /// TLS handshakes refused by the server or ended by a fatal alert.
    pub tls_failed: u64,
    /// The first such failure, e.g. `unknown_ca alert from the server`.
    pub tls_failure: Option<String>,
    /// Plaintext HTTP / h2c.
    pub plaintext: u64,
    /// Plaintext HTTP requests reset by the server without an answer.
    pub plaintext_refused: u64,
    /// Plaintext flows (answered or refused) whose requests carried Envoy's `x-envoy-*` headers:
    /// sent by a client sidecar that does not originate mTLS.
    pub plaintext_from_sidecar: u64,
    /// Neither TLS nor HTTP.
    pub other: u64,
    /// Connections without payload.
    pub no_data: u64,
    /// Loopback legs inside the pod to this address (Envoy -> app from 127.0.0.6, app ->
    /// Envoy...): plaintext by design, never counted in the columns above.
    pub legs: u64,
    /// One line for a person.
    pub reading: String,
}

impl ServerVerdict {
    fn add(&mut self, class: FlowClass) {
        self.flows += 1;
        match class {
            FlowClass::Mtls => self.mtls += 1,
            FlowClass::TlsNoClientCert => self.tls_no_client_cert += 1,
            FlowClass::TlsUnverified => self.tls_unverified += 1,
            FlowClass::TlsFailed => self.tls_failed += 1,
            FlowClass::Plaintext => self.plaintext += 1,
            FlowClass::PlaintextRefused => self.plaintext_refused += 1,
            FlowClass::Other => self.other += 1,
            FlowClass::NoData => self.no_data += 1,
        }
    }

    /// The one-line reading of the counts (docs/istio.md lists them).
    fn read(&self, port: Option<u16>, exempt: &[u16]) -> String {
        let (m, n, p, r) =
            (self.mtls > 0, self.tls_no_client_cert > 0, self.plaintext > 0, self.plaintext_refused > 0);
        let unverified = self.tls_unverified;
        let all_inferred = m && self.mtls_inferred == self.mtls;
        let base = if self.legs == self.flows {
            let s = if self.legs == 1 { "" } else { "s" };
            return format!("loopback leg{s} inside the pod (plaintext by design)");
        } else if port.is_some_and(|p| exempt.contains(&p)) && !m && !n && (p || r) {
            "plaintext health/metrics port (exempt)".to_string()
        } else {
            match (m, n, p, r) {
                // TLS 1.3 hides the certificates: unless one was seen (TLS <= 1.2) or an XFCC
                // header on the inbound leg confirmed it, mTLS is an inference.
                (true, false, false, false) if all_inferred => "all mutual TLS (inferred from record sizes)".into(),
                (true, false, false, false) => "all mutual TLS (as with STRICT)".into(),
                (true, false, false, true) => "mutual TLS; plaintext refused (reset after plaintext request: a STRICT server met a DISABLE client)".into(),
                (false, false, false, true) => "plaintext refused (reset after plaintext request: a STRICT server met a DISABLE client)".into(),
                (true, false, true, _) => "mixed plaintext and mTLS (as with PERMISSIVE)".into(),
                (false, false, true, _) => "plaintext only (client sidecar off, DestinationRule DISABLE, or no sidecar)".into(),
                (false, true, false, false) => "TLS without client certificates (not Istio mTLS)".into(),
                (true, true, false, _) => "mixed mutual TLS and TLS without client certificates".into(),
                (_, true, true, _) | (_, true, false, true) => "mixed plaintext and TLS without client certificates".into(),
                (false, false, false, false) if unverified > 0 => "TLS; client certificates not seen (handshakes missed or resumed)".into(),
                (false, false, false, false) if self.tls_failed == 1 => {
                    format!("TLS handshake failed ({})", self.tls_failure.as_deref().unwrap_or("refused"))
                }
                (false, false, false, false) if self.tls_failed > 0 => format!(
                    "all {} TLS handshakes failed (first: {})",
                    self.tls_failed,
                    self.tls_failure.as_deref().unwrap_or("refused")
                ),
                _ if self.other > 0 => "neither TLS nor HTTP".into(),
                _ => "no payload (connection attempts only)".into(),
            }
        };
        let mut out = base;
        if self.plaintext_from_sidecar > 0 && self.leg == "pod_network" {
            let all = self.plaintext + self.plaintext_refused;
            out.push_str(&format!(
                "; {} of {all} plaintext from a client sidecar (x-envoy-* headers)",
                self.plaintext_from_sidecar
            ));
        }
        if m && !(all_inferred && !n && !p && !r) && self.mtls_inferred > 0 {
            out.push_str(&format!(
                "; {} of {} mTLS inferred from record sizes",
                self.mtls_inferred, self.mtls
            ));
        }
        if unverified > 0 && (m || n || p || r) {
            out.push_str(&format!("; {unverified} TLS flows unverified"));
        }
        if self.tls_failed > 0 && (m || n || p || r || unverified > 0) {
            let failure = self.tls_failure.as_deref().unwrap_or("refused");
            out.push_str(&format!("; {} TLS handshakes failed (first: {failure})", self.tls_failed));
        }
        if self.legs > 0 {
            let s = if self.legs == 1 { "" } else { "s" };
            out.push_str(&format!("; +{} inbound leg{s} (plaintext by design)", self.legs));
        }
        out
    }
}

/// A flow that broke `--expect mtls` or `--fail-on-plaintext`.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Flow id.
    pub id: u64,
    /// Client endpoint.
    pub client: String,
    /// Server endpoint.
    pub server: String,
    /// What was wrong.
    pub reason: String,
}

/// The outcome of `--expect mtls` / `--fail-on-plaintext` (the summary's `expectations`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Expectations {
    /// `mtls` when `--expect mtls` was given.
    pub expect: Option<&'static str>,
    /// `--fail-on-plaintext` was given.
    pub fail_on_plaintext: bool,
    /// Server ports not checked.
    pub exempt_ports: Vec<u16>,
    /// Loopback legs were checked too.
    pub check_loopback: bool,
    /// Flows checked.
    pub checked: u64,
    /// Checked TLS flows whose client authentication was not seen (not counted as failures).
    pub unverified: u64,
    /// Flows that broke an expectation.
    pub failed: u64,
    /// The first 1,000 of them.
    pub violations: Vec<Violation>,
}

/// Per-server and per-service verdicts and expectation results, built flow by flow.
#[derive(Clone, Debug, Default)]
pub struct MeshBook {
    /// Keyed by address: formatting `ip:port` for every flow was most of counting it.
    servers: KeyedMap<std::net::SocketAddr, ServerVerdict>,
    services: KeyedMap<String, ServerVerdict>,
    not_listed: u64,
    expect: Expectations,
}

/// How a TLS handshake failed, for readings: `unknown_ca alert from the server`.
fn failure_text(f: &FlowReport) -> String {
    let alert = f.tls.as_ref().and_then(|t| t.fatal_alert());
    let refused = f.flags.contains(&"handshake_refused");
    match alert {
        Some(a) if refused && a.from == "server" => {
            crate::sanitize::escape_str(&format!("refused by the server: {} alert", a.description))
        }
        Some(a) if refused => crate::sanitize::escape_str(&format!(
            "refused by the server, then a {} alert from the client",
            a.description
        )),
        Some(a) => crate::sanitize::escape_str(&format!("{} alert from the {}", a.description, a.from)),
        None => "refused by the server: reset after the ClientHello".to_string(),
    }
}

/// First request line of a plaintext flow, for messages.
fn first_request(f: &FlowReport) -> String {
    f.http
        .as_ref()
        .and_then(|h| h.requests.first())
        .map(|r| format!(" ({} {})", r.method.to_terminal(), r.path.to_terminal()))
        .unwrap_or_default()
}

impl MeshBook {
    /// Counts one finished flow.
    pub fn count(&mut self, f: &FlowReport, cfg: &MeshConfig) {
        let class = classify(f);
        let sidecar = matches!(class, FlowClass::Plaintext | FlowClass::PlaintextRefused) && from_sidecar(f);
        let leg = f.istio.as_ref().map_or_else(
            || {
                if f.client.ip().is_loopback() || f.server.ip().is_loopback() {
                    "loopback"
                } else {
                    "pod_network"
                }
            },
            |i| i.leg,
        );
        let service = f.istio.as_ref().and_then(|i| i.sni.as_ref()).map(|s| s.readable());
        let new_server = || {
            let name = super::EndpointText::new(f.server).as_str().to_string();
            (f.server, ServerVerdict { name, service: service.clone(), leg, ..Default::default() })
        };
        let is_leg = leg != "pod_network";
        let inferred = f.tls.as_ref().is_some_and(|t| t.mtls == "likely");
        match tally(&mut self.servers, &f.server, new_server) {
            Some(v) if is_leg => {
                // A leg inside the pod (Envoy -> app to the pod IP, since Istio 1.10 the same
                // ip:port as the mTLS listener) says nothing about what the server accepts.
                v.flows += 1;
                v.legs += 1;
                if v.service.is_none() {
                    v.service.clone_from(&service);
                }
            }
            Some(v) => {
                v.add(class);
                if class == FlowClass::TlsFailed && v.tls_failure.is_none() {
                    v.tls_failure = Some(failure_text(f));
                }
                v.mtls_inferred += u64::from(class == FlowClass::Mtls && inferred);
                v.plaintext_from_sidecar += u64::from(sidecar);
                if v.service.is_none() {
                    v.service.clone_from(&service);
                }
            }
            None => self.not_listed += 1,
        }
        if let Some(svc) = &service {
            let new_service = || {
                (
                    svc.clone(),
                    ServerVerdict {
                        name: svc.clone(),
                        service: Some(svc.clone()),
                        leg,
                        ..Default::default()
                    },
                )
            };
            if let Some(v) = tally(&mut self.services, svc.as_str(), new_service) {
                if is_leg {
                    v.flows += 1;
                    v.legs += 1;
                } else {
                    v.add(class);
                    v.mtls_inferred += u64::from(class == FlowClass::Mtls && inferred);
                }
            }
        }
        self.check(f, class, leg, cfg);
    }

    fn check(&mut self, f: &FlowReport, class: FlowClass, leg: &str, cfg: &MeshConfig) {
        if !cfg.expect_mtls && !cfg.fail_on_plaintext {
            return;
        }
        let exempt_port = cfg.exempt_ports.contains(&f.server.port());
        if exempt_port || (leg != "pod_network" && !cfg.check_loopback) || class == FlowClass::NoData {
            return;
        }
        self.expect.checked += 1;
        let plaintext = matches!(class, FlowClass::Plaintext | FlowClass::PlaintextRefused);
        let reason = if cfg.expect_mtls {
            match class {
                FlowClass::Mtls | FlowClass::NoData => None,
                FlowClass::TlsUnverified => {
                    self.expect.unverified += 1;
                    None
                }
                FlowClass::TlsNoClientCert => {
                    let t = f
                        .tls
                        .as_ref()
                        .map(|t| format!("mtls {}: {}", t.mtls, t.mtls_reason))
                        .unwrap_or_default();
                    Some(format!("TLS without a client certificate ({t})"))
                }
                // No traffic passed, but connections that cannot be made are what a mesh
                // mismatch looks like (a foreign root: unknown_ca): reported, not hidden.
                FlowClass::TlsFailed => Some(format!("TLS handshake failed: {}", failure_text(f))),
                FlowClass::Plaintext => Some(format!("plaintext {}{}", f.protocol, first_request(f))),
                FlowClass::PlaintextRefused => Some(format!(
                    "plaintext {}{}, refused by the server (reset)",
                    f.protocol,
                    first_request(f)
                )),
                FlowClass::Other => Some("neither TLS nor HTTP".to_string()),
            }
        } else {
            None
        };
        let reason = reason.or_else(|| {
            (cfg.fail_on_plaintext && plaintext)
                .then(|| format!("plaintext {}{}", f.protocol, first_request(f)))
        });
        if let Some(reason) = reason {
            self.expect.failed += 1;
            if self.expect.violations.len() < MAX_VIOLATIONS {
                self.expect.violations.push(Violation {
                    id: f.id,
                    client: super::endpoint(f.client),
                    server: super::endpoint(f.server),
                    reason: crate::sanitize::escape_str(&reason),
                });
            }
        }
    }

    /// The verdict lists (most flows first) and the expectation results.
    pub fn finish(
        self,
        cfg: &MeshConfig,
    ) -> (Vec<ServerVerdict>, Vec<ServerVerdict>, u64, Option<Expectations>) {
        let order = |mut v: Vec<ServerVerdict>, by_port: bool| {
            for s in &mut v {
                let port = if by_port { server_port_of(&s.name) } else { None };
                s.reading = s.read(port, &cfg.exempt_ports);
            }
            v.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.name.cmp(&b.name)));
            v
        };
        let servers = order(self.servers.into_values().collect(), true);
        let services = order(self.services.into_values().collect(), false);
        let expect = (cfg.expect_mtls || cfg.fail_on_plaintext).then(|| Expectations {
            expect: cfg.expect_mtls.then_some("mtls"),
            fail_on_plaintext: cfg.fail_on_plaintext,
            exempt_ports: cfg.exempt_ports.clone(),
            check_loopback: cfg.check_loopback,
            ..self.expect
        });
        (servers, services, self.not_listed, expect)
    }
}

/// The entry of `key`, made by `new` the first time while the map has room (MAX_SERVERS).
fn tally<'a, K, Q>(
    map: &'a mut KeyedMap<K, ServerVerdict>,
    key: &Q,
    new: impl FnOnce() -> (K, ServerVerdict),
) -> Option<&'a mut ServerVerdict>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if !map.contains_key(key) {
        if map.len() >= MAX_SERVERS {
            return None;
        }
        let (k, v) = new();
        map.insert(k, v);
    }
    map.get_mut(key)
}

fn server_port_of(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(2352), "39m 12s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(7500), "2h 5m");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 4), "3d 4h");
        assert_eq!(human_duration(59), "59s");
    }

    /// The reading of a server with `counts` (mTLS, TLS without client certificate,
    /// plaintext, refused) pod-network flows, `inferred` of the mTLS ones inferred, and `legs`.
    fn verdict(counts: [u64; 4], inferred: u64, legs: u64, port: u16) -> String {
        let v = ServerVerdict {
            leg: "pod_network",
            flows: counts.iter().sum::<u64>() + legs,
            mtls: counts[0],
            mtls_inferred: inferred,
            tls_no_client_cert: counts[1],
            plaintext: counts[2],
            plaintext_refused: counts[3],
            legs,
            ..Default::default()
        };
        v.read(Some(port), &DEFAULT_EXEMPT_PORTS)
    }

    #[test]
    fn readings() {
        assert_eq!(verdict([3, 0, 0, 0], 0, 0, 9080), "all mutual TLS (as with STRICT)");
        assert_eq!(verdict([2, 0, 1, 0], 0, 0, 9080), "mixed plaintext and mTLS (as with PERMISSIVE)");
        assert_eq!(
            verdict([0, 0, 2, 0], 0, 0, 9080),
            "plaintext only (client sidecar off, DestinationRule DISABLE, or no sidecar)"
        );
        assert_eq!(
            verdict([0, 0, 0, 2], 0, 0, 9080),
            "plaintext refused (reset after plaintext request: a STRICT server met a DISABLE client)"
        );
        assert_eq!(verdict([0, 0, 2, 0], 0, 0, 15021), "plaintext health/metrics port (exempt)");
        assert_eq!(verdict([0, 1, 0, 0], 0, 0, 443), "TLS without client certificates (not Istio mTLS)");
    }

    #[test]
    fn legs_never_make_a_server_plaintext_and_inferences_are_named() {
        // Envoy -> app legs to the pod IP share the mTLS listener's ip:port (Istio >= 1.10).
        assert_eq!(
            verdict([1, 0, 0, 0], 0, 1, 9080),
            "all mutual TLS (as with STRICT); +1 inbound leg (plaintext by design)"
        );
        assert_eq!(verdict([0, 0, 0, 0], 0, 2, 9080), "loopback legs inside the pod (plaintext by design)");
        assert_eq!(verdict([0, 0, 0, 0], 0, 1, 15001), "loopback leg inside the pod (plaintext by design)");
        // TLS 1.3 verdicts from record sizes alone.
        assert_eq!(verdict([2, 0, 0, 0], 2, 0, 9080), "all mutual TLS (inferred from record sizes)");
        assert_eq!(
            verdict([3, 0, 0, 0], 1, 3, 9080),
            "all mutual TLS (as with STRICT); 1 of 3 mTLS inferred from record sizes; +3 inbound legs (plaintext by design)"
        );
        assert_eq!(
            verdict([1, 0, 1, 0], 1, 0, 9080),
            "mixed plaintext and mTLS (as with PERMISSIVE); 1 of 1 mTLS inferred from record sizes"
        );
    }
}

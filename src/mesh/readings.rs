//! Per-server and per-Istio-service counts of finished flows and their one-line readings
//! (docs/istio.md lists them).

use super::expect::Expectations;
use super::MeshConfig;
use crate::classify::istio::Leg;
use crate::classify::tls::MtlsVerdict;
use crate::classify::Protocol;
use crate::record::{Flag, FlowReport};
use crate::wire::KeyedMap;
use crate::wire::Role;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Servers (and services) listed in the summary; later ones are counted in `servers_not_listed`.
const MAX_SERVERS: usize = 10_000;

/// Client addresses of a server's plaintext flows kept to tell a passthrough from a bypass.
const MAX_BYPASS_CLIENTS: usize = 8;

/// What one flow counts as, for the per-server verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlowClass {
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
pub(crate) fn classify(f: &FlowReport) -> FlowClass {
    if f.flags.contains(Flag::HandshakeFailed) || f.flags.contains(Flag::HandshakeRefused) {
        return FlowClass::TlsFailed;
    }
    if let Some(t) = &f.tls {
        return match t.mtls {
            MtlsVerdict::Yes | MtlsVerdict::Likely => FlowClass::Mtls,
            MtlsVerdict::No | MtlsVerdict::Unlikely => FlowClass::TlsNoClientCert,
            MtlsVerdict::Unknown => FlowClass::TlsUnverified,
        };
    }
    match f.protocol {
        Protocol::Http => {
            let refused = f.http.as_ref().is_some_and(|h| h.requests_total > 0 && h.responses_total == 0)
                && f.reset_by_server();
            if refused {
                FlowClass::PlaintextRefused
            } else {
                FlowClass::Plaintext
            }
        }
        Protocol::H2c => FlowClass::Plaintext,
        Protocol::Tls | Protocol::Unknown if f.bytes.client + f.bytes.server == 0 => FlowClass::NoData,
        Protocol::Tls | Protocol::Unknown => FlowClass::Other,
    }
}

/// Counts and reading of one server (ip:port) or one Istio service (from the SNI).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ServerVerdict {
    /// `ip:port` (servers) or the Istio service, `reviews.default:9080` (services).
    pub(crate) name: String,
    /// The Istio service named by the first Istio SNI sent to this server.
    pub(crate) service: Option<String>,
    /// Leg of the first flow.
    pub(crate) leg: Leg,
    /// Flows counted (pod-network flows and legs).
    pub(crate) flows: u64,
    /// TLS with a client certificate (yes or likely).
    pub(crate) mtls: u64,
    /// ... of which inferred from TLS 1.3 record sizes and not confirmed (likely).
    pub(crate) mtls_inferred: u64,
    /// TLS 1.3 flows whose verdict (mTLS or not) was read from the handshake decrypted with the
    /// key log (`--keylog`).
    pub(crate) tls_proven: u64,
    /// TLS without a client certificate (no or unlikely).
    pub(crate) tls_no_client_cert: u64,
    /// TLS whose client authentication was not seen (unknown).
    pub(crate) tls_unverified: u64,
    /// TLS handshakes refused by the server or ended by a fatal alert.
    pub(crate) tls_failed: u64,
    /// The first such failure, e.g. `unknown_ca alert from the server`.
    pub(crate) tls_failure: Option<String>,
    /// Plaintext HTTP / h2c.
    pub(crate) plaintext: u64,
    /// Plaintext HTTP requests reset by the server without an answer.
    pub(crate) plaintext_refused: u64,
    /// Plaintext flows (answered or refused) whose requests carried Envoy's `x-envoy-*` headers:
    /// sent by a client sidecar that does not originate mTLS.
    pub(crate) plaintext_from_sidecar: u64,
    /// Neither TLS nor HTTP.
    pub(crate) other: u64,
    /// Connections without payload.
    pub(crate) no_data: u64,
    /// Loopback legs inside the pod to this address (Envoy -> app from 127.0.0.6, app ->
    /// Envoy...): plaintext by design, never counted in the columns above.
    pub(crate) legs: u64,
    /// Ambient mode: HBONE flows (port 15008), also counted by their TLS verdict.
    pub(crate) hbone: u64,
    /// Ambient mode: plaintext on the pod interface that did not go through ztunnel (leg
    /// `bypass`; with `--mesh-mode auto`, plaintext pod-network flows of a run that shows HBONE),
    /// also counted as plaintext or other.
    pub(crate) bypass: u64,
    /// ... of the HBONE flows, those whose handshake ended in a fatal alert (decrypted with a key
    /// log: ztunnel's `certificate_required` to a client without a certificate).
    #[serde(skip)]
    pub(crate) hbone_refused: u64,
    /// ... of these, the auto mode's (added when the run shows HBONE).
    #[serde(skip)]
    pub(crate) bypass_candidates: u64,
    /// ... of the legs, ztunnel's deliveries to the app on `lo`.
    #[serde(skip)]
    pub(crate) ztunnel_legs: u64,
    /// Plaintext pod-network flows from 169.254.7.127: kubelet probes of an ambient pod.
    #[serde(skip)]
    pub(crate) probes: u64,
    /// Client addresses of its bypass flows (and candidates), at most [`MAX_BYPASS_CLIENTS`];
    /// `None` once there were more.
    #[serde(skip)]
    pub(crate) bypass_clients: Option<Vec<std::net::IpAddr>>,
    /// The pod's proxy dialled this server for an app (a REDIRECTed connection's original
    /// destination): plaintext to it was passed through, not bypassed.
    #[serde(skip)]
    pub(crate) passed_through: bool,
    /// `--ca`: certificate lists (server's and client's) checked on pod-network flows; said in
    /// the reading only.
    #[serde(skip)]
    pub(crate) chains: u64,
    /// ... of which not verified.
    #[serde(skip)]
    pub(crate) chains_failed: u64,
    /// The `--ca` certificate the first verified list led to.
    #[serde(skip)]
    pub(crate) chain_by: Option<std::sync::Arc<str>>,
    /// The first list not verified: `client chain: unknown issuer: CN=...` (escaped).
    #[serde(skip)]
    pub(crate) chain_failure: Option<String>,
    /// One line for a person.
    pub(crate) reading: String,
    /// `--mesh-config`: the configured policy that applies and its contradictions with the
    /// counts above (null without --mesh-config, and for servers seen only through legs
    /// inside the pod).
    pub(crate) policy: Option<super::policy::PolicyReading>,
    /// `--mesh-config`: what the flows showed of the server's namespace and service.
    #[serde(skip)]
    pub(crate) evidence: super::policy::PolicyEvidence,
}

impl ServerVerdict {
    /// Counts one flow: a leg inside the pod apart (it says nothing about what the server
    /// accepts), a pod-network flow by its class (`inferred`: an mTLS verdict from TLS 1.3
    /// record sizes alone).
    fn add(&mut self, class: FlowClass, is_leg: bool, inferred: bool, proven: bool) {
        self.flows += 1;
        if is_leg {
            self.legs += 1;
            return;
        }
        self.tls_proven += u64::from(proven);
        match class {
            FlowClass::Mtls => {
                self.mtls += 1;
                self.mtls_inferred += u64::from(inferred);
            }
            FlowClass::TlsNoClientCert => self.tls_no_client_cert += 1,
            FlowClass::TlsUnverified => self.tls_unverified += 1,
            FlowClass::TlsFailed => self.tls_failed += 1,
            FlowClass::Plaintext => self.plaintext += 1,
            FlowClass::PlaintextRefused => self.plaintext_refused += 1,
            FlowClass::Other => self.other += 1,
            FlowClass::NoData => self.no_data += 1,
        }
    }

    /// The `policy` object of this server (or service), once its counts are complete; `None`
    /// when only legs inside the pod were seen (plaintext by design, no policy to compare).
    pub(crate) fn apply_policy(&mut self, policy: &super::policy::MeshPolicy) {
        if self.flows == self.legs {
            return;
        }
        let seen = super::policy::Observed {
            mtls: self.mtls,
            plaintext: self.plaintext,
            plaintext_refused: self.plaintext_refused,
            other: self.tls_no_client_cert + self.other,
        };
        self.policy = Some(policy.reading(&self.evidence, seen));
    }

    /// Counts the checked certificate lists of a pod-network flow (`--ca`).
    fn add_chains(&mut self, f: &FlowReport) {
        let Some(t) = &f.tls else { return };
        for (side, c) in [("server", &t.server_chain), ("client", &t.client_chain)] {
            let Some(c) = c else { continue };
            self.chains += 1;
            if c.verified {
                if self.chain_by.is_none() {
                    self.chain_by.clone_from(&c.by);
                }
            } else {
                self.chains_failed += 1;
                if self.chain_failure.is_none() {
                    let why = c.error.as_deref().unwrap_or("not verified");
                    self.chain_failure = Some(crate::sanitize::escape_str(&format!("{side} chain: {why}")));
                }
            }
        }
    }

    /// The one-line reading of the counts (docs/istio.md lists them).
    fn read(&self, port: Option<u16>, exempt: &[u16]) -> String {
        let (m, n, p, r) =
            (self.mtls > 0, self.tls_no_client_cert > 0, self.plaintext > 0, self.plaintext_refused > 0);
        let unverified = self.tls_unverified;
        let all_inferred = m && self.mtls_inferred == self.mtls;
        let s = |n: u64| if n == 1 { "" } else { "s" };
        let pod = self.flows - self.legs;
        let base = if self.legs == self.flows && self.ztunnel_legs == self.legs {
            return format!(
                "delivered by ztunnel inside the pod (plaintext by design; {} flow{}, the mTLS leg is HBONE on :15008)",
                self.legs,
                s(self.legs)
            );
        } else if self.legs == self.flows {
            return format!("loopback leg{} inside the pod (plaintext by design)", s(self.legs));
        } else if self.hbone > 0 && self.hbone == pod && self.mtls == self.hbone {
            if all_inferred {
                "all HBONE mTLS (ambient; inferred from record sizes)".to_string()
            } else {
                "all HBONE mTLS (ambient)".to_string()
            }
        } else if self.bypass > 0 && self.hbone == 0 && self.passed_through {
            format!(
                "plaintext to a destination outside the mesh: the pod's proxy passed {} connection{} through, not HBONE (ambient)",
                self.bypass,
                s(self.bypass)
            )
        } else if self.hbone > 0
            && self.hbone == pod
            && self.mtls == 0
            && self.tls_no_client_cert == self.hbone
        {
            if self.hbone_refused == self.hbone {
                "HBONE without a client certificate, refused by the server (as ztunnel does)".to_string()
            } else {
                "HBONE without a client certificate, accepted: the server does not require one (not ztunnel's mTLS)"
                    .to_string()
            }
        } else if self.probes > 0
            && self.probes == self.plaintext + self.plaintext_refused
            && pod == self.probes
        {
            format!(
                "kubelet probe{} only (from 169.254.7.127, plaintext by design in ambient mode)",
                s(self.probes)
            )
        } else if self.bypass > 0 && self.hbone == 0 {
            format!(
                "plaintext bypassing ztunnel: {} flow{} on the pod interface, not HBONE (ambient)",
                self.bypass,
                s(self.bypass)
            )
        } else if self.bypass > 0 {
            format!("mixed: {} HBONE, {} plaintext bypassing ztunnel (ambient)", self.hbone, self.bypass)
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
        if self.probes > 0 && !(self.probes == self.plaintext + self.plaintext_refused && pod == self.probes)
        {
            out.push_str(&format!(
                "; +{} kubelet probe{} (from 169.254.7.127, plaintext by design)",
                self.probes,
                s(self.probes)
            ));
        }
        if self.plaintext_from_sidecar > 0 && self.leg == Leg::PodNetwork {
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
        if self.tls_proven > 0 {
            let tls = self.mtls + self.tls_no_client_cert + unverified;
            if self.tls_proven == tls {
                out.push_str("; proven with the key log");
            } else {
                out.push_str(&format!("; {} of {tls} TLS flows proven with the key log", self.tls_proven));
            }
        }
        if unverified > 0 && (m || n || p || r) {
            out.push_str(&format!("; {unverified} TLS flows unverified"));
        }
        if self.tls_failed > 0 && (m || n || p || r || unverified > 0) {
            let failure = self.tls_failure.as_deref().unwrap_or("refused");
            out.push_str(&format!("; {} TLS handshakes failed (first: {failure})", self.tls_failed));
        }
        if self.chains > 0 && self.chains_failed == 0 {
            let by = self.chain_by.as_deref().map(crate::sanitize::escape_str).unwrap_or_default();
            out.push_str(&format!("; identities signed by the mesh root ({by})"));
        } else if self.chains > 0 {
            out.push_str(&format!(
                "; {} of {} certificate chains not verified against the mesh root (first: {})",
                self.chains_failed,
                self.chains,
                self.chain_failure.as_deref().unwrap_or("not verified")
            ));
        }
        let envoy_legs = self.legs - self.ztunnel_legs;
        if envoy_legs > 0 {
            out.push_str(&format!("; +{envoy_legs} inbound leg{} (plaintext by design)", s(envoy_legs)));
        }
        if self.ztunnel_legs > 0 {
            out.push_str(&format!(
                "; +{} delivered by ztunnel on lo (plaintext by design)",
                self.ztunnel_legs
            ));
        }
        out
    }
}

/// Per-server and per-service verdicts and expectation results, built flow by flow.
#[derive(Clone, Debug, Default)]
pub(crate) struct MeshBook {
    /// Keyed by address: formatting `ip:port` for every flow was most of counting it.
    servers: KeyedMap<std::net::SocketAddr, ServerVerdict>,
    services: KeyedMap<String, ServerVerdict>,
    not_listed: u64,
    expect: Expectations,
    /// A flow showed ambient mode (HBONE, ztunnel's legs).
    ambient_seen: bool,
    /// A flow showed Envoy sidecars (Istio SNI or ALPN, 127.0.0.6, Envoy's ports).
    sidecar_seen: bool,
    /// Original destinations of REDIRECTed connections (what the pod's proxy dialled for the
    /// app), at most [`MAX_SERVERS`].
    dialled: std::collections::HashSet<(std::net::IpAddr, std::net::SocketAddr), crate::wire::KeyedState>,
    /// The service of the flow being counted, written here ([`CountRecord::service`]).
    service_text: String,
}

/// How a TLS handshake failed, for readings: `unknown_ca alert from the server`.
pub(super) fn failure_text(f: &FlowReport) -> String {
    let alert = f.tls.as_ref().and_then(|t| t.fatal_alert());
    let refused = f.flags.contains(Flag::HandshakeRefused);
    match alert {
        Some(a) if refused && a.from == Role::Server => {
            crate::sanitize::escape_str(&format!("refused by the server: {} alert", a.description))
        }
        Some(a) if refused => crate::sanitize::escape_str(&format!(
            "refused by the server, then a {} alert from the client",
            a.description
        )),
        Some(a) => {
            crate::sanitize::escape_str(&format!("{} alert from the {}", a.description, a.from.as_str()))
        }
        None => "refused by the server: reset after the ClientHello".to_string(),
    }
}

/// What counting a flow reads of its report (the summary's totals, [`MeshBook::count_record`]),
/// taken by its worker while the report is in cache: a flow whose line is rendered there goes to
/// the merger as this (~130 bytes), not as its report (~1,250 bytes, boxed, written to memory
/// not in cache, then read cold again by the merger), unless [`CountRecord::needs_report`].
#[derive(Clone, Debug)]
pub(crate) struct CountRecord {
    pub(crate) server: SocketAddr,
    /// The destination the client dialled (REDIRECT).
    pub(crate) original_dst: Option<SocketAddr>,
    pub(crate) client: IpAddr,
    /// The Istio SNI naming the service (its text is shared, not copied): its readable name
    /// (`reviews.default:9080`) is written when the flow is counted, into a buffer kept for the
    /// next. A `String` built per flow was 2.3% of the run's mallocs (default 30 MB slice),
    /// written by a worker and freed by the merger.
    pub(crate) service: Option<crate::classify::istio::IstioSni>,
    pub(crate) class: FlowClass,
    pub(crate) leg: Leg,
    pub(crate) protocol: Protocol,
    /// The TLS facts' verdict (no TLS: None).
    pub(crate) mtls: Option<MtlsVerdict>,
    pub(crate) on_loopback: Option<bool>,
    /// A certificate flag is set.
    pub(crate) any_cert: bool,
    /// Plaintext a client sidecar sent ([`FlowReport::from_sidecar`]).
    pub(crate) from_sidecar: bool,
    /// Istio's signals say sidecar mode.
    pub(crate) sidecar_mode: bool,
    /// TLS decrypted with a key log.
    pub(crate) proven: bool,
    /// An HBONE leg with a fatal TLS alert.
    pub(crate) hbone_refused: bool,
}

impl CountRecord {
    /// What counting `f` reads of it, but for what [`CountRecord::needs_report`] names.
    pub(crate) fn of(f: &FlowReport) -> CountRecord {
        let class = classify(f);
        let leg = super::legs::leg_of(f);
        let tls = f.tls.as_ref();
        CountRecord {
            server: f.server,
            original_dst: f.original_dst,
            client: f.client.ip(),
            service: f.istio.as_ref().and_then(|i| i.sni.clone()),
            class,
            leg,
            protocol: f.protocol,
            mtls: tls.map(|t| t.mtls),
            on_loopback: f.on_loopback,
            any_cert: f.flags.any_cert(),
            from_sidecar: f.from_sidecar,
            sidecar_mode: f
                .istio
                .as_ref()
                .is_some_and(|i| i.mode == Some(crate::classify::istio::Mode::Sidecar)),
            proven: tls.is_some_and(|t| t.confirmed_by == Some(crate::classify::tls::Confirmation::KeyLog)),
            hbone_refused: leg.is_hbone() && tls.is_some_and(|t| t.alerts.iter().any(|a| a.is_fatal())),
        }
    }

    /// Counting with `cfg` reads more of every flow than its record: what `--mesh-config` and
    /// the expectations read. [`MeshBook::count_record`] then needs the report.
    pub(crate) fn reads_reports(cfg: &MeshConfig) -> bool {
        cfg.expect_mtls || cfg.fail_on_plaintext || !cfg.policy_files.is_empty()
    }

    /// Counting `f` reads more of it than this record: its certificate chains (`--ca`), a
    /// failed handshake's alert, the services of an HBONE connection.
    /// [`MeshBook::count_record`] then needs `f`.
    pub(crate) fn needs_report(&self, f: &FlowReport) -> bool {
        self.class == FlowClass::TlsFailed
            || f.tls.as_ref().is_some_and(|t| t.server_chain.is_some() || t.client_chain.is_some())
            || (self.service.is_none()
                && self.leg.is_hbone()
                && f.istio.as_ref().is_some_and(|i| i.hbone.is_some()))
    }
}

impl MeshBook {
    /// Counts one finished flow (the run counts through [`crate::run::Tally`]).
    #[cfg(test)]
    pub(crate) fn count(&mut self, f: &FlowReport, cfg: &MeshConfig) {
        self.count_record(&CountRecord::of(f), Some(f), cfg);
    }

    /// Counts one finished flow from its [`CountRecord`] `r`, and its report `f` unless `r`
    /// says it does not need it ([`CountRecord::needs_report`]).
    pub(crate) fn count_record(&mut self, r: &CountRecord, f: Option<&FlowReport>, cfg: &MeshConfig) {
        let class = r.class;
        let sidecar = matches!(class, FlowClass::Plaintext | FlowClass::PlaintextRefused) && r.from_sidecar;
        let leg = r.leg;
        let mut service_text = std::mem::take(&mut self.service_text);
        let service = r.service.as_ref().map(|s| {
            service_text.clear();
            s.push_readable(&mut service_text, |s, out| out.push_str(s));
            service_text.as_str()
        });
        let new_server = || {
            let name = crate::record::EndpointText::new(r.server).as_str().to_string();
            (
                r.server,
                ServerVerdict { name, service: service.map(str::to_string), leg, ..Default::default() },
            )
        };
        let is_leg = leg.in_pod();
        self.ambient_seen |= leg.mode() == Some(crate::classify::istio::Mode::Ambient);
        if let Some(o) = r.original_dst {
            if self.dialled.len() < MAX_SERVERS {
                // The app's address: in the pod, the proxy's own connection leaves from it too.
                self.dialled.insert((r.client, o));
            }
        }
        self.sidecar_seen |= r.sidecar_mode;
        let plaintext_class =
            matches!(class, FlowClass::Plaintext | FlowClass::PlaintextRefused | FlowClass::Other);
        let bypass = leg == Leg::Bypass;
        let bypass_candidate = cfg.mode == super::MeshMode::Auto
            && leg == Leg::PodNetwork
            && plaintext_class
            && r.on_loopback != Some(true)
            && super::legs::is_bypass_candidate(r.client, r.server.port());
        let inferred = r.mtls == Some(MtlsVerdict::Likely);
        let proven = r.proven;
        // --mesh-config: where the server sits, read once for the server and its service.
        let facts = f.filter(|_| !is_leg && !cfg.policy_files.is_empty()).map(super::policy::FlowFacts::of);
        match tally(&mut self.servers, &r.server, new_server) {
            Some(v) => {
                // A leg inside the pod (Envoy -> app to the pod IP, since Istio 1.10 the same
                // ip:port as the mTLS listener) is counted apart.
                v.add(class, is_leg, inferred, proven);
                if let Some(f) = f.filter(|_| !is_leg) {
                    v.add_chains(f);
                }
                if let Some(facts) = &facts {
                    v.evidence.add(facts);
                }
                if !is_leg && class == FlowClass::TlsFailed && v.tls_failure.is_none() {
                    v.tls_failure = f.map(failure_text);
                }
                v.plaintext_from_sidecar += u64::from(sidecar && !is_leg);
                v.hbone += u64::from(leg.is_hbone());
                v.hbone_refused += u64::from(r.hbone_refused);
                v.bypass += u64::from(bypass);
                v.bypass_candidates += u64::from(bypass_candidate);
                if bypass || bypass_candidate {
                    let c = r.client;
                    v.bypass_clients = match v.bypass_clients.take() {
                        Some(mut l) if l.len() < MAX_BYPASS_CLIENTS || l.contains(&c) => {
                            if !l.contains(&c) {
                                l.push(c);
                            }
                            Some(l)
                        }
                        Some(_) => None,
                        None if v.bypass + v.bypass_candidates == 1 => Some(vec![c]),
                        None => None,
                    };
                }
                v.ztunnel_legs += u64::from(leg == Leg::ZtunnelToApp);
                v.probes +=
                    u64::from(!is_leg && plaintext_class && r.client == super::legs::AMBIENT_PROBE_SOURCE);
                if v.service.is_none() {
                    v.service = service.map(str::to_string);
                }
            }
            None => self.not_listed += 1,
        }
        // HBONE carries no SNI: its services are the `forwarded: host=` of its CONNECT streams
        // (decrypted with a key log), each counted once per connection.
        let mut hbone_services: Vec<String> = Vec::new();
        if service.is_none() && leg.is_hbone() {
            for t in f.iter().flat_map(|f| f.istio.iter()).flat_map(|i| i.hbone.iter().flatten()) {
                let Some(host) = &t.service else { continue };
                let host = crate::sanitize::escape_str(&String::from_utf8_lossy(host.as_bytes()));
                let name = host.strip_suffix(".svc.cluster.local").unwrap_or(&host).to_string();
                if !hbone_services.contains(&name) && hbone_services.len() < 8 {
                    hbone_services.push(name);
                }
            }
        }
        for svc in service.into_iter().chain(hbone_services.iter().map(String::as_str)) {
            let new_service = || {
                (
                    svc.to_string(),
                    ServerVerdict {
                        name: svc.to_string(),
                        service: Some(svc.to_string()),
                        leg,
                        ..Default::default()
                    },
                )
            };
            if let Some(v) = tally(&mut self.services, svc, new_service) {
                v.add(class, is_leg, inferred, proven);
                v.hbone += u64::from(leg.is_hbone());
                if let Some(f) = f.filter(|_| !is_leg) {
                    v.add_chains(f);
                }
                if let Some(facts) = &facts {
                    v.evidence.add(facts);
                }
            }
        }
        if let Some(f) = f {
            self.expect.check(f, class, leg, cfg);
        }
        self.service_text = service_text;
    }

    /// The data plane of the run (the summary's `mesh_mode`): the one `--mesh-mode` names, else
    /// the one the flows showed (`both` for a capture that shows both, e.g. on a node).
    pub(crate) fn data_plane(&self, cfg: &MeshConfig) -> Option<&'static str> {
        match (cfg.mode, self.ambient_seen, self.sidecar_seen) {
            (super::MeshMode::Ambient, ..) => Some("ambient"),
            (super::MeshMode::Sidecar, ..) => Some("sidecar"),
            (_, true, true) => Some("both"),
            (_, true, false) => Some("ambient"),
            (_, false, true) => Some("sidecar"),
            (_, false, false) => None,
        }
    }

    /// The verdict lists (most flows first) and the expectation results.
    pub(crate) fn finish(
        self,
        cfg: &MeshConfig,
    ) -> (Vec<ServerVerdict>, Vec<ServerVerdict>, u64, Option<Expectations>) {
        // --mesh-mode auto: plaintext on the pod network is a bypass when the run shows ambient.
        let ambient = self.ambient_seen && cfg.mode == super::MeshMode::Auto;
        let order = |mut v: Vec<ServerVerdict>, by_port: bool| {
            for s in &mut v {
                if ambient {
                    s.bypass += s.bypass_candidates;
                }
                let port = if by_port { server_port_of(&s.name) } else { None };
                s.reading = s.read(port, &cfg.exempt_ports);
            }
            v.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.name.cmp(&b.name)));
            v
        };
        let dialled = &self.dialled;
        let servers = self
            .servers
            .into_iter()
            .map(|(a, mut v)| {
                // Passed through (not bypassed): every plaintext client of it is an app whose
                // REDIRECTed connection dialled it (the same pod's capture).
                v.passed_through = v
                    .bypass_clients
                    .as_ref()
                    .is_some_and(|l| !l.is_empty() && l.iter().all(|c| dialled.contains(&(*c, a))));
                v
            })
            .collect();
        let servers = order(servers, true);
        let services = order(self.services.into_values().collect(), false);
        let expect = (cfg.expect_mtls || cfg.fail_on_plaintext).then(|| Expectations {
            expect: cfg.expect_mtls.then_some(super::expect::Expect::Mtls),
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
    use super::super::DEFAULT_EXEMPT_PORTS;
    use super::*;

    /// The reading of a server with `counts` (mTLS, TLS without client certificate,
    /// plaintext, refused) pod-network flows, `inferred` of the mTLS ones inferred, and `legs`.
    fn verdict(counts: [u64; 4], inferred: u64, legs: u64, port: u16) -> String {
        let v = ServerVerdict {
            leg: Leg::PodNetwork,
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

    /// A TLS flow from 10.0.0.1 to `server` with mTLS verdict `mtls`.
    fn tls_flow(server: &str, mtls: MtlsVerdict) -> FlowReport {
        let meta = crate::flow::FlowMeta::closed_for_test(
            "10.0.0.1:40000".parse().unwrap(),
            server.parse().unwrap(),
            (1, 2),
            7,
        );
        let tls = crate::classify::tls::TlsReport { mtls, mtls_reason: "test".into(), ..Default::default() };
        FlowReport::for_test(meta, Protocol::Tls, Some(tls), None)
    }

    #[test]
    fn a_record_counts_as_its_report_unless_it_needs_the_report() {
        let likely = tls_flow("10.0.0.2:443", MtlsVerdict::Likely);
        let r = CountRecord::of(&likely);
        assert_eq!(
            (r.class, r.leg, r.mtls, r.protocol),
            (FlowClass::Mtls, Leg::PodNetwork, Some(MtlsVerdict::Likely), Protocol::Tls)
        );
        assert_eq!((r.server, r.client, r.original_dst), (likely.server, likely.client.ip(), None));
        assert_eq!(
            (r.service.as_ref().map(|s| s.readable()), r.any_cert, r.proven, r.hbone_refused),
            (None, false, false, false)
        );
        assert!(!r.needs_report(&likely));
        let plain = CountRecord::of(&tls_flow("10.0.0.3:9080", MtlsVerdict::No));
        assert_eq!((plain.class, plain.mtls), (FlowClass::TlsNoClientCert, Some(MtlsVerdict::No)));
        // The same readings from the records alone as from the reports.
        let cfg = MeshConfig::default();
        assert!(!CountRecord::reads_reports(&cfg));
        let flows = [likely.clone(), tls_flow("10.0.0.3:9080", MtlsVerdict::No), likely.clone()];
        let (mut whole, mut records) = (MeshBook::default(), MeshBook::default());
        for f in &flows {
            whole.count(f, &cfg);
            records.count_record(&CountRecord::of(f), None, &cfg);
        }
        let (w, r) = (whole.finish(&cfg), records.finish(&cfg));
        assert_eq!(format!("{w:?}"), format!("{r:?}"));
        assert_eq!(
            r.0.iter().map(|v| (v.name.as_str(), v.flows, v.mtls)).collect::<Vec<_>>(),
            [("10.0.0.2:443", 2, 2), ("10.0.0.3:9080", 1, 0)]
        );
        // What the record does not hold: a failed handshake's alert, the chains of `--ca`;
        // and what the expectations and `--mesh-config` read.
        let mut failed = tls_flow("10.0.0.2:443", MtlsVerdict::Unknown);
        failed.flags.insert(Flag::HandshakeFailed);
        assert!(CountRecord::of(&failed).needs_report(&failed));
        let mut chained = tls_flow("10.0.0.2:443", MtlsVerdict::Yes);
        if let Some(t) = chained.tls.as_mut() {
            t.server_chain = Some(std::sync::Arc::new(crate::classify::chain::ChainCheck {
                verified: true,
                by: None,
                error: None,
            }));
        }
        assert!(CountRecord::of(&chained).needs_report(&chained));
        assert!(CountRecord::reads_reports(&MeshConfig { expect_mtls: true, ..MeshConfig::default() }));
        assert!(CountRecord::reads_reports(&MeshConfig { fail_on_plaintext: true, ..MeshConfig::default() }));
        assert!(CountRecord::reads_reports(&MeshConfig {
            policy_files: vec!["p.yaml".into()],
            ..MeshConfig::default()
        }));
    }

    #[test]
    fn chain_checks_are_read() {
        let mut v = ServerVerdict {
            leg: Leg::PodNetwork,
            flows: 2,
            mtls: 2,
            chains: 4,
            chain_by: Some("CN=cluster.local root,O=cluster.local".into()),
            ..Default::default()
        };
        assert_eq!(
            v.read(Some(9080), &DEFAULT_EXEMPT_PORTS),
            "all mutual TLS (as with STRICT); identities signed by the mesh root (CN=cluster.local root,O=cluster.local)"
        );
        v.chains_failed = 1;
        v.chain_failure = Some("client chain: unknown issuer: CN=Other Test Root,O=Other Test".into());
        assert_eq!(
            v.read(Some(9080), &DEFAULT_EXEMPT_PORTS),
            "all mutual TLS (as with STRICT); 1 of 4 certificate chains not verified against the mesh root \
             (first: client chain: unknown issuer: CN=Other Test Root,O=Other Test)"
        );
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

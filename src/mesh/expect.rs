//! The `--expect mtls` / `--fail-on-plaintext` checks behind exit code 1.

use super::readings::{failure_text, FlowClass};
use super::MeshConfig;
use crate::classify::istio::Leg;
use crate::record::FlowReport;
use serde::Serialize;

/// Violations kept for the summary (all are counted).
const MAX_VIOLATIONS: usize = 1_000;

/// A flow that broke `--expect mtls` or `--fail-on-plaintext`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Violation {
    /// Flow id.
    pub(crate) id: u64,
    /// Client endpoint.
    pub(crate) client: String,
    /// Server endpoint.
    pub(crate) server: String,
    /// What was wrong.
    pub(crate) reason: String,
}

crate::wire::text_enum! {
    /// What `--expect` asks of every checked flow.
    pub(crate) enum Expect {
        /// `--expect mtls`: mutual TLS.
        Mtls => "mtls",
    }
}

/// The outcome of `--expect mtls` / `--fail-on-plaintext` (the summary's `expectations`).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Expectations {
    /// What `--expect` asked for.
    pub(crate) expect: Option<Expect>,
    /// `--fail-on-plaintext` was given.
    pub(crate) fail_on_plaintext: bool,
    /// Server ports not checked.
    pub(crate) exempt_ports: Vec<u16>,
    /// Loopback legs were checked too.
    pub(crate) check_loopback: bool,
    /// Flows checked.
    pub(crate) checked: u64,
    /// Checked TLS flows whose client authentication was not seen (not counted as failures).
    pub(crate) unverified: u64,
    /// Flows that broke an expectation.
    pub(crate) failed: u64,
    /// The first 1,000 of them.
    pub(crate) violations: Vec<Violation>,
}

/// First request line of a plaintext flow, for messages.
fn first_request(f: &FlowReport) -> String {
    f.http
        .as_ref()
        .and_then(|h| h.requests.first())
        .map(|r| format!(" ({} {})", r.method.to_terminal(), crate::sanitize::escape_bytes(r.path())))
        .unwrap_or_default()
}

impl Expectations {
    /// Checks one finished flow of class `class` on leg `leg`.
    pub(super) fn check(&mut self, f: &FlowReport, class: FlowClass, leg: Leg, cfg: &MeshConfig) {
        if !cfg.expect_mtls && !cfg.fail_on_plaintext {
            return;
        }
        // Kubelet probes of an ambient pod (istio-cni SNATs them to 169.254.7.127 so that ztunnel
        // lets them through in plaintext) are exempt like the sidecar's health ports.
        let exempt_port =
            cfg.exempt_ports.contains(&f.server.port()) || f.client.ip() == super::legs::AMBIENT_PROBE_SOURCE;
        if exempt_port || (leg.in_pod() && !cfg.check_loopback) || class == FlowClass::NoData {
            return;
        }
        self.checked += 1;
        let bypass = leg == Leg::Bypass;
        let plaintext = bypass || matches!(class, FlowClass::Plaintext | FlowClass::PlaintextRefused);
        let reason = if cfg.expect_mtls {
            match class {
                FlowClass::Mtls | FlowClass::NoData => None,
                FlowClass::TlsUnverified => {
                    self.unverified += 1;
                    None
                }
                FlowClass::TlsNoClientCert => {
                    let t = f
                        .tls
                        .as_ref()
                        .map(|t| format!("mtls {}: {}", t.mtls.as_str(), t.mtls_reason))
                        .unwrap_or_default();
                    Some(format!("TLS without a client certificate ({t})"))
                }
                // No traffic passed, but connections that cannot be made are what a mesh
                // mismatch looks like (a foreign root: unknown_ca): reported, not hidden.
                FlowClass::TlsFailed => Some(format!("TLS handshake failed: {}", failure_text(f))),
                FlowClass::Plaintext => {
                    Some(format!("plaintext {}{}", f.protocol.as_str(), first_request(f)))
                }
                FlowClass::PlaintextRefused => Some(format!(
                    "plaintext {}{}, refused by the server (reset)",
                    f.protocol.as_str(),
                    first_request(f)
                )),
                FlowClass::Other => Some("neither TLS nor HTTP".to_string()),
            }
        } else {
            None
        };
        let reason = reason.or_else(|| {
            (cfg.fail_on_plaintext && plaintext)
                .then(|| format!("plaintext {}{}", f.protocol.as_str(), first_request(f)))
        });
        let reason = match reason {
            Some(r) if bypass => Some(format!("{r}, bypassing ztunnel (not HBONE)")),
            r => r,
        };
        if let Some(reason) = reason {
            self.failed += 1;
            if self.violations.len() < MAX_VIOLATIONS {
                self.violations.push(Violation {
                    id: f.id,
                    client: crate::record::endpoint(f.client),
                    server: crate::record::endpoint(f.server),
                    reason: crate::sanitize::escape_str(&reason),
                });
            }
        }
    }
}

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
    facts::add(f, mode);
    cert_warnings(f, cert_warn_secs);
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

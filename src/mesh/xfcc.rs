//! The upgrade of a TLS 1.3 `likely` verdict to `yes` by an `x-forwarded-client-cert` header seen
//! on the matching Envoy → app leg (docs/istio.md).

use crate::classify::istio::{parse_spiffe, IstioReport, Leg};
use crate::classify::tls::{Confirmation, MtlsVerdict};
use crate::record::FlowReport;
use std::collections::VecDeque;

/// XFCC observations kept for matching (oldest dropped first).
const MAX_XFCC: usize = 4_096;

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
pub(crate) struct XfccLegs {
    seen: VecDeque<XfccSeen>,
}

impl XfccLegs {
    /// Records an XFCC client identity seen at `ts` on a loopback leg to `port`.
    pub(crate) fn record(&mut self, port: u16, ts: f64, uri: &str, by: Option<&str>) {
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
    pub(crate) fn confirm(&self, f: &mut FlowReport, server_port: u16, first: f64, last: f64) {
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
        let confirmation =
            Confirmation::Xfcc { port: server_port, clients: uris.iter().map(|u| u.to_string()).collect() };
        t.mtls = MtlsVerdict::Yes;
        t.mtls_reason.to_mut().push_str(&confirmation.reason());
        t.confirmed_by = Some(confirmation);
        if uris.len() == 1 {
            let istio = f.istio.get_or_insert_with(|| IstioReport::empty(Leg::PodNetwork));
            if istio.client_identity.is_none() {
                istio.client_identity = parse_spiffe(uri);
            }
            if let ([by], None) = (bys.as_slice(), &istio.server_identity) {
                istio.server_identity = parse_spiffe(by);
            }
        }
    }
}

/// Whether [`XfccLegs::confirm`] may change this report: a pod-network TLS flow whose verdict
/// is `likely`.
pub(crate) fn may_confirm(f: &FlowReport) -> bool {
    f.tls.as_ref().is_some_and(|t| t.mtls == MtlsVerdict::Likely)
        && f.istio.as_ref().is_none_or(|i| i.leg == Leg::PodNetwork)
}

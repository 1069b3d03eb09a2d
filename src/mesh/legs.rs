//! Which leg of the mesh a flow is (sidecar ↔ sidecar on the pod network, HBONE between
//! ztunnels, one of the legs inside a pod, or plaintext bypassing ztunnel), from its addresses,
//! ports, the interface it was captured on and whether it carries TLS.

use crate::classify::istio::Leg;
use std::net::IpAddr;

/// The data plane a run is told (or left to find) the pod uses: `--mesh-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MeshMode {
    /// Legs that only one data plane has are named from the flow's own evidence; plaintext on
    /// the pod interface is called `bypass` in the readings when the run shows HBONE.
    #[default]
    Auto,
    /// Envoy sidecars: loopback legs are Envoy's.
    Sidecar,
    /// Ambient mode (ztunnel, no sidecar): 15001 is ztunnel's, deliveries on `lo` are
    /// ztunnel's, and plaintext on the pod interface is `bypass` flow by flow.
    Ambient,
}

/// What the leg of a flow is decided from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LegFacts {
    pub(crate) client: IpAddr,
    pub(crate) server: IpAddr,
    pub(crate) server_port: u16,
    /// An iptables REDIRECT sent it to a loopback proxy (its halves were paired).
    pub(crate) redirected: bool,
    /// Captured on a loopback interface (`None`: the link layer does not say).
    pub(crate) on_loopback: Option<bool>,
    /// ... known from a cooked capture's device type (not from zero Ethernet addresses, which
    /// tools writing captures also leave).
    pub(crate) loopback_certain: bool,
    /// It carries TLS.
    pub(crate) tls: bool,
    /// It carries plaintext HTTP, h2c or other bytes that are not TLS.
    pub(crate) plaintext: bool,
}

/// ztunnel's HBONE port.
pub(crate) const HBONE_PORT: u16 = 15008;

/// The source address of kubelet probes in an ambient pod: istio-cni SNATs them to it so that
/// ztunnel lets them through in plaintext.
pub(crate) const AMBIENT_PROBE_SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 7, 127));

/// Which leg of the mesh a flow is (the JSON `istio.leg`):
/// - `hbone`: TLS to port 15008 (ztunnel's HBONE, or a sidecar's HBONE listener);
/// - `app_to_envoy` / `app_to_ztunnel`: a loopback connection to the outbound capture port
///   15001, or any connection an iptables REDIRECT sent to a loopback proxy (`redirected`); the
///   name is ztunnel's when the mode is ambient;
/// - `inbound_passthrough`: from 127.0.0.6, Envoy's inbound connection to the app;
/// - `envoy_local`: a loopback connection to Envoy's own ports (admin, metrics, health);
/// - `loopback`: another loopback connection (Envoy ↔ app);
/// - `ztunnel_to_app`: captured on the loopback interface between non-loopback addresses and
///   not from 127.0.0.6: ztunnel's in-pod delivery to the app, from the client's spoofed
///   address (mode auto: only when a cooked capture says `lo`, as `tcpdump -i any` does, not
///   from zero Ethernet addresses alone; mode sidecar: `loopback`);
/// - `bypass` (mode ambient): plaintext on the pod interface that is not to 15008, not a
///   kubelet probe (from 169.254.7.127) and not DNS (port 53 or ztunnel's 15053);
/// - `pod_network`: anything else (sidecar ↔ sidecar, node ↔ pod).
pub(crate) fn leg(x: &LegFacts, mode: MeshMode) -> Leg {
    let ambient = mode == MeshMode::Ambient;
    let loopback_addr = x.client.is_loopback() || x.server.is_loopback();
    if x.server_port == HBONE_PORT && x.tls && !loopback_addr {
        Leg::Hbone
    } else if x.redirected {
        if ambient {
            Leg::AppToZtunnel
        } else {
            Leg::AppToEnvoy
        }
    } else if x.client == IpAddr::from([127, 0, 0, 6]) {
        Leg::InboundPassthrough
    } else if loopback_addr {
        match x.server_port {
            15001 if ambient => Leg::AppToZtunnel,
            15001 => Leg::AppToEnvoy,
            15000 | 15004 | 15020 | 15021 | 15090 => Leg::EnvoyLocal,
            _ => Leg::Loopback,
        }
    } else if x.on_loopback == Some(true) && (ambient || (mode == MeshMode::Auto && x.loopback_certain)) {
        Leg::ZtunnelToApp
    } else if x.on_loopback == Some(true) && mode == MeshMode::Sidecar {
        Leg::Loopback
    } else if ambient && x.plaintext && is_bypass_candidate(x.client, x.server_port) {
        Leg::Bypass
    } else {
        Leg::PodNetwork
    }
}

/// The leg of a flow without Istio facts, as the readings, the graph and the metrics name it:
/// loopback when an end is, else the pod network.
pub(crate) fn leg_without_istio(client: IpAddr, server: IpAddr) -> Leg {
    if client.is_loopback() || server.is_loopback() {
        Leg::Loopback
    } else {
        Leg::PodNetwork
    }
}

/// The leg of a flow record: its `istio.leg`, else [`leg_without_istio`].
pub(crate) fn leg_of(f: &crate::record::FlowReport) -> Leg {
    f.istio.as_ref().map_or_else(|| leg_without_istio(f.client.ip(), f.server.ip()), |i| i.leg)
}

/// Plaintext on the pod interface of an ambient pod is a bypass unless it is a kubelet probe or
/// DNS.
pub(crate) fn is_bypass_candidate(client: IpAddr, server_port: u16) -> bool {
    client != AMBIENT_PROBE_SOURCE && !matches!(server_port, 53 | 15053 | HBONE_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(client: &str, server: &str, port: u16) -> LegFacts {
        LegFacts {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            server_port: port,
            redirected: false,
            on_loopback: None,
            loopback_certain: false,
            tls: false,
            plaintext: true,
        }
    }

    #[test]
    fn sidecar_legs() {
        let auto = MeshMode::Auto;
        assert_eq!(leg(&facts("127.0.0.6", "10.0.0.5", 9080), auto), Leg::InboundPassthrough);
        assert_eq!(leg(&facts("127.0.0.1", "127.0.0.1", 8080), auto), Leg::Loopback);
        assert_eq!(leg(&facts("127.0.0.1", "127.0.0.1", 15001), auto), Leg::AppToEnvoy);
        assert_eq!(leg(&facts("::1", "::1", 15021), auto), Leg::EnvoyLocal);
        assert_eq!(leg(&facts("10.0.0.2", "10.0.0.5", 9080), auto), Leg::PodNetwork);
        let redirected = LegFacts { redirected: true, ..facts("10.0.0.2", "127.0.0.1", 9080) };
        assert_eq!(leg(&redirected, auto), Leg::AppToEnvoy);
        assert_eq!(leg(&redirected, MeshMode::Ambient), Leg::AppToZtunnel);
    }

    #[test]
    fn ambient_legs() {
        let (auto, ambient) = (MeshMode::Auto, MeshMode::Ambient);
        let hbone = LegFacts { tls: true, plaintext: false, ..facts("10.0.0.2", "10.0.0.5", 15008) };
        assert_eq!(leg(&hbone, auto), Leg::Hbone);
        assert_eq!(leg(&hbone, MeshMode::Sidecar), Leg::Hbone);
        // ztunnel's delivery on lo, from the client's address.
        let delivered = LegFacts {
            on_loopback: Some(true),
            loopback_certain: true,
            ..facts("10.0.0.2", "10.0.0.5", 8080)
        };
        assert_eq!(leg(&delivered, auto), Leg::ZtunnelToApp);
        assert_eq!(leg(&delivered, MeshMode::Sidecar), Leg::Loopback);
        // Zero Ethernet addresses alone (`tcpdump -i lo`, or a tool's capture): ambient mode only.
        let zero_macs = LegFacts { loopback_certain: false, ..delivered };
        assert_eq!(leg(&zero_macs, auto), Leg::PodNetwork);
        assert_eq!(leg(&zero_macs, ambient), Leg::ZtunnelToApp);
        // The same addresses on the pod interface: plaintext that bypassed ztunnel.
        let on_eth0 = LegFacts { on_loopback: Some(false), loopback_certain: false, ..delivered };
        assert_eq!(leg(&on_eth0, ambient), Leg::Bypass);
        assert_eq!(leg(&on_eth0, auto), Leg::PodNetwork);
        assert_eq!(leg(&LegFacts { plaintext: false, ..on_eth0 }, ambient), Leg::PodNetwork);
        assert_eq!(leg(&facts("169.254.7.127", "10.0.0.5", 8080), ambient), Leg::PodNetwork);
        assert_eq!(leg(&facts("10.0.0.5", "10.96.0.10", 53), ambient), Leg::PodNetwork);
        assert_eq!(leg(&facts("127.0.0.1", "127.0.0.1", 15001), ambient), Leg::AppToZtunnel);
    }
}

//! Which leg of the mesh a flow is (sidecar ↔ sidecar on the pod network, or one of the loopback
//! legs inside a pod), from its addresses and ports.

use crate::classify::istio::Leg;

/// Which leg of the mesh a flow is, from its addresses and ports (the JSON `istio.leg`):
/// - `inbound_passthrough`: from 127.0.0.6, Envoy's inbound connection to the app;
/// - `app_to_envoy`: a loopback connection to Envoy's outbound capture port 15001, or any
///   connection an iptables REDIRECT sent to a loopback proxy (`redirected`: its halves were
///   paired by `flow::redirect`);
/// - `envoy_local`: a loopback connection to Envoy's own ports (admin, metrics, health);
/// - `loopback`: another loopback connection (Envoy ↔ app);
/// - `pod_network`: anything else (sidecar ↔ sidecar, node ↔ pod).
pub(crate) fn leg(
    client_ip: std::net::IpAddr,
    server_ip: std::net::IpAddr,
    server_port: u16,
    redirected: bool,
) -> Leg {
    if redirected {
        Leg::AppToEnvoy
    } else if client_ip == std::net::IpAddr::from([127, 0, 0, 6]) {
        Leg::InboundPassthrough
    } else if client_ip.is_loopback() || server_ip.is_loopback() {
        match server_port {
            15001 => Leg::AppToEnvoy,
            15000 | 15004 | 15020 | 15021 | 15090 => Leg::EnvoyLocal,
            _ => Leg::Loopback,
        }
    } else {
        Leg::PodNetwork
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(leg(ip("127.0.0.6"), ip("10.0.0.5"), 9080, false), Leg::InboundPassthrough);
        assert_eq!(leg(ip("127.0.0.1"), ip("127.0.0.1"), 8080, false), Leg::Loopback);
        assert_eq!(leg(ip("127.0.0.1"), ip("127.0.0.1"), 15001, false), Leg::AppToEnvoy);
        assert_eq!(leg(ip("::1"), ip("::1"), 15021, false), Leg::EnvoyLocal);
        assert_eq!(leg(ip("10.0.0.2"), ip("10.0.0.5"), 9080, false), Leg::PodNetwork);
        assert_eq!(leg(ip("10.0.0.2"), ip("127.0.0.1"), 9080, true), Leg::AppToEnvoy);
    }
}

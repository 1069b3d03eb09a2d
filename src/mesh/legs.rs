//! Which leg of the mesh a flow is (sidecar ↔ sidecar on the pod network, or one of the loopback
//! legs inside a pod), from its addresses and ports, and the words for it.

/// Which leg of the mesh a flow is, from its addresses and ports (the JSON `istio.leg`):
/// - `inbound_passthrough`: from 127.0.0.6, Envoy's inbound connection to the app;
/// - `app_to_envoy`: a loopback connection to Envoy's outbound capture port 15001, or any
///   connection an iptables REDIRECT sent to a loopback proxy (`redirected`: its halves were
///   paired by `flow::redirect`);
/// - `envoy_local`: a loopback connection to Envoy's own ports (admin, metrics, health);
/// - `loopback`: another loopback connection (Envoy ↔ app);
/// - `pod_network`: anything else (sidecar ↔ sidecar, node ↔ pod).
pub fn leg(
    client_ip: std::net::IpAddr,
    server_ip: std::net::IpAddr,
    server_port: u16,
    redirected: bool,
) -> &'static str {
    if redirected {
        "app_to_envoy"
    } else if client_ip == std::net::IpAddr::from([127, 0, 0, 6]) {
        "inbound_passthrough"
    } else if client_ip.is_loopback() || server_ip.is_loopback() {
        match server_port {
            15001 => "app_to_envoy",
            15000 | 15004 | 15020 | 15021 | 15090 => "envoy_local",
            _ => "loopback",
        }
    } else {
        "pod_network"
    }
}

/// A person's words for a [`leg`].
pub fn leg_text(leg: &str) -> &'static str {
    match leg {
        "inbound_passthrough" => "Envoy -> app, inbound (loopback, source 127.0.0.6)",
        "app_to_envoy" => "app -> Envoy outbound capture (loopback, port 15001)",
        "envoy_local" => "Envoy local port (loopback)",
        "loopback" => "Envoy <-> app (loopback)",
        _ => "pod network",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(leg(ip("127.0.0.6"), ip("10.0.0.5"), 9080, false), "inbound_passthrough");
        assert_eq!(leg(ip("127.0.0.1"), ip("127.0.0.1"), 8080, false), "loopback");
        assert_eq!(leg(ip("127.0.0.1"), ip("127.0.0.1"), 15001, false), "app_to_envoy");
        assert_eq!(leg(ip("::1"), ip("::1"), 15021, false), "envoy_local");
        assert_eq!(leg(ip("10.0.0.2"), ip("10.0.0.5"), 9080, false), "pod_network");
    }
}

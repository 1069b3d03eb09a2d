//! Istio's own signals on the wire, read from the TLS and HTTP facts: the SNI Envoy sets for
//! mesh traffic (`outbound_.<port>_.<subset>_.<fqdn>`), the ALPN tokens sidecars offer
//! (`istio-peer-exchange`, `istio`, `istio-http/1.0`, `istio-http/1.1`, `istio-h2`), and the
//! well-known Istio ports. Pure functions over strings and numbers; no state.

use serde::Serialize;

/// A parsed Istio SNI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstioSni {
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Service port.
    pub port: u16,
    /// DestinationRule subset, null for `_`.
    pub subset: Option<String>,
    /// Full host name, e.g. `reviews.default.svc.cluster.local`.
    pub fqdn: String,
    /// First label of the host (`reviews`).
    pub service: String,
    /// Second label when the host is a Kubernetes service name (`default`).
    pub namespace: Option<String>,
}

impl IstioSni {
    /// `reviews.default:9080 (subset v2)`.
    pub fn readable(&self) -> String {
        let host = match &self.namespace {
            Some(ns) => format!("{}.{ns}", self.service),
            None => self.fqdn.clone(),
        };
        match &self.subset {
            Some(s) => format!("{host}:{} (subset {s})", self.port),
            None => format!("{host}:{}", self.port),
        }
    }
}

/// Parses `outbound_.9080_.v2_.reviews.default.svc.cluster.local` (Envoy's cluster name used as
/// SNI for Istio mTLS); `None` for any other name.
pub fn parse_sni(sni: &str) -> Option<IstioSni> {
    let mut parts = sni.splitn(4, "_.");
    let direction = parts.next()?;
    if direction != "outbound" && direction != "inbound" {
        return None;
    }
    let port: u16 = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let fqdn = parts.next()?;
    if fqdn.is_empty() {
        return None;
    }
    let mut labels = fqdn.split('.');
    let service = labels.next()?.to_string();
    let namespace = labels.next().filter(|_| fqdn.contains(".svc")).map(str::to_string);
    Some(IstioSni {
        direction: direction.to_string(),
        port,
        subset: (!subset.is_empty() && subset != "_").then(|| subset.to_string()),
        fqdn: fqdn.to_string(),
        service,
        namespace,
    })
}

/// What the client's ALPN offer says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstioAlpn {
    /// The Istio tokens offered, in order.
    pub tokens: Vec<String>,
    /// The application protocol the tokens announce: `http/1.0`, `http/1.1`, `h2`, or `tcp`.
    pub app_protocol: Option<String>,
}

/// Reads Istio tokens from an ALPN offer; `None` when there are none (not a sidecar client).
pub fn parse_alpn(offered: &[&[u8]]) -> Option<IstioAlpn> {
    let tokens: Vec<String> = offered
        .iter()
        .filter_map(|a| std::str::from_utf8(a).ok())
        .filter(|a| *a == "istio" || a.starts_with("istio-"))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return None;
    }
    let app = tokens.iter().find_map(|t| match t.as_str() {
        "istio-http/1.0" => Some("http/1.0"),
        "istio-http/1.1" => Some("http/1.1"),
        "istio-h2" => Some("h2"),
        _ => None,
    });
    let app =
        app.or_else(|| tokens.iter().any(|t| t == "istio" || t == "istio-peer-exchange").then_some("tcp"));
    Some(IstioAlpn { tokens, app_protocol: app.map(str::to_string) })
}

/// The Istio facts of one flow (the `istio` object of docs/json.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstioReport {
    /// The SNI, parsed, when it is an Istio cluster name.
    pub sni: Option<IstioSni>,
    /// The client's Istio ALPN tokens: the client is a sidecar (or ztunnel).
    pub alpn: Option<IstioAlpn>,
    /// Role of the server port when it is one of Istio's own.
    pub port_role: Option<&'static str>,
}

/// Istio facts from a flow's SNI, ALPN offer and server port; `None` when there are none.
pub fn report(sni: Option<&[u8]>, alpn_offered: &[&[u8]], server_port: u16) -> Option<IstioReport> {
    let r = IstioReport {
        sni: sni.and_then(|s| std::str::from_utf8(s).ok()).and_then(parse_sni),
        alpn: parse_alpn(alpn_offered),
        port_role: port_role(server_port),
    };
    (r.sni.is_some() || r.alpn.is_some() || r.port_role.is_some()).then_some(r)
}

/// Role of a well-known Istio port.
pub fn port_role(port: u16) -> Option<&'static str> {
    Some(match port {
        15000 => "envoy admin (localhost)",
        15001 => "outbound capture",
        15004 => "debug (localhost)",
        15006 => "inbound capture",
        15008 => "HBONE mTLS tunnel",
        15010 => "istiod xDS (plaintext)",
        15012 => "istiod xDS (mTLS)",
        15014 => "istiod monitoring",
        15017 => "istiod webhook",
        15020 => "merged metrics and app health",
        15021 => "health",
        15053 => "DNS proxy",
        15090 => "envoy metrics",
        15443 => "multi-cluster gateway",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_sni_with_and_without_subset() {
        let s = parse_sni("outbound_.9080_.v2_.reviews.default.svc.cluster.local").unwrap();
        assert_eq!((s.direction.as_str(), s.port, s.subset.as_deref()), ("outbound", 9080, Some("v2")));
        assert_eq!((s.service.as_str(), s.namespace.as_deref()), ("reviews", Some("default")));
        assert_eq!(s.readable(), "reviews.default:9080 (subset v2)");
        let s = parse_sni("outbound_.9080_._.reviews.default.svc.cluster.local").unwrap();
        assert_eq!((s.subset.clone(), s.readable()), (None, "reviews.default:9080".to_string()));
        let s = parse_sni("outbound_.443_._.api.example.com").unwrap();
        assert_eq!(s.readable(), "api.example.com:443");
        for not in ["api.example.test", "outbound_.x_._.a", "outbound_.80_._.", "outbound"] {
            assert_eq!(parse_sni(not), None, "{not}");
        }
    }

    #[test]
    fn istio_alpn_tokens() {
        let a = parse_alpn(&[b"istio-peer-exchange", b"istio"]).unwrap();
        assert_eq!(a.app_protocol.as_deref(), Some("tcp"));
        let a = parse_alpn(&[b"istio-http/1.1", b"istio", b"h2"]).unwrap();
        assert_eq!((a.tokens.len(), a.app_protocol.as_deref()), (2, Some("http/1.1")));
        assert_eq!(parse_alpn(&[b"h2", b"http/1.1"]), None);
        assert_eq!(port_role(15006), Some("inbound capture"));
    }
}

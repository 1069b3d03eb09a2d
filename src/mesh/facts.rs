//! The mesh facts of one flow, added to its record before anything counts or renders it: its
//! Istio facts (leg, SNI, ALPN, identities, peer metadata, XFCC: the `istio` object), the TLS
//! failure flags (`handshake_failed`, `handshake_refused`, `sni_mismatch`), which depend on
//! them, and whether a client sidecar sent its plaintext requests.

use crate::classify::istio::{parse_forwarded, HboneTarget, IstioReport, Leg, Mode};
use crate::classify::tls::TlsReport;
use crate::classify::Protocol;
use crate::record::{Flag, Flags, FlowReport};
use crate::sanitize::WireBytes;

/// Adds the Istio facts, TLS failure flags and sidecar evidence to a record just built.
pub(crate) fn add(f: &mut FlowReport, mode: super::MeshMode) {
    istio(f, mode);
    if f.istio.as_ref().is_some_and(|i| i.leg.is_hbone()) {
        if let Some(w) = f.tls.as_ref().and_then(hbone_shape) {
            f.warnings.push(w);
        }
    }
    let server_reset = f.reset_by_server() && f.bytes.server == 0;
    if let Some(t) = &mut f.tls {
        tls_flags(t, f.istio.as_ref(), server_reset, &mut f.flags, &mut f.warnings);
    }
    f.from_sidecar = from_sidecar(f);
}

/// Writes the Istio facts of a flow into its `istio` (in place: built here and returned, the
/// ~420 bytes were copied three times on their way into the report's box), `None` when it
/// shows none.
fn istio(f: &mut FlowReport, mode: super::MeshMode) {
    let (tls, http) = (f.tls.as_ref(), f.http.as_ref());
    let server_port = f.server.port();
    // Which of the fields istio::report reads the flow has at all: it stops once it found them.
    let present = http.map_or(0, |h| {
        let m = |hs: &crate::sanitize::Headers| hs.marks();
        h.requests
            .iter()
            .map(|r| m(&r.headers))
            .chain(h.responses.iter().map(|r| m(&r.headers)))
            .fold(0, |a, b| a | b)
    }) & crate::classify::http::MARK_ISTIO;
    // A flow without any (most) hands it no headers: the filter below walked every message's
    // marks a second time, finding none. bench/misses one thread, 100 MB files: Ir mesh
    // 547.24 -> 547.17 M, default 420.50 -> 420.40 M (cycles~ -0.06 / -0.02 M: misses flat).
    let headers = http.filter(|_| present != 0).into_iter().flat_map(|h| {
        // Only messages marked as carrying one of the fields istio::report reads.
        let marked = |hs: &'_ crate::sanitize::Headers| hs.marks() & crate::classify::http::MARK_ISTIO != 0;
        let req = h.requests.iter().filter(move |r| marked(&r.headers)).flat_map(|r| r.headers.iter());
        let resp = h.responses.iter().filter(move |r| marked(&r.headers)).flat_map(|r| r.headers.iter());
        req.chain(resp)
    });
    let sni = tls.and_then(|t| t.sni.as_ref()).map(|s| s.as_bytes());
    // The ALPN offer on the stack (clients offer two or three): a `Vec` was an allocation and
    // a free per TLS flow that offered any.
    let offered = tls.map_or(&[][..], |t| t.alpn_offered.as_slice());
    let mut alpn_buf: [&[u8]; 8] = [&[]; 8];
    let alpn_vec: Vec<&[u8]>;
    let alpn: &[&[u8]] = if offered.len() <= alpn_buf.len() {
        for (d, a) in alpn_buf.iter_mut().zip(offered) {
            *d = a.as_bytes();
        }
        &alpn_buf[..offered.len()]
    } else {
        alpn_vec = offered.iter().map(|a| a.as_bytes()).collect();
        &alpn_vec
    };
    // The client's certificate, else the identity ztunnel put in a PROXY header (TLV 0xD0).
    let ids = (
        first_uri(tls.map(|t| t.server_certs.as_slice())),
        first_uri(tls.map(|t| t.client_certs.as_slice()))
            .or_else(|| f.proxy_protocol.as_ref().and_then(|p| p.identity())),
    );
    let plaintext = match f.protocol {
        Protocol::Http | Protocol::H2c => true,
        Protocol::Unknown => f.bytes.client + f.bytes.server > 0,
        Protocol::Tls => false,
    };
    let facts = super::legs::LegFacts {
        client: f.client.ip(),
        server: f.server.ip(),
        server_port,
        redirected: f.original_dst.is_some(),
        on_loopback: f.on_loopback,
        loopback_certain: f.loopback_certain,
        tls: tls.is_some(),
        plaintext,
    };
    let mut leg = super::legs::leg(&facts, mode);
    // A PROXY header with Istio's identity TLV (0xD0) on loopback is ztunnel's delivery to an
    // application tunnel (a waypoint's, or an app's PROXY port).
    let ztunnel_proxy = f.proxy_protocol.as_ref().is_some_and(|p| p.identity().is_some());
    if ztunnel_proxy
        && matches!(leg, Leg::Loopback | Leg::PodNetwork)
        && (facts.on_loopback == Some(true) || f.server.ip().is_loopback())
    {
        leg = Leg::ZtunnelToApp;
    }
    let out = &mut f.istio;
    let Some(r) =
        crate::classify::istio::report_into(out, leg, sni, alpn, server_port, ids, (present, headers))
    else {
        return;
    };
    if leg == Leg::Hbone {
        let targets = hbone_targets(http);
        // ztunnel names a Service host (not an ip:port) only towards an east-west gateway,
        // whose tunnel carries a second HBONE (its src/proxy/outbound.rs,
        // build_request_through_gateway); a waypoint gets the Service's ip:port.
        if targets.iter().any(|t| !is_socket_addr(t.authority.as_bytes())) {
            r.leg = Leg::DoubleHbone;
        }
        r.hbone = Some(targets);
    }
    match mode {
        super::MeshMode::Ambient => r.mode = Some(Mode::Ambient),
        super::MeshMode::Sidecar => r.mode = Some(Mode::Sidecar),
        super::MeshMode::Auto => {}
    }
}

/// What differs from ztunnel's HBONE ClientHello (TLS 1.3 only, no SNI, ALPN `h2` alone: its
/// src/tls/certificate.rs), as a warning; `None` when it matches or the ClientHello was missed.
fn hbone_shape(t: &crate::classify::tls::TlsReport) -> Option<String> {
    if t.versions_offered.is_empty() && t.alpn_offered.is_empty() {
        return None;
    }
    let mut odd = Vec::new();
    if let Some(sni) = &t.sni {
        odd.push(format!("SNI {}", sni.to_json_text()));
    }
    if !(t.alpn_offered.len() == 1 && t.alpn_offered[0].as_bytes() == b"h2") {
        let a: Vec<String> = t.alpn_offered.iter().map(|a| a.to_json_text()).collect();
        odd.push(format!("ALPN [{}]", a.join(",")));
    }
    if t.versions_offered.names().any(|v| v != "TLS 1.3") {
        odd.push(format!("versions {}", t.versions_offered.join(",")));
    }
    (!odd.is_empty()).then(|| {
        format!(
            "TLS to the HBONE port 15008, but not ztunnel's ClientHello (TLS 1.3 only, no SNI, ALPN h2): {}",
            odd.join("; ")
        )
    })
}

/// `ip:port` or `[ipv6]:port`.
fn is_socket_addr(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| s.parse::<std::net::SocketAddr>().is_ok())
}

/// The CONNECT streams of an HBONE connection decrypted with a key log (empty without one):
/// each stream's `:authority` and the answer's status.
fn hbone_targets(http: Option<&crate::classify::http::HttpReport>) -> Vec<HboneTarget> {
    let Some(h) = http else { return Vec::new() };
    h.requests
        .iter()
        .filter(|r| r.method.as_bytes() == b"CONNECT")
        .map(|r| {
            let forwarded = r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(b"forwarded"));
            let (client, service) = forwarded.map_or((None, None), |(_, v)| parse_forwarded(v));
            HboneTarget {
                stream: r.stream(),
                authority: WireBytes::new(r.host().unwrap_or(r.path())),
                status: h
                    .responses
                    .iter()
                    .find(|a| a.stream() == r.stream() && a.status >= 200)
                    .map(|a| a.status),
                client: client.map(WireBytes::new),
                service: service.map(WireBytes::new),
            }
        })
        .collect()
}

/// Did a flow's requests come from an Envoy sidecar? Envoy adds `x-envoy-*` headers
/// (`x-envoy-peer-metadata`, `x-envoy-decorator-operation`, `x-envoy-attempt-count`, ...) to the
/// requests it sends; a client without a sidecar does not.
pub(crate) fn from_sidecar(f: &FlowReport) -> bool {
    f.istio.as_ref().is_some_and(|i| i.peer_metadata.is_some() || i.peer_metadata_id.is_some())
        || f.http.as_ref().is_some_and(|h| {
            h.requests.iter().take(4).any(|r| r.headers.marks() & crate::classify::http::MARK_ENVOY != 0)
        })
}

/// First URI SAN of the first certificate of a chain.
fn first_uri(certs: Option<&[crate::classify::cert::CertInfo]>) -> Option<&str> {
    certs?.first()?.san_uris.first().map(String::as_str)
}

/// Certificate names listed in an `sni_mismatch` warning (all are in `tls.server_certs`).
const MAX_NAMES_LISTED: usize = 8;

/// The TLS flags of a flow: `handshake_failed` (a fatal alert in cleartext: an alert after a
/// completed handshake is encrypted), `handshake_refused` (by an alert, or by
/// `server_reset`: a reset from a server that sent nothing, before a ServerHello), and
/// `sni_mismatch` (the SNI is not among the names of the server's leaf certificate), with a
/// warning naming the SNI and what the certificate covers.
///
/// Istio SNIs (`outbound_.9080_._.reviews.default.svc.cluster.local`) are never checked: Envoy
/// verifies the peer's SPIFFE identity, not the SNI. TLS 1.3 hides the certificate.
fn tls_flags(
    t: &mut TlsReport,
    istio: Option<&IstioReport>,
    server_reset: bool,
    flags: &mut Flags,
    warnings: &mut Vec<String>,
) {
    use crate::classify::cert::HostMatch;
    if t.awaiting_server && t.refused.is_none() && server_reset {
        t.refuse(crate::classify::tls::Refusal::Reset);
    }
    if t.fatal_alert().is_some() {
        flags.insert(Flag::HandshakeFailed);
    }
    if t.refused.is_some() {
        flags.insert(Flag::HandshakeRefused);
    }
    let istio_sni = istio.is_some_and(|i| i.sni.is_some());
    let (Some(sni), Some(leaf), false) = (&t.sni, t.server_certs.first(), istio_sni) else { return };
    if leaf.covers_host(sni.as_bytes()) == HostMatch::NotCovered {
        flags.insert(Flag::SniMismatch);
        let names = leaf.host_names();
        let mut covers = names.iter().take(MAX_NAMES_LISTED).copied().collect::<Vec<_>>().join(", ");
        if names.is_empty() {
            covers.push_str("no host name");
        } else if names.len() > MAX_NAMES_LISTED {
            covers.push_str(&format!(" and {} more", names.len() - MAX_NAMES_LISTED));
        }
        warnings.push(format!(
            "SNI {} is not covered by the server certificate (it covers: {covers})",
            sni.to_json_text()
        ));
    }
}

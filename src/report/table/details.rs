//! The detail lines under a flow's row: the mTLS reasoning, Istio's legs, identities and
//! peer metadata, certificates (with `-vv` their chains), HTTP requests, PROXY headers, flags and
//! warnings. Every wire-derived string is escaped by [`crate::sanitize`]; lines are built in
//! place (issue 22: through `format!` and a string per piece they were a tenth of the table).

use super::*;
/// Appends one certificate on one line: `subject …; spiffe://…; issuer …` (empty parts left
/// out). Built in place, not through `format!` and `join` (issue 22: ~1 M of the table's
/// instructions on the mesh 30 MB slice).
fn push_cert_line(l: &mut String, c: &CertInfo) {
    let mut first = true;
    let mut part = |l: &mut String, label: &str, text: &str| {
        if !first {
            l.push_str("; ");
        }
        first = false;
        l.push_str(label);
        escape_str_into(text, l);
    };
    if let Some(s) = c.subject.as_deref().filter(|s| !s.is_empty()) {
        part(l, "subject ", s);
    }
    if let Some(u) = c.san_uris.first() {
        part(l, "", u);
    }
    if let Some(i) = c.issuer.as_deref().filter(|s| !s.is_empty()) {
        part(l, "issuer ", i);
    }
    if let Some(e) = &c.parse_error {
        part(l, "unparsed: ", e);
    }
    if first {
        l.push_str("(no names)");
    }
}

/// `--ca`: the mark after a certificate list, `chain ✓ CN=…` or `chain ✗ unknown issuer: CN=…`.
fn chain_mark(c: &ChainCheck) -> String {
    match (c.verified, c.by.as_deref(), c.error.as_deref()) {
        (true, Some(by), _) if !by.is_empty() => format!("chain ✓ {}", escape_str(by)),
        (true, _, _) => "chain ✓".into(),
        (false, _, e) => format!("chain ✗ {}", escape_str(e.unwrap_or("not verified"))),
    }
}

/// `head` and a certificate line with its list's `--ca` mark, when checked.
fn cert_line_checked(head: &str, c: &CertInfo, chain: Option<&ChainCheck>) -> String {
    let mut l = line(&[head], 128);
    push_cert_line(&mut l, c);
    if let Some(ch) = chain {
        l.push_str("; ");
        l.push_str(&chain_mark(ch));
    }
    l
}

/// `-vv`: every certificate of a chain, a few lines each.
fn chain_lines(v: &mut Vec<String>, role: &str, certs: &[CertInfo], chain: Option<&ChainCheck>) {
    if certs.is_empty() {
        return;
    }
    let n = certs.len();
    let mark = chain.map(|c| format!(" {}", chain_mark(c))).unwrap_or_default();
    v.push(format!("{role} certificate chain ({n} certificate{}):{mark}", if n == 1 { "" } else { "s" }));
    for (i, c) in certs.iter().enumerate() {
        let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).map_or("-".into(), escape_str);
        v.push(format!("  {}. subject {}", i + 1, dash(c.subject.as_deref())));
        v.push(format!("     issuer {}", dash(c.issuer.as_deref())));
        let sans: Vec<String> = (c.san_dns.iter().map(|s| format!("DNS:{}", escape_str(s))))
            .chain(c.san_ips.iter().map(|s| format!("IP:{}", escape_str(s))))
            .chain(c.san_uris.iter().map(|s| format!("URI:{}", escape_str(s))))
            .chain(c.san_emails.iter().map(|s| format!("email:{}", escape_str(s))))
            .collect();
        if !sans.is_empty() {
            v.push(format!("     SAN {}", sans.join(", ")));
        }
        if c.not_before.is_some() || c.not_after.is_some() {
            let state = if c.expired {
                " (expired at capture time)".to_string()
            } else if c.not_yet_valid {
                " (not yet valid at capture time)".to_string()
            } else {
                c.expires_in_secs
                    .map(|s| format!(" (expires {} after the capture)", crate::mesh::human_duration(s)))
                    .unwrap_or_default()
            };
            v.push(format!(
                "     valid {} to {}{state}",
                c.not_before.as_deref().unwrap_or("?"),
                c.not_after.as_deref().unwrap_or("?")
            ));
        }
        let mut key = Vec::new();
        if let Some(k) = &c.public_key {
            key.push(format!("key {}", escape_str(k)));
        }
        if let Some(s) = &c.serial {
            key.push(format!("serial {s}"));
        }
        if !key.is_empty() {
            v.push(format!("     {}", key.join(", ")));
        }
        if let Some(e) = &c.parse_error {
            v.push(format!("     not parsed: {}", escape_str(e)));
        }
    }
}

/// Indented detail lines under a flow row.
pub(super) fn details(f: &FlowReport, opts: TableOptions) -> Vec<String> {
    let mut v = Vec::new();
    let verbose = opts.verbose;
    // First, as on the wire.
    if let Some(p) = &f.proxy_protocol {
        v.push(proxy_line(p, verbose));
        if verbose >= 1 {
            proxy_tlv_lines(&mut v, p);
        }
    }
    if let Some(t) = &f.tls {
        if verbose >= 1 {
            let mut p = vec![format!("tls: {}", t.version.as_deref().unwrap_or("version not negotiated"))];
            if let Some(c) = &t.cipher {
                p.push(escape_str(c));
            }
            if !t.versions_offered.is_empty() {
                p.push(format!("offered {}", t.versions_offered.join(", ")));
            }
            if let Some(s) = &t.sni {
                p.push(format!("SNI {}", s.to_terminal()));
            }
            if !t.alpn_offered.is_empty() {
                let a: Vec<String> = t.alpn_offered.iter().map(|a| a.to_terminal()).collect();
                p.push(format!("ALPN {}", a.join(",")));
            }
            if let Some(s) = &t.alpn_selected {
                p.push(format!("selected {}", s.to_terminal()));
            }
            if let Some(r) = t.resumption {
                p.push(format!("resumed ({})", r.as_str()));
            }
            v.push(p.join("; "));
            if let (Some(ja4), Some(ja3)) = (t.ja4(), t.ja3()) {
                v.push(format!("fingerprints: ja4 {ja4}; ja3 {ja3}"));
            }
        }
        if verbose >= 2 {
            chain_lines(&mut v, "server", &t.server_certs, t.server_chain.as_deref());
            chain_lines(&mut v, "client", &t.client_certs, t.client_chain.as_deref());
        } else {
            // With --ca, a server chain that did not verify is shown without -v.
            let failed = t.server_chain.as_ref().is_some_and(|c| !c.verified);
            if verbose >= 1 || failed {
                if let Some(c) = t.server_certs.first() {
                    v.push(cert_line_checked("server cert: ", c, t.server_chain.as_deref()));
                }
            }
            if let Some(c) = t.client_certs.first() {
                v.push(cert_line_checked("client cert: ", c, t.client_chain.as_deref()));
            }
        }
        for a in t.alerts.iter().filter(|a| a.is_fatal() || a.description != "close_notify") {
            let mut l = line(&["alert from the ", a.from.as_str(), ": "], 64);
            escape_str_into(&a.level.as_text(), &mut l);
            l.push(' ');
            escape_str_into(&a.description, &mut l);
            if let Some(m) = a.meaning() {
                l.push_str(": ");
                l.push_str(m);
            }
            v.push(l);
        }
        // Shown unless seen plainly: an inference, a confirmation, or a refused certificate request.
        let shown = match t.mtls {
            MtlsVerdict::Unknown | MtlsVerdict::Likely | MtlsVerdict::Unlikely => true,
            MtlsVerdict::Yes => t.confirmed_by.is_some(),
            MtlsVerdict::No => t.client_cert_requested,
        };
        if t.refused.is_some() {
            v.push(line_esc(&["handshake "], &t.mtls_reason));
        } else if shown || verbose >= 1 {
            v.push(line_esc(&["mtls ", t.mtls.as_str(), ": "], &t.mtls_reason));
        }
        // `--keylog`: said when a flow was not decrypted whole.
        if let Some(d) = t.decryption.as_ref().filter(|d| d.status != DecryptStatus::Decrypted) {
            v.push(format!("decryption {}: {}", d.status.as_str(), escape_str(&d.reason)));
        }
    }
    if let Some(i) = &f.istio {
        v.extend(istio_details(i, f.original_dst));
    }
    let pod = f.istio.as_ref().is_none_or(|i| i.leg == Leg::PodNetwork);
    if f.http.is_some() && pod && f.from_sidecar {
        v.push("plaintext from a client sidecar (x-envoy-* headers): its DestinationRule sets tls.mode DISABLE, or it does not originate mTLS".into());
    }
    if let Some(h) = &f.http {
        if verbose >= 1 {
            http_verbose(&mut v, h);
        } else {
            // HBONE's CONNECT streams are listed with the Istio facts.
            let hbone = f.istio.as_ref().is_some_and(|i| i.leg.is_hbone());
            for (i, r) in h.requests.iter().enumerate().take(MAX_DETAIL_REQUESTS) {
                if hbone && r.method.as_bytes() == b"CONNECT" {
                    continue;
                }
                let answer = match r.stream() {
                    // HTTP/2: the final response of the same stream (`0`: its `:status` was lost).
                    Some(_) => h
                        .responses
                        .iter()
                        .find(|a| a.stream() == r.stream() && (a.status >= 200 || a.status == 0)),
                    None => h.responses.iter().filter(|r| r.status >= 200).nth(i),
                };
                if let Some(g) = grpc_summary(r, answer) {
                    v.push(g);
                    continue;
                }
                // Even streams are opened by the server: pushed (RFC 9113 §5.1.1).
                let pushed = if r.stream().is_some_and(|s| s % 2 == 0) { " (pushed)" } else { "" };
                // An HTTP/2 pseudo-header lost with the HPACK table reads `?`.
                let shown = |w: &[u8]| {
                    if r.stream().is_some() {
                        or_unknown(crate::sanitize::escape_bytes(w))
                    } else {
                        crate::sanitize::escape_bytes(w)
                    }
                };
                // CONNECT names its target in `:authority` and has no path (RFC 9113 §8.5).
                let target = match r.host() {
                    Some(h) if r.method.as_bytes() == b"CONNECT" && r.path().is_empty() => h,
                    _ => r.path(),
                };
                // `GET /path → 200 (12 headers, 1 unknown)`, built in place: through `format!`
                // and a string per piece it was ~1,500 instructions a line (26 k lines a 100 MB
                // bench file).
                let mut line = shown(r.method.as_bytes());
                line.push(' ');
                line.push_str(&cut(shown(target), 80));
                line.push_str(pushed);
                if let Some(a) = answer {
                    line.push_str(" → ");
                    push_status(&mut line, a.status);
                }
                line.push_str(" (");
                push_decimal(&mut line, r.headers.len() as u64);
                line.push_str(" headers");
                if r.unknown_fields() > 0 {
                    line.push_str(", ");
                    push_decimal(&mut line, r.unknown_fields().into());
                    line.push_str(" unknown");
                }
                line.push(')');
                v.push(line);
            }
            if h.requests_total > MAX_DETAIL_REQUESTS as u64 {
                v.push(format!("… {} more requests", h.requests_total - MAX_DETAIL_REQUESTS as u64));
            }
            if let Some(h2) = &h.http2 {
                http2_lines(&mut v, h2, false);
            }
        }
    }
    if let Some(p) = &f.preview {
        let (c, s) = (p.client.as_bytes(), p.server.as_bytes());
        if !c.is_empty() {
            v.push(format!("bytes: \"{}\"", escape_bytes(c)));
        }
        if !s.is_empty() && (c.is_empty() || verbose >= 1) {
            v.push(format!("server bytes: \"{}\"", escape_bytes(s)));
        }
    }
    if verbose >= 1 && !f.flags.is_empty() {
        let names: Vec<&str> = f.flags.iter().map(Flag::as_str).collect();
        v.push(format!("flags: {}", names.join(",")));
    }
    let shown = if verbose >= 1 { f.warnings.len() } else { MAX_DETAIL_WARNINGS };
    for w in f.warnings.iter().take(shown) {
        v.push(line_esc(&["warning: "], w));
    }
    if f.warnings.len() > shown {
        v.push(format!("… {} more warnings (-v or --json lists them)", f.warnings.len() - shown));
    }
    v
}

/// A detail line of fixed parts, with room for `more` bytes the caller appends (one allocation
/// of about the line's size: rows are held until their batch is printed).
fn line(parts: &[&str], more: usize) -> String {
    let mut l = String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + more);
    for p in parts {
        l.push_str(p);
    }
    l
}

/// A detail line of fixed parts and then `wire` escaped.
fn line_esc(parts: &[&str], wire: &str) -> String {
    let mut l = line(parts, wire.len());
    escape_str_into(wire, &mut l);
    l
}

/// Appends `v` in decimal.
pub(super) fn push_decimal(out: &mut String, v: u64) {
    let mut digits = [0; 20];
    for &d in crate::wire::decimal(v, &mut digits) {
        out.push(char::from(d));
    }
}

/// `PROXY v2 10.0.0.1:5555 -> 10.0.0.2:8080 id spiffe://…`: the PROXY protocol header the
/// stream opened with.
pub(super) fn proxy_line(p: &crate::classify::proxy::ProxyHeader, verbose: u8) -> String {
    use crate::classify::proxy::{Command, Family};
    let mut s = format!("PROXY v{}", p.version);
    match (p.command, p.source, p.destination) {
        (Command::Local, ..) => s.push_str(" LOCAL (the proxy's own connection)"),
        (Command::Proxy, Some(src), Some(dst)) => s.push_str(&format!(" {src} -> {dst}")),
        (Command::Proxy, ..) if p.family == Family::Unspec && p.version == 1 => {
            s.push_str(" UNKNOWN (no addresses)")
        }
        (Command::Proxy, ..) if p.family == Family::Unspec => s.push_str(" AF_UNSPEC (no addresses)"),
        (Command::Proxy, ..) => s.push_str(&format!(" {} (addresses not shown)", p.family.as_str())),
    }
    if let Some(id) = p.identity() {
        s.push_str(&format!(" id {}", escape_str(id)));
    }
    let others = p.tlvs.iter().filter(|t| t.kind != crate::classify::proxy::TLV_AUTHORITY).count();
    if others > 0 && verbose == 0 {
        s.push_str(&format!(" (+{}; -v lists them)", summary::plural(others as u64, "TLV")));
    }
    s
}

/// `-v`: each TLV of a PROXY header, its value as text or hex.
pub(super) fn proxy_tlv_lines(v: &mut Vec<String>, p: &crate::classify::proxy::ProxyHeader) {
    for t in &p.tlvs {
        let value = match t.text() {
            Some(s) => format!("\"{}\"", escape_str(s)),
            None => t.value.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let cut =
            if usize::from(t.len) > t.value.len() { format!(" (of {} bytes)", t.len) } else { String::new() };
        v.push(format!("  PROXY TLV 0x{:02x}: {value}{cut}", t.kind));
    }
    if p.tlvs_omitted > 0 {
        v.push(format!("  … {} more PROXY TLVs", p.tlvs_omitted));
    }
}

/// A person's words for a leg of the mesh.
fn leg_text(leg: Leg, mode: Option<crate::classify::istio::Mode>) -> &'static str {
    match leg {
        Leg::AppToEnvoy if mode.is_none() => {
            "app -> outbound capture of the pod's proxy (loopback, port 15001)"
        }
        Leg::InboundPassthrough => "Envoy -> app, inbound (loopback, source 127.0.0.6)",
        Leg::AppToEnvoy => "app -> Envoy outbound capture (loopback, port 15001)",
        Leg::EnvoyLocal => "Envoy local port (loopback)",
        Leg::Loopback => "Envoy <-> app (loopback)",
        Leg::PodNetwork => "pod network",
        Leg::Hbone => "HBONE (ambient mTLS tunnel, port 15008)",
        Leg::DoubleHbone => {
            "double HBONE: to an east-west gateway, a second HBONE inside (CONNECT names a Service host)"
        }
        Leg::AppToZtunnel => "app -> ztunnel outbound capture (loopback, port 15001)",
        Leg::ZtunnelToApp => "ztunnel -> app, delivered on lo (plaintext by design)",
        Leg::Bypass => "BYPASS: plaintext on the pod interface, not HBONE",
    }
}

/// Detail lines for the Istio facts of a flow.
fn istio_details(
    i: &crate::classify::istio::IstioReport,
    original_dst: Option<std::net::SocketAddr>,
) -> Vec<String> {
    let mut v = Vec::new();
    match original_dst {
        Some(o) => v.push(format!(
            "leg: {}; dialled {o}, redirected by iptables (both halves on lo paired)",
            leg_text(i.leg, i.mode)
        )),
        None if i.leg != Leg::PodNetwork => v.push(line(&["leg: ", leg_text(i.leg, i.mode)], 0)),
        None => {}
    }
    if i.hbone.as_ref().is_some_and(|t| t.is_empty()) {
        v.push(
            "HBONE: the tunnelled connections (CONNECT targets) are encrypted; a key log shows them".into(),
        );
    }
    let targets = i.hbone.as_deref().unwrap_or_default();
    for t in targets.iter().take(MAX_DETAIL_REQUESTS) {
        let app = t.client.as_ref().map(|c| format!("app {} -> ", c.to_terminal())).unwrap_or_default();
        let via = t.service.as_ref().map(|s| format!(" via Service {}", s.to_terminal())).unwrap_or_default();
        let status = match t.status {
            Some(200) => " → 200 (open)".to_string(),
            Some(s) => format!(" → {} (refused)", status_text(s)),
            None => String::new(),
        };
        let stream = t.stream.map(|s| format!(" (stream {s})")).unwrap_or_default();
        v.push(format!("CONNECT {app}{}{via}{status}{stream}", t.authority.to_terminal()));
    }
    if targets.len() > MAX_DETAIL_REQUESTS {
        v.push(format!("… {} more CONNECT streams", targets.len() - MAX_DETAIL_REQUESTS));
    }

    // These lines are built in place, not through `format!` and a string per part (issue 22:
    // with the peer metadata's, `format!` was ~9 M of the 24 M instructions the table cost
    // over the JSON on the mesh 30 MB slice).
    if let Some(a) = &i.alpn {
        let more = a.tokens.iter().map(|t| t.len() + 1).sum::<usize>() + 32;
        let mut l = line(&["client is an Istio sidecar (ALPN "], more);
        for (k, t) in a.tokens.iter().enumerate() {
            if k > 0 {
                l.push(',');
            }
            escape_str_into(t, &mut l);
        }
        if let Some(p) = a.app_protocol {
            l.push_str(", app protocol ");
            escape_str_into(p.as_str(), &mut l);
        }
        l.push(')');
        v.push(l);
    }
    if i.client_identity.is_some() || i.server_identity.is_some() {
        let uri = |u: Option<&str>| u.map_or(0, |u| u.len() + 9);
        let more = uri(i.client_identity.as_ref().map(|c| c.uri()))
            + uri(i.server_identity.as_ref().map(|s| s.uri()));
        let mut l = line(&["identity: "], more);
        if let Some(c) = &i.client_identity {
            l.push_str("client ");
            escape_str_into(c.uri(), &mut l);
        }
        if let Some(s) = &i.server_identity {
            if i.client_identity.is_some() {
                l.push_str(", ");
            }
            l.push_str("server ");
            escape_str_into(s.uri(), &mut l);
        }
        v.push(l);
    }
    if let Some(x) = i.xfcc.last() {
        let more = x.uri.as_deref().map_or(16, str::len) + x.by.as_deref().map_or(0, |b| b.len() + 4) + 32;
        let mut l = line(&["x-forwarded-client-cert: client "], more);
        match x.uri.as_deref() {
            Some(u) => escape_str_into(u, &mut l),
            None => l.push_str("(no client URI)"),
        }
        if let Some(b) = x.by.as_deref() {
            l.push_str(" by ");
            escape_str_into(b, &mut l);
        }
        l.push_str(" (the request arrived over mTLS)");
        v.push(l);
    }
    if let Some(values) = i.peer_metadata.as_deref().and_then(|m| m.shown()) {
        let mut l = line(&["x-envoy-peer-metadata:"], 160);
        for (k, x) in crate::classify::istio::SHOWN_KEYS.into_iter().zip(&values) {
            if let Some(x) = x {
                l.push(' ');
                l.push_str(k);
                l.push('=');
                escape_str_into(x, &mut l);
            }
        }
        if l.len() > "x-envoy-peer-metadata:".len() {
            v.push(l);
        }
    }
    v
}

//! X.509 certificates seen in cleartext TLS handshakes → the facts an operator needs: who
//! (subject, SANs — SPIFFE IDs are URI SANs), by whom (issuer), and whether it was valid when the
//! capture saw it. Parsing is x509-parser's; a certificate it cannot parse is still reported, with
//! the error, never dropped.

use crate::wire::Timestamp;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// One certificate as seen at one time, serialized as a `certificate` object of docs/json.md:
/// what it says ([`CertFacts`], read through `Deref`), shared by every sighting of the same
/// certificate, and whether it was valid then.
///
/// Shared, not copied: a mesh sends the same few workload certificates in every handshake, and
/// copying their nine strings and lists from the cache was a tenth of the allocations of the
/// benchmark (dhat).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CertInfo {
    facts: Arc<CertFacts>,
    /// Past `not_after` when the capture saw it.
    pub(crate) expired: bool,
    /// Before `not_before` when the capture saw it.
    pub(crate) not_yet_valid: bool,
    /// Seconds from when the capture saw the certificate to `not_after` (negative: expired).
    pub(crate) expires_in_secs: Option<i64>,
}

/// What a certificate says, whenever it is seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CertFacts {
    /// Subject DN, most specific RDN first (`CN=reviews,O=cluster.local`), values unescaped.
    pub(crate) subject: Option<String>,
    /// Issuer DN, same form.
    pub(crate) issuer: Option<String>,
    /// Serial number, lowercase hex without leading zero octets.
    pub(crate) serial: Option<String>,
    /// dNSName SANs.
    pub(crate) san_dns: Vec<String>,
    /// uniformResourceIdentifier SANs (SPIFFE IDs).
    pub(crate) san_uris: Vec<String>,
    /// iPAddress SANs, as text.
    pub(crate) san_ips: Vec<String>,
    /// rfc822Name SANs.
    pub(crate) san_emails: Vec<String>,
    /// Start of validity, RFC 3339.
    pub(crate) not_before: Option<String>,
    /// End of validity, RFC 3339.
    pub(crate) not_after: Option<String>,
    /// Why the DER could not be parsed (other fields are then empty).
    pub(crate) parse_error: Option<String>,
    /// Subject public key: `RSA 2048`, `EC P-256`, `Ed25519`, or the algorithm's OID.
    pub(crate) public_key: Option<String>,
    /// The subject's most specific commonName (host-name checks read it when there are no DNS
    /// SANs); not written on its own: it is in `subject`.
    pub(crate) common_name: Option<String>,
    /// The facts as JSON text, made the first time they are written (report/json.rs).
    pub(crate) json: RenderedJson,
}

/// The JSON text of a certificate's facts, made once per distinct certificate and copied into
/// every flow line that reports it: the same few certificates come in every handshake of a
/// mesh, and writing their fourteen fields one by one was ~1,500 instructions per sighting.
/// Two parts: the fields before `expired` and those after `expires_in_secs` (the three fields
/// between depend on when the certificate was seen). Not part of what the certificate says:
/// compares equal whatever it holds.
#[derive(Clone, Default)]
pub(crate) struct RenderedJson(std::sync::OnceLock<(Box<[u8]>, usize)>);

impl RenderedJson {
    /// The two parts, `render` making the text and where its second part starts on first use.
    pub(crate) fn get(&self, render: impl FnOnce() -> (Box<[u8]>, usize)) -> (&[u8], &[u8]) {
        let (text, split) = self.0.get_or_init(render);
        text.split_at(*split)
    }
}

impl PartialEq for RenderedJson {
    fn eq(&self, _: &RenderedJson) -> bool {
        true
    }
}

impl Eq for RenderedJson {}

impl std::fmt::Debug for RenderedJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderedJson")
    }
}

impl CertInfo {
    /// Prefetches the shared facts (see [`crate::wire::prefetch_bytes`]).
    pub(crate) fn prefetch(&self) {
        crate::wire::prefetch(&*self.facts);
    }
}

impl std::ops::Deref for CertInfo {
    type Target = CertFacts;
    fn deref(&self) -> &CertFacts {
        &self.facts
    }
}

/// Certificates remembered per thread (a mesh sends the same workload certificates in every
/// handshake: on the benchmark, X.509 parsing was most of the TLS time).
const CERT_CACHE: usize = 256;

/// A parsed certificate and its validity bounds (Unix seconds), the part that does not depend
/// on when it was seen.
struct Cached {
    der: Box<[u8]>,
    facts: Arc<CertFacts>,
    validity: Option<(i64, i64)>,
}

thread_local! {
    static CACHE: std::cell::RefCell<Vec<Cached>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Parses one DER certificate seen at `seen`; a certificate seen before on this thread is taken
/// from a small cache (compared byte for byte). A hit moves its entry halfway to the front, a
/// new certificate takes the place of the last one: the certificates a capture sends most stay
/// near the front. (Moving each hit to the front shifted up to 255 entries twice a certificate:
/// ~300 instructions of a hit's ~480 on the mesh bench file.)
pub(crate) fn parse_cert(der: &[u8], seen: Timestamp) -> CertInfo {
    let hit = CACHE.with_borrow_mut(|c| {
        let i = c.iter().position(|e| *e.der == *der)?;
        c.swap(i, i / 2);
        let e = &c[i / 2];
        Some((Arc::clone(&e.facts), e.validity))
    });
    let (facts, validity) = match hit {
        Some(h) => h,
        None => {
            let (facts, validity) = parse_uncached(der);
            let facts = Arc::new(facts);
            CACHE.with_borrow_mut(|c| {
                let e = Cached { der: der.into(), facts: Arc::clone(&facts), validity };
                if c.len() < CERT_CACHE {
                    c.push(e);
                } else if let Some(last) = c.last_mut() {
                    *last = e;
                }
            });
            (facts, validity)
        }
    };
    // (Not `..CertInfo::default()`: that allocates a default `Arc` only to drop it.)
    let mut info = CertInfo { facts, expired: false, not_yet_valid: false, expires_in_secs: None };
    if let Some((nb, na)) = validity {
        info.expired = seen.secs > na;
        info.not_yet_valid = seen.secs < nb;
        info.expires_in_secs = Some(na.saturating_sub(seen.secs));
    }
    info
}

/// Parses a certificate, without the fields that depend on when it was seen.
fn parse_uncached(der: &[u8]) -> (CertFacts, Option<(i64, i64)>) {
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            return (CertFacts { parse_error: Some(format!("{e}")), ..CertFacts::default() }, None);
        }
    };
    let mut info = CertFacts {
        subject: Some(dn_string(cert.subject())),
        issuer: Some(dn_string(cert.issuer())),
        serial: Some(serial_hex(cert.raw_serial())),
        public_key: Some(key_text(cert.public_key())),
        common_name: cert
            .subject()
            .iter_common_name()
            .last()
            .map(|a| attr_text(a.attr_value().tag().0, a.attr_value().data)),
        ..CertFacts::default()
    };
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    info.not_before = Some(rfc3339_secs(nb));
    info.not_after = Some(rfc3339_secs(na));
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            for g in &san.value.general_names {
                match g {
                    GeneralName::DNSName(s) => info.san_dns.push((*s).to_string()),
                    GeneralName::URI(s) => info.san_uris.push((*s).to_string()),
                    GeneralName::RFC822Name(s) => info.san_emails.push((*s).to_string()),
                    GeneralName::IPAddress(b) => info.san_ips.push(ip_text(b)),
                    _ => {}
                }
            }
        }
        Ok(None) => {}
        Err(e) => info.parse_error = Some(format!("subjectAltName: {e}")),
    }
    (info, Some((nb, na)))
}

/// The subject public key in a few words: `RSA 2048`, `EC P-256`, `Ed25519`.
fn key_text(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    use x509_parser::oid_registry as oids;
    let alg = &spki.algorithm.algorithm;
    let key = &spki.subject_public_key.data;
    if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        // (x509-parser's `key_size` counts a modulus without its leading zero octet as 0 bits.)
        return match x509_parser::public_key::RSAPublicKey::from_der(key.as_ref()) {
            Ok((_, k)) => {
                let m = &k.modulus[k.modulus.iter().position(|&b| b != 0).unwrap_or(k.modulus.len())..];
                let bits = m.first().map_or(0, |&b| 8 * m.len() - b.leading_zeros() as usize);
                format!("RSA {bits}")
            }
            Err(_) => "RSA".into(),
        };
    }
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == oids::OID_EC_P256 => "EC P-256".into(),
            Some(c) if c == oids::OID_NIST_EC_P384 => "EC P-384".into(),
            Some(c) if c == oids::OID_NIST_EC_P521 => "EC P-521".into(),
            Some(c) => format!("EC {}", c.to_id_string()),
            None => "EC".into(),
        };
    }
    if *alg == oids::OID_SIG_ED25519 {
        return "Ed25519".into();
    }
    if *alg == oids::OID_SIG_ED448 {
        return "Ed448".into();
    }
    alg.to_id_string()
}

/// How a certificate's names answer a host name (the SNI a client sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostMatch {
    /// A DNS SAN (or, without DNS SANs, the CN) covers it; or an IP SAN equals an IP literal.
    Covered,
    /// The certificate names hosts, none of which covers it.
    NotCovered,
    /// Nothing to check against: the certificate was not parsed, or it names its subject only by
    /// URI SANs (a SPIFFE identity, checked by the peer against the identity, not the host).
    NoHostNames,
}

impl CertFacts {
    /// Does this certificate cover `host`, as a client checking host names would decide (RFC 6125
    /// §6.4 as narrowed by RFC 9525 §6.3): DNS SANs, or the CN only when there are none; ASCII
    /// case-insensitive; a wildcard only as the whole left-most label, matching exactly one
    /// non-empty label (`*.example.test` covers `a.example.test`, not `a.b.example.test` nor
    /// `example.test`); an IP-literal `host` only against the IP SANs.
    pub(crate) fn covers_host(&self, host: &[u8]) -> HostMatch {
        if self.parse_error.is_some() && self.subject.is_none() {
            return HostMatch::NoHostNames;
        }
        let host = host.strip_suffix(b".").unwrap_or(host);
        if let Some(ip) = std::str::from_utf8(host).ok().and_then(|h| h.parse::<std::net::IpAddr>().ok()) {
            let covered = self.san_ips.iter().any(|s| s.parse::<std::net::IpAddr>().ok() == Some(ip));
            return if covered { HostMatch::Covered } else { HostMatch::NotCovered };
        }
        let names: &[String] = if self.san_dns.is_empty() {
            if self.common_name.is_none() && !self.san_uris.is_empty() {
                return HostMatch::NoHostNames;
            }
            self.common_name.as_slice()
        } else {
            &self.san_dns
        };
        if names.iter().any(|n| dns_name_matches(n.as_bytes(), host)) {
            HostMatch::Covered
        } else {
            HostMatch::NotCovered
        }
    }

    /// The host names this certificate covers, for a message: its DNS SANs, else its CN; and its
    /// IP SANs.
    pub(crate) fn host_names(&self) -> Vec<&str> {
        let dns = if self.san_dns.is_empty() { self.common_name.as_slice() } else { &self.san_dns };
        dns.iter().chain(&self.san_ips).map(String::as_str).collect()
    }
}

/// One DNS name (a SAN or CN, possibly `*.`-prefixed) against a host name (RFC 9525 §6.3).
fn dns_name_matches(pattern: &[u8], host: &[u8]) -> bool {
    let pattern = pattern.strip_suffix(b".").unwrap_or(pattern);
    if host.is_empty() || pattern.is_empty() {
        return false;
    }
    match pattern.strip_prefix(b"*.") {
        Some(rest) => {
            // The wildcard stands for the whole first label of `host`, which must not be empty.
            let Some(dot) = host.iter().position(|&b| b == b'.') else { return false };
            dot > 0 && !rest.is_empty() && !rest.contains(&b'*') && host[dot + 1..].eq_ignore_ascii_case(rest)
        }
        None => !pattern.contains(&b'*') && pattern.eq_ignore_ascii_case(host),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_secs(secs: i64) -> String {
    let mut s = crate::wire::rfc3339_secs_prefix(secs);
    s.push('Z');
    s
}

fn serial_hex(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    let mut s = String::with_capacity(2 * (raw.len() - start));
    for &b in &raw[start..] {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// Short attribute names (RFC 4514 §3 and common extras); others print as dotted OIDs.
fn attr_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        _ => return None,
    })
}

/// DN as text, most specific RDN first, multi-valued RDNs joined with `+`.
pub(crate) fn dn_string(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type().to_id_string();
                let key = attr_name(&oid).map(str::to_string).unwrap_or(oid);
                format!("{key}={}", attr_text(a.attr_value().tag().0, a.attr_value().data))
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// Decodes a DirectoryString of any ASN.1 string type.
fn attr_text(tag: u32, data: &[u8]) -> String {
    match tag {
        // BMPString: UTF-16BE.
        30 => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UTF-32BE.
        28 => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}'))
            .collect(),
        // TeletexString: in practice Latin-1.
        20 => data.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_reported_not_dropped() {
        let c = parse_cert(b"\x30\x03\x02\x01", Timestamp::default());
        assert!(c.parse_error.is_some());
        assert_eq!(c.subject, None);
    }

    fn facts(dns: &[&str], cn: Option<&str>, uris: &[&str], ips: &[&str]) -> CertFacts {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        CertFacts {
            subject: Some(cn.map(|c| format!("CN={c}")).unwrap_or_default()),
            common_name: cn.map(str::to_string),
            san_dns: v(dns),
            san_uris: v(uris),
            san_ips: v(ips),
            ..CertFacts::default()
        }
    }

    #[test]
    fn host_names_covered_by_san_cn_wildcard_and_ip() {
        use HostMatch::*;
        let spiffe = "spiffe://cluster.local/ns/default/sa/reviews";
        #[allow(clippy::type_complexity)]
        let cases: &[(&[&str], Option<&str>, &[&str], &[&str], &str, HostMatch)] = &[
            (&["api.example.test"], None, &[], &[], "api.example.test", Covered),
            (&["api.example.test"], None, &[], &[], "API.Example.TEST", Covered),
            (&["API.example.test"], None, &[], &[], "api.example.test", Covered),
            (&["api.example.test"], None, &[], &[], "api.example.test.", Covered),
            (&["api.example.test"], None, &[], &[], "web.example.test", NotCovered),
            (&["api.example.test"], None, &[], &[], "api.example.test.evil", NotCovered),
            (&["a.test", "b.test"], None, &[], &[], "b.test", Covered),
            // Wildcards: the whole left-most label, exactly one non-empty label.
            (&["*.example.test"], None, &[], &[], "a.example.test", Covered),
            (&["*.example.test"], None, &[], &[], "A-1.EXAMPLE.test", Covered),
            (&["*.example.test"], None, &[], &[], "a.b.example.test", NotCovered),
            (&["*.example.test"], None, &[], &[], "example.test", NotCovered),
            (&["*.example.test"], None, &[], &[], ".example.test", NotCovered),
            (&["*.example.test"], None, &[], &[], "aexample.test", NotCovered),
            (&["a.*.example.test"], None, &[], &[], "a.b.example.test", NotCovered),
            (&["f*.example.test"], None, &[], &[], "foo.example.test", NotCovered),
            (&["*"], None, &[], &[], "localhost", NotCovered),
            (&["*."], None, &[], &[], "a.", NotCovered),
            // The CN counts only without DNS SANs.
            (&[], Some("cn.example.test"), &[], &[], "cn.example.test", Covered),
            (&[], Some("*.example.test"), &[], &[], "x.example.test", Covered),
            (&["san.example.test"], Some("cn.example.test"), &[], &[], "cn.example.test", NotCovered),
            (&[], None, &[], &[], "api.example.test", NotCovered),
            // A SPIFFE identity alone: nothing to check a host name against.
            (&[], None, &[spiffe], &[], "reviews.default.svc.cluster.local", NoHostNames),
            (&["reviews.default.svc"], None, &[spiffe], &[], "reviews", NotCovered),
            // IP literals against IP SANs only.
            (&["10.0.0.1"], None, &[], &["10.0.0.1"], "10.0.0.1", Covered),
            (&["10.0.0.1"], None, &[], &[], "10.0.0.1", NotCovered),
            (&[], None, &[], &["fd00::1"], "fd00:0::1", Covered),
            (&[], None, &[], &["fd00::1"], "fd00::2", NotCovered),
            (&["api.example.test"], None, &[], &[], "", NotCovered),
        ];
        for &(dns, cn, uris, ips, host, want) in cases {
            let f = facts(dns, cn, uris, ips);
            assert_eq!(f.covers_host(host.as_bytes()), want, "{host:?} against {dns:?} CN {cn:?} IP {ips:?}");
        }
        let bad = CertFacts { parse_error: Some("x".into()), ..CertFacts::default() };
        assert_eq!(bad.covers_host(b"a.test"), NoHostNames);
        assert_eq!(
            facts(&["a.test"], Some("cn.test"), &[], &["10.0.0.1"]).host_names(),
            ["a.test", "10.0.0.1"]
        );
        assert_eq!(facts(&[], Some("cn.test"), &[], &[]).host_names(), ["cn.test"]);
        assert!(dns_name_matches(b"a.test", b"A.TEST"));
        assert!(!dns_name_matches(b"", b""));
    }

    #[test]
    fn public_key_and_common_name_of_the_shipped_certificates() {
        let pem = |name: &str| {
            let text = std::fs::read_to_string(format!("{}/captures/pki/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
            let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            base64_decode(&b64)
        };
        for (name, key, cn) in [
            ("api.crt", "RSA 2048", "api.example.test"),
            ("big-leaf.crt", "RSA 4096", "big.example.test"),
            ("ca.crt", "EC P-256", "cluster.local root"),
        ] {
            let c = parse_cert(&pem(name), Timestamp::default());
            assert_eq!(
                (c.public_key.as_deref(), c.common_name.as_deref().unwrap_or("")),
                (Some(key), cn),
                "{name}"
            );
        }
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let b: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        b.chunks(4)
            .flat_map(|c| {
                let n = c.iter().enumerate().fold(0u32, |n, (i, &v)| n | u32::from(v) << (18 - 6 * i));
                n.to_be_bytes()[1..c.len()].to_vec()
            })
            .collect()
    }

    #[test]
    fn serial_and_ip_text() {
        assert_eq!(serial_hex(&[0, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(ip_text(&[10, 0, 0, 1]), "10.0.0.1");
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
    }
}

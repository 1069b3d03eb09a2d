//! X.509 certificates seen in cleartext TLS handshakes → the facts an operator needs: who
//! (subject, SANs — SPIFFE IDs are URI SANs), by whom (issuer), and whether it was valid when the
//! capture saw it. Parsing is x509-parser's; a certificate it cannot parse is still reported, with
//! the error, never dropped.

use crate::wire::Timestamp;
use serde::Serialize;
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
pub struct CertInfo {
    facts: Arc<CertFacts>,
    /// Past `not_after` when the capture saw it.
    pub expired: bool,
    /// Before `not_before` when the capture saw it.
    pub not_yet_valid: bool,
    /// Seconds from when the capture saw the certificate to `not_after` (negative: expired).
    pub expires_in_secs: Option<i64>,
}

/// What a certificate says, whenever it is seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertFacts {
    /// Subject DN, most specific RDN first (`CN=reviews,O=cluster.local`), values unescaped.
    pub subject: Option<String>,
    /// Issuer DN, same form.
    pub issuer: Option<String>,
    /// Serial number, lowercase hex without leading zero octets.
    pub serial: Option<String>,
    /// dNSName SANs.
    pub san_dns: Vec<String>,
    /// uniformResourceIdentifier SANs (SPIFFE IDs).
    pub san_uris: Vec<String>,
    /// iPAddress SANs, as text.
    pub san_ips: Vec<String>,
    /// rfc822Name SANs.
    pub san_emails: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: Option<String>,
    /// End of validity, RFC 3339.
    pub not_after: Option<String>,
    /// Why the DER could not be parsed (other fields are then empty).
    pub parse_error: Option<String>,
}

impl CertInfo {
    /// Prefetches the shared facts (see [`crate::wire::prefetch_bytes`]).
    pub fn prefetch(&self) {
        crate::wire::prefetch(&*self.facts);
    }
}

impl std::ops::Deref for CertInfo {
    type Target = CertFacts;
    fn deref(&self) -> &CertFacts {
        &self.facts
    }
}

impl Serialize for CertInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let f = &*self.facts;
        let mut st = s.serialize_struct("CertInfo", 13)?;
        st.serialize_field("subject", &f.subject)?;
        st.serialize_field("issuer", &f.issuer)?;
        st.serialize_field("serial", &f.serial)?;
        st.serialize_field("san_dns", &f.san_dns)?;
        st.serialize_field("san_uris", &f.san_uris)?;
        st.serialize_field("san_ips", &f.san_ips)?;
        st.serialize_field("san_emails", &f.san_emails)?;
        st.serialize_field("not_before", &f.not_before)?;
        st.serialize_field("not_after", &f.not_after)?;
        st.serialize_field("expired", &self.expired)?;
        st.serialize_field("not_yet_valid", &self.not_yet_valid)?;
        st.serialize_field("expires_in_secs", &self.expires_in_secs)?;
        st.serialize_field("parse_error", &f.parse_error)?;
        st.end()
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
/// from a small cache (most recently used first, compared byte for byte).
pub fn parse_cert(der: &[u8], seen: Timestamp) -> CertInfo {
    let hit = CACHE.with_borrow_mut(|c| {
        let i = c.iter().position(|e| *e.der == *der)?;
        let e = c.remove(i);
        c.insert(0, e);
        Some((Arc::clone(&c[0].facts), c[0].validity))
    });
    let (facts, validity) = match hit {
        Some(h) => h,
        None => {
            let (facts, validity) = parse_uncached(der);
            let facts = Arc::new(facts);
            CACHE.with_borrow_mut(|c| {
                c.truncate(CERT_CACHE - 1);
                c.insert(0, Cached { der: der.into(), facts: Arc::clone(&facts), validity });
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
pub fn dn_string(name: &X509Name<'_>) -> String {
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

    #[test]
    fn serial_and_ip_text() {
        assert_eq!(serial_hex(&[0, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(ip_text(&[10, 0, 0, 1]), "10.0.0.1");
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
    }
}

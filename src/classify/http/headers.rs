//! The [`Headers::marks`] bits that tell a message passed through Envoy or carries Istio's
//! fields. Runs for every header of every message: one pass over the name, no allocation.
//! Credential headers, whose values are redacted by default, are named by
//! [`crate::sanitize::redact`].

#[cfg(doc)]
use crate::sanitize::Headers;

/// [`Headers::marks`] bit: the message has an `x-envoy-*` field (Envoy sent it).
pub(crate) const MARK_ENVOY: u8 = 1;
/// [`Headers::marks`] bits: the message has `x-envoy-peer-metadata`, `x-envoy-peer-metadata-id`,
/// `x-forwarded-client-cert` (each a bit: Istio's report reads the first of each and stops
/// looking once the fields a flow has are found).
pub(crate) const MARK_PEER_METADATA: u8 = 2;
/// See [`MARK_PEER_METADATA`].
pub(crate) const MARK_PEER_METADATA_ID: u8 = 4;
/// See [`MARK_PEER_METADATA`].
pub(crate) const MARK_XFCC: u8 = 8;
/// [`Headers::marks`] bits: the message has a field Istio's report reads.
pub(crate) const MARK_ISTIO: u8 = MARK_PEER_METADATA | MARK_PEER_METADATA_ID | MARK_XFCC;

/// The [`Headers::marks`] bits of a field named `name`.
pub(crate) fn header_marks(name: &[u8]) -> u8 {
    if name.len() < 8 || !name[..2].eq_ignore_ascii_case(b"x-") {
        return 0;
    }
    let mut m = 0;
    if name[..8].eq_ignore_ascii_case(b"x-envoy-") && name.len() > 8 {
        m |= MARK_ENVOY;
    }
    if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata") {
        m |= MARK_PEER_METADATA;
    } else if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata-id") {
        m |= MARK_PEER_METADATA_ID;
    } else if name.eq_ignore_ascii_case(b"x-forwarded-client-cert") {
        m |= MARK_XFCC;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::testutil::*;
    use crate::classify::http::*;

    #[test]
    fn secrets_are_redacted_unless_asked() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-t0ken\r\nCookie: session=abc123\r\nX-Auth-Token: tok999\r\nX-Api-Key: k3y\r\nUser-Agent: curl\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=c00kie\r\nContent-Length: 0\r\n\r\n";
        let mut h = HttpSession::new(cfg());
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = json(&h);
        for secret in ["s3cr3t", "abc123", "tok999", "k3y", "c00kie"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert!(json.contains(r#"["Authorization","<redacted 19 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Cookie","<redacted 14 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["X-Auth-Token","<redacted 6 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["Set-Cookie","<redacted 10 bytes>"]"#), "{json}");
        assert!(json.contains(r#"["User-Agent","curl"]"#));
        let mut h = HttpSession::new(HttpConfig { show_secrets: true, ..cfg() });
        h.feed(Side::A, req);
        h.feed(Side::B, resp);
        let json = crate::report::json::http_text(&h.finish());
        for secret in ["s3cr3t-t0ken", "session=abc123", "tok999", "k3y", "sid=c00kie"] {
            assert!(json.contains(secret), "{secret} missing: {json}");
        }
        assert!(!json.contains("redacted"));
    }

    #[test]
    fn header_marks_match_their_definitions() {
        let names = [
            "x-envoy-peer-metadata",
            "X-Envoy-Peer-Metadata-ID",
            "x-forwarded-client-cert",
            "X-FORWARDED-CLIENT-CERT",
            "x-envoy-",
            "x-envoy-a",
            "x-envoy-upstream-service-time",
            "x-envoy",
            "x-forwarded-client-certs",
            "x-envoy-peer-metadata-i",
            "y-envoy-attempt-count",
            "host",
            "",
            "x-",
        ];
        for n in names {
            let l = n.to_ascii_lowercase();
            let envoy = l.len() > 8 && l.starts_with("x-envoy-");
            let istio = match l.as_str() {
                "x-envoy-peer-metadata" => MARK_PEER_METADATA,
                "x-envoy-peer-metadata-id" => MARK_PEER_METADATA_ID,
                "x-forwarded-client-cert" => MARK_XFCC,
                _ => 0,
            };
            let want = if envoy { MARK_ENVOY } else { 0 } | istio;
            assert_eq!(header_marks(n.as_bytes()), want, "{n}");
        }
    }
}

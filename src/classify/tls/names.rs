//! Protocol numbers and their names: record content types, handshake message types and
//! extension ids as named constants (taken from tls-parser's `TlsRecordType`,
//! `TlsHandshakeType` and `TlsExtensionType`, so the numbers are written once, in the IANA
//! registry's words), and the display names of versions, cipher suites and alerts.
//!
//! The constants are plain `u8`/`u16` rather than tls-parser's newtypes: the parsers match on
//! raw bytes, and a named constant there costs nothing (it is a pattern), where the newtype would
//! need wrapping at every `match`. Unknown values always keep their number (`0x1234`, `"77"`).

use std::borrow::Cow;
use tls_parser::{TlsExtensionType as Ext, TlsHandshakeType as Hs, TlsRecordType as Content};

/// Record content type change_cipher_spec (20), the lowest one in use.
pub(super) const CONTENT_CCS: u8 = Content::ChangeCipherSpec.0;
/// Record content type alert (21).
pub(super) const CONTENT_ALERT: u8 = Content::Alert.0;
/// Record content type handshake (22).
pub(super) const CONTENT_HANDSHAKE: u8 = Content::Handshake.0;
/// Record content type application_data (23).
pub(super) const CONTENT_APPLICATION_DATA: u8 = Content::ApplicationData.0;
/// Record content type heartbeat (24, RFC 6520), the highest one accepted.
pub(super) const CONTENT_HEARTBEAT: u8 = Content::Heartbeat.0;
/// Lowest content type of a plausible record header.
pub(super) const CONTENT_FIRST: u8 = CONTENT_CCS;
/// Highest content type of a plausible record header.
pub(super) const CONTENT_LAST: u8 = CONTENT_HEARTBEAT;

/// Handshake message client_hello (1).
pub(super) const HS_CLIENT_HELLO: u8 = Hs::ClientHello.0;
/// Handshake message server_hello (2).
pub(super) const HS_SERVER_HELLO: u8 = Hs::ServerHello.0;
/// Handshake message certificate (11).
pub(super) const HS_CERTIFICATE: u8 = Hs::Certificate.0;
/// Handshake message certificate_request (13).
pub(super) const HS_CERTIFICATE_REQUEST: u8 = Hs::CertificateRequest.0;
/// Handshake message server_hello_done (14).
pub(super) const HS_SERVER_HELLO_DONE: u8 = Hs::ServerDone.0;
/// Handshake message key_update (24), the highest regular handshake type (RFC 8446 §4).
pub(super) const HS_KEY_UPDATE: u8 = Hs::KeyUpdate.0;
/// Handshake message message_hash (254, RFC 8446 §4.4.1), never sent but registered.
pub(super) const HS_MESSAGE_HASH: u8 = 254;

/// SSLv2 message CLIENT-HELLO (RFC 6101 appendix E.2).
pub(super) const SSL2_CLIENT_HELLO: u8 = 1;
/// SSLv2 message SERVER-HELLO.
pub(super) const SSL2_SERVER_HELLO: u8 = 4;

/// Extension server_name (0, RFC 6066).
pub(super) const EXT_SERVER_NAME: u16 = Ext::ServerName.0;
/// Extension supported_groups (10).
pub(super) const EXT_SUPPORTED_GROUPS: u16 = Ext::SupportedGroups.0;
/// Extension ec_point_formats (11).
pub(super) const EXT_EC_POINT_FORMATS: u16 = Ext::EcPointFormats.0;
/// Extension signature_algorithms (13).
pub(super) const EXT_SIGNATURE_ALGORITHMS: u16 = Ext::SignatureAlgorithms.0;
/// Extension application_layer_protocol_negotiation (16, RFC 7301).
pub(super) const EXT_ALPN: u16 = Ext::ApplicationLayerProtocolNegotiation.0;
/// Extension session_ticket (35, RFC 5077).
pub(super) const EXT_SESSION_TICKET: u16 = Ext::SessionTicketTLS.0;
/// Extension pre_shared_key (41, RFC 8446).
pub(super) const EXT_PRE_SHARED_KEY: u16 = Ext::PreSharedKey.0;
/// Extension early_data (42, RFC 8446).
pub(super) const EXT_EARLY_DATA: u16 = Ext::EarlyData.0;
/// Extension supported_versions (43, RFC 8446).
pub(super) const EXT_SUPPORTED_VERSIONS: u16 = Ext::SupportedVersions.0;
/// server_name list entry type host_name (0, RFC 6066 §3).
pub(super) const SNI_HOST_NAME: u8 = 0;

/// Alert level warning (1).
pub(super) const ALERT_WARNING: u8 = 1;
/// Alert level fatal (2).
pub(super) const ALERT_FATAL: u8 = 2;

/// Protocol version SSL 2.0.
pub(super) const VERSION_SSL2: u16 = 0x0002;
/// Protocol version TLS 1.2.
pub(super) const VERSION_TLS12: u16 = 0x0303;
/// Protocol version TLS 1.3.
pub(super) const VERSION_TLS13: u16 = 0x0304;

/// Cipher suite TLS_AES_256_GCM_SHA384 (RFC 8446 appendix B.4).
pub(super) const TLS_AES_256_GCM_SHA384: u16 = 0x1302;
/// Cipher suite TLS_AES_128_CCM_8_SHA256 (RFC 8446 appendix B.4).
pub(super) const TLS_AES_128_CCM_8_SHA256: u16 = 0x1305;

/// Name of a protocol version number.
pub(crate) fn version_name(v: u16) -> Cow<'static, str> {
    match v {
        0x0002 => "SSL 2.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS 1.3 (draft {})", v & 0xff).into(),
        v => format!("0x{v:04x}").into(),
    }
}

pub(super) fn is_tls13(v: u16) -> bool {
    v == VERSION_TLS13 || v >> 8 == 0x7f
}

/// Names of the suites nearly every session picks, as tls-parser spells them (a test checks):
/// its lookup hashes the id with SipHash, ~135 instructions a flow.
const COMMON_CIPHERS: [(u16, &str); 17] = [
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
    (0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
];

/// IANA name of a cipher suite, or `0xHHHH`.
pub(crate) fn cipher_name(id: u16) -> Cow<'static, str> {
    if let Some(&(_, name)) = COMMON_CIPHERS.iter().find(|&&(c, _)| c == id) {
        return name.into();
    }
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(c) => c.name.into(),
        None => format!("0x{id:04x}").into(),
    }
}

pub(super) fn alert_description(d: u8) -> String {
    let s = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return d.to_string(),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_cipher_names_are_tls_parsers() {
        for (id, name) in COMMON_CIPHERS {
            assert_eq!(tls_parser::TlsCipherSuite::from_id(id).map(|c| c.name), Some(name), "{id:#06x}");
        }
        assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cipher_name(0xc009), "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA");
        assert_eq!(cipher_name(0xfefe), "0xfefe");
    }
}

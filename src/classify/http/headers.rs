//! Header names with a meaning of their own: credentials, whose values are redacted by default
//! ([`is_secret_header`], and [`redact_lines`] for previews of unrecognised streams), and the
//! [`Headers::marks`] bits that tell a message passed through Envoy or carries Istio's fields.
//!
//! Both run for every header of every message: one pass over the name, no allocation.

use super::head::trim;
#[cfg(doc)]
use crate::sanitize::Headers;

/// Is a header's value a credential (redacted by default)? `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name containing `token`, `secret`,
/// `password`, `passwd`, `api-key`, `api_key`, `apikey` or `session` (case-insensitive).
pub fn is_secret_header(name: &[u8]) -> bool {
    // First, whether the name has all the letters of one of the names or parts: most names
    // (host, content-type, x-request-id, ...) lack one of each and are done after one table
    // lookup per byte.
    let mut letters = 0u32;
    for &b in name {
        letters |= LETTER[b as usize];
    }
    if SECRET_LETTERS.iter().all(|&need| need & !letters != 0) {
        return false;
    }
    const EXACT: [&[u8]; 4] = [b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"];
    if EXACT.iter().any(|e| e.len() == name.len() && e.eq_ignore_ascii_case(name)) {
        return true;
    }
    // This runs for every header of every message: one pass, comparing a part only where its
    // first letter is (lower-casing the name first, then trying every part at each of those
    // letters, was still 2% of the benchmark's time).
    let at =
        |rest: &[u8], part: &[u8]| rest.len() >= part.len() && rest[..part.len()].eq_ignore_ascii_case(part);
    (0..name.len().saturating_sub(4)).any(|i| {
        let rest = &name[i..];
        match name[i] | 0x20 {
            b't' => at(rest, b"token"),
            b's' => at(rest, b"secret") || at(rest, b"session"),
            b'p' => at(rest, b"password") || at(rest, b"passwd"),
            b'a' => at(rest, b"api-key") || at(rest, b"api_key") || at(rest, b"apikey"),
            _ => false,
        }
    })
}

/// Bit `c - 'a'` for an ASCII letter `c` of either case, 0 for any other byte.
static LETTER: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 0;
    while c < 26 {
        t[b'a' as usize + c] = 1 << c;
        t[b'A' as usize + c] = 1 << c;
        c += 1;
    }
    t
};

/// The letters of each name or part [`is_secret_header`] looks for (a name that has those of
/// `proxy-authorization` or `set-cookie` has those of `authorization` or `cookie`).
static SECRET_LETTERS: [u32; 8] = {
    const fn letters(s: &[u8]) -> u32 {
        let mut m = 0;
        let mut i = 0;
        while i < s.len() {
            if s[i].is_ascii_lowercase() {
                m |= 1 << (s[i] - b'a');
            }
            i += 1;
        }
        m
    }
    [
        letters(b"authorization"), // and proxy-authorization
        letters(b"cookie"),        // and set-cookie
        letters(b"token"),
        letters(b"secret"),
        letters(b"password"),
        letters(b"passwd"),
        letters(b"apikey"), // and api-key, api_key
        letters(b"session"),
    ]
};

/// `bytes` with the value of every `Name: value` line whose name is a credential header
/// replaced by `<redacted>`: for previews of unrecognised streams (a non-HTTP method, a cut
/// head) that may still carry `Authorization:` or `Cookie:` lines.
pub fn redact_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let colon = line.iter().position(|&b| b == b':');
        match colon {
            Some(c) if is_secret_header(trim(&line[..c])) => {
                out.extend_from_slice(&line[..=c]);
                out.extend_from_slice(b" <redacted>");
                if line.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                } else if line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// [`Headers::marks`] bit: the message has an `x-envoy-*` field (Envoy sent it).
pub const MARK_ENVOY: u8 = 1;
/// [`Headers::marks`] bit: the message has a field Istio's report reads
/// (`x-envoy-peer-metadata`, `x-envoy-peer-metadata-id`, `x-forwarded-client-cert`).
pub const MARK_ISTIO: u8 = 2;

/// The [`Headers::marks`] bits of a field named `name`.
pub fn header_marks(name: &[u8]) -> u8 {
    if name.len() < 8 || !name[..2].eq_ignore_ascii_case(b"x-") {
        return 0;
    }
    let mut m = 0;
    if name[..8].eq_ignore_ascii_case(b"x-envoy-") && name.len() > 8 {
        m |= MARK_ENVOY;
    }
    if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata")
        || name.eq_ignore_ascii_case(b"x-envoy-peer-metadata-id")
        || name.eq_ignore_ascii_case(b"x-forwarded-client-cert")
    {
        m |= MARK_ISTIO;
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
        let json = serde_json::to_string(&h.finish(Side::A)).unwrap();
        for secret in ["s3cr3t-t0ken", "session=abc123", "tok999", "k3y", "sid=c00kie"] {
            assert!(json.contains(secret), "{secret} missing: {json}");
        }
        assert!(!json.contains("redacted"));
    }

    #[test]
    fn secret_header_names() {
        for n in [
            "authorization",
            "PROXY-AUTHORIZATION",
            "Cookie",
            "set-cookie",
            "X-CSRF-Token",
            "x-api-key",
            "Apikey",
            "X-Session-Id",
            "db_password",
            "X-Passwd",
            "client-secret",
            "api_key",
        ] {
            assert!(is_secret_header(n.as_bytes()), "{n}");
        }
        for n in ["Host", "Content-Length", "Accept", "Cookie2", "Authorization-Hint", "Upgrade"] {
            assert!(!is_secret_header(n.as_bytes()), "{n}");
        }
        // Names longer than the lower-casing buffer take the slow path, same answers.
        let long = format!("X-{}-TOKEN", "a".repeat(80));
        assert!(is_secret_header(long.as_bytes()));
        assert!(!is_secret_header(format!("X-{}", "a".repeat(80)).as_bytes()));
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
            let istio = ["x-envoy-peer-metadata", "x-envoy-peer-metadata-id", "x-forwarded-client-cert"]
                .contains(&l.as_str());
            let want = if envoy { MARK_ENVOY } else { 0 } | if istio { MARK_ISTIO } else { 0 };
            assert_eq!(header_marks(n.as_bytes()), want, "{n}");
        }
    }

    #[test]
    fn secret_header_check_matches_the_plain_definition() {
        // Reference: lower-case, then exact names or a part anywhere.
        let reference = |n: &[u8]| {
            let l = n.to_ascii_lowercase();
            ["authorization", "proxy-authorization", "cookie", "set-cookie"].iter().any(|e| l == e.as_bytes())
                || ["token", "secret", "password", "passwd", "api-key", "api_key", "apikey", "session"]
                    .iter()
                    .any(|p| l.windows(p.len()).any(|w| w == p.as_bytes()))
        };
        let pieces = [
            "",
            "x-",
            "TOK",
            "token",
            "Tokens",
            "SeSSion",
            "sess",
            "api",
            "-key",
            "_KEY",
            "key",
            "Cookie",
            "set-",
            "authorization",
            "proxy-",
            "passw",
            "d",
            "ord",
            "secre",
            "t",
            "\u{e9}",
            "\x00",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let n = format!("{a}{b}{c}");
                    assert_eq!(is_secret_header(n.as_bytes()), reference(n.as_bytes()), "{n:?}");
                }
            }
        }
    }
}

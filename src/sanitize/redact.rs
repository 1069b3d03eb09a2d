//! Redaction of credential headers: names whose values are replaced by `<redacted N bytes>`
//! unless `--show-secrets` ([`is_secret_header`], [`placeholder`]), and [`redact_lines`] for
//! previews of unrecognised streams. [`is_secret_header`] runs for every header of every
//! message: one pass over the name, no allocation.

/// Is a header's value a credential (redacted by default)? `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name containing `token`, `secret`,
/// `password`, `passwd`, `api-key`, `api_key`, `apikey` or `session` (case-insensitive).
pub(crate) fn is_secret_header(name: &[u8]) -> bool {
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
pub(crate) fn redact_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let colon = line.iter().position(|&b| b == b':');
        match colon {
            Some(c) if is_secret_header(line[..c].trim_ascii()) => {
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

/// What a credential header's value of `len` bytes is stored as: `<redacted 19 bytes>`.
pub(crate) fn placeholder(len: usize) -> String {
    String::from_utf8_lossy(placeholder_bytes(len, &mut [0; MAX_PLACEHOLDER])).into_owned()
}

/// Longest [`placeholder`]: `<redacted 18446744073709551615 bytes>`.
pub(crate) const MAX_PLACEHOLDER: usize = 37;

/// [`placeholder`]`(len)` written into `buf` (no allocation, for the parsers that store
/// fields as they decode them): its bytes.
pub(crate) fn placeholder_bytes(len: usize, buf: &mut [u8; MAX_PLACEHOLDER]) -> &[u8] {
    const OPEN: &[u8] = b"<redacted ";
    const CLOSE: &[u8] = b" bytes>";
    let mut digits = [0; 20];
    let digits = crate::wire::decimal(len as u64, &mut digits);
    let n = OPEN.len() + digits.len() + CLOSE.len();
    buf[..OPEN.len()].copy_from_slice(OPEN);
    buf[OPEN.len()..OPEN.len() + digits.len()].copy_from_slice(digits);
    buf[n - CLOSE.len()..n].copy_from_slice(CLOSE);
    &buf[..n]
}

/// Length of [`placeholder`]`(len)`.
pub(crate) fn placeholder_len(len: usize) -> usize {
    let digits = len.checked_ilog10().map_or(1, |d| d as usize + 1);
    "<redacted  bytes>".len() + digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_len_is_its_length() {
        for n in [0, 1, 9, 10, 99, 100, 12345, usize::MAX] {
            assert_eq!(placeholder_len(n), placeholder(n).len(), "{n}");
            assert_eq!(placeholder(n), format!("<redacted {n} bytes>"));
        }
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

//! Line-based text protocols that are not HTTP: Redis (RESP and inline), SMTP, IMAP, POP3,
//! FTP, memcached. Recognised from a side's first bytes only so that an HTTP-looking line
//! inside them (a mail body holding `GET / HTTP/1.1`, a stored value) is not taken for HTTP;
//! TLS after STARTTLS is still looked for. Nothing here is reported: the flow stays `unknown`.

/// The protocol whose opening `first` (a side's first bytes) looks like, if any.
pub(crate) fn known_text_protocol(first: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| first.len() >= p.len() && first[..p.len()].eq_ignore_ascii_case(p);
    let resp_len =
        |c: u8| first.first() == Some(&c) && first.get(1).is_some_and(|d| d.is_ascii_digit() || *d == b'-');
    if resp_len(b'*') || resp_len(b'$') || starts(b"+OK\r\n") || starts(b"-ERR") || starts(b"+PONG") {
        return Some("redis");
    }
    if ["EHLO ", "HELO ", "LHLO "].iter().any(|p| starts(p.as_bytes())) {
        return Some("smtp");
    }
    if first.len() >= 4 && first[..3].iter().all(u8::is_ascii_digit) && matches!(first[3], b' ' | b'-') {
        return Some("smtp/ftp"); // `220 ` greeting, `250-` continuation
    }
    if ["* OK", "* PREAUTH", "* BYE"].iter().any(|p| starts(p.as_bytes())) || imap_command(first) {
        return Some("imap");
    }
    if starts(b"+OK ") || ["USER ", "CAPA\r\n", "APOP "].iter().any(|p| starts(p.as_bytes())) {
        return Some("pop3");
    }
    // memcached's text protocol: lowercase commands, uppercase replies.
    let memcached = [
        "get ",
        "gets ",
        "set ",
        "add ",
        "replace ",
        "append ",
        "prepend ",
        "cas ",
        "delete ",
        "incr ",
        "decr ",
        "touch ",
        "stats",
        "version",
        "VALUE ",
        "STORED\r\n",
        "END\r\n",
        "STAT ",
    ];
    if memcached.iter().any(|p| first.starts_with(p.as_bytes())) {
        return Some("memcached");
    }
    None
}

/// An IMAP tagged command (`a001 LOGIN …`, RFC 9051 §2.2.1): an alphanumeric tag, a space and
/// a command word in capitals.
fn imap_command(first: &[u8]) -> bool {
    const COMMANDS: [&[u8]; 8] =
        [b"CAPABILITY", b"LOGIN ", b"AUTHENTICATE ", b"STARTTLS", b"SELECT ", b"NOOP", b"LOGOUT", b"ID "];
    let Some(sp) = first.iter().take(16).position(|&c| c == b' ') else { return false };
    sp > 0
        && first[..sp].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.')
        && COMMANDS.iter().any(|c| first[sp + 1..].starts_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings() {
        assert_eq!(known_text_protocol(b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"), Some("redis"));
        assert_eq!(known_text_protocol(b"$-1\r\n"), Some("redis"));
        assert_eq!(known_text_protocol(b"+OK\r\n"), Some("redis"));
        assert_eq!(known_text_protocol(b"EHLO client.example.test\r\n"), Some("smtp"));
        assert_eq!(known_text_protocol(b"220 mail.example.test ESMTP\r\n"), Some("smtp/ftp"));
        assert_eq!(known_text_protocol(b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), Some("imap"));
        assert_eq!(known_text_protocol(b"a001 LOGIN user pass\r\n"), Some("imap"));
        assert_eq!(known_text_protocol(b"get foo\r\n"), Some("memcached"));
        assert_eq!(known_text_protocol(b"VALUE foo 0 3\r\nbar\r\nEND\r\n"), Some("memcached"));
        for http in [&b"GET / HTTP/1.1\r\n"[..], b"HTTP/1.1 200 OK\r\n", b"<html>", b"", b"\x16\x03\x01"] {
            assert_eq!(known_text_protocol(http), None, "{http:?}");
        }
    }
}

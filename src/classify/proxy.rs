//! PROXY protocol headers (HAProxy's `proxy-protocol.txt`, versions 1 and 2): a load balancer or
//! proxy (HAProxy `send-proxy`, AWS NLB, Istio's ztunnel towards a waypoint) opens the stream it
//! forwards with the client's original addresses, then the client's bytes follow unchanged.
//!
//! [`parse`] reads one header from the start of a stream, pure and bounded: a v1 line is at most
//! [`V1_MAX_BYTES`], a v2 header at most [`MAX_HEADER_BYTES`] (its length field allows 64 KiB;
//! longer ones are reported, not read), so the classifier's probe buffer always holds a whole
//! header. The classifier (`classify::probe_buf`) asks only when a side's first byte is `P` or
//! `\r`, consumes the header and probes what follows as the stream's start. Values are kept as
//! bytes; the report writes them (TLV text escaped as all wire text, other values in hex).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 header, `\r\n` included (proxy-protocol.txt §2.1: 107 bytes for `TCP6`).
pub const V1_MAX_BYTES: usize = 107;
/// The v2 signature (proxy-protocol.txt §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part of a v2 header: signature, version/command, family/transport, length.
const V2_FIXED_BYTES: usize = 16;
/// Longest v2 header read (fixed part + addresses + TLVs); a longer one is not taken for PROXY.
/// Equal to the classifier's probe buffer, which must hold it whole.
pub const MAX_HEADER_BYTES: usize = 4096;
/// TLVs kept per header; more are counted in [`ProxyHeader::tlvs_omitted`].
pub const MAX_TLVS: usize = 16;
/// Bytes kept of one TLV value; the rest are counted ([`ProxyHeader::tlv_bytes_omitted`]).
pub const MAX_TLV_VALUE_BYTES: usize = 256;
/// Istio ztunnel's `PROXY_PROTOCOL_AUTHORITY_TLV`: the source workload's SPIFFE identity, sent
/// in the header ztunnel writes towards a waypoint (ztunnel `src/proxy.rs`).
pub const TLV_AUTHORITY: u8 = 0xD0;

crate::wire::text_enum! {
    /// `LOCAL` (the proxy's own connection, e.g. a health check: addresses are not a client's)
    /// or `PROXY` (relayed for the client named). v1 has no command: always `PROXY`.
    pub enum Command {
        /// v2 command 0.
        Local => "local",
        /// v2 command 1, and every v1 header.
        Proxy => "proxy",
    }
}

crate::wire::text_enum! {
    /// Address family: v1 `TCP4`/`TCP6`/`UNKNOWN`, v2 `AF_INET`/`AF_INET6`/`AF_UNIX`/`AF_UNSPEC`.
    pub enum Family {
        /// IPv4.
        Inet => "inet",
        /// IPv6.
        Inet6 => "inet6",
        /// Unix socket paths (v2 only); not reported as addresses.
        Unix => "unix",
        /// None given (v1 `UNKNOWN`, v2 `AF_UNSPEC` or a family the specification does not define).
        Unspec => "unspec",
    }
}

/// One v2 TLV (type-length-value) of a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlv {
    /// Its type, e.g. `0x01` ALPN, `0x02` authority, `0x20` SSL, `0xD0` Istio's identity.
    pub kind: u8,
    /// The value's first [`MAX_TLV_VALUE_BYTES`] bytes.
    pub value: Box<[u8]>,
    /// The value's length on the wire.
    pub len: u16,
}

impl Tlv {
    /// The kept value as text, when it is valid UTF-8 free of control characters.
    pub fn text(&self) -> Option<&str> {
        let s = std::str::from_utf8(&self.value).ok()?;
        (!s.chars().any(char::is_control)).then_some(s)
    }
}

/// A parsed PROXY header (the JSON `proxy_protocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// `PROXY` or `LOCAL`.
    pub command: Command,
    /// Address family.
    pub family: Family,
    /// The original client, as the proxy tells it; None for `LOCAL`, `UNKNOWN`, Unix, unspecified.
    pub source: Option<SocketAddr>,
    /// The address the original client connected to.
    pub destination: Option<SocketAddr>,
    /// v2 TLVs in wire order, the first of each type, at most [`MAX_TLVS`].
    pub tlvs: Vec<Tlv>,
    /// TLVs not kept: beyond [`MAX_TLVS`], or a type seen before.
    pub tlvs_omitted: u32,
    /// The last TLV ran past the header's length (what fitted is kept).
    pub tlvs_cut_short: bool,
}

impl ProxyHeader {
    /// A header with these addresses and no TLV yet.
    fn new(
        version: u8,
        command: Command,
        family: Family,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    ) -> ProxyHeader {
        ProxyHeader {
            version,
            command,
            family,
            source,
            destination,
            tlvs: Vec::new(),
            tlvs_omitted: 0,
            tlvs_cut_short: false,
        }
    }

    /// Istio's source identity (TLV `0xD0`), when present, whole and UTF-8, e.g.
    /// `spiffe://cluster.local/ns/default/sa/client`.
    pub(crate) fn identity(&self) -> Option<&str> {
        let t = self.tlvs.iter().find(|t| t.kind == TLV_AUTHORITY)?;
        let s = std::str::from_utf8(&t.value).ok()?;
        (usize::from(t.len) == t.value.len()).then_some(s)
    }

    /// Value bytes beyond [`MAX_TLV_VALUE_BYTES`] not kept, over the kept TLVs.
    pub fn tlv_bytes_omitted(&self) -> u64 {
        self.tlvs.iter().map(|t| u64::from(t.len) - t.value.len() as u64).sum()
    }
}

/// Why bytes that begin like a PROXY header are not read as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// `PROXY ` without `\r\n` in the first 107 bytes.
    #[error("a PROXY v1 line without CRLF in its first {V1_MAX_BYTES} bytes")]
    V1TooLong,
    /// A v1 line whose fields are not `TCP4|TCP6 src dst sport dport` or `UNKNOWN`.
    #[error("a malformed PROXY v1 line")]
    V1Malformed,
    /// The v2 signature followed by a version other than 2.
    #[error("PROXY v2 signature with version {0}")]
    V2Version(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("PROXY v2 header with command {0}")]
    V2Command(u8),
    /// A v2 header longer than [`MAX_HEADER_BYTES`].
    #[error("a PROXY v2 header of {0} bytes (more than {MAX_HEADER_BYTES} are not read)")]
    V2TooLong(usize),
    /// A v2 length too short for its family's addresses.
    #[error("a PROXY v2 header of length {len} cannot hold {family} addresses")]
    V2AddressesCut {
        /// The family announced.
        family: &'static str,
        /// The length field.
        len: usize,
    },
}

/// What the start of a stream is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a PROXY header.
    No,
    /// The start of one, or too few bytes to tell: call again with more.
    NeedMore,
    /// A header of this many bytes; the stream's own bytes follow it.
    Header(Box<ProxyHeader>, usize),
    /// Begins like a header but is not read as one.
    Malformed(ProxyError),
}

/// Reads a PROXY header at the start of `buf`, the first bytes of a stream.
pub fn parse(buf: &[u8]) -> Parsed {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let starts = |sig: &[u8]| buf.len() >= sig.len() && buf.starts_with(sig);
    let prefix_of = |sig: &[u8]| buf.len() < sig.len() && sig.starts_with(buf);
    if starts(&V2_SIGNATURE) {
        parse_v2(buf)
    } else if starts(V1_PREFIX) {
        parse_v1(buf)
    } else if prefix_of(&V2_SIGNATURE) || prefix_of(V1_PREFIX) {
        Parsed::NeedMore
    } else {
        Parsed::No
    }
}

/// `PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n`, `PROXY TCP6 …`, `PROXY UNKNOWN …\r\n`.
fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX_BYTES)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX_BYTES {
            Parsed::Malformed(ProxyError::V1TooLong)
        } else {
            Parsed::NeedMore
        };
    };
    match parse_v1_line(&buf[..end]) {
        Some(h) => Parsed::Header(Box::new(h), end + 2),
        None => Parsed::Malformed(ProxyError::V1Malformed),
    }
}

fn parse_v1_line(line: &[u8]) -> Option<ProxyHeader> {
    let line = std::str::from_utf8(line).ok()?;
    let mut f = line.split(' ');
    f.next().filter(|&p| p == "PROXY")?;
    let header =
        |family, source, destination| ProxyHeader::new(1, Command::Proxy, family, source, destination);
    let family = match f.next()? {
        // "the receiver must ignore anything presented before the CRLF is found" (§2.1).
        "UNKNOWN" => return Some(header(Family::Unspec, None, None)),
        "TCP4" => Family::Inet,
        "TCP6" => Family::Inet6,
        _ => return None,
    };
    let ip = |s: &str| -> Option<IpAddr> {
        match family {
            Family::Inet => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            _ => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    };
    // Ports: decimal, no sign, no leading zero (§2.1).
    let port = |s: &str| -> Option<u16> {
        let ok = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
        (ok && (s == "0" || !s.starts_with('0'))).then(|| s.parse().ok()).flatten()
    };
    let (src, dst) = (ip(f.next()?)?, ip(f.next()?)?);
    let (sport, dport) = (port(f.next()?)?, port(f.next()?)?);
    if f.next().is_some() {
        return None;
    }
    Some(header(family, Some(SocketAddr::new(src, sport)), Some(SocketAddr::new(dst, dport))))
}

/// The binary header: signature, version/command, family/transport, length, addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Parsed {
    let Some(fixed) = buf.get(..V2_FIXED_BYTES) else { return Parsed::NeedMore };
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    if ver_cmd >> 4 != 2 {
        return Parsed::Malformed(ProxyError::V2Version(ver_cmd >> 4));
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        c => return Parsed::Malformed(ProxyError::V2Command(c)),
    };
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let total = V2_FIXED_BYTES + len;
    if total > MAX_HEADER_BYTES {
        return Parsed::Malformed(ProxyError::V2TooLong(total));
    }
    let Some(body) = buf.get(V2_FIXED_BYTES..total) else { return Parsed::NeedMore };
    // Address block sizes (§2.2): AF_INET 4+4+2+2, AF_INET6 16+16+2+2, AF_UNIX 108+108.
    let (family, addr_len) = match fam >> 4 {
        1 => (Family::Inet, 12),
        2 => (Family::Inet6, 36),
        3 => (Family::Unix, 216),
        _ => (Family::Unspec, 0),
    };
    if body.len() < addr_len {
        return Parsed::Malformed(ProxyError::V2AddressesCut { family: family.as_str(), len });
    }
    let (addrs, tlv_bytes) = body.split_at(addr_len);
    let (source, destination) = match (command, family) {
        // LOCAL: "the receiver must ... use the real connection endpoints" (§2.2).
        (Command::Proxy, Family::Inet) => {
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(addrs[o], addrs[o + 1], addrs[o + 2], addrs[o + 3]));
            let port = |o: usize| u16::from_be_bytes([addrs[o], addrs[o + 1]]);
            (Some(SocketAddr::new(ip(0), port(8))), Some(SocketAddr::new(ip(4), port(10))))
        }
        (Command::Proxy, Family::Inet6) => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&addrs[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([addrs[o], addrs[o + 1]]);
            (Some(SocketAddr::new(ip(0), port(32))), Some(SocketAddr::new(ip(16), port(34))))
        }
        _ => (None, None),
    };
    let mut h = ProxyHeader::new(2, command, family, source, destination);
    read_tlvs(tlv_bytes, &mut h);
    Parsed::Header(Box::new(h), total)
}

/// TLVs: type (1 byte), length (2 bytes, big-endian), value. At most `MAX_HEADER_BYTES / 3`
/// iterations, each copying at most [`MAX_TLV_VALUE_BYTES`].
fn read_tlvs(mut b: &[u8], h: &mut ProxyHeader) {
    while !b.is_empty() {
        let Some(&[kind, l0, l1]) = b.get(..3) else {
            h.tlvs_cut_short = true;
            return;
        };
        let len = u16::from_be_bytes([l0, l1]);
        let Some(value) = b.get(3..3 + usize::from(len)) else {
            h.tlvs_cut_short = true;
            return;
        };
        b = &b[3 + usize::from(len)..];
        if h.tlvs.len() >= MAX_TLVS || h.tlvs.iter().any(|t| t.kind == kind) {
            h.tlvs_omitted += 1;
            continue;
        }
        let kept = &value[..value.len().min(MAX_TLV_VALUE_BYTES)];
        h.tlvs.push(Tlv { kind, value: kept.into(), len });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(p: Parsed) -> (ProxyHeader, usize) {
        match p {
            Parsed::Header(h, n) => (*h, n),
            other => panic!("not a header: {other:?}"),
        }
    }

    fn v2(ver_cmd: u8, fam: u8, addrs: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = addrs.to_vec();
        for (k, v) in tlvs {
            body.push(*k);
            body.extend((v.len() as u16).to_be_bytes());
            body.extend(*v);
        }
        let mut b = V2_SIGNATURE.to_vec();
        b.extend([ver_cmd, fam]);
        b.extend((body.len() as u16).to_be_bytes());
        b.extend(body);
        b
    }

    const INET: [u8; 12] = [10, 0, 0, 1, 10, 0, 0, 2, 0x15, 0xb3, 0x1f, 0x90]; // :5555 -> :8080

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let s = b"PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\nGET / HTTP/1.1\r\n";
        let (h, n) = header(parse(s));
        assert_eq!(&s[n..n + 3], b"GET");
        assert_eq!((h.version, h.command, h.family), (1, Command::Proxy, Family::Inet));
        assert_eq!(h.source, Some("192.0.2.1:51234".parse().unwrap()));
        assert_eq!(h.destination, Some("198.51.100.2:443".parse().unwrap()));
        assert!(h.tlvs.is_empty());

        let (h, n) = header(parse(b"PROXY TCP6 fd00::1 ::ffff:10.0.0.2 0 65535\r\n\x16\x03\x01"));
        assert_eq!(n, 44);
        assert_eq!(h.family, Family::Inet6);
        assert_eq!(h.source, Some("[fd00::1]:0".parse().unwrap()));
        assert_eq!(h.destination, Some("[::ffff:10.0.0.2]:65535".parse().unwrap()));

        // UNKNOWN: the rest of the line is ignored.
        for s in [&b"PROXY UNKNOWN\r\n"[..], b"PROXY UNKNOWN ffff:f...f:ffff 1 2 3\r\n"] {
            let (h, n) = header(parse(s));
            assert_eq!((h.family, h.source, h.destination, n), (Family::Unspec, None, None, s.len()));
        }
        // The longest line the specification allows (§2.1) is read.
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX_BYTES);
        assert_eq!(header(parse(longest)).1, V1_MAX_BYTES);
    }

    #[test]
    fn v1_malformed_and_not_proxy() {
        for s in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..], // a field too many
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",          // family mismatch
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",  // family mismatch
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", // leading zero
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", // two spaces
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",
        ] {
            assert_eq!(parse(s), Parsed::Malformed(ProxyError::V1Malformed), "{}", s.escape_ascii());
        }
        assert_eq!(parse(&[b'P'; 200]), Parsed::No);
        let mut long = b"PROXY ".to_vec();
        long.resize(V1_MAX_BYTES - 1, b'1');
        assert_eq!(parse(&long), Parsed::NeedMore);
        long.extend(b"\r\n");
        assert_eq!(parse(&long), Parsed::Malformed(ProxyError::V1TooLong));
        for s in [&b"POST / HTTP/1.1\r\n"[..], b"PRI * HTTP/2.0", b"\r\nGET", b"PROXYX", b"\x16\x03\x01"] {
            assert_eq!(parse(s), Parsed::No, "{}", s.escape_ascii());
        }
        for s in [&b""[..], b"P", b"PROXY", b"\r\n\r\n\0", b"\r"] {
            assert_eq!(parse(s), Parsed::NeedMore, "{}", s.escape_ascii());
        }
    }

    #[test]
    fn v2_proxy_inet_with_istio_identity_and_truncated_prefixes() {
        let id = b"spiffe://cluster.local/ns/default/sa/client";
        let mut b = v2(0x21, 0x11, &INET, &[(TLV_AUTHORITY, id), (0x01, b"h2"), (0x04, &[0, 0, 0])]);
        let len = b.len();
        b.extend(b"\x16\x03\x01");
        let (h, n) = header(parse(&b));
        assert_eq!(n, len);
        assert_eq!((h.version, h.command, h.family), (2, Command::Proxy, Family::Inet));
        assert_eq!(h.source, Some("10.0.0.1:5555".parse().unwrap()));
        assert_eq!(h.destination, Some("10.0.0.2:8080".parse().unwrap()));
        assert_eq!(h.identity(), Some("spiffe://cluster.local/ns/default/sa/client"));
        let kinds: Vec<(u8, Option<&str>)> = h.tlvs.iter().map(|t| (t.kind, t.text())).collect();
        let want =
            [(0xd0, Some("spiffe://cluster.local/ns/default/sa/client")), (0x01, Some("h2")), (0x04, None)];
        assert_eq!(kinds, want);
        assert_eq!((h.tlvs_omitted, h.tlv_bytes_omitted(), h.tlvs_cut_short), (0, 0, false));
        // Every prefix short of the whole header asks for more.
        for cut in 0..len {
            assert_eq!(parse(&b[..cut]), Parsed::NeedMore, "cut at {cut}");
        }
    }

    #[test]
    fn v2_local_inet6_unix_unspec() {
        let (h, n) = header(parse(&v2(0x20, 0x00, &[], &[])));
        assert_eq!((h.command, h.family, h.source, n), (Command::Local, Family::Unspec, None, 16));
        // LOCAL with addresses: they are not the client's.
        let (h, _) = header(parse(&v2(0x20, 0x11, &INET, &[])));
        assert_eq!(
            (h.command, h.family, h.source, h.destination),
            (Command::Local, Family::Inet, None, None)
        );

        let mut a6 = Vec::new();
        a6.extend("fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        a6.extend("fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        a6.extend([0x01, 0xbb, 0x00, 0x50]);
        let (h, n) = header(parse(&v2(0x21, 0x21, &a6, &[])));
        assert_eq!((h.family, n), (Family::Inet6, 16 + 36));
        assert_eq!(h.source, Some("[fd00::1]:443".parse().unwrap()));
        assert_eq!(h.destination, Some("[fd00::2]:80".parse().unwrap()));

        let unix = [b'/'; 216];
        let (h, n) = header(parse(&v2(0x21, 0x31, &unix, &[(0x02, b"example.test")])));
        assert_eq!((h.family, h.source, n), (Family::Unix, None, 16 + 216 + 15));
        assert_eq!(h.tlvs[0].text(), Some("example.test"));
        // An undefined family: no addresses, the length still says where the stream goes on.
        let (h, n) = header(parse(&v2(0x21, 0x41, &[1, 2, 3], &[])));
        assert_eq!((h.family, h.source, n), (Family::Unspec, None, 19));
    }

    #[test]
    fn v2_hostile_lengths_and_fields() {
        assert_eq!(parse(&v2(0x11, 0x11, &INET, &[])), Parsed::Malformed(ProxyError::V2Version(1)));
        assert_eq!(parse(&v2(0x22, 0x11, &INET, &[])), Parsed::Malformed(ProxyError::V2Command(2)));
        assert_eq!(
            parse(&v2(0x21, 0x21, &INET, &[])),
            Parsed::Malformed(ProxyError::V2AddressesCut { family: "inet6", len: 12 })
        );
        // A length field of 65535: refused from the fixed part alone, nothing waited for.
        let mut b = V2_SIGNATURE.to_vec();
        b.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&b), Parsed::Malformed(ProxyError::V2TooLong(16 + 65535)));
        // The largest accepted header.
        let big = vec![0u8; MAX_HEADER_BYTES - 16 - 12 - 3];
        let b = v2(0x21, 0x11, &INET, &[(0x04, &big)]);
        assert_eq!(header(parse(&b)).1, MAX_HEADER_BYTES);
        let b = v2(0x21, 0x11, &INET, &[(0x04, &[0; MAX_HEADER_BYTES - 16 - 12 - 2])]);
        assert_eq!(parse(&b), Parsed::Malformed(ProxyError::V2TooLong(MAX_HEADER_BYTES + 1)));
        // A TLV running past the header: what fitted is kept.
        let mut b = v2(0x21, 0x11, &INET, &[(0x01, b"h2")]);
        b.extend([0x02, 0x00, 0x09, b'x']);
        let n = b.len() as u16 - 16;
        b[14..16].copy_from_slice(&n.to_be_bytes());
        let (h, n) = header(parse(&b));
        assert_eq!((h.tlvs.len(), h.tlvs_cut_short, n), (1, true, b.len()));
        // A lone type byte at the end.
        let mut b = v2(0x21, 0x11, &INET, &[]);
        b.push(0x01);
        b[15] += 1;
        assert!(header(parse(&b)).0.tlvs_cut_short);
    }

    /// A ClientHello record naming `sni`.
    fn client_hello(sni: &[u8]) -> Vec<u8> {
        let mut name = vec![0];
        name.extend((sni.len() as u16).to_be_bytes());
        name.extend(sni);
        let mut list = (name.len() as u16).to_be_bytes().to_vec();
        list.extend(name);
        let mut exts = vec![0, 0]; // server_name
        exts.extend((list.len() as u16).to_be_bytes());
        exts.extend(list);
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut r = vec![22, 3, 1];
        r.extend((hs.len() as u16).to_be_bytes());
        r.extend(hs);
        r
    }

    /// Feeds `client` to side A in pieces of `step` bytes, `server` to side B at once.
    fn classify(client: &[u8], server: &[u8], step: usize) -> crate::classify::Classified {
        use crate::classify::{tests::cfg, FlowClassifier};
        use crate::flow::StreamSink;
        use crate::wire::{Side, Timestamp};
        let mut c = FlowClassifier::new(cfg());
        let ts = Timestamp::default();
        for piece in client.chunks(step) {
            c.data(Side::A, piece, ts);
        }
        c.data(Side::B, server, ts);
        c.finish(Side::A)
    }

    #[test]
    fn classification_goes_on_after_a_header_in_any_segmentation() {
        use crate::classify::Protocol;
        let mut v1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 51234 80\r\n".to_vec();
        v1.extend(b"GET /behind-v1 HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut v2h = v2(0x21, 0x11, &INET, &[(TLV_AUTHORITY, b"spiffe://td/ns/a/sa/b")]);
        v2h.extend(client_hello(b"behind.v2.test"));
        for step in [1, 2, 7, 16, 17, 4096] {
            let r = classify(&v1, b"HTTP/1.1 204 No Content\r\n\r\n", step);
            assert_eq!(r.protocol, Protocol::Http, "step {step}");
            assert_eq!(r.http.unwrap().requests[0].path(), b"/behind-v1");
            let p = r.proxy.unwrap();
            assert_eq!(p.source, Some("192.0.2.1:51234".parse().unwrap()));
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);

            let r = classify(&v2h, b"", step);
            assert_eq!(r.protocol, Protocol::Tls, "step {step}");
            assert_eq!(r.tls.unwrap().into_report().sni.unwrap().as_bytes(), b"behind.v2.test");
            assert_eq!(r.proxy.unwrap().identity(), Some("spiffe://td/ns/a/sa/b"));
        }
        // A header followed by a request line longer than what the probe buffer had left.
        let mut long = v1[..44].to_vec();
        long.extend(b"GET /");
        long.extend(vec![b'a'; 5000]);
        long.extend(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        let r = classify(&long, b"HTTP/1.1 204 No Content\r\n\r\n", 4000);
        assert_eq!((r.protocol, r.proxy.is_some()), (Protocol::Http, true));
        // No header: nothing recorded; a header refused: a warning, the bytes classified as they are.
        let r = classify(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n", b"", 3);
        assert_eq!((r.protocol, r.proxy, r.warnings.len()), (Protocol::Http, None, 0));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        huge.extend(client_hello(b"x.test"));
        let r = classify(&huge, b"", 1448);
        assert_eq!((r.protocol, r.proxy), (Protocol::Tls, None));
        assert_eq!(
            r.warnings,
            ["proxy: a PROXY v2 header of 65551 bytes (more than 4096 are not read); read as the stream's own bytes"]
        );
    }

    #[test]
    fn a_header_cut_by_a_hole_is_dropped_and_what_follows_found() {
        use crate::classify::{tests::cfg, FlowClassifier, Protocol};
        use crate::flow::StreamSink;
        use crate::wire::{Side, Timestamp};
        let ts = Timestamp::default();
        let mut c = FlowClassifier::new(cfg());
        c.data(Side::A, b"PROXY TCP4 192.0.2.1 198.51", ts);
        c.gap(Side::A, 20);
        c.data(Side::A, &client_hello(b"after.gap.test"), ts);
        let r = c.finish(Side::A);
        assert_eq!((r.protocol, r.proxy), (Protocol::Tls, None));
        assert_eq!(r.tls.unwrap().into_report().sni.unwrap().as_bytes(), b"after.gap.test");
        assert_eq!(r.warnings, ["proxy: a PROXY header cut by missing bytes"]);
    }

    #[test]
    fn v2_tlvs_are_capped_in_number_and_size() {
        let long = vec![b'a'; 300];
        let mut tlvs: Vec<(u8, &[u8])> = vec![(0x05, &long[..]), (0x05, b"again")];
        for k in 0x30..0x50 {
            tlvs.push((k, b"v"));
        }
        let (h, _) = header(parse(&v2(0x21, 0x11, &INET, &tlvs)));
        assert_eq!(h.tlvs.len(), MAX_TLVS);
        assert_eq!(h.tlvs_omitted, 1 + 32 - 15);
        assert_eq!((h.tlvs[0].value.len(), h.tlvs[0].len, h.tlv_bytes_omitted()), (256, 300, 44));
        // A value cut short is still text, but not an identity.
        assert_eq!(h.tlvs[0].text(), Some(&"a".repeat(256)[..]));
        let (h, _) = header(parse(&v2(0x21, 0x11, &INET, &[(TLV_AUTHORITY, &long)])));
        assert_eq!(h.identity(), None);
        // Control characters and invalid UTF-8 are not text.
        for v in [&b"a\nb"[..], b"\xff", b"\x1b[31m"] {
            let (h, _) = header(parse(&v2(0x21, 0x11, &INET, &[(0x02, v)])));
            assert_eq!(h.tlvs[0].text(), None);
        }
    }
}

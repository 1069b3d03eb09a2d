//! JA3 and JA4 fingerprints of a TLS ClientHello, from the facts [`super::tls`] reads
//! ([`HelloFacts`], slices of the message: nothing is copied before the output strings).
//!
//! - JA4 (FoxIO, BSD-3-Clause), as `technical_details/JA4.md` of FoxIO-LLC/ja4 specifies it:
//!   `t` (TCP; tlspeek sees no QUIC), the version (highest of supported_versions, else
//!   legacy_version), `d`/`i` (SNI extension present or not), the counts of cipher suites and
//!   extensions (GREASE left out, SNI and ALPN counted, at most 99), the first and last
//!   characters of the first ALPN value (hex digits when either is not an ASCII letter or digit,
//!   `00` without ALPN); then the truncated SHA-256 of the sorted cipher list and of the sorted
//!   extension list without SNI and ALPN followed by the signature algorithms in their order.
//!   `000000000000` stands for an empty list. `ja4_r` is the same before hashing.
//! - JA3 (Salesforce, BSD-3-Clause), as Wireshark's `tls.handshake.ja3_full`:
//!   `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats` in decimal, values
//!   joined by `-`, in the order sent, GREASE (RFC 8701) left out; `ja3` is its MD5.
//!
//! The other JA4+ methods (JA4S, JA4H, JA4X, JA4SSH, JA4L...) are not here: they are under the
//! FoxIO License 1.1 (non-commercial), which this MIT/Apache project cannot carry.
//!
//! Cost: once per ClientHello (once per flow), four strings; sorting uses the stack unless a
//! hostile hello lists more than [`SORT_STACK`] values.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Values sorted on the stack; a longer list (only a hostile hello has one) goes to the heap.
const SORT_STACK: usize = 128;
/// JA4 counts are two decimal digits.
const MAX_COUNT: usize = 99;
/// The JA4 hash of an empty list.
const EMPTY_HASH: &str = "000000000000";
/// Extensions JA4 counts but leaves out of its extension hash (they are in its first part).
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// RFC 8701 GREASE values (0x?a?a, both bytes equal).
#[inline]
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A wire list of big-endian 16-bit values (cipher suites, groups, signature schemes, versions):
/// the vector's body without its length prefix; an odd last byte is ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct U16List<'a>(pub &'a [u8]);

impl<'a> U16List<'a> {
    /// The values in wire order.
    pub fn iter(self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// The values in wire order, GREASE left out.
    fn real(self) -> impl Iterator<Item = u16> + 'a {
        self.iter().filter(|&v| !is_grease(v))
    }
}

/// The extension types of a ClientHello's extension block, in wire order. The block must have
/// been checked to walk to its end (`type`, `length`, `body` each): a malformed tail ends it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtTypes<'a>(pub &'a [u8]);

impl<'a> ExtTypes<'a> {
    /// The types in wire order.
    pub fn iter(self) -> impl Iterator<Item = u16> + 'a {
        let mut b = self.0;
        std::iter::from_fn(move || {
            let (hdr, rest) = b.split_first_chunk::<4>()?;
            let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
            b = rest.get(len..)?;
            Some(u16::from_be_bytes([hdr[0], hdr[1]]))
        })
    }

    /// The types in wire order, GREASE left out.
    fn real(self) -> impl Iterator<Item = u16> + 'a {
        self.iter().filter(|&v| !is_grease(v))
    }
}

/// What JA3 and JA4 read from one ClientHello; lists are as on the wire, GREASE included.
#[derive(Clone, Copy, Debug, Default)]
pub struct HelloFacts<'a> {
    /// ClientHello legacy_version (`client_version`).
    pub legacy_version: u16,
    /// cipher_suites.
    pub ciphers: U16List<'a>,
    /// The extension block (empty when the hello has none).
    pub extensions: ExtTypes<'a>,
    /// supported_groups (`elliptic_curves`) of the first such extension.
    pub supported_groups: U16List<'a>,
    /// ec_point_formats of the first such extension, one byte each.
    pub point_formats: &'a [u8],
    /// signature_algorithms of the first such extension.
    pub signature_algorithms: U16List<'a>,
    /// The first protocol name of the first ALPN extension; None without ALPN or with an empty
    /// list.
    pub alpn_first: Option<&'a [u8]>,
    /// supported_versions of the first such extension; None when there is none.
    pub supported_versions: Option<U16List<'a>>,
    /// A server_name extension is present (whatever it holds).
    pub sni: bool,
}

/// The fingerprints of one ClientHello, as written to the JSON `tls` object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprints {
    /// JA4 `a_b_c`, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub ja4: String,
    /// JA4 raw: the lists before hashing (sorted ciphers, sorted extensions, signature
    /// algorithms).
    pub ja4_r: String,
    /// JA3: MD5 of `ja3_full`, lowercase hex.
    pub ja3: String,
    /// JA3 string: `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`.
    pub ja3_full: String,
}

/// Computes JA3 and JA4 of one ClientHello.
pub fn fingerprints(h: &HelloFacts<'_>) -> Fingerprints {
    let (ja4, ja4_r) = ja4(h);
    let ja3_full = ja3_full(h);
    let ja3 = hex_string(&Md5::digest(ja3_full.as_bytes()));
    Fingerprints { ja4, ja4_r, ja3, ja3_full }
}

/// JA4 `a` part: version per the spec's table ("00" when unknown).
fn ja4_version(h: &HelloFacts<'_>) -> &'static str {
    let v = match h.supported_versions {
        Some(list) => list.real().max(),
        None => Some(h.legacy_version),
    };
    match v {
        Some(0x0304) => "13",
        Some(0x0303) => "12",
        Some(0x0302) => "11",
        Some(0x0301) => "10",
        Some(0x0300) => "s3",
        Some(0x0002) => "s2",
        Some(0xfeff) => "d1",
        Some(0xfefd) => "d2",
        Some(0xfefc) => "d3",
        _ => "00",
    }
}

/// JA4's ALPN characters: the first and last byte of the first ALPN value when both are ASCII
/// letters or digits, else the first and last digits of the value's hex form; `00` without one.
fn ja4_alpn(first: Option<&[u8]>) -> [u8; 2] {
    match first {
        Some(&[f, .., l]) | Some(&[f @ l]) => {
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                [f, l]
            } else {
                [HEX[(f >> 4) as usize], HEX[(l & 0xf) as usize]]
            }
        }
        _ => *b"00",
    }
}

/// JA4 and JA4_r.
fn ja4(h: &HelloFacts<'_>) -> (String, String) {
    let (mut cstack, mut cheap) = ([0u16; SORT_STACK], Vec::new());
    let ciphers = sorted(h.ciphers.real(), &mut cstack, &mut cheap);
    let ext_count = h.extensions.real().count();
    let (mut estack, mut eheap) = ([0u16; SORT_STACK], Vec::new());
    let exts = sorted(
        h.extensions.real().filter(|&t| t != EXT_SERVER_NAME && t != EXT_ALPN),
        &mut estack,
        &mut eheap,
    );
    let sig_count = h.signature_algorithms.real().count();

    let mut raw = String::with_capacity(13 + 5 * (ciphers.len() + exts.len() + sig_count));
    raw.push('t');
    raw.push_str(ja4_version(h));
    raw.push(if h.sni { 'd' } else { 'i' });
    push_count(&mut raw, ciphers.len());
    push_count(&mut raw, ext_count);
    let [a0, a1] = ja4_alpn(h.alpn_first);
    raw.push(a0 as char);
    raw.push(a1 as char);
    let a_len = raw.len();

    raw.push('_');
    let b_from = raw.len();
    push_hex_list(&mut raw, ciphers.iter().copied());
    let b_to = raw.len();

    raw.push('_');
    let c_from = raw.len();
    push_hex_list(&mut raw, exts.iter().copied());
    if sig_count > 0 {
        raw.push('_');
        push_hex_list(&mut raw, h.signature_algorithms.real());
    }

    let mut ja4 = String::with_capacity(a_len + 26);
    ja4.push_str(&raw[..a_len]);
    for part in [&raw[b_from..b_to], &raw[c_from..]] {
        ja4.push('_');
        if part.is_empty() {
            ja4.push_str(EMPTY_HASH);
        } else {
            push_hex(&mut ja4, &Sha256::digest(part.as_bytes())[..6]);
        }
    }
    (ja4, raw)
}

/// The JA3 string.
fn ja3_full(h: &HelloFacts<'_>) -> String {
    let n = h.ciphers.0.len() / 2 + h.extensions.0.len() / 4 + h.supported_groups.0.len() / 2;
    let mut s = String::with_capacity(10 + 6 * n + 4 * h.point_formats.len());
    push_dec(&mut s, h.legacy_version);
    s.push(',');
    push_dec_list(&mut s, h.ciphers.real());
    s.push(',');
    push_dec_list(&mut s, h.extensions.real());
    s.push(',');
    push_dec_list(&mut s, h.supported_groups.real());
    s.push(',');
    push_dec_list(&mut s, h.point_formats.iter().map(|&p| p.into()));
    s
}

/// `vals` sorted, on `stack` when they fit.
fn sorted<'b>(
    vals: impl Iterator<Item = u16>,
    stack: &'b mut [u16; SORT_STACK],
    heap: &'b mut Vec<u16>,
) -> &'b [u16] {
    let mut n = 0;
    for v in vals {
        if n < SORT_STACK {
            stack[n] = v;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(stack);
            }
            heap.push(v);
        }
        n += 1;
    }
    let s = if n > SORT_STACK { &mut heap[..] } else { &mut stack[..n] };
    s.sort_unstable();
    s
}

fn push_count(out: &mut String, n: usize) {
    let n = n.min(MAX_COUNT) as u8;
    out.push((b'0' + n / 10) as char);
    out.push((b'0' + n % 10) as char);
}

/// `v` as 4 lowercase hex digits.
fn push_hex4(out: &mut String, v: u16) {
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((v >> shift) & 0xf) as usize] as char);
    }
}

fn push_hex_list(out: &mut String, vals: impl Iterator<Item = u16>) {
    for (i, v) in vals.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_hex4(out, v);
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
}

fn hex_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    push_hex(&mut s, bytes);
    s
}

/// `v` in decimal.
fn push_dec(out: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(d as char);
    }
}

fn push_dec_list(out: &mut String, vals: impl Iterator<Item = u16>) {
    for (i, v) in vals.enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_dec(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(vals: &[u16]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// An extension block with these types, each with an empty body.
    fn ext_block(types: &[u16]) -> Vec<u8> {
        types.iter().flat_map(|t| [t.to_be_bytes(), [0, 0]].concat()).collect()
    }

    /// FoxIO's worked example (technical_details/JA4.md, "Example" and "Raw Output").
    #[test]
    fn foxio_published_example() {
        let ciphers = be(&[
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c,
            0x009d, 0x002f, 0x0035,
        ]);
        let exts = ext_block(&[
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b,
            0xff01, 0x000b, 0x000a, 0x0015,
        ]);
        let sigs = be(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]);
        let versions = be(&[0x0304, 0x0303]);
        let mut h = HelloFacts {
            legacy_version: 0x0303,
            ciphers: U16List(&ciphers),
            extensions: ExtTypes(&exts),
            signature_algorithms: U16List(&sigs),
            alpn_first: Some(b"h2"),
            supported_versions: Some(U16List(&versions)),
            sni: true,
            ..HelloFacts::default()
        };
        let f = fingerprints(&h);
        assert_eq!(f.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            f.ja4_r,
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
        // "If there are no signature algorithms ... the string ends without an underscore":
        // 0005,...,ff01 = 6d807ffa2a79.
        h.signature_algorithms = U16List(&[]);
        assert!(fingerprints(&h).ja4.ends_with("_8daaf6152771_6d807ffa2a79"));
        // GREASE anywhere changes nothing.
        let g_ciphers = [be(&[0x3a3a]), ciphers.clone()].concat();
        let g_exts = [ext_block(&[0x0a0a]), exts.clone(), ext_block(&[0xfafa])].concat();
        let g_sigs = [be(&[0x2a2a]), sigs.clone()].concat();
        let g_versions = be(&[0x7a7a, 0x0304, 0x0303]);
        h.ciphers = U16List(&g_ciphers);
        h.extensions = ExtTypes(&g_exts);
        h.signature_algorithms = U16List(&g_sigs);
        h.supported_versions = Some(U16List(&g_versions));
        assert_eq!(fingerprints(&h).ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    /// The ALPN examples of technical_details/JA4.md, "ALPN Extension Value".
    #[test]
    fn foxio_alpn_examples() {
        let cases: &[(&[u8], &str)] = &[
            (b"h2", "h2"),
            (b"http/1.1", "h1"),
            (b"h", "hh"),
            (&[0xab], "ab"),
            (&[0x20], "20"),
            (&[0xab, 0xcd], "ad"),
            (&[0x20, 0x61], "21"),
            (&[0x30, 0xab], "3b"),
            (&[0x61, 0x20], "60"),
            (&[0x30, 0x31, 0xab, 0xcd], "3d"),
            (&[0x30, 0xab, 0xcd, 0x31], "01"),
            (b"", "00"),
        ];
        for (alpn, want) in cases {
            assert_eq!(ja4_alpn(Some(alpn)), want.as_bytes(), "{alpn:02x?}");
        }
        assert_eq!(&ja4_alpn(None), b"00");
    }

    #[test]
    fn versions_counts_and_empty_lists() {
        // An SSL 3.0-style hello: no extensions at all.
        let ciphers = be(&[0x0004, 0x0005]);
        let h = HelloFacts { legacy_version: 0x0300, ciphers: U16List(&ciphers), ..HelloFacts::default() };
        let f = fingerprints(&h);
        assert_eq!(f.ja4, "ts3i020000_6e254592683c_000000000000");
        assert_eq!(f.ja4_r, "ts3i020000_0004,0005_");
        assert_eq!(f.ja3_full, "768,4-5,,,");
        assert_eq!(f.ja3, "b83fc53c3f3f7050efc5ad1a39c4a209");
        // No ciphers at all.
        let h = HelloFacts { legacy_version: 0x0301, ..HelloFacts::default() };
        assert_eq!(fingerprints(&h).ja4, "t10i000000_000000000000_000000000000");
        // Counts stop at 99; the lists are still whole.
        let many: Vec<u16> = (1..=150).collect();
        let (ciphers, exts) = (be(&many), ext_block(&many));
        let h = HelloFacts {
            legacy_version: 0x0303,
            ciphers: U16List(&ciphers),
            extensions: ExtTypes(&exts),
            ..HelloFacts::default()
        };
        let f = fingerprints(&h);
        assert!(f.ja4.starts_with("t12i9999"), "{}", f.ja4);
        assert_eq!(f.ja4_r.matches(',').count(), 149 + 148); // extension 16 left out of the hash
                                                             // supported_versions decides over legacy_version; unknown or draft versions are "00";
                                                             // a list of GREASE only too.
        for (list, want) in [
            (&[0x0303u16, 0x0302][..], "12"),
            (&[0x7f1c, 0x0304], "00"),
            (&[0x0a0a], "00"),
            (&[0xfefd], "d2"),
        ] {
            let v = be(list);
            let h = HelloFacts {
                legacy_version: 0x0301,
                supported_versions: Some(U16List(&v)),
                ..HelloFacts::default()
            };
            assert_eq!(&fingerprints(&h).ja4[1..3], want, "{list:04x?}");
        }
    }

    #[test]
    fn ja3_published_example_with_grease_added() {
        // The example of the JA3 README (salesforce/ja3), with GREASE values mixed in, which
        // JA3 leaves out.
        let ciphers = be(&[0x2a2a, 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4]);
        let exts = ext_block(&[0xdada, 0, 10, 11, 0x1a1a]);
        let groups = be(&[0x8a8a, 23, 24, 25]);
        let h = HelloFacts {
            legacy_version: 769,
            ciphers: U16List(&ciphers),
            extensions: ExtTypes(&exts),
            supported_groups: U16List(&groups),
            point_formats: &[0],
            ..HelloFacts::default()
        };
        let f = fingerprints(&h);
        assert_eq!(f.ja3_full, "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0");
        assert_eq!(f.ja3, "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn extension_walk_stops_at_a_malformed_tail() {
        let mut b = ext_block(&[1, 2]);
        b.extend_from_slice(&[0, 3, 0, 9, 1]); // length beyond the block
        assert_eq!(ExtTypes(&b).iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(ExtTypes(&[0, 1, 0]).iter().count(), 0);
    }

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        assert_eq!(all, (0..16).map(|i| 0x0a0a + 0x1010 * i).collect::<Vec<u16>>());
    }

    #[test]
    fn decimal_and_hex() {
        let mut s = String::new();
        for v in [0, 9, 10, 771, 65535] {
            push_dec(&mut s, v);
            s.push(' ');
            push_hex4(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 0000 9 0009 10 000a 771 0303 65535 ffff ");
    }
}

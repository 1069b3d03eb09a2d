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
//! hostile hello lists more than [`SORT_STACK`] values; the answers for the last hellos seen are
//! remembered per thread ([`Recent`]).

use crate::classify::cert::RenderedJson;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::sync::Arc;

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
pub(crate) fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A wire list of big-endian 16-bit values (cipher suites, groups, signature schemes, versions):
/// the vector's body without its length prefix; an odd last byte is ignored.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct U16List<'a>(pub &'a [u8]);

impl<'a> U16List<'a> {
    /// The values in wire order.
    pub(crate) fn iter(self) -> impl Iterator<Item = u16> + 'a {
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
pub(crate) struct ExtTypes<'a>(pub &'a [u8]);

impl<'a> ExtTypes<'a> {
    /// The types in wire order.
    pub(crate) fn iter(self) -> impl Iterator<Item = u16> + 'a {
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
pub(crate) struct HelloFacts<'a> {
    /// ClientHello legacy_version (`client_version`).
    pub(crate) legacy_version: u16,
    /// cipher_suites.
    pub(crate) ciphers: U16List<'a>,
    /// The extension block (empty when the hello has none).
    pub(crate) extensions: ExtTypes<'a>,
    /// supported_groups (`elliptic_curves`) of the first such extension.
    pub(crate) supported_groups: U16List<'a>,
    /// ec_point_formats of the first such extension, one byte each.
    pub(crate) point_formats: &'a [u8],
    /// signature_algorithms of the first such extension.
    pub(crate) signature_algorithms: U16List<'a>,
    /// The first protocol name of the first ALPN extension; None without ALPN or with an empty
    /// list.
    pub(crate) alpn_first: Option<&'a [u8]>,
    /// supported_versions of the first such extension; None when there is none.
    pub(crate) supported_versions: Option<U16List<'a>>,
    /// A server_name extension is present (whatever it holds).
    pub(crate) sni: bool,
}

/// The fingerprints of one ClientHello, as written to the JSON `tls` object. Shared: the flows
/// of one client stack have the same ones, and a remembered answer ([`Recent`]) is handed out
/// as one pointer, its strings and their JSON text made once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprints(Arc<FingerprintTexts>);

impl std::ops::Deref for Fingerprints {
    type Target = FingerprintTexts;
    fn deref(&self) -> &FingerprintTexts {
        &self.0
    }
}

/// What [`Fingerprints`] hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FingerprintTexts {
    /// JA4 `a_b_c`, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub(crate) ja4: Arc<str>,
    /// JA4 raw: the lists before hashing (sorted ciphers, sorted extensions, signature
    /// algorithms).
    pub(crate) ja4_r: Arc<str>,
    /// JA3: MD5 of `ja3_full`, lowercase hex.
    pub(crate) ja3: Arc<str>,
    /// JA3 string: `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`.
    pub(crate) ja3_full: Arc<str>,
    /// The four as JSON members, made the first time they are written (report/json.rs): a
    /// client stack sends the same hello flow after flow, and writing them one by one was
    /// ~300 instructions a flow.
    pub(crate) json: RenderedJson,
}

/// Computes JA3 and JA4 of one ClientHello; the last few are remembered per thread (see
/// [`Recent`]).
pub(crate) fn fingerprints(h: &HelloFacts<'_>) -> Fingerprints {
    let mut key = [0u8; MAX_KEY];
    match h.key(&mut key) {
        Some(n) => RECENT.with_borrow_mut(|r| r.get(&key[..n], || compute(h))),
        None => compute(h),
    }
}

/// Bytes of a [`HelloFacts`] key; longer hellos are not remembered.
const MAX_KEY: usize = 512;
/// Fingerprints remembered per thread.
const RECENT_SLOTS: usize = 64;

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::new(Recent::default());
}

/// The fingerprints of the last ClientHellos, by their facts (an exact key, so a hit is the same
/// answer). Clients of one stack send the same lists flow after flow. Computing them takes about
/// 1.2 µs per ClientHello (release build), which at the benchmark's 35,000 TLS flows per GB
/// would be some 5% of its CPU; a hit takes 0.14 µs. Direct-mapped: a collision only costs a
/// computation.
struct Recent {
    slots: Vec<Option<(Box<[u8]>, Fingerprints)>>,
    hash: ahash::RandomState,
}

impl Default for Recent {
    fn default() -> Recent {
        // A fixed key: a forced collision evicts an entry, nothing more.
        Recent { slots: vec![None; RECENT_SLOTS], hash: ahash::RandomState::with_seeds(1, 2, 3, 4) }
    }
}

impl Recent {
    fn get(&mut self, key: &[u8], compute: impl FnOnce() -> Fingerprints) -> Fingerprints {
        let slot = &mut self.slots[(self.hash.hash_one(key) as usize) % RECENT_SLOTS];
        match slot {
            Some((k, fp)) if **k == *key => fp.clone(),
            _ => {
                let fp = compute();
                *slot = Some((key.into(), fp.clone()));
                fp
            }
        }
    }
}

impl HelloFacts<'_> {
    /// Everything [`fingerprints`] reads, as bytes (lists with their lengths, so that no two
    /// hellos share a key); None when it does not fit `out`.
    fn key(&self, out: &mut [u8; MAX_KEY]) -> Option<usize> {
        let mut k = Key { out, n: 0 };
        k.put(&self.legacy_version.to_be_bytes())?;
        k.put(&[u8::from(self.sni), u8::from(self.supported_versions.is_some())])?;
        for list in [
            self.ciphers.0,
            self.supported_groups.0,
            self.point_formats,
            self.signature_algorithms.0,
            self.alpn_first.unwrap_or_default(),
            self.supported_versions.unwrap_or_default().0,
        ] {
            k.list(list)?;
        }
        k.put(&[u8::from(self.alpn_first.is_some())])?;
        for t in self.extensions.iter() {
            k.put(&t.to_be_bytes())?;
        }
        Some(k.n)
    }
}

struct Key<'a> {
    out: &'a mut [u8; MAX_KEY],
    n: usize,
}

impl Key<'_> {
    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.out.get_mut(self.n..self.n + b.len())?.copy_from_slice(b);
        self.n += b.len();
        Some(())
    }

    fn list(&mut self, b: &[u8]) -> Option<()> {
        self.put(&u16::try_from(b.len()).ok()?.to_be_bytes())?;
        self.put(b)
    }
}

/// Computes JA3 and JA4 of one ClientHello.
fn compute(h: &HelloFacts<'_>) -> Fingerprints {
    let (ja4, ja4_r) = ja4(h);
    let ja3_full = ja3_full(h);
    let mut ja3 = Text::with_bound(32);
    ja3.hex(&Md5::digest(ja3_full.as_bytes()));
    let ja3 = ja3.into_string();
    Fingerprints(Arc::new(FingerprintTexts {
        ja4: ja4.into(),
        ja4_r: ja4_r.into(),
        ja3: ja3.into(),
        ja3_full: ja3_full.into(),
        json: RenderedJson::default(),
    }))
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
    let sigs = h.signature_algorithms;

    let mut raw = Text::with_bound(13 + 5 * (ciphers.len() + exts.len() + sigs.0.len() / 2));
    raw.byte(b't');
    raw.slice(ja4_version(h).as_bytes());
    raw.byte(if h.sni { b'd' } else { b'i' });
    raw.count(ciphers.len());
    raw.count(ext_count);
    raw.bytes(&ja4_alpn(h.alpn_first));
    let a_len = raw.n;

    raw.byte(b'_');
    let b_from = raw.n;
    raw.hex_list(ciphers.iter().copied());
    let b_to = raw.n;

    raw.byte(b'_');
    let c_from = raw.n;
    raw.hex_list(exts.iter().copied());
    let mut sigs = sigs.real().peekable();
    if sigs.peek().is_some() {
        raw.byte(b'_');
        raw.hex_list(sigs);
    }

    let mut ja4 = Text::with_bound(a_len + 26);
    ja4.slice(&raw.b[..a_len]);
    for part in [b_from..b_to, c_from..raw.n] {
        ja4.byte(b'_');
        if part.is_empty() {
            ja4.slice(EMPTY_HASH.as_bytes());
        } else {
            ja4.hex(&Sha256::digest(&raw.b[part])[..6]);
        }
    }
    (ja4.into_string(), raw.into_string())
}

/// The JA3 string.
fn ja3_full(h: &HelloFacts<'_>) -> String {
    let n = h.ciphers.0.len() / 2 + h.extensions.0.len() / 4 + h.supported_groups.0.len() / 2;
    let mut s = Text::with_bound(10 + 6 * n + 4 * h.point_formats.len());
    s.dec(h.legacy_version);
    s.byte(b',');
    s.dec_list(h.ciphers.real());
    s.byte(b',');
    s.dec_list(h.extensions.real());
    s.byte(b',');
    s.dec_list(h.supported_groups.real());
    s.byte(b',');
    s.dec_list(h.point_formats.iter().map(|&p| p.into()));
    s.into_string()
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

/// ASCII text written into a buffer sized once to a bound of its length (writes past the bound
/// are dropped, which the bounds above rule out): no growth check, `char` encoding or `memcpy`
/// call per value.
struct Text {
    b: Vec<u8>,
    n: usize,
}

impl Text {
    fn with_bound(max: usize) -> Text {
        Text { b: vec![0; max], n: 0 }
    }

    #[inline]
    fn byte(&mut self, c: u8) {
        if let Some(p) = self.b.get_mut(self.n) {
            *p = c;
            self.n += 1;
        }
    }

    #[inline]
    fn bytes<const N: usize>(&mut self, s: &[u8; N]) {
        if let Some(p) = self.b.get_mut(self.n..self.n + N) {
            p.copy_from_slice(s);
            self.n += N;
        }
    }

    fn slice(&mut self, s: &[u8]) {
        if let Some(p) = self.b.get_mut(self.n..self.n + s.len()) {
            p.copy_from_slice(s);
            self.n += s.len();
        }
    }

    fn count(&mut self, n: usize) {
        let n = n.min(MAX_COUNT) as u8;
        self.bytes(&[b'0' + n / 10, b'0' + n % 10]);
    }

    /// `v` as 4 lowercase hex digits.
    #[inline]
    fn hex4(&mut self, v: u16) {
        let d = |shift: u16| HEX[((v >> shift) & 0xf) as usize];
        self.bytes(&[d(12), d(8), d(4), d(0)]);
    }

    fn hex_list(&mut self, vals: impl Iterator<Item = u16>) {
        for (i, v) in vals.enumerate() {
            if i > 0 {
                self.byte(b',');
            }
            self.hex4(v);
        }
    }

    fn hex(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.bytes(&[HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        }
    }

    /// `v` in decimal.
    #[inline]
    fn dec(&mut self, v: u16) {
        let mut buf = [0; 20];
        let digits = crate::wire::decimal(v.into(), &mut buf);
        let Some(out) = self.b.get_mut(self.n..self.n + digits.len()) else { return };
        out.copy_from_slice(digits);
        self.n += digits.len();
    }

    fn dec_list(&mut self, vals: impl Iterator<Item = u16>) {
        for (i, v) in vals.enumerate() {
            if i > 0 {
                self.byte(b'-');
            }
            self.dec(v);
        }
    }

    /// The text (ASCII only, so always valid UTF-8).
    fn into_string(mut self) -> String {
        self.b.truncate(self.n);
        String::from_utf8(self.b).unwrap_or_default()
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
        assert_eq!(&*f.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            &*f.ja4_r,
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
        assert_eq!(&*fingerprints(&h).ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
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
        assert_eq!(&*f.ja4, "ts3i020000_6e254592683c_000000000000");
        assert_eq!(&*f.ja4_r, "ts3i020000_0004,0005_");
        assert_eq!(&*f.ja3_full, "768,4-5,,,");
        assert_eq!(&*f.ja3, "b83fc53c3f3f7050efc5ad1a39c4a209");
        // No ciphers at all.
        let h = HelloFacts { legacy_version: 0x0301, ..HelloFacts::default() };
        assert_eq!(&*fingerprints(&h).ja4, "t10i000000_000000000000_000000000000");
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
        assert_eq!(&*f.ja3_full, "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0");
        assert_eq!(&*f.ja3, "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn extension_walk_stops_at_a_malformed_tail() {
        let mut b = ext_block(&[1, 2]);
        b.extend_from_slice(&[0, 3, 0, 9, 1]); // length beyond the block
        assert_eq!(ExtTypes(&b).iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(ExtTypes(&[0, 1, 0]).iter().count(), 0);
    }

    #[test]
    fn remembered_fingerprints_are_those_computed() {
        // Random hellos drawn from few values, so that many repeat, differ in one list only, or
        // move a value from one list to the next: the remembered answer is always the computed
        // one.
        let mut next = crate::wire::xorshift(0x6a34_6a33);
        let mut pick = |n: u64| -> Vec<u8> { (0..next() % n).map(|i| i as u8).collect() };
        let mut hits = 0;
        for _ in 0..5000 {
            let (c, e, g, p, s, a, v) = (pick(5), pick(3), pick(2), pick(2), pick(3), pick(3), pick(3));
            let e = ext_block(&e.iter().map(|&t| t as u16).collect::<Vec<_>>());
            let h = HelloFacts {
                legacy_version: 0x0303,
                ciphers: U16List(&c),
                extensions: ExtTypes(&e),
                supported_groups: U16List(&g),
                point_formats: &p,
                signature_algorithms: U16List(&s),
                alpn_first: (a.len() != 1).then_some(&a[..]),
                supported_versions: (v.len() != 1).then_some(U16List(&v)),
                sni: c.len() % 2 == 0,
            };
            let mut key = [0; MAX_KEY];
            let n = h.key(&mut key).unwrap();
            hits += RECENT.with_borrow(|r| r.slots.iter().flatten().any(|(k, _)| **k == key[..n])) as u32;
            assert_eq!(fingerprints(&h), compute(&h), "{h:?}");
        }
        assert!(hits > 100, "{hits}"); // 195 with this seed
                                       // A hello too long for a key is computed each time.
        let many: Vec<u8> = (0..600).map(|i| i as u8).collect();
        let h = HelloFacts { ciphers: U16List(&many), ..HelloFacts::default() };
        assert_eq!(h.key(&mut [0; MAX_KEY]), None);
        assert_eq!(fingerprints(&h), compute(&h));
    }

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        assert_eq!(all, (0..16).map(|i| 0x0a0a + 0x1010 * i).collect::<Vec<u16>>());
    }

    #[test]
    fn decimal_and_hex() {
        let mut s = Text::with_bound(60);
        for v in [0, 9, 10, 771, 65535] {
            s.dec(v);
            s.byte(b' ');
            s.hex4(v);
            s.byte(b' ');
        }
        assert_eq!(s.into_string(), "0 0000 9 0009 10 000a 771 0303 65535 ffff ");
    }
}

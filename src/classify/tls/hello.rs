//! Handshake messages: ClientHello and ServerHello (also their SSLv2 forms, and the captured
//! start of a hello cut short by a small snaplen), Certificate, CertificateRequest and
//! ServerHelloDone, and the fingerprint facts of a whole ClientHello.
//!
//! Hello messages are read by our own bounds-checked reader ([`Rd`]) rather than tls-parser's:
//! this is the core of the tool, it must keep going over GREASE, ECH, draft versions and
//! malformed extensions (tls-parser stops at the first extension it cannot parse), and it only
//! needs a handful of fields. Facts come from the first ClientHello and the first ServerHello that
//! is not a HelloRetryRequest; at most `MAX_CHAIN` certificates are kept per side. Fingerprints
//! are computed only from a hello whose lists are whole (see `classify/fingerprint.rs`).

use super::names::{
    is_tls13, CONTENT_HANDSHAKE, EXT_ALPN, EXT_EARLY_DATA, EXT_EC_POINT_FORMATS, EXT_PRE_SHARED_KEY,
    EXT_SERVER_NAME, EXT_SESSION_TICKET, EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_GROUPS,
    EXT_SUPPORTED_VERSIONS, HS_CERTIFICATE, HS_CERTIFICATE_REQUEST, HS_CLIENT_HELLO, HS_SERVER_HELLO,
    HS_SERVER_HELLO_DONE, SNI_HOST_NAME, SSL2_CLIENT_HELLO, SSL2_SERVER_HELLO,
};
use super::records::stream_header;
use super::{ClientHello, ServerHello, SessionId, TlsSession, Versions, HRR_RANDOM, MAX_CHAIN};
use crate::classify::cert::parse_cert;
use crate::classify::fingerprint::{self, is_grease, ExtTypes, HelloFacts, U16List};
use crate::sanitize::WireBytes;
use crate::wire::{Role, Side, Timestamp};

/// Bounds-checked big-endian reader over a byte slice.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&x, rest) = self.b.split_first()?;
        self.b = rest;
        Some(x)
    }
    fn u16(&mut self) -> Option<u16> {
        let v = self.bytes(2)?;
        Some(u16::from_be_bytes([v[0], v[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let v = self.bytes(3)?;
        Some(u32::from_be_bytes([0, v[0], v[1], v[2]]) as usize)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Some(a)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.bytes(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.bytes(n)
    }
}

/// Walks extensions `(type, body)`; stops quietly at a malformed one.
fn extensions(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut r = Rd { b };
    std::iter::from_fn(move || {
        let t = r.u16()?;
        let body = r.vec16()?;
        Some((t, body))
    })
}

fn parse_alpn(body: &[u8]) -> Vec<WireBytes> {
    let Some(list) = (Rd { b: body }).vec16() else { return Vec::new() };
    let names = || {
        let mut r = Rd { b: list };
        std::iter::from_fn(move || r.vec8())
    };
    // Counted first: one allocation of the right size (a client's `h2`, `http/1.1` took 96
    // bytes for two values of 24, kept as long as the flow).
    let mut out = Vec::with_capacity(names().count());
    out.extend(names().map(WireBytes::new));
    out
}

/// The first protocol of an ALPN extension (a server's choice), without a list for it.
fn first_alpn(body: &[u8]) -> Option<WireBytes> {
    let list = (Rd { b: body }).vec16()?;
    (Rd { b: list }).vec8().map(WireBytes::new)
}

/// Reads a ClientHello into `ch` (a default one, in place: returning the 128-byte hello moved
/// it twice); None when malformed (`ch` then holds part of it).
fn parse_client_hello(body: &[u8], ch: &mut ClientHello) -> Option<()> {
    let mut r = Rd { b: body };
    ch.legacy = r.u16()?;
    r.bytes(32)?;
    ch.session_id = SessionId::new(r.vec8()?.iter().copied());
    let ciphers = r.vec16()?;
    r.vec8()?; // compression methods
               // Fingerprints only of a hello whose lists are whole: one of part of a hello would match no
               // other tool's. No extension block at all is whole (SSL 3.0 style); a cut one is not.
    let mut whole = ciphers.len() % 2 == 0;
    let exts = match r.vec16() {
        Some(exts) => exts,
        None => {
            whole &= r.b.is_empty();
            &[]
        }
    };
    let mut facts = HelloFacts {
        legacy_version: ch.legacy,
        ciphers: U16List(ciphers),
        extensions: ExtTypes(exts),
        ..HelloFacts::default()
    };
    // Each fingerprint list comes from the first extension of its type.
    let (mut groups, mut formats, mut sigs, mut alpn) = (None, None, None, None);
    let mut walked = 0;
    for (t, e) in extensions(exts) {
        walked += 4 + e.len();
        match t {
            EXT_SERVER_NAME => {
                facts.sni = true;
                if ch.sni.is_none() {
                    ch.sni = host_name(e);
                }
            }
            EXT_SUPPORTED_GROUPS => _ = groups.get_or_insert((Rd { b: e }).vec16().unwrap_or_default()),
            EXT_EC_POINT_FORMATS => _ = formats.get_or_insert((Rd { b: e }).vec8().unwrap_or_default()),
            EXT_SIGNATURE_ALGORITHMS => _ = sigs.get_or_insert((Rd { b: e }).vec16().unwrap_or_default()),
            EXT_ALPN => {
                alpn.get_or_insert_with(|| (Rd { b: e }).vec16().and_then(|l| (Rd { b: l }).vec8()));
                ch.alpn = parse_alpn(e);
            }
            EXT_SUPPORTED_VERSIONS => {
                let list = (Rd { b: e }).vec8();
                facts.supported_versions.get_or_insert(U16List(list.unwrap_or_default()));
                if let Some(list) = list {
                    ch.versions = versions(list);
                }
            }
            EXT_SESSION_TICKET => {
                ch.ticket_ext = true;
                ch.ticket = !e.is_empty();
            }
            EXT_EARLY_DATA => ch.early_data = true,
            _ => {}
        }
    }
    if whole && walked == exts.len() {
        facts.supported_groups = U16List(groups.unwrap_or_default());
        facts.point_formats = formats.unwrap_or_default();
        facts.signature_algorithms = U16List(sigs.unwrap_or_default());
        facts.alpn_first = alpn.flatten();
        ch.fp = Some(fingerprint::fingerprints(&facts));
    }
    Some(())
}

/// The first host name of a server_name extension's list (RFC 6066 §3).
fn host_name(ext: &[u8]) -> Option<WireBytes> {
    let mut lr = Rd { b: (Rd { b: ext }).vec16()? };
    while let (Some(kind), Some(name)) = (lr.u8(), lr.vec16()) {
        if kind == SNI_HOST_NAME {
            return Some(WireBytes::new(name));
        }
    }
    None
}

/// The versions of a supported_versions list, GREASE left out.
fn versions(list: &[u8]) -> Versions {
    Versions::new(list.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).filter(|&v| !is_grease(v)))
}

/// The captured start of a ClientHello (see `TlsSession::cut_hello`): every field that is
/// whole, in order, until the first that is not; extensions only when whole.
fn parse_cut_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Rd { b: body };
    let mut ch = ClientHello { legacy: r.u16()?, ..ClientHello::default() };
    let rest = (|| {
        r.bytes(32)?;
        ch.session_id = SessionId::new(r.vec8()?.iter().copied());
        r.vec16()?;
        r.vec8()?;
        let ext_len = r.u16()? as usize;
        Some(&r.b[..ext_len.min(r.b.len())])
    })();
    if let Some(exts) = rest {
        for (t, e) in extensions(exts) {
            match t {
                EXT_SERVER_NAME if ch.sni.is_none() => ch.sni = host_name(e),
                EXT_ALPN => ch.alpn = parse_alpn(e),
                EXT_SUPPORTED_VERSIONS => {
                    if let Some(list) = (Rd { b: e }).vec8() {
                        ch.versions = versions(list);
                    }
                }
                _ => {}
            }
        }
    }
    Some(ch)
}

/// The captured start of a ServerHello (not a HelloRetryRequest, whose random is needed to
/// tell): legacy version, then the cipher suite and whole extensions when they were kept.
fn parse_cut_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Rd { b: body };
    let mut sh = ServerHello { legacy: r.u16()?, cut: true, ..ServerHello::default() };
    if sh.legacy >> 8 != 3 {
        return None; // drafts and odd versions: not worth guessing from a cut message
    }
    let _ = (|| {
        if r.bytes(32)? == HRR_RANDOM {
            sh.legacy = 0;
            return None;
        }
        sh.session_id = SessionId::new(r.vec8()?.iter().copied());
        sh.cipher = r.u16()?;
        r.u8()?;
        let ext_len = r.u16()? as usize;
        sh.exts_whole = ext_len <= r.b.len();
        server_hello_extensions(&mut sh, &r.b[..ext_len.min(r.b.len())]);
        Some(())
    })();
    (sh.legacy != 0).then_some(sh)
}

/// The facts a ServerHello's (whole) extensions give: the chosen version, ALPN, PSK.
fn server_hello_extensions(sh: &mut ServerHello, exts: &[u8]) {
    for (t, e) in extensions(exts) {
        match t {
            EXT_SUPPORTED_VERSIONS if e.len() == 2 => sh.selected = Some(u16::from_be_bytes([e[0], e[1]])),
            EXT_ALPN => sh.alpn = first_alpn(e),
            EXT_PRE_SHARED_KEY => sh.psk = true,
            _ => {}
        }
    }
}

/// The ALPN protocol of a TLS 1.3 EncryptedExtensions message (RFC 8446 §4.3.1), decrypted.
pub(super) fn encrypted_extensions_alpn(body: &[u8]) -> Option<WireBytes> {
    let exts = (Rd { b: body }).vec16()?;
    extensions(exts).find(|&(t, _)| t == EXT_ALPN).and_then(|(_, e)| first_alpn(e))
}

/// Returns the ServerHello and whether it is a HelloRetryRequest.
fn parse_server_hello(body: &[u8]) -> Option<(ServerHello, bool)> {
    let mut r = Rd { b: body };
    let mut sh = ServerHello { legacy: r.u16()?, ..ServerHello::default() };
    let random = r.bytes(32)?;
    let hrr = random == HRR_RANDOM;
    // TLS 1.3 drafts before 22 had no legacy session id / compression (draft-ietf-tls-tls13-21).
    let early_draft = sh.legacy >> 8 == 0x7f && (sh.legacy & 0xff) < 22;
    if !early_draft {
        sh.session_id = SessionId::new(r.vec8()?.iter().copied());
    }
    sh.cipher = r.u16()?;
    if !early_draft {
        r.u8()?;
    }
    if early_draft {
        sh.selected = Some(sh.legacy);
    }
    if let Some(exts) = r.vec16() {
        server_hello_extensions(&mut sh, exts);
    }
    Some((sh, hrr))
}

impl TlsSession {
    /// One SSLv2-format record (RFC 6101 appendix E; draft-hickman-netscape-ssl-00).
    pub(super) fn sslv2_record(&mut self, side: Side, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        let first = self.sides[s].records == 0;
        self.sides[s].records += 1;
        self.sides[s].sslv2 |= first;
        let mut r = Rd { b: body };
        match r.u8() {
            Some(SSL2_CLIENT_HELLO) => {
                // CLIENT-HELLO: version, cipher-specs length, session-id length, challenge length.
                // A TLS server answers it with a TLS ServerHello and the client goes on in TLS
                // records, so this side is not done.
                let parsed = (|| {
                    let version = r.u16()?;
                    let specs = r.u16()? as usize;
                    let sid = r.u16()? as usize;
                    let chal = r.u16()? as usize;
                    r.bytes(specs)?;
                    let sid = r.bytes(sid)?;
                    r.bytes(chal)?;
                    Some((version, sid))
                })();
                let Some((legacy, sid)) = parsed else {
                    self.warn("tls: malformed SSLv2 ClientHello".into());
                    return;
                };
                self.saw = true;
                self.ch_count += 1;
                self.client.get_or_insert(side);
                if self.ch.is_none() {
                    self.ch = Some(ClientHello {
                        legacy,
                        sslv2: true,
                        session_id: SessionId::new(sid.iter().copied()),
                        ..ClientHello::default()
                    });
                }
            }
            Some(SSL2_SERVER_HELLO) => {
                // SERVER-HELLO: session-id-hit, certificate type, version, lengths, certificate.
                let parsed = (|| {
                    r.u8()?;
                    r.u8()?;
                    let version = r.u16()?;
                    let cert_len = r.u16()? as usize;
                    r.u16()?;
                    r.u16()?;
                    Some((version, r.bytes(cert_len)?))
                })();
                let Some((version, cert)) = parsed else {
                    self.warn("tls: malformed SSLv2 ServerHello".into());
                    return;
                };
                self.saw = true;
                self.server.get_or_insert(side);
                if !cert.is_empty() {
                    let st = &mut self.sides[s];
                    st.cert_msg = true;
                    st.certs.push(parse_cert(cert, ts));
                }
                self.sh.get_or_insert(ServerHello { legacy: version, sslv2: true, ..ServerHello::default() });
                // SSL 2.0 was negotiated: everything after the hellos is encrypted, both ways.
                for st in &mut self.sides {
                    st.done = true;
                }
            }
            // CLIENT-MASTER-KEY and what follows: nothing more in cleartext.
            _ if !first => self.sides[s].done = true,
            _ => {
                self.warn("tls: unexpected SSLv2 record".into());
                self.sides[s].done = true;
            }
        }
    }

    pub(super) fn message(&mut self, side: Side, typ: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        match typ {
            HS_CLIENT_HELLO => self.client_hello(side, body),
            HS_SERVER_HELLO => self.server_hello(side, body),
            HS_CERTIFICATE => self.certificate(side, body, ts),
            HS_CERTIFICATE_REQUEST => self.sides[s].cert_request = true,
            HS_SERVER_HELLO_DONE => self.sides[s].hello_done = true,
            _ => {}
        }
    }

    fn client_hello(&mut self, side: Side, body: &[u8]) {
        self.ch_count += 1;
        if self.ch_count > 1 {
            // Facts come from the first ClientHello; a second one is expected after a
            // HelloRetryRequest only.
            if self.client != Some(side) {
                self.warn("tls: ClientHello from both sides".into());
            } else if self.hrr_side.is_none() || self.ch_count > 2 {
                self.warn("tls: repeated ClientHello".into());
            }
            return;
        }
        self.client.get_or_insert(side);
        if self.dec.is_some() {
            self.dec_client_random(body.get(2..34).unwrap_or_default());
        }
        if parse_client_hello(body, self.ch.insert(ClientHello::default())).is_none() {
            self.ch = None;
            self.warn("tls: malformed ClientHello".into());
        }
    }

    fn server_hello(&mut self, side: Side, body: &[u8]) {
        let s = side.idx();
        self.server.get_or_insert(side);
        let Some((sh, hrr)) = parse_server_hello(body) else {
            self.warn("tls: malformed ServerHello".into());
            return;
        };
        let v = sh.selected.unwrap_or(sh.legacy);
        if hrr {
            self.hrr_side.get_or_insert(side);
            self.hrr_version.get_or_insert(v);
            return;
        }
        if self.sh.is_some() {
            self.warn("tls: repeated ServerHello".into());
            return;
        }
        let cipher = sh.cipher;
        self.sh = Some(sh);
        if self.dec.is_some() {
            self.dec_server_hello(body.get(2..34).unwrap_or_default(), cipher, v);
        }
        if is_tls13(v) {
            // Everything the server sends next is encrypted.
            self.sides[s].done = true;
        }
    }

    fn certificate(&mut self, side: Side, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        // TLS 1.3 adds a request context and per-certificate extensions (RFC 8446 §4.4.2); such
        // a message is encrypted and never reaches us, but a draft or a plaintext test might.
        let tls13 = self.sh.as_ref().is_some_and(|sh| is_tls13(sh.selected.unwrap_or(sh.legacy)));
        let mut r = Rd { b: body };
        if tls13 && r.vec8().is_none() {
            self.warn("tls: malformed Certificate".into());
            return;
        }
        let Some(list) = r.vec24() else {
            self.warn("tls: malformed Certificate".into());
            return;
        };
        let mut lr = Rd { b: list };
        let mut count = 0usize;
        let mut dropped = 0usize;
        // `--ca`: the first list of each side is checked, for the role its sender plays.
        let ca =
            self.ca.filter(|_| self.sides[s].chain.is_none()).map(|ca| (ca, self.cert_sender_role(side)));
        let mut ders: Vec<&[u8]> = Vec::new();
        let st = &mut self.sides[s];
        st.cert_msg = true;
        while let Some(der) = lr.vec24() {
            if tls13 && lr.vec16().is_none() {
                break;
            }
            count += 1;
            if st.certs.len() < MAX_CHAIN {
                st.certs.push(parse_cert(der, ts));
                if ca.is_some() {
                    ders.push(der);
                }
            } else {
                dropped += 1;
            }
        }
        if let (Some((ca, role)), false) = (ca, ders.is_empty()) {
            st.chain = Some((role, ca.check(&ders, role, ts)));
        }
        let trailing = !lr.b.is_empty();
        if count == 0 {
            st.cert_empty = true;
        }
        if dropped > 0 {
            self.warn(format!("tls: certificate chain of {count} certificates; only {MAX_CHAIN} reported"));
        }
        if trailing {
            self.warn("tls: malformed Certificate".into());
        }
    }

    /// Who sent a Certificate message from `side`: the hellos tell; without them (joined
    /// mid-handshake), the client if the other side asked for a certificate.
    fn cert_sender_role(&self, side: Side) -> Role {
        let server = self.server.map(|s| s == side).or(self.client.map(|c| c != side));
        match server {
            Some(true) => Role::Server,
            Some(false) => Role::Client,
            None if self.sides[side.other().idx()].cert_request => Role::Client,
            None => Role::Server,
        }
    }

    /// Before a hole drops the side's partial record: a ClientHello or ServerHello whose start
    /// was captured (a small snaplen keeps only the first bytes of each packet) gives what it
    /// shows — legacy version, and as far as they were kept the cipher, SNI, ALPN and
    /// supported_versions — and a plausible record header alone makes the flow TLS.
    pub(super) fn cut_hello(&mut self, side: Side) {
        let st = &self.sides[side.idx()];
        if st.done
            || st.encrypted
            || st.resync
            || st.sslv2
            || st.rec.len() < 5
            || stream_header(&st.rec).is_none()
        {
            return;
        }
        self.saw = true;
        if st.rec[0] != CONTENT_HANDSHAKE {
            return;
        }
        let typ = st.hs.first().or(st.rec.get(5));
        let wanted = match typ {
            Some(&HS_CLIENT_HELLO) => self.ch.is_none(),
            Some(&HS_SERVER_HELLO) => self.sh.is_none() && self.client != Some(side),
            _ => false,
        };
        if !wanted {
            return;
        }
        let msg: Vec<u8> = st.hs.iter().chain(&st.rec[5..]).copied().collect();
        let (Some(&typ), Some(body)) = (msg.first(), msg.get(4..)) else { return };
        match typ {
            HS_CLIENT_HELLO if self.ch.is_none() => {
                if let Some(ch) = parse_cut_client_hello(body) {
                    self.client.get_or_insert(side);
                    self.ch_count += 1;
                    self.ch = Some(ch);
                    self.cut_hello = true;
                }
            }
            HS_SERVER_HELLO if self.sh.is_none() && self.client != Some(side) => {
                if let Some(sh) = parse_cut_server_hello(body) {
                    self.server.get_or_insert(side);
                    self.sh = Some(sh);
                    self.cut_hello = true;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::testutil::*;
    use crate::classify::tls::*;
    use crate::wire::{Feed, Probe};

    #[test]
    fn tls13_and_hello_retry_request() {
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("a.test", &["h2"], &[0x1a1a, 0x0304, 0x0303]))]), ts);
        let sv = ext(43, &[3, 4]);
        assert_eq!(
            t.feed(Side::B, &record(&[(2, server_hello(HRR_RANDOM, 0x1301, std::slice::from_ref(&sv)))]), ts),
            Feed::More
        );
        assert_eq!(t.feed(Side::B, &record(&[(2, server_hello([2; 32], 0x1301, &[sv]))]), ts), Feed::Done);
        let r = t.finish(Side::A);
        assert!(r.hello_retry_request);
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.versions_offered.names().collect::<Vec<_>>(), ["TLS 1.3", "TLS 1.2"]);
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(r.mtls.as_str(), "unknown");
    }

    #[test]
    fn tls13_hello_retry_request_capture() {
        // Client: ClientHello; server: HelloRetryRequest + CCS; client: CCS + ClientHello;
        // server: ServerHello + encrypted records.
        let (mut t, done) = run(TLS13_HRR);
        assert_eq!(done, [false, true]);
        assert!(t.take_warnings().is_empty());
        assert_eq!(t.ch_count, 2);
        let r = t.finish(Side::A);
        assert!(r.hello_retry_request);
        assert_eq!(r.sni.as_ref().unwrap().as_bytes(), b"hrr.example");
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        // Records after the second ClientHello count, not the CCS sent before it.
        assert_eq!(r.mtls.as_str(), "unlikely");
        assert_eq!(r.client_encrypted_records.first(), Some(&69));
    }

    #[test]
    fn sslv2_client_hello_then_tls() {
        // SSLv2-format ClientHello offering TLS 1.0 (RFC 5246 appendix E.2).
        let mut hello = vec![1, 3, 1, 0, 6, 0, 0, 0, 16];
        hello.extend_from_slice(&[0, 0, 0x2f, 0, 0, 0x35]);
        hello.extend_from_slice(&[0x11; 16]);
        let mut rec = vec![0x80 | (hello.len() >> 8) as u8, hello.len() as u8];
        rec.extend(hello);
        assert_eq!(probe(&rec), Probe::Match);
        assert_eq!(probe(&rec[..1]), Probe::NeedMore);
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::A, &rec, SEEN), Feed::More);
        let sh = record(&[(2, server_hello([3; 32], 0x002f, &[])), (14, vec![])]);
        t.feed(Side::B, &sh, SEEN);
        // The client goes on in TLS records.
        assert_eq!(t.feed(Side::A, &[22, 3, 1, 0, 4, 16, 0, 0, 0], SEEN), Feed::More);
        assert_eq!(t.feed(Side::A, &[20, 3, 1, 0, 1, 1], SEEN), Feed::Done);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert!(r.sslv2_client_hello);
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.0"));
        assert_eq!(r.versions_offered.names().collect::<Vec<_>>(), ["TLS 1.0"]);
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_RSA_WITH_AES_128_CBC_SHA"));
        assert_eq!(r.mtls.as_str(), "no");
    }

    #[test]
    fn hellos_cut_by_a_small_snaplen_give_what_was_captured() {
        // `-s 96` with TCP timestamps keeps 30 payload bytes of each packet.
        let ch = record(&[(1, client_hello("reviews.default.svc", &["h2"], &[0x0304, 0x0303]))]);
        let sh = record(&[(2, server_hello([9; 32], 0x1301, &[ext(43, &[3, 4])]))]);
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &ch[..30], SEEN);
        t.gap(Side::A);
        t.feed(Side::B, &sh[..30], SEEN);
        t.gap(Side::B);
        assert!(t.saw_tls());
        let r = t.finish(Side::B);
        assert_eq!((r.version.as_deref(), r.legacy_version.as_deref()), (None, Some("TLS 1.2")));
        assert!(r.versions_offered.is_empty() && r.sni.is_none() && r.cipher.is_none());
        assert_eq!(r.mtls.as_str(), "unknown");
        assert!(r.mtls_reason.starts_with("handshake cut short by the capture"), "{}", r.mtls_reason);
        // Kept long enough, the SNI and the cipher are read; extensions cut in the middle
        // (supported_versions, last here) are not.
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &ch[..ch.len() - 1], SEEN);
        t.gap(Side::A);
        t.feed(Side::B, &sh[..sh.len() - 1], SEEN);
        t.gap(Side::B);
        let r = t.finish(Side::B);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes().to_vec()), Some(b"reviews.default.svc".to_vec()));
        assert!(r.versions_offered.is_empty());
        assert_eq!((r.version.as_deref(), r.cipher.as_deref()), (None, Some("TLS_AES_128_GCM_SHA256")));
        let mut t = TlsSession::new(limits());
        t.feed(Side::B, &sh, SEEN);
        assert_eq!(t.finish(Side::A).version.as_deref(), Some("TLS 1.3"));
        // Bytes that are no record header stay not TLS.
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, b"\x16\x09\x09\x00\x10", SEEN);
        t.gap(Side::A);
        assert!(!t.saw_tls());
    }

    #[test]
    fn sslv2_session() {
        let server = stream(TLS12_MTLS, Side::B);
        let msg = &server[101..101 + 949];
        let leaf_len = u32::from_be_bytes([0, msg[7], msg[8], msg[9]]) as usize;
        let leaf = &msg[10..10 + leaf_len];
        let mut hello = vec![1, 0, 2, 0, 3, 0, 0, 0, 16, 1, 0, 0x80];
        hello.extend_from_slice(&[0x22; 16]);
        let mut ch = vec![0x80, hello.len() as u8];
        ch.extend(hello);
        let mut sh = vec![4, 0, 1, 0, 2];
        sh.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        sh.extend_from_slice(&[0, 3, 0, 16]);
        sh.extend_from_slice(leaf);
        sh.extend_from_slice(&[1, 0, 0x80]);
        sh.extend_from_slice(&[0x33; 16]);
        let mut shr = vec![0x80 | (sh.len() >> 8) as u8, sh.len() as u8];
        shr.extend(sh);
        assert_eq!(probe(&ch), Probe::Match);
        assert_eq!(probe(&shr), Probe::Match);
        assert_eq!(probe(&shr[..5]), Probe::NeedMore);
        assert_eq!(probe(&[0x80, 0x20, 4, 0, 1, 0, 3]), Probe::NoMatch);
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::A, &ch, SEEN), Feed::More);
        assert_eq!(t.feed(Side::B, &shr[..100], SEEN), Feed::More);
        assert_eq!(t.feed(Side::B, &shr[100..], SEEN), Feed::Done);
        // CLIENT-MASTER-KEY
        assert_eq!(t.feed(Side::A, &[0x80, 4, 2, 1, 0, 0x80], SEEN), Feed::Done);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert!(r.sslv2_client_hello);
        assert_eq!(r.version.as_deref(), Some("SSL 2.0"));
        assert_eq!(r.legacy_version.as_deref(), Some("SSL 2.0"));
        assert_eq!(r.cipher, None);
        assert_eq!(r.server_certs[0].subject.as_deref(), Some("CN=reviews,O=cluster.local"));
        assert_eq!(r.mtls.as_str(), "unknown");
    }

    #[test]
    fn fingerprints_only_of_whole_client_hellos() {
        let report = |body: Vec<u8>| {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &record(&[(1, body)]), SEEN);
            t.finish(Side::A)
        };
        // Ciphers 1301, c02f; extensions GREASE, server_name, ALPN h2, supported_versions.
        let ch = client_hello("x.test", &["h2"], &[0x0304, 0x0303]);
        let r = report(ch.clone());
        assert_eq!(r.ja4(), Some("t13d0203h2_c1929292aa6b_b9a491fefe05"));
        assert_eq!(r.ja4_r(), Some("t13d0203h2_1301,c02f_002b"));
        assert_eq!(r.ja3_full(), Some("771,4865-49199,0-16-43,,"));
        assert_eq!(r.ja3(), Some("336f5f33f4497e06a9cd5231997c3982"));
        // The same hello as an SSL 3.0-style one without an extension block.
        let r = report(ch[..43].to_vec());
        assert_eq!(r.ja3_full(), Some("771,4865-49199,,,"));
        assert_eq!(r.ja4(), Some("t12i020000_c1929292aa6b_000000000000"));
        // The last extension claims more bytes than the block holds: the facts before it are
        // still reported, the fingerprints are not (they would be of part of the hello).
        let mut cut = ch.clone();
        let n = cut.len();
        cut[n - 6] = 0x7f;
        let r = report(cut);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes()), Some(&b"x.test"[..]));
        assert_eq!((r.ja4(), r.ja4_r(), r.ja3(), r.ja3_full()), (None, None, None, None));
        // An extension block longer than the message, an odd cipher list.
        let mut long = ch.clone();
        long[43] = 0xff;
        assert_eq!(report(long).ja4(), None);
        let odd = [&ch[..35], &[0, 5], &ch[37..41], &[0x13], &ch[41..]].concat();
        let r = report(odd);
        assert_eq!(r.sni.as_ref().map(|s| s.as_bytes()), Some(&b"x.test"[..]));
        assert_eq!(r.ja3(), None);
        // Every cut of the message and every byte flipped: no panic, fingerprints or none.
        for cut in 0..ch.len() {
            let _ = report(ch[..cut].to_vec());
        }
        for i in 0..ch.len() {
            let mut b = ch.clone();
            b[i] ^= 0xa5;
            let _ = report(b);
        }
    }
}

//! Certificate chains checked against trust anchors given with `--ca` (e.g. an Istio mesh's
//! root-cert.pem): signatures, validity at the capture time of the handshake, CA and path-length
//! constraints, and a leaf usable for the side that sent it (serverAuth for the server's list,
//! clientAuth for the client's). Host names are not checked: mesh identities are SPIFFE URIs,
//! which the certificate objects already report.
//!
//! The verifier is rustls-webpki (RFC 5280 path building over the certificates the peer sent,
//! in any order, with bounded work: it gives up on a path that needs too many signature checks,
//! so a hostile chain costs little). It does not check the trust anchor's own validity dates,
//! as RFC 5280 §6.1.1 treats an anchor as a name and a key; `openssl verify` does.
//!
//! A mesh sends the same chains in every handshake, so results are cached by a SHA-256 of the
//! chain's DER (and the side): a result holds for as long as no certificate of the chain
//! crosses its notBefore or notAfter, so each is kept with that window and checked again when a
//! handshake falls outside it. The DER itself is read where the Certificate message is parsed
//! and never kept (`TlsSession` calls [`TrustStore::check`]).

use super::cert::dn_string;
use crate::wire::{Role, Timestamp};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use webpki::{EndEntityCert, Error as WebpkiError, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Cached results per generation; two generations are kept, so at most twice this many.
const CACHE_GENERATION: usize = 2048;

/// The result of checking one certificate list (the JSON `server_chain` / `client_chain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainCheck {
    /// A path from the leaf to a `--ca` anchor verified.
    pub(crate) verified: bool,
    /// The subject of the anchor the path ends at (when verified).
    pub(crate) by: Option<Arc<str>>,
    /// Why not (when not verified): `unknown issuer: CN=...`, `expired at capture time (...)`.
    pub(crate) error: Option<Arc<str>>,
}

/// Why a `--ca` file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file cannot be read.
    #[error("cannot read --ca {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM block is broken.
    #[error("--ca {path}: bad PEM ({reason}); give the CA certificates as PEM, like Istio's root-cert.pem")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No `CERTIFICATE` block.
    #[error(
        "--ca {path} holds no PEM certificate; give the CA certificates as PEM, like Istio's root-cert.pem"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate that webpki cannot take as an anchor.
    #[error("--ca {path}: certificate {index} cannot be a trust anchor: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Its place in the file, from 1.
        index: usize,
        /// webpki's reason.
        reason: String,
    },
}

/// The `--ca` certificates, as trust anchors, with the cache of results.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    /// Each anchor's subject as text (`CN=...,O=...`, as certificate objects write it).
    names: Vec<Arc<str>>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore").field("anchors", &self.names).finish()
    }
}

/// One cached result: valid for checks at `lo <= t < hi` (Unix seconds).
struct Entry {
    lo: i64,
    hi: i64,
    check: Arc<ChainCheck>,
}

/// Two generations: lookups promote an entry from the old one; when the new one is full it
/// becomes the old one (the entries not used since are dropped). Bounded, close to LRU.
#[derive(Default)]
struct Cache {
    new: HashMap<[u8; 32], Entry>,
    old: HashMap<[u8; 32], Entry>,
}

impl Cache {
    fn get(&mut self, key: &[u8; 32], t: i64) -> Option<Arc<ChainCheck>> {
        if let Some(e) = self.old.remove(key) {
            self.insert(*key, e);
        }
        self.new.get(key).filter(|e| e.lo <= t && t < e.hi).map(|e| Arc::clone(&e.check))
    }

    fn insert(&mut self, key: [u8; 32], e: Entry) {
        if self.new.len() >= CACHE_GENERATION && !self.new.contains_key(&key) {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(key, e);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.new.len() + self.old.len()
    }
}

impl TrustStore {
    /// Reads every `--ca` file (PEM; lines may be indented, as in a ConfigMap's YAML).
    pub fn load(paths: &[PathBuf]) -> Result<TrustStore, CaError> {
        let mut anchors = Vec::new();
        let mut names = Vec::new();
        for path in paths {
            let text = std::fs::read(path).map_err(|source| CaError::Read { path: path.clone(), source })?;
            for der in pem_certificates(&text, path)? {
                let index = names.len() + 1;
                let cd = CertificateDer::from(der.as_slice());
                let anchor = webpki::anchor_from_trusted_cert(&cd).map_err(|e| CaError::BadCertificate {
                    path: path.clone(),
                    index,
                    reason: e.to_string(),
                })?;
                anchors.push(anchor.to_owned());
                let name = match X509Certificate::from_der(&der) {
                    Ok((_, c)) => dn_string(c.subject()),
                    Err(_) => String::new(),
                };
                names.push(Arc::from(name));
            }
        }
        Ok(TrustStore { anchors, names, cache: Mutex::default() })
    }

    /// Checks a certificate list as sent (leaf first, then the rest in any order), for the side
    /// that sent it, at `at` (the capture time of the handshake).
    pub(crate) fn check(&self, ders: &[&[u8]], role: Role, at: Timestamp) -> Arc<ChainCheck> {
        let mut h = Sha256::new();
        h.update([role as u8]);
        for d in ders {
            h.update((d.len() as u32).to_be_bytes());
            h.update(d);
        }
        let key: [u8; 32] = h.finalize().into();
        let t = at.secs;
        if let Some(hit) = self.lock().get(&key, t) {
            return hit;
        }
        let check = Arc::new(self.verify(ders, role, t));
        let (lo, hi) = validity_window(ders, t);
        self.lock().insert(key, Entry { lo, hi, check: Arc::clone(&check) });
        check
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic elsewhere while holding it leaves a usable cache: every entry is whole.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn verify(&self, ders: &[&[u8]], role: Role, t: i64) -> ChainCheck {
        let fail = |error: String| ChainCheck { verified: false, by: None, error: Some(error.into()) };
        let Some((leaf, rest)) = ders.split_first() else {
            return fail("no certificate".into());
        };
        let leaf_der = CertificateDer::from(*leaf);
        let ee = match EndEntityCert::try_from(&leaf_der) {
            Ok(ee) => ee,
            Err(e) => return fail(describe(&e, ders, role)),
        };
        let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|d| CertificateDer::from(*d)).collect();
        let usage = match role {
            Role::Server => KeyUsage::server_auth(),
            Role::Client => KeyUsage::client_auth(),
        };
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.max(0) as u64));
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            usage,
            None,
            None,
        ) {
            Ok(path) => {
                let a = path.anchor();
                let i = self.anchors.iter().position(|x| {
                    x.subject == a.subject && x.subject_public_key_info == a.subject_public_key_info
                });
                ChainCheck { verified: true, by: i.map(|i| Arc::clone(&self.names[i])), error: None }
            }
            Err(e) => fail(describe(&e, ders, role)),
        }
    }

    /// Results cached (for tests).
    #[cfg(test)]
    fn cached(&self) -> usize {
        self.lock().len()
    }
}

/// The DER of every `CERTIFICATE` block of a PEM file (other blocks are skipped).
fn pem_certificates(text: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    // Leading blanks dropped: PEM pasted into YAML (a ConfigMap's `root-cert.pem: |`) is indented.
    let mut flat = Vec::with_capacity(text.len());
    for line in text.split(|&b| b == b'\n') {
        let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
        flat.extend_from_slice(&line[start..]);
        flat.push(b'\n');
    }
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&flat) {
        let pem = block.map_err(|e| CaError::BadPem { path: path.to_path_buf(), reason: e.to_string() })?;
        if pem.label == "CERTIFICATE" || pem.label == "TRUSTED CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(CaError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(out)
}

/// The seconds `[lo, hi)` around `t` in which no certificate of the list crosses its notBefore
/// or notAfter: the check's result is the same anywhere inside (a certificate that cannot be
/// parsed here pins the window to `t`'s second).
fn validity_window(ders: &[&[u8]], t: i64) -> (i64, i64) {
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    for d in ders {
        let Ok((_, c)) = X509Certificate::from_der(d) else {
            return (t, t.saturating_add(1));
        };
        // Valid from notBefore, expired from notAfter + 1 (webpki: `t > notAfter`).
        let v = c.validity();
        for b in [v.not_before.timestamp(), v.not_after.timestamp().saturating_add(1)] {
            if b <= t {
                lo = lo.max(b);
            } else {
                hi = hi.min(b);
            }
        }
    }
    (lo, hi)
}

/// webpki's error in an operator's words, naming the certificate where that helps.
fn describe(e: &WebpkiError, ders: &[&[u8]], role: Role) -> String {
    use WebpkiError as E;
    let parsed = || ders.iter().filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c));
    // The certificate whose validity ends (or starts) at `bound`, by subject.
    let named = |bound: i64, start: bool| {
        parsed()
            .find(|c| {
                let v = c.validity();
                (if start { v.not_before.timestamp() } else { v.not_after.timestamp() }) == bound
            })
            .map(|c| dn_string(c.subject()))
            .filter(|s| !s.is_empty())
            .map(|s| format!("{s}, "))
            .unwrap_or_default()
    };
    let at = |u: &UnixTime| rfc3339(u.as_secs() as i64);
    #[allow(deprecated)]
    match e {
        E::UnknownIssuer => match missing_issuer(&parsed().collect::<Vec<_>>()) {
            Some(issuer) if !issuer.is_empty() => format!("unknown issuer: {issuer}"),
            _ => "unknown issuer".into(),
        },
        E::CertExpired { not_after, .. } => {
            format!(
                "expired at capture time ({}not after {})",
                named(not_after.as_secs() as i64, false),
                at(not_after)
            )
        }
        E::CertNotValidYet { not_before, .. } => format!(
            "not yet valid at capture time ({}not before {})",
            named(not_before.as_secs() as i64, true),
            at(not_before)
        ),
        E::InvalidSignatureForPublicKey | E::SignatureAlgorithmMismatch => "bad signature".into(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmForPublicKey => "unsupported signature algorithm".into(),
        E::CaUsedAsEndEntity => "CA constraint: the leaf is a CA certificate".into(),
        E::EndEntityUsedAsCa => "CA constraint: an issuer is not a CA (basicConstraints)".into(),
        E::PathLenConstraintViolated => "path length constraint exceeded".into(),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => match role {
            Role::Server => "leaf not usable by a server (extended key usage lacks serverAuth)".into(),
            Role::Client => "leaf not usable by a client (extended key usage lacks clientAuth)".into(),
        },
        E::NameConstraintViolation => "name constraint violated".into(),
        E::MaximumPathDepthExceeded
        | E::MaximumSignatureChecksExceeded
        | E::MaximumPathBuildCallsExceeded
        | E::MaximumNameConstraintComparisonsExceeded => "path too complex to verify".into(),
        E::UnsupportedCertVersion => "not an X.509 v3 certificate".into(),
        E::UnsupportedCriticalExtension => "unsupported critical extension".into(),
        E::InvalidCertValidity => "invalid validity period".into(),
        other => format!("malformed certificate ({other})"),
    }
}

/// The issuer that ends the list's own chain: from the leaf, each certificate's issuer is looked
/// up among the others by name, until a self-signed certificate or a name the list lacks (the
/// one no `--ca` certificate has either).
fn missing_issuer(certs: &[X509Certificate<'_>]) -> Option<String> {
    let mut cur = certs.first()?;
    for _ in 0..certs.len() {
        let issuer = cur.issuer().as_raw();
        if issuer == cur.subject().as_raw() {
            break;
        }
        match certs.iter().find(|c| c.subject().as_raw() == issuer) {
            Some(next) => cur = next,
            None => break,
        }
    }
    Some(dn_string(cur.issuer()))
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    let mut s = crate::wire::rfc3339_secs_prefix(secs);
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(name: &str) -> PathBuf {
        PathBuf::from(format!("{}/captures/pki/{name}", env!("CARGO_MANIFEST_DIR")))
    }

    fn der(name: &str) -> Vec<u8> {
        pem_certificates(&std::fs::read(pki(name)).unwrap(), &pki(name)).unwrap().remove(0)
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// 2026-11-23, when the shipped captures were made.
    const CAPTURED: i64 = 1_795_412_726;

    #[test]
    fn mesh_leaf_verifies_against_its_root_and_not_another() {
        let mesh = TrustStore::load(&[pki("ca.crt")]).unwrap();
        let leaf = der("reviews.crt");
        let c = mesh.check(&[&leaf], Role::Server, at(CAPTURED));
        assert_eq!(
            (c.verified, c.by.as_deref(), c.error.as_deref()),
            (true, Some("CN=cluster.local root,O=cluster.local"), None)
        );
        let other = TrustStore::load(&[pki("other-ca.crt")]).unwrap();
        let c = other.check(&[&leaf], Role::Client, at(CAPTURED));
        assert_eq!(
            (c.verified, c.by.as_deref(), c.error.as_deref()),
            (false, None, Some("unknown issuer: CN=cluster.local root,O=cluster.local"))
        );
        // Both anchors in one bundle (two files): the mesh root signs it.
        let both = TrustStore::load(&[pki("other-ca.crt"), pki("ca.crt")]).unwrap();
        assert!(both.check(&[&leaf], Role::Server, at(CAPTURED)).verified);
    }

    #[test]
    fn validity_is_checked_at_capture_time_and_cached_per_window() {
        let mesh = TrustStore::load(&[pki("ca.crt")]).unwrap();
        let leaf = der("expired.crt");
        // Valid 2020-01-01T00:00:00Z .. 2021-01-01T00:00:00Z.
        let (nb, na) = (1_577_836_800, 1_609_459_200);
        let c = mesh.check(&[&leaf], Role::Server, at(CAPTURED));
        assert_eq!(
            c.error.as_deref(),
            Some("expired at capture time (CN=expired.example.test,O=Example Test, not after 2021-01-01T00:00:00Z)")
        );
        assert!(mesh.check(&[&leaf], Role::Server, at(na)).verified);
        assert!(mesh.check(&[&leaf], Role::Server, at(nb)).verified);
        assert!(!mesh.check(&[&leaf], Role::Server, at(na + 1)).verified);
        let early = mesh.check(&[&leaf], Role::Server, at(nb - 1));
        assert_eq!(
            early.error.as_deref(),
            Some("not yet valid at capture time (CN=expired.example.test,O=Example Test, not before 2020-01-01T00:00:00Z)")
        );
        // One entry per (chain, side): re-checked when the time leaves the window.
        assert_eq!(mesh.cached(), 1);
        assert!(mesh.check(&[&leaf], Role::Client, at(nb)).verified);
        assert_eq!(mesh.cached(), 2);
        assert_eq!(validity_window(&[&leaf], nb - 1), (i64::MIN, nb));
        assert_eq!(validity_window(&[&leaf], nb), (nb, na + 1));
        // With the root in the list: its notBefore (2025-12-31) is the last boundary before.
        assert_eq!(validity_window(&[&leaf, &der("ca.crt")], CAPTURED).0, 1_767_139_200);
    }

    #[test]
    fn intermediate_sent_in_any_order() {
        let store = TrustStore::load(&[pki("big-root.crt")]).unwrap();
        let (leaf, inter, root) = (der("big-leaf.crt"), der("big-inter.crt"), der("big-root.crt"));
        for list in [vec![&leaf[..], &inter, &root], vec![&leaf[..], &root, &inter], vec![&leaf[..], &inter]]
        {
            let c = store.check(&list, Role::Server, at(CAPTURED));
            assert_eq!(c.by.as_deref(), Some("CN=Big Test Root CA,O=Big Test"));
        }
        // Without the intermediate, the leaf's issuer is unknown.
        let c = store.check(&[&leaf], Role::Server, at(CAPTURED));
        assert_eq!(c.error.as_deref(), Some("unknown issuer: CN=Big Test Intermediate CA,O=Big Test"));
        // The intermediate as the leaf: a CA certificate.
        let c = store.check(&[&inter, &root], Role::Server, at(CAPTURED));
        assert_eq!(c.error.as_deref(), Some("CA constraint: the leaf is a CA certificate"));
    }

    #[test]
    fn unknown_issuer_is_where_the_list_s_own_chain_ends() {
        let big = TrustStore::load(&[pki("big-root.crt")]).unwrap();
        // An unrelated certificate after the leaf: the leaf's issuer is still the one named.
        let (leaf, other) = (der("reviews.crt"), der("intruder.crt"));
        let c = big.check(&[&leaf, &other], Role::Server, at(CAPTURED));
        assert_eq!(c.error.as_deref(), Some("unknown issuer: CN=cluster.local root,O=cluster.local"));
        // Leaf and intermediate sent, root not trusted: the intermediate's issuer.
        let mesh = TrustStore::load(&[pki("ca.crt")]).unwrap();
        let c = mesh.check(&[&der("big-leaf.crt"), &der("big-inter.crt")], Role::Server, at(CAPTURED));
        assert_eq!(c.error.as_deref(), Some("unknown issuer: CN=Big Test Root CA,O=Big Test"));
    }

    /// A Certificate message seen without either hello (the capture joined mid-handshake).
    #[test]
    fn a_list_without_hellos_is_taken_as_the_server_s() {
        use crate::classify::tls::{TlsLimits, TlsSession};
        use crate::wire::Side;
        let store: &'static TrustStore = Box::leak(Box::new(TrustStore::load(&[pki("ca.crt")]).unwrap()));
        let leaf = der("reviews.crt");
        let u24 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let mut msg = vec![11];
        msg.extend(u24(leaf.len() + 6));
        msg.extend(u24(leaf.len() + 3));
        msg.extend(u24(leaf.len()));
        msg.extend(&leaf);
        let mut rec = vec![22, 3, 3];
        rec.extend((msg.len() as u16).to_be_bytes());
        rec.extend(&msg);
        let mut t = TlsSession::new(TlsLimits { max_buffer: 65536 }).checking_chains(Some(store));
        t.feed(Side::A, &rec, at(CAPTURED));
        // The flow layer says B is the client: A's list is the server's.
        let r = t.finish(Side::B);
        assert_eq!(r.server_chain.as_ref().map(|c| c.verified), Some(true));
        assert!(r.client_chain.is_none());
        // It says A is the client: the list was checked for a server, so it is not reported.
        let r = t.finish(Side::A);
        assert_eq!(r.client_certs.len(), 1);
        assert!(r.server_chain.is_none() && r.client_chain.is_none());
    }

    #[test]
    fn hostile_lists_are_reported_not_trusted() {
        let mesh = TrustStore::load(&[pki("ca.crt")]).unwrap();
        let mut leaf = der("reviews.crt");
        // The last byte is in the signature.
        *leaf.last_mut().unwrap() ^= 1;
        let c = mesh.check(&[&leaf], Role::Server, at(CAPTURED));
        assert_eq!((c.verified, c.error.as_deref()), (false, Some("bad signature")));
        let c = mesh.check(&[b"\x30\x03\x02\x01\x00"], Role::Server, at(CAPTURED));
        assert!(!c.verified && c.error.as_deref().unwrap().starts_with("malformed certificate"));
        assert_eq!(mesh.check(&[], Role::Server, at(CAPTURED)).error.as_deref(), Some("no certificate"));
    }

    #[test]
    fn mutated_chains_never_panic_nor_verify() {
        let mesh = TrustStore::load(&[pki("ca.crt")]).unwrap();
        let (leaf, root) = (der("reviews.crt"), der("ca.crt"));
        let mut rng = crate::wire::xorshift(19);
        for _ in 0..2000 {
            let (mut l, mut r) = (leaf.clone(), root.clone());
            for _ in 0..1 + rng() % 4 {
                let v = if rng().is_multiple_of(2) { &mut l } else { &mut r };
                let i = (rng() as usize) % (v.len() + 1);
                match rng() % 3 {
                    0 if i < v.len() => v[i] ^= 1 << (rng() % 8),
                    1 => v.truncate(i),
                    _ => v.insert(i, rng() as u8),
                }
            }
            let c = mesh.check(&[&l, &r], Role::Server, at(CAPTURED));
            // A changed leaf never verifies (a changed copy of the root is only an extra).
            if l != leaf {
                assert!(!c.verified && c.error.is_some(), "{c:?}");
            }
        }
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = Cache::default();
        let e =
            || Entry { lo: 0, hi: 1, check: Arc::new(ChainCheck { verified: true, by: None, error: None }) };
        for i in 0..3 * CACHE_GENERATION as u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            c.insert(k, e());
        }
        assert!(c.len() <= 2 * CACHE_GENERATION);
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&(3 * CACHE_GENERATION as u32 - 1).to_be_bytes());
        assert!(c.get(&k, 0).is_some() && c.get(&k, 1).is_none());
    }

    #[test]
    fn ca_files_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("tlspeek-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        std::fs::copy(pki("ca.key"), &key).unwrap();
        let e = TrustStore::load(std::slice::from_ref(&key)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--ca {} holds no PEM certificate", key.display())), "{e}");
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap();
        let e = TrustStore::load(std::slice::from_ref(&bad)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--ca {}: bad PEM", bad.display())), "{e}");
        // A ConfigMap as YAML: indented PEM.
        let yaml = dir.join("cm.yaml");
        let pem = std::fs::read_to_string(pki("ca.crt")).unwrap();
        let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
        std::fs::write(&yaml, format!("data:\n  root-cert.pem: |\n{indented}")).unwrap();
        assert_eq!(TrustStore::load(&[yaml]).unwrap().names.len(), 1);
        let missing = dir.join("missing.pem");
        let e = TrustStore::load(std::slice::from_ref(&missing)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot read --ca {}", missing.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

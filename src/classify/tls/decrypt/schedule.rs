//! Key derivation from key-log secrets: TLS 1.3 traffic keys and IVs (RFC 8446 §7.3,
//! HKDF-Expand-Label), the traffic secret update of KeyUpdate (§7.2), and the TLS 1.2 key block
//! (RFC 5246 §5 and §6.3, the PRF with SHA-256 or SHA-384).

use super::keylog::Secret;
use ring::{hkdf, hmac};

/// The hash of a cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl Hash {
    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha384 => hkdf::HKDF_SHA384,
        }
    }
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
        }
    }
    /// Output length in bytes.
    pub(crate) fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// An output length for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, "", len) (RFC 8446 §7.1); None when the secret does not fit
/// the hash (a key log line of the other length) or `len` is out of range.
pub(crate) fn expand_label(hash: Hash, secret: &[u8], label: &[u8], len: usize) -> Option<Vec<u8>> {
    if secret.len() != hash.len() || len > 255 || label.len() > 249 {
        return None;
    }
    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    let out_len = (len as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// The record key and IV of a TLS 1.3 traffic secret.
pub(crate) fn traffic_key(hash: Hash, secret: &Secret, key_len: usize) -> Option<(Vec<u8>, [u8; 12])> {
    let key = expand_label(hash, &secret.0, b"key", key_len)?;
    let iv = expand_label(hash, &secret.0, b"iv", 12)?;
    Some((key, iv.try_into().ok()?))
}

/// The next traffic secret after a KeyUpdate.
pub(crate) fn next_secret(hash: Hash, secret: &Secret) -> Option<Secret> {
    expand_label(hash, &secret.0, b"traffic upd", hash.len()).map(|s| Secret(s.into_boxed_slice()))
}

/// TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed), `len` bytes.
pub(crate) fn prf12(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac(), secret);
    let mut out = Vec::with_capacity(len + hash.len());
    // A(1) = HMAC(secret, label + seed)
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(seed);
    let mut a = ctx.sign();
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(label);
        ctx.update(seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, a.as_ref());
    }
    out.truncate(len);
    out
}

/// The TLS 1.2 AEAD keys (client write key, server write key, client IV, server IV) from the
/// master secret: key_block = PRF(master, "key expansion", server_random + client_random).
pub(crate) fn key_block12(
    hash: Hash,
    master: &Secret,
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    key_len: usize,
    iv_len: usize,
) -> [Vec<u8>; 4] {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(server_random);
    seed[32..].copy_from_slice(client_random);
    let kb = prf12(hash, &master.0, b"key expansion", &seed, 2 * key_len + 2 * iv_len);
    let (ck, rest) = kb.split_at(key_len);
    let (sk, rest) = rest.split_at(key_len);
    let (civ, siv) = rest.split_at(iv_len);
    [ck.to_vec(), sk.to_vec(), civ.to_vec(), siv.to_vec()]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret gives the
    /// server's handshake key and IV.
    #[test]
    fn rfc8448_server_handshake_key_and_iv() {
        let secret = Secret(
            hex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38")
                .into(),
        );
        let (key, iv) = traffic_key(Hash::Sha256, &secret, 16).unwrap();
        assert_eq!(key, hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"));
        assert_eq!(iv.to_vec(), hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
        // The wrong length of secret for the hash: no key.
        assert!(traffic_key(Hash::Sha384, &secret, 32).is_none());
    }

    /// The TLS 1.2 PRF test vector for SHA-256 (from the IETF TLS working group list, as used by
    /// many implementations' tests).
    #[test]
    fn prf12_sha256_vector() {
        let secret = hex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35");
        let seed = hex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c");
        let out = prf12(Hash::Sha256, &secret, b"test label", &seed, 100);
        assert_eq!(
            out,
            hex("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
                 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
                 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01
                 87 34 7b 66")
        );
    }
}

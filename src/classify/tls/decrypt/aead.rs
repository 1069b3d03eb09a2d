//! One record decrypted: TLS 1.3 (RFC 8446 §5.2-5.3: nonce = IV XOR sequence number, AAD = the
//! record header, the inner content type after the zero padding) and TLS 1.2 AEAD suites (AES-GCM,
//! RFC 5288: 4-byte implicit + 8-byte explicit nonce; ChaCha20-Poly1305, RFC 7905: IV XOR
//! sequence number; AAD = seq | type | version | plaintext length). Never panics on any input.

use crate::classify::tls::names::CONTENT_APPLICATION_DATA;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

/// The AEAD of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cipher {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20,
}

impl Cipher {
    fn alg(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20 => &aead::CHACHA20_POLY1305,
        }
    }
    /// Key length in bytes.
    pub(crate) fn key_len(self) -> usize {
        self.alg().key_len()
    }
}

/// How records are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// TLS 1.3.
    Tls13,
    /// TLS 1.2 AES-GCM: 4-byte salt in `iv`, explicit nonce in the record.
    Tls12Gcm,
    /// TLS 1.2 ChaCha20-Poly1305: 12-byte IV XOR sequence number.
    Tls12Chacha,
}

/// Tag length of every supported AEAD.
pub(crate) const TAG: usize = 16;
/// Largest TLS 1.3 plaintext with its content type and padding (RFC 8446 §5.2).
const MAX_INNER: usize = 16384 + 256;

/// A record key of one direction, with its sequence number.
pub(crate) struct RecordKey {
    key: LessSafeKey,
    iv: [u8; 12],
    framing: Framing,
    /// Sequence number of the next record.
    pub(crate) seq: u64,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKey")
            .field("framing", &self.framing)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Why a record was not decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Too short or too long to be a record of this cipher.
    Length,
    /// The tag did not verify: the wrong key, or damaged bytes.
    Auth,
    /// TLS 1.3: the plaintext is all zeros (no content type).
    NoContentType,
}

impl RecordKey {
    /// A key; None when `key` or `iv` has the wrong length for the cipher.
    pub(crate) fn new(cipher: Cipher, framing: Framing, key: &[u8], iv: &[u8]) -> Option<RecordKey> {
        let mut full = [0u8; 12];
        match framing {
            Framing::Tls12Gcm if iv.len() == 4 => full[..4].copy_from_slice(iv),
            Framing::Tls13 | Framing::Tls12Chacha if iv.len() == 12 => full.copy_from_slice(iv),
            _ => return None,
        }
        let key = LessSafeKey::new(UnboundKey::new(cipher.alg(), key).ok()?);
        Some(RecordKey { key, iv: full, framing, seq: 0 })
    }

    fn xor_nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Seals one TLS 1.3 record of content type `ctype` (tests and the fuzz target build
    /// encrypted flows with it); empty on failure.
    pub(crate) fn seal13(&mut self, ctype: u8, plain: &[u8]) -> Vec<u8> {
        let mut inner = Vec::with_capacity(5 + plain.len() + 1 + TAG);
        inner.extend_from_slice(plain);
        inner.push(ctype);
        let Ok(len) = u16::try_from(inner.len() + TAG) else { return Vec::new() };
        let header = [CONTENT_APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = Nonce::assume_unique_for_key(self.xor_nonce());
        if self.key.seal_in_place_append_tag(nonce, Aad::from(header), &mut inner).is_err() {
            return Vec::new();
        }
        self.seq = self.seq.wrapping_add(1);
        let mut out = header.to_vec();
        out.extend_from_slice(&inner);
        out
    }

    /// Decrypts the record `header` (5 bytes) + `body` into `out` (cleared first); returns the
    /// content type and advances the sequence number. On error the sequence number stays.
    pub(crate) fn open(&mut self, header: [u8; 5], body: &[u8], out: &mut Vec<u8>) -> Result<u8, OpenError> {
        out.clear();
        let (nonce, ct, aad): ([u8; 12], &[u8], [u8; 13]) = match self.framing {
            Framing::Tls13 => {
                if body.len() < TAG + 1 || body.len() > MAX_INNER + TAG {
                    return Err(OpenError::Length);
                }
                let mut aad = [0u8; 13];
                aad[..5].copy_from_slice(&header);
                (self.xor_nonce(), body, aad)
            }
            Framing::Tls12Gcm | Framing::Tls12Chacha => {
                let explicit = if self.framing == Framing::Tls12Gcm { 8 } else { 0 };
                if body.len() < explicit + TAG || body.len() > explicit + TAG + 16384 + 2048 {
                    return Err(OpenError::Length);
                }
                let nonce = if explicit > 0 {
                    let mut n = self.iv;
                    n[4..].copy_from_slice(&body[..8]);
                    n
                } else {
                    self.xor_nonce()
                };
                let plain_len = (body.len() - explicit - TAG) as u16;
                let mut aad = [0u8; 13];
                aad[..8].copy_from_slice(&self.seq.to_be_bytes());
                aad[8..11].copy_from_slice(&header[..3]);
                aad[11..].copy_from_slice(&plain_len.to_be_bytes());
                (nonce, &body[explicit..], aad)
            }
        };
        let aad: &[u8] = if self.framing == Framing::Tls13 { &aad[..5] } else { &aad };
        out.extend_from_slice(ct);
        let n = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), out)
            .map_err(|_| OpenError::Auth)?
            .len();
        out.truncate(n);
        self.seq = self.seq.wrapping_add(1);
        if self.framing != Framing::Tls13 {
            return Ok(header[0]);
        }
        // Inner plaintext: content, content type, zero padding.
        let Some(end) = out.iter().rposition(|&b| b != 0) else {
            return Err(OpenError::NoContentType);
        };
        let ctype = out[end];
        out.truncate(end);
        Ok(ctype)
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::{tests::hex, traffic_key, Hash};
    use super::*;
    use crate::classify::tls::decrypt::keylog::Secret;

    /// RFC 8448 §3: the server's encrypted handshake record (EncryptedExtensions, Certificate,
    /// CertificateVerify, Finished in one record), decrypted byte-exact.
    #[test]
    fn rfc8448_server_handshake_record() {
        let secret = Secret(
            hex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38")
                .into(),
        );
        let (key, iv) = traffic_key(Hash::Sha256, &secret, 16).unwrap();
        let mut k = RecordKey::new(Cipher::Aes128Gcm, Framing::Tls13, &key, &iv).unwrap();
        let record = hex(RFC8448_SERVER_HS_RECORD);
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let mut out = Vec::new();
        assert_eq!(k.open(header, &record[5..], &mut out), Ok(22));
        assert_eq!(out, hex(RFC8448_SERVER_HS_PLAIN));
        assert_eq!(k.seq, 1);
        // The same record again: sequence number 1, so the nonce differs and it fails.
        assert_eq!(k.open(header, &record[5..], &mut out), Err(OpenError::Auth));
        assert_eq!(k.seq, 1);
        assert_eq!(k.open(header, &record[5..40], &mut out), Err(OpenError::Auth));
        assert_eq!(k.open(header, &record[5..10], &mut out), Err(OpenError::Length));
    }

    /// RFC 8448 §3: the client's application data record (sequence 0) and the server's
    /// (sequence 1, after its NewSessionTicket), from the published keys: `00 01 .. 31`.
    #[test]
    fn rfc8448_application_data_records() {
        let payload: Vec<u8> = (0u8..=0x31).collect();
        for (key, iv, seq, record) in [
            (
                "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51",
                "5b 78 92 3d ee 08 57 90 33 e5 23 d9",
                0,
                "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab
                 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e
                 3d ea e6 3a ee bb 21 69 49 15 e4",
            ),
            (
                "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
                "cf 78 2b 88 dd 83 54 9a ad f1 e9 84",
                1,
                "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa
                 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2
                 ab f3 32 54 0d d0 32 e1 67 c2 95 5d",
            ),
        ] {
            let mut k = RecordKey::new(Cipher::Aes128Gcm, Framing::Tls13, &hex(key), &hex(iv)).unwrap();
            k.seq = seq;
            let record = hex(record);
            let mut out = Vec::new();
            assert_eq!(k.open(record[..5].try_into().unwrap(), &record[5..], &mut out), Ok(23));
            assert_eq!(out, payload);
        }
    }

    /// RFC 8448 §3, "complete record" of the server's encrypted flight.
    pub(crate) const RFC8448_SERVER_HS_RECORD: &str = "
         17 03 03 02 a2 d1 ff 33 4a 56 f5 bf
         f6 59 4a 07 cc 87 b5 80 23 3f 50 0f 45 e4 89 e7 f3 3a f3 5e df
         78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca 07 61 2e f9 f9 45
         cb 96 0b 40 68 90 51 23 ea 78 b1 11 b4 29 ba 91 91 cd 05 d2 a3
         89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b
         d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9
         b1 18 3e f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09 ae e6 e1 22 a4 cf
         51 42 73 25 25 0c 7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d
         2e d6 5b 0e 3c dd 0c ba e8 bf 2d 0b 22 78 12 cb b3 60 98 72 55
         cc 74 41 10 c4 53 ba a4 fc d6 10 92 8d 80 98 10 e4 b7 ed 1a 8f
         d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70 a2 55 9c 09 ea d6
         86 94 5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8 94 41 ac
         66 27 2f d8 fb 33 0e f8 19 05 79 b3 68 45 96 c9 60 bd 59 6e ea
         52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e
         a5 e2 2f 44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6
         54 0c 84 83 8d 89 f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb
         31 7b 66 d9 02 f4 f2 92 a3 6a c1 b6 39 c6 37 ce 34 31 17 b6 59
         62 22 45 31 7b 49 ee da 0c 62 58 f1 00 d7 d9 61 ff b1 38 64 7e
         92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e 1b 7a 6c 71 78 af
         36 87 90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84 c8 b0 37
         8b f3 02 44 da 8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c
         f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4 61 e6 6f 99 88
         2b d8 9f c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80
         f8 5d f8 81 ed be 5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69
         18 a3 96 fa 48 a1 81 d6 b6 fa 4f 9d 62 d5 13 af bb 99 2f 2b 99
         2f 67 f8 af e6 7f 76 91 3f a3 88 cb 56 30 c8 ca 01 e0 c6 5d 11
         c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10 dc 35 ae 69 f5 51
         56 14 63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38 eb ba 42
         f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31 7f c9 fa 66 a7 3f
         60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd
         d5 02 78 40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af
         93 98 28 fd 4a e3 79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da
         bf 02 53 fe 51 75 be 89 8e 75 0e dc 53 37 0d 2b";

    /// The plaintext: the handshake messages of that record.
    pub(crate) const RFC8448_SERVER_HS_PLAIN: &str = "
         08 00 00 24 00 22 00 0a 00 14 00 12 00 1d 00 17
         00 18 00 19 01 00 01 01 01 02 01 03 01 04 00 1c
         00 02 40 01 00 00 00 00 0b 00 01 b9 00 00 01 b5
         00 01 b0 30 82 01 ac 30 82 01 15 a0 03 02 01 02
         02 01 02 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b
         05 00 30 0e 31 0c 30 0a 06 03 55 04 03 13 03 72
         73 61 30 1e 17 0d 31 36 30 37 33 30 30 31 32 33
         35 39 5a 17 0d 32 36 30 37 33 30 30 31 32 33 35
         39 5a 30 0e 31 0c 30 0a 06 03 55 04 03 13 03 72
         73 61 30 81 9f 30 0d 06 09 2a 86 48 86 f7 0d 01
         01 01 05 00 03 81 8d 00 30 81 89 02 81 81 00 b4
         bb 49 8f 82 79 30 3d 98 08 36 39 9b 36 c6 98 8c
         0c 68 de 55 e1 bd b8 26 d3 90 1a 24 61 ea fd 2d
         e4 9a 91 d0 15 ab bc 9a 95 13 7a ce 6c 1a f1 9e
         aa 6a f9 8c 7c ed 43 12 09 98 e1 87 a8 0e e0 cc
         b0 52 4b 1b 01 8c 3e 0b 63 26 4d 44 9a 6d 38 e2
         2a 5f da 43 08 46 74 80 30 53 0e f0 46 1c 8c a9
         d9 ef bf ae 8e a6 d1 d0 3e 2b d1 93 ef f0 ab 9a
         80 02 c4 74 28 a6 d3 5a 8d 88 d7 9f 7f 1e 3f 02
         03 01 00 01 a3 1a 30 18 30 09 06 03 55 1d 13 04
         02 30 00 30 0b 06 03 55 1d 0f 04 04 03 02 05 a0
         30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00 03
         81 81 00 85 aa d2 a0 e5 b9 27 6b 90 8c 65 f7 3a
         72 67 17 06 18 a5 4c 5f 8a 7b 33 7d 2d f7 a5 94
         36 54 17 f2 ea e8 f8 a5 8c 8f 81 72 f9 31 9c f3
         6b 7f d6 c5 5b 80 f2 1a 03 01 51 56 72 60 96 fd
         33 5e 5e 67 f2 db f1 02 70 2e 60 8c ca e6 be c1
         fc 63 a4 2a 99 be 5c 3e b7 10 7c 3c 54 e9 b9 eb
         2b d5 20 3b 1c 3b 84 e0 a8 b2 f7 59 40 9b a3 ea
         c9 d9 1d 40 2d cc 0c c8 f8 96 12 29 ac 91 87 b4
         2b 4d e1 00 00 0f 00 00 84 08 04 00 80 5a 74 7c
         5d 88 fa 9b d2 e5 5a b0 85 a6 10 15 b7 21 1f 82
         4c d4 84 14 5a b3 ff 52 f1 fd a8 47 7b 0b 7a bc
         90 db 78 e2 d3 3a 5c 14 1a 07 86 53 fa 6b ef 78
         0c 5e a2 48 ee aa a7 85 c4 f3 94 ca b6 d3 0b be
         8d 48 59 ee 51 1f 60 29 57 b1 54 11 ac 02 76 71
         45 9e 46 44 5c 9e a5 8c 18 1e 81 8e 95 b8 c3 fb
         0b f3 27 84 09 d3 be 15 2a 3d a5 04 3e 06 3d da
         65 cd f5 ae a2 0d 53 df ac d4 2f 74 f3 14 00 00
         20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de
         da 4a b4 2c 30 95 72 cb 7f ff ee 54 54 b7 8f 07
         18";
}

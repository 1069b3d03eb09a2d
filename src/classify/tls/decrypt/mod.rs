//! TLS decryption with key logs (`--keylog`): per-flow state, one per direction, for the records
//! after a side's cleartext part. TLS 1.3 handshake messages (EncryptedExtensions,
//! CertificateRequest, Certificate, Finished, KeyUpdate...) are handed back to the session's
//! parsers; decrypted alerts join the cleartext ones; application bytes are kept per side
//! (bounded by [`TlsLimits::max_buffer`](super::TlsLimits)) for the HTTP classifiers
//! ([`TlsSession::take_app`]).
//!
//! Keys: the ClientHello random selects the connection's secrets in the [`KeyLog`]; a miss in a
//! followed key log (live capture) keeps the side's records (bounded) until its line appears.
//! Each direction goes through stages (TLS 1.3: early, handshake, application; TLS 1.2: one
//! key from the master secret); a record that does not open with the current stage's key is
//! tried with the later ones (a stage whose secret is missing, or whose end was not seen). A
//! record that opens with none is counted as failed (wrong key) and the direction stops.
//! Nothing here panics on any key or record; secrets are never printed.

pub(crate) mod aead;
pub(crate) mod keylog;
pub(crate) mod schedule;

use super::names::{
    cipher_name, is_tls13, ALERT_FATAL, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CCS,
    CONTENT_HANDSHAKE, HS_CERTIFICATE, HS_CERTIFICATE_REQUEST, HS_KEY_UPDATE,
};
use super::records::stream_header;
use super::{TlsSession, MAX_ALERTS, MAX_RECORD};
use crate::wire::{Side, Timestamp};
use aead::{Cipher, Framing, OpenError, RecordKey};
pub use keylog::{KeyLog, KeyLogError};
use keylog::{Secret, Secrets};
use schedule::Hash;
use std::sync::Arc;

/// Handshake message types handled only here (TLS 1.3, RFC 8446 §4).
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_END_OF_EARLY_DATA: u8 = 5;
const HS_ENCRYPTED_EXTENSIONS: u8 = 8;
const HS_FINISHED: u8 = 20;
/// Records that fail to open before a direction gives up.
const MAX_FAILED: u32 = 1;

crate::wire::text_enum! {
    /// The outcome of decryption for a flow (the JSON `tls.decryption.status`).
    pub(crate) enum DecryptStatus {
        /// Every record read was decrypted, the handshake of both sides included (application
        /// data is read only while the HTTP classifiers want it).
        Decrypted => "decrypted",
        /// The key log has no line for this connection's client random.
        NoKeys => "no_keys",
        /// Some records were decrypted, not all (a secret missing, a capture gap, a limit).
        Partial => "partial",
        /// Records did not authenticate with the key log's secrets (wrong key).
        Failed => "failed",
        /// The cipher suite is not one tlspeek decrypts (CBC, CCM...).
        UnsupportedCipher => "unsupported_cipher",
    }
}

/// The JSON `tls.decryption` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecryptionReport {
    /// The outcome.
    pub(crate) status: DecryptStatus,
    /// Why, in words.
    pub(crate) reason: String,
    /// The encrypted handshake of both sides was decrypted (both Finished).
    pub(crate) handshake: bool,
    /// Application data was decrypted.
    pub(crate) application: bool,
}

/// A suite's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Suite {
    cipher: Cipher,
    hash: Hash,
    tls13: bool,
}

fn suite(id: u16) -> Option<Suite> {
    use Cipher::*;
    use Hash::*;
    let (cipher, hash, tls13) = match id {
        0x1301 => (Aes128Gcm, Sha256, true),
        0x1302 => (Aes256Gcm, Sha384, true),
        0x1303 => (Chacha20, Sha256, true),
        // TLS 1.2 AES-GCM (RFC 5288, RFC 5289): RSA, DHE_RSA, ECDHE_ECDSA, ECDHE_RSA.
        0x009c | 0x009e | 0xc02b | 0xc02f => (Aes128Gcm, Sha256, false),
        0x009d | 0x009f | 0xc02c | 0xc030 => (Aes256Gcm, Sha384, false),
        // TLS 1.2 ChaCha20-Poly1305 (RFC 7905): ECDHE_RSA, ECDHE_ECDSA, DHE_RSA.
        0xcca8..=0xccaa => (Chacha20, Sha256, false),
        _ => return None,
    };
    Some(Suite { cipher, hash, tls13 })
}

/// Where a direction's keys come from, per stage.
enum Material {
    /// A TLS 1.3 traffic secret.
    Secret(Secret),
    /// TLS 1.2 key and IV from the key block.
    Key12 { key: Vec<u8>, iv: Vec<u8> },
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Material::Secret(_) => "Material::Secret(..)",
            Material::Key12 { .. } => "Material::Key12(..)",
        })
    }
}

/// Stages of a direction.
const EARLY: usize = 0;
const HANDSHAKE: usize = 1;
const APPLICATION: usize = 2;

/// One direction's decryption state.
#[derive(Default)]
struct Dir {
    /// Started: the side's cleartext part is over.
    started: bool,
    /// A record spanning chunks (header included).
    frame: Vec<u8>,
    /// Key material per stage.
    material: [Option<Material>; 3],
    /// The current stage and its key.
    stage: usize,
    key: Option<RecordKey>,
    /// Decrypted handshake bytes not yet a whole message.
    hs: Vec<u8>,
    /// Decrypted application bytes not yet taken.
    app: Vec<u8>,
    /// Application bytes are wanted (the HTTP classifier is not done with this side).
    app_wanted: bool,
    /// Records waiting for the key log (followed file).
    held: Vec<u8>,
    /// This side's Finished was decrypted.
    finished: bool,
    /// Records decrypted, failed, and skipped (no key for them).
    opened: u32,
    failed: u32,
    skipped: u32,
    /// Stopped: a gap, a failure, a malformed record.
    broken: Option<&'static str>,
    /// Application bytes were dropped (buffer limit).
    app_dropped: bool,
    /// Application data was decrypted.
    app_seen: bool,
}

/// Decryption state of one flow.
pub(crate) struct Decryptor {
    log: Arc<KeyLog>,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    cipher: Option<u16>,
    suite: Option<Suite>,
    /// The connection's secrets, once found.
    secrets: Option<Secrets>,
    /// The ClientHello offered 0-RTT.
    early_offered: bool,
    dirs: [Dir; 2],
    /// Scratch buffer for plaintext.
    out: Vec<u8>,
    max_buffer: usize,
    /// Capture time of the last record (for the key log's re-read rate).
    last_ts: Timestamp,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("cipher", &self.cipher)
            .field("found", &self.secrets.is_some())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// A decryptor using `log`.
    pub(crate) fn new(log: Arc<KeyLog>, max_buffer: usize) -> Decryptor {
        let mut dirs: [Dir; 2] = Default::default();
        for d in &mut dirs {
            d.app_wanted = true;
        }
        Decryptor {
            log,
            client_random: None,
            server_random: None,
            cipher: None,
            suite: None,
            secrets: None,
            early_offered: false,
            dirs,
            out: Vec::new(),
            max_buffer,
            last_ts: Timestamp::default(),
        }
    }

    /// Bytes held (capacity).
    pub(crate) fn buffered(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| d.frame.capacity() + d.hs.capacity() + d.app.capacity() + d.held.capacity())
            .sum()
    }

    /// Looks the connection up in the key log, if not found yet.
    fn find_keys(&mut self, ts: Timestamp) -> bool {
        if self.secrets.is_some() {
            return true;
        }
        let Some(random) = self.client_random else { return false };
        self.secrets = self
            .log
            .lookup(&random, ts.secs.saturating_mul(1_000_000).saturating_add(i64::from(ts.nanos / 1000)));
        self.secrets.is_some()
    }

    /// Sets the key material of both directions once the suite and the secrets are known.
    fn install(&mut self, client: Side) -> bool {
        let (Some(s), Some(sec)) = (self.suite, self.secrets.as_ref()) else { return false };
        let c = client.idx();
        let sv = client.other().idx();
        if self.dirs[c].material.iter().any(Option::is_some)
            || self.dirs[sv].material.iter().any(Option::is_some)
        {
            return true;
        }
        let secret = |x: &Option<Secret>| x.clone().map(Material::Secret);
        if s.tls13 {
            if self.early_offered {
                self.dirs[c].material[EARLY] = secret(&sec.client_early);
            }
            self.dirs[c].material[HANDSHAKE] = secret(&sec.client_handshake);
            self.dirs[c].material[APPLICATION] = secret(&sec.client_traffic);
            self.dirs[sv].material[HANDSHAKE] = secret(&sec.server_handshake);
            self.dirs[sv].material[APPLICATION] = secret(&sec.server_traffic);
        } else if let (Some(master), Some(cr), Some(sr)) =
            (&sec.master, &self.client_random, &self.server_random)
        {
            let iv_len = if s.cipher == Cipher::Chacha20 { 12 } else { 4 };
            let [ck, sk, civ, siv] =
                schedule::key_block12(s.hash, master, cr, sr, s.cipher.key_len(), iv_len);
            self.dirs[c].material[APPLICATION] = Some(Material::Key12 { key: ck, iv: civ });
            self.dirs[sv].material[APPLICATION] = Some(Material::Key12 { key: sk, iv: siv });
        }
        for d in &mut self.dirs {
            d.stage = d.material.iter().position(Option::is_some).unwrap_or(APPLICATION);
            d.key = None;
        }
        true
    }

    /// The record key of `stage` for a direction (sequence number 0).
    fn key_for(&self, side: usize, stage: usize) -> Option<RecordKey> {
        let s = self.suite?;
        match self.dirs[side].material.get(stage)?.as_ref()? {
            Material::Secret(secret) => {
                let (key, iv) = schedule::traffic_key(s.hash, secret, s.cipher.key_len())?;
                RecordKey::new(s.cipher, Framing::Tls13, &key, &iv)
            }
            Material::Key12 { key, iv } => {
                let framing =
                    if s.cipher == Cipher::Chacha20 { Framing::Tls12Chacha } else { Framing::Tls12Gcm };
                RecordKey::new(s.cipher, framing, key, iv)
            }
        }
    }

    /// Moves a direction to `stage` with a fresh key.
    fn enter(&mut self, side: usize, stage: usize) {
        self.dirs[side].stage = stage;
        self.dirs[side].key = self.key_for(side, stage);
    }

    /// Opens one record of `side` into `self.out`: the current stage's key, then the later
    /// stages' (whose start was not seen, or whose secret the key log lacks for the current one).
    fn open(&mut self, side: usize, header: [u8; 5], body: &[u8]) -> Result<u8, OpenError> {
        let mut err = OpenError::Auth;
        if let Some(key) = self.dirs[side].key.as_mut() {
            match key.open(header, body, &mut self.out) {
                Ok(t) => return Ok(t),
                Err(e) => err = e,
            }
        }
        for stage in self.dirs[side].stage + 1..=APPLICATION {
            let Some(mut key) = self.key_for(side, stage) else { continue };
            if let Ok(t) = key.open(header, body, &mut self.out) {
                self.dirs[side].stage = stage;
                self.dirs[side].key = Some(key);
                return Ok(t);
            }
        }
        Err(err)
    }

    /// Whether a record of `side` that did not open (`open` leaves the stage as it was) belongs
    /// to a stage whose secret the key log lacks, rather than to a wrong key: the current
    /// stage's, TLS 1.3's handshake stage before any record of the side opened, or, for the
    /// client's first records, the 0-RTT data it offered.
    fn lacks_secret(&self, side: usize, client: bool) -> bool {
        let dir = &self.dirs[side];
        let first = dir.opened == 0;
        let tls13 = self.suite.is_some_and(|x| x.tls13);
        dir.key.is_none()
            || (tls13 && first && dir.stage > HANDSHAKE && dir.material[HANDSHAKE].is_none())
            || (client && first && self.early_offered && dir.material[EARLY].is_none())
    }

    /// Memory pressure: buffered records and bytes are dropped; a side that lost some stops.
    fn shed(&mut self) {
        for d in &mut self.dirs {
            if !d.frame.is_empty() || !d.hs.is_empty() || !d.held.is_empty() {
                d.broken.get_or_insert("memory pressure dropped buffered encrypted records");
            }
            if !d.app.is_empty() {
                d.app_dropped = true;
            }
            (d.frame, d.hs, d.held, d.app) = Default::default();
        }
    }

    /// The report.
    pub(crate) fn report(&self, client: Side) -> DecryptionReport {
        let (c, s) = (&self.dirs[client.idx()], &self.dirs[client.other().idx()]);
        let handshake = c.finished && s.finished;
        let application = c.app_seen || s.app_seen;
        let r = |status, reason: String| DecryptionReport { status, reason, handshake, application };
        if self.client_random.is_none() {
            return r(
                DecryptStatus::NoKeys,
                "no ClientHello seen: the connection's client random is not known".into(),
            );
        }
        if let (Some(id), None) = (self.cipher, self.suite) {
            return r(
                DecryptStatus::UnsupportedCipher,
                format!(
                    "cipher suite {} is not decrypted by tlspeek (AES-GCM and ChaCha20-Poly1305 only)",
                    cipher_name(id)
                ),
            );
        }
        if self.cipher.is_none() && self.client_random.is_some_and(|cr| self.log.contains(&cr)) {
            return r(
                DecryptStatus::Partial,
                "keys found, but no ServerHello was seen: the cipher suite is not known".into(),
            );
        }
        if self.secrets.is_none() {
            return r(
                DecryptStatus::NoKeys,
                "the key log has no line for this connection's client random".into(),
            );
        }
        let sec = self.secrets.as_ref().expect("checked above");
        let tls13 = self.suite.is_some_and(|s| s.tls13);
        if !tls13 && self.suite.is_some() && sec.master.is_none() {
            return r(
                DecryptStatus::NoKeys,
                "the key log has no CLIENT_RANDOM line (TLS 1.2 master secret) for this connection".into(),
            );
        }
        if tls13
            && [&sec.client_handshake, &sec.server_handshake, &sec.client_traffic, &sec.server_traffic]
                .iter()
                .all(|x| x.is_none())
        {
            return r(
                DecryptStatus::NoKeys,
                "the key log has no TLS 1.3 traffic secrets for this connection".into(),
            );
        }
        let failed = c.failed + s.failed;
        let opened = c.opened + s.opened;
        if failed > 0 && opened == 0 {
            return r(
                DecryptStatus::Failed,
                "records did not authenticate with the key log's secrets: wrong key log for this connection"
                    .into(),
            );
        }
        if failed > 0 {
            // A secret the key log has is wrong for these records: a wrong key, whatever else
            // decrypted (a missing secret is `partial`).
            let who = match (c.failed > 0, s.failed > 0) {
                (true, true) => "both sides'",
                (true, false) => "the client's",
                _ => "the server's",
            };
            return r(
                DecryptStatus::Failed,
                format!(
                    "{who} records did not authenticate with the key log's secrets (a wrong secret for this connection); {opened} other record(s) decrypted"
                ),
            );
        }
        let missing: Vec<&str> = if tls13 {
            [
                (&sec.client_handshake, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
                (&sec.server_handshake, "SERVER_HANDSHAKE_TRAFFIC_SECRET"),
                (&sec.client_traffic, "CLIENT_TRAFFIC_SECRET_0"),
                (&sec.server_traffic, "SERVER_TRAFFIC_SECRET_0"),
            ]
            .iter()
            .filter(|(x, _)| x.is_none())
            .map(|(_, n)| *n)
            .collect()
        } else {
            Vec::new()
        };
        let mut missing = missing;
        if tls13 && c.skipped + s.skipped > 0 && sec.client_early.is_none() && self.early_offered {
            missing.push("CLIENT_EARLY_TRAFFIC_SECRET");
        }
        if !missing.is_empty() {
            return r(
                DecryptStatus::Partial,
                format!("the key log lacks {} for this connection", missing.join(", ")),
            );
        }
        if let Some(why) = c.broken.or(s.broken) {
            return r(DecryptStatus::Partial, why.into());
        }
        if c.app_dropped || s.app_dropped {
            return r(
                DecryptStatus::Partial,
                "decrypted application data beyond the buffer limit was not classified".into(),
            );
        }
        if opened == 0 {
            return r(DecryptStatus::Partial, "keys found, but no encrypted record was seen".into());
        }
        if !handshake {
            return r(
                DecryptStatus::Partial,
                "the encrypted handshake was not seen to its end on both sides".into(),
            );
        }
        r(DecryptStatus::Decrypted, "decrypted with the key log".into())
    }
}

/// Builds encrypted TLS 1.3 records for tests and the fuzz target (not part of the tool).
#[doc(hidden)]
pub mod testing {
    use super::{aead::RecordKey, keylog::Secret, schedule, suite, Framing};

    /// Seals records with the key of one TLS 1.3 traffic secret.
    pub struct Sealer(RecordKey);

    impl Sealer {
        /// A sealer for cipher suite `id` (0x1301..=0x1303) and a traffic secret of its hash's
        /// length.
        pub fn tls13(id: u16, secret: &[u8]) -> Option<Sealer> {
            let s = suite(id).filter(|s| s.tls13)?;
            let (key, iv) = schedule::traffic_key(s.hash, &Secret(secret.into()), s.cipher.key_len())?;
            RecordKey::new(s.cipher, Framing::Tls13, &key, &iv).map(Sealer)
        }

        /// One record (header included) carrying `plain` as content type `ctype`.
        pub fn seal(&mut self, ctype: u8, plain: &[u8]) -> Vec<u8> {
            self.0.seal13(ctype, plain)
        }
    }

    /// The next traffic secret after a KeyUpdate.
    pub fn next_secret(id: u16, secret: &[u8]) -> Option<Vec<u8>> {
        let s = suite(id)?;
        schedule::next_secret(s.hash, &Secret(secret.into())).map(|x| x.0.into_vec())
    }
}

/// Keeps a record of direction `s` until it can be decrypted (bounded by the buffer limit).
fn hold(d: &mut Decryptor, s: usize, header: [u8; 5], body: &[u8]) {
    let dir = &mut d.dirs[s];
    if dir.held.len() + 5 + body.len() <= d.max_buffer {
        dir.held.extend_from_slice(&header);
        dir.held.extend_from_slice(body);
    } else if dir.broken.is_none() {
        dir.broken = Some("encrypted records beyond the buffer limit arrived before their keys");
    }
}

impl TlsSession {
    /// Memory pressure (see [`TlsSession::shed`]).
    pub(super) fn dec_shed(&mut self) {
        if let Some(d) = self.dec.as_mut() {
            d.shed();
        }
    }

    /// Attaches a key log: records after the cleartext handshake are decrypted.
    pub fn set_keylog(&mut self, log: Arc<KeyLog>) {
        self.dec = Some(Box::new(Decryptor::new(log, self.limits.max_buffer)));
    }

    /// The ClientHello's random (first ClientHello only).
    pub(super) fn dec_client_random(&mut self, random: &[u8]) {
        if let (Some(d), Ok(r)) = (self.dec.as_mut(), <[u8; 32]>::try_from(random)) {
            d.client_random.get_or_insert(r);
        }
    }

    /// The ServerHello (not a HelloRetryRequest): its random, cipher and version.
    pub(super) fn dec_server_hello(&mut self, random: &[u8], cipher: u16, version: u16) {
        let early = self.ch.as_ref().is_some_and(|c| c.early_data);
        if let Some(d) = self.dec.as_mut() {
            d.server_random = random.try_into().ok();
            d.cipher = Some(cipher);
            d.early_offered = early;
            d.suite = suite(cipher).filter(|s| s.tls13 == is_tls13(version));
        }
    }

    /// Does `side` still want bytes for decryption?
    pub(crate) fn dec_wants(&self, side: Side) -> bool {
        let Some(d) = self.dec.as_ref() else { return false };
        if d.suite.is_none() && d.cipher.is_some() {
            return false;
        }
        let dir = &d.dirs[side.idx()];
        dir.broken.is_none() && (!dir.finished || dir.app_wanted)
    }

    /// The ALPN protocol selected (ServerHello, or the decrypted EncryptedExtensions).
    pub(crate) fn alpn_selected(&self) -> Option<&[u8]> {
        self.sh.as_ref().and_then(|sh| sh.alpn.as_ref()).map(|a| a.as_bytes())
    }

    /// The HTTP classifier wants no more application bytes of `side`.
    pub(crate) fn app_done(&mut self, side: Side) {
        if let Some(d) = self.dec.as_mut() {
            let dir = &mut d.dirs[side.idx()];
            dir.app_wanted = false;
            dir.app = Vec::new();
        }
    }

    /// Takes the application bytes of `side` decrypted so far.
    pub fn take_app(&mut self, side: Side) -> Vec<u8> {
        self.dec.as_mut().map(|d| std::mem::take(&mut d.dirs[side.idx()].app)).unwrap_or_default()
    }

    /// The decryption report (None without a key log).
    pub(crate) fn decryption(&self, client: Side) -> Option<DecryptionReport> {
        self.dec.as_ref().map(|d| d.report(client))
    }

    /// Was the handshake message flight of `side` decrypted up to its Finished?
    pub(super) fn dec_finished(&self, side: Side) -> bool {
        self.dec.as_ref().is_some_and(|d| d.dirs[side.idx()].finished)
    }

    /// A gap in `side`'s stream: its decryption stops (sequence numbers are lost).
    pub(super) fn dec_gap(&mut self, side: Side) {
        if let Some(d) = self.dec.as_mut() {
            let dir = &mut d.dirs[side.idx()];
            if dir.started && dir.broken.is_none() {
                dir.broken = Some("a capture gap interrupted the encrypted records");
            }
        }
    }

    /// Stream bytes of `side` after its cleartext part.
    pub(super) fn dec_stream(&mut self, side: Side, mut data: &[u8], ts: Timestamp) {
        let Some(mut d) = self.dec.take() else { return };
        let s = side.idx();
        d.dirs[s].started = true;
        while !data.is_empty() && d.dirs[s].broken.is_none() {
            let dir = &mut d.dirs[s];
            if dir.frame.is_empty() && data.len() >= 5 {
                let Some(len) = stream_header(data) else {
                    dir.broken = Some("an invalid record header among the encrypted records");
                    break;
                };
                if data.len() >= 5 + len {
                    let header: [u8; 5] = data[..5].try_into().expect("5 bytes");
                    self.dec_record(&mut d, side, header, &data[5..5 + len], ts);
                    data = &data[5 + len..];
                    continue;
                }
            }
            // A partial record: complete it from `data`.
            if dir.frame.len() < 5 {
                let k = (5 - dir.frame.len()).min(data.len());
                dir.frame.extend_from_slice(&data[..k]);
                data = &data[k..];
                if dir.frame.len() < 5 {
                    break;
                }
            }
            let Some(len) = stream_header(&dir.frame) else {
                dir.broken = Some("an invalid record header among the encrypted records");
                break;
            };
            let k = (5 + len - dir.frame.len()).min(data.len());
            dir.frame.extend_from_slice(&data[..k]);
            data = &data[k..];
            if dir.frame.len() == 5 + len.min(MAX_RECORD) {
                let frame = std::mem::take(&mut d.dirs[s].frame);
                let header: [u8; 5] = frame[..5].try_into().expect("5 bytes");
                self.dec_record(&mut d, side, header, &frame[5..], ts);
                let mut frame = frame;
                frame.clear();
                if d.dirs[s].frame.is_empty() {
                    d.dirs[s].frame = frame;
                }
            }
        }
        self.dec = Some(d);
    }

    /// One whole record of `side` after its cleartext part (`record()` hands over the first
    /// application-data record that ends a side's cleartext part).
    pub(super) fn dec_first_record(&mut self, side: Side, ctype: u8, body: &[u8], ts: Timestamp) {
        let Some(mut d) = self.dec.take() else { return };
        d.dirs[side.idx()].started = true;
        let len = (body.len() as u16).to_be_bytes();
        self.dec_record(&mut d, side, [ctype, 3, 3, len[0], len[1]], body, ts);
        self.dec = Some(d);
    }

    fn dec_record(&mut self, d: &mut Decryptor, side: Side, header: [u8; 5], body: &[u8], ts: Timestamp) {
        let s = side.idx();
        d.last_ts = ts;
        if d.cipher.is_none() {
            // 0-RTT data before the ServerHello: kept until the suite is known.
            hold(d, s, header, body);
            return;
        }
        let Some(suite) = d.suite else { return };
        match header[0] {
            CONTENT_CCS => return,
            // TLS 1.3 alerts are encrypted as application data: one in clear is a cleartext alert.
            CONTENT_ALERT if suite.tls13 => {
                if body.len() == 2 && self.alerts.len() < MAX_ALERTS {
                    self.alerts.push((side, body[0], body[1], false));
                }
                return;
            }
            _ => {}
        }
        let client = self.client_side().unwrap_or(side.other());
        if !d.find_keys(ts) || !d.install(client) {
            // Not (yet) in the key log: a followed file may still get the line; a file read
            // once will not, and this flow's records are not looked at again.
            if d.log.follows() && d.client_random.is_some() && d.secrets.is_none() {
                hold(d, s, header, body);
            } else {
                for dir in &mut d.dirs {
                    dir.broken.get_or_insert("no keys for this connection");
                }
            }
            return;
        }
        self.dec_held(d, side, ts);
        self.dec_open(d, side, header, body, ts);
    }

    /// Decrypts the records `side` kept while its keys were not known.
    fn dec_held(&mut self, d: &mut Decryptor, side: Side, ts: Timestamp) {
        let held = std::mem::take(&mut d.dirs[side.idx()].held);
        let mut rest = &held[..];
        while rest.len() >= 5 {
            let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
            let Some(b) = rest.get(5..5 + len) else { break };
            let h: [u8; 5] = rest[..5].try_into().expect("5 bytes");
            self.dec_open(d, side, h, b, ts);
            rest = &rest[5 + len..];
        }
    }

    /// The flow ended: records still waiting for their keys get one more look at the key log
    /// (live capture: the line may have been written after the last packet).
    pub(crate) fn dec_flush(&mut self) {
        let Some(mut d) = self.dec.take() else { return };
        if d.dirs.iter().any(|x| !x.held.is_empty()) && d.log.follows() && d.cipher.is_some() {
            let ts = Timestamp::new(d.last_ts.secs, u64::from(d.last_ts.nanos) + 1_000_000_000);
            let client = self.client_side().unwrap_or(Side::A);
            if d.find_keys(ts) && d.install(client) {
                for side in [client, client.other()] {
                    self.dec_held(&mut d, side, ts);
                }
            }
        }
        self.dec = Some(d);
    }

    fn dec_open(&mut self, d: &mut Decryptor, side: Side, header: [u8; 5], body: &[u8], ts: Timestamp) {
        let s = side.idx();
        if d.dirs[s].broken.is_some() {
            return;
        }
        if d.dirs[s].key.is_none() {
            let st = d.dirs[s].stage;
            d.enter(s, st);
        }
        let stage = d.dirs[s].stage;
        if d.dirs[s].key.is_none() && d.dirs[s].material[stage..].iter().all(Option::is_none) {
            // No secret in the key log for these records (not a wrong key): said in the report.
            d.dirs[s].broken = Some("the key log lacks the secrets for the rest of the records");
            return;
        }
        let ctype = match d.open(s, header, body) {
            Ok(t) => t,
            Err(_) if d.lacks_secret(s, Some(side) == self.client_side()) => {
                // Not a wrong key: the report names the missing secret (`partial`).
                d.dirs[s].skipped += 1;
                return;
            }
            Err(e) => {
                let dir = &mut d.dirs[s];
                dir.failed += 1;
                if dir.failed >= MAX_FAILED {
                    let who = if Some(side) == self.client_side() { "client" } else { "server" };
                    dir.broken = Some("a record did not authenticate");
                    let why = match e {
                        OpenError::Auth => "did not authenticate",
                        OpenError::Length => "has an impossible length",
                        OpenError::NoContentType => "has no content type",
                    };
                    self.warn(format!(
                        "tls: a {who} record {why} with the key log's secrets (wrong key log?); decryption of this side stops and the verdict falls back to the inference"
                    ));
                }
                return;
            }
        };
        d.dirs[s].opened += 1;
        let plain = std::mem::take(&mut d.out);
        match ctype {
            CONTENT_HANDSHAKE => self.dec_handshake(d, side, &plain, ts),
            CONTENT_ALERT if plain.len() == 2 => {
                if self.alerts.len() < MAX_ALERTS {
                    let after = d.dirs.iter().all(|x| x.finished);
                    self.alerts.push((side, plain[0], plain[1], after));
                }
                if plain[0] == ALERT_FATAL {
                    d.dirs[s].app_wanted = false;
                }
            }
            CONTENT_APPLICATION_DATA => {
                let dir = &mut d.dirs[s];
                dir.app_seen = true;
                if dir.app_wanted {
                    if dir.app.len() + plain.len() <= d.max_buffer {
                        dir.app.extend_from_slice(&plain);
                    } else if !dir.app_dropped {
                        dir.app_dropped = true;
                        self.warn(
                            "tls: decrypted application data beyond the buffer limit was not classified"
                                .into(),
                        );
                    }
                }
            }
            _ => {}
        }
        d.out = plain;
    }

    /// Decrypted handshake bytes: split into messages.
    fn dec_handshake(&mut self, d: &mut Decryptor, side: Side, plain: &[u8], ts: Timestamp) {
        let s = side.idx();
        let mut buf = std::mem::take(&mut d.dirs[s].hs);
        buf.extend_from_slice(plain);
        let mut pos = 0;
        while buf.len() - pos >= 4 {
            let typ = buf[pos];
            let len = u32::from_be_bytes([0, buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
            if len > self.limits.max_buffer {
                self.warn(format!("tls: decrypted handshake message of {len} bytes exceeds buffer limit"));
                d.dirs[s].broken = Some("a decrypted handshake message exceeded the buffer limit");
                return;
            }
            if buf.len() - pos - 4 < len {
                break;
            }
            self.dec_message(d, side, typ, &buf[pos + 4..pos + 4 + len], ts);
            pos += 4 + len;
        }
        buf.drain(..pos);
        d.dirs[s].hs = buf;
    }

    /// One decrypted handshake message.
    fn dec_message(&mut self, d: &mut Decryptor, side: Side, typ: u8, body: &[u8], ts: Timestamp) {
        let s = side.idx();
        let tls13 = d.suite.is_some_and(|x| x.tls13);
        match typ {
            HS_ENCRYPTED_EXTENSIONS if tls13 => {
                if let Some(sh) = self.sh.as_mut() {
                    if sh.alpn.is_none() {
                        sh.alpn = super::hello::encrypted_extensions_alpn(body);
                    }
                }
            }
            HS_CERTIFICATE_REQUEST | HS_CERTIFICATE if tls13 => self.message(side, typ, body, ts),
            HS_FINISHED => {
                d.dirs[s].finished = true;
                if tls13 {
                    d.enter(s, APPLICATION);
                }
            }
            HS_END_OF_EARLY_DATA if tls13 => d.enter(s, HANDSHAKE),
            HS_KEY_UPDATE if tls13 && d.dirs[s].stage == APPLICATION => {
                let (Some(suite), Some(Material::Secret(cur))) =
                    (d.suite, d.dirs[s].material[APPLICATION].as_ref())
                else {
                    return;
                };
                match schedule::next_secret(suite.hash, cur) {
                    Some(next) => {
                        d.dirs[s].material[APPLICATION] = Some(Material::Secret(next));
                        d.enter(s, APPLICATION);
                    }
                    None => d.dirs[s].broken = Some("a KeyUpdate could not be followed"),
                }
            }
            HS_NEW_SESSION_TICKET => {}
            _ => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

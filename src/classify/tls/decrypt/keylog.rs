//! NSS key log files (`SSLKEYLOGFILE`, RFC 9850): one `LABEL <client_random hex> <secret hex>`
//! per line. Lines are kept in a store keyed by the ClientHello random; comments (`#`), blank
//! lines, CR/LF/CRLF and either hex case are accepted; a line not understood is counted (the
//! count and the first line number are reported once), never fatal.
//!
//! A followed file (live capture: Envoy and other stacks append a line per connection) is read
//! again from the last offset on a miss, at most once per [`REFRESH_EVERY_US`] of capture time;
//! a partial last line is kept until its end arrives. Secrets never reach any output: [`Secret`]
//! has a hand-written `Debug`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

/// A followed file is read again at most this often (capture time, microseconds).
pub(crate) const REFRESH_EVERY_US: i64 = 100_000;
/// Longest line kept (a line is at most ~250 bytes; longer ones are counted as bad).
const MAX_LINE: usize = 1024;
/// Bytes read from one file in all (a key log is a few hundred bytes per connection).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Key material; printed nowhere.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) Box<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The secrets of one connection (one client random), as far as the key log gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Secrets {
    /// `CLIENT_RANDOM`: the TLS ≤ 1.2 master secret (48 bytes).
    pub(crate) master: Option<Secret>,
    /// `CLIENT_EARLY_TRAFFIC_SECRET`.
    pub(crate) client_early: Option<Secret>,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub(crate) client_handshake: Option<Secret>,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub(crate) server_handshake: Option<Secret>,
    /// `CLIENT_TRAFFIC_SECRET_0`.
    pub(crate) client_traffic: Option<Secret>,
    /// `SERVER_TRAFFIC_SECRET_0`.
    pub(crate) server_traffic: Option<Secret>,
    /// `EXPORTER_SECRET` (kept for completeness; nothing is derived from it).
    pub(crate) exporter: Option<Secret>,
}

/// Why a key log cannot be used (fatal: the run does not start).
#[derive(Debug, thiserror::Error)]
pub enum KeyLogError {
    /// Not there, or not readable.
    #[error("cannot read key log {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A FIFO, a device, a directory...: refused.
    #[error("key log {path} is not a regular file; give the file the TLS stack writes")]
    NotRegular {
        /// The file.
        path: String,
    },
}

/// One followed file.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    /// Opened once, before the live capture drops its privileges (`-Z`): the process may no
    /// longer be allowed to open a key log readable by root only. A file replaced by another
    /// (renamed over) is not seen; one truncated and written again is read from its start.
    /// None: a store made from text.
    file: Option<File>,
    /// Bytes consumed so far.
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Lines not understood, and the first one's number.
    bad: u64,
    first_bad: u64,
    /// Lines read (for the line numbers of bad lines).
    lines: u64,
}

#[derive(Debug, Default)]
struct Store {
    map: HashMap<[u8; 32], Secrets>,
    sources: Vec<Source>,
}

/// Key store shared by every worker thread.
#[derive(Debug)]
pub struct KeyLog {
    store: RwLock<Store>,
    /// Re-read the files on a miss (live capture).
    follow: bool,
    /// Capture time of the last re-read (µs); `i64::MIN` before any.
    last_refresh: AtomicI64,
}

/// Parses one line into the store; false when it is not understood.
fn parse_line(map: &mut HashMap<[u8; 32], Secrets>, line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() || trimmed.starts_with(b"#") {
        return true;
    }
    let mut parts = trimmed.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
    let (Some(label), Some(random), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if label == b"RSA" {
        // `RSA <first 8 bytes of the encrypted pre-master secret> <pre-master secret>` (NSS,
        // written for RSA key exchange beside the CLIENT_RANDOM line): understood, not needed.
        return unhex(random).is_some_and(|r| r.len() == 8) && unhex(secret).is_some();
    }
    let Some(random) = unhex(random).and_then(|r| <[u8; 32]>::try_from(r).ok()) else { return false };
    let Some(secret) = unhex(secret) else { return false };
    if label == b"EARLY_EXPORTER_SECRET" || later_traffic_secret(label) {
        // Exporter of 0-RTT data, and the traffic secrets after a KeyUpdate (OpenSSL writes
        // `CLIENT_TRAFFIC_SECRET_1`...): understood; the next secrets are derived from the
        // first, as the peers do.
        return matches!(secret.len(), 32 | 48);
    }
    let ok_len = match label {
        b"CLIENT_RANDOM" => secret.len() == 48,
        _ => matches!(secret.len(), 32 | 48),
    };
    if !ok_len {
        return false;
    }
    let e = map.entry(random).or_default();
    let slot = match label {
        b"CLIENT_RANDOM" => &mut e.master,
        b"CLIENT_EARLY_TRAFFIC_SECRET" => &mut e.client_early,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut e.client_handshake,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut e.server_handshake,
        b"CLIENT_TRAFFIC_SECRET_0" => &mut e.client_traffic,
        b"SERVER_TRAFFIC_SECRET_0" => &mut e.server_traffic,
        b"EXPORTER_SECRET" => &mut e.exporter,
        _ => return false,
    };
    *slot = Some(Secret(secret.into_boxed_slice()));
    true
}

/// `CLIENT_TRAFFIC_SECRET_N` or `SERVER_TRAFFIC_SECRET_N` with N > 0.
fn later_traffic_secret(label: &[u8]) -> bool {
    let n = label
        .strip_prefix(b"CLIENT_TRAFFIC_SECRET_")
        .or_else(|| label.strip_prefix(b"SERVER_TRAFFIC_SECRET_"));
    n.is_some_and(|n| {
        !n.is_empty() && n.len() <= 10 && n.iter().all(u8::is_ascii_digit) && n != b"0" && n[0] != b'0'
    })
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

impl Store {
    /// Parses `bytes` appended to source `i`: whole lines now, a partial last line kept.
    fn ingest(&mut self, i: usize, bytes: &[u8]) {
        let Store { map, sources } = self;
        let src = &mut sources[i];
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, after) = rest.split_at(nl);
            // CRLF: the LF after a CR ends nothing more.
            let skip = if after.starts_with(b"\r\n") { 2 } else { 1 };
            rest = &after[skip..];
            let ok = if src.partial.is_empty() {
                parse_line(map, line)
            } else {
                let mut whole = std::mem::take(&mut src.partial);
                let overlong = whole.len() + line.len() > MAX_LINE;
                whole.extend_from_slice(&line[..line.len().min(MAX_LINE)]);
                !overlong && parse_line(map, &whole)
            };
            src.lines += 1;
            if !ok {
                src.bad += 1;
                if src.first_bad == 0 {
                    src.first_bad = src.lines;
                }
            }
        }
        if src.partial.len() < MAX_LINE + 1 {
            let k = (MAX_LINE + 1 - src.partial.len()).min(rest.len());
            src.partial.extend_from_slice(&rest[..k]);
        }
    }

    /// Reads what was appended to every source since the last read.
    fn read_new(&mut self) -> std::io::Result<()> {
        for i in 0..self.sources.len() {
            let src = &mut self.sources[i];
            let Some(mut f) = src.file.as_ref() else { continue };
            let len = f.metadata()?.len();
            if len < src.offset {
                // Truncated and rewritten: start again.
                src.offset = 0;
                src.partial.clear();
            }
            let offset = src.offset;
            if len == offset || offset >= MAX_FILE_BYTES {
                continue;
            }
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.take((len - offset).min(MAX_FILE_BYTES - offset)).read_to_end(&mut buf)?;
            self.sources[i].offset += buf.len() as u64;
            self.ingest(i, &buf);
        }
        Ok(())
    }
}

impl KeyLog {
    /// Opens the key logs (each must be a regular file) and reads them whole; `follow`: read
    /// them again on a miss (live capture). Returns the store and the warnings to print once
    /// about files readable by others (lines not understood: [`KeyLog::bad_lines`]).
    pub fn open(paths: &[PathBuf], follow: bool) -> Result<(KeyLog, Vec<String>), KeyLogError> {
        let mut warnings = Vec::new();
        let mut store = Store::default();
        for p in paths {
            let name = p.display().to_string();
            let meta =
                std::fs::metadata(p).map_err(|source| KeyLogError::Open { path: name.clone(), source })?;
            if !meta.file_type().is_file() {
                return Err(KeyLogError::NotRegular { path: name });
            }
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                warnings.push(format!(
                    "warning: key log {name} is readable by other users (chmod 600 it): it decrypts every connection it lists"
                ));
            }
            let open_err = |source| KeyLogError::Open { path: name.clone(), source };
            let file = File::open(p).map_err(open_err)?;
            if !file.metadata().map_err(open_err)?.file_type().is_file() {
                return Err(KeyLogError::NotRegular { path: name });
            }
            store.sources.push(Source {
                path: p.clone(),
                file: Some(file),
                offset: 0,
                partial: Vec::new(),
                bad: 0,
                first_bad: 0,
                lines: 0,
            });
        }
        store.read_new().map_err(|source| KeyLogError::Open {
            path: paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
            source,
        })?;
        let log = KeyLog { store: RwLock::new(store), follow, last_refresh: AtomicI64::new(i64::MIN) };
        Ok((log, warnings))
    }

    /// A store from text (tests, the fuzz target).
    pub fn from_text(text: &[u8]) -> KeyLog {
        let mut store = Store::default();
        store.sources.push(Source {
            path: PathBuf::new(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            bad: 0,
            first_bad: 0,
            lines: 0,
        });
        store.ingest(0, text);
        store.ingest(0, b"\n");
        KeyLog { store: RwLock::new(store), follow: false, last_refresh: AtomicI64::new(i64::MIN) }
    }

    /// Connections (client randoms) known.
    pub fn len(&self) -> usize {
        self.store.read().map_or(0, |s| s.map.len())
    }

    /// No connection known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The secrets of the connection whose ClientHello carried `random`; in follow mode, a miss
    /// reads the files again (at most once per [`REFRESH_EVERY_US`] of capture time `now_us`).
    pub(crate) fn lookup(&self, random: &[u8; 32], now_us: i64) -> Option<Secrets> {
        if let Some(s) = self.store.read().ok()?.map.get(random) {
            return Some(s.clone());
        }
        if !self.follow {
            return None;
        }
        let last = self.last_refresh.load(Ordering::Relaxed);
        if last != i64::MIN && now_us.saturating_sub(last) < REFRESH_EVERY_US && now_us >= last {
            return None;
        }
        self.last_refresh.store(now_us, Ordering::Relaxed);
        let mut store = self.store.write().ok()?;
        let _ = store.read_new(); // a file gone missing in between: keep what was read
        store.map.get(random).cloned()
    }

    /// Whether the store holds `random` now (no file is read).
    pub(crate) fn contains(&self, random: &[u8; 32]) -> bool {
        self.store.read().is_ok_and(|s| s.map.contains_key(random))
    }

    /// Whether a miss may still be answered later (a followed file).
    pub(crate) fn follows(&self) -> bool {
        self.follow
    }

    /// Lines not understood so far, one warning per file that had any.
    pub fn bad_lines(&self) -> Vec<String> {
        self.store.read().map(|s| s.bad_lines()).unwrap_or_default()
    }
}

impl Store {
    fn bad_lines(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| s.bad > 0)
            .map(|s| {
                format!(
                    "warning: key log {}: {} line(s) not understood (first at line {}); they are ignored",
                    s.path.display(),
                    s.bad,
                    s.first_bad
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "0102030405060708091011121314151617181920212223242526272829303132";

    #[test]
    fn parses_labels_comments_line_ends_and_hex_case() {
        let s32 = "aa".repeat(32);
        let s48 = "BB".repeat(48);
        let text = format!(
            "# comment\r\n\r\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {s32}\rSERVER_HANDSHAKE_TRAFFIC_SECRET {} {s32}\r\nCLIENT_RANDOM {R1} {s48}\nBOGUS {R1} {s32}\nCLIENT_RANDOM zz {s48}\nCLIENT_RANDOM {R1} {s32}\n  \tCLIENT_TRAFFIC_SECRET_0 {R1} {s32}  ",
            R1.to_uppercase()
        );
        let log = KeyLog::from_text(text.as_bytes());
        let r: [u8; 32] = unhex(R1.as_bytes()).unwrap().try_into().unwrap();
        let s = log.lookup(&r, 0).unwrap();
        assert_eq!(s.client_handshake.unwrap().0.as_ref(), [0xaa; 32]);
        assert_eq!(s.server_handshake.unwrap().0.as_ref(), [0xaa; 32]);
        assert_eq!(s.master.unwrap().0.as_ref(), [0xbb; 48]);
        assert!(s.client_traffic.is_some() && s.server_traffic.is_none());
        assert_eq!(
            log.bad_lines(),
            ["warning: key log : 3 line(s) not understood (first at line 6); they are ignored"]
        );
        assert_eq!(format!("{:?}", Secret(vec![1, 2, 3].into())), "Secret(3 bytes)");
        assert!(!format!("{log:?}").contains("aaaa"));
    }

    #[test]
    fn lines_real_stacks_write_beside_the_secrets_are_understood() {
        // OpenSSL after a KeyUpdate and with 0-RTT, NSS for RSA key exchange.
        let s32 = "aa".repeat(32);
        let text = format!(
            "CLIENT_TRAFFIC_SECRET_1 {R1} {s32}\nSERVER_TRAFFIC_SECRET_12 {R1} {s32}\nEARLY_EXPORTER_SECRET {R1} {s32}\nRSA 0102030405060708 {}\nCLIENT_TRAFFIC_SECRET_01 {R1} {s32}\nSERVER_TRAFFIC_SECRET_ {R1} {s32}\nRSA 01 {}\n",
            "cc".repeat(48),
            "cc".repeat(48)
        );
        let log = KeyLog::from_text(text.as_bytes());
        assert_eq!(
            log.bad_lines(),
            ["warning: key log : 3 line(s) not understood (first at line 5); they are ignored"]
        );
    }

    #[test]
    fn a_followed_file_is_read_from_its_last_offset_with_a_partial_line_kept() {
        let dir = std::env::temp_dir().join(format!("tlspeek-keylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        let line = format!("CLIENT_RANDOM {R1} {}\n", "cd".repeat(48));
        std::fs::write(&path, "# start\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (log, warnings) = KeyLog::open(std::slice::from_ref(&path), true).unwrap();
        assert!(warnings.is_empty());
        let r: [u8; 32] = unhex(R1.as_bytes()).unwrap().try_into().unwrap();
        assert!(log.lookup(&r, 0).is_none());
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&line.as_bytes()[..40]).unwrap();
        // Within 100 ms of the last read: not read again.
        assert!(log.lookup(&r, 50_000).is_none());
        assert!(log.lookup(&r, 200_000).is_none()); // read, but the line is not whole
        f.write_all(&line.as_bytes()[40..]).unwrap();
        assert!(log.lookup(&r, 250_000).is_none());
        assert!(log.lookup(&r, 400_000).is_some());
        assert!(log.bad_lines().is_empty());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (log, warnings) = KeyLog::open(std::slice::from_ref(&path), false).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(log.bad_lines().is_empty());
        assert!(warnings[0].contains("readable by other users"));
        assert!(matches!(
            KeyLog::open(std::slice::from_ref(&dir), false),
            Err(KeyLogError::NotRegular { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Writing packets to pcap files (`-w`), live or read from files, with tcpdump's rotation:
//! `-C` (size), `-W` (ring of files), `-G` (time).
//!
//! Owns the file names and when a file is closed and the next one opened; the bytes are
//! classic pcap (the layout libpcap's `pcap_dump` writes), so tcpdump, tshark and `tlspeek -r`
//! read them. Invariant: with `-C SIZE -W N` at most N files exist, each at most SIZE bytes plus
//! one packet record (tcpdump checks the size before writing a packet, as here).
//!
//! File names follow tcpdump (`MakeFilename` in tcpdump.c): with `-C`, the first file is `OUT`
//! and the next ones `OUT1`, `OUT2`...; with `-W N` as well, `OUT0`...`OUT(N-1)` (zero-padded to
//! the digits of N-1), then `OUT0` again. With `-G`, `OUT` is a strftime(3) pattern expanded
//! at the time the file is opened (local time, as tcpdump).

use crate::wire::Timestamp;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What `-w` and its rotation flags asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriteOptions {
    /// `-w FILE` (a strftime pattern with `-G`).
    pub(crate) path: PathBuf,
    /// `-C`: before writing a packet, rotate when the file is larger than this many bytes.
    pub(crate) file_size: Option<u64>,
    /// `-W`: with `-C`, a ring of this many files; with `-G` alone, stop after this many files.
    pub(crate) file_count: Option<u32>,
    /// `-G`: rotate when a packet comes this many seconds after the file's first one.
    pub(crate) rotate_secs: Option<u32>,
    /// `-U`: flush the file after every packet.
    pub(crate) packet_buffered: bool,
}

/// Why writing stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File name.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `-G` with `-W N` (no `-C`): N files were written (tcpdump stops there too).
    #[error("{0} files written (-W with -G): stopping, as tcpdump does")]
    FileLimit(u32),
}

/// Writes pcap files, rotating them as [`WriteOptions`] say.
pub(crate) struct PcapWriter {
    opts: WriteOptions,
    linktype: u32,
    snaplen: u32,
    nanos: bool,
    file: Option<BufWriter<File>>,
    /// Name of the open file, for messages.
    name: String,
    /// Bytes in the open file (what `ftell` returns in tcpdump).
    size: u64,
    /// Number of the open file within its `-G` period (tcpdump's `Cflag_count`).
    c_count: u32,
    /// `-G` periods begun (tcpdump's `Gflag_count`) and when the current one began.
    g_count: u32,
    g_start: Option<i64>,
    /// strftime-expanded name of the current `-G` period (else the `-w` name).
    base: String,
    /// The ring's files, created at the start and kept open (see [`Self::create_ring_now`]).
    ring: Vec<File>,
}

/// Record header of a classic pcap file.
const RECORD_HEADER: u64 = 16;

impl PcapWriter {
    /// A writer for packets of `linktype` (LINKTYPE_* value, written as is); nothing is created
    /// before [`Self::open_now`] or the first packet.
    pub(crate) fn new(opts: WriteOptions, linktype: u32, snaplen: u32, nanos: bool) -> PcapWriter {
        let base = opts.path.display().to_string();
        PcapWriter {
            opts,
            linktype,
            snaplen,
            nanos,
            file: None,
            name: String::new(),
            size: 0,
            c_count: 0,
            g_count: 0,
            g_start: None,
            base,
            ring: Vec::new(),
        }
    }

    /// With `-C SIZE -W COUNT` (no `-G`): creates the COUNT files of the ring now, each a valid
    /// empty capture, and keeps them open; rotating then reuses them (truncated) instead of
    /// creating files. A live capture calls this before it drops privileges (`-Z`), so that the
    /// ring works in a directory only root may write to. Then opens the first one.
    pub(crate) fn create_ring_now(&mut self, now: Timestamp) -> Result<(), WriteError> {
        if let (Some(_), Some(w), None) = (self.opts.file_size, self.opts.file_count, self.opts.rotate_secs) {
            for n in 0..w {
                self.c_count = n;
                self.open()?;
                self.close()?;
                let name = file_name(&self.base, n, self.digits());
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&name)
                    .map_err(|source| WriteError::Io { path: name.clone(), source })?;
                self.ring.push(f);
            }
            self.c_count = 0;
        }
        self.open_now(now)
    }

    /// Link type of the packets this writer takes.
    pub(crate) fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Creates the first file now (named for time `now` with `-G`), if none is open: a
    /// capture that sees no packet still leaves a valid, empty file, as tcpdump's does.
    pub(crate) fn open_now(&mut self, now: Timestamp) -> Result<(), WriteError> {
        if self.file.is_none() {
            self.start_period(now.secs);
            self.open()?;
        }
        Ok(())
    }

    /// Writes one packet, rotating first when due.
    pub(crate) fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> Result<(), WriteError> {
        if self.file.is_none() {
            self.start_period(ts.secs);
            self.open()?;
        }
        if let (Some(g), Some(start)) = (self.opts.rotate_secs, self.g_start) {
            if ts.secs.saturating_sub(start) >= i64::from(g) {
                self.g_count += 1;
                self.close()?;
                if let (None, Some(w)) = (self.opts.file_size, self.opts.file_count) {
                    if self.g_count >= w {
                        return Err(WriteError::FileLimit(w));
                    }
                }
                self.start_period(ts.secs);
                self.open()?;
            }
        }
        if let Some(limit) = self.opts.file_size {
            if self.size > limit {
                self.c_count += 1;
                if self.opts.file_count.is_some_and(|w| self.c_count >= w) {
                    self.c_count = 0;
                }
                self.close()?;
                self.open()?;
            }
        }
        let frac = if self.nanos { ts.nanos } else { ts.nanos / 1000 };
        let mut head = [0u8; RECORD_HEADER as usize];
        for (i, v) in [ts.secs as u32, frac, data.len() as u32, orig_len].into_iter().enumerate() {
            head[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let name = &self.name;
        let io = |source| WriteError::Io { path: name.clone(), source };
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&head).map_err(io)?;
        f.write_all(data).map_err(io)?;
        if self.opts.packet_buffered {
            f.flush().map_err(io)?;
        }
        self.size += RECORD_HEADER + data.len() as u64;
        Ok(())
    }

    /// Pushes buffered packets to the file (a live capture calls this while it waits).
    pub(crate) fn flush(&mut self) -> Result<(), WriteError> {
        let name = &self.name;
        match self.file.as_mut() {
            Some(f) => f.flush().map_err(|source| WriteError::Io { path: name.clone(), source }),
            None => Ok(()),
        }
    }

    /// Flushes and closes the open file.
    pub(crate) fn close(&mut self) -> Result<(), WriteError> {
        self.flush()?;
        self.file = None;
        Ok(())
    }

    /// Begins a `-G` period at `secs`: its name, and `-C` numbering from 0.
    fn start_period(&mut self, secs: i64) {
        if self.opts.rotate_secs.is_some() {
            self.g_start = Some(secs);
            self.base = strftime_local(&self.opts.path.display().to_string(), secs);
            self.c_count = 0;
        }
    }

    fn open(&mut self) -> Result<(), WriteError> {
        self.name = file_name(&self.base, self.c_count, self.digits());
        let io = |source| WriteError::Io { path: self.name.clone(), source };
        let f = match self.ring.get(self.c_count as usize) {
            Some(f) => {
                let mut f = f.try_clone().map_err(io)?;
                f.set_len(0).map_err(io)?;
                io::Seek::seek(&mut f, io::SeekFrom::Start(0)).map_err(io)?;
                f
            }
            None => File::create(Path::new(&self.name)).map_err(io)?,
        };
        let mut f = BufWriter::with_capacity(1 << 16, f);
        let magic: u32 = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&magic.to_ne_bytes());
        h.extend_from_slice(&2u16.to_ne_bytes());
        h.extend_from_slice(&4u16.to_ne_bytes());
        h.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        h.extend_from_slice(&self.snaplen.to_ne_bytes());
        h.extend_from_slice(&self.linktype.to_ne_bytes());
        f.write_all(&h).map_err(io)?;
        if self.opts.packet_buffered {
            f.flush().map_err(io)?;
        }
        self.size = h.len() as u64;
        self.file = Some(f);
        Ok(())
    }

    /// Digits of the `-C` file number (tcpdump's `WflagChars`): those of N-1 with `-W N`
    /// (and `-C`), else none (no padding, and no number on the first file).
    fn digits(&self) -> usize {
        match (self.opts.file_size, self.opts.file_count) {
            (Some(_), Some(w)) => {
                let (mut x, mut c) = (w.saturating_sub(1), 0);
                while x > 0 {
                    c += 1;
                    x /= 10;
                }
                c
            }
            _ => 0,
        }
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// tcpdump's `MakeFilename`: `base` itself for file 0 without padding, else `base` followed by
/// the number, zero-padded to `digits`.
pub(crate) fn file_name(base: &str, n: u32, digits: usize) -> String {
    if n == 0 && digits == 0 {
        base.to_string()
    } else {
        format!("{base}{n:0digits$}")
    }
}

/// Expands strftime(3) conversions in `pattern` for `secs` in local time (as tcpdump `-G`).
fn strftime_local(pattern: &str, secs: i64) -> String {
    let Ok(fmt) = std::ffi::CString::new(pattern) else { return pattern.to_string() };
    let t = secs as libc::time_t;
    // SAFETY: localtime_r and strftime get valid pointers; `tm` is plain data, zeroed first;
    // strftime writes at most `buf.len()` bytes and returns how many.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return pattern.to_string();
        }
        let mut buf = vec![0u8; 4096];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm);
        if n == 0 && !pattern.is_empty() {
            return pattern.to_string();
        }
        buf.truncate(n);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_tcpdump() {
        assert_eq!(file_name("out", 0, 0), "out");
        assert_eq!(file_name("out", 3, 0), "out3");
        assert_eq!(file_name("out", 0, 1), "out0");
        assert_eq!(file_name("out", 7, 2), "out07");
        let w = |c: Option<u32>| {
            PcapWriter::new(
                WriteOptions {
                    path: "x".into(),
                    file_size: Some(1),
                    file_count: c,
                    rotate_secs: None,
                    packet_buffered: false,
                },
                1,
                65535,
                false,
            )
            .digits()
        };
        assert_eq!(
            (w(None), w(Some(1)), w(Some(3)), w(Some(10)), w(Some(11)), w(Some(101))),
            (0, 0, 1, 1, 2, 3)
        );
    }

    #[test]
    fn strftime_expands_local_time() {
        extern "C" {
            fn tzset();
        }
        std::env::set_var("TZ", "UTC");
        // SAFETY: tzset reads TZ; no other test changes it or reads local time.
        unsafe { tzset() };
        assert_eq!(strftime_local("cap-%Y%m%d-%H%M%S.pcap", 86_400 + 3_661), "cap-19700102-010101.pcap");
        assert_eq!(strftime_local("plain", 0), "plain");
    }
}

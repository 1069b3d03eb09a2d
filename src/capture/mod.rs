//! Capture files → packets.
//!
//! Owns reading classic pcap (both byte orders, micro- and nanosecond timestamps) and pcapng
//! (any number of sections and interfaces, each interface with its own link type and timestamp
//! resolution). Yields borrowed [`Packet`]s; never interprets packet bytes.
//!
//! Why not libpcap for files: libpcap refuses pcapng files whose interfaces have different link
//! types ("an interface has a type different from the type of the first interface"), which
//! `tcpdump`/Wireshark multi-interface captures do have, and it cannot report how far into a
//! damaged file it got. Reading both formats is ~300 lines of bounds-checked code and keeps the
//! hot path copy-free. libpcap stays the way to capture live.
//!
//! Invariants: no record is trusted: every length is checked against [`MAX_RECORD_BYTES`] before
//! any buffer grows; a damaged file ends the iteration with an error that names the byte offset,
//! and everything read before it has already been yielded.

#[cfg(test)]
mod file_at_tests;
pub(crate) mod gate;
pub mod live;
pub(crate) mod privs;
pub(crate) mod write;

use crate::wire::Timestamp;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Largest packet record accepted (libpcap's own limit for any link type is 256 KiB).
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// Largest pcapng block accepted (a packet record plus generous room for options).
pub(crate) const MAX_BLOCK_BYTES: usize = MAX_RECORD_BYTES + 64 * 1024;
/// Read buffer size. 128 KiB, not 64: a 64 KiB one stays in L2 (bench/misses one thread,
/// cycles~ default 100 MB 218.9 -> 216.3 M, mesh 291.7 -> 288.5 M) but doubles the `read` calls,
/// which cachegrind does not see; wall clock, 1 GB one thread, rotated rounds: default medians
/// 0.908 / 0.961 s (64 KiB) against 0.892 / 0.908 s, mesh 1.285 vs 1.279 s (issue 22, session 11).
const READ_CHUNK: usize = 1 << 17;

/// One captured packet, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// When it was captured.
    pub ts: Timestamp,
    /// LINKTYPE_* of the interface it was captured on.
    pub linktype: u32,
    /// The captured bytes (possibly fewer than `orig_len`).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// File offset of `data` in its source's [`PacketSource::file`], when there is one (None
    /// for live captures, standard input, pipes): the reassembler reads delivered bytes back
    /// from there instead of keeping a copy (see `flow::reassembly::window`).
    pub at: Option<u64>,
}

/// What a packet source yields.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(Packet<'a>),
    /// No packet for a while (live capture): the current time, so idle flows can be ended.
    Idle(Timestamp),
    /// The end: end of file, `-c`, `--duration`, or a stop signal.
    End,
}

/// Anything packets can be read from: a capture file or a live interface.
pub trait PacketSource {
    /// File or interface name, for messages and the JSON `source`.
    fn name(&self) -> &str;
    /// Timestamps carry nanoseconds.
    fn nanosecond_precision(&self) -> bool;
    /// Total size in bytes when known (files), for progress.
    fn total_len(&self) -> Option<u64>;
    /// Progress so far: bytes read (files) or packets (live).
    fn position(&self) -> u64;
    /// The next packet, an idle tick, or the end.
    fn next(&mut self) -> Result<Next<'_>, CaptureError>;
    /// A live interface (flows are announced as soon as they are classified).
    fn is_live(&self) -> bool {
        false
    }
    /// Packets the kernel dropped so far (libpcap's `ps_drop`), for a live capture.
    fn kernel_drops(&mut self) -> Option<u64> {
        None
    }
    /// The capture file opened again for reading at offsets ([`Packet::at`]), when the source
    /// is a regular file.
    fn file(&self) -> Option<Arc<File>> {
        None
    }

    /// Gives `f` the packets that can be read now, in place, until it returns false: one here;
    /// a live capture gives those of one block of libpcap's ring (see
    /// [`live::LiveCapture::next_batch`]). Returns `Idle` or `End` when that came instead of
    /// packets, None after packets.
    fn next_batch(
        &mut self,
        f: &mut dyn FnMut(Packet<'_>) -> bool,
    ) -> Result<Option<Next<'static>>, CaptureError> {
        Ok(match self.next()? {
            Next::Packet(p) => {
                f(p);
                None
            }
            Next::Idle(now) => Some(Next::Idle(now)),
            Next::End => Some(Next::End),
        })
    }
}

/// A capture file source whose packets' read buffers can be handed to other threads
/// (`--threads`): a [`CaptureReader`], or one behind a [`gate::Gated`] filter.
pub(crate) trait SharedSource: PacketSource + Send {
    /// The next packet and the buffer its bytes lie in (see [`CaptureReader::next_shared`]).
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, &SharedBuffer)>, CaptureError>;
}

impl SharedSource for CaptureReader {
    #[inline]
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, &SharedBuffer)>, CaptureError> {
        CaptureReader::next_shared(self)
    }
}

impl SharedSource for gate::Gated<'_> {
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, &SharedBuffer)>, CaptureError> {
        gate::Gated::next_shared(self)
    }
}

/// Why a capture file could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// File name as given.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The first bytes are not a pcap or pcapng magic number.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotACapture {
        /// File name as given.
        path: String,
        /// The first bytes, hex.
        magic: String,
    },
    /// The file ends in the middle of a header or record.
    #[error("{path}: file cut short at byte {offset}: {what}")]
    Truncated {
        /// File name as given.
        path: String,
        /// Offset of the record that is incomplete.
        offset: u64,
        /// Which part is missing.
        what: String,
    },
    /// A live capture failed while reading.
    #[error(transparent)]
    Live(live::LiveError),
    /// The BPF filter does not compile for a link type met in the file.
    #[error("{path}: the filter does not apply to {linktype}: {source}")]
    Filter {
        /// File name as given.
        path: String,
        /// Name of the link type.
        linktype: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// Writing packets (`-w`) failed.
    #[error(transparent)]
    Write(#[from] write::WriteError),
    /// A header or record is impossible (corrupt file).
    #[error("{path}: corrupt at byte {offset}: {what}")]
    Corrupt {
        /// File name as given.
        path: String,
        /// Offset of the bad record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

#[derive(Clone, Copy, Debug)]
struct PcapFormat {
    swap: bool,
    nanos: bool,
    linktype: u32,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second as (base, exponent): 10^-e or 2^-e.
    tsresol: u8,
    tsoffset: i64,
}

#[derive(Debug)]
enum Format {
    Pcap(PcapFormat),
    Pcapng { big_endian: bool, ifaces: Vec<Interface> },
}

/// Maximum interfaces remembered per pcapng section (a hostile file could declare millions).
const MAX_INTERFACES: usize = 4096;

/// A packet's place in the read buffer, before it is lent out.
#[derive(Clone, Copy)]
struct RawPacket {
    ts: Timestamp,
    linktype: u32,
    start: usize,
    end: usize,
    orig_len: u32,
}

/// Read buffers kept for reuse once no other thread holds them (see [`CaptureReader::next_shared`]).
const SPARE_BUFFERS: usize = 64;

/// A read buffer of [`CaptureReader`], as handed out with its packets by
/// [`CaptureReader::next_shared`].
pub(crate) type SharedBuffer = Arc<Vec<u8>>;

/// Streaming reader over a pcap or pcapng byte source.
pub struct CaptureReader {
    path: String,
    src: Box<dyn Read + Send>,
    /// The read buffer. Threads handed packets' payloads by [`Self::next_shared`] may hold it:
    /// then the reader reads on into another one.
    buf: SharedBuffer,
    /// Buffers that other threads held, to be reused once they no longer do.
    spare: Vec<SharedBuffer>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    format: Format,
    nanos: bool,
    /// Byte length of the source when known (files), for progress.
    total_len: Option<u64>,
    /// A pcap file's snapshot length (for `-w`); 0 when unknown.
    snaplen: u32,
    /// The source again, when it is a regular file (see [`Packet::at`]).
    file: Option<Arc<File>>,
}

impl CaptureReader {
    /// Opens `path` (`-` = standard input) and reads its file header.
    pub(crate) fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let name = path.display().to_string();
        let io_err = |source| CaptureError::Io { path: name.clone(), source };
        if path == Path::new("-") {
            return CaptureReader::from_reader("-".to_string(), Box::new(io::stdin()), None);
        }
        let f = File::open(path).map_err(io_err)?;
        let meta = f.metadata().ok();
        let len = meta.as_ref().map(|m| m.len());
        // Only a regular file can be read again at an offset (not a pipe, `-r /dev/stdin`, or a
        // character device).
        let again = meta.filter(|m| m.is_file()).and_then(|_| f.try_clone().ok()).map(Arc::new);
        let mut r = CaptureReader::from_reader(name, Box::new(f), len)?;
        r.file = again;
        Ok(r)
    }

    /// Reads the file header from an arbitrary byte source named `name` in messages.
    pub fn from_reader(
        name: String,
        src: Box<dyn Read + Send>,
        total_len: Option<u64>,
    ) -> Result<CaptureReader, CaptureError> {
        let mut r = CaptureReader {
            path: name,
            src,
            // A small file gets a buffer of its size (+1 to see the end in one read).
            buf: Arc::new(vec![
                0;
                total_len.map_or(READ_CHUNK, |n| (n as usize)
                    .saturating_add(1)
                    .clamp(4096, READ_CHUNK))
            ]),
            spare: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            format: Format::Pcap(PcapFormat { swap: false, nanos: false, linktype: 0 }),
            nanos: false,
            total_len,
            snaplen: 0,
            file: None,
        };
        r.read_file_header()?;
        Ok(r)
    }

    /// The link type of a pcap file, or of a pcapng file's first interface read so far.
    pub(crate) fn first_linktype(&self) -> Option<u32> {
        match &self.format {
            Format::Pcap(f) => Some(f.linktype),
            Format::Pcapng { ifaces, .. } => ifaces.first().map(|i| i.linktype),
        }
    }

    /// The snapshot length of a pcap file (pcapng: per interface, not kept).
    pub(crate) fn snaplen(&self) -> Option<u32> {
        match &self.format {
            Format::Pcap(_) if self.snaplen > 0 => Some(self.snaplen),
            _ => None,
        }
    }

    fn corrupt(&self, what: String) -> CaptureError {
        CaptureError::Corrupt { path: self.path.clone(), offset: self.offset, what }
    }

    /// Makes at least `n` bytes available at `buf[start..]`; returns how many are there (may be
    /// fewer than `n` only at end of input).
    fn fill(&mut self, n: usize) -> Result<usize, CaptureError> {
        if self.end - self.start >= n || self.eof {
            return Ok(self.end - self.start);
        }
        self.unshare();
        // Not shared any more (only this reader clones it, in `next_shared`): no copy here.
        let buf = Arc::make_mut(&mut self.buf);
        if self.start + n > buf.len() {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if n > buf.len() {
                // n is bounded by MAX_BLOCK_BYTES by every caller.
                buf.resize(n.max(READ_CHUNK), 0);
            }
        }
        while self.end - self.start < n {
            match self.src.read(&mut buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::Io { path: self.path.clone(), source: e }),
            }
        }
        Ok(self.end - self.start)
    }

    /// Makes the read buffer this reader's alone, to write into: when other threads still hold
    /// it (payloads handed out by [`Self::next_shared`]), the unread bytes move to a spare buffer
    /// no one holds any more (or a new one) and reading goes on there.
    fn unshare(&mut self) {
        if Arc::get_mut(&mut self.buf).is_none() {
            let free = self.spare.iter().position(|b| Arc::strong_count(b) == 1 && Arc::weak_count(b) == 0);
            let mut next = match free {
                Some(k) => self.spare.swap_remove(k),
                None => Arc::new(vec![0; self.buf.len()]),
            };
            if let Some(b) = Arc::get_mut(&mut next) {
                let tail = &self.buf[self.start..self.end];
                if b.len() < tail.len() {
                    b.resize(tail.len(), 0);
                }
                b[..tail.len()].copy_from_slice(tail);
                self.end -= self.start;
                self.start = 0;
                let held = std::mem::replace(&mut self.buf, next);
                if self.spare.len() < SPARE_BUFFERS {
                    self.spare.push(held);
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        let have = self.fill(24)?;
        let b = &self.buf[self.start..self.end];
        if have < 4 {
            return Err(self.not_a_capture());
        }
        let magic = [b[0], b[1], b[2], b[3]];
        let (swap, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (cfg!(target_endian = "big"), false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (cfg!(target_endian = "little"), false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (cfg!(target_endian = "big"), true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (cfg!(target_endian = "little"), true),
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                self.format = Format::Pcapng { big_endian: false, ifaces: Vec::new() };
                return Ok(());
            }
            _ => return Err(self.not_a_capture()),
        };
        if have < 24 {
            return Err(CaptureError::Truncated {
                path: self.path.clone(),
                offset: 0,
                what: format!("pcap file header needs 24 bytes, file has {have}"),
            });
        }
        let le = cfg!(target_endian = "little") != swap;
        let rd = |o: usize| read_u32(&b[o..o + 4], le);
        let linktype = rd(20) & 0x0fff_ffff; // upper bits: FCS length flags (pcap-linktype(7))
        self.snaplen = rd(16);
        self.format = Format::Pcap(PcapFormat { swap, nanos, linktype });
        self.nanos = nanos;
        self.consume(24);
        Ok(())
    }

    fn not_a_capture(&self) -> CaptureError {
        let b = &self.buf[self.start..self.end.min(self.start + 4)];
        let magic = if b.is_empty() {
            "nothing: the file is empty".to_string()
        } else {
            b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
        };
        CaptureError::NotACapture { path: self.path.clone(), magic }
    }

    /// The next packet, `Ok(None)` at a clean end of file.
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        Ok(self.next_raw()?.map(|r| self.lend(r)))
    }

    /// The next packet and the buffer its bytes lie in, which a caller may keep (a cheap clone)
    /// to hand slices of it to another thread instead of copying them; the reader then reads on
    /// into another buffer.
    pub(crate) fn next_shared(&mut self) -> Result<Option<(Packet<'_>, &SharedBuffer)>, CaptureError> {
        Ok(self.next_raw()?.map(|r| (self.lend(r), &self.buf)))
    }

    fn lend(&self, r: RawPacket) -> Packet<'_> {
        // `offset` is the file offset of `buf[start]`: `offset - start`, that of `buf[0]`.
        let at = self.file.as_ref().map(|_| self.offset - self.start as u64 + r.start as u64);
        Packet { ts: r.ts, linktype: r.linktype, data: &self.buf[r.start..r.end], orig_len: r.orig_len, at }
    }

    #[inline]
    fn next_raw(&mut self) -> Result<Option<RawPacket>, CaptureError> {
        match self.format {
            Format::Pcap(f) => match self.buffered_pcap(f) {
                Some(r) => Ok(Some(r)),
                None => self.next_pcap(f),
            },
            Format::Pcapng { .. } => self.next_pcapng(),
        }
    }

    /// The next pcap record when it is whole in the buffer and within the limits (nearly
    /// always), else `None` ([`Self::next_pcap`] then reads, or reports what is wrong): the
    /// general path is much longer, and this runs for every packet on the reading thread.
    #[inline(always)]
    fn buffered_pcap(&mut self, f: PcapFormat) -> Option<RawPacket> {
        if f.swap {
            self.buffered_pcap_as::<true>(f)
        } else {
            self.buffered_pcap_as::<false>(f)
        }
    }

    /// [`Self::buffered_pcap`] of a file whose byte order is (`SWAP`) or is not the host's: one
    /// test for the record instead of one for each of its four words (-5 instructions a packet).
    #[inline(always)]
    fn buffered_pcap_as<const SWAP: bool>(&mut self, f: PcapFormat) -> Option<RawPacket> {
        let h: &[u8; 16] = self.buf.get(self.start..self.end)?.first_chunk()?;
        let word = |i: usize| {
            let w = u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            if SWAP {
                w.swap_bytes()
            } else {
                w
            }
        };
        let (secs, frac, incl, orig) = (word(0), word(4), word(8) as usize, word(12));
        if incl > MAX_RECORD_BYTES || self.end - self.start < 16 + incl {
            return None;
        }
        let nanos = if f.nanos { frac as u64 } else { frac as u64 * 1000 };
        // A fraction within its second (always, but in a damaged file) needs no division.
        let ts = if nanos < 1_000_000_000 {
            Timestamp { secs: secs as i64, nanos: nanos as u32 }
        } else {
            Timestamp::new(secs as i64, nanos)
        };
        let s = self.start + 16;
        self.consume(16 + incl);
        Some(RawPacket { ts, linktype: f.linktype, start: s, end: s + incl, orig_len: orig.max(incl as u32) })
    }

    /// The next pcap record, reading as needed; errors name what is wrong. Not inlined, nor
    /// is [`Self::next_pcapng`]: [`Self::next_raw`] stays small enough to be inlined itself.
    #[inline(never)]
    fn next_pcap(&mut self, f: PcapFormat) -> Result<Option<RawPacket>, CaptureError> {
        let have = self.fill(16)?;
        if have == 0 {
            return Ok(None);
        }
        if have < 16 {
            return Err(self.truncated(format!("packet record header needs 16 bytes, {have} left")));
        }
        let le = cfg!(target_endian = "little") != f.swap;
        let incl = read_u32(&self.buf[self.start + 8..self.start + 12], le) as usize;
        if incl > MAX_RECORD_BYTES {
            return Err(self
                .corrupt(format!("packet record claims {incl} captured bytes (limit {MAX_RECORD_BYTES})")));
        }
        let have = self.fill(16 + incl)?;
        if have < 16 + incl {
            return Err(
                self.truncated(format!("packet record needs {incl} bytes, {} left", have.saturating_sub(16)))
            );
        }
        Ok(self.buffered_pcap(f))
    }

    fn truncated(&self, what: String) -> CaptureError {
        CaptureError::Truncated { path: self.path.clone(), offset: self.offset, what }
    }

    #[inline(never)]
    fn next_pcapng(&mut self) -> Result<Option<RawPacket>, CaptureError> {
        loop {
            let have = self.fill(12)?;
            if have == 0 {
                return Ok(None);
            }
            if have < 12 {
                return Err(self.truncated(format!("pcapng block header needs 12 bytes, {have} left")));
            }
            let b = &self.buf[self.start..self.start + 12];
            let is_shb = b[0..4] == [0x0a, 0x0d, 0x0d, 0x0a];
            let big_endian = if is_shb {
                match b[8..12] {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => return Err(self.corrupt("pcapng section header has a bad byte-order magic".into())),
                }
            } else {
                match &self.format {
                    Format::Pcapng { big_endian, .. } => *big_endian,
                    Format::Pcap(_) => false,
                }
            };
            let le = !big_endian;
            let btype = read_u32(&b[0..4], le);
            let blen = read_u32(&b[4..8], le) as usize;
            if blen < 12 || !blen.is_multiple_of(4) {
                return Err(self.corrupt(format!("pcapng block length {blen} is invalid")));
            }
            if blen > MAX_BLOCK_BYTES {
                return Err(
                    self.corrupt(format!("pcapng block claims {blen} bytes (limit {MAX_BLOCK_BYTES})"))
                );
            }
            let have = self.fill(blen)?;
            if have < blen {
                return Err(self.truncated(format!("pcapng block needs {blen} bytes, {have} left")));
            }
            let s = self.start;
            let trailer = read_u32(&self.buf[s + blen - 4..s + blen], le) as usize;
            if trailer != blen {
                return Err(
                    self.corrupt(format!("pcapng block length {blen} does not match its trailer {trailer}"))
                );
            }
            let body_start = s + 8;
            let body_end = s + blen - 4;
            match btype {
                0x0A0D_0D0A => {
                    self.format = Format::Pcapng { big_endian, ifaces: Vec::new() };
                    self.consume(blen);
                }
                1 => {
                    // Interface Description Block.
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 8 {
                        return Err(self.corrupt("pcapng interface block too short".into()));
                    }
                    let linktype = read_u16(&body[0..2], le) as u32;
                    let mut iface = Interface { linktype, tsresol: 6, tsoffset: 0 };
                    for (code, val) in PcapngOptions::new(&body[8..], le) {
                        match code {
                            9 if !val.is_empty() => iface.tsresol = val[0],
                            14 if val.len() == 8 => iface.tsoffset = read_u64(val, le) as i64,
                            _ => {}
                        }
                    }
                    if iface_nanos(iface.tsresol) {
                        self.nanos = true;
                    }
                    if let Format::Pcapng { ifaces, .. } = &mut self.format {
                        if ifaces.len() < MAX_INTERFACES {
                            ifaces.push(iface);
                        }
                    }
                    self.consume(blen);
                }
                6 | 3 | 2 => {
                    let pkt = self.pcapng_packet(btype, body_start, body_end, le)?;
                    self.consume(blen);
                    match pkt {
                        Some(raw) => return Ok(Some(raw)),
                        None => continue,
                    }
                }
                _ => self.consume(blen), // name resolution, statistics, custom, unknown: skip
            }
        }
    }

    /// Decodes an EPB (6), SPB (3) or obsolete Packet Block (2) body; returns the packet as buffer
    /// offsets (`None` when the file is not pcapng); a packet on an undeclared interface is an
    /// error.
    fn pcapng_packet(
        &self,
        btype: u32,
        bs: usize,
        be: usize,
        le: bool,
    ) -> Result<Option<RawPacket>, CaptureError> {
        let body = &self.buf[bs..be];
        let ifaces = match &self.format {
            Format::Pcapng { ifaces, .. } => ifaces,
            Format::Pcap(_) => return Ok(None),
        };
        let (iface_id, ts_raw, caplen, orig, data_off) = match btype {
            6 => {
                if body.len() < 20 {
                    return Err(self.corrupt("pcapng enhanced packet block too short".into()));
                }
                let hi = read_u32(&body[4..8], le) as u64;
                let lo = read_u32(&body[8..12], le) as u64;
                (
                    read_u32(&body[0..4], le) as usize,
                    Some((hi << 32) | lo),
                    read_u32(&body[12..16], le) as usize,
                    read_u32(&body[16..20], le),
                    20,
                )
            }
            2 => {
                if body.len() < 20 {
                    return Err(self.corrupt("pcapng packet block too short".into()));
                }
                let hi = read_u32(&body[4..8], le) as u64;
                let lo = read_u32(&body[8..12], le) as u64;
                (
                    read_u16(&body[0..2], le) as usize,
                    Some((hi << 32) | lo),
                    read_u32(&body[12..16], le) as usize,
                    read_u32(&body[16..20], le),
                    20,
                )
            }
            _ => {
                if body.len() < 4 {
                    return Err(self.corrupt("pcapng simple packet block too short".into()));
                }
                let orig = read_u32(&body[0..4], le);
                (0, None, (orig as usize).min(body.len() - 4), orig, 4)
            }
        };
        if caplen > body.len() - data_off {
            return Err(self.corrupt(format!(
                "pcapng packet claims {caplen} captured bytes but its block holds {}",
                body.len() - data_off
            )));
        }
        let Some(iface) = ifaces.get(iface_id) else {
            return Err(self.corrupt(format!("pcapng packet on undeclared interface {iface_id}")));
        };
        let ts = match ts_raw {
            Some(raw) => pcapng_ts(raw, iface.tsresol, iface.tsoffset),
            None => Timestamp::default(),
        };
        let ds = bs + data_off;
        Ok(Some(RawPacket {
            ts,
            linktype: iface.linktype,
            start: ds,
            end: ds + caplen,
            orig_len: orig.max(caplen as u32),
        }))
    }
}

impl PacketSource for CaptureReader {
    fn name(&self) -> &str {
        &self.path
    }
    fn nanosecond_precision(&self) -> bool {
        self.nanos
    }
    fn total_len(&self) -> Option<u64> {
        self.total_len
    }
    fn position(&self) -> u64 {
        self.offset
    }
    fn file(&self) -> Option<Arc<File>> {
        self.file.clone()
    }
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        // A pcap record whole in the buffer (nearly every packet) is read here, in the call the
        // run makes for every packet, not two calls further down (-35 instructions a packet).
        if let Format::Pcap(f) = self.format {
            if let Some(r) = self.buffered_pcap(f) {
                return Ok(Next::Packet(self.lend(r)));
            }
        }
        Ok(match self.next_packet()? {
            Some(p) => Next::Packet(p),
            None => Next::End,
        })
    }
}

/// True when an `if_tsresol` value is finer than microseconds.
fn iface_nanos(tsresol: u8) -> bool {
    if tsresol & 0x80 == 0 {
        tsresol > 6
    } else {
        (tsresol & 0x7f) > 19
    }
}

/// Converts a pcapng timestamp in `if_tsresol` units to a [`Timestamp`].
fn pcapng_ts(raw: u64, tsresol: u8, tsoffset: i64) -> Timestamp {
    let (secs, nanos) = if tsresol & 0x80 == 0 {
        let e = (tsresol as u32).min(19);
        let per_sec = 10u64.pow(e);
        let (s, frac) = (raw / per_sec, raw % per_sec);
        let nanos = if e <= 9 { frac * 10u64.pow(9 - e) } else { frac / 10u64.pow(e - 9) };
        (s, nanos)
    } else {
        let e = (tsresol & 0x7f).min(63) as u32;
        let s = raw >> e;
        let frac = raw & ((1u64 << e) - 1);
        (s, ((frac as u128 * 1_000_000_000u128) >> e) as u64)
    };
    Timestamp::new((secs as i64).saturating_add(tsoffset), nanos)
}

/// Iterator over pcapng options `(code, value)`; stops at opt_endofopt or malformed data.
struct PcapngOptions<'a> {
    b: &'a [u8],
    le: bool,
}

impl<'a> PcapngOptions<'a> {
    fn new(b: &'a [u8], le: bool) -> Self {
        PcapngOptions { b, le }
    }
}

impl<'a> Iterator for PcapngOptions<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.b.len() < 4 {
            return None;
        }
        let code = read_u16(&self.b[0..2], self.le);
        let len = read_u16(&self.b[2..4], self.le) as usize;
        if code == 0 || 4 + len > self.b.len() {
            return None;
        }
        let val = &self.b[4..4 + len];
        let padded = (4 + len + 3) & !3;
        self.b = self.b.get(padded..).unwrap_or(&[]);
        Some((code, val))
    }
}

#[inline]
fn read_u16(b: &[u8], le: bool) -> u16 {
    let a = [b[0], b[1]];
    if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    }
}

#[inline]
fn read_u32(b: &[u8], le: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

#[inline]
fn read_u64(b: &[u8], le: bool) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    if le {
        u64::from_le_bytes(a)
    } else {
        u64::from_be_bytes(a)
    }
}

/// Where a file came from, for messages and the summary's `files`: standard input is `-`, as in
/// the flows' `source` and the reader's own errors (and as tcpdump is told it).
pub(crate) fn display_path(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader("t.pcap".into(), Box::new(io::Cursor::new(bytes)), None)
    }

    fn pcap_header(le: bool, nanos: bool, linktype: u32) -> Vec<u8> {
        let magic: u32 = if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 };
        let mut v = Vec::new();
        let p32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() })
        };
        p32(&mut v, magic);
        v.extend_from_slice(&if le { 2u16.to_le_bytes() } else { 2u16.to_be_bytes() });
        v.extend_from_slice(&if le { 4u16.to_le_bytes() } else { 4u16.to_be_bytes() });
        p32(&mut v, 0);
        p32(&mut v, 0);
        p32(&mut v, 65535);
        p32(&mut v, linktype);
        v
    }

    fn pcap_record(le: bool, secs: u32, frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [secs, frac, data.len() as u32, orig] {
            v.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() });
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_both_byte_orders_and_precisions() {
        for le in [true, false] {
            for nanos in [true, false] {
                let mut f = pcap_header(le, nanos, 101);
                f.extend(pcap_record(le, 10, 5, b"abc", 3));
                let mut r = reader(f).unwrap();
                assert_eq!(r.nanosecond_precision(), nanos);
                let p = r.next_packet().unwrap().unwrap();
                assert_eq!(p.linktype, 101);
                assert_eq!(p.data, b"abc");
                assert_eq!(p.ts.nanos, if nanos { 5 } else { 5000 });
                assert!(r.next_packet().unwrap().is_none());
                // The same through `PacketSource::next`, which reads a whole record itself.
                let mut f = pcap_header(le, nanos, 101);
                f.extend(pcap_record(le, 10, 5, b"abc", 7));
                let mut r = reader(f).unwrap();
                let Ok(Next::Packet(p)) = PacketSource::next(&mut r) else { panic!("no packet") };
                assert_eq!((p.linktype, p.data, p.orig_len, p.ts.secs), (101, &b"abc"[..], 7, 10));
                assert_eq!(p.ts.nanos, if nanos { 5 } else { 5000 });
                assert!(matches!(PacketSource::next(&mut r), Ok(Next::End)));
            }
        }
    }

    /// A source that returns at most `step` bytes per read (as a pipe may).
    struct Trickle(io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn buffers_handed_out_are_never_written_again() {
        // 3,000 packets of 1-1,499 bytes (2.3 MB: many read buffers), each filled with its own
        // number; every packet's buffer is kept, as the worker threads keep theirs for a while.
        let body = |i: usize| vec![(i % 251) as u8; 1 + i * 7 % 1499];
        let mut f = pcap_header(true, false, 1);
        for i in 0..3000 {
            f.extend(pcap_record(true, i as u32, 0, &body(i), 0));
        }
        for step in [usize::MAX, 1000, 77] {
            let mut r = CaptureReader::from_reader(
                "t".into(),
                Box::new(Trickle(io::Cursor::new(f.clone()), step)),
                None,
            )
            .unwrap();
            let mut kept = Vec::new();
            while let Some((p, buf)) = r.next_shared().unwrap() {
                let at = p.data.as_ptr() as usize - buf.as_ptr() as usize;
                kept.push((buf.clone(), at, p.data.len()));
                // Some are let go at once, so their buffers come back for reuse.
                if kept.len() % 5 == 0 {
                    kept.pop();
                    kept.push((Arc::new(Vec::new()), 0, 0));
                }
            }
            for (i, (buf, at, len)) in kept.iter().enumerate() {
                if i % 5 != 4 {
                    assert_eq!(&buf[*at..at + len], &body(i)[..], "packet {i}, reads of {step}");
                }
            }
            assert!(r.spare.len() <= SPARE_BUFFERS);
        }
    }

    #[test]
    fn cut_short_record_is_an_error_after_earlier_packets() {
        let mut f = pcap_header(true, false, 1);
        f.extend(pcap_record(true, 1, 0, b"first", 5));
        let mut rec = pcap_record(true, 2, 0, b"second-packet", 13);
        rec.truncate(20);
        f.extend(rec);
        let mut r = reader(f).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        let e = r.next_packet().unwrap_err();
        assert!(matches!(e, CaptureError::Truncated { offset: 45, .. }), "{e}");
    }

    #[test]
    fn lying_record_length_is_corrupt_not_an_allocation() {
        let mut f = pcap_header(true, false, 1);
        f.extend(pcap_record(true, 1, 0, b"x", 1));
        let n = f.len();
        f[n - 9..n - 5].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let mut r = reader(f).unwrap();
        assert!(matches!(r.next_packet(), Err(CaptureError::Corrupt { .. })));
    }

    #[test]
    fn text_file_is_not_a_capture() {
        let e = reader(b"hello world\n".to_vec()).err().unwrap();
        assert_eq!(e.to_string(), "t.pcap: not a pcap or pcapng file (starts with 68 65 6c 6c)");
        let e = reader(Vec::new()).err().unwrap();
        assert!(e.to_string().contains("empty"));
    }

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut v = Vec::new();
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.resize(len - 4, 0);
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v
    }

    #[test]
    fn pcapng_with_two_link_types_and_tsresol() {
        let mut f = block(
            0x0A0D0D0A,
            &[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        // Interface 1: raw IP, if_tsresol = 9 (nanoseconds).
        f.extend(block(1, &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]));
        f.extend(block(0x0BAD, &[1, 2, 3, 4])); // unknown block: skipped
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&iface.to_le_bytes());
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            block(6, &b)
        };
        f.extend(epb(0, 1_500_000, b"eth"));
        f.extend(epb(1, 2_000_000_007, b"raw!!"));
        let mut r = reader(f).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.linktype, p.data, p.ts), (1, &b"eth"[..], Timestamp::new(1, 500_000_000)));
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.linktype, p.data, p.ts), (101, &b"raw!!"[..], Timestamp::new(2, 7)));
        assert!(r.next_packet().unwrap().is_none());
        assert!(r.nanosecond_precision());
    }
}

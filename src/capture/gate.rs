//! What `tcpdump -r` does to the packets it reads, for `-r` here: a BPF filter (compiled by
//! libpcap for each link type met, as `tcpdump -r F EXPR`), `-c N` (the first N packets that
//! pass, counted across the inputs in order) and `-w OUT` (the packets that pass, with their
//! link type and timestamps, rotated as `-C`/`-W`/`-G` say).
//!
//! A [`Gate`] lives for the whole run; [`Gated`] puts it in front of one [`CaptureReader`].
//! Without a filter, `-c` or `-w` no gate is made, and the reader is used as it is (the reading
//! path is the hot one: see bench/RESULTS.md).
//!
//! A pcapng file may hold interfaces of several link types: each gets its own program. A pcap
//! file holds one link type, so `-w` writes the link type of the first packet written, and the
//! packets of other link types are counted in [`Gate::not_written`] instead (tlspeek says so on
//! stderr); tcpdump cannot read such pcapng files at all.

use super::write::{PcapWriter, WriteError, WriteOptions};
use super::{CaptureError, CaptureReader, Next, Packet, PacketSource, SharedBuffer};
use std::collections::BTreeMap;

/// One BPF instruction as libpcap lays it out (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

extern "C" {
    /// libpcap's BPF interpreter (pcap/bpf.h): non-zero when the packet passes. Called with the
    /// wire length as well as the captured bytes, as `pcap_offline_filter` does (the crate's
    /// `BpfProgram::filter` passes the captured length as both, which `len`/`greater` need).
    fn bpf_filter(pc: *const BpfInsn, p: *const u8, wirelen: u32, buflen: u32) -> u32;
}

/// A compiled filter, owned (libpcap's program is copied out: it can then move between threads).
#[derive(Debug)]
struct Program(Vec<BpfInsn>);

impl Program {
    fn compile(expr: &str, linktype: u32) -> Result<Program, pcap::Error> {
        let dead = pcap::Capture::dead(pcap::Linktype(dlt_of(linktype) as i32))?;
        let prog = dead.compile(expr, true)?;
        let insns = prog.get_instructions();
        // SAFETY: BpfInstruction is #[repr(transparent)] over libpcap's struct bpf_insn, whose
        // C layout BpfInsn repeats; the slice is valid while `prog` lives.
        let copy = unsafe { std::slice::from_raw_parts(insns.as_ptr().cast::<BpfInsn>(), insns.len()) };
        Ok(Program(copy.to_vec()))
    }

    fn matches(&self, data: &[u8], orig_len: u32) -> bool {
        if self.0.is_empty() {
            return true;
        }
        // SAFETY: a program libpcap compiled (and validated), the packet's bytes and length.
        unsafe {
            bpf_filter(self.0.as_ptr(), data.as_ptr(), orig_len.max(data.len() as u32), data.len() as u32)
                != 0
        }
    }
}

/// The DLT_ value libpcap compiles for, from a file's LINKTYPE_ value (they differ for a few
/// old types; libpcap's `linktype_to_dlt`). tlspeek reads LINKTYPE_RAW (101) among them.
fn dlt_of(linktype: u32) -> u32 {
    match linktype {
        100 => 11, // ATM_RFC1483
        101 => 12, // RAW (Linux value of DLT_RAW)
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        106 => 19, // ATM_CLIP
        lt => lt,
    }
}

/// Checks that `expr` compiles (for Ethernet), so that a typo stops the run before any output.
pub(crate) fn check_filter(expr: &str) -> Result<(), pcap::Error> {
    Program::compile(expr, 1).map(|_| ())
}

/// Filter, count and writer over every input of a run.
pub(crate) struct Gate {
    filter: Option<String>,
    programs: BTreeMap<u32, Program>,
    /// Packets that may still pass (`-c`).
    left: Option<u64>,
    write: Option<WriteOptions>,
    writer: Option<PcapWriter>,
    /// Packets read but not written: link type of a packet written → count (see module doc).
    pub(crate) not_written: BTreeMap<u32, u64>,
    /// Packets that passed the filter.
    pub(crate) passed: u64,
    /// Set when writing failed: no further input is read (tcpdump stops too).
    pub(crate) stopped: bool,
}

impl Gate {
    /// A gate, or `None` when nothing is asked of it (the reader is then used directly).
    pub(crate) fn new(
        filter: Option<String>,
        count: Option<u64>,
        write: Option<WriteOptions>,
    ) -> Option<Gate> {
        if filter.is_none() && count.is_none() && write.is_none() {
            return None;
        }
        Some(Gate {
            filter,
            programs: BTreeMap::new(),
            left: count,
            write,
            writer: None,
            not_written: BTreeMap::new(),
            passed: 0,
            stopped: false,
        })
    }

    /// No packet may pass any more: `-c` reached, or writing failed.
    pub(crate) fn done(&self) -> bool {
        self.stopped || self.left == Some(0)
    }

    /// Creates the `-w` file before `reader` is read, when its link type is known from its
    /// header (pcap), so that a path that cannot be written fails before any output, as with
    /// tcpdump. Otherwise (pcapng) the file is created at the first packet.
    pub(crate) fn open_for(&mut self, reader: &CaptureReader) -> Result<(), CaptureError> {
        // Likewise a filter that does not compile for a pcap file's link type.
        if let Some(lt) = reader.first_linktype() {
            self.program(lt, &reader.path)?;
        }
        // With -G the first file is named for the first packet's time: created then.
        let timed = self.write.as_ref().is_some_and(|w| w.rotate_secs.is_some());
        if let (Some(lt), None, false) = (reader.first_linktype(), &self.writer, timed) {
            if let Some(opts) = self.write.take() {
                let snaplen = reader.snaplen().unwrap_or(DEFAULT_SNAPLEN);
                let mut w = PcapWriter::new(opts, lt, snaplen, reader.nanosecond_precision());
                let first = w.open_now(crate::wire::Timestamp::default());
                self.writer = Some(w);
                if let Err(e) = first {
                    self.stopped = true;
                    return Err(CaptureError::Write(e));
                }
            }
        }
        Ok(())
    }

    /// Writes the last buffered packets; with `-w` and no packet at all, leaves an empty file
    /// (link type `linktype`, when the inputs told one), as tcpdump does.
    pub(crate) fn finish(&mut self, linktype: Option<u32>) -> Result<(), WriteError> {
        if self.writer.is_none() && !self.stopped {
            if let Some(opts) = self.write.take() {
                let mut w = PcapWriter::new(opts, linktype.unwrap_or(1), DEFAULT_SNAPLEN, false);
                w.open_now(crate::wire::Timestamp::default())?;
                self.writer = Some(w);
            }
        }
        match self.writer.as_mut() {
            Some(w) => w.close(),
            None => Ok(()),
        }
    }

    /// The filter's program for `linktype`, compiled when first met (`None`: no filter). A
    /// filter that does not compile for it ends the run, as it ends tcpdump.
    fn program(&mut self, linktype: u32, path: &str) -> Result<Option<&Program>, CaptureError> {
        let Some(expr) = &self.filter else { return Ok(None) };
        if let std::collections::btree_map::Entry::Vacant(v) = self.programs.entry(linktype) {
            match Program::compile(expr, linktype) {
                Ok(p) => {
                    v.insert(p);
                }
                Err(source) => {
                    self.stopped = true;
                    let (path, linktype) = (path.to_string(), crate::decode::linktype_name(linktype));
                    return Err(CaptureError::Filter { path, linktype, source });
                }
            }
        }
        Ok(self.programs.get(&linktype))
    }

    /// Decides one packet: true when it passes (and has been written).
    fn admit(&mut self, p: &Packet<'_>, path: &str, snaplen: u32, nanos: bool) -> Result<bool, CaptureError> {
        if self.done() {
            return Ok(false);
        }
        if let Some(prog) = self.program(p.linktype, path)? {
            if !prog.matches(p.data, p.orig_len) {
                return Ok(false);
            }
        }
        if let Some(opts) = self.write.take() {
            self.writer = Some(PcapWriter::new(opts, p.linktype, snaplen, nanos));
        }
        if let Some(w) = self.writer.as_mut() {
            if w.linktype() != p.linktype {
                *self.not_written.entry(p.linktype).or_default() += 1;
            } else if let Err(e) = w.write(p.ts, p.data, p.orig_len) {
                self.stopped = true;
                return match e {
                    // -G with -W N: N files written; tcpdump stops reading there.
                    WriteError::FileLimit(_) => Ok(false),
                    e => Err(CaptureError::Write(e)),
                };
            }
        }
        if let Some(left) = self.left.as_mut() {
            *left -= 1;
        }
        self.passed += 1;
        Ok(true)
    }
}

/// Snapshot length written in a `-w` file when the input does not say one (libpcap's maximum).
const DEFAULT_SNAPLEN: u32 = 262_144;

/// A capture file read through a [`Gate`].
pub(crate) struct Gated<'g> {
    reader: CaptureReader,
    gate: &'g mut Gate,
}

impl<'g> Gated<'g> {
    /// Puts `gate` in front of `reader`.
    pub(crate) fn new(reader: CaptureReader, gate: &'g mut Gate) -> Gated<'g> {
        Gated { reader, gate }
    }

    /// The next packet that passes, as [`CaptureReader::next_shared`].
    pub(crate) fn next_shared(&mut self) -> Result<Option<(Packet<'_>, &SharedBuffer)>, CaptureError> {
        let (snaplen, nanos) =
            (self.reader.snaplen().unwrap_or(DEFAULT_SNAPLEN), self.reader.nanosecond_precision());
        loop {
            if self.gate.done() {
                return Ok(None);
            }
            let Some(raw) = self.reader.next_raw()? else { return Ok(None) };
            let p = self.reader.lend(raw);
            if self.gate.admit(&p, &self.reader.path, snaplen, nanos)? {
                return Ok(Some((self.reader.lend(raw), &self.reader.buf)));
            }
        }
    }
}

impl PacketSource for Gated<'_> {
    fn name(&self) -> &str {
        self.reader.name()
    }
    fn nanosecond_precision(&self) -> bool {
        self.reader.nanosecond_precision()
    }
    fn total_len(&self) -> Option<u64> {
        self.reader.total_len()
    }
    fn position(&self) -> u64 {
        self.reader.position()
    }
    fn file(&self) -> Option<std::sync::Arc<std::fs::File>> {
        self.reader.file()
    }
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        Ok(match self.next_shared()? {
            Some((p, _)) => Next::Packet(p),
            None => Next::End,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ip_files_compile_as_libpcap_reads_them() {
        assert!(Program::compile("tcp port 80", 101).is_ok());
        assert!(Program::compile("tcp port 80", 276).is_ok());
        let e = Program::compile("port eighty", 1).unwrap_err();
        assert_eq!(e.to_string(), "libpcap error: unknown port 'eighty'");
    }

    #[test]
    fn filter_uses_the_wire_length() {
        // An IPv4/TCP packet on raw IP, 40 bytes captured of 1500 on the wire.
        let mut pkt = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        pkt.extend_from_slice(&[
            0x1f, 0x90, 0x23, 0x78, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let p = Program::compile("greater 1000 and dst port 9080", 101).unwrap();
        assert!(p.matches(&pkt, 1500));
        assert!(!p.matches(&pkt, 40));
        assert!(!Program::compile("port 80", 101).unwrap().matches(&pkt, 1500));
    }
}

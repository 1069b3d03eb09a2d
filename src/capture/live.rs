//! Live capture through libpcap: `-i IFACE` (or `any`), BPF filters, TPACKET_V3 blocks, `-c`,
//! `--duration`, and a clean stop on SIGINT/SIGTERM.
//!
//! On Linux libpcap's read timeout does not fire while no packets arrive, so the handle is
//! non-blocking and we `poll(2)` its descriptor with a short timeout; between polls we check the
//! stop flag (set by the signal handler), the duration and the packet count.

use super::write::{PcapWriter, WriteError, WriteOptions};
use super::{CaptureError, Next, Packet, PacketSource};
use crate::wire::Timestamp;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: stop reading, report what was seen.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handlers that stop a live capture cleanly.
pub(crate) fn install_stop_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// True once a stop signal arrived.
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How to open a live capture.
#[derive(Clone, Debug)]
pub(crate) struct LiveOptions {
    /// Interface name (`any` for all).
    pub(crate) interface: String,
    /// BPF filter in tcpdump syntax, if any.
    pub(crate) filter: Option<String>,
    /// Stop after this many packets.
    pub(crate) count: Option<u64>,
    /// Stop after this long.
    pub(crate) duration: Option<Duration>,
    /// Snapshot length.
    pub(crate) snaplen: i32,
    /// Kernel buffer, KiB.
    pub(crate) buffer_kib: Option<i32>,
    /// Promiscuous mode.
    pub(crate) promisc: bool,
    /// Also save every captured packet to pcap files (`-w`, rotated as `-C`/`-W`/`-G` say),
    /// for offline re-analysis.
    pub(crate) write: Option<WriteOptions>,
    /// Once the capture is open, switch to this user (when root) and drop every capability;
    /// `None` keeps them (`-Z none`).
    pub(crate) drop_to: Option<String>,
}

/// An open live capture.
pub(crate) struct LiveCapture {
    name: String,
    cap: pcap::Capture<pcap::Active>,
    linktype: u32,
    opts: LiveOptions,
    started: Instant,
    /// Packets left before the clock is read again (see `next`).
    until_clock: u32,
    seen: u64,
    /// The current packet, copied out of libpcap's ring (one reused buffer: a borrow of the
    /// handle cannot be returned from the polling loop).
    /// The packet last read, in libpcap's buffer (see `next`).
    data: *const [u8],
    ts: Timestamp,
    orig_len: u32,
    save: Option<PcapWriter>,
}

/// Why a live capture could not be opened or read, or the interfaces listed. Each message
/// names the interface (or filter) and says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Not allowed to capture (no root, no CAP_NET_RAW).
    #[error(
        "cannot capture on {interface}: {source}. Capturing needs root or CAP_NET_RAW. In an Istio pod the \
         istio-proxy container runs as uid 1337 without NET_RAW: use `sudo` in a privileged sidecar \
         (values.global.proxy.privileged=true), or an ephemeral container: kubectl debug -it POD \
         --image=IMAGE --target=istio-proxy --profile=netadmin"
    )]
    PermissionDenied {
        /// Interface name.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The interface does not exist.
    #[error("cannot capture on {interface}: {source}. `tlspeek -D` lists the interfaces")]
    NoSuchInterface {
        /// Interface name.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// Any other failure to open the interface.
    #[error("cannot capture on {interface}: {source}")]
    Open {
        /// Interface name.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The BPF filter does not compile.
    #[error(
        "invalid filter {filter:?}: {source} (a name that is not in /etc/services or /etc/hosts needs a number or address)"
    )]
    Filter {
        /// The filter, after [`resolve_names`].
        filter: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The first `-w` file could not be created.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The capture failed while reading.
    #[error("{interface}: capture failed: {source}")]
    Read {
        /// Interface name.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// `-D`: libpcap could not list the interfaces.
    #[error("cannot list interfaces: {source}")]
    List {
        /// libpcap's error.
        source: pcap::Error,
    },
}

/// Turns libpcap's terse error on opening `interface` into a variant that says what to do next.
fn open_error(interface: &str, source: pcap::Error) -> LiveError {
    let lower = source.to_string().to_ascii_lowercase();
    let interface = interface.to_string();
    if lower.contains("operation not permitted") || lower.contains("permission") {
        LiveError::PermissionDenied { interface, source }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        LiveError::NoSuchInterface { interface, source }
    } else {
        LiveError::Open { interface, source }
    }
}

impl LiveCapture {
    /// Opens the interface and applies the filter.
    pub(crate) fn open(opts: LiveOptions) -> Result<LiveCapture, LiveError> {
        let iface = opts.interface.clone();
        let mut inactive = pcap::Capture::from_device(iface.as_str())
            .map_err(|e| open_error(&iface, e))?
            // Not immediate mode: libpcap then uses TPACKET_V3 (variable-size frames in blocks,
            // retired by the kernel after the 100 ms timeout even when not full), which holds
            // many more packets than the fixed snaplen-sized slots of immediate mode (TPACKET_V2).
            .immediate_mode(false)
            .snaplen(opts.snaplen)
            .promisc(opts.promisc)
            .timeout(100);
        if let Some(kib) = opts.buffer_kib {
            inactive = inactive.buffer_size(kib.saturating_mul(1024));
        }
        let mut cap = inactive.open().map_err(|e| open_error(&iface, e))?;
        if iface == "any" {
            // SLL2 carries the interface index (pod interface vs loopback); fall back to SLL.
            let _ = cap.set_datalink(pcap::Linktype(276));
        }
        if let Some(f) = &opts.filter {
            let resolved = resolve_names(
                f,
                std::path::Path::new("/etc/services").exists(),
                std::path::Path::new("/etc/hosts").exists(),
            );
            cap.filter(&resolved, true)
                .map_err(|source| LiveError::Filter { filter: resolved.clone(), source })?;
        }
        let cap = cap.setnonblock().map_err(|e| open_error(&iface, e))?;
        let linktype = cap.get_datalink().0 as u32;
        let save = match &opts.write {
            Some(w) => {
                // Created now, while the process may still write where root can (-Z drops
                // privileges next): the first file, and all the files of a -C -W ring; files
                // that -C alone or -G open later are created as the -Z user.
                let mut save = PcapWriter::new(w.clone(), linktype, opts.snaplen.max(0) as u32, false);
                let made = match opts.drop_to {
                    Some(_) => save.create_ring_now(wall_clock()),
                    None => save.open_now(wall_clock()),
                };
                made?;
                Some(save)
            }
            None => None,
        };
        Ok(LiveCapture {
            name: iface,
            cap,
            linktype,
            opts,
            started: Instant::now(),
            until_clock: 1,
            seen: 0,
            data: std::ptr::slice_from_raw_parts(std::ptr::null(), 0),
            ts: Timestamp::default(),
            orig_len: 0,
            save,
        })
    }

    /// libpcap's counters: (received, dropped by the kernel, dropped by the interface).
    pub(crate) fn stats(&mut self) -> Option<(u32, u32, u32)> {
        self.cap.stats().ok().map(|s| (s.received, s.dropped, s.if_dropped))
    }

    fn flush_save(&mut self) -> Result<(), CaptureError> {
        match self.save.as_mut() {
            Some(save) => save.flush().map_err(CaptureError::Write),
            None => Ok(()),
        }
    }

    fn wait(&mut self, ms: i32) -> Result<(), CaptureError> {
        // Packets written with -w reach the disk while we wait, not only at exit.
        self.flush_save()?;
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd { fd: self.cap.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; EINTR (a stop signal) just returns early.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
        }
        Ok(())
    }
}

/// The current time, as a packet timestamp.
fn wall_clock() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as u64))
        .unwrap_or_default()
}

impl PacketSource for LiveCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn nanosecond_precision(&self) -> bool {
        false
    }

    fn is_live(&self) -> bool {
        true
    }

    fn kernel_drops(&mut self) -> Option<u64> {
        self.stats().map(|(_, dropped, _)| dropped.into())
    }

    fn total_len(&self) -> Option<u64> {
        None
    }

    fn position(&self) -> u64 {
        self.seen
    }

    /// The packets of one block of libpcap's ring, each handed to `f` where it lies
    /// (`pcap_dispatch`): `pcap_next_ex` costs a call and, on Linux, a copy of each packet
    /// into a buffer of its own (libpcap's `oneshot` callback) (bench/RESULTS.md, issue 22).
    /// The stop, `-c` and `--duration` checks are made once per block: a block is retired by
    /// the kernel when full or after 100 ms.
    fn next_batch(
        &mut self,
        f: &mut dyn FnMut(Packet<'_>) -> bool,
    ) -> Result<Option<Next<'static>>, CaptureError> {
        let mut waiting_since: Option<Instant> = None;
        loop {
            if stop_requested()
                || self.opts.count.is_some_and(|c| self.seen >= c)
                || self.opts.duration.is_some_and(|d| self.started.elapsed() >= d)
            {
                self.flush_save()?;
                return Ok(Some(Next::End));
            }
            let left = self.opts.count.map(|c| usize::try_from(c - self.seen).unwrap_or(usize::MAX));
            let (linktype, opts, save, seen) = (self.linktype, &self.opts, &mut self.save, &mut self.seen);
            // What stopped the block's packets early: the end of the -w files, an error, `f`.
            let mut stop: Option<Result<Option<Next<'static>>, CaptureError>> = None;
            let got = self.cap.dispatch(left.map(|n| n.min(i32::MAX as usize)), |p| {
                if stop.is_some() {
                    return;
                }
                let (ts, orig_len) = (ts_of(&p.header.ts), p.header.len);
                match save_packet(save, opts, ts, p.data, orig_len) {
                    Ok(true) => {}
                    Ok(false) => {
                        stop = Some(Ok(Some(Next::End)));
                        return;
                    }
                    Err(e) => {
                        stop = Some(Err(e));
                        return;
                    }
                }
                *seen += 1;
                if !f(Packet { ts, linktype, data: p.data, orig_len, at: None }) {
                    stop = Some(Ok(None));
                }
            });
            if let Some(r) = stop {
                return r;
            }
            match got {
                Ok(0) | Err(pcap::Error::TimeoutExpired) => {
                    if waiting_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(1) {
                        return Ok(Some(Next::Idle(wall_clock())));
                    }
                    self.wait(200)?;
                }
                Ok(_) => return Ok(None),
                Err(source) => {
                    return Err(CaptureError::Live(LiveError::Read { interface: self.name.clone(), source }))
                }
            }
        }
    }

    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        // The clock is read once per CLOCK_EVERY packets, and on every wait: three reads per
        // packet (22 ns each here) were 0.13 CPU s per GB at 1 Gbit/s (issue 22). --duration is
        // then late by at most CLOCK_EVERY packets, a few microseconds at that rate.
        const CLOCK_EVERY: u32 = 64;
        let mut waiting_since: Option<Instant> = None;
        loop {
            if stop_requested() || self.opts.count.is_some_and(|c| self.seen >= c) {
                self.flush_save()?;
                return Ok(Next::End);
            }
            self.until_clock = self.until_clock.saturating_sub(1);
            if self.until_clock == 0 {
                self.until_clock = CLOCK_EVERY;
                if let Some(d) = self.opts.duration {
                    if self.started.elapsed() >= d {
                        self.flush_save()?;
                        return Ok(Next::End);
                    }
                }
            }
            match self.cap.next_packet() {
                Ok(p) => {
                    // The packet stays in libpcap's ring (no copy: 1 GB of stores per GB
                    // captured): libpcap keeps it valid until the next read on the handle, and
                    // the `Packet` returned below borrows `self` until the caller is done with it.
                    self.data = std::ptr::slice_from_raw_parts(p.data.as_ptr(), p.data.len());
                    self.ts = ts_of(&p.header.ts);
                    self.orig_len = p.header.len;
                    if !save_packet(&mut self.save, &self.opts, self.ts, p.data, self.orig_len)? {
                        return Ok(Next::End);
                    }
                    break;
                }
                Err(pcap::Error::TimeoutExpired) => {
                    if waiting_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(1) {
                        return Ok(Next::Idle(wall_clock()));
                    }
                    self.wait(200)?;
                    // After a wait the --duration check is due at once.
                    self.until_clock = 1;
                }
                Err(source) => {
                    return Err(CaptureError::Live(LiveError::Read { interface: self.name.clone(), source }))
                }
            }
        }
        self.seen += 1;
        // SAFETY: `data` points into libpcap's buffer for the packet just read (set above, in
        // the iteration that broke out of the loop); nothing reads the handle again before the
        // returned packet, which borrows `self` mutably, is dropped.
        let data = unsafe { &*self.data };
        Ok(Next::Packet(Packet {
            ts: self.ts,
            linktype: self.linktype,
            data,
            orig_len: self.orig_len,
            at: None,
        }))
    }
}

/// Writes a packet to the `-w` files, if any. False when the capture is to end there (`-G` with
/// `-W N`: N files written, where tcpdump ends the capture).
fn save_packet(
    save: &mut Option<PcapWriter>,
    opts: &LiveOptions,
    ts: Timestamp,
    data: &[u8],
    orig_len: u32,
) -> Result<bool, CaptureError> {
    let Some(w) = save.as_mut() else { return Ok(true) };
    match w.write(ts, data, orig_len) {
        Ok(()) => Ok(true),
        Err(WriteError::FileLimit(_)) => {
            *save = None;
            Ok(false)
        }
        Err(WriteError::Io { path, source })
            if source.kind() == std::io::ErrorKind::PermissionDenied && opts.drop_to.is_some() =>
        {
            let user = opts.drop_to.clone().unwrap_or_default();
            let source = std::io::Error::new(
                source.kind(),
                format!(
                    "{source}; files after the first are created as the -Z user ({user}): \
                     add -W COUNT (a ring's files are all made at the start), or give -Z none"
                ),
            );
            Err(CaptureError::Write(WriteError::Io { path, source }))
        }
        Err(e) => Err(CaptureError::Write(e)),
    }
}

/// Converts a libpcap timestamp.
fn ts_of(tv: &libc::timeval) -> Timestamp {
    Timestamp::new(tv.tv_sec, (tv.tv_usec.max(0) as u64).saturating_mul(1000))
}

/// Well-known service names, for filters in an empty root (no /etc/services).
const SERVICES: [(&str, u16); 14] = [
    ("http", 80),
    ("https", 443),
    ("ssh", 22),
    ("smtp", 25),
    ("domain", 53),
    ("imap", 143),
    ("imaps", 993),
    ("pop3", 110),
    ("ftp", 21),
    ("submission", 587),
    ("smtps", 465),
    ("postgresql", 5432),
    ("mysql", 3306),
    ("http-alt", 8080),
];

/// Rewrites `port NAME` to numbers and `host localhost` to 127.0.0.1 when the files libpcap
/// would look them up in are missing (a FROM-scratch image, an empty chroot).
pub(crate) fn resolve_names(filter: &str, have_services: bool, have_hosts: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    for tok in filter.split_whitespace() {
        let prev = out.last().map(|s| s.as_str()).unwrap_or("");
        let t = if !have_services && (prev == "port" || prev == "portrange") {
            SERVICES.iter().find(|(n, _)| *n == tok).map(|(_, p)| p.to_string())
        } else if !have_hosts && prev == "host" && tok == "localhost" {
            Some("127.0.0.1".to_string())
        } else {
            None
        };
        out.push(t.unwrap_or_else(|| tok.to_string()));
    }
    out.join(" ")
}

/// Lists capture interfaces (`-D`), one per line: `N.name (description) [flags]`.
pub fn list_interfaces() -> Result<Vec<String>, LiveError> {
    let devs = pcap::Device::list().map_err(|source| LiveError::List { source })?;
    Ok(devs
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.desc {
            Some(desc) => format!("{}.{} ({})", i + 1, d.name, desc),
            None => format!("{}.{}", i + 1, d.name),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::resolve_names;

    #[test]
    fn names_resolve_only_when_the_system_cannot() {
        assert_eq!(
            resolve_names("tcp port https or dst port http", false, false),
            "tcp port 443 or dst port 80"
        );
        assert_eq!(
            resolve_names("host localhost and port 9080", false, false),
            "host 127.0.0.1 and port 9080"
        );
        assert_eq!(resolve_names("port https", true, true), "port https");
        assert_eq!(resolve_names("host https", false, false), "host https");
    }
}

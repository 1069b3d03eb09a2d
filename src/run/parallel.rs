//! `--threads N` (N > 1) on a capture file or standard input: one thread reads and decodes every
//! packet, follows shard 0 and hands each other shard worker a [`Batch`] of its segments
//! ([`dispatch`], [`shard_main`]); the calling thread merges their reports ([`analyze_parallel`])
//! in the same order as one thread would write them.

use super::merge::{Merger, Pending, XfccSeen};
use super::queue::{lazy_queue, LazyReceiver, LazySender, TrySendError};
use super::shard::shard_of;
use super::sink::Sink;
use super::worker::{EndedFlow, Input, ShardId, Worker, DEFERRED_FLOWS, ENDED_BATCH};
use super::{finish_file, Config};
use crate::capture::SharedSource;
use crate::flow::client::is_server_answer;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// mimalloc 3's `mi_option_page_reclaim_on_free` (not among libmimalloc-sys's named options).
const MI_OPTION_PAGE_RECLAIM_ON_FREE: libmimalloc_sys::mi_option_t = 35;

/// What a shard worker sends to the merging thread.
pub(super) enum Msg {
    /// Reports of ended flows and XFCC observations, then how far the worker is.
    Batch { shard: usize, done: Vec<Pending>, xfcc: Vec<XfccSeen>, processed: u64 },
    /// The worker took every batch.
    End { shard: usize, worker: Box<Worker> },
}

/// A worker thread's channels to the merging thread: its reports go out on `tx`, and the
/// reports the merger has written come back on `spent`, to be freed where they were allocated.
pub(super) struct MergerLink {
    pub(super) tx: std::sync::mpsc::SyncSender<Msg>,
    pub(super) spent: std::sync::mpsc::Receiver<Vec<Pending>>,
}

/// Packets between two batches of reports sent by a worker to the merging thread. Each batch
/// wakes that thread, which then takes a core from a worker (see bench/RESULTS.md, "every 4,096
/// packets"). 2,048 rather than 4,096: the reports a shard has sent wait in the merging thread
/// until the other shard is as far, and fewer of them wait at a time. Max RSS, mesh 1 GB bench
/// file, two threads, both with [`PURGE_DELAY_MS`] 0 (medians of 6 interleaved runs, noisy):
/// 65.0 -> 64.1 MB; context switches 8.4 K -> 10.9 K. 1,024: -0.5 MB more but 14.5-16 K
/// switches, each a wake-up of the merging thread (issue 22, session 8).
pub(super) const SHARD_BATCH: u64 = 2048;

/// mimalloc's purge delay with two threads or more (option 15, `mi_option_purge_delay`; one
/// thread keeps main.rs's 10 ms): a page emptied is returned to the system at once. Each thread
/// has its own pages of every size class, emptied and refilled at different times, so pages
/// kept 10 ms add up over the threads. Max RSS, mesh 1 GB bench file, two threads (medians of
/// 5-6 interleaved runs, bimodal with the machine's load): 69.5-70.1 -> 65.0-67.3 MB; page
/// faults 18.6 K -> 22.2 K (+3.6 K of 4 KiB, ~1 us each); task-clock within noise.
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Packets between two batches sent by the reading thread to each shard worker: small, so that
/// the batches in flight stay in the L2 cache.
pub(super) const DISPATCH_BATCH: u64 = 256;

/// A batch is sent early once its payloads reach this size: 256 packets of 64 KiB would be
/// 16 MB a batch. With [`QUEUED_BATCHES`], a worker has at most about 2 MB in flight.
pub(super) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Batches queued for a shard worker before the dispatching thread waits for it: this bounds
/// the memory in flight, and how far the fastest worker runs ahead of the slowest.
pub(super) const QUEUED_BATCHES: usize = 4;

/// A shard worker asleep for want of batches is woken once this many are queued, and the
/// dispatching thread asleep for want of room once this many places are free (see
/// [`lazy_queue`]).
pub(super) const WAKE_AT_BATCHES: usize = 2;

/// What the dispatching thread hands one shard worker for a run of packets.
#[derive(Default)]
pub(super) struct Batch {
    /// Payloads of the segments, back to back.
    pub(super) data: Vec<u8>,
    /// Read buffers holding payloads of [`EventKind::Shared`] segments (not copied into `data`).
    pub(super) shared: Vec<crate::capture::SharedBuffer>,
    /// The capture file offset of each of `shared`'s buffers ([`NO_OFFSET`] when not known),
    /// for the reassembler's read-backs (see `flow::reassembly::window`; every worker's flow
    /// table has the file, [`super::worker::Input::file`]).
    pub(super) bases: Vec<u64>,
    /// Payload bytes of the segments, in `data` or `shared`.
    pub(super) bytes: usize,
    pub(super) events: Vec<Event>,
    /// Every packet up to this number has been dispatched.
    pub(super) upto: u64,
    /// Ended flows of the reading thread's shard, for this worker to report: handed over when
    /// the worker has nothing queued (it waits for the reading thread, which has more work than
    /// it; see [`Donations`]).
    pub(super) donated: Vec<EndedFlow>,
}

/// A [`Batch::bases`] entry of a buffer not known to lie in a capture file.
const NO_OFFSET: u64 = u64::MAX;

/// One event of a [`Batch`]: what the worker does at packet `order`.
pub(super) struct Event {
    pub(super) order: u64,
    pub(super) ts: crate::wire::Timestamp,
    pub(super) kind: EventKind,
}

/// The part of a packet a shard worker needs. A worker must end idle flows at the same packet
/// as one thread would: its flow table sweeps at the first TCP packet of each new capture
/// second, whichever flow it belongs to. So besides its own segments it is told of the other
/// shards' segments whose second differs from the previous one it was told of (a sweep at a
/// packet of the same second as the one before does nothing), and of every SYN-ACK.
pub(super) enum EventKind {
    /// A segment of one of this worker's flows: its header fields (`head`, with no payload),
    /// its payload at `data[start..start + len]`.
    Segment { head: crate::decode::TcpSegment<'static>, start: u32, len: u32 },
    /// A segment of one of this worker's flows whose payload is `shared[buffer][start..start +
    /// len]`: in the reading thread's read buffer, not copied (see bench/RESULTS.md, "payloads
    /// handed to a worker are not copied").
    Shared { head: crate::decode::TcpSegment<'static>, buffer: u32, start: u32, len: u32 },
    /// Another shard's segment in a new capture second.
    Tick,
    /// Another shard's SYN-ACK, from this server (see [`KnownServers`](crate::flow::client::KnownServers)).
    Server(IpAddr, u16),
    /// The next segment paired the halves of a REDIRECTed connection: the flow's original
    /// destination (see [`RedirectPairs`](crate::flow::redirect::RedirectPairs)).
    Redirect(std::net::SocketAddr),
}

impl Worker {
    /// Reads one packet for the shard workers: counts it, decodes it, reassembles IPv4
    /// fragments, and adds each TCP segment to the batch of its flow's shard (see [`EventKind`]).
    pub(super) fn route(
        &mut self,
        pkt: &crate::capture::Packet<'_>,
        buf: &crate::capture::SharedBuffer,
        out: &mut [Batch],
        seen: &mut [Option<i64>],
    ) {
        self.take(pkt, |w, seg, ts, at| {
            w.route_segment(seg, ts, (buf, at), out, seen);
            None
        });
    }

    /// Takes a batch from the dispatching thread (a shard worker).
    pub(super) fn dispatched(&mut self, b: &Batch) {
        for e in &b.events {
            self.order = e.order;
            match e.kind {
                EventKind::Segment { head, start, len } => {
                    let payload = &b.data[start as usize..start as usize + len as usize];
                    self.segment(&crate::decode::TcpSegment { payload, ..head }, e.ts, None);
                }
                EventKind::Shared { head, buffer, start, len } => {
                    let payload = b
                        .shared
                        .get(buffer as usize)
                        .and_then(|s| s.get(start as usize..(start + len) as usize));
                    let base = b.bases.get(buffer as usize).copied().unwrap_or(NO_OFFSET);
                    let at = (base != NO_OFFSET && payload.is_some()).then(|| base + start as u64);
                    self.segment(
                        &crate::decode::TcpSegment { payload: payload.unwrap_or_default(), ..head },
                        e.ts,
                        at,
                    );
                }
                EventKind::Server(ip, port) => {
                    self.out.servers.note(ip, port);
                    self.sweep(e.ts);
                }
                EventKind::Tick => self.sweep(e.ts),
                EventKind::Redirect(o) => self.redirect_note = Some(o),
            }
        }
        self.order = b.upto;
    }

    /// Sends the merger the reports built so far and the XFCC identities seen, with
    /// [`Self::reported_upto`]; flows ended but not reported stay (see [`DEFERRED_FLOWS`]),
    /// unless this is the `last` batch. First frees what the merger wrote of ours since the last
    /// batch, here where it was allocated. `cap`: the mark sent is at most this (see
    /// [`Donations`]). Returns the mark sent, `None` when the merger is gone (output error).
    pub(super) fn send_reports(&mut self, link: &MergerLink, last: bool, cap: u64) -> Option<u64> {
        link.spent.try_iter().for_each(drop);
        if last {
            self.report_ended();
        }
        let processed = self.reported_upto().min(cap);
        let (done, xfcc) = (std::mem::take(&mut self.done), std::mem::take(&mut self.xfcc));
        link.tx.send(Msg::Batch { shard: self.out.shard, done, xfcc, processed }).ok().map(|()| processed)
    }
}

impl Worker {
    /// Follows segment `seg` here when its flow is of shard 0 (this worker's), else adds it to
    /// the batch of its shard; tells the other shards what they must know of it (see [`EventKind`]).
    /// `seen`: per shard, the capture second it was last told of (shard 0: the second this
    /// thread's table was last asked to sweep at). `buf`: the read buffer the
    /// packet lies in, with the payload's file offset when known.
    pub(super) fn route_segment(
        &mut self,
        seg: &crate::decode::TcpSegment<'_>,
        ts: crate::wire::Timestamp,
        (buf, file_at): (&crate::capture::SharedBuffer, Option<u64>),
        out: &mut [Batch],
        seen: &mut [Option<i64>],
    ) {
        let own = shard_of(seg.src, seg.sport, seg.dst, seg.dport, out.len() as u64) as usize;
        if let Some(o) = self.redirect_note.take_if(|_| own != 0) {
            out[own].events.push(Event { order: self.order, ts, kind: EventKind::Redirect(o) });
        }
        if own == 0 {
            self.segment(seg, ts, file_at);
        } else {
            self.out.servers.saw(seg);
            // The table's last sweep second only grows and is at least the second of any sweep
            // asked for: once asked for a second, asking again does nothing (~20 instructions
            // per packet of another shard: bench/misses --json --threads 2, Ir default
            // 100 MB 487.1 -> 485.6 M, cycles~ within noise).
            if let Some(s) = seen.first_mut().filter(|s| **s != Some(ts.secs)) {
                *s = Some(ts.secs);
                self.sweep(ts);
            }
        }
        let server = is_server_answer(seg);
        // Shards 1.. by index (`enumerate().skip(1)` called `nth` for every packet).
        for k in 1..out.len().min(seen.len()) {
            let (b, seen) = (&mut out[k], &mut seen[k]);
            let kind = if k == own {
                b.push_segment(self.order, seg, ts, buf, file_at);
                *seen = Some(ts.secs);
                continue;
            } else if server {
                EventKind::Server(seg.src, seg.sport)
            } else if *seen != Some(ts.secs) {
                EventKind::Tick
            } else {
                continue;
            };
            *seen = Some(ts.secs);
            b.events.push(Event { order: self.order, ts, kind });
        }
    }
}

impl Batch {
    /// Adds segment `seg` (packet `order`) of one of this batch's worker's flows: its payload
    /// handed over in the read buffer `buf` when it lies there, else copied into `data`.
    /// Not inlined: in [`Worker::route_segment`] the segment's fields, taken apart for the
    /// shard's hash, were kept in registers and on the stack and the event written field by
    /// field (~45 instructions); here it is copied whole from `seg`.
    #[inline(never)]
    fn push_segment(
        &mut self,
        order: u64,
        seg: &crate::decode::TcpSegment<'_>,
        ts: crate::wire::Timestamp,
        buf: &crate::capture::SharedBuffer,
        file_at: Option<u64>,
    ) {
        let head = crate::decode::TcpSegment { payload: &[], ..*seg };
        let len = seg.payload.len() as u32;
        self.bytes += seg.payload.len();
        // In the read buffer (not a reassembled IPv4 fragment): handed over, not copied.
        let at = (seg.payload.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let kind = if at <= buf.len() && seg.payload.len() <= buf.len() - at {
            if !self.shared.last().is_some_and(|s| std::sync::Arc::ptr_eq(s, buf)) {
                self.shared.push(buf.clone());
                // (The buffer's offset is the same for all its packets: another thread
                // holds it, so the reader does not move or reuse it.)
                self.bases.push(file_at.map_or(NO_OFFSET, |a| a - at as u64));
            }
            EventKind::Shared { head, buffer: self.shared.len() as u32 - 1, start: at as u32, len }
        } else {
            let start = self.data.len() as u32;
            self.data.extend_from_slice(seg.payload);
            EventKind::Segment { head, start, len }
        };
        self.events.push(Event { order, ts, kind });
    }
}

/// The dispatching thread: reads every packet once, follows shard 0, and sends each other
/// shard worker its batch every [`DISPATCH_BATCH`] packets. Returns the counting worker and the read error, if any.
pub(super) fn dispatch<R: SharedSource>(
    reader: &mut R,
    mut d: Worker,
    to: Vec<LazySender<Batch>>,
    free: Vec<std::sync::mpsc::Receiver<Batch>>,
    link: &MergerLink,
    mut donations: Donations,
    progress: Option<indicatif::ProgressBar>,
) -> (Worker, Option<String>) {
    // Batches for shards 1..; shard 0 is followed here.
    let mut out: Vec<Batch> = (0..=to.len()).map(|_| Batch::default()).collect();
    let mut seen = vec![None; to.len() + 1];
    // Used batches come back to be refilled: freeing and allocating them would fault their
    // pages in again every time. The one refilled is the last to come back (`spare`, per
    // worker, a stack): the others came back earlier, and their events are more often out of
    // the cache. The channel's order, oldest first: bench/misses --json --threads 2, cycles~
    // default 100 MB 297.4 -> 295.1 M (L2 misses 3.38 -> 3.30 M), mesh 100 MB 382.9 -> 379.7 M.
    let mut spare: Vec<Vec<Batch>> = to.iter().map(|_| Vec::new()).collect();
    let mut send =
        |out: &mut Vec<Batch>, d: &mut Worker, don: &mut Donations, reports: bool, last: bool| -> bool {
            let workers = out.iter_mut().skip(1).zip(&to).zip(&free).zip(&mut spare);
            for (k, (((b, to), free), spare)) in workers.enumerate() {
                spare.extend(free.try_iter());
                let mut full = std::mem::replace(b, spare.pop().unwrap_or_default());
                full.upto = d.order;
                if reports && !last && !d.ended.is_empty() && to.is_empty() {
                    don.give(k, d, &mut full);
                }
                // A worker behind: report ended flows meanwhile (see DEFERRED_FLOWS).
                loop {
                    match to.try_send(full) {
                        Ok(()) => break,
                        Err(TrySendError::Full(b)) if !d.ended.is_empty() => {
                            full = b;
                            d.report_oldest(ENDED_BATCH);
                        }
                        Err(TrySendError::Full(b)) => {
                            if to.send(b).is_err() {
                                return false;
                            }
                            break;
                        }
                        // A worker stopped: the merger is gone (output error).
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
            }
            if !reports {
                return true;
            }
            if last {
                // Every flow handed over must count in its worker's mark before this thread's
                // last one (no cap) goes to the merger.
                while don.pending() && !to.iter().any(LazySender::receiver_gone) {
                    std::thread::yield_now();
                }
            }
            d.send_reports(link, last, don.cap()).is_some()
        };
    let mut error = None;
    loop {
        match reader.next_shared() {
            Ok(Some((p, buf))) => d.route(&p, buf, &mut out, &mut seen),
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        if d.order.is_multiple_of(DISPATCH_BATCH) || out.iter().any(|b| b.bytes >= MAX_BATCH_BYTES) {
            let reports = d.order.is_multiple_of(SHARD_BATCH);
            // As in `shard_main`: what the merger wrote is freed every batch.
            link.spent.try_iter().for_each(drop);
            if !send(&mut out, &mut d, &mut donations, reports, false) {
                return (d, error);
            }
            if let Some(p) = progress.as_ref().filter(|_| reports) {
                p.set_position(reader.position());
            }
        }
    }
    send(&mut out, &mut d, &mut donations, true, true);
    (d, error)
}

/// Ended flows of the reading thread handed over to the shard workers to report, when a worker
/// has nothing queued at a [`SHARD_BATCH`] boundary: the reading thread, which also reads and
/// decodes every packet, is then the slower one, and building reports is work any thread can
/// do (a report depends only on the ended flow: see [`EndedFlow`]). The flows' shares stay
/// fixed by the hash (see [`shard_of`]); this moves flow-end work the way the load leans, by
/// the file (see bench/RESULTS.md, "Issue 22, ninth session").
///
/// The merger writes a flow only once every shard's mark has passed its end, so a flow in
/// transit must hold a mark back: this thread caps its own at the oldest flow handed over until
/// the worker says (`taken`) that the flows of that batch count in a mark it has sent.
pub(super) struct Donations {
    /// Per worker (shard k + 1): the `upto` of the last batch whose handed-over flows count in
    /// a mark it has sent.
    taken: Vec<Arc<AtomicU64>>,
    /// Per worker: (end order of the oldest flow, the batch's `upto`) of batches not yet taken.
    inflight: Vec<std::collections::VecDeque<(u64, u64)>>,
}

impl Donations {
    pub(super) fn new(workers: usize) -> (Donations, Vec<Arc<AtomicU64>>) {
        let taken: Vec<_> = (0..workers).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let inflight = (0..workers).map(|_| std::collections::VecDeque::new()).collect();
        (Donations { taken: taken.clone(), inflight }, taken)
    }

    /// Moves up to [`ENDED_BATCH`] of `d`'s oldest ended flows into `batch`, for worker `k`.
    fn give(&mut self, k: usize, d: &mut Worker, batch: &mut Batch) {
        let n = d.ended.len().min(ENDED_BATCH);
        batch.donated.extend(d.ended.drain(..n));
        if let Some(oldest) = batch.donated.first() {
            self.inflight[k].push_back((oldest.end_order, batch.upto));
        }
    }

    /// The highest mark this thread may send: below every flow still in transit.
    fn cap(&mut self) -> u64 {
        for (q, taken) in self.inflight.iter_mut().zip(&self.taken) {
            let taken = taken.load(Ordering::Acquire);
            while q.front().is_some_and(|&(_, upto)| upto <= taken) {
                q.pop_front();
            }
        }
        // Flows are handed over oldest first: each queue's front is its oldest.
        self.inflight
            .iter()
            .filter_map(|q| q.front())
            .map(|&(oldest, _)| oldest.saturating_sub(1))
            .min()
            .unwrap_or(u64::MAX)
    }

    fn pending(&mut self) -> bool {
        self.cap() != u64::MAX
    }
}

/// One shard worker: follows the flows of its shard from the batches it is sent, and sends
/// their reports on. The flows still open at the end stay in the worker, which is sent back
/// whole: the merging thread ends them across all shards in first-packet order, a batch at a
/// time.
pub(super) fn shard_main(
    mut w: Worker,
    batches: LazyReceiver<Batch>,
    free: std::sync::mpsc::Sender<Batch>,
    link: MergerLink,
    taken: Arc<AtomicU64>,
) {
    let shard = w.out.shard;
    // The mark last sent to the merger.
    let mut mark = 0;
    loop {
        let mut b = match batches.try_recv() {
            Some(b) => b,
            // Nothing to read yet: report ended flows meanwhile (see DEFERRED_FLOWS).
            None if !w.ended.is_empty() => {
                w.report_oldest(ENDED_BATCH);
                continue;
            }
            None => match batches.recv() {
                Some(b) => b,
                None => break,
            },
        };
        if let Some(oldest) = b.donated.first().map(|e| e.end_order) {
            b.donated.drain(..).for_each(|e| w.adopt(e));
            // The mark the merger has from here may be past the oldest flow adopted (the
            // reading thread held its own back until now): send a lower one first.
            if mark >= oldest {
                match w.send_reports(&link, false, u64::MAX) {
                    Some(m) => mark = m,
                    None => return, // the merger stopped (output error)
                }
            }
            taken.store(b.upto, Ordering::Release);
        }
        // What the merger wrote is freed before this batch's flows are reported (not only
        // with the next reports): their blocks are taken again sooner, more often in cache.
        // bench/misses --json --threads 2 (with the reading thread's): cycles~ default 100 MB
        // 295.1 -> 293.7 M (L2 misses 3.30 -> 3.26 M), mesh 100 MB 379.7 -> 378.8 M.
        link.spent.try_iter().for_each(drop);
        w.dispatched(&b);
        if w.order.is_multiple_of(SHARD_BATCH) {
            match w.send_reports(&link, false, u64::MAX) {
                Some(m) => mark = m,
                None => return, // the merger stopped (output error)
            }
        }
        b.data.clear();
        b.events.clear();
        b.shared.clear(); // the reading thread may reuse these buffers
        b.bases.clear();
        b.bytes = 0;
        let _ = free.send(b);
    }
    if w.send_reports(&link, true, u64::MAX).is_some() {
        let _ = link.tx.send(Msg::End { shard, worker: Box::new(w) });
    }
}

/// `--threads N` (N > 1) on a capture file or standard input: one thread reads and decodes the
/// packets and hands each of N workers the segments of the flows hashed to it; this thread
/// merges their reports in the order the flows ended (the same order as one thread) and writes
/// them. One reader rather than every worker reading and decoding the whole file: see
/// bench/RESULTS.md, "one thread reads and decodes every packet".
pub(super) fn analyze_parallel<R: SharedSource>(
    mut reader: R,
    cfg: &Config,
    base: u64,
    tally: &mut super::Tally,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<()> {
    let shards = cfg.threads.max(1) as u64;
    // mimalloc 3 gives a full page that a block is freed from back to the thread that filled
    // it (`mi_option_page_reclaim_on_free` 0): each thread then keeps its own partly used pages
    // of every size class (a worker fills pages with the reports it builds, and frees them once
    // the merger has written them). With -1 such a page goes back to the pages any thread may
    // take. Max RSS, mesh 1 GB bench file, two threads (medians of 5-6 interleaved runs): 74.3
    // -> 71.9 MB; instructions (mesh 100 MB, all threads) +0.5% (659.2-660.2 M -> 663.5-663.7 M).
    // Not with one thread: RSS +0.2 MB, instructions +1.1%.
    // SAFETY: sets a process-wide allocator option while no other thread of this process
    // exists (the threads of a previous input were joined with their scope, and tlspeek starts
    // none elsewhere); without mimalloc as the global allocator (unit tests) it changes nothing.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PAGE_RECLAIM_ON_FREE, -1) };
    // SAFETY: as above (see PURGE_DELAY_MS).
    unsafe { libmimalloc_sys::mi_option_set(15, PURGE_DELAY_MS) };
    let name = reader.name().to_string();
    let nanos = reader.nanosecond_precision();
    let render = sink.render_mode();
    let progress = cfg.progress.then(|| crate::report::progress::bar(reader.total_len()));
    let mut m = Merger::new(false);
    m.spent = Some(Vec::new());
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(2 * shards as usize);
    let mut back = Vec::new();
    let mut workers: Vec<Option<Box<Worker>>> = (0..shards).map(|_| None).collect();
    let file = reader.file();
    let input = Input { name: &name, nanos, live: false, base, file: file.as_ref() };
    let mut d = Worker::new(cfg, &input, ShardId { index: 0, count: shards }, render);
    d.counting = true;
    d.defer = DEFERRED_FLOWS;
    let result = std::thread::scope(|scope| -> io::Result<Option<String>> {
        // Dropped on an output error, which stops the workers and then the dispatcher.
        let rx = rx;
        let (mut to, mut free) = (Vec::new(), Vec::new());
        let (donations, mut taken) = Donations::new(shards as usize - 1);
        let (back_tx, back_rx) = std::sync::mpsc::channel();
        back.push(back_tx);
        for i in 1..shards {
            let mut w = Worker::new(cfg, &input, ShardId { index: i, count: shards }, render);
            w.defer = DEFERRED_FLOWS;
            let (batch_tx, batch_rx) = lazy_queue(QUEUED_BATCHES, WAKE_AT_BATCHES);
            let (free_tx, free_rx) = std::sync::mpsc::channel();
            let (back_tx, back_rx) = std::sync::mpsc::channel();
            to.push(batch_tx);
            free.push(free_rx);
            back.push(back_tx);
            let link = MergerLink { tx: tx.clone(), spent: back_rx };
            let taken = taken.remove(0);
            scope.spawn(move || shard_main(w, batch_rx, free_tx, link, taken));
        }
        let bar = progress.clone();
        let reader = &mut reader;
        let dispatcher = scope.spawn(move || {
            let link = MergerLink { tx, spent: back_rx };
            let (d, error) = dispatch(reader, d, to, free, &link, donations, bar);
            let _ = link.tx.send(Msg::End { shard: 0, worker: Box::new(d) });
            error
        });
        let mut marks = vec![0u64; shards as usize];
        for msg in rx.iter() {
            match msg {
                Msg::Batch { shard, mut done, mut xfcc, processed } => {
                    m.add(&mut done, &mut xfcc);
                    marks[shard] = processed;
                }
                Msg::End { shard, worker } => {
                    marks[shard] = u64::MAX;
                    workers[shard] = Some(worker);
                }
            }
            let processed = marks.iter().copied().min().unwrap_or(0);
            m.release(processed, tally, sink, &cfg.mesh)?;
            if let Some(spent) = m.spent.as_mut().filter(|v| !v.is_empty()) {
                let mut per: Vec<Vec<Pending>> = (0..back.len()).map(|_| Vec::new()).collect();
                for p in spent.drain(..) {
                    per[p.shard].push(p);
                }
                for (to, v) in back.iter().zip(per) {
                    if !v.is_empty() {
                        let _ = to.send(v); // a worker that has ended: dropped here
                    }
                }
            }
        }
        Ok(dispatcher.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    });
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let error = result?;
    m.spent = None; // the workers have ended: nothing to send back
    m.release(u64::MAX, tally, sink, &cfg.mesh)?;
    let mut ended: Vec<&mut Worker> = workers.iter_mut().flatten().map(|w| &mut **w).collect();
    m.end_input(&mut ended, tally, sink, &cfg.mesh)?;
    for w in workers.iter().flatten() {
        w.add_counts(&mut tally.summary);
    }
    let skipped = workers[0].as_mut().map(|w| std::mem::take(&mut w.skipped)).unwrap_or_default();
    finish_file(&name, &skipped, error, cfg, &mut tally.summary, diag)
}

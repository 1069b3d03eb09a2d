//! Flow tracking over one capture or one shard of it ([`Worker`]): packets are counted and
//! decoded, IPv4 fragments reassembled, segments given to the flow table; ended flows are kept
//! ([`EndedFlow`]) and reported in batches ([`Pending`]) for the merger, rendered for
//! the sink when the XFCC confirmation cannot change them. What the `--threads` dispatching
//! adds to a worker is in [`super::parallel`].

use super::merge::{Counted, Pending, XfccSeen};
use super::shard::{share_units, READER_UNITS, SHARE_UNITS};
use super::sink::{RenderMode, Rendered};
use super::Config;
use crate::classify::{ClassifyConfig, FlowClassifier};
use crate::decode::defrag::Defragmenter;
use crate::decode::{decode_any, decode_tcp, is_supported_linktype, plain_ethernet_tcp, Decoded, NonTcp};
use crate::flow::client::{decide_client, KnownServers};
use crate::flow::redirect::{Redirect, RedirectPairs};
use crate::flow::{FlowMeta, FlowTable};
use crate::mesh;
use crate::mesh::readings::CountRecord;
use crate::record::FlowReport;
use crate::report::{json, table, Summary};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Flow tracking over one capture, or over one shard of it (`--threads`: the dispatching
/// thread reads and decodes every packet and hands each worker the segments of the flows whose
/// 4-tuple hashes to its shard, see [`Worker::route`]). The counters of what is not a TCP flow
/// are kept by the worker that reads the packets.
pub(super) struct Worker {
    pub(super) out: FlowOut,
    pub(super) live: bool,
    pub(super) classify: ClassifyConfig,
    /// This worker reads the packets and counts them (one thread, or the dispatcher).
    pub(super) counting: bool,
    pub(super) table: FlowTable<FlowClassifier>,
    pub(super) defrag: Defragmenter,
    pub(super) skipped: BTreeMap<u32, u64>,
    pub(super) non_tcp: BTreeMap<NonTcp, u64>,
    /// UDP flows per endpoint pair (reading worker).
    pub(super) udp: crate::flow::udp::UdpBook,
    /// Number of the current packet (for a shard: the packet of its last segment, then the last
    /// packet dispatched), counting from `base`.
    pub(super) order: u64,
    /// Packets of the inputs read before this one.
    pub(super) base: u64,
    /// Captured bytes seen.
    pub(super) bytes: u64,
    /// Flows ended but not yet reported, oldest first, reported [`ENDED_BATCH`] at a time (see
    /// [`EndedFlow`]).
    pub(super) ended: std::collections::VecDeque<EndedFlow>,
    /// How many ended flows may wait: [`ENDED_BATCH`], or [`DEFERRED_FLOWS`] for the threads
    /// of `--threads`, which report them when they would otherwise wait for each other.
    pub(super) defer: usize,
    pub(super) done: Vec<Pending>,
    pub(super) xfcc: Vec<XfccSeen>,
    /// Halves of REDIRECTed connections on loopback, paired into one flow (reading worker).
    pub(super) redirects: RedirectPairs,
    /// The original destination of the next segment's flow, when that segment paired halves.
    pub(super) redirect_note: Option<std::net::SocketAddr>,
}

/// A flow taken out of the table, to be reported with others ([`Worker::report_ended`]).
/// Building and rendering a report runs a lot of code once per flow: batched, it stays in the
/// instruction cache instead of pushing the packet path out, and the next flows' cold memory is
/// prefetched while one is reported (see bench/RESULTS.md, "reported 32 at a time"). What
/// depends on later packets (the servers known so far) is decided when the flow ends.
pub(super) struct EndedFlow {
    pub(super) end_order: u64,
    pub(super) hint: Option<(crate::wire::Side, crate::flow::client::ClientBy)>,
    pub(super) meta: FlowMeta,
    pub(super) c: FlowClassifier,
}

/// Flows ended before their reports are built together (a flow ends every 32 packets on the
/// benchmark). Their state stays alive that long outside the table's limits: this many flows
/// per worker ([`DEFERRED_FLOWS`] with `--threads`), or all the flows one idle sweep ends.
pub(super) const ENDED_BATCH: usize = 32;

/// With `--threads`, ended flows a thread may keep before it reports the oldest: reporting
/// (building and rendering the reports, a quarter of a worker's time) is the work a thread does
/// when it would otherwise wait: the reading thread for a full queue, a worker for an empty one,
/// which absorbs the swings of load between shards (see bench/RESULTS.md, "keeps up to 64 ended
/// flows": 32, 64 and 128 alike in wall time). Each kept flow holds its state until then; the
/// merger can only write flows that ended before the oldest kept one. 32 rather than 64: max
/// RSS, mesh 1 GB bench file, two threads, 4 alternating runs: the table 63.2-63.7 -> 62.8-63.1
/// MiB, `--json` 61.0-62.4 -> 60.4-60.9 MiB (issue 22, twelfth session: RSS was the limit
/// nearest to being broken).
pub(super) const DEFERRED_FLOWS: usize = 32;

/// What turning an ended flow into a report needs, besides the flow.
pub(super) struct FlowOut {
    /// Input name (the report's `source`).
    pub(super) name: std::sync::Arc<str>,
    pub(super) nanos: bool,
    pub(super) cert_warn: i64,
    pub(super) mesh_mode: mesh::MeshMode,
    pub(super) servers: KnownServers,
    pub(super) render: RenderMode,
    pub(super) shard: usize,
    /// Counting a flow whose output is rendered here reads its [`CountRecord`] only, unless
    /// the record says otherwise: no `--metrics`, `--html`, or what
    /// [`CountRecord::reads_reports`] names.
    pub(super) count_records: bool,
}

/// The input a [`Worker`] follows.
pub(super) struct Input<'a> {
    /// File or interface name (the reports' `source`).
    pub(super) name: &'a str,
    /// Timestamps carry nanoseconds.
    pub(super) nanos: bool,
    /// A live capture: flows are announced as soon as they are classified.
    pub(super) live: bool,
    /// Packets of the inputs read before this one.
    pub(super) base: u64,
    /// The capture file that packets' offsets point into ([`crate::capture::Packet::at`]):
    /// the flow table reads delivered bytes back from it.
    pub(super) file: Option<&'a std::sync::Arc<std::fs::File>>,
}

/// Which shard of how many a [`Worker`] follows (0 of 1: every flow).
#[derive(Clone, Copy)]
pub(super) struct ShardId {
    pub(super) index: u64,
    pub(super) count: u64,
}

/// What the flows the table ends now are queued with: how to report them later, and the number
/// of the packet at which they end (unlike [`EndedFlow`], one flow waiting for its report).
#[derive(Clone, Copy)]
pub(super) struct EndContext<'a> {
    pub(super) out: &'a FlowOut,
    pub(super) end_order: u64,
}

/// A worker's line buffer is given back after a line longer than this (a flow with a thousand
/// recorded requests can make a multi-megabyte line).
pub(super) const MAX_KEPT_LINE: usize = 1 << 20;

/// A line at least this long whose buffer it fills at least half of is handed over in that
/// buffer (see [`line_out`]).
const HANDED_LINE: usize = 4096;

/// The line rendered in `line`, for the merger. A long line that fills at least half of its
/// buffer is handed over in it, and `line` gets a new buffer half as large again as that line
/// (the next long lines fit; the new buffer is not in cache, but neither is the block a copy
/// goes to); any other line is copied at its size. The copy was most of the instructions added
/// by rendering in the workers (the merger renders one thread's lines straight into its
/// output buffer), and a line written to a fresh block is written out of cache either way.
/// Half the buffer unused at most is what mimalloc itself keeps when a block is shrunk in
/// place. bench/misses --json --threads 2: cycles~ default 100 MB 293.7 -> 291.4 M (Ir 485.1
/// -> 481.1 M), mesh 100 MB 378.8 -> 370.3 M (Ir 624.2 -> 610.3 M, D1 misses 9.14 -> 8.69 M);
/// max RSS (3 runs each) default 27.6-28.1 -> 28.0-28.2 MB, mesh 38.2-39.0 -> 38.9-39.2 MB.
/// Handing over lines that fill two thirds of their buffer, with new buffers a quarter larger
/// than the line: default 293.3 M, mesh 377.3 M. Not inlined: inlined, the one-thread run
/// (which does not call it) changed, mesh 100 MB cycles~ 292.3 -> 292.7 M (D1 misses +0.05 M).
#[inline(never)]
pub(super) fn line_out(line: &mut Vec<u8>) -> Vec<u8> {
    let (len, cap) = (line.len(), line.capacity());
    if len >= HANDED_LINE && cap <= 2 * len {
        let next = len + len / 2;
        let next = if next > MAX_KEPT_LINE { Vec::new() } else { Vec::with_capacity(next) };
        return std::mem::replace(line, next);
    }
    let out = line.as_slice().to_vec();
    if line.capacity() > MAX_KEPT_LINE {
        *line = Vec::new(); // not kept for the thread's life after a huge flow
    }
    out
}

/// Queues a flow the table just ended: what it is reported with later is decided now.
pub(super) fn queue_ended(
    e: EndContext<'_>,
    meta: FlowMeta,
    c: FlowClassifier,
    ended: &mut std::collections::VecDeque<EndedFlow>,
) {
    let hint = c
        .client_hint()
        .or_else(|| e.out.servers.client_of(&meta).map(|s| (s, crate::flow::client::ClientBy::KnownServer)));
    let e = EndedFlow { end_order: e.end_order, hint, meta, c };
    // In end order (`reported_upto` reads the front): a flow adopted from the reading thread
    // may have ended after this worker's own next ones (see `Worker::adopt`).
    if ended.back().is_some_and(|b| b.end_order > e.end_order) {
        let at = ended.partition_point(|x| x.end_order <= e.end_order);
        ended.insert(at, e);
    } else {
        ended.push_back(e);
    }
}

/// The file offset of `payload`, a slice of `data`, which lies at offset `at`.
#[inline(always)]
fn file_offset(at: u64, data: &[u8], payload: &[u8]) -> u64 {
    at + (payload.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize) as u64
}

/// Reports one ended flow: its report, with certificate warnings, goes to `done`.
pub(super) fn report_flow(
    out: &FlowOut,
    EndedFlow { end_order, hint, meta, mut c }: EndedFlow,
    done: &mut Vec<Pending>,
) {
    let (client, _) = decide_client(&meta, hint);
    let port = meta.endpoints[client.other().idx()].port();
    let (first, last, order) = (meta.first_ts.as_f64(), meta.last_ts.as_f64(), meta.order);
    c.share_xfcc();
    let mut classified = c.finish(client);
    classified.client_hint = classified.client_hint.or(hint);
    let mut report = FlowReport::build_boxed(meta, classified, &out.name, out.nanos);
    mesh::annotate(&mut report, out.cert_warn, out.mesh_mode);
    let confirm = mesh::may_confirm(&report);
    let rendered = match out.render {
        _ if confirm => Rendered::No,
        RenderMode::None | RenderMode::Count => Rendered::No,
        RenderMode::Json => {
            thread_local! {
                // Rendered here, then copied at its size or handed over ([`line_out`]): a line
                // grown in its own buffer was reallocated up to four times (half the lines are
                // over 1.5 KB, a tenth over 6.5 KB), each time into memory not in cache.
                static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            LINE.with_borrow_mut(|line| {
                line.clear();
                json::render_flow(line, &report);
                Rendered::Json(line_out(line))
            })
        }
        RenderMode::Row(opts) => Rendered::Row(Box::new(table::render(&report, opts))),
    };
    // The merger needs no more of a flow whose output is rendered (or not written at all) than
    // what counting reads of it, taken here while the report is in cache.
    let counted = !confirm && (out.render == RenderMode::Count || !matches!(rendered, Rendered::No));
    let record = (counted && out.count_records).then(|| CountRecord::of(&report));
    let flow = match record.filter(|r| !r.needs_report(&report)) {
        Some(r) => {
            FlowReport::recycle(report);
            Counted::Record(Box::new(r))
        }
        None => {
            if counted {
                mesh::thin_for_count(&mut report);
            }
            Counted::Report(report)
        }
    };
    let shard = out.shard;
    done.push(Pending { flow, order, end_order, port, first, last, rendered, shard });
}

impl Worker {
    pub(super) fn new(cfg: &Config, input: &Input<'_>, shard: ShardId, render: RenderMode) -> Worker {
        let Input { name, nanos, live, base, file } = *input;
        let ShardId { index: shard, count: shards } = shard;
        // The limits are shared out like the flows (see `shard_of`).
        let share = |total: usize| {
            let units = share_units(shards);
            let mine = match (shards, shard) {
                (1, _) => units,
                (_, 0) => READER_UNITS,
                _ => SHARE_UNITS,
            };
            (total as u128 * u128::from(mine) / u128::from(units)) as usize
        };
        let mut limits = cfg.limits;
        limits.max_flows = share(limits.max_flows).max(1);
        limits.max_total_bytes = share(limits.max_total_bytes).max(limits.max_queue_bytes);
        let mut table = FlowTable::new(limits);
        if let Some(f) = file {
            table.set_source(f.clone());
        }
        Worker {
            counting: shards == 1,
            out: FlowOut {
                name: name.into(),
                nanos,
                cert_warn: cfg.mesh.cert_warn_secs,
                mesh_mode: cfg.mesh.mode,
                servers: KnownServers::default(),
                render,
                shard: shard as usize,
                count_records: cfg.metrics.is_none()
                    && cfg.html.is_none()
                    && !CountRecord::reads_reports(&cfg.mesh),
            },
            live,
            classify: cfg.classify.clone(),
            table,
            defrag: Defragmenter::default(),
            skipped: BTreeMap::new(),
            non_tcp: BTreeMap::new(),
            udp: Default::default(),
            order: base,
            base,
            bytes: 0,
            ended: std::collections::VecDeque::new(),
            defer: ENDED_BATCH,
            done: Vec::new(),
            xfcc: Vec::new(),
            redirects: RedirectPairs::default(),
            redirect_note: None,
        }
    }

    /// Takes one packet; returns a live `classified` report when a flow just told what it is.
    #[inline(always)]
    pub(super) fn packet(&mut self, pkt: &crate::capture::Packet<'_>) -> Option<FlowReport> {
        self.take(pkt, |w, seg, ts, at| w.segment(seg, ts, at))
    }

    /// Applies the REDIRECT pairing to a segment (see [`RedirectPairs::apply`]), noting a pair
    /// just made.
    #[inline(always)]
    fn redirect(&mut self, seg: &mut crate::decode::TcpSegment<'_>, ts: crate::wire::Timestamp) {
        if let Redirect::Paired(o) = self.redirects.apply(seg, ts.secs) {
            self.redirect_note = Some(o);
        }
    }

    /// Counts and decodes one packet, reassembles IPv4 fragments, and gives each TCP segment to
    /// `tcp` (its report is returned when the packet itself was the segment).
    #[inline(always)]
    pub(super) fn take(
        &mut self,
        pkt: &crate::capture::Packet<'_>,
        mut tcp: impl FnMut(
            &mut Worker,
            &crate::decode::TcpSegment<'_>,
            crate::wire::Timestamp,
            Option<u64>,
        ) -> Option<FlowReport>,
    ) -> Option<FlowReport> {
        self.order += 1;
        self.bytes += pkt.data.len() as u64;
        if let Some(mut seg) = plain_ethernet_tcp(pkt.linktype, pkt.data, pkt.orig_len) {
            // Nearly every packet (what `decode` would give, without the enum between).
            self.redirect(&mut seg, pkt.ts);
            // (The payload is a slice of the packet's data: no test of that.)
            let at = pkt.at.map(|a| file_offset(a, pkt.data, seg.payload));
            return tcp(self, &seg, pkt.ts, at);
        }
        if !is_supported_linktype(pkt.linktype) {
            *self.skipped.entry(pkt.linktype).or_default() += 1;
            return None;
        }
        // The other frames (`decode` without its first look, already taken above).
        match decode_any(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Tcp(mut seg) => {
                self.redirect(&mut seg, pkt.ts);
                let at = Self::payload_at(pkt, seg.payload);
                tcp(self, &seg, pkt.ts, at)
            }
            Decoded::Fragment(frag) => {
                let d = self.defrag.push(&frag, pkt.ts)?;
                if d.proto == 6 {
                    let (src, dst) = (IpAddr::V4(Ipv4Addr::from(d.src)), IpAddr::V4(Ipv4Addr::from(d.dst)));
                    if let Decoded::Tcp(mut seg) = decode_tcp(src, dst, &d.payload, d.payload.len()) {
                        self.redirect(&mut seg, pkt.ts);
                        // (Built in the defragmenter's buffer: not at a place in the file.)
                        tcp(self, &seg, pkt.ts, None);
                    }
                } else {
                    *self
                        .non_tcp
                        .entry(if d.proto == 17 { NonTcp::Udp } else { NonTcp::OtherIp })
                        .or_default() += 1;
                }
                None
            }
            Decoded::Udp(u) => {
                *self.non_tcp.entry(NonTcp::Udp).or_default() += 1;
                self.udp.saw(&u);
                None
            }
            Decoded::Other(k) => {
                *self.non_tcp.entry(k).or_default() += 1;
                None
            }
        }
    }

    /// The file offset of `payload`, a slice of `pkt`'s data, when `pkt` lies in a capture file
    /// (see [`crate::capture::Packet::at`]).
    #[inline(always)]
    pub(super) fn payload_at(pkt: &crate::capture::Packet<'_>, payload: &[u8]) -> Option<u64> {
        let a = pkt.at?;
        let off = (payload.as_ptr() as usize).wrapping_sub(pkt.data.as_ptr() as usize);
        if off > pkt.data.len() || payload.len() > pkt.data.len() - off {
            return None;
        }
        Some(file_offset(a, pkt.data, payload))
    }

    /// Follows segment `seg`, whose payload lies at offset `at` of the capture file if known
    /// (see [`Self::payload_at`]).
    pub(super) fn segment(
        &mut self,
        seg: &crate::decode::TcpSegment<'_>,
        ts: crate::wire::Timestamp,
        at: Option<u64>,
    ) -> Option<FlowReport> {
        self.out.servers.saw(seg);
        let w = EndContext { out: &self.out, end_order: self.order };
        let ccfg = &self.classify;
        let ended = &mut self.ended;
        let slot = self.table.process_at(
            seg,
            at,
            ts,
            self.order,
            &mut || FlowClassifier::new(ccfg.clone()),
            &mut |m, c| queue_ended(w, m, c, ended),
        );
        if let (Some(o), Some(p)) = (self.redirect_note.take(), slot) {
            self.table.set_original_dst(p.slot, o);
        }
        if self.ended.len() >= self.defer {
            // Down to the last ENDED_BATCH below the limit (all of them when it is ENDED_BATCH).
            self.report_oldest(self.ended.len() + ENDED_BATCH - self.defer);
        }
        // A segment that was not fed to the flow (a bare ACK, or a direction whose classifier is
        // done: most packets) cannot have brought a request or a classification: the classifier,
        // in cache lines of its own, is not read.
        let p = slot.filter(|p| p.fed)?;
        let c = self.table.sink_mut(p.slot)?;
        let xfcc = c.take_xfcc();
        let newly = self.live && c.take_newly_classified();
        if xfcc.is_none() && !newly {
            // (Most fed segments: the flow's metadata, on other cache lines, is not read.)
            return None;
        }
        let (meta, c) = self.table.flow_mut(p.slot)?;
        if let Some((uri, by)) = xfcc {
            let (client, _) = decide_client(meta, c.client_hint());
            let (ce, se) = (meta.endpoints[client.idx()], meta.endpoints[client.other().idx()]);
            if ce.ip().is_loopback() || se.ip().is_loopback() {
                self.xfcc.push((se.port(), ts.as_f64(), uri, by));
            }
        }
        if newly {
            let (client, _) = decide_client(meta, c.client_hint());
            let mut f = FlowReport::build(meta.clone(), c.snapshot(client), &self.out.name, self.out.nanos);
            f.event = crate::record::Event::Classified;
            mesh::annotate(&mut f, self.out.cert_warn, self.out.mesh_mode);
            return Some(f);
        }
        None
    }

    /// Ends the flows idle at `now` (as of packet `self.order`); also for a live capture with
    /// no traffic.
    pub(super) fn sweep(&mut self, now: crate::wire::Timestamp) {
        let w = EndContext { out: &self.out, end_order: self.order };
        let ended = &mut self.ended;
        self.table.maybe_sweep(now, &mut |m, c| queue_ended(w, m, c, ended));
    }

    /// Builds the reports of the flows ended so far (see [`EndedFlow`]).
    pub(super) fn report_ended(&mut self) {
        self.report_oldest(usize::MAX);
    }

    /// Builds the reports of the `n` oldest flows ended so far (see [`EndedFlow`]).
    pub(super) fn report_oldest(&mut self, n: usize) {
        let n = n.min(self.ended.len());
        for (i, e) in self.ended.iter().take(n.min(3)).enumerate() {
            (0..3 - i as u8).for_each(|stage| e.c.prefetch(stage));
        }
        for left in (0..n).rev() {
            let Some(e) = self.ended.pop_front() else { break };
            // Three flows ahead: the sessions; two ahead: their lists; the next: the contents.
            for (k, stage) in [(2, 0), (1, 1), (0, 2)] {
                if let Some(next) = self.ended.get(k).filter(|_| k < left) {
                    next.c.prefetch(stage);
                }
            }
            report_flow(&self.out, e, &mut self.done);
        }
    }

    /// The last packet up to which every flow that ended has been reported (the merger can
    /// write the flows of any shard that ended up to there).
    pub(super) fn reported_upto(&self) -> u64 {
        // (A flow handed over by the reading thread may have ended after this worker's
        // `order`: never more than `order`.)
        self.ended.front().map_or(self.order, |e| e.end_order.saturating_sub(1).min(self.order))
    }

    /// Takes an ended flow of another shard to report (see [`super::parallel::Batch::donated`]):
    /// kept in end order with this worker's own.
    pub(super) fn adopt(&mut self, e: EndedFlow) {
        let at = self.ended.partition_point(|x| x.end_order <= e.end_order);
        self.ended.insert(at, e);
    }

    /// Ends the open flows whose first packet is number `last` or earlier (end of input).
    pub(super) fn end_open_up_to(&mut self, last: u64) -> usize {
        let w = EndContext { out: &self.out, end_order: self.order + 1 };
        let ended = &mut self.ended;
        self.table.end_open_up_to(last, &mut |m, c| queue_ended(w, m, c, ended))
    }

    /// Adds the counters of this worker to the summary.
    pub(super) fn add_counts(&self, summary: &mut Summary) {
        summary.evicted_flows += self.table.stats.evicted;
        summary.late_packets += self.table.stats.late_packets;
        if self.counting {
            summary.packets += self.order - self.base;
            summary.bytes += self.bytes;
            summary.ip_fragments.reassembled += self.defrag.completed;
            summary.ip_fragments.dropped += self.defrag.dropped + self.defrag.incomplete() as u64;
            for (k, v) in &self.non_tcp {
                *summary.non_tcp.entry(k.key()).or_default() += v;
            }
            summary.udp_book.merge(&self.udp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of `len` bytes in a buffer of at least `cap`.
    fn rendered(len: usize, cap: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(cap);
        v.extend((0..len).map(|i| i as u8));
        v
    }

    #[test]
    fn a_long_line_filling_half_its_buffer_is_handed_over_and_the_buffer_replaced() {
        let mut line = rendered(5000, 8000);
        let (ptr, cap) = (line.as_ptr(), line.capacity());
        let out = line_out(&mut line);
        assert_eq!((out.as_ptr(), out.capacity(), out.len()), (ptr, cap, 5000));
        assert_eq!(out, rendered(5000, 0));
        assert!(line.is_empty());
        assert!(line.capacity() >= 7500, "{}", line.capacity());
    }

    #[test]
    fn a_short_line_or_one_in_a_much_larger_buffer_is_copied_and_the_buffer_kept() {
        for (len, cap) in [(100, 150), (4095, 4096), (5000, 20_000)] {
            let mut line = rendered(len, cap);
            let (ptr, cap) = (line.as_ptr(), line.capacity());
            let out = line_out(&mut line);
            assert_eq!(out, rendered(len, 0));
            assert_ne!(out.as_ptr(), ptr);
            assert_eq!((line.as_ptr(), line.capacity(), line.len()), (ptr, cap, len));
        }
    }

    #[test]
    fn after_a_huge_line_no_buffer_is_kept() {
        let mut line = rendered(MAX_KEPT_LINE, MAX_KEPT_LINE + 10);
        let out = line_out(&mut line);
        assert_eq!(out.len(), MAX_KEPT_LINE);
        assert_eq!(line.capacity(), 0);
        let mut line = rendered(10, MAX_KEPT_LINE + 10);
        assert_eq!(line_out(&mut line).len(), 10);
        assert_eq!(line.capacity(), 0);
    }
}

//! The flow table: TCP connections keyed by their 4-tuple, each direction reassembled
//! ([`reassembly`]) and handed in order to a [`StreamSink`] (the classifier).
//!
//! Owns flow lifetime and every memory limit of the pipeline except the classifiers' own
//! per-side buffers: how many flows exist ([`Limits::max_flows`], least recently active
//! evicted first, flagged `evicted`), how many out-of-order bytes wait per direction and in total,
//! and when idle or closed flows end. A new SYN after FIN/RST on the same tuple starts a new flow.

pub mod client;
mod index;
pub(crate) mod reassembly;
pub(crate) mod redirect;
pub(crate) mod udp;

use crate::decode::{tcp_flags, TcpSegment};
use crate::wire::{Feed, Side, Timestamp};
use index::FlowIndex;
use reassembly::{Chunk, HalfStats, ReadBack, Reassembler};
use std::net::{IpAddr, SocketAddr};

/// Memory and time limits of the flow table (shown in `--help`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Flows tracked at once; beyond it the least recently active are evicted.
    pub max_flows: usize,
    /// Out-of-order bytes queued per direction.
    pub max_queue_bytes: usize,
    /// Bytes buffered over all flows: out-of-order segments and the classifiers' partial
    /// messages.
    pub max_total_bytes: usize,
    /// Seconds (capture time) without packets after which a flow ends.
    pub idle_timeout_secs: i64,
    /// Seconds (capture time) a flow closed by FIN/RST stays to absorb late packets.
    pub close_linger_secs: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_flows: 100_000,
            max_queue_bytes: 512 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
            idle_timeout_secs: 300,
            close_linger_secs: 5,
        }
    }
}

/// Consumer of reassembled stream bytes (implemented by the classifier).
pub trait StreamSink {
    /// In-order bytes sent by `side`, completed by a packet seen at `ts`.
    fn data(&mut self, side: Side, bytes: &[u8], ts: Timestamp) -> Feed;
    /// `lost` bytes sent by `side` were never captured.
    fn gap(&mut self, side: Side, lost: u32) -> Feed;
    /// Bytes the consumer holds in buffers (for the global memory limit).
    fn buffered(&self) -> usize {
        0
    }
    /// Memory pressure: drop every partial buffer (the consumer resynchronises later).
    fn shed(&mut self) {}
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// FIN from both sides, or RST.
    Closed,
    /// No packets for the idle timeout.
    Idle,
    /// Evicted because the flow table was full.
    Evicted,
    /// The capture ended with the flow open.
    CaptureEnd,
    /// A new SYN reused the tuple.
    Reused,
}

/// What the flow layer knows about one connection.
///
/// `repr(C)`, the fields every packet updates first: with [`Flow`]'s layout they share the
/// slot's first cache line (see there).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct FlowMeta {
    /// Last packet.
    pub(crate) last_ts: Timestamp,
    /// Packets sent by each side.
    pub(crate) packets: [u64; 2],
    /// TCP payload bytes (on the wire) sent by each side.
    pub(crate) bytes: [u64; 2],
    /// FIN seen from each side.
    pub(crate) fin: [bool; 2],
    /// RST seen from each side.
    pub(crate) rst: [bool; 2],
    /// Side that sent a SYN without ACK.
    pub(crate) syn_from: Option<Side>,
    /// Side that sent a SYN+ACK.
    pub(crate) synack_from: Option<Side>,
    // (The byte-sized fields together, in what was padding: 256 bytes, not 264; see
    // [`Reassembler`] for the slot this completes.)
    /// How the flow ended.
    pub(crate) end: EndReason,
    /// The kind of interface its first packet was captured on.
    pub(crate) link: crate::decode::Link,
    /// Order of first packet among this table's flows, from 1.
    pub(crate) id: u64,
    /// Endpoints of side A and side B.
    pub(crate) endpoints: [SocketAddr; 2],
    /// First packet.
    pub(crate) first_ts: Timestamp,
    /// Reassembly counters per side: the reassemblers count here, the only copy (they are
    /// touched only by anomalies, a midstream start and the report).
    pub(crate) stats: [HalfStats; 2],
    /// Caller's order (packet index) of the first packet.
    pub(crate) order: u64,
    /// The destination the client dialled before an iptables REDIRECT sent it to this
    /// loopback server (see [`redirect`]).
    pub(crate) original_dst: Option<SocketAddr>,
    /// A side stopped being reassembled because the total queue limit was hit.
    pub(crate) memory_limited: bool,
}

impl FlowMeta {
    fn closed(&self) -> bool {
        self.rst[0] || self.rst[1] || (self.fin[0] && self.fin[1])
    }

    /// For tests of the later stages: a flow from `client` to `server` (its SYN from the
    /// client), three packets and 100 bytes each way, closed by both FINs, from second `first`
    /// to second `last`, numbered `order`.
    #[cfg(test)]
    pub(crate) fn closed_for_test(
        client: SocketAddr,
        server: SocketAddr,
        (first, last): (i64, i64),
        order: u64,
    ) -> FlowMeta {
        let ts = |secs| Timestamp { secs, nanos: 0 };
        FlowMeta {
            last_ts: ts(last),
            packets: [3, 3],
            bytes: [100, 100],
            fin: [true, true],
            rst: [false, false],
            syn_from: Some(Side::A),
            synack_from: Some(Side::B),
            id: order,
            endpoints: [client, server],
            first_ts: ts(first),
            stats: Default::default(),
            end: EndReason::Closed,
            order,
            memory_limited: false,
            original_dst: None,
            link: Default::default(),
        }
    }
}

/// One flow's slot. Most packets (bare ACKs, bulk data of a direction whose classifier is done)
/// only move the counters at the start of [`FlowMeta`] and read `bypassed`: laid out here (with
/// `repr(C)`), these share the slot's first cache line instead of four or five lines spread over
/// its 700 bytes (`perf`: the flow lookup's cache misses were the largest item of the profile;
/// callgrind: D1 misses -2%).
#[repr(C, align(64))]
struct Flow<S> {
    /// Each direction's reassembler is bypassed (a copy of [`Reassembler::is_bypassed`]).
    bypassed: [bool; 2],
    /// FIN seen from each side (a copy of [`FlowMeta::fin`]): [`Flow::closed_by`] reads it for
    /// every packet, and `meta.fin` is on the slot's second cache line (cachegrind, 1 MiB LL,
    /// mesh 100 MB: 30 k L2 misses on that read; with the counters below, mesh 30 MB cycles~
    /// 95.1 -> 94.2 M).
    fin: [bool; 2],
    /// Side A (the first packet's sender) is the key's `lo` end: a packet's side is found
    /// without reading the endpoints (here, not in the index: see [`FlowIndex`]).
    a_lo: bool,
    /// Where `Option<Flow>` keeps its discriminant (see [`SlotMark`]).
    mark: SlotMark,
    meta: FlowMeta,
    half: [Reassembler; 2],
    /// (Right after `half[1]`: the consumer's first fields, read for every fed segment, share
    /// its cache line; see [`crate::classify::FlowClassifier`].)
    sink: S,
    syn_seq: Option<u32>,
}

/// The largest niche of [`Flow`] (every value but one of a `u64`), so that the discriminant of
/// a table slot (`Option<Flow>`) is here, in the slot's first cache line, beside the counters
/// every packet updates. Without it rustc took the niche of a field at the start of `sink`, 488
/// bytes in: testing a slot for a flow cost every packet a second cache miss (`perf annotate`:
/// a third of the samples of the packet path, bench/RESULTS.md).
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
enum SlotMark {
    Live = 0,
}

impl<S: StreamSink> Flow<S> {
    /// Counts `seg` (sent by `side`) into the flow's packets, bytes, handshake and close flags.
    #[inline(always)]
    fn count(&mut self, seg: &TcpSegment<'_>, side: Side, ts: Timestamp) {
        let s = side.idx();
        let m = &mut self.meta;
        m.last_ts = m.last_ts.max(ts);
        m.packets[s] += 1;
        m.bytes[s] += seg.wire_len as u64;
        if seg.has(tcp_flags::SYN) {
            if seg.has(tcp_flags::ACK) {
                m.synack_from.get_or_insert(side);
            } else {
                m.syn_from.get_or_insert(side);
                if self.syn_seq == Some(seg.seq) {
                    // The same connection attempt sent again: its SYN went unanswered (or its
                    // answer was lost). (A new ISN is a new flow, see `slot_for`.)
                    m.stats[s].retransmitted += 1;
                }
                self.syn_seq.get_or_insert(seg.seq);
            }
        }
        if seg.has(tcp_flags::FIN) {
            m.fin[s] = true;
            self.fin[s] = true;
        }
        if seg.has(tcp_flags::RST) {
            m.rst[s] = true;
        }
    }

    /// Reassembles `seg` and hands what is in order to the consumer; keeps `total_buffered`
    /// (the table's bytes over all flows) up to date, and sheds this flow's buffers when it is
    /// over [`Limits::max_total_bytes`].
    ///
    /// A call of its own: a third of the packets come here, and inlined, its reassembly made the
    /// packet path's frame and register spills larger for all (-1.6M instructions of 558M on
    /// the 100 MB bench file, -0.9M on the mesh one).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        seg: &TcpSegment<'_>,
        (at, src): (Option<u64>, &dyn ReadBack),
        side: Side,
        ts: Timestamp,
        limits: &Limits,
        total_buffered: &mut usize,
    ) {
        // (A direction whose consumer is done only moves the counters: nothing is buffered or
        // delivered, so the memory accounting cannot change. Most packets of a capture are bulk
        // data of such directions; they are not fed.)
        let s = side.idx();
        let before = self.half[s].queued_bytes() + self.sink.buffered();
        let sink = &mut self.sink;
        self.half[s].segment_at(
            &mut self.meta.stats[s],
            seg.seq,
            seg.has(tcp_flags::SYN),
            seg.payload,
            at,
            src,
            seg.wire_len,
            limits.max_queue_bytes,
            &mut |c| match c {
                Chunk::Data(d) => sink.data(side, d, ts),
                Chunk::Gap(n) => sink.gap(side, n),
            },
        );
        let mut after = self.half[s].queued_bytes() + self.sink.buffered();
        *total_buffered = total_buffered.saturating_sub(before) + after;
        if *total_buffered > limits.max_total_bytes && after > 0 {
            // Over the global budget: this flow gives up waiting for its holes and drops its
            // partial messages (the classifier resynchronises on what comes next).
            let sink = &mut self.sink;
            self.half[s].flush_from(&mut self.meta.stats[s], src, &mut |c| match c {
                Chunk::Data(d) => sink.data(side, d, ts),
                Chunk::Gap(n) => sink.gap(side, n),
            });
            self.sink.shed();
            *total_buffered = total_buffered.saturating_sub(after);
            after = self.half[s].queued_bytes() + self.sink.buffered();
            *total_buffered += after;
            self.meta.memory_limited = true;
        }
        self.bypassed[s] = self.half[s].is_bypassed();
    }

    /// True when `seg`, just counted, ends the connection. The ACK of the second FIN ends it
    /// (RFC 793 §3.5), and so does a RST: reported now rather than after the linger, so closed
    /// flows do not hold memory; later packets (retransmissions, data in flight) are absorbed
    /// by the tombstone. A connection that carried no payload (refused: SYN, RST) waits for the
    /// idle timeout, so that a retransmitted SYN stays in the same flow.
    #[inline(always)]
    fn closed_by(&self, seg: &TcpSegment<'_>) -> bool {
        let m = &self.meta;
        let carried = m.bytes[0] + m.bytes[1] > 0;
        let fin_acked = self.fin[0]
            && self.fin[1]
            && seg.payload.is_empty()
            && !seg.has(tcp_flags::FIN)
            && seg.has(tcp_flags::ACK);
        // (Last: the reassemblers are on other cache lines, and this is rarely needed.)
        carried
            && (fin_acked || seg.has(tcp_flags::RST))
            && self.half[0].queued_bytes() + self.half[1].queued_bytes() == 0
    }
}

/// Flow slots reserved when a table is made (see [`FlowTable::new`]).
const INITIAL_SLOTS: usize = 4096;

/// Seconds (capture time) a closed flow's 4-tuple absorbs late packets (retransmitted FINs,
/// ACKs, RSTs) instead of opening a mid-stream flow.
const TOMBSTONE_SECS: i64 = 60;

/// Canonical 4-tuple: the lower (address, port) first. Addresses as 128-bit numbers (IPv4 in
/// the low bits, with the family in `ports` so that an IPv6 address never equals an IPv4 one):
/// hashing and comparing two `IpAddr` enums per lookup was 6% of the time (`perf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey {
    lo: [u64; 2],
    hi: [u64; 2],
    /// Port of `lo` << 16 | port of `hi`, | 1 << 32 for IPv6.
    ports: u64,
}

/// Two words for an IPv4 key, five for IPv6 (the family is in the first word, `ports`, so the
/// two encodings never give the same stream). The derived hash wrote every array as a length
/// and a byte slice: more hasher rounds for every packet (-4.3M instructions of 584M on the
/// 100 MB bench file, ~20 a packet).
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.ports);
        if self.ports >> 32 == 0 {
            // IPv4: both addresses are in the low 32 bits of their second word.
            h.write_u64(self.lo[1] << 32 | self.hi[1]);
        } else {
            for w in [self.lo[0], self.lo[1], self.hi[0], self.hi[1]] {
                h.write_u64(w);
            }
        }
    }
}

/// An address as two words (8-byte aligned: a key is 40 bytes, not 48), and whether it is IPv6.
fn ip_bits(ip: IpAddr) -> ([u64; 2], bool) {
    match ip {
        IpAddr::V4(a) => ([0, u64::from(u32::from(a))], false),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            ([(v >> 64) as u64, v as u64], true)
        }
    }
}

/// The key of the pair, and whether `(a, ap)` is its `lo` end.
fn key_from(a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> (FlowKey, bool) {
    let ((a, v6), (b, _)) = (ip_bits(a), ip_bits(b));
    let a_lo = (a, ap) <= (b, bp);
    let ((lo, lp), (hi, hp)) = if a_lo { ((a, ap), (b, bp)) } else { ((b, bp), (a, ap)) };
    (FlowKey { lo, hi, ports: u64::from(lp) << 16 | u64::from(hp) | u64::from(v6) << 32 }, a_lo)
}

/// The segment's key, and whether its sender is the key's `lo` end.
fn key_of(seg: &TcpSegment<'_>) -> (FlowKey, bool) {
    key_from(seg.src, seg.sport, seg.dst, seg.dport)
}

/// An IPv4 segment's key in the index's compact form ([`index::V4Key`]) and whether its sender
/// is the key's `lo` end; `None` for IPv6. Each end as one number, address then port, compared
/// once: the order of [`key_from`], so the same key (a test compares the two). Only this
/// 12-byte key lives through the lookup (the 40-byte [`FlowKey`], kept in registers and on
/// the stack across it, is made only for a new flow).
#[inline(always)]
fn v4_key_of(seg: &TcpSegment<'_>) -> Option<(index::V4Key, bool)> {
    let (IpAddr::V4(a), IpAddr::V4(b)) = (seg.src, seg.dst) else { return None };
    let x = u64::from(u32::from(a)) << 16 | u64::from(seg.sport);
    let y = u64::from(u32::from(b)) << 16 | u64::from(seg.dport);
    let (lo, hi) = (x.min(y), x.max(y));
    let ports = (lo as u32 & 0xffff) << 16 | hi as u32 & 0xffff;
    Some((index::V4Key([(lo >> 16) as u32, (hi >> 16) as u32, ports]), x <= y))
}

/// Where [`FlowTable::process`] put a segment.
#[derive(Clone, Copy, Debug)]
pub struct Processed {
    /// The flow's slot (see [`FlowTable::flow_mut`]).
    pub slot: usize,
    /// The segment went through the flow's reassembler (and possibly its consumer); false for
    /// bare ACKs and directions whose consumer is done, which change nothing but counters.
    pub(crate) fed: bool,
}

/// Counters of the table itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TableStats {
    /// Flows evicted because the table was full.
    pub(crate) evicted: u64,
    /// Packets that arrived on a closed flow after it was reported (late ACKs, RSTs,
    /// retransmissions), dropped instead of starting a mid-stream flow.
    pub(crate) late_packets: u64,
}

/// All live flows.
pub struct FlowTable<S> {
    /// The slot of each flow.
    map: FlowIndex,
    slots: Vec<Option<Flow<S>>>,
    free: Vec<usize>,
    next_id: u64,
    limits: Limits,
    /// Bytes buffered over all flows (queues and consumers), see [`Limits::max_total_bytes`].
    total_buffered: usize,
    last_sweep: Option<i64>,
    /// The live flows as (first packet, slot), youngest first, so that the flows still open at
    /// the end of the input are ended oldest first, a batch at a time
    /// ([`FlowTable::end_open_up_to`]): made there from the slots, kept while only those ends
    /// happen, dropped when a flow starts or ends otherwise. A `BTreeSet` of the live orders
    /// kept up to date for every flow cost each a walk of cold nodes to insert and one to
    /// remove, and every batch at the end of the input read every slot: bench/misses --json
    /// --threads 1 cycles~, default 100 MB 229.1 -> 226.3 M (Ir 415.7 -> 411.5 M), 30 MB slices
    /// (~2,000 flows open at their end) default 74.1 -> 71.8 M, mesh 78.7 -> 76.8 M.
    open_by_order: Option<Vec<(u64, usize)>>,
    /// 4-tuples of flows closed by FIN/RST and already reported, with the capture second until
    /// which their late packets are absorbed.
    ///
    /// Keyed by the 64-bit keyed hash of the 4-tuple, not the tuple: a tombstone costs 16 bytes
    /// instead of 56, and a capture can hold a minute of closed connections. (A collision
    /// would absorb a non-SYN packet of one other flow: 2^-64 per pair, with a random key.)
    tombstones: crate::wire::KeyedMap<u64, i64>,
    /// The capture file the segments given with a file offset ([`FlowTable::process_at`]) lie
    /// in, read again to compare a retransmission with what was delivered (see
    /// `reassembly::window`).
    source: Option<std::sync::Arc<std::fs::File>>,
    /// Counters.
    pub(crate) stats: TableStats,
}

impl<S: StreamSink> FlowTable<S> {
    /// An empty table.
    pub fn new(limits: Limits) -> FlowTable<S> {
        FlowTable {
            map: FlowIndex::default(),
            // Room for the flows of a busy capture from the start: grown by doubling, the slots
            // (~700 bytes each) were copied whole at each step, a one-time 1.8M instructions
            // (b443) to 3.6M (100 MB bench file), and each step touched new pages. Only
            // reserved: pages no flow used are never touched.
            slots: Vec::with_capacity(limits.max_flows.min(INITIAL_SLOTS)),
            free: Vec::new(),
            next_id: 1,
            limits,
            total_buffered: 0,
            last_sweep: None,
            open_by_order: None,
            tombstones: crate::wire::KeyedMap::default(),
            source: None,
            stats: TableStats::default(),
        }
    }

    /// The capture file that the offsets given to [`FlowTable::process_at`] point into.
    pub(crate) fn set_source(&mut self, file: std::sync::Arc<std::fs::File>) {
        self.source = Some(file);
    }

    /// Takes one TCP segment seen at `ts`; `order` (increasing: the packet's index in the
    /// capture) orders flows by first packet. `new_sink` makes the consumer of a new flow;
    /// `ended` receives every flow that ends (here: reused tuples, evictions, timeouts).
    /// Returns the slot of the flow the segment went to (see [`FlowTable::flow_mut`]), and whether
    /// the segment was fed to it.
    pub fn process(
        &mut self,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
        order: u64,
        new_sink: &mut dyn FnMut() -> S,
        ended: &mut dyn FnMut(FlowMeta, S),
    ) -> Option<Processed> {
        self.process_at(seg, None, ts, order, new_sink, ended)
    }

    /// [`FlowTable::process`] of a segment whose payload lies at offset `at` of the capture file
    /// given to [`FlowTable::set_source`] (ignored without one).
    #[inline(always)]
    pub(crate) fn process_at(
        &mut self,
        seg: &TcpSegment<'_>,
        at: Option<u64>,
        ts: Timestamp,
        order: u64,
        new_sink: &mut dyn FnMut() -> S,
        ended: &mut dyn FnMut(FlowMeta, S),
    ) -> Option<Processed> {
        self.maybe_sweep(ts, ended);
        let (i, side) = self.slot_for(seg, ts, order, new_sink, ended)?;
        let limits = self.limits;
        let f = self.slots[i].as_mut()?;
        f.count(seg, side, ts);
        // A bare ACK (no payload, no SYN) changes nothing below unless the table is over its
        // byte budget (then any packet of a buffering flow sheds); skipping it saves reading the
        // reassembler's and the classifier's state, cold for all but the busiest flows: bare
        // ACKs are over a third of the packets of a capture.
        let bare_ack = seg.wire_len == 0
            && seg.payload.is_empty()
            && !seg.has(tcp_flags::SYN)
            && self.total_buffered <= limits.max_total_bytes;
        let fed = !bare_ack && !f.bypassed[side.idx()];
        if fed {
            // (An offset comes with a source, see `set_source`: none reads nothing, proves no
            // conflict. Not tested here: -0.3 M instructions, default 30 MB.)
            f.feed(seg, (at, &self.source), side, ts, &limits, &mut self.total_buffered);
        } else if !bare_ack {
            // A bypassed direction: its bytes are only checked for being seen again.
            let s = side.idx();
            let wire_len = seg.wire_len.max(seg.payload.len() as u32);
            f.half[s].bypassed_segment(&mut f.meta.stats[s], seg.seq, wire_len);
        }
        if f.closed_by(seg) {
            self.end_slot(i, EndReason::Closed, ended);
            return None;
        }
        Some(Processed { slot: i, fed })
    }

    /// The slot of the flow of `seg` and the segment's side: a new flow when there is none, or
    /// when a SYN reuses the 4-tuple of one (which ends); `None` for a late packet of a closed
    /// flow (absorbed by its tombstone). A new flow may first evict others (table full).
    #[inline(always)]
    fn slot_for(
        &mut self,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
        order: u64,
        new_sink: &mut dyn FnMut() -> S,
        ended: &mut dyn FnMut(FlowMeta, S),
    ) -> Option<(usize, Side)> {
        let (mut slot, src_lo) = match v4_key_of(seg) {
            Some((k, src_lo)) => (self.map.get_v4(&k), src_lo),
            None => {
                let (key, src_lo) = key_of(seg);
                (self.map.get(&key), src_lo)
            }
        };
        let syn_only = seg.has(tcp_flags::SYN) && !seg.has(tcp_flags::ACK);
        if let (Some(i), true) = (slot, syn_only) {
            // A new SYN after FIN/RST (or with another ISN once data flowed) is a new connection.
            if let Some(f) = self.slots[i].as_ref() {
                let reused =
                    f.syn_seq != Some(seg.seq) && (f.meta.closed() || f.meta.bytes[0] + f.meta.bytes[1] > 0);
                if reused {
                    self.end_slot(i, EndReason::Reused, ended);
                    slot = None;
                }
            }
        }
        // Side A sent the flow's first packet. (The slot's first cache line, read next anyway.)
        let side = |t: &Self, i: usize| {
            Some((i, if src_lo == t.slots[i].as_ref()?.a_lo { Side::A } else { Side::B }))
        };
        if let Some(i) = slot {
            return side(self, i);
        }
        // A new flow (or a late packet): its full key, for the tombstones and the index.
        let (key, _) = key_of(seg);
        let grave = std::hash::BuildHasher::hash_one(self.map.hasher(), key);
        if let Some(&until) = self.tombstones.get(&grave) {
            if !syn_only && ts.secs <= until {
                self.stats.late_packets += 1;
                return None;
            }
            self.tombstones.remove(&grave);
        }
        // (At most `u32::MAX` flows: the index keeps slots as `u32`.)
        if self.map.len() >= self.limits.max_flows.min(u32::MAX as usize) {
            self.evict(ended);
        }
        let i = self.insert(key, src_lo, seg, ts, order, new_sink());
        side(self, i)
    }

    /// Records the original destination of the redirected flow in `slot` (see [`redirect`]).
    pub(crate) fn set_original_dst(&mut self, slot: usize, dst: SocketAddr) {
        if let Some(f) = self.slots.get_mut(slot).and_then(|f| f.as_mut()) {
            f.meta.original_dst = Some(dst);
        }
    }

    /// The live flow in `slot`, if any: its metadata and its consumer.
    pub fn flow_mut(&mut self, slot: usize) -> Option<(&FlowMeta, &mut S)> {
        let f = self.slots.get_mut(slot)?.as_mut()?;
        Some((&f.meta, &mut f.sink))
    }

    /// The consumer of the live flow in `slot`, if any, without reading the metadata (cache
    /// lines of their own: most fed segments need only the consumer).
    pub fn sink_mut(&mut self, slot: usize) -> Option<&mut S> {
        Some(&mut self.slots.get_mut(slot)?.as_mut()?.sink)
    }

    /// (Not inlined: once a flow, and out of the packet path's registers, -0.7M instructions
    /// of 559M on the 100 MB bench file, -1.3M on the mesh one.)
    #[inline(never)]
    fn insert(
        &mut self,
        key: FlowKey,
        src_lo: bool,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
        order: u64,
        sink: S,
    ) -> usize {
        let meta = FlowMeta {
            id: self.next_id,
            endpoints: [SocketAddr::new(seg.src, seg.sport), SocketAddr::new(seg.dst, seg.dport)],
            first_ts: ts,
            last_ts: ts,
            packets: [0; 2],
            bytes: [0; 2],
            syn_from: None,
            synack_from: None,
            fin: [false; 2],
            rst: [false; 2],
            stats: [HalfStats::default(); 2],
            end: EndReason::CaptureEnd,
            order,
            memory_limited: false,
            original_dst: None,
            link: seg.link,
        };
        self.next_id += 1;
        let flow = Flow {
            bypassed: [false; 2],
            fin: [false; 2],
            a_lo: src_lo,
            mark: SlotMark::Live,
            meta,
            half: Default::default(),
            syn_seq: None,
            sink,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(flow);
                i
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.open_by_order = None;
        i
    }

    fn end_slot(&mut self, i: usize, why: EndReason, ended: &mut dyn FnMut(FlowMeta, S)) {
        let Some(mut f) = self.slots[i].take() else { return };
        self.free.push(i);
        if why != EndReason::CaptureEnd {
            // (Only `end_open_up_to` ends flows for the capture's end, taking them off the list.)
            self.open_by_order = None;
        }
        let [a, b] = f.meta.endpoints;
        let (key, _) = key_from(a.ip(), a.port(), b.ip(), b.port());
        self.map.remove(&key);
        if f.meta.closed() && why != EndReason::Reused {
            if self.tombstones.len() >= self.limits.max_flows {
                self.tombstones.clear();
            }
            let keep = self.limits.idle_timeout_secs.min(TOMBSTONE_SECS);
            let grave = std::hash::BuildHasher::hash_one(self.map.hasher(), key);
            self.tombstones.insert(grave, f.meta.last_ts.secs.saturating_add(keep));
        }
        let ts = f.meta.last_ts;
        let held = f.half[0].queued_bytes() + f.half[1].queued_bytes() + f.sink.buffered();
        self.total_buffered = self.total_buffered.saturating_sub(held);
        let src: &dyn ReadBack = &self.source;
        for side in [Side::A, Side::B] {
            let s = side.idx();
            let sink = &mut f.sink;
            f.half[s].flush_from(&mut f.meta.stats[s], src, &mut |c| match c {
                Chunk::Data(d) => sink.data(side, d, ts),
                Chunk::Gap(n) => sink.gap(side, n),
            });
        }
        f.meta.end = if why == EndReason::CaptureEnd && f.meta.closed() { EndReason::Closed } else { why };
        ended(f.meta, f.sink);
    }

    /// Ends flows that are idle (or closed and quiet) at `now`; at most once per second.
    ///
    /// The test of the second runs for every packet: inlined, apart from the sweep (as a call it
    /// cost ~27 instructions a packet with the closure's setup: 5.6M of 597M on the 100 MB bench).
    #[inline(always)]
    pub(crate) fn maybe_sweep(&mut self, now: Timestamp, ended: &mut dyn FnMut(FlowMeta, S)) {
        if self.last_sweep.is_some_and(|t| now.secs - t < 1) {
            return;
        }
        self.sweep(now, ended);
    }

    /// [`FlowTable::maybe_sweep`] once its second has passed (or at the first packet).
    #[inline(never)]
    fn sweep(&mut self, now: Timestamp, ended: &mut dyn FnMut(FlowMeta, S)) {
        if self.last_sweep.replace(now.secs).is_none() {
            return;
        }
        let idle = self.limits.idle_timeout_secs;
        let linger = self.limits.close_linger_secs;
        let expired: Vec<(usize, EndReason)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let m = &f.as_ref()?.meta;
                let quiet = now.secs - m.last_ts.secs;
                // A closed flow that carried no payload (refused, SYN/RST only) waits for the idle
                // timeout: a retransmitted SYN with the same ISN belongs to the same attempt.
                let carried = m.bytes[0] + m.bytes[1] > 0;
                if m.closed() && carried && quiet >= linger {
                    Some((i, EndReason::Closed))
                } else if quiet >= idle {
                    Some((i, EndReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        for (i, why) in expired {
            self.end_slot(i, why, ended);
        }
        self.tombstones.retain(|_, until| *until >= now.secs);
    }

    /// Table full: end the least recently active 1/64 of the flows (at least one).
    fn evict(&mut self, ended: &mut dyn FnMut(FlowMeta, S)) {
        let mut ages: Vec<(Timestamp, usize)> =
            self.slots.iter().enumerate().filter_map(|(i, f)| Some((f.as_ref()?.meta.last_ts, i))).collect();
        let n = (ages.len() / 64).max(1).min(ages.len());
        if n == 0 {
            return;
        }
        ages.select_nth_unstable(n - 1);
        for &(_, i) in &ages[..n] {
            self.stats.evicted += 1;
            self.end_slot(i, EndReason::Evicted, ended);
        }
    }

    /// Flows alive now (the fuzz target checks the limit).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow is alive.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Ends every flow (end of capture), in order of first packet. The runs end open flows a
    /// batch at a time ([`FlowTable::end_open_up_to`]); the tests and the fuzz target end them
    /// all at once.
    pub fn end_all(&mut self, ended: &mut dyn FnMut(FlowMeta, S)) {
        if let Some(last) = self.nth_live_order(usize::MAX) {
            self.end_open_up_to(last, ended);
        }
    }

    /// The first-packet number of the `n`-th oldest live flow (of the youngest when fewer).
    pub(crate) fn nth_live_order(&mut self, n: usize) -> Option<u64> {
        let open = self.open_by_order();
        let k = n.saturating_sub(1).min(open.len().checked_sub(1)?);
        Some(open[open.len() - 1 - k].0)
    }

    /// The live flows, youngest first (see [`FlowTable::open_by_order`]'s field): made from the
    /// slots when there is no list.
    fn open_by_order(&mut self) -> &mut Vec<(u64, usize)> {
        let slots = &self.slots;
        self.open_by_order.get_or_insert_with(|| {
            let mut open: Vec<(u64, usize)> =
                slots.iter().enumerate().filter_map(|(i, f)| Some((f.as_ref()?.meta.order, i))).collect();
            open.sort_unstable_by(|a, b| b.cmp(a));
            open
        })
    }

    /// Ends (capture end) every live flow whose first packet is number `last` or earlier,
    /// oldest first; returns how many.
    pub(crate) fn end_open_up_to(&mut self, last: u64, ended: &mut dyn FnMut(FlowMeta, S)) -> usize {
        let mut count = 0;
        while let Some(&(order, i)) = self.open_by_order().last() {
            if order > last {
                break;
            }
            self.open_by_order().pop();
            self.end_slot(i, EndReason::CaptureEnd, ended);
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpSegment;

    /// Records what it is fed.
    #[derive(Default)]
    struct Rec(Vec<(Side, Vec<u8>)>);

    impl StreamSink for Rec {
        fn data(&mut self, side: Side, bytes: &[u8], _ts: Timestamp) -> Feed {
            self.0.push((side, bytes.to_vec()));
            Feed::More
        }
        fn gap(&mut self, side: Side, lost: u32) -> Feed {
            self.0.push((side, format!("[GAP {lost}]").into_bytes()));
            Feed::More
        }
    }

    /// A flow slot with its classifier is 11 cache lines (704 bytes: the memory per open
    /// flow); the first holds what every packet updates (see [`Flow`], [`SlotMark`]).
    #[test]
    fn slot_size_and_first_line() {
        use std::mem::{offset_of, size_of};
        type F = Flow<crate::classify::FlowClassifier>;
        assert_eq!(size_of::<Option<F>>(), 704);
        assert!(offset_of!(F, meta) + offset_of!(FlowMeta, bytes) + 16 <= 64);
        assert!(offset_of!(F, a_lo) < 64 && offset_of!(F, fin) < 64 && offset_of!(F, mark) < 64);
        // Each direction's reassembler within one cache line (a fed segment reads one line).
        let (h, n) = (offset_of!(F, half), size_of::<Reassembler>());
        assert_eq!(n, 48);
        assert!(h / 64 == (h + n - 1) / 64 && (h + n) / 64 == (h + 2 * n - 1) / 64);
        // The classifier's `held` and `requests` in the second reassembler's line, its sides
        // each in a line of their own.
        let c = offset_of!(F, sink);
        assert_eq!((c, (c + crate::classify::SIDES_OFFSET) % 64), (h + 2 * n, 0));
    }

    fn seg(from_client: bool, flags: u8, seq: u32, payload: &'static [u8]) -> TcpSegment<'static> {
        let (c, s): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (src, dst, sport, dport) = if from_client { (c, s, 40000, 443) } else { (s, c, 443, 40000) };
        TcpSegment {
            src,
            dst,
            sport,
            dport,
            seq,
            ack: 0,
            flags,
            payload,
            wire_len: payload.len() as u32,
            link: crate::decode::Link::Device,
        }
    }

    fn run(segs: &[TcpSegment<'static>], limits: Limits) -> Vec<(FlowMeta, Rec)> {
        let mut t: FlowTable<Rec> = FlowTable::new(limits);
        let mut done = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            t.process(s, Timestamp::new(i as i64, 0), i as u64 + 1, &mut Rec::default, &mut |m, r| {
                done.push((m, r))
            });
        }
        t.end_all(&mut |m, r| done.push((m, r)));
        done
    }

    use tcp_flags::{ACK, FIN, SYN};

    #[test]
    fn syn_after_fin_starts_a_new_flow() {
        let segs = [
            seg(true, SYN, 100, b""),
            seg(false, SYN | ACK, 500, b""),
            seg(true, ACK, 101, b"hello"),
            seg(true, FIN | ACK, 106, b""),
            seg(false, FIN | ACK, 501, b""),
            seg(true, SYN, 9000, b""),
            seg(true, ACK, 9001, b"again"),
        ];
        let flows = run(&segs, Limits::default());
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].0.end, EndReason::Reused);
        assert_eq!(flows[0].1 .0, vec![(Side::A, b"hello".to_vec())]);
        assert_eq!(flows[1].1 .0, vec![(Side::A, b"again".to_vec())]);
        assert_eq!((flows[1].0.id, flows[1].0.syn_from), (2, Some(Side::A)));
    }

    #[test]
    fn late_packets_after_a_reported_close_do_not_start_a_flow() {
        let segs = [
            (0, seg(true, SYN, 100, b"")),
            (0, seg(false, SYN | ACK, 500, b"")),
            (1, seg(true, ACK, 101, b"hello")),
            (1, seg(true, FIN | ACK, 106, b"")),
            (1, seg(false, FIN | ACK, 501, b"")),
            (20, seg(false, ACK, 502, b"")), // reported at t=6+; this one is late
            (21, seg(true, SYN, 7000, b"")), // a new connection on the same tuple
        ];
        let mut t: FlowTable<Rec> = FlowTable::new(Limits::default());
        let mut done = Vec::new();
        for (i, (secs, s)) in segs.iter().enumerate() {
            t.process(s, Timestamp::new(*secs, 0), i as u64 + 1, &mut Rec::default, &mut |m, r| {
                done.push((m, r))
            });
        }
        t.end_all(&mut |m, r| done.push((m, r)));
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].0.packets, done[0].0.end), ([3, 2], EndReason::Closed));
        assert_eq!(done[1].0.syn_from, Some(Side::A));
        assert_eq!(t.stats.late_packets, 1);
    }

    #[test]
    fn total_memory_limit_gives_up_on_holes_and_flags_the_flow() {
        let limits = Limits { max_total_bytes: 10, ..Limits::default() };
        let segs =
            [seg(true, SYN, 0, b""), seg(true, ACK, 1, b"ab"), seg(true, ACK, 10, b"waiting for hole!!")];
        let flows = run(&segs, limits);
        assert!(flows[0].0.memory_limited);
        assert_eq!(flows[0].1 .0[1], (Side::A, b"[GAP 7]".to_vec()));
    }

    #[test]
    fn server_first_packet_is_side_a_and_synack_is_recorded() {
        let segs = [seg(false, SYN | ACK, 500, b""), seg(true, ACK, 101, b"hi")];
        let flows = run(&segs, Limits::default());
        let m = &flows[0].0;
        assert_eq!(m.endpoints[0].port(), 443);
        assert_eq!((m.synack_from, m.syn_from), (Some(Side::A), None));
        assert_eq!(m.packets, [1, 1]);
    }

    #[test]
    fn full_table_evicts_the_least_recently_active() {
        let limits = Limits { max_flows: 2, ..Limits::default() };
        let mk = |port: u16| {
            let mut s = seg(true, SYN, 1, b"");
            s.sport = port;
            s
        };
        let flows = run(&[mk(1), mk(2), mk(3)], limits);
        assert_eq!(flows.len(), 3);
        assert_eq!((flows[0].0.id, flows[0].0.end), (1, EndReason::Evicted));
    }

    /// `v4_key_of` gives `key_from`'s key (in compact form) and end, for either direction, equal
    /// addresses with either port order, and the extremes of both.
    #[test]
    fn ipv4_key_path_agrees_with_key_from() {
        let ips = ["0.0.0.0", "10.0.0.1", "10.0.0.2", "127.0.0.1", "255.255.255.255"];
        let ports = [0u16, 1, 443, 40000, 65535];
        for (a, b) in ips.iter().flat_map(|a| ips.iter().map(move |b| (a, b))) {
            for (ap, bp) in ports.iter().flat_map(|p| ports.iter().map(move |q| (*p, *q))) {
                let mut s = seg(true, ACK, 1, b"");
                (s.src, s.dst, s.sport, s.dport) = (a.parse().unwrap(), b.parse().unwrap(), ap, bp);
                let (k, lo) = key_from(s.src, ap, s.dst, bp);
                assert_eq!(
                    v4_key_of(&s),
                    Some((index::FlowIndex::v4(&k).unwrap(), lo)),
                    "{a}:{ap} -> {b}:{bp}"
                );
            }
        }
        // With exact fields: 10.0.0.2:443 -> 10.0.0.1:40000 is the `hi` end.
        let s = seg(false, ACK, 1, b"");
        let k = index::V4Key([0x0a00_0001, 0x0a00_0002, 40000 << 16 | 443]);
        assert_eq!(v4_key_of(&s), Some((k, false)));
        let mut v6 = s;
        v6.src = "::1".parse().unwrap();
        assert_eq!(v4_key_of(&v6), None);
    }
}
#[cfg(test)]
mod slot_layout {
    /// `Option<Flow>` keeps its discriminant in `mark`, in the slot's first cache line.
    #[test]
    fn a_free_slot_is_told_by_the_first_cache_line() {
        type F = super::Flow<crate::classify::FlowClassifier>;
        let mut slot = std::mem::MaybeUninit::<Option<F>>::zeroed();
        // SAFETY: writing a valid value into memory of its own type and size; reading back the
        // bytes of a zeroed buffer (the value sets only its discriminant).
        let bytes = unsafe {
            slot.as_mut_ptr().write(None);
            std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), std::mem::size_of::<Option<F>>())
        };
        let set: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
        let mark = std::mem::offset_of!(F, mark);
        assert!(set.iter().all(|&i| (mark..mark + 8).contains(&i)) && !set.is_empty(), "{set:?}");
        assert!(mark + 8 <= 64);
    }
}

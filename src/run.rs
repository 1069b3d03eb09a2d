//! The offline pipeline: capture files → decode → flow table → classifier → reports.
//! [`run_with_writer`] is the seam the binary and the tests share.

use crate::capture::gate::{Gate, Gated};
use crate::capture::live::{install_stop_handlers, LiveCapture, LiveOptions};
use crate::capture::write::WriteOptions;
use crate::capture::{display_path, CaptureReader, Next, PacketSource, SharedSource};
use crate::classify::{ClassifyConfig, FlowClassifier};
use crate::decode::defrag::Defragmenter;
use crate::decode::{decode, decode_tcp, is_supported_linktype, linktype_name, Decoded, NonTcp};
use crate::flow::redirect::{Redirect, RedirectPairs};
use crate::flow::{FlowMeta, FlowTable, Limits};
use crate::report::mesh::{self, MeshConfig, XfccLegs};
use crate::report::{json, table, FlowReport, Summary};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human table.
    Table,
    /// JSON Lines.
    Json,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Capture files, `-` for standard input.
    pub inputs: Vec<PathBuf>,
    /// Live capture, read after the files.
    pub live: Option<LiveOptions>,
    /// Output format.
    pub format: Format,
    /// Flow table limits.
    pub limits: Limits,
    /// Classifier settings.
    pub classify: ClassifyConfig,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Suppress warnings on stderr.
    pub quiet: bool,
    /// Certificate warnings, per-server verdicts, expectations.
    pub mesh: MeshConfig,
    /// Worker threads for regular files (1: all in the calling thread).
    pub threads: usize,
    /// Write only the summary.
    pub summary_only: bool,
    /// Verbosity and width of the table.
    pub table: table::TableOptions,
    /// What `-r` does to the packets it reads: filter, `-c`, `-w`.
    pub offline: OfflineOptions,
    /// `-l`: every flow is written (and flushed) as soon as it ends; the table is printed row
    /// by row with fixed columns, as for a live capture.
    pub line_buffered: bool,
}

/// The BPF filter, `-c` and `-w` of a run on capture files (as `tcpdump -r`).
#[derive(Clone, Debug, Default)]
pub struct OfflineOptions {
    /// Only the packets that pass this filter are analysed (and written).
    pub filter: Option<String>,
    /// Stop after this many packets (that passed the filter), over all the files.
    pub count: Option<u64>,
    /// Write the packets analysed to pcap files.
    pub write: Option<WriteOptions>,
}

/// What a run found, for the exit code.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Files that could not be read to the end.
    pub errors: Vec<String>,
    /// Flows reported.
    pub flows: u64,
    /// Flows that broke `--expect mtls` / `--fail-on-plaintext` (exit code 1).
    pub violations: u64,
}

/// Where finished flows go: JSON lines are written at once, table rows are kept as text until
/// the end (column widths need every row).
enum Sink<'a> {
    /// Flows are only counted (`--summary-only`); the summary is written in this format.
    Count(Format),
    Json(&'a mut dyn Write),
    Table(&'a mut dyn Write, table::Rows),
    /// Live capture: rows printed as flows are classified and end (fixed column widths); the
    /// flag says whether the header was printed.
    LiveTable(&'a mut dyn Write, bool, table::TableOptions),
}

impl Sink<'_> {
    /// A live `classified` event: written at once (JSON), not counted in the summary.
    fn announce(&mut self, f: &FlowReport) -> io::Result<()> {
        match self {
            Sink::Json(out) => {
                json::write_flow(*out, f)?;
                out.flush()
            }
            Sink::Table(..) | Sink::Count(_) => Ok(()),
            Sink::LiveTable(out, header, opts) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out, *opts)?;
                }
                table::write_live_row(*out, "classified", f, *opts)?;
                out.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Json(out) | Sink::LiveTable(out, ..) => out.flush(),
            Sink::Table(..) | Sink::Count(_) => Ok(()),
        }
    }

    fn emit(&mut self, p: &mut Pending, summary: &mut Summary, mesh: &MeshConfig) -> io::Result<()> {
        let f = &p.report;
        summary.count_flow(f, mesh);
        match (self, std::mem::replace(&mut p.rendered, Rendered::No)) {
            (Sink::Count(_), _) => Ok(()),
            (Sink::Json(out), Rendered::Json(line)) => out.write_all(&line),
            (Sink::Json(out), _) => json::write_flow(*out, f),
            (Sink::Table(out, rows), Rendered::Row(r)) => rows.push(*out, *r),
            (Sink::Table(out, rows), _) => {
                let r = table::render(f, rows.options());
                rows.push(*out, r)
            }
            (Sink::LiveTable(out, header, opts), _) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out, *opts)?;
                }
                table::write_live_row(*out, "ended", f, *opts)
            }
        }
    }

    /// What workers render for this sink (see [`Rendered`]).
    fn render_mode(&self) -> RenderMode {
        match self {
            Sink::Json(_) => RenderMode::Json,
            Sink::Table(_, rows) => RenderMode::Row(rows.options()),
            Sink::Count(_) | Sink::LiveTable(..) => RenderMode::None,
        }
    }
}

/// What a worker renders of the flows it ends: the output formatting then runs on the worker's
/// thread, spread over `--threads` (it was a quarter of the work, all on the merging thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RenderMode {
    None,
    Json,
    Row(table::TableOptions),
}

/// A finished flow's output, rendered by its worker, unless the XFCC confirmation may still
/// change the report when it is released ([`mesh::may_confirm`]).
enum Rendered {
    No,
    /// A JSON line, with its newline.
    Json(Vec<u8>),
    Row(Box<table::Row>),
}

/// Runs the pipeline on every input; writes data to `out` and diagnostics to `diag`.
/// Results found before an error are still written. Each flow is written when it ends, so
/// memory holds open flows, not the run.
pub fn run_with_writer(cfg: &Config, out: &mut dyn Write, diag: &mut dyn Write) -> io::Result<Outcome> {
    let mut summary = Summary { kind: "summary", ..Summary::default() };
    let mut sink = match cfg.format {
        f if cfg.summary_only => Sink::Count(f),
        Format::Json => Sink::Json(out),
        Format::Table if cfg.line_buffered || (cfg.live.is_some() && cfg.inputs.is_empty()) => {
            Sink::LiveTable(out, false, cfg.table)
        }
        Format::Table => Sink::Table(out, table::Rows::new(cfg.table)),
    };
    // Inputs that could be opened: when none could, the table prints nothing but the errors.
    let mut opened = 0;
    let o = &cfg.offline;
    let mut gate = Gate::new(o.filter.clone(), o.count, o.write.clone());
    let mut linktype = None;
    for path in &cfg.inputs {
        if gate.as_ref().is_some_and(Gate::done) {
            break; // -c reached (or -w failed): the later files are not read, as with tcpdump
        }
        let name = display_path(path);
        summary.files.push(name.clone());
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                if !cfg.quiet {
                    writeln!(diag, "tlspeek: {msg}")?;
                }
                summary.errors.push(msg);
                continue;
            }
        };
        linktype = linktype.or(reader.first_linktype());
        if let Some(Err(e)) = gate.as_mut().map(|g| g.open_for(&reader)) {
            let msg = e.to_string();
            if !cfg.quiet {
                writeln!(diag, "tlspeek: {msg}")?;
            }
            summary.errors.push(msg);
            break;
        }
        opened += 1;
        // Flow ids are packet numbers, counted across the inputs.
        let base = summary.packets;
        // -l on a stream (standard input fed by a live tcpdump): one thread, each flow written
        // as it ends, not in batches.
        let parallel = cfg.threads > 1 && !(cfg.line_buffered && reader.total_len().is_none());
        match gate.as_mut() {
            None if parallel => analyze_parallel(reader, cfg, base, &mut summary, &mut sink, diag)?,
            None => analyze(&mut reader, cfg, base, &mut summary, &mut sink, diag)?,
            Some(g) => {
                let mut gated = Gated::new(reader, g);
                if parallel {
                    analyze_parallel(gated, cfg, base, &mut summary, &mut sink, diag)?;
                } else {
                    analyze(&mut gated, cfg, base, &mut summary, &mut sink, diag)?;
                }
            }
        }
    }
    // (No input opened: no -w file either, as tcpdump makes none.)
    if let Some(g) = gate.as_mut().filter(|_| opened > 0) {
        finish_gate(g, linktype, cfg, &mut summary, diag)?;
    }
    if let Some(opts) = &cfg.live {
        match LiveCapture::open(opts.clone()) {
            Ok(mut cap) => {
                opened += 1;
                install_stop_handlers();
                // Nothing after this point needs root or CAP_NET_RAW (the socket and the -w file
                // are open): give them up, as tcpdump -Z does.
                let who = match opts.drop_to.as_deref().map(crate::capture::privs::drop_privileges) {
                    Some(Ok(d)) => format!(" as uid {} (capabilities dropped)", d.uid),
                    Some(Err(e)) => {
                        if !cfg.quiet {
                            writeln!(diag, "tlspeek: could not drop privileges: {e}")?;
                        }
                        String::new()
                    }
                    None => String::new(),
                };
                if !cfg.quiet {
                    writeln!(
                        diag,
                        "tlspeek: capturing on {}{who}; Ctrl-C stops and reports",
                        opts.interface
                    )?;
                }
                let base = summary.packets;
                analyze(&mut cap, cfg, base, &mut summary, &mut sink, diag)?;
                if let Some((recv, drop, ifdrop)) = cap.stats() {
                    summary.capture_stats = Some(crate::report::CaptureStats {
                        received: recv.into(),
                        dropped: drop.into(),
                        if_dropped: ifdrop.into(),
                    });
                    if !cfg.quiet {
                        writeln!(
                            diag,
                            "tlspeek: {recv} packets received by filter, {drop} dropped by kernel, {ifdrop} dropped by interface"
                        )?;
                    }
                }
            }
            Err(msg) => {
                if !cfg.quiet {
                    writeln!(diag, "tlspeek: {msg}")?;
                }
                summary.errors.push(msg);
            }
        }
    }
    summary.close(&cfg.mesh);
    let violations = summary.expectations.as_ref().map_or(0, |e| e.failed);
    // Every error was written once, on stderr, as it happened. The JSON summary lists them
    // (`errors`: stdout is complete for a program); the table does not repeat them, and when no
    // input could be opened at all it prints nothing (no empty summary), as tcpdump.
    let out = match sink {
        Sink::Json(out) => write_json_summary(out, &summary, cfg, diag)?,
        Sink::Count(Format::Json) => write_json_summary(out, &summary, cfg, diag)?,
        Sink::Table(out, _) | Sink::LiveTable(out, _, _) if opened == 0 => out,
        Sink::Count(Format::Table) if opened == 0 => out,
        Sink::Table(out, mut rows) => {
            rows.finish(out, &summary)?;
            out
        }
        Sink::Count(Format::Table) => {
            table::write_summary(out, &summary, cfg.table.width)?;
            out
        }
        Sink::LiveTable(out, ..) => {
            writeln!(out)?;
            table::write_summary(out, &summary, cfg.table.width)?;
            out
        }
    };
    out.flush()?;
    Ok(Outcome { errors: summary.errors.clone(), flows: summary.flows, violations })
}

/// Ends `-w` (closes the file; an empty one when no packet passed) and says which packets it
/// could not write (other link types than the first: a pcap file holds one).
fn finish_gate(
    g: &mut Gate,
    linktype: Option<u32>,
    cfg: &Config,
    summary: &mut Summary,
    diag: &mut dyn Write,
) -> io::Result<()> {
    if let Err(e) = g.finish(linktype) {
        let msg = e.to_string();
        if !cfg.quiet {
            writeln!(diag, "tlspeek: {msg}")?;
        }
        summary.errors.push(msg);
    }
    if let (Some(w), false) = (&cfg.offline.write, cfg.quiet) {
        for (&lt, &n) in &g.not_written {
            writeln!(
                diag,
                "tlspeek: {}: {n} packets of {} analysed but not written: a pcap file holds one link type (that of the first packet written)",
                w.path.display(),
                linktype_name(lt)
            )?;
        }
    }
    Ok(())
}

/// The JSON summary line, and the expectation results on stderr (stdout is for machines).
fn write_json_summary<'a>(
    out: &'a mut dyn Write,
    summary: &Summary,
    cfg: &Config,
    diag: &mut dyn Write,
) -> io::Result<&'a mut dyn Write> {
    json::write_summary(out, summary)?;
    if !cfg.quiet {
        table::write_expectations(diag, summary, None)?;
    }
    Ok(out)
}

/// A finished flow waiting for its turn: reports leave in the order the flows ended.
struct Pending {
    /// Boxed: a report is ~1.5 KB, moved between the worker, the channel and the ordering map.
    report: Box<FlowReport>,
    /// Global number of the flow's first packet: its id.
    order: u64,
    /// Number of the packet at which the flow was ended: reports are written in this order.
    end_order: u64,
    /// Server port and time span, for the XFCC confirmation.
    port: u16,
    first: f64,
    last: f64,
    rendered: Rendered,
    /// Shard whose worker made it (and frees it, see [`Merger::spent`]).
    shard: usize,
}

/// An XFCC identity seen on a loopback leg: server port, time, `URI=`, `By=`.
type XfccSeen = (u16, f64, String, Option<String>);

/// Flow tracking over one capture, or over one shard of it (`--threads`: the dispatching
/// thread reads and decodes every packet and hands each worker the segments of the flows whose
/// 4-tuple hashes to its shard, see [`Worker::route`]). The counters of what is not a TCP flow
/// are kept by the worker that reads the packets.
struct Worker {
    out: FlowOut,
    live: bool,
    classify: ClassifyConfig,
    /// This worker reads the packets and counts them (one thread, or the dispatcher).
    counting: bool,
    table: FlowTable<FlowClassifier>,
    defrag: Defragmenter,
    skipped: BTreeMap<u32, u64>,
    non_tcp: BTreeMap<NonTcp, u64>,
    /// Number of the current packet (for a shard: the packet of its last segment, then the last
    /// packet dispatched), counting from `base`.
    order: u64,
    /// Packets of the inputs read before this one.
    base: u64,
    /// Captured bytes seen.
    bytes: u64,
    /// Flows ended but not yet reported, oldest first, finished [`ENDED_BATCH`] at a time (see
    /// [`Ended`]).
    ended: std::collections::VecDeque<Ended>,
    /// How many ended flows may wait: [`ENDED_BATCH`], or [`DEFERRED_FLOWS`] for the threads
    /// of `--threads`, which finish them when they would otherwise wait for each other.
    defer: usize,
    done: Vec<Pending>,
    xfcc: Vec<XfccSeen>,
    /// Halves of REDIRECTed connections on loopback, paired into one flow (reading worker).
    redirects: RedirectPairs,
    /// The original destination of the next segment's flow, when that segment paired halves.
    redirect_note: Option<std::net::SocketAddr>,
}

/// A flow taken out of the table, to be reported with others ([`Worker::finish_ended`]).
/// Building and rendering a report runs a lot of code once per flow: one flow at a time, between
/// packets, it was fetched into the instruction cache anew every time and pushed the packet
/// path out of it (callgrind: instruction-cache misses -29% once batched), and the flows' cold
/// memory can be prefetched for the next flows while one is finished. What depends on later
/// packets (the servers known so far) is decided when the flow ends.
struct Ended {
    end_order: u64,
    hint: Option<(crate::wire::Side, &'static str)>,
    meta: FlowMeta,
    c: FlowClassifier,
}

/// Flows ended before their reports are built together (a flow ends every 32 packets on the
/// benchmark). Their state stays alive that long outside the table's limits: this many flows
/// per worker ([`DEFERRED_FLOWS`] with `--threads`), or all the flows one idle sweep ends.
const ENDED_BATCH: usize = 32;

/// With `--threads`, ended flows a thread may keep before it finishes the oldest: finishing
/// (building and rendering the reports, a quarter of a worker's time) is the work a thread does
/// when it would otherwise wait: the reading thread for a full queue, a worker for an empty one.
/// The load of the two swings with the flows at hand (a run of heavy HTTP flows in one shard),
/// and only four batches in flight (about 1,000 packets) absorbed that: the two threads kept
/// 1.84-1.85 CPUs busy of 2. Measured on the 1 GB benchmark (interleaved runs, medians): 32, 64
/// and 128 flows: 1.87-1.89 CPUs, 0.01 s faster in three series of 15-21 runs; 512: +8% CPU
/// (the flows' state had left the cache by the time it was finished). Each kept flow holds its
/// state until then; the merger can only write flows that ended before the oldest kept one.
const DEFERRED_FLOWS: usize = 64;

/// What turning a finished flow into a report needs, besides the flow.
struct FlowOut {
    /// Input name (the report's `source`).
    name: std::sync::Arc<str>,
    nanos: bool,
    cert_warn: i64,
    servers: KnownServers,
    render: RenderMode,
    shard: usize,
}

/// A flow ending now: how to report it, and the number of the packet at which it ends.
#[derive(Clone, Copy)]
struct Ending<'a> {
    out: &'a FlowOut,
    end_order: u64,
}

/// Server endpoints seen answering a SYN (SYN-ACK senders), to tell client from server in
/// flows whose handshake the capture missed. Every shard is told of every SYN-ACK, so the set
/// is the same whatever `--threads`; bounded (cleared when full).
#[derive(Default)]
struct KnownServers(std::collections::HashSet<(IpAddr, u16), crate::wire::KeyedState>);

/// A SYN-ACK: its sender is a server.
fn is_server_answer(seg: &crate::decode::TcpSegment<'_>) -> bool {
    use crate::decode::tcp_flags::{ACK, SYN};
    seg.has(SYN) && seg.has(ACK)
}

/// Server endpoints remembered at most.
const MAX_KNOWN_SERVERS: usize = 65_536;

impl KnownServers {
    fn saw(&mut self, seg: &crate::decode::TcpSegment<'_>) {
        if is_server_answer(seg) {
            self.note(seg.src, seg.sport);
        }
    }

    fn note(&mut self, ip: IpAddr, port: u16) {
        if !self.0.contains(&(ip, port)) {
            if self.0.len() >= MAX_KNOWN_SERVERS {
                self.0.clear();
            }
            self.0.insert((ip, port));
        }
    }

    /// The client side of a flow when exactly one endpoint is a known server.
    fn client_of(&self, meta: &FlowMeta) -> Option<crate::wire::Side> {
        use crate::wire::Side;
        let known = |i: usize| self.0.contains(&(meta.endpoints[i].ip(), meta.endpoints[i].port()));
        match (known(0), known(1)) {
            (true, false) => Some(Side::B),
            (false, true) => Some(Side::A),
            _ => None,
        }
    }
}

/// A worker's line buffer is given back after a line longer than this (a flow with a thousand
/// recorded requests can make a multi-megabyte line).
const MAX_KEPT_LINE: usize = 1 << 20;

/// Takes one flow out of the table: what it is reported with later is decided now.
fn end_flow(e: Ending<'_>, meta: FlowMeta, c: FlowClassifier, ended: &mut std::collections::VecDeque<Ended>) {
    let hint = c.client_hint().or_else(|| e.out.servers.client_of(&meta).map(|s| (s, "known_server")));
    ended.push_back(Ended { end_order: e.end_order, hint, meta, c });
}

/// Ends one flow: its report, with certificate warnings, goes to `done`.
fn finish_flow(out: &FlowOut, Ended { end_order, hint, meta, c }: Ended, done: &mut Vec<Pending>) {
    let (client, _) = crate::report::decide_client(&meta, hint);
    let port = meta.endpoints[client.other().idx()].port();
    let (first, last, order) = (meta.first_ts.as_f64(), meta.last_ts.as_f64(), meta.order);
    let mut classified = c.finish(client);
    classified.client_hint = classified.client_hint.or(hint);
    let mut report = FlowReport::build(meta, classified, &out.name, out.nanos);
    mesh::cert_warnings(&mut report, out.cert_warn);
    let rendered = match out.render {
        _ if mesh::may_confirm(&report) => Rendered::No,
        RenderMode::None => Rendered::No,
        RenderMode::Json => {
            thread_local! {
                // Rendered here, then copied at its size: a line grown in its own buffer was
                // reallocated up to four times (half the lines are over 1.5 KB, a tenth over
                // 6.5 KB), each time into memory not in cache.
                static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            LINE.with_borrow_mut(|line| {
                line.clear();
                json::render_flow(line, &report);
                let out = Rendered::Json(line.as_slice().to_vec());
                if line.capacity() > MAX_KEPT_LINE {
                    *line = Vec::new(); // not kept for the thread's life after a huge flow
                }
                out
            })
        }
        RenderMode::Row(opts) => Rendered::Row(Box::new(table::render(&report, opts))),
    };
    let report = Box::new(report);
    let shard = out.shard;
    done.push(Pending { report, order, end_order, port, first, last, rendered, shard });
}

/// A cheap, symmetric hash of a segment's 4-tuple, to pick its shard.
fn shard_of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, shards: u64) -> u64 {
    let fold = |ip: IpAddr| -> u64 {
        match ip {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        }
    };
    let a = fold(src).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(sport);
    let b = fold(dst).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(dport);
    // Symmetric in the two endpoints; then mixed (splitmix64 finaliser).
    let mut x = a.wrapping_add(b) ^ (a ^ b).rotate_left(29);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    // Shard 0 is followed by the thread that also reads and decodes every packet: it gets a
    // smaller share (READER_UNITS / SHARE_UNITS of the others'), so that the threads finish
    // together. x * units / 2^64 picks a unit (a multiplication, not a 64-bit division: 40
    // cycles per packet).
    let units = share_units(shards);
    let u = ((u128::from(x) * u128::from(units)) >> 64) as u64;
    if u < READER_UNITS {
        0
    } else {
        1 + (u - READER_UNITS) / SHARE_UNITS
    }
}

/// Shard 0's share of the flows relative to the others' (`READER_UNITS / SHARE_UNITS`):
/// 30% of the flows with two threads. Measured with `perf` on the 1 GB benchmark: with 44%, the
/// reading thread had 15-45% more samples than the other; with 36%, -17% to +15%; once flows
/// were finished in prefetched batches (cheaper per flow, so the reading itself weighs more),
/// 36% gave the reading thread 16-20% more samples; 30%, -1% to +3%; 27%, 7-9% fewer.
const READER_UNITS: u64 = 7;
const SHARE_UNITS: u64 = 16;

/// The units all `shards` share out: shard 0 has [`READER_UNITS`], the others [`SHARE_UNITS`].
fn share_units(shards: u64) -> u64 {
    READER_UNITS + SHARE_UNITS * (shards - 1)
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: &Config,
        name: &str,
        nanos: bool,
        live: bool,
        base: u64,
        shard: u64,
        shards: u64,
        render: RenderMode,
    ) -> Worker {
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
        Worker {
            counting: shards == 1,
            out: FlowOut {
                name: name.into(),
                nanos,
                cert_warn: cfg.mesh.cert_warn_secs,
                servers: KnownServers::default(),
                render,
                shard: shard as usize,
            },
            live,
            classify: cfg.classify,
            table: FlowTable::new(limits),
            defrag: Defragmenter::default(),
            skipped: BTreeMap::new(),
            non_tcp: BTreeMap::new(),
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
    fn packet(&mut self, pkt: &crate::capture::Packet<'_>) -> Option<FlowReport> {
        self.take(pkt, |w, seg, ts| w.segment(seg, ts))
    }

    /// Counts and decodes one packet, reassembles IPv4 fragments, and gives each TCP segment to
    /// `tcp` (its report is returned when the packet itself was the segment).
    fn take(
        &mut self,
        pkt: &crate::capture::Packet<'_>,
        mut tcp: impl FnMut(
            &mut Worker,
            &crate::decode::TcpSegment<'_>,
            crate::wire::Timestamp,
        ) -> Option<FlowReport>,
    ) -> Option<FlowReport> {
        self.order += 1;
        self.bytes += pkt.data.len() as u64;
        if !is_supported_linktype(pkt.linktype) {
            *self.skipped.entry(pkt.linktype).or_default() += 1;
            return None;
        }
        match decode(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Tcp(mut seg) => {
                if let Redirect::Paired(o) = self.redirects.apply(&mut seg, pkt.ts.secs) {
                    self.redirect_note = Some(o);
                }
                tcp(self, &seg, pkt.ts)
            }
            Decoded::Fragment(frag) => {
                let d = self.defrag.push(&frag, pkt.ts)?;
                if d.proto == 6 {
                    let (src, dst) = (IpAddr::V4(Ipv4Addr::from(d.src)), IpAddr::V4(Ipv4Addr::from(d.dst)));
                    if let Decoded::Tcp(mut seg) = decode_tcp(src, dst, &d.payload, d.payload.len()) {
                        if let Redirect::Paired(o) = self.redirects.apply(&mut seg, pkt.ts.secs) {
                            self.redirect_note = Some(o);
                        }
                        tcp(self, &seg, pkt.ts);
                    }
                } else {
                    *self
                        .non_tcp
                        .entry(if d.proto == 17 { NonTcp::Udp } else { NonTcp::OtherIp })
                        .or_default() += 1;
                }
                None
            }
            Decoded::Other(k) => {
                *self.non_tcp.entry(k).or_default() += 1;
                None
            }
        }
    }

    fn segment(
        &mut self,
        seg: &crate::decode::TcpSegment<'_>,
        ts: crate::wire::Timestamp,
    ) -> Option<FlowReport> {
        self.out.servers.saw(seg);
        let w = Ending { out: &self.out, end_order: self.order };
        let ccfg = self.classify;
        let ended = &mut self.ended;
        let slot = self.table.process(seg, ts, self.order, &mut || FlowClassifier::new(ccfg), &mut |m, c| {
            end_flow(w, m, c, ended)
        });
        if let (Some(o), Some(p)) = (self.redirect_note.take(), slot) {
            self.table.set_original_dst(p.slot, o);
        }
        if self.ended.len() >= self.defer {
            // Down to the last ENDED_BATCH below the limit (all of them when it is ENDED_BATCH).
            self.finish_some(self.ended.len() + ENDED_BATCH - self.defer);
        }
        // A segment that was not fed to the flow (a bare ACK, or a direction whose classifier is
        // done: most packets) cannot have brought a request or a classification: the classifier,
        // in cache lines of its own, is not read.
        let (meta, c) = slot.filter(|p| p.fed).and_then(|p| self.table.flow_mut(p.slot))?;
        if let Some((uri, by)) = c.take_xfcc() {
            let (client, _) = crate::report::decide_client(meta, c.client_hint());
            let (ce, se) = (meta.endpoints[client.idx()], meta.endpoints[client.other().idx()]);
            if ce.ip().is_loopback() || se.ip().is_loopback() {
                self.xfcc.push((se.port(), ts.as_f64(), uri, by));
            }
        }
        if self.live && c.take_newly_classified() {
            let (client, _) = crate::report::decide_client(meta, c.client_hint());
            let mut f = FlowReport::build(meta.clone(), c.snapshot(client), &self.out.name, self.out.nanos);
            f.event = "classified";
            mesh::cert_warnings(&mut f, self.out.cert_warn);
            return Some(f);
        }
        None
    }

    /// Reads one packet for the shard workers: counts it, decodes it, reassembles IPv4
    /// fragments, and adds each TCP segment to the batch of its flow's shard (see [`What`]).
    fn route(
        &mut self,
        pkt: &crate::capture::Packet<'_>,
        buf: &crate::capture::SharedBuffer,
        out: &mut [Batch],
        seen: &mut [Option<i64>],
    ) {
        self.take(pkt, |w, seg, ts| {
            w.route_segment(seg, ts, buf, out, seen);
            None
        });
    }

    /// Takes a batch from the dispatching thread (a shard worker).
    fn dispatched(&mut self, b: &Batch) {
        for e in &b.events {
            self.order = e.order;
            match e.what {
                What::Segment { head, start, len } => {
                    let payload = &b.data[start as usize..start as usize + len as usize];
                    self.segment(&crate::decode::TcpSegment { payload, ..head }, e.ts);
                }
                What::Shared { head, buffer, start, len } => {
                    let payload = b
                        .shared
                        .get(buffer as usize)
                        .and_then(|s| s.get(start as usize..(start + len) as usize));
                    self.segment(
                        &crate::decode::TcpSegment { payload: payload.unwrap_or_default(), ..head },
                        e.ts,
                    );
                }
                What::Server(ip, port) => {
                    self.out.servers.note(ip, port);
                    self.sweep(e.ts);
                }
                What::Tick => self.sweep(e.ts),
                What::Redirect(o) => self.redirect_note = Some(o),
            }
        }
        self.order = b.upto;
    }

    /// Ends the flows idle at `now` (as of packet `self.order`); also for a live capture with
    /// no traffic.
    fn sweep(&mut self, now: crate::wire::Timestamp) {
        let w = Ending { out: &self.out, end_order: self.order };
        let ended = &mut self.ended;
        self.table.maybe_sweep(now, &mut |m, c| end_flow(w, m, c, ended));
    }

    /// Builds the reports of the flows ended so far (see [`Ended`]).
    fn finish_ended(&mut self) {
        self.finish_some(usize::MAX);
    }

    /// Builds the reports of the `n` oldest flows ended so far (see [`Ended`]).
    fn finish_some(&mut self, n: usize) {
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
            finish_flow(&self.out, e, &mut self.done);
        }
    }

    /// The last packet up to which every flow that ended has been finished (the merger can
    /// write the flows of any shard that ended up to there).
    fn finished_upto(&self) -> u64 {
        self.ended.front().map_or(self.order, |e| e.end_order.saturating_sub(1))
    }

    /// Sends the merger the reports finished so far and the XFCC identities seen, with
    /// [`Self::finished_upto`]; flows ended but not finished stay (see [`DEFERRED_FLOWS`]),
    /// unless this is the `last` batch. First frees what the merger wrote of ours since the last
    /// batch, here where it was allocated. False when the merger is gone (output error).
    fn send_finished(
        &mut self,
        tx: &std::sync::mpsc::SyncSender<Msg>,
        spent: &std::sync::mpsc::Receiver<Vec<Pending>>,
        last: bool,
    ) -> bool {
        spent.try_iter().for_each(drop);
        if last {
            self.finish_ended();
        }
        let processed = self.finished_upto();
        let (done, xfcc) = (std::mem::take(&mut self.done), std::mem::take(&mut self.xfcc));
        tx.send(Msg::Batch { shard: self.out.shard, done, xfcc, processed }).is_ok()
    }

    /// Ends the open flows whose first packet is number `last` or earlier (end of input).
    fn finish_up_to(&mut self, last: u64) -> usize {
        let w = Ending { out: &self.out, end_order: self.order + 1 };
        let ended = &mut self.ended;
        self.table.finish_up_to(last, &mut |m, c| end_flow(w, m, c, ended))
    }

    /// Adds the counters of this worker to the summary.
    fn add_counts(&self, summary: &mut Summary) {
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
        }
    }
}

/// Writes finished flows in the order they ended (ties: first packet), the same for any number
/// of shards, after applying the XFCC confirmation.
struct Merger {
    waiting: BTreeMap<(u64, u64), Pending>,
    xfcc: XfccLegs,
    /// Flush after every flow (live capture).
    flush_each: bool,
    /// Written flows, kept to be sent back to the workers that made them (`--threads`): a
    /// block freed by the thread that allocated it is a local free; freed here, every one went
    /// through the allocator's cross-thread list (8% of the time in `perf`).
    spent: Option<Vec<Pending>>,
    /// Flows counted, whose rendered lines are not written yet ([`Merger::write_unwritten`]).
    unwritten: Vec<Pending>,
    unwritten_bytes: usize,
}

impl Merger {
    fn new(flush_each: bool) -> Merger {
        Merger {
            waiting: BTreeMap::new(),
            xfcc: XfccLegs::default(),
            flush_each,
            spent: None,
            unwritten: Vec::new(),
            unwritten_bytes: 0,
        }
    }

    fn add(&mut self, done: &mut Vec<Pending>, xfcc: &mut Vec<XfccSeen>) {
        for (port, ts, uri, by) in xfcc.drain(..) {
            self.xfcc.record(port, ts, &uri, by.as_deref());
        }
        for p in done.drain(..) {
            self.waiting.insert((p.end_order, p.order), p);
        }
    }

    /// Takes the finished flows of a worker on this thread.
    fn take_from(&mut self, w: &mut Worker) {
        w.finish_ended();
        self.add(&mut w.done, &mut w.xfcc);
    }

    /// Writes every waiting flow that ended at or before packet `processed`: every shard has
    /// read that far, so no flow can still end earlier, and every XFCC header sent before the
    /// flow's last packet is known.
    fn release(
        &mut self,
        processed: u64,
        summary: &mut Summary,
        sink: &mut Sink<'_>,
        mesh_cfg: &MeshConfig,
    ) -> io::Result<()> {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > processed {
                break;
            }
            let mut p = entry.remove();
            self.xfcc.confirm(&mut p.report, p.port, p.first, p.last);
            if let (Sink::Json(_), Rendered::Json(line), false) = (&*sink, &p.rendered, self.flush_each) {
                // Written below with the others, straight from the worker's buffers.
                summary.count_flow(&p.report, mesh_cfg);
                self.unwritten_bytes += line.len();
                self.unwritten.push(p);
                if self.unwritten_bytes >= UNWRITTEN_BYTES {
                    self.write_unwritten(sink)?;
                }
                continue;
            }
            self.write_unwritten(sink)?;
            sink.emit(&mut p, summary, mesh_cfg)?;
            if let Some(spent) = &mut self.spent {
                spent.push(p);
            }
            if self.flush_each {
                sink.flush()?;
            }
        }
        self.write_unwritten(sink)
    }

    /// Writes the lines rendered by the workers of the flows in `unwritten`, in one vectored
    /// write, instead of copying each into the output buffer (150 MB per GB of capture, read
    /// across cores). The flows then go back to their workers with their lines.
    fn write_unwritten(&mut self, sink: &mut Sink<'_>) -> io::Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        if let Sink::Json(out) = sink {
            let mut slices: Vec<io::IoSlice<'_>> = self
                .unwritten
                .iter()
                .filter_map(|p| match &p.rendered {
                    Rendered::Json(line) => Some(io::IoSlice::new(line)),
                    _ => None,
                })
                .collect();
            write_all_vectored(&mut **out, &mut slices)?;
        }
        self.unwritten_bytes = 0;
        match &mut self.spent {
            Some(spent) => spent.append(&mut self.unwritten),
            None => self.unwritten.clear(),
        }
        Ok(())
    }
}

/// Flows whose lines the merging thread collects before writing them ([`Merger::write_unwritten`]).
const UNWRITTEN_BYTES: usize = 1 << 20;

/// `Write::write_all` for several buffers (std's `write_all_vectored` is unstable).
fn write_all_vectored(out: &mut dyn Write, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Merger {
    /// Ends and writes the flows still open when the input ended, over all `workers` (shards),
    /// oldest first: each batch ends every flow of any shard up to the [`END_BATCH`]-th oldest
    /// of one shard, so all of them can be written before the next batch is built.
    fn end_open_flows(
        &mut self,
        workers: &mut [&mut Worker],
        summary: &mut Summary,
        sink: &mut Sink<'_>,
        mesh_cfg: &MeshConfig,
    ) -> io::Result<()> {
        while let Some(last) = workers.iter().filter_map(|w| w.table.nth_live_order(END_BATCH)).min() {
            for w in workers.iter_mut() {
                w.finish_up_to(last);
                self.take_from(w);
            }
            self.release(u64::MAX, summary, sink, mesh_cfg)?;
        }
        Ok(())
    }
}

/// Reads one capture to its end (or first error), numbering its packets after `base`.
fn analyze(
    reader: &mut dyn PacketSource,
    cfg: &Config,
    base: u64,
    summary: &mut Summary,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<()> {
    let name = reader.name().to_string();
    // Files release finished flows in batches; a live capture (or -l) releases them at once.
    let batch: u64 = if reader.total_len().is_some() && !cfg.line_buffered { 8192 } else { 1 };
    let live = reader.is_live();
    let mut w = Worker::new(cfg, &name, reader.nanosecond_precision(), live, base, 0, 1, RenderMode::None);
    let mut m = Merger::new(batch == 1);
    let progress = cfg.progress.then(|| crate::report::progress::bar(reader.total_len()));
    let mut error = None;
    loop {
        let pkt = match reader.next() {
            Ok(Next::Packet(p)) => p,
            Ok(Next::Idle(now)) => {
                // Live capture with no traffic: idle flows still end and are reported.
                w.sweep(now);
                m.take_from(&mut w);
                m.release(w.order, summary, sink, &cfg.mesh)?;
                continue;
            }
            Ok(Next::End) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        if let Some(f) = w.packet(&pkt) {
            sink.announce(&f)?;
        }
        if !w.xfcc.is_empty() || w.order.is_multiple_of(batch) {
            m.take_from(&mut w);
        }
        if w.order.is_multiple_of(batch) {
            m.release(w.order, summary, sink, &cfg.mesh)?;
            if let Some(p) = &progress {
                if w.order.is_multiple_of(8192) {
                    p.set_position(reader.position());
                }
            }
        }
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    // What ended before the input did, then the flows still open.
    m.take_from(&mut w);
    m.release(u64::MAX, summary, sink, &cfg.mesh)?;
    m.end_open_flows(&mut [&mut w], summary, sink, &cfg.mesh)?;
    w.add_counts(summary);
    finish_file(&name, &w.skipped, error, cfg, summary, diag)
}

/// What a shard worker sends to the merging thread.
enum Msg {
    /// Finished flows and XFCC observations, then how far the worker is.
    Batch { shard: usize, done: Vec<Pending>, xfcc: Vec<XfccSeen>, processed: u64 },
    /// The worker took every batch.
    End { shard: usize, worker: Box<Worker> },
}

/// Flows still open at the end of the input are ended (oldest first) and written this many at
/// a time, so that their reports are never all held at once.
const END_BATCH: usize = 1024;

/// Packets between two batches of reports sent by a worker to the merging thread. Each batch
/// wakes that thread, which then takes a core from a worker: with 1,024, the 1 GB benchmark
/// took 0.63 s (median of 9, 2 threads); with 4,096, 0.56 s and 3 MB more; 16,384 was slower.
const SHARD_BATCH: u64 = 4096;

/// Packets between two batches sent by the reading thread to each shard worker: small, so that
/// the batches in flight stay in the L2 cache (with 1,024 packets, 270 KB each, copying
/// payloads into them was a fifth of the reading thread's time).
const DISPATCH_BATCH: u64 = 256;

/// A batch is sent early once its payloads reach this size: 256 packets of 64 KiB would be
/// 16 MB a batch. With [`QUEUED_BATCHES`], a worker has at most about 2 MB in flight.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Batches queued for a shard worker before the dispatching thread waits for it: this bounds
/// the memory in flight, and how far the fastest worker runs ahead of the slowest.
const QUEUED_BATCHES: usize = 4;

/// What the dispatching thread hands one shard worker for a run of packets.
#[derive(Default)]
struct Batch {
    /// Payloads of the segments, back to back.
    data: Vec<u8>,
    /// Read buffers holding payloads of [`What::Shared`] segments (not copied into `data`).
    shared: Vec<crate::capture::SharedBuffer>,
    /// Payload bytes of the segments, in `data` or `shared`.
    bytes: usize,
    events: Vec<Event>,
    /// Every packet up to this number has been dispatched.
    upto: u64,
}

/// One event of a [`Batch`]: what the worker does at packet `order`.
struct Event {
    order: u64,
    ts: crate::wire::Timestamp,
    what: What,
}

/// The part of a packet a shard worker needs. A worker must end idle flows at the same packet
/// as one thread would: its flow table sweeps at the first TCP packet of each new capture
/// second, whichever flow it belongs to. So besides its own segments it is told of the other
/// shards' segments whose second differs from the previous one it was told of (a sweep at a
/// packet of the same second as the one before does nothing), and of every SYN-ACK.
enum What {
    /// A segment of one of this worker's flows: its header fields (`head`, with no payload),
    /// its payload at `data[start..start + len]`.
    Segment { head: crate::decode::TcpSegment<'static>, start: u32, len: u32 },
    /// A segment of one of this worker's flows whose payload is `shared[buffer][start..start +
    /// len]`: in the reading thread's read buffer, not copied (the copy was 5% of the reading
    /// thread's samples, half of what handing segments over cost it).
    Shared { head: crate::decode::TcpSegment<'static>, buffer: u32, start: u32, len: u32 },
    /// Another shard's segment in a new capture second.
    Tick,
    /// Another shard's SYN-ACK, from this server (see [`KnownServers`]).
    Server(IpAddr, u16),
    /// The next segment paired the halves of a REDIRECTed connection: the flow's original
    /// destination (see [`RedirectPairs`]).
    Redirect(std::net::SocketAddr),
}

impl Worker {
    /// Follows segment `seg` here when its flow is of shard 0 (this worker's), else adds it to
    /// the batch of its shard; tells the other shards what they must know of it (see [`What`]).
    /// `seen`: per shard, the capture second it was last told of.
    fn route_segment(
        &mut self,
        seg: &crate::decode::TcpSegment<'_>,
        ts: crate::wire::Timestamp,
        buf: &crate::capture::SharedBuffer,
        out: &mut [Batch],
        seen: &mut [Option<i64>],
    ) {
        let own = shard_of(seg.src, seg.sport, seg.dst, seg.dport, out.len() as u64) as usize;
        if let Some(o) = self.redirect_note.take_if(|_| own != 0) {
            out[own].events.push(Event { order: self.order, ts, what: What::Redirect(o) });
        }
        if own == 0 {
            self.segment(seg, ts);
        } else {
            self.out.servers.saw(seg);
            self.sweep(ts);
        }
        for (k, (b, seen)) in out.iter_mut().zip(seen.iter_mut()).enumerate().skip(1) {
            let what = if k == own {
                let head = crate::decode::TcpSegment { payload: &[], ..*seg };
                let len = seg.payload.len() as u32;
                b.bytes += seg.payload.len();
                // In the read buffer (not a reassembled IPv4 fragment): handed over, not copied.
                let at = (seg.payload.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
                if at <= buf.len() && seg.payload.len() <= buf.len() - at {
                    if !b.shared.last().is_some_and(|s| std::sync::Arc::ptr_eq(s, buf)) {
                        b.shared.push(buf.clone());
                    }
                    What::Shared { head, buffer: b.shared.len() as u32 - 1, start: at as u32, len }
                } else {
                    let start = b.data.len() as u32;
                    b.data.extend_from_slice(seg.payload);
                    What::Segment { head, start, len }
                }
            } else if is_server_answer(seg) {
                What::Server(seg.src, seg.sport)
            } else if *seen != Some(ts.secs) {
                What::Tick
            } else {
                continue;
            };
            *seen = Some(ts.secs);
            b.events.push(Event { order: self.order, ts, what });
        }
    }
}

/// The dispatching thread: reads every packet once, follows shard 0, and sends each other
/// shard worker its batch every [`DISPATCH_BATCH`] packets. Returns the counting worker and the read error, if any.
#[allow(clippy::too_many_arguments)]
fn dispatch<R: SharedSource>(
    reader: &mut R,
    mut d: Worker,
    to: Vec<std::sync::mpsc::SyncSender<Batch>>,
    free: Vec<std::sync::mpsc::Receiver<Batch>>,
    tx: std::sync::mpsc::SyncSender<Msg>,
    spent: std::sync::mpsc::Receiver<Vec<Pending>>,
    progress: Option<indicatif::ProgressBar>,
) -> (Worker, Option<String>) {
    // Batches for shards 1..; shard 0 is followed here.
    let mut out: Vec<Batch> = (0..=to.len()).map(|_| Batch::default()).collect();
    let mut seen = vec![None; to.len() + 1];
    // Used batches come back to be refilled: freeing and allocating them would fault their
    // pages in again every time.
    let send = |out: &mut Vec<Batch>, d: &mut Worker, reports: bool, last: bool| -> bool {
        for ((b, to), free) in out.iter_mut().skip(1).zip(&to).zip(&free) {
            let mut full = std::mem::replace(b, free.try_recv().unwrap_or_default());
            full.upto = d.order;
            // A worker behind: finish ended flows meanwhile (see DEFERRED_FLOWS).
            loop {
                match to.try_send(full) {
                    Ok(()) => break,
                    Err(std::sync::mpsc::TrySendError::Full(b)) if !d.ended.is_empty() => {
                        full = b;
                        d.finish_some(ENDED_BATCH);
                    }
                    Err(std::sync::mpsc::TrySendError::Full(b)) => {
                        if to.send(b).is_err() {
                            return false;
                        }
                        break;
                    }
                    // A worker stopped: the merger is gone (output error).
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return false,
                }
            }
        }
        !reports || d.send_finished(&tx, &spent, last)
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
            if !send(&mut out, &mut d, reports, false) {
                return (d, error);
            }
            if let Some(p) = progress.as_ref().filter(|_| reports) {
                p.set_position(reader.position());
            }
        }
    }
    send(&mut out, &mut d, true, true);
    (d, error)
}

/// One shard worker: follows the flows of its shard from the batches it is sent, and sends
/// their reports on. The flows still open at the end stay in the worker, which is sent back
/// whole: the merging thread ends them across all shards in first-packet order, a batch at a
/// time.
fn shard_main(
    mut w: Worker,
    batches: std::sync::mpsc::Receiver<Batch>,
    free: std::sync::mpsc::Sender<Batch>,
    tx: std::sync::mpsc::SyncSender<Msg>,
    spent: std::sync::mpsc::Receiver<Vec<Pending>>,
) {
    let shard = w.out.shard;
    loop {
        let mut b = match batches.try_recv() {
            Ok(b) => b,
            // Nothing to read yet: finish ended flows meanwhile (see DEFERRED_FLOWS).
            Err(std::sync::mpsc::TryRecvError::Empty) if !w.ended.is_empty() => {
                w.finish_some(ENDED_BATCH);
                continue;
            }
            Err(_) => match batches.recv() {
                Ok(b) => b,
                Err(_) => break,
            },
        };
        w.dispatched(&b);
        if w.order.is_multiple_of(SHARD_BATCH) && !w.send_finished(&tx, &spent, false) {
            return; // the merger stopped (output error)
        }
        b.data.clear();
        b.events.clear();
        b.shared.clear(); // the reading thread may reuse these buffers
        b.bytes = 0;
        let _ = free.send(b);
    }
    if w.send_finished(&tx, &spent, true) {
        let _ = tx.send(Msg::End { shard, worker: Box::new(w) });
    }
}

/// The merging thread's scheduling policy is `SCHED_BATCH` while it waits for the workers'
/// reports, then back to what it was. Woken by every batch of reports (a thousand times per GB),
/// it preempted the reading or the worker thread each time (about 1,000 involuntary context
/// switches of the reading thread per run); as a batch thread it is not run ahead of a busy one
/// on wakeup, only when a core is free or at the next regular tick. Measured on the 1 GB
/// benchmark, 21 interleaved runs: median 0.41 -> 0.39 s, CPU 0.76 -> 0.74 s. Not being allowed
/// to change it (a seccomp profile) changes nothing else.
struct BatchPolicy(Option<libc::c_int>);

impl BatchPolicy {
    fn enter() -> BatchPolicy {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: queries and sets this thread's own policy (pid 0) with a valid sched_param.
        let previous = unsafe { libc::sched_getscheduler(0) };
        let set = previous == libc::SCHED_OTHER
            // SAFETY: as above.
            && unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0;
        BatchPolicy(set.then_some(previous))
    }
}

impl Drop for BatchPolicy {
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: restores this thread's own policy, which it had before.
            unsafe { libc::sched_setscheduler(0, previous, &param) };
        }
    }
}

/// `--threads N` (N > 1) on a capture file or standard input: one thread reads and decodes the
/// packets and hands each of N workers the segments of the flows hashed to it; this thread
/// merges their reports in the order the flows ended (the same order as one thread) and writes
/// them.
///
/// Until this version every worker read and decoded the whole file itself: with two workers
/// that was 57% more CPU than one thread (`perf`: the page-cache copy twice and slower, the
/// decoding twice, the other shard's packets walked through), for 1.8x the speed.
fn analyze_parallel<R: SharedSource>(
    mut reader: R,
    cfg: &Config,
    base: u64,
    summary: &mut Summary,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<()> {
    let shards = cfg.threads.max(1) as u64;
    let name = reader.name().to_string();
    let nanos = reader.nanosecond_precision();
    let render = sink.render_mode();
    let progress = cfg.progress.then(|| crate::report::progress::bar(reader.total_len()));
    let mut m = Merger::new(false);
    m.spent = Some(Vec::new());
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(2 * shards as usize);
    let mut back = Vec::new();
    let mut workers: Vec<Option<Box<Worker>>> = (0..shards).map(|_| None).collect();
    let mut d = Worker::new(cfg, &name, nanos, false, base, 0, shards, render);
    d.counting = true;
    d.defer = DEFERRED_FLOWS;
    let result = std::thread::scope(|scope| -> io::Result<Option<String>> {
        // Dropped on an output error, which stops the workers and then the dispatcher.
        let rx = rx;
        let (mut to, mut free) = (Vec::new(), Vec::new());
        let (back_tx, back_rx) = std::sync::mpsc::channel();
        back.push(back_tx);
        for i in 1..shards {
            let mut w = Worker::new(cfg, &name, nanos, false, base, i, shards, render);
            w.defer = DEFERRED_FLOWS;
            let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel(QUEUED_BATCHES);
            let (free_tx, free_rx) = std::sync::mpsc::channel();
            let (back_tx, back_rx) = std::sync::mpsc::channel();
            to.push(batch_tx);
            free.push(free_rx);
            back.push(back_tx);
            let tx = tx.clone();
            scope.spawn(move || shard_main(w, batch_rx, free_tx, tx, back_rx));
        }
        let bar = progress.clone();
        let reader = &mut reader;
        let dispatcher = scope.spawn(move || {
            let (d, error) = dispatch(reader, d, to, free, tx.clone(), back_rx, bar);
            let _ = tx.send(Msg::End { shard: 0, worker: Box::new(d) });
            error
        });
        let _batch = BatchPolicy::enter();
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
            m.release(processed, summary, sink, &cfg.mesh)?;
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
    m.release(u64::MAX, summary, sink, &cfg.mesh)?;
    let mut ended: Vec<&mut Worker> = workers.iter_mut().flatten().map(|w| &mut **w).collect();
    m.end_open_flows(&mut ended, summary, sink, &cfg.mesh)?;
    for w in workers.iter().flatten() {
        w.add_counts(summary);
    }
    let skipped = workers[0].as_mut().map(|w| std::mem::take(&mut w.skipped)).unwrap_or_default();
    finish_file(&name, &skipped, error, cfg, summary, diag)
}

/// Skipped link types and the error of one file, on stderr and in the summary.
fn finish_file(
    name: &str,
    skipped: &BTreeMap<u32, u64>,
    error: Option<String>,
    cfg: &Config,
    summary: &mut Summary,
    diag: &mut dyn Write,
) -> io::Result<()> {
    for (&lt, &n) in skipped {
        let lname = linktype_name(lt);
        if !cfg.quiet {
            writeln!(diag, "tlspeek: {name}: skipped {n} packets of unsupported {lname}")?;
        }
        *summary.skipped_link_types.entry(lname).or_default() += n;
    }
    if let Some(e) = error {
        if !cfg.quiet {
            writeln!(diag, "tlspeek: {e} (results up to that point are reported)")?;
        }
        summary.errors.push(e);
    }
    Ok(())
}

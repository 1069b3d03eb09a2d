//! The runtime: capture files and a live capture → decode → flow table → classifier →
//! ordered merge → sink. [`run_with_writer`] is the seam the binary and the tests share.
//!
//! This module owns the run's [`Config`], the loop over the inputs (with `-r`'s filter, `-c`
//! and `-w`), the one-thread analysis of a capture (`analyze`) and the [`Outcome`]. The rest
//! is in its parts: `sink` (where reports go), `worker` (flow tracking over a capture
//! or a shard of it, and the making of reports), `merge` (flows released in order, after the
//! XFCC confirmation), `shard` (which worker follows a flow), `parallel` (`--threads`: the
//! dispatching thread, the shard workers, the merging thread).
//!
//! Words for a flow's last steps, here and in `flow`: the table *ends* a flow (takes it out:
//! [`crate::flow::EndReason`]); a worker *reports* ended flows later, in batches (builds their
//! reports); the merger *writes* reports in the order the flows ended.

mod merge;
mod parallel;
mod queue;
pub mod report;
mod shard;
mod sink;
mod worker;

use crate::capture::gate::{Gate, Gated};
use crate::capture::live::{install_stop_handlers, LiveCapture, LiveOptions};
use crate::capture::write::WriteOptions;
use crate::capture::{display_path, CaptureReader, Next, PacketSource};
use crate::classify::ClassifyConfig;
use crate::decode::linktype_name;
use crate::flow::Limits;
use crate::mesh::readings::CountRecord;
use crate::mesh::{MeshBook, MeshConfig};
use crate::report::metrics::{Metrics, MetricsServer, Sample};
use crate::report::{json, table, Summary};
use merge::Merger;
use parallel::analyze_parallel;
use sink::{RenderMode, Sink};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use worker::{Input, ShardId, Worker};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Human table.
    Table,
    /// JSON Lines.
    Json,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Capture files, `-` for standard input.
    pub(crate) inputs: Vec<PathBuf>,
    /// `--ca` files, read by [`Config::load_ca`].
    pub(crate) ca_files: Vec<PathBuf>,
    /// Live capture, read after the files.
    pub(crate) live: Option<LiveOptions>,
    /// Output format.
    pub(crate) format: Format,
    /// Flow table limits.
    pub(crate) limits: Limits,
    /// Classifier settings.
    pub(crate) classify: ClassifyConfig,
    /// Show a progress bar on stderr.
    pub(crate) progress: bool,
    /// Suppress warnings on stderr.
    pub(crate) quiet: bool,
    /// Certificate warnings, per-server verdicts, expectations.
    pub(crate) mesh: MeshConfig,
    /// Worker threads for regular files (1: all in the calling thread).
    pub(crate) threads: usize,
    /// Write only the summary.
    pub(crate) summary_only: bool,
    /// Verbosity and width of the table.
    pub table: table::TableOptions,
    /// What `-r` does to the packets it reads: filter, `-c`, `-w`.
    pub(crate) offline: OfflineOptions,
    /// `-l`: every flow is written (and flushed) as soon as it ends; the table is printed row
    /// by row with fixed columns, as for a live capture.
    pub line_buffered: bool,
    /// `--keylog` files, opened by [`Config::open_keylogs`].
    pub(crate) keylog_files: Vec<PathBuf>,
    /// `--metrics`: serve Prometheus metrics of the live capture on this address.
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// `--html`: write the mesh graph to this file when the run ends.
    pub(crate) html: Option<PathBuf>,
}

impl Config {
    /// Opens the `--keylog` files (read whole; followed in a live capture) into the key store
    /// the classifiers share. Returns the warnings to print once (a file readable by others,
    /// lines not understood); a file that is missing or not a regular file is an error.
    pub fn open_keylogs(&mut self) -> Result<Vec<String>, crate::classify::tls::decrypt::KeyLogError> {
        if self.keylog_files.is_empty() {
            return Ok(Vec::new());
        }
        let (log, mut warnings) =
            crate::classify::tls::decrypt::KeyLog::open(&self.keylog_files, self.live.is_some())?;
        // A key log readable by others is said even with -q; lines not understood are not.
        if !self.quiet {
            warnings.extend(log.bad_lines());
        }
        self.classify.keylog = Some(std::sync::Arc::new(log));
        Ok(warnings)
    }
}

impl Config {
    /// Reads the `--ca` files (nothing without them): certificate chains are then checked
    /// against them. The anchors live as long as the process (see [`ClassifyConfig::ca`]).
    pub fn load_ca(&mut self) -> Result<(), crate::classify::chain::CaError> {
        if !self.ca_files.is_empty() {
            let store = crate::classify::chain::TrustStore::load(&self.ca_files)?;
            self.classify.ca = Some(Box::leak(Box::new(store)));
        }
        Ok(())
    }
}

/// The BPF filter, `-c` and `-w` of a run on capture files (as `tcpdump -r`).
#[derive(Clone, Debug, Default)]
pub(crate) struct OfflineOptions {
    /// Only the packets that pass this filter are analysed (and written).
    pub(crate) filter: Option<String>,
    /// Stop after this many packets (that passed the filter), over all the files.
    pub(crate) count: Option<u64>,
    /// Write the packets analysed to pcap files.
    pub(crate) write: Option<WriteOptions>,
}

/// What the run counts as flows are written: the summary's totals, and the mesh stage's
/// per-server book, which becomes the summary's readings when the run ends.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) summary: Summary,
    book: MeshBook,
    /// `--metrics`: counted with the summary, so both agree.
    metrics: Option<std::sync::Arc<Metrics>>,
    /// `--mesh-config`: the configured policy, put beside each reading at the end.
    policy: Option<crate::mesh::policy::MeshPolicy>,
    /// `--html`: the graph of the flows written.
    graph: Option<crate::mesh::graph::Graph>,
}

impl Tally {
    /// Counts one written flow.
    pub(crate) fn count(&mut self, f: &crate::record::FlowReport, mesh: &MeshConfig) {
        self.count_record(&CountRecord::of(f), Some(f), mesh);
    }

    /// Counts one written flow from its [`CountRecord`] `r`, and its report `f`, which only
    /// `--metrics`, `--html` and what [`CountRecord::needs_report`] names need.
    pub(crate) fn count_record(
        &mut self,
        r: &CountRecord,
        f: Option<&crate::record::FlowReport>,
        mesh: &MeshConfig,
    ) {
        self.summary.count_flow(r);
        self.book.count_record(r, f, mesh);
        if let (Some(m), Some(f)) = (&self.metrics, f) {
            m.count_flow(f);
        }
        if let (Some(g), Some(f)) = (&mut self.graph, f) {
            g.add(&crate::mesh::graph::Flow::from_report(f));
        }
    }

    /// `--mesh-config`: reads the files (none: no policy). A file that cannot be used is an
    /// error (exit 2), returned and written on `diag` unless `quiet`; the others still apply.
    pub(crate) fn load_policy(
        &mut self,
        files: &[std::path::PathBuf],
        quiet: bool,
        diag: &mut dyn Write,
    ) -> io::Result<Vec<String>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let (policy, errors) = crate::mesh::policy::load(files);
        let mut msgs = Vec::with_capacity(errors.len());
        for e in errors {
            let msg = e.to_string();
            if !quiet {
                writeln!(diag, "tlspeek: {msg}")?;
            }
            msgs.push(msg);
        }
        self.policy = Some(policy);
        Ok(msgs)
    }

    /// The summary, with the per-server and per-service readings and the expectations.
    pub(crate) fn close(self, mesh: &MeshConfig) -> Summary {
        let Tally { mut summary, book, policy, .. } = self;
        summary.mesh_mode = book.data_plane(mesh);
        let (mut servers, mut services, not_listed, expect) = book.finish(mesh);
        if let Some(p) = &policy {
            for v in servers.iter_mut().chain(services.iter_mut()) {
                v.apply_policy(p);
            }
        }
        summary.servers = servers;
        summary.services = services;
        summary.servers_not_listed = not_listed;
        summary.expectations = expect;
        summary.close_udp();
        summary
    }
}

/// What a run found, for the exit code.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Files that could not be read to the end.
    pub errors: Vec<String>,
    /// Flows that broke `--expect mtls` / `--fail-on-plaintext` (exit code 1).
    pub violations: u64,
}

/// Runs the pipeline on every input; writes data to `out` and diagnostics to `diag`.
/// Results found before an error are still written. Each flow is written when it ends, so
/// memory holds open flows, not the run.
pub fn run_with_writer(cfg: &Config, out: &mut dyn Write, diag: &mut dyn Write) -> io::Result<Outcome> {
    let mut tally = Tally::default();
    if cfg.html.is_some() {
        tally.graph = Some(crate::mesh::graph::Graph::default());
    }
    let errors = tally.load_policy(&cfg.mesh.policy_files, cfg.quiet, diag)?;
    tally.summary.errors.extend(errors);
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
        tally.summary.files.push(name.clone());
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                if !cfg.quiet {
                    writeln!(diag, "tlspeek: {msg}")?;
                }
                tally.summary.errors.push(msg);
                continue;
            }
        };
        linktype = linktype.or(reader.first_linktype());
        if let Some(Err(e)) = gate.as_mut().map(|g| g.open_for(&reader)) {
            let msg = e.to_string();
            if !cfg.quiet {
                writeln!(diag, "tlspeek: {msg}")?;
            }
            tally.summary.errors.push(msg);
            break;
        }
        opened += 1;
        // Flow ids are packet numbers, counted across the inputs.
        let base = tally.summary.packets;
        // -l on a stream (standard input fed by a live tcpdump): one thread, each flow written
        // as it ends, not in batches.
        let parallel = cfg.threads > 1 && !(cfg.line_buffered && reader.total_len().is_none());
        match gate.as_mut() {
            None if parallel => analyze_parallel(reader, cfg, base, &mut tally, &mut sink, diag)?,
            None => analyze(&mut reader, cfg, base, &mut tally, &mut sink, diag)?,
            Some(g) => {
                let mut gated = Gated::new(reader, g);
                if parallel {
                    analyze_parallel(gated, cfg, base, &mut tally, &mut sink, diag)?;
                } else {
                    analyze(&mut gated, cfg, base, &mut tally, &mut sink, diag)?;
                }
            }
        }
    }
    // (No input opened: no -w file either, as tcpdump makes none.)
    if let Some(g) = gate.as_mut().filter(|_| opened > 0) {
        finish_gate(g, linktype, cfg, &mut tally.summary, diag)?;
    }
    if let Some(opts) = &cfg.live {
        // The metrics port is bound first, before privileges are dropped (below 1024 needs
        // root); the socket stays open after, and the server stops when the capture ends.
        let live = serve_metrics(cfg, &mut tally).and_then(|served| {
            LiveCapture::open(opts.clone()).map(|c| (c, served)).map_err(|e| e.to_string())
        });
        match live {
            Ok((mut cap, _served)) => {
                opened += 1;
                install_stop_handlers();
                // Nothing after this point needs root or CAP_NET_RAW (the socket and the -w file
                // are open): give them up, as tcpdump -Z does.
                // A failed drop stops the run, as tcpdump -Z does: capturing on as root with
                // CAP_NET_RAW, unsaid under -q (a DaemonSet's arguments), would be worse.
                let who = match opts.drop_to.as_deref().map(crate::capture::privs::drop_privileges) {
                    Some(Ok(d)) => Ok(format!(" as uid {} (capabilities dropped)", d.uid)),
                    Some(Err(e)) => Err(format!(
                        "could not drop privileges: {e}; nothing captured (-Z none keeps them, at your risk)"
                    )),
                    None => Ok(String::new()),
                };
                match who {
                    Err(msg) => {
                        if !cfg.quiet {
                            writeln!(diag, "tlspeek: {msg}")?;
                        }
                        tally.summary.errors.push(msg);
                    }
                    Ok(who) => capture_live(&mut cap, opts, &who, cfg, &mut tally, &mut sink, diag)?,
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if !cfg.quiet {
                    writeln!(diag, "tlspeek: {msg}")?;
                }
                tally.summary.errors.push(msg);
            }
        }
    }
    let graph = tally.graph.take();
    let mut summary = tally.close(&cfg.mesh);
    if let (Some(path), Some(graph)) = (&cfg.html, graph) {
        write_html(path, graph.finish(), &mut summary, cfg.quiet, diag)?;
    }
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
    Ok(Outcome { errors: summary.errors.clone(), violations })
}

/// Reads a live capture once it is open (and privileges are dropped): the flows, then libpcap's
/// counters in the summary.
fn capture_live(
    cap: &mut LiveCapture,
    opts: &crate::capture::live::LiveOptions,
    who: &str,
    cfg: &Config,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<()> {
    if !cfg.quiet {
        writeln!(diag, "tlspeek: capturing on {}{who}; Ctrl-C stops and reports", opts.interface)?;
    }
    let base = tally.summary.packets;
    analyze(cap, cfg, base, tally, sink, diag)?;
    if let Some((recv, drop, ifdrop)) = cap.stats() {
        tally.summary.capture_stats = Some(crate::report::CaptureStats {
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
    Ok(())
}

/// Writes `--html` (an error is said on stderr and listed in the summary's `errors`).
fn write_html(
    path: &std::path::Path,
    graph: crate::mesh::graph::GraphLists,
    summary: &mut Summary,
    quiet: bool,
    diag: &mut dyn Write,
) -> io::Result<()> {
    let title = crate::report::html::title_of(&summary.files);
    if let Err(e) = crate::report::html::write_html(path, &graph, &summary.servers, &summary.services, &title)
    {
        let msg = format!("cannot write {}: {e}", path.display());
        if !quiet {
            writeln!(diag, "tlspeek: {msg}")?;
        }
        summary.errors.push(msg);
    }
    Ok(())
}

/// Starts the `--metrics` server, whose state the tally then updates; `None` without it.
fn serve_metrics(cfg: &Config, tally: &mut Tally) -> Result<Option<MetricsServer>, String> {
    let Some(addr) = cfg.metrics else { return Ok(None) };
    let m = std::sync::Arc::new(Metrics::default());
    let server = MetricsServer::start(addr, std::sync::Arc::clone(&m)).map_err(|e| e.to_string())?;
    tally.metrics = Some(m);
    Ok(Some(server))
}

/// Gives `--metrics` the capture's counters (about once a second: see `analyze`).
fn sample_metrics(m: &Metrics, w: &Worker, reader: &mut dyn PacketSource) {
    m.sample(Sample {
        packets: w.order - w.base,
        bytes: w.bytes,
        flows_open: w.table.len() as u64,
        kernel_drops: reader.kernel_drops(),
    });
}

/// How often `--metrics` is given the capture's counters.
const METRICS_SAMPLE: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Reads one capture to its end (or first error), numbering its packets after `base`.
///
/// Generic over the source, so that reading a packet is inlined in the loop (through `dyn` it
/// was a call and a result read back through memory, ~20 instructions a packet).
fn analyze<R: PacketSource>(
    reader: &mut R,
    cfg: &Config,
    base: u64,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<()> {
    let name = reader.name().to_string();
    // Files release ended flows in batches; a live capture (or -l) releases them at once.
    let batch: u64 = if reader.total_len().is_some() && !cfg.line_buffered { 8192 } else { 1 };
    let live = reader.is_live();
    let file = reader.file();
    let input = Input { name: &name, nanos: reader.nanosecond_precision(), live, base, file: file.as_ref() };
    // JSON lines are rendered by the merger, into a buffer written (and so kept in cache) 128 KB
    // at a time: rendered by the worker, each into a block of its own until the batch is
    // released (8,192 packets), they went cold (bench/misses --json --threads 1, default 30 MB
    // cycles~ 82.7 -> 85.5 M, L2 misses 0.77 -> 0.84 M). Table rows are kept to the end either
    // way: rendered here, the merger gets what counting reads of the flow, not its report.
    let render = match sink.render_mode() {
        RenderMode::Json => RenderMode::None,
        r => r,
    };
    let mut w = Worker::new(cfg, &input, ShardId { index: 0, count: 1 }, render);
    let mut m = Merger::new(batch == 1);
    let progress = cfg.progress.then(|| crate::report::progress::bar(reader.total_len()));
    let mut error = None;
    if live {
        error = live_loop(reader, &mut w, &mut m, batch, tally, sink, cfg)?;
    } else {
        // A file: one packet at a time (`--metrics` is for live captures only).
        loop {
            let pkt = match reader.next() {
                Ok(Next::Packet(p)) => p,
                Ok(Next::Idle(now)) => {
                    idle(&mut w, &mut m, now, tally, sink, cfg)?;
                    continue;
                }
                Ok(Next::End) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            let classified = w.packet(&pkt);
            if after_packet(&mut w, &mut m, classified, batch, tally, sink, cfg)? {
                if let Some(p) = &progress {
                    if w.order.is_multiple_of(8192) {
                        p.set_position(reader.position());
                    }
                }
            }
        }
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    // What ended before the input did, then the flows still open.
    m.take_from(&mut w);
    m.release(u64::MAX, tally, sink, &cfg.mesh)?;
    m.end_input(&mut [&mut w], tally, sink, &cfg.mesh)?;
    if let Some(mx) = &tally.metrics {
        sample_metrics(mx, &w, reader);
    }
    w.add_counts(&mut tally.summary);
    finish_file(&name, &w.skipped, error, cfg, &mut tally.summary, diag)
}

/// [`analyze`]'s loop for a live capture: a block of libpcap's ring at a time, each packet where
/// it lies ([`crate::capture::live::LiveCapture::next_batch`]). Its own function: sharing
/// `analyze` with the file loop cost that loop ~55 instructions a packet. Returns the capture's
/// read error, if any.
fn live_loop(
    reader: &mut dyn PacketSource,
    w: &mut Worker,
    m: &mut Merger,
    batch: u64,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
    cfg: &Config,
) -> io::Result<Option<String>> {
    let metrics = tally.metrics.clone();
    let (mut sampled, mut sampled_at) = (std::time::Instant::now(), 0);
    loop {
        if let Some(mx) = &metrics {
            // The clock is read after every block past 256 packets, and when idle (at least
            // once a second).
            if w.order >= sampled_at + 256 && sampled.elapsed() >= METRICS_SAMPLE {
                sample_metrics(mx, w, reader);
                (sampled, sampled_at) = (std::time::Instant::now(), w.order);
            }
        }
        let mut failed = None;
        let got = reader.next_batch(&mut |pkt| {
            let classified = w.packet(&pkt);
            after_packet(w, m, classified, batch, tally, sink, cfg).map_err(|e| failed = Some(e)).is_ok()
        });
        if let Some(e) = failed {
            return Err(e);
        }
        match got {
            Ok(None | Some(Next::Packet(_))) => {}
            Ok(Some(Next::Idle(now))) => {
                if let Some(mx) = &metrics {
                    sample_metrics(mx, w, reader);
                    sampled = std::time::Instant::now();
                }
                idle(w, m, now, tally, sink, cfg)?;
            }
            Ok(Some(Next::End)) => return Ok(None),
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
}

/// After a packet: the flow it classified announced, ended flows handed to the merger and
/// written every `batch` packets (true then).
#[inline(always)]
fn after_packet(
    w: &mut Worker,
    m: &mut Merger,
    classified: Option<crate::record::FlowReport>,
    batch: u64,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
    cfg: &Config,
) -> io::Result<bool> {
    if let Some(f) = classified {
        sink.announce(&f)?;
    }
    if !w.xfcc.is_empty() || w.order.is_multiple_of(batch) {
        m.take_from(w);
    }
    if !w.order.is_multiple_of(batch) {
        return Ok(false);
    }
    m.release(w.order, tally, sink, &cfg.mesh)?;
    Ok(true)
}

/// No packet for a while (a live capture): idle flows still end and are reported.
fn idle(
    w: &mut Worker,
    m: &mut Merger,
    now: crate::wire::Timestamp,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
    cfg: &Config,
) -> io::Result<()> {
    w.sweep(now);
    m.take_from(w);
    m.release(w.order, tally, sink, &cfg.mesh)
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

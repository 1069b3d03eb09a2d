//! The offline pipeline: capture files → decode → flow table → classifier → reports.
//! [`run_with_writer`] is the seam the binary and the tests share.

use crate::capture::live::{install_stop_handlers, LiveCapture, LiveOptions};
use crate::capture::{display_path, CaptureReader, Next, PacketSource};
use crate::classify::{ClassifyConfig, FlowClassifier};
use crate::decode::defrag::Defragmenter;
use crate::decode::{decode, decode_tcp, is_supported_linktype, linktype_name, Decoded, NonTcp};
use crate::flow::{FlowMeta, FlowTable, Limits};
use crate::report::mesh::{self, MeshConfig, XfccLegs};
use crate::report::{json, table, FlowReport, Summary};
use std::cell::RefCell;
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
    Json(&'a mut dyn Write),
    Table(Vec<table::Row>),
    /// Live capture: rows printed as flows are classified and end (fixed column widths); the
    /// flag says whether the header was printed.
    LiveTable(&'a mut dyn Write, bool),
}

impl Sink<'_> {
    /// A live `classified` event: written at once (JSON), not counted in the summary.
    fn announce(&mut self, f: &FlowReport) -> io::Result<()> {
        match self {
            Sink::Json(out) => {
                json::write_flow(*out, f)?;
                out.flush()
            }
            Sink::Table(_) => Ok(()),
            Sink::LiveTable(out, header) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out)?;
                }
                table::write_live_row(*out, "classified", f)?;
                out.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Json(out) | Sink::LiveTable(out, _) => out.flush(),
            Sink::Table(_) => Ok(()),
        }
    }

    fn emit(&mut self, f: &FlowReport, summary: &mut Summary, mesh: &MeshConfig) -> io::Result<()> {
        summary.count_flow(f, mesh);
        match self {
            Sink::Json(out) => json::write_flow(*out, f),
            Sink::Table(rows) => {
                rows.push(table::render(f));
                Ok(())
            }
            Sink::LiveTable(out, header) => {
                if !std::mem::replace(header, true) {
                    table::write_live_header(*out)?;
                }
                table::write_live_row(*out, "ended", f)
            }
        }
    }
}

/// Runs the pipeline on every input; writes data to `out` and diagnostics to `diag`.
/// Results found before an error are still written. Flows are released in order of first
/// packet as soon as every earlier flow has ended, so memory holds live flows, not the run.
pub fn run_with_writer(cfg: &Config, out: &mut dyn Write, diag: &mut dyn Write) -> io::Result<Outcome> {
    let mut summary = Summary { kind: "summary", ..Summary::default() };
    let mut sink = match cfg.format {
        Format::Json => Sink::Json(out),
        Format::Table if cfg.live.is_some() && cfg.inputs.is_empty() => Sink::LiveTable(out, false),
        Format::Table => Sink::Table(Vec::new()),
    };
    let mut base_id = 0u64;
    for path in &cfg.inputs {
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
        base_id += analyze(&mut reader, cfg, base_id, &mut summary, &mut sink, diag)?;
    }
    if let Some(opts) = &cfg.live {
        match LiveCapture::open(opts.clone()) {
            Ok(mut cap) => {
                install_stop_handlers();
                if !cfg.quiet {
                    writeln!(diag, "tlspeek: capturing on {}; Ctrl-C stops and reports", opts.interface)?;
                }
                analyze(&mut cap, cfg, base_id, &mut summary, &mut sink, diag)?;
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
    let out = match sink {
        Sink::Json(out) => {
            json::write_summary(out, &summary)?;
            if !cfg.quiet {
                table::write_expectations(diag, &summary)?;
            }
            out
        }
        Sink::Table(rows) => {
            table::write_table(out, &rows, &summary)?;
            out
        }
        Sink::LiveTable(out, _) => {
            writeln!(out)?;
            table::write_summary(out, &summary)?;
            out
        }
    };
    out.flush()?;
    Ok(Outcome { errors: summary.errors.clone(), flows: summary.flows, violations })
}

/// Reads one capture to its end (or first error), emitting its flows with ids after `base_id`;
/// returns how many flows it had.
fn analyze(
    reader: &mut dyn PacketSource,
    cfg: &Config,
    base_id: u64,
    summary: &mut Summary,
    sink: &mut Sink<'_>,
    diag: &mut dyn Write,
) -> io::Result<u64> {
    let name = reader.name().to_string();
    // Files release finished flows in batches; a live capture releases them at once.
    let batch: u64 = if reader.total_len().is_some() { 8192 } else { 1 };
    let live = reader.is_live();
    let nanos = reader.nanosecond_precision();
    // Finished flows wait here until every flow that started before them has ended.
    let done: RefCell<BTreeMap<u64, FlowReport>> = RefCell::new(BTreeMap::new());
    let mut emitted = 0u64;
    let mut table: FlowTable<FlowClassifier> = FlowTable::new(cfg.limits);
    let mut defrag = Defragmenter::default();
    let mut skipped: BTreeMap<u32, u64> = BTreeMap::new();
    let mut non_tcp: BTreeMap<NonTcp, u64> = BTreeMap::new();
    let ccfg = cfg.classify;
    let mut new_sink = || FlowClassifier::new(ccfg);
    // XFCC identities seen on Envoy -> app legs, to confirm TLS 1.3 verdicts (report::mesh).
    let xfcc: RefCell<XfccLegs> = RefCell::new(XfccLegs::default());
    let mut finished = |meta: FlowMeta, c: FlowClassifier| {
        let (client, _) = crate::report::decide_client(&meta, c.client_hint());
        let port = meta.endpoints[client.other().idx()].port();
        let (first, last) = (meta.first_ts.as_f64(), meta.last_ts.as_f64());
        let classified = c.finish(client);
        let mut f = FlowReport::build(meta, classified, &name, nanos);
        f.id += base_id;
        mesh::cert_warnings(&mut f, cfg.mesh.cert_warn_secs);
        xfcc.borrow().confirm(&mut f, port, first, last);
        done.borrow_mut().insert(f.id, f);
    };
    let mut release = |upto: Option<u64>, summary: &mut Summary, sink: &mut Sink<'_>| -> io::Result<()> {
        let mut d = done.borrow_mut();
        while let Some(entry) = d.first_entry() {
            if upto.is_some_and(|live| *entry.key() >= live + base_id) {
                break;
            }
            let f = entry.remove();
            emitted += 1;
            sink.emit(&f, summary, &cfg.mesh)?;
            if batch == 1 {
                sink.flush()?;
            }
        }
        Ok(())
    };
    let progress = cfg.progress.then(|| crate::report::progress::bar(reader.total_len()));
    let mut count = 0u64;
    let mut error = None;
    loop {
        let pkt = match reader.next() {
            Ok(Next::Packet(p)) => p,
            Ok(Next::Idle(now)) => {
                // Live capture with no traffic: idle flows still end and are reported.
                table.maybe_sweep(now, &mut finished);
                release(table.oldest_live_id(), summary, sink)?;
                continue;
            }
            Ok(Next::End) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        count += 1;
        summary.packets += 1;
        summary.bytes += pkt.data.len() as u64;
        if !is_supported_linktype(pkt.linktype) {
            *skipped.entry(pkt.linktype).or_default() += 1;
            continue;
        }
        match decode(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Tcp(seg) => {
                let slot = table.process(&seg, pkt.ts, &mut new_sink, &mut finished);
                if let Some((meta, c)) = slot.and_then(|i| table.flow_mut(i)) {
                    if live && c.take_newly_classified() {
                        let (client, _) = crate::report::decide_client(meta, c.client_hint());
                        let mut f = FlowReport::build(meta.clone(), c.snapshot(client), &name, nanos);
                        f.id += base_id;
                        f.event = "classified";
                        mesh::cert_warnings(&mut f, cfg.mesh.cert_warn_secs);
                        sink.announce(&f)?;
                    }
                    if let Some((uri, by)) = c.take_xfcc() {
                        let (client, _) = crate::report::decide_client(meta, c.client_hint());
                        let (ce, se) = (meta.endpoints[client.idx()], meta.endpoints[client.other().idx()]);
                        if ce.ip().is_loopback() || se.ip().is_loopback() {
                            xfcc.borrow_mut().record(se.port(), pkt.ts.as_f64(), &uri, by.as_deref());
                        }
                    }
                }
            }
            Decoded::Fragment(frag) => {
                let ts = pkt.ts;
                if let Some(d) = defrag.push(&frag, ts) {
                    if d.proto == 6 {
                        let (src, dst) =
                            (IpAddr::V4(Ipv4Addr::from(d.src)), IpAddr::V4(Ipv4Addr::from(d.dst)));
                        if let Decoded::Tcp(seg) = decode_tcp(src, dst, &d.payload, d.payload.len()) {
                            let _ = table.process(&seg, ts, &mut new_sink, &mut finished);
                        }
                    } else {
                        *non_tcp
                            .entry(if d.proto == 17 { NonTcp::Udp } else { NonTcp::OtherIp })
                            .or_default() += 1;
                    }
                }
            }
            Decoded::Other(k) => *non_tcp.entry(k).or_default() += 1,
        }
        if count.is_multiple_of(batch) {
            release(table.oldest_live_id(), summary, sink)?;
        }
        if count.is_multiple_of(8192) {
            if let Some(p) = &progress {
                p.set_position(reader.position());
            }
        }
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    // Flows still open: ended oldest first, in batches, each released before the next.
    while table.finish_oldest(8192, &mut finished) > 0 {
        release(table.oldest_live_id(), summary, sink)?;
    }
    release(None, summary, sink)?;
    summary.evicted_flows += table.stats.evicted;
    summary.late_packets += table.stats.late_packets;
    summary.ip_fragments.reassembled += defrag.completed;
    summary.ip_fragments.dropped += defrag.dropped + defrag.incomplete() as u64;
    for (k, v) in non_tcp {
        *summary.non_tcp.entry(k.key()).or_default() += v;
    }
    for (lt, n) in skipped {
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
    Ok(emitted)
}

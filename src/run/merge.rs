//! The ordering merger ([`Merger`]): reported flows are written in the order they ended (ties:
//! first packet), the same for any number of shards, once every shard has read past their end;
//! each flow gets the XFCC confirmation (identities seen on loopback legs) just before it is
//! written. Also ends the flows still open at the end of the input across all shards.

use super::sink::{Rendered, Sink};
use super::worker::Worker;
use crate::mesh::readings::CountRecord;
use crate::mesh::{MeshConfig, XfccLegs};
use crate::record::FlowReport;
use crate::report::json;
use std::io::{self, Write};

/// A reported flow waiting for its turn: reports leave in the order the flows ended.
pub(super) struct Pending {
    /// What the merger counts, confirms or renders.
    pub(super) flow: Counted,
    /// Global number of the flow's first packet: its id.
    pub(super) order: u64,
    /// Number of the packet at which the flow was ended: reports are written in this order.
    pub(super) end_order: u64,
    /// Server port and time span, for the XFCC confirmation.
    pub(super) port: u16,
    pub(super) first: f64,
    pub(super) last: f64,
    pub(super) rendered: Rendered,
    /// Shard whose worker made it (and frees it, see [`Merger::spent`]).
    pub(super) shard: usize,
}

/// A reported flow as the merger gets it: its whole report, or what counting reads of it.
pub(super) enum Counted {
    /// Boxed: a report is ~1.3 KB, moved between the worker, the channel and the ordering map.
    /// For the flows the merger renders, confirms ([`crate::mesh::may_confirm`]), or counts with
    /// more than their [`CountRecord`] ([`CountRecord::needs_report`], `--metrics`, `--html`).
    Report(Box<FlowReport>),
    /// The others: their output is rendered by their worker. The report, written to a fresh
    /// block and read again cold by the merger, cost more than the record: bench/misses
    /// --json --threads 2, cycles~ default 30 MB 111.0 -> 108.2 M (L2 misses 1.37 -> 1.30 M),
    /// mesh 30 MB 117.9 -> 115.4 M; the table with one thread (rows rendered by the worker)
    /// default 30 MB 88.5 -> 86.5 M.
    /// Boxed too (~130 bytes): inline, every [`Pending`] grew from 88 to ~210 bytes, copied
    /// into and out of the ordering map (bench/misses --json --threads 1, default 30 MB, where
    /// the merger renders every line: cycles~ 82.7 -> 84.4 M, Ir +2.0 M).
    Record(Box<CountRecord>),
}

impl Counted {
    /// The whole report, when the merger has it.
    pub(super) fn report(&self) -> Option<&FlowReport> {
        match self {
            Counted::Report(f) => Some(f),
            Counted::Record(_) => None,
        }
    }
}

impl super::Tally {
    /// Counts a written flow.
    pub(super) fn count_flow(&mut self, c: &Counted, mesh: &MeshConfig) {
        match c {
            Counted::Report(f) => self.count(f, mesh),
            Counted::Record(r) => self.count_record(r, None, mesh),
        }
    }
}

impl Pending {
    /// Flows leave in the order they ended, then of their first packets.
    fn key(&self) -> (u64, u64) {
        (self.end_order, self.order)
    }
}

/// An XFCC identity seen on a loopback leg: server port, time, `URI=`, `By=`.
pub(super) type XfccSeen = (u16, f64, String, Option<String>);

/// Writes reported flows in the order they ended (ties: first packet), the same for any number
/// of shards, after applying the XFCC confirmation.
pub(super) struct Merger {
    /// In the order they leave ([`Pending::key`]) once sorted (`sorted`): flows come nearly
    /// in that order (with one thread, all but the flows that end together), and a sort that
    /// finds the runs, at each release, cost fewer instructions than a `BTreeMap` insert and
    /// remove per flow (bench/misses --json --threads 1, cycles~ default 30 MB 82.9 -> 82.0 M,
    /// Ir 148.7 -> 146.9 M; mesh 30 MB 88.8 -> 87.8 M; --threads 2 108.2 -> 107.8 M).
    pub(super) waiting: std::collections::VecDeque<Pending>,
    /// `waiting` is sorted.
    sorted: bool,
    pub(super) xfcc: XfccLegs,
    /// Flush after every flow (live capture).
    pub(super) flush_each: bool,
    /// Written flows, kept to be sent back to the workers that made them (`--threads`): a
    /// block freed by the thread that allocated it is a local free; freed here, every one went
    /// through the allocator's cross-thread list (see bench/RESULTS.md).
    pub(super) spent: Option<Vec<Pending>>,
    /// Flows counted, whose rendered lines are not written yet ([`Merger::write_unwritten`]).
    pub(super) unwritten: Vec<Pending>,
    pub(super) unwritten_bytes: usize,
    /// JSON lines rendered here (flows the workers did not render), written [`TEXT_BYTES`] at
    /// a time or with the others ([`Merger::write_unwritten`]).
    text: Vec<u8>,
    /// The lines waiting to be written, in order: those of `unwritten` and of `text`.
    pieces: Vec<Piece>,
}

/// A line waiting to be written ([`Merger::pieces`]).
enum Piece {
    /// The line of `unwritten[i]`, rendered by its worker.
    Flow(usize),
    /// Lines rendered here, at these bytes of `text`.
    Text(std::ops::Range<usize>),
}

impl Merger {
    pub(super) fn new(flush_each: bool) -> Merger {
        Merger {
            waiting: std::collections::VecDeque::new(),
            sorted: true,
            xfcc: XfccLegs::default(),
            flush_each,
            spent: None,
            unwritten: Vec::new(),
            unwritten_bytes: 0,
            text: Vec::new(),
            pieces: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, done: &mut Vec<Pending>, xfcc: &mut Vec<XfccSeen>) {
        for (port, ts, uri, by) in xfcc.drain(..) {
            self.xfcc.record(port, ts, &uri, by.as_deref());
        }
        for p in done.drain(..) {
            if self.waiting.back().is_some_and(|last| last.key() > p.key()) {
                self.sorted = false;
            }
            self.waiting.push_back(p);
        }
    }

    /// Reports the ended flows of a worker on this thread and takes the reports.
    pub(super) fn take_from(&mut self, w: &mut Worker) {
        w.report_ended();
        self.add(&mut w.done, &mut w.xfcc);
    }

    /// Writes every waiting flow that ended at or before packet `processed`: every shard has
    /// read that far, so no flow can still end earlier, and every XFCC header sent before the
    /// flow's last packet is known. JSON lines may wait in buffers for the next release, until
    /// one with `processed` `u64::MAX` (end of input) or [`Merger::write_unwritten`].
    pub(super) fn release(
        &mut self,
        processed: u64,
        tally: &mut super::Tally,
        sink: &mut Sink<'_>,
        mesh_cfg: &MeshConfig,
    ) -> io::Result<()> {
        if !std::mem::replace(&mut self.sorted, true) {
            // Stable, as the map's order (the keys are unique: a flow's first packet).
            self.waiting.make_contiguous().sort_by_key(Pending::key);
        }
        while let Some(mut p) = self.waiting.pop_front() {
            if p.end_order > processed {
                self.waiting.push_front(p);
                break;
            }
            if let Counted::Report(f) = &mut p.flow {
                self.xfcc.confirm(f, p.port, p.first, p.last);
            }
            if let (Sink::Json(_), Rendered::No, false, Some(f)) =
                (&*sink, &p.rendered, self.flush_each, p.flow.report())
            {
                // Rendered into `text`, which goes to the sink in large writes: rendered line by
                // line and copied into the output's buffer, every byte was copied once more
                // (29M of 931M instructions on the mesh bench file, --threads 1). Written in
                // one vectored write with the workers' lines around it: each such flow among
                // theirs made a write of its own, most under 64 KB, which stdout's `BufWriter`
                // then copied (see the end of this function).
                tally.count(f, mesh_cfg);
                let start = self.text.len();
                json::render_flow(&mut self.text, f);
                self.unwritten_bytes += self.text.len() - start;
                match self.pieces.last_mut() {
                    Some(Piece::Text(at)) if at.end == start => at.end = self.text.len(),
                    _ => self.pieces.push(Piece::Text(start..self.text.len())),
                }
                if self.text.len() >= TEXT_BYTES || self.unwritten_bytes >= UNWRITTEN_BYTES {
                    self.write_unwritten(sink)?;
                }
                if let Some(spent) = &mut self.spent {
                    spent.push(p);
                }
                continue;
            }
            if let (Sink::Json(_), Rendered::Json(line), false) = (&*sink, &p.rendered, self.flush_each) {
                // Written below with the others, straight from the worker's buffers.
                tally.count_flow(&p.flow, mesh_cfg);
                self.unwritten_bytes += line.len();
                self.pieces.push(Piece::Flow(self.unwritten.len()));
                self.unwritten.push(p);
                if self.unwritten_bytes >= UNWRITTEN_BYTES {
                    self.write_unwritten(sink)?;
                }
                continue;
            }
            self.write_unwritten(sink)?;
            sink.emit(&mut p, tally, mesh_cfg)?;
            if let Some(spent) = &mut self.spent {
                spent.push(p);
            }
            if self.flush_each {
                sink.flush()?;
            }
        }
        // Lines waiting ([`Merger::pieces`]) short of stdout's buffer wait for the next release:
        // written at the end of every release (every message of a worker with `--threads`, every
        // 8,192 packets with one thread), and before each flow rendered here, most writes were
        // under the 64 KB of that `BufWriter` (main.rs), which then copied them, lines read
        // cold from the workers' buffers. bench/misses --json --threads 2 (two runs of the old
        // build): default 30 MB cycles~ 116.8-117.3 -> 114.8 M, D1 misses 2.57 -> 2.39 M; mesh
        // 30 MB 127.4 -> 123.7 M, D1 2.82 -> 2.60 M; --threads 1 unchanged. They are written
        // before any other output (`emit`), and at the end of the input.
        if processed == u64::MAX || self.unwritten_bytes >= DIRECT_BYTES {
            self.write_unwritten(sink)?;
        }
        if self.waiting.is_empty() && self.waiting.capacity() > KEPT_WAITING {
            self.waiting = std::collections::VecDeque::new(); // not kept after a burst of flows
        }
        Ok(())
    }

    /// Writes the lines waiting ([`Merger::pieces`]): those rendered by the workers of the flows
    /// in `unwritten` and those in `text`, in one vectored write, instead of copying each into
    /// the output buffer (150 MB per GB of capture, read across cores). The lines are freed
    /// here; the flows go back to their workers.
    pub(super) fn write_unwritten(&mut self, sink: &mut Sink<'_>) -> io::Result<()> {
        if self.pieces.is_empty() {
            return Ok(());
        }
        if let Sink::Json(out) = sink {
            let (unwritten, text) = (&self.unwritten, &self.text);
            let mut slices: Vec<io::IoSlice<'_>> = self
                .pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Flow(i) => match &unwritten.get(*i)?.rendered {
                        Rendered::Json(line) => Some(io::IoSlice::new(line)),
                        _ => None,
                    },
                    Piece::Text(at) => text.get(at.clone()).map(io::IoSlice::new),
                })
                .collect();
            write_all_vectored(&mut **out, &mut slices)?;
        }
        self.pieces.clear();
        self.unwritten_bytes = 0;
        self.text.clear();
        if self.text.capacity() > 4 * TEXT_BYTES {
            self.text = Vec::new(); // one huge flow does not keep its buffer
        }
        // The lines are freed here, as soon as written, not sent back with their reports: the
        // worker frees what comes back only at its next batch of reports (4,096 packets on), and
        // the lines are most of a report's bytes (8 KB on average on the mesh bench file). With
        // mimalloc's page_reclaim_on_free -1 (see `analyze_parallel`) the pages they free are
        // any thread's to reuse. Max RSS, mesh 1 GB, two threads (medians of 6 interleaved
        // runs): 72.6 -> 69.9 MB; instructions (mesh 100 MB, all threads) unchanged (663.5 M).
        for p in &mut self.unwritten {
            p.rendered = Rendered::No;
        }
        match &mut self.spent {
            Some(spent) => spent.append(&mut self.unwritten),
            None => self.unwritten.clear(),
        }
        Ok(())
    }
}

/// Room for this many waiting flows is kept between releases (~350 KB).
const KEPT_WAITING: usize = 4096;

/// Flows whose lines the merging thread collects before writing them ([`Merger::write_unwritten`]).
/// 256 KiB instead: RSS within noise (-0.3 MB, mesh 1 GB, two threads).
pub(super) const UNWRITTEN_BYTES: usize = 1 << 20;

/// The capacity of stdout's `BufWriter` (main.rs): a write at least this large goes straight
/// through, uncopied.
const DIRECT_BYTES: usize = 64 << 10;

/// Bytes of JSON lines the merging thread renders before writing them: more than the capacity
/// of stdout's `BufWriter` (64 KB, main.rs), which then passes them on without a copy.
const TEXT_BYTES: usize = 128 << 10;

/// `Write::write_all` for several buffers (std's `write_all_vectored` is unstable).
pub(super) fn write_all_vectored(out: &mut dyn Write, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
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
    /// At the end of the input: ends, reports and writes the flows still open in all `workers` (shards),
    /// oldest first: each batch ends every flow of any shard up to the [`END_BATCH`]-th oldest
    /// of one shard, so all of them can be written before the next batch is built.
    pub(super) fn end_input(
        &mut self,
        workers: &mut [&mut Worker],
        tally: &mut super::Tally,
        sink: &mut Sink<'_>,
        mesh_cfg: &MeshConfig,
    ) -> io::Result<()> {
        while let Some(last) = workers.iter_mut().filter_map(|w| w.table.nth_live_order(END_BATCH)).min() {
            for w in workers.iter_mut() {
                w.end_open_up_to(last);
                self.take_from(w);
            }
            self.release(u64::MAX, tally, sink, mesh_cfg)?;
        }
        Ok(())
    }
}

/// Flows still open at the end of the input are ended (oldest first) and written this many at
/// a time, so that their reports are never all held at once.
pub(super) const END_BATCH: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::{MtlsVerdict, TlsReport};
    use crate::classify::Protocol;
    use crate::flow::FlowMeta;
    use crate::report::json;
    use crate::run::Tally;
    use std::net::SocketAddr;

    /// A reported TLS flow from port 4xxxx to `port`, first packet number `order` at second
    /// `first`, ended at packet `end_order` and second `last`, with mTLS verdict `mtls`, made by
    /// `shard`. Rendered by its worker as a JSON line when `rendered` (as `report_flow` does
    /// unless the XFCC confirmation may change it).
    fn pending(
        order: u64,
        end_order: u64,
        port: u16,
        (first, last): (i64, i64),
        mtls: MtlsVerdict,
    ) -> Pending {
        let client = SocketAddr::from(([10, 0, 0, 1], 40_000 + order as u16));
        let server = SocketAddr::from(([10, 0, 0, 2], port));
        let meta = FlowMeta::closed_for_test(client, server, (first, last), order);
        let tls = TlsReport { mtls, mtls_reason: "test".into(), ..Default::default() };
        let flow = Counted::Report(Box::new(FlowReport::for_test(meta, Protocol::Tls, Some(tls), None)));
        let (first, last) = (first as f64, last as f64);
        Pending { flow, order, end_order, port, first, last, rendered: Rendered::No, shard: 0 }
    }

    /// The same, rendered by its worker as a JSON line, from `shard`, which sends what counting
    /// reads of it instead of its report.
    fn rendered(mut p: Pending, shard: usize) -> Pending {
        let mut line = Vec::new();
        let f = p.flow.report().unwrap();
        json::render_flow(&mut line, f);
        p.flow = Counted::Record(Box::new(CountRecord::of(f)));
        p.rendered = Rendered::Json(line);
        p.shard = shard;
        p
    }

    /// `(id, mtls)` of each flow line written.
    fn written(out: &[u8]) -> Vec<(u64, String)> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["id"].as_u64().unwrap(), v["tls"]["mtls"].as_str().unwrap().to_string()))
            .collect()
    }

    /// Releases up to `processed` into a JSON sink writing to `out`, and writes the lines.
    fn release(m: &mut Merger, processed: u64, summary: &mut Tally, out: &mut Vec<u8>) {
        let mut sink = Sink::Json(out);
        m.release(processed, summary, &mut sink, &MeshConfig::default()).unwrap();
        m.write_unwritten(&mut sink).unwrap();
    }

    fn ids(v: &[(u64, String)]) -> Vec<u64> {
        v.iter().map(|&(id, _)| id).collect()
    }

    #[test]
    fn flows_leave_in_end_order_then_first_packet_order_across_shards_and_batches() {
        let mut m = Merger::new(false);
        let (mut summary, mut out) = (Tally::default(), Vec::new());
        // Shard 1's first batch: flows ended at packets 40 and 10.
        m.add(
            &mut vec![
                pending(3, 40, 443, (1, 4), MtlsVerdict::No),
                pending(5, 10, 443, (1, 2), MtlsVerdict::No),
            ],
            &mut vec![],
        );
        // Shard 0's: ended at 10 as well (first packet 2: before flow 5), and at 25.
        m.add(
            &mut vec![
                pending(7, 25, 443, (2, 3), MtlsVerdict::No),
                pending(2, 10, 443, (1, 2), MtlsVerdict::No),
            ],
            &mut vec![],
        );
        // Every shard has read up to packet 24: what ended there is final.
        release(&mut m, 24, &mut summary, &mut out);
        assert_eq!(ids(&written(&out)), [2, 5]);
        // Shard 0's next batch brings a flow that ended at 30, before flow 3 (ended at 40).
        m.add(&mut vec![pending(9, 30, 443, (3, 4), MtlsVerdict::No)], &mut vec![]);
        release(&mut m, 35, &mut summary, &mut out);
        assert_eq!(ids(&written(&out)), [2, 5, 7, 9]);
        // Nothing is written twice, nor before its end is reached.
        release(&mut m, 35, &mut summary, &mut out);
        assert_eq!(ids(&written(&out)), [2, 5, 7, 9]);
        release(&mut m, u64::MAX, &mut summary, &mut out);
        assert_eq!(ids(&written(&out)), [2, 5, 7, 9, 3]);
        assert_eq!(summary.summary.flows, 5);
    }

    #[test]
    fn lines_wait_for_a_full_buffer_or_the_end_of_the_input_and_keep_their_order() {
        let mut m = Merger::new(false);
        m.spent = Some(Vec::new());
        let (mut summary, mut out) = (Tally::default(), Vec::new());
        let cfg = MeshConfig::default();
        // Flow 1 rendered by shard 1's worker; flow 2 rendered here (into `text`).
        m.add(&mut vec![rendered(pending(1, 10, 443, (1, 2), MtlsVerdict::No), 1)], &mut vec![]);
        m.add(&mut vec![pending(2, 20, 8080, (1, 2), MtlsVerdict::No)], &mut vec![]);
        m.release(15, &mut summary, &mut Sink::Json(&mut out), &cfg).unwrap();
        // Counted, its line waiting for more (far below UNWRITTEN_BYTES).
        assert!(out.is_empty());
        assert_eq!((summary.summary.flows, m.unwritten.len()), (1, 1));
        // Flow 2 goes into `text`, after flow 1's line; both wait.
        m.release(25, &mut summary, &mut Sink::Json(&mut out), &cfg).unwrap();
        assert!(out.is_empty());
        assert_eq!((summary.summary.flows, m.unwritten.len(), m.pieces.len()), (2, 1, 2));
        m.add(&mut vec![rendered(pending(3, 30, 443, (1, 3), MtlsVerdict::No), 0)], &mut vec![]);
        // The end of the input writes everything, in order.
        m.release(u64::MAX, &mut summary, &mut Sink::Json(&mut out), &cfg).unwrap();
        assert_eq!(ids(&written(&out)), [1, 2, 3]);
        assert_eq!(summary.summary.flows, 3);
        // Flow 2, rendered here, went back as soon as rendered; the others once written.
        let back: Vec<u64> = m.spent.take().unwrap().iter().map(|p| p.order).collect();
        assert_eq!(back, [2, 1, 3]);
    }

    #[test]
    fn lines_rendered_by_the_workers_keep_the_order_and_go_back_to_their_shards() {
        let mut m = Merger::new(false);
        m.spent = Some(Vec::new());
        let (mut summary, mut out) = (Tally::default(), Vec::new());
        m.add(&mut vec![rendered(pending(4, 12, 443, (1, 2), MtlsVerdict::No), 1)], &mut vec![]);
        m.add(&mut vec![rendered(pending(1, 20, 443, (1, 3), MtlsVerdict::No), 0)], &mut vec![]);
        // Not rendered (the XFCC confirmation could have changed it): written by the sink, in
        // its turn between the others.
        m.add(&mut vec![pending(6, 15, 8080, (1, 2), MtlsVerdict::No)], &mut vec![]);
        m.add(&mut vec![rendered(pending(2, 12, 443, (1, 2), MtlsVerdict::No), 0)], &mut vec![]);
        release(&mut m, u64::MAX, &mut summary, &mut out);
        assert_eq!(ids(&written(&out)), [2, 4, 6, 1]);
        let spent = m.spent.take().unwrap();
        // Flow 6, rendered here, goes back as soon as rendered; the others once written.
        let back: Vec<(u64, usize)> = spent.iter().map(|p| (p.order, p.shard)).collect();
        assert_eq!(back, [(6, 0), (2, 0), (4, 1), (1, 0)]);
        // Their lines were freed once written: only the reports go back.
        assert!(spent.iter().all(|p| matches!(p.rendered, Rendered::No)));
        assert_eq!(summary.summary.flows, 4);
    }

    #[test]
    fn xfcc_confirmation_is_applied_before_release() {
        let mut m = Merger::new(false);
        let (mut summary, mut out) = (Tally::default(), Vec::new());
        let uri = "spiffe://cluster.local/ns/default/sa/client".to_string();
        // A pod-network flow to 9080 between seconds 100 and 110, verdict `likely`; another
        // to 9090 that no identity was seen for.
        m.add(&mut vec![pending(1, 50, 9080, (100, 110), MtlsVerdict::Likely)], &mut vec![]);
        m.add(&mut vec![pending(2, 60, 9090, (100, 110), MtlsVerdict::Likely)], &mut vec![]);
        // Another shard saw the Envoy -> app leg to 9080 carry the identity at second 105, in a
        // later batch, before every shard had read past packet 50.
        m.add(&mut vec![], &mut vec![(9080, 105.0, uri.clone(), None)]);
        release(&mut m, 55, &mut summary, &mut out);
        assert_eq!(written(&out), [(1, "yes".to_string())]);
        // An identity seen after the flow was released changes nothing written.
        m.add(&mut vec![pending(3, 70, 9080, (200, 210), MtlsVerdict::Likely)], &mut vec![]);
        release(&mut m, 80, &mut summary, &mut out);
        m.add(&mut vec![], &mut vec![(9080, 205.0, uri, None)]);
        release(&mut m, u64::MAX, &mut summary, &mut out);
        assert_eq!(written(&out), [(1, "yes".into()), (2, "likely".into()), (3, "likely".into())]);
        let line = String::from_utf8_lossy(&out).lines().next().unwrap().to_string();
        assert!(
            line.contains("x-forwarded-client-cert URI=spiffe://cluster.local/ns/default/sa/client"),
            "{line}"
        );
    }
}

//! `tlspeek report`: merges tlspeek's own JSON Lines from many captures (one per pod) into one
//! set of readings and one graph. Streams: each line is read, parsed into the few keys it needs
//! ([`Line`], serde ignores the rest), turned into a [`Flow`], held a while in a window that
//! finds the same connection seen from both ends ([`Window`]), then counted into the same
//! [`Tally`] a capture run uses (so the per-server and per-service readings are the same
//! words) and into the [`Graph`]. Memory: the window (at most 2 × [`MAX_WINDOW_KEYS`]
//! connections) and the aggregates, never every flow.
//!
//! A line that is not JSON, lacks `client`, `server` or `protocol`, or names no valid address
//! is an error naming `FILE:LINE`; the rest is still merged and the exit code is 2.

use super::Tally;
use crate::classify::istio::{HboneTarget, IstioReport, Leg, Mode};
use crate::classify::tls::{AlertLevel, Confirmation, MtlsVerdict, TlsAlert, TlsReport};
use crate::classify::Protocol;
use crate::mesh::graph::{Flow, Graph};
use crate::mesh::MeshConfig;
use crate::record::{Event, Flag, Flags, FlowReport, PerRole, ResetBy};
use crate::wire::{KeyedMap, Role, Timestamp};
use serde::Deserialize;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Connections held per generation of the dedup window: the two records of one connection are
/// recognised when at most this many other connections come between them in the input order.
/// A held flow costs about 1 KB.
pub(crate) const MAX_WINDOW_KEYS: usize = 1 << 16;
/// Records of one 4-tuple held (a reused client port).
const MAX_PER_KEY: usize = 8;
/// Clock skew allowed between two captures of one connection.
const SKEW_NANOS: i128 = 1_000_000_000;
/// Longest line read (tlspeek's own lines are far shorter); a longer one is an error.
const MAX_LINE_BYTES: usize = 64 << 20;
/// Error lines written on stderr per input; the others are counted.
const MAX_ERRORS_SHOWN: u64 = 20;
/// Errors kept for the JSON `errors`.
const MAX_ERRORS_KEPT: usize = 100;

/// What `tlspeek report` was asked (from `report_cli`).
#[derive(Clone, Debug)]
pub struct ReportConfig {
    /// JSON Lines files, `-` for standard input.
    pub inputs: Vec<PathBuf>,
    /// Write one JSON object instead of the table.
    pub json: bool,
    /// Terminal width for the readings (table only).
    pub width: Option<usize>,
    /// `--html`: also write the merged graph to this file.
    pub html: Option<PathBuf>,
    /// `--mesh-config`: Istio's configured policy, put beside each server and service.
    pub mesh_config: Vec<PathBuf>,
}

/// The counts of a merge, beside the readings and the graph.
#[derive(Clone, Debug, Default)]
pub(crate) struct MergeCounts {
    /// Input files, in order.
    pub(crate) files: Vec<String>,
    /// Lines read (every line, blank ones excepted).
    pub(crate) lines: u64,
    /// Flow lines (`ended`) read without error.
    pub(crate) flow_lines: u64,
    /// Of those, records of a connection already counted from its other end.
    pub(crate) duplicates: u64,
    /// Lines in error.
    pub(crate) bad_lines: u64,
    /// Error texts (the first [`MAX_ERRORS_KEPT`]).
    pub(crate) errors: Vec<String>,
    /// Packets and bytes of the inputs' summary lines.
    pub(crate) packets: u64,
    /// ...
    pub(crate) bytes: u64,
}

/// `packets` and `bytes`: objects on flow lines, numbers on summary lines.
#[derive(Deserialize)]
#[serde(untagged)]
enum Count {
    N(u64),
    Pair { client: u64, server: u64 },
}

/// The keys of a line that the merge reads (docs/json.md, "report"); others are skipped.
#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    event: Option<String>,
    id: Option<u64>,
    source: Option<String>,
    client: Option<String>,
    server: Option<String>,
    original_dst: Option<String>,
    on_loopback: Option<bool>,
    first_ts: Option<String>,
    last_ts: Option<String>,
    packets: Option<Count>,
    bytes: Option<Count>,
    protocol: Option<String>,
    tls: Option<TlsLine>,
    http: Option<HttpLine>,
    istio: Option<IstioLine>,
    reset_by: Option<String>,
    flags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TlsLine {
    version: Option<String>,
    sni: Option<String>,
    mtls: Option<String>,
    mtls_reason: Option<String>,
    alerts: Option<Vec<AlertLine>>,
}

#[derive(Deserialize)]
struct AlertLine {
    from: Option<String>,
    level: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct HttpLine {
    requests_total: Option<u64>,
    responses_total: Option<u64>,
    requests: Option<Vec<RequestLine>>,
}

#[derive(Deserialize)]
struct RequestLine {
    host: Option<String>,
    headers: Option<Vec<(String, String)>>,
}

#[derive(Deserialize)]
struct IstioLine {
    leg: Option<String>,
    mode: Option<String>,
    sni: Option<serde::de::IgnoredAny>,
    hbone: Option<HboneLine>,
    peer_metadata: Option<PeerMetadataLine>,
    peer_metadata_id: Option<String>,
    client_identity: Option<IdentityLine>,
    server_identity: Option<IdentityLine>,
}

/// `istio.peer_metadata`: only its `NAMESPACE` is read (the other keys are skipped unread).
#[derive(Deserialize)]
struct PeerMetadataLine {
    #[serde(rename = "NAMESPACE")]
    namespace: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct HboneLine {
    targets: Option<Vec<TargetLine>>,
}

#[derive(Deserialize)]
struct TargetLine {
    service: Option<String>,
}

#[derive(Deserialize)]
struct IdentityLine {
    uri: Option<String>,
}

/// A text value of one of our enums, `None` for a value this version does not know.
fn parse_enum<T: Copy>(all: &[T], text: &str, as_str: impl Fn(T) -> &'static str) -> Option<T> {
    all.iter().copied().find(|&v| as_str(v) == text)
}

/// RFC 3339 UTC as tlspeek writes it: `2024-05-01T10:00:00.123456Z` (any number of fraction
/// digits, `Z` or `+00:00`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<u32>().ok().map(i64::from) };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &frac[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp::new(days * 86_400 + h * 3600 + mi * 60 + se, nanos))
}

/// Why a line is not merged.
fn parse_flow(
    line: &Line,
    file_source: &Arc<str>,
    sources: &mut KeyedMap<String, Arc<str>>,
) -> Result<Flow, String> {
    let addr = |key: &str, v: &Option<String>| -> Result<SocketAddr, String> {
        let v = v.as_deref().ok_or_else(|| format!("no `{key}` key"))?;
        v.parse().map_err(|_| format!("`{key}` is not an address: {}", crate::sanitize::escape_str(v)))
    };
    let client = addr("client", &line.client)?;
    let server = addr("server", &line.server)?;
    let protocol = line.protocol.as_deref().ok_or("no `protocol` key")?;
    let protocol = parse_enum(Protocol::ALL, protocol, Protocol::as_str).unwrap_or(Protocol::Unknown);
    let source = match &line.source {
        Some(s) => match sources.get(s.as_str()) {
            Some(a) => Arc::clone(a),
            None => {
                let a: Arc<str> = s.as_str().into();
                if sources.len() < 100_000 {
                    sources.insert(s.clone(), Arc::clone(&a));
                }
                a
            }
        },
        None => Arc::clone(file_source),
    };
    let flags = line.flags.as_deref().unwrap_or_default();
    let has = |f: Flag| flags.iter().any(|x| x == f.as_str());
    let tls = line.tls.as_ref();
    let mtls = tls.map(|t| {
        t.mtls
            .as_deref()
            .and_then(|m| parse_enum(MtlsVerdict::ALL, m, MtlsVerdict::as_str))
            .unwrap_or_default()
    });
    let mtls_reason = tls.and_then(|t| t.mtls_reason.clone());
    let proven_by_keylog = mtls_reason.as_deref().is_some_and(|r| r.contains("; proven with the key log"));
    let fatal_alert = tls.and_then(|t| t.alerts.as_ref()).and_then(|a| {
        a.iter().find(|a| a.level.as_deref() == Some("fatal")).map(|a| {
            (a.from.clone().unwrap_or_else(|| "server".into()), a.description.clone().unwrap_or_default())
        })
    });
    let http = line.http.as_ref();
    let istio = line.istio.as_ref();
    let leg = istio
        .map(|i| i.leg.as_deref().and_then(|l| parse_enum(Leg::ALL, l, Leg::as_str)).unwrap_or_default());
    let mode = istio.and_then(|i| i.mode.as_deref()).and_then(|m| parse_enum(Mode::ALL, m, Mode::as_str));
    let sni = istio
        .and_then(|i| i.sni.as_ref())
        .and_then(|_| tls?.sni.as_deref())
        .and_then(crate::classify::istio::parse_sni);
    let mut hbone_services: Vec<String> = Vec::new();
    for t in istio.and_then(|i| i.hbone.as_ref()).and_then(|h| h.targets.as_ref()).into_iter().flatten() {
        let Some(host) = &t.service else { continue };
        let name = host.strip_suffix(".svc.cluster.local").unwrap_or(host).to_string();
        if !hbone_services.contains(&name) && hbone_services.len() < 8 {
            hbone_services.push(name);
        }
    }
    let requests = http.and_then(|h| h.requests.as_deref()).unwrap_or_default();
    let any_header = |p: &dyn Fn(&str) -> bool| {
        requests.iter().take(4).any(|r| r.headers.iter().flatten().any(|(n, _)| p(n)))
    };
    let envoy_headers = any_header(&|n| n.len() >= 8 && n[..8].eq_ignore_ascii_case("x-envoy-"));
    // As policy::peer_namespace reads the record: the metadata is the client's when a request
    // carried it.
    let peer_namespace = istio
        .and_then(|i| i.peer_metadata.as_ref())
        .filter(|_| any_header(&|n| n.eq_ignore_ascii_case("x-envoy-peer-metadata")))
        .and_then(|m| m.namespace.as_ref()?.as_str().map(str::to_string));
    // As policy::first_host: a backslash is how the JSON escapes bytes that are not UTF-8.
    let host = requests.iter().find_map(|r| r.host.clone()).filter(|h| !h.contains('\\'));
    let from_sidecar =
        envoy_headers || istio.is_some_and(|i| i.peer_metadata.is_some() || i.peer_metadata_id.is_some());
    let reset = line.reset_by.as_deref();
    Ok(Flow {
        id: line.id.unwrap_or(0),
        source,
        client: Some(client),
        server: Some(server),
        original_dst: line.original_dst.as_deref().and_then(|o| o.parse().ok()),
        on_loopback: line.on_loopback,
        first_ts: line.first_ts.as_deref().and_then(parse_rfc3339),
        last_ts: line.last_ts.as_deref().and_then(parse_rfc3339),
        protocol: Some(protocol),
        mtls,
        mtls_reason,
        proven_by_keylog,
        tls_version: tls.and_then(|t| t.version.clone()),
        handshake_failed: has(Flag::HandshakeFailed),
        handshake_refused: has(Flag::HandshakeRefused),
        fatal_alert,
        cert_warning: has(Flag::CertExpired) || has(Flag::CertNotYetValid) || has(Flag::CertExpiring),
        http_requests: http.and_then(|h| h.requests_total).unwrap_or(0),
        http_responses: http.and_then(|h| h.responses_total).unwrap_or(0),
        reset_by_server: matches!(reset, Some("server" | "both")),
        reset_by_client: matches!(reset, Some("client" | "both")),
        bytes: match line.bytes {
            Some(Count::Pair { client, server }) => (client, server),
            _ => (0, 0),
        },
        leg,
        mode,
        sni,
        hbone_services,
        client_identity: istio.and_then(|i| i.client_identity.as_ref()).and_then(|i| i.uri.clone()),
        server_identity: istio.and_then(|i| i.server_identity.as_ref()).and_then(|i| i.uri.clone()),
        from_sidecar,
        host,
        peer_namespace,
    })
}

/// The record the mesh stage counts, rebuilt from a merged flow: what
/// [`crate::mesh::MeshBook::count`] and the summary's totals read, nothing else.
fn to_report(f: &Flow) -> FlowReport {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut flags = Flags::default();
    if f.handshake_failed {
        flags.insert(Flag::HandshakeFailed);
    }
    if f.handshake_refused {
        flags.insert(Flag::HandshakeRefused);
    }
    if f.cert_warning {
        flags.insert(Flag::CertExpiring);
    }
    let tls = f.mtls.map(|mtls| TlsReport {
        version: f.tls_version.clone().map(std::borrow::Cow::Owned),
        mtls,
        mtls_reason: f.mtls_reason.clone().unwrap_or_default().into(),
        confirmed_by: f.proven_by_keylog.then_some(Confirmation::KeyLog),
        alerts: f
            .fatal_alert
            .iter()
            .map(|(from, description)| TlsAlert {
                from: if from == "client" { Role::Client } else { Role::Server },
                level: AlertLevel::Fatal,
                description: description.clone(),
                after_handshake: false,
            })
            .collect(),
        ..Default::default()
    });
    let protocol = f.protocol.unwrap_or(Protocol::Unknown);
    // One request holds what --mesh-config reads of the requests (policy::FlowFacts): the
    // Host, and the header that makes the peer metadata the client's.
    let request = (f.host.is_some() || f.peer_namespace.is_some()).then(|| {
        let mut headers = crate::sanitize::HeadersBuilder::default();
        if f.peer_namespace.is_some() {
            headers.push(b"x-envoy-peer-metadata", b"");
        }
        crate::classify::http::HttpRequest {
            method: crate::sanitize::WireBytes::new(b""),
            path_text: crate::sanitize::WireBytes::new(b"").into(),
            ver: None,
            host_text: f.host.as_deref().map(|h| crate::sanitize::WireBytes::from(h).into()),
            headers: headers.finish(),
            stream_id: crate::classify::http::NO_STREAM,
            h2: None,
        }
    });
    let http = (matches!(protocol, Protocol::Http | Protocol::H2c) || request.is_some()).then(|| {
        crate::classify::http::HttpReport {
            requests: request.into_iter().collect(),
            requests_total: f.http_requests,
            responses_total: f.http_responses,
            ..Default::default()
        }
    });
    let istio = f.leg.map(|leg| {
        let mut i = IstioReport::empty(leg);
        i.mode = f.mode;
        i.sni.clone_from(&f.sni);
        i.client_identity = f.client_identity.as_deref().and_then(crate::classify::istio::parse_spiffe);
        i.server_identity = f.server_identity.as_deref().and_then(crate::classify::istio::parse_spiffe);
        i.peer_metadata = f
            .peer_namespace
            .as_ref()
            .map(|ns| Arc::new(crate::classify::istio::PeerMetadata::with_namespace(ns)));
        if leg.is_hbone() {
            i.hbone = Some(
                f.hbone_services
                    .iter()
                    .map(|s| HboneTarget {
                        stream: None,
                        authority: crate::sanitize::WireBytes::new(b""),
                        status: None,
                        client: None,
                        service: Some(crate::sanitize::WireBytes::new(s.as_bytes())),
                    })
                    .collect(),
            );
        }
        i
    });
    FlowReport {
        event: Event::Ended,
        id: f.id,
        source: Arc::clone(&f.source),
        client: f.client.unwrap_or(unspecified),
        server: f.server.unwrap_or(unspecified),
        original_dst: f.original_dst,
        proxy_protocol: None,
        client_by: crate::flow::client::ClientBy::Syn,
        on_loopback: f.on_loopback,
        loopback_certain: false,
        first_ts: f.first_ts.unwrap_or_default(),
        last_ts: f.last_ts.unwrap_or_default(),
        nanos: false,
        duration: 0.0,
        packets: PerRole::default(),
        bytes: PerRole { client: f.bytes.0, server: f.bytes.1 },
        protocol,
        tls,
        http,
        istio,
        h2c: None,
        preview: None,
        end: crate::flow::EndReason::Closed,
        reset_by: match (f.reset_by_client, f.reset_by_server) {
            (true, true) => Some(ResetBy::Both),
            (true, false) => Some(ResetBy::Client),
            (false, true) => Some(ResetBy::Server),
            (false, false) => None,
        },
        flags,
        warnings: Vec::new(),
        from_sidecar: f.from_sidecar,
    }
}

/// One record of a connection in the window.
struct Held {
    /// Arrival order (commits follow it, so the output does not depend on hashing).
    seq: u64,
    /// Input file index.
    input: u32,
    /// The flow's capture.
    source: Arc<str>,
    /// Overlap test.
    first: Timestamp,
    last: Timestamp,
    /// The flow, until counted.
    flow: Option<Box<Flow>>,
}

/// Recent connections by 4-tuple, in two generations: when the young one holds
/// [`MAX_WINDOW_KEYS`] tuples, the old one's flows are counted and it is dropped.
#[derive(Default)]
struct Window {
    young: KeyedMap<(SocketAddr, SocketAddr), Vec<Held>>,
    old: KeyedMap<(SocketAddr, SocketAddr), Vec<Held>>,
    seq: u64,
}

/// Two records of the same 4-tuple from different captures whose times overlap (within the
/// skew) are one connection.
fn overlaps(a: &Held, first: Timestamp, last: Timestamp) -> bool {
    let n = |t: Timestamp| i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
    n(a.first) - SKEW_NANOS <= n(last) && n(first) - SKEW_NANOS <= n(a.last)
}

impl Window {
    /// Offers a flow: a duplicate of one held replaces it when richer (and is otherwise
    /// dropped); `true` when it was a duplicate. Flows that leave the window go to `commit`.
    fn offer(&mut self, f: Flow, input: u32, commit: &mut dyn FnMut(Flow)) -> bool {
        let (Some(c), Some(s)) = (f.client, f.server) else {
            commit(f);
            return false;
        };
        let key = (c, s);
        let (Some(first), Some(last)) = (f.first_ts, f.last_ts) else {
            commit(f);
            return false;
        };
        for generation in [&mut self.young, &mut self.old] {
            let Some(held) = generation.get_mut(&key) else { continue };
            for h in held.iter_mut() {
                let other_capture = h.input != input || h.source != f.source;
                if !(other_capture && overlaps(h, first, last)) {
                    continue;
                }
                if let Some(x) = &mut h.flow {
                    if f.richness() > x.richness() {
                        **x = f;
                    }
                }
                return true;
            }
        }
        self.seq += 1;
        let held = self.young.entry(key).or_insert_with(|| Vec::with_capacity(1));
        if held.len() >= MAX_PER_KEY {
            if let Some(x) = held.remove(0).flow {
                commit(*x);
            }
        }
        held.push(Held {
            seq: self.seq,
            input,
            source: Arc::clone(&f.source),
            first,
            last,
            flow: Some(Box::new(f)),
        });
        if self.young.len() >= MAX_WINDOW_KEYS {
            let old = std::mem::replace(&mut self.old, std::mem::take(&mut self.young));
            drain(old, commit);
        }
        false
    }

    /// Counts every flow held.
    fn finish(self, commit: &mut dyn FnMut(Flow)) {
        drain(self.old, commit);
        drain(self.young, commit);
    }
}

/// Commits a generation's flows in arrival order.
fn drain(generation: KeyedMap<(SocketAddr, SocketAddr), Vec<Held>>, commit: &mut dyn FnMut(Flow)) {
    let mut all: Vec<Held> = generation.into_values().flatten().collect();
    all.sort_unstable_by_key(|h| h.seq);
    for h in all {
        if let Some(f) = h.flow {
            commit(*f);
        }
    }
}

/// The merge's result, for the renderers.
pub(crate) struct Merged {
    /// Counts of the merge.
    pub(crate) counts: MergeCounts,
    /// The summary (totals, per-server and per-service readings).
    pub(crate) summary: crate::report::Summary,
    /// The graph.
    pub(crate) graph: crate::mesh::graph::GraphLists,
}

/// Reads one input, line by line, into the window.
fn read_input(
    r: &mut dyn BufRead,
    name: &str,
    input: u32,
    counts: &mut MergeCounts,
    window: &mut Window,
    commit: &mut dyn FnMut(Flow),
    diag: &mut dyn Write,
) -> io::Result<()> {
    let file_source: Arc<str> = name.into();
    let mut sources: KeyedMap<String, Arc<str>> = KeyedMap::default();
    let mut buf = Vec::new();
    let mut n: u64 = 0;
    let mut shown: u64 = 0;
    let mut error = |counts: &mut MergeCounts, diag: &mut dyn Write, text: String| -> io::Result<()> {
        counts.bad_lines += 1;
        shown += 1;
        if shown <= MAX_ERRORS_SHOWN {
            writeln!(diag, "tlspeek: {text}")?;
        } else if shown == MAX_ERRORS_SHOWN + 1 {
            writeln!(diag, "tlspeek: {name}: more errors; not shown")?;
        }
        if counts.errors.len() < MAX_ERRORS_KEPT {
            counts.errors.push(text);
        }
        Ok(())
    };
    loop {
        buf.clear();
        let got = match io::Read::take(&mut *r, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf) {
            Ok(g) => g,
            Err(e) => {
                error(counts, diag, format!("{name}: read error after line {n}: {e}"))?;
                return Ok(());
            }
        };
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            // Skip the rest of the line without keeping it.
            loop {
                let (done, used) = match r.fill_buf() {
                    Ok([]) => (true, 0),
                    Ok(b) => match b.iter().position(|&c| c == b'\n') {
                        Some(i) => (true, i + 1),
                        None => (false, b.len()),
                    },
                    Err(_) => (true, 0),
                };
                r.consume(used);
                if done {
                    break;
                }
            }
            error(counts, diag, format!("{name}:{n}: line longer than {MAX_LINE_BYTES} bytes"))?;
            continue;
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        counts.lines += 1;
        let line: Line = match serde_json::from_slice(text) {
            Ok(l) => l,
            Err(e) => {
                error(counts, diag, format!("{name}:{n}: not a tlspeek JSON line: {e}"))?;
                continue;
            }
        };
        match line.kind.as_deref() {
            Some("summary") => {
                if let Some(Count::N(p)) = line.packets {
                    counts.packets += p;
                }
                if let Some(Count::N(b)) = line.bytes {
                    counts.bytes += b;
                }
                continue;
            }
            Some("flow") | None => {}
            // Another kind of line (a newer tlspeek's, or a merged report): not a flow.
            Some(_) => continue,
        }
        if line.event.as_deref().is_some_and(|e| e != "ended") {
            continue;
        }
        match parse_flow(&line, &file_source, &mut sources) {
            Ok(f) => {
                counts.flow_lines += 1;
                if window.offer(f, input, commit) {
                    counts.duplicates += 1;
                }
            }
            Err(e) => error(counts, diag, format!("{name}:{n}: {e}"))?,
        }
    }
}

/// Merges the inputs: the counts, the summary with its readings, the graph.
pub(crate) fn merge(cfg: &ReportConfig, diag: &mut dyn Write) -> io::Result<Merged> {
    let mesh = MeshConfig { policy_files: cfg.mesh_config.clone(), ..MeshConfig::default() };
    let mut tally = Tally::default();
    let mut graph = Graph::default();
    // As a capture run: the files that cannot be used are errors, the others apply.
    let errors = tally.load_policy(&mesh.policy_files, false, diag)?;
    let mut counts = MergeCounts { errors, ..MergeCounts::default() };
    let mut window = Window::default();
    {
        let mut commit = |f: Flow| {
            tally.count(&to_report(&f), &mesh);
            graph.add(&f);
        };
        for (i, path) in cfg.inputs.iter().enumerate() {
            let name = path.to_string_lossy().into_owned();
            counts.files.push(name.clone());
            let input = u32::try_from(i).unwrap_or(u32::MAX);
            if name == "-" {
                let stdin = io::stdin();
                let mut r = stdin.lock();
                read_input(&mut r, &name, input, &mut counts, &mut window, &mut commit, diag)?;
                continue;
            }
            match std::fs::File::open(path) {
                Ok(file) => {
                    let mut r = io::BufReader::with_capacity(1 << 16, file);
                    read_input(&mut r, &name, input, &mut counts, &mut window, &mut commit, diag)?;
                }
                Err(e) => {
                    let text = format!("cannot open {name}: {e}");
                    writeln!(diag, "tlspeek: {text}")?;
                    counts.bad_lines += 1;
                    if counts.errors.len() < MAX_ERRORS_KEPT {
                        counts.errors.push(text);
                    }
                }
            }
        }
        window.finish(&mut commit);
    }
    let mut summary = tally.close(&mesh);
    summary.files.clone_from(&counts.files);
    summary.packets = counts.packets;
    summary.bytes = counts.bytes;
    Ok(Merged { counts, summary, graph: graph.finish() })
}

/// Runs `tlspeek report`: merges, then writes the table or the JSON object to `out`;
/// diagnostics to `diag`. The outcome's errors are the lines (and files) in error.
pub fn report_with_writer(
    cfg: &ReportConfig,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> io::Result<super::Outcome> {
    let mut m = merge(cfg, diag)?;
    if let Some(path) = &cfg.html {
        let title = crate::report::html::title_of(&m.counts.files);
        let (g, s) = (&m.graph, &m.summary);
        if let Err(e) = crate::report::html::write_html(path, g, &s.servers, &s.services, &title) {
            let text = format!("cannot write {}: {e}", path.display());
            writeln!(diag, "tlspeek: {text}")?;
            m.counts.errors.push(text);
        }
    }
    if cfg.json {
        crate::report::merged::write_json(out, &m)?;
    } else {
        crate::report::merged::write_table(out, &m, cfg.width)?;
    }
    out.flush()?;
    Ok(super::Outcome { errors: m.counts.errors.clone(), violations: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for (secs, nanos) in
            [(0i64, 0u32), (1_700_000_000, 123_456_000), (951_782_400, 1), (4_102_444_799, 999_999_999)]
        {
            let t = Timestamp { secs, nanos };
            assert_eq!(parse_rfc3339(&t.rfc3339(true)), Some(t));
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(|t| t.secs), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00.Z"), None);
    }

    fn held(first: i64, last: i64) -> Held {
        Held {
            seq: 0,
            input: 0,
            source: "a".into(),
            first: Timestamp { secs: first, nanos: 0 },
            last: Timestamp { secs: last, nanos: 0 },
            flow: None,
        }
    }

    fn flow(source: &str, client_port: u16, secs: i64, mtls: MtlsVerdict) -> Flow {
        Flow {
            source: source.into(),
            client: Some(SocketAddr::from(([10, 0, 0, 1], client_port))),
            server: Some(SocketAddr::from(([10, 0, 0, 2], 15008))),
            first_ts: Some(Timestamp { secs, nanos: 0 }),
            last_ts: Some(Timestamp { secs: secs + 5, nanos: 0 }),
            protocol: Some(Protocol::Tls),
            mtls: Some(mtls),
            ..Default::default()
        }
    }

    /// Offers (input, flow) pairs; the flows counted, in order, and the duplicates.
    fn run(flows: Vec<(u32, Flow)>) -> (Vec<(String, Option<MtlsVerdict>)>, u64) {
        let mut w = Window::default();
        let mut out = Vec::new();
        let mut dups = 0;
        let mut commit = |f: Flow| out.push((f.source.to_string(), f.mtls));
        for (input, f) in flows {
            dups += u64::from(w.offer(f, input, &mut commit));
        }
        w.finish(&mut commit);
        (out, dups)
    }

    #[test]
    fn the_two_ends_of_a_connection_count_once_the_richer_kept() {
        let (out, dups) = run(vec![
            (0, flow("client.pcap", 40000, 100, MtlsVerdict::Likely)),
            (0, flow("client.pcap", 40001, 100, MtlsVerdict::Likely)),
            (1, flow("server.pcap", 40000, 101, MtlsVerdict::Yes)),
            // A third capture of it (a node's): a duplicate too, poorer, dropped.
            (2, flow("node.pcap", 40000, 100, MtlsVerdict::Unknown)),
        ]);
        assert_eq!(dups, 2);
        assert_eq!(
            out,
            [
                ("server.pcap".to_string(), Some(MtlsVerdict::Yes)),
                ("client.pcap".to_string(), Some(MtlsVerdict::Likely))
            ]
        );
    }

    #[test]
    fn one_capture_or_other_times_are_other_connections() {
        let (out, dups) = run(vec![
            // The same capture twice in one file (a reused port pair): two connections.
            (0, flow("a.pcap", 40000, 100, MtlsVerdict::Yes)),
            (0, flow("a.pcap", 40000, 102, MtlsVerdict::Yes)),
            // Another capture, times 10 s apart: another connection.
            (1, flow("b.pcap", 40000, 120, MtlsVerdict::Yes)),
        ]);
        assert_eq!((out.len(), dups), (3, 0));
    }

    /// Lines of shipped captures (keys the merge does not read left out): HBONE decrypted,
    /// sidecar mTLS with an Istio SNI, a TLS handshake failed by an alert, plaintext reset.
    const LINES: [&str; 4] = [
        r#"{"type":"flow","event":"ended","id":3,"source":"ambient-server-any.pcap","client":"10.99.0.1:42058","server":"10.99.0.2:15008","first_ts":"2026-12-06T06:06:52.651396Z","last_ts":"2026-12-06T06:06:52.852866Z","bytes":{"client":1948,"server":2259},"protocol":"tls","tls":{"version":"TLS 1.3","sni":null,"mtls":"yes","mtls_reason":"client sent a certificate (spiffe://cluster.local/ns/default/sa/client); proven with the key log","alerts":[]},"istio":{"leg":"hbone","mode":"ambient","sni":null,"hbone":{"targets":[{"stream":1,"authority":"10.99.0.2:8080","status":200,"client":"10.99.0.1:41001","service":null},{"stream":5,"authority":"10.99.0.2:8080","status":200,"client":"10.99.0.1:41003","service":"server.default.svc.cluster.local"}]},"client_identity":{"uri":"spiffe://cluster.local/ns/default/sa/client"},"server_identity":{"uri":"spiffe://cluster.local/ns/default/sa/server"}},"reset_by":null,"flags":[]}"#,
        r#"{"type":"flow","event":"ended","id":1,"source":"istio-mtls-tls12.pcap","client":"10.97.0.2:51910","server":"10.97.0.1:9080","original_dst":null,"on_loopback":false,"first_ts":"2026-11-23T07:16:39.234187Z","last_ts":"2026-11-23T07:16:39.243322Z","bytes":{"client":2407,"server":2605},"protocol":"tls","tls":{"version":"TLS 1.2","sni":"outbound_.9080_._.ratings.default.svc.cluster.local","mtls":"yes","mtls_reason":"client sent a certificate (spiffe://cluster.local/ns/default/sa/reviews)","alerts":[]},"http":null,"istio":{"leg":"pod_network","mode":"sidecar","sni":{"direction":"outbound","port":9080,"subset":null,"fqdn":"ratings.default.svc.cluster.local","service":"ratings","namespace":"default"},"client_identity":{"uri":"spiffe://cluster.local/ns/default/sa/reviews"}},"reset_by":null,"flags":["cert_expiring"]}"#,
        r#"{"type":"flow","event":"ended","id":1,"source":"tls-alerts.pcap","client":"10.96.0.2:40501","server":"10.96.0.1:8443","original_dst":null,"on_loopback":false,"first_ts":"2026-12-05T22:12:24.549239Z","last_ts":"2026-12-05T22:12:24.551074Z","bytes":{"client":224,"server":1002},"protocol":"tls","tls":{"version":"TLS 1.2","sni":"expired.example.test","mtls":"no","mtls_reason":"server did not request a client certificate; the handshake failed (certificate_expired alert from the client)","alerts":[{"from":"client","level":"fatal","description":"certificate_expired"}]},"http":null,"istio":null,"reset_by":null,"flags":["handshake_failed","cert_expired"]}"#,
        r#"{"type":"flow","event":"ended","id":1,"source":"istio-strict-reset.pcap","client":"10.97.0.2:51930","server":"10.97.0.1:9080","original_dst":null,"on_loopback":false,"first_ts":"2026-11-23T07:16:45.718749Z","last_ts":"2026-11-23T07:16:45.719224Z","bytes":{"client":811,"server":0},"protocol":"http","tls":null,"http":{"requests_total":1,"responses_total":0},"istio":{"leg":"pod_network","mode":"sidecar","sni":null,"client_identity":null},"reset_by":"server","flags":["reset"]}"#,
    ];

    fn parse(l: &str) -> Flow {
        let line: Line = serde_json::from_str(l).unwrap();
        parse_flow(&line, &Arc::from("file.jsonl"), &mut KeyedMap::default()).unwrap()
    }

    #[test]
    fn lines_read_as_their_run_wrote_them() {
        use crate::mesh::graph::EdgeClass;
        let f: Vec<Flow> = LINES.iter().map(|l| parse(l)).collect();
        let classes: Vec<EdgeClass> = f.iter().map(Flow::class).collect();
        assert_eq!(
            classes,
            [EdgeClass::ProvenMtls, EdgeClass::ProvenMtls, EdgeClass::Refused, EdgeClass::Refused]
        );
        assert!(f[0].proven_by_keylog && !f[1].proven_by_keylog);
        assert_eq!(f[0].hbone_services, ["server.default"]);
        assert_eq!(f[0].service().as_deref(), Some("server.default"));
        assert_eq!(f[1].service().as_deref(), Some("ratings.default:9080"));
        assert_eq!(f[1].client_identity.as_deref(), Some("spiffe://cluster.local/ns/default/sa/reviews"));
        assert!(f[1].cert_warning && !f[1].handshake_failed);
        assert_eq!(f[2].fatal_alert, Some(("client".to_string(), "certificate_expired".to_string())));
        assert!(f[3].reset_by_server && f[3].http_requests == 1 && f[3].http_responses == 0);
        assert_eq!(f[3].first_ts, Some(Timestamp { secs: 1_795_418_205, nanos: 718_749_000 }));
        assert_eq!(&*f[3].source, "istio-strict-reset.pcap");
    }

    /// The record rebuilt for the mesh stage gives back the same facts ([`Flow::from_report`]
    /// is what a capture run would feed the graph).
    #[test]
    fn rebuilt_records_give_the_same_flow() {
        for l in LINES {
            let f = parse(l);
            assert_eq!(Flow::from_report(&to_report(&f)), f, "{l}");
        }
    }

    /// What `--mesh-config` reads of a record survives the JSON: the Host, and the peer
    /// metadata's namespace when a request carried it (istio-strict-reset.pcap, keys cut).
    #[test]
    fn policy_facts_survive_the_json() {
        use crate::mesh::policy::FlowFacts;
        let line = |headers: &str, host: &str| {
            format!(
                r#"{{"type":"flow","event":"ended","id":1,"client":"10.97.0.2:51930","server":"10.97.0.1:9080","first_ts":"2026-11-23T07:16:45.718749Z","last_ts":"2026-11-23T07:16:45.719224Z","protocol":"http","http":{{"requests":[{{"host":{host},"headers":{headers}}}],"requests_total":1,"responses_total":0}},"istio":{{"leg":"pod_network","mode":"sidecar","sni":null,"peer_metadata":{{"LABELS":{{"app":"productpage"}},"NAMESPACE":"default","WORKLOAD_NAME":"productpage-v1"}},"client_identity":null}},"reset_by":"server","flags":["reset"]}}"#
            )
        };
        let carried = r#"[["host","reviews:9080"],["X-Envoy-Peer-Metadata","Ch..."]]"#;
        let f = parse(&line(carried, r#""reviews:9080""#));
        assert_eq!((f.host.as_deref(), f.peer_namespace.as_deref()), (Some("reviews:9080"), Some("default")));
        let r = to_report(&f);
        assert_eq!(
            FlowFacts::of(&r),
            FlowFacts {
                server_port: 9080,
                client_namespace: Some("default"),
                host: Some("reviews:9080"),
                ..Default::default()
            }
        );
        assert_eq!(Flow::from_report(&r), f);
        // Metadata no request carried (a response's: the server's) names no client; a Host the
        // JSON escaped (not UTF-8 on the wire) is none, as in the capture run.
        let f = parse(&line(r#"[["host","x"]]"#, r#""rev\\xffiews""#));
        assert_eq!((f.host, f.peer_namespace), (None, None));
    }

    #[test]
    fn overlap_allows_a_second_of_skew() {
        let t = |s| Timestamp { secs: s, nanos: 0 };
        assert!(overlaps(&held(10, 20), t(21), t(30)));
        assert!(!overlaps(&held(10, 20), t(22), t(30)));
        assert!(overlaps(&held(10, 20), t(0), t(9)));
        assert!(!overlaps(&held(10, 20), t(0), t(8)));
    }
}

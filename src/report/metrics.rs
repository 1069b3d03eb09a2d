//! `--metrics ADDR`: Prometheus text exposition (format 0.0.4) of a live capture at `/metrics`.
//!
//! [`Metrics`] is the state the merging thread updates and the HTTP thread renders, behind one
//! mutex: a counter per connection label set, bumped when a flow is written (the same place the
//! summary counts it, so both agree), and the capture's counters, sampled about once a second
//! by the analysing loop. Nothing is done per packet here.
//!
//! Label values come from packets (SNI, certificate URIs): each is cut to [`MAX_LABEL_BYTES`],
//! escaped for terminals as the table is ([`crate::sanitize`]), then as the format says
//! (backslash, double quote, newline), and at most
//! [`MAX_SERIES`] label sets get a series of their own; the flows beyond are counted in one
//! series whose labels all read `overflow`, and in `tlspeek_metrics_series_dropped_total`.
//!
//! [`MetricsServer`] is a minimal HTTP/1.1 server on a thread of its own, one connection at a
//! time: `GET /metrics` (or `HEAD`), 404 for other paths, bounded request size and timeouts. It
//! is bound before the capture drops its privileges (a port below 1024 needs root) and keeps its
//! socket afterwards.

use crate::classify::tls::MtlsVerdict;
use crate::record::{EndpointText, FlowReport};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Label sets with a series of their own; flows with another label set are counted in the
/// `overflow` series. Prometheus handles far more, but each series costs it memory for as long
/// as it is kept, and these labels come from packets.
pub const MAX_SERIES: usize = 2_000;

/// Bytes kept of one label value (cut at a character boundary).
pub const MAX_LABEL_BYTES: usize = 256;

/// Bytes read of a request's head; a longer one is answered 431 and closed.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a client has to send its request, and the write timeout of the answer: one slow client
/// cannot hold the server longer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the accepting thread looks whether the run has ended.
const STOP_POLL_MS: i32 = 200;

/// The labels of `tlspeek_connections_total`, in this order (names as Istio's
/// `istio_tcp_connections_opened_total` where the meaning is the same).
pub const LABEL_NAMES: [&str; 8] = [
    "server",
    "destination_service",
    "protocol",
    "mtls",
    "leg",
    "connection_security_policy",
    "source_principal",
    "destination_principal",
];

/// The value of every label of the overflow series.
const OVERFLOW: &str = "overflow";

/// Istio's word for a value not known.
const UNKNOWN: &str = "unknown";

/// One label set, values in the order of [`LABEL_NAMES`].
type Labels = [String; 8];

/// The capture's counters, as last sampled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Packets read.
    pub(crate) packets: u64,
    /// Captured bytes of those packets.
    pub(crate) bytes: u64,
    /// Flows in the flow table.
    pub(crate) flows_open: u64,
    /// libpcap's `ps_drop` (dropped by the kernel), when it could be read.
    pub(crate) kernel_drops: Option<u64>,
}

/// What `/metrics` shows: updated by the run, rendered on each scrape.
#[derive(Debug, Default)]
pub struct Metrics {
    book: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    connections: BTreeMap<Labels, u64>,
    /// Flows whose label set had no room ([`MAX_SERIES`]).
    overflow: u64,
    sample: Sample,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic elsewhere while holding it leaves counters that are still counters.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one written flow.
    pub(crate) fn count_flow(&self, f: &FlowReport) {
        let labels = labels_of(f);
        let mut b = self.lock();
        if let Some(n) = b.connections.get_mut(&labels) {
            *n += 1;
        } else if b.connections.len() < MAX_SERIES {
            b.connections.insert(labels, 1);
        } else {
            b.overflow += 1;
        }
    }

    /// Replaces the capture's counters.
    pub(crate) fn sample(&self, s: Sample) {
        self.lock().sample = s;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let b = self.lock();
        let mut out = String::with_capacity(512 + b.connections.len() * 256);
        out.push_str(
            "# HELP tlspeek_connections_total TCP connections that ended, by server, Istio service, protocol, \
             mTLS verdict and leg, as tlspeek observed them on the wire.\n\
             # TYPE tlspeek_connections_total counter\n",
        );
        for (labels, n) in &b.connections {
            push_series(&mut out, labels.iter().map(String::as_str), *n);
        }
        if b.overflow > 0 {
            push_series(&mut out, [OVERFLOW; 8].into_iter(), b.overflow);
        }
        let s = b.sample;
        let mut simple = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
        };
        simple(
            "tlspeek_metrics_series_dropped_total",
            "counter",
            &format!(
                "Connections counted in the series labelled overflow: their label set came after the first {MAX_SERIES}."
            ),
            b.overflow,
        );
        simple("tlspeek_packets_total", "counter", "Packets captured and analysed.", s.packets);
        simple("tlspeek_bytes_total", "counter", "Captured bytes of those packets.", s.bytes);
        simple("tlspeek_flows_open", "gauge", "TCP flows in the flow table.", s.flows_open);
        if let Some(d) = s.kernel_drops {
            simple(
                "tlspeek_kernel_drops_total",
                "counter",
                "Packets the kernel dropped before tlspeek read them (libpcap ps_drop; raise -B).",
                d,
            );
        }
        out
    }
}

/// `name{k="v",...} n`.
fn push_series<'a>(out: &mut String, values: impl Iterator<Item = &'a str>, n: u64) {
    out.push_str("tlspeek_connections_total{");
    for (i, (k, v)) in LABEL_NAMES.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(out, v);
        out.push('"');
    }
    let _ = writeln!(out, "}} {n}");
}

/// A label value as the text format wants it: `\` `"` and newline escaped.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// At most [`MAX_LABEL_BYTES`] of `s`, cut at a character boundary, then escaped as the table
/// escapes wire text (control and invisible characters as `\x1b`, `\u{202e}`; a backslash
/// doubled): `curl .../metrics` on a terminal prints no bytes from packets raw.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_LABEL_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    crate::sanitize::escape_str(&s[..end])
}

/// The label set of a flow.
fn labels_of(f: &FlowReport) -> Labels {
    let istio = f.istio.as_ref();
    // The leg as the readings name it (docs/istio.md): a flow without Istio facts is on the pod
    // network unless an end is loopback.
    let leg = crate::mesh::legs::leg_of(f);
    // Istio's destination_service is the host name (`reviews.default.svc.cluster.local`): the
    // SNI's, or for HBONE the Service its first CONNECT stream names.
    let service = istio
        .and_then(|i| i.sni.as_ref().map(|s| bounded(s.fqdn())))
        .or_else(|| {
            let t = istio?.hbone.as_ref()?.iter().find_map(|t| t.service.as_ref())?;
            Some(bounded(&t.to_json_text()))
        })
        .unwrap_or_else(|| UNKNOWN.to_string());
    let mtls = f.tls.as_ref().map(|t| t.mtls);
    let policy = match mtls {
        Some(MtlsVerdict::Yes | MtlsVerdict::Likely) => "mutual_tls",
        _ => "none",
    };
    let principal = |id: Option<&crate::classify::istio::SpiffeId>| {
        id.map_or_else(|| UNKNOWN.to_string(), |id| bounded(id.uri()))
    };
    [
        EndpointText::new(f.server).as_str().to_string(),
        service,
        f.protocol.as_str().to_string(),
        mtls.map_or("not_tls", MtlsVerdict::as_str).to_string(),
        leg.as_str().to_string(),
        policy.to_string(),
        principal(istio.and_then(|i| i.client_identity.as_ref())),
        principal(istio.and_then(|i| i.server_identity.as_ref())),
    ]
}

/// A `--metrics` value that is not an address to listen on (clap prints it after the option).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address to listen on like 127.0.0.1:9464, :9464 or [::]:9464")]
pub struct NotAListenAddress(pub String);

/// `--metrics` value: `IP:PORT`, `[IPv6]:PORT`, or `:PORT` (every IPv4 address). Addresses
/// only: a host name would need a lookup, and the command line does no I/O.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, NotAListenAddress> {
    let t = s.trim();
    let full = match t.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => t.to_string(),
    };
    full.parse().map_err(|_| NotAListenAddress(s.to_string()))
}

/// Why the metrics port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct MetricsError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: io::Error,
}

/// The HTTP thread serving `/metrics`; stopped (and joined) when dropped.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The address bound (the port, when 0 was asked).
    pub local: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` from a new thread.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsServer, MetricsError> {
        let err = |source| MetricsError { addr, source };
        let listener = TcpListener::bind(addr).map_err(err)?;
        let local = listener.local_addr().map_err(err)?;
        // Non-blocking: a connection gone between poll and accept must not block the thread
        // past the end of the run.
        listener.set_nonblocking(true).map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &metrics, &flag))
            .map_err(err)?;
        Ok(MetricsServer { stop, thread: Some(thread), local })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts one connection at a time until `stop`.
fn serve(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    use std::os::fd::AsRawFd;
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the listener, which outlives the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, STOP_POLL_MS) };
        if ready <= 0 {
            continue;
        }
        if let Ok((conn, _)) = listener.accept() {
            // A client that goes away or stalls only ends its own connection.
            let _ = answer(conn, metrics);
        }
    }
}

/// Reads one request head and answers it; the connection is then closed.
fn answer(mut conn: TcpStream, metrics: &Metrics) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_BYTES {
            return conn.write_all(&response(Status::TooLarge, "", false));
        }
        // The whole request within IO_TIMEOUT, however it is cut.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, head_only) = route(&head);
    let body = if status == Status::Ok { metrics.render() } else { String::new() };
    conn.write_all(&response(status, &body, head_only))?;
    conn.flush()
}

/// The answers the server gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    TooLarge,
}

/// Status of a request head, and whether the method was HEAD.
fn route(head: &[u8]) -> (Status, bool) {
    let line = head.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return (Status::BadRequest, false);
    };
    if !version.starts_with(b"HTTP/1.") {
        return (Status::BadRequest, false);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(&[]);
    let head_only = method == b"HEAD";
    match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => (Status::Ok, head_only),
        (_, b"/metrics") => (Status::MethodNotAllowed, head_only),
        _ => (Status::NotFound, head_only),
    }
}

/// A whole response, closing the connection.
fn response(status: Status, body: &str, head_only: bool) -> Vec<u8> {
    let (code, reason, ctype, body) = match status {
        Status::Ok => (200, "OK", "text/plain; version=0.0.4; charset=utf-8", body),
        Status::BadRequest => (400, "Bad Request", "text/plain", "bad request\n"),
        Status::NotFound => (404, "Not Found", "text/plain", "not found: tlspeek serves /metrics\n"),
        Status::MethodNotAllowed => (405, "Method Not Allowed", "text/plain", "use GET\n"),
        Status::TooLarge => (431, "Request Header Fields Too Large", "text/plain", "request too large\n"),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == Status::MethodNotAllowed {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::istio::{parse_sni, parse_spiffe, IstioReport, Leg};
    use crate::classify::tls::TlsReport;
    use crate::classify::Protocol;
    use crate::flow::FlowMeta;

    fn labels(server: &str, service: &str) -> Labels {
        [server, service, "tls", "yes", "pod_network", "mutual_tls", "unknown", "unknown"].map(String::from)
    }

    /// A flow to `server` from 10.0.0.9:40000 carrying `protocol`, with `tls` facts.
    fn flow(server: &str, protocol: Protocol, tls: Option<TlsReport>) -> FlowReport {
        let server: SocketAddr = server.parse().unwrap();
        let client = SocketAddr::from(([10, 0, 0, 9], 40_000));
        let meta = FlowMeta::closed_for_test(client, server, (1, 2), 1);
        FlowReport::for_test(meta, protocol, tls, None)
    }

    fn with(m: &Metrics, l: Labels, n: u64) {
        m.lock().connections.insert(l, n);
    }

    #[test]
    fn label_values_from_packets_are_escaped() {
        let m = Metrics::default();
        with(&m, labels("10.0.0.1:443", "a\"b\\c\nd.svc"), 3);
        let text = m.render();
        let line = text.lines().find(|l| l.starts_with("tlspeek_connections_total{")).unwrap();
        assert_eq!(
            line,
            r#"tlspeek_connections_total{server="10.0.0.1:443",destination_service="a\"b\\c\nd.svc",protocol="tls",mtls="yes",leg="pod_network",connection_security_policy="mutual_tls",source_principal="unknown",destination_principal="unknown"} 3"#
        );
        // Every line is a comment or a sample: no value broke out of its quotes.
        assert!(text.lines().all(|l| l.starts_with("# ") || l.starts_with("tlspeek_")), "{text}");
    }

    #[test]
    fn label_values_are_bounded() {
        let long = "é".repeat(200); // 400 bytes
        let cut = bounded(&long);
        assert_eq!((cut.len(), cut.chars().count()), (256, 128));
        assert_eq!(bounded("short"), "short");
        // What a terminal would act on is written as text, as in the table.
        assert_eq!(bounded("a\x1b[2Jb\u{202e}c\\"), "a\\x1b[2Jb\\u{202e}c\\\\");
    }

    #[test]
    fn series_beyond_the_cap_go_to_the_overflow_series() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES {
            with(&m, labels(&format!("10.0.{}.{}:80", i / 256, i % 256), "s"), 1);
        }
        // A known label set still counts in its own series; a new one goes to overflow.
        let known = labels("10.0.0.0:80", "s");
        let mut b = m.lock();
        *b.connections.get_mut(&known).unwrap() += 1;
        drop(b);
        let flow = flow("10.9.9.9:80", Protocol::Unknown, None);
        m.count_flow(&flow);
        m.count_flow(&flow);
        let text = m.render();
        assert!(text.contains(r#"server="10.0.0.0:80",destination_service="s""#));
        assert!(text.lines().any(
            |l| l.starts_with(r#"tlspeek_connections_total{server="10.0.0.0:80""#) && l.ends_with("} 2")
        ));
        let overflow = "tlspeek_connections_total{server=\"overflow\",destination_service=\"overflow\",protocol=\"overflow\",\
             mtls=\"overflow\",leg=\"overflow\",connection_security_policy=\"overflow\",source_principal=\"overflow\",\
             destination_principal=\"overflow\"} 2";
        assert!(text.lines().any(|l| l == overflow), "{text}");
        assert!(text.contains("\ntlspeek_metrics_series_dropped_total 2\n"));
        assert_eq!(
            text.lines().filter(|l| l.starts_with("tlspeek_connections_total{")).count(),
            MAX_SERIES + 1
        );
    }

    #[test]
    fn a_plaintext_flow_has_no_mtls_and_unknown_principals() {
        let m = Metrics::default();
        m.count_flow(&flow("10.0.0.1:8080", Protocol::Http, None));
        m.sample(Sample { packets: 12, bytes: 3400, flows_open: 2, kernel_drops: Some(0) });
        let text = m.render();
        assert!(text.contains(
            "\ntlspeek_connections_total{server=\"10.0.0.1:8080\",destination_service=\"unknown\",protocol=\"http\",\
             mtls=\"not_tls\",leg=\"pod_network\",connection_security_policy=\"none\",source_principal=\"unknown\",\
             destination_principal=\"unknown\"} 1\n"
        ), "{text}");
        for l in [
            "# TYPE tlspeek_connections_total counter",
            "tlspeek_packets_total 12",
            "tlspeek_bytes_total 3400",
            "# TYPE tlspeek_flows_open gauge",
            "tlspeek_flows_open 2",
            "tlspeek_kernel_drops_total 0",
            "tlspeek_metrics_series_dropped_total 0",
        ] {
            assert!(text.lines().any(|x| x == l), "{l} missing:\n{text}");
        }
    }

    #[test]
    fn an_istio_mtls_flow_names_service_policy_and_principals() {
        let tls = TlsReport { mtls: MtlsVerdict::Likely, ..Default::default() };
        let mut f = flow("10.0.0.2:9080", Protocol::Tls, Some(tls));
        let mut i = IstioReport::empty(Leg::PodNetwork);
        i.sni = parse_sni("outbound_.9080_._.reviews.default.svc.cluster.local");
        i.client_identity = parse_spiffe("spiffe://cluster.local/ns/default/sa/productpage");
        f.istio = Some(i);
        assert_eq!(
            labels_of(&f),
            [
                "10.0.0.2:9080",
                "reviews.default.svc.cluster.local",
                "tls",
                "likely",
                "pod_network",
                "mutual_tls",
                "spiffe://cluster.local/ns/default/sa/productpage",
                "unknown"
            ]
        );
        let tls = TlsReport { mtls: MtlsVerdict::No, ..Default::default() };
        let f = flow("127.0.0.1:15000", Protocol::Tls, Some(tls));
        assert_eq!(labels_of(&f)[3..6], ["no", "loopback", "none"]);
    }

    #[test]
    fn requests_are_routed() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), (Status::Ok, false));
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"), (Status::Ok, false));
        assert_eq!(route(b"HEAD /metrics HTTP/1.0\r\n\r\n"), (Status::Ok, true));
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), (Status::NotFound, false));
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), (Status::MethodNotAllowed, false));
        assert_eq!(route(b"\x16\x03\x01\x02\x00\r\n\r\n"), (Status::BadRequest, false));
        let r = String::from_utf8(response(Status::Ok, "x 1\n", false)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n")
        );
        assert!(r.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n"));
    }

    #[test]
    fn the_server_answers_scrapes_and_stops() {
        let m = Arc::new(Metrics::default());
        m.sample(Sample { packets: 7, ..Sample::default() });
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m)).unwrap();
        let get = |req: &[u8]| {
            let mut c = TcpStream::connect(server.local).unwrap();
            c.write_all(req).unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("\ntlspeek_packets_total 7\n"), "{ok}");
        assert!(get(b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
        // Exactly the bound, without the blank line: all of it is read, then refused.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES, b'a');
        assert!(get(&huge).starts_with("HTTP/1.1 431 "));
        drop(server);
        assert_eq!(parse_listen_addr(":9464").unwrap(), "0.0.0.0:9464".parse().unwrap());
        assert_eq!(parse_listen_addr("[::]:9464").unwrap(), "[::]:9464".parse().unwrap());
        assert_eq!(parse_listen_addr("localhost:9464"), Err(NotAListenAddress("localhost:9464".into())));
    }
}

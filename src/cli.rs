//! Command line → validated [`Config`]. No I/O here.

use crate::capture::live::LiveOptions;
use crate::capture::write::WriteOptions;
use crate::classify::http::HttpConfig;
use crate::classify::tls::TlsLimits;
use crate::classify::ClassifyConfig;
use crate::flow::Limits;
use crate::run::{Config, Format, OfflineOptions};
use clap::{ArgAction, Parser};
use std::path::PathBuf;

/// Is the traffic really encrypted, and with whose certificates?
///
/// tlspeek reads packet captures (pcap or pcapng, e.g. from `tcpdump -i any -w cap.pcap` inside
/// an istio-proxy sidecar), reassembles every TCP connection and reports, per flow, whether it
/// was TLS (version, SNI, ALPN, cipher, certificates, client certificates, mTLS verdict) or
/// plaintext (HTTP/1 requests and headers, h2c, other).
///
/// Examples:
///   tlspeek -r capture.pcap
///   tlspeek -r capture.pcap --json | jq 'select(.protocol=="http") | .http.requests[].path'
///   tcpdump -i any -w - port 9080 | tlspeek -r -
///   tlspeek -nr capture.pcap port 9080 -c 1000 -w part.pcap   (filter, count, write: as tcpdump)
///   tlspeek -i eth0 port 9080            (live; Ctrl-C stops and prints the flows)
///   tlspeek -i any -w ring.pcap -C 10 -W 5   (at most 5 files of 10 MB: 50 MB of disk)
///   tlspeek -D                           (list interfaces)
///
/// Mesh checks (docs/istio.md):
///   tlspeek -r cap.pcap --expect mtls          exit 1 if a pod-network flow is not mutual TLS
///   tlspeek -r cap.pcap --fail-on-plaintext    exit 1 if plaintext HTTP crossed the pod network
///   tlspeek -r cap.pcap --ca root-cert.pem     every certificate chain checked against the mesh root
///   tlspeek report a.jsonl b.jsonl             merge --json outputs of many pods (tlspeek report --help)
///
/// Exit codes: 0 success (also after Ctrl-C); 1 --expect mtls or --fail-on-plaintext failed
/// (the flows that broke it are listed); 2 an input could not be read to its end (flows found
/// before the problem are still reported), the interface could not be opened, a -w file could
/// not be written, or the command line is wrong (2 wins over 1). Each error is one line on
/// stderr, printed once.
#[derive(Debug, Parser)]
#[command(name = "tlspeek", version, about, long_about, verbatim_doc_comment)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; `-` = standard input). Repeatable.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Capture live on IFACE (`any` for all interfaces; needs root or CAP_NET_RAW).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub(crate) interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// BPF filter (tcpdump syntax), live or on files (compiled by libpcap for each file's link
    /// type, as tcpdump -r F EXPR); also accepted as trailing arguments.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub(crate) filter: Option<String>,

    /// Stop after N packets: captured live, or read with -r (those that pass the filter,
    /// counted over all the files in order), as tcpdump -c.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Stop a live capture after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) duration: Option<f64>,

    /// Serve Prometheus metrics of the live capture at http://ADDR/metrics (ADDR: 127.0.0.1:9464,
    /// :9464 for every IPv4 address, [::]:9464): connections per server, Istio service,
    /// protocol, mTLS verdict and leg, with Istio's label names where they mean the same; packets,
    /// bytes, kernel drops, flows open. At most 2,000 label sets; the connections beyond are
    /// counted in one series labelled `overflow`. Bound before privileges are dropped (-Z).
    ///
    /// Recipe: `tlspeek -i any --metrics :9464 -q --summary-only` in the pod, then
    /// `kubectl annotate pod POD tlspeek/metrics-port=9464` for the scrape job in
    /// docs/kubernetes.md, "Metrics".
    #[arg(long, value_name = "ADDR", value_parser = crate::report::metrics::parse_listen_addr)]
    pub(crate) metrics: Option<std::net::SocketAddr>,

    /// Snapshot length for live capture, bytes [default: 262144].
    #[arg(short = 's', long = "snaplen", value_name = "BYTES")]
    pub(crate) snaplen: Option<i32>,

    /// Kernel capture buffer for live capture, KiB (as tcpdump -B).
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB")]
    pub(crate) buffer_size: Option<i32>,

    /// Also write the packets analysed to FILE (pcap): captured live, or read with -r (those
    /// that pass the filter, up to -c), as tcpdump -w. See -C, -W, -G to bound the disk used.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub(crate) write: Option<PathBuf>,

    /// With -w: before writing a packet, start a new file when the current one is larger than
    /// SIZE millions of bytes (as tcpdump -C; suffixes k, m, g: multiples of 1024). Files are
    /// FILE, FILE1, FILE2... (FILE0, FILE1... with -W).
    ///
    /// Live, with -W the ring's files are all created at the start, before privileges are
    /// dropped (-Z); without -W (or with -G), the files after the first are created as the -Z
    /// user, in a directory it must be able to write to.
    #[arg(short = 'C', value_name = "SIZE", value_parser = parse_file_size)]
    pub(crate) file_size: Option<u64>,

    /// With -C: keep a ring of at most COUNT files, overwriting the oldest (as tcpdump -W); the
    /// disk used stays under COUNT x SIZE plus one packet per file. With -G alone: stop after
    /// COUNT files.
    #[arg(short = 'W', value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) file_count: Option<u32>,

    /// With -w: start a new file when a packet comes SECS seconds or more after the current
    /// file's first (as tcpdump -G, by the packets' capture time); FILE may hold strftime(3)
    /// conversions, e.g. cap-%H%M%S.pcap, expanded in local time.
    #[arg(short = 'G', value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rotate_seconds: Option<u32>,

    /// With -w: write each packet to the file as soon as it is captured (as tcpdump -U).
    #[arg(short = 'U', long = "packet-buffered")]
    pub(crate) packet_buffered: bool,

    /// After opening the live capture, switch to USER (when run as root; name from /etc/passwd
    /// or uid[:gid]) and drop every capability, as tcpdump -Z; `none` keeps them [default:
    /// nobody].
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER")]
    pub(crate) relinquish: Option<String>,

    /// Do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub(crate) no_promisc: bool,

    /// BPF filter expression (tcpdump syntax), e.g. `port 9080`.
    #[arg(value_name = "FILTER")]
    pub(crate) expression: Vec<String>,

    /// Line-buffered output (as tcpdump -l): each flow is written and flushed as soon as it
    /// ends (the table row by row, with fixed columns); on standard input, flows are followed
    /// by one thread so that none waits for a batch.
    #[arg(short = 'l')]
    pub(crate) line_buffered: bool,

    /// Accepted, as tcpdump -n/-nn: tlspeek never resolves addresses or ports to names.
    #[arg(short = 'n', action = ArgAction::Count)]
    pub(crate) no_names: u8,

    /// Accepted, as tcpdump -e: no effect (tlspeek reports flows, with no link-layer headers).
    #[arg(short = 'e')]
    pub(crate) link_headers: bool,

    /// Accepted, as tcpdump -t: no effect (the table prints no packet times; --json has each
    /// flow's first_ts, last_ts and duration). -tt and longer are refused.
    #[arg(short = 't', action = ArgAction::Count)]
    pub(crate) no_times: u8,

    // The tcpdump options below make no sense here: they are parsed only to be refused with a
    // reason (see `refused`), instead of clap's "unexpected argument".
    /// tcpdump -A (refused).
    #[arg(short = 'A', action = ArgAction::Count, hide = true)]
    pub(crate) ascii: u8,
    /// tcpdump -X (refused).
    #[arg(short = 'X', action = ArgAction::Count, hide = true)]
    pub(crate) hex_ascii: u8,
    /// tcpdump -x (refused).
    #[arg(short = 'x', action = ArgAction::Count, hide = true)]
    pub(crate) hex: u8,
    /// tcpdump -z (refused).
    #[arg(short = 'z', value_name = "COMMAND", hide = true)]
    pub(crate) postrotate: Option<String>,

    /// Write JSON Lines (one object per flow, then a summary; schema in docs/json.md).
    #[arg(long)]
    pub(crate) json: bool,

    /// Also write the mesh graph to FILE: one self-contained HTML page (no network fetch) with
    /// the clients and servers seen, edges coloured by verdict (proven mTLS, inferred mTLS, TLS
    /// without client certificate, plaintext, refused), each edge's flows on click, and the
    /// per-server readings. Written when the run ends (Ctrl-C included). docs/html.md.
    ///
    /// Recipe: `tlspeek -r pod-a.pcap pod-b.pcap --html mesh.html`, then open mesh.html.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,

    /// More detail under each table row: -v every HTTP request and response with its headers
    /// (credential values redacted unless --show-secrets), the TLS parameters, the server
    /// certificate and every flag and warning; -vv also the certificate chains (subject, issuer,
    /// SANs, validity, key) of server and client.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// No warnings or progress on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// Print only the summary (totals, per-server readings, expectations), no line per flow.
    /// HTTP messages are then kept with only the headers the readings use: less CPU and memory
    /// (the live recipe for a sidecar).
    #[arg(long)]
    pub(crate) summary_only: bool,

    /// Show credential-bearing header values (Authorization, Cookie, *token*, ...) instead of
    /// `<redacted N bytes>`.
    #[arg(long)]
    pub(crate) show_secrets: bool,

    /// Decrypt TLS with an NSS key log (SSLKEYLOGFILE format; repeatable): TLS 1.3 certificates,
    /// ALPN and mTLS proven, HTTP inside the tunnel. In live capture the file is followed as
    /// it grows. Key logs are secrets: keep them mode 600 and delete them after use.
    ///
    /// Recipe: `SSLKEYLOGFILE=/tmp/k curl https://...` while `tlspeek -i lo -w c.pcap`, then
    /// `tlspeek -r c.pcap --keylog /tmp/k --json`.
    #[arg(long, value_name = "FILE")]
    pub(crate) keylog: Vec<PathBuf>,

    /// Never draw a progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,

    /// Maximum TCP flows tracked at once; the least recently active are evicted (reported with
    /// the flag `evicted`). A flow without payload costs about 1.3 KiB (100,000: ~130 MiB);
    /// payload buffers are bounded by the two limits below. UDP is counted per server for the
    /// summary (no mesh proxies it): at most 16,384 endpoint pairs (~1.3 MiB), datagrams of
    /// more are counted as untracked.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub(crate) max_flows: usize,

    /// Maximum bytes buffered per flow direction: out-of-order segments, and a TLS handshake
    /// message spanning segments. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "512K", value_parser = parse_bytes)]
    pub(crate) max_stream_bytes: usize,

    /// Maximum bytes buffered over all flows (out-of-order segments and partial messages); a
    /// flow over it is flagged `memory_limited` and resynchronises. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "512M", value_parser = parse_bytes)]
    pub(crate) max_total_bytes: usize,

    /// Maximum bytes of one HTTP header block, and for HTTP/2 of one header block (HEADERS or
    /// PUSH_PROMISE with its CONTINUATION frames, at most 64 frames) and of its decoded header
    /// list (more is cut and warned). HTTP/2's HPACK table is held to 64 KiB per direction
    /// whatever SETTINGS say. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_bytes)]
    pub(crate) max_header_bytes: usize,

    /// HTTP requests (and responses) recorded per flow; later ones are only counted.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) max_requests: usize,

    /// Seconds of capture time without packets after which a flow is ended.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub(crate) idle_timeout: u32,

    /// Warn about certificates expiring within this time of the capture (Istio workload
    /// certificates live 24 h): 90s, 30m, 1h, 2d; 0 warns only about expired ones.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub(crate) cert_warn: i64,

    /// Check every certificate chain seen against the CA certificates in FILE (PEM; repeatable).
    ///
    /// E.g. the mesh root: kubectl get configmap istio-ca-root-cert -o
    /// jsonpath='{.data.root-cert\.pem}' > root-cert.pem. Checked at the capture time of each
    /// handshake: signatures, validity, CA and path-length constraints, serverAuth for the
    /// server's list and clientAuth for the client's (not host names). JSON tls.server_chain /
    /// tls.client_chain; a `chain ✓`/`chain ✗` mark on the certificate lines.
    #[arg(long = "ca", value_name = "FILE")]
    pub(crate) ca: Vec<PathBuf>,

    /// Exit 1 when a checked flow is not mutual TLS (TLS 1.3: inferred, `likely` counts) and
    /// list those flows. Checked: pod-network flows with payload, except --exempt-ports and
    /// ambient kubelet probes (from 169.254.7.127).
    /// TLS flows whose handshake was not seen are reported as unverified, not failed.
    #[arg(long, value_name = "WHAT", value_parser = ["mtls"])]
    pub(crate) expect: Option<String>,

    /// Exit 1 when plaintext HTTP (HTTP/1 or h2c) crossed the pod network (same exemptions as
    /// --expect), and list those flows.
    #[arg(long)]
    pub(crate) fail_on_plaintext: bool,

    /// Server ports that --expect and --fail-on-plaintext never check, comma-separated, or
    /// `none` (default: Istio's plaintext health and metrics ports).
    #[arg(long, value_name = "PORTS", default_value = "15020,15021,15090", value_parser = parse_ports)]
    pub(crate) exempt_ports: PortList,

    /// Check loopback legs (Envoy <-> app inside the pod, plaintext by design) too.
    #[arg(long)]
    pub(crate) check_loopback: bool,

    /// The pod's data plane. `ambient` (ztunnel, no sidecar; kubectl-tlspeek passes it for
    /// ambient pods): 15001 is ztunnel's, connections delivered on `lo` are ztunnel's, and
    /// plaintext TCP on the pod interface that is not a probe or DNS is flagged flow by flow as
    /// `bypass`, which --expect and --fail-on-plaintext fail on. `auto`: legs only one data
    /// plane has are named from each flow's evidence (HBONE on 15008, deliveries on `lo`), and
    /// the readings call plaintext a bypass when the run shows HBONE.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = crate::mesh::MeshMode::Auto)]
    pub(crate) mesh_mode: crate::mesh::MeshMode,

    /// Istio's configured mTLS policy (PeerAuthentication, DestinationRule), shown beside the readings.
    ///
    /// YAML manifests or `kubectl get peerauthentication,destinationrule -A -o json` output
    /// (repeatable). Each server and service of the readings then shows the policy that applies
    /// and where the traffic contradicts it (plaintext accepted under STRICT, a DISABLE client
    /// towards a STRICT server, PERMISSIVE servers ready for STRICT). The mesh-wide policy is read
    /// from the root namespace istio-system. A file that cannot be used is an error (exit 2);
    /// the analysis goes on with the others. E.g. kubectl get peerauthentication,destinationrule
    /// -A -o json > mesh.json, then tlspeek -r cap.pcap --mesh-config mesh.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) mesh_config: Vec<PathBuf>,

    /// Threads for capture files and standard input: one reads and decodes the packets and
    /// hands the others the segments of their share of the flows (same output for any number).
    /// Default: the CPUs this process may use (cgroup quotas count), at most 4. Live capture
    /// uses one.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

/// `--threads` when not given: the CPUs available to this process (affinity and cgroup CPU
/// quota, so a sidecar limited to one CPU gets one), at most 4 (the one thread that reads and
/// decodes every packet limits what more would bring).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// A value of an option that does not parse (clap prints it after the option's name).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    /// `--exempt-ports`: an item is not a port number.
    #[error("'{0}' is not a port number")]
    NotAPort(String),
    /// `--cert-warn`: not a duration.
    #[error("'{0}' is not a duration like 3600, 90s, 30m, 1h or 2d")]
    NotADuration(String),
    /// `--cert-warn`: below zero.
    #[error("'{0}' is negative")]
    Negative(String),
    /// A size or duration whose value overflows.
    #[error("'{0}' is too large")]
    TooLarge(String),
    /// `--max-*-bytes`: not a byte size.
    #[error("'{0}' is not a byte size like 65536, 64K, 256M or 1G")]
    NotAByteSize(String),
    /// `-C 0`.
    #[error("the file size must be at least 1")]
    ZeroFileSize,
    /// `-C`: not a file size.
    #[error("'{0}' is not a file size like 10 (millions of bytes), 512k or 20m")]
    NotAFileSize(String),
}

/// A command line whose options parse but do not go together (or that tlspeek refuses).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `-r` nor `-i`.
    #[error("nothing to read: give -r FILE (capture file, - for stdin) or -i IFACE (live; -D lists them)")]
    NothingToRead,
    /// Both `-r` and `-i`.
    #[error("give either -r FILE (read a capture) or -i IFACE (capture live), not both")]
    ReadAndInterface,
    /// `-f` and a trailing filter.
    #[error("give the filter either with -f or as trailing arguments, not both")]
    TwoFilters,
    /// `-c 0`.
    #[error("-c must be at least 1")]
    ZeroCount,
    /// `-w -`.
    #[error(
        "-w - would mix packets with the report on stdout: give a file name (tcpdump -w - | tlspeek -r - reads a pipe)"
    )]
    WriteToStdout,
    /// `-C`, `-W`, `-G` or `-U` without `-w`.
    #[error("{flag} applies to the files written with -w FILE, and there is no -w")]
    NoWrite {
        /// The option given.
        flag: &'static str,
    },
    /// `-W` without `-C` or `-G`.
    #[error("-W needs -C (a ring of COUNT files of SIZE) or -G (stop after COUNT files)")]
    CountWithoutRotation,
    /// The filter of `-r` does not compile.
    #[error("invalid filter {filter:?}: {source}")]
    Filter {
        /// The filter (names resolved).
        filter: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// `--max-flows 0`.
    #[error("--max-flows must be at least 1")]
    ZeroMaxFlows,
    /// `--max-stream-bytes` below one TLS record.
    #[error("--max-stream-bytes must be at least 16K (a TLS record is up to 16K)")]
    SmallStreamBytes,
    /// `-A`, `-X`, `-x` (any number of times).
    #[error(
        "{flag} is not supported by tlspeek: it reports flows, not packets, and prints no packet bytes: -v shows \
         each request and response with its headers, --json every field (for the bytes themselves: tcpdump)"
    )]
    NoPacketBytes {
        /// The option as given (`-XX`).
        flag: String,
    },
    /// `-tt` and more.
    #[error(
        "{flag} is not supported by tlspeek: the table prints no packet times; --json has each flow's first_ts, last_ts and duration"
    )]
    NoPacketTimes {
        /// The option as given (`-ttt`).
        flag: String,
    },
    /// `-z`.
    #[error(
        "-z is not supported by tlspeek: it runs no command; bound the files with -C and -W (or -G) and compress \
         them from outside"
    )]
    NoPostrotate,
    /// An option of live capture with `-r`.
    #[error("{flag} applies to live capture (-i) only; with -r the packets are read as they were captured")]
    LiveOnly {
        /// The option given.
        flag: &'static str,
    },
}

/// A comma-separated port list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortList(pub Vec<u16>);

/// Parses `15020,15021` or `none`.
pub(crate) fn parse_ports(s: &str) -> Result<PortList, ValueError> {
    if s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty() {
        return Ok(PortList(Vec::new()));
    }
    s.split(',')
        .map(|p| p.trim().parse::<u16>().map_err(|_| ValueError::NotAPort(p.to_string())))
        .collect::<Result<Vec<_>, _>>()
        .map(PortList)
}

/// `1h`, `30m`, `90s`, `2d`, or plain seconds → seconds (`--cert-warn`).
pub(crate) fn parse_duration(s: &str) -> Result<i64, ValueError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86_400),
        _ => (t, 1),
    };
    let n: i64 = num.trim().parse().map_err(|_| ValueError::NotADuration(s.to_string()))?;
    if n < 0 {
        return Err(ValueError::Negative(s.to_string()));
    }
    n.checked_mul(mult).ok_or_else(|| ValueError::TooLarge(s.to_string()))
}

/// Parses `123`, `64K`, `256M`, `1G` (binary multiples).
pub(crate) fn parse_bytes(s: &str) -> Result<usize, ValueError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: usize = num.trim().parse().map_err(|_| ValueError::NotAByteSize(s.to_string()))?;
    n.checked_mul(mult).ok_or_else(|| ValueError::TooLarge(s.to_string()))
}

impl Args {
    /// Validated configuration. `stderr_is_terminal` decides the progress bar.
    pub fn into_config(self, stderr_is_terminal: bool) -> Result<Config, ConfigError> {
        self.refused()?;
        let live_is_none = self.interface.is_none();
        if self.read.is_empty() && self.interface.is_none() {
            return Err(ConfigError::NothingToRead);
        }
        if !self.read.is_empty() && self.interface.is_some() {
            return Err(ConfigError::ReadAndInterface);
        }
        if !self.read.is_empty() {
            self.live_only_with_read()?;
        }
        let filter = match (self.filter, self.expression.is_empty()) {
            (Some(f), true) => Some(f),
            (None, false) => Some(self.expression.join(" ")),
            (None, true) => None,
            (Some(_), false) => return Err(ConfigError::TwoFilters),
        };
        if self.count == Some(0) {
            return Err(ConfigError::ZeroCount);
        }
        let write = match self.write {
            Some(p) if p.as_os_str() == "-" => return Err(ConfigError::WriteToStdout),
            Some(path) => Some(WriteOptions {
                path,
                file_size: self.file_size,
                file_count: self.file_count,
                rotate_secs: self.rotate_seconds,
                packet_buffered: self.packet_buffered,
            }),
            None => {
                let given = [
                    (self.file_size.is_some(), "-C"),
                    (self.file_count.is_some(), "-W"),
                    (self.rotate_seconds.is_some(), "-G"),
                    (self.packet_buffered, "-U"),
                ];
                if let Some(&(_, flag)) = given.iter().find(|(g, _)| *g) {
                    return Err(ConfigError::NoWrite { flag });
                }
                None
            }
        };
        if write
            .as_ref()
            .is_some_and(|w| w.file_count.is_some() && w.file_size.is_none() && w.rotate_secs.is_none())
        {
            return Err(ConfigError::CountWithoutRotation);
        }
        let mut offline = OfflineOptions::default();
        let live = match self.interface {
            Some(interface) => Some(LiveOptions {
                interface,
                filter,
                count: self.count,
                duration: self.duration.filter(|d| *d > 0.0).map(std::time::Duration::from_secs_f64),
                snaplen: self.snaplen.unwrap_or(DEFAULT_SNAPLEN).max(64),
                buffer_kib: self.buffer_size,
                promisc: !self.no_promisc,
                write,
                drop_to: Some(self.relinquish.unwrap_or_else(|| "nobody".into())).filter(|u| u != "none"),
            }),
            None => {
                let filter = match filter {
                    Some(f) => {
                        let f = crate::capture::live::resolve_names(
                            &f,
                            std::path::Path::new("/etc/services").exists(),
                            std::path::Path::new("/etc/hosts").exists(),
                        );
                        crate::capture::gate::check_filter(&f)
                            .map_err(|source| ConfigError::Filter { filter: f.clone(), source })?;
                        Some(f)
                    }
                    None => None,
                };
                offline = OfflineOptions { filter, count: self.count, write };
                None
            }
        };
        if self.max_flows == 0 {
            return Err(ConfigError::ZeroMaxFlows);
        }
        if self.max_stream_bytes < 16 * 1024 {
            return Err(ConfigError::SmallStreamBytes);
        }
        let limits = Limits {
            max_flows: self.max_flows,
            max_queue_bytes: self.max_stream_bytes,
            max_total_bytes: self.max_total_bytes.max(self.max_stream_bytes),
            idle_timeout_secs: i64::from(self.idle_timeout.max(1)),
            ..Limits::default()
        };
        Ok(Config {
            live,
            inputs: self.read,
            ca_files: self.ca,
            format: if self.json { Format::Json } else { Format::Table },
            limits,
            classify: ClassifyConfig {
                tls: TlsLimits { max_buffer: self.max_stream_bytes },
                http: HttpConfig {
                    show_secrets: self.show_secrets,
                    max_header_bytes: self.max_header_bytes.max(1024),
                    max_messages: self.max_requests,
                    lean_headers: self.summary_only,
                },
                // Read by `Config::load_ca` (no I/O here).
                ca: None,
                // Read by `Config::open_keylogs` (no I/O here).
                keylog: None,
            },
            keylog_files: self.keylog,
            progress: stderr_is_terminal && !self.quiet && !self.no_progress && live_is_none,
            quiet: self.quiet,
            summary_only: self.summary_only,
            threads: self.threads.unwrap_or_else(default_threads).clamp(1, 64),
            // The width is the terminal's, found by `main` (no I/O here).
            table: crate::report::table::TableOptions { verbose: self.verbose, width: None },
            mesh: crate::mesh::MeshConfig {
                cert_warn_secs: self.cert_warn,
                expect_mtls: self.expect.is_some(),
                fail_on_plaintext: self.fail_on_plaintext,
                exempt_ports: self.exempt_ports.0,
                check_loopback: self.check_loopback,
                mode: self.mesh_mode,
                policy_files: self.mesh_config,
            },
            offline,
            line_buffered: self.line_buffered,
            metrics: self.metrics,
            html: self.html,
        })
    }

    /// tcpdump options tlspeek refuses, each with the reason and what to use instead.
    fn refused(&self) -> Result<(), ConfigError> {
        let letters = |c: char, n: u8| format!("-{}", c.to_string().repeat(usize::from(n)));
        for (c, n) in [('A', self.ascii), ('X', self.hex_ascii), ('x', self.hex)] {
            if n > 0 {
                return Err(ConfigError::NoPacketBytes { flag: letters(c, n) });
            }
        }
        if self.no_times > 1 {
            return Err(ConfigError::NoPacketTimes { flag: letters('t', self.no_times) });
        }
        if self.postrotate.is_some() {
            return Err(ConfigError::NoPostrotate);
        }
        Ok(())
    }

    /// With -r: the options that only make sense for a live capture are refused (tcpdump -r
    /// would ignore some of them silently).
    fn live_only_with_read(&self) -> Result<(), ConfigError> {
        let live_only = [
            (self.no_promisc, "-p"),
            (self.buffer_size.is_some(), "-B"),
            (self.snaplen.is_some(), "-s"),
            (self.duration.is_some(), "--duration"),
            (self.metrics.is_some(), "--metrics"),
            (self.relinquish.is_some(), "-Z"),
        ];
        match live_only.iter().find(|(given, _)| *given) {
            Some(&(_, flag)) => Err(ConfigError::LiveOnly { flag }),
            None => Ok(()),
        }
    }
}

/// Snapshot length of a live capture when -s is not given (libpcap's maximum).
const DEFAULT_SNAPLEN: i32 = 262_144;

/// Parses -C: millions of bytes (as tcpdump), or with k, m, g: multiples of 1024.
pub(crate) fn parse_file_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1_000_000),
    };
    match num.trim().parse::<u64>() {
        Ok(0) => Err(ValueError::ZeroFileSize),
        Ok(n) => n.checked_mul(mult).ok_or_else(|| ValueError::TooLarge(s.to_string())),
        Err(_) => Err(ValueError::NotAFileSize(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("soon"), Err(ValueError::NotADuration("soon".into())));
        assert_eq!(parse_duration("-5s"), Err(ValueError::Negative("-5s".into())));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("2m"), Ok(2 << 20));
        assert_eq!(parse_bytes("lots"), Err(ValueError::NotAByteSize("lots".into())));
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_ports("15020, 15021"), Ok(PortList(vec![15020, 15021])));
        assert_eq!(parse_ports("none"), Ok(PortList(vec![])));
        assert_eq!(parse_ports("80,http"), Err(ValueError::NotAPort("http".into())));
        assert_eq!(parse_ports("80,http").unwrap_err().to_string(), "'http' is not a port number");
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}

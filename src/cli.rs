//! Command line → validated [`Config`]. No I/O here.

use crate::capture::live::LiveOptions;
use crate::classify::http::HttpConfig;
use crate::classify::tls::TlsLimits;
use crate::classify::ClassifyConfig;
use crate::flow::Limits;
use crate::run::{Config, Format};
use clap::Parser;
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
///   tlspeek -i eth0 port 9080            (live; Ctrl-C stops and prints the flows)
///   tlspeek -D                           (list interfaces)
///
/// Mesh checks (docs/istio.md):
///   tlspeek -r cap.pcap --expect mtls          exit 1 if a pod-network flow is not mutual TLS
///   tlspeek -r cap.pcap --fail-on-plaintext    exit 1 if plaintext HTTP crossed the pod network
///
/// Exit codes: 0 success (also after Ctrl-C); 1 --expect mtls or --fail-on-plaintext failed
/// (the flows that broke it are listed); 2 an input could not be read to its end (flows found
/// before the problem are still reported) or the interface could not be opened (2 wins over 1).
#[derive(Debug, Parser)]
#[command(name = "tlspeek", version, about, long_about, verbatim_doc_comment)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; `-` = standard input). Repeatable.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Capture live on IFACE (`any` for all interfaces; needs root or CAP_NET_RAW).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// BPF filter for live capture (tcpdump syntax); also accepted as trailing arguments.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop a live capture after N packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// Stop a live capture after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Snapshot length for live capture, bytes.
    #[arg(short = 's', long = "snaplen", value_name = "BYTES", default_value_t = 262_144)]
    pub snaplen: i32,

    /// Kernel capture buffer for live capture, KiB (as tcpdump -B).
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB")]
    pub buffer_size: Option<i32>,

    /// Also write the captured packets to FILE (pcap), to re-analyse them offline with -r.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// After opening the live capture, switch to USER (when run as root; name from /etc/passwd
    /// or uid[:gid]) and drop every capability, as tcpdump -Z; `none` keeps them.
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER", default_value = "nobody")]
    pub relinquish: String,

    /// Do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,

    /// BPF filter expression (tcpdump syntax), e.g. `port 9080`.
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub expression: Vec<String>,

    /// Write JSON Lines (one object per flow, then a summary; schema in docs/json.md).
    #[arg(long)]
    pub json: bool,

    /// More detail under each table row: -v every HTTP request and response with its headers
    /// (credential values redacted unless --show-secrets), the TLS parameters, the server
    /// certificate and every flag and warning; -vv also the certificate chains (subject, issuer,
    /// SANs, validity, key) of server and client.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No warnings or progress on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Print only the summary (totals, per-server readings, expectations), no line per flow.
    #[arg(long)]
    pub summary_only: bool,

    /// Show credential-bearing header values (Authorization, Cookie, *token*, ...) instead of
    /// `<redacted N bytes>`.
    #[arg(long)]
    pub show_secrets: bool,

    /// Never draw a progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Maximum TCP flows tracked at once; the least recently active are evicted (reported with
    /// the flag `evicted`). A flow without payload costs about 1.3 KiB (100,000: ~130 MiB);
    /// payload buffers are bounded by the two limits below.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_flows: usize,

    /// Maximum bytes buffered per flow direction: out-of-order segments, and a TLS handshake
    /// message spanning segments. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "512K", value_parser = parse_bytes)]
    pub max_stream_bytes: usize,

    /// Maximum bytes buffered over all flows (out-of-order segments and partial messages); a
    /// flow over it is flagged `memory_limited` and resynchronises. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "512M", value_parser = parse_bytes)]
    pub max_total_bytes: usize,

    /// Maximum bytes of one HTTP header block. Suffixes K, M, G.
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_bytes)]
    pub max_header_bytes: usize,

    /// HTTP requests (and responses) recorded per flow; later ones are only counted.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_requests: usize,

    /// Seconds of capture time without packets after which a flow is ended.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u32,

    /// Warn about certificates expiring within this time of the capture (Istio workload
    /// certificates live 24 h): 90s, 30m, 1h, 2d; 0 warns only about expired ones.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::report::mesh::parse_duration)]
    pub cert_warn: i64,

    /// Exit 1 when a checked flow is not mutual TLS (TLS 1.3: inferred, `likely` counts) and
    /// list those flows. Checked: pod-network flows with payload, except --exempt-ports.
    /// TLS flows whose handshake was not seen are reported as unverified, not failed.
    #[arg(long, value_name = "WHAT", value_parser = ["mtls"])]
    pub expect: Option<String>,

    /// Exit 1 when plaintext HTTP (HTTP/1 or h2c) crossed the pod network (same exemptions as
    /// --expect), and list those flows.
    #[arg(long)]
    pub fail_on_plaintext: bool,

    /// Server ports that --expect and --fail-on-plaintext never check, comma-separated, or
    /// `none` (default: Istio's plaintext health and metrics ports).
    #[arg(long, value_name = "PORTS", default_value = "15020,15021,15090", value_parser = parse_ports)]
    pub exempt_ports: PortList,

    /// Check loopback legs (Envoy <-> app inside the pod, plaintext by design) too.
    #[arg(long)]
    pub check_loopback: bool,

    /// Threads for capture files and standard input: one reads and decodes the packets and
    /// hands the others the segments of their share of the flows (same output for any number).
    /// Default: the CPUs this process may use (cgroup quotas count), at most 4. Live capture
    /// uses one.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `--threads` when not given: the CPUs available to this process (affinity and cgroup CPU
/// quota, so a sidecar limited to one CPU gets one), at most 4 (the one thread that reads and
/// decodes every packet limits what more would bring).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// A comma-separated port list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortList(pub Vec<u16>);

/// Parses `15020,15021` or `none`.
pub fn parse_ports(s: &str) -> Result<PortList, String> {
    if s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty() {
        return Ok(PortList(Vec::new()));
    }
    s.split(',')
        .map(|p| p.trim().parse::<u16>().map_err(|_| format!("'{p}' is not a port number")))
        .collect::<Result<Vec<_>, _>>()
        .map(PortList)
}

/// Parses `123`, `64K`, `256M`, `1G` (binary multiples).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: usize =
        num.trim().parse().map_err(|_| format!("'{s}' is not a byte size like 65536, 64K, 256M or 1G"))?;
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large"))
}

impl Args {
    /// Validated configuration. `stderr_is_terminal` decides the progress bar.
    pub fn into_config(self, stderr_is_terminal: bool) -> Result<Config, String> {
        let live_is_none = self.interface.is_none();
        if self.read.is_empty() && self.interface.is_none() {
            return Err(
                "nothing to read: give -r FILE (capture file, - for stdin) or -i IFACE (live; -D lists them)"
                    .into(),
            );
        }
        let filter = match (self.filter, self.expression.is_empty()) {
            (Some(f), true) => Some(f),
            (None, false) => Some(self.expression.join(" ")),
            (None, true) => None,
            (Some(_), false) => {
                return Err("give the filter either with -f or as trailing arguments, not both".into())
            }
        };
        if filter.is_some() && self.interface.is_none() {
            return Err(
                "a BPF filter applies to live capture (-i); for files, filter with tcpdump -r IN -w OUT EXPR"
                    .into(),
            );
        }
        let live = self.interface.map(|interface| LiveOptions {
            interface,
            filter,
            count: self.count,
            duration: self.duration.filter(|d| *d > 0.0).map(std::time::Duration::from_secs_f64),
            snaplen: self.snaplen.max(64),
            buffer_kib: self.buffer_size,
            promisc: !self.no_promisc,
            write: self.write,
            drop_to: (self.relinquish != "none").then_some(self.relinquish),
        });
        if self.max_flows == 0 {
            return Err("--max-flows must be at least 1".into());
        }
        if self.max_stream_bytes < 16 * 1024 {
            return Err("--max-stream-bytes must be at least 16K (a TLS record is up to 16K)".into());
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
            format: if self.json { Format::Json } else { Format::Table },
            limits,
            classify: ClassifyConfig {
                tls: TlsLimits { max_buffer: self.max_stream_bytes },
                http: HttpConfig {
                    show_secrets: self.show_secrets,
                    max_header_bytes: self.max_header_bytes.max(1024),
                    max_messages: self.max_requests,
                },
            },
            progress: stderr_is_terminal && !self.quiet && !self.no_progress && live_is_none,
            quiet: self.quiet,
            summary_only: self.summary_only,
            threads: self.threads.unwrap_or_else(default_threads).clamp(1, 64),
            // The width is the terminal's, found by `main` (no I/O here).
            table: crate::report::table::TableOptions { verbose: self.verbose, width: None },
            mesh: crate::report::mesh::MeshConfig {
                cert_warn_secs: self.cert_warn,
                expect_mtls: self.expect.is_some(),
                fail_on_plaintext: self.fail_on_plaintext,
                exempt_ports: self.exempt_ports.0,
                check_loopback: self.check_loopback,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("2m"), Ok(2 << 20));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_ports("15020, 15021"), Ok(PortList(vec![15020, 15021])));
        assert_eq!(parse_ports("none"), Ok(PortList(vec![])));
        assert!(parse_ports("80,http").is_err());
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}

//! `tlspeek report`'s command line (a separate clap struct: `main` dispatches on the first
//! argument before parsing tlspeek's own options) → [`ReportConfig`]. No I/O here.

use crate::run::report::ReportConfig;
use clap::Parser;
use std::path::PathBuf;

/// Merge tlspeek's JSON Lines from many captures into one set of readings and one graph.
///
/// Reads the output of `tlspeek --json` from several captures (one per pod, or per node) and
/// prints the merged summary: per server, per Istio service, and per edge (client identity or
/// address → Istio service or server ip:port) with its flows counted per verdict: proven mTLS,
/// inferred mTLS (TLS 1.3 record sizes), TLS without a client certificate, plaintext,
/// refused/failed, unknown. The same connection seen from both ends (the client pod's capture
/// and the server pod's: same client and server ip:port, times overlapping within 1 s) is
/// counted once, keeping the richer record (a seen verdict over an inferred one, identities,
/// more requests). Files of older tlspeek versions are read as long as each flow line has
/// `client`, `server` and `protocol`.
///
/// Examples:
///   tlspeek -r client-pod.pcap --json > client.jsonl
///   tlspeek -r server-pod.pcap --json > server.jsonl
///   tlspeek report client.jsonl server.jsonl
///   tlspeek report --json *.jsonl | jq '.edges[] | select(.verdicts.plaintext > 0)'
///   cat *.jsonl | tlspeek report -
///   tlspeek report *.jsonl --html mesh.html     (the graph as one HTML page; docs/html.md)
///   tlspeek report *.jsonl --mesh-config mesh.json   (Istio's policy beside each server)
///
/// A line that is not a tlspeek JSON line (or lacks a required key) is reported on stderr as
/// FILE:LINE: PROBLEM; the other lines are still merged. Exit codes: 0 success; 2 a line or
/// file (or a --mesh-config file) could not be read (the merge of the rest is still printed). docs/json.md ("report")
/// documents --json.
#[derive(Debug, Parser)]
#[command(
    name = "tlspeek report",
    bin_name = "tlspeek report",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
pub struct ReportArgs {
    /// JSON Lines files written by `tlspeek --json` (`-` = standard input).
    #[arg(value_name = "FILE.jsonl", required = true)]
    pub inputs: Vec<PathBuf>,

    /// Write the merge as one JSON object (docs/json.md, "report") instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write the merged graph to FILE: one self-contained HTML page (docs/html.md).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Istio's configured mTLS policy (PeerAuthentication, DestinationRule), shown beside the readings.
    ///
    /// As `tlspeek --mesh-config`: YAML manifests or `kubectl get
    /// peerauthentication,destinationrule -A -o json` output (repeatable). Each merged server
    /// and service then shows the policy that applies and where the traffic contradicts it
    /// (docs/istio.md, "Observed vs configured"). A file that cannot be used is an error (exit
    /// 2); the merge goes on with the others.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Vec<PathBuf>,
}

impl ReportArgs {
    /// The report's settings; `width` is the terminal's (the readings wrap within it).
    pub fn into_config(self, width: Option<usize>) -> ReportConfig {
        ReportConfig {
            inputs: self.inputs,
            json: self.json,
            width,
            html: self.html,
            mesh_config: self.mesh_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_and_json() {
        let a = ReportArgs::try_parse_from(["tlspeek report", "--json", "a.jsonl", "-"]).unwrap();
        let c = a.into_config(None);
        assert!(c.json);
        assert_eq!(c.inputs, [PathBuf::from("a.jsonl"), PathBuf::from("-")]);
        assert!(ReportArgs::try_parse_from(["tlspeek report"]).is_err());
        let a = ReportArgs::try_parse_from([
            "tlspeek report",
            "a.jsonl",
            "--mesh-config",
            "m.yaml",
            "--mesh-config",
            "n.json",
        ])
        .unwrap();
        assert_eq!(a.into_config(None).mesh_config, [PathBuf::from("m.yaml"), PathBuf::from("n.json")]);
    }
}

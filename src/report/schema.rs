//! The JSON Lines schema in one place: every object `--json` writes, named by its path (as `jq`
//! reaches it), with its keys in the order they are written.
//!
//! The writer ([`super::json`]) and the summary's serde derives are held to this table by
//! tests/schema.rs, which walks the output of every shipped capture, and docs/json.md must give
//! each object a section headed by its paths whose table lists exactly these keys, in this order
//! (the same test). Keys are added here first; they are never renamed or removed.

/// One kind of JSON object.
pub struct Object {
    /// Where it appears, as `jq` paths (`[]`: each element of an array). Objects of the same
    /// shape share an entry; docs/json.md heads their section with these paths.
    pub paths: &'static [&'static str],
    /// Keys in the order written; every one is always present (`null` when unknown).
    pub keys: &'static [&'static str],
}

/// Per role counters and previews.
const CLIENT_SERVER: &[&str] = &["client", "server"];

/// Every object with a fixed set of keys.
pub const OBJECTS: &[Object] = &[
    Object {
        paths: &["flow"],
        keys: &[
            "type",
            "event",
            "id",
            "source",
            "client",
            "server",
            "original_dst",
            "proxy_protocol",
            "client_by",
            "on_loopback",
            "first_ts",
            "last_ts",
            "duration",
            "packets",
            "bytes",
            "protocol",
            "tls",
            "http",
            "istio",
            "h2c",
            "preview",
            "end",
            "reset_by",
            "flags",
            "warnings",
        ],
    },
    Object {
        paths: &["flow.proxy_protocol"],
        keys: &[
            "version",
            "command",
            "family",
            "source",
            "destination",
            "tlvs",
            "tlvs_omitted",
            "tlv_bytes_omitted",
        ],
    },
    Object { paths: &["flow.packets", "flow.bytes"], keys: CLIENT_SERVER },
    Object { paths: &["flow.preview"], keys: CLIENT_SERVER },
    Object {
        paths: &["flow.tls"],
        keys: &[
            "version",
            "legacy_version",
            "versions_offered",
            "sni",
            "alpn_offered",
            "alpn_selected",
            "cipher",
            "hello_retry_request",
            "resumption",
            "alerts",
            "server_certs",
            "client_certs",
            "client_cert_requested",
            "client_cert_empty",
            "mtls",
            "mtls_reason",
            "mtls_inferred",
            "client_encrypted_records",
            "sslv2_client_hello",
            "ja4",
            "ja4_r",
            "ja3",
            "ja3_full",
            "server_chain",
            "client_chain",
            "decryption",
        ],
    },
    Object { paths: &["flow.tls.mtls_inferred"], keys: &["verdict", "reason"] },
    Object { paths: &["flow.tls.decryption"], keys: &["status", "reason", "handshake", "application"] },
    Object { paths: &["flow.tls.alerts[]"], keys: &["from", "level", "description"] },
    Object { paths: &["flow.tls.server_chain", "flow.tls.client_chain"], keys: &["verified", "by", "error"] },
    Object {
        paths: &["flow.tls.server_certs[]", "flow.tls.client_certs[]"],
        keys: &[
            "subject",
            "issuer",
            "serial",
            "san_dns",
            "san_uris",
            "san_ips",
            "san_emails",
            "not_before",
            "not_after",
            "expired",
            "not_yet_valid",
            "expires_in_secs",
            "parse_error",
            "public_key",
        ],
    },
    Object {
        paths: &["flow.http"],
        keys: &["version", "requests", "responses", "requests_total", "responses_total", "upgrade", "http2"],
    },
    Object {
        paths: &["flow.http.requests[]"],
        keys: &[
            "method",
            "path",
            "version",
            "host",
            "headers",
            "stream",
            "trailers",
            "unknown_fields",
            "grpc",
            "data",
            "pushed_by",
        ],
    },
    Object {
        paths: &["flow.http.responses[]"],
        keys: &["version", "status", "reason", "headers", "stream", "trailers", "unknown_fields"],
    },
    Object {
        paths: &["flow.http.requests[].grpc"],
        keys: &[
            "service",
            "method",
            "status",
            "status_name",
            "message",
            "encoding",
            "messages",
            "message_bytes",
        ],
    },
    Object {
        paths: &[
            "flow.http.requests[].data",
            "flow.http.requests[].grpc.messages",
            "flow.http.requests[].grpc.message_bytes",
        ],
        keys: CLIENT_SERVER,
    },
    Object { paths: &["flow.http.http2"], keys: &["settings", "goaway", "rst_streams", "streams_total"] },
    Object { paths: &["flow.http.http2.settings"], keys: CLIENT_SERVER },
    Object { paths: &["flow.http.http2.goaway"], keys: &["from", "last_stream", "error"] },
    Object { paths: &["flow.http.http2.rst_streams[]"], keys: &["stream", "from", "error"] },
    Object {
        paths: &["flow.istio"],
        keys: &[
            "leg",
            "mode",
            "hbone",
            "sni",
            "alpn",
            "port_role",
            "peer_metadata",
            "peer_metadata_id",
            "xfcc",
            "server_identity",
            "client_identity",
        ],
    },
    Object {
        paths: &["flow.istio.sni"],
        keys: &["direction", "port", "subset", "fqdn", "service", "namespace"],
    },
    Object { paths: &["flow.istio.alpn"], keys: &["tokens", "app_protocol"] },
    Object { paths: &["flow.istio.hbone"], keys: &["targets"] },
    Object {
        paths: &["flow.istio.hbone.targets[]"],
        keys: &["stream", "authority", "status", "client", "service"],
    },
    Object { paths: &["flow.istio.xfcc[]"], keys: &["by", "hash", "subject", "uri", "dns"] },
    Object {
        paths: &["flow.istio.server_identity", "flow.istio.client_identity"],
        keys: &["uri", "trust_domain", "namespace", "service_account"],
    },
    Object {
        paths: &["summary"],
        keys: &[
            "type",
            "files",
            "packets",
            "bytes",
            "flows",
            "by_protocol",
            "by_mtls",
            "non_tcp",
            "udp_servers",
            "udp_servers_not_listed",
            "udp_untracked_packets",
            "skipped_link_types",
            "ip_fragments",
            "evicted_flows",
            "late_packets",
            "capture_stats",
            "cert_warnings",
            "mesh_mode",
            "servers",
            "services",
            "servers_not_listed",
            "expectations",
            "errors",
        ],
    },
    Object { paths: &["summary.ip_fragments"], keys: &["reassembled", "dropped"] },
    Object { paths: &["summary.capture_stats"], keys: &["received", "dropped", "if_dropped"] },
    Object {
        paths: &["summary.servers[]", "summary.services[]", "report.servers[]", "report.services[]"],
        keys: &[
            "name",
            "service",
            "leg",
            "flows",
            "mtls",
            "mtls_inferred",
            "tls_proven",
            "tls_no_client_cert",
            "tls_unverified",
            "tls_failed",
            "tls_failure",
            "plaintext",
            "plaintext_refused",
            "plaintext_from_sidecar",
            "other",
            "no_data",
            "legs",
            "hbone",
            "bypass",
            "reading",
            "policy",
        ],
    },
    Object {
        paths: &["summary.servers[].policy", "summary.services[].policy"],
        keys: &[
            "namespace",
            "namespace_from",
            "peer_authentication",
            "mode",
            "scope",
            "may_apply",
            "destination_rule",
            "tls_mode",
            "findings",
            "text",
        ],
    },
    Object { paths: &["summary.udp_servers[]"], keys: &["server", "flows", "packets", "bytes"] },
    Object {
        paths: &["summary.expectations"],
        keys: &[
            "expect",
            "fail_on_plaintext",
            "exempt_ports",
            "check_loopback",
            "checked",
            "unverified",
            "failed",
            "violations",
        ],
    },
    Object { paths: &["summary.expectations.violations[]"], keys: &["id", "client", "server", "reason"] },
    Object {
        paths: &["report"],
        keys: &[
            "type",
            "files",
            "lines",
            "flow_lines",
            "duplicates",
            "flows",
            "bad_lines",
            "errors",
            "packets",
            "bytes",
            "by_protocol",
            "by_mtls",
            "mesh_mode",
            "servers",
            "services",
            "servers_not_listed",
            "nodes",
            "edges",
            "flows_not_listed",
        ],
    },
    Object {
        paths: &["report.nodes[]"],
        keys: &["id", "name", "kind", "namespace", "flows_out", "flows_in"],
    },
    Object {
        paths: &["report.edges[]"],
        keys: &[
            "client",
            "server",
            "client_node",
            "server_node",
            "flows",
            "verdicts",
            "legs",
            "dominant",
            "first_ts",
            "last_ts",
            "reasons",
            "examples",
        ],
    },
    Object {
        paths: &["report.edges[].verdicts"],
        keys: &["proven_mtls", "inferred_mtls", "tls_no_client_cert", "plaintext", "refused", "unknown"],
    },
    Object {
        paths: &["report.edges[].examples[]"],
        keys: &["id", "source", "client", "server", "first_ts", "last_ts", "verdict", "mtls", "reason"],
    },
];

/// Objects whose keys are data, not schema: counts by name, and the peer metadata decoded from
/// the wire (its keys are whatever Envoy sent).
pub const MAPS: &[&str] = &[
    "summary.by_protocol",
    "summary.by_mtls",
    "summary.non_tcp",
    "summary.skipped_link_types",
    "flow.istio.peer_metadata",
    "flow.proxy_protocol.tlvs",
    "flow.http.http2.settings.client",
    "flow.http.http2.settings.server",
    "report.by_protocol",
    "report.by_mtls",
];

/// The keys of the object at `path`, if the schema has it.
pub fn keys(path: &str) -> Option<&'static [&'static str]> {
    OBJECTS.iter().find(|o| o.paths.contains(&path)).map(|o| o.keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_keys_distinct() {
        let mut paths: Vec<&str> = OBJECTS.iter().flat_map(|o| o.paths.iter().copied()).collect();
        paths.extend(MAPS);
        let n = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), n, "a path is listed twice");
        for o in OBJECTS {
            let mut k = o.keys.to_vec();
            k.sort();
            k.dedup();
            assert_eq!(k.len(), o.keys.len(), "{:?} lists a key twice", o.paths);
        }
    }

    #[test]
    fn keys_are_found_by_path() {
        assert!(keys("flow").unwrap().contains(&"reset_by"));
        assert_eq!(keys("flow.tls.client_certs[]").unwrap().len(), 14);
        assert!(keys("flow.nothing").is_none());
    }
}

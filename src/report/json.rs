//! JSON Lines output: one `flow` object per line, then one `summary` object (docs/json.md).
//!
//! Flow lines are written by hand ([`render_flow`]), not by serde_json: serde's byte-at-a-time
//! escaping, the `from_utf8` check of every wire string and the escaping of constant keys were
//! the largest item of the profile (bench/RESULTS.md). The text is the
//! same as serde_json's for the same report (field order, escapes, numbers); the summary, written
//! once, still goes through serde. `tests` below and tests/captures.rs hold the two together.

use super::Summary;
use crate::classify::cert::{CertFacts, CertInfo};
use crate::classify::fingerprint::FingerprintTexts;
use crate::classify::http::h2::session::{ByRole, GrpcCall, Http2Report, SettingsList};
use crate::classify::http::HttpReport;
use crate::classify::istio::{IstioReport, SpiffeId};
use crate::classify::proxy::ProxyHeader;
use crate::classify::tls::TlsReport;
use crate::record::{FlowReport, Preview};
use crate::sanitize::Headers;
use std::io::{self, Write};

thread_local! {
    /// Line buffer, reused across flows.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes one flow as a JSON line.
pub fn write_flow(out: &mut dyn Write, f: &FlowReport) -> io::Result<()> {
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        render_flow(buf, f);
        out.write_all(buf)?;
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new(); // one huge flow does not keep its buffer
        }
        Ok(())
    })
}

/// Appends one flow as a JSON line (with its newline) to `line`.
pub(crate) fn render_flow(line: &mut Vec<u8>, f: &FlowReport) {
    let mut j = Json { b: line, comma: false };
    flow(&mut j, f);
    j.b.push(b'\n');
}

/// Writes the summary as the last JSON line.
pub(crate) fn write_summary(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s)?;
    out.write_all(b"\n")
}

/// `j.key(key!(name))`: the key with a leading comma, its quotes and colon, made at compile time. Keys are
/// constants made of letters and `_`, never escaped.
macro_rules! key {
    ($k:literal) => {
        concat!(",\"", $k, "\":")
    };
}

mod writer;
use writer::Json;

/// The `flow` object, fields in the order of [`FlowReport`].
fn flow(j: &mut Json<'_>, f: &FlowReport) {
    // Every key but the first of an object follows a value: written with `lit` (inlined, the
    // comma in the constant), not the out-of-line `key` (~40 instructions a key).
    j.sep();
    j.lit_name("{\"type\":", Some("flow"));
    j.lit_name(key!("event"), Some(f.event.as_str()));
    j.lit(key!("id")).u64(f.id);
    j.lit(key!("source")).str(&f.source);
    j.lit(key!("client")).endpoint(f.client);
    j.lit(key!("server")).endpoint(f.server);
    j.lit(key!("original_dst")).opt(f.original_dst, |j, o| j.endpoint(o));
    j.lit(key!("proxy_protocol")).opt(f.proxy_protocol.as_deref(), proxy_protocol);
    j.lit_name(key!("client_by"), Some(f.client_by.as_str()));
    j.lit(key!("on_loopback")).opt(f.on_loopback, |j, b| j.bool(b));
    j.lit(key!("first_ts")).ts(f.first_ts, f.nanos);
    j.lit(key!("last_ts")).ts(f.last_ts, f.nanos);
    j.lit(key!("duration")).f64(f.duration);
    for (k, v) in [(key!("packets"), f.packets), (key!("bytes"), f.bytes)] {
        j.lit(k).open(b'{');
        j.lit("\"client\":").u64(v.client);
        j.lit(key!("server")).u64(v.server);
        j.close(b'}');
    }
    j.lit_name(key!("protocol"), Some(f.protocol.as_str()));
    j.lit(key!("tls")).opt(f.tls.as_ref(), tls);
    j.lit(key!("http")).opt(f.http.as_ref(), http);
    j.lit(key!("istio")).opt(f.istio.as_ref(), istio);
    j.lit_name(key!("h2c"), f.h2c.map(|h| h.as_str()));
    j.lit(key!("preview")).opt(f.preview.as_ref(), |j, Preview { client, server }| {
        j.open(b'{');
        j.lit("\"client\":").wire(client.as_bytes());
        j.lit(key!("server")).wire(server.as_bytes());
        j.close(b'}');
    });
    j.lit_name(key!("end"), Some(end_text(f)));
    j.lit_name(key!("reset_by"), f.reset_by.map(|r| r.as_str()));
    j.lit(key!("flags")).open(b'[');
    for fl in f.flags.iter() {
        j.name(fl.as_str());
    }
    j.close(b']');
    j.lit(key!("warnings")).strs(&f.warnings);
    j.close(b'}');
}

/// The `flow.proxy_protocol` object. A TLV value is its text when printable UTF-8 that does not
/// begin with `hex:`, else `hex:` and its bytes in hex (docs/json.md).
fn proxy_protocol(j: &mut Json<'_>, p: &ProxyHeader) {
    j.open(b'{');
    j.key(key!("version")).u64(p.version.into());
    j.lit(key!("command")).name(p.command.as_str());
    j.lit(key!("family")).name(p.family.as_str());
    j.lit(key!("source")).opt(p.source, |j, a| j.endpoint(a));
    j.lit(key!("destination")).opt(p.destination, |j, a| j.endpoint(a));
    j.lit(key!("tlvs")).open(b'{');
    for t in &p.tlvs {
        j.sep();
        j.b.extend_from_slice(format!("\"0x{:02x}\":", t.kind).as_bytes());
        j.comma = false;
        match t.text().filter(|s| !s.starts_with("hex:")) {
            Some(s) => j.wire(s.as_bytes()),
            None => {
                let mut hex = String::with_capacity(4 + 2 * t.value.len());
                hex.push_str("hex:");
                for b in t.value.iter() {
                    hex.push_str(&format!("{b:02x}"));
                }
                j.ascii(hex.as_bytes());
            }
        }
    }
    j.close(b'}');
    j.lit(key!("tlvs_omitted")).u64(p.tlvs_omitted.into());
    j.lit(key!("tlv_bytes_omitted")).u64(p.tlv_bytes_omitted());
    j.close(b'}');
}

/// The JSON `end`: how the flow ended, `reset` for a close with a RST.
fn end_text(f: &FlowReport) -> &'static str {
    use crate::flow::EndReason;
    match f.end {
        EndReason::Closed if f.reset_by.is_some() => "reset",
        EndReason::Closed => "closed",
        EndReason::Idle => "idle",
        EndReason::Evicted => "evicted",
        EndReason::CaptureEnd => "capture_end",
        EndReason::Reused => "reused",
    }
}

/// A TLS report as the `tls` object of a flow line: the classifier's tests and the TLS fuzz
/// target read their reports through the writer the output uses.
pub fn tls_text(t: &TlsReport) -> String {
    let mut b = Vec::new();
    tls(&mut Json { b: &mut b, comma: false }, t);
    String::from_utf8(b).expect("the writer writes UTF-8")
}

/// `,"name":true` or `,"name":false`: a key and a flag of the `tls` object in one copy of a
/// constant.
macro_rules! key_bool {
    ($j:expr, $k:literal, $v:expr) => {
        $j.lit(if $v { concat!(",\"", $k, "\":true") } else { concat!(",\"", $k, "\":false") }).comma = true
    };
}

impl Json<'_> {
    /// A version or cipher-suite name ([`crate::classify::tls::version_name`],
    /// [`crate::classify::tls::cipher_name`]): a name from a table or a number as text, nothing
    /// to escape (the tests check every value), so copied without the scan of [`Json::str`].
    fn tls_name(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.ascii(s.as_bytes()),
            None => self.null(),
        }
    }
}

fn tls(j: &mut Json<'_>, t: &TlsReport) {
    j.open(b'{');
    j.key(key!("version")).tls_name(t.version.as_deref());
    j.lit(key!("legacy_version")).tls_name(t.legacy_version.as_deref());
    j.lit(key!("versions_offered")).open(b'[');
    for v in t.versions_offered.names() {
        j.tls_name(Some(&v));
    }
    j.close(b']');
    j.lit(key!("sni")).opt_wire(t.sni.as_ref());
    j.lit(key!("alpn_offered")).wires(&t.alpn_offered);
    j.lit(key!("alpn_selected")).opt_wire(t.alpn_selected.as_ref());
    j.lit(key!("cipher")).tls_name(t.cipher.as_deref());
    key_bool!(j, "hello_retry_request", t.hello_retry_request);
    j.lit(key!("resumption")).opt_name(t.resumption.map(|r| r.as_str()));
    j.lit(key!("alerts")).open(b'[');
    for a in &t.alerts {
        j.open(b'{');
        j.key(key!("from")).name(a.from.as_str());
        j.lit(key!("level")).str(&a.level.as_text());
        j.lit(key!("description")).str(&a.description);
        j.close(b'}');
    }
    j.close(b']');
    j.lit(key!("server_certs")).open(b'[');
    for c in &t.server_certs {
        cert(j, c);
    }
    j.close(b']');
    j.lit(key!("client_certs")).open(b'[');
    for c in &t.client_certs {
        cert(j, c);
    }
    j.close(b']');
    key_bool!(j, "client_cert_requested", t.client_cert_requested);
    key_bool!(j, "client_cert_empty", t.client_cert_empty);
    j.lit(key!("mtls")).name(t.mtls.as_str());
    j.lit(key!("mtls_reason")).str(&t.mtls_reason);
    j.lit(key!("mtls_inferred")).opt(t.mtls_inferred.as_ref(), |j, (v, reason)| {
        j.open(b'{');
        j.key(key!("verdict")).name(v.as_str());
        j.lit(key!("reason")).str(reason);
        j.close(b'}');
    });
    j.lit(key!("client_encrypted_records")).open(b'[');
    for &n in t.client_encrypted_records.iter() {
        j.u64(n.into());
    }
    j.close(b']');
    key_bool!(j, "sslv2_client_hello", t.sslv2_client_hello);
    match &t.fingerprints {
        // The same text as the fields one by one, made once per distinct ClientHello.
        Some(fp) => {
            let (text, _) = fp.json.get(|| fingerprint_members(fp));
            j.b.extend_from_slice(text);
        }
        None => fingerprint_fields(j, [None; 4]),
    }
    for (k, c) in [(key!("server_chain"), &t.server_chain), (key!("client_chain"), &t.client_chain)] {
        j.lit(k).opt(c.as_ref(), |j, c| {
            j.open(b'{');
            j.key(key!("verified")).bool(c.verified);
            j.lit(key!("by")).opt_str(c.by.as_deref());
            j.lit(key!("error")).opt_str(c.error.as_deref());
            j.close(b'}');
        });
    }
    j.lit(key!("decryption")).opt(t.decryption.as_ref(), |j, d| {
        j.open(b'{');
        j.key(key!("status")).name(d.status.as_str());
        j.lit(key!("reason")).str(&d.reason);
        j.lit(key!("handshake")).bool(d.handshake);
        j.lit(key!("application")).bool(d.application);
        j.close(b'}');
    });
    j.close(b'}');
}

/// The `ja4`, `ja4_r`, `ja3` and `ja3_full` members, each with its leading comma.
fn fingerprint_fields(j: &mut Json<'_>, values: [Option<&str>; 4]) {
    // Fingerprints are made of hex digits, letters, `_`, `,` and `-`: nothing to escape.
    for (k, v) in [key!("ja4"), key!("ja4_r"), key!("ja3"), key!("ja3_full")].into_iter().zip(values) {
        j.lit(k).opt(v, |j, v| j.ascii(v.as_bytes()));
    }
}

/// The text [`fingerprint_fields`] writes for these fingerprints.
fn fingerprint_members(fp: &FingerprintTexts) -> (Box<[u8]>, usize) {
    let mut b = Vec::with_capacity(64 + fp.ja4.len() + fp.ja4_r.len() + fp.ja3.len() + fp.ja3_full.len());
    fingerprint_fields(
        &mut Json { b: &mut b, comma: true },
        [Some(&fp.ja4), Some(&fp.ja4_r), Some(&fp.ja3), Some(&fp.ja3_full)],
    );
    let n = b.len();
    (b.into_boxed_slice(), n)
}

/// A certificate object: the facts' text is made once per distinct certificate (see
/// [`crate::classify::cert::RenderedJson`]), only the fields that depend on when it was seen
/// are written each time.
fn cert(j: &mut Json<'_>, c: &CertInfo) {
    let (head, tail) = c.json.get(|| cert_facts(c));
    j.sep();
    j.b.extend_from_slice(head);
    j.comma = true;
    key_bool!(j, "expired", c.expired);
    key_bool!(j, "not_yet_valid", c.not_yet_valid);
    j.lit(key!("expires_in_secs")).opt(c.expires_in_secs, |j, s| j.i64(s));
    j.b.extend_from_slice(tail);
    j.comma = true;
}

/// The text of a certificate object without `expired`, `not_yet_valid` and `expires_in_secs`:
/// the part before them (from the `{`), then where the part after them starts (through the
/// `}`).
fn cert_facts(c: &CertFacts) -> (Box<[u8]>, usize) {
    let mut b = Vec::with_capacity(512);
    let j = &mut Json { b: &mut b, comma: false };
    j.open(b'{');
    j.key(key!("subject")).opt_str(c.subject.as_deref());
    j.lit(key!("issuer")).opt_str(c.issuer.as_deref());
    j.lit(key!("serial")).opt_str(c.serial.as_deref());
    j.lit(key!("san_dns")).strs(&c.san_dns);
    j.lit(key!("san_uris")).strs(&c.san_uris);
    j.lit(key!("san_ips")).strs(&c.san_ips);
    j.lit(key!("san_emails")).strs(&c.san_emails);
    j.lit(key!("not_before")).opt_str(c.not_before.as_deref());
    j.lit(key!("not_after")).opt_str(c.not_after.as_deref());
    let split = j.b.len();
    j.comma = true; // `expires_in_secs` is written before
    j.lit(key!("parse_error")).opt_str(c.parse_error.as_deref());
    j.lit(key!("public_key")).opt_str(c.public_key.as_deref());
    j.close(b'}');
    (b.into_boxed_slice(), split)
}

/// An HTTP report as the `http` object of a flow line, for the classifier's tests and the HTTP
/// fuzz target (as [`tls_text`]).
pub fn http_text(h: &HttpReport) -> String {
    let mut b = Vec::new();
    http(&mut Json { b: &mut b, comma: false }, h);
    String::from_utf8(b).expect("the writer writes UTF-8")
}

/// The end of an HTTP/1 request object: its HTTP/2 keys, whose values are constants, and `}`.
const HTTP1_REQUEST_TAIL: &[u8] = concat!(
    key!("stream"),
    "null",
    key!("trailers"),
    "[]",
    key!("unknown_fields"),
    "0",
    key!("grpc"),
    "null",
    key!("data"),
    "null",
    key!("pushed_by"),
    "null}"
)
.as_bytes();
/// The same for an HTTP/1 response.
const HTTP1_RESPONSE_TAIL: &[u8] =
    concat!(key!("stream"), "null", key!("trailers"), "[]", key!("unknown_fields"), "0}").as_bytes();

fn http(j: &mut Json<'_>, h: &HttpReport) {
    // The second level of pointers of [`crate::mesh::annotate`]'s prefetch (the HTTP/2 facts it
    // fetched are in cache by now): each call's gRPC facts and the trailers' text.
    for r in h.requests.iter().take(crate::mesh::PREFETCH_MESSAGES) {
        if let Some(h2) = &r.h2 {
            if let Some(g) = &h2.grpc {
                crate::wire::prefetch(&**g);
            }
            h2.trailers.prefetch();
        }
    }
    j.open(b'{');
    j.key(key!("version")).opt_name(h.version);
    j.lit(key!("requests")).open(b'[');
    for r in &h.requests {
        j.sep();
        j.lit("{\"method\":").wire(r.method.as_bytes());
        j.lit_wire(key!("path"), r.path());
        j.lit_name(key!("version"), r.version());
        match r.host() {
            Some(host) => j.lit_wire(key!("host"), host),
            None => j.lit(key!("host")).null(),
        }
        j.lit(concat!(key!("headers"), "["));
        header_fields(j, &r.headers);
        if r.h2.is_none() && r.stream().is_none() {
            // HTTP/1: the HTTP/2 keys' values are constants, written in one piece.
            j.b.extend_from_slice(HTTP1_REQUEST_TAIL);
            j.comma = true;
            continue;
        }
        h2_tail(j, r.stream(), r.trailers(), r.unknown_fields());
        j.lit(key!("grpc")).opt(r.grpc(), |j, g| grpc(j, g, r.path()));
        match r.data() {
            Some(d) => {
                j.lit_u64(concat!(key!("data"), "{\"client\":"), d.client);
                j.lit_u64(key!("server"), d.server);
                j.b.push(b'}');
            }
            None => key_null(j, concat!(key!("data"), "null")),
        }
        match r.pushed_by() {
            Some(s) => j.lit_u64(key!("pushed_by"), s.into()),
            None => key_null(j, concat!(key!("pushed_by"), "null")),
        }
        j.close(b'}');
    }
    j.close(b']');
    j.lit(key!("responses")).open(b'[');
    for r in &h.responses {
        j.sep();
        j.lit_name("{\"version\":", r.version());
        j.lit_u64(key!("status"), r.status.into());
        j.lit_wire(key!("reason"), r.reason.as_bytes());
        j.lit(concat!(key!("headers"), "["));
        header_fields(j, &r.headers);
        if r.h2.is_none() && r.stream().is_none() {
            j.b.extend_from_slice(HTTP1_RESPONSE_TAIL);
            j.comma = true;
            continue;
        }
        h2_tail(j, r.stream(), r.trailers(), r.unknown_fields());
        j.close(b'}');
    }
    j.close(b']');
    j.lit(key!("requests_total")).u64(h.requests_total);
    j.lit(key!("responses_total")).u64(h.responses_total);
    j.lit(key!("upgrade")).opt_str(h.upgrade.as_deref());
    j.lit(key!("http2")).opt(h.http2.as_deref(), http2);
    j.close(b'}');
}

/// Constant text that ends in a value (a key and `null`).
#[inline(always)]
fn key_null(j: &mut Json<'_>, s: &'static str) {
    j.lit(s).comma = true;
}

/// An HTTP/2 message's `stream`, `trailers` and `unknown_fields`, each key written with its
/// value (see [`Json::lit_u64`] for the figures).
#[inline(always)]
fn h2_tail(j: &mut Json<'_>, stream: Option<u32>, trailers: Option<&Headers>, unknown: u32) {
    match stream {
        Some(s) => j.lit_u64(key!("stream"), s.into()),
        None => key_null(j, concat!(key!("stream"), "null")),
    }
    match trailers {
        Some(t) => {
            j.lit(concat!(key!("trailers"), "["));
            header_fields(j, t);
        }
        None => key_null(j, concat!(key!("trailers"), "[]")),
    }
    j.lit_u64(key!("unknown_fields"), unknown.into());
}

fn by_role(j: &mut Json<'_>, r: &ByRole) {
    j.open(b'{');
    j.key(key!("client")).u64(r.client);
    j.lit(key!("server")).u64(r.server);
    j.close(b'}');
}

/// `path`: the request's, which holds the service and method.
fn grpc(j: &mut Json<'_>, g: &GrpcCall, path: &[u8]) {
    j.open(b'{');
    j.key(key!("service")).opt(g.service(path), Json::wire);
    j.key(key!("method")).opt(g.method(path), Json::wire);
    j.lit(key!("status")).opt_u64(g.status.map(u64::from));
    j.lit(key!("status_name")).opt_name(g.status_name);
    j.lit(key!("message")).opt_wire(g.message.as_ref());
    j.lit(key!("encoding")).opt_wire(g.encoding.as_ref());
    j.lit(key!("messages"));
    by_role(j, &g.messages);
    j.lit(key!("message_bytes"));
    by_role(j, &g.message_bytes);
    j.close(b'}');
}

fn settings(j: &mut Json<'_>, s: Option<&SettingsList>) {
    let Some(s) = s else { return j.null() };
    j.open(b'{');
    for &(id, v) in &s.0 {
        // Setting names are constants of letters and `_`, or `0x` and hex digits.
        j.sep();
        j.b.push(b'"');
        j.b.extend_from_slice(SettingsList::key(id).as_bytes());
        j.b.extend_from_slice(b"\":");
        j.comma = false;
        j.u64(v.into());
    }
    j.close(b'}');
}

fn http2(j: &mut Json<'_>, h: &Http2Report) {
    j.open(b'{');
    j.key(key!("settings")).open(b'{');
    j.key(key!("client"));
    settings(j, h.settings.client.as_ref());
    j.lit(key!("server"));
    settings(j, h.settings.server.as_ref());
    j.close(b'}');
    j.lit(key!("goaway")).opt(h.goaway.as_ref(), |j, g| {
        j.open(b'{');
        j.key(key!("from")).name(g.from.as_str());
        j.lit(key!("last_stream")).u64(g.last_stream.into());
        j.lit(key!("error")).str(&g.error);
        j.close(b'}');
    });
    j.lit(key!("rst_streams")).open(b'[');
    for r in &h.rst_streams {
        j.open(b'{');
        j.key(key!("stream")).u64(r.stream.into());
        j.lit(key!("from")).name(r.from.as_str());
        j.lit(key!("error")).str(&r.error);
        j.close(b'}');
    }
    j.close(b']');
    j.lit(key!("streams_total")).u64(h.streams_total);
    j.close(b'}');
}

/// `[[name, value], ...]` (the writers merge the `[` with their key: [`header_fields`]).
#[cfg(test)]
fn headers(j: &mut Json<'_>, h: &Headers) {
    // Header blocks are most of the output (HTTP flows with sidecar headers): they are stored as
    // JSON text, copied at once; only the fields listed as raw (an XFCC value's quotes, bytes
    // above 0x7f) are escaped here.
    j.sep();
    j.b.push(b'[');
    header_fields(j, h);
}

/// The fields of [`headers`] after its `[`, and the `]`.
fn header_fields(j: &mut Json<'_>, h: &Headers) {
    let (text, dirty) = h.json_text();
    let mut next = 0;
    for &d in dirty {
        let d = d as usize;
        if d > next {
            j.b.extend_from_slice(h.text_of_fields(next, d));
        }
        if d > 0 {
            j.b.push(b',');
        }
        let (n, v) = h.get(d).unwrap_or_default();
        j.b.push(b'[');
        j.comma = false;
        j.wire(n);
        j.wire_raw(v);
        j.b.push(b']');
        next = d + 1;
    }
    if next == 0 {
        j.b.extend_from_slice(text);
    } else if next < h.len() {
        j.b.extend_from_slice(h.text_of_fields(next, h.len()));
    }
    j.close(b']');
}

fn istio(j: &mut Json<'_>, i: &IstioReport) {
    j.open(b'{');
    j.key(key!("leg")).name(i.leg.as_str());
    j.lit(key!("mode")).opt_name(i.mode.map(|m| m.as_str()));
    j.lit(key!("hbone")).opt(i.hbone.as_ref(), |j, targets| {
        j.open(b'{');
        j.key(key!("targets")).open(b'[');
        for t in targets {
            j.open(b'{');
            j.key(key!("stream")).opt_u64(t.stream.map(u64::from));
            j.lit(key!("authority")).wire(t.authority.as_bytes());
            j.lit(key!("status")).opt_u64(t.status.map(u64::from));
            j.lit(key!("client")).opt_wire(t.client.as_ref());
            j.key(key!("service")).opt_wire(t.service.as_ref());
            j.close(b'}');
        }
        j.close(b']');
        j.close(b'}');
    });
    j.lit(key!("sni")).opt(i.sni.as_ref(), |j, s| {
        j.open(b'{');
        j.key(key!("direction")).name(s.direction.as_str());
        j.lit(key!("port")).u64(s.port.into());
        j.lit(key!("subset")).opt_str(s.subset());
        j.lit(key!("fqdn")).str(s.fqdn());
        j.key(key!("service")).str(s.service());
        j.lit(key!("namespace")).opt_str(s.namespace());
        j.close(b'}');
    });
    j.lit(key!("alpn")).opt(i.alpn.as_ref(), |j, a| {
        j.open(b'{');
        j.key(key!("tokens")).strs(&a.tokens);
        j.lit(key!("app_protocol")).opt_name(a.app_protocol.map(|p| p.as_str()));
        j.close(b'}');
    });
    j.lit(key!("port_role")).opt_name(i.port_role.map(|r| r.as_str()));
    j.lit(key!("peer_metadata"));
    // Free-form: serde_json wrote it once when it was decoded.
    j.opt(i.peer_metadata.as_ref(), |j, m| j.raw(&m.json));
    j.lit(key!("peer_metadata_id")).opt_str(i.peer_metadata_id.as_deref());
    j.lit(key!("xfcc")).open(b'[');
    for x in i.xfcc.iter() {
        j.open(b'{');
        j.key(key!("by")).opt_str(x.by.as_deref());
        j.lit(key!("hash")).opt_str(x.hash.as_deref());
        j.lit(key!("subject")).opt_str(x.subject.as_deref());
        j.lit(key!("uri")).opt_str(x.uri.as_deref());
        j.lit(key!("dns")).strs(&x.dns);
        j.close(b'}');
    }
    j.close(b']');
    for (k, id) in
        [(key!("server_identity"), &i.server_identity), (key!("client_identity"), &i.client_identity)]
    {
        j.key(k);
        spiffe(j, id.as_ref());
    }
    j.close(b'}');
}

fn spiffe(j: &mut Json<'_>, id: Option<&SpiffeId>) {
    let Some(s) = id else { return j.null() };
    j.open(b'{');
    j.key(key!("uri")).str(s.uri());
    j.lit(key!("trust_domain")).str(s.trust_domain());
    j.lit(key!("namespace")).opt_str(s.namespace());
    j.lit(key!("service_account")).opt_str(s.service_account());
    j.close(b'}');
}

#[cfg(test)]
mod tests {
    use super::writer::*;
    use super::*;
    use crate::sanitize::json_scan::scan;
    use crate::sanitize::WireBytes;

    fn ours(b: &[u8]) -> String {
        let mut v = Vec::new();
        Json { b: &mut v, comma: false }.wire(b);
        String::from_utf8(v).expect("JSON text is UTF-8")
    }

    #[test]
    fn header_blocks_render_as_serde_json_does() {
        // Raw values (`wire_raw`): to escape, valid UTF-8 with nothing to escape, invalid UTF-8
        // with and without a byte to escape.
        let fields: [(&[u8], &[u8]); 8] = [
            (b"host", b"reviews:9080"),
            (b"x-request-id", b"fdaa5495-1e90"),
            (b"accept", b""),
            (b"x-quote", b"say \"hi\"\\"),
            (b"x-ctl", b"a\tb\x01"),
            (b"x-utf8", b"caf\xc3\xa9 \xff"),
            (b"x-naive", "na\u{ef}ve, \u{2603} and a longer tail".as_bytes()),
            (b"x-bad", b"\"q\xfe\" and then sixteen bytes more\\"),
        ];
        // Every subset of every rotation of the fields: clean fields are copied as stored, the
        // others escaped one by one, wherever they are.
        for (mask, rot) in (0..(1u32 << fields.len())).flat_map(|m| (0..fields.len()).map(move |r| (m, r))) {
            let mut b = crate::sanitize::HeadersBuilder::default();
            for (i, (n, v)) in fields.iter().cycle().skip(rot).take(fields.len()).enumerate() {
                if mask & 1 << i != 0 {
                    b.push(n, v);
                }
            }
            let h = b.finish();
            let mut v = Vec::new();
            let mut j = Json { b: &mut v, comma: true };
            headers(&mut j, &h);
            let want = format!(",{}", serde_json::to_string(&h).unwrap());
            assert_eq!(String::from_utf8(v).unwrap(), want, "fields {mask:#b} rotated by {rot}");
        }
    }

    #[test]
    fn ipv6_endpoints_as_std_writes_them() {
        use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
        let mut addrs: Vec<[u16; 8]> = vec![
            [0; 8],
            [0, 0, 0, 0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001],
            [0, 0, 0, 0, 0, 0, 0x0a00, 0x0001],
            [0, 0, 0, 0, 0, 0xfffe, 0x0a00, 0x0001],
            [0x2001, 0xdb8, 0, 0, 1, 0, 0, 1],
            [0x2001, 0xdb8, 0, 1, 0, 0, 0, 1],
            [0x2001, 0, 1, 0, 1, 0, 1, 0],
            [0xffff; 8],
            [0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a],
        ];
        // Groups of 0, 1, 0x10, 0xabc or 0xffff in every mix (a bit pattern per group).
        let mut x = 0x9e37_79b9_u64;
        for _ in 0..5000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let g = std::array::from_fn(|i| {
                [0, 0, 0, 1, 0x10, 0xabc, 0xffff, 0][(x >> (3 * i + 20)) as usize & 7]
            });
            addrs.push(g);
        }
        for (k, g) in addrs.into_iter().enumerate() {
            let ip = Ipv6Addr::from(g);
            for (port, scope) in [(0, 0), (443, 0), (65535, 3), (8080, u32::MAX)] {
                let a = SocketAddr::V6(SocketAddrV6::new(ip, port, 7, scope));
                let mut v = Vec::new();
                Json { b: &mut v, comma: k % 2 == 1 }.endpoint(a);
                let want = format!("{}\"{a}\"", if k % 2 == 1 { "," } else { "" });
                assert_eq!(String::from_utf8(v).unwrap(), want);
            }
        }
    }

    fn serde(b: &[u8]) -> String {
        serde_json::to_string(&WireBytes::new(b)).expect("serializes")
    }

    /// [`Json::tls_name`] copies version and cipher names without escaping them: none needs it.
    #[test]
    fn tls_names_need_no_escape() {
        use crate::classify::tls::{cipher_name, version_name};
        for v in 0..=u16::MAX {
            for name in [version_name(v), cipher_name(v)] {
                assert_eq!(scan(name.as_bytes()), (false, false), "{name:?}");
            }
        }
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        // Every byte value at every position of strings of 1 to 40 bytes (16-byte blocks, whole
        // words, short strings, and tails read as the last eight bytes).
        for x in 0..=255u8 {
            for len in 1..=40 {
                for pos in 0..len {
                    let mut s = b"abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len - 1].to_vec();
                    s.insert(pos, x);
                    assert_eq!(ours(&s), serde(&s), "byte {x:#04x} at {pos} of {len}");
                }
            }
        }
        for s in [
            "",
            "\"",
            "\\\\\"\"",
            "tab\there\r\n\u{7f}\u{1b}[31m",
            "caf\u{e9} \u{202e}\u{1f600}",
            "outbound_.9080_._.reviews.default.svc.cluster.local",
            "By=spiffe://cluster.local/ns/default/sa/reviews;Subject=\"CN=a,O=\\\"b\\\"\";URI=x",
        ] {
            assert_eq!(ours(s.as_bytes()), serde(s.as_bytes()), "{s:?}");
        }
        // Every 16-byte block all escapes, and a run of them across blocks.
        let all = "\"\\\n\u{1}".repeat(12) + "caf\u{e9}";
        assert_eq!(ours(all.as_bytes()), serde(all.as_bytes()));
        for b in [
            &b"\xff"[..],
            b"ok\xc3(\\",
            b"\xe2\x82",
            b"abcdefgh\x80ijklmnop\\",
            b"\\\x80\"\n\x01caf\xc3\xa9\x7f\\\xf0\x9f\x98\x80\xed\xa0\x80\t",
        ] {
            assert_eq!(ours(b), serde(b), "{b:?}");
        }
    }

    #[test]
    fn endpoints_as_endpoint_text() {
        let ports = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 15006, 65535];
        let octets = [0, 1, 9, 10, 99, 100, 127, 199, 200, 255];
        for (i, &port) in ports.iter().enumerate() {
            for a in octets {
                for b in octets {
                    let ip = std::net::Ipv4Addr::new(a, b, octets[i % 10], octets[(i + a as usize) % 10]);
                    for addr in [
                        std::net::SocketAddr::from((ip, port)),
                        std::net::SocketAddr::from((ip.to_ipv6_mapped(), port)),
                    ] {
                        let mut v = Vec::new();
                        Json { b: &mut v, comma: false }.endpoint(addr);
                        assert_eq!(
                            v,
                            format!("\"{}\"", crate::record::EndpointText::new(addr).as_str()).into_bytes(),
                            "{addr}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_as_serde_json() {
        for v in [0.0, 0.001629, 1.5, 123456.000001, 1e-7, f64::NAN, f64::INFINITY] {
            let mut b = Vec::new();
            Json { b: &mut b, comma: false }.f64(v);
            assert_eq!(String::from_utf8(b).unwrap(), serde_json::to_string(&v).unwrap());
        }
        for v in [0, -1, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            Json { b: &mut b, comma: false }.i64(v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }
}

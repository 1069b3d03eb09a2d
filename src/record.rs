//! The per-flow record ([`FlowReport`]): what the flow and classify stages found about one TCP
//! connection, with the client decided ([`FlowReport::build`]), and what the mesh stage adds to
//! it (`istio`, TLS failure and certificate flags, XFCC confirmation: [`crate::mesh::annotate`]).
//! Every later stage reads it: the mesh stage counts it, the report renders it. Its own module
//! so that `mesh` and `report` both depend on it and not on each other; its values are typed
//! ([`Event`], [`ResetBy`], [`Flags`], and the enums of the stages that decide them), their text
//! written only by the report.

use crate::classify::http::HttpReport;
use crate::classify::istio::IstioReport;
use crate::classify::proxy::ProxyHeader;
#[cfg(test)]
use crate::classify::tls::TlsPart;
use crate::classify::tls::TlsReport;
use crate::classify::{Classified, H2cVia, Protocol};
use crate::flow::client::{decide_client, ClientBy};
use crate::flow::{EndReason, FlowMeta};
use crate::sanitize::WireBytes;
use crate::wire::{Side, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;

/// Client/server pair of counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PerRole {
    /// Sent by the client.
    pub(crate) client: u64,
    /// Sent by the server.
    pub(crate) server: u64,
}

/// First bytes of each side of an unrecognised flow.
#[derive(Clone, Debug)]
pub(crate) struct Preview {
    /// Client's first bytes.
    pub(crate) client: WireBytes,
    /// Server's first bytes.
    pub(crate) server: WireBytes,
}

/// One TCP flow, as reported (the `flow` object of docs/json.md).
#[derive(Clone, Debug)]
pub struct FlowReport {
    /// `ended` (final facts, one per flow), or `classified` (live capture only: facts known when
    /// the handshake or first request was seen; an `ended` line with the same id follows).
    pub(crate) event: Event,
    /// Order of first packet over the whole run, from 1.
    pub(crate) id: u64,
    /// Capture file the flow was read from (one string shared by all its flows).
    pub(crate) source: Arc<str>,
    /// Client endpoint, written `ip:port` or `[ipv6]:port` ([`EndpointText`]). Kept as an
    /// address, and the timestamps as timestamps, until written: as strings, they were four
    /// allocations and copies per flow.
    pub(crate) client: SocketAddr,
    /// Server endpoint.
    pub(crate) server: SocketAddr,
    /// The destination the client dialled, when an iptables REDIRECT (Istio's 15001) sent the
    /// connection to this loopback server instead.
    pub(crate) original_dst: Option<SocketAddr>,
    /// The PROXY protocol header the stream opened with (a load balancer's or ztunnel's).
    pub(crate) proxy_protocol: Option<Box<ProxyHeader>>,
    /// How the client was decided.
    pub(crate) client_by: ClientBy,
    /// Captured on a loopback interface (true), another one (false), or the link layer does
    /// not say (null): see [`crate::decode::Link`].
    pub(crate) on_loopback: Option<bool>,
    /// ... and the link layer said so for certain (a cooked capture's device type, not zero
    /// Ethernet addresses).
    pub(crate) loopback_certain: bool,
    /// First packet, written RFC 3339 UTC ([`Timestamp::push_rfc3339`]).
    pub(crate) first_ts: Timestamp,
    /// Last packet.
    pub(crate) last_ts: Timestamp,
    /// Timestamps are written with nanoseconds (else microseconds).
    pub(crate) nanos: bool,
    /// Seconds from first to last packet.
    pub(crate) duration: f64,
    /// Packets per role.
    pub(crate) packets: PerRole,
    /// TCP payload bytes per role.
    pub(crate) bytes: PerRole,
    /// What the flow carries.
    pub(crate) protocol: Protocol,
    /// TLS facts.
    pub(crate) tls: Option<TlsReport>,
    /// HTTP/1 facts.
    pub(crate) http: Option<HttpReport>,
    /// Istio's signals: leg, parsed SNI, sidecar ALPN tokens, Istio port role (mesh stage).
    pub(crate) istio: Option<IstioReport>,
    /// How h2c was recognised, when protocol is h2c.
    pub(crate) h2c: Option<H2cVia>,
    /// First bytes of each side, for unknown flows.
    pub(crate) preview: Option<Preview>,
    /// How the flow ended; written `reset` when it closed and a side sent a RST.
    pub(crate) end: EndReason,
    /// Which side sent a TCP RST; None when none did.
    pub(crate) reset_by: Option<ResetBy>,
    /// Anomalies (docs/json.md lists them).
    pub(crate) flags: Flags,
    /// Parser warnings.
    pub(crate) warnings: Vec<String>,
    /// The requests carried Envoy's `x-envoy-*` headers or peer metadata: a client sidecar sent
    /// them (mesh stage, [`crate::mesh::from_sidecar`]; not in the JSON).
    pub(crate) from_sidecar: bool,
}

crate::wire::text_enum! {
    /// Which line of a flow this is (the JSON `event`).
    pub(crate) enum Event {
        /// The flow's final facts, one per flow.
        Ended => "ended",
        /// Live capture only: facts known when the handshake or first request was seen.
        Classified => "classified",
    }
}

crate::wire::text_enum! {
    /// Which side sent a TCP RST (the JSON `reset_by`).
    pub(crate) enum ResetBy {
        /// The client.
        Client => "client",
        /// The server.
        Server => "server",
        /// Both.
        Both => "both",
    }
}

crate::wire::text_enum! {
    /// One anomaly of a flow (the JSON `flags`), in the order they are listed; the certificate
    /// flags last, in the order their certificates were met ([`Flags`]).
    pub(crate) enum Flag {
        /// Neither SYN nor SYN-ACK seen.
        Midstream => "midstream",
        /// A side hit its byte limit.
        Truncated => "truncated",
        /// Bytes missing in a stream.
        Gap => "gap",
        /// Segments sent again.
        Retransmission => "retransmission",
        /// Segments out of order.
        OutOfOrder => "out_of_order",
        /// Overlapping segments that disagreed.
        OverlapConflict => "overlap_conflict",
        /// A reassembly queue or the memory budget overflowed.
        MemoryLimited => "memory_limited",
        /// A side sent a RST.
        Reset => "reset",
        /// Evicted from a full flow table.
        Evicted => "evicted",
        /// A cleartext fatal TLS alert.
        HandshakeFailed => "handshake_failed",
        /// The server refused the TLS handshake.
        HandshakeRefused => "handshake_refused",
        /// The SNI is not among the server certificate's names.
        SniMismatch => "sni_mismatch",
        /// A certificate had expired at capture time.
        CertExpired => "cert_expired",
        /// A certificate was not yet valid.
        CertNotYetValid => "cert_not_yet_valid",
        /// A certificate expires within `--cert-warn`.
        CertExpiring => "cert_expiring",
    }
}

/// The first certificate flag: they are listed in the order met, the others in [`Flag`] order.
const FIRST_CERT_FLAG: Flag = Flag::CertExpired;

/// A set of [`Flag`]s (no allocation): listed in [`Flag`] order, then the certificate flags in
/// the order they were inserted (a flow's certificates are checked server chain first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    bits: u16,
    /// Certificate flags in insertion order, two bits each (1 + their offset from
    /// [`FIRST_CERT_FLAG`]), first in the low bits.
    certs: u8,
}

impl Flags {
    /// Adds `f` (nothing when present).
    pub(crate) fn insert(&mut self, f: Flag) {
        if self.contains(f) {
            return;
        }
        self.bits |= 1 << f as u16;
        if f >= FIRST_CERT_FLAG {
            let n = (self.bits >> FIRST_CERT_FLAG as u16).count_ones() - 1;
            self.certs |= (1 + f as u8 - FIRST_CERT_FLAG as u8) << (2 * n);
        }
    }

    /// Whether `f` is in.
    pub(crate) fn contains(self, f: Flag) -> bool {
        self.bits & (1 << f as u16) != 0
    }

    /// No flag.
    pub(crate) fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// A certificate flag is in.
    pub(crate) fn any_cert(self) -> bool {
        self.bits >> FIRST_CERT_FLAG as u16 != 0
    }

    /// The flags, in the order they are written.
    pub(crate) fn iter(self) -> impl Iterator<Item = Flag> {
        let first = Flag::ALL.iter().copied().filter(move |&f| f < FIRST_CERT_FLAG && self.contains(f));
        let certs = (0..3).map_while(move |i| {
            let c = (self.certs >> (2 * i)) & 3;
            (c != 0).then(|| Flag::ALL[FIRST_CERT_FLAG as usize + c as usize - 1])
        });
        first.chain(certs)
    }
}

/// Formats an endpoint as `ip:port` / `[ipv6]:port`.
pub(crate) fn endpoint(a: SocketAddr) -> String {
    EndpointText::new(a).as_str().to_string()
}

/// An endpoint as text, `ip:port` / `[ipv6]:port`, on the stack (no allocation).
pub(crate) struct EndpointText {
    buf: [u8; 64],
    len: usize,
}

impl EndpointText {
    /// Formats `a`. IPv4 by hand: `to_string` goes through `fmt` (padding support, a dynamic
    /// writer), twice per flow. IPv6 keeps std's (it compresses zero runs; rarer, so writing it
    /// by hand did not pay: bench/RESULTS.md); the longest, with a scope id, is 58 bytes.
    pub(crate) fn new(a: SocketAddr) -> EndpointText {
        let mut t = EndpointText { buf: [0; 64], len: 0 };
        match a {
            SocketAddr::V4(v4) => {
                for (i, o) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.decimal(o.into());
                }
                t.push(b':');
                t.decimal(v4.port().into());
            }
            SocketAddr::V6(_) => {
                use std::io::Write;
                let mut w = &mut t.buf[..];
                let _ = write!(w, "{a}");
                t.len = 64 - w.len();
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `v` in decimal, no padding.
    fn decimal(&mut self, v: u32) {
        for &d in crate::wire::decimal(v.into(), &mut [0; 20]) {
            self.push(d);
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes (ASCII).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

thread_local! {
    /// A report's box kept for the next report built on this thread ([`FlowReport::recycle`]).
    static SPARE: std::cell::Cell<Option<Box<std::mem::MaybeUninit<FlowReport>>>> =
        const { std::cell::Cell::new(None) };
}

/// Writes the fields of the `FlowReport` at raw pointer `$p` (see [`FlowReport::build_boxed`]),
/// each `name: value` with [`Put`], every field listed (the closure's pattern checks it at
/// compile time).
macro_rules! fill {
    ($p:expr, { $($f:ident : $v:expr),* $(,)? }) => {{
        let p: *mut FlowReport = $p;
        $( Put::put($v, std::ptr::addr_of_mut!((*p).$f)); )*
        let _every_field = |r: &FlowReport| {
            let FlowReport { $($f: _),* } = r;
        };
    }};
}

/// A value written into a field through a raw pointer ([`fill!`]).
trait Put<T> {
    /// Writes `self` at `dst`.
    ///
    /// # Safety
    /// `dst` is valid for a write of a `T` (what was there is not dropped).
    unsafe fn put(self, dst: *mut T);
}

impl<T> Put<T> for T {
    #[inline(always)]
    unsafe fn put(self, dst: *mut T) {
        // SAFETY: the caller's.
        unsafe { dst.write(self) }
    }
}

/// An optional part written by its variant: absent, its tag only (a move of an `Option` copies
/// all its bytes, an absent payload's too).
struct Optional<T>(Option<T>);

impl<T> Put<Option<T>> for Optional<T> {
    #[inline(always)]
    unsafe fn put(self, dst: *mut Option<T>) {
        // SAFETY: the caller's.
        unsafe {
            match self.0 {
                Some(x) => dst.write(Some(x)),
                None => dst.write(None),
            }
        }
    }
}

/// A part always absent when the report is built (the mesh stage's `istio`): its tag only.
struct Absent;

impl<T> Put<Option<T>> for Absent {
    #[inline(always)]
    unsafe fn put(self, dst: *mut Option<T>) {
        // SAFETY: the caller's.
        unsafe { dst.write(None) }
    }
}

impl FlowReport {
    /// For tests of the later stages: the report of flow `meta` (e.g.
    /// [`FlowMeta::closed_for_test`]) carrying `protocol`, with `tls` and `http` facts and
    /// nothing else classified.
    #[cfg(test)]
    pub(crate) fn for_test(
        meta: FlowMeta,
        protocol: Protocol,
        tls: Option<TlsReport>,
        http: Option<HttpReport>,
    ) -> FlowReport {
        let c = Classified {
            protocol,
            tls: tls.map(|t| TlsPart::Report(Box::new(t))),
            http,
            h2c: None,
            proxy: None,
            preview: Default::default(),
            client_hint: None,
            warnings: Vec::new(),
        };
        FlowReport::build(meta, c, &"test".into(), false)
    }

    /// Builds the record of a flow from its flow and classify facts (the mesh stage adds its own:
    /// [`crate::mesh::annotate`]). By value: a live `classified` line, tests, the fuzz target;
    /// the runs box their reports ([`FlowReport::build_boxed`]).
    pub fn build(meta: FlowMeta, c: Classified, source: &Arc<str>, nanos: bool) -> FlowReport {
        *FlowReport::build_boxed(meta, c, source, nanos)
    }

    /// [`FlowReport::build`] straight into a new box, field by field: an absent TLS, HTTP, Istio
    /// or preview part writes its tag only; an ended flow's TLS report is written in place by
    /// its session, after the rest (`classify::tls::TlsPart`). Built on the stack, then moved
    /// into its box (the merger renders it later), all ~1.3 KB were copied, the absent parts'
    /// bytes too: 16 fresh cache lines written a flow, the largest item of a flow's end
    /// (default 100 MB, one thread: 109 k of 2.2 M L2 misses; 40% of its flows carry no TLS,
    /// 55% no Istio facts). With
    /// `mesh::facts::add` setting `istio` by variant too, bench/misses --json --threads 1
    /// cycles~: default 100 MB 231.1 -> 229.1 M (L2 misses 2.21 -> 2.17 M), 30 MB slices
    /// default 75.1 -> 74.1 M, mesh 79.6 -> 78.7 M.
    pub(crate) fn build_boxed(
        meta: FlowMeta,
        c: Classified,
        source: &Arc<str>,
        nanos: bool,
    ) -> Box<FlowReport> {
        let (client, client_by) = decide_client(&meta, c.client_hint);
        let (ci, si) = (client.idx(), client.other().idx());
        let mut flags = Flags::default();
        let st = &meta.stats;
        let any = |f: &dyn Fn(&crate::flow::reassembly::HalfStats) -> bool| f(&st[0]) || f(&st[1]);
        let mut flag = |on: bool, f: Flag| {
            if on {
                flags.insert(f);
            }
        };
        flag(meta.syn_from.is_none() && meta.synack_from.is_none(), Flag::Midstream);
        flag(any(&|s| s.truncated), Flag::Truncated);
        flag(any(&|s| s.gaps > 0), Flag::Gap);
        flag(any(&|s| s.retransmitted > 0), Flag::Retransmission);
        flag(any(&|s| s.out_of_order > 0), Flag::OutOfOrder);
        flag(any(&|s| s.overlap_conflicts > 0), Flag::OverlapConflict);
        flag(any(&|s| s.queue_overflow) || meta.memory_limited, Flag::MemoryLimited);
        flag(meta.rst[0] || meta.rst[1], Flag::Reset);
        flag(meta.end == EndReason::Evicted, Flag::Evicted);
        let [pa, pb] = c.preview;
        let preview = (c.protocol == Protocol::Unknown && !(pa.is_empty() && pb.is_empty())).then(|| {
            let (pc, ps) = if client == Side::A { (pa, pb) } else { (pb, pa) };
            Preview { client: WireBytes::new(&pc), server: WireBytes::new(&ps) }
        });
        let reset_by = match (meta.rst[ci], meta.rst[si]) {
            (true, true) => Some(ResetBy::Both),
            (true, false) => Some(ResetBy::Client),
            (false, true) => Some(ResetBy::Server),
            (false, false) => None,
        };
        let mut b = SPARE.take().unwrap_or_else(Box::new_uninit);
        let p = b.as_mut_ptr();
        // SAFETY: `fill!` writes every field of the `FlowReport` at `p` (its own pattern lists
        // them all: a field left out does not compile), in memory allocated for one, so the box
        // is initialised after it (the test
        // `boxed_reports_hold_every_field_with_and_without_each_optional_part` builds reports
        // with and without each optional part).
        unsafe {
            fill!(p, {
                istio: Absent,
                event: Event::Ended,
                id: meta.order,
                source: Arc::clone(source),
                client: meta.endpoints[ci],
                server: meta.endpoints[si],
                original_dst: meta.original_dst,
                proxy_protocol: c.proxy,
                client_by: client_by,
                on_loopback: match meta.link {
                    crate::decode::Link::Unknown => None,
                    l => Some(l != crate::decode::Link::Device),
                },
                loopback_certain: meta.link == crate::decode::Link::Loopback,
                first_ts: meta.first_ts,
                last_ts: meta.last_ts,
                nanos: nanos,
                duration: ((meta.last_ts.as_f64() - meta.first_ts.as_f64()).max(0.0) * 1e6).round() / 1e6,
                packets: PerRole { client: meta.packets[ci], server: meta.packets[si] },
                bytes: PerRole { client: meta.bytes[ci], server: meta.bytes[si] },
                protocol: c.protocol,
                tls: Absent, // written below, in place
                http: Optional(c.http),
                h2c: c.h2c,
                preview: Optional(preview),
                end: meta.end,
                reset_by: reset_by,
                flags: flags,
                warnings: c.warnings,
                from_sidecar: false,
            });
            let mut r = b.assume_init();
            if let Some(w) = c.tls.and_then(|t| t.write_into(&mut r.tls)) {
                r.warnings.push(w);
            }
            r
        }
    }

    /// Keeps the box of a report no longer needed for the next [`FlowReport::build_boxed`] on
    /// this thread (a worker that renders its flows sends the merger a count record and drops
    /// the report): the next report is written into lines still in cache, not into a block
    /// mimalloc hands out after the rest of its page. Boxed without it, a rendered flow's report
    /// (built on the stack before) cost two threads D1 misses (bench/misses --json --threads 2,
    /// default 30 MB: 1.96 -> 1.99 M, cycles~ 98.0 -> 98.5 M); recycled, 1.96 M and 98.1 M.
    pub(crate) fn recycle(b: Box<FlowReport>) {
        let raw = Box::into_raw(b);
        // SAFETY: `raw` comes from a box of an initialised `FlowReport`, dropped here once; the
        // box made again owns the same allocation as uninitialised memory of the same layout.
        let spare = unsafe {
            std::ptr::drop_in_place(raw);
            Box::from_raw(raw.cast::<std::mem::MaybeUninit<FlowReport>>())
        };
        SPARE.set(Some(spare));
    }

    /// The server sent a RST (alone or with the client).
    pub(crate) fn reset_by_server(&self) -> bool {
        matches!(self.reset_by, Some(ResetBy::Server | ResetBy::Both))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_text_is_std_display() {
        let ports = [0u16, 1, 9, 10, 99, 100, 443, 9080, 10000, 65535];
        let octets = [0u8, 1, 9, 10, 99, 100, 127, 199, 200, 255];
        for &a in &octets {
            for &b in &octets {
                for &p in &ports {
                    let addr = SocketAddr::from(([a, b, 255 - a, b / 2], p));
                    assert_eq!(endpoint(addr), addr.to_string());
                }
            }
        }
        let v6: SocketAddr = "[fd00::1:2]:8443".parse().unwrap();
        assert_eq!(endpoint(v6), "[fd00::1:2]:8443");
        // The longest text: a full address with the largest scope id and port.
        let long = std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            65535,
            0,
            u32::MAX,
        );
        assert_eq!(endpoint(long.into()), long.to_string());
        assert_eq!(endpoint(long.into()).len(), 58);
    }

    #[test]
    fn ipv6_endpoint_text_is_std_display_on_random_addresses() {
        let mut rng = crate::wire::xorshift(11);
        for _ in 0..50_000 {
            // Groups zero half the time (runs of every length and place), small or full
            // otherwise; some IPv4-mapped and IPv4-compatible addresses; scope ids now and then.
            let mut g = [0u16; 8];
            for x in &mut g {
                *x = match rng() % 4 {
                    0 | 1 => 0,
                    2 => (rng() % 16) as u16,
                    _ => rng() as u16,
                };
            }
            match rng() % 8 {
                0 => g[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0xffff]),
                1 => g[..6].copy_from_slice(&[0; 6]),
                _ => {}
            }
            let scope = if rng().is_multiple_of(4) { rng() as u32 } else { 0 };
            let a = std::net::SocketAddrV6::new(std::net::Ipv6Addr::from(g), rng() as u16, 0, scope);
            assert_eq!(endpoint(a.into()), a.to_string(), "{g:x?}");
        }
    }

    /// [`FlowReport::build_boxed`] writes every field, an absent optional part as `None`, a
    /// present one whole (a field it left out would not compile: see `fill!`), also into a
    /// recycled box ([`FlowReport::recycle`]).
    #[test]
    fn boxed_reports_hold_every_field_with_and_without_each_optional_part() {
        use crate::classify::http::HttpReport;
        use crate::classify::tls::MtlsVerdict;
        let client = SocketAddr::from(([10, 0, 0, 1], 40_000));
        let server = SocketAddr::from(([10, 0, 0, 2], 443));
        let dialled = Some(SocketAddr::from(([10, 0, 0, 9], 9080)));
        for (tls, http, unknown) in
            [(false, false, false), (true, false, false), (false, true, true), (true, true, true)]
        {
            let mut meta = FlowMeta::closed_for_test(client, server, (10, 12), 7);
            meta.rst = [false, true];
            meta.original_dst = dialled;
            meta.link = crate::decode::Link::Device;
            let protocol = if unknown { Protocol::Unknown } else { Protocol::Tls };
            let c = Classified {
                protocol,
                tls: tls.then(|| {
                    TlsPart::Report(Box::new(TlsReport {
                        mtls: MtlsVerdict::Likely,
                        mtls_reason: "r".into(),
                        ..Default::default()
                    }))
                }),
                http: http.then(|| HttpReport { requests_total: 3, ..Default::default() }),
                h2c: None,
                proxy: None,
                preview: [b"GET".to_vec(), Vec::new()],
                client_hint: None,
                warnings: vec!["w".to_string()],
            };
            let r = FlowReport::build_boxed(meta, c, &"s.pcap".into(), true);
            let tls_facts = r.tls.as_ref().map(|t| (t.mtls, &*t.mtls_reason));
            assert_eq!(tls_facts, tls.then_some((MtlsVerdict::Likely, "r")));
            assert_eq!(r.http.as_ref().map(|h| h.requests_total), http.then_some(3));
            let preview = r.preview.as_ref().map(|p| (p.client.as_bytes(), p.server.as_bytes()));
            assert_eq!(preview, unknown.then_some((&b"GET"[..], &b""[..])));
            assert!(r.istio.is_none() && r.h2c.is_none() && r.proxy_protocol.is_none());
            assert_eq!(
                (r.event, r.id, &*r.source, r.client, r.server),
                (Event::Ended, 7, "s.pcap", client, server)
            );
            assert_eq!(
                (r.original_dst, r.client_by, r.on_loopback, r.loopback_certain),
                (dialled, ClientBy::Syn, Some(false), false)
            );
            assert_eq!((r.first_ts.secs, r.last_ts.secs, r.nanos, r.duration), (10, 12, true, 2.0));
            assert_eq!(
                (r.packets, r.bytes),
                (PerRole { client: 3, server: 3 }, PerRole { client: 100, server: 100 })
            );
            assert_eq!(
                (r.protocol, r.end, r.reset_by, r.from_sidecar),
                (protocol, EndReason::Closed, Some(ResetBy::Server), false)
            );
            assert_eq!(
                (r.warnings.as_slice(), r.flags.iter().collect::<Vec<_>>()),
                (&["w".to_string()][..], vec![Flag::Reset])
            );
            // The next report is built in this one's box: the parts it lacks must read absent,
            // not as this one's (TLS, then none).
            FlowReport::recycle(r);
        }
    }

    #[test]
    fn flags_list_in_flag_order_then_certificates_as_met() {
        let mut f = Flags::default();
        assert!(f.is_empty() && f.iter().next().is_none());
        for fl in [Flag::CertExpiring, Flag::Reset, Flag::CertExpired, Flag::Midstream, Flag::CertExpiring] {
            f.insert(fl);
        }
        f.insert(Flag::SniMismatch);
        let names: Vec<&str> = f.iter().map(Flag::as_str).collect();
        assert_eq!(names, ["midstream", "reset", "sni_mismatch", "cert_expiring", "cert_expired"]);
        assert!(f.any_cert() && f.contains(Flag::Reset) && !f.contains(Flag::Gap));
        let mut all = Flags::default();
        for &fl in Flag::ALL {
            all.insert(fl);
        }
        assert_eq!(all.iter().collect::<Vec<_>>(), Flag::ALL);
    }
}

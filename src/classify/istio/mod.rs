//! Istio's own signals on the wire, read from the TLS and HTTP facts: the SNI Envoy sets for
//! mesh traffic (`outbound_.<port>_.<subset>_.<fqdn>`), the ALPN tokens sidecars offer
//! (`istio-peer-exchange`, `istio`, `istio-http/1.0`, `istio-http/1.1`, `istio-h2`), and the
//! well-known Istio ports. Pure functions over strings and numbers; the only state is per-thread
//! memos of what was decoded last (SNIs and SPIFFE ids, peer-metadata and XFCC values: `NameMemo`,
//! `Memo`; lists of Istio's own ALPN names: `ALPN_LISTS`).

mod names;
mod peer_metadata;
pub(crate) use names::{parse_sni, parse_spiffe, IstioSni, SpiffeId};
pub(crate) use peer_metadata::{base64_decode, decode_peer_metadata, PeerMetadata, SHOWN_KEYS};

crate::wire::text_enum! {
    /// The direction part of an Istio SNI.
    pub(crate) enum SniDirection {
        /// `outbound_.…`: a client sidecar's name for the service it dials.
        Outbound => "outbound",
        /// `inbound_.…`.
        Inbound => "inbound",
    }
}

crate::wire::text_enum! {
    /// The application protocol a sidecar's ALPN tokens announce.
    pub(crate) enum AppProtocol {
        /// `istio-http/1.0`.
        Http10 => "http/1.0",
        /// `istio-http/1.1`.
        Http11 => "http/1.1",
        /// `istio-h2`.
        H2 => "h2",
        /// `istio` or `istio-peer-exchange` alone: TCP.
        Tcp => "tcp",
    }
}

crate::wire::text_enum! {
    /// Which leg of the mesh a flow is ([`crate::mesh::legs::leg`] decides; docs/istio.md).
    #[derive(Default)]
    pub(crate) enum Leg {
        /// Anything not on loopback (sidecar ↔ sidecar, node ↔ pod).
        #[default]
        PodNetwork => "pod_network",
        /// From 127.0.0.6: Envoy's inbound connection to the app.
        InboundPassthrough => "inbound_passthrough",
        /// To Envoy's outbound capture port 15001, or redirected there by iptables.
        AppToEnvoy => "app_to_envoy",
        /// To Envoy's own ports on loopback (admin, metrics, health).
        EnvoyLocal => "envoy_local",
        /// Another loopback connection (Envoy ↔ app).
        Loopback => "loopback",
        /// Ambient mode: TLS to ztunnel's HBONE port 15008 (mTLS, HTTP/2 CONNECT inside).
        Hbone => "hbone",
        /// Ambient mode: HBONE to an east-west gateway, towards a workload on another network:
        /// the CONNECT names a Service host (`svc.ns.svc.cluster.local:port`), not an
        /// `ip:port`, and carries a second HBONE connection to the destination (seen with a key
        /// log).
        DoubleHbone => "double_hbone",
        /// Ambient mode: the app's connection redirected to ztunnel's outbound port 15001
        /// (plaintext by design, inside the pod).
        AppToZtunnel => "app_to_ztunnel",
        /// Ambient mode: ztunnel's delivery to the app, on the pod's loopback interface from the
        /// client's (spoofed) address (plaintext by design).
        ZtunnelToApp => "ztunnel_to_app",
        /// Ambient mode: plaintext TCP on the pod's interface that is not HBONE, not a kubelet
        /// probe and not DNS: traffic ztunnel does not protect.
        Bypass => "bypass",
    }
}

impl Leg {
    /// A leg inside the pod, plaintext by design (not what the server accepts from the network).
    pub(crate) fn in_pod(self) -> bool {
        !matches!(self, Leg::PodNetwork | Leg::Hbone | Leg::DoubleHbone | Leg::Bypass)
    }

    /// HBONE, single or double.
    pub(crate) fn is_hbone(self) -> bool {
        matches!(self, Leg::Hbone | Leg::DoubleHbone)
    }

    /// The data plane a leg belongs to, when the leg alone says.
    pub(crate) fn mode(self) -> Option<Mode> {
        match self {
            Leg::Hbone | Leg::DoubleHbone | Leg::AppToZtunnel | Leg::ZtunnelToApp | Leg::Bypass => {
                Some(Mode::Ambient)
            }
            Leg::InboundPassthrough | Leg::EnvoyLocal => Some(Mode::Sidecar),
            // ztunnel's in-pod redirection uses the same port: named Envoy's unless the mode is
            // ambient (`--mesh-mode`), it shows neither.
            Leg::AppToEnvoy | Leg::PodNetwork | Leg::Loopback => None,
        }
    }
}

crate::wire::text_enum! {
    /// Istio's data plane a flow shows (the JSON `istio.mode`).
    pub(crate) enum Mode {
        /// Envoy sidecars: Istio SNI/ALPN, 127.0.0.6, Envoy's ports and headers.
        Sidecar => "sidecar",
        /// Ambient mode: ztunnel's HBONE and in-pod legs.
        Ambient => "ambient",
    }
}

/// One HTTP/2 CONNECT stream of an HBONE connection, read from the handshake decrypted with a
/// key log: where ztunnel tunnelled a connection to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HboneTarget {
    /// The HTTP/2 stream.
    pub(crate) stream: Option<u32>,
    /// `:authority`: the destination pod's `ip:port`.
    pub(crate) authority: crate::sanitize::WireBytes,
    /// The answer's `:status` (200: tunnel open; 401/403: refused by policy; 503...), when seen.
    pub(crate) status: Option<u16>,
    /// `forwarded: for=`: the app connection's source `ip:port` the client ztunnel tunnels.
    pub(crate) client: Option<crate::sanitize::WireBytes>,
    /// `forwarded: ...;host=`: the Service the app dialled (ztunnel adds it only for Services).
    pub(crate) service: Option<crate::sanitize::WireBytes>,
}

/// The `for` and `host` parameters of the first element of a `forwarded` header (RFC 7239), as
/// ztunnel writes it on HBONE CONNECT requests: `for="10.0.0.1:41001";host=svc.ns.svc.cluster.local`.
pub(crate) fn parse_forwarded(value: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let first = value.split(|&b| b == b',').next().unwrap_or_default();
    let (mut for_, mut host) = (None, None);
    for pair in first.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
        let (k, v) = (&pair[..eq], &pair[eq + 1..]);
        let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
        if k.eq_ignore_ascii_case(b"for") {
            for_ = Some(v);
        } else if k.eq_ignore_ascii_case(b"host") {
            host = Some(v);
        }
    }
    (for_, host)
}

crate::wire::text_enum! {
    /// The role of one of Istio's well-known ports.
    pub(crate) enum PortRole {
        /// 15000.
        EnvoyAdmin => "envoy admin (localhost)",
        /// 15001.
        OutboundCapture => "outbound capture",
        /// 15004.
        Debug => "debug (localhost)",
        /// 15006.
        InboundCapture => "inbound capture",
        /// 15008.
        Hbone => "HBONE mTLS tunnel",
        /// 15010.
        XdsPlaintext => "istiod xDS (plaintext)",
        /// 15012.
        XdsMtls => "istiod xDS (mTLS)",
        /// 15014.
        IstiodMonitoring => "istiod monitoring",
        /// 15017.
        IstiodWebhook => "istiod webhook",
        /// 15020.
        MergedMetrics => "merged metrics and app health",
        /// 15021.
        Health => "health",
        /// 15053.
        DnsProxy => "DNS proxy",
        /// 15090.
        EnvoyMetrics => "envoy metrics",
        /// 15443.
        MultiClusterGateway => "multi-cluster gateway",
    }
}

/// What the client's ALPN offer says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IstioAlpn {
    /// The Istio tokens offered, in order: Istio's own names borrowed (no allocation), any
    /// other `istio-…` copied.
    /// Shared by the flows offering the same list of Istio's own names ([`parse_alpn`]).
    pub(crate) tokens: AlpnTokens,
    /// The application protocol the tokens announce: `http/1.0`, `http/1.1`, `h2`, or `tcp`.
    pub(crate) app_protocol: Option<AppProtocol>,
}

/// Istio ALPN tokens, shared ([`IstioAlpn::tokens`]).
pub(crate) type AlpnTokens = std::sync::Arc<[std::borrow::Cow<'static, str>]>;

/// The ALPN tokens Istio's sidecars and ztunnel offer.
const ISTIO_ALPN: [&str; 5] =
    ["istio-peer-exchange", "istio", "istio-http/1.1", "istio-h2", "istio-http/1.0"];

/// Reads Istio tokens from an ALPN offer; `None` when there are none (not a sidecar client).
pub(crate) fn parse_alpn(offered: &[&[u8]]) -> Option<IstioAlpn> {
    // The prefix on the bytes first: a UTF-8 check of every token offered was ~120
    // instructions each (4,602 tokens on the mesh 30 MB slice).
    //
    // The tokens sidecars send are Istio's own names, borrowed: a `String` each was three
    // allocations per sidecar TLS flow, written at its end and freed after it was rendered
    // (bench/misses cycles~: mesh 30 MB 87.4 -> 87.2 M, default 30 MB 81.9 -> 81.7 M).
    //
    // A list of Istio's own names only (what sidecars offer, a few lists in a mesh) is shared
    // from a memo keyed by their indices: a `Vec` per sidecar TLS flow was an allocation,
    // written at its end and read cold when rendered. bench/misses one thread, cycles~:
    // default 30 MB 70.28 -> 69.74 M, mesh 30 MB 75.18 -> 74.69 M.
    let istio = || offered.iter().filter(|a| **a == b"istio" || a.starts_with(b"istio-"));
    let build = || -> AlpnTokens {
        istio()
            .filter_map(|a| match ISTIO_ALPN.iter().find(|t| t.as_bytes() == *a) {
                Some(t) => Some(std::borrow::Cow::Borrowed(*t)),
                None => std::str::from_utf8(a).ok().map(|t| std::borrow::Cow::Owned(t.to_string())),
            })
            .collect()
    };
    // Each own name's index + 1 in 3 bits (`ISTIO_ALPN` has 5), at most 10 names.
    let mut key: Option<u32> = Some(0);
    for (i, a) in istio().enumerate() {
        let own = ISTIO_ALPN.iter().position(|t| t.as_bytes() == *a);
        key = key.zip(own).filter(|_| i < 10).map(|(k, o)| k << 3 | (o as u32 + 1));
    }
    let tokens = match key {
        Some(0) => return None,
        Some(k) => ALPN_LISTS.with_borrow_mut(|m| match m.iter().find(|(mk, _)| *mk == k) {
            Some((_, t)) => t.clone(),
            None => {
                let t = build();
                if m.len() < MEMO_SLOTS {
                    m.push((k, t.clone()));
                } else {
                    m[k as usize % MEMO_SLOTS] = (k, t.clone());
                }
                t
            }
        }),
        None => build(),
    };
    if tokens.is_empty() {
        return None;
    }
    let app = tokens.iter().find_map(|t| match &**t {
        "istio-http/1.0" => Some(AppProtocol::Http10),
        "istio-http/1.1" => Some(AppProtocol::Http11),
        "istio-h2" => Some(AppProtocol::H2),
        _ => None,
    });
    let app = app.or_else(|| {
        tokens.iter().any(|t| t == "istio" || t == "istio-peer-exchange").then_some(AppProtocol::Tcp)
    });
    Some(IstioAlpn { tokens, app_protocol: app })
}

/// The Istio facts of one flow (the `istio` object of docs/json.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IstioReport {
    /// Leg of the mesh.
    pub(crate) leg: Leg,
    /// The data plane the flow shows, when it does.
    pub(crate) mode: Option<Mode>,
    /// HBONE: the CONNECT streams, when decrypted (`--keylog`); `None` on other legs.
    pub(crate) hbone: Option<Vec<HboneTarget>>,
    /// The SNI, parsed, when it is an Istio cluster name.
    pub(crate) sni: Option<IstioSni>,
    /// The client's Istio ALPN tokens: the client is a sidecar (or ztunnel).
    pub(crate) alpn: Option<IstioAlpn>,
    /// Role of the server port when it is one of Istio's own.
    pub(crate) port_role: Option<PortRole>,
    /// First decodable `x-envoy-peer-metadata` (plaintext HTTP): the peer workload's identity.
    pub(crate) peer_metadata: Option<std::sync::Arc<PeerMetadata>>,
    /// First `x-envoy-peer-metadata-id`, e.g. `sidecar~10.0.0.2~productpage-v1-abc.default~...`.
    pub(crate) peer_metadata_id: Option<Box<str>>,
    /// First `x-forwarded-client-cert`, parsed: on the Envoy → app leg it proves the request
    /// arrived over mTLS and names the client's SPIFFE identity.
    pub(crate) xfcc: XfccList,
    /// SPIFFE identity of the server: first URI SAN of its leaf certificate (TLS ≤ 1.2), else
    /// the XFCC `By=`.
    pub(crate) server_identity: Option<SpiffeId>,
    /// SPIFFE identity of the client: its certificate, else the XFCC `URI=`.
    pub(crate) client_identity: Option<SpiffeId>,
}

impl IstioReport {
    /// A report with only the leg.
    pub(crate) fn empty(leg: Leg) -> IstioReport {
        IstioReport {
            leg,
            mode: leg.mode(),
            hbone: None,
            sni: None,
            alpn: None,
            port_role: None,
            peer_metadata: None,
            peer_metadata_id: None,
            xfcc: XfccList::default(),
            server_identity: None,
            client_identity: None,
        }
    }
}

/// [`report_into`], returned (tests).
#[cfg(test)]
pub(crate) fn report<'a>(
    leg: Leg,
    sni: Option<&[u8]>,
    alpn_offered: &[&[u8]],
    server_port: u16,
    identities: (Option<&str>, Option<&str>),
    headers: (u8, impl Iterator<Item = (&'a [u8], &'a [u8])>),
) -> Option<IstioReport> {
    let mut out = None;
    report_into(&mut out, leg, sni, alpn_offered, server_port, identities, headers);
    out
}

/// Istio facts from a flow's SNI, ALPN offer, server port and HTTP headers (name, value),
/// written into `out` (the flow's report, in its box), `None` when there are none; returns the
/// facts written. Returned by value, the ~420 bytes were copied
/// twice more on their way into the box (here, then `mesh::facts`). bench/misses one thread,
/// cycles~: default 30 MB 70.39 -> 70.28 M, mesh 30 MB 75.36 -> 75.18 M.
pub(crate) fn report_into<'r, 'a>(
    out: &'r mut Option<IstioReport>,
    leg: Leg,
    sni: Option<&[u8]>,
    alpn_offered: &[&[u8]],
    server_port: u16,
    identities: (Option<&str>, Option<&str>),
    (present, headers): (u8, impl Iterator<Item = (&'a [u8], &'a [u8])>),
) -> Option<&'r mut IstioReport> {
    use crate::classify::http::{MARK_PEER_METADATA, MARK_PEER_METADATA_ID, MARK_XFCC};
    // The parts in locals, the report written only once they are known to be any: a flow
    // without Istio facts (55% on the default file) leaves its box's ~420 bytes unwritten.
    let sni = sni.and_then(parsed_sni);
    let alpn = parse_alpn(alpn_offered);
    let port_role = port_role(server_port);
    let mut server_identity = identities.0.and_then(parsed_spiffe);
    let mut client_identity = identities.1.and_then(parsed_spiffe);
    let mut peer_metadata = None;
    let mut peer_metadata_id: Option<Box<str>> = None;
    let mut xfcc = XfccList::default();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata") && peer_metadata.is_none() {
            peer_metadata = PEER_METADATA.with_borrow_mut(|m| {
                m.get_or(value, || decode_peer_metadata(value).map(std::sync::Arc::new))
            });
        } else if name.eq_ignore_ascii_case(b"x-envoy-peer-metadata-id") && peer_metadata_id.is_none() {
            peer_metadata_id = Some(lossy(value).into());
        } else if name.eq_ignore_ascii_case(b"x-forwarded-client-cert") && xfcc.is_empty() {
            xfcc = XFCC.with_borrow_mut(|m| m.get_or(value, || parse_xfcc(&lossy(value)).into()));
        }
        // The first of each is all that is read (a sidecar sends them on every request): done
        // once every field the flow's messages have (`present`) was found.
        let found = if peer_metadata.is_some() { MARK_PEER_METADATA } else { 0 }
            | if peer_metadata_id.is_some() { MARK_PEER_METADATA_ID } else { 0 }
            | if xfcc.is_empty() { 0 } else { MARK_XFCC };
        if present & !found == 0 {
            break;
        }
    }
    if client_identity.is_none() {
        client_identity = xfcc.last().and_then(|x| x.uri.as_deref()).and_then(parsed_spiffe);
    }
    if server_identity.is_none() {
        server_identity = xfcc.last().and_then(|x| x.by.as_deref()).and_then(parsed_spiffe);
    }
    let mut mode = leg.mode();
    if mode.is_none() && (sni.is_some() || alpn.is_some() || peer_metadata.is_some()) {
        mode = Some(Mode::Sidecar);
    }
    let any = matches!(
        leg,
        Leg::InboundPassthrough
            | Leg::AppToEnvoy
            | Leg::Hbone
            | Leg::DoubleHbone
            | Leg::AppToZtunnel
            | Leg::ZtunnelToApp
            | Leg::Bypass
    ) || sni.is_some()
        || alpn.is_some()
        || port_role.is_some()
        || peer_metadata.is_some()
        || peer_metadata_id.is_some()
        || !xfcc.is_empty()
        || server_identity.is_some()
        || client_identity.is_some();
    if !any {
        *out = None; // its tag only
        return None;
    }
    Some(out.insert(IstioReport {
        leg,
        mode,
        hbone: None,
        sni,
        alpn,
        port_role,
        peer_metadata,
        peer_metadata_id,
        xfcc,
        server_identity,
        client_identity,
    }))
}

/// Values a memo keeps, per kind and thread.
const MEMO_SLOTS: usize = 4;
/// Longest value a memo keeps (longer ones are decoded each time).
const MEMO_MAX_VALUE: usize = 8 * 1024;

/// The last few distinct header values decoded, with what they decoded to. A sidecar sends the
/// same peer metadata and the same XFCC on every request of every connection, and decoding one
/// cost ~5,000 (peer metadata) and ~10,000 (XFCC) instructions per flow (bench/RESULTS.md).
///
/// A slot's value is copied into the buffer of the one it replaces: a `Box` per value decoded
/// was an allocation, and a free of the value replaced, for every miss (every header of the
/// bench, whose flows each carry their own). bench/misses one thread, mesh 30 MB cycles~
/// 85.17 -> 85.02 M, default 30 MB 79.95 -> 79.82 M.
struct Memo<T> {
    slots: Vec<(Vec<u8>, T)>,
    next: usize,
}

impl<T: Clone> Memo<T> {
    const fn new() -> Memo<T> {
        Memo { slots: Vec::new(), next: 0 }
    }

    fn get_or(&mut self, value: &[u8], decode: impl FnOnce() -> T) -> T {
        if let Some((_, t)) = self.slots.iter().find(|(v, _)| **v == *value) {
            return t.clone();
        }
        let t = decode();
        if value.len() <= MEMO_MAX_VALUE {
            self.insert(|v| v.extend_from_slice(value), t.clone());
        }
        t
    }

    /// Keeps `value`'s decoding, replacing the oldest slot when all are used.
    fn put(&mut self, value: &[u8], t: T) {
        match self.slots.iter_mut().find(|(v, _)| **v == *value) {
            Some(slot) => slot.1 = t,
            None => self.insert(|v| v.extend_from_slice(value), t),
        }
    }

    /// Keeps a value not in the memo (`fill` writes it into an empty buffer) and its decoding.
    fn insert(&mut self, fill: impl FnOnce(&mut Vec<u8>), t: T) {
        if self.slots.len() < MEMO_SLOTS {
            let mut v = Vec::new();
            fill(&mut v);
            self.slots.push((v, t));
        } else {
            let slot = &mut self.slots[self.next];
            slot.0.clear();
            fill(&mut slot.0);
            slot.1 = t;
            self.next = (self.next + 1) % MEMO_SLOTS;
        }
    }
}

/// Names a [`NameMemo`] keeps, per kind and thread (all are forgotten when it is full).
const NAME_MEMO_ENTRIES: usize = 256;
/// Longest name a [`NameMemo`] keeps (longer ones are parsed each time).
const NAME_MEMO_MAX_LEN: usize = 512;

/// The names parsed (SNIs, SPIFFE identities) and what they parsed to, shared with every flow
/// that carries the same: a mesh has a few services and accounts, named on every connection
/// (the mesh 30 MB slice: 1,396 Istio SNIs, 80 distinct; 2,056 identities, 21 distinct), and a
/// parse was ~600 instructions and an allocation each. A map, not [`Memo`]'s four slots: the
/// bench's SNIs come round too far apart for them (77 of the 1,396 hit). Keyed with a random
/// seed (the names come from the network) drawn as [`crate::wire::KeyedState`] draws it:
/// `ahash::RandomState::new()` reads /dev/urandom in the static binary, and panicked in an empty
/// root (scripts/check-static); bounded by count and length. bench/misses one
/// thread (with the prefix checks before it, [`parsed_sni`]): mesh 30 MB cycles~ 84.89 -> 84.43 M
/// (Ir 156.42 -> 154.70 M), default 30 MB 79.69 -> 79.49 M. Without those checks the default
/// file's other SNIs, each its own, churned the map: 79.69 -> 79.96 M.
struct NameMemo<T> {
    map: crate::wire::KeyedMap<Box<[u8]>, T>,
}

impl<T: Clone> NameMemo<T> {
    fn new() -> NameMemo<T> {
        NameMemo { map: crate::wire::KeyedMap::default() }
    }

    fn get_or(&mut self, name: &[u8], parse: impl FnOnce() -> T) -> T {
        if let Some(t) = self.map.get(name) {
            return t.clone();
        }
        let t = parse();
        if name.len() <= NAME_MEMO_MAX_LEN {
            if self.map.len() >= NAME_MEMO_ENTRIES {
                self.map.clear();
            }
            self.map.insert(name.into(), t.clone());
        }
        t
    }
}

thread_local! {
    static SNIS: std::cell::RefCell<NameMemo<Option<IstioSni>>> = std::cell::RefCell::new(NameMemo::new());
    static SPIFFE_IDS: std::cell::RefCell<NameMemo<Option<SpiffeId>>> =
        std::cell::RefCell::new(NameMemo::new());
}

/// [`parse_sni`] of an SNI's bytes (`None` when not UTF-8), through this thread's memo.
fn parsed_sni(sni: &[u8]) -> Option<IstioSni> {
    // Other names (most of a capture outside a mesh, each its own) are not Istio's: not kept.
    if !(sni.starts_with(b"outbound_") || sni.starts_with(b"inbound_")) {
        return None;
    }
    SNIS.with_borrow_mut(|m| m.get_or(sni, || std::str::from_utf8(sni).ok().and_then(parse_sni)))
}

/// [`parse_spiffe`], through this thread's memo.
fn parsed_spiffe(uri: &str) -> Option<SpiffeId> {
    if !uri.starts_with("spiffe://") {
        return None;
    }
    SPIFFE_IDS.with_borrow_mut(|m| m.get_or(uri.as_bytes(), || parse_spiffe(uri)))
}

thread_local! {
    static PEER_METADATA: std::cell::RefCell<Memo<Option<std::sync::Arc<PeerMetadata>>>> =
        const { std::cell::RefCell::new(Memo::new()) };
    static XFCC: std::cell::RefCell<Memo<XfccList>> = const { std::cell::RefCell::new(Memo::new()) };
    /// Lists of Istio's own ALPN names ([`parse_alpn`]), by their key.
    static ALPN_LISTS: std::cell::RefCell<Vec<(u32, AlpnTokens)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes as text, invalid UTF-8 replaced; borrowed when valid. `String::from_utf8_lossy` checks
/// a character at a time, `from_utf8` has an ASCII fast path: ~800 against ~100 instructions
/// for a 100-byte header value.
fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// Keeps an `x-forwarded-client-cert` value and its parse (`parse_xfcc` of its text) for this
/// thread's next flow-end facts: the classifier parsed the flow's XFCC while the flow was open,
/// and its facts, built right after, read the same header again.
pub(crate) fn remember_xfcc(raw: Box<[u8]>, parsed: Vec<Xfcc>) {
    if raw.len() <= MEMO_MAX_VALUE {
        XFCC.with_borrow_mut(|m| m.put(&raw, parsed.into()));
    }
}

/// The elements of a flow's first `x-forwarded-client-cert`, shared with this thread's memo
/// (read as a slice): a sidecar sends the same header on every connection, and each flow's
/// copy of the parse was a `Vec` and up to four `String`s per element, allocated at the flow's
/// end, read cold when rendered, freed after. bench/misses mesh 30 MB: Ir 160.6 -> 160.4 M,
/// cycles~ 87.6 -> 87.5 M.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct XfccList(Option<std::sync::Arc<[Xfcc]>>);

impl std::ops::Deref for XfccList {
    type Target = [Xfcc];

    fn deref(&self) -> &[Xfcc] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl From<Vec<Xfcc>> for XfccList {
    /// No allocation for none (most flows).
    fn from(v: Vec<Xfcc>) -> XfccList {
        XfccList((!v.is_empty()).then(|| v.into()))
    }
}

/// One element of an `x-forwarded-client-cert` header (Envoy): who the client was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Xfcc {
    /// `By=`: the identity of the proxy that terminated mTLS (server side).
    pub(crate) by: Option<String>,
    /// `Hash=`: SHA-256 of the client certificate.
    pub(crate) hash: Option<String>,
    /// `Subject=`: client certificate subject.
    pub(crate) subject: Option<String>,
    /// `URI=`: the client's SPIFFE identity.
    pub(crate) uri: Option<String>,
    /// `DNS=` values.
    pub(crate) dns: Vec<String>,
}

/// Parses an XFCC header: elements separated by `,`, pairs by `;`, values optionally quoted
/// (Envoy's format). Returns the elements in order (the last is the nearest client).
///
/// Pairs are slices of `value`, found byte by byte (the separators are ASCII): built a char at
/// a time into a `String`, one header cost ~10,000 instructions, paid per flow and per request
/// marked with one (10M of 682M on the default bench file).
pub(crate) fn parse_xfcc(value: &str) -> Vec<Xfcc> {
    let mut out = Vec::new();
    let mut cur = Xfcc::default();
    let b = value.as_bytes();
    let (mut start, mut i, mut in_quotes) = (0, 0, false);
    // From one byte that matters to the next with memchr: byte by byte, the scan was ~1,450
    // instructions a header (1,060 headers, 1.5 M of 167 M on the mesh 30 MB slice). With the
    // other parsers of the flow-end facts (SPIFFE, SNI, ALPN, XFCC pairs), bench/misses mesh
    // 30 MB: cycles~ 93.4 M -> 91.8 M (Ir 169.6 M -> 164.8 M).
    while i < b.len() {
        let rest = &b[i..];
        let next = if in_quotes {
            memchr::memchr2(b'\\', b'"', rest)
        } else {
            memchr::memchr3(b'"', b';', b',', rest)
        };
        let Some(p) = next else { break };
        i += p;
        match b[i] {
            // Inside quotes a backslash takes the next byte as it is (an escaped quote).
            b'\\' => i += 1,
            b'"' => in_quotes = !in_quotes,
            c => {
                xfcc_pair(&value[start..i], &mut cur);
                if c == b',' {
                    out.push(std::mem::take(&mut cur));
                }
                start = i + 1;
            }
        }
        i += 1;
    }
    xfcc_pair(&value[start..], &mut cur);
    if cur != Xfcc::default() {
        out.push(cur);
    }
    out
}

/// One `key=value` pair of an XFCC element into `cur` (unknown keys and text without `=` are
/// ignored); the value unquoted, its `\"` unescaped.
fn xfcc_pair(pair: &str, cur: &mut Xfcc) {
    let Some(eq) = memchr::memchr(b'=', pair.as_bytes()) else { return };
    // The key first, by its length: the value of an unknown one is not looked at.
    let k = pair[..eq].trim();
    let slot = match k.len() {
        2 if k.eq_ignore_ascii_case("by") => &mut cur.by,
        3 if k.eq_ignore_ascii_case("uri") => &mut cur.uri,
        4 if k.eq_ignore_ascii_case("hash") => &mut cur.hash,
        7 if k.eq_ignore_ascii_case("subject") => &mut cur.subject,
        3 if k.eq_ignore_ascii_case("dns") => {
            cur.dns.push(xfcc_value(&pair[eq + 1..]));
            return;
        }
        _ => return,
    };
    *slot = Some(xfcc_value(&pair[eq + 1..]));
}

/// An XFCC value unquoted, its `\"` unescaped. A backslash is looked for first with memchr:
/// `str::contains` with a string builds a searcher (~200 instructions a pair).
fn xfcc_value(v: &str) -> String {
    let v = v.trim().trim_matches('"');
    if memchr::memchr(b'\\', v.as_bytes()).is_some() && v.contains("\\\"") {
        v.replace("\\\"", "\"")
    } else {
        v.to_string()
    }
}

/// Role of a well-known Istio port.
pub(crate) fn port_role(port: u16) -> Option<PortRole> {
    use PortRole::*;
    Some(match port {
        15000 => EnvoyAdmin,
        15001 => OutboundCapture,
        15004 => Debug,
        15006 => InboundCapture,
        15008 => Hbone,
        15010 => XdsPlaintext,
        15012 => XdsMtls,
        15014 => IstiodMonitoring,
        15017 => IstiodWebhook,
        15020 => MergedMetrics,
        15021 => Health,
        15053 => DnsProxy,
        15090 => EnvoyMetrics,
        15443 => MultiClusterGateway,
        _ => return None,
    })
}

/// Magic of the header that opens Istio's TCP metadata exchange (ALPN `istio-peer-exchange`):
/// `magic u32, length u32`, both big-endian, then `length` bytes of a protobuf `Any` (Envoy's
/// `istio.metadata_exchange` network filter).
const METADATA_EXCHANGE_MAGIC: [u8; 4] = [0x3d, 0x23, 0x04, 0x67];

/// The bytes after a whole metadata-exchange header and payload at the start of `data`; None
/// when `data` does not start with one (or holds only part of it).
pub(crate) fn skip_metadata_exchange(data: &[u8]) -> Option<&[u8]> {
    if data.get(..4)? != METADATA_EXCHANGE_MAGIC {
        return None;
    }
    let len = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    data.get(8usize.checked_add(len)?..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_xfcc_is_not_parsed_again() {
        let raw = b"By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/x/sa/y";
        let parsed = parse_xfcc(std::str::from_utf8(raw).unwrap());
        remember_xfcc(Box::from(&raw[..]), parsed.clone());
        let again = XFCC.with_borrow_mut(|m| m.get_or(raw, || panic!("parsed again")));
        assert_eq!(*again, *parsed);
        assert_eq!(again[0].uri.as_deref(), Some("spiffe://cluster.local/ns/x/sa/y"));
        // The facts read it through the memo: the same identities as a parse.
        let r = report(
            Leg::AppToEnvoy,
            None,
            &[],
            9080,
            (None, None),
            (crate::classify::http::MARK_XFCC, [(&b"x-forwarded-client-cert"[..], &raw[..])].into_iter()),
        );
        assert_eq!(r.map(|r| r.xfcc.to_vec()), Some(parsed));
    }

    #[test]
    fn an_offer_of_istio_names_shares_its_token_list() {
        let offer: [&[u8]; 3] = [b"istio-http/1.1", b"h2", b"istio"];
        let (a, b) = (parse_alpn(&offer).unwrap(), parse_alpn(&offer).unwrap());
        assert_eq!(*a.tokens, ["istio-http/1.1", "istio"]);
        assert_eq!(a.app_protocol, Some(AppProtocol::Http11));
        assert!(std::sync::Arc::ptr_eq(&a.tokens, &b.tokens), "one allocation");
        // Another order is another list; eleven names are not kept, but read the same.
        let other = parse_alpn(&[b"istio", b"istio-http/1.1"]).unwrap();
        assert_eq!(*other.tokens, ["istio", "istio-http/1.1"]);
        assert_eq!(other.app_protocol, Some(AppProtocol::Http11));
        let many = parse_alpn(&[&b"istio"[..]; 11]).unwrap();
        assert_eq!((many.tokens.len(), many.app_protocol), (11, Some(AppProtocol::Tcp)));
        assert_eq!(parse_alpn(&[b"h2", b"http/1.1"]), None);
    }

    #[test]
    fn names_through_the_memo_parse_as_without_it() {
        let snis: [&[u8]; 7] = [
            b"outbound_.9080_.v2_.reviews.default.svc.cluster.local",
            b"inbound_.0_._.reviews.default.svc.cluster.local",
            b"outbound_",
            b"outbound_.80_._.\xff.default.svc",
            b"inbound.80_._.a",
            b"example.com",
            b"",
        ];
        for sni in snis {
            let want = std::str::from_utf8(sni).ok().and_then(parse_sni);
            // The second from the memo (when kept).
            assert_eq!((parsed_sni(sni), parsed_sni(sni)), (want.clone(), want), "{sni:?}");
        }
        assert!(parsed_sni(snis[0]).is_some());
        for uri in
            ["spiffe://cluster.local/ns/default/sa/reviews", "spiffe://", "spiffe:/x/ns/a", "https://a", ""]
        {
            let want = parse_spiffe(uri);
            assert_eq!((parsed_spiffe(uri), parsed_spiffe(uri)), (want.clone(), want), "{uri}");
        }
        assert_eq!(
            parsed_spiffe("spiffe://td/ns/default/sa/x")
                .and_then(|s| s.namespace().map(String::from))
                .as_deref(),
            Some("default")
        );
    }

    #[test]
    fn the_name_memo_is_bounded() {
        let mut m = NameMemo::new();
        for i in 0..1_000u32 {
            assert_eq!(m.get_or(&i.to_le_bytes(), || i), i);
            assert!(m.map.len() <= NAME_MEMO_ENTRIES);
        }
        assert_eq!(m.get_or(&999u32.to_le_bytes(), || panic!("parsed again")), 999);
        let long = vec![b'a'; NAME_MEMO_MAX_LEN + 1];
        assert_eq!(m.get_or(&long, || 7), 7);
        assert!(!m.map.contains_key(&long[..]));
    }

    #[test]
    fn xfcc_elements() {
        let x = parse_xfcc(
            "By=spiffe://cluster.local/ns/default/sa/reviews;Hash=4c6a;Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/productpage",
        );
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].uri.as_deref(), Some("spiffe://cluster.local/ns/default/sa/productpage"));
        assert_eq!(x[0].by.as_deref(), Some("spiffe://cluster.local/ns/default/sa/reviews"));
        assert_eq!(x[0].subject.as_deref(), Some(""));
        let two = parse_xfcc("By=a;URI=b,By=c;Subject=\"CN=x,O=y\";URI=d");
        assert_eq!(two.len(), 2);
        assert_eq!((two[1].subject.as_deref(), two[1].uri.as_deref()), (Some("CN=x,O=y"), Some("d")));
    }

    /// Counts `digits` up in base `base`, one digit longer (all zeros) after the last number of
    /// a length; false after the last number of `max_len` digits. The exhaustive tests below
    /// walk every string of up to `max_len` pieces with it.
    pub(super) fn next_digits(digits: &mut Vec<usize>, base: usize, max_len: usize) -> bool {
        match digits.iter().rposition(|&i| i + 1 < base) {
            Some(p) => {
                digits[p] += 1;
                digits[p + 1..].iter_mut().for_each(|i| *i = 0);
                true
            }
            None if digits.len() < max_len => {
                *digits = vec![0; digits.len() + 1];
                true
            }
            None => false,
        }
    }

    /// The char-by-char parser [`parse_xfcc`] replaced.
    fn parse_xfcc_before(value: &str) -> Vec<Xfcc> {
        let mut out = Vec::new();
        let mut cur = Xfcc::default();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut chars = value.chars().peekable();
        let finish_pair = |field: &mut String, cur: &mut Xfcc| {
            if let Some((k, v)) = field.split_once('=') {
                let v = v.trim().trim_matches('"').replace("\\\"", "\"");
                match k.trim().to_ascii_lowercase().as_str() {
                    "by" => cur.by = Some(v),
                    "hash" => cur.hash = Some(v),
                    "subject" => cur.subject = Some(v),
                    "uri" => cur.uri = Some(v),
                    "dns" => cur.dns.push(v),
                    _ => {}
                }
            }
            field.clear();
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' if in_quotes => {
                    field.push(c);
                    if let Some(n) = chars.next() {
                        field.push(n);
                    }
                }
                '"' => {
                    in_quotes = !in_quotes;
                    field.push(c);
                }
                ';' if !in_quotes => finish_pair(&mut field, &mut cur),
                ',' if !in_quotes => {
                    finish_pair(&mut field, &mut cur);
                    out.push(std::mem::take(&mut cur));
                }
                c => field.push(c),
            }
        }
        finish_pair(&mut field, &mut cur);
        if cur != Xfcc::default() {
            out.push(cur);
        }
        out
    }

    #[test]
    fn xfcc_parses_as_the_char_by_char_parser_did() {
        // Every string of up to five of these after each prefix: quotes, escapes, separators,
        // spaces and a two-byte character wherever they can be.
        let alphabet = ['U', '=', ';', ',', '"', '\\', ' ', '\u{e9}', 'x'];
        for prefix in ["", "uri=", "By=\"", "DNS= ", "Subject=\"a\\\"b"] {
            let mut s = String::from(prefix);
            let mut idx: Vec<usize> = Vec::new();
            loop {
                s.truncate(prefix.len());
                s.extend(idx.iter().map(|&i| alphabet[i]));
                assert_eq!(parse_xfcc(&s), parse_xfcc_before(&s), "{s:?}");
                // Next string: count in base 9, one digit longer after the last of a length.
                if !next_digits(&mut idx, alphabet.len(), 5) {
                    break;
                }
            }
        }
    }

    #[test]
    fn istio_alpn_tokens() {
        let a = parse_alpn(&[b"istio-peer-exchange", b"istio"]).unwrap();
        assert_eq!(a.app_protocol, Some(AppProtocol::Tcp));
        let a = parse_alpn(&[b"istio-http/1.1", b"istio", b"h2"]).unwrap();
        assert_eq!((a.tokens.len(), a.app_protocol), (2, Some(AppProtocol::Http11)));
        // Istio's names borrowed, any other `istio-…` (or a near miss) copied, in order.
        let a =
            parse_alpn(&[b"istio-h2", b"istio-x", b"istio-h2 ", b"istio-http/1.0", b"istio-\xff"]).unwrap();
        assert_eq!(*a.tokens, ["istio-h2", "istio-x", "istio-h2 ", "istio-http/1.0"]);
        let borrowed: Vec<bool> =
            a.tokens.iter().map(|t| matches!(t, std::borrow::Cow::Borrowed(_))).collect();
        assert_eq!((borrowed, a.app_protocol), (vec![true, false, false, true], Some(AppProtocol::H2)));
        assert_eq!(parse_alpn(&[b"h2", b"http/1.1"]), None);
        assert_eq!(port_role(15006), Some(PortRole::InboundCapture));
    }

    #[test]
    fn metadata_exchange_header_is_skipped() {
        let mut d = vec![0x3d, 0x23, 0x04, 0x67, 0, 0, 0, 3, 1, 2, 3];
        d.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(skip_metadata_exchange(&d), Some(&b"GET / HTTP/1.1\r\n"[..]));
        assert_eq!(skip_metadata_exchange(&d[..10]), None, "cut short");
        assert_eq!(skip_metadata_exchange(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(skip_metadata_exchange(&[0x3d, 0x23, 0x04, 0x67, 0xff, 0xff, 0xff, 0xff]), None);
    }
}

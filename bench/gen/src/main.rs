//! Deterministic synthetic capture generator for the tlspeek benchmark.
//!
//!     gen OUT.pcap SIZE_MB [--profile default|mesh] [--seed N] [--pki DIR] [--concurrency N]
//!         [--h2 SHARE] [--alpha A]
//!
//! Writes a classic pcap (microseconds, LINKTYPE_ETHERNET) of about SIZE_MB (10^6 bytes) of mixed
//! traffic — TLS 1.3, TLS 1.2 (real certificate chains read from PEM files), plaintext HTTP/1.1
//! keep-alive, other TCP, some DNS over UDP and ARP — with thousands of interleaved flows, and
//! `OUT.pcap.truth.jsonl`: one JSON line per TCP flow with what a correct reader must report.
//! Same seed, size and profile give byte-identical output. The profile (`Profile`) sets the
//! traffic mix and flow shape; `default` is the original benchmark's and must stay byte-for-byte
//! what it was (its RNG draws are untouched), `mesh` is the shape of issue 22. No dependencies: the pcap writer, the RNG
//! (splitmix64) and the PEM decoder are here.

mod h2;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv6Addr;

// ---------------------------------------------------------------------------------------------
// RNG

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut r = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        r.next();
        r
    }
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((self.next() as u128 * n as u128) >> 64) as u64
        }
    }
    /// a..=b
    fn range(&mut self, a: u64, b: u64) -> u64 {
        a + self.below(b - a + 1)
    }
    fn urange(&mut self, a: usize, b: usize) -> usize {
        self.range(a as u64, b as u64) as usize
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len() as u64) as usize]
    }
    fn fill(&mut self, buf: &mut [u8]) {
        let mut it = buf.chunks_exact_mut(8);
        for c in &mut it {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = it.into_remainder();
        if !rest.is_empty() {
            let v = self.next().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
    fn fill_text(&mut self, buf: &mut [u8]) {
        const A: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,";
        let mut i = 0;
        while i < buf.len() {
            let mut v = self.next();
            for _ in 0..8 {
                if i == buf.len() {
                    break;
                }
                buf[i] = A[(v & 63) as usize];
                v >>= 8;
                i += 1;
            }
        }
    }
    fn hex(&mut self, n: usize) -> String {
        const H: &[u8] = b"0123456789abcdef";
        (0..n).map(|_| H[self.below(16) as usize] as char).collect()
    }
    /// Exponential with the given mean, capped.
    fn exp(&mut self, mean: f64, cap: f64) -> f64 {
        (-(1.0 - self.f64()).ln() * mean).min(cap)
    }
}

// ---------------------------------------------------------------------------------------------
// PEM / base64

fn b64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn b64_encode(d: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in d.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn read_pem_chain(path: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut certs = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let l = line.trim();
        if l == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if l == "-----END CERTIFICATE-----" {
            if let Some(b) = cur.take() {
                certs.push(b64_decode(&b));
            }
        } else if let Some(b) = cur.as_mut() {
            b.push_str(l);
        }
    }
    if certs.is_empty() {
        die(&format!("{path}: no certificate"));
    }
    certs
}

fn die(msg: &str) -> ! {
    eprintln!("gen: {msg}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

fn u16be(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u16).to_be_bytes());
}
fn u24be(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u32).to_be_bytes()[1..]);
}
/// A TLS record (type, version 0x0303 unless given) around `body`.
fn record(ty: u8, ver: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 5);
    v.push(ty);
    v.extend_from_slice(&ver.to_be_bytes());
    u16be(&mut v, body.len());
    v.extend_from_slice(body);
    v
}
/// A handshake message (type, 24-bit length).
fn hs(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.push(ty);
    u24be(&mut v, body.len());
    v.extend_from_slice(body);
    v
}
fn ext(v: &mut Vec<u8>, ty: u16, body: &[u8]) {
    u16be(v, ty as usize);
    u16be(v, body.len());
    v.extend_from_slice(body);
}
fn alpn_body(list: &[&str]) -> Vec<u8> {
    let mut l = Vec::new();
    for p in list {
        l.push(p.len() as u8);
        l.extend_from_slice(p.as_bytes());
    }
    let mut b = Vec::new();
    u16be(&mut b, l.len());
    b.extend_from_slice(&l);
    b
}

// ---------------------------------------------------------------------------------------------
// TLS messages

fn client_hello(r: &mut Rng, sni: Option<&str>, alpn: &[&str], versions: &[u16]) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    b.extend_from_slice(&[3, 3]);
    b.extend_from_slice(&r.bytes(32));
    b.push(32);
    b.extend_from_slice(&r.bytes(32));
    let suites: &[u16] = if versions.contains(&0x0304) {
        &[
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c,
            0x009d, 0x002f, 0x0035,
        ]
    } else {
        &[
            0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            0x000a,
        ]
    };
    u16be(&mut b, suites.len() * 2);
    for s in suites {
        u16be(&mut b, *s as usize);
    }
    b.extend_from_slice(&[1, 0]);
    let mut e = Vec::with_capacity(300);
    if let Some(name) = sni {
        let mut s = Vec::new();
        u16be(&mut s, name.len() + 3);
        s.push(0);
        u16be(&mut s, name.len());
        s.extend_from_slice(name.as_bytes());
        ext(&mut e, 0x0000, &s);
    }
    ext(&mut e, 0x0017, &[]);
    ext(&mut e, 0xff01, &[0]);
    ext(&mut e, 0x000a, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    ext(&mut e, 0x000b, &[1, 0]);
    ext(&mut e, 0x0023, &[]);
    if !alpn.is_empty() {
        ext(&mut e, 0x0010, &alpn_body(alpn));
    }
    ext(&mut e, 0x000d, &[0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1]);
    if !versions.is_empty() {
        let mut sv = vec![(versions.len() * 2) as u8];
        for v in versions {
            sv.extend_from_slice(&v.to_be_bytes());
        }
        ext(&mut e, 0x002b, &sv);
    }
    if versions.contains(&0x0304) {
        ext(&mut e, 0x002d, &[1, 1]);
        let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
        ks.extend_from_slice(&r.bytes(32));
        ext(&mut e, 0x0033, &ks);
    }
    u16be(&mut b, e.len());
    b.extend_from_slice(&e);
    record(22, 0x0301, &hs(1, &b))
}

fn server_hello(r: &mut Rng, cipher: u16, tls13: bool, alpn_sel: Option<&str>) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&[3, 3]);
    b.extend_from_slice(&r.bytes(32));
    b.push(32);
    b.extend_from_slice(&r.bytes(32));
    u16be(&mut b, cipher as usize);
    b.push(0);
    let mut e = Vec::new();
    if tls13 {
        ext(&mut e, 0x002b, &[3, 4]);
        let mut ks = vec![0x00, 0x1d, 0, 32];
        ks.extend_from_slice(&r.bytes(32));
        ext(&mut e, 0x0033, &ks);
    } else {
        ext(&mut e, 0xff01, &[0]);
        ext(&mut e, 0x0017, &[]);
        if let Some(a) = alpn_sel {
            ext(&mut e, 0x0010, &alpn_body(&[a]));
        }
        ext(&mut e, 0x000b, &[1, 0]);
    }
    u16be(&mut b, e.len());
    b.extend_from_slice(&e);
    hs(2, &b)
}

fn certificate_msg(chain: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = chain.iter().map(|c| c.len() + 3).sum();
    let mut b = Vec::with_capacity(total + 3);
    u24be(&mut b, total);
    for c in chain {
        u24be(&mut b, c.len());
        b.extend_from_slice(c);
    }
    hs(11, &b)
}

fn chain_size(chain: &[Vec<u8>]) -> usize {
    chain.iter().map(|c| c.len()).sum()
}

const CCS: [u8; 6] = [20, 3, 3, 0, 1, 1];

// ---------------------------------------------------------------------------------------------
// Flow scripts

#[derive(Clone, Copy, PartialEq)]
enum Gap {
    Now,
    Reply,
    Think,
}

enum Chunk {
    Lit(Vec<u8>),
    Rand(usize),
    Text(usize),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Lit(v) => v.len(),
            Chunk::Rand(n) | Chunk::Text(n) => *n,
        }
    }
}

struct Msg {
    dir: usize, // 0 client -> server, 1 server -> client
    gap: Gap,
    chunks: Vec<Chunk>,
    first_seg: Option<usize>,
}

impl Msg {
    fn new(dir: usize, gap: Gap) -> Self {
        Msg { dir, gap, chunks: Vec::new(), first_seg: None }
    }
    fn lit(mut self, v: Vec<u8>) -> Self {
        self.chunks.push(Chunk::Lit(v));
        self
    }
    fn push_lit(&mut self, v: Vec<u8>) {
        self.chunks.push(Chunk::Lit(v));
    }
    fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }
    /// TLS application_data records carrying `n` bytes of random ciphertext in total.
    fn app_records(&mut self, mut n: usize) {
        while n > 0 {
            let l = n.min(16384 + 17);
            let mut h = vec![23, 3, 3];
            u16be(&mut h, l);
            self.chunks.push(Chunk::Lit(h));
            self.chunks.push(Chunk::Rand(l));
            n -= l;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Tls13,
    Tls12,
    Http,
    Other,
    H2c,
}

struct Truth {
    protocol: &'static str,
    version: Option<&'static str>,
    sni: Option<String>,
    alpn: Option<Vec<String>>,
    mtls: Option<&'static str>,
    requests: Option<usize>,
}

struct Pki {
    /// Istio workload chains servers and clients present; one each in the default profile, so
    /// picking one draws nothing from the RNG there.
    istio_server: Vec<Vec<Vec<u8>>>,
    istio_client: Vec<Vec<Vec<u8>>>,
    api: Vec<Vec<u8>>,
    big: Vec<Vec<u8>>,
}

/// One of `chains`: the only one without an RNG draw (keeps the default profile's stream).
fn pick_chain<'a>(r: &mut Rng, chains: &'a [Vec<Vec<u8>>]) -> &'a [Vec<u8>] {
    if chains.len() == 1 {
        &chains[0]
    } else {
        r.pick(chains).as_slice()
    }
}

/// The traffic mix and flow shape. Every field of `DEFAULT` is the literal the generator used
/// before profiles existed, drawn the same way, so the default file is unchanged byte for byte.
struct Profile {
    name: &'static str,
    /// Flows open at once (after the ramp-up).
    concurrency: usize,
    /// Application bytes per flow: Pareto with this shape, from `min_bytes` to `max_bytes`.
    alpha: f64,
    min_bytes: f64,
    max_bytes: f64,
    /// Kinds by one roll: below `tls13` TLS 1.3, below `tls12` TLS 1.2, the next `h2` h2c,
    /// below `http` HTTP/1.1, the rest other TCP.
    tls13: f64,
    tls12: f64,
    h2: f64,
    http: f64,
    /// Share of TLS flows that are Istio's (SNI, ALPN, client certificate).
    istio: f64,
    /// Requests per HTTP/1.1 or h2c connection: 1 + u² × this, capped at it.
    max_requests: usize,
    /// TLS request/response exchanges per flow: at most 1 + bytes / 3000, capped at this.
    max_exchanges: usize,
    /// Share of h2c connections that carry gRPC, and of HTTP connections that are Envoy's.
    grpc: f64,
    envoy: f64,
    /// Pause before a client's next request on a connection: exponential, mean and cap in ns.
    think: (f64, f64),
    /// Load the extra Istio workload chains (several server and client identities).
    many_identities: bool,
}

const DEFAULT: Profile = Profile {
    name: "default",
    concurrency: 3500,
    alpha: 0.98,
    min_bytes: 1000.0,
    max_bytes: 5_000_000.0,
    tls13: 0.40,
    tls12: 0.61,
    h2: 0.0,
    http: 0.88,
    istio: 0.5,
    max_requests: 20,
    max_exchanges: 20,
    grpc: 0.5,
    envoy: 0.6,
    think: (25e6, 400e6),
    many_identities: false,
};

/// Issue 22's capture: about 38k flows per GB, 2,000 open at once, as a sidecar sees a mesh:
/// mostly Istio mTLS between several workload identities, connection pools carrying more
/// requests and larger bodies, gRPC over h2c on the Envoy -> app legs.
const MESH: Profile = Profile {
    name: "mesh",
    concurrency: 2000,
    alpha: 0.98,
    min_bytes: 1420.0,
    max_bytes: 5_000_000.0,
    tls13: 0.36,
    tls12: 0.56,
    h2: 0.20,
    http: 0.95,
    istio: 0.8,
    max_requests: 40,
    max_exchanges: 40,
    grpc: 0.7,
    envoy: 0.8,
    think: (60e6, 1e9),
    many_identities: true,
};

const ISTIO_SVCS: &[(&str, &str, u16)] = &[
    ("reviews", "default", 9080),
    ("ratings", "default", 9080),
    ("details", "default", 9080),
    ("productpage", "default", 9080),
    ("cart", "shop", 8080),
    ("checkout", "shop", 8080),
    ("payments", "shop", 8443),
    ("inventory", "shop", 8080),
    ("orders", "shop", 3000),
    ("users", "accounts", 8080),
    ("auth", "accounts", 9000),
    ("search", "catalog", 5000),
    ("recommendations", "catalog", 8080),
    ("shipping", "shop", 50051),
    ("currency", "shop", 7000),
    ("frontend", "web", 8080),
    ("email", "shop", 5000),
    ("catalog", "catalog", 3550),
    ("ledger", "bank", 8080),
    ("metrics-api", "observability", 9090),
];
const SUBSETS: &[&str] = &["", "", "", "v1", "v2", "v3"];
const EXT_NAMES: &[&str] = &["example.com", "example.org", "example.net", "svc.example.io"];
const EXT_PREFIX: &[&str] = &["api", "login", "cdn", "static", "www", "auth", "upload"];
const UAS: &[&str] = &[
    "Envoy/HC",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "okhttp/4.12.0",
    "Java/17.0.9",
];
const PATHS: &[&str] = &[
    "/reviews/",
    "/ratings/",
    "/details/",
    "/api/v1/cart/",
    "/api/v1/orders/",
    "/api/v2/users/",
    "/healthz",
    "/productpage?u=normal&id=",
    "/search?q=item",
    "/v1/payments/",
    "/static/app.js?v=",
    "/metrics",
];

/// A protobuf Struct {NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, ISTIO_VERSION} (Istio's
/// x-envoy-peer-metadata), base64.
fn peer_metadata(r: &mut Rng, svc: &str, ns: &str) -> String {
    fn entry(out: &mut Vec<u8>, k: &str, v: &str) {
        let mut val = vec![0x1a, v.len() as u8];
        val.extend_from_slice(v.as_bytes());
        let mut e = vec![0x0a, k.len() as u8];
        e.extend_from_slice(k.as_bytes());
        e.push(0x12);
        e.push(val.len() as u8);
        e.extend_from_slice(&val);
        out.push(0x0a);
        out.push(e.len() as u8);
        out.extend_from_slice(&e);
    }
    let mut s = Vec::new();
    let pod = format!("{svc}-v1-{}-{}", r.hex(10), r.hex(5));
    entry(&mut s, "NAME", &pod);
    entry(&mut s, "NAMESPACE", ns);
    entry(&mut s, "WORKLOAD_NAME", &format!("{svc}-v1"));
    entry(&mut s, "CLUSTER_ID", "Kubernetes");
    entry(&mut s, "ISTIO_VERSION", "1.22.1");
    b64_encode(&s)
}

fn http_request(r: &mut Rng, host: &str, envoy: bool, peer: Option<(&str, &str)>) -> Vec<u8> {
    let post = r.chance(0.25);
    let path = format!("{}{}", r.pick(PATHS), r.below(1000));
    let lower = envoy || r.chance(0.6);
    let h = |n: &str| if lower { n.to_ascii_lowercase() } else { n.to_string() };
    let mut s = format!("{} {} HTTP/1.1\r\n", if post { "POST" } else { "GET" }, path);
    s += &format!("{}: {}\r\n", h("Host"), host);
    s += &format!("{}: {}\r\n", h("User-Agent"), r.pick(UAS));
    s += &format!("{}: {}\r\n", h("Accept"), if r.chance(0.5) { "*/*" } else { "application/json" });
    s += &format!("x-request-id: {}-{}-4{}-a{}-{}\r\n", r.hex(8), r.hex(4), r.hex(3), r.hex(3), r.hex(12));
    if envoy || r.chance(0.5) {
        s += &format!("x-b3-traceid: {}\r\nx-b3-spanid: {}\r\nx-b3-sampled: 1\r\n", r.hex(32), r.hex(16));
    }
    if envoy {
        s += "x-forwarded-proto: http\r\n";
        if let Some((svc, ns)) = peer {
            s += &format!("x-envoy-peer-metadata: {}\r\n", peer_metadata(r, svc, ns));
            s += &format!(
                "x-envoy-peer-metadata-id: sidecar~10.244.1.{}~{svc}-v1.{ns}~{ns}.svc.cluster.local\r\n",
                r.range(2, 250)
            );
        }
    }
    if r.chance(0.2) {
        let n = r.urange(24, 90);
        s += &format!("{}: Bearer {}\r\n", h("Authorization"), b64_encode(&r.bytes(n)));
    }
    let mut body = Vec::new();
    if post {
        let n = r.urange(20, 2000);
        body = vec![0u8; n];
        r.fill_text(&mut body);
        s += &format!("{}: application/json\r\n{}: {}\r\n", h("Content-Type"), h("Content-Length"), n);
    }
    s += "\r\n";
    let mut v = s.into_bytes();
    v.extend_from_slice(&body);
    v
}

fn http_response(r: &mut Rng, m: &mut Msg, body: usize, envoy: bool) {
    let chunked = r.chance(0.2);
    let mut s = String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
    if chunked {
        s += "transfer-encoding: chunked\r\n";
    } else {
        s += &format!("content-length: {body}\r\n");
    }
    s += &format!("date: Mon, 02 Mar 2026 {:02}:{:02}:{:02} GMT\r\n", r.below(24), r.below(60), r.below(60));
    if envoy {
        s += &format!("server: envoy\r\nx-envoy-upstream-service-time: {}\r\n", r.range(1, 80));
    } else {
        s += "server: nginx/1.25.3\r\n";
    }
    s += "\r\n";
    m.push_lit(s.into_bytes());
    if chunked {
        let mut left = body;
        while left > 0 {
            let n = left.min(r.urange(1000, 8192));
            m.push_lit(format!("{n:x}\r\n").into_bytes());
            m.chunks.push(Chunk::Text(n));
            m.push_lit(b"\r\n".to_vec());
            left -= n;
        }
        m.push_lit(b"0\r\n\r\n".to_vec());
    } else if body > 0 {
        m.chunks.push(Chunk::Text(body));
    }
}

/// Heavy-tailed application bytes: truncated Pareto (default profile: 1 KB to 5 MB).
fn pareto(r: &mut Rng, p: &Profile) -> usize {
    let u = 1.0 - r.f64();
    ((p.min_bytes / u.powf(1.0 / p.alpha)).min(p.max_bytes)) as usize
}

/// Splits `total` into `k` random positive parts.
fn split(r: &mut Rng, total: usize, k: usize) -> Vec<usize> {
    let w: Vec<f64> = (0..k).map(|_| 0.2 + r.f64()).collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|x| ((total as f64) * x / sum) as usize + 1).collect()
}

/// TLS application data exchanges (client request records, server response records).
fn tls_exchanges(r: &mut Rng, msgs: &mut Vec<Msg>, app: usize, first_gap: Gap, max: usize) {
    let k = r.urange(1, (1 + app / 3000).min(max));
    let resp = split(r, app, k);
    for (i, sz) in resp.into_iter().enumerate() {
        let mut c = Msg::new(0, if i == 0 { first_gap } else { Gap::Think });
        c.app_records(r.urange(60, 1400));
        msgs.push(c);
        let mut s = Msg::new(1, Gap::Reply);
        s.app_records(sz + 17);
        msgs.push(s);
    }
}

struct Plan {
    kind: Kind,
    msgs: Vec<Msg>,
    truth: Truth,
    server_ep: Server,
}

#[derive(Clone, Copy)]
enum Server {
    Istio(usize),
    External(usize),
    Ssh,
    Db(u16),
}

fn plan_flow(r: &mut Rng, pki: &Pki, midstream: bool, p: &Profile) -> Plan {
    let roll = r.f64();
    let kind = if roll < p.tls13 {
        Kind::Tls13
    } else if roll < p.tls12 {
        Kind::Tls12
    } else if roll < p.tls12 + p.h2 {
        Kind::H2c
    } else if roll < p.http {
        Kind::Http
    } else {
        Kind::Other
    };
    let app = pareto(r, p);
    let mut msgs = Vec::new();
    let mut truth =
        Truth { protocol: "unknown", version: None, sni: None, alpn: None, mtls: None, requests: None };
    let server_ep;
    match kind {
        Kind::Tls13 | Kind::Tls12 => {
            let tls13 = kind == Kind::Tls13;
            let istio = r.chance(p.istio);
            let (sni, alpn): (String, Vec<&str>);
            let server_chain: &[Vec<u8>];
            let client_chain: Option<&[Vec<u8>]>; // Some(empty) = empty Certificate
            if istio {
                let si = r.below(ISTIO_SVCS.len() as u64) as usize;
                let (svc, ns, port) = ISTIO_SVCS[si];
                sni = format!("outbound_.{port}_.{}_.{svc}.{ns}.svc.cluster.local", r.pick(SUBSETS));
                alpn = match r.below(10) {
                    0 => vec!["istio-peer-exchange", "istio-h2", "istio"],
                    1 => vec!["istio-peer-exchange", "istio"],
                    _ => vec!["istio-peer-exchange", "istio-http/1.1", "istio"],
                };
                server_chain = pick_chain(r, &pki.istio_server);
                client_chain = Some(pick_chain(r, &pki.istio_client));
                server_ep = Server::Istio(si);
            } else {
                let n = r.below(60) as usize;
                sni = format!("{}{}.{}", r.pick(EXT_PREFIX), n, EXT_NAMES[n % EXT_NAMES.len()]);
                alpn = match r.below(10) {
                    0 => vec![],
                    1 => vec!["http/1.1"],
                    _ => vec!["h2", "http/1.1"],
                };
                server_chain = if r.chance(0.25) { &pki.big } else { &pki.api };
                client_chain = if r.chance(0.05) { Some(&[]) } else { None };
                server_ep = Server::External(n);
            }
            truth.protocol = "tls";
            if midstream {
                tls_exchanges(r, &mut msgs, app, Gap::Now, p.max_exchanges);
            } else {
                truth.version = Some(if tls13 { "TLS 1.3" } else { "TLS 1.2" });
                truth.sni = Some(sni.clone());
                truth.alpn = Some(alpn.iter().map(|s| s.to_string()).collect());
                let versions: Vec<u16> = if tls13 || r.chance(0.5) { vec![0x0304, 0x0303] } else { vec![] };
                let mut ch = Msg::new(0, Gap::Now).lit(client_hello(r, Some(&sni), &alpn, &versions));
                if r.chance(0.05) {
                    let l = ch.len();
                    ch.first_seg = Some(r.urange(5, l - 5));
                }
                msgs.push(ch);
                if tls13 {
                    let cipher = if r.chance(0.6) { 0x1301 } else { 0x1302 };
                    let h = if cipher == 0x1301 { 32 } else { 48 };
                    let mut s =
                        Msg::new(1, Gap::Reply).lit(record(22, 0x0303, &server_hello(r, cipher, true, None)));
                    s.push_lit(CCS.to_vec());
                    let flight = chain_size(server_chain) + r.urange(250, 350);
                    if r.chance(0.7) {
                        s.app_records(flight);
                    } else {
                        // EncryptedExtensions, Certificate, CertificateVerify, Finished in own records
                        let ee = r.urange(30, 90);
                        let fin = 4 + h + 17;
                        let cv = r.urange(90, 280).min(flight - ee - fin - 100);
                        for n in [ee, flight - ee - cv - fin, cv, fin] {
                            s.app_records(n);
                        }
                    }
                    msgs.push(s);
                    let mut c = Msg::new(0, Gap::Reply).lit(CCS.to_vec());
                    let rec = match client_chain {
                        Some(ch) if !ch.is_empty() => {
                            truth.mtls = Some("likely");
                            chain_size(ch) + 150
                        }
                        Some(_) => {
                            truth.mtls = Some("unlikely");
                            4 + h + 8 + 17
                        }
                        None => {
                            truth.mtls = Some("unlikely");
                            4 + h + 17
                        }
                    };
                    c.app_records(rec);
                    msgs.push(c);
                    let mut nst = Msg::new(1, Gap::Reply);
                    for _ in 0..r.below(3) {
                        nst.app_records(r.urange(180, 300));
                    }
                    if nst.len() > 0 {
                        msgs.push(nst);
                    }
                    tls_exchanges(r, &mut msgs, app, Gap::Now, p.max_exchanges);
                } else {
                    let cipher = *r.pick(&[0xc02fu16, 0xc02b, 0xc030]);
                    let sel = alpn.first().copied();
                    let mut hsm = vec![server_hello(r, cipher, false, sel), certificate_msg(server_chain)];
                    let mut ske = vec![3, 0x00, 0x1d, 32];
                    ske.extend_from_slice(&r.bytes(32));
                    let sl = r.urange(60, 256);
                    ske.extend_from_slice(&[8, 4]);
                    u16be(&mut ske, sl);
                    ske.extend_from_slice(&r.bytes(sl));
                    hsm.push(hs(12, &ske));
                    if client_chain.is_some() {
                        hsm.push(hs(13, &[2, 1, 64, 0, 8, 4, 3, 8, 4, 4, 1, 5, 3, 0, 0]));
                    }
                    hsm.push(hs(14, &[]));
                    msgs.push(Msg::new(1, Gap::Reply).lit(pack_records(r, &hsm)));
                    let mut cm = Vec::new();
                    match client_chain {
                        Some(ch) if !ch.is_empty() => {
                            truth.mtls = Some("yes");
                            cm.push(certificate_msg(ch));
                        }
                        Some(_) => {
                            truth.mtls = Some("no");
                            cm.push(certificate_msg(&[]));
                        }
                        None => truth.mtls = Some("no"),
                    }
                    let mut cke = vec![32];
                    cke.extend_from_slice(&r.bytes(32));
                    cm.push(hs(16, &cke));
                    if matches!(client_chain, Some(ch) if !ch.is_empty()) {
                        let mut cv = vec![8, 4, 1, 0];
                        cv.extend_from_slice(&r.bytes(256));
                        cm.push(hs(15, &cv));
                    }
                    let mut c = Msg::new(0, Gap::Reply).lit(pack_records(r, &cm));
                    c.push_lit(CCS.to_vec());
                    c.push_lit(record(22, 0x0303, &r.bytes(40)));
                    msgs.push(c);
                    let mut s = Msg::new(1, Gap::Reply).lit(CCS.to_vec());
                    s.push_lit(record(22, 0x0303, &r.bytes(40)));
                    msgs.push(s);
                    tls_exchanges(r, &mut msgs, app, Gap::Now, p.max_exchanges);
                }
            }
        }
        Kind::Http => {
            let si = r.below(ISTIO_SVCS.len() as u64) as usize;
            let (svc, ns, port) = ISTIO_SVCS[si];
            server_ep = Server::Istio(si);
            let envoy = r.chance(p.envoy);
            let (psvc, pns, _) = *r.pick(ISTIO_SVCS);
            let u = r.f64();
            let n = 1 + (u * u * p.max_requests as f64) as usize;
            let n = n.min(p.max_requests);
            let host = if r.chance(0.5) {
                format!("{svc}:{port}")
            } else {
                format!("{svc}.{ns}.svc.cluster.local:{port}")
            };
            let bodies = split(r, app, n);
            for (i, b) in bodies.into_iter().enumerate() {
                let peer = if envoy && r.chance(0.5) { Some((psvc, pns)) } else { None };
                msgs.push(
                    Msg::new(0, if i == 0 { Gap::Now } else { Gap::Think })
                        .lit(http_request(r, &host, envoy, peer)),
                );
                let mut s = Msg::new(1, Gap::Reply);
                http_response(r, &mut s, b, envoy);
                msgs.push(s);
            }
            truth.protocol = "http";
            truth.requests = Some(n);
        }
        Kind::H2c => {
            let si = r.below(ISTIO_SVCS.len() as u64) as usize;
            server_ep = Server::Istio(si);
            let n = h2c_flow(r, p, ISTIO_SVCS[si], app, midstream, &mut msgs);
            truth.protocol = "h2c";
            truth.requests = Some(n);
        }
        Kind::Other => {
            let ssh = !midstream && r.chance(0.5);
            if ssh {
                server_ep = Server::Ssh;
                msgs.push(
                    Msg::new(1, Gap::Reply).lit(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec()),
                );
                msgs.push(Msg::new(0, Gap::Reply).lit(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()));
            } else {
                server_ep = Server::Db(*r.pick(&[5432u16, 6379, 9092, 27017, 11211, 4222]));
            }
            let k = r.urange(1, (1 + app / 4000).min(10));
            for (i, sz) in split(r, app, k).into_iter().enumerate() {
                for (dir, n) in [(0, r.urange(40, 600)), (1, sz)] {
                    let gap = if dir == 1 {
                        Gap::Reply
                    } else if i == 0 {
                        Gap::Now
                    } else {
                        Gap::Think
                    };
                    let mut m = Msg::new(dir, gap);
                    if ssh {
                        m.chunks.push(Chunk::Rand(n));
                    } else {
                        m.push_lit(vec![0x80 | r.below(128) as u8]);
                        m.chunks.push(Chunk::Rand(n - 1));
                    }
                    msgs.push(m);
                }
            }
        }
    }
    Plan { kind, msgs, truth, server_ep }
}

/// An h2c connection as an Envoy inbound leg or a gRPC/REST client without a sidecar sends it:
/// preface and SETTINGS (unless the capture starts mid-connection), then 1 to 20 (mesh: 40) streams one
/// after the other, gRPC (length-prefixed messages, trailers) or plain requests. Returns the
/// number of requests.
fn h2c_flow(
    r: &mut Rng,
    p: &Profile,
    (svc, ns, port): (&str, &str, u16),
    app: usize,
    midstream: bool,
    msgs: &mut Vec<Msg>,
) -> usize {
    let grpc = r.chance(p.grpc);
    let envoy = r.chance(p.envoy);
    let (psvc, pns, _) = *r.pick(ISTIO_SVCS);
    let u = r.f64();
    let n = (1 + (u * u * p.max_requests as f64) as usize).min(p.max_requests);
    let authority =
        if r.chance(0.5) { format!("{svc}:{port}") } else { format!("{svc}.{ns}.svc.cluster.local:{port}") };
    let (mut ce, mut se) = (h2::Encoder::new(), h2::Encoder::new());
    let ua = if grpc { "grpc-go/1.64.0" } else { *r.pick(UAS) };
    let xfcc = format!(
        "By=spiffe://cluster.local/ns/{ns}/sa/{svc};Hash={};Subject=\"\";URI=spiffe://cluster.local/ns/{pns}/sa/{psvc}",
        r.hex(64)
    );
    let meta = peer_metadata(r, psvc, pns);
    let meta_id = format!("sidecar~10.244.1.{}~{psvc}-v1.{pns}~{pns}.svc.cluster.local", r.range(2, 250));
    if !midstream {
        let mut c = h2::PREFACE.to_vec();
        h2::settings(&mut c, &[(2, 0), (4, 4_194_304), (6, 16_384)]);
        h2::frame(&mut c, h2::WINDOW_UPDATE, 0, 0, &(1_073_676_289u32).to_be_bytes());
        msgs.push(Msg::new(0, Gap::Now).lit(c));
        let mut s = Vec::new();
        h2::settings(&mut s, &[(3, 2_147_483_647), (4, 268_435_456), (5, 16_384)]);
        h2::frame(&mut s, h2::SETTINGS, h2::ACK, 0, &[]);
        msgs.push(Msg::new(1, Gap::Reply).lit(s));
    }
    let bodies = split(r, app, n);
    for (i, body) in bodies.into_iter().enumerate() {
        let stream = 1 + 2 * i as u32 + if midstream { 40 } else { 0 };
        let path = if grpc {
            format!(
                "/{ns}.{}/{}",
                svc[..1].to_ascii_uppercase() + &svc[1..],
                r.pick(&["Get", "List", "Watch", "Update"])
            )
        } else {
            format!("{}{}", r.pick(PATHS), r.below(1000))
        };
        let post = grpc || r.chance(0.25);
        let rid = format!("{}-{}-4{}-a{}-{}", r.hex(8), r.hex(4), r.hex(3), r.hex(3), r.hex(12));
        let (trace, span) = (r.hex(32), r.hex(16));
        let mut f: Vec<(&str, &str)> = vec![
            (":method", if post { "POST" } else { "GET" }),
            (":scheme", "http"),
            (":authority", &authority),
            (":path", &path),
        ];
        if grpc {
            f.extend([
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-accept-encoding", "identity,deflate,gzip"),
            ]);
        } else {
            f.push(("accept", "application/json"));
        }
        f.push(("user-agent", ua));
        f.push(("x-request-id", &rid));
        if envoy {
            f.extend([
                ("x-forwarded-proto", "http"),
                ("x-forwarded-client-cert", &xfcc),
                ("x-envoy-peer-metadata", &meta),
                ("x-envoy-peer-metadata-id", &meta_id),
                ("x-b3-traceid", &trace),
                ("x-b3-spanid", &span),
                ("x-b3-sampled", "1"),
            ]);
        }
        let token;
        if r.chance(0.2) {
            let k = r.urange(24, 90);
            token = format!("Bearer {}", b64_encode(&r.bytes(k)));
            f.push(("authorization", &token));
        }
        let mut c = Vec::new();
        let req_body = if post { r.urange(20, 2000) } else { 0 };
        h2::headers(&mut c, stream, &ce.block(&f), req_body == 0);
        let mut cm = Msg::new(0, if i == 0 { Gap::Now } else { Gap::Think }).lit(c);
        data(&mut cm, stream, req_body, grpc, true);
        msgs.push(cm);
        let len = body.to_string();
        let date = format!("Mon, 02 Mar 2026 {:02}:{:02}:{:02} GMT", r.below(24), r.below(60), r.below(60));
        let mut rf: Vec<(&str, &str)> = vec![(":status", "200")];
        rf.push(("content-type", if grpc { "application/grpc" } else { "application/json" }));
        if !grpc {
            rf.push(("content-length", &len));
        }
        rf.push(("date", &date));
        let ust = r.range(1, 80).to_string();
        if envoy {
            rf.extend([("server", "envoy"), ("x-envoy-upstream-service-time", &ust)]);
        }
        let mut s = Vec::new();
        h2::headers(&mut s, stream, &se.block(&rf), false);
        let mut sm = Msg::new(1, Gap::Reply).lit(s);
        data(&mut sm, stream, body, grpc, !grpc);
        if grpc {
            let mut t = Vec::new();
            let block = if r.chance(0.1) {
                se.block(&[
                    ("grpc-status", "14"),
                    ("grpc-message", "upstream connect error or disconnect/reset before headers"),
                ])
            } else {
                se.block(&[("grpc-status", "0"), ("grpc-message", "")])
            };
            h2::headers(&mut t, stream, &block, true);
            sm.push_lit(t);
        }
        msgs.push(sm);
    }
    n
}

/// `len` bytes of body on `stream` in DATA frames of at most 16,384 bytes: for gRPC, messages
/// of at most 64 KiB each behind their 5-byte prefix. END_STREAM on the last frame when `end`.
fn data(m: &mut Msg, stream: u32, len: usize, grpc: bool, end: bool) {
    if len == 0 {
        return;
    }
    let mut body: Vec<Chunk> = Vec::new(); // the stream's bytes, framed below
    let mut left = len;
    while left > 0 {
        let k = left.min(65_536);
        if grpc {
            let mut p = vec![0u8];
            p.extend_from_slice(&(k as u32).to_be_bytes());
            body.push(Chunk::Lit(p));
        }
        body.push(Chunk::Rand(k));
        left -= k;
    }
    let total: usize = body.iter().map(|c| c.len()).sum();
    let mut sent = 0;
    let mut pending = std::collections::VecDeque::from(body);
    while sent < total {
        let n = (total - sent).min(16_384);
        let flags = if end && sent + n == total { h2::END_STREAM } else { 0 };
        let mut hdr = Vec::new();
        h2::frame(&mut hdr, h2::DATA, flags, stream, &[]);
        hdr[0] = (n >> 16) as u8;
        hdr[1] = (n >> 8) as u8;
        hdr[2] = n as u8;
        m.push_lit(hdr);
        let mut need = n;
        while need > 0 {
            let c = pending.pop_front().expect("bytes left");
            let l = c.len();
            if l <= need {
                m.chunks.push(c);
                need -= l;
            } else {
                match c {
                    Chunk::Lit(v) => {
                        m.push_lit(v[..need].to_vec());
                        pending.push_front(Chunk::Lit(v[need..].to_vec()));
                    }
                    Chunk::Rand(_) => {
                        m.chunks.push(Chunk::Rand(need));
                        pending.push_front(Chunk::Rand(l - need));
                    }
                    Chunk::Text(_) => {
                        m.chunks.push(Chunk::Text(need));
                        pending.push_front(Chunk::Text(l - need));
                    }
                }
                need = 0;
            }
        }
        sent += n;
    }
}

/// Handshake messages into records: all in one record, or one record each.
fn pack_records(r: &mut Rng, msgs: &[Vec<u8>]) -> Vec<u8> {
    if r.chance(0.5) {
        let all: Vec<u8> = msgs.concat();
        let mut out = Vec::new();
        for c in all.chunks(16384) {
            out.extend_from_slice(&record(22, 0x0303, c));
        }
        out
    } else {
        msgs.iter().flat_map(|m| record(22, 0x0303, m)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Packets

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn ep_str(ip: Ip, port: u16) -> String {
    match ip {
        Ip::V4(a) => format!("{}.{}.{}.{}:{}", a[0], a[1], a[2], a[3], port),
        Ip::V6(a) => format!("[{}]:{}", Ipv6Addr::from(a), port),
    }
}

fn mac(ip: Ip) -> [u8; 6] {
    let b = match ip {
        Ip::V4(a) => [a[0], a[1], a[2], a[3]],
        Ip::V6(a) => [a[12], a[13], a[14], a[15]],
    };
    [0x02, 0x42, b[0] ^ b[1], b[1], b[2], b[3]]
}

const F_FIN: u8 = 1;
const F_SYN: u8 = 2;
const F_RST: u8 = 4;
const F_PSH: u8 = 8;
const F_ACK: u8 = 16;

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in h.chunks(2) {
        s += (c[0] as u32) << 8 | c[1] as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Ethernet (+VLAN) + IP header for `l4_len` bytes of protocol `proto`.
fn l2l3(out: &mut Vec<u8>, src: Ip, dst: Ip, vlan: Option<u16>, proto: u8, l4_len: usize, ipid: u16) {
    out.extend_from_slice(&mac(dst));
    out.extend_from_slice(&mac(src));
    if let Some(v) = vlan {
        out.extend_from_slice(&[0x81, 0x00]);
        u16be(out, v as usize);
    }
    match (src, dst) {
        (Ip::V4(s), Ip::V4(d)) => {
            out.extend_from_slice(&[0x08, 0x00]);
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            u16be(out, 20 + l4_len);
            u16be(out, ipid as usize);
            out.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
            out.extend_from_slice(&s);
            out.extend_from_slice(&d);
            let c = ip_checksum(&out[start..start + 20]);
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (Ip::V6(s), Ip::V6(d)) => {
            out.extend_from_slice(&[0x86, 0xdd]);
            out.extend_from_slice(&[0x60, 0x01, (ipid >> 8) as u8, ipid as u8]);
            u16be(out, l4_len);
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&s);
            out.extend_from_slice(&d);
        }
        _ => unreachable!(),
    }
}

struct Pkt {
    gap: u64, // ns after the flow's previous packet
    frame: Vec<u8>,
    data_dir: Option<usize>, // Some(dir) for a data segment
}

struct Flow {
    r: Rng,
    ep: [(Ip, u16); 2],
    vlan: Option<u16>,
    mss: usize,
    seq: [u32; 2],
    ipid: [u16; 2],
    tsv: [u32; 2],
    rtt: u64,
    msgs: Vec<Msg>,
    mi: usize,
    ci: usize,
    off: usize,
    started: bool,
    closed: bool,
    midstream: bool,
    queue: VecDeque<Pkt>,
    est: u64,
    /// The profile's pause between exchanges: mean and cap, ns.
    think: (f64, f64),
}

impl Flow {
    fn frame(&mut self, dir: usize, flags: u8, payload: &[u8]) -> Vec<u8> {
        let syn = flags & F_SYN != 0;
        let thl = if syn { 40 } else { 32 };
        let mut f = Vec::with_capacity(18 + 40 + thl + payload.len());
        let (src, dst) = (self.ep[dir], self.ep[1 - dir]);
        self.ipid[dir] = self.ipid[dir].wrapping_add(1);
        l2l3(&mut f, src.0, dst.0, self.vlan, 6, thl + payload.len(), self.ipid[dir]);
        u16be(&mut f, src.1 as usize);
        u16be(&mut f, dst.1 as usize);
        f.extend_from_slice(&self.seq[dir].to_be_bytes());
        let ack = if flags & F_ACK != 0 { self.seq[1 - dir] } else { 0 };
        f.extend_from_slice(&ack.to_be_bytes());
        f.push(((thl / 4) << 4) as u8);
        f.push(flags);
        u16be(&mut f, if syn { 64240 } else { 502 + (self.r.below(64) as usize) * 8 });
        f.extend_from_slice(&[0, 0, 0, 0]);
        self.tsv[dir] = self.tsv[dir].wrapping_add(1 + self.r.below(3) as u32);
        let tsecr = if syn && dir == 0 { 0 } else { self.tsv[1 - dir] };
        if syn {
            f.extend_from_slice(&[2, 4]);
            u16be(&mut f, self.mss);
            f.extend_from_slice(&[4, 2, 8, 10]);
        } else {
            f.extend_from_slice(&[1, 1, 8, 10]);
        }
        f.extend_from_slice(&self.tsv[dir].to_be_bytes());
        f.extend_from_slice(&tsecr.to_be_bytes());
        if syn {
            f.extend_from_slice(&[1, 3, 3, 7]);
        }
        f.extend_from_slice(payload);
        self.seq[dir] = self.seq[dir].wrapping_add(payload.len() as u32);
        if flags & (F_SYN | F_FIN) != 0 {
            self.seq[dir] = self.seq[dir].wrapping_add(1);
        }
        f
    }

    fn gap(&mut self, g: Gap) -> u64 {
        match g {
            Gap::Now => self.r.range(15_000, 150_000),
            Gap::Reply => self.rtt + self.r.range(50_000, 2_000_000),
            Gap::Think => (self.r.exp(self.think.0, self.think.1)) as u64 + 100_000,
        }
    }

    /// Takes up to `max` bytes of the current message.
    fn take(&mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(max);
        while out.len() < max && self.ci < self.msgs[self.mi].chunks.len() {
            let want = max - out.len();
            let c = &self.msgs[self.mi].chunks[self.ci];
            let n = (c.len() - self.off).min(want);
            match c {
                Chunk::Lit(v) => out.extend_from_slice(&v[self.off..self.off + n]),
                Chunk::Rand(_) | Chunk::Text(_) => {
                    let text = matches!(c, Chunk::Text(_));
                    let l = out.len();
                    out.resize(l + n, 0);
                    if text {
                        self.r.fill_text(&mut out[l..]);
                    } else {
                        self.r.fill(&mut out[l..]);
                    }
                }
            }
            self.off += n;
            if self.off == self.msgs[self.mi].chunks[self.ci].len() {
                self.ci += 1;
                self.off = 0;
            }
        }
        out
    }

    fn push(&mut self, gap: u64, dir: usize, flags: u8, payload: &[u8], pkts: &mut Vec<Pkt>) {
        let frame = self.frame(dir, flags, payload);
        pkts.push(Pkt { gap, frame, data_dir: if payload.is_empty() { None } else { Some(dir) } });
    }

    /// Fills the queue with the next packets; false when the flow has nothing left.
    fn expand(&mut self) -> bool {
        let mut p: Vec<Pkt> = Vec::new();
        if !self.started {
            self.started = true;
            if !self.midstream {
                let rtt = self.rtt;
                self.push(0, 0, F_SYN, &[], &mut p);
                self.push(rtt / 2, 1, F_SYN | F_ACK, &[], &mut p);
                self.push(rtt / 2, 0, F_ACK, &[], &mut p);
            }
        }
        if self.mi < self.msgs.len() {
            let dir = self.msgs[self.mi].dir;
            let fresh = self.ci == 0 && self.off == 0;
            let mut gap = if fresh {
                let g = self.msgs[self.mi].gap;
                self.gap(g)
            } else {
                self.r.range(5_000, 40_000)
            };
            if p.len() == 3 && fresh {
                gap = self.r.range(10_000, 100_000);
            }
            let mut segs = 0;
            let mut first_seg = if fresh { self.msgs[self.mi].first_seg } else { None };
            while segs < 16 && self.ci < self.msgs[self.mi].chunks.len() {
                let max = first_seg.take().unwrap_or(self.mss);
                let data = self.take(max);
                let last = self.ci == self.msgs[self.mi].chunks.len();
                self.push(gap, dir, if last { F_ACK | F_PSH } else { F_ACK }, &data, &mut p);
                gap = self.r.range(3_000, 30_000);
                segs += 1;
                if segs % 2 == 0 && !last {
                    let g = self.r.range(2_000, 20_000);
                    self.push(g, 1 - dir, F_ACK, &[], &mut p);
                }
                if last {
                    let next_same = self.msgs.get(self.mi + 1).map(|m| m.dir == dir).unwrap_or(true);
                    if segs % 2 == 1 || next_same || self.r.chance(0.3) {
                        let g = self.rtt / 2 + self.r.range(5_000, 40_000);
                        self.push(g, 1 - dir, F_ACK, &[], &mut p);
                    }
                }
            }
            if self.ci == self.msgs[self.mi].chunks.len() {
                self.mi += 1;
                self.ci = 0;
                self.off = 0;
            }
            self.perturb(&mut p);
        } else if !self.closed {
            self.closed = true;
            let g = self.gap(Gap::Reply);
            let x = self.r.below(100);
            let rtt = self.rtt;
            if x < 4 {
                self.push(g, 0, F_RST | F_ACK, &[], &mut p);
            } else if x < 7 {
                self.push(g, 1, F_RST | F_ACK, &[], &mut p);
            } else {
                let a = if x < 75 { 0 } else { 1 };
                self.push(g, a, F_FIN | F_ACK, &[], &mut p);
                if x.is_multiple_of(5) {
                    self.push(rtt / 2, 1 - a, F_ACK, &[], &mut p);
                    let g2 = self.r.range(100_000, 3_000_000);
                    self.push(g2, 1 - a, F_FIN | F_ACK, &[], &mut p);
                } else {
                    self.push(rtt / 2, 1 - a, F_FIN | F_ACK, &[], &mut p);
                }
                self.push(rtt / 2, a, F_ACK, &[], &mut p);
            }
        } else {
            return false;
        }
        self.queue.extend(p);
        true
    }

    /// ~1% of data segments retransmitted later, ~1% swapped with the next segment of the same
    /// direction.
    fn perturb(&mut self, p: &mut Vec<Pkt>) {
        let mut i = 0;
        while i < p.len() {
            if p[i].data_dir.is_some() && self.r.chance(0.01) {
                let j = (i + 1 + self.r.below(4) as usize).min(p.len());
                let copy = Pkt {
                    gap: self.rtt + self.r.range(20_000, 300_000),
                    frame: p[i].frame.clone(),
                    data_dir: None,
                };
                p.insert(j, copy);
                i = j + 1;
                continue;
            }
            i += 1;
        }
        let mut i = 0;
        while i + 1 < p.len() {
            if let Some(d) = p[i].data_dir {
                // The draw comes first, whatever the next packet: the stream of draws is the file.
                if self.r.chance(0.01) && p[i + 1].data_dir == Some(d) {
                    let j = i + 1;
                    let (a, b) = p.split_at_mut(j);
                    std::mem::swap(&mut a[i].frame, &mut b[0].frame);
                    i = j + 1;
                    continue;
                }
            }
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Out {
    w: BufWriter<File>,
    bytes: u64,
    packets: u64,
}

impl Out {
    fn packet(&mut self, t_ns: u64, frame: &[u8]) {
        let sec = (t_ns / 1_000_000_000) as u32;
        let usec = ((t_ns % 1_000_000_000) / 1000) as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.w.write_all(&h).unwrap();
        self.w.write_all(frame).unwrap();
        self.bytes += 16 + frame.len() as u64;
        self.packets += 1;
    }
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A DNS query and its answer (UDP frames).
fn dns_pair(r: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let (svc, ns, _) = *r.pick(ISTIO_SVCS);
    let name = format!("{svc}.{ns}.svc.cluster.local");
    let client = Ip::V4([10, 244, 1 + r.below(6) as u8, 10 + r.below(100) as u8]);
    let server = Ip::V4([10, 96, 0, 10]);
    let sport = r.range(32768, 60999) as u16;
    let id = r.below(65536) as u16;
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&dns_name(&name));
    q.extend_from_slice(&[0, 1, 0, 1]);
    let mut a = q.clone();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    a.extend_from_slice(&[
        0xc0,
        12,
        0,
        1,
        0,
        1,
        0,
        0,
        0,
        5,
        0,
        4,
        10,
        96,
        r.below(256) as u8,
        r.below(256) as u8,
    ]);
    let udp = |src: Ip, dst: Ip, sp: u16, dp: u16, body: &[u8], id: u16| {
        let mut f = Vec::new();
        l2l3(&mut f, src, dst, None, 17, 8 + body.len(), id);
        u16be(&mut f, sp as usize);
        u16be(&mut f, dp as usize);
        u16be(&mut f, 8 + body.len());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(body);
        f
    };
    (udp(client, server, sport, 53, &q, id), udp(server, client, 53, sport, &a, id))
}

fn arp(r: &mut Rng) -> Vec<u8> {
    let s = [10, 244, 1 + r.below(6) as u8, 10 + r.below(100) as u8];
    let t = [10, 244, 1 + r.below(6) as u8, 10 + r.below(100) as u8];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac(Ip::V4(s)));
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac(Ip::V4(s)));
    f.extend_from_slice(&s);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&t);
    f.extend_from_slice(&[0; 18]);
    f
}

// ---------------------------------------------------------------------------------------------
// Main

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn opt_str(s: Option<&str>) -> String {
    s.map(json_str).unwrap_or_else(|| "null".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut pos = Vec::new();
    let mut seed = 1u64;
    let mut pki_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../captures/pki").to_string();
    let mut prof = DEFAULT;
    // Overrides of the profile's values, applied once all flags are read (any order).
    let (mut target, mut alpha, mut h2_share) = (None, None, None);
    let usage = "usage: gen OUT.pcap SIZE_MB [--profile default|mesh] [--seed N] [--pki DIR] [--concurrency N] [--h2 SHARE] [--alpha A]";
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        let val = |i: usize| args.get(i + 1).cloned().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            "--seed" => {
                seed = val(i).parse().unwrap_or_else(|_| die("bad --seed"));
                i += 1;
            }
            "--pki" => {
                pki_dir = val(i);
                i += 1;
            }
            "--concurrency" => {
                target = Some(val(i).parse().unwrap_or_else(|_| die("bad --concurrency")));
                i += 1;
            }
            "--h2" => {
                h2_share = Some(val(i).parse().unwrap_or_else(|_| die("bad --h2")));
                i += 1;
            }
            "--alpha" => {
                alpha = Some(val(i).parse().unwrap_or_else(|_| die("bad --alpha")));
                i += 1;
            }
            "--profile" => {
                prof = match val(i).as_str() {
                    "default" => DEFAULT,
                    "mesh" => MESH,
                    other => die(&format!("unknown --profile {other} (default, mesh)")),
                };
                i += 1;
            }
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            _ => pos.push(a.clone()),
        }
        i += 1;
    }
    if pos.len() != 2 {
        die(usage);
    }
    prof.concurrency = target.unwrap_or(prof.concurrency);
    prof.alpha = alpha.unwrap_or(prof.alpha);
    // Share of all flows that are h2c (gRPC and REST), taken from the HTTP/1 share.
    prof.h2 = h2_share.unwrap_or(prof.h2);
    let target = prof.concurrency;
    let out_path = &pos[0];
    let size_mb: f64 = pos[1].parse().unwrap_or_else(|_| die("bad SIZE_MB"));
    let budget = (size_mb * 1e6) as u64;

    let cat = |a: &str, b: &str| {
        let mut c = read_pem_chain(&format!("{pki_dir}/{a}"));
        if !b.is_empty() {
            c.extend(read_pem_chain(&format!("{pki_dir}/{b}")));
        }
        c
    };
    let mut istio_server = vec![cat("reviews.crt", "ca.crt")];
    let mut istio_client = vec![cat("productpage.crt", "ca.crt")];
    if prof.many_identities {
        // Istio-issued (empty subject, critical SAN) and other workload leaves, under the root
        // directly or one or two intermediates: several distinct chains, as a sidecar's peers.
        istio_server.push(cat("istio/ratings.crt", "ca.crt"));
        istio_server.push(cat("details.crt", "mesh-inter.crt"));
        istio_server.last_mut().unwrap().extend(read_pem_chain(&format!("{pki_dir}/ca.crt")));
        istio_server.push(cat("deep.crt", "sub-inter.crt"));
        istio_server.last_mut().unwrap().extend(cat("mesh-inter.crt", "ca.crt"));
        istio_client.push(cat("istio/reviews-short.crt", "ca.crt"));
        istio_client.push(cat("details.crt", "mesh-inter.crt"));
        istio_client.last_mut().unwrap().extend(read_pem_chain(&format!("{pki_dir}/ca.crt")));
    }
    let pki =
        Pki { istio_server, istio_client, api: cat("api.crt", "ca.crt"), big: cat("big-chain.crt", "") };

    let mut out = Out {
        w: BufWriter::with_capacity(
            1 << 22,
            File::create(out_path).unwrap_or_else(|e| die(&format!("{out_path}: {e}"))),
        ),
        bytes: 24,
        packets: 0,
    };
    let mut gh = Vec::new();
    gh.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    gh.extend_from_slice(&2u16.to_le_bytes());
    gh.extend_from_slice(&4u16.to_le_bytes());
    gh.extend_from_slice(&[0; 8]);
    gh.extend_from_slice(&262144u32.to_le_bytes());
    gh.extend_from_slice(&1u32.to_le_bytes());
    out.w.write_all(&gh).unwrap();
    let tpath = format!("{out_path}.truth.jsonl");
    let mut truth = BufWriter::new(File::create(&tpath).unwrap_or_else(|e| die(&format!("{tpath}: {e}"))));

    let mut r = Rng::new(seed);
    let start_ns: u64 = 1_772_409_600 * 1_000_000_000 + 3_600_000_000_000 * 9; // 2026-03-02 09:00 UTC
    let mut now = start_ns;
    let mut slab: Vec<Option<Flow>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut active = 0usize;
    let mut remaining: u64 = 0; // estimated bytes still to come from active flows
    let mut next_port: HashMap<Ip, u16> = HashMap::new();
    let mut dns_fifo: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut flows = 0u64;
    let mut counts = [0u64; 5];
    let mut midstreams = 0u64;
    let mut max_active = 0usize;

    let t0 = std::time::Instant::now();
    loop {
        // Spawn flows up to the concurrency target while the size budget allows.
        while active < target && out.bytes + remaining < budget {
            let mut fr = Rng::new(r.next());
            let midstream = fr.chance(0.01);
            let plan = plan_flow(&mut fr, &pki, midstream, &prof);
            let v6 = fr.chance(0.05);
            let vlan = if fr.chance(0.02) { Some(if fr.chance(0.5) { 100 } else { 200 }) } else { None };
            let ci = fr.below(600) as u16;
            let cip = if v6 {
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&[0xfd, 0x00, 0, 0x10, 0x02, 0x44, 0, (1 + ci / 100) as u8]);
                a[15] = (10 + ci % 100) as u8;
                Ip::V6(a)
            } else {
                Ip::V4([10, 244, (1 + ci / 100) as u8, (10 + ci % 100) as u8])
            };
            let (sip, sport) = match plan.server_ep {
                Server::Istio(si) => {
                    let pod = fr.below(3) as u8;
                    let (_, _, port) = ISTIO_SVCS[si];
                    if v6 {
                        let mut a = [0u8; 16];
                        a[..8].copy_from_slice(&[0xfd, 0x00, 0, 0x10, 0x02, 0x45, 0, si as u8]);
                        a[15] = 10 + pod;
                        (Ip::V6(a), port)
                    } else {
                        (Ip::V4([10, 244, 20 + (si / 5) as u8, 10 + (si % 5) as u8 * 10 + pod]), port)
                    }
                }
                Server::External(n) => {
                    if v6 {
                        let mut a = [0u8; 16];
                        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                        a[15] = n as u8 + 1;
                        (Ip::V6(a), 443)
                    } else {
                        (Ip::V4([203, 0, 113, n as u8 + 1]), 443)
                    }
                }
                Server::Ssh => (
                    if v6 {
                        Ip::V6([0xfd, 0, 0, 0x10, 2, 0x46, 0, 0, 0, 0, 0, 0, 0, 0, 0, 22])
                    } else {
                        Ip::V4([10, 244, 30, 22])
                    },
                    22,
                ),
                Server::Db(p) => (
                    if v6 {
                        Ip::V6([0xfd, 0, 0, 0x10, 2, 0x46, 0, 0, 0, 0, 0, 0, 0, 0, 1, (p % 250) as u8])
                    } else {
                        Ip::V4([10, 244, 31, (p % 250) as u8])
                    },
                    p,
                ),
            };
            let np = next_port.entry(cip).or_insert_with(|| 32768 + (fr.below(20000) as u16));
            *np = if *np >= 60999 { 32768 } else { *np + 1 };
            let cport = *np;
            let mss = if v6 { 1428 } else { 1448 };
            let payload: usize = plan.msgs.iter().map(|m| m.len()).sum();
            let npk = payload / mss * 3 / 2 + plan.msgs.len() * 2 + 8;
            let est = (payload + npk * 70) as u64;
            let rtt = if matches!(plan.server_ep, Server::External(_)) {
                fr.range(3_000_000, 30_000_000)
            } else {
                fr.range(60_000, 900_000)
            };
            let t = &plan.truth;
            let alpn = match &t.alpn {
                None => "null".to_string(),
                Some(l) => format!("[{}]", l.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(",")),
            };
            writeln!(
                truth,
                "{{\"client\":\"{}\",\"server\":\"{}\",\"protocol\":\"{}\",\"version\":{},\"sni\":{},\"alpn\":{},\"mtls\":{},\"requests\":{},\"midstream\":{}}}",
                ep_str(cip, cport),
                ep_str(sip, sport),
                t.protocol,
                opt_str(t.version),
                opt_str(t.sni.as_deref()),
                alpn,
                opt_str(t.mtls),
                t.requests.map(|n| n.to_string()).unwrap_or_else(|| "null".into()),
                midstream
            )
            .unwrap();
            counts[plan.kind as usize] += 1;
            midstreams += midstream as u64;
            flows += 1;
            let flow = Flow {
                ep: [(cip, cport), (sip, sport)],
                vlan,
                mss,
                seq: [fr.next() as u32, fr.next() as u32],
                ipid: [fr.next() as u16, fr.next() as u16],
                tsv: [fr.next() as u32, fr.next() as u32],
                rtt,
                msgs: plan.msgs,
                mi: 0,
                ci: 0,
                off: 0,
                started: false,
                closed: false,
                midstream,
                queue: VecDeque::new(),
                est,
                think: prof.think,
                r: fr,
            };
            remaining += est;
            let id = match free.pop() {
                Some(id) => {
                    slab[id as usize] = Some(flow);
                    id
                }
                None => {
                    slab.push(Some(flow));
                    (slab.len() - 1) as u32
                }
            };
            // The first flows ramp up over 300 ms; later ones start at once.
            let delay = if flows <= target as u64 { r.below(300_000_000) } else { r.below(200_000) };
            heap.push(Reverse((now + delay, id)));
            active += 1;
            max_active = max_active.max(active);
        }
        let Some(Reverse((t, id))) = heap.pop() else { break };
        now = now.max(t);
        while dns_fifo.front().is_some_and(|(due, _)| *due <= now) {
            let (due, f) = dns_fifo.pop_front().unwrap();
            out.packet(due, &f);
        }
        if r.chance(0.005) {
            let (q, a) = dns_pair(&mut r);
            out.packet(now, &q);
            dns_fifo.push_back((now + 300_000, a));
        }
        if r.chance(0.0001) {
            out.packet(now, &arp(&mut r));
        }
        let flow = slab[id as usize].as_mut().unwrap();
        if flow.queue.is_empty() && !flow.expand() {
            remaining -= flow.est;
            slab[id as usize] = None;
            free.push(id);
            active -= 1;
            continue;
        }
        let pkt = flow.queue.pop_front().unwrap();
        out.packet(now, &pkt.frame);
        let used = (16 + pkt.frame.len() as u64).min(flow.est);
        flow.est -= used;
        remaining -= used;
        if flow.queue.is_empty() && !flow.expand() {
            remaining -= flow.est;
            slab[id as usize] = None;
            free.push(id);
            active -= 1;
            continue;
        }
        let gap = flow.queue.front().unwrap().gap;
        heap.push(Reverse((now + gap, id)));
    }
    for (due, f) in dns_fifo.drain(..) {
        out.packet(due, &f);
    }
    out.w.flush().unwrap();
    truth.flush().unwrap();
    eprintln!(
        "gen: {out_path} ({} profile): {:.1} MB, {} packets, {} TCP flows (tls1.3 {}, tls1.2 {}, http {}, other {}, h2c {}, midstream {}), max {} open, {:.1} s capture, generated in {:.2} s",
        prof.name,
        out.bytes as f64 / 1e6,
        out.packets,
        flows,
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        midstreams,
        max_active,
        (now - start_ns) as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
}

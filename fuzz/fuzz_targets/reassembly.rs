//! TCP reassembly and classification of a few flows, with small memory limits.
//!
//! Input: byte 0 chooses the settings (bit 0: tiny / roomy limits; bit 1: --show-secrets; bit 2:
//! --ca with the test mesh root), then a sequence of segment descriptors, 8 bytes each followed
//! by the payload:
//!   byte 0  bits 0-1 flow (4 fixed 4-tuples; the table holds 2, so flows get evicted),
//!           bit 2 direction (0: client → server), bit 3 snaplen cut (wire length > payload),
//!           bits 4-7 seconds of capture time elapsed since the previous segment
//!   byte 1  TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10, ...)
//!   2..6    sequence number (u32 LE) relative to the direction's initial sequence number
//!   6..8    payload length (u16 LE), cut to what is left of the input
//! Every flow that ends is finished, turned into its JSON report and checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use tlspeek::classify::chain::TrustStore;
use tlspeek::classify::http::HttpConfig;
use tlspeek::classify::tls::TlsLimits;
use tlspeek::classify::{ClassifyConfig, FlowClassifier};
use tlspeek::decode::TcpSegment;
use tlspeek::flow::client::decide_client;
use tlspeek::flow::{FlowMeta, FlowTable, Limits};
use tlspeek::record::FlowReport;
use tlspeek::report::json;
use tlspeek::wire::Timestamp;

struct FlowDef {
    client: (&'static str, u16),
    server: (&'static str, u16),
    isn: u32,
}

const FLOWS: [FlowDef; 4] = [
    FlowDef { client: ("10.0.0.1", 40000), server: ("10.0.0.2", 443), isn: 1000 },
    // Sequence numbers wrap past 2^32 early in this one.
    FlowDef { client: ("10.0.0.1", 40001), server: ("10.0.0.2", 80), isn: 0xffff_ff00 },
    FlowDef { client: ("fd00::1", 40002), server: ("fd00::2", 8080), isn: 0x7fff_fff0 },
    // Loopback leg (the XFCC path of the pipeline).
    FlowDef { client: ("127.0.0.1", 40003), server: ("127.0.0.6", 15006), isn: 0 },
];

/// captures/pki/ca.crt as `--ca`, loaded once.
fn mesh_root() -> &'static TrustStore {
    static ROOT: std::sync::OnceLock<TrustStore> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let pem = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../captures/pki/ca.crt"));
        TrustStore::load(&[pem]).expect("captures/pki/ca.crt")
    })
}

fn check_report(meta: FlowMeta, c: FlowClassifier) {
    let (client, _) = decide_client(&meta, c.client_hint());
    let classified = c.finish(client);
    let mut report = FlowReport::build(meta, classified, &"fuzz".into(), true);
    tlspeek::mesh::annotate(&mut report, 3600, tlspeek::mesh::MeshMode::Auto);
    let mut out = Vec::new();
    json::write_flow(&mut out, &report).expect("write to a Vec");
    assert_eq!(out.last(), Some(&b'\n'));
    let line = &out[..out.len() - 1];
    assert!(!line.contains(&b'\n'), "a JSON line holds a newline");
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
        panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(line));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, mut rest)) = data.split_first() else { return };
    let (limits, tls_buf) = if cfg_byte & 1 == 0 {
        let l = Limits {
            max_flows: 2,
            max_queue_bytes: 4096,
            max_total_bytes: 6144,
            idle_timeout_secs: 20,
            close_linger_secs: 5,
        };
        (l, 16 * 1024)
    } else {
        let l = Limits {
            max_flows: 3,
            max_queue_bytes: 64 * 1024,
            max_total_bytes: 96 * 1024,
            idle_timeout_secs: 300,
            close_linger_secs: 5,
        };
        (l, 64 * 1024)
    };
    let ccfg = ClassifyConfig {
        tls: TlsLimits { max_buffer: tls_buf },
        http: HttpConfig {
            show_secrets: cfg_byte & 2 != 0,
            max_header_bytes: 1024,
            max_messages: 4,
            lean_headers: cfg_byte & 8 != 0,
        },
        // Bit 2: certificate lists checked against the test mesh root (`--ca`).
        ca: (cfg_byte & 4 != 0).then(mesh_root),
        keylog: None,
    };
    let addrs: Vec<(IpAddr, IpAddr)> =
        FLOWS.iter().map(|f| (f.client.0.parse().unwrap(), f.server.0.parse().unwrap())).collect();
    let mut table: FlowTable<FlowClassifier> = FlowTable::new(limits);
    let mut done: Vec<(FlowMeta, FlowClassifier)> = Vec::new();
    let mut ts = Timestamp::new(1_700_000_000, 0);
    let mut order = 0u64;
    while rest.len() >= 8 {
        let (h, tail) = rest.split_at(8);
        let len = (u16::from_le_bytes([h[6], h[7]]) as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let fi = (h[0] & 3) as usize;
        let to_client = h[0] & 4 != 0;
        let cut = h[0] & 8 != 0;
        ts = Timestamp::new(ts.secs + (h[0] >> 4) as i64, ts.nanos as u64 + 1000);
        order += 1;
        let f = &FLOWS[fi];
        let (c, s) = addrs[fi];
        let rel = u32::from_le_bytes([h[2], h[3], h[4], h[5]]);
        let (src, dst, sport, dport, isn) = if to_client {
            (s, c, f.server.1, f.client.1, f.isn ^ 0x5555_0000)
        } else {
            (c, s, f.client.1, f.server.1, f.isn)
        };
        let wire_len = if cut { len as u32 + 1 + (h[7] as u32) * 7 } else { len as u32 };
        let seg = TcpSegment {
            src,
            dst,
            sport,
            dport,
            seq: isn.wrapping_add(rel),
            ack: 0,
            flags: h[1],
            payload,
            wire_len,
            link: tlspeek::decode::Link::Unknown,
        };
        let slot = table.process(&seg, ts, order, &mut || FlowClassifier::new(ccfg.clone()), &mut |m, c| {
            done.push((m, c))
        });
        if let Some((meta, c)) = slot.and_then(|p| table.flow_mut(p.slot)) {
            // What run.rs does for live `classified` events and the XFCC legs.
            std::hint::black_box(c.take_xfcc());
            if c.take_newly_classified() {
                let (client, _) = decide_client(meta, c.client_hint());
                let snap = c.snapshot(client);
                let mut report = FlowReport::build(meta.clone(), snap, &"fuzz".into(), true);
                tlspeek::mesh::annotate(&mut report, 3600, tlspeek::mesh::MeshMode::Auto);
                let mut out = Vec::new();
                json::write_flow(&mut out, &report).expect("write to a Vec");
                serde_json::from_slice::<serde_json::Value>(&out).expect("valid JSON");
            }
        }
        assert!(table.len() <= limits.max_flows, "{} flows alive, limit {}", table.len(), limits.max_flows);
        for (m, c) in done.drain(..) {
            check_report(m, c);
        }
    }
    table.end_all(&mut |m, c| done.push((m, c)));
    assert!(table.is_empty());
    for (m, c) in done.drain(..) {
        check_report(m, c);
    }
});

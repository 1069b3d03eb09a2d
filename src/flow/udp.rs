//! UDP flows counted per server ([`UdpBook`]). No mesh proxies UDP: Envoy sidecars leave it to
//! the app, and ambient mode's ztunnel carries TCP only (QUIC, DNS to a server outside the
//! pod, anything datagram-shaped leaves the pod as it is). The summary says which servers got
//! UDP, so an operator checking an ambient pod sees what HBONE does not cover.

use crate::decode::UdpDatagram;
use crate::wire::KeyedMap;
use std::net::SocketAddr;

/// UDP flows (endpoint pairs) remembered; datagrams of pairs beyond are counted apart, so a
/// capture full of spoofed sources costs at most this many entries (about 80 bytes each).
pub(crate) const MAX_UDP_FLOWS: usize = 16_384;

/// Per pair of endpoints (the lower one first): which is the server, datagrams, payload bytes.
#[derive(Clone, Copy, Debug)]
struct Pair {
    /// The server is the pair's second endpoint.
    server_is_hi: bool,
    packets: u64,
    bytes: u64,
}

/// UDP flows seen, keyed by their endpoint pair, bounded by [`MAX_UDP_FLOWS`].
#[derive(Clone, Debug, Default)]
pub(crate) struct UdpBook {
    pairs: KeyedMap<(SocketAddr, SocketAddr), Pair>,
    /// Datagrams of pairs not remembered (the map was full).
    pub(crate) untracked: u64,
}

/// One server's UDP totals (the summary's `udp` list).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct UdpServer {
    /// `ip:port`.
    pub(crate) server: String,
    /// Distinct clients (endpoint pairs).
    pub(crate) flows: u64,
    /// Datagrams both ways.
    pub(crate) packets: u64,
    /// Payload bytes both ways.
    pub(crate) bytes: u64,
}

impl UdpBook {
    /// Counts one datagram. The server of a new pair is the destination of its first datagram,
    /// unless only the source port is a well-known one (the capture began with an answer).
    pub(crate) fn saw(&mut self, d: &UdpDatagram) {
        let (src, dst) = (SocketAddr::new(d.src, d.sport), SocketAddr::new(d.dst, d.dport));
        let (key, dst_is_hi) = if src <= dst { ((src, dst), true) } else { ((dst, src), false) };
        let full = self.pairs.len() >= MAX_UDP_FLOWS;
        let pair = match self.pairs.get_mut(&key) {
            Some(p) => p,
            None if full => {
                self.untracked += 1;
                return;
            }
            None => {
                let answer = d.sport < 1024 && d.dport >= 1024;
                self.pairs.entry(key).or_insert(Pair {
                    server_is_hi: dst_is_hi != answer,
                    packets: 0,
                    bytes: 0,
                })
            }
        };
        pair.packets += 1;
        pair.bytes += u64::from(d.len);
    }

    /// Adds another book's pairs (another input file's), within the same bound.
    pub(crate) fn merge(&mut self, other: &UdpBook) {
        self.untracked += other.untracked;
        for (k, p) in &other.pairs {
            let full = self.pairs.len() >= MAX_UDP_FLOWS;
            match self.pairs.get_mut(k) {
                Some(q) => {
                    q.packets += p.packets;
                    q.bytes += p.bytes;
                }
                None if full => self.untracked += p.packets,
                None => {
                    self.pairs.insert(*k, *p);
                }
            }
        }
    }

    /// Totals per server, most flows first (then by address), and how many servers were left
    /// out beyond `max`.
    pub(crate) fn servers(&self, max: usize) -> (Vec<UdpServer>, u64) {
        let mut by: KeyedMap<SocketAddr, UdpServer> = KeyedMap::default();
        for ((lo, hi), p) in &self.pairs {
            let server = if p.server_is_hi { *hi } else { *lo };
            let s = by.entry(server).or_default();
            s.flows += 1;
            s.packets += p.packets;
            s.bytes += p.bytes;
        }
        let mut list: Vec<(SocketAddr, UdpServer)> = by.into_iter().collect();
        list.sort_by(|a, b| b.1.flows.cmp(&a.1.flows).then_with(|| a.0.cmp(&b.0)));
        let left = list.len().saturating_sub(max) as u64;
        let list = list
            .into_iter()
            .take(max)
            .map(|(a, mut s)| {
                s.server = crate::record::endpoint(a);
                s
            })
            .collect();
        (list, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Link;

    fn dgram(src: &str, dst: &str, len: u32) -> UdpDatagram {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        UdpDatagram { src: s.ip(), dst: d.ip(), sport: s.port(), dport: d.port(), len, link: Link::Device }
    }

    #[test]
    fn flows_are_counted_per_server_both_ways() {
        let mut b = UdpBook::default();
        b.saw(&dgram("10.0.0.5:40000", "10.0.0.9:443", 1200));
        b.saw(&dgram("10.0.0.9:443", "10.0.0.5:40000", 1000));
        b.saw(&dgram("10.0.0.6:40001", "10.0.0.9:443", 1200));
        // The capture began with the answer of a DNS server.
        b.saw(&dgram("10.96.0.10:53", "10.0.0.5:51000", 80));
        let (list, left) = b.servers(10);
        assert_eq!(left, 0);
        assert_eq!(
            list,
            vec![
                UdpServer { server: "10.0.0.9:443".into(), flows: 2, packets: 3, bytes: 3400 },
                UdpServer { server: "10.96.0.10:53".into(), flows: 1, packets: 1, bytes: 80 },
            ]
        );
        assert_eq!(b.servers(1).1, 1);
    }

    #[test]
    fn pairs_are_bounded() {
        let mut b = UdpBook::default();
        for i in 0..(MAX_UDP_FLOWS as u32 + 10) {
            let src = format!("10.{}.{}.{}:5000", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            b.saw(&dgram(&src, "10.255.0.1:4433", 10));
        }
        assert_eq!(b.pairs.len(), MAX_UDP_FLOWS);
        assert_eq!(b.untracked, 10);
        assert_eq!(b.servers(5).0[0].flows, MAX_UDP_FLOWS as u64);
    }
}

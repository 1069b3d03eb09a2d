//! One connection, two 4-tuples: the halves of an iptables `REDIRECT` seen on loopback.
//!
//! In a pod with Istio's rules (and ztunnel's in-pod redirection), an app's connection to
//! `10.96.120.15:9080` is redirected by `ISTIO_REDIRECT` to the proxy's `127.0.0.1:15001`. The
//! app's packets leave the OUTPUT chain already rewritten, so `tcpdump -i any` (or `-i lo`)
//! shows them as `10.244.1.5:45010 → 127.0.0.1:15001`; the proxy's replies are un-NATed by
//! conntrack before they are captured, and read `10.96.120.15:9080 → 10.244.1.5:45010`. Taken
//! by their 4-tuples, that is two flows, the second one "plaintext to the remote service".
//!
//! A packet from a non-loopback address to a loopback one cannot be sent without such a
//! rewrite (a socket connecting to 127.0.0.1 gets a loopback source), so those packets mark a
//! redirected connection's forward half, keyed by the app's endpoint. A packet to that
//! endpoint from a non-loopback address is its reply half when it answers the forward half: a
//! SYN-ACK acknowledging the forward SYN, or, when the capture began mid-connection, an
//! acknowledgment within a window of the forward half's sequence numbers. Paired replies are
//! given back with the proxy's loopback endpoint as source, so the flow table sees one
//! connection; the original destination is reported once, with the packet that paired it.
//!
//! The table is bounded ([`MAX_REDIRECTS`]); captures without such packets pay one branch per
//! packet.

use crate::decode::{tcp_flags, TcpSegment};
use crate::wire::KeyedMap;
use std::net::SocketAddr;

/// Redirected connections remembered at once; past it, those idle longest are forgotten.
pub(crate) const MAX_REDIRECTS: usize = 16_384;
/// Seconds of capture time after which a forward half not seen again is forgotten.
const IDLE_SECS: i64 = 600;
/// A mid-connection reply pairs when its acknowledgment is within this many bytes of what
/// the forward half sent last (a receive window).
const ACK_WINDOW: u32 = 1 << 20;

/// The forward half of one redirected connection, keyed by the app's endpoint.
#[derive(Clone, Copy, Debug)]
struct Forward {
    /// Where the packets were redirected to (the proxy's port on loopback).
    to: SocketAddr,
    /// Initial sequence number of the forward SYN, when it was seen.
    isn: Option<u32>,
    /// Sequence number after the forward half's latest payload.
    next: u32,
    /// The original destination, once a reply paired.
    original: Option<SocketAddr>,
    /// Capture second of the latest forward packet.
    last: i64,
}

/// Redirected connections seen so far (see the module documentation).
#[derive(Default)]
pub(crate) struct RedirectPairs {
    forward: KeyedMap<SocketAddr, Forward>,
}

/// What [`RedirectPairs::apply`] did to a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// Not a reply half: the segment is unchanged.
    None,
    /// A reply half: its source was rewritten to the proxy's endpoint.
    Rewritten,
    /// The reply that paired the halves: rewritten, and this was the original destination.
    Paired(SocketAddr),
}

impl RedirectPairs {
    /// Looks at one segment (capture second `secs`): remembers a forward half, or rewrites a
    /// reply half's source to the proxy's loopback endpoint.
    #[inline]
    pub(crate) fn apply(&mut self, seg: &mut TcpSegment<'_>, secs: i64) -> Redirect {
        // Most packets: one address test and one length test.
        if seg.dst.is_loopback() {
            if !seg.src.is_loopback() {
                self.forward_half(seg, secs);
            }
            return Redirect::None;
        }
        if self.forward.is_empty() || seg.src.is_loopback() {
            return Redirect::None;
        }
        self.reply_half(seg)
    }

    #[cold]
    fn forward_half(&mut self, seg: &TcpSegment<'_>, secs: i64) {
        let app = SocketAddr::new(seg.src, seg.sport);
        let to = SocketAddr::new(seg.dst, seg.dport);
        let syn = seg.has(tcp_flags::SYN) && !seg.has(tcp_flags::ACK);
        let next = seg.seq.wrapping_add(seg.wire_len).wrapping_add(u32::from(syn));
        if let Some(f) = self.forward.get_mut(&app) {
            if f.to == to && !syn {
                f.next = next;
                f.last = secs;
                return;
            }
        }
        if self.forward.len() >= MAX_REDIRECTS && !self.forward.contains_key(&app) {
            self.forward.retain(|_, f| secs - f.last < IDLE_SECS);
            if self.forward.len() >= MAX_REDIRECTS {
                self.forward.clear();
            }
        }
        let isn = syn.then_some(seg.seq);
        self.forward.insert(app, Forward { to, isn, next, original: None, last: secs });
    }

    #[cold]
    fn reply_half(&mut self, seg: &mut TcpSegment<'_>) -> Redirect {
        let app = SocketAddr::new(seg.dst, seg.dport);
        let Some(f) = self.forward.get_mut(&app) else { return Redirect::None };
        let from = SocketAddr::new(seg.src, seg.sport);
        let paired = match f.original {
            Some(o) if o == from => Redirect::Rewritten,
            Some(_) => return Redirect::None,
            None => {
                let answers = match f.isn {
                    Some(isn) => seg.has(tcp_flags::SYN | tcp_flags::ACK) && seg.ack == isn.wrapping_add(1),
                    None => seg.has(tcp_flags::ACK) && f.next.wrapping_sub(seg.ack) <= ACK_WINDOW,
                };
                if !answers {
                    return Redirect::None;
                }
                f.original = Some(from);
                Redirect::Paired(from)
            }
        };
        seg.src = f.to.ip();
        seg.sport = f.to.port();
        paired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn seg(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        TcpSegment {
            src: s.ip(),
            dst: d.ip(),
            sport: s.port(),
            dport: d.port(),
            seq,
            ack,
            flags,
            payload: &[],
            wire_len: len,
            link: crate::decode::Link::Loopback,
        }
    }

    const SYN: u8 = tcp_flags::SYN;
    const SYNACK: u8 = tcp_flags::SYN | tcp_flags::ACK;
    const ACK: u8 = tcp_flags::ACK;

    fn endpoints(s: &TcpSegment<'_>) -> (SocketAddr, SocketAddr) {
        (SocketAddr::new(s.src, s.sport), SocketAddr::new(s.dst, s.dport))
    }

    #[test]
    fn the_reply_half_of_a_redirected_connection_is_given_the_proxy_address() {
        let mut r = RedirectPairs::default();
        let mut fwd = seg("10.244.1.5:45010", "127.0.0.1:15001", SYN, 1000, 0, 0);
        assert_eq!(r.apply(&mut fwd, 1), Redirect::None);
        assert_eq!(endpoints(&fwd).1, "127.0.0.1:15001".parse().unwrap());
        // A SYN-ACK that does not acknowledge the forward SYN is somebody else's.
        let mut other = seg("10.96.120.15:9080", "10.244.1.5:45010", SYNACK, 7, 5000, 0);
        assert_eq!(r.apply(&mut other, 1), Redirect::None);
        let mut reply = seg("10.96.120.15:9080", "10.244.1.5:45010", SYNACK, 7, 1001, 0);
        assert_eq!(r.apply(&mut reply, 1), Redirect::Paired("10.96.120.15:9080".parse().unwrap()));
        assert_eq!(endpoints(&reply).0, "127.0.0.1:15001".parse().unwrap());
        let mut data = seg("10.96.120.15:9080", "10.244.1.5:45010", ACK, 8, 1100, 200);
        assert_eq!(r.apply(&mut data, 2), Redirect::Rewritten);
        assert_eq!(endpoints(&data).0, "127.0.0.1:15001".parse().unwrap());
        // The pod's own connections to other addresses are left alone.
        let mut out = seg("10.244.1.5:52110", "10.244.2.7:9080", ACK, 1, 1, 10);
        let mut back = seg("10.244.2.7:9080", "10.244.1.5:52110", ACK, 1, 11, 10);
        assert_eq!((r.apply(&mut out, 2), r.apply(&mut back, 2)), (Redirect::None, Redirect::None));
        assert_eq!(back.src, "10.244.2.7".parse::<IpAddr>().unwrap());
        // Ordinary loopback traffic (127.0.0.6 -> pod IP, 127.0.0.1 <-> 127.0.0.1) is not a
        // forward half.
        let mut inbound = seg("127.0.0.6:38410", "10.244.2.7:9080", SYN, 1, 0, 0);
        assert_eq!(r.apply(&mut inbound, 2), Redirect::None);
        assert_eq!(r.forward.len(), 1);
    }

    #[test]
    fn a_capture_that_starts_mid_connection_pairs_by_acknowledgment() {
        let mut r = RedirectPairs::default();
        let mut fwd = seg("10.244.1.5:45010", "127.0.0.1:15001", ACK, 5000, 900, 120);
        r.apply(&mut fwd, 1);
        let mut far =
            seg("10.96.120.15:9080", "10.244.1.5:45010", ACK, 900, 5000u32.wrapping_add(ACK_WINDOW + 200), 0);
        assert_eq!(r.apply(&mut far, 1), Redirect::None);
        let mut reply = seg("10.96.120.15:9080", "10.244.1.5:45010", ACK, 900, 5120, 300);
        assert_eq!(r.apply(&mut reply, 1), Redirect::Paired("10.96.120.15:9080".parse().unwrap()));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut r = RedirectPairs::default();
        for i in 0..(MAX_REDIRECTS as u32 * 3) {
            let src =
                format!("10.{}.{}.{}:{}", (i >> 16) & 255, (i >> 8) & 255, i & 255, 1000 + (i % 50_000));
            let mut s = seg(&src, "127.0.0.1:15001", SYN, i, 0, 0);
            r.apply(&mut s, i64::from(i));
            assert!(r.forward.len() <= MAX_REDIRECTS);
        }
    }
}

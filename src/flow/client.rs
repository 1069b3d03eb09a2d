//! Who is the client of a flow: [`decide_client`] weighs the evidence (the SYN, the SYN-ACK, a
//! protocol's own hint, a known server, the ports), [`KnownServers`] remembers the endpoints seen
//! answering a SYN, for flows whose handshake the capture missed.

use super::FlowMeta;
use crate::decode::TcpSegment;
use crate::wire::{KeyedState, Side};
use std::collections::HashSet;
use std::net::IpAddr;

crate::wire::text_enum! {
    /// The evidence a flow's client was decided by (the JSON `client_by`), strongest first.
    pub enum ClientBy {
        /// It sent the SYN.
        Syn => "syn",
        /// The other side sent the SYN-ACK.
        Synack => "synack",
        /// It sent the TLS ClientHello.
        ClientHello => "client_hello",
        /// It sent an HTTP request (or the HTTP/2 preface).
        HttpRequest => "http_request",
        /// The other side was seen answering a SYN in another flow ([`KnownServers`]).
        KnownServer => "known_server",
        /// Its port is the higher one.
        Port => "port",
        /// Same ports: it sent the first packet seen.
        FirstPacket => "first_packet",
    }
}

/// Decides which side is the client, and by what evidence.
pub fn decide_client(meta: &FlowMeta, hint: Option<(Side, ClientBy)>) -> (Side, ClientBy) {
    if let Some(s) = meta.syn_from {
        return (s, ClientBy::Syn);
    }
    if let Some(s) = meta.synack_from {
        return (s.other(), ClientBy::Synack);
    }
    if let Some(h) = hint {
        return h;
    }
    let (pa, pb) = (meta.endpoints[0].port(), meta.endpoints[1].port());
    match pa.cmp(&pb) {
        std::cmp::Ordering::Less => (Side::B, ClientBy::Port),
        std::cmp::Ordering::Greater => (Side::A, ClientBy::Port),
        std::cmp::Ordering::Equal => (Side::A, ClientBy::FirstPacket),
    }
}

/// Server endpoints seen answering a SYN (SYN-ACK senders), to tell client from server in
/// flows whose handshake the capture missed. Every shard is told of every SYN-ACK, so the set
/// is the same whatever `--threads`; bounded (cleared when full).
#[derive(Default)]
pub(crate) struct KnownServers(HashSet<(IpAddr, u16), KeyedState>);

/// A SYN-ACK: its sender is a server.
pub(crate) fn is_server_answer(seg: &TcpSegment<'_>) -> bool {
    use crate::decode::tcp_flags::{ACK, SYN};
    seg.has(SYN) && seg.has(ACK)
}

/// Server endpoints remembered at most.
const MAX_KNOWN_SERVERS: usize = 65_536;

impl KnownServers {
    /// Remembers the sender of `seg` when it is a SYN-ACK.
    pub(crate) fn saw(&mut self, seg: &TcpSegment<'_>) {
        if is_server_answer(seg) {
            self.note(seg.src, seg.sport);
        }
    }

    /// Remembers `ip:port` as a server.
    pub(crate) fn note(&mut self, ip: IpAddr, port: u16) {
        if !self.0.contains(&(ip, port)) {
            if self.0.len() >= MAX_KNOWN_SERVERS {
                self.0.clear();
            }
            self.0.insert((ip, port));
        }
    }

    /// The client side of a flow when exactly one endpoint is a known server.
    pub(crate) fn client_of(&self, meta: &FlowMeta) -> Option<Side> {
        let known = |i: usize| self.0.contains(&(meta.endpoints[i].ip(), meta.endpoints[i].port()));
        match (known(0), known(1)) {
            (true, false) => Some(Side::B),
            (false, true) => Some(Side::A),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tcp_flags::{ACK, SYN};
    use crate::flow::EndReason;
    use std::net::SocketAddr;

    fn meta(a: SocketAddr, b: SocketAddr) -> FlowMeta {
        FlowMeta {
            last_ts: Default::default(),
            packets: [1, 1],
            bytes: [0, 0],
            fin: [false; 2],
            rst: [false; 2],
            syn_from: None,
            synack_from: None,
            id: 1,
            endpoints: [a, b],
            first_ts: Default::default(),
            stats: Default::default(),
            end: EndReason::Idle,
            order: 1,
            memory_limited: false,
            original_dst: None,
            link: Default::default(),
        }
    }

    fn segment(src: SocketAddr, dst: SocketAddr, flags: u8) -> TcpSegment<'static> {
        let (sport, dport) = (src.port(), dst.port());
        TcpSegment {
            src: src.ip(),
            dst: dst.ip(),
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags,
            payload: &[],
            wire_len: 0,
            link: crate::decode::Link::Unknown,
        }
    }

    #[test]
    fn evidence_order() {
        let (hi, lo) = (SocketAddr::from(([10, 0, 0, 1], 50_000)), SocketAddr::from(([10, 0, 0, 2], 8080)));
        let mut m = meta(hi, lo);
        assert_eq!(decide_client(&m, None), (Side::A, ClientBy::Port));
        assert_eq!(
            decide_client(&m, Some((Side::B, ClientBy::KnownServer))),
            (Side::B, ClientBy::KnownServer)
        );
        m.synack_from = Some(Side::A);
        assert_eq!(decide_client(&m, Some((Side::A, ClientBy::ClientHello))), (Side::B, ClientBy::Synack));
        m.syn_from = Some(Side::A);
        assert_eq!(decide_client(&m, None), (Side::A, ClientBy::Syn));
        assert_eq!(
            decide_client(&meta(lo, SocketAddr::from(([10, 0, 0, 3], 8080))), None),
            (Side::A, ClientBy::FirstPacket)
        );
    }

    #[test]
    fn syn_ack_senders_are_known_servers() {
        let (client, server) =
            (SocketAddr::from(([10, 0, 0, 1], 80)), SocketAddr::from(([10, 0, 0, 2], 9000)));
        let mut k = KnownServers::default();
        k.saw(&segment(client, server, SYN));
        k.saw(&segment(server, client, ACK));
        assert_eq!(k.client_of(&meta(server, client)), None);
        k.saw(&segment(server, client, SYN | ACK));
        assert_eq!(k.client_of(&meta(server, client)), Some(Side::B));
        assert_eq!(k.client_of(&meta(client, server)), Some(Side::A));
        // Both endpoints known: no evidence either way.
        k.note(client.ip(), client.port());
        assert_eq!(k.client_of(&meta(client, server)), None);
    }
}

//! Link, IP and TCP views of captured bytes. Stateless except for IPv4 fragment reassembly,
//! which lives in [`defrag`].
//!
//! Link layers are ours (small, and etherparse knows neither SLL2, BSD NULL/LOOP, PPPoE nor
//! MPLS): Ethernet with any number of 802.1Q/802.1ad tags, MPLS, PPPoE session and LLC/SNAP;
//! Linux cooked SLL and SLL2; raw IP; BSD NULL/LOOP. IP and TCP headers are read with
//! etherparse's lax slicing, which keeps snaplen-truncated packets usable and removes Ethernet
//! padding using the IP length. Checksums are never checked: captures taken on the sending host
//! carry offloaded (wrong) checksums.

pub mod defrag;

use etherparse::{IpNumber, LaxIpSlice, TcpHeaderSlice};
use std::net::{IpAddr, Ipv4Addr};

/// TCP flag bits as in the header.
pub(crate) mod tcp_flags {
    /// FIN.
    pub(crate) const FIN: u8 = 0x01;
    /// SYN.
    pub(crate) const SYN: u8 = 0x02;
    /// RST.
    pub(crate) const RST: u8 = 0x04;
    /// ACK.
    pub(crate) const ACK: u8 = 0x10;
}

/// A TCP segment with its IP endpoints.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flag bits ([`tcp_flags`]).
    pub flags: u8,
    /// Captured payload bytes.
    pub payload: &'a [u8],
    /// Payload length on the wire (larger than `payload.len()` when the capture cut it).
    pub wire_len: u32,
    /// The kind of interface it was captured on, when the link layer says.
    pub link: Link,
}

/// The kind of Linux interface a packet was captured on, as far as its link layer tells: Linux
/// cooked captures (`tcpdump -i any`: SLL, SLL2) carry the device type, and Linux's `lo` gives
/// Ethernet frames with both addresses zero (BSD NULL/LOOP captures are not from a pod: unknown). Inside an ambient pod this is the
/// only thing that tells ztunnel's delivery to the app (on `lo`, from the client's spoofed
/// address) from the same addresses arriving on the pod's interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    /// Raw IP, or a link layer without the information.
    #[default]
    Unknown,
    /// A loopback interface (SLL, SLL2: the device type says so).
    Loopback,
    /// Ethernet frames with both MAC addresses zero: Linux's `lo`, or a capture written by a
    /// tool that left them zero (weaker evidence than [`Link::Loopback`]).
    ZeroMacs,
    /// Any other interface.
    Device,
}

/// A UDP datagram's endpoints (the summary counts UDP flows per server: no mesh proxies UDP).
#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Payload bytes captured.
    pub len: u32,
    /// The kind of interface it was captured on.
    pub link: Link,
}

impl TcpSegment<'_> {
    /// True if the flag bit is set.
    #[inline]
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// An IPv4 fragment waiting for reassembly.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Fragment<'a> {
    /// Source address.
    pub(crate) src: [u8; 4],
    /// Destination address.
    pub(crate) dst: [u8; 4],
    /// IP identification.
    pub(crate) id: u16,
    /// Transport protocol number.
    pub(crate) proto: u8,
    /// Offset of this fragment's payload in the datagram, bytes.
    pub(crate) offset: usize,
    /// More fragments follow.
    pub(crate) more: bool,
    /// This fragment's payload.
    pub(crate) payload: &'a [u8],
}

/// What is not a TCP segment, for the summary's `non_tcp` counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NonTcp {
    /// UDP datagram.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Another IP protocol.
    OtherIp,
    /// ARP.
    Arp,
    /// A non-IP ethertype (LLDP, STP, ...).
    OtherEthertype,
    /// A link type we do not decode.
    UnsupportedLink,
    /// IPv6 fragment (not reassembled).
    Ipv6Fragment,
    /// Too short or inconsistent to decode.
    Malformed,
}

impl NonTcp {
    /// Key used in the JSON summary.
    pub fn key(self) -> &'static str {
        match self {
            NonTcp::Udp => "udp",
            NonTcp::Icmp => "icmp",
            NonTcp::OtherIp => "other_ip",
            NonTcp::Arp => "arp",
            NonTcp::OtherEthertype => "other_ethertype",
            NonTcp::UnsupportedLink => "unsupported_link",
            NonTcp::Ipv6Fragment => "ipv6_fragment",
            NonTcp::Malformed => "malformed",
        }
    }
}

/// Result of decoding one packet.
#[derive(Clone, Copy, Debug)]
pub enum Decoded<'a> {
    /// A TCP segment.
    Tcp(TcpSegment<'a>),
    /// An IPv4 fragment (see [`defrag`]).
    Fragment(Ipv4Fragment<'a>),
    /// A whole UDP datagram (counted as [`NonTcp::Udp`] too).
    Udp(UdpDatagram),
    /// Anything else.
    Other(NonTcp),
}

/// Link types we decode (LINKTYPE_* numbers, <https://www.tcpdump.org/linktypes.html>).
pub fn is_supported_linktype(linktype: u32) -> bool {
    matches!(linktype, 0 | 1 | 12 | 14 | 101 | 108 | 113 | 228 | 229 | 276)
}

/// Human name of a link type, for warnings.
pub fn linktype_name(linktype: u32) -> String {
    let n = match linktype {
        0 => "NULL",
        1 => "ETHERNET",
        101 | 12 | 14 => "RAW",
        105 => "IEEE802_11",
        108 => "LOOP",
        113 => "LINUX_SLL",
        127 => "IEEE802_11_RADIOTAP",
        147..=162 => "USER",
        228 => "IPV4",
        229 => "IPV6",
        276 => "LINUX_SLL2",
        _ => "",
    };
    if n.is_empty() {
        format!("link type {linktype}")
    } else {
        format!("link type {linktype} ({n})")
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;
/// Bound on stacked VLAN tags / MPLS labels, so a hostile frame cannot loop long.
const MAX_LINK_NESTING: usize = 16;

#[inline]
fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

/// What the IP layer is decoded with: whether the capture cut the frame, and the interface
/// kind the link layer told (passed down, not set on the result: that copied every segment).
#[derive(Clone, Copy)]
pub(crate) struct Cx {
    pub(crate) cut: bool,
    pub(crate) link: Link,
}

/// Decodes one captured frame of link type `linktype`.
///
/// `orig_len` is the frame's length on the wire: only when the capture cut the frame
/// (`orig_len > data.len()`) are the IP length fields trusted to say how much is missing.
/// Otherwise the captured bytes are all there is (IP lengths can be zero or wrong with
/// segmentation offload, and link layers such as PPPoE bound the packet themselves).
pub fn decode(linktype: u32, data: &[u8], orig_len: u32) -> Decoded<'_> {
    match plain_ethernet_tcp(linktype, data, orig_len) {
        Some(seg) => Decoded::Tcp(seg),
        None => decode_any(linktype, data, orig_len),
    }
}

/// The segment of nearly every packet: a whole IPv4 TCP segment in an untagged Ethernet frame,
/// decoded by the same code as in [`decode`]; `None` for any other frame (then `decode` it).
/// Inlined in the packet loop, and a segment rather than a [`Decoded`]: the enum was built on
/// the stack, then copied field by field into the caller's segment, and three calls deep (-60
/// instructions a packet, 12.7M of 573M on the 100 MB bench file).
#[inline(always)]
pub(crate) fn plain_ethernet_tcp(linktype: u32, data: &[u8], orig_len: u32) -> Option<TcpSegment<'_>> {
    let (1, Some(&[.., 0x08, 0x00])) = (linktype, data.get(..14)) else { return None };
    let cx = Cx { cut: orig_len as usize > data.len(), link: ether_link(data) };
    let (src, dst, seg) = plain_ipv4_tcp_parts(&data[14..], cx)?;
    tcp_header(src, dst, seg, 0, cx.link)
}

/// The interface kind of an Ethernet frame (at least 12 bytes): both MAC addresses zero is Linux's
/// `lo`.
#[inline(always)]
fn ether_link(data: &[u8]) -> Link {
    // Two loads, not a 12-byte comparison: this runs for every Ethernet frame.
    let a = u64::from_ne_bytes(data[..8].try_into().unwrap_or_default());
    let b = u32::from_ne_bytes(data[8..12].try_into().unwrap_or_default());
    if a | u64::from(b) == 0 {
        Link::ZeroMacs
    } else {
        Link::Device
    }
}

/// [`decode`] of any frame (the packet loop calls it for the frames
/// [`plain_ethernet_tcp`] left).
#[inline(never)]
pub(crate) fn decode_any(linktype: u32, data: &[u8], orig_len: u32) -> Decoded<'_> {
    const ARPHRD_LOOPBACK: u16 = 772;
    let cut = orig_len as usize > data.len();
    let device = |hatype: Option<u16>| Cx {
        cut,
        link: if hatype == Some(ARPHRD_LOOPBACK) { Link::Loopback } else { Link::Device },
    };
    match linktype {
        1 => match be16(data, 12) {
            Some(t) => decode_ethertype(t, &data[14..], Cx { cut, link: ether_link(data) }),
            None => Decoded::Other(NonTcp::Malformed),
        },
        // BSD loopback: not a Linux pod, whose interface rules (lo, SLL) `Link` serves.
        0 | 108 => decode_null(data, Cx { cut, link: Link::Unknown }),
        // Linux cooked captures carry the device's ARPHRD type (bytes 2..4 in SLL, 8..10 in SLL2).
        113 => match be16(data, 14) {
            Some(proto) if data.len() >= 16 => decode_ethertype(proto, &data[16..], device(be16(data, 2))),
            _ => Decoded::Other(NonTcp::Malformed),
        },
        276 => match be16(data, 0) {
            Some(proto) if data.len() >= 20 => decode_ethertype(proto, &data[20..], device(be16(data, 8))),
            _ => Decoded::Other(NonTcp::Malformed),
        },
        12 | 14 | 101 | 228 | 229 => decode_ip(data, Cx { cut, link: Link::Unknown }),
        _ => Decoded::Other(NonTcp::UnsupportedLink),
    }
}

fn decode_null(data: &[u8], cx: Cx) -> Decoded<'_> {
    if data.len() < 4 {
        return Decoded::Other(NonTcp::Malformed);
    }
    // The address family is in the capturing host's byte order (NULL) or network order (LOOP):
    // accept both. AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the OS.
    let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let fam = if le < 256 { le } else { be };
    match fam {
        2 | 24 | 28 | 30 => decode_ip(&data[4..], cx),
        _ => Decoded::Other(NonTcp::OtherEthertype),
    }
}

/// Follows VLAN tags, MPLS labels, PPPoE and LLC/SNAP to an IP header.
fn decode_ethertype(mut ethertype: u16, mut rest: &[u8], cx: Cx) -> Decoded<'_> {
    for _ in 0..MAX_LINK_NESTING {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return decode_ip(rest, cx),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => match be16(rest, 2) {
                Some(t) => {
                    ethertype = t;
                    rest = &rest[4..];
                }
                None => return Decoded::Other(NonTcp::Malformed),
            },
            ETH_MPLS | ETH_MPLS_MC => {
                // Skip labels to the bottom of stack, then guess IPv4/IPv6 by the version nibble.
                let mut i = 0;
                loop {
                    let Some(l) = rest.get(i..i + 4) else {
                        return Decoded::Other(NonTcp::Malformed);
                    };
                    i += 4;
                    if l[2] & 1 == 1 {
                        break;
                    }
                    if i >= 4 * MAX_LINK_NESTING {
                        return Decoded::Other(NonTcp::Malformed);
                    }
                }
                return match rest.get(i).map(|b| b >> 4) {
                    Some(4) | Some(6) => decode_ip(&rest[i..], cx),
                    _ => Decoded::Other(NonTcp::OtherEthertype),
                };
            }
            ETH_PPPOE_SESSION => {
                // RFC 2516: the PPPoE length (PPP protocol + payload) bounds the IP packet, which
                // matters when the IP length is zero (segmentation offload) and padding follows.
                let end = be16(rest, 4).map_or(rest.len(), |l| (6 + l as usize).min(rest.len()));
                return match be16(rest, 6) {
                    Some(0x0021) | Some(0x0057) if end >= 8 => decode_ip(&rest[8..end], cx),
                    Some(_) => Decoded::Other(NonTcp::OtherEthertype),
                    None => Decoded::Other(NonTcp::Malformed),
                };
            }
            ETH_ARP => return Decoded::Other(NonTcp::Arp),
            t if t <= 1500 => {
                // IEEE 802.3 length field: LLC, maybe SNAP (AA AA 03 + OUI + ethertype).
                return match rest.get(0..8) {
                    Some([0xaa, 0xaa, 0x03, _, _, _, hi, lo]) => {
                        let t = u16::from_be_bytes([*hi, *lo]);
                        if t == ETH_IPV4 || t == ETH_IPV6 {
                            decode_ip(&rest[8..], cx)
                        } else {
                            Decoded::Other(NonTcp::OtherEthertype)
                        }
                    }
                    _ => Decoded::Other(NonTcp::OtherEthertype),
                };
            }
            _ => return Decoded::Other(NonTcp::OtherEthertype),
        }
    }
    Decoded::Other(NonTcp::Malformed)
}

/// Decodes an IPv4 or IPv6 packet (with extension headers) and its TCP header. `cut`: the
/// capture's snapshot length cut the frame.
pub(crate) fn decode_ip(data: &[u8], cx: Cx) -> Decoded<'_> {
    match plain_ipv4_tcp(data, cx) {
        Some(d) => d,
        None => decode_ip_lax(data, cx),
    }
}

/// Nearly every packet, by hand: a whole, unfragmented IPv4 packet carrying TCP, whose lengths
/// agree with each other and with the capture. Anything else is left to etherparse's lax
/// slicing, which gives the same answer here (a test compares them on mutated packets) at a
/// higher cost per packet (bench/RESULTS.md).
fn plain_ipv4_tcp(data: &[u8], cx: Cx) -> Option<Decoded<'_>> {
    let (src, dst, seg) = plain_ipv4_tcp_parts(data, cx)?;
    Some(tcp_segment(src, dst, seg, 0, cx.link))
}

/// [`plain_ipv4_tcp`]'s addresses and TCP bytes.
#[inline(always)]
fn plain_ipv4_tcp_parts(data: &[u8], cx: Cx) -> Option<(IpAddr, IpAddr, &[u8])> {
    let h = data.get(..20)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0; // more fragments, or an offset
    if cx.cut || h[0] >> 4 != 4 || ihl < 20 || total < ihl || total > data.len() || h[9] != 6 || fragment {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    Some((src, dst, &data[ihl..total]))
}

/// [`decode_ip`] by etherparse's lax slicing (any IP packet, also cut or damaged).
fn decode_ip_lax(data: &[u8], cx: Cx) -> Decoded<'_> {
    let Ok((ip, _ext_err)) = LaxIpSlice::from_slice(data) else {
        return Decoded::Other(NonTcp::Malformed);
    };
    let payload = ip.payload();
    let proto = payload.ip_number;
    if payload.fragmented {
        return match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                Decoded::Fragment(Ipv4Fragment {
                    src: h.source(),
                    dst: h.destination(),
                    id: h.identification(),
                    proto: proto.0,
                    offset: usize::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                    payload: payload.payload,
                })
            }
            LaxIpSlice::Ipv6(_) => Decoded::Other(NonTcp::Ipv6Fragment),
        };
    }
    if proto == IpNumber::UDP {
        if let Some(h) = payload.payload.get(..8) {
            return Decoded::Udp(UdpDatagram {
                src: ip.source_addr(),
                dst: ip.destination_addr(),
                sport: u16::from_be_bytes([h[0], h[1]]),
                dport: u16::from_be_bytes([h[2], h[3]]),
                len: (payload.payload.len() - 8).min(u32::MAX as usize) as u32,
                link: cx.link,
            });
        }
    }
    if proto != IpNumber::TCP {
        return Decoded::Other(match proto {
            IpNumber::UDP => NonTcp::Udp,
            IpNumber::ICMP | IpNumber::IPV6_ICMP => NonTcp::Icmp,
            _ => NonTcp::OtherIp,
        });
    }
    // Length on the wire of the TCP segment: from the IP header when the capture was cut.
    let wire_len = match &ip {
        _ if !cx.cut => 0,
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4)
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let ext = payload_offset_in(data, payload.payload).saturating_sub(40);
            usize::from(h.payload_length()).saturating_sub(ext)
        }
    };
    tcp_segment(ip.source_addr(), ip.destination_addr(), payload.payload, wire_len, cx.link)
}

/// Byte offset of `inner` inside `outer` (both slices of one buffer).
fn payload_offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Decodes a TCP header and payload. `wire_len` is the segment length the IP header declares
/// (0 if unknown).
pub fn decode_tcp(src: IpAddr, dst: IpAddr, seg: &[u8], wire_len: usize) -> Decoded<'_> {
    tcp_segment(src, dst, seg, wire_len, Link::Unknown)
}

/// [`decode_tcp`] of a segment captured on a `link`.
fn tcp_segment(src: IpAddr, dst: IpAddr, seg: &[u8], wire_len: usize, link: Link) -> Decoded<'_> {
    match tcp_header(src, dst, seg, wire_len, link) {
        Some(s) => Decoded::Tcp(s),
        None => Decoded::Other(NonTcp::Malformed),
    }
}

/// [`tcp_segment`], `None` for a malformed header.
#[inline(always)]
fn tcp_header(src: IpAddr, dst: IpAddr, seg: &[u8], wire_len: usize, link: Link) -> Option<TcpSegment<'_>> {
    let h = TcpHeaderSlice::from_slice(seg).ok()?;
    let hl = usize::from(h.data_offset()) * 4;
    let payload = seg.get(hl..).unwrap_or(&[]);
    let b13 = seg[13];
    let wire_payload = wire_len.saturating_sub(hl).max(payload.len());
    Some(TcpSegment {
        src,
        dst,
        sport: h.source_port(),
        dport: h.destination_port(),
        seq: h.sequence_number(),
        ack: h.acknowledgment_number(),
        flags: b13,
        payload,
        wire_len: wire_payload.min(u32::MAX as usize) as u32,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 TCP SYN 10.0.0.1:1234 -> 10.0.0.2:80 with payload "hi".
    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut v = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        v.extend_from_slice(&[
            0x04, 0xd2, 0, 80, 0, 0, 0, 100, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        v.extend_from_slice(payload);
        v
    }

    fn expect_tcp(d: Decoded<'_>) -> TcpSegment<'_> {
        match d {
            Decoded::Tcp(t) => t,
            other => panic!("not tcp: {other:?}"),
        }
    }

    #[test]
    fn ethernet_qinq_and_padding() {
        let ip = ipv4_tcp(b"hi");
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]); // Ethernet padding must not become payload
        let t = expect_tcp(decode(1, &f, f.len() as u32));
        assert_eq!(t.payload, b"hi");
        assert_eq!((t.sport, t.dport, t.seq), (1234, 80, 100));
        assert_eq!(t.src.to_string(), "10.0.0.1");
    }

    #[test]
    fn sll2_null_loop_and_raw() {
        let ip = ipv4_tcp(b"x");
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        assert_eq!(expect_tcp(decode(276, &sll2, 0)).payload, b"x");
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        assert_eq!(expect_tcp(decode(0, &null, 0)).payload, b"x");
        let mut lo = vec![0, 0, 0, 2];
        lo.extend_from_slice(&ip);
        assert_eq!(expect_tcp(decode(108, &lo, 0)).payload, b"x");
        assert_eq!(expect_tcp(decode(101, &ip, 0)).payload, b"x");
        assert!(matches!(decode(147, &ip, 0), Decoded::Other(NonTcp::UnsupportedLink)));
    }

    #[test]
    fn the_interface_kind_comes_from_the_link_layer() {
        let ip = ipv4_tcp(b"x");
        // SLL2 (`tcpdump -i any`): ARPHRD type at bytes 8..10; 772 is loopback, 1 Ethernet.
        let sll2 = |hatype: u16| {
            let mut f = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1];
            f.extend_from_slice(&hatype.to_be_bytes());
            f.extend_from_slice(&[0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
            f.extend_from_slice(&ip);
            f
        };
        assert_eq!(expect_tcp(decode(276, &sll2(772), 0)).link, Link::Loopback);
        assert_eq!(expect_tcp(decode(276, &sll2(1), 0)).link, Link::Device);
        // SLL: ARPHRD type at bytes 2..4.
        let mut sll = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(expect_tcp(decode(113, &sll, 0)).link, Link::Loopback);
        sll[3] = 1;
        assert_eq!(expect_tcp(decode(113, &sll, 0)).link, Link::Device);
        // Ethernet: Linux's lo leaves both MAC addresses zero.
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(expect_tcp(decode(1, &eth, 0)).link, Link::ZeroMacs);
        eth[5] = 1;
        assert_eq!(expect_tcp(decode(1, &eth, 0)).link, Link::Device);
        assert_eq!(expect_tcp(decode(101, &ip, 0)).link, Link::Unknown);
    }

    #[test]
    fn udp_datagrams_carry_their_endpoints() {
        let mut ip = ipv4_tcp(b"");
        ip.truncate(20);
        ip[9] = 17;
        ip[3] = 20 + 8 + 3;
        ip.extend_from_slice(&[0x9c, 0x40, 0x11, 0x51, 0, 11, 0, 0, b'a', b'b', b'c']);
        match decode(101, &ip, 0) {
            Decoded::Udp(u) => {
                assert_eq!(
                    (u.src.to_string(), u.sport, u.dst.to_string(), u.dport),
                    ("10.0.0.1".into(), 40000, "10.0.0.2".into(), 4433)
                );
                assert_eq!(u.len, 3);
            }
            other => panic!("not udp: {other:?}"),
        }
    }

    #[test]
    fn snaplen_cut_keeps_what_was_captured() {
        let ip = ipv4_tcp(b"hello world");
        let t = expect_tcp(decode(101, &ip[..45], ip.len() as u32));
        assert_eq!(t.payload, b"hello");
        assert_eq!(t.wire_len, 11);
    }

    /// The hand-written IPv4 path answers exactly as etherparse's for every packet it takes:
    /// header bytes of real-looking packets mutated one, two and three at a time.
    #[test]
    fn plain_ipv4_path_agrees_with_etherparse() {
        let base = ipv4_tcp(b"hello");
        let mut with_options = base.clone();
        with_options[0] = 0x46; // IHL 6: four option bytes
        with_options.splice(20..20, [1u8, 1, 1, 0]);
        with_options[3] += 4;
        let mut taken = 0;
        let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15);
        for p in [&base, &with_options] {
            for _ in 0..20_000 {
                let mut m = p.to_vec();
                for _ in 0..=next() % 3 {
                    let i = (next() % 24) as usize;
                    m[i] = next() as u8;
                }
                let len = m.len() - (next() % 3) as usize;
                for cut in [false, true] {
                    let fast = plain_ipv4_tcp(&m[..len], Cx { cut, link: Link::Unknown });
                    if let Some(f) = fast {
                        taken += 1;
                        assert_eq!(
                            format!("{f:?}"),
                            format!("{:?}", decode_ip_lax(&m[..len], Cx { cut, link: Link::Unknown })),
                            "{m:02x?}"
                        );
                    }
                }
            }
        }
        assert!(taken > 1000, "{taken}");
        assert!(plain_ipv4_tcp(&base, Cx { cut: false, link: Link::Unknown }).is_some());
    }

    /// The packet loop's Ethernet path gives the segment `decode_any` gives, and leaves every
    /// other frame to it: Ethernet frames (zero and real MACs, a VLAN ethertype) mutated in the
    /// link and IP headers, cut short or marked cut by the capture.
    #[test]
    fn plain_ethernet_path_agrees_with_decode_any() {
        let ip = ipv4_tcp(b"hello");
        let frame = |macs: u8, ethertype: [u8; 2]| {
            let mut f = vec![macs; 12];
            f.extend_from_slice(&ethertype);
            f.extend_from_slice(&ip);
            f
        };
        let (mut taken, mut left) = (0, 0);
        let mut next = crate::wire::xorshift(0x2545_f491_4f6c_dd1d);
        for base in [frame(0, [8, 0]), frame(0x5a, [8, 0]), frame(0x5a, [0x81, 0])] {
            for _ in 0..20_000 {
                let mut m = base.clone();
                for _ in 0..next() % 3 {
                    let i = (next() % 38) as usize;
                    m[i] = next() as u8;
                }
                let len = m.len() - (next() % 3) as usize;
                let orig = len as u32 + (next() % 2) as u32;
                match plain_ethernet_tcp(1, &m[..len], orig) {
                    Some(seg) => {
                        taken += 1;
                        let any = decode_any(1, &m[..len], orig);
                        assert_eq!(format!("{:?}", Decoded::Tcp(seg)), format!("{any:?}"), "{m:02x?}");
                    }
                    None => left += 1,
                }
            }
        }
        assert!(taken > 3_000 && left > 30_000, "{taken} {left}");
        assert!(plain_ethernet_tcp(113, &frame(0, [8, 0]), 59).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for lt in [0, 1, 101, 108, 113, 276] {
            for n in 0..64 {
                let b: Vec<u8> = (0..n).map(|i| (i * 37 + lt as usize) as u8).collect();
                // Whatever it makes of the bytes, a segment it returns lies within them.
                if let Decoded::Tcp(seg) = decode(lt, &b, n as u32) {
                    let (start, end) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
                    let p = seg.payload.as_ptr() as usize;
                    assert!(seg.payload.is_empty() || (p >= start && p + seg.payload.len() <= end));
                    assert!(seg.wire_len as usize >= seg.payload.len());
                }
            }
        }
    }
}

#!/usr/bin/env python3
"""Derives link-type, file-format and adversarial variants from the real captures.

Only what real stacks cannot produce is hand-made here (VLAN/QinQ tags, other link types and file
formats, reordering, duplicates, overlaps, fragments, truncation), always from packets that real
stacks sent. Deterministic: the same inputs give the same outputs.  Usage: derive.py CAPTURES_DIR
"""
import os
import struct
import sys

D = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__) + "/.."


def read(name):
    b = open(os.path.join(D, name), "rb").read()
    assert b[:4] == b"\xd4\xc3\xb2\xa1", name
    lt = struct.unpack("<I", b[20:24])[0]
    off, pkts = 24, []
    while off + 16 <= len(b):
        s, us, incl, orig = struct.unpack("<IIII", b[off:off + 16])
        pkts.append([s, us, b[off + 16:off + 16 + incl], orig])
        off += 16 + incl
    return lt, pkts


def write(name, lt, pkts, big_endian=False, nanos=False, snaplen=262144):
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with open(os.path.join(D, name), "wb") as f:
        f.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, lt))
        for s, frac, data, orig in pkts:
            f.write(struct.pack(e + "IIII", s, frac, len(data), orig))
            f.write(data)


# --- Ethernet/IPv4/TCP helpers ---------------------------------------------------------------

def tcp_parts(frame):
    """(ip_off, tcp_off, payload_off) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    t = 14 + ihl
    return 14, t, t + (frame[t + 12] >> 4) * 4


def flags(frame):
    p = tcp_parts(frame)
    return frame[p[1] + 13] if p else 0


def payload(frame):
    p = tcp_parts(frame)
    return frame[p[2]:] if p else b""


def sport(frame):
    p = tcp_parts(frame)
    return struct.unpack(">H", frame[p[1]:p[1] + 2])[0]


def ip_checksum(frame, ip):
    """Frame with its IPv4 header checksum recomputed."""
    b = bytearray(frame)
    ihl = (b[ip] & 15) * 4
    b[ip + 10:ip + 12] = b"\0\0"
    s = sum(struct.unpack(">%dH" % (ihl // 2), bytes(b[ip:ip + ihl])))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    b[ip + 10:ip + 12] = struct.pack(">H", ~s & 0xFFFF)
    return bytes(b)


def with_payload(frame, seq_delta, new_payload):
    """Copy of a TCP frame with its payload replaced and its sequence number moved."""
    ip, t, pl = tcp_parts(frame)
    b = bytearray(frame[:pl]) + new_payload
    seq = (struct.unpack(">I", b[t + 4:t + 8])[0] + seq_delta) & 0xFFFFFFFF
    b[t + 4:t + 8] = struct.pack(">I", seq)
    b[ip + 2:ip + 4] = struct.pack(">H", len(b) - ip)
    return ip_checksum(bytes(b), ip)


def split(pkt, n):
    """Splits a data packet into n segments of real bytes (same timestamp)."""
    s, us, frame, _ = pkt
    data = payload(frame)
    step = -(-len(data) // n)
    out = []
    for i in range(0, len(data), step):
        f = with_payload(frame, i, data[i:i + step])
        out.append([s, us, f, len(f)])
    return out


def data_indexes(pkts, port=None):
    return [i for i, p in enumerate(pkts) if payload(p[2]) and (port is None or sport(p[2]) == port)]


# --- variants ----------------------------------------------------------------------------------

def link_variants():
    lt, http = read("http-keepalive-sidecar.pcap")
    assert lt == 1
    q = [[s, us, f[:12] + b"\x88\xa8\x00\x64\x81\x00\x00\x0a" + f[12:], o + 8] for s, us, f, o in http]
    write("vlan-qinq.pcap", 1, q)
    write("http-bigendian.pcap", 1, http, big_endian=True)
    _, mtls = read("tls12-mtls-istio.pcap")
    ipv4 = [p for p in mtls if p[2][12:14] == b"\x08\x00"]
    write("raw-ip.pcap", 101, [[s, us, f[14:], o - 14] for s, us, f, o in ipv4])
    _, srv = read("tls12-server-only.pcap")
    v4 = [p for p in srv if p[2][12:14] == b"\x08\x00"]
    write("null-loopback.pcap", 0, [[s, us, b"\x02\x00\x00\x00" + f[14:], o - 10] for s, us, f, o in v4])
    # pcapng: interface 0 Ethernet (microseconds), interface 1 raw IP (nanoseconds).
    def block(t, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", t, n) + body + struct.pack("<I", n)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0))
    out += block(1, struct.pack("<HHI", 101, 0, 0) + struct.pack("<HHB3x", 9, 1, 9) + b"\0\0\0\0")
    pk = [(s * 10**6 + us, 0, f) for s, us, f, _ in srv] + [(s * 10**9 + us * 1000, 1, f[14:]) for s, us, f, _ in http
                                                          if f[12:14] in (b"\x08\x00", b"\x86\xdd")]
    pk.sort(key=lambda x: x[0] / (10**6 if x[1] == 0 else 10**9))
    for ts, iface, f in pk:
        out += block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f)
    open(os.path.join(D, "pcapng-multi-if.pcapng"), "wb").write(out)


def reordered_and_duplicated():
    _, p = read("tls12-mtls-istio.pcap")
    client = data_indexes(p, port=None)
    ch = client[0]                      # ClientHello (first data packet, from the client)
    sv = next(i for i in client if sport(p[i][2]) == 9080)  # server's first flight
    a = split(p[ch], 3)
    b = split(p[sv], 4)
    r = p[:ch] + [a[2], a[0], a[1]] + p[ch + 1:sv] + [b[3], b[1], b[0], b[2]] + p[sv + 1:]
    write("tls12-mtls-reordered.pcap", 1, r)
    # Duplicates: every ClientHello piece twice, plus one segment overlapping pieces 1-2 with the
    # same bytes.
    s, us, frame, _ = p[ch]
    data = payload(frame)
    third = len(a[0][2]) - tcp_parts(a[0][2])[2]
    ov = with_payload(frame, third // 2, data[third // 2: third + third // 2 + 10])
    d = p[:ch] + [a[0], a[1], a[0], [s, us, ov, len(ov)], a[1], a[2], a[2]] + p[ch + 1:]
    write("tls12-mtls-duplicated.pcap", 1, d)


def overlap_conflict():
    _, p = read("http-keepalive-sidecar.pcap")
    i = data_indexes(p)[0]
    s, us, frame, _ = p[i]
    data = payload(frame)
    x = split(p[i], 2)
    evil = data[:40].replace(b"/reviews/0", b"/hacked/00")
    f = with_payload(frame, 0, evil)
    write("http-overlap-conflict.pcap", 1, p[:i] + x + [[s, us, f, len(f)]] + p[i + 1:])


def truncated():
    _, p = read("tls12-mtls-istio.pcap")
    write("tls12-truncated-snaplen.pcap", 1, [[s, us, f[:200], o] for s, us, f, o in p], snaplen=200)
    raw = open(os.path.join(D, "tls12-mtls-istio.pcap"), "rb").read()
    # End the file in the middle of a packet record: 24-byte header, records, then half a record.
    off, n = 24, 0
    while off + 16 <= len(raw) and n < 6:
        incl = struct.unpack("<I", raw[off + 8:off + 12])[0]
        off += 16 + incl
        n += 1
    incl = struct.unpack("<I", raw[off + 8:off + 12])[0]
    open(os.path.join(D, "tls-cut-short.pcap"), "wb").write(raw[:off + 16 + incl // 2])


def midstream():
    _, p = read("tls12-small-mtu-chain.pcap")
    srv = data_indexes(p, port=443)
    write("tls-midstream.pcap", 1, p[srv[2]:])
    _, h = read("http-keepalive-sidecar.pcap")
    reqs = [i for i in data_indexes(h) if sport(h[i][2]) != 9080]
    write("http-midstream.pcap", 1, h[reqs[1]:])


def fragments():
    _, p = read("http-keepalive-sidecar.pcap")
    i = data_indexes(p)[0]
    s, us, frame, _ = p[i]
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    body = ip[ihl:]
    frags = []
    for off in range(0, len(body), 200):
        chunk = body[off:off + 200]
        more = off + 200 < len(body)
        h = bytearray(ip[:ihl])
        h[2:4] = struct.pack(">H", ihl + len(chunk))
        h[6:8] = struct.pack(">H", (0x2000 if more else 0) | (off // 8))
        f = ip_checksum(frame[:14] + bytes(h) + chunk, 14)
        frags.append([s, us, f, len(f)])
    frags = frags[1:] + frags[:1]  # last-but-first order: the first fragment arrives last
    write("ipv4-fragments.pcap", 1, p[:i] + frags + p[i + 1:])


link_variants()
reordered_and_duplicated()
overlap_conflict()
truncated()
midstream()
fragments()

#!/usr/bin/env python3
"""Builds a large capture from small real ones, for timing tlspeek against tshark.

    bench/replicate.py OUT.pcap SIZE_MB IN.pcap [IN.pcap ...]

Every input (classic pcap, Ethernet or raw IPv4, no VLAN) is copied over and over; each copy gets
its own IPv4 addresses (10.X.Y.Z) and ports, and copies are interleaved 64 at a time so the flow
table holds many concurrent flows. Checksums are left stale (tlspeek, like tcpdump on a sending
host, never checks them). Deterministic: same inputs, same output.
"""
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        en, ns = "<", False
    elif magic == b"\xa1\xb2\xc3\xd4":
        en, ns = ">", False
    elif magic == b"\x4d\x3c\xb2\xa1":
        en, ns = "<", True
    elif magic == b"\xa1\xb2\x3c\x4d":
        en, ns = ">", True
    else:
        raise SystemExit(f"{path}: not a classic pcap")
    linktype = struct.unpack(en + "I", data[20:24])[0]
    if linktype not in (1, 101):
        raise SystemExit(f"{path}: link type {linktype} unsupported here")
    off, pkts = 24, []
    while off + 16 <= len(data):
        s, frac, incl, orig = struct.unpack(en + "IIII", data[off:off + 16])
        us = frac // 1000 if ns else frac
        pkts.append((s + us / 1e6, data[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    return linktype, pkts


def rewrite(pkt, linktype, n):
    """Gives copy n its own addresses and ports."""
    b = bytearray(pkt)
    ip = 14 if linktype == 1 else 0
    if linktype == 1 and b[12:14] != b"\x08\x00":
        return bytes(b)
    if len(b) < ip + 20 or b[ip] >> 4 != 4:
        return bytes(b)
    ihl = (b[ip] & 15) * 4
    a = 10, (n >> 16) & 255, (n >> 8) & 255, n & 255
    # Map each original address to one of two per-copy addresses (keeps direction consistent).
    for o in (ip + 12, ip + 16):
        low = b[o + 3] & 1
        b[o:o + 4] = bytes((a[0], a[1] | (low << 7), a[2], a[3]))
    if b[ip + 9] == 6 and len(b) >= ip + ihl + 4:
        t = ip + ihl
        sp, dp = struct.unpack(">HH", b[t:t + 4])
        # Keep the well-known (lower) port, vary the ephemeral one.
        if sp > dp:
            sp = 1024 + (sp + n * 7) % 60000
        else:
            dp = 1024 + (dp + n * 7) % 60000
        b[t:t + 4] = struct.pack(">HH", sp, dp)
    return bytes(b)


def main():
    out, size_mb, inputs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    caps = [read_pcap(p) for p in inputs]
    if any(lt != caps[0][0] for lt, _ in caps):
        raise SystemExit("all inputs must share a link type")
    target = int(size_mb * 1e6)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, caps[0][0]))
        written, n, t0 = 24, 0, 1_700_000_000.0
        while written < target:
            batch = []
            for _ in range(64):
                lt, pkts = caps[n % len(caps)]
                base = pkts[0][0] if pkts else 0
                batch.append([(t0 + (ts - base), rewrite(p, lt, n), orig) for ts, p, orig in pkts])
                n += 1
            merged = sorted((p for c in batch for p in c), key=lambda x: x[0])
            for ts, p, orig in merged:
                s = int(ts)
                f.write(struct.pack("<IIII", s, int((ts - s) * 1e6), len(p), orig))
                f.write(p)
                written += 16 + len(p)
            t0 += 1.0
    print(f"{out}: {written} bytes, {n} flow copies")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, made from the test captures (captures/*.pcap, *.pcapng).

    fuzz/seeds.py CAPTURES_DIR CORPUS_DIR

Writes CORPUS_DIR/<target>/<sha1 prefix> files (idempotent; existing files are kept):
- capture_reader, pipeline: the capture files as they are;
- decode: frames of every capture in the decode target's format (link type selector, orig_len);
- reassembly: the TCP segments of each flow (and of the first four flows of each capture
  together) in the reassembly target's descriptor format;
- tls, http: the reassembled TCP payload of each flow, one chunk per segment in capture order,
  in the chunk format of those targets (TLS-looking flows go to tls, HTTP-looking ones to http);
- proxy: synthetic PROXY v1/v2 headers before HTTP and a TLS record.

Frames are read by a small pcap/pcapng reader below; TCP fields come from tshark (needed for the
reassembly/tls/http seeds only; without tshark those corpora start from a few synthetic seeds).
"""

import hashlib
import os
import shutil
import struct
import subprocess
import sys

# Must match LINKTYPES in fuzz_targets/decode.rs.
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


def write_seed(corpus, target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16])
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
        return 1
    return 0


def frames(path):
    """Yields (linktype, frame, orig_len) of a pcap or pcapng file; stops at damage."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 24:
        return
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        yield from pcapng_frames(b)
        return
    else:
        return
    lt = struct.unpack(e + "I", b[20:24])[0] & 0x0FFFFFFF
    o = 24
    while o + 16 <= len(b):
        _, _, incl, orig = struct.unpack(e + "IIII", b[o : o + 16])
        if o + 16 + incl > len(b):
            return
        yield lt, b[o + 16 : o + 16 + incl], orig
        o += 16 + incl


def pcapng_frames(b):
    o, e, ifaces = 0, "<", []
    while o + 12 <= len(b):
        if b[o : o + 4] == b"\x0a\x0d\x0d\x0a":
            e = ">" if b[o + 8 : o + 12] == b"\x1a\x2b\x3c\x4d" else "<"
            ifaces = []
        btype, blen = struct.unpack(e + "II", b[o : o + 8])
        if blen < 12 or o + blen > len(b):
            return
        body = b[o + 8 : o + blen - 4]
        if btype == 1 and len(body) >= 8:
            ifaces.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            iface, _, _, cap, orig = struct.unpack(e + "IIIII", body[:20])
            if iface < len(ifaces):
                yield ifaces[iface], body[20 : 20 + cap], orig
        o += blen


def decode_seeds(path, corpus):
    n = 0
    for i, (lt, frame, orig) in enumerate(frames(path)):
        if i >= 64:
            break
        sel = LINKTYPES.index(lt) if lt in LINKTYPES else len(LINKTYPES) - 1
        if orig > len(frame):
            hdr = bytes([sel, 1]) + struct.pack("<H", min(orig - len(frame), 0xFFFF))
        else:
            hdr = bytes([sel, 0, 0, 0])
        n += write_seed(corpus, "decode", hdr + frame)
    return n


FIELDS = [
    "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "tcp.seq_raw", "tcp.flags", "tcp.len",
    "tcp.payload", "frame.time_epoch",
]


def tcp_segments(path):
    """{stream: [(src, seq, flags, wire_len, payload, time)]} from tshark, in capture order."""
    try:
        out = subprocess.run(
            ["tshark", "-n", "-r", path, "-Y", "tcp", "-T", "fields", "-E", "separator=/t"]
            + sum([["-e", f] for f in FIELDS], []),
            capture_output=True, check=False, timeout=120,
        ).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    streams = {}
    for line in out.splitlines():
        c = line.split("\t")
        if len(c) < len(FIELDS) or not c[0] or not c[4]:
            continue
        src = (c[1] or c[2]) + ":" + c[3]
        payload = bytes.fromhex(c[7].replace(":", "")) if c[7] else b""
        streams.setdefault(int(c[0]), []).append(
            (src, int(c[4]), int(c[5], 16), int(c[6] or 0), payload, float(c[8]))
        )
    return streams


def reassembly_seed(flows):
    """flows: list of segment lists; flow i uses the target's 4-tuple number i."""
    events = []
    for fi, segs in enumerate(flows):
        client = segs[0][0]
        for s in segs:
            if s[2] & 0x12 == 0x02:  # SYN without ACK: its sender is the client
                client = s[0]
                break
        isn = {}
        for k, (src, seq, flags, wire, payload, t) in enumerate(segs):
            d = 0 if src == client else 1
            isn.setdefault(d, seq)
            events.append((t, fi, k, d, (seq - isn[d]) & 0xFFFFFFFF, flags, wire, payload))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    out = bytearray([0])
    last = events[0][0] if events else 0
    for t, fi, _, d, rel, flags, wire, payload in events:
        payload = payload[:0xFFFF]
        secs = max(0, min(15, int(t - last)))
        last = max(last, t)
        cut = 8 if wire > len(payload) else 0
        out.append(fi | (d << 2) | cut | (secs << 4))
        out.append(flags & 0xFF)
        out += struct.pack("<IH", rel, len(payload))
        out += payload
    return bytes(out)


def stream_chunks(segs):
    """In-order payload per direction, delivered in capture order: [(side, bytes)]."""
    a = segs[0][0]
    isn, have = {}, {}
    for src, seq, flags, wire, payload, t in segs:
        d = 0 if src == a else 1
        isn.setdefault(d, seq + (1 if flags & 0x02 else 0))
    # Whole stream per direction (first copy of a byte wins), up to its first hole.
    for d in (0, 1):
        parts = sorted(
            ((s[1] - isn[d]) & 0xFFFFFFFF, s[4]) for s in segs if (0 if s[0] == a else 1) == d and s[4]
        )
        buf = bytearray()
        for rel, p in parts:
            if rel > len(buf) or rel > 1 << 24:
                break
            buf += p[len(buf) - rel :]
        have[d] = bytes(buf)
    sent = {0: 0, 1: 0}
    out = []
    for src, seq, flags, wire, payload, t in segs:
        d = 0 if src == a else 1
        if not payload:
            continue
        end = min(((seq - isn[d]) & 0xFFFFFFFF) + len(payload), len(have[d]))
        if end > sent[d]:
            out.append((d, have[d][sent[d] : end]))
            sent[d] = end
    return out, have


def chunk_seed(chunks, cfg=0):
    out = bytearray([cfg])
    for side, data in chunks:
        for i in range(0, len(data), 0xFFFF):
            piece = data[i : i + 0xFFFF]
            out.append((side << 7) | 0x1F)
            out += struct.pack("<H", len(piece))
            out += piece
    return bytes(out)


def looks_tls(b):
    return len(b) >= 3 and ((b[0] in (0x14, 0x15, 0x16, 0x17) and b[1] == 3) or b[0] & 0x80) or b"\x16\x03" in b


def looks_http(b):
    head = b[:16]
    return bool(head) and (head[:1].isalpha() or b"HTTP/" in b[:4096])


def synthetic(corpus):
    n = 0
    req = b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc"
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    n += write_seed(corpus, "http", chunk_seed([(0, req), (1, resp)]))
    n += write_seed(corpus, "http", chunk_seed([(0, b"CONNECT h:443 HTTP/1.1\r\n\r\n"), (1, b"HTTP/1.1 200 OK\r\n\r\n")]))
    n += write_seed(corpus, "http", chunk_seed([(0, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"),
                                                (1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")]))
    # HTTP/2: RFC 7541 C.4 request blocks and C.6 response blocks (Huffman, dynamic table).
    reqs = [bytes.fromhex(h) for h in ("828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
                                       "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")]
    resps = [bytes.fromhex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3"),
             bytes.fromhex("4883640effc1c0bf")]

    def frame(ty, flags, stream, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([ty, flags]) + struct.pack(">I", stream) + payload

    settings = frame(4, 0, 0, struct.pack(">HI", 1, 256))
    client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + b"".join(
        frame(1, 5, 2 * i + 1, b) + frame(0, 1, 2 * i + 1, b"\0\0\0\0\2hi") for i, b in enumerate(reqs))
    server = settings + frame(4, 1, 0, b"") + b"".join(
        frame(1, 4, 2 * i + 1, b) + frame(0, 1, 2 * i + 1, b"ok") for i, b in enumerate(resps))
    server += frame(3, 0, 5, struct.pack(">I", 8)) + frame(7, 0, 0, struct.pack(">II", 5, 0))
    n += write_seed(corpus, "h2_frames", chunk_seed([(0, client), (1, server)], cfg=1))
    n += write_seed(corpus, "h2_frames", chunk_seed([(1, server[7:]), (0, client[40:])], cfg=0))
    n += write_seed(corpus, "h2_session", chunk_seed([(0, client), (1, server)], cfg=1))
    n += write_seed(corpus, "h2_session", chunk_seed([(1, server[7:]), (0, client[40:])], cfg=2))
    blocks = b"".join(struct.pack("<H", len(b)) + b for b in reqs)
    n += write_seed(corpus, "h2_hpack", bytes([0x10]) + blocks)
    n += write_seed(corpus, "h2_hpack", bytes([0x11]) + b"".join(struct.pack("<H", len(b)) + b for b in resps))
    # proxy: v1 and v2 headers (as in captures/proxy-*.pcap) before HTTP and a TLS record.
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", 12 + 45 + 36)
          + bytes([10, 244, 1, 5, 10, 244, 2, 7]) + struct.pack(">HH", 43210, 9080)
          + b"\xd0" + struct.pack(">H", 42) + b"spiffe://cluster.local/ns/default/sa/sleep"
          + b"\xd1" + struct.pack(">H", 33) + b"reviews.default.svc.cluster.local")
    for head in (b"PROXY TCP4 127.0.0.1 127.0.0.1 40601 8001\r\n", b"PROXY TCP6 fd00::1 fd00::2 1 2\r\n",
                 b"PROXY UNKNOWN\r\n", v2, b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"):
        for step, rest in ((255, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"), (6, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")):
            n += write_seed(corpus, "proxy", bytes([step]) + head + rest)
    return n


def tls_decrypt_seeds(corpus):
    """tls_decrypt: a TLS 1.3 flow for each suite, sealed by the target (chunk operation 1): the
    server's EncryptedExtensions (ALPN h2) + CertificateRequest + Finished, the client's empty
    Certificate + Finished, a request, a KeyUpdate, a response, close_notify."""
    def msg(t, body):
        return bytes([t]) + struct.pack(">I", len(body))[1:] + body

    def chunk(side, sel, ctype, plain):
        data = bytes([sel | (ctype - 20) << 2]) + plain
        return bytes([side << 7 | 1 << 5 | 31]) + struct.pack("<H", len(data)) + data

    n = 0
    for cfg, hash_len in ((0, 32), (1, 48), (2, 32), (4, 32)):
        server = msg(8, bytes.fromhex("000900100005000302683200")[:11]) + msg(13, b"\0\0\0") + msg(20, b"\xaa" * hash_len)
        flow = chunk(1, 1, 22, server)
        flow += chunk(0, 0, 22, msg(11, b"\0\0\0\0") + msg(20, b"\xbb" * hash_len))
        flow += chunk(0, 2, 23, b"GET /seed HTTP/1.1\r\nHost: x\r\n\r\n")
        flow += chunk(0, 2, 22, msg(24, b"\1"))
        flow += chunk(1, 3, 23, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        flow += chunk(1, 3, 21, b"\1\0")
        n += write_seed(corpus, "tls_decrypt", bytes([cfg]) + bytes(range(48)) + flow)
    return n


def main():
    caps, corpus = sys.argv[1], sys.argv[2]
    files = sorted(
        os.path.join(caps, f) for f in os.listdir(caps) if f.endswith(".pcap") or f.endswith(".pcapng")
    )
    counts = {}

    def add(target, n):
        counts[target] = counts.get(target, 0) + n

    have_tshark = shutil.which("tshark") is not None
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        add("capture_reader", write_seed(corpus, "capture_reader", raw))
        add("pipeline", write_seed(corpus, "pipeline", raw))
        add("decode", decode_seeds(path, corpus))
        if not have_tshark:
            continue
        streams = tcp_segments(path)
        flows = [streams[k] for k in sorted(streams)]
        if flows:
            add("reassembly", write_seed(corpus, "reassembly", reassembly_seed(flows[:4])))
        for segs in flows:
            add("reassembly", write_seed(corpus, "reassembly", reassembly_seed([segs])))
            chunks, have = stream_chunks(segs)
            if not chunks:
                continue
            both = have[0] + have[1]
            if looks_tls(have[0]) or looks_tls(have[1]):
                add("tls", write_seed(corpus, "tls", chunk_seed(chunks)))
            if looks_http(have[0]) or looks_http(have[1]) or b"HTTP/" in both:
                add("http", write_seed(corpus, "http", chunk_seed(chunks)))
    add("http", synthetic(corpus))
    add("tls_decrypt", tls_decrypt_seeds(corpus))
    for t in ("capture_reader", "decode", "reassembly", "tls", "http", "pipeline", "tls_decrypt"):
        os.makedirs(os.path.join(corpus, t), exist_ok=True)
        total = len(os.listdir(os.path.join(corpus, t)))
        print(f"seeds: {t:15} +{counts.get(t, 0):4} new, {total:6} in corpus/{t}")
    if not have_tshark:
        print("seeds: tshark not found: reassembly/tls corpora start empty", file=sys.stderr)


if __name__ == "__main__":
    main()

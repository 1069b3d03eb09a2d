#!/usr/bin/env python3
"""Compares tlspeek's HTTP/2 view with tshark's on the HTTP/2 captures (captures/h2.md).

    scripts/h2-check.py [--bin target/debug/tlspeek] [--tshark-only] [--verbose] [PCAP ...]

Default files: captures/h2c-nghttp-*.pcap, h2c-curl.pcap, h2c-midstream.pcap, grpc-*.pcap,
istio-grpc-*.pcap. For each file, tshark's `http2` dissection (-T json) is turned into flows
keyed by the client's ip:port (the side that sent `:method`; on a loopback leg split by an
iptables REDIRECT both halves carry the same client address), each with its streams:

    stream, method, path, host (:authority), headers (regular request headers, in order),
    status (final), interim statuses, response headers, trailers (server), unknown_fields
    (fields whose dynamic-table entry was added before the capture: tshark shows `<unknown>`),
    grpc {service, method, status, status_name, message (percent-decoded)}, push (promised by)

plus the HTTP/1.1 request that an `Upgrade: h2c` carries (stream 1), SETTINGS per side, GOAWAY
and RST_STREAM. A header block tshark leaves undecoded (TShark 4.0 applies a peer's single
SETTINGS_HEADER_TABLE_SIZE smaller than 4,096 as if it had first been 0, and then rejects a
block that starts with a table size update to that value) is decoded by python3-hpack instead,
which follows every block of the direction from the start of the connection; such blocks are
listed in `python_hpack_blocks`. Header blocks split into
HEADERS + CONTINUATION frames are joined. `--tshark-only` prints these facts (one JSON line per
flow) and exits. Otherwise `tlspeek -r PCAP --json -q --show-secrets` is run and each h2c flow's
`http.requests[]` / `http.responses[]` are compared with them field by field under the schema
of the HTTP/2 work (requests: stream, method, path, host, headers without the pseudo-headers,
unknown_fields, data, grpc; final responses: stream, status, headers, trailers, unknown_fields;
rst_streams); see `compare`. Exit status: 0 when everything agrees (or --tshark-only),
1 on a difference, 2 when tlspeek crashed.

tshark quirks handled here (TShark 4.0): HTTP/2 found by its heuristic dissector is not
reassembled across TCP segments, so every server port of an HTTP/2 connection is given to
`-d tcp.port==P,http2` (ports of connections that start with the client preface, or, with no
SYN seen, that start with a frame header; never TLS or HTTP/1 connections); the gRPC dissector
is disabled (`--disable-protocol grpc`): on a loopback leg whose halves have different
addresses it fails an assertion and stops dissecting the rest of the packet.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import urllib.parse

try:
    import hpack
except ImportError:                     # Debian's python3-hpack, when python3 is another interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import hpack
    except ImportError:
        hpack = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFACE = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a"
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
GRPC_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
              "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
              "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
              "UNAUTHENTICATED"]


def default_files():
    pats = ["h2c-nghttp-*.pcap", "h2c-curl.pcap", "h2c-midstream.pcap", "grpc-*.pcap", "istio-grpc-*.pcap"]
    out = []
    for p in pats:
        out += sorted(glob.glob(os.path.join(ROOT, "captures", p)))
    return out


def tshark(args):
    p = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"tshark {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def pairs(kv):
    """json object_pairs_hook keeping repeated keys (tshark writes one key per header)."""
    d = {}
    for k, v in kv:
        d.setdefault(k, []).append(v)
    return d


def one(d, k, default=None):
    v = d.get(k)
    return v[0] if v else default


def h2_ports(pcap):
    """Server ports of HTTP/2 connections, and the tcp.stream numbers to leave out (TLS, HTTP/1)."""
    rows = tshark(["-r", pcap, "-o", "tcp.desegment_tcp_streams:FALSE", "-Y", "tcp.len > 0",
                   "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
                   "-e", "tcp.payload"])
    first = {}
    for line in rows.splitlines():
        s, sp, dp, payload = line.split("\t")
        first.setdefault(s, (int(sp), int(dp), payload))
    ports, skip = set(), set()
    for s, (sp, dp, payload) in first.items():
        if payload.startswith(PREFACE):
            ports.add(dp)
        elif payload[:2] in ("16", "17", "15"):
            skip.add(s)                       # TLS
        elif bytes.fromhex(payload[:6]).isupper():
            pass                              # HTTP/1: an upgrade is followed by tshark itself
        else:
            ports.add(min(sp, dp))            # mid-connection, or the reply half of a split leg
    return ports, skip


def walk_http1(layer):
    """(method, uri, host, upgrade) of an HTTP/1 request layer."""
    found = {}

    def rec(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("http.request.method", "http.request.uri", "http.host", "http.upgrade"):
                    found.setdefault(k, v[0] if isinstance(v, list) else v)
                for e in (v if isinstance(v, list) else [v]):
                    rec(e)
    rec(layer)
    return found


def facts(pcap):
    ports, skip = h2_ports(pcap)
    args = ["-r", pcap, "--disable-protocol", "grpc", "-T", "json", "-J", "ip ipv6 tcp http http2"]
    for p in sorted(ports):
        args += ["-d", f"tcp.port=={p},http2"]
    pkts = json.loads(tshark(args), object_pairs_hook=pairs)
    flows = {}        # client endpoint -> {streams}
    pending = {}      # (src, dst) -> header blocks being built across CONTINUATION

    def flow(client):
        return flows.setdefault(client, {"client": client, "streams": {}, "upgrade": None,
                                         "settings": {}, "goaway": [], "rst_streams": []})

    def stream(f, sid):
        return f["streams"].setdefault(sid, {
            "stream": sid, "method": None, "path": None, "host": None, "headers": [],
            "status": None, "interim": [], "response_headers": [], "trailers": [],
            "request_trailers": [], "unknown_fields": 0, "response_unknown_fields": 0,
            "promised_by": None, "data": {"client": 0, "server": 0}})

    dirs = {}         # (src, dst) -> "client" | "server" once known
    decoders = {}     # (src, dst) -> python-hpack decoder (None once it failed: mid-connection)
    raw = {}          # (src, dst) -> header block bytes being joined
    fallback = []     # blocks tshark left undecoded and python-hpack decoded
    for pkt in pkts:
        layers = one(one(pkt, "_source"), "layers")
        tcp = one(layers, "tcp")
        if tcp is None or one(tcp, "tcp.stream") in skip:
            continue
        ip = one(layers, "ip") or one(layers, "ipv6")
        src_ip = one(ip, "ip.src") or one(ip, "ipv6.src")
        dst_ip = one(ip, "ip.dst") or one(ip, "ipv6.dst")
        src = f"{src_ip}:{one(tcp, 'tcp.srcport')}"
        dst = f"{dst_ip}:{one(tcp, 'tcp.dstport')}"
        for h1 in layers.get("http", []):
            r = walk_http1(h1)
            if "http.request.method" in r and r.get("http.upgrade", "").lower() == "h2c":
                f = flow(src)
                f["upgrade"] = {"method": r["http.request.method"], "path": r.get("http.request.uri"),
                                "host": r.get("http.host")}
                dirs[(src, dst)], dirs[(dst, src)] = "client", "server"
        for h2 in layers.get("http2", []):
            for st in h2.get("http2.stream", []):
                if "http2.magic" in st:
                    dirs[(src, dst)], dirs[(dst, src)] = "client", "server"
                typ = one(st, "http2.type")
                if typ is None:
                    continue
                typ, sid = int(typ), int(one(st, "http2.streamid", "0"))
                flags = int(one(st, "http2.flags", "0x0"), 16)
                hdrs = [(one(h, "http2.header.name", ""), one(h, "http2.header.value", ""))
                        for h in st.get("http2.header", [])]
                if typ in (1, 5, 9):
                    if typ == 1 and any(n == ":method" for n, _ in hdrs):
                        dirs[(src, dst)], dirs[(dst, src)] = "client", "server"
                    elif typ == 1 and any(n == ":status" for n, _ in hdrs) or typ == 5:
                        dirs[(src, dst)], dirs[(dst, src)] = "server", "client"
                    key = (src, dst)
                    frag = one(st, "http2.headers") or one(st, "http2.continuation.header") or ""
                    try:
                        frag = bytes.fromhex(frag.replace(":", ""))
                    except ValueError:        # tshark shows a 1-byte field as a number
                        frag = bytes([int(frag)]) if frag.isdigit() and int(frag) < 256 else b""
                    raw[key] = (raw.get(key, b"") if typ == 9 else b"") + frag
                    if typ != 9:
                        promised = one(st, "http2.push_promise.promised_stream_id")
                        pending[key] = {"sid": int(promised) if promised else sid, "push": typ == 5,
                                        "by": sid, "hdrs": [], "end": bool(flags & 1)}
                    if key in pending:
                        pending[key]["hdrs"] += hdrs
                    if flags & 4 and key in pending:          # END_HEADERS
                        block = pending.pop(key)
                        dec = decoders.setdefault(key, hpack.Decoder() if hpack else None)
                        mine = None
                        if dec is not None:
                            try:
                                mine = [(n.decode("utf-8", "replace") if isinstance(n, bytes) else n,
                                         v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                                        for n, v in dec.decode(raw.get(key, b""), raw=True)]
                            except Exception:
                                decoders[key] = None      # an entry from before the capture
                        if not block["hdrs"] and mine:
                            block["hdrs"] = mine
                            fallback.append(f"{src}->{dst} stream {block['sid']}")
                            if any(n == ":method" for n, _ in mine) and not block["push"]:
                                dirs[(src, dst)], dirs[(dst, src)] = "client", "server"
                        side = dirs.get(key)
                        client = src if side == "client" else dst
                        if side is None:
                            continue
                        s = stream(flow(client), block["sid"])
                        known = [(n, v) for n, v in block["hdrs"] if n != "<unknown>"]
                        unknown = len(block["hdrs"]) - len(known)
                        pseudo = dict((n, v) for n, v in known if n.startswith(":"))
                        regular = [[n, v] for n, v in known if not n.startswith(":")]
                        if side == "client" or block["push"]:
                            if s["method"] is None and (pseudo or not s["headers"]):
                                s["method"], s["path"] = pseudo.get(":method"), pseudo.get(":path")
                                s["host"] = pseudo.get(":authority")
                                s["headers"], s["unknown_fields"] = regular, unknown
                                if block["push"]:
                                    s["promised_by"] = block["by"]
                            else:
                                s["request_trailers"] = regular
                        else:
                            st_ = pseudo.get(":status")
                            if st_ and st_.startswith("1"):
                                s["interim"].append(int(st_))
                            elif st_ and s["status"] is None:
                                s["status"], s["response_headers"] = int(st_), regular
                                s["response_unknown_fields"] = unknown
                            else:
                                s["trailers"] = regular
                                s["response_unknown_fields"] += unknown
                elif typ == 0:
                    side = dirs.get((src, dst))
                    if side:
                        client = src if side == "client" else dst
                        s = stream(flow(client), sid)
                        s["data"][side] += int(one(st, "http2.length", "0")) - \
                            (int(one(st, "http2.pad_length", "0")) + 1 if flags & 8 else 0)
                elif typ == 3 or typ == 7 or typ == 4:
                    side = dirs.get((src, dst))
                    if not side:
                        continue
                    f = flow(src if side == "client" else dst)
                    if typ == 3:
                        f["rst_streams"].append({"by": side, "stream": sid,
                                                 "error": int(one(st, "http2.rst_stream.error", "0"))})
                    elif typ == 7:
                        f["goaway"].append({"by": side,
                                            "last_stream": int(one(st, "http2.goaway.last_stream_id", "0")),
                                            "error": int(one(st, "http2.goaway.error", "0"))})
                    elif not flags & 1 and side not in f["settings"]:
                        vals = {}
                        for sset in st.get("http2.settings", []):
                            sid_ = one(sset, "http2.settings.id")
                            for k, v in sset.items():
                                if k.startswith("http2.settings.") and k != "http2.settings.id":
                                    vals.setdefault(f"{k[15:]}({sid_})", []).append(int(v[0]))
                        f["settings"][side] = vals
    out = []
    for f in flows.values():
        if f["upgrade"] and 1 in f["streams"] and f["streams"][1]["method"] is None:
            f["streams"][1].update(f["upgrade"])      # the HTTP/1.1 Upgrade request is stream 1
        streams = []
        for s in sorted(f["streams"].values(), key=lambda s: s["stream"]):
            if s["method"] is None and s["status"] is None and not s["headers"]:
                continue
            ct = next((v for n, v in s["headers"] if n == "content-type"), "") or \
                next((v for n, v in s["response_headers"] if n == "content-type"), "")
            s["grpc"] = None
            if ct.startswith("application/grpc"):
                tr = dict(s["trailers"] or s["response_headers"])
                svc, _, meth = (s["path"] or "/").lstrip("/").partition("/")
                code = tr.get("grpc-status")
                s["grpc"] = {"service": svc or None, "method": meth or None,
                             "status": int(code) if code is not None and code.isdigit() else None,
                             "status_name": GRPC_NAMES[int(code)] if code and code.isdigit()
                             and int(code) < len(GRPC_NAMES) else None,
                             "message": urllib.parse.unquote(tr["grpc-message"]) if "grpc-message" in tr else None,
                             "encoding": next((v for n, v in s["headers"] if n == "grpc-encoding"), None)}
            streams.append(s)
        if streams or f["upgrade"]:
            out.append({"client": f["client"], "upgrade": f["upgrade"], "settings": f["settings"],
                        "goaway": f["goaway"], "rst_streams": f["rst_streams"], "streams": streams,
                        "python_hpack_blocks": [b for b in fallback if f["client"] in b]})
    return out


def run_tlspeek(binary, pcap):
    p = subprocess.run([binary, "-r", pcap, "--json", "-q", "--show-secrets"], capture_output=True,
                       text=True, timeout=120)
    crash = p.returncode < 0 or p.returncode >= 100 or "panicked" in p.stderr
    flows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return [f for f in flows if f.get("type") == "flow"], crash


def regular(headers):
    """tlspeek's HTTP/2 `headers` start with the pseudo-headers (as sent); tshark's facts above
    keep the regular fields only."""
    return [list(h) for h in headers or [] if not h[0].startswith(":")]


def compare(truth, flows):
    """Differences, as strings, between tshark's facts and tlspeek's flows.

    tlspeek's schema: `http.requests[]` / `http.responses[]` paired by `stream`; `headers` with
    the pseudo-headers first; a pseudo-header whose table entry was lost leaves `method`/`path`
    empty (`""`) and `host` null; the HTTP/1.1 `Upgrade: h2c` request is stream 1 with its
    HTTP/1 headers (tshark has none for it); `data` per stream; `http.http2.rst_streams`.
    A loopback leg split by a REDIRECT is two tlspeek flows with the same client (one carries
    the requests, the other the responses): they are compared together."""
    diffs = []
    by_client = {}
    for f in flows:
        by_client.setdefault(f["client"], []).append(f)
    for t in truth:
        fs = by_client.get(t["client"])
        if not fs:
            diffs.append(f"{t['client']}: no tlspeek flow with this client")
            continue
        for f in fs:
            if f.get("protocol") != "h2c":
                diffs.append(f"{t['client']}: protocol {f.get('protocol')!r}, tshark saw HTTP/2")
            if (f.get("http") or {}).get("version") != "HTTP/2":
                diffs.append(f"{t['client']}: http.version {(f.get('http') or {}).get('version')!r}, "
                             "expected 'HTTP/2'")
        https = [f.get("http") or {} for f in fs]
        reqs = [r for h in https for r in h.get("requests") or []]
        got = {r.get("stream"): r for r in reqs}
        resps = {}
        for h in https:
            for r in h.get("responses") or []:
                if r.get("status", 0) >= 200 or r.get("status") == 0:
                    resps[r.get("stream")] = r
        rsts = sorted((r["stream"], r["from"], r["error"]) for h in https
                      for r in ((h.get("http2") or {}).get("rst_streams") or []))
        want_rsts = sorted((r["stream"], r["by"], ERROR_NAMES[r["error"]] if r["error"] < len(ERROR_NAMES)
                            else hex(r["error"])) for r in t["rst_streams"])
        if rsts != want_rsts:
            diffs.append(f"{t['client']}: rst_streams tlspeek={rsts!r} tshark={want_rsts!r}")
        for s in t["streams"]:
            r = got.get(s["stream"])
            where = f"{t['client']} stream {s['stream']}"
            if r is None:
                diffs.append(f"{where}: missing in tlspeek's requests")
                continue
            upgrade = r.get("version") == "HTTP/1.1"
            mine = {"method": r.get("method") or None, "path": r.get("path") or None, "host": r.get("host"),
                    "headers": s["headers"] if upgrade else regular(r.get("headers")),
                    "unknown_fields": r.get("unknown_fields")}
            want = {"method": s["method"], "path": s["path"], "host": s["host"],
                    "headers": s["headers"], "unknown_fields": s["unknown_fields"]}
            if not upgrade:
                # gRPC true-binary metadata (`-bin` sent raw after a NUL): tshark shows an empty
                # value, tlspeek the bytes (invalid UTF-8 as \\xHH). Compared by name only.
                binary = {n for n, v in want["headers"] if n.endswith("-bin") and v == ""}
                mine["headers"] = [[n, "" if n in binary else v] for n, v in mine["headers"]]
            for k, v in want.items():
                if mine[k] != v:
                    diffs.append(f"{where}: {k} tlspeek={mine[k]!r} tshark={v!r}")
            if r.get("pushed_by") != s["promised_by"]:
                diffs.append(f"{where}: pushed_by tlspeek={r.get('pushed_by')!r} tshark={s['promised_by']!r}")
            if (r.get("data") or {}) != s["data"] and got.get(s["stream"]) is r:
                # A split leg's two halves each see one side's DATA: add them up.
                d = {"client": 0, "server": 0}
                for h in https:
                    for q in h.get("requests") or []:
                        if q.get("stream") == s["stream"] and q.get("data"):
                            d = {k: d[k] + q["data"][k] for k in d}
                if d != s["data"]:
                    diffs.append(f"{where}: data tlspeek={r.get('data')!r} tshark={s['data']!r}")
            if s["grpc"]:
                g = r.get("grpc") or {}
                for k in ("service", "method", "status", "status_name", "message", "encoding"):
                    if g.get(k) != s["grpc"][k]:
                        diffs.append(f"{where}: grpc.{k} tlspeek={g.get(k)!r} tshark={s['grpc'][k]!r}")
            elif r.get("grpc") is not None:
                diffs.append(f"{where}: grpc tlspeek={r.get('grpc')!r}, tshark saw no gRPC")
            resp = resps.get(s["stream"])
            if s["status"] is not None:
                if resp is None:
                    diffs.append(f"{where}: no response in tlspeek")
                    continue
                if resp.get("status") != s["status"]:
                    diffs.append(f"{where}: status tlspeek={resp.get('status')!r} tshark={s['status']!r}")
                if regular(resp.get("headers")) != s["response_headers"]:
                    diffs.append(f"{where}: response headers tlspeek={resp.get('headers')!r} "
                                 f"tshark={s['response_headers']!r}")
                if [list(h) for h in resp.get("trailers") or []] != s["trailers"]:
                    diffs.append(f"{where}: trailers tlspeek={resp.get('trailers')!r} tshark={s['trailers']!r}")
                if resp.get("unknown_fields") != s["response_unknown_fields"]:
                    diffs.append(f"{where}: response unknown_fields tlspeek={resp.get('unknown_fields')!r} "
                                 f"tshark={s['response_unknown_fields']!r}")
    return diffs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/tlspeek"))
    ap.add_argument("--tshark-only", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("pcaps", nargs="*")
    a = ap.parse_args()
    status = 0
    for pcap in a.pcaps or default_files():
        name = os.path.basename(pcap)
        truth = facts(pcap)
        if a.tshark_only:
            for t in truth:
                print(json.dumps({"file": name, **t}, ensure_ascii=False))
            continue
        flows, crash = run_tlspeek(a.bin, pcap)
        if crash:
            print(f"{name}: tlspeek crashed")
            status = 2
            continue
        diffs = compare(truth, flows)
        n = sum(len(t["streams"]) for t in truth)
        print(f"{name}: {len(truth)} HTTP/2 flows, {n} streams in tshark; "
              f"{'agrees' if not diffs else f'{len(diffs)} difference(s)'}")
        for d in diffs if (a.verbose or len(diffs) <= 12) else diffs[:12] + [f"... {len(diffs) - 12} more"]:
            print("   ", d)
        if diffs:
            status = max(status, 1)
    sys.exit(status)


if __name__ == "__main__":
    main()

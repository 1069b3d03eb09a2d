#!/usr/bin/env python3
"""Compares tlspeek with tshark's ground truth on the public corpus (../shared/corpus).

    scripts/corpus-check.py [--bin target/release/tlspeek] [--corpus ../shared/corpus]
                            [--verbose] [--json-report FILE] [PCAP ...]

For every capture it runs `tlspeek -r PCAP --json -q`, matches flows to truth streams by their
unordered endpoint pair (in order of appearance when a 4-tuple is reused) and compares, per
stream, one "field" at a time:

- protocol (truth tls/http/http2/other → tlspeek tls/http/h2c/unknown; a truth `http` stream
  that tlspeek calls `h2c` after an `Upgrade: h2c` counts as agreeing: both saw the HTTP/1
  request, tshark names the stream after it, tlspeek after what follows);
- client direction, when tshark decided it from evidence (SYN, SYN-ACK, ClientHello, request),
  not by guessing from port numbers;
- TLS: SNI, ALPN offered (hex for non-UTF-8 names), ALPN selected, negotiated version, cipher
  (by IANA name), and for every server and client certificate in chain order its subject,
  issuer, DNS/URI/IP SANs; client certificate present; CertificateRequest seen;
- HTTP: method, URI and Host of every request, in order.

A field is compared when either side has a value (two nulls agree and are not counted), except
protocol and direction, always compared. Files whose truth is marked doubtful in the corpus
annotations are reported separately. Exit 1 only when tlspeek crashed (signal, exit >= 100,
or a panic message); otherwise 0: this is a report, not a gate.
"""
import argparse
import glob
import ipaddress
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = {"tls": "tls", "http": "http", "http2": "h2c", "other": "unknown"}


def endpoint(e):
    ip = ipaddress.ip_address(e["ip"])
    return f"[{ip}]:{e['port']}" if ip.version == 6 else f"{ip}:{e['port']}"


def norm_endpoint(s):
    host, port = s.rsplit(":", 1)
    ip = ipaddress.ip_address(host.strip("[]"))
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def wire_hex(s):
    """tlspeek's JSON text back to bytes (invalid UTF-8 is written as \\xHH, backslash doubled)."""
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 2] == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif s[i] == "\\" and s[i + 1:i + 2] == "\\":
            out += b"\\"
            i += 2
        else:
            out += s[i].encode()
            i += 1
    return out.hex()


def run(binary, pcap):
    try:
        p = subprocess.run([binary, "-r", pcap, "--json", "-q"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, "timeout", True
    crash = p.returncode < 0 or p.returncode >= 100 or "panicked" in p.stderr
    flows = []
    for line in p.stdout.splitlines():
        d = json.loads(line)
        if d["type"] == "flow":
            flows.append(d)
    return flows, p.stderr.strip(), crash


def cert_fields(prefix, truth_certs, ours):
    rows = []
    for i, tc in enumerate(truth_certs):
        oc = ours[i] if i < len(ours) else {}
        rows.append((f"{prefix}[{i}].subject", tc.get("subject"), oc.get("subject")))
        rows.append((f"{prefix}[{i}].issuer", tc.get("issuer"), oc.get("issuer")))
        rows.append((f"{prefix}[{i}].san_dns", tc.get("san_dns") or [], oc.get("san_dns") or []))
        rows.append((f"{prefix}[{i}].san_uri", tc.get("san_uri") or [], oc.get("san_uris") or []))
        rows.append((f"{prefix}[{i}].san_ip", tc.get("san_ip") or [], oc.get("san_ips") or []))
    for i in range(len(truth_certs), len(ours)):
        rows.append((f"{prefix}[{i}].subject", None, ours[i].get("subject")))
    return rows


def compare_stream(s, f):
    rows = []
    proto = f["protocol"]
    want = PROTO.get(s["protocol"], s["protocol"])
    if want == "http" and proto == "h2c" and (f.get("http") or {}).get("upgrade") == "h2c":
        proto = "http"
    rows.append(("protocol", want, proto))
    if s["client_determined_by"] not in ("lower_port_is_server", "first_packet"):
        rows.append(("client", endpoint(s["client"]), norm_endpoint(f["client"])))
    t, ft = s.get("tls"), f.get("tls") or {}
    if t:
        sni = t.get("sni") or []
        rows.append(("tls.sni", sni[0] if sni else None, ft.get("sni")))
        hellos = t.get("client_hellos") or [{}]
        hexes = hellos[0].get("alpn_hex") if any(ord(ch) > 126 for a in t.get("alpn_offered") or [] for ch in a) else None
        ours = ft.get("alpn_offered") or []
        if hexes:
            rows.append(("tls.alpn_offered", hexes, [wire_hex(a) for a in ours]))
        else:
            rows.append(("tls.alpn_offered", t.get("alpn_offered") or [], ours))
        rows.append(("tls.alpn_selected", t.get("alpn_selected"), ft.get("alpn_selected")))
        v = t.get("version_negotiated")
        rows.append(("tls.version", v["name"] if isinstance(v, dict) else v, ft.get("version")))
        c = t.get("cipher_selected")
        rows.append(("tls.cipher", c["name"] if c else None, ft.get("cipher")))
        rows += cert_fields("tls.server_certs", t.get("server_certificates") or [], ft.get("server_certs") or [])
        rows += cert_fields("tls.client_certs", t.get("client_certificates") or [], ft.get("client_certs") or [])
        rows.append(("tls.client_cert_present", bool(t.get("client_cert_present")), bool(ft.get("client_certs"))))
        rows.append(("tls.certificate_request", bool(t.get("certificate_request_seen")),
                     bool(ft.get("client_cert_requested"))))
    reqs = ((s.get("http") or {}).get("requests")) or []
    ours = ((f.get("http") or {}).get("requests")) or []
    for i, r in enumerate(reqs):
        o = ours[i] if i < len(ours) else {}
        rows.append((f"http[{i}].method", r.get("method"), o.get("method")))
        rows.append((f"http[{i}].uri", r.get("uri"), o.get("path")))
        rows.append((f"http[{i}].host", r.get("host"), o.get("host")))
    # Both null: nothing to compare (except protocol/direction, never null).
    return [(k, a, b) for k, a, b in rows if not (a in (None, []) and b in (None, []))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tlspeek"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus"))
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--json-report")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    pcaps = a.files or sorted(glob.glob(os.path.join(a.corpus, "pcaps", "*")))
    totals = {False: [0, 0], True: [0, 0]}  # doubtful -> [agree, compared]
    nfiles = {False: 0, True: 0}
    crashes, unmatched, diffs = 0, 0, []
    print(f"{'file':52} {'streams':>9} {'fields':>11}  note")
    for pcap in pcaps:
        name = os.path.basename(pcap)
        truth = json.load(open(os.path.join(a.corpus, "truth", name + ".json")))
        doubtful = bool((truth.get("annotation") or {}).get("doubtful"))
        nfiles[doubtful] += 1
        flows, err, crash = run(a.bin, pcap)
        crashes += crash
        if flows is None:
            print(f"{name:52} {'-':>9} {'-':>11}  TIMEOUT")
            continue
        used, matched, agree, compared = set(), 0, 0, 0
        for s in truth["streams"]:
            key = {endpoint(s["client"]), endpoint(s["server"])}
            cand = [f for f in flows if f["id"] not in used and {norm_endpoint(f["client"]), norm_endpoint(f["server"])} == key]
            if not cand:
                unmatched += 1
                diffs.append({"file": name, "stream": s["stream"], "field": "stream", "truth": sorted(key), "tlspeek": None})
                continue
            f = cand[0]
            used.add(f["id"])
            matched += 1
            for field, want, got in compare_stream(s, f):
                compared += 1
                if want == got:
                    agree += 1
                else:
                    diffs.append({"file": name, "stream": s["stream"], "field": field, "truth": want,
                                  "tlspeek": got, "doubtful": doubtful})
        totals[doubtful][0] += agree
        totals[doubtful][1] += compared
        note = ("CRASH " if crash else "") + ("doubtful truth " if doubtful else "") + (err.splitlines()[0][:60] if err else "")
        print(f"{name:52} {matched:>4}/{len(truth['streams']):<4} {agree:>5}/{compared:<5}  {note}")
    if a.verbose:
        for d in diffs:
            print(f"{d['file']} stream {d['stream']} {d['field']}: truth={d['truth']!r} tlspeek={d['tlspeek']!r}")
    if a.json_report:
        with open(a.json_report, "w") as fh:
            json.dump(diffs, fh, indent=1)
    ga, gc = totals[False]
    da, dc = totals[True]
    pct = lambda x, y: 100.0 * x / y if y else 100.0
    print(f"corpus: {ga}/{gc} fields agree ({pct(ga, gc):.2f}%) over {nfiles[False]} files with sound truth; "
          f"all {len(pcaps)} files {ga + da}/{gc + dc} ({pct(ga + da, gc + dc):.2f}%); {crashes} crashes; {unmatched} unmatched streams")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

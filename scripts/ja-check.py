#!/usr/bin/env python3
"""Checks tlspeek's JA3 and JA4 fingerprints against reference implementations.

    scripts/ja-check.py [--bin target/release/tlspeek] [--corpus ../shared/corpus]
                        [--foxio PATH] [--tshark tshark] [PCAP ...]

Inputs: captures/*.pcap* and the corpus's pcaps/ (or the files given). For each file:

- tlspeek: `tlspeek -r PCAP --json -q`, the `tls.ja3`, `ja3_full`, `ja4`, `ja4_r` of every flow.
- JA3: tshark's `tls.handshake.ja3` / `tls.handshake.ja3_full` of the first ClientHello of every
  TCP stream. tshark decodes TLS on well-known ports only: streams where tlspeek saw a
  ClientHello and tshark did not are dissected again with `-d tcp.port==PORT,tls` for their
  server ports (a second pass, which changes no stream numbers).
- JA4 (with --foxio PATH, a clone of FoxIO-LLC/ja4 or its python/ja4.py): FoxIO's reference
  `ja4.py -J -r --ja4`, fed the tshark EK output of the same dissection (ja4.py reads `.ek`
  files), `JA4.1` / `JA4_r.1` (its first ClientHello of each stream). Used only to check; none
  of its code is part of tlspeek.

Streams are matched to tlspeek flows by their unordered endpoint pair, in order of appearance
(a reused 4-tuple is several streams). A fingerprint is compared when either side has one;
every difference is printed. tshark runs with an empty WIRESHARK_CONFIG_DIR, so personal
preferences cannot change what it dissects.

Exit status 1 when tlspeek crashed, a JA3 differs from tshark's, or a JA4 differs from ja4.py's
for a reason not known. Known reasons (each difference is printed with its own): ja4.py departs
from the JA4 specification (non-ASCII ALPN, signature_algorithms_cert), gives no JA4 for TLS
inside an HTTP CONNECT tunnel, or fingerprints SSLv2-format ClientHellos, which tlspeek does not
(docs/json.md, "Fingerprints").
"""
import argparse
import glob
import ipaddress
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = [
    "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
    "tls.handshake.ja3", "tls.handshake.ja3_full",
]
# Same reassembly as the corpus truth (corpus/make-truth.py).
PREFS = [
    "-o", "tcp.desegment_tcp_streams:TRUE", "-o", "tcp.analyze_sequence_numbers:TRUE",
    "-o", "tcp.reassemble_out_of_order:TRUE", "-o", "tls.desegment_ssl_records:TRUE",
]


def endpoint(ip, port):
    ip = ipaddress.ip_address(ip.strip("[]"))
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def norm(s):
    host, port = s.rsplit(":", 1)
    return endpoint(host, port)


def tshark_env(cfg):
    env = dict(os.environ)
    env["WIRESHARK_CONFIG_DIR"] = cfg
    return env


def decode_as(ports):
    out = []
    for p in sorted(ports):
        out += ["-d", f"tcp.port=={p},tls"]
    return out


def tshark_streams(tshark, pcap, ports, env):
    """{stream: {"pair": {a, b}, "hello": (client, ja3, ja3_full) or None}} in stream order."""
    args = [tshark, "-r", pcap, "-n", *PREFS, *decode_as(ports), "-Y", "tcp", "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        args += ["-e", f]
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    streams = {}
    for line in p.stdout.splitlines():
        v = line.split("\t")
        if len(v) < len(FIELDS) or not v[0]:
            continue
        stream = int(v[0].split("|")[0])
        # Tunnels stack several IP headers: the innermost carries the TCP segment.
        src = (v[1] or v[2]).split("|")[-1]
        dst = (v[4] or v[5]).split("|")[-1]
        if not src or not dst:
            continue
        a, b = endpoint(src, v[3].split("|")[0]), endpoint(dst, v[6].split("|")[0])
        s = streams.setdefault(stream, {"pair": {a, b}, "hello": None})
        if v[7] and s["hello"] is None:
            s["hello"] = (a, v[7].split("|")[0], v[8].split("|")[0])
    return dict(sorted(streams.items()))


def tlspeek_flows(binary, pcap):
    try:
        p = subprocess.run([binary, "-r", pcap, "--json", "-q"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None, True
    crash = p.returncode < 0 or p.returncode >= 100 or "panicked" in p.stderr
    flows = [d for d in map(json.loads, p.stdout.splitlines()) if d["type"] == "flow"]
    return sorted(flows, key=lambda f: f["id"]), crash


def foxio_ja4(script, tshark, pcap, ports, env):
    """{stream: (ja4, ja4_r)} from FoxIO's ja4.py run over tshark's EK output."""
    with tempfile.NamedTemporaryFile(suffix=".ek", mode="w") as ek:
        # Only the ClientHello frames: ja4.py's JA4X and HTTP paths stop it with an exception on
        # several corpus files, and JA4 needs nothing else.
        subprocess.run([tshark, "-r", pcap, "-n", *PREFS, *decode_as(ports), "-Y", "tls.handshake.type == 1",
                        "-T", "ek"],
                       stdout=ek, stderr=subprocess.DEVNULL, env=env, check=False)
        ek.flush()
        # ja4.py calls `tshark -v` itself: give it the same binary first on PATH.
        penv = dict(env)
        penv["PATH"] = os.path.dirname(os.path.abspath(tshark)) + os.pathsep + env.get("PATH", "") \
            if os.sep in tshark else env.get("PATH", "")
        p = subprocess.run([sys.executable, script, ek.name, "-J", "-r", "--ja4"], capture_output=True,
                           text=True, env=penv, cwd=os.path.dirname(script))
    out, dec, i, text = {}, json.JSONDecoder(), 0, p.stdout
    while True:
        while i < len(text) and text[i] != "{":
            i += 1
        if i >= len(text):
            break
        try:
            d, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if "JA4.1" in d:
            out[int(d["stream"])] = (d["JA4.1"], d.get("JA4_r.1"))
    return out


def explain_ja4(got, want, flow):
    """Why FoxIO's ja4.py gives another JA4 than tlspeek, when it is a known departure of ja4.py
    from the JA4 specification or a choice tlspeek documents (docs/json.md); else None."""
    tls = (flow or {}).get("tls") or {}
    if want[0] is None and got[0] and (flow or {}).get("http"):
        return ("TLS inside an HTTP CONNECT tunnel: ja4.py dissects the stream as HTTP and "
                "gives no JA4 for the ClientHello that follows")
    if got[0] is None and want[0] and tls.get("sslv2_client_hello"):
        return ("SSLv2-format ClientHello: tlspeek gives no fingerprint (it has no TLS cipher "
                "suites or extensions; tshark gives no JA3 either); ja4.py counts none of its "
                "cipher specs")
    if not got[0] or not want[0] or not got[1] or not want[1]:
        return None
    ga, gr = got[0].split("_", 1), got[1].split("_")
    wa, wr = want[0].split("_", 1), want[1].split("_")
    if ga[1:] == wa[1:] and ga[0][:8] == wa[0][:8]:
        return ("ALPN characters: ja4.py writes '99' for a non-ASCII first byte (and keeps a "
                "1-character value as is); the specification takes the first and last "
                "characters, as hex digits when either is not an ASCII letter or digit")
    if gr[:3] == wr[:3] and gr[3:] != wr[3:] and "0032" in gr[2].split(","):
        return ("signature algorithms: with signature_algorithms_cert (0x0032) present, ja4.py "
                "takes that extension's list instead of signature_algorithms' (0x000d)")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tlspeek"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus"))
    ap.add_argument("--foxio", help="FoxIO-LLC/ja4 clone, or its python/ja4.py")
    ap.add_argument("--tshark", default="tshark")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    pcaps = a.files or (sorted(glob.glob(os.path.join(ROOT, "captures", "*.pcap*")))
                        + sorted(glob.glob(os.path.join(a.corpus, "pcaps", "*"))))
    script = None
    if a.foxio:
        script = os.path.join(a.foxio, "python", "ja4.py") if os.path.isdir(a.foxio) else a.foxio
        if not os.path.isfile(script):
            sys.exit(f"ja-check: no ja4.py at {script}")
    cfg = tempfile.mkdtemp(prefix="ja-check-wireshark-")
    env = tshark_env(cfg)
    tot = {"ja3": [0, 0], "ja4": [0, 0], "ja4_explained": 0}
    diffs, crashes, bad = [], 0, 0
    print(f"{'file':52} {'hellos':>6} {'ja3 agree':>10} {'ja4 agree':>10}")
    for pcap in pcaps:
        name = os.path.relpath(pcap, ROOT) if pcap.startswith(ROOT) else os.path.basename(pcap)
        flows, crash = tlspeek_flows(a.bin, pcap)
        crashes += crash
        if flows is None:
            print(f"{name:52} TIMEOUT")
            continue
        streams = tshark_streams(a.tshark, pcap, set(), env)
        match = match_flows(streams, flows)
        # Second pass for TLS on ports tshark does not know.
        ports = {norm(f["server"]).rsplit(":", 1)[1] for s, f in match.items()
                 if f and f["tls"] and f["tls"]["ja3"] and not streams[s]["hello"]}
        if ports:
            again = tshark_streams(a.tshark, pcap, ports, env)
            for s, st in again.items():
                if s in streams and not streams[s]["hello"]:
                    streams[s]["hello"] = st["hello"]
        fox = foxio_ja4(script, a.tshark, pcap, ports, env) if script else {}
        n, agree3, agree4 = 0, 0, 0
        for s, st in streams.items():
            f = match.get(s)
            t = (f or {}).get("tls") or {}
            hello = st["hello"]
            if hello or t.get("ja3"):
                n += 1
                tot["ja3"][1] += 1
                want = (hello[1], hello[2]) if hello else (None, None)
                got = (t.get("ja3"), t.get("ja3_full"))
                if want == got and (not f or not hello or norm(f["client"]) == hello[0]):
                    agree3 += 1
                    tot["ja3"][0] += 1
                else:
                    bad += 1
                    diffs.append((name, s, "ja3", want, got, None))
            if script and (s in fox or t.get("ja4")):
                tot["ja4"][1] += 1
                want = fox.get(s, (None, None))
                got = (t.get("ja4"), t.get("ja4_r"))
                if want == got:
                    agree4 += 1
                    tot["ja4"][0] += 1
                else:
                    why = explain_ja4(got, want, f)
                    if why:
                        tot["ja4_explained"] += 1
                    else:
                        bad += 1
                    diffs.append((name, s, "ja4", want, got, why))
        ja4_col = f"{agree4}/{len(fox) if script else '-'}" if script else "-"
        print(f"{name:52} {n:>6} {f'{agree3}/{n}':>10} {ja4_col:>10}")
    print()
    j3, j4 = tot["ja3"], tot["ja4"]
    print(f"ja3/ja3_full vs tshark {tshark_version(a.tshark, env)}: {j3[0]}/{j3[1]} streams agree")
    if script:
        print(f"ja4/ja4_r vs FoxIO ja4.py: {j4[0]}/{j4[1]} streams agree; {tot['ja4_explained']} "
              f"differ for a known reason (listed below), {j4[1] - j4[0] - tot['ja4_explained']} for another")
    print(f"{len(pcaps)} files; {crashes} crashes")
    for name, s, kind, want, got, why in diffs:
        ref = "tshark" if kind == "ja3" else "ja4.py"
        print(f"\n{name} stream {s} {kind}:\n  {ref:7} {want[0]}\n          {want[1]}\n  tlspeek {got[0]}\n          {got[1]}")
        if why:
            print(f"  known: {why}")
    return 1 if crashes or bad else 0


def match_flows(streams, flows):
    """{stream: flow or None}: by unordered endpoint pair, in order of appearance."""
    used, out = set(), {}
    for s, st in streams.items():
        cand = [f for f in flows if f["id"] not in used and {norm(f["client"]), norm(f["server"])} == st["pair"]]
        out[s] = cand[0] if cand else None
        if cand:
            used.add(cand[0]["id"])
    return out


def tshark_version(tshark, env):
    p = subprocess.run([tshark, "-v"], capture_output=True, text=True, env=env)
    first = p.stdout.splitlines()[0] if p.stdout else ""
    return first.split(" ")[2] if len(first.split(" ")) > 2 else "?"


if __name__ == "__main__":
    sys.exit(main())

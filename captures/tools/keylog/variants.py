#!/usr/bin/env python3
"""Key-log variants for captures/make-keylog.sh, made from keylog-tls12.keys and keylog-tls13.keys
(the secrets of keylog-tls12.pcap and keylog-tls13.pcap). Each connection is found by its
ClientHello random (tshark), so the edits name client ports:

    variants.py CAPTURES_DIR

keylog-partial.keys   every line, except:
    51003  no line at all                                  -> no_keys
    52002  no line at all                                  -> no_keys
    52003  no *_TRAFFIC_SECRET_0 (handshake secrets only)  -> partial (handshake only)
    52004  no CLIENT_HANDSHAKE_TRAFFIC_SECRET              -> partial (client's flight not decrypted)
    52009  no CLIENT_EARLY_TRAFFIC_SECRET                  -> partial (early data not decrypted)
keylog-wrong.keys     every line, but one secret changed (its last hex digit):
    51001  CLIENT_RANDOM (the master secret)               -> failed
    52001  SERVER_HANDSHAKE_TRAFFIC_SECRET                 -> failed
    52005  CLIENT_TRAFFIC_SECRET_0                         -> failed
keylog-crlf.keys      every line of all four key logs (tls12, tls13, python, h2) with CRLF line
    ends, upper-case hex, a comment before each connection's lines and blank lines between them:
    decrypts exactly what the four files do.
"""
import os
import subprocess
import sys

PARTIAL_DROP = {
    51003: None, 52002: None,   # None: every line
    52003: {"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"},
    52004: {"CLIENT_HANDSHAKE_TRAFFIC_SECRET"},
    52009: {"CLIENT_EARLY_TRAFFIC_SECRET"},
}
WRONG = {51001: "CLIENT_RANDOM", 52001: "SERVER_HANDSHAKE_TRAFFIC_SECRET", 52005: "CLIENT_TRAFFIC_SECRET_0"}


def ports_by_random(pcap):
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "tcp.srcport", "-e", "tls.handshake.random"],
                         check=True, capture_output=True, text=True).stdout
    m = {}
    for line in out.splitlines():
        port, rnd = line.split("\t")
        m[rnd.replace(":", "").lower()] = int(port)
    return m


def lines(path):
    return [ln.rstrip("\r\n") for ln in open(path)]


def flip(hexstr):
    last = hexstr[-1]
    return hexstr[:-1] + ("0" if last != "0" else "1")


def main():
    d = sys.argv[1]
    ports = {}
    for stem in ("tls12", "tls13", "python", "h2"):
        ports.update(ports_by_random(os.path.join(d, f"keylog-{stem}.pcap")))
    base = [ln for stem in ("tls12", "tls13") for ln in lines(os.path.join(d, f"keylog-{stem}.keys"))]

    def parse(ln):
        f = ln.split()
        if len(f) != 3 or ln.startswith("#") or len(f[1]) != 64:
            return None   # comments, and OpenSSL's `RSA` lines (encrypted pre-master prefix): kept as they are
        return f[0], ports.get(f[1].lower()), f[1], f[2]

    partial, wrong, seen = [], [], set()
    for ln in base:
        p = parse(ln)
        if p is None:
            partial.append(ln)
            wrong.append(ln)
            continue
        label, port, rnd, secret = p
        if port is None:
            sys.exit(f"variants: a key-log line names no ClientHello in the captures: {label}")
        drop = PARTIAL_DROP.get(port, set())
        if port in PARTIAL_DROP and (drop is None or label in drop):
            seen.add(("partial", port))
        else:
            partial.append(ln)
        if WRONG.get(port) == label:
            seen.add(("wrong", port))
            wrong.append(f"{label} {rnd} {flip(secret)}")
        else:
            wrong.append(ln)
    want = {("partial", p) for p in PARTIAL_DROP} | {("wrong", p) for p in WRONG}
    if seen != want:
        sys.exit(f"variants: edits not applied: {sorted(want - seen)}")
    with open(os.path.join(d, "keylog-partial.keys"), "w") as f:
        f.write("# keylog-tls12.keys + keylog-tls13.keys with lines left out (captures/keylog.md)\n")
        f.write("\n".join(partial) + "\n")
    with open(os.path.join(d, "keylog-wrong.keys"), "w") as f:
        f.write("# keylog-tls12.keys + keylog-tls13.keys with three secrets changed (captures/keylog.md)\n")
        f.write("\n".join(wrong) + "\n")

    # CRLF, upper-case hex, comments and blank lines.
    out = ["# NSS key log: every secret of keylog-{tls12,tls13,python,h2}.pcap",
           "# CRLF line ends, upper-case hex, comments and blank lines (parser robustness)", ""]
    last = None
    for stem in ("tls12", "tls13", "python", "h2"):
        for ln in lines(os.path.join(d, f"keylog-{stem}.keys")):
            p = parse(ln)
            if p is None:
                if not ln.startswith("#") and ln.strip():
                    out.append(ln.upper())   # an `RSA` line
                continue
            label, port, rnd, secret = p
            if port != last:
                out += ["", f"# client port {port} (keylog-{stem}.pcap)"]
                last = port
            out.append(f"{label} {rnd.upper()} {secret.upper()}")
    with open(os.path.join(d, "keylog-crlf.keys"), "wb") as f:
        f.write(("\r\n".join(out) + "\r\n").encode())


if __name__ == "__main__":
    main()

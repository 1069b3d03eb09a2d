#!/usr/bin/env python3
"""Checks tlspeek's `--ca` verdicts (tls.server_chain / tls.client_chain) against OpenSSL.

    scripts/chain-check.py [--bin target/debug/tlspeek] [--tshark tshark] [--openssl openssl]
                           [PCAP:CA.pem ...]

Default pairs: the shipped captures that carry certificate lists, each with the root that
should (or should not) have signed them (captures/pki/). For each pair:

- tlspeek: `tlspeek -r PCAP --json -q --ca CA.pem`, every flow's server_chain and client_chain.
- OpenSSL: tshark exports every Certificate message (`-T fields -e tls.handshake.certificate`,
  with the frame time and the sender), the sender's role comes from the SYN-ACK of its TCP
  stream, and `openssl verify -attime <frame epoch> -CAfile CA.pem -untrusted <rest of the list>
  -purpose sslserver|sslclient <leaf>` gives the verdict.

Verdicts are compared by kind (ok, unknown issuer, expired, not yet valid, purpose, path length,
CA constraint, bad signature); every list is printed with both verdicts. Exit status 1 when one
differs. tshark runs with an empty WIRESHARK_CONFIG_DIR and decodes TLS on every server port
tlspeek found.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKI = os.path.join(ROOT, "captures", "pki")
DEFAULT = [
    ("tls12-mtls-istio.pcap", "ca.crt"),
    ("tls12-mtls-istio.pcap", "other-ca.crt"),
    ("istio-mtls-tls12.pcap", "ca.crt"),
    ("tls12-expired-cert.pcap", "ca.crt"),
    ("tls12-server-only.pcap", "ca.crt"),
    ("tls12-small-mtu-chain.pcap", "big-root.crt"),
    ("tls12-small-mtu-chain.pcap", "ca.crt"),
    ("tls-alerts.pcap", "ca.crt"),
    ("tls-sni-mismatch.pcap", "ca.crt"),
    ("tls12-chain-checks.pcap", "ca.crt"),
]

# OpenSSL's verify error numbers (X509_V_ERR_*) by kind.
OPENSSL_KIND = {
    0: "ok",
    2: "unknown issuer", 19: "unknown issuer", 20: "unknown issuer", 21: "unknown issuer",
    10: "expired",
    9: "not yet valid",
    26: "purpose",
    25: "path length",
    24: "CA constraint", 79: "CA constraint",
    7: "bad signature",
}


def tlspeek_kind(c):
    """The kind of a server_chain / client_chain object."""
    if c is None:
        return None
    if c["verified"]:
        return "ok"
    e = c["error"]
    for prefix, kind in [("unknown issuer", "unknown issuer"), ("expired", "expired"),
                         ("not yet valid", "not yet valid"), ("leaf not usable", "purpose"),
                         ("path length", "path length"), ("CA constraint", "CA constraint"),
                         ("bad signature", "bad signature")]:
        if e.startswith(prefix):
            return kind
    return e


def tlspeek_lists(args, pcap, ca):
    """{(client endpoint, role): (kind, text)} and the server ports."""
    out = subprocess.run([args.bin, "-r", pcap, "--json", "-q", "--ca", ca], capture_output=True,
                         text=True, check=True).stdout
    lists, ports = {}, set()
    for line in out.splitlines():
        f = json.loads(line)
        if f.get("type") != "flow" or not f.get("tls"):
            continue
        ports.add(f["server"].rsplit(":", 1)[1])
        for role in ("server", "client"):
            c = f["tls"][role + "_chain"]
            if c is not None:
                lists[(f["client"], role)] = (tlspeek_kind(c), c["error"] or "verified by " + c["by"])
    return lists, ports


def tshark(args, pcap, ports, fields, filt):
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp())
    cmd = [args.tshark, "-r", pcap, "-Y", filt, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for p in sorted(ports):
        cmd += ["-d", f"tcp.port=={p},tls"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return [l.split("\t") for l in out.splitlines() if l]


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def pem(hexder):
    import base64
    b = base64.encodebytes(bytes.fromhex(hexder)).decode().replace("\n", "")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def openssl_verify(args, certs, ca, epoch, role, tmp):
    leaf = os.path.join(tmp, "leaf.pem")
    rest = os.path.join(tmp, "rest.pem")
    with open(leaf, "w") as f:
        f.write(pem(certs[0]))
    cmd = [args.openssl, "verify", "-attime", str(epoch), "-CAfile", ca,
           "-purpose", "sslserver" if role == "server" else "sslclient"]
    if len(certs) > 1:
        with open(rest, "w") as f:
            f.write("".join(pem(c) for c in certs[1:]))
        cmd += ["-untrusted", rest]
    r = subprocess.run(cmd + [leaf], capture_output=True, text=True)
    text = (r.stdout + r.stderr).strip()
    if r.returncode == 0:
        return "ok", "OK"
    for line in text.splitlines():
        if line.startswith("error "):
            num = int(line.split()[1])
            return OPENSSL_KIND.get(num, f"error {num}"), line.split(":", 2)[-1].strip()
    return "error", text.splitlines()[-1] if text else "?"


def check(args, pcap_name, ca_name):
    pcap = pcap_name if os.path.isabs(pcap_name) else os.path.join(ROOT, "captures", pcap_name)
    ca = ca_name if os.path.isabs(ca_name) else os.path.join(PKI, ca_name)
    lists, ports = tlspeek_lists(args, pcap, ca)
    servers = {}
    for stream, src, src6, sport in tshark(args, pcap, ports, ["tcp.stream", "ip.src", "ipv6.src", "tcp.srcport"],
                                           "tcp.flags.syn==1 && tcp.flags.ack==1"):
        servers[stream] = endpoint(src or src6, sport)
    bad = 0
    seen = set()
    with tempfile.TemporaryDirectory() as tmp:
        rows = tshark(args, pcap, ports, ["frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport",
                                          "ip.dst", "ipv6.dst", "tcp.dstport", "tls.handshake.certificate"],
                      "tls.handshake.type==11")
        for epoch, stream, src, src6, sport, dst, dst6, dport, certs in rows:
            sender = endpoint(src or src6, sport)
            other = endpoint(dst or dst6, dport)
            role = "server" if servers.get(stream) == sender else "client"
            client = other if role == "server" else sender
            if (client, role) in seen or not certs:
                continue
            seen.add((client, role))
            ok_kind, ok_text = openssl_verify(args, certs.split(","), ca, int(float(epoch)), role, tmp)
            tp_kind, tp_text = lists.get((client, role), (None, "no list"))
            same = ok_kind == tp_kind
            bad += not same
            print(f"{'agree' if same else 'DIFFER'}  {pcap_name} --ca {ca_name}  {client} {role}: "
                  f"openssl {ok_kind} ({ok_text}); tlspeek {tp_kind} ({tp_text})")
    for key in sorted(set(lists) - seen):
        bad += 1
        print(f"DIFFER  {pcap_name} --ca {ca_name}  {key[0]} {key[1]}: not exported by tshark; tlspeek {lists[key][0]}")
    return bad, len(seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "tlspeek"))
    ap.add_argument("--tshark", default="tshark")
    ap.add_argument("--openssl", default="openssl")
    ap.add_argument("pairs", nargs="*", help="PCAP:CA.pem")
    args = ap.parse_args()
    pairs = [tuple(p.rsplit(":", 1)) for p in args.pairs] or DEFAULT
    bad = total = 0
    for pcap, ca in pairs:
        b, n = check(args, pcap, ca)
        bad += b
        total += n
    print(f"{total - bad} of {total} certificate lists agree with openssl verify")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

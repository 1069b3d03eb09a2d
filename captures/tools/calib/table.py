#!/usr/bin/env python3
"""Ground-truth table for the TLS 1.3 calibration captures (captures/tls13-calib.md).

    table.py CAPTURES_DIR          prints one markdown row per TCP connection, checks every one

Reads captures/tls13-calib-<stack>.pcap with tshark twice: as is (the wire: record types and
lengths) and decrypted with captures/tls13-calib-<stack>.keys (which handshake messages each
record holds, the CertificateRequest, the client's Certificate). A row fails the check (exit 1)
unless the connection has a completed handshake (both Finished), the client's "GET /case-..."
and the server's "HTTP/1.1 200", close_notify both ways, a FIN from each side and no RST.
"""
import json
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

STACKS = ["openssl", "python", "go", "rustls"]
SUITES = {"0x1301": "AES_128_GCM_SHA256", "0x1302": "AES_256_GCM_SHA384",
          "0x1303": "CHACHA20_POLY1305_SHA256"}
HS = {1: "CH", 2: "SH", 4: "NST", 8: "EE", 11: "Cert", 13: "CR", 15: "CV", 20: "Fin", 24: "KeyUpd"}
HRR_RANDOM = "cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c"
# What the script did (the table checks it against the decrypted capture).
CASES = {1: "no CR", 2: "CR, ECDSA cert", 3: "CR, RSA cert", 4: "CR (optional), no cert",
         5: "CR, ECDSA cert", 6: "no CR", 7: "CR, ECDSA cert", 8: "PSK resumption of 8-full",
         80: "CR, ECDSA cert (session for case 8)", 9: "HRR (server P-256 only), CR, ECDSA cert",
         10: "like 4 with AES_256_GCM_SHA384"}


def as_list(v):
    return v if isinstance(v, list) else ([] if v is None else [v])


def find(d, key):
    """First value of KEY anywhere inside the nested dict/list D."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        d = list(d.values())
    if isinstance(d, list):
        for v in d:
            r = find(v, key)
            if r is not None:
                return r
    return None


def tshark(pcap, keys=None):
    cmd = ["tshark", "-r", pcap, "-T", "json", "--no-duplicate-keys", "-J", "tcp tls http"]
    if keys:
        cmd[1:1] = ["-o", f"tls.keylog_file:{keys}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def records(pkt):
    """The TLS records of one packet: (wire type, length, inner type, [handshake dicts], app data)."""
    out = []
    for tls in as_list(pkt["_source"]["layers"].get("tls")):
        if not isinstance(tls, dict):
            continue
        for r in as_list(tls.get("tls.record")):
            wire = int(r.get("tls.record.opaque_type", r.get("tls.record.content_type", -1)))
            inner = int(r.get("tls.record.content_type", -1))
            hs = [h for h in as_list(r.get("tls.handshake")) if isinstance(h, dict)]
            out.append((wire, int(r["tls.record.length"]), inner, hs, r))
    return out


def cert_kind(h):
    certs = h.get("tls.handshake.certificates")
    if not certs:
        return "empty"
    ders = as_list(certs.get("tls.handshake.certificate"))
    leaf = x509.load_der_x509_certificate(bytes.fromhex(ders[0].replace(":", "")))
    k = leaf.public_key()
    kind = "ECDSA P-256" if isinstance(k, ec.EllipticCurvePublicKey) else (
        f"RSA-{k.key_size}" if isinstance(k, rsa.RSAPublicKey) else type(k).__name__)
    return f"{kind} ({len(ders)} cert{'s' if len(ders) > 1 else ''}, {int(h['tls.handshake.certificates_length'])} B)"


def main():
    d = sys.argv[1]
    bad = 0
    print("| file | stack (client / server) | case | client port | suite | HRR | PSK | CertificateRequest | client certificate | client records after its ClientHello (first 6) | decrypted client handshake records | server records after its ServerHello (first 6) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for st in STACKS:
        pcap, keys = f"{d}/tls13-calib-{st}.pcap", f"{d}/tls13-calib-{st}.keys"
        wire, dec = tshark(pcap), tshark(pcap, keys)
        conns = {}
        for pw, pd in zip(wire, dec):
            tcp = pw["_source"]["layers"]["tcp"]
            sport, dport = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
            cport = sport if dport == 8443 else dport
            c = conns.setdefault(cport, {"c": [], "s": [], "flags": set()})
            side = "c" if dport == 8443 else "s"
            flags = int(tcp["tcp.flags"], 16)
            if flags & 1:
                c["flags"].add(side + "FIN")
            if flags & 4:
                c["flags"].add(side + "RST")
            http = pd["_source"]["layers"].get("http")
            for h in as_list(http):
                if isinstance(h, dict):
                    c.setdefault("http", []).append((side, find(h, "http.request.uri"), find(h, "http.response.code")))
            rw, rd = records(pw), records(pd)
            assert [(a[0], a[1]) for a in rw] == [(a[0], a[1]) for a in rd], (st, cport)
            c[side].extend(rd)
        for cport in sorted(conns, key=lambda p: 7.5 if p % 1000 == 80 else p % 1000):
            c = conns[cport]
            case = cport % 1000
            label = "8-full" if case == 80 else str(case)
            cl, sv = c["c"], c["s"]
            ch = [i for i, r in enumerate(cl) if any(int(h["tls.handshake.type"]) == 1 for h in r[3])]
            sh = [i for i, r in enumerate(sv) if any(int(h["tls.handshake.type"]) == 2 for h in r[3])]
            shs = [h for r in sv for h in r[3] if int(h["tls.handshake.type"]) == 2]
            hrr = any(h.get("tls.handshake.random") == HRR_RANDOM for h in shs)
            suite = SUITES.get(shs[-1]["tls.handshake.ciphersuite"], shs[-1]["tls.handshake.ciphersuite"])
            srv_hs = [int(h["tls.handshake.type"]) for r in sv for h in r[3]]
            cli_hs = [int(h["tls.handshake.type"]) for r in cl for h in r[3]]
            psk = any("Extension: pre_shared_key" in k for h in shs[-1:] for k in h)
            cr = 13 in srv_hs
            certs = [cert_kind(h) for r in cl for h in r[3] if int(h["tls.handshake.type"]) == 11]
            cert = certs[0] if certs else "none"
            after_c = cl[ch[-1] + 1:]
            after_s = sv[sh[-1] + 1:]
            fmt = lambda rs: " ".join(f"{r[0]}:{r[1]}" for r in rs[:6])
            hsrec = " \\| ".join("+".join(HS.get(int(h["tls.handshake.type"]), h["tls.handshake.type"]) for h in r[3])
                                 + f" ({r[1]})" for r in after_c if r[0] == 23 and r[3])
            # checks
            problems = []
            if 20 not in cli_hs or 20 not in srv_hs:
                problems.append("handshake not finished")
            want = "case-8-full" if case == 80 else f"case-{case}"
            if c.get("http") != [("c", f"/{want}", None), ("s", None, "200")]:
                problems.append(f"HTTP exchange {c.get('http')}")
            if not any(r[2] == 21 for r in cl) or not any(r[2] == 21 for r in sv):
                problems.append("close_notify missing")
            if c["flags"] != {"cFIN", "sFIN"}:
                problems.append(f"TCP end {sorted(c['flags'])}")
            expect_cr = case in (2, 3, 4, 5, 7, 80, 9, 10)
            if cr != expect_cr or (case == 8 and (not psk or cr or certs)):
                problems.append("CR/PSK not as intended")
            if (case == 9) != hrr:
                problems.append("HRR not as intended")
            if problems:
                bad += 1
                print(f"CHECK FAILED {st} {cport}: {problems}", file=sys.stderr)
            peers = {"openssl": "OpenSSL s_client / s_server", "python": "Python ssl / Python ssl",
                     "go": "Go / Go", "rustls": "rustls / rustls"}[st]
            if st == "go" and case in (5, 6, 7, 10):
                peers = "Go / OpenSSL s_server"
            print(f"| tls13-calib-{st}.pcap | {peers} | {label} | {cport} | {suite} | {'yes' if hrr else 'no'} | "
                  f"{'yes' if psk else 'no'} | {'yes' if cr else 'no'} | {cert} | `{fmt(after_c)}` | {hsrec} | `{fmt(after_s)}` |")
    print(f"checked: {'all connections OK' if not bad else f'{bad} connection(s) FAILED'}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

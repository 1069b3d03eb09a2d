#!/usr/bin/env python3
"""Compares tlspeek's decrypted view of the key-log captures with tshark's (captures/keylog.md).

    scripts/keylog-check.py [--bin target/debug/tlspeek] [--tshark-only] [--check-made] [--verbose]
                            [--baseline] [PCAP:KEYS ...]

Default runs (captures/): keylog-{tls12,tls13,python,h2}.pcap each with its own .keys file and
with keylog-crlf.keys, keylog-{tls12,tls13}.pcap with keylog-partial.keys and keylog-wrong.keys,
and the TLS 1.3 calibration captures tls13-calib-{openssl,python,go,rustls}.pcap with their key
logs (Go crypto/tls and rustls clients; captures/tls13-calib.md).

Truth (tshark -o tls.keylog_file:KEYS -T json, one flow per tcp.stream, keyed by client port):
  version      TLS 1.3 from the ServerHello's supported_versions, else its version
  cipher       IANA name of the (last) ServerHello's suite
  alpn         ALPN protocol of the ServerHello (TLS <= 1.2) or of the decrypted
               EncryptedExtensions (TLS 1.3); null when none
  cr           a CertificateRequest was sent (decrypted for TLS 1.3)
  server_subjects, server_uris, client_subjects, client_uris
               the Certificate messages' chains: subjects in RFC 4514 order (python
               `cryptography`, as tlspeek prints them) and URI SANs of every certificate
  client_cert_empty   the client answered a CertificateRequest with an empty Certificate
  mtls         yes (client chain not empty) / no (no CertificateRequest, or an empty
               Certificate); null when it cannot be known from this connection (resumed: no
               certificates are exchanged, or the handshake was not decrypted)
  status       tls.decryption.status, from tshark's result and the key-log lines of the flow's
               client random (read by this script: CR/LF/CRLF, comments, either hex case):
                 no_keys             no line for the client random
                 unsupported_cipher  a CBC suite (tlspeek does not decrypt CBC; tshark does)
                 decrypted           every encrypted record decrypted (TLS <= 1.2: both
                                     Finished and the application data)
                 failed              lines present for every secret the flow needs, yet a
                                     record was not decrypted (a wrong secret)
                 partial             some records decrypted, secrets missing for the others
  handshake    every encrypted handshake record was decrypted (both Finished seen)
  application  application data was decrypted (an HTTP/1 or HTTP/2 message parsed)
  requests     [[method, path]]: HTTP/1 request lines and HTTP/2 :method/:path, in order
               (decrypted early data included)
  notes        HRR, resumption (session_id / session_ticket / psk), KeyUpdates, early data

Against tlspeek (`tlspeek --json -q --show-secrets --keylog KEYS -r PCAP`, flows by client port)
these keys are compared: tls.version, tls.cipher, tls.alpn_selected, tls.client_cert_requested,
tls.client_cert_empty, tls.mtls (when the truth is not null), tls.server_certs[].subject,
tls.server_certs[].san_uris, tls.client_certs[].subject, tls.client_certs[].san_uris,
tls.decryption.{status,handshake,application}, http.requests[].{method,path}.
--baseline runs tlspeek without --keylog (what it reads without keys: TLS <= 1.2 certificates,
versions, ciphers). Prints agreement counts per key and every disagreement; exit 1 on any disagreement, 2 when
tlspeek fails to run. --tshark-only prints the truth as markdown tables and exits 0.
--check-made also checks the truth against what captures/make-keylog.sh meant to make (EXPECT
below) and exits 1 on a difference: the self-test of the captures and of this script.

TShark 4.0 quirks handled here: the decrypted application data of a connection whose ALPN is
`istio-http/1.1` is not given to a dissector by ALPN, so every server port not carrying HTTP/2
is passed as `-d tls.port==P,http`; HTTP/2 (`h2`, `istio-h2`) is found by the http2_tls
heuristic (tls.port cannot be decoded as http2). keylog-crlf.keys is given to tshark as a normalised copy (LF, lower-case hex, no
comments): the truth is what the lines mean (RFC 9850), not how tolerant tshark's parser is.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    from cryptography import x509
except ImportError:                     # Debian's python3-cryptography, when python3 is another interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    from cryptography import x509

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAP = os.path.join(ROOT, "captures")
SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
}
VERSIONS = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}
HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
TLS13_NEEDED = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"}
H2_PORTS = {8444, 50051}

MESH = "CN=reviews,O=cluster.local"
ROOTCA = "CN=cluster.local root,O=cluster.local"
API = "CN=api.example.test,O=Example Test"
CLIENT = "CN=productpage,O=cluster.local"
R_URI = "spiffe://cluster.local/ns/default/sa/reviews"
P_URI = "spiffe://cluster.local/ns/default/sa/productpage"


def default_runs():
    runs = []
    for stem in ("tls12", "tls13", "python", "h2"):
        runs.append((f"keylog-{stem}.pcap", f"keylog-{stem}.keys"))
    for stem in ("tls12", "tls13"):
        runs.append((f"keylog-{stem}.pcap", "keylog-partial.keys"))
        runs.append((f"keylog-{stem}.pcap", "keylog-wrong.keys"))
    for stem in ("tls12", "tls13", "python", "h2"):
        runs.append((f"keylog-{stem}.pcap", "keylog-crlf.keys"))
    for stem in ("openssl", "python", "go", "rustls"):     # TLS 1.3 from Go and rustls too
        runs.append((f"tls13-calib-{stem}.pcap", f"tls13-calib-{stem}.keys"))
    return [(os.path.join(CAP, p), os.path.join(CAP, k)) for p, k in runs]


# --- key log ---------------------------------------------------------------------------------------

LINE = re.compile(r"^\s*([A-Z_0-9]+)\s+([0-9a-fA-F]{64})\s+([0-9a-fA-F]+)\s*$")


def read_keylog(path):
    """{client_random (lower hex): {label: secret (lower hex)}} and the normalised text."""
    keys, text = {}, []
    with open(path, "rb") as f:
        for raw in re.split(rb"\r\n|\r|\n", f.read()):
            ln = raw.decode("ascii", "replace")
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
            m = LINE.match(ln)
            if not m:
                continue
            label, rnd, secret = m.group(1), m.group(2).lower(), m.group(3).lower()
            keys.setdefault(rnd, {})[label] = secret
            text.append(f"{label} {rnd} {secret}")
    return keys, "\n".join(text) + "\n"


# --- tshark ----------------------------------------------------------------------------------------

def as_list(v):
    return v if isinstance(v, list) else ([] if v is None else [v])


def find_all(d, key, out=None):
    """Every value of KEY anywhere inside the nested dict/list D, in document order."""
    out = [] if out is None else out
    if isinstance(d, dict):
        for k, v in d.items():
            if k == key:
                out.extend(as_list(v))
            else:
                find_all(v, key, out)
    elif isinstance(d, list):
        for v in d:
            find_all(v, key, out)
    return out


def tshark_json(pcap, keyfile, decode_as):
    cmd = ["tshark", "-r", pcap, "-o", f"tls.keylog_file:{keyfile}", "-T", "json", "--no-duplicate-keys",
           "-J", "tcp tls http http2"]
    for port, proto in sorted(decode_as.items()):
        if proto == "http":            # HTTP/2 over TLS is found by tshark's http2_tls heuristic
            cmd += ["-d", f"tls.port=={port},http"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"tshark failed on {pcap}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def server_ports(pcap):
    """{server port: 'http' | 'http2'} from the SYN-ACKs and the ALPN the ServerHellos chose."""
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 1 || tls.handshake.type == 2",
                          "-T", "fields", "-e", "tcp.srcport", "-e", "tls.handshake.extensions_alpn_str"],
                         check=True, capture_output=True, text=True).stdout
    ports = {}
    for line in out.splitlines():
        port, alpn = (line.split("\t") + [""])[:2]
        port = int(port)
        proto = "http2" if port in H2_PORTS or "h2" in alpn.split(",") or "istio-h2" in alpn else "http"
        ports.setdefault(port, proto)
    return ports


def cert_facts(h):
    ders = find_all(h.get("tls.handshake.certificates", {}), "tls.handshake.certificate")
    subjects, uris = [], []
    for der in ders:
        c = x509.load_der_x509_certificate(bytes.fromhex(der.replace(":", "")))
        subjects.append(c.subject.rfc4514_string())
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris += san.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            pass
    return subjects, uris


def flows(pcap, keyfile):
    """The truth of every connection of PCAP decrypted with KEYFILE, keyed by client port."""
    keys, norm = read_keylog(keyfile)
    with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as t:
        t.write(norm)
    try:
        packets = tshark_json(pcap, t.name, server_ports(pcap))
    finally:
        os.unlink(t.name)
    conns = {}
    for pkt in packets:
        L = pkt["_source"]["layers"]
        tcp = L["tcp"]
        stream = int(tcp["tcp.stream"])
        sport, dport = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
        c = conns.setdefault(stream, {"msgs": [], "recs": [], "http": [], "syn": None})
        flags = int(tcp["tcp.flags"], 16)
        if flags & 0x12 == 0x02:
            c["syn"] = (sport, dport)
        if c["syn"] is None and "client" not in c:
            c["syn"] = (sport, dport) if dport < sport else (dport, sport)
        side = "c" if (sport, dport) == c["syn"] else "s"
        for tls in as_list(L.get("tls")):
            if not isinstance(tls, dict):
                continue
            for r in as_list(tls.get("tls.record")):
                if not isinstance(r, dict):
                    continue
                opaque = r.get("tls.record.opaque_type")
                ctype = r.get("tls.record.content_type")
                hs = [h for h in as_list(r.get("tls.handshake")) if isinstance(h, dict) and "tls.handshake.type" in h]
                c["recs"].append((side, int(opaque) if opaque is not None else None,
                                  int(ctype) if ctype is not None else None, bool(hs), r))
                for h in hs:
                    c["msgs"].append((side, int(h["tls.handshake.type"]), h))
        for http in as_list(L.get("http")):
            if isinstance(http, dict):
                for m, u in zip(find_all(http, "http.request.method"), find_all(http, "http.request.uri")):
                    c["http"].append((m, u))
                if find_all(http, "http.response.code"):
                    c["app"] = True
        for h2 in as_list(L.get("http2")):
            if isinstance(h2, dict):
                for st in find_all(h2, "http2.stream"):
                    if not isinstance(st, dict):
                        continue
                    meth = find_all(st, "http2.headers.method")
                    path = find_all(st, "http2.headers.path")
                    if meth and path:
                        c["http"].append((meth[0], path[0]))
                    if find_all(st, "http2.type"):
                        c["app"] = True
        if L.get("http"):
            c["app"] = True
    out = {}
    for stream, c in conns.items():
        cport, sport = c["syn"]
        out[cport] = truth_of(c, keys, sport)
    return out


def truth_of(c, keys, server_port):
    msgs = c["msgs"]
    ch = [h for s, t, h in msgs if s == "c" and t == 1]
    shs = [h for s, t, h in msgs if s == "s" and t == 2]
    t = {"server_port": server_port, "version": None, "cipher": None, "alpn": None, "cr": False,
         "server_subjects": [], "server_uris": [], "client_subjects": [], "client_uris": [],
         "client_cert_empty": False, "mtls": None, "status": "no_keys", "handshake": False,
         "application": False, "requests": [[m, p] for m, p in c["http"]], "notes": []}
    if not ch or not shs:
        return t
    rnd = ch[0]["tls.handshake.random"].replace(":", "").lower()
    sh = shs[-1]
    sv = find_all(sh, "tls.handshake.extensions.supported_version")
    ver = int(sv[0], 16) if sv else int(sh["tls.handshake.version"], 16)
    t["version"] = VERSIONS.get(ver, f"0x{ver:04x}")
    suite = int(sh["tls.handshake.ciphersuite"], 16)
    t["cipher"] = SUITES.get(suite, f"0x{suite:04X}")
    tls13 = ver == 0x0304
    if any(h.get("tls.handshake.random", "").replace(":", "") == HRR_RANDOM for h in shs):
        t["notes"].append("HRR")
    alpn_src = [h for s, ty, h in msgs if s == "s" and ty == (8 if tls13 else 2)]
    alpn = [a for h in alpn_src[-1:] for a in find_all(h, "tls.handshake.extensions_alpn_str")]
    t["alpn"] = alpn[0] if alpn else None
    t["cr"] = any(s == "s" and ty == 13 for s, ty, h in msgs)
    for s, ty, h in msgs:
        if ty != 11:
            continue
        subj, uris = cert_facts(h)
        if s == "s":
            t["server_subjects"], t["server_uris"] = subj, uris
        else:
            t["client_subjects"], t["client_uris"] = subj, uris
            t["client_cert_empty"] = not subj
    client_cert_msg = any(s == "c" and ty == 11 for s, ty, h in msgs)
    fins = {s for s, ty, h in msgs if ty == 20}
    # resumption
    if tls13:
        if any("Extension: pre_shared_key" in k for k in sh):
            t["notes"].append("psk")
    elif not any(s == "s" and ty == 11 for s, ty, h in msgs) and "s" in fins:
        sid = ch[0].get("tls.handshake.session_id", "")
        sh_sid = sh.get("tls.handshake.session_id", "")
        t["notes"].append("session_id" if sid and sid == sh_sid and not ch_has_ticket(ch[0]) else "session_ticket")
    resumed = any(n in ("psk", "session_id", "session_ticket") for n in t["notes"])
    ku = sum(1 for s, ty, h in msgs if ty == 24)
    if ku:
        t["notes"].append(f"KeyUpdate x{ku}")
    early = tls13 and any("Extension: early_data" in k for k in ch[-1]) and any(
        "Extension: early_data" in k for s, ty, h in msgs if s == "s" and ty == 8 for k in h)
    if early:
        t["notes"].append("early data")
    # decryption
    lines = keys.get(rnd, {})
    app = bool(c.get("app"))
    if tls13:
        enc, dec = 0, 0
        for side, opaque, ctype, has_hs, r in c["recs"]:
            if opaque == 23:
                enc += 1
                dec += ctype is not None
        hs_ok = fins == {"c", "s"}
        all_ok = enc == dec
        needed = TLS13_NEEDED | ({"CLIENT_EARLY_TRAFFIC_SECRET"} if early else set())
    else:
        hs_ok = fins == {"c", "s"}      # both encrypted Finished parsed
        all_ok = hs_ok and app
        needed = {"CLIENT_RANDOM"}
    t["handshake"], t["application"] = hs_ok, app
    if not (set(lines) & (needed | {"CLIENT_EARLY_TRAFFIC_SECRET"})):
        t["status"] = "no_keys"
    elif "CBC" in t["cipher"]:
        # tshark decrypts CBC suites, tlspeek does not: nothing decrypted, nothing seen inside.
        t["status"] = "unsupported_cipher"
        if t["requests"]:
            t["notes"].append("tshark decrypts it: " + ", ".join(f"{m} {p}" for m, p in t["requests"]))
        t["requests"], t["handshake"], t["application"] = [], False, False
    elif all_ok:
        t["status"] = "decrypted"
    elif needed <= set(lines):
        t["status"] = "failed"
    elif hs_ok or app or (tls13 and dec):
        t["status"] = "partial"
    else:
        t["status"] = "no_keys"
    if tls13 and "CLIENT_HANDSHAKE_TRAFFIC_SECRET" not in lines and "CLIENT_TRAFFIC_SECRET_0" in lines \
            and not t["requests"]:
        # tshark stops at the client's first record it cannot decrypt (its encrypted handshake);
        # tlspeek tries the client's application secret on the records after it and reads the
        # requests: not compared.
        t["requests"] = None
        t["notes"].append("requests not compared (tshark stops at the client's handshake)")
    # mTLS, from the decrypted (or cleartext) handshake
    if resumed:
        t["mtls"] = None
    elif tls13 and not hs_ok and not (t["cr"] and client_cert_msg):
        t["mtls"] = None
    elif t["client_subjects"]:
        t["mtls"] = "yes"
    else:
        t["mtls"] = "no"
    return t


def ch_has_ticket(h):
    return any("Extension: session_ticket" in k and "len=0" not in k for k in h)


# --- what make-keylog.sh meant (--check-made) --------------------------------------------------------

def E(version, cipher, alpn=None, cr=False, server=(MESH, ROOTCA), client=(), empty=False, mtls="no",
      requests=(), notes=(), status="decrypted"):
    return {"version": version, "cipher": cipher, "alpn": alpn, "cr": cr, "server_subjects": list(server),
            "client_subjects": list(client), "client_cert_empty": empty, "mtls": mtls,
            "requests": [list(r) for r in requests], "notes": list(notes), "status": status}


def G(*paths):
    return [("GET", p) for p in paths]


A128, A256, CHA = "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"
EA128, EA256 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
ECHA = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
SRV_EC, SRV_RSA, CLI = (MESH,), (API,), (CLIENT, ROOTCA)
EXPECT = {
    # keylog-tls12.pcap (OpenSSL)
    51001: E("TLS 1.2", EA128, server=SRV_EC, requests=G("/k12-ecdhe-ecdsa-aes128gcm")),
    51002: E("TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", server=SRV_RSA, requests=G("/k12-ecdhe-rsa-aes128gcm")),
    51003: E("TLS 1.2", EA256, server=SRV_EC, requests=G("/k12-ecdhe-ecdsa-aes256gcm")),
    51004: E("TLS 1.2", ECHA, server=SRV_EC, requests=G("/k12-ecdhe-ecdsa-chacha20")),
    51005: E("TLS 1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256", server=SRV_RSA, requests=G("/k12-rsa-aes128gcm")),
    51006: E("TLS 1.2", "TLS_RSA_WITH_AES_256_GCM_SHA384", server=SRV_RSA, requests=G("/k12-rsa-aes256gcm")),
    51007: E("TLS 1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", server=SRV_EC, status="unsupported_cipher",
             notes=["tshark decrypts it: GET /k12-ecdhe-ecdsa-aes128cbc"]),
    51008: E("TLS 1.2", EA128, alpn="istio-http/1.1", cr=True, server=SRV_EC, client=CLI, mtls="yes",
             requests=G("/k12-mtls-spiffe")),
    51009: E("TLS 1.2", EA128, cr=True, server=SRV_EC, empty=True, requests=G("/k12-empty-client-cert")),
    51010: E("TLS 1.2", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", cr=True, server=SRV_RSA, client=CLI,
             mtls="yes", requests=G("/k12-ecdhe-rsa-chacha20-mtls")),
    51080: E("TLS 1.2", EA128, server=SRV_EC, requests=G("/k12-ticket-full")),
    51011: E("TLS 1.2", EA128, server=(), mtls=None, requests=G("/k12-ticket-resumed"), notes=["session_ticket"]),
    51081: E("TLS 1.2", EA256, server=SRV_EC, requests=G("/k12-sessid-full")),
    51012: E("TLS 1.2", EA256, server=(), mtls=None, requests=G("/k12-sessid-resumed"), notes=["session_id"]),
    # keylog-tls13.pcap (OpenSSL)
    52001: E("TLS 1.3", A128, server=SRV_EC, requests=G("/k13-aes128gcm")),
    52002: E("TLS 1.3", A256, server=SRV_EC, requests=G("/k13-aes256gcm")),
    52003: E("TLS 1.3", CHA, server=SRV_EC, requests=G("/k13-chacha20")),
    52004: E("TLS 1.3", A128, alpn="istio-http/1.1", cr=True, server=SRV_EC, client=CLI, mtls="yes",
             requests=G("/k13-mtls-spiffe")),
    52005: E("TLS 1.3", A256, cr=True, server=SRV_EC, empty=True, requests=G("/k13-empty-client-cert")),
    52006: E("TLS 1.3", A128, cr=True, server=SRV_EC, client=CLI, mtls="yes", requests=G("/k13-hrr-mtls"),
             notes=["HRR"]),
    52080: E("TLS 1.3", A128, cr=True, server=SRV_EC, client=CLI, mtls="yes", requests=G("/k13-psk-full")),
    52007: E("TLS 1.3", A128, server=(), mtls=None, requests=G("/k13-psk-resumed"), notes=["psk"]),
    52010: E("TLS 1.3", A256, server=SRV_RSA, requests=G("/k13-rsa-server")),
    52008: E("TLS 1.3", A128, server=SRV_EC, requests=G("/k13-keyupdate-1", "/k13-keyupdate-2"),
             notes=["KeyUpdate x2"]),
    52009: E("TLS 1.3", A128, server=(), mtls=None, requests=G("/k13-early-data", "/k13-after-early-data"),
             notes=["psk", "early data"]),
    # keylog-python.pcap (Python ssl)
    53001: E("TLS 1.3", A256, alpn="istio-http/1.1", cr=True, server=SRV_EC, client=CLI, mtls="yes",
             requests=G("/productpage/reviews/0", "/productpage/reviews/1")),
    53002: E("TLS 1.2", EA256, alpn="istio-http/1.1", cr=True, server=SRV_EC, client=CLI, mtls="yes",
             requests=G("/reviews/1", "/reviews/2")),
    53003: E("TLS 1.2", ECHA, alpn="http/1.1", server=SRV_EC, requests=G("/static/a.css", "/static/b.js", "/static/c.png")),
    # keylog-h2.pcap
    54001: E("TLS 1.3", A256, alpn="h2", server=SRV_EC, requests=G("/index.html", "/api/reviews"), notes=["HRR"]),
    54002: E("TLS 1.2", EA128, alpn="h2", server=SRV_EC, requests=G("/style.css")),
    54003: E("TLS 1.3", A256, alpn="istio-h2", cr=True, server=SRV_EC, client=CLI, mtls="yes",
             requests=G("/ratings/1", "/ratings/2")),
    54004: E("TLS 1.2", ECHA, alpn="h2", server=SRV_EC, requests=G("/details/0")),
    54005: E("TLS 1.3", A256, alpn="h2", server=SRV_EC, requests=[("POST", "/reviews.Reviews/GetReview")],
             notes=["HRR"]),
}
# Variant key logs: the status each edited connection must get (every other one as above).
VARIANT_STATUS = {
    "keylog-partial.keys": {51003: "no_keys", 52002: "no_keys", 52003: "partial", 52004: "partial",
                            52009: "partial"},
    "keylog-wrong.keys": {51001: "failed", 52001: "failed", 52005: "failed"},
}


def check_made(keyfile, truth):
    """Differences between the truth of one run and EXPECT (only the flows keyed there)."""
    bad = []
    variant = VARIANT_STATUS.get(os.path.basename(keyfile), {})
    for port, want in EXPECT.items():
        if port not in truth:
            continue
        got = truth[port]
        if port in variant:
            if got["status"] != variant[port]:
                bad.append(f"{port} status: {got['status']!r}, meant {variant[port]!r}")
            continue
        for k, v in want.items():
            g = got[k]
            if k == "server_subjects" and v:
                g = g[:1]
                v = v[:1]
            if g != v:
                bad.append(f"{port} {k}: {g!r}, meant {v!r}")
    return bad


# --- tlspeek ---------------------------------------------------------------------------------------

def tlspeek(binary, pcap, keyfile, baseline=False):
    cmd = [binary, "--json", "-q", "--show-secrets"] + ([] if baseline else ["--keylog", keyfile]) + ["-r", pcap]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and not p.stdout:
        return None, f"`{' '.join(cmd)}` exited {p.returncode}: {p.stderr.strip()[:300]}"
    out = {}
    for line in p.stdout.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("type") != "flow":
            continue
        port = int(o["client"].rsplit(":", 1)[1])
        out[port] = o
    return out, None


def get(o, *path):
    for k in path:
        if not isinstance(o, dict):
            return None
        o = o.get(k)
    return o


def tlspeek_view(o):
    tls = o.get("tls") or {}
    dec = tls.get("decryption") or {}
    reqs = (o.get("http") or {}).get("requests") or []
    return {
        "version": tls.get("version"), "cipher": tls.get("cipher"), "alpn": tls.get("alpn_selected"),
        "cr": tls.get("client_cert_requested"), "client_cert_empty": tls.get("client_cert_empty"),
        "mtls": tls.get("mtls"),
        "server_subjects": [c.get("subject") for c in tls.get("server_certs") or []],
        "server_uris": [u for c in tls.get("server_certs") or [] for u in c.get("san_uris") or []],
        "client_subjects": [c.get("subject") for c in tls.get("client_certs") or []],
        "client_uris": [u for c in tls.get("client_certs") or [] for u in c.get("san_uris") or []],
        "status": dec.get("status"), "handshake": dec.get("handshake"), "application": dec.get("application"),
        "requests": [[r.get("method"), r.get("path")] for r in reqs],
    }


FIELDS = [("version", "tls.version"), ("cipher", "tls.cipher"), ("alpn", "tls.alpn_selected"),
          ("cr", "tls.client_cert_requested"), ("client_cert_empty", "tls.client_cert_empty"),
          ("mtls", "tls.mtls"), ("server_subjects", "tls.server_certs[].subject"),
          ("server_uris", "tls.server_certs[].san_uris"), ("client_subjects", "tls.client_certs[].subject"),
          ("client_uris", "tls.client_certs[].san_uris"), ("status", "tls.decryption.status"),
          ("handshake", "tls.decryption.handshake"), ("application", "tls.decryption.application"),
          ("requests", "http.requests[].{method,path}")]


# --- output ----------------------------------------------------------------------------------------

def cell(v):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        if v and isinstance(v[0], list):
            return "<br>".join(f"{m} `{p}`" for m, p in v) or "—"
        return "<br>".join(f"`{x}`" for x in v) or "—"
    return f"`{v}`" if isinstance(v, str) and v not in ("yes", "no") else str(v)


def markdown(pcap, keyfile, truth):
    print(f"\n#### `{os.path.basename(pcap)}` with `{os.path.basename(keyfile)}`\n")
    print("| client port | version | cipher | ALPN | CR | server chain | client chain | client URI SANs | mtls | "
          "decryption (handshake, application) | requests | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for port in sorted(truth, key=lambda p: (p % 100 >= 80, p)):
        t = truth[port]
        client = "empty" if t["client_cert_empty"] else cell(t["client_subjects"])
        print(f"| {port} | {cell(t['version'])} | {cell(t['cipher'])} | {cell(t['alpn'])} | {cell(t['cr'])} | "
              f"{cell(t['server_subjects'])} | {client} | {cell(t['client_uris'])} | {cell(t['mtls'])} | "
              f"`{t['status']}` ({cell(t['handshake'])}, {cell(t['application'])}) | {cell(t['requests'])} | "
              f"{', '.join(t['notes']) or '—'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "tlspeek"))
    ap.add_argument("--tshark-only", action="store_true")
    ap.add_argument("--check-made", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--baseline", action="store_true",
                    help="run tlspeek without --keylog: what it sees without the keys (same comparison)")
    ap.add_argument("runs", nargs="*", metavar="PCAP:KEYS")
    a = ap.parse_args()
    if not a.tshark_only and not os.access(a.bin, os.X_OK):
        sys.exit(f"no tlspeek binary at {a.bin} (cargo build, or --bin PATH)")
    runs = [tuple(r.rsplit(":", 1)) for r in a.runs] if a.runs else default_runs()
    made_bad, agree, disagree, failed_runs = [], {}, {}, []
    diffs = []
    for pcap, keyfile in runs:
        truth = flows(pcap, keyfile)
        if a.check_made:
            made_bad += [f"{os.path.basename(pcap)} + {os.path.basename(keyfile)}: {b}"
                         for b in check_made(keyfile, truth)]
        if a.tshark_only:
            markdown(pcap, keyfile, truth)
            continue
        got, err = tlspeek(a.bin, pcap, keyfile, a.baseline)
        name = f"{os.path.basename(pcap)} + {os.path.basename(keyfile)}"
        if err:
            failed_runs.append(f"{name}: {err}")
            continue
        for port, t in sorted(truth.items()):
            o = got.get(port)
            view = tlspeek_view(o) if o else None
            for key, label in FIELDS:
                if key in ("mtls", "requests") and t[key] is None:
                    continue
                if view is not None and view[key] == t[key]:
                    agree[label] = agree.get(label, 0) + 1
                    if a.verbose:
                        print(f"ok   {name} {port} {label} = {t[key]!r}")
                else:
                    disagree[label] = disagree.get(label, 0) + 1
                    diffs.append(f"{name} port {port} {label}: tshark {t[key]!r}, tlspeek "
                                 f"{view[key] if view else '(no flow)'!r}")
    if made_bad:
        print("\nCAPTURES NOT AS MEANT (make-keylog.sh / EXPECT):")
        for b in made_bad:
            print("  " + b)
    elif a.check_made:
        print(f"\ncaptures as meant: {sum(len(flows_) for flows_ in [EXPECT])} connections, "
              f"{len(runs)} pcap + key-log runs", file=sys.stderr)
    if a.tshark_only:
        sys.exit(1 if made_bad else 0)
    for d in diffs:
        print("DIFF " + d)
    for f in failed_runs:
        print("TLSPEEK FAILED " + f)
    print("\nagreement per key (tshark = tlspeek / compared):")
    for _, label in FIELDS:
        n, m = agree.get(label, 0), disagree.get(label, 0)
        print(f"  {label:34} {n}/{n + m}")
    total_a, total_d = sum(agree.values()), sum(disagree.values())
    print(f"total: {total_a} agree, {total_d} disagree, {len(failed_runs)} run(s) where tlspeek failed")
    if failed_runs:
        sys.exit(2)
    sys.exit(1 if total_d or made_bad else 0)


if __name__ == "__main__":
    main()

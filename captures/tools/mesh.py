#!/usr/bin/env python3
"""Istio sidecar stand-ins for captures/make-istio.sh: real TLS (Python ssl = OpenSSL 3.0) and real
HTTP/1.1 over real sockets, between the two network namespaces that script makes.

    mesh.py app PORT [--count N]
        The application container: HTTP/1.1 keep-alive on 127.0.0.1:PORT, JSON answers
        (/reviews/N, /ratings/N). Serves N connections (default 1) and exits.
    mesh.py sidecar-in PORT --cert C --key K --ca CA --mode strict|permissive [--tls 1.2|1.3]
                       [--alpn a,b] [--app 127.0.0.1:9080] [--app-src 127.0.0.6]
                       [--app-sports P1,P2..] [--meta reviews-v2] [--count N]
        The server pod's inbound sidecar on PORT (no iptables here: it listens on the service port
        itself). The first byte decides: 0x16 = TLS record -> TLS handshake that requires a client
        certificate signed by CA; anything else -> plaintext HTTP (permissive) or, strict, the
        bytes are read and the connection is reset (SO_LINGER on, 0 s -> RST). Every request is
        forwarded in plaintext to the app from APP_SRC:Pi (bound before connect; connection i of
        the listener uses port Pi, one upstream connection per downstream connection), with
        x-forwarded-proto, x-request-id, x-b3-*, and x-forwarded-client-cert (TLS with a client
        certificate); the answer is relayed with `server: istio-envoy`,
        `x-envoy-upstream-service-time: 3` and, if the request came from a sidecar (it carried
        x-envoy-peer-metadata-id), this sidecar's own x-envoy-peer-metadata(-id).
    mesh.py sidecar-out HOST PORT --sport P [--tls 1.2|1.3 --sni S --alpn a,b --cert C --key K --ca CA]
                        [--paths /a,/b] [--host reviews:9080] [--meta productpage-v1] [--token]
                        [--expect-reset]
        The client pod's outbound sidecar: one connection from fixed source port P, one request
        per path (keep-alive), sidecar headers (x-forwarded-proto http, x-request-id, x-b3-*,
        x-envoy-peer-metadata(-id), x-envoy-attempt-count). Without --tls: plaintext (DestinationRule
        DISABLE). --token adds `authorization: Bearer <fake JWT>`. --expect-reset: a reset while
        reading the answer is the expected outcome (STRICT server), not an error.
        TLS sessions end with close_notify both ways, then FIN (client first).
    mesh.py probe-server --ports 15020,15021,15090 [--count N]
        pilot-agent / Envoy admin ports: /app-health/<app>/readyz, /healthz/ready,
        /stats/prometheus. Serves N connections in all (default 3), each answered then closed
        unless the client keeps it alive.
    mesh.py probe HOST PORT PATH --sport P [--src ADDR] [--kind kube|prometheus]
        kubelet probe (Go net/http, `Connection: close`) or a Prometheus scrape.
Request ids, trace ids and span ids are derived from the source port and request number, so a
regeneration sends the same bytes.
"""
import argparse
import base64
import hashlib
import select
import socket
import ssl
import struct
import sys
import time
import uuid
from email.utils import formatdate

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
CLIENT_IP = "10.97.0.2"
SERVER_IP = "10.97.0.1"

# --- x-envoy-peer-metadata: base64 of a serialized google.protobuf.Struct ---------------------
# Struct { map<string, Value> fields = 1; }  map entry { string key = 1; Value value = 2; }
# Value { string string_value = 3; Struct struct_value = 5; }   (keys in sorted order, as
# protobuf's deterministic serialization writes them)


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _ld(field, payload):
    return bytes([(field << 3) | 2]) + _varint(len(payload)) + payload


def pb_struct(d):
    out = b""
    for k in sorted(d):
        v = d[k]
        value = _ld(5, pb_struct(v)) if isinstance(v, dict) else _ld(3, v.encode())
        out += _ld(1, _ld(1, k.encode()) + _ld(2, value))
    return out


META = {
    "productpage-v1": dict(pod="productpage-v1-6b746f74dc-9stvs", app="productpage", version="v1",
                           ip=CLIENT_IP),
    "reviews-v2": dict(pod="reviews-v2-5b667bcbf8-7jkgl", app="reviews", version="v2", ip=SERVER_IP),
    "ratings-v1": dict(pod="ratings-v1-5f9699cfdf-4kzqn", app="ratings", version="v1", ip=SERVER_IP),
}


def peer_metadata(workload):
    m = META[workload]
    fields = {
        "NAME": m["pod"],
        "NAMESPACE": "default",
        "WORKLOAD_NAME": workload,
        "LABELS": {"app": m["app"], "version": m["version"]},
        "CLUSTER_ID": "Kubernetes",
        "ISTIO_VERSION": "1.22.1",
        "MESH_ID": "cluster.local",
    }
    blob = base64.b64encode(pb_struct(fields)).decode()
    node = f"sidecar~{m['ip']}~{m['pod']}.default~default.svc.cluster.local"
    return blob, node


# --- deterministic ids -------------------------------------------------------------------------


def _h(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def request_id(*parts):
    return str(uuid.UUID(bytes=_h("rid", *parts)[:16], version=4))


def trace_ids(*parts):
    d = _h("trace", *parts)
    return d[:16].hex(), d[16:24].hex()


def span_id(*parts):
    return _h("span", *parts)[:8].hex()


# --- HTTP/1.1 messages ---------------------------------------------------------------------------


def read_message(f):
    """(start line, [(name, value)], body) of the next HTTP/1.1 message, or None at EOF."""
    line = f.readline()
    if not line:
        return None
    start = line.decode("latin-1").rstrip("\r\n")
    headers = []
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, v = line.decode("latin-1").split(":", 1)
        headers.append((k.strip(), v.strip()))
    n = int(get(headers, "content-length") or 0)
    body = f.read(n) if n else b""
    return start, headers, body


def get(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def without(headers, *names):
    return [(k, v) for k, v in headers if k.lower() not in names]


def render(start, headers, body=b""):
    return (start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode() + body


# --- the app -------------------------------------------------------------------------------------


def app_body(path):
    parts = path.strip("/").split("/")
    n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if parts[0] == "ratings":
        return b'{"id":%d,"ratings":{"Reviewer1":5,"Reviewer2":4}}' % n
    return (b'{"id":"%d","podname":"reviews-v2-5b667bcbf8-7jkgl","clustername":"null","reviews":'
            b'[{"reviewer":"Reviewer1","text":"An extremely entertaining play by Shakespeare.",'
            b'"rating":{"stars":5,"color":"black"}}]}' % n)


def app(a):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    for _ in range(a.count):
        conn, _ = ls.accept()
        f = conn.makefile("rb")
        while True:
            m = read_message(f)
            if m is None:
                break
            method, path, _ = m[0].split(" ", 2)
            body = app_body(path)
            conn.sendall(render("HTTP/1.1 200 OK", [
                ("x-powered-by", "Servlet/4.0"),
                ("content-type", "application/json"),
                ("date", formatdate(usegmt=True)),
                ("content-language", "en-US"),
                ("content-length", str(len(body))),
            ], body))
        f.close()
        conn.close()


# --- server sidecar ------------------------------------------------------------------------------


def inbound_headers(h, proto, xfcc, tag):
    """The headers an inbound Envoy sends the app: the client's, without its sidecar's metadata,
    with x-forwarded-proto, a request id, B3 trace ids (the client's trace continued) and, over
    mTLS, x-forwarded-client-cert."""
    trace, parent = get(h, "x-b3-traceid"), get(h, "x-b3-spanid")
    if not trace:
        trace, parent = trace_ids("in", *tag)[0], None
    fwd = without(h, "x-envoy-peer-metadata", "x-envoy-peer-metadata-id", "x-forwarded-proto",
                  "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                  "x-b3-sampled", "x-forwarded-client-cert", "x-envoy-attempt-count")
    fwd += [("x-forwarded-proto", proto),
            ("x-request-id", get(h, "x-request-id") or request_id("in", *tag)),
            ("x-b3-traceid", trace), ("x-b3-spanid", span_id("in", *tag))]
    if parent:
        fwd.append(("x-b3-parentspanid", parent))
    fwd.append(("x-b3-sampled", "1"))
    if xfcc:
        fwd.append(("x-forwarded-client-cert", xfcc))
    return fwd


def own_uri(cert_path):
    from cryptography import x509
    with open(cert_path, "rb") as fh:
        c = x509.load_pem_x509_certificate(fh.read())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)[0]


def peer_uri(t):
    for kind, v in t.getpeercert().get("subjectAltName", ()):
        if kind == "URI":
            return v
    return ""


def sidecar_in(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if a.tls:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    me = own_uri(a.cert)
    blob, node = peer_metadata(a.meta)
    app_host, app_port = a.app.rsplit(":", 1)
    sports = [int(p) for p in a.app_sports.split(",")] if a.app_sports else []

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(16)
    for i in range(a.count):
        conn, peer = ls.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        first = conn.recv(1, socket.MSG_PEEK)
        if first != b"\x16":
            if a.mode == "strict":
                # TLS-only listener: no filter chain matches plaintext. Read what came, reset.
                got = conn.recv(65536)
                print(f"sidecar-in: {peer[0]}:{peer[1]} sent {len(got)} bytes that are not TLS "
                      f"({got[:16]!r}): reset", file=sys.stderr)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            down, xfcc, proto = conn, None, "http"
        else:
            try:
                down = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print("sidecar-in: handshake:", e, file=sys.stderr)
                conn.close()
                continue
            der = down.getpeercert(binary_form=True)
            xfcc = (f'By={me};Hash={hashlib.sha256(der).hexdigest()};Subject="";URI={peer_uri(down)}'
                    if der else None)
            proto = "https"
        up = None
        f = down.makefile("rb")
        n = 0
        while True:
            try:
                m = read_message(f)
            except (ssl.SSLError, OSError):
                m = None
            if m is None:
                break
            start, h, body = m
            if up is None:
                up = socket.socket()
                up.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                up.bind((a.app_src, sports[i] if i < len(sports) else 0))
                up.connect((app_host, int(app_port)))
                up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                uf = up.makefile("rb")
            fwd = inbound_headers(h, proto, xfcc, (peer[1], n))
            up.sendall(render(start, fwd, body))
            rstart, rh, rbody = read_message(uf)
            rh = without(rh, "server")
            rh += [("x-envoy-upstream-service-time", "3")]
            if get(h, "x-envoy-peer-metadata-id"):
                rh += [("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node)]
            rh += [("server", "istio-envoy")]
            down.sendall(render(rstart, rh, rbody))
            n += 1
        f.close()
        if up is not None:
            uf.close()
            up.close()
        if down is not conn:
            try:
                down = down.unwrap()          # answer the client's close_notify with ours,
                down.settimeout(2)            # then close after the client's FIN (the client
                down.recv(1)                  # closes first, as in the plaintext sessions)
            except (ssl.SSLError, OSError):
                pass
        down.close()


# --- client sidecar ------------------------------------------------------------------------------


def sidecar_out(a):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", a.sport))
    s.connect((a.host, a.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = s
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False           # Envoy checks the SPIFFE URI SAN, not a host name
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
        if a.alpn:
            ctx.set_alpn_protocols(a.alpn.split(","))
        ctx.load_cert_chain(a.cert, a.key)
        conn = ctx.wrap_socket(s, server_hostname=a.sni)
        print(f"sidecar-out: {conn.version()} {conn.cipher()[0]} alpn={conn.selected_alpn_protocol()} "
              f"server={peer_uri(conn)}", file=sys.stderr)
    blob, node = peer_metadata(a.meta)
    f = conn.makefile("rb")
    for n, path in enumerate(a.paths.split(",")):
        trace, span = trace_ids("out", a.sport, n)
        h = [("host", a.vhost), ("user-agent", "curl/7.88.1"), ("accept", "*/*")]
        if a.token:
            h.append(("authorization", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ."
                                       "eyJzdWIiOiJwcm9kdWN0cGFnZSIsImlzcyI6InRsc3BlZWstdGVzdCJ9."
                                       "ZmFrZS1zaWduYXR1cmUtbm90LWEtcmVhbC10b2tlbg"))
        h += [("x-forwarded-proto", "http"), ("x-request-id", request_id("out", a.sport, n)),
              ("x-envoy-decorator-operation", f"{a.vhost.split(':')[0]}.default.svc.cluster.local:"
                                              f"{a.port}/*"),
              ("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node),
              ("x-envoy-attempt-count", "1"),
              ("x-b3-traceid", trace), ("x-b3-spanid", span), ("x-b3-sampled", "1")]
        conn.sendall(render(f"GET {path} HTTP/1.1", h))
        try:
            m = read_message(f)
        except ConnectionResetError:
            if a.expect_reset:
                print(f"sidecar-out: {path}: connection reset by peer (expected)", file=sys.stderr)
                f.close()
                conn.close()
                return
            raise
        if m is None:
            sys.exit(f"sidecar-out: {path}: connection closed without an answer")
        print(f"sidecar-out: GET {path} -> {m[0]}", file=sys.stderr)
    if a.expect_reset:
        sys.exit("sidecar-out: expected a reset, got answers")
    f.close()
    if conn is not s:
        conn = conn.unwrap()                 # close_notify out, wait for the server's
    conn.close()


# --- health probes and metrics -------------------------------------------------------------------

PROM = (b"# TYPE istio_requests_total counter\n"
        b'istio_requests_total{response_code="200",reporter="destination",source_workload="productpage-v1",'
        b'destination_workload="reviews-v2",connection_security_policy="mutual_tls"} 2\n'
        b'istio_requests_total{response_code="200",reporter="destination",source_workload="productpage-v1",'
        b'destination_workload="reviews-v2",connection_security_policy="none"} 2\n'
        b"# TYPE envoy_server_uptime gauge\n"
        b"envoy_server_uptime{} 3600\n")


def probe_server(a):
    socks = {}
    for p in a.ports.split(","):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", int(p)))
        ls.listen(16)
        socks[ls] = int(p)
    for _ in range(a.count):
        r, _, _ = select.select(list(socks), [], [])
        ls = r[0]
        conn, _ = ls.accept()
        f = conn.makefile("rb")
        while True:
            m = read_message(f)
            if m is None:
                break
            path = m[0].split(" ")[1]
            close = (get(m[1], "connection") or "").lower() == "close"
            if path.startswith("/app-health/") and path.endswith("/readyz"):
                status, h, body = "200 OK", [("date", formatdate(usegmt=True))], b""
            elif path == "/healthz/ready":
                status, h, body = "200 OK", [("date", formatdate(usegmt=True)), ("server", "envoy")], b""
            elif path == "/stats/prometheus":
                status, body = "200 OK", PROM
                h = [("content-type", "text/plain; version=0.0.4; charset=utf-8"),
                     ("cache-control", "no-cache, max-age=0"), ("x-content-type-options", "nosniff"),
                     ("date", formatdate(usegmt=True)), ("server", "envoy")]
            else:
                status, h, body = "404 Not Found", [("date", formatdate(usegmt=True))], b""
            h.append(("content-length", str(len(body))))
            if close:
                h.append(("connection", "close"))
            conn.sendall(render("HTTP/1.1 " + status, h, body))
            if close:
                break
        f.close()
        conn.close()


def probe(a):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.src or "", a.sport))
    s.connect((a.host, a.port))
    hostport = f"{a.host}:{a.port}"
    if a.kind == "kube":
        # Go net/http as kubelet's prober uses it: keep-alives off, no compression.
        h = [("Host", hostport), ("User-Agent", "kube-probe/1.29"), ("Accept", "*/*"),
             ("Connection", "close")]
    else:
        h = [("Host", hostport), ("User-Agent", "Prometheus/2.51.0"),
             ("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
             ("Accept-Encoding", "gzip"), ("X-Prometheus-Scrape-Timeout-Seconds", "10")]
    s.sendall(render(f"GET {a.path} HTTP/1.1", h))
    f = s.makefile("rb")
    m = read_message(f)
    print(f"probe: GET {hostport}{a.path} -> {m[0] if m else 'nothing'}", file=sys.stderr)
    if a.kind == "kube":
        f.read()                               # the server closes (Connection: close)
    f.close()
    s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role")
    p.add_argument("args", nargs="*")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--mode", choices=["strict", "permissive"], default="permissive")
    p.add_argument("--tls", choices=list(VERSIONS))
    p.add_argument("--alpn")
    p.add_argument("--sni")
    p.add_argument("--app", default="127.0.0.1:9080")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--app-src", default="127.0.0.6")
    p.add_argument("--app-sports", default="")
    p.add_argument("--meta")
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--paths", default="/")
    p.add_argument("--host", dest="vhost", default="reviews:9080")
    p.add_argument("--token", action="store_true")
    p.add_argument("--expect-reset", action="store_true")
    p.add_argument("--ports", default="15020,15021,15090")
    p.add_argument("--src")
    p.add_argument("--kind", choices=["kube", "prometheus"], default="kube")
    a = p.parse_args()
    r, x = a.role, a.args
    if r in ("app", "sidecar-in"):
        a.port = int(x[0])
    elif r in ("sidecar-out",):
        a.host, a.port = x[0], int(x[1])
    elif r == "probe":
        a.host, a.port, a.path = x[0], int(x[1]), x[2]
    a.meta = a.meta or ("reviews-v2" if r == "sidecar-in" else "productpage-v1")
    {"app": app, "sidecar-in": sidecar_in, "sidecar-out": sidecar_out,
     "probe-server": probe_server, "probe": probe}[r](a)


if __name__ == "__main__":
    main()

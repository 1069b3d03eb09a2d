#!/usr/bin/env python3
"""Istio sidecar stand-ins that run behind Istio's real iptables rules, for
captures/make-istio-iptables.sh (two network namespaces = two pods). Unlike tools/mesh.py (whose
sidecars listen on the service port themselves), these proxies are reached only through the
kernel's REDIRECT, read the original destination with getsockopt(SOL_IP, SO_ORIGINAL_DST) as
Envoy's original_dst listener filter does, and must run as uid/gid 1337 (Istio's proxy user:
the ISTIO_OUTPUT owner rules exempt their own connections from the redirect). Real TLS (Python
ssl = OpenSSL 3.0) and real HTTP/1.1 over real sockets; HTTP helpers come from tools/mesh.py.

    sidecar.py app PORT [--bind 0.0.0.0] [--count N]
        The application container: HTTP/1.1 keep-alive on BIND:PORT (all addresses, as apps in
        pods listen, so Envoy's inbound leg reaches it on the pod IP). N connections, then exits.
    sidecar.py inbound --pod-ip IP --cert C --key K --ca CA [--port 15006] [--mode strict|permissive]
                       [--tls 1.3] [--alpn a,b] [--app-src 127.0.0.6] [--app-sports P1,..]
                       [--meta reviews-v2] [--count N]
        Envoy's virtualInbound listener on 0.0.0.0:15006. Each accepted connection was
        REDIRECTed by ISTIO_INBOUND -> ISTIO_IN_REDIRECT; its original destination (pod IP and
        the port the client dialled) is read with SO_ORIGINAL_DST. First byte 0x16 -> TLS that
        requires a client certificate signed by CA (STRICT and PERMISSIVE); anything else ->
        plaintext HTTP (PERMISSIVE) or read-and-reset (STRICT). Requests go to the app from
        APP_SRC:Pi (bound before connect, as Istio >= 1.10's inbound passthrough does) to the
        ORIGINAL DESTINATION (pod IP : port) over lo, with x-forwarded-proto, x-request-id,
        x-b3-*, and x-forwarded-client-cert (By=own SPIFFE URI; Hash=SHA-256 of the peer
        certificate; Subject=its RFC 2253 subject; URI=its SPIFFE URI, as Istio configures Envoy:
        APPEND_FORWARD with subject+uri+dns details). Answers go back with
        x-envoy-upstream-service-time, this proxy's x-envoy-peer-metadata(-id) (if the request
        carried peer metadata) and `server: istio-envoy`.
    sidecar.py outbound --pod-ip IP --route VIP:PORT=SERVICE@ENDPOINT_IP:PORT [--port 15001]
                        [--tls 1.3 --alpn a,b --cert C --key K --ca CA] [--sports P1,..]
                        [--meta productpage-v1] [--count N]
        Envoy's virtualOutbound listener on 0.0.0.0:15001. Each accepted connection is an app's
        connection that ISTIO_OUTPUT -> ISTIO_REDIRECT sent here; SO_ORIGINAL_DST gives the
        service address the app dialled (VIP:PORT), --route maps it to the service name and one
        endpoint (what EDS would give Envoy). Upstream connection i leaves from source port Pi:
        with --tls, Istio mTLS (client certificate, SNI outbound_.PORT_._.SERVICE.default.svc.cluster.local,
        ALPN as given, certificate checked against CA, no host name check); without --tls
        plaintext (DestinationRule tls.mode DISABLE). Each app request is forwarded with Envoy's
        outbound headers (x-forwarded-proto http, x-request-id, x-envoy-decorator-operation,
        x-envoy-peer-metadata(-id), x-envoy-attempt-count, x-b3-*); each answer goes back to the
        app without the peer's metadata headers, with x-envoy-upstream-service-time and
        `server: envoy`. When the app closes, the upstream TLS session ends with close_notify
        both ways, then FIN.
Ids are derived from ports and request numbers (as in mesh.py), so a regeneration sends the same
bytes except dates, TLS secrets and signatures.
"""
import argparse
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh import (VERSIONS, app_body, get, inbound_headers, own_uri, pb_struct,  # noqa: E402
                  peer_uri, read_message, render, request_id, trace_ids, without)
from email.utils import formatdate  # noqa: E402

SO_ORIGINAL_DST = 80          # <linux/netfilter_ipv4.h>, level SOL_IP
PROXY_UID = 1337              # Istio's istio-proxy user and group

WORKLOADS = {
    "productpage-v1": dict(pod="productpage-v1-6b746f74dc-9stvs", app="productpage", version="v1"),
    "reviews-v2": dict(pod="reviews-v2-5b667bcbf8-7jkgl", app="reviews", version="v2"),
}


def peer_metadata(workload, pod_ip):
    m = WORKLOADS[workload]
    fields = {
        "NAME": m["pod"], "NAMESPACE": "default", "WORKLOAD_NAME": workload,
        "LABELS": {"app": m["app"], "version": m["version"]},
        "CLUSTER_ID": "Kubernetes", "ISTIO_VERSION": "1.22.1", "MESH_ID": "cluster.local",
    }
    return (base64.b64encode(pb_struct(fields)).decode(),
            f"sidecar~{pod_ip}~{m['pod']}.default~default.svc.cluster.local")


def original_dst(conn):
    """(ip, port) the client dialled before iptables REDIRECT rewrote it (struct sockaddr_in)."""
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, = struct.unpack_from("!H", raw, 2)
    return socket.inet_ntoa(raw[4:8]), port


def require_proxy_user():
    if os.geteuid() != PROXY_UID or os.getegid() != PROXY_UID:
        sys.exit(f"sidecar.py: run the proxy as uid/gid {PROXY_UID} (setpriv --reuid {PROXY_UID} "
                 f"--regid {PROXY_UID} --clear-groups ...): Istio's ISTIO_OUTPUT rules only exempt "
                 f"that owner from the redirect")


def listener(port, bind="0.0.0.0"):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((bind, port))
    ls.listen(16)
    return ls


def subject_rfc2253(der):
    from cryptography import x509
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- the app -------------------------------------------------------------------------------------


def app(a):
    ls = listener(a.port, a.bind)
    for _ in range(a.count):
        conn, peer = ls.accept()
        log(f"app: {peer[0]}:{peer[1]} -> {conn.getsockname()[0]}:{conn.getsockname()[1]}")
        f = conn.makefile("rb")
        while True:
            m = read_message(f)
            if m is None:
                break
            path = m[0].split(" ", 2)[1]
            body = app_body(path)
            conn.sendall(render("HTTP/1.1 200 OK", [
                ("x-powered-by", "Servlet/4.0"), ("content-type", "application/json"),
                ("date", formatdate(usegmt=True)), ("content-language", "en-US"),
                ("content-length", str(len(body)))], body))
        f.close()
        conn.close()


# --- inbound (virtualInbound, 15006) ---------------------------------------------------------------


def inbound(a):
    require_proxy_user()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if a.tls:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    me = own_uri(a.cert)
    blob, node = peer_metadata(a.meta, a.pod_ip)
    sports = [int(p) for p in a.app_sports.split(",")] if a.app_sports else []
    ls = listener(a.port)
    for i in range(a.count):
        conn, peer = ls.accept()
        dst = original_dst(conn)
        log(f"inbound: {peer[0]}:{peer[1]} -> {conn.getsockname()[0]}:{conn.getsockname()[1]}, "
            f"original destination {dst[0]}:{dst[1]}")
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        if conn.recv(1, socket.MSG_PEEK) != b"\x16":
            if a.mode == "strict":
                got = conn.recv(65536)
                log(f"inbound: {len(got)} bytes that are not TLS ({got[:16]!r}): reset")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            down, xfcc, proto = conn, None, "http"
        else:
            try:
                down = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log("inbound: handshake:", e)
                conn.close()
                continue
            der = down.getpeercert(binary_form=True)
            xfcc = (f'By={me};Hash={hashlib.sha256(der).hexdigest()};'
                    f'Subject="{subject_rfc2253(der)}";URI={peer_uri(down)}' if der else None)
            proto = "https"
            log(f"inbound: {down.version()} {down.cipher()[0]} alpn={down.selected_alpn_protocol()} "
                f"client={peer_uri(down)}")
        up = uf = None
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
                up.connect(dst)                      # pod IP : original port, over lo
                up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                uf = up.makefile("rb")
                log(f"inbound: upstream {up.getsockname()[0]}:{up.getsockname()[1]} -> {dst[0]}:{dst[1]}")
            fwd = inbound_headers(h, proto, xfcc, (peer[1], n))
            up.sendall(render(start, fwd, body))
            rstart, rh, rbody = read_message(uf)
            rh = without(rh, "server") + [("x-envoy-upstream-service-time", "3")]
            if get(h, "x-envoy-peer-metadata-id"):
                rh += [("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node)]
            rh.append(("server", "istio-envoy"))
            down.sendall(render(rstart, rh, rbody))
            log(f"inbound: {start} -> {rstart}")
            n += 1
        f.close()
        if up is not None:
            uf.close()
            up.close()
        if down is not conn:
            try:
                down = down.unwrap()     # answer the client's close_notify, close after its FIN
                down.settimeout(2)
                down.recv(1)
            except (ssl.SSLError, OSError):
                pass
        down.close()


# --- outbound (virtualOutbound, 15001) -------------------------------------------------------------


def parse_routes(specs):
    """VIP:PORT=SERVICE@IP:PORT -> {(vip, port): (service, (ip, port))}"""
    routes = {}
    for s in specs:
        vip, rest = s.split("=", 1)
        svc, ep = rest.split("@", 1)
        vh, vp = vip.rsplit(":", 1)
        eh, ep_ = ep.rsplit(":", 1)
        routes[(vh, int(vp))] = (svc, (eh, int(ep_)))
    return routes


def outbound(a):
    require_proxy_user()
    routes = parse_routes(a.route)
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False        # Envoy checks the SPIFFE URI SAN, not a host name
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
        if a.alpn:
            ctx.set_alpn_protocols(a.alpn.split(","))
        ctx.load_cert_chain(a.cert, a.key)
    blob, node = peer_metadata(a.meta, a.pod_ip)
    sports = [int(p) for p in a.sports.split(",")] if a.sports else []
    ls = listener(a.port)
    for i in range(a.count):
        down, peer = ls.accept()
        dst = original_dst(down)
        log(f"outbound: {peer[0]}:{peer[1]} -> {down.getsockname()[0]}:{down.getsockname()[1]}, "
            f"original destination {dst[0]}:{dst[1]}")
        if dst not in routes:
            log(f"outbound: no route for {dst[0]}:{dst[1]}: closing")
            down.close()
            continue
        svc, endpoint = routes[dst]
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        df = down.makefile("rb")
        up = uf = None
        n = 0
        while True:
            m = read_message(df)
            if m is None:
                break
            start, h, body = m
            if up is None:                          # Envoy connects once a request is routed
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("", sports[i] if i < len(sports) else 0))
                s.connect(endpoint)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                local = s.getsockname()
                up = s
                if ctx:
                    sni = f"outbound_.{dst[1]}_._.{svc}.default.svc.cluster.local"
                    up = ctx.wrap_socket(s, server_hostname=sni)
                    log(f"outbound: {up.version()} {up.cipher()[0]} sni={sni} "
                        f"alpn={up.selected_alpn_protocol()} server={peer_uri(up)}")
                log(f"outbound: upstream {local[0]}:{local[1]} -> "
                    f"{endpoint[0]}:{endpoint[1]} ({'mTLS' if ctx else 'plaintext, DISABLE'})")
                uf = up.makefile("rb")
            port = a.sports.split(",")[i] if a.sports else peer[1]
            trace, span = trace_ids("out", port, n)
            fwd = without(h, "x-forwarded-proto", "x-request-id", "x-envoy-peer-metadata",
                          "x-envoy-peer-metadata-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
            fwd += [("x-forwarded-proto", "http"), ("x-request-id", request_id("out", port, n)),
                    ("x-envoy-decorator-operation", f"{svc}.default.svc.cluster.local:{dst[1]}/*"),
                    ("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node),
                    ("x-envoy-attempt-count", "1"),
                    ("x-b3-traceid", trace), ("x-b3-spanid", span), ("x-b3-sampled", "1")]
            up.sendall(render(start, fwd, body))
            rstart, rh, rbody = read_message(uf)
            rh = without(rh, "server", "x-envoy-peer-metadata", "x-envoy-peer-metadata-id",
                         "x-envoy-upstream-service-time")
            rh += [("x-envoy-upstream-service-time", "5"), ("server", "envoy")]
            down.sendall(render(rstart, rh, rbody))
            log(f"outbound: {start} -> {rstart}")
            n += 1
        df.close()
        down.close()                         # the app closed first; close our side of it
        if up is not None:
            uf.close()
            if ctx:
                try:
                    up = up.unwrap()             # close_notify out, wait for the server's
                except (ssl.SSLError, OSError):
                    pass
            up.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["app", "inbound", "outbound"])
    p.add_argument("args", nargs="*")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int)
    p.add_argument("--pod-ip")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--mode", choices=["strict", "permissive"], default="strict")
    p.add_argument("--tls", choices=list(VERSIONS))
    p.add_argument("--alpn")
    p.add_argument("--app-src", default="127.0.0.6")
    p.add_argument("--app-sports", default="")
    p.add_argument("--sports", default="")
    p.add_argument("--route", action="append", default=[])
    p.add_argument("--meta")
    a = p.parse_args()
    if a.role == "app":
        a.port = int(a.args[0])
        app(a)
    elif a.role == "inbound":
        a.port = a.port or 15006
        a.meta = a.meta or "reviews-v2"
        inbound(a)
    else:
        a.port = a.port or 15001
        a.meta = a.meta or "productpage-v1"
        outbound(a)


if __name__ == "__main__":
    main()

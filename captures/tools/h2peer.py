#!/usr/bin/python3
"""HTTP/2 peers on Debian's python3-h2 4.1 / python3-hpack 4.0 for captures/make-h2.sh. Run with
Debian's /usr/bin/python3 (a pyenv python on PATH has no h2 module; the proxies run as uid 1337,
which cannot use an interpreter under /root).

    h2peer.py client HOST PORT [--requests N] [--pause S]
        One h2c connection (prior knowledge), N GETs one after the other, S seconds apart (the
        mid-connection capture starts after the third). Request i (1-based):
          :method GET, :scheme http, :authority reviews:8080, :path /health, /style.css, /app.js,
          /index.html, /missing-i (404) in turn; user-agent python-h2/4.1.0;
          x-tenant tenant-0123456789 (the same on every request: indexed once, then referenced);
          x-request-id h2c-mid-i; x-trace-context: 600 characters that differ per request
          (each one inserted in the 4,096-byte dynamic table, so that the entries made before
          the capture are evicted after a few requests); x-api-key k3y-<i> marked never indexed.
    h2peer.py outbound|inbound ...   (run as uid/gid 1337)
        Envoy stand-ins for the gRPC mesh capture, under Istio's real nat rules (see
        tools/sidecar.py, whose helpers they use). Both relay HTTP/2 streams (headers, DATA,
        trailers, resets) between a downstream and an upstream connection, one stream for one.
        outbound --pod-ip IP --route VIP:PORT=SERVICE@IP:PORT --sport P --cert C --key K --ca CA
                 [--alpn a,b] [--meta productpage-v1]
          virtualOutbound on :15001: the app's h2c connection (REDIRECTed, SO_ORIGINAL_DST gives
          the ClusterIP) -> Istio mTLS (TLS 1.3, client certificate, SNI
          outbound_.PORT_._.SERVICE.default.svc.cluster.local, ALPN as given) from source port P
          to the endpoint; adds x-forwarded-proto, x-request-id (the app's, else derived),
          x-envoy-decorator-operation, x-envoy-peer-metadata(-id), x-envoy-attempt-count, x-b3-*.
        inbound --pod-ip IP --cert C --key K --ca CA [--alpn a,b] [--app-sport P] [--meta reviews-v2]
          virtualInbound on :15006: TLS 1.3 requiring a client certificate, then h2c to the app
          from 127.0.0.6:P to the original destination (pod IP:port) over lo, with
          x-forwarded-proto https, x-request-id, x-b3-*, the client sidecar's
          x-envoy-peer-metadata(-id) and x-forwarded-client-cert (By=own SPIFFE URI;Hash=SHA-256
          of the client certificate;Subject="...";URI=its SPIFFE URI); answers get x-envoy-upstream-service-time,
          this proxy's x-envoy-peer-metadata(-id) and server: istio-envoy.
        Each proxy handles one downstream connection, then exits.
"""
import argparse
import hashlib
import os
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
from hpack import HeaderTuple, NeverIndexedHeaderTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh import get, inbound_headers, own_uri, peer_uri, request_id, trace_ids, without  # noqa: E402
from sidecar import (listener, original_dst, peer_metadata, require_proxy_user,  # noqa: E402
                     subject_rfc2253)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- the mid-connection client ---------------------------------------------------------------------

PATHS = ["/health", "/style.css", "/app.js", "/index.html"]


def client(a):
    host, port = a.args[0], int(a.args[1])
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    for i in range(1, a.requests + 1):
        path = PATHS[(i - 1) % len(PATHS)] if i % 5 else f"/missing-{i}"
        sid = c.get_next_available_stream_id()
        trace = (hashlib.sha256(f"trace-{i}".encode()).hexdigest() * 10)[:600]
        c.send_headers(sid, [
            HeaderTuple(":method", "GET"), HeaderTuple(":scheme", "http"),
            HeaderTuple(":authority", "reviews:8080"), HeaderTuple(":path", path),
            HeaderTuple("user-agent", "python-h2/4.1.0"),
            HeaderTuple("x-tenant", "tenant-0123456789"),
            HeaderTuple("x-request-id", f"h2c-mid-{i}"),
            HeaderTuple("x-trace-context", trace),
            NeverIndexedHeaderTuple("x-api-key", f"k3y-{i:04d}"),
        ], end_stream=True)
        s.sendall(c.data_to_send())
        status, body, done = None, 0, False
        while not done:
            data = s.recv(65536)
            if not data:
                sys.exit("client: connection closed")
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = get(ev.headers, ":status")
                elif isinstance(ev, h2.events.DataReceived):
                    body += len(ev.data)
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
            s.sendall(c.data_to_send())
        print(f"client: stream {sid} GET {path} -> {status} ({body} bytes)", flush=True)
        if i < a.requests:
            time.sleep(a.pause)
    c.close_connection()
    s.sendall(c.data_to_send())
    s.close()


# --- the relay shared by both proxies ----------------------------------------------------------------


class Side:
    def __init__(self, sock, client_side):
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=client_side, header_encoding="utf-8", validate_inbound_headers=False))

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def read(self):
        try:
            data = self.sock.recv(65536)
            if isinstance(self.sock, ssl.SSLSocket):
                while self.sock.pending():
                    data += self.sock.recv(65536)
        except (ssl.SSLError, OSError):
            data = b""
        return data


def relay(down, connect_up, request_headers, response_headers):
    """Relays the streams of `down` (server side of an HTTP/2 connection) to a connection made by
    connect_up() at the first request; headers rewritten by the two functions."""
    down.h2.initiate_connection()
    down.flush()
    up = None
    d2u, u2d = {}, {}
    ended = set()                 # downstream streams already ended towards the client
    req_seen = {}
    n = 0
    while True:
        socks = [down.sock] + ([up.sock] if up else [])
        r, _, _ = select.select(socks, [], [], 10)
        if not r:
            log("relay: idle for 10 s: closing")
            break
        closed = False
        if down.sock in r:
            data = down.read()
            if not data:
                closed = True
            else:
                for ev in down.h2.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        if up is None:
                            up = Side(connect_up(), client_side=True)
                            up.h2.initiate_connection()
                        usid = up.h2.get_next_available_stream_id()
                        d2u[ev.stream_id], u2d[usid] = usid, ev.stream_id
                        req_seen[ev.stream_id] = ev.headers
                        up.h2.send_headers(usid, request_headers(ev.headers, n),
                                           end_stream=ev.stream_ended is not None)
                        log(f"relay: stream {ev.stream_id} -> upstream {usid}: "
                            f"{get(ev.headers, ':method')} {get(ev.headers, ':path')}")
                        n += 1
                    elif isinstance(ev, h2.events.DataReceived) and ev.stream_id in d2u:
                        up.h2.send_data(d2u[ev.stream_id], ev.data,
                                        end_stream=ev.stream_ended is not None)
                        down.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in d2u:
                        pass          # carried by the end_stream flags above
                    elif isinstance(ev, h2.events.StreamReset) and ev.stream_id in d2u:
                        up.h2.reset_stream(d2u[ev.stream_id], ev.error_code)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        closed = True
        if up and up.sock in r:
            data = up.read()
            if not data:
                closed = True
            else:
                for ev in up.h2.receive_data(data):
                    sid = u2d.get(getattr(ev, "stream_id", None))
                    if isinstance(ev, h2.events.ResponseReceived) and sid:
                        end = ev.stream_ended is not None
                        down.h2.send_headers(sid, response_headers(ev.headers, req_seen[sid]), end_stream=end)
                        if end:
                            ended.add(sid)
                    elif isinstance(ev, h2.events.DataReceived) and sid:
                        end = ev.stream_ended is not None
                        down.h2.send_data(sid, ev.data, end_stream=end)
                        up.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if end:
                            ended.add(sid)
                    elif isinstance(ev, h2.events.TrailersReceived) and sid:
                        down.h2.send_headers(sid, ev.headers, end_stream=True)
                        ended.add(sid)
                    elif isinstance(ev, h2.events.StreamReset) and sid:
                        down.h2.reset_stream(sid, ev.error_code)
        down.flush()
        if up:
            up.flush()
        if closed:
            break
    if up:
        up.h2.close_connection()
        up.flush()
        up.sock.close()
    return up


def tls_client_ctx(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False            # Envoy checks the SPIFFE URI SAN, not a host name
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(a.alpn.split(","))
    ctx.load_cert_chain(a.cert, a.key)
    return ctx


def tls_server_ctx(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(a.alpn.split(","))
    return ctx


def outbound(a):
    require_proxy_user()
    vip, rest = a.route.split("=", 1)
    svc, ep = rest.split("@", 1)
    vh, vp = vip.rsplit(":", 1)
    eh, ep_ = ep.rsplit(":", 1)
    endpoint = (eh, int(ep_))
    ctx = tls_client_ctx(a)
    blob, node = peer_metadata(a.meta, a.pod_ip)
    ls = listener(15001)
    conn, peer = ls.accept()
    dst = original_dst(conn)
    log(f"outbound: {peer[0]}:{peer[1]} -> :15001, original destination {dst[0]}:{dst[1]}")
    if dst != (vh, int(vp)):
        sys.exit(f"outbound: no route for {dst[0]}:{dst[1]}")
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connect_up():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", a.sport))
        s.connect(endpoint)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = s.getsockname()
        sni = f"outbound_.{dst[1]}_._.{svc}.default.svc.cluster.local"
        t = ctx.wrap_socket(s, server_hostname=sni)
        log(f"outbound: {t.version()} {t.cipher()[0]} sni={sni} alpn={t.selected_alpn_protocol()} "
            f"server={peer_uri(t)}; upstream {local[0]}:{local[1]} -> {endpoint[0]}:{endpoint[1]}")
        return t

    def req(h, n):
        trace, span = trace_ids("out", a.sport, n)
        rid = get(h, "x-request-id") or request_id("out", a.sport, n)
        fwd = without(h, "x-forwarded-proto", "x-request-id", "x-envoy-peer-metadata",
                      "x-envoy-peer-metadata-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
        return fwd + [("x-forwarded-proto", "http"), ("x-request-id", rid),
                      ("x-envoy-decorator-operation", f"{svc}.default.svc.cluster.local:{dst[1]}/*"),
                      ("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node),
                      ("x-envoy-attempt-count", "1"),
                      ("x-b3-traceid", trace), ("x-b3-spanid", span), ("x-b3-sampled", "1")]

    def resp(h, _req):
        h = without(h, "server", "x-envoy-peer-metadata", "x-envoy-peer-metadata-id",
                    "x-envoy-upstream-service-time")
        return h + [("x-envoy-upstream-service-time", "4"), ("server", "envoy")]

    up = relay(Side(conn, client_side=False), connect_up, req, resp)
    conn.close()
    if up is not None:
        log("outbound: done")


def inbound(a):
    require_proxy_user()
    ctx = tls_server_ctx(a)
    me = own_uri(a.cert)
    blob, node = peer_metadata(a.meta, a.pod_ip)
    ls = listener(15006)
    conn, peer = ls.accept()
    dst = original_dst(conn)
    log(f"inbound: {peer[0]}:{peer[1]} -> :15006, original destination {dst[0]}:{dst[1]}")
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    down = ctx.wrap_socket(conn, server_side=True)
    der = down.getpeercert(binary_form=True)
    xfcc = (f'By={me};Hash={hashlib.sha256(der).hexdigest()};'
            f'Subject="{subject_rfc2253(der)}";URI={peer_uri(down)}')
    log(f"inbound: {down.version()} {down.cipher()[0]} alpn={down.selected_alpn_protocol()} "
        f"client={peer_uri(down)}")

    def connect_up():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.6", a.app_sport))
        s.connect(dst)                               # pod IP : original port, over lo
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log(f"inbound: upstream {s.getsockname()[0]}:{s.getsockname()[1]} -> {dst[0]}:{dst[1]}")
        return s

    def req(h, n):
        # Unlike tools/sidecar.py (and Istio's metadata exchange filter, which consumes them),
        # the client sidecar's x-envoy-peer-metadata(-id) are passed on to the app, before the
        # XFCC, so that the h2c inbound leg carries every mesh signal the decoder must read.
        fwd = inbound_headers(h, "https", xfcc, (peer[1], n))
        md = [(k, v) for k, v in h if k in ("x-envoy-peer-metadata", "x-envoy-peer-metadata-id")]
        return fwd[:-1] + md + fwd[-1:]

    def resp(h, r):
        h = without(h, "server") + [("x-envoy-upstream-service-time", "2")]
        if get(r, "x-envoy-peer-metadata-id"):
            h += [("x-envoy-peer-metadata", blob), ("x-envoy-peer-metadata-id", node)]
        return h + [("server", "istio-envoy")]

    relay(Side(down, client_side=False), connect_up, req, resp)
    try:
        down = down.unwrap()
    except (ssl.SSLError, OSError):
        pass
    down.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["client", "outbound", "inbound"])
    p.add_argument("args", nargs="*")
    p.add_argument("--requests", type=int, default=7)
    p.add_argument("--pause", type=float, default=0.6)
    p.add_argument("--pod-ip")
    p.add_argument("--route")
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--app-sport", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--alpn")
    p.add_argument("--meta")
    a = p.parse_args()
    if a.role == "client":
        client(a)
    elif a.role == "outbound":
        a.meta = a.meta or "productpage-v1"
        a.alpn = a.alpn or "istio-peer-exchange,istio-h2,istio"
        outbound(a)
    else:
        a.meta = a.meta or "reviews-v2"
        a.alpn = a.alpn or "istio-peer-exchange,h2,http/1.1"
        inbound(a)


if __name__ == "__main__":
    main()

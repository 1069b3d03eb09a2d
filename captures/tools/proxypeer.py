#!/usr/bin/env python3
"""A PROXY protocol v2 sender laid out as Istio's ztunnel writes towards a waypoint.

ztunnel (src/proxy.rs, write_proxy_protocol) builds the header with the ppp crate:
version 2 | command PROXY, transport STREAM, the original source and destination addresses, then
TLV 0xD0 (PROXY_PROTOCOL_AUTHORITY_TLV: the source workload's SPIFFE identity) and, in newer
versions, TLV 0xD1 (the service hostname). This script writes the same bytes (addresses and
names are test values), split over two TCP segments on purpose (TCP_NODELAY, 0.2 s apart), so a
reader must reassemble the header; then one HTTP/1.1 request, and reads the answer.

HAProxy's `accept-proxy` refuses a header that does not arrive whole in its first read (its
conn_recv_proxy peeks once and fails on a partial header), so the receiver here is Python's
http.server behind a listener that reads the header (reassembled by the kernel, read with exact
lengths) and strips it before the request handler reads the socket: `serve`.

Usage: proxypeer.py send HOST PORT --sport SPORT
       proxypeer.py serve HOST PORT DIR      (one connection, then exit)
"""
import argparse
import functools
import http.server
import socket
import struct
import time

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
IDENTITY = b"spiffe://cluster.local/ns/default/sa/sleep"
SVC_HOSTNAME = b"reviews.default.svc.cluster.local"
SOURCE = ("10.244.1.5", 43210)
DESTINATION = ("10.244.2.7", 9080)


def header():
    addrs = (socket.inet_aton(SOURCE[0]) + socket.inet_aton(DESTINATION[0])
             + struct.pack("!HH", SOURCE[1], DESTINATION[1]))
    tlvs = b""
    for kind, value in ((0xD0, IDENTITY), (0xD1, SVC_HOSTNAME)):
        tlvs += struct.pack("!BH", kind, len(value)) + value
    body = addrs + tlvs
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def recv_exactly(conn, n):
    b = b""
    while len(b) < n:
        part = conn.recv(n - len(b))
        if not part:
            raise ConnectionError("closed inside the PROXY header")
        b += part
    return b


class ProxyHTTPServer(http.server.HTTPServer):
    """http.server whose connections open with a PROXY v2 header, read and printed first."""

    def get_request(self):
        conn, addr = self.socket.accept()
        fixed = recv_exactly(conn, 16)
        assert fixed[:12] == SIGNATURE, fixed
        rest = recv_exactly(conn, struct.unpack("!H", fixed[14:16])[0])
        print(f"    proxypeer serve: PROXY v2 header of {16 + len(rest)} bytes from {addr[0]}:{addr[1]}",
              flush=True)
        return conn, addr


def send(a):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind(("0.0.0.0", a.sport))
    s.connect((a.host, a.port))
    h = header()
    s.sendall(h[:20])
    time.sleep(0.2)
    s.sendall(h[20:])
    time.sleep(0.2)
    s.sendall(b"GET /behind-ztunnel-emulator HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\n"
              b"Connection: close\r\n\r\n")
    answer = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        answer += b
    s.close()
    print("    proxypeer send:", answer.split(b"\r\n", 1)[0].decode(), flush=True)


def serve(a):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=a.dir)
    with ProxyHTTPServer((a.host, a.port), handler) as srv:
        srv.handle_request()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sport", type=int, required=True)
    p = sub.add_parser("serve")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("dir")
    a = ap.parse_args()
    send(a) if a.cmd == "send" else serve(a)


if __name__ == "__main__":
    main()

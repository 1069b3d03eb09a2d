#!/usr/bin/env python3
"""Real TLS/HTTP/SMTP peers for captures/make.sh (Python's ssl = OpenSSL, http.server/client).

    peer.py tls-server PORT CERT KEY [--ca CA] [--require-cert] [--alpn a,b] [--tls 1.2|1.3] [--count N]
                                     [--reply-bytes N]
    peer.py tls-client HOST PORT [--sni S] [--alpn a,b] [--cert C --key K] [--tls 1.2|1.3] [--count N]
                                 [--close-notify] [--hello-split sni] [--read-all]
    peer.py http-server PORT            (HTTP/1.1 keep-alive)
    peer.py http-client HOST PORT       (the sidecar-header session described in captures/README.md)
    peer.py smtp-server PORT CERT KEY   (banner, EHLO, STARTTLS, then TLS)
    peer.py smtp-client HOST PORT [--starttls]
    peer.py connect-proxy PORT          (HTTP CONNECT proxy, one tunnel)
    peer.py connect-client PROXYHOST PROXYPORT TARGET:PORT --sni S
    peer.py h2c-server PORT             (HTTP/1.1 Upgrade: h2c -> 101, then a minimal HTTP/2 reply)
Every server serves --count connections (default 1) and exits; every client exits when done.
Clients take --sport N (fixed source port, so a regeneration keeps the ports in README.md).
--close-notify (both TLS peers): end with close_notify alerts both ways (SSL_shutdown) before FIN.
--reply-bytes N (tls-server): N more bytes (`x`) after the pong, a bulk transfer; --read-all
(tls-client): read until the server closes.
--hello-split sni (tls-client): the ClientHello OpenSSL made is written in two send() calls
(TCP_NODELAY), split in the middle of the SNI host name, so it crosses two TCP segments.
"""
import argparse
import http.client
import http.server
import select
import socket
import ssl
import struct
import sys
import time

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def listener(port):
    fam = socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(16)
    return s


def connect(a, host=None, port=None):
    """TCP connection from the fixed source port --sport (0: any)."""
    s = socket.create_connection((host or a.host, port or a.port),
                                 source_address=("", a.sport) if a.sport else None)
    return s


def server_ctx(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.tls:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.ca:
        ctx.load_verify_locations(a.ca)
    if a.require_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ctx(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.tls:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.tls]
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    return ctx


def tls_server(a):
    ctx = server_ctx(a)
    ls = listener(a.port)
    for _ in range(a.count):
        conn, _ = ls.accept()
        try:
            t = ctx.wrap_socket(conn, server_side=True)
            data = t.recv(4096)
            t.sendall(b"pong:" + data + b"x" * a.reply_bytes)
            if a.close_notify:
                t = t.unwrap()          # close_notify out, and wait for the client's
            t.close()
        except (ssl.SSLError, OSError) as e:
            print("tls-server:", e, file=sys.stderr)
            conn.close()


def tls_client(a):
    ctx = client_ctx(a)
    for i in range(a.count):
        s = connect(a)
        if a.hello_split:
            tls_client_split_hello(a, ctx, s, i)
            continue
        t = ctx.wrap_socket(s, server_hostname=a.sni)
        t.sendall(b"ping %d\n" % i)
        t.recv(4096)
        while a.read_all and t.recv(65536):
            pass
        if a.close_notify:
            t = t.unwrap()
        t.close()


def tls_client_split_hello(a, ctx, s, i):
    """Same session as tls_client, driven through memory BIOs so that the ClientHello can be
    written in two pieces (split in the middle of the SNI host name)."""
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=a.sni)
    first = True

    def pump(call):
        nonlocal first
        while True:
            try:
                r = call()
                done = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                done = False
            data = out.read()
            if data and first:
                cut = data.index(a.sni.encode()) + len(a.sni) // 2
                s.sendall(data[:cut])
                time.sleep(0.05)
                s.sendall(data[cut:])
                first = False
            elif data:
                s.sendall(data)
            if done:
                return r
            d = s.recv(65536)
            if not d:
                return None
            inc.write(d)

    pump(obj.do_handshake)
    obj.write(b"ping %d\n" % i)
    s.sendall(out.read())
    pump(lambda: obj.read(4096))
    if a.close_notify:
        pump(obj.unwrap)
    s.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "envoy"
    sys_version = ""

    def reply(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-envoy-upstream-service-time", "3")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(b'{"id":0,"reviews":[{"reviewer":"Reviewer1","text":"An extremely entertaining play."}]}')

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        self.reply(b'{"stored":%d}' % len(body))

    def log_message(self, *args):
        pass


def http_server(a):
    class V6(http.server.HTTPServer):
        address_family = socket.AF_INET6

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    srv = V6(("::", a.port), Handler)
    for _ in range(a.count):
        srv.handle_request()


SIDECAR = {
    "x-forwarded-proto": "http",
    "x-request-id": "7f3c2a9e-1b4d-4c8e-9a2f-5d6e7f8a9b0c",
    "x-envoy-decorator-operation": "reviews.default.svc.cluster.local:9080/*",
    "x-envoy-peer-metadata": "ChwKBE5BTUUSFBoScHJvZHVjdHBhZ2UtdjEtYWJjChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0CiEKDVdPUktMT0FEX05BTUUSEBoOcHJvZHVjdHBhZ2UtdjEKGgoKQ0xVU1RFUl9JRBIMGgpLdWJlcm5ldGVzChkKDUlTVElPX1ZFUlNJT04SCBoGMS4yMi4wCjMKBkxBQkVMUxIpKicKFAoDYXBwEg0aC3Byb2R1Y3RwYWdlCg8KB3ZlcnNpb24SBBoCdjE=",
    "x-envoy-peer-metadata-id": "sidecar~10.99.0.2~productpage-v1-abc.default~default.svc.cluster.local",
    "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-sampled": "1",
}
SECRET_TOKEN = "Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.SIG-7c1d"
SECRET_COOKIE = "session=s3ss10n-c00k1e-4242"


def http_client(a):
    c = http.client.HTTPConnection(a.host, a.port, source_address=("", a.sport) if a.sport else None)
    host = {"Host": "reviews:9080"}
    c.request("GET", "/reviews/0", headers={**host, **SIDECAR, "user-agent": "curl/7.88.1"})
    c.getresponse().read()
    c.request("GET", "/ratings/1",
              headers={**host, **SIDECAR, "Authorization": SECRET_TOKEN, "Cookie": SECRET_COOKIE})
    c.getresponse().read()
    c.request("POST", "/reviews/0/vote", body=b'{"stars":5}',
              headers={**host, **SIDECAR, "content-type": "application/json"})
    c.getresponse().read()
    c.close()


def smtp_server(a):
    ctx = server_ctx(a)
    ls = listener(a.port)
    for _ in range(a.count):
        conn, _ = ls.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 mail.example.test ESMTP ready\r\n")
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                conn.sendall(b"250-mail.example.test\r\n250-SIZE 1048576\r\n250 STARTTLS\r\n")
            elif cmd == b"STARTTLS":
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                t = ctx.wrap_socket(conn, server_side=True)
                t.recv(4096)
                t.sendall(b"221 bye\r\n")
                t.close()
                break
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()


def smtp_client(a):
    s = connect(a)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO client.example.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    if not a.starttls:
        s.sendall(b"MAIL FROM:<a@example.test>\r\n")
        f.readline()
        s.sendall(b"QUIT\r\n")
        f.readline()
        s.close()
        return
    s.sendall(b"STARTTLS\r\n")
    f.readline()
    ctx = client_ctx(a)
    t = ctx.wrap_socket(s, server_hostname=a.sni)
    t.sendall(b"QUIT\r\n")
    t.recv(4096)
    t.close()


def connect_proxy(a):
    ls = listener(a.port)
    conn, _ = ls.accept()
    f = conn.makefile("rb")
    req = f.readline().split()
    while f.readline() not in (b"\r\n", b"\n", b""):
        pass
    host, port = req[1].decode().rsplit(":", 1)
    up = socket.create_connection((host, int(port)))
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    socks = [conn, up]
    while True:
        r, _, _ = select.select(socks, [], [], 5)
        if not r:
            break
        done = False
        for s in r:
            d = s.recv(65536)
            if not d:
                done = True
                break
            (up if s is conn else conn).sendall(d)
        if done:
            break
    up.close()
    conn.close()


def connect_client(a):
    s = connect(a)
    s.sendall(f"CONNECT {a.target} HTTP/1.1\r\nHost: {a.target}\r\nUser-Agent: curl/7.88.1\r\n"
              f"Proxy-Authorization: Basic cHJveHl1c2VyOnByb3h5cGFzcw==\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(1)
    t = client_ctx(a).wrap_socket(s, server_hostname=a.sni)
    t.sendall(b"GET /secret HTTP/1.1\r\nHost: db.example.test\r\n\r\n")
    t.recv(4096)
    t.close()


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def h2c_server(a):
    """Answers curl --http2's `Upgrade: h2c` with 101, then HTTP/2 on stream 1 (RFC 7540 3.2)."""
    ls = listener(a.port)
    conn, _ = ls.accept()
    f = conn.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline()
        if not line:
            return
        head += line
    if b"upgrade: h2c" not in head.lower():
        conn.sendall(b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n")
        conn.close()
        return
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    conn.sendall(h2_frame(4, 0, 0))                      # server SETTINGS (empty)
    preface = f.read(24)
    assert preface == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", preface
    body = b"hello over h2c upgrade\n"
    # HPACK: :status 200 (static index 8), content-type text/plain, content-length (literal, not indexed)
    hdrs = (b"\x88" + b"\x0f\x10" + bytes([10]) + b"text/plain"
            + b"\x0f\x0d" + bytes([len(str(len(body)))]) + str(len(body)).encode())
    answered = False
    conn.settimeout(3)
    try:
        while True:
            h = f.read(9)
            if len(h) < 9:
                break
            n = int.from_bytes(h[:3], "big")
            ftype, flags = h[3], h[4]
            f.read(n)
            if ftype == 4 and not flags & 1:                 # client SETTINGS -> ACK
                conn.sendall(h2_frame(4, 1, 0))
                if not answered:                              # the upgraded request is stream 1
                    conn.sendall(h2_frame(1, 4, 1, hdrs) + h2_frame(0, 1, 1, body))
                    answered = True
            elif ftype == 7:                                  # GOAWAY
                break
    except (socket.timeout, OSError):
        pass
    conn.sendall(h2_frame(7, 0, 0, struct.pack(">II", 1, 0)))
    conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role")
    p.add_argument("args", nargs="*")
    p.add_argument("--ca")
    p.add_argument("--require-cert", action="store_true")
    p.add_argument("--alpn")
    p.add_argument("--tls")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--reply-bytes", type=int, default=0)
    p.add_argument("--read-all", action="store_true")
    p.add_argument("--sni")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--close-notify", action="store_true")
    p.add_argument("--hello-split", choices=["sni"])
    a = p.parse_args()
    r, x = a.role, a.args
    if r in ("tls-server", "smtp-server"):
        a.port, a.cert, a.key = int(x[0]), x[1], x[2]
    elif r in ("http-server", "connect-proxy", "h2c-server"):
        a.port = int(x[0])
    elif r == "connect-client":
        a.host, a.port, a.target = x[0], int(x[1]), x[2]
    else:
        a.host, a.port = x[0], int(x[1])
    {"tls-server": tls_server, "tls-client": tls_client, "http-server": http_server,
     "http-client": http_client, "smtp-server": smtp_server, "smtp-client": smtp_client,
     "connect-proxy": connect_proxy, "connect-client": connect_client, "h2c-server": h2c_server}[r](a)


if __name__ == "__main__":
    main()

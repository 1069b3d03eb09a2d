#!/usr/bin/env python3
"""Python ssl (OpenSSL) TLS 1.3 peer for captures/make-tls13-calib.sh.

    pypeer.py server PORT CERT KEY [--ca CA --auth none|require|optional] [--p256only] [--count N]
    pypeer.py client HOST PORT --sni NAME --ca CA [--cert C --key K] --conn SPORT:PATH [--conn ...]

Python's ssl module cannot choose TLS 1.3 cipher suites (set_ciphers is TLS <= 1.2 only): the
script runs both peers with OPENSSL_CONF pointing at a file whose system_default section sets
Ciphersuites, which OpenSSL applies to every SSL_CTX the process makes.
--p256only: set_ecdh_curve("prime256v1") (SSL_CTX_set1_groups with OpenSSL 3), so a client whose
key share is X25519 gets a HelloRetryRequest.
The client makes one connection per --conn, in order, from that source port; a later --conn
resumes the session (ticket) of the previous one (wrap_socket(session=...)).
Each connection: handshake, GET /PATH, read to the server's close_notify, unwrap (close_notify),
close. The server answers one HTTP/1.1 200 per connection and unwraps (close_notify both ways).
Key log: ctx.keylog_filename = $SSLKEYLOGFILE (NSS format, appended).
"""
import argparse
import os
import socket
import ssl
import sys


def keylog(ctx):
    if os.environ.get("SSLKEYLOGFILE"):
        ctx.keylog_filename = os.environ["SSLKEYLOGFILE"]


def server(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(a.cert, a.key)
    if a.auth != "none":
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if a.auth == "require" else ssl.CERT_OPTIONAL
    if a.p256only:
        ctx.set_ecdh_curve("prime256v1")
    keylog(ctx)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", a.port))
    ls.listen(4)
    for _ in range(a.count):
        raw, peer = ls.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_side=True)
        req = b""
        while b"\r\n\r\n" not in req:
            d = s.recv(4096)
            if not d:
                sys.exit("client closed before its request")
            req += d
        path = req.split(b" ")[1].decode()
        body = f"calib ok {path}\n".encode()
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%s" % (len(body), body))
        cert = s.getpeercert(binary_form=True)
        print(f"python server: {peer} {path} {s.cipher()[0]} resumed={s.session_reused} "
              f"client cert={'yes' if cert else 'no'}", file=sys.stderr)
        s.unwrap().close()   # close_notify, then wait for the client's


def client(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    keylog(ctx)
    session = None
    for conn in a.conn:
        sport, path = conn.split(":", 1)
        raw = socket.create_connection((a.host, a.port), source_address=("0.0.0.0", int(sport)))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname=a.sni, session=session)
        s.sendall(f"GET /{path} HTTP/1.1\r\nHost: calib\r\n\r\n".encode())
        resp = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            resp += d
        status = resp.split(b"\r\n")[0].decode() if resp else "(no reply)"
        print(f"python client: /{path} {s.cipher()[0]} resumed={s.session_reused} -> {status}",
              file=sys.stderr)
        session = s.session
        s.unwrap().close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("args", nargs="+")
    p.add_argument("--ca")
    p.add_argument("--auth", default="none", choices=["none", "require", "optional"])
    p.add_argument("--p256only", action="store_true")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--sni", default="calib.test")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--conn", action="append", default=[])
    a = p.parse_args()
    if a.role == "server":
        a.port, a.cert, a.key = int(a.args[0]), a.args[1], a.args[2]
        server(a)
    else:
        a.host, a.port = a.args[0], int(a.args[1])
        client(a)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Python peers for captures/make-keylog.sh: Debian's /usr/bin/python3 (ssl = OpenSSL 3.0,
python3-h2 4.1, python3-grpcio 1.51). Every TLS client writes an NSS key log to $SSLKEYLOGFILE
(ctx.keylog_filename); the servers write none (the client's log holds every secret).

    kpeer.py h1server PORT CERT KEY [--ca CA --auth none|optional|require] [--tls 1.2|1.3]
                      [--alpn a,b] [--count N]
        N connections, one after the other; on each, HTTP/1.1 keep-alive: every request
        (headers, then Content-Length bytes of body) gets `200 OK` with the body
        `keylog ok PATH\\n`, until the client closes; then close_notify (unwrap).
    kpeer.py h1client HOST PORT --sni NAME --ca CA [--cert C --key K] [--tls 1.2|1.3]
                      [--cipher OPENSSL-LIST] [--alpn a,b] [--authz TOKEN] --conn SPORT:P1,P2,...
        One connection per --conn (from source port SPORT), in order, each resuming nothing; on it
        GET P1, P2, ... one after the other (keep-alive, `Connection: close` on the last one);
        with --authz the second request (or the only one) carries `authorization: TOKEN`.
    kpeer.py h2server PORT CERT KEY [--ca CA --auth ...] [--tls ...] [--alpn a,b]
        One connection: HTTP/2 over TLS, every stream answered `:status 200` with a short body.
    kpeer.py h2client HOST PORT --sni NAME --ca CA [--cert C --key K] [--tls ...] --alpn a,b
                      --sport P --paths /a,/b [--authz TOKEN]
        One HTTP/2 connection over TLS (the ALPN protocol the server chose must be h2 or
        istio-h2), GET each path on its own stream, one after the other, then GOAWAY and
        close_notify. --authz: `authorization` (never indexed) on the first stream.
    kpeer.py grpcserver BIND PORT CERT KEY
        reviews.Reviews of tools/grpcpeer.py over TLS (grpc.ssl_server_credentials) until killed.
"""
import argparse
import os
import socket
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def context(a, server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    if a.tls:
        v = ssl.TLSVersion.TLSv1_3 if a.tls == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = v
    if a.cipher:
        ctx.set_ciphers(a.cipher)
    if server:
        ctx.load_cert_chain(a.cert, a.key)
        if a.auth != "none":
            ctx.load_verify_locations(a.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if a.auth == "require" else ssl.CERT_OPTIONAL
    else:
        ctx.check_hostname = False   # a mesh SNI (outbound_...) is not a name in the certificate
        ctx.load_verify_locations(a.ca)
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if os.environ.get("SSLKEYLOGFILE") and not server:
        ctx.keylog_filename = os.environ["SSLKEYLOGFILE"]
    return ctx


def listen(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(4)
    return ls


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_request(s, buf):
    """One HTTP/1.1 request from s (buffer `buf` carried over); returns (path, rest) or (None, b"")."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None, b""
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        rest += s.recv(65536)
    return head.split(b" ")[1].decode(), rest[n:]


def h1server(a):
    ctx = context(a, True)
    ls = listen(a.port)
    for _ in range(a.count):
        raw, peer = ls.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_side=True)
        buf = b""
        while True:
            path, buf = read_request(s, buf)
            if path is None:
                break
            body = f"keylog ok {path}\n".encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            log(f"h1server: {peer[1]} {path} {s.version()} {s.cipher()[0]} alpn={s.selected_alpn_protocol()} "
                f"client cert={'yes' if s.getpeercert(binary_form=True) else 'no'}")
        try:
            s.unwrap().close()
        except (ssl.SSLError, OSError):
            s.close()


def h1client(a):
    ctx = context(a, False)
    for conn in a.conn:
        sport, paths = conn.split(":", 1)
        paths = paths.split(",")
        raw = socket.create_connection((a.host, a.port), source_address=("0.0.0.0", int(sport)))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname=a.sni)
        buf = b""
        for i, path in enumerate(paths):
            last = i == len(paths) - 1
            hdr = f"GET {path} HTTP/1.1\r\nHost: {a.sni}\r\nUser-Agent: kpeer/1\r\n"
            if a.authz and i == min(1, len(paths) - 1):
                hdr += f"Authorization: {a.authz}\r\n"
            if last:
                hdr += "Connection: close\r\n"
            s.sendall((hdr + "\r\n").encode())
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, buf = buf.split(b"\r\n\r\n", 1)
            n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
            while len(buf) < n:
                buf += s.recv(65536)
            buf = buf[n:]
            log(f"h1client: {sport} {path} -> {head.split(b' ')[1].decode()} {s.version()} {s.cipher()[0]} "
                f"alpn={s.selected_alpn_protocol()}")
        s.unwrap().close()


def h2server(a):
    import h2.config
    import h2.connection
    import h2.events
    ctx = context(a, True)
    ls = listen(a.port)
    raw, peer = ls.accept()
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_side=True)
    alpn = s.selected_alpn_protocol()
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    done = False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers)[":path"]
                body = f"keylog ok {path} over {alpn}\n".encode()
                c.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "text/plain"),
                                              ("content-length", str(len(body))), ("server", "kpeer-h2")])
                c.send_data(ev.stream_id, body, end_stream=True)
                log(f"h2server: {peer[1]} stream {ev.stream_id} {path} {s.version()} alpn={alpn}")
            elif isinstance(ev, (h2.events.ConnectionTerminated,)):
                done = True
        out = c.data_to_send()
        if out:
            s.sendall(out)
    try:
        s.unwrap().close()
    except (ssl.SSLError, OSError):
        s.close()


def h2client(a):
    import h2.config
    import h2.connection
    import h2.events
    from hpack import HeaderTuple, NeverIndexedHeaderTuple
    ctx = context(a, False)
    raw = socket.create_connection((a.host, a.port), source_address=("0.0.0.0", a.sport))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=a.sni)
    alpn = s.selected_alpn_protocol()
    if alpn not in ("h2", "istio-h2"):
        sys.exit(f"h2client: server chose ALPN {alpn!r}")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    for i, path in enumerate(a.paths.split(",")):
        sid = c.get_next_available_stream_id()
        hs = [HeaderTuple(":method", "GET"), HeaderTuple(":scheme", "https"),
              HeaderTuple(":authority", a.sni), HeaderTuple(":path", path),
              HeaderTuple("user-agent", "kpeer-h2/1")]
        if a.authz and i == 0:
            hs.append(NeverIndexedHeaderTuple("authorization", a.authz))
        c.send_headers(sid, hs, end_stream=True)
        s.sendall(c.data_to_send())
        status, done = None, False
        while not done:
            data = s.recv(65536)
            if not data:
                sys.exit("h2client: connection closed")
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = dict(ev.headers)[":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
            out = c.data_to_send()
            if out:
                s.sendall(out)
        log(f"h2client: {a.sport} stream {sid} GET {path} -> {status} {s.version()} alpn={alpn}")
    c.close_connection()
    s.sendall(c.data_to_send())
    s.unwrap().close()


def grpcserver(a):
    from concurrent import futures

    import grpc
    sys.path.insert(0, os.path.dirname(HERE))
    import grpcpeer
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(grpcpeer.SERVICE, {
        "GetReview": grpc.unary_unary_rpc_method_handler(grpcpeer.get_review),
        "ListReviews": grpc.unary_stream_rpc_method_handler(grpcpeer.list_reviews),
    }),))
    creds = grpc.ssl_server_credentials([(open(a.key, "rb").read(), open(a.cert, "rb").read())])
    s.add_secure_port(f"{a.args[0]}:{a.args[1]}", creds)
    s.start()
    s.wait_for_termination()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["h1server", "h1client", "h2server", "h2client", "grpcserver"])
    p.add_argument("args", nargs="*")
    p.add_argument("--ca")
    p.add_argument("--auth", default="none", choices=["none", "require", "optional"])
    p.add_argument("--tls", choices=["1.2", "1.3"])
    p.add_argument("--cipher")
    p.add_argument("--alpn")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--sni")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--authz")
    p.add_argument("--conn", action="append", default=[])
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--paths", default="/")
    a = p.parse_args()
    if a.role == "grpcserver":
        a.cert, a.key = a.args[2], a.args[3]
        return grpcserver(a)
    if a.role.endswith("server"):
        a.port, a.cert, a.key = int(a.args[0]), a.args[1], a.args[2]
    else:
        a.host, a.port = a.args[0], int(a.args[1])
    {"h1server": h1server, "h1client": h1client, "h2server": h2server, "h2client": h2client}[a.role](a)


if __name__ == "__main__":
    main()

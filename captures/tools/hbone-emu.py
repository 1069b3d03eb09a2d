#!/usr/bin/python3
"""A small HBONE emulator (Istio ambient), for the captures ztunnel cannot give here.
Run by captures/make-ambient-emu.sh; ground truth in captures/ambient.md ("Emulated: ...").

It follows ztunnel's wire format (src/proxy/outbound.rs, inbound.rs, src/tls/certificate.rs):
TCP to port 15008, TLS 1.3 only, no SNI, ALPN exactly ["h2"], mutual TLS with SPIFFE URI SAN
certificates, then HTTP/2 CONNECT with `:authority`, `baggage`, `forwarded`, `traceparent`
(and `x-forwarded-network` on the inner CONNECT of double HBONE), answered `:status 200`,
then the application bytes as DATA frames. Python ssl (OpenSSL) and python3-h2 replace rustls
and hyper, so the TLS and HTTP/2 details below that level differ (see ambient.md).

Roles (one process each, single-threaded select loop, push-based layers):
  client   ztunnel's outbound: listens on 127.0.0.1:15001 (iptables REDIRECT), reads the
           original destination (SO_ORIGINAL_DST), marks its own socket (SO_MARK) and opens
           HBONE; with --gateway and a destination that is a --service VIP, DOUBLE HBONE:
           outer CONNECT to the gateway, then a second TLS 1.3 + HTTP/2 CONNECT inside it.
  gateway  an east-west gateway: terminates the outer HBONE and relays the stream, opaque,
           to the backend's 15008 over TCP.
  server   ztunnel's inbound: terminates HBONE and delivers the stream to the app over TCP.

Test keys and test traffic only. Usage: hbone-emu.py ROLE --help
"""
import argparse
import secrets
import select
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

SO_ORIGINAL_DST = 80
SO_MARK = 36


def log(*a):
    print(f"[{ROLE}]", *a, file=sys.stderr, flush=True)


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


# ---------------------------------------------------------------------------- event loop
class Loop:
    def __init__(self):
        self.readers = {}  # socket -> callback()

    def add(self, sock, cb):
        self.readers[sock] = cb

    def remove(self, sock):
        self.readers.pop(sock, None)

    def run(self):
        while self.readers:
            r, _, _ = select.select(list(self.readers), [], [])
            for s in r:
                cb = self.readers.get(s)
                if cb:
                    try:
                        cb()
                    except (OSError, ssl.SSLError, RuntimeError, KeyError, ValueError) as e:
                        log(f"error: {type(e).__name__}: {e}")
                        self.remove(s)


LOOP = Loop()


class Raw:
    """A TCP socket: feeds what it reads upwards; on_eof when the peer closes."""

    def __init__(self, sock, name):
        self.sock, self.name = sock, name
        self.on_data = lambda d: None
        self.on_eof = lambda: None
        self.closed = False
        LOOP.add(sock, self._readable)

    def _readable(self):
        try:
            d = self.sock.recv(65536)
        except OSError as e:
            log(f"{self.name}: {e}")
            d = b""
        if d:
            self.on_data(d)
        else:
            LOOP.remove(self.sock)
            self.on_eof()

    def write(self, d):
        if d and not self.closed:
            try:
                self.sock.sendall(d)
            except OSError as e:
                log(f"{self.name}: send: {e}")

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class TLS:
    """TLS over any lower layer (a TCP socket or an HTTP/2 stream), with ssl.MemoryBIO."""

    def __init__(self, ctx, server_side, lower, name, on_ready):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side)  # no SNI
        self.lower, self.name, self.on_ready = lower, name, on_ready
        self.ready = False
        self.on_data = lambda d: None
        self.on_eof = lambda: None
        self.pending = b""
        lower.on_data = self.feed
        lower.on_eof = self.eof
        if not server_side:
            self._handshake()

    def _flush(self):
        d = self.out.read()
        if d:
            self.lower.write(d)

    def _handshake(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        self._flush()
        self.ready = True
        log(f"{self.name}: {self.obj.version()} {self.obj.cipher()[0]} alpn={self.obj.selected_alpn_protocol()}"
            f" peer={spiffe_ids(self.obj.getpeercert())}")
        self.on_ready(self)
        if self.pending:
            self.write(self.pending)
            self.pending = b""

    def feed(self, d):
        self.inc.write(d)
        if not self.ready:
            try:
                self._handshake()
            except ssl.SSLError as e:
                log(f"{self.name}: handshake failed: {e}")
                self._flush()
                return
            if not self.ready:
                return
        while True:
            try:
                d = self.obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.on_eof()
                break
            if not d:
                break
            self.on_data(d)
        self._flush()  # NewSessionTicket handling, alerts

    def eof(self):
        self.on_eof()

    def write(self, d):
        if not self.ready:
            self.pending += d
            return
        self.obj.write(d)
        self._flush()


class Stream:
    """One HTTP/2 stream as a byte pipe (the CONNECT tunnel)."""

    def __init__(self, h2l, sid):
        self.h2l, self.sid = h2l, sid
        self.on_data = lambda d: None
        self.on_eof = lambda: None
        self.on_response = lambda headers: None
        self.ended = False

    def write(self, d):
        c = self.h2l.conn
        try:
            while d:
                n = min(len(d), c.local_flow_control_window(self.sid), c.max_outbound_frame_size)
                if n <= 0:
                    raise RuntimeError("flow control window exhausted (not expected for these small captures)")
                c.send_data(self.sid, d[:n])
                d = d[n:]
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as e:
            log(f"stream {self.sid}: write after close: {e}")
        self.h2l.flush()

    def shutdown_write(self):
        if not self.ended:
            self.ended = True
            try:
                self.h2l.conn.end_stream(self.sid)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass
            self.h2l.flush()


class H2:
    """An HTTP/2 connection over a lower layer; CONNECT streams become Stream pipes."""

    def __init__(self, lower, client_side, name, on_request=None):
        # h2 4.1 wants :path and :scheme on a CONNECT; ztunnel (hyper) sends neither, so
        # header validation is off both ways (the headers are built right here).
        cfg = h2.config.H2Configuration(client_side=client_side, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.lower, self.name, self.on_request = lower, name, on_request
        self.streams = {}
        lower.on_data = self.feed
        lower.on_eof = lambda: log(f"{name}: connection closed")
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.lower.write(d)

    def connect(self, authority, headers):
        sid = self.conn.get_next_available_stream_id()
        st = self.streams[sid] = Stream(self, sid)
        # ztunnel (hyper): pseudo-headers, then baggage, forwarded, traceparent[, x-forwarded-network]
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)] + headers)
        self.flush()
        log(f"{self.name}: stream {sid} CONNECT {authority} {headers}")
        return st

    def respond(self, st, status, headers=()):
        self.conn.send_headers(st.sid, [(":status", str(status))] + list(headers),
                               end_stream=status != 200)
        self.flush()

    def feed(self, d):
        try:
            events = self.conn.receive_data(d)
        except h2.exceptions.ProtocolError as e:
            log(f"{self.name}: h2 error {e}")
            self.flush()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                st = self.streams[ev.stream_id] = Stream(self, ev.stream_id)
                self.on_request(self, st, dict(ev.headers))
            elif isinstance(ev, h2.events.ResponseReceived):
                self.streams[ev.stream_id].on_response(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                st = self.streams.get(ev.stream_id)
                if st and ev.data:
                    st.on_data(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                st = self.streams.get(ev.stream_id)
                if st:
                    st.on_eof()
            elif isinstance(ev, h2.events.StreamReset):
                log(f"{self.name}: stream {ev.stream_id} reset {ev.error_code}")
        self.flush()


def relay(a, b):
    """Copy both ways between two pipes (Raw or Stream); half-closes follow."""
    a.on_data, b.on_data = b.write, a.write
    a.on_eof, b.on_eof = b.shutdown_write, a.shutdown_write


# ---------------------------------------------------------------------------- TLS contexts
def spiffe_ids(cert):
    if not cert:
        return None
    return [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]


def tls_context(server, args, client_cert="required"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3  # ztunnel: TLS 1.3 only
    ctx.set_alpn_protocols(["h2"])
    if args.keylog:
        ctx.keylog_filename = args.keylog
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.ca)
    if server:
        ctx.verify_mode = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL,
                           "none": ssl.CERT_NONE}[client_cert]
    else:
        ctx.check_hostname = False  # identity is the URI SAN, checked by check_peer()
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_peer(tls, want):
    got = spiffe_ids(tls.obj.getpeercert())
    if want and want not in (got or []):
        raise SystemExit(f"{tls.name}: peer identity {got}, want {want}")


def traceparent():
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def listener(addr):
    h, p = hostport(addr)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((h, p))
    s.listen(16)
    return s


def dial(addr, mark=None, src=None):
    h, p = hostport(addr)
    s = socket.socket()
    if mark is not None:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)  # ztunnel's PACKET_MARK: skips REDIRECT
    if src:
        s.bind((src, 0))
    s.connect((h, p))
    return s


# ---------------------------------------------------------------------------- roles
def run_client(args):
    octx = tls_context(False, args)
    services = dict(x.split("=", 1) for x in args.service)  # "VIP:port" -> hostname
    lst = listener(args.listen)

    def accept():
        app, peer = lst.accept()
        od = app.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port, ip = struct.unpack("!2xH4s8x", od)
        dst = f"{socket.inet_ntoa(ip)}:{port}"
        src = f"{peer[0]}:{peer[1]}"
        log(f"app {src} -> original destination {dst}")
        app_pipe = Raw(app, "app")
        buffered = []
        app_pipe.on_data = buffered.append  # the app's bytes wait for the 200
        svc = services.get(dst)
        fwd = f'for="{src}"' + (f";host={svc}" if svc else "")
        base = [("baggage", args.baggage), ("forwarded", fwd), ("traceparent", traceparent())]
        if svc and args.gateway:
            # DOUBLE HBONE (outbound.rs build_request_through_gateway): outer and inner CONNECT
            # both carry the service hostname and the service port; the inner one adds
            # x-forwarded-network (create_hbone_request with origin_network).
            authority = f"{svc}:{port}"
            nxt = args.gateway
        else:
            authority = dst  # plain HBONE: the pod ip:port, to the pod's 15008
            nxt = f"{socket.inet_ntoa(ip)}:15008"
        outer_raw = Raw(dial(nxt, mark=args.mark), "hbone")

        def start_app(stream):
            relay(app_pipe, stream)
            for d in buffered:
                stream.write(d)

        def outer_ready(tls):
            check_peer(tls, args.outer_id)
            h = H2(tls, True, "outer h2")
            st = h.connect(authority, base)

            def resp(hd):
                log(f"outer stream {st.sid}: {hd}")
                if hd.get(":status") != "200":
                    app.close()
                    return
                if not (svc and args.gateway):
                    start_app(st)
                    return

                def inner_ready(itls):
                    check_peer(itls, args.inner_id)
                    ih = H2(itls, True, "inner h2")
                    ist = ih.connect(authority, base + [("x-forwarded-network", args.network)])

                    def iresp(ihd):
                        log(f"inner stream {ist.sid}: {ihd}")
                        if ihd.get(":status") == "200":
                            start_app(ist)
                        else:
                            app.close()
                    ist.on_response = iresp

                TLS(octx, False, st, "inner tls", inner_ready)
            st.on_response = resp

        TLS(octx, False, outer_raw, "outer tls", outer_ready)

    LOOP.add(lst, accept)
    LOOP.run()


def run_server(args, gateway):
    ctx = tls_context(True, args, args.client_cert)
    table = dict(x.split("=", 1) for x in args.route)
    lst = listener(args.listen)

    def on_request(h, st, hd):
        log(f"stream {st.sid} request {hd}")
        auth = hd.get(":authority", "")
        if hd.get(":method") != "CONNECT":
            h.respond(st, 400)  # inbound.rs: a non-CONNECT method is a bad request
            return
        if gateway:
            target = table.get(auth)  # hostname:port -> backend ip:15008
        else:
            # hostname:service-port -> pod ip:target-port; ip:port -> pod ip:port
            port = table.get(auth) or auth.rpartition(":")[2]
            target = f"{args.pod_ip}:{port}" if port.isdigit() else None
        if not target:
            h.respond(st, 503)
            return
        try:
            up = Raw(dial(target), "upstream")
        except OSError as e:
            log(f"connect {target}: {e}")
            h.respond(st, 503)  # inbound.rs: a failed upstream connect is 503
            return
        log(f"stream {st.sid}: {auth} -> {target}")
        h.respond(st, 200, [] if gateway else [("baggage", args.baggage)])
        relay(st, up)

    def accept():
        s, peer = lst.accept()
        log(f"accepted {peer}")
        raw = Raw(s, "hbone")
        TLS(ctx, True, raw, "tls", lambda tls: H2(tls, False, "h2", on_request))

    LOOP.add(lst, accept)
    LOOP.run()


def main():
    global ROLE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", choices=["client", "gateway", "server"])
    p.add_argument("--listen", required=True, help="ip:port")
    p.add_argument("--ca", required=True, help="mesh root certificate (PEM)")
    p.add_argument("--cert", help="workload certificate (PEM); none: send no client certificate")
    p.add_argument("--key")
    p.add_argument("--keylog", help="NSS key log file (Python ssl keylog_filename)")
    p.add_argument("--baggage", default="k8s.namespace.name=default")
    # client
    p.add_argument("--mark", type=lambda s: int(s, 0), default=0x539)
    p.add_argument("--service", action="append", default=[], help="VIP:port=hostname")
    p.add_argument("--gateway", help="ip:port of the east-west gateway (double HBONE)")
    p.add_argument("--network", default="network1", help="x-forwarded-network (inner CONNECT)")
    p.add_argument("--outer-id", help="SPIFFE id the (outer) server must present")
    p.add_argument("--inner-id", help="SPIFFE id the inner server must present")
    # gateway / server
    p.add_argument("--route", action="append", default=[],
                   help="gateway: hostname:port=ip:15008; server: hostname:port=targetport")
    p.add_argument("--pod-ip", help="server: the pod address the app is reached on")
    p.add_argument("--client-cert", choices=["required", "optional", "none"], default="required")
    args = p.parse_args()
    ROLE = args.role
    if args.role == "client":
        run_client(args)
    else:
        run_server(args, args.role == "gateway")


ROLE = "?"
if __name__ == "__main__":
    main()

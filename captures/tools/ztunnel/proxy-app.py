#!/usr/bin/env python3
"""A tiny HTTP/1.1 server that expects a PROXY protocol v2 header first (as ztunnel writes it
for a workload with applicationTunnel {protocol: PROXY}). It parses the header (addresses and
TLVs), then answers one HTTP request per connection, echoing what the header said.

Usage: proxy-app.py BIND_ADDR PORT LOGFILE
"""
import socket
import socketserver
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def read_exact(f, n):
    b = f.read(n)
    if len(b) != n:
        raise EOFError("short read")
    return b


class H(socketserver.StreamRequestHandler):
    def handle(self):
        f = self.rfile
        hdr = read_exact(f, 16)
        if hdr[:12] != SIG:
            self.server.log.write(f"no PROXY v2 signature: {hdr!r}\n")
            return
        ver_cmd, fam, length = hdr[12], hdr[13], struct.unpack("!H", hdr[14:16])[0]
        body = read_exact(f, length)
        info = [f"ver_cmd=0x{ver_cmd:02x} fam=0x{fam:02x} len={length}"]
        off = 0
        if fam == 0x11:  # TCP over IPv4
            src, dst, sp, dp = struct.unpack("!4s4sHH", body[:12])
            info.append(f"src={socket.inet_ntoa(src)}:{sp} dst={socket.inet_ntoa(dst)}:{dp}")
            off = 12
        while off + 3 <= length:
            t, l = body[off], struct.unpack("!H", body[off + 1:off + 3])[0]
            v = body[off + 3:off + 3 + l]
            info.append(f"tlv 0x{t:02x}={v.decode('ascii', 'replace')}")
            off += 3 + l
        line = " ".join(info)
        self.server.log.write(line + "\n")
        self.server.log.flush()
        # one HTTP/1.1 request
        while True:
            l = f.readline()
            if not l or l in (b"\r\n", b"\n"):
                break
        payload = ("proxy-v2 " + line + "\n").encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)


class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    srv = S((sys.argv[1], int(sys.argv[2])), H)
    srv.log = open(sys.argv[3], "a")
    srv.serve_forever()

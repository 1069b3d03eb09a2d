#!/usr/bin/env python3
"""A TLS 1.3 client with ALPN h2 and NO client certificate, aimed at ztunnel's HBONE port
(a misconfigured mesh client). Prints what the server answered.
Usage: nocert-client.py ADDR PORT SRCPORT KEYLOGFILE"""
import socket
import ssl
import sys

addr, port, sport, keylog = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE        # the fake CA is not ours; we only want to see the answer
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.set_alpn_protocols(["h2"])
ctx.keylog_filename = keylog
with socket.create_connection((addr, port), timeout=5, source_address=("0.0.0.0", sport)) as raw:
    with ctx.wrap_socket(raw) as s:   # no SNI: server_hostname not given
        print("handshake done, alpn:", s.selected_alpn_protocol(), "version:", s.version())
        try:
            # HTTP/2 connection preface: in TLS 1.3 the server checks the (absent) client
            # certificate after the client Finished, so the refusal arrives on the first read.
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
            data = s.recv(4096)
            print("read:", data[:64])
        except (ssl.SSLError, OSError) as e:
            print("error:", type(e).__name__, e)

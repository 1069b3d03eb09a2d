#!/usr/bin/env python3
"""UDP echo for the ambient captures. `udp-echo.py server ADDR PORT` answers every datagram
with "echo: " + payload; `udp-echo.py client ADDR PORT SRCPORT MSG...` sends (from SRCPORT) each MSG and prints the answer."""
import socket
import sys

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "server":
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(b"echo: " + data, peer)
else:
    s.settimeout(3)
    s.bind(("0.0.0.0", int(sys.argv[4])))
    for msg in sys.argv[5:]:
        s.sendto(msg.encode(), (addr, port))
        print(s.recvfrom(2048)[0].decode())

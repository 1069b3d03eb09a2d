#!/usr/bin/env bash
# captures/tcp-syn-retried.pcap: a SYN sent four times, unanswered (a port the server's namespace
# drops). captures/tls12-bulk-retransmit.pcap: real TCP retransmissions in the bulk data of a TLS flow,
# after its handshake (where tlspeek no longer reads the flow's bytes). Python ssl (OpenSSL)
# peers in two network namespaces; the client's namespace drops every 9th large segment the
# server sends (iptables `statistic --mode nth`, counting from the fifth: past the handshake),
# so the server's own TCP stack retransmits them; tcpdump records on the server's interface,
# where both copies pass. Run as root on Debian: sudo captures/make-retransmit.sh (needs
# iptables, tcpdump, iproute2, ethtool, python3 with the cryptography module).
# Traffic never leaves the namespaces. What the file holds: captures/README.md.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
. tools/lib.sh
PY="python3 $HERE/tools/peer.py"
PKI=$HERE/pki
CLI=tsp-rc SRV=tsp-rs
S4=10.98.0.1 C4=10.98.0.2
NETNS=($CLI $SRV)
lib_traps

python3 tools/pki.py "$PKI"
veth_pair $CLI $SRV $C4 $S4
ip netns exec $CLI iptables -A INPUT -p tcp --sport 8443 -m length --length 1000: \
  -m statistic --mode nth --every 9 --packet 4 -j DROP
sleep 1

echo "tls12-bulk-retransmit: TLS 1.2, 120,000 bytes from the server, every 9th large segment dropped"
capture_start $SRV "$HERE/tls12-bulk-retransmit.pcap" $SRV
sleep 1
ip netns exec $SRV $PY tls-server 8443 "$PKI/api.crt" "$PKI/api.key" --tls 1.2 --alpn http/1.1 \
  --reply-bytes 120000 &
SERVER=$!; PIDS+=($SERVER); sleep 0.7
ip netns exec $CLI $PY tls-client $S4 8443 --sni api.example.test --alpn http/1.1 --tls 1.2 \
  --sport 40100 --read-all
wait $SERVER
captures_stop
dropped=$(ip netns exec $CLI iptables -L INPUT -v -x | awk '/DROP/ {print $1}')
echo "segments dropped at the client: $dropped"

echo "tcp-syn-retried: a connection attempt to a port the server's namespace drops"
ip netns exec $SRV iptables -A INPUT -p tcp --dport 9 -j DROP
capture_start $CLI "$HERE/tcp-syn-retried.pcap" $CLI
sleep 1
# The kernel sends the SYN again while the client waits (3.5 s: this kernel sent it at 1, 2 and
# 3 s).
ip netns exec $CLI python3 -c "import socket
s = socket.socket(); s.bind(('', 40200)); s.settimeout(3.5)
try: s.connect(('$S4', 9))
except OSError as e: print('client:', e)" || true
captures_stop
tools/check.sh tls12-bulk-retransmit.pcap tcp-syn-retried.pcap 2>/dev/null || true

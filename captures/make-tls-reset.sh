#!/usr/bin/env bash
# Regenerates tls-reset-after-hello.pcap: a server that answers a TLS ClientHello with a TCP
# reset and nothing else (as a proxy with no filter chain for the SNI may), from real stacks:
# OpenSSL 3.0 s_client against a Python listener that reads the ClientHello, then closes with
# SO_LINGER 0 (the kernel sends RST). A second listener closes normally (FIN) instead: s_client
# then sends a fatal decode_error alert, which the closed socket answers with a RST.
# Client and server are two network namespaces joined by a veth pair (created and removed here;
# not loopback, which tlspeek reads as a leg inside a pod). Run as root:
#   sudo captures/make-tls-reset.sh
#   10.95.0.2:40801 -> 10.95.0.1:8443  RST right after the ClientHello
#   10.95.0.2:40802 -> 10.95.0.1:8444  FIN after the ClientHello, client alert, RST
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
CLI=tsp-rst-c SRV=tsp-rst-s
S4=10.95.0.1 C4=10.95.0.2
OUT=tls-reset-after-hello.pcap
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del $CLI 2>/dev/null || true
  ip netns del $SRV 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $CLI
ip netns add $SRV
ip link add $CLI netns $CLI type veth peer name $SRV netns $SRV
for ns in $CLI $SRV; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n $ns link set lo up
  ip -n $ns link set $ns up
  ip netns exec $ns ethtool -K $ns tso off gso off gro off >/dev/null
done
ip -n $CLI addr add $C4/24 dev $CLI
ip -n $SRV addr add $S4/24 dev $SRV
# Static neighbours: no ARP in the capture.
ip -n $CLI neigh replace $S4 lladdr "$(ip -n $SRV -br link show $SRV | awk '{print $3}')" dev $CLI nud permanent
ip -n $SRV neigh replace $C4 lladdr "$(ip -n $CLI -br link show $CLI | awk '{print $3}')" dev $SRV nud permanent

# The listeners: read the first record (the ClientHello), then reset (8443) or close (8444).
ip netns exec $SRV python3 - <<'PY' &
import socket, struct, threading
def serve(port, reset):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.95.0.1", port))
    s.listen(1)
    c, _ = s.accept()
    got = b""
    while len(got) < 5 or len(got) < 5 + struct.unpack("!H", got[3:5])[0]:
        b = c.recv(65536)
        if not b:
            break
        got += b
    if reset:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    s.close()
ts = [threading.Thread(target=serve, args=(p, r)) for p, r in ((8443, True), (8444, False))]
for t in ts: t.start()
for t in ts: t.join()
PY
PIDS+=($!)
ip netns exec $SRV tcpdump -i $SRV -w "$HERE/$OUT" -U 'tcp' 2>/dev/null &
PIDS+=($!)
sleep 1
for c in "40801 8443" "40802 8444"; do
  set -- $c
  ip netns exec $CLI openssl s_client -connect $S4:$2 -bind $C4:$1 -tls1_2 \
    -servername api.example.test </dev/null >/dev/null 2>&1 || true
  sleep 0.5
done
sleep 1
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true
echo "wrote $OUT"

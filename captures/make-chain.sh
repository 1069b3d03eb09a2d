#!/usr/bin/env bash
# Regenerates tls12-chain-checks.pcap: TLS 1.2 handshakes whose certificate lists test `--ca`
# (tests/chain.rs), from real stacks: OpenSSL 3.0 s_server / s_client between two network
# namespaces this script creates and removes. Both ends ask for and check the peer's
# certificates without stopping on an error (s_server -verify, s_client without
# -verify_return_error), so every handshake completes and both lists are on the wire.
# Run as root on Debian: sudo captures/make-chain.sh
# Needs tcpdump, iproute2, ethtool, openssl, Debian's python3 with the cryptography module
# (tools/pki.py adds the certificates below to pki/ when missing). Traffic never leaves the
# namespaces.
#
#   tsp-ch-c  client: veth 10.94.0.2/24      tsp-ch-s  server: veth 10.94.0.1/24
#
#   client port -> server port (SNI: the server certificate's CN)
#                   server sends                                      client sends
#   40901 -> 8443   eku-server (serverAuth only)                      eku-server (as a client: refused use)
#   40902 -> 8444   details + mesh-inter (intermediate, pathLen 0)     productpage
#   40903 -> 8445   deep + sub-inter + mesh-inter (pathLen broken)    productpage
#   40904 -> 8446   by-workload + reviews (an end entity as issuer)   productpage
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PKI=$HERE/pki
CLI=tsp-ch-c SRV=tsp-ch-s
S4=10.94.0.1 C4=10.94.0.2
OUT=tls12-chain-checks.pcap
WORK=$(mktemp -d /tmp/tsp-ch.XXXXXX)

. tools/lib.sh
NETNS=($CLI $SRV)
lib_traps

/usr/bin/python3 tools/pki.py "$PKI"   # adds missing certificates only; never remakes existing ones
cat "$PKI/mesh-inter.crt" > "$WORK/inter.pem"
cat "$PKI/sub-inter.crt" "$PKI/mesh-inter.crt" > "$WORK/sub.pem"
cat "$PKI/reviews.crt" > "$WORK/reviews.pem"

veth_pair $CLI $SRV $C4 $S4
sleep 1

capture_start $SRV "$HERE/$OUT" $SRV
sleep 1
# one SPORT PORT SERVER-CERT CHAIN CLIENT-CERT: one connection; the server answers `ping` reversed
# (-rev) and closes on CLOSE.
one() {
  local sport=$1 port=$2 scert=$3 chain=$4 ccert=$5 extra=()
  [ -n "$chain" ] && extra=(-cert_chain "$chain")
  ip netns exec $SRV openssl s_server -quiet -accept "$port" -naccept 1 -rev -tls1_2 \
    -cert "$PKI/$scert.crt" -key "$PKI/$scert.key" "${extra[@]}" -verify 4 -CAfile "$PKI/ca.crt" \
    >"$WORK/server-$port.log" 2>&1 &
  local srv=$!; PIDS+=($srv)
  for _ in $(seq 100); do
    ip netns exec $SRV ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.05
  done
  { printf 'ping\n'; sleep 0.3; printf 'CLOSE\n'; sleep 0.3; } |
    ip netns exec $CLI openssl s_client -quiet -connect $S4:"$port" -bind $C4:"$sport" -tls1_2 \
      -servername "$scert" -CAfile "$PKI/ca.crt" \
      -cert "$PKI/$ccert.crt" -key "$PKI/$ccert.key" >"$WORK/client-$port.log" 2>&1 || true
  for _ in $(seq 50); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  echo "  $sport -> $port: client: $(grep -m1 'verify error' "$WORK/client-$port.log" || echo ok)"
  echo "                  server: $(grep -m1 'verify error' "$WORK/server-$port.log" || echo ok)"
  sleep 0.3
}
one 40901 8443 eku-server "" eku-server
one 40902 8444 details "$WORK/inter.pem" productpage
one 40903 8445 deep "$WORK/sub.pem" productpage
one 40904 8446 by-workload "$WORK/reviews.pem" productpage
captures_stop
echo "wrote $OUT"

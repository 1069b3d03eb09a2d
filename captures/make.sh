#!/usr/bin/env bash
# Regenerates the test captures in captures/ from real stacks (Python ssl/OpenSSL, http.server,
# nginx, curl) talking between two network namespaces this script creates and removes.
# Run as root on Debian: sudo captures/make.sh   (needs tcpdump, iproute2, ethtool, nginx-light,
# curl, tshark, python3 with the cryptography module). Traffic never leaves the namespaces.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PY="python3 $HERE/tools/peer.py"
PKI=$HERE/pki
CLI=tsp-cli SRV=tsp-srv
S4=10.99.0.1 C4=10.99.0.2 S6=fd00:99::1 C6=fd00:99::2

PIDS=()   # every background process this script starts (stopped by id in cleanup)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del $CLI 2>/dev/null || true
  ip netns del $SRV 2>/dev/null || true
}
trap cleanup EXIT
cleanup

python3 tools/pki.py "$PKI"

ip netns add $CLI
ip netns add $SRV
ip link add tsp-c netns $CLI type veth peer name tsp-s netns $SRV
for ns in $CLI $SRV; do ip -n $ns link set lo up; done
ip -n $CLI addr add $C4/24 dev tsp-c
ip -n $SRV addr add $S4/24 dev tsp-s
ip -n $CLI addr add $C6/64 dev tsp-c nodad
ip -n $SRV addr add $S6/64 dev tsp-s nodad
ip -n $CLI link set tsp-c up
ip -n $SRV link set tsp-s up
# One wire segment per packet, as a NIC would show them (no TSO/GSO super-packets).
ip netns exec $CLI ethtool -K tsp-c tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $SRV ethtool -K tsp-s tso off gso off gro off >/dev/null 2>&1 || true
sleep 1

in_srv() { ip netns exec $SRV "$@"; }
in_cli() { ip netns exec $CLI "$@"; }

# start_capture FILE FILTER [tcpdump args...]: records TCP only (no IPv6 RS/MLD noise, so a
# regeneration gives the same packets). Several captures may run at once; stop_capture ends all.
TCPDUMPS=()
start_capture() {
  local out=$1 filter=$2; shift 2
  ip netns exec $SRV tcpdump -U --immediate-mode -n -s 0 "$@" -w "$HERE/$out" "$filter" >/dev/null 2>&1 &
  TCPDUMPS+=($!); PIDS+=($!)
  sleep 1
}
stop_capture() {
  sleep 1
  for t in "${TCPDUMPS[@]}"; do kill -INT "$t"; wait "$t" || true; done
  TCPDUMPS=()
}
# tcp_payload FILE SPORT: TCP payload length of the first data packet sent from port SPORT.
tcp_payload() {
  tshark -r "$HERE/$1" -Y "tcp.srcport==$2 && tcp.len>0" -T fields -e tcp.len 2>/dev/null | head -1
}
# serve CMD...: starts a server in the server namespace and waits for it to listen.
serve() { ip netns exec $SRV "$@" & SERVER=$!; PIDS+=($SERVER); sleep 0.7; }

echo "1. tls12-server-only (the first traffic in the fresh namespaces: ARP request + reply kept)"
start_capture tls12-server-only.pcap "tcp or arp" -i tsp-s
serve $PY tls-server 443 $PKI/api.crt $PKI/api.key --tls 1.2 --alpn http/1.1 --close-notify
in_cli $PY tls-client $S4 443 --sni api.example.test --alpn h2,http/1.1 --tls 1.2 --sport 33454 --close-notify
wait $SERVER; stop_capture

echo "2. tls12-mtls-istio + tls12-nanosecond (the same session, recorded twice: µs and ns)"
# The server's first flight holds an ECDSA signature whose DER length varies (70-72 bytes): the
# session is redone until that flight is 1115 bytes as in the committed files, so that byte
# offsets derived from it (tls-cut-short.pcap) stay the same on every regeneration.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  start_capture tls12-mtls-istio.pcap tcp -i tsp-s
  start_capture tls12-nanosecond.pcap tcp -i tsp-s --time-stamp-precision=nano
  serve $PY tls-server 9080 $PKI/reviews.crt $PKI/reviews.key --tls 1.2 --ca $PKI/ca.crt --require-cert --alpn istio-peer-exchange,istio
  in_cli $PY tls-client $S4 9080 --sni outbound_.9080_._.reviews.default.svc.cluster.local \
    --alpn istio-peer-exchange,istio --tls 1.2 --cert $PKI/productpage.crt --key $PKI/productpage.key --sport 57786
  wait $SERVER; stop_capture
  n=$(tcp_payload tls12-mtls-istio.pcap 9080)
  [ "$n" = 1115 ] && break
  echo "   server flight $n bytes, not 1115: again ($attempt)"
  sleep 1
done

echo "3. tls13-no-client-cert, tls13-mtls"
start_capture tls13-no-client-cert.pcap tcp -i tsp-s
serve $PY tls-server 9080 $PKI/reviews.crt $PKI/reviews.key --tls 1.3 --alpn istio-http/1.1
in_cli $PY tls-client $S4 9080 --sni outbound_.9080_._.reviews.default.svc.cluster.local --alpn istio-http/1.1,istio,h2 --tls 1.3 --sport 33926
wait $SERVER; stop_capture
start_capture tls13-mtls.pcap tcp -i tsp-s
serve $PY tls-server 9080 $PKI/reviews.crt $PKI/reviews.key --tls 1.3 --ca $PKI/ca.crt --require-cert --alpn istio-http/1.1
in_cli $PY tls-client $S4 9080 --sni outbound_.9080_._.reviews.default.svc.cluster.local --alpn istio-http/1.1,istio,h2 \
  --tls 1.3 --cert $PKI/productpage.crt --key $PKI/productpage.key --sport 33928
wait $SERVER; stop_capture

echo "4. tls12-expired-cert (expired, then not yet valid)"
start_capture tls12-expired-cert.pcap tcp -i tsp-s
serve $PY tls-server 8443 $PKI/expired.crt $PKI/expired.key --tls 1.2
in_cli $PY tls-client $S4 8443 --sni expired.example.test --tls 1.2 --sport 51028
wait $SERVER
serve $PY tls-server 8444 $PKI/future.crt $PKI/future.key --tls 1.2
in_cli $PY tls-client $S4 8444 --sni future.example.test --tls 1.2 --sport 49766
wait $SERVER; stop_capture

echo "5. tls12-small-mtu-chain"
in_cli ip link set tsp-c mtu 576
in_srv ip link set tsp-s mtu 576
start_capture tls12-small-mtu-chain.pcap tcp -i tsp-s
serve $PY tls-server 443 $PKI/big-chain.crt $PKI/big-leaf.key --tls 1.2
in_cli $PY tls-client $S4 443 --sni big.example.test --alpn h2,http/1.1 --tls 1.2 --sport 53256 --hello-split sni
wait $SERVER; stop_capture
in_cli ip link set tsp-c mtu 1500
in_srv ip link set tsp-s mtu 1500
# An MTU below 1280 removed the IPv6 addresses (RFC 8200 minimum): put them back.
ip -n $CLI addr replace $C6/64 dev tsp-c nodad
ip -n $SRV addr replace $S6/64 dev tsp-s nodad
sleep 1

echo "6. http-keepalive-sidecar"
start_capture http-keepalive-sidecar.pcap tcp -i tsp-s
serve $PY http-server 9080
in_cli $PY http-client $S4 9080 --sport 47968
wait $SERVER; stop_capture

echo "7. any-sll2 (tcpdump -i any: veth TLS + loopback HTTP)"
start_capture any-sll2.pcap tcp -i any -y LINUX_SLL2
serve $PY tls-server 9080 $PKI/reviews.crt $PKI/reviews.key --tls 1.2 --ca $PKI/ca.crt --require-cert --alpn istio-peer-exchange,istio
in_cli $PY tls-client $S4 9080 --sni outbound_.9080_._.reviews.default.svc.cluster.local \
  --alpn istio-peer-exchange,istio --tls 1.2 --cert $PKI/productpage.crt --key $PKI/productpage.key --sport 47974
wait $SERVER
serve $PY http-server 8080
in_srv $PY http-client 127.0.0.1 8080 --sport 44886
wait $SERVER; stop_capture

echo "8. ipv6-tls-http"
start_capture ipv6-tls-http.pcap "ip6 and tcp" -i tsp-s
serve $PY tls-server 443 $PKI/api.crt $PKI/api.key --alpn h2,http/1.1
in_cli $PY tls-client $S6 443 --sni api.example.test --alpn h2,http/1.1 --sport 34902
wait $SERVER
serve $PY http-server 9080
in_cli $PY http-client $S6 9080 --sport 45616
wait $SERVER; stop_capture

echo "9. plaintext-other (SMTP, SMTP STARTTLS), http-connect-tls"
start_capture plaintext-other.pcap tcp -i tsp-s
serve $PY smtp-server 25 $PKI/api.crt $PKI/api.key --count 2
in_cli $PY smtp-client $S4 25 --sport 57440
in_cli $PY smtp-client $S4 25 --starttls --sni mail.example.test --sport 57450
wait $SERVER; stop_capture
start_capture http-connect-tls.pcap tcp -i tsp-s
serve $PY tls-server 8443 $PKI/api.crt $PKI/api.key --tls 1.2
TLS_SERVER=$SERVER
serve $PY connect-proxy 3128
in_cli $PY connect-client $S4 3128 $S4:8443 --sni db.example.test --sport 49428
wait $SERVER $TLS_SERVER; stop_capture

echo "10. h2c (nginx http2 cleartext, curl prior knowledge)"
cat > /tmp/tsp-nginx.conf <<NGX
daemon off; pid /tmp/tsp-nginx.pid; error_log stderr;
events {}
http { access_log off;
  server { listen 8080 http2; location / { return 200 "hello over h2c\n"; } } }
NGX
start_capture h2c.pcap tcp -i tsp-s
ip netns exec $SRV nginx -c /tmp/tsp-nginx.conf >/dev/null 2>&1 &
NGINX=$!; PIDS+=($NGINX)
sleep 1
in_cli curl -s --local-port 47586 --http2-prior-knowledge -H 'x-request-id: h2c-1' http://$S4:8080/productpage -o /dev/null
stop_capture
kill $NGINX 2>/dev/null || true; wait $NGINX 2>/dev/null || true

echo "10b. h2c-upgrade (curl --http2: Upgrade: h2c, 101, HTTP/2; nginx has no Upgrade, tools/peer.py answers)"
start_capture h2c-upgrade.pcap tcp -i tsp-s
serve $PY h2c-server 8081
in_cli curl -s --local-port 47600 --http2 -H 'x-request-id: h2c-2' http://$S4:8081/productpage -o /dev/null
wait $SERVER; stop_capture

echo "11-12. derived variants"
python3 tools/derive.py "$HERE"
printf 'This is not a packet capture.\nIt is a text file.\n' > not-a-capture.pcap
ls -l *.pcap *.pcapng

#!/usr/bin/env bash
# Regenerates the PROXY protocol captures proxy-v1.pcap and proxy-v2.pcap: HAProxy sending PROXY
# headers (`send-proxy`, `send-proxy-v2`) to another HAProxy that accepts them (`accept-proxy`)
# and forwards to a Python HTTP server or an OpenSSL TLS server, with HTTP and TLS behind the
# header; plus a ztunnel-like sender (tools/proxypeer.py) whose v2 header carries Istio's
# identity TLV 0xD0 and is written in two pieces. Ground truth: captures/proxy.md.
# Run as root on Debian: sudo captures/make-proxy.sh
# Needs haproxy (2.6), curl, openssl, tcpdump, iproute2, ethtool, Debian's /usr/bin/python3.
# Traffic never leaves the namespaces this script creates and removes.
#
#   tsp-px-c  10.97.0.2: curl -> sending HAProxy on 127.0.0.1:800x -> 10.97.0.1 (fixed source ports)
#   tsp-px-s  10.97.0.1: receiving HAProxy (accept-proxy) :9080 -> http.server 127.0.0.1:8000,
#                        :9443 -> openssl s_server -www 127.0.0.1:8443;
#                        :9081 tools/proxypeer.py serve (http.server after reading the header:
#                        HAProxy refuses a header split over two reads)
#   tcpdump on tsp-px-s (the HAProxy -> HAProxy leg only), filter `tcp`.
#
# curl's source ports towards the sending HAProxy (named in the headers): 40601, 40602, 40611,
# 40612. Source ports of the captured connections (HAProxy `source` on each server line):
#   proxy-v1.pcap  40701 HTTP (send-proxy), 40702 TLS (send-proxy)
#   proxy-v2.pcap  40711 HTTP (send-proxy-v2, TLVs crc32c + unique-id), 40712 TLS (send-proxy-v2),
#                  40713 health check (check-send-proxy: v2 LOCAL + httpchk),
#                  40714 tools/proxypeer.py (ztunnel's header layout, TLV 0xD0, header split in two)
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PY=/usr/bin/python3
CLI=tsp-px-c SRV=tsp-px-s
S4=10.97.0.1 C4=10.97.0.2
WORK=$(mktemp -d /tmp/tsp-px.XXXXXX)

. tools/lib.sh
NETNS=($CLI $SRV)
lib_traps

veth_pair $CLI $SRV $C4 $S4
sleep 1
in_cli() { ip netns exec $CLI "$@"; }
in_srv() { ip netns exec $SRV "$@"; }
# bg NS CMD...: starts CMD in namespace NS in the background (BG = its pid: `ip netns exec`
# execs CMD, so it is CMD's own pid, stopped by lib_cleanup).
bg() { ip netns exec "$1" "${@:2}" & BG=$!; PIDS+=($BG); }
# listening NS PORT: waits until something listens on PORT in namespace NS.
listening() {
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  echo "nothing listens on $2 in $1" >&2; exit 1
}

# Backends in the server namespace: files named after the paths asked for.
mkdir -p "$WORK/www"
for p in behind-proxy-v1 behind-proxy-v2 behind-ztunnel-emulator health; do echo "$p" > "$WORK/www/$p"; done
bg $SRV $PY -m http.server --bind 127.0.0.1 --directory "$WORK/www" 8000 >"$WORK/http.log" 2>&1
bg $SRV openssl s_server -quiet -www -accept 127.0.0.1:8443 -cert pki/api.crt -key pki/api.key \
  >"$WORK/s_server.log" 2>&1

cat > "$WORK/receiver.cfg" <<EOF
global
  pidfile $WORK/receiver.pid
defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend http_in
  bind $S4:9080 accept-proxy
  default_backend http_out
backend http_out
  server py 127.0.0.1:8000
frontend tls_in
  bind $S4:9443 accept-proxy
  default_backend tls_out
backend tls_out
  server ossl 127.0.0.1:8443
EOF
bg $SRV haproxy -db -f "$WORK/receiver.cfg" >"$WORK/receiver.log" 2>&1

# The sending HAProxy: one frontend per connection, each backend with its own source port.
cat > "$WORK/sender.cfg" <<EOF
global
  pidfile $WORK/sender.pid
defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend v1_http
  bind 127.0.0.1:8001
  default_backend v1_http
backend v1_http
  server s $S4:9080 send-proxy source $C4:40701
frontend v1_tls
  bind 127.0.0.1:8002
  default_backend v1_tls
backend v1_tls
  server s $S4:9443 send-proxy source $C4:40702
frontend v2_http
  bind 127.0.0.1:8011
  unique-id-format tlspeek-unique-id-%fp
  default_backend v2_http
backend v2_http
  server s $S4:9080 send-proxy-v2 proxy-v2-options crc32c,unique-id source $C4:40711
frontend v2_tls
  bind 127.0.0.1:8012
  default_backend v2_tls
backend v2_tls
  server s $S4:9443 send-proxy-v2 source $C4:40712
EOF
in_cli ip link set lo up
bg $CLI haproxy -db -f "$WORK/sender.cfg" >"$WORK/sender.log" 2>&1
listening $SRV 8000; listening $SRV 8443; listening $SRV 9080; listening $SRV 9443
listening $CLI 8001; listening $CLI 8012

# get SPORT URL [curl options]: one request through the sending HAProxy, from 127.0.0.1:SPORT
# (the source the PROXY header names).
get() {
  local sport=$1 url=$2; shift 2
  in_cli curl -sS -o /dev/null -w "    %{http_code} $url\n" --max-time 5 --local-port "$sport" "$@" "$url"
  sleep 0.5
}

echo "1. proxy-v1.pcap (send-proxy: HTTP, then TLS)"
capture_start $SRV "$HERE/proxy-v1.pcap" $SRV; sleep 1
get 40601 http://127.0.0.1:8001/behind-proxy-v1
get 40602 https://api.example.test:8002/behind-proxy-v1 -k --resolve api.example.test:8002:127.0.0.1 --http1.1
captures_stop

echo "2. proxy-v2.pcap (send-proxy-v2: HTTP with TLVs, TLS, a LOCAL health check, the ztunnel-like sender)"
capture_start $SRV "$HERE/proxy-v2.pcap" $SRV; sleep 1
get 40611 http://127.0.0.1:8011/behind-proxy-v2
get 40612 https://api.example.test:8012/behind-proxy-v2 -k --resolve api.example.test:8012:127.0.0.1 --http1.1
# Health checks with the PROXY header (HAProxy sends v2 LOCAL for them): a third HAProxy,
# stopped after its first check.
cat > "$WORK/checker.cfg" <<EOF
defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
  timeout check 2s
frontend unused
  bind 127.0.0.1:8099
  default_backend checked
backend checked
  option httpchk GET /health
  server s $S4:9080 check check-send-proxy send-proxy-v2 inter 30s source $C4:40713
EOF
bg $CLI haproxy -db -f "$WORK/checker.cfg" >"$WORK/checker.log" 2>&1
CHECKER=$BG
for _ in $(seq 100); do grep -q 'GET /health' "$WORK/http.log" && break; sleep 0.05; done
sleep 0.5
kill "$CHECKER"; wait "$CHECKER" 2>/dev/null || true
# The ztunnel-like sender, its header split over two segments, to a receiver that reassembles it.
bg $SRV $PY "$HERE/tools/proxypeer.py" serve $S4 9081 "$WORK/www" 2>"$WORK/proxypeer.log"
PEER=$BG
listening $SRV 9081
in_cli $PY "$HERE/tools/proxypeer.py" send $S4 9081 --sport 40714
wait "$PEER"
sleep 0.5
captures_stop
echo "receiver http.server log:"; sed 's/^/    /' "$WORK/http.log"

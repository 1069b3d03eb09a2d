#!/usr/bin/env bash
# Regenerates the HTTP/2 cleartext and gRPC captures (h2c-*.pcap, grpc-*.pcap, istio-grpc-*.pcap)
# from real stacks talking between network namespaces this script creates and removes:
# nghttp2 1.52 (`nghttp` client, `nghttpd --no-tls` server), curl 7.88.1 (libcurl + nghttp2),
# python3-grpcio 1.51 (gRPC core, its own HTTP/2 and HPACK), python3-h2 4.1 / python3-hpack 4.0
# (tools/h2peer.py: the mid-connection client and the Istio sidecar stand-ins). Ground truth for
# every file: captures/h2.md.
# Run as root on Debian: sudo captures/make-h2.sh [SET...]
#   SET = nghttp curl grpc midstream mesh deadline (default: all)
# Needs tcpdump, iproute2, ethtool, iptables, util-linux setpriv, nghttp2-client, nghttp2-server,
# curl, and Debian's /usr/bin/python3 with python3-grpcio, python3-h2, python3-hpack and
# python3-cryptography (a pyenv `python3` on PATH has none of them; the mesh proxies also run as
# uid 1337, which cannot use an interpreter under /root). tshark only to check (captures/h2.md).
# Traffic never leaves the namespaces.
#
#   tsp-h2-c  client: veth tsp-h2-c 10.93.0.2/24     tsp-h2-s  server: veth tsp-h2-s 10.93.0.1/24
#   No IPv6, static neighbours (no ARP), TSO/GSO/GRO off; tcpdump on tsp-h2-s, filter `tcp`.
#   mesh: two pods under Istio's real nat rules, as captures/make-istio-iptables.sh builds them
#   (tsp-h2m-c 10.244.1.5, tsp-h2m-s 10.244.2.7; service reviews 10.96.120.15:9080).
#
# Fixed client source ports (curl --local-port; nghttp and gRPC have no option for it, so the
# client namespace's ip_local_port_range is narrowed to the one port they must use):
#   h2c-nghttp-streams.pcap       41001 nghttp -> nghttpd :8080
#   h2c-nghttp-continuation.pcap  41011 nghttp -> nghttpd :8080
#   h2c-nghttp-padded-push.pcap   41021 nghttp -> nghttpd :8081 (-b 24 / -b 40, push, trailer)
#   h2c-nghttp-hpack-evict.pcap   41031 nghttp -c 200, 41032 nghttp -c 0 -c 200 -> nghttpd -c 200 :8082
#   h2c-curl.pcap                 41041 curl --http2 (Upgrade) -> nghttpd :8080,
#                                 41042 curl --http2-prior-knowledge -> :8080 (POST),
#                                 41043 nghttp -u (nghttp's own Upgrade) -> :8080
#   grpc-unary.pcap               41101 grpcpeer.py client -> grpcpeer.py server :50051
#   grpc-streaming.pcap           41111 -> :50051
#   grpc-midstream.pcap           41121 -> :50051 (capture started after the 3rd of 8 calls)
#   grpc-deadline.pcap            41141 -> :50051 (a call cancelled by its deadline: RST_STREAM)
#   h2c-midstream.pcap            41131 h2peer.py client -> nghttpd :8080 (after the 3rd of 10)
#   istio-grpc-{inbound,outbound}-any.pcap  45050 app -> ClusterIP, 52150 sidecar mTLS, 38450 inbound leg
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PY=/usr/bin/python3                     # Debian's python3 (python3-grpcio, python3-h2 live there)
GRPC="$PY $HERE/tools/grpcpeer.py"
H2PEER="$PY $HERE/tools/h2peer.py"
PKI=$HERE/pki
CLI=tsp-h2-c SRV=tsp-h2-s
S4=10.93.0.1 C4=10.93.0.2
MCLI=tsp-h2m-c MSRV=tsp-h2m-s
SETS=${*:-nghttp curl grpc midstream mesh deadline}
WORK=$(mktemp -d /tmp/tsp-h2.XXXXXX)
chmod 755 "$WORK"

. tools/lib.sh
NETNS=($CLI $SRV $MCLI $MSRV)
lib_traps

for tool in nghttp nghttpd curl tcpdump ethtool iptables-restore setpriv; do
  command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
$PY -c 'import grpc, h2, hpack, cryptography' || {
  echo "Debian's $PY needs python3-grpcio python3-h2 python3-hpack python3-cryptography" >&2; exit 1; }

veth_pair $CLI $SRV $C4 $S4
sleep 1

in_cli() { ip netns exec $CLI "$@"; }
want() { [[ " $SETS " == *" $1 "* ]]; }

# start_capture FILE [tcpdump args...]: TCP only, server side of the veth pair. stop_capture ends
# every running capture and fails the run if tcpdump reports a kernel drop.
start_capture() { local out=$1; shift; capture_start $SRV "$HERE/$out" $SRV "$@"; sleep 1; }
stop_capture() { captures_stop; }
# serve NS PORT CMD...: starts a server in namespace NS (SERVER = its pid; its output goes to
# SLOG) and waits until it listens on PORT.
SLOG=$WORK/servers.log
serve() {
  local ns=$1 port=$2; shift 2
  echo "== $*" >> "$SLOG"
  ip netns exec $ns "$@" >>"$SLOG" 2>&1 & SERVER=$!; PIDS+=($SERVER)
  for _ in $(seq 100); do
    ip netns exec $ns ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  echo "server did not start: $*" >&2; tail -5 "$SLOG" >&2; exit 1
}
# finish [PID]: stops the server (SERVER by default) by its pid and waits for it.
finish() {
  local p=${1:-$SERVER}
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  sleep 0.3
}
# with_port PORT CMD...: runs CMD in the client namespace with PORT as its only ephemeral port.
with_port() {
  local port=$1; shift
  in_cli sysctl -qw net.ipv4.ip_local_port_range="$port $port"
  in_cli "$@"
  in_cli sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
}
# show: indents a client's output into the script's log; nshow: the per-stream rows of `nghttp -s`.
show() { sed 's/^/    /'; }
nshow() { grep -E -v '^ *(\*\*|Request timing|[a-zA-Z]+: |see |sorted |inflation|relative|pushed|given|URI|$)' | sed 's/^/    /' || true; }

# Documents nghttpd serves (same bytes at every run: fixed text, no randomness).
DOCS=$WORK/htdocs
mkdir -p "$DOCS"
gen_doc() {    # gen_doc FILE LINES TAG: LINES numbered 64-byte lines
  awk -v n="$2" -v t="$3" 'BEGIN { for (i = 1; i <= n; i++) printf "%s line %05d %s\n", t, i, substr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", 1, 64 - 18 - length(t)) }' > "$DOCS/$1"
}
gen_doc reviews.json 400 reviews        # 25,600 bytes
gen_doc ratings.json 400 ratings        # 25,600 bytes
gen_doc details.json 400 details        # 25,600 bytes
printf '<!doctype html><title>productpage</title><link rel=stylesheet href=/style.css><script src=/app.js></script>\n' > "$DOCS/index.html"
printf 'body { font-family: sans-serif }\n' > "$DOCS/style.css"
printf 'console.log("bookinfo")\n' > "$DOCS/app.js"
printf '{"status":"ok"}\n' > "$DOCS/health"
chmod -R a+rX "$DOCS"
NGHTTPD="nghttpd --no-tls -d $DOCS -a $S4"

if want nghttp; then
  echo "1. h2c-nghttp-streams (nghttp, 4 concurrent streams with weights, DATA interleaved)"
  start_capture h2c-nghttp-streams.pcap
  serve $SRV 8080 $NGHTTPD 8080
  with_port 41001 nghttp -n -s -p 64 -p 16 -p 32 -p 8 \
    http://$S4:8080/reviews.json http://$S4:8080/ratings.json http://$S4:8080/details.json \
    http://$S4:8080/health | nshow
  stop_capture
  finish

  echo "2. h2c-nghttp-continuation (nghttp --continuation: a 24 KiB header block -> CONTINUATION)"
  start_capture h2c-nghttp-continuation.pcap
  serve $SRV 8080 $NGHTTPD 8080
  with_port 41011 nghttp -n -s --continuation -H 'x-request-id: h2c-continuation-1' \
    http://$S4:8080/health | nshow
  stop_capture
  finish

  echo "3. h2c-nghttp-padded-push (nghttp -b 24, nghttpd -b 40: padded HEADERS/DATA/PUSH_PROMISE; push; trailer)"
  start_capture h2c-nghttp-padded-push.pcap
  serve $SRV 8081 $NGHTTPD -b 40 -p /index.html=/style.css,/app.js --trailer 'x-checksum: 5f3e9a' 8081
  with_port 41021 nghttp -n -s -b 24 -H 'authorization: Bearer h2c-secret-token-0042' \
    http://$S4:8081/index.html | nshow
  stop_capture
  finish

  echo "4. h2c-nghttp-hpack-evict (200-byte header tables both ways: evictions; then a client that"
  echo "   announces 0 then 200: the server's first block starts with two table size updates)"
  start_capture h2c-nghttp-hpack-evict.pcap
  serve $SRV 8082 $NGHTTPD -c 200 8082
  EVICT_H=(-H 'x-tenant: tenant-0123456789abcdefghijklmnopqrstuvwxyz'
           -H 'x-session: session-0123456789abcdefghijklmnopqrstuvwxyz')
  with_port 41031 nghttp -n -s -c 200 --no-dep -m 3 "${EVICT_H[@]}" \
    http://$S4:8082/health http://$S4:8082/style.css | nshow
  sleep 0.3
  with_port 41032 nghttp -n -s -c 0 -c 200 --no-dep -m 2 "${EVICT_H[@]}" \
    http://$S4:8082/health http://$S4:8082/style.css | nshow
  stop_capture
  finish
fi

if want curl; then
  echo "5. h2c-curl (curl --http2 and nghttp -u: Upgrade via nghttpx; curl --http2-prior-knowledge POST)"
  # nghttpd answers only prior knowledge; nghttpx (nghttp2's reverse proxy) takes the Upgrade on
  # :8083 and forwards to nghttpd over h2c inside the server namespace (lo, not recorded).
  start_capture h2c-curl.pcap
  serve $SRV 8080 $NGHTTPD 8080; NGD=$SERVER
  serve $SRV 8083 nghttpx --conf=/dev/null -f "$S4,8083;no-tls" -b "$S4,8080;;proto=h2" -n 1 \
    --errorlog-file="$WORK/nghttpx.log" --accesslog-file="$WORK/nghttpx-access.log"
  in_cli curl -sS --local-port 41041 --http2 -H 'x-request-id: h2c-curl-upgrade' \
    -o /dev/null -w '    curl --http2: HTTP/%{http_version} %{http_code}\n' http://$S4:8083/reviews.json
  sleep 0.3
  in_cli curl -sS --local-port 41042 --http2-prior-knowledge -H 'x-request-id: h2c-curl-pk' \
    -H 'authorization: Basic YWxpY2U6czNjcjN0' -H 'cookie: session=h2c-c00k1e-77' \
    -H 'content-type: application/json' -d '{"stars":5}' \
    -o /dev/null -w '    curl --http2-prior-knowledge: HTTP/%{http_version} %{http_code}\n' http://$S4:8080/health
  sleep 0.3
  with_port 41043 nghttp -n -s -u http://$S4:8083/style.css | nshow
  stop_capture
  finish
  finish $NGD
fi

if want grpc; then
  echo "6. grpc-unary (python3-grpcio: OK with authorization metadata, UNAVAILABLE trailers-only, OK)"
  serve $SRV 50051 $GRPC server $S4 50051
  start_capture grpc-unary.pcap
  with_port 41101 $GRPC client $S4:50051 unary | show
  stop_capture

  echo "7. grpc-streaming (server streaming gzip OK; streaming RESOURCE_EXHAUSTED after 5 messages)"
  start_capture grpc-streaming.pcap
  with_port 41111 $GRPC client $S4:50051 streaming | show
  stop_capture
  finish
fi

if want deadline; then
  echo "11. grpc-deadline (a call whose 0.3 s deadline passes: the client resets the stream; then one OK)"
  serve $SRV 50051 $GRPC server $S4 50051
  start_capture grpc-deadline.pcap
  with_port 41141 $GRPC client $S4:50051 deadline | show
  stop_capture
  finish
fi

if want midstream; then
  echo "8. grpc-midstream (8 unary calls 0.6 s apart on one connection; capture starts after call 3)"
  serve $SRV 50051 $GRPC server $S4 50051
  in_cli sysctl -qw net.ipv4.ip_local_port_range="41121 41121"
  in_cli $GRPC client $S4:50051 series --calls 8 --pause 0.6 > "$WORK/series.out" & CLIENT=$!; PIDS+=($CLIENT)
  sleep 1.5                                    # calls 1..3 at 0, 0.6, 1.2 s
  start_capture grpc-midstream.pcap            # (sleeps 1 s: call 4 is at 1.8 s, after tcpdump)
  wait $CLIENT; show < "$WORK/series.out"
  in_cli sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
  stop_capture
  finish

  echo "9. h2c-midstream (h2peer.py client: 10 GETs 0.6 s apart to nghttpd; capture starts after GET 3)"
  serve $SRV 8080 $NGHTTPD 8080
  in_cli sysctl -qw net.ipv4.ip_local_port_range="41131 41131"
  in_cli $H2PEER client $S4 8080 --requests 10 --pause 0.6 > "$WORK/h2mid.out" 2>&1 & CLIENT=$!; PIDS+=($CLIENT)
  sleep 1.5
  start_capture h2c-midstream.pcap
  wait $CLIENT; show < "$WORK/h2mid.out"
  in_cli sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
  stop_capture
  finish
fi

if want mesh; then
  echo "10. istio-grpc-inbound-any + istio-grpc-outbound-any (gRPC through two sidecars under Istio's nat rules)"
  # The pods of captures/make-istio-iptables.sh (same addresses, same nat rules, same uid 1337
  # mechanics; its header gives the source of every rule), with a gRPC app on both ends and
  # tools/h2peer.py as the two Envoys:
  #   tsp-h2m-c  productpage-v1 10.244.1.5: app = grpcpeer.py client (uid 1000) dialling the
  #              ClusterIP 10.96.120.15:9080 from :45050 (REDIRECTed to 15001), outbound proxy
  #              (uid 1337) -> mTLS from 10.244.1.5:52150 to 10.244.2.7:9080
  #   tsp-h2m-s  reviews-v2 10.244.2.7: inbound proxy (uid 1337) on 15006 (the mTLS connection is
  #              REDIRECTed there), h2c from 127.0.0.6:38450 to 10.244.2.7:9080 (lo), app =
  #              grpcpeer.py server on 0.0.0.0:9080 (uid 1000)
  # ALPN: the client sidecar offers Istio's HTTP/2 override (istio-peer-exchange, istio-h2,
  # istio); the server sidecar's list is Istio's downstream one (istio-peer-exchange, h2,
  # http/1.1); OpenSSL selects istio-peer-exchange, and both speak HTTP/2 inside, as Envoy does.
  C4M=10.244.1.5 CGW=10.244.1.1 S4M=10.244.2.7 SGW=10.244.2.1 VIP=10.96.120.15
  AS_PROXY="setpriv --reuid 1337 --regid 1337 --clear-groups"
  AS_APP="setpriv --reuid 1000 --regid 1000 --clear-groups"
  ip netns add $MCLI
  ip netns add $MSRV
  for ns in $MCLI $MSRV; do
    ip netns exec $ns sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
    ip -n $ns link set lo up
  done
  ip link add tsp-h2m-c0 netns $MCLI type veth peer name tsp-h2m-s0 netns $MSRV
  ip -n $MCLI link set tsp-h2m-c0 name eth0
  ip -n $MSRV link set tsp-h2m-s0 name eth0
  ip -n $MCLI addr add $C4M/24 dev eth0
  ip -n $MSRV addr add $S4M/24 dev eth0
  ip -n $MCLI link set eth0 up
  ip -n $MSRV link set eth0 up
  for ns in $MCLI $MSRV; do ip netns exec $ns ethtool -K eth0 tso off gso off gro off >/dev/null; done
  ip -n $MCLI route add default via $CGW dev eth0
  ip -n $MSRV route add default via $SGW dev eth0
  CMACM=$(ip -n $MCLI -br link show eth0 | awk '{print $3}')
  SMACM=$(ip -n $MSRV -br link show eth0 | awk '{print $3}')
  ip -n $MCLI neigh replace $CGW lladdr "$SMACM" dev eth0 nud permanent
  ip -n $MSRV neigh replace $SGW lladdr "$CMACM" dev eth0 nud permanent
  for ns in $MCLI $MSRV; do
    istio_iptables $ns
  done
  sleep 1
  capture_start $MSRV "$HERE/istio-grpc-inbound-any.pcap" any -y LINUX_SLL2
  capture_start $MCLI "$HERE/istio-grpc-outbound-any.pcap" any -y LINUX_SLL2
  sleep 1
  serve $MSRV 9080 $AS_APP $GRPC server 0.0.0.0 9080; APP=$SERVER
  serve $MSRV 15006 $AS_PROXY $H2PEER inbound --pod-ip $S4M --cert $PKI/reviews.crt \
    --key $PKI/reviews.key --ca $PKI/ca.crt --app-sport 38450 --meta reviews-v2; IN=$SERVER
  serve $MCLI 15001 $AS_PROXY $H2PEER outbound --pod-ip $C4M --route $VIP:9080=reviews@$S4M:9080 \
    --sport 52150 --cert $PKI/productpage.crt --key $PKI/productpage.key --ca $PKI/ca.crt \
    --meta productpage-v1; OUT=$SERVER
  ip netns exec $MCLI sysctl -qw net.ipv4.ip_local_port_range="45050 45050"
  ip netns exec $MCLI $AS_APP $GRPC client $VIP:9080 mesh --authority reviews:9080 | show
  ip netns exec $MCLI sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
  # The proxies exit once the app's connection is gone (the outbound one closes its mTLS side).
  for _ in $(seq 50); do kill -0 $OUT 2>/dev/null || kill -0 $IN 2>/dev/null || break; sleep 0.1; done
  captures_stop
  finish $OUT; finish $IN; finish $APP
  grep -E '^(inbound|outbound|relay)' "$SLOG" | sed 's/^/    /'
  for ns in $MCLI $MSRV; do
    echo "   $ns nat counters:"
    ip netns exec "$ns" iptables -t nat -L -v -n -x | awk '$1 ~ /^[0-9]+$/ && $1 > 0 {print "     " $0}'
  done
fi

FILES=$(ls h2c-nghttp-*.pcap h2c-curl.pcap h2c-midstream.pcap grpc-*.pcap istio-grpc-*.pcap 2>/dev/null || true)
[ -z "$FILES" ] || { chown --reference=. $FILES; chmod 644 $FILES; ls -l $FILES; }

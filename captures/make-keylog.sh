#!/usr/bin/env bash
# Regenerates the key-log captures captures/keylog-{tls12,tls13,python,h2}.pcap, their NSS key logs
# (keylog-*.keys, the clients' SSLKEYLOGFILE output) and the key-log variants keylog-partial.keys,
# keylog-wrong.keys and keylog-crlf.keys, from real stacks talking between two network namespaces
# this script creates and removes: OpenSSL 3.0 s_server/s_client, Python 3.11 ssl (OpenSSL 3.0),
# python3-h2 4.1, curl 7.88 (OpenSSL + nghttp2), nghttpd 1.52 and python3-grpcio 1.51.
# Every connection is listed in captures/keylog.md; its ground truth is what tshark decrypts with
# the key log (scripts/keylog-check.py --tshark-only).
# Run as root on Debian:
#   sudo captures/make-keylog.sh
# Needs tcpdump, iproute2, ethtool, openssl, curl, nghttp2-server, Debian's /usr/bin/python3 with
# python3-h2, python3-grpcio and python3-cryptography, and tshark (variants and the final check).
# Traffic never leaves the namespaces tsp-kl-c (10.91.0.2) and tsp-kl-s (10.91.0.1).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
T=$HERE/tools/keylog
PKI=$HERE/pki
CLI=tsp-kl-c SRV=tsp-kl-s
S4=10.91.0.1 C4=10.91.0.2 PORT=8443
PY=/usr/bin/python3
KP="$PY $T/kpeer.py"
WORK=$(mktemp -d /tmp/tsp-kl.XXXXXX)
chmod 755 "$WORK"

. tools/lib.sh
NETNS=($CLI $SRV)
lib_traps

for tool in openssl curl nghttpd tcpdump ethtool tshark; do
  command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
$PY -c 'import h2, grpc, cryptography' || { echo "missing python3-h2 / python3-grpcio / python3-cryptography" >&2; exit 1; }

veth_pair $CLI $SRV $C4 $S4
in_cli() { ip netns exec $CLI "$@"; }
in_srv() { ip netns exec $SRV "$@"; }

# serve PORT CMD...: starts a server in the server namespace and waits until it listens on PORT.
serve() {
  local port=$1; shift
  ip netns exec $SRV "$@" & SERVER=$!; PIDS+=($SERVER)   # ip netns exec execs: $! is the server
  for _ in $(seq 200); do
    in_srv ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  echo "server did not start: $*" >&2; exit 1
}
done_case() { wait "$SERVER"; sleep 0.3; }   # the server exits after its connection(s)
record() { capture_start $SRV "$HERE/$1" $SRV; sleep 1; }

# PKI (captures/pki, shared with the other sets): mesh root ca.crt ("cluster.local root", ECDSA);
# servers reviews.crt (ECDSA P-256, URI SAN spiffe://cluster.local/ns/default/sa/reviews, DNS
# reviews.default.svc.cluster.local) and api.crt (RSA-2048, DNS api.example.test); client
# productpage.crt (ECDSA P-256, URI SAN spiffe://cluster.local/ns/default/sa/productpage).
CA=$PKI/ca.crt
ECRT=$PKI/reviews.crt EKEY=$PKI/reviews.key
RCRT=$PKI/api.crt RKEY=$PKI/api.key
CCRT=$PKI/productpage.crt CKEY=$PKI/productpage.key
MESH_SNI=outbound_.9080_._.reviews.default.svc.cluster.local
TOKEN="Bearer eyJhbGciOiJIUzI1NiJ9.a2V5bG9nLXRlc3Q.c2lnbmF0dXJl"   # fake: the redaction test

# ---------------------------------------------------------------------------------------------
# OpenSSL s_server -HTTP answers "GET /NAME" with the file $WORK/www/NAME (a whole HTTP/1.1
# response, Connection: close), then close_notify; s_client -quiet sends the request from stdin.
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/www"
page() {
  local body="keylog ok /$1"
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' \
    $((${#body} + 1)) "$body" > "$WORK/www/$1"
}
# oserve N [s_server options]: one s_server -HTTP for N connections.
oserve() {
  local n=$1; shift
  serve $PORT bash -c 'cd "$0" && exec openssl s_server -quiet -verify_quiet -accept '$PORT' -naccept '$n' "$@"' \
    "$WORK/www" -HTTP "$@"
}
# oclient SPORT NAME [s_client options]: GET /NAME from source port SPORT, key log $K.
oclient() {
  local sport=$1 name=$2; shift 2
  page "$name"
  printf 'GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n' "$name" "$MESH_SNI" |
    in_cli openssl s_client -quiet -connect $S4:$PORT -bind $C4:$sport -servername $MESH_SNI \
      -CAfile "$CA" -verify_return_error -verify_quiet -keylogfile "$K" "$@" >/dev/null
}
ECS=(-cert "$ECRT" -key "$EKEY")
RSAS=(-cert "$RCRT" -key "$RKEY")
REQUIRE=(-Verify 1 -CAfile "$CA" -verify_return_error)
OPTIONAL=(-verify 1 -CAfile "$CA")
CLIENT=(-cert "$CCRT" -key "$CKEY")

echo "1. TLS 1.2, OpenSSL s_server / s_client (client ports 51001-51013, 51080)"
K=$HERE/keylog-tls12.keys; rm -f "$K"
record keylog-tls12.pcap
o12() { oserve 1 -tls1_2 "$@"; }
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-AES128-GCM-SHA256
oclient 51001 k12-ecdhe-ecdsa-aes128gcm -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256; done_case
o12 "${RSAS[@]}" -cipher ECDHE-RSA-AES128-GCM-SHA256
oclient 51002 k12-ecdhe-rsa-aes128gcm -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256; done_case
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-AES256-GCM-SHA384
oclient 51003 k12-ecdhe-ecdsa-aes256gcm -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384; done_case
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-CHACHA20-POLY1305
oclient 51004 k12-ecdhe-ecdsa-chacha20 -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305; done_case
o12 "${RSAS[@]}" -cipher AES128-GCM-SHA256
oclient 51005 k12-rsa-aes128gcm -tls1_2 -cipher AES128-GCM-SHA256; done_case
o12 "${RSAS[@]}" -cipher AES256-GCM-SHA384
oclient 51006 k12-rsa-aes256gcm -tls1_2 -cipher AES256-GCM-SHA384; done_case
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-AES128-SHA256
oclient 51007 k12-ecdhe-ecdsa-aes128cbc -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256; done_case
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "${REQUIRE[@]}" -alpn istio-http/1.1,http/1.1
oclient 51008 k12-mtls-spiffe -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "${CLIENT[@]}" \
  -alpn istio-peer-exchange,istio-http/1.1,istio; done_case
o12 "${ECS[@]}" -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "${OPTIONAL[@]}"
oclient 51009 k12-empty-client-cert -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256; done_case
o12 "${RSAS[@]}" -cipher ECDHE-RSA-CHACHA20-POLY1305 "${REQUIRE[@]}"
oclient 51010 k12-ecdhe-rsa-chacha20-mtls -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305 "${CLIENT[@]}"; done_case
# Resumption: ticket (51080 full handshake, 51011 resumed), session id (51081 full with the
# server's tickets off, 51012 resumed).
oserve 2 -tls1_2 "${ECS[@]}" -cipher ECDHE-ECDSA-AES128-GCM-SHA256
oclient 51080 k12-ticket-full -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -sess_out "$WORK/t12.sess"
oclient 51011 k12-ticket-resumed -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -sess_in "$WORK/t12.sess"; done_case
oserve 2 -tls1_2 "${ECS[@]}" -cipher ECDHE-ECDSA-AES256-GCM-SHA384 -no_ticket
oclient 51081 k12-sessid-full -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384 -sess_out "$WORK/s12.sess"
oclient 51012 k12-sessid-resumed -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384 -sess_in "$WORK/s12.sess"; done_case
captures_stop

echo "2. TLS 1.3, OpenSSL s_server / s_client (client ports 52001-52010, 52080)"
K=$HERE/keylog-tls13.keys; rm -f "$K"
record keylog-tls13.pcap
o13() { oserve 1 -tls1_3 "$@"; }
o13 "${ECS[@]}" -ciphersuites TLS_AES_128_GCM_SHA256
oclient 52001 k13-aes128gcm -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256; done_case
o13 "${ECS[@]}" -ciphersuites TLS_AES_256_GCM_SHA384
oclient 52002 k13-aes256gcm -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384; done_case
o13 "${ECS[@]}" -ciphersuites TLS_CHACHA20_POLY1305_SHA256
oclient 52003 k13-chacha20 -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256; done_case
o13 "${ECS[@]}" -ciphersuites TLS_AES_128_GCM_SHA256 "${REQUIRE[@]}" -alpn istio-http/1.1,http/1.1
oclient 52004 k13-mtls-spiffe -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 "${CLIENT[@]}" \
  -alpn istio-peer-exchange,istio-http/1.1,istio; done_case
o13 "${ECS[@]}" -ciphersuites TLS_AES_256_GCM_SHA384 "${OPTIONAL[@]}"
oclient 52005 k13-empty-client-cert -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384; done_case
o13 "${ECS[@]}" -ciphersuites TLS_AES_128_GCM_SHA256 -groups P-256 "${REQUIRE[@]}"
oclient 52006 k13-hrr-mtls -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 -groups X25519:P-256 "${CLIENT[@]}"; done_case
oserve 2 -tls1_3 "${ECS[@]}" -ciphersuites TLS_AES_128_GCM_SHA256 "${REQUIRE[@]}"
oclient 52080 k13-psk-full -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 "${CLIENT[@]}" -sess_out "$WORK/t13.sess"
oclient 52007 k13-psk-resumed -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 "${CLIENT[@]}" -sess_in "$WORK/t13.sess"; done_case
o13 "${RSAS[@]}" -ciphersuites TLS_AES_256_GCM_SHA384
oclient 52010 k13-rsa-server -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384; done_case

# KeyUpdate (52008) and early data (52009, resuming 52008's session). s_server -early_data works
# only in its echo mode (not -HTTP): its stdin is the script below, which writes the HTTP responses
# and a `K` (KeyUpdate, update_requested) at fixed times; s_client (not -quiet, so that its
# `k` command works: KeyUpdate, update_not_requested) reads its requests from a timed stdin too and
# closes (close_notify) at the end of its stdin. Timeline in seconds from the server's start.
resp() { printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s\n' $((${#1} + 11)) "keylog ok $1"; }
get() { printf 'GET %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$MESH_SNI"; }
mkfifo "$WORK/srv.fifo"
# The timed writer of the server's stdin starts first (t = 0): bash opens the fifo for the server.
( sleep 1.5; resp /k13-keyupdate-1; sleep 0.5; echo K; sleep 1.5; resp /k13-keyupdate-2
  sleep 3.0; resp /k13-early-data; sleep 0.5; resp /k13-after-early-data; sleep 4 ) > "$WORK/srv.fifo" &
PIDS+=($!)
serve $PORT bash -c 'exec openssl s_server -accept '$PORT' -naccept 2 -tls1_3 -cert "$0" -key "$1" -early_data \
  -ciphersuites TLS_AES_128_GCM_SHA256 < "$2" > "$3" 2>&1' "$ECRT" "$EKEY" "$WORK/srv.fifo" "$WORK/ku-server.log"
sleep 0.3
{ get /k13-keyupdate-1; sleep 2.2; echo k; sleep 0.3; get /k13-keyupdate-2; sleep 1.7; } |
  in_cli openssl s_client -connect $S4:$PORT -bind $C4:52008 -servername $MESH_SNI -tls1_3 \
    -ciphersuites TLS_AES_128_GCM_SHA256 -CAfile "$CA" -verify_return_error -keylogfile "$K" \
    -sess_out "$WORK/ed.sess" > "$WORK/ku-client.log" 2>&1
sleep 0.7                           # t = 5.0
get /k13-early-data > "$WORK/early.txt"
{ sleep 0.5; get /k13-after-early-data; sleep 2.5; } |
  in_cli openssl s_client -connect $S4:$PORT -bind $C4:52009 -servername $MESH_SNI -tls1_3 \
    -ciphersuites TLS_AES_128_GCM_SHA256 -CAfile "$CA" -verify_return_error -keylogfile "$K" \
    -sess_in "$WORK/ed.sess" -early_data "$WORK/early.txt" > "$WORK/ed-client.log" 2>&1
done_case
grep -q '^KEYUPDATE' "$WORK/ku-client.log" || { echo "52008: no KeyUpdate" >&2; exit 1; }
grep -q 'Early data was accepted' "$WORK/ed-client.log" || { echo "52009: early data not accepted" >&2; exit 1; }
captures_stop

echo "3. Python ssl, HTTP/1.1 keep-alive, ALPN istio-http/1.1 (client ports 53001-53003)"
K=$HERE/keylog-python.keys; rm -f "$K"
record keylog-python.pcap
pserve() { serve $PORT $KP h1server $PORT "$ECRT" "$EKEY" --ca "$CA" "$@"; }
pclient() { in_cli env SSLKEYLOGFILE="$K" $KP h1client $S4 $PORT --sni $MESH_SNI --ca "$CA" "$@"; done_case; }
ISTIO_ALPN=istio-peer-exchange,istio-http/1.1,istio
pserve --tls 1.3 --auth require --alpn istio-http/1.1,http/1.1
pclient --tls 1.3 --cert "$CCRT" --key "$CKEY" --alpn $ISTIO_ALPN --authz "$TOKEN" \
  --conn 53001:/productpage/reviews/0,/productpage/reviews/1
pserve --tls 1.2 --auth require --alpn istio-http/1.1,http/1.1
pclient --tls 1.2 --cipher ECDHE-ECDSA-AES256-GCM-SHA384 --cert "$CCRT" --key "$CKEY" --alpn $ISTIO_ALPN \
  --authz "$TOKEN" --conn 53002:/reviews/1,/reviews/2
pserve --tls 1.2 --alpn http/1.1
pclient --tls 1.2 --cipher ECDHE-ECDSA-CHACHA20-POLY1305 --alpn http/1.1 \
  --conn 53003:/static/a.css,/static/b.js,/static/c.png
captures_stop

echo "4. HTTP/2 inside TLS: curl -> nghttpd, python-h2 istio-h2, gRPC (client ports 54001-54005)"
K=$HERE/keylog-h2.keys; rm -f "$K"
mkdir -p "$WORK/h2root/api"
echo "keylog h2 index" > "$WORK/h2root/index.html"
echo "body { color: black }" > "$WORK/h2root/style.css"
echo '{"reviews": []}' > "$WORK/h2root/api/reviews"
H2P=8444 GP=50051
record keylog-h2.pcap
CURL=(curl -sS -o /dev/null --cacert "$CA" --resolve "reviews.default.svc.cluster.local:$H2P:$S4"
      --resolve "reviews.default.svc.cluster.local:$GP:$S4")
ncurl() { in_cli env SSLKEYLOGFILE="$K" "${CURL[@]}" "$@"; }
serve $H2P nghttpd -d "$WORK/h2root" $H2P "$EKEY" "$ECRT"
NGHTTPD=$SERVER
ncurl --http2 --tlsv1.3 --local-port 54001 -H "authorization: $TOKEN" \
  https://reviews.default.svc.cluster.local:$H2P/index.html -o /dev/null \
  https://reviews.default.svc.cluster.local:$H2P/api/reviews
ncurl --http2 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 --local-port 54002 \
  https://reviews.default.svc.cluster.local:$H2P/style.css
kill $NGHTTPD; wait $NGHTTPD 2>/dev/null || true
serve $H2P $KP h2server $H2P "$ECRT" "$EKEY" --ca "$CA" --auth require --tls 1.3 --alpn istio-h2,h2
in_cli env SSLKEYLOGFILE="$K" $KP h2client $S4 $H2P --sni $MESH_SNI --ca "$CA" --cert "$CCRT" --key "$CKEY" \
  --alpn istio-peer-exchange,istio-h2,istio --sport 54003 --paths /ratings/1,/ratings/2 --authz "$TOKEN"
done_case
serve $H2P $KP h2server $H2P "$ECRT" "$EKEY" --tls 1.2 --alpn h2
in_cli env SSLKEYLOGFILE="$K" $KP h2client $S4 $H2P --sni $MESH_SNI --ca "$CA" --tls 1.2 \
  --cipher ECDHE-ECDSA-CHACHA20-POLY1305 --alpn h2 --sport 54004 --paths /details/0
done_case
# gRPC over TLS: python3-grpcio's server (gRPC core + BoringSSL, which has no key-log setting in
# Python) and curl as the client, whose key log holds both directions' secrets.
serve $GP $KP grpcserver 0.0.0.0 $GP "$ECRT" "$EKEY"
GRPCD=$SERVER
printf '\x00\x00\x00\x00\x02\x08\x01' > "$WORK/get-review-1.bin"   # GetReview(ReviewRequest{1: 1})
ncurl --http2 --local-port 54005 -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: $TOKEN" --data-binary @"$WORK/get-review-1.bin" \
  https://reviews.default.svc.cluster.local:$GP/reviews.Reviews/GetReview
kill $GRPCD; wait $GRPCD 2>/dev/null || true
captures_stop

chown --reference=. keylog-*.pcap keylog-*.keys
chmod 644 keylog-*.pcap keylog-*.keys

echo "5. key-log variants (keylog-partial.keys, keylog-wrong.keys, keylog-crlf.keys)"
$PY "$T/variants.py" "$HERE"
chown --reference=. keylog-*.keys
chmod 644 keylog-*.keys

echo "6. ground truth (tshark with the key logs): checked, and written to keylog.md"
CHECK="$HERE/../scripts/keylog-check.py"
python3 "$CHECK" --tshark-only --check-made > "$WORK/truth-all.md"
runs=()
for s in tls12 tls13 python h2; do runs+=("$HERE/keylog-$s.pcap:$HERE/keylog-$s.keys"); done
for s in tls12 tls13; do
  runs+=("$HERE/keylog-$s.pcap:$HERE/keylog-partial.keys" "$HERE/keylog-$s.pcap:$HERE/keylog-wrong.keys")
done
python3 "$CHECK" --tshark-only "${runs[@]}" > "$WORK/truth.md"
python3 - "$WORK/truth.md" "$HERE/keylog.md" <<'PY'
import sys
table, md = open(sys.argv[1]).read(), sys.argv[2]
text = open(md).read()
head, rest = text.split("<!-- truth:begin -->\n", 1)
_, tail = rest.split("<!-- truth:end -->", 1)
open(md, "w").write(head + "<!-- truth:begin -->\n" + table.lstrip("\n") + "<!-- truth:end -->" + tail)
PY
ls -l keylog-*.pcap keylog-*.keys

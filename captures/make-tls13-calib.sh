#!/usr/bin/env bash
# Regenerates the TLS 1.3 calibration captures captures/tls13-calib-{openssl,python,go,rustls}.pcap
# (+ .keys, NSS key logs) from real stacks talking between two network namespaces this script
# creates and removes: OpenSSL 3.0 s_server/s_client, Python ssl, Go crypto/tls, rustls.
# Ground truth: captures/tls13-calib.md. Run as root on Debian:
#   sudo captures/make-tls13-calib.sh
# Needs tcpdump, iproute2, ethtool, tshark, openssl, python3 with the cryptography module,
# golang-go (std library only) and cargo (rustls is fetched from crates.io on the first build).
# Traffic never leaves the namespaces tsp-cal-c (10.98.0.2) and tsp-cal-s (10.98.0.1).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
T=$HERE/tools/calib
PKI=$HERE/pki/calib
CLI=tsp-cal-c SRV=tsp-cal-s
S4=10.98.0.1 C4=10.98.0.2 PORT=8443
WORK=$(mktemp -d /tmp/tsp-cal.XXXXXX)
GOPEER=/tmp/tsp-cal-tlspeer
RSTARGET=/tmp/rustls-peer-target
RSPEER=$RSTARGET/release/rustls-peer

PIDS=()   # every background process this script starts (stopped by id in cleanup)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del $CLI 2>/dev/null || true
  ip netns del $SRV 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns del $CLI 2>/dev/null || true
ip netns del $SRV 2>/dev/null || true

echo "0. PKI (only if missing), Go and rustls peers"
python3 "$T/pki.py" "$PKI"
(cd "$WORK" && GO111MODULE=off GOFLAGS= go build -o "$GOPEER" "$T/tlspeer.go")
cargo build --quiet --release --manifest-path "$T/rustls-peer/Cargo.toml" --target-dir "$RSTARGET"

ip netns add $CLI
ip netns add $SRV
ip link add tsp-cal-c netns $CLI type veth peer name tsp-cal-s netns $SRV
for ns in $CLI $SRV; do ip -n $ns link set lo up; done
ip -n $CLI addr add $C4/24 dev tsp-cal-c
ip -n $SRV addr add $S4/24 dev tsp-cal-s
ip -n $CLI link set tsp-cal-c up
ip -n $SRV link set tsp-cal-s up
# One wire segment per packet, as a NIC would show them (no TSO/GSO super-packets).
ip netns exec $CLI ethtool -K tsp-cal-c tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $SRV ethtool -K tsp-cal-s tso off gso off gro off >/dev/null 2>&1 || true
sleep 1

in_cli() { ip netns exec $CLI "$@"; }

TCPDUMP=
start_capture() {   # start_capture FILE: TCP only, server side of the veth pair
  rm -f "$HERE/$1"
  ip netns exec $SRV tcpdump -U --immediate-mode -n -s 0 -i tsp-cal-s -w "$HERE/$1" tcp >/dev/null 2>&1 &
  TCPDUMP=$!; PIDS+=($TCPDUMP)
  sleep 1
}
stop_capture() { sleep 1; kill -INT "$TCPDUMP"; wait "$TCPDUMP" || true; TCPDUMP=; }

# serve CMD...: starts a server in the server namespace and waits until it listens on $PORT.
serve() {
  ip netns exec $SRV "$@" & SERVER=$!; PIDS+=($SERVER)
  for _ in $(seq 100); do
    ip netns exec $SRV ss -Hltn "sport = :$PORT" | grep -q . && return 0
    sleep 0.05
  done
  echo "server did not start: $*" >&2; exit 1
}
done_case() { wait "$SERVER"; sleep 0.3; }   # the server exits after its connection(s)

CA=$PKI/ca.crt SCRT=$PKI/server.crt SKEY=$PKI/server.key
EC="$PKI/client-ecdsa.crt $PKI/client-ecdsa.key" RSA="$PKI/client-rsa.crt $PKI/client-rsa.key"
req() { printf 'GET /%s HTTP/1.1\r\nHost: calib\r\n\r\n' "$1"; }

# ---------------------------------------------------------------------------------------------
# OpenSSL 3.0 CLI. s_server -HTTP answers "GET /case-N" with the file ./case-N, which holds a
# whole HTTP/1.1 response; it then sends close_notify, shuts down its sending side and drains.
# s_client -quiet (implies -ign_eof) sends the request from stdin and exits at close_notify.
# Client ports 41001-41010 (case N = 41000+N); 41080 = case 8's first (full) handshake.
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/www"
for p in case-1 case-2 case-3 case-4 case-5 case-6 case-7 case-8 case-8-full case-9 case-10; do
  body="calib ok /$p"
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' \
    $((${#body} + 1)) "$body" > "$WORK/www/$p"
done
# oserve [s_server options]: one s_server for N connections (-naccept), serving $WORK/www.
oserve() {
  local n=$1; shift
  serve bash -c 'cd "$0" && exec openssl s_server -quiet -verify_quiet -accept '$PORT' -naccept '$n' -tls1_3 \
    -cert '$SCRT' -key '$SKEY' -HTTP "$@"' "$WORK/www" "$@"
}
# oclient SPORT PATH KEYS [s_client options]
oclient() {
  local sport=$1 path=$2 keys=$3; shift 3
  req "$path" | in_cli openssl s_client -quiet -connect $S4:$PORT -bind $C4:$sport -tls1_3 \
    -servername calib.test -CAfile "$CA" -verify_return_error -verify_quiet -keylogfile "$keys" "$@" >/dev/null
}
VERIFY=(-Verify 1 -CAfile "$CA" -verify_return_error)
OPTIONAL=(-verify 1 -CAfile "$CA")
ocert() { echo -cert "$1" -key "$2"; }

echo "1. OpenSSL (s_server / s_client)"
K=$HERE/tls13-calib-openssl.keys; rm -f "$K"
start_capture tls13-calib-openssl.pcap
oserve 1 -ciphersuites TLS_AES_128_GCM_SHA256
oclient 41001 case-1 "$K" -ciphersuites TLS_AES_128_GCM_SHA256; done_case
oserve 1 -ciphersuites TLS_AES_128_GCM_SHA256 "${VERIFY[@]}"
oclient 41002 case-2 "$K" -ciphersuites TLS_AES_128_GCM_SHA256 $(ocert $EC); done_case
oserve 1 -ciphersuites TLS_AES_128_GCM_SHA256 "${VERIFY[@]}"
oclient 41003 case-3 "$K" -ciphersuites TLS_AES_128_GCM_SHA256 $(ocert $RSA); done_case
oserve 1 -ciphersuites TLS_AES_128_GCM_SHA256 "${OPTIONAL[@]}"
oclient 41004 case-4 "$K" -ciphersuites TLS_AES_128_GCM_SHA256; done_case
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384 "${VERIFY[@]}"
oclient 41005 case-5 "$K" -ciphersuites TLS_AES_256_GCM_SHA384 $(ocert $EC); done_case
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384
oclient 41006 case-6 "$K" -ciphersuites TLS_AES_256_GCM_SHA384; done_case
oserve 1 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 "${VERIFY[@]}"
oclient 41007 case-7 "$K" -ciphersuites TLS_CHACHA20_POLY1305_SHA256 $(ocert $EC); done_case
oserve 2 -ciphersuites TLS_AES_128_GCM_SHA256 "${VERIFY[@]}"
oclient 41080 case-8-full "$K" -ciphersuites TLS_AES_128_GCM_SHA256 $(ocert $EC) -sess_out "$WORK/o.sess"
oclient 41008 case-8 "$K" -ciphersuites TLS_AES_128_GCM_SHA256 $(ocert $EC) -sess_in "$WORK/o.sess"; done_case
oserve 1 -ciphersuites TLS_AES_128_GCM_SHA256 -groups P-256 "${VERIFY[@]}"
oclient 41009 case-9 "$K" -ciphersuites TLS_AES_128_GCM_SHA256 -groups X25519:P-256 $(ocert $EC); done_case
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384 "${OPTIONAL[@]}"
oclient 41010 case-10 "$K" -ciphersuites TLS_AES_256_GCM_SHA384; done_case
stop_capture

# ---------------------------------------------------------------------------------------------
# Python ssl (tools/calib/pypeer.py). TLS 1.3 suites through OPENSSL_CONF (system_default).
# Client ports 42001-42010; 42080 = case 8's first (full) handshake.
# ---------------------------------------------------------------------------------------------
for s in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
  cat > "$WORK/$s.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = $s
CNF
done
PYP="python3 $T/pypeer.py"
# pcase SUITE SERVER-OPTIONS -- CLIENT-OPTIONS
pcase() {
  local suite=$1; shift
  local sopts=() copts=()
  while [ "$1" != -- ]; do sopts+=("$1"); shift; done; shift
  copts=("$@")
  serve env OPENSSL_CONF="$WORK/$suite.cnf" $PYP server $PORT "$SCRT" "$SKEY" --ca "$CA" "${sopts[@]}"
  in_cli env OPENSSL_CONF="$WORK/$suite.cnf" SSLKEYLOGFILE="$K" $PYP client $S4 $PORT --sni calib.test --ca "$CA" "${copts[@]}"
  done_case
}
PEC=(--cert $PKI/client-ecdsa.crt --key $PKI/client-ecdsa.key)
PRSA=(--cert $PKI/client-rsa.crt --key $PKI/client-rsa.key)
echo "2. Python ssl"
K=$HERE/tls13-calib-python.keys; rm -f "$K"
start_capture tls13-calib-python.pcap
pcase TLS_AES_128_GCM_SHA256 --auth none -- --conn 42001:case-1
pcase TLS_AES_128_GCM_SHA256 --auth require -- "${PEC[@]}" --conn 42002:case-2
pcase TLS_AES_128_GCM_SHA256 --auth require -- "${PRSA[@]}" --conn 42003:case-3
pcase TLS_AES_128_GCM_SHA256 --auth optional -- --conn 42004:case-4
pcase TLS_AES_256_GCM_SHA384 --auth require -- "${PEC[@]}" --conn 42005:case-5
pcase TLS_AES_256_GCM_SHA384 --auth none -- --conn 42006:case-6
pcase TLS_CHACHA20_POLY1305_SHA256 --auth require -- "${PEC[@]}" --conn 42007:case-7
pcase TLS_AES_128_GCM_SHA256 --auth require --count 2 -- "${PEC[@]}" --conn 42080:case-8-full --conn 42008:case-8
pcase TLS_AES_128_GCM_SHA256 --auth require --p256only -- "${PEC[@]}" --conn 42009:case-9
pcase TLS_AES_256_GCM_SHA384 --auth optional -- --conn 42010:case-10
stop_capture

# ---------------------------------------------------------------------------------------------
# Go crypto/tls (tools/calib/tlspeer.go). Go cannot choose TLS 1.3 suites: cases 5-7 and 10 pair the Go
# client with an OpenSSL s_server that allows only the wanted suite (the client's records are
# what the calibration is about). Client ports 43001-43010; 43080 = case 8's first handshake.
# ---------------------------------------------------------------------------------------------
GEC=(-cert $PKI/client-ecdsa.crt -key $PKI/client-ecdsa.key)
GRSA=(-cert $PKI/client-rsa.crt -key $PKI/client-rsa.key)
gserve() { serve $GOPEER server -port $PORT -cert "$SCRT" -key "$SKEY" -ca "$CA" "$@"; }
gclient() { in_cli env SSLKEYLOGFILE="$K" $GOPEER client -addr $S4:$PORT -sni calib.test -ca "$CA" "$@"; done_case; }
echo "3. Go crypto/tls"
K=$HERE/tls13-calib-go.keys; rm -f "$K"
start_capture tls13-calib-go.pcap
gserve -auth none;     gclient -conn 43001:case-1
gserve -auth require;  gclient "${GEC[@]}" -conn 43002:case-2
gserve -auth require;  gclient "${GRSA[@]}" -conn 43003:case-3
gserve -auth optional; gclient -conn 43004:case-4
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384 "${VERIFY[@]}";       gclient "${GEC[@]}" -conn 43005:case-5
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384;                      gclient -conn 43006:case-6
oserve 1 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 "${VERIFY[@]}"; gclient "${GEC[@]}" -conn 43007:case-7
gserve -auth require -count 2; gclient "${GEC[@]}" -conn 43080:case-8-full -conn 43008:case-8
gserve -auth require -p256only; gclient "${GEC[@]}" -conn 43009:case-9
oserve 1 -ciphersuites TLS_AES_256_GCM_SHA384 "${OPTIONAL[@]}";     gclient -conn 43010:case-10
stop_capture

# ---------------------------------------------------------------------------------------------
# rustls 0.23 + ring (tools/calib/rustls-peer). Client ports 44001-44010; 44080 = case 8's
# first (full) handshake.
# ---------------------------------------------------------------------------------------------
REC=(--cert $PKI/client-ecdsa.crt --key $PKI/client-ecdsa.key)
RRSA=(--cert $PKI/client-rsa.crt --key $PKI/client-rsa.key)
rserve() { serve $RSPEER server $PORT "$SCRT" "$SKEY" --ca "$CA" "$@"; }
rclient() { in_cli env SSLKEYLOGFILE="$K" $RSPEER client $S4 $PORT --sni calib.test --ca "$CA" "$@"; done_case; }
echo "4. rustls"
K=$HERE/tls13-calib-rustls.keys; rm -f "$K"
start_capture tls13-calib-rustls.pcap
rserve --auth none --suite aes128;     rclient --suite aes128 --conn 44001:case-1
rserve --auth require --suite aes128;  rclient --suite aes128 "${REC[@]}" --conn 44002:case-2
rserve --auth require --suite aes128;  rclient --suite aes128 "${RRSA[@]}" --conn 44003:case-3
rserve --auth optional --suite aes128; rclient --suite aes128 --conn 44004:case-4
rserve --auth require --suite aes256;  rclient --suite aes256 "${REC[@]}" --conn 44005:case-5
rserve --auth none --suite aes256;     rclient --suite aes256 --conn 44006:case-6
rserve --auth require --suite chacha;  rclient --suite chacha "${REC[@]}" --conn 44007:case-7
rserve --auth require --suite aes128 --count 2; rclient --suite aes128 "${REC[@]}" --conn 44080:case-8-full --conn 44008:case-8
rserve --auth require --suite aes128 --groups p256; rclient --suite aes128 "${REC[@]}" --conn 44009:case-9
rserve --auth optional --suite aes256; rclient --suite aes256 --conn 44010:case-10
stop_capture

chown --reference=. tls13-calib-*.pcap tls13-calib-*.keys
chmod 644 tls13-calib-*.pcap tls13-calib-*.keys

echo "5. check every connection (decrypted with the key logs), ground-truth table in tls13-calib.md"
python3 "$T/table.py" "$HERE" > "$WORK/table.md"
python3 - "$WORK/table.md" "$HERE/tls13-calib.md" <<'PY'
import sys
table, md = open(sys.argv[1]).read(), sys.argv[2]
text = open(md).read()
head, rest = text.split("<!-- table:begin -->\n", 1)
_, tail = rest.split("<!-- table:end -->", 1)
open(md, "w").write(head + "<!-- table:begin -->\n" + table + "<!-- table:end -->" + tail)
PY
ls -l tls13-calib-*.pcap tls13-calib-*.keys

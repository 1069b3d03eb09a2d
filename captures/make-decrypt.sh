#!/usr/bin/env bash
# Regenerates the key-log decryption captures captures/decrypt-tls12.pcap and
# captures/decrypt-tls13.pcap, each with its NSS key log (.keys), from real stacks talking between
# two network namespaces this script creates and removes: curl 7.88 (OpenSSL 3.0, SSLKEYLOGFILE),
# OpenSSL 3.0 s_server / s_client (-keylogfile), nghttp2 1.52 nghttpd (TLS, ALPN h2).
# Ground truth: tests/keylog.rs (checked against tshark -o tls.keylog_file:...).
# Run as root on Debian: sudo captures/make-decrypt.sh
# Needs tcpdump, iproute2, ethtool, curl, openssl, nghttp2-server. PKI: captures/pki/calib.
# Traffic never leaves the namespaces tsp-dec-c (10.97.0.2) and tsp-dec-s (10.97.0.1).
#
# decrypt-tls12.pcap (TLS 1.2 only; server openssl s_server -www, ECDSA certificate calib.test):
#   46001 curl ECDHE-ECDSA-AES128-GCM-SHA256 -> :8443, GET /tls12-aes128
#   46002 curl ECDHE-ECDSA-AES256-GCM-SHA384 + client certificate (SPIFFE URI) -> :8444 (-Verify 1)
#   46003 curl ECDHE-ECDSA-CHACHA20-POLY1305 -> :8443, GET /tls12-chacha
#   46004 curl ECDHE-ECDSA-AES128-SHA256 (CBC: not decrypted) -> :8443
# decrypt-tls13.pcap (TLS 1.3):
#   46101 curl --http2 -> nghttpd :8445 (ALPN h2), GET /h2-inside
#   46102 curl --http1.1 + client certificate + an Authorization header -> s_server -www
#         -alpn http/1.1 -Verify 1 :8446,
#         TLS_AES_256_GCM_SHA384, GET /tls13-mtls
#   (any) s_client -> s_server :8447: a request, a KeyUpdate ('K': update_requested), a second
#         request; TLS_CHACHA20_POLY1305_SHA256
#   (any) s_client -> s_server -early_data :8448 twice: a full handshake that saves the session,
#         then its PSK resumption with a request sent as 0-RTT early data
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
. tools/lib.sh
PKI=$HERE/pki/calib
CLI=tsp-dec-c SRV=tsp-dec-s C4=10.97.0.2 S4=10.97.0.1
WORK=$(mktemp -d /tmp/tsp-dec.XXXXXX)
NETNS=($CLI $SRV)
lib_traps
veth_pair $CLI $SRV $C4 $S4
in_cli() { ip netns exec $CLI "$@"; }
in_srv() { ip netns exec $SRV "$@"; }
wait_port() { for _ in $(seq 50); do in_srv ss -ltn | grep -q ":$1 " && return; sleep 0.1; done; exit 1; }

CURL=(curl -sS --max-time 10 --cacert "$PKI/ca.crt" --resolve "calib.test:8443:$S4"
      --resolve "calib.test:8444:$S4" --resolve "calib.test:8445:$S4" --resolve "calib.test:8446:$S4")
CERT=(--cert "$PKI/client-ecdsa.crt" --key "$PKI/client-ecdsa.key")

echo "1. TLS 1.2"
in_srv openssl s_server -quiet -accept 8443 -cert "$PKI/server.crt" -key "$PKI/server.key" -tls1_2 \
  -cipher 'ALL:@SECLEVEL=0' -www </dev/null >/dev/null 2>&1 &
PIDS+=($!)
in_srv openssl s_server -quiet -accept 8444 -cert "$PKI/server.crt" -key "$PKI/server.key" -tls1_2 \
  -Verify 1 -CAfile "$PKI/ca.crt" -www </dev/null >/dev/null 2>&1 &
PIDS+=($!)
wait_port 8443; wait_port 8444
capture_start $SRV "$HERE/decrypt-tls12.pcap" $SRV
sleep 1
export SSLKEYLOGFILE=$WORK/tls12.keys
in_cli "${CURL[@]}" --local-port 46001 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 -o /dev/null https://calib.test:8443/tls12-aes128
in_cli "${CURL[@]}" --local-port 46002 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-GCM-SHA384 "${CERT[@]}" -o /dev/null https://calib.test:8444/tls12-mtls
in_cli "${CURL[@]}" --local-port 46003 --tls-max 1.2 --ciphers ECDHE-ECDSA-CHACHA20-POLY1305 -o /dev/null https://calib.test:8443/tls12-chacha
in_cli "${CURL[@]}" --local-port 46004 --tls-max 1.2 --ciphers 'ECDHE-ECDSA-AES128-SHA256:@SECLEVEL=0' -o /dev/null https://calib.test:8443/tls12-cbc
captures_stop
cp "$WORK/tls12.keys" "$HERE/decrypt-tls12.keys"

echo "2. TLS 1.3"
mkdir -p "$WORK/www"; echo "h2 inside" >"$WORK/www/h2-inside"
in_srv nghttpd -d "$WORK/www" 8445 "$PKI/server.key" "$PKI/server.crt" >/dev/null 2>&1 &
PIDS+=($!)
in_srv openssl s_server -quiet -accept 8446 -cert "$PKI/server.crt" -key "$PKI/server.key" -tls1_3 \
  -ciphersuites TLS_AES_256_GCM_SHA384 -alpn http/1.1 -Verify 1 -CAfile "$PKI/ca.crt" -www </dev/null >/dev/null 2>&1 &
PIDS+=($!)
# The KeyUpdate peer: stdin kept open (sleep) so that it does not close before the client ends;
# s_client runs without -quiet, which would imply -ign_eof and turn off its 'K' command.
sleep 30 | in_srv openssl s_server -quiet -accept 8447 -cert "$PKI/server.crt" -key "$PKI/server.key" -tls1_3 \
  -ciphersuites TLS_CHACHA20_POLY1305_SHA256 >/dev/null 2>&1 &
PIDS+=($!)
sleep 30 | in_srv openssl s_server -quiet -accept 8448 -cert "$PKI/server.crt" -key "$PKI/server.key" -tls1_3 \
  -early_data >/dev/null 2>&1 &
PIDS+=($!)
wait_port 8445; wait_port 8446; wait_port 8447; wait_port 8448
capture_start $SRV "$HERE/decrypt-tls13.pcap" $SRV
sleep 1
export SSLKEYLOGFILE=$WORK/tls13.keys
in_cli "${CURL[@]}" --local-port 46101 --http2 -o /dev/null https://calib.test:8445/h2-inside
in_cli "${CURL[@]}" --local-port 46102 --http1.1 --tlsv1.3 "${CERT[@]}" -H "Authorization: Bearer tlspeek-test-token" \
  -o /dev/null https://calib.test:8446/tls13-mtls
{ printf 'GET /before-keyupdate HTTP/1.1\r\nHost: calib.test\r\n\r\n'; sleep 0.5; printf 'K\n'; sleep 0.5
  printf 'GET /after-keyupdate HTTP/1.1\r\nHost: calib.test\r\n\r\n'; sleep 0.5; } |
  in_cli openssl s_client -connect $S4:8447 -servername calib.test -CAfile "$PKI/ca.crt" \
    -keylogfile "$WORK/tls13.keys" >/dev/null 2>&1 || true
printf 'GET /early-data HTTP/1.1\r\nHost: calib.test\r\n\r\n' >"$WORK/early.txt"
{ sleep 1; } | in_cli openssl s_client -connect $S4:8448 -servername calib.test -CAfile "$PKI/ca.crt" \
    -sess_out "$WORK/sess.pem" -keylogfile "$WORK/tls13.keys" >/dev/null 2>&1 || true
{ sleep 1; } | in_cli openssl s_client -connect $S4:8448 -servername calib.test -CAfile "$PKI/ca.crt" \
    -sess_in "$WORK/sess.pem" -early_data "$WORK/early.txt" -keylogfile "$WORK/tls13.keys" >/dev/null 2>&1 || true
captures_stop
cp "$WORK/tls13.keys" "$HERE/decrypt-tls13.keys"
chmod 600 "$HERE"/decrypt-tls1[23].keys
echo "done: decrypt-tls12.pcap decrypt-tls13.pcap (+ .keys)"

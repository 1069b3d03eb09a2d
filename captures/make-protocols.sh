#!/usr/bin/env bash
# Regenerates the protocol captures (plaintext that is neither HTTP nor TLS, TLS cut by a small
# snaplen, TLS handshakes ending in fatal alerts, SNI the certificate does not cover) from real
# stacks talking between two network namespaces this script creates and removes:
# redis-server 7.0 + redis-cli, memcached 1.6, aiosmtpd 1.4 + smtplib, imaplib, OpenSSL 3.0
# s_server/s_client. Ground truth for every file: captures/protocols.md.
# Run as root on Debian: sudo captures/make-protocols.sh [SET...]
#   SET = redis memcached smtp-imap snaplen alerts sni (default: all)
# Needs tcpdump, tshark, iproute2, ethtool, openssl, redis-server, redis-tools, memcached,
# python3-aiosmtpd, Debian's /usr/bin/python3 with the cryptography module (tools/pki.py).
# Traffic never leaves the namespaces.
#
#   tsp-pr-c  client: veth tsp-pr-c 10.96.0.2/24      tsp-pr-s  server: veth tsp-pr-s 10.96.0.1/24
#   No IPv6, static neighbours (no ARP), TSO/GSO/GRO off; tcpdump on tsp-pr-s, filter `tcp`.
#
# Fixed client source ports (s_client -bind, Python source_address; redis-cli has no option for
# it, so the client namespace's ip_local_port_range is narrowed to the one port it must use):
#   plaintext-redis      40101..40106 redis-cli (RESP) -> 6379, 40110 inline commands -> 6379
#   plaintext-memcached  40201 -> 11211
#   plaintext-smtp-imap  40301 smtplib -> 25 (aiosmtpd), 40302 imaplib -> 143
#   tls-snaplen96        40401 TLS 1.2 -> 443, 40402 TLS 1.3 -> 443
#   tls-alerts           40501..40507 -> 8443
#   tls-sni-mismatch     40601..40605 -> 443
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PY=/usr/bin/python3                     # Debian's python3 (python3-aiosmtpd is installed there)
PEER="$PY $HERE/tools/protopeer.py"
PKI=$HERE/pki
CLI=tsp-pr-c SRV=tsp-pr-s
S4=10.96.0.1 C4=10.96.0.2
SETS=${*:-redis memcached smtp-imap snaplen alerts sni}
WORK=$(mktemp -d /tmp/tsp-pr.XXXXXX)

. tools/lib.sh
NETNS=($CLI $SRV)
lib_traps

$PY tools/pki.py "$PKI"       # adds missing certificates only; never remakes existing ones

veth_pair $CLI $SRV $C4 $S4
sleep 1

in_cli() { ip netns exec $CLI "$@"; }
want() { [[ " $SETS " == *" $1 "* ]]; }

# start_capture FILE [tcpdump args...]: TCP only, server side of the veth pair. stop_capture ends
# every running capture and fails the run if tcpdump reports a kernel drop.
start_capture() { local out=$1; shift; capture_start $SRV "$HERE/$out" $SRV "$@"; sleep 1; }
stop_capture() { captures_stop; }
# serve PORT CMD...: starts a server in the server namespace (SERVER = its pid; its output goes
# to SLOG) and waits until it listens on PORT.
SLOG=$WORK/servers.log
serve() {
  local port=$1; shift
  echo "== $*" >> "$SLOG"
  ip netns exec $SRV "$@" >>"$SLOG" 2>&1 & SERVER=$!; PIDS+=($SERVER)
  for _ in $(seq 100); do
    ip netns exec $SRV ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  echo "server did not start: $*" >&2; tail -5 "$SLOG" >&2; exit 1
}
# finish: waits up to 5 s for the server to exit by itself, else stops it (by its pid).
finish() {
  for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  sleep 0.3
}
# with_port PORT CMD...: runs CMD in the client namespace with PORT as its only ephemeral port.
with_port() {
  local port=$1; shift
  in_cli sysctl -qw net.ipv4.ip_local_port_range="$port $port"
  in_cli "$@"
  in_cli sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
}

# OpenSSL s_server: -naccept 1 (one connection, then exit); -rev answers each line received with
# the line reversed, and closes the connection when a line starts with CLOSE.
# oserve PORT [s_server options]
oserve() {
  local port=$1; shift
  serve "$port" openssl s_server -quiet -accept "$port" -naccept 1 -rev "$@"
}
# oclient SPORT PORT SNI [s_client options] (stdin: what to send): s_client from a fixed port.
oclient() {
  local sport=$1 port=$2 sni=$3; shift 3
  in_cli openssl s_client -quiet -connect $S4:"$port" -bind $C4:"$sport" -servername "$sni" "$@"
}
# lines A B ...: writes each argument as a line, 0.2 s apart (one TLS record each), then CLOSE.
lines() { for l in "$@"; do printf '%s\n' "$l"; sleep 0.2; done; printf 'CLOSE\n'; }
# fails CMD...: CMD must fail (a handshake that ends in an alert); prints the client's reason.
fails() {
  if "$@" >"$WORK/out" 2>&1; then echo "expected a failed handshake: $*" >&2; cat "$WORK/out" >&2; exit 1; fi
  grep -o 'verify error:.*\|SSL routines:[^:]*:[^:]*' "$WORK/out" | head -2 | sed 's/^/    client: /'
}

if want redis; then
  echo "1. plaintext-redis (redis-server + redis-cli RESP; inline commands)"
  start_capture plaintext-redis.pcap
  serve 6379 redis-server --bind $S4 --port 6379 --save '' --appendonly no --protected-mode no \
    --dir "$WORK" --logfile "$WORK/redis.log"
  # One redis-cli per command (one connection each: fed from stdin, redis-cli would first fetch
  # COMMAND DOCS, 180 KB). Each connection starts with its command as a RESP array.
  rcli() { with_port "$1" redis-cli -h $S4 -p 6379 "${@:2}" | sed 's/^/    /'; sleep 0.2; }
  rcli 40101 GET /index.html
  rcli 40102 SET /index.html "<h1>cached page</h1>"
  rcli 40103 GET /index.html
  rcli 40104 SET "GET / HTTP/1.1" "HTTP/1.1 200 OK"
  rcli 40105 GET "GET / HTTP/1.1"
  rcli 40106 DEL /index.html "GET / HTTP/1.1"
  in_cli $PEER redis-inline $S4 6379 --sport 40110
  sleep 0.3
  stop_capture
  finish
fi

if want memcached; then
  echo "2. plaintext-memcached (memcached text protocol)"
  start_capture plaintext-memcached.pcap
  serve 11211 memcached -u nobody -l $S4 -p 11211 -U 0 -t 1
  in_cli $PEER memcached $S4 11211 --sport 40201
  sleep 0.3
  stop_capture
  finish
fi

if want smtp-imap; then
  echo "3. plaintext-smtp-imap (aiosmtpd + smtplib; scripted Dovecot replies + imaplib)"
  start_capture plaintext-smtp-imap.pcap
  serve 25 $PEER smtp-server $S4 25
  in_cli $PEER smtp-client $S4 25 --sport 40301
  sleep 0.3
  finish
  serve 143 $PEER imap-server $S4 143
  in_cli $PEER imap-client $S4 143 --sport 40302
  finish
  stop_capture
fi

if want snaplen; then
  echo "4. tls-snaplen96 (tcpdump -s 96; the untruncated twin in tls-snaplen96-full.pcap)"
  start_capture tls-snaplen96.pcap -s 96
  start_capture tls-snaplen96-full.pcap
  oserve 443 -tls1_2 -cert $PKI/api.crt -key $PKI/api.key
  lines "GET /one" "GET /two" "GET /three" | oclient 40401 443 api.example.test -tls1_2 >/dev/null 2>&1
  finish
  oserve 443 -tls1_3 -cert $PKI/api.crt -key $PKI/api.key
  lines "GET /one" "GET /two" | oclient 40402 443 api.example.test -tls1_3 >/dev/null 2>&1
  finish
  stop_capture
fi

if want alerts; then
  echo "5. tls-alerts (TLS 1.2 handshakes ending in a fatal alert; 1.3-only server for protocol_version)"
  start_capture tls-alerts.pcap
  V=(-verify_return_error -CAfile)
  # a. the client rejects an expired server certificate
  oserve 8443 -tls1_2 -cert $PKI/expired.crt -key $PKI/expired.key
  fails oclient 40501 8443 expired.example.test -tls1_2 "${V[@]}" $PKI/ca.crt </dev/null; finish
  # b. the client does not know the issuer of the server certificate
  oserve 8443 -tls1_2 -cert $PKI/api.crt -key $PKI/api.key
  fails oclient 40502 8443 api.example.test -tls1_2 "${V[@]}" $PKI/other-ca.crt </dev/null; finish
  # c. the server requires a client certificate and gets one from an unknown CA
  oserve 8443 -tls1_2 -cert $PKI/api.crt -key $PKI/api.key -Verify 1 "${V[@]}" $PKI/ca.crt
  fails oclient 40503 8443 api.example.test -tls1_2 "${V[@]}" $PKI/ca.crt -cert $PKI/intruder.crt -key $PKI/intruder.key </dev/null; finish
  # d. the server requires a client certificate and gets none
  oserve 8443 -tls1_2 -cert $PKI/api.crt -key $PKI/api.key -Verify 1 "${V[@]}" $PKI/ca.crt
  fails oclient 40504 8443 api.example.test -tls1_2 "${V[@]}" $PKI/ca.crt </dev/null; finish
  # e. TLS 1.3-only server, client offering TLS 1.2 only: refused before any ServerHello
  oserve 8443 -tls1_3 -cert $PKI/api.crt -key $PKI/api.key
  fails oclient 40505 8443 api.example.test -tls1_2 </dev/null; finish
  # f. no cipher suite in common: refused before any ServerHello
  oserve 8443 -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -cert $PKI/api.crt -key $PKI/api.key
  fails oclient 40506 8443 api.example.test -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305 </dev/null; finish
  # g. the client checks the host name: SNI and -verify_hostname wrong.example.test, cert api.example.test
  oserve 8443 -tls1_2 -cert $PKI/api.crt -key $PKI/api.key
  fails oclient 40507 8443 wrong.example.test -tls1_2 "${V[@]}" $PKI/ca.crt -verify_hostname wrong.example.test </dev/null; finish
  stop_capture
fi

if want sni; then
  echo "6. tls-sni-mismatch (TLS 1.2, client does not verify)"
  start_capture tls-sni-mismatch.pcap
  sni_case() {   # sni_case SPORT SNI CERT-STEM
    oserve 443 -tls1_2 -cert $PKI/$3.crt -key $PKI/$3.key
    lines "GET /" | oclient "$1" 443 "$2" -tls1_2 >/dev/null 2>&1; finish
  }
  sni_case 40601 api.example.test api           # covered (control)
  sni_case 40602 wrong.example.test api         # not covered
  sni_case 40603 a.example.test wildcard        # covered by *.example.test
  sni_case 40604 a.b.example.test wildcard      # not covered: * is one label
  sni_case 40605 cn-only.example.test cn-only   # covered by the CN only (no SAN extension)
  stop_capture
fi

chown --reference=. plaintext-*.pcap tls-*.pcap 2>/dev/null || true
chmod 644 plaintext-*.pcap tls-*.pcap 2>/dev/null || true
ls -l plaintext-redis.pcap plaintext-memcached.pcap plaintext-smtp-imap.pcap tls-snaplen96*.pcap \
  tls-alerts.pcap tls-sni-mismatch.pcap 2>/dev/null || true

#!/usr/bin/env bash
# Times tlspeek against cat, tcpdump and tshark on one capture, warm page cache, best of N runs,
# and prints MB/s, ratios and max RSS. (The full benchmark with a generator and truth checking
# is issue 6; this is the quick comparison quoted in docs/plan.md.)
#   bench/compare.sh FILE [RUNS]
set -euo pipefail
F=$1; N=${2:-3}
BIN=${TLSPEEK:-$(dirname "$0")/../target/release/tlspeek}
size=$(stat -c %s "$F")
cat "$F" > /dev/null
best() { # name cmd...
  local name=$1; shift
  local t best=999999 rss=0
  for _ in $(seq "$N"); do
    /usr/bin/time -f "%e %M" -o /tmp/compare.time "$@" > /dev/null 2>&1 || true
    read -r t r < /tmp/compare.time
    best=$(python3 -c "print(min($best, $t))"); rss=$r
  done
  printf '%-16s %8.3f s %9.1f MB/s %8d KB max RSS\n' "$name" "$best" "$(python3 -c "print($size/1e6/max($best,0.001))")" "$rss"
  eval "T_${name//-/_}=$best"
}
best cat cat "$F"
best tcpdump tcpdump -nr "$F" -w /dev/null
best tshark tshark -r "$F" -n -2 -o tcp.desegment_tcp_streams:TRUE -o tls.desegment_ssl_records:TRUE \
  -Y 'tls.handshake.type==1 || tls.handshake.type==11 || http.request' -T fields -e tcp.stream \
  -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str -e tls.handshake.certificate \
  -e http.request.method -e http.request.uri -e http.host
best tlspeek-json "$BIN" -r "$F" --json
best tlspeek-table "$BIN" -r "$F"
python3 -c "print('tlspeek --json is %.1fx faster than tshark, %.2fx the speed of tcpdump' % ($T_tshark/$T_tlspeek_json, $T_tcpdump/$T_tlspeek_json))"

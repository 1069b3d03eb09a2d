#!/usr/bin/env bash
# Prints the facts captures/README.md states about every capture (link type, packet count, size,
# TCP conversations, TLS handshake fields, certificates, HTTP requests), read back with
# capinfos/tshark, so that the README can be checked after a regeneration.
# Usage: captures/tools/check.sh [FILE...]   (default: every capture in captures/)
set -uo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(*.pcap *.pcapng)
ts() { tshark -o tcp.reassemble_out_of_order:TRUE "$@" 2>/dev/null; }
for f in "${files[@]}"; do
  echo "=== $f ($(stat -c %s "$f") bytes)"
  if ! capinfos "$f" >/dev/null 2>&1; then
    echo "not readable by capinfos: starts with $(head -c 4 "$f" | xxd -p)"
    continue
  fi
  capinfos -t -E -c -T -r "$f" 2>/dev/null | cut -f2-
  ts -r "$f" -q -z conv,tcp | sed -n '6,/^=/p' | grep -v '^='
  ts -r "$f" -Y tls.handshake -T fields -E separator='|' -e frame.number -e tcp.srcport \
    -e tls.handshake.type -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str \
    -e tls.handshake.extensions.supported_version -e tls.handshake.ciphersuite \
    -e tls.handshake.certificate_length -e x509ce.dNSName -e x509ce.uniformResourceIdentifier |
    sed 's/^/tls: /'
  ts -r "$f" -Y 'tls.handshake.type==11' -T fields -e x509sat.uTF8String -e x509af.utcTime \
    -e x509af.generalizedTime | sed 's/^/cert: /'
  ts -r "$f" -Y 'http.request or http.response' -T fields -e frame.number -e tcp.srcport \
    -e http.request.method -e http.request.uri -e http.response.code | sed 's/^/http: /'
  ts -r "$f" -Y 'http2.header' -T fields -e frame.number -e http2.header.name -e http2.header.value |
    sed 's/^/h2: /'
done

#!/usr/bin/env bash
# Prints the facts captures/protocols.md states about the captures made by make-protocols.sh,
# read back with capinfos/tshark: size and snaplen, TCP conversations, every data segment (its
# payload escaped, cut at 100 bytes), TLS records (version, content type, length, handshake
# types, SNI, cipher, certificate SANs/CNs), alerts (sender, level, description).
# Usage: captures/tools/check-protocols.sh [FILE...]   (default: the seven protocol captures)
set -uo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(plaintext-redis.pcap plaintext-memcached.pcap plaintext-smtp-imap.pcap
  tls-snaplen96.pcap tls-snaplen96-full.pcap tls-alerts.pcap tls-sni-mismatch.pcap)
ts() { tshark "$@" 2>/dev/null; }
for f in "${files[@]}"; do
  echo "=== $f ($(stat -c %s "$f") bytes)"
  capinfos -E -c -l -r "$f" 2>/dev/null | cut -f2- | grep -v '^$'
  ts -r "$f" -q -z conv,tcp | sed -n '6,/^=/p' | grep -v '^='
  case $f in
  plaintext-*)
    # Data segments: frame, sender port, receiver port, length, payload (Python repr, 100 bytes).
    ts -r "$f" -Y 'tcp.len>0' -T fields -e frame.number -e tcp.srcport -e tcp.dstport -e tcp.len \
      -e tcp.payload | /usr/bin/python3 -c '
import sys
for line in sys.stdin:
    n, s, d, l, p = line.rstrip("\n").split("\t")
    b = bytes.fromhex(p)
    print(f"data: {n} {s}->{d} {l} {b[:100]!r}" + (" ..." if len(b) > 100 else ""))'
    ;;
  *)
    ts -r "$f" -Y 'tcp.len>0' -T fields -E occurrence=a -E aggregator=, -e frame.number \
      -e tcp.srcport -e tcp.dstport -e tcp.len -e frame.cap_len -e tls.record.version \
      -e tls.record.content_type -e tls.record.length -e tls.handshake.type \
      -e tls.handshake.extensions_server_name -e tls.handshake.ciphersuite | sed 's/^/tls: /'
    ts -r "$f" -Y 'tls.handshake.type==11' -T fields -E occurrence=a -E aggregator=, \
      -e frame.number -e tcp.srcport -e tls.handshake.certificate_length -e x509sat.uTF8String \
      -e x509ce.dNSName | sed 's/^/cert: /'
    ts -r "$f" -Y 'tls.alert_message' -T fields -e frame.number -e ip.src -e tcp.srcport \
      -e tcp.dstport -e tls.record.version -e tls.alert_message.level -e tls.alert_message.desc |
      sed 's/^/alert: /'
    ;;
  esac
done

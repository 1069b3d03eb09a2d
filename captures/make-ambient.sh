#!/usr/bin/env bash
# Regenerates the Istio ambient-mode captures captures/ambient-*.pcap (+ .keys) with the REAL
# ztunnel: two ztunnels in dedicated mode, one per "pod" network namespace, istio-cni's in-pod
# iptables rules, tcpdump -i any inside each pod namespace. Ground truth: captures/ambient.md.
# Not run by CI. Run as root on Debian (needs tcpdump, iproute2, iptables, curl, python3, tshark):
#
#   captures/tools/ztunnel/build-ztunnel.sh             # once: /tmp/ztunnel-target/ztunnel-upstream
#   ZT_KEYLOG=1 captures/tools/ztunnel/build-ztunnel.sh # once: /tmp/ztunnel-target/ztunnel-keylog
#   sudo captures/make-ambient.sh            # regenerate all, then check
#   captures/make-ambient.sh --check         # only check the committed files (tshark)
#
# Override the binaries with ZT_KEYLOG_BIN / ZT_UPSTREAM_BIN. Each scenario creates its own
# namespaces (ztA-/ztB-/ztC-<pid>) and deletes them on exit; traffic never leaves them.
set -euo pipefail
cd "$(dirname "$0")"
RUN=tools/ztunnel/run-ambient.sh
if [ "${1:-}" != --check ]; then   # --check: only verify the committed files
  LOGDIR=$(mktemp -d /tmp/make-ambient.XXXXXX)
  for scen in main upstream refused waypoint nocert; do
    echo "== $scen (log: $LOGDIR/$scen.log)"
    "$RUN" "$scen" . > "$LOGDIR/$scen.log" 2>&1 || { tail -n 30 "$LOGDIR/$scen.log"; exit 1; }
  done
  chmod 644 ambient-*.pcap ambient*.keys
  ls -l ambient-*.pcap ambient*.keys
fi

# Checks: the facts captures/ambient.md states (needs tshark).
fail=0
check() { # description expected actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2] got [$3]"; fail=1; fi
}
h2() { # pcap keys header-name: the values of that HTTP/2 header, in frame order, space-separated
  tshark -r "$1" -o "tls.keylog_file:$2" -d tcp.port==15008,tls -Y 'http2.type==1' \
    -T fields -E separator="$(printf '\001')" -E aggregator="$(printf '\001')" \
    -e http2.header.name -e http2.header.value 2>/dev/null |
  awk -F'\001' -v want="$3" '{ n = NF / 2; for (i = 1; i <= n; i++) if ($i == want) print $(i + n) }' |
  tr '\n' ' ' | sed 's/ $//'
}
check "client: one HBONE connection" 1 \
  "$(tshark -r ambient-client-any.pcap -Y 'tcp.dstport==15008 && tcp.flags.syn==1 && tcp.flags.ack==0' 2>/dev/null | wc -l)"
check "client: CONNECT authorities" "10.99.0.2:8080 10.99.0.2:8080 10.99.0.2:8080" \
  "$(h2 ambient-client-any.pcap ambient.keys :authority)"
check "client: forwarded" 'for="10.99.0.1:41001" for="10.99.0.1:41002" for="10.99.0.1:41003";host=server.default.svc.cluster.local' \
  "$(h2 ambient-client-any.pcap ambient.keys forwarded)"
check "client: statuses" "200 200 200" "$(h2 ambient-client-any.pcap ambient.keys :status)"
check "server: same HBONE decrypts with the shared key log" "200 200 200" \
  "$(h2 ambient-server-any.pcap ambient.keys :status)"
check "server: delivery on lo keeps the client address (ENABLE_ORIG_SRC)" 3 \
  "$(tshark -r ambient-server-any.pcap -Y 'sll.ifindex==1 && ip.src==10.99.0.1 && tcp.dstport==8080 && tcp.flags.syn==1' 2>/dev/null | wc -l)"
check "server: bypass delivered on lo from 10.99.0.3" 1 \
  "$(tshark -r ambient-server-any.pcap -Y 'sll.ifindex==1 && ip.src==10.99.0.3 && tcp.dstport==8080 && tcp.flags.syn==1' 2>/dev/null | wc -l)"
check "upstream: statuses unreadable without keys (no http2)" 0 \
  "$(tshark -r ambient-hbone-upstream.pcap -d tcp.port==15008,tls -Y http2 2>/dev/null | wc -l)"
check "refused: statuses" "200 401" "$(h2 ambient-refused.pcap ambient-refused.keys :status)"
check "waypoint: PROXY v2 signature on lo" 1 \
  "$(tshark -r ambient-waypoint-proxy.pcap -Y 'sll.ifindex==1 && tcp.dstport==15088 && tcp.payload[0:12]==0d:0a:0d:0a:00:0d:0a:51:55:49:54:0a' 2>/dev/null | wc -l)"
check "client: passthrough to 10.99.0.3:8081 leaves eth0 in plaintext" 1 \
  "$(tshark -r ambient-client-any.pcap -Y 'sll.ifindex!=1 && ip.dst==10.99.0.3 && tcp.dstport==8081 && http.request' 2>/dev/null | wc -l)"
check "client: UDP 4433 exchange on eth0" 4 \
  "$(tshark -r ambient-client-any.pcap -Y 'sll.ifindex!=1 && udp.port==4433' 2>/dev/null | wc -l)"
check "server: probe from 169.254.7.127 reaches the app directly (never on lo)" "1 0" \
  "$(tshark -r ambient-server-any.pcap -Y 'ip.src==169.254.7.127 && http.request' 2>/dev/null | wc -l) $(tshark -r ambient-server-any.pcap -Y 'sll.ifindex==1 && ip.addr==169.254.7.127' 2>/dev/null | wc -l)"
check "refused: the app's connection is reset on lo" 1 \
  "$(tshark -r ambient-refused.pcap -Y 'sll.ifindex==1 && tcp.srcport==9090 && tcp.flags.reset==1' 2>/dev/null | wc -l)"
check "waypoint: TLV 0xD0 = client SPIFFE id" 1 \
  "$(tshark -r ambient-waypoint-proxy.pcap -Y 'tcp.dstport==15088 && tcp.payload contains d0:00:2b:73:70:69:66:66:65:3a:2f:2f:63:6c:75:73:74:65:72:2e:6c:6f:63:61:6c:2f:6e:73:2f:64:65:66:61:75:6c:74:2f:73:61:2f:63:6c:69:65:6e:74' 2>/dev/null | wc -l)"
check "nocert: the client's Certificate is empty" 0 \
  "$(tshark -r ambient-nocert.pcap -o tls.keylog_file:ambient-nocert.keys -d tcp.port==15008,tls -Y 'tls.handshake.type==11 && ip.src==10.99.0.3' -T fields -e tls.handshake.certificates_length 2>/dev/null)"
check "nocert: alert certificate_required (116) decrypted" 1 \
  "$(tshark -r ambient-nocert.pcap -o tls.keylog_file:ambient-nocert.keys -d tcp.port==15008,tls -Y 'tls.alert_message.desc==116' 2>/dev/null | wc -l)"
exit $fail

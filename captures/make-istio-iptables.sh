#!/usr/bin/env bash
# Regenerates captures/istio-inbound-podip-any.pcap, captures/istio-outbound-redirect-any.pcap and
# captures/istio-disable-redirect-any.pcap: Istio sidecar traffic under Istio's REAL iptables
# rules, in two network namespaces ("pods") this script creates and removes. No Kubernetes and no
# Envoy: tools/sidecar.py plays Envoy (run as uid/gid 1337 like istio-proxy), but the kernel
# mechanics are Istio's own: nat REDIRECT to 15001/15006, conntrack, SO_ORIGINAL_DST, the owner
# match that exempts the proxy, and the inbound leg from 127.0.0.6 to the pod IP over lo.
# Run as root on Debian: sudo captures/make-istio-iptables.sh   (needs iptables, tcpdump,
# iproute2, ethtool, curl, util-linux setpriv, Debian's /usr/bin/python3 with python3-cryptography:
# the proxies run as uid 1337, which cannot use an interpreter under /root).
# Traffic never leaves the namespaces. Ground truth for every file: captures/istio-iptables.md.
#
#   tsp-ipt-c  client pod productpage-v1: eth0 10.244.1.5/24, default via 10.244.1.1
#              apps: curl run as uid/gid 1000; proxy: tools/sidecar.py outbound (uid 1337) on :15001
#   tsp-ipt-s  server pod reviews-v2:     eth0 10.244.2.7/24, default via 10.244.2.1
#              app: tools/sidecar.py app on 0.0.0.0:9080 (uid 1000);
#              proxy: tools/sidecar.py inbound (uid 1337) on :15006
#   service    reviews ClusterIP 10.96.120.15:9080 (no kube-proxy: the client proxy routes it to
#              the endpoint 10.244.2.7:9080 itself, as Envoy does with EDS)
#   The two eth0 are the ends of one veth pair; each pod's gateway address is a static neighbour
#   entry with the other end's MAC (no ARP, no forwarding needed).
#
# Fixed ports (a regeneration keeps them; the namespaces are new at each run):
#   run 1 (mTLS, STRICT server), recorded in both pods at once:
#     curl      10.244.1.5:45010 -> 10.96.120.15:9080   (REDIRECTed to 127.0.0.1:15001 in tsp-ipt-c)
#     proxy     10.244.1.5:52110 -> 10.244.2.7:9080     (mTLS; REDIRECTed to :15006 in tsp-ipt-s)
#     inbound   127.0.0.6:38410  -> 10.244.2.7:9080     (lo in tsp-ipt-s; the app)
#   run 2 (DestinationRule DISABLE, PERMISSIVE server), recorded in the client pod:
#     curl      10.244.1.5:45030 -> 10.96.120.15:9080
#     proxy     10.244.1.5:52130 -> 10.244.2.7:9080     (plaintext HTTP)
#     inbound   127.0.0.6:38430  -> 10.244.2.7:9080     (not recorded)
#
# The nat rules below are those `istio-iptables` writes for a sidecar injected with Istio's
# default template (istio-init args `-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*'
# -d 15090,15021,15020`), in the order it writes them. Taken from istio/istio at commit
# 86c9f01fd735 (2026-08-22): tools/istio-iptables/pkg/capture/run.go (Run: ISTIO_INBOUND tunnel
# port 15008 RETURN, ISTIO_REDIRECT/ISTIO_IN_REDIRECT, handleInboundPortsInclude, the
# 127.0.0.6 RETURN, the uid/gid owner rules, the 127.0.0.1 RETURN, handleOutboundIncludeRules)
# and its golden files tools/istio-iptables/pkg/capture/testdata/empty.golden and
# cni/pkg/plugin/testdata/basic.txt.golden (the CNI plugin's default sidecar, which in addition
# returns outbound port 15020 first; the init container path does not). Before Istio 1.25 the
# jump is `-A OUTPUT -p tcp -j ISTIO_OUTPUT`; before 1.18 the ISTIO_IN_REDIRECT owner rules lack
# `-p tcp ! --dport 15008`: neither changes anything for the connections made here.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
PKI=$HERE/pki
CLI=tsp-ipt-c SRV=tsp-ipt-s
C4=10.244.1.5 CGW=10.244.1.1 S4=10.244.2.7 SGW=10.244.2.1 VIP=10.96.120.15
ALPN=istio-peer-exchange,istio-http/1.1,istio
SNI=outbound_.9080_._.reviews.default.svc.cluster.local
AS_PROXY="setpriv --reuid 1337 --regid 1337 --clear-groups"
AS_APP="setpriv --reuid 1000 --regid 1000 --clear-groups"
SIDECAR="/usr/bin/python3 $HERE/tools/sidecar.py"

. tools/lib.sh
NETNS=($CLI $SRV)
trap lib_cleanup EXIT
lib_cleanup

python3 tools/pki.py "$PKI"            # only makes captures/pki/ if missing (mesh CA)

# Istio's sidecar nat table: istio_iptables in tools/lib.sh (the header says where it comes from).

ip netns add $CLI
ip netns add $SRV
for ns in $CLI $SRV; do
  # No IPv6 (no router solicitations or MLD reports around the recordings).
  ip netns exec $ns sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
  ip -n $ns link set lo up
done
ip link add tsp-ipt-c0 netns $CLI type veth peer name tsp-ipt-s0 netns $SRV
ip -n $CLI link set tsp-ipt-c0 name eth0
ip -n $SRV link set tsp-ipt-s0 name eth0
ip -n $CLI addr add $C4/24 dev eth0
ip -n $SRV addr add $S4/24 dev eth0
ip -n $CLI link set eth0 up
ip -n $SRV link set eth0 up
# One wire segment per packet, as a NIC would show them (no TSO/GSO super-packets).
for ns in $CLI $SRV; do ip netns exec $ns ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true; done
ip -n $CLI route add default via $CGW dev eth0
ip -n $SRV route add default via $SGW dev eth0
# Static neighbours: each pod's gateway is the other pod's eth0, so no ARP is ever sent.
CMAC=$(ip -n $CLI -br link show eth0 | awk '{print $3}')
SMAC=$(ip -n $SRV -br link show eth0 | awk '{print $3}')
ip -n $CLI neigh replace $CGW lladdr "$SMAC" dev eth0 nud permanent
ip -n $SRV neigh replace $SGW lladdr "$CMAC" dev eth0 nud permanent
istio_iptables $CLI
istio_iptables $SRV
echo "nat table in both pods (iptables -t nat -S; the nft backend prints -m tcp for --dport):"
ip netns exec $SRV iptables -t nat -S | sed 's/^/   /'
sleep 1
for ns in $CLI $SRV; do
  echo "$ns interfaces (SLL2 ifindex):" $(ip -n $ns -o link show | awk '{print $1 $2}' | cut -d@ -f1)
done

# start_capture NS FILE: tcpdump -i any (SLL2, as Istio operators run it in the pod), TCP only.
# -B 32768 (32 MiB ring): with -s 0 each ring slot is as big as lo's 64 KiB MTU. stop_captures
# fails the run if a tcpdump reports any kernel drop.
start_capture() { capture_start "$1" "$HERE/$2" any -y LINUX_SLL2; }
stop_captures() { captures_stop; }
# bg NS CMD...: a server process in namespace NS (BG = its pid); waits for it to listen.
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" & BG=$!; PIDS+=($BG); sleep 0.7; }
# app_curl SPORT: the productpage app (uid 1000, not the proxy's 1337) calls reviews:9080 twice
# on one keep-alive connection; DNS is replaced by --resolve (reviews -> the ClusterIP).
app_curl() {
  ip netns exec $CLI $AS_APP curl -sS --local-port "$1" --resolve reviews:9080:$VIP \
    -o /dev/null -o /dev/null -w '   curl: %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port} %{http_code}\n' \
    http://reviews:9080/reviews/0 http://reviews:9080/reviews/1
}
counters() {
  for ns in "$@"; do
    echo "   $ns nat counters:"
    ip netns exec "$ns" iptables -t nat -L -v -n -x | awk '$1 ~ /^[0-9]+$/ && $1 > 0 {print "     " $0}'
  done
}

echo "1+2. istio-inbound-podip-any (server pod) and istio-outbound-redirect-any (client pod), one run"
start_capture $SRV istio-inbound-podip-any.pcap
start_capture $CLI istio-outbound-redirect-any.pcap
sleep 1
bg $SRV $AS_APP $SIDECAR app 9080; APP=$BG
bg $SRV $AS_PROXY $SIDECAR inbound --pod-ip $S4 --cert $PKI/reviews.crt --key $PKI/reviews.key \
  --ca $PKI/ca.crt --mode strict --tls 1.3 --alpn $ALPN --app-sports 38410 --meta reviews-v2; IN=$BG
bg $CLI $AS_PROXY $SIDECAR outbound --pod-ip $C4 --route $VIP:9080=reviews@$S4:9080 --sports 52110 \
  --tls 1.3 --alpn $ALPN --cert $PKI/productpage.crt --key $PKI/productpage.key --ca $PKI/ca.crt \
  --meta productpage-v1; OUT=$BG
app_curl 45010
wait $OUT $IN $APP; stop_captures
counters $CLI $SRV

echo "3. istio-disable-redirect-any (client pod; DestinationRule DISABLE -> PERMISSIVE server)"
ip netns exec $CLI iptables -t nat -Z; ip netns exec $SRV iptables -t nat -Z
start_capture $CLI istio-disable-redirect-any.pcap
sleep 1
bg $SRV $AS_APP $SIDECAR app 9080; APP=$BG
bg $SRV $AS_PROXY $SIDECAR inbound --pod-ip $S4 --cert $PKI/reviews.crt --key $PKI/reviews.key \
  --ca $PKI/ca.crt --mode permissive --tls 1.3 --alpn $ALPN --app-sports 38430 --meta reviews-v2; IN=$BG
bg $CLI $AS_PROXY $SIDECAR outbound --pod-ip $C4 --route $VIP:9080=reviews@$S4:9080 --sports 52130 \
  --meta productpage-v1; OUT=$BG
app_curl 45030
wait $OUT $IN $APP; stop_captures
counters $CLI $SRV

chown --reference=. istio-inbound-podip-any.pcap istio-outbound-redirect-any.pcap istio-disable-redirect-any.pcap
ls -l istio-inbound-podip-any.pcap istio-outbound-redirect-any.pcap istio-disable-redirect-any.pcap

#!/usr/bin/env bash
# Regenerates the Istio-scenario captures captures/istio-*.pcap from real stacks (Python
# ssl/OpenSSL 3.0 and sockets in tools/mesh.py, curl) talking between two network namespaces
# this script creates and removes. No Kubernetes: the sidecars are emulated by tools/mesh.py.
# Run as root on Debian: sudo captures/make-istio.sh   (needs tcpdump, iproute2, ethtool, curl,
# tshark, python3 with the cryptography module). Traffic never leaves the namespaces.
# Ground truth for every file: captures/istio.md.
#
#   tsp-ist-c  "client pod" + "node": veth tsp-ist-c, 10.97.0.2/24 (pod) and 10.97.0.3/24 (node,
#              source of the kubelet probes and the Prometheus scrape)
#   tsp-ist-s  "server pod": veth tsp-ist-s, 10.97.0.1/24; lo (127.0.0.1 app, 127.0.0.6 = the
#              source address of the inbound sidecar's connections to the app, as in Istio)
#   ports:     9080 server sidecar (the service port; no iptables redirect here)
#              9080 app (127.0.0.1 only; the sidecar listens on 10.97.0.1:9080), 15020/15021/15090 pilot-agent / Envoy health + metrics
#
# Fixed client source ports (a regeneration keeps them; TIME_WAIT never collides because every
# 4-tuple is used once per run and the namespaces are new at each run):
#   1 istio-mtls-tls13-any     10.97.0.2:51902 -> :9080      127.0.0.6:38402 -> 127.0.0.1:9080
#   2 istio-mtls-tls12         10.97.0.2:51910 -> :9080      (127.0.0.6:38410 -> app, not recorded)
#   3 istio-disable-plaintext  10.97.0.2:51920 -> :9080      (127.0.0.6:38420 -> app, not recorded)
#   4 istio-strict-reset       10.97.0.2:51930, 51932 -> :9080
#   5 istio-permissive         10.97.0.2:51940 (mTLS), 51950 (curl) -> :9080
#                              (127.0.0.6:38440, 38450 -> app, not recorded)
#   6 istio-health-probes      10.97.0.3:52020 -> :15020, 52021 -> :15021, 52090 -> :15090
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
MESH="python3 $HERE/tools/mesh.py"
PKI=$HERE/pki
IPKI=$PKI/istio
CLI=tsp-ist-c SRV=tsp-ist-s
S4=10.97.0.1 C4=10.97.0.2 NODE=10.97.0.3
ALPN=istio-peer-exchange,istio-http/1.1,istio

. tools/lib.sh
NETNS=($CLI $SRV)
trap lib_cleanup EXIT
lib_cleanup

python3 tools/pki.py "$PKI"            # only makes captures/pki/ if missing (mesh CA)

ip netns add $CLI
ip netns add $SRV
# No IPv6 (no router solicitations or MLD reports around the recordings).
for ns in $CLI $SRV; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
done
ip link add $CLI netns $CLI type veth peer name $SRV netns $SRV
for ns in $CLI $SRV; do ip -n $ns link set lo up; done
ip -n $CLI addr add $C4/24 dev $CLI
ip -n $CLI addr add $NODE/24 dev $CLI
ip -n $SRV addr add $S4/24 dev $SRV
ip -n $CLI link set $CLI up
ip -n $SRV link set $SRV up
# One wire segment per packet, as a NIC would show them (no TSO/GSO super-packets).
ip netns exec $CLI ethtool -K $CLI tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $SRV ethtool -K $SRV tso off gso off gro off >/dev/null 2>&1 || true
sleep 1
# Static neighbours: no ARP at all, so each capture starts with its first SYN.
CMAC=$(ip -n $CLI -br link show $CLI | awk '{print $3}')
SMAC=$(ip -n $SRV -br link show $SRV | awk '{print $3}')
ip -n $CLI neigh replace $S4 lladdr "$SMAC" dev $CLI nud permanent
ip -n $SRV neigh replace $C4 lladdr "$CMAC" dev $SRV nud permanent
ip -n $SRV neigh replace $NODE lladdr "$CMAC" dev $SRV nud permanent

echo "server namespace interfaces (SLL2 ifindex in the -i any file):" $(ip -n $SRV -o link show | awk '{print $1 $2}' | cut -d@ -f1)

in_cli() { ip netns exec $CLI "$@"; }

# start_capture FILE IFACE [tcpdump args...]: TCP only, in the server namespace. -B 32768 (32 MiB
# ring): with -s 0 each ring slot is as big as lo's 64 KiB MTU, and the default 2 MiB ring
# overflowed on the -i any burst ("packets dropped by kernel"). stop_capture fails the run if
# tcpdump reports any kernel drop, so a file is never silently missing packets.
start_capture() { local out=$1 ifc=$2; shift 2; capture_start $SRV "$HERE/$out" "$ifc" "$@"; sleep 1; }
stop_capture() { captures_stop; }
# serve CMD...: starts a server in the server namespace (SERVER = its pid); waits for it to listen.
serve() { ip netns exec $SRV "$@" & SERVER=$!; PIDS+=($SERVER); sleep 0.7; }
# sidecar_in PORT ARGS...: the server pod's inbound sidecar (certificate reviews unless given).
# It listens on the pod address only, so that the app can listen on the same port on 127.0.0.1:
# Envoy forwards to the port the client dialled (here over loopback, as Istio before 1.10 did;
# later versions use the pod IP with iptables, which this namespace does not have).
sidecar_in() { serve $MESH sidecar-in "$@" --bind $S4 --ca $PKI/ca.crt; }

echo "1. istio-mtls-tls13-any (tcpdump -i any: veth TLS 1.3 mTLS + loopback leg to the app)"
start_capture istio-mtls-tls13-any.pcap any -y LINUX_SLL2
serve $MESH app 9080; APP=$SERVER
sidecar_in 9080 --cert $PKI/reviews.crt --key $PKI/reviews.key --mode strict --tls 1.3 --alpn $ALPN \
  --app-sports 38402 --meta reviews-v2
in_cli $MESH sidecar-out $S4 9080 --sport 51902 --tls 1.3 --sni outbound_.9080_._.reviews.default.svc.cluster.local \
  --alpn $ALPN --cert $PKI/productpage.crt --key $PKI/productpage.key --ca $PKI/ca.crt \
  --paths /reviews/0,/reviews/1 --host reviews:9080 --meta productpage-v1
wait $SERVER $APP; stop_capture

echo "2. istio-mtls-tls12 (TLS 1.2: certificates on the wire; client cert expires in 40 min)"
# Fresh certificates in pki/istio/ (ratings: now-1h .. now+23h; reviews-short: now-1h .. now+40min),
# made right before this capture so "now" is the capture time to within about a second.
python3 tools/mesh_pki.py "$PKI"
start_capture istio-mtls-tls12.pcap $SRV
serve $MESH app 9080; APP=$SERVER
sidecar_in 9080 --cert $IPKI/ratings.crt --key $IPKI/ratings.key --mode strict --tls 1.2 --alpn $ALPN \
  --app-sports 38410 --meta ratings-v1
in_cli $MESH sidecar-out $S4 9080 --sport 51910 --tls 1.2 --sni outbound_.9080_._.ratings.default.svc.cluster.local \
  --alpn $ALPN --cert $IPKI/reviews-short.crt --key $IPKI/reviews-short.key --ca $PKI/ca.crt \
  --paths /ratings/0 --host ratings:9080 --meta productpage-v1
wait $SERVER $APP; stop_capture

echo "3. istio-disable-plaintext (DestinationRule DISABLE -> PERMISSIVE server)"
start_capture istio-disable-plaintext.pcap $SRV
serve $MESH app 9080; APP=$SERVER
sidecar_in 9080 --cert $PKI/reviews.crt --key $PKI/reviews.key --mode permissive --alpn $ALPN \
  --app-sports 38420 --meta reviews-v2
in_cli $MESH sidecar-out $S4 9080 --sport 51920 --paths /reviews/0,/reviews/1 --host reviews:9080 \
  --meta productpage-v1 --token
wait $SERVER $APP; stop_capture

echo "4. istio-strict-reset (DISABLE client -> STRICT server: plaintext request, RST; retried once)"
start_capture istio-strict-reset.pcap $SRV
sidecar_in 9080 --cert $PKI/reviews.crt --key $PKI/reviews.key --mode strict --alpn $ALPN --count 2
in_cli $MESH sidecar-out $S4 9080 --sport 51930 --paths /reviews/0 --host reviews:9080 --meta productpage-v1 --expect-reset
sleep 0.025   # Envoy's default retry back-off base is 25 ms
in_cli $MESH sidecar-out $S4 9080 --sport 51932 --paths /reviews/0 --host reviews:9080 --meta productpage-v1 --expect-reset
wait $SERVER; stop_capture

echo "5. istio-permissive (one port: mTLS from the client sidecar, then plaintext from outside the mesh)"
start_capture istio-permissive.pcap $SRV
serve $MESH app 9080 --count 2; APP=$SERVER
sidecar_in 9080 --cert $PKI/reviews.crt --key $PKI/reviews.key --mode permissive --tls 1.3 --alpn $ALPN \
  --app-sports 38440,38450 --meta reviews-v2 --count 2
in_cli $MESH sidecar-out $S4 9080 --sport 51940 --tls 1.3 --sni outbound_.9080_._.reviews.default.svc.cluster.local \
  --alpn $ALPN --cert $PKI/productpage.crt --key $PKI/productpage.key --ca $PKI/ca.crt \
  --paths /reviews/0 --host reviews:9080 --meta productpage-v1
in_cli curl -sS --local-port 51950 -o /dev/null -w '   curl: %{http_code}\n' http://$S4:9080/reviews/2
wait $SERVER $APP; stop_capture

echo "6. istio-health-probes (kubelet probes to 15020/15021, Prometheus scrape of 15090, from the node)"
start_capture istio-health-probes.pcap $SRV
serve $MESH probe-server --ports 15020,15021,15090 --count 3
in_cli $MESH probe $S4 15020 /app-health/reviews/readyz --src $NODE --sport 52020 --kind kube
in_cli $MESH probe $S4 15021 /healthz/ready --src $NODE --sport 52021 --kind kube
in_cli $MESH probe $S4 15090 /stats/prometheus --src $NODE --sport 52090 --kind prometheus
wait $SERVER; stop_capture

chown --reference=. istio-*.pcap
ls -l istio-*.pcap

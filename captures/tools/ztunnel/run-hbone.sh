#!/usr/bin/env bash
# Run two REAL ztunnels (dedicated mode, FAKE_CA, local config file, no Kubernetes) in two
# network namespaces joined by a veth pair, send one HTTP request from a client app in
# namespace A through ztunnel A -> HBONE (mTLS, HTTP/2 CONNECT, port 15008) -> ztunnel B ->
# HTTP server in namespace B, and record the veth with tcpdump.
#
# Usage: [KEYLOG=/abs/keys.log] run-hbone.sh [ZTUNNEL_BIN] [OUT_PCAP]
#   KEYLOG: passed as SSLKEYLOGFILE to both ztunnels; only the ZT_KEYLOG=1 build writes it
#   (upstream ztunnel ignores SSLKEYLOGFILE).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ZT=${1:-/tmp/ztunnel-target/ztunnel-upstream}
OUT=${2:-$HERE/hbone-try.pcap}
CFG=$HERE/hbone-local.yaml
A=ztA-$$ B=ztB-$$            # namespace names unique to this run
WORK=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT

# 1. Two namespaces, one veth pair: A=10.99.0.1 (client workload), B=10.99.0.2 (server workload).
ip netns add "$A"; ip netns add "$B"
ip link add vza type veth peer name vzb
ip link set vza netns "$A"; ip link set vzb netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev vza; ip -n "$B" addr add 10.99.0.2/24 dev vzb
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set vza up; ip -n "$B" link set vzb up
# A route for the Service VIP 10.96.0.10 (nothing owns it; the REDIRECT below catches it first).
ip -n "$A" route add 10.96.0.0/16 dev vza

# 2. Redirection in A (same rule as ztunnel's scripts/ztunnel-redirect.sh): outbound TCP that is
#    not on lo and does not carry ztunnel's socket mark 0x539 (PACKET_MARK=1337) goes to 15001.
ip netns exec "$A" iptables -w -t nat -A OUTPUT -p tcp ! -o lo -m mark ! --mark 0x539/0xfff \
   -j REDIRECT --to-ports 15001

# 3. The server app in B: a plain HTTP server on 10.99.0.2:8080.
mkdir -p "$WORK/www"; echo "hello through hbone" > "$WORK/www/index.txt"
ip netns exec "$B" python3 -m http.server 8080 --bind 10.99.0.2 --directory "$WORK/www" \
   > "$WORK/http.log" 2>&1 &
pids+=($!)

# 4. One ztunnel per namespace. Dedicated mode = proxies exactly one workload
#    (PROXY_WORKLOAD_INFO=namespace/name/serviceaccount), FAKE_CA=true = certificates from the
#    built-in test CA (needs the 'testing' feature), LOCAL_XDS_PATH = config file instead of
#    istiod, XDS_ADDRESS="" = do not dial istiod. NODE_NAME must equal the workload's `node`.
run_zt() { # ns node workload
  ip netns exec "$1" env -i PATH="$PATH" HOME="$WORK" \
    FAKE_CA=true XDS_ADDRESS= CA_ADDRESS= LOCAL_XDS_PATH="$CFG" \
    PROXY_MODE=dedicated PROXY_WORKLOAD_INFO="$3" NODE_NAME="$2" \
    PACKET_MARK=1337 ENABLE_ORIG_SRC=false IPV6_ENABLED=false \
    ${KEYLOG:+SSLKEYLOGFILE="$KEYLOG"} \
    RUST_LOG=${RUST_LOG:-info} "$ZT" > "$WORK/zt-$2.log" 2>&1 &
  pids+=($!)
}
cd "$WORK"
run_zt "$A" node-a default/client/client
run_zt "$B" node-b default/server/server
sleep "${ZT_START_WAIT:-4}"
# readiness: 15021/healthz/ready inside each namespace
for n in "$A" "$B"; do ip netns exec "$n" curl -s -o /dev/null -w "$n ready: %{http_code}\n" \
   http://127.0.0.1:15021/healthz/ready || true; done

# 5. Capture on B's veth while the client in A makes two requests.
ip netns exec "$B" tcpdump -i vzb -U -w "$OUT" 'tcp' > "$WORK/tcpdump.log" 2>&1 &
tdpid=$!; pids+=($tdpid)
sleep 1
# two requests to the pod IP, one to the Service VIP: three CONNECT streams, one HBONE connection
ip netns exec "$A" curl -sS --max-time 10 http://10.99.0.2:8080/index.txt || echo "curl failed"
ip netns exec "$A" curl -sS --max-time 10 http://10.99.0.2:8080/index.txt || echo "curl failed"
ip netns exec "$A" curl -sS --max-time 10 http://10.96.0.10/index.txt || echo "curl failed"
sleep 1
kill "$tdpid"; sleep 0.5
echo "--- ztunnel A log (tail)"; tail -n 8 "$WORK/zt-node-a.log"
echo "--- ztunnel B log (tail)"; tail -n 8 "$WORK/zt-node-b.log"
cp "$WORK"/zt-node-*.log "$HERE/" 2>/dev/null || true
echo "pcap: $OUT"

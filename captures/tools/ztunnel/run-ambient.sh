#!/usr/bin/env bash
# Ambient-mode captures with the REAL ztunnel (dedicated mode, FAKE_CA, local config file, no
# Kubernetes), recorded with `tcpdump -i any` INSIDE the pod namespaces (Linux cooked v2 = SLL2,
# what `kubectl debug` + tcpdump in a pod gives).
#
# Usage: run-ambient.sh SCENARIO OUTDIR
#   main      -> ambient-client-any.pcap, ambient-server-any.pcap, ambient.keys
#   upstream  -> ambient-hbone-upstream.pcap            (unpatched binary, no key log)
#   refused   -> ambient-refused.pcap, ambient-refused.keys
#   waypoint  -> ambient-waypoint-proxy.pcap, ambient-waypoint-proxy.keys
#   nocert    -> ambient-nocert.pcap, ambient-nocert.keys
# KEEP_WORK=1 keeps the work directory (ztunnel logs, both key logs, app logs).
# Binaries (see build-ztunnel.sh): ZT_KEYLOG_BIN (default /tmp/ztunnel-target/ztunnel-keylog),
# ZT_UPSTREAM_BIN (default /tmp/ztunnel-target/ztunnel-upstream).
#
# Topology (all namespaces and links are created here and deleted by the trap):
#   ns A "client pod"  eth0 10.99.0.1  ztunnel A (default/client/client, node-a) + client apps
#   ns B "server pod"  eth0 10.99.0.2  ztunnel B (default/server/server, node-b) + HTTP app :8080
#   ns C "outside"     br0  10.99.0.3 (+ 169.254.7.127/32, the kubelet probe source)
#                      bridges both pods; runs non-mesh clients/servers; not in the config.
# Both pods get istio-cni's in-pod rules (the iptables-restore of ztunnel's
# scripts/ztunnel-redirect-inpod.sh): outbound TCP -> 15001, inbound TCP (not 15008, not from
# 169.254.7.127) -> 15006, ztunnel's mark 0x539 skips both, and ENABLE_ORIG_SRC=true with the
# CONNMARK 0x111 + `ip rule fwmark 0x111/0xfff lookup 100` + `local 0.0.0.0/0 dev lo table 100`
# return path, so delivery on lo carries the client's address as source.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCEN=${1:?scenario: main|upstream|refused|waypoint|nocert}
OUTDIR=$(cd "${2:?output dir}" && pwd)
ZT_KEYLOG_BIN=${ZT_KEYLOG_BIN:-/tmp/ztunnel-target/ztunnel-keylog}
ZT_UPSTREAM_BIN=${ZT_UPSTREAM_BIN:-/tmp/ztunnel-target/ztunnel-upstream}
CFG=$HERE/ambient.yaml
ZT=$ZT_KEYLOG_BIN
case "$SCEN" in
  main|nocert) ;;
  upstream) ZT=$ZT_UPSTREAM_BIN ;;
  refused) CFG=$HERE/ambient-refused.yaml ;;
  waypoint) CFG=$HERE/ambient-waypoint.yaml ;;
  *) echo "unknown scenario $SCEN" >&2; exit 2 ;;
esac
[ -x "$ZT" ] || { echo "missing $ZT: run build-ztunnel.sh (ZT_KEYLOG=1 for the key-log build)" >&2; exit 1; }

A=ztA-$$ B=ztB-$$ C=ztC-$$          # namespace names unique to this run
WORK=$(mktemp -d /tmp/ambient-$SCEN.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for n in "$A" "$B" "$C"; do ip netns del "$n" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"   # KEEP_WORK=1 keeps the ztunnel logs and key logs
}
trap cleanup EXIT
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }
inC() { ip netns exec "$C" "$@"; }

# ---- 1. namespaces and links --------------------------------------------------------------
ip netns add "$A"; ip netns add "$B"; ip netns add "$C"
for n in "$A" "$B" "$C"; do   # IPv4 only: no IPv6 neighbour discovery noise in the captures
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$n" link set lo up
done
ip -n "$C" link add br0 type bridge mcast_snooping 0   # no IGMP (MRD join) noise
ip -n "$C" link set br0 up
ip -n "$C" addr add 10.99.0.3/24 dev br0
ip -n "$C" addr add 169.254.7.127/32 dev br0     # kubelet probe source (see ambient.md)
pod() { # ns ip side-name
  ip link add "zp$3$$" type veth peer name "zh$3$$"
  ip link set "zp$3$$" netns "$1"; ip link set "zh$3$$" netns "$C"
  ip -n "$1" link set "zp$3$$" name eth0
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$C" link set "zh$3$$" master br0 up
  ip -n "$1" route add default via 10.99.0.3 dev eth0   # covers the Service VIP 10.96.0.10
  ip -n "$1" route add 169.254.7.127/32 dev eth0        # the probe source is on-link
}
pod "$A" 10.99.0.1 a
pod "$B" 10.99.0.2 b

# ---- 2. istio-cni in-pod rules in both pods (copied from ztunnel scripts/ztunnel-redirect-inpod.sh)
inpod_rules() {
  ip netns exec "$1" iptables-restore --wait 10 --noflush <<'EOF'
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
COMMIT
EOF
  ip -n "$1" route add local 0.0.0.0/0 dev lo table 100
  ip -n "$1" rule add fwmark 0x111/0xfff pref 32764 lookup 100
}
inpod_rules "$A"
inpod_rules "$B"

# ---- 3. apps -------------------------------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/out"
echo "hello from the server pod" > "$WORK/www/index.txt"
echo "hello from outside the mesh" > "$WORK/out/index.txt"
bg() { "$@" >> "$WORK/apps.log" 2>&1 & pids+=($!); }
if [ "$SCEN" = waypoint ]; then
  # behind the PROXY tunnel: ztunnel connects 127.0.0.1 -> 127.0.0.1:15088 (LOCALHOST_APP_TUNNEL)
  bg inB python3 "$HERE/proxy-app.py" 127.0.0.1 15088 "$WORK/proxy-app.log"
else
  bg inB python3 -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
fi
if [ "$SCEN" = main ]; then
  bg inC python3 -m http.server 8081 --bind 10.99.0.3 --directory "$WORK/out"
  bg inC python3 "$HERE/udp-echo.py" server 10.99.0.3 4433
fi

# ---- 4. one ztunnel per pod ------------------------------------------------------------------
# Dedicated mode proxies exactly one workload (PROXY_WORKLOAD_INFO=ns/name/sa); NODE_NAME must
# equal the workload's `node`; PACKET_MARK=1337 (0x539) marks ztunnel's own sockets so the
# REDIRECT rules skip them; ENABLE_ORIG_SRC=true makes the listeners IP_TRANSPARENT and the
# inbound delivery bind the client's address (src/proxy.rs maybe_set_transparent, freebind_connect).
run_zt() { # ns node workload
  ip netns exec "$1" env -i PATH="$PATH" HOME="$WORK" \
    FAKE_CA=true XDS_ADDRESS= CA_ADDRESS= LOCAL_XDS_PATH="$CFG" \
    PROXY_MODE=dedicated PROXY_WORKLOAD_INFO="$3" NODE_NAME="$2" \
    PACKET_MARK=1337 ENABLE_ORIG_SRC=true IPV6_ENABLED=false \
    SSLKEYLOGFILE="$WORK/keys-$2.log" \
    RUST_LOG=${RUST_LOG:-info} "$ZT" > "$WORK/zt-$2.log" 2>&1 &
  pids+=($!)
}
cd "$WORK"
run_zt "$A" node-a default/client/client
run_zt "$B" node-b default/server/server
for n in "$A" "$B"; do
  for _ in $(seq 100); do
    code=$(ip netns exec "$n" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15021/healthz/ready || true)
    [ "$code" = 200 ] && break; sleep 0.1
  done
  echo "$n ready: $code"
done
grep -h "transparent" "$WORK"/zt-node-*.log | sed 's/^/  /' || true

# ---- 5. capture ----------------------------------------------------------------------------
cap() { # ns file
  ip netns exec "$1" tcpdump -i any -U -n -w "$2" 'not port 15021 and not port 15000 and not port 15020' \
    >> "$WORK/tcpdump.log" 2>&1 &
  pids+=($!); tdpids+=($!)
}
tdpids=()
curlA() { inA curl -sS --max-time 10 "$@" || echo "curl failed: $*"; }
case "$SCEN" in
  main)
    cap "$A" "$OUTDIR/ambient-client-any.pcap"
    cap "$B" "$OUTDIR/ambient-server-any.pcap"
    sleep 1
    # HBONE: two requests to the pod IP, one to the Service VIP -> 3 CONNECT streams, 1 connection
    curlA --local-port 41001 http://10.99.0.2:8080/index.txt
    curlA --local-port 41002 http://10.99.0.2:8080/index.txt
    curlA --local-port 41003 http://10.96.0.10/index.txt
    # (a) plaintext bypass: client outside the mesh -> server app port; B's PREROUTING
    #     REDIRECT sends it to ztunnel B's 15006 (inbound passthrough), which delivers it on lo
    inC curl -sS --max-time 10 --local-port 41010 http://10.99.0.2:8080/index.txt || echo "bypass failed"
    # (b) client app -> destination outside the mesh: ztunnel A passes it through in plaintext
    curlA --local-port 41020 http://10.99.0.3:8081/index.txt
    # (c) UDP leaving the client pod (no rule touches UDP other than port 53)
    inA python3 "$HERE/udp-echo.py" client 10.99.0.3 4433 41030 ping-1 ping-2 || echo "udp failed"
    # (d) kubelet-like probe from 169.254.7.127: ACCEPTed by the in-pod rule, straight to the app
    inC curl -sS --max-time 10 --interface 169.254.7.127 --local-port 41040 -A kube-probe/1.31 \
      http://10.99.0.2:8080/index.txt || echo "probe failed"
    ;;
  upstream)
    cap "$B" "$OUTDIR/ambient-hbone-upstream.pcap"
    sleep 1
    curlA --local-port 41301 http://10.99.0.2:8080/index.txt
    curlA --local-port 41302 http://10.99.0.2:8080/index.txt
    curlA --local-port 41303 http://10.96.0.10/index.txt
    ;;
  refused)
    cap "$A" "$OUTDIR/ambient-refused.pcap"
    sleep 1
    curlA --local-port 41101 http://10.99.0.2:8080/index.txt      # allowed: 200
    curlA --local-port 41102 http://10.99.0.2:9090/index.txt      # DENY policy on port 9090
    ;;
  waypoint)
    cap "$B" "$OUTDIR/ambient-waypoint-proxy.pcap"
    sleep 1
    curlA --local-port 41201 http://10.99.0.2:8080/index.txt
    ;;
  nocert)
    cap "$B" "$OUTDIR/ambient-nocert.pcap"
    sleep 1
    inC python3 "$HERE/nocert-client.py" 10.99.0.2 15008 41501 "$WORK/keys-python.log" || echo "nocert client failed"
    ;;
esac
echo
sleep 1.5
for p in "${tdpids[@]}"; do kill "$p"; done
sleep 0.5
cat "$WORK/tcpdump.log" | grep -v "^tcpdump: listening\|^$" || true

# ---- 6. key log (both ztunnels write the same secrets, one per side; keep each line once) ----
keys=""
case "$SCEN" in
  main) keys=ambient.keys ;; refused) keys=ambient-refused.keys ;;
  waypoint) keys=ambient-waypoint-proxy.keys ;; nocert) keys=ambient-nocert.keys ;;
esac
if [ -n "$keys" ]; then
  cat "$WORK"/keys-*.log 2>/dev/null | awk 'NF && !seen[$0]++' > "$OUTDIR/$keys"
  echo "keys: $OUTDIR/$keys ($(wc -l < "$OUTDIR/$keys") lines)"
fi
echo "--- ztunnel A access log"; grep -h "access" "$WORK/zt-node-a.log" | sed 's/^/  /' || true
echo "--- ztunnel B access log"; grep -h "access\|error" "$WORK/zt-node-b.log" | sed 's/^/  /' || true
[ -f "$WORK/proxy-app.log" ] && { echo "--- proxy-app"; cat "$WORK/proxy-app.log"; }
[ -n "${KEEP_WORK:-}" ] && echo "work dir (kept): $WORK"
exit 0

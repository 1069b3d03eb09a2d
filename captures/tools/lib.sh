# Shared by the captures/make-*.sh scripts (sourced):
# background processes stopped by pid, namespaces removed, and tcpdump runs that fail the
# script when one reports a kernel drop, so a committed file is never silently missing packets.
#
#   NETNS=(a b)                 namespaces this script owns (deleted by lib_cleanup)
#   PIDS+=($!)                  every background process it starts
#   lib_traps                   on exit, INT or TERM: lib_cleanup, and $WORK removed (unless
#                               KEEP_WORK is set); leftovers of an earlier run removed now
#   capture_start NS FILE IFACE [tcpdump args...]; ...; captures_stop

PIDS=() TCPDUMPS=() TDLOGS=() NETNS=()

# Stops every process the script started (by pid, never by name) and deletes its namespaces.
lib_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "${TDLOGS[@]}"
}

# The exit traps of a capture script (see the header); call after setting NETNS and WORK.
lib_traps() {
  trap 'lib_cleanup; [ -n "${KEEP_WORK:-}" ] || rm -rf "${WORK:-}"' EXIT
  trap 'exit 130' INT TERM
  lib_cleanup
}

# capture_start NS FILE IFACE [tcpdump args...]: records TCP on IFACE in namespace NS to FILE.
# -B 32768 (32 MiB ring): with -s 0 each ring slot is as big as lo's 64 KiB MTU, and the default
# 2 MiB ring overflowed on an -i any burst. Later tcpdump arguments win (`-s 96`).
capture_start() {
  local ns=$1 out=$2 ifc=$3; shift 3
  local log; log=$(mktemp /tmp/tsp-tcpdump.XXXXXX)
  rm -f "$out"
  ip netns exec "$ns" tcpdump -U --immediate-mode -n -s 0 -B 32768 -i "$ifc" "$@" -w "$out" tcp \
    >/dev/null 2>"$log" &
  TCPDUMPS+=($!); PIDS+=($!); TDLOGS+=("$log")
}

# Ends every running capture; exits 1 if one reported a kernel drop.
captures_stop() {
  sleep 1
  for t in "${TCPDUMPS[@]}"; do kill -INT "$t"; wait "$t" || true; done
  for l in "${TDLOGS[@]}"; do
    if ! grep -q '^0 packets dropped by kernel' "$l"; then
      echo "tcpdump lost packets:" >&2; cat "$l" >&2; exit 1
    fi
    rm -f "$l"
  done
  TCPDUMPS=() TDLOGS=()
}

# Istio's sidecar nat table in netns $1, as `istio-iptables` writes it (captures/make-istio-iptables.sh's
# header gives the source). Applied with iptables-restore --noflush, exactly these lines, in this order.
istio_iptables() {
  ip netns exec "$1" iptables-restore --noflush <<'EOF'
*nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
EOF
}

# veth_pair CLI SRV C4 S4: namespaces CLI and SRV joined by a veth pair named after them, with
# addresses C4/24 and S4/24, IPv6 off, one wire segment per packet (no TSO/GSO/GRO
# super-packets, as a NIC would show them) and static neighbours (no ARP: every capture starts
# with its first SYN).
veth_pair() {
  ip netns add $1
  ip netns add $2
  for ns in $1 $2; do
    ip netns exec $ns sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
  done
  ip link add $1 netns $1 type veth peer name $2 netns $2
  for ns in $1 $2; do ip -n $ns link set lo up; done
  ip -n $1 addr add $3/24 dev $1
  ip -n $2 addr add $4/24 dev $2
  ip -n $1 link set $1 up
  ip -n $2 link set $2 up
  # One wire segment per packet, as a NIC would show them (no TSO/GSO super-packets).
  ip netns exec $1 ethtool -K $1 tso off gso off gro off >/dev/null
  ip netns exec $2 ethtool -K $2 tso off gso off gro off >/dev/null
  # Static neighbours: no ARP, so every capture starts with its first SYN.
  local cmac smac
  cmac=$(ip -n $1 -br link show $1 | awk '{print $3}')
  smac=$(ip -n $2 -br link show $2 | awk '{print $3}')
  ip -n $1 neigh replace $4 lladdr "$smac" dev $1 nud permanent
  ip -n $2 neigh replace $3 lladdr "$cmac" dev $2 nud permanent
}

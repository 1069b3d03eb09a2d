#!/usr/bin/env bash
# Emulated Istio ambient captures: what the real ztunnel (make-ambient.sh) cannot give here.
# The HBONE endpoints are tools/hbone-emu.py (Python ssl + python3-h2, ztunnel's wire format);
# curl and `python3 -m http.server` are the apps. Ground truth: captures/ambient.md, section
# "Emulated: ...". Not run by CI. Run as root on Debian (tcpdump, iproute2, iptables, curl,
# openssl, tshark, /usr/bin/python3 with python3-h2):
#
#   sudo captures/make-ambient-emu.sh           # regenerate all, then check
#   captures/make-ambient-emu.sh --check        # only check the committed files (tshark)
#
# Scenarios (each run creates its namespaces ehA-/ehG-/ehB-<pid> and deletes them on exit):
#   double  -> ambient-emu-double-hbone{,-gw,-server}.pcap + ambient-emu-double-hbone.keys
#              client pod (network1) -> east-west gateway -> server pod (network2), double HBONE
#   nocert  -> ambient-emu-nocert-accepted.pcap + .keys: the server requests no certificate
#   optional-> ambient-emu-nocert-optional.pcap + .keys: the server requests one, the client
#              sends an empty Certificate, the server accepts it
# Certificates: a throw-away mesh CA and SPIFFE workload certificates, made with openssl in the
# work directory at every run (test keys, deleted on exit).
set -euo pipefail
cd "$(dirname "$0")"
CAPS=$(pwd)
EMU=$CAPS/tools/hbone-emu.py
PY=/usr/bin/python3   # Debian's interpreter: it has python3-h2

run_scenario() { # scenario
  local SCEN=$1
  A=ehA-$$ G=ehG-$$ B=ehB-$$
  WORK=$(mktemp -d /tmp/ambient-emu-$SCEN.XXXXXX)
  pids=() tdpids=()
  cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for n in "$A" "$G" "$B"; do ip netns del "$n" 2>/dev/null || true; done
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  }
  trap cleanup EXIT
  bg() { "$@" >> "$WORK/procs.log" 2>&1 & pids+=($!); }

  # ---- PKI: istiod-like leaf certificates (ECDSA P-256, empty subject, one critical URI SAN,
  #      digitalSignature + keyEncipherment, serverAuth + clientAuth), one mesh root.
  P=$WORK/pki; mkdir -p "$P"
  openssl ecparam -name prime256v1 -genkey -noout -out "$P/ca.key"
  openssl req -x509 -new -key "$P/ca.key" -subj "/O=cluster.local" -days 2 -out "$P/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  leaf() { # name spiffe-id
    openssl ecparam -name prime256v1 -genkey -noout -out "$P/$1.key"
    openssl req -new -key "$P/$1.key" -subj / -out "$P/$1.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:$2" \
      "authorityKeyIdentifier=keyid" > "$P/$1.ext"
    openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 1 \
      -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
  }
  leaf client spiffe://cluster.local/ns/default/sa/client
  leaf server spiffe://cluster.local/ns/default/sa/server
  leaf gateway spiffe://cluster.local/ns/istio-system/sa/istio-eastwestgateway

  # rustls' HBONE offer: TLS_AES_256_GCM_SHA384 then TLS_AES_128_GCM_SHA256 (no ChaCha20),
  # groups x25519, secp256r1, secp384r1 (without the X25519MLKEM768 OpenSSL 3.0 lacks).
  cat > "$WORK/openssl.cnf" <<'EOF'
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256
Groups = X25519:P-256:P-384
EOF
  export OPENSSL_CONF=$WORK/openssl.cnf

  # ---- namespaces
  for n in "$A" "$G" "$B"; do
    ip netns add "$n"
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$n" link set lo up
  done
  link() { # nsX ifX addrX nsY ifY addrY
    ip link add "eh$$x" type veth peer name "eh$$y"
    ip link set "eh$$x" netns "$1"; ip link set "eh$$y" netns "$4"
    ip -n "$1" link set "eh$$x" name "$2"; ip -n "$4" link set "eh$$y" name "$5"
    ip -n "$1" addr add "$3" dev "$2"; ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up; ip -n "$4" link set "$5" up
  }
  # in-pod outbound rule of istio-cni (subset of make-ambient.sh's): TCP not to 127.0.0.1 and
  # not marked 0x539 goes to 15001; the emulator's own socket carries the mark.
  redirect_out() {
    ip netns exec "$1" iptables -t nat -A OUTPUT -p tcp ! -d 127.0.0.1/32 -m mark ! --mark 0x539/0xfff \
      -j REDIRECT --to-ports 15001
  }
  mkdir -p "$WORK/www"; echo "hello from the server pod" > "$WORK/www/index.txt"
  cap() { # ns file
    ip netns exec "$1" tcpdump -i any -U -n -w "$2" >> "$WORK/tcpdump.log" 2>&1 &
    pids+=($!); tdpids+=($!)
  }
  emu() { # ns role args...
    local ns=$1; shift
    ip netns exec "$ns" env OPENSSL_CONF="$OPENSSL_CONF" "$PY" "$EMU" "$@" >> "$WORK/emu-$1.log" 2>&1 &
    pids+=($!)
  }
  waitport() { # ns ip port
    for _ in $(seq 50); do ip netns exec "$1" ss -Hltn "sport = :$3" | grep -q . && return; sleep 0.1; done
    echo "port $2:$3 not up in $1" >&2; return 1
  }

  case "$SCEN" in
  double)
    # A: client pod on network1. G: east-west gateway, 10.99.1.2 faces network1, 10.99.2.1
    # network2. B: server pod on network2, unreachable from A except through G.
    link "$A" eth0 10.99.1.1/24 "$G" eth0 10.99.1.2/24
    link "$G" eth1 10.99.2.1/24 "$B" eth0 10.99.2.2/24
    ip -n "$A" route add default via 10.99.1.2   # the Service VIP 10.96.0.10 needs a route
    redirect_out "$A"
    bg ip netns exec "$B" "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
    emu "$B" server --listen 10.99.2.2:15008 --pod-ip 10.99.2.2 --ca "$P/ca.crt" \
      --cert "$P/server.crt" --key "$P/server.key" --keylog "$WORK/keys-server.log" \
      --route server.default.svc.cluster.local:80=8080 \
      --baggage k8s.cluster.name=cluster2,k8s.namespace.name=default,k8s.deployment.name=server,service.name=server
    emu "$G" gateway --listen 10.99.1.2:15008 --ca "$P/ca.crt" \
      --cert "$P/gateway.crt" --key "$P/gateway.key" --keylog "$WORK/keys-gateway.log" \
      --route server.default.svc.cluster.local:80=10.99.2.2:15008
    emu "$A" client --listen 127.0.0.1:15001 --ca "$P/ca.crt" \
      --cert "$P/client.crt" --key "$P/client.key" --keylog "$WORK/keys-client.log" \
      --service 10.96.0.10:80=server.default.svc.cluster.local --gateway 10.99.1.2:15008 --network network1 \
      --outer-id spiffe://cluster.local/ns/istio-system/sa/istio-eastwestgateway \
      --inner-id spiffe://cluster.local/ns/default/sa/server \
      --baggage k8s.cluster.name=cluster1,k8s.namespace.name=default,k8s.deployment.name=client,service.name=client
    waitport "$B" 10.99.2.2 8080; waitport "$B" 10.99.2.2 15008; waitport "$G" 10.99.1.2 15008
    waitport "$A" 127.0.0.1 15001
    cap "$A" "$CAPS/ambient-emu-double-hbone.pcap"
    cap "$G" "$CAPS/ambient-emu-double-hbone-gw.pcap"
    cap "$B" "$CAPS/ambient-emu-double-hbone-server.pcap"
    sleep 1
    ip netns exec "$A" curl -sS --max-time 10 --local-port 41601 http://10.96.0.10/index.txt || echo "curl failed"
    KEYS=ambient-emu-double-hbone.keys
    ;;
  nocert|optional)
    # A: client pod 10.99.0.1, B: server pod 10.99.0.2, one link. No client certificate.
    link "$A" eth0 10.99.0.1/24 "$B" eth0 10.99.0.2/24
    redirect_out "$A"
    bg ip netns exec "$B" "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
    mode=none; [ "$SCEN" = optional ] && mode=optional
    emu "$B" server --listen 10.99.0.2:15008 --pod-ip 10.99.0.2 --ca "$P/ca.crt" \
      --cert "$P/server.crt" --key "$P/server.key" --keylog "$WORK/keys-server.log" --client-cert $mode
    emu "$A" client --listen 127.0.0.1:15001 --ca "$P/ca.crt" --keylog "$WORK/keys-client.log" \
      --outer-id spiffe://cluster.local/ns/default/sa/server
    waitport "$B" 10.99.0.2 8080; waitport "$B" 10.99.0.2 15008; waitport "$A" 127.0.0.1 15001
    if [ "$SCEN" = nocert ]; then F=ambient-emu-nocert-accepted; port=41701; else F=ambient-emu-nocert-optional; port=41702; fi
    cap "$B" "$CAPS/$F.pcap"
    sleep 1
    ip netns exec "$A" curl -sS --max-time 10 --local-port $port http://10.99.0.2:8080/index.txt || echo "curl failed"
    KEYS=$F.keys
    ;;
  esac
  sleep 1
  for p in "${tdpids[@]}"; do kill "$p"; done
  sleep 0.5
  grep -v "^tcpdump: listening\|^$" "$WORK/tcpdump.log" || true
  cat "$WORK"/keys-*.log | awk 'NF && !seen[$0]++' > "$CAPS/$KEYS"
  echo "keys: $KEYS ($(wc -l < "$CAPS/$KEYS") lines)"
  for f in "$WORK"/emu-*.log; do echo "--- $(basename "$f")"; sed 's/^/  /' "$f"; done
  [ -n "${KEEP_WORK:-}" ] && echo "work dir (kept): $WORK"
  cleanup; trap - EXIT
}

if [ "${1:-}" != --check ]; then
  LOGDIR=$(mktemp -d /tmp/make-ambient-emu.XXXXXX)
  for scen in ${SCENARIOS:-double nocert optional}; do
    echo "== $scen (log: $LOGDIR/$scen.log)"
    ( run_scenario "$scen" ) > "$LOGDIR/$scen.log" 2>&1 || { tail -n 30 "$LOGDIR/$scen.log"; exit 1; }
  done
  chmod 644 ambient-emu-*.pcap ambient-emu-*.keys
  ls -l ambient-emu-*.pcap ambient-emu-*.keys
fi

# Checks: the facts captures/ambient.md states (needs tshark). Exit 1 on any mismatch.
fail=0
check() { # description expected actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2] got [$3]"; fail=1; fi
}
ts() { # pcap keys tshark-args... (HBONE port as TLS, key log)
  local f=$1 k=$2; shift 2
  tshark -r "$f" -o "tls.keylog_file:$k" -d tcp.port==15008,tls "$@" 2>/dev/null
}
h2() { # pcap keys header-name: the values of that HTTP/2 header, in frame order, space-separated
  ts "$1" "$2" -Y 'http2.type==1' -T fields -E separator="$(printf '\001')" -E aggregator="$(printf '\001')" \
    -e http2.header.name -e http2.header.value |
  awk -F'\001' -v want="$3" '{ n = NF / 2; for (i = 1; i <= n; i++) if ($i == want) print $(i + n) }' |
  tr '\n' ' ' | sed 's/ $//'
}
hs() { # pcap keys: per TLS handshake message group "type,type..." in frame order, space-separated
  ts "$1" "$2" -Y tls.handshake -T fields -e tls.handshake.type | tr '\n' ' ' | sed 's/ $//'
}
syns() { tshark -r "$1" -Y "tcp.flags.syn==1 && tcp.flags.ack==0 && $2" 2>/dev/null | wc -l; }
D=ambient-emu-double-hbone K=ambient-emu-double-hbone.keys
SVC=server.default.svc.cluster.local:80
FWD='for="10.99.1.1:41601";host=server.default.svc.cluster.local'
CH='1 2,8,13,11,15,20 11,15,20 4,4'   # ClientHello, server flight with CertificateRequest, client cert flight, 2 tickets
# double HBONE, client pod
check "double/client: one HBONE connection, to the gateway" 1 "$(syns $D.pcap 'ip.dst==10.99.1.2 && tcp.dstport==15008')"
check "double/client: nothing to network2" 0 "$(tshark -r $D.pcap -Y 'ip.addr==10.99.2.0/24' 2>/dev/null | wc -l)"
check "double/client: app -> 127.0.0.1:15001 on lo" 1 "$(syns $D.pcap 'sll.ifindex==1 && ip.src==10.99.1.1 && tcp.srcport==41601 && tcp.dstport==15001')"
check "double/client: outer CONNECT authority" "$SVC" "$(h2 $D.pcap $K :authority)"
check "double/client: outer forwarded" "$FWD" "$(h2 $D.pcap $K forwarded)"
check "double/client: no x-forwarded-network on the outer CONNECT" "" "$(h2 $D.pcap $K x-forwarded-network)"
check "double/client: outer status (gateway)" 200 "$(h2 $D.pcap $K :status)"
check "double/client: the first DATA on the tunnel is the inner ClientHello" 16030100 \
  "$(ts $D.pcap $K -Y 'http2.type==0 && ip.src==10.99.1.1' -T fields -e http2.data.data | head -1 | cut -c1-8)"
check "double/client: outer TLS handshake" "$CH" "$(hs $D.pcap $K)"
# double HBONE, gateway
check "double/gw: outer + relayed inner connection" "1 1" \
  "$(syns $D-gw.pcap 'ip.src==10.99.1.1 && tcp.dstport==15008') $(syns $D-gw.pcap 'ip.src==10.99.2.1 && ip.dst==10.99.2.2 && tcp.dstport==15008')"
check "double/gw: outer and inner CONNECT authority" "$SVC $SVC" "$(h2 $D-gw.pcap $K :authority)"
check "double/gw: forwarded (both)" "$FWD $FWD" "$(h2 $D-gw.pcap $K forwarded)"
check "double/gw: x-forwarded-network only inside" network1 "$(h2 $D-gw.pcap $K x-forwarded-network)"
check "double/gw: statuses (gateway, then destination)" "200 200" "$(h2 $D-gw.pcap $K :status)"
check "double/gw: both handshakes mutual, decrypted" "$CH $CH" "$(hs $D-gw.pcap $K)"
check "double/gw: identities (server, client) per connection" \
  "spiffe://cluster.local/ns/istio-system/sa/istio-eastwestgateway spiffe://cluster.local/ns/default/sa/client spiffe://cluster.local/ns/default/sa/server spiffe://cluster.local/ns/default/sa/client" \
  "$(ts $D-gw.pcap $K -Y 'tls.handshake.type==11' -T fields -e x509ce.uniformResourceIdentifier | tr '\n' ' ' | sed 's/ $//')"
check "double/gw: ClientHello: no SNI, ALPN h2, TLS 1.3 only, rustls' suites" \
  "0x1302,0x1301,0x00ff h2 0x0304 0x1302,0x1301,0x00ff h2 0x0304" \
  "$(ts $D-gw.pcap $K -Y 'tls.handshake.type==1 && !tls.handshake.extensions_server_name' -T fields \
      -e tls.handshake.ciphersuite -e tls.handshake.extensions_alpn_str -e tls.handshake.extensions.supported_version | tr '\t\n' '  ' | sed 's/ $//')"
check "double: key log has outer and inner secrets (2 x 5)" 10 "$(grep -c '^[A-Z0-9_]* [0-9a-f]* [0-9a-f]*$' $K)"
check "double: key log randoms = outer ClientHello (gw) + inner ClientHello (DATA in the client pod)" \
  "$(ts $D-gw.pcap $K -Y 'tls.handshake.type==1' -T fields -e tls.handshake.random | sort | tr '\n' ' ')" \
  "$(awk '/^CLIENT_TRAFFIC_SECRET_0/ {print $2}' $K | sort | tr '\n' ' ')"
check "double/client: the inner ClientHello random (in DATA) is in the key log" 1 \
  "$(grep -c "^CLIENT_TRAFFIC_SECRET_0 $(ts $D.pcap $K -Y 'http2.type==0 && ip.src==10.99.1.1' -T fields -e http2.data.data | head -1 | cut -c23-86) " $K)"
# double HBONE, server pod
check "double/server: inner HBONE from the gateway" 1 "$(syns $D-server.pcap 'ip.src==10.99.2.1 && tcp.dstport==15008')"
check "double/server: inner CONNECT" "$SVC network1 200" \
  "$(h2 $D-server.pcap $K :authority) $(h2 $D-server.pcap $K x-forwarded-network) $(h2 $D-server.pcap $K :status)"
check "double/server: delivery on lo to 8080" "GET /index.txt" \
  "$(tshark -r $D-server.pcap -Y 'sll.ifindex==1 && tcp.dstport==8080 && http.request' -T fields -e http.request.method -e http.request.uri 2>/dev/null | tr '\t' ' ')"
# no client certificate, accepted
for v in accepted optional; do
  F=ambient-emu-nocert-$v
  check "nocert-$v: CONNECT, status" "10.99.0.2:8080 for=\"10.99.0.1:$([ $v = accepted ] && echo 41701 || echo 41702)\" 200" \
    "$(h2 $F.pcap $F.keys :authority) $(h2 $F.pcap $F.keys forwarded) $(h2 $F.pcap $F.keys :status)"
  check "nocert-$v: delivered to the app on lo" 1 \
    "$(tshark -r $F.pcap -Y 'sll.ifindex==1 && tcp.dstport==8080 && http.request' 2>/dev/null | wc -l)"
done
check "nocert-accepted: no CertificateRequest, client sends only Finished" "1 2,8,11,15,20 20 4,4" \
  "$(hs ambient-emu-nocert-accepted.pcap ambient-emu-nocert-accepted.keys)"
check "nocert-optional: CertificateRequest, empty client Certificate" "1 2,8,13,11,15,20 11,20 4,4 0" \
  "$(hs ambient-emu-nocert-optional.pcap ambient-emu-nocert-optional.keys) $(ts ambient-emu-nocert-optional.pcap ambient-emu-nocert-optional.keys -Y 'tls.handshake.type==11 && ip.src==10.99.0.1' -T fields -e tls.handshake.certificates_length)"
for f in ambient-emu-*.pcap; do
  [ "$(stat -c %s "$f")" -lt 100000 ] || { echo "FAIL $f: 100 KB or more"; fail=1; }
done
exit $fail

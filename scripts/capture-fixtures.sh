#!/usr/bin/env bash
# Regenerates test/fixtures/kernel/*.txt: packets produced by the Linux kernel's own VXLAN, set up
# exactly as flanneld's vxlan backend does it, captured with `tcpdump -xx -vv -n` on the underlay.
#
# Usage (as root): scripts/capture-fixtures.sh [output-dir]   (default: test/fixtures/kernel)
#
# Safety: everything happens in three network namespaces named vxfx-<pid>-<random>-{ul,n1,n2},
# deleted on exit (also on failure / Ctrl-C). Underlay 198.18.0.0/24 on veth inside them, pod
# addresses 10.244.0.0/16 and fd00:244::/48 only on the flannel.1 devices inside them, no default
# route. Nothing is configured in the root namespace. Needs: ip, bridge, tcpdump, ping, iperf3,
# ethtool, bash (for /dev/tcp and /dev/udp).
#
# Every fixture file holds ONE packet: '#' note lines, then tcpdump's own output verbatim (the -vv
# summary lines and the 0x0000: hex lines, outer Ethernet header included). The notes record where
# it was captured and the state of the outer UDP and inner L4 checksums as found in the bytes:
#   complete  - the checksum verifies
#   partial   - the field holds only the folded pseudo-header sum (the sender's skb was
#               CHECKSUM_PARTIAL; completing it was left to an offload that veth never performs)
#   lco       - (outer UDP) wrong as captured, but correct once the inner partial checksum is
#               completed: the kernel computed it by local checksum offload (LCO)
#   zero      - (outer UDP) no checksum
set -euo pipefail

OUT=${1:-"$(cd "$(dirname "$0")/.." && pwd)/test/fixtures/kernel"}
[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }
mkdir -p "$OUT"

P="vxfx-$$-$RANDOM"
TMP=$(mktemp -d)
BGPIDS=()

cleanup() {
  local pid ns
  for pid in "${BGPIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ns in n1 n2 ul; do
    for pid in $(ip netns pids "$P-$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$P-$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

MAC1=0a:58:0a:f4:01:00
MAC2=0a:58:0a:f4:02:00

# ---- topology: underlay bridge, two flannel-style kernel VXLAN nodes ----------------------------
for ns in ul n1 n2; do ip netns add "$P-$ns"; ip -n "$P-$ns" link set lo up; done
ip -n "$P-ul" link add br0 type bridge
ip -n "$P-ul" link set br0 up
for i in 1 2; do
  ip -n "$P-ul" link add p$i type veth peer name eth0 netns "$P-n$i"
  ip -n "$P-ul" link set p$i master br0 up
  ip -n "$P-n$i" addr add 198.18.0.$i/24 dev eth0
  ip -n "$P-n$i" link set eth0 up
  # flanneld (pkg/backend/vxlan/device.go, vxlan.go): VNI 1, local = external IP, dev = external
  # interface, port 8472, nolearning, MTU = external − 50, address <subnet>.0/32.
  ip -n "$P-n$i" link add flannel.1 type vxlan id 1 local 198.18.0.$i dev eth0 dstport 8472 nolearning
  mac=MAC$i
  ip -n "$P-n$i" link set flannel.1 address "${!mac}" mtu 1450
  nsx n$i sysctl -q -w net/ipv6/conf/flannel.1/accept_ra=0
  ip -n "$P-n$i" addr add 10.244.$i.0/32 dev flannel.1
  # Inner IPv6 on the same device (flanneld would use flannel-v6.1 over an IPv6 underlay).
  ip -n "$P-n$i" addr add fd00:244:$i::/128 dev flannel.1 nodad
  ip -n "$P-n$i" link set flannel.1 up
done
# Per remote lease (vxlan_network.go handleSubnetEvents): permanent ARP, permanent FDB, onlink route.
peer() { # node peer-index
  local n=$1 j=$2 mac=MAC$2
  ip -n "$P-$n" neigh replace 10.244.$j.0 lladdr "${!mac}" dev flannel.1 nud permanent
  bridge -n "$P-$n" fdb replace "${!mac}" dev flannel.1 dst 198.18.0.$j self permanent
  ip -n "$P-$n" route replace 10.244.$j.0/24 via 10.244.$j.0 dev flannel.1 onlink
  ip -n "$P-$n" -6 neigh replace fd00:244:$j:: lladdr "${!mac}" dev flannel.1 nud permanent
  ip -n "$P-$n" -6 route replace fd00:244:$j::/64 via fd00:244:$j:: dev flannel.1 onlink
}
peer n1 2
peer n2 1
# Warm up (nothing is learned, but let the links settle) and make sure the tunnel works.
nsx n1 ping -c 1 -W 2 10.244.2.0 >/dev/null

# ---- checksum analysis of a captured frame (bash arithmetic over the hex bytes) -----------------
BYTES=()
# The packet's own -x/-xx dump lines start with exactly one tab then 0x; -vv decoders may print
# further, deeper-indented dumps (e.g. of an ICMPv6 option), which are part of the summary.
load_bytes() { # file with tcpdump -xx output of one packet
  local hex
  hex=$(sed -n 's/^\t0x[0-9a-f]\{4\}:[[:space:]]*//p' "$1" | tr -d ' \n')
  BYTES=()
  local k
  for ((k = 0; k < ${#hex}; k += 2)); do BYTES+=($((16#${hex:k:2}))); done
}
w16() { echo $(( (BYTES[$1] << 8) | BYTES[$1 + 1] )); }
sum_range() { # start len -> unfolded sum of 16-bit big-endian words (odd tail padded)
  local s=0 k end=$(($1 + $2))
  for ((k = $1; k + 1 < end; k += 2)); do s=$((s + ((BYTES[k] << 8) | BYTES[k + 1]))); done
  ((($2 % 2) == 1)) && s=$((s + (BYTES[end - 1] << 8)))
  echo $s
}
fold() { local s=$1; while ((s > 0xffff)); do s=$(((s & 0xffff) + (s >> 16))); done; echo $s; }
# l4_state ipoff -> "<proto> <state> <field-offset> <correct-value>" for the L4 header behind the IP header at ipoff
l4_state() {
  local ip=$1 ver=$((BYTES[$1] >> 4)) proto l4 len pseudo field csoff
  if ((ver == 4)); then
    proto=${BYTES[ip + 9]}
    l4=$((ip + (BYTES[ip] & 15) * 4))
    len=$(($(w16 $((ip + 2))) - (l4 - ip)))
    pseudo=$(($(sum_range $((ip + 12)) 8) + proto + len))
  else
    proto=${BYTES[ip + 6]}
    l4=$((ip + 40))
    len=$(w16 $((ip + 4)))
    pseudo=$(($(sum_range $((ip + 8)) 32) + proto + len))
  fi
  case $proto in
    6) csoff=16; pname=tcp ;;
    17) csoff=6; pname=udp ;;
    58) csoff=2; pname=icmpv6 ;;
    1) csoff=2; pname=icmp; pseudo=0 ;;
    *) echo "proto$proto n/a 0 0"; return ;;
  esac
  field=$(w16 $((l4 + csoff)))
  local rest correct state
  rest=$(($(sum_range "$l4" "$len") - field))
  correct=$(( ~$(fold $((pseudo + rest))) & 0xffff ))
  if [[ $pname == udp && $field == 0 && $ver == 4 ]]; then state=zero
  elif (($(fold $((pseudo + rest + field))) == 0xffff)); then state=complete
  elif ((field == $(fold "$pseudo"))); then state=partial
  else state=bad; fi
  echo "$pname $state $((l4 + csoff)) $correct"
}
# checksum_notes file -> note lines about the outer UDP and inner L4 checksums
checksum_notes() {
  load_bytes "$1"
  local ethertype outer inner ipo o_ihl
  ethertype=$(w16 12)
  ((ethertype == 0x0800)) || return 0
  read -r oproto ostate ooff _ < <(l4_state 14)
  if [[ $oproto == udp ]] && (($(w16 $((14 + (BYTES[14] & 15) * 4 + 2))) == 8472)); then
    ipo=$((14 + (BYTES[14] & 15) * 4 + 8 + 8 + 14))
    local itype
    itype=$(w16 $((ipo - 2)))
    if ((itype == 0x0800 || itype == 0x86dd)); then
      read -r iproto istate ioff icorrect < <(l4_state $ipo)
      if [[ $ostate == bad && $istate == partial ]]; then
        # Outer sum as it would be with the inner checksum completed.
        local save_hi=${BYTES[ioff]} save_lo=${BYTES[ioff + 1]}
        BYTES[ioff]=$((icorrect >> 8)); BYTES[ioff + 1]=$((icorrect & 255))
        read -r _ ostate2 _ _ < <(l4_state 14)
        BYTES[ioff]=$save_hi; BYTES[ioff + 1]=$save_lo
        [[ $ostate2 == complete ]] && ostate=lco
      fi
      echo "# outer-udp-checksum: $ostate"
      echo "# inner-$iproto-checksum: $istate"
    else
      echo "# outer-udp-checksum: $ostate"
    fi
  else
    echo "# $oproto-checksum: $ostate"
  fi
}

# ---- capture one packet --------------------------------------------------------------------------
# cap1 <fixture-name> <ns> <iface> <bpf filter> <description> -- <command...>
# Starts tcpdump -c 1, runs the command in the background, waits for the packet (10 s at most).
cap1() {
  local name=$1 ns=$2 iface=$3 filter=$4 desc=$5; shift 6
  local raw="$TMP/$name.raw" err="$TMP/$name.err"
  nsx "$ns" tcpdump -i "$iface" -xx -vv -n -c 1 -l "$filter" >"$raw" 2>"$err" &
  local tpid=$!
  local k
  for ((k = 0; k < 100; k++)); do grep -q 'listening on' "$err" && break; sleep 0.05; done
  "$@" >/dev/null 2>&1 &
  local cpid=$!
  for ((k = 0; k < 200; k++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$tpid" 2>/dev/null; then
    kill "$tpid"; wait "$tpid" || true; wait "$cpid" || true
    echo "!! $name: no packet matched '$filter'" >&2
    return 1
  fi
  wait "$tpid" || true
  wait "$cpid" || true
  {
    echo "# $desc"
    echo "# captured on $ns:$iface with: tcpdump -i $iface -xx -vv -n -c 1 '$filter'"
    echo "# kernel $(uname -r), $(date -u +%Y-%m-%d)"
    checksum_notes "$raw"
    cat "$raw"
  } >"$OUT/$name.txt"
  echo "captured $name.txt"
}

# BPF offsets inside VXLAN (outer IPv4 without options): udp[8..15] VXLAN, udp[16..29] inner
# Ethernet (ethertype at udp[28:2]), inner IP at udp[30]: IPv4 proto udp[39], L4 at udp[50] (IHL 5);
# IPv6 next header udp[36], L4 at udp[70]; ARP oper at udp[36:2].
V='udp dst port 8472'
V4="$V and udp[28:2] = 0x0800"
V6="$V and udp[28:2] = 0x86dd"

cap1 vxlan-icmp-echo-request n2 eth0 "$V4 and udp[39] = 1 and udp[50] = 8" \
  "inner IPv4 ICMP echo request 10.244.1.0 -> 10.244.2.0 (ping from node 1), kernel VXLAN n1 -> n2" \
  -- nsx n1 ping -c 1 -W 2 -p 767874756e 10.244.2.0
cap1 vxlan-icmp-echo-reply n1 eth0 "$V4 and udp[39] = 1 and udp[50] = 0" \
  "inner IPv4 ICMP echo reply 10.244.2.0 -> 10.244.1.0, kernel VXLAN n2 -> n1" \
  -- nsx n1 ping -c 1 -W 2 -p 767874756e 10.244.2.0

# TCP: iperf3 server on node 2 as the listener, bash /dev/tcp as a client sending a short line.
nsx n2 iperf3 -s -B 10.244.2.0 -p 5201 >/dev/null 2>&1 &
BGPIDS+=($!)
for ((k = 0; k < 100; k++)); do nsx n2 bash -c 'exec 3<>/dev/tcp/10.244.2.0/5201' 2>/dev/null && break; sleep 0.05; done
sleep 0.2
tcp_client() { nsx n1 bash -c 'exec 3<>/dev/tcp/10.244.2.0/5201; printf "hello from a kernel vxlan peer\n" >&3; sleep 0.3'; }
cap1 vxlan-tcp-syn n2 eth0 "$V4 and udp[39] = 6 and udp[63] & 0x12 = 0x02" \
  "inner IPv4 TCP SYN 10.244.1.0 -> 10.244.2.0:5201, kernel VXLAN n1 -> n2, default veth offloads" \
  -- tcp_client
cap1 vxlan-tcp-data n2 eth0 "$V4 and udp[39] = 6 and udp[63] & 0x08 != 0 and udp[52:2] = 5201" \
  "inner IPv4 TCP data segment (PSH, 31 bytes) 10.244.1.0 -> 10.244.2.0:5201, kernel VXLAN n1 -> n2, default veth offloads" \
  -- tcp_client
# A 4000-byte write in one go: TCP hands the VXLAN device one GSO super-packet and it crosses the
# veth unsegmented (inner IP total length > MTU); a UDP socket on the receiver gets it whole.
cap1 vxlan-tcp-gso n2 eth0 "$V4 and udp[39] = 6 and udp[63] & 0x08 != 0 and udp[52:2] = 5201 and udp[4:2] > 1500" \
  "inner IPv4 TCP GSO super-packet (one 4000-byte write, MSS 1398) 10.244.1.0 -> 10.244.2.0:5201, kernel VXLAN n1 -> n2, default veth offloads" \
  -- nsx n1 bash -c 'exec 3<>/dev/tcp/10.244.2.0/5201; printf "%4000s" "" | tr " " "v" >&3; sleep 0.3'
# The same with transmit checksum offload off on the sender's underlay veth: the kernel then
# completes the checksums in software before the frame leaves node 1.
nsx n1 ethtool -K eth0 tx off >/dev/null
cap1 vxlan-tcp-data-txcsum-off n2 eth0 "$V4 and udp[39] = 6 and udp[63] & 0x08 != 0 and udp[52:2] = 5201" \
  "inner IPv4 TCP data segment 10.244.1.0 -> 10.244.2.0:5201, kernel VXLAN n1 -> n2, sender eth0 'ethtool -K eth0 tx off'" \
  -- tcp_client
nsx n1 ethtool -K eth0 tx on >/dev/null

cap1 vxlan-udp n2 eth0 "$V4 and udp[39] = 17" \
  "inner IPv4 UDP datagram 10.244.1.0 -> 10.244.2.0:9999 (payload 'vxtun udp fixture\\n'), kernel VXLAN n1 -> n2" \
  -- nsx n1 bash -c 'printf "vxtun udp fixture\n" >/dev/udp/10.244.2.0/9999'

# ARP: make the permanent neighbour stale so the kernel re-validates it with a unicast ARP probe,
# which goes through the FDB entry over the tunnel; the peer kernel answers for its own 10.244.2.0.
nsx n1 sysctl -q -w net/ipv4/neigh/flannel.1/delay_first_probe_time=1
ip -n "$P-n1" neigh replace 10.244.2.0 lladdr "$MAC2" dev flannel.1 nud stale
cap1 vxlan-arp-request n2 eth0 "$V and udp[28:2] = 0x0806 and udp[36:2] = 1" \
  "inner ARP request who-has 10.244.2.0 tell 10.244.1.0 (unicast probe of a stale neighbour), kernel VXLAN n1 -> n2" \
  -- nsx n1 ping -c 3 -i 1 -W 2 10.244.2.0
ip -n "$P-n1" neigh replace 10.244.2.0 lladdr "$MAC2" dev flannel.1 nud stale
cap1 vxlan-arp-reply n1 eth0 "$V and udp[28:2] = 0x0806 and udp[36:2] = 2" \
  "inner ARP reply 10.244.2.0 is-at $MAC2, kernel VXLAN n2 -> n1" \
  -- nsx n1 ping -c 3 -i 1 -W 2 10.244.2.0
ip -n "$P-n1" neigh replace 10.244.2.0 lladdr "$MAC2" dev flannel.1 nud permanent

cap1 vxlan-icmpv6-echo-request n2 eth0 "$V6 and udp[36] = 58 and udp[70] = 128" \
  "inner IPv6 ICMPv6 echo request fd00:244:1:: -> fd00:244:2::, kernel VXLAN n1 -> n2" \
  -- nsx n1 ping -6 -c 1 -W 2 -p 767874756e fd00:244:2::
cap1 vxlan-icmpv6-echo-reply n1 eth0 "$V6 and udp[36] = 58 and udp[70] = 129" \
  "inner IPv6 ICMPv6 echo reply fd00:244:2:: -> fd00:244:1::, kernel VXLAN n2 -> n1" \
  -- nsx n1 ping -6 -c 1 -W 2 -p 767874756e fd00:244:2::
# Neighbour solicitation: same trick as ARP (stale neighbour -> unicast NS probe over the tunnel).
nsx n1 sysctl -q -w net/ipv6/neigh/flannel.1/delay_first_probe_time=1
ip -n "$P-n1" -6 neigh replace fd00:244:2:: lladdr "$MAC2" dev flannel.1 nud stale
cap1 vxlan-icmpv6-neighbor-solicitation n2 eth0 "$V6 and udp[36] = 58 and udp[70] = 135" \
  "inner ICMPv6 neighbour solicitation for fd00:244:2:: (unicast probe of a stale neighbour), kernel VXLAN n1 -> n2" \
  -- nsx n1 ping -6 -c 3 -i 1 -W 2 fd00:244:2::
ip -n "$P-n1" -6 neigh replace fd00:244:2:: lladdr "$MAC2" dev flannel.1 nud stale
cap1 vxlan-icmpv6-neighbor-advertisement n1 eth0 "$V6 and udp[36] = 58 and udp[70] = 136" \
  "inner ICMPv6 neighbour advertisement fd00:244:2:: is-at $MAC2, kernel VXLAN n2 -> n1" \
  -- nsx n1 ping -6 -c 3 -i 1 -W 2 fd00:244:2::
ip -n "$P-n1" -6 neigh replace fd00:244:2:: lladdr "$MAC2" dev flannel.1 nud permanent

# Plain underlay packets (no VXLAN).
cap1 eth-ipv4-icmp-echo-request n2 eth0 "icmp and icmp[0] = 8" \
  "plain IPv4 ICMP echo request 198.18.0.1 -> 198.18.0.2 on the underlay" \
  -- nsx n1 ping -c 1 -W 2 -p 767874756e 198.18.0.2
cap1 eth-ipv4-udp n2 eth0 "udp dst port 9999" \
  "plain IPv4 UDP datagram 198.18.0.1 -> 198.18.0.2:9999 on the underlay" \
  -- nsx n1 bash -c 'printf "vxtun udp fixture\n" >/dev/udp/198.18.0.2/9999'
cap1 eth-ipv4-icmp-port-unreachable n1 eth0 "icmp and icmp[0] = 3" \
  "plain IPv4 ICMP port unreachable 198.18.0.2 -> 198.18.0.1 (quoting the UDP datagram) on the underlay" \
  -- nsx n1 bash -c 'printf "vxtun udp fixture\n" >/dev/udp/198.18.0.2/9999'
echo "fixtures written to $OUT"

#!/usr/bin/env bash
# Installs the system packages vxtun's lab, tests and benchmarks use, from Debian's archive.
# Safe to run again: apt-get skips what is already installed. Needs root.
set -euo pipefail

packages=(
  iproute2          # ip, bridge: namespaces, veth, the kernel's VXLAN device
  iputils-ping      # ping across the tunnel
  iperf3            # throughput
  netperf           # TCP_RR and TCP_CRR transactions and their latency percentiles (bench); Debian non-free
  tcpdump           # captures on the underlay
  tshark            # decodes VXLAN from those captures
  ethtool           # shows the kernel's offload defaults; the bench's link wire and its offload record
  util-linux        # setpriv, unshare (tests of refusals)
  chromium          # headless browser: the trace web view and the bench report are tested in it (playwright-core)
  containernetworking-plugins  # CNI bridge + host-local: pods from subnet.env (lab up, flannel tests)
  python3 make g++  # node-gyp builds the addon
  gcc               # builds the C udp proxy (bench/udp-proxy-c) for its interop test and bench case, and the lab's kernel-hop capturer
  clang libclang-rt-dev  # libFuzzer and the sanitizers: scripts/fuzz.sh, scripts/asan-check.sh
  etcd-server       # the flannel registry (3.4: v3 API, and v2 with --enable-v2)
  etcd-client       # etcdctl: tests read and change leases as an operator would
  iptables          # --ip-masq: flannel's masquerade rules
  openssl           # test certificates for etcd over TLS
  man-db            # man: the generated manual page is rendered in a test
  openvswitch-switch  # bench case ovs-userspace: its own ovsdb-server/ovs-vswitchd per node namespace (userspace datapath)
  wireguard-tools   # wg: keys and peers of the wireguard and wireguard-go bench cases
  wireguard-go      # bench case wireguard-go: userspace WireGuard
)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/install-deps.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

# netperf is in bookworm's non-free component: add that component as its own source, once.
nonfree=/etc/apt/sources.list.d/vxtun-nonfree.sources
nonfree_wanted='Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
if [ "$(cat "$nonfree" 2>/dev/null)" != "$nonfree_wanted" ]; then
  printf '%s\n' "$nonfree_wanted" > "$nonfree"
  echo "added apt source $nonfree (Debian non-free, for netperf)"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture: answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Installing openvswitch-switch starts a system-wide Open vSwitch where services can start: the bench runs
# its own per node namespace and needs none, so one this script just installed is stopped and kept from
# starting at boot (an Open vSwitch that was already installed is left as it is).
if [[ " ${missing[*]} " == *" openvswitch-switch "* ]]; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now openvswitch-switch.service ovs-vswitchd.service ovsdb-server.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/openvswitch-switch ]; then
    /etc/init.d/openvswitch-switch stop >/dev/null 2>&1 || true
  fi
fi
echo "system packages: ok"

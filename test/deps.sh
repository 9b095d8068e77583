#!/bin/bash
# Installs the Debian packages otok's tests, demo and benchmarks need.
# Idempotent: apt-get runs only when something is missing, `update` at most once.
set -euo pipefail

PKGS=(
  squashfs-tools busybox-static xz-utils file        # images
  qemu-user-static binfmt-support                    # mips/arm unit tests
  mosquitto mosquitto-clients nats-server            # fleet tests (nats: 3-node MQTT cluster)
  iproute2 kmod dnsmasq-base                         # network tests (dnsmasq: DHCP server)
  shellcheck                                         # init script lint
  hyperfine crun runc lxc systemd-container          # benchmark peers
  qemu-system-mips qemu-system-arm                   # emulated routers (test/qemu)
  gcc-mips-linux-gnu linux-source-6.1 bc flex bison libssl-dev make binutils  # big-endian mips kernel
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  if [[ $(id -u) != 0 ]]; then echo "deps: must be root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || true
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# qemu-user via binfmt_misc (tests call qemu-*-static explicitly, but
# running a foreign binary by path needs the handlers).
if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
command -v update-binfmts >/dev/null && update-binfmts --enable >/dev/null 2>&1 || true

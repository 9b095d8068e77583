#!/bin/bash
# `make demo`: otok end to end on a fresh Debian 12 root machine. Builds
# (done by make), makes a busybox image with mksquashfs from Debian's
# busybox-static, shows what isolation looks like from inside a container,
# runs a detached one with ps/logs/exec/stats, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

OTOK=${OTOK:-$PWD/dist/otok}
[[ $(id -u) == 0 ]] || { echo "demo: run as root" >&2; exit 1; }
[[ -x $OTOK ]] || { echo "demo: $OTOK missing (make build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/otok-demo.XXXXXX)
STATE=$WORK/state
otok() { "$OTOK" --state "$STATE" "$@"; }
cleanup() {
  otok rm -f demo-web >/dev/null 2>&1 || true
  otok gc >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "otok"
otok version

step "image: busybox-static packed by mksquashfs"
IMG=$WORK/busybox.sqfs
bash test/testimage/build.sh "$IMG" "$WORK/rootfs" >/dev/null
ls -l "$IMG"

step "a container, seen from inside"
cat >"$WORK/inside.sh" <<'SH'
echo "hostname:     $(hostname)"
echo "my pid:       $$"
echo "processes:";   ps -o pid,user,comm | sed "s/^/  /"
echo "network:";     ip -o link | cut -d\\ -f1 | sed "s/^/  /"
echo "/dev:         $(ls /dev | tr "\n" " ")"
grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | sed "s/^/  /"
echo "memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "pids limit:   $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "cpu quota:    $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max) us per 100 ms"
echo "mount:        $(mount -t tmpfs none /mnt 2>&1)"
echo "reboot:       $(reboot -f 2>&1)"
echo "write /sys:   $(touch /sys/x 2>&1)"
echo "root fs:      $(df -h / | tail -1 | awk '{print $1, $2}') (overlay, writable layer on a capped tmpfs)"
exit 7
SH
rc=0
show otok run --rm --name demo --hostname demo-box --memory 64M --pids-limit 64 --cpus 0.5 \
  -v "$WORK/inside.sh:/inside.sh:ro" "$IMG" sh /inside.sh || rc=$?
echo "(otok run exit code: $rc — the container's own)"

step "a detached container"
show otok run -d --name demo-web --memory 32M "$IMG" sh -c 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 1; done'
sleep 2.2
show otok ps
show otok logs --tail 2 demo-web
show otok exec demo-web sh -c 'echo "exec: pid $$ in the same namespaces; PID 1 is: $(cat /proc/1/cmdline | tr "\0" " ")"'
show otok stats demo-web
show otok stop -t 1 demo-web
show otok ps -a
show otok rm demo-web

step "a signed image: key, build, import into the store, run by name"
show otok key gen "$WORK/demo-signer"
mkdir -p "$WORK/keys" && cp "$WORK/demo-signer.pub" "$WORK/keys/"
show otok image build --from "$WORK/rootfs" --name busybox --version 1.0 \
  --cmd '["/bin/sh","-c","echo hello from the image default command"]' --key "$WORK/demo-signer.key" -o "$WORK/busybox.otok"
show otok --store "$WORK/store" --keys "$WORK/keys" image import "$WORK/busybox.otok"
show otok --store "$WORK/store" --keys "$WORK/keys" image ls
show otok --store "$WORK/store" --keys "$WORK/keys" run --rm busybox:1.0
show otok --store "$WORK/store" --keys "$WORK/keys" run --rm busybox sh -c 'echo "hello from the signed image on $(uname -m)"'
echo "a tampered copy is refused, and the store is unchanged:"
cp "$WORK/busybox.otok" "$WORK/tampered.otok"
printf 'X' | dd of="$WORK/tampered.otok" bs=1 seek=$(( $(stat -c %s "$WORK/tampered.otok") - 100 )) conv=notrunc status=none
otok --store "$WORK/store" --keys "$WORK/keys" image rm busybox:1.0 >/dev/null
otok --store "$WORK/store" --keys "$WORK/keys" image import "$WORK/tampered.otok" || echo "(exit $?)"
show otok --store "$WORK/store" --keys "$WORK/keys" df

step "nothing left behind"
echo "mounts under the state dir: $(grep -c "$STATE" /proc/self/mountinfo || true)"
echo "otok cgroups:               $(ls -d /sys/fs/cgroup/*/otok/demo* 2>/dev/null | wc -l)"
echo "containers:                 $(ls "$STATE/containers" 2>/dev/null | wc -l)"

# The agent: containers from a UCI config, kill -9 and re-adoption, graceful
# stop (test/agent/demo.sh, also runnable alone).
step "the agent"
bash test/agent/demo.sh "$OTOK" "$IMG"

# The fleet: a broker, this machine's agent joining it, and the operator's
# controller (test/fleet/demo.sh, also runnable alone).
step "the fleet"
bash test/fleet/demo.sh "$OTOK" "$IMG"

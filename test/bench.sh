#!/bin/bash
# otok benchmarks (`make bench`): each section runs one comparison with
# hyperfine and prints a table. Not a test: numbers, no pass/fail.
#
#   bash test/bench.sh [SECTION…]      sections: start (default: all)
#
# Env: OTOK (binary, default dist/otok), RUNS (default 30, per command),
# ROUNDS (default 5: the runs are split over rounds that take the commands
# in alternating order, so that a burst of other load on a shared machine
# falls on every command alike, not on whichever ran then), WORK (scratch
# dir, default a fresh temp dir, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

OTOK=${OTOK:-$PWD/dist/otok}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
[[ $(id -u) == 0 ]] || { echo "bench: run as root (namespaces, mounts, cgroups)" >&2; exit 1; }
[[ -x $OTOK ]] || { echo "bench: $OTOK missing (make build)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: hyperfine missing (bash test/deps.sh)" >&2; exit 1; }

WORK_OWNED=0
if [[ -z ${WORK:-} ]]; then WORK=$(mktemp -d /tmp/otok-bench.XXXXXX); WORK_OWNED=1; fi
# otok's state lives on tmpfs, as /run/otok does on a device.
STATE=$(mktemp -d /run/otok-bench.XXXXXX)
cleanup() {
  "$OTOK" --state "$STATE" rm -f bench-holder >/dev/null 2>&1 || true
  "$OTOK" --state "$STATE" gc >/dev/null 2>&1 || true
  rm -rf "$STATE"
  if ((WORK_OWNED)); then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# table NAME_OF_FLOOR JSON…: per command, over every run of hyperfine's
# JSON exports: mean and σ of the wall time, its ratio to the floor, the
# median and its ratio to the floor's median (one stalled run of a shared
# machine moves a mean, not a median), and the CPU time (user+system of
# all processes of one start; less sensitive to other load than the wall
# time). Plain awk (mawk has no sort): hyperfine pretty-prints one value a
# line.
table() {
  local floor=$1
  shift
  awk -v floor="$floor" '
    /"command":/ { c = $0; sub(/^[^:]*: *"/, "", c); sub(/",? *$/, "", c)
      if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
      intimes = 0; next }
    /"user":/ { u = $2 + 0; next }
    /"system":/ { sy = $2 + 0; next }
    /"times": *\[/ { intimes = 1; k = 0; next }
    intimes && /\]/ { intimes = 0; cpu[c] += (u + sy) * k; next }
    intimes { v = $1; sub(/,$/, "", v); t[c, ++n[c]] = v * 1000; k++ }
    END {
      for (j = 1; j <= nc; j++) {
        c = order[j]; m = n[c]; sum = 0
        for (i = 1; i <= m; i++) { x[i] = t[c, i]; sum += x[i] }
        for (i = 2; i <= m; i++) { v = x[i]; for (k = i - 1; k >= 1 && x[k] > v; k--) x[k + 1] = x[k]; x[k + 1] = v }
        mean[c] = sum / m; ss = 0
        for (i = 1; i <= m; i++) ss += (x[i] - mean[c]) ^ 2
        sd[c] = m > 1 ? sqrt(ss / (m - 1)) : 0
        med[c] = m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
        cpums[c] = cpu[c] / m * 1000
      }
      f = mean[floor]; fm = med[floor]
      printf "%-16s %10s %9s %9s %10s %9s %9s\n", "", "mean ms", "σ ms", "× floor", "median ms", "× floor", "cpu ms"
      for (j = 1; j <= nc; j++) {
        c = order[j]
        printf "%-16s %10.2f %9.2f %9.2f %10.2f %9.2f %9.2f\n", c, mean[c], sd[c], (f > 0 ? mean[c] / f : 0), med[c], (fm > 0 ? med[c] / fm : 0), cpums[c]
      }
    }' "$@"
}

# Section: container start. `/bin/true` in a new container from the same
# busybox image, every runtime with a new network namespace. "otok-dir"
# and the peers start from the unpacked tree (its pages cached); so does
# "otok-warm", from the squashfs image another container holds mounted.
# "otok-cold" starts from a squashfs file nothing holds: loop-mounted and
# unmounted again on every run, so every run also decompresses what
# /bin/true (busybox, ~2 MB, gzip) touches, ~15 ms here: a fresh mount has
# an empty page cache. Compare the peers with otok-dir and otok-warm.
section_start() {
  local per=$(((RUNS + ROUNDS - 1) / ROUNDS))
  ((per >= 2)) || per=2
  echo "== start: run /bin/true in a new container (busybox image, new net ns, $((per * ROUNDS)) runs each in $ROUNDS rounds)"
  echo "   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
  local img=$WORK/busybox.sqfs root=$WORK/rootfs
  [[ -f $img ]] || bash test/testimage/build.sh "$img" "$root" >/dev/null
  local cold=$WORK/cold.sqfs
  { cat "$img"; head -c 4096 /dev/zero; } >"$cold"

  # OCI bundle for crun and runc (their default spec: pid, net, ipc, uts,
  # mount namespaces; read-only root).
  local bundle=$WORK/bundle
  mkdir -p "$bundle" && (cd "$bundle" && rm -f config.json && crun spec)
  sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/; s|"path": "rootfs"|"path": "'"$root"'"|' "$bundle/config.json"
  # lxc-execute: same rootfs, an empty network namespace (only lo).
  mkdir -p "$WORK/lxc"
  cat >"$WORK/lxc.conf" <<LXC
lxc.rootfs.path = dir:$root
lxc.uts.name = bench
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
LXC

  local cmds=(
    -n floor "unshare --fork --pid --mount --net --uts --ipc chroot $root /bin/true"
    -n otok-cold "$OTOK --state $STATE run --rm $cold /bin/true"
    # The peers start from the unpacked tree; so can otok.
    -n otok-dir "$OTOK --state $STATE run --rm $root /bin/true"
    # The image already mounted (another container of it runs, as for a
    # router's services): no loop setup, a warm page cache.
    -n otok-warm "$OTOK --state $STATE run --rm $img /bin/true"
  )
  # crun 1.8 refuses hybrid cgroups: hide the empty v2 tree in a mount ns.
  if command -v crun >/dev/null; then
    if [[ -d /sys/fs/cgroup/unified ]]; then
      cmds+=(-n crun "unshare -m sh -c 'umount -l /sys/fs/cgroup/unified; exec crun --root $WORK/crun run -b $bundle bench-crun'")
    else
      cmds+=(-n crun "crun --root $WORK/crun run -b $bundle bench-crun")
    fi
  fi
  command -v runc >/dev/null && cmds+=(-n runc "runc --root $WORK/runc run -b $bundle bench-runc")
  command -v lxc-execute >/dev/null && cmds+=(-n lxc-execute "lxc-execute -n bench-lxc -P $WORK/lxc -f $WORK/lxc.conf -- /bin/true")
  command -v systemd-nspawn >/dev/null && cmds+=(-n systemd-nspawn "systemd-nspawn --pipe -q -D $root --private-network --register=no --keep-unit /bin/true")

  # otok-warm: a long-running container holds $img mounted. otok-cold
  # runs a padded copy, which has another digest and so its own mount.
  "$OTOK" --state "$STATE" run -d --name bench-holder "$img" sleep 100000 >/dev/null
  # Raised priority (inherited by every runtime alike) keeps other jobs
  # on a shared machine from dominating the numbers. Rounds alternate the
  # order of the commands (the -n NAME CMD pairs, reversed).
  local rev=() i r
  for ((i = ${#cmds[@]} - 3; i >= 0; i -= 3)); do rev+=("${cmds[@]:i:3}"); done
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then set -- "${cmds[@]}"; else set -- "${rev[@]}"; fi
    nice -n -10 hyperfine -N --warmup 2 --runs "$per" --style none --export-json "$WORK/start-$r.json" "$@" >/dev/null
  done
  "$OTOK" --state "$STATE" rm -f bench-holder >/dev/null
  table floor "$WORK"/start-*.json
  echo
}

SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=(start)
for s in "${SECTIONS[@]}"; do
  declare -F "section_$s" >/dev/null || { echo "bench: unknown section $s" >&2; exit 2; }
  "section_$s"
done

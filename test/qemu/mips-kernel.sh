#!/bin/bash
# Builds (once) the big-endian MIPS malta kernel for the `mips` guest from
# Debian's linux-source-6.1 and prints the path of the cached vmlinux.
#
#   test/qemu/mips-kernel.sh [CACHE_DIR]
#
# Debian 12 has no big-endian mips port, so there is no kernel package to
# fetch. The result is keyed by the linux-source package version, the sha256
# of mips-kernel.config and $recipe (bump it when the build steps below
# change); a cached vmlinux is verified against the sha256 recorded beside it
# before it is reused. One build tree is kept, so a new key rebuilds
# incrementally. The build runs
# under `nice -n 19` with -j$JOBS (default 2): this is CI's slowest step cold.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${OTOK_QEMU_CACHE:-/var/cache/otok-qemu}}
jobs=${JOBS:-2}
recipe=1
src_tar=/usr/src/linux-source-6.1.tar.xz

need() { command -v "$1" >/dev/null || { echo "mips-kernel: infra: $1 missing (make deps installs it)" >&2; exit 2; }; }
[[ -f $src_tar ]] || { echo "mips-kernel: infra: $src_tar missing (apt-get install linux-source-6.1)" >&2; exit 2; }
need mips-linux-gnu-gcc; need bc; need flex; need bison; need make

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver recipe=$recipe"; cat "$here/mips-kernel.config"; } | sha256sum | cut -c1-16)
out=$cache/mips/vmlinux-$key
if [[ -f $out && -f $out.sha256 ]] && (cd "$(dirname "$out")" && sha256sum -c --quiet "$(basename "$out").sha256" >/dev/null 2>&1); then
  # The guest gets the config as /boot/config-KVER (what otok reads to learn
  # the kernel's squashfs compressors); older caches lack it.
  [[ -f $out.config || ! -f $cache/build/linux-mips/.config ]] || cp "$cache/build/linux-mips/.config" "$out.config"
  echo "$out"; exit 0
fi

mkdir -p "$cache/mips" "$cache/build"
work=$cache/build/linux-mips
lock=$cache/build/mips-kernel.lock
exec 9>"$lock"
flock 9
# Another run may have finished it while we waited for the lock.
if [[ -f $out && -f $out.sha256 ]] && (cd "$(dirname "$out")" && sha256sum -c --quiet "$(basename "$out").sha256" >/dev/null 2>&1); then
  echo "$out"; exit 0
fi
start=$(date +%s)
if [[ ! -f $work/.extracted || $(cat "$work/.extracted") != "$srcver" ]]; then
  rm -rf "$work"; mkdir -p "$work"
  echo "mips-kernel: extracting $src_tar ($srcver)" >&2
  tar -xJf "$src_tar" -C "$work" --strip-components=1
  echo "$srcver" >"$work/.extracted"
fi
# A clean environment: run from `make test-qemu VERSION=…`, the parent
# make's MAKEFLAGS carried VERSION into the kernel's make (kernel release
# "00133b5.1.192", LINUX_VERSION_CODE empty, build failed); CC, CFLAGS,
# ARCH, O, … from the caller would be just as wrong here.
mk() { env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C nice -n 19 make -C "$work" ARCH=mips CROSS_COMPILE=mips-linux-gnu- "$@"; }
mk -s malta_defconfig >&2
# Drop everything malta_defconfig builds as a module: with CONFIG_MODULES
# off Kconfig would turn each =m into =y and build hundreds of drivers.
sed -i -E 's/^(CONFIG_[A-Za-z0-9_]+)=m$/# \1 is not set/' "$work/.config"
cat "$here/mips-kernel.config" >>"$work/.config"
mk -s olddefconfig >&2
# Every =y in the fragment must survive olddefconfig (a renamed or
# dependency-blocked option would silently vanish).
bad=0
while read -r line; do
  grep -qx "$line" "$work/.config" || { echo "mips-kernel: config lost: $line" >&2; bad=1; }
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=y$' "$here/mips-kernel.config")
((bad == 0)) || exit 1
echo "mips-kernel: building vmlinux with -j$jobs (nice 19); ~8-25 min on 2 shared cores" >&2
mk -j"$jobs" vmlinux >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
mips-linux-gnu-strip -o "$out.tmp" "$work/vmlinux"
mv "$out.tmp" "$out"
cp "$work/.config" "$out.config"
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
echo "mips-kernel: built $out in $(( $(date +%s) - start ))s" >&2
# Keep the build tree (incremental rebuilds) and the three newest kernels:
# checkouts of different commits (CI, a developer's snapshot) may use
# different keys at the same time and must not delete each other's.
ls -1t "$cache"/mips/vmlinux-*.sha256 2>/dev/null | tail -n +4 | while read -r old; do
  rm -f "${old%.sha256}" "$old" "${old%.sha256}.config"
done
echo "$out"

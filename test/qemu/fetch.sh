#!/bin/bash
# Fetches (once) the Debian kernel and busybox-static for one guest arch into
# the cache and prints what the harness needs as KEY=VALUE lines:
#
#   test/qemu/fetch.sh ARCH [CACHE_DIR]      ARCH: mipsel | armhf | arm64 | mips
#
# Uses a private apt configuration under CACHE/apt (sources.list with
# [arch=mipsel,armhf,arm64] on this machine's Debian mirror): the system's
# dpkg architectures and apt lists are left alone. The kernel ABI is resolved
# from the metapackage at run time (point releases rename it). Every cached
# .deb is checked against the SHA256 in the package index before use; a
# mismatch is deleted and fetched again.
#
# For `mips` (big endian, no Debian port) it runs mips-kernel.sh and prints no
# busybox: that guest's /init is the Go program and its container image is
# built from the Go toybox (see README.md).
#
# OTOK_QEMU_MIRROR overrides the mirror (default: the first Debian mirror in
# the system's apt sources).
#
# Exit status 2 means an infrastructure problem (mirror, download, missing
# tool), never an otok failure; the harness reports it as such.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
arch=${1:?usage: fetch.sh ARCH [CACHE_DIR]}
cache=${2:-${OTOK_QEMU_CACHE:-/var/cache/otok-qemu}}
infra() { echo "fetch $arch: infra: $*" >&2; exit 2; }

if [[ $arch == mips ]]; then
  vmlinux=$("$here/mips-kernel.sh" "$cache") || exit $?
  kver=$(grep -aoE -m1 'Linux version [^ ]+' "$vmlinux" || true)
  kver=${kver##* }
  echo "KERNEL=$vmlinux"
  echo "KVER=$kver"
  echo "KCONFIG=$( [[ -f $vmlinux.config ]] && echo "$vmlinux.config" )"
  echo "MODDIR="
  echo "BUSYBOX="
  echo "TOOLS="
  exit 0
fi

case $arch in
  mipsel) flavour=4kc-malta ;;
  armhf)  flavour=armmp-lpae ;;
  arm64)  flavour=arm64 ;;
  *) echo "fetch: unknown arch $arch" >&2; exit 1 ;;
esac

apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/debs"
exec 9>"$apt_dir/lock"
flock 9

# The machine's Debian mirror, from its own apt sources. Only bookworm main:
# the security mirror's armhf index was seen out of sync here (size
# mismatch), and the point-release kernel is what the tests need.
mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 | tr -d ' ' || true)
mirror=${OTOK_QEMU_MIRROR:-${mirror:-http://deb.debian.org/debian}}
mirror=${mirror%/}
if [[ ! -f $apt_dir/sources.list ]] || ! grep -qF "$mirror bookworm" "$apt_dir/sources.list"; then
  echo "deb [arch=mipsel,armhf,arm64] $mirror bookworm main" >"$apt_dir/sources.list"
  rm -f "$apt_dir/updated"
fi
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
     -o Dir::State::status=/dev/null -o Debug::NoLocking=1
     -o APT::Architectures::=mipsel -o APT::Architectures::=armhf -o APT::Architectures::=arm64
     -o APT::Architecture=amd64 -o Acquire::Retries=3 -q)

# Refresh the index at most once a day (point releases rename the ABI).
if [[ ! -f $apt_dir/updated ]] || [[ -n $(find "$apt_dir/updated" -mmin +1440) ]]; then
  if apt-get "${APT[@]}" update >"$apt_dir/update.log" 2>&1 && ! grep -qE '^(Err:|[EW]: Failed to fetch)' "$apt_dir/update.log"; then
    touch "$apt_dir/updated"
  elif ! ls "$apt_dir/lists/"*_main_binary-"$arch"_Packages* >/dev/null 2>&1; then
    tail -5 "$apt_dir/update.log" >&2; infra "apt-get update failed and no cached index"
  else
    echo "fetch $arch: apt-get update failed, using the cached index" >&2
  fi
fi

# What the index said last time (package, SHA256, .deb), valid while the
# index is unchanged: skips ~10 s of apt-cache queries on a warm cache.
resolved=$cache/$arch.resolved
stamp=$(stat -c %Y "$apt_dir/updated" 2>/dev/null || echo none)
kdeb= bdeb=
if [[ -f $resolved ]] && [[ $(head -1 "$resolved") == "$stamp" ]]; then
  ok=1
  while read -r sha deb; do
    echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1 || ok=0
  done < <(tail -n +2 "$resolved")
  if ((ok)); then
    kdeb=$(sed -n 2p "$resolved" | cut -d' ' -f2); bdeb=$(sed -n 3p "$resolved" | cut -d' ' -f2)
  fi
fi

# Newest candidate of PKG:ARCH, with its filename and SHA256 from the index.
field() { apt-cache "${APT[@]}" show "$1:$arch=$2" 2>/dev/null | awk -v f="$3:" '$1==f{print $2; exit}'; }
candidate() { apt-cache "${APT[@]}" policy "$1:$arch" 2>/dev/null | awk '/Candidate:/{print $2}'; }

if [[ -z $kdeb ]]; then
meta=linux-image-$flavour
metaver=$(candidate "$meta")
[[ -n $metaver && $metaver != "(none)" ]] || infra "$meta:$arch not in the index"
kpkg=$(field "$meta" "$metaver" Depends | tr ',' '\n' | grep -oE "linux-image-[0-9][^ ]*-$flavour" | head -1 || true)
[[ -n $kpkg ]] || kpkg=$(apt-cache "${APT[@]}" show "$meta:$arch=$metaver" | sed -n 's/^Depends: //p' | tr ',' '\n' | grep -oE "linux-image-[0-9][^ ]*-$flavour( |$)" | head -1 | tr -d ' ')
[[ -n $kpkg ]] || infra "cannot resolve the kernel ABI from $meta $metaver"

fetch() { # PKG -> path of a verified .deb in the cache
  local pkg=$1 ver sha file deb
  ver=$(candidate "$pkg"); [[ -n $ver && $ver != "(none)" ]] || infra "$pkg:$arch not in the index"
  sha=$(field "$pkg" "$ver" SHA256); file=$(field "$pkg" "$ver" Filename)
  [[ -n $sha && -n $file ]] || infra "$pkg:$arch $ver has no SHA256/Filename in the index"
  deb=$cache/debs/$(basename "$file")
  if [[ -f $deb ]] && echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1; then echo "$deb"; return; fi
  rm -f "$deb"
  echo "fetch $arch: downloading $pkg $ver" >&2
  (cd "$cache/debs" && apt-get "${APT[@]}" download "$pkg:$arch=$ver" >"$apt_dir/download.log" 2>&1) ||
    { tail -3 "$apt_dir/download.log" >&2; infra "download of $pkg:$arch $ver failed"; }
  # apt-get download names the file pkg_ver_arch.deb with the epoch colon escaped.
  local got; got=$(ls -t "$cache/debs/${pkg}_"*"_$arch.deb" | head -1)
  [[ $got == "$deb" ]] || mv "$got" "$deb"
  echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1 || { rm -f "$deb"; infra "$pkg:$arch: sha256 mismatch after download"; }
  echo "$deb"
}

kdeb=$(fetch "$kpkg")
bdeb=$(fetch busybox-static)
# fetch verified both against the index's SHA256: record them.
{ echo "$stamp"; sha256sum "$kdeb" | cut -d' ' -f1 | tr '\n' ' '; echo "$kdeb"
  sha256sum "$bdeb" | cut -d' ' -f1 | tr '\n' ' '; echo "$bdeb"; } >"$resolved"
fi

# Unpack once per .deb (the directory name carries the .deb's name).
unpack() { local deb=$1 dir
  dir=$cache/$arch/$(basename "$deb" .deb)
  if [[ ! -f $dir/.ok ]]; then rm -rf "$dir"; mkdir -p "$dir"; dpkg-deb -x "$deb" "$dir"; touch "$dir/.ok"; fi
  echo "$dir"; }
kdir=$(unpack "$kdeb")
bdir=$(unpack "$bdeb")
kver=$(ls "$kdir/lib/modules" | head -1)
[[ -n $kver ]] || infra "$kpkg has no /lib/modules"
if [[ ! -f $kdir/lib/modules/$kver/modules.dep ]]; then
  depmod -b "$kdir" "$kver" || infra "depmod failed"
fi
kernel=$(ls "$kdir"/boot/vmlinu[xz]-"$kver" 2>/dev/null | head -1)
[[ -n $kernel ]] || infra "$kpkg has no /boot/vmlinu[xz]-$kver"
# Host tools the system test packages call (ip netns, mksquashfs, dnsmasq,
# nft, bash for test scripts): Debian's dynamically linked binaries with their libraries, unpacked
# into one sysroot the guest gets as is. The library set is the recursive
# Depends closure limited to lib*/zlib1g (no debconf, perl, pam users).
tools_list="iproute2 squashfs-tools dnsmasq-base nftables bash libgcc-s1"
tresolved=$cache/$arch.tools.resolved
tdebs=()
if [[ -f $tresolved ]] && [[ $(head -1 "$tresolved") == "$stamp $tools_list" ]]; then
  while read -r sha deb; do
    if echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1; then tdebs+=("$deb"); else tdebs=(); break; fi
  done < <(tail -n +2 "$tresolved")
fi
if ((${#tdebs[@]} == 0)); then
  mapfile -t tpkgs < <(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances $(printf "%s:$arch " $tools_list) 2>/dev/null |
    grep -E "^(lib[^ <>]*|zlib1g|${tools_list// /|}):$arch\$" | sed "s/:$arch\$//" | sort -u)
  ((${#tpkgs[@]} > 4)) || infra "cannot resolve the tools' dependencies"
  # One apt-cache show for all: Filename and SHA256 of each candidate.
  missing=()
  while read -r pkg ver file sha; do
    deb=$cache/debs/$(basename "$file")
    if ! { [[ -f $deb ]] && echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1; }; then
      rm -f "$deb"; missing+=("$pkg:$arch=$ver")
    fi
    tdebs+=("$deb"); echo "$sha $deb $pkg $ver" >>"$tresolved.tmp"
  done < <(apt-cache "${APT[@]}" show --no-all-versions $(printf "%s:$arch " "${tpkgs[@]}") 2>/dev/null |
           awk '/^Package:/{p=$2} /^Version:/{v=$2} /^Filename:/{f=$2} /^SHA256:/{s=$2}
                /^$/{if(f!=""){print p, v, f, s}; f=""} END{if(f!="")print p, v, f, s}')
  if ((${#missing[@]})); then
    echo "fetch $arch: downloading ${#missing[@]} tool packages" >&2
    (cd "$cache/debs" && apt-get "${APT[@]}" download "${missing[@]}" >"$apt_dir/download.log" 2>&1) ||
      { rm -f "$tresolved.tmp"; tail -3 "$apt_dir/download.log" >&2; infra "download of the tool packages failed"; }
  fi
  while read -r sha deb pkg ver; do
    # apt-get download writes the epoch's colon as %3a.
    got=$cache/debs/${pkg}_${ver/:/%3a}_$(basename "$deb" .deb | rev | cut -d_ -f1 | rev).deb
    [[ -f $deb || ! -f $got ]] || mv "$got" "$deb"
    echo "$sha  $deb" | sha256sum -c --quiet - >/dev/null 2>&1 || { rm -f "$deb" "$tresolved.tmp"; infra "$deb: sha256 mismatch after download"; }
  done <"$tresolved.tmp"
  { echo "$stamp $tools_list"; cut -d' ' -f1,2 "$tresolved.tmp"; } >"$tresolved"; rm -f "$tresolved.tmp"
fi
tkey=$(printf '%s\n' "${tdebs[@]}" | sha256sum | cut -c1-16)
tdir=$cache/$arch/tools-$tkey
if [[ ! -f $tdir/.ok ]]; then
  rm -rf "$cache/$arch"/tools-*; mkdir -p "$tdir"
  for deb in "${tdebs[@]}"; do dpkg-deb -x "$deb" "$tdir"; done
  rm -rf "$tdir"/usr/share "$tdir"/usr/include "$tdir"/etc/init.d "$tdir"/lib/systemd "$tdir"/usr/lib/*/pkgconfig
  touch "$tdir/.ok"
fi

echo "KERNEL=$kernel"
echo "KVER=$kver"
echo "KCONFIG=$( [[ -f $kdir/boot/config-$kver ]] && echo "$kdir/boot/config-$kver" )"
echo "MODDIR=$kdir"
echo "BUSYBOX=$bdir/bin/busybox"
echo "TOOLS=$tdir"

#!/bin/bash
# Builds the busybox test image: a squashfs made by mksquashfs from
# Debian's busybox-static. Usage: build.sh OUT.sqfs [ROOTFS_DIR]
# The Go equivalent is testimage.Build (same layout).
set -euo pipefail
out=${1:?usage: build.sh OUT.sqfs [ROOTFS_DIR]}
root=${2:-$(mktemp -d)}
bb=${BUSYBOX:-/bin/busybox}
mkdir -p "$root"/{bin,sbin,etc,root,tmp,proc,sys,dev,run,mnt,home/user,usr/bin,usr/sbin}
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list-full); do
  [[ -e "$root/$a" ]] || ln -s /bin/busybox "$root/$a"
done
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
G
cat >"$root/etc/inittab" <<'I'
::sysinit:/bin/echo otok-sysinit-ran
::respawn:/bin/sleep 3600
::shutdown:/bin/echo otok-shutdown-ran
I
chmod 1777 "$root/tmp"
mksquashfs "$root" "$out" -noappend -quiet -all-root -comp gzip >/dev/null
echo "$out"

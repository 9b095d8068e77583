package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Package metadata, the same as in openwrt-feed/otok/Makefile.
const (
	pkgName       = "otok"
	pkgSection    = "utils"
	pkgSource     = "openwrt-feed/otok"
	pkgURL        = "https://github.com/otok/otok"
	pkgMaintainer = "otok developers <otok@users.noreply.github.com>"
	// The repository has no LICENSE file yet; change this (and PKG_LICENSE
	// in the feed Makefile) when one is chosen.
	pkgLicense     = "LicenseRef-otok"
	pkgDescription = "Containers on OpenWrt routers. One static binary runs signed squashfs\n" +
		"images with namespaces, cgroups and seccomp, puts them on the router's\n" +
		"own ports (bridge, macvlan, ipvlan), starts them from /etc/config/otok\n" +
		"under procd, answers on ubus, and joins an MQTT fleet."
)

// pkgDepends are the runtime dependencies. libc is what every OpenWrt
// package gets (PKG_DEFAULT_DEPENDS); the binary itself is static. The
// kernel modules are those otok needs that OpenWrt ships as modules
// (package/kernel/linux/modules: netsupport.mk veth, netdevices.mk macvlan
// and ipvlan, block.mk loop). Bridge, 802.1q, squashfs and overlayfs are
// built into OpenWrt kernels (target/linux/generic/config-*: CONFIG_BRIDGE=y,
// and the root filesystem needs squashfs and overlay), so they must not be
// dependencies: a kmod package for a built-in option does not exist in the
// feeds and would make installation fail. Namespaces, cgroups and seccomp
// are kernel build options (KERNEL_NAMESPACES, KERNEL_CGROUPS, ...), not
// packages; `otok check` reports them.
var pkgDepends = []string{"libc", "kmod-veth", "kmod-macvlan", "kmod-ipvlan", "kmod-loop"}

// conffiles are kept on upgrade (opkg, apk) and by sysupgrade. Entries that
// are directories go to /lib/upgrade/keep.d/otok, as package-pack.mk does.
var conffiles = []string{"/etc/config/otok", "/etc/otok/keys/"}

// entry is one file or directory of the installed tree.
type entry struct {
	path string // absolute, without trailing slash ("/" for the root)
	dir  bool
	mode uint32 // permission bits
	data []byte
}

func (e entry) sha256() string {
	s := sha256.Sum256(e.data)
	return hex.EncodeToString(s[:])
}

// tree is the installed file tree, sorted by path, directories included.
type tree []entry

func (t tree) file(path string) (entry, bool) {
	for _, e := range t {
		if e.path == path && !e.dir {
			return e, true
		}
	}
	return entry{}, false
}

// buildTree assembles the files otok installs:
//
//	/usr/bin/otok                 0755  the static binary
//	/etc/init.d/otok              0755  procd init script
//	/etc/config/otok              0600  UCI config; 0600 as OpenWrt's INSTALL_CONF
//	                                    installs it, since the fleet section holds
//	                                    broker credentials and key paths
//	/etc/uci-defaults/90-otok     0755  store directory, device identity
//	/etc/otok/keys/               0755  trusted image signing keys (public)
//	/lib/upgrade/keep.d/otok      0644  sysupgrade keeps /etc/otok/keys/
func buildTree(bin, filesDir string) (tree, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("package file: %w", err)
		}
		return b, nil
	}
	binData, err := read(bin)
	if err != nil {
		return nil, err
	}
	initData, err := read(filepath.Join(filesDir, "otok.init"))
	if err != nil {
		return nil, err
	}
	confData, err := read(filepath.Join(filesDir, "otok.config"))
	if err != nil {
		return nil, err
	}
	defData, err := read(filepath.Join(filesDir, "otok.uci-defaults"))
	if err != nil {
		return nil, err
	}
	var keep strings.Builder
	for _, c := range conffiles {
		if strings.HasSuffix(c, "/") {
			keep.WriteString(c + "\n")
		}
	}
	files := []entry{
		{path: "/usr/bin/otok", mode: 0o755, data: binData},
		{path: "/etc/init.d/otok", mode: 0o755, data: initData},
		{path: "/etc/config/otok", mode: 0o600, data: confData},
		{path: "/etc/uci-defaults/90-otok", mode: 0o755, data: defData},
		{path: "/etc/otok/keys", dir: true, mode: 0o755},
		{path: "/lib/upgrade/keep.d/otok", mode: 0o644, data: []byte(keep.String())},
	}
	return withDirs(files), nil
}

// withDirs adds every parent directory (0755) and sorts by path.
func withDirs(files []entry) tree {
	seen := map[string]bool{}
	var t tree
	add := func(e entry) {
		if !seen[e.path] {
			seen[e.path] = true
			t = append(t, e)
		}
	}
	for _, f := range files {
		for d := filepath.Dir(f.path); ; d = filepath.Dir(d) {
			add(entry{path: d, dir: true, mode: 0o755})
			if d == "/" {
				break
			}
		}
		add(f)
	}
	sort.Slice(t, func(i, j int) bool { return t[i].path < t[j].path })
	return t
}

// resolvedConffiles are the conffiles that are regular files in the tree,
// sorted (what ipkg-build writes to CONTROL/conffiles).
func (t tree) resolvedConffiles() []string {
	var out []string
	for _, c := range conffiles {
		if _, ok := t.file(c); ok {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Maintainer scripts as OpenWrt's include/package-pack.mk writes them:
// everything is done by default_postinst / default_prerm from
// /lib/functions.sh, which enable+start (disable+stop) every /etc/init.d
// script of the package and run its uci-defaults. With $IPKG_INSTROOT set
// (image builds, offline roots) they only create the rc.d links; without
// /lib/functions.sh (not an OpenWrt root) they do nothing.

const ipkPostinst = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
`

const ipkPrerm = `#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
`

// apk: post-install, post-upgrade (PKG_UPGRADE=1 + post-install) and
// pre-deinstall, with root and pkgname exported as package-pack.mk does.
// apk runs no pre-deinstall on upgrade, so the running agent keeps the old,
// deleted binary after default_postinst's "start" (procd sees an unchanged
// instance). The postinst-pkg part restarts it with PKG_UPGRADE=1, which the
// init script's stop_service turns into "end the agent, keep containers".
// opkg needs no such part: it runs the old prerm with PKG_UPGRADE=1 first.
const apkPostinstPkg = `if [ -z "${IPKG_INSTROOT}" ] && [ "${PKG_UPGRADE}" = "1" ] && /etc/init.d/otok enabled; then
	/etc/init.d/otok restart
fi
`

func apkPostInstall() string {
	return `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="` + pkgName + `"
add_group_and_user
default_postinst
` + apkPostinstPkg
}

func apkPostUpgrade() string {
	return "#!/bin/sh\nexport PKG_UPGRADE=1\n" + strings.TrimPrefix(apkPostInstall(), "#!/bin/sh\n")
}

func apkPreDeinstall() string {
	return `#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="` + pkgName + `"
default_prerm
`
}

// apkTree adds what OpenWrt's apk packages carry in /lib/apk/packages:
// NAME.list (every file, read by default_postinst/default_prerm to find the
// init script), NAME.conffiles and NAME.conffiles_static (path and sha256).
func apkTree(t tree) tree {
	var list, conf, static strings.Builder
	for _, e := range t {
		if !e.dir {
			list.WriteString(e.path + "\n")
		}
	}
	for _, c := range conffiles {
		conf.WriteString(c + "\n")
	}
	for _, c := range conffiles {
		if f, ok := t.file(c); ok {
			static.WriteString(c + " " + f.sha256() + "\n")
		}
	}
	files := append([]entry(nil), t...)
	dir := "/lib/apk/packages/" + pkgName
	files = append(files,
		entry{path: dir + ".list", mode: 0o644, data: []byte(list.String())},
		entry{path: dir + ".conffiles", mode: 0o644, data: []byte(conf.String())},
		entry{path: dir + ".conffiles_static", mode: 0o644, data: []byte(static.String())},
	)
	return withDirs(files)
}

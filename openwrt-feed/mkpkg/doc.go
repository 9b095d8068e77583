// Command mkpkg builds the OpenWrt packages of otok from the static binaries
// of `make cross`, without the OpenWrt SDK: an .ipk for opkg (OpenWrt 23.05
// and 24.10) and an .apk in apk-tools v3 ADB format (OpenWrt 25.12 and
// later). It lives under openwrt-feed/ as package main so that nothing of it
// ends up in the router binary; it uses the standard library only.
//
// It owns the package layout and metadata: which files are installed with
// which modes, the control fields, conffiles, and the maintainer scripts,
// which are the ones OpenWrt's include/package-pack.mk generates (sourcing
// /lib/functions.sh and calling default_postinst / default_prerm). The feed
// Makefile (openwrt-feed/otok/Makefile) describes the same package for SDK
// builds; keep the two in step.
//
// It knows nothing of how otok works; the init script, UCI defaults and
// uci-defaults script are read from openwrt-feed/otok/files.
//
// Output is reproducible: entries sorted, owners 0:0, every mtime set to
// SOURCE_DATE_EPOCH, gzip headers without name or time. The ipk's tarballs
// are byte for byte what GNU tar writes for ipkg-build. All input is
// checked (architecture, binary ELF header, version syntax for both opkg and
// apk, epoch, files) before anything is written, and the package is written
// to a temporary file and renamed into place.
//
// Usage (what `make ipk ARCH=mipsel_24kc` runs):
//
//	go run ./openwrt-feed/mkpkg -format ipk -arch mipsel_24kc \
//		-describe "$(git describe --tags --long --always --abbrev=7)" \
//		-commits "$(git rev-list --count HEAD)" -epoch "$(git log -1 --format=%ct)"
//
// writes dist/otok_<version>_mipsel_24kc.ipk from dist/otok-mipsle.
//
// apk fidelity: the ADB written here follows apk-tools' own mkpkg (schema
// "pckg", one DATA block per non-empty file, sha256 file hashes, the
// package's unique id in info.hashes; values written in mkpkg's order with
// its de-duplication), so the uncompressed stream is byte for byte what
// `apk mkpkg` makes from the same files, info and scripts (checked by hand
// against apk-tools 3.0.6). Two differences remain: the deflate stream
// ("ADBd") comes from Go's compress/flate, not zlib, so the compressed bytes
// differ (about 2% larger); and there is no SIG block: the package is
// unsigned, so apk installs it only with --allow-untrusted (or once an index
// signed with a trusted key lists it, or after `apk adbsign`).
package main

// Package pkg tests the OpenWrt packaging in openwrt-feed/: the .ipk and
// .apk files openwrt-feed/mkpkg builds (layout, control fields, modes,
// conffiles, the packaged binary's ELF header, apk v3 ADB schema read back
// by an independent reader, reproducibility, rejection of bad input before
// anything is written) and the procd init script, whose start_service,
// service_triggers, reload_service and stop_service run under /bin/sh with
// procd's and UCI's shell helpers replaced by recorders.
//
// It uses the binaries in $OTOK_DIST (from `make cross`, as `make system`
// sets it) or builds them itself into a temporary directory.
package pkg

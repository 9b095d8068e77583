// Package board says what this device is: the OpenWrt release
// (/etc/openwrt_release), the board description (/etc/board.json: model,
// lan/wan ports, swconfig switches), memory, and which kernel features otok
// needs are present (namespaces, cgroups, filesystems, link types, seccomp,
// pivot_root, no_new_privs, store space) — what `otok check` prints.
//
// It reads the system and probes the kernel; it knows nothing of containers,
// images, MQTT or ubus, and imports no other otok package. Probes that need
// to change kernel state (create a link, pivot_root) do so inside throwaway
// namespaces on a locked OS thread, so nothing is left on the host.
//
// Usage:
//
//	rel, err := board.ReadRelease(board.ReleasePath) // os.ErrNotExist off OpenWrt
//	b, err := board.ReadBoardJSON(board.BoardJSONPath)
//	report := board.Check(board.CheckOptions{StorePath: "/overlay/otok"})
//	for _, f := range report.Features { fmt.Println(f.Name, f.Status) }
package board

// Package qemu boots emulated OpenWrt-class routers (mipsel and big-endian
// mips malta, armhf and arm64 virt) under qemu-system and runs programs in
// them: otok's lifecycle scenario and whole Go test packages (the
// `go test -exec` wrapper in cmd/otok-qemu-exec).
//
// It owns the host side only: the arch table (Arches), finding the cached
// Debian kernels and busybox (fetch.sh, mips-kernel.sh), building the base
// initramfs (the Go /init from guestinit, modules in load order, busybox,
// the cross-built otok) and the per-run job archive appended to it, booting
// with a timeout while streaming the console, and turning the guest's marker
// lines (Marker) into results. It knows nothing of otok's packages: the
// guest side speaks to it only through marker lines on the serial console.
//
// Usage:
//
//	a, _ := qemu.Lookup("arm64")
//	g, _ := qemu.Prepare(ctx, qemu.PrepareOptions{Arch: a, Repo: ".", Dist: "dist"})
//	job := qemu.Job{Argv: []string{"/job/bin/true"}, Files: map[string]string{"/job/bin/true": "x"}}
//	res, err := g.Run(ctx, job, qemu.RunOptions{Timeout: time.Minute, Console: os.Stdout})
//	fmt.Println(res.Exit, res.InitAt)
//
// See README.md for the cache layout and how to add an arch.
package qemu

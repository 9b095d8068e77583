package board

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fsKinds are the filesystems otok mounts, with the module that provides
// each and the OpenWrt package that ships the module.
var fsKinds = []struct{ name, module, pkg string }{
	{"squashfs", "squashfs", "kmod-fs-squashfs"},
	{"overlay", "overlay", "kmod-fs-overlay"},
	{"tmpfs", "", ""},
}

func readFilesystems(procRoot string) map[string]bool {
	out := map[string]bool{}
	f, err := os.Open(filepath.Join(procRoot, "filesystems"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			out[fields[len(fields)-1]] = true
		}
	}
	return out
}

func checkFilesystems(procRoot string, mods *moduleIndex) []Feature {
	have := readFilesystems(procRoot)
	var out []Feature
	for _, k := range fsKinds {
		f := Feature{Group: "filesystem", Name: k.name, Required: true}
		switch {
		case have[k.name]:
			f.Status = OK
		case k.module != "" && mods.state(k.module) == "loadable":
			f.Status, f.Detail = Limited, "module "+k.module+" not loaded"
			f.Hint = "the kernel loads it on first mount; or modprobe " + k.module
		default:
			f.Status = Missing
			if k.pkg != "" {
				f.Hint = fmt.Sprintf("install %s (OpenWrt) or enable it in the kernel", k.pkg)
			} else {
				f.Hint = "kernel needs CONFIG_TMPFS"
			}
		}
		out = append(out, f)
	}
	return out
}

// checkLoop looks for loop device support: /dev/loop-control and the loop
// block major in /proc/devices.
func checkLoop(procRoot string, mods *moduleIndex) Feature {
	f := Feature{Group: "device", Name: "loop", Required: true}
	_, ctlErr := os.Stat("/dev/loop-control")
	registered := false
	if fh, err := os.Open(filepath.Join(procRoot, "devices")); err == nil {
		sc := bufio.NewScanner(fh)
		block := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "Block devices") {
				block = true
			}
			if fields := strings.Fields(line); block && len(fields) == 2 && fields[1] == "loop" {
				registered = true
			}
		}
		fh.Close()
	}
	switch {
	case registered && ctlErr == nil:
		f.Status, f.Detail = OK, "/dev/loop-control"
	case registered:
		f.Status, f.Detail = Limited, "loop driver present but no /dev/loop-control"
		f.Hint = "mknod /dev/loop-control c 10 237; otok falls back to free /dev/loopN"
	case mods.state("loop") == "loadable":
		f.Status, f.Detail, f.Hint = Limited, "module loop not loaded", "modprobe loop"
	default:
		f.Status, f.Hint = Missing, "install kmod-loop (OpenWrt) or enable CONFIG_BLK_DEV_LOOP"
	}
	return f
}

package board

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CgroupLayout describes how cgroups are mounted on this host.
type CgroupLayout struct {
	Version string            // "v2", "v1", "hybrid" or "" (none mounted)
	V2Root  string            // mount point of the unified hierarchy, if any
	V2      map[string]bool   // controllers enabled in the v2 root
	V1      map[string]string // v1 controller → mount point
	Kernel  map[string]bool   // controllers the kernel has enabled (/proc/cgroups)
}

// DetectCgroups reads the mounted cgroup hierarchies.
func DetectCgroups(procRoot string) *CgroupLayout {
	l := &CgroupLayout{V2: map[string]bool{}, V1: map[string]string{}, Kernel: map[string]bool{}}
	for _, m := range readMountinfo(filepath.Join(procRoot, "self/mountinfo")) {
		switch m.FSType {
		case "cgroup2":
			if l.V2Root == "" {
				l.V2Root = m.Point
			}
		case "cgroup":
			for _, opt := range strings.Split(m.Super, ",") {
				if _, seen := l.V1[opt]; !seen && isV1Controller(opt) {
					l.V1[opt] = m.Point
				}
			}
		}
	}
	if l.V2Root != "" {
		if b, err := os.ReadFile(filepath.Join(l.V2Root, "cgroup.controllers")); err == nil {
			for _, c := range strings.Fields(string(b)) {
				l.V2[c] = true
			}
		}
	}
	if f, err := os.Open(filepath.Join(procRoot, "cgroups")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 4 && fields[3] == "1" {
				l.Kernel[fields[0]] = true
			}
		}
		f.Close()
	}
	switch {
	case l.V2Root != "" && len(l.V1) > 0:
		l.Version = "hybrid"
	case l.V2Root != "":
		l.Version = "v2"
	case len(l.V1) > 0:
		l.Version = "v1"
	}
	return l
}

func isV1Controller(opt string) bool {
	switch opt {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
		"blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc":
		return true
	}
	return false
}

// controllerNames maps otok's controller names to the v1 names.
var controllerNames = []struct{ name, v1 string }{
	{"memory", "memory"}, {"cpu", "cpu"}, {"pids", "pids"}, {"io", "blkio"},
}

// Usable says where a controller can be used: "v2", "v1" or "".
func (l *CgroupLayout) Usable(name string) string {
	if l.V2[name] {
		return "v2"
	}
	for _, c := range controllerNames {
		if c.name == name && l.V1[c.v1] != "" {
			return "v1"
		}
	}
	return ""
}

func checkCgroups(procRoot string) []Feature {
	l := DetectCgroups(procRoot)
	v := Feature{Group: "cgroup", Name: "version", Required: true}
	switch l.Version {
	case "":
		v.Status, v.Hint = Missing, "mount cgroup2 on /sys/fs/cgroup (OpenWrt does this at boot) or v1 hierarchies"
	case "hybrid":
		var v1 []string
		for c := range l.V1 {
			v1 = append(v1, c)
		}
		sort.Strings(v1)
		v.Status, v.Detail = OK, fmt.Sprintf("hybrid: v1 controllers (%s), v2 tree at %s", strings.Join(v1, " "), l.V2Root)
	case "v2":
		v.Status, v.Detail = OK, "v2 (unified) at "+l.V2Root
	default:
		v.Status, v.Detail = OK, "v1"
	}
	out := []Feature{v}
	for _, c := range controllerNames {
		f := Feature{Group: "cgroup", Name: c.name}
		switch where := l.Usable(c.name); {
		case where != "":
			f.Status, f.Detail = OK, where
		case l.Kernel[c.v1] || l.Kernel[c.name]:
			f.Status, f.Detail = Limited, "enabled in the kernel but not mounted or not delegated"
			f.Hint = fmt.Sprintf("enable %s in the cgroup v2 root's cgroup.subtree_control or mount its v1 hierarchy", c.name)
		default:
			f.Status, f.Hint = Missing, fmt.Sprintf("kernel lacks the %s controller: --%s limits cannot be enforced", c.name, limitFlag(c.name))
		}
		out = append(out, f)
	}
	return out
}

func limitFlag(controller string) string {
	switch controller {
	case "memory":
		return "memory"
	case "cpu":
		return "cpus"
	case "pids":
		return "pids-limit"
	}
	return "io"
}

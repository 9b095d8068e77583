package board

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// namespaceKinds are the namespaces otok uses; user and cgroup are optional
// (user namespaces only for --userns, cgroup namespaces only hide paths).
var namespaceKinds = []struct {
	name     string
	required bool
	hint     string
}{
	{"mnt", true, "kernel needs CONFIG_NAMESPACES"},
	{"pid", true, "kernel needs CONFIG_PID_NS"},
	{"uts", true, "kernel needs CONFIG_UTS_NS"},
	{"ipc", true, "kernel needs CONFIG_IPC_NS"},
	{"net", true, "kernel needs CONFIG_NET_NS"},
	{"user", false, "kernel needs CONFIG_USER_NS; only --userns uses it"},
	{"cgroup", false, "kernel needs CONFIG_CGROUPS + CONFIG_CGROUP_NS; containers then see host cgroup paths"},
}

func checkNamespaces(procRoot string) []Feature {
	var out []Feature
	for _, ns := range namespaceKinds {
		f := Feature{Group: "namespace", Name: ns.name, Required: ns.required}
		if _, err := os.Lstat(filepath.Join(procRoot, "self/ns", ns.name)); err != nil {
			f.Status, f.Hint = Missing, ns.hint
		} else {
			f.Status = OK
		}
		if ns.name == "user" && f.Status == OK {
			if max, err := readInt(filepath.Join(procRoot, "sys/user/max_user_namespaces")); err == nil && max == 0 {
				f.Status = Limited
				f.Detail = "user.max_user_namespaces = 0"
				f.Hint = "sysctl -w user.max_user_namespaces=1024 to use --userns"
			}
		}
		out = append(out, f)
	}
	return out
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

//go:build mips || mipsle

package runtime

import (
	goruntime "runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSysnumsNative checks the o32 table (mips and mipsle) against x/sys.
func TestSysnumsNative(t *testing.T) {
	want := map[string]uint32{
		"mount":             unix.SYS_MOUNT,
		"umount":            unix.SYS_UMOUNT,
		"umount2":           unix.SYS_UMOUNT2,
		"pivot_root":        unix.SYS_PIVOT_ROOT,
		"open_tree":         unix.SYS_OPEN_TREE,
		"move_mount":        unix.SYS_MOVE_MOUNT,
		"fsopen":            unix.SYS_FSOPEN,
		"fsconfig":          unix.SYS_FSCONFIG,
		"fsmount":           unix.SYS_FSMOUNT,
		"fspick":            unix.SYS_FSPICK,
		"mount_setattr":     unix.SYS_MOUNT_SETATTR,
		"unshare":           unix.SYS_UNSHARE,
		"setns":             unix.SYS_SETNS,
		"clone":             unix.SYS_CLONE,
		"clone3":            unix.SYS_CLONE3,
		"init_module":       unix.SYS_INIT_MODULE,
		"finit_module":      unix.SYS_FINIT_MODULE,
		"delete_module":     unix.SYS_DELETE_MODULE,
		"create_module":     unix.SYS_CREATE_MODULE,
		"get_kernel_syms":   unix.SYS_GET_KERNEL_SYMS,
		"query_module":      unix.SYS_QUERY_MODULE,
		"kexec_load":        unix.SYS_KEXEC_LOAD,
		"reboot":            unix.SYS_REBOOT,
		"swapon":            unix.SYS_SWAPON,
		"swapoff":           unix.SYS_SWAPOFF,
		"acct":              unix.SYS_ACCT,
		"keyctl":            unix.SYS_KEYCTL,
		"add_key":           unix.SYS_ADD_KEY,
		"request_key":       unix.SYS_REQUEST_KEY,
		"bpf":               unix.SYS_BPF,
		"perf_event_open":   unix.SYS_PERF_EVENT_OPEN,
		"open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT,
		"name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT,
		"userfaultfd":       unix.SYS_USERFAULTFD,
		"lookup_dcookie":    unix.SYS_LOOKUP_DCOOKIE,
		"quotactl":          unix.SYS_QUOTACTL,
		"quotactl_fd":       unix.SYS_QUOTACTL_FD,
		"nfsservctl":        unix.SYS_NFSSERVCTL,
		"uselib":            unix.SYS_USELIB,
		"_sysctl":           unix.SYS__SYSCTL,
		"iopl":              unix.SYS_IOPL,
		"ioperm":            unix.SYS_IOPERM,
		"vm86":              unix.SYS_VM86,
		"kcmp":              unix.SYS_KCMP,
		"process_vm_readv":  unix.SYS_PROCESS_VM_READV,
		"process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
		"fanotify_init":     unix.SYS_FANOTIFY_INIT,
		"syslog":            unix.SYS_SYSLOG,
		"personality":       unix.SYS_PERSONALITY,
		"pidfd_getfd":       unix.SYS_PIDFD_GETFD,
	}
	checkSysnums(t, goruntime.GOARCH, want)
}

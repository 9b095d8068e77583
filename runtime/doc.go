// Package runtime runs one container: spec, namespaces, the init stage,
// mounts, pivot_root, /dev, capabilities, seccomp, cgroups (v1, v2,
// hybrid), rlimits, user namespaces, exec, signals, state and stats.
//
// It must not know about MQTT, ubus, UCI, the image store or networking
// beyond the network namespace mode: the root filesystem arrives as a host
// directory (a mounted squashfs or a plain tree) and the caller configures
// /proc/<pid>/ns/net between Create and Start.
//
// # Process model
//
// Create starts the container's init in one of two ways.
//
// A direct start (direct.go, the default) needs no second program. A
// locked thread of the calling process unshares the mount, uts, ipc and
// (unless host/path) net namespaces — allowed for one thread of a Go
// process — builds the root filesystem and mounts there, pivots into it,
// finds the command, and prepares a rawProg (rawchild.go): the list of
// system calls left to do. It then clones the init with CLONE_NEWPID as a
// child that shares the address space (CLONE_VM, on a stack of its own;
// clonevm_*.s; a plain fork on other architectures) and runs only those
// raw system calls: join its v1 cgroups (on v2 it is cloned into its
// cgroup with clone3 CLONE_INTO_CGROUP), unshare its cgroup namespace
// (rooted at its own cgroup), mount /proc and mask it, mount the cgroups,
// set rlimits, drop privileges (bounding set, setuid, capability sets,
// no_new_privs, seccomp), report ready on the status pipe, wait on the
// start fifo, reset signal handlers and exec. An error before ready comes
// back to Create as the failed step and errno; after, it goes to the
// container's stderr. The thread goes back to the host's namespaces at
// once; for a foreground run (CreateOptions.KillOnParentExit) it is the
// caller's own thread, whose death kills the init. This saves a second Go
// program's start (~1.1 ms of a run here, more on a router).
//
// The init stage (init.go) is the older way, still used where a forked
// child would not do: a user namespace (a multi-threaded process cannot
// unshare one) and otok's reaper (Process.Init, Go code as PID 1), and
// with OTOK_INIT_STAGE=1 in the caller's environment (for comparison).
// Create re-execs /proc/self/exe (Runtime.InitArgs, `otok init`) with
// Cloneflags for the mount, pid, uts, ipc, cgroup and (unless host/path)
// net namespaces, plus user with --userns. The stage starts from this
// package's init function, told by _OTOK_STAGE=init|exec in its
// environment (stage.go): it runs before the packages that import runtime
// and before main, in any program that links the package (test binaries
// too). The spec travels over a pipe (fd 3); CreateOptions.KeepFiles
// follow at fds 5… and stay open in otok's reaper only. The init is born
// in its cgroup, so the cgroup namespace that comes with the clone is
// rooted there: on v2 by clone3's CLONE_INTO_CGROUP; on v1 the cloning
// thread moves itself into the container's hierarchies by writing "0" to
// their tasks files (moving the writer itself takes no global lock;
// writing a pid to cgroup.procs waits for an RCU grace period, ~10 ms on a
// busy 2-core box) and moves back after the clone.
//
// A container joins only memory and pids, plus cpu/cpuacct with CPU
// limits and devices when it could create device nodes. Its cgroup is
// otok/NAME under the device's state directory (DefaultRoots) and
// otok/NAME@SCOPE under any other (CgroupName), so that runtimes with
// their own state can use the same names at once.
//
// Both ways mount a size-capped tmpfs over <state>/containers in the
// container's mount namespace (holding the overlay's upper and work dirs
// and the root mount point: no host directory of the container becomes a
// mount point, so rm never waits for a namespace teardown), build the
// root (overlay of the image and that tmpfs, or the image read-only),
// /proc, /sys read-only, a tmpfs /dev with an allow-list of nodes, devpts,
// shm, mqueue, the container's cgroups read-only and volumes, pivot, mask
// kernel paths, check the command exists, report ready and block reading
// the start fifo <state>/containers/<name>/start.fifo (opened for reading
// and writing before ready). Start (in any process) writes a byte to the
// fifo (no reader: the init is gone), which lets the init exec the user
// process as PID 1, or otok's reaper (Process.Init) with the user process
// as its child. The init stage drops privileges after the start, on the
// thread that execs; a direct start before it reports ready.
//
// The process that called Create is the init's parent and the only one
// that can Wait for its exit status. Without the agent, `otok run -d`
// makes that a small per-container monitor (a re-exec of otok in its own
// session, like conmon) which also holds the RAM log ring buffer; the
// agent will be the parent instead. No state goes to flash: everything is
// under Runtime.Root (tmpfs, /run/otok).
//
// Exec joins the container's cgroup and namespaces from a dedicated,
// locked OS thread (unshare(CLONE_FS) first, so setns into the mount
// namespace is allowed), then forks `otok` again as the exec stage, which
// is inside the container's pid namespace and drops privileges before
// exec. A multi-threaded process cannot join a user namespace: for a
// --userns container the thread raw-forks a single-threaded child that
// does setns(CLONE_NEWUSER), becomes the namespace's root and execs the
// exec stage (forkIntoUserNS). On cgroup v2 the exec stage is cloned
// into the container's cgroup (CLONE_INTO_CGROUP) from the host's cgroup
// namespace, which nsdelegate requires, and joins the container's cgroup
// namespace itself. The binary must be built with
// CGO_ENABLED=0 (as the Makefile does): with cgo, exec of /proc/self/exe
// after setns fails.
//
// The pids limit is written by the parent when Start releases the init
// (the Go stage needs more threads than a small limit allows, and on v2
// the init may not write its own limit); with Process.Init the reaper's
// own threads (about six) are added to it.
//
// Rootfs.UpperDir moves the overlay's upper and work directories from the
// tmpfs to a host directory: a persistent writable layer.
//
// # Defaults
//
// Capabilities: DefaultCaps. Seccomp: SeccompFilter (deny list, EPERM).
// User namespaces: container ids 0..65535 map to host ids
// DefaultUserNSBase (100000) .. 165535. The image is idmapped for the
// container (open_tree + mount_setattr(MOUNT_ATTR_IDMAP), attached by the
// parent in the init's mount namespace): its root-owned files belong to
// the container's root. Where the kernel cannot idmap the image (squashfs
// on Linux 6.1: mount_setattr EINVAL; 6.18 can), the container still
// runs, State.Warnings says so (otok run prints it), its image files
// appear as nobody's and image directories cannot be copied up; /tmp and
// /run are tmpfs either way. The state
// directory must be searchable by the mapped root (otok adds o+x to its
// own directories). Files written into a userns container's root from the
// host must be created with the mapped ids (fsuid), or they fail with
// EOVERFLOW. --privileged grants every
// capability, disables seccomp, masked and read-only paths and makes /sys
// writable: it gives the container the host.
//
// # Example
//
//	r := &runtime.Runtime{Root: "/run/otok", InitArgs: []string{"otok", "init"}}
//	c, err := r.Create(ctx, &runtime.Spec{
//		Name:    "web",
//		Rootfs:  runtime.Rootfs{Path: "/run/otok/images/<digest>"},
//		Process: runtime.Process{Args: []string{"/bin/httpd", "-f"}},
//	}, runtime.CreateOptions{})
//	// configure /proc/<c.Pid()>/ns/net here
//	err = c.Start(ctx)
//	st, err := c.Wait(ctx) // st.ExitCode, st.OOMKilled
package runtime

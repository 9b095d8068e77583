package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// busyboxApplets are linked in the test image where busybox exists.
var busyboxApplets = []string{"sh", "echo", "cat", "ls", "ping", "hostname", "ip", "ps", "sleep", "id", "env", "mount", "wget", "nc", "seq"}

// toyboxApplets are linked in every test image (see toybox/main.go).
var toyboxApplets = []string{"memhog", "forkbomb", "udpecho", "udpsend"}

// BuildTestImage makes the signed test image for the guest with the host's
// otok (`otok key gen`, `otok image build`): the arch's busybox-static with
// applet links plus the Go toybox; on mips (no busybox) the toybox also
// provides true/false/sleep. It returns the .otok and the public key.
func (g *Guest) BuildTestImage(ctx context.Context, hostOtok, dir string) (otokFile, pub string, err error) {
	root := filepath.Join(dir, "rootfs")
	_ = os.RemoveAll(root)
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", "", err
		}
	}
	cp := func(src, dst string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o755)
	}
	if err := cp(g.Toybox, filepath.Join(root, "bin/toybox")); err != nil {
		return "", "", err
	}
	links := map[string]string{}
	for _, a := range toyboxApplets {
		links[a] = "toybox"
	}
	if g.Busybox != "" {
		if err := cp(g.Busybox, filepath.Join(root, "bin/busybox")); err != nil {
			return "", "", err
		}
		for _, a := range append(busyboxApplets, "true", "false") {
			links[a] = "busybox"
		}
	} else {
		for _, a := range []string{"true", "false", "sleep"} {
			links[a] = "toybox"
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, "bin", name)); err != nil {
			return "", "", err
		}
	}
	_ = os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	key := filepath.Join(dir, "test")
	if _, err := os.Stat(key + ".key"); err != nil {
		if out, err := exec.CommandContext(ctx, hostOtok, "key", "gen", key).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("otok key gen: %v: %s", err, out)
		}
	}
	otokFile = filepath.Join(dir, "test-"+g.Arch.Name+".otok")
	cmd := exec.CommandContext(ctx, hostOtok, "image", "build", "--from", root, "--name", "test", "--version", "1.0",
		"--arch", g.Arch.Dist, "--key", key+".key", "--cmd", "/bin/true", "--created", "1700000000", "-o", otokFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("otok image build: %v: %s", err, lastLines(string(out), 5))
	}
	return otokFile, key + ".pub", nil
}

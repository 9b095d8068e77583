package clisys

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageImportOptionsThroughAgent: with an agent running, every local
// file goes through it, options included (a bare squashfs, a rootfs
// tarball), with the same loud warning for --insecure-skip-verify; the
// usage rules are checked by the CLI before the agent is asked; --reserve
// (which the agent does not take) imports directly.
func TestImageImportOptionsThroughAgent(t *testing.T) {
	w := newWorld(t)
	sq := image(t)
	tarball := filepath.Join(w.dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", imgRoot, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	otokFile := filepath.Join(w.dir, "signed.otok")
	w.must("key", "gen", filepath.Join(w.dir, "signer"))
	pub, _ := os.ReadFile(filepath.Join(w.dir, "signer.pub"))
	os.WriteFile(filepath.Join(w.keys, "signer.pub"), pub, 0o644)
	w.must("image", "build", "--from", imgRoot, "--name", "signed", "--version", "1", "--key", filepath.Join(w.dir, "signer.key"), "--comp", "gzip", "-o", otokFile)
	w.startAgent()

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout string
	}{
		{"bare squashfs", []string{sq, "--name", "bare", "--version", "2", "--insecure-skip-verify"}, 0,
			[]string{"imported bare:2 (squashfs ", "UNSIGNED", "by the agent"}, []string{"WARNING: --insecure-skip-verify"}, ""},
		{"bare squashfs again", []string{sq, "--name", "bare", "--version", "2", "--insecure-skip-verify"}, 0,
			[]string{"bare:2 already in the store", "by the agent"}, nil, ""},
		{"tarball", []string{tarball, "--name", "tb", "--version", "1", "--insecure-skip-verify", "--max-size", "64M"}, 0,
			[]string{"imported tb:1 (dir ", "by the agent"}, []string{"WARNING"}, ""},
		{"signed .otok", []string{otokFile}, 0, []string{"imported signed:1 (squashfs ", "signed by ", "by the agent"}, nil, "NOT verified"},
		{"tarball unsigned without the flag", []string{tarball, "--name", "tb2"}, 1, nil, []string{"carries no signature"}, ""},
		{"bare squashfs without a name", []string{sq, "--insecure-skip-verify"}, 2, nil, []string{"a bare squashfs needs --name"}, ""},
		{".otok renamed", []string{otokFile, "--name", "other"}, 2, nil, []string{"a .otok names itself"}, ""},
		{"bad max size", []string{tarball, "--name", "tb3", "--insecure-skip-verify", "--max-size", "lots"}, 2, nil, []string{"bad --max-size"}, ""},
		{"--reserve imports directly", []string{sq, "--name", "direct", "--version", "1", "--insecure-skip-verify", "--reserve", "1M"}, 0,
			[]string{"direct:1 already in the store"}, []string{"WARNING"}, "by the agent"}, // bare:2's content
	} {
		out, errOut, code := w.run(append([]string{"image", "import"}, tc.args...)...)
		ok := code == tc.code && (tc.noStdout == "" || !strings.Contains(out, tc.noStdout))
		for _, s := range tc.stdout {
			ok = ok && strings.Contains(out, s)
		}
		for _, s := range tc.stderr {
			ok = ok && strings.Contains(errOut, s)
		}
		if !ok {
			t.Errorf("%s: otok image import %v: exit %d (want %d)\nstdout: %s\nstderr: %s%s", tc.name, tc.args, code, tc.code, out, errOut, w.logTail())
		}
	}
	ls := w.must("image", "ls")
	for _, ref := range []string{"bare", "tb", "signed", "direct"} {
		if !strings.Contains(ls, ref) {
			t.Errorf("image ls lacks %s:\n%s", ref, ls)
		}
	}
	for _, ref := range []string{"tb2", "tb3", "other"} {
		if strings.Contains(ls, ref) {
			t.Errorf("image ls has %s after a refused import:\n%s", ref, ls)
		}
	}
}

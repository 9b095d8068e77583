package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nweb:x:50:\n"), 0o644)
	for in, want := range map[string][2]int{"": {0, 0}, "www": {33, 34}, "33": {33, 34}, "www:web": {33, 50}, "1000": {1000, 1000}, "1000:7": {1000, 7}} {
		u, g, err := resolveUser(root, in)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("%q: %d:%d %v", in, u, g, err)
		}
	}
	for _, in := range []string{"nobody", "www:nogroup"} {
		if _, _, err := resolveUser(root, in); err == nil {
			t.Errorf("%q resolved", in)
		}
	}
	// a symlink out of the image resolves inside it
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	host := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(host, []byte("hostonly:x:7:7::/:/bin/sh\n"), 0o644)
	os.Symlink(host, filepath.Join(evil, "etc/passwd"))
	if _, _, err := resolveUser(evil, "hostonly"); err == nil {
		t.Error("read a host file through an image symlink")
	}
}

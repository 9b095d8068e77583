package netcfg

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEtcFiles(t *testing.T) {
	rc := string(resolvConf([]net.IP{net.ParseIP("192.168.1.1"), net.ParseIP("fd00::1")}, "lan"))
	if rc != "# written by otok\nsearch lan\nnameserver 192.168.1.1\nnameserver fd00::1\n" {
		t.Errorf("resolv.conf = %q", rc)
	}
	h := string(hostsFile("web", []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")}))
	if !strings.Contains(h, "127.0.0.1\tlocalhost\n") || !strings.HasSuffix(h, "10.0.0.5\tweb\n") {
		t.Errorf("hosts = %q", h)
	}
	if h := string(hostsFile("iso", nil)); !strings.HasSuffix(h, "127.0.1.1\tiso\n") {
		t.Errorf("hosts without addresses = %q", h)
	}
}

// An image cannot make otok write outside the container's root with
// symlinks: an absolute /etc/resolv.conf link is replaced, not followed;
// an /etc that links outside resolves inside the root.
func TestWriteEtcFileStaysInRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	os.Symlink(victim, filepath.Join(root, "etc", "resolv.conf"))
	if err := writeEtcFile(root, "resolv.conf", []byte("nameserver 1.1.1.1\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("victim outside the root overwritten: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); string(b) != "nameserver 1.1.1.1\n" {
		t.Errorf("resolv.conf in root = %q", b)
	}

	root2 := t.TempDir()
	os.Symlink(outside, filepath.Join(root2, "etc"))
	writeEtcFile(root2, "hosts", []byte("x"))
	if _, err := os.Stat(filepath.Join(outside, "hosts")); err == nil {
		t.Error("wrote through an /etc symlink to outside the root")
	}
	// No root /etc at all: created.
	root3 := t.TempDir()
	if err := writeEtcFile(root3, "hosts", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root3, "etc", "hosts")); string(b) != "y" {
		t.Errorf("hosts = %q", b)
	}
}

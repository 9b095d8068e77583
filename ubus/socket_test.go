package ubus_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

func TestFindSocketFallback(t *testing.T) {
	dir := t.TempDir()
	def, fb := filepath.Join(dir, "ubus", "ubus.sock"), filepath.Join(dir, "ubus.sock")
	restore := ubus.SetSocketCandidates(def, fb)
	defer restore()
	if p := ubus.FindSocket(); p != "" {
		t.Fatalf("found %q with no socket", p)
	}
	if _, err := ubus.Dial(context.Background(), ubus.Options{}); err == nil {
		t.Fatal("dial without a socket succeeded")
	}
	br, err := ubustest.Start(fb)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	if p := ubus.FindSocket(); p != fb {
		t.Fatalf("found %q, want the fallback %q", p, fb)
	}
	c, err := ubus.Dial(context.Background(), ubus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// With both present the default wins.
	if err := os.Mkdir(filepath.Dir(def), 0o755); err != nil {
		t.Fatal(err)
	}
	br2, err := ubustest.Start(def)
	if err != nil {
		t.Fatal(err)
	}
	defer br2.Close()
	if p := ubus.FindSocket(); p != def {
		t.Fatalf("found %q, want the default %q", p, def)
	}
}

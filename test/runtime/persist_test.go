package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/runtime"
	"github.com/otok/otok/test/testenv"
)

// TestPersistentUpperDir drives the runtime API from this test binary
// (its init stage starts from the runtime package's init, whatever the
// program): with Rootfs.UpperDir the writable layer is a directory on disk
// that the next container of the same layer sees again.
func TestPersistentUpperDir(t *testing.T) {
	testenv.NeedRoot(t)
	_, root := testenv.Image(t)
	state := testenv.StateDir(t, false)
	layer := filepath.Join(t.TempDir(), "layer") // created by the runtime
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runtime.Runtime{Root: state, InitArgs: []string{"otok-test", "init"}, ExecArgs: []string{"otok-test", "execstage"}}
	ctx := context.Background()
	run := func(name, script string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		spec := &runtime.Spec{Name: name, Rootfs: runtime.Rootfs{Path: root, UpperDir: layer},
			Process: runtime.Process{Args: []string{"/bin/sh", "-c", script}}}
		c, err := r.Create(ctx, spec, runtime.CreateOptions{IO: runtime.IO{Stdout: f, Stderr: f}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		st, err := c.Wait(ctx)
		if err != nil {
			t.Fatalf("wait %s: %v", name, err)
		}
		if _, err := r.Delete(ctx, name, true); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		b, _ := os.ReadFile(out)
		if st.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", name, st.ExitCode, b)
		}
		return strings.TrimSpace(string(b))
	}
	run("persist1", "echo kept >/etc/otok-persist")
	if b, err := os.ReadFile(filepath.Join(layer, "upper", "etc", "otok-persist")); err != nil || string(b) != "kept\n" {
		t.Fatalf("upper layer on disk: %q, %v", b, err)
	}
	if got := run("persist2", "cat /etc/otok-persist"); got != "kept" {
		t.Fatalf("second container reads %q, want the first one's file", got)
	}
	// The image itself is untouched.
	if _, err := os.Stat(filepath.Join(root, "etc", "otok-persist")); err == nil {
		t.Fatal("the write reached the image")
	}
	// Bad input: relative, and with a read-only root.
	for _, rfs := range []runtime.Rootfs{{Path: root, UpperDir: "rel/dir"}, {Path: root, UpperDir: layer, ReadOnly: true}} {
		spec := &runtime.Spec{Name: "bad", Rootfs: rfs, Process: runtime.Process{Args: []string{"true"}}}
		if _, err := r.Create(ctx, spec, runtime.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "upper dir") {
			t.Errorf("%+v: err %v, want an upper dir error", rfs, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "containers")); len(ents) != 0 {
		t.Errorf("state left: %v", ents)
	}
}

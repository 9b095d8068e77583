package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/flash"
)

// realStore is the real flash store on a temp dir (no keys: nothing is
// imported here), with reserve r.
func realStore(t *testing.T, r flash.Reserve) (*FlashStore, string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "keys"), 0o755)
	root := filepath.Join(dir, "store")
	return &FlashStore{Root: root, Keys: filepath.Join(dir, "keys"), RunDir: filepath.Join(dir, "run"), Reserve: r}, root
}

func TestPersistentLayer(t *testing.T) {
	rt := newFakeRT()
	fst, root := realStore(t, flash.Reserve{Bytes: -1})
	uci := "config container p\n option image busybox\n option persistent 1\nconfig container tmp\n option image busybox\n"
	e := newTestAgentWith(t, uci, rt, fst)
	ctx := context.Background()
	e.waitState("p", StateRunning)
	e.waitState("tmp", StateRunning)
	pdir := filepath.Join(root, "persistent", "p")
	rt.mu.Lock()
	up, upTmp := rt.uppers["p"], rt.uppers["tmp"]
	rt.mu.Unlock()
	if up != pdir || upTmp != "" {
		t.Fatalf("upper dirs: p %q (want %q), tmp %q", up, pdir, upTmp)
	}
	for d, mode := range map[string]os.FileMode{".": 0o700, "upper": 0o755, "work": 0o700} {
		if fi, err := os.Stat(filepath.Join(pdir, d)); err != nil || !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
	// what the container wrote survives a restart
	os.WriteFile(filepath.Join(pdir, "upper", "kept"), []byte("x"), 0o644)
	if _, err := e.a.Restart(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	e.waitState("p", StateRunning)
	if _, err := os.Stat(filepath.Join(pdir, "upper", "kept")); err != nil {
		t.Errorf("after restart: %v", err)
	}

	// an API container's layer goes with rm
	if _, err := e.a.Run(ctx, &ContainerSpec{Name: "q", Image: "busybox", Persistent: true}, true); err != nil {
		t.Fatal(err)
	}
	qdir := filepath.Join(root, "persistent", "q")
	if _, err := os.Stat(filepath.Join(qdir, "upper")); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Remove(ctx, "q", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(qdir); !os.IsNotExist(err) {
		t.Errorf("q's layer after rm: %v", err)
	}
	// a run that fails keeps nothing, its layer included
	rt.mu.Lock()
	rt.failCreate["bad"] = errors.New("no such thing")
	rt.mu.Unlock()
	if _, err := e.a.Run(ctx, &ContainerSpec{Name: "bad", Image: "busybox", Persistent: true}, true); err == nil {
		t.Fatal("run with a failing create succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "persistent", "bad")); !os.IsNotExist(err) {
		t.Errorf("layer of a failed run: %v", err)
	}
	// a config container's layer goes when its section does; the other
	// container's is untouched
	os.WriteFile(e.dir+"/otok", []byte("config container tmp\n option image busybox\n"), 0o644)
	if r, err := e.a.Reload(ctx); err != nil || len(r.Removed) != 1 {
		t.Fatalf("reload: %+v %v", r, err)
	}
	if _, err := os.Stat(pdir); !os.IsNotExist(err) {
		t.Errorf("p's layer after its section went: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "persistent")); err != nil {
		t.Errorf("persistent root: %v", err)
	}
}

func TestPersistentReserve(t *testing.T) {
	rt := newFakeRT()
	fst, root := realStore(t, flash.Reserve{Bytes: 1 << 60})
	e := newTestAgentWith(t, "config container p\n option image busybox\n option persistent 1\n", rt, fst)
	st := e.waitState("p", StateError)
	if !strings.Contains(st.Error, "container p: persistent: store "+root+" has") || !strings.Contains(st.Error, "not above its reserve") {
		t.Errorf("error %q", st.Error)
	}
	if len(rt.callsOf("create p")) != 0 {
		t.Error("created although the store is at its reserve")
	}
	if _, err := os.Stat(filepath.Join(root, "persistent", "p")); !os.IsNotExist(err) {
		t.Errorf("layer made although refused: %v", err)
	}
	if _, err := e.a.Run(context.Background(), &ContainerSpec{Name: "q", Image: "busybox", Persistent: true}, true); CodeOf(err) != CodeNoSpace {
		t.Errorf("run: %v (%s)", err, CodeOf(err))
	}
}

// The free-space watch reports a crossing of the reserve once, and the
// way back.
func TestPersistentSpaceWatch(t *testing.T) {
	rt := newFakeRT()
	fst, root := realStore(t, flash.Reserve{Bytes: -1})
	e := newTestAgentWith(t, "config container p\n option image busybox\n option persistent 1\n", rt, fst)
	e.waitState("p", StateRunning)
	count := func(s string) int {
		n := 0
		_ = e.a.Events(context.Background(), &EventsRequest{}, func(v any) error {
			if ev, ok := v.(Event); ok && strings.Contains(ev.Msg, s) {
				n++
			}
			return nil
		})
		return n
	}
	e.a.checkPersistentSpace()
	if count("reserve") != 0 {
		t.Fatal("reported with no reserve")
	}
	e.a.mu.Lock()
	e.a.persistReserve = 1 << 60
	e.a.mu.Unlock()
	e.a.checkPersistentSpace()
	e.a.checkPersistentSpace()
	if n := count("below its reserve"); n != 1 || count("persistent containers writing to it: p") != 1 || count("store "+filepath.Join(root, "persistent")) != 1 {
		t.Errorf("below: %d events", n)
	}
	e.a.mu.Lock()
	e.a.persistReserve = 0
	e.a.mu.Unlock()
	e.a.checkPersistentSpace()
	if n := count(" again"); n != 1 {
		t.Errorf("above again: %d events", n)
	}
}

// runtimeSpec hands the layer to the runtime.
func TestRuntimeSpecUpperDir(t *testing.T) {
	s := &RunSpec{Spec: &ContainerSpec{Name: "p", Image: "busybox", Persistent: true}, Rootfs: "/img", UpperDir: "/store/persistent/p"}
	rs, err := runtimeSpec(s)
	if err != nil || rs.Rootfs.UpperDir != "/store/persistent/p" || rs.Validate() != nil {
		t.Errorf("persistent: %v %+v", err, rs.Rootfs)
	}
	s.UpperDir, s.Spec.Persistent = "", false
	if rs, err := runtimeSpec(s); err != nil || rs.Rootfs.Path != "/img" || rs.Rootfs.UpperDir != "" {
		t.Errorf("tmpfs layer: %v", err)
	}
}

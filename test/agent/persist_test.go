package agentsys

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPersistentLayer: a container with option persistent writes into
// STORE/persistent/NAME/upper on disk; what it wrote is there again
// after a restart; removing
// its section (reload) deletes the layer. A non-persistent container's
// changes are gone at its restart.
func TestPersistentLayer(t *testing.T) {
	w := newWorld(t)
	const cmd = `
	list command /bin/sh
	list command -c
	list command 'echo run >> /marks; trap "exit 0" TERM; while true; do sleep 0.1; done'
`
	base := "config agent\n\toption stop_timeout 2\n\toption reserve '1M'\n\n" +
		"config container agt_tmp\n\toption image 'IMG'\n" + cmd + "\n"
	w.writeConfig(base + "config container agt_per\n\toption image 'IMG'\n\toption persistent 1\n" + cmd)
	w.start()
	layer := filepath.Join(w.dir, "store", "persistent", "agt_per")
	w.waitState("agt_per", "running", 15*time.Second)
	w.waitState("agt_tmp", "running", 15*time.Second)
	marks := filepath.Join(layer, "upper", "marks")
	w.waitFor("the first mark on flash", 5*time.Second, func() bool {
		b, _ := os.ReadFile(marks)
		return string(b) == "run\n"
	})
	for _, n := range []string{"agt_per", "agt_tmp"} {
		if out, code := w.otok("restart", n); code != 0 {
			t.Fatalf("restart %s: exit %d: %s", n, code, out)
		}
	}
	w.waitFor("the second mark on flash", 10*time.Second, func() bool {
		b, _ := os.ReadFile(marks)
		return string(b) == "run\nrun\n"
	})
	// what each container sees at /marks (through its init's root)
	seen := func(n string) string {
		st := w.waitState(n, "running", 10*time.Second)
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.Pid), "root", "marks"))
		if err != nil {
			return err.Error()
		}
		return string(b)
	}
	w.waitFor("agt_tmp's new mark", 5*time.Second, func() bool { return seen("agt_tmp") == "run\n" })
	if got := seen("agt_tmp"); got != "run\n" {
		t.Errorf("tmpfs container after restart: %q (want one mark)", got)
	}
	if got := seen("agt_per"); got != "run\nrun\n" {
		t.Errorf("persistent container after restart: %q", got)
	}
	// the container's / has the mode it has on tmpfs (overlayfs takes the
	// upper dir's)
	st := w.inspect("agt_per")
	if fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(st.Pid), "root") + "/"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("persistent container's /: %v %v", fi.Mode(), err)
	}

	// removing the section removes the container and its layer
	w.writeConfig(base)
	if out, code := w.otok("agent", "reload"); code != 0 {
		t.Fatalf("reload: exit %d: %s", code, out)
	}
	w.waitFor("agt_per removed", 10*time.Second, func() bool { return w.inspect("agt_per") == nil })
	if _, err := os.Stat(layer); !os.IsNotExist(err) {
		t.Errorf("layer after the section went: %v", err)
	}
}

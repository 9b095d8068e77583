package flashsys

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/otok/otok/flash"
	"github.com/otok/otok/test/testenv"
	"github.com/ulikunitz/xz"
)

// runOrMount proves an imported image is usable: through `otok run` when
// the binary has it, else by mounting it the way run does.
func runOrMount(t *testing.T, w *world, ref string, checks map[string]string, absent ...string) {
	t.Helper()
	testenv.NeedRoot(t)
	if w.hasCommand("run") {
		for cmd, want := range checks {
			// "/bin/sh -c SCRIPT…" keeps the script as one argument.
			argv := strings.Fields(cmd)
			if strings.HasPrefix(cmd, "/bin/sh -c ") {
				argv = []string{"/bin/sh", "-c", strings.TrimPrefix(cmd, "/bin/sh -c ")}
			}
			o, e, code := w.run(nil, append([]string{"run", "--rm", ref}, argv...)...)
			if code != 0 || !strings.Contains(o, want) {
				t.Errorf("otok run %s %s: exit %d, stdout %q, want %q\n%s", ref, cmd, code, o, want, e)
			}
		}
		return
	}
	t.Logf("otok run not in this binary yet: checking by mounting the image instead")
	var img struct{ Path, Kind, Digest string }
	json.Unmarshal([]byte(w.ok("image", "inspect", ref)), &img)
	dir := img.Path
	if img.Kind == "squashfs" {
		var err error
		dir, err = flash.AcquireSquashfs(bg(), w.state, img.Path, strings.TrimPrefix(img.Digest, "sha256:"), "systest")
		if err != nil {
			t.Fatal(err)
		}
		defer flash.ReleaseSquashfs(w.state, strings.TrimPrefix(img.Digest, "sha256:"), "systest")
	}
	for _, p := range absent {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s: %s should not exist", ref, p)
		}
	}
	for cmd, want := range checks {
		args := strings.Fields(cmd)
		if args[0] == "cat" {
			b, err := os.ReadFile(filepath.Join(dir, args[1]))
			if err != nil || !strings.Contains(string(b), want) {
				t.Errorf("%s in %s: %q %v", args[1], ref, b, err)
			}
		}
	}
}

func TestRoundTripBusybox(t *testing.T) {
	w := newWorld(t)
	root := busyboxTree(t)
	out := filepath.Join(w.dir, "busybox.otok")
	o := w.ok("image", "build", "--from", root, "--name", "busybox", "--version", "1.35.0", "--entrypoint", "/bin/sh",
		"--env", "GREETING=hi", "--port", "80/tcp", "--key", w.key, "-o", out)
	t.Log(strings.TrimSpace(o))
	o = w.ok("image", "import", out)
	if !strings.Contains(o, "imported busybox:1.35.0") || !strings.Contains(o, "written to flash") {
		t.Fatalf("import: %s", o)
	}
	if o = w.ok("image", "import", out); !strings.Contains(o, "already in the store") {
		t.Fatalf("re-import: %s", o)
	}
	if ls := w.ok("image", "ls"); !strings.Contains(ls, "busybox") || !strings.Contains(ls, "1.35.0") {
		t.Fatalf("ls: %s", ls)
	}
	w.ok("image", "inspect", "--verify", "busybox:1.35.0")
	df := w.ok("df")
	if !strings.Contains(df, "busybox:1.35.0") || !strings.Contains(df, "reserve") {
		t.Fatalf("df: %s", df)
	}
	// From stdin, into a second store.
	w2 := *w
	w2.store = filepath.Join(w.dir, "store2")
	f, _ := os.Open(out)
	defer f.Close()
	if o, e, code := w2.run(f, "image", "import", "-"); code != 0 {
		t.Fatalf("import -: %s %s", o, e)
	}
	runOrMount(t, w, "busybox", map[string]string{"cat /etc/motd": "hello from the store", "/bin/sh -c echo ${GREETING}-there": "hi-there"})
	w.ok("image", "rm", "busybox")
	if ls := w.ok("image", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("after rm: %s", ls)
	}
}

// xzFile compresses path to path.xz (8 MiB dictionary, CRC64, as xz -6
// would) and removes path.
func xzFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw, err := xz.WriterConfig{DictCap: 8 << 20, CheckSum: xz.CRC64}.NewWriter(&out)
	if err == nil {
		_, err = zw.Write(b)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatalf("xz %s: %v", path, err)
	}
	if err := os.WriteFile(path+".xz", out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
}

func TestRoundTripRootfsTarXz(t *testing.T) {
	w := newWorld(t)
	root := busyboxTree(t)
	tarball := filepath.Join(w.dir, "rootfs.tar")
	os.WriteFile(tarball, tarDir(t, root), 0o644)
	if out, err := exec.Command("xz", "-T1", "-6", tarball).CombinedOutput(); err != nil {
		// No xz that compresses (busybox's, in the qemu guests): the
		// same format from the Go encoder.
		t.Logf("xz: %v %s; compressing with github.com/ulikunitz/xz", err, bytes.TrimSpace(out))
		xzFile(t, tarball)
	}
	tarball += ".xz"
	_, e, code := w.run(nil, "image", "import", tarball, "--name", "bbdir")
	if code == 0 || !strings.Contains(e, "carries no signature") {
		t.Fatalf("unsigned tarball accepted without --insecure-skip-verify: %d %s", code, e)
	}
	o, e, code := w.run(nil, "image", "import", tarball, "--name", "bbdir", "--version", "1", "--insecure-skip-verify")
	if code != 0 || !strings.Contains(e, "WARNING") {
		t.Fatalf("import: %d %s %s", code, o, e)
	}
	if ls := w.ok("image", "ls"); !strings.Contains(ls, "dir") {
		t.Fatalf("ls: %s", ls)
	}
	runOrMount(t, w, "bbdir:1", map[string]string{"cat /etc/motd": "hello from the store"})
}

// dockerArchive builds a docker-save archive: layer 1 is the busybox tree
// plus files, layer 2 deletes one with a whiteout and makes a dir opaque.
func dockerArchive(t *testing.T, root string) string {
	var l1 bytes.Buffer
	l1.Write(bytes.TrimSuffix(tarDir(t, root), make([]byte, 1024)))
	tw := tar.NewWriter(&l1)
	add := func(tw *tar.Writer, name, body string) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	add(tw, "etc/old.conf", "old")
	add(tw, "etc/keep.conf", "keep")
	add(tw, "var/cache/a", "a")
	tw.Close()
	var l2 bytes.Buffer
	tw = tar.NewWriter(&l2)
	add(tw, "etc/.wh.old.conf", "")
	add(tw, "var/cache/.wh..wh..opq", "")
	add(tw, "var/cache/new", "new")
	tw.Close()
	// The archive is for this machine (the test also runs in the qemu
	// guests): Docker's architecture names are GOARCH's.
	cfg, _ := json.Marshal(map[string]any{"architecture": runtime.GOARCH, "os": "linux", "config": map[string]any{
		"Entrypoint": []string{"/bin/sh", "-c"}, "Cmd": []string{"cat /etc/keep.conf"}, "Env": []string{"PATH=/bin"},
		"WorkingDir": "/", "ExposedPorts": map[string]any{"8080/tcp": map[string]any{}}}})
	sum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(sum[:]) + ".json"
	man, _ := json.Marshal([]map[string]any{{"Config": cfgName, "Layers": []string{"l1/layer.tar", "l2/layer.tar"}}})
	var out bytes.Buffer
	tw = tar.NewWriter(&out)
	add(tw, "manifest.json", string(man))
	add(tw, cfgName, string(cfg))
	add(tw, "l1/layer.tar", l1.String())
	add(tw, "l2/layer.tar", l2.String())
	tw.Close()
	p := filepath.Join(t.TempDir(), "image.tar")
	os.WriteFile(p, out.Bytes(), 0o644)
	return p
}

func TestRoundTripDockerArchive(t *testing.T) {
	w := newWorld(t)
	root := busyboxTree(t)
	out := filepath.Join(w.dir, "docker.otok")
	w.ok("image", "build", "--from", dockerArchive(t, root), "--name", "fromdocker", "--version", "2", "--key", w.key, "-o", out)
	w.ok("image", "import", out)
	var j struct {
		Process flash.Process
		Ports   []string
		Arch    string
	}
	json.Unmarshal([]byte(w.ok("image", "inspect", "fromdocker")), &j)
	if strings.Join(j.Process.Args, " ") != "/bin/sh -c cat /etc/keep.conf" || len(j.Ports) != 1 || j.Arch != runtime.GOARCH {
		t.Fatalf("manifest from docker config: %+v", j)
	}
	runOrMount(t, w, "fromdocker", map[string]string{
		"cat /etc/keep.conf": "keep",
		"/bin/sh -c test -e /etc/old.conf || echo whiteout-ok":                 "whiteout-ok",
		"/bin/sh -c test -e /var/cache/a || cat /var/cache/new && echo opq-ok": "opq-ok",
		"cat /var/cache/new": "new",
	}, "etc/old.conf", "var/cache/a", "etc/.wh.old.conf", "var/cache/.wh..wh..opq")
}

func bg() ctx { return ctxBackground }

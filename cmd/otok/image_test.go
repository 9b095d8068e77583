package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/otok/otok/flash"
)

// imageWorld: a temp store and keys dir with one trusted key.
func imageWorld(t *testing.T) (e *env, key ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o755)
	pub, err := flash.GenerateKey(filepath.Join(keys, "k"))
	if err != nil {
		t.Fatal(err)
	}
	_ = pub
	key, err = flash.LoadPrivateKey(filepath.Join(keys, "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(keys, "k.key"))
	return &env{store: filepath.Join(dir, "store"), keys: keys, state: filepath.Join(dir, "run"), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}, key
}

func TestResolveImageThroughStore(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("skipped: mksquashfs not installed")
	}
	e, key := imageWorld(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hello"), []byte("hi"), 0o644)
	var digests []string
	for _, v := range []string{"1.2", "1.10"} {
		os.WriteFile(filepath.Join(src, "version"), []byte(v), 0o644)
		out := filepath.Join(t.TempDir(), "img.otok")
		_, err := flash.Build(context.Background(), flash.BuildOptions{From: src, Name: "app", Version: v, Key: key, Out: out,
			Entrypoint: []string{"/hello"}, Env: []string{"V=" + v}, Cwd: "/tmp", User: "1:1", Created: 1})
		if err != nil {
			t.Fatal(err)
		}
		code, o, stderr := run(t, "--store", e.store, "--keys", e.keys, "image", "import", out)
		if code != 0 {
			t.Fatalf("import: %s %s", o, stderr)
		}
		st, _ := openStore(e, "")
		img, _ := st.Resolve("app:" + v)
		digests = append(digests, img.Digest)
	}
	s, err := resolveImage(e, "app")
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest != digests[1] || !strings.HasSuffix(s.Squashfs, "rootfs.squashfs") || s.Process == nil ||
		s.Process.Env[0] != "V=1.10" || s.Process.Cwd != "/tmp" || s.Process.User != "1:1" || s.Process.Args[0] != "/hello" {
		t.Fatalf("app: %+v %+v", s, s.Process)
	}
	for ref, want := range map[string]string{"app:1.2": digests[0], "sha256:" + digests[0]: digests[0], digests[1][:8]: digests[1]} {
		if s, err := resolveImage(e, ref); err != nil || s.Digest != want {
			t.Errorf("%s: %v %v", ref, s, err)
		}
	}
	if _, err := resolveImage(e, "./missing"); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("./missing: %v", err)
	}
	if _, err := resolveImage(e, "nothere"); err == nil || !strings.Contains(err.Error(), "no such file, directory or image in the store") {
		t.Errorf("nothere: %v", err)
	}
	// A path still wins.
	if s, err := resolveImage(e, src); err != nil || s.Dir != src {
		t.Errorf("dir: %v %v", s, err)
	}
	code, o, _ := run(t, "--store", e.store, "--keys", e.keys, "--state", e.state, "image", "ls", "--json")
	var ls []imageJSON
	if code != 0 || json.Unmarshal([]byte(o), &ls) != nil || len(ls) != 2 || ls[0].Version != "1.10" {
		t.Fatalf("ls --json: %d %s", code, o)
	}
}

func TestImageCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"image"}, {"image", "nope"}, {"image", "import"}, {"image", "build", "--from", "x"},
		{"image", "rm"}, {"key"}, {"key", "gen"}, {"df", "extra"},
	} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, o, _ := run(t, "image", "inspect", "--help"); code != 0 || !strings.Contains(o, "--verify") && !strings.Contains(o, "-verify") {
		t.Errorf("inspect --help: %d %s", code, o)
	}
}

func TestParseHelpers(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "512": 512, "64k": 64 << 10, "16M": 16 << 20, "1G": 1 << 30} {
		if got, err := parseByteSize(s); err != nil || got != want {
			t.Errorf("%s: %d %v", s, got, err)
		}
	}
	if _, err := parseByteSize("-1"); err == nil {
		t.Error("negative accepted")
	}
	fs := newFlags(&env{stdout: &bytes.Buffer{}}, &command{name: "x"})
	v := fs.Bool("verify", false, "")
	pos, err := parseAll(fs, []string{"a", "--verify", "b", "--", "--c"})
	if err != nil || !*v || strings.Join(pos, " ") != "a b --c" {
		t.Errorf("parseAll: %v %v %v", pos, *v, err)
	}
}

// TestRmAndDfSharedContent: one squashfs under several names. df counts
// it once; rm of a name whose content another name holds frees nothing and
// says so; rm of the last name frees the size; gc reports the same way.
func TestRmAndDfSharedContent(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("skipped: mksquashfs not installed")
	}
	e, key := imageWorld(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "data"), bytes.Repeat([]byte("otok shared content "), 4096), 0o644)
	g := []string{"--store", e.store, "--keys", e.keys, "--state", e.state}
	otok := func(args ...string) string {
		t.Helper()
		code, o, stderr := run(t, append(g, args...)...)
		if code != 0 {
			t.Fatalf("otok %v: exit %d %s %s", args, code, o, stderr)
		}
		return o
	}
	for _, ref := range []string{"a:1", "b:1", "c:2"} {
		name, v, _ := strings.Cut(ref, ":")
		out := filepath.Join(t.TempDir(), name+".otok")
		if _, err := flash.Build(context.Background(), flash.BuildOptions{From: src, Name: name, Version: v, Key: key, Out: out, Created: 1}); err != nil {
			t.Fatal(err)
		}
		otok("image", "import", out)
	}
	st, _ := openStore(e, "")
	imgs, _ := st.List()
	if len(imgs) != 3 || imgs[0].Digest != imgs[2].Digest {
		t.Fatalf("want one content under three names: %v", imgs)
	}
	size := imgs[0].Info.DiskBytes
	var d dfJSON
	if err := json.Unmarshal([]byte(otok("df", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.StoreBytes != size || len(d.Images) != 3 {
		t.Fatalf("df: store %d bytes in %d images, want %d in 3", d.StoreBytes, len(d.Images), size)
	}
	if o := otok("df"); !strings.Contains(o, "1 distinct content") {
		t.Fatalf("df does not say the content is shared:\n%s", o)
	}
	for _, tc := range []struct{ args, want, notWant string }{
		{"image rm a", "removed a:1 (sha256:" + imgs[0].Digest + ", content shared with another name, nothing freed)", "MiB freed"},
		{"image gc --dry-run", "would remove b:1 (sha256:" + imgs[0].Digest[:12] + ", content shared with another name, nothing freed)", ""},
		{"image rm b:1", "nothing freed", ""},
		{"df --json", `"store_bytes": ` + strconv.FormatInt(size, 10), ""},
		{"image rm c", "removed c:2 (sha256:" + imgs[0].Digest + ", " + flash.HumanBytes(size) + " freed)", "nothing freed"},
		{"df --json", `"store_bytes": 0`, ""},
	} {
		o := otok(strings.Fields(tc.args)...)
		if !strings.Contains(o, tc.want) || tc.notWant != "" && strings.Contains(o, tc.notWant) {
			t.Fatalf("otok %s:\n%s\nwant %q", tc.args, o, tc.want)
		}
	}
}

package flash

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not installed", tool)
		}
	}
}

// unsquash extracts a squashfs into a new dir.
func unsquash(t *testing.T, sq string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "x")
	if o, err := exec.Command("unsquashfs", "-no-progress", "-d", d, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, o)
	}
	return d
}

// buildAndImport builds a .otok from `from`, imports it into a fresh store
// and returns the stored image and its extracted tree.
func buildAndImport(t *testing.T, from string, o BuildOptions) (*Image, string) {
	t.Helper()
	needTools(t, "mksquashfs", "unsquashfs")
	o.From, o.Key = from, testKey()
	if o.Name == "" {
		o.Name, o.Version = "test", "1.0"
	}
	if o.Out == "" {
		o.Out = filepath.Join(t.TempDir(), "img.otok")
	}
	if o.Arch == "" {
		o.Arch = HostArch()
	}
	o.Created = 1767225600
	res, err := Build(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t, t.TempDir(), testKey())
	f, err := os.Open(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ir, err := st.ImportOtok(bg, f, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Image.Manifest.Size != res.Squashfs {
		t.Fatal("size")
	}
	return ir.Image, unsquash(t, ir.Image.SquashfsPath())
}

func TestBuildFromDirectory(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin/hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	img, tree := buildAndImport(t, src, BuildOptions{Entrypoint: []string{"/bin/hello"}, Env: []string{"A=1"}, Ports: []string{"80/tcp"}})
	if b, _ := os.ReadFile(filepath.Join(tree, "bin/hello")); !strings.Contains(string(b), "echo hi") {
		t.Fatal("content")
	}
	m := img.Manifest
	if !reflect.DeepEqual(m.Process.Args, []string{"/bin/hello"}) || m.Process.Env[0] != "A=1" || m.Ports[0] != "80/tcp" {
		t.Fatalf("manifest %+v", m)
	}
	// Reproducible: the same input builds the same bytes.
	o1 := filepath.Join(t.TempDir(), "a.otok")
	o2 := filepath.Join(t.TempDir(), "b.otok")
	for _, o := range []string{o1, o2} {
		if _, err := Build(bg, BuildOptions{From: src, Name: "r", Version: "1", Arch: "amd64", Key: testKey(), Out: o, Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(o1)
	b, _ := os.ReadFile(o2)
	if !bytes.Equal(a, b) {
		t.Fatal("build not reproducible")
	}
}

func TestBuildFromRootfsTarball(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rootfs.tar.xz")
	os.WriteFile(p, xzb(t, goodRootfs(t)), 0o644)
	_, tree := buildAndImport(t, p, BuildOptions{})
	if l, _ := os.Readlink(filepath.Join(tree, "bin/sh")); l != "busybox" {
		t.Fatal("symlink")
	}
	p2 := filepath.Join(t.TempDir(), "evil.tar.gz")
	os.WriteFile(p2, gz(makeTar(t, tarEntry{name: "../x", body: "x"})), 0o644)
	_, err := Build(bg, BuildOptions{From: p2, Name: "e", Version: "1", Key: testKey(), Out: filepath.Join(t.TempDir(), "e.otok")})
	if err == nil || !strings.Contains(err.Error(), "path contains ..") {
		t.Fatalf("evil tarball: %v", err)
	}
}

// dockerArchive writes a `docker save`-style archive with two layers: the
// second deletes a file with a whiteout and makes a directory opaque.
func dockerArchive(t *testing.T, oci bool) string {
	l1 := makeTar(t,
		tarEntry{name: "bin/", typ: tar.TypeDir},
		tarEntry{name: "bin/busybox", body: "ELF1", mode: 0o755},
		tarEntry{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		tarEntry{name: "etc/old.conf", body: "old"},
		tarEntry{name: "etc/keep.conf", body: "keep"},
		tarEntry{name: "var/cache/a", body: "a"},
		tarEntry{name: "var/cache/sub/b", body: "b"},
	)
	l2 := makeTar(t,
		tarEntry{name: "etc/.wh.old.conf"},
		tarEntry{name: "var/cache/new", body: "new"},
		tarEntry{name: "var/cache/.wh..wh..opq"},
		tarEntry{name: "bin/busybox", body: "ELF2", mode: 0o755},
	)
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/bin/sh", "-c"}, "Cmd": []string{"echo hi"},
			"Env": []string{"PATH=/bin", "MODE=x"}, "WorkingDir": "/srv", "User": "1000:1000",
			"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}, "53/udp": map[string]any{}},
		},
	})
	blob := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	var ents []tarEntry
	if oci {
		l2gz := gz(l2)
		man, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"digest": "sha256:" + blob(cfg), "size": len(cfg)},
			"layers": []map[string]any{
				{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + blob(l1)},
				{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + blob(l2gz)},
			},
		})
		idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{"digest": "sha256:" + blob(man), "size": len(man)}}})
		ents = []tarEntry{
			{name: "oci-layout", body: `{"imageLayoutVersion":"1.0.0"}`},
			{name: "index.json", body: string(idx)},
			{name: "blobs/sha256/" + blob(man), body: string(man)},
			{name: "blobs/sha256/" + blob(cfg), body: string(cfg)},
			{name: "blobs/sha256/" + blob(l1), body: string(l1)},
			{name: "blobs/sha256/" + blob(l2gz), body: string(l2gz)},
		}
	} else {
		man, _ := json.Marshal([]map[string]any{{"Config": blob(cfg) + ".json", "RepoTags": []string{"x:1"}, "Layers": []string{"l1/layer.tar", "l2/layer.tar"}}})
		ents = []tarEntry{
			{name: "manifest.json", body: string(man)},
			{name: blob(cfg) + ".json", body: string(cfg)},
			{name: "l1/layer.tar", body: string(l1)},
			{name: "l2/layer.tar", body: string(l2)},
		}
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	os.WriteFile(p, makeTar(t, ents...), 0o644)
	return p
}

func TestBuildFromDockerAndOCI(t *testing.T) {
	for _, oci := range []bool{false, true} {
		name := map[bool]string{false: "docker-save", true: "oci-archive"}[oci]
		t.Run(name, func(t *testing.T) {
			img, tree := buildAndImport(t, dockerArchive(t, oci), BuildOptions{Env: []string{"MODE=y"}})
			m := img.Manifest
			if !reflect.DeepEqual(m.Process.Args, []string{"/bin/sh", "-c", "echo hi"}) ||
				!reflect.DeepEqual(m.Process.Env, []string{"PATH=/bin", "MODE=y"}) ||
				m.Process.Cwd != "/srv" || m.Process.User != "1000:1000" ||
				!reflect.DeepEqual(m.Ports, []string{"53/udp", "8080/tcp"}) {
				t.Fatalf("manifest %+v", m)
			}
			check := func(p string, want bool) {
				_, err := os.Lstat(filepath.Join(tree, p))
				if (err == nil) != want {
					t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
				}
			}
			check("etc/old.conf", false)
			check("etc/keep.conf", true)
			check("var/cache/a", false)
			check("var/cache/sub", false)
			check("var/cache/new", true)
			check("etc/.wh.old.conf", false)
			check("var/cache/.wh..wh..opq", false)
			if b, _ := os.ReadFile(filepath.Join(tree, "bin/busybox")); string(b) != "ELF2" {
				t.Errorf("upper layer did not replace busybox: %q", b)
			}
		})
	}
}

func TestBuildFromOCILayoutDir(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	os.Mkdir(layout, 0o755)
	f, _ := os.Open(dockerArchive(t, true))
	defer f.Close()
	if _, err := Unpack(bg, f, layout, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if !IsImageLayout(layout) {
		t.Fatal("not recognised as a layout")
	}
	img, tree := buildAndImport(t, layout, BuildOptions{})
	if _, err := os.Lstat(filepath.Join(tree, "etc/old.conf")); err == nil || img.Manifest.Process.Cwd != "/srv" {
		t.Fatal("whiteout or config not applied")
	}
	// A corrupted blob is caught by its digest.
	blobs, _ := filepath.Glob(filepath.Join(layout, "blobs/sha256/*"))
	for _, b := range blobs {
		data, _ := os.ReadFile(b)
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) { // the gzip layer
			os.WriteFile(b, append(data, 0), 0o644)
		}
	}
	_, err := Build(bg, BuildOptions{From: layout, Name: "x", Version: "1", Key: testKey(), Out: filepath.Join(t.TempDir(), "x.otok")})
	if err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("corrupt blob: %v", err)
	}
}

func TestBCJFilters(t *testing.T) {
	for arch, want := range map[string]string{"amd64": "x86", "arm": "arm", "arm64": "", "mips": "", "mipsle": ""} {
		if got := BCJFilters(arch); got != want {
			t.Errorf("%s: %q", arch, got)
		}
	}
}

package flash

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestGC(t *testing.T) {
	st := openTestStore(t, t.TempDir(), testKey())
	dig := map[string]string{}
	for _, ref := range []string{"a:1", "a:2", "a:3", "b:1"} {
		name, v := ref[:1], ref[2:]
		sq := makeSquashfs(t, map[string]string{"f": ref})
		res, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest(name, v), testKey())), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dig[ref] = res.Image.Digest
	}
	os.Mkdir(filepath.Join(st.Root(), "tmp", "import-stale"), 0o755)
	inUse := func(d string) bool { return d == dig["a:1"] }
	rm, _, err := st.GC(bg, GCOptions{Keep: 1, InUse: inUse, DryRun: true})
	if err != nil || len(rm) != 1 || rm[0].Ref() != "a:2" {
		t.Fatalf("dry run: %v %v", rm, err)
	}
	if imgs, _ := st.List(); len(imgs) != 4 {
		t.Fatal("dry run removed")
	}
	if len(st.TempEntries()) != 0 {
		t.Fatal("tmp not swept")
	}
	rm, freed, err := st.GC(bg, GCOptions{Keep: 1, InUse: inUse})
	if err != nil || len(rm) != 1 || freed <= 0 {
		t.Fatalf("gc: %v %d %v", rm, freed, err)
	}
	rm, _, _ = st.GC(bg, GCOptions{InUse: inUse})
	if len(rm) != 2 { // a:3 and b:1
		t.Fatalf("keep 0: removed %d", len(rm))
	}
	imgs, _ := st.List()
	if len(imgs) != 1 || imgs[0].Digest != dig["a:1"] {
		t.Fatalf("left %v", imgs)
	}
}

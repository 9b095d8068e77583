package flash

import (
	"bytes"
	"testing"
)

// TestFreedShared: what rm and GC report as freed when one squashfs is
// stored under several names, and what ContentBytes (otok df's store
// size) counts.
func TestFreedShared(t *testing.T) {
	sqA := makeSquashfs(t, map[string]string{"f": "shared content"})
	sqB := makeSquashfs(t, map[string]string{"f": "other content"})
	type step struct {
		op        string // "rm REF" or "gc"
		wantRefs  []string
		wantFreed []bool // per removed image: its content went with it
	}
	for _, tc := range []struct {
		name    string
		imports [][3]string // name, version, which squashfs (a or b)
		steps   []step
	}{
		{"one name", [][3]string{{"x", "1", "a"}}, []step{{"rm x", []string{"x:1"}, []bool{true}}}},
		{"shared, rm first then second", [][3]string{{"x", "1", "a"}, {"y", "1", "a"}},
			[]step{{"rm x", []string{"x:1"}, []bool{false}}, {"rm y", []string{"y:1"}, []bool{true}}}},
		{"shared, rm second then first", [][3]string{{"x", "1", "a"}, {"y", "1", "a"}},
			[]step{{"rm y:1", []string{"y:1"}, []bool{false}}, {"rm x:1", []string{"x:1"}, []bool{true}}}},
		{"three names, one other content", [][3]string{{"x", "1", "a"}, {"x", "2", "a"}, {"z", "1", "a"}, {"w", "1", "b"}},
			[]step{{"rm x:2", []string{"x:2"}, []bool{false}}, {"gc", []string{"w:1", "x:1", "z:1"}, []bool{true, false, true}}}},
		{"gc all shared", [][3]string{{"x", "1", "a"}, {"y", "1", "a"}},
			[]step{{"gc", []string{"x:1", "y:1"}, []bool{false, true}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openTestStore(t, t.TempDir(), testKey())
			disk := map[string]int64{}
			for _, im := range tc.imports {
				sq := sqA
				if im[2] == "b" {
					sq = sqB
				}
				res, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest(im[0], im[1]), testKey())), ImportOptions{})
				if err != nil {
					t.Fatal(err)
				}
				disk[res.Image.Digest] = res.Image.Info.DiskBytes
			}
			imgs, _ := st.List()
			var distinct int64
			for _, d := range disk {
				distinct += d
			}
			if got := ContentBytes(imgs); got != distinct || len(imgs) != len(tc.imports) {
				t.Fatalf("ContentBytes of %d images = %d, want %d (distinct contents)", len(imgs), got, distinct)
			}
			for _, s := range tc.steps {
				var rm []Removed
				var total int64
				if s.op == "gc" {
					var err error
					if rm, total, err = st.GCImages(bg, GCOptions{}); err != nil {
						t.Fatal(err)
					}
				} else {
					r, err := st.RemoveImage(bg, s.op[3:], nil)
					if err != nil {
						t.Fatal(err)
					}
					rm, total = []Removed{r}, r.Freed
				}
				if len(rm) != len(s.wantRefs) {
					t.Fatalf("%s removed %d images, want %v", s.op, len(rm), s.wantRefs)
				}
				var sum int64
				for i, r := range rm {
					want := int64(0)
					if s.wantFreed[i] {
						want = disk[r.Image.Digest]
					}
					if r.Image.Ref() != s.wantRefs[i] || r.Freed != want || want == 0 && s.wantFreed[i] {
						t.Fatalf("%s: #%d %s freed %d, want %s freed %d", s.op, i, r.Image.Ref(), r.Freed, s.wantRefs[i], want)
					}
					sum += r.Freed
				}
				if total != sum {
					t.Fatalf("%s: total freed %d, sum of images %d", s.op, total, sum)
				}
				left, _ := st.List()
				var leftDistinct int64
				seen := map[string]bool{}
				for _, i := range left {
					if !seen[i.Digest] {
						seen[i.Digest] = true
						leftDistinct += disk[i.Digest]
					}
				}
				if ContentBytes(left) != leftDistinct {
					t.Fatalf("after %s: ContentBytes %d, want %d", s.op, ContentBytes(left), leftDistinct)
				}
			}
		})
	}
}

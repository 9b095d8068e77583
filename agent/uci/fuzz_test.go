package uci

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts survives a
// Format/Parse round trip unchanged. Seeds: every file in testdata plus
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.network")
	files = append(files, "testdata/otok.hand")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{"", "config a\n", "config a b; option c 'd'\\\n e", `option "x`, "list a b\nconfig", "config c x\nlist v '\n'"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse("fuzz", data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			return
		}
		out := Format(a)
		b, err := Parse("fuzz2", out)
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(flatten(a), flatten(b)) || a.Package != b.Package {
			t.Fatalf("round trip differs\nin  %q\nout %q", data, out)
		}
	})
}

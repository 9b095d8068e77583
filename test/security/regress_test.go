package security

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/otok/otok/netcfg"
)

// Fuzz crashers found by make security-report, kept as regression seeds
// under testdata/fuzz-regressions/<package>/<Target>/ (go's corpus file
// format) until the owning package takes them into its own
// testdata/fuzz/<Target>/ with the fix. Each target's property is
// restated here; a seed that still fails is a crasher in the report.
var fuzzProperties = map[string]func(t *testing.T, s string) string{
	// netcfg FuzzParseFlags: a parsed --net value renders to a string that
	// parses back to the same spec.
	"netcfg/FuzzParseFlags": func(t *testing.T, s string) string {
		sp, err := netcfg.ParseNet(s)
		if err != nil {
			return ""
		}
		again, err := netcfg.ParseNet(sp.String())
		if err != nil || again.String() != sp.String() || again.VLAN != sp.VLAN {
			return fmt.Sprintf("%q → %q → %v", s, sp.String(), err)
		}
		return ""
	},
}

type regressRec struct {
	Target string `json:"target"`
	Seed   string `json:"seed"`
	Fails  bool   `json:"fails"`
	Detail string `json:"detail"`
}

func TestFuzzRegressions(t *testing.T) {
	root := filepath.Join("testdata", "fuzz-regressions")
	files, _ := filepath.Glob(filepath.Join(root, "*", "*", "*"))
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		parts := strings.Split(rel, string(filepath.Separator))
		target := parts[0] + "/" + parts[1]
		prop := fuzzProperties[target]
		if prop == nil {
			t.Errorf("%s: no property for %s", rel, target)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
			t.Errorf("%s: not a one-string go fuzz corpus file", rel)
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		msg := prop(t, s)
		record(t, "regressions", regressRec{target, parts[2], msg != "", msg})
		if msg != "" {
			t.Errorf("%s: still fails: %s (fix in %s, then move the seed to %s/testdata/fuzz/%s/)", rel, msg, parts[0], parts[0], parts[1])
		} else {
			t.Logf("%s: fixed", rel)
		}
	}
}

package fleet

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzNameRules checks the written-out name rules against the regexps they
// replace.
func FuzzNameRules(f *testing.F) {
	for _, s := range []string{"", "a", "dev/x", "group/a_b", "dev/", "x.y", "-a", "a:b", "A-9", "dev/a.b", "devx/a", "ä", "a\x00", strings.Repeat("a", 64), strings.Repeat("a", 65), "dev/" + strings.Repeat("b", 64), "group/" + strings.Repeat("b", 65)} {
		f.Add(s)
	}
	ref := map[string]*regexp.Regexp{
		"id":    regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_:-]{0,63}$`),
		"name":  regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`),
		"scope": regexp.MustCompile(`^(dev|group)/[A-Za-z0-9][A-Za-z0-9_:-]{0,63}$`),
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := map[string]bool{"id": idRE.MatchString(s), "name": nameRE.MatchString(s), "scope": scopeRE.MatchString(s)}
		for k, re := range ref {
			if want := re.MatchString(s); got[k] != want {
				t.Errorf("%s rule on %q: %v, regexp says %v", k, s, got[k], want)
			}
		}
	})
}

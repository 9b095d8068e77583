package pkg

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two builds from the same inputs are byte-identical, whatever the input
// files' mtimes and the time of day.
func TestReproducible(t *testing.T) {
	setup(t)
	// A copy of the package files whose mtimes the test changes.
	files := t.TempDir()
	for _, f := range []string{"otok.init", "otok.config", "otok.uci-defaults"} {
		if err := copyFile(filepath.Join(filesDir, f), filepath.Join(files, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"ipk", "apk"} {
		for _, a := range arches[:2] {
			first := mustRead(t, buildPkg(t, format, a.arch, a.cross, version, "-files", files))
			for _, f := range []string{"otok.init", "otok.config"} {
				now := time.Now().Add(time.Hour)
				if err := os.Chtimes(filepath.Join(files, f), now, now); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(1100 * time.Millisecond)
			second := mustRead(t, buildPkg(t, format, a.arch, a.cross, version, "-files", files))
			if !bytes.Equal(first, second) {
				t.Errorf("%s %s: two builds differ", format, a.arch)
			}
		}
	}
}

// Every bad input is rejected with a message naming it, and nothing is
// written.
func TestBadInput(t *testing.T) {
	setup(t)
	good := filepath.Join(distDir, "otok-mipsle")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown arch", []string{"-arch", "sparc_v8", "-bin", good, "-version", "1.0-r1"}, `architecture "sparc_v8": unknown`},
		{"no arch", []string{"-bin", good, "-version", "1.0-r1"}, "no architecture given"},
		{"missing binary", []string{"-arch", "mipsel_24kc", "-bin", "/nonexistent/otok", "-version", "1.0-r1"}, "binary /nonexistent/otok"},
		{"binary of another arch", []string{"-arch", "mips_24kc", "-bin", good, "-version", "1.0-r1"}, "but mips_24kc needs EM_MIPS BigEndian"},
		{"not an ELF", []string{"-arch", "mipsel_24kc", "-bin", filepath.Join(filesDir, "otok.init"), "-version", "1.0-r1"}, "bad magic number"},
		{"version with space", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0 beta"}, `version "1.0 beta": not valid`},
		{"version with dash", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0-dirty"}, "not valid"},
		{"version with epoch", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1:1.0-r1"}, "not valid"},
		{"version uppercase hash", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0~ABC-r1"}, "not valid"},
		{"version leading v", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "v1.0"}, "not valid"},
		{"empty version", []string{"-arch", "mipsel_24kc", "-bin", good}, "no version"},
		{"dirty tree", []string{"-arch", "mipsel_24kc", "-bin", good, "-describe", "v1.0-3-gabcdef1-dirty"}, "uncommitted changes"},
		{"tag not a version", []string{"-arch", "mipsel_24kc", "-bin", good, "-describe", "release-3-gabcdef1"}, `tag "release" is not a version`},
		{"no tag, no count", []string{"-arch", "mipsel_24kc", "-bin", good, "-describe", "abcdef1"}, "commit count is needed"},
		{"bad epoch", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0-r1", "-epoch", "yesterday"}, `SOURCE_DATE_EPOCH "yesterday"`},
		{"bad format", []string{"-format", "deb", "-arch", "mipsel_24kc", "-bin", good, "-version", "1.0-r1"}, `format "deb"`},
		{"bad commit", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0-r1", "-commit", "xyz"}, `commit "xyz"`},
		{"missing files", []string{"-arch", "mipsel_24kc", "-bin", good, "-version", "1.0-r1", "-files", "/nonexistent"}, "package file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, format := range []string{"ipk", "apk"} {
				dist := filepath.Join(t.TempDir(), "dist")
				args := append([]string{"-format", format}, c.args...)
				out, err := mkpkg(t, dist, args...)
				if err == nil {
					t.Fatalf("%s: accepted, wrote %s", format, out)
				}
				if !strings.Contains(out, c.want) {
					t.Errorf("%s: error %q does not say %q", format, strings.TrimSpace(out), c.want)
				}
				if _, err := os.Stat(dist); !os.IsNotExist(err) {
					entries, _ := os.ReadDir(dist)
					t.Errorf("%s: output directory written: %v", format, entries)
				}
			}
		})
	}
}

// make ipk / make apk reject bad input before building or writing anything.
func TestMakeBadInput(t *testing.T) {
	setup(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ipk", "ARCH=sparc_v8"}, "unknown"},
		{[]string{"apk"}, "no architecture given"},
		{[]string{"ipk", "ARCH=x86_64", "PKG_VERSION=1.0 beta"}, "not valid"},
		{[]string{"apk", "ARCH=x86_64", "SOURCE_DATE_EPOCH=never"}, "SOURCE_DATE_EPOCH"},
		{[]string{"ipk", "ARCH=x86_64", "BIN=/nonexistent/otok"}, "binary /nonexistent/otok"},
	} {
		dist := filepath.Join(t.TempDir(), "dist")
		cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", repoRoot, "DIST=" + dist}, c.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("make %v: succeeded\n%s", c.args, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("make %v: output does not say %q:\n%s", c.args, c.want, out)
		}
		if _, err := os.Stat(dist); !os.IsNotExist(err) {
			t.Errorf("make %v: wrote %s", c.args, dist)
		}
	}
}

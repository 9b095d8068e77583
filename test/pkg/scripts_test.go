package pkg

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeFunctions stands in for OpenWrt's /lib/functions.sh in an offline
// root: it records how the maintainer scripts call it.
const fakeFunctions = `default_postinst() { echo "default_postinst root=${root-unset} pkgname=${pkgname-unset} upgrade=${PKG_UPGRADE-unset} args=$*" >>"$LOG"; }
default_prerm() { echo "default_prerm root=${root-unset} pkgname=${pkgname-unset} args=$*" >>"$LOG"; }
add_group_and_user() { echo add_group_and_user >>"$LOG"; }
`

// runScript runs a maintainer script as opkg / apk would for an offline
// root (IPKG_INSTROOT set) and returns what it did.
func runScript(t *testing.T, script, name string, withFunctions bool, env []string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if withFunctions {
		writeFile(t, filepath.Join(root, "lib/functions.sh"), []byte(fakeFunctions))
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, []byte(script))
	log := filepath.Join(dir, "log")
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "IPKG_INSTROOT=" + root, "LOG=" + log}, env...)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.ReplaceAll(string(b), dir, "DIR"))
	// Nothing but the log may appear beside the script.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%s wrote files: %v", name, entries)
	}
	return strings.TrimSpace(string(b))
}

func TestIPKScripts(t *testing.T) {
	setup(t)
	path := buildPkg(t, "ipk", "x86_64", "amd64", version)
	outer := readTarGz(t, mustRead(t, path))
	scripts := map[string]string{}
	for _, m := range readTarGz(t, outer[2].data) {
		scripts[strings.TrimPrefix(m.hdr.Name, "./")] = string(m.data)
	}
	root := "root=unset pkgname=unset"
	for _, c := range []struct {
		script string
		args   []string
		env    []string
		want   string
	}{
		{"postinst", []string{"configure"}, nil, "default_postinst " + root + " upgrade=unset args=DIR/otok.postinst configure"},
		{"prerm", []string{"remove"}, nil, "default_prerm " + root + " args=DIR/otok.prerm remove"},
		{"prerm", []string{"upgrade", "2.0-r1"}, []string{"PKG_UPGRADE=1"}, "default_prerm " + root + " args=DIR/otok.prerm upgrade 2.0-r1"},
		{"postinst", []string{"configure"}, []string{"IPKG_NO_SCRIPT=1"}, ""},
	} {
		// opkg runs them from its info directory as NAME.SCRIPT; default_*
		// take the package name from $0.
		if got := runScript(t, scripts[c.script], "otok."+c.script, true, c.env, c.args...); got != c.want {
			t.Errorf("%s %v %v: did %q, want %q", c.script, c.args, c.env, got, c.want)
		}
		// Not an OpenWrt root: the scripts do nothing.
		if got := runScript(t, scripts[c.script], "otok."+c.script, false, c.env, c.args...); got != "" {
			t.Errorf("%s without /lib/functions.sh did %q", c.script, got)
		}
	}
}

func TestAPKScripts(t *testing.T) {
	setup(t)
	p := parseAPK(t, mustRead(t, buildPkg(t, "apk", "x86_64", "amd64", version)))
	root := p.fields(t, binary.LittleEndian.Uint32(p.adb[4:]))
	sf := p.fields(t, field(root, pkgScripts))
	script := func(name string) string {
		for i, n := range scriptNames {
			if n == name {
				return p.str(t, field(sf, i))
			}
		}
		t.Fatalf("no script %s", name)
		return ""
	}
	for _, c := range []struct {
		script string
		want   string
	}{
		// In an offline root the upgrade restart is skipped ($IPKG_INSTROOT set).
		{"post-install", "add_group_and_user\ndefault_postinst root=DIR/root pkgname=otok upgrade=unset args="},
		{"post-upgrade", "add_group_and_user\ndefault_postinst root=DIR/root pkgname=otok upgrade=1 args="},
		{"pre-deinstall", "default_prerm root=DIR/root pkgname=otok args="},
	} {
		got := runScript(t, script(c.script), c.script, true, nil, version)
		if got != c.want {
			t.Errorf("%s: did %q, want %q", c.script, got, c.want)
		}
		if got := runScript(t, script(c.script), c.script, false, nil, version); got != "" {
			t.Errorf("%s without /lib/functions.sh did %q", c.script, got)
		}
	}
}

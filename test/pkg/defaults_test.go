package pkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The uci-defaults script runs in a private mount namespace with /etc and
// /opt under overlays whose upper layers are temporary directories (it
// creates /etc/otok/keys and may pick /opt/otok), and a fake uci(1) on PATH.
func TestUCIDefaults(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	if fi, err := os.Stat("/opt"); err != nil || !fi.IsDir() {
		t.Skip("no /opt to put an overlay on")
	}
	script := filepath.Join(repoRoot, "openwrt-feed/otok/files/otok.uci-defaults")
	uuid := regexp.MustCompile(`^otok\.@agent\[0\]\.device_id=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

	run := func(t *testing.T, state string) (log []string, newState string, check string) {
		dir := t.TempDir()
		bin := filepath.Join(dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(filepath.Join(repoRoot, "test/pkg/testdata/fake-uci.sh"), filepath.Join(bin, "uci")); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(bin, "uci"), 0o755)
		st := filepath.Join(dir, "state")
		writeFile(t, st, []byte(state))
		// After the script: what it made of /etc/otok and the store.
		for _, d := range []string{"etc-up", "etc-work", "opt-up", "opt-work"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		inner := `mount --make-rprivate / &&
			mount -t overlay overlay -o lowerdir=/etc,upperdir="$D/etc-up",workdir="$D/etc-work" /etc &&
			mount -t overlay overlay -o lowerdir=/opt,upperdir="$D/opt-up",workdir="$D/opt-work" /opt &&
			sh "$SCRIPT" && store=$(uci get otok.@agent[0].store || echo /opt/otok) &&
			stat -c '%a %n' /etc/otok/keys "$store"`
		cmd := exec.Command("unshare", "--mount", "sh", "-c", inner)
		cmd.Env = []string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "SCRIPT=" + script,
			"UCI_STATE=" + st, "UCI_LOG=" + filepath.Join(dir, "log"), "D=" + dir}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("uci-defaults: %v\n%s", err, out)
		}
		l, _ := os.ReadFile(filepath.Join(dir, "log"))
		s, _ := os.ReadFile(st)
		return strings.Split(strings.TrimSpace(string(l)), "\n"), string(s), strings.TrimSpace(string(out))
	}

	t.Run("store and id configured", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		log, _, made := run(t, "otok.@agent[0]=agent\notok.@agent[0].store="+store+"\notok.@agent[0].device_id=abc\n")
		expect(t, "uci changes", log, []string{"commit otok"})
		if made != "755 /etc/otok/keys\n700 "+store {
			t.Errorf("made %q", made)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		// No agent section, no store, no device id, no /overlay here.
		log, state, made := run(t, "")
		if len(log) != 4 || log[0] != "add otok agent" || log[1] != "set otok.@agent[0].store=/opt/otok" ||
			!uuid.MatchString(strings.TrimPrefix(log[2], "set ")) || log[3] != "commit otok" {
			t.Errorf("uci changes: %q", log)
		}
		if !strings.Contains(state, "otok.@agent[0].device_id=") {
			t.Errorf("state %q", state)
		}
		if made != "755 /etc/otok/keys\n700 /opt/otok" {
			t.Errorf("made %q", made)
		}
		// Idempotent: a second run changes nothing but commits.
		log2, _, _ := run(t, state)
		expect(t, "second run", log2, []string{"commit otok"})
	})
}

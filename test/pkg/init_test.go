package pkg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func initScript(t *testing.T) string {
	setup(t)
	return filepath.Join(repoRoot, "openwrt-feed/otok/files/otok.init")
}

func TestInitScriptSyntax(t *testing.T) {
	init := initScript(t)
	defaults := filepath.Join(repoRoot, "openwrt-feed/otok/files/otok.uci-defaults")
	for _, f := range []string{init, defaults} {
		if out, err := exec.Command("sh", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", f, err, out)
		}
		if _, err := exec.LookPath("shellcheck"); err != nil {
			t.Skip("shellcheck not installed (Debian package shellcheck)")
		}
		// The scripts carry their directives: shell=dash (busybox ash has
		// `local` too) and SC2034 for START/STOP/USE_PROCD read by rc.common.
		if out, err := exec.Command("shellcheck", f).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", f, err, out)
		}
	}
	b := string(mustRead(t, init))
	if !strings.HasPrefix(b, "#!/bin/sh /etc/rc.common\n") {
		t.Errorf("init script does not start with #!/bin/sh /etc/rc.common")
	}
	for _, want := range []string{"\nUSE_PROCD=1\n", "\nSTART=99\n", "\nSTOP=01\n"} {
		if !strings.Contains(b, want) {
			t.Errorf("init script lacks %q", strings.TrimSpace(want))
		}
	}
}

// uciToShell turns a UCI file into the config/option/list calls uci_load
// makes (a minimal reader: config, option and list lines, quotes).
func uciToShell(t *testing.T, uci string) string {
	t.Helper()
	var b strings.Builder
	for i, l := range strings.Split(uci, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		for j := range f {
			f[j] = strings.Trim(f[j], `'"`)
		}
		switch {
		case f[0] == "config" && (len(f) == 2 || len(f) == 3):
		case (f[0] == "option" || f[0] == "list") && len(f) >= 3:
			f = []string{f[0], f[1], strings.Trim(strings.TrimSpace(strings.SplitN(l, f[1], 2)[1]), `'"`)}
		default:
			t.Fatalf("sample UCI line %d: %q", i+1, l)
		}
		for j, w := range f {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString("'" + strings.ReplaceAll(w, "'", `'\''`) + "'")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// shells: /bin/sh, and busybox's ash (OpenWrt's /bin/sh) when installed.
func shells() [][]string {
	sh := [][]string{{"/bin/sh"}}
	if p, err := exec.LookPath("busybox"); err == nil {
		sh = append(sh, []string{p, "sh"})
	}
	return sh
}

// runInit runs FUNCTIONs of the init script in the harness, under every
// shell of shells(), and returns the recorded procd calls (the same for
// each shell).
func runInit(t *testing.T, uci string, env []string, fns ...string) []string {
	t.Helper()
	var first []string
	for i, sh := range shells() {
		got := runInitShell(t, sh, uci, env, fns...)
		if i == 0 {
			first = got
		} else if strings.Join(got, "\n") != strings.Join(first, "\n") {
			t.Errorf("%v under %v recorded:\n  %s\nbut under %v:\n  %s", fns, sh, strings.Join(got, "\n  "), shells()[0], strings.Join(first, "\n  "))
		}
	}
	return first
}

func runInitShell(t *testing.T, shell []string, uci string, env []string, fns ...string) []string {
	t.Helper()
	dir := t.TempDir()
	uciSh := filepath.Join(dir, "uci.sh")
	if err := os.WriteFile(uciSh, []byte(uciToShell(t, uci)), 0o644); err != nil {
		t.Fatal(err)
	}
	recPath := filepath.Join(dir, "record")
	args := append(append(shell[1:len(shell):len(shell)], filepath.Join(repoRoot, "test/pkg/testdata/procd-harness.sh"), initScript(t)), fns...)
	cmd := exec.Command(shell[0], args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "RECORD=" + recPath, "UCI_SH=" + uciSh}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("%v: %v\n%s", fns, err, out)
	}
	b, err := os.ReadFile(recPath)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func expect(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s recorded:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestInitStartService(t *testing.T) {
	sample := string(mustRead(t, filepath.Join(repoRoot, "test/pkg/testdata/otok.sample")))
	expect(t, "start_service", runInit(t, sample, nil, "start_service"), []string{
		"procd_open_instance | agent",
		"procd_set_param | command | /usr/bin/otok | agent | --config | /etc/config/otok",
		"procd_set_param | respawn | 600 | 10 | 3",
		"procd_set_param | term_timeout | 95",
		"procd_set_param | reload_signal | HUP",
		"procd_set_param | stdout | 1",
		"procd_set_param | stderr | 1",
		"procd_set_param | limits | nofile=65536 65536",
		"procd_append_param | netdev | lan4",
		"procd_append_param | netdev | br-lan",
		"procd_append_param | netdev | wan",
		"procd_append_param | netdev | br-iot",
		"procd_close_instance",
	})
	expect(t, "service_triggers", runInit(t, sample, nil, "service_triggers"), []string{
		"procd_add_reload_trigger | otok",
		"procd_add_reload_interface_trigger | lan4",
		"procd_add_reload_interface_trigger | lan",
		"procd_add_reload_interface_trigger | wan",
		"procd_add_reload_interface_trigger | iot",
		"procd_add_reload_mount_trigger | /mnt/usb/otok",
	})
}

func TestInitDefaults(t *testing.T) {
	setup(t)
	// No agent section, no containers, and garbage where numbers belong.
	for _, uci := range []string{"", "config agent\n\toption stop_timeout 'soon'\n\toption respawn_retry '-1'\n",
		"config agent\n\toption stop_timeout '10s'\nconfig container c\n\toption stop_timeout '5'\n\toption net 'bridge'\n",
		string(mustRead(t, filepath.Join(filesDir, "otok.config")))} { // the shipped defaults
		expect(t, fmt.Sprintf("start_service with %q", uci), runInit(t, uci, nil, "start_service", "service_triggers"), []string{
			"procd_open_instance | agent",
			"procd_set_param | command | /usr/bin/otok | agent | --config | /etc/config/otok",
			"procd_set_param | respawn | 3600 | 5 | 5",
			"procd_set_param | term_timeout | 15",
			"procd_set_param | reload_signal | HUP",
			"procd_set_param | stdout | 1",
			"procd_set_param | stderr | 1",
			"procd_set_param | limits | nofile=65536 65536",
			"procd_close_instance",
			"procd_add_reload_trigger | otok",
			"procd_add_reload_mount_trigger | /overlay/otok",
		})
	}
}

func TestInitReloadStop(t *testing.T) {
	sample := string(mustRead(t, filepath.Join(repoRoot, "test/pkg/testdata/otok.sample")))
	expect(t, "reload_service", runInit(t, sample, nil, "reload_service"), []string{
		"start",
		"procd_send_signal | otok | agent | HUP",
	})
	// Removal, restart, shutdown: procd stops the agent (SIGTERM, it stops
	// the containers) and stop_service waits for it.
	expect(t, "stop_service", runInit(t, sample, []string{"FAKE_PID=999999999"}, "stop_service"), []string{
		`ubus | call | service | list | {"name":"otok"}`,
		"procd_kill | otok | agent",
	})
	// Not running: nothing to stop.
	expect(t, "stop_service, agent not running", runInit(t, sample, nil, "stop_service"), []string{
		`ubus | call | service | list | {"name":"otok"}`,
	})
	// Package upgrade: the agent ends without stopping containers.
	expect(t, "stop_service during upgrade", runInit(t, sample, []string{"PKG_UPGRADE=1", "FAKE_PID=999999999"}, "stop_service"), []string{
		"procd_send_signal | otok | agent | KILL",
	})
}

// stop_service waits for the agent to finish stopping its containers.
func TestInitStopWaits(t *testing.T) {
	setup(t)
	sleep := exec.Command("sleep", "2")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sleep.Wait(); close(done) }()
	got := runInit(t, "", []string{fmt.Sprintf("FAKE_PID=%d", sleep.Process.Pid)}, "stop_service")
	select {
	case <-done:
	default:
		t.Errorf("stop_service returned while the agent (pid %d) was still running", sleep.Process.Pid)
	}
	expect(t, "stop_service", got, []string{`ubus | call | service | list | {"name":"otok"}`, "procd_kill | otok | agent"})
}

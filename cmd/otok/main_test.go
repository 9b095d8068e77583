package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // substring expected on stdout
		stderr   string // substring expected on stderr
		oneLiner bool   // stderr must be exactly one line
	}{
		{name: "no args", args: nil, code: 2, stderr: "Usage: otok"},
		{name: "help", args: []string{"help"}, code: 0, stdout: "version"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "Commands:"},
		{name: "help version", args: []string{"help", "version"}, code: 0, stdout: "Usage: otok version"},
		{name: "help unknown", args: []string{"help", "frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, oneLiner: true},
		{name: "unknown", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, oneLiner: true},
		{name: "bad global flag", args: []string{"--nope", "version"}, code: 2, stderr: "flag provided but not defined: -nope", oneLiner: true},
		{name: "version", args: []string{"version"}, code: 0, stdout: runtime.GOOS + "/" + runtime.GOARCH},
		{name: "version --help", args: []string{"version", "--help"}, code: 0, stdout: "Usage: otok version"},
		{name: "version extra arg", args: []string{"version", "x"}, code: 2, stderr: `unexpected argument "x"`, oneLiner: true},
		{name: "check bad flag", args: []string{"check", "--frob"}, code: 2, stderr: "flag provided but not defined: -frob", oneLiner: true},
		{name: "check --help", args: []string{"check", "--help"}, code: 0, stdout: "--json"},
		{name: "key gen --help", args: []string{"key", "gen", "--help"}, code: 0, stdout: "Usage: otok key"},
		{name: "key gen -x", args: []string{"key", "gen", "-x"}, code: 2, stderr: "looks like an option", oneLiner: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q lacks %q", out, tt.stdout)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
			if tt.oneLiner && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", errOut)
			}
		})
	}
}

func TestHelpListsEveryVisibleCommand(t *testing.T) {
	_, out, _ := run(t, "help")
	for name, c := range commands {
		if name != c.name || c.hidden {
			continue
		}
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("help does not list %q", name)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	code, out, errOut := run(t, "--store", t.TempDir(), "check", "--json")
	if code != 0 && code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		OK       bool `json:"ok"`
		Features []struct {
			Group, Name, Status string
			Required            bool
		} `json:"features"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(r.Features) < 20 {
		t.Errorf("only %d features", len(r.Features))
	}
	missingRequired := false
	for _, f := range r.Features {
		switch f.Status {
		case "ok", "missing", "limited":
		default:
			t.Errorf("feature %s/%s has status %q", f.Group, f.Name, f.Status)
		}
		if f.Required && f.Status == "missing" {
			missingRequired = true
		}
	}
	if r.OK == missingRequired || (code == 0) != r.OK {
		t.Errorf("ok=%v, exit %d, missing required=%v: inconsistent", r.OK, code, missingRequired)
	}
}

func TestStoreFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OTOK_STORE", dir+"/from-env")
	_, out, _ := run(t, "check")
	if !strings.Contains(out, dir+"/from-env") {
		t.Errorf("check output does not use OTOK_STORE:\n%s", out)
	}
	_, out, _ = run(t, "--store", dir+"/from-flag", "check")
	if !strings.Contains(out, dir+"/from-flag") {
		t.Errorf("--store does not override OTOK_STORE:\n%s", out)
	}
}

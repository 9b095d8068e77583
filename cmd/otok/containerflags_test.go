package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64k": 64 << 10, "16M": 16 << 20, "1g": 1 << 30, "2GB": 2 << 30, "-1": -1, "": 0} {
		got, err := parseSize("memory", in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"3x", "M", "-5", "1.5G", "0"} {
		if _, err := parseSize("memory", in); err == nil || !strings.Contains(err.Error(), "--memory "+in) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"TERM": unix.SIGTERM, "sigkill": unix.SIGKILL, "9": unix.SIGKILL, "PWR": unix.SIGPWR, "RTMIN+3": unix.Signal(37)} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := parseSignal("SIGBOGUS"); err == nil {
		t.Error("SIGBOGUS accepted")
	}
}

func TestTailLines(t *testing.T) {
	b := []byte("a\nb\nc\n")
	for n, want := range map[int]string{-1: "a\nb\nc\n", 0: "", 1: "c\n", 2: "b\nc\n", 5: "a\nb\nc\n"} {
		if got := string(tailLines(b, n)); got != want {
			t.Errorf("tail %d: %q, want %q", n, got, want)
		}
	}
}

func TestLogRing(t *testing.T) {
	r := newLogRing(16)
	_, ch := r.snapshot(true)
	r.Write([]byte("line1\nline2\n"))
	r.Write([]byte("line3\n"))
	if got := string(r.bytes()); got != "line2\nline3\n" {
		t.Errorf("ring kept %q", got)
	}
	if got := string(<-ch); got != "line1\nline2\n" {
		t.Errorf("follower got %q", got)
	}
	r.close()
	<-ch // line3
	if _, ok := <-ch; ok {
		t.Error("follower channel not closed")
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	cases := []struct {
		in       string
		uid, gid int
		err      string
	}{
		{"", 0, 0, ""}, {"web", 33, 44, ""}, {"33", 33, 44, ""}, {"1000", 1000, 1000, ""},
		{"web:staff", 33, 50, ""}, {"7:8", 7, 8, ""},
		{"nobody", 0, 0, "user nobody: not found"}, {"web:nogroup", 0, 0, "group nogroup: not found"},
	}
	for _, c := range cases {
		uid, gid, err := resolveUser(root, c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || uid != c.uid || gid != c.gid {
			t.Errorf("%q: %d:%d %v, want %d:%d", c.in, uid, gid, err, c.uid, c.gid)
		}
	}
}

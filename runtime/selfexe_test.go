package runtime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestElfInterp(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	// The test binary is static when built as the Makefile builds it
	// (CGO_ENABLED=0) and dynamic otherwise; the truth is in its memory
	// map: a dynamic process has its interpreter mapped.
	maps, _ := os.ReadFile("/proc/self/maps")
	selfInterp := ""
	for _, l := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(l); len(f) == 6 && strings.Contains(filepath.Base(f[5]), "ld-") {
			selfInterp = f[5]
		}
	}
	tests := []struct {
		name, path, want string
		wantErr          bool
	}{
		{"not ELF", notELF, "", true},
		{"missing", "/nonexistent/otok", "", true},
	}
	if p, err := exec.LookPath("ls"); err == nil {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "/lib64/ld-linux-x86-64.so.2\x00") {
			tests = append(tests, struct {
				name, path, want string
				wantErr          bool
			}{"dynamic ls", p, "/lib64/ld-linux-x86-64.so.2", false})
		}
	}
	// The map shows the interpreter's resolved path; PT_INTERP may name a
	// link to it (/lib64/…): compare static against dynamic only.
	if got, err := elfInterp("/proc/self/exe"); err != nil || (got == "") != (selfInterp == "") {
		t.Errorf("elfInterp(self) = %q, %v; the process maps interpreter %q", got, err, selfInterp)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := elfInterp(tt.path)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("elfInterp(%s) = %q, %v; want %q, error %v", tt.path, got, err, tt.want, tt.wantErr)
			}
		})
	}
	// Only ENOENT is explained, and only for a dynamic otok.
	other := errors.New("boom")
	if errIfDynamic(other) != other {
		t.Error("errIfDynamic changed an unrelated error")
	}
	msg := errIfDynamic(syscall.ENOENT).Error()
	if dyn := selfInterp != ""; dyn != strings.Contains(msg, "CGO_ENABLED=0") {
		t.Errorf("dynamic=%v, message %q", dyn, msg)
	}
}

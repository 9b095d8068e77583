package main

import (
	"bytes"
	"testing"
)

func TestDetachFilter(t *testing.T) {
	tests := []struct {
		in     []string // reads, in order
		out    string
		detach bool
	}{
		{[]string{"ls\r"}, "ls\r", false},
		{[]string{"a\x10\x11b"}, "a", true},
		{[]string{"a\x10", "\x11"}, "a", true},   // split across reads
		{[]string{"\x10x"}, "\x10x", false},      // Ctrl-P then another key: both sent
		{[]string{"\x10\x10\x11"}, "\x10", true}, // Ctrl-P Ctrl-P Ctrl-Q: one Ctrl-P sent, then detach
		{[]string{"\x11\x10"}, "\x11", false},    // Ctrl-Q alone passes; a trailing Ctrl-P is held
		{[]string{"\x10", "\x10", "y"}, "\x10\x10y", false},
	}
	for _, tt := range tests {
		var d detachFilter
		var got []byte
		detached := false
		for _, r := range tt.in {
			out, det := d.feed([]byte(r))
			got = append(got, out...)
			if det {
				detached = true
				break
			}
		}
		if !bytes.Equal(got, []byte(tt.out)) || detached != tt.detach {
			t.Errorf("%q: sent %q detach %v, want %q %v", tt.in, got, detached, tt.out, tt.detach)
		}
	}
}

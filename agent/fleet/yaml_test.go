package fleet

import "testing"

// The two scans for a byte outside quotes: the key/value colon and the
// comment hash.
func TestYAMLSplitKeyStripComment(t *testing.T) {
	keys := []struct {
		in, k, v string
		ok       bool
	}{
		{"name: dns", "name", "dns", true},
		{"name:", "name", "", true},
		{"url: http://x:80/a", "url", "http://x:80/a", true},
		{"a:b", "", "", false},
		{": x", "", "x", false},
		{`"a: b": c`, `"a: b"`, "c", true},
		{`"a\": b": c`, `"a\": b"`, "c", true},
		{`'a\': b`, `'a\'`, "b", true}, // no backslash escapes in single quotes
		{`'a'': b': c`, `'a'': b'`, "c", true},
		{`x"a: b"`, `x"a`, `b"`, true}, // a quote opens only at the start of a key
		{`"open: x`, "", "", false},
		{"- a", "", "", false},
	}
	for _, c := range keys {
		k, v, ok := splitKey(c.in)
		if k != c.k || v != c.v || ok != c.ok {
			t.Errorf("splitKey(%q) = %q %q %v, want %q %q %v", c.in, k, v, ok, c.k, c.v, c.ok)
		}
	}
	comments := []struct{ in, want string }{
		{"a: b # c", "a: b"},
		{"# all", ""},
		{"a: b#c", "a: b#c"},
		{`a: "b # c"`, `a: "b # c"`},
		{`a: "b \" # c" # d`, `a: "b \" # c"`},
		{`a: ['x # y', "z # w"]  # v`, `a: ['x # y', "z # w"]`},
		{`a: [x,'y # z']`, `a: [x,'y # z']`},
		{`a: 'b '' # c' # d`, `a: 'b '' # c'`},
		{`- 'it''s # here'`, `- 'it''s # here'`},
		{`a: b'c # d`, `a: b'c`}, // a quote inside a word opens nothing
		{`a: "open # x`, `a: "open # x`},
	}
	for _, c := range comments {
		if got := stripComment(c.in); got != c.want {
			t.Errorf("stripComment(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestYAMLSingleQuotedHash(t *testing.T) {
	v, err := ParseYAML([]byte("a: 'it''s # not a comment' # a comment\nb: ['x''y # z']\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != "it's # not a comment" || len(m["b"].([]any)) != 1 || m["b"].([]any)[0] != "x'y # z" {
		t.Fatalf("got %#v", m)
	}
}

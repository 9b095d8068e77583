package uci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

type sec struct {
	typ, name string
	anon      bool
	opts      map[string][]string
	lists     []string // names of options that are lists
}

func flatten(f *File) []sec {
	var out []sec
	for _, s := range f.Sections {
		x := sec{typ: s.Type, name: s.Name, anon: s.Anonymous, opts: map[string][]string{}}
		for _, o := range s.Options {
			x.opts[o.Name] = o.Values
			if o.IsList {
				x.lists = append(x.lists, o.Name)
			}
		}
		out = append(out, x)
	}
	return out
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		name, in string
		want     []sec
	}{
		{"empty", "", nil},
		{"comments only", "# hello\n\n   # world\n", nil},
		{"named", "config container 'dns'\n\toption image 'adguard'\n",
			[]sec{{typ: "container", name: "dns", opts: map[string][]string{"image": {"adguard"}}}}},
		{"anonymous", "config agent\n\toption stop_timeout 10\nconfig agent\n",
			[]sec{{typ: "agent", name: "@agent[0]", anon: true, opts: map[string][]string{"stop_timeout": {"10"}}},
				{typ: "agent", name: "@agent[1]", anon: true, opts: map[string][]string{}}}},
		{"empty name is anonymous", "config agent ''\n",
			[]sec{{typ: "agent", name: "@agent[0]", anon: true, opts: map[string][]string{}}}},
		{"list order", "config c x\n list command /bin/sh\n list command '-c'\n list command \"echo hi\"\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"command": {"/bin/sh", "-c", "echo hi"}}, lists: []string{"command"}}}},
		{"double quote escapes", `config c x` + "\n" + `option v "a\"b\\c\$d"` + "\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {`a"b\c$d`}}}}},
		{"single quote literal", `config c x` + "\n" + `option v 'a\nb'` + "\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {`a\nb`}}}}},
		{"uci export quote", `config c x` + "\n" + `option v 'it'\''s'` + "\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {`it's`}}}}},
		{"concatenation", "config c x\noption v ab'c d'\"e\"f\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"abc def"}}}}},
		{"unquoted escape", "config c x\noption v a\\ b\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"a b"}}}}},
		{"trailing comment", "config c x # the x\noption v 1 # one\noption w '#not'\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"1"}, "w": {"#not"}}}}},
		{"semicolons", "config c x; option a 1; option b 2\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"a": {"1"}, "b": {"2"}}}}},
		{"continuation", "config c x\noption v \\\n  hello\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"hello"}}}}},
		{"multi-line quoted", "config c x\noption v 'a\nb'\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"a\nb"}}}}},
		{"crlf", "config c x\r\n\toption v 1\r\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"1"}}}}},
		{"option replaces", "config c x\noption v 1\noption v 2\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"2"}}}}},
		{"list after option", "config c x\noption v 1\nlist v 2\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"1", "2"}}, lists: []string{"v"}}}},
		{"option without value", "config c x\noption v\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {""}}}}},
		{"named section merges", "config c x\noption a 1\nconfig c x\noption b 2\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"a": {"1"}, "b": {"2"}}}}},
		{"package", "package otok\nconfig c x\n",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{}}}},
		{"no final newline", "config c x\noption v 1",
			[]sec{{typ: "c", name: "x", opts: map[string][]string{"v": {"1"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := flatten(f)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"option a 1\n", "f:1: option outside of a config section"},
		{"config c x\noption v 'a\x00b'\n", "f:2: NUL byte in input"},
		{"config c x\noption v \"a\x00b\"\n", "f:2: NUL byte in input"},
		{"config c x\noption v a\\\x00b\n", "f:2: NUL byte in input"},
		{"config c x\n\n\toption v 'abc\n", "f:3: unterminated single quote"},
		{"config c x\noption v \"abc\n", "f:2: unterminated double quote"},
		{"config c x\noption v \"abc\\", "f:2: unterminated double quote"},
		{"config c x\noption v abc\\", "f:2: backslash at end of file"},
		{"config\n", "f:1: config: want a type and an optional name"},
		{"config a b c\n", "f:1: config: want a type and an optional name"},
		{"config c 'my-box'\n", `f:1: config c: invalid section name "my-box" (letters, digits and _ only)`},
		{"config c x\noption 'a b' 1\n", `f:2: option: invalid name "a b" (letters, digits and _ only)`},
		{"config c x\noption a 1 2\n", "f:2: option a: too many values (quote values that contain spaces)"},
		{"config c x\nlist a\n", "f:2: list a: missing value"},
		{"config c x\nlist\n", "f:2: list: missing name"},
		{"config c x\nopton a 1\n", `f:2: unknown statement "opton" (want package, config, option or list)`},
		{"config c x\nconfig d x\n", `f:2: config d "x": section already defined with type c at line 1`},
		{"config c x\npackage p\n", "f:2: package: must come before the first config section"},
		{"package\n", "f:1: package: want exactly one name"},
		{"config c x\noption a \x00\n", "f:2: NUL byte in input"},
		{"config 'a\"b'\n", `f:1: config: invalid section type "a\"b"`},
	}
	for _, tt := range tests {
		_, err := Parse("f", []byte(tt.in))
		if err == nil {
			t.Errorf("%q: no error, want %q", tt.in, tt.want)
			continue
		}
		var ue *Error
		if !errors.As(err, &ue) {
			t.Errorf("%q: error %T is not *Error", tt.in, err)
		}
		if err.Error() != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, err.Error(), tt.want)
		}
	}
	if _, err := Parse("big", make([]byte, MaxFileSize+1)); err == nil {
		t.Error("oversized file accepted")
	}
}

func TestRoundTrip(t *testing.T) {
	in := "package otok\nconfig agent\n\toption a 'x y'\nconfig container dns\n\tlist command /bin/sh\n\tlist command \"it's \\\"q\\\"\"\n\toption e ''\n"
	f, err := Parse("t", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse("t2", Format(f))
	if err != nil {
		t.Fatalf("%v\n%s", err, Format(f))
	}
	if !reflect.DeepEqual(flatten(f), flatten(g)) || f.Package != g.Package {
		t.Fatalf("round trip differs:\n%s", Format(f))
	}
}

// captureToFile turns `ubus call uci get '{"config":"network"}'` output
// (real devices, see testdata/LICENSE.captures) into the File it came from.
func captureToFile(t *testing.T, path string) *File {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Values map[string]map[string]any `json:"values"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	f := &File{Name: path}
	secs := make([]*Section, len(c.Values))
	for name, v := range c.Values {
		idx := int(v[".index"].(float64))
		s := &Section{Type: v[".type"].(string), Name: name, Anonymous: v[".anonymous"].(bool)}
		var keys []string
		for k := range v {
			if !strings.HasPrefix(k, ".") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch x := v[k].(type) {
			case string:
				s.Options = append(s.Options, &Option{Name: k, Values: []string{x}})
			case []any:
				o := &Option{Name: k, IsList: true}
				for _, e := range x {
					o.Values = append(o.Values, e.(string))
				}
				s.Options = append(s.Options, o)
			}
		}
		secs[idx] = s
	}
	f.Sections = secs
	return f
}

// TestRealNetworkConfigs parses /etc/config/network as rendered from real
// OpenWrt devices (testdata/*.network, produced from the ubus captures next
// to them) and checks every section and option against the capture.
func TestRealNetworkConfigs(t *testing.T) {
	caps, _ := filepath.Glob("testdata/*_network.json")
	if len(caps) == 0 {
		t.Fatal("no captures in testdata")
	}
	for _, c := range caps {
		want := captureToFile(t, c)
		txt := strings.TrimSuffix(c, "_network.json") + ".network"
		data, err := os.ReadFile(txt)
		if os.IsNotExist(err) && os.Getenv("UCI_WRITE_FIXTURES") != "" {
			data = Format(want)
			os.WriteFile(txt, data, 0o644)
		} else if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(txt, data)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(f *File) []sec {
			s := flatten(f)
			for i := range s {
				if s[i].anon {
					s[i].name = ""
				}
				sort.Strings(s[i].lists)
			}
			return s
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Errorf("%s: parsed\n%+v\nwant\n%+v", txt, norm(got), norm(want))
		}
		if n := len(got.OfType("interface")); n < 2 {
			t.Errorf("%s: %d interfaces", txt, n)
		}
	}
}

// TestHandWritten parses a file in the style people write by hand
// (testdata/otok.hand), with every quoting form.
func TestHandWritten(t *testing.T) {
	data, err := os.ReadFile("testdata/otok.hand")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("otok.hand", data)
	if err != nil {
		t.Fatal(err)
	}
	web := f.Section("web")
	if web == nil {
		t.Fatal("no web section")
	}
	if got := web.List("command"); !reflect.DeepEqual(got, []string{"/bin/httpd", "-f", "-p", "80", "-h", "/www dir"}) {
		t.Errorf("command = %q", got)
	}
	if v, _ := web.Get("memory"); v != "16M" {
		t.Errorf("memory = %q", v)
	}
	if env := web.List("env"); !reflect.DeepEqual(env, []string{"A=1", `B=two words`, `C="q"`}) {
		t.Errorf("env = %q", env)
	}
	if a := f.OfType("agent"); len(a) != 1 || !a[0].Anonymous {
		t.Errorf("agent sections: %+v", a)
	}
}

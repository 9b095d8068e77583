package uci

import (
	"fmt"
	"strings"
)

// MaxFileSize bounds what Parse accepts; UCI files on a router are a few
// kilobytes.
const MaxFileSize = 1 << 20

// File is a parsed UCI file.
type File struct {
	Name     string // file name used in errors
	Package  string // from a `package` statement, "" if none
	Sections []*Section
}

// Section is one `config TYPE [NAME]` block.
type Section struct {
	Type      string
	Name      string // as written; anonymous sections get uci's @TYPE[N] form
	Anonymous bool
	Line      int
	Options   []*Option // in order of first appearance
}

// Option is an `option` (one value) or a `list` (values in order).
type Option struct {
	Name   string
	Values []string
	IsList bool
	Line   int // line of the last statement that set it
}

// Error is a syntax error at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse parses UCI text. name is used in error messages.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Line: 1, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	l := &lexer{file: name, src: data, line: 1}
	f := &File{Name: name}
	var cur *Section
	named := map[string]*Section{} // lookups stay O(1) on large inputs
	anon := map[string]int{}       // anonymous sections so far, per type
	for {
		st, ok, err := l.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		w := st.words
		errf := func(format string, a ...any) error {
			return &Error{File: name, Line: st.line, Msg: fmt.Sprintf(format, a...)}
		}
		switch w[0] {
		case "package":
			if len(w) != 2 {
				return nil, errf("package: want exactly one name")
			}
			if !validName(w[1], true) {
				return nil, errf("package: invalid name %q", w[1])
			}
			if len(f.Sections) > 0 {
				return nil, errf("package: must come before the first config section")
			}
			f.Package = w[1]
		case "config":
			if len(w) < 2 || len(w) > 3 {
				return nil, errf("config: want a type and an optional name")
			}
			if !validType(w[1]) {
				return nil, errf("config: invalid section type %q", w[1])
			}
			s := &Section{Type: w[1], Line: st.line}
			if len(w) == 3 && w[2] != "" {
				if !validName(w[2], false) {
					return nil, errf("config %s: invalid section name %q (letters, digits and _ only)", w[1], w[2])
				}
				s.Name = w[2]
			} else {
				s.Anonymous = true
				s.Name = fmt.Sprintf("@%s[%d]", s.Type, anon[s.Type])
				anon[s.Type]++
			}
			// A named section given twice merges into the first, as libuci does.
			if !s.Anonymous {
				if prev := named[s.Name]; prev != nil {
					if prev.Type != s.Type {
						return nil, errf("config %s %q: section already defined with type %s at line %d", s.Type, s.Name, prev.Type, prev.Line)
					}
					cur = prev
					continue
				}
			}
			f.Sections = append(f.Sections, s)
			if !s.Anonymous {
				named[s.Name] = s
			}
			cur = s
		case "option", "list":
			if cur == nil {
				return nil, errf("%s outside of a config section", w[0])
			}
			if len(w) < 2 {
				return nil, errf("%s: missing name", w[0])
			}
			if len(w) > 3 {
				return nil, errf("%s %s: too many values (quote values that contain spaces)", w[0], w[1])
			}
			if !validName(w[1], false) {
				return nil, errf("%s: invalid name %q (letters, digits and _ only)", w[0], w[1])
			}
			val := ""
			if len(w) == 3 {
				val = w[2]
			} else if w[0] == "list" {
				return nil, errf("list %s: missing value", w[1])
			}
			o := cur.option(w[1])
			if o == nil {
				o = &Option{Name: w[1]}
				cur.Options = append(cur.Options, o)
			}
			o.Line = st.line
			if w[0] == "option" {
				o.Values = []string{val}
				o.IsList = false
			} else {
				o.Values = append(o.Values, val)
				o.IsList = true
			}
		default:
			return nil, errf("unknown statement %q (want package, config, option or list)", w[0])
		}
	}
	return f, nil
}

// validName: section and option names are [A-Za-z0-9_]; package names
// additionally allow '-'.
func validName(s string, pkg bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || pkg && c == '-') {
			return false
		}
	}
	return true
}

// validType: section types are printable words without quotes or spaces.
func validType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`'"\#;`, c) >= 0 {
			return false
		}
	}
	return true
}

// Section returns the named section, or nil.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// OfType returns the sections of a type, in file order.
func (f *File) OfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

func (s *Section) option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Option returns the named option or list, or nil.
func (s *Section) Option(name string) *Option { return s.option(name) }

// Get returns a single-valued option's value (a list's last value).
func (s *Section) Get(name string) (string, bool) {
	o := s.option(name)
	if o == nil || len(o.Values) == 0 {
		return "", false
	}
	return o.Values[len(o.Values)-1], true
}

// List returns the values of a list (or the one value of an option).
func (s *Section) List(name string) []string {
	o := s.option(name)
	if o == nil {
		return nil
	}
	return o.Values
}

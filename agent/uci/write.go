package uci

import (
	"bytes"
	"strings"
)

// Format renders f as UCI text that Parse reads back to the same sections
// and options (anonymous sections stay anonymous).
func Format(f *File) []byte {
	var b bytes.Buffer
	if f.Package != "" {
		b.WriteString("package " + Quote(f.Package) + "\n\n")
	}
	for i, s := range f.Sections {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("config " + s.Type)
		if !s.Anonymous {
			b.WriteString(" " + Quote(s.Name))
		}
		b.WriteByte('\n')
		for _, o := range s.Options {
			if o.IsList {
				for _, v := range o.Values {
					b.WriteString("\tlist " + o.Name + " " + Quote(v) + "\n")
				}
				continue
			}
			v := ""
			if len(o.Values) > 0 {
				v = o.Values[len(o.Values)-1]
			}
			b.WriteString("\toption " + o.Name + " " + Quote(v) + "\n")
		}
	}
	return b.Bytes()
}

// Quote returns v in single quotes as uci export writes it: an embedded
// single quote closes the quote, is backslash-escaped, and reopens it
// (so it's becomes 'it', backslash-quote, 's' run together).
func Quote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

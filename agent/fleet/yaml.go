package fleet

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ParseYAML reads the subset of YAML that desired-state files need, so the
// router binary carries no YAML library: block mappings and sequences by
// indentation (spaces), `- key: value` items, flow sequences of scalars on
// one line (`[a, "b c"]`), plain, 'single' and "double" (JSON escapes)
// quoted scalars, comments, and a leading `---`. Anchors, tags, flow
// mappings, multi-line scalars and multiple documents are refused with the
// line number. Plain scalars become strings, except true/false, null/~ and
// integers.
func ParseYAML(b []byte) (any, error) {
	var ls []yline
	for i, raw := range strings.Split(string(b), "\n") {
		raw = strings.TrimRight(raw, " \r")
		if lead := raw[:len(raw)-len(strings.TrimLeft(raw, " \t"))]; strings.Contains(lead, "\t") {
			return nil, fmt.Errorf("yaml line %d: tab in indentation", i+1)
		}
		text := stripComment(strings.TrimLeft(raw, " "))
		if text == "" || (len(ls) == 0 && text == "---") {
			continue
		}
		if text == "---" || text == "..." {
			return nil, fmt.Errorf("yaml line %d: one document only", i+1)
		}
		ls = append(ls, yline{no: i + 1, indent: len(raw) - len(strings.TrimLeft(raw, " ")), text: text})
	}
	if len(ls) == 0 {
		return map[string]any{}, nil
	}
	p := &yparser{ls: ls}
	v, err := p.block(ls[0].indent)
	if err != nil {
		return nil, err
	}
	if p.i < len(ls) {
		return nil, fmt.Errorf("yaml line %d: unexpected indentation", ls[p.i].no)
	}
	return v, nil
}

type yline struct {
	no, indent int
	text       string
}

type yparser struct {
	ls []yline
	i  int
}

func (p *yparser) block(indent int) (any, error) {
	if t := p.ls[p.i].text; t == "-" || strings.HasPrefix(t, "- ") {
		return p.seq(indent)
	}
	return p.mapping(indent)
}

func (p *yparser) seq(indent int) (any, error) {
	out := []any{}
	for p.i < len(p.ls) && p.ls[p.i].indent == indent {
		l := p.ls[p.i]
		if l.text != "-" && !strings.HasPrefix(l.text, "- ") {
			return nil, fmt.Errorf("yaml line %d: expected a list item", l.no)
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.i++
			if p.i >= len(p.ls) || p.ls[p.i].indent <= indent {
				out = append(out, nil)
				continue
			}
			v, err := p.block(p.ls[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		if _, _, isKey := splitKey(rest); isKey || strings.HasPrefix(rest, "- ") {
			// "- key: v" opens a mapping whose keys line up with "key".
			p.ls[p.i] = yline{no: l.no, indent: l.indent + len(l.text) - len(rest), text: rest}
			v, err := p.block(p.ls[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		v, err := scalar(rest, l.no)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.i++
	}
	if p.i < len(p.ls) && p.ls[p.i].indent > indent {
		return nil, fmt.Errorf("yaml line %d: unexpected indentation", p.ls[p.i].no)
	}
	return out, nil
}

func (p *yparser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.i < len(p.ls) && p.ls[p.i].indent == indent {
		l := p.ls[p.i]
		k, v, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("yaml line %d: expected \"key: value\"", l.no)
		}
		key, err := scalar(k, l.no)
		if err != nil {
			return nil, err
		}
		ks, isStr := key.(string)
		if !isStr {
			ks = fmt.Sprint(key)
		}
		if _, dup := out[ks]; dup {
			return nil, fmt.Errorf("yaml line %d: key %q twice", l.no, ks)
		}
		p.i++
		if v != "" {
			if out[ks], err = scalar(v, l.no); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case p.i < len(p.ls) && p.ls[p.i].indent > indent:
			out[ks], err = p.block(p.ls[p.i].indent)
		case p.i < len(p.ls) && p.ls[p.i].indent == indent && strings.HasPrefix(p.ls[p.i].text+" ", "- "):
			out[ks], err = p.seq(indent) // a list may sit at its key's indentation
		default:
			out[ks] = nil
		}
		if err != nil {
			return nil, err
		}
	}
	if p.i < len(p.ls) && p.ls[p.i].indent > indent {
		return nil, fmt.Errorf("yaml line %d: unexpected indentation", p.ls[p.i].no)
	}
	return out, nil
}

// splitKey splits "key: value" (or "key:") at the first colon outside
// quotes that ends the line or is followed by a space. A quote opens a
// quoted key only at the start.
func splitKey(s string) (k, v string, ok bool) {
	i := unquoted(s,
		func(i int) bool { return i == 0 },
		func(i int) bool { return s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ') })
	if i < 0 {
		return "", "", false
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), i > 0
}

// stripComment removes a " #…" comment outside quotes. A quote opens a
// quoted string at the start of the line or after a space, '[' or ','.
func stripComment(s string) string {
	i := unquoted(s,
		func(i int) bool { return i == 0 || strings.IndexByte(" [,", s[i-1]) >= 0 },
		func(i int) bool { return s[i] == '#' && (i == 0 || s[i-1] == ' ') })
	if i < 0 {
		return s
	}
	return strings.TrimRight(s[:i], " ")
}

// unquoted returns the index of the first byte of s, outside quoted
// strings, at which stop is true, or -1. A ' or " at i opens a quoted
// string when opens(i).
func unquoted(s string, opens, stop func(i int) bool) int {
	for i := 0; i < len(s); i++ {
		switch {
		case (s[i] == '"' || s[i] == '\'') && opens(i):
			n := quoteEnd(s[i:])
			if n < 0 {
				return -1
			}
			i += n
		case stop(i):
			return i
		}
	}
	return -1
}

// quoteEnd returns the index of the quote that closes the quoted string s
// starts with (s[0] is ' or "), or -1. Inside "…" a backslash escapes the
// next byte; inside '…' two single quotes in a row are one (as scalar
// reads them).
func quoteEnd(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q == '"':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == q:
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func scalar(s string, no int) (any, error) {
	switch {
	case s == "":
		return nil, nil
	case s[0] == '"':
		var out string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("yaml line %d: bad double-quoted string %s", no, s)
		}
		return out, nil
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("yaml line %d: unterminated single-quoted string", no)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case s[0] == '[':
		return flowSeq(s, no)
	case strings.ContainsRune("{&*!|>%@`", rune(s[0])):
		return nil, fmt.Errorf("yaml line %d: %q: flow mappings, anchors, tags and block scalars are not supported (use JSON)", no, s[:1])
	case s == "true" || s == "false":
		return s == "true", nil
	case s == "null" || s == "~":
		return nil, nil
	}
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return json.Number(s), nil
	}
	return s, nil
}

func flowSeq(s string, no int) (any, error) {
	if s[len(s)-1] != ']' {
		return nil, fmt.Errorf("yaml line %d: flow sequence must end on its line", no)
	}
	body := strings.TrimSpace(s[1 : len(s)-1])
	out := []any{}
	for body != "" {
		var item string
		if body[0] == '"' || body[0] == '\'' {
			end := quoteEnd(body)
			if end < 0 {
				return nil, fmt.Errorf("yaml line %d: unterminated string in flow sequence", no)
			}
			item, body = body[:end+1], strings.TrimSpace(body[end+1:])
		} else {
			i := strings.IndexByte(body, ',')
			if i < 0 {
				i = len(body)
			}
			item, body = strings.TrimSpace(body[:i]), body[i:]
		}
		if strings.HasPrefix(item, "[") {
			return nil, fmt.Errorf("yaml line %d: nested flow sequences are not supported", no)
		}
		v, err := scalar(item, no)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		body = strings.TrimSpace(body)
		if body != "" {
			if body[0] != ',' {
				return nil, fmt.Errorf("yaml line %d: expected ',' in flow sequence", no)
			}
			body = strings.TrimSpace(body[1:])
		}
	}
	return out, nil
}

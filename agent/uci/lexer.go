package uci

import (
	"fmt"
	"strings"
)

// maxWordLen bounds one word (a value) so hostile files cannot make the
// lexer build arbitrarily large strings from a small input's escapes; the
// whole file is bounded by the caller (MaxFileSize).
const maxWordLen = 64 << 10

// statement is one UCI statement: its words and the line it starts on.
type statement struct {
	line  int
	words []string
}

// lexer splits UCI text into statements of words.
type lexer struct {
	file string
	src  []byte
	pos  int
	line int // 1-based line of src[pos]
}

func (l *lexer) errorf(line int, format string, a ...any) error {
	return &Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func (l *lexer) peek() byte {
	if l.pos < len(l.src) {
		return l.src[l.pos]
	}
	return 0
}

func (l *lexer) eof() bool { return l.pos >= len(l.src) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// next returns the next non-empty statement, or ok=false at the end.
func (l *lexer) next() (st statement, ok bool, err error) {
	for {
		st = statement{line: l.line}
		for {
			// skip blanks inside the statement
			for !l.eof() && isSpace(l.peek()) {
				l.pos++
			}
			if l.eof() {
				break
			}
			c := l.peek()
			if c == '\n' {
				l.pos++
				l.line++
				break
			}
			if c == ';' {
				l.pos++
				break
			}
			if c == '#' {
				for !l.eof() && l.peek() != '\n' {
					l.pos++
				}
				continue
			}
			if c == '\\' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '\n' {
				// line continuation between words
				l.pos += 2
				l.line++
				continue
			}
			if len(st.words) == 0 {
				st.line = l.line
			}
			w, err := l.word()
			if err != nil {
				return st, false, err
			}
			st.words = append(st.words, w)
		}
		if len(st.words) > 0 {
			return st, true, nil
		}
		if l.eof() {
			return st, false, nil
		}
	}
}

// word reads one word: adjacent unquoted, single- and double-quoted parts.
func (l *lexer) word() (string, error) {
	var b strings.Builder
	add := func(c byte) error {
		if c == 0 {
			// Quoted or escaped too: libuci would cut the value there.
			return l.errorf(l.line, "NUL byte in input")
		}
		if b.Len() >= maxWordLen {
			return l.errorf(l.line, "word longer than %d bytes", maxWordLen)
		}
		b.WriteByte(c)
		return nil
	}
	for !l.eof() {
		c := l.peek()
		switch {
		case isSpace(c), c == '\n', c == ';', c == '#':
			return b.String(), nil
		case c == '\'':
			start := l.line
			l.pos++
			for {
				if l.eof() {
					return "", l.errorf(start, "unterminated single quote")
				}
				c := l.src[l.pos]
				l.pos++
				if c == '\'' {
					break
				}
				if c == '\n' {
					l.line++
				}
				if err := add(c); err != nil {
					return "", err
				}
			}
		case c == '"':
			start := l.line
			l.pos++
			for {
				if l.eof() {
					return "", l.errorf(start, "unterminated double quote")
				}
				c := l.src[l.pos]
				l.pos++
				if c == '"' {
					break
				}
				if c == '\\' {
					if l.eof() {
						return "", l.errorf(start, "unterminated double quote")
					}
					c = l.src[l.pos]
					l.pos++
					if c == '\n' { // continuation inside quotes
						l.line++
						continue
					}
				} else if c == '\n' {
					l.line++
				}
				if err := add(c); err != nil {
					return "", err
				}
			}
		case c == '\\':
			l.pos++
			if l.eof() {
				return "", l.errorf(l.line, "backslash at end of file")
			}
			c = l.src[l.pos]
			l.pos++
			if c == '\n' {
				l.line++
				continue
			}
			if err := add(c); err != nil {
				return "", err
			}
		default:
			if c == 0 {
				return "", l.errorf(l.line, "NUL byte in input")
			}
			l.pos++
			if err := add(c); err != nil {
				return "", err
			}
		}
	}
	return b.String(), nil
}

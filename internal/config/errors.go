// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is one problem with a configuration: where it is and what to do.
// Load and Validate return them joined with errors.Join; errors.As finds
// the first, and an Unwrap() []error walk finds them all.
type Error struct {
	File string // the file as it was named; "" for values not from a file
	Line int    // 1-based; 0 when the key is not in the file
	// Key is the full key, e.g.
	// "cleanroom.monitoring.exporters[0].batch_size".
	Key string
	// Message names the key (with its value, where showing it helps and
	// it is not a secret) and ends with the fix:
	// `batch_size = 0: must be at least 1 (exporter "prom"); the default is 100`.
	Message string
}

// Error is the problem as one line: the file's name and the message are
// escaped (see printable), so that nothing from the file or its name can
// reach a terminal as a control sequence or break the one-line-per-problem
// form.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line == 0 {
		// No line to point at: say which table the key is in.
		if parent := parentPath(e.Key); parent != "" {
			b.WriteString("[" + parent + "] ")
		}
	}
	b.WriteString(e.Message)
	return printable(b.String())
}

// problems collects Errors against one source.
type problems struct {
	src  *source
	errs []*Error
	// bad are keys whose value did not decode: the default stands in for
	// them, and a second message about that default would mislead.
	bad map[string]bool
	// keys are the keys that have a problem.
	keys map[string]bool
}

// record adds e, its message escaped: what the message quotes from the
// file must not reach a terminal, or a program reading Message, as
// control sequences.
func (p *problems) record(e *Error) {
	e.Message = printable(e.Message)
	if p.keys == nil {
		p.keys = make(map[string]bool)
	}
	p.keys[e.Key] = true
	p.errs = append(p.errs, e)
}

// add records a problem with the key at path; the line is the key's, or
// failing that its table's.
func (p *problems) add(path, format string, args ...any) {
	if p.bad[path] {
		return
	}
	e := &Error{Key: path, Message: message(format, args)}
	if p.src != nil {
		e.File = p.src.name
		e.Line = p.src.lineOf(path)
	}
	p.record(e)
}

// addAt is add for a key that was in the file: its own line, never its
// table's.
func (p *problems) addAt(path, format string, args ...any) {
	if p.bad[path] {
		return
	}
	e := &Error{Key: path, Message: message(format, args)}
	if p.src != nil {
		e.File = p.src.name
		e.Line = p.src.lines[path]
	}
	p.record(e)
}

// hasLine reports whether a problem is already recorded at line.
func (p *problems) hasLine(line int) bool {
	for _, e := range p.errs {
		if e.Line == line {
			return true
		}
	}
	return false
}

// hasKey reports whether a problem is already recorded at path.
func (p *problems) hasKey(path string) bool { return p.keys[path] }

// badUnder reports whether path or a table it is in did not decode: what
// is inside is not worth a second message.
func (p *problems) badUnder(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if p.bad[path] {
			return true
		}
		if i := strings.LastIndexByte(path, '['); i > strings.LastIndexByte(path, '.') {
			if p.bad[path[:i]] {
				return true
			}
		}
	}
	return false
}

// markBad records that path's value did not decode.
func (p *problems) markBad(path string) {
	if p.bad == nil {
		p.bad = make(map[string]bool)
	}
	p.bad[path] = true
}

// addLine records a problem at a known line.
func (p *problems) addLine(line int, path, format string, args ...any) {
	e := &Error{Key: path, Line: line, Message: message(format, args)}
	if p.src != nil {
		e.File = p.src.name
	}
	p.record(e)
}

// maxProblems is how many problems an error lists; past that, fixing the
// first ones is the next step anyway. It is above the number of keys a
// full configuration has (about 150), so that a file with every value
// wrong still hears about each one.
const maxProblems = 200

// err joins the problems in file order, or is nil.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool {
		li, lj := p.errs[i].Line, p.errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	list := p.errs
	if len(list) > maxProblems {
		more := &Error{Message: fmt.Sprintf("… and %d more problems", len(list)-maxProblems)}
		if p.src != nil {
			more.File = p.src.name
		}
		list = append(list[:maxProblems:maxProblems], more)
	}
	errs := make([]error, len(list))
	for i, e := range list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Problems returns every *Error in err (as Load and Validate return them).
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				walk(e)
			}
			return
		}
		if e := errors.Unwrap(err); e != nil {
			walk(e)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// parentPath is path without its last key: "a.b[0].c" → "a.b[0]".
func parentPath(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// lastKey is path's last key without an index: "a.b[0].c" → "c",
// "a.b[2]" → "b".
func lastKey(path string) string {
	k := path[strings.LastIndexByte(path, '.')+1:]
	if i := strings.IndexByte(k, '['); i >= 0 {
		k = k[:i]
	}
	return k
}

// quoteList formats valid values for a message: "a", "b", "c".
func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = quote(v)
	}
	return strings.Join(q, ", ")
}

// maxShown is how many characters of a value from the file a message
// shows: enough to recognise it, never a screenful.
const maxShown = 80

// maxMessage bounds a whole message, whatever it quotes.
const maxMessage = 1024

// message formats a problem. A string argument formatted with %q is
// quoted with quote: escaped and cut to maxShown characters.
func message(format string, args []any) string {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = quoted(s)
		}
	}
	return fmt.Sprintf(format, args...)
}

// quoted formats as quote for %q, and as the string itself otherwise.
type quoted string

func (q quoted) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprint(f, quote(string(q)))
		return
	}
	fmt.Fprint(f, string(q))
}

// quote is s in double quotes, escaped as strconv.Quote escapes it (no
// control character, no invalid UTF-8) and cut to maxShown characters:
// "aaa…" (cut) marks a cut.
func quote(s string) string {
	if cut, ok := cutShown(s); ok {
		return strconv.Quote(cut) + "… (cut)"
	}
	return strconv.Quote(s)
}

// clip is a value as the file writes it (its TOML text, quotes and all),
// escaped by printable and cut to maxShown characters.
func clip(s string) string {
	if cut, ok := cutShown(s); ok {
		return printable(cut) + "… (cut)"
	}
	return printable(s)
}

// cutShown is s's first maxShown characters, and whether that is less than
// s.
func cutShown(s string) (string, bool) {
	n := 0
	for i := range s {
		if n == maxShown {
			return s[:i], true
		}
		n++
	}
	return s, false
}

// printable escapes what a terminal would act on rather than show:
// control characters (ESC, newline, carriage return, …), invalid UTF-8 and
// other non-printing runes such as bidirectional overrides, each as
// strconv.Quote writes it (\x1b, \n, \u202e); and it cuts s to
// maxMessage characters.
func printable(s string) string {
	clean := len(s) <= maxMessage
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	n := 0
	for len(s) > 0 {
		if n == maxMessage {
			b.WriteString("… (cut)")
			break
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !unicode.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
		n++
	}
	return b.String()
}

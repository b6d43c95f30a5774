// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
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
	return b.String()
}

// problems collects Errors against one source.
type problems struct {
	src  *source
	errs []*Error
	// bad are keys whose value did not decode: the default stands in for
	// them, and a second message about that default would mislead.
	bad map[string]bool
}

// add records a problem with the key at path; the line is the key's, or
// failing that its table's.
func (p *problems) add(path, format string, args ...any) {
	if p.bad[path] {
		return
	}
	e := &Error{Key: path, Message: fmt.Sprintf(format, args...)}
	if p.src != nil {
		e.File = p.src.name
		e.Line = p.src.lineOf(path)
	}
	p.errs = append(p.errs, e)
}

// addAt is add for a key that was in the file: its own line, never its
// table's.
func (p *problems) addAt(path, format string, args ...any) {
	if p.bad[path] {
		return
	}
	e := &Error{Key: path, Message: fmt.Sprintf(format, args...)}
	if p.src != nil {
		e.File = p.src.name
		e.Line = p.src.lines[path]
	}
	p.errs = append(p.errs, e)
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

// markBad records that path's value did not decode.
func (p *problems) markBad(path string) {
	if p.bad == nil {
		p.bad = make(map[string]bool)
	}
	p.bad[path] = true
}

// addLine records a problem at a known line.
func (p *problems) addLine(line int, path, format string, args ...any) {
	e := &Error{Key: path, Line: line, Message: fmt.Sprintf(format, args...)}
	if p.src != nil {
		e.File = p.src.name
	}
	p.errs = append(p.errs, e)
}

// maxProblems is how many problems an error lists; past that, fixing the
// first ones is the next step anyway.
const maxProblems = 100

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
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// nearest returns the candidate closest to s by edit distance, if it is
// close enough to be a likely typo.
func nearest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/3)
	return best, bestD >= 0 && bestD <= limit
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

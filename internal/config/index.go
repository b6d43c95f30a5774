// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// source is what a configuration was read from: the file's name and the
// line of every key and table in it. Paths are dotted keys with list
// indices, as Validate builds them:
// "cleanroom.monitoring.exporters[1].batch_size".
type source struct {
	name  string
	lines map[string]int
	// values are the scalar values as written, by path.
	values map[string]string
	// kvs are the file's top-level key/value expressions, so that a value
	// that fails to decode can be blanked and decoding resumed.
	kvs []kvSpan
	// shapes are every key/value of the file, inline tables' included, in
	// file order, with the kind of the value: what typecheck compares
	// with the key's type.
	shapes []shape
}

// shape is one key/value, or one [table] or [[array]] header, as the
// parser saw it.
type shape struct {
	path  string
	key   string // as written, e.g. "batch_size"; "" for a header
	line  int
	kind  unstable.Kind
	elems []unstable.Kind // an array's element kinds, each once
	value string          // the value as written
	str   string          // a string value, unescaped
}

type kvSpan struct {
	start, end         int // byte offsets
	firstLine, endLine int
	path               string
	key                string // as written, e.g. "batch_size"
	value              string // as written, e.g. `"100"`
}

// lineOf is the line of path, or of its closest table in the file.
func (s *source) lineOf(path string) int {
	for path != "" {
		if l, ok := s.lines[path]; ok {
			return l
		}
		// Up one level: "a.b[0].c" → "a.b[0]" → "a.b".
		if i := strings.LastIndexAny(path, ".["); i >= 0 {
			path = path[:i]
		} else {
			break
		}
	}
	return 0
}

// has reports whether the file sets path.
func (s *source) has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.lines[path]
	return ok
}

// kvAt returns the key/value expression that spans line.
func (s *source) kvAt(line int) (kvSpan, bool) {
	for _, kv := range s.kvs {
		if kv.firstLine <= line && line <= kv.endLine {
			return kv, true
		}
	}
	return kvSpan{}, false
}

// indexer walks the document as go-toml's parser sees it.
type indexer struct {
	p          unstable.Parser
	lineStarts []int // offsets where lines start, for offset → line
	src        *source
	cur        string         // path of the current table
	count      map[string]int // entries so far of each array of tables
}

// index fills src.lines and src.kvs from doc; it fails on the first syntax
// error, as a *unstable.ParserError.
func index(src *source, doc []byte) error {
	ix := &indexer{src: src, count: make(map[string]int), lineStarts: []int{0}}
	for i, c := range doc {
		if c == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}
	src.lines = make(map[string]int)
	src.values = make(map[string]string)
	src.kvs = src.kvs[:0]
	src.shapes = src.shapes[:0]
	ix.p.Reset(doc)
	for ix.p.NextExpression() {
		e := ix.p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			ix.cur = ix.resolve(e.Key(), e.Kind == unstable.ArrayTable)
			line := ix.line(e.Child())
			ix.mark(ix.cur, line)
			ix.src.shapes = append(ix.src.shapes, shape{path: ix.cur, line: line, kind: e.Kind})
		case unstable.KeyValue:
			ix.keyValue(e, ix.cur, true)
		}
	}
	return ix.p.Error()
}

// resolve turns a header's key into a path, indexing into arrays of tables
// on the way: [a.b] after [[a]] is a.b in a's last entry.
func (ix *indexer) resolve(it unstable.Iterator, array bool) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	path := ""
	for i, k := range parts {
		path = join(path, k)
		last := i == len(parts)-1
		if last && array {
			n := ix.count[path]
			ix.count[path] = n + 1
			if _, ok := ix.src.lines[path]; !ok {
				ix.src.lines[path] = ix.line(nil)
			}
			return path + "[" + strconv.Itoa(n) + "]"
		}
		if n := ix.count[path]; n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func (ix *indexer) keyValue(e *unstable.Node, base string, top bool) {
	path := base
	var key strings.Builder
	it := e.Key()
	line := 0
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = ix.line(k)
		}
		path = join(path, string(k.Data))
		ix.mark(path, line)
		if key.Len() > 0 {
			key.WriteByte('.')
		}
		key.Write(ix.p.Raw(k.Raw))
	}
	v := e.Value()
	sh := shape{path: path, key: key.String(), line: line, kind: v.Kind}
	if v.Kind == unstable.String {
		sh.str = string(v.Data)
	}
	if v.Kind != unstable.Array && v.Kind != unstable.InlineTable && v.Raw.Length > 0 {
		sh.value = string(ix.p.Raw(v.Raw))
		ix.src.values[path] = sh.value
	} else if e.Raw.Length > 0 {
		if _, after, ok := strings.Cut(string(ix.p.Raw(e.Raw)), "="); ok {
			sh.value = strings.TrimSpace(after)
		}
	}
	if v.Kind == unstable.Array {
		it := v.Children()
		for it.Next() {
			if k := it.Node().Kind; !slices.Contains(sh.elems, k) {
				sh.elems = append(sh.elems, k)
			}
		}
	}
	ix.src.shapes = append(ix.src.shapes, sh)
	if top {
		start, end := int(e.Raw.Offset), int(e.Raw.Offset+e.Raw.Length)
		span := kvSpan{
			start: start, end: end,
			firstLine: ix.lineAt(start), endLine: ix.lineAt(end),
			path: path, key: key.String(),
		}
		if v.Kind != unstable.Array && v.Kind != unstable.InlineTable && v.Raw.Length > 0 {
			span.value = string(ix.p.Raw(v.Raw))
		} else if _, after, ok := strings.Cut(string(ix.p.Raw(e.Raw)), "="); ok {
			span.value = strings.TrimSpace(after)
		}
		ix.src.kvs = append(ix.src.kvs, span)
	}
	ix.value(v, path)
}

// value indexes the keys inside inline tables and arrays of them.
func (ix *indexer) value(v *unstable.Node, path string) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			ix.keyValue(it.Node(), path, false)
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			if el.Kind == unstable.InlineTable || el.Kind == unstable.Array {
				p := path + "[" + strconv.Itoa(i) + "]"
				if l := ix.line(el); l > 0 {
					ix.mark(p, l)
				}
				ix.value(el, p)
			}
		}
	}
}

func (ix *indexer) mark(path string, line int) {
	if _, ok := ix.src.lines[path]; !ok {
		ix.src.lines[path] = line
	}
}

// line is n's line, or the current expression's when n has no position.
func (ix *indexer) line(n *unstable.Node) int {
	if n == nil || n.Raw.Length == 0 && n.Raw.Offset == 0 {
		e := ix.p.Expression()
		if e != nil && e.Kind != unstable.KeyValue {
			// Headers carry no range; their first key does.
			if c := e.Child(); c != nil && (c.Raw.Length > 0) {
				return ix.lineAt(int(c.Raw.Offset))
			}
		}
		if e != nil && e.Raw.Length > 0 {
			return ix.lineAt(int(e.Raw.Offset))
		}
		return 0
	}
	return ix.lineAt(int(n.Raw.Offset))
}

// lineAt is the 1-based line of a byte offset. (The parser's Shape counts
// from the start of the document each time, quadratic over a file.)
func (ix *indexer) lineAt(off int) int {
	i, found := slices.BinarySearch(ix.lineStarts, off)
	if found {
		return i + 1
	}
	return i
}

func join(base, k string) string {
	if base == "" {
		return k
	}
	return base + "." + k
}

// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// The ADR's example configs are not TOML in two ways that people who paste
// them will hit: durations without quotes (collection_interval = 30s) and
// a [x.exporters] table header before the [[x.exporters]] list. A TOML
// parser stops at the first with a generic message; prescan finds all of
// them, says exactly what to write instead, and returns a repaired copy of
// the document (same lines) so that decoding can go on and report the
// file's other problems in the same run.

// bareDuration is a value such as 30s written without quotes.
type bareDuration struct {
	line       int
	table      string // the table header above it, normalised
	key        string // the key as written before '='
	token      string // "30s"
	start, end int    // byte offsets of token
}

// header is a [table] or [[array]] header.
type header struct {
	line       int
	array      bool
	key        string // normalised dotted key
	start, end int    // byte offsets of the whole header
	hasKeys    bool   // key/values follow before the next header
}

type scanned struct {
	durations []bareDuration
	headers   []header
}

// scanDoc finds bare durations and table headers, skipping strings and
// comments. It does not validate TOML: the parser does that afterwards.
func scanDoc(doc []byte) scanned {
	var s scanned
	var stack []byte // open '[' and '{' inside a value
	line := 1
	inValue := false     // between '=' and the end of its value
	expectValue := false // the next token is a value
	keyStart := 0        // where the key being read starts
	curKey := ""
	i := 0
	for i < len(doc) {
		c := doc[i]
		switch {
		case c == '\n':
			line++
			i++
			if len(stack) == 0 {
				inValue, expectValue = false, false
				keyStart = i
			}
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(doc) && doc[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			end, nl := skipString(doc, i)
			line += nl
			i = end
			expectValue = false
		case c == '[' && !inValue && len(stack) == 0:
			h, end := scanHeader(doc, i, line)
			s.headers = append(s.headers, h)
			i = end
			keyStart = i
		case c == '[' && inValue:
			stack = append(stack, '[')
			i++
			expectValue = true
		case c == '{' && inValue:
			stack = append(stack, '{')
			i++
			expectValue = false
			keyStart = i
		case (c == ']' || c == '}') && len(stack) > 0:
			stack = stack[:len(stack)-1]
			i++
			expectValue = false
		case c == ',' && len(stack) > 0:
			i++
			if stack[len(stack)-1] == '[' {
				expectValue = true
			} else {
				keyStart = i
			}
		case c == '=' && !expectValue:
			curKey = strings.TrimSpace(string(doc[keyStart:i]))
			if len(stack) == 0 {
				if n := len(s.headers); n > 0 {
					s.headers[n-1].hasKeys = true
				}
			}
			i++
			inValue, expectValue = true, true
		case expectValue:
			end := i
			for end < len(doc) && strings.IndexByte(" \t\r\n,]}#", doc[end]) < 0 {
				end++
			}
			if tok := string(doc[i:end]); isBareDuration(tok) {
				table := ""
				if n := len(s.headers); n > 0 {
					table = s.headers[n-1].key
				}
				s.durations = append(s.durations, bareDuration{line: line, table: table, key: curKey, token: tok, start: i, end: end})
			}
			i = end
			expectValue = false
		default:
			i++
		}
	}
	return s
}

// skipString returns the offset after the string starting at i and the
// newlines inside it. An unterminated string ends at its line's end (the
// parser reports it).
func skipString(doc []byte, i int) (end, newlines int) {
	q := doc[i]
	if i+2 < len(doc) && doc[i+1] == q && doc[i+2] == q {
		j := i + 3
		for j < len(doc) {
			switch {
			case doc[j] == '\\' && q == '"':
				j += 2
				continue
			case doc[j] == '\n':
				newlines++
			case doc[j] == q && j+2 < len(doc) && doc[j+1] == q && doc[j+2] == q:
				// Up to two more quotes may belong to the content.
				j += 3
				for k := 0; k < 2 && j < len(doc) && doc[j] == q; k++ {
					j++
				}
				return j, newlines
			}
			j++
		}
		return len(doc), newlines
	}
	j := i + 1
	for j < len(doc) && doc[j] != '\n' {
		if doc[j] == '\\' && q == '"' {
			j += 2
			continue
		}
		if doc[j] == q {
			return j + 1, 0
		}
		j++
	}
	return min(j, len(doc)), 0
}

// scanHeader reads the header starting at doc[i] == '['.
func scanHeader(doc []byte, i, line int) (header, int) {
	h := header{line: line, start: i}
	j := i + 1
	if j < len(doc) && doc[j] == '[' {
		h.array = true
		j++
	}
	var parts []string
	var part strings.Builder
	flush := func() {
		parts = append(parts, strings.TrimSpace(part.String()))
		part.Reset()
	}
	for j < len(doc) && doc[j] != '\n' {
		c := doc[j]
		if c == '"' || c == '\'' {
			end, _ := skipString(doc, j)
			raw := string(doc[j:end])
			if c == '"' {
				if u, err := strconv.Unquote(raw); err == nil {
					raw = u
				}
			} else {
				raw = strings.Trim(raw, "'")
			}
			part.WriteString(raw)
			j = end
			continue
		}
		if c == ']' {
			break
		}
		if c == '.' {
			flush()
		} else {
			part.WriteByte(c)
		}
		j++
	}
	flush()
	h.key = strings.Join(parts, ".")
	// Past the closing bracket(s), to the end of the line's content.
	for j < len(doc) && doc[j] == ']' {
		j++
	}
	h.end = j
	return h, j
}

// splitKey splits a dotted key as written ("a.b", `"a".b`) into its parts.
func splitKey(k string) []string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

func lastOf(k []string) string { return k[len(k)-1] }

// isBareDuration reports whether tok is number+unit parts ("30s", "1h30m",
// "7d", "1.5h"): not TOML, but clearly meant as a duration.
func isBareDuration(tok string) bool {
	units := 0
	i := 0
	for i < len(tok) {
		start := i
		for i < len(tok) && (tok[i] >= '0' && tok[i] <= '9' || tok[i] == '.') {
			i++
		}
		if i == start {
			return false
		}
		switch {
		case strings.HasPrefix(tok[i:], "ms"):
			i += 2
		case i < len(tok) && strings.IndexByte("smhdwy", tok[i]) >= 0:
			i++
		default:
			return false
		}
		units++
	}
	return units > 0
}

// arrayPaths are the keys that hold lists of tables, for the hint that
// [x] must be [[x]].
var arrayPaths = map[string]string{
	"cleanroom.monitoring.exporters":               "exporter",
	"cleanroom.monitoring.alerting.alert_channels": "alert channel",
	"cleanroom.monitoring.alerting.alert_rules":    "alert rule",
	containersPath: "container pattern",
}

// prescan reports the ADR-example mistakes in doc and returns doc with
// them repaired, line for line.
func prescan(p *problems, doc []byte) []byte {
	s := scanDoc(doc)
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	for _, d := range s.durations {
		edits = append(edits, edit{d.start, d.end, `"` + d.token + `"`})
		key := append(splitPath(d.table), splitKey(d.key)...)
		if d.table == "" {
			key = key[1:]
		}
		path := durationPath(s.headers, d)
		if t, ok := fieldType(key); ok && t != reflect.TypeFor[Duration]() {
			p.addLine(d.line, path, "%s = %s: %s takes %s, not a duration", d.key, clip(shown(key, d.token)), lastOf(key), describe(t))
			continue
		}
		p.addLine(d.line, path, "%s = %s: durations are strings; write %s = \"%s\"", d.key, clip(d.token), d.key, clip(d.token))
	}
	for _, h := range s.headers {
		if h.array {
			continue
		}
		arrayLine := 0
		for _, o := range s.headers {
			if o.array && o.key == h.key {
				arrayLine = o.line
				break
			}
		}
		what, known := arrayPaths[h.key]
		switch {
		case arrayLine > 0 && !h.hasKeys:
			p.addLine(h.line, h.key, "[%s] declares a single table, but line %d starts a list with [[%s]]; delete the single-bracket header [%s] on line %d",
				h.key, arrayLine, h.key, h.key, h.line)
			edits = append(edits, edit{h.start, h.end, ""})
		case arrayLine > 0 || known:
			if what == "" {
				what = "entry"
			}
			p.addLine(h.line, h.key, "[%s] is a list: write [[%s]] (double brackets), one such header per %s", h.key, h.key, what)
			edits = append(edits, edit{h.start, h.end, "[[" + h.key + "]]"})
		}
	}
	if len(edits) == 0 {
		return doc
	}
	// Edits never overlap: durations are values, headers are headers.
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out := make([]byte, 0, len(doc)+2*len(edits))
	last := 0
	for _, e := range edits {
		out = append(out, doc[last:e.start]...)
		out = append(out, e.text...)
		last = e.end
	}
	return append(out, doc[last:]...)
}

// durationPath is the path of d's key, with the index of the [[list]]
// entry it is in.
func durationPath(headers []header, d bareDuration) string {
	table := ""
	count := map[string]int{}
	for _, h := range headers {
		if h.start > d.start {
			break
		}
		table = h.key
		if h.array {
			count[h.key]++
			table += "[" + strconv.Itoa(count[h.key]-1) + "]"
		}
	}
	return join(table, strings.Join(splitKey(d.key), "."))
}

// maxNesting bounds how deep a document nests: arrays and inline tables
// inside each other, and the parts of one key (a.b.c). crmon's own keys
// nest four deep; the bound leaves room for any sane file.
const maxNesting = 32

// measure scans doc once, allocating nothing, for what would make parsing
// it costly: the line where it first nests deeper than maxNesting (0 if it
// does not), and how many keys, table headers and list items it has. The
// TOML parser recurses at each level of a value and keeps every prefix of
// a dotted key, so a 20 KB file nested ten thousand deep cost over a
// hundred megabytes; a 1 MB file of a hundred thousand keys, about as
// much and seconds. Neither is a configuration, and both are refused on
// this count before they are parsed.
func measure(doc []byte) (deepLine, items int) {
	var open [maxNesting + 1]byte // the brackets open around i
	line, depth, parts := 1, 0, 0
	for i := 0; i < len(doc); {
		switch c := doc[i]; c {
		case '\n':
			line++
			parts = 0
			i++
		case '#':
			for i < len(doc) && doc[i] != '\n' {
				i++
			}
		case '"', '\'':
			end, nl := skipString(doc, i)
			line += nl
			i = end
		case '[', '{':
			if depth == 0 && c == '[' {
				items++ // a table header, or a list's first item
			}
			if depth == maxNesting {
				return line, items
			}
			open[depth] = c
			depth++
			parts = 0
			i++
		case ']', '}':
			depth = max(depth-1, 0)
			parts = 0
			i++
		case '=':
			items++
			parts = 0
			i++
		case ',':
			if depth > 0 && open[depth-1] == '[' {
				items++
			}
			parts = 0
			i++
		case '.':
			parts++
			if parts > maxNesting {
				return line, items
			}
			i++
		default:
			i++
		}
	}
	return 0, items
}

// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/crmon-dev/crmon/internal/suggest"
	"github.com/crmon-dev/crmon/internal/userfile"
)

const (
	rootKey        = "cleanroom"
	monitoringPath = rootKey + ".monitoring"
)

// file is the document's shape: everything under [cleanroom].
type file struct {
	Cleanroom *Config `toml:"cleanroom"`
}

// ParseOptions says where a document's secrets come from.
type ParseOptions struct {
	// Dir is what relative <key>_file paths are relative to; Load sets it
	// to the config file's directory.
	Dir string
	// LookupEnv reads <key>_env variables; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads the TOML file at path over Default(), resolves its secrets and
// validates the result. An empty path is no file: the defaults.
//
// The error lists every problem found, each as "file:line: key = value:
// what is wrong; what to write", joined with errors.Join.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	doc, err := userfile.Read(path, maxDocBytes)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, doc, ParseOptions{Dir: filepath.Dir(path), LookupEnv: os.LookupEnv})
}

// Parse is Load for a document already in memory; name is how errors name
// it.
func Parse(name string, doc []byte, opts ParseOptions) (*Config, error) {
	src := &source{name: name}
	p := &problems{src: src}
	doc, ok := read(p, src, doc)
	if !ok {
		return nil, p.err()
	}
	cfg, ok := decode(p, src, doc)
	if !ok {
		return nil, p.err()
	}
	cfg.src = src
	cfg.applyEntryDefaults()
	cfg.canonicalize()
	cfg.resolveSecrets(p, opts)
	cfg.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// read checks doc's size and nesting, reports and repairs the ADR
// examples' mistakes, and indexes the keys into src; ok is false when doc
// is not TOML or too big to read further.
func read(p *problems, src *source, doc []byte) (_ []byte, ok bool) {
	if len(doc) > maxDocBytes {
		p.add("", "the file is %d bytes, more than crmon reads (%d); a full configuration is a few KiB, so is this the right file?", len(doc), maxDocBytes)
		return nil, false
	}
	// A UTF-8 byte order mark, which some editors write, is not TOML but
	// says nothing: drop it.
	doc = bytes.TrimPrefix(doc, []byte("\uFEFF"))
	deep, items := measure(doc)
	if deep > 0 {
		p.addLine(deep, "", "values or keys nest more than %d deep here; crmon's own keys nest 6 deep, so is this the right file?", maxNesting)
		return nil, false
	}
	if items > maxKeys {
		p.add("", "the file has more than %d keys, tables and list items, more than crmon reads; a full configuration has about 150, so is this the right file?", maxKeys)
		return nil, false
	}
	doc = prescan(p, doc)
	if err := index(src, doc); err != nil {
		var perr *unstable.ParserError
		if errors.As(err, &perr) {
			line := lineOfOffset(doc, perr.Highlight)
			p.addLine(line, joinKey(perr.Key), "%s", syntaxMessage(doc, line, perr))
		} else {
			p.add("", "%v", err)
		}
		return nil, false
	}
	if len(src.lines) > maxKeys {
		p.add("", "the file has %d keys and tables, more than crmon reads (%d); a full configuration has about 150, so is this the right file?", len(src.lines), maxKeys)
		return nil, false
	}
	return doc, true
}

// Bounds on what Parse reads. go-toml checks each key against its
// siblings one by one, so decoding is quadratic in the keys of a table;
// these keep a wrong or hostile file to milliseconds.
const (
	maxDocBytes     = 1 << 20
	maxKeys         = 4096
	maxDecodeErrors = 50 // bad values reported before giving up
)

// decode decodes doc over Default(). go-toml stops at the first value it
// cannot decode; decode reports it, blanks that key/value (keeping the
// lines) and decodes again, so that one run reports every bad value.
//
// Unknown keys are found from the index rather than go-toml's strict mode,
// which locates each one by scanning the document from its start: a file
// of many unknown keys took minutes.
func decode(p *problems, src *source, doc []byte) (*Config, bool) {
	doc, ok := typecheck(p, src, doc)
	if !ok {
		return nil, false
	}
	cfg, doc, ok := decodeAll(p, src, doc)
	if ok {
		unknownKeys(p, src)
		cfg.ResourceLimits.parseLimits(p, src, doc)
	}
	return cfg, ok
}

// typecheck compares every value in the file with the type of its key and
// reports each one that cannot be of that type, all in one run: go-toml
// stops at the first, and a value it hands to Duration's UnmarshalText
// (retention_period = true) fails with no position at all. It returns doc
// with those values blanked (lines kept), so that decoding reads the rest.
func typecheck(p *problems, src *source, doc []byte) (_ []byte, ok bool) {
	var out []byte
	headerBad := false
	for _, sh := range src.shapes {
		if sh.path == limitsPath || strings.HasPrefix(sh.path, limitsPath+".") {
			// Untyped here: parseLimits checks them.
			continue
		}
		if p.badUnder(sh.path) || p.hasKey(sh.path) {
			continue
		}
		t, ok := fieldType(splitPath(sh.path))
		if !ok {
			// a.b.c where a or b is known and not a table: say that;
			// any other unknown key is for unknownKeys.
			if msg := scalarAsTable(sh); msg != "" {
				p.addLine(sh.line, sh.path, "%s", msg)
				p.markBad(sh.path)
				if sh.key == "" {
					headerBad = true
				} else if kv, ok := src.kvAt(sh.line); ok {
					if out == nil {
						out = bytes.Clone(doc)
					}
					blank(out, kv)
				}
			}
			continue
		}
		msg := typeProblem(t, sh)
		if msg == "" {
			continue
		}
		p.addLine(sh.line, sh.path, "%s", msg)
		if sh.kind == unstable.Table || sh.kind == unstable.ArrayTable {
			// A header cannot be blanked like a value: what follows
			// it would land in the table above. Report it, with the
			// other values, and decode no further.
			p.markBad(sh.path)
			headerBad = true
			continue
		}
		p.markBad(sh.path)
		if kv, ok := src.kvAt(sh.line); ok {
			if out == nil {
				out = bytes.Clone(doc)
			}
			blank(out, kv)
		}
	}
	if headerBad {
		return nil, false
	}
	if out == nil {
		return doc, true
	}
	return out, true
}

// scalarAsTable says, for a key or header whose path runs through a key
// that takes a value and not a table (store.path.x = 1, where path is a
// string), that that key is not a table; or is "".
func scalarAsTable(sh shape) string {
	key := splitPath(sh.path)
	for i := 1; i < len(key); i++ {
		t, ok := fieldType(key[:i])
		if !ok {
			return ""
		}
		if !isTable(t) {
			what := clip(sh.key) + " = " + clip(shown(key, sh.value))
			if sh.key == "" {
				what = "[" + clip(sh.path) + "]"
			}
			return fmt.Sprintf("%s: %s takes %s, not a table", what, key[i-1], describe(t))
		}
	}
	return ""
}

// isTable reports whether a key of type t is written as a table (or a
// list of them).
func isTable(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

// blank replaces kv's text in doc with spaces, keeping its lines.
func blank(doc []byte, kv kvSpan) {
	for i := kv.start; i < kv.end; i++ {
		if doc[i] != '\n' {
			doc[i] = ' '
		}
	}
}

// typeProblem says what is wrong with sh's value for a key of type t, or
// is "".
func typeProblem(t reflect.Type, sh shape) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if sh.kind == unstable.Table || sh.kind == unstable.ArrayTable {
		return headerProblem(t, sh)
	}
	value := clip(shown(splitPath(sh.path), sh.value))
	if t == reflect.TypeFor[Duration]() {
		switch sh.kind {
		case unstable.String:
			if _, err := ParseDuration(sh.str); err != nil {
				return fmt.Sprintf("%s = %s: %v", sh.key, value, err)
			}
			return ""
		case unstable.Integer, unstable.Float:
			return fmt.Sprintf("%s = %s: durations are strings with a unit; write %s = \"%ss\" (or \"m\", \"h\", \"d\")", sh.key, value, sh.key, value)
		}
		return fmt.Sprintf("%s = %s: durations are strings with a unit; e.g. %s = \"30s\"", sh.key, value, sh.key)
	}
	if accepts(t, sh) {
		return ""
	}
	return wrongType(t, sh.key, value, lastKey(sh.path))
}

// headerProblem says what is wrong with a [table] or [[array]] header for
// a key of type t, or is "".
func headerProblem(t reflect.Type, sh shape) string {
	name := lastKey(sh.path)
	key := sh.path
	if sh.kind == unstable.ArrayTable {
		key = key[:strings.LastIndexByte(key, '[')]
	}
	h := "[" + clip(key) + "]"
	if sh.kind == unstable.ArrayTable {
		h = "[" + h + "]"
	}
	list := t.Kind() == reflect.Slice
	switch {
	case isTable(t) && list == (sh.kind == unstable.ArrayTable):
		return ""
	case isTable(t) && list:
		return fmt.Sprintf("%s: %s is a list of tables; write [%s] (double brackets)", h, name, h)
	case isTable(t):
		return fmt.Sprintf("%s: %s is one table, not a list; write [%s] (single brackets)", h, name, clip(key))
	}
	if ex := example(t, name); ex != "" {
		return fmt.Sprintf("%s: %s takes %s, not a table; e.g. %s", h, name, describe(t), ex)
	}
	return fmt.Sprintf("%s: %s takes %s, not a table", h, name, describe(t))
}

// accepts reports whether a value of sh's kind decodes into t.
func accepts(t reflect.Type, sh shape) bool {
	switch sh.kind {
	case unstable.String:
		return t.Kind() == reflect.String
	case unstable.Bool:
		return t.Kind() == reflect.Bool
	case unstable.Integer:
		return t.Kind() == reflect.Int || t.Kind() == reflect.Int64 || t.Kind() == reflect.Float64
	case unstable.Float:
		return t.Kind() == reflect.Float64
	case unstable.InlineTable:
		return t.Kind() == reflect.Map || t.Kind() == reflect.Struct
	case unstable.Array:
		if t.Kind() != reflect.Slice {
			return false
		}
		want := unstable.String
		if e := t.Elem(); e.Kind() == reflect.Struct {
			want = unstable.InlineTable
		}
		for _, k := range sh.elems {
			if k != want {
				return false
			}
		}
		return true
	}
	return false
}

// decodeAll also returns the document as it decoded it, bad values
// blanked.
func decodeAll(p *problems, src *source, doc []byte) (*Config, []byte, bool) {
	doc = bytes.Clone(doc)
	for range maxDecodeErrors {
		cfg := Default()
		err := toml.NewDecoder(bytes.NewReader(doc)).Decode(&file{Cleanroom: cfg})
		if err == nil {
			return cfg, doc, true
		}
		var de *toml.DecodeError
		if !errors.As(err, &de) {
			p.add("", "%v", err)
			return nil, nil, false
		}
		row, _ := de.Position()
		kv, found := src.kvAt(row)
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if strings.Contains(msg, "already exists") || strings.Contains(msg, "already defined") {
			duplicate(p, src, row, kv, found, de)
		} else if !found || len(de.Key()) == 0 {
			p.addLine(row, joinKey(de.Key()), "%s", msg)
			return nil, nil, false
		} else if !p.hasLine(row) {
			// A line the pre-scan already explained (30s unquoted) needs
			// no second message about what the repair made of it.
			badValue(p, row, kv, de)
		}
		if !found {
			return nil, nil, false
		}
		p.markBad(kv.path)
		blank(doc, kv)
	}
	p.add("", "too many errors; fix these first")
	return nil, nil, false
}

// duplicate explains a table or key given twice.
func duplicate(p *problems, src *source, row int, kv kvSpan, isKV bool, de *toml.DecodeError) {
	if isKV {
		first := src.lines[kv.path]
		p.addLine(row, kv.path, "%s = %s: %s is already set on line %d; TOML allows each key once, so delete one", kv.key, clip(shown(splitPath(kv.path), kv.value)), kv.key, first)
		return
	}
	key := joinKey(de.Key())
	if first := src.lines[key]; first > 0 && first != row {
		p.addLine(row, key, "[%s] appears twice (first on line %d); TOML allows each table once, so merge the two", key, first)
		return
	}
	p.addLine(row, key, "[%s]: %s; TOML allows each table once", key, strings.TrimPrefix(de.Error(), "toml: "))
}

// splitPath turns "a.b[0].c" into the key a, b, c.
func splitPath(path string) []string {
	parts := strings.Split(path, ".")
	for i, k := range parts {
		if j := strings.IndexByte(k, '['); j >= 0 {
			parts[i] = k[:j]
		}
	}
	return parts
}

// badValue explains a value of the wrong type.
func badValue(p *problems, row int, kv kvSpan, de *toml.DecodeError) {
	key := []string(de.Key())
	t, ok := fieldType(key)
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	// Never echo a secret, even one of the wrong type.
	if v := shown(splitPath(kv.path), kv.value); v != kv.value {
		kv.value = v
	} else {
		kv.value = shown(key, kv.value)
	}
	kv.value = clip(kv.value)
	if !ok {
		p.addLine(row, kv.path, "%s = %s: %s", kv.key, kv.value, msg)
		return
	}
	name := key[len(key)-1]
	switch {
	case t == reflect.TypeFor[Duration]():
		if strings.HasPrefix(kv.value, `"`) || strings.HasPrefix(kv.value, `'`) {
			p.addLine(row, kv.path, "%s = %s: %s", kv.key, kv.value, msg)
		} else {
			p.addLine(row, kv.path, "%s = %s: durations are strings with a unit; write %s = \"%ss\" (or \"m\", \"h\", \"d\")", kv.key, kv.value, kv.key, kv.value)
		}
	default:
		p.addLine(row, kv.path, "%s", wrongType(t, kv.key, kv.value, name))
	}
}

// wrongType says that key, written as value, takes a value of type t, and
// how to write one.
func wrongType(t reflect.Type, key, value, name string) string {
	fix := ""
	if s, err := strconv.Unquote(value); err == nil {
		// A quoted number or boolean: suggest it unquoted.
		switch t.Kind() {
		case reflect.Int, reflect.Int64:
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				fix = fmt.Sprintf("; write %s = %s", key, s)
			}
		case reflect.Float64:
			if _, err := strconv.ParseFloat(s, 64); err == nil {
				fix = fmt.Sprintf("; write %s = %s", key, s)
			}
		case reflect.Bool:
			if s == "true" || s == "false" {
				fix = fmt.Sprintf("; write %s = %s", key, s)
			}
		}
	}
	if fix == "" {
		if ex := example(t, name); ex != "" {
			fix = "; e.g. " + ex
		}
	}
	return fmt.Sprintf("%s = %s: %s takes %s%s", key, value, name, describe(t), fix)
}

// unknownKeys reports every key of the file that crmon does not know,
// with the nearest known key as a suggestion. A table that is unknown is
// reported once, not with each of its keys.
func unknownKeys(p *problems, src *source) {
	paths := make([]string, 0, len(src.lines))
	for path := range src.lines {
		paths = append(paths, path)
	}
	// Shorter first, so that a table comes before its keys.
	sort.Slice(paths, func(i, j int) bool {
		if len(paths[i]) != len(paths[j]) {
			return len(paths[i]) < len(paths[j])
		}
		return paths[i] < paths[j]
	})
	reported := make(map[string]bool)
	for _, path := range paths {
		if strings.HasPrefix(path, limitsPath+".") {
			// pkg/session's keys: parseLimits reports them.
			continue
		}
		key := splitPath(path)
		if _, ok := fieldType(key); ok {
			continue
		}
		if p.badUnder(path) {
			// Inside a value of the wrong type: reported as that.
			continue
		}
		under := false
		for parent := parentPath(path); parent != ""; parent = parentPath(parent) {
			if reported[parent] {
				under = true
				break
			}
		}
		if under {
			continue
		}
		reported[path] = true
		// The first part that is unknown is what the message is about.
		n := len(key)
		for n > 1 {
			if _, ok := fieldType(key[:n-1]); ok {
				break
			}
			n--
		}
		unknownKey(p, src.lines[path], path, key[:n])
	}
}

// unknownKey explains one unknown key, suggesting the nearest known one.
func unknownKey(p *problems, line int, path string, key []string) {
	name := key[len(key)-1]
	parent := strings.Join(key[:len(key)-1], ".")
	where := "at the top level"
	if parent != "" {
		where = "in [" + parent + "]"
	}
	known := knownKeys(key[:len(key)-1])
	switch s, ok := suggest.Nearest(name, known); {
	case ok:
		p.addLine(line, path, "unknown key %s %s; did you mean %s?", clip(name), clip(where), s)
	case len(known) > 0:
		p.addLine(line, path, "unknown key %s %s; the keys there are %s", clip(name), clip(where), strings.Join(known, ", "))
	default:
		p.addLine(line, path, "unknown key %s %s", clip(name), clip(where))
	}
}

// fieldType is the Go type that the TOML key decodes into.
func fieldType(key []string) (reflect.Type, bool) {
	t := reflect.TypeFor[file]()
	for _, k := range key {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, k)
			if !ok {
				return nil, false
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return nil, false
		}
	}
	return t, true
}

// knownKeys lists the keys of the table at key, sorted.
func knownKeys(key []string) []string {
	t, ok := fieldType(key)
	if !ok {
		return nil
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		if n := tomlName(t.Field(i)); n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); tomlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	n, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if n == "-" {
		return ""
	}
	return n
}

// describe says what a Go type is in TOML terms.
func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return `a duration string such as "30s"`
	case t.Kind() == reflect.String:
		return "a string in quotes"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "a whole number"
	case t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of strings"
	case t.Kind() == reflect.Slice:
		return "a list of tables"
	case t.Kind() == reflect.Map, t.Kind() == reflect.Struct:
		return "a table"
	}
	return t.String()
}

// example is a well-formed value for a key of type t.
func example(t reflect.Type, name string) string {
	switch {
	case t.Kind() == reflect.String:
		return name + ` = "…"`
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return name + ` = ["a", "b"]`
	case t.Kind() == reflect.Map:
		return name + ` = { key = "value" }`
	}
	return ""
}

func joinKey(k []string) string { return strings.Join(k, ".") }

// lineOfOffset is the line of b, a subslice of doc.
func lineOfOffset(doc, b []byte) int {
	if len(b) == 0 && cap(b) == 0 {
		return 0
	}
	off := cap(doc) - cap(b)
	if off < 0 || off > len(doc) {
		return 0
	}
	return bytes.Count(doc[:off], []byte("\n")) + 1
}

// syntaxMessage is go-toml's parse error after the text of its line.
func syntaxMessage(doc []byte, line int, perr *unstable.ParserError) string {
	if line > 0 {
		if text := strings.TrimSpace(lineText(doc, line)); text != "" {
			return fmt.Sprintf("%s: %s; this is not valid TOML", clip(maskLine(text)), perr.Message)
		}
	}
	return perr.Message + "; this is not valid TOML"
}

// lineText is line n (1-based) of doc.
func lineText(doc []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(doc, '\n')
		if j < 0 {
			return ""
		}
		doc = doc[j+1:]
	}
	if j := bytes.IndexByte(doc, '\n'); j >= 0 {
		doc = doc[:j]
	}
	return string(doc)
}

// applyEntryDefaults gives each list entry the defaults of the keys it
// leaves out: go-toml starts new entries from zero values.
func (c *Config) applyEntryDefaults() {
	for i := range c.Monitoring.Exporters {
		fillDefaults(c.src, fmt.Sprintf("%s.exporters[%d]", monitoringPath, i), &c.Monitoring.Exporters[i], defaultExporter())
	}
	for i := range c.Monitoring.Alerting.AlertChannels {
		fillDefaults(c.src, fmt.Sprintf("%s.alerting.alert_channels[%d]", monitoringPath, i), &c.Monitoring.Alerting.AlertChannels[i], defaultChannel())
	}
	for i := range c.Monitoring.Alerting.AlertRules {
		fillDefaults(c.src, fmt.Sprintf("%s.alerting.alert_rules[%d]", monitoringPath, i), &c.Monitoring.Alerting.AlertRules[i], defaultRule())
	}
}

// fillDefaults copies def's fields into *dst for the keys the file does not
// set at path.
func fillDefaults[T any](src *source, path string, dst *T, def T) {
	dv := reflect.ValueOf(dst).Elem()
	df := reflect.ValueOf(def)
	for i := range dv.NumField() {
		name := tomlName(dv.Type().Field(i))
		if name == "" || src.has(path+"."+name) {
			continue
		}
		dv.Field(i).Set(df.Field(i))
	}
}

// canonicalize spells enumerations the one way the rest of crmon compares
// them, and applies the defaults that depend on a type.
func (c *Config) canonicalize() {
	m := &c.Monitoring
	m.EBPF.Mode = strings.ToLower(strings.TrimSpace(m.EBPF.Mode))
	for i := range m.Exporters {
		e := &m.Exporters[i]
		for _, t := range ExporterTypes {
			if strings.EqualFold(strings.TrimSpace(e.ExporterType), t) {
				e.ExporterType = t
			}
		}
		p := fmt.Sprintf("%s.exporters[%d].", monitoringPath, i)
		switch e.ExporterType {
		case ExporterInfluxDB:
			if !c.src.has(p + "precision") {
				e.Precision = DefaultInfluxPrecision
			}
		case ExporterElasticsearch:
			if !c.src.has(p + "index") {
				e.Index = DefaultElasticIndex
			}
		case ExporterPrometheus:
			if !c.src.has(p + "remote_write_version") {
				e.RemoteWriteVersion = RemoteWriteAuto
			}
		case ExporterCustom:
			if !c.src.has(p + "format") {
				e.Format = CustomJSON
			}
		}
	}
	for i := range m.Alerting.AlertChannels {
		ch := &m.Alerting.AlertChannels[i]
		ch.Type = strings.ToLower(strings.TrimSpace(ch.Type))
		if ch.Type == ChannelEmail && !c.src.has(fmt.Sprintf("%s.alerting.alert_channels[%d].smtp_port", monitoringPath, i)) {
			ch.SMTPPort = DefaultSMTPPort
		}
	}
	for i := range m.Alerting.AlertRules {
		r := &m.Alerting.AlertRules[i]
		r.Resource = strings.ToLower(strings.TrimSpace(r.Resource))
		r.Severity = strings.ToLower(strings.TrimSpace(r.Severity))
		r.Condition = strings.TrimSpace(r.Condition)
	}
}

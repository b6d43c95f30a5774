// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/crmon-dev/crmon/internal/suggest"
	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/session"
)

// [cleanroom.resource_limits] belongs to pkg/session: crmon exec --limits
// reads the same table with session.ParseLimitsTOML. The keys, their units
// and their values are session's (session.LimitNames,
// session.LimitFromTOML), so that one file serves both and a key that one
// accepts the other accepts too; this file only adds lines to the errors.

const (
	limitsPath     = rootKey + ".resource_limits"
	containersKey  = "containers"
	containersPath = limitsPath + "." + containersKey
)

// LoadLimits reads [cleanroom.resource_limits] from the file at path, for
// crmon exec --limits and crmon session stop --limits. The file is read as
// Load reads it (a regular file, at most 1 MiB) and the table's problems
// are reported as Load reports them; the file's other tables are not
// looked at, so the agent's own config file serves as it is, secrets that
// only the agent can read included.
func LoadLimits(path string) (session.Limits, error) {
	doc, err := userfile.Read(path, maxDocBytes)
	if err != nil {
		return nil, fmt.Errorf("reading limits: %w", err)
	}
	return ParseLimits(path, doc)
}

// ParseLimits is LoadLimits for a document already in memory; name is how
// errors name it.
func ParseLimits(name string, doc []byte) (session.Limits, error) {
	src := &source{name: name}
	p := &problems{src: src}
	doc, ok := read(p, src, doc)
	if ok {
		var r ResourceLimits
		r.parseLimits(p, src, doc)
		// Problems elsewhere in the file are the agent's to report.
		p.errs = slices.DeleteFunc(p.errs, func(e *Error) bool {
			return e.Key != limitsPath && !strings.HasPrefix(e.Key, limitsPath+".")
		})
		if err := p.err(); err != nil {
			return nil, err
		}
		return r.Limits, nil
	}
	return nil, p.err()
}

// rawLimits is the document as session.ParseLimitsTOML sees it.
type rawLimits struct {
	Cleanroom struct {
		ResourceLimits map[string]any `toml:"resource_limits"`
	} `toml:"cleanroom"`
}

// parseLimits reads [cleanroom.resource_limits] of doc (as decodeAll left
// it: repaired, bad values blanked) into r, reporting each problem at its
// key. A limit with a problem is left out of r.Limits.
func (r *ResourceLimits) parseLimits(p *problems, src *source, doc []byte) {
	var raw rawLimits
	if err := toml.Unmarshal(doc, &raw); err != nil {
		// decodeAll decoded the same document, so this does not happen;
		// if it does, say so rather than drop the limits.
		p.add(limitsPath, "%v", strings.TrimPrefix(err.Error(), "toml: "))
		return
	}
	tbl := raw.Cleanroom.ResourceLimits
	names := session.LimitNames()
	r.Limits = nil
	for _, k := range limitKeys(tbl) {
		if k == containersKey {
			continue
		}
		path := limitsPath + "." + k
		if l, ok := parseLimit(p, src, path, k, tbl[k], "", "["+limitsPath+"]", slices.Concat(names, []string{containersKey}), true); ok {
			r.Limits = append(r.Limits, l)
		}
	}
	if cs, ok := tbl[containersKey]; ok {
		arr, ok := cs.([]any)
		if !ok {
			p.addAt(containersPath, "%s: container limits are a list of tables; write [[%s]] with name = \"GLOB\" and the limits, once per pattern", containersKey, containersPath)
		}
		for i, c := range arr {
			ep := fmt.Sprintf("%s[%d]", containersPath, i)
			ct, ok := c.(map[string]any)
			if !ok {
				p.add(ep, "%s: entry #%d is not a table; write [[%s]] with name = \"GLOB\" and the limits, once per pattern", containersKey, i+1, containersPath)
				continue
			}
			r.Limits = append(r.Limits, parseContainerLimits(p, src, ep, i, ct, names)...)
		}
	}
	r.setHostFields()
}

// parseContainerLimits reads one [[cleanroom.resource_limits.containers]].
func parseContainerLimits(p *problems, src *source, ep string, i int, ct map[string]any, names []string) session.Limits {
	what := fmt.Sprintf("container limit #%d", i+1)
	name, isString := ct["name"].(string)
	switch {
	case ct["name"] == nil:
		p.add(ep+".name", "%s has no name; add name = \"GLOB\", a pattern on container names such as \"db-*\"", what)
	case !isString:
		p.addAt(ep+".name", "name = %s: name takes a string in quotes, a pattern on container names such as \"db-*\" (%s)", rawValue(src, ep+".name", ct["name"]), what)
	case name == "":
		p.addAt(ep+".name", "name = \"\": %s needs a pattern on container names such as \"db-*\"", what)
	}
	globOK := true
	if name != "" {
		what = fmt.Sprintf("container limit %q", name)
		n := len(p.errs)
		globs(p, ep+".name", []string{name}, false)
		globOK = len(p.errs) == n
	}
	var ls session.Limits
	for _, k := range limitKeys(ct) {
		if k == "name" {
			continue
		}
		// Without a valid pattern the entry checks nothing; its keys are
		// still read, so that one run reports all of their problems.
		usable := name != "" && globOK
		l, ok := parseLimit(p, src, ep+"."+k, k, ct[k], name, "[["+containersPath+"]] ("+what+")", slices.Concat([]string{"name"}, names), usable)
		if ok && usable {
			ls = append(ls, l)
		}
	}
	return ls
}

// parseLimit reads one key with session's reader and, if check, checks
// the limit; where and known are the key's table and the keys it takes,
// for the unknown-key message.
func parseLimit(p *problems, src *source, path, key string, v any, container, where string, known []string, check bool) (session.Limit, bool) {
	if !slices.Contains(session.LimitNames(), key) {
		if s, ok := suggest.Nearest(key, known); ok {
			p.addAt(path, "unknown key %s in %s; did you mean %s?", clip(key), where, s)
		} else {
			p.addAt(path, "unknown key %s in %s; the keys there are %s", clip(key), where, strings.Join(known, ", "))
		}
		return session.Limit{}, false
	}
	l, err := session.LimitFromTOML(key, v, container)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), key+": ")
		p.addAt(path, "%s = %s: %s", key, rawValue(src, path, v), msg)
		return session.Limit{}, false
	}
	if !check {
		return l, true
	}
	return l, checkLimit(p, path, l, rawValue(src, path, v))
}

// checkLimit reports what is wrong with l at path, written as value;
// session's Validate is the judge, plus the range of a percentage.
func checkLimit(p *problems, path string, l session.Limit, value string) bool {
	if session.LimitUnit(l.Name) == session.UnitPercent && !(l.Value >= 0 && l.Value <= 100) {
		p.add(path, "%s = %s: must be a percentage, 0-100", l.Name, value)
		return false
	}
	if err := (session.Limits{l}).Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "limit "+l.Name+": ")
		if l.Container != "" && session.LimitUnit(l.Name) == session.UnitPercent {
			msg += "; move it to [" + limitsPath + "]"
		}
		p.add(path, "%s = %s: %s", l.Name, value, msg)
		return false
	}
	return true
}

// validateLimits checks limits set after loading (by the caller); those
// from the file were checked as they were read.
func (r *ResourceLimits) validateLimits(p *problems) {
	for _, l := range r.Limits {
		path := limitsPath + "." + l.Name
		if l.Container != "" {
			path = containersPath
		}
		checkLimit(p, path, l, strconv.FormatFloat(l.Value, 'g', -1, 64))
	}
}

// setHostFields fills the fields that mirror the host limits.
func (r *ResourceLimits) setHostFields() {
	r.MaxCPUUsagePercent, r.MaxMemoryUsagePercent, r.MaxDiskUsagePercent = 0, 0, 0
	for _, l := range r.Limits {
		if l.Container != "" {
			continue
		}
		switch l.Name {
		case "max_cpu_usage_percent":
			r.MaxCPUUsagePercent = l.Value
		case "max_memory_usage_percent":
			r.MaxMemoryUsagePercent = l.Value
		case "max_disk_usage_percent":
			r.MaxDiskUsagePercent = l.Value
		}
	}
}

// limitKeys are m's keys in the order session.ParseLimitsTOML reads them
// (the order of session.LimitNames, then the rest by name), so that Limits
// comes out in the same order as from session.
func limitKeys(m map[string]any) []string {
	names := session.LimitNames()
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(names, a), slices.Index(names, b)
		if ia < 0 {
			ia = len(names)
		}
		if ib < 0 {
			ib = len(names)
		}
		return ia - ib
	})
	return keys
}

// rawValue is the value at path as the file writes it, for a message.
func rawValue(src *source, path string, v any) string {
	if src != nil {
		for _, sh := range src.shapes {
			if sh.path == path {
				return clip(sh.value)
			}
		}
	}
	switch v.(type) {
	case map[string]any:
		return "{ … }"
	case []any:
		return "[ … ]"
	}
	return clip(fmt.Sprint(v))
}

// limitsTable is r.Limits as [cleanroom.resource_limits] for a TOML
// encoder: it loads back to the same Limits.
func (r *ResourceLimits) limitsTable() map[string]any {
	tbl := map[string]any{}
	var entries []map[string]any
	for _, l := range r.Limits {
		v := limitValue(l)
		if l.Container == "" {
			tbl[l.Name] = v
			continue
		}
		// Limits of one pattern go in one entry, as the file had them.
		if n := len(entries); n > 0 && entries[n-1]["name"] == l.Container {
			if _, dup := entries[n-1][l.Name]; !dup {
				entries[n-1][l.Name] = v
				continue
			}
		}
		entries = append(entries, map[string]any{"name": l.Container, l.Name: v})
	}
	if len(entries) > 0 {
		tbl[containersKey] = entries
	}
	return tbl
}

// limitValue is l's value as TOML writes it: byte counts as integers.
func limitValue(l session.Limit) any {
	if session.LimitUnit(l.Name) == session.UnitBytes && l.Value == math.Trunc(l.Value) && math.Abs(l.Value) < 1<<62 {
		return int64(l.Value)
	}
	return l.Value
}

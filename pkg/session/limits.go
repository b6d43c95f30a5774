// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Units of limits and their values.
const (
	UnitSeconds = "seconds"
	UnitBytes   = "bytes"
	UnitPercent = "percent"
)

// Scopes of a limit.
const (
	ScopeRun  = "run"
	ScopeHost = "host"
	// ScopeContainers is the run scope of a report whose totals sum its
	// containers (Report.TotalsOf).
	ScopeContainers = "containers"
	// ScopeContainerPrefix prefixes a container's name in LimitResult.Scope.
	ScopeContainerPrefix = "container:"
)

// Limit is one budget. Container, when set, is a glob (path.Match syntax:
// "db-*") on container names; the limit then applies to every matching
// container on its own. Host limits take no Container.
type Limit struct {
	Name      string  `json:"name"`
	Container string  `json:"container,omitempty"`
	Value     float64 `json:"value"`
}

// Limits is a set of budgets, checked in order.
type Limits []Limit

type limitDef struct {
	name string
	unit string
	host bool
	// field is the JSON name of the figure the limit bounds: a Measures
	// field, or for host limits a HostPeaks one.
	field string
	get   func(*Report, *Measures) float64
}

// limitDefs lists every limit crmon knows, in the order reports list them.
var limitDefs = []limitDef{
	{"max_cpu_usage_percent", UnitPercent, true, "cpu_usage_percent", func(r *Report, _ *Measures) float64 { return r.Host.CPUUsagePercent }},
	{"max_memory_usage_percent", UnitPercent, true, "memory_usage_percent", func(r *Report, _ *Measures) float64 { return r.Host.MemoryUsagePercent }},
	{"max_disk_usage_percent", UnitPercent, true, "disk_usage_percent", func(r *Report, _ *Measures) float64 { return r.Host.DiskUsagePercent }},
	{"cpu_seconds", UnitSeconds, false, "cpu_seconds", func(_ *Report, m *Measures) float64 { return m.CPUSeconds }},
	{"peak_memory_bytes", UnitBytes, false, "peak_memory_bytes", func(_ *Report, m *Measures) float64 { return float64(m.PeakMemoryBytes) }},
	{"block_read_bytes", UnitBytes, false, "block_read_bytes", func(_ *Report, m *Measures) float64 { return float64(m.BlockReadBytes) }},
	{"block_write_bytes", UnitBytes, false, "block_write_bytes", func(_ *Report, m *Measures) float64 { return float64(m.BlockWriteBytes) }},
	{"net_rx_bytes", UnitBytes, false, "net_rx_bytes", func(_ *Report, m *Measures) float64 { return float64(m.NetRxBytes) }},
	{"net_tx_bytes", UnitBytes, false, "net_tx_bytes", func(_ *Report, m *Measures) float64 { return float64(m.NetTxBytes) }},
	{"runqueue_wait_p99_seconds", UnitSeconds, false, "runqueue_wait_p99_seconds", func(_ *Report, m *Measures) float64 { return m.RunqueueWaitP99Seconds }},
}

func findDef(name string) (limitDef, bool) {
	for _, d := range limitDefs {
		if d.name == name {
			return d, true
		}
	}
	return limitDef{}, false
}

// LimitNames lists every valid limit name.
func LimitNames() []string {
	names := make([]string, len(limitDefs))
	for i, d := range limitDefs {
		names[i] = d.name
	}
	return names
}

// LimitUnit returns the unit of the named limit, "" when unknown.
func LimitUnit(name string) string {
	d, _ := findDef(name)
	return d.unit
}

func unknownLimit(name string) error {
	return fmt.Errorf("unknown limit %q: valid limits are %s", name, strings.Join(LimitNames(), ", "))
}

// maxLimit is the largest value of a limit in each unit: a byte count
// that a measure (a uint64) can hold and a float64 can say exactly (8 EiB),
// a percentage, and a century of seconds.
var maxLimit = map[string]float64{
	UnitBytes:   1 << 63,
	UnitSeconds: 100 * 365 * 24 * 3600,
	UnitPercent: 100,
}

var limitRange = map[string]string{
	UnitBytes:   "byte limits are from 0 to 9223372036854775808 (8 EiB)",
	UnitSeconds: "limits in seconds are from 0 to 3153600000 (100 years)",
	UnitPercent: "percentages are from 0 to 100",
}

// Validate returns every problem of ls at once.
func (ls Limits) Validate() error {
	var errs []error
	for _, l := range ls {
		d, ok := findDef(l.Name)
		switch {
		case !ok:
			errs = append(errs, unknownLimit(l.Name))
		case d.host && l.Container != "":
			errs = append(errs, fmt.Errorf("limit %s is host-wide and cannot be set per container (%q)", l.Name, l.Container))
		case l.Value < 0 || math.IsNaN(l.Value) || math.IsInf(l.Value, 0):
			errs = append(errs, fmt.Errorf("limit %s: value %v must be a finite number >= 0", l.Name, l.Value))
		case l.Value > maxLimit[d.unit]:
			errs = append(errs, fmt.Errorf("limit %s: value %v is out of range; %s", l.Name, l.Value, limitRange[d.unit]))
		}
		if l.Container != "" {
			if _, err := path.Match(l.Container, ""); err != nil {
				errs = append(errs, fmt.Errorf("limit %s: bad container pattern %q: %w", l.Name, l.Container, err))
			}
		}
	}
	return errors.Join(errs...)
}

// LimitError is one limit exceeded, ADR-006's
// resource_limit_exceeded(resource, limit, actual).
type LimitError struct {
	Result LimitResult
}

func (e *LimitError) Error() string {
	r := e.Result
	return fmt.Sprintf("resource limit exceeded: %s (%s): limit %s, actual %s",
		r.Name, r.Scope, FormatValue(r.Unit, r.Limit), FormatValue(r.Unit, r.Actual))
}

// NotMeasuredError is a limit on a figure nothing measured: the run
// cannot be said to have held it.
type NotMeasuredError struct {
	Result LimitResult
}

func (e *NotMeasuredError) Error() string {
	r := e.Result
	return fmt.Sprintf("resource limit not checked: %s (%s): %s", r.Name, r.Scope, r.Reason)
}

// Unmeasured says what a limit on a figure that was not measured does.
type Unmeasured string

const (
	// UnmeasuredError (the default, also as "") fails the check.
	UnmeasuredError Unmeasured = "error"
	// UnmeasuredSkip records the limit as skipped.
	UnmeasuredSkip Unmeasured = "skip"
)

// ParseUnmeasured reads an Unmeasured policy: "error" or "skip".
func ParseUnmeasured(s string) (Unmeasured, error) {
	switch u := Unmeasured(s); u {
	case UnmeasuredError, UnmeasuredSkip:
		return u, nil
	case "":
		return UnmeasuredError, nil
	}
	return "", fmt.Errorf("unmeasured %q: want error or skip", s)
}

// Effective returns ls with each limit given more than once for the same
// name and container pattern (a file's, then a flag's) kept once, where it
// first appeared, with its last value: later limits override earlier
// ones.
func (ls Limits) Effective() Limits {
	type key struct{ name, container string }
	at := map[key]int{}
	var out Limits
	for _, l := range ls {
		k := key{l.Name, l.Container}
		if i, ok := at[k]; ok {
			out[i] = l
			continue
		}
		at[k] = len(out)
		out = append(out, l)
	}
	return out
}

// notMeasuredReason says why d's figure has no value in r.
func notMeasuredReason(r *Report, d limitDef) string {
	src := "none"
	if len(r.Sources) > 0 {
		src = strings.Join(r.Sources, " + ")
	}
	from := "the eBPF probes"
	switch {
	case d.host:
		from = "the host's samples (/proc/stat, /proc/meminfo, statfs)"
	case d.field == "peak_memory_bytes":
		from = "the cgroup's memory files"
	}
	return fmt.Sprintf("no source measured %s here: it comes from %s (this report's sources: %s)", d.field, from, src)
}

// Evaluate checks r against ls (see Effective) and returns one result per
// limit and scope: run and host limits once, container limits once per
// matching container, or once as skipped when no container matched. A
// limit on a figure that was not measured is StatusNotMeasured, or
// StatusSkipped when unmeasured is UnmeasuredSkip.
func (r *Report) Evaluate(ls Limits, unmeasured Unmeasured) []LimitResult {
	runScope := ScopeRun
	if r.TotalsOf == TotalsContainers {
		runScope = ScopeContainers
	}
	var res []LimitResult
	for _, l := range ls.Effective() {
		d, ok := findDef(l.Name)
		if !ok {
			continue
		}
		add := func(scope string, m *Measures) {
			lr := LimitResult{Name: l.Name, Scope: scope, Pattern: l.Container, Limit: l.Value, Unit: d.unit}
			switch {
			case m != nil && !m.Measured(d.field), m == nil && !r.Host.Measured(d.field):
				lr.Status, lr.Reason = StatusNotMeasured, notMeasuredReason(r, d)
				if unmeasured == UnmeasuredSkip {
					lr.Status = StatusSkipped
				}
			default:
				lr.Actual = d.get(r, m)
				lr.OK = lr.Actual <= l.Value
				lr.Status = StatusExceeded
				if lr.OK {
					lr.Status = StatusOK
				}
			}
			res = append(res, lr)
		}
		switch {
		case d.host:
			add(ScopeHost, nil)
		case l.Container == "":
			add(runScope, &r.Totals)
		default:
			matched := false
			for i := range r.Containers {
				c := &r.Containers[i]
				if ok, _ := path.Match(l.Container, strings.TrimPrefix(c.Name, "/")); ok {
					add(ScopeContainerPrefix+c.Name, &c.Measures)
					matched = true
				}
			}
			if !matched {
				res = append(res, LimitResult{
					Name: l.Name, Scope: ScopeContainerPrefix + l.Container, Pattern: l.Container,
					Limit: l.Value, Unit: d.unit, Status: StatusSkipped,
					Reason: fmt.Sprintf("no container of the run matched %q", l.Container),
				})
			}
		}
	}
	return res
}

// Check evaluates ls, records the results in r.Limits and returns nil when
// every limit holds, or an error joining one *LimitError per exceeded
// limit and one *NotMeasuredError per limit on a figure that was not
// measured (unless unmeasured is UnmeasuredSkip). Unknown limit names are
// reported by ls.Validate, which Check runs first.
func (r *Report) Check(ls Limits, unmeasured Unmeasured) error {
	if err := ls.Validate(); err != nil {
		return err
	}
	if _, err := ParseUnmeasured(string(unmeasured)); err != nil {
		return err
	}
	r.Limits = r.Evaluate(ls, unmeasured)
	var errs []error
	for _, lr := range r.Limits {
		switch lr.Status {
		case StatusExceeded:
			errs = append(errs, &LimitError{Result: lr})
		case StatusNotMeasured:
			errs = append(errs, &NotMeasuredError{Result: lr})
		}
	}
	return errors.Join(errs...)
}

// Exceeded reports whether any recorded limit result failed: exceeded,
// or not measured.
func (r *Report) Exceeded() bool {
	for _, lr := range r.Limits {
		if lr.Status == StatusExceeded || lr.Status == StatusNotMeasured {
			return true
		}
	}
	return false
}

// ParseLimitFlag parses one --limit flag: "NAME=VALUE" for the run or the
// host, "container:GLOB:NAME=VALUE" for every container whose name matches
// GLOB. Its errors do not repeat s: the caller names the flag and its
// value.
func ParseLimitFlag(s string) (Limit, error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok {
		return Limit{}, errors.New("want NAME=VALUE or container:PATTERN:NAME=VALUE")
	}
	var l Limit
	l.Name = strings.TrimSpace(key)
	if rest, ok := strings.CutPrefix(l.Name, ScopeContainerPrefix); ok {
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return Limit{}, errors.New("want container:PATTERN:NAME=VALUE")
		}
		l.Container, l.Name = rest[:i], rest[i+1:]
	}
	d, ok := findDef(l.Name)
	if !ok {
		return Limit{}, unknownLimit(l.Name)
	}
	v, err := parseValue(d.unit, strings.TrimSpace(val))
	if err != nil {
		return Limit{}, err
	}
	l.Value = v
	if err := (Limits{l}).Validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// ParseLimitsTOML reads limits from a TOML document in ADR-006's shape:
//
//	[cleanroom.resource_limits]
//	max_cpu_usage_percent = 90.0
//	cpu_seconds = "1.5s"
//	peak_memory_bytes = "512MiB"
//
//	[[cleanroom.resource_limits.containers]]
//	name = "db-*"
//	cpu_seconds = 2
//
// Other tables (e.g. [cleanroom.monitoring]) are ignored, so one file can
// hold crmon's whole configuration.
func ParseLimitsTOML(data []byte) (Limits, error) {
	var doc struct {
		Cleanroom struct {
			ResourceLimits map[string]any `toml:"resource_limits"`
		} `toml:"cleanroom"`
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("line %d, column %d: %s (durations and sizes with units must be quoted strings, e.g. \"1.5s\", \"32MiB\")", row, col, de.Error())
		}
		return nil, err
	}
	var ls Limits
	var errs []error
	tbl := doc.Cleanroom.ResourceLimits
	for _, k := range sortedKeys(tbl) {
		if k == "containers" {
			continue
		}
		l, err := LimitFromTOML(k, tbl[k], "")
		if err != nil {
			errs = append(errs, fmt.Errorf("[cleanroom.resource_limits] %w", err))
			continue
		}
		ls = append(ls, l)
	}
	if cs, ok := tbl["containers"]; ok {
		arr, ok := cs.([]any)
		if !ok {
			errs = append(errs, errors.New("cleanroom.resource_limits.containers must be an array of tables: [[cleanroom.resource_limits.containers]]"))
		}
		for i, c := range arr {
			ct, ok := c.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("cleanroom.resource_limits.containers[%d] is not a table", i))
				continue
			}
			name, _ := ct["name"].(string)
			if name == "" {
				errs = append(errs, fmt.Errorf("[[cleanroom.resource_limits.containers]] #%d: name = \"PATTERN\" is required", i+1))
				continue
			}
			for _, k := range sortedKeys(ct) {
				if k == "name" {
					continue
				}
				l, err := LimitFromTOML(k, ct[k], name)
				if err != nil {
					errs = append(errs, fmt.Errorf("[[cleanroom.resource_limits.containers]] name = %q: %w", name, err))
					continue
				}
				ls = append(ls, l)
			}
		}
	}
	errs = append(errs, ls.Validate())
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ls, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Definition order reads better than alphabetical, and is stable.
	order := func(k string) int {
		for i, d := range limitDefs {
			if d.name == k {
				return i
			}
		}
		return len(limitDefs)
	}
	sort.Slice(keys, func(i, j int) bool {
		oi, oj := order(keys[i]), order(keys[j])
		if oi != oj {
			return oi < oj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// LimitFromTOML reads one key of [cleanroom.resource_limits] (container
// "") or of a [[cleanroom.resource_limits.containers]] entry (container is
// its name), with v as a TOML decoder gives it: an integer, a float or a
// string with a unit. It does not run Validate. ParseLimitsTOML reads each
// key with it, and so does crmon's config loader, so that both accept the
// same files.
func LimitFromTOML(key string, v any, container string) (Limit, error) {
	d, ok := findDef(key)
	if !ok {
		return Limit{}, unknownLimit(key)
	}
	var f float64
	var err error
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	case string:
		f, err = parseValue(d.unit, x)
	default:
		err = fmt.Errorf("want a number or a string with a unit, not %s", tomlKind(v))
	}
	if err != nil {
		return Limit{}, fmt.Errorf("%s: %w", key, err)
	}
	return Limit{Name: key, Container: container, Value: f}, nil
}

// tomlKind names what a TOML decoder gave, as the file wrote it.
func tomlKind(v any) string {
	switch v.(type) {
	case bool:
		return "true or false"
	case map[string]any:
		return "a table"
	case []any:
		return "a list"
	case nil:
		return "nothing"
	}
	return "a date or time"
}

func parseValue(unit, s string) (float64, error) {
	switch unit {
	case UnitBytes:
		b, err := ParseBytes(s)
		return float64(b), err
	case UnitSeconds:
		return ParseSeconds(s)
	default:
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("bad percentage %q: want a number like 80 or \"80%%\"", s)
		}
		return f, nil
	}
}

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so that "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseBytes parses a byte count: an integer, or a number with an IEC
// (KiB, MiB, GiB, TiB) or SI (kB, MB, GB, TB) unit: "32MiB", "1.5 GB".
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("bad byte size %q: want an integer or a size like \"32MiB\", \"1.5GB\"", s)
	}
	if f*mult > maxLimit[UnitBytes] {
		return 0, fmt.Errorf("bad byte size %q: %s", s, limitRange[UnitBytes])
	}
	return uint64(math.Round(f * mult)), nil
}

// ParseSeconds parses seconds: a number ("1.5") or a Go duration ("1.5s",
// "250ms", "2m").
func ParseSeconds(s string) (float64, error) {
	t := strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want seconds like 1.5 or a duration like \"1.5s\", \"250ms\"", s)
	}
	return d.Seconds(), nil
}

// FormatValue renders v in unit for people: "1.50s", "32.0MiB", "85.0%".
func FormatValue(unit string, v float64) string {
	switch unit {
	case UnitBytes:
		return FormatBytes(v)
	case UnitSeconds:
		return FormatSeconds(v)
	case UnitPercent:
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	case UnitCount:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// FormatBytes renders a byte count with an IEC unit.
func FormatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(v, 'f', 0, 64) + "B"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
}

// FormatSeconds renders seconds with a precision that suits their size.
func FormatSeconds(v float64) string {
	switch {
	case v == 0:
		return "0s"
	case v < 0.001:
		return strconv.FormatFloat(v*1e6, 'f', 0, 64) + "µs"
	case v < 1:
		return strconv.FormatFloat(v*1e3, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 3, 64) + "s"
}

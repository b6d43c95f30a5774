// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package collect

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TextAppender is implemented by collectors that write their series in the
// Prometheus text format (version 0.0.4) themselves: the host collectors
// and the containers collector, whose label sets are rendered once per
// container. /metrics asks them for the text format instead of building,
// sorting and encoding a client_golang metric per series on every scrape.
// AppendText must append exactly the series Collect emits, each family
// once, with its HELP and TYPE lines, with valid UTF-8 label values and
// family names no other collector uses (the registry's checks do not run
// on this path; the collectors' tests compare it with Collect), and must
// not do I/O.
type TextAppender interface {
	AppendText(b []byte) []byte
}

// AppendHeader appends a family's HELP and TYPE lines.
func AppendHeader(b []byte, name, help string, typ prometheus.ValueType) []byte {
	switch typ {
	case prometheus.CounterValue:
		return AppendHeaderType(b, name, help, "counter")
	case prometheus.GaugeValue:
		return AppendHeaderType(b, name, help, "gauge")
	default:
		return AppendHeaderType(b, name, help, "untyped")
	}
}

// AppendHeaderType appends a family's HELP and TYPE lines, its type as
// the text format names it ("counter", "histogram").
func AppendHeaderType(b []byte, name, help, typ string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	return append(b, '\n')
}

// AppendLabels appends `{name="value",...}` for pairs, in their order;
// nothing for no pairs.
func AppendLabels(b []byte, pairs []*dto.LabelPair) []byte {
	if len(pairs) == 0 {
		return b
	}
	b = append(b, '{')
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendLabel(b, p.GetName(), p.GetValue())
	}
	return append(b, '}')
}

// AppendLabel appends one `name="value"`, the value escaped. The value
// must be valid UTF-8: collectors repair theirs when they read them (see
// ValidLabelValue), not on every scrape.
func AppendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// AppendSample appends one sample line: name, the labels as AppendLabels
// rendered them, and the value.
func AppendSample(b []byte, name string, labels string, v float64) []byte {
	b = append(b, name...)
	b = append(b, labels...)
	return AppendValue(b, v)
}

// AppendValue appends ' ', v as client_golang formats it, and '\n'.
func AppendValue(b []byte, v float64) []byte {
	b = append(b, ' ')
	switch {
	case v == 0:
		b = append(b, '0')
	case v == 1:
		b = append(b, '1')
	case math.IsNaN(v):
		b = append(b, "NaN"...)
	case math.IsInf(v, 1):
		b = append(b, "+Inf"...)
	case math.IsInf(v, -1):
		b = append(b, "-Inf"...)
	case math.Abs(v) < 1e6 && v == math.Trunc(v):
		// What 'g' writes for an integer under 10⁶ (it switches to an
		// exponent there), without the shortest-digits search: most of
		// a scrape's values are counts, the probes' histogram buckets
		// above all (TestAppendValue).
		b = strconv.AppendInt(b, int64(v), 10)
	default:
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, '\n')
}

// appendEscaped escapes backslashes and newlines, and double quotes in
// label values, as the text format requires.
func appendEscaped(b []byte, s string, quotes bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quotes:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// ValidLabelValue is where every collector makes a value it read from the
// outside world (a cgroup or mount point name, an interface alias, a
// container's name or label, a device name) fit for a label: both
// exposition formats need valid UTF-8, and client_golang panics
// (MustNewConstMetric) or fails the gather on anything else. Invalid
// bytes become U+FFFD. Collectors call it once, when they read the value,
// so that neither format checks again on every scrape and both serve the
// same series.
func ValidLabelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ValidLabelValues is ValidLabelValue for a slice of values: lv itself
// when every value is valid, else a repaired copy (lv may be shared).
func ValidLabelValues(lv []string) []string {
	for i := range lv {
		if !utf8.ValidString(lv[i]) {
			out := slices.Clone(lv)
			for j := i; j < len(out); j++ {
				out[j] = ValidLabelValue(out[j])
			}
			return out
		}
	}
	return lv
}

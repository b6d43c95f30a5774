// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestAppendTextMatchesCollect checks, collector by collector, that the
// text /metrics writes is byte for byte what client_golang would encode
// from Collect, on the fixture trees and on this host, every collector
// on (off-by-default ones too).
func TestAppendTextMatchesCollect(t *testing.T) {
	for name, paths := range map[string]collect.Paths{"fixture": fixturePaths(t), "host": collect.DefaultPaths()} {
		t.Run(name, func(t *testing.T) {
			s := newFullSet(t, paths, Options{FilesystemNoStatfs: name == "fixture"})
			s.update(time.Now())
			for _, c := range s.cs {
				ta, ok := c.(collect.TextAppender)
				if !ok {
					t.Errorf("%s: not a collect.TextAppender", c.Name())
					continue
				}
				reg := prometheus.NewPedanticRegistry()
				reg.MustRegister(c)
				want := gatherText(t, reg)
				got := ta.AppendText(nil)
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s: AppendText differs from client_golang's encoding of Collect (-want +got):\n%s", c.Name(), diff)
				}
			}
		})
	}
}

// TestAppendTextEscapes covers label values client_golang escapes or
// rejects.
func TestAppendTextEscapes(t *testing.T) {
	var m metricSet
	d := newDesc("test", "x", "Help with \\ and\nnewline.", "b", "a")
	m.begin()
	m.add(d, prometheus.GaugeValue, 1.5, []string{`q"b\s`, "n\nl"})
	m.add(d, prometheus.GaugeValue, 2, []string{"bad\xff", "a"})
	m.publish(nil)
	got := string(m.AppendText(nil))
	want := "# HELP node_test_x Help with \\\\ and\\nnewline.\n# TYPE node_test_x gauge\n" +
		"node_test_x{a=\"a\",b=\"bad\uFFFD\"} 2\n" +
		"node_test_x{a=\"n\\nl\",b=\"q\\\"b\\\\s\"} 1.5\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Collect serves the same repaired value instead of panicking.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&m)
	if text := string(gatherText(t, reg)); text != want {
		t.Errorf("client_golang's encoding of Collect:\n%s\nwant\n%s", text, want)
	}
}

// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestRepairedIDsStayDistinct: two cgroups whose names differ only in
// bytes that are not UTF-8 repair to one id; only the first is exported,
// since two series with one label set fail the scrape.
func TestRepairedIDsStayDistinct(t *testing.T) {
	var out []exported
	for _, p := range []string{"/a\xff", "/b", "/a\xfe", "/a\uFFFD"} {
		out = append(out, exported{stats: &CgroupStats{Path: p}, cgroupLabels: newCgroupLabels(p, collect.ContainerRef{}, false)})
	}
	got := dedupIDs(out, slog.New(slog.DiscardHandler))
	var paths []string
	for _, e := range got {
		paths = append(paths, e.stats.Path)
	}
	if want := []string{"/a\xff", "/b"}; !slices.Equal(paths, want) {
		t.Errorf("exported %q, want %q", paths, want)
	}
}

// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/pkg/session"
)

func TestSeriesKeys(t *testing.T) {
	const (
		db1 = "4c9699121accb82def3cae8d5f9da64bf12acf692e0499cc1e66bad6555b5dca"
		db2 = "9f2d3c5e7a1b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
		web = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
	)
	cs := map[string]*scope{}
	for id, name := range map[string]string{db1: "db", db2: "db", web: "web"} {
		cs[id] = &scope{meta: session.ContainerReport{ID: id, Name: name}}
	}
	for _, tc := range []struct {
		name  string
		order []string
		want  []string
	}{
		{"unique names", []string{db1, web}, []string{"db", "web"}},
		{"a name reused", []string{db1, web, db2}, []string{"db@4c9699121acc", "web", "db@9f2d3c5e7a1b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, seriesKeys(tc.order, cs)); diff != "" {
				t.Errorf("seriesKeys (-want +got):\n%s", diff)
			}
		})
	}
}

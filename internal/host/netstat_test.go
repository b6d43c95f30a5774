// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestNetstatNoAllocs checks a steady-state tick allocates nothing and
// reads the files it keeps open.
func TestNetstatNoAllocs(t *testing.T) {
	for name, paths := range map[string]collect.Paths{"fixture": fixturePaths(t), "host": collect.DefaultPaths()} {
		t.Run(name, func(t *testing.T) {
			c, err := newNetstatCollector(collect.Options{Paths: paths}, Options{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, now := context.Background(), time.Now()
			// Every Linux has /proc/net/netstat and snmp, and so does the
			// fixture tree: an error is a failure, never a skip.
			if err := c.Update(ctx, now); err != nil {
				t.Fatal(err)
			}
			fds := c.files
			if n := testing.AllocsPerRun(100, func() { _ = c.Update(ctx, now) }); n != 0 {
				t.Errorf("Update: %v allocs, want 0", n)
			}
			for i, f := range c.files {
				if f.open && f.fd != fds[i].fd {
					t.Errorf("%s reopened", f.path)
				}
			}
			if !c.files[0].open {
				t.Errorf("%s not kept open", c.files[0].path)
			}
		})
	}
}

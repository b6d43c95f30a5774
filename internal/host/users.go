// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// glibc's struct utmp: ut_type at 0 and ut_user at 44 everywhere; 384
// bytes where glibc keeps ut_session and ut_tv 32-bit for compatibility
// with 32-bit programs (amd64, 386, ppc64, s390x), 400 where it does not
// (arm64).
const (
	utmpUserOff   = 44
	utUserProcess = 7
)

func nativeUtmpSize() int {
	if runtime.GOARCH == "arm64" {
		return 400
	}
	return 384
}

// parseUtmp counts login sessions as who(1) does: USER_PROCESS entries
// with a user name, in records of size bytes. A record being written while
// we read is cut short; it is ignored, as the next tick sees it whole.
func parseUtmp(b []byte, size int) int {
	n := 0
	for ; len(b) >= size; b = b[size:] {
		if binary.LittleEndian.Uint16(b[0:2]) != utUserProcess {
			continue
		}
		if b[utmpUserOff] == 0 {
			continue
		}
		n++
	}
	return n
}

// usersCollector counts logged-in users. node_exporter has no such family
// (its logind collector needs D-Bus), so it is crmon_host_users.
type usersCollector struct {
	metricSet
	log   *slog.Logger
	r     *reader
	paths [2]cpath
	desc  *metricDesc
	users int
	// recSize is the utmp record size of the C library on this
	// architecture.
	recSize int
	// check paces the looks for utmp on a host without it; the count
	// stays 0 in between.
	check recheck
}

func newUsersCollector(o collect.Options) (*usersCollector, error) {
	return &usersCollector{
		log:     logger(o),
		r:       newReader(4096),
		recSize: nativeUtmpSize(),
		// /var/run is usually an absolute symlink to /run, which would not
		// resolve under a rootfs mounted elsewhere, so run/ comes first.
		paths: [2]cpath{mkpath(o.Paths.RootFS, "run/utmp"), mkpath(o.Paths.RootFS, "var/run/utmp")},
		desc:  newFQDesc("crmon_host_users", "Login sessions in utmp, as who(1) counts them."),
	}, nil
}

func (c *usersCollector) Name() string { return "users" }

func (c *usersCollector) Update(_ context.Context, now time.Time) error {
	if !c.check.due(now) {
		return collect.ErrNoData
	}
	var b []byte
	var err error
	for _, p := range c.paths {
		if b, err = c.r.read(p); err == nil {
			break
		}
	}
	if err != nil {
		// Hosts without utmp (systemd without utmp support) have no
		// sessions to count.
		c.begin()
		c.publish(func() { c.users = 0 })
		if errors.Is(err, fs.ErrNotExist) {
			c.check.wait(now)
			return noData(c.log, "users", fmt.Errorf("reading utmp: %w", err))
		}
		return fmt.Errorf("reading utmp: %w", err)
	}
	c.check.reset()
	n := parseUtmp(b, c.recSize)
	c.begin()
	c.add(c.desc, prometheus.GaugeValue, float64(n), nil)
	c.publish(func() { c.users = n })
	return nil
}

func (c *usersCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.System.Users = uint32(c.users)
}

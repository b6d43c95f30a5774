// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// osReleaseKeys are the os-release(5) fields of node_os_info, in label
// order.
var osReleaseKeys = [...]string{"BUILD_ID", "ID", "ID_LIKE", "IMAGE_ID", "IMAGE_VERSION", "NAME",
	"PRETTY_NAME", "VARIANT", "VARIANT_ID", "VERSION", "VERSION_CODENAME", "VERSION_ID"}

// parseOSRelease parses os-release(5): KEY=value lines, values optionally
// quoted with shell escapes.
func parseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			continue
		}
		s := string(v)
		if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
			q := s[0]
			s = s[1 : len(s)-1]
			if q == '"' {
				// Inside double quotes, backslash escapes $ " \ and `.
				var sb strings.Builder
				for i := 0; i < len(s); i++ {
					if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$\"\\`", s[i+1]) >= 0 {
						i++
					}
					sb.WriteByte(s[i])
				}
				s = sb.String()
			}
		}
		out[string(k)] = s
	}
	return out
}

// osVersion is the major.minor part of VERSION_ID as a number ("22.04.3"
// is 22.04); ok is false when it has none.
func osVersion(id string) (float64, bool) {
	parts := strings.SplitN(id, ".", 3)
	v := parts[0]
	if len(parts) > 1 {
		v += "." + parts[1]
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

type osCollector struct {
	metricSet
	log     *slog.Logger
	r       *reader
	files   [2]cpath
	raw     []byte
	read    time.Time // when the file was last read
	info    *metricDesc
	version *metricDesc
}

func newOSCollector(o collect.Options) (*osCollector, error) {
	lower := make([]string, len(osReleaseKeys))
	for i, k := range osReleaseKeys {
		lower[i] = strings.ToLower(k)
	}
	return &osCollector{
		log:     logger(o),
		r:       newReader(1024),
		files:   [2]cpath{mkpath(o.Paths.RootFS, "etc/os-release"), mkpath(o.Paths.RootFS, "usr/lib/os-release")},
		info:    newDesc("os", "info", "A metric with a constant '1' value labeled by "+strings.Join(lower, ", ")+".", lower...),
		version: newDesc("os", "version", "Metric containing the major.minor part of the OS version.", "id", "id_like", "name"),
	}, nil
}

func (c *osCollector) Name() string { return "os" }

// osRefresh is how often os-release is read: it changes with an upgrade
// of the distribution, and reading it cost 19 µs a tick.
const osRefresh = time.Minute

// Update reads os-release every osRefresh, and re-parses it only when its
// content changed.
func (c *osCollector) Update(_ context.Context, now time.Time) error {
	if c.raw != nil && now.Sub(c.read) < osRefresh && !now.Before(c.read) {
		return nil
	}
	c.read = now
	var b []byte
	var err error
	for _, p := range c.files {
		// etc/os-release is often an absolute symlink, which does not
		// resolve under a rootfs mounted elsewhere; usr/lib is the fallback.
		if b, err = c.r.read(p); err == nil {
			break
		}
	}
	if err != nil {
		c.raw = nil
		c.clear()
		if errors.Is(err, fs.ErrNotExist) {
			return noData(c.log, "os", fmt.Errorf("reading os-release: %w", err))
		}
		return fmt.Errorf("reading os-release: %w", err)
	}
	if c.raw != nil && bytes.Equal(b, c.raw) {
		return nil
	}
	c.raw = append(c.raw[:0], b...)
	kv := parseOSRelease(b)
	lv := make([]string, len(osReleaseKeys))
	for i, k := range osReleaseKeys {
		lv[i] = kv[k]
	}
	c.begin()
	c.add(c.info, prometheus.GaugeValue, 1, lv)
	if v, ok := osVersion(kv["VERSION_ID"]); ok {
		c.add(c.version, prometheus.GaugeValue, v, []string{kv["ID"], kv["ID_LIKE"], kv["NAME"]})
	}
	c.publish(nil)
	return nil
}

func (c *osCollector) Fill(*metrics.ResourceMetrics) {}

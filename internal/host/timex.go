// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

const (
	// staNano means the offsets are in nanoseconds, not microseconds.
	staNano = 0x2000
	// timeError is adjtimex's return value when the clock is unsynchronized.
	timeError = 5
	// ppm16frac turns the kernel's scaled ppm (16-bit fraction) into a ratio.
	ppm16frac = 1000000.0 * 65536.0
)

// timexCollector reads adjtimex(2) of the kernel crmon runs on; it has no
// file, so it ignores the procfs root and is not reproducible from a
// fixture tree.
type timexCollector struct {
	metricSet
	log *slog.Logger

	offset, freq, maxerror, esterror, status, constant, tick *metricDesc
	ppsFreq, ppsJitter, ppsShift, ppsStabil, ppsJitCnt       *metricDesc
	ppsCalCnt, ppsErrCnt, ppsStbCnt, tai, syncStatus         *metricDesc
}

func newTimexCollector(o collect.Options) (*timexCollector, error) {
	d := func(name, help string) *metricDesc { return newDesc("timex", name, help) }
	return &timexCollector{
		log:        logger(o),
		offset:     d("offset_seconds", "Time offset in between local system and reference clock."),
		freq:       d("frequency_adjustment_ratio", "Local clock frequency adjustment."),
		maxerror:   d("maxerror_seconds", "Maximum error in seconds."),
		esterror:   d("estimated_error_seconds", "Estimated error in seconds."),
		status:     d("status", "Value of the status array bits."),
		constant:   d("loop_time_constant", "Phase-locked loop time constant."),
		tick:       d("tick_seconds", "Seconds between clock ticks."),
		ppsFreq:    d("pps_frequency_hertz", "Pulse per second frequency."),
		ppsJitter:  d("pps_jitter_seconds", "Pulse per second jitter."),
		ppsShift:   d("pps_shift_seconds", "Pulse per second interval duration."),
		ppsStabil:  d("pps_stability_hertz", "Pulse per second stability, average of recent frequency changes."),
		ppsJitCnt:  d("pps_jitter_total", "Pulse per second count of jitter limit exceeded events."),
		ppsCalCnt:  d("pps_calibration_total", "Pulse per second count of calibration intervals."),
		ppsErrCnt:  d("pps_error_total", "Pulse per second count of calibration errors."),
		ppsStbCnt:  d("pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events."),
		tai:        d("tai_offset_seconds", "International Atomic Time (TAI) offset."),
		syncStatus: d("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no)."),
	}, nil
}

func (c *timexCollector) Name() string { return "timex" }

func (c *timexCollector) Update(_ context.Context, _ time.Time) error {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return fmt.Errorf("reading adjtimex: %w", err)
	}
	divisor := 1e6
	if tx.Status&staNano != 0 {
		divisor = 1e9
	}
	synced := 0.0
	if state != timeError {
		synced = 1
	}
	g, ct := prometheus.GaugeValue, prometheus.CounterValue
	c.begin()
	c.add(c.syncStatus, g, synced, nil)
	c.add(c.offset, g, float64(tx.Offset)/divisor, nil)
	c.add(c.freq, g, 1+float64(tx.Freq)/ppm16frac, nil)
	c.add(c.maxerror, g, float64(tx.Maxerror)/1e6, nil)
	c.add(c.esterror, g, float64(tx.Esterror)/1e6, nil)
	c.add(c.status, g, float64(tx.Status), nil)
	c.add(c.constant, g, float64(tx.Constant), nil)
	c.add(c.tick, g, float64(tx.Tick)/1e6, nil)
	c.add(c.ppsFreq, g, float64(tx.Ppsfreq)/ppm16frac, nil)
	c.add(c.ppsJitter, g, float64(tx.Jitter)/divisor, nil)
	c.add(c.ppsShift, g, float64(tx.Shift), nil)
	c.add(c.ppsStabil, g, float64(tx.Stabil)/ppm16frac, nil)
	c.add(c.ppsJitCnt, ct, float64(tx.Jitcnt), nil)
	c.add(c.ppsCalCnt, ct, float64(tx.Calcnt), nil)
	c.add(c.ppsErrCnt, ct, float64(tx.Errcnt), nil)
	c.add(c.ppsStbCnt, ct, float64(tx.Stbcnt), nil)
	c.add(c.tai, g, float64(tx.Tai), nil)
	c.publish(nil)
	return nil
}

func (c *timexCollector) Fill(*metrics.ResourceMetrics) {}

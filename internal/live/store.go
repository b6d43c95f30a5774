// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/crmon-dev/crmon/internal/store"
)

// hostQueries give, from the host families the store keeps, each figure
// of the host's charts as the snapshot defines it: CPU not idle (idle and
// iowait count as idle), memory used as total − available, disk I/O of
// whole disks (not device-mapper or md stacked on them), network of the
// interfaces but loopback and the virtual ones a host's containers and
// VMs bring (the snapshot sums the NICs with a device behind them, which
// the metrics do not say). $w is the rate window.
var hostQueries = []string{
	`100 * (1 - sum(irate(node_cpu_seconds_total{mode=~"idle|iowait"}[$w])) / sum(irate(node_cpu_seconds_total[$w])))`,
	`sum(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)`,
	`sum(irate(node_disk_read_bytes_total{device!~"dm-.*|md.*"}[$w]))`,
	`sum(irate(node_disk_written_bytes_total{device!~"dm-.*|md.*"}[$w]))`,
	`sum(irate(node_network_receive_bytes_total{device!~"` + virtualNICs + `"}[$w]))`,
	`sum(irate(node_network_transmit_bytes_total{device!~"` + virtualNICs + `"}[$w]))`,
}

const virtualNICs = `lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*|cali.*|vxlan.*|tun.*|tap.*|kube-.*|cilium.*|weave.*|dummy.*`

// StoreHistory gives the hub the host's figures from the local store, for
// a page that opens while the hub kept none (Options.HostHistory): one
// point per interval over the window.
func StoreHistory(e *store.Engine, interval func() time.Duration) func(from, to time.Time) ([]Host, error) {
	return func(from, to time.Time) ([]Host, error) {
		step := max(interval(), time.Second)
		// irate takes the last two points in the window: three intervals
		// hold two even when a tick came late.
		win := (3 * step).String()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		byTime := map[int64]*Host{}
		var order []int64
		for i, q := range hostQueries {
			// The points are read while the query holds them: the
			// engine recycles them once it is closed.
			err := e.Range(ctx, strings.ReplaceAll(q, "$w", win), from, to, step, func(res *store.Result) error {
				m, ok := res.Value.(promql.Matrix)
				if !ok {
					return errors.New("not a range")
				}
				for _, s := range m {
					for _, p := range s.Floats {
						if math.IsNaN(p.F) {
							continue
						}
						h := byTime[p.T]
						if h == nil {
							if i > 0 {
								continue // a point the CPU query did not have
							}
							h = &Host{Time: time.UnixMilli(p.T)}
							byTime[p.T] = h
							order = append(order, p.T)
						}
						switch i {
						case 0:
							h.CPUPercent = p.F
						case 1:
							h.MemUsed = uint64(max(p.F, 0))
						case 2:
							h.DiskRead = p.F
						case 3:
							h.DiskWrite = p.F
						case 4:
							h.NetRx = p.F
						case 5:
							h.NetTx = p.F
						}
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("host history from the store: %w", err)
			}
		}
		out := make([]Host, 0, len(order))
		for _, t := range order {
			out = append(out, *byTime[t])
		}
		return out, nil
	}
}

// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmon-dev/crmon/pkg/session"
)

// Bytes writes b with a binary prefix: "512 B", "1.50 MiB", "23.5 GiB".
func Bytes(b float64) string {
	const units = "KMGTPE"
	if b < 1024 {
		return fmt.Sprintf("%.0f B", b)
	}
	i := -1
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	switch {
	case b < 10:
		return fmt.Sprintf("%.2f %ciB", b, units[i])
	case b < 100:
		return fmt.Sprintf("%.1f %ciB", b, units[i])
	}
	return fmt.Sprintf("%.0f %ciB", b, units[i])
}

// NA is what a figure that was not measured reads as.
const NA = "n/a"

func rateText(v *float64) string {
	if v == nil {
		return NA
	}
	return Bytes(*v) + "/s"
}

func pctText(v *float64) string {
	if v == nil {
		return NA
	}
	if *v < 10 {
		return fmt.Sprintf("%.1f %%", *v)
	}
	return fmt.Sprintf("%.0f %%", *v)
}

// Millis writes a duration in seconds as milliseconds, or seconds from 1 s.
func Millis(s float64) string {
	ms := s * 1000
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2f s", s)
	case ms < 1:
		return fmt.Sprintf("%.2g ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// Age writes d as its two largest units: "45s", "3m12s", "2h5m", "4d3h".
func Age(d time.Duration) string {
	s := int64(d / time.Second)
	dd, h, m := s/86400, s%86400/3600, s%3600/60
	switch {
	case dd > 0:
		return fmt.Sprintf("%dd%dh", dd, h)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s%60)
	}
	return fmt.Sprintf("%ds", s)
}

// Column is one column of the container table, as the page and `crmon
// top` show it.
type Column struct {
	Key   string // the sort key
	Title string
	Right bool // figures are right-aligned
	// Max bounds the width of a text column; longer values are cut.
	Max  int
	Cell func(r *Row, now time.Time) string
}

// Columns are the table's columns, in order; their keys are SortKeys.
var Columns = []Column{
	{Key: "name", Title: "NAME", Max: 40, Cell: func(r *Row, _ time.Time) string { return r.Name }},
	{Key: "image", Title: "IMAGE", Max: 32, Cell: func(r *Row, _ time.Time) string { return r.Image }},
	{Key: "cpu", Title: "CPU", Right: true, Cell: func(r *Row, _ time.Time) string { return pctText(r.CPU) }},
	{Key: "runq", Title: "RUNQ WAIT", Right: true, Cell: func(r *Row, _ time.Time) string { return pctText(r.RunqWait) }},
	{Key: "mem", Title: "MEMORY", Right: true, Cell: func(r *Row, _ time.Time) string {
		if r.Mem == nil {
			return NA
		}
		return Bytes(float64(*r.Mem))
	}},
	{Key: "blk_r", Title: "BLOCK READ", Right: true, Cell: func(r *Row, _ time.Time) string { return rateText(r.BlkRead) }},
	{Key: "blk_w", Title: "BLOCK WRITE", Right: true, Cell: func(r *Row, _ time.Time) string { return rateText(r.BlkWrite) }},
	{Key: "lat_p99", Title: "I/O P99", Right: true, Cell: func(r *Row, _ time.Time) string {
		switch {
		case r.IOLatP99 != nil:
			return Millis(*r.IOLatP99)
		case r.BlkRead != nil:
			return "-" // measured, and no request to measure
		}
		return NA
	}},
	{Key: "net_rx", Title: "NET RX", Right: true, Cell: func(r *Row, _ time.Time) string { return rateText(r.NetRx) }},
	{Key: "net_tx", Title: "NET TX", Right: true, Cell: func(r *Row, _ time.Time) string { return rateText(r.NetTx) }},
	{Key: "age", Title: "AGE", Right: true, Cell: func(r *Row, now time.Time) string {
		if r.Started.IsZero() {
			return ""
		}
		return Age(r.Age(now))
	}},
}

// Table lays rows out in columns at most width cells wide (0: no bound):
// the header, then a line per row. Text columns are cut first, then the
// image is left out.
func Table(rows []Row, now time.Time, width int) (header string, lines []string) {
	cells := make([][]string, len(rows))
	widths := make([]int, len(Columns))
	for c, col := range Columns {
		widths[c] = utf8.RuneCountInString(col.Title)
	}
	for i := range rows {
		cells[i] = make([]string, len(Columns))
		for c, col := range Columns {
			// Names are others' (any user names a cgroup of theirs):
			// their control characters are shown, not obeyed.
			s := session.TerminalText(col.Cell(&rows[i], now), false)
			cells[i][c] = s
			widths[c] = max(widths[c], utf8.RuneCountInString(s))
		}
	}
	show := make([]bool, len(Columns))
	for c, col := range Columns {
		show[c] = true
		if col.Max > 0 {
			widths[c] = min(widths[c], col.Max)
		}
	}
	total := func() int {
		n := 0
		for c := range Columns {
			if show[c] {
				n += widths[c] + 2
			}
		}
		return n - 2
	}
	if width > 0 {
		// Name and image give way first, down to 12 cells; then the image
		// goes.
		for _, c := range []int{1, 0} {
			if over := total() - width; over > 0 {
				widths[c] = max(widths[c]-over, min(widths[c], 12))
			}
		}
		if total() > width {
			show[1] = false
		}
	}
	line := func(get func(c int) string) string {
		var b strings.Builder
		for c, col := range Columns {
			if !show[c] {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("  ")
			}
			s := cut(get(c), widths[c])
			pad := strings.Repeat(" ", widths[c]-utf8.RuneCountInString(s))
			if col.Right {
				b.WriteString(pad + s)
			} else {
				b.WriteString(s + pad)
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	header = line(func(c int) string { return Columns[c].Title })
	for i := range rows {
		lines = append(lines, line(func(c int) string { return cells[i][c] }))
	}
	return header, lines
}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// HostLines are the host's figures in two lines, for a terminal.
func HostLines(h *Host, hostname string) [2]string {
	up := Age(time.Duration(h.UptimeSeconds) * time.Second)
	return [2]string{
		fmt.Sprintf("%s  %s  up %s  load %.2f %.2f %.2f  %d processes  containers %d running of %d",
			hostname, h.Time.Local().Format("15:04:05"), up, h.Load[0], h.Load[1], h.Load[2], h.Processes, h.Running, h.Containers),
		fmt.Sprintf("CPU %s of %d cores  MEM %s of %s  DISK %s of %s, read %s/s write %s/s  NET rx %s/s tx %s/s",
			pctText(&h.CPUPercent), h.Cores, Bytes(float64(h.MemUsed)), Bytes(float64(h.MemTotal)),
			Bytes(float64(h.DiskUsed)), Bytes(float64(h.DiskTotal)), Bytes(h.DiskRead), Bytes(h.DiskWrite), Bytes(h.NetRx), Bytes(h.NetTx)),
	}
}

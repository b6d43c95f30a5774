// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/store"
	"github.com/crmon-dev/crmon/internal/web"
)

// maxQueryAnswer bounds what crmon query reads from the agent.
const maxQueryAnswer = 64 << 20

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:      "query",
		Usage:     "evaluate PromQL over the running agent's history and print a table",
		ArgsUsage: "EXPR",
		Description: `Asks the agent's query API (/api/v1/query, /api/v1/query_range), the same a
Prometheus client or Grafana uses. With --time (default now) the expression is
evaluated at one time; with --start it is evaluated from --start to --end (default
now) every --step (default: about 250 points). Times are RFC 3339, Unix seconds,
"now", or a duration back from now ("1h", "-15m").`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "web.listen-address", Value: web.DefaultListenAddress, Usage: "the agent's address (host:port, or a URL for https)", EnvVars: []string{"CRMON_WEB_LISTEN_ADDRESS"}},
			&cli.StringFlag{Name: "time", Usage: "evaluation time of an instant query"},
			&cli.StringFlag{Name: "start", Usage: "start of a range query"},
			&cli.StringFlag{Name: "end", Usage: "end of a range query (default now)"},
			&cli.StringFlag{Name: "step", Usage: "resolution of a range query, e.g. 15s"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long to wait for the answer"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON, in Prometheus' shape"},
		},
		Action: queryAction,
	}
}

func queryAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("crmon query takes one PromQL expression, e.g. crmon query 'rate(container_cpu_usage_seconds_total[1m])'")
	}
	expr := c.Args().First()
	now := time.Now()
	rangeQuery := c.IsSet("start") || c.IsSet("end") || c.IsSet("step")
	if rangeQuery && c.IsSet("time") {
		return usageErrorf("--time is for an instant query, --start/--end/--step for a range; give one or the other")
	}
	if rangeQuery && !c.IsSet("start") {
		return usageErrorf("a range query needs --start, e.g. --start 1h")
	}
	base := c.String("web.listen-address")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client, err := api.NewClient(api.Config{Address: base, RoundTripper: limitedTransport{http.DefaultTransport}})
	if err != nil {
		return usageErrorf("--web.listen-address %q: %v", c.String("web.listen-address"), err)
	}
	papi := v1.NewAPI(client)
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()

	var val model.Value
	var warnings v1.Warnings
	if rangeQuery {
		start, err := parseWhen(c.String("start"), now)
		if err != nil {
			return usageErrorf("--start: %v", err)
		}
		end := now
		if s := c.String("end"); s != "" {
			if end, err = parseWhen(s, now); err != nil {
				return usageErrorf("--end: %v", err)
			}
		}
		if !end.After(start) {
			return usageErrorf("--end %s is not after --start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
		}
		step := max(end.Sub(start)/250, time.Second).Round(time.Second)
		if s := c.String("step"); s != "" {
			if step, err = store.ParseDuration(s); err != nil || step <= 0 {
				return usageErrorf("--step %q: want a duration more than 0, e.g. 15s", s)
			}
		}
		val, warnings, _, err = papi.QueryRange(ctx, expr, v1.Range{Start: start, End: end, Step: step})
		if err != nil {
			return queryError(base, err)
		}
	} else {
		t := now
		if s := c.String("time"); s != "" {
			if t, err = parseWhen(s, now); err != nil {
				return usageErrorf("--time: %v", err)
			}
		}
		val, warnings, _, err = papi.Query(ctx, expr, t)
		if err != nil {
			return queryError(base, err)
		}
	}
	for _, w := range warnings {
		fmt.Fprintln(c.App.ErrWriter, "warning:", w)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, map[string]any{"resultType": val.Type().String(), "result": val})
	}
	return printValue(c.App.Writer, val)
}

// queryError says what the agent answered, or that it could not be
// reached and why the store may be missing.
func queryError(base string, err error) error {
	var pe *v1.Error
	if errors.As(err, &pe) {
		if pe.Type == v1.ErrServer && strings.Contains(pe.Msg, "404") {
			return fmt.Errorf("the agent at %s serves no query API: its store is off ([cleanroom.monitoring.store] enabled)", base)
		}
		return fmt.Errorf("the agent at %s: %s: %s", base, pe.Type, pe.Msg)
	}
	return fmt.Errorf("asking the agent at %s: %w", base, err)
}

// parseWhen reads a time: RFC 3339, Unix seconds, "now", or a duration
// back from now ("1h" or "-1h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if t, err := store.ParseTime(s); err == nil {
		return t, nil
	}
	if d, err := model.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-time.Duration(d)), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-12-06T04:00:00Z), Unix seconds, now, or a duration back from now (1h)", s)
}

// printValue prints a query result as a table: one row per series for an
// instant vector, one per point for a range.
func printValue(w io.Writer, v model.Value) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch v := v.(type) {
	case model.Vector:
		if len(v) == 0 {
			fmt.Fprintln(tw, "no data")
			break
		}
		slices.SortFunc(v, func(a, b *model.Sample) int { return strings.Compare(a.Metric.String(), b.Metric.String()) })
		fmt.Fprintln(tw, "SERIES\tVALUE\tTIME")
		for _, s := range v {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Metric, formatValue(float64(s.Value)), s.Timestamp.Time().UTC().Format(time.RFC3339Nano))
		}
	case model.Matrix:
		if len(v) == 0 {
			fmt.Fprintln(tw, "no data")
			break
		}
		slices.SortFunc(v, func(a, b *model.SampleStream) int { return strings.Compare(a.Metric.String(), b.Metric.String()) })
		fmt.Fprintln(tw, "SERIES\tTIME\tVALUE")
		for _, s := range v {
			for _, p := range s.Values {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Metric, p.Timestamp.Time().UTC().Format(time.RFC3339), formatValue(float64(p.Value)))
			}
		}
	case *model.Scalar:
		fmt.Fprintf(tw, "%s\n", formatValue(float64(v.Value)))
	case *model.String:
		fmt.Fprintf(tw, "%s\n", v.Value)
	default:
		fmt.Fprintf(tw, "%v\n", v)
	}
	return tw.Flush()
}

func formatValue(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// limitedTransport fails a response larger than maxQueryAnswer instead
// of reading it all.
type limitedTransport struct{ rt http.RoundTripper }

func (l limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: maxQueryAnswer}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("the agent's answer is larger than %d bytes; narrow the query or the range", maxQueryAnswer)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
